//! Standing areas against the real database: places held all-or-none with seats; never
//! more held plus booked than the capacity under hundreds of concurrent holds; returned
//! exactly by release, expiry and cancel; taken over from lapsed holds; counted once
//! by the feed's deltas; and counted by the limit per buyer.

use crate::common::{patient_on, user, TestDb};
use booking_core::{
    areas, bookings, feed, holds, seats, shows, sweeper, venues, Actor, Area, AreaCode, AreaSpec,
    AreaWant, Category, Currency, Error, HoldRequest, Layout, NewShow, NewVenue, Position,
    RowLabel, RowSpec, SeatSelection, Show, ShowLayout, TicketTypeName,
};
use rand::Rng;
use std::collections::{BTreeMap, HashMap};

pub(crate) fn code(s: &str) -> AreaCode {
    AreaCode::parse(s).unwrap()
}

fn floor(capacity: i64) -> AreaSpec {
    AreaSpec::new(
        code("FLOOR"),
        capacity,
        Some(Category::parse("standing").unwrap()),
    )
    .unwrap()
}

pub(crate) fn ticket(name: &str) -> TicketTypeName {
    TicketTypeName::parse(name).unwrap()
}

/// Rows of `standard` seats and the area FLOOR of `capacity` `standing` places; adult
/// (5000 a seat, 3000 a place, the default) and child (places only, 1500).
pub(crate) fn gig(rows: &[(&str, i64)], capacity: i64, limit: Option<i64>) -> NewShow {
    let rows = rows
        .iter()
        .map(|(r, n)| RowSpec::new(RowLabel::parse(r).unwrap(), *n, &[], None).unwrap())
        .collect();
    let standing = Category::parse("standing").unwrap();
    NewShow::with_layout(
        "Gig",
        chrono::Utc::now(),
        Currency::eur(),
        ShowLayout::Rows(Layout::with_areas(rows, vec![floor(capacity)]).unwrap()),
    )
    .unwrap()
    .with_ticket_types(vec![
        (
            ticket("adult"),
            BTreeMap::from([(Category::standard(), 5000), (standing.clone(), 3000)]),
        ),
        (ticket("child"), BTreeMap::from([(standing, 1500)])),
    ])
    .unwrap()
    .with_max_seats_per_user(limit)
    .unwrap()
}

pub(crate) async fn create(db: &TestDb, new: NewShow) -> Show {
    shows::create_show(&mut db.client().await, &new)
        .await
        .unwrap()
}

/// `who` asks for `seats` and `n` places of FLOOR (none when 0).
pub(crate) fn want(show: &Show, who: &str, seats: &[&str], n: i64) -> HoldRequest {
    let mut r = HoldRequest::new(
        show.id,
        user(who),
        SeatSelection::parse_or_none(seats, 100).unwrap(),
    );
    if n > 0 {
        r.areas = vec![AreaWant::new(code("FLOOR"), n).unwrap()];
    }
    r
}

async fn floor_now(db: &TestDb, show: &Show) -> Area {
    let list = areas::list_areas(&db.client().await, show.id)
        .await
        .unwrap();
    assert_eq!(list.len(), 1);
    list.into_iter().next().unwrap()
}

/// (available, held, booked) of FLOOR as the API reads them, checked against a count
/// of the place rows themselves.
pub(crate) async fn counts(db: &TestDb, show: &Show) -> (i64, i64, i64) {
    let a = floor_now(db, show).await;
    let rows = |filter: &str| {
        format!(
            "SELECT count(*) FROM seats WHERE show_id = {} AND area = 'FLOOR' AND {filter}",
            show.id
        )
    };
    assert_eq!(a.held, db.count(&rows("hold_id IS NOT NULL")).await);
    assert_eq!(a.booked, db.count(&rows("booking_id IS NOT NULL")).await);
    assert_eq!(a.available + a.held + a.booked, a.capacity);
    (a.available, a.held, a.booked)
}

pub(crate) fn refused_areas<T: std::fmt::Debug>(r: booking_core::Result<T>) -> Vec<AreaCode> {
    match r {
        Err(Error::SeatsUnavailable { seats, areas }) if seats.is_empty() => areas,
        other => panic!("expected a refusal for places, got {other:?}"),
    }
}

