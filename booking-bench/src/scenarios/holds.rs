//! `holds`: uncontended holds. Workers hold seat groups handed out once each, in
//! random order, across many shows (at least 50 shows of 10 x 200 seats by default;
//! `--rows 500 --per-row 200` for shows of 100,000 seats), so that no two requests ask
//! for the same seat: a 409 would be a surprise. One keep-alive connection per worker;
//! 1 seat per hold (`--seats 4` for the four-seat twin). `--keyed`: every request
//! sends a fresh `Idempotency-Key`, as a careful client does.
//!
//! The pool lasts for `--rate-bound` holds a second over warm-up and duration (more
//! shows are made when `--shows` are too few): the `pool` check then fails only when
//! the server is faster than that bound.

use super::{hold_body, result, workers};
use crate::client::{Caller, Conn};
use crate::common::{Common, Ctx, SeatPool, Show, Window};
use crate::stats::{Recorder, RunResult};
use hyper::Method;
use std::sync::Arc;
use std::time::Instant;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub pool: PoolArgs,
    /// Seats per hold (adjacent seats of one row).
    #[arg(long, default_value_t = 1)]
    pub seats: usize,
    /// ttl_seconds of each hold.
    #[arg(long, default_value_t = 600)]
    pub ttl: u32,
    /// Send a fresh `Idempotency-Key` with every hold.
    #[arg(long)]
    pub keyed: bool,
}

/// The shows whose seats the workers hold.
#[derive(clap::Args, Debug, Clone)]
pub struct PoolArgs {
    /// Shows to create.
    #[arg(long, default_value_t = 50)]
    pub shows: usize,
    /// Rows per show.
    #[arg(long, default_value_t = 10)]
    pub rows: usize,
    /// Seats per row.
    #[arg(long, default_value_t = 200)]
    pub per_row: usize,
    /// The most requests a second the pool must last for, over warm-up and duration:
    /// a generous bound (issue 18 saw one worker make 9,018 holds/s), so that the pool
    /// never runs out because the machine is fast.
    #[arg(long, default_value_t = 20000.0)]
    pub rate_bound: f64,
}

impl PoolArgs {
    /// Seat groups for `per_s` requests a second over the run of `common`, each using
    /// one group.
    pub fn groups_for(per_s: f64, common: &Common) -> usize {
        let span = common.warmup.max(0.0) + common.duration.max(0.0);
        (per_s.max(1.0) * span).ceil() as usize
    }
}

/// Creates the shows and the pool of seat groups: `--shows` shows, or more when they
/// hold fewer than `needed` groups.
pub async fn make_pool(
    ctx: &Ctx,
    title: &str,
    p: &PoolArgs,
    group: usize,
    needed: usize,
) -> Result<(Arc<Vec<Show>>, Arc<SeatPool>), String> {
    if group == 0 || group > p.per_row {
        return Err(format!("--seats must be 1..={}", p.per_row));
    }
    let per_show = (p.rows * (p.per_row / group)).max(1);
    let n = p.shows.max(needed.div_ceil(per_show));
    if n > p.shows {
        eprintln!(
            "booking-bench: {n} shows instead of {} for a pool of {needed} groups of {group}",
            p.shows
        );
    }
    let shows = ctx.create_shows(title, n, p.rows, p.per_row).await?;
    let pool = SeatPool::new(&shows, group);
    Ok((Arc::new(shows), Arc::new(pool)))
}

/// Labels of the group of `n` seats starting at seat index `first` of `show`.
pub fn group_labels(show: &Show, first: usize, n: usize) -> Vec<String> {
    (first..first + n).map(|i| show.label_of(i)).collect()
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<RunResult, String> {
    let needed = PoolArgs::groups_for(args.pool.rate_bound, &ctx.common);
    let (shows, pool) = make_pool(ctx, "bench holds", &args.pool, args.seats, needed).await?;
    let c = ctx.common.concurrency.max(1);
    ctx.common.load_starts();
    let window = Window::start(ctx.common.warmup, ctx.common.duration);
    let (seats, ttl, keyed) = (args.seats, args.ttl, args.keyed);
    // Keys unique to this run: a key reused across runs would replay an old answer.
    let run_key: u64 = rand::random();
    let rec = workers(c, |w| {
        let (target, shows, pool) = (ctx.target.clone(), shows.clone(), pool.clone());
        async move {
            let mut rec = Recorder::default();
            let mut conn = Conn::lazy(target);
            let user = format!("bench-holds-{w}");
            let mut sent = 0u64;
            while window.running() {
                let Some((s, first)) = pool.take() else { break };
                let show = &shows[s];
                let body = hold_body(&group_labels(show, first, seats), ttl);
                sent += 1;
                let key = format!("{run_key:016x}-{w}-{sent}");
                let caller = match keyed {
                    true => Caller::Keyed(&user, &key),
                    false => Caller::User(&user),
                };
                let t = Instant::now();
                let res = conn
                    .send(Method::POST, &show.holds_path(), caller, Some(&body))
                    .await;
                if window.counts(t) {
                    rec.record("hold", t.elapsed(), &res);
                }
            }
            rec
        }
    })
    .await;
    let secs = window.elapsed().min(ctx.common.duration.max(0.001));
    let mut r = result(ctx, "holds", "hold", c);
    r.elapsed_s = secs;
    r.add_ops(rec, secs);
    r.extra("seats_per_hold", seats);
    r.extra("seat_groups_used", pool.used());
    r.extra("seat_groups_total", pool.len());
    r.extra("shows", shows.len());
    r.extra("seats_per_show", args.pool.rows * args.pool.per_row);
    r.extra("keyed", keyed);
    r.check_ran();
    r.check(
        "pool",
        !pool.exhausted(),
        format!("{} of {} seat groups used", pool.used(), pool.len()),
    );
    Ok(r)
}
