//! What an event is: one transaction's change to some seats of one show, and its
//! place in the feed.

use crate::domain::{AreaCode, SeatLabel, SeatState, ShowId, Version};
use crate::error::{Error, Result};
use serde::Serialize;
use std::fmt;

/// A place in the feed: `{xid}.{id}` on one PostgreSQL, `{node}.{epoch}.{xid}.{id}` on a
/// Citus formation. One show's positions are totally ordered, by `(epoch, xid, id)`,
/// and its feed only ever moves forward. Across shows, positions of one node compare
/// by `(xid, id)`; those of different nodes do not compare
/// at all (their transaction ids are each node's own): the whole feed keeps a cursor
/// per node ([`super::Cursor`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    // Field order is the derived order: a show's.
    pub(super) epoch: i32,
    pub(super) xid: u64,
    pub(super) id: i64,
    pub(super) node: i32,
}

impl Position {
    /// Before every event (of one PostgreSQL; of a formation's node 0, which holds no
    /// show).
    pub const START: Position = Position {
        epoch: 0,
        xid: 0,
        id: 0,
        node: 0,
    };

    /// Before every event of `node`'s transactions, in the show's stay `epoch`.
    pub(super) fn start_of(node: i32, epoch: i32) -> Position {
        Position {
            epoch,
            node,
            ..Position::START
        }
    }

    /// The id of the transaction that wrote the event (a full `xid8`, as in
    /// `pg_current_snapshot()`), on its node.
    pub fn xid(&self) -> u64 {
        self.xid
    }

    /// The event's own id, from the sequence of `seat_events`.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// The node whose transaction wrote the event (the Citus group id; 0 on one
    /// PostgreSQL).
    pub fn node(&self) -> i32 {
        self.node
    }

    /// The show's stay on a node the event belongs to: 0 until its shard group first
    /// moved (always 0 on one PostgreSQL).
    pub fn epoch(&self) -> i32 {
        self.epoch
    }

    /// The order of events of one node's transactions, whatever their show.
    pub(super) fn node_order(&self) -> (u64, i64) {
        (self.xid, self.id)
    }

    /// Parses the text form (as sent in `Last-Event-ID`): `{xid}.{id}`, or
    /// `{node}.{epoch}.{xid}.{id}`.
    pub fn parse(s: &str) -> Result<Position> {
        let bad = || Error::invalid("since", "not an event id (as sent in the `id:` field)");
        let digits =
            |t: &str| !t.is_empty() && t.len() <= 19 && t.bytes().all(|b| b.is_ascii_digit());
        let parts: Vec<&str> = s.splitn(5, '.').collect();
        if !parts.iter().all(|t| digits(t)) {
            return Err(bad());
        }
        // A node and an epoch: at most 9 digits, as openapi.json says.
        let small = |t: &str| -> Result<i32> {
            if t.len() > 9 {
                return Err(bad());
            }
            t.parse().map_err(|_| bad())
        };
        let (node, epoch, xid, id) = match parts[..] {
            [xid, id] => (0, 0, xid, id),
            [node, epoch, xid, id] => (small(node)?, small(epoch)?, xid, id),
            _ => return Err(bad()),
        };
        Ok(Position {
            epoch,
            xid: xid.parse().map_err(|_| bad())?,
            id: id.parse().map_err(|_| bad())?,
            node,
        })
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.node != 0 || self.epoch != 0 {
            write!(f, "{}.{}.", self.node, self.epoch)?;
        }
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
/// On a formation, a snapshot of the node a show's read ran on, in the show's stay
/// `epoch` there: it saw every event of the show's earlier stays (they committed before
/// the move that ended them) and none of a later one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxSnapshot {
    node: i32,
    epoch: i32,
    xmin: u64,
    xmax: u64,
    /// Transactions in progress when the snapshot was taken (between `xmin` and `xmax`).
    running: Vec<u64>,
}

impl TxSnapshot {
    /// Parses the text form `xmin:xmax:xip,xip,...`, of a read on one PostgreSQL.
    pub fn parse(s: &str) -> Result<TxSnapshot> {
        TxSnapshot::parse_on(0, 0, s)
    }

    /// [`TxSnapshot::parse`], of a read of a show on `node` in its stay `epoch`.
    pub fn parse_on(node: i32, epoch: i32, s: &str) -> Result<TxSnapshot> {
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
        Ok(TxSnapshot::new(node, epoch, xmin, xmax, running))
    }

    /// Whether the changes of transaction `xid` of the snapshot's node (one that wrote
    /// an event, so one that committed) are visible in it: `pg_visible_in_snapshot`.
    pub fn sees(&self, xid: u64) -> bool {
        xid < self.xmin || (xid < self.xmax && !self.running.contains(&xid))
    }

    /// Whether the read saw the event at `event`, of the show it read: every event of
    /// an earlier stay of the show, none of a later one, and in its own those of the
    /// transactions it [`sees`](TxSnapshot::sees).
    pub fn reflects(&self, event: Position) -> bool {
        match event.epoch.cmp(&self.epoch) {
            std::cmp::Ordering::Less => true,
            std::cmp::Ordering::Greater => false,
            std::cmp::Ordering::Equal => self.sees(event.xid),
        }
    }

    pub(super) fn new(
        node: i32,
        epoch: i32,
        xmin: u64,
        xmax: u64,
        running: Vec<u64>,
    ) -> TxSnapshot {
        TxSnapshot {
            node,
            epoch,
            xmin,
            xmax,
            running,
        }
    }

    /// The oldest transaction still running when the snapshot was taken: every older
    /// one has ended.
    pub fn xmin(&self) -> u64 {
        self.xmin
    }

    /// The first transaction not yet begun when the snapshot was taken.
    pub fn xmax(&self) -> u64 {
        self.xmax
    }

