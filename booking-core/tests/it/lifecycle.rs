//! The show lifecycle: the sales window refused by every path that takes seats, the
//! show's changes (`shows::update`), and its cancellation (`shows::cancel`): everything
//! released and cancelled with one event, nothing taken after it, even by requests
//! racing it.

use crate::areas::{code, create, gig, want};
use crate::common::{patient, patient_on, user, TestDb};
use booking_core::holds::batch;
use booking_core::{
    best, bookings, holds, shows, Actor, AreaWant, BestRequest, Error, Exchange, HoldAddition,
    SalesWindow, SeatCount, SeatSelection, Show, ShowChanges, ShowStatus,
};
use chrono::{Duration, Utc};

fn adding(seats: &[&str]) -> HoldAddition {
    HoldAddition {
        seats: SeatSelection::parse_or_none(seats, 10).unwrap(),
        areas: vec![],
        ticket_types: vec![],
    }
}

fn window(
    start: Option<i64>,
    end: Option<i64>,
) -> (Option<chrono::DateTime<Utc>>, Option<chrono::DateTime<Utc>>) {
    let at = |m: i64| Utc::now() + Duration::minutes(m);
    (start.map(at), end.map(at))
}

async fn set_window(db: &TestDb, show: &Show, start: Option<i64>, end: Option<i64>) -> Show {
    let (s, e) = window(start, end);
    shows::update(
        &mut db.client().await,
        show.id,
        &ShowChanges {
            sales_start: Some(s),
            sales_end: Some(e),
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

fn is_not_on_sale(r: &Result<impl std::fmt::Debug, Error>) -> bool {
    matches!(r, Err(Error::NotOnSale { .. }))
}

/// Tries every path that takes seats or places on `show` (rows A and B of 4, FLOOR),
/// with `hold` a live hold of `fan0` (seat B1) and `booked` a booking of `fan1` (B2),
/// and returns their answers, named.
async fn every_path(
    db: &TestDb,
    show: &Show,
    hold: &booking_core::Hold,
    booking: &booking_core::Booking,
) -> Vec<(&'static str, Result<(), Error>)> {
    let engine = patient_on(db);
    let mut c = db.client().await;
    let mut out: Vec<(&'static str, Result<(), Error>)> = Vec::new();
    let ok = |r: Result<booking_core::Hold, Error>| r.map(|_| ());
    out.push((
        "hold",
        ok(holds::hold(&mut c, &engine, &want(show, "u1", &["A1"], 0)).await),
    ));
    out.push((
        "hold places",
        ok(holds::hold(&mut c, &engine, &want(show, "u1", &[], 2)).await),
    ));
    out.push((
        "hold_pooled",
        ok(holds::hold_pooled(&mut c, &engine, &want(show, "u1", &["A2"], 0)).await),
    ));
    out.push((
        "hold_pooled places",
        ok(holds::hold_pooled(&mut c, &engine, &want(show, "u1", &[], 1)).await),
    ));
    let batched = batch::hold_all(
        &db.pool,
        &engine,
        vec![want(show, "u2", &["A3"], 0), want(show, "u3", &[], 1)],
    )
    .await;
    for (name, r) in ["batch", "batch places"].into_iter().zip(batched) {
        out.push((name, ok(r)));
    }
    let actor = Actor::User(hold.user_id.clone());
    out.push((
        "add",
        ok(holds::add(&mut c, &engine, &actor, hold.hold_id, &adding(&["A4"])).await),
    ));
    out.push((
        "add_pooled",
        ok(holds::add_pooled(&mut c, &engine, &actor, hold.hold_id, &adding(&["A4"])).await),
    ));
    let mut places = adding(&[]);
    places.seats = SeatSelection::none();
    places.areas = vec![AreaWant::new(code("FLOOR"), 1).unwrap()];
    out.push((
        "add places",
        ok(holds::add(&mut c, &engine, &actor, hold.hold_id, &places).await),
    ));
    let added = batch::add_all(
        &db.pool,
        &engine,
        vec![(actor.clone(), hold.hold_id, adding(&["A4"]))],
    )
    .await;
    out.push(("add batch", ok(added.into_iter().next().unwrap())));
    let best = BestRequest::new(show.id, user("u4"), SeatCount::parse(2, 10).unwrap());
    out.push((
        "best",
        best::hold_best(&mut c, &engine, &best).await.map(|_| ()),
    ));
    let ex = Exchange {
        release: SeatSelection::parse(["B2"], 10).unwrap(),
        take: SeatSelection::parse(["B3"], 10).unwrap(),
        ticket_types: vec![],
    };
    out.push((
        "exchange",
        bookings::exchange(
            &mut c,
            &engine,
            &Actor::User(user("fan1")),
            booking.booking_id,
            &ex,
        )
        .await
        .map(|_| ()),
    ));
    out
}

/// A gig of rows A and B (4 seats) and FLOOR (10), a hold of B1 by fan0 and a booking
/// of B2 by fan1, made while it was on sale.
async fn sold_gig(db: &TestDb) -> (Show, booking_core::Hold, booking_core::Booking) {
    let engine = patient();
    let show = create(db, gig(&[("A", 4), ("B", 4)], 10, None)).await;
    let mut c = db.client().await;
    let hold = holds::hold(&mut c, &engine, &want(&show, "fan0", &["B1"], 0))
        .await
        .unwrap();
    let paid = holds::hold(&mut c, &engine, &want(&show, "fan1", &["B2"], 1))
        .await
        .unwrap();
    let booking = bookings::confirm(&mut c, &engine, &user("fan1"), paid.hold_id)
        .await
        .unwrap()
        .booking;
    (show, hold, booking)
}

#[tokio::test]
async fn every_path_refuses_outside_the_window_and_takes_inside_it() {
    let db = TestDb::new().await;
    let (show, hold, booking) = sold_gig(&db).await;
    let before = db.count("SELECT count(*) FROM seat_events").await;
    for (start, end) in [(Some(10), None), (None, Some(-1)), (Some(-20), Some(-10))] {
        let closed = set_window(&db, &show, start, end).await;
        assert_eq!(closed.status, ShowStatus::NotOnSale);
        for (name, r) in every_path(&db, &show, &hold, &booking).await {
            assert!(
                is_not_on_sale(&r),
                "{name} outside {start:?}..{end:?}: {r:?}"
            );
        }
    }
    assert_eq!(
        db.count("SELECT count(*) FROM seat_events").await,
        before,
        "a refused path wrote an event"
    );
    // The window's body says when.
    let (s, e) = window(Some(10), Some(20));
    shows::update(
        &mut db.client().await,
        show.id,
        &ShowChanges {
            sales_start: Some(s),
            sales_end: Some(e),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    match holds::hold(
        &mut db.client().await,
        &patient(),
        &want(&show, "u9", &["A1"], 0),
    )
    .await
    {
        Err(Error::NotOnSale {
            sales_start,
            sales_end,
        }) => {
            // Stored in microseconds.
            assert_eq!(
                sales_start.map(|t| t.timestamp_micros()),
                s.map(|t| t.timestamp_micros())
            );
            assert_eq!(
                sales_end.map(|t| t.timestamp_micros()),
                e.map(|t| t.timestamp_micros())
            );
        }
        other => panic!("{other:?}"),
    }
    // Open again: every path takes (each answer its own success or a seat refusal).
    let open = set_window(&db, &show, Some(-10), Some(10)).await;
    assert_eq!(open.status, ShowStatus::OnSale);
    for (name, r) in every_path(&db, &show, &hold, &booking).await {
        assert!(
            matches!(r, Ok(()) | Err(Error::SeatsUnavailable { .. })),
            "{name} inside the window: {r:?}"
        );
        if name == "hold" || name == "best" || name == "hold places" {
            assert!(r.is_ok(), "{name}: {r:?}");
        }
    }
    db.audit().await;
}

#[tokio::test]
async fn a_live_hold_may_be_paid_after_sales_end_but_not_late() {
    let db = TestDb::new().await;
    let engine = patient();
    let show = db.show(2, 4).await;
    let mut c = db.client().await;
    let live = holds::hold(
        &mut c,
        &engine,
        &crate::common::request(&show, "a", &["A1"]),
    )
    .await
    .unwrap();
    let lapsed = holds::hold(
        &mut c,
        &engine,
        &crate::common::request(&show, "b", &["A2"]),
    )
    .await
    .unwrap();
    db.lapse(lapsed.hold_id).await;
    set_window(&db, &show, None, Some(-1)).await;
    bookings::confirm(&mut c, &engine, &user("a"), live.hold_id)
        .await
        .expect("a hold made in the window is paid until it expires");
    let late = bookings::confirm_late(&mut c, &engine, &user("b"), lapsed.hold_id).await;
    assert!(is_not_on_sale(&late), "{late:?}");
    db.audit().await;
}

#[tokio::test]
async fn a_show_is_created_with_a_window_and_changes_are_checked() {
    let db = TestDb::new().await;
    let (s, e) = window(Some(5), Some(60));
    let new = gig(&[("A", 2)], 2, None).with_sales_window(SalesWindow::new(s, e).unwrap());
    let show = create(&db, new).await;
    assert_eq!(show.status, ShowStatus::NotOnSale);
    assert_eq!(show.sales_start, s);
    assert!(SalesWindow::new(e, s).is_err());
    let mut c = db.client().await;
    let bad = |changes: ShowChanges| {
        let id = show.id;
        let pool = db.pool.clone();
        async move { shows::update(&mut pool.get().await.unwrap(), id, &changes).await }
    };
    let r = bad(ShowChanges {
        sales_end: Some(window(Some(1), None).0),
        ..Default::default()
    })
    .await;
    assert!(
        matches!(&r, Err(Error::Invalid { field, .. }) if field == "sales_end"),
        "{r:?}"
    );
    let r = bad(ShowChanges {
        sales_start: Some(window(Some(90), None).0),
        ..Default::default()
    })
    .await;
    assert!(
        matches!(&r, Err(Error::Invalid { field, .. }) if field == "sales_start"),
        "{r:?}"
    );
    let r = bad(ShowChanges {
        title: Some(" ".into()),
        ..Default::default()
    })
    .await;
    assert!(
        matches!(&r, Err(Error::Invalid { field, .. }) if field == "title"),
        "{r:?}"
    );
    let r = bad(ShowChanges {
        max_seats_per_user: Some(Some(0)),
        ..Default::default()
    })
    .await;
    assert!(matches!(&r, Err(Error::Invalid { field, .. }) if field == "max_seats_per_user"));
    // Clearing both ends opens it; a new title and limit are kept.
    let changed = shows::update(
        &mut c,
        show.id,
        &ShowChanges {
            title: Some("Gig, moved".into()),
            sales_start: Some(None),
            sales_end: Some(None),
            max_seats_per_user: Some(Some(3)),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(changed.status, ShowStatus::OnSale);
    assert_eq!(changed.title, "Gig, moved");
    assert_eq!(changed.max_seats_per_user, Some(3));
    assert_eq!(shows::get_show(&c, show.id).await.unwrap(), changed);
    // A lower limit takes nothing back and limits what comes next.
    let engine = patient();
    holds::hold(&mut c, &engine, &want(&show, "x", &["A1", "A2"], 1))
        .await
        .unwrap();
    shows::update(
        &mut c,
        show.id,
        &ShowChanges {
            max_seats_per_user: Some(Some(1)),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let r = holds::hold(&mut c, &engine, &want(&show, "x", &[], 1)).await;
    assert!(
        matches!(
            r,
            Err(Error::UserLimitReached {
                limit: 1,
                current: 3
            })
        ),
        "{r:?}"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM holds WHERE status = 'active'")
            .await,
        1
    );
    let r = shows::update(
        &mut c,
        booking_core::ShowId::parse(&(show.id.get() + 1000).to_string()).unwrap(),
        &ShowChanges::default(),
    )
    .await;
    assert!(matches!(r, Err(Error::ShowNotFound)), "{r:?}");
}

#[tokio::test]
async fn a_cancel_releases_and_cancels_everything_in_one_event() {
    let db = TestDb::new().await;
    let engine = patient_on(&db);
    let (show, hold, booking) = sold_gig(&db).await;
    let mut c = db.client().await;
    // A lapsed hold of a place, and a block, too.
    let lapsed = holds::hold(&mut c, &engine, &want(&show, "fan2", &[], 2))
        .await
        .unwrap();
    db.lapse(lapsed.hold_id).await;
    booking_core::blocks::block(
        &mut c,
        &engine,
        show.id,
        &SeatSelection::parse(["A4"], 10).unwrap(),
        "broken",
    )
    .await
    .unwrap();
    let events = db.count("SELECT count(*) FROM seat_events").await;
    let done = shows::cancel(&mut c, &engine, show.id).await.unwrap();
    assert!(done.cancelled_now);
    assert_eq!((done.holds_released, done.bookings_cancelled), (2, 1));
    assert_eq!(done.show.status, ShowStatus::Cancelled);
    let at = done.show.cancelled_at.expect("cancelled_at");
    let event = done.event.expect("one event");
    assert_eq!(event.cause, booking_core::feed::Cause::ShowCancel);
    // Every seat is listed (8) with its new state, the places as deltas: one booked and
    // two held (lapsed, not swept) places freed.
    assert_eq!(event.seats.len(), 8);
    assert!(event.seats.iter().all(|s| s.state
        == if s.label.as_str() == "A4" {
            booking_core::SeatState::Blocked
        } else {
            booking_core::SeatState::Available
        }));
    let floor = &event.areas[0];
    assert_eq!((floor.available, floor.held, floor.booked), (3, -2, -1));
    assert_eq!(
        db.count("SELECT count(*) FROM seat_events").await,
        events + 1
    );
    assert_eq!(
        db.count("SELECT count(*) FROM seats WHERE hold_id IS NOT NULL OR booking_id IS NOT NULL")
            .await,
        0
    );
    let same_time = |sql: &str| {
        let pool = db.pool.clone();
        let sql = sql.to_owned();
        async move {
            let c = pool.get().await.unwrap();
            let r = c.query_one(&sql, &[&show.id.get(), &at]).await.unwrap();
            r.get::<_, i64>(0)
        }
    };
    assert_eq!(
        same_time("SELECT count(*) FROM holds WHERE show_id = $1 AND status = 'released' AND released_at = $2").await,
        2
    );
    assert_eq!(
        same_time("SELECT count(*) FROM bookings WHERE show_id = $1 AND status = 'cancelled' AND cancelled_at = $2").await,
        1
    );
    assert_eq!(
        same_time("SELECT count(*) FROM booking_seats WHERE show_id = $1 AND ended_by = 'cancel' AND ended_at = $2").await,
        2
    );
    // Refused for ever; a repeat changes nothing and answers the same show.
    for (name, r) in every_path(&db, &show, &hold, &booking).await {
        let ok = match name {
            // The hold and booking are no more: they say so first.
            "add" | "add_pooled" | "add places" | "add batch" => {
                matches!(r, Err(Error::HoldReleased))
            }
            "exchange" => matches!(r, Err(Error::BookingCancelled)),
            _ => matches!(r, Err(Error::ShowCancelled)),
        };
        assert!(ok, "{name} on a cancelled show: {r:?}");
    }
    let r = booking_core::blocks::block(
        &mut c,
        &engine,
        show.id,
        &SeatSelection::parse(["A1"], 10).unwrap(),
        "x",
    )
    .await;
    assert!(matches!(r, Err(Error::ShowCancelled)), "{r:?}");
    let r = shows::update(&mut c, show.id, &ShowChanges::default()).await;
    assert!(matches!(r, Err(Error::ShowCancelled)), "{r:?}");
    let again = shows::cancel(&mut c, &engine, show.id).await.unwrap();
    assert!(!again.cancelled_now && again.event.is_none());
    assert_eq!(again.show, shows::get_show(&c, show.id).await.unwrap());
    assert_eq!(again.show.cancelled_at, Some(at));
    assert_eq!(
        db.count("SELECT count(*) FROM seat_events").await,
        events + 1
    );
    let r = shows::cancel(
        &mut c,
        &engine,
        booking_core::ShowId::parse(&(show.id.get() + 99).to_string()).unwrap(),
    )
    .await;
    assert!(matches!(r, Err(Error::ShowNotFound)), "{r:?}");
    db.audit().await;
}

#[tokio::test]
async fn a_show_nobody_held_is_cancelled_with_one_event() {
    let db = TestDb::new().await;
    let show = db.show(1, 3).await;
    let done = shows::cancel(&mut db.client().await, &patient(), show.id)
        .await
        .unwrap();
    assert_eq!(done.event.unwrap().seats.len(), 3);
    assert_eq!(
        db.count("SELECT count(*) FROM seat_events WHERE cause = 'show_cancel'")
            .await,
        1
    );
    db.audit().await;
}

#[tokio::test]
async fn a_cancellation_interrupted_after_its_close_is_finished() {
    let db = TestDb::new().await;
    let engine = patient();
    let (show, hold, booking) = sold_gig(&db).await;
    // As if the server died between the close and the sweep.
    db.client()
        .await
        .execute(
            "UPDATE shows SET cancelled_at = now() WHERE id = $1",
            &[&show.id.get()],
        )
        .await
        .unwrap();
    let r = holds::hold(
        &mut db.client().await,
        &engine,
        &want(&show, "late", &["A1"], 0),
    )
    .await;
    assert!(matches!(r, Err(Error::ShowCancelled)), "{r:?}");
    let mut c = db.client().await;
    assert_eq!(
        shows::finish_cancellations(&mut c, &engine).await.unwrap(),
        1
    );
    assert_eq!(
        shows::finish_cancellations(&mut c, &engine).await.unwrap(),
        0
    );
    let at = shows::get_show(&c, show.id)
        .await
        .unwrap()
        .cancelled_at
        .unwrap();
    let h = holds::get_hold(&c, &hold.user_id, hold.hold_id)
        .await
        .unwrap();
    assert_eq!(h.status, booking_core::HoldStatus::Released);
    let b = bookings::get_booking(&c, &Actor::Admin, booking.booking_id)
        .await
        .unwrap();
    assert_eq!(b.status, booking_core::BookingStatus::Cancelled);
    assert_eq!(
        db.count("SELECT count(*) FROM seat_events WHERE cause = 'show_cancel'")
            .await,
        1
    );
    let released_at: Option<chrono::DateTime<Utc>> = c
        .query_one(
            "SELECT released_at FROM holds WHERE show_id = $1 AND id = $2",
            &[&show.id.get(), &hold.hold_id.key()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(released_at, Some(at));
    // A repeat of the cancellation now writes nothing.
    let again = shows::cancel(&mut c, &engine, show.id).await.unwrap();
    assert!(!again.cancelled_now && again.event.is_none());
    db.audit().await;
}
