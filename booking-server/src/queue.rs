//! The waiting room over HTTP: `POST /shows/{id}/queue` (join), `GET
//! /shows/{id}/queue/me` (where am I) and `GET /shows/{id}/queue/me/events` (the same,
//! pushed as Server-Sent Events), all of `booking_core::queue`; and the gate that
//! holds, adds and best available pass on a queued show ([`gate`]).
//!
//! Which shows are queued is remembered per process for up to [`FLAGS_MAX_AGE`], so a
//! hold of a show without a queue costs no extra statement. It only routes: a stale
//! answer sends a hold down a path that still decides right (the database checks the
//! admission and allowance inside every taking of a queued show, and its batch
//! statements hand queued shows to that path).

use crate::http::{Answer, ApiError, Body, Reply};
use crate::shows::show_id;
use crate::state::AppState;
use booking_core::queue::{self, QueueState, QueueStatus};
use booking_core::{ShowId, UserId};
use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::http::request::Parts;
use hyper::{Response, StatusCode};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::convert::Infallible;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How long what was read of a show's queue (whether it has one) is trusted.
pub const FLAGS_MAX_AGE: Duration = Duration::from_secs(1);

/// Shows remembered at most; past it, the oldest half is forgotten.
const MAX_SHOWS: usize = 10_000;

/// Whether each show has a queue, as read at most [`FLAGS_MAX_AGE`] ago.
#[derive(Default)]
pub struct QueueFlags {
    known: Mutex<HashMap<ShowId, (bool, Instant)>>,
}

impl QueueFlags {
    fn get(&self, show: ShowId) -> Option<bool> {
        let known = self.known.lock();
        known
            .get(&show)
            .filter(|(_, at)| at.elapsed() <= FLAGS_MAX_AGE)
            .map(|(q, _)| *q)
    }

    fn put(&self, show: ShowId, queued: bool) {
        let mut known = self.known.lock();
        if known.len() >= MAX_SHOWS {
            known.retain(|_, (_, at)| at.elapsed() <= FLAGS_MAX_AGE);
        }
        known.insert(show, (queued, Instant::now()));
    }

    /// Forgets `show` (its queue changed through this process).
    pub fn forget(&self, show: ShowId) {
        self.known.lock().remove(&show);
    }
}

