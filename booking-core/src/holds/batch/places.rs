//! The batcher's side of holds of places only: their statement (`place_batch.rs`) for
//! a batch's share of them, and the memory of areas found sold out.

use super::{alone, decide_alone, same_error, Counters, Job};
use crate::domain::{AreaCode, HoldId};
use crate::engine::Engine;
use crate::error::Error;
use crate::holds::{place_batch, HoldRequest};
use deadpool_postgres::Pool;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tokio::sync::OwnedSemaphorePermit;

/// Refuses, without the database, the holds of places queued before a statement found
/// one of their areas sold out: that statement's snapshot, taken between the request's
/// arrival and its answer, had no place of the area left to take, so the refusal is
/// one the database gave at a moment the request was waiting for its answer. A herd on
/// a standing floor then drains at once after the sell-out instead of one statement
/// for each batch of latecomers. Requests queued later go to the database.
pub(super) fn refuse_sold_out(batch: Vec<Job>, counters: &Counters) -> Vec<Job> {
    let sold_out = counters.sold_out.lock();
    if sold_out.is_empty() {
        return batch;
    }
    let mut rest = Vec::with_capacity(batch.len());
    for job in batch {
        let short: Vec<AreaCode> = job
            .req
            .areas
            .iter()
            .filter(|w| {
                sold_out
                    .get(&(job.req.show, w.area.clone()))
                    .is_some_and(|&at| job.queued < at)
            })
            .map(|w| w.area.clone())
            .collect();
        if short.is_empty() {
            rest.push(job);
        } else {
            let _ = job.reply.send(Err(Error::SeatsUnavailable {
                seats: Vec::new(),
                areas: short,
            }));
        }
    }
    rest
}

/// Writes the holds of places only of a batch in one statement of their own
/// (`place_batch.rs`), then decides alone what it could not.
pub(super) async fn run_places(
    batch: Vec<Job>,
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
            let e = Error::from(e);
            for job in batch {
                let _ = job.reply.send(Err(same_error(&e)));
            }
            return;
        }
    };
    let reqs: Vec<(&HoldRequest, HoldId)> = batch.iter().map(|j| (&j.req, j.hold_id)).collect();
    let began = Instant::now();
    let written = place_batch::write(&client, engine, &reqs).await;
    drop(slot);
    drop(reqs);
    counters.batches.fetch_add(1, Ordering::Relaxed);
    counters
        .requests
        .fetch_add(batch.len() as u64, Ordering::Relaxed);
    let outcomes = match written {
        Ok(outcomes) => outcomes,
        Err(Error::Invariant(what)) => {
            counters.failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(%what, "place batch broke an invariant");
            for job in batch {
                let _ = job.reply.send(Err(Error::Invariant(what.clone())));
            }
            return;
        }
        Err(e) => {
            counters.failed.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(error = %e, requests = batch.len(), "place batch failed; each request alone");
            drop(client);
            futures_util::future::join_all(batch.into_iter().map(|job| async move {
                let answer = alone(pool, engine, &job).await;
                let _ = job.reply.send(answer);
            }))
            .await;
            return;
        }
    };
    drop(client);
    let mut undecided = Vec::new();
    for (job, outcome) in batch.into_iter().zip(outcomes) {
        match outcome {
            place_batch::Outcome::Done(hold) => {
                let _ = job.reply.send(Ok(*hold));
            }
            place_batch::Outcome::Refused(e) => {
                if let Error::SeatsUnavailable { areas, .. } = &e {
                    let mut sold_out = counters.sold_out.lock();
                    for a in areas {
                        let at = sold_out.entry((job.req.show, a.clone())).or_insert(began);
                        *at = (*at).max(began);
                    }
                }
                let _ = job.reply.send(Err(e));
            }
            place_batch::Outcome::Undecided => undecided.push(job),
        }
    }
    decide_alone(undecided, pool, engine, counters).await;
}
