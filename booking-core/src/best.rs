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
//! 1. Read the whole house in one statement (its snapshot, no locks): which seats are
//!    free (a hold past `expires_at` counts as free) and of the asked category. If no
//!    group fits in that read, the answer is [`Error::SeatsUnavailable`] with no
//!    seats: at the moment of a consistent read nothing fitted, so a `409` is never
//!    given while a group was free.
//! 2. Rank it (one pass over the seats, a bounded top-`k`), then try groups in
//!    [`rank::attempt_order`]: lock the group's seats with
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
//! - Callers that read the house at the same moment rank it alike. Instead of all
//!   trying the best group first (the n-th caller would then fail n-1 times), each
//!   caller in this process holds a slot (0 when alone, see [`Slot`]) and starts at
//!   the slot-th of the non-overlapping best groups: n concurrent callers start on n
//!   different groups, and a lone caller gets the very best.
//! - A failed attempt marks the seats that were skipped or taken; every candidate that
//!   contains one is passed over without a round trip.
//! - At most [`ATTEMPTS_PER_READ`] attempts per read of the house; then the house is
//!   read again, so that it ranks what is really left. When every group tried was
//!   locked by others (they are writing right now), the next read comes after a short
//!   pause (1, 2, 4 ... [`MAX_BACKOFF`]), taken without holding any lock: a backoff,
//!   not a queue on anyone's lock. Past [`Settings::lock_timeout`] the answer is
//!   [`Error::Busy`] (a `503` with `Retry-After`), never a `409`: the groups left
//!   were all being taken by others at that instant, and some may yet be released.
//!
//! Cost per read: one statement returning the show's seats, one pass to rank them
//! (a 2,000-seat show: 2,000 seats scanned, at most [`TOP_K`] groups kept in a heap).

pub mod rank;

