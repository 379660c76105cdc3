//! `/shows`: create (admin), list, read one, its seat map.

use crate::http::{self, ApiError, Reply};
use crate::idempotency::{Begun, Idempotency, Scope};
use crate::state::AppState;
use booking_core::{seats, shows, Category, Currency, NewShow, RowLabel, RowSpec, ShowId};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use hyper::header::{HeaderValue, ETAG, IF_NONE_MATCH};
use hyper::http::request::Parts;
use hyper::StatusCode;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewShowBody {
    title: String,
    starts_at: DateTime<Utc>,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    prices: BTreeMap<String, i64>,
    rows: Vec<RowBody>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RowBody {
    row: String,
    seats: i64,
    #[serde(default)]
    aisles_after: Vec<i64>,
    #[serde(default)]
    category: Option<String>,
}

fn parse_new_show(body: &[u8]) -> Result<NewShow, ApiError> {
    let b: NewShowBody = http::parse_json(body)?;
    // serde would also take a row written as an array (`["A", 12]`): the contract says
    // an object, and one shape per field keeps clients honest.
    if let Ok(raw) = serde_json::from_slice::<serde_json::Value>(body) {
        if let Some(rows) = raw.get("rows").and_then(|r| r.as_array()) {
            if let Some(i) = rows.iter().position(|r| !r.is_object()) {
                return Err(ApiError::invalid(
                    format!("rows[{i}]"),
                    format!("Invalid JSON in `rows[{i}]`: a row is an object like {{\"row\": \"A\", \"seats\": 12}}."),
                ));
            }
        }
    }
    let currency = match &b.currency {
        Some(c) => Currency::parse(c)?,
        None => Currency::eur(),
    };
    let mut prices = BTreeMap::new();
    for (category, price) in b.prices {
        prices.insert(Category::parse(&category)?, price);
    }
    let mut rows = Vec::with_capacity(b.rows.len());
    for r in &b.rows {
        let category = r.category.as_deref().map(Category::parse).transpose()?;
        rows.push(RowSpec::new(
            RowLabel::parse(&r.row)?,
            r.seats,
            &r.aisles_after,
            category,
        )?);
    }
    Ok(NewShow::new(&b.title, b.starts_at, currency, prices, rows)?)
}

/// `POST /shows` (admin).
pub async fn create(state: &AppState, parts: &Parts, body: Bytes) -> Result<Reply, ApiError> {
    http::require_admin(&parts.headers, state.admin_token.as_deref())?;
    let idem = Idempotency::from_request(
        &parts.headers,
        Scope::Admin,
        &parts.method,
        parts.uri.path(),
        &body,
    )?;
    let new = parse_new_show(&body)?;
    let mut client = state.client().await?;
    let mut tx = match idem.begin(&mut client).await? {
        Begun::Fresh(tx) => tx,
        Begun::Answered(answer) => return Ok(answer),
    };
    let outcome = shows::create_show(&mut tx, &new)
        .await
        .map(|show| Reply::json(StatusCode::CREATED, &show))
        .map_err(ApiError::from);
    idem.finish(tx, outcome).await
}

#[derive(Serialize)]
struct ShowList {
    shows: Vec<shows::Show>,
}

/// `GET /shows`.
pub async fn list(state: &AppState) -> Result<Reply, ApiError> {
    let client = state.client().await?;
    let shows = shows::list_shows(&client).await?;
    Ok(Reply::json(StatusCode::OK, &ShowList { shows }))
}

/// A show id from the path; one that cannot exist is simply not found.
pub fn show_id(raw: &str) -> Result<ShowId, ApiError> {
    ShowId::parse(raw).map_err(|_| booking_core::Error::ShowNotFound.into())
}

/// `GET /shows/{show_id}`.
pub async fn get(state: &AppState, raw_id: &str) -> Result<Reply, ApiError> {
    let id = show_id(raw_id)?;
    let client = state.client().await?;
    Ok(Reply::json(
        StatusCode::OK,
        &shows::get_show(&client, id).await?,
    ))
}

/// `GET /shows/{show_id}/seats`, with an `ETag`: a client that sends it back in
/// `If-None-Match` gets `304 Not Modified` (no body) while no seat has changed. Served
/// from [`crate::seat_cache`] while the feed reports no change.
pub async fn seat_map(state: &AppState, parts: &Parts, raw_id: &str) -> Result<Reply, ApiError> {
    let id = show_id(raw_id)?;
    let entry = match state.seat_cache.get(id) {
        Some(entry) => entry,
        None => {
            // One reader per show at a time; whoever waited finds its map cached.
            let lock = state.seat_cache.build_lock(id);
            let _building = lock.lock().await;
            if let Some(entry) = state.seat_cache.get(id) {
                return respond(parts, entry);
            }
            let generation = state.seat_cache.begin(id, &state.feed);
            let client = state.client().await?;
            let map = seats::seat_map(&client, id).await?;
            let reply = Reply::json(StatusCode::OK, &map);
            // The body names every seat's state and version: its digest changes
            // exactly when the map does.
            let digest = Sha256::digest(&reply.body);
            let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
            let etag = format!("\"{hex}\"");
            state
                .seat_cache
                .put(id, generation, reply.clone(), etag.clone(), map.lapses_at);
            crate::seat_cache::Entry::new(reply, etag)
        }
    };
    respond(parts, entry)
}

/// The map, or `304` when the client's `If-None-Match` names its ETag.
fn respond(parts: &Parts, entry: crate::seat_cache::Entry) -> Result<Reply, ApiError> {
    let etag_value = HeaderValue::from_str(&entry.etag).map_err(ApiError::internal)?;
    let matches = parts
        .headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.trim_start_matches("W/") == entry.etag
        });
    if matches {
        return Ok(Reply::empty(StatusCode::NOT_MODIFIED).with_header(ETAG, etag_value));
    }
    Ok(entry.reply.with_header(ETAG, etag_value))
}
