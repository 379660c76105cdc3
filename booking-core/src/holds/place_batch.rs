//! Holds of standing places only, of many callers, written by one statement: what a
//! herd on a standing floor costs is then mostly one statement and one commit for up
//! to a batch of buyers, as for seats (`batch.rs`).
//!
//! The statement counts how many places each (show, area) is asked for in the whole
//! batch and claims that many at once, `ORDER BY id LIMIT total FOR UPDATE SKIP LOCKED`
//! (one claim per area: a second claim in the same statement would not skip the rows
//! the first one locked, they are ours). The claimed rows are dealt out in request
//! order: the k-th place asked of an area gets the k-th row claimed. A request whose
//! places all got a row, sold as types its area's category has, on a show without a
//! limit per buyer, is written through the one hold write of `take.rs`.
//!
//! The others are answered from what the statement saw, or decided alone:
//! - a request some of whose places got no row, of areas where every row claimed went
//!   to a request written and no lapsed hold of the show has places, is refused `409
//!   seats_unavailable` naming those areas: what [`super::hold`] would answer, since it
//!   claims the same way;
//! - anything else goes to [`super::hold`]: no such show or area, a ticket type not
//!   sold, a limit per buyer, or a short request that another try could satisfy (rows
//!   dealt to it or to another short request are free again after the commit, and
//!   places of lapsed holds may be taken over).

use super::take::{written_by, S_WRITTEN_BEFORE_US};
use super::{Hold, HoldRequest};
use crate::database::Cached;
use crate::domain::{AreaCode, HoldId, HoldStatus, TicketTypeName};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::shows::ON_SALE;
use crate::tickets::{tickets_from_json, PRICE_JOIN, SEAT_TICKET};
use std::sync::LazyLock;

/// What the statement did for one request.
pub(super) enum Outcome {
    // Boxed: a hold is far larger than the other outcomes.
    Done(Box<Hold>),
    Refused(Error),
    Undecided,
}

