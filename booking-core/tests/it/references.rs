//! An integrator's reference and metadata: kept by every hold path, copied or replaced
//! by the confirm, returned wherever the hold or booking is, and a reference names one
//! booking of a show for ever, however many confirms race for it.

use crate::areas::{create, gig, want};
use crate::common::{patient_on, user, TestDb};
use booking_core::bookings::ConfirmRequest;
use booking_core::holds::batch::{BatchOptions, Batcher};
use booking_core::{best, bookings, holds, Actor, BestRequest, CancellationToken, Error};
use booking_core::{ExternalRef, Metadata, Reference, SeatCount};
use serde_json::json;

fn reference(external_ref: Option<&str>, metadata: Option<serde_json::Value>) -> Reference {
    Reference {
        external_ref: external_ref.map(|r| ExternalRef::parse(r).unwrap()),
        metadata: metadata.map(|m| Metadata::parse(m.as_object().unwrap().clone()).unwrap()),
    }
}

fn confirming(r: Reference) -> ConfirmRequest {
    ConfirmRequest {
        late: false,
        reference: r,
    }
}

#[tokio::test]
async fn a_booking_takes_its_holds_reference_or_the_confirms_own() {
    let db = TestDb::new().await;
    let engine = db.engine();
    let show = create(&db, gig(&[("A", 6)], 4, None)).await;
    let mut client = db.client().await;
    let on_hold = reference(Some("cart-7"), Some(json!({"channel": "web", "n": [1, 2]})));

    let mut req = want(&show, "alice", &["A1"], 1);
    req.reference = on_hold.clone();
    let hold = holds::hold(&mut client, &engine, &req).await.unwrap();
    assert_eq!(hold.reference, on_hold);
    let read = holds::get_hold(&client, &user("alice"), hold.hold_id)
        .await
        .unwrap();
    assert_eq!(read, hold, "read back with its reference");
    let json = serde_json::to_value(&read).unwrap();
    assert_eq!(json["external_ref"], "cart-7");
    assert_eq!(json["metadata"], json!({"channel": "web", "n": [1, 2]}));

    // A confirm naming nothing keeps the hold's.
    let kept = bookings::confirm(&mut client, &engine, &user("alice"), hold.hold_id)
        .await
        .unwrap();
    assert_eq!(kept.booking.reference, on_hold);
    let read = bookings::get_booking(
        &client,
        &Actor::User(user("alice")),
        kept.booking.booking_id,
    )
    .await
    .unwrap();
    assert_eq!(read.reference, on_hold);

    // A confirm's own reference wins, part by part.
    let mut req = want(&show, "alice", &["A2"], 1);
    req.reference = on_hold.clone();
    let hold = holds::hold(&mut client, &engine, &req).await.unwrap();
    let own = reference(Some("order-42"), None);
    let replaced = bookings::confirm_with(
        &mut client,
        &engine,
        &user("alice"),
        hold.hold_id,
        &confirming(own),
    )
    .await
    .unwrap();
    assert_eq!(
        replaced.booking.reference,
        reference(
            Some("order-42"),
            Some(json!({"channel": "web", "n": [1, 2]}))
        )
    );

    // Neither: nothing, and nothing in the JSON.
    let plain = holds::hold(&mut client, &engine, &want(&show, "bob", &["A3"], 0))
        .await
        .unwrap();
    let booked = bookings::confirm(&mut client, &engine, &user("bob"), plain.hold_id)
        .await
        .unwrap();
    assert_eq!(booked.booking.reference, Reference::default());
    let json = serde_json::to_value(&booked.booking).unwrap();
    assert!(json.get("external_ref").is_none() && json.get("metadata").is_none());

    // The most metadata allowed is stored whole, though jsonb prints it half as long
    // again (a space after every comma).
    let zeros = vec![0; (4096 - r#"{"z":[]}"#.len()).div_ceil(2)];
    let biggest = reference(None, Some(json!({ "z": zeros })));
    assert!(biggest.metadata.as_ref().unwrap().to_json().len() <= 4096);
    let mut req = want(&show, "carol", &["A5"], 0);
    req.reference = biggest.clone();
    let hold = holds::hold(&mut client, &engine, &req).await.unwrap();
    let read = holds::get_hold(&client, &user("carol"), hold.hold_id)
        .await
        .unwrap();
    assert_eq!(read.reference, biggest);
    db.audit().await;
}

#[tokio::test]
async fn every_hold_path_keeps_the_reference() {
    let db = TestDb::with_pool(4).await;
    let engine = patient_on(&db);
    let show = create(&db, gig(&[("A", 6), ("B", 6)], 4, None)).await;
    let mut client = db.client().await;
    let r = reference(Some("r-1"), Some(json!({"k": "v"})));
    let batcher = Batcher::start(
        engine.clone(),
        db.pool.clone(),
        BatchOptions::default(),
        CancellationToken::new(),
    );

    let mut seats = want(&show, "u1", &["A1"], 0);
    seats.reference = r.clone();
    let mut places = want(&show, "u2", &[], 2);
    places.reference = r.clone();
    let mut pooled = want(&show, "u3", &["A2"], 0);
    pooled.reference = r.clone();
    let mut best = BestRequest::new(show.id, user("u4"), SeatCount::parse(2, 10).unwrap());
    best.reference = r.clone();

    let made = vec![
        batcher.hold(seats).await.unwrap(),
        batcher.hold(places).await.unwrap(),
        holds::hold_pooled(&mut db.client().await, &engine, &pooled)
            .await
            .unwrap(),
        best::hold_best(&mut client, &engine, &best)
            .await
            .unwrap()
            .hold,
    ];
    for h in made {
        assert_eq!(h.reference, r, "{h:?}");
        let read = holds::get_hold(&client, &h.user_id, h.hold_id)
            .await
            .unwrap();
        assert_eq!(read, h, "as read back");
    }
    // An add changes what a hold has, never what it is for.
    let mut first = want(&show, "u5", &["B1"], 0);
    first.reference = r.clone();
    let h = holds::hold(&mut client, &engine, &first).await.unwrap();
    let added = batcher
        .add(
            Actor::User(user("u5")),
            h.hold_id,
            booking_core::HoldAddition {
                seats: booking_core::SeatSelection::parse(["B2"], 10).unwrap(),
                areas: vec![],
                ticket_types: vec![],
            },
        )
        .await
        .unwrap();
    assert_eq!(added.reference, r);
    assert_eq!(added.seats.len(), 2);
    db.audit().await;
}

#[tokio::test]
async fn a_reference_names_one_booking_of_a_show_for_ever() {
    let db = TestDb::new().await;
    let engine = db.engine();
    let show = create(&db, gig(&[("A", 6)], 4, None)).await;
    let other = create(&db, gig(&[("A", 6)], 4, None)).await;
    let mut client = db.client().await;
    let order = || confirming(reference(Some("order-1"), None));

    let first = holds::hold(&mut client, &engine, &want(&show, "alice", &["A1"], 0))
        .await
        .unwrap();
    let booked = bookings::confirm_with(
        &mut client,
        &engine,
        &user("alice"),
        first.hold_id,
        &order(),
    )
    .await
    .unwrap();

    // Another hold's confirm with it is refused, and books nothing.
    let second = holds::hold(&mut client, &engine, &want(&show, "bob", &["A2"], 1))
        .await
        .unwrap();
    let events = db.count("SELECT count(*) FROM seat_events").await;
    let refused =
        bookings::confirm_with(&mut client, &engine, &user("bob"), second.hold_id, &order()).await;
    assert!(
        matches!(refused, Err(Error::ExternalRefTaken)),
        "{refused:?}"
    );
    assert_eq!(db.count("SELECT count(*) FROM seat_events").await, events);
    let still = holds::get_hold(&client, &user("bob"), second.hold_id)
        .await
        .unwrap();
    assert_eq!(still.status, booking_core::HoldStatus::Active);
    assert_eq!(still.booking_id, None);

    // A hold carrying the reference is refused alike at its confirm.
    let mut carrying = want(&show, "carol", &["A3"], 0);
    carrying.reference = reference(Some("order-1"), None);
    let carrying = holds::hold(&mut client, &engine, &carrying).await.unwrap();
    let refused = bookings::confirm(&mut client, &engine, &user("carol"), carrying.hold_id).await;
    assert!(
        matches!(refused, Err(Error::ExternalRefTaken)),
        "{refused:?}"
    );

    // Cancelled, the booking keeps it.
    bookings::cancel(
        &mut client,
        &engine,
        &Actor::User(user("alice")),
        booked.booking.booking_id,
    )
    .await
    .unwrap();
    let refused =
        bookings::confirm_with(&mut client, &engine, &user("bob"), second.hold_id, &order()).await;
    assert!(
        matches!(refused, Err(Error::ExternalRefTaken)),
        "{refused:?}"
    );

    // Another show's bookings are another namespace; a repeat of the first confirm is
    // its booking again.
    let there = holds::hold(&mut client, &engine, &want(&other, "bob", &["A1"], 0))
        .await
        .unwrap();
    bookings::confirm_with(&mut client, &engine, &user("bob"), there.hold_id, &order())
        .await
        .unwrap();
    let again = bookings::confirm_with(
        &mut client,
        &engine,
        &user("alice"),
        first.hold_id,
        &order(),
    )
    .await
    .unwrap();
    assert!(!again.created);
    assert_eq!(again.booking.booking_id, booked.booking.booking_id);
    db.audit().await;
}

/// Twenty holds confirmed at once with one reference: exactly one booking has it, every
/// other confirm is refused and leaves its hold active, and no seat is booked twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn confirms_racing_for_one_reference_give_one_booking() {
    let db = TestDb::with_pool(24).await;
    let engine = patient_on(&db);
    let show = create(&db, gig(&[("A", 20)], 20, None)).await;
    let mut client = db.client().await;
    let mut held = Vec::new();
    for i in 0..20 {
        let seat = format!("A{}", i + 1);
        let h = holds::hold(
            &mut client,
            &engine,
            &want(&show, &format!("u{i}"), &[seat.as_str()], 1),
        )
        .await
        .unwrap();
        held.push(h);
    }
    let mut tasks = Vec::new();
    for h in &held {
        let (pool, engine, id, who) = (
            db.pool.clone(),
            engine.clone(),
            h.hold_id,
            h.user_id.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut c = pool.get().await.unwrap();
            let req = confirming(reference(Some("the-one"), None));
            bookings::confirm_with(&mut c, &engine, &who, id, &req).await
        }));
    }
    let mut won = 0;
    for (t, h) in tasks.into_iter().zip(&held) {
        match t.await.unwrap() {
            Ok(c) => {
                won += 1;
                assert_eq!(c.booking.hold_id, h.hold_id);
            }
            Err(Error::ExternalRefTaken) => {
                let read = holds::get_hold(&client, &h.user_id, h.hold_id)
                    .await
                    .unwrap();
                assert_eq!(read.status, booking_core::HoldStatus::Active, "{read:?}");
            }
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) FROM bookings WHERE show_id = {} AND external_ref = 'the-one'",
            show.id
        ))
        .await,
        1
    );
    assert_eq!(db.count("SELECT count(*) FROM bookings").await, 1);
    db.audit().await;
}

#[test]
fn references_and_metadata_are_parsed_once() {
    assert!(ExternalRef::parse(&"x".repeat(128)).is_ok());
    for bad in ["", "a b", "é", &"x".repeat(129), "tab\t"] {
        assert!(ExternalRef::parse(bad).is_err(), "{bad:?}");
    }
    // 4096 bytes of compact JSON pass, one more does not.
    let fits = json!({"k": "x".repeat(4096 - r#"{"k":""}"#.len())});
    assert!(Metadata::parse(fits.as_object().unwrap().clone()).is_ok());
    let over = json!({"k": "x".repeat(4097 - r#"{"k":""}"#.len())});
    assert!(Metadata::parse(over.as_object().unwrap().clone()).is_err());
}
