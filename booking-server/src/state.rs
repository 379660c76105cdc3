//! What every request shares: the pool, the engine handle, the metrics.

use crate::config::Config;
use crate::http::ApiError;
use crate::metrics::{Metrics, PoolGauges};
use booking_core::deadpool_postgres::{Client, Pool};
use booking_core::feed::{Feed, FeedOptions};
use booking_core::holds::batch::{BatchOptions, Batcher};
use booking_core::{database, CancellationToken, Engine};
use std::time::Duration;

/// Connections of [`AppState::feed_pool`]: the pump, and seat-map reads of two shows
/// at once.
const FEED_POOL_SIZE: usize = 3;

/// Connections of [`AppState::webhook_pool`]: routing and claiming in turn, and the
/// outcomes of deliveries (no connection is held while an endpoint is waited for).
const WEBHOOK_POOL_SIZE: usize = 2;

/// What every request shares, built once by [`crate::prepare`] (or [`AppState::new`]).
pub struct AppState {
    /// The main pool (`POOL_SIZE` connections): every request's database work.
    pub pool: Pool,
    /// A few connections of their own for the feed's pump and seat-map reads: they
    /// must not queue behind a herd of requests for the main pool, since answering
    /// that herd from memory needs them (see `seat_cache`).
    pub feed_pool: Pool,
    /// The engine's settings and shared memory: one per process, given to every
    /// operation.
    pub engine: Engine,
    /// Who is asking (`AUTH_MODE`): `X-User-Id` or a verified JWT, and the admin.
    pub auth: crate::auth::Auth,
    /// `REQUEST_TIMEOUT_MS`: longest time to produce an answer before `503`.
    pub request_timeout: Duration,
    /// This server's counters and histograms, served at `/metrics`.
    pub metrics: Metrics,
    /// Live seat changes, followed by one pump per process.
    pub feed: booking_core::Feed,
    /// Seat maps served from memory while the feed says nothing changed.
    pub seat_cache: std::sync::Arc<crate::seat_cache::SeatCache>,
    /// `GET /shows`, answered from memory for up to a second (see `show_list`).
    pub show_list: crate::show_list::ListCache,
    /// Which shows have a queue, as read within a second (see `queue`).
    pub queue_flags: crate::queue::QueueFlags,
    /// Holds (keyed or not), and adds to holds without a key, written in batches (see
    /// `booking_core::holds::batch`); `None` when HOLD_BATCHES is 0.
    pub holds: Option<Batcher>,
    /// Fires when the server shuts down: ends event streams, the feed, its LISTEN
    /// connection and the hold batches (the sweeper has a token of its own: it works
    /// on while requests drain).
    pub shutdown: CancellationToken,
    /// The webhook worker's own connections: a slow endpoint or a backlog of
    /// deliveries never takes one from requests.
    pub webhook_pool: Pool,
    /// The webhook worker's options (`WEBHOOK_*`).
    pub webhook_options: booking_core::webhooks::worker::WorkerOptions,
    /// The limits per caller (`RATE_HOLDS_PER_USER`, `RATE_HOLDS_PER_IP`), this
    /// process's own; see `rate_limit`.
    pub rate_limits: crate::rate_limit::RateLimits,
    /// The origins allowed to call from a browser (`CORS_ORIGINS`).
    pub cors: crate::cors::Cors,
}

impl AppState {
    /// The connection pool of `config` (no connection is opened yet).
    pub fn pool(config: &Config) -> Result<Pool, booking_core::Error> {
        Self::pool_of(config, config.pool_size())
    }

    fn pool_of(config: &Config, max_size: usize) -> Result<Pool, booking_core::Error> {
        let pg = database::parse_url(&config.database_url)?;
        Self::pool_on(config, pg, max_size)
    }

