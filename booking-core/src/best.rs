//! Best available: the best group of `count` free seats, chosen and held in one call,
//! without any caller waiting on another's locks.
//!
//! # How a group is chosen
//!
//! [`rank`] (pure, unit-tested on drawn seat maps) orders the free groups: the row
//! about two thirds back first, then outwards; within a row the most central group;
//! adjacent groups never cross an aisle; a group that would strand a single free seat
//! ranks after the clean groups of rows as good as its own.
//!
//! # How it is held: one transaction, attempts under a savepoint
//!
//! 1. Read the house in one statement (its snapshot, no locks): which seats are free
//!    (a hold past `expires_at` counts as free); where they are and their categories
//!    come from the show's layout, read once per process. If no group fits in that
//!    read, the answer is [`Error::SeatsUnavailable`] with no seats: at the moment of
//!    a consistent read nothing fitted, so a `409` is never given while a group was
//!    free.
//! 2. Rank it (one pass over the seats, a bounded top-`k`), then try groups best
//!    first: lock the group's seats with
//!    `SELECT ... ORDER BY id FOR UPDATE SKIP LOCKED`. A seat another transaction has
//!    locked is skipped, not waited for. If any seat was skipped, or the fresh re-read
//!    of the locked rows shows one held, booked or written by a younger transaction
//!    (the feed-order rule of [`crate::holds`]), the attempt is undone with
//!    `ROLLBACK TO SAVEPOINT`, which releases the row locks it took, and the seats that
//!    failed are avoided by every later attempt on this read.
//! 3. The first group locked whole and free is written exactly as [`crate::holds::hold`]
//!    writes (hold, hold seats, seat pointers checked against the `xmin` read under
//!    the lock, change-feed event, in one statement) and committed.
//!
//! Nothing here waits on a row lock (`SKIP LOCKED`, and the write only touches rows
//! we hold), and the only locks kept are one group's, taken in id order: no deadlock,
//! and an ordinary hold that wants one of our seats waits at most for our commit.
//!
//! # Why attempts stay few under contention
//!
//! - Callers of one process claim the seats of their attempt in memory, and rank the
//!   house without the seats others here have claimed: n concurrent callers of a
//!   process rank what the others will leave and go for n different groups, at one
//!   lock attempt each (measured: 1.0 per success in `best.rs`'s 300-request test),
//!   instead of all trying the best group first (the n-th would fail n-1 times). If
//!   two rank at the same instant, the later claim fails in memory, not in the
//!   database. Claims are only a hint: a seat claimed here is never refused a `409`
//!   for, and correctness rests on the row locks alone.
//! - Callers of other processes meet in `SKIP LOCKED`: a failed attempt marks the
//!   seats that were skipped or taken, and every candidate containing one is passed
//!   over without a round trip.
//! - At most [`ATTEMPTS_PER_READ`] attempts per read of the house; then the house is
//!   read again, so that it ranks what is really left. When every group tried was
//!   locked by others (they are writing right now), the next read comes after a short
//!   pause (1, 2, 4 ... [`MAX_BACKOFF`]), taken without holding any lock: a backoff,
//!   not a queue on anyone's lock. Past [`Settings::lock_timeout`] the answer is
//!   [`Error::Busy`] (a `503` with `Retry-After`), never a `409`: the groups left
//!   were all being taken by others at that instant, and some may yet be released.
//!
//! Cost per read: one statement that scans the show's seats once and returns the ids
//! of the free ones in one array (the layout, which never changes, is read once per
//! process and kept), then one pass to rank them (a 2,000-seat show: 2,000 seats
//! looked at, at most [`TOP_K`] groups kept in a heap, nothing sorted).

pub mod rank;

use crate::database::{lock_timeout_value, Cached, SET_LOCK_TIMEOUT};
use crate::domain::{Category, HoldId, HoldStatus, HoldTtl, SeatCount, SeatLabel, ShowId, UserId};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::holds::{write_hold, Hold, WRITTEN_BEFORE_US};
use crate::seats::{HELD, JOIN_HOLD};
use deadpool_postgres::GenericClient;
use futures_util::TryFutureExt;
use rank::{Place, Want};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use uuid::Uuid;

/// Groups kept from one ranking (the best of them, possibly overlapping).
pub const TOP_K: usize = 48;
/// Lock attempts on one read of the house before it is read again.
pub const ATTEMPTS_PER_READ: usize = 8;
/// Longest pause before reading the house again when every group tried was locked by
/// others (the pauses grow 1, 2, 4, ... ms up to this).
pub const MAX_BACKOFF: Duration = Duration::from_millis(16);

