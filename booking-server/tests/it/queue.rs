//! The waiting room over HTTP: 1,000 buyers joined through two real server processes
//! admitted once each, in a shuffled order, at the configured rate; the codes of
//! joining, `queue/me` and its event stream; takings refused without an admission and
//! held to the allowance across many concurrent requests.

use crate::common::{Sse, TestServer};
use crate::process::spawn_ready;
use chrono::{Duration, Utc};
use hyper::StatusCode;
use serde_json::{json, Value};
use std::sync::Arc;

fn queued_show(rate: u32, max_seats: u32) -> Value {
    json!({"title": "On sale day", "starts_at": "2030-01-01T20:00:00Z",
           "rows": [{"row": "A", "seats": 20}, {"row": "B", "seats": 20}],
           "sales_start": (Utc::now() + Duration::hours(1)).to_rfc3339(),
           "queue": {"admit_per_minute": rate, "admission_minutes": 10, "max_seats": max_seats}})
}

fn start_now() -> Value {
    json!({"sales_start": (Utc::now() - Duration::seconds(1)).to_rfc3339()})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_joined_through_two_servers_are_admitted_once_each_shuffled_at_the_rate() {
    let database_url = crate::common::fresh_database().await;
    let (mut first, a) = spawn_ready(&database_url).await;
    let (mut second, b) = spawn_ready(&database_url).await;
    let show = a
        .post("/shows")
        .admin()
        .json(queued_show(60_000, 6))
        .send()
        .await;
    assert_eq!(show.status, StatusCode::CREATED, "{}", show.text());
    assert_eq!(show.json["queue"]["max_seats"], 6);
    let show = show.json["id"].as_str().unwrap().to_owned();
    let (a, b) = (Arc::new(a), Arc::new(b));
    // Joined in order, eight at a time, alternately through each process.
    for chunk in (0..1000usize).collect::<Vec<_>>().chunks(8) {
        let mut tasks = Vec::new();
        for &i in chunk {
            let client = if i % 2 == 0 { a.clone() } else { b.clone() };
            let path = format!("/shows/{show}/queue");
            tasks.push(tokio::spawn(async move {
                client.post(&path).user(&format!("u{i:04}")).send().await
            }));
        }
        for t in tasks {
            let r = t.await.unwrap();
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
            assert_eq!(r.json["position"], Value::Null);
        }
    }
    let again = b
        .post(&format!("/shows/{show}/queue"))
        .user("u0001")
        .send()
        .await;
    assert_eq!(
        again.status,
        StatusCode::OK,
        "the same entry, not a second place"
    );

    let patched = a
        .call(hyper::Method::PATCH, &format!("/shows/{show}"))
        .admin()
        .json(start_now())
        .send()
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text());
    // Both processes' admitters run; wait (bounded) until every entry is admitted.
    let db = crate::common::audit::connect(&database_url).await;
    let mut done = 0i64;
    for _ in 0..600 {
        done = db
            .query_one(
                "SELECT count(*) FROM queue_entries WHERE admitted_at IS NOT NULL",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if done == 1000 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(done, 1000);
    let rows = db
        .query(
            "SELECT e.user_id, e.position, e.admitted_at, sh.sales_start, q.admitted_through
               FROM queue_entries e JOIN shows sh ON sh.id = e.show_id
               JOIN queues q ON q.show_id = e.show_id ORDER BY e.user_id",
            &[],
        )
        .await
        .unwrap();
    let arrival: Vec<i64> = rows.iter().map(|r| r.get("position")).collect();
    let mut sorted = arrival.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (1..=1000).collect::<Vec<i64>>(),
        "a permutation, each once"
    );
    assert_ne!(arrival, sorted, "not the arrival order");
    assert_eq!(rows[0].get::<_, i64>("admitted_through"), 1000);
    let mut times: Vec<(i64, chrono::DateTime<Utc>)> = rows
        .iter()
        .map(|r| (r.get("position"), r.get("admitted_at")))
        .collect();
    times.sort_unstable();
    let start: chrono::DateTime<Utc> = rows[0].get("sales_start");
    assert_eq!(times[0].1, start, "the first at sales_start");
    for w in times.windows(2) {
        // 60,000 a minute: one admission a millisecond, by the stored times.
        assert_eq!(w[1].1 - w[0].1, Duration::milliseconds(1));
    }
    let me = a
        .get(&format!("/shows/{show}/queue/me"))
        .user("u0500")
        .send()
        .await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json["state"], "admitted");
    for child in [&mut first, &mut second] {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
    crate::common::audit::audit(&database_url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_show_refuses_takings_without_admission_and_keeps_the_allowance() {
    let server = TestServer::start().await;
    let plain = server.show(&[("A", 4)]).await;
    let r = server
        .post(&format!("/shows/{plain}/queue"))
        .user("x")
        .send()
        .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::CONFLICT, "queue_not_enabled")
    );
    let r = server.post("/shows/999999/queue").user("x").send().await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::NOT_FOUND, "show_not_found")
    );
    let mut body = queued_show(60_000, 3);
    body.as_object_mut().unwrap().remove("sales_start");
    let r = server.post("/shows").admin().json(body).send().await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    assert_eq!(r.json["field"], "queue");

    let show = server
        .post("/shows")
        .admin()
        .json(queued_show(60_000, 3))
        .send()
        .await;
    let show = show.json["id"].as_str().unwrap().to_owned();
    let r = server
        .get(&format!("/shows/{show}/queue/me"))
        .user("buyer")
        .send()
        .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::NOT_FOUND, "not_in_queue")
    );
    let joined = server
        .post(&format!("/shows/{show}/queue"))
        .user("buyer")
        .send()
        .await;
    assert_eq!(joined.status, StatusCode::CREATED, "{}", joined.text());
    assert_eq!(joined.json["state"], "waiting");
    // Follow the entry: it must end on `admitted` without the client asking again.
    let mut sse = Sse::open(
        server.addr,
        &format!("/shows/{show}/queue/me/events"),
        &[("x-user-id", "buyer")],
    )
    .await;
    assert_eq!(sse.status, StatusCode::OK);
    let r = server
        .call(hyper::Method::PATCH, &format!("/shows/{show}"))
        .admin()
        .json(start_now())
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let mut last = Value::Null;
    while let Some(e) = sse.next_event().await {
        assert_eq!(e.event, "queue");
        last = e.data;
    }
    assert_eq!(last["state"], "admitted", "{last}");

    // Not admitted: refused before any seat is looked at.
    let r = server
        .post(&format!("/shows/{show}/holds"))
        .user("stranger")
        .json(json!({"seats": ["A1"]}))
        .send()
        .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::FORBIDDEN, "not_admitted")
    );
    let r = server
        .post(&format!("/shows/{show}/holds/best"))
        .user("stranger")
        .json(json!({"count": 1}))
        .send()
        .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::FORBIDDEN, "not_admitted")
    );

    // 40 requests of the admitted buyer at once, holds and best available, each of
    // its own seats: three seats in all, whatever they sent.
    let server = Arc::new(server);
    let mut tasks = Vec::new();
    for i in 0..40usize {
        let s = server.clone();
        let show = show.clone();
        tasks.push(tokio::spawn(async move {
            if i % 4 == 3 {
                s.post(&format!("/shows/{show}/holds/best"))
                    .user("buyer")
                    .json(json!({"count": 1}))
                    .send()
                    .await
            } else {
                let seat = format!("{}{}", if i < 20 { "A" } else { "B" }, 1 + i % 20);
                s.post(&format!("/shows/{show}/holds"))
                    .user("buyer")
                    .json(json!({"seats": [seat]}))
                    .send()
                    .await
            }
        }));
    }
    let mut created = 0;
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            StatusCode::CREATED => created += 1,
            StatusCode::CONFLICT => {
                let code = r.error().to_owned();
                assert!(
                    code == "queue_max_seats" || code == "seats_unavailable",
                    "{code}"
                );
                if code == "queue_max_seats" {
                    assert_eq!(r.json["limit"], 3);
                }
            }
            other => panic!("unexpected {other}: {}", r.text()),
        }
    }
    assert_eq!(created, 3);
    let held = server
        .count(
            "SELECT count(*) FROM hold_seats hs JOIN holds h
                 ON h.show_id = hs.show_id AND h.id = hs.hold_id
              WHERE h.user_id = 'buyer' AND h.status = 'active'",
        )
        .await;
    assert_eq!(held, 3, "the tables agree: three seats");
    let me = server
        .get(&format!("/shows/{show}/queue/me"))
        .user("buyer")
        .send()
        .await;
    assert_eq!(
        (
            me.json["seats_taken"].as_i64(),
            me.json["max_seats"].as_i64()
        ),
        (Some(3), Some(3))
    );
    crate::common::audit::audit(&server.database_url).await;
}

