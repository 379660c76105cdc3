//! Endpoints: what bad requests get, and an endpoint whose retries run out marked
//! failing (in `GET /webhooks/{id}` and `/metrics`) until a delivery succeeds.

use super::{all_deliveries, create_hook, ALL, PATIENCE};
use crate::common::receiver::Receiver;
use crate::common::TestServer;
use hyper::StatusCode;
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_that_runs_out_of_retries_marks_its_endpoint_failing() {
    let mut rx = Receiver::down_from_start().await;
    let mut s = TestServer::start_with(|c| {
        c.webhook_timeout_ms = 500;
        c.webhook_retry_seconds = 1;
    })
    .await;
    let (hook, secret) = create_hook(&s, &rx.url()).await;
    let show = s.show(&[("A", 8)]).await;
    s.hold(&show, "alice", &["A1"]).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let r = s.get(&format!("/webhooks/{hook}")).admin().send().await;
        assert!(r.json.get("secret").is_none(), "the secret is shown once");
        if r.json["failing_since"].is_string() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never marked failing: {}",
            r.json
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let d = all_deliveries(&s, &hook, 50).await;
    assert_eq!(d[0]["status"], "failed", "{:?}", d);
    assert!(d[0]["failed_at"].is_string());
    let metrics = wait_for_metric(&s, "booking_webhooks_failing 1").await;
    assert!(
        metrics.contains("booking_webhook_deliveries_total{result=\"gave_up\"} 1"),
        "{metrics}"
    );

    // Back: the next event is delivered and the mark is cleared.
    rx.up().await;
    s.hold(&show, "bob", &["A2"]).await;
    rx.wait_for(PATIENCE, "the next event", |g| {
        g.iter().any(|g| g.answered == 204)
    })
    .await;
    let verifier = standardwebhooks::Webhook::new(&secret).unwrap();
    verifier
        .verify(&rx.got()[0].body, &rx.got()[0].headers)
        .unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let r = s.get(&format!("/webhooks/{hook}")).admin().send().await;
        if r.json.get("failing_since").is_none() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still failing: {}",
            r.json
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_for_metric(&s, "booking_webhooks_failing 0").await;
    s.stop().await;
}

