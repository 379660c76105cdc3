//! The limit of seats per buyer (`max_seats_per_user` of a show): the seats of one
//! user's active holds plus live bookings of the show never pass it.
//!
//! Counting is only right if two holds of one user cannot count at the same time and
//! both pass: every hold of a show with a limit takes a transaction-scoped advisory
//! lock of (show, user) before it counts, and keeps it to its commit; the count is a
//! new statement, so in READ COMMITTED it sees every hold committed by whoever had the
//! lock before. Holds of other users take other locks: a limit serialises nobody but
//! the one user's own concurrent requests.
//!
//! The lock is taken after the seat locks, by every path (the transaction of
//! [`super::hold`] and best available): whoever has it has all its row locks already
//! and waits for no other, so the two kinds of lock never wait on each other in a
//! cycle. The one-statement paths (`pooled.rs`, `batch.rs`) hand shows with a limit
//! to [`super::hold`]. Expired (or lapsed), released and cancelled seats do not count.

use crate::database::Cached;
use crate::domain::{ShowId, UserId};
use crate::error::{Error, Result};
use crate::seats::HELD;
use deadpool_postgres::GenericClient;

/// Takes the user's lock for the show and refuses `adding` more seats when the user
/// would pass `limit`: [`Error::UserLimitReached`]. The lock waits at most the
/// transaction's `lock_timeout` ([`Error::Busy`]).
pub(crate) async fn check<C: GenericClient>(
    tx: &C,
    show: ShowId,
    user: &UserId,
    adding: usize,
    limit: u32,
) -> Result<()> {
    tx.cq_one(
        "SELECT pg_advisory_xact_lock(hashtextextended($1::bigint::text || '/' || $2, 0))::text",
        &[&show.get(), &user.as_str()],
    )
    .await?;
    let current = live_seats(tx, show, user).await?;
    if current as u64 + adding as u64 > u64::from(limit) {
        return Err(Error::UserLimitReached {
            limit,
            current: current as u32,
        });
    }
    Ok(())
}

/// The seats `user` has of `show` now: of active (unlapsed) holds and live bookings.
/// Counted by the limit per buyer and by the queue's allowance (`queue/allowance.rs`).
pub(crate) async fn live_seats<C: GenericClient>(
    tx: &C,
    show: ShowId,
    user: &UserId,
) -> Result<i64> {
    Ok(tx
        .cq_one(
            &format!(
                "SELECT (SELECT count(*) FROM holds h
                           JOIN hold_seats hs ON hs.show_id = h.show_id AND hs.hold_id = h.id
                          WHERE h.show_id = $1 AND h.user_id = $2 AND {HELD})
                      + (SELECT count(*) FROM bookings b
                           JOIN booking_seats bs
                             ON bs.show_id = b.show_id AND bs.booking_id = b.id AND bs.live
                          WHERE b.show_id = $1 AND b.user_id = $2 AND b.status = 'confirmed')"
            ),
            &[&show.get(), &user.as_str()],
        )
        .await?
        .get(0))
}
