//! Making a hold: all of the wanted seats, or none (the steps are in the module docs of
//! [`crate::holds`]).
//!
//! [`write_ctes`] is the one statement fragment that writes holds: the transaction of
//! [`hold`], the one round trip of [`super::hold_pooled`] (`pooled.rs`), the batches of
//! [`super::batch`] and best available all write through it.

pub(super) use super::checks::check;
use super::checks::{check_versions, refuse_taken};
pub(super) use super::snapshot::{named_types, snapshot_of, snapshot_sql, wanted_versions};
use super::snapshot::{snapshot, Candidate, Snapshot};
use super::{places, Hold, HoldRequest};
use crate::database::Cached;
use crate::database::{lock_timeout_value, SET_SHOW_LOCK_TIMEOUT};
use crate::domain::{HoldId, HoldTtl, Reference, SeatState, UserId};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::feed::{self, Cause, SeatEvent};
use crate::seats::{lapsed_version, HELD, LAPSED};
use crate::shows::PIN;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use futures_util::TryFutureExt;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

/// SQL: the locked seat row was last written by a transaction older than ours (or
/// frozen). A seat written by a younger transaction is refused even when free: see
/// step 3 of [`hold`]. Our transaction's id is the show's node's (`booking_xid`, see
/// migration V13), as the row's `xmin` is.
pub(crate) const WRITTEN_BEFORE_US: &str = "(xmin::text IN ('1', '2')
     OR ((booking_xid(show_id)::text::bigint - xmin::text::bigint) % 4294967296
         + 4294967296) % 4294967296 < 2147483648)";

/// SQL: [`WRITTEN_BEFORE_US`] of the row `s` (in statements that join other tables):
/// the rule for claiming places, checked on the newest row version a `FOR UPDATE` lock
/// reaches.
pub(crate) const S_WRITTEN_BEFORE_US: &str = "(s.xmin::text IN ('1', '2')
     OR ((booking_xid(s.show_id)::text::bigint - s.xmin::text::bigint) % 4294967296
         + 4294967296) % 4294967296 < 2147483648)";

/// Holds all of `req.seats` for `req.ttl`, or none of them.
///
/// Runs in its own transaction on a pooled client, or as a savepoint inside the
/// caller's transaction. Errors: [`Error::ShowNotFound`], [`Error::ShowCancelled`],
/// [`Error::NotOnSale`] (outside the show's sales window), [`Error::SeatNotFound`]
/// (naming the unknown labels), [`Error::StaleVersion`] (naming the seats whose
/// version moved), [`Error::SeatsUnavailable`] (naming the seats held, booked or
/// blocked), [`Error::Invalid`] (field `ticket_types`: a type the show does not have),
/// [`Error::TicketTypeUnavailable`], [`Error::UserLimitReached`] (the show's
/// `max_seats_per_user`),
/// [`Error::Busy`] when a row lock is not had within
/// [`Settings::lock_timeout`](crate::Settings::lock_timeout); [`Error::Invalid`] when
/// `req.if_versions` names a seat not among `req.seats`.
#[tracing::instrument(skip_all, fields(show = %req.show, user = %req.user, seats = req.seats.len()))]
pub async fn hold<C>(client: &mut C, engine: &Engine, req: &HoldRequest) -> Result<Hold>
where
    C: GenericClient + Send,
{
    hold_as(client, engine, req, HoldId::generate(req.show)).await
}

/// [`hold`], naming the new hold `hold_id` (which must be of `req.show`).
pub(crate) async fn hold_as<C>(
    client: &mut C,
    engine: &Engine,
    req: &HoldRequest,
    hold_id: HoldId,
) -> Result<Hold>
where
    C: GenericClient + Send,
{
    hold_seen(client, engine, req, hold_id, &mut false).await
}

