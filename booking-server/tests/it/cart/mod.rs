//! Holds and bookings that change, over HTTP: seats and places added to and removed
//! from a live hold (here), bookings cancelled in part and seats exchanged
//! (`bookings.rs`); their events and refusals; bad input (`bad_input.rs`); adds and
//! exchanges racing holds through two server binaries (`races.rs`).

mod bad_input;
mod bookings;
mod races;

use crate::common::audit::audit;
use crate::common::{Res, Sse, SseEvent, TestServer};
use crate::process::spawn_ready;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};

/// A show of rows A (standard) and B (premium), 6 seats each, and the area FLOOR of 10
/// places; adult (the default: 1000, 1500, 500 a place) and child (600, 900, 300).
pub(crate) async fn cart_show(s: &TestServer) -> String {
    let res = s
        .post("/shows")
        .admin()
        .json(json!({
            "title": "Cart", "starts_at": "2030-01-01T20:00:00Z",
            "rows": [{"row": "A", "seats": 6}, {"row": "B", "seats": 6, "category": "premium"}],
            "areas": [{"area": "FLOOR", "capacity": 10, "category": "standing"}],
            "ticket_types": [
                {"type": "adult", "prices": {"standard": 1000, "premium": 1500, "standing": 500}},
                {"type": "child", "prices": {"standard": 600, "premium": 900, "standing": 300}}
            ]
        }))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    res.json["id"].as_str().unwrap().to_owned()
}

/// `POST path` as `user` with `body`.
pub(crate) async fn post(s: &TestServer, path: impl AsRef<str>, user: &str, body: Value) -> Res {
    s.post(path.as_ref()).user(user).json(body).send().await
}

/// Holds `body` for `user`; returns the answer, checked `201`.
pub(crate) async fn hold(s: &TestServer, show: &str, user: &str, body: Value) -> Res {
    let res = s
        .post(&format!("/shows/{show}/holds"))
        .user(user)
        .json(body)
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    res
}

/// Holds `body` for `user` and confirms it; returns the booking id.
pub(crate) async fn book(s: &TestServer, show: &str, user: &str, body: Value) -> String {
    let held = hold(s, show, user, body).await;
    let id = held.json["hold_id"].as_str().unwrap();
    let res = s
        .post(&format!("/holds/{id}/confirm"))
        .user(user)
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    res.json["booking_id"].as_str().unwrap().to_owned()
}

