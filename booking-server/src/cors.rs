//! CORS (`CORS_ORIGINS`): which other sites' pages may call the API from a browser.
//!
//! Exact origins only, no wildcard, and never credentials: the API authenticates with
//! headers a page sets itself (`X-User-Id`, `Authorization`), not cookies, so there is
//! nothing ambient for a browser to send on another site's behalf, and no reason to
//! allow it (`Access-Control-Allow-Credentials` is never sent). A request whose
//! `Origin` is not listed is answered as if CORS did not exist: no CORS headers, so a
//! browser keeps the answer from that page, while clients that are not browsers (which
//! ignore CORS) are served as always.

use crate::http::Body;
use http_body_util::{BodyExt, Empty};
use hyper::header::{
    HeaderMap, HeaderValue, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use hyper::{Method, Response, StatusCode};

/// The methods a preflight allows: every method the API answers.
const METHODS: &str = "GET, POST, PUT, PATCH, DELETE";

/// The request headers a preflight allows: those the API reads.
const REQUEST_HEADERS: &str =
    "Content-Type, Authorization, X-User-Id, Idempotency-Key, If-None-Match, Last-Event-ID";

/// The answer headers a page may read besides the CORS-safelisted ones.
const EXPOSED: &str = "ETag, Retry-After, Location, Idempotent-Replayed, Allow, WWW-Authenticate";

/// How long a browser may reuse a preflight's answer, in seconds (browsers cap it:
/// Chromium at 2 hours, Firefox at 1 day).
const MAX_AGE: &str = "600";

/// The origins of `CORS_ORIGINS`.
#[derive(Debug, Clone, Default)]
pub struct Cors {
    origins: Vec<HeaderValue>,
}

impl Cors {
    /// Reads a comma-separated list of origins (`scheme://host[:port]`, http or https,
    /// no path, no trailing slash; compared in lower case, as browsers send them). An
    /// empty list turns CORS off.
    pub fn parse(list: &str) -> Result<Cors, String> {
        let mut origins = Vec::new();
        for raw in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let origin = raw.to_ascii_lowercase();
            let rest = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"))
                .ok_or_else(|| {
                    format!("{raw:?} is not an origin: it must start with http:// or https://")
                })?;
            // `[v6]:port`, `[v6]`, `host:port` or `host`.
            let (host, port) = match rest.find(']') {
                Some(end) if rest.starts_with('[') => {
                    let (h, after) = rest.split_at(end + 1);
                    match after.strip_prefix(':') {
                        Some(p) => (h, Some(p)),
                        None if after.is_empty() => (h, None),
                        None => ("", None),
                    }
                }
                _ => match rest.split_once(':') {
                    Some((h, p)) => (h, Some(p)),
                    None => (rest, None),
                },
            };
            let host_ok = !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b));
            let port_ok = port.is_none_or(|p| {
                !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())
            });
            if !host_ok || !port_ok {
                return Err(format!(
                    "{raw:?} is not an origin: write scheme://host[:port], without a path or a trailing /"
                ));
            }
            let value =
                HeaderValue::from_str(&origin).map_err(|_| format!("{raw:?} is not an origin"))?;
            origins.push(value);
        }
        Ok(Cors { origins })
    }

    /// Whether no origin is configured (no CORS header is ever sent).
    pub fn is_off(&self) -> bool {
        self.origins.is_empty()
    }

    /// The request's `Origin` when it is one of ours (sent once).
    pub fn allowed(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        if self.is_off() {
            return None;
        }
        let mut values = headers.get_all(ORIGIN).iter();
        let origin = values.next()?;
        if values.next().is_some() {
            return None;
        }
        self.origins.iter().find(|o| *o == origin).cloned()
    }

    /// The answer to a preflight (`OPTIONS` with `Access-Control-Request-Method`) from
    /// an allowed origin: `204` with what may be sent. `None` for any other request,
    /// which is routed as usual (an `OPTIONS` from elsewhere is a `405`).
    pub fn preflight(&self, method: &Method, headers: &HeaderMap) -> Option<Response<Body>> {
        if method != Method::OPTIONS || !headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD) {
            return None;
        }
        let origin = self.allowed(headers)?;
        let mut res = Response::new(Empty::new().boxed());
        *res.status_mut() = StatusCode::NO_CONTENT;
        let h = res.headers_mut();
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(METHODS),
        );
        h.insert(
            ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(REQUEST_HEADERS),
        );
        h.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static(MAX_AGE));
        h.append(VARY, HeaderValue::from_static("Origin"));
        Some(res)
    }

    /// Adds the CORS headers of an answer: `Access-Control-Allow-Origin` and the
    /// exposed headers when `origin` (the request's, if allowed) is set, and `Vary:
    /// Origin` whenever CORS is on (the answer differs by origin, so a cache must not
    /// hand one origin's to another).
    pub fn decorate(&self, origin: Option<HeaderValue>, response: &mut Response<Body>) {
        if self.is_off() {
            return;
        }
        let h = response.headers_mut();
        h.append(VARY, HeaderValue::from_static("Origin"));
        if let Some(origin) = origin {
            h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            h.insert(
                ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSED),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_parse_exactly_and_refuse_what_is_not_one() {
        let cors = Cors::parse(" https://Tickets.example.com , http://localhost:3000,").unwrap();
        assert_eq!(cors.origins.len(), 2);
        assert_eq!(cors.origins[0], "https://tickets.example.com");
        assert!(Cors::parse("").unwrap().is_off());
        assert!(Cors::parse("http://[::1]:8080").is_ok());
        assert!(Cors::parse("http://[::1]").is_ok());
        for bad in [
            "*",
            "tickets.example.com",
            "https://tickets.example.com/",
            "https://tickets.example.com/app",
            "ftp://example.com",
            "https://",
            "https://example.com:",
            "https://example.com:80a",
            "https://exa mple.com",
        ] {
            assert!(Cors::parse(bad).is_err(), "{bad:?}");
        }
    }
}
