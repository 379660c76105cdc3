//! A show's report against what was done to the show: every figure after a mix of
//! holds, confirms, partial and whole cancels, an exchange, blocks and expiries (swept
//! and not), and figures that add up while holds and confirms run beside the report.

use crate::areas::{code, create, gig, ticket, want};
use crate::common::{user, TestDb};
use booking_core::reports::{self, Counts, Report, Returned};
use booking_core::{blocks, bookings, holds, shows, sweeper, Actor, AreaWant, CancelPart};
use booking_core::{Exchange, SeatSelection};

fn seats(ls: &[&str]) -> SeatSelection {
    SeatSelection::parse(ls, 100).unwrap()
}

fn counts(
    total: i64,
    available: i64,
    held: i64,
    booked: i64,
    blocked: i64,
    revenue: i64,
) -> Counts {
    Counts {
        total,
        available,
        held,
        booked,
        blocked,
        revenue,
    }
}

/// Every sum a report must satisfy within itself.
fn check_sums(r: &Report) {
    for c in [&r.seats, &r.places]
        .into_iter()
        .chain(r.categories.iter().map(|c| &c.counts))
        .chain(r.areas.iter().map(|a| &a.counts))
    {
        assert_eq!(
            c.total,
            c.available + c.held + c.booked + c.blocked,
            "{r:?}"
        );
    }
    let sum = |f: fn(&Counts) -> i64| r.categories.iter().map(|c| f(&c.counts)).sum::<i64>();
    assert_eq!(sum(|c| c.booked), r.seats.booked + r.places.booked);
    assert_eq!(sum(|c| c.held), r.seats.held + r.places.held);
    assert_eq!(sum(|c| c.revenue), r.seats.revenue + r.places.revenue);
    let types_booked: i64 = r.ticket_types.iter().map(|t| t.booked).sum();
    let types_held: i64 = r.ticket_types.iter().map(|t| t.held).sum();
    let types_revenue: i64 = r.ticket_types.iter().map(|t| t.revenue).sum();
    assert_eq!(types_booked, r.seats.booked + r.places.booked, "{r:?}");
    assert_eq!(types_held, r.seats.held + r.places.held, "{r:?}");
    assert_eq!(types_revenue, r.seats.revenue + r.places.revenue, "{r:?}");
}

