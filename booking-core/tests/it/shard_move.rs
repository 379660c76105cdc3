//! A show's feed across a real shard move on a Citus formation
//! (`citus_move_shard_placement`, `block_writes`) while holds keep coming: the moved
//! events keep the node, epoch and xid they were written with (the copy does not run
//! the events' trigger), the show's later events carry the new node and the next
//! epoch, and a subscriber and a pager of the whole feed see every committed event
//! exactly once, in order. On plain PostgreSQL there is no shard to move: the test
//! checks nothing there (it runs in `scripts/test.sh`'s Citus lane).

use crate::common::{request, TestDb};
use booking_core::feed::{self, Cursor, Feed};
use booking_core::{holds, CancellationToken, Error};
use std::collections::HashMap;
use std::time::Duration;

/// `(id, xid, node, epoch)` of every event of `show`, by id.
async fn events_of(db: &TestDb, show: i64) -> HashMap<i64, (String, i32, i32)> {
    db.client()
        .await
        .query(
            "SELECT id, xid::text, node, epoch FROM seat_events WHERE show_id = $1",
            &[&show],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3))))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shows_feed_stays_exact_across_a_shard_move_under_load() {
    let db = TestDb::with_pool(20).await;
    if !db.settings().distributed {
        return;
    }
    let show = db.show(4, 10).await;
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

    // Row A before the move.
    let mut held: Vec<String> = Vec::new();
    let mut client = db.client().await;
    for n in 1..=10 {
        let label = format!("A{n}");
        holds::hold(&mut client, &engine, &request(&show, "alice", &[&label]))
            .await
            .unwrap();
        held.push(label);
    }
    let before = events_of(&db, show.id.get()).await;
    assert_eq!(before.len(), 10);
    let (old_node, old_epoch) = {
        let (_, n, e) = before.values().next().unwrap();
        (*n, *e)
    };
    assert!(before
        .values()
        .all(|(_, n, e)| (*n, *e) == (old_node, old_epoch)));

    // The show's shard group, from its worker to the other one.
    let admin = db.client().await;
    let shard: i64 = admin
        .query_one(
            "SELECT get_shard_id_for_distribution_column('shows', $1::bigint)",
            &[&show.id.get()],
        )
        .await
        .unwrap()
        .get(0);
    let from = admin
        .query_one(
            "SELECT nodename::text, nodeport::int FROM citus_shards WHERE shardid = $1",
            &[&shard],
        )
        .await
        .unwrap();
    let (from_host, from_port): (String, i32) = (from.get(0), from.get(1));
    let to = admin
        .query_one(
            "SELECT nodename::text, nodeport, groupid FROM pg_dist_node
              WHERE groupid <> 0 AND noderole = 'primary'
                AND NOT (nodename = $1 AND nodeport = $2)
              ORDER BY nodeid LIMIT 1",
            &[&from_host, &from_port],
        )
        .await
        .unwrap();
    let (to_host, to_port, to_group): (String, i32, i32) = (to.get(0), to.get(1), to.get(2));
    assert_ne!(to_group, old_node, "the show moves to another node");

    // Rows B and C held one seat at a time by two callers while the move runs: the
    // move blocks writes, so each either waits and holds or is refused as busy.
    let mut writers = Vec::new();
    for row in ["B", "C"] {
        let pool = db.pool.clone();
        let engine = engine.clone();
        let show = show.clone();
        writers.push(tokio::spawn(async move {
            let mut client = booking_core::database::client(&pool).await.unwrap();
            let mut ok = Vec::new();
            for n in 1..=10 {
                let label = format!("{row}{n}");
                match holds::hold(&mut client, &engine, &request(&show, "bob", &[&label])).await {
                    Ok(_) => ok.push(label),
                    Err(Error::Busy(_)) => {}
                    Err(e) => panic!("{label} during the move: {e:?}"),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            ok
        }));
    }
    tokio::time::sleep(Duration::from_millis(60)).await;
    admin
        .execute(
            "SELECT citus_move_shard_placement($1, $2, $3, $4, $5,
                                               shard_transfer_mode := 'block_writes')",
            &[&shard, &from_host, &from_port, &to_host, &to_port],
        )
        .await
        .unwrap();
    for w in writers {
        held.extend(w.await.unwrap());
    }
    let placed: i32 = admin
        .query_one(
            "SELECT nodeport::int FROM citus_shards WHERE shardid = $1",
            &[&shard],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(placed, to_port, "the shard is on the other worker");

    // Row D after the move.
    for n in 1..=10 {
        let label = format!("D{n}");
        holds::hold(&mut client, &engine, &request(&show, "carol", &[&label]))
            .await
            .unwrap();
        held.push(label);
    }

    let after = events_of(&db, show.id.get()).await;
    assert_eq!(after.len(), held.len(), "one event per committed hold");
    for (id, written) in &before {
        assert_eq!(after.get(id), Some(written), "event {id} moved as it was");
    }
    // Row D's events are the new node's, in the show's next epoch.
    let d: Vec<&(String, i32, i32)> = after
        .iter()
        .filter(|(id, _)| !before.contains_key(id))
        .map(|(_, v)| v)
        .filter(|(_, n, _)| *n == to_group)
        .collect();
    assert!(
        d.len() >= 10,
        "the new node wrote row D's events: {after:?}"
    );
    assert!(d.iter().all(|(_, _, e)| *e == old_epoch + 1), "{after:?}");

    // The subscriber: every hold once, in the show's order.
    let events = tokio::time::timeout(Duration::from_secs(60), async {
        let mut out = Vec::new();
        while out.len() < held.len() {
            match sub.next().await {
                Some(e) => out.push(e),
                None => break,
            }
        }
        out
    })
    .await
    .expect("every event reached the subscriber");
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut last = None;
    for e in &events {
        assert!(
            last.is_none_or(|l| e.position > l),
            "positions only increase"
        );
        last = Some(e.position);
        for s in &e.seats {
            *seen.entry(s.label.as_str().to_owned()).or_default() += 1;
        }
    }
    for label in &held {
        assert_eq!(seen.get(label), Some(&1), "{label} once to the subscriber");
    }
    assert_eq!(seen.len(), held.len());
    let extra = tokio::time::timeout(Duration::from_millis(500), sub.next()).await;
    assert!(extra.is_err(), "an extra event arrived: {extra:?}");

    // A pager of the whole feed: each event once.
    let mut cursor = Cursor::start();
    let mut paged: HashMap<String, usize> = HashMap::new();
    for _ in 0..100 {
        let page = feed::read_after(&client, &db.settings(), &cursor, 7)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        for e in page {
            assert!(!cursor.passed(e.position), "the pager went backwards");
            cursor.advance(e.position);
            for s in &e.seats {
                *paged.entry(s.label.as_str().to_owned()).or_default() += 1;
            }
        }
    }
    assert_eq!(paged, seen, "the pager saw what the subscriber saw");
    stop.cancel();
    db.audit_moved().await;
}
