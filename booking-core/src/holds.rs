//! Holds: taking seats all-or-none for a while, reading, extending and releasing them.
//!
//! # Why this cannot double-book or deadlock
//!
//! A hold is one transaction:
//! 1. Read the wanted seats in the statement's snapshot, without locks. Seats that are
//!    already held or booked there are refused at once: a thousand callers on one taken
//!    seat do not queue on its lock.
//! 2. Lock the remaining candidates with `SELECT ... FOR UPDATE ... ORDER BY id`. Every
//!    transaction in this crate that locks several seats locks them in ascending id
//!    order, so two of them can never wait on each other in a cycle.
//! 3. Re-read what the locked rows point at in a *new* statement (in READ COMMITTED a
//!    new statement sees everything committed before it, including the hold of a
//!    transaction we just waited for) and refuse if any seat is now taken.
//! 4. Insert the hold and point the seats at it with `UPDATE ... WHERE xmin = $seen`:
//!    we hold the row locks, so a row count other than the number of seats is a bug
//!    and is reported as [`Error::Invariant`], never papered over.
//!
//! Expiry is decided by the database clock (`now()`), when read: a hold past its
//! `expires_at` blocks nobody even before the sweeper visits it, and its seats are taken
//! over by the next hold directly.

use crate::database::Cached;
use crate::database::{lock_timeout_value, Settings, SET_LOCK_TIMEOUT};
use crate::domain::{
    BookingId, HoldId, HoldStatus, HoldTtl, SeatLabel, SeatSelection, ShowId, UserId, Version,
};
use crate::error::{Error, Result};
use crate::feed::{Cause, SeatEvent};
use crate::seats::{HELD, JOIN_HOLD, VERSION};
use crate::{feed, sweeper};
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use futures_util::TryFutureExt;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use uuid::Uuid;

pub mod batch;

/// A request to hold seats, already parsed.
#[derive(Debug, Clone)]
pub struct HoldRequest {
    pub show: ShowId,
    pub user: UserId,
    pub seats: SeatSelection,
    /// `None`: [`Settings::default_ttl`].
    pub ttl: Option<HoldTtl>,
    /// Hold only if each named seat (one of `seats`) still has this version.
    pub if_versions: Vec<(SeatLabel, Version)>,
}

/// A hold as its owner sees it.
#[derive(Debug, Clone, Serialize)]
pub struct Hold {
    pub hold_id: HoldId,
    pub show_id: ShowId,
    pub user_id: UserId,
    /// In seat-map order (row, then number).
    pub seats: Vec<SeatLabel>,
    pub status: HoldStatus,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Sum of the seats' prices in minor units (seats without a price count 0).
    pub total: i64,
    pub currency: String,
    /// Set once the hold is confirmed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub booking_id: Option<BookingId>,
    /// The seat event this call wrote ([`hold`], [`hold_pooled`], [`release`]), once
    /// committed: the caller's process may apply it to what it caches before the feed
    /// brings it (read your writes). Not part of the hold's JSON.
    #[serde(skip)]
    pub event: Option<Arc<SeatEvent>>,
}

/// Two holds are equal when they say the same; which call wrote which event is not
/// part of the hold (a hold read back equals the one its creation returned).
impl PartialEq for Hold {
    fn eq(&self, other: &Self) -> bool {
        let Hold {
            hold_id,
            show_id,
            user_id,
            seats,
            status,
            created_at,
            expires_at,
            total,
            currency,
            booking_id,
            event: _,
        } = self;
        *hold_id == other.hold_id
            && *show_id == other.show_id
            && *user_id == other.user_id
            && *seats == other.seats
            && *status == other.status
            && *created_at == other.created_at
            && *expires_at == other.expires_at
            && *total == other.total
            && *currency == other.currency
            && *booking_id == other.booking_id
    }
}

impl Eq for Hold {}

