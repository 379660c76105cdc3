//! `abuse`: one abusive user next to a crowd (issue 19, point 3). `--concurrency`
//! closed-loop workers hold seats for `--users` distinct users (10,000 by default),
//! each request from the next user in turn, so that every one of them sends a hold
//! now and then, far below any sensible limit; meanwhile one user sends
//! `--abuser-rate` holds a second (open loop, 1,000 by default; 0: no abuser) on seats
//! of its own. Against a server with `RATE_HOLDS_PER_USER` set (scripts/bench.sh starts
//! one), run once with the abuser and once without: the crowd's hold latency (`hold`)
//! should not move, and the abuser's answers (`abuser`) should be `429` but for its
//! rate.
//!
//! Every seat group is handed out once (the crowd's and the abuser's from one pool):
//! a refused abuser request wastes its group, so the pool is sized for both rates.

use super::holds::{group_labels, make_pool, PoolArgs};
use super::{hold_body, paced, result, workers, ConnPool};
use crate::client::{Caller, Conn};
use crate::common::{Common, Ctx, Window};
use crate::stats::{Recorder, RunResult};
use hyper::Method;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub pool: PoolArgs,
    /// Distinct users of the crowd; request n is sent by user n mod this.
    #[arg(long, default_value_t = 10_000)]
    pub users: usize,
    /// Holds a second sent by the one abusive user (open loop); 0: none.
    #[arg(long, default_value_t = 1000.0)]
    pub abuser_rate: f64,
    /// The server has no RATE_HOLDS_PER_USER (a run for contrast): the abuser is not
    /// expected to be refused.
    #[arg(long)]
    pub unlimited: bool,
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<RunResult, String> {
    let abuser_rate = args.abuser_rate.max(0.0);
    let needed = PoolArgs::groups_for(args.pool.rate_bound + abuser_rate, &ctx.common);
    let (shows, pool) = make_pool(ctx, "bench abuse", &args.pool, 1, needed).await?;
    let c = ctx.common.concurrency.max(1);
    let users = args.users.max(1);
    ctx.common.load_starts();
    let window = Window::start(ctx.common.warmup, ctx.common.duration);
    let next_user = Arc::new(AtomicUsize::new(0));
    let abuser_rec = Arc::new(Mutex::new(Recorder::default()));

    let abuser = {
        let (shows, pool, rec) = (shows.clone(), pool.clone(), abuser_rec.clone());
        let conns = ConnPool::new(ctx.target.clone());
        async move {
            if abuser_rate <= 0.0 {
                return 0;
            }
            paced(abuser_rate, window, move |_| {
                let (shows, pool, rec, conns) =
                    (shows.clone(), pool.clone(), rec.clone(), conns.clone());
                async move {
                    let Some((s, first)) = pool.take() else {
                        return;
                    };
                    let show = &shows[s];
                    let body = hold_body(&group_labels(show, first, 1), 600);
                    let mut conn = conns.get();
                    let t = Instant::now();
                    let res = conn
                        .send(
                            Method::POST,
                            &show.holds_path(),
                            Caller::User("bench-abuser"),
                            Some(&body),
                        )
                        .await;
                    conns.put(conn);
                    if window.counts(t) {
                        rec.lock()
                            .expect("recorder")
                            .record("abuser", t.elapsed(), &res);
                    }
                }
            })
            .await
        }
    };
    let crowd = workers(c, |_| {
        let (target, shows, pool, next_user) = (
            ctx.target.clone(),
            shows.clone(),
            pool.clone(),
            next_user.clone(),
        );
        async move {
            let mut rec = Recorder::default();
            let mut conn = Conn::lazy(target);
            while window.running() {
                let Some((s, first)) = pool.take() else { break };
                let show = &shows[s];
                let body = hold_body(&group_labels(show, first, 1), 600);
                let user = format!(
                    "bench-crowd-{}",
                    next_user.fetch_add(1, Ordering::Relaxed) % users
                );
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
    });
    let (mut rec, abuser_sent) = tokio::join!(crowd, abuser);
    let abuser_rec = std::mem::take(&mut *abuser_rec.lock().expect("recorder"));
    rec.merge(abuser_rec);

    let secs = window.elapsed().min(ctx.common.duration.max(0.001));
    let mut r = result(ctx, "abuse", "hold", c);
    r.elapsed_s = secs;
    r.add_ops(rec, secs);
    r.extra("users", users);
    r.extra("abuser_rate", abuser_rate);
    r.extra("abuser_sent", abuser_sent);
    r.extra("seat_groups_used", pool.used());
    r.extra("seat_groups_total", pool.len());
    r.extra("shows", shows.len());
    r.check_ran();
    r.check(
        "pool",
        !pool.exhausted(),
        format!("{} of {} seat groups used", pool.used(), pool.len()),
    );
    let status = |op: &str, code: u16| r.ops.get(op).map_or(0, |o| o.status_count(code));
    let (crowd_limited, crowd_created) = (status("hold", 429), status("hold", 201));
    let (limited, created) = (status("abuser", 429), status("abuser", 201));
    r.extra("abuser_429", limited);
    r.extra("abuser_201", created);
    r.check(
        "crowd_not_limited",
        crowd_limited == 0 && crowd_created > 0,
        format!("the crowd's holds: {crowd_created} 201, {crowd_limited} 429"),
    );
    r.extra("unlimited", args.unlimited);
    if abuser_rate > 0.0 && !args.unlimited {
        r.check(
            "abuser_limited",
            limited > 0,
            format!(
                "the abuser's holds: {created} 201, {limited} 429 (the server needs RATE_HOLDS_PER_USER)"
            ),
        );
    }
    Ok(r)
}