    /// The node the read ran on and the show's stay there.
    pub(super) fn placement(&self) -> (i32, i32) {
        (self.node, self.epoch)
    }
}

/// The text form `xmin:xmax:xip,xip,...`, as PostgreSQL writes it; on a formation
/// prefixed by `{node}.{epoch}:`.
impl fmt::Display for TxSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.node != 0 || self.epoch != 0 {
            write!(f, "{}.{}:", self.node, self.epoch)?;
        }
        write!(f, "{}:{}:", self.xmin, self.xmax)?;
        for (i, x) in self.running.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{x}")?;
        }
        Ok(())
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
        /// Seats or places were added to an active hold: they are now `held`.
        Add = "add",
        /// Seats or places were removed from an active hold: `available` again.
        Remove = "remove",
        /// A booking gave back some seats (`available`) and took others (`booked`), in
        /// one transaction: each entry says its own state.
        Exchange = "exchange",
        /// An admin (or the venue's layout) took the seats off sale: `blocked`.
        Block = "block",
        /// A block was deleted: its seats are `available` again.
        Unblock = "unblock",
        /// The show was cancelled: every held and booked seat and place is `available`
        /// again. One event per cancellation, listing every seat and place of the show
        /// (each row was rewritten: `available`, or `blocked` for a blocked one, at its
        /// new version), each place saying what it was (`was`).
        ShowCancel = "show_cancel",
    }
}

impl Cause {
    /// What a place changed by this cause was before, as a rule (a hold taking over
    /// places of a lapsed hold says otherwise in its event: they were held).
    pub(crate) fn place_was(self) -> SeatState {
        match self {
            Cause::Hold | Cause::Add | Cause::Block | Cause::Unblock => SeatState::Available,
            Cause::Cancel | Cause::Exchange => SeatState::Booked,
            Cause::Confirm | Cause::Release | Cause::Expire | Cause::Remove => SeatState::Held,
            // Its entries always say (`was`).
            Cause::ShowCancel => SeatState::Held,
        }
    }
}

/// How one transaction changed the counts of one standing area: each count's change
/// (the places that left a state count −1 in it, those that entered +1). Zero changes
/// are left out of the JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AreaChange {
    /// The area.
    pub area: AreaCode,
    /// Change of its available places.
    #[serde(skip_serializing_if = "is_zero")]
    pub available: i64,
    /// Change of its held places.
    #[serde(skip_serializing_if = "is_zero")]
    pub held: i64,
    /// Change of its booked places.
    #[serde(skip_serializing_if = "is_zero")]
    pub booked: i64,
    /// For places just held: the hold's `expires_at` (as [`SeatChange::held_until`]).
    /// Not sent to clients.
    #[serde(skip)]
    pub held_until: Option<chrono::DateTime<chrono::Utc>>,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

impl AreaChange {
    fn count(&mut self, state: SeatState, by: i64) {
        match state {
            SeatState::Available | SeatState::Blocked => self.available += by,
            SeatState::Held => self.held += by,
            SeatState::Booked => self.booked += by,
        }
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
    /// Every seat the transaction changed, in seat id order; empty when it changed
    /// only places of standing areas.
    pub seats: Vec<SeatChange>,
    /// How it changed the counts of each standing area, in area order; omitted from
    /// the JSON when empty. An event changes at least one seat or place.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub areas: Vec<AreaChange>,
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
    /// Set on a place of a standing area.
    #[serde(default)]
    area: Option<String>,
    /// A place's state before, when not the cause's usual one.
    #[serde(default)]
    was: Option<String>,
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
        epoch: r.get("epoch"),
        xid: parse_xid(r.get("xid_text"))?,
        id: r.get("id"),
        node: r.get("node"),
    };
    let cause = Cause::from_db(r.get("cause"))?;
    let (seats, areas) = changes_from_json(r.get("seats"), cause)?;
    Ok(SeatEvent {
        position,
        show_id: ShowId::from_db(r.get("show_id")),
        cause,
        seats,
        areas,
        json: Default::default(),
    })
}

/// The stored changes of an event of `cause`: its seats, and its places folded into
/// one change per area (in the order the areas first appear: place ids, which follow
/// the areas' order).
pub(super) fn changes_from_json(
    seats: serde_json::Value,
    cause: Cause,
) -> Result<(Vec<SeatChange>, Vec<AreaChange>)> {
    let stored: Vec<StoredChange> =
        serde_json::from_value(seats).map_err(|e| Error::Invariant(format!("event seats: {e}")))?;
    let mut changes = Vec::with_capacity(stored.len());
    let mut areas: Vec<AreaChange> = Vec::new();
    for c in stored {
        let state = SeatState::from_db(&c.state)?;
        let Some(area) = c.area else {
            changes.push(SeatChange {
                label: SeatLabel::from_db(c.label),
                state,
                version: Version::new(c.version),
                held_until: c.until,
            });
            continue;
        };
        let was = match c.was.as_deref() {
            Some(w) => SeatState::from_db(w)?,
            None => cause.place_was(),
        };
        let i = match areas.iter().position(|a| a.area.as_str() == area) {
            Some(i) => i,
            None => {
                areas.push(AreaChange {
                    area: AreaCode::from_db(area),
                    available: 0,
                    held: 0,
                    booked: 0,
                    held_until: None,
                });
                areas.len() - 1
            }
        };
        let a = &mut areas[i];
        a.count(was, -1);
        a.count(state, 1);
        if state == SeatState::Held {
            a.held_until = match (a.held_until, c.until) {
                (Some(x), Some(y)) => Some(x.min(y)),
                (x, y) => x.or(y),
            };
        }
    }
    Ok((changes, areas))
}