/// The statement. Items are numbered from 1 in `items`; wanted places name their item,
/// in the order asked.
static SQL: LazyLock<String> = LazyLock::new(|| {
    // Every step joins or groups whole CTEs (no subquery per request): a batch of
    // hundreds costs little more than one of a few.
    format!(
        "WITH items AS (
             SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::int[],
                                  $8::text[], $9::text[])
                    WITH ORDINALITY
                    AS i(show_id, hold_id, user_id, ttl, external_ref, metadata, item)
         ), asked AS (
             SELECT w.item, w.area, w.type, w.ord, i.show_id,
                    row_number() OVER (PARTITION BY i.show_id, w.area ORDER BY w.ord) AS k,
                    count(*) OVER (PARTITION BY w.item) AS asked
               FROM unnest($5::bigint[], $6::text[], $7::text[]) WITH ORDINALITY
                    AS w(item, area, type, ord)
               JOIN items i USING (item)
         ), priced AS (
             SELECT w.item, w.area, w.ord, w.k, w.asked, w.show_id, sh.max_seats_per_user,
                    sh.queue_max_seats,
                    s.area IS NOT NULL AS known, {SEAT_TICKET}, {ON_SALE} AS on_sale
               FROM asked w
               JOIN shows sh ON sh.id = w.show_id
               LEFT JOIN areas s ON s.show_id = sh.id AND s.area = w.area
               {PRICE_JOIN}
         ), need AS (
             -- Only shows that sell now (a request of another is decided alone, and
             -- refused there): no place of theirs is locked.
             SELECT a.show_id, a.area, count(*)::int AS total
               FROM asked a JOIN shows sh ON sh.id = a.show_id AND {ON_SALE}
              GROUP BY a.show_id, a.area
         ), lapsed_holds AS (
             -- Shows of the batch with a lapsed hold of some places: few, found through
             -- the sweeper's index of deadlines, not by reading every held place.
             SELECT DISTINCT h.show_id FROM holds h
              WHERE h.status = 'active' AND h.expires_at <= booking_now(h.show_id)
                AND h.show_id IN (SELECT show_id FROM need)
                AND EXISTS (SELECT 1 FROM seats s
                             WHERE s.show_id = h.show_id AND s.hold_id = h.id
                               AND s.area IS NOT NULL)
         ), claimed AS MATERIALIZED (
             SELECT n.show_id, n.area, p.id, p.label, p.xmin,
                    row_number() OVER (PARTITION BY n.show_id, n.area ORDER BY p.id) AS k
               FROM need n
               CROSS JOIN LATERAL (
                    SELECT s.id, s.label, s.xmin::text AS xmin FROM seats s
                     WHERE s.show_id = n.show_id AND s.area = n.area
                       AND s.hold_id IS NULL AND s.booking_id IS NULL
                       AND {S_WRITTEN_BEFORE_US}
                       -- Unchanged since our snapshot, as every one-statement path
                       -- takes only such rows: the lock rechecks a row changed since
                       -- on its newest version, and a show's cancellation leaves its
                       -- places free but rewritten (see `shows/sale.rs`).
                       AND s.xmin = (SELECT o.xmin FROM seats o
                                      WHERE o.show_id = s.show_id AND o.id = s.id)
                     ORDER BY s.id LIMIT n.total
                       FOR UPDATE OF s SKIP LOCKED) p
         ), matched AS MATERIALIZED (
             SELECT w.*, c.id, c.label, c.xmin
               FROM priced w
               LEFT JOIN claimed c ON c.show_id = w.show_id AND c.area = w.area AND c.k = w.k
         ), per_item AS (
             SELECT item, count(*) = min(asked)
                          AND bool_and(known AND sells AND on_sale
                                       AND max_seats_per_user IS NULL
                                       AND queue_max_seats IS NULL) AS sound,
                    bool_and(id IS NOT NULL) AS placed,
                    array_agg(DISTINCT area) FILTER (WHERE id IS NULL) AS short,
                    coalesce(sum(price), 0)::bigint AS total,
                    jsonb_agg(jsonb_build_object('seat', label, 'area', area,
                                                 'type', ticket_type, 'price', price)
                              ORDER BY id) AS tickets
               FROM matched GROUP BY item
         ), verdict AS (
             SELECT i.item, i.show_id, coalesce(p.sound, false) AS sound,
                    coalesce(p.placed, false) AS placed, p.short, p.total, p.tickets
               FROM items i LEFT JOIN per_item p USING (item)
         ), spare AS (
             -- Rows claimed that no written request uses: dealt to a request that did
             -- not get all its places, they are free again once the statement commits.
             SELECT DISTINCT c.show_id, c.area
               FROM claimed c
               LEFT JOIN (matched m JOIN verdict v ON v.item = m.item AND v.sound AND v.placed)
                 ON m.id = c.id
              WHERE m.id IS NULL
         ), lapsed AS (
             -- Short requests that another try could still satisfy: from spare rows, or
             -- from places of lapsed holds.
             SELECT DISTINCT v.item
               FROM verdict v
               LEFT JOIN spare p ON p.show_id = v.show_id AND p.area = ANY(v.short)
              WHERE v.sound AND NOT v.placed
                AND (p.show_id IS NOT NULL OR v.show_id IN (SELECT show_id FROM lapsed_holds))
         ), ok_items AS (
             SELECT i.item, i.show_id, i.hold_id, i.user_id, i.ttl, i.external_ref,
                    i.metadata, v.total
               FROM items i JOIN verdict v USING (item) WHERE v.sound AND v.placed
         ), wanted AS (
             SELECT m.item, m.id, m.xmin, m.ticket_type, m.price
               FROM matched m JOIN ok_items USING (item)
         ), {write}, counted AS (
             SELECT item, count(*) AS taken_count, min(label) FILTER (WHERE first) AS first
               FROM (SELECT t.item, t.label,
                            row_number() OVER (PARTITION BY t.item ORDER BY t.id) = 1 AS first
                       FROM taken t) t
              GROUP BY item
         )
         SELECT v.item, v.sound AND v.placed AS ok, v.sound, v.short,
                l.item IS NOT NULL AS lapsed, h.created_at, h.expires_at,
                coalesce(c.taken_count, 0) AS taken_count, sh.currency, v.tickets,
                e.xid_text AS ev_xid, e.id AS ev_id, e.seats AS ev_seats, e.node AS ev_node, e.epoch AS ev_epoch
           FROM verdict v
           JOIN items i USING (item)
           LEFT JOIN shows sh ON sh.id = i.show_id
           LEFT JOIN lapsed l USING (item)
           LEFT JOIN counted c USING (item)
           LEFT JOIN h ON h.hold_show = i.show_id AND h.hold_key = i.hold_id
           -- The batch's events, told apart by their first place (no place is written
           -- for two items).
           LEFT JOIN ev e ON e.show_id = i.show_id AND e.seats -> 0 ->> 'label' = c.first
          ORDER BY v.item",
        write = super::take::write_ctes("ok_items", "wanted", None),
    )
});

