//! The feed's watermark is per database (issue 18): a long transaction in another
//! database of the cluster no longer holds a show's feed back; one of this database
//! still does, until it ends, because that is what keeps the feed gap-free.

use crate::common::{request, TestDb};
use booking_core::feed::{self, Cause, Position};
use booking_core::tokio_postgres::{self, NoTls};
use booking_core::{holds, SeatEvent, Show};
use std::time::Duration;

/// A transaction that has taken a transaction id and stays open until dropped (or
/// ended): the oldest running transaction of its database.
struct LongTransaction {
    client: tokio_postgres::Client,
}

impl LongTransaction {
    async fn open(config: &tokio_postgres::Config) -> LongTransaction {
        let (client, conn) = config.connect(NoTls).await.expect("connect");
        tokio::spawn(conn);
        client
            .batch_execute("BEGIN; SELECT pg_current_xact_id()")
            .await
            .expect("begin and take an id");
        LongTransaction { client }
    }

    async fn commit(self) {
        self.client.batch_execute("COMMIT").await.expect("commit");
    }

    /// It is still running: its session is in a transaction block.
    async fn is_open(&self) -> bool {
        self.client
            .query_one("SELECT pg_current_xact_id_if_assigned() IS NOT NULL", &[])
            .await
            .expect("ask")
            .get(0)
    }
}

async fn holds_of(db: &TestDb, show: &Show) -> Vec<SeatEvent> {
    feed::read(
        &db.client().await,
        Some(show.id),
        Position::START,
        None,
        100,
    )
    .await
    .expect("read the feed")
    .into_iter()
    .filter(|e| e.cause == Cause::Hold)
    .collect()
}

/// Reads the show's feed until its hold event is there, for at most 10 s: other
/// databases' short transactions (other tests) may each hold a read back for a moment,
/// as long as they run; only one known to be running is left out of the watermark.
async fn wait_for_hold(db: &TestDb, show: &Show) -> Vec<SeatEvent> {
    for _ in 0..500 {
        let events = holds_of(db, show).await;
        if !events.is_empty() {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Vec::new()
}

#[tokio::test]
async fn a_long_transaction_in_another_database_does_not_hold_the_feed_back() {
    let db = TestDb::new().await;
    let show = db.show(1, 10).await;
    let engine = db.engine();
    // DATABASE_URL's own database: another database of the same cluster.
    let other = LongTransaction::open(
        &booking_core::database::parse_url(&std::env::var("DATABASE_URL").unwrap()).unwrap(),
    )
    .await;

    holds::hold(
        &mut db.client().await,
        &engine,
        &request(&show, "alice", &["A1"]),
    )
    .await
    .unwrap();

    let events = wait_for_hold(&db, &show).await;
    assert!(
        other.is_open().await,
        "the other database's transaction ran all along"
    );
    assert_eq!(
        events.len(),
        1,
        "the hold's event is read while an older transaction of another database runs"
    );
    other.commit().await;
    db.audit().await;
}

#[tokio::test]
async fn a_long_transaction_of_the_same_database_holds_the_feed_back_until_it_ends() {
    let db = TestDb::new().await;
    let show = db.show(1, 10).await;
    let engine = db.engine();
    let older = LongTransaction::open(&db.config).await;

    holds::hold(
        &mut db.client().await,
        &engine,
        &request(&show, "alice", &["A1"]),
    )
    .await
    .unwrap();

    // The older transaction could still write an event that sorts before the hold's:
    // nothing after it may be read yet.
    assert!(
        holds_of(&db, &show).await.is_empty(),
        "no event is read past a running transaction of this database"
    );
    older.commit().await;
    assert_eq!(wait_for_hold(&db, &show).await.len(), 1);
    db.audit().await;
}