/// The reason of [`Error::Busy`] when every free group was being taken by others.
pub const CONTENDED: &str = "every free group was being taken by other requests";

/// A best-available request, already parsed.
#[derive(Debug, Clone)]
pub struct BestRequest {
    pub show: ShowId,
    pub user: UserId,
    pub count: SeatCount,
    /// Only seats of this category; `None`: any. A category the show does not have
    /// fits no group ([`Error::SeatsUnavailable`]).
    pub category: Option<Category>,
    /// All seats side by side in one row, not across an aisle. Without it, the best
    /// seats as close together as possible (side by side still when possible).
    pub adjacent: bool,
    /// `None`: [`Settings::default_ttl`].
    pub ttl: Option<HoldTtl>,
}

/// The hold made, and the work it took.
#[derive(Debug, Clone)]
pub struct BestHold {
    pub hold: Hold,
    /// Groups whose seats were locked (`FOR UPDATE SKIP LOCKED`), the winning one included.
    pub lock_attempts: u32,
    /// Reads of the house.
    pub reads: u32,
}

/// The house as one read saw it, in seat-map order.
struct House {
    currency: String,
    layout: Arc<Layout>,
    /// The layout's places, with who is free and of the asked category now.
    places: Vec<Place>,
}

const SAVEPOINT: &str = "SAVEPOINT best_attempt";
const UNDO: &str = "ROLLBACK TO SAVEPOINT best_attempt";

