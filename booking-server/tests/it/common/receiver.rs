//! A real webhook receiver on loopback: an HTTP server the test controls (down, slow,
//! failing, healthy), that keeps every request it got and checks nothing itself.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{HeaderMap, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpSocket;
use tokio::task::{JoinHandle, JoinSet};

/// How the receiver answers, for requests whose show it is asked for (or all).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// `204` at once.
    Ok,
    /// This status at once.
    Status(u16),
    /// Holds the request this long, then answers `204`.
    Slow(Duration),
}

/// One request as it arrived.
#[derive(Clone, Debug)]
pub struct Got {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub json: Value,
    /// What the receiver answered (for a slow answer: what it meant to answer; the
    /// sender may have given up first).
    pub answered: u16,
}

impl Got {
    pub fn id(&self) -> &str {
        self.headers["webhook-id"].to_str().unwrap()
    }
    pub fn show(&self) -> &str {
        self.json["data"]["show_id"].as_str().unwrap()
    }
}

#[derive(Default)]
struct Shared {
    answer: Option<Answer>,
    per_show: HashMap<String, Answer>,
    got: Vec<Got>,
    /// Requests being handled now, by path and webhook-id, and the most ever at once.
    in_flight: HashMap<String, usize>,
    max_in_flight_per_id: usize,
}

pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    server: Option<JoinHandle<()>>,
    /// Set: it speaks TLS with this configuration.
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Receiver {
    /// Listening on a free loopback port, answering `Ok`.
    pub async fn start() -> Receiver {
        let mut r = Receiver {
            addr: "127.0.0.1:0".parse().unwrap(),
            shared: Arc::new(Mutex::new(Shared {
                answer: Some(Answer::Ok),
                ..Shared::default()
            })),
            server: None,
            tls: None,
        };
        r.up().await;
        r
    }

    /// Listening over TLS with `config` (its URL is `https://127.0.0.1:port/hook`).
    pub async fn start_tls(config: tokio_rustls::rustls::ServerConfig) -> Receiver {
        let mut r = Receiver::start().await;
        r.tls = Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)));
        r.up().await;
        r
    }

    /// A receiver whose port is known but that is down (connections refused).
    pub async fn down_from_start() -> Receiver {
        let mut r = Receiver::start().await;
        r.down();
        r
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}/hook", self.addr)
    }

    /// Stops listening and drops every open connection: connects are refused.
    pub fn down(&mut self) {
        if let Some(s) = self.server.take() {
            s.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn up(&mut self) {
        self.down();
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        // The old listener's abort may take a moment to close the socket.
        let mut tries = 0;
        loop {
            match socket.bind(self.addr) {
                Ok(()) => break,
                Err(e) if tries < 100 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("rebind {}: {e}", self.addr),
            }
        }
        let listener = socket.listen(64).unwrap();
        self.addr = listener.local_addr().unwrap();
        let shared = self.shared.clone();
        let tls = self.tls.clone();
        self.server = Some(tokio::spawn(async move {
            // Connections live in this set: aborting the server drops them all.
            let mut conns = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let shared = shared.clone();
                let tls = tls.clone();
                conns.spawn(async move {
                    let service = service_fn(move |req| handle(shared.clone(), req));
                    match tls {
                        None => {
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                        Some(acceptor) => {
                            let Ok(stream) = acceptor.accept(stream).await else {
                                return;
                            };
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                    }
                });
                while conns.try_join_next().is_some() {}
            }
        }));
    }

    /// How every request is answered from now on (unless its show has its own).
    pub fn answer(&self, a: Answer) {
        self.shared.lock().answer = Some(a);
    }

    /// How requests about `show` are answered from now on.
    pub fn answer_show(&self, show: &str, a: Answer) {
        self.shared.lock().per_show.insert(show.to_owned(), a);
    }

    /// Every request so far, in arrival order.
    pub fn got(&self) -> Vec<Got> {
        self.shared.lock().got.clone()
    }

    /// The most requests with one path and webhook-id that were ever handled at once.
    pub fn max_in_flight_per_id(&self) -> usize {
        self.shared.lock().max_in_flight_per_id
    }

    /// Waits (up to `within`) until `done` holds for what was received.
    pub async fn wait_for(&self, within: Duration, what: &str, done: impl Fn(&[Got]) -> bool) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if done(&self.got()) {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                let got: Vec<String> = self
                    .got()
                    .iter()
                    .map(|g| format!("{} {} {}", g.id(), g.json["type"], g.answered))
                    .collect();
                panic!("the receiver did not get {what} within {within:?}; it got {got:#?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.down();
    }
}

async fn handle(
    shared: Arc<Mutex<Shared>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let show = json["data"]["show_id"].as_str().unwrap_or("").to_owned();
    // Per endpoint (path) and event: two endpoints may get one event at once.
    let id = format!(
        "{} {}",
        parts.uri,
        parts
            .headers
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    );
    let answer = {
        let mut s = shared.lock();
        let a = s
            .per_show
            .get(&show)
            .copied()
            .or(s.answer)
            .unwrap_or(Answer::Ok);
        let n = s.in_flight.entry(id.clone()).or_default();
        *n += 1;
        let n = *n;
        s.max_in_flight_per_id = s.max_in_flight_per_id.max(n);
        a
    };
    let status = match answer {
        Answer::Ok => 204,
        Answer::Status(s) => s,
        Answer::Slow(d) => {
            // Recorded before the wait: "it arrived" is what a test of a sender killed
            // mid-delivery waits for.
            shared.lock().got.push(Got {
                headers: parts.headers.clone(),
                body: body.clone(),
                json: json.clone(),
                answered: 0,
            });
            tokio::time::sleep(d).await;
            204
        }
    };
    {
        let mut s = shared.lock();
        if let Some(n) = s.in_flight.get_mut(&id) {
            *n -= 1;
        }
        if !matches!(answer, Answer::Slow(_)) {
            s.got.push(Got {
                headers: parts.headers.clone(),
                body,
                json,
                answered: status,
            });
        }
    }
    let mut res = Response::new(Full::new(Bytes::new()));
    *res.status_mut() = StatusCode::from_u16(status).unwrap();
    Ok(res)
}
