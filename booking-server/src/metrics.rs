//! Prometheus metrics, served in the text exposition format (0.0.4) by
//! `prometheus-client`: its registry, counters and histograms, its encoder (escaping,
//! `_total` suffixes, cumulative buckets). Series names, labels and bucket bounds are
//! part of the contract: `scripts/faults/overload.py` and `booking-bench` read them.

use booking_core::holds::batch::BatchCounts;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::time::Duration;

/// The `Content-Type` of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The labels of the request series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    status: u16,
}

type Requests<M> = Family<RequestLabels, M, fn() -> M>;

/// Counters and histograms of one server (held in its `AppState`: two servers in one
/// process count apart).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Requests<Counter>,
    durations: Requests<Histogram>,
    /// `booking_holds_total`: holds created, best available's included (replays not).
    pub holds: Counter,
    /// `booking_best_holds_total`: holds made by best available.
    pub best_holds: Counter,
    /// `booking_best_lock_attempts_total`: seat groups best available locked (`FOR
    /// UPDATE SKIP LOCKED`) for those holds.
    pub best_lock_attempts: Counter,
    /// `booking_best_reads_total`: reads of the whole house best available made for
    /// those holds.
    pub best_reads: Counter,
    /// `booking_confirms_total`: holds confirmed into bookings (first confirms only).
    pub confirms: Counter,
    /// `booking_late_confirms_total`: confirms that booked an expired hold
    /// (`allow_late`), also counted in `booking_confirms_total`.
    pub late_confirms: Counter,
    /// `booking_ticket_changes_total`: changes of a hold's ticket types answered `200`
    /// (`POST /holds/{id}/tickets`; replays under an `Idempotency-Key` not).
    pub ticket_changes: Counter,
    /// `booking_releases_total`: releases answered `204`, repeats of a release included.
    pub releases: Counter,
    /// `booking_cancels_total`: cancels of a whole booking answered `200`, repeats of a
    /// cancel included (replays under an `Idempotency-Key` not).
    pub cancels: Counter,
    /// `booking_hold_adds_total`: adds to holds answered `200` (replays under an
    /// `Idempotency-Key` not counted, as below).
    pub hold_adds: Counter,
    /// `booking_hold_removes_total`: removes from holds answered `200`.
    pub hold_removes: Counter,
    /// `booking_partial_cancels_total`: cancels of some of a booking's seats and places
    /// answered `200` (not in `booking_cancels_total`, also when nothing was left).
    pub partial_cancels: Counter,
    /// `booking_exchanges_total`: exchanges of a booking's seats answered `200`.
    pub exchanges: Counter,
    /// `booking_expiries_total`: holds expired by this process's sweeper.
    pub expiries: Counter,
    /// `booking_blocks_total`: blocks created (`201`, replays not counted).
    pub blocks: Counter,
    /// `booking_unblocks_total`: blocks deleted (`204`).
    pub unblocks: Counter,
    /// `booking_user_limit_refusals_total`: holds, adds to holds and exchanges refused
    /// `409 user_limit_reached`.
    pub user_limit_refusals: Counter,
    /// `booking_queue_joins_total`: first joins of a show's queue (`201`).
    pub queue_joins: Counter,
    /// `booking_queue_refusals_total`: holds, adds and best available of a queued show
    /// refused before any seat was looked at (`403 not_admitted`, `409
    /// admission_expired`).
    pub queue_refusals: Counter,
    /// `booking_lock_timeouts_total`: row-lock waits that ran out (LOCK_TIMEOUT_MS):
    /// counted where an answer is sent, from [`crate::http::Reply::lock_timeout`].
    pub lock_timeouts: Counter,
    /// `booking_unavailable_total`: every answer with status 503.
    pub unavailable: Counter,
    /// `booking_not_on_sale_total`: requests answered `409 not_on_sale` (outside a
    /// show's sales window).
    pub not_on_sale: Counter,
    /// `booking_show_cancels_total`: shows cancelled by this process (repeats not).
    pub show_cancels: Counter,
    /// Webhook attempts and failing endpoints.
    pub webhooks: WebhookMetrics,
    /// Requests refused by the limits per caller, and their buckets.
    pub rate_limits: RateLimitMetrics,
}

