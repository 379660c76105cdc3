//! The `booking-server` binary: the JSON API on one address.
//!
//!     DATABASE_URL=postgres://localhost/booking booking-server --bind-addr 0.0.0.0:8080
//!
//! Parses the [`Config`] (environment variables and flags, `--help` lists them),
//! sets up logging (`LOG_FORMAT`; `RUST_LOG` filters, default `info`), migrates the
//! database ([`booking_server::prepare`]), listens with an accept queue of 4096 and
//! serves ([`booking_server::run`]) until SIGINT or SIGTERM, then shuts down gracefully.
//!
//! `booking-server token --user alice --ttl 3600 [--admin]` prints a development token
//! instead (`AUTH_MODE=jwt`; see `booking_server::auth::mint`).
//!
//! Exit status: 0 after a shutdown; 2 for a bad configuration; 1 when the server cannot
//! start (the database stays unreachable for 30 s, a migration fails, the address
//! cannot be bound).

use booking_server::auth::mint::{mint, TokenArgs};
use booking_server::config::{Config, LogFormat};
use clap::Parser;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    if std::env::args_os().nth(1).is_some_and(|a| a == "token") {
        return token();
    }
    let config = Config::parse();
    if let Err(e) = config.validate() {
        eprintln!("booking-server: {e}");
        return ExitCode::from(2);
    }
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    match config.log_format {
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init(),
        LogFormat::Pretty => tracing_subscriber::fmt().with_env_filter(filter).init(),
    }

    let state = match booking_server::prepare(&config).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            return ExitCode::FAILURE;
        }
    };
    let listener = match listen(config.bind_addr) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, addr = %config.bind_addr, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "listening");
        state.auth.warn_if_exposed(addr);
    }
    booking_server::run(listener, state, shutdown_signal()).await;
    ExitCode::SUCCESS
}

/// `booking-server token --user U [--ttl S] [--admin] [--key FILE] [--kid K]`: prints a
/// development token (see `booking_server::auth::mint`).
fn token() -> ExitCode {
    let args = TokenArgs::parse_from(std::env::args_os().skip(1));
    match mint(&args) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("booking-server token: {e}");
            ExitCode::from(2)
        }
    }
}

/// A listening socket with a deep accept queue: a burst of thousands of connections
/// (an on-sale opening) must not overflow the default backlog of 128 into SYN retries.
fn listen(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