#[tokio::test]
async fn places_are_held_with_seats_confirmed_released_and_cancelled_exactly() {
    let db = TestDb::new().await;
    let engine = db.engine();
    let show = create(&db, gig(&[("A", 4)], 10, None)).await;
    let mut client = db.client().await;

    // Two seats and four places in one hold, two of them as child tickets.
    let mut req = want(&show, "alice", &["A1", "A2"], 4);
    req.areas[0] = req.areas[0]
        .clone()
        .with_ticket_types(vec![
            ticket("adult"),
            ticket("adult"),
            ticket("child"),
            ticket("child"),
        ])
        .unwrap();
    let hold = holds::hold(&mut client, &engine, &req).await.unwrap();
    assert_eq!(hold.seats.len(), 2);
    assert_eq!(hold.areas, BTreeMap::from([(code("FLOOR"), 4)]));
    let places: Vec<_> = hold.tickets.iter().filter(|t| t.area.is_some()).collect();
    assert_eq!(places.len(), 4);
    let mut numbers: Vec<&str> = places.iter().map(|t| t.seat.as_str()).collect();
    numbers.dedup();
    assert_eq!(numbers.len(), 4, "each place has its own number");
    assert!(numbers.iter().all(|n| n.starts_with("FLOOR-")));
    assert_eq!(hold.total, 2 * 5000 + 2 * 3000 + 2 * 1500);
    assert_eq!(
        holds::get_hold(&client, &user("alice"), hold.hold_id)
            .await
            .unwrap(),
        hold,
        "the hold reads back as it was made"
    );
    assert_eq!(counts(&db, &show).await, (6, 4, 0));

    // Seven more places do not fit: nothing is held.
    let r = holds::hold(&mut client, &engine, &want(&show, "bob", &[], 7)).await;
    assert_eq!(refused_areas(r), vec![code("FLOOR")]);
    assert_eq!(counts(&db, &show).await, (6, 4, 0));
    // A taken seat and a short area are named together.
    match holds::hold(&mut client, &engine, &want(&show, "bob", &["A1"], 7)).await {
        Err(Error::SeatsUnavailable { seats, areas }) => {
            assert_eq!(seats.len(), 1);
            assert_eq!(areas, vec![code("FLOOR")]);
        }
        other => panic!("expected seats_unavailable, got {other:?}"),
    }

    let booked = bookings::confirm(&mut client, &engine, &user("alice"), hold.hold_id)
        .await
        .unwrap()
        .booking;
    assert_eq!(booked.areas, hold.areas);
    assert_eq!(booked.tickets, hold.tickets);
    assert_eq!(counts(&db, &show).await, (6, 0, 4));

    let six = holds::hold(&mut client, &engine, &want(&show, "bob", &[], 6))
        .await
        .unwrap();
    assert_eq!(counts(&db, &show).await, (0, 6, 4));
    holds::release(&mut client, &engine, &user("bob"), six.hold_id)
        .await
        .unwrap();
    assert_eq!(counts(&db, &show).await, (6, 0, 4));
    bookings::cancel(
        &mut client,
        &engine,
        &Actor::User(user("alice")),
        booked.booking_id,
    )
    .await
    .unwrap();
    assert_eq!(counts(&db, &show).await, (10, 0, 0));
    // The seats are free again too.
    let map = seats::seat_map(&client, show.id).await.unwrap();
    assert_eq!(map.seats.len(), 4, "places are not seats of the map");
    assert_eq!(map.areas.len(), 1);
    assert_eq!(map.areas[0].available, 10);
    db.audit().await;
}

