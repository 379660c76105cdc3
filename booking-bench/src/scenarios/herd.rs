//! `herd`: N clients, each with a connection of its own opened first, released at the
//! same instant on one free seat. Latency is counted from the release (when the last
//! client was ready) to each answer. Checks: exactly one 201, N-1 409s, no failures.
//!
//! `--keyed`: every client sends an `Idempotency-Key` of its own, and every refused
//! client retries once with it at once: the retry must be the stored answer replayed
//! (`Idempotent-Replayed: true`, the same status and the same body, byte for byte).
//! The retries are op `replay`; they do not count in the herd's latency.
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
    /// Every client sends an `Idempotency-Key`; each refused one retries once with it.
    #[arg(long)]
    pub keyed: bool,
}

/// What a herd got: answers recorded as op `hold` (latency from the release), the
/// answers themselves (in no particular order), when the last one came, and how long
/// opening the connections took; for a keyed herd, the retries of refused clients
/// (op `replay`) and how many of them were not their first answer replayed exactly.
pub struct Released {
    pub rec: Recorder,
    pub replies: Vec<Reply>,
    pub wall: Duration,
    pub connect_s: f64,
    pub replays: u64,
    pub replays_not_exact: u64,
}

/// What a herd's clients send: the path, the body, each client's user
/// (`{user_prefix}{i}`), and with `keyed` a key of its own (`{keyed:x}-{i}`), under
/// which a refused client retries once.
pub struct Herd<'a> {
    pub path: &'a str,
    pub body: Value,
    pub user_prefix: &'a str,
    pub keyed: Option<u64>,
}

/// A refused client's retry under its key: when it was answered, the answer, and
/// whether it replayed the first one exactly.
type Retry = Option<(Duration, Result<Reply, Failure>, bool)>;

/// Sends the retry of a refused client (`first`, status 409) with its key, and says
/// whether it got `first` replayed: `Idempotent-Replayed: true`, same status, same body.
async fn retry(
    conn: &mut Conn,
    path: &str,
    user: &str,
    key: &str,
    body: &Value,
    first: &Reply,
) -> Retry {
    let t = Instant::now();
    let res = conn
        .send(Method::POST, path, Caller::Keyed(user, key), Some(body))
        .await;
    let exact =
        matches!(&res, Ok(r) if r.replayed && r.status == first.status && r.body == first.body);
    Some((t.elapsed(), res, exact))
}

/// Opens `n` connections (`connect_concurrency` at a time), then releases all of them
/// at once: client i POSTs `body` to `path` as user `{user_prefix}{i}`. Connections
/// stay open until every client is answered.
pub async fn release(ctx: &Ctx, n: usize, connect_concurrency: usize, herd: Herd<'_>) -> Released {
    let Herd {
        path,
        body,
        user_prefix,
        keyed,
    } = herd;
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
            let key = keyed.map(|k| format!("{k:x}-{i}"));
            let caller = match &key {
                Some(key) => Caller::Keyed(&user, key),
                None => Caller::User(&user),
            };
            let res = conn.send(Method::POST, &path, caller, Some(&*body)).await;
            let t0 = *release.get().expect("set before the release");
            let elapsed = t0.elapsed();
            let again = match (&key, &res) {
                (Some(key), Ok(first)) if first.status == 409 => {
                    retry(&mut conn, &path, &user, key, &body, first).await
                }
                _ => None,
            };
            // Keep the connection open until every client is answered.
            Ok::<_, Failure>((elapsed, res, again, conn))
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
    let (mut replays, mut replays_not_exact) = (0, 0);
    for t in tasks {
        match t.await {
            Ok(Ok((elapsed, res, again, conn))) => {
                last = last.max(elapsed);
                rec.record("hold", elapsed, &res);
                if let Some((took, res, exact)) = again {
                    rec.record("replay", took, &res);
                    replays += 1;
                    replays_not_exact += u64::from(!exact);
                }
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
        replays,
        replays_not_exact,
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
    let herd = Herd {
        path: &path,
        body,
        user_prefix: "herd-",
        keyed: args.keyed.then(rand::random),
    };
    let h = release(ctx, n, args.connect_concurrency, herd).await;
    let (replays, not_exact) = (h.replays, h.replays_not_exact);
    let mut r = herd_result(ctx, "herd", n, h);
    r.extra("show", show.id.clone());
    r.extra("keyed", args.keyed);
    let o = r.ops.get("hold").cloned().unwrap_or_default();
    let (won, lost, errors) = (o.status_count(201), o.status_count(409), o.error_count());
    let others = o.requests - won - lost;
    r.check("ran", o.requests > 0, format!("{} answers", o.requests));
    r.check(
        "one_winner",
        won == 1 && lost == n as u64 - 1 && others == 0 && errors == 0,
        format!("{won} x 201, {lost} x 409, {others} other answers, {errors} failures (want 1, {}, 0, 0)", n - 1),
    );
    if args.keyed {
        r.extra("replays", replays);
        r.check(
            "replayed_exactly",
            replays == lost && not_exact == 0,
            format!(
                "{replays} retries of {lost} refusals, {not_exact} not the refusal replayed \
                 exactly (Idempotent-Replayed: true, same status and body)"
            ),
        );
    }
    Ok(r)
}
