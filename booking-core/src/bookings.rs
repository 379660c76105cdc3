//! Bookings: confirming a hold into one, reading and listing them; `cancel.rs` cancels
//! them (whole or in part), `exchange.rs` exchanges their seats for others.
//!
//! Lock order, as everywhere in this crate: the hold (or booking) row first, then its
//! seats in ascending id order. A transaction holds at most one hold or booking lock
//! before it locks seats, so no two transactions can wait on each other in a cycle.

use crate::database::Cached;
use crate::database::{lock_timeout_value, SET_SHOW_LOCK_TIMEOUT};
use crate::domain::{
    Actor, BookingId, BookingStatus, HoldId, HoldStatus, Reference, SeatLabel, SeatState, ShowId,
    UserId,
};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::feed::{self, Cause};
use crate::holds::{lock_hold, lock_hold_seats, WRITTEN_BEFORE_US};
use crate::tickets::{tickets_from_json, tickets_of_booking, Ticket, BOOKED_NOW};
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use tokio_postgres::error::SqlState;
use tokio_postgres::Row;
use uuid::Uuid;

mod cancel;
mod exchange;

pub use cancel::{cancel, cancel_part, CancelPart, Cancellation};
pub use exchange::{exchange, Exchange, Exchanged};

/// A booking as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Booking {
    /// The booking's id, chosen at random when it was confirmed.
    pub booking_id: BookingId,
    /// The hold it was confirmed from (one booking per hold).
    pub hold_id: HoldId,
    /// The show the booked seats belong to.
    pub show_id: ShowId,
    /// The booking's owner: the owner of its hold.
    pub user_id: UserId,
    /// In seat-map order (row, then number): the seats it has now; once cancelled,
    /// those it had when it was cancelled.
    pub seats: Vec<SeatLabel>,
    /// Places of standing areas booked, by area; empty when none (and then left out of
    /// the JSON).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub areas: std::collections::BTreeMap<crate::domain::AreaCode, u32>,
    /// Each seat and place as sold (at the confirm, from its hold; by an exchange, at
    /// the prices then), as [`Booking::seats`], in seat-map order.
    pub tickets: Vec<Ticket>,
    /// Confirmed, or cancelled.
    pub status: BookingStatus,
    /// When the hold was confirmed into this booking (database clock).
    pub confirmed_at: DateTime<Utc>,
    /// When it was cancelled (database clock); `None` while confirmed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancelled_at: Option<DateTime<Utc>>,
    /// Sum of the tickets' prices in minor units (tickets without a price count 0):
    /// the hold's total, changed by partial cancels and exchanges.
    pub total: i64,
    /// The show's currency (ISO 4217 code) of `total`.
    pub currency: String,
    /// The integrator's reference and metadata: the confirm's, else its hold's.
    #[serde(flatten)]
    pub reference: Reference,
}

/// What [`confirm`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmation {
    /// The booking, as it is now (a repeat after a cancel shows it cancelled).
    pub booking: Booking,
    /// `true` the first time; `false` when the hold was already confirmed and this is
    /// the same booking again.
    pub created: bool,
    /// `true` when the hold had expired and this confirm took its seats and places
    /// back (`allow_late`).
    pub late: bool,
    /// The seat event this confirm wrote (when `created`), once committed: the
    /// caller's process may apply it to what it caches before the feed brings it.
    pub event: Option<std::sync::Arc<feed::SeatEvent>>,
}

pub(crate) static SELECT_BOOKING: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| select_booking("b.show_id"));

/// [`SELECT_BOOKING`] for statements whose first parameter (`$1`) is the show, which
/// the subqueries then name: Citus routes a statement to the show's node only when
/// every table in it, subqueries included, is pinned to the show by a value (with
/// `b.show_id` there, a booking's read went to every shard of every worker).
pub(crate) static SELECT_BOOKING_OF_SHOW: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| select_booking("$1"));

