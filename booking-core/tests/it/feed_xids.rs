//! The change feed on a cluster whose transaction ids cross a power of ten: positions
//! are compared as numbers, never as text (issue 12: text order put `1000000` before
//! `999999`, and a page of the feed skipped every event below it).
//!
//! Every other test runs on DATABASE_URL's server, whose ids may be anywhere; this one
//! starts a throwaway cluster of its own (`scripts/pg.sh` with `PG_NEXT_XID`) just below
//! 1,000,000 and commits changes one transaction at a time across that boundary.

use crate::common::{request, user, TestDb};
use booking_core::feed::{self, Feed, FeedOptions, Position};
use booking_core::{holds, CancellationToken, Listener, SeatEvent};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const BOUNDARY: u64 = 1_000_000;

/// A throwaway cluster under `target/`, stopped and deleted on drop.
struct Cluster {
    dir: PathBuf,
    port: u16,
}

impl Cluster {
    fn pg_sh(&self, arg: &str) -> std::process::Output {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/pg.sh");
        Command::new("bash")
            .arg(script)
            .arg(arg)
            .env_remove("DATABASE_URL")
            .env("PG_DIR", &self.dir)
            .env("PG_PORT", self.port.to_string())
            // Leave room for creating and migrating the database before the boundary.
            .env("PG_NEXT_XID", (BOUNDARY - 3_000).to_string())
            .output()
            .expect("run scripts/pg.sh")
    }

    fn start() -> Cluster {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target/pg-xid")
            .join(format!("{}-{port}", std::process::id()));
        std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
        let cluster = Cluster { dir, port };
        let out = cluster.pg_sh("start");
        assert!(
            out.status.success(),
            "scripts/pg.sh start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        cluster
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.pg_sh("destroy");
    }
}

async fn next_xid(db: &TestDb) -> u64 {
    let row = db
        .client()
        .await
        .query_one("SELECT pg_current_xact_id()::text", &[])
        .await
        .unwrap();
    row.get::<_, String>(0).parse().unwrap()
}

/// Every event in the table, in the order of the `xid8` column (the truth).
async fn stored_positions(db: &TestDb) -> Vec<String> {
    db.client()
        .await
        .query(
            "SELECT xid::text || '.' || id FROM seat_events ORDER BY xid, id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn positions(events: &[SeatEvent]) -> Vec<String> {
    events.iter().map(|e| e.position.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_committed_across_a_power_of_ten_arrive_once_and_in_order() {
    let cluster = Cluster::start();
    let db = TestDb::on_server(&cluster.url(), 8).await;
    let show = db.show(2, 20).await;

    // Burn transaction ids until a few below the boundary.
    let start = next_xid(&db).await;
    assert!(
        start < BOUNDARY - 20,
        "setting up took ids up to {start}: start the cluster lower"
    );
    while next_xid(&db).await < BOUNDARY - 8 {}

    let engine = db.engine();
    let stop = CancellationToken::new();
    let feed = Feed::start(
        &engine,
        db.pool.clone(),
        FeedOptions {
            listen: Some(Listener::start(&engine, db.config.clone(), stop.clone())),
            poll: Duration::from_millis(20),
            ..FeedOptions::default()
        },
        stop.clone(),
    )
    .await
    .unwrap();
    let mut live = feed.subscribe(show.id, None).await.unwrap();

    // Twenty holds, one transaction each: ids on both sides of the boundary.
    let mut held = Vec::new();
    for n in 1..=20 {
        let label = format!("A{n}");
        let mut client = db.client().await;
        let hold = holds::hold(&mut client, &engine, &request(&show, "alice", &[&label]))
            .await
            .unwrap();
        held.push(hold);
    }
    // And the release of the first: an event of another cause, past the boundary.
    holds::release(
        &mut db.client().await,
        &engine,
        &user("alice"),
        held[0].hold_id,
    )
    .await
    .unwrap();

    let stored = stored_positions(&db).await;
    assert_eq!(stored.len(), 21, "one event per change");
    let xids: Vec<u64> = stored
        .iter()
        .map(|p| p.split('.').next().unwrap().parse().unwrap())
        .collect();
    assert!(
        xids.first().unwrap() < &BOUNDARY && xids.last().unwrap() >= &BOUNDARY,
        "the events must straddle {BOUNDARY}: {xids:?}"
    );

    // Pages smaller than the run of changes: every event once, in commit order.
    let mut read = Vec::new();
    let mut after = Position::START;
    loop {
        let page = feed::read(&db.client().await, Some(show.id), after, None, 3)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = last.position;
        read.extend(page);
    }
    assert_eq!(positions(&read), stored, "paged read of the feed");
    assert!(read.windows(2).all(|w| w[0].position < w[1].position));

    // The head is the newest event, not the one whose id sorts last as text.
    let head = feed::head(&db.client().await).await.unwrap();
    assert_eq!(head.to_string(), *stored.last().unwrap(), "head");

    // The pump handed the live subscriber each of them once, in order.
    let mut got = Vec::new();
    while got.len() < stored.len() {
        match tokio::time::timeout(Duration::from_secs(30), live.next()).await {
            Ok(Some(e)) => got.push((*e).clone()),
            Ok(None) => panic!("the subscription ended"),
            Err(_) => panic!("only {} of {} events arrived", got.len(), stored.len()),
        }
    }
    assert_eq!(positions(&got), stored, "live subscription");

    // Resuming from a position below the boundary brings exactly the rest.
    let from = read[2].position;
    let mut resumed = feed.subscribe(show.id, Some(from)).await.unwrap();
    let mut rest = Vec::new();
    while rest.len() < stored.len() - 3 {
        let e = tokio::time::timeout(Duration::from_secs(30), resumed.next())
            .await
            .expect("resumed events arrive")
            .expect("the subscription goes on");
        rest.push((*e).clone());
    }
    assert_eq!(positions(&rest), stored[3..], "resumed subscription");

    stop.cancel();
    db.audit().await;
}
