//! Standing areas (issue 15): places sold by quantity.
//!
//! `area-herd`: the seat herd's release (see [`super::herd::release`]) on a standing area: N
//! buyers (10,000 by default), each with a connection of its own and a user of its
//! own, POST `{"areas": {"FLOOR": 1}}` at the same instant on a show whose area FLOOR
//! has `--capacity` places (2,000 by default; the show has a row of 10 seats besides,
//! which nobody asks for). Checks: exactly `capacity` 201s, each holding one place,
//! no place in two holds; N - capacity 409s, each `seats_unavailable` with `"areas":
//! ["FLOOR"]`; no other answer, no failure; then `GET /shows/{id}/areas` counts as
//! held exactly the places of the 201s (`audit`) and FLOOR is all held (`sold_out`:
//! `held` = capacity, `available` = 0).
//!
//! `area-holds`: the `holds` scenario's measure (closed-loop workers, one keep-alive
//! connection and one user each, `--warmup` then `--duration`, holds never released)
//! with holds of `--places` places of one area (FLOOR, `--capacity` places, 100,000
//! by default: the most a show may have) instead of one seat each: every buyer of
//! the run takes places of the same area, the contention the design must not queue
//! on. The report gives its rate as a ratio to `holds`' (target >= 0.8). Checks: no
//! answer other than 201 (the area did not run out: `--capacity` large enough), and
//! the area's counts afterwards: `held` = places of all the 201s (warm-up included),
//! `available` = capacity - held.

use super::herd::{herd_result, release, Herd};
use super::{result, workers};
use crate::client::{Caller, Conn, Reply};
use crate::common::{Common, Ctx, Show, Window};
use crate::stats::{Recorder, RunResult};
use hyper::Method;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// The area's code in both scenarios.
pub const AREA: &str = "FLOOR";

#[derive(clap::Args, Debug, Clone)]
pub struct HerdArgs {
    #[command(flatten)]
    pub common: Common,
    /// Buyers in the herd (each opens its own connection), one place each.
    #[arg(long, default_value_t = 10000)]
    pub clients: usize,
    /// Places of the area (1 to 100,000).
    #[arg(long, default_value_t = 2000)]
    pub capacity: usize,
    /// Connections being opened at once before the release.
    #[arg(long, default_value_t = 200)]
    pub connect_concurrency: usize,
}

#[derive(clap::Args, Debug, Clone)]
pub struct HoldsArgs {
    #[command(flatten)]
    pub common: Common,
    /// Places of the area (1 to 100,000): at least what the run holds.
    #[arg(long, default_value_t = 100_000)]
    pub capacity: usize,
    /// Places per hold.
    #[arg(long, default_value_t = 1)]
    pub places: usize,
    /// ttl_seconds of each hold.
    #[arg(long, default_value_t = 600)]
    pub ttl: u32,
}