/// SQL: the locked seat row was last written by a transaction older than ours (or
/// frozen). A seat written by a younger transaction is refused even when free: see
/// step 3 of [`hold`].
pub(crate) const WRITTEN_BEFORE_US: &str = "(xmin::text IN ('1', '2')
     OR ((pg_current_xact_id()::text::bigint - xmin::text::bigint) % 4294967296
         + 4294967296) % 4294967296 < 2147483648)";

struct Candidate {
    id: i64,
    label: SeatLabel,
    price: Option<i64>,
    taken: bool,
    version: String,
    /// Seat-map order: (row index, number).
    order: (i32, i32),
}

/// Holds all of `req.seats` for `req.ttl`, or none of them.
///
/// Runs in its own transaction on a pooled client, or as a savepoint inside the
/// caller's transaction. Errors: [`Error::ShowNotFound`], [`Error::SeatNotFound`]
/// (naming the unknown labels), [`Error::StaleVersion`] (naming the seats whose
/// version moved), [`Error::SeatsUnavailable`] (naming the seats held or booked),
/// [`Error::Busy`] when a row lock is not had within [`Settings::lock_timeout`].
#[tracing::instrument(skip_all, fields(show = %req.show, user = %req.user, seats = req.seats.len()))]
pub async fn hold<C>(client: &mut C, settings: &Settings, req: &HoldRequest) -> Result<Hold>
where
    C: GenericClient + Send,
{
    hold_as(client, settings, req, HoldId::generate(req.show)).await
}

/// [`hold`], naming the new hold `hold_id` (which must be of `req.show`).
pub(crate) async fn hold_as<C>(
    client: &mut C,
    settings: &Settings,
    req: &HoldRequest,
    hold_id: HoldId,
) -> Result<Hold>
where
    C: GenericClient + Send,
{
    check_if_versions(req)?;
    let ttl = req.ttl.unwrap_or(settings.default_ttl);
    let show = req.show.get();
    let lock_timeout = lock_timeout_value(settings);

    let tx = client.transaction().await?;

    // 1. The snapshot read, pipelined with the lock bound.
    let (_, snap) = futures_util::future::try_join(
        tx.cexec(SET_LOCK_TIMEOUT, &[&lock_timeout])
            .map_err(Error::from),
        snapshot(&tx, req),
    )
    .await?;
    let Snapshot {
        currency,
        mut by_label,
    } = snap;

    // 2. Lock the candidates in the global seat order.
    let mut ids: Vec<i64> = by_label.values().map(|c| c.id).collect();
    ids.sort_unstable();
    let locked = tx
        .cq(
            &format!(
                "SELECT id, hold_id, booking_id IS NOT NULL AS booked, xmin::text AS xmin,
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
                "SELECT id, status = 'active' AND expires_at > now() AS live,
                        status = 'active' AND expires_at <= now() AS lapsed
                   FROM holds WHERE show_id = $1 AND id = ANY($2)",
                &[&show, &pointed],
            )
            .await?
        {
            hold_state.insert(r.get("id"), (r.get("live"), r.get("lapsed")));
        }
    }
    let mut xmins: HashMap<i64, String> = HashMap::new();
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
        c.version = if lapsed {
            format!("{xmin}x")
        } else {
            xmin.clone()
        };
        xmins.insert(id, xmin);
    }
    check_versions(req, |l| by_label[l.as_str()].version.as_str())?;
    refuse_taken(req, |l| by_label[l.as_str()].taken)?;

    // 4. Take them: insert the hold, point the seats at it, wake the sweeper if needed.
    let total: i64 = by_label.values().filter_map(|c| c.price).sum();
    let seen: Vec<&str> = ids.iter().map(|id| xmins[id].as_str()).collect();
    let written = write_hold(&tx, hold_id, &req.user, ttl, total, &ids, &seen).await?;
    tx.commit().await?;
    feed::changed();
    sweeper::hold_created(written.expires_at);

    Ok(Snapshot { currency, by_label }.into_hold(req, hold_id, written))
}

