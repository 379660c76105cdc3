//! `adds` (issue 16): the `holds` scenario's measure (closed-loop workers, one keep-alive
//! connection and one user each, `--warmup` then `--duration`, the same pool of shows
//! of 10 x 200 seats) with `POST /holds/{id}/add` of one free seat to a live hold of
//! the worker's own instead of a new hold of one seat: its twin, the report gives its
//! rate as a ratio to `holds`' (target >= 0.8). Before the run, each worker makes
//! holds of 1 seat (not measured), each the first seat of a group of `--hold-size`
//! adjacent seats from the pool, enough for `--prepare-rate` adds a second; during the
//! run it adds the group's next seat to its current hold until the hold has
//! `--hold-size` seats (the server's `MAX_SEATS_PER_HOLD`, 10 by default), then goes
//! on with its next hold: no seat is asked for twice, holds stay small, and every
//! request of the run is an add. Checks: every add (warm-up included) answered `200`;
//! no worker ran out of prepared holds (one that did makes a hold during the run,
//! `refill`, which is not an add: raise `--prepare-rate`); the pool did not run out;
//! afterwards the seat maps show held exactly the prepared holds' seats plus one a
//! successful add (or refill), nothing booked.

use super::cart::seat_states;
use super::holds::{group_labels, make_pool, PoolArgs};
use super::{hold_body, result, workers};
use crate::client::{Caller, Conn, Failure, Reply};
use crate::common::{Common, Ctx, Show, Window};
use crate::stats::{Recorder, RunResult};
use hyper::Method;
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(clap::Args, Debug, Clone)]
pub struct AddsArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub pool: PoolArgs,
    /// Seats a hold grows to (1 when made, then adds): at most the server's
    /// MAX_SEATS_PER_HOLD.
    #[arg(long, default_value_t = 10)]
    pub hold_size: usize,
    /// Adds a second to prepare holds for (over warm-up and duration): more than the
    /// run will make.
    #[arg(long, default_value_t = 8000.0)]
    pub prepare_rate: f64,
    /// ttl_seconds of each hold.
    #[arg(long, default_value_t = 600)]
    pub ttl: u32,
}

/// A hold of a worker's own for `adds`: it has the first `len` seats of the group
/// starting at seat index `first` of show `show`.
struct Cart {
    add_path: String,
    show: usize,
    first: usize,
    len: usize,
}

/// Makes a hold of the first seat of the group at (`s`, `first`): a [`Cart`] on a
/// `201`.
async fn new_cart(
    conn: &mut Conn,
    show: &Show,
    s: usize,
    first: usize,
    user: &str,
    ttl: u32,
) -> (Result<Reply, Failure>, Option<Cart>) {
    let body = hold_body(&group_labels(show, first, 1), ttl);
    let res = conn
        .send(
            Method::POST,
            &show.holds_path(),
            Caller::User(user),
            Some(&body),
        )
        .await;
    let cart = match &res {
        Ok(r) if r.status == 201 => r.json()["hold_id"].as_str().map(|id| Cart {
            add_path: format!("/holds/{id}/add"),
            show: s,
            first,
            len: 1,
        }),
        _ => None,
    };
    (res, cart)
}

