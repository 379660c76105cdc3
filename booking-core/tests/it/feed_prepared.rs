//! On a Citus formation, a prepared transaction (two-phase commit) of another
//! database on a worker does not hold back this database's feed: as one left there by
//! a coordinator backend that died between its `PREPARE` and its `COMMIT PREPARED`
//! until Citus recovers it (`feed/sql.rs`, `NODE_WATERMARK`). Without the rule, no
//! event of any show on that worker reached a follower (checked: "only 0 of 1 events
//! arrived").

use crate::common::{request, TestDb};
use booking_core::feed::{self, Cursor, Feed};
use booking_core::tokio_postgres::{self, NoTls};
use booking_core::{holds, CancellationToken, SeatEvent};
use std::time::Duration;

/// A prepared transaction with an id in the `postgres` database of every worker.
struct Orphans {
    gid: String,
    nodes: Vec<tokio_postgres::Client>,
}

impl Orphans {
    async fn prepare(db: &TestDb) -> Orphans {
        let gid = format!("booking_test_orphan_{}", uuid::Uuid::new_v4().simple());
        let workers = db
            .client()
            .await
            .query(
                "SELECT nodename, nodeport FROM pg_dist_node
                  WHERE groupid <> 0 AND noderole = 'primary'",
                &[],
            )
            .await
            .unwrap();
        let mut nodes = Vec::new();
        for w in &workers {
            let (host, port): (String, i32) = (w.get(0), w.get(1));
            let mut config = tokio_postgres::Config::new();
            config.host(&host).port(port as u16).dbname("postgres");
            if let Some(user) = db.config.get_user() {
                config.user(user);
            }
            let (client, conn) = config.connect(NoTls).await.unwrap();
            tokio::spawn(conn);
            client
                .batch_execute(&format!(
                    "BEGIN; SELECT pg_current_xact_id(); PREPARE TRANSACTION '{gid}'"
                ))
                .await
                .unwrap();
            nodes.push(client);
        }
        assert!(!nodes.is_empty(), "the formation has workers");
        Orphans { gid, nodes }
    }

    async fn rollback(self) {
        for n in &self.nodes {
            n.batch_execute(&format!("ROLLBACK PREPARED '{}'", self.gid))
                .await
                .unwrap();
        }
    }
}

async fn next(sub: &mut booking_core::Subscription) -> SeatEvent {
    match tokio::time::timeout(Duration::from_secs(30), sub.next()).await {
        Ok(Some(e)) => (*e).clone(),
        other => panic!("no event in 30 s: {:?}", other.map(|e| e.is_some())),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_databases_prepared_transaction_holds_no_feed_back() {
    let db = TestDb::new().await;
    if !db.distributed {
        // One PostgreSQL runs no two-phase commit of its own (`WATERMARK` there).
        return;
    }
    let orphans = Orphans::prepare(&db).await;
    let show = db.show(1, 10).await;
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
    for seat in ["A1", "A2"] {
        holds::hold(&mut client, &engine, &request(&show, "alice", &[seat]))
            .await
            .unwrap();
    }
    // The pump (its connections to each node) hands both out ...
    let first = next(&mut sub).await;
    let second = next(&mut sub).await;
    // ... a follower resuming after the first reads the second below the node's own
    // watermark (the show's read) ...
    let mut resumed = feed.subscribe(show.id, Some(first.position)).await.unwrap();
    assert_eq!(next(&mut resumed).await, second);
    // ... and a reader of the whole feed through `run_command_on_all_nodes` gets both.
    let page = feed::read_after(&client, &db.settings(), &Cursor::start(), 100)
        .await
        .unwrap();
    assert_eq!(page, vec![first, second]);
    orphans.rollback().await;
    stop.cancel();
    db.audit().await;
}
