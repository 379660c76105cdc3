//! `best`: many clients ask for the best available group of 2 to 6 seats (side by
//! side) on one large show (40 rows of 50 seats, aisles after 12 and 38: 2,000 seats)
//! until it sells out, i.e. until a request for 2 gets `409`: then no two free seats
//! are side by side anywhere, and the holds are never released in this run.
//!
//! Reports requests/s and latency of `POST /shows/{id}/holds/best` while selling out,
//! lock attempts per success (from the server's `booking_best_lock_attempts_total`
//! and `booking_best_holds_total`, read before and after), and how many single seats
//! were stranded at sell-out (free seats with no free neighbour in their row block).
//! Checks: it sold out; no seat came back in two holds; the seat map at the end has no
//! two free seats side by side.

use super::{result, workers};
use crate::client::{Caller, Conn};
use crate::common::{row_label, Common, Ctx, Window};
use crate::stats::{Recorder, RunResult};
use hyper::Method;
use rand::Rng;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// Rows of the show.
    #[arg(long, default_value_t = 40)]
    pub rows: usize,
    /// Seats per row.
    #[arg(long, default_value_t = 50)]
    pub per_row: usize,
    /// Seat numbers after which an aisle runs, in every row.
    #[arg(long, value_delimiter = ',', default_value = "12,38")]
    pub aisles: Vec<usize>,
    /// Smallest group asked for.
    #[arg(long, default_value_t = 2)]
    pub min_group: usize,
    /// Largest group asked for.
    #[arg(long, default_value_t = 6)]
    pub max_group: usize,
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<RunResult, String> {
    if args.min_group < 1 || args.max_group < args.min_group {
        return Err("--min-group must be at least 1 and at most --max-group".into());
    }
    let show = create_show(ctx, args).await?;
    let path = format!("/shows/{show}/holds/best");
    let before = best_counters(ctx).await?;

    let c = ctx.common.concurrency.max(1);
    // No warm-up: the run is the sell-out. `--duration` only bounds it.
    let window = Window::start(0.0, ctx.common.duration);
    let sold_out = Arc::new(AtomicBool::new(false));
    let sold_out_at: Arc<Mutex<Option<f64>>> = Arc::default();
    let held: Arc<Mutex<Vec<String>>> = Arc::default();
    let (min, max) = (args.min_group, args.max_group);
    let rec = workers(c, |w| {
        let target = ctx.target.clone();
        let (path, sold_out, sold_out_at, held) = (
            path.clone(),
            sold_out.clone(),
            sold_out_at.clone(),
            held.clone(),
        );
        async move {
            let mut rec = Recorder::default();
            let mut conn = Conn::lazy(target);
            let user = format!("bench-best-{w}");
            while window.running() && !sold_out.load(Ordering::Relaxed) {
                let count = rand::thread_rng().gen_range(min..=max);
                let body = json!({"count": count, "ttl_seconds": 3600});
                let t = Instant::now();
                let res = conn
                    .send(Method::POST, &path, Caller::User(&user), Some(&body))
                    .await;
                rec.record("best", t.elapsed(), &res);
                match &res {
                    Ok(r) if r.status == 201 => {
                        if let Some(seats) = r.json()["seats"].as_array() {
                            let mut held = held.lock().expect("held");
                            held.extend(seats.iter().filter_map(Value::as_str).map(str::to_owned));
                        }
                    }
                    Ok(r)
                        if r.status == 409
                            && count == min
                            && !sold_out.swap(true, Ordering::Relaxed) =>
                    {
                        *sold_out_at.lock().expect("sold out") = Some(window.elapsed());
                    }
                    _ => {}
                }
            }
            rec
        }
    })
    .await;
    let secs = sold_out_at
        .lock()
        .expect("sold out")
        .unwrap_or_else(|| window.elapsed())
        .max(0.001);
    let after = best_counters(ctx).await?;
    let map = seat_map(ctx, &show, args).await?;

    let mut r = result(ctx, "best", "best", c);
    r.elapsed_s = secs;
    r.add_ops(rec, secs);
    let holds = after.0 - before.0;
    let attempts = after.1 - before.1;
    let reads = after.2 - before.2;
    let per = |n: f64| {
        if holds > 0.0 {
            (n / holds * 100.0).round() / 100.0
        } else {
            0.0
        }
    };
    let free: usize = map
        .iter()
        .map(|row| row.iter().filter(|s| s.0).count())
        .sum();
    let stranded = stranded_singles(&map);
    r.extra("show_seats", args.rows * args.per_row);
    r.extra("holds", holds);
    r.extra("lock_attempts", attempts);
    r.extra("lock_attempts_per_success", per(attempts));
    r.extra("house_reads_per_success", per(reads));
    r.extra("seats_free_at_end", free);
    r.extra("stranded_singles", stranded);
    r.extra("sold_out_after_s", (secs * 1000.0).round() / 1000.0);
    r.check_ran();
    r.check(
        "sold out",
        sold_out.load(Ordering::Relaxed),
        format!("a request for {min} got 409 after {secs:.2} s"),
    );
    let held = held.lock().expect("held");
    let distinct: HashSet<&String> = held.iter().collect();
    r.check(
        "no seat in two holds",
        distinct.len() == held.len(),
        format!("{} seats held, {} distinct", held.len(), distinct.len()),
    );
    if min == 2 {
        let pairs = free_pairs(&map);
        r.check(
            "no free pair left",
            pairs == 0,
            format!("{pairs} pairs of free seats side by side at the end"),
        );
    }
    Ok(r)
}

