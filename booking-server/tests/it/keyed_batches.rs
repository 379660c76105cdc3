//! Holds with an Idempotency-Key go through the hold batcher: claimed, held and stored
//! in a batch's transaction, refused from memory with their refusal stored, and every
//! answer replayed byte for byte to a retry with its key.

use crate::common::{Res, TestServer};
use hyper::StatusCode;
use serde_json::json;

/// A counter of `/metrics`, by its name (the text format may add `_total`).
async fn metric(s: &TestServer, name: &str) -> u64 {
    let text = s.get("/metrics").send().await.text();
    text.lines()
        .find_map(|l| {
            let rest = l.strip_prefix(name)?;
            let rest = rest.strip_prefix("_total").unwrap_or(rest);
            rest.strip_prefix(' ')?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

/// Retries `first` (sent with `key` and `body` by `user`) and checks it replays.
async fn assert_replays(
    s: &TestServer,
    path: &str,
    user: &str,
    key: &str,
    body: &serde_json::Value,
    first: &Res,
) {
    let again = s
        .post(path)
        .user(user)
        .key(key)
        .json(body.clone())
        .send()
        .await;
    assert_eq!(again.status, first.status, "{key}: {}", again.text());
    assert_eq!(again.header("idempotent-replayed"), Some("true"), "{key}");
    assert_eq!(again.body, first.body, "{key}: byte for byte");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_holds_written_in_batches_replay_byte_for_byte() {
    let mut s = TestServer::start().await;
    let show = s.show(&[("A", 40), ("B", 40)]).await;
    let path = format!("/shows/{show}/holds");
    let before = metric(&s, "booking_hold_batch_requests").await;

    let bodies: Vec<_> = (1..=40)
        .flat_map(|n| {
            [
                json!({"seats": [format!("A{n}")]}),
                json!({"seats": [format!("B{n}")]}),
            ]
        })
        .collect();
    let firsts = futures_util::future::join_all(bodies.iter().enumerate().map(|(n, b)| {
        s.post(&path)
            .user(&format!("u{n}"))
            .key(&format!("k{n}"))
            .json(b.clone())
            .send()
    }))
    .await;
    for (n, r) in firsts.iter().enumerate() {
        assert_eq!(r.status, StatusCode::CREATED, "k{n}: {}", r.text());
        assert_eq!(r.header("idempotent-replayed"), None);
    }
    // Every one of them went through the batcher.
    let carried = metric(&s, "booking_hold_batch_requests").await - before;
    assert!(
        carried >= 80,
        "the batches carried {carried} of 80 keyed holds"
    );

    for (n, (b, r)) in bodies.iter().zip(&firsts).enumerate() {
        assert_replays(&s, &path, &format!("u{n}"), &format!("k{n}"), b, r).await;
    }
    let r = s
        .post(&path)
        .user("u0")
        .key("k0")
        .json(json!({"seats": ["A2"]}))
        .send()
        .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused")
    );
    assert_eq!(s.count("SELECT count(*) FROM holds").await, 80);
    assert_eq!(s.count("SELECT count(*) FROM idempotency_keys").await, 80);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_herd_on_one_seat_has_one_winner_and_every_refusal_replays() {
    let mut s = TestServer::start().await;
    let show = s.show(&[("A", 4)]).await;
    let path = format!("/shows/{show}/holds");
    let body = json!({"seats": ["A1"]});

    let herd = |from: usize| {
        futures_util::future::join_all((from..from + 150).map(|n| {
            s.post(&path)
                .user(&format!("u{n}"))
                .key(&format!("h{n}"))
                .json(body.clone())
                .send()
        }))
    };
    let first = herd(0).await;
    // The map is read now (after the first refusals): later herds are refused from it.
    assert_eq!(
        s.get(&format!("/shows/{show}/seats")).send().await.status,
        StatusCode::OK
    );
    let second = herd(150).await;
    let answers: Vec<&Res> = first.iter().chain(&second).collect();
    let winners = answers
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    assert_eq!(winners, 1, "exactly one hold");
    for (n, r) in answers.iter().enumerate() {
        if r.status != StatusCode::CREATED {
            assert_eq!(
                (r.status, r.error()),
                (StatusCode::CONFLICT, "seats_unavailable")
            );
        }
        assert_replays(&s, &path, &format!("u{n}"), &format!("h{n}"), &body, r).await;
    }
    assert_eq!(s.count("SELECT count(*) FROM holds").await, 1);
    assert_eq!(s.count("SELECT count(*) FROM idempotency_keys").await, 300);
    s.stop().await;
}

/// Answered while the seats table is locked, which a trip to the database would wait
/// on until its lock timeout (503, not stored): these refusals come from memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_from_memory_are_stored_under_their_keys() {
    let mut s = TestServer::start_with(|c| c.lock_timeout_ms = 300).await;
    let show = s.show(&[("A", 4)]).await;
    let path = format!("/shows/{show}/holds");
    s.hold(&show, "bob", &["A1"]).await;
    assert_eq!(
        s.get(&format!("/shows/{show}/seats")).send().await.status,
        StatusCode::OK
    );
    let body = json!({"seats": ["A1"]});

    let mut client = s.pool.get().await.unwrap();
    let tx = client.transaction().await.unwrap();
    tx.batch_execute("LOCK TABLE seats IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    // Refused from memory when the map is current for the request (within 50 ms of
    // its arrival: on a loaded machine it may not be, and the request waits for the
    // database's lock, 503, stored nowhere).
    let mut answers = Vec::new();
    for n in 0..20 {
        let key = format!("m{n}");
        let r = s
            .post(&path)
            .user("alice")
            .key(&key)
            .json(body.clone())
            .send()
            .await;
        if r.status == StatusCode::SERVICE_UNAVAILABLE {
            continue;
        }
        assert_eq!(
            (r.status, r.error()),
            (StatusCode::CONFLICT, "seats_unavailable"),
            "{key}: {}",
            r.text()
        );
        assert_eq!(r.header("idempotent-replayed"), None);
        answers.push((key, r));
    }
    assert!(!answers.is_empty(), "no refusal came from memory");
    let (first_key, first) = &answers[0];
    // A retry with a key used before is answered from the key, not from memory.
    let r = s
        .post(&path)
        .user("alice")
        .key(first_key)
        .json(body.clone())
        .send()
        .await;
    assert_eq!(r.header("idempotent-replayed"), Some("true"));
    assert_eq!(r.body, first.body);
    // The same key with another body: 422, as the database path answers it.
    let r = s
        .post(&path)
        .user("alice")
        .key(first_key)
        .json(json!({"seats": ["A1", "A2"]}))
        .send()
        .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused")
    );
    tx.rollback().await.unwrap();

    for (key, r) in &answers {
        assert_replays(&s, &path, "alice", key, &body, r).await;
    }
    assert_eq!(s.count("SELECT count(*) FROM holds").await, 1);
    // One row per refusal sent; none for a 503.
    assert_eq!(
        s.count("SELECT count(*) FROM idempotency_keys WHERE key LIKE 'm%'")
            .await,
        answers.len() as i64
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_hold_of_seats_partly_taken_writes_nothing_and_replays_its_409() {
    let mut s = TestServer::start().await;
    let show = s.show(&[("A", 4)]).await;
    let path = format!("/shows/{show}/holds");
    s.hold(&show, "bob", &["A1"]).await;
    let before = metric(&s, "booking_hold_batch_requests").await;

    let body = json!({"seats": ["A1", "A2", "A3"]});
    let r = s
        .post(&path)
        .user("alice")
        .key("part")
        .json(body.clone())
        .send()
        .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::CONFLICT, "seats_unavailable")
    );
    assert_eq!(r.json["seats"], json!(["A1"]), "{}", r.text());
    assert_eq!(
        metric(&s, "booking_hold_batch_requests").await,
        before + 1,
        "decided by a batch"
    );
    assert_eq!(s.count("SELECT count(*) FROM holds").await, 1);
    assert_eq!(
        s.count("SELECT count(*) FROM seats WHERE hold_id IS NOT NULL")
            .await,
        1
    );
    assert_replays(&s, &path, "alice", "part", &body, &r).await;
    // A2 and A3 are still free.
    let r = s
        .post(&path)
        .user("carol")
        .key("rest")
        .json(json!({"seats": ["A2", "A3"]}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_answers_cannot_be_stored_is_retried_alone_and_holds_once() {
    let mut s = TestServer::start().await;
    let show = s.show(&[("A", 4)]).await;
    let path = format!("/shows/{show}/holds");
    // The first statement storing keys fails (a sequence is not rolled back, so only
    // the first): that is the batch's, whose transaction then rolls back whole.
    let client = s.pool.get().await.unwrap();
    client
        .batch_execute(
            "CREATE SEQUENCE fail_once;
             CREATE FUNCTION fail_once() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF nextval('fail_once') = 1 THEN
                     RAISE EXCEPTION 'storing keys failed';
                 END IF;
                 RETURN NULL;
             END $$;
             CREATE TRIGGER fail_once AFTER INSERT ON idempotency_keys
                 FOR EACH STATEMENT EXECUTE FUNCTION fail_once();",
        )
        .await
        .unwrap();
    let failures = metric(&s, "booking_hold_batch_failures").await;

    let body = json!({"seats": ["A1", "A2"]});
    let r = s
        .post(&path)
        .user("alice")
        .key("boom")
        .json(body.clone())
        .send()
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(
        metric(&s, "booking_hold_batch_failures").await,
        failures + 1
    );
    assert_eq!(s.count("SELECT count(*) FROM holds").await, 1);
    assert_eq!(s.count("SELECT count(*) FROM idempotency_keys").await, 1);
    assert_replays(&s, &path, "alice", "boom", &body, &r).await;
    s.stop().await;
}
