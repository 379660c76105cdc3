//! Lapsed holds block nobody, and sweepers expire each hold exactly once.

use crate::common::{patient_on, request, user, TestDb};
use booking_core::{bookings, database, holds, sweeper, Error, HoldStatus, SeatState};
use booking_core::{seats, CancellationToken, HoldId};
use rand::Rng;
use std::collections::HashSet;
use std::time::Duration;

#[tokio::test]
async fn a_lapsed_hold_blocks_nobody_before_any_sweep() {
    let db = TestDb::new().await;
    let show = db.show(1, 6).await;
    let engine = db.engine();
    let mut client = db.client().await;

    let first = holds::hold(
        &mut client,
        &engine,
        &request(&show, "alice", &["A1", "A2"]),
    )
    .await
    .unwrap();
    db.lapse(first.hold_id).await;

    // The seat map already reads the seats as available.
    let map = seats::seat_map(&client, show.id).await.unwrap();
    assert!(map.seats.iter().all(|s| s.state == SeatState::Available));

    let second = holds::hold(&mut client, &engine, &request(&show, "bob", &["A2", "A3"]))
        .await
        .expect("a lapsed hold does not block");
    assert_eq!(second.status, HoldStatus::Active);

    let read = holds::get_hold(&client, &user("alice"), first.hold_id)
        .await
        .unwrap();
    assert_eq!(read.status, HoldStatus::Expired);
    let confirm = bookings::confirm(&mut client, &engine, &user("alice"), first.hold_id).await;
    assert!(matches!(confirm, Err(Error::HoldExpired)), "{confirm:?}");
    let extend = holds::extend(
        &mut client,
        &engine,
        &user("alice"),
        first.hold_id,
        booking_core::HoldTtl::from_secs(60).unwrap(),
    )
    .await;
    assert!(matches!(extend, Err(Error::HoldExpired)), "{extend:?}");

    // The sweep frees A1 and leaves A2 with bob.
    let outcome = sweeper::sweep_once(&mut client, &engine, 100)
        .await
        .unwrap();
    assert_eq!(outcome.expired, vec![first.hold_id]);
    assert_eq!(outcome.seats_freed, 1);
    let map = seats::seat_map(&client, show.id).await.unwrap();
    let state = |l: &str| {
        map.seats
            .iter()
            .find(|s| s.label.as_str() == l)
            .unwrap()
            .state
    };
    assert_eq!(state("A1"), SeatState::Available);
    assert_eq!(state("A2"), SeatState::Held);
    assert_eq!(state("A3"), SeatState::Held);
    db.audit().await;
}

