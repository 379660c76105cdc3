//! What an endpoint answers: a [`Reply`] (kept as plain data, so that it can be stored
//! under an idempotency key and replayed), a streamed [`Answer`], and every non-2xx
//! answer, [`ApiError`], with its JSON shape.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::{Response, StatusCode};
use serde::Serialize;

/// The body of every response: a whole buffer, or a stream (Server-Sent Events).
pub type Body = BoxBody<Bytes, std::convert::Infallible>;

/// What an endpoint answers: a finished reply, or a response whose body streams.
pub enum Answer {
    /// A whole answer, sent as [`Reply::into_response`] makes it.
    Reply(Reply),
    /// A response sent as it is, its body streaming (the event stream).
    Stream(Response<Body>),
}

impl From<Reply> for Answer {
    fn from(r: Reply) -> Answer {
        Answer::Reply(r)
    }
}

/// The `Content-Type` of every JSON answer.
pub const JSON: &str = "application/json; charset=utf-8";

/// A finished answer: status, body and the few headers we set. Kept as plain data so
/// that it can be stored under an idempotency key and replayed byte for byte.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status code.
    pub status: StatusCode,
    /// The whole body (empty for `204` and `304`).
    pub body: Bytes,
    /// The `Content-Type` header; `None` sends none (an empty body).
    pub content_type: Option<&'static str>,
    /// Further headers, in the order they are sent (`ETag`, `Retry-After`, `Allow`...).
    pub headers: Vec<(hyper::header::HeaderName, HeaderValue)>,
    /// Neither sent nor stored: the answer is a row-lock wait that ran out, for the
    /// server to count (`booking_lock_timeouts_total`) when it sends the answer.
    pub lock_timeout: bool,
}

impl Reply {
    /// `value` as a JSON body with `status`; a value that cannot be serialised becomes
    /// `500 internal`.
    pub fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Reply {
        match serde_json::to_vec(value) {
            Ok(body) => Reply {
                status,
                body: body.into(),
                content_type: Some(JSON),
                headers: Vec::new(),
                lock_timeout: false,
            },
            Err(e) => ApiError::internal(format!("serialising a reply: {e}")).into_reply(),
        }
    }

    /// A JSON body written already.
    pub fn json_bytes(status: StatusCode, body: Bytes) -> Reply {
        Reply {
            status,
            body,
            content_type: Some(JSON),
            headers: Vec::new(),
            lock_timeout: false,
        }
    }

    /// No body and no `Content-Type` (`204`, `304`).
    pub fn empty(status: StatusCode) -> Reply {
        Reply {
            status,
            body: Bytes::new(),
            content_type: None,
            headers: Vec::new(),
            lock_timeout: false,
        }
    }

    /// A body of any type, as given (the web page, metrics, `openapi.json`).
    pub fn text(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
        Reply {
            status,
            body: body.into(),
            content_type: Some(content_type),
            headers: Vec::new(),
            lock_timeout: false,
        }
    }

    /// The first value of the further header `name` (lowercase), if set.
    pub fn header(&self, name: &str) -> Option<&HeaderValue> {
        self.headers
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(_, v)| v)
    }

    /// Adds a header (after those set already; a name may repeat).
    pub fn with_header(mut self, name: hyper::header::HeaderName, value: HeaderValue) -> Reply {
        self.headers.push((name, value));
        self
    }

    /// The hyper response: status, `Content-Type`, the further headers and the body.
    pub fn into_response(self) -> Response<Body> {
        let mut res = Response::new(Full::new(self.body).boxed());
        *res.status_mut() = self.status;
        if let Some(ct) = self.content_type {
            res.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(ct));
        }
        for (name, value) in self.headers {
            res.headers_mut().append(name, value);
        }
        res
    }
}

/// Every non-2xx answer: `{"error": code, "message": sentence, ...extra}`.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The status code (4xx or 5xx).
    pub status: StatusCode,
    /// The `error` of the body: a snake_case code of docs/API.md's error table.
    pub code: &'static str,
    /// The `message` of the body: one sentence a person can act on.
    pub message: String,
    /// The `field` of the body (`seats[2]`, `Idempotency-Key`, `body`...), for `400`.
    pub field: Option<String>,
    /// The rarer fields of some codes (boxed: every `Result` of a handler carries an
    /// `ApiError`, so it stays small).
    pub detail: Option<Box<Detail>>,
    /// Adds `Retry-After` (seconds).
    pub retry_after: Option<u32>,
    /// Adds `Allow` (for 405: the methods the path answers).
    pub allow: Option<&'static str>,
    /// Adds `WWW-Authenticate: Bearer` (401 for a missing or wrong admin token).
    pub bearer_challenge: bool,
    /// A row-lock wait ran out (see [`Reply::lock_timeout`]).
    pub lock_timeout: bool,
}

