//! `/shows/{id}/holds` and `/holds/{id}`: hold, read, confirm, extend, release.

mod keyed;

use crate::fields::{self, Int};
use crate::http::{self, ApiError, Reply};
use crate::idempotency::{Begun, Idempotency, RequestKey, Scope};
use crate::shows::show_id;
use crate::state::AppState;
use booking_core::{
    best, bookings, bookings::ConfirmRequest, holds, AreaCode, AreaWant, BestRequest, Category,
    Feature, HoldId, HoldRequest, HoldTtl, SeatCount, SeatLabel, SeatSelection, Section,
    TicketTypeName, Version,
};
use bytes::Bytes;
use hyper::http::request::Parts;
use hyper::StatusCode;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldBody {
    #[serde(default)]
    seats: Vec<String>,
    #[serde(default)]
    areas: BTreeMap<String, Int>,
    #[serde(default, deserialize_with = "fields::present")]
    ttl_seconds: Option<Int>,
    #[serde(default)]
    if_versions: BTreeMap<String, String>,
    #[serde(default)]
    ticket_types: BTreeMap<String, TypesBody>,
    #[serde(default, deserialize_with = "fields::present")]
    external_ref: Option<String>,
    #[serde(default, deserialize_with = "fields::present")]
    metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A value of a hold's `ticket_types`: the type of a seat, or the types of an area's
/// places, one per place.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum TypesBody {
    Seat(String),
    Places(Vec<String>),
}

/// A body's `ticket_types`, read: `{label: type}` for seats, `{area: [type, ...]}` for
/// places, each malformed key or name `400` on `ticket_types`.
pub(crate) struct TicketTypes {
    /// The type of each seat named.
    pub seats: Vec<(SeatLabel, TicketTypeName)>,
    /// The types of each area's places, one per place.
    pub areas: Vec<(AreaCode, Vec<TicketTypeName>)>,
}

impl TicketTypes {
    /// Reads a body's `ticket_types`: a string value is a seat's type, a list an
    /// area's places' types.
    pub(crate) fn parse(body: BTreeMap<String, TypesBody>) -> Result<TicketTypes, ApiError> {
        let mut types = TicketTypes {
            seats: Vec::new(),
            areas: Vec::new(),
        };
        for (key, value) in body {
            match value {
                TypesBody::Seat(name) => {
                    let label = SeatLabel::parse(&key).map_err(|_| {
                        ApiError::invalid("ticket_types", format!("{key:?} is not a seat label."))
                    })?;
                    types.seats.push((label, TicketTypeName::parse(&name)?));
                }
                TypesBody::Places(names) => {
                    let area = AreaCode::parse_as(&key, "ticket_types")?;
                    let names = names
                        .iter()
                        .map(|n| TicketTypeName::parse(n))
                        .collect::<Result<Vec<_>, _>>()?;
                    types.areas.push((area, names));
                }
            }
        }
        Ok(types)
    }

    /// Gives the places' types to the places asked for (`wants`: an area not among
    /// them is `400`); returns the seats' types.
    pub(crate) fn onto(
        self,
        wants: &mut [AreaWant],
    ) -> Result<Vec<(SeatLabel, TicketTypeName)>, ApiError> {
        for (area, names) in self.areas {
            let want = wants.iter_mut().find(|w| w.area == area).ok_or_else(|| {
                ApiError::invalid(
                    "ticket_types",
                    format!("{:?} is not one of the areas asked for.", area.as_str()),
                )
            })?;
            *want = want.clone().with_ticket_types(names)?;
        }
        Ok(self.seats)
    }
}

