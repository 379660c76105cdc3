//! Standard Webhooks signatures: `whsec_<base64>` secrets whose decoded bytes are the
//! HMAC-SHA256 key, and `v1,<base64 of HMAC(id.timestamp.body)>` signatures.

use crate::error::{Error, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use sha2::Sha256;

/// The prefix of a secret, as the published verifiers expect it.
pub const SECRET_PREFIX: &str = "whsec_";

/// Bytes of a new secret's key: 24 random bytes (192 bits), within the 24 to 64 the
/// specification recommends.
const KEY_BYTES: usize = 24;

/// A new secret, `whsec_` and the base64 of random bytes from the operating system's
/// generator (through `rand`'s thread generator, seeded from it).
pub fn new_secret() -> String {
    let mut key = [0u8; KEY_BYTES];
    rand::thread_rng().fill_bytes(&mut key);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
}

/// The `webhook-signature` header of one attempt: `v1,` and the base64 of
/// HMAC-SHA256 over `{id}.{timestamp}.{body}` keyed with the secret's decoded bytes.
pub fn signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<String> {
    let key = secret
        .strip_prefix(SECRET_PREFIX)
        .and_then(|b| STANDARD.decode(b).ok())
        .ok_or_else(|| Error::Invariant("a webhook secret is not whsec_<base64>".into()))?;
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key)
        .map_err(|_| Error::Invariant("HMAC refused the key".into()))?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::unwrap_used)]
    fn matches_the_specification_example() {
        // The example of the Standard Webhooks specification (and of its libraries'
        // tests): secret, id, timestamp, body and the signature they give.
        let sig = signature(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn new_secrets_differ_and_decode() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        let key = STANDARD
            .decode(a.strip_prefix(SECRET_PREFIX).unwrap())
            .unwrap();
        assert_eq!(key.len(), KEY_BYTES);
    }
}
