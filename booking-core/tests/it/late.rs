//! A late payment (`bookings::confirm_late`): an expired hold is booked if nobody took
//! its seats and places meanwhile, and never when someone did; racing new holds of its
//! seats, exactly one side gets each seat.

use crate::areas::{counts, create, gig, want};
use crate::common::{user, TestDb};
use booking_core::{bookings, holds, seats, sweeper, Error, SeatLabel, SeatState};

fn label(s: &str) -> SeatLabel {
    SeatLabel::parse(s).unwrap()
}

#[tokio::test]
async fn a_late_payment_books_an_expired_hold_whose_seats_nobody_took() {
    let db = TestDb::new().await;
    let engine = db.engine();
    let show = create(&db, gig(&[("A", 4)], 5, None)).await;
    let mut client = db.client().await;

    // Lapsed, not yet swept: its seats and places still point at it.
    let first = holds::hold(
        &mut client,
        &engine,
        &want(&show, "alice", &["A1", "A2"], 2),
    )
    .await
    .unwrap();
    db.lapse(first.hold_id).await;
    let on_time = bookings::confirm(&mut client, &engine, &user("alice"), first.hold_id).await;
    assert!(matches!(on_time, Err(Error::HoldExpired)), "{on_time:?}");
    let late = bookings::confirm_late(&mut client, &engine, &user("alice"), first.hold_id)
        .await
        .unwrap();
    assert!(late.created);
    assert_eq!(late.booking.tickets, first.tickets);
    assert_eq!(late.booking.total, first.total);
    assert_eq!(counts(&db, &show).await, (3, 0, 2));

    // Swept first: its seats and places were free again, and are taken back.
    let second = holds::hold(&mut client, &engine, &want(&show, "bob", &["A3"], 3))
        .await
        .unwrap();
    db.lapse(second.hold_id).await;
    sweeper::sweep_once(&mut client, &engine, 100)
        .await
        .unwrap();
    assert_eq!(counts(&db, &show).await, (3, 0, 2));
    let late = bookings::confirm_late(&mut client, &engine, &user("bob"), second.hold_id)
        .await
        .unwrap();
    assert_eq!(late.booking.tickets, second.tickets);
    let event = late.event.expect("the confirm's event");
    assert_eq!(
        (event.areas[0].available, event.areas[0].booked),
        (-3, 3),
        "places taken back from available"
    );
    assert_eq!(counts(&db, &show).await, (0, 0, 5));
    let map = seats::seat_map(&client, show.id).await.unwrap();
    let state = |l: &str| {
        map.seats
            .iter()
            .find(|s| s.label.as_str() == l)
            .unwrap()
            .state
    };
    assert_eq!(
        [state("A1"), state("A2"), state("A3"), state("A4")],
        [
            SeatState::Booked,
            SeatState::Booked,
            SeatState::Booked,
            SeatState::Available
        ]
    );
    // A repeat answers the booking; a released hold stays released.
    let again = bookings::confirm_late(&mut client, &engine, &user("bob"), second.hold_id)
        .await
        .unwrap();
    assert!(!again.created);
    let third = holds::hold(&mut client, &engine, &want(&show, "carol", &["A4"], 0))
        .await
        .unwrap();
    holds::release(&mut client, &engine, &user("carol"), third.hold_id)
        .await
        .unwrap();
    let r = bookings::confirm_late(&mut client, &engine, &user("carol"), third.hold_id).await;
    assert!(matches!(r, Err(Error::HoldReleased)), "{r:?}");
    db.audit().await;
}

