//! Holds with an idempotency key, batched: the key is claimed, the hold written and the
//! answer stored in the batch's own transaction, so a hold and its answer still commit
//! together (see `crate::idempotency`).

use super::Job;
use crate::domain::HoldId;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::holds::take::hold_as;
use crate::holds::{Hold, HoldRequest};
use crate::idempotency::{self, Claim, Key, Stored};
use deadpool_postgres::{Client, Pool};
use std::sync::Arc;
use tokio::sync::oneshot;

/// Turns the outcome of a keyed hold into the answer its caller sends, keeping that
/// answer on the caller's side, and returns what to store under the key (`None` for an
/// answer that must not be stored: a 5xx, which the client may retry for real). It may
/// be called more than once for one request (a batch that failed is retried alone): the
/// answer sent is the one of the last call before [`Keyed::Rendered`].
pub type Render = Arc<dyn Fn(Result<Hold>) -> Option<Stored> + Send + Sync>;

/// How a keyed hold ended.
#[derive(Debug)]
pub enum Keyed {
    /// The hold ran; the answer is the last one [`Render`] made (stored with the hold's
    /// work, unless `Render` said not to).
    Rendered,
    /// The key said not to run: [`Claim::Replay`], [`Claim::Mismatch`] or
    /// [`Claim::InUse`], never [`Claim::Fresh`].
    Found(Claim),
    /// Nothing was done or stored (the database or the pool failed, the request waited
    /// too long, the batcher stopped): answer this error, unstored.
    Failed(Error),
}

/// The keyed side of a queued hold.
pub(super) struct KeyedReply {
    pub key: Key,
    pub render: Render,
    pub reply: oneshot::Sender<Keyed>,
}

/// Opens the batch's transaction and claims the keys of its keyed requests (one round
/// trip once the claim is prepared: `BEGIN` goes first, and the claim after it). Requests whose key says not to run
/// are answered at once and leave `batch`; `true` when a transaction was opened. When no request has a key, nothing
/// is sent and the statement runs on its own (autocommit).
pub(super) async fn open(client: &Client, batch: &mut Vec<Job>) -> Result<bool> {
    if !batch.iter().any(|j| j.keyed().is_some()) {
        return Ok(false);
    }
    let keys: Vec<&Key> = batch
        .iter()
        .filter_map(|j| j.keyed().map(|k| &k.key))
        .collect();
    let (begun, claims) = futures_util::future::join(
        client.batch_execute("BEGIN"),
        idempotency::claim_many(client, &keys),
    )
    .await;
    begun?;
    let mut claims = claims?.into_iter();
    drop(keys);
    for job in std::mem::take(batch) {
        if job.keyed().is_none() {
            batch.push(job);
            continue;
        }
        match claims.next() {
            Some(Claim::Fresh) => batch.push(job),
            Some(found) => job.send_keyed(Keyed::Found(found)),
            None => job.send_keyed(Keyed::Failed(Error::Invariant(
                "a key claim returned fewer rows than keys".into(),
            ))),
        }
    }
    Ok(true)
}

/// Rolls back the batch's transaction; a connection that cannot is not given back to
/// the pool (it would be still in the transaction).
pub(super) async fn roll_back(client: Client) {
    if client.batch_execute("ROLLBACK").await.is_err() {
        let _ = deadpool_postgres::Client::take(client);
    }
}

/// A keyed hold decided alone, as the server decided every keyed hold before batches
/// took them: its own transaction claims the key, holds (under `hold_id`), stores the
/// answer and commits. A request of a failed batch comes here too: if that batch
/// committed after all, the claim finds its answer (a replay), and nothing is held
/// twice.
pub(super) async fn alone(
    pool: &Pool,
    engine: &Engine,
    req: &HoldRequest,
    hold_id: HoldId,
    keyed: &KeyedReply,
) -> Keyed {
    let mut client = match pool.get().await {
        Ok(client) => client,
        Err(e) => return Keyed::Failed(e.into()),
    };
    match alone_on(&mut client, engine, req, hold_id, keyed).await {
        Ok(answer) => answer,
        Err(e) => Keyed::Failed(e),
    }
}

async fn alone_on(
    client: &mut Client,
    engine: &Engine,
    req: &HoldRequest,
    hold_id: HoldId,
    keyed: &KeyedReply,
) -> Result<Keyed> {
    let k = &keyed.key;
    let mut tx = client.transaction().await?;
    match idempotency::claim(&tx, &k.scope, &k.key, &k.fingerprint).await? {
        Claim::Fresh => {}
        found => return Ok(Keyed::Found(found)),
    }
    let outcome = hold_as(&mut tx, engine, req, hold_id).await;
    let until = outcome.as_ref().ok().map(|h| h.expires_at);
    match (keyed.render)(outcome) {
        // Not stored (a 5xx): nothing of the request stays; the transaction rolls back
        // when dropped, before the answer goes out.
        None => {
            let _ = tx.rollback().await;
        }
        Some(stored) => {
            idempotency::record(&tx, &k.scope, &k.key, &k.fingerprint, &stored).await?;
            tx.commit().await?;
            if until.is_some() {
                engine.committed(until);
            }
        }
    }
    Ok(Keyed::Rendered)
}

/// Where a request's answer goes: a keyed one's answer is stored with its work before
/// it is sent (`keyed.rs`).
pub(super) enum Reply {
    Plain(oneshot::Sender<Result<Hold>>),
    Keyed(Box<KeyedReply>),
}

impl Job {
    pub(super) fn keyed(&self) -> Option<&KeyedReply> {
        match &self.reply {
            Reply::Plain(_) => None,
            Reply::Keyed(k) => Some(k),
        }
    }

    pub(super) fn is_closed(&self) -> bool {
        match &self.reply {
            Reply::Plain(r) => r.is_closed(),
            Reply::Keyed(k) => k.reply.is_closed(),
        }
    }

    /// Sends `answer` as it is. To a keyed request only an answer never stored: an
    /// error (the caller answers it unstored, as a failure); its decided answers go
    /// through [`Job::send_keyed`] once stored.
    pub(super) fn answer(self, answer: Result<Hold>) {
        match self.reply {
            Reply::Plain(r) => {
                let _ = r.send(answer);
            }
            Reply::Keyed(k) => {
                let e = answer.err().unwrap_or_else(|| {
                    Error::Invariant("a keyed hold was answered without its key".into())
                });
                let _ = k.reply.send(Keyed::Failed(e));
            }
        }
    }

    /// Sends a keyed request's answer (a plain one gets an invariant error: never sent).
    pub(super) fn send_keyed(self, answer: Keyed) {
        match self.reply {
            Reply::Keyed(k) => {
                let _ = k.reply.send(answer);
            }
            Reply::Plain(r) => {
                let _ = r.send(Err(Error::Invariant(
                    "a hold without a key was answered as keyed".into(),
                )));
            }
        }
    }
}
