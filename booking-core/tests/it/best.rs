//! Best available against a real PostgreSQL: what it picks, and many concurrent
//! callers (with ordinary holds and confirms in the mix) followed by an audit.

use crate::common::{patient_on, request, row_label, user, TestDb};
use booking_core::best;
use booking_core::Engine;
use booking_core::{
    bookings, database, holds, shows, BestRequest, Category, Currency, Error, NewShow, RowLabel,
    RowSpec, SeatCount, Show, UserId,
};
use rand::Rng;
use std::collections::{BTreeMap, HashMap, HashSet};

/// A show of `rows` rows of `seats` seats with aisles after `aisles`; rows listed in
/// `premium` are of category `premium`.
async fn house(db: &TestDb, rows: usize, seats: i64, aisles: &[i64], premium: &[usize]) -> Show {
    let specs = (0..rows)
        .map(|i| {
            let category = premium
                .contains(&i)
                .then(|| Category::parse("premium").unwrap());
            RowSpec::new(
                RowLabel::parse(&row_label(i)).unwrap(),
                seats,
                aisles,
                category,
            )
            .unwrap()
        })
        .collect();
    let mut prices = BTreeMap::new();
    prices.insert(Category::standard(), 1000);
    prices.insert(Category::parse("premium").unwrap(), 2500);
    let new = NewShow::new("Best", chrono::Utc::now(), Currency::eur(), prices, specs).unwrap();
    shows::create_show(&mut db.client().await, &new)
        .await
        .unwrap()
}

fn best_request(
    show: &Show,
    who: &str,
    count: i64,
    category: Option<&str>,
    adjacent: bool,
) -> BestRequest {
    BestRequest {
        show: show.id,
        user: user(who),
        count: SeatCount::parse(count, 10).unwrap(),
        category: category.map(|c| Category::parse(c).unwrap()),
        adjacent,
        ..BestRequest::new(show.id, user(who), SeatCount::parse(count, 10).unwrap())
    }
}

/// One seat of the map as the ranking sees it, with its label.
struct MapSeat {
    label: String,
    row: String,
    aisle_after: bool,
    free: bool,
}

async fn map(db: &TestDb, show: &Show) -> Vec<MapSeat> {
    let m = booking_core::seats::seat_map(&db.client().await, show.id)
        .await
        .unwrap();
    m.seats
        .into_iter()
        .map(|s| MapSeat {
            label: s.label.as_str().to_owned(),
            row: s.row,
            aisle_after: s.aisle_after,
            free: s.state == booking_core::SeatState::Available,
        })
        .collect()
}

/// Whether `labels` are side by side in one row, not across an aisle.
fn adjacent(seats: &[MapSeat], labels: &[String]) -> bool {
    let idx: Vec<usize> = labels
        .iter()
        .map(|l| seats.iter().position(|s| &s.label == l).unwrap())
        .collect();
    idx.windows(2)
        .all(|w| w[1] == w[0] + 1 && seats[w[0]].row == seats[w[1]].row && !seats[w[0]].aisle_after)
}

/// Whether some `count` free seats side by side exist in the map (a brute-force check,
/// independent of the ranking code).
fn some_group_free(seats: &[MapSeat], count: usize) -> bool {
    let mut run = 0;
    for (i, s) in seats.iter().enumerate() {
        let continues = i > 0 && seats[i - 1].row == s.row && !seats[i - 1].aisle_after;
        run = if !s.free {
            0
        } else if continues {
            run + 1
        } else {
            1
        };
        if run >= count {
            return true;
        }
    }
    false
}

fn labels(h: &booking_core::Hold) -> Vec<String> {
    h.seats.iter().map(|s| s.as_str().to_owned()).collect()
}

#[tokio::test]
async fn a_lone_caller_gets_the_centre_of_the_row_two_thirds_back() {
    let db = TestDb::new().await;
    // Rows A..D of 10, aisles after 3 and 7: the ideal row is C; the centre block C4..C7.
    let show = house(&db, 4, 10, &[3, 7], &[]).await;
    let mut client = db.client().await;
    let got = best::hold_best(
        &mut client,
        &patient_on(&db),
        &best_request(&show, "u1", 4, None, true),
    )
    .await
    .unwrap();
    assert_eq!(labels(&got.hold), ["C4", "C5", "C6", "C7"]);
    assert_eq!(got.hold.total, 4000);
    assert_eq!(got.lock_attempts, 1);
    // The next pair: C's centre block is full and each of its side blocks has three
    // seats, so any pair in C strands one; but no row as good as C has a clean pair,
    // so C it is, nearest the centre (C2+C3 and C8+C9 are as central: the left one).
    let got = best::hold_best(
        &mut client,
        &patient_on(&db),
        &best_request(&show, "u2", 2, None, true),
    )
    .await
    .unwrap();
    assert_eq!(labels(&got.hold), ["C2", "C3"]);
    // Four more: C has no run of four left; B and D are of one tier and D is further
    // back; its centre block D4..D7 fits exactly.
    let got = best::hold_best(
        &mut client,
        &patient_on(&db),
        &best_request(&show, "u3", 4, None, true),
    )
    .await
    .unwrap();
    assert_eq!(labels(&got.hold), ["D4", "D5", "D6", "D7"]);
    db.audit().await;
}

