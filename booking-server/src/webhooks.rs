//! `/webhooks` (admin): endpoints that get the change feed pushed to them, and their
//! deliveries. The delivery itself runs in `booking_core::webhooks::worker`, started
//! by [`crate::run`], never in a request.

use crate::fields;
use crate::http::{self, ApiError, Reply};
use crate::state::AppState;
use booking_core::webhooks::{self, NewWebhook, WebhookId};
use bytes::Bytes;
use hyper::http::request::Parts;
use hyper::StatusCode;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewWebhookBody {
    url: String,
    events: Vec<String>,
    #[serde(default, deserialize_with = "fields::present")]
    shows: Option<Vec<String>>,
}

/// `POST /webhooks` (admin): `201` with the endpoint and its `secret`.
pub async fn create(state: &AppState, parts: &Parts, body: Bytes) -> Result<Reply, ApiError> {
    state.auth.require_admin(&parts.headers)?;
    let b: NewWebhookBody = http::parse_json(&body)?;
    let new = NewWebhook::parse(&b.url, &b.events, b.shows.as_deref())?;
    let client = state.client().await?;
    let hook = webhooks::create(&client, state.engine.settings(), &new).await?;
    Ok(Reply::json(StatusCode::CREATED, &hook))
}

/// `GET /webhooks/{webhook_id}` (admin): the endpoint, without its secret.
pub async fn get(state: &AppState, parts: &Parts, raw_id: &str) -> Result<Reply, ApiError> {
    state.auth.require_admin(&parts.headers)?;
    let id = WebhookId::parse(raw_id)?;
    let client = state.client().await?;
    let hook = webhooks::get(&client, id).await?;
    Ok(Reply::json(StatusCode::OK, &hook))
}

/// `DELETE /webhooks/{webhook_id}` (admin): `204`; nothing more is sent to it.
pub async fn delete(state: &AppState, parts: &Parts, raw_id: &str) -> Result<Reply, ApiError> {
    state.auth.require_admin(&parts.headers)?;
    let id = WebhookId::parse(raw_id)?;
    let client = state.client().await?;
    webhooks::delete(&client, id).await?;
    Ok(Reply::empty(StatusCode::NO_CONTENT))
}

/// Default and largest `?limit=` of a page.
const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 200;

/// `GET /webhooks/{webhook_id}/deliveries?limit=&cursor=` (admin): newest first.
pub async fn deliveries(state: &AppState, parts: &Parts, raw_id: &str) -> Result<Reply, ApiError> {
    state.auth.require_admin(&parts.headers)?;
    let id = WebhookId::parse(raw_id)?;
    let (mut limit, mut cursor) = (None, None);
    let query = parts.uri.query().unwrap_or("");
    // Percent-decoded; the first of each counts.
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "limit" if limit.is_none() => limit = Some(v.into_owned()),
            "cursor" if cursor.is_none() => cursor = Some(v.into_owned()),
            _ => {}
        }
    }
    let limit = match limit {
        None => DEFAULT_LIMIT,
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n) && !l.starts_with(['+', '0']))
            .ok_or_else(|| ApiError::invalid("limit", "limit must be an integer from 1 to 200."))?,
    };
    let before = cursor.as_deref().map(webhooks::parse_cursor).transpose()?;
    let client = state.client().await?;
    let page = webhooks::deliveries(&client, id, limit, before).await?;
    Ok(Reply::json(StatusCode::OK, &page))
}
