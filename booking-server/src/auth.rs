//! Who is asking: the caller of every request that acts for a user, and the admin.
//!
//! Two modes (`AUTH_MODE`):
//!
//! - `header` (the default): `X-User-Id` is trusted as sent. It stands for an identity
//!   that a gateway in front of the server established; anybody who reaches the server
//!   directly can name any user, so [`Auth::warn_if_exposed`] logs a warning at start
//!   when the server listens on an address other than loopback.
//! - `jwt`: the caller presents `Authorization: Bearer <JWT>`, verified against the
//!   configured key (one of `JWT_SECRET`, `JWT_PUBLIC_KEY_FILE`, `JWKS_FILE`: see
//!   [`keys`]); its `sub` is the user ([`verify`]). `X-User-Id` is ignored.
//!
//! In both modes a bearer equal to `ADMIN_TOKEN` (compared in constant time) is the
//! admin; in `jwt` mode so is a token whose `JWT_ADMIN_CLAIM` matches.
//!
//! Handlers ask [`Auth`] (in [`crate::AppState::auth`]) for what they need:
//! [`Auth::user`], [`Auth::actor`], [`Auth::admin`], [`Auth::require_admin`]. Nothing
//! is verified before a handler asks, so the order of checks of docs/API.md holds
//! (route, body size, then the caller) and public reads never look at a token.
//!
//! - [`keys`] (`auth/keys.rs`): the key source, a JWKS file re-read when it changes.
//! - [`verify`] (`auth/verify.rs`): a bearer token checked into a [`verify::Verified`]
//!   caller, each refusal its own `401` code.
//! - [`mint`] (`auth/mint.rs`): `booking-server token`, development tokens.

pub mod keys;
pub mod mint;
pub mod verify;

use crate::config::{AuthMode, Config};
use crate::http::{self, ApiError};
use booking_core::{Actor, UserId};
use hyper::header::HeaderMap;
use hyper::StatusCode;
use serde::Serialize;
use subtle::ConstantTimeEq;
use verify::{TokenError, Verified, Verifier};

/// How this server identifies callers: built once from the [`Config`].
pub struct Auth {
    mode: Mode,
    admin_token: Option<String>,
}

enum Mode {
    Header,
    Jwt(Verifier),
}

/// What the page learns at `GET /auth`: the mode, and who the credentials name.
#[derive(Debug, Serialize)]
pub struct WhoAmI {
    /// `header` or `jwt`.
    pub mode: &'static str,
    /// The user the request's credentials name; `null` when it sent none (or only the
    /// admin token).
    pub user: Option<String>,
    /// Whether the credentials are the admin's.
    pub admin: bool,
}

impl Auth {
    /// The mode of `config`, its keys read and checked: a bad key source is an error
    /// naming the variable (the server does not start).
    pub fn from_config(config: &Config) -> Result<Auth, String> {
        let mode = match config.auth_mode {
            AuthMode::Header => {
                let set = [
                    ("JWT_SECRET", config.jwt_secret.is_some()),
                    ("JWT_PUBLIC_KEY_FILE", config.jwt_public_key_file.is_some()),
                    ("JWKS_FILE", config.jwks_file.is_some()),
                    ("JWT_ISSUER", config.jwt_issuer.is_some()),
                    ("JWT_AUDIENCE", config.jwt_audience.is_some()),
                    ("JWT_ADMIN_CLAIM", config.jwt_admin_claim.is_some()),
                ];
                // A JWT setting without AUTH_MODE=jwt is a server that its operator
                // believes verifies tokens while it trusts any X-User-Id: refuse it.
                if let Some((name, _)) = set.iter().find(|(_, is_set)| *is_set) {
                    return Err(format!(
                        "{name} is set but AUTH_MODE is header: set AUTH_MODE=jwt to verify tokens"
                    ));
                }
                Mode::Header
            }
            AuthMode::Jwt => Mode::Jwt(Verifier::from_config(config)?),
        };
        Ok(Auth {
            mode,
            admin_token: config.admin_token.clone(),
        })
    }

