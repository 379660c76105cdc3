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
//!   lock attempt each (measured: 1.0 per success in the 300-request test of
//!   `tests/it/best.rs`), instead of all trying the best group first (the n-th would
//!   fail n-1 times). If
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
//!   not a queue on anyone's lock. Past
//!   [`Settings::lock_timeout`](crate::Settings::lock_timeout) the answer is
//!   [`Error::Busy`] (a `503` with `Retry-After`), never a `409`: the groups left
//!   were all being taken by others at that instant, and some may yet be released.
//!
//! # Files
//!
//! `house.rs` reads the house (and keeps each show's layout in the engine's memory),
//! `rank.rs` ranks its free groups, `attempt.rs` locks one group (and keeps the claims of
//! this engine's callers); [`hold_best`] here runs the rounds: read, rank, attempt.
//!
//! Cost per read: one statement that scans the show's seats once and returns the ids
//! of the free ones in one array (the layout, which never changes, is read once per
//! process and kept), then one pass to rank them (a 2,000-seat show: 2,000 seats
//! looked at, at most [`TOP_K`] groups kept in a heap, nothing sorted).

mod attempt;
mod house;

/// The ranking of free groups, pure (it lives at [`crate::rank`]).
pub use crate::rank;

use crate::engine::best_memory::Memory;

use crate::database::{lock_timeout_value, Cached, SET_SHOW_LOCK_TIMEOUT};
use crate::domain::{
    Category, Feature, HoldId, HoldStatus, HoldTtl, Reference, SeatCount, SeatLabel, Section,
    ShowId, TicketTypeName, UserId,
};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::holds::{write_hold, Hold, NewHold};
use crate::tickets::Ticket;
use attempt::{try_lock, undo, Attempt, Claims, LockedSeat, SAVEPOINT};
use deadpool_postgres::GenericClient;
use futures_util::TryFutureExt;
use house::{read_house, Filter, House};
use rank::{Group, Want};
use std::collections::HashMap;
use std::time::Duration;

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
    /// The show to find seats in.
    pub show: ShowId,
    /// Who holds the seats found (the hold's owner).
    pub user: UserId,
    /// How many seats to hold, all in one hold.
    pub count: SeatCount,
    /// Only seats of this category; `None`: any. A category the show does not have
    /// fits no group ([`Error::SeatsUnavailable`]).
    pub category: Option<Category>,
    /// All seats side by side in one row, not across an aisle. Without it, the best
    /// seats as close together as possible (side by side still when possible).
    pub adjacent: bool,
    /// How long the hold lives; `None`:
    /// [`Settings::default_ttl`](crate::Settings::default_ttl).
    pub ttl: Option<HoldTtl>,
    /// Only seats of this section, ranked among the section's own rows as a house. A
    /// section the show does not have fits no group.
    pub section: Option<Section>,
    /// Every chosen seat has each of these features.
    pub require: Vec<Feature>,
    /// No chosen seat has any of these features, where a group without them exists.
    pub avoid: Vec<Feature>,
    /// The ticket types of the seats, one per seat (`count` of them), given to the
    /// chosen seats in seat-map order; only seats of categories every one of them is
    /// sold for are considered. Empty: every seat as the show's default type.
    pub ticket_types: Vec<TicketTypeName>,
    /// The integrator's reference and metadata, kept with the hold.
    pub reference: Reference,
}

impl BestRequest {
    /// `count` seats of `show` for `user`: side by side, any category or section, the
    /// default ticket type and ttl.
    pub fn new(show: ShowId, user: UserId, count: SeatCount) -> Self {
        BestRequest {
            show,
            user,
            count,
            category: None,
            adjacent: true,
            ttl: None,
            section: None,
            require: Vec::new(),
            avoid: Vec::new(),
            ticket_types: Vec::new(),
            reference: Reference::default(),
        }
    }
}

/// The hold made, and the work it took.
#[derive(Debug, Clone)]
pub struct BestHold {
    /// The hold made, active, its seats in seat-map order.
    pub hold: Hold,
    /// Groups whose seats were locked (`FOR UPDATE SKIP LOCKED`), the winning one included.
    pub lock_attempts: u32,
    /// Reads of the house.
    pub reads: u32,
}

