//! Cancelling a booking, whole or in part.
//!
//! Lock order, as everywhere in this crate: the booking row first, then the seats it
//! frees in ascending id order. One statement frees them, ends their rows, lowers the
//! total (or cancels the booking when nothing is left) and writes one `cancel` event
//! for exactly the seats that changed.

use super::{load, lock_booking, Booking};
use crate::database::Cached;
use crate::domain::TicketTypeName;
use crate::domain::{Actor, AreaCode, AreaWant, BookingId, SeatLabel, SeatSelection, SeatState};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::feed::{self, Cause, SeatEvent};
use crate::tickets::Ticket;
use deadpool_postgres::GenericClient;
use std::sync::Arc;

/// What to cancel of a booking: some of its seats, and places of its areas (the
/// highest-numbered of its places there).
#[derive(Debug, Clone)]
pub struct CancelPart {
    /// Seats of the booking; one it no longer has because it was cancelled already is
    /// passed over (a repeat changes nothing twice).
    pub seats: SeatSelection,
    /// How many of its places of each area (their ticket types are not read).
    pub areas: Vec<AreaWant>,
}

/// What a cancel did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cancellation {
    /// The booking as it is now: `confirmed` with what is left, or `cancelled`.
    pub booking: Booking,
    /// The tickets this call cancelled, in seat-map order; empty when it changed
    /// nothing.
    pub cancelled: Vec<Ticket>,
    /// The seat event it wrote, once committed (see [`crate::Hold::event`]).
    pub event: Option<Arc<SeatEvent>>,
}

/// Cancels the booking: its seats become available. Cancelling a cancelled booking
/// returns it unchanged. The owner or an admin may cancel.
///
/// Runs in its own transaction, or as a savepoint inside the caller's. Errors:
/// [`Error::BookingNotFound`], [`Error::Forbidden`] (another user's booking),
/// [`Error::Busy`] when a row lock is not had within the lock timeout.
pub async fn cancel<C>(
    client: &mut C,
    engine: &Engine,
    actor: &Actor,
    id: BookingId,
) -> Result<Booking>
where
    C: GenericClient + Send,
{
    Ok(cancel_part(client, engine, actor, id, None).await?.booking)
}

/// Cancels `part` of the booking (`None`: all it has), all or none: those seats and
/// places become available, the booking keeps the rest at a total less their prices,
/// and is `cancelled` once nothing is left (its total then stays what it was, the
/// price of what it had). Seats it had and lost to an earlier cancel are passed over,
/// so a repeat changes nothing; seats it never had (or exchanged away), or more places
/// of an area than it has: [`Error::NotInBooking`], nothing changed. Otherwise as
/// [`cancel`].
#[tracing::instrument(skip_all, fields(booking = %id))]
pub async fn cancel_part<C>(
    client: &mut C,
    engine: &Engine,
    actor: &Actor,
    id: BookingId,
    part: Option<&CancelPart>,
) -> Result<Cancellation>
where
    C: GenericClient + Send,
{
    if let Some(p) = part {
        if p.seats.is_empty() && p.areas.is_empty() {
            return Err(Error::invalid("seats", "name at least one seat or place"));
        }
    }
    let tx = client.transaction().await?;
    let locked = lock_booking(&tx, engine, actor, id).await?;
    // A cancelled booking has nothing live to cancel, but what it never had is still
    // refused, as for a confirmed one.
    let rows = tx
        .cq(
            "SELECT s.id, s.label, s.area, bs.live, bs.ended_by, bs.ticket_type, bs.price
               FROM booking_seats bs JOIN seats s ON s.show_id = bs.show_id AND s.id = bs.seat_id
              WHERE bs.show_id = $1 AND bs.booking_id = $2
              ORDER BY s.row_index, s.number",
            &[&id.show().get(), &id.key()],
        )
        .await?;
    let picked = pick(&rows, part)?;
    let live = rows.iter().filter(|r| r.get::<_, bool>("live")).count();
    let mut cancelled = Vec::new();
    let mut event = None;
    if locked.confirmed && !picked.is_empty() {
        let mut ids: Vec<i64> = picked.iter().map(|r| r.get("id")).collect();
        ids.sort_unstable();
        event = free(&tx, id, &ids, picked.len() == live).await?;
        cancelled = picked.iter().map(|r| ticket_of(r)).collect();
    }
    let booking = load(&tx, id).await?.ok_or(Error::BookingNotFound)?;
    tx.commit().await?;
    if event.is_some() {
        engine.committed(None);
    }
    Ok(Cancellation {
        booking,
        cancelled,
        event,
    })
}