/// Creates the show with its aisles; returns its id.
async fn create_show(ctx: &Ctx, args: &Args) -> Result<String, String> {
    let aisles: Vec<usize> = args
        .aisles
        .iter()
        .copied()
        .filter(|&a| a >= 1 && a < args.per_row)
        .collect();
    let rows: Vec<Value> = (0..args.rows)
        .map(|r| json!({"row": row_label(r), "seats": args.per_row, "aisles_after": aisles}))
        .collect();
    let body = json!({
        "title": "bench best", "starts_at": "2030-01-01T20:00:00Z", "currency": "EUR",
        "prices": {"standard": 1200}, "rows": rows,
    });
    let mut conn = Conn::lazy(ctx.target.clone());
    let reply = conn
        .send(Method::POST, "/shows", Caller::Admin, Some(&body))
        .await
        .map_err(|f| format!("POST /shows failed ({})", f.name()))?;
    if reply.status != 201 {
        return Err(format!(
            "POST /shows answered {}: {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        ));
    }
    reply.json()["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| "POST /shows answered without an id".into())
}

/// `(booking_best_holds_total, booking_best_lock_attempts_total,
/// booking_best_reads_total)` from `/metrics`.
async fn best_counters(ctx: &Ctx) -> Result<(f64, f64, f64), String> {
    let mut conn = Conn::lazy(ctx.target.clone());
    let reply = conn
        .get("/metrics")
        .await
        .map_err(|f| format!("GET /metrics failed ({})", f.name()))?;
    let text = String::from_utf8_lossy(&reply.body);
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .ok_or_else(|| format!("/metrics has no {name}"))
    };
    Ok((
        value("booking_best_holds_total")?,
        value("booking_best_lock_attempts_total")?,
        value("booking_best_reads_total")?,
    ))
}

/// The seat map, row by row: (free, aisle after) of each seat.
async fn seat_map(ctx: &Ctx, show: &str, args: &Args) -> Result<Vec<Vec<(bool, bool)>>, String> {
    let mut conn = Conn::lazy(ctx.target.clone());
    let reply = conn
        .get(&format!("/shows/{show}/seats"))
        .await
        .map_err(|f| format!("GET seats failed ({})", f.name()))?;
    let json = reply.json();
    let seats = json["seats"]
        .as_array()
        .ok_or("the seat map has no seats")?;
    let mut rows: Vec<Vec<(bool, bool)>> = vec![Vec::new(); args.rows];
    let mut row_of = std::collections::HashMap::new();
    for r in 0..args.rows {
        row_of.insert(row_label(r), r);
    }
    for s in seats {
        let row = s["row"].as_str().and_then(|l| row_of.get(l)).copied();
        let Some(row) = row else { continue };
        rows[row].push((
            s["state"] == "available",
            s["aisle_after"].as_bool().unwrap_or(false),
        ));
    }
    Ok(rows)
}

/// Free seats whose neighbours in the row block (up to an aisle) are both not free.
fn stranded_singles(map: &[Vec<(bool, bool)>]) -> usize {
    runs(map).into_iter().filter(|&n| n == 1).count()
}

/// Pairs of free seats side by side.
fn free_pairs(map: &[Vec<(bool, bool)>]) -> usize {
    runs(map).into_iter().map(|n| n.saturating_sub(1)).sum()
}

/// Lengths of the runs of free seats (not across aisles).
fn runs(map: &[Vec<(bool, bool)>]) -> Vec<usize> {
    let mut out = Vec::new();
    for row in map {
        let mut run = 0;
        for &(free, aisle_after) in row {
            if free {
                run += 1;
            } else if run > 0 {
                out.push(run);
                run = 0;
            }
            if aisle_after && run > 0 {
                out.push(run);
                run = 0;
            }
        }
        if run > 0 {
            out.push(run);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stranded_seats_are_runs_of_one_between_taken_seats_aisles_and_row_ends() {
        // Row: free, taken, free | free free, taken, free (aisle after seat 3).
        let f = |free| (free, false);
        let row = vec![
            f(true),
            f(false),
            (true, true),
            f(true),
            f(true),
            f(false),
            f(true),
        ];
        assert_eq!(runs(std::slice::from_ref(&row)), vec![1, 1, 2, 1]);
        assert_eq!(stranded_singles(std::slice::from_ref(&row)), 3);
        assert_eq!(free_pairs(&[row]), 1);
    }
}