fn select_booking(show: &str) -> String {
    format!(
        "SELECT b.show_id, b.id, b.hold_id, b.user_id, b.status, b.confirmed_at, b.cancelled_at,
           b.total, sh.currency, b.external_ref, b.metadata::text AS metadata, {tickets},
           array(SELECT s.label
                   FROM booking_seats bs
                   JOIN seats s ON s.show_id = bs.show_id AND s.id = bs.seat_id
                  WHERE bs.show_id = {show} AND bs.booking_id = b.id AND s.area IS NULL
                    AND {BOOKED_NOW}
                  ORDER BY s.row_index, s.number) AS seats
      FROM bookings b
      JOIN shows sh ON sh.id = b.show_id",
        tickets = tickets_of_booking(show)
    )
}

pub(crate) fn booking_from_row(r: &Row) -> Result<Booking> {
    let show = ShowId::from_db(r.get("show_id"));
    let tickets = tickets_from_json(r.get("tickets"))?;
    Ok(Booking {
        booking_id: BookingId::from_parts(show, r.get("id")),
        hold_id: HoldId::from_parts(show, r.get("hold_id")),
        show_id: show,
        user_id: UserId::from_db(r.get("user_id")),
        seats: r
            .get::<_, Vec<String>>("seats")
            .into_iter()
            .map(SeatLabel::from_db)
            .collect(),
        areas: crate::holds::areas_of(&tickets),
        tickets,
        status: BookingStatus::from_db(r.get("status"))?,
        confirmed_at: r.get("confirmed_at"),
        cancelled_at: r.get("cancelled_at"),
        total: r.get("total"),
        currency: r.get("currency"),
        reference: Reference::from_row(r)?,
    })
}

pub(crate) async fn load<C: GenericClient>(client: &C, id: BookingId) -> Result<Option<Booking>> {
    let sql = format!(
        "{} WHERE b.show_id = $1 AND b.id = $2",
        *SELECT_BOOKING_OF_SHOW
    );
    match client.cq_opt(&sql, &[&id.show().get(), &id.key()]).await? {
        Some(r) => Ok(Some(booking_from_row(&r)?)),
        None => Ok(None),
    }
}

async fn load_by_hold<C: GenericClient>(client: &C, hold: HoldId) -> Result<Booking> {
    let sql = format!(
        "{} WHERE b.show_id = $1 AND b.hold_id = $2",
        *SELECT_BOOKING_OF_SHOW
    );
    let r = client
        .cq_opt(&sql, &[&hold.show().get(), &hold.key()])
        .await?
        .ok_or_else(|| Error::Invariant(format!("confirmed hold {hold} has no booking")))?;
    booking_from_row(&r)
}

/// Turns the active hold `id` into a booking of all its seats, or changes nothing.
///
/// Idempotent: confirming a confirmed hold returns the same booking with
/// `created: false`. Errors: [`Error::HoldNotFound`], [`Error::Forbidden`] (another
/// user's hold), [`Error::HoldExpired`] (its `expires_at` passed before this
/// committed), [`Error::HoldReleased`], [`Error::Busy`].
///
/// Runs in its own transaction, or as a savepoint inside the caller's: an embedding
/// service can confirm together with its own payment record and roll both back.
#[tracing::instrument(skip_all, fields(hold = %id, user = %user))]
pub async fn confirm<C>(
    client: &mut C,
    engine: &Engine,
    user: &UserId,
    id: HoldId,
) -> Result<Confirmation>
where
    C: GenericClient + Send,
{
    confirm_with(client, engine, user, id, &ConfirmRequest::default()).await
}

/// How a hold is confirmed ([`confirm_with`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfirmRequest {
    /// Book it even if it expired, as [`confirm_late`] does.
    pub late: bool,
    /// The booking's reference and metadata; each part not given is the hold's.
    pub reference: Reference,
}

/// [`confirm`] (or [`confirm_late`] when `req.late`), the booking carrying
/// `req.reference` over its hold's. [`Error::ExternalRefTaken`] when another booking of
/// the show has that `external_ref` (cancelled ones included); nothing is booked then.
/// A repeat of a confirmed hold answers its booking as it is, whatever `req` says.
#[tracing::instrument(skip_all, fields(hold = %id, user = %user, late = req.late))]
pub async fn confirm_with<C>(
    client: &mut C,
    engine: &Engine,
    user: &UserId,
    id: HoldId,
    req: &ConfirmRequest,
) -> Result<Confirmation>
where
    C: GenericClient + Send,
{
    confirm_as(client, engine, user, id, req).await
}

