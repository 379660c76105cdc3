//! Delivering: claim due heads with a lease, send each (signed, with a timeout), record
//! the outcome and when to retry.

use super::sign;
use crate::database::Cached;
use crate::error::{Error, Result};
use bytes::Bytes;
use deadpool_postgres::GenericClient;
use http_body_util::Full;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use rand::Rng;
use std::time::Duration;
use uuid::Uuid;

/// The HTTP client of deliveries: HTTP/1.1, `http` or `https` (rustls with ring,
/// verifying against the Mozilla roots of `webpki-roots`), connections kept for reuse.
pub(super) type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A client whose connects give up after `timeout`, trusting the Mozilla roots and
/// `extra_roots`.
pub(super) fn http_client(
    timeout: Duration,
    extra_roots: &[rustls::pki_types::CertificateDer<'static>],
) -> Result<HttpClient> {
    let mut connector = HttpConnector::new();
    // The TLS layer above it takes https URLs.
    connector.enforce_http(false);
    connector.set_connect_timeout(Some(timeout));
    connector.set_nodelay(true);
    let tls_error = |e: rustls::Error| Error::invalid("webhook roots", e.to_string());
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for root in extra_roots {
        roots.add(root.clone()).map_err(tls_error)?;
    }
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(tls_error)?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let https = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(connector);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(4)
        .build(https))
}

/// The `webhook-id` of a delivery: its event's feed position with `_` for `.`
/// (`evt_{xid}_{id}`; on a formation `evt_{node}_{epoch}_{xid}_{id}`), the same at
/// every attempt and for every endpoint (receivers deduplicate by it). Read from row
/// `r` of `webhook_deliveries` (`node`, `epoch`, `xid_text`, `event_id`).
pub(super) fn message_id(r: &tokio_postgres::Row) -> String {
    let (node, epoch): (i32, i32) = (r.get("node"), r.get("epoch"));
    let (xid, event_id): (&str, i64) = (r.get("xid_text"), r.get("event_id"));
    if node != 0 || epoch != 0 {
        format!("evt_{node}_{epoch}_{xid}_{event_id}")
    } else {
        format!("evt_{xid}_{event_id}")
    }
}

/// A delivery this process holds the lease of.
pub(super) struct Claimed {
    pub webhook: Uuid,
    pub seq: i64,
    pub message_id: String,
    pub body: String,
    pub url: String,
    pub secret: String,
    /// The lease's token: only its holder records the outcome.
    pub token: Uuid,
    /// The endpoint was failing when claimed: one attempt, no retries.
    pub failing: bool,
}

/// Claims up to `n` due heads: for each (endpoint, show) the oldest pending delivery,
/// if its next attempt is due and nobody holds its lease. The `UPDATE` re-checks the
/// lease on the row it locks, so when two processes pick the same head only the first
/// gets it; a head becomes due only once the delivery before it is delivered or gave
/// up (committed), so a show's deliveries to an endpoint are never sent out of order.
pub(super) async fn claim<C: GenericClient>(
    client: &C,
    n: i64,
    lease: Duration,
) -> Result<Vec<Claimed>> {
    let token = Uuid::new_v4();
    let rows = client
        .cq(
            "WITH heads AS (
                 SELECT DISTINCT ON (webhook_id, show_id) webhook_id, seq, next_attempt_at,
                        lease_until
                   FROM webhook_deliveries
                  WHERE delivered_at IS NULL AND failed_at IS NULL
                  ORDER BY webhook_id, show_id, epoch, xid, event_id
             ), due AS (
                 SELECT webhook_id, seq FROM heads
                  WHERE next_attempt_at <= now() AND (lease_until IS NULL OR lease_until < now())
                  ORDER BY next_attempt_at
                  LIMIT $1
             )
             UPDATE webhook_deliveries d
                SET lease_until = now() + $2 * interval '1 millisecond', lease_token = $3,
                    attempts = d.attempts + 1, last_attempt_at = now(),
                    first_attempt_at = coalesce(d.first_attempt_at, now())
               FROM due, webhooks w
              WHERE d.webhook_id = due.webhook_id AND d.seq = due.seq AND w.id = d.webhook_id
                AND d.delivered_at IS NULL AND d.failed_at IS NULL
                AND (d.lease_until IS NULL OR d.lease_until < now())
             RETURNING d.webhook_id, d.seq, d.node, d.epoch, d.xid::text AS xid_text, d.event_id,
                       d.body, w.url,
                       w.secret, w.failing_since IS NOT NULL AS failing",
            &[&n, &(lease.as_millis() as f64), &token],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Claimed {
            webhook: r.get("webhook_id"),
            seq: r.get("seq"),
            message_id: message_id(r),
            body: r.get("body"),
            url: r.get("url"),
            secret: r.get("secret"),
            token,
            failing: r.get("failing"),
        })
        .collect())
}

/// What one attempt got: the endpoint's status, or why there was none.
pub(super) type Attempt = std::result::Result<u16, String>;

