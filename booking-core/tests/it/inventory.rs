//! Venue inventory against the real database: venues copied into shows, sections,
//! blocks racing holds, ticket types and their prices, the limit per buyer under many
//! concurrent holds of one user, and best available's filters.

use crate::common::{patient, request, user, TestDb};
use booking_core::holds::batch;
use booking_core::{
    best, blocks, bookings, database, feed, holds, seats, shows, venues, BestRequest, Category,
    Currency, Error, Feature, Layout, NewShow, NewVenue, RowLabel, RowSpec, SeatCount, SeatLabel,
    SeatSelection, SeatState, Section, Show, ShowLayout, TicketTypeName,
};
use rand::seq::SliceRandom;
use rand::Rng;
use std::collections::{BTreeMap, HashSet};

fn row(label: &str, seats: i64) -> RowSpec {
    RowSpec::new(RowLabel::parse(label).unwrap(), seats, &[], None).unwrap()
}

fn features(list: &[(&str, &[i64])]) -> BTreeMap<Feature, Vec<i64>> {
    list.iter()
        .map(|(f, n)| (Feature::parse(f).unwrap(), n.to_vec()))
        .collect()
}

fn labels(list: &[&str]) -> SeatSelection {
    SeatSelection::parse(list, 1000).unwrap()
}

async fn create(db: &TestDb, new: NewShow) -> Show {
    shows::create_show(&mut db.client().await, &new)
        .await
        .unwrap()
}

/// Adult and child, the child type sold for `standard` only.
fn typed(rows: Vec<RowSpec>, limit: Option<i64>) -> NewShow {
    let standard = Category::standard();
    let premium = Category::parse("premium").unwrap();
    NewShow::with_layout(
        "Typed",
        chrono::Utc::now(),
        Currency::eur(),
        ShowLayout::Rows(Layout::new(rows).unwrap()),
    )
    .unwrap()
    .with_ticket_types(vec![
        (
            TicketTypeName::parse("adult").unwrap(),
            BTreeMap::from([(standard.clone(), 1200), (premium, 1800)]),
        ),
        (
            TicketTypeName::parse("child").unwrap(),
            BTreeMap::from([(standard, 800)]),
        ),
    ])
    .unwrap()
    .with_max_seats_per_user(limit)
    .unwrap()
}

#[tokio::test]
async fn a_show_from_a_venue_keeps_its_seats_when_the_venue_changes() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let layout = Layout::new(vec![
        row("A", 6).with_blocked(&[1]).unwrap(),
        row("B", 8)
            .with_features(features(&[("wheelchair", &[1, 2])]))
            .unwrap(),
    ])
    .unwrap();
    let venue = venues::create_venue(&client, &NewVenue::new("Screen 3", layout).unwrap())
        .await
        .unwrap();
    assert_eq!(venue.seats_total, 14);
    let from_venue = |title: &str| {
        NewShow::with_layout(
            title,
            chrono::Utc::now(),
            Currency::eur(),
            ShowLayout::Venue(venue.venue_id),
        )
        .unwrap()
    };
    let first = create(&db, from_venue("Early")).await;
    assert_eq!(
        (first.seats_total, first.blocked, first.available),
        (14, 1, 13)
    );
    assert_eq!(first.venue_id, Some(venue.venue_id));
    let before = seats::seat_map(&client, first.id).await.unwrap();
    let a1 = &before.seats[0];
    assert_eq!((a1.label.as_str(), a1.state), ("A1", SeatState::Blocked));
    assert_eq!(before.seats[6].features, vec!["wheelchair".to_owned()]);

    // Sell a seat of the first show, then rebuild the venue completely.
    let engine = db.engine();
    let hold = holds::hold(
        &mut db.client().await,
        &engine,
        &request(&first, "alice", &["B3"]),
    )
    .await
    .unwrap();
    bookings::confirm(
        &mut db.client().await,
        &engine,
        &user("alice"),
        hold.hold_id,
    )
    .await
    .unwrap();
    let edited = Layout::new(vec![row("C", 3), row("D", 3)]).unwrap();
    venues::update_venue(
        &client,
        venue.venue_id,
        &NewVenue::new("Screen 3 (new)", edited).unwrap(),
    )
    .await
    .unwrap();

    let after = seats::seat_map(&client, first.id).await.unwrap();
    let shape = |m: &booking_core::SeatMap| -> Vec<(String, String, Vec<String>)> {
        m.seats
            .iter()
            .map(|s| (s.label.to_string(), s.category.clone(), s.features.clone()))
            .collect()
    };
    assert_eq!(
        shape(&before),
        shape(&after),
        "the show's layout did not move"
    );
    let b3 = after
        .seats
        .iter()
        .find(|s| s.label.as_str() == "B3")
        .unwrap();
    assert_eq!(b3.state, SeatState::Booked, "the sold seat is still sold");
    let later = create(&db, from_venue("Late")).await;
    let map = seats::seat_map(&client, later.id).await.unwrap();
    let got: Vec<&str> = map.seats.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(got, ["C1", "C2", "C3", "D1", "D2", "D3"]);
    assert_eq!(later.blocked, 0);

    let unknown = shows::create_show(
        &mut db.client().await,
        &NewShow::with_layout(
            "Nowhere",
            chrono::Utc::now(),
            Currency::eur(),
            ShowLayout::Venue(booking_core::VenueId::parse("999999").unwrap()),
        )
        .unwrap(),
    )
    .await;
    assert!(matches!(unknown, Err(Error::VenueNotFound)), "{unknown:?}");
    db.audit().await;
}

