//! Every endpoint's happy path and every error code of API.md, over real HTTP.

use crate::common::TestServer;
use hyper::StatusCode;
use serde_json::{json, Value};

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().expect("an object").keys().cloned().collect();
    k.sort();
    k
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_books_seats_from_show_creation_to_cancellation() {
    let mut s = TestServer::start().await;

    // Create a show (admin).
    let res = s
        .post("/shows")
        .admin()
        .json(json!({
            "title": "Inception", "starts_at": "2026-12-01T20:00:00Z", "currency": "EUR",
            "prices": {"standard": 1200, "premium": 1800},
            "rows": [{"row": "A", "seats": 12, "aisles_after": [4, 8]},
                     {"row": "B", "seats": 14, "category": "premium"}]
        }))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    assert_eq!(
        keys(&res.json),
        [
            "available",
            "blocked",
            "booked",
            "cancelled_at",
            "currency",
            "held",
            "id",
            "queue",
            "sales_end",
            "sales_start",
            "seats_total",
            "starts_at",
            "status",
            "ticket_types",
            "title"
        ]
    );
    assert_eq!(res.json["seats_total"], 26);
    assert_eq!(res.json["starts_at"], "2026-12-01T20:00:00Z");
    let show = res.json["id"].as_str().unwrap().to_owned();

    // List and read it.
    let list = s.get("/shows").send().await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.json["shows"][0]["id"], show.as_str());
    // The list is reused for a second, but a show created here is listed at once.
    let second = s.show(&[("A", 3)]).await;
    let list = s.get("/shows").send().await;
    let ids: Vec<&str> = list.json["shows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&second.as_str()), "{ids:?}");
    let one = s.get(&format!("/shows/{show}")).send().await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.json["available"], 26);

    // The seat map: row order, then number order; prices by category.
    let map = s.get(&format!("/shows/{show}/seats")).send().await;
    assert_eq!(map.status, StatusCode::OK);
    assert_eq!(map.json["show_id"], show.as_str());
    let seats = map.json["seats"].as_array().unwrap();
    assert_eq!(seats.len(), 26);
    assert_eq!(seats[0]["label"], "A1");
    assert_eq!(seats[11]["label"], "A12");
    assert_eq!(seats[12]["label"], "B1");
    assert_eq!(seats[12]["price"], 1800);
    assert_eq!(seats[3]["aisle_after"], true);
    assert_eq!(
        keys(&seats[0]),
        [
            "aisle_after",
            "category",
            "label",
            "number",
            "price",
            "row",
            "state",
            "version"
        ]
    );
    assert!(seats.iter().all(|x| x["state"] == "available"));
    // ETag / If-None-Match: 304 while nothing changed.
    let etag = map.header("etag").expect("an ETag").to_owned();
    let same = s
        .get(&format!("/shows/{show}/seats"))
        .header("if-none-match", &etag)
        .send()
        .await;
    assert_eq!(same.status, StatusCode::NOT_MODIFIED);
    assert!(same.body.is_empty());
    assert_eq!(same.header("etag"), Some(etag.as_str()));

    // Hold two seats.
    let res = s
        .post(&format!("/shows/{show}/holds"))
        .user("u-17")
        .json(json!({"seats": ["A1", "B2"], "ttl_seconds": 300}))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let hold = res.json.clone();
    assert_eq!(
        keys(&hold),
        [
            "created_at",
            "currency",
            "expires_at",
            "hold_id",
            "seats",
            "show_id",
            "status",
            "tickets",
            "total",
            "user_id"
        ]
    );
    assert_eq!(hold["seats"], json!(["A1", "B2"]));
    assert_eq!(hold["status"], "active");
    assert_eq!(hold["total"], 3000);
    assert_eq!(hold["currency"], "EUR");
    assert_eq!(hold["user_id"], "u-17");
    let hold_id = hold["hold_id"].as_str().unwrap().to_owned();
    assert!(hold["expires_at"].as_str().unwrap().ends_with('Z'));

    let read = s
        .get(&format!("/holds/{hold_id}"))
        .user("u-17")
        .send()
        .await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.json, hold);
    // Read your writes: the map right after the 201 shows the hold, and its ETag moved.
    let map = s
        .get(&format!("/shows/{show}/seats"))
        .header("if-none-match", &etag)
        .send()
        .await;
    assert_eq!(map.status, StatusCode::OK);
    assert_ne!(map.header("etag"), Some(etag.as_str()));
    assert_eq!(map.json["seats"][0]["state"], "held");

    // Extend it.
    let ext = s
        .post(&format!("/holds/{hold_id}/extend"))
        .user("u-17")
        .json(json!({"ttl_seconds": 600}))
        .send()
        .await;
    assert_eq!(ext.status, StatusCode::OK, "{}", ext.text());
    assert!(ext.json["expires_at"].as_str() > hold["expires_at"].as_str());

    // Confirm: 201, then 200 with the same body.
    let first = s
        .post(&format!("/holds/{hold_id}/confirm"))
        .user("u-17")
        .send()
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());
    assert_eq!(
        keys(&first.json),
        [
            "booking_id",
            "confirmed_at",
            "currency",
            "hold_id",
            "seats",
            "show_id",
            "status",
            "tickets",
            "total",
            "user_id"
        ]
    );
    assert_eq!(first.json["status"], "confirmed");
    assert_eq!(first.json["total"], 3000);
    let again = s
        .post(&format!("/holds/{hold_id}/confirm"))
        .user("u-17")
        .send()
        .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body, first.body);
    let booking_id = first.json["booking_id"].as_str().unwrap().to_owned();
    let read = s
        .get(&format!("/holds/{hold_id}"))
        .user("u-17")
        .send()
        .await;
    assert_eq!(read.json["status"], "confirmed");
    assert_eq!(read.json["booking_id"], booking_id.as_str());

    // Read and list bookings.
    let b = s
        .get(&format!("/bookings/{booking_id}"))
        .user("u-17")
        .send()
        .await;
    assert_eq!(b.status, StatusCode::OK);
    assert_eq!(b.json, first.json);
    let mine = s.get("/users/me/bookings").user("u-17").send().await;
    assert_eq!(mine.status, StatusCode::OK);
    assert_eq!(mine.json["bookings"], json!([first.json]));
    let theirs = s
        .get("/users/me/bookings")
        .user("someone-else")
        .send()
        .await;
    assert_eq!(theirs.json["bookings"], json!([]));

    // Release another hold: 204, and again 204.
    let other = s.hold(&show, "u-17", &["A5"]).await;
    let rel = s
        .delete(&format!("/holds/{other}"))
        .user("u-17")
        .send()
        .await;
    assert_eq!(rel.status, StatusCode::NO_CONTENT);
    assert!(rel.body.is_empty());
    let rel = s
        .delete(&format!("/holds/{other}"))
        .user("u-17")
        .send()
        .await;
    assert_eq!(rel.status, StatusCode::NO_CONTENT);
    let read = s.get(&format!("/holds/{other}")).user("u-17").send().await;
    assert_eq!(read.json["status"], "released");

    // Cancel: 200 with status cancelled and what it cancelled; again the same booking,
    // nothing cancelled twice; seats free.
    let c = s
        .post(&format!("/bookings/{booking_id}/cancel"))
        .user("u-17")
        .send()
        .await;
    assert_eq!(c.status, StatusCode::OK, "{}", c.text());
    assert_eq!(c.json["status"], "cancelled");
    assert!(c.json["cancelled_at"].is_string());
    let c2 = s
        .post(&format!("/bookings/{booking_id}/cancel"))
        .user("u-17")
        .send()
        .await;
    assert_eq!(c2.status, StatusCode::OK);
    assert_eq!(c.json["cancelled"].as_array().map(Vec::len), Some(2));
    assert_eq!(c2.json["cancelled"], json!([]));
    let booking_of = |v: &Value| {
        let mut v = v.clone();
        v.as_object_mut().unwrap().remove("cancelled");
        v
    };
    assert_eq!(booking_of(&c2.json), booking_of(&c.json));
    let one = s.get(&format!("/shows/{show}")).send().await;
    assert_eq!(
        (one.json["available"].as_i64(), one.json["booked"].as_i64()),
        (Some(26), Some(0))
    );
    s.stop().await;
}

