//! The waiting room of a show: buyers join its queue, are admitted at the show's rate
//! for a while, and while admitted may take up to the queue's allowance of seats.
//!
//! Everything is in PostgreSQL (`migrations/V12__queue.sql`): a show's settings on its
//! row ([`QueueSettings`]), the queue's state in `queues` (one row a show, which is
//! also the queue's lock) and one `queue_entries` row a buyer. So any server process
//! may serve joins and admit, and a restart loses nobody's place.
//!
//! - Joining ([`join`]): before `sales_start`, into the pre-queue, without an order;
//!   from `sales_start` on, behind everyone, in arrival order. Joining again gives the
//!   same entry: one place a buyer, whatever they send.
//! - The shuffle (`queue/admit.rs`): once, at `sales_start`, the pre-queue gets a
//!   uniform random order made by the database (`ORDER BY random()`) under the queue's
//!   lock. No order exists before it, so nothing about it can be learnt or improved by
//!   arriving early or joining again.
//! - Admission ([`admit::admit_once`], looped by [`admit::run`] in every process):
//!   entry `p` is admitted at `a(p) = max(a(p-1) + 60 s / admit_per_minute, ready(p))`,
//!   `ready` being `sales_start` for the pre-queue and the join's time after it, on the
//!   database clock. A pass admits every entry whose `a(p)` has come, stamping it, under
//!   the queue row's lock: passes of several processes take turns, none admits anybody
//!   twice or skips anybody, and how often they run changes when an entry flips, not
//!   the times the schedule gives.
//! - The allowance (`queue/allowance.rs`): on a queued show every hold, add and best
//!   available needs a live admission, and the buyer's live seats stay within
//!   `max_seats`, checked under a lock on the buyer's entry.
//! - [`status`]: where a buyer is (`GET /shows/{id}/queue/me`).

use crate::database::Cached;
use crate::domain::{QueueSettings, ShowId, UserId};
use crate::error::{Error, Result};
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;

pub mod admit;
pub(crate) mod allowance;
pub use allowance::gate;

crate::domain::text_enum! {
    /// Where a buyer's queue entry is, at the moment it was read (database clock).
    pub enum QueueState {
        /// In the queue, not admitted yet.
        Waiting = "waiting",
        /// Admitted: may take seats until `admission_expires_at`.
        Admitted = "admitted",
        /// The admission ended (holds taken during it stay until their own expiry).
        Expired = "expired",
    }
}

/// A buyer's place in a show's queue, as `GET /shows/{id}/queue/me` gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueStatus {
    /// Waiting, admitted or expired.
    pub state: QueueState,
    /// While waiting: 1 is the next to be admitted. `None` before the pre-queue is
    /// shuffled (before `sales_start`) and once admitted.
    pub position: Option<i64>,
    /// Buyers still waiting ahead of this one (`None` before the shuffle; 0 once
    /// admitted).
    pub ahead: Option<i64>,
    /// Roughly how long until admission at the show's rate, in seconds (`None` before
    /// the shuffle; 0 once admitted).
    pub estimated_wait_seconds: Option<i64>,
    /// When the admission began (the schedule's time, database clock).
    pub admitted_at: Option<DateTime<Utc>>,
    /// When the admission ends.
    pub admission_expires_at: Option<DateTime<Utc>>,
    /// The queue's allowance of live seats per buyer.
    pub max_seats: u32,
    /// The buyer's live seats of the show (active holds and live bookings).
    pub seats_taken: i64,
}

/// What [`join`] did: the entry, and whether this call made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// True when this call put the buyer in the queue; false when they already were.
    pub created: bool,
    /// The entry as it is now.
    pub status: QueueStatus,
}

/// SQL: a buyer's entry with what its status needs, `$1` show, `$2` user.
const STATUS_SQL: &str = "SELECT sh.id, sh.cancelled_at, sh.sales_start, sh.sales_end,
        sh.queue_admit_per_minute, sh.queue_admission_minutes, sh.queue_max_seats,
        booking_now(sh.id) AS now, booking_now(sh.id) >= coalesce(sh.sales_end, 'infinity') AS closed,
        q.shuffled_at, q.admitted_through, q.last_admitted_at,
        e.user_id IS NOT NULL AS joined, e.position, e.admitted_at, e.admission_expires_at,
        CASE WHEN e.admitted_at IS NULL THEN 'waiting'
             WHEN booking_now(sh.id) < e.admission_expires_at THEN 'admitted'
             ELSE 'expired' END AS state
   FROM shows sh
   LEFT JOIN queues q ON q.show_id = sh.id
   LEFT JOIN queue_entries e ON e.show_id = sh.id AND e.user_id = $2
  WHERE sh.id = $1";

