//! A bearer token checked into the caller it names, or refused with the one `401`
//! code that says why.
//!
//! The order: the token's shape (three base64url parts, a JSON header with a string
//! `alg`); the key (by `kid`) and its one algorithm, which the header's `alg` must be;
//! the signature; then the claims (`exp` required; `nbf`; `iss` and `aud` when
//! configured; the leeway on both times); last `sub`, parsed as `X-User-Id` is. The
//! signature is checked before any claim, so an unsigned or forged token learns
//! nothing from its answer but `token_invalid`.
//!
//! Messages say what the code says and no more: never a key id, an algorithm we
//! accept, or the library's error text.

use super::keys::KeySource;
use crate::config::Config;
use crate::http::ApiError;
use base64::Engine as _;
use booking_core::UserId;
use hyper::header::HeaderMap;
use hyper::StatusCode;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

/// Why a token was refused: each a `401` code of its own (docs/API.md,
/// "Authentication").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// `token_missing`: no `Authorization: Bearer` header.
    Missing,
    /// `token_malformed`: not `Bearer <header.payload.signature>`, parts that are not
    /// base64url JSON, `Authorization` sent twice, or a required claim absent or not
    /// of its type (`exp` a number, say).
    Malformed,
    /// `token_invalid`: the signature does not verify, no configured key fits (an
    /// unknown `kid`), or the `alg` is not the key's (`none` and HS256 against a
    /// public key included).
    Invalid,
    /// `token_expired`: `exp` (plus the leeway) has passed.
    Expired,
    /// `token_not_yet_valid`: `nbf` (less the leeway) is still ahead.
    NotYetValid,
    /// `token_wrong_audience`: `JWT_AUDIENCE` is set and `aud` is absent or another.
    WrongAudience,
    /// `token_wrong_issuer`: `JWT_ISSUER` is set and `iss` is absent or another.
    WrongIssuer,
    /// `token_bad_subject`: `sub` is absent or not a user id (1 to 128 visible ASCII
    /// characters).
    BadSubject,
}

impl TokenError {
    /// The `error` code.
    pub fn code(self) -> &'static str {
        match self {
            TokenError::Missing => "token_missing",
            TokenError::Malformed => "token_malformed",
            TokenError::Invalid => "token_invalid",
            TokenError::Expired => "token_expired",
            TokenError::NotYetValid => "token_not_yet_valid",
            TokenError::WrongAudience => "token_wrong_audience",
            TokenError::WrongIssuer => "token_wrong_issuer",
            TokenError::BadSubject => "token_bad_subject",
        }
    }

    fn message(self) -> &'static str {
        match self {
            TokenError::Missing => "Send Authorization: Bearer <token>.",
            TokenError::Malformed => {
                "The bearer token is not a well-formed JWT with the claims this server requires (exp, sub)."
            }
            TokenError::Invalid => "The bearer token's signature is not valid for this server.",
            TokenError::Expired => "The bearer token has expired: get a new one.",
            TokenError::NotYetValid => "The bearer token is not valid yet (nbf).",
            TokenError::WrongAudience => "The bearer token is not for this audience (aud).",
            TokenError::WrongIssuer => "The bearer token is not from the expected issuer (iss).",
            TokenError::BadSubject => {
                "The bearer token's sub is not a user id: 1 to 128 visible ASCII characters."
            }
        }
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> ApiError {
        let mut error = ApiError::new(StatusCode::UNAUTHORIZED, e.code(), e.message());
        error.bearer_challenge = true;
        error
    }
}

/// Who a verified token names.
#[derive(Debug, Clone)]
pub struct Verified {
    /// Its `sub`.
    pub user: UserId,
    /// Whether its `JWT_ADMIN_CLAIM` matched.
    pub admin: bool,
}

