//! `growth`: the same requests on a database that holds many shows, so that
//! `scripts/bench_growth.sh` can compare them from 1 show to 10,000.
//!
//! The script fills the database in SQL (shows of `--rows` x `--per-row` seats whose
//! ids `--old-ids` lists, bookings, a day of events) and runs this once per size.
//! Every figure is taken twice: on shows of its own (created now through the API, as a
//! new show of the season would be) and on random old shows of the fill, whose free
//! seats it learns from their seat maps (the first read of each is a cold one):
//! - `shows_first`, `shows_deep`: `GET /shows?limit=50`, the first page and the last
//!   one (reached by walking every page once: the walk must list exactly
//!   `--expect-shows` shows, each once);
//! - `{own,old}_map_cold`: the first read of each show's map; `{own,old}_map_warm`:
//!   the map of one show read again and again by `--concurrency` readers;
//! - `{own,old}_hold`: holds of 1 free seat each, `--concurrency` workers for
//!   `--duration` seconds or until the seats run out (the old ones do at small sizes:
//!   `old_seats_ran_out`), seats handed out once each across `--shows` shows (a
//!   refusal would be a surprise: every one must be 201);
//! - `{own,old}_confirm`: confirms of up to `--confirms` of those holds (every one 201);
//! - `{own,old}_herd`: `--herd` clients released at once on one free seat (exactly one
//!   201, the rest 409).
//!
//! Checks are outcomes only (counts, statuses, the herd's one winner), never timings.

use super::herd::{release, Herd};
use super::{result, workers};
use crate::client::{Caller, Conn};
use crate::common::{Common, Ctx, Show, Window};
use crate::stats::{OpSummary, Recorder, RunResult};
use hyper::Method;
use rand::seq::SliceRandom;
use serde_json::json;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// A file of the fill's show ids, one a line.
    #[arg(long)]
    pub old_ids: std::path::PathBuf,
    /// Rows of each show (the fill's and the scenario's own).
    #[arg(long, default_value_t = 10)]
    pub rows: usize,
    /// Seats per row.
    #[arg(long, default_value_t = 100)]
    pub per_row: usize,
    /// Shows held on, of each kind (own ones created, old ones sampled).
    #[arg(long, default_value_t = 40)]
    pub shows: usize,
    /// Confirms of each kind (of the holds just made).
    #[arg(long, default_value_t = 2000)]
    pub confirms: usize,
    /// Clients of each herd.
    #[arg(long, default_value_t = 10000)]
    pub herd: usize,
    /// Sequential reads of each `GET /shows` page.
    #[arg(long, default_value_t = 200)]
    pub page_reads: usize,
    /// Shows the database holds before the scenario creates its own.
    #[arg(long)]
    pub expect_shows: u64,
}

/// A seat to hold: (index of its show in the list, label).
type Seat = (usize, String);

/// Free seats handed out once each, in random order.
struct Seats {
    items: Vec<Seat>,
    next: AtomicUsize,
}

impl Seats {
    fn new(mut items: Vec<Seat>) -> Seats {
        items.shuffle(&mut rand::thread_rng());
        Seats {
            items,
            next: AtomicUsize::new(0),
        }
    }

    fn take(&self) -> Option<&Seat> {
        self.items.get(self.next.fetch_add(1, Ordering::Relaxed))
    }

    fn used(&self) -> usize {
        self.next.load(Ordering::Relaxed).min(self.items.len())
    }
}

/// A hold made: its id and its holder.
type Made = (String, String);

