//! The JSON API of `booking-core` over hyper 1.x: the contract is `docs/API.md`, the
//! full description is served at `/openapi.json`.
//!
//! # Layout
//!
//! Modules of the library, one file each unless said:
//!
//! - [`config`]: the environment variables / flags, with `--help`.
//! - [`auth`] (`auth.rs`, `auth/`): who is asking: `X-User-Id` (`AUTH_MODE=header`) or a
//!   verified JWT (`AUTH_MODE=jwt`: keys, JWKS re-read, each refusal's `401` code), the
//!   admin; `booking-server token` mints development tokens.
//! - [`state`]: what requests share ([`AppState`]: the pools, the engine handle, the
//!   feed, the caches, the hold batcher, metrics, the shutdown token).
//! - [`routes`]: `match` over method and path segments, one function per endpoint.
//! - [`shows`], [`holds`], [`bookings`], [`venues`], [`blocks`]: the endpoints, by the
//!   noun they serve (`holds` includes best available; `shows` parses the row specs
//!   that venues share; `bookings` cancels whole or in part and exchanges seats).
//! - [`cart`]: `POST /holds/{id}/add` and `/remove`, a live hold changed as a cart.
//! - [`events`]: `GET /shows/{id}/events`, the change feed as Server-Sent Events.
//! - [`ops`]: `/healthz`, `/readyz`, `/metrics`, `/openapi.json` (the document is
//!   `src/openapi.json`, compiled into the binary).
//! - [`idempotency`]: `Idempotency-Key` — the answer stored with the work, replayed.
//! - [`fields`]: how request bodies read integers (`52.0` is 52) and optional fields
//!   (`null` is refused), the same for every body.
//! - [`http`] (`http/mod.rs`): HTTP plumbing, one file a concern, their items
//!   re-exported from `http`:
//!   - [`http::reply`]: [`http::Reply`], [`http::Answer`], [`http::ApiError`] and its JSON.
//!   - [`http::error_map`]: the one mapping from `booking_core::Error` to status and code.
//!   - [`http::request`]: bounded body, JSON naming the bad field, caller, admin token, key.
//! - [`seat_cache`] (`seat_cache.rs`): seat maps served from memory, patched from the
//!   change feed.
//!   - [`seat_cache::map`] (`seat_cache/map.rs`): one show's map, the events applied to
//!     it, its JSON.
//!   - [`seat_cache::compact`] (`seat_cache/compact.rs`): the compact form of a map
//!     (`?format=compact`).
//! - [`encoding`]: `Accept-Encoding` negotiated, seat maps compressed (gzip, br) once
//!   per version.
//! - [`areas`]: `GET /shows/{show_id}/areas`, the standing areas with their counts.
//! - [`show_list`]: the `GET /shows` answer, read once and reused for up to a second.
//! - [`metrics`]: the Prometheus registry and its text format (`prometheus-client`).
//! - [`web`]: the seat-map page (`booking-server/web/`, compiled into the binary).
//! - [`demo`]: the demo show of `DEMO_SHOW=true`.
//! - [`queries`]: lists in pages (a show's holds and bookings, `/users/me/bookings`):
//!   the query string (`limit`, `cursor`, filters) parsed once, the page's JSON.
//! - [`reports`]: `GET /shows/{id}/report`, a show's counts and revenue.
//! - [`queue`]: a show's waiting room: join, `queue/me` and its event stream, and the
//!   gate holds, adds and best available pass on a queued show; the admitting loop
//!   (`booking_core::queue::admit::run`) is started by [`run`].
//! - [`webhooks`]: `/webhooks` (admin): endpoints and their deliveries; the delivery
//!   worker (`booking_core::webhooks::worker`) is started by [`run`].
//! - [`rate_limit`]: token buckets per user and per client address for the requests
//!   that take seats, decided in memory before any database work (`429`).
//! - [`cors`]: `CORS_ORIGINS`, the preflight and the CORS headers of every answer.
//!
//! Binaries:
//!
//! - `src/main.rs`: `booking-server`, the server itself.
//! - `src/bin/booking-contend.rs`: the last-seat fight, N users holding one free seat
//!   at once over HTTP.
//!
//! [`run`] serves a listener until a shutdown future completes, with the hold sweeper
//! beside it; `main.rs` only parses the configuration, sets up logging, binds the
//! address and wires signals to it, so tests start the same server on port 0.

pub mod areas;
pub mod auth;
pub mod blocks;
pub mod bookings;
pub mod cart;
pub mod config;
pub mod cors;
pub mod demo;
pub mod encoding;
pub mod events;
pub mod fields;
pub mod holds;
pub mod http;
pub mod idempotency;
pub mod metrics;
pub mod ops;
pub mod queries;
pub mod queue;
pub mod rate_limit;
pub mod reports;
pub mod routes;
pub mod seat_cache;
pub mod show_lifecycle;
pub mod show_list;
pub mod shows;
pub mod state;
pub mod venues;
pub mod web;
pub mod webhooks;

pub use config::Config;
pub use state::AppState;