#[tokio::test]
async fn what_a_hold_of_places_may_not_ask_for_is_refused_before_anything_is_held() {
    let db = TestDb::new().await;
    let engine = db.engine();
    let show = create(&db, gig(&[("A", 4)], 10, None)).await;
    let mut client = db.client().await;

    let mut unknown = want(&show, "alice", &[], 1);
    unknown.areas = vec![AreaWant::new(code("PIT"), 1).unwrap()];
    let r = holds::hold(&mut client, &engine, &unknown).await;
    assert!(
        matches!(r, Err(Error::AreaNotFound { ref areas }) if areas == &[code("PIT")]),
        "{r:?}"
    );

    let nothing = want(&show, "alice", &[], 0);
    let r = holds::hold(&mut client, &engine, &nothing).await;
    assert!(
        matches!(r, Err(Error::Invalid { ref field, .. }) if field == "seats"),
        "{r:?}"
    );

    // Seats and places together count against the most seats of one hold (10).
    let r = holds::hold(
        &mut client,
        &engine,
        &want(&show, "alice", &["A1", "A2"], 9),
    )
    .await;
    assert!(
        matches!(r, Err(Error::Invalid { ref field, .. }) if field == "areas"),
        "{r:?}"
    );

    // A type the show lacks, and a type not sold for the seat's category.
    let mut vip = want(&show, "alice", &[], 1);
    vip.areas[0] = vip.areas[0]
        .clone()
        .with_ticket_types(vec![ticket("vip")])
        .unwrap();
    let r = holds::hold(&mut client, &engine, &vip).await;
    assert!(
        matches!(r, Err(Error::Invalid { ref field, .. }) if field == "ticket_types"),
        "{r:?}"
    );
    let mut child_seat = want(&show, "alice", &["A1"], 1);
    child_seat.ticket_types = vec![(
        booking_core::SeatLabel::parse("A1").unwrap(),
        ticket("child"),
    )];
    let r = holds::hold(&mut client, &engine, &child_seat).await;
    assert!(
        matches!(r, Err(Error::TicketTypeUnavailable { .. })),
        "{r:?}"
    );
    assert!(AreaWant::new(code("FLOOR"), 2)
        .unwrap()
        .with_ticket_types(vec![ticket("adult")])
        .is_err());

    assert_eq!(counts(&db, &show).await, (10, 0, 0));
    assert_eq!(db.count("SELECT count(*) FROM holds").await, 0);
}

/// 200 holds of 1 to 4 places at once, through two engines (as two processes would),
/// on an area of 100: every hold has exactly what it asked for, every refusal names the
/// area, held never passes 100; once it is full every request is refused; released and
/// expired places come back exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_place_holds_never_pass_the_capacity_and_come_back_exactly() {
    let db = TestDb::with_pool(40).await;
    let engines = [patient_on(&db), patient_on(&db)];
    let show = create(&db, gig(&[("A", 4)], 100, None)).await;

    let mut tasks = Vec::new();
    for i in 0..200 {
        let n = rand::thread_rng().gen_range(1..=4);
        let req = want(&show, &format!("u{i}"), &[], n);
        let (pool, engine) = (db.pool.clone(), engines[i % 2].clone());
        tasks.push(tokio::spawn(async move {
            let mut client = pool.get().await.unwrap();
            let out = holds::hold(&mut client, &engine, &req).await;
            (n, out)
        }));
    }
    let mut made = Vec::new();
    let mut held = 0;
    for t in tasks {
        match t.await.unwrap() {
            (n, Ok(h)) => {
                assert_eq!(h.areas, BTreeMap::from([(code("FLOOR"), n as u32)]));
                held += n;
                made.push(h);
            }
            (_, out) => assert_eq!(refused_areas(out), vec![code("FLOOR")]),
        }
    }
    assert!(held <= 100, "held {held} of 100");
    assert!(!made.is_empty());
    assert_eq!(counts(&db, &show).await, (100 - held, held, 0));
    // All or none: each hold in the table has exactly its places.
    for h in &made {
        let rows = db
            .count(&format!(
                "SELECT count(*) FROM seats WHERE show_id = {} AND hold_id = '{}'",
                show.id,
                h.hold_id.key()
            ))
            .await;
        assert_eq!(rows, i64::from(h.areas[&code("FLOOR")]));
    }

    // Fill it up one place at a time, then nobody gets another.
    let mut client = db.client().await;
    let engine = &engines[0];
    for i in held..100 {
        let h = holds::hold(&mut client, engine, &want(&show, &format!("f{i}"), &[], 1)).await;
        made.push(h.unwrap());
    }
    assert_eq!(counts(&db, &show).await, (0, 100, 0));
    let late: Vec<_> = (0..20)
        .map(|i| {
            let (pool, engine) = (db.pool.clone(), engines[i % 2].clone());
            let req = want(&show, &format!("late{i}"), &[], 1);
            tokio::spawn(async move {
                let mut client = pool.get().await.unwrap();
                holds::hold(&mut client, &engine, &req).await
            })
        })
        .collect();
    for t in late {
        assert_eq!(refused_areas(t.await.unwrap()), vec![code("FLOOR")]);
    }

    // Release three holds, let two lapse and be swept: exactly their places return.
    let mut freed = 0;
    for h in &made[..3] {
        holds::release(&mut client, engine, &h.user_id, h.hold_id)
            .await
            .unwrap();
        freed += h.areas[&code("FLOOR")];
    }
    for h in &made[3..5] {
        db.lapse(h.hold_id).await;
        freed += h.areas[&code("FLOOR")];
    }
    sweeper::sweep_once(&mut client, engine, 100).await.unwrap();
    let freed = i64::from(freed);
    assert_eq!(counts(&db, &show).await, (freed, 100 - freed, 0));
    // And exactly that many can be held again.
    for i in 0..freed {
        holds::hold(
            &mut client,
            engine,
            &want(&show, &format!("again{i}"), &[], 1),
        )
        .await
        .unwrap();
    }
    let r = holds::hold(&mut client, engine, &want(&show, "one-more", &[], 1)).await;
    assert_eq!(refused_areas(r), vec![code("FLOOR")]);
    assert_eq!(counts(&db, &show).await, (0, 100, 0));
    db.audit().await;
}

