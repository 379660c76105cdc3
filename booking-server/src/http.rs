//! HTTP plumbing: replies, the error type and its one mapping from `booking_core::Error`,
//! bounded body reading, JSON parsing that names the bad field, and caller identity.

use booking_core::{Error as CoreError, SeatLabel, UserId};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue, ALLOW, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::{Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use subtle::ConstantTimeEq;

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

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 64 * 1024;

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

    fn with_seats(mut self, seats: &[SeatLabel]) -> ApiError {
        self.seats = Some(seats.iter().map(|s| s.as_str().to_owned()).collect());
        self
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

fn seat_list(seats: &[SeatLabel]) -> String {
    seats
        .iter()
        .map(SeatLabel::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The one place where library errors become HTTP answers.
impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> ApiError {
        use StatusCode as S;
        match e {
            // Best available found no group: there is no seat to name.
            CoreError::SeatsUnavailable { seats } if seats.is_empty() => ApiError::new(
                S::CONFLICT,
                "seats_unavailable",
                "No group of free seats fits the request. Nothing was held; ask for fewer seats, another category or seats not side by side.",
            )
            .with_seats(&seats),
            CoreError::SeatsUnavailable { seats } => ApiError::new(
                S::CONFLICT,
                "seats_unavailable",
                format!("Already held or booked: {}. Nothing was held; pick other seats.", seat_list(&seats)),
            )
            .with_seats(&seats),
            CoreError::StaleVersion { seats } => ApiError::new(
                S::PRECONDITION_FAILED,
                "stale_version",
                format!("These seats changed since you looked: {}. Reload the seat map.", seat_list(&seats)),
            )
            .with_seats(&seats),
            CoreError::SeatNotFound { seats } => ApiError::new(
                S::NOT_FOUND,
                "seat_not_found",
                format!("The show has no seats {}.", seat_list(&seats)),
            )
            .with_seats(&seats),
            CoreError::ShowNotFound => ApiError::new(S::NOT_FOUND, "show_not_found", "No show has this id."),
            CoreError::HoldNotFound => ApiError::new(S::NOT_FOUND, "hold_not_found", "No hold has this id."),
            CoreError::BookingNotFound => {
                ApiError::new(S::NOT_FOUND, "booking_not_found", "No booking has this id.")
            }
            CoreError::HoldExpired => ApiError::new(
                S::GONE,
                "hold_expired",
                "The hold expired and its seats were let go; hold them again.",
            ),
            CoreError::HoldReleased => {
                ApiError::new(S::CONFLICT, "hold_released", "The hold was released; hold the seats again.")
            }
            CoreError::HoldConfirmed => ApiError::new(
                S::CONFLICT,
                "hold_confirmed",
                "The hold is already confirmed into a booking; cancel the booking instead.",
            ),
            CoreError::Forbidden => {
                ApiError::new(S::FORBIDDEN, "forbidden", "This belongs to another user.")
            }
            CoreError::HoldLimitReached { max_seconds } => ApiError::new(
                S::CONFLICT,
                "hold_limit_reached",
                format!("A hold lives at most {max_seconds} seconds from its creation; confirm it or hold again."),
            ),
            CoreError::Invalid { field, reason } => {
                ApiError::invalid(field.clone(), format!("Invalid {field}: {reason}."))
            }
            CoreError::Busy(why) => {
                tracing::warn!(reason = why, "busy");
                let mut e = ApiError::unavailable("The service is busy right now; retry shortly.");
                e.lock_timeout = why == booking_core::error::LOCK_WAIT;
                e
            }
            CoreError::Database(e) if is_transient(&e) => {
                tracing::warn!(error = %e, "database unavailable");
                ApiError::unavailable("The database cannot be reached right now; retry shortly.")
            }
            CoreError::Pool(e) => {
                tracing::warn!(error = %e, "connection pool");
                ApiError::unavailable("The database cannot be reached right now; retry shortly.")
            }
            other => ApiError::internal(other),
        }
    }
}

/// Connection trouble, shutdowns, failovers, resource limits: worth a retry. Anything
/// else from the database (a constraint, a syntax error) is a bug here.
fn is_transient(e: &booking_core::tokio_postgres::Error) -> bool {
    let Some(code) = e.code() else {
        // No SQLSTATE: I/O error, closed connection, time-out while connecting.
        return true;
    };
    let c = code.code();
    c.starts_with("08") // connection exception
        || c.starts_with("53") // insufficient resources (too many connections, ...)
        || c.starts_with("57P") // admin/crash shutdown, cannot connect now
        || c == "40001" // serialization failure
        || c == "40P01" // deadlock detected (should never happen: ids are locked in order)
        || c == "25006" // read-only transaction: a standby took our connection during failover
}

/// Reads the whole body, refusing more than [`BODY_LIMIT`] bytes even when no
/// Content-Length was sent (it is counted as it streams in).
pub async fn read_body(headers: &HeaderMap, body: Incoming) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("Request bodies are limited to {} KiB.", BODY_LIMIT / 1024),
        )
    };
    if let Some(len) = headers.get(hyper::header::CONTENT_LENGTH) {
        let len: u64 = len
            .to_str()
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                ApiError::invalid("Content-Length", "Content-Length is not a number.")
            })?;
        if len > BODY_LIMIT as u64 {
            return Err(too_large());
        }
    }
    match Limited::new(body, BODY_LIMIT).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(ApiError::invalid(
            "body",
            format!("The request body could not be read: {e}."),
        )),
    }
}

