//! Carts (issue 16): a live hold changed seat by seat (`POST /holds/{id}/add`,
//! `POST /holds/{id}/remove`).
//!
//! `cart`: closed-loop workers (one keep-alive connection and one user each,
//! `--warmup` then `--duration`), each running cart sessions one after another on
//! groups of 3 adjacent seats handed out once each from a pool as in `holds` (50 shows
//! of 10 x 200 seats by default), so that nobody competes. A session, for seats a, b,
//! c: hold a and b (`201`), add c (`200`, the hold has a, b, c), remove a (`200`, an
//! active hold of b, c), confirm (`201`, a booking of b and c). Each step is an
//! operation of its own (`hold`, `add`, `remove`, `confirm`); `session` is the four
//! together: its latency is theirs, its status the confirm's (or that of the step that
//! went wrong), its rate the sessions per second. A session stops at the first step
//! that does not answer as expected. Checks: every step of every session (warm-up
//! included) answered its status with the seats above, and afterwards the seat maps
//! show booked exactly the seats of the confirmed bookings (b and c of each session;
//! no a), and nothing left held when no session stopped early.

use super::holds::{group_labels, make_pool, PoolArgs};
use super::{hold_body, result, workers};
use crate::client::{Caller, Conn, Failure, Reply};
use crate::common::{Common, Ctx, Show, Window};
use crate::stats::{Recorder, RunResult};
use hyper::Method;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(clap::Args, Debug, Clone)]
pub struct CartArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub pool: PoolArgs,
    /// ttl_seconds of each hold.
    #[arg(long, default_value_t = 600)]
    pub ttl: u32,
}

/// The steps of a cart session and the status each must answer.
const STEPS: [(&str, u16); 4] = [
    ("hold", 201),
    ("add", 200),
    ("remove", 200),
    ("confirm", 201),
];