#[tokio::test]
async fn operations_endpoints_answer() {
    let mut s = TestServer::start().await;
    let h = s.get("/healthz").send().await;
    assert_eq!(h.status, StatusCode::OK);
    let r = s.get("/readyz").send().await;
    assert_eq!(r.status, StatusCode::OK);

    let show = s.show(&[("A", 4)]).await;
    let hold = s.hold(&show, "alice", &["A1"]).await;
    let added = s
        .post(&format!("/holds/{hold}/add"))
        .user("alice")
        .json(json!({"seats": ["A2"]}))
        .send()
        .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.text());
    let m = s.get("/metrics").send().await;
    assert_eq!(m.status, StatusCode::OK);
    assert!(m.header("content-type").unwrap().starts_with("text/plain"));
    let text = m.text();
    for series in [
        "booking_http_requests_total{route=\"POST /shows/{show_id}/holds\",status=\"201\"} 1",
        "booking_http_request_duration_seconds_bucket{route=\"POST /shows\",status=\"201\",le=\"+Inf\"} 1",
        "booking_holds_total 1",
        "booking_hold_adds_total 1",
        // The hold and the add had no idempotency key: a batch of one each.
        "booking_hold_batches_total 2",
        "booking_hold_batch_requests_total 2",
        "booking_hold_batch_decided_alone_total 0",
        "booking_hold_batch_failures_total 0",
        "booking_hold_batch_refused_from_memory_total 0",
        "booking_confirms_total 0",
        "booking_pool_in_use",
        "booking_pool_waiting",
        "booking_expiries_total",
    ] {
        assert!(text.contains(series), "metrics lack {series}:\n{text}");
    }
    // Every series, with its type, as scrapers and our scripts read them.
    for (name, kind) in [
        ("booking_http_requests_total", "counter"),
        ("booking_http_request_duration_seconds", "histogram"),
        ("booking_holds_total", "counter"),
        ("booking_best_holds_total", "counter"),
        ("booking_best_lock_attempts_total", "counter"),
        ("booking_best_reads_total", "counter"),
        ("booking_confirms_total", "counter"),
        ("booking_late_confirms_total", "counter"),
        ("booking_ticket_changes_total", "counter"),
        ("booking_releases_total", "counter"),
        ("booking_cancels_total", "counter"),
        ("booking_hold_adds_total", "counter"),
        ("booking_hold_removes_total", "counter"),
        ("booking_partial_cancels_total", "counter"),
        ("booking_exchanges_total", "counter"),
        ("booking_expiries_total", "counter"),
        ("booking_lock_timeouts_total", "counter"),
        ("booking_unavailable_total", "counter"),
        ("booking_hold_batches_total", "counter"),
        ("booking_hold_batch_requests_total", "counter"),
        ("booking_hold_batch_decided_alone_total", "counter"),
        ("booking_hold_batch_failures_total", "counter"),
        ("booking_hold_batch_refused_from_memory_total", "counter"),
        ("booking_pool_connections", "gauge"),
        ("booking_pool_max_connections", "gauge"),
        ("booking_pool_in_use", "gauge"),
        ("booking_pool_waiting", "gauge"),
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("# HELP {name} "))),
            "metrics lack the help of {name}:\n{text}"
        );
        assert!(
            text.lines().any(|l| l == format!("# TYPE {name} {kind}")),
            "metrics lack {name} as a {kind}:\n{text}"
        );
        let sample = if kind == "histogram" {
            format!("{name}_bucket{{")
        } else {
            name.to_owned()
        };
        assert!(
            text.lines().any(|l| l.starts_with(&sample)),
            "metrics lack a sample of {name}:\n{text}"
        );
    }
    // The bucket bounds, written as before (scripts/faults/overload.py matches them).
    let route = "route=\"POST /shows\",status=\"201\"";
    for le in [
        "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5",
        "10", "30", "+Inf",
    ] {
        let bucket =
            format!("booking_http_request_duration_seconds_bucket{{{route},le=\"{le}\"}} ");
        assert!(text.contains(&bucket), "metrics lack {bucket}:\n{text}");
    }
    assert!(text.contains(&format!(
        "booking_http_request_duration_seconds_count{{{route}}} 1\n"
    )));
    assert!(text.contains("booking_lock_timeouts_total 0\n"));

    // The seat-map page and its files, from the binary.
    let page = s.get("/").send().await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(page.text().contains("<script src=\"/app.js\">"));
    for (path, ct) in [
        ("/app.js", "text/javascript; charset=utf-8"),
        ("/style.css", "text/css; charset=utf-8"),
    ] {
        let r = s.get(path).send().await;
        assert_eq!(
            (r.status, r.header("content-type")),
            (StatusCode::OK, Some(ct)),
            "{path}"
        );
        assert!(r.body.len() > 500, "{path} has content");
    }

    let doc = s.get("/openapi.json").send().await;
    assert_eq!(doc.status, StatusCode::OK);
    assert_eq!(doc.json["openapi"], "3.1.0");
    for (method, path) in booking_server::routes::DOCUMENTED {
        let op = &doc.json["paths"][path][method.to_lowercase()];
        assert!(op.is_object(), "{method} {path} is not in /openapi.json");
        assert!(
            op["responses"].is_object(),
            "{method} {path} documents no responses"
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn every_documented_error_code_is_answered_as_documented() {
    let mut s = TestServer::start_with(|c| c.max_hold_seconds = 900).await;
    let show = s.show(&[("A", 6)]).await;
    let holds = format!("/shows/{show}/holds");

    // 400 on ttl_seconds: a new hold may not ask to outlive MAX_HOLD_SECONDS, by name
    // (keyed or not: batched or in its own transaction) or best available.
    for key in [None, Some("ttl-too-long")] {
        let mut call = s
            .post(&holds)
            .user("alice")
            .json(json!({"seats": ["A1"], "ttl_seconds": 901}));
        if let Some(k) = key {
            call = call.key(k);
        }
        let r = call.send().await;
        assert_eq!(
            (r.status, r.error(), r.json["field"].as_str()),
            (
                StatusCode::BAD_REQUEST,
                "invalid_request",
                Some("ttl_seconds")
            ),
            "{key:?}"
        );
    }
    let r = s
        .post(&format!("{holds}/best"))
        .user("alice")
        .json(json!({"count": 2, "ttl_seconds": 901}))
        .send()
        .await;
    assert_eq!(
        (r.status, r.error(), r.json["field"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            "invalid_request",
            Some("ttl_seconds")
        )
    );
    assert_eq!(s.count("SELECT count(*) FROM holds").await, 0);

    // 404 show_not_found (unknown and malformed ids).
    for id in ["999999", "abc", "0", "-1"] {
        let r = s.get(&format!("/shows/{id}")).send().await;
        assert_eq!(
            (r.status, r.error()),
            (StatusCode::NOT_FOUND, "show_not_found"),
            "{id}"
        );
        let r = s.get(&format!("/shows/{id}/seats")).send().await;
        assert_eq!(
            (r.status, r.error()),
            (StatusCode::NOT_FOUND, "show_not_found"),
            "{id}"
        );
        let r = s
            .post(&format!("/shows/{id}/holds"))
            .user("a")
            .json(json!({"seats": ["A1"]}))
            .send()
            .await;
        assert_eq!(
            (r.status, r.error()),
            (StatusCode::NOT_FOUND, "show_not_found"),
            "{id}"
        );
    }
    // 404 seat_not_found with the unknown seats.
    let r = s
        .post(&holds)
        .user("a")
        .json(json!({"seats": ["A1", "A7", "Z1"]}))
        .send()
        .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::NOT_FOUND, "seat_not_found")
    );
    assert_eq!(r.json["seats"], json!(["A7", "Z1"]));

    // 409 seats_unavailable with the taken seats.
    let held = s.hold(&show, "alice", &["A1", "A2"]).await;
    let r = s
        .post(&holds)
        .user("bob")
        .json(json!({"seats": ["A2", "A3"]}))
        .send()
        .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::CONFLICT, "seats_unavailable")
    );
    assert_eq!(r.json["seats"], json!(["A2"]));

    // 412 stale_version with the moved seats.
    let map = s.get(&format!("/shows/{show}/seats")).send().await;
    let v3 = map.json["seats"][2]["version"].as_str().unwrap().to_owned();
    let tmp = s.hold(&show, "carol", &["A3"]).await;
    s.delete(&format!("/holds/{tmp}"))
        .user("carol")
        .send()
        .await;
    let r = s
        .post(&holds)
        .user("bob")
        .json(json!({"seats": ["A3", "A4"], "if_versions": {"A3": v3}}))
        .send()
        .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::PRECONDITION_FAILED, "stale_version")
    );
    assert_eq!(r.json["seats"], json!(["A3"]));

    // 403 forbidden: another user's hold, for every operation.
    let path = format!("/holds/{held}");
    let r = s.get(&path).user("mallory").send().await;
    assert_eq!((r.status, r.error()), (StatusCode::FORBIDDEN, "forbidden"));
    let r = s
        .post(&format!("{path}/confirm"))
        .user("mallory")
        .send()
        .await;
    assert_eq!((r.status, r.error()), (StatusCode::FORBIDDEN, "forbidden"));
    let r = s
        .post(&format!("{path}/extend"))
        .user("mallory")
        .json(json!({"ttl_seconds": 60}))
        .send()
        .await;
    assert_eq!((r.status, r.error()), (StatusCode::FORBIDDEN, "forbidden"));
    let r = s.delete(&path).user("mallory").send().await;
    assert_eq!((r.status, r.error()), (StatusCode::FORBIDDEN, "forbidden"));
    assert!(
        !r.text().contains("alice"),
        "no other user's data in errors"
    );

    // 409 hold_limit_reached (MAX_HOLD_SECONDS = 900 here).
    let r = s
        .post(&format!("{path}/extend"))
        .user("alice")
        .json(json!({"ttl_seconds": 1000}))
        .send()
        .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::CONFLICT, "hold_limit_reached")
    );

    // 410 hold_expired: confirm and extend of a lapsed hold; release is still 204.
    let lapsing = s.hold(&show, "alice", &["A5"]).await;
    s.lapse(&lapsing).await;
    let r = s
        .post(&format!("/holds/{lapsing}/confirm"))
        .user("alice")
        .send()
        .await;
    assert_eq!((r.status, r.error()), (StatusCode::GONE, "hold_expired"));
    let r = s
        .post(&format!("/holds/{lapsing}/extend"))
        .user("alice")
        .json(json!({"ttl_seconds": 60}))
        .send()
        .await;
    assert_eq!((r.status, r.error()), (StatusCode::GONE, "hold_expired"));
    let r = s
        .get(&format!("/holds/{lapsing}"))
        .user("alice")
        .send()
        .await;
    assert_eq!(r.json["status"], "expired");
    let r = s
        .delete(&format!("/holds/{lapsing}"))
        .user("alice")
        .send()
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);

    // 409 hold_released: confirm or extend after release.
    let released = s.hold(&show, "alice", &["A6"]).await;
    s.delete(&format!("/holds/{released}"))
        .user("alice")
        .send()
        .await;
    let r = s
        .post(&format!("/holds/{released}/confirm"))
        .user("alice")
        .send()
        .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::CONFLICT, "hold_released")
    );
    let r = s
        .post(&format!("/holds/{released}/extend"))
        .user("alice")
        .json(json!({"ttl_seconds": 60}))
        .send()
        .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::CONFLICT, "hold_released")
    );

    // 409 hold_confirmed: extend or release after confirm.
    let c = s
        .post(&format!("{path}/confirm"))
        .user("alice")
        .send()
        .await;
    assert_eq!(c.status, StatusCode::CREATED);
    let r = s
        .post(&format!("{path}/extend"))
        .user("alice")
        .json(json!({"ttl_seconds": 60}))
        .send()
        .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::CONFLICT, "hold_confirmed")
    );
    let r = s.delete(&path).user("alice").send().await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::CONFLICT, "hold_confirmed")
    );

    // Bookings: 403 for others, admin may cancel, 404 booking_not_found.
    let booking = c.json["booking_id"].as_str().unwrap();
    let r = s
        .get(&format!("/bookings/{booking}"))
        .user("mallory")
        .send()
        .await;
    assert_eq!((r.status, r.error()), (StatusCode::FORBIDDEN, "forbidden"));
    let r = s
        .post(&format!("/bookings/{booking}/cancel"))
        .user("mallory")
        .send()
        .await;
    assert_eq!((r.status, r.error()), (StatusCode::FORBIDDEN, "forbidden"));
    let r = s
        .post(&format!("/bookings/{booking}/cancel"))
        .admin()
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["status"], "cancelled");
    let ghost_booking =
        booking_core::BookingId::generate(booking_core::ShowId::parse(&show).unwrap());
    for id in [
        ghost_booking.to_string(),
        "nope".into(),
        format!("{show}-not-a-uuid"),
    ] {
        let r = s.get(&format!("/bookings/{id}")).user("alice").send().await;
        assert_eq!(
            (r.status, r.error()),
            (StatusCode::NOT_FOUND, "booking_not_found"),
            "{id}"
        );
        let r = s
            .post(&format!("/bookings/{id}/cancel"))
            .user("alice")
            .send()
            .await;
        assert_eq!(
            (r.status, r.error()),
            (StatusCode::NOT_FOUND, "booking_not_found"),
            "{id}"
        );
    }

    // 404 hold_not_found: unknown and non-UUID ids.
    let ghost = booking_core::HoldId::generate(booking_core::ShowId::parse(&show).unwrap());
    for id in [ghost.to_string(), "not-a-hold".into(), "123".into()] {
        let r = s.get(&format!("/holds/{id}")).user("alice").send().await;
        assert_eq!(
            (r.status, r.error()),
            (StatusCode::NOT_FOUND, "hold_not_found"),
            "{id}"
        );
        let r = s
            .post(&format!("/holds/{id}/confirm"))
            .user("alice")
            .send()
            .await;
        assert_eq!(
            (r.status, r.error()),
            (StatusCode::NOT_FOUND, "hold_not_found"),
            "{id}"
        );
        let r = s.delete(&format!("/holds/{id}")).user("alice").send().await;
        assert_eq!(
            (r.status, r.error()),
            (StatusCode::NOT_FOUND, "hold_not_found"),
            "{id}"
        );
    }

    // 404 not_found and 405 method_not_allowed with Allow.
    let r = s.get("/nope").send().await;
    assert_eq!((r.status, r.error()), (StatusCode::NOT_FOUND, "not_found"));
    let r = s.delete(&format!("/shows/{show}/holds")).send().await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
    assert_eq!(r.header("allow"), Some("GET, POST"));
    let r = s.call(hyper::Method::PUT, "/shows").send().await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.header("allow"), Some("GET, POST"));
    let r = s
        .call(hyper::Method::PATCH, &format!("/holds/{held}"))
        .user("alice")
        .send()
        .await;
    assert_eq!(r.header("allow"), Some("GET, DELETE"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_lock_held_too_long_gives_503_with_retry_after() {
    let mut s = TestServer::start_with(|c| c.lock_timeout_ms = 200).await;
    let show = s.show(&[("A", 4)]).await;
    // Another session locks seat A1 and keeps its transaction open.
    let (locker, conn) =
        booking_core::tokio_postgres::connect(&s.database_url, booking_core::tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(conn);
    locker
        .batch_execute("BEGIN; SELECT * FROM seats WHERE label = 'A1' FOR UPDATE")
        .await
        .unwrap();

    let r = s
        .post(&format!("/shows/{show}/holds"))
        .user("alice")
        .json(json!({"seats": ["A1"]}))
        .send()
        .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    );
    assert!(r.header("retry-after").is_some());
    assert!(
        !r.text().to_lowercase().contains("lock timeout"),
        "no SQL text leaks: {}",
        r.text()
    );
    let metrics = s.get("/metrics").send().await.text();
    for series in [
        "booking_lock_timeouts_total 1\n",
        "booking_unavailable_total 1\n",
    ] {
        assert!(
            metrics.contains(series),
            "metrics lack {series}:\n{metrics}"
        );
    }
    locker.batch_execute("ROLLBACK").await.unwrap();

    // Once the lock is gone, the same request succeeds.
    let r = s
        .post(&format!("/shows/{show}/holds"))
        .user("alice")
        .json(json!({"seats": ["A1"]}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(s.count("SELECT count(*) FROM holds").await, 1);
    s.stop().await;
}

#[tokio::test]
async fn best_available_holds_the_best_group_then_answers_409_with_no_seats() {
    let mut s = TestServer::start().await;
    // Rows A..C of 6 with an aisle after 3 in every row; C premium.
    let res = s
        .post("/shows")
        .admin()
        .json(json!({
            "title": "Best", "starts_at": "2030-01-01T20:00:00Z",
            "prices": {"standard": 1000, "premium": 1500},
            "rows": [{"row": "A", "seats": 6, "aisles_after": [3]},
                     {"row": "B", "seats": 6, "aisles_after": [3]},
                     {"row": "C", "seats": 6, "aisles_after": [3], "category": "premium"}]
        }))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let show = res.json["id"].as_str().unwrap().to_owned();
    let best = format!("/shows/{show}/holds/best");

    // Three rows: the ideal row is B (two thirds back of rows 0..2 is 1.33). Each side
    // of its aisle fits three exactly, equally central: the left one.
    let r = s
        .post(&best)
        .user("alice")
        .json(json!({"count": 3}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json["seats"], json!(["B1", "B2", "B3"]));
    assert_eq!(r.json["status"], "active");
    assert_eq!(r.json["total"], 3000);
    assert_eq!(r.json["user_id"], "alice");
    let hold = r.json["hold_id"].as_str().unwrap().to_owned();
    let got = s.get(&format!("/holds/{hold}")).user("alice").send().await;
    assert_eq!(got.json["seats"], json!(["B1", "B2", "B3"]));

    // Premium only, with a key: replayed byte for byte, held once.
    let body = json!({"count": 2, "category": "premium", "ttl_seconds": 120});
    let first = s
        .post(&best)
        .user("bob")
        .key("b-1")
        .json(body.clone())
        .send()
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());
    assert!(first.json["seats"]
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l.as_str().unwrap().starts_with('C')));
    let again = s.post(&best).user("bob").key("b-1").json(body).send().await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body);
    assert_eq!(
        s.count("SELECT count(*) FROM holds WHERE user_id = 'bob'")
            .await,
        1
    );

    // No group of four side by side anywhere (blocks of three): 409, no seats named.
    let r = s
        .post(&best)
        .user("carol")
        .json(json!({"count": 4}))
        .send()
        .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::CONFLICT, "seats_unavailable")
    );
    assert_eq!(r.json["seats"], json!([]));
    // Not side by side: four close together are found.
    let r = s
        .post(&best)
        .user("carol")
        .json(json!({"count": 4, "adjacent": false}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json["seats"].as_array().unwrap().len(), 4);
    // A category the show does not have fits no group: 409 too.
    let r = s
        .post(&best)
        .user("carol")
        .json(json!({"count": 1, "category": "balcony"}))
        .send()
        .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::CONFLICT, "seats_unavailable")
    );
    s.stop().await;
}

