//! Confirm, release, extend, cancel: their answers, their idempotency, who may call them.

use crate::common::{request, user, TestDb};
use booking_core::Engine;
use booking_core::{bookings, holds, seats, shows, Actor, BookingStatus, Error, HoldStatus};
use booking_core::{HoldTtl, SeatLabel, SeatState, Settings, Version};
use std::time::Duration;

fn labels(ls: &[&str]) -> Vec<SeatLabel> {
    ls.iter().map(|l| SeatLabel::parse(l).unwrap()).collect()
}

#[tokio::test]
async fn confirming_twice_gives_the_same_booking() {
    let db = TestDb::new().await;
    let show = db.show(2, 6).await;
    let engine = db.engine();
    let mut client = db.client().await;
    let hold = holds::hold(
        &mut client,
        &engine,
        &request(&show, "alice", &["B2", "A1"]),
    )
    .await
    .unwrap();
    assert_eq!(hold.seats, labels(&["A1", "B2"]), "seat-map order");
    assert_eq!(hold.total, 2400);

    let first = bookings::confirm(&mut client, &engine, &user("alice"), hold.hold_id)
        .await
        .unwrap();
    let again = bookings::confirm(&mut client, &engine, &user("alice"), hold.hold_id)
        .await
        .unwrap();
    assert!(first.created);
    assert!(!again.created);
    assert_eq!(first.booking, again.booking);
    assert_eq!(first.booking.seats, labels(&["A1", "B2"]));
    assert_eq!(first.booking.total, 2400);
    assert_eq!(first.booking.status, BookingStatus::Confirmed);

    let read = holds::get_hold(&client, &user("alice"), hold.hold_id)
        .await
        .unwrap();
    assert_eq!(read.status, HoldStatus::Confirmed);
    assert_eq!(read.booking_id, Some(first.booking.booking_id));
    let count: i64 = client
        .query_one("SELECT count(*) FROM bookings", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 1);

    let map = seats::seat_map(&client, show.id).await.unwrap();
    let booked: Vec<&str> = map
        .seats
        .iter()
        .filter(|s| s.state == SeatState::Booked)
        .map(|s| s.label.as_str())
        .collect();
    assert_eq!(booked, ["A1", "B2"]);
    let listed = shows::get_show(&client, show.id).await.unwrap();
    assert_eq!((listed.booked, listed.held, listed.available), (2, 0, 10));
    db.audit().await;
}

#[tokio::test]
async fn released_holds_cannot_be_confirmed_and_release_is_idempotent() {
    let db = TestDb::new().await;
    let show = db.show(1, 4).await;
    let engine = db.engine();
    let mut client = db.client().await;
    let hold = holds::hold(
        &mut client,
        &engine,
        &request(&show, "alice", &["A1", "A2"]),
    )
    .await
    .unwrap();
    let released = holds::release(&mut client, &engine, &user("alice"), hold.hold_id)
        .await
        .unwrap();
    assert_eq!(released.status, HoldStatus::Released);
    let again = holds::release(&mut client, &engine, &user("alice"), hold.hold_id)
        .await
        .unwrap();
    assert_eq!(again.status, HoldStatus::Released);

    let confirm = bookings::confirm(&mut client, &engine, &user("alice"), hold.hold_id).await;
    assert!(matches!(confirm, Err(Error::HoldReleased)), "{confirm:?}");
    let extend = holds::extend(
        &mut client,
        &engine,
        &user("alice"),
        hold.hold_id,
        HoldTtl::from_secs(60).unwrap(),
    )
    .await;
    assert!(matches!(extend, Err(Error::HoldReleased)), "{extend:?}");

    // The seats are free again.
    holds::hold(&mut client, &engine, &request(&show, "bob", &["A1", "A2"]))
        .await
        .expect("released seats can be held again");
    db.audit().await;
}