/// The rows of `rows` (the booking's, in seat-map order) that `part` cancels: every
/// live one for `None`.
fn pick<'a>(
    rows: &'a [tokio_postgres::Row],
    part: Option<&CancelPart>,
) -> Result<Vec<&'a tokio_postgres::Row>> {
    let live = |r: &&tokio_postgres::Row| r.get::<_, bool>("live");
    let Some(part) = part else {
        return Ok(rows.iter().filter(live).collect());
    };
    let mut picked = Vec::new();
    let mut seats = Vec::new();
    for label in part.seats.labels() {
        let found = rows.iter().find(|r| {
            r.get::<_, Option<&str>>("area").is_none()
                && r.get::<_, &str>("label") == label.as_str()
        });
        match found {
            Some(r) if live(&r) => picked.push(r),
            // Cancelled before: nothing to do twice. Exchanged away: not the booking's.
            Some(r) if r.get::<_, Option<&str>>("ended_by") == Some("cancel") => {}
            _ => seats.push(label.clone()),
        }
    }
    let mut areas = Vec::new();
    for want in &part.areas {
        let mine: Vec<&tokio_postgres::Row> = rows
            .iter()
            .filter(live)
            .filter(|r| r.get::<_, Option<&str>>("area") == Some(want.area.as_str()))
            .collect();
        if mine.len() < want.count as usize {
            areas.push(want.area.clone());
        } else {
            picked.extend(mine.iter().rev().take(want.count as usize));
        }
    }
    if !seats.is_empty() || !areas.is_empty() {
        return Err(Error::NotInBooking { seats, areas });
    }
    Ok(picked)
}

fn ticket_of(r: &tokio_postgres::Row) -> Ticket {
    Ticket {
        seat: SeatLabel::from_db(r.get("label")),
        area: r.get::<_, Option<String>>("area").map(AreaCode::from_db),
        ticket_type: TicketTypeName::from_db(r.get("ticket_type")),
        price: r.get("price"),
    }
}

/// Frees the booking's seats `ids` (ascending, live in it): locks them, points them
/// at nothing, ends their rows, lowers the total (or, when `last`, cancels the
/// booking) and writes the `cancel` event, in one statement.
async fn free<C: GenericClient>(
    tx: &C,
    id: BookingId,
    ids: &[i64],
    last: bool,
) -> Result<Option<Arc<SeatEvent>>> {
    tx.cq(
        "SELECT id FROM seats WHERE show_id = $1 AND id = ANY($2) ORDER BY id FOR UPDATE",
        &[&id.show().get(), &ids],
    )
    .await?;
    let sql = format!(
        "WITH freed AS (
                 UPDATE seats SET booking_id = NULL
                  WHERE show_id = $1 AND booking_id = $2 AND id = ANY($3)
                 RETURNING id, label, xmin, area
             ), gone AS (
                 UPDATE booking_seats SET live = false, ended_at = booking_now(show_id), ended_by = 'cancel'
                  WHERE show_id = $1 AND booking_id = $2 AND seat_id = ANY($3) AND live
                 RETURNING seat_id, price
             ), b AS (
                 UPDATE bookings
                    SET status = CASE WHEN $4 THEN 'cancelled' ELSE status END,
                        cancelled_at = CASE WHEN $4 THEN booking_now(show_id) END,
                        total = CASE WHEN $4 THEN total
                                     ELSE total - (SELECT coalesce(sum(price), 0) FROM gone) END
                  WHERE show_id = $1 AND id = $2
             ), {event}
             SELECT (SELECT count(*) FROM freed) AS freed, (SELECT count(*) FROM gone) AS gone,
                    {columns}",
        event = feed::EventsSql {
            show: "$1",
            cause: Cause::Cancel,
            state: SeatState::Available,
            until: None,
            was: None,
            from: "freed",
            per: None,
        }
        .cte_of(&feed::Subject {
            hold: None,
            booking: Some("$2"),
            ended: Some("$4")
        }),
        columns = feed::EVENT_COLUMNS,
    );
    let r = tx
        .cq_one(&sql, &[&id.show().get(), &id.key(), &ids, &last])
        .await?;
    let (freed, gone): (i64, i64) = (r.get("freed"), r.get("gone"));
    if freed != gone || freed != ids.len() as i64 {
        return Err(Error::Invariant(format!(
            "cancel freed {freed} seats of {gone} booked ({} locked)",
            ids.len()
        )));
    }
    feed::written_event(&r, id.show(), Cause::Cancel)
}
