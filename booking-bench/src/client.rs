//! A small HTTP/1.1 client over hyper: one keep-alive connection per [`Conn`], the
//! requests the scenarios send, and a Server-Sent Events reader.

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

/// No request waits longer than this for its answer (the server's own request timeout
/// is 10 s by default): a hung request is counted as a `timeout` error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the server is: `host[:port]` for the `Host` header and the address to dial.
#[derive(Debug)]
pub struct Target {
    pub host: String,
    pub addr: String,
    pub admin_token: Option<String>,
    /// `--jwt-secret`: users are named by HS256 tokens instead of `X-User-Id`.
    pub tokens: Option<Tokens>,
}

/// Per-user bearer tokens for a server in `AUTH_MODE=jwt`, each minted once (valid a
/// day) and reused: the load measures the server's verification, not our signing.
pub struct Tokens {
    key: jsonwebtoken::EncodingKey,
    minted: std::sync::Mutex<std::collections::HashMap<String, Arc<str>>>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens")
    }
}

impl Tokens {
    pub fn new(secret: &str) -> Tokens {
        Tokens {
            key: jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
            minted: Default::default(),
        }
    }

    /// `Authorization` for `user`.
    fn bearer(&self, user: &str) -> String {
        let mut minted = self.minted.lock().expect("not poisoned");
        let token = minted.entry(user.to_owned()).or_insert_with(|| {
            let exp = chrono::Utc::now().timestamp() + 86_400;
            let claims = serde_json::json!({"sub": user, "exp": exp});
            let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
            jsonwebtoken::encode(&header, &claims, &self.key)
                .expect("HS256 signs")
                .into()
        });
        format!("Bearer {token}")
    }
}

impl Target {
    pub fn parse(
        url: &str,
        admin_token: Option<String>,
        jwt_secret: Option<&str>,
    ) -> Result<Arc<Target>, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("only http:// URLs are supported, not {url}"))?;
        let host = rest.trim_end_matches('/').to_owned();
        if host.is_empty() || host.contains('/') {
            return Err(format!("expected http://host[:port], got {url}"));
        }
        let addr = if host.contains(':') {
            host.clone()
        } else {
            format!("{host}:80")
        };
        Ok(Arc::new(Target {
            host,
            addr,
            admin_token,
            tokens: jwt_secret.map(Tokens::new),
        }))
    }
}

/// Why a request got no HTTP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Failure {
    /// The TCP connection or the HTTP handshake failed.
    Connect,
    /// The connection broke while sending or receiving.
    Io,
    /// No answer within [`REQUEST_TIMEOUT`].
    Timeout,
}

impl Failure {
    pub fn name(self) -> &'static str {
        match self {
            Failure::Connect => "connect",
            Failure::Io => "io",
            Failure::Timeout => "timeout",
        }
    }
}

/// An HTTP answer, body read in full.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Bytes,
    /// The answer said `Idempotent-Replayed: true`: a stored answer, replayed.
    pub replayed: bool,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// Who a request acts for.
#[derive(Debug, Clone, Copy)]
pub enum Caller<'a> {
    Anonymous,
    User(&'a str),
    /// A user sending an `Idempotency-Key` (user, key).
    Keyed(&'a str, &'a str),
    Admin,
}

/// Opens a TCP connection and does the HTTP/1.1 handshake; the connection's driver runs
/// as its own task.
pub async fn open(target: &Target) -> Result<SendRequest<Full<Bytes>>, Failure> {
    let stream = TcpStream::connect(&target.addr)
        .await
        .map_err(|_| Failure::Connect)?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|_| Failure::Connect)?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Builds a request: `body` is sent as JSON.
pub fn build(
    target: &Target,
    method: Method,
    path: &str,
    caller: Caller<'_>,
    body: Option<&Value>,
) -> Request<Full<Bytes>> {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("host", &target.host);
    match caller {
        Caller::Anonymous => {}
        Caller::User(u) | Caller::Keyed(u, _) => {
            b = match &target.tokens {
                Some(tokens) => b.header("authorization", tokens.bearer(u)),
                None => b.header("x-user-id", u),
            };
            if let Caller::Keyed(_, key) = caller {
                b = b.header("idempotency-key", key);
            }
        }
        Caller::Admin => {
            if let Some(t) = &target.admin_token {
                b = b.header("authorization", format!("Bearer {t}"));
            }
        }
    }
    let body = match body {
        Some(v) => {
            b = b.header("content-type", "application/json");
            Bytes::from(v.to_string())
        }
        None => Bytes::new(),
    };
    b.body(Full::new(body)).expect("valid request")
}

