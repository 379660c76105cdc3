//! On a Citus formation a statement across shows reuses the one connection each pooled
//! session keeps to every worker (`citus.max_adaptive_executor_pool_size` = 1, set by
//! `database::pool`). At Citus's default (16) the executor opens more connections to
//! a worker for such a statement whenever its shards' tasks are still queued after
//! `citus.executor_slow_start_interval` (10 ms: under load), and closes them after the
//! transaction; each is a fork, a TLS handshake and Citus's start-up on the worker.
//! Through the server, the queue admitter's pass (a join of every shard of `queues`
//! and `shows`, four times a second) opened some 23 a show created: 240 small shows
//! took 55 s to create, 4.9 s with the setting; HTTP holds at c=32 went from 85 to 135
//! a second. Here the slow start is made immediate (the condition load makes) and the
//! new sessions counted with the workers' `pg_stat_database.sessions` of the test's
//! database (its own: no other test connects to it). Nothing to check on plain
//! PostgreSQL.

use crate::common::TestDb;
use booking_core::queries::{self, ShowQuery};
use booking_core::queue::admit;
use booking_core::{database, PoolOptions};

/// Sessions the workers have had in this database so far (the statement's own
/// connections included: two, one a worker).
async fn worker_sessions(db: &TestDb) -> i64 {
    db.count(
        "SELECT sum(result::bigint)::bigint FROM run_command_on_workers(
             $$SELECT sessions FROM pg_stat_database WHERE datname = current_database()$$)",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_across_shows_reuse_the_connections_to_the_workers() {
    let db = TestDb::with_pool(2).await;
    if !db.settings().distributed {
        return;
    }
    for _ in 0..4 {
        db.show(2, 10).await;
    }
    let name = db.config.get_dbname().unwrap().to_owned();
    db.client()
        .await
        .batch_execute(&format!(
            "ALTER DATABASE {name} SET citus.executor_slow_start_interval = 0"
        ))
        .await
        .unwrap();
    // A pool of the engine's own, whose sessions start with that.
    let pool = database::pool(db.config.clone(), &PoolOptions::default()).unwrap();
    let engine = db.engine();
    let mut client = database::client(&pool).await.unwrap();
    // Its session opens its own connection to each worker once.
    queries::shows(&client, &ShowQuery::default())
        .await
        .unwrap();
    let before = worker_sessions(&db).await;
    for _ in 0..20 {
        // Reads of every shard: the admitter's pass and the list of shows.
        admit::admit_once(&mut client, &engine).await.unwrap();
        queries::shows(&client, &ShowQuery::default())
            .await
            .unwrap();
    }
    let opened = worker_sessions(&db).await - before;
    // The second count's own two.
    assert!(
        opened <= 2,
        "40 reads of every shard opened {} new connections to the workers",
        opened - 2
    );
}