/// Holds the best group of `req.count` free seats for `req.ttl` (see the module docs).
///
/// Runs in its own transaction on a pooled client, or as a savepoint inside the
/// caller's transaction. Errors: [`Error::ShowNotFound`]; [`Error::SeatsUnavailable`]
/// (with no seats) when no group fits; [`Error::Invalid`] (field `ticket_types`) when
/// `req.ticket_types` is not one type per seat or names a type the show does not have;
/// [`Error::UserLimitReached`]; [`Error::Busy`] when the groups that fit were all
/// being taken by others for [`Settings::lock_timeout`](crate::Settings::lock_timeout).
///
/// ```no_run
/// use booking_core::{best, BestRequest, Engine, SeatCount, ShowId, UserId};
/// # async fn demo(client: &mut booking_core::deadpool_postgres::Client) -> booking_core::Result<()> {
/// let engine = Engine::default();
/// let got = best::hold_best(client, &engine, &BestRequest::new(
///     ShowId::parse("1")?,
///     UserId::parse("u-17")?,
///     SeatCount::parse(4, engine.settings().max_seats_per_hold)?,
/// )).await?;
/// assert_eq!(got.hold.seats.len(), 4);
/// # Ok(()) }
/// ```
#[tracing::instrument(skip_all, fields(show = %req.show, user = %req.user, count = req.count.get()))]
pub async fn hold_best<C>(client: &mut C, engine: &Engine, req: &BestRequest) -> Result<BestHold>
where
    C: GenericClient + Send,
{
    let settings = engine.settings();
    let ttl = settings.hold_ttl(req.ttl)?;
    if !req.ticket_types.is_empty() && req.ticket_types.len() != req.count.get() {
        return Err(Error::invalid(
            "ticket_types",
            format!("name one ticket type per seat: {} of them", req.count.get()),
        ));
    }
    let lock_timeout = lock_timeout_value(settings);
    let require: Vec<String> = req.require.iter().map(|f| f.as_str().to_owned()).collect();
    let avoid: Vec<String> = req.avoid.iter().map(|f| f.as_str().to_owned()).collect();
    let types: Vec<String> = req
        .ticket_types
        .iter()
        .map(|t| t.as_str().to_owned())
        .collect();
    let filter = Filter {
        category: req.category.as_ref().map(Category::as_str),
        section: req.section.as_ref().map(Section::as_str),
        require: &require,
        avoid: &avoid,
        ticket_types: &types,
    };
    let tx = client.transaction().await?;
    let mut search = Search {
        tx: &tx,
        memory: engine.best_memory(),
        show: req.show.get(),
        filter: &filter,
        want: Want {
            count: req.count.get(),
            adjacent: req.adjacent,
        },
        claims: Claims::new(engine.best_memory(), req.show.get()),
        dirty: false,
        lock_attempts: 0,
    };
    // The lock bound and the savepoint go out with the first read (pipelined: one
    // round trip for the three).
    let show = req.show.get();
    let bound: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&lock_timeout, &show];
    let setup = futures_util::future::try_join(
        tx.cexec(SET_SHOW_LOCK_TIMEOUT, &bound),
        tx.batch_execute(SAVEPOINT),
    );
    let (_, first) = futures_util::future::try_join(
        setup.map_err(Error::from),
        read_house(&tx, search.memory, search.show, search.filter),
    )
    .await?;
    check_types(&first, &types)?;
    let mut first = Some(first);
    let started = tokio::time::Instant::now();
    let mut backoff = Duration::from_millis(1);
    for reads in 1.. {
        let house = match first.take() {
            Some(house) => house,
            None => search.read().await?,
        };
        let groups = search.rank(&house)?;
        let stale = match search.attempt(&house, &groups).await? {
            Round::Won { group, locked } => {
                let hold = write(&tx, req, &house, group, locked, ttl).await?;
                let lock_attempts = search.lock_attempts;
                let claims = search.into_claims();
                tx.commit().await?;
                drop(claims);
                engine.committed(Some(hold.expires_at));
                return Ok(BestHold {
                    hold,
                    lock_attempts,
                    reads,
                });
            }
            Round::Lost { stale } => stale,
        };
        if started.elapsed() >= settings.lock_timeout {
            tracing::debug!(
                reads,
                lock_attempts = search.lock_attempts,
                "every group was being taken by others"
            );
            break;
        }
        if !stale {
            // Every group tried is being written by others right now. Pausing (without
            // any lock: the savepoint is rolled back first) is no wait on their locks;
            // it lets their commits land before we rank again.
            undo(&tx, search.dirty).await?;
            search.dirty = false;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
    Err(Error::Busy(CONTENDED))
}

/// One caller's search for a group, across rounds of read, rank and attempt.
struct Search<'t, 'm, C> {
    tx: &'t C,
    memory: &'m Memory,
    show: i64,
    filter: &'m Filter<'m>,
    want: Want,
    claims: Claims<'m>,
    /// Row locks of a failed attempt are still ours until the savepoint is rolled
    /// back to; the rollback is pipelined with the next statement rather than waited for.
    dirty: bool,
    lock_attempts: u32,
}

/// How a round of attempts on one read ended.
enum Round<'h> {
    /// This group (indices into the house) is locked whole and free.
    Won {
        group: &'h [usize],
        locked: Vec<LockedSeat>,
    },
    /// No group was had. `stale`: some seat tried was found taken (our read is old:
    /// read again at once) rather than only locked by others (give them a moment).
    Lost { stale: bool },
}

