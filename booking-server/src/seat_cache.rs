//! Seat maps served from memory, patched from the change feed.
//!
//! A show's map is read from the database once, then kept current by applying the
//! feed's events to it in memory (each event names its seats' new state and version).
//! Its JSON is written again only when a request comes and the map changed since the
//! last answer, from fragments rendered once per seat.
//!
//! # Why the map equals a state the database had
//!
//! - **Building.** The cache subscribes to the show's events *before* it reads the map,
//!   and reads the map and `pg_current_snapshot()` in one statement. Every event either
//!   was handed out before the subscription (its transaction committed before the read
//!   began: the read sees it) or reaches the subscription. Of the latter, exactly those
//!   whose transaction the read's snapshot does not see are applied, in feed order;
//!   events that arrive while the read runs are kept and applied when it returns. So
//!   the map never misses an event and never applies one twice.
//! - **Following.** The feed hands out a show's events in an order no later read
//!   contradicts (two transactions that change the same seat are in commit order, see
//!   `booking_core::feed`). Applying them in that order to the map read above gives,
//!   after each event, the seats as the database had them after that transaction.
//!   The map trails the database by the feed's lag only.
//! - **Expiry.** A hold past `expires_at` reads available without any event (the
//!   sweeper's `expire` event comes later), and an extended hold writes no event at all.
//!   So the map is kept only until the earliest `expires_at` of a held seat; a request
//!   after that reads the map afresh (as above), which settles both. The clock compared
//!   is the server's, the database's is authoritative: they are one machine's clock in
//!   every deployment we run, and a skew shows a seat held a little too long or short
//!   until the read settles it, never a state the database lacked for longer.
//! - **Read your writes.** A hold, confirm or release made through this process adds
//!   its own event (returned by `booking_core` once committed) on top of the map before
//!   the client is answered, until the feed brings that event. It is added only if the
//!   feed has not brought it yet and the map's read did not see it; and since the feed
//!   brings a show's events in order, every event it applies before ours is older than
//!   ours for any seat they share, so ours stays on top exactly as long as it is the
//!   newest. (Waiting instead for the feed to reach the write would add the feed's lag,
//!   up to its retry delay while older transactions run, to every write's answer.)
//!   Cancels drop the map (rare; the next request reads it afresh).
//! - **Cut off.** A subscription that falls behind ends; the show's map is then dropped
//!   and read afresh by the next request.
//!
//! Hold requests for seats the map shows taken are refused from it when it is current
//! for the request (see [`SeatCache::taken`]), so a herd on one seat does not reach the
//! database.
//!
//! The `ETag` is the cache's random epoch and a generation bumped by every change of
//! the map: equal tags mean equal bodies, so `If-None-Match` can answer `304`.
//!
//! The JSON is written here rather than by serde from a `SeatMap`: each seat's fixed
//! part (label, row, number, category, price) is rendered once when the map is read,
//! and an answer after a change copies those fragments and writes only states and
//! versions. A generic serializer would format every field of every seat on every
//! change, on the hottest read of an on-sale; so this renderer stays (a test checks
//! its output against serde's).

use crate::http::Reply;
use booking_core::feed::TxSnapshot;
use booking_core::{Feed, Position, SeatEvent, SeatLabel, SeatMap, SeatState, ShowId};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use hyper::StatusCode;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A finished seat-map answer and its ETag.
#[derive(Clone)]
pub struct Entry {
    pub reply: Reply,
    pub etag: Arc<str>,
}

/// Shows whose maps are kept at most; past it, maps are read from the database.
const MAX_SHOWS: usize = 10_000;

/// Generations of every map of one cache, shows dropped and read again included:
/// never reused, so a tag names one body.
#[derive(Default)]
struct Generations(AtomicU64);