/// One keep-alive connection, reopened on the next request when it breaks.
pub struct Conn {
    target: Arc<Target>,
    sender: Option<SendRequest<Full<Bytes>>>,
    /// Connections opened, the first included.
    pub opened: u64,
}

impl Conn {
    /// A connection that dials on its first request.
    pub fn lazy(target: Arc<Target>) -> Conn {
        Conn {
            target,
            sender: None,
            opened: 0,
        }
    }

    /// A connection that is open now.
    pub async fn connect(target: Arc<Target>) -> Result<Conn, Failure> {
        let mut c = Conn::lazy(target);
        c.ensure().await?;
        Ok(c)
    }

    async fn ensure(&mut self) -> Result<(), Failure> {
        if let Some(s) = &mut self.sender {
            if s.ready().await.is_ok() {
                return Ok(());
            }
        }
        self.sender = None;
        let s = open(&self.target).await?;
        self.opened += 1;
        self.sender = Some(s);
        Ok(())
    }

    /// Sends a request and reads the whole answer.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        caller: Caller<'_>,
        body: Option<&Value>,
    ) -> Result<Reply, Failure> {
        self.ensure().await?;
        let req = build(&self.target, method, path, caller, body);
        let sender = self.sender.as_mut().expect("ensured");
        let res = tokio::time::timeout(REQUEST_TIMEOUT, async {
            let res = sender.send_request(req).await.map_err(|_| Failure::Io)?;
            let status = res.status().as_u16();
            let replayed = res
                .headers()
                .get("idempotent-replayed")
                .is_some_and(|v| v.as_bytes() == b"true");
            let body = res
                .into_body()
                .collect()
                .await
                .map_err(|_| Failure::Io)?
                .to_bytes();
            Ok(Reply {
                status,
                body,
                replayed,
            })
        })
        .await
        .unwrap_or(Err(Failure::Timeout));
        if res.is_err() {
            self.sender = None;
        }
        res
    }

    pub async fn get(&mut self, path: &str) -> Result<Reply, Failure> {
        self.send(Method::GET, path, Caller::Anonymous, None).await
    }
}

/// One event of a Server-Sent Events stream.
#[derive(Debug, Default, Clone)]
pub struct SseEvent {
    pub id: String,
    pub event: String,
    pub data: String,
}

/// A Server-Sent Events stream being read.
pub struct Sse {
    body: Incoming,
    /// Kept so that the connection stays exactly as it was opened.
    _sender: SendRequest<Full<Bytes>>,
    buf: BytesMut,
    /// The stream has sent its first bytes (the server sends a comment at once).
    pub opened: bool,
}

impl Sse {
    /// Opens `path` as an event stream on a connection of its own, resuming after
    /// `last_id` when given. Err: no connection, or the answer was not 200.
    pub async fn open(target: &Target, path: &str, last_id: Option<&str>) -> Result<Sse, SseError> {
        let mut sender = open(target).await.map_err(SseError::Failure)?;
        let mut req = build(target, Method::GET, path, Caller::Anonymous, None);
        req.headers_mut()
            .insert("accept", "text/event-stream".parse().expect("header"));
        if let Some(id) = last_id {
            if let Ok(v) = id.parse() {
                req.headers_mut().insert("last-event-id", v);
            }
        }
        let res: Response<Incoming> =
            tokio::time::timeout(REQUEST_TIMEOUT, sender.send_request(req))
                .await
                .map_err(|_| SseError::Failure(Failure::Timeout))?
                .map_err(|_| SseError::Failure(Failure::Io))?;
        if res.status() != 200 {
            return Err(SseError::Status(res.status().as_u16()));
        }
        Ok(Sse {
            body: res.into_body(),
            _sender: sender,
            buf: BytesMut::new(),
            opened: false,
        })
    }

