//! Cancelling a show (`POST /shows/{id}/cancel`): every hold released, every booking
//! cancelled, every seat and place freed, one `show_cancel` event, and the show refusing
//! every hold from then on.
//!
//! # Why no hold slips past it, and why two transactions
//!
//! 1. *Close* (one transaction): lock the show row (`FOR NO KEY UPDATE`, which a hold's
//!    foreign-key checks, `FOR KEY SHARE`, never wait for), set `cancelled_at = now()`,
//!    lock every seat and place row of the show in id order and rewrite each one, free
//!    ones too (same values, a new row version), commit. From that commit on nothing
//!    takes a seat of the show: a path that locks and then decides reads the show again
//!    after its locks (`shows/sale.rs`), and sees it cancelled; a one-statement path
//!    whose snapshot is older takes only rows unchanged since that snapshot, and every
//!    row changed, so it leaves the request to the former; a newer snapshot sees the
//!    show cancelled. A transaction that was taking seats when we came had them locked,
//!    so we waited for it: its hold committed before the close did.
//! 2. *Sweep* (a second transaction, so that its transaction id is younger than that of
//!    every transaction that wrote a seat of the show: the feed's `(xid, id)` order must
//!    be commit order for each seat, and a transaction that waited for a lock may be
//!    older than the one it waited for): lock every active hold row, then every
//!    confirmed booking row, in id order (as any operation on one of them locks it
//!    before its seats), then every seat and place in id order; then, with `NOWAIT`,
//!    the holds and bookings that appeared while we waited (a hold committed before the
//!    close, perhaps confirmed since; locked after seats, against the order, so we do
//!    not wait for them: someone confirming such a hold holds its row and waits for our
//!    seats, and we start the sweep over instead, a few times). One statement then
//!    releases the holds, cancels the bookings (their seats' rows ended with `ended_by =
//!    'cancel'`), frees and rewrites every seat and place, and writes one event listing
//!    every one at its new version.
//!
//! A crash between the two leaves a cancelled show that refuses everything but still
//! has its holds and bookings: a repeat of the cancellation finds them and sweeps (a
//! repeat of a completed one writes nothing), as does [`finish_cancellations`], which
//! the sweeper runs about once a minute.

use super::{get_show, Show};
use crate::database::{lock_timeout_value, Cached, SET_SHOW_LOCK_TIMEOUT};
use crate::domain::{SeatState, ShowId};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::feed::{self, Cause, SeatEvent};
use crate::holds::WRITTEN_BEFORE_US;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

/// How often a cancellation starts over when a hold made while it waited is locked by
/// someone else (step 4 of the module docs), before it answers [`Error::Busy`].
const ATTEMPTS: u32 = 8;

/// What [`cancel`] did.
#[derive(Debug, Clone)]
pub struct ShowCancellation {
    /// The show as it is now: cancelled.
    pub show: Show,
    /// True when this call cancelled it; false when it was cancelled already (nothing
    /// was written).
    pub cancelled_now: bool,
    /// Holds this call released (their `released_at` is the show's `cancelled_at`).
    pub holds_released: u64,
    /// Bookings this call cancelled (their `cancelled_at` is the show's).
    pub bookings_cancelled: u64,
    /// The `show_cancel` event it wrote, once committed (see [`crate::Hold::event`]).
    pub event: Option<Arc<SeatEvent>>,
}

/// Cancels the show `id`: releases every active hold (lapsed ones too) and cancels
/// every confirmed booking, frees their seats and places, writes one `show_cancel`
/// event, and from then on the show refuses every hold, add, best available, exchange,
/// block and change ([`Error::ShowCancelled`]). The holds' `released_at`, the bookings'
/// `cancelled_at` and their seats' `ended_at` are the show's `cancelled_at`, exactly.
/// Blocks stay. Cancelling a cancelled show changes nothing and returns it.
///
/// Runs in two transactions of its own (see the module docs). Inside a caller's
/// transaction both are savepoints of it, one transaction id: then, should a younger
/// transaction have written a seat of the show meanwhile, the sweep answers
/// [`Error::Busy`] rather than write out of the feed's order; call it on a pooled
/// client. Errors: [`Error::ShowNotFound`], [`Error::Busy`] (a lock not had within the
/// lock timeout, or holds locked by others kept appearing; the show is cancelled then,
/// and a repeat finishes the sweep).
#[tracing::instrument(skip_all, fields(show = %id))]
pub async fn cancel<C>(client: &mut C, engine: &Engine, id: ShowId) -> Result<ShowCancellation>
where
    C: GenericClient + Send,
{
    let (at, closed_now) = close(client, engine, id).await?;
    for attempt in 0..ATTEMPTS {
        if let Some(swept) = sweep(client, engine, id, at, closed_now).await? {
            if swept.event.is_some() {
                engine.committed(None);
            }
            let show = get_show(&*client, id).await?;
            return Ok(ShowCancellation {
                show,
                cancelled_now: closed_now,
                holds_released: swept.holds,
                bookings_cancelled: swept.bookings,
                event: swept.event,
            });
        }
        tokio::time::sleep(Duration::from_millis(1 << attempt.min(6))).await;
    }
    Err(Error::Busy(
        "a show cancellation kept meeting holds locked by others",
    ))
}