#[tokio::test]
async fn categories_unknown_shows_and_full_houses_answer_clearly() {
    let db = TestDb::new().await;
    let show = house(&db, 3, 6, &[], &[0]).await;
    let mut client = db.client().await;
    let s = patient_on(&db);
    // Premium is row A only.
    let got = best::hold_best(
        &mut client,
        &s,
        &best_request(&show, "u1", 2, Some("premium"), true),
    )
    .await
    .unwrap();
    assert!(labels(&got.hold).iter().all(|l| l.starts_with('A')));
    assert_eq!(got.hold.total, 5000);
    // A category the show does not have fits nothing: 409 with no seats.
    match best::hold_best(
        &mut client,
        &s,
        &best_request(&show, "u1", 1, Some("balcony"), true),
    )
    .await
    {
        Err(Error::SeatsUnavailable { seats, .. }) => assert!(seats.is_empty()),
        other => panic!("expected SeatsUnavailable, got {other:?}"),
    }
    // Seven side by side fit nowhere in rows of six.
    assert!(matches!(
        best::hold_best(&mut client, &s, &best_request(&show, "u1", 7, None, true)).await,
        Err(Error::SeatsUnavailable { .. })
    ));
    // Without `adjacent`, seven seats close together are found.
    let got = best::hold_best(&mut client, &s, &best_request(&show, "u1", 7, None, false))
        .await
        .unwrap();
    assert_eq!(got.hold.seats.len(), 7);
    let mut other = best_request(&show, "u1", 1, None, true);
    other.show = booking_core::ShowId::parse("999999").unwrap();
    assert!(matches!(
        best::hold_best(&mut client, &s, &other).await,
        Err(Error::ShowNotFound)
    ));
    db.audit().await;
}

#[tokio::test]
async fn a_lapsed_hold_blocks_nobody() {
    let db = TestDb::new().await;
    let show = db.show(1, 2).await;
    let mut client = db.client().await;
    let s = patient_on(&db);
    let first = best::hold_best(&mut client, &s, &best_request(&show, "u1", 2, None, true))
        .await
        .unwrap();
    assert!(matches!(
        best::hold_best(&mut client, &s, &best_request(&show, "u2", 2, None, true)).await,
        Err(Error::SeatsUnavailable { .. })
    ));
    db.lapse(first.hold.hold_id).await;
    let second = best::hold_best(&mut client, &s, &best_request(&show, "u2", 2, None, true))
        .await
        .unwrap();
    assert_eq!(labels(&second.hold), ["A1", "A2"]);
    db.audit().await;
}

#[tokio::test]
async fn best_available_works_inside_the_callers_transaction() {
    let db = TestDb::new().await;
    let show = db.show(2, 4).await;
    let mut client = db.client().await;
    let mut tx = client.transaction().await.unwrap();
    let got = best::hold_best(
        &mut tx,
        &patient_on(&db),
        &best_request(&show, "u1", 2, None, true),
    )
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    // Rolled back with the caller's transaction: the seats are free again.
    let seats = map(&db, &show).await;
    assert!(seats.iter().all(|s| s.free), "{:?}", labels(&got.hold));
    db.audit().await;
}