/// [`confirm`], also for a hold that expired (by its deadline, not released) if every
/// one of its seats and places can be taken again right now: each still points at the
/// hold, or is free (no hold, booking or block). All are booked in one transaction, as
/// the hold sold them; otherwise [`Error::HoldExpiredTaken`] names the ones someone
/// else has now, and nothing changes. A payment that completes a moment after the
/// deadline keeps what nobody took meanwhile. The show's limit per buyer applies again
/// (an expired hold counts for nothing).
#[tracing::instrument(skip_all, fields(hold = %id, user = %user))]
pub async fn confirm_late<C>(
    client: &mut C,
    engine: &Engine,
    user: &UserId,
    id: HoldId,
) -> Result<Confirmation>
where
    C: GenericClient + Send,
{
    let req = ConfirmRequest {
        late: true,
        reference: Reference::default(),
    };
    confirm_as(client, engine, user, id, &req).await
}

async fn confirm_as<C>(
    client: &mut C,
    engine: &Engine,
    user: &UserId,
    id: HoldId,
    req: &ConfirmRequest,
) -> Result<Confirmation>
where
    C: GenericClient + Send,
{
    let tx = client.transaction().await?;
    let locked = lock_hold(&tx, engine.settings(), id, None).await?;
    if locked.user_id != user.as_str() {
        return Err(Error::Forbidden);
    }
    match locked.effective_status() {
        HoldStatus::Confirmed => {
            let booking = load_by_hold(&tx, id).await?;
            tx.commit().await?;
            return Ok(Confirmation {
                booking,
                created: false,
                late: false,
                event: None,
            });
        }
        HoldStatus::Released => return Err(Error::HoldReleased),
        HoldStatus::Expired if !req.late => return Err(Error::HoldExpired),
        HoldStatus::Expired | HoldStatus::Active => {}
    }
    let expired = locked.effective_status() == HoldStatus::Expired;
    // The hold is ours and unexpired by our clock, but a hold creator with a later clock
    // may already have taken a seat over. After locking the seats we know.
    let seats = if expired {
        lock_to_retake(&tx, id).await?
    } else {
        let (seats, all_ours) = lock_hold_seats(&tx, id).await?;
        if !all_ours || seats.is_empty() {
            return Err(Error::HoldExpired);
        }
        seats
    };
    if expired {
        // Taking seats back from nothing is a new sale: only while the show sells. (A
        // live hold may be paid for until it expires, after `sales_end` too: it was
        // made inside the window. A cancelled show has released every hold.)
        crate::shows::check_on_sale(&tx, id.show()).await?;
        if let Some(limit) = show_limit(&tx, id).await? {
            let user = UserId::from_db(locked.user_id.clone());
            crate::holds::check_user_limit(&tx, id.show(), &user, seats.len(), limit).await?;
        }
    }
    refuse_taken_ref(&tx, id, &req.reference).await?;
    let booking_key = Uuid::new_v4();
    let ids: Vec<i64> = seats.iter().map(|(id, _)| *id).collect();
    let seen: Vec<&str> = seats.iter().map(|(_, x)| x.as_str()).collect();
    let row = tx
        .cq_one(
            &CONFIRM_SQL,
            &[
                &id.show().get(),
                &id.key(),
                &booking_key,
                &ids,
                &seen,
                &req.reference.ref_param(),
                &req.reference.metadata_param(),
            ],
        )
        .await
        .map_err(unnamed_ref_conflict)?;
    let (bookings, booked): (i64, i64) = (row.get("bookings"), row.get("booked"));
    if bookings != 1 || booked != ids.len() as i64 {
        return Err(Error::Invariant(format!(
            "confirm wrote {bookings} bookings and {booked} of {} seats",
            ids.len()
        )));
    }
    let event = feed::written_event(&row, id.show(), Cause::Confirm)?;
    let booking = load(&tx, BookingId::from_parts(id.show(), booking_key))
        .await?
        .ok_or_else(|| Error::Invariant("new booking not readable".into()))?;
    tx.commit().await?;
    engine.committed(None);
    Ok(Confirmation {
        booking,
        created: true,
        late: expired,
        event,
    })
}

