//! What a run measured: per operation, latencies, answers by HTTP status and failures;
//! distributions of other delays; checks; and the JSON and table forms of all that.

use crate::client::{Failure, Reply};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// Latencies (µs), statuses and failures of one operation, as recorded by one worker.
#[derive(Debug, Default, Clone)]
pub struct OpStats {
    pub latencies_us: Vec<u64>,
    pub statuses: BTreeMap<u16, u64>,
    pub failures: BTreeMap<Failure, u64>,
}

impl OpStats {
    pub fn record(&mut self, elapsed: Duration, res: &Result<Reply, Failure>) {
        match res {
            Ok(r) => {
                self.latencies_us.push(elapsed.as_micros() as u64);
                *self.statuses.entry(r.status).or_default() += 1;
            }
            Err(f) => *self.failures.entry(*f).or_default() += 1,
        }
    }

    pub fn merge(&mut self, other: OpStats) {
        self.latencies_us.extend(other.latencies_us);
        for (k, v) in other.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
        for (k, v) in other.failures {
            *self.failures.entry(k).or_default() += v;
        }
    }

    pub fn answers(&self) -> u64 {
        self.statuses.values().sum()
    }
}

/// Per-operation statistics of one worker or of a whole run.
#[derive(Debug, Default, Clone)]
pub struct Recorder {
    pub ops: BTreeMap<&'static str, OpStats>,
}

impl Recorder {
    pub fn op(&mut self, name: &'static str) -> &mut OpStats {
        self.ops.entry(name).or_default()
    }

    pub fn record(&mut self, name: &'static str, elapsed: Duration, res: &Result<Reply, Failure>) {
        self.op(name).record(elapsed, res);
    }

    pub fn merge(&mut self, other: Recorder) {
        for (k, v) in other.ops {
            self.op(k).merge(v);
        }
    }
}

/// A distribution of durations, in milliseconds.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Dist {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Dist {
    /// From microseconds (sorted here).
    pub fn from_us(mut v: Vec<u64>) -> Dist {
        if v.is_empty() {
            return Dist::default();
        }
        v.sort_unstable();
        let n = v.len();
        // Nearest-rank percentile.
        let pct = |p: f64| {
            let rank = ((p / 100.0) * n as f64).ceil() as usize;
            v[rank.clamp(1, n) - 1] as f64 / 1000.0
        };
        Dist {
            count: n as u64,
            mean_ms: v.iter().sum::<u64>() as f64 / n as f64 / 1000.0,
            p50_ms: pct(50.0),
            p90_ms: pct(90.0),
            p99_ms: pct(99.0),
            max_ms: v[n - 1] as f64 / 1000.0,
        }
    }
}

/// One operation's figures in a result.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct OpSummary {
    /// HTTP answers received (any status).
    pub requests: u64,
    /// Answers per second of the measured window.
    pub throughput_rps: f64,
    /// Latency of the answered requests.
    pub latency: Dist,
    /// Answers by HTTP status.
    pub status: BTreeMap<String, u64>,
    /// Requests without an HTTP answer, by kind (connect, io, timeout).
    pub errors: BTreeMap<String, u64>,
}

impl OpSummary {
    pub fn new(stats: OpStats, secs: f64) -> OpSummary {
        let requests = stats.answers();
        OpSummary {
            requests,
            throughput_rps: if secs > 0.0 {
                requests as f64 / secs
            } else {
                0.0
            },
            latency: Dist::from_us(stats.latencies_us),
            status: stats
                .statuses
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            errors: stats
                .failures
                .into_iter()
                .map(|(k, v)| (k.name().to_owned(), v))
                .collect(),
        }
    }

    pub fn status_count(&self, status: u16) -> u64 {
        self.status.get(&status.to_string()).copied().unwrap_or(0)
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    pub fn count_5xx(&self) -> u64 {
        self.status
            .iter()
            .filter(|(k, _)| k.starts_with('5'))
            .map(|(_, v)| v)
            .sum()
    }
}

/// A pass/fail condition of a run (correctness, never timing).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// What the server process used during the scenario (when its pid was given).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct ServerUsage {
    pub pid: u32,
    /// Highest resident set size sampled during the scenario (VmRSS, every 100 ms).
    pub rss_peak_mb: f64,
    /// The process's high-water mark (VmHWM) at the end of the scenario: since start.
    pub hwm_mb: f64,
    /// CPU time (user + system) used during the scenario.
    pub cpu_s: f64,
}