/// A show's queue settings from a row with the `queue_*` columns of `shows`.
pub(crate) fn settings_of(row: &tokio_postgres::Row) -> Option<QueueSettings> {
    QueueSettings::from_db(
        row.get("queue_admit_per_minute"),
        row.get("queue_admission_minutes"),
        row.get("queue_max_seats"),
    )
}

async fn read<C: GenericClient>(
    client: &C,
    show: ShowId,
    user: &UserId,
) -> Result<(tokio_postgres::Row, QueueSettings)> {
    let row = client
        .cq_opt(STATUS_SQL, &[&show.get(), &user.as_str()])
        .await?
        .ok_or(Error::ShowNotFound)?;
    let settings = settings_of(&row).ok_or(Error::QueueNotEnabled)?;
    Ok((row, settings))
}

async fn status_of<C: GenericClient>(
    client: &C,
    show: ShowId,
    user: &UserId,
    row: &tokio_postgres::Row,
    settings: QueueSettings,
) -> Result<QueueStatus> {
    let now: DateTime<Utc> = row.get("now");
    let admitted_at: Option<DateTime<Utc>> = row.get("admitted_at");
    let expires_at: Option<DateTime<Utc>> = row.get("admission_expires_at");
    let seats_taken = crate::holds::live_seats(client, show, user).await?;
    let state = QueueState::from_db(row.get("state"))?;
    let (position, ahead, wait) = match state {
        QueueState::Admitted | QueueState::Expired => (None, Some(0), Some(0)),
        QueueState::Waiting => match row.get::<_, Option<i64>>("position") {
            None => (None, None, None),
            Some(p) => {
                let through: i64 = row.get("admitted_through");
                let position = p - through;
                // The next admission comes one interval after the last (or at the
                // start); then one interval a place.
                let interval = settings.interval_micros();
                let last: Option<DateTime<Utc>> = row.get("last_admitted_at");
                let start: Option<DateTime<Utc>> = row.get("sales_start");
                let next = match last {
                    Some(l) => l + chrono::Duration::microseconds(interval),
                    None => start.unwrap_or(now),
                }
                .max(now);
                let at = next + chrono::Duration::microseconds(interval * (position - 1));
                let wait = ((at - now).num_milliseconds() + 999) / 1000;
                (Some(position), Some(position - 1), Some(wait.max(0)))
            }
        },
    };
    Ok(QueueStatus {
        state,
        position,
        ahead,
        estimated_wait_seconds: wait,
        admitted_at,
        admission_expires_at: expires_at,
        max_seats: settings.max_seats(),
        seats_taken,
    })
}

/// Where `user` is in `show`'s queue. Errors: [`Error::ShowNotFound`],
/// [`Error::QueueNotEnabled`], [`Error::NotInQueue`] (never joined).
pub async fn status<C: GenericClient>(
    client: &C,
    show: ShowId,
    user: &UserId,
) -> Result<QueueStatus> {
    let (row, settings) = read(client, show, user).await?;
    if !row.get::<_, bool>("joined") {
        return Err(Error::NotInQueue);
    }
    status_of(client, show, user, &row, settings).await
}

/// SQL: a join before the shuffle, in one statement. The queue row's share lock makes
/// the shuffle (which takes it for update) wait for this insert's commit; a join that
/// waited for a shuffle re-reads the row (READ COMMITTED's re-check of a locked row),
/// finds it shuffled and inserts nothing: it goes to the back as a late joiner.
const JOIN_EARLY: &str = "WITH q AS (
         SELECT q.show_id FROM queues q JOIN shows sh ON sh.id = q.show_id
          WHERE q.show_id = $1 AND q.shuffled_at IS NULL AND booking_now(sh.id) < sh.sales_start
            FOR SHARE OF q
     )
     INSERT INTO queue_entries (show_id, user_id, early)
     SELECT show_id, $2, true FROM q
     ON CONFLICT (show_id, user_id) DO NOTHING
     RETURNING user_id";

