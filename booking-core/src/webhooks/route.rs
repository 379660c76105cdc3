//! Routing: the feed's events, turned into deliveries of the endpoints that want them.

use crate::database::Cached;
use crate::error::Result;
use crate::feed::NodeLinks;
use deadpool_postgres::{GenericClient, Pool};
use std::collections::BTreeMap;
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

/// SQL: an event's position as the feed gives it (`{node}.{epoch}.{xid}.{id}` on a
/// formation, `{xid}.{id}` on one PostgreSQL: [`crate::feed::Position`]'s text).
const POSITION_OF: &str = "CASE WHEN e.node <> 0 OR e.epoch <> 0
                                THEN e.node || '.' || e.epoch || '.' ELSE '' END
                           || e.xid::text || '.' || e.id";

/// SQL: the body of the delivery of event `e` of type `{type}` (Standard Webhooks
/// style), made once: every attempt sends the same bytes. Its `data` has the event's
/// position, show, cause and seats, and the hold and booking it is about with their
/// buyer, reference and metadata as they are now (just after the event); for a
/// show's cancellation, the bookings and holds it ended (those whose `cancelled_at`,
/// `released_at` is the show's `cancelled_at`). Null members are left out (each is
/// its own object, or `{}`, joined with `||`: no table function of the row, which
/// Citus refuses in a query over many shards); the metadata inside is kept as it is.
/// It reads `b`, `h` and `sc` of [`BODY_JOINS`].
fn body_of(type_sql: &str) -> String {
    let seats = "(SELECT coalesce(jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
                                  'label', s -> 'label',
                                  'state', s -> 'state',
                                  'area', s -> 'area'))),
                              '[]'::jsonb)
                    FROM jsonb_array_elements(e.seats) s)";
    let always = [
        ("position", POSITION_OF),
        ("show_id", "e.show_id::text"),
        ("cause", "e.cause"),
        ("seats", seats),
    ];
    let unless_null = [
        ("hold_id", "e.show_id::text || '-' || h.id::text"),
        ("booking_id", "e.show_id::text || '-' || b.id::text"),
        ("user_id", "coalesce(b.user_id, h.user_id)"),
        ("external_ref", "coalesce(b.external_ref, h.external_ref)"),
        ("metadata", "coalesce(b.metadata, h.metadata)"),
        ("bookings", "sc.bookings"),
        ("holds", "sc.holds"),
    ];
    let mut data = format!(
        "jsonb_build_object({})",
        always
            .iter()
            .map(|(k, v)| format!("'{k}', {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (k, v) in unless_null {
        data.push_str(&format!(
            "\n || CASE WHEN ({v}) IS NULL THEN '{{}}'::jsonb ELSE jsonb_build_object('{k}', {v}) END"
        ));
    }
    format!(
        "jsonb_build_object(
             'type', {type_sql},
             'timestamp', to_char(e.created_at AT TIME ZONE 'UTC',
                                  'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
             'data', {data})::text"
    )
}

/// SQL: what a body tells beside the event itself: its booking `b`, its hold `h`, and
/// for a show's cancellation what it ended (`sc`). All of them the event's show's
/// rows: on a formation, read on its node.
const BODY_JOINS: &str = "LEFT JOIN bookings b ON b.show_id = e.show_id AND b.id = e.booking_id
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
                     WHERE sh.id = e.show_id AND e.cause = 'show_cancel') sc ON true";

