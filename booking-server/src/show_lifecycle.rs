//! A show's lifecycle (admin): `PATCH /shows/{id}` (title, start, sales window, limit
//! per buyer) and `POST /shows/{id}/cancel`.

use crate::fields::{self, Int};
use crate::http::{self, ApiError, Reply};
use crate::shows::show_id;
use crate::state::AppState;
use booking_core::{shows, ShowChanges};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use hyper::http::request::Parts;
use hyper::StatusCode;
use serde::Deserialize;

/// The body of `PATCH /shows/{id}`: each field absent leaves it as it is. `null` is
/// refused (`400`) except where it clears: the window's ends and the limit.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShowPatch {
    #[serde(default, deserialize_with = "fields::present")]
    title: Option<String>,
    #[serde(default, deserialize_with = "fields::present")]
    starts_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "fields::nullable")]
    sales_start: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "fields::nullable")]
    sales_end: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "fields::nullable")]
    max_seats_per_user: Option<Option<Int>>,
    #[serde(default, deserialize_with = "fields::nullable")]
    queue: Option<Option<crate::shows::QueueBody>>,
}

fn parse_patch(body: &[u8]) -> Result<ShowChanges, ApiError> {
    let b: ShowPatch = http::parse_json(body)?;
    let max_seats_per_user = match b.max_seats_per_user {
        None => None,
        Some(None) => Some(None),
        Some(Some(n)) => match u32::try_from(n.get()) {
            Ok(m) => Some(Some(m)),
            Err(_) => {
                return Err(booking_core::Error::Invalid {
                    field: "max_seats_per_user".into(),
                    reason: "must be 1 to 100000".into(),
                }
                .into())
            }
        },
    };
    Ok(ShowChanges {
        title: b.title,
        starts_at: b.starts_at,
        sales_start: b.sales_start,
        sales_end: b.sales_end,
        max_seats_per_user,
        queue: match &b.queue {
            None => None,
            Some(None) => Some(None),
            Some(Some(q)) => Some(Some(q.parse()?)),
        },
    })
}

/// `PATCH /shows/{show_id}` (admin): `200` with the show as changed.
pub async fn update(
    state: &AppState,
    parts: &Parts,
    body: Bytes,
    raw_id: &str,
) -> Result<Reply, ApiError> {
    state.auth.require_admin(&parts.headers)?;
    let changes = parse_patch(&body)?;
    let id = show_id(raw_id)?;
    let mut client = state.client().await?;
    let show = shows::update(&mut client, id, &changes).await?;
    // Its list entry and the window its cached map refuses by change here at once
    // (other processes within a second, see `seat_cache`).
    state.show_list.forget();
    state.seat_cache.forget_sale(id);
    state.queue_flags.forget(id);
    Ok(Reply::json(StatusCode::OK, &show))
}

/// `POST /shows/{show_id}/cancel` (admin): `200` with the cancelled show, the first time
/// and every time after (a repeat changes nothing).
pub async fn cancel(state: &AppState, parts: &Parts, raw_id: &str) -> Result<Reply, ApiError> {
    state.auth.require_admin(&parts.headers)?;
    let id = show_id(raw_id)?;
    let mut client = state.client().await?;
    let done = shows::cancel(&mut client, &state.engine, id).await?;
    if done.cancelled_now {
        state.metrics.show_cancels.inc();
    }
    // Committed: read your writes (see `seat_cache`).
    state.seat_cache.own_write(done.event.as_ref());
    state.seat_cache.forget_sale(id);
    state.show_list.forget();
    Ok(Reply::json(StatusCode::OK, &done.show))
}
