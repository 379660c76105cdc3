//! The seat map served from memory (patched from the change feed) against the database.

use crate::common::TestServer;
use hyper::StatusCode;
use rand::Rng;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// The seat map as the database has it now, serialised as the server would, without
/// its `position` (see [`without_position`]).
async fn db_map(s: &TestServer, show: &str) -> Vec<u8> {
    let client = s.pool.get().await.unwrap();
    let id = booking_core::ShowId::parse(show).unwrap();
    let map = booking_core::seats::seat_map(&client, id).await.unwrap();
    without_position(&serde_json::to_vec(&map).unwrap())
}

/// A map's JSON without its last field, `position`: two reads of one state name it
/// differently (the cache by the last event it applied, a read by its snapshot), so
/// maps are compared byte for byte up to it. Whether a position is right is checked by
/// following from it (`events.rs`).
pub(crate) fn without_position(body: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(body).unwrap();
    let at = text
        .rfind(",\"position\":\"")
        .expect("a map has a position");
    assert!(
        text.ends_with("\"}"),
        "position is the map's last field: {text}"
    );
    let mut out = text.as_bytes()[..at].to_vec();
    out.push(b'}');
    out
}

/// Waits until server `s`'s map of `show` is byte for byte the database's map, read
/// before and after it (the database did not move in between); panics after 20 s.
async fn converges(s: &TestServer, show: &str) -> Vec<u8> {
    let path = format!("/shows/{show}/seats");
    let mut last = String::new();
    for _ in 0..400 {
        let before = db_map(s, show).await;
        let served = s.get(&path).send().await;
        let after = db_map(s, show).await;
        assert_eq!(served.status, StatusCode::OK);
        if before == after && without_position(&served.body) == before {
            return before;
        }
        last = served.text();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the served map never equalled the database's:\nserved {last}\ndb     {}",
        String::from_utf8_lossy(&db_map(s, show).await)
    );
}

