//! `seatmap`: GET /shows/{id}/seats of a 1,000-seat show (20 rows x 50) by
//! `--concurrency` readers, while `--background` workers hold a random seat of that
//! show and release it again (so the map keeps changing).

use super::{hold_body, result, workers};
use crate::client::{Caller, Conn};
use crate::common::{Common, Ctx, Window};
use crate::stats::{Recorder, RunResult};
use hyper::Method;
use rand::Rng;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    #[arg(long, default_value_t = 20)]
    pub rows: usize,
    #[arg(long, default_value_t = 50)]
    pub per_row: usize,
    /// Workers holding and releasing random seats of the show meanwhile.
    #[arg(long, default_value_t = 4)]
    pub background: usize,
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<RunResult, String> {
    let show = Arc::new(
        ctx.create_show("bench seat map", args.rows, args.per_row)
            .await?,
    );
    let c = ctx.common.concurrency.max(1);
    let window = Window::start(ctx.common.warmup, ctx.common.duration);
    let map_path = Arc::new(format!("/shows/{}/seats", show.id));
    let bad_maps = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let stop_bg = Arc::new(AtomicBool::new(false));

    let bg = {
        let (target, show, stop_bg) = (ctx.target.clone(), show.clone(), stop_bg.clone());
        let n = args.background;
        tokio::spawn(async move {
            workers(n, |w| {
                let (target, show, stop_bg) = (target.clone(), show.clone(), stop_bg.clone());
                async move {
                    let mut rec = Recorder::default();
                    let mut conn = Conn::lazy(target);
                    let user = format!("bench-seatmap-bg-{w}");
                    while window.running() && !stop_bg.load(Ordering::Relaxed) {
                        let i = rand::thread_rng().gen_range(0..show.seats());
                        let body = hold_body(&[show.label_of(i)], 600);
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
                            rec.record("bg_hold", t.elapsed(), &res);
                        }
                        let id = match &res {
                            Ok(r) if r.status == 201 => {
                                r.json()["hold_id"].as_str().map(str::to_owned)
                            }
                            _ => None,
                        };
                        if let Some(id) = id {
                            let t = Instant::now();
                            let res = conn
                                .send(
                                    Method::DELETE,
                                    &format!("/holds/{id}"),
                                    Caller::User(&user),
                                    None,
                                )
                                .await;
                            if window.counts(t) {
                                rec.record("bg_release", t.elapsed(), &res);
                            }
                        }
                    }
                    rec
                }
            })
            .await
        })
    };

    let seats = show.seats();
    let rec = workers(c, |_| {
        let (target, map_path, bad_maps, bytes) = (
            ctx.target.clone(),
            map_path.clone(),
            bad_maps.clone(),
            bytes.clone(),
        );
        async move {
            let mut rec = Recorder::default();
            let mut conn = Conn::lazy(target);
            let mut checked = false;
            while window.running() {
                let t = Instant::now();
                let res = conn.get(&map_path).await;
                if window.counts(t) {
                    rec.record("seatmap", t.elapsed(), &res);
                }
                if let Ok(r) = &res {
                    if r.status == 200 {
                        bytes.store(r.body.len() as u64, Ordering::Relaxed);
                        // Parse one map per worker: it must list every seat.
                        if !checked {
                            checked = true;
                            let n = r.json()["seats"].as_array().map(|a| a.len()).unwrap_or(0);
                            if n != seats {
                                bad_maps.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
            }
            rec
        }
    })
    .await;
    let secs = window.elapsed().min(ctx.common.duration.max(0.001));
    stop_bg.store(true, Ordering::Relaxed);
    let bg_rec = bg.await.unwrap_or_default();
    let mut r = result(ctx, "seatmap", "seatmap", c);
    r.elapsed_s = secs;
    r.add_ops(rec, secs);
    r.add_ops(bg_rec, secs);
    r.extra("seats", seats);
    r.extra("background_workers", args.background);
    r.extra("map_bytes", bytes.load(Ordering::Relaxed));
    r.check_ran();
    let bad = bad_maps.load(Ordering::Relaxed);
    r.check(
        "complete_maps",
        bad == 0,
        format!("{bad} sampled maps without all {seats} seats"),
    );
    Ok(r)
}