/// When a hold written by [`write_hold`] was made and when it lapses (database clock).
pub(crate) struct Written {
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The seat event the statement wrote (see [`Hold::event`]).
    pub event: Option<Arc<SeatEvent>>,
}

/// Step 4 of [`hold`], shared with [`crate::best`]: inserts the hold, points the seats
/// `ids` (ascending, locked by the caller, read at row versions `seen`) at it and
/// writes the change-feed event, all in one statement. A row count other than
/// `ids.len()` means a seat changed under our lock: [`Error::Invariant`].
pub(crate) async fn write_hold<C: GenericClient>(
    tx: &C,
    hold_id: HoldId,
    user: &UserId,
    ttl: HoldTtl,
    total: i64,
    ids: &[i64],
    seen: &[&str],
) -> Result<Written> {
    let sql = format!(
        "WITH h AS (
                 INSERT INTO holds (show_id, id, user_id, expires_at, total)
                 VALUES ($1, $2, $3, now() + $4::int * interval '1 second', $5)
                 RETURNING created_at, expires_at
             ), hs AS (
                 INSERT INTO hold_seats (show_id, hold_id, seat_id)
                 SELECT $1, $2, unnest($6::bigint[])
             ), taken AS (
                 UPDATE seats s SET hold_id = $2
                   FROM unnest($6::bigint[], $7::text[]) AS seen(id, xmin)
                  WHERE s.show_id = $1 AND s.id = seen.id AND s.xmin::text = seen.xmin
                 RETURNING s.id, s.label, s.xmin
             ), {event}
             SELECT h.created_at, h.expires_at, (SELECT count(*) FROM taken) AS taken, {columns}
               FROM h",
        event = feed::hold_event_cte("$1", "taken", "(SELECT expires_at FROM h)"),
        columns = feed::EVENT_COLUMNS,
    );
    let row = tx
        .cq_one(
            &sql,
            &[
                &hold_id.show().get(),
                &hold_id.key(),
                &user.as_str(),
                &(ttl.secs() as i32),
                &total,
                &ids,
                &seen,
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
        event: feed::written_event(&row, hold_id.show(), Cause::Hold)?,
    })
}

/// What the wanted seats look like in one snapshot, read without locks. Unknown seats,
/// moved versions and seats taken already are refused here, before any lock is taken.
struct Snapshot {
    currency: String,
    by_label: HashMap<String, Candidate>,
}

impl Snapshot {
    /// The new hold `hold_id` of `req` on these seats, as `written`.
    fn into_hold(self, req: &HoldRequest, hold_id: HoldId, written: Written) -> Hold {
        let mut seats: Vec<&Candidate> = self.by_label.values().collect();
        seats.sort_by_key(|c| c.order);
        Hold {
            hold_id,
            show_id: req.show,
            user_id: req.user.clone(),
            seats: seats.into_iter().map(|c| c.label.clone()).collect(),
            status: HoldStatus::Active,
            created_at: written.created_at,
            expires_at: written.expires_at,
            total: self.by_label.values().filter_map(|c| c.price).sum(),
            currency: self.currency,
            booking_id: None,
            event: written.event,
        }
    }
}

/// What a snapshot-and-write statement ([`hold_pooled`], [`batch`]) wrote for `req`,
/// from its result row (`created_at`, `expires_at`, `taken_count` and
/// [`feed::EVENT_COLUMNS`]). Pointing fewer seats than asked for at the new hold,
/// under our locks, is [`Error::Invariant`]. Wakes the sweeper for the new deadline.
fn written_by(row: &tokio_postgres::Row, req: &HoldRequest) -> Result<Written> {
    let taken: i64 = row.get("taken_count");
    if taken != req.seats.len() as i64 {
        return Err(Error::Invariant(format!(
            "pointed {taken} of {} locked seats at the new hold",
            req.seats.len()
        )));
    }
    let expires_at = row.get("expires_at");
    sweeper::hold_created(expires_at);
    Ok(Written {
        created_at: row.get("created_at"),
        expires_at,
        event: feed::written_event(row, req.show, Cause::Hold)?,
    })
}

