//! `GET /shows/{show_id}/events`: the show's seat changes as Server-Sent Events.
//!
//! Each event is `id: <position>`, `event: seats`, `data: <json>`; a client resumes
//! with `Last-Event-ID` (browsers send it when they reconnect) or `?since=<position>`
//! (an event id, or a seat map's `position`), and gets every change after that
//! position first, then live ones; a position older than the retained feed is
//! `410 position_expired`. A `: ping`
//! comment keeps idle connections open; the stream ends when the server shuts down
//! or when the client falls too far behind (it then reconnects and resumes).
//!
//! The frames are written by hand, not by an SSE library. An event is one `format!`
//! around the JSON that `SeatEvent::json` made once for all its subscribers. That JSON
//! is one line, so it needs no splitting into `data:` lines. With 10,000 subscribers
//! on one show (BENCHMARKS.md, fanout), a generic encoder would add work for each
//! event and subscriber and gain nothing, so the hand-written framing stays.

use crate::http::{Answer, ApiError, Body};
use crate::shows::show_id;
use crate::state::AppState;
use booking_core::feed::{MapPosition, Position};
use booking_core::{shows, Subscription};
use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::http::request::Parts;
use hyper::Response;
use std::convert::Infallible;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Comment lines this often keep proxies and browsers from closing an idle stream.
pub const PING_EVERY: Duration = Duration::from_secs(10);

/// Where to resume: `Last-Event-ID` (newest, sent by a reconnecting browser) or
/// `?since=` (an event id or a seat map's `position`); neither: from now on.
fn since(parts: &Parts) -> Result<Option<MapPosition>, ApiError> {
    if let Some(v) = parts.headers.get("last-event-id") {
        let text = v
            .to_str()
            .map_err(|_| ApiError::invalid("Last-Event-ID", "Last-Event-ID is not an event id."))?;
        if !text.is_empty() {
            return Position::parse(text)
                .map(|p| Some(MapPosition::at(p)))
                .map_err(|_| {
                    ApiError::invalid("Last-Event-ID", "Last-Event-ID is not an event id.")
                });
        }
    }
    // Percent-decoded (`since=123%2E45` is `123.45`); the first `since` counts.
    let query = parts.uri.query().unwrap_or("");
    let Some((_, value)) = form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "since")
    else {
        return Ok(None);
    };
    MapPosition::parse(&value, "since").map(Some).map_err(|_| {
        ApiError::invalid(
            "since",
            "since is not a feed position (use the `id:` of an event, or a seat map's `position`).",
        )
    })
}

/// `GET /shows/{show_id}/events`: `200 text/event-stream` from the resume point (see
/// the module docs), or `404 show_not_found`, `400 invalid_request` (`Last-Event-ID`
/// or `since`), `410 position_expired` or `503` before the stream starts.
pub async fn stream(state: &AppState, parts: &Parts, raw_show: &str) -> Result<Answer, ApiError> {
    let show = show_id(raw_show)?;
    let since = since(parts)?;
    {
        let client = state.client().await?;
        // Existence only: the show-with-counts query counts every seat of the show.
        shows::ensure_exists(&client, show).await?;
    }
    let subscription = match since {
        Some(since) => state.feed.subscribe_from(show, &since).await?,
        None => state.feed.subscribe(show, None).await?,
    };
    let body = StreamBody::new(futures_util::stream::unfold(
        Some(Stream {
            subscription,
            shutdown: state.shutdown.clone(),
            ping: tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY),
            opened: false,
        }),
        next_frame,
    ));
    let mut res = Response::new(Body::new(body.boxed()));
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(Answer::Stream(res))
}

struct Stream {
    subscription: Subscription,
    shutdown: CancellationToken,
    ping: tokio::time::Interval,
    opened: bool,
}

type Item = Result<Frame<Bytes>, Infallible>;

async fn next_frame(state: Option<Stream>) -> Option<(Item, Option<Stream>)> {
    let mut s = state?;
    if !s.opened {
        // Sent at once, so that the client knows the stream is open; `retry` tells
        // EventSource how soon to reconnect.
        s.opened = true;
        return Some((
            Ok(Frame::data(Bytes::from_static(b"retry: 1000\n: open\n\n"))),
            Some(s),
        ));
    }
    let text = tokio::select! {
        event = s.subscription.next() => match event {
            Some(e) => {
                format!("id: {}\nevent: seats\ndata: {}\n\n", e.position, e.json())
            }
            // Cut off (too slow) or the feed stopped: end; the client resumes.
            None => return None,
        },
        _ = s.ping.tick() => ": ping\n\n".to_owned(),
        _ = s.shutdown.cancelled() => return None,
    };
    Some((Ok(Frame::data(Bytes::from(text))), Some(s)))
}