/// Finishes cancellations that a crash (or a `503`) left between close and sweep:
/// sweeps up to 16 cancelled shows that still have an active hold or a confirmed
/// booking, each as a repeat of [`cancel`] would. Returns how many it swept. The
/// sweeper's loop runs it about once a minute (`sweeper::run`), so such a show's holds
/// and bookings are let go even when nobody repeats the cancellation.
pub async fn finish_cancellations(
    client: &mut deadpool_postgres::Client,
    engine: &Engine,
) -> Result<u64> {
    // Few shows are ever cancelled: a scan of `shows` for them, then two index probes.
    let rows = client
        .cq(
            "SELECT sh.id FROM shows sh
              WHERE sh.cancelled_at IS NOT NULL
                AND (EXISTS (SELECT 1 FROM holds h
                              WHERE h.show_id = sh.id AND h.status = 'active')
                     OR EXISTS (SELECT 1 FROM bookings b
                                 WHERE b.show_id = sh.id AND b.status = 'confirmed'))
              ORDER BY sh.id LIMIT 16",
            &[],
        )
        .await?;
    let mut swept = 0;
    for r in rows {
        let id = ShowId::from_db(r.get("id"));
        cancel(client, engine, id).await?;
        swept += 1;
    }
    Ok(swept)
}

/// Step 1 of the module docs: the show's `cancelled_at`, and whether this call set it.
async fn close<C>(client: &mut C, engine: &Engine, id: ShowId) -> Result<(DateTime<Utc>, bool)>
where
    C: GenericClient + Send,
{
    let show = id.get();
    let tx = client.transaction().await?;
    let lock_timeout = lock_timeout_value(engine.settings());
    let (_, row) = futures_util::future::try_join(
        tx.cexec(SET_SHOW_LOCK_TIMEOUT, &[&lock_timeout, &show]),
        tx.cq_opt(
            "SELECT cancelled_at FROM shows WHERE id = $1 FOR NO KEY UPDATE",
            &[&show],
        ),
    )
    .await?;
    let row = row.ok_or(Error::ShowNotFound)?;
    if let Some(at) = row.get::<_, Option<DateTime<Utc>>>("cancelled_at") {
        tx.commit().await?;
        return Ok((at, false));
    }
    let at: DateTime<Utc> = tx
        .cq_one(
            "UPDATE shows SET cancelled_at = booking_now(id) WHERE id = $1 RETURNING cancelled_at",
            &[&show],
        )
        .await?
        .get(0);
    tx.cq(
        "SELECT id FROM seats WHERE show_id = $1 ORDER BY id FOR UPDATE",
        &[&show],
    )
    .await?;
    // The same values, a new version of every row (see the module docs).
    tx.cexec(
        "UPDATE seats SET hold_id = hold_id WHERE show_id = $1",
        &[&show],
    )
    .await?;
    tx.commit().await?;
    Ok((at, true))
}

/// What a sweep did.
struct Swept {
    holds: u64,
    bookings: u64,
    event: Option<Arc<SeatEvent>>,
}

