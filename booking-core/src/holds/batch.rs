//! Holds of many callers written by one statement: what a busy on-sale spends its
//! database time on is mostly the cost of a statement and a commit, not of the rows.
//!
//! A [`Batcher`] queues hold requests. Up to [`BatchOptions::in_flight`] batches run at
//! once; while they do, new requests wait in the queue, and the next batch takes all
//! of them (up to [`BatchOptions::max_batch`], and [`BatchOptions::max_place_batch`]
//! holds of places only). A lone request is a batch of one and
//! waits for nothing: batches only grow when the database is already busy.
//!
//! # One statement, each hold still all-or-none
//!
//! A batch is one statement in its own transaction, [`super::hold_pooled`] for many:
//! 1. It reads every wanted seat in its snapshot, without locks. A hold whose seats are
//!    all there, point at nothing, have the versions asked for and are wanted by no
//!    earlier request of the batch is a *candidate*.
//! 2. It locks the candidates' seats in ascending id order (the crate's one lock
//!    order) with `SKIP LOCKED`: a seat another transaction has locked never makes the
//!    batch wait, so one contended seat cannot stall the holds of strangers.
//! 3. A candidate whose seats were all locked with the `xmin` seen in step 1 is
//!    written: its hold, its `hold_seats`, its seats pointed at it, its own seat event.
//!    Nothing is written for the others.
//!
//! Then each request gets its answer: its hold; or its refusal, read from the snapshot
//! exactly as [`super::hold_pooled`] would (no such show or seat, a moved version, a
//! taken or blocked seat, a ticket type not sold); or, when the batch could not decide
//! (a seat locked by someone, changed since the snapshot, pointing at a lapsed hold, or
//! wanted twice in the batch, or a show with a limit per buyer),
//! [`super::hold`] decides it alone, in a transaction of its own, after the batch
//! committed.
//!
//! Every request's hold id is chosen before the batch runs. If the batch fails (the
//! connection is lost, say), each request is retried alone under the same id, after
//! looking for a hold of that id first: a batch that committed without our hearing it
//! is found and answered, never held twice.
//!
//! A keyed request (with an idempotency key: [`Batcher::hold_keyed`]) is batched too:
//! its key is claimed before the statement and its answer stored after it, in the
//! batch's transaction (`keyed.rs`, `statement.rs`); one the batch cannot decide, or
//! of a failed batch, takes the keyed path alone. Refusals a caller decided from memory
//! are stored under their keys many to a statement ([`Batcher::store_decided`],
//! `refusals.rs`).
//!
//! Adds of seats to live holds ([`Batcher::add`]) share the queue (`queue.rs`): a
//! batch takes up to [`BatchOptions::max_batch`] of them too, written by a statement of
//! their own next to the holds' (`adds.rs`, and `add_batch.rs` for the statement), each
//! add it could not decide then decided by [`super::add`] alone.

mod adds;
mod keyed;
mod places;
mod queue;
mod refusals;
mod statement;
mod taken;

use super::take::{hold_seen, named_types, snapshot_of, wanted_versions, written_by};
use super::{place_batch, Hold, HoldRequest};
use crate::database::Cached;
use crate::domain::{AreaCode, HoldId, ShowId};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::idempotency::{Claim, Key, Stored};
use crate::seats::{HELD, JOIN_HOLD, VERSION};
use crate::shows::SALE_COLUMNS;
use crate::tickets::{PRICE_JOIN, SEAT_TICKET};
pub use adds::add_all;
use adds::{run_adds, AddJob};
use deadpool_postgres::Pool;
pub use keyed::{Keyed, Render};
use keyed::{KeyedReply, Reply};
use places::refuse_sold_out;
use queue::{dispatch, Queued, STOPPED};
use refusals::Refusal;
use statement::{run_statement, Kind};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};
use taken::Taken;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};
use tokio_postgres::types::ToSql;
use tokio_util::sync::CancellationToken;

