//! Connecting, pooling and migrating: the engine's only state is PostgreSQL.

use crate::error::{Error, Result};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use std::time::Duration;
use tokio_postgres::NoTls;

mod embedded {
    refinery::embed_migrations!("../migrations");
}

/// Arbitrary, fixed key of the advisory lock that serialises migrations, so that
/// several servers starting at once do not run the same migration twice.
const MIGRATION_LOCK_KEY: i64 = 0x626f_6f6b_696e_6701;

/// How the engine behaves: limits and time bounds. `Default` gives the documented
/// defaults of the server's configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Longest wait for a row lock before an operation gives up with [`Error::Busy`]
    /// (whole milliseconds, at least 1); also how long best available keeps trying
    /// groups that others are taking. Default: 2 s.
    pub lock_timeout: Duration,
    /// Hold lifetime when the caller names none. Default: 600 s.
    pub default_ttl: crate::HoldTtl,
    /// No hold lives longer than this from its creation, however often extended
    /// (whole seconds): a new hold asking for more is refused ([`Settings::hold_ttl`]),
    /// an extend past it is [`Error::HoldLimitReached`]. Default: 3600 s.
    pub max_hold: Duration,
    /// Most seats one hold may take: the `max` to parse a [`crate::SeatSelection`] or
    /// a [`crate::SeatCount`] with (the operations themselves do not check it).
    /// Default: 10.
    pub max_seats_per_hold: usize,
    /// The database is a Citus formation whose migrations distributed the schema by
    /// show ([`is_distributed`]): the few paths that Citus cannot run as one statement
    /// on one node take their multi-statement form. Default: `false` (plain
    /// PostgreSQL). See DESIGN.md "Scaling past one machine".
    pub distributed: bool,
}

impl Settings {
    /// The lifetime of a new hold that asked for `asked` ([`Settings::default_ttl`]
    /// when it named none): [`Error::Invalid`] on `ttl_seconds` when it asks for more
    /// than [`Settings::max_hold`]. Every path that makes a hold asks this first.
    pub fn hold_ttl(&self, asked: Option<crate::HoldTtl>) -> Result<crate::HoldTtl> {
        let ttl = asked.unwrap_or(self.default_ttl);
        if u64::from(ttl.secs()) > self.max_hold.as_secs() {
            return Err(Error::invalid(
                "ttl_seconds",
                format!(
                    "a hold lives at most {} seconds from its creation (MAX_HOLD_SECONDS)",
                    self.max_hold.as_secs()
                ),
            ));
        }
        Ok(ttl)
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            lock_timeout: Duration::from_millis(2000),
            default_ttl: crate::HoldTtl::from_secs(600).expect("600 s is a valid ttl"),
            max_hold: Duration::from_secs(3600),
            max_seats_per_hold: 10,
            distributed: false,
        }
    }
}

/// How to size and bound the connection pool.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Most connections open at once (at least 1). Default: 4 per available CPU.
    pub max_size: usize,
    /// Longest wait for a free connection before [`Error::Busy`]. Default: 2 s.
    pub wait: Duration,
    /// Longest wait to open a new connection (also the bound on recycling one).
    /// Default: 5 s.
    pub connect: Duration,
    /// Every connection's `lock_timeout`: bounds row-lock waits of statements that run
    /// outside an explicit transaction ([`crate::holds::hold_pooled`]); operations in a
    /// transaction set their own from [`Settings::lock_timeout`]. Default: 2 s.
    pub lock_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        PoolOptions {
            max_size: 4 * cores,
            wait: Duration::from_millis(2000),
            connect: Duration::from_secs(5),
            lock_timeout: Duration::from_millis(2000),
        }
    }
}

/// Parses a libpq-style URL or key=value string (multi-host allowed).
pub fn parse_url(url: &str) -> Result<tokio_postgres::Config> {
    url.parse::<tokio_postgres::Config>()
        .map_err(|e| Error::invalid("database_url", e.to_string()))
}

