//! Bookings that change (`bookings::cancel_part`, `bookings::exchange`): partial
//! cancels and exchanges all or none, nothing changed twice; racing holds of the same
//! seats, a seat is in one place only, and no mix of changes deadlocks.

use crate::areas::{code, create, gig, ticket, want};
use crate::common::{patient, user, TestDb};
use booking_core::feed::Cause;
use booking_core::{bookings, holds, Actor, AreaWant, BookingStatus, Engine, Error, Exchange};
use booking_core::{CancelPart, SeatLabel, SeatSelection, SeatState, Show};
use rand::Rng;

fn label(s: &str) -> SeatLabel {
    SeatLabel::parse(s).unwrap()
}

fn seats(labels: &[&str]) -> SeatSelection {
    SeatSelection::parse_or_none(labels, 100).unwrap()
}

fn part(labels: &[&str], places: i64) -> CancelPart {
    CancelPart {
        seats: seats(labels),
        areas: match places {
            0 => vec![],
            n => vec![AreaWant::new(code("FLOOR"), n).unwrap()],
        },
    }
}

fn swap(release: &[&str], take: &[&str]) -> Exchange {
    Exchange {
        release: seats(release),
        take: seats(take),
        ticket_types: vec![],
    }
}

fn alice() -> Actor {
    Actor::User(user("alice"))
}

/// A confirmed booking of `who` for `labels` and `places` places of FLOOR.
async fn booked(
    db: &TestDb,
    engine: &Engine,
    show: &Show,
    who: &str,
    labels: &[&str],
    places: i64,
) -> booking_core::Booking {
    let mut client = db.client().await;
    let h = holds::hold(&mut client, engine, &want(show, who, labels, places))
        .await
        .unwrap();
    bookings::confirm(&mut client, engine, &user(who), h.hold_id)
        .await
        .unwrap()
        .booking
}

#[tokio::test]
async fn a_partial_cancel_frees_only_what_it_names_and_never_twice() {
    let db = TestDb::new().await;
    let engine = Engine::default();
    let show = create(&db, gig(&[("A", 4)], 5, None)).await;
    let mut client = db.client().await;
    let b = booked(&db, &engine, &show, "alice", &["A1", "A2", "A3"], 2).await;
    assert_eq!(b.total, 3 * 5000 + 2 * 3000);
    let id = b.booking_id;

    let c = bookings::cancel_part(&mut client, &engine, &alice(), id, Some(&part(&["A1"], 1)))
        .await
        .unwrap();
    assert_eq!(c.booking.status, BookingStatus::Confirmed);
    assert_eq!(c.booking.seats, vec![label("A2"), label("A3")]);
    assert_eq!(c.booking.areas.get(&code("FLOOR")), Some(&1));
    assert_eq!(c.booking.total, 2 * 5000 + 3000);
    assert_eq!(c.cancelled.len(), 2);
    assert_eq!(c.cancelled[0].seat, label("A1"));
    let place = &c.cancelled[1];
    assert_eq!(place.area, Some(code("FLOOR")));
    let kept = c.booking.tickets.iter().find(|t| t.area.is_some()).unwrap();
    assert!(
        kept.seat.as_str() < place.seat.as_str(),
        "the highest-numbered place goes: kept {kept:?}, cancelled {place:?}"
    );
    let event = c.event.clone().unwrap();
    assert_eq!(event.cause, Cause::Cancel);
    assert_eq!(event.seats.len(), 1);
    assert_eq!((event.areas[0].booked, event.areas[0].available), (-1, 1));
    assert_eq!(
        bookings::get_booking(&client, &alice(), id).await.unwrap(),
        c.booking
    );

    // The same seat again: nothing changes twice.
    let again = bookings::cancel_part(&mut client, &engine, &alice(), id, Some(&part(&["A1"], 0)))
        .await
        .unwrap();
    assert!(again.cancelled.is_empty() && again.event.is_none());
    assert_eq!(again.booking, c.booking);

    // Seats it never had, or more places than it has: refused, nothing changed.
    let r = bookings::cancel_part(
        &mut client,
        &engine,
        &alice(),
        id,
        Some(&part(&["A2", "A4"], 2)),
    )
    .await;
    match r {
        Err(Error::NotInBooking { seats, areas }) => {
            assert_eq!(seats, vec![label("A4")]);
            assert_eq!(areas, vec![code("FLOOR")]);
        }
        other => panic!("expected not_in_booking, got {other:?}"),
    }
    let r = bookings::cancel_part(
        &mut client,
        &engine,
        &Actor::User(user("bob")),
        id,
        Some(&part(&["A2"], 0)),
    )
    .await;
    assert!(matches!(r, Err(Error::Forbidden)), "{r:?}");

    // The rest: the booking is cancelled, listing what it had then, at that total.
    let last = bookings::cancel_part(
        &mut client,
        &engine,
        &Actor::Admin,
        id,
        Some(&part(&["A2", "A3"], 1)),
    )
    .await
    .unwrap();
    assert_eq!(last.booking.status, BookingStatus::Cancelled);
    assert_eq!(last.booking.seats, vec![label("A2"), label("A3")]);
    assert_eq!(last.booking.total, 2 * 5000 + 3000);
    assert_eq!(last.cancelled.len(), 3);
    let whole = bookings::cancel(&mut client, &engine, &alice(), id)
        .await
        .unwrap();
    assert_eq!(whole, last.booking);
    let map = booking_core::seats::seat_map(&client, show.id)
        .await
        .unwrap();
    assert!(map.seats.iter().all(|s| s.state == SeatState::Available));
    db.audit().await;
}

