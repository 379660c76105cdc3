//! HTTP plumbing, one concern a file:
//!
//! - [`reply`]: what an endpoint answers ([`Reply`], [`Answer`]) and every non-2xx
//!   answer ([`ApiError`]).
//! - [`error_map`]: the one mapping from `booking_core::Error` to status and code.
//! - [`request`]: what is read from a request before any work: the body (bounded) and
//!   its JSON, header mode's caller and admin token, the `Idempotency-Key`.
//!
//! Their items are re-exported here: handlers write `http::Reply`, `http::parse_json`
//! (and ask `state.auth` for the caller: see `crate::auth`).

pub mod error_map;
pub mod reply;
pub mod request;

pub use reply::{Answer, ApiError, Body, Reply, JSON};
pub use request::{
    header_actor, header_admin, header_require_admin, header_user, idempotency_key, parse_json,
    read_body, user_for_log, BODY_LIMIT, IDEMPOTENCY_KEY,
};
