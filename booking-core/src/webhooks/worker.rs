//! The delivery worker: one per process, on a pool of its own, routing and delivering
//! in a loop until stopped.

pub use super::deliver::Outcome;
use super::deliver::{self, HttpClient, Retry};
use super::route;
use crate::database::Cached;
use crate::engine::Engine;
use crate::feed::NodeLinks;
use deadpool_postgres::Pool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// What the worker tells its observer (the server's `/metrics`).
#[derive(Debug, Clone, Copy)]
pub enum Observed {
    /// An attempt ended so.
    Attempt(Outcome),
    /// How many endpoints are failing now (read every few seconds, across processes).
    Failing(u64),
}

/// How the worker delivers. `Default` gives the server's documented defaults.
#[derive(Clone)]
pub struct WorkerOptions {
    /// Longest wait for an endpoint's answer (connecting included). Default: 10 s.
    pub timeout: Duration,
    /// How long a delivery is retried, from its first attempt; then it gives up and its
    /// endpoint is marked failing. Default: 24 h.
    pub retry_window: Duration,
    /// The delay before the first retry, doubled for each next one (then jittered down
    /// to between half and all of it). Default: 2 s.
    pub first_retry: Duration,
    /// The longest delay between retries, before jitter. Default: 1 h.
    pub max_retry_delay: Duration,
    /// Most deliveries in flight at once from this process. Default: 16.
    pub in_flight: usize,
    /// How often to look for new events and due retries when nothing wakes the worker
    /// (this process's own writes do). Default: 250 ms.
    pub tick: Duration,
    /// How long finished (delivered or failed) deliveries are kept and listed; pending
    /// ones are kept until delivered. Default: 7 days.
    pub retention: Duration,
    /// Certificates trusted for `https` endpoints besides the Mozilla roots (a private
    /// CA of the receivers). Default: none.
    pub extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// Called with each attempt's outcome and the count of failing endpoints.
    pub observer: Option<Arc<dyn Fn(Observed) + Send + Sync>>,
    /// On a Citus formation: the coordinator's connection settings, with which the
    /// router keeps a connection of its own to each node to read that node's watermark
    /// (as [`crate::feed::FeedOptions::nodes`]). `None`: Citus's
    /// `run_command_on_all_nodes`, which connects to every node anew each round.
    /// Unused on plain PostgreSQL. Default: `None`.
    pub nodes: Option<tokio_postgres::Config>,
}

impl Default for WorkerOptions {
    fn default() -> WorkerOptions {
        WorkerOptions {
            timeout: Duration::from_secs(10),
            retry_window: Duration::from_secs(24 * 3600),
            first_retry: Duration::from_secs(2),
            max_retry_delay: Duration::from_secs(3600),
            in_flight: 16,
            tick: Duration::from_millis(250),
            retention: Duration::from_secs(7 * 24 * 3600),
            extra_roots: Vec::new(),
            observer: None,
            nodes: None,
        }
    }
}

impl std::fmt::Debug for WorkerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerOptions")
            .field("timeout", &self.timeout)
            .field("retry_window", &self.retry_window)
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}

/// How long a claim is held beyond the attempt's timeout before another process may
/// take the delivery: time to record the outcome.
const LEASE_MARGIN: Duration = Duration::from_secs(5);

/// Shortest gap between two rounds: a busy process's writes wake the worker far more
/// often than it needs to look.
const MIN_GAP: Duration = Duration::from_millis(50);

/// How often the count of failing endpoints is read.
const FAILING_EVERY: Duration = Duration::from_secs(2);

/// How often old deliveries are pruned, and most rows deleted at a time.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
const PRUNE_BATCH: i64 = 5000;

/// Routes and delivers until `stop` fires: then aborts the attempts in flight (their
/// leases run out and they are sent again later, by this process or another) and
/// returns. Database errors are logged and retried at the next tick: the worker never
/// gives up. Runs on `pool` only (two connections are plenty: no connection is held
/// while an endpoint is waited for).
pub async fn run(engine: Engine, pool: Pool, options: WorkerOptions, stop: CancellationToken) {
    let http = match deliver::http_client(options.timeout, &options.extra_roots) {
        Ok(h) => h,
        Err(e) => {
            // A root the TLS library refuses (check_roots catches that at start):
            // nothing to retry.
            tracing::error!(error = %e, "webhooks: no HTTP client; no webhook is delivered");
            return;
        }
    };
    let retry = Retry {
        first: options.first_retry,
        max: options.max_retry_delay,
        window: options.retry_window,
    };
    let lease = options.timeout + LEASE_MARGIN;
    let mut changes = engine.changes();
    let mut running: JoinSet<()> = JoinSet::new();
    let mut last_failing = Instant::now() - FAILING_EVERY;
    let mut last_prune = Instant::now();
    let distributed = engine.settings().distributed;
    let mut router = Router {
        pool: &pool,
        distributed,
        links: distributed
            .then(|| options.nodes.clone().map(NodeLinks::new))
            .flatten(),
    };
    loop {
        let started = Instant::now();
        let found = round(&mut router, &http, &retry, lease, &options, &mut running).await;
        if started.duration_since(last_failing) >= FAILING_EVERY {
            last_failing = started;
            report_failing(&pool, &options).await;
        }
        if started.duration_since(last_prune) >= PRUNE_EVERY {
            last_prune = started;
            prune(&pool, options.retention).await;
        }
        let gap = tokio::time::sleep(MIN_GAP);
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = gap => {}
        }
        if found == Found::More {
            continue;
        }
        let idle = found == Found::Nothing;
        tokio::select! {
            _ = stop.cancelled() => break,
            Some(_) = running.join_next(), if !running.is_empty() => {}
            _ = changes.changed(), if !idle => {}
            _ = tokio::time::sleep(options.tick) => {}
        }
        // Seen or not, a change before now is covered by the next round.
        changes.mark_unchanged();
    }
    running.abort_all();
    while running.join_next().await.is_some() {}
}

