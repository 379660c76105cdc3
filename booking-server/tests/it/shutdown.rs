//! Shutdown leaves nothing behind: no background task, no database connection.

use crate::common::{fresh_database, Client, Sse, ADMIN};
use booking_core::tokio_postgres::{self, NoTls};
use booking_server::Config;
use serde_json::json;
use std::time::Duration;

/// Connections to the database `name`, counted from another database of the server.
async fn connections_to(name: &str) -> i64 {
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let admin: tokio_postgres::Config = url.parse().unwrap();
    let (client, conn) = admin.connect(NoTls).await.unwrap();
    tokio::spawn(conn);
    client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&name],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_leaves_no_task_and_no_database_connection() {
    let url = fresh_database().await;
    let db_name = url.rsplit('/').next().unwrap().to_owned();
    let mut config = Config::for_database(&url);
    config.admin_token = Some(ADMIN.to_owned());
    config.demo_show = false;
    let state = booking_server::prepare(&config).await.expect("prepare");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(booking_server::run(listener, state.clone(), async {
        let _ = stopped.await;
    }));

    // Set every background part to work: the feed and its LISTEN connection, an event
    // stream, the seat cache's follower, the hold batches, the sweeper.
    let client = Client::new(addr);
    let show = client
        .post("/shows")
        .admin()
        .json(
            json!({"title": "Shutdown", "starts_at": "2030-01-01T20:00:00Z",
                     "rows": [{"row": "A", "seats": 10}]}),
        )
        .send()
        .await;
    assert_eq!(show.status, 201, "{:?}", show.json);
    let show = match &show.json["id"] {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut sse = Sse::open(addr, &format!("/shows/{show}/events"), &[]).await;
    assert_eq!(
        client.try_get(&format!("/shows/{show}/seats")).await,
        Some(hyper::StatusCode::OK)
    );
    for seat in ["A1", "A2", "A3"] {
        let hold = client
            .post(&format!("/shows/{show}/holds"))
            .user("alice")
            .json(json!({"seats": [seat], "ttl_seconds": 1}))
            .send()
            .await;
        assert_eq!(hold.status, 201, "{:?}", hold.json);
    }
    assert!(
        sse.next_event().await.is_some(),
        "the stream carries events"
    );
    assert!(state.engine.tasks_running() > 0, "background tasks run");
    assert!(connections_to(&db_name).await > 0);

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(60), server)
        .await
        .expect("the server stops")
        .unwrap();

    assert_eq!(
        state.engine.tasks_running(),
        0,
        "a background task outlived the server"
    );
    // Backends end a moment after their client closes the socket.
    let mut open = connections_to(&db_name).await;
    for _ in 0..100 {
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        open = connections_to(&db_name).await;
    }
    assert_eq!(open, 0, "database connections left open after shutdown");
}