impl Generations {
    fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// How far a server's clock may run behind the database's before a refusal from
/// memory could block a seat whose hold has lapsed by the database's clock.
pub const REFUSAL_MARGIN: chrono::Duration = chrono::Duration::seconds(2);

/// The instant refusals from memory judge deadlines at: the server's clock plus the
/// margin (later than now, so lapsing holds count as free and go to the database).
fn refusal_clock() -> DateTime<Utc> {
    Utc::now() + REFUSAL_MARGIN
}

pub struct SeatCache {
    // A blocking mutex: held for a lookup or an insert, never across an await.
    shows: Mutex<HashMap<ShowId, Arc<ShowCache>>>,
    /// Random per cache: a tag from another process or an earlier run never matches.
    epoch: String,
    generations: Generations,
}

impl Default for SeatCache {
    fn default() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        // Randomly keyed, and keyed anew for each cache of a process.
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let mix = nanos ^ (u64::from(std::process::id()) << 40) ^ random;
        SeatCache {
            shows: Mutex::new(HashMap::new()),
            epoch: format!("{mix:x}"),
            generations: Generations::default(),
        }
    }
}

struct ShowCache {
    /// Held while one request reads the map from the database: the others wait for it
    /// and take its result instead of all reading the same map at once.
    build: tokio::sync::Mutex<()>,
    /// A background read of the map was asked for (see [`SeatCache::prefetch`]).
    prefetching: std::sync::atomic::AtomicBool,
    state: Mutex<ShowState>,
}

#[derive(Default)]
struct ShowState {
    /// Whether a task applies the show's events for us.
    followed: bool,
    /// The last event of the show that the follower has seen.
    seen: Position,
    map: Option<Map>,
    /// While a read of the map runs: the events seen meanwhile, to apply to its result.
    building: Option<Vec<Arc<SeatEvent>>>,
    /// This process's own changes that the follower has not seen yet, oldest first.
    own: Vec<Arc<SeatEvent>>,
    /// The last answer: its generation, body and tag.
    rendered: Option<(u64, Entry)>,
}

/// A show's seats, compact, in map order.
struct Map {
    show: ShowId,
    seats: Vec<Slot>,
    index: HashMap<SeatLabel, u32>,
    /// What the read saw: events of these transactions are in the map already.
    snapshot: TxSnapshot,
    /// Bumped on every change of the map or of the own changes on top of it.
    generation: u64,
    /// No earlier than the earliest `expires_at` of a held seat: past it, the map may
    /// be wrong (a lapse or an extend) and is read afresh.
    valid_until: Option<DateTime<Utc>>,
}

struct Slot {
    /// `{"label":..,"row":..,"number":..,"category":..,"price":..,"state":"`: the JSON
    /// of the seat up to its state, which never changes.
    head: Box<str>,
    /// Closes the seat's JSON after its version: `,"aisle_after":true}` or `false}`.
    aisle_after: bool,
    state: SeatState,
    version: String,
    held_until: Option<DateTime<Utc>>,
}

fn state_str(s: SeatState) -> &'static str {
    match s {
        SeatState::Available => "available",
        SeatState::Held => "held",
        SeatState::Booked => "booked",
    }
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

impl Map {
    fn from_db(map: SeatMap, snapshot: TxSnapshot, generations: &Generations) -> Map {
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
                let _ = write!(
                    head,
                    "{{\"label\":{},\"row\":{},\"number\":{},\"category\":{},",
                    json_str(s.label.as_str()),
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
                Slot {
                    head: head.into(),
                    aisle_after: s.aisle_after,
                    state: s.state,
                    version: s.version.as_str().to_owned(),
                    held_until: s.held_until,
                }
            })
            .collect();
        Map {
            show: map.show_id,
            seats,
            index,
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
        self.valid_until = earliest(self.valid_until, hold_deadline(event));
        self.generation = generations.next();
    }
}

