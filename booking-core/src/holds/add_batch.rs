//! Adds of seats to live holds, of many callers, written by one statement: what a busy
//! cart page costs is then mostly one statement and one commit for up to a batch of
//! adds, as for new holds (`batch.rs`), instead of a statement, a commit and a read
//! back each ([`super::add_pooled`]).
//!
//! The statement is [`super::add_pooled`] for many:
//! 1. It locks the batch's hold rows with `FOR NO KEY UPDATE SKIP LOCKED` (several hold
//!    rows at once: it must never wait, or two batches could wait on each other) and
//!    reads every wanted seat in its snapshot, without locks. A request is a
//!    *candidate* when its hold row was locked at the version of the snapshot (no
//!    change of the hold committed meanwhile, so its `hold_seats` are those the snapshot
//!    sees), is live and the actor's (a `NULL` owner: an admin), is the first request of
//!    the batch for that hold, has room for the seats (`max_seats_per_hold` counting the
//!    hold's `hold_seats`), on a show without a limit per buyer; and when every wanted
//!    seat is there, points at nothing, is sold as the type asked and is wanted by no
//!    earlier request of the batch.
//! 2. It locks the candidates' seats in ascending id order with `SKIP LOCKED`.
//! 3. A candidate whose seats were all locked at the `xmin` of the snapshot is written:
//!    its `hold_seats`, its total, its seats pointed at the hold, one `add` event per
//!    hold with the hold's `expires_at` as `until`. Only rows unchanged since the
//!    snapshot are taken, so no seat last written by a younger transaction is (the
//!    feed's order, see `take.rs`).
//!
//! Each written request's answer, the hold as [`super::load`] reads it, comes back from
//! the statement itself: the hold's `hold_seats` in the snapshot (unchanged, by step 1)
//! and the seats just added. Everything else writes nothing here and is decided by
//! [`super::add`] alone, after the batch committed, which gives the exact answer: a
//! refusal, or the hold as it is when every seat named is in it already.

use super::{areas_of, Hold, HoldAddition};
use crate::database::Cached;
use crate::domain::{
    Actor, AreaCode, HoldId, HoldStatus, Reference, SeatLabel, SeatState, TicketTypeName, UserId,
};
use crate::error::{Error, Result};
use crate::feed::{self, Cause};
use crate::shows::{ON_SALE, PIN};
use crate::tickets::{Ticket, PRICE_JOIN, SEAT_TICKET};
use std::sync::LazyLock;

/// One add of a batch.
pub(super) struct Add<'a> {
    pub actor: &'a Actor,
    pub id: HoldId,
    pub addition: &'a HoldAddition,
}

/// Whether `addition` can go in a batch of adds: seats only (places are claimed in a
/// transaction, after the seats' locks, as for a hold of seats and places).
pub(super) fn batchable(addition: &HoldAddition) -> bool {
    addition.areas.is_empty() && !addition.seats.is_empty()
}