/// Step 2 of the module docs, for the show cancelled at `at`; `None`: start over. Always
/// writes when `first` (the versions the close moved are published), else only when
/// something is left to release or cancel.
async fn sweep<C>(
    client: &mut C,
    engine: &Engine,
    id: ShowId,
    at: DateTime<Utc>,
    first: bool,
) -> Result<Option<Swept>>
where
    C: GenericClient + Send,
{
    let show = id.get();
    let tx = client.transaction().await?;
    let lock_timeout = lock_timeout_value(engine.settings());
    let (_, holds) = futures_util::future::try_join(
        tx.cexec(SET_SHOW_LOCK_TIMEOUT, &[&lock_timeout, &show]),
        tx.cq(
            "SELECT id FROM holds WHERE show_id = $1 AND status = 'active'
              ORDER BY id FOR NO KEY UPDATE",
            &[&show],
        ),
    )
    .await?;
    let bookings = tx
        .cq(
            "SELECT id FROM bookings WHERE show_id = $1 AND status = 'confirmed'
              ORDER BY id FOR NO KEY UPDATE",
            &[&show],
        )
        .await?;
    if !first && holds.is_empty() && bookings.is_empty() {
        // Swept already; nothing can have been taken since.
        tx.commit().await?;
        return Ok(Some(Swept {
            holds: 0,
            bookings: 0,
            event: None,
        }));
    }
    let fresh = tx
        .cq_one(
            &format!(
                "SELECT coalesce(bool_and({WRITTEN_BEFORE_US}), true) AS fresh
                   FROM (SELECT xmin, show_id FROM seats WHERE show_id = $1 ORDER BY id FOR UPDATE) s"
            ),
            &[&show],
        )
        .await?;
    if !fresh.get::<_, bool>("fresh") {
        // Cannot be after a close (see the module docs); were it, our event would
        // precede a change it follows: start over with a younger transaction.
        return Ok(None);
    }
    for sql in [
        "SELECT id FROM holds WHERE show_id = $1 AND status = 'active' FOR NO KEY UPDATE NOWAIT",
        "SELECT id FROM bookings WHERE show_id = $1 AND status = 'confirmed'
            FOR NO KEY UPDATE NOWAIT",
    ] {
        match tx.cq(sql, &[&show]).await {
            Ok(_) => {}
            Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
    let row = if engine.settings().distributed {
        // Citus runs `o` of CANCEL_SQL apart, after `every` freed the rows (it then
        // read every place as available): the old states are read first, by a
        // statement of their own. Every row is locked already, so they are final.
        let old = tx
            .cq(
                "SELECT id, hold_id, booking_id FROM seats
                  WHERE show_id = $1 AND (hold_id IS NOT NULL OR booking_id IS NOT NULL)",
                &[&show],
            )
            .await?;
        let ids: Vec<i64> = old.iter().map(|r| r.get("id")).collect();
        let holds: Vec<Option<Uuid>> = old.iter().map(|r| r.get("hold_id")).collect();
        let bookings: Vec<Option<Uuid>> = old.iter().map(|r| r.get("booking_id")).collect();
        tx.cq_one(&CANCEL_SQL_GIVEN, &[&show, &at, &ids, &holds, &bookings])
            .await?
    } else {
        tx.cq_one(&CANCEL_SQL, &[&show, &at]).await?
    };
    let event = feed::written_event(&row, id, Cause::ShowCancel)?;
    let swept = Swept {
        holds: row.get::<_, i64>("holds") as u64,
        bookings: row.get::<_, i64>("bookings") as u64,
        event,
    };
    tx.commit().await?;
    Ok(Some(swept))
}

/// The statement of the sweep: `$1` the show, `$2` its `cancelled_at`. `o` reads the
/// seats as they are (a new statement after every lock: all of them final); every seat
/// and place row is rewritten, and the event lists every one with its new state and
/// version, each place with what it was.
static CANCEL_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    cancel_sql(
        "SELECT id, hold_id, booking_id FROM seats
          WHERE show_id = $1 AND (hold_id IS NOT NULL OR booking_id IS NOT NULL)",
    )
});

/// [`CANCEL_SQL`] with the seats' old states given (`$3` ids, `$4` their holds, `$5`
/// their bookings), as the sweep reads them first on Citus.
static CANCEL_SQL_GIVEN: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    cancel_sql(
        "SELECT * FROM unnest($3::bigint[], $4::uuid[], $5::uuid[]) AS g(id, hold_id, booking_id)",
    )
});

/// The sweep's statement, `old` the query of the seats' states before it (`o`).
fn cancel_sql(old: &str) -> String {
    format!(
        "WITH o AS ({old}), hr AS (
             UPDATE holds SET status = 'released', released_at = $2
              WHERE show_id = $1 AND status = 'active'
             RETURNING id
         ), br AS (
             UPDATE bookings SET status = 'cancelled', cancelled_at = $2
              WHERE show_id = $1 AND status = 'confirmed'
             RETURNING id
         ), ended AS (
             UPDATE booking_seats SET live = false, ended_at = $2, ended_by = 'cancel'
              WHERE show_id = $1 AND live AND booking_id IN (SELECT id FROM br)
         ), every AS (
             -- Free ones too: a statement that read the show before we commit must find
             -- each row changed since its snapshot (see the module docs).
             UPDATE seats SET hold_id = NULL, booking_id = NULL WHERE show_id = $1
             RETURNING id, label, xmin, area, block_id
         ), freed AS (
             -- Every row rewritten is listed, free and blocked ones too (their versions
             -- moved): a follower of the feed ends with the table's every seat. A
             -- place's entry says what it was, so its area's counts move by exactly
             -- the held and booked places freed.
             SELECT e.id, e.label, e.xmin, e.area,
                    CASE WHEN e.block_id IS NOT NULL THEN 'blocked' ELSE 'available' END
                        AS state,
                    CASE WHEN e.area IS NULL THEN NULL
                         WHEN o.booking_id IS NOT NULL THEN 'booked'
                         WHEN o.hold_id IS NOT NULL THEN 'held'
                         WHEN e.block_id IS NOT NULL THEN 'blocked'
                         ELSE 'available' END AS was
               FROM every e LEFT JOIN o ON o.id = e.id
         ), {event}
         SELECT (SELECT count(*) FROM hr) AS holds, (SELECT count(*) FROM br) AS bookings,
                {columns}",
        event = feed::EventsSql {
            show: "$1",
            cause: Cause::ShowCancel,
            state: SeatState::Available,
            until: None,
            was: Some("was"),
            from: "freed",
            // Exactly one event, even for a show nobody held.
            per: Some("()"),
        }
        // About no one hold or booking: webhooks find what it ended by the show's
        // cancelled_at.
        .cte_stated_of(&feed::Subject::default()),
        columns = feed::EVENT_COLUMNS,
    )
}
