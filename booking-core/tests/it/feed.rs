//! The change feed: exactly once, in order, across late commits, reconnects and resumes.

use crate::common::{request, user, TestDb};
use booking_core::feed::{self, Cause, Cursor, Feed, FeedOptions, Position};
use booking_core::{bookings, database, holds, sweeper, CancellationToken, Listener, SeatState};
use std::collections::HashMap;
use std::time::Duration;

/// Collects `n` events from a subscription, failing after 30 s.
async fn take(sub: &mut booking_core::Subscription, n: usize) -> Vec<booking_core::SeatEvent> {
    let mut out = Vec::new();
    while out.len() < n {
        match tokio::time::timeout(Duration::from_secs(30), sub.next()).await {
            Ok(Some(e)) => out.push((*e).clone()),
            Ok(None) => panic!("the subscription ended after {} of {n} events", out.len()),
            Err(_) => panic!("only {} of {n} events arrived", out.len()),
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_commits_are_delivered_once_and_in_order() {
    let db = TestDb::with_pool(40).await;
    let show = db.show(4, 50).await;
    let stop = CancellationToken::new();
    let engine = db.engine();
    let feed = Feed::start(
        &engine,
        db.pool.clone(),
        db.feed_options(&engine, &stop),
        stop.clone(),
    )
    .await
    .unwrap();
    let mut sub = feed.subscribe(show.id, None).await.unwrap();

    // 200 holds, one seat each, each in a transaction of its own caller. Every fifth
    // stays open a while after taking its sequence id (it commits late); every
    // seventh rolls back (its event must never appear).
    let mut tasks = Vec::new();
    for n in 0..200usize {
        let pool = db.pool.clone();
        let show = show.clone();
        let engine = engine.clone();
        tasks.push(tokio::spawn(async move {
            let label = format!("{}{}", crate::common::row_label(n / 50), n % 50 + 1);
            let mut client = database::client(&pool).await.unwrap();
            let mut tx = client.transaction().await.unwrap();
            holds::hold(&mut tx, &engine, &request(&show, "alice", &[&label]))
                .await
                .unwrap();
            if n % 5 == 0 {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            if n % 7 == 0 {
                tx.rollback().await.unwrap();
                None
            } else {
                tx.commit().await.unwrap();
                Some(label)
            }
        }));
    }
    // A second reader pages through the table directly, as a library user might.
    let pager = {
        let pool = db.pool.clone();
        let settings = db.settings();
        tokio::spawn(async move {
            let client = database::client(&pool).await.unwrap();
            let mut after = Cursor::start();
            let mut seen = Vec::new();
            // A bound, not a measure: 200 holds take a minute on a loaded formation.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
            while seen.len() < 171 && tokio::time::Instant::now() < deadline {
                for e in feed::read_after(&client, &settings, &after, 37)
                    .await
                    .unwrap()
                {
                    assert!(!after.passed(e.position), "the pager went backwards");
                    after.advance(e.position);
                    seen.push(e);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            seen
        })
    };
    let mut committed = Vec::new();
    for t in tasks {
        if let Some(label) = t.await.unwrap() {
            committed.push(label);
        }
    }
    assert_eq!(committed.len(), 171);

    let events = take(&mut sub, committed.len()).await;
    let mut last = Position::START;
    let mut count: HashMap<String, usize> = HashMap::new();
    for e in &events {
        assert!(e.position > last, "positions only increase");
        last = e.position;
        assert_eq!(e.cause, Cause::Hold);
        assert_eq!(e.seats.len(), 1);
        assert_eq!(e.seats[0].state, SeatState::Held);
        *count
            .entry(e.seats[0].label.as_str().to_owned())
            .or_default() += 1;
    }
    for label in &committed {
        assert_eq!(count.get(label), Some(&1), "{label} exactly once");
    }
    assert_eq!(
        count.len(),
        committed.len(),
        "no event of a rolled-back transaction"
    );
    // Nothing more comes.
    let extra = tokio::time::timeout(Duration::from_millis(500), sub.next()).await;
    assert!(extra.is_err(), "an extra event arrived: {extra:?}");

    let paged = pager.await.unwrap();
    assert_eq!(paged.len(), 171, "the pager saw every event");
    let paged_positions: Vec<Position> = paged.iter().map(|e| e.position).collect();
    let sub_positions: Vec<Position> = events.iter().map(|e| e.position).collect();
    assert_eq!(paged_positions, sub_positions, "both readers saw one order");
    stop.cancel();
    db.audit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_resuming_from_its_last_position_gets_exactly_what_it_missed() {
    let db = TestDb::new().await;
    let show = db.show(1, 20).await;
    let other = db.show(1, 5).await;
    let engine = db.engine();
    let stop = CancellationToken::new();
    let feed = Feed::start(
        &engine,
        db.pool.clone(),
        db.feed_options(&engine, &stop),
        stop.clone(),
    )
    .await
    .unwrap();
    let mut client = db.client().await;

    let mut first = feed.subscribe(show.id, None).await.unwrap();
    let mut holds_made = Vec::new();
    for n in 1..=5 {
        let h = holds::hold(
            &mut client,
            &engine,
            &request(&show, "alice", &[&format!("A{n}")]),
        )
        .await
        .unwrap();
        holds_made.push(h);
    }
    let seen = take(&mut first, 3).await;
    let resume_at = seen.last().unwrap().position;
    drop(first);

    // While it is away: more holds, a confirm, a release, a cancel, and noise elsewhere.
    for n in 6..=8 {
        holds::hold(
            &mut client,
            &engine,
            &request(&show, "alice", &[&format!("A{n}")]),
        )
        .await
        .unwrap();
    }
    holds::hold(&mut client, &engine, &request(&other, "bob", &["A1"]))
        .await
        .unwrap();
    let b = bookings::confirm(&mut client, &engine, &user("alice"), holds_made[0].hold_id)
        .await
        .unwrap();
    holds::release(&mut client, &engine, &user("alice"), holds_made[1].hold_id)
        .await
        .unwrap();
    bookings::cancel(
        &mut client,
        &engine,
        &booking_core::Actor::Admin,
        b.booking.booking_id,
    )
    .await
    .unwrap();

    // Missed: A4, A5 holds, A6..A8 holds, confirm, release, cancel = 8 events.
    let mut resumed = feed.subscribe(show.id, Some(resume_at)).await.unwrap();
    let missed = take(&mut resumed, 8).await;
    let causes: Vec<Cause> = missed.iter().map(|e| e.cause).collect();
    assert_eq!(
        causes,
        [
            Cause::Hold,
            Cause::Hold,
            Cause::Hold,
            Cause::Hold,
            Cause::Hold,
            Cause::Confirm,
            Cause::Release,
            Cause::Cancel
        ]
    );
    assert_eq!(missed[0].seats[0].label.as_str(), "A4");
    assert!(missed.iter().all(|e| e.show_id == show.id));
    assert!(missed[0].position > resume_at);
    let extra = tokio::time::timeout(Duration::from_millis(300), resumed.next()).await;
    assert!(extra.is_err(), "nothing after what was missed: {extra:?}");

    // And it goes on live.
    holds::hold(&mut client, &engine, &request(&show, "alice", &["A9"]))
        .await
        .unwrap();
    let live = take(&mut resumed, 1).await;
    assert_eq!(live[0].seats[0].label.as_str(), "A9");
    stop.cancel();
    db.audit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_made_while_the_listen_connection_is_down_still_arrive() {
    let db = TestDb::new().await;
    let show = db.show(1, 20).await;
    let engine = db.engine();
    let stop = CancellationToken::new();
    let mut listen = db.config.clone();
    listen.application_name("feed-listener-under-test");
    // A poll interval far longer than the test: only notifications and the reconnect
    // can explain timely delivery.
    let feed = Feed::start(
        &engine,
        db.pool.clone(),
        FeedOptions {
            listen: Some(Listener::start(&engine, listen, stop.clone())),
            poll: Duration::from_secs(600),
            ..FeedOptions::default()
        },
        stop.clone(),
    )
    .await
    .unwrap();
    let mut sub = feed.subscribe(show.id, None).await.unwrap();
    let mut client = db.client().await;

    let listener_pid = || async {
        let c = db.client().await;
        c.query_opt(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'feed-listener-under-test'",
            &[],
        )
        .await
        .unwrap()
        .map(|r| r.get::<_, i32>(0))
    };
    let mut pid = None;
    for _ in 0..100 {
        pid = listener_pid().await;
        if pid.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = pid.expect("the LISTEN connection is up");
    holds::hold(&mut client, &engine, &request(&show, "alice", &["A1"]))
        .await
        .unwrap();
    assert_eq!(take(&mut sub, 1).await[0].seats[0].label.as_str(), "A1");

    // Kill it. Meanwhile "another process" writes events (a transaction of its own) and
    // notifies, as its notifier would: these writes do not pass through this process,
    // so only the LISTEN connection (once back) can bring them before the 600 s poll.
    client
        // Typed: Citus adds a `pg_terminate_backend(bigint, ...)` of its own.
        .execute("SELECT pg_terminate_backend($1::int)", &[&pid])
        .await
        .unwrap();
    let elsewhere = |n: u32| {
        format!(
            "INSERT INTO seat_events (show_id, cause, seats)
             VALUES ({}, 'hold', '[{{\"label\": \"A{n}\", \"state\": \"held\", \"version\": \"1\"}}]');
             SELECT pg_notify('booking_events', '')",
            show.id
        )
    };
    for n in 2..=6 {
        client.batch_execute(&elsewhere(n)).await.unwrap();
    }
    let events = take(&mut sub, 5).await;
    let labels: Vec<&str> = events.iter().map(|e| e.seats[0].label.as_str()).collect();
    assert_eq!(labels, ["A2", "A3", "A4", "A5", "A6"]);
    let mut new_pid = None;
    for _ in 0..100 {
        new_pid = listener_pid().await;
        if new_pid.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_ne!(new_pid.expect("it reconnected"), pid);
    // And notifications work again on the new connection.
    client.batch_execute(&elsewhere(7)).await.unwrap();
    assert_eq!(take(&mut sub, 1).await[0].seats[0].label.as_str(), "A7");
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_is_cut_off_without_slowing_the_others() {
    let db = TestDb::new().await;
    let show = db.show(1, 20).await;
    let engine = db.engine();
    let stop = CancellationToken::new();
    let feed = Feed::start(
        &engine,
        db.pool.clone(),
        FeedOptions {
            listen: Some(Listener::start(&engine, db.config.clone(), stop.clone())),
            subscriber_buffer: 4,
            ..FeedOptions::default()
        },
        stop.clone(),
    )
    .await
    .unwrap();
    let mut slow = feed.subscribe(show.id, None).await.unwrap();
    let mut fast = feed.subscribe(show.id, None).await.unwrap();
    let mut client = db.client().await;
    let mut got = Vec::new();
    for n in 1..=10 {
        holds::hold(
            &mut client,
            &engine,
            &request(&show, "alice", &[&format!("A{n}")]),
        )
        .await
        .unwrap();
        got.extend(take(&mut fast, 1).await);
    }
    assert_eq!(got.len(), 10);
    // The slow one kept what fitted in its buffer, then was cut off.
    let mut kept = Vec::new();
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_secs(5), slow.next()).await {
        kept.push((*e).clone());
    }
    assert_eq!(kept.len(), 4);
    assert_eq!(kept, got[..4].to_vec());
    // It resumes from its last position and gets the rest.
    let mut resumed = feed
        .subscribe(show.id, Some(slow.position()))
        .await
        .unwrap();
    let rest = take(&mut resumed, 6).await;
    assert_eq!(rest, got[4..].to_vec());
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_publishes_expire_events_and_old_events_are_pruned() {
    let db = TestDb::new().await;
    let show = db.show(1, 4).await;
    let engine = db.engine();
    let stop = CancellationToken::new();
    let feed = Feed::start(
        &engine,
        db.pool.clone(),
        db.feed_options(&engine, &stop),
        stop.clone(),
    )
    .await
    .unwrap();
    let mut sub = feed.subscribe(show.id, None).await.unwrap();
    let mut client = db.client().await;
    let h = holds::hold(
        &mut client,
        &engine,
        &request(&show, "alice", &["A1", "A2"]),
    )
    .await
    .unwrap();
    db.lapse(h.hold_id).await;
    sweeper::sweep_once(&mut client, &engine, 10).await.unwrap();
    let events = take(&mut sub, 2).await;
    assert_eq!(events[1].cause, Cause::Expire);
    let labels: Vec<&str> = events[1].seats.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(labels, ["A1", "A2"]);
    assert!(events[1]
        .seats
        .iter()
        .all(|s| s.state == SeatState::Available));
    db.audit().await;

    client
        .execute(
            "UPDATE seat_events SET created_at = now() - interval '25 hours' WHERE cause = 'hold'",
            &[],
        )
        .await
        .unwrap();
    let pruned = feed::prune(&client, Duration::from_secs(24 * 3600))
        .await
        .unwrap();
    assert_eq!(pruned, 1);
    stop.cancel();
}

/// Resuming from before what the feed still keeps is refused, not answered with a
/// hole: the prune moves the horizon in the statement that deletes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_from_before_the_pruned_feed_is_refused() {
    let db = TestDb::new().await;
    let show = db.show(1, 4).await;
    let engine = db.engine();
    let stop = CancellationToken::new();
    let feed = Feed::start(
        &engine,
        db.pool.clone(),
        db.feed_options(&engine, &stop),
        stop.clone(),
    )
    .await
    .unwrap();
    let mut client = db.client().await;
    assert_eq!(feed::horizon(&client).await.unwrap(), Cursor::start());
    let mut sub = feed.subscribe(show.id, None).await.unwrap();
    for seat in ["A1", "A2", "A3"] {
        holds::hold(&mut client, &engine, &request(&show, "alice", &[seat]))
            .await
            .unwrap();
    }
    let events = take(&mut sub, 3).await;
    let (first, second) = (events[0].position, events[1].position);
    client
        .execute(
            "UPDATE seat_events SET created_at = now() - interval '25 hours'
              WHERE (xid, id) <= ($1::text::xid8, $2)",
            &[&first.xid().to_string(), &first.id()],
        )
        .await
        .unwrap();
    assert_eq!(
        feed::prune(&client, Duration::from_secs(24 * 3600))
            .await
            .unwrap(),
        1
    );
    assert_eq!(feed::horizon(&client).await.unwrap(), Cursor::at(first));
    // From before the first event: it is gone.
    let gone = feed.subscribe(show.id, Some(Position::START)).await;
    assert!(
        matches!(gone, Err(booking_core::Error::PositionExpired)),
        "{:?}",
        gone.err()
    );
    // From the pruned event itself: everything after it is kept.
    let mut from = feed.subscribe(show.id, Some(first)).await.unwrap();
    let rest = take(&mut from, 2).await;
    assert_eq!(rest[0].position, second);
    // A prune of nothing leaves the horizon where it is.
    feed::prune(&client, Duration::from_secs(24 * 3600))
        .await
        .unwrap();
    assert_eq!(feed::horizon(&client).await.unwrap(), Cursor::at(first));
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_refuses_a_seat_written_by_a_younger_transaction_so_the_feed_keeps_commit_order() {
    let db = TestDb::new().await;
    let show = db.show(1, 4).await;
    let engine = db.engine();

    // C's transaction gets its id first (it is older) ... on the show's node: on a
    // formation the coordinator's own id would say nothing of the order there.
    let node_xid = "SELECT booking_xid(sh.id) FROM shows sh WHERE sh.id = $1";
    let mut c_client = db.client().await;
    let mut c = c_client.transaction().await.unwrap();
    c.query_one(node_xid, &[&show.id.get()]).await.unwrap();

    // ... then a younger transaction holds A2 and releases it again, and commits: A2 is
    // free, last written by a transaction younger than C.
    let mut t_client = db.client().await;
    let mut t = t_client.transaction().await.unwrap();
    t.query_one(node_xid, &[&show.id.get()]).await.unwrap();
    let h = holds::hold(&mut t, &engine, &request(&show, "bob", &["A2"]))
        .await
        .unwrap();
    holds::release(&mut t, &engine, &user("bob"), h.hold_id)
        .await
        .unwrap();
    t.commit().await.unwrap();

    // Were C to take A2, its event (older xid) would come before the younger one's
    // release in the feed, which would then end with A2 available although C holds it.
    let refused = holds::hold(&mut c, &engine, &request(&show, "alice", &["A1", "A2"])).await;
    match refused {
        Err(booking_core::Error::SeatsUnavailable { seats, .. }) => {
            assert_eq!(seats.iter().map(|s| s.as_str()).collect::<Vec<_>>(), ["A2"])
        }
        other => panic!("expected A2 refused, got {other:?}"),
    }
    // A seat untouched since before C began is taken as usual.
    holds::hold(&mut c, &engine, &request(&show, "alice", &["A1"]))
        .await
        .unwrap();
    c.commit().await.unwrap();
    db.audit().await;
}
