//! Webhooks across processes: `kill -9` of the real binary mid-delivery loses no event
//! (the one in flight comes again, with the same webhook-id), and two servers on one
//! database never send one event twice at once; a receiver that stalls takes no
//! connection from bookings.

use super::{check_against_feed, create_hook, feed, PATIENCE};
use crate::common::receiver::{Answer, Receiver};
use crate::common::{Client, TestServer, ADMIN};
use hyper::StatusCode;
use serde_json::json;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_booking-server");

/// The real binary on a free port of `database_url`; returns it and a client.
async fn spawn_server(database_url: &str) -> (Child, Client) {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let child = Command::new(BIN)
        .env("DATABASE_URL", database_url)
        .env("BIND_ADDR", &addr)
        .env("ADMIN_TOKEN", ADMIN)
        .env("WEBHOOK_TIMEOUT_MS", "2000")
        .env("LOG_FORMAT", "json")
        .env_remove("WEBHOOK_RETRY_SECONDS")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let client = Client::new(addr.parse().unwrap());
    for _ in 0..600 {
        if client.try_get("/readyz").await == Some(StatusCode::OK) {
            return (child, client);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the server did not come up");
}

async fn new_show(client: &Client) -> String {
    let r = client
        .post("/shows")
        .admin()
        .json(json!({"title": "T", "starts_at": "2030-01-01T20:00:00Z",
                     "rows": [{"row": "A", "seats": 8}, {"row": "B", "seats": 8}]}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    r.json["id"].as_str().unwrap().to_owned()
}

async fn hold(client: &Client, show: &str, user: &str, seat: &str) {
    let r = client
        .post(&format!("/shows/{show}/holds"))
        .user(user)
        .json(json!({"seats": [seat]}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_delivery_loses_no_event() {
    let rx = Receiver::start().await;
    rx.answer(Answer::Slow(Duration::from_secs(60)));
    let database_url = crate::common::fresh_database().await;
    let (mut child, client) = spawn_server(&database_url).await;
    let r = client
        .post("/webhooks")
        .admin()
        .json(json!({"url": rx.url(), "events": ["hold.created"]}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let secret = r.json["secret"].as_str().unwrap().to_owned();
    let show = new_show(&client).await;
    for (i, seat) in ["A1", "A2", "A3", "A4"].iter().enumerate() {
        hold(&client, &show, &format!("u{i}"), seat).await;
    }
    rx.wait_for(PATIENCE, "a delivery in flight", |g| !g.is_empty())
        .await;
    child.kill().await.unwrap(); // SIGKILL
    let in_flight = rx.got()[0].id().to_owned();

    // A restarted server takes over once the dead one's lease runs out.
    rx.answer(Answer::Ok);
    let mut s = TestServer::start_on(&database_url, |_| {}).await;
    let feed = feed(&database_url).await;
    assert_eq!(feed.len(), 4);
    rx.wait_for(PATIENCE, "every event", |g| {
        g.iter().filter(|g| g.answered == 204).count() >= feed.len()
    })
    .await;
    let got = rx.got();
    check_against_feed(&got, &feed, &secret);
    assert!(
        got.iter().filter(|g| g.id() == in_flight).count() >= 2,
        "the delivery cut off was sent again"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_deliver_each_event_once_at_a_time() {
    let rx = Receiver::start().await;
    // Slow enough that two senders of one event would overlap; fast enough for the
    // timeout.
    rx.answer(Answer::Slow(Duration::from_millis(200)));
    let mut a = TestServer::start().await;
    let (mut child, b) = spawn_server(&a.database_url).await;
    let (_, secret) = create_hook(&a, &format!("{}/a", rx.url())).await;
    let (_, secret_b) = {
        let r = b
            .post("/webhooks")
            .admin()
            .json(json!({"url": format!("{}/b", rx.url()), "events": ["hold.created"]}))
            .send()
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        ((), r.json["secret"].as_str().unwrap().to_owned())
    };
    let shows = [new_show(&b).await, new_show(&b).await, new_show(&b).await];
    for (i, seat) in ["A1", "A2", "A3", "A4", "B1", "B2"].iter().enumerate() {
        for (j, show) in shows.iter().enumerate() {
            if (i + j) % 2 == 0 {
                a.hold(show, &format!("u{i}"), &[seat]).await;
            } else {
                hold(&b, show, &format!("u{i}"), seat).await;
            }
        }
    }
    let feed = feed(&a.database_url).await;
    assert_eq!(feed.len(), 18);
    // Each event to each of the two endpoints.
    rx.wait_for(PATIENCE, "every event twice", |g| g.len() >= 2 * feed.len())
        .await;
    // A moment for a duplicate, if any were coming.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let got = rx.got();
    assert_eq!(
        got.len(),
        2 * feed.len(),
        "an event was sent more than once"
    );
    assert_eq!(
        rx.max_in_flight_per_id(),
        1,
        "two sends of one event to one endpoint at once"
    );
    let verifier_a = standardwebhooks::Webhook::new(&secret).unwrap();
    let verifier_b = standardwebhooks::Webhook::new(&secret_b).unwrap();
    let (mut to_a, mut to_b) = (Vec::new(), Vec::new());
    for g in got {
        if verifier_a.verify(&g.body, &g.headers).is_ok() {
            to_a.push(g);
        } else {
            verifier_b.verify(&g.body, &g.headers).unwrap();
            to_b.push(g);
        }
    }
    check_against_feed(&to_a, &feed, &secret);
    check_against_feed(&to_b, &feed, &secret_b);
    let _ = child.kill().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_receiver_takes_no_connection_from_bookings() {
    // Every endpoint's receiver holds its requests open: each process's worker fills
    // its slots with attempts that hang, while bookings go on, on the main pool.
    let rx = Receiver::start().await;
    rx.answer(Answer::Slow(Duration::from_secs(120)));
    let mut s = TestServer::start_with(|c| {
        c.webhook_timeout_ms = 60_000;
        c.pool_size = Some(2);
    })
    .await;
    for i in 0..20 {
        create_hook(&s, &format!("{}/{i}", rx.url())).await;
    }
    let show = s.show(&[("A", 40)]).await;
    s.hold(&show, "alice", &["A1"]).await;
    // 16 attempts in flight (the worker's cap), each waiting for its receiver. All are
    // the same event (the hold), to 16 of the 20 endpoints.
    rx.wait_for(PATIENCE, "the worker's attempts in flight", |g| {
        g.len() >= 16
    })
    .await;
    for i in 2..=30 {
        let h = s.hold(&show, &format!("u{i}"), &[&format!("A{i}")]).await;
        let r = s
            .post(&format!("/holds/{h}/confirm"))
            .user(&format!("u{i}"))
            .send()
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    }
    let client = crate::common::audit::connect(&s.database_url).await;
    let webhook_connections: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND application_name = 'booking-webhooks'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        webhook_connections <= 2,
        "{webhook_connections} connections"
    );
    // Nothing later was sent to an endpoint while its first event hangs (a timed-out
    // attempt would be retried, never skipped).
    let got = rx.got();
    let first = got[0].id().to_owned();
    assert!(
        got.iter().all(|g| g.id() == first),
        "a later event overtook the first"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_webhook_ca_file_that_is_not_one_stops_the_server() {
    let not_pem = std::env::temp_dir().join(format!("not-a-ca-{}.pem", uuid::Uuid::new_v4()));
    std::fs::write(&not_pem, "hello").unwrap();
    for file in [
        not_pem.clone(),
        std::env::temp_dir().join("no-such-dir/ca.pem"),
    ] {
        let out = Command::new(BIN)
            .env("DATABASE_URL", "postgres://127.0.0.1:1/none")
            .env("WEBHOOK_CA_FILE", &file)
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", file.display());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("WEBHOOK_CA_FILE"), "{err}");
    }
    let _ = std::fs::remove_file(&not_pem);
}