/// Holds of seats and places race holds of seats only and of places only: no hold is
/// ever partial, no seat is in two holds, the area never passes its capacity.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mixed_holds_race_seat_only_and_place_only_holds_all_or_none() {
    let db = TestDb::with_pool(40).await;
    let engine = patient_on(&db);
    let show = create(&db, gig(&[("A", 6)], 8, None)).await;
    let seat = |i: usize| format!("A{}", i % 6 + 1);

    let mut tasks = Vec::new();
    for i in 0..150 {
        let mut rng = rand::thread_rng();
        let (seats, n): (Vec<String>, i64) = match i % 3 {
            0 => (vec![seat(rng.gen_range(0..6))], 0),
            1 => (vec![], rng.gen_range(1..=3)),
            _ => (vec![seat(rng.gen_range(0..6))], rng.gen_range(1..=2)),
        };
        let labels: Vec<&str> = seats.iter().map(String::as_str).collect();
        let req = want(&show, &format!("u{i}"), &labels, n);
        let (pool, engine) = (db.pool.clone(), engine.clone());
        tasks.push(tokio::spawn(async move {
            let mut client = pool.get().await.unwrap();
            let out = holds::hold(&mut client, &engine, &req).await;
            (req, out)
        }));
    }
    let mut asked: HashMap<uuid::Uuid, usize> = HashMap::new();
    let mut seat_owner: HashMap<String, uuid::Uuid> = HashMap::new();
    let mut places = 0;
    for t in tasks {
        let (req, out) = t.await.unwrap();
        match out {
            Ok(h) => {
                assert_eq!(h.seats, req.seats.labels().to_vec());
                let n = req.areas.first().map_or(0, |w| w.count);
                assert_eq!(h.areas.get(&code("FLOOR")).copied().unwrap_or(0), n);
                assert_eq!(h.tickets.len(), req.size());
                places += n;
                for s in &h.seats {
                    let twice = seat_owner.insert(s.as_str().to_owned(), h.hold_id.key());
                    assert!(twice.is_none(), "{s} is in two holds");
                }
                asked.insert(h.hold_id.key(), req.size());
            }
            Err(Error::SeatsUnavailable { seats, areas }) => {
                assert!(
                    !seats.is_empty() || !areas.is_empty(),
                    "a refusal names something"
                );
                assert!(seats.iter().all(|s| req.seats.labels().contains(s)));
                assert!(areas.iter().all(|a| req.areas.iter().any(|w| &w.area == a)));
            }
            Err(e) => panic!("unexpected error (a deadlock would show here): {e}"),
        }
    }
    assert!(places <= 8);
    assert_eq!(
        counts(&db, &show).await,
        (8 - i64::from(places), i64::from(places), 0)
    );
    // Every hold in the table is one that was answered, with exactly its rows.
    let rows = db
        .client()
        .await
        .query(
            "SELECT h.id, count(s.id) AS n FROM holds h
               LEFT JOIN seats s ON s.show_id = h.show_id AND s.hold_id = h.id
              GROUP BY h.id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), asked.len());
    for r in rows {
        let id: uuid::Uuid = r.get("id");
        assert_eq!(
            r.get::<_, i64>("n") as usize,
            asked[&id],
            "hold {id} is partial"
        );
    }
    db.audit().await;
}

