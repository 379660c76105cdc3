//! `/holds/{id}/add` and `/holds/{id}/remove`: a live hold as a cart, seats and places
//! put in and taken out, the same id and deadline.

use crate::fields::Int;
use crate::holds::{area_wants, count_limit_refusal, hold_id, TicketTypes, TypesBody};
use crate::http::{self, ApiError, Reply};
use crate::idempotency::{Begun, RequestKey, Scope};
use crate::state::AppState;
use booking_core::{holds, HoldAddition, SeatSelection};
use bytes::Bytes;
use hyper::http::request::Parts;
use hyper::StatusCode;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBody {
    #[serde(default)]
    seats: Vec<String>,
    #[serde(default)]
    areas: BTreeMap<String, Int>,
    #[serde(default)]
    ticket_types: BTreeMap<String, TypesBody>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoveBody {
    #[serde(default)]
    seats: Vec<String>,
    #[serde(default)]
    areas: BTreeMap<String, Int>,
}

/// `seats` of a body that may also name places: none is `400` on `seats` only when it
/// names no place either (as for a new hold).
fn seats_named(
    state: &AppState,
    labels: &[String],
    areas: &BTreeMap<String, Int>,
) -> Result<SeatSelection, ApiError> {
    let max = state.engine.settings().max_seats_per_hold;
    Ok(if areas.is_empty() {
        SeatSelection::parse(labels, max)?
    } else {
        SeatSelection::parse_or_none(labels, max)?
    })
}

/// `POST /holds/{hold_id}/add` (owner or admin): `200` with the hold and the seats and
/// places added, all or none.
pub async fn add(
    state: &AppState,
    parts: &Parts,
    body: Bytes,
    raw_id: &str,
) -> Result<Reply, ApiError> {
    let actor = state.auth.actor(&parts.headers)?;
    // The admin (whose token is a secret of the operator's) is not limited.
    if let booking_core::Actor::User(user) = &actor {
        crate::rate_limit::admit(state, parts, user)?;
    }
    let key = RequestKey::read(
        &parts.headers,
        Scope::of(&actor),
        &parts.method,
        parts.uri.path(),
        &body,
    )?;
    let id = hold_id(raw_id)?;
    let idem = key.for_show(id.show());
    let b: AddBody = http::parse_json(&body)?;
    let seats = seats_named(state, &b.seats, &b.areas)?;
    let mut areas = area_wants(&b.areas)?;
    let ticket_types = TicketTypes::parse(b.ticket_types)?.onto(&mut areas)?;
    let addition = HoldAddition {
        seats,
        areas,
        ticket_types,
    };
    // A queued show: the buyer's admission before anything else, and the
    // single-statement path rather than the batcher (see `crate::queue`). An admin is
    // not queued (the allowance still counts the hold's owner, in the add).
    let queued = match &actor {
        booking_core::Actor::User(u) => {
            crate::queue::gate(state, id.show(), u, idem.is_keyed()).await?
        }
        booking_core::Actor::Admin => false,
    };
    let batcher = state.holds.as_ref().filter(|_| !queued);
    let (reply, event) = if idem.is_keyed() {
        let mut client = state.client().await?;
        let mut tx = match idem.begin(&mut client).await? {
            Begun::Fresh(tx) => tx,
            Begun::Answered(answer) => return Ok(answer),
        };
        let outcome = holds::add(&mut tx, &state.engine, &actor, id, &addition).await;
        count_limit_refusal(state, &outcome);
        let event = outcome.as_ref().ok().and_then(|h| h.event.clone());
        let outcome = outcome
            .map(|h| Reply::json(StatusCode::OK, &h))
            .map_err(ApiError::from);
        (idem.finish(tx, outcome).await?, event)
    } else {
        // Without a key nothing else goes in the transaction: one statement, in the
        // common case, for many callers' adds (`holds::batch`), or for this one alone
        // when batching is off (`holds::add_pooled`).
        let outcome = match batcher {
            Some(batcher) => batcher.add(actor, id, addition).await,
            None => {
                let mut client = state.client().await?;
                holds::add_pooled(&mut client, &state.engine, &actor, id, &addition).await
            }
        };
        count_limit_refusal(state, &outcome);
        let hold = outcome?;
        (Reply::json(StatusCode::OK, &hold), hold.event)
    };
    if reply.status == StatusCode::OK {
        // Committed: read your writes (see `seat_cache`).
        state.seat_cache.own_write(event.as_ref());
        state.metrics.hold_adds.inc();
    }
    Ok(reply)
}

/// `POST /holds/{hold_id}/remove` (owner or admin): `200` with the smaller hold, or
/// the released one when nothing is left.
pub async fn remove(
    state: &AppState,
    parts: &Parts,
    body: Bytes,
    raw_id: &str,
) -> Result<Reply, ApiError> {
    let actor = state.auth.actor(&parts.headers)?;
    let key = RequestKey::read(
        &parts.headers,
        Scope::of(&actor),
        &parts.method,
        parts.uri.path(),
        &body,
    )?;
    let id = hold_id(raw_id)?;
    let idem = key.for_show(id.show());
    let b: RemoveBody = http::parse_json(&body)?;
    let seats = seats_named(state, &b.seats, &b.areas)?;
    let areas = area_wants(&b.areas)?;
    let mut client = state.client().await?;
    let mut tx = match idem.begin(&mut client).await? {
        Begun::Fresh(tx) => tx,
        Begun::Answered(answer) => return Ok(answer),
    };
    let outcome = holds::remove(&mut tx, &state.engine, &actor, id, &seats, &areas).await;
    let event = outcome.as_ref().ok().and_then(|h| h.event.clone());
    let outcome = outcome
        .map(|h| Reply::json(StatusCode::OK, &h))
        .map_err(ApiError::from);
    let reply = idem.finish(tx, outcome).await?;
    if reply.status == StatusCode::OK {
        state.seat_cache.own_write(event.as_ref());
        state.metrics.hold_removes.inc();
    }
    Ok(reply)
}