/// The version each of `req`'s seats must still have (`if_versions`), or `None`, in
/// the order of its labels.
fn wanted_versions(req: &HoldRequest) -> impl Iterator<Item = Option<&str>> {
    req.seats.labels().iter().map(|l| {
        req.if_versions
            .iter()
            .find(|(label, _)| label == l)
            .map(|(_, v)| v.as_str())
    })
}

async fn snapshot<C: GenericClient>(client: &C, req: &HoldRequest) -> Result<Snapshot> {
    let show = req.show.get();
    let labels: Vec<&str> = req.seats.labels().iter().map(SeatLabel::as_str).collect();
    let rows = client
        .cq(&snapshot_sql("$1", "$2::text[]"), &[&show, &labels])
        .await?;
    snapshot_of(req, &rows)
}

/// SQL: the snapshot read of [`snapshot`], for the show `show` and the labels
/// `labels` (a text array): the show (for its currency, and to tell "no such show"
/// from "no such seats") joined to the wanted seats and the holds they point at.
fn snapshot_sql(show: &str, labels: &str) -> String {
    format!(
        "SELECT sh.currency, s.id, s.label, s.price, s.row_index, s.number,
                s.booking_id IS NOT NULL OR {HELD} IS TRUE AS taken,
                s.hold_id IS NULL AND s.booking_id IS NULL AS clean,
                {VERSION} AS version, s.xmin::text AS xmin
           FROM shows sh
           LEFT JOIN seats s ON s.show_id = sh.id AND s.label = ANY({labels})
           {JOIN_HOLD}
          WHERE sh.id = {show}"
    )
}

/// Reads the rows of a snapshot query (one per wanted seat that exists, or one with
/// no seat when none does; none when the show does not exist) and refuses what they
/// show cannot be held: unknown seats, then moved versions, then taken seats.
fn snapshot_of(req: &HoldRequest, rows: &[tokio_postgres::Row]) -> Result<Snapshot> {
    let currency: String = rows
        .first()
        .and_then(|r| r.get::<_, Option<String>>("currency"))
        .ok_or(Error::ShowNotFound)?;
    let by_label: HashMap<String, Candidate> = rows
        .iter()
        .filter(|r| r.get::<_, Option<i64>>("id").is_some())
        .map(|r| {
            let label: String = r.get("label");
            let c = Candidate {
                id: r.get("id"),
                label: SeatLabel::from_db(label.clone()),
                price: r.get("price"),
                taken: r.get("taken"),
                version: r.get("version"),
                order: (r.get("row_index"), r.get("number")),
            };
            (label, c)
        })
        .collect();
    let missing: Vec<SeatLabel> = req
        .seats
        .labels()
        .iter()
        .filter(|l| !by_label.contains_key(l.as_str()))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(Error::SeatNotFound { seats: missing });
    }
    check_versions(req, |l| by_label[l.as_str()].version.as_str())?;
    refuse_taken(req, |l| by_label[l.as_str()].taken)?;
    Ok(Snapshot { currency, by_label })
}