/// One endpoint's round on one PostgreSQL: events after its cursor, below the
/// watermark, at most [`BATCH`]; a delivery for each it wants, with its body
/// ([`body_of`]); the cursor moved past all of them. `$1` endpoint, `$2`/`$3` its
/// cursor, `$4` the batch.
static ROUTE_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let body = body_of("e.type");
    format!(
        "WITH e AS (
             SELECT e.show_id, e.xid, e.id, e.node, e.epoch, e.cause, e.seats, e.created_at,
                    e.hold_id, e.booking_id, {TYPE_OF} AS type
               FROM seat_events e
              WHERE (e.xid, e.id) > ($2::text::xid8, $3)
                AND e.xid < pg_snapshot_xmin(pg_current_snapshot())
              ORDER BY e.xid, e.id
              LIMIT $4
         ), last AS (
             SELECT xid, id FROM e ORDER BY xid DESC, id DESC LIMIT 1
         ), ins AS (
             INSERT INTO webhook_deliveries (webhook_id, show_id, xid, event_id, type, body)
             SELECT w.id, e.show_id, e.xid, e.id, e.type, {body}
               FROM e
               JOIN webhooks w ON w.id = $1
               {BODY_JOINS}
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

/// SQL: one endpoint's page of the whole feed on a formation, as the pump reads it
/// (`feed::nodes`): after each node's position (`$1`..`$3`: node, xid, id), below that
/// node's watermark (`$4`), at most `$5`, each node's events in its own order. Every
/// event comes back, so that the cursor moves past those not wanted; a wanted one
/// (its type in `$6`, its show in `$7` unless NULL) with its body. The joins are on
/// `show_id`: each event's body is read on its show's node.
static ROUTE_NODES_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let body = body_of(TYPE_OF);
    format!(
        "SELECT e.node, e.epoch, e.xid::text AS xid_text, e.id, e.show_id, {TYPE_OF} AS type,
                CASE WHEN {TYPE_OF} = ANY($6::text[])
                          AND ($7::bigint[] IS NULL OR e.show_id = ANY($7::bigint[]))
                     THEN {body} END AS body
           FROM seat_events e
           JOIN unnest($1::int[], $2::text[], $3::bigint[], $4::text[]) AS c(node, xid, id, wm)
             ON c.node = e.node
           {BODY_JOINS}
          WHERE (e.xid, e.id) > (c.xid::xid8, c.id) AND e.xid < c.wm::xid8
          ORDER BY e.xid, e.id
          LIMIT $5"
    )
});

/// Routes every endpoint that no other process is routing now, in one transaction:
/// the endpoints' rows stay locked (`FOR UPDATE SKIP LOCKED`) until their deliveries
/// and cursors commit together. On a formation ([`crate::Settings::distributed`]) each
/// endpoint reads on from its cursor per node, each node below its own watermark
/// (read over `links` when given).
pub(super) async fn route_all(
    pool: &Pool,
    distributed: bool,
    links: Option<&mut NodeLinks>,
) -> Result<Routed> {
    let mut client = crate::database::client(pool).await?;
    let tx = client.transaction().await?;
    let endpoints = tx
        .cq(
            "SELECT id, routed_xid::text AS xid_text, routed_id, events, shows FROM webhooks
              ORDER BY id FOR UPDATE SKIP LOCKED",
            &[],
        )
        .await?;
    let mut out = Routed {
        endpoints: endpoints.len(),
        ..Routed::default()
    };
    if endpoints.is_empty() {
        return Ok(out);
    }
    if distributed {
        let (nodes, wms) = crate::feed::watermarks(&tx, links).await?;
        for r in &endpoints {
            let (deliveries, more) = route_on_nodes(&tx, r, &nodes, &wms).await?;
            out.deliveries += deliveries;
            out.more |= more;
        }
    } else {
        for r in &endpoints {
            let (id, xid, at): (Uuid, &str, i64) =
                (r.get("id"), r.get("xid_text"), r.get("routed_id"));
            let row = tx.cq_one(&ROUTE_SQL, &[&id, &xid, &at, &BATCH]).await?;
            let (read, inserted): (i64, i64) = (row.get("read"), row.get("inserted"));
            out.deliveries += inserted as u64;
            out.more |= read == BATCH;
        }
    }
    tx.commit().await?;
    Ok(out)
}