/// The result of one scenario run: printed as a table, written as JSON.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct RunResult {
    pub scenario: String,
    /// A label for reports (e.g. `holds-c1`); defaults to the scenario.
    pub name: String,
    pub url: String,
    pub concurrency: usize,
    pub duration_s: f64,
    /// The measured window (after warm-up), seconds.
    pub elapsed_s: f64,
    /// The operation that the scenario is about (its headline figures).
    pub primary: String,
    pub ops: BTreeMap<String, OpSummary>,
    /// Distributions other than request latencies (expiry delays, delivery delays).
    pub delays: BTreeMap<String, Dist>,
    /// Scenario-specific numbers (shows created, events missed, ...).
    pub extra: BTreeMap<String, Value>,
    pub checks: Vec<Check>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerUsage>,
}

impl RunResult {
    pub fn check(&mut self, name: &str, ok: bool, detail: impl Into<String>) {
        self.checks.push(Check {
            name: name.to_owned(),
            ok,
            detail: detail.into(),
        });
    }

    pub fn extra(&mut self, key: &str, v: impl Into<Value>) {
        self.extra.insert(key.to_owned(), v.into());
    }

    pub fn add_ops(&mut self, rec: Recorder, secs: f64) {
        for (k, v) in rec.ops {
            self.ops.insert(k.to_owned(), OpSummary::new(v, secs));
        }
    }

    /// Every scenario must have done something: its primary operation got answers.
    pub fn check_ran(&mut self) {
        let n = self.ops.get(&self.primary).map(|o| o.requests).unwrap_or(0);
        let primary = self.primary.clone();
        self.check("ran", n > 0, format!("{n} answers to {primary} requests"));
    }

    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    pub fn print(&self) {
        println!();
        println!(
            "== {} (scenario {}, concurrency {}, {:.1} s measured)",
            self.name, self.scenario, self.concurrency, self.elapsed_s
        );
        println!(
            "{:<18} {:>9} {:>10} {:>8} {:>8} {:>8} {:>9}  status / errors",
            "operation", "answers", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms"
        );
        for (name, o) in &self.ops {
            let mut codes: Vec<String> = o.status.iter().map(|(k, v)| format!("{k}:{v}")).collect();
            codes.extend(o.errors.iter().map(|(k, v)| format!("{k}-err:{v}")));
            println!(
                "{:<18} {:>9} {:>10.1} {:>8.2} {:>8.2} {:>8.2} {:>9.2}  {}",
                name,
                o.requests,
                o.throughput_rps,
                o.latency.p50_ms,
                o.latency.p90_ms,
                o.latency.p99_ms,
                o.latency.max_ms,
                codes.join(" ")
            );
        }
        for (name, d) in &self.delays {
            println!(
                "{:<18} {:>9} {:>10} {:>8.2} {:>8.2} {:>8.2} {:>9.2}  (delay, mean {:.2} ms)",
                name, d.count, "-", d.p50_ms, d.p90_ms, d.p99_ms, d.max_ms, d.mean_ms
            );
        }
        for (k, v) in &self.extra {
            println!("  {k}: {v}");
        }
        for (name, o) in &self.ops {
            let n = o.count_5xx();
            if n > 0 {
                println!("  warning: {n} answers 5xx to {name}");
            }
        }
        if let Some(s) = &self.server {
            println!(
                "  server pid {}: peak RSS {:.1} MB during the scenario (VmHWM {:.1} MB), CPU {:.2} s",
                s.pid, s.rss_peak_mb, s.hwm_mb, s.cpu_s
            );
        }
        for c in &self.checks {
            println!(
                "  check {}: {} ({})",
                c.name,
                if c.ok { "OK" } else { "FAILED" },
                c.detail
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let d = Dist::from_us((1..=100).map(|i| i * 1000).collect());
        assert_eq!(d.count, 100);
        assert_eq!(d.p50_ms, 50.0);
        assert_eq!(d.p90_ms, 90.0);
        assert_eq!(d.p99_ms, 99.0);
        assert_eq!(d.max_ms, 100.0);
        let one = Dist::from_us(vec![2500]);
        assert_eq!(one.p50_ms, 2.5);
        assert_eq!(one.p99_ms, 2.5);
        assert_eq!(Dist::from_us(vec![]).count, 0);
    }
}
