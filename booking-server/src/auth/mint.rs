//! `booking-server token`: a token for development, signed with the configured
//! secret (HS256, `JWT_SECRET`) or a private key (`--key FILE`, PEM: RSA signs RS256,
//! EC P-256 ES256, Ed25519 EdDSA), with the `iss`, `aud` and admin claim the server
//! is configured to require.
//!
//! ```text
//! JWT_SECRET=... booking-server token --user alice --ttl 3600 [--admin]
//! ```
//!
//! Production tokens come from an identity provider; this is for trying the server.

use clap::Parser;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Map, Value};
use std::path::PathBuf;

/// Mints a JWT for development and prints it.
#[derive(Debug, Parser)]
#[command(name = "booking-server token", about, long_about = None)]
pub struct TokenArgs {
    /// The user the token names (its `sub`).
    #[arg(long)]
    pub user: String,

    /// Seconds until it expires (1 to 31536000).
    #[arg(long, default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub ttl: u64,

    /// Adds the admin claim (`JWT_ADMIN_CLAIM`, which must then be set).
    #[arg(long)]
    pub admin: bool,

    /// A private key (PEM) to sign with instead of `JWT_SECRET`.
    #[arg(long)]
    pub key: Option<PathBuf>,

    /// The `kid` to put in the header (the key's id in a JWKS).
    #[arg(long)]
    pub kid: Option<String>,

    /// The HS256 secret (when no `--key`).
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// The `iss` to put in the token.
    #[arg(long, env = "JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// The `aud` to put in the token.
    #[arg(long, env = "JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// `claim=value` that `--admin` sets.
    #[arg(long, env = "JWT_ADMIN_CLAIM")]
    pub jwt_admin_claim: Option<String>,
}

/// The signed token of `args`, or what is wrong with them.
pub fn mint(args: &TokenArgs) -> Result<String, String> {
    booking_core::UserId::parse(&args.user)
        .map_err(|_| "--user must be 1 to 128 visible ASCII characters".to_owned())?;
    let (algorithm, key) = match (&args.key, &args.jwt_secret) {
        (Some(path), _) => {
            let pem = std::fs::read(path)
                .map_err(|e| format!("--key {} cannot be read: {e}", path.display()))?;
            private_pem(&pem).ok_or_else(|| {
                format!(
                    "--key {} is not a PEM private key (RSA, EC P-256 or Ed25519)",
                    path.display()
                )
            })?
        }
        (None, Some(secret)) if secret.len() >= super::keys::MIN_SECRET_BYTES => (
            Algorithm::HS256,
            EncodingKey::from_secret(secret.as_bytes()),
        ),
        (None, Some(_)) => {
            return Err(format!(
                "JWT_SECRET must be at least {} bytes",
                super::keys::MIN_SECRET_BYTES
            ))
        }
        (None, None) => return Err("set JWT_SECRET, or sign with --key FILE".into()),
    };
    let now = jsonwebtoken::get_current_timestamp();
    let mut claims = Map::new();
    claims.insert("sub".into(), json!(args.user));
    claims.insert("iat".into(), json!(now));
    claims.insert("exp".into(), json!(now + args.ttl));
    if let Some(iss) = &args.jwt_issuer {
        claims.insert("iss".into(), json!(iss));
    }
    if let Some(aud) = &args.jwt_audience {
        claims.insert("aud".into(), json!(aud));
    }
    if args.admin {
        let (name, value) = args
            .jwt_admin_claim
            .as_deref()
            .and_then(|c| c.split_once('='))
            .ok_or("--admin needs JWT_ADMIN_CLAIM=claim=value")?;
        claims.insert(name.into(), Value::String(value.into()));
    }
    let mut header = Header::new(algorithm);
    header.kid = args.kid.clone();
    jsonwebtoken::encode(&header, &claims, &key).map_err(|e| format!("cannot sign: {e}"))
}

fn private_pem(pem: &[u8]) -> Option<(Algorithm, EncodingKey)> {
    if let Ok(k) = EncodingKey::from_rsa_pem(pem) {
        Some((Algorithm::RS256, k))
    } else if let Ok(k) = EncodingKey::from_ec_pem(pem) {
        Some((Algorithm::ES256, k))
    } else if let Ok(k) = EncodingKey::from_ed_pem(pem) {
        Some((Algorithm::EdDSA, k))
    } else {
        None
    }
}
