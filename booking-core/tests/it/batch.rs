//! Batched holds (`holds::batch`): many real concurrent requests, some written by one
//! statement together, racing ordinary holds; a failing batch, of holds and of adds
//! (the rest of the batched adds: `add_batch.rs`); then an audit of the tables and the
//! feed.

use crate::common::{patient_on, request, TestDb};
use booking_core::deadpool_postgres::Client;
use booking_core::holds::batch::{self, BatchOptions, Batcher};
use booking_core::{database, holds, Actor, CancellationToken, Error, HoldAddition, HoldRequest};
use booking_core::{SeatLabel, SeatSelection};
use rand::seq::SliceRandom;
use std::time::Duration;

/// One slot: while a batch runs every other request queues, so the next batch takes
/// many of them (the case under test).
fn one_slot() -> BatchOptions {
    BatchOptions {
        in_flight: 1,
        ..BatchOptions::default()
    }
}

fn label(l: &str) -> SeatLabel {
    SeatLabel::parse(l).unwrap()
}

/// Hold events: (how many, most written by one transaction).
async fn hold_events(db: &TestDb) -> (i64, i64) {
    let row = db
        .client()
        .await
        .query_one(
            "SELECT coalesce(sum(n), 0)::bigint, coalesce(max(n), 0)::bigint
               FROM (SELECT count(*) AS n FROM seat_events WHERE cause = 'hold' GROUP BY xid) t",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_and_single_holds_on_overlapping_seats_are_all_or_none() {
    let db = TestDb::with_pool(32).await;
    let show = db.show(2, 12).await;
    let engine = patient_on(&db);
    let batcher = Batcher::start(
        engine.clone(),
        db.pool.clone(),
        one_slot(),
        CancellationToken::new(),
    );
    let all: Vec<String> = ["A", "B"]
        .iter()
        .flat_map(|r| (1..=12).map(move |n| format!("{r}{n}")))
        .collect();

    let mut tasks = Vec::new();
    for i in 0..600 {
        let mut pick = all.clone();
        pick.shuffle(&mut rand::thread_rng());
        pick.truncate(1 + i % 4);
        let labels: Vec<&str> = pick.iter().map(String::as_str).collect();
        let req = request(&show, &format!("user-{i}"), &labels);
        let (batcher, pool, engine) = (batcher.clone(), db.pool.clone(), engine.clone());
        tasks.push(tokio::spawn(async move {
            // Four in five batched; the rest take the ordinary paths on the same seats.
            let out = match i % 10 {
                0 => {
                    let mut client = database::client(&pool).await?;
                    holds::hold(&mut client, &engine, &req).await
                }
                5 => {
                    let mut client = database::client(&pool).await?;
                    holds::hold_pooled(&mut client, &engine, &req).await
                }
                _ => batcher.hold(req.clone()).await,
            };
            Ok::<_, Error>((req, out))
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap().unwrap());
    }
    for (_, out) in &outcomes {
        if let Ok(h) = out {
            assert!(h.event.is_some(), "a new hold carries its own event");
        }
    }
    let winners = db.check_hold_outcomes(&show, outcomes).await;
    assert!(!winners.is_empty());
    assert_eq!(
        db.count("SELECT count(*) FROM holds").await,
        winners.len() as i64,
        "no hold nobody was told of"
    );
    let client = db.client().await;
    // One event per hold, with exactly that hold's seats.
    let events = client
        .query(
            "SELECT array(SELECT e->>'label' FROM jsonb_array_elements(seats) e ORDER BY 1)
               FROM seat_events WHERE cause = 'hold'",
            &[],
        )
        .await
        .unwrap();
    let mut wanted: Vec<Vec<String>> = winners
        .iter()
        .map(|h| {
            let mut v: Vec<String> = h.seats.iter().map(|s| s.as_str().to_owned()).collect();
            v.sort();
            v
        })
        .collect();
    let mut got: Vec<Vec<String>> = events.iter().map(|r| r.get(0)).collect();
    wanted.sort();
    got.sort();
    assert_eq!(got, wanted, "one hold event per hold, with its seats");
    db.audit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_do_write_many_holds_in_one_transaction() {
    // The other tests would pass with batches of one: make sure batches happen.
    let db = TestDb::with_pool(16).await;
    let show = db.show(4, 50).await;
    let batcher = Batcher::start(
        patient_on(&db),
        db.pool.clone(),
        one_slot(),
        CancellationToken::new(),
    );
    let mut tasks = Vec::new();
    for row in ["A", "B", "C", "D"] {
        for n in 1..=50 {
            let b = batcher.clone();
            let req = request(&show, "fan", &[&format!("{row}{n}")]);
            tasks.push(tokio::spawn(async move { b.hold(req).await }));
        }
    }
    for t in tasks {
        t.await
            .unwrap()
            .expect("every seat is free: every hold succeeds");
    }
    let (events, busiest) = hold_events(&db).await;
    assert_eq!(events, 200);
    assert!(
        busiest > 1,
        "200 requests queued at once went out in batches of one"
    );
    let counts = batcher.counts();
    assert_eq!(counts.requests, 200, "{counts:?}");
    assert!(counts.batches < 200, "{counts:?}");
    assert_eq!((counts.decided_alone, counts.failed), (0, 0), "{counts:?}");
    db.audit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seat_wanted_twice_in_a_batch_has_one_winner_and_losers_hold_nothing() {
    let db = TestDb::with_pool(16).await;
    let show = db.show(2, 60).await;
    // Everyone wants A1, and a seat of row B nobody else wants: all in one batch.
    let requests = (1..=60)
        .map(|n| request(&show, &format!("user-{n}"), &["A1", &format!("B{n}")]))
        .collect();
    let answers = batch::hold_all(&db.pool, &patient_on(&db), requests).await;
    let mut won = 0;
    for answer in answers {
        match answer {
            Ok(_) => won += 1,
            Err(Error::SeatsUnavailable { seats, .. }) => assert_eq!(seats, vec![label("A1")]),
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(won, 1, "exactly one hold has A1");
    let held: i64 = db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM seats WHERE show_id = $1 AND hold_id IS NOT NULL",
            &[&show.id.get()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(held, 2, "A1 and the winner's B seat; no loser's B seat");
    db.audit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seat_locked_elsewhere_does_not_stall_the_rest_of_its_batch() {
    let db = TestDb::with_pool(16).await;
    let show = db.show(1, 20).await;
    let batcher = Batcher::start(
        patient_on(&db),
        db.pool.clone(),
        one_slot(),
        CancellationToken::new(),
    );

    // Another transaction keeps A1 locked until we let go.
    let mut locker = db.client().await;
    let tx = locker.transaction().await.unwrap();
    tx.execute(
        "SELECT 1 FROM seats WHERE show_id = $1 AND label = 'A1' FOR UPDATE",
        &[&show.id.get()],
    )
    .await
    .unwrap();

    let blocked = {
        let b = batcher.clone();
        let req = request(&show, "blocked", &["A1"]);
        tokio::spawn(async move { b.hold(req).await })
    };
    let mut others = Vec::new();
    for n in 2..=20 {
        let b = batcher.clone();
        let req = request(&show, &format!("user-{n}"), &[&format!("A{n}")]);
        others.push(tokio::spawn(async move { b.hold(req).await }));
    }
    // A hang guard, not a timing check: with the lock still held, every other request
    // must be answered (a batch waiting on A1 would keep them all until it is let go).
    for t in others {
        tokio::time::timeout(Duration::from_secs(20), t)
            .await
            .expect("a request behind a locked seat of another request was not answered")
            .unwrap()
            .expect("free seat");
    }
    assert!(
        !blocked.is_finished(),
        "the request on A1 waits for its lock"
    );
    tx.rollback().await.unwrap();
    let h = blocked
        .await
        .unwrap()
        .expect("A1 is free once the lock is gone");
    assert_eq!(h.seats, vec![label("A1")]);
    db.audit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_batch_is_retried_request_by_request() {
    let db = TestDb::with_pool(16).await;
    let show = db.show(1, 30).await;
    // A fault in the database that hits one user's holds only: whatever batch carries
    // that request fails as a whole.
    db.client()
        .await
        .batch_execute(
            "CREATE FUNCTION explode() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN RAISE EXCEPTION 'boom'; END $$;
             CREATE TRIGGER explode BEFORE INSERT ON holds FOR EACH ROW
               WHEN (NEW.user_id = 'doomed') EXECUTE FUNCTION explode();",
        )
        .await
        .unwrap();
    let batcher = Batcher::start(
        patient_on(&db),
        db.pool.clone(),
        one_slot(),
        CancellationToken::new(),
    );
    let mut tasks: Vec<(String, tokio::task::JoinHandle<_>)> = Vec::new();
    for n in 1..=30 {
        let user = if n % 10 == 3 {
            "doomed".to_owned()
        } else {
            format!("user-{n}")
        };
        let b = batcher.clone();
        let req: HoldRequest = request(&show, &user, &[&format!("A{n}")]);
        tasks.push((user, tokio::spawn(async move { b.hold(req).await })));
    }
    let mut failed = 0;
    for (user, t) in tasks {
        match t.await.unwrap() {
            Ok(h) => assert_ne!(user, "doomed", "{h:?}"),
            Err(Error::Database(_)) if user == "doomed" => failed += 1,
            Err(e) => panic!("{user}: unexpected error: {e}"),
        }
    }
    assert_eq!(failed, 3, "only the doomed requests fail");
    let counts = batcher.counts();
    assert!(counts.failed >= 1, "{counts:?}");
    assert_eq!(
        db.count("SELECT count(*) FROM holds").await,
        27,
        "each other request held once"
    );
    db.audit().await;
}

/// The same for adds to holds: a batch of adds that fails is retried add by add by
/// `holds::add`, which passes over seats its hold has, so nothing is added twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_add_batch_is_retried_add_by_add() {
    let db = TestDb::with_pool(16).await;
    let show = db.show(2, 30).await;
    db.client()
        .await
        .batch_execute(
            "CREATE FUNCTION explode() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN RAISE EXCEPTION 'boom'; END $$;
             CREATE TRIGGER explode BEFORE UPDATE ON holds FOR EACH ROW
               WHEN (NEW.user_id = 'doomed' AND NEW.total <> OLD.total)
               EXECUTE FUNCTION explode();",
        )
        .await
        .unwrap();
    let engine = patient_on(&db);
    let mut client = db.client().await;
    let mut carts = Vec::new();
    for n in 1..=30 {
        let user = if n % 10 == 3 {
            "doomed".to_owned()
        } else {
            format!("user-{n}")
        };
        let req = request(&show, &user, &[&format!("A{n}")]);
        carts.push(holds::hold(&mut client, &engine, &req).await.unwrap());
    }
    let batcher = Batcher::start(
        engine,
        db.pool.clone(),
        one_slot(),
        CancellationToken::new(),
    );
    let mut tasks = Vec::new();
    for (n, h) in carts.iter().enumerate() {
        let (b, id, actor) = (batcher.clone(), h.hold_id, Actor::User(h.user_id.clone()));
        let add = HoldAddition {
            seats: SeatSelection::parse([format!("B{}", n + 1)], 10).unwrap(),
            areas: vec![],
            ticket_types: vec![],
        };
        tasks.push(tokio::spawn(async move { b.add(actor, id, add).await }));
    }
    let mut failed = 0;
    for (h, t) in carts.iter().zip(tasks) {
        match t.await.unwrap() {
            Ok(added) => {
                assert_ne!(h.user_id.as_str(), "doomed");
                assert_eq!(added.seats.len(), 2, "{added:?}");
            }
            Err(Error::Database(_)) if h.user_id.as_str() == "doomed" => failed += 1,
            Err(e) => panic!("{}: unexpected error: {e}", h.user_id),
        }
    }
    assert_eq!(failed, 3, "only the doomed adds fail");
    assert!(batcher.counts().failed >= 1, "{:?}", batcher.counts());
    assert_eq!(
        db.count("SELECT count(*) FROM hold_seats").await,
        30 + 27,
        "each other add made once"
    );
    db.audit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_queued_past_its_wait_is_busy_and_holds_nothing() {
    let db = TestDb::new().await;
    let show = db.show(1, 5).await;
    let batcher = Batcher::start(
        patient_on(&db),
        db.pool.clone(),
        BatchOptions {
            max_wait: Duration::ZERO,
            ..BatchOptions::default()
        },
        CancellationToken::new(),
    );
    match batcher.hold(request(&show, "late", &["A1"])).await {
        Err(Error::Busy(_)) => {}
        other => panic!("expected busy, got {other:?}"),
    }
    assert_eq!(db.count("SELECT count(*) FROM holds").await, 0);
    db.audit().await;
}

/// Takes every connection of `db`'s pool (of two), then sends `req` to `batcher` (of
/// one slot): its batch waits for a connection, holding the only slot, until the
/// connections returned are dropped, and requests sent meanwhile queue behind it.
async fn first_waiting(
    db: &TestDb,
    batcher: &Batcher,
    req: HoldRequest,
) -> (
    (Client, Client),
    tokio::task::JoinHandle<Result<holds::Hold, Error>>,
) {
    let taken = (db.client().await, db.client().await);
    let first = {
        let b = batcher.clone();
        tokio::spawn(async move { b.hold(req).await })
    };
    while db.pool.status().waiting == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (taken, first)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_caller_left_before_its_batch_holds_nothing() {
    let db = TestDb::with_pool(2).await;
    let show = db.show(1, 5).await;
    let batcher = Batcher::start(
        patient_on(&db),
        db.pool.clone(),
        one_slot(),
        CancellationToken::new(),
    );
    let (taken, first) = first_waiting(&db, &batcher, request(&show, "first", &["A1"])).await;
    // A second caller gives up while queued behind it (its request timed out, say).
    let gone = tokio::time::timeout(
        Duration::from_millis(50),
        batcher.hold(request(&show, "gone", &["A2"])),
    )
    .await;
    assert!(
        gone.is_err(),
        "nothing is answered while every connection is taken"
    );
    drop(taken);
    first.await.unwrap().expect("A1 is free");
    // A third request is taken from the queue after the second.
    batcher
        .hold(request(&show, "third", &["A3"]))
        .await
        .expect("A3 is free");
    assert_eq!(
        db.count("SELECT count(*) FROM holds WHERE user_id = 'gone'")
            .await,
        0,
        "a hold for a caller who had left"
    );
    db.audit().await;
}

/// Polls `fut` once: a batched hold's first poll queues its request.
async fn queue_now<F: std::future::Future + Unpin>(fut: &mut F) {
    assert!(
        futures_util::poll!(fut).is_pending(),
        "answered while every connection is taken"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_herd_queued_before_a_snapshot_refusal_is_refused_from_memory() {
    let db = TestDb::with_pool(2).await;
    let show = db.show(1, 5).await;
    let engine = patient_on(&db);
    let mut client = db.client().await;
    let owner = holds::hold(&mut client, &engine, &request(&show, "owner", &["A1"]))
        .await
        .expect("A1 is free");
    drop(client);
    let batcher = Batcher::start(
        engine.clone(),
        db.pool.clone(),
        one_slot(),
        CancellationToken::new(),
    );
    // The first request's batch waits for a connection, and the herd queues behind it.
    let (taken, first) = first_waiting(&db, &batcher, request(&show, "first", &["A1"])).await;
    let mut herd: Vec<_> = (0..20)
        .map(|i| Box::pin(batcher.hold(request(&show, &format!("herd-{i}"), &["A1"]))))
        .collect();
    // Not the refused set: a pair with A1 goes to the database.
    let mut pair = Box::pin(batcher.hold(request(&show, "pair", &["A2", "A1"])));
    for fut in herd.iter_mut() {
        queue_now(fut).await;
    }
    queue_now(&mut pair).await;
    drop(taken);

    let unavailable = |what: &str, out: Result<holds::Hold, Error>, seats: &[&str]| match out {
        Err(Error::SeatsUnavailable { seats: s, areas }) => {
            let want: Vec<SeatLabel> = seats.iter().map(|l| label(l)).collect();
            assert_eq!((s, areas), (want, vec![]), "{what}");
        }
        other => panic!("{what}: expected seats_unavailable, got {other:?}"),
    };
    unavailable("first", first.await.unwrap(), &["A1"]);
    for (i, out) in futures_util::future::join_all(herd)
        .await
        .into_iter()
        .enumerate()
    {
        unavailable(&format!("herd-{i}"), out, &["A1"]);
    }
    unavailable("pair", pair.await, &["A1"]);
    let counts = batcher.counts();
    assert_eq!(counts.refused_from_memory, 20, "{counts:?}");
    // Only the first request and the pair reached the database (in a batch statement
    // each on PostgreSQL, alone on Citus).
    assert_eq!(counts.requests + counts.decided_alone, 2, "{counts:?}");

    // A request queued after the refusal goes to the database: A1, released, is had.
    let mut client = db.client().await;
    holds::release(&mut client, &engine, &owner.user_id, owner.hold_id)
        .await
        .expect("the owner releases A1");
    drop(client);
    let late = batcher
        .hold(request(&show, "late", &["A1"]))
        .await
        .expect("A1 was released before this request was queued");
    assert_eq!(late.seats, vec![label("A1")]);
    assert_eq!(batcher.counts().refused_from_memory, 20);
    assert_eq!(
        db.count("SELECT count(*) FROM holds WHERE user_id LIKE 'herd-%'")
            .await,
        0
    );
    db.audit().await;
}
