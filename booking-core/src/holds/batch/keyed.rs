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

/// The requests of a batch of holds of seats with keys (the `items` of `batch.rs`'s
/// statement), each key claimed as [`idempotency::claim_many`] claims it: try-locked
/// (never waiting), unless it is named twice in the batch (`key_twice`, the second and
/// later: the lock is the session's, so they would get it too), and looked up. Only a
/// request without a key or with a fresh one is written (`key_fresh`); the others
/// leave with what their key says (`claim_of`). The claim is in the statement so that
/// a keyed batch is two round trips (`BEGIN` sent with this statement; the answers'
/// `INSERT` with `COMMIT`), not three, and one statement fewer. `MATERIALIZED`: every
/// key is claimed once, when the row is read (every row is: each request wants a seat).
/// The lookup reads the statement's snapshot, taken before the locks, as the claim
/// statement's did: a key stored by a request that committed in between looks fresh,
/// and the answers' `INSERT` fails on it (see [`idempotency::record_many_and_commit`]).
pub(super) const ITEMS: &str = "items AS MATERIALIZED (
             SELECT u.show_id, u.hold_id, u.user_id, u.ttl, u.external_ref, u.metadata,
                    u.item, u.key_got, ik.fingerprint AS key_print, ik.status AS key_status,
                    ik.body AS key_body,
                    u.key_scope IS NULL OR (u.key_got AND ik.fingerprint IS NULL) AS key_fresh
               FROM (SELECT *,
                            CASE WHEN key_scope IS NULL OR key_twice THEN false
                                 ELSE pg_try_advisory_xact_lock(hashtextextended(
                                          key_show::text || chr(31) || key_scope
                                              || chr(31) || key_name, 7))
                            END AS key_got
                       FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::int[],
                                   $9::text[], $10::text[], $11::text[], $12::text[],
                                   $13::bool[], $14::bigint[])
                            WITH ORDINALITY
                            AS u(show_id, hold_id, user_id, ttl, external_ref, metadata,
                                 key_scope, key_name, key_twice, key_show, item)
                     OFFSET 0) u
               -- A probe per key (see `idempotency::claim_many` for why lateral), in
               -- the key's show (the hold's: both are the show of the request's path).
               LEFT JOIN LATERAL (
                        SELECT fingerprint, status, body FROM idempotency_keys ik
                         WHERE u.key_got AND ik.show_id = u.key_show
                           AND ik.scope = u.key_scope AND ik.key = u.key_name
                        OFFSET 0
                    ) ik ON true
         )";

/// The key columns of [`ITEMS`] for `batch` (`$11` scopes, `$12` keys, `$13` named
/// before in the batch, `$14` the keys' shows), `None` for requests without a key.
pub(super) type KeyColumns<'a> = (
    Vec<Option<&'a str>>,
    Vec<Option<&'a str>>,
    Vec<bool>,
    Vec<Option<i64>>,
);

pub(super) fn key_columns(batch: &[Job]) -> KeyColumns<'_> {
    let mut seen = std::collections::HashSet::new();
    let mut columns: KeyColumns<'_> = Default::default();
    for job in batch {
        let key = job.keyed().map(|k| &k.key);
        columns.0.push(key.map(|k| k.scope.as_str()));
        columns.1.push(key.map(|k| k.key.as_str()));
        columns
            .2
            .push(key.is_some_and(|k| !seen.insert(k.identity())));
        columns.3.push(key.map(Key::show_param));
    }
    columns
}

/// What a request's key said in the statement of [`ITEMS`] (any row of its item).
pub(super) fn claim_of(row: &tokio_postgres::Row, key: &Key) -> Claim {
    let found = row
        .get::<_, Option<&[u8]>>("key_print")
        .map(|print| (print, row.get::<_, i16>("key_status"), row.get("key_body")));
    idempotency::claim_from(
        row.get::<_, Option<bool>>("key_got").unwrap_or(false),
        found,
        &key.fingerprint,
    )
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
    match idempotency::claim(&tx, k).await? {
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
            idempotency::record(&tx, k, &stored).await?;
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