/// How a [`Batcher`] groups requests.
#[derive(Debug, Clone)]
pub struct BatchOptions {
    /// Most requests written by one statement (holds of seats, and adds to holds, each
    /// kind in a statement of its own).
    pub max_batch: usize,
    /// Most holds of standing places only in one batch, on top of `max_batch` others:
    /// their statement (`place_batch.rs`) claims a whole batch's places with one scan
    /// per area, so it takes many more for little more time, and a herd on a standing
    /// floor (thousands of winners, not one) drains that much faster.
    pub max_place_batch: usize,
    /// Most batches running at once, each on a pooled connection of its own.
    pub in_flight: usize,
    /// A request that waited longer than this in the queue is answered
    /// [`Error::Busy`] instead of held: its caller is likely to have given up, and a
    /// queue that long means the database cannot keep up.
    pub max_wait: Duration,
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions {
            max_batch: 32,
            max_place_batch: 256,
            in_flight: 2,
            max_wait: Duration::from_secs(2),
        }
    }
}

/// Takes hold requests (and adds to holds) from many tasks and writes them in batches
/// (see the module documentation). Cheap to clone; the dispatcher (`queue.rs`) and the
/// batches are tasks of the engine it was started with, and stop when its token fires
/// (requests still queued then are answered [`Error::Busy`]) or once every clone is
/// dropped.
#[derive(Clone)]
pub struct Batcher {
    queue: mpsc::UnboundedSender<Queued>,
    refusals: mpsc::UnboundedSender<Refusal>,
    counters: Arc<Counters>,
    engine: Engine,
    pool: Pool,
}

/// What a [`Batcher`] has done since it started (for metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchCounts {
    /// Batch statements run.
    pub batches: u64,
    /// Requests (holds and adds) those statements carried: `requests / batches` is the
    /// mean batch size.
    pub requests: u64,
    /// Requests a batch could not decide, decided alone after it.
    pub decided_alone: u64,
    /// Batch statements that failed; their requests were retried one by one (unless
    /// the failure was a broken invariant: then each was answered [`Error::Invariant`]).
    pub failed: u64,
    /// Holds refused from the batcher's memory, without the database: of seats an
    /// earlier request's snapshot showed taken, or of areas a statement found sold
    /// out, in either case read while the refused request was queued.
    pub refused_from_memory: u64,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    requests: AtomicU64,
    decided_alone: AtomicU64,
    failed: AtomicU64,
    refused_from_memory: AtomicU64,
    /// Standing areas a place statement found with no place left to take (every row
    /// claimed went to a written hold, and no lapsed hold of the show had places), and
    /// when that statement began: see [`refuse_sold_out`].
    sold_out: parking_lot::Mutex<HashMap<(ShowId, AreaCode), Instant>>,
    /// Sets of seats a snapshot showed taken, and when its read began: see `taken.rs`.
    taken: parking_lot::Mutex<Taken>,
}

struct Job {
    queued: Instant,
    req: HoldRequest,
    hold_id: HoldId,
    reply: Reply,
}

impl Batcher {
    /// Starts the batcher's dispatcher, as a task of `engine`, until `cancel` fires.
    pub fn start(
        engine: Engine,
        pool: Pool,
        options: BatchOptions,
        cancel: CancellationToken,
    ) -> Batcher {
        let (queue, jobs) = mpsc::unbounded_channel();
        let (refusals, to_store) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        engine.spawn(refusals::store(
            to_store,
            pool.clone(),
            engine.clone(),
            options.max_wait,
            cancel.clone(),
        ));
        engine.spawn(dispatch(
            jobs,
            pool.clone(),
            engine.clone(),
            options,
            counters.clone(),
            cancel,
        ));
        Batcher {
            queue,
            refusals,
            counters,
            engine,
            pool,
        }
    }

    /// What this batcher has done so far.
    pub fn counts(&self) -> BatchCounts {
        let c = &self.counters;
        BatchCounts {
            batches: c.batches.load(Ordering::Relaxed),
            requests: c.requests.load(Ordering::Relaxed),
            decided_alone: c.decided_alone.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            refused_from_memory: c.refused_from_memory.load(Ordering::Relaxed),
        }
    }