/// What the pool says right now.
pub struct PoolGauges {
    /// Open connections: `booking_pool_connections`.
    pub size: usize,
    /// Most connections the pool may open: `booking_pool_max_connections`.
    pub max_size: usize,
    /// Open connections that are idle (`booking_pool_in_use` is `size` minus these).
    pub available: usize,
    /// Requests waiting for a connection: `booking_pool_waiting`.
    pub waiting: usize,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests: Requests<Counter> = Family::new_with_constructor(Counter::default);
        let durations: Requests<Histogram> =
            Family::new_with_constructor(|| Histogram::new(BUCKETS));
        // Names without `_total`, help without its final full stop: the registry
        // appends both.
        registry.register(
            "booking_http_requests",
            "HTTP requests answered, by route and status",
            requests.clone(),
        );
        registry.register(
            "booking_http_request_duration_seconds",
            "Time to answer, by route and status",
            durations.clone(),
        );
        let mut counter = |name: &str, help: &str| {
            let c = Counter::default();
            registry.register(name, help, c.clone());
            c
        };
        let holds = counter("booking_holds", "Holds created");
        let best_holds = counter(
            "booking_best_holds",
            "Holds made by best available (also counted in booking_holds_total)",
        );
        let best_lock_attempts = counter(
            "booking_best_lock_attempts",
            "Seat groups best available locked (FOR UPDATE SKIP LOCKED) for those holds",
        );
        let best_reads = counter(
            "booking_best_reads",
            "Reads of the whole house (one statement each) best available made for those holds",
        );
        let confirms = counter("booking_confirms", "Holds confirmed into bookings");
        let late_confirms = counter(
            "booking_late_confirms",
            "Expired holds booked by a confirm with allow_late (also in booking_confirms_total)",
        );
        let ticket_changes = counter(
            "booking_ticket_changes",
            "Changes of the ticket types of live holds",
        );
        let releases = counter("booking_releases", "Holds released by their owner");
        let cancels = counter("booking_cancels", "Bookings cancelled");
        let hold_adds = counter("booking_hold_adds", "Seats and places added to live holds");
        let hold_removes = counter(
            "booking_hold_removes",
            "Seats and places removed from live holds",
        );
        let partial_cancels = counter(
            "booking_partial_cancels",
            "Cancels of some of a booking's seats and places (not in booking_cancels_total)",
        );
        let exchanges = counter(
            "booking_exchanges",
            "Bookings whose seats were exchanged for others",
        );
        let expiries = counter(
            "booking_expiries",
            "Holds expired by this process's sweeper",
        );
        let blocks = counter("booking_blocks", "Blocks created (seats taken off sale)");
        let unblocks = counter("booking_unblocks", "Blocks deleted (seats back on sale)");
        let user_limit_refusals = counter(
            "booking_user_limit_refusals",
            "Holds, adds and exchanges refused because the user would pass the show's max_seats_per_user",
        );
        let queue_joins = counter("booking_queue_joins", "First joins of a show's queue");
        let queue_refusals = counter(
            "booking_queue_refusals",
            "Holds, adds and best available of a queued show refused for want of an admission",
        );
        let lock_timeouts = counter(
            "booking_lock_timeouts",
            "Row-lock waits that ran past LOCK_TIMEOUT_MS (answered 503)",
        );
        let unavailable = counter(
            "booking_unavailable",
            "Requests answered 503 (lock wait, pool wait or database down)",
        );
        let not_on_sale = counter(
            "booking_not_on_sale",
            "Requests refused 409 not_on_sale: outside the show's sales window",
        );
        let show_cancels = counter(
            "booking_show_cancels",
            "Shows cancelled (repeats of a cancellation not counted)",
        );
        let webhooks = WebhookMetrics::register(&mut registry);
        let rate_limits = RateLimitMetrics::register(&mut registry);
        Metrics {
            webhooks,
            rate_limits,
            registry,
            requests,
            durations,
            holds,
            best_holds,
            best_lock_attempts,
            best_reads,
            confirms,
            late_confirms,
            ticket_changes,
            releases,
            cancels,
            hold_adds,
            hold_removes,
            partial_cancels,
            exchanges,
            expiries,
            blocks,
            unblocks,
            user_limit_refusals,
            queue_joins,
            queue_refusals,
            lock_timeouts,
            unavailable,
            not_on_sale,
            show_cancels,
        }
    }
}

impl Metrics {
    /// Counts one answered request and its latency.
    pub fn observe(&self, route: &'static str, status: u16, latency: Duration) {
        let labels = RequestLabels { route, status };
        self.requests.get_or_create(&labels).inc();
        self.durations
            .get_or_create(&labels)
            .observe(latency.as_secs_f64());
    }