/// The `seats` of a hold or booking.
fn labels_of(v: &Value) -> Vec<String> {
    v["seats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

/// How many seats and places a hold has: its tickets.
fn size_of(hold: &Value) -> usize {
    hold["tickets"].as_array().unwrap().len()
}

fn seat<'a>(map: &'a Value, label: &str) -> &'a Value {
    map["seats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["label"] == label)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_patched_map_equals_the_database_after_a_random_mix_of_concurrent_changes() {
    // Arrange: two processes on one database; `a` serves the map from memory, `b`'s
    // changes reach `a` only through the feed.
    let a = Arc::new(TestServer::start().await);
    let b = Arc::new(TestServer::start_on(&a.database_url, |_| {}).await);
    // Three rows and a standing area: places ride along with some of the holds.
    let created = a
        .post("/shows")
        .admin()
        .json(json!({
            "title": "Mix", "starts_at": "2030-01-01T20:00:00Z", "prices": {"standard": 1000},
            "rows": [{"row": "A", "seats": 10}, {"row": "B", "seats": 10}, {"row": "C", "seats": 10}],
            "areas": [{"area": "FLOOR", "capacity": 12}]
        }))
        .send()
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let show = created.json["id"].as_str().unwrap().to_owned();
    let labels: Vec<String> = ["A", "B", "C"]
        .iter()
        .flat_map(|r| (1..=10).map(move |n| format!("{r}{n}")))
        .collect();
    let path = format!("/shows/{show}/seats");
    assert_eq!(a.get(&path).send().await.status, StatusCode::OK);

    // Act: eight users hold, confirm, release, extend, add to and remove from holds,
    // cancel (whole or in part) and exchange at random through either process, and let
    // short holds lapse; `a`'s map is read all along.
    let mut tasks = Vec::new();
    for w in 0..8 {
        let (a, b, show, labels, path) = (
            a.clone(),
            b.clone(),
            show.clone(),
            labels.clone(),
            path.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let user = format!("user-{w}");
            let mut holds: Vec<(String, Vec<String>, bool)> = Vec::new();
            let mut bookings: Vec<(String, Vec<String>)> = Vec::new();
            // Seats and places of each hold: an add stays within MAX_SEATS_PER_HOLD.
            let mut sizes: std::collections::HashMap<String, usize> = Default::default();
            for _ in 0..40 {
                let (via_a, action, n, ttl, pick, places) = {
                    let mut rng = rand::thread_rng();
                    (
                        rng.gen_bool(0.5),
                        rng.gen_range(0..14),
                        rng.gen_range(1..=3usize),
                        if rng.gen_bool(0.3) { 1 } else { 600 },
                        rng.gen_range(0..usize::MAX),
                        rng.gen_range(0..=2u32),
                    )
                };
                let s = if via_a { &a } else { &b };
                match action {
                    0..=3 => {
                        let start = pick % (labels.len() - n);
                        let seats: Vec<String> = labels[start..start + n].to_vec();
                        let mut body = json!({"seats": seats, "ttl_seconds": ttl});
                        if places > 0 {
                            body["areas"] = json!({"FLOOR": places});
                        }
                        let res = s
                            .post(&format!("/shows/{show}/holds"))
                            .user(&user)
                            .json(body)
                            .send()
                            .await;
                        assert!(matches!(res.status.as_u16(), 201 | 409), "{}", res.text());
                        if res.status == StatusCode::CREATED {
                            let id = res.json["hold_id"].as_str().unwrap().to_owned();
                            if via_a && ttl == 600 {
                                // Read your writes: the next map from `a` shows the hold.
                                let map = a.get(&path).send().await.json;
                                for l in &seats {
                                    assert_eq!(seat(&map, l)["state"], "held", "{l} just held");
                                }
                            }
                            sizes.insert(id.clone(), size_of(&res.json));
                            holds.push((id, seats, ttl == 600));
                        }
                    }
                    4 | 5 if !holds.is_empty() => {
                        let (id, seats, long) = holds.remove(pick % holds.len());
                        let res = s
                            .post(&format!("/holds/{id}/confirm"))
                            .user(&user)
                            .send()
                            .await;
                        assert!(matches!(res.status.as_u16(), 201 | 410), "{}", res.text());
                        if res.status == StatusCode::CREATED {
                            if via_a && long {
                                let map = a.get(&path).send().await.json;
                                for l in &seats {
                                    assert_eq!(seat(&map, l)["state"], "booked", "{l} just booked");
                                }
                            }
                            bookings.push((
                                res.json["booking_id"].as_str().unwrap().to_owned(),
                                labels_of(&res.json),
                            ));
                        }
                    }
                    6 if !holds.is_empty() => {
                        let (id, seats, _) = holds.remove(pick % holds.len());
                        let before = a.get(&path).send().await.json;
                        let res = s.delete(&format!("/holds/{id}")).user(&user).send().await;
                        assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text());
                        if via_a {
                            // Released: not shown held at the version it had as ours.
                            let map = a.get(&path).send().await.json;
                            for l in &seats {
                                let (was, now) = (seat(&before, l), seat(&map, l));
                                assert!(
                                    !(now["state"] == "held"
                                        && now["version"] == was["version"]
                                        && was["state"] == "held"),
                                    "{l} still shown held after its release"
                                );
                            }
                        }
                    }
                    7 if !holds.is_empty() => {
                        let (id, _, _) = &holds[pick % holds.len()];
                        let res = s
                            .post(&format!("/holds/{id}/extend"))
                            .user(&user)
                            .json(json!({"ttl_seconds": 600}))
                            .send()
                            .await;
                        assert!(matches!(res.status.as_u16(), 200 | 410), "{}", res.text());
                    }
                    8 if !bookings.is_empty() => {
                        let (id, _) = bookings.remove(pick % bookings.len());
                        let res = s
                            .post(&format!("/bookings/{id}/cancel"))
                            .user(&user)
                            .send()
                            .await;
                        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
                    }
                    10 if !holds.is_empty() => {
                        let i = pick % holds.len();
                        let start = pick % (labels.len() - n);
                        let seats: Vec<String> = labels[start..start + n].to_vec();
                        if sizes[&holds[i].0] + n + places as usize > 10 {
                            continue;
                        }
                        let mut body = json!({ "seats": seats });
                        if places > 0 {
                            body["areas"] = json!({"FLOOR": places});
                        }
                        let res = s
                            .post(&format!("/holds/{}/add", holds[i].0))
                            .user(&user)
                            .json(body)
                            .send()
                            .await;
                        assert!(
                            matches!(res.status.as_u16(), 200 | 409 | 410),
                            "{}",
                            res.text()
                        );
                        if res.status == StatusCode::OK {
                            if via_a && holds[i].2 {
                                let map = a.get(&path).send().await.json;
                                for l in &seats {
                                    assert_eq!(seat(&map, l)["state"], "held", "{l} just added");
                                }
                            }
                            holds[i].1 = labels_of(&res.json);
                            sizes.insert(holds[i].0.clone(), size_of(&res.json));
                        }
                    }
                    11 if holds.iter().any(|h| !h.1.is_empty()) => {
                        let i = holds.iter().position(|h| !h.1.is_empty()).unwrap();
                        let gone = holds[i].1[0].clone();
                        let res = s
                            .post(&format!("/holds/{}/remove", holds[i].0))
                            .user(&user)
                            .json(json!({"seats": [gone]}))
                            .send()
                            .await;
                        assert!(matches!(res.status.as_u16(), 200 | 410), "{}", res.text());
                        if res.status == StatusCode::OK {
                            if res.json["status"] == "released" {
                                holds.remove(i);
                            } else {
                                holds[i].1 = labels_of(&res.json);
                                sizes.insert(holds[i].0.clone(), size_of(&res.json));
                            }
                        }
                    }
                    12 if !bookings.is_empty() => {
                        let i = pick % bookings.len();
                        let Some(gone) = bookings[i].1.first().cloned() else {
                            continue;
                        };
                        let res = s
                            .post(&format!("/bookings/{}/cancel", bookings[i].0))
                            .user(&user)
                            .json(json!({"seats": [gone]}))
                            .send()
                            .await;
                        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
                        if res.json["status"] == "cancelled" {
                            bookings.remove(i);
                        } else {
                            bookings[i].1 = labels_of(&res.json);
                        }
                    }
                    13 if !bookings.is_empty() => {
                        let i = pick % bookings.len();
                        let Some(given) = bookings[i].1.first().cloned() else {
                            continue;
                        };
                        let taken = labels[pick % labels.len()].clone();
                        if bookings[i].1.contains(&taken) {
                            continue;
                        }
                        let res = s
                            .post(&format!("/bookings/{}/exchange", bookings[i].0))
                            .user(&user)
                            .json(json!({"release": [given], "take": [taken]}))
                            .send()
                            .await;
                        assert!(matches!(res.status.as_u16(), 200 | 409), "{}", res.text());
                        if res.status == StatusCode::OK {
                            if via_a {
                                // Only this user changes this booking: still booked.
                                let map = a.get(&path).send().await.json;
                                assert_eq!(
                                    seat(&map, &taken)["state"],
                                    "booked",
                                    "{taken} just taken"
                                );
                            }
                            bookings[i].1 = labels_of(&res.json);
                        }
                    }
                    _ => {
                        let res = a.get(&path).send().await;
                        assert_eq!(res.status, StatusCode::OK);
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }

    // Assert: once the feed has caught up (and the one-second holds have lapsed and
    // been swept), the map served from memory is the database's, byte for byte, in both
    // processes: its seats and its areas' counts (the feed's deltas added up).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    converges(&a, &show).await;
    converges(&b, &show).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_map_answers_304_until_a_seat_changes_in_this_or_another_process() {
    let a = TestServer::start().await;
    let b = TestServer::start_on(&a.database_url, |_| {}).await;
    let show = a.show(&[("A", 5)]).await;
    let path = format!("/shows/{show}/seats");
    let first = a.get(&path).send().await;
    let tag = first.header("etag").unwrap().to_owned();
    let again = a.get(&path).header("if-none-match", &tag).send().await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert!(again.body.is_empty());

    // A hold through this process: the very next request sees it.
    a.hold(&show, "u1", &["A1"]).await;
    let after = a.get(&path).header("if-none-match", &tag).send().await;
    assert_eq!(after.status, StatusCode::OK);
    assert_eq!(seat(&after.json, "A1")["state"], "held");
    let tag2 = after.header("etag").unwrap().to_owned();
    assert_ne!(tag2, tag);

    // A hold through another process: seen once the feed brings it.
    b.hold(&show, "u2", &["A2"]).await;
    let map = converges(&a, &show).await;
    let map: Value = serde_json::from_slice(&map).unwrap();
    assert_eq!(seat(&map, "A2")["state"], "held");
    let later = a.get(&path).header("if-none-match", &tag2).send().await;
    assert_eq!(later.status, StatusCode::OK);
    let tag3 = later.header("etag").unwrap().to_owned();
    let same = a.get(&path).header("if-none-match", &tag3).send().await;
    assert_eq!(same.status, StatusCode::NOT_MODIFIED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_in_one_process_tag_their_maps_apart() {
    // Both serve one show of one database; each cache has its own epoch and its own
    // generations (no process-wide counter), so each first map is generation 1.
    let a = TestServer::start().await;
    let b = TestServer::start_on(&a.database_url, |_| {}).await;
    let show = a.show(&[("A", 3)]).await;
    let path = format!("/shows/{show}/seats");
    let tag_a = a.get(&path).send().await.header("etag").unwrap().to_owned();
    let tag_b = b.get(&path).send().await.header("etag").unwrap().to_owned();
    let parts = |tag: &str| {
        let (epoch, generation) = tag.trim_matches('"').rsplit_once('-').unwrap();
        (epoch.to_owned(), generation.to_owned())
    };
    let ((epoch_a, gen_a), (epoch_b, gen_b)) = (parts(&tag_a), parts(&tag_b));
    assert_eq!(
        (gen_a.as_str(), gen_b.as_str()),
        ("1", "1"),
        "{tag_a} {tag_b}"
    );
    assert_ne!(epoch_a, epoch_b);
    let other = b.get(&path).header("if-none-match", &tag_a).send().await;
    assert_eq!(
        other.status,
        StatusCode::OK,
        "a tag of another server never matches"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lapsed_hold_reads_available_and_an_extended_one_held() {
    let a = TestServer::start().await;
    let b = TestServer::start_on(&a.database_url, |_| {}).await;
    let show = a.show(&[("A", 4)]).await;
    let path = format!("/shows/{show}/seats");
    let hold = |s: &TestServer, seat: &str| {
        s.post(&format!("/shows/{show}/holds"))
            .user("u1")
            .json(json!({"seats": [seat], "ttl_seconds": 1}))
            .send()
    };
    assert_eq!(hold(&a, "A1").await.status, StatusCode::CREATED);
    let kept = hold(&b, "A2").await;
    assert_eq!(kept.status, StatusCode::CREATED);
    assert_eq!(a.get(&path).send().await.status, StatusCode::OK);
    // Extended by the other process, which writes no seat event.
    let id = kept.json["hold_id"].as_str().unwrap();
    let ext = b
        .post(&format!("/holds/{id}/extend"))
        .user("u1")
        .json(json!({"ttl_seconds": 600}))
        .send()
        .await;
    assert_eq!(ext.status, StatusCode::OK, "{}", ext.text());
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let map = a.get(&path).send().await.json;
    assert_eq!(seat(&map, "A1")["state"], "available");
    assert_eq!(seat(&map, "A2")["state"], "held");
    let settled: Value = serde_json::from_slice(&converges(&a, &show).await).unwrap();
    assert_eq!(seat(&settled, "A2")["state"], "held");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seat_freed_in_another_process_is_never_refused_from_memory_afterwards() {
    // `a` answers refusals from its map once it has one; `b` frees the seat.
    let a = TestServer::start().await;
    let b = TestServer::start_on(&a.database_url, |_| {}).await;
    let show = a.show(&[("A", 3)]).await;
    let path = format!("/shows/{show}/seats");
    assert_eq!(a.get(&path).send().await.status, StatusCode::OK);
    let try_hold = |s: &TestServer, user: &str| {
        s.post(&format!("/shows/{show}/holds"))
            .user(user)
            .json(json!({"seats": ["A1"], "ttl_seconds": 600}))
            .send()
    };
    for round in 0..20 {
        let theirs = try_hold(&b, "bob").await;
        assert_eq!(theirs.status, StatusCode::CREATED, "{}", theirs.text());
        let refused = try_hold(&a, "alice").await;
        assert_eq!(refused.status, StatusCode::CONFLICT, "round {round}");
        assert_eq!(refused.json["seats"], json!(["A1"]));
        let id = theirs.json["hold_id"].as_str().unwrap();
        let gone = b.delete(&format!("/holds/{id}")).user("bob").send().await;
        assert_eq!(gone.status, StatusCode::NO_CONTENT);
        // Released before this request was sent: it must get the seat.
        let mine = try_hold(&a, "alice").await;
        assert_eq!(
            mine.status,
            StatusCode::CREATED,
            "round {round}: {}",
            mine.text()
        );
        let id = mine.json["hold_id"].as_str().unwrap();
        let gone = a.delete(&format!("/holds/{id}")).user("alice").send().await;
        assert_eq!(gone.status, StatusCode::NO_CONTENT);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_lapsed_by_the_database_clock_is_not_refused_from_memory() {
    // The server's clock may run behind the database's: a hold the database already
    // sees lapsed (here: moved into the past, as a database clock a second ahead would
    // see it) must not be refused from a map that still thinks it held.
    let a = TestServer::start().await;
    let b = TestServer::start_on(&a.database_url, |_| {}).await;
    let show = a.show(&[("A", 3)]).await;
    let path = format!("/shows/{show}/seats");
    assert_eq!(a.get(&path).send().await.status, StatusCode::OK);
    let try_hold = |s: &TestServer, user: &str, ttl: u32| {
        s.post(&format!("/shows/{show}/holds"))
            .user(user)
            .json(json!({"seats": ["A1"], "ttl_seconds": ttl}))
            .send()
    };
    for round in 0..5 {
        let theirs = try_hold(&b, &format!("bob-{round}"), 1).await;
        assert_eq!(theirs.status, StatusCode::CREATED, "{}", theirs.text());
        // `a` refuses from its map while the hold lives (as the other test shows)...
        let refused = try_hold(&a, "carol", 60).await;
        assert_eq!(refused.status, StatusCode::CONFLICT, "round {round}");
        // ...but not once the database's clock has passed its deadline.
        a.lapse(theirs.json["hold_id"].as_str().unwrap()).await;
        let mine = try_hold(&a, "alice", 1).await;
        assert_eq!(
            mine.status,
            StatusCode::CREATED,
            "round {round}: {}",
            mine.text()
        );
        a.lapse(mine.json["hold_id"].as_str().unwrap()).await;
    }
}

/// The counts of a standing area kept in memory, patched only by the feed's deltas (no
/// hold lapses here, so the map is never read again), equal the database's after
/// concurrent holds, confirms, releases and cancels of places in another process.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_areas_counts_patched_from_the_feed_equal_the_database() {
    let a = TestServer::start().await;
    let b = Arc::new(TestServer::start_on(&a.database_url, |_| {}).await);
    let created = a
        .post("/shows")
        .admin()
        .json(json!({
            "title": "Floor", "starts_at": "2030-01-01T20:00:00Z", "prices": {"standard": 1000},
            "rows": [{"row": "A", "seats": 4}], "areas": [{"area": "FLOOR", "capacity": 30}]
        }))
        .send()
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let show = created.json["id"].as_str().unwrap().to_owned();
    let path = format!("/shows/{show}/seats");
    assert_eq!(a.get(&path).send().await.status, StatusCode::OK);

    let mut tasks = Vec::new();
    for w in 0..6 {
        let (b, show) = (b.clone(), show.clone());
        tasks.push(tokio::spawn(async move {
            let user = format!("user-{w}");
            for _ in 0..15 {
                let (n, next) = {
                    let mut rng = rand::thread_rng();
                    (rng.gen_range(1..=4u32), rng.gen_range(0..3))
                };
                let res = b
                    .post(&format!("/shows/{show}/holds"))
                    .user(&user)
                    .json(json!({"areas": {"FLOOR": n}}))
                    .send()
                    .await;
                assert!(matches!(res.status.as_u16(), 201 | 409), "{}", res.text());
                if res.status != StatusCode::CREATED {
                    continue;
                }
                let id = res.json["hold_id"].as_str().unwrap().to_owned();
                match next {
                    0 => {
                        let r = b.delete(&format!("/holds/{id}")).user(&user).send().await;
                        assert_eq!(r.status, StatusCode::NO_CONTENT);
                    }
                    1 => {
                        let r = b
                            .post(&format!("/holds/{id}/confirm"))
                            .user(&user)
                            .send()
                            .await;
                        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
                        let booking = r.json["booking_id"].as_str().unwrap();
                        let r = b
                            .post(&format!("/bookings/{booking}/cancel"))
                            .user(&user)
                            .send()
                            .await;
                        assert_eq!(r.status, StatusCode::OK);
                    }
                    _ => {}
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let map = converges(&a, &show).await;
    let map: Value = serde_json::from_slice(&map).unwrap();
    assert!(
        map["areas"][0]["held"].as_i64().unwrap() > 0,
        "some holds kept"
    );
}
