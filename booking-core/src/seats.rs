//! Seats and their state: the seat map, and the one definition of "held" and "version"
//! that every statement shares.
//!
//! A seat row points at the hold that holds it (`hold_id`) or the booking that owns it
//! (`booking_id`), never both. Whether a pointed-at hold still counts is decided when
//! the row is read, by the database clock: a hold past `expires_at` blocks nobody even
//! before the sweeper has cleared the pointer.

use crate::database::Cached;
use crate::domain::{SeatLabel, SeatState, ShowId, Version};
use crate::error::Result;
use deadpool_postgres::GenericClient;
use serde::Serialize;

/// SQL: the hold `h` holds its seats right now (a seat row `s` joined to it is held).
pub(crate) const HELD: &str = "(h.status = 'active' AND h.expires_at > now())";

macro_rules! lapsed_sql {
    () => {
        "(h.status = 'active' AND h.expires_at <= now())"
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
    /// The seat's label, such as `A12`.
    pub label: SeatLabel,
    /// The row part of the label (`A`).
    pub row: String,
    /// The seat's number in its row, from 1 (`12`).
    pub number: i32,
    /// The seat's category (`standard` unless its row named another).
    pub category: String,
    /// The seat's price in minor units of the show's currency; present when the seat's
    /// category has a price.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price: Option<i64>,
    /// Available, held or booked, as of the map's read (by the database clock).
    pub state: SeatState,
    /// Changes whenever `state` does (and may change when it does not); what a hold's
    /// `if_versions` compares with.
    pub version: Version,
    /// An aisle runs right after this seat.
    pub aisle_after: bool,
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
    /// Every seat of the show, front row first, then by number.
    pub seats: Vec<Seat>,
    /// When the map changes next without any write: the earliest `expires_at` of a
    /// held seat (a lapsed hold reads available at once). For caches.
    #[serde(skip)]
    pub lapses_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The snapshot the map was read in: which transactions' changes it shows. A
    /// follower of the feed applies exactly the events this snapshot does not see.
    #[serde(skip)]
    pub snapshot: Option<crate::feed::TxSnapshot>,
}

/// The seat map of `show`, read in one statement (one snapshot), or
/// [`Error::ShowNotFound`](crate::Error::ShowNotFound).
pub async fn seat_map<C: GenericClient>(client: &C, show: ShowId) -> Result<SeatMap> {
    let sql = format!(
        "SELECT s.label, s.row_label, s.number, s.category, s.price, s.aisle_after,
                s.booking_id IS NOT NULL AS booked, {HELD} IS TRUE AS held, {VERSION} AS version,
                CASE WHEN {HELD} THEN h.expires_at END AS held_until,
                pg_current_snapshot()::text AS snapshot
           FROM seats s {JOIN_HOLD}
          WHERE s.show_id = $1
          ORDER BY s.row_index, s.number"
    );
    let rows = client.cq(&sql, &[&show.get()]).await?;
    if rows.is_empty() {
        // Every show has at least one seat, so no seats means no show; ask to be sure.
        ensure_exists(client, show).await?;
    }
    let lapses_at = rows
        .iter()
        .filter_map(|r| r.get::<_, Option<chrono::DateTime<chrono::Utc>>>("held_until"))
        .min();
    let seats = rows
        .iter()
        .map(|r| Seat {
            label: SeatLabel::from_db(r.get("label")),
            row: r.get("row_label"),
            number: r.get("number"),
            category: r.get("category"),
            price: r.get("price"),
            state: state(r.get("booked"), r.get("held")),
            version: Version::new(r.get::<_, String>("version")),
            aisle_after: r.get("aisle_after"),
            held_until: r.get("held_until"),
        })
        .collect();
    // One statement, one snapshot: every row carries the same text.
    let snapshot = rows
        .first()
        .map(|r| crate::feed::TxSnapshot::parse(r.get("snapshot")))
        .transpose()?;
    Ok(SeatMap {
        show_id: show,
        seats,
        lapses_at,
        snapshot,
    })
}

pub(crate) fn state(booked: bool, held: bool) -> SeatState {
    if booked {
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
