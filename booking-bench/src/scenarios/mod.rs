//! The scenarios, one module each. A scenario takes its flags (the [`Common`] ones
//! flattened in), creates the shows it needs through the API, runs, and returns a
//! [`RunResult`]; `main` prints it, writes it as JSON and sets the exit status from
//! its checks.
//!
//! To add one: a module with `Args` (flattening [`Common`]) and
//! `async fn run(ctx: &Ctx, args: &Args) -> Result<RunResult, String>`, and a variant
//! in `main`'s `Command`.
//!
//! [`Common`]: crate::common::Common

pub mod abuse;
pub mod adds;
pub mod areas;
pub mod best;
pub mod book;
pub mod cart;
pub mod expiry;
pub mod fanout;
pub mod growth;
pub mod herd;
pub mod holds;
pub mod mixed;
pub mod queue;
pub mod seatmap;

use crate::client::{Conn, Target};
use crate::common::{Ctx, Window};
use crate::stats::{Recorder, RunResult};
use serde_json::{json, Value};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Runs `n` closed-loop workers (each sends its next request when the last is
/// answered) and merges what they recorded.
pub async fn workers<F, Fut>(n: usize, f: F) -> Recorder
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Recorder> + Send + 'static,
{
    let handles: Vec<_> = (0..n).map(|i| tokio::spawn(f(i))).collect();
    let mut all = Recorder::default();
    for h in handles {
        if let Ok(r) = h.await {
            all.merge(r);
        }
    }
    all
}

/// A result skeleton for a scenario run.
pub fn result(ctx: &Ctx, scenario: &str, primary: &str, concurrency: usize) -> RunResult {
    RunResult {
        scenario: scenario.to_owned(),
        name: ctx.name(scenario),
        url: ctx.common.url.clone(),
        concurrency,
        duration_s: ctx.common.duration,
        primary: primary.to_owned(),
        ..Default::default()
    }
}

/// Body of a hold request for `labels`.
pub fn hold_body(labels: &[String], ttl: u32) -> Value {
    json!({"seats": labels, "ttl_seconds": ttl})
}

/// Idle keep-alive connections for requests sent at a fixed rate (open loop): a
/// request takes one, or opens one when none is idle, and gives it back.
pub struct ConnPool {
    target: Arc<Target>,
    idle: Mutex<Vec<Conn>>,
}

impl ConnPool {
    pub fn new(target: Arc<Target>) -> Arc<ConnPool> {
        Arc::new(ConnPool {
            target,
            idle: Mutex::new(Vec::new()),
        })
    }

    pub fn get(&self) -> Conn {
        self.idle
            .lock()
            .expect("pool")
            .pop()
            .unwrap_or_else(|| Conn::lazy(self.target.clone()))
    }

    pub fn put(&self, c: Conn) {
        self.idle.lock().expect("pool").push(c);
    }
}

/// Starts `f(i)` for i = 0, 1, ... at `rate` per second while `window` runs (open
/// loop: a slow answer does not delay the next request), then waits for all of them.
/// Returns how many were started.
pub async fn paced<F, Fut>(rate: f64, window: Window, mut f: F) -> usize
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let period = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let start = Instant::now();
    let mut handles = Vec::new();
    let mut i = 0usize;
    while window.running() {
        let due = start + period.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        if !window.running() {
            break;
        }
        handles.push(tokio::spawn(f(i)));
        i += 1;
    }
    for h in handles {
        let _ = h.await;
    }
    i
}