pub async fn run_adds(ctx: &Ctx, args: &AddsArgs) -> Result<RunResult, String> {
    let size = args.hold_size;
    if size < 2 {
        return Err("--hold-size must be at least 2".into());
    }
    // The holds to add to, made before the run: enough for --prepare-rate adds a second;
    // and the pool lasts for --rate-bound adds a second on top (a worker whose hold is
    // full makes a new one from the pool).
    let span = ctx.common.warmup.max(0.0) + ctx.common.duration.max(0.0);
    let wanted = (args.prepare_rate.max(1.0) * span / (size - 1) as f64).ceil() as usize;
    let more = PoolArgs::groups_for(args.pool.rate_bound / (size - 1) as f64, &ctx.common);
    let (shows, pool) = make_pool(ctx, "bench adds", &args.pool, size, wanted + more).await?;
    let c = ctx.common.concurrency.max(1);
    let ttl = args.ttl;
    let per_worker = wanted.min(pool.len()).div_ceil(c);
    let started = Instant::now();
    let made = futures_util::future::join_all((0..c).map(|w| {
        let (target, shows, pool) = (ctx.target.clone(), shows.clone(), pool.clone());
        tokio::spawn(async move {
            let mut conn = Conn::lazy(target);
            let user = format!("bench-adds-{w}");
            let mut carts = Vec::with_capacity(per_worker);
            while carts.len() < per_worker {
                let Some((s, first)) = pool.take() else { break };
                match new_cart(&mut conn, &shows[s], s, first, &user, ttl).await {
                    (_, Some(k)) => carts.push(k),
                    (res, None) => {
                        return Err(format!(
                            "a hold to add to answered {}",
                            match res {
                                Ok(r) =>
                                    format!("{}: {}", r.status, String::from_utf8_lossy(&r.body)),
                                Err(f) => f.name().to_owned(),
                            }
                        ))
                    }
                }
            }
            Ok(carts)
        })
    }))
    .await;
    let mut prepared = Vec::with_capacity(c);
    for m in made {
        prepared.push(Mutex::new(Some(
            m.map_err(|e| format!("preparing holds: {e}"))??,
        )));
    }
    let holds_prepared: usize = prepared
        .iter()
        .map(|m| m.lock().expect("prepared").as_ref().map_or(0, Vec::len))
        .sum();
    let prepare_s = started.elapsed().as_secs_f64();
    eprintln!(
        "booking-bench: adds: prepared {holds_prepared} holds of 1 seat ({per_worker} a worker) \
         in {prepare_s:.1} s"
    );
    let prepared = Arc::new(prepared);

    let window = Window::start(ctx.common.warmup, ctx.common.duration);
    // Every 200 and every other answer to an add, and the holds made during the run,
    // warm-up included.
    let added = Arc::new(AtomicU64::new(0));
    let not_added = Arc::new(AtomicU64::new(0));
    let refills = Arc::new(AtomicU64::new(0));
    let refilled = Arc::new(AtomicU64::new(0));
    let rec = workers(c, |w| {
        let (target, shows, pool, prepared) = (
            ctx.target.clone(),
            shows.clone(),
            pool.clone(),
            prepared.clone(),
        );
        let (added, not_added, refills, refilled) = (
            added.clone(),
            not_added.clone(),
            refills.clone(),
            refilled.clone(),
        );
        async move {
            let mut rec = Recorder::default();
            let mut conn = Conn::lazy(target);
            let user = format!("bench-adds-{w}");
            let mut carts = prepared[w]
                .lock()
                .expect("prepared")
                .take()
                .unwrap_or_default()
                .into_iter();
            let mut cur: Option<Cart> = None;
            while window.running() {
                if cur.as_ref().is_none_or(|k| k.len >= size) {
                    cur = carts.next();
                }
                if cur.is_none() {
                    // Out of prepared holds: one made now, not an add.
                    let Some((s, first)) = pool.take() else { break };
                    let t = Instant::now();
                    let (res, cart) = new_cart(&mut conn, &shows[s], s, first, &user, ttl).await;
                    if window.counts(t) {
                        rec.record("refill", t.elapsed(), &res);
                    }
                    refills.fetch_add(1, Ordering::Relaxed);
                    if cart.is_some() {
                        refilled.fetch_add(1, Ordering::Relaxed);
                    }
                    cur = cart;
                    continue;
                }
                let k = cur.as_mut().expect("a hold");
                let body = json!({"seats": [shows[k.show].label_of(k.first + k.len)]});
                let t = Instant::now();
                let res = conn
                    .send(Method::POST, &k.add_path, Caller::User(&user), Some(&body))
                    .await;
                if window.counts(t) {
                    rec.record("add", t.elapsed(), &res);
                }
                k.len += 1;
                match &res {
                    Ok(r) if r.status == 200 => added.fetch_add(1, Ordering::Relaxed),
                    _ => not_added.fetch_add(1, Ordering::Relaxed),
                };
            }
            rec
        }
    })
    .await;
    let secs = window.elapsed().min(ctx.common.duration.max(0.001));

    // The seat maps afterwards: held exactly the holds' seats.
    let (mut held, mut booked) = (0u64, 0u64);
    for show in shows.iter() {
        for (_, state) in seat_states(ctx, show).await? {
            match state.as_str() {
                "held" => held += 1,
                "booked" => booked += 1,
                _ => {}
            }
        }
    }
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let (added, not_added) = (load(&added), load(&not_added));
    let (refills, refilled) = (load(&refills), load(&refilled));
    let want_held = holds_prepared as u64 + refilled + added;

    let mut r = result(ctx, "adds", "add", c);
    r.elapsed_s = secs;
    r.add_ops(rec, secs);
    r.extra("hold_size", size);
    r.extra("holds_prepared", holds_prepared);
    r.extra("prepare_s", (prepare_s * 100.0).round() / 100.0);
    r.extra("adds_made", added);
    r.extra("refills", refills);
    r.extra("seat_groups_used", pool.used());
    r.extra("seat_groups_total", pool.len());
    r.extra("shows", shows.len());
    r.extra("seats_after", json!({"held": held, "booked": booked}));
    r.check_ran();
    r.check(
        "answers",
        not_added == 0,
        format!("{added} adds answered 200, {not_added} another status or none"),
    );
    r.check(
        "prepared",
        refills == 0,
        format!(
            "{holds_prepared} holds prepared for {} adds/s, {refills} made during the run \
             (raise --prepare-rate)",
            args.prepare_rate
        ),
    );
    r.check(
        "pool",
        !pool.exhausted(),
        format!("{} of {} seat groups used", pool.used(), pool.len()),
    );
    r.check(
        "audit",
        held == want_held && booked == 0,
        format!(
            "seat maps: {held} seats held, {booked} booked (want {want_held} = \
             {holds_prepared} prepared + {refilled} refills + {added} adds, 0)"
        ),
    );
    Ok(r)
}