#[tokio::test]
async fn an_exchange_takes_the_new_seats_and_frees_the_old_or_changes_nothing() {
    let db = TestDb::new().await;
    let engine = Engine::default();
    let show = create(&db, gig(&[("A", 4), ("B", 4)], 2, Some(4))).await;
    let mut client = db.client().await;
    let b = booked(&db, &engine, &show, "alice", &["A1", "A2"], 1).await;
    let id = b.booking_id;

    let x = bookings::exchange(
        &mut client,
        &engine,
        &alice(),
        id,
        &swap(&["A1", "A2"], &["B1", "B2", "B3"]),
    )
    .await
    .unwrap();
    assert_eq!(x.booking.booking_id, id);
    assert_eq!(x.booking.seats, vec![label("B1"), label("B2"), label("B3")]);
    assert_eq!(x.booking.areas.get(&code("FLOOR")), Some(&1), "places stay");
    assert_eq!(x.difference, 5000);
    assert_eq!(x.booking.total, b.total + 5000);
    let event = x.event.clone().unwrap();
    assert_eq!(event.cause, Cause::Exchange);
    let states: Vec<(&str, SeatState)> = event
        .seats
        .iter()
        .map(|s| (s.label.as_str(), s.state))
        .collect();
    assert_eq!(
        states,
        vec![
            ("A1", SeatState::Available),
            ("A2", SeatState::Available),
            ("B1", SeatState::Booked),
            ("B2", SeatState::Booked),
            ("B3", SeatState::Booked)
        ]
    );

    // A seat to take is held by bob: nothing changes.
    let bob = holds::hold(&mut client, &engine, &want(&show, "bob", &["A4"], 0))
        .await
        .unwrap();
    let r = bookings::exchange(
        &mut client,
        &engine,
        &alice(),
        id,
        &swap(&["B1"], &["A3", "A4"]),
    )
    .await;
    match r {
        Err(Error::SeatsUnavailable { seats, .. }) => assert_eq!(seats, vec![label("A4")]),
        other => panic!("expected seats_unavailable, got {other:?}"),
    }
    assert_eq!(
        bookings::get_booking(&client, &alice(), id).await.unwrap(),
        x.booking
    );
    // Seats it does not have (A1 was exchanged away), unknown seats, the limit (4).
    let r = bookings::exchange(&mut client, &engine, &alice(), id, &swap(&["A1"], &["A3"])).await;
    assert!(
        matches!(&r, Err(Error::NotInBooking { seats, .. }) if seats == &vec![label("A1")]),
        "{r:?}"
    );
    let r = bookings::exchange(&mut client, &engine, &alice(), id, &swap(&["B1"], &["C1"])).await;
    assert!(matches!(r, Err(Error::SeatNotFound { .. })), "{r:?}");
    let r = bookings::exchange(
        &mut client,
        &engine,
        &alice(),
        id,
        &swap(&["B1"], &["A1", "A2"]),
    )
    .await;
    assert!(
        matches!(
            r,
            Err(Error::UserLimitReached {
                limit: 4,
                current: 4
            })
        ),
        "{r:?}"
    );
    // A type not sold for seats (child is for places only).
    let mut typed = swap(&["B1"], &["A1"]);
    typed.ticket_types = vec![(label("A1"), ticket("child"))];
    let r = bookings::exchange(&mut client, &engine, &alice(), id, &typed).await;
    assert!(
        matches!(r, Err(Error::TicketTypeUnavailable { .. })),
        "{r:?}"
    );
    // Back to a seat it had once: its row lives again.
    let back = bookings::exchange(&mut client, &engine, &alice(), id, &swap(&["B3"], &["A1"]))
        .await
        .unwrap();
    assert_eq!(back.difference, 0);
    assert_eq!(
        back.booking.seats,
        vec![label("A1"), label("B1"), label("B2")]
    );
    // A partial cancel of a seat exchanged away is not a repeat: refused.
    let r =
        bookings::cancel_part(&mut client, &engine, &alice(), id, Some(&part(&["B3"], 0))).await;
    assert!(matches!(r, Err(Error::NotInBooking { .. })), "{r:?}");
    holds::release(&mut client, &engine, &user("bob"), bob.hold_id)
        .await
        .unwrap();
    bookings::cancel(&mut client, &engine, &alice(), id)
        .await
        .unwrap();
    let r = bookings::exchange(&mut client, &engine, &alice(), id, &swap(&["A1"], &["A4"])).await;
    assert!(matches!(r, Err(Error::BookingCancelled)), "{r:?}");
    db.audit().await;
}