/// A held seat whose deadline the event does not carry makes the map expire now.
fn hold_deadline(event: &SeatEvent) -> Option<DateTime<Utc>> {
    event
        .seats
        .iter()
        .filter(|c| c.state == SeatState::Held)
        .map(|c| c.held_until.unwrap_or(DateTime::<Utc>::MIN_UTC))
        .min()
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

    /// The answer for the map as it is now (rendered again only if it changed).
    fn entry(&mut self, epoch: &str, now: DateTime<Utc>) -> Option<Entry> {
        let generation = self.usable(now)?.generation;
        if let Some((g, entry)) = &self.rendered {
            if *g == generation {
                return Some(entry.clone());
            }
        }
        let map = self.map.as_ref()?;
        let body = render(map, &self.own);
        let etag: Arc<str> = format!("\"{epoch}-{generation}\"").into();
        let entry = Entry {
            reply: Reply::json_bytes(StatusCode::OK, body),
            etag,
        };
        self.rendered = Some((generation, entry.clone()));
        Some(entry)
    }

    /// The follower saw `event`, the next event of the show.
    fn on_event(&mut self, event: &Arc<SeatEvent>, generations: &Generations) {
        self.seen = event.position;
        if let Some(pending) = &mut self.building {
            pending.push(event.clone());
        }
        let before = self.own.len();
        self.own.retain(|o| o.position > event.position);
        if let Some(map) = &mut self.map {
            if !map.snapshot.sees(event.position.xid()) {
                map.apply(event, generations);
            } else if self.own.len() != before {
                map.generation = generations.next();
            }
        }
    }

    /// A change made by this process has committed.
    fn on_own(&mut self, event: &Arc<SeatEvent>, generations: &Generations) {
        if !self.followed {
            return; // No map can be kept without a follower: the next one is read anew.
        }
        if event.position <= self.seen {
            return; // The follower has applied it already.
        }
        if let Some(map) = &mut self.map {
            if map.snapshot.sees(event.position.xid()) {
                return; // The map was read after it.
            }
            map.generation = generations.next();
        }
        let at = self.own.partition_point(|o| o.position < event.position);
        if self.own.get(at).map(|o| o.position) != Some(event.position) {
            self.own.insert(at, event.clone());
        }
    }

    /// Of `labels`, those the map shows taken (booked, or held before its deadline) at
    /// `now`; `None` when the map is not usable or does not know every label.
    fn taken(&self, labels: &[SeatLabel], now: DateTime<Utc>) -> Option<Vec<SeatLabel>> {
        let map = self.usable(now)?;
        let mut taken = Vec::new();
        for label in labels {
            let i = *map.index.get(label)?;
            let slot = &map.seats[i as usize];
            let mut state = (slot.state, slot.held_until);
            for e in &self.own {
                for c in e.seats.iter().filter(|c| &c.label == label) {
                    state = (c.state, c.held_until);
                }
            }
            let is_taken = match state {
                (SeatState::Booked, _) => true,
                (SeatState::Held, Some(until)) => until > now,
                _ => false,
            };
            if is_taken {
                taken.push(label.clone());
            }
        }
        Some(taken)
    }

    /// A read of the map has returned.
    fn install(&mut self, map: SeatMap, snapshot: TxSnapshot, generations: &Generations) {
        let mut map = Map::from_db(map, snapshot, generations);
        for e in self.building.take().unwrap_or_default() {
            if !map.snapshot.sees(e.position.xid()) {
                map.apply(&e, generations);
            }
        }
        let seen = self.seen;
        self.own
            .retain(|o| o.position > seen && !map.snapshot.sees(o.position.xid()));
        self.map = Some(map);
    }
}

/// The map's JSON: `{"show_id":"..","seats":[..]}`, own changes on top.
fn render(map: &Map, own: &[Arc<SeatEvent>]) -> Bytes {
    // The own changes that are not in the map yet, newest last (so newest wins).
    let mut over: HashMap<u32, (SeatState, &str)> = HashMap::new();
    for e in own {
        for c in &e.seats {
            if let Some(&i) = map.index.get(&c.label) {
                over.insert(i, (c.state, c.version.as_str()));
            }
        }
    }
    let mut out =
        Vec::with_capacity(64 + map.seats.iter().map(|s| s.head.len() + 48).sum::<usize>());
    out.extend_from_slice(b"{\"show_id\":");
    out.extend_from_slice(json_str(&map.show.to_string()).as_bytes());
    out.extend_from_slice(b",\"seats\":[");
    for (i, s) in map.seats.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let (state, version) = match over.get(&(i as u32)) {
            Some(&(state, version)) => (state, version),
            None => (s.state, s.version.as_str()),
        };
        out.extend_from_slice(s.head.as_bytes());
        out.extend_from_slice(state_str(state).as_bytes());
        out.extend_from_slice(b"\",\"version\":");
        if version.bytes().all(|b| b.is_ascii_alphanumeric()) {
            out.push(b'"');
            out.extend_from_slice(version.as_bytes());
            out.push(b'"');
        } else {
            out.extend_from_slice(json_str(version).as_bytes());
        }
        out.extend_from_slice(if s.aisle_after {
            b",\"aisle_after\":true}"
        } else {
            b",\"aisle_after\":false}"
        });
    }
    out.extend_from_slice(b"]}");
    out.into()
}

