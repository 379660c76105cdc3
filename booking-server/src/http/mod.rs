//! HTTP plumbing, one concern a file:
//!
//! - [`reply`]: what an endpoint answers ([`Reply`], [`Answer`]) and every non-2xx
//!   answer ([`ApiError`]).
//! - [`error_map`]: the one mapping from `booking_core::Error` to status and code.
//! - [`request`]: what is read from a request before any work: the body (bounded) and
//!   its JSON, the caller, the admin token, the `Idempotency-Key`.
//!
//! Their items are re-exported here: handlers write `http::user`, `http::Reply`.

pub mod error_map;
pub mod reply;
pub mod request;

pub use reply::{Answer, ApiError, Body, Reply, JSON};
pub use request::{
    actor, admin, idempotency_key, parse_json, read_body, require_admin, user, user_for_log,
    BODY_LIMIT, IDEMPOTENCY_KEY,
};
