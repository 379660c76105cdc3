//! Test support: a server on port 0 against a fresh database of its own, and a small
//! HTTP client that can also send what a well-behaved client never would.

pub mod audit;
pub mod contract;
pub mod receiver;

use booking_core::deadpool_postgres::Pool;
use booking_core::tokio_postgres::{self, NoTls};
use booking_server::Config;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const ADMIN: &str = "test-admin-token-0123456789";

fn server_url() -> String {
    std::env::var("DATABASE_URL").expect(
        "DATABASE_URL must name a PostgreSQL server the tests may create databases on: \
         run scripts/test.sh, or `export DATABASE_URL=$(scripts/pg.sh start)`",
    )
}

/// `url` with its database name replaced by `db` (URL or key=value form).
pub fn with_database(url: &str, db: &str) -> String {
    match url.split_once("://") {
        None => format!("{url} dbname={db}"),
        Some((scheme, rest)) => {
            let (before_query, query) = match rest.split_once('?') {
                Some((b, q)) => (b, Some(q)),
                None => (rest, None),
            };
            let authority = before_query.split('/').next().unwrap_or("");
            match query {
                Some(q) => format!("{scheme}://{authority}/{db}?{q}"),
                None => format!("{scheme}://{authority}/{db}"),
            }
        }
    }
}