/// The counts of `area` in `GET /shows/{id}/areas`: (capacity, available, held, booked).
async fn area_counts(ctx: &Ctx, show: &Show, area: &str) -> Result<[i64; 4], String> {
    let mut conn = Conn::lazy(ctx.target.clone());
    let path = format!("/shows/{}/areas", show.id);
    let reply = conn
        .get(&path)
        .await
        .map_err(|f| format!("GET {path} failed ({})", f.name()))?;
    if reply.status != 200 {
        return Err(format!(
            "GET {path} answered {}: {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        ));
    }
    let v = reply.json();
    let a = v["areas"]
        .as_array()
        .and_then(|l| l.iter().find(|a| a["area"] == area))
        .ok_or_else(|| format!("GET {path}: no area {area} in {v}"))?;
    let n = |k: &str| a[k].as_i64().unwrap_or(-1);
    Ok([n("capacity"), n("available"), n("held"), n("booked")])
}

/// The check-in numbers (`FLOOR-17`) of the places of a 201's hold.
fn place_tickets(body: &Value) -> Vec<String> {
    body["tickets"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter(|t| t["area"] == AREA)
                .filter_map(|t| t["seat"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A 409 as the contract has it for a short area: `seats_unavailable`, no seat
/// refused, `"areas": ["FLOOR"]`.
fn is_area_refusal(reply: &Reply) -> bool {
    let v = reply.json();
    v["error"] == "seats_unavailable"
        && v["areas"] == json!([AREA])
        && v["seats"].as_array().is_some_and(|s| s.is_empty())
}

pub async fn run_herd(ctx: &Ctx, args: &HerdArgs) -> Result<RunResult, String> {
    let n = args.clients.max(1);
    let capacity = args.capacity;
    let show = ctx
        .create_area_show("bench area herd", 1, 10, &[(AREA, capacity)])
        .await?;
    eprintln!(
        "booking-bench: area-herd: {n} buyers of 1 place, area {AREA} of {capacity} places of show {}",
        show.id
    );
    let body = json!({"areas": {AREA: 1}, "ttl_seconds": 600});
    let path = show.holds_path();
    let herd = Herd {
        path: &path,
        body,
        user_prefix: "area-herd-",
        keyed: None,
    };
    let h = release(ctx, n, args.connect_concurrency, herd).await;

    // What the 201s and 409s said.
    let mut places = HashSet::new();
    let (mut bad_holds, mut bad_refusals, mut twice) = (0u64, 0u64, 0u64);
    for reply in &h.replies {
        match reply.status {
            201 => {
                let v = reply.json();
                let got = place_tickets(&v);
                if v["areas"] != json!({AREA: 1}) || got.len() != 1 {
                    bad_holds += 1;
                }
                for p in got {
                    if !places.insert(p) {
                        twice += 1;
                    }
                }
            }
            409 if !is_area_refusal(reply) => bad_refusals += 1,
            _ => {}
        }
    }
    let [cap, available, held, booked] = area_counts(ctx, &show, AREA).await?;

    let mut r = herd_result(ctx, "area-herd", n, h);
    r.extra("show", show.id.clone());
    r.extra("capacity", capacity);
    r.extra(
        "area_after",
        json!({"capacity": cap, "available": available, "held": held, "booked": booked}),
    );
    let o = r.ops.get("hold").cloned().unwrap_or_default();
    let (won, lost, errors) = (o.status_count(201), o.status_count(409), o.error_count());
    let others = o.requests - won - lost;
    let want_won = capacity.min(n) as u64;
    let want_lost = n as u64 - want_won;
    r.check("ran", o.requests > 0, format!("{} answers", o.requests));
    r.check(
        "exact",
        won == want_won && lost == want_lost && others == 0 && errors == 0,
        format!(
            "{won} x 201, {lost} x 409, {others} other answers, {errors} failures \
             (want {want_won}, {want_lost}, 0, 0)"
        ),
    );
    r.check(
        "answers",
        bad_holds == 0 && bad_refusals == 0 && twice == 0,
        format!(
            "{bad_holds} 201s not of 1 place of {AREA}, {bad_refusals} 409s without \
             \"areas\": [\"{AREA}\"], {twice} places in two holds ({} distinct places held)",
            places.len()
        ),
    );
    // The count is exact whatever the herd got: held = the places of the 201s.
    r.check(
        "audit",
        cap == capacity as i64 && held == won as i64 && booked == 0 && available == cap - held,
        format!(
            "GET /shows/{}/areas: capacity {cap}, held {held}, booked {booked}, available \
             {available} (want {capacity}, {won} = the 201s, 0, {})",
            show.id,
            capacity as i64 - won as i64
        ),
    );
    r.check(
        "sold_out",
        held == want_won as i64 && available == capacity as i64 - want_won as i64,
        format!(
            "{held} of {capacity} places held, {available} available after the herd \
             (want {want_won}, {})",
            capacity as i64 - want_won as i64
        ),
    );
    Ok(r)
}

pub async fn run_holds(ctx: &Ctx, args: &HoldsArgs) -> Result<RunResult, String> {
    if args.places == 0 {
        return Err("--places must be at least 1".into());
    }
    let capacity = args.capacity;
    let started = Instant::now();
    let show = Arc::new(
        ctx.create_area_show("bench area holds", 0, 0, &[(AREA, capacity)])
            .await?,
    );
    eprintln!(
        "booking-bench: created show {} with area {AREA} of {capacity} places in {:.1} s",
        show.id,
        started.elapsed().as_secs_f64()
    );
    let c = ctx.common.concurrency.max(1);
    let window = Window::start(ctx.common.warmup, ctx.common.duration);
    let (places, ttl) = (args.places, args.ttl);
    let body = Arc::new(json!({"areas": {AREA: places}, "ttl_seconds": ttl}));
    // Every 201, warm-up included: the area's `held` afterwards.
    let holds_made = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let rec = workers(c, |w| {
        let (target, show, body, holds_made, refused) = (
            ctx.target.clone(),
            show.clone(),
            body.clone(),
            holds_made.clone(),
            refused.clone(),
        );
        async move {
            let mut rec = Recorder::default();
            let mut conn = Conn::lazy(target);
            let user = format!("bench-area-holds-{w}");
            let path = show.holds_path();
            while window.running() {
                let t = Instant::now();
                let res = conn
                    .send(Method::POST, &path, Caller::User(&user), Some(&*body))
                    .await;
                if window.counts(t) {
                    rec.record("hold", t.elapsed(), &res);
                }
                match &res {
                    Ok(r) if r.status == 201 => {
                        holds_made.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) if r.status == 409 => {
                        // The area ran out: more holding would measure refusals.
                        refused.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    _ => {}
                }
            }
            rec
        }
    })
    .await;
    let secs = window.elapsed().min(ctx.common.duration.max(0.001));
    let [cap, available, held, booked] = area_counts(ctx, &show, AREA).await?;
    let made = holds_made.load(Ordering::Relaxed);
    let want_held = (made as usize * places) as i64;

    let mut r = result(ctx, "area-holds", "hold", c);
    r.elapsed_s = secs;
    r.add_ops(rec, secs);
    r.extra("places_per_hold", places);
    r.extra("capacity", capacity);
    r.extra("holds_made", made);
    r.extra("show", show.id.clone());
    r.extra(
        "area_after",
        json!({"capacity": cap, "available": available, "held": held, "booked": booked}),
    );
    r.check_ran();
    let o = r.ops.get("hold").cloned().unwrap_or_default();
    let others = o.requests - o.status_count(201);
    let refused = refused.load(Ordering::Relaxed);
    r.check(
        "capacity",
        refused == 0 && others == 0,
        format!(
            "{} x 201, {others} other answers, {refused} workers stopped by a 409 \
             ({} of {capacity} places held)",
            o.status_count(201),
            want_held
        ),
    );
    r.check(
        "audit",
        cap == capacity as i64
            && held == want_held
            && booked == 0
            && available == capacity as i64 - want_held,
        format!(
            "GET /shows/{}/areas: capacity {cap}, held {held}, booked {booked}, available \
             {available} (want {capacity}, {want_held} = {made} holds x {places}, 0, {})",
            show.id,
            capacity as i64 - want_held
        ),
    );
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, body: &str) -> Reply {
        Reply {
            status,
            body: bytes::Bytes::from(body.to_owned()),
            replayed: false,
        }
    }

    #[test]
    fn reads_place_tickets() {
        let v: Value = serde_json::from_str(
            r#"{"seats":["A1"],"areas":{"FLOOR":2},"tickets":[
                {"seat":"A1","type":"full","price":1200},
                {"seat":"FLOOR-7","area":"FLOOR","type":"full","price":900},
                {"seat":"FLOOR-9","area":"FLOOR","type":"full","price":900}]}"#,
        )
        .unwrap();
        assert_eq!(place_tickets(&v), vec!["FLOOR-7", "FLOOR-9"]);
        assert!(place_tickets(&json!({})).is_empty());
    }

    #[test]
    fn knows_an_area_refusal() {
        assert!(is_area_refusal(&reply(
            409,
            r#"{"error":"seats_unavailable","message":"x","seats":[],"areas":["FLOOR"]}"#
        )));
        assert!(!is_area_refusal(&reply(
            409,
            r#"{"error":"seats_unavailable","message":"x","seats":[]}"#
        )));
        assert!(!is_area_refusal(&reply(
            409,
            r#"{"error":"seats_unavailable","seats":["A1"],"areas":["FLOOR"]}"#
        )));
    }
}