/// A show's sales window in an error body: start and end, `None` when open.
pub type SalesWindow = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// Fields of the body that only some codes have.
#[derive(Debug, Clone, Default)]
pub struct Detail {
    /// The `seats` (seat labels), when the code names seats.
    pub seats: Option<Vec<String>>,
    /// The `tickets` (`ticket_type_unavailable`): seat and type of each refused seat.
    pub tickets: Option<Vec<TicketRef>>,
    /// The `limit` and `current` (`user_limit_reached`).
    pub limit: Option<(u32, u32)>,
    /// The `areas` (area codes), when the code names standing areas.
    pub areas: Option<Vec<String>>,
    /// The `sales_start` and `sales_end` (`not_on_sale`), each `null` when open.
    pub window: Option<SalesWindow>,
}

/// A seat (or a standing area) and the ticket type asked for it, in an error body.
#[derive(Debug, Clone, Serialize)]
pub struct TicketRef {
    /// The seat's label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seat: Option<String>,
    /// The area's code, for a type asked for places.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub area: Option<String>,
    /// The type asked for it.
    #[serde(rename = "type")]
    pub ticket_type: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    seats: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    areas: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tickets: Option<&'a [TicketRef]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    current: Option<u32>,
    // `Some(None)` is sent as `null`: an open end of the window.
    #[serde(skip_serializing_if = "Option::is_none")]
    sales_start: Option<Option<DateTime<Utc>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sales_end: Option<Option<DateTime<Utc>>>,
}

impl ApiError {
    /// An answer of `status` and `code` with `message`, nothing else set.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            detail: None,
            retry_after: None,
            allow: None,
            bearer_challenge: false,
            lock_timeout: false,
        }
    }

    /// `400 invalid_request`, naming `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        let mut e = ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message);
        e.field = Some(field.into());
        e
    }

    /// `404 not_found`: no route has this path.
    pub fn not_found() -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "No such route: see /openapi.json for the API.",
        )
    }

    /// `405 method_not_allowed`, with `Allow: {allow}` (the methods the path answers).
    pub fn method_not_allowed(allow: &'static str) -> ApiError {
        let mut e = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("This route answers {allow} only."),
        );
        e.allow = Some(allow);
        e
    }

    /// `503 unavailable`, with `Retry-After: 1`.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        let mut e = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message);
        e.retry_after = Some(1);
        e
    }

    /// `500 internal`: a bug or an unexpected failure, `detail` logged in full and
    /// answered without details.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %detail, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Something went wrong on our side; it has been logged. Retrying may help.",
        )
    }

    /// The answer: the JSON body and the headers it asks for (`Retry-After`, `Allow`,
    /// `WWW-Authenticate: Bearer`).
    pub fn into_reply(self) -> Reply {
        let body = ErrorBody {
            error: self.code,
            message: &self.message,
            seats: self.detail.as_ref().and_then(|d| d.seats.as_deref()),
            areas: self.detail.as_ref().and_then(|d| d.areas.as_deref()),
            tickets: self.detail.as_ref().and_then(|d| d.tickets.as_deref()),
            limit: self.detail.as_ref().and_then(|d| d.limit).map(|(l, _)| l),
            current: self.detail.as_ref().and_then(|d| d.limit).map(|(_, c)| c),
            field: self.field.as_deref(),
            sales_start: self.detail.as_ref().and_then(|d| d.window).map(|(s, _)| s),
            sales_end: self.detail.as_ref().and_then(|d| d.window).map(|(_, e)| e),
        };
        let mut reply = Reply {
            status: self.status,
            body: serde_json::to_vec(&body).unwrap_or_default().into(),
            content_type: Some(JSON),
            headers: Vec::new(),
            lock_timeout: self.lock_timeout,
        };
        if let Some(s) = self.retry_after {
            reply = reply.with_header(RETRY_AFTER, HeaderValue::from(s));
        }
        if let Some(allow) = self.allow {
            reply = reply.with_header(ALLOW, HeaderValue::from_static(allow));
        }
        if self.bearer_challenge {
            reply = reply.with_header(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        reply
    }
}