/// A pool of connections to `config`. No connection is opened until one is needed.
pub fn pool(config: tokio_postgres::Config, options: &PoolOptions) -> Result<Pool> {
    let mut config = config;
    if config.get_application_name().is_none() {
        config.application_name("booking");
    }
    config.connect_timeout(options.connect);
    // A database host that vanishes (power loss, partition) sends no reset: without
    // these a connection would wait on it for the kernel's two hours. Keepalives find an
    // idle one dead in about 11 s; the user timeout drops one whose sent data goes
    // unacknowledged for 10 s (a query in flight). Unless the URL chose otherwise.
    if config.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
        config.keepalives_idle(Duration::from_secs(5));
        config.keepalives_interval(Duration::from_secs(2));
        config.keepalives_retries(3);
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(Duration::from_secs(10));
    }
    // Generic plans: every statement here is prepared once per connection and keeps
    // the same shape of plan whatever its parameters (index lookups by show and seat
    // ids). Left to choose, PostgreSQL planned the hold statement afresh on every call
    // (its array parameters make a generic plan look dearer than a custom one), which
    // took more time than running it: 0.32 ms of planning against 0.35 ms of execution.
    // No statement compares a parameter with a partial index's predicate, the one case
    // where a generic plan could lose an index.
    //
    // No JIT: every statement here is a short lookup, and JIT compiling one costs far
    // more than running it. Measured: once `GET /shows` grew a ticket-type column, its
    // estimate passed `jit_above_cost` in a database of 70 shows, and each read spent
    // 280-850 ms compiling (auto_explain) for a query that runs in about 140 ms.
    //
    // On Citus, custom plans: it cannot plan an INSERT ... SELECT with parameters
    // generically ("could not create distributed plan"), and plans every statement
    // for the node it routes to anyway. Set once per new connection (`session_settings`).
    let session = format!(
        "-c lock_timeout={}ms -c jit=off",
        options.lock_timeout.as_millis().max(1)
    );
    let options_text = match config.get_options() {
        Some(existing) => format!("{existing} {session}"),
        None => session,
    };
    config.options(&options_text);
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            // Fast: a connection that died shows as closed; a failed query is retried
            // by the caller, not hidden by a test query on every checkout.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let settings: std::sync::Arc<str> = session_settings(options.connect).into();
    Pool::builder(manager)
        .post_create(deadpool_postgres::Hook::async_fn(move |client, _| {
            let settings = settings.clone();
            Box::pin(async move {
                client
                    .batch_execute(&settings)
                    .await
                    .map_err(deadpool_postgres::HookError::Backend)
            })
        }))
        .max_size(options.max_size.max(1))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(options.wait))
        .create_timeout(Some(options.connect))
        .recycle_timeout(Some(options.connect))
        .build()
        .map_err(|e| Error::Pool(e.to_string()))
}

/// Set on every new pooled connection (see [`pool`]): generic plans on plain
/// PostgreSQL, custom ones on Citus; on Citus also `citus.propagate_set_commands =
/// 'local'`, so that the `SET LOCAL` of [`SET_LOCK_TIMEOUT`] reaches the workers.
///
/// And on Citus, `citus.node_connection_timeout` = `connect`: the bound this pool puts
/// on opening a connection also bounds the coordinator opening one to a worker. Left
/// at Citus's 30 s, a worker that stopped accepting without refusing (its postmaster
/// lingering in an immediate shutdown: 60 s, twice in `scripts/faults.sh citus`) held
/// each statement for its show 30 s after the request had been answered `503`; the
/// pool filled with those, and the other worker's shows answered `503` too.
///
/// And on Citus, `citus.max_adaptive_executor_pool_size` = 1: a statement across shows
/// (the queue admitter's pass, the feed pump's read of every shard, `GET /shows`, the
/// sweeper's due holds) runs its shards' tasks over the one connection per worker this
/// session keeps. At Citus's 16 the executor opens more whenever tasks are still queued
/// after its 10 ms slow start (under load), and closes them after the transaction (one
/// is kept per worker, `citus.max_cached_conns_per_worker`), each a fork, a TLS
/// handshake and Citus's start-up on the worker. Measured on the dev formation: 10 s of
/// HTTP holds at c=32 on 16 shows made some 780 new sessions on each worker
/// (`pg_stat_database.sessions`); the `gpid` of those connections (`log_connections`)
/// named the backends running the admitter's pass. With 1: 10 a worker, and 135 holds
/// a second instead of 85 (`tests/it/worker_connections.rs`).
fn session_settings(connect: Duration) -> String {
    format!(
        "WITH c AS (SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') AS citus)
    SELECT set_config('plan_cache_mode',
                      CASE WHEN citus THEN 'force_custom_plan' ELSE 'force_generic_plan' END,
                      false),
           CASE WHEN citus THEN set_config('citus.propagate_set_commands', 'local', false) END,
           CASE WHEN citus THEN set_config('citus.all_modifications_commutative', 'on', false) END,
           CASE WHEN citus THEN set_config('citus.node_connection_timeout', '{}ms', false) END,
           CASE WHEN citus THEN set_config('citus.max_adaptive_executor_pool_size', '1', false) END
      FROM c",
        connect.as_millis().clamp(10, 3_600_000)
    )
}

/// A connection from the pool; a pool that stays full past its wait gives [`Error::Busy`].
pub async fn client(pool: &Pool) -> Result<deadpool_postgres::Client> {
    Ok(pool.get().await?)
}