/// A lapsed hold's places are taken over by the next buyer when nothing else is free;
/// they count as held until the sweeper expires the hold, and the feed's deltas, added
/// to a map read before, give the counts of now, every place counted once.
#[tokio::test]
async fn lapsed_places_are_taken_over_and_the_feed_counts_each_place_once() {
    let db = TestDb::new().await;
    let engine = db.engine();
    let show = create(&db, gig(&[("A", 2)], 3, None)).await;
    let mut client = db.client().await;
    let before = seats::seat_map(&client, show.id).await.unwrap();

    let first = holds::hold(&mut client, &engine, &want(&show, "alice", &[], 3))
        .await
        .unwrap();
    db.lapse(first.hold_id).await;
    // Nothing is free, but alice's hold has lapsed: bob takes two of its places.
    let second = holds::hold(&mut client, &engine, &want(&show, "bob", &["A1"], 2))
        .await
        .unwrap();
    assert_eq!(second.areas[&code("FLOOR")], 2);
    // Alice's third place still points at her (lapsed) hold: still counted held.
    assert_eq!(counts(&db, &show).await, (0, 3, 0));
    let swept = sweeper::sweep_once(&mut client, &engine, 100)
        .await
        .unwrap();
    assert_eq!(swept.expired, vec![first.hold_id]);
    assert_eq!(counts(&db, &show).await, (1, 2, 0));

    // The map read first plus every event its snapshot did not see.
    let snapshot = before.snapshot.clone().unwrap();
    // The feed gives an event once no older transaction runs (other tests' may): wait.
    let mut events = Vec::new();
    for _ in 0..600 {
        events = feed::read_for(
            &client,
            engine.settings(),
            Some(show.id),
            Position::START,
            None,
            100,
        )
        .await
        .unwrap();
        if events.len() >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(events.len(), 3, "hold, hold, expire");
    let mut area = before.areas[0].clone();
    for e in events.iter().filter(|e| !snapshot.sees(e.position.xid())) {
        for c in &e.areas {
            assert_eq!(c.area, code("FLOOR"));
            area.available += c.available;
            area.held += c.held;
            area.booked += c.booked;
        }
    }
    let now = floor_now(&db, &show).await;
    assert_eq!(
        (area.available, area.held, area.booked),
        (now.available, now.held, now.booked)
    );
    // The take-over moved places between holds: no count changed for them.
    let takeover = &events[1].areas[0];
    assert_eq!((takeover.available, takeover.held), (0, 0));
    assert_eq!(events[1].seats.len(), 1, "bob's seat A1");
    db.audit().await;
}

#[tokio::test]
async fn the_limit_per_buyer_counts_places() {
    let db = TestDb::new().await;
    let engine = db.engine();
    let show = create(&db, gig(&[("A", 4)], 10, Some(4))).await;
    let mut client = db.client().await;
    holds::hold(&mut client, &engine, &want(&show, "alice", &["A1"], 2))
        .await
        .unwrap();
    let r = holds::hold(&mut client, &engine, &want(&show, "alice", &[], 2)).await;
    assert!(
        matches!(
            r,
            Err(Error::UserLimitReached {
                limit: 4,
                current: 3
            })
        ),
        "{r:?}"
    );
    holds::hold(&mut client, &engine, &want(&show, "alice", &[], 1))
        .await
        .unwrap();
    holds::hold(&mut client, &engine, &want(&show, "bob", &[], 4))
        .await
        .unwrap();
    assert_eq!(counts(&db, &show).await, (3, 7, 0));
    db.audit().await;
}

#[tokio::test]
async fn a_venue_keeps_its_areas_and_shows_copy_them() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let rows = vec![RowSpec::new(RowLabel::parse("A").unwrap(), 2, &[], None).unwrap()];
    let layout = Layout::with_areas(rows, vec![floor(50)]).unwrap();
    let venue = venues::create_venue(&client, &NewVenue::new("Club", layout).unwrap())
        .await
        .unwrap();
    assert_eq!(venue.places_total, 50);
    assert_eq!(venue.areas, vec![floor(50)]);
    let new = NewShow::with_layout(
        "Night",
        chrono::Utc::now(),
        Currency::eur(),
        ShowLayout::Venue(venue.venue_id),
    )
    .unwrap();
    let show = create(&db, new).await;
    assert_eq!(show.seats_total, 2, "places are not seats");
    let floor_area = floor_now(&db, &show).await;
    assert_eq!((floor_area.capacity, floor_area.available), (50, 50));
    // A venue (and a show) of standing areas only.
    let only = Layout::with_areas(vec![], vec![floor(5)]).unwrap();
    let venue = venues::create_venue(&client, &NewVenue::new("Field", only).unwrap())
        .await
        .unwrap();
    assert_eq!(venue.seats_total, 0);
    assert!(Layout::with_areas(vec![], vec![]).is_err());
    assert!(Layout::with_areas(vec![], vec![floor(5), floor(6)]).is_err());
}

