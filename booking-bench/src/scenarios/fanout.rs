//! `fanout`: `--subscribers` Server-Sent Events streams on one show (each its own
//! connection, all open before the holds start), while holds of one seat each are made
//! at `--rate` per second. Delivery latency, per event per subscriber: the arrival of
//! the `hold` event naming the seat minus the arrival of the hold's 201 at the load
//! generator (an event that beats the 201 counts 0; `delivery_from_send` measures
//! from the hold request's send instead). Every subscriber must get every hold's event
//! (a stream that ends is resumed with Last-Event-ID).

use super::{hold_body, paced, result, ConnPool};
use crate::client::{scan_event, Caller, Sse};
use crate::common::{raise_fd_limit, Common, Ctx, Window};
use crate::stats::{Dist, Recorder, RunResult};
use hyper::Method;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// SSE subscribers (each its own connection).
    #[arg(long, default_value_t = 10000)]
    pub subscribers: usize,
    /// Holds per second.
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// Streams being opened at once.
    #[arg(long, default_value_t = 200)]
    pub connect_concurrency: usize,
    /// Seconds to wait after the last hold for events still on their way.
    #[arg(long, default_value_t = 15.0)]
    pub grace: f64,
}

/// When a hold was sent and when its 201 arrived.
type Sent = (Instant, Instant);