async fn wait_for_metric(s: &TestServer, line: &str) -> String {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let m = s.get("/metrics").send().await.text();
        if m.lines().any(|l| l == line) {
            return m;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {line:?} in /metrics:\n{m}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn bad_webhook_requests_get_documented_errors() {
    let mut s = TestServer::start().await;
    let url = "http://127.0.0.1:9/hook";
    let r = s
        .post("/webhooks")
        .json(json!({"url": url, "events": ALL}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    for (body, field) in [
        (
            json!({"url": "ftp://h/x", "events": ["hold.created"]}),
            "url",
        ),
        (
            json!({"url": "http://u:p@h/x", "events": ["hold.created"]}),
            "url",
        ),
        (
            json!({"url": format!("http://h/{}", "a".repeat(2048)), "events": ["hold.created"]}),
            "url",
        ),
        (json!({"url": url, "events": []}), "events"),
        (json!({"url": url, "events": ["seat.moved"]}), "events"),
        (
            json!({"url": url, "events": ["hold.created"], "shows": []}),
            "shows",
        ),
        (
            json!({"url": url, "events": ["hold.created"], "shows": ["x"]}),
            "shows",
        ),
        (
            json!({"url": url, "events": ["hold.created"], "shows": null}),
            "shows",
        ),
        (
            json!({"url": url, "events": ["hold.created"], "secret": "mine"}),
            "",
        ),
        (json!({"events": ["hold.created"]}), ""),
    ] {
        let r = s.post("/webhooks").admin().json(body.clone()).send().await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text());
        assert_eq!(r.error(), "invalid_request");
        if !field.is_empty() {
            assert_eq!(r.json["field"], field, "{body}: {}", r.text());
        }
    }
    let big = format!(
        "{{\"url\": \"{url}\", \"events\": [{}]}}",
        "\"hold.created\",".repeat(7000) + "\"hold.created\""
    );
    let r = s
        .post("/webhooks")
        .admin()
        .raw(big)
        .header("content-type", "application/json")
        .send()
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    let r = s
        .post("/webhooks")
        .admin()
        .json(json!({"url": url, "events": ALL, "shows": ["999"]}))
        .send()
        .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::NOT_FOUND, "show_not_found")
    );

    let show = s.show(&[("A", 2)]).await;
    let r = s
        .post("/webhooks")
        .admin()
        .json(json!({"url": url, "events": ["hold.created", "hold.created"], "shows": [show]}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json["events"], json!(["hold.created"]));
    assert_eq!(r.json["shows"], json!([show]));
    assert!(r.json["secret"].as_str().unwrap().starts_with("whsec_"));
    let id = r.json["id"].as_str().unwrap().to_owned();
    let path = format!("/webhooks/{id}");
    assert_eq!(s.get(&path).send().await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(s.get(&path).admin().send().await.status, StatusCode::OK);
    for bad in [
        "limit=0",
        "limit=201",
        "limit=x",
        "limit=07",
        "cursor=zz",
        "cursor=d",
    ] {
        let r = s
            .get(&format!("{path}/deliveries?{bad}"))
            .admin()
            .send()
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text());
    }
    let r = s.get(&format!("{path}/deliveries")).admin().send().await;
    assert_eq!(r.json, json!({"deliveries": []}));
    for missing in [
        "/webhooks/nope",
        "/webhooks/0B6C2F1E-5D0A-4C1E-9A57-3F7F2D9B8E11",
    ] {
        let r = s.get(missing).admin().send().await;
        assert_eq!(
            (r.status, r.error()),
            (StatusCode::NOT_FOUND, "webhook_not_found")
        );
    }
    assert_eq!(
        s.delete(&path).admin().send().await.status,
        StatusCode::NO_CONTENT
    );
    let r = s.delete(&path).admin().send().await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::NOT_FOUND, "webhook_not_found")
    );
    let r = s.get(&format!("{path}/deliveries")).admin().send().await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::NOT_FOUND, "webhook_not_found")
    );
    let r = s.call(hyper::Method::PUT, "/webhooks").admin().send().await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_endpoint_is_spoken_to_over_tls() {
    // A plain-HTTP receiver behind an https URL: the server must open TLS, which the
    // receiver cannot answer, so every attempt fails with a TLS error and the receiver
    // never sees a webhook request.
    let rx = Receiver::start().await;
    let mut s = TestServer::start_with(|c| c.webhook_timeout_ms = 1000).await;
    let (hook, _) = create_hook(&s, &format!("https://{}/hook", rx.addr)).await;
    let show = s.show(&[("A", 2)]).await;
    s.hold(&show, "alice", &["A1"]).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let d = loop {
        let d = all_deliveries(&s, &hook, 50).await;
        if d.first().is_some_and(|d| d["last_error"].is_string()) {
            break d;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no failed attempt: {d:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // rustls reading the receiver's plain "HTTP/1.1 400" as a TLS record.
    let error = d[0]["last_error"].as_str().unwrap();
    assert!(error.contains("corrupt message"), "{error}");
    assert_eq!(d[0]["status"], "pending");
    assert!(d[0].get("last_status").is_none(), "{}", d[0]);
    assert!(rx.got().is_empty(), "the receiver got a request in clear");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_finished_deliveries_are_pruned_and_pending_ones_kept() {
    let mut rx = Receiver::start().await;
    let mut s = TestServer::start().await;
    let (hook, _) = create_hook(&s, &rx.url()).await;
    let show = s.show(&[("A", 4)]).await;
    s.hold(&show, "alice", &["A1"]).await;
    rx.wait_for(PATIENCE, "the first event", |g| !g.is_empty())
        .await;
    rx.down();
    s.hold(&show, "bob", &["A2"]).await;
    let client = crate::common::audit::connect(&s.database_url).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while client
        .query_one("SELECT count(*) FROM webhook_deliveries", &[])
        .await
        .unwrap()
        .get::<_, i64>(0)
        < 2
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the second event was not routed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    client
        .execute(
            "UPDATE webhook_deliveries SET created_at = now() - interval '8 days'",
            &[],
        )
        .await
        .unwrap();
    let pool = s.pool.clone();
    let c = pool.get().await.unwrap();
    let week = Duration::from_secs(7 * 24 * 3600);
    let n = booking_core::webhooks::prune(&c, week, 100).await.unwrap();
    assert_eq!(n, 1, "the delivered one is pruned");
    let d = all_deliveries(&s, &hook, 50).await;
    assert_eq!(d.len(), 1);
    assert_eq!(d[0]["status"], "pending");
    assert_eq!(
        booking_core::webhooks::prune(&c, week, 100).await.unwrap(),
        0
    );
    s.stop().await;
}

/// A private CA, and a certificate of 127.0.0.1 it signed: (CA's PEM, server config).
fn private_ca() -> (String, tokio_rustls::rustls::ServerConfig) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    use tokio_rustls::rustls;
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .unwrap();
    (ca.pem(), config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_endpoint_behind_a_private_ca_is_delivered_to() {
    let (ca, config) = private_ca();
    let rx = Receiver::start_tls(config).await;
    assert!(rx.url().starts_with("https://127.0.0.1:"));
    let ca_file = std::env::temp_dir().join(format!("webhook-ca-{}.pem", uuid::Uuid::new_v4()));
    std::fs::write(&ca_file, ca).unwrap();
    let mut s = TestServer::start_with(|c| c.webhook_ca_file = Some(ca_file.clone())).await;
    let (_, secret) = create_hook(&s, &rx.url()).await;
    let show = s.show(&[("A", 2)]).await;
    s.hold(&show, "alice", &["A1"]).await;
    rx.wait_for(PATIENCE, "the event over TLS", |g| {
        g.iter().any(|g| g.answered == 204)
    })
    .await;
    let got = rx.got();
    standardwebhooks::Webhook::new(&secret)
        .unwrap()
        .verify(&got[0].body, &got[0].headers)
        .unwrap();
    assert_eq!(got[0].json["type"], "hold.created");
    s.stop().await;
    let _ = std::fs::remove_file(&ca_file);

    // Without the CA the same receiver is not trusted: the attempt fails.
    let mut s = TestServer::start().await;
    let (hook, _) = create_hook(&s, &rx.url()).await;
    let show = s.show(&[("A", 2)]).await;
    s.hold(&show, "alice", &["A1"]).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let d = loop {
        let d = all_deliveries(&s, &hook, 50).await;
        if d.first().is_some_and(|d| d["last_error"].is_string()) {
            break d;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no failed attempt: {d:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let error = d[0]["last_error"].as_str().unwrap();
    assert!(error.contains("certificate"), "{error}");
    assert_eq!(
        rx.got().len(),
        1,
        "nothing reached the receiver without trust"
    );
    s.stop().await;
}