/// The statement of [`hold_pooled_as`]. Built once: it is on every hold's path.
static POOLED_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH snap AS ({snapshot}), go AS (
             SELECT count(snap.id) = cardinality($5::text[])
                    AND coalesce(bool_and(snap.clean AND (w.version IS NULL
                                                          OR w.version = snap.version)),
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
         ), h AS (
             INSERT INTO holds (show_id, id, user_id, expires_at, total)
             SELECT $1, $2, $3, now() + $4::int * interval '1 second',
                    (SELECT coalesce(sum(price), 0) FROM snap)
              WHERE (SELECT ok FROM verdict)
             RETURNING created_at, expires_at
         ), hs AS (
             INSERT INTO hold_seats (show_id, hold_id, seat_id)
             SELECT $1, $2, id FROM snap WHERE (SELECT ok FROM verdict)
         ), taken AS (
             UPDATE seats s SET hold_id = $2
               FROM snap
              WHERE s.show_id = $1 AND s.id = snap.id AND s.xmin::text = snap.xmin
                AND (SELECT ok FROM verdict)
             RETURNING s.id, s.label, s.xmin
         ), {event}
         SELECT snap.*, w.*
           FROM snap,
                (SELECT (SELECT ok FROM verdict) AS ok, h.created_at, h.expires_at,
                        (SELECT count(*) FROM taken) AS taken_count, {columns}
                   FROM (SELECT 1) AS one LEFT JOIN h ON true) AS w",
        snapshot = snapshot_sql("$1", "$5::text[]"),
        event = feed::hold_event_cte("$1", "taken", "(SELECT expires_at FROM h)"),
        columns = feed::EVENT_COLUMNS,
    )
});

/// [`hold`] on a pooled connection, in one round trip when the seats are free and
/// nobody else touches them meanwhile (the common case).
///
/// One statement (its own transaction) reads the wanted seats in its snapshot, without
/// locks. Only when every one is there, points at nothing and has the version the
/// caller named does it lock them in id order, check that no row changed since the
/// snapshot (same `xmin`), and then insert the hold, point the seats at it and write
/// the event. Otherwise it writes nothing and returns the snapshot:
/// - refusals (no such show or seat, a moved version, a taken seat) are answered from
///   it, without a lock taken, so a thousand callers on one taken seat do not queue;
/// - anything else (a seat pointing at a lapsed hold, a row that changed between the
///   snapshot and the lock) is decided by [`hold`], in a transaction of its own with
///   the full re-read after the locks.
///
/// The lock wait is bounded by the connection's `lock_timeout`
/// ([`crate::PoolOptions::lock_timeout`]), as the statement runs outside an explicit
/// transaction.
#[tracing::instrument(skip_all, fields(show = %req.show, user = %req.user, seats = req.seats.len()))]
pub async fn hold_pooled(
    client: &mut deadpool_postgres::Client,
    settings: &Settings,
    req: &HoldRequest,
) -> Result<Hold> {
    hold_pooled_as(client, settings, req, HoldId::generate(req.show)).await
}

/// [`hold_pooled`], naming the new hold `hold_id` (which must be of `req.show`).
pub(crate) async fn hold_pooled_as(
    client: &mut deadpool_postgres::Client,
    settings: &Settings,
    req: &HoldRequest,
    hold_id: HoldId,
) -> Result<Hold> {
    check_if_versions(req)?;
    let ttl = req.ttl.unwrap_or(settings.default_ttl);
    let labels: Vec<&str> = req.seats.labels().iter().map(SeatLabel::as_str).collect();
    let wanted: Vec<Option<&str>> = wanted_versions(req).collect();
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
            ],
        )
        .await?;
    let snap = snapshot_of(req, &rows)?;
    let row = &rows[0];
    if !row.get::<_, bool>("ok") {
        // Free in our snapshot but not plainly so (a lapsed hold still points at a
        // seat), or someone touched a seat between our read and our lock: decide
        // carefully.
        return hold_as(client, settings, req, hold_id).await;
    }
    feed::changed();
    let written = written_by(row, req)?;
    Ok(snap.into_hold(req, hold_id, written))
}

fn check_if_versions(req: &HoldRequest) -> Result<()> {
    for (label, _) in &req.if_versions {
        if !req.seats.labels().contains(label) {
            return Err(Error::invalid(
                "if_versions",
                format!("{label} is not one of the seats asked for"),
            ));
        }
    }
    Ok(())
}

