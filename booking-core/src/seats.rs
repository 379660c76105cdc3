//! Seats and their state: the seat map, and the one definition of "held" and "version"
//! that every statement shares.
//!
//! A seat row points at the hold that holds it (`hold_id`) or the booking that owns it
//! (`booking_id`), never both. Whether a pointed-at hold still counts is decided when
//! the row is read, by the database clock: a hold past `expires_at` blocks nobody even
//! before the sweeper has cleared the pointer.

use crate::database::Cached;
use crate::domain::{BlockId, SeatLabel, SeatState, ShowId, TicketType, Version};
use crate::error::Result;
use crate::tickets::{types_from_json, types_of_show};
use deadpool_postgres::GenericClient;
use serde::Serialize;

/// SQL: the hold `h` holds its seats right now (a seat row `s` joined to it is held).
pub(crate) const HELD: &str = "(h.status = 'active' AND h.expires_at > booking_now(h.show_id))";

macro_rules! lapsed_sql {
    () => {
        "(h.status = 'active' AND h.expires_at <= booking_now(h.show_id))"
    };
}

/// SQL: the hold `h` has lapsed: still `active` in the table, but past its
/// `expires_at` by the database clock (it blocks nobody; the sweeper will expire it).
pub(crate) const LAPSED: &str = lapsed_sql!();

/// The mark a seat's version carries while the hold it points at has lapsed.
macro_rules! lapsed_mark {
    () => {
        "x"
    };
}

/// SQL: the seat's version: its row's `xmin`, marked when the hold it points at has
/// lapsed (the seat reads `available` though its row has not changed since `held`).
/// [`lapsed_version`] is the same rule for a row read otherwise.
pub(crate) const VERSION: &str = concat!(
    "s.xmin::text || CASE WHEN ",
    lapsed_sql!(),
    " THEN '",
    lapsed_mark!(),
    "' ELSE '' END"
);

/// The version of a seat whose row has `xmin`, pointing at a hold that has `lapsed`
/// or not: what [`VERSION`] computes in SQL.
pub(crate) fn lapsed_version(xmin: &str, lapsed: bool) -> String {
    if lapsed {
        format!("{xmin}{}", lapsed_mark!())
    } else {
        xmin.to_owned()
    }
}

/// SQL: join each seat `s` to the hold it points at, if any.
pub(crate) const JOIN_HOLD: &str =
    "LEFT JOIN holds h ON h.show_id = s.show_id AND h.id = s.hold_id";

/// One seat on the map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Seat {
    /// The seat's label, such as `A12` (`101-A12` in a section).
    pub label: SeatLabel,
    /// The section of its row, if any (`101`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub section: Option<String>,
    /// The row part of the label (`A`).
    pub row: String,
    /// The seat's number in its row, from 1 (`12`).
    pub number: i32,
    /// The seat's category (`standard` unless its row named another).
    pub category: String,
    /// The seat's price as the show's default ticket type, in minor units of the show's
    /// currency; present when that type prices the seat's category. Its price as each
    /// type is in [`SeatMap::ticket_types`], by category.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price: Option<i64>,
    /// Available, held, booked or blocked, as of the map's read (by the database clock).
    pub state: SeatState,
    /// Changes whenever `state` does (and may change when it does not); what a hold's
    /// `if_versions` compares with.
    pub version: Version,
    /// An aisle runs right after this seat.
    pub aisle_after: bool,
    /// Its features (`wheelchair`, ...), sorted; omitted when it has none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
    /// When blocked: the block. Not part of the map's JSON.
    #[serde(skip)]
    pub block_id: Option<BlockId>,
    /// When blocked, and read by [`seat_map_with_reasons`] (for admins): why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_reason: Option<String>,
    /// When held: the hold's `expires_at` (the seat reads available from then on unless
    /// the hold is extended). For caches; not part of the map's JSON.
    #[serde(skip)]
    pub held_until: Option<chrono::DateTime<chrono::Utc>>,
}

/// Every seat of a show, in row order (front first), then number order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeatMap {
    /// The show the map is of.
    pub show_id: ShowId,
    /// What its seats are sold as, the default first: a seat's price as a type is the
    /// type's price for the seat's category (a type that lists no price for it is not
    /// sold for that seat). Given once per category rather than with every seat, so a
    /// map of 100,000 seats does not grow with the number of types.
    pub ticket_types: Vec<TicketType>,
    /// Every seat of the show, front row first, then by number.
    pub seats: Vec<Seat>,
    /// Its standing areas with their counts, in the show's order (read in the same
    /// snapshot as the seats).
    pub areas: Vec<crate::areas::Area>,
    /// When the map changes next without any write: the earliest `expires_at` of a
    /// held seat (a lapsed hold reads available at once). For caches.
    #[serde(skip)]
    pub lapses_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The snapshot the map was read in: which transactions' changes it shows. A
    /// follower of the feed applies exactly the events this snapshot does not see.
    #[serde(skip)]
    pub snapshot: Option<crate::feed::TxSnapshot>,
    /// Where the map stands in the feed: a follower that subscribes from it
    /// ([`crate::Feed::subscribe_from`], `?since=` of the events stream) gets exactly
    /// the events the map does not reflect.
    pub position: crate::feed::MapPosition,
}

/// The seat map of `show`, its seats read in one statement (one snapshot), or
/// [`Error::ShowNotFound`](crate::Error::ShowNotFound).
pub async fn seat_map<C: GenericClient>(client: &C, show: ShowId) -> Result<SeatMap> {
    read_map(client, &crate::Settings::default(), show, false).await
}

/// [`seat_map`] with each blocked seat's `block_reason`: the map an admin sees.
pub async fn seat_map_with_reasons<C: GenericClient>(client: &C, show: ShowId) -> Result<SeatMap> {
    read_map(client, &crate::Settings::default(), show, true).await
}

