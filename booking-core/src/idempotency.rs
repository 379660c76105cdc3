//! Idempotency keys: storing the answer to a request in the same transaction as its
//! work, and replaying it to a retry.
//!
//! Use inside one transaction: [`claim`] the key first; on [`Claim::Fresh`] do the work
//! in the same transaction (the operations of this crate nest as savepoints), then
//! [`record`] the answer and commit. Work and answer land together or not at all, so
//! a retry after any crash either replays the answer or does the work for the first
//! time — never twice.

use crate::database::Cached;
use crate::error::Result;
use deadpool_postgres::GenericClient;
use std::time::Duration;

/// An answer stored under a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The HTTP status code of the answer (`201`, `409`, ...).
    pub status: u16,
    /// The answer's body, byte for byte (JSON for the server).
    pub body: Vec<u8>,
}

/// What a key says about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Never seen: do the work, then [`record`] its answer in the same transaction.
    Fresh,
    /// Seen with this same request: answer this again, do nothing.
    Replay(Stored),
    /// Seen with a different request (another fingerprint): do nothing. The server
    /// answers `422 idempotency_key_reused`.
    Mismatch,
    /// Another transaction is working under this key right now: do nothing. The
    /// server answers `409 idempotency_key_in_use`.
    InUse,
}

/// Claims `key` in `scope` for the current transaction (`tx` must be one).
///
/// A transaction-scoped advisory lock marks the key as in use until commit or rollback:
/// a concurrent duplicate sees [`Claim::InUse`] at once instead of waiting, and after
/// the first commits its answer is visible to the next statement that looks.
pub async fn claim<C: GenericClient>(
    tx: &C,
    scope: &str,
    key: &str,
    fingerprint: &[u8],
) -> Result<Claim> {
    let locked: bool = tx
        .cq_one(
            "SELECT pg_try_advisory_xact_lock(hashtextextended($1 || chr(31) || $2, 7))",
            &[&scope, &key],
        )
        .await?
        .get(0);
    if !locked {
        return Ok(Claim::InUse);
    }
    let row = tx
        .cq_opt(
            "SELECT fingerprint, status, body FROM idempotency_keys WHERE scope = $1 AND key = $2",
            &[&scope, &key],
        )
        .await?;
    Ok(match row {
        None => Claim::Fresh,
        Some(r) if r.get::<_, &[u8]>("fingerprint") != fingerprint => Claim::Mismatch,
        Some(r) => Claim::Replay(Stored {
            status: r.get::<_, i16>("status") as u16,
            body: r.get("body"),
        }),
    })
}

/// Stores the answer under `key`, in the transaction that did the work.
pub async fn record<C: GenericClient>(
    tx: &C,
    scope: &str,
    key: &str,
    fingerprint: &[u8],
    answer: &Stored,
) -> Result<()> {
    tx.cexec(
        "INSERT INTO idempotency_keys (scope, key, fingerprint, status, body)
         VALUES ($1, $2, $3, $4, $5)",
        &[
            &scope,
            &key,
            &fingerprint,
            &(answer.status as i16),
            &answer.body,
        ],
    )
    .await?;
    Ok(())
}

/// Deletes keys older than `retention`; returns how many.
pub async fn prune<C: GenericClient>(client: &C, retention: Duration) -> Result<u64> {
    let secs = retention.as_secs() as i64;
    Ok(client
        .cexec(
            "DELETE FROM idempotency_keys WHERE created_at < now() - $1::bigint * interval '1 second'",
            &[&secs],
        )
        .await?)
}