    /// [`super::hold_pooled`], batched with the requests of other callers: the same
    /// answers and errors, and also [`Error::Busy`] when the request waited in the
    /// queue longer than [`BatchOptions::max_wait`] or the batcher has stopped.
    pub async fn hold(&self, req: HoldRequest) -> Result<Hold> {
        super::take::check(&req, self.engine.settings())?;
        let (reply, answer) = oneshot::channel();
        let hold_id = HoldId::generate(req.show);
        self.queue
            .send(Queued::Hold(Job {
                queued: Instant::now(),
                req,
                hold_id,
                reply: Reply::Plain(reply),
            }))
            .map_err(|_| Error::Busy(STOPPED))?;
        answer
            .await
            .map_err(|_| Error::Invariant("a hold batch ended without an answer".into()))?
    }

    /// A hold with an idempotency key, batched with the requests of other callers: its
    /// key is claimed, its hold written and its answer (made by `render`) stored in
    /// its batch's transaction, all or nothing; a request its batch cannot decide is
    /// decided alone in a transaction of its own, key included (see `keyed.rs`).
    pub async fn hold_keyed(&self, req: HoldRequest, key: Key, render: Render) -> Keyed {
        let (reply, answer) = oneshot::channel();
        let keyed = Box::new(KeyedReply { key, render, reply });
        let hold_id = HoldId::generate(req.show);
        if super::take::check(&req, self.engine.settings()).is_err() {
            // Refused before any SQL, but a refusal to store: the keyed path does both.
            return keyed::alone(&self.pool, &self.engine, &req, hold_id, &keyed).await;
        }
        let job = Job {
            queued: Instant::now(),
            req,
            hold_id,
            reply: Reply::Keyed(keyed),
        };
        if self.queue.send(Queued::Hold(job)).is_err() {
            return Keyed::Failed(Error::Busy(STOPPED));
        }
        answer.await.unwrap_or_else(|_| {
            Keyed::Failed(Error::Invariant(
                "a hold batch ended without an answer".into(),
            ))
        })
    }

    /// Stores `answer`, decided without the database (a refusal of seats the caller
    /// knows taken), under `key`, with many others in one statement (`refusals.rs`,
    /// `idempotency::store_decided`): `Some(Claim::Fresh)` when stored now (send it),
    /// `Some` other claim when the key says otherwise (answer that instead), `None` when
    /// that could not be decided cheaply: then nothing was stored under the key by this
    /// call, and the request must take the database path.
    pub async fn store_decided(&self, key: Key, answer: Stored) -> Option<Claim> {
        let (reply, stored) = oneshot::channel();
        self.refusals
            .send(Refusal {
                queued: Instant::now(),
                key,
                answer,
                reply,
            })
            .ok()?;
        stored.await.ok().flatten()
    }
}

