//! What every scenario shares: the common flags, the measured time window, creating
//! shows through the API, the server's resource usage, the file-descriptor limit.

use crate::client::{Caller, Conn, Target};
use crate::stats::ServerUsage;
use hyper::Method;
use rand::seq::SliceRandom;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug, Clone)]
pub struct Common {
    /// Base URL of a running booking-server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Admin token of the server (creates the scenario's shows with POST /shows).
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// The server's JWT_SECRET (AUTH_MODE=jwt): users send `Authorization: Bearer`
    /// with an HS256 token each (minted once per user) instead of `X-User-Id`.
    #[arg(long, env = "BENCH_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Concurrent workers (each with its own keep-alive connection).
    #[arg(long, short = 'c', default_value_t = 32)]
    pub concurrency: usize,
    /// Measured seconds.
    #[arg(long, short = 'd', default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of load before measuring starts (not counted).
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Write the result as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Name of the run in reports (default: the scenario's name).
    #[arg(long)]
    pub name: Option<String>,
    /// Pid of the server process: sample its RSS and CPU time during the scenario.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Create this file when the load starts, its shows made (`holds` only): a profiler
    /// started then sees the run, not the setup (scripts/bench.sh --profile).
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
}

impl Common {
    /// Says the load starts now: creates `--ready-file`, if given.
    pub fn load_starts(&self) {
        if let Some(p) = &self.ready_file {
            if let Err(e) = std::fs::write(p, b"") {
                eprintln!("booking-bench: warning: {}: {e}", p.display());
            }
        }
    }
}

/// The shared state of a scenario run.
pub struct Ctx {
    pub target: Arc<Target>,
    pub common: Common,
}

/// When load runs and when it counts.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub measure_from: Instant,
    pub until: Instant,
}

impl Window {
    pub fn start(warmup: f64, duration: f64) -> Window {
        let now = Instant::now();
        let measure_from = now + Duration::from_secs_f64(warmup.max(0.0));
        Window {
            measure_from,
            until: measure_from + Duration::from_secs_f64(duration.max(0.0)),
        }
    }

    /// Keep sending.
    pub fn running(&self) -> bool {
        Instant::now() < self.until
    }

    /// A request that started at `t` is measured.
    pub fn counts(&self, t: Instant) -> bool {
        t >= self.measure_from
    }

    /// The measured window's length so far (up to now, past `until` while the last
    /// requests finish).
    pub fn elapsed(&self) -> f64 {
        Instant::now()
            .saturating_duration_since(self.measure_from)
            .as_secs_f64()
    }
}

/// Row label of row index `i`: A..Z, AA..ZZ, AAA..ZZZ (as bench/setup.sql does).
pub fn row_label(i: usize) -> String {
    let letter = |n: usize| char::from(b'A' + (n % 26) as u8);
    if i < 26 {
        letter(i).to_string()
    } else if i < 26 + 676 {
        let j = i - 26;
        [letter(j / 26), letter(j)].iter().collect()
    } else {
        let j = i - 702;
        [letter(j / 676), letter(j / 26), letter(j)]
            .iter()
            .collect()
    }
}

/// A show created for a scenario: rows of `per_row` seats.
#[derive(Debug, Clone)]
pub struct Show {
    pub id: String,
    pub rows: usize,
    pub per_row: usize,
}

impl Show {
    pub fn seats(&self) -> usize {
        self.rows * self.per_row
    }

    /// Label of seat `number` (1-based) of row `row` (0-based).
    pub fn label(&self, row: usize, number: usize) -> String {
        format!("{}{}", row_label(row), number)
    }

    /// Label of the seat with index `i` (row-major).
    pub fn label_of(&self, i: usize) -> String {
        self.label(i / self.per_row, i % self.per_row + 1)
    }

    /// Index of a seat label of this show (the inverse of [`Show::label_of`]).
    pub fn index_of(&self, label: &str) -> Option<usize> {
        let split = label.find(|c: char| c.is_ascii_digit())?;
        let (row, num) = label.split_at(split);
        let number: usize = num.parse().ok()?;
        let b = row.as_bytes();
        let v = |c: u8| (c - b'A') as usize;
        let r = match b.len() {
            1 => v(b[0]),
            2 => 26 + v(b[0]) * 26 + v(b[1]),
            3 => 702 + v(b[0]) * 676 + v(b[1]) * 26 + v(b[2]),
            _ => return None,
        };
        if number == 0 || number > self.per_row || r >= self.rows {
            return None;
        }
        Some(r * self.per_row + number - 1)
    }

