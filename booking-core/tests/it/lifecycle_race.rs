//! A show's cancellation racing every path that takes seats or places: nothing is held
//! or booked once it committed, and no event of the show follows its `show_cancel` in
//! the feed's order.

use crate::areas::{code, create, gig, want};
use crate::common::{patient, user, TestDb};
use booking_core::holds::batch::{BatchOptions, Batcher};
use booking_core::{
    best, bookings, holds, shows, Actor, AreaWant, BestRequest, CancellationToken, Error, Exchange,
    HoldAddition, SeatCount, SeatSelection,
};
use rand::Rng;

fn adding(seats: &[&str]) -> HoldAddition {
    HoldAddition {
        seats: SeatSelection::parse_or_none(seats, 10).unwrap(),
        areas: vec![],
        ticket_types: vec![],
    }
}

/// What a racer may be told: taken, or cancelled in one of its forms.
fn allowed(r: &Result<(), Error>) -> bool {
    matches!(
        r,
        Ok(())
            | Err(Error::ShowCancelled
                | Error::SeatsUnavailable { .. }
                | Error::HoldReleased
                | Error::BookingCancelled
                | Error::NotInBooking { .. })
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_is_taken_after_a_show_cancel_commits() {
    let db = TestDb::with_pool(40).await;
    let engine = patient();
    let batcher = Batcher::start(
        engine.clone(),
        db.pool.clone(),
        BatchOptions::default(),
        CancellationToken::new(),
    );
    let mut rng = rand::thread_rng();
    let mut answered = 0usize;
    let mut taken_before = 0usize;
    for round in 0..8 {
        // Rows A to H of 10 seats, FLOOR of 60; carts of C1..C10 and bookings of D1..D10.
        let rows: Vec<(&str, i64)> = ["A", "B", "C", "D", "E", "F", "G", "H"]
            .iter()
            .map(|r| (*r, 10))
            .collect();
        let show = create(&db, gig(&rows, 60, None)).await;
        let mut c = db.client().await;
        let mut carts = Vec::new();
        let mut booked = Vec::new();
        for n in 1..=10 {
            carts.push(
                holds::hold(
                    &mut c,
                    &engine,
                    &want(&show, &format!("c{n}"), &[&format!("C{n}")], 0),
                )
                .await
                .unwrap(),
            );
            let h = holds::hold(
                &mut c,
                &engine,
                &want(&show, &format!("b{n}"), &[&format!("D{n}")], 0),
            )
            .await
            .unwrap();
            booked.push(
                bookings::confirm(&mut c, &engine, &h.user_id, h.hold_id)
                    .await
                    .unwrap()
                    .booking,
            );
        }
        let mut tasks: Vec<tokio::task::JoinHandle<(&'static str, Result<(), Error>)>> = Vec::new();
        for i in 0..60usize {
            let (pool, engine, batcher, show) = (
                db.pool.clone(),
                engine.clone(),
                batcher.clone(),
                show.clone(),
            );
            let cart = carts[i % carts.len()].clone();
            let booking = booked[i % booked.len()].clone();
            let seat = format!("{}{}", ["A", "B", "E", "F"][i % 4], i % 10 + 1);
            tasks.push(tokio::spawn(async move {
                let mut c = pool.get().await.unwrap();
                let ok = |r: Result<booking_core::Hold, Error>| r.map(|_| ());
                match i % 10 {
                    0 => (
                        "hold",
                        ok(holds::hold(&mut c, &engine, &want(&show, "h", &[&seat], 1)).await),
                    ),
                    1 => (
                        "hold_pooled",
                        ok(
                            holds::hold_pooled(&mut c, &engine, &want(&show, "p", &[&seat], 0))
                                .await,
                        ),
                    ),
                    2 => (
                        "batch",
                        ok(batcher.hold(want(&show, "q", &[&seat], 0)).await),
                    ),
                    3 => (
                        "batch places",
                        ok(batcher.hold(want(&show, "r", &[], 2)).await),
                    ),
                    4 => (
                        "places",
                        ok(holds::hold(&mut c, &engine, &want(&show, "s", &[], 1)).await),
                    ),
                    5 => {
                        let actor = Actor::User(cart.user_id.clone());
                        (
                            "add",
                            ok(holds::add(
                                &mut c,
                                &engine,
                                &actor,
                                cart.hold_id,
                                &adding(&[&seat]),
                            )
                            .await),
                        )
                    }
                    6 => {
                        let actor = Actor::User(cart.user_id.clone());
                        (
                            "add batch",
                            ok(batcher.add(actor, cart.hold_id, adding(&[&seat])).await),
                        )
                    }
                    7 => {
                        let actor = Actor::User(cart.user_id.clone());
                        let mut more = adding(&[]);
                        more.seats = SeatSelection::none();
                        more.areas = vec![AreaWant::new(code("FLOOR"), 1).unwrap()];
                        (
                            "add places",
                            ok(holds::add(&mut c, &engine, &actor, cart.hold_id, &more).await),
                        )
                    }
                    8 => {
                        let req = BestRequest::new(
                            show.id,
                            user("best"),
                            SeatCount::parse(2, 10).unwrap(),
                        );
                        (
                            "best",
                            best::hold_best(&mut c, &engine, &req).await.map(|_| ()),
                        )
                    }
                    _ => {
                        let ex = Exchange {
                            release: SeatSelection::parse([booking.seats[0].as_str()], 10).unwrap(),
                            take: SeatSelection::parse([seat.as_str()], 10).unwrap(),
                            ticket_types: vec![],
                        };
                        let actor = Actor::User(booking.user_id.clone());
                        (
                            "exchange",
                            bookings::exchange(&mut c, &engine, &actor, booking.booking_id, &ex)
                                .await
                                .map(|_| ()),
                        )
                    }
                }
            }));
        }
        // The cancel lands somewhere among them.
        let pause = rng.gen_range(0..6u64);
        let cancel = {
            let (pool, engine, id) = (db.pool.clone(), engine.clone(), show.id);
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                shows::cancel(&mut pool.get().await.unwrap(), &engine, id).await
            })
        };
        for t in tasks {
            let (name, r) = t.await.unwrap();
            assert!(allowed(&r), "round {round}: {name}: {r:?}");
            answered += 1;
            taken_before += r.is_ok() as usize;
        }
        let done = cancel.await.unwrap().expect("the cancel");
        assert!(done.cancelled_now);
        let show_id = show.id.get();
        let left = |sql: &'static str| {
            let pool = db.pool.clone();
            async move {
                let c = pool.get().await.unwrap();
                c.query_one(sql, &[&show_id])
                    .await
                    .unwrap()
                    .get::<_, i64>(0)
            }
        };
        assert_eq!(
            left(
                "SELECT count(*) FROM seats WHERE show_id = $1
                   AND (hold_id IS NOT NULL OR booking_id IS NOT NULL)"
            )
            .await,
            0,
            "round {round}: a seat or place is held or booked after the cancel"
        );
        assert_eq!(
            left("SELECT count(*) FROM holds WHERE show_id = $1 AND status = 'active'").await,
            0,
            "round {round}: an active hold after the cancel"
        );
        assert_eq!(
            left("SELECT count(*) FROM bookings WHERE show_id = $1 AND status = 'confirmed'").await,
            0,
            "round {round}: a live booking after the cancel"
        );
        assert_eq!(
            left(
                "SELECT count(*) FROM seat_events e
                   WHERE e.show_id = $1
                     AND (e.xid, e.id) > (SELECT xid, id FROM seat_events
                                           WHERE show_id = $1 AND cause = 'show_cancel')"
            )
            .await,
            0,
            "round {round}: an event of the show follows its show_cancel"
        );
        // What it released and cancelled is found by its time, exactly.
        let at = done.show.cancelled_at.unwrap();
        let c = db.client().await;
        let released: i64 = c
            .query_one(
                "SELECT count(*) FROM holds WHERE show_id = $1 AND released_at = $2",
                &[&show_id, &at],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(released as u64, done.holds_released, "round {round}");
    }
    assert!(
        taken_before > 0,
        "no racer took anything before a cancel: {answered}"
    );
    db.audit().await;
}

/// Waits until `n` sessions of the test's database wait for a lock (a hang guard, not a
/// timing check).
async fn lock_waiters(db: &TestDb, n: i64) {
    for _ in 0..2000 {
        let waiting = db
            .count(
                "SELECT count(*) FROM pg_stat_activity
                  WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .await;
        if waiting >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("fewer than {n} sessions ever waited for a lock");
}

/// A hold whose read of the show came before the cancellation's close committed, and
/// whose lock came after, is refused: `holds::hold` by its read of the show after its
/// locks, `hold_pooled` (one statement, one snapshot) because the close rewrote the seat
/// it locked. Each fails without its rule (the hold is written, and swept a moment later).
#[tokio::test]
async fn a_hold_that_read_the_show_before_the_close_is_refused_after_it() {
    for pooled in [false, true] {
        let db = TestDb::new().await;
        let engine = patient();
        let show = db.show(1, 5).await;
        // Someone holds A5's row: the close will lock A1 to A4 and wait there.
        let mut locker = db.client().await;
        let tx = locker.transaction().await.unwrap();
        tx.execute(
            "SELECT 1 FROM seats WHERE show_id = $1 AND label = 'A5' FOR UPDATE",
            &[&show.id.get()],
        )
        .await
        .unwrap();
        let cancel = {
            let (pool, engine, id) = (db.pool.clone(), engine.clone(), show.id);
            tokio::spawn(
                async move { shows::cancel(&mut pool.get().await.unwrap(), &engine, id).await },
            )
        };
        lock_waiters(&db, 1).await;
        // The hold reads the show on sale, then waits for A1, which the close has.
        let hold = {
            let (pool, engine) = (db.pool.clone(), engine.clone());
            let req = crate::common::request(&show, "late", &["A1"]);
            tokio::spawn(async move {
                let mut c = pool.get().await.unwrap();
                match pooled {
                    true => holds::hold_pooled(&mut c, &engine, &req).await,
                    false => holds::hold(&mut c, &engine, &req).await,
                }
            })
        };
        lock_waiters(&db, 2).await;
        tx.commit().await.unwrap();
        let done = cancel.await.unwrap().unwrap();
        let held = hold.await.unwrap();
        assert!(
            matches!(held, Err(Error::ShowCancelled)),
            "pooled {pooled}: {held:?}"
        );
        assert_eq!((done.holds_released, done.bookings_cancelled), (0, 0));
        db.audit().await;
    }
}
