//! What an event is: one transaction's change to some seats of one show, and its
//! place in the feed.

use crate::domain::{SeatLabel, SeatState, ShowId, Version};
use crate::error::{Error, Result};
use serde::Serialize;
use std::fmt;

/// A place in the feed: `{xid}.{id}`. Positions are totally ordered; the feed only
/// ever moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    pub(super) xid: u64,
    pub(super) id: i64,
}

impl Position {
    /// Before every event.
    pub const START: Position = Position { xid: 0, id: 0 };

    /// The id of the transaction that wrote the event (a full `xid8`, as in
    /// `pg_current_snapshot()`).
    pub fn xid(&self) -> u64 {
        self.xid
    }

    /// Parses the `{xid}.{id}` form (as sent in `Last-Event-ID`).
    pub fn parse(s: &str) -> Result<Position> {
        let bad = || Error::invalid("since", "not an event id (as sent in the `id:` field)");
        let (xid, id) = s.split_once('.').ok_or_else(bad)?;
        let digits =
            |t: &str| !t.is_empty() && t.len() <= 19 && t.bytes().all(|b| b.is_ascii_digit());
        if !digits(xid) || !digits(id) {
            return Err(bad());
        }
        Ok(Position {
            xid: xid.parse().map_err(|_| bad())?,
            id: id.parse().map_err(|_| bad())?,
        })
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.xid, self.id)
    }
}

impl serde::Serialize for Position {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A transaction snapshot (`pg_current_snapshot()`): which transactions' changes a
/// read saw. A transaction is seen when it committed before the snapshot was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxSnapshot {
    xmin: u64,
    xmax: u64,
    /// Transactions in progress when the snapshot was taken (between `xmin` and `xmax`).
    running: Vec<u64>,
}

impl TxSnapshot {
    /// Parses the text form `xmin:xmax:xip,xip,...`.
    pub fn parse(s: &str) -> Result<TxSnapshot> {
        let bad = || Error::Invariant(format!("snapshot {s:?}"));
        let mut parts = s.split(':');
        let mut next = || parts.next().ok_or_else(bad);
        let xmin = next()?.parse().map_err(|_| bad())?;
        let xmax = next()?.parse().map_err(|_| bad())?;
        let running = next()?
            .split(',')
            .filter(|x| !x.is_empty())
            .map(|x| x.parse().map_err(|_| bad()))
            .collect::<Result<Vec<u64>>>()?;
        Ok(TxSnapshot {
            xmin,
            xmax,
            running,
        })
    }

    /// Whether the changes of transaction `xid` (one that wrote an event, so one that
    /// committed) are visible in this snapshot: `pg_visible_in_snapshot`.
    pub fn sees(&self, xid: u64) -> bool {
        xid < self.xmin || (xid < self.xmax && !self.running.contains(&xid))
    }
}

crate::domain::text_enum! {
    /// What happened to the seats.
    pub enum Cause {
        /// A hold took the seats: they are now `held`.
        Hold = "hold",
        /// A hold was confirmed into a booking: its seats are now `booked`.
        Confirm = "confirm",
        /// The owner released a hold: its seats are `available` again.
        Release = "release",
        /// A lapsed hold was marked expired (by the sweeper, or by a release after it
        /// lapsed): the seats still pointing at it are `available` again.
        Expire = "expire",
        /// A booking was cancelled: its seats are `available` again.
        Cancel = "cancel",
        /// An admin (or the venue's layout) took the seats off sale: `blocked`.
        Block = "block",
        /// A block was deleted: its seats are `available` again.
        Unblock = "unblock",
    }
}

/// One seat's new state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeatChange {
    /// The seat that changed.
    pub label: SeatLabel,
    /// What it is after the change.
    pub state: SeatState,
    /// Its version after the change, as the seat map gives it.
    pub version: Version,
    /// For a seat just held: the hold's `expires_at`, when the seat reads available
    /// again unless the hold is extended (extending writes no event). Not sent to
    /// clients; absent in events written before it was recorded.
    #[serde(skip)]
    pub held_until: Option<chrono::DateTime<chrono::Utc>>,
}

/// One transaction's change to some seats of one show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeatEvent {
    /// Its place in the feed: resume after it to get the events that follow. Not
    /// part of the JSON (sent as the SSE `id:`).
    #[serde(skip)]
    pub position: Position,
    /// The show whose seats changed.
    pub show_id: ShowId,
    /// What happened to them.
    pub cause: Cause,
    /// Every seat the transaction changed, in seat id order; never empty.
    pub seats: Vec<SeatChange>,
    /// The JSON of this event, made once however many subscribers send it.
    #[serde(skip)]
    pub(super) json: std::sync::OnceLock<String>,
}

impl SeatEvent {
    /// `{"show_id": .., "cause": .., "seats": [..]}`, serialised once and shared.
    pub fn json(&self) -> &str {
        self.json
            .get_or_init(|| serde_json::to_string(self).unwrap_or_default())
    }
}

#[derive(serde::Deserialize)]
struct StoredChange {
    label: String,
    state: String,
    version: String,
    #[serde(default)]
    until: Option<chrono::DateTime<chrono::Utc>>,
}

/// A transaction id as the text of an `xid8`. Ids travel as text (tokio-postgres has
/// no `xid8` type) but are compared only as numbers, here and in SQL, where every
/// query orders by the `xid8` column itself: a text column named `xid` would win the
/// name in `ORDER BY xid`, and text order puts `1000000` before `999999` (issue 12).
pub(super) fn parse_xid(text: &str) -> Result<u64> {
    text.parse()
        .map_err(|_| Error::Invariant(format!("xid {text:?}")))
}

pub(super) fn event_from_row(r: &tokio_postgres::Row) -> Result<SeatEvent> {
    let position = Position {
        xid: parse_xid(r.get("xid_text"))?,
        id: r.get("id"),
    };
    let cause = Cause::from_db(r.get("cause"))?;
    let seats = changes_from_json(r.get("seats"))?;
    Ok(SeatEvent {
        position,
        show_id: ShowId::from_db(r.get("show_id")),
        cause,
        seats,
        json: Default::default(),
    })
}

pub(super) fn changes_from_json(seats: serde_json::Value) -> Result<Vec<SeatChange>> {
    let stored: Vec<StoredChange> =
        serde_json::from_value(seats).map_err(|e| Error::Invariant(format!("event seats: {e}")))?;
    stored
        .into_iter()
        .map(|c| {
            Ok(SeatChange {
                label: SeatLabel::from_db(c.label),
                state: SeatState::from_db(&c.state)?,
                version: Version::new(c.version),
                held_until: c.until,
            })
        })
        .collect()
}
