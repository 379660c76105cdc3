//! The sweeper: marks lapsed holds expired and frees their seats.
//!
//! Lapsed holds already block nobody (see [`crate::holds`]); sweeping makes the stored
//! state match what readers see, and publishes the `expire` changes to the change feed.
//! [`sweep_once`] is one step that tests call directly; [`run`] wraps it in a loop that
//! sleeps until the earliest `expires_at`, wakes early when a hold made through the same
//! [`Engine`] is due sooner (through the engine's memory, not NOTIFY), falls back to a
//! periodic tick, prunes old idempotency keys and feed events (and finishes show
//! cancellations a crash interrupted, `shows::finish_cancellations`) about once a minute, and
//! stops on a cancellation token.
//!
//! Any number of sweepers may run against one database: each claims a batch of due
//! holds with `FOR NO KEY UPDATE SKIP LOCKED`, so they never wait on each other, never
//! process the same hold twice, and never block a confirm in flight (which holds the
//! same lock on its hold and is skipped).
//!
//! On a Citus formation ([`crate::Settings::distributed`]) a locking statement must
//! stay within one show, so the sweeper reads the due holds across shows without locks
//! and then claims and expires them show by show, each show in a transaction of its
//! own on that show's node (`sweeper/by_show.rs`).

use crate::database::Cached;
use crate::database::{lock_timeout_value, SET_LOCK_TIMEOUT};
use crate::domain::{HoldId, ShowId};
use crate::engine::Engine;
use crate::error::Result;
use crate::seats::LAPSED;
use deadpool_postgres::{GenericClient, Pool};
use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

mod by_show;

/// The statement that claims a batch of lapsed holds and marks them expired.
static DUE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE holds t SET status = 'expired'
           FROM (SELECT h.show_id, h.id FROM holds h
                  WHERE {LAPSED}
                  ORDER BY h.expires_at
                  LIMIT $1
                    FOR NO KEY UPDATE SKIP LOCKED) due
          WHERE t.show_id = due.show_id AND t.id = due.id
         RETURNING t.show_id, t.id"
    )
});

/// What one [`sweep_once`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepOutcome {
    /// The holds it marked expired.
    pub expired: Vec<HoldId>,
    /// Seats it freed (seats of these holds that no later hold had taken over).
    pub seats_freed: u64,
}

/// SQL: the `ev` CTE of an expiry, one `expire` event per (show, hold) of the seats in
/// `freed` (`show_id`, `hold_id`, and the seat columns): for both forms of the sweep.
/// `show` is `freed`'s column `show_id` across shows, or the parameter of the one show
/// (which Citus needs to write the events on that show's node alone).
fn expire_events(show: &str) -> String {
    crate::feed::EventsSql {
        show,
        cause: crate::feed::Cause::Expire,
        state: crate::domain::SeatState::Available,
        until: None,
        was: None,
        from: "freed",
        per: Some("show_id, hold_id"),
    }
    .cte_of(&crate::feed::Subject {
        hold: Some("hold_id"),
        ..Default::default()
    })
}

