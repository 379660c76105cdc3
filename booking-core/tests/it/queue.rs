//! The waiting room: a shuffled pre-queue admitted exactly once each at the configured
//! rate by concurrent admitters, late joiners in arrival order, takings refused without
//! an admission, and the allowance held against many concurrent takings of one buyer.

use crate::common::{request, user, TestDb};
use booking_core::queue::{self, admit, QueueState};
use booking_core::{best, holds, shows, Actor, BestRequest, Error, HoldAddition, QueueSettings};
use booking_core::{SeatCount, SeatSelection, Show, ShowChanges};
use chrono::{Duration, Utc};
use futures_util::{stream, StreamExt};

/// A show of `rows` x 10 seats with a queue, its sales an hour away.
async fn queued(db: &TestDb, rows: usize, rate: i64, max_seats: i64) -> Show {
    let show = db.show(rows, 10).await;
    shows::update(
        &mut db.client().await,
        show.id,
        &ShowChanges {
            sales_start: Some(Some(Utc::now() + Duration::hours(1))),
            queue: Some(Some(QueueSettings::parse(rate, 10, max_seats).unwrap())),
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

/// Sales start now (a second ago, so the database clock has passed it too).
async fn start(db: &TestDb, show: &Show) {
    shows::update(
        &mut db.client().await,
        show.id,
        &ShowChanges {
            sales_start: Some(Some(Utc::now() - Duration::seconds(1))),
            ..Default::default()
        },
    )
    .await
    .unwrap();
}

/// Admits until `n` entries are admitted, with two admitters at once; returns how many
/// each pass said it admitted, summed.
async fn admit_all(db: &TestDb, n: i64) -> u64 {
    let engine = crate::common::patient();
    let admitter = || async {
        let mut client = db.client().await;
        let mut total = 0;
        loop {
            total += admit::admit_once(&mut client, &engine)
                .await
                .unwrap()
                .admitted;
            let done: i64 = client
                .query_one(
                    "SELECT count(*) FROM queue_entries WHERE admitted_at IS NOT NULL",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            if done >= n {
                return total;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    };
    let (a, b) = tokio::join!(admitter(), admitter());
    a + b
}

#[tokio::test]
async fn a_pre_queue_of_1000_is_admitted_once_each_in_a_shuffled_order_at_the_rate() {
    let db = TestDb::new().await;
    // 60,000 a minute: one admission a millisecond.
    let show = queued(&db, 1, 60_000, 6).await;
    let names: Vec<String> = (0..1000).map(|i| format!("u{i:04}")).collect();
    let joined: Vec<bool> = stream::iter(names.iter())
        .map(|n| async {
            let mut c = db.client().await;
            queue::join(&mut c, show.id, &user(n))
                .await
                .unwrap()
                .created
        })
        .buffered(8)
        .collect()
        .await;
    assert!(joined.iter().all(|c| *c), "every first join creates");
    // Joining again gives the same entry, not a second place.
    let again = queue::join(&mut db.client().await, show.id, &user("u0007"))
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.status.position, None, "no order before the start");
    assert_eq!(db.count("SELECT count(*) FROM queue_entries").await, 1000);

    start(&db, &show).await;
    let passes = admit_all(&db, 1000).await;
    assert_eq!(
        passes, 1000,
        "the passes of both admitters admitted 1000 in all"
    );

    let client = db.client().await;
    let rows = client
        .query(
            "SELECT e.user_id, e.position, e.admitted_at, sh.sales_start, q.admitted_through
               FROM queue_entries e JOIN shows sh ON sh.id = e.show_id
               JOIN queues q ON q.show_id = e.show_id
              ORDER BY e.joined_at, e.user_id",
            &[],
        )
        .await
        .unwrap();
    let mut positions: Vec<i64> = rows.iter().map(|r| r.get("position")).collect();
    let arrival = positions.clone();
    positions.sort_unstable();
    assert_eq!(positions, (1..=1000).collect::<Vec<_>>(), "a permutation");
    assert_ne!(arrival, positions, "not the arrival order");
    // Spearman's rho of arrival against position: ~0 for a uniform shuffle (its
    // standard deviation is 1/sqrt(999), about 0.03).
    let n = 1000f64;
    let d2: f64 = arrival
        .iter()
        .enumerate()
        .map(|(i, p)| ((i as f64 + 1.0) - *p as f64).powi(2))
        .sum();
    let rho = 1.0 - 6.0 * d2 / (n * (n * n - 1.0));
    assert!(rho.abs() < 0.2, "arrival predicts position: rho {rho}");
    assert_eq!(rows[0].get::<_, i64>("admitted_through"), 1000);

    // Admission times: the first at sales_start, then exactly one interval apart.
    let mut by_pos: Vec<(i64, chrono::DateTime<Utc>)> = rows
        .iter()
        .map(|r| (r.get("position"), r.get("admitted_at")))
        .collect();
    by_pos.sort_unstable();
    let start_at: chrono::DateTime<Utc> = rows[0].get("sales_start");
    assert_eq!(by_pos[0].1, start_at);
    for w in by_pos.windows(2) {
        assert_eq!(w[1].1 - w[0].1, Duration::milliseconds(1), "at {}", w[1].0);
    }
    let now: chrono::DateTime<Utc> = client.query_one("SELECT now()", &[]).await.unwrap().get(0);
    assert!(
        by_pos[999].1 <= now,
        "nobody admitted ahead of the schedule"
    );
    db.audit().await;
}

#[tokio::test]
async fn joiners_after_the_start_go_behind_in_arrival_order() {
    let db = TestDb::new().await;
    let show = queued(&db, 1, 1, 6).await;
    for n in ["early1", "early2", "early3"] {
        queue::join(&mut db.client().await, show.id, &user(n))
            .await
            .unwrap();
    }
    start(&db, &show).await;
    let mut late = Vec::new();
    for n in ["late1", "late2", "late3", "late4"] {
        let j = queue::join(&mut db.client().await, show.id, &user(n))
            .await
            .unwrap();
        assert!(j.created);
        late.push(j.status.position.unwrap());
    }
    // The first late join shuffled the pre-queue (1 to 3): the late ones are 4 to 7.
    assert_eq!(late, vec![4, 5, 6, 7]);
    let me = queue::status(&db.client().await, show.id, &user("late2"))
        .await
        .unwrap();
    assert_eq!(
        (me.state, me.position, me.ahead),
        (QueueState::Waiting, Some(5), Some(4))
    );
    assert!(me.estimated_wait_seconds.unwrap() > 0);
    assert!(matches!(
        queue::status(&db.client().await, show.id, &user("nobody")).await,
        Err(Error::NotInQueue)
    ));
}

#[tokio::test]
async fn takings_need_a_live_admission() {
    let db = TestDb::new().await;
    let engine = crate::common::patient();
    // One a minute: the first is admitted at the start, the second a minute later.
    let show = queued(&db, 2, 1, 6).await;
    for n in ["first", "second"] {
        queue::join(&mut db.client().await, show.id, &user(n))
            .await
            .unwrap();
    }
    start(&db, &show).await;
    admit::admit_once(&mut db.client().await, &engine)
        .await
        .unwrap();
    let first_pos: i64 = db
        .count("SELECT position FROM queue_entries WHERE user_id = 'first'")
        .await;
    let (admitted, waiting) = match first_pos {
        1 => ("first", "second"),
        _ => ("second", "first"),
    };
    let mut c = db.client().await;
    let hold = |who: &str, seat: &str| request(&show, who, &[seat]);
    for who in [waiting, "stranger"] {
        assert!(matches!(
            holds::hold(&mut c, &engine, &hold(who, "A1")).await,
            Err(Error::NotAdmitted)
        ));
        assert!(matches!(
            holds::hold_pooled(&mut c, &engine, &hold(who, "A1")).await,
            Err(Error::NotAdmitted)
        ));
        let best = BestRequest::new(show.id, user(who), SeatCount::parse(1, 10).unwrap());
        assert!(matches!(
            best::hold_best(&mut c, &engine, &best).await,
            Err(Error::NotAdmitted)
        ));
    }
    let h = holds::hold_pooled(&mut c, &engine, &hold(admitted, "A1"))
        .await
        .unwrap();
    // The admission ends: no more takings, the hold stays.
    c.execute(
        "UPDATE queue_entries SET admission_expires_at = now() - interval '1 second'
          WHERE user_id = $1",
        &[&admitted],
    )
    .await
    .unwrap();
    let addition = HoldAddition {
        seats: SeatSelection::parse(["A2"], 10).unwrap(),
        areas: vec![],
        ticket_types: vec![],
    };
    assert!(matches!(
        holds::add(
            &mut c,
            &engine,
            &Actor::User(user(admitted)),
            h.hold_id,
            &addition
        )
        .await,
        Err(Error::AdmissionExpired)
    ));
    assert!(matches!(
        holds::hold(&mut c, &engine, &hold(admitted, "A3")).await,
        Err(Error::AdmissionExpired)
    ));
    let me = queue::status(&c, show.id, &user(admitted)).await.unwrap();
    assert_eq!((me.state, me.seats_taken), (QueueState::Expired, 1));
    db.audit().await;
}

#[tokio::test]
async fn an_admitted_buyer_stays_within_max_seats_whatever_they_send_at_once() {
    let db = TestDb::new().await;
    let engine = crate::common::patient();
    let show = queued(&db, 10, 60_000, 4).await;
    queue::join(&mut db.client().await, show.id, &user("buyer"))
        .await
        .unwrap();
    start(&db, &show).await;
    admit_all(&db, 1).await;
    // Two holds to add to, made first (2 seats), then 60 takings at once: holds of one
    // or two seats, adds, best available, each of its own seats.
    let mut c = db.client().await;
    let h1 = holds::hold(&mut c, &engine, &request(&show, "buyer", &["A1"]))
        .await
        .unwrap();
    let h2 = holds::hold(&mut c, &engine, &request(&show, "buyer", &["A2"]))
        .await
        .unwrap();
    let results: Vec<Result<usize, Error>> = stream::iter(0..60usize)
        .map(|i| {
            let (db, engine, show) = (&db, &engine, &show);
            async move {
                let mut c = db.client().await;
                let row = crate::common::row_label(1 + i / 8);
                let seat = format!("{row}{}", 1 + i % 8);
                match i % 4 {
                    0 => holds::hold(&mut c, engine, &request(show, "buyer", &[&seat]))
                        .await
                        .map(|h| h.seats.len()),
                    1 => {
                        let next = format!("{row}{}", 2 + i % 8);
                        holds::hold_pooled(&mut c, engine, &request(show, "buyer", &[&seat, &next]))
                            .await
                            .map(|h| h.seats.len())
                    }
                    2 => {
                        let a = HoldAddition {
                            seats: SeatSelection::parse([seat.as_str()], 10).unwrap(),
                            areas: vec![],
                            ticket_types: vec![],
                        };
                        let id = if i % 8 == 2 { h1.hold_id } else { h2.hold_id };
                        holds::add(&mut c, engine, &Actor::User(user("buyer")), id, &a)
                            .await
                            .map(|_| 1)
                    }
                    _ => {
                        let r = BestRequest::new(
                            show.id,
                            user("buyer"),
                            SeatCount::parse(1, 10).unwrap(),
                        );
                        best::hold_best(&mut c, engine, &r)
                            .await
                            .map(|b| b.hold.seats.len())
                    }
                }
            }
        })
        .buffer_unordered(60)
        .collect()
        .await;
    let mut won = 2;
    for r in &results {
        match r {
            Ok(n) => won += n,
            Err(Error::QueueMaxSeats { max_seats: 4, .. })
            | Err(Error::SeatsUnavailable { .. }) => {}
            Err(e) => panic!("unexpected: {e:?}"),
        }
    }
    let live = db
        .count(
            "SELECT count(*) FROM hold_seats hs JOIN holds h
                 ON h.show_id = hs.show_id AND h.id = hs.hold_id
              WHERE h.user_id = 'buyer' AND h.status = 'active'",
        )
        .await;
    assert_eq!(
        live as usize, won,
        "what the answers said is what the tables hold"
    );
    assert!(
        live <= 4,
        "the buyer has {live} seats, over the allowance of 4"
    );
    assert_eq!(live, 4, "the allowance is used up, not refused early");
    db.audit().await;
}
