//! One show's seat map in memory: its seats, the feed's events applied to it, this
//! process's own changes the feed has not brought yet, for refusals (see the parent
//! module for why it equals a state the
//! database had), and its JSON.

use super::compact::{self, Format, Layout};
use crate::encoding::Compressed;
use crate::http::Reply;
use booking_core::feed::{MapPosition, TxSnapshot};
use booking_core::{Area, AreaChange, AreaCode, HoldRequest, Position, SeatEvent, SeatLabel};
use booking_core::{SeatMap, SeatState, ShowId};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use hyper::StatusCode;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A finished seat-map answer and its ETag.
#[derive(Clone)]
pub struct Entry {
    /// `200` with the map's JSON.
    pub reply: Reply,
    /// The `ETag` of the body as it is, quotes included (`"<epoch>-<generation>"`,
    /// `-c` after the generation for the compact form, or a digest of the body for a
    /// map not kept). A compressed body's tag adds the coding (see
    /// [`crate::encoding::Coding::tag_suffix`]).
    pub etag: Arc<str>,
    /// The body compressed, each coding at most once for all clones of the entry (so
    /// once per version of a cached map).
    pub compressed: Arc<Compressed>,
}

impl Entry {
    /// An answer not compressed yet.
    pub fn new(reply: Reply, etag: Arc<str>) -> Entry {
        Entry {
            reply,
            etag,
            compressed: Arc::default(),
        }
    }
}

/// The last answers of a map, each with its generation: the full and the compact form.
#[derive(Default)]
pub(super) struct Rendered {
    full: Option<(u64, Entry)>,
    compact: Option<(u64, Entry)>,
}

impl Rendered {
    fn of(&mut self, format: Format) -> &mut Option<(u64, Entry)> {
        match format {
            Format::Full => &mut self.full,
            Format::Compact => &mut self.compact,
        }
    }
}

/// Generations of every map of one cache, shows dropped and read again included:
/// never reused, so a tag names one body.
#[derive(Default)]
pub(super) struct Generations(AtomicU64);

impl Generations {
    fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// What the cache knows of one show.
#[derive(Default)]
pub(super) struct ShowState {
    /// Whether a task applies the show's events for us.
    pub(super) followed: bool,
    /// The last event of the show that the follower has seen.
    pub(super) seen: Position,
    pub(super) map: Option<Map>,
    /// While a read of the map runs: the events seen meanwhile, to apply to its result.
    pub(super) building: Option<Vec<Arc<SeatEvent>>>,
    /// This process's own changes that the follower has not seen yet, oldest first.
    own: Vec<Arc<SeatEvent>>,
    /// The last answers: their generation, body and tag.
    pub(super) rendered: Rendered,
}

/// A show's seats, compact, in map order.
pub(super) struct Map {
    show: ShowId,
    /// `"ticket_types":[..]`: the JSON of the show's types, which never change.
    ticket_types: Box<str>,
    seats: Vec<Slot>,
    index: HashMap<SeatLabel, u32>,
    /// The fixed part of the compact form.
    layout: Layout,
    /// The standing areas with their counts (a few at most: rendered whole each time).
    areas: Vec<Area>,
    /// What the read saw: events of these transactions are in the map already.
    snapshot: TxSnapshot,
    /// Bumped on every change of the map or of the own changes kept beside it.
    generation: u64,
    /// No later than the earliest `expires_at` of a held seat: past it, the map may be
    /// wrong (a lapse or an extend) and is read afresh.
    valid_until: Option<DateTime<Utc>>,
}

struct Slot {
    /// `{"label":..,"section":..,"row":..,"number":..,"category":..,"price":..,"state":"`:
    /// the JSON of the seat up to its state, which never changes.
    head: Box<str>,
    /// Closes the seat's JSON after its version: `,"aisle_after":false}`, with
    /// `,"features":[..]` before the brace when it has any. Never changes.
    tail: Box<str>,
    state: SeatState,
    version: String,
    held_until: Option<DateTime<Utc>>,
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

impl Map {
    fn from_db(map: SeatMap, snapshot: TxSnapshot, generations: &Generations) -> Map {
        let layout = Layout::of(&map.seats);
        let mut index = HashMap::with_capacity(map.seats.len());
        let mut valid_until = None;
        let seats = map
            .seats
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                index.insert(s.label.clone(), i as u32);
                // Must equal the field order and form of `booking_core::Seat`'s JSON
                // (tested against it).
                let mut head = String::with_capacity(96);
                let _ = write!(head, "{{\"label\":{},", json_str(s.label.as_str()));
                if let Some(section) = &s.section {
                    let _ = write!(head, "\"section\":{},", json_str(section));
                }
                let _ = write!(
                    head,
                    "\"row\":{},\"number\":{},\"category\":{},",
                    json_str(&s.row),
                    s.number,
                    json_str(&s.category)
                );
                if let Some(p) = s.price {
                    let _ = write!(head, "\"price\":{p},");
                }
                head.push_str("\"state\":\"");
                if s.state == SeatState::Held {
                    valid_until = earliest(valid_until, s.held_until);
                }
                let mut tail = format!(",\"aisle_after\":{}", s.aisle_after);
                if !s.features.is_empty() {
                    let _ = write!(
                        tail,
                        ",\"features\":{}",
                        serde_json::to_string(&s.features).unwrap_or_else(|_| "[]".into())
                    );
                }
                tail.push('}');
                Slot {
                    head: head.into(),
                    tail: tail.into(),
                    state: s.state,
                    version: s.version.as_str().to_owned(),
                    held_until: s.held_until,
                }
            })
            .collect();
        let ticket_types = format!(
            "\"ticket_types\":{}",
            serde_json::to_string(&map.ticket_types).unwrap_or_else(|_| "[]".into())
        );
        for a in &map.areas {
            // A place counts held until its hold ends by an event: from the earliest
            // deadline on, a buyer may take places the map shows held.
            valid_until = earliest(valid_until, a.held_until);
        }
        Map {
            show: map.show_id,
            ticket_types: ticket_types.into(),
            seats,
            index,
            layout,
            areas: map.areas,
            snapshot,
            generation: generations.next(),
            valid_until,
        }
    }