/// Parses a JSON object body into `T`, naming the field that is wrong.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if std::str::from_utf8(body).is_err() {
        return Err(ApiError::invalid(
            "body",
            "The request body is not valid UTF-8.",
        ));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid("body", "The request needs a JSON body."));
    }
    // Every body of the API is a JSON object. serde would also fill a struct from an
    // array (`[]` for `{}`), which the contract does not allow.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::invalid(
            "body",
            "The request body must be a JSON object.",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { "body".to_owned() } else { path };
        let inner = e.into_inner();
        let what = inner.to_string();
        // serde_json appends " at line L column C": keep it, it helps find the spot.
        ApiError::invalid(field.clone(), format!("Invalid JSON in `{field}`: {what}."))
    })?;
    de.end()
        .map_err(|_| ApiError::invalid("body", "Unexpected characters after the JSON value."))?;
    Ok(value)
}

/// The caller named by `X-User-Id`: 1 to 128 visible ASCII characters, exactly once.
pub fn user(headers: &HeaderMap) -> Result<UserId, ApiError> {
    let unauthorised = |why: &str| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            format!("{why} Send X-User-Id: 1 to 128 visible ASCII characters."),
        )
    };
    let mut values = headers.get_all("x-user-id").iter();
    let value = values
        .next()
        .ok_or_else(|| unauthorised("X-User-Id is missing."))?;
    if values.next().is_some() {
        return Err(unauthorised("X-User-Id was sent more than once."));
    }
    let text = value
        .to_str()
        .map_err(|_| unauthorised("X-User-Id is not visible ASCII."))?;
    UserId::parse(text).map_err(|_| unauthorised("X-User-Id is malformed."))
}

/// Whether the request carries the admin token. `Ok(false)`: no Authorization header.
pub fn admin(headers: &HeaderMap, token: Option<&str>) -> Result<bool, ApiError> {
    let Some(value) = headers.get(hyper::header::AUTHORIZATION) else {
        return Ok(false);
    };
    let Some(token) = token else {
        return Err(admin_disabled());
    };
    let presented = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // In constant time: a comparison that stops at the first wrong byte answers a bit
    // sooner the more leading bytes of a guess are right, so timing many guesses
    // would reveal the token byte by byte. `ct_eq` does not stop early (only a
    // different length answers at once: the length is no secret worth keeping, at
    // 16 characters or more).
    if bool::from(presented.as_bytes().ct_eq(token.as_bytes())) {
        Ok(true)
    } else {
        let mut e = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "The admin token is wrong. Send Authorization: Bearer <ADMIN_TOKEN>.",
        );
        e.bearer_challenge = true;
        Err(e)
    }
}

/// For admin-only routes: the token must be configured and presented.
pub fn require_admin(headers: &HeaderMap, token: Option<&str>) -> Result<(), ApiError> {
    if token.is_none() {
        return Err(admin_disabled());
    }
    if admin(headers, token)? {
        Ok(())
    } else {
        let mut e = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "This is an admin endpoint. Send Authorization: Bearer <ADMIN_TOKEN>.",
        );
        e.bearer_challenge = true;
        Err(e)
    }
}

fn admin_disabled() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        "Admin endpoints are disabled: the server has no ADMIN_TOKEN configured.",
    )
}