/// JSON Schema calls `52.0` an integer, and so does the server: every integer field of
/// a request body takes a number with a zero fractional part.
#[tokio::test]
async fn integers_may_be_written_with_a_zero_fraction() {
    let mut s = TestServer::start().await;
    let res = s
        .post("/shows")
        .admin()
        .json(json!({
            "title": "Floats", "starts_at": "2030-01-01T20:00:00Z",
            "prices": {"standard": 1200.0},
            "rows": [{"row": "A", "seats": 6.0, "aisles_after": [3.0]}, {"row": "B", "seats": 4}]
        }))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    assert_eq!(res.json["seats_total"], 10);
    let show = res.json["id"].as_str().unwrap().to_owned();
    let map = s.get(&format!("/shows/{show}/seats")).send().await;
    let a3 = &map.json["seats"][2];
    assert_eq!(
        (&a3["label"], &a3["aisle_after"], &a3["price"]),
        (&json!("A3"), &json!(true), &json!(1200))
    );

    let held = s
        .post(&format!("/shows/{show}/holds"))
        .user("alice")
        .json(json!({"seats": ["A1"], "ttl_seconds": 52.0}))
        .send()
        .await;
    assert_eq!(held.status, StatusCode::CREATED, "{}", held.text());
    let secs = |h: &Value| {
        let t = |k: &str| chrono::DateTime::parse_from_rfc3339(h[k].as_str().unwrap()).unwrap();
        (t("expires_at") - t("created_at")).num_seconds()
    };
    assert_eq!(secs(&held.json), 52);

    let best = s
        .post(&format!("/shows/{show}/holds/best"))
        .user("alice")
        .json(json!({"count": 2.0, "ttl_seconds": 5.2e1}))
        .send()
        .await;
    assert_eq!(best.status, StatusCode::CREATED, "{}", best.text());
    assert_eq!(best.json["seats"].as_array().unwrap().len(), 2);

    let hold = held.json["hold_id"].as_str().unwrap();
    let ext = s
        .post(&format!("/holds/{hold}/extend"))
        .user("alice")
        .json(json!({"ttl_seconds": 120.0}))
        .send()
        .await;
    assert_eq!(ext.status, StatusCode::OK, "{}", ext.text());

    // Not whole: the documented 400, naming the field.
    let res = s
        .post(&format!("/shows/{show}/holds"))
        .user("alice")
        .json(json!({"seats": ["A2"], "ttl_seconds": 52.5}))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{}", res.text());
    assert_eq!(
        (res.error(), &res.json["field"]),
        ("invalid_request", &json!("ttl_seconds"))
    );
    s.stop().await;
}

