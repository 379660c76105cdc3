//! The keys tokens are verified with: exactly one source.
//!
//! - `JWT_SECRET`: one HS256 key.
//! - `JWT_PUBLIC_KEY_FILE`: one PEM public key, its algorithm fixed by its type (RSA:
//!   RS256; EC, P-256: ES256; Ed25519: EdDSA).
//! - `JWKS_FILE`: a JWKS (`{"keys": [...]}`) of public keys, chosen by the token's
//!   `kid`. The file is looked at again at most once a second, on the request that
//!   finds the last look older than that (others go on with the keys they have), and
//!   re-read when its modification time or length changed: rotating keys is writing
//!   the file. A new file that does not parse keeps the last good keys and logs a
//!   warning, once per change.
//!
//! Each key carries the one algorithm it verifies: a token's `alg` must be that one.
//! This is what stops the classic confusion (an RS256 public key used as an HS256
//! secret: the attacker signs with the public key, which is no secret) and `alg: none`.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};
use parking_lot::{Mutex, RwLock};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// How often at most the JWKS file is looked at.
const JWKS_CHECK_EVERY: Duration = Duration::from_secs(1);

/// Shortest `JWT_SECRET`: HS256 with a secret below 256 bits can be brute-forced
/// offline from any one token.
pub const MIN_SECRET_BYTES: usize = 32;

/// One verification key and the algorithm it is for.
pub struct Key {
    /// The key's `kid`, when it has one (JWKS keys).
    pub kid: Option<String>,
    /// The one algorithm this key verifies.
    pub algorithm: Algorithm,
    /// The key itself.
    pub decoding: DecodingKey,
}

/// Where keys come from; a JWKS file is re-read when it changes.
pub enum KeySource {
    /// `JWT_SECRET` or `JWT_PUBLIC_KEY_FILE`: one key for the life of the process.
    Fixed(Arc<Key>),
    /// `JWKS_FILE`.
    Jwks(JwksFile),
}

impl KeySource {
    /// The source configured by exactly one of the three settings.
    pub fn new(
        secret: Option<&str>,
        public_key_file: Option<&Path>,
        jwks_file: Option<&Path>,
    ) -> Result<KeySource, String> {
        match (secret, public_key_file, jwks_file) {
            (Some(secret), None, None) => {
                if secret.len() < MIN_SECRET_BYTES {
                    return Err(format!(
                        "JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes"
                    ));
                }
                Ok(KeySource::Fixed(Arc::new(Key {
                    kid: None,
                    algorithm: Algorithm::HS256,
                    decoding: DecodingKey::from_secret(secret.as_bytes()),
                })))
            }
            (None, Some(path), None) => {
                let pem = std::fs::read(path).map_err(|e| {
                    format!("JWT_PUBLIC_KEY_FILE {} cannot be read: {e}", path.display())
                })?;
                let key = public_pem(&pem).ok_or_else(|| {
                    format!(
                        "JWT_PUBLIC_KEY_FILE {} is not a PEM public key (RSA, EC P-256 or Ed25519)",
                        path.display()
                    )
                })?;
                Ok(KeySource::Fixed(Arc::new(key)))
            }
            (None, None, Some(path)) => Ok(KeySource::Jwks(JwksFile::open(path)?)),
            (None, None, None) => Err(
                "AUTH_MODE=jwt needs one of JWT_SECRET, JWT_PUBLIC_KEY_FILE or JWKS_FILE".into(),
            ),
            _ => Err(
                "set only one of JWT_SECRET, JWT_PUBLIC_KEY_FILE and JWKS_FILE: tokens are verified with one key source"
                    .into(),
            ),
        }
    }

    /// The key for a token whose header named `kid` (or none): a fixed key whatever
    /// the `kid`; in a JWKS, the key of that `kid`, or the only key when the token
    /// names none. `None`: no key fits (the token is `token_invalid`).
    pub fn key_for(&self, kid: Option<&str>) -> Option<Arc<Key>> {
        match self {
            KeySource::Fixed(key) => Some(key.clone()),
            KeySource::Jwks(file) => file.key_for(kid),
        }
    }
}

/// A PEM public key, its type deciding its algorithm. A private key is refused: the
/// library would read its key material, and the server has no use for a secret here.
fn public_pem(pem: &[u8]) -> Option<Key> {
    let text = std::str::from_utf8(pem).ok()?;
    if !text.contains("-----BEGIN PUBLIC KEY-----")
        && !text.contains("-----BEGIN RSA PUBLIC KEY-----")
    {
        return None;
    }
    let (algorithm, decoding) = if let Ok(k) = DecodingKey::from_rsa_pem(pem) {
        (Algorithm::RS256, k)
    } else if let Ok(k) = DecodingKey::from_ec_pem(pem) {
        (Algorithm::ES256, k)
    } else if let Ok(k) = DecodingKey::from_ed_pem(pem) {
        (Algorithm::EdDSA, k)
    } else {
        return None;
    };
    Some(Key {
        kid: None,
        algorithm,
        decoding,
    })
}

