//! `GET /`: the seat-map page. Its files are compiled into the binary: no build step,
//! no CDN, works offline.

use crate::http::Reply;
use hyper::header::{HeaderName, HeaderValue, CACHE_CONTROL};
use hyper::StatusCode;

/// One of the page's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asset {
    /// `GET /`: `web/index.html`.
    Index,
    /// `GET /app.js`: `web/app.js`.
    Script,
    /// `GET /areas.js`: `web/areas.js` (standing areas; loaded before `app.js`).
    Areas,
    /// `GET /cart.js`: `web/cart.js` (the hold, the page's cart; loaded before `app.js`).
    Cart,
    /// `GET /show.js`: `web/show.js` (ticket types, features, the sales window; loaded
    /// before `app.js`).
    Show,
    /// `GET /bigmap.js`: `web/bigmap.js` (the compact map read, big maps on a canvas;
    /// loaded before `app.js`).
    BigMap,
    /// `GET /queue.js`: `web/queue.js` (the waiting room of a queued show; loaded before
    /// `app.js`).
    Queue,
    /// `GET /style.css`: `web/style.css`.
    Style,
}

impl Asset {
    fn file(self) -> (&'static str, &'static str) {
        match self {
            Asset::Index => (
                "text/html; charset=utf-8",
                include_str!("../web/index.html"),
            ),
            Asset::Script => (
                "text/javascript; charset=utf-8",
                include_str!("../web/app.js"),
            ),
            Asset::Areas => (
                "text/javascript; charset=utf-8",
                include_str!("../web/areas.js"),
            ),
            Asset::Cart => (
                "text/javascript; charset=utf-8",
                include_str!("../web/cart.js"),
            ),
            Asset::Show => (
                "text/javascript; charset=utf-8",
                include_str!("../web/show.js"),
            ),
            Asset::BigMap => (
                "text/javascript; charset=utf-8",
                include_str!("../web/bigmap.js"),
            ),
            Asset::Queue => (
                "text/javascript; charset=utf-8",
                include_str!("../web/queue.js"),
            ),
            Asset::Style => ("text/css; charset=utf-8", include_str!("../web/style.css")),
        }
    }
}

/// `200` with the file, `Cache-Control: no-cache`, a `Content-Security-Policy` of
/// `'self'` and `X-Content-Type-Options: nosniff`.
pub fn serve(asset: Asset) -> Reply {
    let (content_type, body) = asset.file();
    Reply::text(StatusCode::OK, content_type, body)
        .with_header(CACHE_CONTROL, HeaderValue::from_static("no-cache"))
        .with_header(
            HeaderName::from_static("content-security-policy"),
            HeaderValue::from_static("default-src 'self'; style-src 'self'; script-src 'self'"),
        )
        .with_header(
            HeaderName::from_static("x-content-type-options"),
            HeaderValue::from_static("nosniff"),
        )
}
