//! Standing areas: places sold by quantity next to seats, and their counts.
//!
//! Each place is a row of `seats` with `area` set and the label `{area}-{n}` (see
//! `migrations/V6__standing_areas.sql`): it points at a hold or a booking as a seat
//! does, so holds, confirms, releases, expiry and cancels handle places with the same
//! statements as seats, and an area's capacity is the number of its rows. Holds claim
//! places in `holds/places.rs`.
//!
//! # Counts
//!
//! `booked` counts the places of live bookings and `held` the places that point at a
//! hold, lapsed or not: a lapsed hold's places count as held until the sweeper (or
//! its owner's release) ends it, which writes the event that returns them. That keeps
//! the counts exact with the feed: a map read in one snapshot plus the events that
//! snapshot does not see gives the counts of now, whereas counting lapsed places as
//! available would count them twice once the `expire` event arrives. A buyer may take
//! a lapsed hold's places at once all the same.

use crate::database::Cached;
use crate::domain::{AreaCode, AreaSpec, ShowId};
use crate::error::Result;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;

/// Where a place sorts among a show's rows: after every seat (row indexes of seats
/// stay below it), by area, then number.
pub(crate) const PLACE_ROW_INDEX: i32 = 1_000_000;

/// One standing area and its counts, as of one read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Area {
    /// Its code.
    pub area: AreaCode,
    /// The category that prices its places.
    pub category: String,
    /// How many places it has.
    pub capacity: i64,
    /// Places neither held nor booked: `capacity - held - booked`.
    pub available: i64,
    /// Places of holds not yet ended (see the module docs).
    pub held: i64,
    /// Places of live bookings.
    pub booked: i64,
    /// A place's price as the show's default ticket type, when that type prices the
    /// area's category (as a seat's `price`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price: Option<i64>,
    /// The earliest `expires_at` of a hold with places here (from then on a buyer may
    /// take them although they still count as held). For caches; not in the JSON.
    #[serde(skip)]
    pub held_until: Option<DateTime<Utc>>,
}

/// SQL: the column `areas` of show `show` (a parameter or column): its areas with
/// their counts, in the show's order, as JSON (read by [`areas_from_json`]). Reads the
/// areas and only the places that are taken (through the partial indexes of held and
/// booked rows), never a row that buyers lock.
pub(crate) fn areas_column(show: &str) -> String {
    format!(
        "(SELECT coalesce(jsonb_agg(jsonb_build_object(
                     'area', a.area, 'category', a.category, 'capacity', a.capacity,
                     'held', coalesce(c.held, 0), 'booked', coalesce(c.booked, 0),
                     'held_until', c.held_until, 'price', tp.price) ORDER BY a.position), '[]')
            FROM areas a
            JOIN shows ash ON ash.id = {show}
            LEFT JOIN ticket_prices tp
              ON tp.show_id = {show} AND tp.type = ash.default_ticket_type
             AND tp.category = a.category
            LEFT JOIN (
                 SELECT s.area, count(*) FILTER (WHERE s.hold_id IS NOT NULL) AS held,
                        count(*) FILTER (WHERE s.booking_id IS NOT NULL) AS booked,
                        min(h.expires_at) AS held_until
                   FROM seats s
                   LEFT JOIN holds h ON h.show_id = {show} AND h.id = s.hold_id
                  WHERE s.show_id = {show} AND s.area IS NOT NULL
                    AND (s.hold_id IS NOT NULL OR s.booking_id IS NOT NULL)
                  GROUP BY s.area) c ON c.area = a.area
           WHERE a.show_id = {show}) AS areas"
    )
}

#[derive(serde::Deserialize)]
struct AreaJson {
    area: String,
    category: String,
    capacity: i64,
    held: i64,
    booked: i64,
    held_until: Option<DateTime<Utc>>,
    price: Option<i64>,
}

/// Reads the JSON of [`areas_column`].
pub(crate) fn areas_from_json(value: serde_json::Value) -> Result<Vec<Area>> {
    let rows: Vec<AreaJson> = serde_json::from_value(value)
        .map_err(|e| crate::Error::Invariant(format!("areas of a show: {e}")))?;
    Ok(rows
        .into_iter()
        .map(|a| Area {
            area: AreaCode::from_db(a.area),
            category: a.category,
            capacity: a.capacity,
            available: a.capacity - a.held - a.booked,
            held: a.held,
            booked: a.booked,
            price: a.price,
            held_until: a.held_until,
        })
        .collect())
}

/// The standing areas of `show` with their counts, in the show's order (empty when it
/// has none), or [`Error::ShowNotFound`](crate::Error::ShowNotFound).
pub async fn list_areas<C: GenericClient>(client: &C, show: ShowId) -> Result<Vec<Area>> {
    let row = client
        .cq_opt(
            &format!(
                "SELECT {} FROM shows sh WHERE sh.id = $1",
                areas_column("$1")
            ),
            &[&show.get()],
        )
        .await?
        .ok_or(crate::Error::ShowNotFound)?;
    areas_from_json(row.get("areas"))
}

/// Creates the areas of a new show and one row per place, numbered from 1.
pub(crate) async fn create<C: GenericClient>(tx: &C, show: i64, areas: &[AreaSpec]) -> Result<()> {
    if areas.is_empty() {
        return Ok(());
    }
    let codes: Vec<&str> = areas.iter().map(|a| a.area.as_str()).collect();
    let positions: Vec<i32> = (0..areas.len() as i32).collect();
    let capacities: Vec<i32> = areas.iter().map(|a| a.capacity as i32).collect();
    let categories: Vec<&str> = areas.iter().map(|a| a.category.as_str()).collect();
    // From the show row rather than `SELECT $1, ...`: so Citus routes the insert to
    // the show's node (a parameter is no distribution column to it).
    tx.cexec(
        "INSERT INTO areas (show_id, area, position, capacity, category)
         SELECT sh.id, u.* FROM shows sh, unnest($2::text[], $3::int[], $4::int[], $5::text[]) AS u
          WHERE sh.id = $1",
        &[&show, &codes, &positions, &capacities, &categories],
    )
    .await?;
    let inserted = tx
        .cexec(
            "INSERT INTO seats (show_id, label, row_index, number, category, area)
             SELECT a.show_id, a.area || '-' || n, $2 + a.position, n, a.category, a.area
               FROM areas a, generate_series(1, a.capacity) AS n
              WHERE a.show_id = $1
              ORDER BY a.position, n",
            &[&show, &PLACE_ROW_INDEX],
        )
        .await?;
    let want: u64 = areas.iter().map(|a| u64::from(a.capacity)).sum();
    if inserted != want {
        return Err(crate::Error::Invariant(format!(
            "inserted {inserted} of {want} places"
        )));
    }
    Ok(())
}
