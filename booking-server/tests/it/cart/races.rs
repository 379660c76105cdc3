//! Adds and exchanges racing holds of the same seats through two server binaries.

use super::*;

/// Row and number of a seat label, for seat-map order.
fn seat_order(label: &str) -> (String, u32) {
    let split = label.find(|c: char| c.is_ascii_digit()).unwrap();
    (label[..split].to_owned(), label[split..].parse().unwrap())
}

/// Two real server processes on one database: 20 holds of one seat each add three
/// contested seats of row A and a place of an area too small for all of them, while 10
/// new holds want two of its last five seats each, alternately through each server. Every add
/// and hold is all or none, every refusal names only what it asked for, no seat ends in
/// two holds, the area never passes its capacity, a refused add leaves its hold as it
/// was, and the database audit passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adds_racing_holds_through_two_server_binaries_put_each_seat_in_one_hold() {
    let database_url = crate::common::fresh_database().await;
    let (mut first, a) = spawn_ready(&database_url).await;
    let (mut second, b) = spawn_ready(&database_url).await;
    let show = a
        .post("/shows")
        .admin()
        .json(json!({"title": "Race", "starts_at": "2030-01-01T20:00:00Z",
                     "rows": [{"row": "A", "seats": 10}, {"row": "B", "seats": 10},
                              {"row": "C", "seats": 10}],
                     "areas": [{"area": "FLOOR", "capacity": 8}],
                     "prices": {"standard": 1000}}))
        .send()
        .await;
    assert_eq!(show.status, StatusCode::CREATED, "{}", show.text());
    let show = show.json["id"].as_str().unwrap().to_owned();
    let (a, b) = (std::sync::Arc::new(a), std::sync::Arc::new(b));
    let via = |i: usize| if i % 2 == 0 { a.clone() } else { b.clone() };

    // 20 holds of a seat of their own (rows B and C).
    let mut carts = Vec::new();
    for i in 0..20usize {
        let own = format!("{}{}", if i < 10 { "B" } else { "C" }, i % 10 + 1);
        let r = via(i)
            .post(&format!("/shows/{show}/holds"))
            .user(&format!("u{i}"))
            .json(json!({"seats": [own]}))
            .send()
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        carts.push((
            format!("u{i}"),
            r.json["hold_id"].as_str().unwrap().to_owned(),
            own,
        ));
    }

    // At once: each adds three seats of row A (windows overlapping) and a place; ten
    // others hold two seats of A6 to A10 (A1 to A5 are fought over by adds alone).
    let window =
        |i: usize| -> Vec<String> { (0..3).map(|k| format!("A{}", (i + k) % 10 + 1)).collect() };
    let mut adds = Vec::new();
    for (i, (user, id, _)) in carts.iter().enumerate() {
        let client = via(i + 1);
        let (user, path) = (user.clone(), format!("/holds/{id}/add"));
        let body = json!({"seats": window(i), "areas": {"FLOOR": 1}});
        adds.push(tokio::spawn(async move {
            client.post(&path).user(&user).json(body).send().await
        }));
    }
    let mut holds = Vec::new();
    for i in 0..10usize {
        let client = via(i);
        let seats = vec![format!("A{}", i % 5 + 6), format!("A{}", (i + 1) % 5 + 6)];
        let path = format!("/shows/{show}/holds");
        holds.push(tokio::spawn(async move {
            let r = client
                .post(&path)
                .user(&format!("n{i}"))
                .json(json!({ "seats": seats }))
                .send()
                .await;
            (seats, r)
        }));
    }

    let mut owner_of: BTreeMap<String, String> = BTreeMap::new();
    let (mut places, mut refused) = (0, 0);
    let mut claim = |seat: &str, by: &str| {
        if let Some(other) = owner_of.insert(seat.to_owned(), by.to_owned()) {
            panic!("{seat} is in two holds: {other} and {by}");
        }
    };
    for (i, task) in adds.into_iter().enumerate() {
        let r = task.await.unwrap();
        let (_, id, own) = &carts[i];
        let asked = window(i);
        match r.status {
            StatusCode::OK => {
                let mut want: Vec<String> = asked.iter().cloned().chain([own.clone()]).collect();
                want.sort_by_key(|l| seat_order(l));
                assert_eq!(r.json["seats"], json!(want), "all of it: {}", r.text());
                assert_eq!(r.json["areas"], json!({"FLOOR": 1}));
                for seat in &asked {
                    claim(seat, id);
                }
                places += 1;
            }
            StatusCode::CONFLICT => {
                assert_eq!(r.error(), "seats_unavailable", "{}", r.text());
                refused += 1;
                let named: Vec<&str> = r.json["seats"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s.as_str().unwrap())
                    .collect();
                let areas = r.json.get("areas").cloned().unwrap_or(json!([]));
                assert!(
                    !named.is_empty() || areas == json!(["FLOOR"]),
                    "a refusal names what was short: {}",
                    r.text()
                );
                assert!(
                    named.iter().all(|s| asked.iter().any(|a| a == s)),
                    "named only seats it asked for: {}",
                    r.text()
                );
            }
            other => panic!(
                "unexpected {other} (a deadlock would show here): {}",
                r.text()
            ),
        }
    }
    for task in holds {
        let (seats, r) = task.await.unwrap();
        match r.status {
            StatusCode::CREATED => {
                let id = r.json["hold_id"].as_str().unwrap().to_owned();
                for seat in &seats {
                    claim(seat, &id);
                }
            }
            StatusCode::CONFLICT => {
                assert_eq!(r.error(), "seats_unavailable", "{}", r.text());
                refused += 1;
            }
            other => panic!("unexpected {other}: {}", r.text()),
        }
    }
    assert!(places <= 8, "{places} places of 8 held");
    // Eighty seats asked of ten: some lose, and whoever commits first wins.
    assert!(
        !owner_of.is_empty() && refused > 0,
        "{} seats taken, {refused} refusals",
        owner_of.len()
    );

    // Read back through the other server: every cart has exactly what its answer said.
    for (i, (user, id, own)) in carts.iter().enumerate() {
        let r = via(i).get(&format!("/holds/{id}")).user(user).send().await;
        let seats: HashSet<String> = r.json["seats"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect();
        let added = window(i).iter().all(|s| owner_of.get(s) == Some(id));
        let mut want: HashSet<String> = [own.clone()].into_iter().collect();
        if added {
            want.extend(window(i));
            assert_eq!(r.json["areas"], json!({"FLOOR": 1}));
        } else {
            assert!(r.json.get("areas").is_none(), "{}", r.text());
        }
        assert_eq!(seats, want, "{}", r.text());
    }
    let areas = a.get(&format!("/shows/{show}/areas")).send().await;
    assert_eq!(areas.json["areas"][0]["held"], places);
    audit(&database_url).await;
    for child in [&mut first, &mut second] {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
}

/// Two real server processes on one database: ten bookings of one seat of row B each
/// exchange it for one of five seats of row A, two bookings for each, while five new
/// holds want two of those seats each, alternately through each server. Never both:
/// each seat of row A ends in one booking or one hold at most; no booking ends with
/// fewer seats than before (a refused exchange keeps its seat, a winning one gave it
/// back); and the database audit passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchanges_racing_holds_through_two_server_binaries_never_both_take_a_seat() {
    let database_url = crate::common::fresh_database().await;
    let (mut first, a) = spawn_ready(&database_url).await;
    let (mut second, b) = spawn_ready(&database_url).await;
    let show = a
        .post("/shows")
        .admin()
        .json(json!({"title": "Swap", "starts_at": "2030-01-01T20:00:00Z",
                     "rows": [{"row": "A", "seats": 5}, {"row": "B", "seats": 10}],
                     "prices": {"standard": 1000}}))
        .send()
        .await;
    assert_eq!(show.status, StatusCode::CREATED, "{}", show.text());
    let show = show.json["id"].as_str().unwrap().to_owned();
    let (a, b) = (std::sync::Arc::new(a), std::sync::Arc::new(b));
    let via = |i: usize| if i % 2 == 0 { a.clone() } else { b.clone() };
    let mut bookings = Vec::new();
    for i in 0..10usize {
        let (client, user) = (via(i), format!("u{i}"));
        let held = client
            .post(&format!("/shows/{show}/holds"))
            .user(&user)
            .json(json!({"seats": [format!("B{}", i + 1)]}))
            .send()
            .await;
        assert_eq!(held.status, StatusCode::CREATED, "{}", held.text());
        let id = held.json["hold_id"].as_str().unwrap();
        let booked = client
            .post(&format!("/holds/{id}/confirm"))
            .user(&user)
            .send()
            .await;
        assert_eq!(booked.status, StatusCode::CREATED, "{}", booked.text());
        bookings.push((user, booked.json["booking_id"].as_str().unwrap().to_owned()));
    }

    let mut exchanges = Vec::new();
    for (i, (user, id)) in bookings.iter().enumerate() {
        let client = via(i + 1);
        let (user, path) = (user.clone(), format!("/bookings/{id}/exchange"));
        let body = json!({"release": [format!("B{}", i + 1)], "take": [format!("A{}", i % 5 + 1)]});
        exchanges.push(tokio::spawn(async move {
            client.post(&path).user(&user).json(body).send().await
        }));
    }
    let mut holds = Vec::new();
    for k in 0..5usize {
        let client = via(k);
        let seats = vec![format!("A{}", k + 1), format!("A{}", (k + 1) % 5 + 1)];
        let path = format!("/shows/{show}/holds");
        holds.push(tokio::spawn(async move {
            let r = client
                .post(&path)
                .user(&format!("h{k}"))
                .json(json!({ "seats": seats }))
                .send()
                .await;
            (seats, r)
        }));
    }
    let mut owner_of: BTreeMap<String, String> = BTreeMap::new();
    let mut claim = |seat: &str, by: &str| {
        if let Some(other) = owner_of.insert(seat.to_owned(), by.to_owned()) {
            panic!("{seat} went to both {other} and {by}");
        }
    };
    let mut won = Vec::new();
    for (i, task) in exchanges.into_iter().enumerate() {
        let r = task.await.unwrap();
        let (take, given) = (format!("A{}", i % 5 + 1), format!("B{}", i + 1));
        match r.status {
            StatusCode::OK => {
                assert_eq!(r.json["seats"], json!([take]), "{}", r.text());
                assert_eq!(r.json["difference"], 0);
                claim(&take, &bookings[i].1);
                won.push(given);
            }
            StatusCode::CONFLICT => {
                assert_eq!(r.error(), "seats_unavailable", "{}", r.text());
                assert_eq!(r.json["seats"], json!([take]), "{}", r.text());
            }
            other => panic!(
                "unexpected {other} (a deadlock would show here): {}",
                r.text()
            ),
        }
    }
    for task in holds {
        let (seats, r) = task.await.unwrap();
        match r.status {
            StatusCode::CREATED => {
                let id = r.json["hold_id"].as_str().unwrap().to_owned();
                for seat in &seats {
                    claim(seat, &id);
                }
            }
            StatusCode::CONFLICT => assert_eq!(r.error(), "seats_unavailable", "{}", r.text()),
            other => panic!("unexpected {other}: {}", r.text()),
        }
    }
    assert!(!owner_of.is_empty(), "somebody got a seat of row A");

    // Read back through the other server: one seat each, the old or the new.
    for (i, (user, id)) in bookings.iter().enumerate() {
        let r = via(i)
            .get(&format!("/bookings/{id}"))
            .user(user)
            .send()
            .await;
        let take = format!("A{}", i % 5 + 1);
        let want = if owner_of.get(&take) == Some(id) {
            take
        } else {
            format!("B{}", i + 1)
        };
        assert_eq!(r.json["status"], "confirmed");
        assert_eq!(r.json["seats"], json!([want]), "{}", r.text());
        assert_eq!(r.json["total"], 1000);
    }
    // Each server's map follows the feed (the other's writes arrive a moment later):
    // wait until both show the given-back seats available, then check.
    for server in [&a, &b] {
        let mut map = server.get(&format!("/shows/{show}/seats")).send().await;
        for _ in 0..100 {
            let stale = map.json["seats"].as_array().unwrap().iter().any(|seat| {
                won.iter().any(|g| g == seat["label"].as_str().unwrap())
                    && seat["state"] != "available"
            });
            if !stale {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            map = server.get(&format!("/shows/{show}/seats")).send().await;
        }
        for seat in map.json["seats"].as_array().unwrap() {
            let label = seat["label"].as_str().unwrap();
            if won.iter().any(|g| g == label) {
                assert_eq!(seat["state"], "available", "{label} was given back");
            }
        }
    }
    audit(&database_url).await;
    for child in [&mut first, &mut second] {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
}
