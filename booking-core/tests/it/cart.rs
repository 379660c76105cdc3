//! A hold as a cart (`holds::add`, `holds::remove`): seats and places added and removed
//! all-or-none, the same id and deadline, limits kept; adds racing other holds of the
//! same seats give each seat to one hold at most.

use crate::areas::{code, create, gig, ticket, want};
use crate::common::{patient_on, user, TestDb};
use booking_core::feed::Cause;
use booking_core::{bookings, holds, Actor, AreaWant, Engine, Error, HoldAddition, HoldStatus};
use booking_core::{SeatLabel, SeatSelection};

fn label(s: &str) -> SeatLabel {
    SeatLabel::parse(s).unwrap()
}

fn seats(labels: &[&str]) -> SeatSelection {
    SeatSelection::parse_or_none(labels, 100).unwrap()
}

fn floor(n: i64) -> Vec<AreaWant> {
    vec![AreaWant::new(code("FLOOR"), n).unwrap()]
}

pub(crate) fn adding(labels: &[&str], places: i64) -> HoldAddition {
    HoldAddition {
        seats: seats(labels),
        areas: if places > 0 { floor(places) } else { vec![] },
        ticket_types: vec![],
    }
}

fn alice() -> Actor {
    Actor::User(user("alice"))
}

#[tokio::test]
async fn seats_and_places_come_and_go_with_the_same_id_and_deadline() {
    let db = TestDb::new().await;
    let engine = db.engine();
    let show = create(&db, gig(&[("A", 6)], 10, None)).await;
    let mut client = db.client().await;
    let first = holds::hold(
        &mut client,
        &engine,
        &want(&show, "alice", &["A1", "A2"], 0),
    )
    .await
    .unwrap();

    let mut more = adding(&["A3"], 2);
    more.areas[0].ticket_types = vec![ticket("child"), ticket("adult")];
    let added = holds::add(&mut client, &engine, &alice(), first.hold_id, &more)
        .await
        .unwrap();
    assert_eq!(added.hold_id, first.hold_id);
    assert_eq!(added.expires_at, first.expires_at);
    assert_eq!(added.seats, vec![label("A1"), label("A2"), label("A3")]);
    assert_eq!(added.areas.get(&code("FLOOR")), Some(&2));
    assert_eq!(added.total, 3 * 5000 + 1500 + 3000);
    let event = added.event.clone().expect("an add event");
    assert_eq!(event.cause, Cause::Add);
    assert_eq!(
        event.seats.len(),
        1,
        "only the seat that changed: {event:?}"
    );
    assert_eq!(event.seats[0].label, label("A3"));
    assert_eq!((event.areas[0].available, event.areas[0].held), (-2, 2));
    assert_eq!(
        holds::get_hold(&client, &user("alice"), first.hold_id)
            .await
            .unwrap(),
        added
    );

    // A repeat names seats the hold has: nothing is added twice, no event.
    let again = holds::add(
        &mut client,
        &engine,
        &alice(),
        first.hold_id,
        &adding(&["A3"], 0),
    )
    .await
    .unwrap();
    assert_eq!(again, added);
    assert!(again.event.is_none());

    // Remove a seat and the highest-numbered place.
    let smaller = holds::remove(
        &mut client,
        &engine,
        &alice(),
        first.hold_id,
        &seats(&["A1"]),
        &floor(1),
    )
    .await
    .unwrap();
    assert_eq!(smaller.seats, vec![label("A2"), label("A3")]);
    assert_eq!(smaller.areas.get(&code("FLOOR")), Some(&1));
    let kept = smaller.tickets.iter().find(|t| t.area.is_some()).unwrap();
    assert_eq!(kept.ticket_type, ticket("child"), "the first place stays");
    assert_eq!(smaller.total, 2 * 5000 + 1500);
    assert_eq!(smaller.expires_at, first.expires_at);
    let event = smaller.event.clone().unwrap();
    assert_eq!(event.cause, Cause::Remove);
    assert_eq!(event.seats.len(), 1);
    assert_eq!((event.areas[0].available, event.areas[0].held), (1, -1));

    // Seats it does not have: refused, naming them, nothing changed.
    let r = holds::remove(
        &mut client,
        &engine,
        &alice(),
        first.hold_id,
        &seats(&["A1", "A2"]),
        &floor(2),
    )
    .await;
    match r {
        Err(Error::NotInHold { seats, areas }) => {
            assert_eq!(seats, vec![label("A1")]);
            assert_eq!(areas, vec![code("FLOOR")]);
        }
        other => panic!("expected not_in_hold, got {other:?}"),
    }

    // Removing everything releases it.
    let gone = holds::remove(
        &mut client,
        &engine,
        &alice(),
        first.hold_id,
        &seats(&["A2", "A3"]),
        &floor(1),
    )
    .await
    .unwrap();
    assert_eq!(gone.status, HoldStatus::Released);
    assert_eq!(gone.event.unwrap().cause, Cause::Release);
    db.audit().await;
}