impl<'m, C: GenericClient> Search<'_, 'm, C> {
    /// The claims, kept past the commit: until then the won seats are still ours to
    /// write, and others here should not try them.
    fn into_claims(self) -> Claims<'m> {
        self.claims
    }

    /// Reads the house again, rolling back the last failed attempt on the way.
    async fn read(&mut self) -> Result<House> {
        let (_, house) = futures_util::future::try_join(
            undo(self.tx, self.dirty),
            read_house(self.tx, self.memory, self.show, self.filter),
        )
        .await?;
        self.dirty = false;
        Ok(house)
    }

    /// The groups worth trying on this read, best first. Seats that other callers of
    /// this engine are taking count as taken: rank what will be left (the stranding
    /// rule included) rather than race for them. [`Error::SeatsUnavailable`] only when
    /// the read itself has no group: claimed seats may yet be freed.
    fn rank(&self, house: &House) -> Result<Vec<Group>> {
        let mut places = house.places.clone();
        let mut hidden = false;
        for id in self.claims.others() {
            if let Some(i) = house.index_of(id) {
                hidden |= std::mem::replace(&mut places[i].free, false);
            }
        }
        let groups = rank_avoiding(&places, house, self.want, TOP_K);
        if groups.is_empty()
            && (!hidden || rank_avoiding(&house.places, house, self.want, 1).is_empty())
        {
            return Err(Error::SeatsUnavailable {
                seats: vec![],
                areas: vec![],
            });
        }
        Ok(groups)
    }

    /// Tries up to [`ATTEMPTS_PER_READ`] groups, best first, skipping any that contain a
    /// seat that failed on this read or that another caller here has claimed.
    async fn attempt<'h>(&mut self, house: &House, groups: &'h [Group]) -> Result<Round<'h>> {
        let mut avoid = vec![false; house.places.len()];
        let mut tried = 0;
        let mut stale = false;
        for group in groups.iter().map(|g| &g.seats) {
            if tried == ATTEMPTS_PER_READ {
                break;
            }
            if group.iter().any(|&i| avoid[i]) {
                continue;
            }
            let mut ids: Vec<(i64, usize)> = group.iter().map(|&i| (house.id(i), i)).collect();
            ids.sort_unstable();
            let only_ids: Vec<i64> = ids.iter().map(|(id, _)| *id).collect();
            let theirs = self.claims.claim(&only_ids);
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
            self.lock_attempts += 1;
            match try_lock(self.tx, self.show, &only_ids, self.dirty).await? {
                Attempt::Lost { bad, taken } => {
                    self.claims.unclaim(&only_ids);
                    self.dirty = true;
                    stale |= taken;
                    for (id, i) in &ids {
                        if bad.contains(id) {
                            avoid[*i] = true;
                        }
                    }
                }
                Attempt::Won(locked) => return Ok(Round::Won { group, locked }),
            }
        }
        Ok(Round::Lost { stale })
    }
}