pub async fn run(ctx: &Ctx, args: &Args) -> Result<RunResult, String> {
    let text = std::fs::read_to_string(&args.old_ids)
        .map_err(|e| format!("{}: {e}", args.old_ids.display()))?;
    let mut ids: Vec<i64> = text
        .split_whitespace()
        .filter_map(|l| l.parse().ok())
        .collect();
    if ids.is_empty() {
        return Err(format!("{}: no show ids", args.old_ids.display()));
    }
    let c = ctx.common.concurrency.max(1);
    let mut r = result(ctx, "growth", "own_hold", c);
    let mut conn = Conn::lazy(ctx.target.clone());

    // The programme, paged: walked once (the count checked), then the first and the
    // last page timed.
    let (listed, distinct, last_cursor) = walk_shows(&mut conn).await?;
    r.check(
        "shows_listed",
        listed == args.expect_shows && distinct == args.expect_shows,
        format!(
            "{listed} shows listed ({distinct} distinct), want {}",
            args.expect_shows
        ),
    );
    let first = "/shows?limit=50".to_owned();
    let deep = match &last_cursor {
        Some(cur) => format!("/shows?limit=50&cursor={cur}"),
        None => first.clone(),
    };
    for (op, path) in [("shows_first", &first), ("shows_deep", &deep)] {
        let t = Instant::now();
        let rec = sequential(&mut conn, op, path, args.page_reads).await;
        summarise(&mut r, rec, t.elapsed().as_secs_f64());
    }

    // Old shows: a random sample of the fill, their free seats read from their maps.
    ids.shuffle(&mut rand::thread_rng());
    ids.truncate(args.shows.max(1));
    let old: Vec<Show> = ids
        .iter()
        .map(|id| Show {
            id: id.to_string(),
            rows: args.rows,
            per_row: args.per_row,
        })
        .collect();
    let mut rec = Recorder::default();
    let t = Instant::now();
    let mut old_free = Vec::new();
    for (i, show) in old.iter().enumerate() {
        let t = Instant::now();
        let res = conn.get(&format!("/shows/{}/seats", show.id)).await;
        rec.record("old_map_cold", t.elapsed(), &res);
        let reply = res.map_err(|f| format!("seat map of show {}: {}", show.id, f.name()))?;
        for s in reply.json()["seats"].as_array().into_iter().flatten() {
            if s["state"] == "available" {
                old_free.push((i, s["label"].as_str().unwrap_or_default().to_owned()));
            }
        }
    }
    summarise(&mut r, rec, t.elapsed().as_secs_f64());
    r.extra("old_free_seats", old_free.len());

    // Own shows, created now: their first map reads are cold too.
    let own = ctx
        .create_shows("growth own", args.shows.max(1), args.rows, args.per_row)
        .await?;
    let mut rec = Recorder::default();
    let t = Instant::now();
    for show in &own {
        let t = Instant::now();
        let res = conn.get(&format!("/shows/{}/seats", show.id)).await;
        rec.record("own_map_cold", t.elapsed(), &res);
    }
    summarise(&mut r, rec, t.elapsed().as_secs_f64());
    let own_free: Vec<Seat> = own
        .iter()
        .enumerate()
        .flat_map(|(i, s)| (0..s.seats()).map(move |x| (i, s.label_of(x))))
        .collect();

    for (kind, shows, mut free) in [("own", own, own_free), ("old", old, old_free)] {
        // One free seat is kept for the herd: of the first show when it has one, else
        // of the first that has (the fill may have left an old show with none: CI's
        // quick run at 10 shows once found none in the first).
        let herd_at = free
            .iter()
            .position(|(s, _)| *s == 0)
            .or_else(|| (!free.is_empty()).then_some(0))
            .map(|i| free.swap_remove(i));
        let shows = Arc::new(shows);
        // The old shows' free seats are few at small sizes (900 at 1 show): their
        // holds follow the own shows' without a warm-up of their own, so that none are
        // spent unmeasured.
        let warmup = if kind == "own" {
            ctx.common.warmup
        } else {
            0.0
        };
        let made = holds(ctx, &mut r, kind, &shows, Seats::new(free), warmup).await;
        map_warm(ctx, &mut r, kind, &shows[0]).await;
        confirms(ctx, &mut r, kind, made, args.confirms).await;
        match herd_at {
            Some((at, label)) => herd(ctx, &mut r, kind, &shows[at], &label, args.herd).await,
            None => r.check(&format!("{kind}_herd"), false, "no free seat for the herd"),
        }
    }
    r.elapsed_s = ctx.common.duration;
    r.check_ran();
    Ok(r)
}

