//! Idempotency-Key: replays are byte-for-byte, reuse with another request is refused,
//! concurrent duplicates do the work once, and 5xx answers are not stored.

use crate::common::TestServer;
use hyper::StatusCode;
use serde_json::json;

#[tokio::test]
async fn a_retry_replays_the_answer_and_does_nothing_twice() {
    let mut s = TestServer::start().await;
    let show = s.show(&[("A", 6)]).await;
    let path = format!("/shows/{show}/holds");
    let body = json!({"seats": ["A1", "A2"]});

    let first = s
        .post(&path)
        .user("alice")
        .key("k-1")
        .json(body.clone())
        .send()
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(first.header("idempotent-replayed"), None);
    let again = s
        .post(&path)
        .user("alice")
        .key("k-1")
        .json(body.clone())
        .send()
        .await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body, "byte for byte");
    assert_eq!(s.count("SELECT count(*) FROM holds").await, 1);

    // The same key with another body, or another path: 422, nothing done.
    let r = s
        .post(&path)
        .user("alice")
        .key("k-1")
        .json(json!({"seats": ["A3"]}))
        .send()
        .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused")
    );
    let hold = first.json["hold_id"].as_str().unwrap();
    let r = s
        .post(&format!("/holds/{hold}/confirm"))
        .user("alice")
        .key("k-1")
        .send()
        .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused")
    );
    assert_eq!(s.count("SELECT count(*) FROM holds").await, 1);
    assert_eq!(s.count("SELECT count(*) FROM bookings").await, 0);

    // Keys are scoped to the caller: bob's k-1 is his own.
    let bob = s
        .post(&path)
        .user("bob")
        .key("k-1")
        .json(json!({"seats": ["A3"]}))
        .send()
        .await;
    assert_eq!(bob.status, StatusCode::CREATED);
    assert_eq!(bob.header("idempotent-replayed"), None);

    // Confirm with a key: replayed as 201 with the same booking; one booking.
    let c1 = s
        .post(&format!("/holds/{hold}/confirm"))
        .user("alice")
        .key("c-1")
        .send()
        .await;
    let c2 = s
        .post(&format!("/holds/{hold}/confirm"))
        .user("alice")
        .key("c-1")
        .send()
        .await;
    assert_eq!(
        (c1.status, c2.status),
        (StatusCode::CREATED, StatusCode::CREATED)
    );
    assert_eq!(c1.body, c2.body);
    assert_eq!(c2.header("idempotent-replayed"), Some("true"));
    assert_eq!(s.count("SELECT count(*) FROM bookings").await, 1);

    // A 4xx answer is stored too: the retry gets the same 409 although A1 is now free.
    let taken = s
        .post(&path)
        .user("carol")
        .key("t-1")
        .json(json!({"seats": ["A1"]}))
        .send()
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    let booking = c1.json["booking_id"].as_str().unwrap();
    s.post(&format!("/bookings/{booking}/cancel"))
        .user("alice")
        .send()
        .await;
    let retry = s
        .post(&path)
        .user("carol")
        .key("t-1")
        .json(json!({"seats": ["A1"]}))
        .send()
        .await;
    assert_eq!(retry.status, StatusCode::CONFLICT);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(retry.body, taken.body);

    // Admin keys work for show creation.
    let new_show = json!({"title": "T", "starts_at": "2030-01-01T20:00:00Z", "rows": [{"row": "A", "seats": 3}]});
    let a = s
        .post("/shows")
        .admin()
        .key("s-1")
        .json(new_show.clone())
        .send()
        .await;
    let b = s
        .post("/shows")
        .admin()
        .key("s-1")
        .json(new_show)
        .send()
        .await;
    assert_eq!(
        (a.status, b.status),
        (StatusCode::CREATED, StatusCode::CREATED)
    );
    assert_eq!(a.body, b.body);
    assert_eq!(s.count("SELECT count(*) FROM shows").await, 2);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_duplicates_do_the_work_once() {
    let mut s = TestServer::start().await;
    let show = s.show(&[("A", 6)]).await;
    let path = format!("/shows/{show}/holds");

    let mut calls = Vec::new();
    for _ in 0..30 {
        calls.push(
            s.post(&path)
                .user("alice")
                .key("dup-hold")
                .json(json!({"seats": ["A1"]}))
                .send(),
        );
    }
    let answers = futures_util::future::join_all(calls).await;
    let fresh: Vec<_> = answers
        .iter()
        .filter(|r| r.status.is_success() && r.header("idempotent-replayed").is_none())
        .collect();
    assert_eq!(fresh.len(), 1, "exactly one request did the work");
    for r in &answers {
        let ok = r.status == StatusCode::CREATED
            || (r.status == StatusCode::CONFLICT && r.error() == "idempotency_key_in_use");
        assert!(ok, "unexpected answer {}: {}", r.status, r.text());
        if r.status == StatusCode::CREATED {
            assert_eq!(r.body, fresh[0].body);
        }
    }
    assert_eq!(s.count("SELECT count(*) FROM holds").await, 1);

    let hold = fresh[0].json["hold_id"].as_str().unwrap().to_owned();
    let confirm = format!("/holds/{hold}/confirm");
    let mut calls = Vec::new();
    for _ in 0..30 {
        calls.push(s.post(&confirm).user("alice").key("dup-confirm").send());
    }
    let answers = futures_util::future::join_all(calls).await;
    let fresh = answers
        .iter()
        .filter(|r| r.status.is_success() && r.header("idempotent-replayed").is_none())
        .count();
    assert_eq!(fresh, 1);
    assert!(answers.iter().all(|r| r.status == StatusCode::CREATED
        || (r.status == StatusCode::CONFLICT && r.error() == "idempotency_key_in_use")));
    assert_eq!(s.count("SELECT count(*) FROM bookings").await, 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_in_use_gives_409_and_a_5xx_is_not_stored() {
    let mut s = TestServer::start_with(|c| c.lock_timeout_ms = 200).await;
    let show = s.show(&[("A", 4)]).await;
    let path = format!("/shows/{show}/holds");
    let (other, conn) =
        booking_core::tokio_postgres::connect(&s.database_url, booking_core::tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(conn);

    // Another transaction is working under alice's key "busy" of this show: 409,
    // nothing done (the lock is on the show, the caller and the key).
    other
        .batch_execute(&format!(
            "BEGIN; SELECT pg_advisory_xact_lock(hashtextextended(
                 '{show}' || chr(31) || 'user:alice' || chr(31) || 'busy', 7))"
        ))
        .await
        .unwrap();
    let r = s
        .post(&path)
        .user("alice")
        .key("busy")
        .json(json!({"seats": ["A1"]}))
        .send()
        .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::CONFLICT, "idempotency_key_in_use")
    );
    other.batch_execute("ROLLBACK").await.unwrap();
    let r = s
        .post(&path)
        .user("alice")
        .key("busy")
        .json(json!({"seats": ["A1"]}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::CREATED);

    // A 503 (row lock not had in time) is not stored: the retry runs for real.
    other
        .batch_execute("BEGIN; SELECT * FROM seats WHERE label = 'A2' FOR UPDATE")
        .await
        .unwrap();
    let r = s
        .post(&path)
        .user("alice")
        .key("slow")
        .json(json!({"seats": ["A2"]}))
        .send()
        .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    );
    assert_eq!(
        s.count("SELECT count(*) FROM idempotency_keys WHERE key = 'slow'")
            .await,
        0
    );
    // Counted although the answer came through the key's transaction, not an error.
    let metrics = s.get("/metrics").send().await.text();
    assert!(
        metrics.contains("booking_lock_timeouts_total 1\n"),
        "{metrics}"
    );
    other.batch_execute("ROLLBACK").await.unwrap();
    let r = s
        .post(&path)
        .user("alice")
        .key("slow")
        .json(json!({"seats": ["A2"]}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.header("idempotent-replayed"), None);
    assert_eq!(s.count("SELECT count(*) FROM holds").await, 2);
    s.stop().await;
}