/// The bearer token of `Authorization`, if one was sent: exactly once, scheme
/// `Bearer` (any case), one space, a token.
pub fn bearer(headers: &HeaderMap) -> Result<Option<&str>, TokenError> {
    let mut values = headers.get_all(hyper::header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(TokenError::Malformed);
    }
    let text = value.to_str().map_err(|_| TokenError::Malformed)?;
    let (scheme, token) = text.split_once(' ').ok_or(TokenError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(' ') {
        return Err(TokenError::Malformed);
    }
    Ok(Some(token))
}

/// Checks tokens against the configured keys and claims.
pub struct Verifier {
    keys: KeySource,
    issuer: Option<String>,
    audience: Option<String>,
    leeway: u64,
    admin_claim: Option<(String, String)>,
}

impl Verifier {
    /// The verifier of `config` (AUTH_MODE=jwt): its key source read now.
    pub fn from_config(config: &Config) -> Result<Verifier, String> {
        let keys = KeySource::new(
            config.jwt_secret.as_deref(),
            config.jwt_public_key_file.as_deref(),
            config.jwks_file.as_deref(),
        )?;
        let admin_claim = config
            .jwt_admin_claim
            .as_deref()
            .map(parse_admin_claim)
            .transpose()?;
        let nonempty = |name: &str, v: &Option<String>| match v {
            Some(s) if s.is_empty() => Err(format!("{name} must not be empty")),
            _ => Ok(v.clone()),
        };
        Ok(Verifier {
            keys,
            issuer: nonempty("JWT_ISSUER", &config.jwt_issuer)?,
            audience: nonempty("JWT_AUDIENCE", &config.jwt_audience)?,
            leeway: config.jwt_leeway_seconds,
            admin_claim,
        })
    }

    /// Whether `JWT_ADMIN_CLAIM` is set (admins can exist without `ADMIN_TOKEN`).
    pub fn has_admin_claim(&self) -> bool {
        self.admin_claim.is_some()
    }

    /// The caller `token` names, or why not.
    pub fn verify(&self, token: &str) -> Result<Verified, TokenError> {
        let header = token_header(token)?;
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or(TokenError::Malformed)?;
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.as_str()),
            Some(_) => return Err(TokenError::Malformed),
        };
        let key = self.keys.key_for(kid).ok_or(TokenError::Invalid)?;
        // The key decides the algorithm, never the token: `none`, or HS256 "signed"
        // with our public key, is refused here, before any cryptography.
        if alg.parse::<Algorithm>().ok() != Some(key.algorithm) {
            return Err(TokenError::Invalid);
        }
        let validation = self.validation(key.algorithm);
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.decoding, &validation)
            .map_err(|e| refusal(e.kind()))?;
        let claims = data.claims;
        let user = claims
            .get("sub")
            .and_then(Value::as_str)
            .and_then(|s| UserId::parse(s).ok())
            .ok_or(TokenError::BadSubject)?;
        let admin = self
            .admin_claim
            .as_ref()
            .is_some_and(|(name, value)| claim_holds(claims.get(name), value));
        Ok(Verified { user, admin })
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut v = Validation::new(algorithm);
        v.leeway = self.leeway;
        v.validate_exp = true;
        v.validate_nbf = true;
        let mut required = vec!["exp"];
        match &self.audience {
            Some(aud) => {
                v.set_audience(&[aud]);
                required.push("aud");
            }
            // Without JWT_AUDIENCE any `aud` is accepted (the library would refuse
            // every token that has one).
            None => v.validate_aud = false,
        }
        if let Some(iss) = &self.issuer {
            v.set_issuer(&[iss]);
            required.push("iss");
        }
        v.set_required_spec_claims(&required);
        v
    }
}

/// The token's header as JSON, its shape checked: three parts, the first base64url
/// JSON object.
fn token_header(token: &str) -> Result<Map<String, Value>, TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)
}

/// The library's refusal as ours.
fn refusal(kind: &ErrorKind) -> TokenError {
    match kind {
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidAudience => TokenError::WrongAudience,
        ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
        ErrorKind::MissingRequiredClaim(c) if c == "aud" => TokenError::WrongAudience,
        ErrorKind::MissingRequiredClaim(c) if c == "iss" => TokenError::WrongIssuer,
        ErrorKind::MissingRequiredClaim(_)
        | ErrorKind::InvalidClaimFormat(_)
        | ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_) => TokenError::Malformed,
        // A bad signature, a key that does not suit, anything else: not ours.
        _ => TokenError::Invalid,
    }
}

/// `JWT_ADMIN_CLAIM`: `name=value`, both non-empty.
fn parse_admin_claim(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() && !value.is_empty() => {
            Ok((name.to_owned(), value.to_owned()))
        }
        _ => Err("JWT_ADMIN_CLAIM must be claim=value (role=admin)".into()),
    }
}

/// The claim is the string, or an array holding it.
fn claim_holds(claim: Option<&Value>, value: &str) -> bool {
    match claim {
        Some(Value::String(s)) => s == value,
        Some(Value::Array(items)) => items.iter().any(|i| i.as_str() == Some(value)),
        _ => false,
    }
}
