//! `mixed`: an on-sale's mix of requests by `--concurrency` users, over `--shows`
//! shows of 20 x 50 seats. Each request is, at random:
//!
//! - 55% `seatmap`: GET /shows/{id}/seats of a random show;
//! - 5% `shows`: GET /shows;
//! - 20% `hold`: 1 to 4 adjacent random seats of a random show (ttl 600), kept;
//! - 10% `confirm`: POST /holds/{id}/confirm of the user's oldest kept hold;
//! - 5% `release`: DELETE /holds/{id} of the user's newest kept hold;
//! - 5% `abandon`: a hold (ttl 5 s) that is never looked at again (it expires).
//!
//! A confirm or release without a kept hold sends a `hold` instead. Random seats
//! collide more and more as the shows fill: 409s are part of the picture.

use super::{hold_body, result, workers};
use crate::client::{Caller, Conn};
use crate::common::{Common, Ctx, Show, Window};
use crate::stats::{Recorder, RunResult};
use hyper::Method;
use rand::Rng;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// Shows to create (20 rows x 50 seats each).
    #[arg(long, default_value_t = 20)]
    pub shows: usize,
}

fn random_group(show: &Show, rng: &mut impl Rng) -> Vec<String> {
    let n = rng.gen_range(1..=4usize).min(show.per_row);
    let row = rng.gen_range(0..show.rows);
    let start = rng.gen_range(0..=show.per_row - n);
    (0..n).map(|k| show.label(row, start + k + 1)).collect()
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<RunResult, String> {
    let shows = Arc::new(
        ctx.create_shows("bench mixed", args.shows.max(1), 20, 50)
            .await?,
    );
    let c = ctx.common.concurrency.max(1);
    let window = Window::start(ctx.common.warmup, ctx.common.duration);
    let rec = workers(c, |w| {
        let (target, shows) = (ctx.target.clone(), shows.clone());
        async move {
            let mut rec = Recorder::default();
            let mut conn = Conn::lazy(target);
            let user = format!("bench-mixed-{w}");
            let mut kept: VecDeque<String> = VecDeque::new();
            while window.running() {
                let (roll, s) = {
                    let mut rng = rand::thread_rng();
                    (rng.gen_range(0..100u32), rng.gen_range(0..shows.len()))
                };
                let show = &shows[s];
                let t = Instant::now();
                let (op, res): (&'static str, _) = if roll < 55 {
                    (
                        "seatmap",
                        conn.get(&format!("/shows/{}/seats", show.id)).await,
                    )
                } else if roll < 60 {
                    ("shows", conn.get("/shows").await)
                } else if (80..90).contains(&roll) && !kept.is_empty() {
                    let id = kept.pop_front().expect("non-empty");
                    let path = format!("/holds/{id}/confirm");
                    (
                        "confirm",
                        conn.send(Method::POST, &path, Caller::User(&user), None)
                            .await,
                    )
                } else if (90..95).contains(&roll) && !kept.is_empty() {
                    let id = kept.pop_back().expect("non-empty");
                    let path = format!("/holds/{id}");
                    (
                        "release",
                        conn.send(Method::DELETE, &path, Caller::User(&user), None)
                            .await,
                    )
                } else {
                    let abandon = roll >= 95;
                    let labels = random_group(show, &mut rand::thread_rng());
                    let body = hold_body(&labels, if abandon { 5 } else { 600 });
                    let res = conn
                        .send(
                            Method::POST,
                            &show.holds_path(),
                            Caller::User(&user),
                            Some(&body),
                        )
                        .await;
                    if !abandon {
                        if let Ok(r) = &res {
                            if r.status == 201 {
                                if let Some(id) = r.json()["hold_id"].as_str() {
                                    kept.push_back(id.to_owned());
                                }
                            }
                        }
                    }
                    (if abandon { "abandon" } else { "hold" }, res)
                };
                if window.counts(t) {
                    rec.record(op, t.elapsed(), &res);
                    rec.record("all", t.elapsed(), &res);
                }
            }
            rec
        }
    })
    .await;
    let secs = window.elapsed().min(ctx.common.duration.max(0.001));
    let mut r = result(ctx, "mixed", "all", c);
    r.elapsed_s = secs;
    r.add_ops(rec, secs);
    r.extra("shows", shows.len());
    r.check_ran();
    Ok(r)
}