#[tokio::test]
async fn a_late_payment_is_refused_naming_what_someone_else_took() {
    let db = TestDb::new().await;
    let engine = db.engine();
    let show = create(&db, gig(&[("A", 4)], 2, Some(4))).await;
    let mut client = db.client().await;
    let first = holds::hold(
        &mut client,
        &engine,
        &want(&show, "alice", &["A1", "A2"], 2),
    )
    .await
    .unwrap();
    db.lapse(first.hold_id).await;
    let bob = holds::hold(&mut client, &engine, &want(&show, "bob", &["A2"], 1))
        .await
        .unwrap();
    match bookings::confirm_late(&mut client, &engine, &user("alice"), first.hold_id).await {
        Err(Error::HoldExpiredTaken { seats }) => {
            assert_eq!(seats.len(), 2, "A2 and one place: {seats:?}");
            assert!(seats.contains(&label("A2")));
            assert!(seats.iter().any(|s| s.as_str().starts_with("FLOOR-")));
        }
        other => panic!("expected hold_expired naming A2 and a place, got {other:?}"),
    }
    // Nothing changed: bob keeps his, alice's hold is not confirmed.
    let read = holds::get_hold(&client, &user("bob"), bob.hold_id)
        .await
        .unwrap();
    assert_eq!(read.seats, vec![label("A2")]);
    assert_eq!(
        holds::get_hold(&client, &user("alice"), first.hold_id)
            .await
            .unwrap()
            .status,
        booking_core::HoldStatus::Expired
    );
    // The limit per buyer applies again: alice has a seat meanwhile, and her 4 seats
    // and places would make 5 on a show allowing 4.
    holds::release(&mut client, &engine, &user("bob"), bob.hold_id)
        .await
        .unwrap();
    holds::hold(&mut client, &engine, &want(&show, "alice", &["A3"], 0))
        .await
        .unwrap();
    let r = bookings::confirm_late(&mut client, &engine, &user("alice"), first.hold_id).await;
    assert!(
        matches!(
            r,
            Err(Error::UserLimitReached {
                limit: 4,
                current: 1
            })
        ),
        "{r:?}"
    );
    db.audit().await;
}

/// A late confirm racing a new hold of one of its seats, round after round: exactly one
/// of them gets the seat, never both, never neither; no deadlock.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_late_payment_racing_a_new_hold_of_its_seat_has_one_winner() {
    let db = TestDb::new().await;
    let engine = crate::common::patient_on(&db);
    let show = create(&db, gig(&[("A", 4)], 40, None)).await;
    for round in 0..20 {
        let seat = format!("A{}", round % 4 + 1);
        let mut client = db.client().await;
        let mine = holds::hold(
            &mut client,
            &engine,
            &want(&show, "alice", &[seat.as_str()], 1),
        )
        .await
        .unwrap();
        db.lapse(mine.hold_id).await;
        if round % 2 == 0 {
            sweeper::sweep_once(&mut client, &engine, 100)
                .await
                .unwrap();
        }
        let (pool, e1, e2) = (db.pool.clone(), engine.clone(), engine.clone());
        let late = tokio::spawn(async move {
            let mut c = pool.get().await.unwrap();
            bookings::confirm_late(&mut c, &e1, &user("alice"), mine.hold_id).await
        });
        let pool = db.pool.clone();
        let req = want(&show, &format!("bob{round}"), &[seat.as_str()], 0);
        let theirs = tokio::spawn(async move {
            let mut c = pool.get().await.unwrap();
            holds::hold(&mut c, &e2, &req).await
        });
        let (late, theirs) = (late.await.unwrap(), theirs.await.unwrap());
        match (&late, &theirs) {
            (Ok(_), Err(Error::SeatsUnavailable { .. })) => {}
            (Err(Error::HoldExpiredTaken { seats }), Ok(_)) => {
                assert_eq!(seats, &vec![label(&seat)]);
            }
            other => panic!("round {round}: {other:?}"),
        }
        // Free the seat for the next round.
        if let Ok(c) = &late {
            bookings::cancel(
                &mut client,
                &engine,
                &booking_core::Actor::User(user("alice")),
                c.booking.booking_id,
            )
            .await
            .unwrap();
        }
        if let Ok(h) = &theirs {
            holds::release(&mut client, &engine, &h.user_id, h.hold_id)
                .await
                .unwrap();
        }
    }
    db.audit().await;
}
