//! The places of standing areas a hold asks for: what each is sold as, and claiming
//! them without waiting for anyone.
//!
//! A place is claimed with `SELECT ... ORDER BY id LIMIT n FOR UPDATE SKIP LOCKED` on
//! the partial index of free places (`seats_free_places`): concurrent buyers of one
//! area lock different rows and none waits for another; the count of what is left is
//! never a row anybody locks. Only when the free places are too few does a second
//! claim take places of lapsed holds (same `SKIP LOCKED`), whose holds are then read
//! again in a new statement, as step 3 of [`super::hold`] does for seats.
//!
//! A hold never waits for a place lock, so no cycle of waits can include one: places
//! are claimed after the hold's seats are locked (the order every operation on an
//! existing hold keeps too: its seats, then its places, by id), and before the buyer's
//! limit lock of `limit.rs`.

use super::take::S_WRITTEN_BEFORE_US;
use super::{Hold, HoldRequest};
use crate::database::Cached;
use crate::domain::{AreaCode, SeatLabel, TicketTypeName};
use crate::error::{Error, Result};
use crate::seats::{JOIN_HOLD, LAPSED};
use crate::tickets::{seat_ticket, Ticket, PRICE_JOIN};
use deadpool_postgres::GenericClient;
use std::collections::HashMap;
use uuid::Uuid;

/// One wanted place, before it is claimed: its area and what it is sold as.
#[derive(Debug, Clone)]
pub(crate) struct PlaceTicket {
    pub area: AreaCode,
    pub ticket_type: TicketTypeName,
    pub price: Option<i64>,
}

/// A claimed place: its row, the version it was locked at, and its ticket.
pub(super) struct Claimed {
    pub id: i64,
    pub label: String,
    pub xmin: String,
    pub ticket: PlaceTicket,
}

/// The areas and counts `req` asks for, as parallel arrays (`area`, `n`).
fn wants(req: &HoldRequest) -> (Vec<&str>, Vec<i32>) {
    req.areas
        .iter()
        .map(|w| (w.area.as_str(), w.count as i32))
        .unzip()
}

/// What each wanted place is sold as, in the order asked: [`Error::AreaNotFound`] for
/// unknown areas, [`Error::Invalid`] (field `ticket_types`) for a type the show does
/// not have, [`Error::TicketTypeUnavailable`] for one not sold for an area's category.
pub(super) async fn tickets<C: GenericClient>(
    client: &C,
    req: &HoldRequest,
) -> Result<Vec<PlaceTicket>> {
    if req.areas.is_empty() {
        return Ok(Vec::new());
    }
    let mut areas = Vec::new();
    let mut types: Vec<Option<&str>> = Vec::new();
    for w in &req.areas {
        for i in 0..w.count as usize {
            areas.push(w.area.as_str());
            types.push(w.ticket_types.get(i).map(TicketTypeName::as_str));
        }
    }
    // `areas s`: an area has the `show_id` and `category` the one price rule reads.
    let rows = client
        .cq(
            &format!(
                "SELECT w.area, s.area IS NOT NULL AS known, {ticket}
                   FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS w(area, type, ord)
                   JOIN shows sh ON sh.id = $1
                   LEFT JOIN areas s ON s.show_id = sh.id AND s.area = w.area
                   {PRICE_JOIN}
                  ORDER BY w.ord",
                ticket = seat_ticket("$1")
            ),
            &[&req.show.get(), &areas, &types],
        )
        .await?;
    if rows.len() != areas.len() {
        return Err(Error::ShowNotFound);
    }
    let mut unknown: Vec<AreaCode> = Vec::new();
    for (r, w) in rows.iter().zip(&areas) {
        if !r.get::<_, bool>("known") && !unknown.iter().any(|a| a.as_str() == *w) {
            unknown.push(AreaCode::from_db((*w).to_owned()));
        }
    }
    if !unknown.is_empty() {
        return Err(Error::AreaNotFound { areas: unknown });
    }
    if let Some(r) = rows.iter().find(|r| !r.get::<_, bool>("type_known")) {
        return Err(Error::invalid(
            "ticket_types",
            format!(
                "the show has no ticket type {}",
                r.get::<_, &str>("ticket_type")
            ),
        ));
    }
    let mut refused: Vec<(AreaCode, TicketTypeName)> = Vec::new();
    for r in rows.iter().filter(|r| !r.get::<_, bool>("sells")) {
        let pair = (
            AreaCode::from_db(r.get("area")),
            TicketTypeName::from_db(r.get("ticket_type")),
        );
        if !refused.contains(&pair) {
            refused.push(pair);
        }
    }
    if !refused.is_empty() {
        return Err(Error::TicketTypeUnavailable {
            tickets: Vec::new(),
            areas: refused,
        });
    }
    Ok(rows
        .iter()
        .map(|r| PlaceTicket {
            area: AreaCode::from_db(r.get("area")),
            ticket_type: TicketTypeName::from_db(r.get("ticket_type")),
            price: r.get("price"),
        })
        .collect())
}

