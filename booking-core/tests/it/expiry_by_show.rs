//! The sweep of a Citus formation (due holds read across shows, expired show by show),
//! forced on plain PostgreSQL too, so that its outcome is checked on both: every
//! lapsed hold of every show expired exactly once, its seats freed, one `expire` event
//! each, and a hold confirmed meanwhile left alone.

use crate::common::{request, user, TestDb};
use booking_core::{bookings, database, holds, sweeper, Engine, HoldId, HoldStatus, Settings};
use std::collections::HashSet;

/// An engine that sweeps show by show, on any database.
fn by_show(db: &TestDb) -> Engine {
    Engine::new(Settings {
        distributed: true,
        ..db.settings()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sweepers_expire_the_holds_of_four_shows_exactly_once_show_by_show() {
    let db = TestDb::with_pool(16).await;
    let engine = by_show(&db);
    let mut shows = Vec::new();
    for _ in 0..4 {
        shows.push(db.show(3, 100).await);
    }
    // 250 one-seat holds per show, 4 makers per show.
    let mut makers = Vec::new();
    for show in &shows {
        for part in 0..4 {
            let (pool, engine, show) = (db.pool.clone(), engine.clone(), show.clone());
            makers.push(tokio::spawn(async move {
                let mut c = database::client(&pool).await.unwrap();
                for n in (part..250).step_by(4) {
                    let label = format!("{}{}", crate::common::row_label(n / 100), n % 100 + 1);
                    holds::hold(&mut c, &engine, &request(&show, "alice", &[&label]))
                        .await
                        .unwrap();
                }
            }));
        }
    }
    for m in makers {
        m.await.unwrap();
    }
    // One hold of the first show is confirmed before its deadline: never swept.
    let kept = holds::hold(
        &mut db.client().await,
        &engine,
        &request(&shows[0], "bob", &["C100"]),
    )
    .await
    .unwrap();
    bookings::confirm(&mut db.client().await, &engine, &user("bob"), kept.hold_id)
        .await
        .unwrap();
    db.client()
        .await
        .execute(
            "UPDATE holds SET created_at = now() - interval '2 minutes',
                              expires_at = now() - interval '1 minute'
              WHERE status = 'active'",
            &[],
        )
        .await
        .unwrap();

    let mut sweepers = Vec::new();
    for _ in 0..2 {
        let (pool, engine) = (db.pool.clone(), engine.clone());
        sweepers.push(tokio::spawn(async move {
            let mut c = database::client(&pool).await.unwrap();
            let (mut expired, mut freed) = (Vec::new(), 0);
            loop {
                let out = sweeper::sweep_once(&mut c, &engine, 70).await.unwrap();
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
    // A sweeper whose whole batch the other took stops early: a last sweep takes the rest.
    let mut client = db.client().await;
    loop {
        let out = sweeper::sweep_once(&mut client, &engine, 70).await.unwrap();
        if out.expired.is_empty() {
            break;
        }
        all.extend(out.expired);
        freed += out.seats_freed;
    }
    let unique: HashSet<HoldId> = all.iter().copied().collect();
    assert_eq!(all.len(), 1000, "every hold expired once in all");
    assert_eq!(unique.len(), 1000, "no hold expired twice");
    assert!(
        !unique.contains(&kept.hold_id),
        "a confirmed hold was swept"
    );
    assert_eq!(freed, 1000);
    for show in &shows {
        let swept = all.iter().filter(|h| h.show() == show.id).count();
        assert_eq!(swept, 250, "show {}", show.id);
    }
    let row = client
        .query_one(
            "SELECT count(*), count(DISTINCT (show_id, hold_id)),
                    (SELECT count(*) FROM holds WHERE status = 'active'),
                    (SELECT count(*) FROM seats WHERE hold_id IS NOT NULL)
               FROM seat_events WHERE cause = 'expire'",
            &[],
        )
        .await
        .unwrap();
    let (events, held, active, pointing): (i64, i64, i64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!((events, held), (1000, 1000), "one expire event per hold");
    assert_eq!((active, pointing), (0, 0), "nothing left held");
    let kept = holds::get_hold(&client, &user("bob"), kept.hold_id)
        .await
        .unwrap();
    assert_eq!(kept.status, HoldStatus::Confirmed);
    db.audit().await;
}

/// The holds are written by SQL (the shape `holds::hold` leaves), so that this runs on
/// a Citus formation as well, whatever the hold statement can do there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lapsed_holds_of_many_shows_are_expired_once_each_on_their_own_nodes() {
    let db = TestDb::with_pool(8).await;
    let engine = by_show(&db);
    let client = db.client().await;
    let mut shows = Vec::new();
    for _ in 0..6 {
        let show = db.show(1, 40).await;
        // 30 one-seat holds, lapsed a minute ago; the seat's hold is md5(show-seat).
        for sql in [
            "INSERT INTO holds (show_id, id, user_id, created_at, expires_at, total)
             SELECT s.show_id, md5(s.show_id || '-' || s.id)::uuid, 'alice',
                    now() - interval '2 minutes', now() - interval '1 minute', tp.price
               FROM seats s JOIN shows sh ON sh.id = s.show_id
               JOIN ticket_prices tp ON tp.show_id = s.show_id AND tp.category = s.category
                AND tp.type = sh.default_ticket_type
              WHERE s.show_id = $1 AND s.number <= 30",
            "UPDATE seats s SET hold_id = md5(s.show_id || '-' || s.id)::uuid
              WHERE s.show_id = $1 AND s.number <= 30",
            "INSERT INTO hold_seats (show_id, hold_id, seat_id, ticket_type, price)
             SELECT s.show_id, s.hold_id, s.id, sh.default_ticket_type, tp.price
               FROM seats s JOIN shows sh ON sh.id = s.show_id
               JOIN ticket_prices tp ON tp.show_id = s.show_id AND tp.category = s.category
                AND tp.type = sh.default_ticket_type
              WHERE s.show_id = $1 AND s.hold_id IS NOT NULL",
        ] {
            client.execute(sql, &[&show.id.get()]).await.unwrap();
        }
        shows.push(show);
    }

    let mut sweepers = Vec::new();
    for _ in 0..2 {
        let (pool, engine) = (db.pool.clone(), engine.clone());
        sweepers.push(tokio::spawn(async move {
            let mut c = database::client(&pool).await.unwrap();
            let mut expired = Vec::new();
            loop {
                let out = sweeper::sweep_once(&mut c, &engine, 40).await.unwrap();
                if out.expired.is_empty() {
                    return expired;
                }
                expired.extend(out.expired);
            }
        }));
    }
    let mut all = Vec::new();
    for s in sweepers {
        all.extend(s.await.unwrap());
    }
    let mut c = db.client().await;
    loop {
        let out = sweeper::sweep_once(&mut c, &engine, 40).await.unwrap();
        if out.expired.is_empty() {
            break;
        }
        all.extend(out.expired);
    }
    let unique: HashSet<HoldId> = all.iter().copied().collect();
    assert_eq!(
        (all.len(), unique.len()),
        (180, 180),
        "each hold expired once"
    );
    for show in &shows {
        let map = booking_core::seats::seat_map(&client, show.id)
            .await
            .unwrap();
        assert!(
            map.seats
                .iter()
                .all(|s| s.state == booking_core::SeatState::Available),
            "show {}: every seat free",
            show.id
        );
        // Its events are in its own feed, below its node's watermark: one per hold.
        let events = booking_core::feed::read_for(
            &client,
            &engine.settings().clone(),
            Some(show.id),
            booking_core::feed::Position::START,
            None,
            100,
        )
        .await
        .unwrap();
        assert_eq!(events.len(), 30, "show {}", show.id);
    }
    db.audit().await;
}