/// Puts `user` in `show`'s queue, or gives their entry if they are in it already.
///
/// Before `sales_start` (database clock) the entry has no position until the
/// shuffle; from then on it gets the next position, behind everyone. Runs on its own
/// (in a transaction for a late join) or inside the caller's transaction.
///
/// Errors: [`Error::ShowNotFound`], [`Error::QueueNotEnabled`],
/// [`Error::ShowCancelled`], [`Error::NotOnSale`] (at or after `sales_end`: nobody
/// joins a sale that ended; a buyer already in it gets their entry).
#[tracing::instrument(skip_all, fields(show = %show, user = %user))]
pub async fn join<C>(client: &mut C, show: ShowId, user: &UserId) -> Result<Joined>
where
    C: GenericClient + Send,
{
    let (row, settings) = read(client, show, user).await?;
    if row.get::<_, bool>("joined") {
        let status = status_of(client, show, user, &row, settings).await?;
        return Ok(Joined {
            created: false,
            status,
        });
    }
    if row
        .get::<_, Option<DateTime<Utc>>>("cancelled_at")
        .is_some()
    {
        return Err(Error::ShowCancelled);
    }
    if row.get::<_, bool>("closed") {
        return Err(Error::NotOnSale {
            sales_start: row.get("sales_start"),
            sales_end: row.get("sales_end"),
        });
    }
    let early = row.get::<_, Option<DateTime<Utc>>>("shuffled_at").is_none()
        && row
            .get::<_, Option<DateTime<Utc>>>("sales_start")
            .is_some_and(|s| row.get::<_, DateTime<Utc>>("now") < s);
    let created = if early
        && !client
            .cq(JOIN_EARLY, &[&show.get(), &user.as_str()])
            .await?
            .is_empty()
    {
        true
    } else {
        join_late(client, show, user).await?
    };
    let (row, settings) = read(client, show, user).await?;
    let status = status_of(client, show, user, &row, settings).await?;
    Ok(Joined { created, status })
}

/// A join behind everyone: under the queue row's lock, the pre-queue shuffled first
/// if nobody has yet, then the next position taken. False when the user was in the
/// queue already (a concurrent join of theirs won).
async fn join_late<C>(client: &mut C, show: ShowId, user: &UserId) -> Result<bool>
where
    C: GenericClient + Send,
{
    let tx = client.transaction().await?;
    let q = tx
        .cq_opt(
            "SELECT q.shuffled_at IS NOT NULL AS shuffled,
                    booking_now(sh.id) >= sh.sales_start AS started
               FROM queues q JOIN shows sh ON sh.id = q.show_id
              WHERE q.show_id = $1 FOR UPDATE OF q",
            &[&show.get()],
        )
        .await?
        // The queue was removed since our first read.
        .ok_or(Error::QueueNotEnabled)?;
    match (q.get::<_, bool>("shuffled"), q.get::<_, bool>("started")) {
        (true, _) => {}
        (false, true) => {
            admit::shuffle(&tx, show).await?;
        }
        (false, false) => {
            // Not started after all (its start moved later meanwhile): the pre-queue.
            let n = tx
                .cexec(
                    "INSERT INTO queue_entries (show_id, user_id, early) VALUES ($1, $2, true)
                     ON CONFLICT (show_id, user_id) DO NOTHING",
                    &[&show.get(), &user.as_str()],
                )
                .await?;
            tx.commit().await?;
            return Ok(n == 1);
        }
    }
    let inserted = tx
        .cexec(
            "WITH p AS (
                 UPDATE queues SET next_position = next_position + 1
                  WHERE show_id = $1
                    AND NOT EXISTS (SELECT 1 FROM queue_entries
                                     WHERE show_id = $1 AND user_id = $2)
                 RETURNING next_position - 1 AS position
             )
             INSERT INTO queue_entries (show_id, user_id, early, position)
             SELECT $1, $2, false, position FROM p",
            &[&show.get(), &user.as_str()],
        )
        .await?;
    tx.commit().await?;
    Ok(inserted == 1)
}

/// Gives `show` the queue `settings` (`None`: removes its queue, with every entry),
/// inside the caller's transaction, which has the show row locked (creation, or
/// [`crate::shows::update`]) and has checked that the show has a `sales_start`. A queue kept keeps its entries and admissions; new
/// settings apply from the next admission on.
pub(crate) async fn set<C: GenericClient>(
    tx: &C,
    show: i64,
    settings: Option<QueueSettings>,
) -> Result<()> {
    let (rate, minutes, max) = match settings {
        Some(s) => (
            Some(s.admit_per_minute() as i32),
            Some(s.admission_minutes() as i32),
            Some(s.max_seats() as i32),
        ),
        None => (None, None, None),
    };
    tx.cexec(
        "UPDATE shows SET queue_admit_per_minute = $2, queue_admission_minutes = $3,
                          queue_max_seats = $4
          WHERE id = $1",
        &[&show, &rate, &minutes, &max],
    )
    .await?;
    match settings {
        Some(_) => {
            tx.cexec(
                "INSERT INTO queues (show_id) VALUES ($1) ON CONFLICT DO NOTHING",
                &[&show],
            )
            .await?
        }
        None => {
            tx.cexec("DELETE FROM queues WHERE show_id = $1", &[&show])
                .await?
        }
    };
    Ok(())
}