/// SQL: claim up to `w.n` places of each wanted area `w`, skipping locked rows and rows
/// last written by a transaction younger than ours (the feed's order, as for seats: see
/// "Places follow the seats' rule" in DESIGN.md); `join` and `filter` pick which rows
/// can be taken.
fn claim_sql(join: &str, filter: &str) -> String {
    format!(
        "SELECT w.area, p.id, p.label, p.xmin, p.hold_id
           FROM unnest($2::text[], $3::int[]) AS w(area, n)
           CROSS JOIN LATERAL (
                SELECT s.id, s.label, s.xmin::text AS xmin, s.hold_id FROM seats s {join}
                 WHERE s.show_id = $1 AND s.area = w.area AND {filter}
                   AND NOT (s.id = ANY($4::bigint[])) AND {S_WRITTEN_BEFORE_US}
                 ORDER BY s.id LIMIT w.n
                   FOR UPDATE OF s SKIP LOCKED) p"
    )
}

/// SQL: [`claim_sql`] for one area (`$2`, `$3` places), for Citus: it refuses a
/// `FOR UPDATE` inside a `LATERAL` subquery ("could not run distributed query with
/// FOR UPDATE/SHARE commands") but routes this whole to the show's node, every table
/// in it pinned to `$1`.
fn claim_one_sql(join: &str, filter: &str) -> String {
    format!(
        "SELECT s.area, s.id, s.label, s.xmin::text AS xmin, s.hold_id FROM seats s {join}
          WHERE s.show_id = $1 AND s.area = $2 AND {filter}
            AND NOT (s.id = ANY($4::bigint[])) AND {S_WRITTEN_BEFORE_US}
          ORDER BY s.id LIMIT $3::int
            FOR UPDATE OF s SKIP LOCKED"
    )
}

/// Runs a claim of `counts[i]` places of each area `areas[i]` of `show`, not of
/// `taken`: one statement for them all, or on Citus (`distributed`) one per area,
/// pipelined in the same transaction (the same locks, taken in the order asked).
#[allow(clippy::too_many_arguments)]
async fn run_claim<C: GenericClient>(
    tx: &C,
    distributed: bool,
    join: &str,
    filter: &str,
    show: i64,
    areas: &[&str],
    counts: &[i32],
    taken: &[i64],
) -> Result<Vec<tokio_postgres::Row>> {
    if !distributed {
        return Ok(tx
            .cq(&claim_sql(join, filter), &[&show, &areas, &counts, &taken])
            .await?);
    }
    let sql = claim_one_sql(join, filter);
    type Params<'a> = [&'a (dyn tokio_postgres::types::ToSql + Sync); 4];
    let params: Vec<Params> = areas
        .iter()
        .zip(counts)
        .map(|(area, n)| -> Params { [&show, area, n, &taken] })
        .collect();
    let each = params.iter().map(|p| tx.cq(&sql, p));
    Ok(futures_util::future::try_join_all(each)
        .await?
        .into_iter()
        .flatten()
        .collect())
}

/// A place row claimed: (area, id, label, xmin).
pub(crate) type Row = (String, i64, String, String);