    /// `header` or `jwt`.
    pub fn mode_name(&self) -> &'static str {
        match self.mode {
            Mode::Header => "header",
            Mode::Jwt(_) => "jwt",
        }
    }

    /// Logs a warning when `X-User-Id` is trusted on an address others can reach.
    pub fn warn_if_exposed(&self, addr: std::net::SocketAddr) {
        if matches!(self.mode, Mode::Header) && !addr.ip().is_loopback() {
            tracing::warn!(
                %addr,
                "AUTH_MODE=header trusts X-User-Id as sent on a non-loopback address: \
                 anybody who reaches it can act as any user; put a gateway in front or \
                 set AUTH_MODE=jwt"
            );
        }
    }

    /// The user the request acts for. Header mode: `X-User-Id`. Jwt mode: the `sub`
    /// of a verified bearer token (the admin token names no user: `403`).
    pub fn user(&self, headers: &HeaderMap) -> Result<UserId, ApiError> {
        match &self.mode {
            Mode::Header => http::header_user(headers),
            Mode::Jwt(verifier) => {
                let bearer = verify::bearer(headers)?.ok_or(TokenError::Missing)?;
                if self.is_admin_token(bearer) {
                    return Err(ApiError::new(
                        StatusCode::FORBIDDEN,
                        "forbidden",
                        "The admin token acts for no user: send a user's token.",
                    ));
                }
                Ok(verifier.verify(bearer)?.user)
            }
        }
    }

    /// The caller of a route the owner or an admin may call: the admin (the admin
    /// token, or in jwt mode a token with the admin claim), else the user.
    pub fn actor(&self, headers: &HeaderMap) -> Result<Actor, ApiError> {
        match &self.mode {
            Mode::Header => http::header_actor(headers, self.admin_token.as_deref()),
            Mode::Jwt(_) => match self.jwt_caller(headers)? {
                None => Err(TokenError::Missing.into()),
                Some(Caller::AdminToken) => Ok(Actor::Admin),
                Some(Caller::Token(v)) if v.admin => Ok(Actor::Admin),
                Some(Caller::Token(v)) => Ok(Actor::User(v.user)),
            },
        }
    }

    /// Whether the request is the admin's; `Ok(false)` when it sent no credentials
    /// (header mode: no `Authorization`; jwt mode: also a user's valid token).
    pub fn admin(&self, headers: &HeaderMap) -> Result<bool, ApiError> {
        match &self.mode {
            Mode::Header => http::header_admin(headers, self.admin_token.as_deref()),
            Mode::Jwt(_) => Ok(match self.jwt_caller(headers)? {
                None => false,
                Some(Caller::AdminToken) => true,
                Some(Caller::Token(v)) => v.admin,
            }),
        }
    }

    /// For admin-only routes: `401` without credentials, `403` for a user's token (or
    /// when no admin can exist: no `ADMIN_TOKEN` and no `JWT_ADMIN_CLAIM`).
    pub fn require_admin(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Mode::Jwt(verifier) = &self.mode else {
            return http::header_require_admin(headers, self.admin_token.as_deref());
        };
        if self.admin_token.is_none() && !verifier.has_admin_claim() {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Admin endpoints are disabled: the server has neither ADMIN_TOKEN nor JWT_ADMIN_CLAIM.",
            ));
        }
        match self.jwt_caller(headers)? {
            None => Err(TokenError::Missing.into()),
            Some(Caller::AdminToken) => Ok(()),
            Some(Caller::Token(v)) if v.admin => Ok(()),
            Some(Caller::Token(_)) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "This is an admin endpoint and the token is not an admin's.",
            )),
        }
    }

    /// `GET /auth`: the mode and who the request's credentials name (none is no
    /// error; bad ones are the same `401` as anywhere).
    pub fn who_am_i(&self, headers: &HeaderMap) -> Result<WhoAmI, ApiError> {
        let mode = self.mode_name();
        match &self.mode {
            Mode::Header => {
                let admin = http::header_admin(headers, self.admin_token.as_deref())?;
                let user = match headers.contains_key("x-user-id") {
                    true => Some(http::header_user(headers)?.as_str().to_owned()),
                    false => None,
                };
                Ok(WhoAmI { mode, user, admin })
            }
            Mode::Jwt(_) => Ok(match self.jwt_caller(headers)? {
                None => WhoAmI {
                    mode,
                    user: None,
                    admin: false,
                },
                Some(Caller::AdminToken) => WhoAmI {
                    mode,
                    user: None,
                    admin: true,
                },
                Some(Caller::Token(v)) => WhoAmI {
                    mode,
                    user: Some(v.user.as_str().to_owned()),
                    admin: v.admin,
                },
            }),
        }
    }

    /// The user for the request's log line. Header mode: `X-User-Id` as sent (valid or
    /// not). Jwt mode: empty; the header is ignored there and logging it would name
    /// whoever the sender claimed to be.
    pub fn user_for_log(&self, headers: &HeaderMap) -> String {
        match self.mode {
            Mode::Header => http::user_for_log(headers),
            Mode::Jwt(_) => String::new(),
        }
    }

    /// Jwt mode: `None` without `Authorization`; the admin token; or a verified token.
    fn jwt_caller(&self, headers: &HeaderMap) -> Result<Option<Caller>, ApiError> {
        let Mode::Jwt(verifier) = &self.mode else {
            unreachable!("jwt_caller is asked in jwt mode only");
        };
        let Some(bearer) = verify::bearer(headers)? else {
            return Ok(None);
        };
        if self.is_admin_token(bearer) {
            return Ok(Some(Caller::AdminToken));
        }
        Ok(Some(Caller::Token(verifier.verify(bearer)?)))
    }

    /// In constant time, as `http::header_admin` compares it (see there for why).
    fn is_admin_token(&self, presented: &str) -> bool {
        self.admin_token
            .as_deref()
            .is_some_and(|t| bool::from(presented.as_bytes().ct_eq(t.as_bytes())))
    }
}

enum Caller {
    AdminToken,
    Token(Verified),
}