#[tokio::test]
async fn another_users_hold_is_forbidden_and_unchanged() {
    let db = TestDb::new().await;
    let show = db.show(1, 4).await;
    let engine = db.engine();
    let mut client = db.client().await;
    let hold = holds::hold(&mut client, &engine, &request(&show, "alice", &["A1"]))
        .await
        .unwrap();
    let mallory = user("mallory");
    let ttl = HoldTtl::from_secs(60).unwrap();
    assert!(matches!(
        holds::get_hold(&client, &mallory, hold.hold_id).await,
        Err(Error::Forbidden)
    ));
    assert!(matches!(
        bookings::confirm(&mut client, &engine, &mallory, hold.hold_id).await,
        Err(Error::Forbidden)
    ));
    assert!(matches!(
        holds::extend(&mut client, &engine, &mallory, hold.hold_id, ttl).await,
        Err(Error::Forbidden)
    ));
    assert!(matches!(
        holds::release(&mut client, &engine, &mallory, hold.hold_id).await,
        Err(Error::Forbidden)
    ));
    let read = holds::get_hold(&client, &user("alice"), hold.hold_id)
        .await
        .unwrap();
    assert_eq!(read, hold, "nothing changed");

    let booking = bookings::confirm(&mut client, &engine, &user("alice"), hold.hold_id)
        .await
        .unwrap()
        .booking;
    let cancel = bookings::cancel(
        &mut client,
        &engine,
        &Actor::User(mallory.clone()),
        booking.booking_id,
    )
    .await;
    assert!(matches!(cancel, Err(Error::Forbidden)));
    assert!(matches!(
        bookings::get_booking(&client, &Actor::User(mallory), booking.booking_id).await,
        Err(Error::Forbidden)
    ));
    // An admin may cancel anyone's booking.
    let cancelled = bookings::cancel(&mut client, &engine, &Actor::Admin, booking.booking_id)
        .await
        .unwrap();
    assert_eq!(cancelled.status, BookingStatus::Cancelled);
    db.audit().await;
}

