//! Reports: a show's seats and places by category, ticket type and standing area — how
//! many are available, held, booked and blocked, the booked revenue — and what
//! cancellations and exchanges gave back.
//!
//! # One snapshot
//!
//! The whole report is one statement: every figure is read in the statement's one
//! snapshot, so the figures add up (a seat moving from held to booked meanwhile is
//! counted once, in one of them), on a pooled client or inside the caller's
//! transaction alike. Held means what it means everywhere (`seats.rs`' `HELD`): an
//! active hold still before its `expires_at` by the database clock; a lapsed hold's
//! seats and places count as available, even before the sweeper ends it. (The counts
//! of `GET /shows/{id}/areas` count a lapsed hold's places as held until then, to stay
//! exact with the feed: see [`crate::areas`]. A report is not followed by a feed.)
//!
//! It reads every seat and place of the show once (the primary key's range of the
//! show), with the hold or booking each points at: a report of a 100,000-seat show
//! reads 100,000 rows, which is what an admin's report is worth, not what a buyer's
//! request may cost.

use crate::database::Cached;
use crate::domain::ShowId;
use crate::error::{Error, Result};
use crate::seats::HELD;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::{Deserialize, Serialize};

/// How many seats (or places) are in each state, and what the booked ones sold for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// All of them: `available + held + booked + blocked`.
    pub total: i64,
    /// Neither booked, blocked nor held by an active hold before its `expires_at`.
    pub available: i64,
    /// In an active hold before its `expires_at`.
    pub held: i64,
    /// In a confirmed booking (not cancelled or exchanged away).
    pub booked: i64,
    /// Taken off sale by a block (seats only).
    pub blocked: i64,
    /// Sum of the booked ones' prices, in minor units (a ticket without a price counts
    /// 0).
    pub revenue: i64,
}

/// The counts of one category (seats and places alike).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryReport {
    /// The category.
    pub category: String,
    /// Its seats and places.
    #[serde(flatten)]
    pub counts: Counts,
}

/// The counts of one standing area.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AreaReport {
    /// The area's code.
    pub area: String,
    /// The category of its places.
    pub category: String,
    /// Its places (`total` is its capacity; `blocked` is always 0).
    #[serde(flatten)]
    pub counts: Counts,
}

/// The held and booked seats and places of one ticket type (a free seat is sold as no
/// type yet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketTypeReport {
    /// The type.
    #[serde(rename = "type")]
    pub ticket_type: String,
    /// Seats and places held as this type (active holds before their `expires_at`).
    pub held: i64,
    /// Seats and places booked as this type.
    pub booked: i64,
    /// Sum of the booked ones' prices.
    pub revenue: i64,
}

/// Seats and places that left bookings one way, and the revenue they took back.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Returned {
    /// Seats.
    pub seats: i64,
    /// Places of standing areas.
    pub places: i64,
    /// Sum of their prices when they were booked.
    pub revenue: i64,
}

/// What cancellations gave back.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancellations {
    /// Bookings cancelled whole (all they still had).
    pub bookings: i64,
    /// Seats and places cancelled, whole bookings and partial cancels together.
    #[serde(flatten)]
    pub returned: Returned,
}

/// A show's report, from one snapshot (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The show.
    pub show_id: ShowId,
    /// The show's currency (ISO 4217 code) of every revenue.
    pub currency: String,
    /// The database clock of the snapshot: what "before its `expires_at`" was judged by.
    pub as_of: DateTime<Utc>,
    /// The show's seats (as `GET /shows/{id}` counts them).
    pub seats: Counts,
    /// The places of all its standing areas.
    pub places: Counts,
    /// Seats and places by category, by name.
    pub categories: Vec<CategoryReport>,
    /// Each standing area, in the show's order.
    pub areas: Vec<AreaReport>,
    /// Each ticket type of the show, the default first.
    pub ticket_types: Vec<TicketTypeReport>,
    /// Seats and places cancelled out of bookings (whole or in part).
    pub cancelled: Cancellations,
    /// Seats given back by exchanges (the seats they took instead are booked).
    pub exchanged: Returned,
}

/// SQL: the counts of the units `u` of one group, as a JSON object of [`Counts`].
const COUNTS: &str = "jsonb_build_object(
        'total', count(*),
        'available', count(*) FILTER (WHERE u.state = 'available'),
        'held', count(*) FILTER (WHERE u.state = 'held'),
        'booked', count(*) FILTER (WHERE u.state = 'booked'),
        'blocked', count(*) FILTER (WHERE u.state = 'blocked'),
        'revenue', coalesce(sum(u.booked_price) FILTER (WHERE u.state = 'booked'), 0))";

