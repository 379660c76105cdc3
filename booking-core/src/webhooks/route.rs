//! Routing: the feed's events, turned into deliveries of the endpoints that want them.

use crate::database::Cached;
use crate::error::Result;
use deadpool_postgres::Pool;
use uuid::Uuid;

/// Events read per endpoint and round.
pub(super) const BATCH: i64 = 500;

/// What a round of [`route_all`] did.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Routed {
    /// Endpoints this process routed (the others were being routed elsewhere).
    pub endpoints: usize,
    /// Deliveries inserted.
    pub deliveries: u64,
    /// Some endpoint had a full batch: more may be waiting.
    pub more: bool,
}

/// SQL: the type of an event of `e` (NULL: not sent). The cause says it, and for a
/// cancel whether it ended the booking (`ended`; NULL from events written before V9
/// counts as a whole cancel).
const TYPE_OF: &str = "CASE e.cause
        WHEN 'hold' THEN 'hold.created'
        WHEN 'add' THEN 'hold.changed'
        WHEN 'remove' THEN 'hold.changed'
        WHEN 'release' THEN 'hold.released'
        WHEN 'expire' THEN 'hold.expired'
        WHEN 'confirm' THEN 'booking.confirmed'
        WHEN 'exchange' THEN 'booking.changed'
        WHEN 'cancel' THEN CASE WHEN e.ended IS FALSE THEN 'booking.changed'
                                ELSE 'booking.cancelled' END
        WHEN 'show_cancel' THEN 'show.cancelled'
    END";

/// One endpoint's round: events after its cursor, below the watermark, at most
/// [`BATCH`]; a delivery for each it wants, with its body; the cursor moved past all
/// of them. `$1` endpoint, `$2`/`$3` its cursor.
///
/// The body (Standard Webhooks style) is made here, once: every attempt sends the same
/// bytes. Its `data` has the event's position, show, cause and seats, and the hold and
/// booking it is about with their buyer, reference and metadata as they are now (just
/// after the event); for a show's cancellation, the bookings and holds it ended (those
/// whose `cancelled_at`, `released_at` is the show's `cancelled_at`). Null members
/// are left out; the metadata inside is kept as it is.
static ROUTE_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH e AS (
             SELECT e.show_id, e.xid, e.id, e.cause, e.seats, e.created_at, e.hold_id,
                    e.booking_id, {TYPE_OF} AS type
               FROM seat_events e
              WHERE (e.xid, e.id) > ($2::text::xid8, $3)
                AND e.xid < pg_snapshot_xmin(pg_current_snapshot())
              ORDER BY e.xid, e.id
              LIMIT $4
         ), last AS (
             SELECT xid, id FROM e ORDER BY xid DESC, id DESC LIMIT 1
         ), ins AS (
             INSERT INTO webhook_deliveries (webhook_id, show_id, xid, event_id, type, body)
             SELECT w.id, e.show_id, e.xid, e.id, e.type,
                    jsonb_build_object(
                        'type', e.type,
                        'timestamp', to_char(e.created_at AT TIME ZONE 'UTC',
                                             'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
                        'data', (SELECT jsonb_object_agg(k, v)
                                   FROM jsonb_each(jsonb_build_object(
                                        'position', e.xid::text || '.' || e.id,
                                        'show_id', e.show_id::text,
                                        'cause', e.cause,
                                        'hold_id', e.show_id::text || '-' || h.id::text,
                                        'booking_id', e.show_id::text || '-' || b.id::text,
                                        'user_id', coalesce(b.user_id, h.user_id),
                                        'external_ref', coalesce(b.external_ref, h.external_ref),
                                        'metadata', coalesce(b.metadata, h.metadata),
                                        'seats', (SELECT coalesce(jsonb_agg(jsonb_strip_nulls(
                                                             jsonb_build_object(
                                                                 'label', s -> 'label',
                                                                 'state', s -> 'state',
                                                                 'area', s -> 'area'))),
                                                         '[]'::jsonb)
                                                    FROM jsonb_array_elements(e.seats) s),
                                        'bookings', sc.bookings,
                                        'holds', sc.holds)) AS kv(k, v)
                                  WHERE v <> 'null'::jsonb))::text
               FROM e
               JOIN webhooks w ON w.id = $1
               LEFT JOIN bookings b ON b.show_id = e.show_id AND b.id = e.booking_id
               LEFT JOIN holds h ON h.show_id = e.show_id AND h.id = coalesce(e.hold_id, b.hold_id)
               LEFT JOIN LATERAL (
                    SELECT (SELECT coalesce(jsonb_agg(x.show_id::text || '-' || x.id::text
                                                      ORDER BY x.id), '[]'::jsonb)
                              FROM bookings x
                             WHERE x.show_id = sh.id AND x.cancelled_at = sh.cancelled_at) AS bookings,
                           (SELECT coalesce(jsonb_agg(y.show_id::text || '-' || y.id::text
                                                      ORDER BY y.id), '[]'::jsonb)
                              FROM holds y
                             WHERE y.show_id = sh.id AND y.released_at = sh.cancelled_at) AS holds
                      FROM shows sh
                     WHERE sh.id = e.show_id AND e.cause = 'show_cancel') sc ON true
              WHERE e.type = ANY(w.events) AND (w.shows IS NULL OR e.show_id = ANY(w.shows))
              ORDER BY e.xid, e.id
             ON CONFLICT (webhook_id, xid, event_id) DO NOTHING
             RETURNING 1
         ), moved AS (
             UPDATE webhooks w SET routed_xid = last.xid, routed_id = last.id
               FROM last WHERE w.id = $1
         )
         SELECT (SELECT count(*) FROM e) AS read, (SELECT count(*) FROM ins) AS inserted"
    )
});

/// Routes every endpoint that no other process is routing now, in one transaction:
/// the endpoints' rows stay locked (`FOR UPDATE SKIP LOCKED`) until their deliveries
/// and cursors commit together.
pub(super) async fn route_all(pool: &Pool) -> Result<Routed> {
    let mut client = crate::database::client(pool).await?;
    let tx = client.transaction().await?;
    let endpoints = tx
        .cq(
            "SELECT id, routed_xid::text AS xid_text, routed_id FROM webhooks
              ORDER BY id FOR UPDATE SKIP LOCKED",
            &[],
        )
        .await?;
    let mut out = Routed {
        endpoints: endpoints.len(),
        ..Routed::default()
    };
    for r in &endpoints {
        let (id, xid, at): (Uuid, &str, i64) = (r.get("id"), r.get("xid_text"), r.get("routed_id"));
        let row = tx.cq_one(&ROUTE_SQL, &[&id, &xid, &at, &BATCH]).await?;
        let (read, inserted): (i64, i64) = (row.get("read"), row.get("inserted"));
        out.deliveries += inserted as u64;
        out.more |= read == BATCH;
    }
    tx.commit().await?;
    Ok(out)
}
