//! `GET /`: the seat-map page. Its files are compiled into the binary: no build step,
//! no CDN, works offline.

use crate::http::{Body, Reply};
use hyper::header::{HeaderName, HeaderValue, CACHE_CONTROL};
use hyper::{Response, StatusCode};

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
    /// `GET /identity.js`: `web/identity.js` (who the page acts for: a user id, or a
    /// token in `AUTH_MODE=jwt`; loaded before `app.js`).
    Identity,
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
            Asset::Identity => (
                "text/javascript; charset=utf-8",
                include_str!("../web/identity.js"),
            ),
        }
    }
}

/// The page's policy: scripts, styles and connections (fetch, the event stream) from
/// this server only, no inline script or style (the page has none: its DOM is built
/// with `textContent`, never from HTML), no plugins, no `<base>`, and no framing by
/// any site (clickjacking).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; connect-src 'self'; img-src 'self'; object-src 'none'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// `200` with the file, `Cache-Control: no-cache`, [`CONTENT_SECURITY_POLICY`],
/// `Referrer-Policy: no-referrer` and `X-Frame-Options: DENY` (for browsers older than
/// `frame-ancestors`); `X-Content-Type-Options` is added to every answer by [`harden`].
pub fn serve(asset: Asset) -> Reply {
    let (content_type, body) = asset.file();
    Reply::text(StatusCode::OK, content_type, body)
        .with_header(CACHE_CONTROL, HeaderValue::from_static("no-cache"))
        .with_header(
            HeaderName::from_static("content-security-policy"),
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        )
        .with_header(
            HeaderName::from_static("referrer-policy"),
            HeaderValue::from_static("no-referrer"),
        )
        .with_header(
            HeaderName::from_static("x-frame-options"),
            HeaderValue::from_static("DENY"),
        )
}

/// What every answer carries for browsers: `X-Content-Type-Options: nosniff`, so that
/// no answer (a JSON error quoting what a client sent, say) is ever read as a script
/// or a page whatever its bytes look like.
pub fn harden(response: &mut Response<Body>) {
    response
        .headers_mut()
        .entry(HeaderName::from_static("x-content-type-options"))
        .or_insert(HeaderValue::from_static("nosniff"));
}
