//! The one error type of the crate.

use crate::domain::{AreaCode, SeatLabel, TicketTypeName};
use tokio_postgres::error::SqlState;

/// Everything an operation can answer other than success.
///
/// Domain cases are named so that a caller (the HTTP server, say) can map each to one
/// answer; infrastructure failures are kept opaque. Constraint violations and lock
/// time-outs are recognised by SQLSTATE, never by message text.
///
/// Each variant's doc names the answer `booking-server` gives it (status and `error`
/// code, as in `docs/API.md`'s error table). A domain error means the operation
/// changed nothing: its transaction (or savepoint) was rolled back.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Some of the wanted seats are held (unexpired), booked or blocked, or some
    /// standing area has fewer places left than asked for; nothing was held.
    /// `409 seats_unavailable` (with `areas` when some are short).
    #[error("seats unavailable: {}{}", labels(.seats), codes(.areas))]
    SeatsUnavailable {
        /// The wanted seats that are taken, in the order they were asked for. Empty
        /// from best available (no group of free seats fits the request), or when only
        /// places are short.
        seats: Vec<SeatLabel>,
        /// The wanted standing areas with too few places left, in the order asked.
        areas: Vec<AreaCode>,
    },
    /// The show has no standing areas with these codes. `404 area_not_found`.
    #[error("no such areas:{}", codes(.areas))]
    AreaNotFound {
        /// The codes asked for that the show does not have.
        areas: Vec<AreaCode>,
    },
    /// The caller's expected version of these seats is not their current one; nothing
    /// was held. `412 stale_version`.
    #[error("seat versions moved: {}", labels(.seats))]
    StaleVersion {
        /// The seats named in `if_versions` whose version moved.
        seats: Vec<SeatLabel>,
    },
    /// The show has no seats with these labels. `404 seat_not_found`.
    #[error("no such seats: {}", labels(.seats))]
    SeatNotFound {
        /// The labels asked for that the show does not have.
        seats: Vec<SeatLabel>,
    },
    /// No show has this id. `404 show_not_found`.
    #[error("show not found")]
    ShowNotFound,
    /// No hold has this id. `404 hold_not_found`.
    #[error("hold not found")]
    HoldNotFound,
    /// The hold passed its `expires_at` before the operation could commit (or a seat
    /// of the lapsed hold was already taken by another hold). `410 hold_expired`.
    #[error("hold expired")]
    HoldExpired,
    /// A late confirm ([`crate::bookings::confirm_late`]) of an expired hold found some
    /// of its seats (or places, by number) taken by someone else meanwhile; nothing was
    /// booked. `410 hold_expired` with `seats`.
    #[error("hold expired and seats taken since: {}", labels(.seats))]
    HoldExpiredTaken {
        /// The hold's seats and places now held, booked or blocked by others.
        seats: Vec<SeatLabel>,
    },
    /// The hold does not have these seats, or places of these areas; nothing changed.
    /// `409 not_in_hold` with `seats` and `areas`.
    #[error("not in the hold: {}{}", labels(.seats), codes(.areas))]
    NotInHold {
        /// The seats named that the hold does not have.
        seats: Vec<SeatLabel>,
        /// The areas named in which the hold has no places.
        areas: Vec<AreaCode>,
    },
    /// The booking does not have these seats (never had, or they were exchanged away),
    /// or not that many places of these areas; nothing changed. `409 not_in_booking`
    /// with `seats` and `areas`.
    #[error("not in the booking: {}{}", labels(.seats), codes(.areas))]
    NotInBooking {
        /// The seats named that the booking does not have.
        seats: Vec<SeatLabel>,
        /// The areas named in which the booking has fewer live places than asked.
        areas: Vec<AreaCode>,
    },
    /// The booking is cancelled: nothing in it can be exchanged. `409 booking_cancelled`.
    #[error("booking is cancelled")]
    BookingCancelled,
    /// A follower asked to resume the feed from before what is kept of it: events it
    /// needs may be gone. Read the seat map again and follow from its `position`.
    /// `410 position_expired`.
    #[error("feed position older than the retained feed")]
    PositionExpired,
    /// Another booking of the show has this `external_ref` (cancelled ones keep
    /// theirs); nothing was booked. `409 external_ref_taken`.
    #[error("another booking of the show has this external_ref")]
    ExternalRefTaken,
    /// The hold was released by its owner; hold the seats again. `409 hold_released`.
    #[error("hold was released")]
    HoldReleased,
    /// The hold is already confirmed into a booking, so it can no longer be extended
    /// or released (confirming it again is not an error). `409 hold_confirmed`.
    #[error("hold is already confirmed")]
    HoldConfirmed,
    /// A ticket type named for these seats (or places of these areas) is not sold for
    /// their categories; nothing was held. `409 ticket_type_unavailable`.
    #[error("ticket types unavailable: {}", tickets.iter().map(|(s, t)| format!("{s} as {t}")).chain(areas.iter().map(|(a, t)| format!("{a} as {t}"))).collect::<Vec<_>>().join(", "))]
    TicketTypeUnavailable {
        /// Each refused seat with the type asked for it, in the order asked.
        tickets: Vec<(SeatLabel, TicketTypeName)>,
        /// Each refused area with a type asked for its places, in the order asked.
        areas: Vec<(AreaCode, TicketTypeName)>,
    },
    /// The user would pass the show's `max_seats_per_user` with these seats; nothing
    /// was held. `409 user_limit_reached`.
    #[error("user limit reached: {current} of {limit} seats already")]
    UserLimitReached {
        /// The show's limit of seats per user.
        limit: u32,
        /// Seats the user has in active holds and live bookings of the show now.
        current: u32,
    },
    /// The show has no waiting room: nobody joins its queue. `409 queue_not_enabled`.
    #[error("the show has no queue")]
    QueueNotEnabled,
    /// The user never joined the show's queue. `404 not_in_queue`.
    #[error("not in the queue")]
    NotInQueue,
    /// The show is queued and the user is not admitted (never joined, or still
    /// waiting); nothing was taken. `403 not_admitted`.
    #[error("not admitted from the queue")]
    NotAdmitted,
    /// The user's admission from the show's queue has ended; nothing was taken.
    /// `409 admission_expired`.
    #[error("admission expired")]
    AdmissionExpired,
    /// The admitted user would pass the queue's `max_seats` with these seats; nothing
    /// was taken. `409 queue_max_seats`, with `limit` and `current`.
    #[error("queue allowance reached: {current} of {max_seats} seats already")]
    QueueMaxSeats {
        /// The queue's allowance of live seats per admitted buyer.
        max_seats: u32,
        /// Seats the user has in active holds and live bookings of the show now.
        current: u32,
    },
    /// The show is not on sale now (database clock): before its `sales_start` or at
    /// or after its `sales_end`; nothing was taken. `409 not_on_sale`, with the window.
    #[error("not on sale: the window is {sales_start:?} to {sales_end:?}")]
    NotOnSale {
        /// When sales open; `None`: open from the show's creation.
        sales_start: Option<chrono::DateTime<chrono::Utc>>,
        /// When sales close; `None`: they do not close.
        sales_end: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// The show was cancelled ([`crate::shows::cancel`]): it refuses every hold, add,
    /// block and change for ever. `409 show_cancelled`.
    #[error("show cancelled")]
    ShowCancelled,
    /// No venue has this id. `404 venue_not_found`.
    #[error("venue not found")]
    VenueNotFound,
    /// The show has no block of this id. `404 block_not_found`.
    #[error("block not found")]
    BlockNotFound,
    /// No booking has this id. `404 booking_not_found`.
    #[error("booking not found")]
    BookingNotFound,
    /// No webhook endpoint has this id. `404 webhook_not_found`.
    #[error("webhook not found")]
    WebhookNotFound,
    /// The hold or booking belongs to another user. `403 forbidden`.
    #[error("forbidden: it belongs to another user")]
    Forbidden,
    /// Extending would keep the hold past its maximum lifetime. `409 hold_limit_reached`.
    #[error("hold limit reached: a hold lives at most {max_seconds} s from its creation")]
    HoldLimitReached {
        /// The maximum lifetime of a hold from its creation, in seconds
        /// ([`Settings::max_hold`](crate::Settings::max_hold)).
        max_seconds: u64,
    },
    /// Input that does not parse into a domain value. `400 invalid_request`, with
    /// `field`.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The input that is wrong (`seats`, `ttl_seconds`, `rows.seats`, ...); the
        /// server sends it as the answer's `field`.
        field: String,
        /// What is wrong with it, one phrase a person can act on (no trailing period).
        reason: String,
    },
    /// Something could not be had in time: a row lock ([`LOCK_WAIT`]), a pooled
    /// connection, the end of a statement; or best available found every free group
    /// being taken by others ([`crate::best::CONTENDED`]); or a hold batcher was
    /// stopping. The field says which, for logs. Retrying later may work.
    /// `503 unavailable` with `Retry-After`.
    #[error("busy: {0}")]
    Busy(&'static str),
    /// The database answered something that breaks an invariant this crate relies on.
    /// It means a bug (or a hand-edited database), never bad input. `500 internal`.
    #[error("invariant violated: {0}")]
    Invariant(String),
    /// The connection pool failed for a reason other than a time-out (it was closed,
    /// say). `503 unavailable`.
    #[error("connection pool: {0}")]
    Pool(String),
    /// Any other database failure (connection lost, server shut down, a constraint
    /// violated, ...). `503 unavailable` when the server counts it transient
    /// (connection trouble, shutdown, failover, resource limits), else `500 internal`.
    #[error("database: {}", describe(.0))]
    Database(tokio_postgres::Error),
    /// Applying the embedded migrations failed ([`crate::database::migrate`]), at
    /// start-up; no request answers it (it would be a `500 internal`).
    #[error("migration: {0}")]
    Migration(#[from] refinery::Error),
}

/// The reason of [`Error::Busy`] when a row lock was not had within the lock timeout
/// (SQLSTATE `55P03`, `lock_not_available`).
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

fn codes(areas: &[AreaCode]) -> String {
    areas.iter().map(|a| format!(" area {a}")).collect()
}

/// A database error as the logs need it: tokio-postgres's own `Display` says only
/// "db error", so the server's report of a `500` named nothing. This gives the
/// SQLSTATE, the message and where the server raised it (Citus's errors are told
/// apart by their source file), or the cause of a lost connection.
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!(
            "{} {}: {} ({}:{})",
            d.severity(),
            d.code().code(),
            d.message(),
            d.file().unwrap_or("?"),
            d.line().unwrap_or(0)
        ),
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
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
    ///
    /// That is every [`Error::Busy`], [`Error::Pool`] and [`Error::Database`]: the
    /// last also covers failures that a retry will not cure (a constraint violated,
    /// say); look at its SQLSTATE to tell them apart, as the server does.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Busy(_) | Error::Pool(_) | Error::Database(_))
    }

    /// True for SQLSTATE `25P02` (`in_failed_sql_transaction`): the statement never
    /// ran, because one before it in the same transaction had failed. Where statements
    /// are pipelined, that earlier failure is the one to report.
    pub(crate) fn follows_a_failure(&self) -> bool {
        matches!(self, Error::Database(e)
            if e.code() == Some(&SqlState::IN_FAILED_SQL_TRANSACTION))
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.code() {
            // lock_timeout expired while waiting on a row lock.
            Some(c) if *c == SqlState::LOCK_NOT_AVAILABLE => Error::Busy(LOCK_WAIT),
            // statement_timeout (or a cancel request) ended the statement.
            Some(c) if *c == SqlState::QUERY_CANCELED => Error::Busy("statement timed out"),
            // Two confirms with one reference raced past the look-up before the insert:
            // the unique index decides, and the loser is told as the look-up would.
            Some(c)
                if *c == SqlState::UNIQUE_VIOLATION
                    && e.as_db_error().and_then(|d| d.constraint())
                        == Some("bookings_external_ref") =>
            {
                Error::ExternalRefTaken
            }
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