#[tokio::test]
async fn an_add_is_all_or_none_and_keeps_every_limit() {
    let db = TestDb::new().await;
    let engine = db.engine();
    let show = create(&db, gig(&[("A", 6)], 2, Some(4))).await;
    let mut client = db.client().await;
    let mine = holds::hold(&mut client, &engine, &want(&show, "alice", &["A1"], 0))
        .await
        .unwrap();
    let bobs = holds::hold(&mut client, &engine, &want(&show, "bob", &["A3"], 0))
        .await
        .unwrap();

    // A3 is bob's: neither A3 nor A4 is added, nor the place.
    let r = holds::add(
        &mut client,
        &engine,
        &alice(),
        mine.hold_id,
        &adding(&["A3", "A4"], 1),
    )
    .await;
    match r {
        Err(Error::SeatsUnavailable { seats, .. }) => assert_eq!(seats, vec![label("A3")]),
        other => panic!("expected seats_unavailable, got {other:?}"),
    }
    // More places than are left.
    let r = holds::add(
        &mut client,
        &engine,
        &alice(),
        mine.hold_id,
        &adding(&[], 3),
    )
    .await;
    assert!(
        matches!(&r, Err(Error::SeatsUnavailable { areas, .. }) if areas == &vec![code("FLOOR")]),
        "{r:?}"
    );
    let read = holds::get_hold(&client, &user("alice"), mine.hold_id)
        .await
        .unwrap();
    assert_eq!(
        read,
        {
            let mut m = mine.clone();
            m.event = None;
            m
        },
        "unchanged"
    );

    // The buyer's limit (4) counts what the hold has.
    let r = holds::add(
        &mut client,
        &engine,
        &alice(),
        mine.hold_id,
        &adding(&["A4", "A5"], 2),
    )
    .await;
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
    // Another user may not; an admin may.
    let r = holds::add(
        &mut client,
        &engine,
        &Actor::User(user("bob")),
        mine.hold_id,
        &adding(&["A4"], 0),
    )
    .await;
    assert!(matches!(r, Err(Error::Forbidden)), "{r:?}");
    let by_admin = holds::add(
        &mut client,
        &engine,
        &Actor::Admin,
        mine.hold_id,
        &adding(&["A4"], 0),
    )
    .await
    .unwrap();
    assert_eq!(by_admin.seats, vec![label("A1"), label("A4")]);
    // A ticket type for a seat not being added.
    let mut odd = adding(&["A5"], 0);
    odd.ticket_types = vec![(label("A6"), ticket("adult"))];
    let r = holds::add(&mut client, &engine, &alice(), mine.hold_id, &odd).await;
    assert!(
        matches!(r, Err(Error::Invalid { ref field, .. }) if field == "ticket_types"),
        "{r:?}"
    );

    // Only an active hold.
    bookings::confirm(&mut client, &engine, &user("bob"), bobs.hold_id)
        .await
        .unwrap();
    let bob = Actor::User(user("bob"));
    let r = holds::add(
        &mut client,
        &engine,
        &bob,
        bobs.hold_id,
        &adding(&["A6"], 0),
    )
    .await;
    assert!(matches!(r, Err(Error::HoldConfirmed)), "{r:?}");
    db.lapse(mine.hold_id).await;
    let r = holds::add(
        &mut client,
        &engine,
        &alice(),
        mine.hold_id,
        &adding(&["A6"], 0),
    )
    .await;
    assert!(matches!(r, Err(Error::HoldExpired)), "{r:?}");
    let r = holds::remove(
        &mut client,
        &engine,
        &alice(),
        mine.hold_id,
        &seats(&["A1"]),
        &[],
    )
    .await;
    assert!(matches!(r, Err(Error::HoldExpired)), "{r:?}");
    let third = holds::hold(&mut client, &engine, &want(&show, "carol", &["A6"], 0))
        .await
        .unwrap();
    holds::release(&mut client, &engine, &user("carol"), third.hold_id)
        .await
        .unwrap();
    let carol = Actor::User(user("carol"));
    let r = holds::add(
        &mut client,
        &engine,
        &carol,
        third.hold_id,
        &adding(&["A5"], 0),
    )
    .await;
    assert!(matches!(r, Err(Error::HoldReleased)), "{r:?}");
    db.audit().await;
}

