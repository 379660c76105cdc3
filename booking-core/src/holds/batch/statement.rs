//! One batch statement and its answers: holds of seats (the statement of `batch.rs`) or
//! of places only (`place_batch.rs`). With keyed requests in the batch, the statement
//! runs in a transaction that claims their keys (in the statement itself for seats,
//! `keyed::ITEMS`; before it for places) and stores their answers after it
//! (`keyed.rs`); without, it commits on its own.

use super::keyed::{self, Keyed};
use super::{decide_alone, same_error, Counters, Job, Outcome};
use crate::domain::{AreaCode, HoldId, ShowId};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::holds::pooled::hold_pooled_as;
use crate::holds::{load, place_batch, Hold, HoldRequest};
use crate::idempotency::{self, Claim, Key, Stored};
use deadpool_postgres::Pool;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tokio::sync::OwnedSemaphorePermit;

/// Which statement a batch runs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Seats,
    Places,
}

/// What a request of the batch gets once the batch has committed.
enum Answer {
    // Boxed: a hold is far larger than the other answers.
    Send(Box<Result<Hold>>),
    Rendered,
    Undecided,
    Found(Claim),
}

/// Writes one batch of `kind` and answers each of its requests. The batch's `slot` is
/// given back as soon as its statement has run: requests decided alone afterwards
/// (which may wait on row locks) do not hold up the next batch.
pub(super) async fn run_statement(
    mut batch: Vec<Job>,
    pool: &Pool,
    engine: &Engine,
    slot: Option<OwnedSemaphorePermit>,
    counters: &Counters,
    kind: Kind,
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
                job.answer(Err(same_error(&e)));
            }
            return;
        }
    };
    let began = Instant::now();
    let keyed = batch.iter().any(|j| j.keyed().is_some());
    let opened = match (kind, keyed) {
        // The statement claims the keys itself, sent right after `BEGIN` (below).
        (Kind::Seats, true) => Ok(true),
        _ => keyed::open(&client, &mut batch).await,
    };
    let in_tx = match opened {
        Ok(in_tx) => in_tx,
        Err(e) => {
            drop(slot);
            counters.failed.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(error = %e, requests = batch.len(), "claiming a batch's keys failed; each request alone");
            keyed::roll_back(client).await;
            each_alone(batch, pool, engine).await;
            return;
        }
    };
    if batch.is_empty() {
        // Every key said not to run: nothing to write, the locks go.
        drop(slot);
        keyed::roll_back(client).await;
        return;
    }
    let written = match kind {
        Kind::Seats if in_tx => begin_and_write(&client, engine, &batch).await,
        Kind::Seats => super::write(&client, engine, &batch).await,
        Kind::Places => {
            let reqs: Vec<(&HoldRequest, HoldId)> =
                batch.iter().map(|j| (&j.req, j.hold_id)).collect();
            place_batch::write(&client, engine, &reqs)
                .await
                .map(|outcomes| outcomes.into_iter().map(Outcome::from).collect())
        }
    };
    drop(slot);
    counters.batches.fetch_add(1, Ordering::Relaxed);
    counters
        .requests
        .fetch_add(batch.len() as u64, Ordering::Relaxed);
    let outcomes = match written {
        Ok(outcomes) => outcomes,
        Err(Error::Invariant(what)) => {
            // A bug: report it, never retry over it (without keys the batch committed).
            counters.failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(%what, "hold batch broke an invariant");
            if in_tx {
                keyed::roll_back(client).await;
            }
            for job in batch {
                job.answer(Err(Error::Invariant(what.clone())));
            }
            return;
        }
        Err(e) => {
            counters.failed.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(error = %e, requests = batch.len(), "hold batch failed; each request alone");
            match in_tx {
                true => keyed::roll_back(client).await,
                false => drop(client),
            }
            each_alone(batch, pool, engine).await;
            return;
        }
    };
    // Remembered once committed: a batch rolled back gives its claimed places back.
    let sold_out = match kind {
        Kind::Places => sold_out_areas(&batch, &outcomes),
        Kind::Seats => Vec::new(),
    };
    // The earliest deadline of the holds written: the sweeper's hint.
    let earliest = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Done(h) => Some(h.expires_at),
            _ => None,
        })
        .min();
    let mut answers = Vec::with_capacity(batch.len());
    let mut stores: Vec<(&Key, Stored)> = Vec::new();
    for (job, outcome) in batch.iter().zip(outcomes) {
        let decided = match outcome {
            Outcome::Done(hold) => Ok(*hold),
            Outcome::Refused(e) => Err(e),
            Outcome::Undecided => {
                answers.push(Answer::Undecided);
                continue;
            }
            Outcome::Found(claim) => {
                answers.push(Answer::Found(claim));
                continue;
            }
        };
        match job.keyed() {
            None => answers.push(Answer::Send(Box::new(decided))),
            Some(k) => {
                // Decided in the batch: the answer commits with the hold (or with the
                // claim of a refusal), in this transaction.
                if let Some(stored) = (k.render)(decided) {
                    stores.push((&k.key, stored));
                }
                answers.push(Answer::Rendered);
            }
        }
    }
    let committed = match in_tx {
        true => {
            let refs: Vec<(&Key, &Stored)> = stores.iter().map(|(k, s)| (*k, s)).collect();
            idempotency::record_many_and_commit(&client, &refs).await
        }
        false => Ok(()),
    };
    drop(stores);
    if let Err(e) = committed {
        {
            // Maybe committed (a lost `COMMIT`), maybe not: each alone finds out.
            counters.failed.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(error = %e, requests = batch.len(), "hold batch's commit failed; each request alone");
            keyed::roll_back(client).await;
            each_alone(batch, pool, engine).await;
            return;
        }
    }
    drop(client);
    if kind == Kind::Seats {
        // The statement's refusals came from its snapshot, read after `began`.
        let mut taken = counters.taken.lock();
        for (job, answer) in batch.iter().zip(&answers) {
            if let Answer::Send(sent) = answer {
                if let Err(e) = sent.as_ref() {
                    taken.note(&job.req, e, began);
                }
            }
        }
    }
    if !sold_out.is_empty() {
        let mut memory = counters.sold_out.lock();
        for key in sold_out {
            let at = memory.entry(key).or_insert(began);
            *at = (*at).max(began);
        }
    }
    if earliest.is_some() {
        // Committed (the statement of places told the sweeper already, before the
        // commit of a keyed batch: once more is harmless).
        engine.committed(earliest);
    }
    // Answer what the batch decided first: a request decided alone may wait on a lock.
    let mut undecided = Vec::new();
    for (job, answer) in batch.into_iter().zip(answers) {
        match answer {
            Answer::Send(a) => job.answer(*a),
            Answer::Rendered => job.send_keyed(Keyed::Rendered),
            Answer::Found(claim) => job.send_keyed(Keyed::Found(claim)),
            Answer::Undecided => undecided.push(job),
        }
    }
    decide_alone(undecided, pool, engine, counters).await;
}

