//! The shuffle of a pre-queue and the admitting passes, which every server process
//! runs ([`run`]) and tests call one at a time ([`admit_once`]).
//!
//! Exactly once across processes: a pass over a show holds the `queues` row `FOR
//! UPDATE` from its read of `admitted_through` to its commit, admits positions
//! `admitted_through + 1 ..` in order and moves `admitted_through` past them. A second
//! pass (of any process) waits for that lock, then reads the moved row: it starts
//! where the first stopped, so nobody is admitted twice and nobody is skipped (the
//! positions are consecutive, which the pass checks). A pass that dies mid-way rolls
//! back whole: the next one does its work.
//!
//! The rate is a function of the schedule, not of the passes: entry `p` is admitted at
//! `a(p) = max(a(p-1) + interval, ready(p))` (`interval` = 60 s / `admit_per_minute`,
//! `ready` = `sales_start` for the pre-queue, the join's time after), and a pass
//! admits every entry whose `a(p)` is not after its `now()`, stamping `admitted_at =
//! a(p)`. A slow or restarted loop admits the backlog it finds with the times the
//! schedule gave them, so no rate is lost and none is exceeded: two admissions are
//! always at least `interval` apart. The admission lasts `admission_minutes` from
//! `a(p)` or from the pass, whichever is later, so a late pass never shortens it.

use crate::database::{lock_timeout_value, Cached, SET_SHOW_LOCK_TIMEOUT};
use crate::domain::ShowId;
use crate::engine::Engine;
use crate::error::{Error, Result};
use chrono::{DateTime, Duration as Delta, Utc};
use deadpool_postgres::{GenericClient, Pool};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Most entries one pass admits for one show (a backlog takes several passes).
const MAX_PER_PASS: i64 = 5_000;

/// Most shows one pass looks at.
const MAX_SHOWS: i64 = 100;

/// What one [`admit_once`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdmitOutcome {
    /// Pre-queues it shuffled.
    pub shuffled: u32,
    /// Entries it admitted.
    pub admitted: u64,
    /// How long until the next admission it knows of is due (`None`: none known; a
    /// join may bring one).
    pub next_due: Option<Duration>,
}

/// Gives the pre-queue of `show` its random order, in `tx`, which holds the show's
/// `queues` row `FOR UPDATE` and has seen it unshuffled. Positions 1 to n, a uniform
/// random permutation (`ORDER BY random()`, the database's generator), then joiners
/// from n + 1. Returns n.
pub(crate) async fn shuffle<C: GenericClient>(tx: &C, show: ShowId) -> Result<i64> {
    let n = tx
        .cexec(
            "WITH o AS (
                 SELECT user_id, row_number() OVER (ORDER BY random()) AS p
                   FROM queue_entries WHERE show_id = $1 AND position IS NULL
             )
             UPDATE queue_entries e SET position = o.p
               FROM o WHERE e.show_id = $1 AND e.user_id = o.user_id",
            &[&show.get()],
        )
        .await? as i64;
    tx.cexec(
        "UPDATE queues SET shuffled_at = booking_now(show_id), next_position = $2::bigint + 1 WHERE show_id = $1",
        &[&show.get(), &n],
    )
    .await?;
    tracing::info!(show = %show, entries = n, "pre-queue shuffled");
    Ok(n)
}

