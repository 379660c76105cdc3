//! The binary: `booking-server token` mints what the server accepts, and a bad
//! authentication setting stops the server at start, naming it.

use super::{hold_with, jwt_server, key_path, SECRET};
use crate::common::TestServer;
use booking_server::config::AuthMode;
use hyper::StatusCode;
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_booking-server");

fn bin() -> Command {
    let mut c = Command::new(BIN);
    for var in [
        "AUTH_MODE",
        "JWT_SECRET",
        "JWT_PUBLIC_KEY_FILE",
        "JWKS_FILE",
        "JWT_ISSUER",
        "JWT_AUDIENCE",
        "JWT_ADMIN_CLAIM",
        "JWT_LEEWAY_SECONDS",
        "ADMIN_TOKEN",
        "BIND_ADDR",
    ] {
        c.env_remove(var);
    }
    c.kill_on_drop(true);
    c
}

async fn mint(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut c = bin();
    c.arg("token").args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().await.unwrap();
    assert!(
        out.status.success(),
        "token {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test]
async fn the_token_command_mints_what_the_server_accepts() {
    let s = jwt_server(|c| {
        c.jwt_issuer = Some("dev".into());
        c.jwt_audience = Some("booking".into());
        c.jwt_admin_claim = Some("role=admin".into());
    })
    .await;
    let env = [
        ("JWT_SECRET", SECRET),
        ("JWT_ISSUER", "dev"),
        ("JWT_AUDIENCE", "booking"),
        ("JWT_ADMIN_CLAIM", "role=admin"),
    ];
    let admin = mint(&["--user", "ops", "--ttl", "600", "--admin"], &env).await;
    let res = super::bearer(s.post("/shows"), &admin)
        .json(
            serde_json::json!({"title": "T", "starts_at": "2030-01-01T20:00:00Z",
            "prices": {"standard": 1}, "rows": [{"row": "A", "seats": 2}]}),
        )
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let show = res.json["id"].as_str().unwrap().to_owned();
    let alice = mint(&["--user", "alice"], &env).await;
    let res = hold_with(&s, &show, &alice).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    assert_eq!(res.json["user_id"], "alice");

    // Signed with a private key, for a server holding its public half.
    let p = TestServer::start_with(|c| {
        c.auth_mode = AuthMode::Jwt;
        c.jwt_public_key_file = Some(key_path("ed.pub"));
    })
    .await;
    let show = p.show(&[("A", 2)]).await;
    let key = key_path("ed.key");
    let bob = mint(&["--user", "bob", "--key", key.to_str().unwrap()], &[]).await;
    let res = hold_with(&p, &show, &bob).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());

    let out = bin()
        .args(["token", "--user", "alice"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("JWT_SECRET"));
}

#[tokio::test]
async fn bad_authentication_settings_stop_the_server_naming_them() {
    let secret = SECRET;
    let pem = key_path("rsa.pub");
    let pem = pem.to_str().unwrap();
    let private = key_path("rsa.key");
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("AUTH_MODE", "jwt")],
            "JWT_SECRET, JWT_PUBLIC_KEY_FILE or JWKS_FILE",
        ),
        (
            &[("AUTH_MODE", "jwt"), ("JWT_SECRET", "short")],
            "JWT_SECRET",
        ),
        (
            &[
                ("AUTH_MODE", "jwt"),
                ("JWT_SECRET", secret),
                ("JWT_PUBLIC_KEY_FILE", pem),
            ],
            "only one of",
        ),
        (
            &[
                ("AUTH_MODE", "jwt"),
                ("JWT_PUBLIC_KEY_FILE", "/nonexistent.pem"),
            ],
            "JWT_PUBLIC_KEY_FILE",
        ),
        (
            &[
                ("AUTH_MODE", "jwt"),
                ("JWT_PUBLIC_KEY_FILE", private.to_str().unwrap()),
            ],
            "JWT_PUBLIC_KEY_FILE",
        ),
        (&[("AUTH_MODE", "jwt"), ("JWKS_FILE", pem)], "JWKS_FILE"),
        (
            &[
                ("AUTH_MODE", "jwt"),
                ("JWT_SECRET", secret),
                ("JWT_ADMIN_CLAIM", "admin"),
            ],
            "JWT_ADMIN_CLAIM",
        ),
        (
            &[
                ("AUTH_MODE", "jwt"),
                ("JWT_SECRET", secret),
                ("JWT_LEEWAY_SECONDS", "9999"),
            ],
            "leeway",
        ),
        (&[("JWT_SECRET", secret)], "AUTH_MODE"),
        (&[("AUTH_MODE", "cookie")], "auth-mode"),
    ];
    for (env, expect) in cases {
        let mut c = bin();
        c.env("DATABASE_URL", "postgres://127.0.0.1:1/none");
        for (k, v) in *env {
            c.env(k, v);
        }
        let out = c.output().await.unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{env:?} was accepted: {err}");
        assert!(
            err.contains(expect),
            "{env:?}: the message does not name {expect}: {err}"
        );
    }
}

#[tokio::test]
async fn header_mode_on_a_public_address_warns_at_start() {
    let mut c = bin();
    c.env("DATABASE_URL", std::env::var("DATABASE_URL").unwrap())
        .env("BIND_ADDR", "0.0.0.0:0")
        .env("LOG_FORMAT", "json")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let mut warned = false;
    let found = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("AUTH_MODE=header trusts X-User-Id") {
                warned = true;
            }
            if line.contains("\"listening\"") {
                // The warning follows the listening line; read one more.
                if let Some(next) = lines.next_line().await.unwrap() {
                    warned |= next.contains("AUTH_MODE=header trusts X-User-Id");
                }
                break;
            }
        }
    })
    .await;
    assert!(found.is_ok(), "the server did not start");
    assert!(warned, "no warning about trusting X-User-Id on 0.0.0.0");
    child.kill().await.unwrap();
}