/// Walks `GET /shows?limit=50` from the first page to the last: shows listed, distinct
/// ids among them, and the cursor of the last page.
async fn walk_shows(conn: &mut Conn) -> Result<(u64, u64, Option<String>), String> {
    let (mut listed, mut seen, mut cursor, mut last) = (0u64, HashSet::new(), None, None);
    loop {
        let path = match &cursor {
            Some(c) => format!("/shows?limit=50&cursor={c}"),
            None => "/shows?limit=50".to_owned(),
        };
        let reply = conn
            .get(&path)
            .await
            .map_err(|f| format!("GET {path}: {}", f.name()))?;
        if reply.status != 200 {
            return Err(format!("GET {path} answered {}", reply.status));
        }
        let page = reply.json();
        for s in page["shows"].as_array().into_iter().flatten() {
            listed += 1;
            seen.insert(s["id"].as_str().unwrap_or_default().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => {
                last = Some(next.to_owned());
                cursor = last.clone();
            }
            None => return Ok((listed, seen.len() as u64, last)),
        }
    }
}

/// `n` GETs of `path`, one after the other, recorded as `op`.
async fn sequential(conn: &mut Conn, op: &'static str, path: &str, n: usize) -> Recorder {
    let mut rec = Recorder::default();
    for _ in 0..n.max(1) {
        let t = Instant::now();
        let res = conn.get(path).await;
        rec.record(op, t.elapsed(), &res);
    }
    rec
}

/// Adds a phase's ops to the result, throughput over the phase's own `secs`; checks
/// that every answer was a 200 or 201 (as each phase expects).
fn summarise(r: &mut RunResult, rec: Recorder, secs: f64) {
    let secs = secs.max(1e-6);
    for (op, stats) in rec.ops {
        let s = OpSummary::new(stats, secs);
        let ok = s.status_count(200) + s.status_count(201);
        r.check(
            op,
            s.requests > 0 && ok == s.requests && s.error_count() == 0,
            format!(
                "{ok} of {} answers 200/201, {} failures",
                s.requests,
                s.error_count()
            ),
        );
        r.ops.insert(op.to_owned(), s);
    }
}

fn op_name(kind: &str, what: &str) -> &'static str {
    match (kind, what) {
        ("own", "hold") => "own_hold",
        ("old", "hold") => "old_hold",
        ("own", "map_warm") => "own_map_warm",
        ("old", "map_warm") => "old_map_warm",
        ("own", "confirm") => "own_confirm",
        ("old", "confirm") => "old_confirm",
        ("own", "herd") => "own_herd",
        _ => "old_herd",
    }
}

/// Holds of 1 seat each for `--duration` seconds (after `warmup` seconds), or until
/// the seats run out; the holds made.
async fn holds(
    ctx: &Ctx,
    r: &mut RunResult,
    kind: &str,
    shows: &Arc<Vec<Show>>,
    seats: Seats,
    warmup: f64,
) -> Vec<Made> {
    let op = op_name(kind, "hold");
    let seats = Arc::new(seats);
    let made: Arc<Mutex<Vec<Made>>> = Arc::default();
    let window = Window::start(warmup, ctx.common.duration);
    let rec = workers(ctx.common.concurrency.max(1), |w| {
        let (target, shows, seats, made) = (
            ctx.target.clone(),
            shows.clone(),
            seats.clone(),
            made.clone(),
        );
        async move {
            let mut rec = Recorder::default();
            let mut conn = Conn::lazy(target);
            let user = format!("growth-{w}");
            while window.running() {
                let Some((s, label)) = seats.take() else {
                    break;
                };
                let body = json!({"seats": [label], "ttl_seconds": 600});
                let t = Instant::now();
                let res = conn
                    .send(
                        Method::POST,
                        &shows[*s].holds_path(),
                        Caller::User(&user),
                        Some(&body),
                    )
                    .await;
                if window.counts(t) {
                    rec.record(op, t.elapsed(), &res);
                }
                if let Ok(reply) = &res {
                    if let Some(id) = reply.json()["hold_id"].as_str() {
                        made.lock()
                            .expect("made")
                            .push((id.to_owned(), user.clone()));
                    }
                }
            }
            rec
        }
    })
    .await;
    let secs = window.elapsed().min(ctx.common.duration.max(0.001));
    summarise(r, rec, secs);
    r.extra(&format!("{kind}_seats_used"), seats.used());
    r.extra(&format!("{kind}_seats_free"), seats.items.len());
    r.extra(
        &format!("{kind}_seats_ran_out"),
        seats.used() >= seats.items.len(),
    );
    let made = std::mem::take(&mut *made.lock().expect("made"));
    made
}

