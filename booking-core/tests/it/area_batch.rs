//! Holds of standing places written in batches (one statement for many buyers, as the
//! server writes them): each still all or none with its own answer, the same answers
//! as one by one, never over the capacity.

use crate::areas::{code, counts, create, gig, refused_areas, ticket, want};
use crate::common::{patient_on, TestDb};
use booking_core::holds::batch::{self, BatchOptions, Batcher};
use booking_core::{AreaWant, CancellationToken, Error};
use std::collections::BTreeMap;

#[tokio::test]
async fn a_batch_of_place_holds_deals_the_places_out_and_answers_each_alone() {
    let db = TestDb::new().await;
    let engine = patient_on(&db);
    let show = create(&db, gig(&[("A", 4)], 10, None)).await;
    let limited = create(&db, gig(&[("A", 4)], 10, Some(2))).await;
    let mut typed = want(&show, "t", &[], 2);
    typed.areas[0] = typed.areas[0]
        .clone()
        .with_ticket_types(vec![ticket("child"), ticket("adult")])
        .unwrap();
    let mut unknown = want(&show, "x", &[], 1);
    unknown.areas = vec![AreaWant::new(code("PIT"), 1).unwrap()];
    // On the other show, where places are left: a short area is said before types.
    let mut unsold = want(&limited, "y", &[], 1);
    unsold.areas[0] = unsold.areas[0]
        .clone()
        .with_ticket_types(vec![ticket("vip")])
        .unwrap();
    let requests = vec![
        want(&show, "a", &[], 3),     // 1-3
        typed,                        // 4-5, a child and an adult
        want(&show, "b", &[], 4),     // 6-9
        want(&show, "c", &[], 2),     // short: one left, and it stays free
        want(&show, "d", &[], 1),     // gets the last one, alone after the batch
        unknown,                      // 404
        unsold,                       // 400
        want(&limited, "e", &[], 3),  // over the limit of 2
        want(&show, "f", &["A1"], 1), // seats and places: alone
    ];
    let answers = batch::hold_all(&db.pool, &engine, requests).await;
    let places = |i: usize| match &answers[i] {
        Ok(h) => h.areas.get(&code("FLOOR")).copied().unwrap_or(0),
        Err(e) => panic!("request {i}: {e}"),
    };
    assert_eq!((places(0), places(1), places(2)), (3, 2, 4));
    let typed = answers[1].as_ref().unwrap();
    let types: Vec<&str> = typed
        .tickets
        .iter()
        .map(|t| t.ticket_type.as_str())
        .collect();
    assert_eq!(types, ["child", "adult"]);
    assert_eq!(typed.total, 1500 + 3000);
    // Of c (2), d (1) and f (1 with a seat) only one place is left: exactly one of
    // them gets it, the others are refused naming the area.
    let last: Vec<usize> = [3, 4, 8]
        .into_iter()
        .filter(|&i| answers[i].is_ok())
        .collect();
    assert!(last.len() <= 1 && !last.contains(&3), "{last:?}");
    for i in [3, 4, 8].into_iter().filter(|i| !last.contains(i)) {
        match &answers[i] {
            Err(Error::SeatsUnavailable { areas, .. }) => assert_eq!(areas, &[code("FLOOR")]),
            other => panic!("request {i}: {other:?}"),
        }
    }
    assert!(
        matches!(answers[5], Err(Error::AreaNotFound { .. })),
        "{:?}",
        answers[5]
    );
    assert!(matches!(answers[6], Err(Error::Invalid { ref field, .. }) if field == "ticket_types"));
    assert!(matches!(
        answers[7],
        Err(Error::UserLimitReached {
            limit: 2,
            current: 0
        })
    ));
    let held = 9 + last.iter().map(|&i| places(i)).sum::<u32>() as i64;
    assert_eq!(counts(&db, &show).await, (10 - held, held, 0));
    assert_eq!(counts(&db, &limited).await, (10, 0, 0));
    // Each place is in one hold, each hold's number differs.
    let mut numbers: Vec<String> = answers
        .iter()
        .flatten()
        .flat_map(|h| h.tickets.iter().map(|t| t.seat.as_str().to_owned()))
        .collect();
    let n = numbers.len();
    numbers.sort();
    numbers.dedup();
    assert_eq!(numbers.len(), n, "a place in two holds");
    db.audit().await;
}

/// A herd of 300 single-place buyers through a batcher on an area of 100: exactly 100
/// holds, 200 refusals naming the area, nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_herd_through_the_batcher_gets_exactly_the_capacity() {
    let db = TestDb::with_pool(24).await;
    let engine = patient_on(&db);
    let show = create(&db, gig(&[("A", 4)], 100, None)).await;
    let cancel = CancellationToken::new();
    let batcher = Batcher::start(
        engine.clone(),
        db.pool.clone(),
        BatchOptions {
            max_wait: std::time::Duration::from_secs(60),
            ..BatchOptions::default()
        },
        cancel.clone(),
    );
    let tasks: Vec<_> = (0..300)
        .map(|i| {
            let (b, req) = (batcher.clone(), want(&show, &format!("u{i}"), &[], 1));
            tokio::spawn(async move { b.hold(req).await })
        })
        .collect();
    let mut outcome = BTreeMap::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(h) => {
                assert_eq!(h.areas[&code("FLOOR")], 1);
                *outcome.entry("held").or_insert(0) += 1;
            }
            r => {
                assert_eq!(refused_areas(r), vec![code("FLOOR")]);
                *outcome.entry("refused").or_insert(0) += 1;
            }
        }
    }
    assert_eq!(outcome, BTreeMap::from([("held", 100), ("refused", 200)]));
    assert_eq!(counts(&db, &show).await, (0, 100, 0));
    assert!(batcher.counts().batches < 300, "{:?}", batcher.counts());
    cancel.cancel();
    db.audit().await;
}