/// The report, as one statement: every unit (seat or place) of the show with its
/// state and the ticket it is held or booked as, then each grouping of those rows.
fn report_sql() -> String {
    format!(
        "WITH u AS MATERIALIZED (
             SELECT s.category, s.area,
                    CASE WHEN s.booking_id IS NOT NULL THEN 'booked'
                         WHEN s.block_id IS NOT NULL THEN 'blocked'
                         WHEN s.hold_id IS NOT NULL AND {HELD} THEN 'held'
                         ELSE 'available' END AS state,
                    CASE WHEN s.hold_id IS NOT NULL AND {HELD} THEN hs.ticket_type END
                        AS held_type,
                    bs.ticket_type AS booked_type, bs.price AS booked_price
               FROM seats s
               LEFT JOIN holds h ON h.show_id = s.show_id AND h.id = s.hold_id
               LEFT JOIN hold_seats hs
                      ON hs.show_id = s.show_id AND hs.hold_id = s.hold_id AND hs.seat_id = s.id
               LEFT JOIN booking_seats bs
                      ON bs.show_id = s.show_id AND bs.booking_id = s.booking_id
                     AND bs.seat_id = s.id AND bs.live
              WHERE s.show_id = $1
         ), ended AS (
             SELECT bs.ended_by,
                    count(*) FILTER (WHERE s.area IS NULL) AS seats,
                    count(*) FILTER (WHERE s.area IS NOT NULL) AS places,
                    coalesce(sum(bs.price), 0) AS revenue
               FROM booking_seats bs
               JOIN seats s ON s.show_id = bs.show_id AND s.id = bs.seat_id
              WHERE bs.show_id = $1 AND NOT bs.live
              GROUP BY bs.ended_by
         )
         SELECT sh.currency, booking_now(sh.id) AS as_of,
                (SELECT {COUNTS} FROM u WHERE u.area IS NULL) AS seats,
                (SELECT {COUNTS} FROM u WHERE u.area IS NOT NULL) AS places,
                (SELECT coalesce(jsonb_agg(c.j ORDER BY c.category), '[]')
                   FROM (SELECT u.category, {COUNTS} || jsonb_build_object('category', u.category) AS j
                           FROM u GROUP BY u.category) c) AS categories,
                (SELECT coalesce(jsonb_agg(
                            coalesce(c.j, jsonb_build_object('total', 0, 'available', 0,
                                'held', 0, 'booked', 0, 'blocked', 0, 'revenue', 0))
                            || jsonb_build_object('area', a.area, 'category', a.category)
                            ORDER BY a.position), '[]')
                   FROM areas a
                   LEFT JOIN (SELECT u.area, {COUNTS} AS j FROM u
                               WHERE u.area IS NOT NULL GROUP BY u.area) c ON c.area = a.area
                  WHERE a.show_id = $1) AS areas,
                (SELECT coalesce(jsonb_agg(jsonb_build_object(
                            'type', tt.type, 'held', coalesce(ht.n, 0),
                            'booked', coalesce(bt.n, 0), 'revenue', coalesce(bt.revenue, 0))
                            ORDER BY tt.position), '[]')
                   FROM ticket_types tt
                   LEFT JOIN (SELECT u.held_type AS type, count(*) AS n FROM u
                               WHERE u.held_type IS NOT NULL GROUP BY 1) ht ON ht.type = tt.type
                   LEFT JOIN (SELECT u.booked_type AS type, count(*) AS n,
                                     sum(u.booked_price) AS revenue
                                FROM u WHERE u.booked_type IS NOT NULL GROUP BY 1) bt
                          ON bt.type = tt.type
                  WHERE tt.show_id = $1) AS ticket_types,
                (SELECT count(*) FROM bookings b
                  WHERE b.show_id = $1 AND b.status = 'cancelled') AS bookings_cancelled,
                (SELECT to_jsonb(e) - 'ended_by' FROM ended e WHERE e.ended_by = 'cancel')
                    AS cancelled,
                (SELECT to_jsonb(e) - 'ended_by' FROM ended e WHERE e.ended_by = 'exchange')
                    AS exchanged
           FROM shows sh
          WHERE sh.id = $1"
    )
}

fn from_json<T: serde::de::DeserializeOwned>(what: &str, v: serde_json::Value) -> Result<T> {
    serde_json::from_value(v).map_err(|e| Error::Invariant(format!("report's {what}: {e}")))
}

/// The report of `show` (see the module docs), or [`Error::ShowNotFound`]. One
/// statement: on a pooled client, or inside the caller's transaction (whose snapshot
/// it then shares, under REPEATABLE READ).
pub async fn show_report<C: GenericClient>(client: &C, show: ShowId) -> Result<Report> {
    let row = client
        .cq_opt(&report_sql(), &[&show.get()])
        .await?
        .ok_or(Error::ShowNotFound)?;
    let returned = |column: &str| -> Result<Returned> {
        match row.get::<_, Option<serde_json::Value>>(column) {
            Some(v) => from_json(column, v),
            None => Ok(Returned::default()),
        }
    };
    Ok(Report {
        show_id: show,
        currency: row.get("currency"),
        as_of: row.get("as_of"),
        seats: from_json("seats", row.get("seats"))?,
        places: from_json("places", row.get("places"))?,
        categories: from_json("categories", row.get("categories"))?,
        areas: from_json("areas", row.get("areas"))?,
        ticket_types: from_json("ticket_types", row.get("ticket_types"))?,
        cancelled: Cancellations {
            bookings: row.get("bookings_cancelled"),
            returned: returned("cancelled")?,
        },
        exchanged: returned("exchanged")?,
    })
}