/// Holds each of `requests` independently (each all-or-none, with its own answer, as
/// [`super::hold_pooled`] gives it), writing them together: one statement for the lot,
/// then requests it could not decide one by one. Answers come in request order.
pub async fn hold_all(
    pool: &Pool,
    engine: &Engine,
    requests: Vec<HoldRequest>,
) -> Vec<Result<Hold>> {
    let mut jobs = Vec::new();
    let mut answers = Vec::new();
    for req in requests {
        let (reply, answer) = oneshot::channel();
        let checked = super::take::check(&req, engine.settings()).map(|_| ());
        match checked {
            Ok(()) => {
                let hold_id = HoldId::generate(req.show);
                jobs.push(Job {
                    queued: Instant::now(),
                    req,
                    hold_id,
                    reply: Reply::Plain(reply),
                });
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
        answers.push(answer);
    }
    if !jobs.is_empty() {
        run(jobs, Vec::new(), pool, engine, None, &Counters::default()).await;
    }
    let mut out = Vec::with_capacity(answers.len());
    for answer in answers {
        out.push(answer.await.unwrap_or_else(|_| {
            Err(Error::Invariant(
                "a hold batch ended without an answer".into(),
            ))
        }));
    }
    out
}

/// Writes one batch and answers each of its requests: holds of seats by the statement
/// below, holds of places only by the statement of `place_batch.rs`, adds by that of
/// `add_batch.rs`, next to each other; holds of seats and places together are decided
/// alone (their places are claimed after the seats' locks, in a transaction), at once.
async fn run(
    batch: Vec<Job>,
    adds: Vec<AddJob>,
    pool: &Pool,
    engine: &Engine,
    slot: Option<OwnedSemaphorePermit>,
    counters: &Counters,
) {
    // The slot goes with the holds' statements when there are any (the adds' statement
    // then runs on top, as the places' one does next to the seats'), else with the
    // adds'.
    if engine.settings().distributed {
        // On Citus a statement runs on one node only when every table in it is pinned
        // to one show, and the batch statements (like `POOLED_SQL`) are planned apart
        // there even for one show (`invalid input syntax for type bigint: "PGCOPY"`,
        // `could not find attribute -2 in subquery targetlist` on Citus 13.0.3): each
        // request is decided alone, by the two-step transaction whose statements are
        // each one show's. The slot stays taken until they are, bounding the
        // connections a batch takes. Plain PostgreSQL keeps one statement a batch.
        let _slot = slot;
        futures_util::future::join(
            decide_alone(batch, pool, engine, counters),
            adds::decide_alone(adds, pool, engine, counters),
        )
        .await;
        return;
    }
    let (slot, add_slot) = match batch.is_empty() {
        true => (None, slot),
        false => (slot, None),
    };
    let batch = refuse_sold_out(batch, counters);
    let (with_places, seats): (Vec<Job>, Vec<Job>) =
        batch.into_iter().partition(|j| !j.req.areas.is_empty());
    let (places, mixed): (Vec<Job>, Vec<Job>) = with_places
        .into_iter()
        .partition(|j| place_batch::batchable(&j.req));
    let mixed = decide_alone(mixed, pool, engine, counters);
    // The slot is given back once the batch's statement has run (the seats' when there
    // are both): while it runs, new requests gather for the next batch.
    let (seat_slot, place_slot) = if seats.is_empty() {
        (None, slot)
    } else {
        (slot, None)
    };
    futures_util::future::join4(
        run_statement(seats, pool, engine, seat_slot, counters, Kind::Seats),
        run_statement(places, pool, engine, place_slot, counters, Kind::Places),
        mixed,
        run_adds(adds, pool, engine, add_slot, counters),
    )
    .await;
}

/// Each request alone, on a connection of its own, at once: one waiting on a lock must
/// not hold up the others.
async fn decide_alone(jobs: Vec<Job>, pool: &Pool, engine: &Engine, counters: &Counters) {
    counters
        .decided_alone
        .fetch_add(jobs.len() as u64, Ordering::Relaxed);
    futures_util::future::join_all(jobs.into_iter().map(|job| async move {
        if let Some(k) = job.keyed() {
            let answer = keyed::alone(pool, engine, &job.req, job.hold_id, k).await;
            return job.send_keyed(answer);
        }
        let answer = async {
            let mut client = pool.get().await?;
            // Before the transaction's snapshot; a connection may take a while to come.
            let began = Instant::now();
            let mut by_snapshot = false;
            let answer =
                hold_seen(&mut client, engine, &job.req, job.hold_id, &mut by_snapshot).await;
            if let (Err(e), true) = (&answer, by_snapshot) {
                counters.taken.lock().note(&job.req, e, began);
            }
            answer
        }
        .await;
        job.answer(answer);
    }))
    .await;
}

/// Errors are not `Clone` (a driver error is not): the cases a pool failure gives,
/// copied.
fn same_error(e: &Error) -> Error {
    match e {
        Error::Busy(reason) => Error::Busy(reason),
        other => Error::Pool(other.to_string()),
    }
}

/// What the statement decided for one request.
enum Outcome {
    // Boxed: a hold is far larger than the other outcomes.
    Done(Box<Hold>),
    Refused(Error),
    Undecided,
    /// A keyed request whose key said not to run (never [`Claim::Fresh`]): nothing was
    /// written for it.
    Found(Claim),
}

/// The requests of a batch without keys: every one may be written (`key_fresh`).
const PLAIN_ITEMS: &str = "items AS (
             SELECT *, NULL::bool AS key_got, NULL::bytea AS key_print,
                    NULL::int2 AS key_status, NULL::bytea AS key_body, true AS key_fresh
               FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::int[],
                           $9::text[], $10::text[])
                    WITH ORDINALITY
                    AS i(show_id, hold_id, user_id, ttl, external_ref, metadata, item)
         )";

