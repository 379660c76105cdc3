//! Live updates over real HTTP: Server-Sent Events for every kind of change, resume by
//! Last-Event-ID, several server processes, clean close on shutdown.

use crate::common::{Sse, TestServer};
use hyper::StatusCode;
use serde_json::Value;

fn labels(data: &Value) -> Vec<String> {
    data["seats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["label"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_change_is_streamed_with_the_documented_shape_and_resumes() {
    let mut s = TestServer::start().await;
    let show = s.show(&[("A", 6)]).await;
    let path = format!("/shows/{show}/events");
    let mut sse = Sse::open(s.addr, &path, &[]).await;
    assert_eq!(sse.status, StatusCode::OK);
    assert_eq!(
        sse.headers.get("content-type").unwrap(),
        "text/event-stream"
    );

    let held = s.hold(&show, "alice", &["A1", "A2"]).await;
    let c = s
        .post(&format!("/holds/{held}/confirm"))
        .user("alice")
        .send()
        .await;
    assert_eq!(c.status, StatusCode::CREATED);
    let released = s.hold(&show, "alice", &["A3"]).await;
    s.delete(&format!("/holds/{released}"))
        .user("alice")
        .send()
        .await;
    let lapsing = s.hold(&show, "bob", &["A4"]).await;
    s.lapse(&lapsing).await;

    let mut events = Vec::new();
    for _ in 0..5 {
        events.push(sse.next_event().await.expect("an event"));
    }
    // The expiry comes from the server's own sweeper; then cancel.
    let booking = c.json["booking_id"].as_str().unwrap();
    let expire = sse.next_event().await.unwrap();
    events.push(expire);
    let r = s
        .post(&format!("/bookings/{booking}/cancel"))
        .user("alice")
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK);
    events.push(sse.next_event().await.unwrap());

    let expected = [
        ("hold", vec!["A1", "A2"], "held"),
        ("confirm", vec!["A1", "A2"], "booked"),
        ("hold", vec!["A3"], "held"),
        ("release", vec!["A3"], "available"),
        ("hold", vec!["A4"], "held"),
        ("expire", vec!["A4"], "available"),
        ("cancel", vec!["A1", "A2"], "available"),
    ];
    assert_eq!(events.len(), expected.len());
    for (e, (cause, seats, state)) in events.iter().zip(expected.iter()) {
        assert_eq!(e.event, "seats");
        assert!(!e.id.is_empty());
        assert_eq!(e.data["cause"], *cause, "{:?}", e.data);
        assert_eq!(e.data["show_id"], show.as_str());
        assert_eq!(labels(&e.data), *seats);
        let mut keys: Vec<&String> = e.data.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["cause", "seats", "show_id"]);
        for seat in e.data["seats"].as_array().unwrap() {
            assert_eq!(seat["state"], *state);
            assert!(seat["version"].is_string());
        }
    }
    // The versions are those of the seat map.
    let map = s.get(&format!("/shows/{show}/seats")).send().await;
    assert_eq!(
        map.json["seats"][0]["version"],
        events[6].data["seats"][0]["version"]
    );

    // Resume after the second event: with Last-Event-ID, and with ?since=.
    let second = events[1].id.clone();
    let mut again = Sse::open(s.addr, &path, &[("last-event-id", &second)]).await;
    let first_again = again.next_event().await.unwrap();
    assert_eq!(first_again.id, events[2].id);
    assert_eq!(first_again.data, events[2].data);
    let mut since = Sse::open(s.addr, &format!("{path}?since={second}"), &[]).await;
    for e in &events[2..7] {
        let got = since.next_event().await.unwrap();
        assert_eq!((&got.id, &got.data), (&e.id, &e.data));
    }
    // The query is percent-decoded (as a client's URL encoder may write it), and other
    // parameters beside it are ignored.
    let encoded = second.replace('.', "%2E");
    let mut decoded = Sse::open(s.addr, &format!("{path}?utm=x%26y&since={encoded}"), &[]).await;
    assert_eq!(decoded.status, StatusCode::OK);
    let got = decoded.next_event().await.unwrap();
    assert_eq!((&got.id, &got.data), (&events[2].id, &events[2].data));

    // Bad positions and unknown shows.
    let bad = s.get(&format!("{path}?since=yesterday")).send().await;
    assert_eq!(
        (bad.status, bad.error()),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    let bad = s.get(&path).header("last-event-id", "x.y").send().await;
    assert_eq!(
        (bad.status, bad.error()),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    let none = s.get("/shows/987654/events").send().await;
    assert_eq!(
        (none.status, none.error()),
        (StatusCode::NOT_FOUND, "show_not_found")
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_made_through_one_server_is_streamed_by_another() {
    let mut a = TestServer::start().await;
    let mut b = TestServer::start_on(&a.database_url, |_| {}).await;
    let show = a.show(&[("A", 4)]).await;
    let mut sse = Sse::open(b.addr, &format!("/shows/{show}/events"), &[]).await;
    a.hold(&show, "alice", &["A2"]).await;
    let e = sse.next_event().await.unwrap();
    assert_eq!(e.data["cause"], "hold");
    assert_eq!(labels(&e.data), ["A2"]);
    // And the other way round (resuming after the event just seen: "from now" is from
    // wherever that process's feed has got to, which may still be before it).
    let mut sse_a = Sse::open(
        a.addr,
        &format!("/shows/{show}/events"),
        &[("last-event-id", &e.id)],
    )
    .await;
    let h = b.hold(&show, "bob", &["A3"]).await;
    let e = sse_a.next_event().await.unwrap();
    assert_eq!(labels(&e.data), ["A3"]);
    assert_eq!(sse.next_event().await.unwrap().data, e.data);
    let r = a
        .post(&format!("/holds/{h}/confirm"))
        .user("bob")
        .send()
        .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "a hold made on one server confirms on the other"
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_end_cleanly_when_the_server_shuts_down() {
    let mut s = TestServer::start().await;
    let show = s.show(&[("A", 2)]).await;
    let mut sse = Sse::open(s.addr, &format!("/shows/{show}/events"), &[]).await;
    s.hold(&show, "alice", &["A1"]).await;
    assert!(sse.next_event().await.is_some());
    let stopping = s.begin_shutdown();
    assert!(sse.next_event().await.is_none(), "the stream ended");
    tokio::time::timeout(std::time::Duration::from_secs(10), stopping)
        .await
        .expect("the server stopped without waiting for the stream")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seat_map_served_from_memory_follows_changes_made_through_another_server() {
    let mut a = TestServer::start().await;
    let mut b = TestServer::start_on(&a.database_url, |_| {}).await;
    let show = a.show(&[("A", 4)]).await;
    let path = format!("/shows/{show}/seats");
    let first = a.get(&path).send().await;
    let again = a.get(&path).send().await;
    assert_eq!(first.body, again.body, "served twice the same");
    let etag = first.header("etag").unwrap().to_owned();

    // A hold through B: A's map shows it once A's feed has seen it.
    b.hold(&show, "bob", &["A2"]).await;
    let mut seen = false;
    for _ in 0..200 {
        let r = a.get(&path).header("if-none-match", &etag).send().await;
        if r.status == StatusCode::OK && r.json["seats"][1]["state"] == "held" {
            assert_ne!(r.header("etag"), Some(etag.as_str()));
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        seen,
        "server A's map caught up with the hold made through B"
    );
    // And the map A serves agrees with the database, version for version.
    let client = a.pool.get().await.unwrap();
    let fresh = booking_core::seats::seat_map(&client, booking_core::ShowId::parse(&show).unwrap())
        .await
        .unwrap();
    let served = a.get(&path).send().await;
    let mut fresh = serde_json::to_value(&fresh).unwrap();
    let mut served = served.json;
    for m in [&mut fresh, &mut served] {
        assert!(m["position"].is_string(), "{m}");
        m.as_object_mut().unwrap().remove("position");
    }
    assert_eq!(served, fresh);
    a.stop().await;
    b.stop().await;
}