fn check_versions<'a>(req: &HoldRequest, current: impl Fn(&SeatLabel) -> &'a str) -> Result<()> {
    let moved: Vec<SeatLabel> = req
        .if_versions
        .iter()
        .filter(|(label, v)| current(label) != v.as_str())
        .map(|(label, _)| label.clone())
        .collect();
    if moved.is_empty() {
        Ok(())
    } else {
        Err(Error::StaleVersion { seats: moved })
    }
}

fn refuse_taken(req: &HoldRequest, taken: impl Fn(&SeatLabel) -> bool) -> Result<()> {
    let blocked: Vec<SeatLabel> = req
        .seats
        .labels()
        .iter()
        .filter(|l| taken(l))
        .cloned()
        .collect();
    if blocked.is_empty() {
        Ok(())
    } else {
        Err(Error::SeatsUnavailable { seats: blocked })
    }
}

/// Reads a hold as it is now, whoever owns it.
pub(crate) async fn load<C: GenericClient>(client: &C, id: HoldId) -> Result<Option<Hold>> {
    let row = client
        .cq_opt(
            "SELECT h.user_id, h.status, h.expires_at <= now() AS lapsed, h.created_at,
                    h.expires_at, h.total, sh.currency, b.id AS booking_key,
                    array(SELECT s.label
                            FROM hold_seats hs
                            JOIN seats s ON s.show_id = hs.show_id AND s.id = hs.seat_id
                           WHERE hs.show_id = h.show_id AND hs.hold_id = h.id
                           ORDER BY s.row_index, s.number) AS seats
               FROM holds h
               JOIN shows sh ON sh.id = h.show_id
               LEFT JOIN bookings b ON b.show_id = h.show_id AND b.hold_id = h.id
              WHERE h.show_id = $1 AND h.id = $2",
            &[&id.show().get(), &id.key()],
        )
        .await?;
    let Some(r) = row else { return Ok(None) };
    let mut status = HoldStatus::from_db(r.get("status"))?;
    if status == HoldStatus::Active && r.get::<_, bool>("lapsed") {
        status = HoldStatus::Expired;
    }
    Ok(Some(Hold {
        hold_id: id,
        show_id: id.show(),
        user_id: UserId::from_db(r.get("user_id")),
        seats: r
            .get::<_, Vec<String>>("seats")
            .into_iter()
            .map(SeatLabel::from_db)
            .collect(),
        status,
        created_at: r.get("created_at"),
        expires_at: r.get("expires_at"),
        total: r.get("total"),
        currency: r.get("currency"),
        booking_id: r
            .get::<_, Option<Uuid>>("booking_key")
            .map(|k| BookingId::from_parts(id.show(), k)),
        event: None,
    }))
}

/// The hold `id`, as its owner `user` sees it: [`Error::HoldNotFound`], or
/// [`Error::Forbidden`] when it is another user's. A hold past `expires_at` reads
/// [`HoldStatus::Expired`] even before the sweeper has visited it.
pub async fn get_hold<C: GenericClient>(client: &C, user: &UserId, id: HoldId) -> Result<Hold> {
    let hold = load(client, id).await?.ok_or(Error::HoldNotFound)?;
    if &hold.user_id != user {
        return Err(Error::Forbidden);
    }
    Ok(hold)
}

/// The locked hold row, for operations that change a hold.
pub(crate) struct LockedHold {
    pub user_id: String,
    pub status: HoldStatus,
    /// Past `expires_at` by the database clock (and still `active` in the table).
    pub lapsed: bool,
    /// `now() + ttl` would pass the hold's maximum lifetime (only when a ttl was given).
    pub over_limit: bool,
}

impl LockedHold {
    /// The status a reader sees: a lapsed active hold reads expired.
    pub fn effective_status(&self) -> HoldStatus {
        if self.status == HoldStatus::Active && self.lapsed {
            HoldStatus::Expired
        } else {
            self.status
        }
    }
}