/// The statement. Items are numbered from 1 in `items`; wanted seats name their item.
static SQL: LazyLock<String> = LazyLock::new(|| {
    // Every step joins or groups whole CTEs, as in the other batches: no subquery per
    // request.
    format!(
        "WITH items AS (
             SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::text[])
                    WITH ORDINALITY AS i(show_id, hold_id, owner, item)
         ), hl AS MATERIALIZED (
             SELECT h.show_id, h.id, h.user_id, h.xmin::text AS x,
                    h.status = 'active' AND h.expires_at > booking_now(h.show_id) AS live
               FROM holds h
              WHERE (h.show_id, h.id) IN (SELECT show_id, hold_id FROM items)
                FOR NO KEY UPDATE SKIP LOCKED
         ), seen AS (
             -- The hold rows in the snapshot, with how many seats and places they have.
             SELECT i.item, h.xmin::text AS x, coalesce(n.n, 0) AS n,
                    row_number() OVER (PARTITION BY i.show_id, i.hold_id ORDER BY i.item)
                        AS turn
               FROM items i
               JOIN holds h ON h.show_id = i.show_id AND h.id = i.hold_id
               LEFT JOIN (SELECT hs.show_id, hs.hold_id, count(*) AS n FROM hold_seats hs
                           WHERE (hs.show_id, hs.hold_id) IN (SELECT show_id, hold_id FROM items)
                           GROUP BY hs.show_id, hs.hold_id) n
                 ON n.show_id = i.show_id AND n.hold_id = i.hold_id
         ), snap AS (
             SELECT w.item, sh.max_seats_per_user, sh.queue_max_seats, {ON_SALE} AS on_sale,
                    s.id,
                    s.xmin::text AS xmin,
                    s.hold_id IS NULL AND s.booking_id IS NULL AND s.block_id IS NULL AS clean,
                    {SEAT_TICKET},
                    row_number() OVER (PARTITION BY s.show_id, s.id ORDER BY w.item) AS claim
               FROM unnest($4::bigint[], $5::text[], $6::text[]) AS w(item, label, type)
               JOIN items i ON i.item = w.item
               JOIN shows sh ON sh.id = i.show_id
               LEFT JOIN seats s ON s.show_id = sh.id AND s.label = w.label
               {PRICE_JOIN}
         ), per_item AS (
             SELECT item, count(*) AS asked, coalesce(sum(price), 0)::bigint AS total,
                    bool_and(coalesce(id IS NOT NULL AND clean AND claim = 1 AND sells
                                      AND on_sale AND max_seats_per_user IS NULL
                                      AND queue_max_seats IS NULL, false))
                        AS seats_ok
               FROM snap GROUP BY item
         ), go AS (
             SELECT i.item, i.show_id, i.hold_id, p.total,
                    coalesce(p.seats_ok AND s.turn = 1 AND l.live AND l.x = s.x
                             AND (i.owner IS NULL OR l.user_id = i.owner)
                             AND s.n + p.asked <= $7, false) AS ok
               FROM items i
               JOIN per_item p USING (item)
               LEFT JOIN seen s USING (item)
               LEFT JOIN hl l ON l.show_id = i.show_id AND l.id = i.hold_id
         ), locked AS MATERIALIZED (
             SELECT s.id, s.xmin::text AS x FROM seats s
              WHERE (s.show_id, s.id) IN (SELECT go.show_id, snap.id
                                            FROM snap JOIN go USING (item) WHERE go.ok)
              ORDER BY s.id FOR UPDATE SKIP LOCKED
         ), verdict AS (
             SELECT snap.item, bool_and(go.ok AND coalesce(l.x = snap.xmin, false)) AS ok
               FROM snap JOIN go USING (item) LEFT JOIN locked l ON l.id = snap.id
              GROUP BY snap.item
         ), ok_items AS (
             SELECT go.item, go.show_id, go.hold_id, go.total
               FROM go JOIN verdict v USING (item) WHERE v.ok
         ), wanted AS (
             SELECT snap.item, snap.id, snap.xmin, snap.ticket_type, snap.price
               FROM snap JOIN ok_items USING (item)
         ), hs AS (
             INSERT INTO hold_seats (show_id, hold_id, seat_id, ticket_type, price)
             SELECT p.pin, i.hold_id, w.id, w.ticket_type, w.price
               FROM wanted w JOIN ok_items i USING (item) JOIN {PIN} p ON p.pin = i.show_id
         ), h AS (
             -- Named apart from the seats' columns: the event joins the two.
             UPDATE holds x SET total = x.total + i.total
               FROM ok_items i
              WHERE x.show_id = i.show_id AND x.id = i.hold_id
             RETURNING i.item AS hold_item, x.user_id, x.created_at, x.expires_at, x.total,
                       x.external_ref, x.metadata::text AS metadata
         ), taken AS (
             UPDATE seats s SET hold_id = i.hold_id
               FROM wanted w JOIN ok_items i USING (item)
              WHERE s.show_id = i.show_id AND s.id = w.id AND s.xmin::text = w.xmin
             RETURNING w.item, s.show_id, s.hold_id, s.id, s.label, s.xmin, s.area
         ), {event}, counted AS (
             SELECT item, count(*) AS taken_count, min(label) FILTER (WHERE first) AS first
               FROM (SELECT t.item, t.label,
                            row_number() OVER (PARTITION BY t.item ORDER BY t.id) = 1 AS first
                       FROM taken t) t
              GROUP BY item
         ), tickets AS (
             -- The hold's tickets after the add, in the order `load` reads them: its
             -- rows in the snapshot (unchanged since: its row was locked at that
             -- version) and the seats added (the statement does not see its own
             -- inserts). As arrays, not JSON: JSON made the statement about a tenth
             -- slower (pgbench, a batch of 7 adds to holds of 2 seats).
             SELECT m.item, array_agg(s.label ORDER BY s.row_index, s.number) AS labels,
                    array_agg(s.area ORDER BY s.row_index, s.number) AS areas,
                    array_agg(m.ticket_type ORDER BY s.row_index, s.number) AS types,
                    array_agg(m.price ORDER BY s.row_index, s.number) AS prices
               FROM (SELECT o.item, o.show_id, hs.seat_id, hs.ticket_type, hs.price
                       FROM ok_items o
                       JOIN hold_seats hs ON hs.show_id = o.show_id AND hs.hold_id = o.hold_id
                     UNION ALL
                     SELECT w.item, o.show_id, w.id, w.ticket_type, w.price
                       FROM wanted w JOIN ok_items o USING (item)) m
               JOIN seats s ON s.show_id = m.show_id AND s.id = m.seat_id
              GROUP BY m.item
         )
         SELECT i.item, o.item IS NOT NULL AS ok, h.user_id, h.created_at, h.expires_at,
                h.external_ref, h.metadata, h.total, sh.currency, t.labels, t.areas, t.types, t.prices,
                coalesce(c.taken_count, 0) AS taken_count, (SELECT count(*) FROM wanted w
                                                             WHERE w.item = i.item) AS asked,
                e.xid_text AS ev_xid, e.id AS ev_id, e.seats AS ev_seats, e.node AS ev_node, e.epoch AS ev_epoch
           FROM items i
           LEFT JOIN ok_items o USING (item)
           LEFT JOIN h ON h.hold_item = i.item
           LEFT JOIN shows sh ON sh.id = i.show_id AND o.item IS NOT NULL
           LEFT JOIN tickets t USING (item)
           LEFT JOIN counted c USING (item)
           -- The batch's events, told apart by their first seat (no seat is written for
           -- two items).
           LEFT JOIN ev e ON e.show_id = i.show_id AND e.seats -> 0 ->> 'label' = c.first
          ORDER BY i.item",
        event = feed::EventsSql {
            show: "t.show_id",
            cause: Cause::Add,
            state: SeatState::Held,
            until: Some("h.expires_at"),
            was: None,
            from: "taken t JOIN h ON h.hold_item = t.item",
            per: Some("t.item, t.show_id"),
        }
        .cte_of(&feed::Subject {
            hold: Some("t.hold_id"),
            ..Default::default()
        }),
    )
});

