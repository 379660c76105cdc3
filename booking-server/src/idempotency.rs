//! `Idempotency-Key` for POSTs (Stripe's semantics): the answer is stored with the work
//! in one transaction and replayed to retries.
//!
//! A POST handler reads the key with [`RequestKey::read`] (before the path's id: the
//! order of checks of API.md), places it in the show the request names once that id is
//! parsed ([`RequestKey::for_show`], or [`RequestKey::without_show`] for a request of no
//! show), then calls [`Idempotency::begin`], which opens a transaction and claims the
//! key in it or answers from storage, does its work inside that transaction (library
//! operations nest as savepoints), and ends with [`Idempotency::finish`], which stores
//! the answer (unless it is a 5xx, which may be retried for real) and commits.
//!
//! A key belongs to its caller and to its show: every read and write of a key names
//! the show, so that with the tables distributed by show a keyed request touches its
//! show's node alone. The same key sent for two shows is two keys.

use crate::http::{self, ApiError, Reply};
use booking_core::deadpool_postgres::{Client, Transaction};
use booking_core::idempotency::{self, Claim, Key, Stored};
use booking_core::{Actor, ShowId, UserId};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, StatusCode};
use sha2::{Digest, Sha256};

/// The key of one request, if it sent one, placed in the request's show: made by
/// [`RequestKey::for_show`] or [`RequestKey::without_show`].
pub struct Idempotency {
    key: Option<Key>,
}

/// The key of one request as read from its headers, scoped to its caller and bound to
/// its fingerprint, not yet placed in a show: the path's id is parsed after the key.
/// The only way to an [`Idempotency`], so that no handler forgets the show.
#[must_use = "a key is used once placed in its show: `for_show` or `without_show`"]
pub struct RequestKey {
    key: Option<Key>,
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

impl RequestKey {
    /// The key of the request (read by [`http::idempotency_key`]), scoped to its caller
    /// and bound to a fingerprint of its method, path and body.
    pub fn read(
        headers: &HeaderMap,
        scope: Scope<'_>,
        method: &Method,
        path: &str,
        body: &[u8],
    ) -> Result<RequestKey, ApiError> {
        let Some(key) = http::idempotency_key(headers)? else {
            return Ok(RequestKey { key: None });
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
        Ok(RequestKey {
            key: Some(Key {
                show: None,
                scope,
                key: key.to_owned(),
                fingerprint: h.finalize().to_vec(),
            }),
        })
    }

    /// The key of a request on `show`: its path's show (`/shows/{id}/...`), or the
    /// show of the hold or booking its path names (`HoldId::show`, `BookingId::show`).
    pub fn for_show(self, show: ShowId) -> Idempotency {
        Idempotency {
            key: self.key.map(|k| Key {
                show: Some(show),
                ..k
            }),
        }
    }

    /// The key of a request that names no show (`POST /shows`, `POST /venues`): stored
    /// under show 0.
    pub fn without_show(self) -> Idempotency {
        Idempotency { key: self.key }
    }
}

impl Idempotency {
    /// Whether the request sent a key.
    pub fn is_keyed(&self) -> bool {
        self.key.is_some()
    }

    /// The request's key as the hold batcher carries it (`None` without one).
    pub fn batch_key(&self) -> Option<Key> {
        self.key.clone()
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
        answer_claim(idempotency::claim(tx, k).await?)
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
            idempotency::record(&tx, k, &stored).await?;
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