/// The batch statement, without keys and with them (whose `items` also claims them:
/// `keyed::ITEMS`).
static SQL: LazyLock<String> = LazyLock::new(|| statement(PLAIN_ITEMS));
static KEYED_SQL: LazyLock<String> = LazyLock::new(|| statement(keyed::ITEMS));

/// The batch statement over the requests of `items`: numbered from 1 there; wanted
/// seats name their item. Only items whose `key_fresh` is true are written.
fn statement(items: &str) -> String {
    format!(
        "WITH {items}, snap AS (
             SELECT w.item, sh.currency, sh.max_seats_per_user, sh.queue_max_seats, s.id,
                    s.label, s.row_index,
                    s.number,
                    s.booking_id IS NOT NULL OR s.block_id IS NOT NULL OR {HELD} IS TRUE
                        AS taken,
                    s.hold_id IS NULL AND s.booking_id IS NULL AND s.block_id IS NULL AS clean,
                    {VERSION} AS version, s.xmin::text AS xmin, w.version AS wanted_version,
                    {SEAT_TICKET},
                    row_number() OVER (PARTITION BY s.show_id, s.id ORDER BY w.item) AS claim,
                    i.key_fresh,
                    {SALE_COLUMNS}
               FROM unnest($5::bigint[], $6::text[], $7::text[], $8::text[])
                    AS w(item, label, version, type)
               JOIN items i ON i.item = w.item
               LEFT JOIN shows sh ON sh.id = i.show_id
               LEFT JOIN seats s ON s.show_id = sh.id AND s.label = w.label
               {JOIN_HOLD}
               {PRICE_JOIN}
         ), go AS (
             SELECT item, bool_and(coalesce(id IS NOT NULL AND clean AND claim = 1 AND sells
                                            AND key_fresh
                                            AND show_on_sale AND max_seats_per_user IS NULL
                                            AND queue_max_seats IS NULL
                                            AND (wanted_version IS NULL
                                                 OR wanted_version = version), false)) AS ok
               FROM snap GROUP BY item
         ), locked AS MATERIALIZED (
             SELECT s.id, s.xmin::text AS x FROM seats s
              WHERE (s.show_id, s.id) IN (SELECT i.show_id, snap.id
                                            FROM snap JOIN go USING (item) JOIN items i USING (item)
                                           WHERE go.ok)
              ORDER BY s.id FOR UPDATE SKIP LOCKED
         ), verdict AS (
             SELECT snap.item, bool_and(go.ok AND coalesce(l.x = snap.xmin, false)) AS ok
               FROM snap JOIN go USING (item) LEFT JOIN locked l ON l.id = snap.id
              GROUP BY snap.item
         ), ok_items AS (
             SELECT i.item, i.show_id, i.hold_id, i.user_id, i.ttl, i.external_ref,
                    i.metadata, (SELECT coalesce(sum(snap.price), 0) FROM snap WHERE snap.item = i.item)::bigint
                        AS total
               FROM items i JOIN verdict v USING (item) WHERE v.ok
         ), wanted AS (
             SELECT snap.item, snap.id, snap.xmin, snap.ticket_type, snap.price
               FROM snap JOIN verdict v USING (item) WHERE v.ok
         ), {write}
         SELECT snap.item, snap.currency, snap.max_seats_per_user, snap.queue_max_seats,
                snap.id, snap.label,
                snap.ticket_type, snap.price, snap.sells, snap.type_known, snap.row_index,
                snap.number, snap.taken, snap.version, snap.show_cancelled_at,
                snap.show_sales_start, snap.show_sales_end, snap.show_on_sale, v.ok,
                h.created_at, h.expires_at,
                (SELECT count(*) FROM taken t WHERE t.item = snap.item) AS taken_count,
                e.xid_text AS ev_xid, e.id AS ev_id, e.seats AS ev_seats, e.node AS ev_node, e.epoch AS ev_epoch,
                i.key_got, i.key_print, i.key_status, i.key_body
           FROM snap
           JOIN verdict v USING (item)
           JOIN items i USING (item)
           LEFT JOIN h ON h.hold_show = i.show_id AND h.hold_key = i.hold_id
           -- The batch's events, told apart by their first seat (its seats are the
           -- item's alone: no seat is written for two items).
           LEFT JOIN ev e ON e.show_id = i.show_id
                         AND e.seats -> 0 ->> 'label' = (SELECT t.label FROM taken t
                                                          WHERE t.item = snap.item
                                                          ORDER BY t.id LIMIT 1)
          ORDER BY snap.item",
        write = super::take::write_ctes("ok_items", "wanted", None),
    )
}