#[tokio::test]
async fn sections_label_their_seats_and_keep_row_labels_apart() {
    let db = TestDb::new().await;
    let in_section = |s: &str, r: &str| row(r, 4).in_section(Some(Section::parse(s).unwrap()));
    let show = create(
        &db,
        NewShow::new(
            "Stadium",
            chrono::Utc::now(),
            Currency::eur(),
            BTreeMap::new(),
            vec![in_section("101", "A"), in_section("102", "A"), row("A", 2)],
        )
        .unwrap(),
    )
    .await;
    let map = seats::seat_map(&db.client().await, show.id).await.unwrap();
    let got: Vec<(&str, Option<&str>)> = map
        .seats
        .iter()
        .map(|s| (s.label.as_str(), s.section.as_deref()))
        .collect();
    assert_eq!(got[0], ("101-A1", Some("101")));
    assert_eq!(got[4], ("102-A1", Some("102")));
    assert_eq!(got[8], ("A1", None));
    let engine = db.engine();
    let hold = holds::hold(
        &mut db.client().await,
        &engine,
        &request(&show, "u", &["102-A2", "A2"]),
    )
    .await
    .unwrap();
    assert_eq!(hold.seats.len(), 2);
    // One row label twice in one section is refused.
    let twice = Layout::new(vec![in_section("101", "A"), in_section("101", "A")]);
    assert!(
        matches!(twice, Err(Error::Invalid { ref field, .. }) if field == "rows"),
        "{twice:?}"
    );
    db.audit().await;
}

