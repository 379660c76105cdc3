//! Exchanging seats of a booking for others, in one transaction.
//!
//! Lock order, as everywhere in this crate: the booking row first, then every seat the
//! exchange touches in ascending id order (those given back and those taken, in one
//! statement), then, when it takes more seats than it gives back, the buyer's limit
//! lock. One statement writes the seats, the booking's rows and total, and one
//! `exchange` event whose entries carry their own states.

use super::{load, lock_booking, Booking};
use crate::database::Cached;
use crate::domain::{Actor, BookingId, SeatLabel, SeatSelection, SeatState, TicketTypeName};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::feed::{self, Cause, SeatEvent};
use crate::holds::{check_user_limit, WRITTEN_BEFORE_US};
use crate::seats::{HELD, JOIN_HOLD};
use crate::shows::PIN;
use crate::tickets::{seat_ticket, PRICE_JOIN};
use deadpool_postgres::GenericClient;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

/// An exchange: seats of a booking given back for others taken, in one transaction.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// Seats of the booking to give back.
    pub release: SeatSelection,
    /// Seats to take instead (not places), each free now.
    pub take: SeatSelection,
    /// The ticket type of each named seat of `take`; the others are sold as the show's
    /// default type. Prices are today's.
    pub ticket_types: Vec<(SeatLabel, TicketTypeName)>,
}

/// What an exchange did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchanged {
    /// The booking with its new seats and total.
    pub booking: Booking,
    /// The new total minus the old, in minor units: what the buyer pays (or, when
    /// negative, gets back).
    pub difference: i64,
    /// The seat event it wrote, once committed.
    pub event: Option<Arc<SeatEvent>>,
}