    /// Applies one committed transaction's changes.
    fn apply(&mut self, event: &SeatEvent, generations: &Generations) {
        for c in &event.seats {
            if let Some(&i) = self.index.get(&c.label) {
                let slot = &mut self.seats[i as usize];
                slot.state = c.state;
                slot.version.clear();
                slot.version.push_str(c.version.as_str());
                slot.held_until = c.held_until;
            }
        }
        apply_areas(&mut self.areas, &event.areas);
        self.valid_until = earliest(self.valid_until, hold_deadline(event));
        self.generation = generations.next();
    }
}

/// Adds an event's changes of area counts to `areas`.
fn apply_areas(areas: &mut [Area], changes: &[AreaChange]) {
    for c in changes {
        if let Some(a) = areas.iter_mut().find(|a| a.area == c.area) {
            a.available += c.available;
            a.held += c.held;
            a.booked += c.booked;
        }
    }
}

/// A held seat (or place) whose deadline the event does not carry makes the map expire
/// now.
fn hold_deadline(event: &SeatEvent) -> Option<DateTime<Utc>> {
    let seats = event
        .seats
        .iter()
        .filter(|c| c.state == SeatState::Held)
        .map(|c| c.held_until.unwrap_or(DateTime::<Utc>::MIN_UTC));
    let places = event
        .areas
        .iter()
        .filter(|a| a.held > 0 || a.held_until.is_some())
        .map(|a| a.held_until.unwrap_or(DateTime::<Utc>::MIN_UTC));
    seats.chain(places).min()
}

