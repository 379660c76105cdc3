//! `expiry`: how soon after a hold's `expires_at` its `expire` event arrives. One
//! Server-Sent Events stream on a show; holds of one seat each with `ttl_seconds` 1
//! (`--ttl`) at `--rate` per second for the duration; the delay of each hold is the
//! arrival of the `expire` event naming its seat minus the `expires_at` of its 201
//! (the server's database clock; same machine, same clock). Check: every hold's
//! expire event arrived.

use super::{hold_body, paced, result, ConnPool};
use crate::client::{scan_event, Caller, Sse};
use crate::common::{Common, Ctx, Window};
use crate::stats::{Dist, Recorder, RunResult};
use chrono::{DateTime, Utc};
use hyper::Method;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// Holds per second.
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// ttl_seconds of each hold.
    #[arg(long, default_value_t = 1)]
    pub ttl: u32,
    /// Seconds to wait after the last hold's deadline for missing events.
    #[arg(long, default_value_t = 10.0)]
    pub grace: f64,
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<RunResult, String> {
    let holds_max = (args.rate * (ctx.common.duration + 1.0) * 1.2) as usize + 100;
    let rows = holds_max.div_ceil(200).clamp(1, 500);
    let show = Arc::new(ctx.create_show("bench expiry", rows, 200).await?);

    // label -> when its expire event arrived (first one).
    let arrivals: Arc<Mutex<HashMap<String, DateTime<Utc>>>> = Arc::default();
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let events_path = format!("/shows/{}/events", show.id);
    let mut sse = Sse::open(&ctx.target, &events_path, None)
        .await
        .map_err(|e| format!("opening {events_path}: {e}"))?;
    if !sse.wait_open().await {
        return Err(format!("{events_path} closed before sending anything"));
    }
    let reconnects = Arc::new(Mutex::new(0u64));
    let reader = {
        let (arrivals, target, reconnects) =
            (arrivals.clone(), ctx.target.clone(), reconnects.clone());
        tokio::spawn(async move {
            let mut last_id = String::new();
            loop {
                let ev = tokio::select! {
                    ev = sse.next() => ev,
                    _ = stopped.changed() => return,
                };
                match ev {
                    Some(ev) => {
                        let now = Utc::now();
                        if !ev.id.is_empty() {
                            last_id = ev.id.clone();
                        }
                        if ev.event != "seats" {
                            continue;
                        }
                        let (cause, labels) = scan_event(&ev.data);
                        if cause == Some("expire") {
                            let mut a = arrivals.lock().expect("arrivals");
                            for l in labels {
                                a.entry(l.to_owned()).or_insert(now);
                            }
                        }
                    }
                    None => {
                        // The stream ended: resume after the last event seen.
                        *reconnects.lock().expect("reconnects") += 1;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        let id = (!last_id.is_empty()).then_some(last_id.as_str());
                        if let Ok(s) = Sse::open(&target, &events_path, id).await {
                            sse = s;
                        }
                    }
                }
            }
        })
    };

    // label -> expires_at of its hold.
    let deadlines: Arc<Mutex<HashMap<String, DateTime<Utc>>>> = Arc::default();
    let rec = Arc::new(Mutex::new(Recorder::default()));
    let pool = ConnPool::new(ctx.target.clone());
    let window = Window::start(0.0, ctx.common.duration);
    let ttl = args.ttl;
    let sent = paced(args.rate, window, |i| {
        let (pool, show, deadlines, rec) =
            (pool.clone(), show.clone(), deadlines.clone(), rec.clone());
        async move {
            if i >= show.seats() {
                return;
            }
            let label = show.label_of(i);
            let mut conn = pool.get();
            let t = Instant::now();
            let res = conn
                .send(
                    Method::POST,
                    &show.holds_path(),
                    Caller::User("bench-expiry"),
                    Some(&hold_body(std::slice::from_ref(&label), ttl)),
                )
                .await;
            rec.lock().expect("rec").record("hold", t.elapsed(), &res);
            pool.put(conn);
            if let Ok(r) = &res {
                if r.status == 201 {
                    let at = r.json()["expires_at"]
                        .as_str()
                        .and_then(|s| DateTime::parse_from_rfc3339(s).ok());
                    if let Some(at) = at {
                        deadlines
                            .lock()
                            .expect("deadlines")
                            .insert(label, at.with_timezone(&Utc));
                    }
                }
            }
        }
    })
    .await;
    let secs = window.elapsed();

    // Wait for the last expire events.
    let last_deadline = deadlines.lock().expect("deadlines").values().max().copied();
    let give_up = Instant::now() + Duration::from_secs_f64(args.ttl as f64 + args.grace);
    loop {
        let done = {
            let (d, a) = (deadlines.lock().expect("d"), arrivals.lock().expect("a"));
            d.keys().all(|l| a.contains_key(l))
        };
        if done || Instant::now() >= give_up {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(true);
    let _ = reader.await;

    let (d, a) = (
        deadlines.lock().expect("d").clone(),
        arrivals.lock().expect("a").clone(),
    );
    let mut delays = Vec::with_capacity(d.len());
    let (mut missing, mut early) = (0u64, 0u64);
    for (label, at) in &d {
        match a.get(label) {
            Some(arr) => {
                let us = (*arr - *at).num_microseconds().unwrap_or(i64::MAX);
                if us < 0 {
                    early += 1;
                }
                delays.push(us.max(0) as u64);
            }
            None => missing += 1,
        }
    }
    let rec = std::mem::take(&mut *rec.lock().expect("rec"));
    let mut r = result(ctx, "expiry", "hold", 1);
    r.elapsed_s = secs;
    r.add_ops(rec, secs);
    r.delays
        .insert("expire_delay".into(), Dist::from_us(delays));
    r.extra("holds_sent", sent);
    r.extra("holds_made", d.len());
    r.extra("rate_per_s", args.rate);
    r.extra("ttl_s", args.ttl);
    r.extra("events_missing", missing);
    r.extra("events_before_deadline", early);
    r.extra("sse_reconnects", *reconnects.lock().expect("reconnects"));
    if let Some(l) = last_deadline {
        r.extra("last_deadline", l.to_rfc3339());
    }
    r.check_ran();
    r.check(
        "all_expired",
        missing == 0 && !d.is_empty(),
        format!("{} holds, {missing} expire events missing", d.len()),
    );
    r.check(
        "none_early",
        early == 0,
        format!("{early} expire events before the hold's expires_at"),
    );
    Ok(r)
}
