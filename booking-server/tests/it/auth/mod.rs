//! `AUTH_MODE=jwt`: tokens accepted, refused for every reason (each with its own
//! code, nothing written), the key sources (a secret, PEM keys, a JWKS chosen by `kid`
//! and rewritten while the server runs: `jwks.rs`), the admin by claim or by
//! `ADMIN_TOKEN`, `GET /auth`, the binary's `token` command and its configuration
//! errors (`binary.rs`). Header mode is every other test of the suite.

mod binary;
mod jwks;

use crate::common::{Call, Res, TestServer, ADMIN};
use base64::Engine as _;
use booking_server::config::AuthMode;
use booking_server::Config;
use hyper::StatusCode;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

pub(crate) const SECRET: &str = "a-development-secret-of-at-least-32-bytes";

/// A key file of `tests/it/auth/keys/`.
pub(crate) fn key_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/auth/keys")
        .join(name)
}

pub(crate) fn key_bytes(name: &str) -> Vec<u8> {
    std::fs::read(key_path(name)).unwrap()
}

pub(crate) fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Claims for `user`, valid for an hour.
pub(crate) fn claims(user: &str) -> Value {
    json!({"sub": user, "exp": now() + 3600, "iat": now()})
}

pub(crate) fn hs256(claims: &Value) -> String {
    sign(
        Algorithm::HS256,
        None,
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
}

pub(crate) fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

pub(crate) fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn bearer(call: Call, token: &str) -> Call {
    call.header("authorization", &format!("Bearer {token}"))
}

/// A jwt-mode server: HS256 with [`SECRET`], then `tweak`.
pub(crate) async fn jwt_server(tweak: impl FnOnce(&mut Config)) -> TestServer {
    TestServer::start_with(|c| {
        c.auth_mode = AuthMode::Jwt;
        c.jwt_secret = Some(SECRET.to_owned());
        tweak(c);
    })
    .await
}

/// Holds A1 of `show` with `token`.
pub(crate) async fn hold_with(s: &TestServer, show: &str, token: &str) -> Res {
    bearer(s.post(&format!("/shows/{show}/holds")), token)
        .json(json!({"seats": ["A1"]}))
        .send()
        .await
}

/// Refused `401` with `code` (and `WWW-Authenticate: Bearer`), the message naming no
/// key and no library error.
pub(crate) fn assert_refused(res: &Res, code: &str, case: &str) {
    assert_eq!(
        res.status,
        StatusCode::UNAUTHORIZED,
        "{case}: {}",
        res.text()
    );
    assert_eq!(res.error(), code, "{case}");
    assert_eq!(res.header("www-authenticate"), Some("Bearer"), "{case}");
    let message = res.json["message"].as_str().unwrap();
    for leak in [
        "kid",
        "Error",
        "ErrorKind",
        "Signature",
        "HS256",
        "RS256",
        "base64",
    ] {
        assert!(
            !message.contains(leak),
            "{case}: the message says {leak}: {message}"
        );
    }
}

#[tokio::test]
async fn a_valid_token_acts_for_its_sub_and_x_user_id_is_ignored() {
    let s = jwt_server(|_| {}).await;
    let show = s.show(&[("A", 4)]).await;
    let alice = hs256(&claims("alice"));
    let res = bearer(s.post(&format!("/shows/{show}/holds")), &alice)
        .user("mallory")
        .json(json!({"seats": ["A1"]}))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let hold = res.json["hold_id"].as_str().unwrap().to_owned();
    let owner: String = {
        let client = s.pool.get().await.unwrap();
        client
            .query_one("SELECT user_id FROM holds", &[])
            .await
            .unwrap()
            .get(0)
    };
    assert_eq!(owner, "alice");
    let mallory = hs256(&claims("mallory"));
    let res = bearer(s.post(&format!("/holds/{hold}/confirm")), &mallory)
        .send()
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.text());
    let res = bearer(s.post(&format!("/holds/{hold}/confirm")), &alice)
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let res = bearer(s.get("/users/me/bookings"), &alice).send().await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.json["bookings"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn x_user_id_alone_is_not_a_caller_in_jwt_mode() {
    let s = jwt_server(|_| {}).await;
    let show = s.show(&[("A", 4)]).await;
    let res = s
        .post(&format!("/shows/{show}/holds"))
        .user("alice")
        .json(json!({"seats": ["A1"]}))
        .send()
        .await;
    assert_refused(&res, "token_missing", "X-User-Id only");
    assert_eq!(s.count("SELECT count(*) FROM holds").await, 0);
}

#[tokio::test]
async fn every_bad_token_is_refused_with_its_own_code_and_writes_nothing() {
    let s = jwt_server(|c| {
        c.jwt_issuer = Some("https://id.example".into());
        c.jwt_audience = Some("booking".into());
    })
    .await;
    let show = s.show(&[("A", 4)]).await;
    let good = |extra: Value| {
        let mut c = json!({
            "sub": "alice", "exp": now() + 3600,
            "iss": "https://id.example", "aud": "booking"
        });
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    };
    // The right claims are accepted: what follows differs from this in one thing.
    let res = hold_with(&s, &show, &hs256(&good(json!({})))).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let hold = res.json["hold_id"].as_str().unwrap().to_owned();
    let res = bearer(
        s.delete(&format!("/holds/{hold}")),
        &hs256(&good(json!({}))),
    )
    .send()
    .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text());
    let holds_before = s.count("SELECT count(*) FROM holds").await;

    let other_key = EncodingKey::from_secret(b"another-secret-that-is-32-bytes-or-more");
    let good_token = hs256(&good(json!({})));
    let mut parts: Vec<String> = good_token.split('.').map(str::to_owned).collect();
    let tampered = {
        let payload = good(json!({"sub": "mallory"})).to_string();
        format!("{}.{}.{}", parts[0], b64(payload.as_bytes()), parts[2])
    };
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(good(json!({})).to_string().as_bytes())
    );
    let none_signed = {
        parts[0] = b64(br#"{"alg":"none","typ":"JWT"}"#);
        parts.join(".")
    };
    let cases: Vec<(&str, Option<String>, &str)> = vec![
        ("no Authorization", None, "token_missing"),
        ("not a JWT", Some("Bearer abc".into()), "token_malformed"),
        (
            "not Bearer",
            Some(format!("Basic {}", b64(b"alice:pw"))),
            "token_malformed",
        ),
        (
            "four parts",
            Some(format!("Bearer {good_token}.x")),
            "token_malformed",
        ),
        (
            "header not JSON",
            Some(format!("Bearer {}.e30.", b64(b"{nope"))),
            "token_malformed",
        ),
        (
            "expired",
            Some(hs256(&good(json!({"exp": now() - 120})))),
            "token_expired",
        ),
        (
            "not yet valid",
            Some(hs256(&good(json!({"nbf": now() + 600})))),
            "token_not_yet_valid",
        ),
        (
            "wrong key",
            Some(sign(Algorithm::HS256, None, &good(json!({})), &other_key)),
            "token_invalid",
        ),
        (
            "wrong algorithm (HS512, the right secret)",
            Some(sign(
                Algorithm::HS512,
                None,
                &good(json!({})),
                &EncodingKey::from_secret(SECRET.as_bytes()),
            )),
            "token_invalid",
        ),
        ("alg none, no signature", Some(none), "token_invalid"),
        ("alg none, a signature", Some(none_signed), "token_invalid"),
        ("tampered payload", Some(tampered), "token_invalid"),
        (
            "wrong audience",
            Some(hs256(&good(json!({"aud": "elsewhere"})))),
            "token_wrong_audience",
        ),
        (
            "no audience",
            Some(hs256(&good(json!({"aud": null})))),
            "token_wrong_audience",
        ),
        (
            "wrong issuer",
            Some(hs256(&good(json!({"iss": "https://evil.example"})))),
            "token_wrong_issuer",
        ),
        (
            "no issuer",
            Some(hs256(&good(json!({"iss": null})))),
            "token_wrong_issuer",
        ),
        (
            "no exp",
            Some(hs256(&good(json!({"exp": null})))),
            "token_malformed",
        ),
        // The type confusion of jsonwebtoken before 10.3: a string `nbf` was skipped.
        (
            "nbf a string",
            Some(hs256(&good(json!({"nbf": (now() + 600).to_string()})))),
            "token_malformed",
        ),
        (
            "exp a string",
            Some(hs256(&good(json!({"exp": (now() + 600).to_string()})))),
            "token_malformed",
        ),
        (
            "no sub",
            Some(hs256(&good(json!({"sub": null})))),
            "token_bad_subject",
        ),
        (
            "sub with a space",
            Some(hs256(&good(json!({"sub": "al ice"})))),
            "token_bad_subject",
        ),
        (
            "sub a number",
            Some(hs256(&good(json!({"sub": 42})))),
            "token_bad_subject",
        ),
        (
            "sub too long",
            Some(hs256(&good(json!({"sub": "a".repeat(129)})))),
            "token_bad_subject",
        ),
    ];
    for (case, token, code) in cases {
        let mut call = s.post(&format!("/shows/{show}/holds"));
        if let Some(t) = &token {
            let value = if t.starts_with("Bearer ") || t.starts_with("Basic ") {
                t.clone()
            } else {
                format!("Bearer {t}")
            };
            call = call.header("authorization", &value);
        }
        let res = call.json(json!({"seats": ["A1"]})).send().await;
        assert_refused(&res, code, case);
    }
    assert_eq!(s.count("SELECT count(*) FROM holds").await, holds_before);
}

#[tokio::test]
async fn the_leeway_forgives_a_little_clock_skew_and_no_more() {
    let s = jwt_server(|c| c.jwt_leeway_seconds = 60).await;
    let show = s.show(&[("A", 4)]).await;
    let lately = hs256(&json!({"sub": "alice", "exp": now() - 20, "nbf": now() + 20}));
    let res = hold_with(&s, &show, &lately).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let too_late = hs256(&json!({"sub": "alice", "exp": now() - 300}));
    assert_refused(
        &hold_with(&s, &show, &too_late).await,
        "token_expired",
        "past the leeway",
    );
}

#[tokio::test]
async fn public_keys_verify_their_own_algorithm_only() {
    for (public, private, alg) in [
        ("rsa.pub", "rsa.key", Algorithm::RS256),
        ("ec.pub", "ec.key", Algorithm::ES256),
        ("ed.pub", "ed.key", Algorithm::EdDSA),
    ] {
        let s = TestServer::start_with(|c| {
            c.auth_mode = AuthMode::Jwt;
            c.jwt_public_key_file = Some(key_path(public));
        })
        .await;
        let show = s.show(&[("A", 4)]).await;
        let pem = key_bytes(private);
        let key = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem),
            Algorithm::ES256 => EncodingKey::from_ec_pem(&pem),
            _ => EncodingKey::from_ed_pem(&pem),
        }
        .unwrap();
        let res = hold_with(&s, &show, &sign(alg, None, &claims("alice"), &key)).await;
        assert_eq!(res.status, StatusCode::CREATED, "{public}: {}", res.text());
        // The confusion attack: the public key (no secret) used as an HS256 secret.
        let forged = sign(
            Algorithm::HS256,
            None,
            &claims("mallory"),
            &EncodingKey::from_secret(&key_bytes(public)),
        );
        assert_refused(
            &hold_with(&s, &show, &forged).await,
            "token_invalid",
            public,
        );
        if alg == Algorithm::RS256 {
            let other = EncodingKey::from_rsa_pem(&key_bytes("rsa2.key")).unwrap();
            let wrong = sign(alg, None, &claims("mallory"), &other);
            assert_refused(&hold_with(&s, &show, &wrong).await, "token_invalid", "rsa2");
            let ps = sign(Algorithm::PS256, None, &claims("mallory"), &key);
            assert_refused(&hold_with(&s, &show, &ps).await, "token_invalid", "PS256");
        }
        assert_eq!(
            s.count("SELECT count(*) FROM holds WHERE user_id <> 'alice'")
                .await,
            0
        );
    }
}