/// An exchange racing holds of its target seats, and a partial cancel racing a hold of
/// the seat it frees, round after round: never both, never a booking with fewer seats
/// than before, a seat in one place only.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exchanges_and_partial_cancels_racing_holds_give_each_seat_once() {
    let db = TestDb::with_pool(16).await;
    let engine = patient();
    let show = create(&db, gig(&[("A", 10), ("B", 10)], 2, None)).await;
    let b = booked(&db, &engine, &show, "alice", &["A1", "A2"], 0).await;
    let id = b.booking_id;
    let mut have = vec!["A1".to_owned(), "A2".to_owned()];
    for round in 0..24 {
        let target = (0..10)
            .map(|k| format!("B{}", (round + k) % 10 + 1))
            .find(|t| !have.contains(t))
            .unwrap();
        let give = have[0].clone();
        let (pool, e1, e2) = (db.pool.clone(), engine.clone(), engine.clone());
        let ex = swap(&[give.as_str()], &[target.as_str()]);
        let x = tokio::spawn(async move {
            let mut c = pool.get().await.unwrap();
            bookings::exchange(&mut c, &e1, &Actor::User(user("alice")), id, &ex).await
        });
        let pool = db.pool.clone();
        let req = want(&show, &format!("bob{round}"), &[target.as_str()], 0);
        let h = tokio::spawn(async move {
            let mut c = pool.get().await.unwrap();
            holds::hold(&mut c, &e2, &req).await
        });
        let (x, h) = (x.await.unwrap(), h.await.unwrap());
        let mut client = db.client().await;
        match (&x, &h) {
            (Ok(x), Err(Error::SeatsUnavailable { .. })) => {
                assert_eq!(x.booking.seats.len(), 2);
                have.retain(|s| *s != give);
                have.push(target.clone());
            }
            (Err(Error::SeatsUnavailable { seats, .. }), Ok(h)) => {
                assert_eq!(seats, &vec![label(&target)]);
                holds::release(&mut client, &engine, &h.user_id, h.hold_id)
                    .await
                    .unwrap();
            }
            other => panic!("round {round}: {other:?}"),
        }
        let now = bookings::get_booking(&client, &alice(), id).await.unwrap();
        assert_eq!(now.seats.len(), 2, "round {round}: {now:?}");
    }
    // A partial cancel racing a hold of the seat it frees: bob may or may not get it,
    // but the seat is never in both.
    let c = booked(&db, &engine, &show, "carol", &["A9", "A10"], 0).await;
    let (pool, e1, e2) = (db.pool.clone(), engine.clone(), engine.clone());
    let cancel = tokio::spawn(async move {
        let mut c2 = pool.get().await.unwrap();
        bookings::cancel_part(
            &mut c2,
            &e1,
            &Actor::User(user("carol")),
            c.booking_id,
            Some(&part(&["A9"], 0)),
        )
        .await
    });
    let pool = db.pool.clone();
    let req = want(&show, "dave", &["A9"], 0);
    let hold = tokio::spawn(async move {
        let mut c2 = pool.get().await.unwrap();
        holds::hold(&mut c2, &e2, &req).await
    });
    let cancelled = cancel.await.unwrap().unwrap();
    assert_eq!(cancelled.booking.seats, vec![label("A10")]);
    match hold.await.unwrap() {
        Ok(_) | Err(Error::SeatsUnavailable { .. }) => {}
        Err(e) => panic!("unexpected {e:?}"),
    }
    db.audit().await;
}

