//! What an endpoint answers: a [`Reply`] (kept as plain data, so that it can be stored
//! under an idempotency key and replayed), a streamed [`Answer`], and every non-2xx
//! answer, [`ApiError`], with its JSON shape.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::{Response, StatusCode};
use serde::Serialize;

/// The body of every response: a whole buffer, or a stream (Server-Sent Events).
pub type Body = BoxBody<Bytes, std::convert::Infallible>;

/// What an endpoint answers: a finished reply, or a response whose body streams.
pub enum Answer {
    Reply(Reply),
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
    pub status: StatusCode,
    pub body: Bytes,
    pub content_type: Option<&'static str>,
    pub headers: Vec<(hyper::header::HeaderName, HeaderValue)>,
    /// Neither sent nor stored: the answer is a row-lock wait that ran out, for the
    /// server to count (`booking_lock_timeouts_total`) when it sends the answer.
    pub lock_timeout: bool,
}

impl Reply {
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

    pub fn empty(status: StatusCode) -> Reply {
        Reply {
            status,
            body: Bytes::new(),
            content_type: None,
            headers: Vec::new(),
            lock_timeout: false,
        }
    }

    pub fn text(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
        Reply {
            status,
            body: body.into(),
            content_type: Some(content_type),
            headers: Vec::new(),
            lock_timeout: false,
        }
    }

    pub fn header(&self, name: &str) -> Option<&HeaderValue> {
        self.headers
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(_, v)| v)
    }

    pub fn with_header(mut self, name: hyper::header::HeaderName, value: HeaderValue) -> Reply {
        self.headers.push((name, value));
        self
    }

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
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub seats: Option<Vec<String>>,
    pub field: Option<String>,
    /// Adds `Retry-After` (seconds).
    pub retry_after: Option<u32>,
    /// For 405: the methods the route has.
    pub allow: Option<&'static str>,
    /// For 401 on admin routes.
    pub bearer_challenge: bool,
    /// A row-lock wait ran out (see [`Reply::lock_timeout`]).
    pub lock_timeout: bool,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    seats: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            seats: None,
            field: None,
            retry_after: None,
            allow: None,
            bearer_challenge: false,
            lock_timeout: false,
        }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        let mut e = ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message);
        e.field = Some(field.into());
        e
    }

    pub fn not_found() -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "No such route: see /openapi.json for the API.",
        )
    }

    pub fn method_not_allowed(allow: &'static str) -> ApiError {
        let mut e = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("This route answers {allow} only."),
        );
        e.allow = Some(allow);
        e
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        let mut e = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message);
        e.retry_after = Some(1);
        e
    }

    /// A bug or an unexpected failure: logged in full, answered without details.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %detail, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Something went wrong on our side; it has been logged. Retrying may help.",
        )
    }

    pub fn into_reply(self) -> Reply {
        let body = ErrorBody {
            error: self.code,
            message: &self.message,
            seats: self.seats.as_deref(),
            field: self.field.as_deref(),
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