    pub fn holds_path(&self) -> String {
        format!("/shows/{}/holds", self.id)
    }
}

impl Ctx {
    /// Creates a show of `rows` rows of `per_row` seats (priced 1200 EUR cents).
    pub async fn create_show(
        &self,
        title: &str,
        rows: usize,
        per_row: usize,
    ) -> Result<Show, String> {
        let body = json!({
            "title": title,
            "starts_at": "2030-01-01T20:00:00Z",
            "currency": "EUR",
            "prices": {"standard": 1200},
            "rows": (0..rows).map(|r| json!({"row": row_label(r), "seats": per_row})).collect::<Vec<_>>(),
        });
        self.create_show_from(body, rows, per_row).await
    }

    /// A show like [`Ctx::create_show`]'s with the venue inventory of issue 14 on top:
    /// two ticket types, features on three seats a row (wheelchair 1 and 2, restricted
    /// view on the last but one) and the last seat of every row blocked.
    pub async fn create_inventory_show(
        &self,
        title: &str,
        rows: usize,
        per_row: usize,
    ) -> Result<Show, String> {
        let body = json!({
            "title": title,
            "starts_at": "2030-01-01T20:00:00Z",
            "currency": "EUR",
            "ticket_types": [
                {"type": "adult", "prices": {"standard": 1200}},
                {"type": "child", "prices": {"standard": 800}}
            ],
            "rows": (0..rows).map(|r| json!({
                "row": row_label(r), "seats": per_row,
                "features": {"wheelchair": [1, 2], "restricted_view": [per_row - 1]},
                "blocked": [per_row]
            })).collect::<Vec<_>>(),
        });
        self.create_show_from(body, rows, per_row).await
    }

    /// A show of `rows` rows of `per_row` seats (as [`Ctx::create_show`]'s) and the
    /// standing areas `areas` (code, capacity) of category `standing`, priced 900 EUR
    /// cents a place.
    pub async fn create_area_show(
        &self,
        title: &str,
        rows: usize,
        per_row: usize,
        areas: &[(&str, usize)],
    ) -> Result<Show, String> {
        let body = json!({
            "title": title,
            "starts_at": "2030-01-01T20:00:00Z",
            "currency": "EUR",
            "prices": {"standard": 1200, "standing": 900},
            "rows": (0..rows).map(|r| json!({"row": row_label(r), "seats": per_row})).collect::<Vec<_>>(),
            "areas": areas.iter().map(|(code, capacity)| json!({
                "area": code, "capacity": capacity, "category": "standing"
            })).collect::<Vec<_>>(),
        });
        self.create_show_from(body, rows, per_row).await
    }

    async fn create_show_from(
        &self,
        body: serde_json::Value,
        rows: usize,
        per_row: usize,
    ) -> Result<Show, String> {
        if self.target.admin_token.is_none() {
            return Err(
                "creating shows needs the server's admin token (--admin-token or ADMIN_TOKEN)"
                    .into(),
            );
        }
        let mut conn = Conn::lazy(self.target.clone());
        let reply = conn
            .send(Method::POST, "/shows", Caller::Admin, Some(&body))
            .await
            .map_err(|f| format!("POST /shows failed ({}) at {}", f.name(), self.common.url))?;
        if reply.status != 201 {
            return Err(format!(
                "POST /shows answered {}: {}",
                reply.status,
                String::from_utf8_lossy(&reply.body)
            ));
        }
        let id = reply.json()["id"]
            .as_str()
            .ok_or("POST /shows answered without an id")?
            .to_owned();
        Ok(Show { id, rows, per_row })
    }

    /// Creates `n` shows alike, a few at a time.
    pub async fn create_shows(
        &self,
        title: &str,
        n: usize,
        rows: usize,
        per_row: usize,
    ) -> Result<Vec<Show>, String> {
        let mut shows = Vec::with_capacity(n);
        let started = Instant::now();
        for chunk in (0..n).collect::<Vec<_>>().chunks(4) {
            let titles: Vec<String> = chunk.iter().map(|i| format!("{title} {}", i + 1)).collect();
            let futs = titles.iter().map(|t| self.create_show(t, rows, per_row));
            for r in futures_util::future::join_all(futs).await {
                shows.push(r?);
            }
        }
        eprintln!(
            "booking-bench: created {n} show(s) of {rows} x {per_row} seats in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        Ok(shows)
    }

    pub fn name(&self, scenario: &str) -> String {
        self.common
            .name
            .clone()
            .unwrap_or_else(|| scenario.to_owned())
    }
}

/// A pool of seat groups handed out once each, in random order: `groups` consecutive
/// seats of one row (rows are split into whole groups), across all `shows`.
pub struct SeatPool {
    items: Vec<(u32, u32)>,
    next: std::sync::atomic::AtomicUsize,
}

impl SeatPool {
    pub fn new(shows: &[Show], group: usize) -> SeatPool {
        let mut items = Vec::new();
        for (s, show) in shows.iter().enumerate() {
            for i in 0..show.seats() {
                if (i % show.per_row) % group == 0 && (i % show.per_row) + group <= show.per_row {
                    items.push((s as u32, i as u32));
                }
            }
        }
        items.shuffle(&mut rand::thread_rng());
        SeatPool {
            items,
            next: Default::default(),
        }
    }

