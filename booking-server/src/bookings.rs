//! `/bookings/{id}`: read, cancel (whole or in part), exchange seats (the caller's
//! bookings, `/users/me/bookings`, are listed in pages by [`crate::queries`]).

use crate::fields::{self, Int};
use crate::holds::{area_wants, count_limit_refusal, TicketTypes, TypesBody};
use crate::http::{self, ApiError, Reply};
use crate::idempotency::{Begun, RequestKey, Scope};
use crate::state::AppState;
use booking_core::tickets::Ticket;
use booking_core::{
    bookings, Actor, Booking, BookingId, BookingStatus, CancelPart, Exchange, SeatSelection,
};
use bytes::Bytes;
use hyper::http::request::Parts;
use hyper::StatusCode;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

fn booking_id(raw: &str) -> Result<BookingId, ApiError> {
    BookingId::parse(raw).map_err(|_| booking_core::Error::BookingNotFound.into())
}

/// `GET /bookings/{booking_id}`.
pub async fn get(state: &AppState, parts: &Parts, raw_id: &str) -> Result<Reply, ApiError> {
    let user = state.auth.user(&parts.headers)?;
    let id = booking_id(raw_id)?;
    let client = state.client().await?;
    let booking = bookings::get_booking(&client, &Actor::User(user), id).await?;
    Ok(Reply::json(StatusCode::OK, &booking))
}

/// Cancel's body: empty or `{}` cancels all the booking has left; `seats` and `areas`
/// cancel only those.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CancelBody {
    #[serde(default, deserialize_with = "fields::present")]
    seats: Option<Vec<String>>,
    #[serde(default, deserialize_with = "fields::present")]
    areas: Option<BTreeMap<String, Int>>,
}

impl CancelBody {
    /// What to cancel: `None` for everything left.
    fn part(self, max: usize) -> Result<Option<CancelPart>, ApiError> {
        if self.seats.is_none() && self.areas.is_none() {
            return Ok(None);
        }
        let labels = self.seats.unwrap_or_default();
        let areas = area_wants(&self.areas.unwrap_or_default())?;
        // Nothing named at all is `400` on `seats`, as for a hold.
        let seats = if areas.is_empty() {
            SeatSelection::parse(&labels, max)?
        } else {
            SeatSelection::parse_or_none(&labels, max)?
        };
        Ok(Some(CancelPart { seats, areas }))
    }
}

/// A cancel's answer: the booking as it is now, and the tickets this call cancelled.
#[derive(Serialize)]
struct Cancelled<'a> {
    #[serde(flatten)]
    booking: &'a Booking,
    cancelled: &'a [Ticket],
}

/// `POST /bookings/{booking_id}/cancel` (owner or admin): all the booking has left, or
/// the seats and places the body names.
pub async fn cancel(
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
    let id = booking_id(raw_id)?;
    let idem = key.for_show(id.show());
    let b: CancelBody = if body.iter().all(u8::is_ascii_whitespace) {
        CancelBody::default()
    } else {
        http::parse_json(&body)?
    };
    let part = b.part(state.engine.settings().max_seats_per_hold)?;
    let mut client = state.client().await?;
    let mut tx = match idem.begin(&mut client).await? {
        Begun::Fresh(tx) => tx,
        Begun::Answered(answer) => return Ok(answer),
    };
    let outcome = bookings::cancel_part(&mut tx, &state.engine, &actor, id, part.as_ref()).await;
    let event = outcome.as_ref().ok().and_then(|c| c.event.clone());
    let now_cancelled =
        matches!(outcome, Ok(ref c) if c.booking.status == BookingStatus::Cancelled);
    let outcome = outcome
        .map(|c| {
            let answer = Cancelled {
                booking: &c.booking,
                cancelled: &c.cancelled,
            };
            Reply::json(StatusCode::OK, &answer)
        })
        .map_err(ApiError::from);
    let reply = idem.finish(tx, outcome).await?;
    if reply.status == StatusCode::OK {
        state.seat_cache.own_write(event.as_ref());
        if part.is_some() {
            state.metrics.partial_cancels.inc();
        } else if now_cancelled {
            state.metrics.cancels.inc();
        }
    }
    Ok(reply)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExchangeBody {
    release: Vec<String>,
    take: Vec<String>,
    #[serde(default)]
    ticket_types: BTreeMap<String, TypesBody>,
}

/// An exchange's answer: the booking with its new seats and total, and the change of
/// the total.
#[derive(Serialize)]
struct ExchangedBody<'a> {
    #[serde(flatten)]
    booking: &'a Booking,
    difference: i64,
}

/// `labels` as a selection of 1 to `max` seats, a refusal naming `field`.
fn seats_of(labels: &[String], max: usize, field: &str) -> Result<SeatSelection, ApiError> {
    SeatSelection::parse(labels, max).map_err(|e| match e {
        booking_core::Error::Invalid { reason, .. } => {
            ApiError::invalid(field, format!("Invalid {field}: {reason}."))
        }
        other => other.into(),
    })
}

/// `POST /bookings/{booking_id}/exchange` (owner or admin): seats of the booking given
/// back for others taken, in one transaction.
pub async fn exchange(
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
    let id = booking_id(raw_id)?;
    let idem = key.for_show(id.show());
    let b: ExchangeBody = http::parse_json(&body)?;
    let max = state.engine.settings().max_seats_per_hold;
    let release = seats_of(&b.release, max, "release")?;
    let take = seats_of(&b.take, max, "take")?;
    let types = TicketTypes::parse(b.ticket_types)?;
    if let Some((area, _)) = types.areas.first() {
        return Err(ApiError::invalid(
            "ticket_types",
            format!(
                "{:?} is an area: an exchange takes seats only, one type each.",
                area.as_str()
            ),
        ));
    }
    let ex = Exchange {
        release,
        take,
        ticket_types: types.seats,
    };
    let mut client = state.client().await?;
    let mut tx = match idem.begin(&mut client).await? {
        Begun::Fresh(tx) => tx,
        Begun::Answered(answer) => return Ok(answer),
    };
    let outcome = bookings::exchange(&mut tx, &state.engine, &actor, id, &ex).await;
    count_limit_refusal(state, &outcome);
    let event = outcome.as_ref().ok().and_then(|e| e.event.clone());
    let outcome = outcome
        .map(|e| {
            let answer = ExchangedBody {
                booking: &e.booking,
                difference: e.difference,
            };
            Reply::json(StatusCode::OK, &answer)
        })
        .map_err(ApiError::from);
    let reply = idem.finish(tx, outcome).await?;
    if reply.status == StatusCode::OK {
        state.seat_cache.own_write(event.as_ref());
        state.metrics.exchanges.inc();
    }
    Ok(reply)
}
