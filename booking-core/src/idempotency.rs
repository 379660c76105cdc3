//! Idempotency keys: storing the answer to a request in the same transaction as its
//! work, and replaying it to a retry.
//!
//! Use inside one transaction: [`claim`] the key first; on [`Claim::Fresh`] do the work
//! in the same transaction (the operations of this crate nest as savepoints), then
//! [`record`] the answer and commit. Work and answer land together or not at all, so
//! a retry after any crash either replays the answer or does the work for the first
//! time — never twice.
//!
//! A key belongs to its caller (`scope`) and to the show its request names
//! ([`Key::show`]): every statement here names the show, so that with the tables
//! distributed by show each runs on the show's node alone. The same key sent for two
//! shows is two keys.

use crate::database::Cached;
use crate::domain::ShowId;
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

/// Claims `key` for the current transaction (`tx` must be one).
///
/// A transaction-scoped advisory lock marks the key as in use until commit or rollback:
/// a concurrent duplicate sees [`Claim::InUse`] at once instead of waiting, and after
/// the first commits its answer is visible to the next statement that looks.
///
/// The lock is on a hash of the show, the scope and the key, the same in every
/// statement of this crate that claims keys: `show || chr(31) || scope || chr(31) ||
/// key` (scopes and keys are visible ASCII, so the separator cannot be part of them).
pub async fn claim<C: GenericClient>(tx: &C, key: &Key) -> Result<Claim> {
    let show = key.show_param();
    let locked: bool = tx
        .cq_one(
            "SELECT pg_try_advisory_xact_lock(hashtextextended(
                        $1::bigint::text || chr(31) || $2 || chr(31) || $3, 7))",
            &[&show, &key.scope, &key.key],
        )
        .await?
        .get(0);
    if !locked {
        return Ok(Claim::InUse);
    }
    let row = tx
        .cq_opt(
            "SELECT fingerprint, status, body FROM idempotency_keys
              WHERE show_id = $1 AND scope = $2 AND key = $3",
            &[&show, &key.scope, &key.key],
        )
        .await?;
    Ok(match row {
        None => Claim::Fresh,
        Some(r) if r.get::<_, &[u8]>("fingerprint") != key.fingerprint.as_slice() => {
            Claim::Mismatch
        }
        Some(r) => Claim::Replay(Stored {
            status: r.get::<_, i16>("status") as u16,
            body: r.get("body"),
        }),
    })
}

/// Stores the answer under `key`, in the transaction that did the work.
pub async fn record<C: GenericClient>(tx: &C, key: &Key, answer: &Stored) -> Result<()> {
    tx.cexec(
        "INSERT INTO idempotency_keys (show_id, scope, key, fingerprint, status, body)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &key.show_param(),
            &key.scope,
            &key.key,
            &key.fingerprint,
            &(answer.status as i16),
            &answer.body,
        ],
    )
    .await?;
    Ok(())
}

/// Deletes keys older than `retention`, of every show; returns how many.
pub async fn prune<C: GenericClient>(client: &C, retention: Duration) -> Result<u64> {
    let secs = retention.as_secs() as i64;
    Ok(client
        .cexec(
            "DELETE FROM idempotency_keys WHERE created_at < now() - $1::bigint * interval '1 second'",
            &[&secs],
        )
        .await?)
}

/// A request's key: the show and caller it belongs to, the key itself, and the request
/// it is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// The show the request names (its path's show, or the show of the hold or booking
    /// it names); `None` for a request of no show (creating a show or a venue), stored
    /// as show 0. Keys of different shows never meet: the same key sent for two shows
    /// is two keys.
    pub show: Option<ShowId>,
    /// Whose key it is (`user:alice`, `admin`).
    pub scope: String,
    /// The key the client sent.
    pub key: String,
    /// What request the key is bound to (the server's hash of method, path and body).
    pub fingerprint: Vec<u8>,
}

impl Key {
    /// The `show_id` the key is stored under (0: no show).
    pub(crate) fn show_param(&self) -> i64 {
        self.show.map_or(0, ShowId::get)
    }

    /// What tells two keys apart: a key named twice in one statement is the same
    /// (show, scope, key).
    pub(crate) fn identity(&self) -> (i64, &str, &str) {
        (self.show_param(), &self.scope, &self.key)
    }
}

