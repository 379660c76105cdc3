//! The real binary: configuration errors, `--help`, and graceful shutdown on SIGTERM.

use crate::common::ADMIN;
use hyper::StatusCode;
use serde_json::{json, Value};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_booking-server");

fn server() -> Command {
    let mut c = Command::new(BIN);
    for var in [
        "BIND_ADDR",
        "HOLD_TTL_SECONDS",
        "MAX_HOLD_SECONDS",
        "MAX_SEATS_PER_HOLD",
        "ADMIN_TOKEN",
        "POOL_SIZE",
        "POOL_WAIT_MS",
        "LOCK_TIMEOUT_MS",
        "REQUEST_TIMEOUT_MS",
        "DEMO_SHOW",
        "LOG_FORMAT",
    ] {
        c.env_remove(var);
    }
    c.kill_on_drop(true);
    c
}

#[tokio::test]
async fn help_explains_every_setting() {
    let out = server().arg("--help").output().await.unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for var in [
        "DATABASE_URL",
        "BIND_ADDR",
        "HOLD_TTL_SECONDS",
        "MAX_HOLD_SECONDS",
        "MAX_SEATS_PER_HOLD",
        "ADMIN_TOKEN",
        "POOL_SIZE",
        "POOL_WAIT_MS",
        "LOCK_TIMEOUT_MS",
        "REQUEST_TIMEOUT_MS",
        "DEMO_SHOW",
        "LOG_FORMAT",
    ] {
        assert!(text.contains(var), "--help does not mention {var}:\n{text}");
    }
}

