//! A hold in one round trip on a pooled connection, when the seats are free and nobody
//! else touches them meanwhile (the common case); anything else goes to [`hold_as`].

use super::take::{
    check, hold_as, named_types, snapshot_of, snapshot_sql, wanted_versions, write_ctes, written_by,
};
use super::{place_batch, Hold, HoldRequest};
use crate::database::Cached;
use crate::domain::{HoldId, SeatLabel};
use crate::engine::Engine;
use crate::error::Result;
use crate::feed;
use std::sync::LazyLock;

/// The statement of [`hold_pooled_as`]. Built once: it is on every hold's path.
static POOLED_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH snap AS ({snapshot}), go AS (
             SELECT count(snap.id) = cardinality($5::text[])
                    AND coalesce(bool_and(snap.clean AND snap.sells AND snap.show_on_sale
                                          AND snap.max_seats_per_user IS NULL
                                          AND snap.queue_max_seats IS NULL
                                          AND (w.version IS NULL OR w.version = snap.version)),
                                 false) AS ok
               FROM snap LEFT JOIN unnest($5::text[], $6::text[]) AS w(label, version)
                 ON w.label = snap.label
         ), locked AS (
             SELECT id, xmin::text AS x FROM seats
              WHERE show_id = $1 AND id IN (SELECT id FROM snap) AND (SELECT ok FROM go)
              ORDER BY id FOR UPDATE
         ), verdict AS (
             SELECT (SELECT ok FROM go) AND count(*) = cardinality($5::text[])
                    AND coalesce(bool_and(l.x = snap.xmin), false) AS ok
               FROM locked l JOIN snap ON snap.id = l.id
         ), items AS (
             SELECT 1::bigint AS item, $1::bigint AS show_id, $2::uuid AS hold_id,
                    $3::text AS user_id, $4::int AS ttl, $8::text AS external_ref,
                    $9::text AS metadata,
                    (SELECT coalesce(sum(price), 0) FROM snap)::bigint AS total
              WHERE (SELECT ok FROM verdict)
         ), wanted AS (
             SELECT 1::bigint AS item, id, xmin, ticket_type, price
               FROM snap WHERE (SELECT ok FROM verdict)
         ), {write}
         SELECT snap.*, w.*
           FROM snap,
                (SELECT (SELECT ok FROM verdict) AS ok, h.created_at, h.expires_at,
                        (SELECT count(*) FROM taken) AS taken_count, {columns}
                   FROM (SELECT 1) AS one LEFT JOIN h ON true) AS w",
        snapshot = snapshot_sql("$1", "$5::text[]", "$7::text[]"),
        write = write_ctes("items", "wanted", Some("$1::bigint")),
        columns = feed::EVENT_COLUMNS,
    )
});

/// [`hold`](super::hold) on a pooled connection, in one round trip when the seats are
/// free and nobody else touches them meanwhile (the common case).
///
/// One statement (its own transaction) reads the wanted seats in its snapshot, without
/// locks. Only when every one is there, points at nothing and has the version the
/// caller named does it lock them in id order, check that no row changed since the
/// snapshot (same `xmin`), and then insert the hold, point the seats at it and write
/// the event. Otherwise it writes nothing and returns the snapshot:
/// - refusals (no such show or seat, a moved version, a taken seat) are answered from
///   it, without a lock taken, so a thousand callers on one taken seat do not queue;
/// - anything else (a seat pointing at a lapsed hold, a row that changed between the
///   snapshot and the lock, a show with a limit per buyer, which needs the user's lock
///   of `limit.rs`, a queued show, whose allowance needs the lock of the buyer's entry
///   (`queue/allowance.rs`), a hold of standing places, claimed in `places.rs`) is decided by
///   [`hold`](super::hold), in a transaction of its own
///   with the full re-read after the locks.
///
/// The lock wait is bounded by the connection's `lock_timeout`
/// ([`crate::PoolOptions::lock_timeout`]), as the statement runs outside an explicit
/// transaction.
#[tracing::instrument(skip_all, fields(show = %req.show, user = %req.user, seats = req.seats.len()))]
pub async fn hold_pooled(
    client: &mut deadpool_postgres::Client,
    engine: &Engine,
    req: &HoldRequest,
) -> Result<Hold> {
    hold_pooled_as(client, engine, req, HoldId::generate(req.show)).await
}

/// [`hold_pooled`], naming the new hold `hold_id` (which must be of `req.show`).
pub(crate) async fn hold_pooled_as(
    client: &mut deadpool_postgres::Client,
    engine: &Engine,
    req: &HoldRequest,
    hold_id: HoldId,
) -> Result<Hold> {
    let ttl = check(req, engine.settings())?;
    if engine.settings().distributed {
        // Citus plans this statement's CTEs apart and ships their results between
        // them (`invalid input syntax for type bigint: "PGCOPY"` on Citus 13.0.3, and
        // without `FOR UPDATE` no longer one snapshot), and refuses the places'
        // statement (`LIMIT` in a lateral subquery, "cannot push down this
        // subquery"): there the two-step hold, whose every statement the router runs
        // whole on the show's node.
        return hold_as(client, engine, req, hold_id).await;
    }
    if place_batch::batchable(req) {
        // Places only: the statement of a batch of places, for one.
        let outcome = place_batch::write(client, engine, &[(req, hold_id)]).await?;
        return match outcome.into_iter().next() {
            Some(place_batch::Outcome::Done(hold)) => Ok(*hold),
            Some(place_batch::Outcome::Refused(e)) => Err(e),
            _ => hold_as(client, engine, req, hold_id).await,
        };
    }
    if !req.areas.is_empty() {
        // Seats and places: the places are claimed after the seats' locks, in a
        // transaction.
        return hold_as(client, engine, req, hold_id).await;
    }
    let labels: Vec<&str> = req.seats.labels().iter().map(SeatLabel::as_str).collect();
    let wanted: Vec<Option<&str>> = wanted_versions(req).collect();
    let types: Vec<Option<&str>> = named_types(req).collect();
    let rows = client
        .cq(
            &POOLED_SQL,
            &[
                &req.show.get(),
                &hold_id.key(),
                &req.user.as_str(),
                &(ttl.secs() as i32),
                &labels,
                &wanted,
                &types,
                &req.reference.ref_param(),
                &req.reference.metadata_param(),
            ],
        )
        .await?;
    let snap = snapshot_of(req, &rows)?;
    let row = &rows[0];
    if !row.get::<_, bool>("ok") {
        // Free in our snapshot but not plainly so (a lapsed hold still points at a
        // seat), or someone touched a seat between our read and our lock: decide
        // carefully.
        return hold_as(client, engine, req, hold_id).await;
    }
    // The statement committed on its own (autocommit).
    let written = written_by(row, req)?;
    engine.committed(Some(written.expires_at));
    Ok(snap.into_hold(req, hold_id, written))
}