/// [`claim`] for many keys in one statement, in the current transaction (`tx` must be
/// one): each key is try-locked (never waiting: no lock order to keep) and looked up.
/// A key named twice is [`Claim::InUse`] after its first (the lock is the session's, so
/// the second would get it too).
///
/// The lookup reads the statement's snapshot, taken before the locks: a request that
/// stored its answer and committed in between is not seen, and its key looks
/// [`Claim::Fresh`]. [`record_many_and_commit`] then fails on the key's primary key, and with it
/// the whole transaction: nothing is done twice, and the caller retries each request
/// through [`claim`], which sees the answer.
pub async fn claim_many<C: GenericClient>(tx: &C, keys: &[&Key]) -> Result<Vec<Claim>> {
    let mut first: std::collections::HashMap<(i64, &str, &str), usize> = Default::default();
    let mut unique: Vec<&Key> = Vec::new();
    let mut at = Vec::with_capacity(keys.len());
    for k in keys {
        match first.entry(k.identity()) {
            std::collections::hash_map::Entry::Occupied(_) => at.push(None),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(unique.len());
                at.push(Some(unique.len()));
                unique.push(k);
            }
        }
    }
    let shows: Vec<i64> = unique.iter().map(|k| k.show_param()).collect();
    let scopes: Vec<&str> = unique.iter().map(|k| k.scope.as_str()).collect();
    let names: Vec<&str> = unique.iter().map(|k| k.key.as_str()).collect();
    // The lookup is a lateral subquery kept apart (`OFFSET 0`), so it can only be a
    // probe per key. As a plain join, the generic plan (`force_generic_plan`) made
    // while the table was small is a hash join over a scan of the whole table, and it
    // stays the plan of the pooled connection while the table grows: measured
    // 6.4 ms per claim at 20,000 keys, most of a keyed batch's extra cost.
    let rows = tx
        .cq(
            "WITH k AS MATERIALIZED (
                 SELECT n, show_id, scope, key,
                        pg_try_advisory_xact_lock(hashtextextended(
                            show_id::text || chr(31) || scope || chr(31) || key, 7)) AS got
                   FROM unnest($1::bigint[], $2::text[], $3::text[])
                        WITH ORDINALITY AS k(show_id, scope, key, n)
             )
             SELECT k.got, ik.fingerprint, ik.status, ik.body
               FROM k LEFT JOIN LATERAL (
                        SELECT fingerprint, status, body FROM idempotency_keys ik
                         WHERE k.got AND ik.show_id = k.show_id AND ik.scope = k.scope
                           AND ik.key = k.key
                        OFFSET 0
                    ) ik ON true
              ORDER BY k.n",
            &[&shows, &scopes, &names],
        )
        .await?;
    let claims: Vec<Claim> = rows
        .iter()
        .zip(&unique)
        .map(|(r, k)| {
            let found = r
                .get::<_, Option<&[u8]>>("fingerprint")
                .map(|print| (print, r.get::<_, i16>("status"), r.get("body")));
            claim_from(r.get("got"), found, &k.fingerprint)
        })
        .collect();
    Ok(at
        .into_iter()
        .map(|n| n.map_or(Claim::InUse, |n| claims[n].clone()))
        .collect())
}

/// A claim from what a statement found: whether it got the key's lock, and the stored
/// answer's fingerprint, status and body if there was one (looked up only once locked).
pub(crate) fn claim_from(
    locked: bool,
    found: Option<(&[u8], i16, Vec<u8>)>,
    fingerprint: &[u8],
) -> Claim {
    match (locked, found) {
        (false, _) => Claim::InUse,
        (true, None) => Claim::Fresh,
        (true, Some((print, _, _))) if print != fingerprint => Claim::Mismatch,
        (true, Some((_, status, body))) => Claim::Replay(Stored {
            status: status as u16,
            body,
        }),
    }
}

/// [`record`] for many keys in one statement, then `COMMIT`, sent together (one round
/// trip), in the transaction that did their work (opened with `BEGIN` on `client`,
/// each key claimed [`Claim::Fresh`] by [`claim_many`] in it). A key stored meanwhile
/// is a unique violation: the insert fails, the `COMMIT` after it is a rollback, and
/// the error is returned.
pub async fn record_many_and_commit(
    client: &deadpool_postgres::Client,
    answers: &[(&Key, &Stored)],
) -> Result<()> {
    let (shows, scopes, names, prints, statuses, bodies) = columns(answers);
    // Prepared first: the insert must be on the wire before the `COMMIT` (a statement
    // still being prepared would let the `COMMIT` overtake it).
    let insert = client
        .prepare_cached(
            "INSERT INTO idempotency_keys (show_id, scope, key, fingerprint, status, body)
             SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bytea[],
                                  $5::int2[], $6::bytea[])",
        )
        .await?;
    let (stored, committed) = futures_util::future::join(
        async {
            match answers.is_empty() {
                true => Ok(0),
                false => {
                    client
                        .execute(
                            &insert,
                            &[&shows, &scopes, &names, &prints, &statuses, &bodies],
                        )
                        .await
                }
            }
        },
        client.batch_execute("COMMIT"),
    )
    .await;
    stored?;
    committed?;
    Ok(())
}

