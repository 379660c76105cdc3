//! A seat map and the events after its `position`: a client that reads the map and
//! follows the stream from there ends with exactly the database's state, seat by seat
//! and count by count, however the reads fall among concurrent changes made through two
//! server processes (right after the client's own write included). And a position older
//! than the retained feed is `410 position_expired`.

use crate::cart::cart_show;
use crate::common::{Sse, TestServer};
use booking_core::{MapPosition, Position};
use hyper::StatusCode;
use rand::Rng;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A client's copy of a map: each seat's state and version, each area's counts.
#[derive(Debug, PartialEq, Eq)]
struct Copy {
    seats: BTreeMap<String, (String, String)>,
    areas: BTreeMap<String, (i64, i64, i64)>,
}

impl Copy {
    fn of(map: &Value) -> Copy {
        let seats = map["seats"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let label = s["label"].as_str().unwrap().to_owned();
                let state = s["state"].as_str().unwrap().to_owned();
                (label, (state, s["version"].as_str().unwrap().to_owned()))
            })
            .collect();
        let areas = map["areas"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                let n = |k: &str| a[k].as_i64().unwrap();
                let code = a["area"].as_str().unwrap().to_owned();
                (code, (n("available"), n("held"), n("booked")))
            })
            .collect();
        Copy { seats, areas }
    }

    fn apply(&mut self, data: &Value) {
        for c in data["seats"].as_array().unwrap() {
            if c.get("area").is_some() {
                continue; // A place: its area's counts change below.
            }
            let label = c["label"].as_str().unwrap();
            let seat = self
                .seats
                .get_mut(label)
                .expect("an event names a seat of the map");
            *seat = (
                c["state"].as_str().unwrap().to_owned(),
                c["version"].as_str().unwrap().to_owned(),
            );
        }
        for a in data
            .get("areas")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let counts = self.areas.get_mut(a["area"].as_str().unwrap()).unwrap();
            let d = |k: &str| a.get(k).and_then(Value::as_i64).unwrap_or(0);
            counts.0 += d("available");
            counts.1 += d("held");
            counts.2 += d("booked");
        }
    }
}

/// One client: the map it read, where it stands, its stream.
struct Follower {
    copy: Copy,
    position: MapPosition,
    last: Option<Position>,
    sse: Sse,
    after_own_write: bool,
}

impl Follower {
    async fn start(s: &TestServer, show: &str, after_own_write: bool) -> Follower {
        let map = s.get(&format!("/shows/{show}/seats")).send().await;
        assert_eq!(map.status, StatusCode::OK);
        let text = map.json["position"].as_str().unwrap().to_owned();
        let position = MapPosition::parse(&text, "position").unwrap();
        let sse = Sse::open(s.addr, &format!("/shows/{show}/events?since={text}"), &[]).await;
        assert_eq!(sse.status, StatusCode::OK);
        Follower {
            copy: Copy::of(&map.json),
            position,
            last: None,
            sse,
            after_own_write,
        }
    }

    /// Applies events until it has the one at `head` (or its map reflected it).
    async fn catch_up(&mut self, head: Position) {
        while !self.position.includes(head) && self.last.is_none_or(|l| l < head) {
            let e = self.sse.next_event().await.expect("the stream goes on");
            let at = Position::parse(&e.id).unwrap();
            assert!(
                self.last.is_none_or(|l| l < at),
                "events in order, none twice"
            );
            assert!(
                !self.position.includes(at),
                "an event the map reflected came again"
            );
            self.last = Some(at);
            self.copy.apply(&e.data);
        }
    }
}

async fn db_copy(s: &TestServer, show: &str) -> Copy {
    let client = s.pool.get().await.unwrap();
    let map = booking_core::seats::seat_map(&client, booking_core::ShowId::parse(show).unwrap())
        .await
        .unwrap();
    Copy::of(&serde_json::to_value(&map).unwrap())
}

async fn head(s: &TestServer, show: &str) -> Position {
    let client = s.pool.get().await.unwrap();
    let row = client
        .query_one(
            "SELECT xid::text || '.' || id FROM seat_events WHERE show_id = $1::text::bigint
              ORDER BY xid DESC, id DESC LIMIT 1",
            &[&show],
        )
        .await
        .unwrap();
    Position::parse(&row.get::<_, String>(0)).unwrap()
}

