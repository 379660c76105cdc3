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
//! - **Read your writes.** A change made through this process (its event returned by
//!   `booking_core` once committed) is kept as the process's own until the feed brings
//!   it. Refusals from memory count it at once (see [`SeatCache::taken`]): since the
//!   feed brings a show's events in order, every event it applies before ours is older
//!   than ours for any seat they share, so ours is the newest state of its seats until
//!   the feed brings it. A map read waits instead until the follower has applied every
//!   own change made before the read began (the feed's lag, ~10 ms at p99 under load;
//!   at most `OWN_WAIT`, then the map is read from the database): the map is then
//!   exactly the feed up to a position, with the client's writes, and its `position`
//!   says which events it reflects, so a client can follow on from it without a gap
//!   or a repeat (`?since=`). Laying own seats on top instead (as before issue 17)
//!   showed a write before an older event of another process for the same seat that
//!   the feed had not brought yet, a state no position describes. Areas' counts were
//!   never laid on top: counts are sums, and an own delta before an older one it
//!   follows shows counts that never were, below zero.
//! - **Position.** What the map reflects is every event up to the last one the follower
//!   applied, plus those of the transactions the map's read saw
//!   ([`booking_core::MapPosition`]): the read may see transactions the feed has not
//!   handed out yet (an older one still runs), and their events are then passed over
//!   when they come.
//! - **Cut off.** A subscription that falls behind ends; the show's map is then dropped
//!   and read afresh by the next request.
//!
//! Hold requests for seats the map shows taken are refused from it when it is current
//! for the request (see [`SeatCache::taken`]), so a herd on one seat does not reach the
//! database; and only for a show known, within the last second, to sell now
//! (`sale.rs`): a show not on sale or cancelled is refused by the database first.
//!
//! The `ETag` is the cache's random epoch and a generation bumped by every change of
//! the map: equal tags mean equal bodies, so `If-None-Match` can answer `304`.
//!
//! [`map`] keeps one show's map (its seats, the events applied, the own changes the feed
//! has not brought yet)
//! and writes its JSON; this file keeps the maps of all shows, reads them, follows the
//! feed for them and answers from them.

pub mod compact;
pub mod map;
mod sale;

pub use compact::Format;
pub use map::Entry;

use crate::http::Reply;
use booking_core::{AreaCode, Engine, Feed, HoldRequest, SeatEvent, SeatLabel, ShowId};
use chrono::{DateTime, Utc};
use hyper::StatusCode;
use map::{Generations, ShowState};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Shows whose maps are kept at most; past it, maps are read from the database.
const MAX_SHOWS: usize = 10_000;

/// How long a map read waits for the feed to bring this process's own writes (its
/// lag: ~10 ms at p99 under load) before reading the map from the database instead.
const OWN_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// How far a server's clock may run behind the database's before a refusal from
/// memory could block a seat whose hold has lapsed by the database's clock.
pub const REFUSAL_MARGIN: chrono::Duration = chrono::Duration::seconds(2);

/// The instant refusals from memory judge deadlines at: the server's clock plus the
/// margin (later than now, so lapsing holds count as free and go to the database).
fn refusal_clock() -> DateTime<Utc> {
    Utc::now() + REFUSAL_MARGIN
}

/// Seat maps kept in memory, each followed on the feed: of at most 10,000 shows (maps
/// of others are read from the database every time). One per [`crate::AppState`].
pub struct SeatCache {
    // A blocking mutex: held for a lookup or an insert, never across an await.
    shows: Mutex<HashMap<ShowId, Arc<ShowCache>>>,
    /// Random per cache: a tag from another process or an earlier run never matches.
    epoch: String,
    generations: Generations,
    /// Runs the followers and background reads as the engine's tasks, so that a
    /// shutdown waits for them.
    engine: Engine,
    /// Whether each show sells, for refusals from memory (`seat_cache/sale.rs`).
    sales: Arc<sale::Sales>,
}