#[tokio::test]
async fn a_group_locked_by_another_transaction_is_skipped_not_waited_for() {
    let db = TestDb::new().await;
    let show = db.show(1, 4).await;
    // Another transaction (an ordinary hold in flight, or a caller of another process)
    // holds the row locks of the best pair, A1+A2, and keeps them.
    let mut other = db.client().await;
    let locker = other.transaction().await.unwrap();
    locker
        .query(
            "SELECT id FROM seats WHERE show_id = $1 AND label IN ('A1', 'A2') ORDER BY id FOR UPDATE",
            &[&show.id.get()],
        )
        .await
        .unwrap();
    let engine = Engine::new(booking_core::Settings {
        lock_timeout: std::time::Duration::from_millis(300),
        ..db.settings()
    });
    let mut client = db.client().await;
    // The call returns while the locks are still held, so it cannot have waited on them.
    let got = best::hold_best(
        &mut client,
        &engine,
        &best_request(&show, "u1", 2, None, true),
    )
    .await
    .unwrap();
    assert_eq!(labels(&got.hold), ["A3", "A4"]);
    assert_eq!(got.lock_attempts, 2, "A1+A2 skipped, then A3+A4");
    // Only the locked pair fits now: the answer is 503-busy, not 409 (it may be freed).
    match best::hold_best(
        &mut client,
        &engine,
        &best_request(&show, "u2", 2, None, true),
    )
    .await
    {
        Err(Error::Busy(_)) => {}
        other => panic!("expected Busy while the only group is locked, got {other:?}"),
    }
    locker.rollback().await.unwrap();
    let got = best::hold_best(
        &mut client,
        &engine,
        &best_request(&show, "u2", 2, None, true),
    )
    .await
    .unwrap();
    assert_eq!(labels(&got.hold), ["A1", "A2"]);
    db.audit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_concurrent_requests_on_two_hundred_seats() {
    let db = TestDb::with_pool(32).await;
    // 10 rows of 20, aisles after 5 and 15: 200 seats.
    let show = house(&db, 10, 20, &[5, 15], &[]).await;
    let engine = patient_on(&db);
    let mut tasks = Vec::new();
    for i in 0..300 {
        let count = rand::thread_rng().gen_range(2..=4);
        let req = best_request(&show, &format!("user-{i}"), count, None, true);
        let pool = db.pool.clone();
        let engine = engine.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = database::client(&pool).await?;
            let out = best::hold_best(&mut client, &engine, &req).await;
            Ok::<_, Error>((count, out))
        }));
    }
    let mut won = Vec::new();
    let mut refused = Vec::new();
    let mut attempts = 0;
    for t in tasks {
        let (count, out) = t.await.unwrap().unwrap();
        match out {
            Ok(got) => {
                assert_eq!(got.hold.seats.len(), count as usize);
                attempts += got.lock_attempts;
                won.push(got.hold);
            }
            Err(Error::SeatsUnavailable { seats, .. }) => {
                assert!(seats.is_empty());
                refused.push(count as usize);
            }
            Err(e) => panic!("unexpected error (a deadlock or a give-up would show here): {e}"),
        }
    }
    let seats = map(&db, &show).await;
    // No seat in two holds, and every success side by side.
    let mut seen = HashSet::new();
    for h in &won {
        for s in &h.seats {
            assert!(seen.insert(s.clone()), "{s} is in two holds");
        }
        assert!(
            adjacent(&seats, &labels(h)),
            "not side by side: {:?}",
            labels(h)
        );
    }
    // Now that everyone has answered: nothing fitting a refused request is free.
    for count in &refused {
        assert!(
            !some_group_free(&seats, *count),
            "a request for {count} got 409 while {count} seats side by side are still free"
        );
    }
    assert!(
        !won.is_empty() && !refused.is_empty(),
        "300 requests oversell 200 seats"
    );
    eprintln!(
        "{} holds, {} refused, {:.2} lock attempts per hold, {} seats free at the end",
        won.len(),
        refused.len(),
        f64::from(attempts) / won.len() as f64,
        seats.iter().filter(|s| s.free).count()
    );
    // The database agrees with the answers.
    let client = db.client().await;
    let pointed: HashMap<String, uuid::Uuid> = client
        .query(
            "SELECT label, hold_id FROM seats WHERE show_id = $1 AND hold_id IS NOT NULL",
            &[&show.id.get()],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(pointed.len(), seen.len());
    for h in &won {
        for s in &h.seats {
            assert_eq!(pointed.get(s.as_str()), Some(&h.hold_id.key()));
        }
    }
    db.audit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn best_available_races_ordinary_holds_and_confirms() {
    let db = TestDb::with_pool(32).await;
    let show = house(&db, 8, 16, &[4, 12], &[6, 7]).await;
    let engine = patient_on(&db);
    let all: Vec<String> = map(&db, &show).await.into_iter().map(|s| s.label).collect();
    let mut tasks = Vec::new();
    for i in 0..300 {
        let pool = db.pool.clone();
        let engine = engine.clone();
        let who = format!("user-{i}");
        let kind = i % 3;
        let count = rand::thread_rng().gen_range(1..=5);
        let category = (i % 5 == 0).then_some("premium");
        let adjacent_wanted = i % 7 != 0;
        let manual: Vec<String> = {
            let mut rng = rand::thread_rng();
            let start = rng.gen_range(0..all.len() - 3);
            all[start..start + 3].to_vec()
        };
        let show = show.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = database::client(&pool).await?;
            let held = if kind == 0 {
                let labels: Vec<&str> = manual.iter().map(String::as_str).collect();
                holds::hold(&mut client, &engine, &request(&show, &who, &labels)).await
            } else {
                let req = best_request(&show, &who, count, category, adjacent_wanted);
                best::hold_best(&mut client, &engine, &req)
                    .await
                    .map(|b| b.hold)
            };
            let hold = match held {
                Ok(h) => h,
                Err(Error::SeatsUnavailable { .. }) => return Ok(0),
                Err(e) => return Err(e),
            };
            // Two of three holds are confirmed at once, racing the other requests.
            if kind != 2 {
                bookings::confirm(&mut client, &engine, &UserId::parse(&who)?, hold.hold_id)
                    .await?;
            }
            Ok::<_, Error>(hold.seats.len())
        }));
    }
    let mut seats_taken = 0;
    for t in tasks {
        seats_taken += t
            .await
            .unwrap()
            .expect("no error but 409 (no deadlock, no give-up)");
    }
    let free = map(&db, &show).await.iter().filter(|s| s.free).count();
    assert_eq!(
        seats_taken + free,
        all.len(),
        "every seat held or booked once, or free"
    );
    db.audit().await;
}