/// The statement of a confirm: the booking, its seats, the seats (and places) moved
/// from the hold (or, for a late confirm, from nothing) to the booking at the row
/// versions locked, the hold confirmed, the event. A place taken back from nothing was
/// `available`, not `held`: the event says so.
///
/// The booking's insert names every column by its table: with unqualified ones, Citus
/// 13 ships to the show's node an `INSERT ... SELECT` referring to `bookings` that the
/// shard's statement lacks ("missing FROM-clause entry for table", tried on 13.0.3).
static CONFIRM_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH b AS (
                 INSERT INTO bookings AS bk (show_id, id, hold_id, user_id, total,
                                             external_ref, metadata)
                 SELECT h.show_id, $3, h.id, h.user_id, h.total,
                        coalesce($6::text, h.external_ref), coalesce($7::text::jsonb, h.metadata)
                   FROM holds h WHERE h.show_id = $1 AND h.id = $2
                 RETURNING bk.id
             ), bs AS (
                 INSERT INTO booking_seats (show_id, booking_id, seat_id, ticket_type, price)
                 SELECT hs.show_id, $3, hs.seat_id, hs.ticket_type, hs.price
                   FROM hold_seats hs
                  WHERE hs.show_id = $1 AND hs.hold_id = $2 AND hs.seat_id = ANY($4::bigint[])
             ), booked AS (
                 UPDATE seats s SET hold_id = NULL, booking_id = $3
                   FROM unnest($4::bigint[], $5::text[]) AS seen(id, xmin)
                   JOIN seats o ON o.show_id = $1 AND o.id = seen.id
                  WHERE s.show_id = $1 AND s.id = seen.id
                    AND (s.hold_id = $2
                         OR (s.hold_id IS NULL AND s.booking_id IS NULL AND s.block_id IS NULL))
                    AND s.xmin::text = seen.xmin
                 RETURNING s.id, s.label, s.xmin, s.area, o.hold_id IS NOT NULL AS was_held
             ), h AS (
                 UPDATE holds SET status = 'confirmed' WHERE show_id = $1 AND id = $2
             ), {event}
             SELECT (SELECT count(*) FROM b) AS bookings, (SELECT count(*) FROM booked) AS booked,
                    {columns}",
        event = feed::EventsSql {
            show: "$1",
            cause: Cause::Confirm,
            state: SeatState::Booked,
            until: None,
            was: Some("CASE WHEN area IS NOT NULL AND NOT was_held THEN 'available' END"),
            from: "booked",
            per: None,
        }
        .cte_of(&feed::Subject {
            hold: Some("$2"),
            booking: Some("$3"),
            ended: None
        }),
        columns = feed::EVENT_COLUMNS,
    )
});

/// For a late confirm: locks the hold's seats and places in id order and returns each
/// one's id and row version, if every one can be taken again now (still pointing at the
/// hold, or free); else [`Error::HoldExpiredTaken`] naming the others. A free seat last
/// written by a transaction younger than ours is not taken (the feed's order, as for a
/// hold: see `holds/take.rs`), nor is a place.
async fn lock_to_retake<C: GenericClient>(tx: &C, id: HoldId) -> Result<Vec<(i64, String)>> {
    let rows = tx
        .cq(
            &format!(
                "SELECT s.id, s.label, s.xmin::text AS xmin,
                        s.hold_id IS NOT DISTINCT FROM $2
                        OR (s.hold_id IS NULL AND s.booking_id IS NULL AND s.block_id IS NULL
                            AND {WRITTEN_BEFORE_US}) AS takeable
                   FROM seats s
                  WHERE s.show_id = $1
                    AND s.id IN (SELECT seat_id FROM hold_seats WHERE show_id = $1 AND hold_id = $2)
                  ORDER BY s.id FOR UPDATE"
            ),
            &[&id.show().get(), &id.key()],
        )
        .await?;
    let taken: Vec<SeatLabel> = rows
        .iter()
        .filter(|r| !r.get::<_, bool>("takeable"))
        .map(|r| SeatLabel::from_db(r.get("label")))
        .collect();
    if !taken.is_empty() || rows.is_empty() {
        return Err(Error::HoldExpiredTaken { seats: taken });
    }
    Ok(rows.iter().map(|r| (r.get("id"), r.get("xmin"))).collect())
}