/// [`hold_as`], setting `by_snapshot` when its refusal came from the snapshot read of
/// step 1 (what that snapshot showed, not what a lock found): the batcher remembers
/// those (`batch/taken.rs`).
pub(crate) async fn hold_seen<C>(
    client: &mut C,
    engine: &Engine,
    req: &HoldRequest,
    hold_id: HoldId,
    by_snapshot: &mut bool,
) -> Result<Hold>
where
    C: GenericClient + Send,
{
    let ttl = check(req, engine.settings())?;
    let tx = client.transaction().await?;
    let taking = take_seen(&tx, engine, req, by_snapshot).await?;
    // 6. Write: insert the hold, point the seats and places at it, wake the sweeper
    //    if needed.
    let (ids, seen, tickets) = taking.columns();
    let new = NewHold {
        id: hold_id,
        user: &req.user,
        reference: &req.reference,
        ttl,
    };
    let written = write_hold(&tx, &new, &ids, &seen, &tickets).await?;
    tx.commit().await?;
    engine.committed(Some(written.expires_at));
    Ok(taking.into_hold(req, hold_id, written))
}

/// What steps 1 to 5 of [`hold`] took for a request: its seats, locked and checked,
/// and its places, claimed; not yet written.
pub(super) struct Taking {
    snap: Snapshot,
    /// The seats' ids, ascending.
    ids: Vec<i64>,
    /// The version each seat was locked at.
    xmins: HashMap<i64, String>,
    places: Vec<places::Claimed>,
}

impl Taking {
    /// Every seat and place taken, in id order: ids, the versions they were locked at,
    /// and each one's ticket (type and price), as [`write_hold`] takes them.
    #[allow(clippy::type_complexity)]
    pub(super) fn columns(&self) -> (Vec<i64>, Vec<&str>, Vec<(&str, Option<i64>)>) {
        let by_id: HashMap<i64, &Candidate> =
            self.snap.by_label.values().map(|c| (c.id, c)).collect();
        let mut rows: Vec<(i64, &str, &str, Option<i64>)> = self
            .ids
            .iter()
            .map(|id| {
                let c = by_id[id];
                (
                    *id,
                    self.xmins[id].as_str(),
                    c.ticket_type.as_str(),
                    c.price,
                )
            })
            .chain(self.places.iter().map(|p| {
                (
                    p.id,
                    p.xmin.as_str(),
                    p.ticket.ticket_type.as_str(),
                    p.ticket.price,
                )
            }))
            .collect();
        rows.sort_unstable_by_key(|r| r.0);
        (
            rows.iter().map(|r| r.0).collect(),
            rows.iter().map(|r| r.1).collect(),
            rows.iter().map(|r| (r.2, r.3)).collect(),
        )
    }

    /// The new hold `hold_id` of `req` on what was taken, as `written`.
    pub(super) fn into_hold(self, req: &HoldRequest, hold_id: HoldId, written: Written) -> Hold {
        let mut hold = self.snap.into_hold(req, hold_id, written);
        places::add_to(&mut hold, self.places);
        hold
    }
}

/// Steps 1 to 5 of [`hold`] in the transaction `tx`: reads, locks and checks `req`'s
/// seats, claims its places and checks the buyer's limit for them (counted on top of
/// what the user has: a hold being added to counts already). Writes nothing.
pub(super) async fn take<C: GenericClient>(
    tx: &C,
    engine: &Engine,
    req: &HoldRequest,
) -> Result<Taking> {
    take_seen(tx, engine, req, &mut false).await
}