impl SeatCache {
    fn show(&self, show: ShowId) -> Option<Arc<ShowCache>> {
        self.shows.lock().get(&show).cloned()
    }

    fn show_or_new(&self, show: ShowId) -> Option<Arc<ShowCache>> {
        let mut shows = self.shows.lock();
        if shows.len() >= MAX_SHOWS && !shows.contains_key(&show) {
            return None;
        }
        Some(
            shows
                .entry(show)
                .or_insert_with(|| {
                    Arc::new(ShowCache {
                        build: tokio::sync::Mutex::new(()),
                        prefetching: Default::default(),
                        state: Mutex::new(ShowState::default()),
                    })
                })
                .clone(),
        )
    }

    /// The map of `show` as it is now, if it is cached and still exact.
    pub fn get(&self, show: ShowId) -> Option<Entry> {
        let s = self.show(show)?;
        let mut state = s.state.lock();
        state.entry(&self.epoch, Utc::now())
    }

    /// The map of `show`: from memory when it is there, else read from the database
    /// (one read per show at a time; the others wait for it and take its result).
    pub async fn get_or_read(
        self: &Arc<Self>,
        show: ShowId,
        feed: &Feed,
        pool: &booking_core::deadpool_postgres::Pool,
    ) -> Result<Entry, crate::http::ApiError> {
        if let Some(entry) = self.get(show) {
            return Ok(entry);
        }
        let Some(s) = self.show_or_new(show) else {
            return self.read_uncached(show, pool).await;
        };
        let _building = s.build.lock().await;
        if let Some(entry) = self.get(show) {
            return Ok(entry);
        }
        self.follow(show, &s, feed).await?;
        {
            let mut state = s.state.lock();
            state.map = None;
            state.building = Some(Vec::new());
        }
        let read = async {
            let client = booking_core::database::client(pool).await?;
            booking_core::seats::seat_map(&client, show).await
        }
        .await;
        let kept = {
            let mut state = s.state.lock();
            let map = match read {
                Ok(map) => map,
                Err(e) => {
                    state.building = None;
                    return Err(e.into());
                }
            };
            match map.snapshot.clone() {
                // The follower ended while we read (this map would not be kept
                // current), or this process cancelled a booking of the show meanwhile
                // (the read may predate it): answer from a read made after that.
                Some(snapshot) if state.followed && state.building.is_some() => {
                    state.install(map, snapshot, &self.generations);
                    // Just read: exact unless a hold lapsed already.
                    state.entry(&self.epoch, Utc::now())
                }
                _ => {
                    state.building = None;
                    None
                }
            }
        };
        match kept {
            Some(entry) => Ok(entry),
            None => self.read_uncached(show, pool).await,
        }
    }

    /// Subscribes to the show's events (once), before any read of its map.
    async fn follow(
        self: &Arc<Self>,
        show: ShowId,
        s: &Arc<ShowCache>,
        feed: &Feed,
    ) -> Result<(), crate::http::ApiError> {
        if s.state.lock().followed {
            return Ok(());
        }
        let mut sub = feed.subscribe(show, None).await?;
        {
            let mut state = s.state.lock();
            state.followed = true;
            state.seen = sub.position();
        }
        let (cache, s) = (Arc::clone(self), Arc::clone(s));
        tokio::spawn(async move {
            while let Some(event) = sub.next().await {
                s.state.lock().on_event(&event, &cache.generations);
            }
            // Cut off or stopped: forget the map rather than serve it unwatched.
            let mut state = s.state.lock();
            state.followed = false;
            state.map = None;
            state.rendered = None;
            drop(state);
            let mut shows = cache.shows.lock();
            if shows.get(&show).is_some_and(|x| Arc::ptr_eq(x, &s)) {
                shows.remove(&show);
            }
        });
        Ok(())
    }

