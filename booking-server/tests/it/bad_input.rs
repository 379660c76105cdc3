//! Bad input never hurts: each malformed, oversized, unknown or unauthorised request
//! gets its 4xx JSON error, and nothing changes in the database.

use crate::common::{raw_exchange, TestServer};
use hyper::{Method, StatusCode};
use serde_json::json;

struct Case {
    what: &'static str,
    method: Method,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
    status: StatusCode,
    code: &'static str,
}

fn case(
    what: &'static str,
    method: Method,
    path: &str,
    status: StatusCode,
    code: &'static str,
) -> Case {
    Case {
        what,
        method,
        path: path.to_owned(),
        headers: vec![("x-user-id", "alice".to_owned())],
        body: None,
        status,
        code,
    }
}

impl Case {
    fn body(mut self, b: impl Into<Vec<u8>>) -> Case {
        self.body = Some(b.into());
        self
    }
    fn json(self, v: serde_json::Value) -> Case {
        self.body(v.to_string())
    }
    fn no_user(mut self) -> Case {
        self.headers.retain(|(k, _)| *k != "x-user-id");
        self
    }
    fn header(mut self, k: &'static str, v: impl Into<String>) -> Case {
        self.headers.push((k, v.into()));
        self
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_their_error_and_change_nothing() {
    let mut s = TestServer::start().await;
    let show = s.show(&[("A", 12)]).await;
    let hold = s.hold(&show, "alice", &["A12"]).await;
    let holds = format!("/shows/{show}/holds");
    let best = format!("/shows/{show}/holds/best");
    let confirm = format!("/holds/{hold}/confirm");
    let extend = format!("/holds/{hold}/extend");
    use Method as M;
    use StatusCode as S;
    let bad = S::BAD_REQUEST;
    let inv = "invalid_request";
    let eleven: Vec<String> = (1..=11).map(|n| format!("A{n}")).collect();
    let big_show_rows: Vec<serde_json::Value> = (0..501)
        .map(|i| {
            let l = |n: usize| (b'A' + (n % 26) as u8) as char;
            json!({"row": format!("{}{}{}", l(i / 676), l(i / 26), l(i)), "seats": 200})
        })
        .collect();

    let cases = vec![
        // Holds: JSON shape.
        case("malformed JSON", M::POST, &holds, bad, inv).body("{\"seats\": ["),
        case("not JSON at all", M::POST, &holds, bad, inv).body("seats=A1"),
        case("wrong type of seats", M::POST, &holds, bad, inv).json(json!({"seats": "A1"})),
        case("wrong type of a seat", M::POST, &holds, bad, inv).json(json!({"seats": [1]})),
        case("missing seats", M::POST, &holds, bad, inv).json(json!({})),
        case("unknown field", M::POST, &holds, bad, inv).json(json!({"seats": ["A1"], "sets": 1})),
        case("empty body", M::POST, &holds, bad, inv),
        case("trailing garbage", M::POST, &holds, bad, inv).body("{\"seats\": [\"A1\"]} x"),
        case("a JSON array", M::POST, &holds, bad, inv).body("[\"A1\"]"),
        case("invalid UTF-8", M::POST, &holds, bad, inv)
            .body(b"{\"seats\": [\"A\xff1\"]}".to_vec()),
        case("empty seats", M::POST, &holds, bad, inv).json(json!({"seats": []})),
        case("duplicate seats", M::POST, &holds, bad, inv).json(json!({"seats": ["A1", "A1"]})),
        case("too many seats", M::POST, &holds, bad, inv).json(json!({"seats": eleven})),
        case("lowercase label", M::POST, &holds, bad, inv).json(json!({"seats": ["a1"]})),
        case("label with spaces", M::POST, &holds, bad, inv).json(json!({"seats": [" A1"]})),
        case("zero ttl", M::POST, &holds, bad, inv)
            .json(json!({"seats": ["A1"], "ttl_seconds": 0})),
        case("negative ttl", M::POST, &holds, bad, inv)
            .json(json!({"seats": ["A1"], "ttl_seconds": -5})),
        case("huge ttl", M::POST, &holds, bad, inv)
            .json(json!({"seats": ["A1"], "ttl_seconds": 3601})),
        case("enormous ttl", M::POST, &holds, bad, inv)
            .json(json!({"seats": ["A1"], "ttl_seconds": 1e30})),
        case("ttl as string", M::POST, &holds, bad, inv)
            .json(json!({"seats": ["A1"], "ttl_seconds": "60"})),
        case("if_versions of another seat", M::POST, &holds, bad, inv)
            .json(json!({"seats": ["A1"], "if_versions": {"A2": "1"}})),
        case("if_versions not a map", M::POST, &holds, bad, inv)
            .json(json!({"seats": ["A1"], "if_versions": ["1"]})),
        // Best available: the same validation as holds.
        case("best: malformed JSON", M::POST, &best, bad, inv).body("{\"count\": "),
        case("best: empty body", M::POST, &best, bad, inv),
        case("best: missing count", M::POST, &best, bad, inv).json(json!({"adjacent": true})),
        case("best: zero count", M::POST, &best, bad, inv).json(json!({"count": 0})),
        case("best: negative count", M::POST, &best, bad, inv).json(json!({"count": -2})),
        case("best: too many", M::POST, &best, bad, inv).json(json!({"count": 11})),
        case("best: fractional count", M::POST, &best, bad, inv).json(json!({"count": 2.5})),
        case("best: count as string", M::POST, &best, bad, inv).json(json!({"count": "2"})),
        case("best: bad category", M::POST, &best, bad, inv)
            .json(json!({"count": 2, "category": "Premium!"})),
        case("best: category not a string", M::POST, &best, bad, inv)
            .json(json!({"count": 2, "category": 1})),
        case("best: adjacent as string", M::POST, &best, bad, inv)
            .json(json!({"count": 2, "adjacent": "yes"})),
        case("best: zero ttl", M::POST, &best, bad, inv)
            .json(json!({"count": 2, "ttl_seconds": 0})),
        case("best: unknown field", M::POST, &best, bad, inv)
            .json(json!({"count": 2, "seats": ["A1"]})),
        case(
            "best: missing X-User-Id",
            M::POST,
            &best,
            S::UNAUTHORIZED,
            "unauthorized",
        )
        .no_user()
        .json(json!({"count": 2})),
        case(
            "best: unknown show",
            M::POST,
            "/shows/424242/holds/best",
            S::NOT_FOUND,
            "show_not_found",
        )
        .json(json!({"count": 2})),
        case(
            "best: GET",
            M::GET,
            &best,
            S::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        // Who is calling.
        case(
            "missing X-User-Id",
            M::POST,
            &holds,
            S::UNAUTHORIZED,
            "unauthorized",
        )
        .no_user()
        .json(json!({"seats": ["A1"]})),
        case(
            "X-User-Id with a space",
            M::POST,
            &holds,
            S::UNAUTHORIZED,
            "unauthorized",
        )
        .no_user()
        .header("x-user-id", "al ice")
        .json(json!({"seats": ["A1"]})),
        case(
            "X-User-Id too long",
            M::POST,
            &holds,
            S::UNAUTHORIZED,
            "unauthorized",
        )
        .no_user()
        .header("x-user-id", "u".repeat(129))
        .json(json!({"seats": ["A1"]})),
        case(
            "X-User-Id twice",
            M::POST,
            &holds,
            S::UNAUTHORIZED,
            "unauthorized",
        )
        .header("x-user-id", "bob")
        .json(json!({"seats": ["A1"]})),
        case(
            "missing X-User-Id on a read",
            M::GET,
            &format!("/holds/{hold}"),
            S::UNAUTHORIZED,
            "unauthorized",
        )
        .no_user(),
        case(
            "missing X-User-Id on my bookings",
            M::GET,
            "/users/me/bookings",
            S::UNAUTHORIZED,
            "unauthorized",
        )
        .no_user(),
        case("bad Idempotency-Key", M::POST, &holds, bad, inv)
            .header("idempotency-key", "k".repeat(256))
            .json(json!({"seats": ["A1"]})),
        // Oversized body with a Content-Length.
        case(
            "body over 64 KiB",
            M::POST,
            &holds,
            S::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        )
        .body(format!(
            "{{\"seats\": [\"A1\"], \"pad\": \"{}\"}}",
            "x".repeat(70_000)
        )),
        // Unknown things.
        case(
            "unknown show",
            M::POST,
            "/shows/424242/holds",
            S::NOT_FOUND,
            "show_not_found",
        )
        .json(json!({"seats": ["A1"]})),
        case(
            "non-numeric show",
            M::POST,
            "/shows/x1/holds",
            S::NOT_FOUND,
            "show_not_found",
        )
        .json(json!({"seats": ["A1"]})),
        case(
            "unknown seat",
            M::POST,
            &holds,
            S::NOT_FOUND,
            "seat_not_found",
        )
        .json(json!({"seats": ["A1", "B1"]})),
        case(
            "non-UUID hold",
            M::POST,
            "/holds/1-zzz/confirm",
            S::NOT_FOUND,
            "hold_not_found",
        ),
        // Confirm and extend bodies.
        case("junk confirm body", M::POST, &confirm, bad, inv).body("xyz"),
        case("confirm body with fields", M::POST, &confirm, bad, inv).json(json!({"now": true})),
        case(
            "cancel body with fields",
            M::POST,
            &format!("/bookings/{show}-9d2e4a7c-3b1f-4c8e-a2d6-5e0f1b3c7a94/cancel"),
            bad,
            inv,
        )
        .json(json!({"reason": "changed my mind"})),
        // Found by schemathesis: serde fills an empty struct from `[]`.
        case("confirm body that is an array", M::POST, &confirm, bad, inv).json(json!([])),
        case("extend body that is an array", M::POST, &extend, bad, inv).json(json!([60])),
        case("hold body that is an array", M::POST, &holds, bad, inv).json(json!([["A1"]])),
        case("extend without ttl", M::POST, &extend, bad, inv).json(json!({})),
        case("extend with zero ttl", M::POST, &extend, bad, inv).json(json!({"ttl_seconds": 0})),
        // Shows: admin only, and a valid layout.
        case(
            "create show without token",
            M::POST,
            "/shows",
            S::UNAUTHORIZED,
            "unauthorized",
        )
        .json(json!({})),
        case(
            "create show with a wrong token",
            M::POST,
            "/shows",
            S::UNAUTHORIZED,
            "unauthorized",
        )
        .header("authorization", "Bearer wrong-token-wrong-token")
        .json(json!({})),
        case(
            "create show with a non-bearer header",
            M::POST,
            "/shows",
            S::UNAUTHORIZED,
            "unauthorized",
        )
        .header("authorization", "Basic YWRtaW46YWRtaW4=")
        .json(json!({})),
    ];
    let admin = format!("Bearer {}", crate::common::ADMIN);
    let show_case = |what, v: serde_json::Value| {
        case(what, M::POST, "/shows", bad, inv)
            .header("authorization", admin.clone())
            .json(v)
    };
    let base = || json!({"title": "T", "starts_at": "2030-01-01T20:00:00Z", "rows": [{"row": "A", "seats": 5}]});
    let with = |k: &str, v: serde_json::Value| {
        let mut b = base();
        b[k] = v;
        b
    };
    let show_cases = vec![
        show_case("no rows", with("rows", json!([]))),
        show_case("a row written as an array", with("rows", json!([["A", 5]]))),
        show_case(
            "zero seats",
            with("rows", json!([{"row": "A", "seats": 0}])),
        ),
        show_case(
            "201 seats",
            with("rows", json!([{"row": "A", "seats": 201}])),
        ),
        show_case(
            "lowercase row",
            with("rows", json!([{"row": "a", "seats": 5}])),
        ),
        show_case(
            "four-letter row",
            with("rows", json!([{"row": "ABCD", "seats": 5}])),
        ),
        show_case(
            "duplicate rows",
            with(
                "rows",
                json!([{"row": "A", "seats": 5}, {"row": "A", "seats": 5}]),
            ),
        ),
        show_case(
            "aisle past the row",
            with(
                "rows",
                json!([{"row": "A", "seats": 5, "aisles_after": [5]}]),
            ),
        ),
        show_case(
            "bad category",
            with(
                "rows",
                json!([{"row": "A", "seats": 5, "category": "VIP!"}]),
            ),
        ),
        show_case("empty title", with("title", json!(""))),
        show_case("long title", with("title", json!("t".repeat(201)))),
        show_case("bad time", with("starts_at", json!("tomorrow"))),
        show_case("bad currency", with("currency", json!("eur"))),
        show_case("negative price", with("prices", json!({"standard": -1}))),
        show_case("over 100,000 seats", with("rows", json!(big_show_rows))),
        show_case(
            "missing title",
            json!({"starts_at": "2030-01-01T20:00:00Z", "rows": [{"row": "A", "seats": 5}]}),
        ),
    ];

    for c in cases.into_iter().chain(show_cases) {
        let mut call = s.call(c.method.clone(), &c.path);
        for (k, v) in &c.headers {
            call = call.header(k, v);
        }
        if let Some(b) = c.body {
            call = call.raw(b);
        }
        let res = call.send().await;
        assert_eq!(res.status, c.status, "{}: {}", c.what, res.text());
        assert_eq!(res.error(), c.code, "{}", c.what);
        let text = res.text().to_lowercase();
        for leak in [
            "select ",
            "insert ",
            "update ",
            "sqlstate",
            "panicked",
            "stack backtrace",
        ] {
            assert!(
                !text.contains(leak),
                "{}: the answer leaks {leak:?}: {text}",
                c.what
            );
        }
        if c.code == inv {
            assert!(
                res.json["field"].is_string(),
                "{}: invalid_request names the field",
                c.what
            );
        }
    }

    // A body over the limit streamed without Content-Length.
    let mut req = format!(
        "POST {holds} HTTP/1.1\r\nHost: x\r\nX-User-Id: alice\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for _ in 0..10 {
        req.extend_from_slice(format!("{:x}\r\n", 8000).as_bytes());
        req.extend(std::iter::repeat_n(b' ', 8000));
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let answer = raw_exchange(s.addr, &req).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large"));

    // Nothing changed: the one hold made above, one show, no booking, no key stored.
    assert_eq!(s.count("SELECT count(*) FROM holds").await, 1);
    assert_eq!(s.count("SELECT count(*) FROM shows").await, 1);
    assert_eq!(s.count("SELECT count(*) FROM bookings").await, 0);
    assert_eq!(s.count("SELECT count(*) FROM idempotency_keys").await, 0);
    assert_eq!(
        s.count("SELECT count(*) FROM seats WHERE hold_id IS NOT NULL")
            .await,
        1
    );
    s.stop().await;
}

#[tokio::test]
async fn admin_endpoints_answer_403_when_no_admin_token_is_configured() {
    let mut s = TestServer::start_with(|c| c.admin_token = None).await;
    let body = json!({"title": "T", "starts_at": "2030-01-01T20:00:00Z", "rows": [{"row": "A", "seats": 5}]});
    for auth in [None, Some("Bearer anything-at-all-here")] {
        let mut call = s.post("/shows").json(body.clone());
        if let Some(a) = auth {
            call = call.header("authorization", a);
        }
        let r = call.send().await;
        assert_eq!((r.status, r.error()), (StatusCode::FORBIDDEN, "forbidden"));
    }
    assert_eq!(s.count("SELECT count(*) FROM shows").await, 0);
    s.stop().await;
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let mut s = TestServer::start().await;
    // Half a request line, then silence: the header timeout closes the connection.
    let (answer, closed) =
        crate::common::raw_exchange_closing(s.addr, b"GET /shows HTTP/1.1\r\nHost: x\r\n").await;
    assert!(
        closed,
        "the server closed the connection (header timeout 5 s)"
    );
    assert!(!answer.contains("200 OK"), "{answer}");
    // The server still serves others.
    assert_eq!(s.get("/healthz").send().await.status, StatusCode::OK);
    s.stop().await;
}

/// What the document's JSON Schema refuses, the server refuses, naming the field: an
/// integer with a fraction, and `null` for an optional field (absent or of its type).
#[tokio::test]
async fn fractions_and_nulls_get_400_naming_the_field() {
    let mut s = TestServer::start().await;
    let show = s.show(&[("A", 12)]).await;
    let hold = s.hold(&show, "alice", &["A12"]).await;
    let holds = format!("/shows/{show}/holds");
    let best = format!("/shows/{show}/holds/best");
    let extend = format!("/holds/{hold}/extend");
    let new_show = |k: &str, v: serde_json::Value| {
        let mut b = json!({"title": "T", "starts_at": "2030-01-01T20:00:00Z",
                           "rows": [{"row": "A", "seats": 5}]});
        b[k] = v;
        b
    };
    let row = |k: &str, v: serde_json::Value| {
        let mut r = json!({"row": "A", "seats": 5});
        r[k] = v;
        new_show("rows", json!([r]))
    };
    let cases = [
        // Fractions.
        (
            &holds,
            json!({"seats": ["A1"], "ttl_seconds": 52.5}),
            "ttl_seconds",
        ),
        (&best, json!({"count": 1.5}), "count"),
        (
            &best,
            json!({"count": 1, "ttl_seconds": 0.5}),
            "ttl_seconds",
        ),
        (&extend, json!({"ttl_seconds": 60.25}), "ttl_seconds"),
        (
            &"/shows".to_owned(),
            row("seats", json!(5.5)),
            "rows[0].seats",
        ),
        (
            &"/shows".to_owned(),
            row("aisles_after", json!([2.5])),
            "rows[0].aisles_after[0]",
        ),
        (
            &"/shows".to_owned(),
            new_show("prices", json!({"standard": 999.9})),
            "prices.standard",
        ),
        // Whole, but past what an integer field holds.
        (
            &holds,
            json!({"seats": ["A1"], "ttl_seconds": 1e19}),
            "ttl_seconds",
        ),
        // null for an optional field.
        (
            &holds,
            json!({"seats": ["A1"], "ttl_seconds": null}),
            "ttl_seconds",
        ),
        (
            &holds,
            json!({"seats": ["A1"], "if_versions": null}),
            "if_versions",
        ),
        (&best, json!({"count": 1, "category": null}), "category"),
        (&best, json!({"count": 1, "adjacent": null}), "adjacent"),
        (
            &best,
            json!({"count": 1, "ttl_seconds": null}),
            "ttl_seconds",
        ),
        (
            &"/shows".to_owned(),
            new_show("currency", json!(null)),
            "currency",
        ),
        (
            &"/shows".to_owned(),
            new_show("prices", json!(null)),
            "prices",
        ),
        (
            &"/shows".to_owned(),
            row("category", json!(null)),
            "rows[0].category",
        ),
        (
            &"/shows".to_owned(),
            row("aisles_after", json!(null)),
            "rows[0].aisles_after",
        ),
        // null for a required one, too.
        (&extend, json!({"ttl_seconds": null}), "ttl_seconds"),
        (&best, json!({"count": null}), "count"),
    ];
    for (path, body, field) in cases {
        let res = s
            .post(path)
            .user("alice")
            .admin()
            .json(body.clone())
            .send()
            .await;
        assert_eq!(
            res.status,
            StatusCode::BAD_REQUEST,
            "{path} {body}: {}",
            res.text()
        );
        assert_eq!(res.error(), "invalid_request", "{path} {body}");
        assert_eq!(res.json["field"], field, "{path} {body}: {}", res.text());
    }
    assert_eq!(s.count("SELECT count(*) FROM holds").await, 1);
    assert_eq!(s.count("SELECT count(*) FROM shows").await, 1);
    s.stop().await;
}