/// One admitting pass over every queued show whose sales have started: each show's
/// pre-queue shuffled if nobody has yet, then every entry whose admission time has
/// come admitted, one transaction a show.
#[tracing::instrument(skip_all)]
pub async fn admit_once<C>(client: &mut C, engine: &Engine) -> Result<AdmitOutcome>
where
    C: GenericClient + Send,
{
    let shows = client
        .cq(
            "SELECT q.show_id FROM queues q JOIN shows sh ON sh.id = q.show_id
              WHERE sh.cancelled_at IS NULL AND sh.sales_start <= booking_now(sh.id)
                AND booking_now(sh.id) < coalesce(sh.sales_end, 'infinity')
                AND (q.shuffled_at IS NULL
                     OR EXISTS (SELECT 1 FROM queue_entries e
                                 WHERE e.show_id = q.show_id
                                   AND e.position = q.admitted_through + 1))
              ORDER BY q.show_id LIMIT $1",
            &[&MAX_SHOWS],
        )
        .await?;
    let mut outcome = AdmitOutcome::default();
    for row in shows {
        let show = ShowId::from_db(row.get(0));
        match admit_show(client, engine, show).await {
            Ok(done) => {
                outcome.shuffled += u32::from(done.shuffled);
                outcome.admitted += done.admitted;
                if let Some(d) = done.next_due {
                    outcome.next_due = Some(outcome.next_due.map_or(d, |o| o.min(d)));
                }
            }
            // Another pass holds the queue (a herd of late joins, say): it is theirs
            // now, ours next time.
            Err(Error::Busy(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(outcome)
}

struct ShowPass {
    shuffled: bool,
    admitted: u64,
    next_due: Option<Duration>,
}

async fn admit_show<C>(client: &mut C, engine: &Engine, show: ShowId) -> Result<ShowPass>
where
    C: GenericClient + Send,
{
    let tx = client.transaction().await?;
    tx.cexec(
        SET_SHOW_LOCK_TIMEOUT,
        &[&lock_timeout_value(engine.settings()), &show.get()],
    )
    .await?;
    let Some(q) = tx
        .cq_opt(
            "SELECT q.shuffled_at IS NOT NULL AS shuffled, q.admitted_through,
                    q.last_admitted_at, sh.sales_start, sh.queue_admit_per_minute,
                    sh.queue_admission_minutes, sh.queue_max_seats, booking_now(sh.id) AS now
               FROM queues q JOIN shows sh ON sh.id = q.show_id
              WHERE q.show_id = $1 AND sh.sales_start <= booking_now(sh.id)
                FOR UPDATE OF q",
            &[&show.get()],
        )
        .await?
    else {
        // The queue was removed, or its start moved later, since the list was read.
        return Ok(ShowPass {
            shuffled: false,
            admitted: 0,
            next_due: None,
        });
    };
    let settings = super::settings_of(&q).ok_or(Error::QueueNotEnabled)?;
    let now: DateTime<Utc> = q.get("now");
    let start: DateTime<Utc> = q.get("sales_start");
    let shuffled = !q.get::<_, bool>("shuffled");
    if shuffled {
        shuffle(&tx, show).await?;
    }
    let through: i64 = q.get("admitted_through");
    let mut last: Option<DateTime<Utc>> = q.get("last_admitted_at");
    let interval = Delta::microseconds(settings.interval_micros());
    // At most this many can be due: one an interval since the last admission.
    let room = match last {
        None => {
            (now - start).num_microseconds().unwrap_or(i64::MAX)
                / interval.num_microseconds().unwrap_or(1)
                + 1
        }
        Some(l) => {
            (now - l).num_microseconds().unwrap_or(i64::MAX)
                / interval.num_microseconds().unwrap_or(1)
        }
    }
    .clamp(0, MAX_PER_PASS);
    let waiting = tx
        .cq(
            "SELECT position, early, joined_at FROM queue_entries
              WHERE show_id = $1 AND position > $2 ORDER BY position LIMIT $3",
            &[&show.get(), &through, &(room + 1)],
        )
        .await?;
    let mut positions: Vec<i64> = Vec::new();
    let mut times: Vec<DateTime<Utc>> = Vec::new();
    let mut next_due = None;
    for (i, e) in waiting.iter().enumerate() {
        let position: i64 = e.get("position");
        if position != through + 1 + i as i64 {
            return Err(Error::Invariant(format!(
                "queue of show {show}: position {position} after {}",
                through + i as i64
            )));
        }
        let ready = match e.get::<_, bool>("early") {
            true => start,
            false => e.get("joined_at"),
        };
        let at = match last {
            None => start.max(ready),
            Some(l) => (l + interval).max(ready),
        };
        if at > now || positions.len() as i64 >= room {
            next_due = Some((at - now).to_std().unwrap_or(Duration::ZERO));
            break;
        }
        positions.push(position);
        times.push(at);
        last = Some(at);
    }
    if !positions.is_empty() {
        // Every admission runs from now (each `at` is not after `now`, the node's
        // `now()` of this transaction), so the expiry is computed here: Citus refuses a
        // clock in an UPDATE's arithmetic on columns ("STABLE functions used in UPDATE
        // queries cannot be called with column references").
        let expires = now + Delta::minutes(i64::from(settings.admission_minutes()));
        let n = tx
            .cexec(
                "UPDATE queue_entries e
                    SET admitted_at = x.at, admission_expires_at = $4
                   FROM unnest($2::bigint[], $3::timestamptz[]) AS x(position, at)
                  WHERE e.show_id = $1 AND e.position = x.position AND e.admitted_at IS NULL",
                &[&show.get(), &positions, &times, &expires],
            )
            .await?;
        if n != positions.len() as u64 {
            return Err(Error::Invariant(format!(
                "queue of show {show}: admitted {n} of {}",
                positions.len()
            )));
        }
        tx.cexec(
            "UPDATE queues SET admitted_through = $2, last_admitted_at = $3 WHERE show_id = $1",
            &[&show.get(), &(through + positions.len() as i64), &last],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(ShowPass {
        shuffled,
        admitted: positions.len() as u64,
        next_due,
    })
}

/// The longest an admitting loop sleeps: a join after the queue drained (or a new
/// queue's start) is found within it.
pub const TICK: Duration = Duration::from_millis(250);

/// Runs [`admit_once`] until `cancel`: again when the next admission is due, at most
/// [`TICK`] apart, a second after a failure. One per process; any number of processes
/// may run it on one database.
pub async fn run(engine: Engine, pool: Pool, cancel: CancellationToken) {
    while !cancel.is_cancelled() {
        let pass = async {
            let mut client = crate::database::client(&pool).await?;
            admit_once(&mut client, &engine).await
        };
        let delay = match pass.await {
            Ok(done) => {
                if done.admitted > 0 || done.shuffled > 0 {
                    tracing::debug!(
                        admitted = done.admitted,
                        shuffled = done.shuffled,
                        "admitted"
                    );
                }
                // A millisecond past the due time, so that `now()` has passed it too.
                done.next_due
                    .map_or(TICK, |d| (d + Duration::from_millis(1)).min(TICK))
            }
            Err(e) => {
                tracing::warn!(error = %e, "admitting from queues failed; retrying");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(delay) => {}
        }
    }
    tracing::debug!("queue admitter stopped");
}
