//! Changing the ticket types of a hold: new prices and total, the same seats, places and
//! deadline, all or none, and no event.

use crate::areas::{code, create, gig, ticket, want};
use crate::common::{user, TestDb};
use booking_core::{bookings, feed, holds, Error, Position, SeatLabel};

#[tokio::test]
async fn a_holds_tickets_change_type_and_price_and_nothing_else() {
    let db = TestDb::new().await;
    let engine = db.engine();
    let show = create(&db, gig(&[("A", 4)], 6, None)).await;
    let mut client = db.client().await;
    let hold = holds::hold(&mut client, &engine, &want(&show, "alice", &["A1"], 2))
        .await
        .unwrap();
    assert_eq!(hold.total, 5000 + 2 * 3000);
    let events_before = feed::read(&client, Some(show.id), Position::START, None, 100)
        .await
        .unwrap()
        .len();

    let changed = holds::change_tickets(
        &mut client,
        &engine,
        &user("alice"),
        hold.hold_id,
        &[],
        &[(code("FLOOR"), vec![ticket("child"), ticket("adult")])],
    )
    .await
    .unwrap();
    let types: Vec<&str> = changed
        .tickets
        .iter()
        .map(|t| t.ticket_type.as_str())
        .collect();
    assert_eq!(types, ["adult", "child", "adult"]);
    assert_eq!(changed.total, 5000 + 1500 + 3000);
    assert_eq!(
        (&changed.seats, &changed.areas, changed.expires_at),
        (&hold.seats, &hold.areas, hold.expires_at)
    );
    assert_eq!(
        holds::get_hold(&client, &user("alice"), hold.hold_id)
            .await
            .unwrap(),
        changed
    );

    // All or none: a seat the hold lacks, a type not sold, a list of another length.
    let a3 = SeatLabel::parse("A3").unwrap();
    let a1 = SeatLabel::parse("A1").unwrap();
    let r = holds::change_tickets(
        &mut client,
        &engine,
        &user("alice"),
        hold.hold_id,
        &[(a3.clone(), ticket("adult"))],
        &[(code("FLOOR"), vec![ticket("adult"), ticket("adult")])],
    )
    .await;
    assert!(
        matches!(r, Err(Error::NotInHold { ref seats, .. }) if seats == &[a3]),
        "{r:?}"
    );
    let r = holds::change_tickets(
        &mut client,
        &engine,
        &user("alice"),
        hold.hold_id,
        &[(a1, ticket("child"))],
        &[],
    )
    .await;
    assert!(
        matches!(r, Err(Error::TicketTypeUnavailable { .. })),
        "{r:?}"
    );
    let r = holds::change_tickets(
        &mut client,
        &engine,
        &user("alice"),
        hold.hold_id,
        &[],
        &[(code("FLOOR"), vec![ticket("adult")])],
    )
    .await;
    assert!(
        matches!(r, Err(Error::Invalid { ref field, .. }) if field == "ticket_types"),
        "{r:?}"
    );
    let r = holds::change_tickets(
        &mut client,
        &engine,
        &user("bob"),
        hold.hold_id,
        &[],
        &[(code("FLOOR"), vec![ticket("adult"), ticket("adult")])],
    )
    .await;
    assert!(matches!(r, Err(Error::Forbidden)), "{r:?}");
    assert_eq!(
        holds::get_hold(&client, &user("alice"), hold.hold_id)
            .await
            .unwrap(),
        changed,
        "refusals changed nothing"
    );

    // No seat changed state: no event. The booking sells what the hold says now.
    let events_after = feed::read(&client, Some(show.id), Position::START, None, 100)
        .await
        .unwrap()
        .len();
    assert_eq!(events_after, events_before);
    let booking = bookings::confirm(&mut client, &engine, &user("alice"), hold.hold_id)
        .await
        .unwrap()
        .booking;
    assert_eq!(booking.tickets, changed.tickets);
    assert_eq!(booking.total, changed.total);
    let r = holds::change_tickets(
        &mut client,
        &engine,
        &user("alice"),
        hold.hold_id,
        &[],
        &[(code("FLOOR"), vec![ticket("adult"), ticket("adult")])],
    )
    .await;
    assert!(matches!(r, Err(Error::HoldConfirmed)), "{r:?}");
    db.audit().await;
}