/// Expires up to `batch` lapsed holds in one transaction and frees their seats.
///
/// Holds locked by someone else (a confirm or release in flight, another sweeper) are
/// skipped, not waited for: they are either finished by their owner or picked up by the
/// next sweep.
#[tracing::instrument(skip_all, fields(batch))]
pub async fn sweep_once<C>(client: &mut C, engine: &Engine, batch: i64) -> Result<SweepOutcome>
where
    C: GenericClient + Send,
{
    if engine.settings().distributed {
        return by_show::sweep_once(client, engine, batch).await;
    }
    let lock_timeout = lock_timeout_value(engine.settings());
    let tx = client.transaction().await?;
    // The one cross-show statement here: the queue of deadlines spans all shows.
    let (_, claimed) = futures_util::future::try_join(
        tx.cexec(SET_LOCK_TIMEOUT, &[&lock_timeout]),
        tx.cq(&DUE, &[&batch.max(1)]),
    )
    .await?;
    if claimed.is_empty() {
        tx.commit().await?;
        return Ok(SweepOutcome::default());
    }
    let shows: Vec<i64> = claimed.iter().map(|r| r.get(0)).collect();
    let keys: Vec<Uuid> = claimed.iter().map(|r| r.get(1)).collect();
    // Lock the seats in id order before writing them, like every multi-seat writer, so
    // that a hold taking these seats over cannot deadlock with us.
    tx.cq(
        "SELECT id FROM seats
          WHERE (show_id, hold_id) IN (SELECT * FROM unnest($1::bigint[], $2::uuid[]))
          ORDER BY id FOR UPDATE",
        &[&shows, &keys],
    )
    .await?;
    // Free them and publish one `expire` event per hold that still had seats. The
    // hold comes from the list, not from the seat: RETURNING gives the new row, whose
    // hold_id is NULL (grouping by it made one event of all a show's expired holds).
    let sql = format!(
        "WITH freed AS (
             UPDATE seats s SET hold_id = NULL
               FROM unnest($1::bigint[], $2::uuid[]) AS x(show_id, hold_id)
              WHERE s.show_id = x.show_id AND s.hold_id = x.hold_id
             RETURNING s.show_id, x.hold_id, s.id, s.label, s.xmin, s.area
         ), {events}
         SELECT (SELECT count(*) FROM freed), (SELECT count(*) FROM ev)",
        events = expire_events("show_id"),
    );
    let row = tx.cq_one(&sql, &[&shows, &keys]).await?;
    let freed = row.get::<_, i64>(0) as u64;
    let events: i64 = row.get(1);
    tx.commit().await?;
    if events > 0 {
        engine.committed(None);
    }
    let expired: Vec<HoldId> = shows
        .iter()
        .zip(&keys)
        .map(|(s, k)| HoldId::from_parts(ShowId::from_db(*s), *k))
        .collect();
    tracing::debug!(holds = expired.len(), seats = freed, "expired holds");
    Ok(SweepOutcome {
        expired,
        seats_freed: freed,
    })
}

/// The earliest `expires_at` of an active hold: how long until it (zero if already
/// due) and when it is, in milliseconds since the Unix epoch by the database clock.
pub async fn next_deadline<C: GenericClient>(client: &C) -> Result<Option<(Duration, i64)>> {
    Ok(deadline_and_clock(client).await?.0)
}

/// [`next_deadline`], and the database clock now (epoch ms).
async fn deadline_and_clock<C: GenericClient>(
    client: &C,
) -> Result<(Option<(Duration, i64)>, i64)> {
    let row = client
        .cq_one(
            "SELECT greatest(extract(epoch FROM min(expires_at) - now()), 0)::float8,
                    (extract(epoch FROM min(expires_at)) * 1000)::bigint,
                    (extract(epoch FROM now()) * 1000)::bigint
               FROM holds WHERE status = 'active'",
            &[],
        )
        .await?;
    let secs: Option<f64> = row.get(0);
    let at: Option<i64> = row.get(1);
    Ok((
        secs.zip(at).map(|(s, at)| (Duration::from_secs_f64(s), at)),
        row.get(2),
    ))
}

/// Called with what each sweep expired (for metrics, say).
pub type SweepObserver = Arc<dyn Fn(&SweepOutcome) + Send + Sync>;

/// How [`run`] paces itself.
#[derive(Clone)]
pub struct SweeperOptions {
    /// Holds expired per transaction.
    pub batch: i64,
    /// Longest sleep, whatever the deadlines say: covers holds that other processes
    /// made, due sooner, since the last read of the next deadline.
    pub fallback_tick: Duration,
    /// Idempotency keys older than this are deleted (about once a minute).
    /// `None`: never.
    pub idempotency_retention: Option<Duration>,
    /// Change-feed events older than this are deleted (about once a minute).
    /// `None`: never.
    pub event_retention: Option<Duration>,
    /// Told of every sweep that expired something.
    pub observer: Option<SweepObserver>,
}