/// A body's `areas`, `{code: count}`: the places asked for (`400` on `areas` for a
/// malformed code or a count out of range).
pub(crate) fn area_wants(areas: &BTreeMap<String, Int>) -> Result<Vec<AreaWant>, ApiError> {
    areas
        .iter()
        .map(|(code, count)| {
            let area = AreaCode::parse_as(code, "areas")?;
            Ok(AreaWant::new(area, count.get())?)
        })
        .collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BestBody {
    #[serde(default, deserialize_with = "fields::present")]
    count: Option<Int>,
    #[serde(default, deserialize_with = "fields::present")]
    section: Option<String>,
    #[serde(default)]
    require: Vec<String>,
    #[serde(default)]
    avoid: Vec<String>,
    #[serde(default)]
    ticket_types: Vec<String>,
    #[serde(default, deserialize_with = "fields::present")]
    category: Option<String>,
    #[serde(default, deserialize_with = "fields::present")]
    adjacent: Option<bool>,
    #[serde(default, deserialize_with = "fields::present")]
    ttl_seconds: Option<Int>,
    #[serde(default, deserialize_with = "fields::present")]
    external_ref: Option<String>,
    #[serde(default, deserialize_with = "fields::present")]
    metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TicketsBody {
    ticket_types: BTreeMap<String, TypesBody>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtendBody {
    ttl_seconds: Int,
}

/// Confirm's body may be empty, `{}`, or ask to book an expired hold if its seats are
/// still to be had (`allow_late`).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ConfirmBody {
    #[serde(default, deserialize_with = "fields::present")]
    allow_late: Option<bool>,
    #[serde(default, deserialize_with = "fields::present")]
    external_ref: Option<String>,
    #[serde(default, deserialize_with = "fields::present")]
    metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A hold id from the path; one that cannot exist is simply not found.
pub(crate) fn hold_id(raw: &str) -> Result<HoldId, ApiError> {
    HoldId::parse(raw).map_err(|_| booking_core::Error::HoldNotFound.into())
}

/// `POST /shows/{show_id}/holds`.
pub async fn create(
    state: &AppState,
    parts: &Parts,
    body: Bytes,
    raw_show: &str,
) -> Result<Reply, ApiError> {
    let arrived = std::time::Instant::now();
    let user = state.auth.user(&parts.headers)?;
    crate::rate_limit::admit(state, parts, &user)?;
    let key = RequestKey::read(
        &parts.headers,
        Scope::User(&user),
        &parts.method,
        parts.uri.path(),
        &body,
    )?;
    let show = show_id(raw_show)?;
    let idem = key.for_show(show);
    let b: HoldBody = http::parse_json(&body)?;
    let max = state.engine.settings().max_seats_per_hold;
    let seats = if b.areas.is_empty() {
        SeatSelection::parse(&b.seats, max)?
    } else {
        SeatSelection::parse_or_none(&b.seats, max)?
    };
    let ttl = b
        .ttl_seconds
        .map(|t| HoldTtl::from_secs(t.get()))
        .transpose()?;
    let mut if_versions = Vec::with_capacity(b.if_versions.len());
    for (label, version) in b.if_versions {
        let label = SeatLabel::parse(&label).map_err(|_| {
            ApiError::invalid("if_versions", format!("{label:?} is not a seat label."))
        })?;
        if_versions.push((label, Version::new(version)));
    }
    let mut areas = area_wants(&b.areas)?;
    let ticket_types = TicketTypes::parse(b.ticket_types)?.onto(&mut areas)?;
    let request = HoldRequest {
        show,
        user,
        seats,
        ttl,
        if_versions,
        ticket_types,
        areas,
        reference: fields::reference(b.external_ref, b.metadata)?,
    };

    // Seats the in-memory map shows taken (and current for this request) are refused
    // without the database: a herd on one seat does not queue for connections. With a
    // key, the refusal is stored under it first, with many others in one statement, so
    // that a retry replays it (without batches, keyed requests go to the database).
    // Not with `if_versions` (412 first).
    // A queued show: the buyer's admission before anything is said of seats, and the
    // single-statement path rather than the batcher (see `crate::queue`).
    let queued = crate::queue::gate(state, show, &request.user, idem.is_keyed()).await?;
    let memory = match (idem.batch_key(), &state.holds) {
        (None, _) => Some(None),
        (Some(key), Some(batcher)) => Some(Some((key, batcher))),
        (Some(_), None) => None,
    };
    if let (Some(keyed), true) = (memory, request.if_versions.is_empty() && !queued) {
        if let Some((seats, areas)) = state
            .seat_cache
            .taken(show, &request, &state.feed, &state.feed_pool, arrived)
            .await
        {
            let refusal = booking_core::Error::SeatsUnavailable { seats, areas }.into();
            let Some((key, batcher)) = keyed else {
                return Err(refusal);
            };
            if let Some(reply) = keyed::refuse(batcher, key, refusal).await? {
                return Ok(reply);
            }
        }
    }
    let reply = hold_in_db(state, &idem, &request, queued).await;
    let refused = match &reply {
        Ok(r) => r.status == StatusCode::CONFLICT && r.header("idempotent-replayed").is_none(),
        Err(e) => e.status == StatusCode::CONFLICT,
    };
    if refused {
        state
            .seat_cache
            .prefetch(show, &state.feed, &state.feed_pool);
    }
    let reply = reply?;
    let created = reply.status == StatusCode::CREATED;
    if created && reply.header("idempotent-replayed").is_none() {
        state.metrics.holds.inc();
    }
    Ok(reply)
}

/// Counts a hold (or an add, or an exchange) refused for the show's limit per buyer
/// (stored answers replayed under a key are not counted: they did not run).
pub(crate) fn count_limit_refusal<T>(state: &AppState, outcome: &booking_core::Result<T>) {
    if matches!(outcome, Err(booking_core::Error::UserLimitReached { .. })) {
        state.metrics.user_limit_refusals.inc();
    }
}

async fn hold_in_db(
    state: &AppState,
    idem: &Idempotency,
    request: &HoldRequest,
    queued: bool,
) -> Result<Reply, ApiError> {
    let batcher = state.holds.as_ref().filter(|_| !queued);
    if let (Some(key), Some(batcher)) = (idem.batch_key(), batcher) {
        // With a key: claimed, held and stored in a batch's transaction.
        return keyed::hold(state, batcher, key, request).await;
    }
    let reply = if idem.is_keyed() {
        let mut client = state.client().await?;
        // With a key and no batches, the hold and its stored answer commit together in
        // a transaction of their own.
        let mut tx = match idem.begin(&mut client).await? {
            Begun::Fresh(tx) => tx,
            Begun::Answered(answer) => return Ok(answer),
        };
        let outcome = holds::hold(&mut tx, &state.engine, request).await;
        count_limit_refusal(state, &outcome);
        let event = outcome.as_ref().ok().and_then(|h| h.event.clone());
        let outcome = outcome
            .map(|h| Reply::json(StatusCode::CREATED, &h))
            .map_err(ApiError::from);
        let reply = idem.finish(tx, outcome).await?;
        if reply.status == StatusCode::CREATED {
            // Committed: read your writes (see `seat_cache`).
            state.seat_cache.own_write(event.as_ref());
        }
        reply
    } else {
        // Without one: written with other callers' holds in one statement when nobody
        // else touches the seats (or alone, in one round trip, if batching is off).
        let hold = match batcher {
            Some(batcher) => batcher.hold(request.clone()).await,
            None => {
                let mut client = state.client().await?;
                holds::hold_pooled(&mut client, &state.engine, request).await
            }
        };
        count_limit_refusal(state, &hold);
        let hold = hold?;
        state.seat_cache.own_write(hold.event.as_ref());
        Reply::json(StatusCode::CREATED, &hold)
    };
    Ok(reply)
}

/// `POST /shows/{show_id}/holds/best`: the best group of `count` free seats, held.
/// Validation, errors and idempotency as for `POST /shows/{show_id}/holds`; no group
/// that fits (an unknown category included) is `409 seats_unavailable` with no seats.
pub async fn create_best(
    state: &AppState,
    parts: &Parts,
    body: Bytes,
    raw_show: &str,
) -> Result<Reply, ApiError> {
    let user = state.auth.user(&parts.headers)?;
    crate::rate_limit::admit(state, parts, &user)?;
    let key = RequestKey::read(
        &parts.headers,
        Scope::User(&user),
        &parts.method,
        parts.uri.path(),
        &body,
    )?;
    let show = show_id(raw_show)?;
    let idem = key.for_show(show);
    let b: BestBody = http::parse_json(&body)?;
    let ticket_types = b
        .ticket_types
        .iter()
        .map(|t| TicketTypeName::parse(t))
        .collect::<Result<Vec<_>, _>>()?;
    // `count` may be left out when `ticket_types` names one type per seat.
    let count = match (b.count, ticket_types.len()) {
        (Some(c), _) => c.get(),
        (None, 0) => {
            return Err(ApiError::invalid(
                "count",
                "Invalid count: name how many seats, or one ticket type per seat.",
            ))
        }
        (None, n) => n as i64,
    };
    let features = |names: &[String]| {
        names
            .iter()
            .map(|f| Feature::parse(f))
            .collect::<Result<Vec<_>, _>>()
    };
    let request = BestRequest {
        show,
        user,
        count: SeatCount::parse(count, state.engine.settings().max_seats_per_hold)?,
        category: b.category.as_deref().map(Category::parse).transpose()?,
        adjacent: b.adjacent.unwrap_or(true),
        ttl: b
            .ttl_seconds
            .map(|t| HoldTtl::from_secs(t.get()))
            .transpose()?,
        section: b.section.as_deref().map(Section::parse).transpose()?,
        require: features(&b.require)?,
        avoid: features(&b.avoid)?,
        ticket_types,
        reference: fields::reference(b.external_ref, b.metadata)?,
    };

    crate::queue::gate(state, show, &request.user, idem.is_keyed()).await?;
    let mut client = state.client().await?;
    let mut attempts = None;
    let mut event = None;
    let reply = if idem.is_keyed() {
        // With a key, the hold and its stored answer commit together.
        let mut tx = match idem.begin(&mut client).await? {
            Begun::Fresh(tx) => tx,
            Begun::Answered(answer) => return Ok(answer),
        };
        let outcome = best::hold_best(&mut tx, &state.engine, &request).await;
        count_limit_refusal(state, &outcome);
        let outcome = outcome
            .map(|b| {
                attempts = Some((b.lock_attempts, b.reads));
                event = b.hold.event.clone();
                Reply::json(StatusCode::CREATED, &b.hold)
            })
            .map_err(ApiError::from);
        idem.finish(tx, outcome).await?
    } else {
        let b = best::hold_best(&mut client, &state.engine, &request).await;
        count_limit_refusal(state, &b);
        let b = b?;
        attempts = Some((b.lock_attempts, b.reads));
        event = b.hold.event.clone();
        Reply::json(StatusCode::CREATED, &b.hold)
    };
    if reply.status == StatusCode::CREATED {
        // Committed: read your writes (see `seat_cache`).
        state.seat_cache.own_write(event.as_ref());
        if let Some((locks, reads)) = attempts {
            let m = &state.metrics;
            m.holds.inc();
            m.best_holds.inc();
            m.best_lock_attempts.inc_by(u64::from(locks));
            m.best_reads.inc_by(u64::from(reads));
        }
    }
    Ok(reply)
}

/// `GET /holds/{hold_id}`.
pub async fn get(state: &AppState, parts: &Parts, raw_id: &str) -> Result<Reply, ApiError> {
    let user = state.auth.user(&parts.headers)?;
    let id = hold_id(raw_id)?;
    let client = state.client().await?;
    Ok(Reply::json(
        StatusCode::OK,
        &holds::get_hold(&client, &user, id).await?,
    ))
}

/// `POST /holds/{hold_id}/confirm`: 201 the first time, 200 on every repeat, with the
/// booking as it is now (a repeat after a cancel shows it cancelled).
pub async fn confirm(
    state: &AppState,
    parts: &Parts,
    body: Bytes,
    raw_id: &str,
) -> Result<Reply, ApiError> {
    let user = state.auth.user(&parts.headers)?;
    let key = RequestKey::read(
        &parts.headers,
        Scope::User(&user),
        &parts.method,
        parts.uri.path(),
        &body,
    )?;
    let id = hold_id(raw_id)?;
    let idem = key.for_show(id.show());
    let b: ConfirmBody = if body.iter().all(u8::is_ascii_whitespace) {
        ConfirmBody::default()
    } else {
        http::parse_json(&body)?
    };
    let req = ConfirmRequest {
        late: b.allow_late == Some(true),
        reference: fields::reference(b.external_ref, b.metadata)?,
    };
    let mut client = state.client().await?;
    let mut tx = match idem.begin(&mut client).await? {
        Begun::Fresh(tx) => tx,
        Begun::Answered(answer) => return Ok(answer),
    };
    let outcome = bookings::confirm_with(&mut tx, &state.engine, &user, id, &req).await;
    let created = matches!(outcome, Ok(ref c) if c.created);
    let late = matches!(outcome, Ok(ref c) if c.late);
    let event = outcome.as_ref().ok().and_then(|c| c.event.clone());
    let outcome = outcome
        .map(|c| {
            let status = if c.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Reply::json(status, &c.booking)
        })
        .map_err(ApiError::from);
    let reply = idem.finish(tx, outcome).await?;
    if created && reply.status == StatusCode::CREATED {
        state.seat_cache.own_write(event.as_ref());
        state.metrics.confirms.inc();
        if late {
            state.metrics.late_confirms.inc();
        }
    }
    Ok(reply)
}

/// `POST /holds/{hold_id}/extend`.
pub async fn extend(
    state: &AppState,
    parts: &Parts,
    body: Bytes,
    raw_id: &str,
) -> Result<Reply, ApiError> {
    let user = state.auth.user(&parts.headers)?;
    let key = RequestKey::read(
        &parts.headers,
        Scope::User(&user),
        &parts.method,
        parts.uri.path(),
        &body,
    )?;
    let id = hold_id(raw_id)?;
    let idem = key.for_show(id.show());
    let b: ExtendBody = http::parse_json(&body)?;
    let ttl = HoldTtl::from_secs(b.ttl_seconds.get())?;
    let mut client = state.client().await?;
    let mut tx = match idem.begin(&mut client).await? {
        Begun::Fresh(tx) => tx,
        Begun::Answered(answer) => return Ok(answer),
    };
    let outcome = holds::extend(&mut tx, &state.engine, &user, id, ttl)
        .await
        .map(|h| Reply::json(StatusCode::OK, &h))
        .map_err(ApiError::from);
    idem.finish(tx, outcome).await
}

/// `POST /holds/{hold_id}/tickets`: sell some of the hold's seats and places as other
/// ticket types; `200` with the hold, its new prices and total.
pub async fn retype(
    state: &AppState,
    parts: &Parts,
    body: Bytes,
    raw_id: &str,
) -> Result<Reply, ApiError> {
    let user = state.auth.user(&parts.headers)?;
    let key = RequestKey::read(
        &parts.headers,
        Scope::User(&user),
        &parts.method,
        parts.uri.path(),
        &body,
    )?;
    let id = hold_id(raw_id)?;
    let idem = key.for_show(id.show());
    let b: TicketsBody = http::parse_json(&body)?;
    let TicketTypes { seats, areas } = TicketTypes::parse(b.ticket_types)?;
    let mut client = state.client().await?;
    let mut tx = match idem.begin(&mut client).await? {
        Begun::Fresh(tx) => tx,
        Begun::Answered(answer) => return Ok(answer),
    };
    let outcome = holds::change_tickets(&mut tx, &state.engine, &user, id, &seats, &areas)
        .await
        .map(|h| Reply::json(StatusCode::OK, &h))
        .map_err(ApiError::from);
    let reply = idem.finish(tx, outcome).await?;
    if reply.status == StatusCode::OK {
        state.metrics.ticket_changes.inc();
    }
    Ok(reply)
}

/// `DELETE /holds/{hold_id}`: 204, also when already released or expired.
pub async fn release(state: &AppState, parts: &Parts, raw_id: &str) -> Result<Reply, ApiError> {
    let user = state.auth.user(&parts.headers)?;
    let id = hold_id(raw_id)?;
    let mut client = state.client().await?;
    let released = holds::release(&mut client, &state.engine, &user, id).await?;
    state.seat_cache.own_write(released.event.as_ref());
    state.metrics.releases.inc();
    Ok(Reply::empty(StatusCode::NO_CONTENT))
}