/// [`take`], setting `by_snapshot` when its refusal came from the snapshot read.
async fn take_seen<C: GenericClient>(
    tx: &C,
    engine: &Engine,
    req: &HoldRequest,
    by_snapshot: &mut bool,
) -> Result<Taking> {
    let lock_timeout = lock_timeout_value(engine.settings());
    let show = req.show.get();
    let bound: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&lock_timeout, &show];

    // 1. The snapshot read, pipelined with the lock bound and what the wanted places
    //    are sold as. A hold of places only claims them in the same round trip: it has
    //    no seat to lock first, and a claim never waits.
    let places_only = req.seats.is_empty();
    let (set, snap, place_tickets, early) = futures_util::join!(
        tx.cexec(SET_SHOW_LOCK_TIMEOUT, &bound).map_err(Error::from),
        snapshot(tx, req),
        places::tickets(tx, req),
        async {
            match places_only {
                true => places::claim(tx, req, engine.settings().distributed)
                    .await
                    .map(Some),
                false => Ok(None),
            }
        },
    );
    // A failed statement aborts the transaction, and each one pipelined after it then
    // fails with 25P02 ("current transaction is aborted"): the cause is the one failure
    // that is not 25P02 (a lock wait timed out, a worker lost on Citus), which is
    // reported. Not the first in the order written here: a statement not prepared yet
    // on this connection is prepared first, a round trip, and then sent after the
    // others (seen on Citus: the lock bound's 25P02 behind the snapshot's lock timeout).
    let errs = [
        set.as_ref().err(),
        snap.as_ref().err(),
        place_tickets.as_ref().err(),
        early.as_ref().err(),
    ];
    if errs.into_iter().flatten().any(Error::follows_a_failure) {
        // Each arm's result is an error: `?` returns it.
        match errs
            .iter()
            .position(|e| e.is_some_and(|e| !e.follows_a_failure()))
        {
            Some(0) => set.map(drop)?,
            Some(1) => snap.map(drop)?,
            Some(2) => place_tickets.map(drop)?,
            Some(3) => early.map(drop)?,
            _ => {}
        }
        return Err(Error::Invariant(
            "every failed statement failed with 25P02: none was the cause".into(),
        ));
    }
    set?;
    // A show that does not sell now, before anything is said of its seats.
    let snap = match snap {
        Err(e @ (Error::ShowCancelled | Error::NotOnSale { .. })) => return Err(e),
        other => other,
    };
    // Unknown seats, then unknown areas, before anything else is said of either.
    let (snap, place_tickets) = match (snap, place_tickets) {
        (Err(e @ Error::SeatNotFound { .. }), _) | (_, Err(e @ Error::AreaNotFound { .. })) => {
            return Err(e)
        }
        both => both,
    };
    let (mut snap, place_tickets) =
        match refusals_in_order(tx, req, snap, place_tickets, &early).await {
            Ok(both) => both,
            Err(e) => {
                *by_snapshot = true;
                return Err(e);
            }
        };

    // 2. Lock the candidates in the global seat order.
    let mut ids: Vec<i64> = snap.by_label.values().map(|c| c.id).collect();
    ids.sort_unstable();
    let mut xmins: HashMap<i64, String> = HashMap::new();
    if !ids.is_empty() {
        if let Err(e) = lock_and_check(tx, req, &ids, &mut snap.by_label, &mut xmins).await {
            // A show cancelled while we waited for a lock is said before its seats, as
            // in the snapshot: the cancellation's sweep, a younger transaction, may
            // rewrite a seat before our waiting lock gets it, and that seat is then
            // refused as written after us (seen once in CI in `lifecycle_race.rs`).
            if matches!(
                e,
                Error::SeatsUnavailable { .. } | Error::StaleVersion { .. }
            ) {
                crate::shows::check_on_sale(tx, req.show).await?;
            }
            return Err(e);
        }
    }

    // 4. The places, after the seats (a claim skips locked places: it never waits).
    let claimed = match early? {
        Some(rows) => rows,
        None => places::claim(tx, req, engine.settings().distributed).await?,
    };
    let places = places::assign(req, claimed, &place_tickets)?;

    // 4b. Does the show still sell, now that every seat and place is ours? A new
    //     statement sees a show cancellation that committed while we waited for a lock
    //     (it rewrote every seat and place of the show, so it had to wait for ours or
    //     we for its). See `shows/sale.rs`.
    crate::shows::check_on_sale(tx, req.show).await?;

    // 5. The buyer's limit, under the user's lock (after every row lock, as everywhere).
    if let Some(limit) = snap.max_seats_per_user {
        super::limit::check(
            tx,
            req.show,
            &req.user,
            snap.by_label.len() + places.len(),
            limit,
        )
        .await?;
    }

    // 6. A queued show: the buyer's admission and allowance, under the lock of their
    //    queue entry (the last lock taken; see `queue/allowance.rs`).
    if let Some(max_seats) = snap.queue_max_seats {
        crate::queue::allowance::check(
            tx,
            req.show,
            &req.user,
            snap.by_label.len() + places.len(),
            max_seats,
        )
        .await?;
    }
    Ok(Taking {
        snap,
        ids,
        xmins,
        places,
    })
}