/// Gives back the booking's seats `ex.release` and takes `ex.take` instead, sold as
/// `ex.ticket_types` at today's prices, in one transaction: all or none. The booking
/// keeps its id; its total changes by the returned `difference`.
///
/// Errors, in this order: [`Error::Invalid`] (an empty list, a seat in both, a ticket
/// type for a seat not taken or one the show lacks), [`Error::BookingNotFound`],
/// [`Error::Forbidden`], [`Error::BookingCancelled`], [`Error::SeatNotFound`] (seats
/// to take that the show lacks), [`Error::NotInBooking`] (seats to give back it does
/// not have), [`Error::SeatsUnavailable`] (seats to take that are held, booked or
/// blocked now), [`Error::TicketTypeUnavailable`], [`Error::UserLimitReached`] (when it
/// takes more than it gives back), [`Error::Busy`].
#[tracing::instrument(skip_all, fields(booking = %id))]
pub async fn exchange<C>(
    client: &mut C,
    engine: &Engine,
    actor: &Actor,
    id: BookingId,
    ex: &Exchange,
) -> Result<Exchanged>
where
    C: GenericClient + Send,
{
    check_exchange(ex)?;
    let show = id.show().get();
    let tx = client.transaction().await?;
    let locked = lock_booking(&tx, engine, actor, id).await?;
    if !locked.confirmed {
        return Err(Error::BookingCancelled);
    }
    // An exchange takes seats: only while the show sells. The booking row is locked, so
    // a show cancellation (which locks every live booking first) is either done, and the
    // booking read cancelled above, or waits for us and cancels what we leave.
    crate::shows::check_on_sale(&tx, id.show()).await?;
    let want = Wanted::read(&tx, id, ex).await?;

    // Every seat touched, given back and taken, locked in one ascending pass.
    let mut all: Vec<i64> = want
        .release
        .iter()
        .chain(want.take.keys())
        .copied()
        .collect();
    all.sort_unstable();
    let locked_rows = tx
        .cq(
            &format!(
                "SELECT id, label, hold_id,
                        booking_id IS NOT NULL OR block_id IS NOT NULL AS booked,
                        xmin::text AS xmin, {WRITTEN_BEFORE_US} AS written_before_us
                   FROM seats WHERE show_id = $1 AND id = ANY($2) ORDER BY id FOR UPDATE"
            ),
            &[&show, &all],
        )
        .await?;
    // What the seats to take point at now, read in a new statement (see `holds`).
    let pointed: Vec<Uuid> = locked_rows
        .iter()
        .filter(|r| want.take.contains_key(&r.get::<_, i64>("id")))
        .filter_map(|r| r.get::<_, Option<Uuid>>("hold_id"))
        .collect();
    let live_holds: Vec<Uuid> = if pointed.is_empty() {
        Vec::new()
    } else {
        tx.cq(
            &format!("SELECT h.id FROM holds h WHERE h.show_id = $1 AND h.id = ANY($2) AND {HELD}"),
            &[&show, &pointed],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect()
    };
    let mut taken = Vec::new();
    let mut seen: HashMap<i64, String> = HashMap::new();
    for r in locked_rows
        .iter()
        .filter(|r| want.take.contains_key(&r.get::<_, i64>("id")))
    {
        let held = r
            .get::<_, Option<Uuid>>("hold_id")
            .is_some_and(|h| live_holds.contains(&h));
        // A seat written by a younger transaction while we waited is refused even when
        // free: the feed's order (see `holds/take.rs`).
        if r.get::<_, bool>("booked") || held || !r.get::<_, bool>("written_before_us") {
            taken.push(SeatLabel::from_db(r.get("label")));
        }
        seen.insert(r.get("id"), r.get("xmin"));
    }
    if !taken.is_empty() {
        return Err(Error::SeatsUnavailable {
            seats: taken,
            areas: Vec::new(),
        });
    }
    want.refuse_tickets()?;
    let more = ex.take.len().saturating_sub(ex.release.len());
    if more > 0 {
        if let Some(limit) = want.limit {
            check_user_limit(&tx, id.show(), &locked.owner, more, limit).await?;
        }
    }
    let event = write_exchange(&tx, id, &want, &seen).await?;
    let booking = load(&tx, id).await?.ok_or(Error::BookingNotFound)?;
    tx.commit().await?;
    engine.committed(None);
    Ok(Exchanged {
        difference: booking.total - locked.total,
        booking,
        event,
    })
}

/// What an exchange says of itself, checked before anything is read.
fn check_exchange(ex: &Exchange) -> Result<()> {
    if ex.release.is_empty() {
        return Err(Error::invalid(
            "release",
            "name at least one seat to give back",
        ));
    }
    if ex.take.is_empty() {
        return Err(Error::invalid("take", "name at least one seat to take"));
    }
    if let Some(l) = ex
        .take
        .labels()
        .iter()
        .find(|l| ex.release.labels().contains(l))
    {
        return Err(Error::invalid(
            "take",
            format!("{l} is both given back and taken"),
        ));
    }
    if let Some((l, _)) = ex
        .ticket_types
        .iter()
        .find(|(l, _)| !ex.take.labels().contains(l))
    {
        return Err(Error::invalid(
            "ticket_types",
            format!("{l} is not a seat taken"),
        ));
    }
    Ok(())
}

/// A seat to take: as sold, and whether the show sells its type for its category.
struct ToTake {
    label: SeatLabel,
    ticket_type: TicketTypeName,
    price: Option<i64>,
    type_known: bool,
    sells: bool,
}

/// The seats of an exchange, read before any seat lock.
struct Wanted {
    /// Ids of the booking's live seats to give back.
    release: Vec<i64>,
    /// The seats to take, by id.
    take: HashMap<i64, ToTake>,
    /// The show's limit of seats per buyer.
    limit: Option<u32>,
}

impl Wanted {
    /// Reads both lists in one snapshot and refuses, in order, seats to take the show
    /// lacks, seats to give back the booking lacks, seats to take already taken.
    async fn read<C: GenericClient>(tx: &C, id: BookingId, ex: &Exchange) -> Result<Wanted> {
        let show = id.show().get();
        let release: Vec<&str> = ex.release.labels().iter().map(SeatLabel::as_str).collect();
        let take: Vec<&str> = ex.take.labels().iter().map(SeatLabel::as_str).collect();
        let types: Vec<Option<&str>> = ex
            .take
            .labels()
            .iter()
            .map(|l| {
                ex.ticket_types
                    .iter()
                    .find(|(t, _)| t == l)
                    .map(|(_, n)| n.as_str())
            })
            .collect();
        let (mine, wanted) = futures_util::future::try_join(
            tx.cq(
                "SELECT s.id, s.label FROM booking_seats bs
                   JOIN seats s ON s.show_id = bs.show_id AND s.id = bs.seat_id
                  WHERE bs.show_id = $1 AND bs.booking_id = $2 AND bs.live AND s.area IS NULL
                    AND s.label = ANY($3)",
                &[&show, &id.key(), &release],
            ),
            tx.cq(
                &format!(
                    "SELECT sh.max_seats_per_user, s.id, s.label,
                            s.booking_id IS NOT NULL OR s.block_id IS NOT NULL
                                OR {HELD} IS TRUE AS taken,
                            {ticket}
                       FROM shows sh
                       JOIN unnest($2::text[], $3::text[]) AS w(label, type) ON true
                       JOIN seats s ON s.show_id = $1 AND s.label = w.label AND s.area IS NULL
                       {JOIN_HOLD}
                       {PRICE_JOIN}
                      WHERE sh.id = $1",
                    ticket = seat_ticket("$1"),
                ),
                &[&show, &take, &types],
            ),
        )
        .await?;
        let unknown: Vec<SeatLabel> = ex
            .take
            .labels()
            .iter()
            .filter(|l| {
                !wanted
                    .iter()
                    .any(|r| r.get::<_, &str>("label") == l.as_str())
            })
            .cloned()
            .collect();
        if !unknown.is_empty() {
            return Err(Error::SeatNotFound { seats: unknown });
        }
        let missing: Vec<SeatLabel> = ex
            .release
            .labels()
            .iter()
            .filter(|l| !mine.iter().any(|r| r.get::<_, &str>("label") == l.as_str()))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(Error::NotInBooking {
                seats: missing,
                areas: Vec::new(),
            });
        }
        let taken: Vec<SeatLabel> = wanted
            .iter()
            .filter(|r| r.get::<_, bool>("taken"))
            .map(|r| SeatLabel::from_db(r.get("label")))
            .collect();
        if !taken.is_empty() {
            return Err(Error::SeatsUnavailable {
                seats: taken,
                areas: Vec::new(),
            });
        }
        Ok(Wanted {
            release: mine.iter().map(|r| r.get("id")).collect(),
            limit: wanted
                .first()
                .and_then(|r| r.get::<_, Option<i32>>("max_seats_per_user"))
                .map(|m| m as u32),
            take: wanted
                .iter()
                .map(|r| {
                    let t = ToTake {
                        label: SeatLabel::from_db(r.get("label")),
                        ticket_type: TicketTypeName::from_db(r.get("ticket_type")),
                        price: r.get("price"),
                        type_known: r.get("type_known"),
                        sells: r.get("sells"),
                    };
                    (r.get("id"), t)
                })
                .collect(),
        })
    }

    /// Refuses types the show lacks ([`Error::Invalid`]), then types not sold for a
    /// seat's category ([`Error::TicketTypeUnavailable`]).
    fn refuse_tickets(&self) -> Result<()> {
        if let Some(t) = self.take.values().find(|t| !t.type_known) {
            return Err(Error::invalid(
                "ticket_types",
                format!("the show has no ticket type {}", t.ticket_type),
            ));
        }
        let refused: Vec<(SeatLabel, TicketTypeName)> = self
            .take
            .values()
            .filter(|t| !t.sells)
            .map(|t| (t.label.clone(), t.ticket_type.clone()))
            .collect();
        if refused.is_empty() {
            return Ok(());
        }
        Err(Error::TicketTypeUnavailable {
            tickets: refused,
            areas: Vec::new(),
        })
    }
}