/// Claims the places `req` asks for: every one, or [`Error::SeatsUnavailable`] naming
/// the areas that are short (the caller's transaction is then rolled back, releasing
/// whatever was claimed). Never waits for a row lock. `distributed`: the database is a
/// Citus formation ([`crate::Settings::distributed`]).
pub(super) async fn claim<C: GenericClient>(
    tx: &C,
    req: &HoldRequest,
    distributed: bool,
) -> Result<Vec<Row>> {
    if req.areas.is_empty() {
        return Ok(Vec::new());
    }
    let (areas, counts) = wants(req);
    let show = req.show.get();
    let none: Vec<i64> = Vec::new();
    let free = "s.hold_id IS NULL AND s.booking_id IS NULL";
    let mut got: Vec<Row> = run_claim(tx, distributed, "", free, show, &areas, &counts, &none)
        .await?
        .iter()
        .map(|r| (r.get("area"), r.get("id"), r.get("label"), r.get("xmin")))
        .collect();
    let missing = missing(req, &got);
    if missing.is_empty() {
        return Ok(got);
    }
    // Too few free places: take places of lapsed holds, then make sure, in a new
    // statement, that each of those holds is still lapsed (not extended meanwhile).
    let (areas, counts): (Vec<&str>, Vec<i32>) =
        missing.iter().map(|(a, n)| (a.as_str(), *n)).unzip();
    let taken: Vec<i64> = got.iter().map(|g| g.1).collect();
    let join = "JOIN holds h ON h.show_id = s.show_id AND h.id = s.hold_id";
    let rows = run_claim(tx, distributed, join, LAPSED, show, &areas, &counts, &taken).await?;
    let holds: Vec<Uuid> = rows.iter().map(|r| r.get("hold_id")).collect();
    let still: HashMap<Uuid, bool> = if holds.is_empty() {
        HashMap::new()
    } else {
        tx.cq(
            &format!(
                "SELECT h.id, {LAPSED} AS lapsed FROM holds h
                  WHERE h.show_id = $1 AND h.id = ANY($2)"
            ),
            &[&show, &holds],
        )
        .await?
        .iter()
        .map(|r| (r.get("id"), r.get("lapsed")))
        .collect()
    };
    for r in &rows {
        if still.get(&r.get::<_, Uuid>("hold_id")) == Some(&true) {
            got.push((r.get("area"), r.get("id"), r.get("label"), r.get("xmin")));
        }
    }
    let missing = self::missing(req, &got);
    if !missing.is_empty() {
        return Err(Error::SeatsUnavailable {
            seats: Vec::new(),
            areas: missing.into_iter().map(|(a, _)| a).collect(),
        });
    }
    Ok(got)
}

/// The areas of `req` that `got` has too few places of, with how many are missing.
fn missing(req: &HoldRequest, got: &[Row]) -> Vec<(AreaCode, i32)> {
    req.areas
        .iter()
        .filter_map(|w| {
            let have = got.iter().filter(|g| g.0 == w.area.as_str()).count() as i32;
            (have < w.count as i32).then(|| (w.area.clone(), w.count as i32 - have))
        })
        .collect()
}

/// Of the areas `req` asks for, those with fewer places that could be taken now (free,
/// or of a lapsed hold) than asked, read without locks: for a refusal that names the
/// seats taken, to name the short areas too.
pub(super) async fn short<C: GenericClient>(
    client: &C,
    req: &HoldRequest,
) -> Result<Vec<AreaCode>> {
    let (areas, counts) = wants(req);
    let rows = client
        .cq(
            &format!(
                "SELECT w.area
                   FROM unnest($2::text[], $3::int[]) AS w(area, n)
                  WHERE (SELECT count(*) FROM (
                             SELECT 1 FROM seats s {JOIN_HOLD}
                              WHERE s.show_id = $1 AND s.area = w.area AND s.booking_id IS NULL
                                AND (s.hold_id IS NULL OR {LAPSED})
                              LIMIT w.n) c) < w.n"
            ),
            &[&req.show.get(), &areas, &counts],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| AreaCode::from_db(r.get("area")))
        .collect())
}

/// Gives the claimed places `rows` their tickets: each area's places, in id order,
/// the types asked for it in the order asked.
pub(super) fn assign(
    req: &HoldRequest,
    mut rows: Vec<Row>,
    tickets: &[PlaceTicket],
) -> Result<Vec<Claimed>> {
    rows.sort_by_key(|g| g.1);
    let mut claimed = Vec::with_capacity(rows.len());
    for w in &req.areas {
        let mut mine = rows.iter().filter(|g| g.0 == w.area.as_str());
        for t in tickets.iter().filter(|t| t.area == w.area) {
            let (_, id, label, xmin) = mine
                .next()
                .ok_or_else(|| Error::Invariant(format!("claimed too few places of {}", w.area)))?;
            claimed.push(Claimed {
                id: *id,
                label: label.clone(),
                xmin: xmin.clone(),
                ticket: t.clone(),
            });
        }
    }
    claimed.sort_by_key(|c| c.id);
    Ok(claimed)
}

/// Adds the places `claimed` (in id order) to the new hold `hold`: their tickets after
/// the seats', their counts, their prices in the total.
pub(super) fn add_to(hold: &mut Hold, claimed: Vec<Claimed>) {
    for c in claimed {
        *hold.areas.entry(c.ticket.area.clone()).or_insert(0) += 1;
        hold.total += c.ticket.price.unwrap_or(0);
        hold.tickets.push(Ticket {
            seat: SeatLabel::from_db(c.label),
            area: Some(c.ticket.area),
            ticket_type: c.ticket.ticket_type,
            price: c.ticket.price,
        });
    }
}