/// What one subscriber saw.
#[derive(Default)]
struct Seen {
    /// (seat index, arrival) of each hold event's seat.
    arrivals: Vec<(u32, Instant)>,
    reconnects: u64,
    opened: bool,
    /// From asking to open the stream (after the connection gate) to its first bytes.
    open_us: u64,
    failed_attempts: u64,
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<RunResult, String> {
    let k = args.subscribers.max(1);
    let limit = raise_fd_limit();
    if (limit as usize) < k + 100 {
        eprintln!("booking-bench: warning: open-file limit {limit} is below {k} subscribers");
    }
    let holds_max = (args.rate * (ctx.common.duration + 1.0) * 1.2) as usize + 100;
    let rows = holds_max.div_ceil(200).clamp(1, 500);
    let show = Arc::new(ctx.create_show("bench fanout", rows, 200).await?);
    let events_path = Arc::new(format!("/shows/{}/events", show.id));

    let opened = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let received = Arc::new(AtomicU64::new(0));
    let gate = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let open_started = Instant::now();
    let mut subs = Vec::with_capacity(k);
    for _ in 0..k {
        let (target, path, show) = (ctx.target.clone(), events_path.clone(), show.clone());
        let (opened, failed, received, gate) = (
            opened.clone(),
            failed.clone(),
            received.clone(),
            gate.clone(),
        );
        let mut stopped = stopped.clone();
        subs.push(tokio::spawn(async move {
            let mut seen = Seen::default();
            let mut sse = {
                let _permit = gate.acquire().await;
                let t = Instant::now();
                let mut s = None;
                for attempt in 0..3u32 {
                    if let Ok(mut x) = Sse::open(&target, &path, None).await {
                        if x.wait_open().await {
                            s = Some(x);
                            break;
                        }
                    }
                    seen.failed_attempts += 1;
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                }
                seen.open_us = t.elapsed().as_micros() as u64;
                match s {
                    Some(s) => s,
                    None => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        return seen;
                    }
                }
            };
            seen.opened = true;
            opened.fetch_add(1, Ordering::Relaxed);
            let mut last_id = String::new();
            loop {
                let ev = tokio::select! {
                    ev = sse.next() => ev,
                    _ = stopped.changed() => return seen,
                };
                match ev {
                    Some(ev) => {
                        let now = Instant::now();
                        if !ev.id.is_empty() {
                            last_id = ev.id;
                        }
                        if ev.event != "seats" {
                            continue;
                        }
                        let (cause, labels) = scan_event(&ev.data);
                        if cause == Some("hold") {
                            for l in labels {
                                if let Some(i) = show.index_of(l) {
                                    seen.arrivals.push((i as u32, now));
                                    received.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                    }
                    None => {
                        seen.reconnects += 1;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        let id = (!last_id.is_empty()).then_some(last_id.as_str());
                        if let Ok(s) = Sse::open(&target, &path, id).await {
                            sse = s;
                        }
                    }
                }
            }
        }));
    }
    // Every stream open (or given up) before the first hold.
    let open_deadline = Instant::now() + Duration::from_secs(120);
    while opened.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < k
        && Instant::now() < open_deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let open_s = open_started.elapsed().as_secs_f64();
    let n_open = opened.load(Ordering::Relaxed);
    eprintln!("booking-bench: fanout: {n_open} of {k} streams open in {open_s:.1} s");

    // (send, 201 arrival) per seat index.
    let times: Arc<Mutex<Vec<Option<Sent>>>> = Arc::new(Mutex::new(vec![None; show.seats()]));
    let rec = Arc::new(Mutex::new(Recorder::default()));
    let pool = ConnPool::new(ctx.target.clone());
    let window = Window::start(0.0, ctx.common.duration);
    let sent = paced(args.rate, window, |i| {
        let (pool, show, times, rec) = (pool.clone(), show.clone(), times.clone(), rec.clone());
        async move {
            if i >= show.seats() {
                return;
            }
            let mut conn = pool.get();
            let t = Instant::now();
            let res = conn
                .send(
                    Method::POST,
                    &show.holds_path(),
                    Caller::User("bench-fanout"),
                    Some(&hold_body(&[show.label_of(i)], 600)),
                )
                .await;
            let answered = Instant::now();
            rec.lock().expect("rec").record("hold", answered - t, &res);
            pool.put(conn);
            if matches!(&res, Ok(r) if r.status == 201) {
                times.lock().expect("times")[i] = Some((t, answered));
            }
        }
    })
    .await;
    let secs = window.elapsed();
    let made = times
        .lock()
        .expect("times")
        .iter()
        .filter(|t| t.is_some())
        .count();

    let expected = (made * n_open) as u64;
    let give_up = Instant::now() + Duration::from_secs_f64(args.grace);
    while received.load(Ordering::Relaxed) < expected && Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(true);

    let times = times.lock().expect("times").clone();
    let (mut from_201, mut from_send) = (Vec::new(), Vec::new());
    let (mut missed, mut dups, mut before_201, mut reconnects, mut strays) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let (mut open_times, mut failed_attempts) = (Vec::with_capacity(k), 0u64);
    for s in subs {
        let Ok(seen) = s.await else { continue };
        failed_attempts += seen.failed_attempts;
        if !seen.opened {
            continue;
        }
        open_times.push(seen.open_us);
        reconnects += seen.reconnects;
        let mut got = vec![false; times.len()];
        for (i, at) in seen.arrivals {
            let i = i as usize;
            match times.get(i).copied().flatten() {
                Some((send, answered)) => {
                    if got[i] {
                        dups += 1;
                        continue;
                    }
                    got[i] = true;
                    if at < answered {
                        before_201 += 1;
                    }
                    from_201.push(at.saturating_duration_since(answered).as_micros() as u64);
                    from_send.push(at.saturating_duration_since(send).as_micros() as u64);
                }
                None => strays += 1,
            }
        }
        missed += times
            .iter()
            .zip(&got)
            .filter(|(t, g)| t.is_some() && !**g)
            .count() as u64;
    }
    let rec = std::mem::take(&mut *rec.lock().expect("rec"));
    let mut r = result(ctx, "fanout", "hold", k);
    r.elapsed_s = secs;
    r.add_ops(rec, secs);
    r.delays.insert("delivery".into(), Dist::from_us(from_201));
    r.delays
        .insert("delivery_from_send".into(), Dist::from_us(from_send));
    r.delays
        .insert("stream_open".into(), Dist::from_us(open_times));
    r.extra("stream_open_failed_attempts", failed_attempts);
    r.extra("subscribers", k);
    r.extra("subscribers_open", n_open);
    r.extra("open_s", (open_s * 100.0).round() / 100.0);
    r.extra("holds_sent", sent);
    r.extra("holds_made", made);
    r.extra("deliveries_expected", expected);
    r.extra("events_missed", missed);
    r.extra("events_duplicated", dups);
    r.extra("events_before_201", before_201);
    r.extra("events_unknown_seat", strays);
    r.extra("sse_reconnects", reconnects);
    r.check_ran();
    r.check(
        "all_open",
        n_open == k,
        format!("{n_open} of {k} streams opened"),
    );
    r.check(
        "none_missed",
        missed == 0 && made > 0,
        format!(
            "{made} holds x {n_open} subscribers, {missed} deliveries missing, {dups} duplicated"
        ),
    );
    Ok(r)
}
