//! Venue inventory over HTTP: venues, blocks, ticket types, the limit per buyer
//! (through two server processes on one database), and their bad inputs.

use crate::common::{Sse, TestServer};
use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;

fn seat<'a>(map: &'a Value, label: &str) -> &'a Value {
    map["seats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["label"] == label)
        .unwrap_or_else(|| panic!("no seat {label}"))
}

fn show_body(extra: Value) -> Value {
    let mut body = json!({"title": "Inventory", "starts_at": "2030-01-01T20:00:00Z"});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

#[tokio::test]
async fn venues_are_saved_layouts_that_shows_copy() {
    let mut s = TestServer::start().await;
    let rows = json!([
        {"row": "A", "seats": 6, "blocked": [1], "features": {"wheelchair": [5, 6]}},
        {"row": "B", "seats": 8, "section": "101", "category": "premium"}
    ]);
    let created = s
        .post("/venues")
        .admin()
        .key("venue-1")
        .json(json!({"name": "Screen 3", "rows": rows}))
        .send()
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    assert_eq!(created.json["seats_total"], 14);
    assert_eq!(created.json["rows"][0]["blocked"], json!([1]));
    assert_eq!(created.json["rows"][1]["section"], "101");
    let venue = created.json["venue_id"].as_str().unwrap().to_owned();
    let listed = s.get("/venues").send().await;
    assert_eq!(listed.json["venues"][0]["venue_id"], venue.as_str());
    let one = s.get(&format!("/venues/{venue}")).send().await;
    assert_eq!(one.json, created.json);

    let show = s
        .post("/shows")
        .admin()
        .json(show_body(
            json!({"venue_id": venue, "prices": {"standard": 1000, "premium": 1500}}),
        ))
        .send()
        .await;
    assert_eq!(show.status, StatusCode::CREATED, "{}", show.text());
    assert_eq!(show.json["venue_id"], venue.as_str());
    assert_eq!(
        (
            show.json["blocked"].as_i64(),
            show.json["available"].as_i64()
        ),
        (Some(1), Some(13))
    );
    let id = show.json["id"].as_str().unwrap().to_owned();
    let map = s.get(&format!("/shows/{id}/seats")).send().await.json;
    assert_eq!(seat(&map, "A1")["state"], "blocked");
    assert!(
        seat(&map, "A1").get("block_reason").is_none(),
        "reasons are for admins"
    );
    assert_eq!(seat(&map, "A5")["features"], json!(["wheelchair"]));
    assert_eq!(seat(&map, "101-B3")["section"], "101");
    assert_eq!(seat(&map, "101-B3")["price"], 1500);
    let admin_map = s
        .get(&format!("/shows/{id}/seats"))
        .admin()
        .send()
        .await
        .json;
    assert_eq!(seat(&admin_map, "A1")["block_reason"], "venue");

    // Editing the venue moves nothing of the show.
    let edited = s
        .call(Method::PUT, &format!("/venues/{venue}"))
        .admin()
        .json(json!({"name": "Screen 3", "rows": [{"row": "Z", "seats": 2}]}))
        .send()
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.text());
    assert_eq!(edited.json["seats_total"], 2);
    let again = s.get(&format!("/shows/{id}/seats")).send().await.json;
    assert_eq!(again["seats"].as_array().unwrap().len(), 14);

    for (body, status, code, field) in [
        (
            json!({"venue_id": venue, "rows": [{"row": "A", "seats": 1}]}),
            400,
            "invalid_request",
            Some("rows"),
        ),
        (json!({}), 400, "invalid_request", Some("rows")),
        (json!({"venue_id": "424242"}), 404, "venue_not_found", None),
        (json!({"venue_id": "x"}), 404, "venue_not_found", None),
    ] {
        let r = s.post("/shows").admin().json(show_body(body)).send().await;
        assert_eq!(
            (r.status.as_u16(), r.error()),
            (status, code),
            "{}",
            r.text()
        );
        assert_eq!(r.json.get("field").and_then(Value::as_str), field);
    }
    let r = s.get("/venues/0").send().await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::NOT_FOUND, "venue_not_found")
    );
    let r = s
        .post("/venues")
        .json(json!({"name": "x", "rows": rows}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = s
        .call(Method::PUT, "/venues/424242")
        .admin()
        .json(json!({"name": "x", "rows": rows}))
        .send()
        .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::NOT_FOUND, "venue_not_found")
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_take_seats_off_sale_and_back() {
    let mut s = TestServer::start().await;
    let show = s.show(&[("A", 6)]).await;
    let mut sse = Sse::open(s.addr, &format!("/shows/{show}/events"), &[]).await;
    s.hold(&show, "alice", &["A3"]).await;
    assert_eq!(sse.next_event().await.unwrap().data["cause"], "hold");
    let blocks = format!("/shows/{show}/blocks");

    let refused = s
        .post(&blocks)
        .admin()
        .json(json!({"seats": ["A2", "A3"], "reason": "tech desk"}))
        .send()
        .await;
    assert_eq!(
        (refused.status, refused.error()),
        (StatusCode::CONFLICT, "seats_unavailable")
    );
    assert_eq!(refused.json["seats"], json!(["A3"]));
    let made = s
        .post(&blocks)
        .admin()
        .json(json!({"seats": ["A2", "A1"], "reason": "tech desk"}))
        .send()
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text());
    assert_eq!(made.json["seats"], json!(["A1", "A2"]));
    let e = sse.next_event().await.unwrap();
    assert_eq!(e.data["cause"], "block");
    assert_eq!(e.data["seats"][0]["state"], "blocked");
    let block = made.json["block_id"].as_str().unwrap().to_owned();

    let map = s.get(&format!("/shows/{show}/seats")).send().await.json;
    assert_eq!(seat(&map, "A1")["state"], "blocked");
    let counts = s.get(&format!("/shows/{show}")).send().await.json;
    assert_eq!(
        (counts["blocked"].as_i64(), counts["held"].as_i64()),
        (Some(2), Some(1))
    );
    // Refused by a hold, twice (the second may come from the server's memory), and by
    // best available when only blocked seats would fit.
    for _ in 0..2 {
        let r = s
            .post(&format!("/shows/{show}/holds"))
            .user("bob")
            .json(json!({"seats": ["A1"]}))
            .send()
            .await;
        assert_eq!(
            (r.status, r.error()),
            (StatusCode::CONFLICT, "seats_unavailable")
        );
        assert_eq!(r.json["seats"], json!(["A1"]));
    }
    let r = s
        .post(&format!("/shows/{show}/holds/best"))
        .user("bob")
        .json(json!({"count": 4}))
        .send()
        .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::CONFLICT, "seats_unavailable")
    );
    let listed = s.get(&blocks).admin().send().await;
    assert_eq!(listed.json["blocks"][0]["reason"], "tech desk");
    assert_eq!(s.get(&blocks).send().await.status, StatusCode::UNAUTHORIZED);

    let gone = s.delete(&format!("{blocks}/{block}")).admin().send().await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    let e = sse.next_event().await.unwrap();
    assert_eq!(
        (
            e.data["cause"].as_str(),
            e.data["seats"][0]["state"].as_str()
        ),
        (Some("unblock"), Some("available"))
    );
    let twice = s.delete(&format!("{blocks}/{block}")).admin().send().await;
    assert_eq!(
        (twice.status, twice.error()),
        (StatusCode::NOT_FOUND, "block_not_found")
    );
    let bad = s.delete(&format!("{blocks}/nope")).admin().send().await;
    assert_eq!(bad.error(), "block_not_found");
    s.hold(&show, "bob", &["A1", "A2"]).await;
    for body in [
        json!({"seats": [], "reason": "x"}),
        json!({"seats": ["A4"], "reason": ""}),
        json!({"seats": ["A4"], "reason": "a\u{7}b"}),
        json!({"seats": ["A4"]}),
    ] {
        let r = s.post(&blocks).admin().json(body).send().await;
        assert_eq!(
            (r.status, r.error()),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{}",
            r.text()
        );
    }
    assert_eq!(s.count("SELECT count(*) FROM blocks").await, 0);
    s.stop().await;
}

