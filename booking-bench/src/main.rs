//! booking-bench: the load generator and benchmark instrument of booking-server.
//!
//! ```text
//! booking-bench <scenario> [--url http://127.0.0.1:8080] [--concurrency N]
//!               [--duration SECS] [--json PATH] [scenario flags]
//! ```
//!
//! Each scenario creates the shows it needs through the API (so it needs the admin
//! token: `--admin-token` or `ADMIN_TOKEN`), runs against the server with keep-alive
//! HTTP/1.1 connections (hyper), prints a table (throughput, latency p50/p90/p99/max,
//! answers by status, connection failures) and writes the same as JSON. The exit
//! status is 0 only when the scenario's checks (it ran; correctness conditions such as
//! the herd's single winner; never timings) all hold.
//!
//! `pgbench` converts a pgbench run into the same JSON; `report` prints HTTP figures
//! next to their pgbench twins (see scripts/bench.sh and BENCHMARKS.md).

mod client;
mod common;
mod pgbench;
mod report;
mod scenarios;
mod stats;

use clap::{Parser, Subcommand};
use common::{Common, Ctx, Sampler};
use scenarios::{
    abuse, adds, areas, best, book, cart, expiry, fanout, growth, herd, holds, mixed, queue,
    seatmap,
};
use stats::RunResult;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "booking-bench",
    about = "Load generator and benchmarks for booking-server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Uncontended holds of random free seats across many shows.
    Holds(holds::Args),
    /// Hold then confirm: a booking is the pair.
    Book(book::Args),
    /// Cart sessions: hold 2 seats, add 1, remove 1, confirm (the 2 left are booked).
    Cart(cart::CartArgs),
    /// Adds of 1 free seat each to a live hold of one's own, measured as `holds` is.
    Adds(adds::AddsArgs),
    /// Best available groups of 2-6 on one 2,000-seat show until it sells out.
    Best(best::Args),
    /// N clients released at once on one free seat: exactly one must win.
    Herd(herd::Args),
    /// N buyers of 1 place each released at once on a standing area: exactly
    /// `capacity` must win.
    AreaHerd(areas::HerdArgs),
    /// Holds of 1 place each on one standing area of 100,000 places (every buyer on
    /// the same area), measured as `holds` is.
    AreaHolds(areas::HoldsArgs),
    /// Seat-map reads of a 1,000-seat show while holds come and go on it.
    Seatmap(seatmap::Args),
    /// An on-sale's mix: browse, hold, confirm, release, abandon.
    Mixed(mixed::Args),
    /// Delay from a hold's expires_at to its expire event on the SSE stream.
    Expiry(expiry::Args),
    /// Many SSE subscribers on one show while holds happen: delivery latency, misses.
    Fanout(fanout::Args),
    /// Holds, seat maps, confirms, herds and `GET /shows` on shows of its own and on
    /// old shows of a filled database (scripts/bench_growth.sh).
    Growth(growth::Args),
    /// One user sending holds far past the limit next to a crowd of distinct users
    /// (issue 19): the crowd's hold latency, the abuser's 429s.
    Abuse(abuse::Args),
    /// Many distinct buyers joining a queued show's waiting room before sales open
    /// (100,000 by default): join latency, server RSS, the shuffle at the start.
    Queue(queue::Args),
    /// Convert a pgbench run (output + per-transaction logs) into a result JSON.
    Pgbench(pgbench::PgbenchArgs),
    /// Print the HTTP results next to their pgbench twins, and the targets.
    Report(report::ReportArgs),
}

impl Command {
    fn common(&self) -> Option<&Common> {
        Some(match self {
            Command::Holds(a) => &a.common,
            Command::Book(a) => &a.common,
            Command::Cart(a) => &a.common,
            Command::Adds(a) => &a.common,
            Command::Best(a) => &a.common,
            Command::Herd(a) => &a.common,
            Command::AreaHerd(a) => &a.common,
            Command::AreaHolds(a) => &a.common,
            Command::Seatmap(a) => &a.common,
            Command::Mixed(a) => &a.common,
            Command::Expiry(a) => &a.common,
            Command::Fanout(a) => &a.common,
            Command::Growth(a) => &a.common,
            Command::Abuse(a) => &a.common,
            Command::Queue(a) => &a.common,
            Command::Pgbench(_) | Command::Report(_) => return None,
        })
    }
}

fn write_json(path: Option<&std::path::Path>, r: &RunResult) -> Result<(), String> {
    let Some(path) = path else { return Ok(()) };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(r).map_err(|e| e.to_string())?;
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

async fn scenario(cmd: &Command, common: &Common) -> Result<RunResult, String> {
    let target = client::Target::parse(
        &common.url,
        common.admin_token.clone(),
        common.jwt_secret.as_deref(),
    )?;
    let ctx = Ctx {
        target,
        common: common.clone(),
    };
    let sampler = Sampler::start(common.server_pid);
    let own_cpu = common::proc_cpu_s(std::process::id());
    let mut r = match cmd {
        Command::Holds(a) => holds::run(&ctx, a).await?,
        Command::Book(a) => book::run(&ctx, a).await?,
        Command::Cart(a) => cart::run_cart(&ctx, a).await?,
        Command::Adds(a) => adds::run_adds(&ctx, a).await?,
        Command::Best(a) => best::run(&ctx, a).await?,
        Command::Herd(a) => herd::run(&ctx, a).await?,
        Command::AreaHerd(a) => areas::run_herd(&ctx, a).await?,
        Command::AreaHolds(a) => areas::run_holds(&ctx, a).await?,
        Command::Seatmap(a) => seatmap::run(&ctx, a).await?,
        Command::Mixed(a) => mixed::run(&ctx, a).await?,
        Command::Expiry(a) => expiry::run(&ctx, a).await?,
        Command::Fanout(a) => fanout::run(&ctx, a).await?,
        Command::Growth(a) => growth::run(&ctx, a).await?,
        Command::Abuse(a) => abuse::run(&ctx, a).await?,
        Command::Queue(a) => queue::run(&ctx, a).await?,
        Command::Pgbench(_) | Command::Report(_) => unreachable!("not a scenario"),
    };
    if let Some(s) = sampler {
        r.server = Some(s.finish().await);
    }
    if let (Some(a), Some(b)) = (own_cpu, common::proc_cpu_s(std::process::id())) {
        // The load generator's own CPU time: it shares the machine with the server.
        r.extra("loadgen_cpu_s", ((b - a) * 100.0).round() / 100.0);
    }
    Ok(r)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match &cli.command {
        Command::Report(a) => report::report(a).map(|ok| (ok, None)),
        Command::Pgbench(a) => pgbench::pgbench(a).and_then(|r| {
            write_json(a.json.as_deref(), &r)?;
            Ok((r.ok(), Some(r)))
        }),
        cmd => {
            let common = cmd.common().expect("a scenario");
            scenario(cmd, common).await.and_then(|r| {
                write_json(common.json.as_deref(), &r)?;
                Ok((r.ok(), Some(r)))
            })
        }
    };
    match outcome {
        Ok((ok, r)) => {
            if let Some(r) = r {
                r.print();
            }
            if ok {
                ExitCode::SUCCESS
            } else {
                eprintln!("booking-bench: a check failed");
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("booking-bench: {e}");
            ExitCode::from(2)
        }
    }
}
