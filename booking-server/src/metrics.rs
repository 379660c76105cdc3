//! Prometheus metrics, in the text exposition format. A handful of series: a small
//! registry of our own reads more plainly here than a general-purpose one.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Row-lock waits that ran out (LOCK_TIMEOUT_MS), counted where library errors become
/// answers: process-wide, like the error mapping itself.
pub static LOCK_TIMEOUTS: AtomicU64 = AtomicU64::new(0);

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Counters and histograms of one server process.
#[derive(Default)]
pub struct Metrics {
    // A std Mutex: held for a few nanoseconds, never across an await.
    requests: Mutex<BTreeMap<(&'static str, u16), Histogram>>,
    pub holds: AtomicU64,
    /// Holds made by best available, and the groups they locked to get there.
    pub best_holds: AtomicU64,
    pub best_lock_attempts: AtomicU64,
    pub best_reads: AtomicU64,
    pub confirms: AtomicU64,
    pub releases: AtomicU64,
    pub cancels: AtomicU64,
    pub expiries: AtomicU64,
    pub unavailable: AtomicU64,
}

/// What the pool says right now.
pub struct PoolGauges {
    pub size: usize,
    pub max_size: usize,
    pub available: usize,
    pub waiting: usize,
}

impl Metrics {
    pub fn observe(&self, route: &'static str, status: u16, latency: Duration) {
        let secs = latency.as_secs_f64();
        let mut map = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        let h = map.entry((route, status)).or_default();
        h.count += 1;
        h.sum += secs;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.counts[i] += 1;
            }
        }
    }

    pub fn render(
        &self,
        pool: &PoolGauges,
        batches: Option<booking_core::holds::batch::BatchCounts>,
    ) -> String {
        let mut out = String::new();
        let map = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        out.push_str(
            "# HELP booking_http_requests_total HTTP requests answered, by route and status.\n",
        );
        out.push_str("# TYPE booking_http_requests_total counter\n");
        for ((route, status), h) in map.iter() {
            let _ = writeln!(
                out,
                "booking_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {}",
                h.count
            );
        }
        out.push_str(
            "# HELP booking_http_request_duration_seconds Time to answer, by route and status.\n",
        );
        out.push_str("# TYPE booking_http_request_duration_seconds histogram\n");
        for ((route, status), h) in map.iter() {
            let labels = format!("route=\"{route}\",status=\"{status}\"");
            for (i, bound) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "booking_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "booking_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "booking_http_request_duration_seconds_sum{{{labels}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "booking_http_request_duration_seconds_count{{{labels}}} {}",
                h.count
            );
        }
        drop(map);
        let counters = [
            ("booking_holds_total", "Holds created.", &self.holds),
            (
                "booking_best_holds_total",
                "Holds made by best available (also counted in booking_holds_total).",
                &self.best_holds,
            ),
            (
                "booking_best_lock_attempts_total",
                "Seat groups best available locked (FOR UPDATE SKIP LOCKED) for those holds.",
                &self.best_lock_attempts,
            ),
            (
                "booking_best_reads_total",
                "Reads of the whole house (one statement each) best available made for those holds.",
                &self.best_reads,
            ),
            (
                "booking_confirms_total",
                "Holds confirmed into bookings.",
                &self.confirms,
            ),
            (
                "booking_releases_total",
                "Holds released by their owner.",
                &self.releases,
            ),
            (
                "booking_cancels_total",
                "Bookings cancelled.",
                &self.cancels,
            ),
            (
                "booking_expiries_total",
                "Holds expired by this process's sweeper.",
                &self.expiries,
            ),
            (
                "booking_lock_timeouts_total",
                "Row-lock waits that ran past LOCK_TIMEOUT_MS (answered 503).",
                &LOCK_TIMEOUTS,
            ),
            (
                "booking_unavailable_total",
                "Requests answered 503 (lock wait, pool wait or database down).",
                &self.unavailable,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        let b = batches.unwrap_or_default();
        let batch_counters = [
            (
                "booking_hold_batches_total",
                "Statements that wrote holds of several requests at once (HOLD_BATCHES).",
                b.batches,
            ),
            (
                "booking_hold_batch_requests_total",
                "Hold requests those statements carried (over batches: the mean batch size).",
                b.requests,
            ),
            (
                "booking_hold_batch_decided_alone_total",
                "Batched hold requests their batch could not decide, decided alone after it.",
                b.decided_alone,
            ),
            (
                "booking_hold_batch_failures_total",
                "Hold batches that failed; their requests were retried one by one.",
                b.failed,
            ),
        ];
        for (name, help, value) in batch_counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        let gauges = [
            (
                "booking_pool_connections",
                "Open database connections in the pool.",
                pool.size,
            ),
            (
                "booking_pool_max_connections",
                "Most connections the pool may open.",
                pool.max_size,
            ),
            (
                "booking_pool_in_use",
                "Pooled connections serving a request.",
                pool.size.saturating_sub(pool.available),
            ),
            (
                "booking_pool_waiting",
                "Requests waiting for a pooled connection.",
                pool.waiting,
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        out
    }
}