impl std::fmt::Debug for SweeperOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SweeperOptions")
            .field("batch", &self.batch)
            .field("fallback_tick", &self.fallback_tick)
            .field("idempotency_retention", &self.idempotency_retention)
            .field("event_retention", &self.event_retention)
            .finish_non_exhaustive()
    }
}

impl Default for SweeperOptions {
    fn default() -> Self {
        SweeperOptions {
            batch: 500,
            fallback_tick: Duration::from_secs(5),
            idempotency_retention: Some(Duration::from_secs(24 * 3600)),
            event_retention: Some(Duration::from_secs(24 * 3600)),
            observer: None,
        }
    }
}

/// Sweeps until `cancel` fires: sleeps until the next deadline, the deadline of a
/// sooner hold made in this process, or the fallback tick, whichever comes first. Database errors are logged and retried
/// after a short pause; they never end the loop.
pub async fn run(engine: Engine, pool: Pool, options: SweeperOptions, cancel: CancellationToken) {
    let hint = engine.sweeper_hint();
    let mut hint_moved = hint.moved();

    let mut last_prune: Option<tokio::time::Instant> = None;
    while !cancel.is_cancelled() {
        if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
            last_prune = Some(tokio::time::Instant::now());
            if let Err(e) = prune(&pool, &options).await {
                tracing::warn!(error = %e, "pruning old idempotency keys or events failed");
            }
            if let Err(e) = finish_cancellations(&pool, &engine).await {
                tracing::warn!(error = %e, "finishing interrupted show cancellations failed");
            }
        }
        hint_moved.borrow_and_update();
        let delay = match step(&pool, &engine, &options).await {
            Ok((deadline, db_now)) => {
                let mut delay = deadline.map_or(options.fallback_tick, |(d, _)| d);
                let at = hint.at().load(Ordering::SeqCst);
                if at <= db_now {
                    // Passed, and swept just now: forget it.
                    let _ = hint.at().compare_exchange(
                        at,
                        i64::MAX,
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                    );
                } else if at != i64::MAX {
                    delay = delay.min(Duration::from_millis((at - db_now) as u64));
                }
                // One millisecond past the deadline, so that `now()` has passed it too.
                (delay + Duration::from_millis(1)).min(options.fallback_tick)
            }
            Err(e) => {
                tracing::warn!(error = %e, "sweep failed; retrying");
                options.fallback_tick.min(Duration::from_secs(1))
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(delay) => {}
            _ = hint_moved.changed() => {}
        }
    }
    tracing::debug!("sweeper stopped");
}

const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Sweeps shows whose cancellation was interrupted ([`crate::shows::finish_cancellations`]).
async fn finish_cancellations(pool: &Pool, engine: &Engine) -> Result<()> {
    let mut client = crate::database::client(pool).await?;
    let n = crate::shows::finish_cancellations(&mut client, engine).await?;
    if n > 0 {
        tracing::info!(shows = n, "finished interrupted show cancellations");
    }
    Ok(())
}

async fn prune(pool: &Pool, options: &SweeperOptions) -> Result<()> {
    let client = crate::database::client(pool).await?;
    if let Some(retention) = options.idempotency_retention {
        let n = crate::idempotency::prune(&client, retention).await?;
        tracing::debug!(keys = n, "pruned idempotency keys");
    }
    if let Some(retention) = options.event_retention {
        let n = crate::feed::prune(&client, retention).await?;
        tracing::debug!(events = n, "pruned change-feed events");
    }
    Ok(())
}

/// Sweeps until nothing is due, then reads the next deadline.
async fn step(
    pool: &Pool,
    engine: &Engine,
    options: &SweeperOptions,
) -> Result<(Option<(Duration, i64)>, i64)> {
    let mut client = crate::database::client(pool).await?;
    loop {
        let outcome = sweep_once(&mut client, engine, options.batch).await?;
        if let Some(observe) = &options.observer {
            if !outcome.expired.is_empty() {
                observe(&outcome);
            }
        }
        if (outcome.expired.len() as i64) < options.batch {
            break;
        }
    }
    deadline_and_clock(&client).await
}