#[tokio::test]
async fn every_figure_of_a_report_matches_what_was_done() {
    let db = TestDb::new().await;
    // Seats A1-A10, B1-B10 (standard: adult 5000); FLOOR of 20 places (standing:
    // adult 3000, child 1500).
    let show = create(&db, gig(&[("A", 10), ("B", 10)], 20, None)).await;
    let engine = db.engine();
    let mut c = db.client().await;
    let admin = Actor::Admin;

    // ann books A1, A2 and 3 adult places; later exchanges A2 for A3 and cancels a place.
    let h1 = holds::hold(&mut c, &engine, &want(&show, "ann", &["A1", "A2"], 3))
        .await
        .unwrap();
    let b1 = bookings::confirm(&mut c, &engine, &user("ann"), h1.hold_id)
        .await
        .unwrap()
        .booking;
    // ben books B1, B2 and cancels B2.
    let h2 = holds::hold(&mut c, &engine, &want(&show, "ben", &["B1", "B2"], 0))
        .await
        .unwrap();
    let b2 = bookings::confirm(&mut c, &engine, &user("ben"), h2.hold_id)
        .await
        .unwrap()
        .booking;
    let part = CancelPart {
        seats: seats(&["B2"]),
        areas: vec![],
    };
    bookings::cancel_part(&mut c, &engine, &admin, b2.booking_id, Some(&part))
        .await
        .unwrap();
    // cy holds A5 and two child places, and keeps holding them.
    let mut r3 = want(&show, "cy", &["A5"], 0);
    r3.areas = vec![AreaWant::new(code("FLOOR"), 2)
        .unwrap()
        .with_ticket_types(vec![ticket("child"), ticket("child")])
        .unwrap()];
    holds::hold(&mut c, &engine, &r3).await.unwrap();
    // dee (B5 and a place) and fay (B9) let their holds lapse; the sweeper ends them.
    let h4 = holds::hold(&mut c, &engine, &want(&show, "dee", &["B5"], 1))
        .await
        .unwrap();
    let h6 = holds::hold(&mut c, &engine, &want(&show, "fay", &["B9"], 0))
        .await
        .unwrap();
    db.lapse(h4.hold_id).await;
    db.lapse(h6.hold_id).await;
    sweeper::sweep_once(&mut c, &engine, 100).await.unwrap();
    // gus's hold of A7 lapses and nobody sweeps it: available all the same.
    let h7 = holds::hold(&mut c, &engine, &want(&show, "gus", &["A7"], 0))
        .await
        .unwrap();
    db.lapse(h7.hold_id).await;
    // A9 and A10 are blocked.
    blocks::block(&mut c, &engine, show.id, &seats(&["A9", "A10"]), "broken")
        .await
        .unwrap();
    // ann gives A2 back for A3, and cancels one place.
    let ex = Exchange {
        release: seats(&["A2"]),
        take: seats(&["A3"]),
        ticket_types: vec![],
    };
    bookings::exchange(&mut c, &engine, &admin, b1.booking_id, &ex)
        .await
        .unwrap();
    let part = CancelPart {
        seats: SeatSelection::none(),
        areas: vec![AreaWant::new(code("FLOOR"), 1).unwrap()],
    };
    bookings::cancel_part(&mut c, &engine, &admin, b1.booking_id, Some(&part))
        .await
        .unwrap();
    // eve books B7 and cancels the booking whole.
    let h5 = holds::hold(&mut c, &engine, &want(&show, "eve", &["B7"], 0))
        .await
        .unwrap();
    let b5 = bookings::confirm(&mut c, &engine, &user("eve"), h5.hold_id)
        .await
        .unwrap()
        .booking;
    bookings::cancel(&mut c, &engine, &admin, b5.booking_id)
        .await
        .unwrap();

    let r = reports::show_report(&c, show.id).await.unwrap();
    // Booked: A1, A3, B1 (adult, 5000 each) and 2 adult places (3000 each); held: A5
    // (adult) and 2 child places; blocked: A9, A10; everything else available.
    let seats_now = counts(20, 14, 1, 3, 2, 15_000);
    let places_now = counts(20, 16, 2, 2, 0, 6_000);
    assert_eq!(r.seats, seats_now);
    assert_eq!(r.places, places_now);
    assert_eq!(r.currency, "EUR");
    let categories: Vec<(&str, &Counts)> = r
        .categories
        .iter()
        .map(|c| (c.category.as_str(), &c.counts))
        .collect();
    assert_eq!(
        categories,
        [("standard", &seats_now), ("standing", &places_now)]
    );
    assert_eq!(r.areas.len(), 1);
    assert_eq!(
        (r.areas[0].area.as_str(), r.areas[0].category.as_str()),
        ("FLOOR", "standing")
    );
    assert_eq!(r.areas[0].counts, places_now);
    let types: Vec<(&str, i64, i64, i64)> = r
        .ticket_types
        .iter()
        .map(|t| (t.ticket_type.as_str(), t.held, t.booked, t.revenue))
        .collect();
    assert_eq!(types, [("adult", 1, 5, 21_000), ("child", 2, 0, 0)]);
    // Cancelled: B2 and B7 (5000 each) and one place (3000); one booking whole.
    assert_eq!(r.cancelled.bookings, 1);
    assert_eq!(
        r.cancelled.returned,
        Returned {
            seats: 2,
            places: 1,
            revenue: 13_000
        }
    );
    // Exchanged away: A2 (5000).
    assert_eq!(
        r.exchanged,
        Returned {
            seats: 1,
            places: 0,
            revenue: 5_000
        }
    );
    check_sums(&r);

    // The show's own seat counts (another reader) agree.
    let s = shows::get_show(&c, show.id).await.unwrap();
    assert_eq!(
        (s.available, s.held, s.booked, s.blocked),
        (
            r.seats.available,
            r.seats.held,
            r.seats.booked,
            r.seats.blocked
        )
    );
    // And the totals of the bookings still confirmed are the booked revenue (a
    // cancelled booking keeps the total of what it had).
    let mut totals = 0;
    for id in [b1.booking_id, b2.booking_id, b5.booking_id] {
        let b = bookings::get_booking(&c, &admin, id).await.unwrap();
        if b.status == booking_core::BookingStatus::Confirmed {
            totals += b.total;
        }
    }
    assert_eq!(totals, r.seats.revenue + r.places.revenue);

    assert!(matches!(
        reports::show_report(&c, booking_core::ShowId::parse("999999").unwrap()).await,
        Err(booking_core::Error::ShowNotFound)
    ));
    db.audit().await;
}

#[tokio::test]
async fn a_report_adds_up_while_seats_change_beside_it() {
    let db = TestDb::new().await;
    let show = create(&db, gig(&[("A", 20), ("B", 20)], 50, None)).await;
    let engine = db.engine();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (pool, engine, show) = (db.pool.clone(), engine.clone(), show.clone());
            tokio::spawn(async move {
                let mut c = booking_core::database::client(&pool).await.unwrap();
                let who = format!("w{w}");
                for i in 0..10 {
                    let seat = format!("{}{}", ["A", "B"][w % 2], (w / 2) * 10 + i + 1);
                    let h = holds::hold(&mut c, &engine, &want(&show, &who, &[&seat], 1))
                        .await
                        .unwrap();
                    if i % 3 != 0 {
                        bookings::confirm(&mut c, &engine, &user(&who), h.hold_id)
                            .await
                            .unwrap();
                    }
                }
            })
        })
        .collect();
    let c = db.client().await;
    let mut reports = 0;
    while !writers.iter().all(|w| w.is_finished()) {
        check_sums(&reports::show_report(&c, show.id).await.unwrap());
        reports += 1;
    }
    for w in writers {
        w.await.unwrap();
    }
    let last = reports::show_report(&c, show.id).await.unwrap();
    check_sums(&last);
    assert_eq!(last.seats.booked + last.seats.held, 40);
    assert_eq!(last.places.booked + last.places.held, 40);
    assert!(reports > 0);
}