#[tokio::test]
async fn unknown_shows_seats_and_holds_are_named() {
    let db = TestDb::new().await;
    let show = db.show(1, 4).await;
    let engine = db.engine();
    let mut client = db.client().await;

    let err = holds::hold(
        &mut client,
        &engine,
        &request(&show, "alice", &["A1", "A9", "Z1"]),
    )
    .await;
    match err {
        Err(Error::SeatNotFound { seats }) => assert_eq!(seats, labels(&["A9", "Z1"])),
        other => panic!("{other:?}"),
    }
    let mut other_show = request(&show, "alice", &["A1"]);
    other_show.show = booking_core::ShowId::parse("999999").unwrap();
    assert!(matches!(
        holds::hold(&mut client, &engine, &other_show).await,
        Err(Error::ShowNotFound)
    ));
    assert!(matches!(
        seats::seat_map(&client, other_show.show).await,
        Err(Error::ShowNotFound)
    ));
    assert!(matches!(
        shows::get_show(&client, other_show.show).await,
        Err(Error::ShowNotFound)
    ));

    let ghost = booking_core::HoldId::generate(show.id);
    assert!(matches!(
        holds::get_hold(&client, &user("alice"), ghost).await,
        Err(Error::HoldNotFound)
    ));
    assert!(matches!(
        bookings::confirm(&mut client, &engine, &user("alice"), ghost).await,
        Err(Error::HoldNotFound)
    ));
    assert!(matches!(
        holds::release(&mut client, &engine, &user("alice"), ghost).await,
        Err(Error::HoldNotFound)
    ));
    let no_booking = booking_core::BookingId::generate(show.id);
    assert!(matches!(
        bookings::cancel(&mut client, &engine, &Actor::Admin, no_booking).await,
        Err(Error::BookingNotFound)
    ));
    let holds: i64 = client
        .query_one("SELECT count(*) FROM holds", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(holds, 0, "nothing was written");
}

#[tokio::test]
async fn a_confirm_rolled_back_with_the_callers_transaction_leaves_the_hold_active() {
    let db = TestDb::new().await;
    let show = db.show(1, 4).await;
    let engine = db.engine();
    let mut client = db.client().await;
    client
        .batch_execute("CREATE TABLE payments (hold text PRIMARY KEY)")
        .await
        .unwrap();
    let hold = holds::hold(
        &mut client,
        &engine,
        &request(&show, "alice", &["A1", "A2"]),
    )
    .await
    .unwrap();

    {
        let mut tx = client.transaction().await.unwrap();
        let confirmed = bookings::confirm(&mut tx, &engine, &user("alice"), hold.hold_id)
            .await
            .unwrap();
        assert!(confirmed.created);
        tx.execute(
            "INSERT INTO payments VALUES ($1)",
            &[&hold.hold_id.to_string()],
        )
        .await
        .unwrap();
        tx.rollback().await.unwrap();
    }
    let read = holds::get_hold(&client, &user("alice"), hold.hold_id)
        .await
        .unwrap();
    assert_eq!(read.status, HoldStatus::Active);
    assert_eq!(read.booking_id, None);
    let (bookings_n, payments): (i64, i64) = {
        let r = client
            .query_one(
                "SELECT (SELECT count(*) FROM bookings), (SELECT count(*) FROM payments)",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((bookings_n, payments), (0, 0));
    let map = seats::seat_map(&client, show.id).await.unwrap();
    assert_eq!(map.seats[0].state, SeatState::Held);
    assert_eq!(map.seats[1].state, SeatState::Held);

    // Committed together, both land.
    let mut tx = client.transaction().await.unwrap();
    bookings::confirm(&mut tx, &engine, &user("alice"), hold.hold_id)
        .await
        .unwrap();
    tx.execute(
        "INSERT INTO payments VALUES ($1)",
        &[&hold.hold_id.to_string()],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let read = holds::get_hold(&client, &user("alice"), hold.hold_id)
        .await
        .unwrap();
    assert_eq!(read.status, HoldStatus::Confirmed);
    db.audit().await;
}

#[tokio::test]
async fn a_stale_version_fails_naming_the_moved_seats_and_changes_nothing() {
    let db = TestDb::new().await;
    let show = db.show(1, 4).await;
    let engine = db.engine();
    let mut client = db.client().await;
    let before = seats::seat_map(&client, show.id).await.unwrap();
    let version = |l: &str| {
        before
            .seats
            .iter()
            .find(|s| s.label.as_str() == l)
            .unwrap()
            .version
            .clone()
    };

    // Move A2: hold and release it.
    let h = holds::hold(&mut client, &engine, &request(&show, "bob", &["A2"]))
        .await
        .unwrap();
    holds::release(&mut client, &engine, &user("bob"), h.hold_id)
        .await
        .unwrap();

    let mut req = request(&show, "alice", &["A1", "A2", "A3"]);
    req.if_versions = vec![
        (SeatLabel::parse("A1").unwrap(), version("A1")),
        (SeatLabel::parse("A2").unwrap(), version("A2")),
    ];
    match holds::hold(&mut client, &engine, &req).await {
        Err(Error::StaleVersion { seats }) => assert_eq!(seats, labels(&["A2"])),
        other => panic!("{other:?}"),
    }
    let after = seats::seat_map(&client, show.id).await.unwrap();
    assert!(after.seats.iter().all(|s| s.state == SeatState::Available));
    for l in ["A1", "A3", "A4"] {
        let now = after.seats.iter().find(|s| s.label.as_str() == l).unwrap();
        assert_eq!(now.version, version(l), "{l} untouched");
    }

    // With current versions it holds.
    req.if_versions = vec![(
        SeatLabel::parse("A2").unwrap(),
        after.seats[1].version.clone(),
    )];
    holds::hold(&mut client, &engine, &req).await.unwrap();
    // An unknown version string never matches.
    let mut req = request(&show, "carol", &["A4"]);
    req.if_versions = vec![(SeatLabel::parse("A4").unwrap(), Version::new("nope"))];
    assert!(matches!(
        holds::hold(&mut client, &engine, &req).await,
        Err(Error::StaleVersion { .. })
    ));
    db.audit().await;
}

#[tokio::test]
async fn cancelling_frees_the_seats_and_repeats_the_same_answer() {
    let db = TestDb::new().await;
    let show = db.show(1, 4).await;
    let engine = db.engine();
    let mut client = db.client().await;
    let hold = holds::hold(
        &mut client,
        &engine,
        &request(&show, "alice", &["A1", "A2"]),
    )
    .await
    .unwrap();
    let booking = bookings::confirm(&mut client, &engine, &user("alice"), hold.hold_id)
        .await
        .unwrap()
        .booking;
    let taken = holds::hold(&mut client, &engine, &request(&show, "bob", &["A2", "A3"])).await;
    match taken {
        Err(Error::SeatsUnavailable { seats, .. }) => assert_eq!(seats, labels(&["A2"])),
        other => panic!("{other:?}"),
    }

    let alice = Actor::User(user("alice"));
    let cancelled = bookings::cancel(&mut client, &engine, &alice, booking.booking_id)
        .await
        .unwrap();
    assert_eq!(cancelled.status, BookingStatus::Cancelled);
    assert!(cancelled.cancelled_at.is_some());
    assert_eq!(cancelled.seats, booking.seats);
    let again = bookings::cancel(&mut client, &engine, &alice, booking.booking_id)
        .await
        .unwrap();
    assert_eq!(again, cancelled);

    let map = seats::seat_map(&client, show.id).await.unwrap();
    assert!(map.seats.iter().all(|s| s.state == SeatState::Available));
    holds::hold(
        &mut client,
        &engine,
        &request(&show, "bob", &["A1", "A2", "A3"]),
    )
    .await
    .expect("cancelled seats can be held again");
    // A confirmed hold cannot be released.
    let r = holds::release(&mut client, &engine, &user("alice"), hold.hold_id).await;
    assert!(matches!(r, Err(Error::HoldConfirmed)), "{r:?}");
    let list = bookings::list_for_user(&client, &user("alice"))
        .await
        .unwrap();
    assert_eq!(list, vec![cancelled]);
    db.audit().await;
}

#[tokio::test]
async fn extending_moves_the_deadline_up_to_the_limit() {
    let db = TestDb::new().await;
    let show = db.show(1, 4).await;
    let engine = Engine::new(Settings {
        max_hold: Duration::from_secs(900),
        ..db.settings()
    });
    let mut client = db.client().await;
    let mut req = request(&show, "alice", &["A1"]);
    req.ttl = Some(HoldTtl::from_secs(60).unwrap());
    let hold = holds::hold(&mut client, &engine, &req).await.unwrap();
    let alice = user("alice");

    let extended = holds::extend(
        &mut client,
        &engine,
        &alice,
        hold.hold_id,
        HoldTtl::from_secs(600).unwrap(),
    )
    .await
    .unwrap();
    let gained = extended.expires_at - hold.expires_at;
    assert!(
        gained >= chrono::Duration::seconds(539),
        "moved by {gained}"
    );
    assert_eq!(extended.status, HoldStatus::Active);

    let over = holds::extend(
        &mut client,
        &engine,
        &alice,
        hold.hold_id,
        HoldTtl::from_secs(1000).unwrap(),
    )
    .await;
    assert!(
        matches!(over, Err(Error::HoldLimitReached { max_seconds: 900 })),
        "{over:?}"
    );
    let read = holds::get_hold(&client, &alice, hold.hold_id)
        .await
        .unwrap();
    assert_eq!(
        read.expires_at, extended.expires_at,
        "a refused extend changes nothing"
    );

    bookings::confirm(&mut client, &engine, &alice, hold.hold_id)
        .await
        .unwrap();
    let done = holds::extend(
        &mut client,
        &engine,
        &alice,
        hold.hold_id,
        HoldTtl::from_secs(60).unwrap(),
    )
    .await;
    assert!(matches!(done, Err(Error::HoldConfirmed)), "{done:?}");
    db.audit().await;
}

#[tokio::test]
async fn shows_list_with_their_counts() {
    let db = TestDb::new().await;
    let a = db.show(2, 5).await;
    let b = db.show(1, 3).await;
    let engine = db.engine();
    let mut client = db.client().await;
    holds::hold(&mut client, &engine, &request(&b, "alice", &["A1", "A2"]))
        .await
        .unwrap();
    let list = shows::list_shows(&client).await.unwrap();
    assert_eq!(list.len(), 2);
    let got_a = list.iter().find(|s| s.id == a.id).unwrap();
    let got_b = list.iter().find(|s| s.id == b.id).unwrap();
    assert_eq!((got_a.seats_total, got_a.available), (10, 10));
    assert_eq!((got_b.seats_total, got_b.held, got_b.available), (3, 2, 1));
}
