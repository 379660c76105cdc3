//! `JWKS_FILE`: several keys chosen by `kid`, and the file rewritten while the server
//! runs (new keys taken, a broken file keeping the last good ones).

use super::{assert_refused, claims, hold_with, key_bytes, key_path, sign};
use crate::common::TestServer;
use booking_server::config::AuthMode;
use hyper::StatusCode;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

/// The JWK of a public key of `keys/jwks.json` (`rsa`, `rsa2`, `ec`, `ed`) with `kid`.
fn jwk(name: &str, kid: &str) -> Value {
    let all: Value = serde_json::from_slice(&key_bytes("jwks.json")).unwrap();
    let mut k = all[name].clone();
    k["kid"] = json!(kid);
    k
}

/// Writes a JWKS to `path` through a temporary file and a rename, as a key rotation
/// would (a reader never sees half a file).
fn write_jwks(path: &Path, keys: &[Value]) {
    write_raw(path, json!({"keys": keys}).to_string().as_bytes());
}

fn write_raw(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn rsa_key() -> EncodingKey {
    EncodingKey::from_rsa_pem(&key_bytes("rsa.key")).unwrap()
}

fn ec_key() -> EncodingKey {
    EncodingKey::from_ec_pem(&key_bytes("ec.key")).unwrap()
}

fn temp_jwks() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("booking-jwks-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("jwks.json")
}

async fn jwks_server(path: &Path) -> TestServer {
    let path = path.to_owned();
    TestServer::start_with(move |c| {
        c.auth_mode = AuthMode::Jwt;
        c.jwks_file = Some(path);
    })
    .await
}

/// Polls (each try a real request) until `token` gets `status`, for up to 15 s: the
/// file is looked at again at most once a second. A hold made on the way is released.
async fn until(s: &TestServer, show: &str, token: &str, status: StatusCode) -> bool {
    for _ in 0..150 {
        let res = hold_with(s, show, token).await;
        if res.status == StatusCode::CREATED {
            let hold = res.json["hold_id"].as_str().unwrap();
            let released = super::bearer(s.delete(&format!("/holds/{hold}")), token)
                .send()
                .await;
            assert!(released.status.is_success(), "{}", released.text());
        }
        if res.status == status {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn a_jwks_of_two_keys_chooses_by_kid() {
    let path = temp_jwks();
    write_jwks(&path, &[jwk("rsa", "rsa-1"), jwk("ec", "ec-1")]);
    let s = jwks_server(&path).await;
    let show = s.show(&[("A", 4)]).await;
    let by_rsa = sign(
        Algorithm::RS256,
        Some("rsa-1"),
        &claims("alice"),
        &rsa_key(),
    );
    assert!(until(&s, &show, &by_rsa, StatusCode::CREATED).await);
    let by_ec = sign(Algorithm::ES256, Some("ec-1"), &claims("bob"), &ec_key());
    assert!(until(&s, &show, &by_ec, StatusCode::CREATED).await);
    for (case, token) in [
        (
            "unknown kid",
            sign(Algorithm::ES256, Some("ec-9"), &claims("m"), &ec_key()),
        ),
        (
            "no kid among two",
            sign(Algorithm::ES256, None, &claims("m"), &ec_key()),
        ),
        // The EC key's signature under the RSA key's kid: that key's algorithm is RS256.
        (
            "another key's kid",
            sign(Algorithm::ES256, Some("rsa-1"), &claims("m"), &ec_key()),
        ),
        (
            "an RSA signature by another key",
            sign(
                Algorithm::RS256,
                Some("rsa-1"),
                &claims("m"),
                &EncodingKey::from_rsa_pem(&key_bytes("rsa2.key")).unwrap(),
            ),
        ),
    ] {
        assert_refused(&hold_with(&s, &show, &token).await, "token_invalid", case);
    }
    assert_eq!(
        s.count("SELECT count(*) FROM holds WHERE user_id = 'm'")
            .await,
        0
    );
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[tokio::test]
async fn a_rewritten_jwks_is_taken_and_a_broken_one_keeps_the_last_good_keys() {
    let path = temp_jwks();
    write_jwks(&path, &[jwk("rsa", "old")]);
    let s = jwks_server(&path).await;
    let show = s.show(&[("A", 4)]).await;
    let old = sign(Algorithm::RS256, Some("old"), &claims("alice"), &rsa_key());
    let new = sign(Algorithm::ES256, Some("new"), &claims("bob"), &ec_key());
    assert!(until(&s, &show, &old, StatusCode::CREATED).await);
    assert_refused(
        &hold_with(&s, &show, &new).await,
        "token_invalid",
        "before rotation",
    );

    // Rotation, step one: both keys.
    write_jwks(&path, &[jwk("rsa", "old"), jwk("ec", "new")]);
    assert!(
        until(&s, &show, &new, StatusCode::CREATED).await,
        "the new key was never taken"
    );
    assert!(until(&s, &show, &old, StatusCode::CREATED).await);

    // A broken file: the keys stay as they were, however long it lies there.
    write_raw(&path, b"{\"keys\": [ this is not json");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(until(&s, &show, &new, StatusCode::CREATED).await);
    assert!(until(&s, &show, &old, StatusCode::CREATED).await);

    // Step two: the old key retired.
    write_jwks(&path, &[jwk("ec", "new")]);
    assert!(
        until(&s, &show, &old, StatusCode::UNAUTHORIZED).await,
        "the retired key was still accepted"
    );
    assert!(until(&s, &show, &new, StatusCode::CREATED).await);
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
    let _ = key_path("jwks.json");
}