/// What step 1 found, refused in the documented order: versions, then taken seats and
/// short areas together (`409 seats_unavailable`), then ticket types (`400` before
/// `409`, the seats' and the areas' refusals in one answer). `early`: the claim of a
/// hold of places only, made in step 1.
async fn refusals_in_order<C: GenericClient>(
    tx: &C,
    req: &HoldRequest,
    snap: Result<Snapshot>,
    place_tickets: Result<Vec<places::PlaceTicket>>,
    early: &Result<Option<Vec<places::Row>>>,
) -> Result<(Snapshot, Vec<places::PlaceTicket>)> {
    let snap = match snap {
        Err(Error::SeatsUnavailable { seats, .. }) => {
            // Say which areas are short too, as the caller may want to change both.
            let areas = match req.areas.is_empty() {
                true => Vec::new(),
                false => places::short(tx, req).await?,
            };
            return Err(Error::SeatsUnavailable { seats, areas });
        }
        Err(e @ Error::StaleVersion { .. }) => return Err(e),
        other => other,
    };
    if (snap.is_err() || place_tickets.is_err()) && !req.areas.is_empty() {
        // A short area is said before ticket types, as for a taken seat.
        let areas = match early {
            Err(Error::SeatsUnavailable { areas, .. }) => areas.clone(),
            Ok(Some(_)) => Vec::new(),
            _ => places::short(tx, req).await?,
        };
        if !areas.is_empty() {
            return Err(Error::SeatsUnavailable {
                seats: Vec::new(),
                areas,
            });
        }
    }
    match (snap, place_tickets) {
        (Ok(snap), Ok(tickets)) => Ok((snap, tickets)),
        (Err(e @ Error::Invalid { .. }), _) | (_, Err(e @ Error::Invalid { .. })) => Err(e),
        (
            Err(Error::TicketTypeUnavailable { tickets, .. }),
            Err(Error::TicketTypeUnavailable { areas, .. }),
        ) => Err(Error::TicketTypeUnavailable { tickets, areas }),
        (Err(e), _) | (_, Err(e)) => Err(e),
    }
}

/// Steps 2 and 3 of [`hold`]: locks the wanted seats `ids` (ascending) and refuses the
/// hold if any is taken now or its version moved; records each row's `xmin`.
async fn lock_and_check<C: GenericClient>(
    tx: &C,
    req: &HoldRequest,
    ids: &[i64],
    by_label: &mut HashMap<String, Candidate>,
    xmins: &mut HashMap<i64, String>,
) -> Result<()> {
    let show = req.show.get();
    let locked = tx
        .cq(
            &format!(
                "SELECT id, hold_id, booking_id IS NOT NULL OR block_id IS NOT NULL AS booked,
                        xmin::text AS xmin,
                        {WRITTEN_BEFORE_US} AS written_before_us
                   FROM seats WHERE show_id = $1 AND id = ANY($2)
                  ORDER BY id FOR UPDATE"
            ),
            &[&show, &ids],
        )
        .await?;
    if locked.len() != ids.len() {
        return Err(Error::Invariant(format!(
            "locked {} of {} seats",
            locked.len(),
            ids.len()
        )));
    }

    // 3. What do the locked rows point at now? A new statement sees every commit so far.
    let pointed: Vec<Uuid> = locked
        .iter()
        .filter_map(|r| r.get::<_, Option<Uuid>>("hold_id"))
        .collect();
    let mut hold_state: HashMap<Uuid, (bool, bool)> = HashMap::new();
    if !pointed.is_empty() {
        for r in tx
            .cq(
                &format!(
                    "SELECT h.id, {HELD} AS live, {LAPSED} AS lapsed
                       FROM holds h WHERE h.show_id = $1 AND h.id = ANY($2)"
                ),
                &[&show, &pointed],
            )
            .await?
        {
            hold_state.insert(r.get("id"), (r.get("live"), r.get("lapsed")));
        }
    }
    for r in &locked {
        let id: i64 = r.get("id");
        let xmin: String = r.get("xmin");
        let (live, lapsed) = match r.get::<_, Option<Uuid>>("hold_id") {
            Some(h) => hold_state.get(&h).copied().unwrap_or((false, false)),
            None => (false, false),
        };
        let c = by_label
            .values_mut()
            .find(|c| c.id == id)
            .ok_or_else(|| Error::Invariant(format!("locked unknown seat {id}")))?;
        // A seat written by a transaction younger than ours (it changed hands while we
        // waited for its lock) is refused even if it is free now: taking it would put
        // our event before that transaction's in the feed's (xid, id) order although we
        // commit after it. See `feed`.
        c.taken = r.get::<_, bool>("booked") || live || !r.get::<_, bool>("written_before_us");
        c.version = lapsed_version(&xmin, lapsed);
        xmins.insert(id, xmin);
    }
    check_versions(req, |l| by_label[l.as_str()].version.as_str())?;
    refuse_taken(req, |l| by_label[l.as_str()].taken)
}