/// The stored keys of `s`, as (key, show_id), ordered by key.
async fn stored_shows(s: &TestServer) -> Vec<(String, i64)> {
    let client = crate::common::audit::connect(&s.database_url).await;
    client
        .query(
            "SELECT key, show_id FROM idempotency_keys ORDER BY key, show_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test]
async fn a_stored_key_carries_the_show_its_request_names() {
    let mut s = TestServer::start().await;
    let new_show = json!({"title": "T", "starts_at": "2030-01-01T20:00:00Z",
                          "prices": {"standard": 1000}, "rows": [{"row": "A", "seats": 6}]});
    let created = s
        .post("/shows")
        .admin()
        .key("1-show")
        .json(new_show)
        .send()
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let show = created.json["id"].as_str().unwrap().to_owned();
    let hold = s
        .post(&format!("/shows/{show}/holds"))
        .user("alice")
        .key("2-hold")
        .json(json!({"seats": ["A1"]}))
        .send()
        .await;
    assert_eq!(hold.status, StatusCode::CREATED, "{}", hold.text());
    let hold = hold.json["hold_id"].as_str().unwrap().to_owned();
    let add = s
        .post(&format!("/holds/{hold}/add"))
        .user("alice")
        .key("3-add")
        .json(json!({"seats": ["A2"]}))
        .send()
        .await;
    assert_eq!(add.status, StatusCode::OK, "{}", add.text());
    let confirm = s
        .post(&format!("/holds/{hold}/confirm"))
        .user("alice")
        .key("4-confirm")
        .send()
        .await;
    assert_eq!(confirm.status, StatusCode::CREATED, "{}", confirm.text());
    let booking = confirm.json["booking_id"].as_str().unwrap();
    let cancel = s
        .post(&format!("/bookings/{booking}/cancel"))
        .user("alice")
        .key("5-cancel")
        .send()
        .await;
    assert_eq!(cancel.status, StatusCode::OK, "{}", cancel.text());

    let show: i64 = show.parse().unwrap();
    assert_eq!(
        stored_shows(&s).await,
        [
            ("1-show".to_owned(), 0),
            ("2-hold".to_owned(), show),
            ("3-add".to_owned(), show),
            ("4-confirm".to_owned(), show),
            ("5-cancel".to_owned(), show),
        ]
    );
    s.stop().await;
}

#[tokio::test]
async fn the_same_key_on_two_shows_is_two_requests() {
    let mut s = TestServer::start().await;
    let one = s.show(&[("A", 4)]).await;
    let two = s.show(&[("A", 4)]).await;
    let body = json!({"seats": ["A1"]});
    let send = |show: &str, body: &serde_json::Value| {
        s.post(&format!("/shows/{show}/holds"))
            .user("alice")
            .key("same")
            .json(body.clone())
            .send()
    };

    let first = send(&one, &body).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());
    // Another path under the same key: another show's request, run for real.
    let other = send(&two, &body).await;
    assert_eq!(other.status, StatusCode::CREATED, "{}", other.text());
    assert_eq!(other.header("idempotent-replayed"), None);
    assert_ne!(other.json["hold_id"], first.json["hold_id"]);
    assert_eq!(s.count("SELECT count(*) FROM holds").await, 2);

    // Each show replays its own answer, byte for byte.
    for (show, answer) in [(&one, &first), (&two, &other)] {
        let again = send(show, &body).await;
        assert_eq!(again.status, StatusCode::CREATED);
        assert_eq!(again.header("idempotent-replayed"), Some("true"));
        assert_eq!(again.body, answer.body, "byte for byte");
    }
    // Within one show the key is still bound to its request.
    let reused = send(&one, &json!({"seats": ["A2"]})).await;
    assert_eq!(
        (reused.status, reused.error()),
        (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused")
    );
    // A refusal is stored in its show too: bob's "same" on show two, for alice's seat.
    let refused = s
        .post(&format!("/shows/{two}/holds"))
        .user("bob")
        .key("same")
        .json(body.clone())
        .send()
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text());
    assert_eq!(s.count("SELECT count(*) FROM holds").await, 2);
    let (one, two): (i64, i64) = (one.parse().unwrap(), two.parse().unwrap());
    let client = crate::common::audit::connect(&s.database_url).await;
    let rows: Vec<(String, i64)> = client
        .query(
            "SELECT scope, show_id FROM idempotency_keys ORDER BY scope, show_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        rows,
        [
            ("user:alice".to_owned(), one),
            ("user:alice".to_owned(), two),
            ("user:bob".to_owned(), two),
        ]
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_sent_for_many_shows_at_once_runs_on_every_show() {
    let mut s = TestServer::start().await;
    let mut shows = Vec::new();
    for _ in 0..12 {
        shows.push(s.show(&[("A", 2)]).await);
    }
    // Every show twice at once, with one key and one caller: each show's pair is one
    // request and its retry (one does the work, the other replays it or finds the key
    // in use), and no show's request is held up by another show's.
    let calls = shows.iter().chain(&shows).map(|show| {
        s.post(&format!("/shows/{show}/holds"))
            .user("alice")
            .key("everywhere")
            .json(json!({"seats": ["A1"]}))
            .send()
    });
    let answers = futures_util::future::join_all(calls).await;
    for (n, show) in shows.iter().enumerate() {
        let pair = [&answers[n], &answers[n + shows.len()]];
        let fresh: Vec<_> = pair
            .iter()
            .filter(|r| {
                r.status == StatusCode::CREATED && r.header("idempotent-replayed").is_none()
            })
            .collect();
        assert_eq!(fresh.len(), 1, "show {show}: exactly one did the work");
        for r in pair {
            let ok = r.status == StatusCode::CREATED
                || (r.status == StatusCode::CONFLICT && r.error() == "idempotency_key_in_use");
            assert!(ok, "show {show}: {} {}", r.status, r.text());
            if r.status == StatusCode::CREATED {
                assert_eq!(r.body, fresh[0].body, "show {show}: the same answer");
            }
        }
    }
    // One hold and one stored key per show, each key under its show.
    assert_eq!(s.count("SELECT count(*) FROM holds").await, 12);
    assert_eq!(
        s.count(
            "SELECT count(*) FROM idempotency_keys k
               JOIN holds h ON h.show_id = k.show_id
              WHERE k.key = 'everywhere'
                AND convert_from(k.body, 'UTF8')::jsonb->>'hold_id'
                    = h.show_id::text || '-' || h.id::text"
        )
        .await,
        12
    );
    crate::common::audit::audit(&s.database_url).await;
    s.stop().await;
}