/// Refusals come in the documented order whatever mix a hold asks for: a short area
/// with the taken seats, before ticket types; the seats' and the areas' unsold types in
/// one answer.
#[tokio::test]
async fn refusals_of_seats_and_places_come_together_and_in_order() {
    let db = TestDb::new().await;
    let engine = db.engine();
    let standing = Category::parse("standing").unwrap();
    let rows = vec![RowSpec::new(RowLabel::parse("A").unwrap(), 4, &[], None).unwrap()];
    let new = NewShow::with_layout(
        "Typed gig",
        chrono::Utc::now(),
        Currency::eur(),
        ShowLayout::Rows(Layout::with_areas(rows, vec![floor(2)]).unwrap()),
    )
    .unwrap()
    .with_ticket_types(vec![
        (
            ticket("adult"),
            BTreeMap::from([(Category::standard(), 5000), (standing.clone(), 3000)]),
        ),
        (ticket("child"), BTreeMap::from([(standing, 1500)])),
        (
            ticket("senior"),
            BTreeMap::from([(Category::standard(), 4000)]),
        ),
    ])
    .unwrap();
    let show = create(&db, new).await;
    let mut client = db.client().await;
    let a1 = booking_core::SeatLabel::parse("A1").unwrap();

    let mut both = want(&show, "alice", &["A1"], 1);
    both.ticket_types = vec![(a1.clone(), ticket("child"))];
    both.areas[0] = both.areas[0]
        .clone()
        .with_ticket_types(vec![ticket("senior")])
        .unwrap();
    match holds::hold(&mut client, &engine, &both).await {
        Err(Error::TicketTypeUnavailable { tickets, areas }) => {
            assert_eq!(tickets, vec![(a1.clone(), ticket("child"))]);
            assert_eq!(areas, vec![(code("FLOOR"), ticket("senior"))]);
        }
        other => panic!("expected both refusals, got {other:?}"),
    }

    // Once the area is full, its shortness is said first, with or without seats.
    holds::hold(&mut client, &engine, &want(&show, "bob", &[], 2))
        .await
        .unwrap();
    let r = holds::hold(&mut client, &engine, &both).await;
    assert_eq!(refused_areas(r), vec![code("FLOOR")]);
    let mut places_only = want(&show, "carol", &[], 1);
    places_only.areas[0] = places_only.areas[0]
        .clone()
        .with_ticket_types(vec![ticket("senior")])
        .unwrap();
    let r = holds::hold(&mut client, &engine, &places_only).await;
    assert_eq!(refused_areas(r), vec![code("FLOOR")]);
    assert_eq!(counts(&db, &show).await, (0, 2, 0));
}