#[tokio::test]
async fn an_add_stays_within_the_seats_of_one_hold() {
    let db = TestDb::new().await;
    let engine = Engine::new(booking_core::Settings {
        max_seats_per_hold: 3,
        ..db.settings()
    });
    let show = create(&db, gig(&[("A", 6)], 5, None)).await;
    let mut client = db.client().await;
    let mine = holds::hold(
        &mut client,
        &engine,
        &want(&show, "alice", &["A1", "A2"], 0),
    )
    .await
    .unwrap();
    let r = holds::add(
        &mut client,
        &engine,
        &alice(),
        mine.hold_id,
        &adding(&["A3"], 1),
    )
    .await;
    assert!(matches!(r, Err(Error::Invalid { .. })), "{r:?}");
    holds::add(
        &mut client,
        &engine,
        &alice(),
        mine.hold_id,
        &adding(&[], 1),
    )
    .await
    .unwrap();
    db.audit().await;
}

/// Users with a hold each add overlapping pairs of seats while others make new holds of
/// the same seats: every seat ends in at most one hold, every add is all or none, and
/// nothing deadlocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn adds_racing_holds_of_the_same_seats_give_each_seat_once() {
    let db = TestDb::with_pool(24).await;
    let engine = patient_on(&db);
    let show = create(&db, gig(&[("A", 12), ("B", 16)], 20, None)).await;
    let mut client = db.client().await;
    let mut carts = Vec::new();
    for i in 0..16 {
        let b = format!("B{}", i + 1);
        let h = holds::hold(
            &mut client,
            &engine,
            &want(&show, &format!("cart{i}"), &[b.as_str()], 0),
        )
        .await
        .unwrap();
        carts.push(h);
    }
    let mut tasks = Vec::new();
    for (i, cart) in carts.iter().enumerate() {
        let (pool, engine, id) = (db.pool.clone(), engine.clone(), cart.hold_id);
        let pair = [format!("A{}", i % 11 + 1), format!("A{}", i % 11 + 2)];
        tasks.push(tokio::spawn(async move {
            let mut c = pool.get().await.unwrap();
            let add = HoldAddition {
                seats: SeatSelection::parse(&pair, 10).unwrap(),
                areas: match i % 4 {
                    0 | 1 => vec![AreaWant::new(code("FLOOR"), 2).unwrap()],
                    _ => vec![],
                },
                ticket_types: vec![],
            };
            let actor = Actor::User(user(&format!("cart{i}")));
            // Half take the one-statement path, half the transaction: they must agree.
            let r = if i % 2 == 0 {
                holds::add_pooled(&mut c, &engine, &actor, id, &add).await
            } else {
                holds::add(&mut c, &engine, &actor, id, &add).await
            };
            (i, r)
        }));
    }
    let mut rivals = Vec::new();
    for i in 0..16 {
        let (pool, engine) = (db.pool.clone(), engine.clone());
        let seat = format!("A{}", (i * 5) % 12 + 1);
        let req = want(&show, &format!("rival{i}"), &[seat.as_str()], 1);
        rivals.push(tokio::spawn(async move {
            let mut c = pool.get().await.unwrap();
            holds::hold(&mut c, &engine, &req).await
        }));
    }
    let mut refused = Vec::new();
    for t in tasks {
        let (i, r) = t.await.unwrap();
        let read = holds::get_hold(&client, &user(&format!("cart{i}")), carts[i].hold_id)
            .await
            .unwrap();
        match r {
            Ok(h) => {
                assert_eq!(h.seats.len(), 3, "{h:?}");
                let places = if i % 4 < 2 { Some(&2) } else { None };
                assert_eq!(h.areas.get(&code("FLOOR")), places);
                assert_eq!(read, h, "as read back");
            }
            Err(Error::SeatsUnavailable { .. }) => {
                assert_eq!(
                    read.seats.len(),
                    1,
                    "a refused add changed the hold: {read:?}"
                );
                assert!(read.areas.is_empty());
                refused.push(i);
            }
            Err(e) => panic!("cart {i}: unexpected {e:?}"),
        }
    }
    for t in rivals {
        match t.await.unwrap() {
            Ok(_) | Err(Error::SeatsUnavailable { .. }) => {}
            Err(e) => panic!("rival: unexpected {e:?}"),
        }
    }
    // Whether any add wins depends on who runs first (the rivals alone can take every A
    // seat), so instead: nothing is released here, so a refused add must still find one
    // of its pair in another hold. The floor (20 places, at most 16 wanted) never refuses.
    for i in refused {
        let pair = [format!("A{}", i % 11 + 1), format!("A{}", i % 11 + 2)];
        let taken: i64 = client
            .query_one(
                "SELECT count(*) FROM seats \
                 WHERE show_id = $1 AND label = ANY($2) AND hold_id IS NOT NULL \
                   AND hold_id <> $3",
                &[&show.id.get(), &pair.to_vec(), &carts[i].hold_id.key()],
            )
            .await
            .unwrap()
            .get(0);
        assert!(
            taken > 0,
            "cart {i} was refused {pair:?} that nobody else holds"
        );
    }
    db.audit().await;
}