#[tokio::test]
async fn a_block_takes_free_seats_only_and_is_in_the_feed() {
    let db = TestDb::new().await;
    let show = db.show(2, 10).await;
    let engine = db.engine();
    let held = holds::hold(
        &mut db.client().await,
        &engine,
        &request(&show, "alice", &["A3"]),
    )
    .await
    .unwrap();

    // A held seat: nothing blocked, the held seat named.
    let refused = blocks::block(
        &mut db.client().await,
        &engine,
        show.id,
        &labels(&["A2", "A3"]),
        "tech desk",
    )
    .await;
    match refused {
        Err(Error::SeatsUnavailable { seats, .. }) => {
            assert_eq!(seats, vec![SeatLabel::parse("A3").unwrap()])
        }
        other => panic!("expected seats_unavailable, got {other:?}"),
    }
    assert_eq!(db.count("SELECT count(*) FROM blocks").await, 0);
    let missing = blocks::block(
        &mut db.client().await,
        &engine,
        show.id,
        &labels(&["A2", "Z9"]),
        "x",
    )
    .await;
    assert!(
        matches!(missing, Err(Error::SeatNotFound { .. })),
        "{missing:?}"
    );

    let block = blocks::block(
        &mut db.client().await,
        &engine,
        show.id,
        &labels(&["B2", "A1"]),
        "tech desk",
    )
    .await
    .unwrap();
    let order: Vec<&str> = block.seats.iter().map(|s| s.as_str()).collect();
    assert_eq!(order, ["A1", "B2"], "seat-map order");
    let event = block.event.as_ref().expect("a block writes an event");
    assert_eq!(event.cause, feed::Cause::Block);
    assert!(event.seats.iter().all(|c| c.state == SeatState::Blocked));

    // A blocked seat is refused by every hold path and by best available.
    let taken = |r: booking_core::Result<booking_core::Hold>| match r {
        Err(Error::SeatsUnavailable { seats, .. }) => seats,
        other => panic!("expected seats_unavailable, got {other:?}"),
    };
    let req = request(&show, "bob", &["A1", "A2"]);
    let a1 = vec![SeatLabel::parse("A1").unwrap()];
    assert_eq!(
        taken(holds::hold(&mut db.client().await, &engine, &req).await),
        a1
    );
    assert_eq!(
        taken(holds::hold_pooled(&mut db.client().await, &engine, &req).await),
        a1
    );
    let mut all = batch::hold_all(&db.pool, &engine, vec![req.clone()]).await;
    assert_eq!(taken(all.remove(0)), a1);
    let shown = shows::get_show(&db.client().await, show.id).await.unwrap();
    assert_eq!((shown.blocked, shown.held, shown.available), (2, 1, 17));
    let map = seats::seat_map_with_reasons(&db.client().await, show.id)
        .await
        .unwrap();
    assert_eq!(map.seats[0].state, SeatState::Blocked);
    assert_eq!(map.seats[0].block_reason.as_deref(), Some("tech desk"));
    let listed = blocks::list_blocks(&db.client().await, show.id)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].seats, block.seats);

    // Unblocked: available again, then holdable; a second delete finds nothing.
    let event = blocks::unblock(&mut db.client().await, &engine, show.id, block.block_id)
        .await
        .unwrap()
        .expect("an unblock writes an event");
    assert_eq!(event.cause, feed::Cause::Unblock);
    assert!(event.seats.iter().all(|c| c.state == SeatState::Available));
    let again = blocks::unblock(&mut db.client().await, &engine, show.id, block.block_id).await;
    assert!(matches!(again, Err(Error::BlockNotFound)), "{again:?}");
    holds::hold(&mut db.client().await, &engine, &req)
        .await
        .unwrap();
    drop(held);
    db.audit().await;
}

