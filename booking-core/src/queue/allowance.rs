//! What a queued show asks of every hold, add and best available: a live admission,
//! and the buyer's live seats within the queue's `max_seats`.
//!
//! The check runs inside the taking transaction after every seat and place lock (and
//! after the limit per buyer's advisory lock, `holds/limit.rs`), and locks the buyer's
//! entry `FOR NO KEY UPDATE` before it counts: concurrent takings of one buyer (many
//! tabs, many requests) serialize there, and each count, a new statement in READ
//! COMMITTED, sees every seat the one before committed. The entry lock is the last
//! lock of the transaction, so it never waits while holding it (see DESIGN.md, "Lock
//! order"); an admitting pass locks the `queues` row and then only entries not yet
//! admitted, which a taking of an admitted buyer never holds.
//!
//! The one-statement paths (pooled, the batches) take nothing of a queued show: they
//! hand it to the transactional path, which calls [`check`].

use crate::database::Cached;
use crate::domain::{ShowId, UserId};
use crate::error::{Error, Result};
use deadpool_postgres::GenericClient;

/// Refuses `user` taking `adding` more seats of the queued `show` (allowance
/// `max_seats`) unless they are admitted now and stay within it:
/// [`Error::NotAdmitted`], [`Error::AdmissionExpired`], [`Error::QueueMaxSeats`].
pub(crate) async fn check<C: GenericClient>(
    tx: &C,
    show: ShowId,
    user: &UserId,
    adding: usize,
    max_seats: u32,
) -> Result<()> {
    admitted(tx, show, user).await?;
    let current = crate::holds::live_seats(tx, show, user).await?;
    if current as u64 + adding as u64 > u64::from(max_seats) {
        return Err(Error::QueueMaxSeats {
            max_seats,
            current: current as u32,
        });
    }
    Ok(())
}

/// Refuses `user` on `show` unless their entry is admitted now (database clock):
/// [`Error::NotAdmitted`], [`Error::AdmissionExpired`]. The entry stays locked to the
/// end of the transaction.
async fn admitted<C: GenericClient>(tx: &C, show: ShowId, user: &UserId) -> Result<()> {
    let sql = "SELECT admitted_at IS NOT NULL AS admitted, booking_now(show_id) < admission_expires_at AS live
                 FROM queue_entries WHERE show_id = $1 AND user_id = $2 FOR NO KEY UPDATE";
    let row = tx
        .cq_opt(sql, &[&show.get(), &user.as_str()])
        .await?
        .ok_or(Error::NotAdmitted)?;
    match (
        row.get::<_, bool>("admitted"),
        row.get::<_, Option<bool>>("live"),
    ) {
        (false, _) => Err(Error::NotAdmitted),
        (true, Some(true)) => Ok(()),
        (true, _) => Err(Error::AdmissionExpired),
    }
}

/// Whether `show` has a queue, and if so refuses `user` unless admitted now, in one
/// statement without a lock: the early answer of a server before the taking, which
/// checks again under its lock. [`Error::ShowNotFound`] when there is no such show.
pub async fn gate<C: GenericClient>(client: &C, show: ShowId, user: &UserId) -> Result<bool> {
    let row = client
        .cq_opt(
            "SELECT sh.queue_max_seats IS NOT NULL AS queued,
                    coalesce(e.admitted_at IS NOT NULL, false) AS admitted,
                    booking_now(sh.id) < e.admission_expires_at AS live
               FROM shows sh
               LEFT JOIN queue_entries e ON e.show_id = sh.id AND e.user_id = $2
              WHERE sh.id = $1",
            &[&show.get(), &user.as_str()],
        )
        .await?
        .ok_or(Error::ShowNotFound)?;
    if !row.get::<_, bool>("queued") {
        return Ok(false);
    }
    match (
        row.get::<_, bool>("admitted"),
        row.get::<_, Option<bool>>("live"),
    ) {
        (false, _) => Err(Error::NotAdmitted),
        (true, Some(true)) => Ok(true),
        (true, _) => Err(Error::AdmissionExpired),
    }
}
