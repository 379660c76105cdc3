//! Standing areas over HTTP: from the show to the booking and back, the feed's deltas,
//! the refusal of a sold-out area from memory, and bad input.

use crate::cart::counter;
use crate::common::{Sse, TestServer};
use hyper::StatusCode;
use serde_json::{json, Value};

/// A show of row A (4 seats) and the area FLOOR of `capacity` places; adult (5000 a
/// seat, 3000 a place, the default) and child (places only, 1500).
async fn gig(s: &TestServer, capacity: u32) -> String {
    let res = s
        .post("/shows")
        .admin()
        .json(json!({
            "title": "Gig", "starts_at": "2030-01-01T20:00:00Z",
            "rows": [{"row": "A", "seats": 4}],
            "areas": [{"area": "FLOOR", "capacity": capacity, "category": "standing"}],
            "ticket_types": [
                {"type": "adult", "prices": {"standard": 5000, "standing": 3000}},
                {"type": "child", "prices": {"standing": 1500}}
            ]
        }))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    assert_eq!(res.json["seats_total"], 4, "places are not seats");
    res.json["id"].as_str().unwrap().to_owned()
}

/// (available, held, booked) of FLOOR, from `GET /shows/{id}/areas`.
async fn floor(s: &TestServer, show: &str) -> (i64, i64, i64) {
    let res = s.get(&format!("/shows/{show}/areas")).send().await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let a = &res.json["areas"][0];
    assert_eq!(a["area"], "FLOOR");
    let n = |k: &str| a[k].as_i64().unwrap();
    assert_eq!(n("available") + n("held") + n("booked"), n("capacity"));
    (n("available"), n("held"), n("booked"))
}

/// The area changes of the next event on `sse`: (available, held, booked).
async fn next_delta(sse: &mut Sse) -> (Value, (i64, i64, i64)) {
    let event = sse.next_event().await.expect("an event");
    let data = event.data;
    let a = &data["areas"][0];
    assert_eq!(a["area"], "FLOOR", "{data}");
    let n = |k: &str| a.get(k).and_then(Value::as_i64).unwrap_or(0);
    let delta = (n("available"), n("held"), n("booked"));
    (data, delta)
}