    /// The next group: (show index, index of its first seat); None when used up.
    pub fn take(&self) -> Option<(usize, usize)> {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.items.get(i).map(|&(s, x)| (s as usize, x as usize))
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn used(&self) -> usize {
        self.next
            .load(std::sync::atomic::Ordering::Relaxed)
            .min(self.items.len())
    }

    pub fn exhausted(&self) -> bool {
        self.next.load(std::sync::atomic::Ordering::Relaxed) >= self.items.len()
    }
}

/// Samples a process's memory during a scenario and measures its CPU time.
pub struct Sampler {
    pid: u32,
    cpu_start: Option<f64>,
    peak_kb: Arc<std::sync::atomic::AtomicU64>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

fn proc_status_kb(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// utime + stime of a process, in seconds (USER_HZ is 100 on Linux).
pub fn proc_cpu_s(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // After "pid (comm) ": state is field 3, utime field 14, stime field 15.
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

impl Sampler {
    pub fn start(pid: Option<u32>) -> Option<Sampler> {
        let pid = pid?;
        let peak_kb = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let peak = peak_kb.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Some(kb) = proc_status_kb(pid, "VmRSS:") {
                    peak.fetch_max(kb, std::sync::atomic::Ordering::Relaxed);
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    _ = stopped.changed() => break,
                }
            }
        });
        Some(Sampler {
            pid,
            cpu_start: proc_cpu_s(pid),
            peak_kb,
            stop,
            task,
        })
    }

    pub async fn finish(self) -> ServerUsage {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        if let Some(kb) = proc_status_kb(self.pid, "VmRSS:") {
            self.peak_kb
                .fetch_max(kb, std::sync::atomic::Ordering::Relaxed);
        }
        let cpu_end = proc_cpu_s(self.pid);
        ServerUsage {
            pid: self.pid,
            rss_peak_mb: self.peak_kb.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1024.0,
            hwm_mb: proc_status_kb(self.pid, "VmHWM:").unwrap_or(0) as f64 / 1024.0,
            cpu_s: match (self.cpu_start, cpu_end) {
                (Some(a), Some(b)) => b - a,
                _ => 0.0,
            },
        }
    }
}

/// Raises the soft limit of open files to the hard limit; returns the new soft limit.
pub fn raise_fd_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                return want.rlim_cur;
            }
        }
        lim.rlim_cur
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_labels_round_trip() {
        assert_eq!(row_label(0), "A");
        assert_eq!(row_label(25), "Z");
        assert_eq!(row_label(26), "AA");
        assert_eq!(row_label(701), "ZZ");
        assert_eq!(row_label(702), "AAA");
        let show = Show {
            id: "1".into(),
            rows: 800,
            per_row: 200,
        };
        for i in [
            0,
            1,
            199,
            200,
            26 * 200 + 5,
            701 * 200 + 199,
            702 * 200,
            799 * 200 + 7,
        ] {
            assert_eq!(show.index_of(&show.label_of(i)), Some(i), "seat {i}");
        }
        assert_eq!(show.index_of("A0"), None);
        assert_eq!(show.index_of("A201"), None);
    }

    #[test]
    fn seat_pool_hands_out_each_group_once() {
        let shows = vec![
            Show {
                id: "1".into(),
                rows: 2,
                per_row: 10,
            },
            Show {
                id: "2".into(),
                rows: 1,
                per_row: 10,
            },
        ];
        let pool = SeatPool::new(&shows, 4);
        // 2 whole groups of 4 per row of 10, 3 rows.
        assert_eq!(pool.len(), 6);
        let mut seen = std::collections::HashSet::new();
        while let Some(g) = pool.take() {
            assert!(seen.insert(g));
            assert!(g.1 % 10 + 4 <= 10);
        }
        assert!(pool.exhausted());
    }
}