/// [`Error::ExternalRefTaken`] when another booking of the show has the reference the
/// booking of hold `id` would get (`reference`'s, else the hold's). Concurrent confirms
/// with one reference both pass here; the unique index `bookings_external_ref` then
/// refuses the later insert, mapped to the same error.
async fn refuse_taken_ref<C: GenericClient>(
    tx: &C,
    id: HoldId,
    reference: &Reference,
) -> Result<()> {
    let taken = tx
        .cq_opt(
            "SELECT 1 FROM bookings b
              WHERE b.show_id = $1
                AND b.external_ref = coalesce($3::text,
                        (SELECT h.external_ref FROM holds h WHERE h.show_id = $1 AND h.id = $2))",
            &[&id.show().get(), &id.key(), &reference.ref_param()],
        )
        .await?;
    match taken {
        Some(_) => Err(Error::ExternalRefTaken),
        None => Ok(()),
    }
}

/// The confirm statement's unique violation without a constraint name: Citus 13 relays
/// the worker's error without it (tried on 13.0.3), so `Error::from` cannot tell the
/// index. The only unique index the confirm can meet with a second writer is
/// `bookings_external_ref` (its hold is locked, its ids are fresh), as on PostgreSQL.
fn unnamed_ref_conflict(e: tokio_postgres::Error) -> Error {
    let unnamed = e
        .as_db_error()
        .is_some_and(|d| *d.code() == SqlState::UNIQUE_VIOLATION && d.constraint().is_none());
    if unnamed {
        Error::ExternalRefTaken
    } else {
        e.into()
    }
}

/// The show's limit of seats per buyer, if it has one.
async fn show_limit<C: GenericClient>(tx: &C, id: HoldId) -> Result<Option<u32>> {
    Ok(tx
        .cq_one(
            "SELECT max_seats_per_user FROM shows WHERE id = $1",
            &[&id.show().get()],
        )
        .await?
        .get::<_, Option<i32>>(0)
        .map(|m| m as u32))
}

/// The locked booking row.
pub(super) struct LockedBooking {
    pub owner: UserId,
    pub confirmed: bool,
    pub total: i64,
}

/// Bounds lock waits, then locks the booking row (before any seat, as everywhere).
pub(super) async fn lock_booking<C: GenericClient>(
    tx: &C,
    engine: &Engine,
    actor: &Actor,
    id: BookingId,
) -> Result<LockedBooking> {
    let lock_timeout = lock_timeout_value(engine.settings());
    let (_, row) = futures_util::future::try_join(
        tx.cexec(SET_SHOW_LOCK_TIMEOUT, &[&lock_timeout, &id.show().get()]),
        tx.cq_opt(
            "SELECT user_id, status, total FROM bookings
              WHERE show_id = $1 AND id = $2 FOR NO KEY UPDATE",
            &[&id.show().get(), &id.key()],
        ),
    )
    .await?;
    let row = row.ok_or(Error::BookingNotFound)?;
    let owner = UserId::from_db(row.get("user_id"));
    actor.authorise(&owner)?;
    Ok(LockedBooking {
        owner,
        confirmed: row.get::<_, &str>("status") == "confirmed",
        total: row.get("total"),
    })
}

/// The booking `id` as its owner sees it: [`Error::BookingNotFound`], or
/// [`Error::Forbidden`] when it is another user's (an admin may read any).
pub async fn get_booking<C: GenericClient>(
    client: &C,
    actor: &Actor,
    id: BookingId,
) -> Result<Booking> {
    let booking = load(client, id).await?.ok_or(Error::BookingNotFound)?;
    actor.authorise(&booking.user_id)?;
    Ok(booking)
}

/// The user's bookings, newest first (confirmed and cancelled).
pub async fn list_for_user<C: GenericClient>(client: &C, user: &UserId) -> Result<Vec<Booking>> {
    // The one statement not scoped to a show: a user's bookings span shows.
    let sql = format!(
        "{} WHERE b.user_id = $1 ORDER BY b.confirmed_at DESC, b.id",
        *SELECT_BOOKING
    );
    client
        .cq(&sql, &[&user.as_str()])
        .await?
        .iter()
        .map(booking_from_row)
        .collect()
}