use booking_core::sweeper::{self, SweeperOptions};
use booking_core::CancellationToken;
use futures_util::FutureExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// Longest wait for a request's headers: a client that trickles them is cut off.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// Builds the state, migrates the database (waiting up to 30 s for it to come up) and
/// creates the demo show when asked.
pub async fn prepare(config: &Config) -> Result<Arc<AppState>, booking_core::Error> {
    let pool = AppState::pool(config)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match booking_core::database::migrate_pool(&pool).await {
            Ok(()) => break,
            Err(e) if e.is_transient() && Instant::now() < deadline => {
                tracing::warn!(error = %e, "database not reachable yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e),
        }
    }
    if config.demo_show {
        demo::ensure(&pool).await?;
    }
    Ok(Arc::new(AppState::new(config, pool).await?))
}

/// How long shutdown waits for the engine's background tasks once they were told to stop.
const TASKS_BOUND: Duration = Duration::from_secs(5);

/// Serves HTTP on `listener` and runs the hold sweeper until `shutdown` completes; then
/// stops accepting; ends event streams, the feed, the LISTEN connection and the hold
/// batches; lets requests in flight finish (for at most the request timeout and a
/// second); stops the sweeper; waits (at most 5 s) for every background task of the
/// engine to end; closes the pools and returns.
pub async fn run(listener: TcpListener, state: Arc<AppState>, shutdown: impl Future<Output = ()>) {
    // Not a child of `state.shutdown`: the sweeper works on while requests drain.
    let stop_sweeper = CancellationToken::new();
    // Admits from every show's queue, with the other processes (see
    // `booking_core::queue::admit`); stops with the sweeper.
    state.engine.spawn(booking_core::queue::admit::run(
        state.engine.clone(),
        state.pool.clone(),
        stop_sweeper.clone(),
    ));
    let observer_state = state.clone();
    state.engine.spawn(sweeper::run(
        state.engine.clone(),
        state.pool.clone(),
        SweeperOptions {
            observer: Some(Arc::new(move |outcome| {
                let n = outcome.expired.len() as u64;
                observer_state.metrics.expiries.inc_by(n);
            })),
            ..SweeperOptions::default()
        },
        stop_sweeper.clone(),
    ));

    // Webhooks are delivered in the background, on their own pool; they stop with the
    // requests (a delivery cut off is sent again later: at least once).
    let mut webhook_options = state.webhook_options.clone();
    let webhook_state = state.clone();
    webhook_options.observer = Some(Arc::new(move |seen| {
        webhook_state.metrics.webhooks.observe(seen)
    }));
    state.engine.spawn(booking_core::webhooks::worker::run(
        state.engine.clone(),
        state.webhook_pool.clone(),
        webhook_options,
        state.shutdown.child_token(),
    ));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors, say: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                let service = service_fn(move |mut req: Request<Incoming>| {
                    // The peer is what a limit per address counts (`rate_limit`).
                    req.extensions_mut().insert(rate_limit::Peer(peer));
                    let state = state.clone();
                    // Boxed: each connection's task keeps room for its request's future,
                    // which inline would be as large as the largest handler's (a hold's,
                    // with every await of its transaction), for 10,000 idle streams too.
                    async move { Ok::<_, Infallible>(Box::pin(handle(&state, req)).await) }
                });
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!("shutting down: finishing requests in flight");
    // Event streams never finish by themselves: end them so that the drain can.
    state.shutdown.cancel();
    let drain = state.request_timeout + Duration::from_secs(1);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not finish in time");
    }
    stop_sweeper.cancel();
    if !state.engine.wait_for_tasks(TASKS_BOUND).await {
        tracing::warn!(
            tasks = state.engine.tasks_running(),
            "background tasks did not stop in time"
        );
    }
    // Every connection goes back to the database: the server leaves none open.
    state.pool.close();
    state.feed_pool.close();
    state.webhook_pool.close();
    tracing::info!("stopped");
}

/// One request: route, run under the request timeout, turn any failure (even a panic)
/// into a JSON answer, count it and log one line.
async fn handle(state: &AppState, req: Request<Incoming>) -> Response<http::Body> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let user = state.auth.user_for_log(req.headers());
    let origin = state.cors.allowed(req.headers());
    if let Some(mut response) = state.cors.preflight(&method, req.headers()) {
        web::harden(&mut response);
        state
            .metrics
            .observe("OPTIONS (preflight)", 204, started.elapsed());
        return response;
    }
    let (label, answer) = match routes::resolve(&method, &path) {
        Err(e) => ("unmatched", e.into_reply().into()),
        Ok(route) => {
            let work = AssertUnwindSafe(routes::dispatch(state, route, req)).catch_unwind();
            // The timeout bounds producing the answer; a stream's body (SSE) then runs
            // until the client leaves or the server shuts down.
            let answer = match tokio::time::timeout(state.request_timeout, work).await {
                Ok(Ok(Ok(answer))) => answer,
                Ok(Ok(Err(e))) => e.into_reply().into(),
                Ok(Err(_panic)) => http::ApiError::internal("a handler panicked")
                    .into_reply()
                    .into(),
                Err(_) => http::ApiError::unavailable(
                    "The request took longer than the server allows; retry shortly.",
                )
                .into_reply()
                .into(),
            };
            (route.label(), answer)
        }
    };
    let response = match answer {
        http::Answer::Reply(reply) => {
            if reply.lock_timeout {
                state.metrics.lock_timeouts.inc();
            }
            reply.into_response()
        }
        http::Answer::Stream(response) => response,
    };
    let mut response = response;
    state.cors.decorate(origin, &mut response);
    web::harden(&mut response);
    let status = response.status().as_u16();
    let latency = started.elapsed();
    if status == 503 {
        state.metrics.unavailable.inc();
    }
    state.metrics.observe(label, status, latency);
    tracing::info!(
        route = label,
        method = %method,
        status,
        latency_ms = latency.as_secs_f64() * 1000.0,
        user = %user,
        "request"
    );
    response
}