/// SQL: the CTEs that write new holds, the one definition of a hold's write, shared by
/// every path that makes holds (one, one in a round trip, a batch, best available):
/// - `h` inserts each hold of `items` (columns `item`, `show_id`, `hold_id`, `user_id`,
///   `ttl` in seconds, `total`, `external_ref`, `metadata` as text) and returns `hold_show`, `hold_key`, `created_at`,
///   `expires_at`;
/// - `hs` records the seats `wanted` (columns `item`, `id`, `xmin`, `ticket_type`,
///   `price`) of each, sold as `ticket_type` at `price`;
/// - `taken` points those seats at their hold, each only if its row is still at the
///   version read under the caller's lock (`xmin`), and returns the rows it wrote
///   (`item`, `show_id`, `hold_id`, `id`, `label`, `xmin`): fewer rows than wanted
///   means a seat changed under our lock, which callers report as [`Error::Invariant`];
/// - `ev` writes one `hold` event per hold (see [`feed::EventsSql`]).
///
/// Callers lock the wanted seats in id order before this runs, and name in `items`
/// only the holds they decided to write. `show` is the show of the seats written: a
/// parameter (`Some("$1::bigint")`) when the statement is of one show, which Citus
/// needs to route each write to that show's shard alone (joined on `i.show_id` the
/// update and the event went to every shard, in a two-phase commit across every
/// worker), or `None` for a batch of several shows (plain PostgreSQL only), each row
/// then written with its item's show. The inserts take the show from its row
/// ([`PIN`]) for the same reason.
pub(super) fn write_ctes(items: &str, wanted: &str, show: Option<&str>) -> String {
    let (show, event_show) = match show {
        Some(one) => (one, one),
        None => ("i.show_id", "t.show_id"),
    };
    format!(
        "h AS (
             INSERT INTO holds AS hh (show_id, id, user_id, created_at, expires_at, total,
                                      external_ref, metadata)
             SELECT p.pin, i.hold_id, i.user_id, booking_now(p.pin),
                    booking_now(p.pin) + i.ttl * interval '1 second',
                    i.total, i.external_ref, i.metadata::jsonb
               FROM {items} i JOIN {PIN} p ON p.pin = {show}
             RETURNING hh.show_id AS hold_show, hh.id AS hold_key, hh.created_at, hh.expires_at
         ), hs AS (
             INSERT INTO hold_seats (show_id, hold_id, seat_id, ticket_type, price)
             SELECT p.pin, i.hold_id, w.id, w.ticket_type, w.price
               FROM {wanted} w JOIN {items} i USING (item) JOIN {PIN} p ON p.pin = {show}
         ), taken AS (
             UPDATE seats s SET hold_id = i.hold_id
               FROM {wanted} w JOIN {items} i USING (item)
                    JOIN seats o ON o.show_id = {show} AND o.id = w.id
              WHERE s.show_id = {show} AND s.id = w.id AND s.xmin::text = w.xmin
             RETURNING w.item, s.show_id, s.hold_id, s.id, s.label, s.xmin, s.area,
                       o.hold_id IS NOT NULL AS was_held
         ), {events}",
        events = feed::EventsSql {
            show: event_show,
            cause: Cause::Hold,
            state: SeatState::Held,
            until: Some("h.expires_at"),
            from: "taken t JOIN h ON h.hold_show = t.show_id AND h.hold_key = t.hold_id",
            per: Some("t.item, t.show_id"),
            // A place taken over from a lapsed hold was held, not available.
            was: Some("CASE WHEN t.was_held AND t.area IS NOT NULL THEN 'held' END"),
        }
        .cte_of(&feed::Subject {
            hold: Some("t.hold_id"),
            ..Default::default()
        }),
    )
}