#[tokio::test]
async fn queue_settings_are_checked_shown_changed_and_removed() {
    let server = TestServer::start().await;
    let mut bad = queued_show(0, 3);
    let r = server.post("/shows").admin().json(bad.clone()).send().await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    assert_eq!(r.json["field"], "queue.admit_per_minute");
    bad["queue"] = json!({"admit_per_minute": 10, "admission_minutes": 10, "max_seats": 101});
    let r = server.post("/shows").admin().json(bad).send().await;
    assert_eq!(r.json["field"], "queue.max_seats");

    let show = server
        .post("/shows")
        .admin()
        .json(queued_show(600, 3))
        .send()
        .await;
    let show = show.json["id"].as_str().unwrap().to_owned();
    let listed = server.get("/shows").send().await;
    let entry = listed.json["shows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == show.as_str())
        .cloned()
        .unwrap();
    assert_eq!(entry["queue"]["admit_per_minute"], 600);
    server
        .post(&format!("/shows/{show}/queue"))
        .user("early")
        .send()
        .await;

    // New settings keep the entry; clearing the start of a queued show is refused.
    let patch = |body: Value| {
        server
            .call(hyper::Method::PATCH, &format!("/shows/{show}"))
            .admin()
            .json(body)
            .send()
    };
    let r =
        patch(json!({"queue": {"admit_per_minute": 60, "admission_minutes": 5, "max_seats": 2}}))
            .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json["queue"]["max_seats"], 2);
    let me = server
        .get(&format!("/shows/{show}/queue/me"))
        .user("early")
        .send()
        .await;
    assert_eq!(
        (me.status, me.json["max_seats"].as_i64()),
        (StatusCode::OK, Some(2))
    );
    let r = patch(json!({"sales_start": null})).await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    assert_eq!(r.json["field"], "sales_start");

    // Removed: no queue, no entries, takings no longer gated (the window still is).
    let r = patch(json!({"queue": null})).await;
    assert_eq!(
        (r.status, r.json["queue"].clone()),
        (StatusCode::OK, Value::Null)
    );
    let r = server
        .get(&format!("/shows/{show}/queue/me"))
        .user("early")
        .send()
        .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::CONFLICT, "queue_not_enabled")
    );
    assert_eq!(server.count("SELECT count(*) FROM queue_entries").await, 0);
    let r = server
        .post(&format!("/shows/{show}/holds"))
        .user("anyone")
        .json(json!({"seats": ["A1"]}))
        .send()
        .await;
    assert_eq!((r.status, r.error()), (StatusCode::CONFLICT, "not_on_sale"));

    // A cancelled queued show takes no joins.
    let other = server
        .post("/shows")
        .admin()
        .json(queued_show(600, 3))
        .send()
        .await;
    let other = other.json["id"].as_str().unwrap().to_owned();
    let r = server
        .post(&format!("/shows/{other}/cancel"))
        .admin()
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = server
        .post(&format!("/shows/{other}/queue"))
        .user("late")
        .send()
        .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::CONFLICT, "show_cancelled")
    );
}

