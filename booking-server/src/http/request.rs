//! What is read from a request before any work: the body (bounded) and its JSON, the
//! caller (`X-User-Id`), the admin token, the `Idempotency-Key`. Each refuses a bad
//! value with the documented [`ApiError`].

use super::reply::ApiError;
use booking_core::{Actor, UserId};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::StatusCode;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 64 * 1024;

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
///
/// `AUTH_MODE=header` only: handlers ask [`crate::auth::Auth::user`]
/// (`state.auth.user`), which calls this in header mode and verifies the bearer token
/// in jwt mode. Called directly, it would trust `X-User-Id` in jwt mode too: hence
/// its name (it was `http::user`, which no longer compiles, so that no caller written
/// before jwt mode is left trusting the header).
pub fn header_user(headers: &HeaderMap) -> Result<UserId, ApiError> {
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

/// The `X-User-Id` as sent (its first 128 characters), for the request's log line:
/// also when it is not a valid user id.
pub fn user_for_log(headers: &HeaderMap) -> String {
    headers
        .get("x-user-id")
        .and_then(|v| v.to_str().ok())
        .map(|u| u.chars().take(128).collect())
        .unwrap_or_default()
}

/// The header of an idempotency key.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The request's `Idempotency-Key`, if it sent one: once, 1 to 255 visible ASCII
/// characters.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let bad = || {
        ApiError::invalid(
            "Idempotency-Key",
            "Idempotency-Key must be sent once, as 1 to 255 visible ASCII characters.",
        )
    };
    if values.next().is_some() {
        return Err(bad());
    }
    let key = value.to_str().map_err(|_| bad())?;
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad());
    }
    Ok(Some(key))
}

/// Whether the request carries the admin token. `Ok(false)`: no Authorization header.
/// `AUTH_MODE=header` only, as [`header_user`]: handlers ask `state.auth.admin`.
pub fn header_admin(headers: &HeaderMap, token: Option<&str>) -> Result<bool, ApiError> {
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

/// The caller of a route that the owner or an admin may call: the admin when the
/// request carries an `Authorization` header (the token must be right), else the user
/// of `X-User-Id`. `AUTH_MODE=header` only, as [`header_user`]: handlers ask
/// `state.auth.actor`.
pub fn header_actor(headers: &HeaderMap, token: Option<&str>) -> Result<Actor, ApiError> {
    if header_admin(headers, token)? {
        Ok(Actor::Admin)
    } else {
        Ok(Actor::User(header_user(headers)?))
    }
}

/// For admin-only routes: the token must be configured and presented.
/// `AUTH_MODE=header` only, as [`header_user`]: handlers ask `state.auth.require_admin`.
pub fn header_require_admin(headers: &HeaderMap, token: Option<&str>) -> Result<(), ApiError> {
    if token.is_none() {
        return Err(admin_disabled());
    }
    if header_admin(headers, token)? {
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
