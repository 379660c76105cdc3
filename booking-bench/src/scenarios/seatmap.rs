//! `seatmap`: GET /shows/{id}/seats of a 1,000-seat show (20 rows x 50) by
//! `--concurrency` readers, while `--background` workers hold a random seat of that
//! show and release it again (so the map keeps changing).
//!
//! The map is patched from the change feed (the writer's own process applies its own
//! writes at once): how far a map can trail the database is the feed's lag. One
//! event stream on the show measures it: `feed_lag` is the arrival of each background
//! hold's `hold` event minus the arrival of that hold's 201 (an event that beats the
//! 201 counts 0).
//!
//! `--seats N` makes the show `N` seats (rows of `--per-row`), `--format compact` reads
//! `?format=compact`, `--encoding gzip|br` sends that `Accept-Encoding`. The result
//! gives the bytes of one answer on the wire (`map_bytes`) and decoded
//! (`map_bytes_decoded`), and `cold_ms`: the first read of the map, before the
//! readers start (the map read from the database, rendered and compressed).

use super::{hold_body, result, workers};
use crate::client::{self, scan_event, Caller, Conn, Failure, Reply, Sse, Target};
use crate::common::{Common, Ctx, Window};
use crate::stats::{Dist, Recorder, RunResult};
use hyper::Method;
use rand::Rng;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    /// The show carries venue inventory: two ticket types, seat features and a
    /// blocked seat per row (the background workers leave the blocked seats alone).
    #[arg(long)]
    pub inventory: bool,
    /// Seats of the show: `ceil(seats / per_row)` rows instead of `--rows`.
    #[arg(long)]
    pub seats: Option<usize>,
    /// The form of the map read: `full` or `compact` (`?format=compact`).
    #[arg(long, default_value = "full", value_parser = ["full", "compact"])]
    pub format: String,
    /// The `Accept-Encoding` sent: `identity` (none), `gzip` or `br`.
    #[arg(long, default_value = "identity", value_parser = ["identity", "gzip", "br"])]
    pub encoding: String,
}

/// A seat-map reader's connection: a GET with the run's `Accept-Encoding`, whose answer
/// keeps its `Content-Encoding`.
struct MapConn {
    target: Arc<Target>,
    sender: Option<hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>>,
    encoding: Option<&'static str>,
}

impl MapConn {
    fn new(target: Arc<Target>, encoding: &str) -> MapConn {
        let encoding = match encoding {
            "gzip" => Some("gzip"),
            "br" => Some("br"),
            _ => None,
        };
        MapConn {
            target,
            sender: None,
            encoding,
        }
    }

    /// The answer and its `Content-Encoding`.
    async fn get(&mut self, path: &str) -> (Result<Reply, Failure>, Option<String>) {
        use http_body_util::BodyExt;
        if let Some(s) = &mut self.sender {
            if s.ready().await.is_err() {
                self.sender = None;
            }
        }
        if self.sender.is_none() {
            match client::open(&self.target).await {
                Ok(s) => self.sender = Some(s),
                Err(e) => return (Err(e), None),
            }
        }
        let mut req = client::build(&self.target, Method::GET, path, Caller::Anonymous, None);
        if let Some(e) = self.encoding {
            req.headers_mut().insert(
                "accept-encoding",
                hyper::header::HeaderValue::from_static(e),
            );
        }
        let Some(sender) = self.sender.as_mut() else {
            return (Err(Failure::Connect), None);
        };
        let res = tokio::time::timeout(Duration::from_secs(30), async {
            let res = sender.send_request(req).await.map_err(|_| Failure::Io)?;
            let status = res.status().as_u16();
            let coding = res
                .headers()
                .get("content-encoding")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = res
                .into_body()
                .collect()
                .await
                .map_err(|_| Failure::Io)?
                .to_bytes();
            Ok((
                Reply {
                    status,
                    body,
                    replayed: false,
                },
                coding,
            ))
        })
        .await
        .unwrap_or(Err(Failure::Timeout));
        match res {
            Ok((reply, coding)) => (Ok(reply), coding),
            Err(e) => {
                self.sender = None;
                (Err(e), None)
            }
        }
    }
}

/// The body without its coding.
fn decode(body: &[u8], coding: Option<&str>) -> Option<Vec<u8>> {
    use std::io::Read as _;
    let mut out = Vec::new();
    match coding {
        None => return Some(body.to_vec()),
        Some("gzip") => flate2::read::GzDecoder::new(body)
            .read_to_end(&mut out)
            .ok()?,
        Some("br") => brotli::Decompressor::new(body, 4096)
            .read_to_end(&mut out)
            .ok()?,
        Some(_) => return None,
    };
    Some(out)
}