use crate::database::{lock_timeout_value, Cached, Settings, SET_LOCK_TIMEOUT};
use crate::domain::{Category, HoldId, HoldStatus, HoldTtl, SeatCount, SeatLabel, ShowId, UserId};
use crate::error::{Error, Result};
use crate::holds::{write_hold, Hold, WRITTEN_BEFORE_US};
use crate::seats::{HELD, JOIN_HOLD};
use crate::{feed, sweeper};
use deadpool_postgres::GenericClient;
use futures_util::TryFutureExt;
use rank::{Place, Want};
use std::collections::{BTreeSet, HashMap};
use std::sync::{LazyLock, Mutex, PoisonError};
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
    /// The show's creation time (µs): with its id, it names the show in [`Slot`].
    created_us: i64,
    ids: Vec<i64>,
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
/// use booking_core::{best, BestRequest, SeatCount, Settings, ShowId, UserId};
/// # async fn demo(client: &mut booking_core::deadpool_postgres::Client) -> booking_core::Result<()> {
/// let settings = Settings::default();
/// let got = best::hold_best(client, &settings, &BestRequest {
///     show: ShowId::parse("1")?,
///     user: UserId::parse("u-17")?,
///     count: SeatCount::parse(4, settings.max_seats_per_hold)?,
///     category: None,
///     adjacent: true,
///     ttl: None,
/// }).await?;
/// assert_eq!(got.hold.seats.len(), 4);
/// # Ok(()) }
/// ```
#[tracing::instrument(skip_all, fields(show = %req.show, user = %req.user, count = req.count.get()))]
pub async fn hold_best<C>(
    client: &mut C,
    settings: &Settings,
    req: &BestRequest,
) -> Result<BestHold>
where
    C: GenericClient + Send,
{
    let ttl = req.ttl.unwrap_or(settings.default_ttl);
    let show = req.show.get();
    let want = Want {
        count: req.count.get(),
        adjacent: req.adjacent,
    };
    let category = req.category.as_ref().map(Category::as_str);
    let lock_timeout = lock_timeout_value(settings);

    let tx = client.transaction().await?;
    futures_util::future::try_join(
        tx.cexec(SET_LOCK_TIMEOUT, &[&lock_timeout]),
        tx.batch_execute(SAVEPOINT),
    )
    .await?;
    // Row locks of a failed attempt are still ours until the savepoint is rolled back
    // to; the rollback is pipelined with the next statement rather than waited for.
    let mut dirty = false;
    let mut lock_attempts = 0;
    let mut slot: Option<Slot> = None;
    let started = tokio::time::Instant::now();
    let mut backoff = Duration::from_millis(1);
    for reads in 1.. {
        let (_, house) =
            futures_util::future::try_join(undo(&tx, dirty), read_house(&tx, show, category))
                .await?;
        dirty = false;
        let slot = slot.get_or_insert_with(|| Slot::take((show, house.created_us)));
        let groups = rank::rank(&house.places, want, TOP_K);
        if groups.is_empty() {
            return Err(Error::SeatsUnavailable { seats: vec![] });
        }
        let mut avoid = vec![false; house.places.len()];
        let mut tried = 0;
        // Whether some attempt found a seat taken (our read is stale: read again at
        // once) rather than only locked by others (they are writing: give them a moment).
        let mut stale = false;
        for g in rank::attempt_order(&groups, slot.index) {
            let group = &groups[g].seats;
            if tried == ATTEMPTS_PER_READ {
                break;
            }
            if group.iter().any(|&i| avoid[i]) {
                continue;
            }
            tried += 1;
            lock_attempts += 1;
            let mut ids: Vec<(i64, usize)> = group.iter().map(|&i| (house.ids[i], i)).collect();
            ids.sort_unstable();
            let only_ids: Vec<i64> = ids.iter().map(|(id, _)| *id).collect();
            match try_lock(&tx, show, &only_ids, dirty).await? {
                Attempt::Lost { bad, taken } => {
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
                    feed::changed();
                    sweeper::hold_created(written.expires_at);
                    // Seat-map order: the group's indices are in it already.
                    let by_id: HashMap<i64, SeatLabel> =
                        locked.into_iter().map(|s| (s.id, s.label)).collect();
                    let seats = group
                        .iter()
                        .map(|&i| by_id[&house.ids[i]].clone())
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

/// Reads every seat of the show in one statement: free or not, of the category or not.
async fn read_house<C: GenericClient>(tx: &C, show: i64, category: Option<&str>) -> Result<House> {
    let sql = format!(
        "SELECT sh.currency, (extract(epoch FROM sh.created_at) * 1000000)::bigint AS created_us,
                s.id, s.row_index, s.number, s.aisle_after,
                s.booking_id IS NULL AND {HELD} IS NOT TRUE AS free,
                $2::text IS NULL OR s.category = $2::text AS eligible
           FROM shows sh
           JOIN seats s ON s.show_id = sh.id
           {JOIN_HOLD}
          WHERE sh.id = $1
          ORDER BY s.row_index, s.number"
    );
    let rows = tx.cq(&sql, &[&show, &category]).await?;
    let Some(first) = rows.first() else {
        // Every show has seats: no rows means no show.
        crate::shows::ensure_exists(tx, ShowId::from_db(show)).await?;
        return Err(Error::Invariant(format!("show {show} has no seats")));
    };
    let currency = first.get("currency");
    let created_us = first.get("created_us");
    let mut ids = Vec::with_capacity(rows.len());
    let mut places = Vec::with_capacity(rows.len());
    for r in &rows {
        ids.push(r.get::<_, i64>("id"));
        places.push(Place {
            row: r.get::<_, i32>("row_index") as u32,
            number: r.get::<_, i32>("number") as u16,
            aisle_after: r.get("aisle_after"),
            free: r.get("free"),
            eligible: r.get("eligible"),
        });
    }
    Ok(House {
        currency,
        created_us,
        ids,
        places,
    })
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
                "SELECT id FROM holds
                  WHERE show_id = $1 AND id = ANY($2) AND status = 'active' AND expires_at > now()",
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

/// A show as [`Slot`] names it: its id and creation time, so that the shows of
/// different databases served by one process (tests do this) do not share slots.
type ShowKey = (i64, i64);

/// This process's best-available callers on each show, each with the smallest slot
/// number free when it came. The slot only spreads concurrent callers over different
/// groups ([`rank::attempt_order`]); correctness never depends on it, and callers of
/// other processes are kept apart by `SKIP LOCKED` alone.
static SLOTS: LazyLock<Mutex<HashMap<ShowKey, BTreeSet<usize>>>> = LazyLock::new(Default::default);

/// A caller's place among the concurrent best-available callers of one show.
pub struct Slot {
    show: ShowKey,
    index: usize,
}

impl Slot {
    fn take(show: ShowKey) -> Slot {
        let mut slots = SLOTS.lock().unwrap_or_else(PoisonError::into_inner);
        let taken = slots.entry(show).or_default();
        let index = (0..).find(|i| !taken.contains(i)).expect("a free slot");
        taken.insert(index);
        Slot { show, index }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut slots = SLOTS.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(taken) = slots.get_mut(&self.show) {
            taken.remove(&self.index);
            if taken.is_empty() {
                slots.remove(&self.show);
            }
        }
    }
}
