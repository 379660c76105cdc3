//! `report`: reads a directory of results and prints each HTTP figure next to its
//! pgbench twin (converted by `pgbench.rs`), the targets, and every scenario's table.

use crate::stats::{OpSummary, RunResult};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(clap::Args, Debug, Clone)]
pub struct ReportArgs {
    /// Directory of result JSON files (as written by --json).
    #[arg(long)]
    pub dir: PathBuf,
    /// JSON written by scripts/bench.sh about the server process and the machine.
    #[arg(long)]
    pub server: Option<PathBuf>,
    /// Write the report as Markdown here.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Write the comparison as JSON here.
    #[arg(long)]
    pub summary: Option<PathBuf>,
}

fn fmt_rate(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

fn fmt_ms(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// One line of the comparison: an HTTP figure, its twin, the target.
struct Line {
    what: String,
    http: String,
    twin: String,
    ratio: String,
    target: String,
    met: Option<bool>,
}

pub fn report(args: &ReportArgs) -> Result<bool, String> {
    let mut results: BTreeMap<String, RunResult> = BTreeMap::new();
    let mut entries: Vec<_> = std::fs::read_dir(&args.dir)
        .map_err(|e| format!("{}: {e}", args.dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    entries.sort();
    for p in entries {
        let Ok(text) = std::fs::read_to_string(&p) else {
            continue;
        };
        if let Ok(r) = serde_json::from_str::<RunResult>(&text) {
            if !r.scenario.is_empty() {
                results.insert(r.name.clone(), r);
            }
        }
    }
    let server: Value = match &args.server {
        Some(p) => std::fs::read_to_string(p)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null),
        None => Value::Null,
    };

    let op = |name: &str| -> Option<&OpSummary> {
        let r = results.get(name)?;
        r.ops.get(&r.primary)
    };
    let delay = |name: &str, d: &str| results.get(name).and_then(|r| r.delays.get(d)).cloned();
    let mut lines = Vec::new();
    let mut compare = |what: &str, http: &str, twin: &str, factor: Option<f64>| {
        let (h, t) = (op(http), op(twin));
        // A batched twin's primary figure is holds, not transactions (pgbench.rs).
        let unit = match results.get(twin).is_some_and(|r| r.primary == "holds") {
            true => "holds/s",
            false => "tps",
        };
        let ratio = match (h, t) {
            (Some(h), Some(t)) if t.throughput_rps > 0.0 => {
                Some(h.throughput_rps / t.throughput_rps)
            }
            _ => None,
        };
        lines.push(Line {
            what: what.to_owned(),
            http: h
                .map(|h| {
                    format!(
                        "{} req/s (p50 {} / p99 {} ms)",
                        fmt_rate(h.throughput_rps),
                        fmt_ms(h.latency.p50_ms),
                        fmt_ms(h.latency.p99_ms)
                    )
                })
                .unwrap_or_else(|| "-".into()),
            twin: t
                .map(|t| {
                    format!(
                        "{} {unit} (p50 {} / p99 {} ms)",
                        fmt_rate(t.throughput_rps),
                        fmt_ms(t.latency.p50_ms),
                        fmt_ms(t.latency.p99_ms)
                    )
                })
                .unwrap_or_else(|| "-".into()),
            ratio: ratio
                .map(|x| format!("{x:.2}x"))
                .unwrap_or_else(|| "-".into()),
            target: factor
                .map(|f| format!(">= {f}x"))
                .unwrap_or_else(|| "(none)".into()),
            met: factor.and_then(|f| ratio.map(|x| x >= f)),
        });
    };
    // Issue 18: the headline, like with like (random seats of 100,000-seat shows, every
    // twin prepared): against the server's complete hold per request, and against its
    // batch statement (how close the server comes to what PostgreSQL can do).
    compare(
        "holds, 1 seat of 100,000, c=32 vs hold_full.sql (prepared, per request)",
        "holds-100k",
        "pgbench-hold-full",
        Some(1.5),
    );
    compare(
        "holds, 1 seat of 100,000, c=32 vs hold_batch.sql (c=4, 32 holds a statement; holds/s)",
        "holds-100k",
        "pgbench-hold-batch",
        None,
    );
    compare(
        "holds, 1 seat, c=32 vs hold1.sql (prepared, no event)",
        "holds",
        "pgbench-hold1",
        None,
    );
    // Not a twin: holds with an Idempotency-Key each against holds without, measured
    // alike (issue 18: at least 0.9).
    compare(
        "keyed holds, c=32 vs holds (req/s)",
        "holds-keyed",
        "holds",
        Some(0.9),
    );
    compare(
        "holds, 4 seats, c=32 vs hold4.sql",
        "holds-4",
        "pgbench-hold4",
        None,
    );
    compare(
        "seat map (1,000 seats), c=32 vs seatmap.sql",
        "seatmap",
        "pgbench-seatmap",
        Some(10.0),
    );
    // Not a pgbench twin: the same map read the same way, with and without venue
    // inventory (issue 14: at most 10% dearer).
    compare(
        "seat map with blocks, types, features vs without (req/s)",
        "seatmap-inventory",
        "seatmap",
        Some(0.9),
    );
    // Not a pgbench twin either: holds of 1 place of one standing area against holds of
    // 1 seat, measured alike (issue 15: within 20%).
    compare(
        "holds, 1 place of one area, c=32 vs holds, 1 seat (req/s)",
        "area-holds",
        "holds",
        Some(0.8),
    );
    // Nor this: adds of 1 seat to a live hold against new holds of 1 seat, measured
    // alike (issue 16: within 20%).
    compare(
        "adds, 1 seat to a live hold, c=32 vs holds, 1 seat (req/s)",
        "adds",
        "holds",
        Some(0.8),
    );
    compare(
        "herd (req/s = N / wall) vs herd.sql",
        "herd",
        "pgbench-herd",
        None,
    );

    // Issue 19: the crowd's holds next to one abusive user against the crowd alone, on
    // the server with RATE_HOLDS_PER_USER (the figures to compare are the p50/p99).
    compare(
        "crowd's holds next to 1 user at 1,000 holds/s vs alone (limit per user on)",
        "abuse",
        "abuse-baseline",
        None,
    );
    compare(
        "crowd's holds next to 1 user at 1,000 holds/s, no limit vs alone with the limit",
        "abuse-unlimited",
        "abuse-baseline",
        None,
    );
    if let Some(a) = results.get("abuse") {
        let o = a.ops.get("abuser").cloned().unwrap_or_default();
        lines.push(Line {
            what: "the abuser's holds (limit per user on)".into(),
            http: format!(
                "{} sent: {} x 201, {} x 429 (p99 {} ms)",
                a.extra
                    .get("abuser_sent")
                    .and_then(Value::as_u64)
                    .unwrap_or(0),
                o.status_count(201),
                o.status_count(429),
                fmt_ms(o.latency.p99_ms)
            ),
            twin: String::new(),
            ratio: String::new(),
            target: "(none)".into(),
            met: None,
        });
    }
    for (name, keyed) in [
        ("herd", false),
        ("herd-keyed", true),
        ("herd-limited", false),
    ] {
        let Some(h) = results.get(name) else { continue };
        let o = h.ops.get("hold").cloned().unwrap_or_default();
        let passed = |check: &str| h.checks.iter().any(|c| c.name == check && c.ok);
        let replays = match keyed {
            true => format!(
                "; {} retries replayed exactly: {}",
                h.extra.get("replays").and_then(Value::as_u64).unwrap_or(0),
                if passed("replayed_exactly") {
                    "yes"
                } else {
                    "no"
                }
            ),
            false => String::new(),
        };
        lines.push(Line {
            what: format!(
                "{}herd of {}: p99, one winner",
                match name {
                    "herd-keyed" => "keyed ",
                    "herd-limited" => "(limit per user on) ",
                    _ => "",
                },
                h.concurrency
            ),
            http: format!(
                "p99 {} ms, max {} ms; {} x 201, {} x 409{replays}",
                fmt_ms(o.latency.p99_ms),
                fmt_ms(o.latency.max_ms),
                o.status_count(201),
                o.status_count(409)
            ),
            twin: String::new(),
            ratio: String::new(),
            target: match keyed {
                true => {
                    "N = 10,000: p99 <= 1000 ms, exactly one 201, every refusal replayed exactly"
                }
                false => "N = 10,000: p99 <= 1000 ms, exactly one 201",
            }
            .into(),
            met: Some(
                h.concurrency >= 10000
                    && o.latency.p99_ms <= 1000.0
                    && passed("one_winner")
                    && (!keyed || passed("replayed_exactly")),
            ),
        });
    }
    if let Some(h) = results.get("area-herd") {
        let o = h.ops.get("hold").cloned().unwrap_or_default();
        let passed = |name: &str| h.checks.iter().any(|c| c.name == name && c.ok);
        let capacity = h.extra.get("capacity").and_then(Value::as_u64).unwrap_or(0);
        let (won, lost) = (o.status_count(201), o.status_count(409));
        let others = o.requests - won - lost + o.error_count();
        lines.push(Line {
            what: format!(
                "area herd of {} on {capacity} places: p99, exact",
                h.concurrency
            ),
            http: format!(
                "p99 {} ms, max {} ms; {won} x 201, {lost} x 409, {others} other",
                fmt_ms(o.latency.p99_ms),
                fmt_ms(o.latency.max_ms),
            ),
            twin: String::new(),
            ratio: String::new(),
            target: "N = 10,000 on 2,000: p99 <= 1000 ms, exactly 2,000 x 201 and 8,000 x 409"
                .into(),
            met: Some(
                h.concurrency >= 10000
                    && capacity == 2000
                    && o.latency.p99_ms <= 1000.0
                    && passed("exact")
                    && passed("sold_out"),
            ),
        });
    }
    if let Some(r) = results.get("cart") {
        let o = r.ops.get("session").cloned().unwrap_or_default();
        let steps: Vec<String> = ["hold", "add", "remove", "confirm"]
            .iter()
            .map(|s| match r.ops.get(*s) {
                Some(o) => format!(
                    "{s} {} / {}",
                    fmt_ms(o.latency.p50_ms),
                    fmt_ms(o.latency.p99_ms)
                ),
                None => format!("{s} -"),
            })
            .collect();
        lines.push(Line {
            what: format!(
                "cart sessions (hold 2, add 1, remove 1, confirm), c={}",
                r.concurrency
            ),
            http: format!(
                "{} sessions/s (p50 {} / p99 {} ms); steps p50 / p99 ms: {}",
                fmt_rate(o.throughput_rps),
                fmt_ms(o.latency.p50_ms),
                fmt_ms(o.latency.p99_ms),
                steps.join(", ")
            ),
            twin: String::new(),
            ratio: String::new(),
            target: "every step as expected, the 2 seats left booked".into(),
            met: Some(o.requests > 0 && r.ok()),
        });
    }
    // Issue 18: a stadium's map (100,000 seats), as sent: full and compact, gzip.
    for (name, target) in [
        ("seatmap-stadium-full-gzip", None),
        ("seatmap-stadium-compact-gzip", Some(300_000u64)),
    ] {
        let Some(r) = results.get(name) else { continue };
        let o = r.ops.get("seatmap").cloned().unwrap_or_default();
        let num = |k: &str| r.extra.get(k).and_then(Value::as_f64).unwrap_or(0.0);
        let (seats, bytes) = (num("seats") as u64, num("map_bytes") as u64);
        lines.push(Line {
            what: format!("seat map of {seats} seats, {name}"),
            http: format!(
                "{bytes} bytes sent ({} decoded); {} req/s (p50 {} / p99 {} ms), cold {} ms",
                num("map_bytes_decoded") as u64,
                fmt_rate(o.throughput_rps),
                fmt_ms(o.latency.p50_ms),
                fmt_ms(o.latency.p99_ms),
                fmt_ms(num("cold_ms"))
            ),
            twin: String::new(),
            ratio: String::new(),
            target: match target {
                Some(t) => format!("100,000 seats: <= {} KB compressed", t / 1000),
                None => "(none)".into(),
            },
            met: target.map(|t| seats >= 100_000 && bytes > 0 && bytes <= t && r.ok()),
        });
    }
    if let Some(o) = op("holds-c1") {
        lines.push(Line {
            what: "one uncontended hold, c=1".into(),
            http: format!(
                "p50 {} ms, p99 {} ms ({} req/s)",
                fmt_ms(o.latency.p50_ms),
                fmt_ms(o.latency.p99_ms),
                fmt_rate(o.throughput_rps)
            ),
            twin: String::new(),
            ratio: String::new(),
            target: "p50 <= 2 ms, p99 <= 10 ms".into(),
            met: Some(o.latency.p50_ms <= 2.0 && o.latency.p99_ms <= 10.0),
        });
    }
    if let Some(d) = delay("expiry", "expire_delay") {
        let missing = results
            .get("expiry")
            .and_then(|r| r.extra.get("events_missing"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        lines.push(Line {
            what: "expires_at -> expire event".into(),
            http: format!(
                "p50 {} / p90 {} / p99 {} / max {} ms ({} holds, {missing} missing)",
                fmt_ms(d.p50_ms),
                fmt_ms(d.p90_ms),
                fmt_ms(d.p99_ms),
                fmt_ms(d.max_ms),
                d.count
            ),
            twin: String::new(),
            ratio: String::new(),
            target: "p99 <= 100 ms".into(),
            met: Some(d.count > 0 && d.p99_ms <= 100.0 && missing == 0),
        });
    }
    if let (Some(r), Some(d)) = (results.get("fanout"), delay("fanout", "delivery")) {
        let missed = r
            .extra
            .get("events_missed")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let rss = r.server.as_ref().map(|s| s.rss_peak_mb);
        lines.push(Line {
            what: format!("fanout to {} SSE subscribers", r.concurrency),
            http: format!(
                "delivery p50 {} / p99 {} / max {} ms, {missed} missed; server RSS peak {}",
                fmt_ms(d.p50_ms),
                fmt_ms(d.p99_ms),
                fmt_ms(d.max_ms),
                rss.map(|x| format!("{x:.0} MB"))
                    .unwrap_or_else(|| "?".into())
            ),
            twin: String::new(),
            ratio: String::new(),
            target: "10,000 subscribers: p99 <= 250 ms, RSS <= 200 MB".into(),
            met: Some(
                r.concurrency >= 10000
                    && d.p99_ms <= 250.0
                    && missed == 0
                    && rss.is_some_and(|x| x <= 200.0),
            ),
        });
    }

    let mut md = String::new();
    if !server.is_null() {
        let m = &server["machine"];
        let quick = if server["quick"] == Value::Bool(true) {
            " (--quick: not figures to compare)"
        } else {
            ""
        };
        let _ = writeln!(
            md,
            "Machine: {} cores ({}), {} memory, shared by the server, PostgreSQL, pgbench and \
             the load generator. {} build, concurrency {}, {} s per run{quick}. Load average \
             (1/5/15 min) before {}, after {}.\n",
            m["nproc"],
            m["cpu"].as_str().unwrap_or("?"),
            m["memory"].as_str().unwrap_or("?"),
            server["profile"].as_str().unwrap_or("?"),
            server["concurrency"],
            server["duration_s"],
            server["loadavg_before"].as_str().unwrap_or("?"),
            server["loadavg_after"].as_str().unwrap_or("?"),
        );
    }
    let _ = writeln!(
        md,
        "| measure | HTTP (booking-server) | pgbench twin | ratio | target | met |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|");
    for l in &lines {
        let met = match l.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "-",
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            l.what, l.http, l.twin, l.ratio, l.target, met
        );
    }
    let _ = writeln!(md);
    let _ = writeln!(md, "| run | operation | c | answers | req/s | p50 ms | p90 ms | p99 ms | max ms | answers by status | failures |");
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|");
    let mut all_ok = true;
    for r in results.values() {
        all_ok &= r.ok();
        for (name, o) in &r.ops {
            let status: Vec<String> = o.status.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            let errors: Vec<String> = o.errors.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.name,
                name,
                r.concurrency,
                o.requests,
                fmt_rate(o.throughput_rps),
                fmt_ms(o.latency.p50_ms),
                fmt_ms(o.latency.p90_ms),
                fmt_ms(o.latency.p99_ms),
                fmt_ms(o.latency.max_ms),
                status.join(", "),
                if errors.is_empty() {
                    "0".into()
                } else {
                    errors.join(", ")
                },
            );
        }
        for (name, d) in &r.delays {
            let _ = writeln!(
                md,
                "| {} | {} (delay) | {} | {} | - | {} | {} | {} | {} | - | - |",
                r.name,
                name,
                r.concurrency,
                d.count,
                fmt_ms(d.p50_ms),
                fmt_ms(d.p90_ms),
                fmt_ms(d.p99_ms),
                fmt_ms(d.max_ms)
            );
        }
    }
    let failed: Vec<String> = results
        .values()
        .flat_map(|r| {
            r.checks
                .iter()
                .filter(|c| !c.ok)
                .map(move |c| format!("{}: {} ({})", r.name, c.name, c.detail))
        })
        .collect();
    let _ = writeln!(md);
    if !server.is_null() {
        let _ = writeln!(
            md,
            "Server process over the whole run: peak RSS (VmHWM) {} MB, CPU time {} s; its log: {} warnings, {} errors.",
            server["vmhwm_mb"], server["cpu_s"], server["log_warnings"], server["log_errors"]
        );
    }
    for r in results.values() {
        if let Some(s) = &r.server {
            let lg = r
                .extra
                .get("loadgen_cpu_s")
                .and_then(Value::as_f64)
                .unwrap_or(0.0);
            let _ = writeln!(
                md,
                "- {}: server RSS peak {:.1} MB, server CPU {:.2} s, load generator CPU {:.2} s",
                r.name, s.rss_peak_mb, s.cpu_s, lg
            );
        }
    }
    if failed.is_empty() {
        let _ = writeln!(md, "\nAll checks passed.");
    } else {
        let _ = writeln!(md, "\nFailed checks:");
        for f in &failed {
            let _ = writeln!(md, "- {f}");
        }
    }
    println!("{md}");
    if let Some(p) = &args.markdown {
        std::fs::write(p, &md).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    if let Some(p) = &args.summary {
        let v = json!({
            "comparison": lines.iter().map(|l| json!({
                "measure": l.what, "http": l.http, "pgbench": l.twin, "ratio": l.ratio,
                "target": l.target, "met": l.met,
            })).collect::<Vec<_>>(),
            "server": server,
            "failed_checks": failed,
        });
        std::fs::write(p, serde_json::to_string_pretty(&v).unwrap_or_default())
            .map_err(|e| format!("{}: {e}", p.display()))?;
    }
    Ok(all_ok)
}
