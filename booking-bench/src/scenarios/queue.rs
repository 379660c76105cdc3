//! `queue`: the rush into a waiting room before sales open. One show with a queue and
//! its `sales_start` an hour away; `--joins` distinct buyers join it (`POST
//! /shows/{id}/queue`, each once) from `--concurrency` closed-loop workers, as fast as
//! the server answers. Reported: the joins' latency, whether they all fitted in
//! `--window` seconds (the minute before the start, by default), and the server's RSS
//! (with `--server-pid`). Then sales open (`PATCH sales_start` to now) and the time
//! until the pre-queue is shuffled and the first buyer admitted is measured by polling
//! one buyer's `queue/me`.

use super::result;
use crate::client::{Caller, Conn};
use crate::common::{row_label, Common, Ctx};
use crate::stats::{Recorder, RunResult};
use hyper::Method;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// Distinct buyers who join.
    #[arg(long, default_value_t = 100_000)]
    pub joins: usize,
    /// Seconds the joins should fit in (the minute before sales open).
    #[arg(long, default_value_t = 60.0)]
    pub window: f64,
    /// The queue's admit_per_minute.
    #[arg(long, default_value_t = 600)]
    pub admit_per_minute: u32,
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<RunResult, String> {
    let start = chrono::Utc::now() + chrono::Duration::hours(1);
    let body = json!({
        "title": "bench queue", "starts_at": "2030-01-01T20:00:00Z", "currency": "EUR",
        "prices": {"standard": 1200},
        "rows": (0..10).map(|r| json!({"row": row_label(r), "seats": 100})).collect::<Vec<_>>(),
        "sales_start": start.to_rfc3339(),
        "queue": {"admit_per_minute": args.admit_per_minute, "admission_minutes": 10,
                  "max_seats": 6},
    });
    let mut admin = Conn::lazy(ctx.target.clone());
    let reply = admin
        .send(Method::POST, "/shows", Caller::Admin, Some(&body))
        .await
        .map_err(|f| format!("POST /shows failed ({})", f.name()))?;
    if reply.status != 201 {
        return Err(format!("POST /shows answered {}", reply.status));
    }
    let show = reply.json()["id"].as_str().ok_or("no show id")?.to_owned();
    let path = Arc::new(format!("/shows/{show}/queue"));
    let run: u32 = rand::random();
    let next = Arc::new(AtomicUsize::new(0));
    let c = ctx.common.concurrency.max(1);
    let joins = args.joins;
    ctx.common.load_starts();
    let began = Instant::now();
    let handles: Vec<_> = (0..c)
        .map(|_| {
            let (target, path, next) = (ctx.target.clone(), path.clone(), next.clone());
            tokio::spawn(async move {
                let mut rec = Recorder::default();
                let mut conn = Conn::lazy(target);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= joins {
                        break;
                    }
                    let user = format!("bench-q-{run:08x}-{i}");
                    let t = Instant::now();
                    let res = conn
                        .send(Method::POST, &path, Caller::User(&user), None)
                        .await;
                    rec.record("join", t.elapsed(), &res);
                }
                rec
            })
        })
        .collect();
    let mut rec = Recorder::default();
    for h in handles {
        if let Ok(r) = h.await {
            rec.merge(r);
        }
    }
    let secs = began.elapsed().as_secs_f64();
    let created = rec
        .ops
        .get("join")
        .and_then(|o| o.statuses.get(&201).copied())
        .unwrap_or(0);

    // Sales open: time until the first buyer's place is drawn and they are admitted.
    let opened = Instant::now();
    let patch =
        json!({"sales_start": (chrono::Utc::now() - chrono::Duration::seconds(1)).to_rfc3339()});
    let r = admin
        .send(
            Method::PATCH,
            &format!("/shows/{show}"),
            Caller::Admin,
            Some(&patch),
        )
        .await
        .map_err(|f| format!("PATCH failed ({})", f.name()))?;
    if r.status != 200 {
        return Err(format!("PATCH /shows/{show} answered {}", r.status));
    }
    let me = format!("/shows/{show}/queue/me");
    let first = format!("bench-q-{run:08x}-0");
    let mut shuffled_s = None;
    let mut first_admitted_s = None;
    while opened.elapsed() < Duration::from_secs(120) && first_admitted_s.is_none() {
        if let Ok(r) = admin
            .send(Method::GET, &me, Caller::User(&first), None)
            .await
        {
            let doc = r.json();
            if shuffled_s.is_none() && (doc["position"].is_i64() || doc["state"] != "waiting") {
                shuffled_s = Some(opened.elapsed().as_secs_f64());
            }
            if doc["state"] == "admitted" {
                first_admitted_s = Some(opened.elapsed().as_secs_f64());
            }
            // The first buyer may be far back: the position is enough for "shuffled".
            if shuffled_s.is_some() && doc["state"] == "waiting" {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut r = result(ctx, "queue", "join", c);
    r.elapsed_s = secs;
    r.duration_s = secs;
    r.add_ops(rec, secs);
    r.extra("joins", joins);
    r.extra("joins_created", created);
    r.extra("joins_s", (secs * 100.0).round() / 100.0);
    r.extra("window_s", args.window);
    r.extra("shuffled_after_open_s", shuffled_s);
    r.extra("first_admitted_after_open_s", first_admitted_s);
    r.check_ran();
    r.check(
        "joined",
        created as usize == joins,
        format!("{created} of {joins} joins answered 201"),
    );
    r.check(
        "shuffled",
        shuffled_s.is_some(),
        "the pre-queue got its order after sales opened",
    );
    eprintln!(
        "booking-bench queue: {joins} joins in {secs:.1} s ({} the {:.0} s window)",
        if secs <= args.window {
            "within"
        } else {
            "over"
        },
        args.window
    );
    Ok(r)
}
