//! Tickets: what each held or booked seat is sold as (its ticket type) and at what
//! price, and the ticket types of a show.
//!
//! A hold fixes the type and the price of each of its seats when it is made
//! (`hold_seats.ticket_type`, `hold_seats.price`); a confirm copies them into its
//! booking (`booking_seats`), where a seat taken by an exchange gets its own. A type is sold only for the categories it lists in `ticket_prices`: the one
//! rule of which seat may be sold as what is `PRICE_JOIN` (with `SEAT_TICKET`, the
//! columns every hold path reads).

use crate::domain::{AreaCode, SeatLabel, TicketType, TicketTypeName};
use crate::error::{Error, Result};
use serde::Serialize;
use std::collections::BTreeMap;

/// One seat (or standing place) of a hold or booking as sold: its type and price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ticket {
    /// The seat; for a place of a standing area, its own number (`FLOOR-1187`), what
    /// check-in reads.
    pub seat: SeatLabel,
    /// For a place: its area.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub area: Option<AreaCode>,
    /// The ticket type it is sold as.
    #[serde(rename = "type")]
    pub ticket_type: TicketTypeName,
    /// Its price in minor units; absent when its type prices its category at nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price: Option<i64>,
}

/// SQL: the ticket of a wanted seat `s` of show `sh`, sold as the type `w.type` asked
/// for it (`NULL`: the show's default): `ticket_type`, `price`, whether that type is
/// sold for the seat's category (`sells`), and whether the show has such a type at all
/// (`type_known`; only looked up when it does not sell).
pub(crate) const SEAT_TICKET: &str = "coalesce(w.type, sh.default_ticket_type) AS ticket_type,
       tp.price, tp.type IS NOT NULL AS sells,
       (tp.type IS NOT NULL
        OR EXISTS (SELECT 1 FROM ticket_types tt
                    WHERE tt.show_id = sh.id
                      AND tt.type = coalesce(w.type, sh.default_ticket_type))) AS type_known";

/// SQL: [`SEAT_TICKET`] with the ticket types looked up in the show `show` (a
/// parameter such as `$1`, or a column): Citus routes a statement to the show's node
/// only when every distributed table in it is pinned to the show, and a lookup in a
/// subquery correlated with `sh.id` is not, whereas one with `tt.show_id = $1` is.
/// On plain PostgreSQL the plan is the same (an index lookup when the price is absent).
pub(crate) fn seat_ticket(show: &str) -> String {
    SEAT_TICKET.replace("tt.show_id = sh.id", &format!("tt.show_id = {show}"))
}

/// SQL: the price `tp` of each wanted seat `s` as the type asked for it (the one rule
/// of what a type costs: a type is sold for the categories it lists).
pub(crate) const PRICE_JOIN: &str = "LEFT JOIN ticket_prices tp
             ON tp.show_id = s.show_id AND tp.category = s.category
            AND tp.type = coalesce(w.type, sh.default_ticket_type)";

/// SQL: the column `tickets` of the hold whose show and id are the columns `show` and
/// `hold`: each seat's label, type and price, as JSON, in seat-map order (places last,
/// by area and number).
pub(crate) fn tickets_of_hold(show: &str, hold: &str) -> String {
    format!(
        "(SELECT coalesce(jsonb_agg(jsonb_build_object(
                 'seat', s.label, 'area', s.area, 'type', hs.ticket_type, 'price', hs.price)
                 ORDER BY s.row_index, s.number), '[]')
            FROM hold_seats hs JOIN seats s ON s.show_id = hs.show_id AND s.id = hs.seat_id
           WHERE hs.show_id = {show} AND hs.hold_id = {hold}) AS tickets"
    )
}

/// SQL: which rows `bs` of `booking_seats` are a booking `b`'s now: the live ones, or
/// for a cancelled booking those it still had when it was cancelled.
pub(crate) const BOOKED_NOW: &str =
    "(bs.live OR (b.status = 'cancelled' AND bs.ended_at = b.cancelled_at))";

/// SQL: the column `tickets` of the booking `b` (as [`tickets_of_hold`]): each seat it
/// has now ([`BOOKED_NOW`]) as it was sold to it.
pub(crate) fn tickets_of_booking(show: &str) -> String {
    format!(
        "(SELECT coalesce(jsonb_agg(jsonb_build_object(
                 'seat', s.label, 'area', s.area, 'type', bs.ticket_type, 'price', bs.price)
                 ORDER BY s.row_index, s.number), '[]')
            FROM booking_seats bs JOIN seats s ON s.show_id = bs.show_id AND s.id = bs.seat_id
           WHERE bs.show_id = {show} AND bs.booking_id = b.id AND {BOOKED_NOW}) AS tickets"
    )
}

/// Reads the JSON of [`tickets_of_hold`] (and of [`tickets_of_booking`]).
pub(crate) fn tickets_from_json(value: serde_json::Value) -> Result<Vec<Ticket>> {
    let bad = || Error::Invariant("tickets of a hold".into());
    let list = value.as_array().ok_or_else(bad)?;
    list.iter()
        .map(|t| {
            Ok(Ticket {
                seat: SeatLabel::from_db(t["seat"].as_str().ok_or_else(bad)?.to_owned()),
                area: t["area"].as_str().map(|a| AreaCode::from_db(a.to_owned())),
                ticket_type: TicketTypeName::from_db(
                    t["type"].as_str().ok_or_else(bad)?.to_owned(),
                ),
                price: t["price"].as_i64(),
            })
        })
        .collect()
}

/// SQL: the column `ticket_types` of show `sh`: its types, default first, each with
/// its prices per category, as JSON. `show` names the show in the subqueries: `sh.id`
/// in a statement of many shows, or the parameter (`$1`) in one of a show alone, which
/// Citus then routes to the show's node (correlated on `sh.id`, it read the ticket
/// types of every shard of every worker for one seat map, and failed while any worker
/// was down).
pub(crate) fn types_of_show(show: &str) -> String {
    format!(
        "(SELECT coalesce(jsonb_agg(jsonb_build_object(
             'type', tt.type,
             'prices', (SELECT coalesce(jsonb_object_agg(tp.category, tp.price), '{{}}')
                          FROM ticket_prices tp
                         WHERE tp.show_id = {show} AND tp.type = tt.type))
             ORDER BY tt.position), '[]')
        FROM ticket_types tt WHERE tt.show_id = {show}) AS ticket_types"
    )
}

/// Reads the JSON of [`types_of_show`].
pub(crate) fn types_from_json(value: serde_json::Value) -> Result<Vec<TicketType>> {
    let bad = || Error::Invariant("ticket types of a show".into());
    let list = value.as_array().ok_or_else(bad)?;
    list.iter()
        .map(|t| {
            let prices = t["prices"].as_object().ok_or_else(bad)?;
            Ok(TicketType {
                name: TicketTypeName::from_db(t["type"].as_str().ok_or_else(bad)?.to_owned()),
                prices: prices
                    .iter()
                    .map(|(c, p)| (c.clone(), p.as_i64()))
                    .collect::<BTreeMap<_, _>>(),
            })
        })
        .collect()
}
