//! Webhooks: the change feed, pushed to an integrator's HTTP endpoints, signed the
//! Standard Webhooks way, at least once, in commit order per show.
//!
//! # Model
//!
//! An endpoint ([`create`]) names a URL, the [`EventType`]s it wants and optionally
//! the shows. Its events reach it in two steps, both on PostgreSQL only:
//!
//! 1. **Routing** (`webhooks/route.rs`): each endpoint has a cursor in the feed
//!    (`webhooks.routed_*`; on a Citus formation one per node, `webhook_cursors`,
//!    each read on below its node's own watermark). A worker locks the endpoint's row (`FOR UPDATE SKIP
//!    LOCKED`: one router per endpoint at a time, across processes), reads the feed on
//!    from the cursor below the watermark (`xid < pg_snapshot_xmin(...)`, see
//!    [`crate::feed`]), inserts one delivery per wanted event with its body, and moves
//!    the cursor, in one transaction: a crash repeats or skips nothing.
//! 2. **Delivering** (`webhooks/deliver.rs`): the oldest pending delivery of each
//!    (endpoint, show) is its *head*; only heads are sent, so a show's events reach an
//!    endpoint in feed order, and one failing delivery holds back only the later ones
//!    of its show and endpoint. A worker claims due heads with a lease (an `UPDATE`
//!    that re-checks the lease, so two processes never send one delivery at once),
//!    sends each with a timeout outside any transaction, and records the outcome:
//!    delivered, or a retry at an exponential, jittered delay, until the retry window
//!    has passed since the first attempt; then the delivery gives up and the endpoint
//!    is marked failing. A process that dies mid-send leaves a lease that runs out: the
//!    delivery is sent again, with the same `webhook-id` (at least once).
//!
//! [`worker::run`] does both in a loop, on a pool of its own, never in a request.
//!
//! # Event types
//!
//! Feed causes map to types (in `webhooks/route.rs`): `hold` → `hold.created`; `add`,
//! `remove` → `hold.changed`; `release` → `hold.released`; `expire` → `hold.expired`;
//! `confirm` → `booking.confirmed`; `exchange` and a partial `cancel` →
//! `booking.changed`; a whole `cancel` → `booking.cancelled`; `show_cancel` →
//! `show.cancelled`. Blocks are not sent.
//!
//! # Files
//!
//! - `webhooks.rs`: endpoints and their deliveries as the API shows them ([`create`],
//!   [`get`], [`delete`], [`deliveries`]).
//! - `webhooks/url.rs`: what a URL must be ([`WebhookUrl`]).
//! - `webhooks/sign.rs`: secrets and signatures ([`sign::new_secret`], [`sign::signature`]).
//! - `webhooks/route.rs`: feed events into deliveries, with their bodies.
//! - `webhooks/deliver.rs`: claim, send, record, back off.
//! - `webhooks/worker.rs`: the loop ([`worker::run`], [`worker::WorkerOptions`]).

mod deliver;
mod route;
pub mod sign;
mod url;
pub mod worker;

pub use url::{WebhookUrl, MAX_URL_BYTES};

use crate::database::Cached;
use crate::domain::ShowId;
use crate::error::{Error, Result};
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use std::time::Duration;
use uuid::Uuid;

crate::domain::text_enum! {
    /// What a delivery tells (the `type` of its body).
    pub enum EventType {
        /// A hold took seats (cause `hold`).
        HoldCreated = "hold.created",
        /// Seats or places were added to or removed from a live hold (`add`, `remove`).
        HoldChanged = "hold.changed",
        /// The owner or an admin released a hold (`release`).
        HoldReleased = "hold.released",
        /// A hold lapsed and its seats were freed (`expire`).
        HoldExpired = "hold.expired",
        /// A hold became a booking (`confirm`).
        BookingConfirmed = "booking.confirmed",
        /// A booking gave back some seats, or exchanged seats (partial `cancel`,
        /// `exchange`).
        BookingChanged = "booking.changed",
        /// A booking was cancelled whole (`cancel` of its last seats).
        BookingCancelled = "booking.cancelled",
        /// The show was cancelled: every hold released, every booking cancelled
        /// (`show_cancel`).
        ShowCancelled = "show.cancelled",
    }
}

