//! Configuration: environment variables, each also a command-line flag.

use clap::{builder::BoolishValueParser, Parser, ValueEnum};
use std::net::SocketAddr;
use std::time::Duration;

/// The seat-booking JSON API server.
///
/// Every option is an environment variable and a flag; a flag wins over the variable.
/// On a bad value the server refuses to start and says which.
#[derive(Debug, Clone, Parser)]
#[command(name = "booking-server", version, about, long_about = None)]
pub struct Config {
    /// PostgreSQL to use, libpq style (URL or key=value; several hosts allowed, e.g.
    /// postgres://db1,db2/booking?target_session_attrs=read-write).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,

    /// Address to listen on.
    #[arg(long, env = "BIND_ADDR", default_value = "127.0.0.1:8080")]
    pub bind_addr: SocketAddr,

    /// Hold lifetime in seconds when a request names none (1 to 3600).
    #[arg(long, env = "HOLD_TTL_SECONDS", default_value_t = 600,
          value_parser = clap::value_parser!(u32).range(1..=3600))]
    pub hold_ttl_seconds: u32,

    /// No hold lives longer than this many seconds from its creation, however often
    /// extended (1 to 86400).
    #[arg(long, env = "MAX_HOLD_SECONDS", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub max_hold_seconds: u64,

    /// Most seats in one hold (1 to 100).
    #[arg(long, env = "MAX_SEATS_PER_HOLD", default_value_t = 10,
          value_parser = clap::value_parser!(u16).range(1..=100))]
    pub max_seats_per_hold: u16,

    /// Bearer token for admin endpoints (creating shows, cancelling any booking).
    /// Unset: admin endpoints answer 403.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Database connections in the pool (default: 4 per CPU core).
    #[arg(long, env = "POOL_SIZE", value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub pool_size: Option<u16>,

    /// Holds without an idempotency key are written in batches, one statement for many
    /// requests: at most this many batches at once (1 to 64; 0 writes each hold alone).
    #[arg(long, env = "HOLD_BATCHES", default_value_t = 2,
          value_parser = clap::value_parser!(u16).range(0..=64))]
    pub hold_batches: u16,

    /// Longest wait for a free pooled connection before answering 503, in ms.
    #[arg(long, env = "POOL_WAIT_MS", default_value_t = 2000,
          value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub pool_wait_ms: u64,

    /// Longest wait for a seat's row lock before answering 503, in ms.
    #[arg(long, env = "LOCK_TIMEOUT_MS", default_value_t = 2000,
          value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub lock_timeout_ms: u64,

    /// Longest time a request may take, body included, before answering 503, in ms.
    #[arg(long, env = "REQUEST_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub request_timeout_ms: u64,

    /// Create a demo show ("Inception", 10 rows of 12) when the database has no show.
    #[arg(long, env = "DEMO_SHOW", default_value_t = false, num_args = 0..=1,
          default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub demo_show: bool,

    /// Log format: `pretty` for people, `json` for machines.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

impl Config {
    /// Checks what clap cannot: values that parse but make no sense together.
    pub fn validate(&self) -> Result<(), String> {
        booking_core::database::parse_url(&self.database_url)
            .map_err(|e| format!("DATABASE_URL is not a valid connection string: {e}"))?;
        if let Some(t) = &self.admin_token {
            if t.len() < 16 || !t.bytes().all(|b| b.is_ascii_graphic()) {
                return Err("ADMIN_TOKEN must be at least 16 visible ASCII characters".into());
            }
        }
        if self.max_hold_seconds < u64::from(self.hold_ttl_seconds) {
            return Err("MAX_HOLD_SECONDS must not be less than HOLD_TTL_SECONDS".into());
        }
        Ok(())
    }

    pub fn pool_size(&self) -> usize {
        match self.pool_size {
            Some(n) => usize::from(n),
            None => 4 * std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub fn settings(&self) -> booking_core::Settings {
        booking_core::Settings {
            lock_timeout: Duration::from_millis(self.lock_timeout_ms),
            default_ttl: booking_core::HoldTtl::from_secs(i64::from(self.hold_ttl_seconds))
                .expect("clap checked the range"),
            max_hold: Duration::from_secs(self.max_hold_seconds),
            max_seats_per_hold: usize::from(self.max_seats_per_hold),
        }
    }

    /// A configuration for tests and embedding: defaults, this database, port 0.
    pub fn for_database(database_url: &str) -> Config {
        Config::parse_from([
            "booking-server",
            "--database-url",
            database_url,
            "--bind-addr",
            "127.0.0.1:0",
        ])
    }
}