fn earliest(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl ShowState {
    /// The map, if it is still exact at `now`.
    fn usable(&self, now: DateTime<Utc>) -> Option<&Map> {
        let map = self.map.as_ref()?;
        let own_until = self.own.iter().filter_map(|e| hold_deadline(e)).min();
        match earliest(map.valid_until, own_until) {
            Some(t) if t <= now => None,
            _ => Some(map),
        }
    }

    /// The answer for the map as it is now in `format` (rendered again only if it
    /// changed).
    pub(super) fn entry(
        &mut self,
        epoch: &str,
        now: DateTime<Utc>,
        format: Format,
    ) -> Option<Entry> {
        let generation = self.usable(now)?.generation;
        if let Some((g, entry)) = self.rendered.of(format) {
            if *g == generation {
                return Some(entry.clone());
            }
        }
        let map = self.map.as_ref()?;
        let position = MapPosition::with_snapshot(self.seen, map.snapshot.clone());
        let (body, suffix) = match format {
            Format::Full => (render(map, &position), ""),
            Format::Compact => (render_compact(map, &position), "-c"),
        };
        let etag: Arc<str> = format!("\"{epoch}-{generation}{suffix}\"").into();
        let entry = Entry::new(Reply::json_bytes(StatusCode::OK, body), etag);
        *self.rendered.of(format) = Some((generation, entry.clone()));
        Some(entry)
    }

    /// The newest of this process's own changes that the follower has not applied yet.
    pub(super) fn own_newest(&self) -> Option<Position> {
        self.own.last().map(|e| e.position)
    }

    /// The last event of the show the follower applied (or passed over).
    pub(super) fn seen(&self) -> Position {
        self.seen
    }

    /// The follower saw `event`, the next event of the show.
    pub(super) fn on_event(&mut self, event: &Arc<SeatEvent>, generations: &Generations) {
        self.seen = event.position;
        if let Some(pending) = &mut self.building {
            pending.push(event.clone());
        }
        let before = self.own.len();
        self.own.retain(|o| o.position > event.position);
        if let Some(map) = &mut self.map {
            if !map.snapshot.reflects(event.position) {
                map.apply(event, generations);
            } else if self.own.len() != before {
                map.generation = generations.next();
            }
        }
    }

    /// A change made by this process has committed.
    pub(super) fn on_own(&mut self, event: &Arc<SeatEvent>, generations: &Generations) {
        if !self.followed {
            return; // No map can be kept without a follower: the next one is read anew.
        }
        if event.position <= self.seen {
            return; // The follower has applied it already.
        }
        if let Some(map) = &mut self.map {
            if map.snapshot.reflects(event.position) {
                return; // The map was read after it.
            }
            map.generation = generations.next();
        }
        let at = self.own.partition_point(|o| o.position < event.position);
        if self.own.get(at).map(|o| o.position) != Some(event.position) {
            self.own.insert(at, event.clone());
        }
    }

    /// Of `req`'s seats, those the map shows taken (booked, blocked, or held before its
    /// deadline) at `now`, and of its areas those with fewer places available than it
    /// asks for; `None` when the map is not usable or does not know every seat and area.
    pub(super) fn taken(
        &self,
        req: &HoldRequest,
        now: DateTime<Utc>,
    ) -> Option<(Vec<SeatLabel>, Vec<AreaCode>)> {
        let map = self.usable(now)?;
        let mut short = Vec::new();
        if !req.areas.is_empty() {
            // The counts as the feed left them, without this process's own changes on
            // top: a count is a sum, and an own delta added before an older one of
            // another process (a confirm here of a hold made there) shows counts that
            // never were, below zero. Seats are states, so the newest wins; counts are
            // not. Until the feed brings an own change, the map refuses less, never
            // more (the database decides the rest).
            for w in &req.areas {
                let a = map.areas.iter().find(|a| a.area == w.area)?;
                if a.available < i64::from(w.count) {
                    short.push(w.area.clone());
                }
            }
        }
        let mut taken = Vec::new();
        for label in req.seats.labels() {
            let i = *map.index.get(label)?;
            let slot = &map.seats[i as usize];
            let mut state = (slot.state, slot.held_until);
            for e in &self.own {
                for c in e.seats.iter().filter(|c| &c.label == label) {
                    state = (c.state, c.held_until);
                }
            }
            let is_taken = match state {
                (SeatState::Booked | SeatState::Blocked, _) => true,
                (SeatState::Held, Some(until)) => until > now,
                _ => false,
            };
            if is_taken {
                taken.push(label.clone());
            }
        }
        Some((taken, short))
    }

    /// A read of the map has returned.
    pub(super) fn install(
        &mut self,
        map: SeatMap,
        snapshot: TxSnapshot,
        generations: &Generations,
    ) {
        let mut map = Map::from_db(map, snapshot, generations);
        for e in self.building.take().unwrap_or_default() {
            if !map.snapshot.reflects(e.position) {
                map.apply(&e, generations);
            }
        }
        let seen = self.seen;
        self.own
            .retain(|o| o.position > seen && !map.snapshot.reflects(o.position));
        self.map = Some(map);
    }
}

/// The map's JSON: `{"show_id":"..","seats":[..],"areas":[..],"position":".."}`, as
/// the feed left it (this process's own changes not on top: the caller waits for the
/// feed to bring those its client must see, so that `position` says exactly what the
/// map reflects).
///
/// Written here rather than by serde from a `SeatMap`: each seat's fixed part (label,
/// section, row, number, category, price, aisle, features) was rendered once when the map was read, and an
/// answer after a change copies those fragments and writes only states and versions.
/// A generic serializer would format every field of every seat on every change, on the
/// hottest read of an on-sale; so this renderer stays (the seat-cache tests check its
/// output byte for byte against serde's).
fn render(map: &Map, position: &MapPosition) -> Bytes {
    let mut out =
        Vec::with_capacity(64 + map.seats.iter().map(|s| s.head.len() + 48).sum::<usize>());
    out.extend_from_slice(b"{\"show_id\":");
    out.extend_from_slice(json_str(&map.show.to_string()).as_bytes());
    out.push(b',');
    out.extend_from_slice(map.ticket_types.as_bytes());
    out.extend_from_slice(b",\"seats\":[");
    for (i, s) in map.seats.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let (state, version) = (s.state, s.version.as_str());
        out.extend_from_slice(s.head.as_bytes());
        out.extend_from_slice(state.as_str().as_bytes());
        out.extend_from_slice(b"\",\"version\":");
        if version.bytes().all(|b| b.is_ascii_alphanumeric()) {
            out.push(b'"');
            out.extend_from_slice(version.as_bytes());
            out.push(b'"');
        } else {
            out.extend_from_slice(json_str(version).as_bytes());
        }
        out.extend_from_slice(s.tail.as_bytes());
    }
    // The areas as the feed left them: own changes are not added on top (see
    // `ShowState::taken`).
    out.extend_from_slice(b"],\"areas\":");
    out.extend_from_slice(&serde_json::to_vec(&map.areas).unwrap_or_else(|_| b"[]".to_vec()));
    out.extend_from_slice(b",\"position\":\"");
    out.extend_from_slice(position.to_string().as_bytes());
    out.extend_from_slice(b"\"}");
    out.into()
}

