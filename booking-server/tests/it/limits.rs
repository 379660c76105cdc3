//! Browser-facing safety and limits per caller (issue 19, points 2 and 3): CORS for the
//! configured origins only, the security headers of the page and of every answer, and
//! `429 rate_limited` per user and per address, decided before any database work.

use crate::common::{fresh_database, TestServer};
use booking_server::rate_limit::{Clock, Limit, Rate, RateLimits};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use std::net::SocketAddr;

const SITE: &str = "https://tickets.example.com";

/// A request without the contract check of `common::Call` (a preflight is no operation
/// of the document): status and headers.
async fn raw(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let res = sender
        .send_request(b.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let (parts, body) = res.into_parts();
    let _ = body.collect().await;
    (parts.status, parts.headers)
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn varies_by_origin(h: &HeaderMap) -> bool {
    h.get_all("vary")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("origin"))
        })
}

fn rate(text: &str) -> Option<Rate> {
    Some(Rate::parse(text).unwrap())
}

#[tokio::test]
async fn an_allowed_origin_gets_its_preflight_and_cors_headers_and_another_gets_none() {
    let s = TestServer::start_with(|c| {
        c.cors_origins = Some(format!("{SITE}, http://localhost:3000"));
    })
    .await;
    let preflight = [
        ("origin", SITE),
        ("access-control-request-method", "POST"),
        (
            "access-control-request-headers",
            "content-type, x-user-id, idempotency-key",
        ),
    ];
    let (status, h) = raw(s.addr, Method::OPTIONS, "/shows/1/holds", &preflight).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(header(&h, "access-control-allow-origin"), Some(SITE));
    let methods = header(&h, "access-control-allow-methods").unwrap();
    for m in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
        assert!(methods.contains(m), "{methods}");
    }
    let allowed = header(&h, "access-control-allow-headers")
        .unwrap()
        .to_ascii_lowercase();
    for name in [
        "content-type",
        "authorization",
        "x-user-id",
        "idempotency-key",
        "if-none-match",
    ] {
        assert!(allowed.contains(name), "{allowed}");
    }
    assert!(
        header(&h, "access-control-max-age")
            .unwrap()
            .parse::<u32>()
            .unwrap()
            > 0
    );
    assert!(varies_by_origin(&h));
    assert!(h.get("access-control-allow-credentials").is_none());

    // A simple request from the page: the origin echoed, the headers a client reads
    // exposed; a refusal (here a 404) carries them too, so the page can read it.
    let (status, h) = raw(s.addr, Method::GET, "/shows", &[("origin", SITE)]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&h, "access-control-allow-origin"), Some(SITE));
    let exposed = header(&h, "access-control-expose-headers").unwrap();
    for name in ["ETag", "Retry-After", "Location", "Idempotent-Replayed"] {
        assert!(exposed.contains(name), "{exposed}");
    }
    assert!(varies_by_origin(&h));
    assert!(h.get("access-control-allow-credentials").is_none());
    let (status, h) = raw(s.addr, Method::GET, "/shows/999", &[("origin", SITE)]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(header(&h, "access-control-allow-origin"), Some(SITE));

    // Another origin: no CORS header at all; the preflight is an ordinary OPTIONS
    // (405), the request is answered as for any client that is not a browser.
    for other in [
        "https://evil.example.com",
        "https://tickets.example.com.evil.com",
        "null",
    ] {
        let mut other_preflight = preflight;
        other_preflight[0] = ("origin", other);
        let (status, h) = raw(s.addr, Method::OPTIONS, "/shows/1/holds", &other_preflight).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{other}");
        assert!(h.get("access-control-allow-origin").is_none(), "{other}");
        let (status, h) = raw(s.addr, Method::GET, "/shows", &[("origin", other)]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(h.get("access-control-allow-origin").is_none(), "{other}");
        assert!(h.get("access-control-expose-headers").is_none(), "{other}");
    }
}

#[tokio::test]
async fn without_cors_origins_no_answer_has_a_cors_header() {
    let s = TestServer::start().await;
    let (status, h) = raw(
        s.addr,
        Method::OPTIONS,
        "/shows",
        &[("origin", SITE), ("access-control-request-method", "GET")],
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(h.get("access-control-allow-origin").is_none());
    let (_, h) = raw(s.addr, Method::GET, "/shows", &[("origin", SITE)]).await;
    assert!(h.keys().all(|k| !k.as_str().starts_with("access-control-")));
    assert!(!varies_by_origin(&h));
}

#[tokio::test]
async fn the_page_and_its_files_carry_a_strict_policy_and_every_answer_nosniff() {
    let s = TestServer::start().await;
    for path in [
        "/",
        "/app.js",
        "/areas.js",
        "/cart.js",
        "/show.js",
        "/bigmap.js",
        "/style.css",
    ] {
        let r = s.get(path).send().await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        let csp = r.header("content-security-policy").unwrap();
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "object-src 'none'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe"), "{path}: {csp}");
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"), "{path}");
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{path}");
    }
    // JSON answers, a success and errors.
    let show = s.show(&[("A", 2)]).await;
    for path in [
        "/shows".to_owned(),
        format!("/shows/{show}/seats"),
        "/shows/999".into(),
        "/nowhere".into(),
    ] {
        let r = s.get(&path).send().await;
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn input_quoted_back_in_an_error_is_json_escaped_never_markup() {
    let s = TestServer::start().await;
    let show = s.show(&[("A", 2)]).await;
    let hostile = "</script><script>alert(1)</script>\"\\\u{2028}";
    let r = s
        .post(&format!("/shows/{show}/holds"))
        .user("alice")
        .json(json!({"seats": [hostile]}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error(), "invalid_request");
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    // The body is JSON (parsed by `send`), and it says what was sent, as data.
    let message = r.json["message"].as_str().unwrap();
    assert!(message.contains("</script>"), "{message}");
    let raw = r.text();
    assert!(
        !raw.contains("\"\\\u{2028}"),
        "a raw quote or control slipped through: {raw}"
    );
}

#[test]
fn the_page_has_no_inline_script_or_style_and_builds_no_html_from_data() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/web");
    let index = std::fs::read_to_string(format!("{dir}/index.html")).unwrap();
    for tag in index.match_indices("<script").map(|(i, _)| &index[i..]) {
        let open = &tag[..tag.find('>').unwrap()];
        assert!(open.contains(" src=\"/"), "inline script: {open}");
        assert!(
            tag[open.len() + 1..].starts_with("</script>"),
            "inline script body"
        );
    }
    assert!(!index.contains("<style"), "inline <style>");
    assert!(!index.contains(" style="), "inline style attribute");
    assert!(!index.contains(" on"), "inline event handler");
    for file in ["app.js", "areas.js", "cart.js", "show.js", "bigmap.js"] {
        let js = std::fs::read_to_string(format!("{dir}/{file}")).unwrap();
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
        ] {
            assert!(!js.contains(sink), "{file} uses {sink}");
        }
    }
}

#[tokio::test]
async fn holds_past_the_user_limit_are_refused_429_before_any_database_work() {
    let s = TestServer::start_with(|c| {
        c.rate_holds_per_user = rate("1/h");
        c.rate_holds_per_user_burst = Some(3);
    })
    .await;
    let show = s.show(&[("A", 10)]).await;
    let hold = s.hold(&show, "alice", &["A1"]).await;
    s.hold(&show, "alice", &["A2"]).await;
    let added = s
        .post(&format!("/holds/{hold}/add"))
        .user("alice")
        .json(json!({"seats": ["A3"]}))
        .send()
        .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.text());
    let holds_before = s.count("SELECT count(*) FROM holds").await;
    let seats_before = s.count("SELECT count(*) FROM hold_seats").await;

    // Her bucket is empty: a hold, best available, an add, and a hold on a show that
    // does not exist (429, not 404: nothing was looked up) are all refused.
    for (path, body) in [
        (format!("/shows/{show}/holds"), json!({"seats": ["A4"]})),
        (format!("/shows/{show}/holds/best"), json!({"count": 1})),
        (format!("/holds/{hold}/add"), json!({"seats": ["A5"]})),
        (
            "/shows/987654321/holds".to_owned(),
            json!({"seats": ["A1"]}),
        ),
    ] {
        let r = s.post(&path).user("alice").json(body).send().await;
        assert_eq!(
            r.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{path}: {}",
            r.text()
        );
        assert_eq!(r.error(), "rate_limited");
        let wait: u32 = r.header("retry-after").unwrap().parse().unwrap();
        assert!(wait >= 1, "{wait}");
    }
    assert_eq!(s.count("SELECT count(*) FROM holds").await, holds_before);
    assert_eq!(
        s.count("SELECT count(*) FROM hold_seats").await,
        seats_before
    );

    // Another user is not limited by her.
    s.hold(&show, "bob", &["A6"]).await;
    // The admin is not limited at all.
    let r = s
        .post(&format!("/holds/{hold}/add"))
        .admin()
        .json(json!({"seats": ["A7"]}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    let metrics = s.get("/metrics").send().await.text();
    for series in [
        "booking_rate_limited_total{limit=\"user\"} 4\n",
        "booking_rate_limited_total{limit=\"ip\"} 0\n",
        "booking_http_requests_total{route=\"POST /shows/{show_id}/holds\",status=\"429\"} 2\n",
    ] {
        assert!(
            metrics.contains(series),
            "metrics lack {series}:\n{metrics}"
        );
    }
}

#[tokio::test]
async fn holds_past_the_address_limit_are_refused_whoever_sends_them() {
    let s = TestServer::start_with(|c| {
        c.rate_holds_per_ip = rate("1/h");
        c.rate_holds_per_ip_burst = Some(3);
    })
    .await;
    let show = s.show(&[("A", 10)]).await;
    for (i, user) in ["u1", "u2", "u3"].iter().enumerate() {
        s.hold(&show, user, &[&format!("A{}", i + 1)]).await;
    }
    let before = s.count("SELECT count(*) FROM holds").await;
    let r = s
        .post(&format!("/shows/{show}/holds"))
        .user("u4")
        .json(json!({"seats": ["A4"]}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
    assert_eq!(r.error(), "rate_limited");
    assert!(r.header("retry-after").unwrap().parse::<u32>().unwrap() >= 1);
    assert_eq!(s.count("SELECT count(*) FROM holds").await, before);
    let metrics = s.get("/metrics").send().await.text();
    assert!(
        metrics.contains("booking_rate_limited_total{limit=\"ip\"} 1\n"),
        "{metrics}"
    );
}

/// A server whose user limit (`burst` tokens, 1 a second) runs on a manual clock.
async fn on_a_manual_clock(burst: u32) -> (TestServer, Clock) {
    let clock = Clock::manual();
    let limits = RateLimits::new(
        Some(Limit {
            rate: Rate::parse("1/s").unwrap(),
            burst,
        }),
        None,
        100_000,
        clock.clone(),
    );
    let s = TestServer::start_adjusted(
        &fresh_database().await,
        |_| {},
        |state| {
            state.rate_limits = limits;
        },
    )
    .await;
    (s, clock)
}

#[tokio::test]
async fn a_refilled_bucket_lets_the_user_in_again() {
    let (s, clock) = on_a_manual_clock(1).await;
    let show = s.show(&[("A", 4)]).await;
    s.hold(&show, "alice", &["A1"]).await;
    let r = s
        .post(&format!("/shows/{show}/holds"))
        .user("alice")
        .json(json!({"seats": ["A2"]}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.header("retry-after"), Some("1"));
    clock.advance(std::time::Duration::from_secs(1));
    s.hold(&show, "alice", &["A2"]).await;
}

#[tokio::test]
async fn concurrent_holds_of_one_user_pass_exactly_their_burst_and_others_all_pass() {
    let (s, _clock) = on_a_manual_clock(10).await;
    let show = s.show(&[("A", 50), ("B", 50)]).await;
    // 50 holds of one user and 50 of 50 other users, all at once, each on its own seat.
    let mut tasks = Vec::new();
    for i in 1..=50 {
        for (row, user) in [("A", "mallory".to_owned()), ("B", format!("user-{i}"))] {
            let call = s
                .post(&format!("/shows/{show}/holds"))
                .user(&user)
                .json(json!({"seats": [format!("{row}{i}")]}));
            tasks.push(tokio::spawn(
                async move { (user, call.send().await.status) },
            ));
        }
    }
    let (mut mallory, mut others) = (Vec::new(), Vec::new());
    for t in tasks {
        let (user, status) = t.await.unwrap();
        if user == "mallory" {
            mallory.push(status)
        } else {
            others.push(status)
        }
    }
    let created = |v: &[StatusCode]| v.iter().filter(|s| **s == StatusCode::CREATED).count();
    let limited = mallory
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((created(&mallory), limited), (10, 40), "{mallory:?}");
    assert_eq!(created(&others), 50, "{others:?}");
    // The database agrees: her 10 holds, theirs, nothing of the refused.
    let count = |user: &'static str| {
        let pool = s.pool.clone();
        async move {
            let c = pool.get().await.unwrap();
            let n: i64 = c
                .query_one("SELECT count(*) FROM holds WHERE user_id = $1", &[&user])
                .await
                .unwrap()
                .get(0);
            n
        }
    };
    assert_eq!(count("mallory").await, 10);
    assert_eq!(s.count("SELECT count(*) FROM holds").await, 60);
}

#[tokio::test]
async fn queue_joins_past_the_user_limit_are_refused_429_before_any_database_work() {
    let s = TestServer::start_with(|c| {
        c.rate_holds_per_user = rate("1/h");
        c.rate_holds_per_user_burst = Some(1);
    })
    .await;
    let show = s.show(&[("A", 10)]).await;
    // Her one token: the join is looked up and refused (the show has no queue).
    let first = s
        .post(&format!("/shows/{show}/queue"))
        .user("alice")
        .send()
        .await;
    assert_eq!(first.status, StatusCode::CONFLICT, "{}", first.text());
    assert_eq!(first.error(), "queue_not_enabled");
    // Then 429, even for a show that does not exist (nothing was looked up).
    for path in [
        format!("/shows/{show}/queue"),
        "/shows/987654321/queue".to_owned(),
    ] {
        let r = s.post(&path).user("alice").send().await;
        assert_eq!(
            r.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{path}: {}",
            r.text()
        );
        assert_eq!(r.error(), "rate_limited");
        assert!(r.header("retry-after").is_some());
    }
    assert_eq!(s.count("SELECT count(*) FROM queue_entries").await, 0);
    // Another user still gets the show's own answer.
    let bob = s
        .post(&format!("/shows/{show}/queue"))
        .user("bob")
        .send()
        .await;
    assert_eq!(bob.error(), "queue_not_enabled");
}