/// Runs the batch statement and reads each request's outcome from its rows.
async fn write(
    client: &deadpool_postgres::Client,
    engine: &Engine,
    batch: &[Job],
) -> Result<Vec<Outcome>> {
    let shows: Vec<i64> = batch.iter().map(|j| j.req.show.get()).collect();
    let keys: Vec<uuid::Uuid> = batch.iter().map(|j| j.hold_id.key()).collect();
    let users: Vec<&str> = batch.iter().map(|j| j.req.user.as_str()).collect();
    let ttls: Vec<i32> = batch
        .iter()
        .map(|j| j.req.ttl.unwrap_or(engine.settings().default_ttl).secs() as i32)
        .collect();
    let refs: Vec<Option<&str>> = batch.iter().map(|j| j.req.reference.ref_param()).collect();
    let metas: Vec<Option<String>> = batch
        .iter()
        .map(|j| j.req.reference.metadata_param())
        .collect();
    let mut seat_items: Vec<i64> = Vec::new();
    let mut labels: Vec<&str> = Vec::new();
    let mut versions: Vec<Option<&str>> = Vec::new();
    let mut types: Vec<Option<&str>> = Vec::new();
    for (n, job) in batch.iter().enumerate() {
        for label in job.req.seats.labels() {
            seat_items.push(n as i64 + 1);
            labels.push(label.as_str());
        }
        versions.extend(wanted_versions(&job.req));
        types.extend(named_types(&job.req));
    }
    let params: [&(dyn ToSql + Sync); 10] = [
        &shows,
        &keys,
        &users,
        &ttls,
        &seat_items,
        &labels,
        &versions,
        &types,
        &refs,
        &metas,
    ];
    let rows = match batch.iter().any(|j| j.keyed().is_some()) {
        false => client.cq(&SQL, &params).await?,
        true => {
            let (scopes, names, twice, key_shows) = keyed::key_columns(batch);
            let keyed: [&(dyn ToSql + Sync); 4] = [&scopes, &names, &twice, &key_shows];
            let all: Vec<&(dyn ToSql + Sync)> = params.into_iter().chain(keyed).collect();
            client.cq(&KEYED_SQL, &all).await?
        }
    };

    let mut outcomes = Vec::with_capacity(batch.len());
    let mut rest = rows.as_slice();
    for (n, job) in batch.iter().enumerate() {
        let item = n as i64 + 1;
        let count = rest
            .iter()
            .take_while(|r| r.get::<_, i64>("item") == item)
            .count();
        let (mine, others) = rest.split_at(count);
        rest = others;
        if mine.is_empty() {
            return Err(Error::Invariant(format!(
                "hold batch returned no rows for request {item}"
            )));
        }
        if let Some(k) = job.keyed() {
            match keyed::claim_of(&mine[0], &k.key) {
                Claim::Fresh => {}
                found => {
                    outcomes.push(Outcome::Found(found));
                    continue;
                }
            }
        }
        let outcome = match snapshot_of(&job.req, mine) {
            Err(e) => Outcome::Refused(e),
            Ok(_) if !mine[0].get::<_, bool>("ok") => Outcome::Undecided,
            Ok(snap) => {
                let written = written_by(&mine[0], &job.req)?;
                Outcome::Done(Box::new(snap.into_hold(&job.req, job.hold_id, written)))
            }
        };
        outcomes.push(outcome);
    }
    // The caller tells the engine once the statement committed (on its own, or with
    // the batch's keys).
    Ok(outcomes)
}
