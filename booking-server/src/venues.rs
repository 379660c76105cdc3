//! `/venues`: saved layouts (admin to create and edit; anyone may read them).

use crate::http::{self, ApiError, Reply};
use crate::idempotency::{Begun, RequestKey, Scope};
use crate::shows::{parse_layout, refuse_array_rows, AreaBody, RowBody};
use crate::state::AppState;
use booking_core::{venues, NewVenue, VenueId};
use bytes::Bytes;
use hyper::http::request::Parts;
use hyper::StatusCode;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VenueBody {
    name: String,
    #[serde(default)]
    rows: Vec<RowBody>,
    #[serde(default)]
    areas: Vec<AreaBody>,
}

fn parse_venue(body: &[u8]) -> Result<NewVenue, ApiError> {
    let b: VenueBody = http::parse_json(body)?;
    refuse_array_rows(body)?;
    Ok(NewVenue::new(&b.name, parse_layout(&b.rows, &b.areas)?)?)
}

/// A venue id from the path; one that cannot exist is simply not found.
fn venue_id(raw: &str) -> Result<VenueId, ApiError> {
    VenueId::parse(raw).map_err(|_| booking_core::Error::VenueNotFound.into())
}

/// `POST /venues` (admin).
pub async fn create(state: &AppState, parts: &Parts, body: Bytes) -> Result<Reply, ApiError> {
    state.auth.require_admin(&parts.headers)?;
    let idem = RequestKey::read(
        &parts.headers,
        Scope::Admin,
        &parts.method,
        parts.uri.path(),
        &body,
    )?
    .without_show();
    let new = parse_venue(&body)?;
    let mut client = state.client().await?;
    let tx = match idem.begin(&mut client).await? {
        Begun::Fresh(tx) => tx,
        Begun::Answered(answer) => return Ok(answer),
    };
    let outcome = venues::create_venue(&tx, &new)
        .await
        .map(|v| Reply::json(StatusCode::CREATED, &v))
        .map_err(ApiError::from);
    idem.finish(tx, outcome).await
}

/// `PUT /venues/{venue_id}` (admin): replaces the name and rows. Shows made from the
/// venue before keep their seats. Repeating it is harmless (it takes no key).
pub async fn update(
    state: &AppState,
    parts: &Parts,
    body: Bytes,
    raw_id: &str,
) -> Result<Reply, ApiError> {
    state.auth.require_admin(&parts.headers)?;
    let id = venue_id(raw_id)?;
    let new = parse_venue(&body)?;
    let client = state.client().await?;
    let venue = venues::update_venue(&client, id, &new).await?;
    Ok(Reply::json(StatusCode::OK, &venue))
}

/// `GET /venues?limit=&cursor=`: oldest first, in pages.
pub async fn list(state: &AppState, parts: &Parts) -> Result<Reply, ApiError> {
    let mut qs = crate::queries::QueryString::of(parts)?;
    let (limit, cursor) = qs.page()?;
    qs.finish()?;
    let client = state.client().await?;
    let page = venues::venues_page(&client, limit, cursor).await?;
    Ok(crate::queries::page_reply("venues", &page))
}

/// `GET /venues/{venue_id}`.
pub async fn get(state: &AppState, raw_id: &str) -> Result<Reply, ApiError> {
    let id = venue_id(raw_id)?;
    let client = state.client().await?;
    Ok(Reply::json(
        StatusCode::OK,
        &venues::get_venue(&client, id).await?,
    ))
}
