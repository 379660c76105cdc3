//! `holds`: uncontended holds. Workers hold seat groups handed out once each, in
//! random order, across many shows (50 shows of 10 x 200 seats by default), so that no
//! two requests ask for the same seat: a 409 would be a surprise. One keep-alive
//! connection per worker; 1 seat per hold (`--seats 4` for the four-seat twin).

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
}

/// Creates the shows and the pool of seat groups.
pub async fn make_pool(
    ctx: &Ctx,
    title: &str,
    p: &PoolArgs,
    group: usize,
) -> Result<(Arc<Vec<Show>>, Arc<SeatPool>), String> {
    if group == 0 || group > p.per_row {
        return Err(format!("--seats must be 1..={}", p.per_row));
    }
    let shows = ctx.create_shows(title, p.shows, p.rows, p.per_row).await?;
    let pool = SeatPool::new(&shows, group);
    Ok((Arc::new(shows), Arc::new(pool)))
}

/// Labels of the group of `n` seats starting at seat index `first` of `show`.
pub fn group_labels(show: &Show, first: usize, n: usize) -> Vec<String> {
    (first..first + n).map(|i| show.label_of(i)).collect()
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<RunResult, String> {
    let (shows, pool) = make_pool(ctx, "bench holds", &args.pool, args.seats).await?;
    let c = ctx.common.concurrency.max(1);
    let window = Window::start(ctx.common.warmup, ctx.common.duration);
    let (seats, ttl) = (args.seats, args.ttl);
    let rec = workers(c, |w| {
        let (target, shows, pool) = (ctx.target.clone(), shows.clone(), pool.clone());
        async move {
            let mut rec = Recorder::default();
            let mut conn = Conn::lazy(target);
            let user = format!("bench-holds-{w}");
            while window.running() {
                let Some((s, first)) = pool.take() else { break };
                let show = &shows[s];
                let body = hold_body(&group_labels(show, first, seats), ttl);
                let t = Instant::now();
                let res = conn
                    .send(
                        Method::POST,
                        &show.holds_path(),
                        Caller::User(&user),
                        Some(&body),
                    )
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
    r.check_ran();
    r.check(
        "pool",
        !pool.exhausted(),
        format!("{} of {} seat groups used", pool.used(), pool.len()),
    );
    Ok(r)
}
