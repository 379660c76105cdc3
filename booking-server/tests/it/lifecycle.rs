//! The show lifecycle over HTTP: the sales window (`409 not_on_sale` with the window),
//! `PATCH /shows/{id}` and its bad input, `POST /shows/{id}/cancel` (everything
//! released and cancelled, `409 show_cancelled` afterwards, idempotent), the seat cache
//! after a cancellation in this process and in another, and the metrics.

use crate::common::audit::audit;
use crate::common::TestServer;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

/// The seat map as the database has it now, serialised as the server would.
async fn db_map(s: &TestServer, show: &str) -> Vec<u8> {
    let client = s.pool.get().await.unwrap();
    let id = booking_core::ShowId::parse(show).unwrap();
    let map = booking_core::seats::seat_map(&client, id).await.unwrap();
    crate::seat_cache::without_position(&serde_json::to_vec(&map).unwrap())
}

/// Waits until `s` serves the database's map of `show`, byte for byte; panics after
/// 20 s.
async fn converges(s: &TestServer, show: &str) {
    let path = format!("/shows/{show}/seats");
    let mut last = String::new();
    for _ in 0..400 {
        let before = db_map(s, show).await;
        let served = s.get(&path).send().await;
        let after = db_map(s, show).await;
        assert_eq!(served.status, StatusCode::OK);
        if before == after && crate::seat_cache::without_position(&served.body) == before {
            return;
        }
        last = served.text();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the served map never equalled the database's: {last}");
}

async fn gig(s: &TestServer, extra: Value) -> String {
    let mut body = json!({
        "title": "Gig", "starts_at": "2030-01-01T20:00:00Z",
        "rows": [{"row": "A", "seats": 4}],
        "areas": [{"area": "FLOOR", "capacity": 5, "category": "standing"}],
        "ticket_types": [{"type": "adult", "prices": {"standard": 5000, "standing": 3000}}]
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let res = s.post("/shows").admin().json(body).send().await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    res.json["id"].as_str().unwrap().to_owned()
}

fn patch(s: &TestServer, show: &str) -> crate::common::Call {
    s.call(Method::PATCH, &format!("/shows/{show}")).admin()
}

#[tokio::test]
async fn holds_outside_the_window_are_refused_with_the_window() {
    let mut s = TestServer::start().await;
    let show = gig(&s, json!({"sales_start": "2029-06-01T10:00:00Z"})).await;
    let got = s.get(&format!("/shows/{show}")).send().await;
    assert_eq!(got.json["status"], "not_on_sale");
    assert_eq!(got.json["sales_start"], "2029-06-01T10:00:00Z");
    assert_eq!(got.json["sales_end"], Value::Null);
    assert_eq!(got.json["cancelled_at"], Value::Null);
    let holds = format!("/shows/{show}/holds");
    // Twice each (the second may meet a cached map), keyed and not, seats and places,
    // best available.
    for body in [json!({"seats": ["A1"]}), json!({"areas": {"FLOOR": 2}})] {
        for key in [None, Some("k1"), None] {
            let mut call = s.post(&holds).user("ann").json(body.clone());
            if let Some(k) = key {
                call = call.key(&format!("{k}-{body}"));
            }
            let r = call.send().await;
            assert_eq!(
                (r.status, r.error()),
                (StatusCode::CONFLICT, "not_on_sale"),
                "{}",
                r.text()
            );
            assert_eq!(r.json["sales_start"], "2029-06-01T10:00:00Z");
            assert_eq!(r.json["sales_end"], Value::Null, "an open end is null");
        }
    }
    let r = s
        .post(&format!("{holds}/best"))
        .user("ann")
        .json(json!({"count": 2}))
        .send()
        .await;
    assert_eq!(r.error(), "not_on_sale");
    // Opened by PATCH (null clears the start): holds are taken.
    let r = patch(&s, &show)
        .json(json!({"sales_start": null, "sales_end": "2031-01-01T00:00:00Z"}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        (r.json["status"].as_str(), r.json["sales_start"].clone()),
        (Some("on_sale"), Value::Null)
    );
    let hold = s.hold(&show, "ann", &["A1"]).await;
    // Closed again: the live hold may be paid for, a new one is refused.
    let r = patch(&s, &show)
        .json(json!({"sales_end": "2020-01-01T00:00:00Z"}))
        .send()
        .await;
    assert_eq!(r.json["status"], "not_on_sale", "{}", r.text());
    let r = s
        .post(&holds)
        .user("bob")
        .json(json!({"seats": ["A2"]}))
        .send()
        .await;
    assert_eq!(r.error(), "not_on_sale");
    assert_eq!(r.json["sales_end"], "2020-01-01T00:00:00Z");
    let r = s
        .post(&format!("/holds/{hold}/confirm"))
        .user("ann")
        .send()
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let metrics = s.get("/metrics").send().await.text();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("booking_not_on_sale_total ") && !l.ends_with(" 0")),
        "{metrics}"
    );
    s.stop().await;
    audit(&s.database_url).await;
}

#[tokio::test]
async fn bad_patches_and_windows_are_400_and_change_nothing() {
    let s = TestServer::start().await;
    let show = gig(&s, json!({})).await;
    let before = s.get(&format!("/shows/{show}")).send().await.json;
    for (body, field) in [
        (json!({"colour": "red"}), "colour"),
        (json!({"title": null}), "title"),
        (json!({"title": 5}), "title"),
        (json!({"title": " "}), "title"),
        (json!({"starts_at": null}), "starts_at"),
        (json!({"starts_at": "tomorrow"}), "starts_at"),
        (json!({"sales_start": 12}), "sales_start"),
        (json!({"sales_end": "2020-13-01T00:00:00Z"}), "sales_end"),
        (json!({"max_seats_per_user": 0}), "max_seats_per_user"),
        (json!({"max_seats_per_user": 1.5}), "max_seats_per_user"),
        (json!({"max_seats_per_user": -1}), "max_seats_per_user"),
        (json!({"max_seats_per_user": "6"}), "max_seats_per_user"),
        (
            json!({"sales_start": "2030-01-02T00:00:00Z", "sales_end": "2030-01-01T00:00:00Z"}),
            "sales_end",
        ),
        (
            json!({"sales_start": "2030-01-01T00:00:00Z", "sales_end": "2030-01-01T00:00:00Z"}),
            "sales_end",
        ),
    ] {
        let r = patch(&s, &show).json(body.clone()).send().await;
        assert_eq!(
            (r.status, r.error(), r.json["field"].as_str()),
            (StatusCode::BAD_REQUEST, "invalid_request", Some(field)),
            "{body}: {}",
            r.text()
        );
    }
    for raw in ["", "[]", "null", "{", "{\"title\": \"x\"} x"] {
        let r = patch(&s, &show).raw(raw.to_owned()).send().await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{raw}: {}", r.text());
    }
    // An end before the start set earlier: named by what was sent.
    let r = patch(&s, &show)
        .json(json!({"sales_end": "2030-01-01T00:00:00Z"}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = patch(&s, &show)
        .json(json!({"sales_start": "2030-02-01T00:00:00Z"}))
        .send()
        .await;
    assert_eq!(
        (r.status, r.json["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("sales_start"))
    );
    let r = s
        .post("/shows")
        .admin()
        .json(json!({
            "title": "x", "starts_at": "2030-01-01T20:00:00Z", "rows": [{"row": "A", "seats": 1}],
            "sales_start": "2030-01-01T00:00:00Z", "sales_end": "2029-01-01T00:00:00Z"
        }))
        .send()
        .await;
    assert_eq!(
        (r.status, r.json["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("sales_end")),
        "{}",
        r.text()
    );
    let r = s
        .post("/shows")
        .admin()
        .json(json!({
            "title": "x", "starts_at": "2030-01-01T20:00:00Z", "rows": [{"row": "A", "seats": 1}],
            "sales_end": null
        }))
        .send()
        .await;
    assert_eq!(
        (r.status, r.json["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("sales_end")),
        "{}",
        r.text()
    );
    // Only admins; unknown shows.
    let r = s
        .call(Method::PATCH, &format!("/shows/{show}"))
        .json(json!({}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = s.post(&format!("/shows/{show}/cancel")).send().await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = s
        .post(&format!("/shows/{show}/cancel"))
        .user("mallory")
        .send()
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    for id in ["999999", "abc"] {
        let r = patch(&s, id).json(json!({})).send().await;
        assert_eq!(r.error(), "show_not_found");
        let r = s.post(&format!("/shows/{id}/cancel")).admin().send().await;
        assert_eq!(r.error(), "show_not_found");
    }
    let r = s
        .call(Method::PUT, &format!("/shows/{show}"))
        .admin()
        .json(json!({}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    let after = s.get(&format!("/shows/{show}")).send().await.json;
    assert_eq!(after["title"], before["title"]);
    assert_eq!(after["max_seats_per_user"], before["max_seats_per_user"]);
    // A good patch: title, start, limit; then the limit cleared.
    let r = patch(&s, &show).json(json!({"title": "Gig II", "starts_at": "2031-01-01T20:00:00Z", "max_seats_per_user": 2})).send().await;
    assert_eq!(
        (
            r.json["title"].as_str(),
            r.json["max_seats_per_user"].as_i64()
        ),
        (Some("Gig II"), Some(2)),
        "{}",
        r.text()
    );
    let r = patch(&s, &show)
        .json(json!({"max_seats_per_user": null}))
        .send()
        .await;
    assert!(r.json.get("max_seats_per_user").is_none(), "{}", r.text());
    let list = s.get("/shows").send().await;
    assert_eq!(list.json["shows"][0]["title"], "Gig II");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_releases_cancels_and_refuses_for_ever_in_both_processes() {
    let mut a = TestServer::start().await;
    let b = TestServer::start_on(&a.database_url, |_| {}).await;
    let show = gig(&a, json!({})).await;
    let held = a.hold(&show, "ann", &["A1"]).await;
    let paid = b
        .post(&format!("/shows/{show}/holds"))
        .user("bob")
        .json(json!({"seats": ["A2"], "areas": {"FLOOR": 2}}))
        .send()
        .await;
    assert_eq!(paid.status, StatusCode::CREATED, "{}", paid.text());
    let paid_id = paid.json["hold_id"].as_str().unwrap().to_owned();
    let booked = b
        .post(&format!("/holds/{paid_id}/confirm"))
        .user("bob")
        .send()
        .await;
    let booking = booked.json["booking_id"].as_str().unwrap().to_owned();
    // Both processes keep the map, and refuse from memory what is taken.
    converges(&a, &show).await;
    converges(&b, &show).await;
    let r = b
        .post(&format!("/shows/{show}/holds"))
        .user("cy")
        .json(json!({"seats": ["A1"]}))
        .send()
        .await;
    assert_eq!(r.error(), "seats_unavailable");

    let done = a
        .post(&format!("/shows/{show}/cancel"))
        .admin()
        .send()
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text());
    assert_eq!(done.json["status"], "cancelled");
    assert!(done.json["cancelled_at"].is_string());
    assert_eq!(
        (done.json["held"].as_i64(), done.json["booked"].as_i64()),
        (Some(0), Some(0))
    );
    let again = a
        .post(&format!("/shows/{show}/cancel"))
        .admin()
        .send()
        .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json, done.json, "a repeat answers the same");

    let r = a.get(&format!("/holds/{held}")).user("ann").send().await;
    assert_eq!(r.json["status"], "released");
    let r = b
        .get(&format!("/bookings/{booking}"))
        .user("bob")
        .send()
        .await;
    assert_eq!(r.json["status"], "cancelled");
    // Refused for ever, by both processes, whatever their caches held.
    for s in [&a, &b] {
        for body in [
            json!({"seats": ["A1"]}),
            json!({"seats": ["A3"]}),
            json!({"areas": {"FLOOR": 1}}),
        ] {
            let r = s
                .post(&format!("/shows/{show}/holds"))
                .user("dan")
                .json(body.clone())
                .send()
                .await;
            assert_eq!(
                (r.status, r.error()),
                (StatusCode::CONFLICT, "show_cancelled"),
                "{body}: {}",
                r.text()
            );
        }
        let r = s
            .post(&format!("/shows/{show}/holds/best"))
            .user("dan")
            .json(json!({"count": 1}))
            .send()
            .await;
        assert_eq!(r.error(), "show_cancelled");
        let r = s
            .post(&format!("/shows/{show}/blocks"))
            .admin()
            .json(json!({"seats": ["A4"], "reason": "x"}))
            .send()
            .await;
        assert_eq!(r.error(), "show_cancelled", "{}", r.text());
        let r = patch(s, &show).json(json!({"title": "Back"})).send().await;
        assert_eq!(r.error(), "show_cancelled");
    }
    let r = a
        .post(&format!("/holds/{held}/confirm"))
        .user("ann")
        .send()
        .await;
    assert_eq!(r.error(), "hold_released");
    // Both maps end as the database's: every seat available, FLOOR all available.
    converges(&a, &show).await;
    converges(&b, &show).await;
    let map = a.get(&format!("/shows/{show}/seats")).send().await.json;
    assert!(
        map["seats"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["state"] == "available"),
        "{map}"
    );
    let metrics = a.get("/metrics").send().await.text();
    assert!(
        metrics.lines().any(|l| l == "booking_show_cancels_total 1"),
        "{metrics}"
    );
    assert_eq!(
        a.count("SELECT count(*) FROM seat_events WHERE cause = 'show_cancel'")
            .await,
        1
    );
    a.stop().await;
    audit(&a.database_url).await;
}

#[tokio::test]
async fn the_feed_carries_the_cancellation() {
    let s = TestServer::start().await;
    let show = gig(&s, json!({})).await;
    s.hold(&show, "ann", &["A1"]).await;
    let mut sse = crate::common::Sse::open(s.addr, &format!("/shows/{show}/events"), &[]).await;
    let r = s
        .post(&format!("/shows/{show}/cancel"))
        .admin()
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let event = loop {
        let e = sse.next_event().await.expect("an event");
        if e.data["cause"] == "show_cancel" {
            break e;
        }
    };
    let data = event.data;
    assert_eq!(data["cause"], "show_cancel");
    assert_eq!(data["seats"].as_array().unwrap().len(), 4);
}

/// Many holds, places, best-available holds, adds and exchanges through two processes
/// race one cancellation: afterwards nothing of the show is held or booked, every
/// answer was a success or a documented refusal, both maps end as the database's, and
/// the audit passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_takers_against_a_cancel_leave_nothing_taken() {
    let a = TestServer::start().await;
    let b = std::sync::Arc::new(TestServer::start_on(&a.database_url, |_| {}).await);
    let res = a
        .post("/shows")
        .admin()
        .json(json!({
            "title": "Race", "starts_at": "2030-01-01T20:00:00Z",
            "rows": [{"row": "A", "seats": 10}, {"row": "B", "seats": 10}, {"row": "C", "seats": 10}],
            "areas": [{"area": "FLOOR", "capacity": 40, "category": "standing"}],
            "ticket_types": [{"type": "adult", "prices": {"standard": 5000, "standing": 3000}}]
        }))
        .send()
        .await;
    let show = res.json["id"].as_str().unwrap().to_owned();
    // Carts to add to (C1..C5) and bookings to exchange (C6..C10).
    let mut carts = Vec::new();
    let mut bookings = Vec::new();
    for n in 1..=5 {
        carts.push((
            format!("c{n}"),
            a.hold(&show, &format!("c{n}"), &[&format!("C{n}")]).await,
        ));
        let h = a
            .hold(&show, &format!("b{n}"), &[&format!("C{}", n + 5)])
            .await;
        let r = a
            .post(&format!("/holds/{h}/confirm"))
            .user(&format!("b{n}"))
            .send()
            .await;
        bookings.push((
            format!("b{n}"),
            r.json["booking_id"].as_str().unwrap().to_owned(),
            format!("C{}", n + 5),
        ));
    }
    let a = std::sync::Arc::new(a);
    let mut tasks = Vec::new();
    for i in 0..80usize {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        let show = show.clone();
        let (cart_user, cart) = carts[i % carts.len()].clone();
        let (owner, booking, had) = bookings[i % bookings.len()].clone();
        let seat = format!("{}{}", ["A", "B"][i % 2], i % 10 + 1);
        tasks.push(tokio::spawn(async move {
            let user = format!("u{i}");
            let r = match i % 6 {
                0 => {
                    s.post(&format!("/shows/{show}/holds"))
                        .user(&user)
                        .json(json!({"seats": [seat]}))
                        .send()
                        .await
                }
                1 => {
                    s.post(&format!("/shows/{show}/holds"))
                        .user(&user)
                        .json(json!({"areas": {"FLOOR": 2}}))
                        .send()
                        .await
                }
                2 => {
                    s.post(&format!("/shows/{show}/holds"))
                        .user(&user)
                        .key(&format!("k{i}"))
                        .json(json!({"seats": [seat], "areas": {"FLOOR": 1}}))
                        .send()
                        .await
                }
                3 => {
                    s.post(&format!("/shows/{show}/holds/best"))
                        .user(&user)
                        .json(json!({"count": 2}))
                        .send()
                        .await
                }
                4 => {
                    s.post(&format!("/holds/{cart}/add"))
                        .user(&cart_user)
                        .json(json!({"seats": [seat]}))
                        .send()
                        .await
                }
                _ => {
                    s.post(&format!("/bookings/{booking}/exchange"))
                        .user(&owner)
                        .json(json!({"release": [had], "take": [seat]}))
                        .send()
                        .await
                }
            };
            let code = match r.status.is_success() {
                true => String::new(),
                false => r.error().to_owned(),
            };
            (i, r.status, code)
        }));
    }
    tokio::time::sleep(Duration::from_millis(3)).await;
    let done = a
        .post(&format!("/shows/{show}/cancel"))
        .admin()
        .send()
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text());
    let mut answers: std::collections::BTreeMap<String, usize> = Default::default();
    for t in tasks {
        let (i, status, code) = t.await.unwrap();
        *answers
            .entry(format!("{} {code}", status.as_u16()))
            .or_default() += 1;
        let fine = status.is_success()
            || matches!(
                code.as_str(),
                "show_cancelled"
                    | "seats_unavailable"
                    | "hold_released"
                    | "booking_cancelled"
                    | "not_in_booking"
            );
        assert!(fine, "request {i}: {status} {code}");
    }
    // What the racers were told (for the log: how they interleaved varies).
    eprintln!("answers: {answers:?}");
    let left = a
        .count(&format!(
            "SELECT count(*) FROM seats WHERE show_id = {show}
              AND (hold_id IS NOT NULL OR booking_id IS NOT NULL)"
        ))
        .await;
    assert_eq!(left, 0, "taken after the cancel");
    let active = a
        .count(&format!(
            "SELECT (SELECT count(*) FROM holds WHERE show_id = {show} AND status = 'active')
                  + (SELECT count(*) FROM bookings WHERE show_id = {show} AND status = 'confirmed')"
        ))
        .await;
    assert_eq!(active, 0);
    converges(&a, &show).await;
    converges(&b, &show).await;
    let url = a.database_url.clone();
    drop(b);
    std::sync::Arc::try_unwrap(a).ok().unwrap().stop().await;
    audit(&url).await;
}