/// The map's compact form (see [`compact`]), as the feed left it like [`render`].
fn render_compact(map: &Map, position: &MapPosition) -> Bytes {
    let mut out = Vec::with_capacity(256 + map.layout.as_str().len() + map.seats.len() * 8);
    compact::render(
        &mut out,
        &map.show.to_string(),
        &map.ticket_types,
        &map.layout,
        map.seats.iter().map(|s| (s.state, s.version.as_str())),
        &serde_json::to_vec(&map.areas).unwrap_or_else(|_| b"[]".to_vec()),
        &position.to_string(),
    );
    out.into()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use booking_core::{Seat, Version};

    fn seat(label: &str, state: SeatState) -> Seat {
        Seat {
            label: SeatLabel::parse(label).unwrap(),
            section: None,
            row: "A".into(),
            number: 1,
            category: "standard".into(),
            price: None,
            state,
            version: Version::new("1".to_owned()),
            aisle_after: false,
            features: vec![],
            block_id: None,
            block_reason: None,
            held_until: None,
        }
    }

    /// A blocked seat is refused from memory like a booked one; a free one is not.
    #[test]
    fn blocked_seats_are_refused_from_memory() {
        let map = SeatMap {
            show_id: booking_core::ShowId::parse("1").unwrap(),
            ticket_types: vec![],
            seats: vec![
                seat("A1", SeatState::Blocked),
                seat("A2", SeatState::Available),
                seat("A3", SeatState::Booked),
            ],
            areas: vec![],
            lapses_at: None,
            snapshot: None,
            position: MapPosition::at(Position::START),
        };
        let mut state = ShowState::default();
        let snapshot = TxSnapshot::parse("100:100:").unwrap();
        state.install(map, snapshot, &Generations::default());
        let labels: Vec<SeatLabel> = ["A1", "A2", "A3"]
            .iter()
            .map(|l| SeatLabel::parse(l).unwrap())
            .collect();
        let req = HoldRequest::new(
            booking_core::ShowId::parse("1").unwrap(),
            booking_core::UserId::parse("u").unwrap(),
            booking_core::SeatSelection::parse(["A1", "A2", "A3"], 10).unwrap(),
        );
        let (taken, short) = state.taken(&req, Utc::now()).unwrap();
        assert_eq!(taken, vec![labels[0].clone(), labels[2].clone()]);
        assert!(short.is_empty());
    }
}