    /// A map read from the database and not kept (too many shows cached, or the
    /// follower ended): tagged by its content.
    async fn read_uncached(
        &self,
        show: ShowId,
        pool: &booking_core::deadpool_postgres::Pool,
    ) -> Result<Entry, crate::http::ApiError> {
        let client = booking_core::database::client(pool).await?;
        let map = booking_core::seats::seat_map(&client, show).await?;
        let reply = Reply::json(StatusCode::OK, &map);
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(&reply.body);
        let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        Ok(Entry {
            reply,
            etag: format!("\"{hex}\"").into(),
        })
    }

    /// The seats of `labels` that are taken, answered from memory, or `None`: ask the
    /// database. For a hold request that arrived at `arrived`. A hold whose deadline is
    /// within [`REFUSAL_MARGIN`] of the server's clock counts as not taken here: time is
    /// the database's clock (DESIGN.md, invariant 3), and a server clock running behind
    /// it must not refuse a seat the database already sees free; such requests go to the
    /// database, which decides.
    ///
    /// Only when the map is current for the request: a read of the feed that began
    /// after the request arrived found every committed event handed out, and the map
    /// has applied every one of them for this show. Then a seat shown taken was taken
    /// at a moment between the request's arrival and its answer (the moment of that
    /// read), which is what the database's own snapshot read would tell; so a `409`
    /// from here is never one the database could not have given. (The deadline of a
    /// hold is compared with the server's clock, as everywhere in this cache.)
    pub async fn taken(
        &self,
        show: ShowId,
        labels: &[SeatLabel],
        feed: &Feed,
        arrived: std::time::Instant,
    ) -> Option<Vec<SeatLabel>> {
        let s = self.show(show)?;
        // Cheap first look: nothing to wait for unless a seat looks taken.
        {
            let state = s.state.lock();
            if state.taken(labels, refusal_clock())?.is_empty() {
                return None;
            }
        }
        if !feed
            .caught_up_after(arrived, std::time::Duration::from_millis(50))
            .await
        {
            return None;
        }
        let state = s.state.lock();
        if !state.followed || feed.last_dispatched(show).is_some_and(|p| p > state.seen) {
            return None; // Events handed out that the follower has not applied yet.
        }
        state
            .taken(labels, refusal_clock())
            .filter(|t| !t.is_empty())
    }

    /// Reads `show`'s map in the background if it is not cached: after a hold was
    /// refused, so that the next requests for taken seats are answered from memory.
    pub fn prefetch(
        self: &Arc<Self>,
        show: ShowId,
        feed: &Feed,
        pool: &booking_core::deadpool_postgres::Pool,
    ) {
        let Some(s) = self.show_or_new(show) else {
            return;
        };
        if s.state.lock().map.is_some() || s.prefetching.swap(true, Ordering::AcqRel) {
            return;
        }
        let (cache, feed, pool) = (Arc::clone(self), feed.clone(), pool.clone());
        tokio::spawn(async move {
            if let Err(e) = cache.get_or_read(show, &feed, &pool).await {
                tracing::debug!(error = %e.code, "reading a seat map in the background failed");
            }
            s.prefetching.store(false, Ordering::Release);
        });
    }

    /// A change this process made has committed: its client must see it in the next
    /// map it asks for (see the module docs).
    pub fn own_write(&self, event: Option<&Arc<SeatEvent>>) {
        let Some(event) = event else { return };
        let Some(s) = self.show(event.show_id) else {
            return; // Not cached: the next read of the map comes after our commit.
        };
        s.state.lock().on_own(event, &self.generations);
    }

    /// Drops the show's map: the next request reads it afresh.
    pub fn invalidate(&self, show: ShowId) {
        if let Some(s) = self.show(show) {
            let mut state = s.state.lock();
            state.map = None;
            state.rendered = None;
            // A read in flight may have begun before the change: not kept either.
            state.building = None;
        }
    }
}