/// One buyer's random change through `s`: a hold of seats or places that is confirmed,
/// released, cancelled after its confirm, or left to expire.
async fn random_change(s: &TestServer, show: &str, user: &str) {
    let (seats, places, ttl, fate) = {
        let mut rng = rand::thread_rng();
        let row = if rng.gen_bool(0.5) { "A" } else { "B" };
        let n = rng.gen_range(1..=6);
        let seats: Vec<String> = (0..rng.gen_range(0..=2))
            .map(|k| format!("{row}{}", (n + k - 1) % 6 + 1))
            .collect();
        let places = if seats.is_empty() || rng.gen_bool(0.3) {
            rng.gen_range(1..=2)
        } else {
            0
        };
        (seats, places, rng.gen_range(1..=2), rng.gen_range(0..4))
    };
    let mut body = json!({"seats": seats, "ttl_seconds": ttl});
    if places > 0 {
        body["areas"] = json!({"FLOOR": places});
    }
    let held = s
        .post(&format!("/shows/{show}/holds"))
        .user(user)
        .json(body)
        .send()
        .await;
    if held.status != StatusCode::CREATED {
        return; // Taken: someone else's change goes on.
    }
    let id = held.json["hold_id"].as_str().unwrap();
    match fate {
        0 => {} // Left to expire: the sweeper frees it.
        1 => {
            s.delete(&format!("/holds/{id}")).user(user).send().await;
        }
        _ => {
            let booked = s
                .post(&format!("/holds/{id}/confirm"))
                .user(user)
                .send()
                .await;
            if fate == 3 && booked.status == StatusCode::CREATED {
                let b = booked.json["booking_id"].as_str().unwrap();
                s.post(&format!("/bookings/{b}/cancel"))
                    .user(user)
                    .send()
                    .await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_map_followed_from_its_position_ends_as_the_database() {
    let a = Arc::new(TestServer::start().await);
    let b = Arc::new(TestServer::start_on(&a.database_url, |_| {}).await);
    let show = cart_show(&a).await;

    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for w in 0..6 {
        let (s, show, stop) = (
            if w % 2 == 0 { a.clone() } else { b.clone() },
            show.clone(),
            stop.clone(),
        );
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                random_change(&s, &show, &format!("buyer{w}")).await;
            }
        }));
    }
    // Clients read the map now and then, through either server, half of them just
    // after a change of their own through the same server.
    let mut followers = Vec::new();
    for round in 0..40 {
        let s = if round % 2 == 0 { &a } else { &b };
        let own = round % 4 < 2;
        if own {
            random_change(s, &show, &format!("reader{round}")).await;
        }
        followers.push(Follower::start(s, &show, own).await);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.await.unwrap();
    }
    // Settle: every hold left lapses (ttl of at most 2 s) and is swept.
    let client = a.pool.get().await.unwrap();
    for _ in 0..200 {
        let active: i64 = client
            .query_one("SELECT count(*) FROM holds WHERE status = 'active'", &[])
            .await
            .unwrap()
            .get(0);
        if active == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let head = head(&a, &show).await;
    let want = db_copy(&a, &show).await;
    assert!(
        want.seats.values().all(|(state, _)| state != "held"),
        "settled"
    );
    let mut just_after_writes = 0;
    for f in &mut followers {
        f.catch_up(head).await;
        assert_eq!(f.copy, want, "a client that read the map at {}", f.position);
        just_after_writes += usize::from(f.after_own_write);
    }
    assert_eq!(just_after_writes, 20);
    // Every state of the show went through the feed: the events themselves add up.
    crate::common::audit::audit(&a.database_url).await;
}

/// A position older than what the feed keeps: `410 position_expired`, as JSON, before
/// any stream; a malformed one is a `400` naming `since`.
#[tokio::test]
async fn a_position_before_the_retained_feed_is_gone() {
    let s = TestServer::start().await;
    let show = s.show(&[("A", 4)]).await;
    s.hold(&show, "alice", &["A1"]).await;
    s.hold(&show, "alice", &["A2"]).await;
    let client = s.pool.get().await.unwrap();
    client
        .execute(
            "UPDATE seat_events SET created_at = now() - interval '25 hours'
              WHERE id = (SELECT min(id) FROM seat_events)",
            &[],
        )
        .await
        .unwrap();
    booking_core::feed::prune(&client, Duration::from_secs(24 * 3600))
        .await
        .unwrap();
    let gone = s
        .get(&format!("/shows/{show}/events?since=0.0"))
        .send()
        .await;
    assert_eq!(gone.status, StatusCode::GONE, "{}", gone.text());
    assert_eq!(gone.error(), "position_expired");
    let gone = s
        .get(&format!("/shows/{show}/events"))
        .header("last-event-id", "1.1")
        .send()
        .await;
    assert_eq!(gone.status, StatusCode::GONE, "{}", gone.text());
    for bad in ["1.2~3", "1.2~3:4", "1.2~3:9:x", "x"] {
        let r = s
            .get(&format!("/shows/{show}/events?since={bad}"))
            .send()
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(r.json["field"], "since");
    }
    // The map's own position is kept: following from it works.
    let map = s.get(&format!("/shows/{show}/seats")).send().await;
    let at = map.json["position"].as_str().unwrap();
    let mut sse = Sse::open(s.addr, &format!("/shows/{show}/events?since={at}"), &[]).await;
    assert_eq!(sse.status, StatusCode::OK);
    s.hold(&show, "bob", &["A3"]).await;
    let e = sse.next_event().await.unwrap();
    assert_eq!(
        e.data["seats"][0]["label"], "A3",
        "the next change, nothing before it"
    );
}
