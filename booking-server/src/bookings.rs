//! `/bookings/{id}` and `/users/me/bookings`: read, cancel, list.

use crate::http::{self, ApiError, Reply};
use crate::idempotency::{Begun, Idempotency, Scope};
use crate::state::AppState;
use booking_core::{bookings, Actor, BookingId, BookingStatus};
use bytes::Bytes;
use hyper::http::request::Parts;
use hyper::StatusCode;
use serde::{Deserialize, Serialize};

fn booking_id(raw: &str) -> Result<BookingId, ApiError> {
    BookingId::parse(raw).map_err(|_| booking_core::Error::BookingNotFound.into())
}

/// The owner (by `X-User-Id`) or an admin (by bearer token).
fn actor(state: &AppState, parts: &Parts) -> Result<Actor, ApiError> {
    if http::admin(&parts.headers, state.admin_token.as_deref())? {
        Ok(Actor::Admin)
    } else {
        Ok(Actor::User(http::user(&parts.headers)?))
    }
}

/// `GET /bookings/{booking_id}`.
pub async fn get(state: &AppState, parts: &Parts, raw_id: &str) -> Result<Reply, ApiError> {
    let user = http::user(&parts.headers)?;
    let id = booking_id(raw_id)?;
    let client = state.client().await?;
    let booking = bookings::get_booking(&client, &Actor::User(user), id).await?;
    Ok(Reply::json(StatusCode::OK, &booking))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelBody {}

/// `POST /bookings/{booking_id}/cancel` (owner or admin).
pub async fn cancel(
    state: &AppState,
    parts: &Parts,
    body: Bytes,
    raw_id: &str,
) -> Result<Reply, ApiError> {
    let actor = actor(state, parts)?;
    let scope = match &actor {
        Actor::User(u) => Scope::User(u),
        Actor::Admin => Scope::Admin,
    };
    let idem = Idempotency::from_request(
        &parts.headers,
        scope,
        &parts.method,
        parts.uri.path(),
        &body,
    )?;
    let id = booking_id(raw_id)?;
    if !body.iter().all(u8::is_ascii_whitespace) {
        http::parse_json::<CancelBody>(&body)?;
    }
    let mut client = state.client().await?;
    let mut tx = match idem.begin(&mut client).await? {
        Begun::Fresh(tx) => tx,
        Begun::Answered(answer) => return Ok(answer),
    };
    let outcome = bookings::cancel(&mut tx, &state.engine, &actor, id).await;
    let cancelled = matches!(outcome, Ok(ref b) if b.status == BookingStatus::Cancelled);
    let reply = idem
        .finish(
            tx,
            outcome
                .map(|b| Reply::json(StatusCode::OK, &b))
                .map_err(ApiError::from),
        )
        .await?;
    if cancelled && reply.status == StatusCode::OK {
        state.seat_cache.invalidate(id.show());
        state.metrics.cancels.inc();
    }
    Ok(reply)
}

#[derive(Serialize)]
struct BookingList {
    bookings: Vec<booking_core::Booking>,
}

/// `GET /users/me/bookings`: the caller's bookings, newest first.
pub async fn mine(state: &AppState, parts: &Parts) -> Result<Reply, ApiError> {
    let user = http::user(&parts.headers)?;
    let client = state.client().await?;
    let bookings = bookings::list_for_user(&client, &user).await?;
    Ok(Reply::json(StatusCode::OK, &BookingList { bookings }))
}