/// A JWKS file and the keys last read from it.
pub struct JwksFile {
    path: PathBuf,
    keys: RwLock<Arc<Vec<Arc<Key>>>>,
    /// When the file was last looked at and what it looked like then; `try_lock`ed,
    /// so one request looks while the others go on.
    seen: Mutex<Seen>,
}

struct Seen {
    checked: Instant,
    stamp: Option<(SystemTime, u64)>,
}

impl JwksFile {
    /// Reads the file now: at start, a file that cannot be read or parsed is an error.
    fn open(path: &Path) -> Result<JwksFile, String> {
        let stamp = stamp(path);
        let keys = read_jwks(path).map_err(|e| format!("JWKS_FILE {}: {e}", path.display()))?;
        Ok(JwksFile {
            path: path.to_owned(),
            keys: RwLock::new(Arc::new(keys)),
            seen: Mutex::new(Seen {
                checked: Instant::now(),
                stamp,
            }),
        })
    }

    fn key_for(&self, kid: Option<&str>) -> Option<Arc<Key>> {
        self.refresh();
        let keys = self.keys.read().clone();
        match kid {
            Some(kid) => keys.iter().find(|k| k.kid.as_deref() == Some(kid)).cloned(),
            None if keys.len() == 1 => keys.first().cloned(),
            None => None,
        }
    }

    /// Re-reads the file when it changed, at most once a second.
    fn refresh(&self) {
        let Some(mut seen) = self.seen.try_lock() else {
            return;
        };
        if seen.checked.elapsed() < JWKS_CHECK_EVERY {
            return;
        }
        seen.checked = Instant::now();
        let now = stamp(&self.path);
        if now == seen.stamp {
            return;
        }
        // Remembered whatever comes of it: a broken file is warned about once, not
        // every second, and its next change is read again.
        seen.stamp = now;
        match read_jwks(&self.path) {
            Ok(keys) => {
                tracing::info!(path = %self.path.display(), keys = keys.len(), "JWKS_FILE re-read");
                *self.keys.write() = Arc::new(keys);
            }
            Err(e) => tracing::warn!(
                path = %self.path.display(),
                error = %e,
                "JWKS_FILE changed but cannot be used; keeping the last good keys"
            ),
        }
    }
}

/// The file's modification time and length; `None` when it cannot be looked at.
fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// The keys of a JWKS file: at least one, each with a distinct `kid` when there are
/// several, each public and of an algorithm we verify.
fn read_jwks(path: &Path) -> Result<Vec<Arc<Key>>, String> {
    let text = std::fs::read(path).map_err(|e| format!("cannot be read: {e}"))?;
    let set: JwkSet =
        serde_json::from_slice(&text).map_err(|e| format!("is not a JWKS document: {e}"))?;
    if set.keys.is_empty() {
        return Err("has no keys".into());
    }
    let mut keys = Vec::with_capacity(set.keys.len());
    for (i, jwk) in set.keys.iter().enumerate() {
        let key = jwk_key(jwk).map_err(|e| format!("keys[{i}]: {e}"))?;
        if set.keys.len() > 1 && key.kid.is_none() {
            return Err(format!(
                "keys[{i}] has no kid: a JWKS of several keys chooses by kid"
            ));
        }
        if keys.iter().any(|k: &Arc<Key>| k.kid == key.kid) {
            return Err(format!("keys[{i}]: kid is not unique"));
        }
        keys.push(Arc::new(key));
    }
    Ok(keys)
}

/// One JWK: its algorithm is its `alg` when given (and must suit the key type), else
/// the key type's (RSA: RS256, EC P-256: ES256, EC P-384: ES384, OKP Ed25519: EdDSA).
fn jwk_key(jwk: &Jwk) -> Result<Key, String> {
    let by_type = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => Algorithm::ES256,
            EllipticCurve::P384 => Algorithm::ES384,
            _ => return Err("unsupported curve".into()),
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            Algorithm::EdDSA
        }
        AlgorithmParameters::OctetKeyPair(_) => return Err("unsupported curve".into()),
        // A secret in a file of public keys would be readable by whoever may read the
        // JWKS: HS256 is JWT_SECRET's.
        AlgorithmParameters::OctetKey(_) => {
            return Err("symmetric keys are not taken from a JWKS: use JWT_SECRET".into())
        }
    };
    let algorithm = match jwk.common.key_algorithm {
        None => by_type,
        Some(alg) => {
            let named = key_algorithm(alg).ok_or("alg is not a signature algorithm")?;
            if named.family() != by_type.family() {
                return Err("alg does not suit the key type".into());
            }
            named
        }
    };
    let decoding = DecodingKey::from_jwk(jwk).map_err(|_| "the key is not valid")?;
    Ok(Key {
        kid: jwk.common.key_id.clone(),
        algorithm,
        decoding,
    })
}

fn key_algorithm(alg: KeyAlgorithm) -> Option<Algorithm> {
    Some(match alg {
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}