impl SeatCache {
    /// An empty cache whose background work runs as tasks of `engine`.
    pub fn new(engine: Engine) -> Self {
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
            engine,
            sales: Default::default(),
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
    /// Woken each time the follower has applied an event.
    applied: tokio::sync::Notify,
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
                        applied: tokio::sync::Notify::new(),
                    })
                })
                .clone(),
        )
    }

    /// The map of `show` in `format` as it is now, if it is cached and still exact.
    pub fn get(&self, show: ShowId, format: Format) -> Option<Entry> {
        let s = self.show(show)?;
        let mut state = s.state.lock();
        state.entry(&self.epoch, Utc::now(), format)
    }

    /// The map of `show` in `format`: from memory when it is there, else read from the
    /// database (one read per show at a time; the others wait for it and take its
    /// result).
    pub async fn get_or_read(
        self: &Arc<Self>,
        show: ShowId,
        format: Format,
        feed: &Feed,
        pool: &booking_core::deadpool_postgres::Pool,
    ) -> Result<Entry, crate::http::ApiError> {
        if !self.caught_up_with_own(show).await {
            // The feed is stuck behind a write of ours: the database has it.
            return self.read_uncached(show, format, pool).await;
        }
        if let Some(entry) = self.get(show, format) {
            return Ok(entry);
        }
        let Some(s) = self.show_or_new(show) else {
            return self.read_uncached(show, format, pool).await;
        };
        let _building = s.build.lock().await;
        if let Some(entry) = self.get(show, format) {
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
            // Whether it sells, read with the map (before it: never newer than the map).
            let began = std::time::Instant::now();
            let sale = sale::read_sale_on(&client, show).await?;
            self.sales.read(show, sale, began);
            booking_core::seats::seat_map_for(&client, self.engine.settings(), show, false).await
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
                    state.entry(&self.epoch, Utc::now(), format)
                }
                _ => {
                    state.building = None;
                    None
                }
            }
        };
        match kept {
            Some(entry) => Ok(entry),
            None => self.read_uncached(show, format, pool).await,
        }
    }

    /// Waits (at most [`OWN_WAIT`]) until the follower has applied every change this
    /// process made to `show` before now: the map is then served as the feed left it,
    /// with a `position` that says exactly what it reflects, and still shows the
    /// client's own writes. `false` if that took too long.
    async fn caught_up_with_own(&self, show: ShowId) -> bool {
        let Some(s) = self.show(show) else {
            return true;
        };
        let Some(need) = s.state.lock().own_newest() else {
            return true;
        };
        let deadline = tokio::time::Instant::now() + OWN_WAIT;
        loop {
            let applied = s.applied.notified();
            tokio::pin!(applied);
            applied.as_mut().enable();
            {
                let state = s.state.lock();
                if state.seen() >= need || !state.followed {
                    return true;
                }
            }
            if tokio::time::timeout_at(deadline, applied).await.is_err() {
                return false;
            }
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
        self.engine.spawn(async move {
            while let Some(event) = sub.next().await {
                if event.cause == booking_core::feed::Cause::ShowCancel {
                    // Whichever process cancelled it: no refusal from memory again.
                    let now = std::time::Instant::now();
                    cache.sales.read(show, Some(sale::Sale::Cancelled), now);
                }
                s.state.lock().on_event(&event, &cache.generations);
                s.applied.notify_waiters();
            }
            // Cut off or stopped: forget the map rather than serve it unwatched.
            s.applied.notify_waiters();
            let mut state = s.state.lock();
            state.followed = false;
            state.map = None;
            state.rendered = Default::default();
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
        format: Format,
        pool: &booking_core::deadpool_postgres::Pool,
    ) -> Result<Entry, crate::http::ApiError> {
        let client = booking_core::database::client(pool).await?;
        let map =
            booking_core::seats::seat_map_for(&client, self.engine.settings(), show, false).await?;
        Ok(uncached_entry(&map, format))
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
        req: &HoldRequest,
        feed: &Feed,
        pool: &booking_core::deadpool_postgres::Pool,
        arrived: std::time::Instant,
    ) -> Option<(Vec<SeatLabel>, Vec<AreaCode>)> {
        let refused = |t: &(Vec<SeatLabel>, Vec<AreaCode>)| !t.0.is_empty() || !t.1.is_empty();
        // A show that may not sell now is refused by the database first (not on sale,
        // cancelled): not from here.
        match self.sales.sells(show) {
            Some((sells, stale)) => {
                if stale {
                    self.read_sale(show, pool);
                }
                if !sells {
                    return None;
                }
            }
            None => {
                self.read_sale(show, pool);
                return None;
            }
        }
        let s = self.show(show)?;
        // Cheap first look: nothing to wait for unless a seat looks taken (or an area
        // short).
        {
            let state = s.state.lock();
            if !refused(&state.taken(req, refusal_clock())?) {
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
        state.taken(req, refusal_clock()).filter(refused)
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
        self.engine.spawn(async move {
            if let Err(e) = cache.get_or_read(show, Format::Full, &feed, &pool).await {
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

    /// Reads whether `show` sells in the background, unless a read is in flight.
    fn read_sale(&self, show: ShowId, pool: &booking_core::deadpool_postgres::Pool) {
        if !self.sales.begin_read(show) {
            return;
        }
        let (sales, pool) = (self.sales.clone(), pool.clone());
        self.engine.spawn(async move {
            let began = std::time::Instant::now();
            match sale::read_sale(&pool, show).await {
                Ok(found) => sales.read(show, found, began),
                Err(e) => {
                    tracing::debug!(error = %e, "reading a show's window in the background failed");
                    sales.read(show, None, began);
                }
            }
        });
    }

    /// Forgets whether `show` sells (its window or cancellation changed through this
    /// process): no refusal from memory until it is read again.
    pub fn forget_sale(&self, show: ShowId) {
        self.sales.forget(show);
    }

    /// Drops the show's map: the next request reads it afresh.
    pub fn invalidate(&self, show: ShowId) {
        if let Some(s) = self.show(show) {
            let mut state = s.state.lock();
            state.map = None;
            state.rendered = Default::default();
            // A read in flight may have begun before the change: not kept either.
            state.building = None;
        }
    }
}

/// The answer for a map read from the database and not kept (too many shows cached,
/// the follower ended, or an admin's map with block reasons): tagged by its content.
pub fn uncached_entry(map: &booking_core::SeatMap, format: Format) -> Entry {
    let reply = match format {
        Format::Full => Reply::json(StatusCode::OK, map),
        Format::Compact => Reply::json_bytes(StatusCode::OK, compact::of_map(map)),
    };
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(&reply.body);
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    Entry::new(reply, format!("\"{hex}\"").into())
}
