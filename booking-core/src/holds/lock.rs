//! Locking a hold, and then its seats, for the operations that change it: release and
//! extend here, confirm and cancel in [`crate::bookings`]. A hold row is always locked
//! before any seat, and seats in id order: the one global lock order.

use crate::database::Cached;
use crate::database::{lock_timeout_value, Settings, SET_SHOW_LOCK_TIMEOUT};
use crate::domain::{HoldId, HoldStatus, HoldTtl};
use crate::error::{Error, Result};
use deadpool_postgres::GenericClient;

/// The locked hold row, for operations that change a hold.
pub(crate) struct LockedHold {
    pub user_id: String,
    pub status: HoldStatus,
    /// Past `expires_at` by the database clock (and still `active` in the table).
    pub lapsed: bool,
    /// `now() + ttl` would pass the hold's maximum lifetime (only when a ttl was given).
    pub over_limit: bool,
}

impl LockedHold {
    /// The status a reader sees: a lapsed active hold reads expired.
    pub fn effective_status(&self) -> HoldStatus {
        if self.status == HoldStatus::Active && self.lapsed {
            HoldStatus::Expired
        } else {
            self.status
        }
    }
}

impl LockedHold {
    /// Refuses anything but an active hold, as a confirm does: [`Error::HoldExpired`],
    /// [`Error::HoldReleased`], [`Error::HoldConfirmed`].
    pub fn active(&self) -> Result<()> {
        match self.effective_status() {
            HoldStatus::Active => Ok(()),
            HoldStatus::Confirmed => Err(Error::HoldConfirmed),
            HoldStatus::Released => Err(Error::HoldReleased),
            HoldStatus::Expired => Err(Error::HoldExpired),
        }
    }
}

/// Bounds lock waits, then locks the hold row. Holds are always locked before seats.
pub(crate) async fn lock_hold<C: GenericClient>(
    tx: &C,
    settings: &Settings,
    id: HoldId,
    extend_by: Option<HoldTtl>,
) -> Result<LockedHold> {
    let lock_timeout = lock_timeout_value(settings);
    let max_secs = settings.max_hold.as_secs() as i64;
    let extend_secs = extend_by.map(|t| t.secs() as i32).unwrap_or(0);
    // FOR NO KEY UPDATE: we change the status or deadline, never the key, so foreign
    // key checks of other transactions (KEY SHARE) are not blocked by it.
    let (_, row) = futures_util::future::try_join(
        tx.cexec(SET_SHOW_LOCK_TIMEOUT, &[&lock_timeout, &id.show().get()]),
        tx.cq_opt(
            "SELECT user_id, status, expires_at <= booking_now(show_id) AS lapsed,
                    booking_now(show_id) + $3::int * interval '1 second'
                        > created_at + $4::bigint * interval '1 second' AS over_limit
               FROM holds WHERE show_id = $1 AND id = $2
                FOR NO KEY UPDATE",
            &[&id.show().get(), &id.key(), &extend_secs, &max_secs],
        ),
    )
    .await?;
    let r = row.ok_or(Error::HoldNotFound)?;
    Ok(LockedHold {
        user_id: r.get("user_id"),
        status: HoldStatus::from_db(r.get("status"))?,
        lapsed: r.get("lapsed"),
        over_limit: extend_by.is_some() && r.get::<_, bool>("over_limit"),
    })
}

/// Locks the seats a hold asked for, in id order, and tells whether all still point at
/// it. A seat moves away from an unconfirmed hold only once the hold has lapsed.
pub(crate) async fn lock_hold_seats<C: GenericClient>(
    tx: &C,
    id: HoldId,
) -> Result<(Vec<(i64, String)>, bool)> {
    let rows = tx
        .cq(
            "SELECT s.id, s.xmin::text AS xmin, s.hold_id IS NOT DISTINCT FROM $2 AS ours
               FROM seats s
              WHERE s.show_id = $1
                AND s.id IN (SELECT seat_id FROM hold_seats WHERE show_id = $1 AND hold_id = $2)
              ORDER BY s.id FOR UPDATE",
            &[&id.show().get(), &id.key()],
        )
        .await?;
    let all_ours = rows.iter().all(|r| r.get::<_, bool>("ours"));
    let seats = rows.iter().map(|r| (r.get("id"), r.get("xmin"))).collect();
    Ok((seats, all_ours))
}