/// Before a hold, add or best available of `user` on `show`: `Ok(false)` when the
/// show has no queue (known without a statement most of the time); `Ok(true)` when it
/// has one and the user is admitted now, which routes the taking to the
/// single-statement path (not the batcher); `403 not_admitted` or `409
/// admission_expired` before any seat is looked at. The taking checks again under
/// its lock (`booking_core::queue`): this early answer only saves it the work.
///
/// `keyed`: the request has an `Idempotency-Key`. Its refusal is then left to the
/// taking, which replays the stored answer of a first try first: a retry of a hold
/// made while admitted gets that hold again, not `admission_expired`.
pub async fn gate(
    state: &AppState,
    show: ShowId,
    user: &UserId,
    keyed: bool,
) -> Result<bool, ApiError> {
    if state.queue_flags.get(show) == Some(false) {
        return Ok(false);
    }
    let client = state.client().await?;
    match queue::gate(&client, show, user).await {
        Ok(queued) => {
            state.queue_flags.put(show, queued);
            Ok(queued)
        }
        Err(booking_core::Error::NotAdmitted | booking_core::Error::AdmissionExpired) if keyed => {
            state.queue_flags.put(show, true);
            Ok(true)
        }
        Err(e @ (booking_core::Error::NotAdmitted | booking_core::Error::AdmissionExpired)) => {
            state.queue_flags.put(show, true);
            state.metrics.queue_refusals.inc();
            Err(e.into())
        }
        // No such show: the taking answers it as it always has.
        Err(booking_core::Error::ShowNotFound) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// `POST /shows/{show_id}/queue`: `201` with the caller's `queue/me` body on the first
/// join, `200` with it after (the same entry).
pub async fn join(state: &AppState, parts: &Parts, raw_show: &str) -> Result<Reply, ApiError> {
    let user = state.auth.user(&parts.headers)?;
    crate::rate_limit::admit(state, parts, &user)?;
    let show = show_id(raw_show)?;
    let mut client = state.client().await?;
    let joined = queue::join(&mut client, show, &user).await?;
    let status = match joined.created {
        true => {
            state.metrics.queue_joins.inc();
            StatusCode::CREATED
        }
        false => StatusCode::OK,
    };
    Ok(Reply::json(status, &joined.status))
}

/// `GET /shows/{show_id}/queue/me`: `200` with where the caller is.
pub async fn me(state: &AppState, parts: &Parts, raw_show: &str) -> Result<Reply, ApiError> {
    let user = state.auth.user(&parts.headers)?;
    let show = show_id(raw_show)?;
    let client = state.client().await?;
    let status = queue::status(&client, show, &user).await?;
    Ok(Reply::json(StatusCode::OK, &status))
}

/// `GET /shows/{show_id}/queue/me/events`: `200 text/event-stream`. An `event: queue`
/// with the `queue/me` body at once and whenever it changes; the stream ends after
/// the `admitted` (or `expired`) state was sent. Read from the database every second
/// while the caller's admission is near, less often while it is far (at most every
/// [`FAR_POLL`]), so a crowd of watchers far back costs little. Errors before the
/// stream starts as for `queue/me`.
pub async fn events(state: &AppState, parts: &Parts, raw_show: &str) -> Result<Answer, ApiError> {
    let user = state.auth.user(&parts.headers)?;
    let show = show_id(raw_show)?;
    let first = {
        let client = state.client().await?;
        queue::status(&client, show, &user).await?
    };
    // The watch runs in a task of its own and hands its frames over a channel: the
    // body must be `Sync`, which the futures of database reads are not. It ends when
    // the client goes (a send fails) or the server shuts down.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let watch = Watch {
        pool: state.pool.clone(),
        show,
        user,
        last: None,
        next: Some(first),
        shutdown: state.shutdown.clone(),
        opened: false,
        quiet: Duration::ZERO,
    };
    tokio::spawn(async move {
        let mut watch = Some(watch);
        while let Some((frame, rest)) = next_frame(watch.take()).await {
            if tx.send(frame).await.is_err() {
                break;
            }
            watch = rest;
        }
    });
    let body = StreamBody::new(Frames(rx));
    let mut res = Response::new(Body::new(body.boxed()));
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(Answer::Stream(res))
}

/// The longest a watcher far back waits between two reads of their place.
pub const FAR_POLL: Duration = Duration::from_secs(5);

struct Watch {
    pool: booking_core::deadpool_postgres::Pool,
    show: ShowId,
    user: UserId,
    last: Option<QueueStatus>,
    next: Option<QueueStatus>,
    shutdown: CancellationToken,
    opened: bool,
    /// Time since the last frame sent (for keep-alives).
    quiet: Duration,
}

type Item = Result<Frame<Bytes>, Infallible>;

/// The frames a watch task sends, as a body's stream.
struct Frames(tokio::sync::mpsc::Receiver<Item>);

impl futures_util::Stream for Frames {
    type Item = Item;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Item>> {
        self.0.poll_recv(cx)
    }
}

/// How long to wait before reading a waiting buyer's place again.
fn poll_after(s: &QueueStatus) -> Duration {
    match s.estimated_wait_seconds {
        Some(w) if w > 20 => Duration::from_secs((w as u64 / 4).min(FAR_POLL.as_secs())),
        _ => Duration::from_secs(1),
    }
}

async fn next_frame(watch: Option<Watch>) -> Option<(Item, Option<Watch>)> {
    let mut w = watch?;
    if !w.opened {
        w.opened = true;
        return Some((
            Ok(Frame::data(Bytes::from_static(b"retry: 1000\n: open\n\n"))),
            Some(w),
        ));
    }
    loop {
        if let Some(status) = w.next.take() {
            if w.last.as_ref() != Some(&status) {
                let done = status.state != QueueState::Waiting;
                let text = format!(
                    "event: queue\ndata: {}\n\n",
                    serde_json::to_string(&status).unwrap_or_default()
                );
                w.last = Some(status);
                w.quiet = Duration::ZERO;
                // After the admitted (or expired) state, nothing more will change.
                return Some((Ok(Frame::data(Bytes::from(text))), (!done).then_some(w)));
            }
        }
        if w.quiet >= crate::events::PING_EVERY {
            w.quiet = Duration::ZERO;
            return Some((Ok(Frame::data(Bytes::from_static(b": ping\n\n"))), Some(w)));
        }
        let wait = w.last.as_ref().map_or(Duration::from_secs(1), poll_after);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = w.shutdown.cancelled() => return None,
        }
        w.quiet += wait;
        let read = async {
            let client = booking_core::database::client(&w.pool).await?;
            queue::status(&client, w.show, &w.user).await
        };
        match read.await {
            Ok(s) => w.next = Some(s),
            // The queue was removed, or the database is away: end; the client resumes.
            Err(_) => return None,
        }
    }
}