/// Blocks and holds of overlapping seats at once: every seat ends blocked, held or
/// free, never two; each block and each hold got all its seats or none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_blocks_and_holds_never_share_a_seat() {
    let db = TestDb::with_pool(32).await;
    let show = db.show(2, 10).await;
    let engine = patient();
    let all: Vec<String> = ["A", "B"]
        .iter()
        .flat_map(|r| (1..=10).map(move |n| format!("{r}{n}")))
        .collect();
    let mut tasks = Vec::new();
    for i in 0..240 {
        let mut rng = rand::thread_rng();
        let n = rng.gen_range(1..=4);
        let chosen: Vec<String> = all.choose_multiple(&mut rng, n).cloned().collect();
        let pool = db.pool.clone();
        let engine = engine.clone();
        let show = show.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = database::client(&pool).await.unwrap();
            let refs: Vec<&str> = chosen.iter().map(String::as_str).collect();
            let wanted: HashSet<String> = chosen.iter().cloned().collect();
            let outcome = match i % 3 {
                0 => blocks::block(&mut client, &engine, show.id, &labels(&refs), "press")
                    .await
                    .map(|b| b.seats),
                1 => holds::hold(&mut client, &engine, &request(&show, "u", &refs))
                    .await
                    .map(|h| h.seats),
                _ => holds::hold_pooled(&mut client, &engine, &request(&show, "u", &refs))
                    .await
                    .map(|h| h.seats),
            };
            (wanted, outcome)
        }));
    }
    let mut claimed: HashSet<String> = HashSet::new();
    let mut won = 0;
    for t in tasks {
        let (wanted, outcome) = t.await.unwrap();
        match outcome {
            Ok(seats) => {
                let got: HashSet<String> = seats.iter().map(|s| s.to_string()).collect();
                assert_eq!(got, wanted, "all of the seats or none");
                for s in got {
                    assert!(claimed.insert(s.clone()), "{s} given twice");
                }
                won += 1;
            }
            Err(Error::SeatsUnavailable { seats, .. }) => assert!(!seats.is_empty()),
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert!(won > 0);
    // Each seat the answers gave is blocked or held in the table, and by one only.
    let both = db
        .count(
            "SELECT count(*) FROM seats WHERE block_id IS NOT NULL AND (hold_id IS NOT NULL
                                                               OR booking_id IS NOT NULL)",
        )
        .await;
    assert_eq!(both, 0);
    let pointed = db
        .count("SELECT count(*) FROM seats WHERE block_id IS NOT NULL OR hold_id IS NOT NULL")
        .await;
    assert_eq!(
        pointed as usize,
        claimed.len(),
        "the table agrees with the answers"
    );
    db.audit().await;
}

#[tokio::test]
async fn ticket_types_price_each_seat_and_refuse_what_they_do_not_sell() {
    let db = TestDb::new().await;
    let premium = Category::parse("premium").unwrap();
    let show = create(
        &db,
        typed(
            vec![
                row("A", 6),
                RowSpec::new(RowLabel::parse("B").unwrap(), 6, &[], Some(premium)).unwrap(),
                row("C", 6),
            ],
            None,
        ),
    )
    .await;
    let names: Vec<&str> = show.ticket_types.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["adult", "child"]);
    let engine = db.engine();
    let child = TicketTypeName::parse("child").unwrap();
    let with_types = |seats: &[&str], types: &[(&str, &str)]| {
        let mut req = request(&show, "alice", seats);
        req.ticket_types = types
            .iter()
            .map(|(l, t)| {
                (
                    SeatLabel::parse(l).unwrap(),
                    TicketTypeName::parse(t).unwrap(),
                )
            })
            .collect();
        req
    };
    // Each path prices the same way: A1 adult 1200 + A2 child 800 + B1 adult 1800.
    let req = with_types(&["B1", "A2", "A1"], &[("A2", "child")]);
    let via_tx = holds::hold(&mut db.client().await, &engine, &req)
        .await
        .unwrap();
    assert_eq!(via_tx.total, 3800);
    let tickets: Vec<(&str, &str, Option<i64>)> = via_tx
        .tickets
        .iter()
        .map(|t| (t.seat.as_str(), t.ticket_type.as_str(), t.price))
        .collect();
    assert_eq!(
        tickets,
        [
            ("A1", "adult", Some(1200)),
            ("A2", "child", Some(800)),
            ("B1", "adult", Some(1800))
        ]
    );
    let req2 = with_types(&["A3", "A4", "B2"], &[("A3", "child")]);
    let pooled = holds::hold_pooled(&mut db.client().await, &engine, &req2)
        .await
        .unwrap();
    assert_eq!(pooled.total, 3800);
    let req3 = with_types(&["A5", "A6", "B3"], &[("A6", "child")]);
    let batched = batch::hold_all(&db.pool, &engine, vec![req3])
        .await
        .remove(0)
        .unwrap();
    assert_eq!(batched.total, 3800);
    let read = holds::get_hold(&db.client().await, &user("alice"), batched.hold_id)
        .await
        .unwrap();
    assert_eq!(read, batched, "read back as made");
    let booked = bookings::confirm(
        &mut db.client().await,
        &engine,
        &user("alice"),
        via_tx.hold_id,
    )
    .await
    .unwrap();
    assert_eq!(booked.booking.tickets, via_tx.tickets);
    assert_eq!(booked.booking.total, 3800);

    // Not sold for premium; unknown; naming a seat not asked for.
    let refused = holds::hold(
        &mut db.client().await,
        &engine,
        &with_types(&["B4", "B5"], &[("B5", "child")]),
    )
    .await;
    match refused {
        Err(Error::TicketTypeUnavailable { tickets, .. }) => {
            assert_eq!(
                tickets,
                vec![(SeatLabel::parse("B5").unwrap(), child.clone())]
            )
        }
        other => panic!("expected ticket_type_unavailable, got {other:?}"),
    }
    for (req, field) in [
        (with_types(&["B4"], &[("B4", "senior")]), "ticket_types"),
        (with_types(&["B4"], &[("B5", "child")]), "ticket_types"),
    ] {
        for r in [
            holds::hold(&mut db.client().await, &engine, &req).await,
            holds::hold_pooled(&mut db.client().await, &engine, &req).await,
        ] {
            assert!(
                matches!(&r, Err(Error::Invalid { field: f, .. }) if f == field),
                "{r:?}"
            );
        }
    }
    // Best available sells the types asked, in seat-map order, only where all are sold.
    let mut best_req = BestRequest::new(show.id, user("bob"), SeatCount::parse(2, 10).unwrap());
    best_req.ticket_types = vec![child.clone(), TicketTypeName::parse("adult").unwrap()];
    let got = best::hold_best(&mut db.client().await, &engine, &best_req)
        .await
        .unwrap()
        .hold;
    assert!(
        got.seats.iter().all(|s| s.row() == "C"),
        "child is standard only"
    );
    assert_eq!(got.total, 2000);
    assert_eq!(got.tickets[0].ticket_type, child);
    let map = seats::seat_map(&db.client().await, show.id).await.unwrap();
    assert_eq!(map.ticket_types, show.ticket_types);
    assert_eq!(map.seats[0].price, Some(1200), "the default type's price");
    db.audit().await;
}