/// Bounds lock waits, then locks the hold row. Holds are always locked before seats.
pub(crate) async fn lock_hold<C: GenericClient>(
    tx: &C,
    settings: &Settings,
    id: HoldId,
    extend_by: Option<HoldTtl>,
) -> Result<LockedHold> {
    let lock_timeout = lock_timeout_value(settings);
    let max_secs = settings.max_hold.as_secs() as i64;
    let extend_secs = extend_by.map(|t| t.secs() as i32).unwrap_or(0);
    // FOR NO KEY UPDATE: we change the status or deadline, never the key, so foreign
    // key checks of other transactions (KEY SHARE) are not blocked by it.
    let (_, row) = futures_util::future::try_join(
        tx.cexec(SET_LOCK_TIMEOUT, &[&lock_timeout]),
        tx.cq_opt(
            "SELECT user_id, status, expires_at <= now() AS lapsed,
                    now() + $3::int * interval '1 second'
                        > created_at + $4::bigint * interval '1 second' AS over_limit
               FROM holds WHERE show_id = $1 AND id = $2
                FOR NO KEY UPDATE",
            &[&id.show().get(), &id.key(), &extend_secs, &max_secs],
        ),
    )
    .await?;
    let r = row.ok_or(Error::HoldNotFound)?;
    Ok(LockedHold {
        user_id: r.get("user_id"),
        status: HoldStatus::from_db(r.get("status"))?,
        lapsed: r.get("lapsed"),
        over_limit: extend_by.is_some() && r.get::<_, bool>("over_limit"),
    })
}

/// Locks the seats a hold asked for, in id order, and tells whether all still point at
/// it. A seat moves away from an unconfirmed hold only once the hold has lapsed.
pub(crate) async fn lock_hold_seats<C: GenericClient>(
    tx: &C,
    id: HoldId,
) -> Result<(Vec<(i64, String)>, bool)> {
    let rows = tx
        .cq(
            "SELECT s.id, s.xmin::text AS xmin, s.hold_id IS NOT DISTINCT FROM $2 AS ours
               FROM seats s
              WHERE s.show_id = $1
                AND s.id IN (SELECT seat_id FROM hold_seats WHERE show_id = $1 AND hold_id = $2)
              ORDER BY s.id FOR UPDATE",
            &[&id.show().get(), &id.key()],
        )
        .await?;
    let all_ours = rows.iter().all(|r| r.get::<_, bool>("ours"));
    let seats = rows.iter().map(|r| (r.get("id"), r.get("xmin"))).collect();
    Ok((seats, all_ours))
}

/// Releases the hold's seats. Releasing a hold that is already released or expired
/// succeeds and changes nothing; a confirmed hold gives [`Error::HoldConfirmed`].
/// Returns the hold as it is afterwards (`released`, or `expired` when it had lapsed).
#[tracing::instrument(skip_all, fields(hold = %id, user = %user))]
pub async fn release<C>(
    client: &mut C,
    settings: &Settings,
    user: &UserId,
    id: HoldId,
) -> Result<Hold>
where
    C: GenericClient + Send,
{
    let tx = client.transaction().await?;
    let locked = lock_hold(&tx, settings, id, None).await?;
    if locked.user_id != user.as_str() {
        return Err(Error::Forbidden);
    }
    let new_status = match (locked.status, locked.lapsed) {
        (HoldStatus::Confirmed, _) => return Err(Error::HoldConfirmed),
        (HoldStatus::Released | HoldStatus::Expired, _) => None,
        // Lapsed but not swept: it expired; record that instead of a release.
        (HoldStatus::Active, true) => Some("expired"),
        (HoldStatus::Active, false) => Some("released"),
    };
    let mut event = None;
    if let Some(status) = new_status {
        event = free_seats_of(&tx, id, status).await?.1;
    }
    let mut hold = load(&tx, id).await?.ok_or(Error::HoldNotFound)?;
    hold.event = event;
    tx.commit().await?;
    if new_status.is_some() {
        feed::changed();
    }
    Ok(hold)
}