/// The map of `show` read by `--concurrency` readers for half of `--duration`.
async fn map_warm(ctx: &Ctx, r: &mut RunResult, kind: &str, show: &Show) {
    let op = op_name(kind, "map_warm");
    let path = Arc::new(format!("/shows/{}/seats", show.id));
    let t = Instant::now();
    let window = Window::start(0.0, ctx.common.duration / 2.0);
    let rec = workers(ctx.common.concurrency.max(1), |_| {
        let (target, path) = (ctx.target.clone(), path.clone());
        async move {
            let mut rec = Recorder::default();
            let mut conn = Conn::lazy(target);
            while window.running() {
                let t = Instant::now();
                let res = conn.get(&path).await;
                rec.record(op, t.elapsed(), &res);
            }
            rec
        }
    })
    .await;
    summarise(r, rec, t.elapsed().as_secs_f64());
}

/// Confirms of up to `n` of the holds `made`, by `--concurrency` workers.
async fn confirms(ctx: &Ctx, r: &mut RunResult, kind: &str, mut made: Vec<Made>, n: usize) {
    let op = op_name(kind, "confirm");
    made.truncate(n.max(1));
    let todo = Arc::new(Mutex::new(made));
    let t = Instant::now();
    let rec = workers(ctx.common.concurrency.max(1), |_| {
        let (target, todo) = (ctx.target.clone(), todo.clone());
        async move {
            let mut rec = Recorder::default();
            let mut conn = Conn::lazy(target);
            loop {
                let Some((hold, user)) = todo.lock().expect("todo").pop() else {
                    break;
                };
                let path = format!("/holds/{hold}/confirm");
                let t = Instant::now();
                let res = conn
                    .send(Method::POST, &path, Caller::User(&user), None)
                    .await;
                rec.record(op, t.elapsed(), &res);
            }
            rec
        }
    })
    .await;
    summarise(r, rec, t.elapsed().as_secs_f64());
}

/// `n` clients at once on seat `label` of `show`: exactly one may win.
async fn herd(ctx: &Ctx, r: &mut RunResult, kind: &str, show: &Show, label: &str, n: usize) {
    let op = op_name(kind, "herd");
    let n = n.max(1);
    let body = json!({"seats": [label], "ttl_seconds": 600});
    let prefix = format!("growth-herd-{kind}-");
    let path = show.holds_path();
    let herd = Herd {
        path: &path,
        body,
        user_prefix: &prefix,
        keyed: None,
    };
    let h = release(ctx, n, 200, herd).await;
    let wall = h.wall.as_secs_f64().max(1e-6);
    let mut rec = h.rec;
    let stats = rec.ops.remove("hold").unwrap_or_default();
    let s = OpSummary::new(stats, wall);
    let (won, lost, errors) = (s.status_count(201), s.status_count(409), s.error_count());
    r.check(
        op,
        won == 1 && lost == n as u64 - 1 && errors == 0,
        format!(
            "{won} x 201, {lost} x 409, {errors} failures (want 1, {}, 0)",
            n - 1
        ),
    );
    r.ops.insert(op.to_owned(), s);
    r.extra(
        &format!("{kind}_herd_wall_s"),
        (wall * 1000.0).round() / 1000.0,
    );
}