/// `seats` of a hold or a booking.
fn seats_of(v: &Value) -> Vec<String> {
    v["seats"]
        .as_array()
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// An expected answer of step `step`: its status, `seats` exactly `seats` (in seat-map
/// order) and `status` `state`. `Err(true)`: the status was another (or no answer);
/// `Err(false)`: the right status with the wrong content.
fn expect(
    res: &Result<Reply, Failure>,
    step: usize,
    seats: &[&String],
    state: &str,
) -> Result<Value, bool> {
    let r = match res {
        Ok(r) if r.status == STEPS[step].1 => r,
        _ => return Err(true),
    };
    let v = r.json();
    let want: Vec<String> = seats.iter().map(|s| (*s).clone()).collect();
    if seats_of(&v) == want && v["status"] == state {
        Ok(v)
    } else {
        Err(false)
    }
}

/// What every session did, warm-up included: sessions started and booked, per step
/// the answers with another status or none (`unexpected`) and those with the right
/// status but other seats or state (`wrong`).
#[derive(Default)]
struct Tally {
    started: AtomicU64,
    booked: AtomicU64,
    /// Sessions whose hold was made but that stopped before the confirm.
    stopped_holding: AtomicU64,
    unexpected: [AtomicU64; 4],
    wrong: [AtomicU64; 4],
}

/// The states of a show's seats: (label, state) in seat-map order.
pub(super) async fn seat_states(ctx: &Ctx, show: &Show) -> Result<Vec<(String, String)>, String> {
    let mut conn = Conn::lazy(ctx.target.clone());
    let path = format!("/shows/{}/seats", show.id);
    let reply = conn
        .get(&path)
        .await
        .map_err(|f| format!("GET {path} failed ({})", f.name()))?;
    if reply.status != 200 {
        return Err(format!("GET {path} answered {}", reply.status));
    }
    let v = reply.json();
    let seats = v["seats"]
        .as_array()
        .ok_or_else(|| format!("GET {path}: no seats"))?;
    Ok(seats
        .iter()
        .map(|s| {
            (
                s["label"].as_str().unwrap_or("").to_owned(),
                s["state"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect())
}

pub async fn run_cart(ctx: &Ctx, args: &CartArgs) -> Result<RunResult, String> {
    // A session is four requests (hold, add, remove, confirm) on one seat group.
    let needed = PoolArgs::groups_for(args.pool.rate_bound / 4.0, &ctx.common);
    let (shows, pool) = make_pool(ctx, "bench cart", &args.pool, 3, needed).await?;
    let c = ctx.common.concurrency.max(1);
    let window = Window::start(ctx.common.warmup, ctx.common.duration);
    let ttl = args.ttl;
    let tally = Arc::new(Tally::default());
    // (show index, label) of every seat a confirmed booking has.
    let booked: Arc<Mutex<Vec<(usize, String)>>> = Arc::default();
    let rec = workers(c, |w| {
        let (target, shows, pool, tally, booked) = (
            ctx.target.clone(),
            shows.clone(),
            pool.clone(),
            tally.clone(),
            booked.clone(),
        );
        async move {
            let mut rec = Recorder::default();
            let mut conn = Conn::lazy(target);
            let user = format!("bench-cart-{w}");
            while window.running() {
                let Some((s, first)) = pool.take() else { break };
                let show = &shows[s];
                let l = group_labels(show, first, 3);
                let (a, b, c) = (&l[0], &l[1], &l[2]);
                tally.started.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                let counts = window.counts(t);
                let mut hold_id = None;
                let mut last = None;
                for step in 0..STEPS.len() {
                    let (path, body, seats, state) = match step {
                        0 => (
                            show.holds_path(),
                            Some(hold_body(&l[..2], ttl)),
                            vec![a, b],
                            "active",
                        ),
                        _ => {
                            let id: &String = hold_id.as_ref().expect("held");
                            match step {
                                1 => (
                                    format!("/holds/{id}/add"),
                                    Some(json!({"seats": [c]})),
                                    vec![a, b, c],
                                    "active",
                                ),
                                2 => (
                                    format!("/holds/{id}/remove"),
                                    Some(json!({"seats": [a]})),
                                    vec![b, c],
                                    "active",
                                ),
                                _ => (
                                    format!("/holds/{id}/confirm"),
                                    None,
                                    vec![b, c],
                                    "confirmed",
                                ),
                            }
                        }
                    };
                    let t2 = Instant::now();
                    let res = conn
                        .send(Method::POST, &path, Caller::User(&user), body.as_ref())
                        .await;
                    if counts {
                        rec.record(STEPS[step].0, t2.elapsed(), &res);
                    }
                    let outcome = expect(&res, step, &seats, state);
                    last = Some((res, outcome.is_ok()));
                    match outcome {
                        Ok(v) => {
                            if step == 0 {
                                hold_id = v["hold_id"].as_str().map(str::to_owned);
                                if hold_id.is_none() {
                                    tally.wrong[0].fetch_add(1, Ordering::Relaxed);
                                    break;
                                }
                            }
                        }
                        Err(unexpected) => {
                            let t = if unexpected {
                                &tally.unexpected
                            } else {
                                &tally.wrong
                            };
                            t[step].fetch_add(1, Ordering::Relaxed);
                            if hold_id.is_some() {
                                tally.stopped_holding.fetch_add(1, Ordering::Relaxed);
                            }
                            break;
                        }
                    }
                }
                let Some((res, ok)) = last else { continue };
                if counts {
                    rec.record("session", t.elapsed(), &res);
                }
                if ok && hold_id.is_some() {
                    tally.booked.fetch_add(1, Ordering::Relaxed);
                    let mut all = booked.lock().expect("booked");
                    all.push((s, b.clone()));
                    all.push((s, c.clone()));
                }
            }
            rec
        }
    })
    .await;
    let secs = window.elapsed().min(ctx.common.duration.max(0.001));

    // The seat maps afterwards: booked exactly the seats of the bookings.
    let mut want: Vec<HashSet<String>> = vec![HashSet::new(); shows.len()];
    for (s, label) in booked.lock().expect("booked").drain(..) {
        want[s].insert(label);
    }
    let (mut booked_seats, mut held_seats, mut missing, mut extra) = (0usize, 0usize, 0, 0);
    for (s, show) in shows.iter().enumerate() {
        let mut got = HashSet::new();
        for (label, state) in seat_states(ctx, show).await? {
            match state.as_str() {
                "booked" => {
                    got.insert(label);
                }
                "held" => held_seats += 1,
                _ => {}
            }
        }
        booked_seats += got.len();
        missing += want[s].difference(&got).count();
        extra += got.difference(&want[s]).count();
    }

    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let started = load(&tally.started);
    let sessions_booked = load(&tally.booked);
    let stopped_holding = load(&tally.stopped_holding);
    let mut r = result(ctx, "cart", "session", c);
    r.elapsed_s = secs;
    r.add_ops(rec, secs);
    r.extra("sessions_started", started);
    r.extra("sessions_booked", sessions_booked);
    r.extra("seat_groups_used", pool.used());
    r.extra("seat_groups_total", pool.len());
    r.extra("shows", shows.len());
    r.extra(
        "seats_after",
        json!({"booked": booked_seats, "held": held_seats}),
    );
    r.check_ran();
    let steps: Vec<String> = STEPS
        .iter()
        .enumerate()
        .map(|(i, (name, status))| {
            format!(
                "{name}: {} not {status}, {} wrong",
                load(&tally.unexpected[i]),
                load(&tally.wrong[i])
            )
        })
        .collect();
    let bad: u64 = (0..STEPS.len())
        .map(|i| load(&tally.unexpected[i]) + load(&tally.wrong[i]))
        .sum();
    r.check(
        "steps",
        bad == 0 && sessions_booked == started,
        format!(
            "{sessions_booked} of {started} sessions booked; {}",
            steps.join("; ")
        ),
    );
    r.check(
        "audit",
        missing == 0 && extra == 0 && (stopped_holding > 0 || held_seats == 0),
        format!(
            "seat maps: {booked_seats} seats booked ({} = 2 x the bookings; {missing} of \
             them not booked, {extra} booked besides), {held_seats} held ({stopped_holding} \
             sessions stopped holding)",
            2 * sessions_booked
        ),
    );
    r.check(
        "pool",
        !pool.exhausted(),
        format!("{} of {} seat groups used", pool.used(), pool.len()),
    );
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, body: &str) -> Result<Reply, Failure> {
        Ok(Reply {
            status,
            body: bytes::Bytes::from(body.to_owned()),
            replayed: false,
        })
    }

    #[test]
    fn checks_each_step() {
        let (a, b, c) = ("A1".to_owned(), "A2".to_owned(), "A3".to_owned());
        let add = reply(
            200,
            r#"{"hold_id":"1-x","seats":["A1","A2","A3"],"status":"active"}"#,
        );
        assert!(expect(&add, 1, &[&a, &b, &c], "active").is_ok());
        assert_eq!(expect(&add, 1, &[&b, &c], "active"), Err(false));
        assert_eq!(expect(&add, 0, &[&a, &b, &c], "active"), Err(true));
        let booked = reply(201, r#"{"seats":["A2","A3"],"status":"confirmed"}"#);
        assert!(expect(&booked, 3, &[&b, &c], "confirmed").is_ok());
        assert_eq!(expect(&booked, 3, &[&b, &c], "active"), Err(false));
        assert_eq!(expect(&Err(Failure::Io), 2, &[&b, &c], "active"), Err(true));
        assert_eq!(
            expect(&reply(409, r#"{"error":"seats_unavailable"}"#), 1, &[], ""),
            Err(true)
        );
    }
}