/// Holds the best group of `req.count` free seats for `req.ttl` (see the module docs).
///
/// Runs in its own transaction on a pooled client, or as a savepoint inside the
/// caller's transaction. Errors: [`Error::ShowNotFound`]; [`Error::SeatsUnavailable`]
/// (with no seats) when no group fits; [`Error::Busy`] when the groups that fit were
/// all being taken by others for [`Settings::lock_timeout`].
///
/// ```no_run
/// use booking_core::{best, BestRequest, Engine, SeatCount, ShowId, UserId};
/// # async fn demo(client: &mut booking_core::deadpool_postgres::Client) -> booking_core::Result<()> {
/// let engine = Engine::default();
/// let got = best::hold_best(client, &engine, &BestRequest {
///     show: ShowId::parse("1")?,
///     user: UserId::parse("u-17")?,
///     count: SeatCount::parse(4, engine.settings().max_seats_per_hold)?,
///     category: None,
///     adjacent: true,
///     ttl: None,
/// }).await?;
/// assert_eq!(got.hold.seats.len(), 4);
/// # Ok(()) }
/// ```
#[tracing::instrument(skip_all, fields(show = %req.show, user = %req.user, count = req.count.get()))]
pub async fn hold_best<C>(client: &mut C, engine: &Engine, req: &BestRequest) -> Result<BestHold>
where
    C: GenericClient + Send,
{
    let settings = engine.settings();
    let memory = engine.best_memory();
    let ttl = req.ttl.unwrap_or(settings.default_ttl);
    let show = req.show.get();
    let want = Want {
        count: req.count.get(),
        adjacent: req.adjacent,
    };
    let category = req.category.as_ref().map(Category::as_str);
    let lock_timeout = lock_timeout_value(settings);

    let tx = client.transaction().await?;
    // The lock bound and the savepoint go out with the first read (pipelined: one
    // round trip for the three).
    let bound: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&lock_timeout];
    let setup = futures_util::future::try_join(
        tx.cexec(SET_LOCK_TIMEOUT, &bound),
        tx.batch_execute(SAVEPOINT),
    );
    let (_, first) = futures_util::future::try_join(
        setup.map_err(Error::from),
        read_house(&tx, memory, show, category),
    )
    .await?;
    let mut first = Some(first);
    // Row locks of a failed attempt are still ours until the savepoint is rolled back
    // to; the rollback is pipelined with the next statement rather than waited for.
    let mut dirty = false;
    let mut lock_attempts = 0;
    let mut claims: Option<Claims> = None;
    let started = tokio::time::Instant::now();
    let mut backoff = Duration::from_millis(1);
    for reads in 1.. {
        let house = match first.take() {
            Some(house) => house,
            None => {
                futures_util::future::try_join(
                    undo(&tx, dirty),
                    read_house(&tx, memory, show, category),
                )
                .await?
                .1
            }
        };
        dirty = false;
        let claims = claims.get_or_insert_with(|| Claims::new(memory, show));
        // Seats that other callers of this process are taking count as taken: rank
        // what will be left (the stranding rule included) rather than race for them.
        let mut places = house.places.clone();
        let mut hidden = false;
        for id in claims.others() {
            if let Some(&i) = house.layout.index_of.get(&id) {
                hidden |= std::mem::replace(&mut places[i].free, false);
            }
        }
        let groups = rank::rank(&places, want, TOP_K);
        // A 409 only when the read itself has no group: claimed seats may yet be freed.
        if groups.is_empty() && (!hidden || rank::rank(&house.places, want, 1).is_empty()) {
            return Err(Error::SeatsUnavailable { seats: vec![] });
        }
        let mut avoid = vec![false; house.places.len()];
        let mut tried = 0;
        // Whether some attempt found a seat taken (our read is stale: read again at
        // once) rather than only locked by others (they are writing: give them a moment).
        let mut stale = false;
        for group in groups.iter().map(|g| &g.seats) {
            if tried == ATTEMPTS_PER_READ {
                break;
            }
            if group.iter().any(|&i| avoid[i]) {
                continue;
            }
            let mut ids: Vec<(i64, usize)> =
                group.iter().map(|&i| (house.layout.ids[i], i)).collect();
            ids.sort_unstable();
            let only_ids: Vec<i64> = ids.iter().map(|(id, _)| *id).collect();
            let theirs = claims.claim(&only_ids);
            if !theirs.is_empty() {
                // Another caller here is locking these seats: try the next group.
                for (id, i) in &ids {
                    if theirs.contains(id) {
                        avoid[*i] = true;
                    }
                }
                continue;
            }
            tried += 1;
            lock_attempts += 1;
            match try_lock(&tx, show, &only_ids, dirty).await? {
                Attempt::Lost { bad, taken } => {
                    claims.unclaim(&only_ids);
                    dirty = true;
                    stale |= taken;
                    for (id, i) in &ids {
                        if bad.contains(id) {
                            avoid[*i] = true;
                        }
                    }
                }
                Attempt::Won(locked) => {
                    let hold_id = HoldId::generate(req.show);
                    let total: i64 = locked.iter().filter_map(|s| s.price).sum();
                    let seen: Vec<&str> = locked.iter().map(|s| s.xmin.as_str()).collect();
                    let written =
                        write_hold(&tx, hold_id, &req.user, ttl, total, &only_ids, &seen).await?;
                    tx.commit().await?;
                    engine.committed(Some(written.expires_at));
                    // Seat-map order: the group's indices are in it already.
                    let by_id: HashMap<i64, SeatLabel> =
                        locked.into_iter().map(|s| (s.id, s.label)).collect();
                    let seats = group
                        .iter()
                        .map(|&i| by_id[&house.layout.ids[i]].clone())
                        .collect();
                    return Ok(BestHold {
                        hold: Hold {
                            hold_id,
                            show_id: req.show,
                            user_id: req.user.clone(),
                            seats,
                            status: HoldStatus::Active,
                            created_at: written.created_at,
                            expires_at: written.expires_at,
                            total,
                            currency: house.currency,
                            booking_id: None,
                            event: written.event,
                        },
                        lock_attempts,
                        reads,
                    });
                }
            }
        }
        if started.elapsed() >= settings.lock_timeout {
            tracing::debug!(
                reads,
                lock_attempts,
                "every group was being taken by others"
            );
            break;
        }
        if !stale {
            // Every group tried is being written by others right now. Pausing (without
            // any lock: the savepoint is rolled back first) is no wait on their locks;
            // it lets their commits land before we rank again.
            undo(&tx, dirty).await?;
            dirty = false;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
    Err(Error::Busy(CONTENDED))
}

/// Rolls back to the attempt savepoint when the last attempt left locks behind.
async fn undo<C: GenericClient>(tx: &C, dirty: bool) -> Result<()> {
    if dirty {
        tx.batch_execute(UNDO).await?;
    }
    Ok(())
}

/// A show's seats as they never change after its creation: ids, places (row,
/// number, aisle) and categories, in seat-map order.
struct Layout {
    ids: Vec<i64>,
    places: Vec<Place>,
    categories: Vec<String>,
    index_of: HashMap<i64, usize>,
}

/// What best available remembers per [`Engine`]: the layouts read so far, and the
/// claims of the callers in flight. At most [`LAYOUTS_KEPT`] layouts are kept; past
/// that the cache is emptied and refilled on demand (one extra read per show).
#[derive(Default)]
pub(crate) struct Memory {
    layouts: Mutex<HashMap<i64, Arc<Layout>>>,
    callers: Mutex<HashMap<i64, Callers>>,
}

const LAYOUTS_KEPT: usize = 256;

impl Memory {
    fn layouts(&self) -> MutexGuard<'_, HashMap<i64, Arc<Layout>>> {
        self.layouts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn callers(&self) -> MutexGuard<'_, HashMap<i64, Callers>> {
        self.callers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Reads the house: which seats are free right now, in one statement (the statement's
/// snapshot), laid onto the show's layout (read once per process and kept: a show's
/// seats never change after its creation).
///
/// The statement returns one row: the show, and the ids of its free seats as an
/// array (a seat is free when it has no booking and no hold that is active and before
/// its `expires_at`). It scans the show's seats once and sorts nothing.
async fn read_house<C: GenericClient>(
    tx: &C,
    memory: &Memory,
    show: i64,
    category: Option<&str>,
) -> Result<House> {
    let sql = format!(
        "SELECT sh.currency,
                array(SELECT s.id FROM seats s {JOIN_HOLD}
                       WHERE s.show_id = sh.id AND s.booking_id IS NULL
                         AND {HELD} IS NOT TRUE) AS free
           FROM shows sh
          WHERE sh.id = $1"
    );
    let row = tx
        .cq_opt(&sql, &[&show])
        .await?
        .ok_or(Error::ShowNotFound)?;
    let layout = layout(tx, memory, show).await?;
    let mut places = layout.places.clone();
    for id in row.get::<_, Vec<i64>>("free") {
        if let Some(&i) = layout.index_of.get(&id) {
            places[i].free = true;
        }
    }
    if let Some(c) = category {
        for (p, seat_category) in places.iter_mut().zip(&layout.categories) {
            p.eligible = seat_category == c;
        }
    }
    Ok(House {
        currency: row.get("currency"),
        layout,
        places,
    })
}

/// The layout of `show`, from the engine's memory or read once.
async fn layout<C: GenericClient>(tx: &C, memory: &Memory, show: i64) -> Result<Arc<Layout>> {
    if let Some(l) = memory.layouts().get(&show) {
        return Ok(l.clone());
    }
    let rows = tx
        .cq(
            "SELECT id, row_index, number, aisle_after, category FROM seats WHERE show_id = $1",
            &[&show],
        )
        .await?;
    if rows.is_empty() {
        return Err(Error::Invariant(format!("show {show} has no seats")));
    }
    let mut seats: Vec<(Place, i64, String)> = rows
        .iter()
        .map(|r| {
            let place = Place {
                row: r.get::<_, i32>("row_index") as u32,
                number: r.get::<_, i32>("number") as u16,
                aisle_after: r.get("aisle_after"),
                free: false,
                eligible: true,
            };
            (place, r.get("id"), r.get("category"))
        })
        .collect();
    seats.sort_unstable_by_key(|(p, _, _)| (p.row, p.number));
    let mut layout = Layout {
        ids: Vec::with_capacity(seats.len()),
        places: Vec::with_capacity(seats.len()),
        categories: Vec::with_capacity(seats.len()),
        index_of: HashMap::with_capacity(seats.len()),
    };
    for (i, (place, id, category)) in seats.into_iter().enumerate() {
        layout.ids.push(id);
        layout.places.push(place);
        layout.categories.push(category);
        layout.index_of.insert(id, i);
    }
    let layout = Arc::new(layout);
    let mut cache = memory.layouts();
    if cache.len() >= LAYOUTS_KEPT {
        cache.clear();
    }
    cache.insert(show, layout.clone());
    Ok(layout)
}

struct LockedSeat {
    id: i64,
    label: SeatLabel,
    price: Option<i64>,
    xmin: String,
}

enum Attempt {
    /// Every seat locked and free: ours to write, in id order.
    Won(Vec<LockedSeat>),
    /// These seats were skipped (locked by another) or are taken (`taken`: some seat
    /// was locked but held, booked or written since our read).
    Lost { bad: Vec<i64>, taken: bool },
}

/// Locks the seats `ids` (ascending) with `SKIP LOCKED` and re-reads what they point at.
async fn try_lock<C: GenericClient>(
    tx: &C,
    show: i64,
    ids: &[i64],
    dirty: bool,
) -> Result<Attempt> {
    let sql = format!(
        "SELECT id, label, price, hold_id, booking_id IS NOT NULL AS booked,
                xmin::text AS xmin, {WRITTEN_BEFORE_US} AS written_before_us
           FROM seats WHERE show_id = $1 AND id = ANY($2)
          ORDER BY id FOR UPDATE SKIP LOCKED"
    );
    let (_, rows) = futures_util::future::try_join(
        undo(tx, dirty),
        tx.cq(&sql, &[&show, &ids]).map_err(Error::from),
    )
    .await?;
    if rows.len() < ids.len() {
        let got: BTreeSet<i64> = rows.iter().map(|r| r.get("id")).collect();
        return Ok(Attempt::Lost {
            bad: ids.iter().copied().filter(|id| !got.contains(id)).collect(),
            taken: false,
        });
    }
    let mut bad: Vec<i64> = rows
        .iter()
        .filter(|r| r.get::<_, bool>("booked") || !r.get::<_, bool>("written_before_us"))
        .map(|r| r.get("id"))
        .collect();
    // A seat that points at a hold: is the hold live? A new statement sees every commit
    // so far, including a hold committed after our read of the house.
    let pointed: Vec<Uuid> = rows
        .iter()
        .filter_map(|r| r.get::<_, Option<Uuid>>("hold_id"))
        .collect();
    if !pointed.is_empty() {
        let live: BTreeSet<Uuid> = tx
            .cq(
                &format!(
                    "SELECT h.id FROM holds h WHERE h.show_id = $1 AND h.id = ANY($2) AND {HELD}"
                ),
                &[&show, &pointed],
            )
            .await?
            .iter()
            .map(|r| r.get("id"))
            .collect();
        bad.extend(
            rows.iter()
                .filter(|r| {
                    r.get::<_, Option<Uuid>>("hold_id")
                        .is_some_and(|h| live.contains(&h))
                })
                .map(|r| r.get::<_, i64>("id")),
        );
    }
    if !bad.is_empty() {
        return Ok(Attempt::Lost { bad, taken: true });
    }
    Ok(Attempt::Won(
        rows.iter()
            .map(|r| LockedSeat {
                id: r.get("id"),
                label: SeatLabel::from_db(r.get("label")),
                price: r.get("price"),
                xmin: r.get("xmin"),
            })
            .collect(),
    ))
}

/// The seats that this engine's best-available callers are trying to lock, or have
/// taken (until their request ends), per show. They only spare round trips: a caller
/// ranks the house without the seats others here are taking, and passes over a group
/// another caller claimed first, instead of meeting it in `SKIP LOCKED`. Correctness
/// never depends on them; callers of other processes are kept apart by `SKIP LOCKED`
/// alone.
#[derive(Default)]
struct Callers {
    callers: usize,
    claimed: HashSet<i64>,
}

/// One caller's claims on the seats of one show in this engine; given back when the
/// request ends (dropped).
struct Claims<'a> {
    memory: &'a Memory,
    show: i64,
    mine: Vec<i64>,
}

impl<'a> Claims<'a> {
    fn new(memory: &'a Memory, show: i64) -> Claims<'a> {
        memory.callers().entry(show).or_default().callers += 1;
        Claims {
            memory,
            show,
            mine: Vec::new(),
        }
    }

    /// The seats other callers here have claimed.
    fn others(&self) -> Vec<i64> {
        self.memory
            .callers()
            .get(&self.show)
            .map_or_else(Vec::new, |c| {
                c.claimed
                    .iter()
                    .copied()
                    .filter(|id| !self.mine.contains(id))
                    .collect()
            })
    }

    /// Claims `ids` for an attempt. When another caller of this process has claimed
    /// some of them, claims nothing and returns those.
    fn claim(&mut self, ids: &[i64]) -> Vec<i64> {
        let mut all = self.memory.callers();
        let c = all.entry(self.show).or_default();
        let theirs: Vec<i64> = ids
            .iter()
            .copied()
            .filter(|id| c.claimed.contains(id))
            .collect();
        if theirs.is_empty() {
            c.claimed.extend(ids.iter().copied());
            self.mine.extend_from_slice(ids);
        }
        theirs
    }

    /// Gives back the claims of a failed attempt.
    fn unclaim(&mut self, ids: &[i64]) {
        let mut all = self.memory.callers();
        if let Some(c) = all.get_mut(&self.show) {
            for id in ids {
                c.claimed.remove(id);
            }
        }
        self.mine.retain(|id| !ids.contains(id));
    }
}

impl Drop for Claims<'_> {
    fn drop(&mut self) {
        let mut all = self.memory.callers();
        if let Some(c) = all.get_mut(&self.show) {
            for id in &self.mine {
                c.claimed.remove(id);
            }
            c.callers -= 1;
            if c.callers == 0 {
                all.remove(&self.show);
            }
        }
    }
}