/// Fifty holds of two seats each by one user, all at once, through every path that
/// holds: a limit of six gives exactly three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_holds_of_one_user_stop_at_the_limit() {
    let db = TestDb::with_pool(40).await;
    // Best available gets rows of its own (category `vip`), so that it never takes a
    // seat another request of the test names.
    let vip = Category::parse("vip").unwrap();
    let rows = (0..12)
        .map(|i| {
            let category = (i >= 10).then(|| vip.clone());
            RowSpec::new(
                RowLabel::parse(&crate::common::row_label(i)).unwrap(),
                10,
                &[],
                category,
            )
            .unwrap()
        })
        .collect();
    let show = create(
        &db,
        NewShow::new(
            "Limited",
            chrono::Utc::now(),
            Currency::eur(),
            BTreeMap::new(),
            rows,
        )
        .unwrap()
        .with_max_seats_per_user(Some(6))
        .unwrap(),
    )
    .await;
    let engine = patient();
    let batcher = batch::Batcher::start(
        engine.clone(),
        db.pool.clone(),
        batch::BatchOptions::default(),
        booking_core::CancellationToken::new(),
    );
    let mut tasks = Vec::new();
    for i in 0..50 {
        let row = crate::common::row_label(i / 5);
        let a = format!("{row}{}", (i % 5) * 2 + 1);
        let b = format!("{row}{}", (i % 5) * 2 + 2);
        let req = request(&show, "scalper", &[&a, &b]);
        let (pool, engine, batcher) = (db.pool.clone(), engine.clone(), batcher.clone());
        let show_id = show.id;
        tasks.push(tokio::spawn(async move {
            let mut client = database::client(&pool).await.unwrap();
            match i % 4 {
                0 => holds::hold(&mut client, &engine, &req).await,
                1 => holds::hold_pooled(&mut client, &engine, &req).await,
                2 => batcher.hold(req).await,
                _ => {
                    let mut best_req = BestRequest::new(
                        show_id,
                        user("scalper"),
                        SeatCount::parse(2, 10).unwrap(),
                    );
                    best_req.category = Some(Category::parse("vip").unwrap());
                    best::hold_best(&mut client, &engine, &best_req)
                        .await
                        .map(|b| b.hold)
                }
            }
        }));
    }
    let (mut won, mut limited) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => won += 1,
            Err(Error::UserLimitReached { limit, current }) => {
                assert_eq!(limit, 6);
                assert!((5..=6).contains(&current), "current {current}");
                limited += 1;
            }
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!((won, limited), (3, 47));
    let held = db
        .count("SELECT count(*) FROM hold_seats hs JOIN holds h ON h.id = hs.hold_id WHERE h.status = 'active'")
        .await;
    assert_eq!(held, 6);

    // Another user is not limited by the first; released and expired seats do not count.
    let other = holds::hold(
        &mut db.client().await,
        &engine,
        &request(&show, "fan", &["J1", "J2"]),
    )
    .await
    .unwrap();
    let mine: Vec<_> = db
        .client()
        .await
        .query(
            "SELECT id FROM holds WHERE user_id = 'scalper' AND status = 'active' ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, uuid::Uuid>(0))
        .collect();
    let first = booking_core::HoldId::parse(&format!("{}-{}", show.id, mine[0])).unwrap();
    let second = booking_core::HoldId::parse(&format!("{}-{}", show.id, mine[1])).unwrap();
    holds::release(&mut db.client().await, &engine, &user("scalper"), first)
        .await
        .unwrap();
    db.lapse(second).await;
    holds::hold(
        &mut db.client().await,
        &engine,
        &request(&show, "scalper", &["J5", "J6"]),
    )
    .await
    .unwrap();
    holds::hold(
        &mut db.client().await,
        &engine,
        &request(&show, "scalper", &["J7", "J8"]),
    )
    .await
    .unwrap();
    let over = holds::hold(
        &mut db.client().await,
        &engine,
        &request(&show, "scalper", &["J9"]),
    )
    .await;
    assert!(
        matches!(
            over,
            Err(Error::UserLimitReached {
                limit: 6,
                current: 6
            })
        ),
        "{over:?}"
    );
    drop(other);
    db.audit().await;
}