#[tokio::test]
async fn a_keyed_hold_made_while_admitted_is_replayed_after_the_admission_ends() {
    let server = TestServer::start().await;
    let show = server
        .post("/shows")
        .admin()
        .json(queued_show(60_000, 3))
        .send()
        .await;
    let show = show.json["id"].as_str().unwrap().to_owned();
    server
        .post(&format!("/shows/{show}/queue"))
        .user("buyer")
        .send()
        .await;
    let r = server
        .call(hyper::Method::PATCH, &format!("/shows/{show}"))
        .admin()
        .json(start_now())
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let mut state = Value::Null;
    for _ in 0..200 {
        let me = server
            .get(&format!("/shows/{show}/queue/me"))
            .user("buyer")
            .send()
            .await;
        state = me.json["state"].clone();
        if state == "admitted" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(state, "admitted");
    let hold = |user: &str, key: &str| {
        server
            .post(&format!("/shows/{show}/holds"))
            .user(user)
            .key(key)
            .json(json!({"seats": ["A1"]}))
            .send()
    };
    let first = hold("buyer", "k-1").await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());
    server
        .pool
        .get()
        .await
        .unwrap()
        .execute(
            "UPDATE queue_entries SET admission_expires_at = now() - interval '1 second'",
            &[],
        )
        .await
        .unwrap();
    // The retry gets its hold again; a new request is refused.
    let again = hold("buyer", "k-1").await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.text());
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.json["hold_id"], first.json["hold_id"]);
    let r = server
        .post(&format!("/shows/{show}/holds"))
        .user("buyer")
        .key("k-2")
        .json(json!({"seats": ["A2"]}))
        .send()
        .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::CONFLICT, "admission_expired")
    );
    let r = server
        .post(&format!("/shows/{show}/holds"))
        .user("stranger")
        .key("k-3")
        .json(json!({"seats": ["A3"]}))
        .send()
        .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::FORBIDDEN, "not_admitted")
    );
    crate::common::audit::audit(&server.database_url).await;
}