/// What a round found.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Found {
    /// There may be more to do at once.
    More,
    /// Work was done or is in flight; wait for a wake-up.
    Some,
    /// No endpoint to route, nothing claimed, nothing in flight: this process's writes
    /// need not wake the worker (it looks again at the next tick).
    Nothing,
}

/// What routing needs: the pool, whether it is a formation, and on one the
/// connections to each node.
struct Router<'a> {
    pool: &'a Pool,
    distributed: bool,
    links: Option<NodeLinks>,
}

/// One round: route, then fill the free slots with due deliveries.
async fn round(
    router: &mut Router<'_>,
    http: &HttpClient,
    retry: &Retry,
    lease: Duration,
    options: &WorkerOptions,
    running: &mut JoinSet<()>,
) -> Found {
    while running.try_join_next().is_some() {}
    let pool = router.pool;
    let routed = match route::route_all(pool, router.distributed, router.links.as_mut()).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "webhooks: routing failed; retrying");
            return Found::Some;
        }
    };
    let free = options.in_flight.saturating_sub(running.len());
    if free == 0 {
        return if routed.more {
            Found::More
        } else {
            Found::Some
        };
    }
    let claimed = match crate::database::client(pool).await {
        Ok(client) => deliver::claim(&client, free as i64, lease).await,
        Err(e) => Err(e),
    };
    let claimed = match claimed {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "webhooks: claiming failed; retrying");
            return Found::Some;
        }
    };
    let full = claimed.len() == free;
    if routed.endpoints == 0 && claimed.is_empty() && running.is_empty() {
        return Found::Nothing;
    }
    for c in claimed {
        let (pool, http, retry, timeout) = (pool.clone(), http.clone(), *retry, options.timeout);
        let observer = options.observer.clone();
        running.spawn(async move {
            let outcome = attempt(&pool, &http, &c, &retry, timeout).await;
            match outcome {
                Ok(o) => {
                    if let Some(f) = &observer {
                        f(Observed::Attempt(o));
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, webhook = %c.webhook, seq = c.seq,
                                   "webhooks: recording an attempt failed; its lease will run out");
                }
            }
        });
    }
    if routed.more || full {
        Found::More
    } else {
        Found::Some
    }
}

async fn attempt(
    pool: &Pool,
    http: &HttpClient,
    c: &deliver::Claimed,
    retry: &Retry,
    timeout: Duration,
) -> crate::Result<Outcome> {
    let result = deliver::send(http, c, timeout).await?;
    let client = crate::database::client(pool).await?;
    let outcome = deliver::record(&client, c, &result, retry).await?;
    tracing::debug!(webhook = %c.webhook, seq = c.seq, ?result, ?outcome, "webhook attempt");
    Ok(outcome)
}

async fn report_failing(pool: &Pool, options: &WorkerOptions) {
    let Some(f) = &options.observer else { return };
    let n = match crate::database::client(pool).await {
        Ok(client) => client
            .cq_one(
                "SELECT count(*) FROM webhooks WHERE failing_since IS NOT NULL",
                &[],
            )
            .await
            .map(|r| r.get::<_, i64>(0)),
        Err(e) => {
            tracing::debug!(error = %e, "webhooks: no connection to count failing endpoints");
            return;
        }
    };
    if let Ok(n) = n {
        f(Observed::Failing(n as u64));
    }
}

/// Parses PEM certificates (a private CA's) for [`WorkerOptions::extra_roots`], and
/// checks that the TLS library takes them: [`crate::Error::Invalid`] on
/// `webhook roots` when the text has no certificate or one is refused.
pub fn parse_roots(pem: &[u8]) -> crate::Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
    use rustls::pki_types::pem::PemObject;
    let bad = |why: String| crate::Error::invalid("webhook roots", why);
    let roots = rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("not PEM certificates: {e}")))?;
    if roots.is_empty() {
        return Err(bad("no certificate in it".into()));
    }
    deliver::http_client(Duration::from_secs(1), &roots)?;
    Ok(roots)
}

async fn prune(pool: &Pool, retention: Duration) {
    let pruned = match crate::database::client(pool).await {
        Ok(client) => super::prune(&client, retention, PRUNE_BATCH).await,
        Err(e) => Err(e),
    };
    match pruned {
        Ok(0) => {}
        Ok(n) => tracing::debug!(deliveries = n, "webhooks: pruned old deliveries"),
        Err(e) => tracing::warn!(error = %e, "webhooks: pruning failed; trying again later"),
    }
}