/// Best available with `require`, `avoid` and `section`, on houses drawn at random
/// with seats taken at random: a chosen seat never breaks a filter.
#[tokio::test]
async fn best_available_never_breaks_its_filters() {
    let db = TestDb::new().await;
    let engine = db.engine();
    let mut rng = rand::thread_rng();
    for round in 0..6 {
        let mut rows = Vec::new();
        for (s, section) in ["L", "R"].iter().enumerate() {
            for r in 0..4 {
                let wheelchair: Vec<i64> = (1..=10).filter(|_| rng.gen_bool(0.3)).collect();
                let restricted: Vec<i64> = (1..=10).filter(|_| rng.gen_bool(0.3)).collect();
                rows.push(
                    row(&crate::common::row_label(s * 4 + r), 10)
                        .in_section(Some(Section::parse(section).unwrap()))
                        .with_features(features(&[
                            ("wheelchair", &wheelchair),
                            ("restricted_view", &restricted),
                        ]))
                        .unwrap(),
                );
            }
        }
        let show = create(
            &db,
            NewShow::new(
                &format!("Random {round}"),
                chrono::Utc::now(),
                Currency::eur(),
                BTreeMap::new(),
                rows,
            )
            .unwrap(),
        )
        .await;
        for i in 0..12 {
            let mut req = BestRequest::new(
                show.id,
                user(&format!("u{i}")),
                SeatCount::parse(rng.gen_range(1..=3), 10).unwrap(),
            );
            req.adjacent = rng.gen_bool(0.5);
            let section = ["L", "R"][i % 2];
            req.section = Some(Section::parse(section).unwrap());
            if i % 3 == 0 {
                req.require = vec![Feature::parse("wheelchair").unwrap()];
            }
            req.avoid = vec![Feature::parse("restricted_view").unwrap()];
            let map_before = seats::seat_map(&db.client().await, show.id).await.unwrap();
            match best::hold_best(&mut db.client().await, &engine, &req).await {
                Ok(got) => {
                    let chosen: Vec<&booking_core::Seat> = map_before
                        .seats
                        .iter()
                        .filter(|s| got.hold.seats.contains(&s.label))
                        .collect();
                    assert_eq!(chosen.len(), got.hold.seats.len());
                    for s in &chosen {
                        assert_eq!(s.section.as_deref(), Some(section), "{}", s.label);
                        assert_eq!(s.state, SeatState::Available);
                        if !req.require.is_empty() {
                            assert!(s.features.contains(&"wheelchair".to_owned()), "{}", s.label);
                        }
                    }
                    // Avoid: when any group of the section without the feature was free,
                    // the chosen group has none.
                    if chosen
                        .iter()
                        .any(|s| s.features.contains(&"restricted_view".to_owned()))
                    {
                        let mut strict = req.clone();
                        strict.avoid.clear();
                        strict.require.push(Feature::parse("wheelchair").unwrap());
                        // Not provable cheaply in general; check the simple case instead:
                        // with a single seat wanted, no free avoid-free seat existed.
                        if req.count.get() == 1 {
                            let free_clean = map_before.seats.iter().any(|s| {
                                s.section.as_deref() == Some(section)
                                    && s.state == SeatState::Available
                                    && !s.features.contains(&"restricted_view".to_owned())
                                    && (req.require.is_empty()
                                        || s.features.contains(&"wheelchair".to_owned()))
                            });
                            assert!(
                                !free_clean,
                                "picked an avoided seat while a clean one was free"
                            );
                        }
                    }
                }
                Err(Error::SeatsUnavailable { seats, .. }) => assert!(seats.is_empty()),
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
    }
    db.audit().await;
}

/// In a section, rows rank among the section's own rows: with two sections of three
/// rows each, the best row of the second section is its middle-back row, not the
/// house's.
#[tokio::test]
async fn best_available_ranks_a_section_as_a_house() {
    let db = TestDb::new().await;
    let engine = db.engine();
    let rows: Vec<RowSpec> = ["A", "B", "C", "D", "E", "F"]
        .iter()
        .enumerate()
        .map(|(i, r)| {
            row(r, 9).in_section(Some(
                Section::parse(if i < 3 { "FRONT" } else { "BACK" }).unwrap(),
            ))
        })
        .collect();
    let show = create(
        &db,
        NewShow::new(
            "Two stands",
            chrono::Utc::now(),
            Currency::eur(),
            BTreeMap::new(),
            rows,
        )
        .unwrap(),
    )
    .await;
    let mut req = BestRequest::new(show.id, user("u"), SeatCount::parse(3, 10).unwrap());
    req.section = Some(Section::parse("BACK").unwrap());
    let got = best::hold_best(&mut db.client().await, &engine, &req)
        .await
        .unwrap()
        .hold;
    // Three rows: the ideal row index is 2(3-1)/3 = 1.33, so row E (index 1 in BACK)
    // and its centre seats 4-6.
    let labels: Vec<&str> = got.seats.iter().map(|s| s.as_str()).collect();
    assert_eq!(labels, ["BACK-E4", "BACK-E5", "BACK-E6"]);
    // The next three go beside them, in the same row (of two equally central groups,
    // the left one), not to the front section's better-placed rows.
    let next = best::hold_best(&mut db.client().await, &engine, &req)
        .await
        .unwrap()
        .hold;
    let labels: Vec<&str> = next.seats.iter().map(|s| s.as_str()).collect();
    assert_eq!(labels, ["BACK-E1", "BACK-E2", "BACK-E3"]);
    let mut wrong = BestRequest::new(show.id, user("w"), SeatCount::parse(1, 10).unwrap());
    wrong.section = Some(Section::parse("NOPE").unwrap());
    let none = best::hold_best(&mut db.client().await, &engine, &wrong).await;
    assert!(matches!(none, Err(Error::SeatsUnavailable { ref seats, .. }) if seats.is_empty()));
    db.audit().await;
}
