//! The engine handle: its signals belong to it alone.

use crate::common::{request, user, TestDb};
use booking_core::feed::{Feed, FeedOptions};
use booking_core::{holds, CancellationToken};
use std::time::Duration;

#[tokio::test]
async fn two_engines_in_one_process_never_see_each_others_signals() {
    let db = TestDb::new().await;
    let show = db.show(1, 10).await;
    let (a, b) = (db.engine(), db.engine());
    let (mut seen_by_a, seen_by_b) = (a.changes(), b.changes());

    let hold = holds::hold(
        &mut db.client().await,
        &a,
        &request(&show, "alice", &["A1"]),
    )
    .await
    .unwrap();
    assert!(seen_by_a.has_changed().unwrap(), "a's own hold signals a");
    assert!(
        !seen_by_b.has_changed().unwrap(),
        "a's hold must not signal b"
    );
    seen_by_a.borrow_and_update();

    holds::release(&mut db.client().await, &b, &user("alice"), hold.hold_id)
        .await
        .unwrap();
    assert!(
        seen_by_b.has_changed().unwrap(),
        "b's own release signals b"
    );
    assert!(
        !seen_by_a.has_changed().unwrap(),
        "b's release must not signal a"
    );
}

#[tokio::test]
async fn a_feed_is_woken_by_the_changes_of_its_own_engine() {
    let db = TestDb::new().await;
    let show = db.show(1, 10).await;
    let engine = db.engine();
    let stop = CancellationToken::new();
    // No LISTEN connection and a poll too slow to matter: only the engine's own
    // signal can make the pump read before the test gives up.
    let feed = Feed::start(
        &engine,
        db.pool.clone(),
        FeedOptions {
            listen: None,
            poll: Duration::from_secs(3600),
            notify_others: false,
            ..FeedOptions::default()
        },
        stop.clone(),
    )
    .await
    .unwrap();
    let mut sub = feed.subscribe(show.id, None).await.unwrap();
    let hold = holds::hold(
        &mut db.client().await,
        &engine,
        &request(&show, "alice", &["A2"]),
    )
    .await
    .unwrap();
    let event = tokio::time::timeout(Duration::from_secs(60), sub.next())
        .await
        .expect("the engine's signal woke the pump")
        .expect("the subscription goes on");
    assert_eq!(event.position, hold.event.as_ref().unwrap().position);
    stop.cancel();
}