#[tokio::test]
async fn bad_settings_are_refused_with_a_clear_message() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("POOL_SIZE", "0")], "pool-size"),
        (&[("HOLD_TTL_SECONDS", "9999")], "hold-ttl-seconds"),
        (&[("BIND_ADDR", "not-an-address")], "bind-addr"),
        (&[("LOG_FORMAT", "xml")], "log-format"),
        (&[("DEMO_SHOW", "perhaps")], "demo-show"),
        (&[("LOCK_TIMEOUT_MS", "-1")], "lock-timeout-ms"),
        (&[("ADMIN_TOKEN", "short")], "ADMIN_TOKEN"),
        (&[("DATABASE_URL", "postgres://[::1")], "DATABASE_URL"),
    ];
    for (env, expect) in cases {
        let mut c = server();
        c.env("DATABASE_URL", "postgres://127.0.0.1:1/none");
        for (k, v) in *env {
            c.env(k, v);
        }
        let out = c.output().await.unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{env:?} was accepted");
        assert!(
            err.contains(expect),
            "{env:?}: the message does not name {expect}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    let out = server().env_remove("DATABASE_URL").output().await.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("database-url"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_when_sigterm_arrives_completes_and_the_server_exits_0() {
    let database_url = crate::common::fresh_database().await;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let mut child = server()
        .env("DATABASE_URL", &database_url)
        .env("BIND_ADDR", &addr)
        .env("ADMIN_TOKEN", ADMIN)
        .env("LOCK_TIMEOUT_MS", "60000")
        .env("REQUEST_TIMEOUT_MS", "60000")
        .env("LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = crate::common::Client::new(addr.parse().unwrap());
    let mut ready = false;
    for _ in 0..300 {
        if client.try_get("/readyz").await == Some(StatusCode::OK) {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "the server came up");
    let show = client
        .post("/shows")
        .admin()
        .json(json!({"title": "T", "starts_at": "2030-01-01T20:00:00Z", "rows": [{"row": "A", "seats": 2}]}))
        .send()
        .await;
    assert_eq!(show.status, StatusCode::CREATED);
    let show = show.json["id"].as_str().unwrap().to_owned();

    // Make the next hold wait on a row lock held by another session.
    let (locker, conn) =
        booking_core::tokio_postgres::connect(&database_url, booking_core::tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(conn);
    locker
        .batch_execute("BEGIN; SELECT * FROM seats WHERE label = 'A1' FOR UPDATE")
        .await
        .unwrap();
    let in_flight = tokio::spawn(
        client
            .post(&format!("/shows/{show}/holds"))
            .user("alice")
            .json(json!({"seats": ["A1"]}))
            .send(),
    );
    // Wait until the server's transaction is blocked on that lock: then it is in flight.
    let mut waiting = false;
    for _ in 0..300 {
        let n: i64 = locker
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if n > 0 {
            waiting = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(waiting, "the request reached the database");

    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    // The server stops accepting new connections while the old request is still open.
    let mut refused = false;
    for _ in 0..100 {
        if client.try_get("/healthz").await.is_none() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused, "new connections are refused after SIGTERM");

    locker.batch_execute("ROLLBACK").await.unwrap();
    let res = in_flight.await.unwrap();
    assert_eq!(
        res.status,
        StatusCode::CREATED,
        "the request in flight completed: {}",
        res.text()
    );
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the server exits")
        .unwrap();
    assert!(status.success(), "exit status {status}");
}

/// Starts the real binary on `database_url`; returns it and a client once it is ready.
pub(crate) async fn spawn_ready(
    database_url: &str,
) -> (tokio::process::Child, crate::common::Client) {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let child = server()
        .env("DATABASE_URL", database_url)
        .env("BIND_ADDR", &addr)
        .env("ADMIN_TOKEN", ADMIN)
        .env("LOCK_TIMEOUT_MS", "30000")
        .env("REQUEST_TIMEOUT_MS", "60000")
        .env("LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = crate::common::Client::new(addr.parse().unwrap());
    for _ in 0..300 {
        if client.try_get("/readyz").await == Some(StatusCode::OK) {
            return (child, client);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the server at {addr} did not come up");
}

/// Two real server processes on one database, one user sending 50 holds of two
/// seats at once, alternately to each: a show's `max_seats_per_user` of 6 gives
/// exactly three holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limit_per_buyer_holds_across_two_server_binaries() {
    let database_url = crate::common::fresh_database().await;
    let (mut first, a) = spawn_ready(&database_url).await;
    let (mut second, b) = spawn_ready(&database_url).await;
    let rows: Vec<_> = (0..10)
        .map(|i| json!({"row": ((b'A' + i) as char).to_string(), "seats": 10}))
        .collect();
    let show = a
        .post("/shows")
        .admin()
        .json(
            json!({"title": "T", "starts_at": "2030-01-01T20:00:00Z", "rows": rows,
                     "max_seats_per_user": 6}),
        )
        .send()
        .await;
    assert_eq!(show.status, StatusCode::CREATED, "{}", show.text());
    let show = show.json["id"].as_str().unwrap().to_owned();
    let (a, b) = (std::sync::Arc::new(a), std::sync::Arc::new(b));
    let mut tasks = Vec::new();
    for i in 0..50usize {
        let client = if i % 2 == 0 { a.clone() } else { b.clone() };
        let row = ((b'A' + (i / 5) as u8) as char).to_string();
        let seats = [
            format!("{row}{}", (i % 5) * 2 + 1),
            format!("{row}{}", (i % 5) * 2 + 2),
        ];
        let path = format!("/shows/{show}/holds");
        tasks.push(tokio::spawn(async move {
            client
                .post(&path)
                .user("scalper")
                .json(json!({ "seats": seats }))
                .send()
                .await
        }));
    }
    let mut statuses = std::collections::BTreeMap::new();
    for t in tasks {
        let r = t.await.unwrap();
        if r.status == StatusCode::CONFLICT {
            assert_eq!(r.error(), "user_limit_reached", "{}", r.text());
        }
        *statuses.entry(r.status.as_u16()).or_insert(0) += 1;
    }
    assert_eq!(statuses, [(201, 3), (409, 47)].into_iter().collect());
    for child in [&mut first, &mut second] {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
}

/// Two real server processes on one database, 200 buyers at once asking each for 1
/// to 4 places of an area of 100 (some with a seat too), alternately to each: every
/// hold has exactly what it asked for, every refusal names what was short, the area
/// never holds more than 100; once full, every later request is refused by both; the
/// places of released holds come back exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_area_never_passes_its_capacity_across_two_server_binaries() {
    let database_url = crate::common::fresh_database().await;
    let (mut first, a) = spawn_ready(&database_url).await;
    let (mut second, b) = spawn_ready(&database_url).await;
    let show = a
        .post("/shows")
        .admin()
        .json(json!({"title": "T", "starts_at": "2030-01-01T20:00:00Z",
                     "rows": [{"row": "A", "seats": 20}],
                     "areas": [{"area": "FLOOR", "capacity": 100}],
                     "prices": {"standard": 1000}}))
        .send()
        .await;
    assert_eq!(show.status, StatusCode::CREATED, "{}", show.text());
    let show = show.json["id"].as_str().unwrap().to_owned();
    let (a, b) = (std::sync::Arc::new(a), std::sync::Arc::new(b));
    let path = format!("/shows/{show}/holds");
    let mut tasks = Vec::new();
    for i in 0..200usize {
        let client = if i % 2 == 0 { a.clone() } else { b.clone() };
        let n = i % 4 + 1;
        // Every fifth also wants a seat, which four others want too.
        let body = if i % 5 == 0 {
            json!({"seats": [format!("A{}", i % 20 + 1)], "areas": {"FLOOR": n}})
        } else {
            json!({"areas": {"FLOOR": n}})
        };
        let path = path.clone();
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(&path)
                .user(&format!("u{i}"))
                .json(body.clone())
                .send()
                .await;
            (body, r)
        }));
    }
    let mut held = 0;
    let mut holds = Vec::new();
    for t in tasks {
        let (body, r) = t.await.unwrap();
        match r.status {
            StatusCode::CREATED => {
                assert_eq!(r.json["areas"], body["areas"]);
                assert_eq!(
                    r.json["seats"],
                    body.get("seats").cloned().unwrap_or(json!([]))
                );
                held += body["areas"]["FLOOR"].as_i64().unwrap();
                holds.push((
                    r.json["hold_id"].as_str().unwrap().to_owned(),
                    r.json["user_id"].as_str().unwrap().to_owned(),
                    body["areas"]["FLOOR"].as_i64().unwrap(),
                ));
            }
            StatusCode::CONFLICT => {
                assert_eq!(r.error(), "seats_unavailable", "{}", r.text());
                let named = r.json["seats"].as_array().unwrap().len()
                    + r.json
                        .get("areas")
                        .and_then(Value::as_array)
                        .map_or(0, Vec::len);
                assert!(named > 0, "a refusal names what was short: {}", r.text());
            }
            other => panic!("unexpected {other}: {}", r.text()),
        }
    }
    assert!(held <= 100, "held {held} of 100");
    let db = connect(&database_url).await;
    let count = |sql: String| {
        let db = &db;
        async move { db.query_one(&sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    let places = |filter: &str| {
        format!("SELECT count(*) FROM seats WHERE show_id = {show} AND area = 'FLOOR' AND {filter}")
    };
    assert_eq!(count(places("hold_id IS NOT NULL")).await, held);
    // All or none: each hold in the table has exactly the rows it was answered with.
    let partial = "SELECT count(*) FROM holds h
                    WHERE (SELECT count(*) FROM hold_seats hs WHERE hs.show_id = h.show_id AND hs.hold_id = h.id)
                       <> (SELECT count(*) FROM seats s WHERE s.show_id = h.show_id AND s.hold_id = h.id)";
    assert_eq!(count(partial.to_owned()).await, 0);
    assert_eq!(
        count("SELECT count(*) FROM holds".to_owned()).await,
        holds.len() as i64
    );

    // Fill it up; then both servers refuse every further place.
    for i in held..100 {
        let r = a
            .post(&path)
            .user(&format!("f{i}"))
            .json(json!({"areas": {"FLOOR": 1}}))
            .send()
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    }
    for (i, client) in [&a, &b, &a, &b].into_iter().enumerate() {
        let r = client
            .post(&path)
            .user(&format!("late{i}"))
            .json(json!({"areas": {"FLOOR": 1}}))
            .send()
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text());
        assert_eq!(r.json["areas"], json!(["FLOOR"]));
    }
    // Release three holds through the other server: exactly their places return.
    let mut freed = 0;
    for (id, user, n) in &holds[..3] {
        let r = b.delete(&format!("/holds/{id}")).user(user).send().await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
        freed += n;
    }
    assert_eq!(count(places("hold_id IS NOT NULL")).await, 100 - freed);
    for client in [&a, &b] {
        let areas = client.get(&format!("/shows/{show}/areas")).send().await;
        assert_eq!(areas.json["areas"][0]["available"], freed);
        assert_eq!(areas.json["areas"][0]["held"], 100 - freed);
    }
    for child in [&mut first, &mut second] {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
}

async fn connect(url: &str) -> booking_core::tokio_postgres::Client {
    let config = booking_core::database::parse_url(url).unwrap();
    let (client, conn) = config
        .connect(booking_core::tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}