/// One endpoint's round on a formation ([`ROUTE_NODES_SQL`]): its deliveries inserted
/// and its cursor moved per node (`webhook_cursors`), in the caller's transaction, on
/// the coordinator's own tables. `nodes`/`wms`: the nodes reachable now and their
/// watermarks (a node down is left out: its events wait, the others' are routed).
/// Returns the deliveries inserted and whether the page was full.
async fn route_on_nodes<C: GenericClient>(
    tx: &C,
    endpoint: &tokio_postgres::Row,
    nodes: &[i32],
    wms: &[String],
) -> Result<(u64, bool)> {
    let id: Uuid = endpoint.get("id");
    let events: Vec<String> = endpoint.get("events");
    let shows: Option<Vec<i64>> = endpoint.get("shows");
    let mut at: BTreeMap<i32, (String, i64)> = BTreeMap::new();
    for r in tx
        .cq(
            "SELECT node, xid::text AS xid_text, id FROM webhook_cursors WHERE webhook_id = $1",
            &[&id],
        )
        .await?
    {
        at.insert(r.get("node"), (r.get("xid_text"), r.get("id")));
    }
    let (xids, ids): (Vec<String>, Vec<i64>) = nodes
        .iter()
        .map(|n| at.get(n).cloned().unwrap_or(("0".to_owned(), 0)))
        .unzip();
    let rows = tx
        .cq(
            &ROUTE_NODES_SQL,
            &[&nodes, &xids, &ids, &wms, &BATCH, &events, &shows],
        )
        .await?;
    if rows.is_empty() {
        return Ok((0, false));
    }
    let mut wanted = Wanted::default();
    for r in &rows {
        let (node, xid, event): (i32, String, i64) =
            (r.get("node"), r.get("xid_text"), r.get("id"));
        if let Some(body) = r.get::<_, Option<String>>("body") {
            wanted.shows.push(r.get("show_id"));
            wanted.nodes.push(node);
            wanted.xids.push(xid.clone());
            wanted.ids.push(event);
            wanted.epochs.push(r.get("epoch"));
            wanted.types.push(r.get("type"));
            wanted.bodies.push(body);
        }
        // Rows come in each node's order: the last of a node is its new position.
        at.insert(node, (xid, event));
    }
    let inserted = tx
        .cexec(
            "INSERT INTO webhook_deliveries (webhook_id, show_id, node, epoch, xid, event_id, type,
                                             body)
             SELECT $1, u.show_id, u.node, u.epoch, u.xid::xid8, u.id, u.type, u.body
               FROM unnest($2::bigint[], $3::int[], $4::int[], $5::text[], $6::bigint[],
                           $7::text[], $8::text[])
                    WITH ORDINALITY AS u(show_id, node, epoch, xid, id, type, body, n)
              ORDER BY u.n
             ON CONFLICT (webhook_id, xid, event_id) DO NOTHING",
            &[
                &id,
                &wanted.shows,
                &wanted.nodes,
                &wanted.epochs,
                &wanted.xids,
                &wanted.ids,
                &wanted.types,
                &wanted.bodies,
            ],
        )
        .await?;
    let (cursor_nodes, (cursor_xids, cursor_ids)): (Vec<i32>, (Vec<String>, Vec<i64>)) =
        at.into_iter().unzip();
    tx.cexec(
        "INSERT INTO webhook_cursors (webhook_id, node, xid, id)
         SELECT $1, u.node, u.xid::xid8, u.id
           FROM unnest($2::int[], $3::text[], $4::bigint[]) AS u(node, xid, id)
         ON CONFLICT (webhook_id, node) DO UPDATE SET xid = excluded.xid, id = excluded.id",
        &[&id, &cursor_nodes, &cursor_xids, &cursor_ids],
    )
    .await?;
    Ok((inserted, rows.len() as i64 == BATCH))
}

/// The wanted events of a page, column by column (the parameters of one insert).
#[derive(Default)]
struct Wanted {
    shows: Vec<i64>,
    nodes: Vec<i32>,
    xids: Vec<String>,
    ids: Vec<i64>,
    epochs: Vec<i32>,
    types: Vec<String>,
    bodies: Vec<String>,
}