/// The statement of an exchange: the seats given back freed and their rows ended, the
/// seats taken booked at the versions locked (`seen`) with rows of their own, the
/// total moved by the difference, one `exchange` event for both.
async fn write_exchange<C: GenericClient>(
    tx: &C,
    id: BookingId,
    want: &Wanted,
    seen: &HashMap<i64, String>,
) -> Result<Option<Arc<SeatEvent>>> {
    let mut take: Vec<(i64, &ToTake)> = want.take.iter().map(|(i, t)| (*i, t)).collect();
    take.sort_unstable_by_key(|t| t.0);
    let ids: Vec<i64> = take.iter().map(|t| t.0).collect();
    let xmins: Vec<&str> = take.iter().map(|t| seen[&t.0].as_str()).collect();
    let types: Vec<&str> = take.iter().map(|t| t.1.ticket_type.as_str()).collect();
    let prices: Vec<Option<i64>> = take.iter().map(|t| t.1.price).collect();
    let sql = format!(
        "WITH gone AS (
                 UPDATE booking_seats SET live = false, ended_at = booking_now(show_id), ended_by = 'exchange'
                  WHERE show_id = $1 AND booking_id = $2 AND seat_id = ANY($3) AND live
                 RETURNING seat_id, price
             ), freed AS (
                 UPDATE seats SET booking_id = NULL
                  WHERE show_id = $1 AND booking_id = $2 AND id = ANY($3)
                 RETURNING id, label, xmin, area, 'available'::text AS state
             ), booked AS (
                 UPDATE seats s SET hold_id = NULL, booking_id = $2
                   FROM unnest($4::bigint[], $5::text[]) AS seen(id, xmin)
                  WHERE s.show_id = $1 AND s.id = seen.id AND s.xmin::text = seen.xmin
                 RETURNING s.id, s.label, s.xmin, s.area, 'booked'::text AS state
             ), bs AS (
                 INSERT INTO booking_seats (show_id, booking_id, seat_id, ticket_type, price)
                 SELECT p.pin, $2, w.id, w.type, w.price
                   FROM unnest($4::bigint[], $6::text[], $7::bigint[]) AS w(id, type, price)
                   JOIN {PIN} p ON p.pin = $1
                 ON CONFLICT (show_id, booking_id, seat_id) DO UPDATE
                    SET live = true, ended_at = NULL, ended_by = NULL,
                        ticket_type = EXCLUDED.ticket_type, price = EXCLUDED.price
                 RETURNING seat_id
             ), b AS (
                 UPDATE bookings
                    SET total = total - (SELECT coalesce(sum(price), 0) FROM gone)
                              + (SELECT coalesce(sum(p), 0) FROM unnest($7::bigint[]) AS p)
                  WHERE show_id = $1 AND id = $2
             ), changed AS (
                 SELECT * FROM freed UNION ALL SELECT * FROM booked
             ), {event}
             SELECT (SELECT count(*) FROM gone) AS gone, (SELECT count(*) FROM freed) AS freed,
                    (SELECT count(*) FROM booked) AS booked, (SELECT count(*) FROM bs) AS rows,
                    {columns}",
        event = feed::EventsSql {
            show: "$1",
            cause: Cause::Exchange,
            state: SeatState::Booked,
            until: None,
            was: None,
            from: "changed",
            per: None,
        }
        .cte_stated_of(&feed::Subject {
            booking: Some("$2"),
            ..Default::default()
        }),
        columns = feed::EVENT_COLUMNS,
    );
    let r = tx
        .cq_one(
            &sql,
            &[
                &id.show().get(),
                &id.key(),
                &want.release,
                &ids,
                &xmins,
                &types,
                &prices,
            ],
        )
        .await?;
    let counts: [i64; 4] = [
        r.get("gone"),
        r.get("freed"),
        r.get("booked"),
        r.get("rows"),
    ];
    let expected = [
        want.release.len() as i64,
        want.release.len() as i64,
        ids.len() as i64,
        ids.len() as i64,
    ];
    if counts != expected {
        return Err(Error::Invariant(format!(
            "exchange wrote {counts:?} (gone, freed, booked, rows), not {expected:?}"
        )));
    }
    feed::written_event(&r, id.show(), Cause::Exchange)
}
