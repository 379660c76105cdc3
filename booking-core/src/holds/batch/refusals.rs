//! Answers decided without the database, stored under their keys in batches: a herd of
//! keyed requests for seats the server's map shows taken is refused from memory, and
//! its refusals are stored many to a statement (`idempotency::store_decided`) instead
//! of one transaction each, so a retry with a key still replays its refusal exactly.

use crate::engine::Engine;
use crate::error::Result;
use crate::idempotency::{self, Claim, Key, Stored};
use deadpool_postgres::Pool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_util::sync::CancellationToken;

/// Most answers stored by one statement: each takes an advisory lock for the
/// statement's length, and the server's lock table is shared
/// (`max_locks_per_transaction` × connections).
const MAX_STORE: usize = 512;
/// Statements storing answers at once, each on a pooled connection.
const IN_FLIGHT: usize = 2;

/// An answer to store, and where to say how it went.
pub(super) struct Refusal {
    pub queued: Instant,
    pub key: Key,
    pub answer: Stored,
    pub reply: oneshot::Sender<Option<Claim>>,
}

/// Takes what has gathered in the queue into one statement whenever a slot is free,
/// until `cancel` fires or every sender is dropped. A request that waited past
/// `max_wait`, or whose statement failed, is answered `None`: the server then takes
/// the database path (a statement that committed unheard is found there as a replay).
pub(super) async fn store(
    mut queue: mpsc::UnboundedReceiver<Refusal>,
    pool: Pool,
    engine: Engine,
    max_wait: Duration,
    cancel: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        let slot = tokio::select! {
            _ = cancel.cancelled() => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => return,
            },
        };
        let first = tokio::select! {
            _ = cancel.cancelled() => break,
            first = queue.recv() => match first {
                Some(first) => first,
                None => return,
            },
        };
        let mut batch = Vec::new();
        let mut next = Some(first);
        while let Some(r) = next {
            if r.reply.is_closed() {
                // The caller has gone: store nothing for it.
            } else if r.queued.elapsed() > max_wait {
                let _ = r.reply.send(None);
            } else {
                batch.push(r);
            }
            next = match batch.len() < MAX_STORE {
                true => queue.try_recv().ok(),
                false => None,
            };
        }
        if batch.is_empty() {
            continue;
        }
        let pool = pool.clone();
        engine.spawn(async move {
            let stored = run(&pool, &batch).await;
            drop(slot);
            match stored {
                Ok(claims) => {
                    for (r, claim) in batch.into_iter().zip(claims) {
                        let _ = r.reply.send(claim);
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, answers = batch.len(), "storing refusals failed; each by the database");
                    for r in batch {
                        let _ = r.reply.send(None);
                    }
                }
            }
        });
    }
    queue.close();
    while let Some(r) = queue.recv().await {
        let _ = r.reply.send(None);
    }
}

async fn run(pool: &Pool, batch: &[Refusal]) -> Result<Vec<Option<Claim>>> {
    let client = pool.get().await?;
    let answers: Vec<(&Key, &Stored)> = batch.iter().map(|r| (&r.key, &r.answer)).collect();
    idempotency::store_decided(&client, &answers).await
}