impl EventType {
    /// Every type, in the order of the documentation.
    pub const ALL: [EventType; 8] = [
        EventType::BookingConfirmed,
        EventType::BookingChanged,
        EventType::BookingCancelled,
        EventType::HoldCreated,
        EventType::HoldChanged,
        EventType::HoldReleased,
        EventType::HoldExpired,
        EventType::ShowCancelled,
    ];

    /// Parses a type's name (`events[i]` of a new endpoint).
    pub fn parse(s: &str) -> Result<EventType> {
        EventType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| Error::invalid("events", format!("unknown event type {s:?}")))
    }
}

/// The id of an endpoint: a UUID in its canonical form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WebhookId(Uuid);

impl WebhookId {
    /// Parses the canonical (hyphenated, lowercase) form; anything else names no
    /// endpoint: [`Error::WebhookNotFound`].
    pub fn parse(s: &str) -> Result<WebhookId> {
        let id = Uuid::try_parse(s).map_err(|_| Error::WebhookNotFound)?;
        if id.hyphenated().to_string() != s {
            return Err(Error::WebhookNotFound);
        }
        Ok(WebhookId(id))
    }

    /// The UUID.
    pub fn get(self) -> Uuid {
        self.0
    }
}

impl std::fmt::Display for WebhookId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.hyphenated())
    }
}

impl Serialize for WebhookId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What a new endpoint asks for, checked.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    /// Where deliveries are POSTed.
    pub url: WebhookUrl,
    /// The types it wants (each once).
    pub events: Vec<EventType>,
    /// The shows whose events it wants; `None`: every show, those created later too.
    pub shows: Option<Vec<ShowId>>,
}

/// Most shows one endpoint may name.
pub const MAX_SHOWS: usize = 1000;

impl NewWebhook {
    /// Checks and parses what a request says: a URL ([`WebhookUrl::parse`]), 1 to 8
    /// known event types (a repeated one counts once), and 1 to [`MAX_SHOWS`] show ids
    /// if any. [`Error::Invalid`] names the field.
    pub fn parse(url: &str, events: &[String], shows: Option<&[String]>) -> Result<NewWebhook> {
        let url = WebhookUrl::parse(url)?;
        if events.is_empty() {
            return Err(Error::invalid("events", "name at least one event type"));
        }
        let mut wanted = Vec::new();
        for e in events {
            let t = EventType::parse(e)?;
            if !wanted.contains(&t) {
                wanted.push(t);
            }
        }
        let shows = match shows {
            None => None,
            Some([]) => {
                return Err(Error::invalid(
                    "shows",
                    "name at least one show, or leave it out for every show",
                ))
            }
            Some(list) if list.len() > MAX_SHOWS => {
                return Err(Error::invalid(
                    "shows",
                    format!("at most {MAX_SHOWS} shows"),
                ))
            }
            Some(list) => {
                let mut ids = Vec::with_capacity(list.len());
                for s in list {
                    let id =
                        ShowId::parse(s).map_err(|_| Error::invalid("shows", "not a show id"))?;
                    if !ids.contains(&id) {
                        ids.push(id);
                    }
                }
                Some(ids)
            }
        };
        Ok(NewWebhook {
            url,
            events: wanted,
            shows,
        })
    }
}

/// An endpoint as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Webhook {
    /// Its id.
    pub id: WebhookId,
    /// Where deliveries go.
    pub url: String,
    /// The types it gets.
    pub events: Vec<EventType>,
    /// The shows it gets events of; absent: every show.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shows: Option<Vec<ShowId>>,
    /// The signing key, `whsec_<base64>`: only in the answer that created it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Since when a delivery of it gave up (its retries ran out); absent: healthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<DateTime<Utc>>,
}

const WEBHOOK_COLUMNS: &str = "id, url, events, shows, created_at, failing_since";

fn webhook_from_row(r: &tokio_postgres::Row) -> Result<Webhook> {
    let events: Vec<String> = r.get("events");
    Ok(Webhook {
        id: WebhookId(r.get("id")),
        url: r.get("url"),
        events: events
            .iter()
            .map(|e| EventType::from_db(e))
            .collect::<Result<_>>()?,
        shows: r
            .get::<_, Option<Vec<i64>>>("shows")
            .map(|v| v.into_iter().map(ShowId::from_db).collect()),
        secret: None,
        created_at: r.get("created_at"),
        failing_since: r.get("failing_since"),
    })
}

