//! The batcher's side of adds to live holds: their statement (`add_batch.rs`) for a
//! batch's share of them, and [`super::super::add`] for each add it could not decide.

use super::{same_error, Batcher, Counters, Queued, STOPPED};
use crate::domain::{Actor, HoldId};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::holds::add_batch::{self, Add};
use crate::holds::{add, cart, Hold, HoldAddition};
use deadpool_postgres::Pool;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tokio::sync::{oneshot, OwnedSemaphorePermit};

/// An add waiting in the batcher's queue.
pub(super) struct AddJob {
    pub(super) queued: Instant,
    actor: Actor,
    id: HoldId,
    addition: HoldAddition,
    pub(super) reply: oneshot::Sender<Result<Hold>>,
}

impl Batcher {
    /// [`add_pooled`](crate::holds::add_pooled), batched with the adds of other
    /// callers: the same answers and errors, and also [`Error::Busy`] when the request
    /// waited in the queue longer than
    /// [`BatchOptions::max_wait`](super::BatchOptions::max_wait) or the batcher has
    /// stopped. Adds of places go to [`add`] alone.
    pub async fn add(&self, actor: Actor, id: HoldId, addition: HoldAddition) -> Result<Hold> {
        cart::check_types(&addition)?;
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Queued::Add(AddJob {
                queued: Instant::now(),
                actor,
                id,
                addition,
                reply,
            }))
            .map_err(|_| Error::Busy(STOPPED))?;
        answer
            .await
            .map_err(|_| Error::Invariant("an add batch ended without an answer".into()))?
    }
}

/// Adds to each hold of `adds` independently (each all-or-none, with its own answer,
/// as [`add_pooled`](crate::holds::add_pooled) gives it), writing them together: one
/// statement for the lot, then the adds it could not decide one by one. Answers come
/// in request order.
pub async fn add_all(
    pool: &Pool,
    engine: &Engine,
    adds: Vec<(Actor, HoldId, HoldAddition)>,
) -> Vec<Result<Hold>> {
    let mut jobs = Vec::new();
    let mut answers = Vec::new();
    for (actor, id, addition) in adds {
        let (reply, answer) = oneshot::channel();
        match cart::check_types(&addition) {
            Ok(()) => jobs.push(AddJob {
                queued: Instant::now(),
                actor,
                id,
                addition,
                reply,
            }),
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
        answers.push(answer);
    }
    run_adds(jobs, pool, engine, None, &Counters::default()).await;
    let mut out = Vec::with_capacity(answers.len());
    for answer in answers {
        out.push(answer.await.unwrap_or_else(|_| {
            Err(Error::Invariant(
                "an add batch ended without an answer".into(),
            ))
        }));
    }
    out
}

/// Writes the adds of seats of a batch in one statement, decides the others (adds of
/// places) alone at once, and then those the statement could not decide. The `slot` is
/// given back as soon as the statement has run.
pub(super) async fn run_adds(
    batch: Vec<AddJob>,
    pool: &Pool,
    engine: &Engine,
    slot: Option<OwnedSemaphorePermit>,
    counters: &Counters,
) {
    if engine.settings().distributed {
        // Citus does not run the add statement whole (see `run` in `batch.rs`): each
        // add alone, by the two-step transaction, as a batch's `run` does there.
        let _slot = slot;
        return decide_alone(batch, pool, engine, counters).await;
    }
    let (batch, places): (Vec<AddJob>, Vec<AddJob>) = batch
        .into_iter()
        .partition(|j| add_batch::batchable(&j.addition));
    futures_util::future::join(
        run_statement(batch, pool, engine, slot, counters),
        decide_alone(places, pool, engine, counters),
    )
    .await;
}

async fn run_statement(
    batch: Vec<AddJob>,
    pool: &Pool,
    engine: &Engine,
    slot: Option<OwnedSemaphorePermit>,
    counters: &Counters,
) {
    if batch.is_empty() {
        return;
    }
    let client = match pool.get().await {
        Ok(client) => client,
        Err(e) => {
            // Nothing was sent: every request gets the pool's answer.
            let e = Error::from(e);
            for job in batch {
                let _ = job.reply.send(Err(same_error(&e)));
            }
            return;
        }
    };
    let adds: Vec<Add> = batch
        .iter()
        .map(|j| Add {
            actor: &j.actor,
            id: j.id,
            addition: &j.addition,
        })
        .collect();
    let written = add_batch::write(&client, &adds, engine.settings().max_seats_per_hold).await;
    drop(slot);
    drop(adds);
    drop(client);
    counters.batches.fetch_add(1, Ordering::Relaxed);
    counters
        .requests
        .fetch_add(batch.len() as u64, Ordering::Relaxed);
    let outcomes = match written {
        Ok(outcomes) => outcomes,
        Err(Error::Invariant(what)) => {
            // A bug, found after the batch committed: report it, never retry over it.
            counters.failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(%what, "add batch broke an invariant");
            for job in batch {
                let _ = job.reply.send(Err(Error::Invariant(what.clone())));
            }
            return;
        }
        Err(e) => {
            // Each alone: an add passes over the seats its hold has already, so one
            // that the batch committed unheard is answered as it is, not made twice.
            counters.failed.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(error = %e, requests = batch.len(), "add batch failed; each request alone");
            decide_alone(batch, pool, engine, &Counters::default()).await;
            return;
        }
    };
    // The statement committed on its own (autocommit); no hold's deadline moved.
    if outcomes.iter().any(Option::is_some) {
        engine.committed(None);
    }
    let mut undecided = Vec::new();
    for (job, outcome) in batch.into_iter().zip(outcomes) {
        match outcome {
            Some(hold) => {
                let _ = job.reply.send(Ok(hold));
            }
            None => undecided.push(job),
        }
    }
    decide_alone(undecided, pool, engine, counters).await;
}

/// Each add alone, by [`add`] in a transaction of its own: adds to different holds at
/// once (one waiting on a lock must not hold up the others), adds to one hold in the
/// order they came (they would take turns on its row lock anyway, in no set order).
pub(super) async fn decide_alone(
    jobs: Vec<AddJob>,
    pool: &Pool,
    engine: &Engine,
    counters: &Counters,
) {
    counters
        .decided_alone
        .fetch_add(jobs.len() as u64, Ordering::Relaxed);
    let mut by_hold: Vec<Vec<AddJob>> = Vec::new();
    for job in jobs {
        match by_hold.iter_mut().find(|turns| turns[0].id == job.id) {
            Some(turns) => turns.push(job),
            None => by_hold.push(vec![job]),
        }
    }
    futures_util::future::join_all(by_hold.into_iter().map(|turns| async move {
        for job in turns {
            let answer = async {
                let mut client = pool.get().await?;
                add(&mut client, engine, &job.actor, job.id, &job.addition).await
            }
            .await;
            let _ = job.reply.send(answer);
        }
    }))
    .await;
}
