//! `pgbench`: turns a pgbench run (its output and per-transaction logs) into a result
//! like the HTTP scenarios', so that `report` can put each twin next to its HTTP
//! figure.

use crate::stats::{Dist, OpSummary, RunResult};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug, Clone)]
pub struct PgbenchArgs {
    /// Name of the twin (hold1, hold4, seatmap, herd); the result is `pgbench-<name>`.
    #[arg(long)]
    pub name: String,
    /// File holding pgbench's output (stdout and stderr).
    #[arg(long)]
    pub output: PathBuf,
    /// The --log-prefix given to pgbench (files `<prefix>.<pid>[.<thread>]`).
    #[arg(long)]
    pub log_prefix: PathBuf,
    /// pgbench clients (-c).
    #[arg(long)]
    pub clients: usize,
    /// Holds one transaction makes (32 for the batched twin): the result's primary op
    /// is then `holds`, at this many times the transactions' rate, each hold as slow as
    /// its transaction; the transactions are op `transaction`.
    #[arg(long, default_value_t = 1)]
    pub holds_per_transaction: u64,
    /// Holds the script made (e.g. counted in the database), when known: recorded, and
    /// checked to equal the transactions processed times --holds-per-transaction.
    #[arg(long)]
    pub did: Option<u64>,
    /// Write the result as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

fn number_after(text: &str, key: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.trim_start().starts_with(key))?;
    let rest = line.trim_start()[key.len()..].trim_start();
    let num: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    num.parse().ok()
}