/// Creates an endpoint with a new secret (returned in [`Webhook::secret`]). It gets
/// the events that come after the feed's head now (on a formation, each node's head:
/// `webhook_cursors`). [`Error::ShowNotFound`] when a named show does not exist.
pub async fn create<C: GenericClient>(
    client: &C,
    settings: &crate::Settings,
    new: &NewWebhook,
) -> Result<Webhook> {
    let shows: Option<Vec<i64>> = new
        .shows
        .as_ref()
        .map(|s| s.iter().map(|id| id.get()).collect());
    if let Some(ids) = &shows {
        let found: i64 = client
            .cq_one("SELECT count(*) FROM shows WHERE id = ANY($1)", &[ids])
            .await?
            .get(0);
        if found != ids.len() as i64 {
            return Err(Error::ShowNotFound);
        }
    }
    let events: Vec<&str> = new.events.iter().map(|e| e.as_str()).collect();
    let secret = sign::new_secret();
    let id = Uuid::new_v4();
    let row = if settings.distributed {
        // Each node's newest event below its own watermark; the endpoint and its
        // cursors in one statement. `routed_*` is not used on a formation. A node that
        // cannot be reached now has no cursor: its events before now are routed too
        // (more than asked for, never less).
        let head = crate::feed::head_nodes(client).await?;
        let nodes: Vec<i32> = head.nodes().map(|p| p.node()).collect();
        let xids: Vec<String> = head.nodes().map(|p| p.xid().to_string()).collect();
        let ids: Vec<i64> = head.nodes().map(|p| p.id()).collect();
        client
            .cq_one(
                &format!(
                    "WITH w AS (
                         INSERT INTO webhooks (id, url, events, shows, secret, routed_xid, routed_id)
                         VALUES ($1, $2, $3, $4, $5, '0', 0)
                         RETURNING {WEBHOOK_COLUMNS}
                     ), c AS (
                         INSERT INTO webhook_cursors (webhook_id, node, xid, id)
                         SELECT $1, u.node, u.xid::xid8, u.id
                           FROM unnest($6::int[], $7::text[], $8::bigint[]) AS u(node, xid, id)
                     )
                     SELECT * FROM w"
                ),
                &[
                    &id,
                    &new.url.as_str(),
                    &events,
                    &shows,
                    &secret,
                    &nodes,
                    &xids,
                    &ids,
                ],
            )
            .await?
    } else {
        // The cursor starts at the newest event that can be read now: an endpoint gets
        // what happens after it was made, not the feed's history.
        client
            .cq_one(
                &format!(
                    "INSERT INTO webhooks (id, url, events, shows, secret, routed_xid, routed_id)
                     SELECT $1, $2, $3, $4, $5, coalesce(h.xid, '0'::xid8), coalesce(h.id, 0)
                       FROM (SELECT NULL) one
                       LEFT JOIN LATERAL (
                            SELECT xid, id FROM seat_events
                             WHERE xid < pg_snapshot_xmin(pg_current_snapshot())
                             ORDER BY xid DESC, id DESC LIMIT 1) h ON true
                     RETURNING {WEBHOOK_COLUMNS}"
                ),
                &[&id, &new.url.as_str(), &events, &shows, &secret],
            )
            .await?
    };
    let mut hook = webhook_from_row(&row)?;
    hook.secret = Some(secret);
    Ok(hook)
}

/// The endpoint `id` (without its secret); [`Error::WebhookNotFound`].
pub async fn get<C: GenericClient>(client: &C, id: WebhookId) -> Result<Webhook> {
    let row = client
        .cq_opt(
            &format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1"),
            &[&id.0],
        )
        .await?
        .ok_or(Error::WebhookNotFound)?;
    webhook_from_row(&row)
}

/// Deletes the endpoint and its deliveries: nothing more is sent to it (a delivery in
/// flight may still arrive). [`Error::WebhookNotFound`].
pub async fn delete<C: GenericClient>(client: &C, id: WebhookId) -> Result<()> {
    let n = client
        .cexec("DELETE FROM webhooks WHERE id = $1", &[&id.0])
        .await?;
    if n == 0 {
        return Err(Error::WebhookNotFound);
    }
    Ok(())
}

/// Where a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Not delivered yet: waiting for its turn, its first attempt or a retry.
    Pending,
    /// The endpoint answered 2xx.
    Delivered,
    /// Its retries ran out: it will not be sent again.
    Failed,
}

