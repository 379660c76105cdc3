//! `herd`: N clients, each with a connection of its own opened first, released at the
//! same instant on one free seat. Latency is counted from the release (when the last
//! client was ready) to each answer. Checks: exactly one 201, N-1 409s, no failures.
//!
//! [`release`] is the herd itself, shared with `area-herd` (N buyers of places).

use super::result;
use crate::client::{Caller, Conn, Failure, Reply};
use crate::common::{raise_fd_limit, Common, Ctx};
use crate::stats::{Recorder, RunResult};
use hyper::Method;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Barrier, Semaphore};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// Clients in the herd (each opens its own connection).
    #[arg(long, default_value_t = 10000)]
    pub clients: usize,
    /// Connections being opened at once before the release.
    #[arg(long, default_value_t = 200)]
    pub connect_concurrency: usize,
}

/// What a herd got: answers recorded as op `hold` (latency from the release), the
/// answers themselves (in no particular order), when the last one came, and how long
/// opening the connections took.
pub struct Released {
    pub rec: Recorder,
    pub replies: Vec<Reply>,
    pub wall: Duration,
    pub connect_s: f64,
}

/// Opens `n` connections (`connect_concurrency` at a time), then releases all of them
/// at once: client i POSTs `body` to `path` as user `{user_prefix}{i}`. Connections
/// stay open until every client is answered.
pub async fn release(
    ctx: &Ctx,
    n: usize,
    connect_concurrency: usize,
    path: &str,
    body: Value,
    user_prefix: &str,
) -> Released {
    let limit = raise_fd_limit();
    if (limit as usize) < n + 100 {
        eprintln!("booking-bench: warning: open-file limit {limit} is below {n} clients");
    }
    let barrier = Arc::new(Barrier::new(n + 1));
    let ready = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(connect_concurrency.max(1)));
    let release: Arc<std::sync::OnceLock<Instant>> = Arc::default();
    let body = Arc::new(body);
    let connect_started = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let (target, barrier, ready, gate, release, body) = (
            ctx.target.clone(),
            barrier.clone(),
            ready.clone(),
            gate.clone(),
            release.clone(),
            body.clone(),
        );
        let (path, user) = (path.to_owned(), format!("{user_prefix}{i}"));
        tasks.push(tokio::spawn(async move {
            let conn = {
                let _permit = gate.acquire().await;
                let mut conn = Err(Failure::Connect);
                for attempt in 0..3 {
                    conn = Conn::connect(target.clone()).await;
                    if conn.is_ok() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                }
                conn
            };
            ready.fetch_add(1, Ordering::Relaxed);
            barrier.wait().await;
            let mut conn = conn?;
            let res = conn
                .send(Method::POST, &path, Caller::User(&user), Some(&*body))
                .await;
            let t0 = *release.get().expect("set before the release");
            // Keep the connection open until every client is answered.
            Ok::<_, Failure>((t0.elapsed(), res, conn))
        }));
    }
    while ready.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let connect_s = connect_started.elapsed().as_secs_f64();
    let t0 = Instant::now();
    release.set(t0).expect("set once");
    barrier.wait().await;
    let mut rec = Recorder::default();
    let mut last = Duration::ZERO;
    let mut conns = Vec::with_capacity(n);
    let mut replies = Vec::with_capacity(n);
    for t in tasks {
        match t.await {
            Ok(Ok((elapsed, res, conn))) => {
                last = last.max(elapsed);
                rec.record("hold", elapsed, &res);
                if let Ok(reply) = res {
                    replies.push(reply);
                }
                conns.push(conn);
            }
            Ok(Err(f)) => *rec.op("hold").failures.entry(f).or_default() += 1,
            Err(_) => *rec.op("hold").failures.entry(Failure::Io).or_default() += 1,
        }
    }
    drop(conns);
    Released {
        rec,
        replies,
        wall: last,
        connect_s,
    }
}

/// A herd's result skeleton: its answers, wall time and connect time.
pub fn herd_result(ctx: &Ctx, scenario: &str, n: usize, h: Released) -> RunResult {
    let wall = h.wall.as_secs_f64();
    let mut r = result(ctx, scenario, "hold", n);
    r.duration_s = wall;
    r.elapsed_s = wall;
    r.add_ops(h.rec, wall);
    r.extra("clients", n);
    r.extra("connect_s", (h.connect_s * 1000.0).round() / 1000.0);
    r.extra("wall_s", (wall * 1000.0).round() / 1000.0);
    r
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<RunResult, String> {
    let n = args.clients.max(1);
    let show = ctx.create_show("bench herd", 1, 10).await?;
    let path = show.holds_path();
    let seat = show.label(0, 1);
    eprintln!(
        "booking-bench: herd: {n} clients, seat {seat} of show {}",
        show.id
    );
    let body = json!({"seats": [seat], "ttl_seconds": 600});
    let h = release(ctx, n, args.connect_concurrency, &path, body, "herd-").await;
    let mut r = herd_result(ctx, "herd", n, h);
    r.extra("show", show.id.clone());
    let o = r.ops.get("hold").cloned().unwrap_or_default();
    let (won, lost, errors) = (o.status_count(201), o.status_count(409), o.error_count());
    let others = o.requests - won - lost;
    r.check("ran", o.requests > 0, format!("{} answers", o.requests));
    r.check(
        "one_winner",
        won == 1 && lost == n as u64 - 1 && others == 0 && errors == 0,
        format!("{won} x 201, {lost} x 409, {others} other answers, {errors} failures (want 1, {}, 0, 0)", n - 1),
    );
    Ok(r)
}