/// `BEGIN` and the keyed statement of holds of seats, sent together: one round trip.
/// Both are on the wire before either answer comes, so a `BEGIN` that failed would
/// leave the statement to commit on its own, its holds without their keys: never seen
/// (a `BEGIN` fails only with its connection, and the statement then with it), and
/// answered as a broken invariant, never retried over.
async fn begin_and_write(
    client: &deadpool_postgres::Client,
    engine: &Engine,
    batch: &[Job],
) -> Result<Vec<Outcome>> {
    let (begun, written) = futures_util::future::join(
        client.batch_execute("BEGIN"),
        super::write(client, engine, batch),
    )
    .await;
    match (begun, written) {
        (Ok(()), written) => written,
        (Err(e), Ok(_)) => Err(Error::Invariant(format!(
            "a keyed hold batch ran outside its transaction: {e}"
        ))),
        (Err(e), Err(_)) => Err(e.into()),
    }
}

/// Each request of a failed batch alone, at once (with the database down, each waits
/// for a connection): found if the batch committed after all (its hold by id, or its
/// key's answer), else done for the first time.
async fn each_alone(batch: Vec<Job>, pool: &Pool, engine: &Engine) {
    futures_util::future::join_all(batch.into_iter().map(|job| async move {
        match job.keyed() {
            Some(k) => {
                let answer = keyed::alone(pool, engine, &job.req, job.hold_id, k).await;
                job.send_keyed(answer);
            }
            None => {
                let answer = alone(pool, engine, &job).await;
                job.answer(answer);
            }
        }
    }))
    .await;
}

/// Areas a statement of places found with nothing left (see
/// [`super::places::refuse_sold_out`]), by show.
fn sold_out_areas(batch: &[Job], outcomes: &[Outcome]) -> Vec<(ShowId, AreaCode)> {
    let mut out = Vec::new();
    for (job, outcome) in batch.iter().zip(outcomes) {
        if let Outcome::Refused(Error::SeatsUnavailable { areas, .. }) = outcome {
            out.extend(areas.iter().map(|a| (job.req.show, a.clone())));
        }
    }
    out
}

/// A request of a failed batch, alone: found if the batch committed after all, else
/// held under its own id.
async fn alone(pool: &Pool, engine: &Engine, job: &Job) -> Result<Hold> {
    let mut client = pool.get().await?;
    if let Some(hold) = load(&client, job.hold_id).await? {
        return Ok(hold);
    }
    hold_pooled_as(&mut client, engine, &job.req, job.hold_id).await
}
