//! The sweep on a Citus formation: due holds read across shows, then expired show by
//! show.
//!
//! Citus runs a locking statement (`FOR NO KEY UPDATE SKIP LOCKED`) only when it names
//! one show ("could not run distributed query with FOR UPDATE/SHARE commands"), so the
//! one cross-show claim of plain PostgreSQL cannot run there. The cross-show part is a
//! read without locks (Citus runs it on every node and merges by `expires_at`); each
//! show's holds are then claimed, their seats locked and freed, and their `expire`
//! events written in a transaction of that show alone, which Citus's router runs whole
//! on the show's node. The claim re-checks that each hold is still active and lapsed,
//! by that node's clock, and skips the ones locked by a confirm or another sweeper: a
//! hold read as due but confirmed since is left alone, exactly as plain PostgreSQL's
//! claim would never have seen it.
//!
//! Plain PostgreSQL keeps the one-statement claim (`super::DUE`): one transaction per
//! sweep instead of one per show, and the same statements as before.

use super::SweepOutcome;
use crate::database::Cached;
use crate::database::{lock_timeout_value, SET_SHOW_LOCK_TIMEOUT};
use crate::domain::{HoldId, ShowId};
use crate::engine::Engine;
use crate::error::Result;
use crate::seats::LAPSED;
use deadpool_postgres::GenericClient;
use std::sync::LazyLock;
use uuid::Uuid;

/// The due holds of every show, soonest first, read without locks.
static DUE_ACROSS_SHOWS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT h.show_id, h.id FROM holds h
          WHERE {LAPSED}
          ORDER BY h.expires_at
          LIMIT $1"
    )
});

/// Claims the holds `$2` of show `$1` that are still due (by the show's node's clock)
/// and not locked by anyone, and marks them expired.
const CLAIM: &str = "UPDATE holds t SET status = 'expired'
       FROM (SELECT h.show_id, h.id FROM holds h
              WHERE h.show_id = $1 AND h.id = ANY($2::uuid[])
                AND h.status = 'active' AND h.expires_at <= booking_now(h.show_id)
                FOR NO KEY UPDATE SKIP LOCKED) due
      WHERE t.show_id = $1 AND t.show_id = due.show_id AND t.id = due.id
     RETURNING t.id";

/// Frees the seats of show `$1`'s holds `$2` (claimed above) and writes one `expire`
/// event per hold that still had seats.
static FREE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH freed AS (
             UPDATE seats s SET hold_id = NULL
               FROM unnest($2::uuid[]) AS x(hold_id)
              WHERE s.show_id = $1 AND s.hold_id = x.hold_id
             RETURNING s.show_id, x.hold_id, s.id, s.label, s.xmin, s.area
         ), {events}
         SELECT (SELECT count(*) FROM freed), (SELECT count(*) FROM ev)",
        events = super::expire_events("$1"),
    )
});

/// [`super::sweep_once`] on a formation: up to `batch` due holds, one transaction per
/// show.
pub(super) async fn sweep_once<C>(
    client: &mut C,
    engine: &Engine,
    batch: i64,
) -> Result<SweepOutcome>
where
    C: GenericClient + Send,
{
    let due = client.cq(&DUE_ACROSS_SHOWS, &[&batch.max(1)]).await?;
    let mut by_show: Vec<(i64, Vec<Uuid>)> = Vec::new();
    for row in &due {
        let (show, key): (i64, Uuid) = (row.get(0), row.get(1));
        match by_show.iter_mut().find(|(s, _)| *s == show) {
            Some((_, keys)) => keys.push(key),
            None => by_show.push((show, vec![key])),
        }
    }
    let mut outcome = SweepOutcome::default();
    let mut wrote_events = false;
    for (show, keys) in by_show {
        let (expired, freed, events) = expire_show(client, engine, show, &keys).await?;
        wrote_events |= events > 0;
        outcome.seats_freed += freed;
        outcome.expired.extend(
            expired
                .into_iter()
                .map(|k| HoldId::from_parts(ShowId::from_db(show), k)),
        );
    }
    if wrote_events {
        engine.committed(None);
    }
    if !outcome.expired.is_empty() {
        tracing::debug!(
            holds = outcome.expired.len(),
            seats = outcome.seats_freed,
            "expired holds"
        );
    }
    Ok(outcome)
}

/// Expires those of `keys` (holds of `show`) still due, in one transaction of that
/// show: the holds expired, the seats freed, the events written.
async fn expire_show<C>(
    client: &mut C,
    engine: &Engine,
    show: i64,
    keys: &[Uuid],
) -> Result<(Vec<Uuid>, u64, i64)>
where
    C: GenericClient + Send,
{
    let lock_timeout = lock_timeout_value(engine.settings());
    let tx = client.transaction().await?;
    let (_, claimed) = futures_util::future::try_join(
        tx.cexec(SET_SHOW_LOCK_TIMEOUT, &[&lock_timeout, &show]),
        tx.cq(CLAIM, &[&show, &keys]),
    )
    .await?;
    if claimed.is_empty() {
        tx.commit().await?;
        return Ok((Vec::new(), 0, 0));
    }
    let claimed: Vec<Uuid> = claimed.iter().map(|r| r.get(0)).collect();
    // Seats in id order before writing them, as every multi-seat writer locks them.
    tx.cq(
        "SELECT id FROM seats WHERE show_id = $1 AND hold_id = ANY($2::uuid[])
          ORDER BY id FOR UPDATE",
        &[&show, &claimed],
    )
    .await?;
    let row = tx.cq_one(&FREE, &[&show, &claimed]).await?;
    let freed = row.get::<_, i64>(0) as u64;
    let events: i64 = row.get(1);
    tx.commit().await?;
    Ok((claimed, freed, events))
}
