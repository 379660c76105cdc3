//! The one error type of the crate.

use crate::domain::SeatLabel;
use tokio_postgres::error::SqlState;

/// Everything an operation can answer other than success.
///
/// Domain cases are named so that a caller (the HTTP server, say) can map each to one
/// answer; infrastructure failures are kept opaque. Constraint violations and lock
/// time-outs are recognised by SQLSTATE, never by message text.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Some of the wanted seats are held (unexpired) or booked; nothing was held.
    #[error("seats unavailable: {}", labels(.seats))]
    SeatsUnavailable { seats: Vec<SeatLabel> },
    /// The caller's expected version of these seats is not their current one.
    #[error("seat versions moved: {}", labels(.seats))]
    StaleVersion { seats: Vec<SeatLabel> },
    /// The show has no seats with these labels.
    #[error("no such seats: {}", labels(.seats))]
    SeatNotFound { seats: Vec<SeatLabel> },
    #[error("show not found")]
    ShowNotFound,
    #[error("hold not found")]
    HoldNotFound,
    /// The hold passed its `expires_at` before the operation could commit.
    #[error("hold expired")]
    HoldExpired,
    #[error("hold was released")]
    HoldReleased,
    #[error("hold is already confirmed")]
    HoldConfirmed,
    #[error("booking not found")]
    BookingNotFound,
    /// The hold or booking belongs to another user.
    #[error("forbidden: it belongs to another user")]
    Forbidden,
    /// Extending would keep the hold past its maximum lifetime.
    #[error("hold limit reached: a hold lives at most {max_seconds} s from its creation")]
    HoldLimitReached { max_seconds: u64 },
    /// Input that does not parse into a domain value.
    #[error("invalid {field}: {reason}")]
    Invalid { field: String, reason: String },
    /// A row lock or a pooled connection could not be had in time. Retrying later may work.
    #[error("busy: {0}")]
    Busy(&'static str),
    /// The database answered something that breaks an invariant this crate relies on.
    /// It means a bug (or a hand-edited database), never bad input.
    #[error("invariant violated: {0}")]
    Invariant(String),
    /// The connection pool failed for a reason other than a time-out.
    #[error("connection pool: {0}")]
    Pool(String),
    /// Any other database failure (connection lost, server shut down, ...).
    #[error("database: {0}")]
    Database(tokio_postgres::Error),
    #[error("migration: {0}")]
    Migration(#[from] refinery::Error),
}

/// The reason of [`Error::Busy`] when a row lock was not had within the lock timeout.
pub const LOCK_WAIT: &str = "row lock wait timed out";

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn labels(seats: &[SeatLabel]) -> String {
    seats
        .iter()
        .map(SeatLabel::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Error {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// True for failures that say nothing about the request and may pass on retry:
    /// time-outs, lost connections, a database shutting down or failing over.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Busy(_) | Error::Pool(_) | Error::Database(_))
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.code() {
            // lock_timeout expired while waiting on a row lock.
            Some(c) if *c == SqlState::LOCK_NOT_AVAILABLE => Error::Busy(LOCK_WAIT),
            // statement_timeout (or a cancel request) ended the statement.
            Some(c) if *c == SqlState::QUERY_CANCELED => Error::Busy("statement timed out"),
            _ => Error::Database(e),
        }
    }
}

impl From<deadpool_postgres::PoolError> for Error {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        use deadpool_postgres::PoolError;
        match e {
            PoolError::Timeout(_) => Error::Busy("no database connection free in time"),
            PoolError::Backend(e) => e.into(),
            other => Error::Pool(other.to_string()),
        }
    }
}