/// A fresh, empty database; returns its URL.
pub async fn fresh_database() -> String {
    let url = server_url();
    let admin: tokio_postgres::Config = url.parse().expect("DATABASE_URL parses");
    let (client, conn) = admin.connect(NoTls).await.expect("connect to DATABASE_URL");
    tokio::spawn(conn);
    let name = format!("booking_test_{}", uuid::Uuid::new_v4().simple());
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create test database");
    if crate::formation::is_coordinator(&client).await {
        crate::formation::prepare(&admin, &client, &name).await;
    }
    with_database(&url, &name)
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub pool: Pool,
    pub database_url: String,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_with(|_| {}).await
    }

    /// Starts with the default configuration changed by `tweak`.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        TestServer::start_on(&fresh_database().await, tweak).await
    }

    /// Starts on an existing database (another server may be using it too).
    pub async fn start_on(database_url: &str, tweak: impl FnOnce(&mut Config)) -> TestServer {
        TestServer::start_adjusted(database_url, tweak, |_| {}).await
    }

    /// Starts on an existing database with the state changed by `adjust` before it
    /// serves (a limit's manual clock, say).
    pub async fn start_adjusted(
        database_url: &str,
        tweak: impl FnOnce(&mut Config),
        adjust: impl FnOnce(&mut booking_server::AppState),
    ) -> TestServer {
        let database_url = database_url.to_owned();
        let mut config = Config::for_database(&database_url);
        config.admin_token = Some(ADMIN.to_owned());
        config.demo_show = false;
        tweak(&mut config);
        config.validate().expect("valid test config");
        let mut state = booking_server::prepare(&config).await.expect("prepare");
        adjust(std::sync::Arc::get_mut(&mut state).expect("the state is not shared yet"));
        let pool = state.pool.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(booking_server::run(listener, state, async {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            pool,
            database_url,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    /// Signals shutdown and waits for `run` to return.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            tokio::time::timeout(Duration::from_secs(30), h)
                .await
                .expect("the server stops")
                .unwrap();
        }
    }

    pub fn begin_shutdown(&mut self) -> JoinHandle<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.handle.take().expect("running")
    }

    pub fn call(&self, method: Method, path: &str) -> Call {
        Call {
            addr: self.addr,
            method,
            path: path.to_owned(),
            headers: Vec::new(),
            body: None,
        }
    }

    pub fn get(&self, path: &str) -> Call {
        self.call(Method::GET, path)
    }

    pub fn post(&self, path: &str) -> Call {
        self.call(Method::POST, path)
    }

    pub fn delete(&self, path: &str) -> Call {
        self.call(Method::DELETE, path)
    }

    /// A count from the database, for checks that nothing changed.
    pub async fn count(&self, sql: &str) -> i64 {
        let client = self.pool.get().await.unwrap();
        client.query_one(sql, &[]).await.unwrap().get(0)
    }

    /// Creates a show through the API; returns its id.
    pub async fn show(&self, rows: &[(&str, u32)]) -> String {
        let rows: Vec<Value> = rows
            .iter()
            .map(|(r, n)| serde_json::json!({"row": r, "seats": n}))
            .collect();
        let res = self
            .post("/shows")
            .admin()
            .json(serde_json::json!({
                "title": "Test", "starts_at": "2030-01-01T20:00:00Z",
                "prices": {"standard": 1000}, "rows": rows
            }))
            .send()
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
        res.json["id"].as_str().unwrap().to_owned()
    }

    /// Holds seats through the API for `user`; returns the hold id.
    pub async fn hold(&self, show: &str, user: &str, seats: &[&str]) -> String {
        let res = self
            .post(&format!("/shows/{show}/holds"))
            .user(user)
            .json(serde_json::json!({ "seats": seats }))
            .send()
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
        res.json["hold_id"].as_str().unwrap().to_owned()
    }

    /// Moves a hold's deadline into the past.
    pub async fn lapse(&self, hold_id: &str) {
        let id = booking_core::HoldId::parse(hold_id).unwrap();
        let client = self.pool.get().await.unwrap();
        client
            .execute(
                "UPDATE holds SET created_at = now() - interval '2 minutes',
                                  expires_at = now() - interval '1 minute'
                  WHERE show_id = $1 AND id = $2",
                &[&id.show().get(), &id.key()],
            )
            .await
            .unwrap();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A client for a server this test did not start in-process (the real binary).
pub struct Client {
    addr: SocketAddr,
}

impl Client {
    pub fn new(addr: SocketAddr) -> Client {
        Client { addr }
    }

    pub fn call(&self, method: Method, path: &str) -> Call {
        Call {
            addr: self.addr,
            method,
            path: path.to_owned(),
            headers: Vec::new(),
            body: None,
        }
    }

    pub fn post(&self, path: &str) -> Call {
        self.call(Method::POST, path)
    }

    pub fn get(&self, path: &str) -> Call {
        self.call(Method::GET, path)
    }

    pub fn delete(&self, path: &str) -> Call {
        self.call(Method::DELETE, path)
    }

    /// The status of a GET, or `None` when no connection could be made.
    pub async fn try_get(&self, path: &str) -> Option<StatusCode> {
        let stream = TcpStream::connect(self.addr).await.ok()?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .ok()?;
        tokio::spawn(conn);
        let req = Request::builder()
            .uri(path)
            .header("host", self.addr.to_string())
            .body(Full::new(Bytes::new()))
            .ok()?;
        let res = tokio::time::timeout(Duration::from_secs(5), sender.send_request(req))
            .await
            .ok()?
            .ok()?;
        Some(res.status())
    }
}

pub struct Call {
    addr: SocketAddr,
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Bytes>,
}

#[derive(Debug)]
pub struct Res {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub json: Value,
}

impl Res {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The error code of a JSON error answer, checking its shape on the way.
    pub fn error(&self) -> &str {
        assert_eq!(
            self.headers
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/json; charset=utf-8"),
            "errors are JSON: {}",
            self.text()
        );
        let message = self.json["message"].as_str().unwrap_or_default();
        assert!(
            !message.is_empty(),
            "an error has a message: {}",
            self.text()
        );
        self.json["error"].as_str().expect("an error has a code")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Call {
    pub fn header(mut self, name: &str, value: &str) -> Call {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn user(self, user: &str) -> Call {
        self.header("x-user-id", user)
    }

    pub fn admin(self) -> Call {
        self.header("authorization", &format!("Bearer {ADMIN}"))
    }

    pub fn key(self, key: &str) -> Call {
        self.header("idempotency-key", key)
    }

    pub fn json(mut self, v: Value) -> Call {
        self.body = Some(Bytes::from(v.to_string()));
        self.header("content-type", "application/json")
    }

    pub fn raw(mut self, body: impl Into<Bytes>) -> Call {
        self.body = Some(body.into());
        self
    }

    pub async fn send(self) -> Res {
        let stream = TcpStream::connect(self.addr).await.expect("connect");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut b = Request::builder()
            .method(self.method.clone())
            .uri(&self.path)
            .header("host", self.addr.to_string());
        for (k, v) in &self.headers {
            b = b.header(k, v);
        }
        let req = b.body(Full::new(self.body.unwrap_or_default())).unwrap();
        let res = tokio::time::timeout(Duration::from_secs(60), sender.send_request(req))
            .await
            .expect("an answer within 60 s")
            .expect("a response");
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        contract::check(&self.method, &self.path, status, &headers, &body);
        let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Res {
            status,
            headers,
            body,
            json,
        }
    }
}

/// Sends raw bytes and reads the raw answer until the server closes or 10 s pass.
pub async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    raw_exchange_closing(addr, request).await.0
}

/// Like [`raw_exchange`]; also tells whether the server closed the connection (rather
/// than our 10 s running out).
pub async fn raw_exchange_closing(addr: SocketAddr, request: &[u8]) -> (String, bool) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before reading everything: that is fine.
    let _ = s.write_all(request).await;
    let mut out = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .is_ok();
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

/// A Server-Sent Events stream, read as it arrives.
pub struct Sse {
    body: hyper::body::Incoming,
    buf: String,
    pub status: StatusCode,
    pub headers: HeaderMap,
}

#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: String,
    pub event: String,
    pub data: Value,
}

impl Sse {
    pub async fn open(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Sse {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut b = Request::builder()
            .uri(path)
            .header("host", addr.to_string());
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let res = sender
            .send_request(b.body(Full::new(Bytes::new())).unwrap())
            .await
            .unwrap();
        // Keep the sender alive with the connection task: dropping it would not close
        // the connection, but holding it is harmless.
        std::mem::forget(sender);
        Sse {
            status: res.status(),
            headers: res.headers().clone(),
            body: res.into_body(),
            buf: String::new(),
        }
    }

    /// The next event (comments and `retry:` skipped); `None` when the stream ended.
    /// Panics when nothing arrives within 30 s.
    pub async fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf[..end].to_owned();
                self.buf.drain(..end + 2);
                let (mut id, mut event, mut data) = (String::new(), String::new(), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        id = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        event = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push_str(v);
                    }
                }
                if !event.is_empty() {
                    let data = serde_json::from_str(&data).expect("event data is JSON");
                    return Some(SseEvent { id, event, data });
                }
            }
            let frame = tokio::time::timeout(Duration::from_secs(30), self.body.frame())
                .await
                .expect("an event within 30 s");
            match frame {
                None => return None,
                Some(Err(e)) => panic!("stream error: {e}"),
                Some(Ok(f)) => {
                    if let Ok(data) = f.into_data() {
                        self.buf
                            .push_str(std::str::from_utf8(&data).expect("UTF-8"));
                    }
                }
            }
        }
    }
}