/// One attempt: `POST` the body, signed for now, and wait at most `timeout` for the
/// answer's status line (its body is not read).
pub(super) async fn send(http: &HttpClient, c: &Claimed, timeout: Duration) -> Result<Attempt> {
    let timestamp = chrono::Utc::now().timestamp();
    let signature = sign::signature(&c.secret, &c.message_id, timestamp, c.body.as_bytes())?;
    let request = hyper::Request::post(c.url.as_str())
        .header("content-type", "application/json")
        .header("user-agent", "booking-webhooks/1")
        .header("webhook-id", &c.message_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(Full::new(Bytes::from(c.body.clone())))
        .map_err(|e| Error::Invariant(format!("a webhook request: {e}")))?;
    Ok(
        match tokio::time::timeout(timeout, http.request(request)).await {
            Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
            Ok(Err(e)) => Err(error_chain(&e)),
            Ok(Ok(response)) => Ok(response.status().as_u16()),
        },
    )
}

/// An error and its sources, one line ("client error (Connect): tcp connect error:
/// Connection refused").
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text.chars().take(300).collect()
}

/// When to retry and when to give up.
#[derive(Debug, Clone, Copy)]
pub(super) struct Retry {
    /// The delay after the first failed attempt (the n-th waits 2^(n-1) times this),
    /// before jitter.
    pub first: Duration,
    /// The longest delay, before jitter.
    pub max: Duration,
    /// No attempt starts later than this after the first one.
    pub window: Duration,
}

impl Retry {
    /// The delay after `attempts` failed attempts: exponential, at most `max`, and
    /// jittered down to between half and all of it, so that the retries of many
    /// deliveries that failed together spread out.
    pub fn delay(&self, attempts: i32) -> Duration {
        let exp = attempts.clamp(1, 30) as u32 - 1;
        let full = self.first.saturating_mul(1u32 << exp.min(20)).min(self.max);
        full.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
    }
}

/// What became of a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The endpoint answered 2xx.
    Delivered,
    /// It failed; a retry is scheduled.
    Retrying,
    /// It failed and its retries ran out (or its endpoint was failing): it gave up and
    /// its endpoint is marked failing.
    GaveUp,
    /// The lease had run out and someone else holds the delivery now: nothing recorded.
    LeaseLost,
}

/// Records an attempt of `c` (only while it holds the lease): delivered, or the next
/// attempt's time, or gave up (when the retry window since the first attempt has
/// passed, or at once while the endpoint is failing), marking the endpoint failing.
/// A success clears the endpoint's failing mark.
pub(super) async fn record<C: GenericClient>(
    client: &C,
    c: &Claimed,
    attempt: &Attempt,
    retry: &Retry,
) -> Result<Outcome> {
    let (status, error) = match attempt {
        Ok(s) => (Some(i32::from(*s)), None),
        Err(e) => (None, Some(e.as_str())),
    };
    let ok = matches!(attempt, Ok(s) if (200..300).contains(s));
    let attempts: Option<i32> = client
        .cq_opt(
            "SELECT attempts FROM webhook_deliveries
              WHERE webhook_id = $1 AND seq = $2 AND lease_token = $3",
            &[&c.webhook, &c.seq, &c.token],
        )
        .await?
        .map(|r| r.get(0));
    let Some(attempts) = attempts else {
        return Ok(Outcome::LeaseLost);
    };
    let delay = retry.delay(attempts);
    let row = client
        .cq_opt(
            "WITH d AS (
                 UPDATE webhook_deliveries
                    SET last_status = $4, last_error = $5, lease_until = NULL, lease_token = NULL,
                        delivered_at = CASE WHEN $6 THEN now() END,
                        next_attempt_at = now() + $7 * interval '1 millisecond',
                        failed_at = CASE WHEN NOT $6
                                          AND ($8 OR first_attempt_at + $9 * interval '1 millisecond'
                                                     <= now() + $7 * interval '1 millisecond')
                                         THEN now() END
                  WHERE webhook_id = $1 AND seq = $2 AND lease_token = $3
                 RETURNING delivered_at IS NOT NULL AS delivered, failed_at IS NOT NULL AS failed
             ), w AS (
                 UPDATE webhooks
                    SET failing_since = CASE WHEN (SELECT delivered FROM d) THEN NULL
                                             ELSE coalesce(failing_since, now()) END
                  WHERE id = $1
                    AND ((SELECT delivered FROM d) AND failing_since IS NOT NULL
                         OR (SELECT failed FROM d) AND failing_since IS NULL)
             )
             SELECT delivered, failed FROM d",
            &[
                &c.webhook,
                &c.seq,
                &c.token,
                &status,
                &error,
                &ok,
                &(delay.as_millis() as f64),
                &c.failing,
                &(retry.window.as_millis() as f64),
            ],
        )
        .await?;
    Ok(match row {
        None => Outcome::LeaseLost,
        Some(r) if r.get::<_, bool>("delivered") => Outcome::Delivered,
        Some(r) if r.get::<_, bool>("failed") => Outcome::GaveUp,
        Some(_) => Outcome::Retrying,
    })
}