/// Applies the embedded migrations that have not run yet. Safe to call from several
/// processes at once: they take turns on an advisory lock.
pub async fn migrate(client: &mut tokio_postgres::Client) -> Result<()> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await?;
    let outcome = embedded::migrations::runner()
        .set_abort_divergent(true)
        .run_async(client)
        .await;
    let unlock = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])
        .await;
    let report = outcome?;
    unlock?;
    for m in report.applied_migrations() {
        tracing::info!(version = m.version(), name = m.name(), "applied migration");
    }
    Ok(())
}

/// `true` when the database is a Citus coordinator whose `shows` are distributed (the
/// migration V13 does that wherever the `citus` extension is installed): what
/// [`Settings::distributed`] should say.
pub async fn is_distributed<C: deadpool_postgres::GenericClient>(client: &C) -> Result<bool> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')
                    AND to_regclass('pg_dist_partition') IS NOT NULL",
            &[],
        )
        .await?;
    if !row.get::<_, bool>(0) {
        return Ok(false);
    }
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_dist_partition
                             WHERE logicalrelid = 'shows'::regclass)",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

/// [`migrate`] on a connection taken from `pool`.
pub async fn migrate_pool(pool: &Pool) -> Result<()> {
    let mut client = client(pool).await?;
    let inner: &mut tokio_postgres::Client = &mut client;
    migrate(inner).await
}

/// Bounds row-lock waits for the rest of the current transaction.
///
/// Set per transaction rather than per connection so that it holds inside a caller's
/// own transaction on a connection we did not configure.
/// `booking_lock_timeout` (migration V15) is `set_config('lock_timeout', $1, true)` on
/// plain PostgreSQL, and a `SET LOCAL` on Citus, which also reaches the show's worker
/// where the waits happen.
pub(crate) const SET_LOCK_TIMEOUT: &str = "SELECT booking_lock_timeout($1)";

/// [`SET_LOCK_TIMEOUT`] at the start of a transaction of the show `$2`. On Citus it also
/// takes the show's shard group's metadata lock in share mode (`booking_lock_timeout`
/// of V18), which a shard move (`block_writes`) needs exclusively: a move then waits
/// for the transactions already running on the show, and they never see their rows
/// change node between two statements (tried: a hold that locked its seat before a
/// move and wrote it after found the row at another version on the new node, and
/// failed). Citus takes that lock only for writing statements, not for `SELECT ... FOR
/// UPDATE`, so a transaction that locks before it writes must ask for it. On plain
/// PostgreSQL the same as [`SET_LOCK_TIMEOUT`].
pub(crate) const SET_SHOW_LOCK_TIMEOUT: &str = "SELECT booking_lock_timeout($1, $2::bigint)";

pub(crate) fn lock_timeout_value(settings: &Settings) -> String {
    format!("{}ms", settings.lock_timeout.as_millis().max(1))
}

/// Statements through the connection's statement cache: parsed and planned once per
/// connection, then only bound and executed (one round trip, not two).
pub(crate) trait Cached: deadpool_postgres::GenericClient {
    fn cq<'a>(
        &'a self,
        sql: &'a str,
        params: &'a [&'a (dyn tokio_postgres::types::ToSql + Sync)],
    ) -> impl std::future::Future<
        Output = std::result::Result<Vec<tokio_postgres::Row>, tokio_postgres::Error>,
    > + Send
           + 'a
    where
        Self: Sized,
    {
        async move {
            let statement = self.prepare_cached(sql).await?;
            self.query(&statement, params).await
        }
    }

    fn cq_one<'a>(
        &'a self,
        sql: &'a str,
        params: &'a [&'a (dyn tokio_postgres::types::ToSql + Sync)],
    ) -> impl std::future::Future<
        Output = std::result::Result<tokio_postgres::Row, tokio_postgres::Error>,
    > + Send
           + 'a
    where
        Self: Sized,
    {
        async move {
            let statement = self.prepare_cached(sql).await?;
            self.query_one(&statement, params).await
        }
    }

    fn cq_opt<'a>(
        &'a self,
        sql: &'a str,
        params: &'a [&'a (dyn tokio_postgres::types::ToSql + Sync)],
    ) -> impl std::future::Future<
        Output = std::result::Result<Option<tokio_postgres::Row>, tokio_postgres::Error>,
    > + Send
           + 'a
    where
        Self: Sized,
    {
        async move {
            let statement = self.prepare_cached(sql).await?;
            self.query_opt(&statement, params).await
        }
    }

    fn cexec<'a>(
        &'a self,
        sql: &'a str,
        params: &'a [&'a (dyn tokio_postgres::types::ToSql + Sync)],
    ) -> impl std::future::Future<Output = std::result::Result<u64, tokio_postgres::Error>> + Send + 'a
    where
        Self: Sized,
    {
        async move {
            let statement = self.prepare_cached(sql).await?;
            self.execute(&statement, params).await
        }
    }
}

impl<C: deadpool_postgres::GenericClient> Cached for C {}