#[tokio::test]
async fn seats_and_places_are_held_booked_and_freed_together_with_live_deltas() {
    let s = TestServer::start().await;
    let show = gig(&s, 10).await;
    let mut sse = Sse::open(s.addr, &format!("/shows/{show}/events"), &[]).await;

    let held = s
        .post(&format!("/shows/{show}/holds"))
        .user("alice")
        .json(json!({"seats": ["A1", "A2"], "areas": {"FLOOR": 4},
                     "ticket_types": {"FLOOR": ["adult", "adult", "child", "child"]}}))
        .send()
        .await;
    assert_eq!(held.status, StatusCode::CREATED, "{}", held.text());
    assert_eq!(held.json["seats"], json!(["A1", "A2"]));
    assert_eq!(held.json["areas"], json!({"FLOOR": 4}));
    assert_eq!(held.json["total"], 2 * 5000 + 2 * 3000 + 2 * 1500);
    let tickets = held.json["tickets"].as_array().unwrap();
    let places: Vec<&Value> = tickets.iter().filter(|t| t["area"] == "FLOOR").collect();
    assert_eq!(places.len(), 4);
    let types: Vec<&str> = places.iter().map(|t| t["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["adult", "adult", "child", "child"]);
    assert!(places
        .iter()
        .all(|t| t["seat"].as_str().unwrap().starts_with("FLOOR-")));
    let hold_id = held.json["hold_id"].as_str().unwrap().to_owned();
    let (event, delta) = next_delta(&mut sse).await;
    assert_eq!(delta, (-4, 4, 0));
    assert_eq!(event["seats"].as_array().unwrap().len(), 2);
    assert_eq!(floor(&s, &show).await, (6, 4, 0));
    let map = s.get(&format!("/shows/{show}/seats")).send().await.json;
    assert_eq!(map["areas"][0]["available"], 6);
    assert_eq!(map["areas"][0]["price"], 3000);
    assert_eq!(map["seats"].as_array().unwrap().len(), 4);

    // A hold of places only; too many is refused naming the area.
    let short = s
        .post(&format!("/shows/{show}/holds"))
        .user("bob")
        .json(json!({"areas": {"FLOOR": 7}}))
        .send()
        .await;
    assert_eq!(short.status, StatusCode::CONFLICT);
    assert_eq!(short.error(), "seats_unavailable");
    assert_eq!(short.json["areas"], json!(["FLOOR"]));
    assert_eq!(short.json["seats"], json!([]));

    let confirmed = s
        .post(&format!("/holds/{hold_id}/confirm"))
        .user("alice")
        .send()
        .await;
    assert_eq!(
        confirmed.status,
        StatusCode::CREATED,
        "{}",
        confirmed.text()
    );
    assert_eq!(confirmed.json["areas"], json!({"FLOOR": 4}));
    assert_eq!(next_delta(&mut sse).await.1, (0, -4, 4));
    assert_eq!(floor(&s, &show).await, (6, 0, 4));
    let booking = confirmed.json["booking_id"].as_str().unwrap().to_owned();
    let read = s
        .get(&format!("/bookings/{booking}"))
        .user("alice")
        .send()
        .await;
    assert_eq!(read.json["tickets"], held.json["tickets"]);

    let cancelled = s
        .post(&format!("/bookings/{booking}/cancel"))
        .user("alice")
        .send()
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.text());
    assert_eq!(next_delta(&mut sse).await.1, (4, 0, -4));
    assert_eq!(floor(&s, &show).await, (10, 0, 0));

    let six = s
        .post(&format!("/shows/{show}/holds"))
        .user("bob")
        .json(json!({"areas": {"FLOOR": 6}}))
        .send()
        .await;
    assert_eq!(six.status, StatusCode::CREATED, "{}", six.text());
    assert_eq!(six.json["seats"], json!([]));
    let (event, delta) = next_delta(&mut sse).await;
    assert_eq!(delta, (-6, 6, 0));
    assert_eq!(event["seats"], json!([]), "an event of places only");
    let id = six.json["hold_id"].as_str().unwrap();
    let gone = s.delete(&format!("/holds/{id}")).user("bob").send().await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    assert_eq!(next_delta(&mut sse).await.1, (6, -6, 0));
    assert_eq!(floor(&s, &show).await, (10, 0, 0));
}

#[tokio::test]
async fn a_venue_with_areas_gives_its_shows_their_places() {
    let s = TestServer::start().await;
    let venue = s
        .post("/venues")
        .admin()
        .json(json!({"name": "Field", "areas": [{"area": "MEADOW", "capacity": 40}]}))
        .send()
        .await;
    assert_eq!(venue.status, StatusCode::CREATED, "{}", venue.text());
    assert_eq!(venue.json["seats_total"], 0);
    assert_eq!(venue.json["places_total"], 40);
    assert_eq!(
        venue.json["areas"],
        json!([{"area": "MEADOW", "capacity": 40, "category": "standard"}])
    );
    let id = venue.json["venue_id"].as_str().unwrap();
    let show = s
        .post("/shows")
        .admin()
        .json(
            json!({"title": "Open air", "starts_at": "2030-06-01T18:00:00Z",
                     "venue_id": id, "prices": {"standard": 2500}}),
        )
        .send()
        .await;
    assert_eq!(show.status, StatusCode::CREATED, "{}", show.text());
    let show = show.json["id"].as_str().unwrap();
    let areas = s.get(&format!("/shows/{show}/areas")).send().await;
    assert_eq!(
        areas.json["areas"],
        json!([{"area": "MEADOW", "category": "standard", "capacity": 40, "available": 40,
                "held": 0, "booked": 0, "price": 2500}])
    );
    let map = s.get(&format!("/shows/{show}/seats")).send().await;
    assert_eq!(map.json["seats"], json!([]));
    // Best available has no seats to offer.
    let best = s
        .post(&format!("/shows/{show}/holds/best"))
        .user("u")
        .json(json!({"count": 1}))
        .send()
        .await;
    assert_eq!(best.status, StatusCode::CONFLICT, "{}", best.text());
}

/// Once the map this process keeps shows the area sold out (and is current), a hold of
/// its places is refused from memory: here it is answered while the seats table is
/// locked, which a trip to the database would wait on until its lock timeout (503).
#[tokio::test]
async fn a_sold_out_area_is_refused_from_memory() {
    let s = TestServer::start().await;
    let show = gig(&s, 3).await;
    let path = format!("/shows/{show}/holds");
    let all = s
        .post(&path)
        .user("alice")
        .json(json!({"areas": {"FLOOR": 3}}))
        .send()
        .await;
    assert_eq!(all.status, StatusCode::CREATED, "{}", all.text());
    assert_eq!(
        s.get(&format!("/shows/{show}/seats")).send().await.status,
        StatusCode::OK
    );
    let mut client = s.pool.get().await.unwrap();
    let tx = client.transaction().await.unwrap();
    tx.batch_execute("LOCK TABLE seats IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let refused = s
        .post(&path)
        .user("bob")
        .json(json!({"areas": {"FLOOR": 1}}))
        .send()
        .await;
    tx.rollback().await.unwrap();
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text());
    assert_eq!(refused.json["areas"], json!(["FLOOR"]));

    // Freed in the database: not refused from memory any more.
    let id = all.json["hold_id"].as_str().unwrap();
    let gone = s.delete(&format!("/holds/{id}")).user("alice").send().await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    let mine = s
        .post(&path)
        .user("bob")
        .json(json!({"areas": {"FLOOR": 1}}))
        .send()
        .await;
    assert_eq!(mine.status, StatusCode::CREATED, "{}", mine.text());
}

#[tokio::test]
async fn bad_area_input_gets_the_documented_errors_and_writes_nothing() {
    let s = TestServer::start().await;
    let show = gig(&s, 10).await;
    let base = json!({"title": "T", "starts_at": "2030-01-01T20:00:00Z",
                      "rows": [{"row": "A", "seats": 2}]});
    let with = |areas: Value| {
        let mut b = base.clone();
        b["areas"] = areas;
        b
    };
    let bad_shows = [
        (
            with(json!([{"area": "FLOOR", "capacity": 0}])),
            "areas[0].capacity",
        ),
        (
            with(json!([{"area": "FLOOR", "capacity": 100001}])),
            "areas[0].capacity",
        ),
        (
            with(json!([{"area": "floor", "capacity": 5}])),
            "areas[0].area",
        ),
        (
            with(json!([{"area": "FLOOR-1", "capacity": 5}])),
            "areas[0].area",
        ),
        (
            with(json!([{"area": "F", "capacity": 5}, {"area": "F", "capacity": 6}])),
            "areas",
        ),
        (
            with(json!([{"area": "F", "capacity": 5, "size": 3}])),
            "areas[0]",
        ),
        (with(json!([["F", 5]])), "areas[0]"),
        (
            with(json!([{"area": "F", "capacity": 5, "category": "VIP"}])),
            "areas[0].category",
        ),
        (
            json!({"title": "T", "starts_at": "2030-01-01T20:00:00Z", "venue_id": "1",
                   "areas": [{"area": "F", "capacity": 5}]}),
            "areas",
        ),
        (
            json!({"title": "T", "starts_at": "2030-01-01T20:00:00Z", "rows": []}),
            "rows",
        ),
    ];
    for (body, field) in bad_shows {
        let r = s.post("/shows").admin().json(body.clone()).send().await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text());
        assert!(
            r.json["field"].as_str().unwrap().starts_with(field),
            "{body}: {}",
            r.text()
        );
    }

    let path = format!("/shows/{show}/holds");
    let bad_holds = [
        (json!({"areas": {"floor": 1}}), 400, "areas"),
        (json!({"areas": {"FLOOR": 0}}), 400, "areas"),
        (json!({"areas": {"FLOOR": 11}}), 400, "areas"),
        (
            json!({"seats": ["A1", "A2"], "areas": {"FLOOR": 9}}),
            400,
            "areas",
        ),
        (json!({"areas": {}}), 400, "seats"),
        (json!({"seats": []}), 400, "seats"),
        (
            json!({"areas": {"FLOOR": 2}, "ticket_types": {"FLOOR": ["adult"]}}),
            400,
            "ticket_types",
        ),
        (
            json!({"areas": {"FLOOR": 1}, "ticket_types": {"PIT": ["adult"]}}),
            400,
            "ticket_types",
        ),
        (
            json!({"areas": {"FLOOR": 1}, "ticket_types": {"FLOOR": ["vip"]}}),
            400,
            "ticket_types",
        ),
        (json!({"areas": {"FLOOR": "2"}}), 400, "areas"),
        (json!({"areas": {"PIT": 1}}), 404, "area_not_found"),
    ];
    for (body, status, what) in bad_holds {
        let r = s.post(&path).user("u").json(body.clone()).send().await;
        assert_eq!(r.status.as_u16(), status, "{body}: {}", r.text());
        if status == 400 {
            assert!(
                r.json["field"].as_str().unwrap().starts_with(what),
                "{body}: {}",
                r.text()
            );
        } else {
            assert_eq!(r.error(), what);
            assert_eq!(r.json["areas"], json!(["PIT"]));
        }
    }
    // A type the show has but does not sell for the area's category.
    let no_child_seats = s
        .post(&path)
        .user("u")
        .json(json!({"seats": ["A1"], "areas": {"FLOOR": 1}, "ticket_types": {"A1": "child"}}))
        .send()
        .await;
    assert_eq!(no_child_seats.status, StatusCode::CONFLICT);
    assert_eq!(no_child_seats.error(), "ticket_type_unavailable");
    assert_eq!(
        no_child_seats.json["tickets"],
        json!([{"seat": "A1", "type": "child"}])
    );
    assert_eq!(s.count("SELECT count(*) FROM holds").await, 0);
    assert_eq!(floor(&s, &show).await, (10, 0, 0));
    let missing = s.get("/shows/999/areas").send().await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.error(), "show_not_found");
}