/// Ends a hold with `status` and frees the seats that still point at it (a lapsed
/// hold's seats may have been taken over already: those are left alone). Returns how
/// many seats it freed and the event it wrote, if any.
pub(crate) async fn free_seats_of<C: GenericClient>(
    tx: &C,
    id: HoldId,
    status: &str,
) -> Result<(u64, Option<Arc<SeatEvent>>)> {
    // Lock before writing, in id order, like every other multi-seat lock.
    tx.cq(
        "SELECT id FROM seats WHERE show_id = $1 AND hold_id = $2 ORDER BY id FOR UPDATE",
        &[&id.show().get(), &id.key()],
    )
    .await?;
    // The status is also the event's cause: 'released' -> release, 'expired' -> expire.
    let (cause, event_cause) = if status == "expired" {
        ("expire", Cause::Expire)
    } else {
        ("release", Cause::Release)
    };
    let sql = format!(
        "WITH freed AS (
             UPDATE seats SET hold_id = NULL WHERE show_id = $1 AND hold_id = $2
             RETURNING id, label, xmin
         ), ended AS (
             UPDATE holds SET status = $3 WHERE show_id = $1 AND id = $2
         ), {event}
         SELECT (SELECT count(*) FROM freed) AS n, {columns}",
        event = feed::event_cte("$1", cause, "available", "freed"),
        columns = feed::EVENT_COLUMNS,
    );
    let row = tx
        .cq_one(&sql, &[&id.show().get(), &id.key(), &status])
        .await?;
    let event = feed::written_event(&row, id.show(), event_cause)?;
    Ok((row.get::<_, i64>("n") as u64, event))
}

/// Moves the hold's deadline to `now() + ttl`, at most [`Settings::max_hold`] after its
/// creation ([`Error::HoldLimitReached`] beyond). Expired, released and confirmed holds
/// give [`Error::HoldExpired`], [`Error::HoldReleased`], [`Error::HoldConfirmed`].
#[tracing::instrument(skip_all, fields(hold = %id, user = %user, ttl = ttl.secs()))]
pub async fn extend<C>(
    client: &mut C,
    settings: &Settings,
    user: &UserId,
    id: HoldId,
    ttl: HoldTtl,
) -> Result<Hold>
where
    C: GenericClient + Send,
{
    let tx = client.transaction().await?;
    let locked = lock_hold(&tx, settings, id, Some(ttl)).await?;
    if locked.user_id != user.as_str() {
        return Err(Error::Forbidden);
    }
    match locked.effective_status() {
        HoldStatus::Confirmed => return Err(Error::HoldConfirmed),
        HoldStatus::Released => return Err(Error::HoldReleased),
        HoldStatus::Expired => return Err(Error::HoldExpired),
        HoldStatus::Active => {}
    }
    if locked.over_limit {
        return Err(Error::HoldLimitReached {
            max_seconds: settings.max_hold.as_secs(),
        });
    }
    // A hold creator that saw this hold lapsed by its own (later) clock may be taking
    // its seats right now. Locking them settles it: either we see a seat gone (and the
    // hold did expire), or the creator waits and then sees the new deadline.
    let (_, all_ours) = lock_hold_seats(&tx, id).await?;
    if !all_ours {
        return Err(Error::HoldExpired);
    }
    tx.cexec(
        "UPDATE holds SET expires_at = now() + $3::int * interval '1 second'
          WHERE show_id = $1 AND id = $2",
        &[&id.show().get(), &id.key(), &(ttl.secs() as i32)],
    )
    .await?;
    let hold = load(&tx, id).await?.ok_or(Error::HoldNotFound)?;
    tx.commit().await?;
    Ok(hold)
}