pub fn pgbench(args: &PgbenchArgs) -> Result<RunResult, String> {
    let out = std::fs::read_to_string(&args.output)
        .map_err(|e| format!("{}: {e}", args.output.display()))?;
    let tps = number_after(&out, "tps =").ok_or("no `tps =` line in pgbench's output")?;
    let processed = number_after(&out, "number of transactions actually processed:")
        .ok_or("no transaction count in pgbench's output")? as u64;
    let failed = number_after(&out, "number of failed transactions:").unwrap_or(0.0) as u64;
    let duration = number_after(&out, "duration:").unwrap_or(0.0);
    let aborted = out.lines().filter(|l| l.contains("aborted")).count();

    // Per-transaction logs: "client_id transaction_no time script_no epoch us ...",
    // time in microseconds ("failed" or "skipped" for transactions that did not end).
    let dir = args
        .log_prefix
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let stem = args
        .log_prefix
        .file_name()
        .and_then(|s| s.to_str())
        .ok_or("bad --log-prefix")?
        .to_owned()
        + ".";
    let mut lat = Vec::new();
    let mut files = 0;
    for entry in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let entry = entry.map_err(|e| e.to_string())?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with(&stem) {
            continue;
        }
        files += 1;
        let text = std::fs::read_to_string(entry.path()).map_err(|e| e.to_string())?;
        for line in text.lines() {
            if let Some(us) = line
                .split_whitespace()
                .nth(2)
                .and_then(|t| t.parse::<u64>().ok())
            {
                lat.push(us);
            }
        }
    }
    if files == 0 {
        return Err(format!(
            "no pgbench log files {}*",
            args.log_prefix.display()
        ));
    }
    let name = format!("pgbench-{}", args.name);
    let mut r = RunResult {
        scenario: "pgbench".into(),
        name: name.clone(),
        url: String::new(),
        concurrency: args.clients,
        duration_s: duration,
        elapsed_s: duration,
        primary: args.name.clone(),
        ..Default::default()
    };
    let mut status = BTreeMap::new();
    status.insert("ok".to_owned(), processed.saturating_sub(failed));
    if failed > 0 {
        status.insert("failed".to_owned(), failed);
    }
    let per = args.holds_per_transaction.max(1);
    let transactions = OpSummary {
        requests: processed,
        throughput_rps: tps,
        latency: Dist::from_us(lat),
        status,
        errors: BTreeMap::new(),
    };
    if per > 1 {
        let mut holds = transactions.clone();
        holds.requests = processed * per;
        holds.throughput_rps = tps * per as f64;
        holds.status = BTreeMap::from([("ok".to_owned(), processed.saturating_sub(failed) * per)]);
        r.primary = "holds".into();
        r.ops.insert("holds".into(), holds);
        r.ops.insert("transaction".into(), transactions);
        r.extra("holds_per_transaction", per);
    } else {
        r.ops.insert(args.name.clone(), transactions);
    }
    r.extra("tps_reported", tps);
    r.extra(
        "latency_average_ms",
        number_after(&out, "latency average =").unwrap_or(0.0),
    );
    r.extra("aborted_clients", aborted);
    r.check("ran", processed > 0, format!("{processed} transactions"));
    r.check(
        "no_aborts",
        aborted == 0,
        format!("{aborted} pgbench clients aborted"),
    );
    if let Some(did) = args.did {
        r.extra("transactions_that_did_the_work", did);
        r.check(
            "all_did_the_work",
            did == processed * per,
            format!("{did} holds made by {processed} transactions of {per} (pool large enough)"),
        );
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pgbench_output() {
        let out = "duration: 3 s\nnumber of transactions actually processed: 5386\nnumber of failed transactions: 0 (0.000%)\nlatency average = 17.832 ms\ntps = 1794.478563 (without initial connection time)\n";
        assert_eq!(number_after(out, "tps ="), Some(1794.478563));
        assert_eq!(
            number_after(out, "number of transactions actually processed:"),
            Some(5386.0)
        );
        assert_eq!(
            number_after(out, "number of failed transactions:"),
            Some(0.0)
        );
        assert_eq!(number_after(out, "duration:"), Some(3.0));
    }

    /// A pgbench run of `processed` transactions at `tps`, written to a fresh directory:
    /// its output and one per-transaction log (3 ms each).
    fn run_files(tag: &str, processed: u64, tps: f64) -> (PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!("booking-bench-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let out = dir.join("out.txt");
        std::fs::write(
            &out,
            format!(
                "duration: 10 s\nnumber of transactions actually processed: {processed}\n\
                 tps = {tps} (without initial connection time)\n"
            ),
        )
        .expect("output");
        let log: String = (0..processed)
            .map(|i| format!("0 {i} 3000 0 1700000000 0\n"))
            .collect();
        std::fs::write(dir.join("run.123"), log).expect("log");
        (out, dir.join("run"))
    }

    fn args(out: PathBuf, log_prefix: PathBuf, per: u64, did: Option<u64>) -> PgbenchArgs {
        PgbenchArgs {
            name: "hold-batch".into(),
            output: out,
            log_prefix,
            clients: 32,
            holds_per_transaction: per,
            did,
            json: None,
        }
    }

    #[test]
    fn a_batched_twin_counts_holds() {
        let (out, prefix) = run_files("batch", 100, 10.0);
        let r = pgbench(&args(out.clone(), prefix.clone(), 32, Some(3200))).expect("converted");
        assert_eq!(r.primary, "holds");
        let holds = &r.ops["holds"];
        assert_eq!(holds.requests, 3200);
        assert_eq!(holds.throughput_rps, 320.0);
        assert_eq!(r.ops["transaction"].requests, 100);
        assert!(r.ok(), "{:?}", r.checks);
        // A pool that ran out: fewer holds than 32 a transaction fails the check.
        let short = pgbench(&args(out, prefix.clone(), 32, Some(3199))).expect("converted");
        assert!(!short.ok());
        let _ = std::fs::remove_dir_all(prefix.parent().expect("a directory"));
    }

    #[test]
    fn a_per_request_twin_counts_transactions() {
        let (out, prefix) = run_files("one", 50, 5.0);
        let r = pgbench(&args(out, prefix.clone(), 1, Some(50))).expect("converted");
        assert_eq!(r.primary, "hold-batch");
        assert_eq!(r.ops[&r.primary].throughput_rps, 5.0);
        assert!(r.ok(), "{:?}", r.checks);
        let _ = std::fs::remove_dir_all(prefix.parent().expect("a directory"));
    }
}