/// Adds, removes, exchanges, partial cancels and new holds at once on a small show:
/// every outcome is a result or a documented refusal, never a deadlock or a lock
/// timeout, and the tables audit clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_mix_of_changes_deadlocks() {
    let db = TestDb::with_pool(24).await;
    let engine = patient();
    let show = create(&db, gig(&[("A", 12), ("B", 12)], 20, None)).await;
    let mut books = Vec::new();
    let mut carts = Vec::new();
    for i in 0..6 {
        let b = booked(
            &db,
            &engine,
            &show,
            &format!("b{i}"),
            &[&format!("A{}", i + 1)],
            1,
        )
        .await;
        books.push(b.booking_id);
        let mut client = db.client().await;
        let h = holds::hold(
            &mut client,
            &engine,
            &want(&show, &format!("h{i}"), &[&format!("B{}", i + 1)], 1),
        )
        .await
        .unwrap();
        carts.push(h.hold_id);
    }
    let mut tasks = Vec::new();
    for n in 0..120 {
        let (pool, engine) = (db.pool.clone(), engine.clone());
        let (books, carts, show) = (books.clone(), carts.clone(), show.clone());
        tasks.push(tokio::spawn(async move {
            let (i, a, b) = {
                let mut rng = rand::thread_rng();
                (
                    rng.gen_range(0..6usize),
                    rng.gen_range(1..=12),
                    rng.gen_range(1..=12),
                )
            };
            let (sa, sb) = (format!("A{a}"), format!("B{b}"));
            let mut c = pool.get().await.unwrap();
            let r: Result<(), Error> = match n % 5 {
                0 => holds::add(
                    &mut c,
                    &engine,
                    &Actor::Admin,
                    carts[i],
                    &crate::cart::adding(&[&sa, &sb], 1),
                )
                .await
                .map(drop),
                1 => holds::remove(
                    &mut c,
                    &engine,
                    &Actor::Admin,
                    carts[i],
                    &seats(&[&sb]),
                    &[],
                )
                .await
                .map(drop),
                2 => bookings::exchange(
                    &mut c,
                    &engine,
                    &Actor::Admin,
                    books[i],
                    &swap(&[&format!("A{}", i + 1)], &[&sb, &sa]),
                )
                .await
                .map(drop),
                3 => bookings::cancel_part(
                    &mut c,
                    &engine,
                    &Actor::Admin,
                    books[i],
                    Some(&part(&[&sa], 0)),
                )
                .await
                .map(drop),
                _ => holds::hold(
                    &mut c,
                    &engine,
                    &want(&show, &format!("x{n}"), &[&sb, &sa], 1),
                )
                .await
                .map(drop),
            };
            match r {
                Ok(())
                | Err(Error::SeatsUnavailable { .. })
                | Err(Error::NotInHold { .. })
                | Err(Error::NotInBooking { .. })
                | Err(Error::HoldReleased)
                | Err(Error::BookingCancelled) => Ok(()),
                Err(Error::Invalid { reason, .. })
                    if reason.contains("both") || reason.contains("at most") =>
                {
                    Ok(())
                }
                Err(e) => Err(format!("task {n}: {e:?}")),
            }
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    db.audit().await;
}

/// A cancelled booking refuses, as a confirmed one does, seats it never had; seats it
/// had pass as done.
#[tokio::test]
async fn a_cancelled_booking_still_refuses_seats_it_never_had() {
    let db = TestDb::new().await;
    let engine = Engine::default();
    let show = create(&db, gig(&[("A", 4)], 2, None)).await;
    let mut client = db.client().await;
    let b = booked(&db, &engine, &show, "alice", &["A1", "A2"], 0).await;
    bookings::cancel(&mut client, &engine, &alice(), b.booking_id)
        .await
        .unwrap();
    let r = bookings::cancel_part(
        &mut client,
        &engine,
        &alice(),
        b.booking_id,
        Some(&part(&["A3"], 0)),
    )
    .await;
    assert!(matches!(r, Err(Error::NotInBooking { .. })), "{r:?}");
    let again = bookings::cancel_part(
        &mut client,
        &engine,
        &alice(),
        b.booking_id,
        Some(&part(&["A1"], 0)),
    )
    .await
    .unwrap();
    assert!(again.cancelled.is_empty());
    assert_eq!(again.booking.status, BookingStatus::Cancelled);
    db.audit().await;
}
