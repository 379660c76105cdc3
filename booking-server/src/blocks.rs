//! `/shows/{id}/blocks` (admin): take seats off sale, list the blocks, delete one.

use crate::http::{self, ApiError, Reply};
use crate::idempotency::{Begun, RequestKey, Scope};
use crate::shows::show_id;
use crate::state::AppState;
use booking_core::{blocks, BlockId, SeatSelection};
use bytes::Bytes;
use hyper::http::request::Parts;
use hyper::StatusCode;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BlockBody {
    seats: Vec<String>,
    reason: String,
}

/// `POST /shows/{show_id}/blocks` (admin).
pub async fn create(
    state: &AppState,
    parts: &Parts,
    body: Bytes,
    raw_show: &str,
) -> Result<Reply, ApiError> {
    state.auth.require_admin(&parts.headers)?;
    let key = RequestKey::read(
        &parts.headers,
        Scope::Admin,
        &parts.method,
        parts.uri.path(),
        &body,
    )?;
    let show = show_id(raw_show)?;
    let idem = key.for_show(show);
    let b: BlockBody = http::parse_json(&body)?;
    let seats = SeatSelection::parse(&b.seats, blocks::MAX_SEATS_PER_BLOCK)?;
    blocks::check_reason(&b.reason)?;
    let mut client = state.client().await?;
    let mut tx = match idem.begin(&mut client).await? {
        Begun::Fresh(tx) => tx,
        Begun::Answered(answer) => return Ok(answer),
    };
    let outcome = blocks::block(&mut tx, &state.engine, show, &seats, &b.reason).await;
    let event = outcome.as_ref().ok().and_then(|b| b.event.clone());
    let outcome = outcome
        .map(|b| Reply::json(StatusCode::CREATED, &b))
        .map_err(ApiError::from);
    let reply = idem.finish(tx, outcome).await?;
    if reply.status == StatusCode::CREATED && reply.header("idempotent-replayed").is_none() {
        // Committed: read your writes (see `seat_cache`).
        state.seat_cache.own_write(event.as_ref());
        state.metrics.blocks.inc();
        state.show_list.forget();
    }
    Ok(reply)
}

/// `GET /shows/{show_id}/blocks?limit=&cursor=` (admin): oldest first, in pages.
pub async fn list(state: &AppState, parts: &Parts, raw_show: &str) -> Result<Reply, ApiError> {
    state.auth.require_admin(&parts.headers)?;
    let show = show_id(raw_show)?;
    let mut qs = crate::queries::QueryString::of(parts)?;
    let (limit, cursor) = qs.page()?;
    qs.finish()?;
    let client = state.client().await?;
    let page = blocks::blocks_page(&client, show, limit, cursor).await?;
    Ok(crate::queries::page_reply("blocks", &page))
}

/// `DELETE /shows/{show_id}/blocks/{block_id}` (admin): `204`, the seats on sale again.
pub async fn delete(
    state: &AppState,
    parts: &Parts,
    raw_show: &str,
    raw_block: &str,
) -> Result<Reply, ApiError> {
    state.auth.require_admin(&parts.headers)?;
    let show = show_id(raw_show)?;
    let block = BlockId::parse(raw_block).map_err(|_| booking_core::Error::BlockNotFound)?;
    let mut client = state.client().await?;
    let event = blocks::unblock(&mut client, &state.engine, show, block).await?;
    state.seat_cache.own_write(event.as_ref());
    state.metrics.unblocks.inc();
    state.show_list.forget();
    Ok(Reply::empty(StatusCode::NO_CONTENT))
}