/// A late payment over HTTP: `allow_late` books an expired hold whose seats and
/// places nobody took; one whose seat someone took is `410` naming it.
#[tokio::test]
async fn a_late_payment_books_what_nobody_took_and_names_what_was_taken() {
    let s = TestServer::start().await;
    let show = gig(&s, 4).await;
    let path = format!("/shows/{show}/holds");
    let hold = |user: &str, body: Value| s.post(&path).user(user).json(body).send();
    let mine = hold("alice", json!({"seats": ["A1"], "areas": {"FLOOR": 2}})).await;
    let id = mine.json["hold_id"].as_str().unwrap().to_owned();
    s.lapse(&id).await;
    let confirm = |user: &str, id: &str, body: Value| {
        s.post(&format!("/holds/{id}/confirm"))
            .user(user)
            .json(body)
            .send()
    };
    let on_time = confirm("alice", &id, json!({})).await;
    assert_eq!(on_time.status, StatusCode::GONE, "{}", on_time.text());
    let bad = confirm("alice", &id, json!({"allow_late": null})).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text());
    let late = confirm("alice", &id, json!({"allow_late": true})).await;
    assert_eq!(late.status, StatusCode::CREATED, "{}", late.text());
    assert_eq!(late.json["areas"], json!({"FLOOR": 2}));
    assert_eq!(floor(&s, &show).await, (2, 0, 2));

    let theirs = hold("bob", json!({"seats": ["A2"]})).await;
    let id = theirs.json["hold_id"].as_str().unwrap().to_owned();
    s.lapse(&id).await;
    let carol = hold("carol", json!({"seats": ["A2"]})).await;
    assert_eq!(carol.status, StatusCode::CREATED, "{}", carol.text());
    let late = confirm("bob", &id, json!({"allow_late": true})).await;
    assert_eq!(late.status, StatusCode::GONE, "{}", late.text());
    assert_eq!(late.error(), "hold_expired");
    assert_eq!(late.json["seats"], json!(["A2"]));
    // One late confirm booked; the refused one is not counted.
    assert_eq!(counter(&s, "booking_late_confirms_total").await, 1);
    assert_eq!(counter(&s, "booking_confirms_total").await, 1);
}