/// Whether `req` can go in a batch of places: places only, no seats.
pub(super) fn batchable(req: &HoldRequest) -> bool {
    req.seats.is_empty() && !req.areas.is_empty()
}

/// Runs the statement for `jobs` (each [`batchable`], with its hold id) and reads each
/// one's outcome, in order.
pub(super) async fn write(
    client: &deadpool_postgres::Client,
    engine: &Engine,
    jobs: &[(&HoldRequest, HoldId)],
) -> Result<Vec<Outcome>> {
    let shows: Vec<i64> = jobs.iter().map(|(r, _)| r.show.get()).collect();
    let keys: Vec<uuid::Uuid> = jobs.iter().map(|(_, id)| id.key()).collect();
    let users: Vec<&str> = jobs.iter().map(|(r, _)| r.user.as_str()).collect();
    let ttls: Vec<i32> = jobs
        .iter()
        .map(|(r, _)| r.ttl.unwrap_or(engine.settings().default_ttl).secs() as i32)
        .collect();
    let refs: Vec<Option<&str>> = jobs.iter().map(|(r, _)| r.reference.ref_param()).collect();
    let metas: Vec<Option<String>> = jobs
        .iter()
        .map(|(r, _)| r.reference.metadata_param())
        .collect();
    let mut items: Vec<i64> = Vec::new();
    let mut areas: Vec<&str> = Vec::new();
    let mut types: Vec<Option<&str>> = Vec::new();
    for (n, (req, _)) in jobs.iter().enumerate() {
        for w in &req.areas {
            for i in 0..w.count as usize {
                items.push(n as i64 + 1);
                areas.push(w.area.as_str());
                types.push(w.ticket_types.get(i).map(TicketTypeName::as_str));
            }
        }
    }
    let rows = client
        .cq(
            &SQL,
            &[
                &shows, &keys, &users, &ttls, &items, &areas, &types, &refs, &metas,
            ],
        )
        .await?;
    if rows.len() != jobs.len() {
        return Err(Error::Invariant(format!(
            "place batch returned {} rows for {} requests",
            rows.len(),
            jobs.len()
        )));
    }
    let mut outcomes = Vec::with_capacity(jobs.len());
    let mut wrote: Option<chrono::DateTime<chrono::Utc>> = None;
    for (r, (req, hold_id)) in rows.iter().zip(jobs) {
        let outcome = if r.get::<_, bool>("ok") {
            let written = written_by(r, req)?;
            wrote = Some(wrote.map_or(written.expires_at, |w| w.min(written.expires_at)));
            let tickets = tickets_from_json(r.get("tickets"))?;
            Outcome::Done(Box::new(Hold {
                hold_id: *hold_id,
                show_id: req.show,
                user_id: req.user.clone(),
                seats: Vec::new(),
                areas: super::areas_of(&tickets),
                total: tickets.iter().filter_map(|t| t.price).sum(),
                tickets,
                status: HoldStatus::Active,
                created_at: written.created_at,
                expires_at: written.expires_at,
                currency: r.get("currency"),
                booking_id: None,
                reference: req.reference.clone(),
                event: written.event,
            }))
        } else if r.get::<_, bool>("sound") && !r.get::<_, bool>("lapsed") {
            let short: Vec<String> = r.get::<_, Option<Vec<String>>>("short").unwrap_or_default();
            // In the order asked.
            let areas: Vec<AreaCode> = req
                .areas
                .iter()
                .filter(|w| short.iter().any(|s| s == w.area.as_str()))
                .map(|w| w.area.clone())
                .collect();
            Outcome::Refused(Error::SeatsUnavailable {
                seats: Vec::new(),
                areas,
            })
        } else {
            Outcome::Undecided
        };
        outcomes.push(outcome);
    }
    // The statement committed on its own (autocommit).
    if let Some(earliest) = wrote {
        engine.committed(Some(earliest));
    }
    Ok(outcomes)
}
