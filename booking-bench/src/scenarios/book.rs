//! `book`: hold, then confirm (POST /holds/{id}/confirm). A "booking" is the pair; its
//! latency is that of both requests, its status the confirm's (or the hold's when the
//! hold failed). Seats come from a pool as in `holds`, so nobody competes.

use super::holds::{group_labels, make_pool, PoolArgs};
use super::{hold_body, result, workers};
use crate::client::{Caller, Conn};
use crate::common::{Common, Ctx, Window};
use crate::stats::{Recorder, RunResult};
use hyper::Method;
use std::time::Instant;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub pool: PoolArgs,
    /// Seats per booking (adjacent seats of one row).
    #[arg(long, default_value_t = 1)]
    pub seats: usize,
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<RunResult, String> {
    // A booking is two requests (hold, confirm) on one seat group.
    let needed = PoolArgs::groups_for(args.pool.rate_bound / 2.0, &ctx.common);
    let (shows, pool) = make_pool(ctx, "bench book", &args.pool, args.seats, needed).await?;
    let c = ctx.common.concurrency.max(1);
    let window = Window::start(ctx.common.warmup, ctx.common.duration);
    let seats = args.seats;
    let rec = workers(c, |w| {
        let (target, shows, pool) = (ctx.target.clone(), shows.clone(), pool.clone());
        async move {
            let mut rec = Recorder::default();
            let mut conn = Conn::lazy(target);
            let user = format!("bench-book-{w}");
            while window.running() {
                let Some((s, first)) = pool.take() else { break };
                let show = &shows[s];
                let body = hold_body(&group_labels(show, first, seats), 600);
                let t = Instant::now();
                let held = conn
                    .send(
                        Method::POST,
                        &show.holds_path(),
                        Caller::User(&user),
                        Some(&body),
                    )
                    .await;
                let counts = window.counts(t);
                if counts {
                    rec.record("hold", t.elapsed(), &held);
                }
                let hold_id = match &held {
                    Ok(r) if r.status == 201 => r.json()["hold_id"].as_str().map(str::to_owned),
                    _ => None,
                };
                let Some(hold_id) = hold_id else {
                    if counts {
                        rec.record("booking", t.elapsed(), &held);
                    }
                    continue;
                };
                let t2 = Instant::now();
                let confirmed = conn
                    .send(
                        Method::POST,
                        &format!("/holds/{hold_id}/confirm"),
                        Caller::User(&user),
                        None,
                    )
                    .await;
                if counts {
                    rec.record("confirm", t2.elapsed(), &confirmed);
                    rec.record("booking", t.elapsed(), &confirmed);
                }
            }
            rec
        }
    })
    .await;
    let secs = window.elapsed().min(ctx.common.duration.max(0.001));
    let mut r = result(ctx, "book", "booking", c);
    r.elapsed_s = secs;
    r.add_ops(rec, secs);
    r.extra("seats_per_booking", seats);
    r.extra("seat_groups_used", pool.used());
    r.check_ran();
    let ok = r
        .ops
        .get("booking")
        .map(|o| o.status_count(201))
        .unwrap_or(0);
    r.check(
        "confirmed",
        ok > 0,
        format!("{ok} bookings confirmed (201)"),
    );
    r.check(
        "pool",
        !pool.exhausted(),
        format!("{} of {} seat groups used", pool.used(), pool.len()),
    );
    Ok(r)
}
