//! A row lock that another transaction keeps is waited for at most the engine's lock
//! timeout, where the wait happens: on Citus, on the show's worker, which the
//! coordinator's own `lock_timeout` does not reach (migration V15).

use crate::common::{request, TestDb};
use booking_core::{holds, Engine, Error, Settings};
use std::time::Duration;

#[tokio::test]
async fn a_hold_waiting_for_a_locked_seat_gives_up_at_the_lock_timeout() {
    let db = TestDb::new().await;
    let show = db.show(1, 4).await;
    // Another transaction keeps A1's row locked, as a hold in the middle of its
    // transaction would.
    let mut other = db.client().await;
    let locker = other.transaction().await.unwrap();
    let locked = locker
        .execute(
            "SELECT 1 FROM seats WHERE show_id = $1 AND label = 'A1' FOR UPDATE",
            &[&show.id.get()],
        )
        .await
        .unwrap();
    assert_eq!(locked, 1);
    let engine = Engine::new(Settings {
        lock_timeout: Duration::from_millis(200),
        ..db.settings()
    });
    let mut client = db.client().await;
    // A bound on the test, not a timing assertion: without the timeout reaching the
    // wait, the hold would wait until the locker ends, which it does only after.
    let outcome = tokio::time::timeout(
        Duration::from_secs(120),
        holds::hold(&mut client, &engine, &request(&show, "bob", &["A1"])),
    )
    .await
    .expect("the hold's wait ended by itself");
    assert!(matches!(outcome, Err(Error::Busy(_))), "{outcome:?}");
    locker.rollback().await.unwrap();
    // Nothing was written by the refused hold; the seat is free and can be held.
    let held = holds::hold(&mut client, &engine, &request(&show, "bob", &["A1"])).await;
    assert!(held.is_ok(), "{held:?}");
    db.audit().await;
}
