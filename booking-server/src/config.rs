//! Configuration: environment variables, each also a command-line flag.

use clap::{builder::BoolishValueParser, Parser, ValueEnum};
use std::net::SocketAddr;
use std::time::Duration;

/// The seat-booking JSON API server.
///
/// Every option is an environment variable and a flag; a flag wins over the variable.
/// On a bad value the server refuses to start and says which (exit status 2): clap
/// checks each range, [`Config::validate`] what clap cannot. `--help` lists them all;
/// docs/API.md's configuration section is the contract.
///
/// | field | variable | unit | default | range |
/// |---|---|---|---|---|
/// | [`database_url`](Self::database_url) | `DATABASE_URL` | | required | a libpq connection string |
/// | [`bind_addr`](Self::bind_addr) | `BIND_ADDR` | | `127.0.0.1:8080` | an IP address and port |
/// | [`hold_ttl_seconds`](Self::hold_ttl_seconds) | `HOLD_TTL_SECONDS` | s | 600 | 1 to 3600 |
/// | [`max_hold_seconds`](Self::max_hold_seconds) | `MAX_HOLD_SECONDS` | s | 3600 | 1 to 86400, not below `HOLD_TTL_SECONDS` |
/// | [`max_seats_per_hold`](Self::max_seats_per_hold) | `MAX_SEATS_PER_HOLD` | seats | 10 | 1 to 100 |
/// | [`admin_token`](Self::admin_token) | `ADMIN_TOKEN` | | unset | at least 16 visible ASCII characters |
/// | [`pool_size`](field@Self::pool_size) | `POOL_SIZE` | connections | 4 per CPU | 1 to 1000 |
/// | [`hold_batches`](Self::hold_batches) | `HOLD_BATCHES` | statements | 2 | 0 to 64 |
/// | [`pool_wait_ms`](Self::pool_wait_ms) | `POOL_WAIT_MS` | ms | 2000 | 1 to 600000 |
/// | [`lock_timeout_ms`](Self::lock_timeout_ms) | `LOCK_TIMEOUT_MS` | ms | 2000 | 1 to 600000 |
/// | [`request_timeout_ms`](Self::request_timeout_ms) | `REQUEST_TIMEOUT_MS` | ms | 10000 | 100 to 600000 |
/// | [`demo_show`](Self::demo_show) | `DEMO_SHOW` | | `false` | `true` or `false` |
/// | [`log_format`](Self::log_format) | `LOG_FORMAT` | | `pretty` | `pretty` or `json` |
/// | [`webhook_timeout_ms`](Self::webhook_timeout_ms) | `WEBHOOK_TIMEOUT_MS` | ms | 10000 | 100 to 60000 |
/// | [`webhook_retry_seconds`](Self::webhook_retry_seconds) | `WEBHOOK_RETRY_SECONDS` | s | 86400 | 1 to 604800 |
/// | [`webhook_ca_file`](Self::webhook_ca_file) | `WEBHOOK_CA_FILE` | | unset | a PEM file of certificates |
/// | [`cors_origins`](Self::cors_origins) | `CORS_ORIGINS` | | unset | exact origins, comma-separated |
/// | [`rate_holds_per_user`](Self::rate_holds_per_user) | `RATE_HOLDS_PER_USER` | | unset (off) | `N/s`, `N/min`, `N/h`, N 1 to 1000000 |
/// | [`rate_holds_per_user_burst`](Self::rate_holds_per_user_burst) | `RATE_HOLDS_PER_USER_BURST` | requests | 2 s of the rate | 1 to 1000000 |
/// | [`rate_holds_per_ip`](Self::rate_holds_per_ip) | `RATE_HOLDS_PER_IP` | | unset (off) | as `RATE_HOLDS_PER_USER` |
/// | [`rate_holds_per_ip_burst`](Self::rate_holds_per_ip_burst) | `RATE_HOLDS_PER_IP_BURST` | requests | 2 s of the rate | 1 to 1000000 |
/// | [`rate_max_buckets`](Self::rate_max_buckets) | `RATE_MAX_BUCKETS` | buckets | 100000 | 100 to 10000000 |
/// | [`auth_mode`](Self::auth_mode) | `AUTH_MODE` | | `header` | `header` or `jwt` |
/// | [`jwt_secret`](Self::jwt_secret) | `JWT_SECRET` | | unset | at least 32 bytes (HS256) |
/// | [`jwt_public_key_file`](Self::jwt_public_key_file) | `JWT_PUBLIC_KEY_FILE` | | unset | a PEM public key (RS256, ES256, EdDSA) |
/// | [`jwks_file`](Self::jwks_file) | `JWKS_FILE` | | unset | a JWKS JSON file, re-read when it changes |
/// | [`jwt_issuer`](Self::jwt_issuer) | `JWT_ISSUER` | | unset | the required `iss` |
/// | [`jwt_audience`](Self::jwt_audience) | `JWT_AUDIENCE` | | unset | the required `aud` |
/// | [`jwt_leeway_seconds`](Self::jwt_leeway_seconds) | `JWT_LEEWAY_SECONDS` | s | 30 | 0 to 300 |
/// | [`jwt_admin_claim`](Self::jwt_admin_claim) | `JWT_ADMIN_CLAIM` | | unset | `claim=value` |
///
/// Each flag is the field's name in kebab case (`--pool-wait-ms`).
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

    /// Database connections in the pool (1 to 1000; default: 4 per CPU core).
    #[arg(long, env = "POOL_SIZE", value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub pool_size: Option<u16>,

    /// Holds (keyed or not, and adds of seats to holds without a key) are written in
    /// batches, one statement for many requests: at most this many batches at once (1
    /// to 64; 0 writes each alone).
    #[arg(long, env = "HOLD_BATCHES", default_value_t = 2,
          value_parser = clap::value_parser!(u16).range(0..=64))]
    pub hold_batches: u16,

    /// Longest wait for a free pooled connection (or to open one, at least 500 ms), and
    /// for a batched hold's turn, before answering 503, in ms (1 to 600000).
    #[arg(long, env = "POOL_WAIT_MS", default_value_t = 2000,
          value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub pool_wait_ms: u64,

    /// Longest wait for a seat's row lock before answering 503, in ms (1 to 600000);
    /// also how long best available tries groups that others are taking.
    #[arg(long, env = "LOCK_TIMEOUT_MS", default_value_t = 2000,
          value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub lock_timeout_ms: u64,

    /// Longest time to produce an answer, reading the request body included, before
    /// answering 503, in ms (100 to 600000); an event stream then runs on.
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

    /// Longest wait for a webhook endpoint's answer (connecting included), in ms (100
    /// to 60000); no answer in time is a failed attempt.
    #[arg(long, env = "WEBHOOK_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub webhook_timeout_ms: u64,

    /// How long a webhook delivery is retried from its first attempt, in seconds (1 to
    /// 604800, default 24 h); then it gives up and its endpoint is marked failing.
    #[arg(long, env = "WEBHOOK_RETRY_SECONDS", default_value_t = 86_400,
          value_parser = clap::value_parser!(u64).range(1..=604_800))]
    pub webhook_retry_seconds: u64,

    /// A PEM file of certificates trusted for https webhook endpoints besides the
    /// Mozilla roots (receivers behind a private CA); read at start.
    #[arg(long, env = "WEBHOOK_CA_FILE")]
    pub webhook_ca_file: Option<std::path::PathBuf>,

    // ---- browser-facing safety and limits per caller (issue 19)
    /// Origins whose pages may call the API from a browser (CORS), exact and
    /// comma-separated (`https://tickets.example.com,http://localhost:3000`); unset or
    /// empty: no CORS headers at all.
    #[arg(long, env = "CORS_ORIGINS")]
    pub cors_origins: Option<String>,

    /// Holds, best-available holds and adds to holds a user may send, refilled at this
    /// rate (`20/s`, `600/min`, `1000/h`); unset: no limit per user.
    #[arg(long, env = "RATE_HOLDS_PER_USER", value_parser = crate::rate_limit::Rate::parse)]
    pub rate_holds_per_user: Option<crate::rate_limit::Rate>,

    /// Such requests a user may send at once after idling (1 to 1000000; default: two
    /// seconds of RATE_HOLDS_PER_USER, at least 1).
    #[arg(long, env = "RATE_HOLDS_PER_USER_BURST",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub rate_holds_per_user_burst: Option<u32>,

    /// The same per client address (the TCP peer; IPv6 by its /64); unset: no limit
    /// per address.
    #[arg(long, env = "RATE_HOLDS_PER_IP", value_parser = crate::rate_limit::Rate::parse)]
    pub rate_holds_per_ip: Option<crate::rate_limit::Rate>,

    /// Such requests an address may send at once after idling (1 to 1000000; default:
    /// two seconds of RATE_HOLDS_PER_IP, at least 1).
    #[arg(long, env = "RATE_HOLDS_PER_IP_BURST",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub rate_holds_per_ip_burst: Option<u32>,

    /// Most callers with a bucket in memory, per limit (100 to 10000000); newcomers
    /// past it are let through unlimited (and counted) until idle buckets go.
    #[arg(long, env = "RATE_MAX_BUCKETS", default_value_t = 100_000,
          value_parser = clap::value_parser!(u32).range(100..=10_000_000))]
    pub rate_max_buckets: u32,

    /// Who the caller is: `header` trusts `X-User-Id` as sent (a gateway in front
    /// established it); `jwt` verifies `Authorization: Bearer <JWT>` (see `auth`).
    #[arg(long, env = "AUTH_MODE", value_enum, default_value_t = AuthMode::Header)]
    pub auth_mode: AuthMode,

    /// AUTH_MODE=jwt: the HS256 secret tokens are signed with (at least 32 bytes).
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// AUTH_MODE=jwt: a PEM public key (RSA: RS256, EC P-256: ES256, Ed25519: EdDSA).
    #[arg(long, env = "JWT_PUBLIC_KEY_FILE")]
    pub jwt_public_key_file: Option<std::path::PathBuf>,

    /// AUTH_MODE=jwt: a JWKS file of public keys chosen by `kid`, re-read when it
    /// changes (checked at most once a second).
    #[arg(long, env = "JWKS_FILE")]
    pub jwks_file: Option<std::path::PathBuf>,

    /// AUTH_MODE=jwt: tokens must carry this `iss`.
    #[arg(long, env = "JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// AUTH_MODE=jwt: tokens must carry this `aud` (or an array containing it).
    #[arg(long, env = "JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// AUTH_MODE=jwt: clock skew allowed on `exp` and `nbf`, in seconds (0 to 300).
    #[arg(long, env = "JWT_LEEWAY_SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(0..=300))]
    pub jwt_leeway_seconds: u64,

    /// AUTH_MODE=jwt: `claim=value`; a token whose claim is that string, or an array
    /// holding it, is an admin (`role=admin`).
    #[arg(long, env = "JWT_ADMIN_CLAIM")]
    pub jwt_admin_claim: Option<String>,
}