/// Seats a decoded map lists, full or compact form.
fn seats_listed(map: &serde_json::Value) -> usize {
    match map["states"].as_str() {
        Some(states) => states.len(),
        None => map["seats"].as_array().map(|a| a.len()).unwrap_or(0),
    }
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<RunResult, String> {
    let rows = match args.seats {
        Some(n) => n.div_ceil(args.per_row.max(1)),
        None => args.rows,
    };
    let show = Arc::new(if args.inventory {
        ctx.create_inventory_show("bench seat map (inventory)", rows, args.per_row)
            .await?
    } else {
        ctx.create_show("bench seat map", rows, args.per_row)
            .await?
    });
    let inventory = args.inventory;
    let c = ctx.common.concurrency.max(1);
    let window = Window::start(ctx.common.warmup, ctx.common.duration);
    let query = if args.format == "compact" {
        "?format=compact"
    } else {
        ""
    };
    let map_path = Arc::new(format!("/shows/{}/seats{query}", show.id));
    let bad_maps = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let decoded_bytes = Arc::new(AtomicU64::new(0));
    let wrong_coding = Arc::new(AtomicU64::new(0));
    let want_coding = (args.encoding != "identity").then(|| args.encoding.clone());
    // The first read: the map is not in the server's memory yet.
    let cold = {
        let mut conn = MapConn::new(ctx.target.clone(), &args.encoding);
        let t = Instant::now();
        let (res, _) = conn.get(&map_path).await;
        let took = t.elapsed();
        match res {
            Ok(r) if r.status == 200 => took,
            Ok(r) => return Err(format!("the first map read answered {}", r.status)),
            Err(f) => return Err(format!("the first map read failed ({})", f.name())),
        }
    };
    let stop_bg = Arc::new(AtomicBool::new(false));
    // (label, send, 201 arrival) of each measured background hold; (label, arrival) of
    // each `hold` event on the stream.
    let answered: Arc<Mutex<Vec<(String, Instant, Instant)>>> = Arc::default();
    let arrivals: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let (stop_stream, stream_stopped) = tokio::sync::watch::channel(false);
    let mut sse = Sse::open(&ctx.target, &format!("/shows/{}/events", show.id), None)
        .await
        .map_err(|e| format!("cannot open the show's event stream: {e:?}"))?;
    if !sse.wait_open().await {
        return Err("the show's event stream ended at once".into());
    }
    let stream = {
        let (arrivals, mut stopped) = (arrivals.clone(), stream_stopped);
        tokio::spawn(async move {
            loop {
                let ev = tokio::select! {
                    ev = sse.next() => ev,
                    _ = stopped.changed() => return,
                };
                let Some(ev) = ev else { return };
                let now = Instant::now();
                if ev.event != "seats" {
                    continue;
                }
                let (cause, labels) = scan_event(&ev.data);
                if cause == Some("hold") {
                    let mut a = arrivals.lock().unwrap_or_else(|p| p.into_inner());
                    a.extend(labels.into_iter().map(|l| (l.to_owned(), now)));
                }
            }
        })
    };

    let bg = {
        let (target, show, stop_bg, answered) = (
            ctx.target.clone(),
            show.clone(),
            stop_bg.clone(),
            answered.clone(),
        );
        let n = args.background;
        tokio::spawn(async move {
            workers(n, |w| {
                let (target, show, stop_bg, answered) = (
                    target.clone(),
                    show.clone(),
                    stop_bg.clone(),
                    answered.clone(),
                );
                async move {
                    let mut rec = Recorder::default();
                    let mut conn = Conn::lazy(target);
                    let user = format!("bench-seatmap-bg-{w}");
                    while window.running() && !stop_bg.load(Ordering::Relaxed) {
                        let i = rand::thread_rng().gen_range(0..show.seats());
                        if inventory && i % show.per_row == show.per_row - 1 {
                            continue; // Blocked: a hold would only be refused.
                        }
                        let label = show.label_of(i);
                        let body = hold_body(std::slice::from_ref(&label), 600);
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
                            if matches!(&res, Ok(r) if r.status == 201) {
                                let mut a = answered.lock().unwrap_or_else(|p| p.into_inner());
                                a.push((label, t, Instant::now()));
                            }
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
        let (target, map_path, bad_maps, bytes, decoded_bytes, wrong_coding, want_coding) = (
            ctx.target.clone(),
            map_path.clone(),
            bad_maps.clone(),
            bytes.clone(),
            decoded_bytes.clone(),
            wrong_coding.clone(),
            want_coding.clone(),
        );
        let encoding = args.encoding.clone();
        async move {
            let mut rec = Recorder::default();
            let mut conn = MapConn::new(target, &encoding);
            let mut checked = false;
            while window.running() {
                let t = Instant::now();
                let (res, coding) = conn.get(&map_path).await;
                if window.counts(t) {
                    rec.record("seatmap", t.elapsed(), &res);
                }
                if let Ok(r) = &res {
                    if r.status == 200 {
                        bytes.store(r.body.len() as u64, Ordering::Relaxed);
                        if coding != want_coding {
                            wrong_coding.fetch_add(1, Ordering::Relaxed);
                        }
                        // Decode and parse one map per worker: it must list every seat.
                        if !checked {
                            checked = true;
                            let body = decode(&r.body, coding.as_deref()).unwrap_or_default();
                            decoded_bytes.store(body.len() as u64, Ordering::Relaxed);
                            let map = serde_json::from_slice(&body).unwrap_or_default();
                            if seats_listed(&map) != seats {
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
    // Events still on their way: wait for them, a few seconds at most.
    let grace = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, missing) = feed_lags(
            &answered.lock().unwrap_or_else(|p| p.into_inner()),
            &arrivals.lock().unwrap_or_else(|p| p.into_inner()),
        );
        if missing == 0 || Instant::now() > grace {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop_stream.send(true);
    let _ = stream.await;
    let (lags, missing) = feed_lags(
        &answered.lock().unwrap_or_else(|p| p.into_inner()),
        &arrivals.lock().unwrap_or_else(|p| p.into_inner()),
    );
    let name = if inventory {
        "seatmap-inventory"
    } else {
        "seatmap"
    };
    let name = match (args.format.as_str(), args.encoding.as_str()) {
        ("full", "identity") => name.to_owned(),
        (f, e) => format!("{name}-{f}-{e}"),
    };
    let mut r = result(ctx, &name, "seatmap", c);
    r.elapsed_s = secs;
    r.add_ops(rec, secs);
    r.add_ops(bg_rec, secs);
    r.extra("seats", seats);
    r.extra("background_workers", args.background);
    r.extra("map_bytes", bytes.load(Ordering::Relaxed));
    r.extra("map_bytes_decoded", decoded_bytes.load(Ordering::Relaxed));
    r.extra("format", args.format.clone());
    r.extra("encoding", args.encoding.clone());
    r.extra("cold_ms", cold.as_secs_f64() * 1000.0);
    r.delays.insert("feed_lag".into(), Dist::from_us(lags));
    r.extra("feed_lag_missing", missing);
    r.check_ran();
    r.check(
        "feed_events",
        missing == 0,
        format!("{missing} background holds without their event on the stream"),
    );
    let wrong = wrong_coding.load(Ordering::Relaxed);
    r.check(
        "content_encoding",
        wrong == 0,
        format!(
            "{wrong} maps not in the coding asked for ({})",
            args.encoding
        ),
    );
    let bad = bad_maps.load(Ordering::Relaxed);
    r.check(
        "complete_maps",
        bad == 0,
        format!("{bad} sampled maps without all {seats} seats"),
    );
    Ok(r)
}

/// Each answered hold's lag in microseconds: its seat's first `hold` event that arrived
/// after the hold was sent, minus the 201's arrival (0 when the event came first); and
/// how many holds had no such event.
fn feed_lags(
    answered: &[(String, Instant, Instant)],
    arrivals: &[(String, Instant)],
) -> (Vec<u64>, usize) {
    let mut by_label: std::collections::HashMap<&str, Vec<Instant>> = Default::default();
    for (label, at) in arrivals {
        by_label.entry(label.as_str()).or_default().push(*at);
    }
    let mut lags = Vec::with_capacity(answered.len());
    let mut missing = 0;
    for (label, sent, answered_at) in answered {
        let first = by_label
            .get(label.as_str())
            .and_then(|v| v.iter().filter(|at| *at >= sent).min());
        match first {
            Some(at) => lags.push(at.saturating_duration_since(*answered_at).as_micros() as u64),
            None => missing += 1,
        }
    }
    (lags, missing)
}