/// When a hold written by [`write_hold`] was made and when it lapses (database clock).
pub(crate) struct Written {
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The seat event the statement wrote (see [`Hold::event`]).
    pub event: Option<Arc<SeatEvent>>,
}

/// Who a hold written by [`write_hold`] is for, and for how long.
pub(crate) struct NewHold<'a> {
    pub id: HoldId,
    pub user: &'a UserId,
    pub reference: &'a Reference,
    pub ttl: HoldTtl,
}

/// Step 5 of [`hold`], shared with [`crate::best`]: inserts the hold, points the seats
/// `ids` (ascending, locked by the caller, read at row versions `seen`, sold as
/// `tickets`: type and price of each) at it and writes the change-feed event, all in
/// one statement; the total is the sum of the prices. A row count other than
/// `ids.len()` means a seat changed under our lock: [`Error::Invariant`].
pub(crate) async fn write_hold<C: GenericClient>(
    tx: &C,
    new: &NewHold<'_>,
    ids: &[i64],
    seen: &[&str],
    tickets: &[(&str, Option<i64>)],
) -> Result<Written> {
    let sql = format!(
        "WITH wanted AS (
             SELECT 1::bigint AS item, id, xmin, ticket_type, price
               FROM unnest($5::bigint[], $6::text[], $7::text[], $8::bigint[])
                    AS w(id, xmin, ticket_type, price)
         ), items AS (
             SELECT 1::bigint AS item, $1::bigint AS show_id, $2::uuid AS hold_id,
                    $3::text AS user_id, $4::int AS ttl, $9::text AS external_ref,
                    $10::text AS metadata,
                    (SELECT coalesce(sum(price), 0) FROM wanted)::bigint AS total
         ), {write}
         SELECT h.created_at, h.expires_at, (SELECT count(*) FROM taken) AS taken, {columns}
           FROM h",
        write = write_ctes("items", "wanted", Some("$1::bigint")),
        columns = feed::EVENT_COLUMNS,
    );
    let types: Vec<&str> = tickets.iter().map(|(t, _)| *t).collect();
    let prices: Vec<Option<i64>> = tickets.iter().map(|(_, p)| *p).collect();
    let row = tx
        .cq_one(
            &sql,
            &[
                &new.id.show().get(),
                &new.id.key(),
                &new.user.as_str(),
                &(new.ttl.secs() as i32),
                &ids,
                &seen,
                &types,
                &prices,
                &new.reference.ref_param(),
                &new.reference.metadata_param(),
            ],
        )
        .await?;
    let taken: i64 = row.get("taken");
    if taken != ids.len() as i64 {
        return Err(Error::Invariant(format!(
            "pointed {taken} of {} locked seats at the new hold",
            ids.len()
        )));
    }
    Ok(Written {
        created_at: row.get("created_at"),
        expires_at: row.get("expires_at"),
        event: feed::written_event(&row, new.id.show(), Cause::Hold)?,
    })
}

/// What a snapshot-and-write statement ([`hold_pooled`], [`batch`]) wrote for `req`,
/// from its result row (`created_at`, `expires_at`, `taken_count` and
/// [`feed::EVENT_COLUMNS`]). Pointing fewer seats than asked for at the new hold,
/// under our locks, is [`Error::Invariant`].
pub(super) fn written_by(row: &tokio_postgres::Row, req: &HoldRequest) -> Result<Written> {
    let taken: i64 = row.get("taken_count");
    if taken != req.size() as i64 {
        return Err(Error::Invariant(format!(
            "pointed {taken} of {} locked seats and places at the new hold",
            req.size()
        )));
    }
    Ok(Written {
        created_at: row.get("created_at"),
        expires_at: row.get("expires_at"),
        event: feed::written_event(row, req.show, Cause::Hold)?,
    })
}