/// Inside the caller's transaction an add is a savepoint: rolled back with it, it leaves
/// the hold as it was and writes no event.
#[tokio::test]
async fn an_add_inside_the_callers_transaction_rolls_back_with_it() {
    let db = TestDb::new().await;
    let engine = db.engine();
    let show = create(&db, gig(&[("A", 4)], 2, None)).await;
    let mut client = db.client().await;
    let mine = holds::hold(&mut client, &engine, &want(&show, "alice", &["A1"], 0))
        .await
        .unwrap();
    let events = db.count("SELECT count(*) FROM seat_events").await;
    {
        let mut tx = client.transaction().await.unwrap();
        let added = holds::add(
            &mut tx,
            &engine,
            &alice(),
            mine.hold_id,
            &adding(&["A2"], 1),
        )
        .await
        .unwrap();
        assert_eq!(added.seats.len(), 2);
        tx.rollback().await.unwrap();
    }
    let read = holds::get_hold(&client, &user("alice"), mine.hold_id)
        .await
        .unwrap();
    assert_eq!(read.seats, vec![label("A1")]);
    assert!(read.areas.is_empty());
    assert_eq!(db.count("SELECT count(*) FROM seat_events").await, events);
    db.audit().await;
}

/// The one-statement add decides as the transaction does: it writes only the plain
/// case, and hands every other to `holds::add`.
#[tokio::test]
async fn the_one_statement_add_decides_as_the_transaction() {
    let db = TestDb::new().await;
    let engine = db.engine();
    let show = create(&db, gig(&[("A", 8)], 2, None)).await;
    let mut client = db.pool.get().await.unwrap();
    let mine = holds::hold(&mut client, &engine, &want(&show, "alice", &["A1"], 0))
        .await
        .unwrap();
    let mut typed = adding(&["A2"], 0);
    typed.ticket_types = vec![(label("A2"), ticket("adult"))];
    let added = holds::add_pooled(&mut client, &engine, &alice(), mine.hold_id, &typed)
        .await
        .unwrap();
    assert_eq!(added.seats, vec![label("A1"), label("A2")]);
    assert_eq!((added.expires_at, added.total), (mine.expires_at, 10000));
    let event = added.event.clone().unwrap();
    assert_eq!((event.cause, event.seats.len()), (Cause::Add, 1));
    assert_eq!(event.seats[0].held_until, Some(mine.expires_at));
    // Already in the hold: passed over (by the transaction).
    let again = holds::add_pooled(
        &mut client,
        &engine,
        &alice(),
        mine.hold_id,
        &adding(&["A2"], 0),
    )
    .await
    .unwrap();
    assert!(again.event.is_none());
    assert_eq!(again.seats.len(), 2);
    // A seat of a lapsed hold is taken over; a live one's is refused.
    let old = holds::hold(&mut client, &engine, &want(&show, "bob", &["A3"], 0))
        .await
        .unwrap();
    db.lapse(old.hold_id).await;
    holds::hold(&mut client, &engine, &want(&show, "carol", &["A4"], 0))
        .await
        .unwrap();
    let over = holds::add_pooled(
        &mut client,
        &engine,
        &alice(),
        mine.hold_id,
        &adding(&["A3"], 0),
    )
    .await
    .unwrap();
    assert_eq!(over.seats.len(), 3);
    let r = holds::add_pooled(
        &mut client,
        &engine,
        &alice(),
        mine.hold_id,
        &adding(&["A4", "A5"], 0),
    )
    .await;
    assert!(
        matches!(&r, Err(Error::SeatsUnavailable { seats, .. }) if seats == &vec![label("A4")]),
        "{r:?}"
    );
    let r = holds::add_pooled(
        &mut client,
        &engine,
        &alice(),
        mine.hold_id,
        &adding(&["Z9"], 0),
    )
    .await;
    assert!(matches!(r, Err(Error::SeatNotFound { .. })), "{r:?}");
    let r = holds::add_pooled(
        &mut client,
        &engine,
        &Actor::User(user("bob")),
        mine.hold_id,
        &adding(&["A5"], 0),
    )
    .await;
    assert!(matches!(r, Err(Error::Forbidden)), "{r:?}");
    let admin = holds::add_pooled(
        &mut client,
        &engine,
        &Actor::Admin,
        mine.hold_id,
        &adding(&["A5"], 0),
    )
    .await
    .unwrap();
    assert_eq!(admin.seats.len(), 4);
    db.lapse(mine.hold_id).await;
    let r = holds::add_pooled(
        &mut client,
        &engine,
        &alice(),
        mine.hold_id,
        &adding(&["A6"], 0),
    )
    .await;
    assert!(matches!(r, Err(Error::HoldExpired)), "{r:?}");
    db.audit().await;
}