/// `POST /holds/{id}/tickets`: new types for a seat and an area's places, the new
/// total; `409 not_in_hold` for a seat the hold lacks.
#[tokio::test]
async fn a_holds_ticket_types_change_over_http() {
    let s = TestServer::start().await;
    let show = gig(&s, 4).await;
    let held = s
        .post(&format!("/shows/{show}/holds"))
        .user("alice")
        .json(json!({"seats": ["A1"], "areas": {"FLOOR": 2}}))
        .send()
        .await;
    let id = held.json["hold_id"].as_str().unwrap().to_owned();
    let path = format!("/holds/{id}/tickets");
    let changed = s
        .post(&path)
        .user("alice")
        .key("retype-1")
        .json(json!({"ticket_types": {"FLOOR": ["child", "child"]}}))
        .send()
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text());
    assert_eq!(changed.json["total"], 5000 + 2 * 1500);
    assert_eq!(changed.json["expires_at"], held.json["expires_at"]);
    let replay = s
        .post(&path)
        .user("alice")
        .key("retype-1")
        .json(json!({"ticket_types": {"FLOOR": ["child", "child"]}}))
        .send()
        .await;
    assert_eq!(replay.json, changed.json);
    // The change ran once: the replay is not counted again.
    assert_eq!(counter(&s, "booking_ticket_changes_total").await, 1);
    let missing = s
        .post(&path)
        .user("alice")
        .json(json!({"ticket_types": {"A4": "adult"}}))
        .send()
        .await;
    assert_eq!(missing.status, StatusCode::CONFLICT, "{}", missing.text());
    assert_eq!(missing.error(), "not_in_hold");
    assert_eq!(missing.json["seats"], json!(["A4"]));
    let bad = s
        .post(&path)
        .user("alice")
        .json(json!({"ticket_types": {"FLOOR": ["child"]}}))
        .send()
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text());
    let other = s
        .post(&path)
        .user("bob")
        .json(json!({"ticket_types": {"A1": "adult"}}))
        .send()
        .await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    assert_eq!(counter(&s, "booking_ticket_changes_total").await, 1);
}