    /// Every series in the text format. The pool's gauges and the batcher's counts are
    /// kept by their owners and read for each scrape, as constant series.
    pub fn render(&self, pool: &PoolGauges, batches: Option<BatchCounts>) -> String {
        let b = batches.unwrap_or_default();
        let mut sampled = Registry::default();
        for (name, help, value) in [
            (
                "booking_hold_batches",
                "Statements that wrote holds (or adds to holds) of several requests at once (HOLD_BATCHES)",
                b.batches,
            ),
            (
                "booking_hold_batch_requests",
                "Hold and add requests those statements carried (over batches: the mean batch size)",
                b.requests,
            ),
            (
                "booking_hold_batch_decided_alone",
                "Batched hold and add requests their batch could not decide, decided alone after it",
                b.decided_alone,
            ),
            (
                "booking_hold_batch_failures",
                "Hold batches that failed; their requests were retried one by one",
                b.failed,
            ),
            (
                "booking_hold_batch_refused_from_memory",
                "Batched holds refused without the database: seats or areas a snapshot read while they waited showed taken",
                b.refused_from_memory,
            ),
        ] {
            sampled.register(name, help, ConstCounter::new(value));
        }
        for (name, help, value) in [
            (
                "booking_pool_connections",
                "Open database connections in the pool",
                pool.size,
            ),
            (
                "booking_pool_max_connections",
                "Most connections the pool may open",
                pool.max_size,
            ),
            (
                "booking_pool_in_use",
                "Pooled connections serving a request",
                pool.size.saturating_sub(pool.available),
            ),
            (
                "booking_pool_waiting",
                "Requests waiting for a pooled connection",
                pool.waiting,
            ),
        ] {
            let value = i64::try_from(value).unwrap_or(i64::MAX);
            sampled.register(name, help, ConstGauge::new(value));
        }
        let mut out = String::new();
        // Writing to a String cannot fail, nor can our values be refused.
        let _ = prometheus_text::encode(&mut out, &self.registry);
        let _ = prometheus_text::encode(&mut out, &sampled);
        out
    }
}

/// The labels of `booking_webhook_deliveries_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptLabels {
    result: &'static str,
}

/// The webhook worker's series.
#[derive(Debug)]
pub struct WebhookMetrics {
    attempts: Family<AttemptLabels, Counter>,
    failing: prometheus_client::metrics::gauge::Gauge,
}

impl WebhookMetrics {
    fn register(registry: &mut Registry) -> WebhookMetrics {
        let attempts = Family::<AttemptLabels, Counter>::default();
        registry.register(
            "booking_webhook_deliveries",
            "Webhook delivery attempts of this process, by result (delivered, retrying, gave_up, lease_lost)",
            attempts.clone(),
        );
        let failing = prometheus_client::metrics::gauge::Gauge::default();
        registry.register(
            "booking_webhooks_failing",
            "Webhook endpoints marked failing (a delivery gave up), read every few seconds",
            failing.clone(),
        );
        WebhookMetrics { attempts, failing }
    }

    /// Counts what the worker observed.
    pub fn observe(&self, seen: booking_core::webhooks::worker::Observed) {
        use booking_core::webhooks::worker::{Observed, Outcome};
        match seen {
            Observed::Attempt(outcome) => {
                let result = match outcome {
                    Outcome::Delivered => "delivered",
                    Outcome::Retrying => "retrying",
                    Outcome::GaveUp => "gave_up",
                    Outcome::LeaseLost => "lease_lost",
                };
                self.attempts.get_or_create(&AttemptLabels { result }).inc();
            }
            Observed::Failing(n) => {
                self.failing.set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
    }
}

/// The labels of the rate-limit series: `limit="user"` or `limit="ip"`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    limit: &'static str,
}

/// The series of the limits per caller (`crate::rate_limit`).
#[derive(Debug)]
pub struct RateLimitMetrics {
    refused: Family<LimitLabels, Counter>,
    untracked: Family<LimitLabels, Counter>,
    buckets: Family<LimitLabels, prometheus_client::metrics::gauge::Gauge>,
}

impl RateLimitMetrics {
    fn register(registry: &mut Registry) -> RateLimitMetrics {
        let refused = Family::<LimitLabels, Counter>::default();
        registry.register(
            "booking_rate_limited",
            "Requests refused 429 rate_limited, by the limit that refused them (user, ip)",
            refused.clone(),
        );
        let untracked = Family::<LimitLabels, Counter>::default();
        registry.register(
            "booking_rate_limit_untracked",
            "Requests of new callers let through without a bucket because RATE_MAX_BUCKETS was reached",
            untracked.clone(),
        );
        let buckets = Family::<LimitLabels, prometheus_client::metrics::gauge::Gauge>::default();
        registry.register(
            "booking_rate_limit_buckets",
            "Callers with a bucket in memory (as of the last limited request), by limit",
            buckets.clone(),
        );
        // Both limits show from the start, at zero: a scrape can tell "none refused"
        // from "not counted".
        for limit in ["user", "ip"] {
            let _ = refused.get_or_create(&LimitLabels { limit });
        }
        RateLimitMetrics {
            refused,
            untracked,
            buckets,
        }
    }

    /// Counts one refusal by `kind`.
    pub fn refused(&self, kind: crate::rate_limit::Kind) {
        let limit = kind.label();
        self.refused.get_or_create(&LimitLabels { limit }).inc();
    }

    /// Records what an allowed request found: the buckets now, a newcomer untracked.
    pub fn observe(&self, t: &crate::rate_limit::Tracked) {
        for (limit, untracked, n) in [
            ("user", t.untracked_user, t.user_buckets),
            ("ip", t.untracked_ip, t.ip_buckets),
        ] {
            if untracked {
                self.untracked.get_or_create(&LimitLabels { limit }).inc();
            }
            let n = i64::try_from(n).unwrap_or(i64::MAX);
            self.buckets.get_or_create(&LimitLabels { limit }).set(n);
        }
    }
}