/// How callers are identified (`AUTH_MODE`, `--auth-mode`; default `header`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthMode {
    /// `X-User-Id` is trusted as sent: for a server behind a gateway that set it.
    Header,
    /// `Authorization: Bearer <JWT>`, verified; `X-User-Id` is ignored.
    Jwt,
}

/// How log lines are written (`LOG_FORMAT`, `--log-format`; default `pretty`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines, for people at a terminal (the default).
    Pretty,
    /// One JSON object a line, for log collectors.
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
        self.webhook_options()?;
        self.cors()?;
        for (burst, rate, name) in [
            (
                self.rate_holds_per_user_burst,
                &self.rate_holds_per_user,
                "RATE_HOLDS_PER_USER",
            ),
            (
                self.rate_holds_per_ip_burst,
                &self.rate_holds_per_ip,
                "RATE_HOLDS_PER_IP",
            ),
        ] {
            if burst.is_some() && rate.is_none() {
                return Err(format!("{name}_BURST is set but {name} is not"));
            }
        }
        crate::auth::Auth::from_config(self)?;
        Ok(())
    }

    /// The limits per caller of `RATE_HOLDS_PER_USER`, `RATE_HOLDS_PER_IP`, their
    /// bursts and `RATE_MAX_BUCKETS`, refilled by `clock`.
    pub fn rate_limits(&self, clock: crate::rate_limit::Clock) -> crate::rate_limit::RateLimits {
        use crate::rate_limit::{Limit, RateLimits};
        let limit = |rate: Option<crate::rate_limit::Rate>, burst: Option<u32>| {
            rate.map(|rate| Limit {
                rate,
                burst: burst.unwrap_or_else(|| rate.default_burst()),
            })
        };
        RateLimits::new(
            limit(self.rate_holds_per_user, self.rate_holds_per_user_burst),
            limit(self.rate_holds_per_ip, self.rate_holds_per_ip_burst),
            self.rate_max_buckets as usize,
            clock,
        )
    }

    /// The origins of `CORS_ORIGINS`, each checked (`scheme://host[:port]`, nothing
    /// more).
    pub fn cors(&self) -> Result<crate::cors::Cors, String> {
        crate::cors::Cors::parse(self.cors_origins.as_deref().unwrap_or(""))
            .map_err(|e| format!("CORS_ORIGINS: {e}"))
    }

    /// Connections of the main pool: `POOL_SIZE`, or when unset 4 per available CPU
    /// (8 when the CPU count cannot be read).
    pub fn pool_size(&self) -> usize {
        match self.pool_size {
            Some(n) => usize::from(n),
            None => 4 * std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }

    /// `REQUEST_TIMEOUT_MS` as a [`Duration`].
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// The engine's [`booking_core::Settings`]: `LOCK_TIMEOUT_MS`, `HOLD_TTL_SECONDS`,
    /// `MAX_HOLD_SECONDS` and `MAX_SEATS_PER_HOLD`.
    ///
    /// # Panics
    ///
    /// When `hold_ttl_seconds` is outside 1 to 3600: clap refuses such values, so only
    /// a `Config` built by hand can.
    pub fn settings(&self) -> booking_core::Settings {
        booking_core::Settings {
            lock_timeout: Duration::from_millis(self.lock_timeout_ms),
            default_ttl: booking_core::HoldTtl::from_secs(i64::from(self.hold_ttl_seconds))
                .expect("clap checked the range"),
            max_hold: Duration::from_secs(self.max_hold_seconds),
            max_seats_per_hold: usize::from(self.max_seats_per_hold),
            // Learned from the database once it is migrated (`AppState::new`).
            distributed: false,
        }
    }

    /// The webhook worker's options: `WEBHOOK_TIMEOUT_MS`, `WEBHOOK_RETRY_SECONDS`,
    /// the roots of `WEBHOOK_CA_FILE` (read now: an error names the file), the rest at
    /// their defaults.
    pub fn webhook_options(&self) -> Result<booking_core::webhooks::worker::WorkerOptions, String> {
        let extra_roots = match &self.webhook_ca_file {
            None => Vec::new(),
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    format!("WEBHOOK_CA_FILE {} cannot be read: {e}", path.display())
                })?;
                booking_core::webhooks::worker::parse_roots(&pem)
                    .map_err(|e| format!("WEBHOOK_CA_FILE {}: {e}", path.display()))?
            }
        };
        Ok(booking_core::webhooks::worker::WorkerOptions {
            timeout: Duration::from_millis(self.webhook_timeout_ms),
            retry_window: Duration::from_secs(self.webhook_retry_seconds),
            extra_roots,
            ..Default::default()
        })
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