/// The best groups of `places`: first among the seats without a feature to avoid,
/// and only when none fits there, among all eligible seats.
fn rank_avoiding(places: &[rank::Place], house: &House, want: Want, k: usize) -> Vec<Group> {
    if house.avoided.iter().any(|&a| a) {
        let strict: Vec<rank::Place> = places
            .iter()
            .zip(&house.avoided)
            .map(|(p, &avoided)| rank::Place {
                eligible: p.eligible && !avoided,
                ..*p
            })
            .collect();
        let groups = rank::rank(&strict, want, k);
        if !groups.is_empty() {
            return groups;
        }
    }
    rank::rank(places, want, k)
}

/// Every type asked for must be one of the show's ([`Error::Invalid`], field
/// `ticket_types`).
fn check_types(house: &House, types: &[String]) -> Result<()> {
    match types.iter().find(|t| {
        !house
            .layout
            .ticket_types
            .iter()
            .any(|tt| tt.name.as_str() == *t)
    }) {
        Some(t) => Err(Error::invalid(
            "ticket_types",
            format!("the show has no ticket type {t}"),
        )),
        None => Ok(()),
    }
}

/// Writes the hold of the won `group` (its seats `locked`, in id order) exactly as
/// every hold is written, and reads it back in seat-map order.
async fn write<C: GenericClient>(
    tx: &C,
    req: &BestRequest,
    house: &House,
    group: &[usize],
    locked: Vec<LockedSeat>,
    ttl: HoldTtl,
) -> Result<Hold> {
    // Does the show still sell, now that the group is ours? A new statement sees a show
    // cancellation that committed while we locked (see `shows/sale.rs`).
    crate::shows::check_on_sale(tx, req.show).await?;
    if let Some(limit) = house.max_seats_per_user {
        crate::holds::check_user_limit(tx, req.show, &req.user, group.len(), limit).await?;
    }
    if let Some(max_seats) = house.queue_max_seats {
        crate::queue::allowance::check(tx, req.show, &req.user, group.len(), max_seats).await?;
    }
    let hold_id = HoldId::generate(req.show);
    // The types go to the group's seats in seat-map order (the group's indices are in
    // it already); every one of them is sold for these seats' categories (the filter).
    let types = &house.layout.ticket_types;
    let mut tickets: Vec<Ticket> = Vec::with_capacity(group.len());
    let mut by_id_ticket: HashMap<i64, (TicketTypeName, Option<i64>)> = HashMap::new();
    let by_id: HashMap<i64, SeatLabel> = locked.iter().map(|s| (s.id, s.label.clone())).collect();
    for (k, &i) in group.iter().enumerate() {
        let ticket_type = req.ticket_types.get(k).map_or(&types[0], |name| {
            types.iter().find(|t| &t.name == name).unwrap_or(&types[0])
        });
        let price = ticket_type.prices.get(house.category(i)).copied().flatten();
        let id = house.id(i);
        by_id_ticket.insert(id, (ticket_type.name.clone(), price));
        tickets.push(Ticket {
            seat: by_id[&id].clone(),
            area: None,
            ticket_type: ticket_type.name.clone(),
            price,
        });
    }
    let ids: Vec<i64> = locked.iter().map(|s| s.id).collect();
    let seen: Vec<&str> = locked.iter().map(|s| s.xmin.as_str()).collect();
    let sold: Vec<(&str, Option<i64>)> = ids
        .iter()
        .map(|id| (by_id_ticket[id].0.as_str(), by_id_ticket[id].1))
        .collect();
    let new = NewHold {
        id: hold_id,
        user: &req.user,
        reference: &req.reference,
        ttl,
    };
    let written = write_hold(tx, &new, &ids, &seen, &sold).await?;
    Ok(Hold {
        hold_id,
        show_id: req.show,
        user_id: req.user.clone(),
        seats: tickets.iter().map(|t| t.seat.clone()).collect(),
        areas: Default::default(),
        total: tickets.iter().filter_map(|t| t.price).sum(),
        tickets,
        status: HoldStatus::Active,
        created_at: written.created_at,
        expires_at: written.expires_at,
        currency: house.currency.clone(),
        booking_id: None,
        reference: req.reference.clone(),
        event: written.event,
    })
}