#[tokio::test]
async fn admins_are_named_by_their_claim_or_the_admin_token() {
    let s = jwt_server(|c| c.jwt_admin_claim = Some("role=admin".into())).await;
    let new_show = json!({
        "title": "T", "starts_at": "2030-01-01T20:00:00Z",
        "prices": {"standard": 1000}, "rows": [{"row": "A", "seats": 4}]
    });
    let admin = hs256(&json!({"sub": "ops", "exp": now() + 600, "role": "admin"}));
    let res = bearer(s.post("/shows"), &admin)
        .json(new_show.clone())
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let show = res.json["id"].as_str().unwrap().to_owned();
    let roles = hs256(&json!({"sub": "ops", "exp": now() + 600, "role": ["staff", "admin"]}));
    let res = bearer(s.post("/shows"), &roles)
        .json(new_show.clone())
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    // ADMIN_TOKEN is the admin in jwt mode too.
    let res = s.post("/shows").admin().json(new_show.clone()).send().await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    for (case, claims) in [
        (
            "role user",
            json!({"sub": "bob", "exp": now() + 600, "role": "user"}),
        ),
        (
            "roles without admin",
            json!({"sub": "bob", "exp": now() + 600, "role": ["user"]}),
        ),
        ("no role", json!({"sub": "bob", "exp": now() + 600})),
        (
            "role an object",
            json!({"sub": "bob", "exp": now() + 600, "role": {"admin": true}}),
        ),
    ] {
        let res = bearer(s.post("/shows"), &hs256(&claims))
            .json(new_show.clone())
            .send()
            .await;
        assert_eq!(res.status, StatusCode::FORBIDDEN, "{case}: {}", res.text());
        assert_eq!(res.error(), "forbidden", "{case}");
    }
    let res = s.post("/shows").json(new_show).send().await;
    assert_refused(&res, "token_missing", "admin route, no token");

    // The admin (by claim) acts on anybody's hold; the admin token names no user.
    let alice = hs256(&claims("alice"));
    let res = hold_with(&s, &show, &alice).await;
    let hold = res.json["hold_id"].as_str().unwrap().to_owned();
    let res = bearer(s.post(&format!("/holds/{hold}/add")), &admin)
        .json(json!({"seats": ["A2"]}))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let res = s
        .post(&format!("/shows/{show}/holds"))
        .admin()
        .json(json!({"seats": ["A3"]}))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.text());
    assert_eq!(res.error(), "forbidden");
}