    /// The next event (comments skipped), or None when the stream ended or broke.
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(ev) = self.take_event() {
                return Some(ev);
            }
            let frame = self.body.frame().await?.ok()?;
            if let Ok(data) = frame.into_data() {
                self.opened = true;
                self.buf.extend_from_slice(&data);
            }
        }
    }

    /// Waits for the first bytes of the stream (the server's opening comment).
    pub async fn wait_open(&mut self) -> bool {
        while !self.opened {
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.opened = true;
                        self.buf.extend_from_slice(&data);
                    }
                }
                _ => return false,
            }
        }
        true
    }

    fn take_event(&mut self) -> Option<SseEvent> {
        loop {
            let end = find_blank_line(&self.buf)?;
            let block = self.buf.split_to(end.0);
            let _ = self.buf.split_to(end.1);
            let text = String::from_utf8_lossy(&block);
            let mut ev = SseEvent::default();
            let mut any = false;
            for line in text.lines() {
                if line.starts_with(':') {
                    continue;
                }
                let (field, value) = match line.split_once(':') {
                    Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                    None => (line, ""),
                };
                match field {
                    "id" => ev.id = value.to_owned(),
                    "event" => ev.event = value.to_owned(),
                    "data" => {
                        if !ev.data.is_empty() {
                            ev.data.push('\n');
                        }
                        ev.data.push_str(value);
                        any = true;
                    }
                    _ => {}
                }
            }
            if any {
                return Some(ev);
            }
        }
    }
}

/// Where a blank line ends an event block: (end of the block, length of the separator).
fn find_blank_line(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i + 1 < buf.len() {
        if buf[i] == b'\n' && buf[i + 1] == b'\n' {
            return Some((i, 2));
        }
        if i + 3 < buf.len() && &buf[i..i + 4] == b"\r\n\r\n" {
            return Some((i, 4));
        }
        i += 1;
    }
    None
}

#[derive(Debug)]
pub enum SseError {
    Failure(Failure),
    Status(u16),
}

impl std::fmt::Display for SseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SseError::Failure(x) => write!(f, "{}", x.name()),
            SseError::Status(s) => write!(f, "HTTP {s}"),
        }
    }
}

/// The `cause` and seat labels of a seat-change event's JSON data, read without a full
/// parse (thousands of subscribers read every event).
pub fn scan_event(data: &str) -> (Option<&str>, Vec<&str>) {
    let cause = string_after(data, "\"cause\"");
    let mut labels = Vec::new();
    let mut rest = data;
    while let Some(pos) = rest.find("\"label\"") {
        rest = &rest[pos + 7..];
        if let Some(l) = string_after(rest, "") {
            labels.push(l);
        }
    }
    (cause, labels)
}

/// The JSON string value that follows `key` (then optional spaces, a colon, spaces).
fn string_after<'a>(s: &'a str, key: &str) -> Option<&'a str> {
    let start = if key.is_empty() {
        0
    } else {
        s.find(key)? + key.len()
    };
    let rest = s[start..].trim_start();
    let rest = rest.strip_prefix(':')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    let end = rest.find('"')?;
    Some(&rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_events() {
        let (cause, labels) = scan_event(
            r#"{"show_id":"1","cause":"expire","seats":[{"label":"A1","state":"available","version":"7"},{"label":"AB12","state":"available","version":"8"}]}"#,
        );
        assert_eq!(cause, Some("expire"));
        assert_eq!(labels, vec!["A1", "AB12"]);
        let (cause, labels) =
            scan_event(r#"{"show_id": "1", "cause": "hold", "seats": [{"label": "K3"}]}"#);
        assert_eq!(cause, Some("hold"));
        assert_eq!(labels, vec!["K3"]);
    }

    #[test]
    fn finds_event_ends() {
        assert_eq!(find_blank_line(b"id: 1\ndata: x\n\nrest"), Some((13, 2)));
        assert_eq!(find_blank_line(b"data: x\r\n\r\n"), Some((7, 4)));
        assert_eq!(find_blank_line(b"data: x\n"), None);
    }
}