#[tokio::test]
async fn lapsing_changes_the_seat_version() {
    let db = TestDb::new().await;
    let show = db.show(1, 2).await;
    let engine = db.engine();
    let mut client = db.client().await;
    let h = holds::hold(&mut client, &engine, &request(&show, "alice", &["A1"]))
        .await
        .unwrap();
    let held = seats::seat_map(&client, show.id).await.unwrap().seats[0].clone();
    db.lapse(h.hold_id).await;
    let lapsed = seats::seat_map(&client, show.id).await.unwrap().seats[0].clone();
    assert_eq!(lapsed.state, SeatState::Available);
    assert_ne!(held.version, lapsed.version);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirms_racing_sweepers_at_the_deadline_end_one_way_or_the_other() {
    let db = TestDb::with_pool(24).await;
    let show = db.show(4, 25).await;
    let engine = patient_on(&db);
    let mut client = db.client().await;

    // 100 one-seat holds whose deadlines fall within the next 300 ms.
    let mut ids: Vec<HoldId> = Vec::new();
    for n in 0..100 {
        let label = format!("{}{}", crate::common::row_label(n / 25), n % 25 + 1);
        let h = holds::hold(&mut client, &engine, &request(&show, "alice", &[&label]))
            .await
            .unwrap();
        ids.push(h.hold_id);
    }
    client
        .execute(
            "UPDATE holds SET expires_at = now() + random() * interval '300 milliseconds'
              WHERE show_id = $1",
            &[&show.id.get()],
        )
        .await
        .unwrap();

    let stop = CancellationToken::new();
    let mut sweepers = Vec::new();
    for _ in 0..2 {
        let pool = db.pool.clone();
        let stop = stop.clone();
        let engine = engine.clone();
        sweepers.push(tokio::spawn(async move {
            let mut expired = Vec::new();
            while !stop.is_cancelled() {
                let mut c = database::client(&pool).await.unwrap();
                expired.extend(
                    sweeper::sweep_once(&mut c, &engine, 10)
                        .await
                        .unwrap()
                        .expired,
                );
                tokio::task::yield_now().await;
            }
            expired
        }));
    }
    let mut confirms = Vec::new();
    for id in ids.clone() {
        let pool = db.pool.clone();
        let engine = engine.clone();
        let delay = rand::thread_rng().gen_range(0..300);
        confirms.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            let mut c = database::client(&pool).await.unwrap();
            (
                id,
                bookings::confirm(&mut c, &engine, &user("alice"), id).await,
            )
        }));
    }
    let mut confirmed = HashSet::new();
    let mut expired_by_confirm = HashSet::new();
    for c in confirms {
        let (id, out) = c.await.unwrap();
        match out {
            Ok(c) => {
                assert!(c.created);
                confirmed.insert(id);
            }
            Err(Error::HoldExpired) => {
                expired_by_confirm.insert(id);
            }
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    stop.cancel();
    let mut swept = Vec::new();
    for s in sweepers {
        swept.extend(s.await.unwrap());
    }
    // Every deadline has passed by now: a last sweep takes whatever the racers left.
    loop {
        let out = sweeper::sweep_once(&mut client, &engine, 100)
            .await
            .unwrap();
        if out.expired.is_empty() {
            break;
        }
        swept.extend(out.expired);
    }
    let swept_set: HashSet<HoldId> = swept.iter().copied().collect();
    assert_eq!(swept.len(), swept_set.len(), "a hold was expired twice");
    for id in &ids {
        let hold = holds::get_hold(&client, &user("alice"), *id).await.unwrap();
        let was_confirmed = confirmed.contains(id);
        assert_ne!(was_confirmed, expired_by_confirm.contains(id));
        if was_confirmed {
            assert_eq!(hold.status, HoldStatus::Confirmed, "{id}");
            assert!(!swept_set.contains(id), "{id} confirmed and swept");
            assert!(hold.booking_id.is_some());
        } else {
            assert_eq!(hold.status, HoldStatus::Expired, "{id}");
            assert!(swept_set.contains(id), "{id} refused but never swept");
        }
    }
    // No seat is lost: every seat is booked by a confirmed hold or free.
    let map = seats::seat_map(&client, show.id).await.unwrap();
    let booked = map
        .seats
        .iter()
        .filter(|s| s.state == SeatState::Booked)
        .count();
    let available = map
        .seats
        .iter()
        .filter(|s| s.state == SeatState::Available)
        .count();
    assert_eq!(booked, confirmed.len());
    assert_eq!(booked + available, 100);
    db.audit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sweepers_expire_two_thousand_holds_exactly_once() {
    let db = TestDb::with_pool(16).await;
    let show = db.show(20, 100).await;
    let engine = db.engine();

    // 2,000 one-seat holds, made through the library, 8 at a time.
    let mut makers = Vec::new();
    for part in 0..8 {
        let pool = db.pool.clone();
        let engine = engine.clone();
        let show = show.clone();
        makers.push(tokio::spawn(async move {
            let mut c = database::client(&pool).await.unwrap();
            for n in (part..2000).step_by(8) {
                let label = format!("{}{}", crate::common::row_label(n / 100), n % 100 + 1);
                holds::hold(&mut c, &engine, &request(&show, "alice", &[&label]))
                    .await
                    .unwrap();
            }
        }));
    }
    for m in makers {
        m.await.unwrap();
    }
    db.client()
        .await
        .execute(
            "UPDATE holds SET created_at = now() - interval '2 minutes',
                              expires_at = now() - interval '1 minute'",
            &[],
        )
        .await
        .unwrap();

    let mut sweepers = Vec::new();
    for _ in 0..2 {
        let pool = db.pool.clone();
        let engine = engine.clone();
        sweepers.push(tokio::spawn(async move {
            let mut c = database::client(&pool).await.unwrap();
            let (mut expired, mut freed) = (Vec::new(), 0);
            loop {
                let out = sweeper::sweep_once(&mut c, &engine, 50).await.unwrap();
                if out.expired.is_empty() {
                    return (expired, freed);
                }
                expired.extend(out.expired);
                freed += out.seats_freed;
            }
        }));
    }
    let (mut all, mut freed) = (Vec::new(), 0);
    for s in sweepers {
        let (e, f) = s.await.unwrap();
        all.extend(e);
        freed += f;
    }
    let unique: HashSet<HoldId> = all.iter().copied().collect();
    assert_eq!(all.len(), 2000, "every hold expired once in all");
    assert_eq!(unique.len(), 2000, "no hold expired twice");
    assert_eq!(freed, 2000);
    let client = db.client().await;
    let left: i64 = client
        .query_one(
            "SELECT count(*) FROM seats WHERE hold_id IS NOT NULL OR booking_id IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "every seat is free");
    let not_expired: i64 = client
        .query_one("SELECT count(*) FROM holds WHERE status <> 'expired'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(not_expired, 0);
    db.audit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_loop_expires_a_hold_soon_after_its_deadline_and_stops_on_cancel() {
    let db = TestDb::new().await;
    let show = db.show(1, 4).await;
    let engine = db.engine();
    let stop = CancellationToken::new();
    let options = sweeper::SweeperOptions {
        batch: 100,
        // Long enough that only the deadline and the wake-up can explain a quick sweep.
        fallback_tick: Duration::from_secs(300),
        ..Default::default()
    };
    let runner = tokio::spawn(sweeper::run(
        engine.clone(),
        db.pool.clone(),
        options,
        stop.clone(),
    ));
    // Let the sweeper start and go to sleep on an empty queue.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut client = db.client().await;
    let mut req = request(&show, "alice", &["A1"]);
    req.ttl = Some(booking_core::HoldTtl::from_secs(1).unwrap());
    let h = holds::hold(&mut client, &engine, &req).await.unwrap();

    // The sweeper was asleep for 300 s; only the new hold's wake-up can explain a sweep.
    let mut status = HoldStatus::Active;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let raw: String = client
            .query_one(
                "SELECT status FROM holds WHERE show_id = $1 AND id = $2",
                &[&h.hold_id.show().get(), &h.hold_id.key()],
            )
            .await
            .unwrap()
            .get(0);
        if raw == "expired" {
            status = HoldStatus::Expired;
            break;
        }
    }
    assert_eq!(status, HoldStatus::Expired, "the sweeper expired the hold");
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), runner)
        .await
        .expect("the sweeper stops on cancel")
        .unwrap();
    db.audit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_prunes_idempotency_keys_past_their_retention() {
    let db = TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute(
            // Across shows: the prune is by age alone (show 0: requests of no show).
            "INSERT INTO idempotency_keys (show_id, scope, key, fingerprint, status, body,
                                           created_at) VALUES
               (0, 'user:a', 'old', '\\x00', 201, '', now() - interval '25 hours'),
               (7, 'user:a', 'old', '\\x00', 201, '', now() - interval '26 hours'),
               (7, 'user:a', 'new', '\\x00', 201, '', now() - interval '23 hours')",
        )
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let runner = tokio::spawn(sweeper::run(
        db.engine(),
        db.pool.clone(),
        sweeper::SweeperOptions::default(),
        stop.clone(),
    ));
    let mut keys = Vec::new();
    for _ in 0..100 {
        let rows = client
            .query("SELECT key FROM idempotency_keys ORDER BY key", &[])
            .await
            .unwrap();
        keys = rows.iter().map(|r| r.get::<_, String>(0)).collect();
        if keys == ["new"] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        keys,
        ["new"],
        "the key older than 24 h is gone, the younger one kept"
    );
    stop.cancel();
    runner.await.unwrap();
}
