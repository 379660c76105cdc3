//! Holds with an `Idempotency-Key` through the hold batcher: the answer is rendered
//! here, stored by the batch with the hold, and sent from here; refusals from memory
//! stored under their keys first.

use crate::http::{ApiError, Reply};
use crate::idempotency::{self as idem_store, answer_claim};
use crate::state::AppState;
use booking_core::holds::batch::{Batcher, Keyed, Render};
use booking_core::idempotency::{Claim, Key};
use booking_core::{holds, HoldRequest};
use hyper::StatusCode;
use std::sync::Arc;

/// A refusal decided from memory, stored under the request's key: the answer to send
/// (the refusal, or what the key had stored already), or `None` when that could not be
/// decided cheaply and the database must decide the request.
pub(super) async fn refuse(
    batcher: &Batcher,
    key: Key,
    refusal: ApiError,
) -> Result<Option<Reply>, ApiError> {
    let reply = refusal.into_reply();
    let Some(stored) = idem_store::stored(&reply) else {
        return Ok(None);
    };
    match batcher.store_decided(key, stored).await {
        None => Ok(None),
        Some(Claim::Fresh) => Ok(Some(reply)),
        Some(found) => answer_claim(found),
    }
}

/// A keyed hold's answer as its batch rendered it, and what the server does with it
/// once it is committed.
struct Rendered {
    reply: Reply,
    event: Option<Arc<booking_core::feed::SeatEvent>>,
    limit_refused: bool,
}

/// A keyed hold through the batcher: the answer is rendered by the batch (to store it
/// with the hold) and kept here to send.
pub(super) async fn hold(
    state: &AppState,
    batcher: &Batcher,
    key: Key,
    request: &HoldRequest,
) -> Result<Reply, ApiError> {
    let slot: Arc<parking_lot::Mutex<Option<Rendered>>> = Arc::default();
    let render: Render = {
        let slot = slot.clone();
        Arc::new(move |outcome: booking_core::Result<holds::Hold>| {
            let limit_refused =
                matches!(outcome, Err(booking_core::Error::UserLimitReached { .. }));
            let event = outcome.as_ref().ok().and_then(|h| h.event.clone());
            let reply = match outcome {
                Ok(h) => Reply::json(StatusCode::CREATED, &h),
                Err(e) => ApiError::from(e).into_reply(),
            };
            let stored = idem_store::stored(&reply);
            *slot.lock() = Some(Rendered {
                reply,
                event,
                limit_refused,
            });
            stored
        })
    };
    match batcher.hold_keyed(request.clone(), key, render).await {
        Keyed::Rendered => {
            let r = slot
                .lock()
                .take()
                .ok_or_else(|| ApiError::internal("a keyed hold ended without its answer"))?;
            if r.limit_refused {
                state.metrics.user_limit_refusals.inc();
            }
            if r.reply.status == StatusCode::CREATED {
                // Committed: read your writes (see `seat_cache`).
                state.seat_cache.own_write(r.event.as_ref());
            }
            Ok(r.reply)
        }
        Keyed::Found(claim) => answer_claim(claim)?
            .ok_or_else(|| ApiError::internal("a keyed hold's claim came back fresh")),
        Keyed::Failed(e) => Err(e.into()),
    }
}