/// The check that every test's answers go through (`crate::common::contract`) is not vacuous:
/// it refuses answers the document does not allow.
#[test]
fn the_contract_check_refuses_answers_the_document_does_not_allow() {
    use crate::common::contract::problem;
    use hyper::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
    use hyper::{HeaderMap, Method};
    let typed = |ct: &'static str| {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
        h
    };
    let json = typed("application/json; charset=utf-8");
    let hold = json!({
        "hold_id": "1-6f1c0b2e-1b2c-4d5e-8f90-0123456789ab", "show_id": "1", "user_id": "u",
        "seats": ["A1"], "tickets": [{"seat": "A1", "type": "full"}], "status": "active",
        "created_at": "2030-01-01T20:00:00Z", "expires_at": "2030-01-01T20:10:00Z",
        "total": 0, "currency": "EUR"
    });
    let get = |path: &str, status: StatusCode, headers: &HeaderMap, body: &Value| {
        problem(
            &Method::GET,
            path,
            status,
            headers,
            body.to_string().as_bytes(),
        )
    };
    let ok = StatusCode::OK;
    let hold_path = "/holds/1-6f1c0b2e-1b2c-4d5e-8f90-0123456789ab";

    assert_eq!(get(hold_path, ok, &json, &hold), Ok(()));
    assert_eq!(
        get("/healthz?x=1", ok, &json, &json!({"status": "ok"})),
        Ok(())
    );

    let mut missing = hold.clone();
    missing.as_object_mut().unwrap().remove("total");
    let mut bad_time = hold.clone();
    bad_time["created_at"] = json!("yesterday");
    let mut bad_status = hold.clone();
    bad_status["status"] = json!("pending");
    let error = json!({"error": "unavailable", "message": "Busy."});
    let mut retry = json.clone();
    retry.insert(RETRY_AFTER, HeaderValue::from_static("1"));
    assert_eq!(
        get("/shows", StatusCode::SERVICE_UNAVAILABLE, &retry, &error),
        Ok(())
    );
    let mut retry_text = json.clone();
    retry_text.insert(RETRY_AFTER, HeaderValue::from_static("soon"));

    for (what, result, expected) in [
        (
            "a missing field",
            get(hold_path, ok, &json, &missing),
            "\"total\" is a required property",
        ),
        (
            "a bad date-time",
            get(hold_path, ok, &json, &bad_time),
            "date-time",
        ),
        (
            "a value outside the enum",
            get(hold_path, ok, &json, &bad_status),
            "pending",
        ),
        (
            "an undocumented status",
            get(hold_path, StatusCode::IM_A_TEAPOT, &json, &hold),
            "418, which it does not document",
        ),
        (
            "a wrong content type",
            get(hold_path, ok, &typed("text/plain"), &hold),
            "Content-Type \"text/plain\"",
        ),
        (
            "no body schema for text",
            get("/nope", ok, &json, &hold),
            "must be 404",
        ),
        (
            "an undocumented method",
            problem(&Method::PUT, "/shows", ok, &json, b"{}"),
            "must be 405",
        ),
        (
            "a missing required header",
            get("/shows", StatusCode::SERVICE_UNAVAILABLE, &json, &error),
            "required header Retry-After",
        ),
        (
            "a header of the wrong type",
            get(
                "/shows",
                StatusCode::SERVICE_UNAVAILABLE,
                &retry_text,
                &error,
            ),
            "not an integer",
        ),
        (
            "an unknown error code",
            get(
                hold_path,
                StatusCode::NOT_FOUND,
                &json,
                &json!({"error": "nope", "message": "m"}),
            ),
            "nope",
        ),
    ] {
        let problem = result.expect_err(what);
        assert!(problem.contains(expected), "{what}: {problem}");
        assert!(
            problem.contains("GET") || problem.contains("PUT"),
            "{what} names the operation: {problem}"
        );
    }
}

