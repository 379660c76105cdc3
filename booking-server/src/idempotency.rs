//! `Idempotency-Key` for POSTs (Stripe's semantics): the answer is stored with the work
//! in one transaction and replayed to retries.
//!
//! A POST handler calls [`Idempotency::begin`], which opens a transaction and claims
//! the key in it or answers from storage, does its work inside that transaction
//! (library operations nest as savepoints), and ends with [`Idempotency::finish`],
//! which stores the answer (unless it is a 5xx, which may be retried for real) and
//! commits.

use crate::http::{self, ApiError, Reply};
use booking_core::deadpool_postgres::{Client, Transaction};
use booking_core::idempotency::{self, Claim, Stored};
use booking_core::{Actor, UserId};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, StatusCode};
use sha2::{Digest, Sha256};

/// The key of one request, if it sent one.
pub struct Idempotency {
    key: Option<KeyedRequest>,
}

struct KeyedRequest {
    scope: String,
    key: String,
    fingerprint: [u8; 32],
}

/// What [`Idempotency::begin`] found.
pub enum Begun<'c> {
    /// Do the work in this transaction, then [`Idempotency::finish`].
    Fresh(Transaction<'c>),
    /// Answer this (a replay) without doing anything.
    Answered(Reply),
}

/// Who the key belongs to: keys of different callers never collide.
pub enum Scope<'a> {
    /// The caller named by `X-User-Id`.
    User(&'a UserId),
    /// The holder of the admin token (one scope for every admin request).
    Admin,
}

impl<'a> Scope<'a> {
    /// The scope of `actor`'s keys.
    pub fn of(actor: &'a Actor) -> Scope<'a> {
        match actor {
            Actor::User(u) => Scope::User(u),
            Actor::Admin => Scope::Admin,
        }
    }
}

impl Idempotency {
    /// The key of the request (read by [`http::idempotency_key`]), scoped to its caller
    /// and bound to a fingerprint of its method, path and body.
    pub fn from_request(
        headers: &HeaderMap,
        scope: Scope<'_>,
        method: &Method,
        path: &str,
        body: &[u8],
    ) -> Result<Idempotency, ApiError> {
        let Some(key) = http::idempotency_key(headers)? else {
            return Ok(Idempotency { key: None });
        };
        let scope = match scope {
            Scope::User(u) => format!("user:{u}"),
            Scope::Admin => "admin".to_owned(),
        };
        let mut h = Sha256::new();
        for part in [method.as_str().as_bytes(), path.as_bytes(), body] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        Ok(Idempotency {
            key: Some(KeyedRequest {
                scope,
                key: key.to_owned(),
                fingerprint: h.finalize().into(),
            }),
        })
    }

    /// Whether the request sent a key.
    pub fn is_keyed(&self) -> bool {
        self.key.is_some()
    }

    /// The request's key as the hold batcher carries it (`None` without one).
    pub fn batch_key(&self) -> Option<idempotency::Key> {
        self.key.as_ref().map(|k| idempotency::Key {
            scope: k.scope.clone(),
            key: k.key.clone(),
            fingerprint: k.fingerprint.to_vec(),
        })
    }

    /// Opens the request's transaction and claims its key in it. A request that must not
    /// run (a replay, a reused key, a key in use) gets its answer, and the transaction is
    /// rolled back before the answer goes out: its advisory lock must not outlive it.
    pub async fn begin<'c>(&self, client: &'c mut Client) -> Result<Begun<'c>, ApiError> {
        let tx = client
            .transaction()
            .await
            .map_err(booking_core::Error::from)?;
        match self.claim(&tx).await {
            Ok(None) => Ok(Begun::Fresh(tx)),
            Ok(Some(answer)) => {
                let _ = tx.rollback().await;
                Ok(Begun::Answered(answer))
            }
            Err(e) => {
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }

    /// `Some(answer)` when the request must not run: a replay, a reused key, or a key in
    /// use by a request still running.
    async fn claim(&self, tx: &Transaction<'_>) -> Result<Option<Reply>, ApiError> {
        let Some(k) = &self.key else { return Ok(None) };
        answer_claim(idempotency::claim(tx, &k.scope, &k.key, &k.fingerprint).await?)
    }

    /// Turns the outcome of the work into the answer, stores it under the key (not a
    /// 5xx), and commits the work and the answer together.
    pub async fn finish(
        &self,
        tx: Transaction<'_>,
        outcome: Result<Reply, ApiError>,
    ) -> Result<Reply, ApiError> {
        let reply = outcome.unwrap_or_else(ApiError::into_reply);
        if reply.status.is_server_error() {
            // Nothing of a failed request stays (and its locks go before we answer).
            let _ = tx.rollback().await;
            return Ok(reply);
        }
        if let (Some(k), Some(stored)) = (&self.key, stored(&reply)) {
            idempotency::record(&tx, &k.scope, &k.key, &k.fingerprint, &stored).await?;
        }
        // A commit that fails after the server may have applied it leaves the outcome in
        // doubt: the client gets a 503 and retries with its key, which either replays the
        // stored answer or does the work for the first time.
        tx.commit().await.map_err(booking_core::Error::from)?;
        Ok(reply)
    }
}

/// What a key's claim answers: `None` when the request must run ([`Claim::Fresh`]), a
/// replay, or the error of a reused key or of a key in use.
pub fn answer_claim(claim: Claim) -> Result<Option<Reply>, ApiError> {
    match claim {
        Claim::Fresh => Ok(None),
        Claim::Replay(stored) => Ok(Some(replay(stored))),
        Claim::Mismatch => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            "This Idempotency-Key was used with a different request; use a new key.",
        )),
        Claim::InUse => Err(ApiError::new(
            StatusCode::CONFLICT,
            "idempotency_key_in_use",
            "A request with this Idempotency-Key is still running; retry when it has answered.",
        )),
    }
}

/// What is stored of `reply` under a key: its status and body, unless it is a 5xx
/// (which may be retried for real).
pub fn stored(reply: &Reply) -> Option<Stored> {
    (!reply.status.is_server_error()).then(|| Stored {
        status: reply.status.as_u16(),
        body: reply.body.to_vec(),
    })
}

fn replay(stored: Stored) -> Reply {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut reply = if stored.body.is_empty() {
        Reply::empty(status)
    } else {
        Reply::text(status, http::JSON, stored.body)
    };
    reply = reply.with_header(
        HeaderName::from_static("idempotent-replayed"),
        HeaderValue::from_static("true"),
    );
    reply
}