/// [`seat_map`] (with the reasons when `reasons`) for the database `settings`
/// describe: on a Citus formation the map's position also says which node read it, in
/// which of the show's stays there ([`crate::feed::TxSnapshot`]).
pub async fn seat_map_for<C: GenericClient>(
    client: &C,
    settings: &crate::Settings,
    show: ShowId,
    reasons: bool,
) -> Result<SeatMap> {
    read_map(client, settings, show, reasons).await
}

async fn read_map<C: GenericClient>(
    client: &C,
    settings: &crate::Settings,
    show: ShowId,
    reasons: bool,
) -> Result<SeatMap> {
    // Where the snapshot was taken, in the same statement (so in the same snapshot):
    // the show's node and its stay there. On one PostgreSQL always 0.
    let placement = if settings.distributed {
        "(SELECT booking_node(sh.id) FROM shows sh WHERE sh.id = $1) AS node,
         (SELECT booking_epoch(sh.id) FROM shows sh WHERE sh.id = $1) AS epoch"
    } else {
        "0 AS node, 0 AS epoch"
    };
    let reason = if reasons {
        "(SELECT b.reason FROM blocks b WHERE b.show_id = $1 AND b.id = s.block_id)"
    } else {
        "NULL::text"
    };
    // One statement, one snapshot: a first row with the snapshot and the areas' counts,
    // then the seats (a show of standing areas only has no seat row).
    let sql = format!(
        "SELECT 0 AS part, pg_current_snapshot()::text AS snapshot, {placement}, {areas},
                NULL::text AS label, NULL::text AS section, NULL::text AS row_label,
                NULL::int AS number, NULL::text AS category, NULL::bool AS aisle_after,
                NULL::text[] AS features, NULL::bigint AS block_id, NULL::text AS block_reason,
                NULL::bool AS booked, NULL::bool AS held, NULL::text AS version,
                NULL::timestamptz AS held_until, NULL::int AS row_index
         UNION ALL
         SELECT 1, NULL, NULL, NULL, NULL, s.label, s.section, s.row_label, s.number, s.category,
                s.aisle_after, s.features, s.block_id, {reason},
                s.booking_id IS NOT NULL, {HELD} IS TRUE, {VERSION},
                CASE WHEN {HELD} THEN h.expires_at END, s.row_index
           FROM seats s {JOIN_HOLD}
          WHERE s.show_id = $1 AND s.area IS NULL
          ORDER BY part, row_index, number",
        areas = crate::areas::areas_column("$1"),
    );
    // The types never change after the show's creation: a statement of their own,
    // pipelined with the seats.
    let types_sql = format!(
        "SELECT {} FROM shows sh WHERE sh.id = $1",
        types_of_show("$1")
    );
    let (rows, types) = futures_util::future::try_join(
        client.cq(&sql, &[&show.get()]),
        client.cq_opt(&types_sql, &[&show.get()]),
    )
    .await?;
    let Some(types) = types else {
        return Err(crate::error::Error::ShowNotFound);
    };
    let ticket_types = types_from_json(types.get("ticket_types"))?;
    let default_prices = ticket_types.first().map(|t| &t.prices);
    let (head, rows) = rows
        .split_first()
        .ok_or_else(|| crate::error::Error::Invariant("a seat map without its head".into()))?;
    let areas = crate::areas::areas_from_json(head.get("areas"))?;
    let lapses_at = rows
        .iter()
        .filter_map(|r| r.get::<_, Option<chrono::DateTime<chrono::Utc>>>("held_until"))
        .chain(areas.iter().filter_map(|a| a.held_until))
        .min();
    let seats = rows
        .iter()
        .map(|r| {
            let category: String = r.get("category");
            let block_id = r.get::<_, Option<i64>>("block_id").map(BlockId::from_db);
            Seat {
                label: SeatLabel::from_db(r.get("label")),
                section: r.get("section"),
                row: r.get("row_label"),
                number: r.get("number"),
                price: default_prices.and_then(|p| p.get(&category).copied().flatten()),
                category,
                state: state(block_id.is_some(), r.get("booked"), r.get("held")),
                version: Version::new(r.get::<_, String>("version")),
                aisle_after: r.get("aisle_after"),
                features: r.get("features"),
                block_id,
                block_reason: r.get("block_reason"),
                held_until: r.get("held_until"),
            }
        })
        .collect();
    let snapshot = crate::feed::TxSnapshot::parse_on(
        head.get("node"),
        head.get("epoch"),
        head.get("snapshot"),
    )?;
    Ok(SeatMap {
        show_id: show,
        ticket_types,
        seats,
        areas,
        lapses_at,
        position: crate::feed::MapPosition::of_snapshot(snapshot.clone()),
        snapshot: Some(snapshot),
    })
}

pub(crate) fn state(blocked: bool, booked: bool, held: bool) -> SeatState {
    if blocked {
        SeatState::Blocked
    } else if booked {
        SeatState::Booked
    } else if held {
        SeatState::Held
    } else {
        SeatState::Available
    }
}

/// `Ok` when the show exists, else [`crate::Error::ShowNotFound`]: one index lookup, for
/// callers that need no counts (also [`crate::shows::ensure_exists`]). Here, below
/// [`crate::shows`], because the seat map needs it and `shows` counts seats with this
/// module's rules.
pub async fn ensure_exists<C: GenericClient>(client: &C, show: ShowId) -> Result<()> {
    client
        .cq_opt("SELECT 1 FROM shows WHERE id = $1", &[&show.get()])
        .await?
        .map(|_| ())
        .ok_or(crate::error::Error::ShowNotFound)
}