/// Runs the statement for `adds` (each [`batchable`], its ticket types checked) and
/// reads each one's outcome, in order: the hold it wrote, or `None` when it wrote
/// nothing for it and [`super::add`] is to decide. `max_seats`: the engine's
/// [`Settings::max_seats_per_hold`](crate::Settings::max_seats_per_hold).
pub(super) async fn write(
    client: &deadpool_postgres::Client,
    adds: &[Add<'_>],
    max_seats: usize,
) -> Result<Vec<Option<Hold>>> {
    let shows: Vec<i64> = adds.iter().map(|a| a.id.show().get()).collect();
    let keys: Vec<uuid::Uuid> = adds.iter().map(|a| a.id.key()).collect();
    let owners: Vec<Option<&str>> = adds
        .iter()
        .map(|a| match a.actor {
            Actor::User(u) => Some(u.as_str()),
            Actor::Admin => None,
        })
        .collect();
    let mut items: Vec<i64> = Vec::new();
    let mut labels: Vec<&str> = Vec::new();
    let mut types: Vec<Option<&str>> = Vec::new();
    for (n, a) in adds.iter().enumerate() {
        for l in a.addition.seats.labels() {
            items.push(n as i64 + 1);
            labels.push(l.as_str());
            types.push(
                a.addition
                    .ticket_types
                    .iter()
                    .find(|(t, _)| t == l)
                    .map(|(_, name)| name.as_str()),
            );
        }
    }
    let max = max_seats as i64;
    let rows = client
        .cq(
            &SQL,
            &[&shows, &keys, &owners, &items, &labels, &types, &max],
        )
        .await?;
    if rows.len() != adds.len() {
        return Err(Error::Invariant(format!(
            "add batch returned {} rows for {} requests",
            rows.len(),
            adds.len()
        )));
    }
    rows.iter()
        .zip(adds)
        .map(|(r, a)| {
            if !r.get::<_, bool>("ok") {
                return Ok(None);
            }
            let (taken, asked): (i64, i64) = (r.get("taken_count"), r.get("asked"));
            if taken != asked || asked != a.addition.seats.len() as i64 {
                return Err(Error::Invariant(format!(
                    "pointed {taken} of {asked} locked seats at the hold added to"
                )));
            }
            let tickets = tickets_of(r)?;
            Ok(Some(Hold {
                hold_id: a.id,
                show_id: a.id.show(),
                user_id: UserId::from_db(r.get("user_id")),
                seats: tickets
                    .iter()
                    .filter(|t| t.area.is_none())
                    .map(|t| t.seat.clone())
                    .collect(),
                areas: areas_of(&tickets),
                tickets,
                // Live by the statement's clock, as `add`'s answer reads it in its own
                // transaction.
                status: HoldStatus::Active,
                created_at: r.get("created_at"),
                expires_at: r.get("expires_at"),
                total: r.get("total"),
                currency: r.get("currency"),
                booking_id: None,
                reference: Reference::from_row(r)?,
                event: feed::written_event(r, a.id.show(), Cause::Add)?,
            }))
        })
        .collect()
}

/// The tickets of a written hold, from the statement's arrays (one element a ticket, in
/// seat-map order).
fn tickets_of(r: &tokio_postgres::Row) -> Result<Vec<Ticket>> {
    let labels: Vec<String> = r.get("labels");
    let areas: Vec<Option<String>> = r.get("areas");
    let types: Vec<String> = r.get("types");
    let prices: Vec<Option<i64>> = r.get("prices");
    if areas.len() != labels.len() || types.len() != labels.len() || prices.len() != labels.len() {
        return Err(Error::Invariant("tickets of a hold added to".into()));
    }
    Ok(labels
        .into_iter()
        .zip(areas)
        .zip(types.into_iter().zip(prices))
        .map(|((label, area), (ticket_type, price))| Ticket {
            seat: SeatLabel::from_db(label),
            area: area.map(AreaCode::from_db),
            ticket_type: TicketTypeName::from_db(ticket_type),
            price,
        })
        .collect())
}
