//! The batcher's queue: requests of both kinds (new holds, adds to holds) wait in one
//! channel, and the dispatcher takes all that have gathered into the next batch once a
//! slot is free (see the module documentation of [`super`]).

use super::adds::AddJob;
use super::{run, BatchOptions, Counters, Job};
use crate::engine::Engine;
use crate::error::Error;
use crate::holds::place_batch;
use deadpool_postgres::Pool;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

/// What the queue carries: both kinds are answered with a hold.
pub(super) enum Queued {
    Hold(Job),
    Add(AddJob),
}

impl Queued {
    /// When it was queued, and whether its caller has gone.
    fn parts(&self) -> (Instant, bool) {
        match self {
            Queued::Hold(j) => (j.queued, j.is_closed()),
            Queued::Add(j) => (j.queued, j.reply.is_closed()),
        }
    }

    /// Answers a request that is not written: `error` is never stored under a key.
    fn fail(self, error: Error) {
        match self {
            Queued::Hold(j) => j.answer(Err(error)),
            Queued::Add(j) => {
                let _ = j.reply.send(Err(error));
            }
        }
    }
}

/// The reason of [`Error::Busy`] for a request that waited past
/// [`BatchOptions::max_wait`].
const QUEUED_TOO_LONG: &str = "no database connection free in time for the request";

/// Takes what has gathered in the queue into a batch whenever a slot is free, and runs
/// it as a task of `engine`: up to `max_batch` holds of seats and `max_batch` adds,
/// and `max_place_batch` holds of places only, a batch. Until `cancel` fires (then
/// everything still queued is answered [`Error::Busy`]) or every sender is dropped.
pub(super) async fn dispatch(
    mut jobs: mpsc::UnboundedReceiver<Queued>,
    pool: Pool,
    engine: Engine,
    options: BatchOptions,
    counters: Arc<Counters>,
    cancel: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(options.in_flight.max(1)));
    loop {
        // Wait for a free slot first: while every slot is busy, requests gather in the
        // queue and the next batch takes them all.
        let slot = tokio::select! {
            _ = cancel.cancelled() => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => return,
            },
        };
        let first = tokio::select! {
            _ = cancel.cancelled() => break,
            first = jobs.recv() => match first {
                Some(first) => first,
                None => return,
            },
        };
        let (mut batch, mut adds) = (Vec::new(), Vec::new());
        let (mut others, mut places) = (0, 0);
        let max = options.max_batch.max(1);
        let mut next = Some(first);
        while let Some(queued) = next {
            let (at, closed) = queued.parts();
            if closed {
                // The caller has gone (its request timed out, say): write nothing for it.
            } else if at.elapsed() > options.max_wait {
                queued.fail(Error::Busy(QUEUED_TOO_LONG));
            } else {
                match queued {
                    Queued::Hold(job) => {
                        // Seats an earlier snapshot showed taken while this waited:
                        // refused now, taking no room in the batch (`taken.rs`).
                        let known = counters.taken.lock().refusal(&job);
                        if let Some(refusal) = known {
                            counters.refused_from_memory.fetch_add(1, Ordering::Relaxed);
                            job.answer(Err(refusal));
                            next = jobs.try_recv().ok();
                            continue;
                        }
                        match place_batch::batchable(&job.req) {
                            true => places += 1,
                            false => others += 1,
                        }
                        batch.push(job);
                    }
                    Queued::Add(job) => adds.push(job),
                }
            }
            next = if others < max && adds.len() < max && places < options.max_place_batch.max(1) {
                jobs.try_recv().ok()
            } else {
                None
            };
        }
        if batch.is_empty() && adds.is_empty() {
            continue;
        }
        let (pool, task_engine, counters) = (pool.clone(), engine.clone(), counters.clone());
        engine.spawn(
            async move { run(batch, adds, &pool, &task_engine, Some(slot), &counters).await },
        );
    }
    // Stopping: nothing queued now or later is written.
    jobs.close();
    while let Some(queued) = jobs.recv().await {
        queued.fail(Error::Busy(STOPPED));
    }
}

/// The reason of [`Error::Busy`] for a request queued while the batcher stopped.
pub(super) const STOPPED: &str = "the server is shutting down";