/// One event for one endpoint, and its attempts.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    /// The `webhook-id` it is sent with, the same at every attempt: `evt_` and the
    /// event's feed position.
    pub id: String,
    /// Its type.
    pub r#type: EventType,
    /// The show of the event.
    pub show_id: ShowId,
    /// Where it is.
    pub status: DeliveryStatus,
    /// Attempts so far (one in flight counts).
    pub attempts: i32,
    /// When it was routed to the endpoint.
    pub created_at: DateTime<Utc>,
    /// The last attempt's start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// The HTTP status the endpoint answered the last attempt with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_status: Option<i32>,
    /// Why the last attempt failed when there was no answer (refused, timed out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the next attempt is due (pending only; it may also wait for the earlier
    /// deliveries of its show).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When it was delivered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<DateTime<Utc>>,
    /// When it gave up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_at: Option<DateTime<Utc>>,
}

/// One page of an endpoint's deliveries, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryPage {
    /// The deliveries of this page.
    pub deliveries: Vec<Delivery>,
    /// The cursor of the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Deletes up to `batch` finished (delivered or failed) deliveries routed more than
/// `retention` ago, oldest first, by the partial index `webhook_deliveries_finished`;
/// pending ones stay however old. Returns how many.
pub async fn prune<C: GenericClient>(client: &C, retention: Duration, batch: i64) -> Result<u64> {
    Ok(client
        .cexec(
            "DELETE FROM webhook_deliveries
              WHERE (webhook_id, seq) IN (
                    SELECT webhook_id, seq FROM webhook_deliveries
                     WHERE created_at < now() - $1 * interval '1 millisecond'
                       AND (delivered_at IS NOT NULL OR failed_at IS NOT NULL)
                     ORDER BY created_at LIMIT $2)",
            &[&(retention.as_millis() as f64), &batch],
        )
        .await?)
}

/// Parses a cursor of [`deliveries`] (`d` and a sequence number; opaque to clients).
pub fn parse_cursor(s: &str) -> Result<i64> {
    s.strip_prefix('d')
        .filter(|n| !n.is_empty() && n.len() <= 18 && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| Error::invalid("cursor", "not a cursor from a page of this list"))
}

/// The deliveries of `id`, newest first: `limit` of them before the cursor `before`
/// (from [`parse_cursor`]), served by the primary key `(webhook_id, seq)`.
/// [`Error::WebhookNotFound`].
pub async fn deliveries<C: GenericClient>(
    client: &C,
    id: WebhookId,
    limit: i64,
    before: Option<i64>,
) -> Result<DeliveryPage> {
    get(client, id).await?;
    let rows = client
        .cq(
            "SELECT seq, node, epoch, xid::text AS xid_text, event_id, type, show_id, attempts,
                    created_at,
                    last_attempt_at, last_status, last_error, next_attempt_at, delivered_at,
                    failed_at
               FROM webhook_deliveries
              WHERE webhook_id = $1 AND seq < coalesce($2, 9223372036854775807)
              ORDER BY seq DESC LIMIT $3",
            &[&id.0, &before, &(limit + 1)],
        )
        .await?;
    let more = rows.len() as i64 > limit;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows.iter().take(limit as usize) {
        let (delivered_at, failed_at): (Option<DateTime<Utc>>, Option<DateTime<Utc>>) =
            (r.get("delivered_at"), r.get("failed_at"));
        let status = match (delivered_at, failed_at) {
            (Some(_), _) => DeliveryStatus::Delivered,
            (None, Some(_)) => DeliveryStatus::Failed,
            (None, None) => DeliveryStatus::Pending,
        };
        out.push(Delivery {
            id: deliver::message_id(r),
            r#type: EventType::from_db(r.get("type"))?,
            show_id: ShowId::from_db(r.get("show_id")),
            status,
            attempts: r.get("attempts"),
            created_at: r.get("created_at"),
            last_attempt_at: r.get("last_attempt_at"),
            last_status: r.get("last_status"),
            last_error: r.get("last_error"),
            next_attempt_at: (status == DeliveryStatus::Pending).then(|| r.get("next_attempt_at")),
            delivered_at,
            failed_at,
        });
    }
    let next_cursor = more
        .then(|| rows.get(limit as usize - 1))
        .flatten()
        .map(|r| format!("d{}", r.get::<_, i64>("seq")));
    Ok(DeliveryPage {
        deliveries: out,
        next_cursor,
    })
}