#[tokio::test]
async fn without_admin_token_or_claim_admin_endpoints_are_disabled() {
    let s = jwt_server(|c| c.admin_token = None).await;
    let res = bearer(s.post("/shows"), &hs256(&claims("alice")))
        .json(json!({"title": "T", "starts_at": "2030-01-01T20:00:00Z",
                     "prices": {"standard": 1}, "rows": [{"row": "A", "seats": 1}]}))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.text());
}

#[tokio::test]
async fn public_reads_need_no_token_and_a_bad_one_is_still_refused() {
    let s = jwt_server(|_| {}).await;
    let show = s.show(&[("A", 4)]).await;
    let res = s.get(&format!("/shows/{show}/seats")).send().await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let res = bearer(
        s.get(&format!("/shows/{show}/seats")),
        &hs256(&claims("alice")),
    )
    .send()
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let expired = hs256(&json!({"sub": "alice", "exp": now() - 600}));
    let res = bearer(s.get(&format!("/shows/{show}/seats")), &expired)
        .send()
        .await;
    assert_refused(&res, "token_expired", "seat map");
}

#[tokio::test]
async fn get_auth_tells_the_mode_and_who_the_credentials_name() {
    let s = jwt_server(|c| c.jwt_admin_claim = Some("role=admin".into())).await;
    let res = s.get("/auth").send().await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(
        res.json,
        json!({"mode": "jwt", "user": null, "admin": false})
    );
    let res = bearer(s.get("/auth"), &hs256(&claims("alice")))
        .send()
        .await;
    assert_eq!(
        res.json,
        json!({"mode": "jwt", "user": "alice", "admin": false})
    );
    let admin = hs256(&json!({"sub": "ops", "exp": now() + 60, "role": "admin"}));
    let res = bearer(s.get("/auth"), &admin).send().await;
    assert_eq!(
        res.json,
        json!({"mode": "jwt", "user": "ops", "admin": true})
    );
    let res = s.get("/auth").admin().send().await;
    assert_eq!(
        res.json,
        json!({"mode": "jwt", "user": null, "admin": true})
    );
    let res = bearer(s.get("/auth"), "not.a.token").send().await;
    assert_refused(&res, "token_malformed", "GET /auth");

    let h = TestServer::start().await;
    let res = h.get("/auth").send().await;
    assert_eq!(
        res.json,
        json!({"mode": "header", "user": null, "admin": false})
    );
    let res = h.get("/auth").user("bob").send().await;
    assert_eq!(
        res.json,
        json!({"mode": "header", "user": "bob", "admin": false})
    );
    let res = h.get("/auth").admin().send().await;
    assert_eq!(
        res.json,
        json!({"mode": "header", "user": null, "admin": true})
    );
    let res = h.get("/auth").user("b o b").send().await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(res.error(), "unauthorized");
    // Header mode is unchanged: a JWT is no admin token there.
    let res = bearer(h.post("/shows"), &hs256(&claims("alice")))
        .json(json!({}))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(res.error(), "unauthorized");
    let _ = ADMIN;
}