/// Every schema of the document compiles, and its own examples (and the request and
/// response examples of `#/components/examples` that name a schema) satisfy it.
#[test]
fn the_documents_examples_satisfy_its_schemas() {
    use crate::common::contract::validate;
    let doc: Value = serde_json::from_str(booking_server::ops::OPENAPI).unwrap();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for (name, schema) in schemas {
        let reference = json!({"$ref": format!("#/components/schemas/{name}")});
        let examples = schema["examples"].as_array().cloned().unwrap_or_default();
        for example in &examples {
            validate(&reference, example).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        // Compiles even without examples.
        validate(&json!({"anyOf": [reference, true]}), &json!(null)).unwrap();
    }
    for (example, schema) in [
        ("NewShow", "NewShow"),
        ("Show", "Show"),
        ("HoldActive", "Hold"),
        ("HoldConfirmed", "Hold"),
        ("BookingConfirmed", "Booking"),
        ("BookingCancelled", "Booking"),
    ] {
        let value = &doc["components"]["examples"][example]["value"];
        validate(
            &json!({"$ref": format!("#/components/schemas/{schema}")}),
            value,
        )
        .unwrap_or_else(|e| panic!("example {example}: {e}"));
    }
    let errors = doc["components"]["examples"].as_object().unwrap();
    for (name, example) in errors.iter().filter(|(n, _)| n.starts_with("Error_")) {
        validate(
            &json!({"$ref": "#/components/schemas/Error"}),
            &example["value"],
        )
        .unwrap_or_else(|e| panic!("example {name}: {e}"));
    }
}