#[tokio::test]
async fn ticket_types_price_holds_and_bookings() {
    let mut s = TestServer::start().await;
    let created = s
        .post("/shows")
        .admin()
        .json(show_body(json!({
            "rows": [{"row": "A", "seats": 6}, {"row": "B", "seats": 6, "category": "premium"}],
            "ticket_types": [
                {"type": "adult", "prices": {"standard": 1200, "premium": 1800}},
                {"type": "child", "prices": {"standard": 800}}
            ]
        })))
        .send()
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    assert_eq!(created.json["ticket_types"][1]["type"], "child");
    let show = created.json["id"].as_str().unwrap().to_owned();
    let hold = s
        .post(&format!("/shows/{show}/holds"))
        .user("alice")
        .json(json!({"seats": ["A1", "A2", "B1"], "ticket_types": {"A2": "child"}}))
        .send()
        .await;
    assert_eq!(hold.status, StatusCode::CREATED, "{}", hold.text());
    assert_eq!(hold.json["total"], 3800);
    assert_eq!(
        hold.json["tickets"],
        json!([
            {"seat": "A1", "type": "adult", "price": 1200},
            {"seat": "A2", "type": "child", "price": 800},
            {"seat": "B1", "type": "adult", "price": 1800}
        ])
    );
    let id = hold.json["hold_id"].as_str().unwrap();
    let booking = s
        .post(&format!("/holds/{id}/confirm"))
        .user("alice")
        .send()
        .await;
    assert_eq!(booking.json["tickets"], hold.json["tickets"]);
    assert_eq!(booking.json["total"], 3800);
    let map = s.get(&format!("/shows/{show}/seats")).send().await.json;
    assert_eq!(map["ticket_types"], created.json["ticket_types"]);

    let r = s
        .post(&format!("/shows/{show}/holds"))
        .user("bob")
        .json(json!({"seats": ["B2", "B3"], "ticket_types": {"B3": "child"}}))
        .send()
        .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::CONFLICT, "ticket_type_unavailable")
    );
    assert_eq!(r.json["tickets"], json!([{"seat": "B3", "type": "child"}]));
    for body in [
        json!({"seats": ["B2"], "ticket_types": {"B2": "senior"}}),
        json!({"seats": ["B2"], "ticket_types": {"B3": "child"}}),
        json!({"seats": ["B2"], "ticket_types": {"B2": "Child!"}}),
        json!({"seats": ["B2"], "ticket_types": {"b2": "child"}}),
    ] {
        let r = s
            .post(&format!("/shows/{show}/holds"))
            .user("bob")
            .json(body)
            .send()
            .await;
        assert_eq!(
            (r.status, r.error()),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{}",
            r.text()
        );
        assert_eq!(r.json["field"], "ticket_types");
    }
    let best = s
        .post(&format!("/shows/{show}/holds/best"))
        .user("bob")
        .json(json!({"ticket_types": ["child", "adult"]}))
        .send()
        .await;
    assert_eq!(best.status, StatusCode::CREATED, "{}", best.text());
    assert_eq!(best.json["total"], 2000);
    let r = s
        .post(&format!("/shows/{show}/holds/best"))
        .user("bob")
        .json(json!({"count": 3, "ticket_types": ["child"]}))
        .send()
        .await;
    assert_eq!(
        (r.status, r.json["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("ticket_types"))
    );
    for (body, field) in [
        (
            json!({"rows": [{"row": "A", "seats": 2}], "prices": {}, "ticket_types": [{"type": "a", "prices": {"standard": 1}}]}),
            "ticket_types",
        ),
        (
            json!({"rows": [{"row": "A", "seats": 2}], "ticket_types": [{"type": "a", "prices": {"vip": 1}}]}),
            "ticket_types",
        ),
        (
            json!({"rows": [{"row": "A", "seats": 2}], "ticket_types": []}),
            "ticket_types",
        ),
        (
            json!({"rows": [{"row": "A", "seats": 2}], "max_seats_per_user": 0}),
            "max_seats_per_user",
        ),
        (
            json!({"rows": [{"row": "A", "seats": 2, "section": "a-b"}]}),
            "rows.section",
        ),
        (
            json!({"rows": [{"row": "A", "seats": 2, "features": {"wheelchair": [3]}}]}),
            "rows.features",
        ),
        (
            json!({"rows": [{"row": "A", "seats": 2, "features": {"Wheel": [1]}}]}),
            "rows.features",
        ),
        (
            json!({"rows": [{"row": "A", "seats": 2, "blocked": [0]}]}),
            "rows.blocked",
        ),
        (
            json!({"rows": [{"row": "A", "seats": 2, "section": "S"}, {"row": "A", "seats": 2, "section": "S"}]}),
            "rows",
        ),
    ] {
        let r = s.post("/shows").admin().json(show_body(body)).send().await;
        assert_eq!(
            (r.status, r.error()),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{}",
            r.text()
        );
        assert_eq!(r.json["field"], field, "{}", r.text());
    }
    s.stop().await;
}

/// Fifty holds of two seats each by one user, at once, half through each of two server
/// processes on one database: with `max_seats_per_user` 6, exactly three are made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limit_per_buyer_holds_across_two_servers() {
    let a = TestServer::start().await;
    let b = TestServer::start_on(&a.database_url, |_| {}).await;
    let rows: Vec<Value> = (0..10)
        .map(|i| json!({"row": ((b'A' + i) as char).to_string(), "seats": 10}))
        .collect();
    let created = a
        .post("/shows")
        .admin()
        .json(show_body(json!({"rows": rows, "max_seats_per_user": 6})))
        .send()
        .await;
    assert_eq!(created.json["max_seats_per_user"], 6);
    let show = created.json["id"].as_str().unwrap().to_owned();
    let servers = [Arc::new(a), Arc::new(b)];
    let mut tasks = Vec::new();
    for i in 0..50usize {
        let server = servers[i % 2].clone();
        let show = show.clone();
        let row = ((b'A' + (i / 5) as u8) as char).to_string();
        let seats = [
            format!("{row}{}", (i % 5) * 2 + 1),
            format!("{row}{}", (i % 5) * 2 + 2),
        ];
        tasks.push(tokio::spawn(async move {
            let mut call = server
                .post(&format!("/shows/{show}/holds"))
                .user("scalper")
                .json(json!({ "seats": seats }));
            if i % 3 == 0 {
                call = call.key(&format!("k-{i}"));
            }
            call.send().await
        }));
    }
    let (mut made, mut limited) = (0, 0);
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            StatusCode::CREATED => made += 1,
            StatusCode::CONFLICT => {
                assert_eq!(r.error(), "user_limit_reached", "{}", r.text());
                assert_eq!(r.json["limit"], 6);
                limited += 1;
            }
            other => panic!("unexpected {other}: {}", r.text()),
        }
    }
    assert_eq!((made, limited), (3, 47));
    let held = servers[0]
        .count("SELECT count(*) FROM hold_seats hs JOIN holds h ON h.id = hs.hold_id AND h.status = 'active'")
        .await;
    assert_eq!(held, 6);
    let r = servers[1]
        .post(&format!("/shows/{show}/holds/best"))
        .user("scalper")
        .json(json!({"count": 1}))
        .send()
        .await;
    assert_eq!(
        (r.error(), r.json["current"].as_i64()),
        ("user_limit_reached", Some(6))
    );
    let metrics = servers[1].get("/metrics").send().await.text();
    assert!(
        metrics.contains("booking_user_limit_refusals_total"),
        "{metrics}"
    );
    let [a, b] = servers;
    Arc::try_unwrap(a).ok().unwrap().stop().await;
    Arc::try_unwrap(b).ok().unwrap().stop().await;
}