    fn pool_on(
        config: &Config,
        pg: booking_core::tokio_postgres::Config,
        max_size: usize,
    ) -> Result<Pool, booking_core::Error> {
        database::pool(
            pg.clone(),
            &database::PoolOptions {
                max_size,
                wait: Duration::from_millis(config.pool_wait_ms),
                // Opening a connection is bounded by the same wait: a database that is
                // down must not hold a request longer than the pool would.
                connect: Duration::from_millis(config.pool_wait_ms.max(500)),
                lock_timeout: Duration::from_millis(config.lock_timeout_ms),
            },
        )
    }

    /// The state over `pool` (of a migrated database); starts following the feed.
    pub async fn new(config: &Config, pool: Pool) -> Result<AppState, booking_core::Error> {
        let pg = database::parse_url(&config.database_url)?;
        let shutdown = CancellationToken::new();
        let mut settings = config.settings();
        settings.distributed = database::is_distributed(&database::client(&pool).await?).await?;
        let engine = Engine::new(settings);
        let mut listen = pg.clone();
        listen.application_name("booking-listen");
        let listener = booking_core::Listener::start(&engine, listen, shutdown.child_token());
        let feed_pool = Self::pool_of(config, FEED_POOL_SIZE)?;
        let feed = Feed::start(
            &engine,
            feed_pool.clone(),
            FeedOptions {
                listen: Some(listener),
                // On Citus the pump reads each node's watermark over a connection of
                // its own to that node.
                nodes: engine.settings().distributed.then(|| pg.clone()),
                ..FeedOptions::default()
            },
            shutdown.child_token(),
        )
        .await?;
        let holds = (config.hold_batches > 0).then(|| {
            Batcher::start(
                engine.clone(),
                pool.clone(),
                BatchOptions {
                    in_flight: usize::from(config.hold_batches),
                    // Waiting in the queue counts as waiting for a connection.
                    max_wait: Duration::from_millis(config.pool_wait_ms),
                    ..BatchOptions::default()
                },
                shutdown.child_token(),
            )
        });
        let mut webhook_pg = database::parse_url(&config.database_url)?;
        webhook_pg.application_name("booking-webhooks");
        let webhook_pool = Self::pool_on(config, webhook_pg, WEBHOOK_POOL_SIZE)?;
        Ok(AppState {
            webhook_pool,
            webhook_options: booking_core::webhooks::worker::WorkerOptions {
                // On Citus the router, as the pump, reads each node's watermark over a
                // connection of its own to that node.
                nodes: engine.settings().distributed.then(|| pg.clone()),
                ..config
                    .webhook_options()
                    .map_err(|reason| booking_core::Error::Invalid {
                        field: "WEBHOOK_CA_FILE".into(),
                        reason,
                    })?
            },
            rate_limits: config.rate_limits(crate::rate_limit::Clock::system()),
            cors: config
                .cors()
                .map_err(|reason| booking_core::Error::Invalid {
                    field: "CORS_ORIGINS".into(),
                    reason,
                })?,
            holds,
            seat_cache: std::sync::Arc::new(crate::seat_cache::SeatCache::new(engine.clone())),
            show_list: Default::default(),
            queue_flags: Default::default(),
            feed,
            shutdown,
            pool,
            feed_pool,
            engine,
            auth: crate::auth::Auth::from_config(config).map_err(|reason| {
                booking_core::Error::Invalid {
                    field: "AUTH_MODE".into(),
                    reason,
                }
            })?,
            request_timeout: config.request_timeout(),
            metrics: Metrics::default(),
        })
    }

    /// A pooled connection, or 503 when none frees up within POOL_WAIT_MS.
    pub async fn client(&self) -> Result<Client, ApiError> {
        Ok(database::client(&self.pool).await?)
    }

    /// The main pool's connections now, for `/metrics`.
    pub fn pool_gauges(&self) -> PoolGauges {
        let s = self.pool.status();
        PoolGauges {
            size: s.size,
            max_size: s.max_size,
            available: s.available,
            waiting: s.waiting,
        }
    }
}