/// Stores answers decided without the database (refusals of seats known taken), many in
/// one statement that commits on its own: each key is try-locked as [`claim`] does and
/// stored unless it is there already. For each answer, in order:
/// - `Some(Claim::Fresh)`: stored now; send it;
/// - `Some(Claim::InUse)`: another request runs under the key (or the key is named
///   twice: the second is in use);
/// - `Some(Claim::Replay(_))` or `Some(Claim::Mismatch)`: the key was stored before;
/// - `None`: stored by a transaction that committed while this statement ran (its
///   snapshot does not show the answer): undecided, the caller must take the database
///   path.
pub async fn store_decided<C: GenericClient>(
    client: &C,
    answers: &[(&Key, &Stored)],
) -> Result<Vec<Option<Claim>>> {
    let (shows, scopes, names, prints, statuses, bodies) = columns(answers);
    // Every key once: a key twice in one INSERT would make the statement fail.
    let mut seen = std::collections::HashSet::new();
    let twice: Vec<bool> = answers
        .iter()
        .map(|(k, _)| !seen.insert(k.identity()))
        .collect();
    // The lookup is a probe per key, as in `claim_many` (see there why lateral).
    let rows = client
        .cq(
            "WITH k AS MATERIALIZED (
                 SELECT n, show_id, scope, key, fp, status, body, twice,
                        NOT twice AND pg_try_advisory_xact_lock(hashtextextended(
                            show_id::text || chr(31) || scope || chr(31) || key, 7)) AS got
                   FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bytea[], $5::int2[],
                               $6::bytea[], $7::bool[])
                        WITH ORDINALITY AS k(show_id, scope, key, fp, status, body, twice, n)
             ), ins AS (
                 INSERT INTO idempotency_keys (show_id, scope, key, fingerprint, status, body)
                 SELECT show_id, scope, key, fp, status, body FROM k WHERE got
                 ON CONFLICT (show_id, scope, key) DO NOTHING
                 RETURNING show_id, scope, key
             )
             SELECT k.got, ins.key IS NOT NULL AS stored, ik.fingerprint, ik.status, ik.body
               FROM k
               LEFT JOIN ins
                      ON ins.show_id = k.show_id AND ins.scope = k.scope AND ins.key = k.key
               LEFT JOIN LATERAL (
                        SELECT fingerprint, status, body FROM idempotency_keys ik
                         WHERE k.got AND ik.show_id = k.show_id AND ik.scope = k.scope
                           AND ik.key = k.key
                        OFFSET 0
                    ) ik ON true
              ORDER BY k.n",
            &[&shows, &scopes, &names, &prints, &statuses, &bodies, &twice],
        )
        .await?;
    Ok(rows
        .iter()
        .zip(answers)
        .map(|(r, (k, _))| {
            if !r.get::<_, bool>("got") {
                return Some(Claim::InUse);
            }
            if r.get::<_, bool>("stored") {
                return Some(Claim::Fresh);
            }
            // The snapshot is the statement's: an answer stored before it began is
            // seen, one committed while it ran is not.
            let print = r.get::<_, Option<&[u8]>>("fingerprint")?;
            Some(if print != k.fingerprint.as_slice() {
                Claim::Mismatch
            } else {
                Claim::Replay(Stored {
                    status: r.get::<_, i16>("status") as u16,
                    body: r.get("body"),
                })
            })
        })
        .collect())
}

type Columns<'a> = (
    Vec<i64>,
    Vec<&'a str>,
    Vec<&'a str>,
    Vec<&'a [u8]>,
    Vec<i16>,
    Vec<&'a [u8]>,
);

fn columns<'a>(answers: &[(&'a Key, &'a Stored)]) -> Columns<'a> {
    (
        answers.iter().map(|(k, _)| k.show_param()).collect(),
        answers.iter().map(|(k, _)| k.scope.as_str()).collect(),
        answers.iter().map(|(k, _)| k.key.as_str()).collect(),
        answers
            .iter()
            .map(|(k, _)| k.fingerprint.as_slice())
            .collect(),
        answers.iter().map(|(_, s)| s.status as i16).collect(),
        answers.iter().map(|(_, s)| s.body.as_slice()).collect(),
    )
}