pub(crate) fn labels(data: &Value) -> Vec<&str> {
    data["seats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["label"].as_str().unwrap())
        .collect()
}

/// The next event, checked to be of `cause`, with its seats' labels and states.
pub(crate) async fn next(sse: &mut Sse, cause: &str) -> (SseEvent, BTreeMap<String, String>) {
    let e = sse.next_event().await.expect("an event");
    assert_eq!(e.data["cause"], cause, "{}", e.data);
    let states = e.data["seats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["label"].as_str().unwrap().to_owned(),
                s["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (e, states)
}

/// The area change of an event: (available, held, booked) of FLOOR.
pub(crate) fn floor_delta(data: &Value) -> (i64, i64, i64) {
    let a = &data["areas"][0];
    assert_eq!(a["area"], "FLOOR", "{data}");
    let n = |k: &str| a.get(k).and_then(Value::as_i64).unwrap_or(0);
    (n("available"), n("held"), n("booked"))
}

/// A seat's state in the seat map served now.
pub(crate) async fn state_of(s: &TestServer, show: &str, label: &str) -> String {
    let map = s.get(&format!("/shows/{show}/seats")).send().await;
    let seat = map.json["seats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|seat| seat["label"] == label)
        .unwrap_or_else(|| panic!("{label} is in the map"));
    seat["state"].as_str().unwrap().to_owned()
}

/// The value of a counter in `/metrics`.
pub(crate) async fn counter(s: &TestServer, name: &str) -> u64 {
    let text = s.get("/metrics").send().await.text();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        .parse()
        .unwrap()
}

pub(crate) fn assert_error(res: &Res, status: StatusCode, code: &str) {
    assert_eq!(res.status, status, "{}", res.text());
    assert_eq!(res.error(), code, "{}", res.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seats_and_places_added_to_a_hold_keep_its_id_and_deadline_all_or_none() {
    let mut s = TestServer::start_with(|c| c.max_seats_per_hold = 5).await;
    let show = cart_show(&s).await;
    let mut sse = Sse::open(s.addr, &format!("/shows/{show}/events"), &[]).await;
    let created = hold(&s, &show, "alice", json!({"seats": ["A1"]})).await;
    let id = created.json["hold_id"].as_str().unwrap().to_owned();
    let add = format!("/holds/{id}/add");

    // A seat and a place, each with its type, under a key.
    let body = json!({"seats": ["A2"], "areas": {"FLOOR": 1},
                      "ticket_types": {"A2": "child", "FLOOR": ["child"]}});
    let added = s
        .post(&add)
        .user("alice")
        .key("add-1")
        .json(body.clone())
        .send()
        .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.text());
    assert_eq!(added.json["hold_id"], id.as_str());
    assert_eq!(added.json["status"], "active");
    assert_eq!(added.json["expires_at"], created.json["expires_at"]);
    assert_eq!(added.json["seats"], json!(["A1", "A2"]));
    assert_eq!(added.json["areas"], json!({"FLOOR": 1}));
    assert_eq!(added.json["total"], 1000 + 600 + 300);
    let types: Vec<&str> = added.json["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["adult", "child", "child"]);
    assert_eq!(state_of(&s, &show, "A2").await, "held", "the map follows");

    // The same key replays; the same seats again without one add nothing twice.
    let replay = s
        .post(&add)
        .user("alice")
        .key("add-1")
        .json(body)
        .send()
        .await;
    assert_eq!(replay.status, StatusCode::OK);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.body, added.body, "byte for byte");
    let again = post(&s, &add, "alice", json!({"seats": ["A2"]})).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text());
    assert_eq!(again.json["seats"], json!(["A1", "A2"]));
    assert_eq!(again.json["total"], added.json["total"]);
    assert_eq!(s.count("SELECT count(*) FROM hold_seats").await, 3);

    let (_, states) = next(&mut sse, "hold").await;
    assert_eq!(states.keys().collect::<Vec<_>>(), ["A1"]);
    let (e, states) = next(&mut sse, "add").await;
    assert_eq!(labels(&e.data), ["A2"]);
    assert_eq!(states["A2"], "held");
    assert!(e.data["seats"][0]["version"].is_string());
    assert_eq!(floor_delta(&e.data), (-1, 1, 0));

    // All or none: B1 is bob's, so A3 is not added either.
    hold(&s, &show, "bob", json!({"seats": ["B1"]})).await;
    // The replay and the repeat above wrote nothing: bob's hold is the next event.
    let (_, states) = next(&mut sse, "hold").await;
    assert_eq!(states.keys().collect::<Vec<_>>(), ["B1"]);
    let refused = post(&s, &add, "alice", json!({"seats": ["A3", "B1"]})).await;
    assert_error(&refused, StatusCode::CONFLICT, "seats_unavailable");
    assert_eq!(refused.json["seats"], json!(["B1"]));
    let read = s.get(&format!("/holds/{id}")).user("alice").send().await;
    assert_eq!(read.json["seats"], json!(["A1", "A2"]));
    assert_eq!(read.json["areas"], json!({"FLOOR": 1}));
    assert_eq!(read.json["total"], added.json["total"]);
    assert_eq!(state_of(&s, &show, "A3").await, "available");

    // MAX_SEATS_PER_HOLD (5) counts what the hold has (3).
    let over = post(&s, &add, "alice", json!({"seats": ["A3", "A4", "A5"]})).await;
    assert_error(&over, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(over.json["field"], "seats");

    // Another user may not add; an admin may.
    let other = post(&s, &add, "bob", json!({"seats": ["A3"]})).await;
    assert_error(&other, StatusCode::FORBIDDEN, "forbidden");
    let admin = s
        .post(&add)
        .admin()
        .json(json!({"seats": ["A3"]}))
        .send()
        .await;
    assert_eq!(admin.status, StatusCode::OK, "{}", admin.text());
    assert_eq!(admin.json["seats"], json!(["A1", "A2", "A3"]));
    assert_eq!(admin.json["user_id"], "alice");
    let (_, states) = next(&mut sse, "add").await;
    assert_eq!(states.keys().collect::<Vec<_>>(), ["A3"]);
    assert_eq!(counter(&s, "booking_hold_adds_total").await, 3);

    // Only an active hold: confirmed, expired, released.
    let confirmed = s
        .post(&format!("/holds/{id}/confirm"))
        .user("alice")
        .send()
        .await;
    assert_eq!(confirmed.status, StatusCode::CREATED);
    assert_eq!(confirmed.json["seats"], json!(["A1", "A2", "A3"]));
    assert_eq!(confirmed.json["total"], 1000 + 600 + 300 + 1000);
    let late = post(&s, &add, "alice", json!({"seats": ["A4"]})).await;
    assert_error(&late, StatusCode::CONFLICT, "hold_confirmed");
    let lapsing = hold(&s, &show, "carol", json!({"seats": ["A6"]})).await;
    let lapsing = lapsing.json["hold_id"].as_str().unwrap();
    s.lapse(lapsing).await;
    let expired = post(
        &s,
        format!("/holds/{lapsing}/add"),
        "carol",
        json!({"seats": ["A5"]}),
    )
    .await;
    assert_error(&expired, StatusCode::GONE, "hold_expired");
    let gone = hold(&s, &show, "dave", json!({"seats": ["B6"]})).await;
    let gone = gone.json["hold_id"].as_str().unwrap();
    let r = s
        .delete(&format!("/holds/{gone}"))
        .user("dave")
        .send()
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let released = post(
        &s,
        format!("/holds/{gone}/add"),
        "dave",
        json!({"seats": ["B5"]}),
    )
    .await;
    assert_error(&released, StatusCode::CONFLICT, "hold_released");
    assert_eq!(state_of(&s, &show, "B5").await, "available");
    audit(&s.database_url).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seats_and_places_removed_from_a_hold_are_freed_and_removing_all_releases_it() {
    let mut s = TestServer::start().await;
    let show = cart_show(&s).await;
    let mut sse = Sse::open(s.addr, &format!("/shows/{show}/events"), &[]).await;
    let created = hold(
        &s,
        &show,
        "alice",
        json!({"seats": ["A1", "A2"], "areas": {"FLOOR": 2}}),
    )
    .await;
    assert_eq!(created.json["total"], 2 * 1000 + 2 * 500);
    let id = created.json["hold_id"].as_str().unwrap().to_owned();
    let remove = format!("/holds/{id}/remove");
    next(&mut sse, "hold").await;

    let body = json!({"seats": ["A2"], "areas": {"FLOOR": 1}});
    let smaller = s
        .post(&remove)
        .user("alice")
        .key("rm-1")
        .json(body.clone())
        .send()
        .await;
    assert_eq!(smaller.status, StatusCode::OK, "{}", smaller.text());
    assert_eq!(smaller.json["hold_id"], id.as_str());
    assert_eq!(smaller.json["status"], "active");
    assert_eq!(smaller.json["expires_at"], created.json["expires_at"]);
    assert_eq!(smaller.json["seats"], json!(["A1"]));
    assert_eq!(smaller.json["areas"], json!({"FLOOR": 1}));
    assert_eq!(smaller.json["total"], 1000 + 500);
    // Of the area, the highest-numbered place went: the first one stays.
    let place = |hold: &Value, i: usize| {
        hold["tickets"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["area"] == "FLOOR")
            .nth(i)
            .map(|t| t["seat"].clone())
    };
    assert_eq!(place(&smaller.json, 0), place(&created.json, 0));
    assert_eq!(place(&smaller.json, 1), None);
    let replay = s
        .post(&remove)
        .user("alice")
        .key("rm-1")
        .json(body)
        .send()
        .await;
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.body, smaller.body);
    let (e, states) = next(&mut sse, "remove").await;
    assert_eq!(labels(&e.data), ["A2"]);
    assert_eq!(states["A2"], "available");
    assert_eq!(floor_delta(&e.data), (1, -1, 0));
    assert_eq!(state_of(&s, &show, "A2").await, "available");

    // A2 is anyone's again.
    hold(&s, &show, "bob", json!({"seats": ["A2"]})).await;
    next(&mut sse, "hold").await;

    // What the hold does not have: 409 naming it, nothing changed.
    let missing = post(&s, &remove, "alice", json!({"seats": ["A1", "A3"]})).await;
    assert_error(&missing, StatusCode::CONFLICT, "not_in_hold");
    assert_eq!(missing.json["seats"], json!(["A3"]));
    let short = post(
        &s,
        &remove,
        "alice",
        json!({"seats": ["A1"], "areas": {"FLOOR": 2}}),
    )
    .await;
    assert_error(&short, StatusCode::CONFLICT, "not_in_hold");
    assert_eq!(short.json["areas"], json!(["FLOOR"]));
    let read = s.get(&format!("/holds/{id}")).user("alice").send().await;
    assert_eq!(read.json["seats"], json!(["A1"]));
    assert_eq!(read.json["areas"], json!({"FLOOR": 1}));
    let other = post(&s, &remove, "bob", json!({"seats": ["A1"]})).await;
    assert_error(&other, StatusCode::FORBIDDEN, "forbidden");

    // Removing everything releases the hold (here by an admin).
    let emptied = s
        .post(&remove)
        .admin()
        .json(json!({"seats": ["A1"], "areas": {"FLOOR": 1}}))
        .send()
        .await;
    assert_eq!(emptied.status, StatusCode::OK, "{}", emptied.text());
    assert_eq!(emptied.json["status"], "released");
    let (e, states) = next(&mut sse, "release").await;
    assert_eq!(labels(&e.data), ["A1"]);
    assert_eq!(states["A1"], "available");
    assert_eq!(floor_delta(&e.data), (1, -1, 0));
    let after = post(&s, &remove, "alice", json!({"seats": ["A1"]})).await;
    assert_error(&after, StatusCode::CONFLICT, "hold_released");
    let areas = s.get(&format!("/shows/{show}/areas")).send().await;
    assert_eq!(areas.json["areas"][0]["available"], 10);
    assert_eq!(counter(&s, "booking_hold_removes_total").await, 2);
    audit(&s.database_url).await;
    s.stop().await;
}
