//! `/shows`: create (admin), list, read one, its seat map.

use crate::fields::{self, Int};
use crate::http::{self, ApiError, Reply};
use crate::idempotency::{Begun, Idempotency, Scope};
use crate::state::AppState;
use booking_core::{shows, Category, Currency, NewShow, RowLabel, RowSpec, ShowId};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use hyper::header::{HeaderValue, ETAG, IF_NONE_MATCH};
use hyper::http::request::Parts;
use hyper::StatusCode;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewShowBody {
    title: String,
    starts_at: DateTime<Utc>,
    #[serde(default, deserialize_with = "fields::present")]
    currency: Option<String>,
    #[serde(default)]
    prices: BTreeMap<String, Int>,
    rows: Vec<RowBody>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RowBody {
    row: String,
    seats: Int,
    #[serde(default)]
    aisles_after: Vec<Int>,
    #[serde(default, deserialize_with = "fields::present")]
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
        prices.insert(Category::parse(&category)?, price.get());
    }
    let mut rows = Vec::with_capacity(b.rows.len());
    for r in &b.rows {
        let category = r.category.as_deref().map(Category::parse).transpose()?;
        let aisles_after: Vec<i64> = r.aisles_after.iter().map(|a| a.get()).collect();
        rows.push(RowSpec::new(
            RowLabel::parse(&r.row)?,
            r.seats.get(),
            &aisles_after,
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
    let reply = idem.finish(tx, outcome).await?;
    // The creator lists its new show at once (other processes within a second).
    state.show_list.forget();
    Ok(reply)
}

#[derive(Serialize)]
struct ShowList {
    shows: Vec<shows::Show>,
}

/// `GET /shows`: every show with its seat counts, reused for up to
/// [`LIST_MAX_AGE`](crate::show_list::LIST_MAX_AGE) (see [`crate::show_list`]).
pub async fn list(state: &AppState) -> Result<Reply, ApiError> {
    state
        .show_list
        .get_or_read(|| async {
            let client = state.client().await?;
            let shows = shows::list_shows(&client).await?;
            Ok(Reply::json(StatusCode::OK, &ShowList { shows }))
        })
        .await
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
/// from [`crate::seat_cache`], kept current from the change feed.
pub async fn seat_map(state: &AppState, parts: &Parts, raw_id: &str) -> Result<Reply, ApiError> {
    let id = show_id(raw_id)?;
    let entry = state
        .seat_cache
        .get_or_read(id, &state.feed, &state.feed_pool)
        .await?;
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
            tag == "*" || tag.trim_start_matches("W/") == &*entry.etag
        });
    if matches {
        return Ok(Reply::empty(StatusCode::NOT_MODIFIED).with_header(ETAG, etag_value));
    }
    Ok(entry.reply.with_header(ETAG, etag_value))
}
