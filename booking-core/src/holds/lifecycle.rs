//! Ending and prolonging a hold: release, and extend.

use super::lock::{lock_hold, lock_hold_seats};
use super::{load, Hold};
use crate::database::Cached;
use crate::domain::{HoldId, HoldStatus, HoldTtl, SeatState, UserId};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::feed::{self, Cause, SeatEvent};
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use std::sync::Arc;

/// Releases the hold's seats. Releasing a hold that is already released or expired
/// succeeds and changes nothing; a confirmed hold gives [`Error::HoldConfirmed`]; also
/// [`Error::HoldNotFound`], [`Error::Forbidden`] (another user's hold), [`Error::Busy`].
/// Returns the hold as it is afterwards (`released`, or `expired` when it had lapsed).
#[tracing::instrument(skip_all, fields(hold = %id, user = %user))]
pub async fn release<C>(client: &mut C, engine: &Engine, user: &UserId, id: HoldId) -> Result<Hold>
where
    C: GenericClient + Send,
{
    let tx = client.transaction().await?;
    let locked = lock_hold(&tx, engine.settings(), id, None).await?;
    if locked.user_id != user.as_str() {
        return Err(Error::Forbidden);
    }
    let new_status = match (locked.status, locked.lapsed) {
        (HoldStatus::Confirmed, _) => return Err(Error::HoldConfirmed),
        (HoldStatus::Released | HoldStatus::Expired, _) => None,
        // Lapsed but not swept: it expired; record that instead of a release.
        (HoldStatus::Active, true) => Some(HoldStatus::Expired),
        (HoldStatus::Active, false) => Some(HoldStatus::Released),
    };
    let mut event = None;
    if let Some(status) = new_status {
        event = free_seats_of(&tx, id, status).await?.1;
    }
    let mut hold = load(&tx, id).await?.ok_or(Error::HoldNotFound)?;
    hold.event = event;
    tx.commit().await?;
    if new_status.is_some() {
        engine.committed(None);
    }
    Ok(hold)
}

/// Ends a hold with `status` and frees the seats that still point at it (a lapsed
/// hold's seats may have been taken over already: those are left alone). Returns how
/// many seats it freed and the event it wrote, if any.
pub(super) async fn free_seats_of<C: GenericClient>(
    tx: &C,
    id: HoldId,
    status: HoldStatus,
) -> Result<(u64, Option<Arc<SeatEvent>>)> {
    // Lock before writing, in id order, like every other multi-seat lock.
    tx.cq(
        "SELECT id FROM seats WHERE show_id = $1 AND hold_id = $2 ORDER BY id FOR UPDATE",
        &[&id.show().get(), &id.key()],
    )
    .await?;
    // The status is also the event's cause.
    let cause = if status == HoldStatus::Expired {
        Cause::Expire
    } else {
        Cause::Release
    };
    let sql = format!(
        "WITH freed AS (
             UPDATE seats SET hold_id = NULL WHERE show_id = $1 AND hold_id = $2
             RETURNING id, label, xmin, area
         ), ended AS (
             UPDATE holds SET status = $3 WHERE show_id = $1 AND id = $2
         ), {event}
         SELECT (SELECT count(*) FROM freed) AS n, {columns}",
        event = feed::EventsSql {
            show: "$1",
            cause,
            state: SeatState::Available,
            until: None,
            was: None,
            from: "freed",
            per: None,
        }
        .cte_of(&feed::Subject {
            hold: Some("$2"),
            ..Default::default()
        }),
        columns = feed::EVENT_COLUMNS,
    );
    let row = tx
        .cq_one(&sql, &[&id.show().get(), &id.key(), &status.as_str()])
        .await?;
    let event = feed::written_event(&row, id.show(), cause)?;
    Ok((row.get::<_, i64>("n") as u64, event))
}

/// Moves the hold's deadline to `now() + ttl`, at most
/// [`Settings::max_hold`](crate::Settings::max_hold) after its creation
/// ([`Error::HoldLimitReached`] beyond). Expired, released and confirmed holds give
/// [`Error::HoldExpired`], [`Error::HoldReleased`], [`Error::HoldConfirmed`]; also
/// [`Error::HoldNotFound`], [`Error::Forbidden`] (another user's hold), [`Error::Busy`].
/// Returns the hold with its new `expires_at`. Writes no seat event: no seat's state
/// changes.
#[tracing::instrument(skip_all, fields(hold = %id, user = %user, ttl = ttl.secs()))]
pub async fn extend<C>(
    client: &mut C,
    engine: &Engine,
    user: &UserId,
    id: HoldId,
    ttl: HoldTtl,
) -> Result<Hold>
where
    C: GenericClient + Send,
{
    let settings = engine.settings();
    let tx = client.transaction().await?;
    let locked = lock_hold(&tx, settings, id, Some(ttl)).await?;
    if locked.user_id != user.as_str() {
        return Err(Error::Forbidden);
    }
    match locked.effective_status() {
        HoldStatus::Confirmed => return Err(Error::HoldConfirmed),
        HoldStatus::Released => return Err(Error::HoldReleased),
        HoldStatus::Expired => return Err(Error::HoldExpired),
        HoldStatus::Active => {}
    }
    if locked.over_limit {
        return Err(Error::HoldLimitReached {
            max_seconds: settings.max_hold.as_secs(),
        });
    }
    // A hold creator that saw this hold lapsed by its own (later) clock may be taking
    // its seats right now. Locking them settles it: either we see a seat gone (and the
    // hold did expire), or the creator waits and then sees the new deadline.
    let (_, all_ours) = lock_hold_seats(&tx, id).await?;
    if !all_ours {
        return Err(Error::HoldExpired);
    }
    let (show, secs) = (id.show().get(), ttl.secs() as i32);
    if settings.distributed {
        // Citus refuses a STABLE function of a column in an UPDATE's SET ("STABLE
        // functions used in UPDATE queries cannot be called with column references"),
        // and `timestamptz + interval` is one: the deadline is read first, on the
        // show's node. Its `now()` is the transaction's start, as the UPDATE's would be.
        let until: DateTime<Utc> = tx
            .cq_one(
                "SELECT booking_now(show_id) + $3::int * interval '1 second' AS until
                   FROM holds WHERE show_id = $1 AND id = $2",
                &[&show, &id.key(), &secs],
            )
            .await?
            .get("until");
        tx.cexec(
            "UPDATE holds SET expires_at = $3 WHERE show_id = $1 AND id = $2",
            &[&show, &id.key(), &until],
        )
        .await?;
    } else {
        tx.cexec(
            "UPDATE holds SET expires_at = booking_now(show_id) + $3::int * interval '1 second'
              WHERE show_id = $1 AND id = $2",
            &[&show, &id.key(), &secs],
        )
        .await?;
    }
    let hold = load(&tx, id).await?.ok_or(Error::HoldNotFound)?;
    tx.commit().await?;
    Ok(hold)
}
