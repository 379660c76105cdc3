//! The last-seat fight over HTTP: N users try to hold the same free seat at once.
//!
//!     booking-contend --url http://127.0.0.1:8080 --users 1000
//!
//! Picks a free seat (of `--show`, or of the first show that has one; with
//! `ADMIN_TOKEN`, creates a show when none has), opens one connection per user, waits
//! until all are open, releases every request at the same instant, and prints
//! successes, conflicts, other answers and the wall time. Exits 0 only when exactly one
//! request got 201 and every other got 409, 1 otherwise, and 2 when the URL is not
//! `http://` or no free seat can be found.

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::Barrier;

#[derive(Parser)]
#[command(about = "N simultaneous users try to hold the same free seat")]
struct Args {
    /// Base URL of a running booking-server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// How many users fire at once.
    #[arg(long, default_value_t = 1000)]
    users: usize,
    /// Show to use (default: the first with a free seat).
    #[arg(long)]
    show: Option<String>,
    /// Admin token: lets the tool create a show when no free seat is left.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
}

struct Target {
    host: String,
    addr: String,
}

async fn call(
    target: &Target,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Result<(StatusCode, Value), String> {
    let stream = TcpStream::connect(&target.addr)
        .await
        .map_err(|e| format!("connect {}: {e}", target.addr))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = build(target, method, path, headers, body);
    let res = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = res.status();
    let bytes = res
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok((status, value))
}

fn build(
    target: &Target,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Request<Full<Bytes>> {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("host", &target.host);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let body = match body {
        Some(v) => {
            b = b.header("content-type", "application/json");
            Bytes::from(v.to_string())
        }
        None => Bytes::new(),
    };
    b.body(Full::new(body)).expect("valid request")
}

/// A show and a seat in it that is free right now.
async fn free_seat(target: &Target, args: &Args) -> Result<(String, String), String> {
    let mut shows: Vec<String> = match &args.show {
        Some(s) => vec![s.clone()],
        None => {
            // The list carries no counts: each show's own answer says what is free.
            let (_, list) = call(target, Method::GET, "/shows", &[], None).await?;
            let ids: Vec<String> = list["shows"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s["id"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let mut free = Vec::new();
            for id in ids {
                let (_, show) =
                    call(target, Method::GET, &format!("/shows/{id}"), &[], None).await?;
                if show["available"].as_i64() > Some(0) {
                    free.push(id);
                }
            }
            free
        }
    };
    if shows.is_empty() {
        let token = args
            .admin_token
            .as_deref()
            .ok_or("no show has a free seat, and no ADMIN_TOKEN to create one")?;
        let auth = format!("Bearer {token}");
        let (status, show) = call(
            target,
            Method::POST,
            "/shows",
            &[("authorization", &auth)],
            Some(json!({"title": "Contention test", "starts_at": "2030-01-01T20:00:00Z", "rows": [{"row": "A", "seats": 10}]})),
        )
        .await?;
        if status != StatusCode::CREATED {
            return Err(format!("creating a show answered {status}: {show}"));
        }
        shows.push(show["id"].as_str().unwrap_or_default().to_owned());
    }
    for show in shows {
        let (status, map) = call(
            target,
            Method::GET,
            &format!("/shows/{show}/seats"),
            &[],
            None,
        )
        .await?;
        if status != StatusCode::OK {
            return Err(format!("seat map of show {show} answered {status}"));
        }
        let seat = map["seats"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["state"] == "available"))
            .and_then(|s| s["label"].as_str());
        if let Some(seat) = seat {
            return Ok((show, seat.to_owned()));
        }
    }
    Err("no free seat found".into())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let Some(rest) = args.url.strip_prefix("http://") else {
        eprintln!("only http:// URLs are supported");
        return ExitCode::from(2);
    };
    let host = rest.trim_end_matches('/').to_owned();
    let addr = if host.contains(':') {
        host.clone()
    } else {
        format!("{host}:80")
    };
    let target = Arc::new(Target { host, addr });

    let (show, seat) = match free_seat(&target, &args).await {
        Ok(x) => x,
        Err(e) => {
            eprintln!("booking-contend: {e}");
            return ExitCode::from(2);
        }
    };
    println!(
        "{} users try to hold seat {seat} of show {show} at once",
        args.users
    );

    // Open every connection first, then release all requests at the same instant.
    let barrier = Arc::new(Barrier::new(args.users + 1));
    let mut tasks = Vec::with_capacity(args.users);
    for i in 0..args.users {
        let target = target.clone();
        let barrier = barrier.clone();
        let path = format!("/shows/{show}/holds");
        let body = json!({"seats": [seat]});
        tasks.push(tokio::spawn(async move {
            let ready = async {
                let stream = TcpStream::connect(&target.addr)
                    .await
                    .map_err(|e| e.to_string())?;
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(|e| e.to_string())?;
                tokio::spawn(conn);
                Ok::<_, String>(sender)
            }
            .await;
            barrier.wait().await;
            let mut sender = ready?;
            let user = format!("contender-{i}");
            let req = build(
                &target,
                Method::POST,
                &path,
                &[("x-user-id", &user)],
                Some(body),
            );
            let res = tokio::time::timeout(Duration::from_secs(60), sender.send_request(req))
                .await
                .map_err(|_| "no answer within 60 s".to_owned())?
                .map_err(|e| e.to_string())?;
            let status = res.status();
            let _ = res.into_body().collect().await;
            Ok::<_, String>(status)
        }));
    }
    barrier.wait().await;
    let started = Instant::now();
    let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
    let mut failures: BTreeMap<String, usize> = BTreeMap::new();
    for t in tasks {
        match t.await {
            Ok(Ok(status)) => *by_status.entry(status.as_u16()).or_default() += 1,
            Ok(Err(e)) => *failures.entry(e).or_default() += 1,
            Err(e) => *failures.entry(e.to_string()).or_default() += 1,
        }
    }
    let wall = started.elapsed();
    let successes = by_status.get(&201).copied().unwrap_or(0);
    let conflicts = by_status.get(&409).copied().unwrap_or(0);
    let others: usize = by_status
        .iter()
        .filter(|(s, _)| **s != 201 && **s != 409)
        .map(|(_, n)| n)
        .sum::<usize>()
        + failures.values().sum::<usize>();
    println!("successes: {successes}");
    println!("conflicts: {conflicts}");
    println!("other answers: {others}");
    for (status, n) in by_status.iter().filter(|(s, _)| **s != 201 && **s != 409) {
        println!("  HTTP {status}: {n}");
    }
    for (e, n) in &failures {
        println!("  failed: {e} ({n})");
    }
    println!("wall time: {:.3} s", wall.as_secs_f64());
    if successes == 1 && others == 0 {
        println!("OK: exactly one winner");
        ExitCode::SUCCESS
    } else {
        println!("FAIL: expected exactly one 201 and only 409s otherwise");
        ExitCode::FAILURE
    }
}