/// Every prefix of the feed of `show`, its area deltas added up from `capacity` free
/// places: what a follower shows on the way. Panics when a count goes below zero.
async fn feed_counts_stay_whole(db: &TestDb, show: &booking_core::Show, capacity: i64) {
    let client = db.client().await;
    let events = booking_core::feed::read(
        &client,
        Some(show.id),
        booking_core::Position::START,
        None,
        10_000,
    )
    .await
    .unwrap();
    let (mut available, mut held, mut booked) = (capacity, 0, 0);
    for e in &events {
        for a in &e.areas {
            available += a.available;
            held += a.held;
            booked += a.booked;
        }
        assert!(
            available >= 0 && held >= 0 && booked >= 0,
            "after the {:?} event at {:?}: available {available}, held {held}, booked {booked}",
            e.cause,
            e.position
        );
    }
}

/// A place freed by a transaction younger than an add's is not taken by it: the add's
/// event would come first in the feed although it commits later, so a follower (and a
/// server rendering its own write first) would count the place taken twice on the way:
/// available below zero. The same rule as for seats; a retry takes it.
#[tokio::test]
async fn an_add_never_takes_a_place_freed_by_a_younger_transaction() {
    let db = TestDb::new().await;
    let engine = db.engine();
    let show = create(&db, gig(&[("A", 4)], 1, None)).await;
    let mut client = db.client().await;
    let bobs = holds::hold(&mut client, &engine, &want(&show, "bob", &[], 1))
        .await
        .unwrap();
    let booked = bookings::confirm(&mut client, &engine, &user("bob"), bobs.hold_id)
        .await
        .unwrap();
    let mine = holds::hold(&mut client, &engine, &want(&show, "alice", &["A1"], 0))
        .await
        .unwrap();

    let mut first = db.client().await;
    let mut tx = first.transaction().await.unwrap();
    // Our transaction id comes before the cancel's: on the show's node, where the
    // add compares it (on a Citus formation `pg_current_xact_id()` here would be the
    // coordinator's, unrelated to the worker's ids; `booking_xid` is the show node's).
    tx.query_one(
        "SELECT booking_xid(id)::text FROM shows WHERE id = $1",
        &[&show.id.get()],
    )
    .await
    .unwrap();
    bookings::cancel(
        &mut client,
        &engine,
        &Actor::User(user("bob")),
        booked.booking.booking_id,
    )
    .await
    .unwrap();
    let r = holds::add(&mut tx, &engine, &alice(), mine.hold_id, &adding(&[], 1)).await;
    assert!(
        matches!(&r, Err(Error::SeatsUnavailable { areas, .. }) if areas == &vec![code("FLOOR")]),
        "{r:?}"
    );
    tx.commit().await.unwrap();
    let again = holds::add(
        &mut client,
        &engine,
        &alice(),
        mine.hold_id,
        &adding(&[], 1),
    )
    .await
    .unwrap();
    assert_eq!(again.areas.get(&code("FLOOR")), Some(&1));
    feed_counts_stay_whole(&db, &show, 1).await;
    db.audit().await;
}
