//! Many real concurrent transactions on the same seats, then an audit of the tables.

use crate::common::{patient_on, request, TestDb};
use booking_core::{database, holds, Error, SeatLabel};
use rand::seq::SliceRandom;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_tasks_on_one_seat_give_exactly_one_hold() {
    let db = TestDb::with_pool(32).await;
    let show = db.show(1, 12).await;
    let engine = patient_on(&db);

    let mut tasks = Vec::new();
    for i in 0..500 {
        let pool = db.pool.clone();
        let engine = engine.clone();
        let req = request(&show, &format!("user-{i}"), &["A5"]);
        tasks.push(tokio::spawn(async move {
            let mut client = database::client(&pool).await?;
            // Half take the two-round-trip path, half the transaction: they must agree.
            if i % 2 == 0 {
                holds::hold_pooled(&mut client, &engine, &req).await
            } else {
                holds::hold(&mut client, &engine, &req).await
            }
        }));
    }
    let mut won = Vec::new();
    let mut refused = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(h) => won.push(h),
            Err(Error::SeatsUnavailable { seats, .. }) => {
                assert_eq!(seats, vec![SeatLabel::parse("A5").unwrap()]);
                refused += 1;
            }
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(won.len(), 1, "exactly one winner");
    assert_eq!(refused, 499);

    let client = db.client().await;
    let active: i64 = client
        .query_one("SELECT count(*) FROM holds WHERE status = 'active'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(active, 1, "one hold row in the database");
    let points: String = client
        .query_one(
            "SELECT s.hold_id::text FROM seats s WHERE s.show_id = $1 AND s.label = 'A5'",
            &[&show.id.get()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(points, won[0].hold_id.key().to_string());
    db.audit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_four_seat_holds_are_all_or_none_without_deadlock() {
    let db = TestDb::with_pool(32).await;
    let show = db.show(1, 12).await;
    let engine = patient_on(&db);
    let all: Vec<String> = (1..=12).map(|n| format!("A{n}")).collect();

    let mut tasks = Vec::new();
    for i in 0..400 {
        let mut pick: Vec<String> = all.clone();
        pick.shuffle(&mut rand::thread_rng());
        pick.truncate(4);
        let pool = db.pool.clone();
        let engine = engine.clone();
        let labels: Vec<&str> = pick.iter().map(String::as_str).collect();
        let req = request(&show, &format!("user-{i}"), &labels);
        tasks.push(tokio::spawn(async move {
            let mut client = database::client(&pool).await?;
            let out = if i % 2 == 0 {
                holds::hold_pooled(&mut client, &engine, &req).await
            } else {
                holds::hold(&mut client, &engine, &req).await
            };
            Ok::<_, Error>((req, out))
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap().unwrap());
    }
    let winners = db.check_hold_outcomes(&show, outcomes).await;
    assert!(!winners.is_empty());
    db.audit().await;
}
