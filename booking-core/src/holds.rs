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
//! The files: `take.rs` makes holds (the one statement that writes a hold, and the
//! transaction of [`hold`]) after the snapshot read of `snapshot.rs`, `pooled.rs` in
//! one round trip ([`hold_pooled`]); `batch.rs` makes the holds of many callers in one
//! statement (`place_batch.rs` those of places only), and their adds to live holds in
//! another (`add_batch.rs`); `lock.rs` locks a hold and its seats for the operations
//! that change it (here and in [`crate::bookings`]); `lifecycle.rs` releases and
//! extends; `cart.rs` adds seats and places to a hold and removes them;
//! `retype.rs` changes their ticket types. Reading a hold is here.
//!
//! Expiry is decided by the database clock (`now()`), when read: a hold past its
//! `expires_at` blocks nobody even before the sweeper visits it, and its seats are taken
//! over by the next hold directly.

use crate::database::Cached;
use crate::domain::{AreaCode, AreaWant, BookingId, HoldId, HoldStatus, HoldTtl, SeatLabel};
use crate::domain::{Reference, SeatSelection, ShowId, TicketTypeName, UserId, Version};
use crate::error::{Error, Result};
use crate::feed::SeatEvent;
use crate::tickets::{tickets_from_json, tickets_of_hold, Ticket};
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

mod add_batch;
pub mod batch;
mod cart;
mod checks;
mod lifecycle;
mod limit;
mod lock;
mod place_batch;
mod places;
mod pooled;
mod retype;
mod snapshot;
mod take;

pub use cart::{add, add_pooled, remove, HoldAddition};
pub use lifecycle::{extend, release};
pub(crate) use limit::check as check_user_limit;
pub(crate) use limit::live_seats;
pub(crate) use lock::{lock_hold, lock_hold_seats};
pub use pooled::hold_pooled;
pub use retype::change_tickets;
pub use take::hold;
pub(crate) use take::{write_hold, NewHold, WRITTEN_BEFORE_US};

/// A request to hold seats, already parsed.
#[derive(Debug, Clone)]
pub struct HoldRequest {
    /// The show whose seats to hold.
    pub show: ShowId,
    /// Who holds them: the only user who may then read, extend, release or confirm
    /// the hold.
    pub user: UserId,
    /// The seats, all or none (together with the places of `areas`). May be empty
    /// ([`SeatSelection::none`]) when `areas` asks for places.
    pub seats: SeatSelection,
    /// How long the hold lives from its creation; `None`:
    /// [`Settings::default_ttl`](crate::Settings::default_ttl).
    pub ttl: Option<HoldTtl>,
    /// Hold only if each named seat (one of `seats`, else [`Error::Invalid`]) still
    /// has this version; else [`Error::StaleVersion`]. Empty: no condition.
    pub if_versions: Vec<(SeatLabel, Version)>,
    /// The ticket type of each named seat (one of `seats`, else [`Error::Invalid`]);
    /// the others are sold as the show's default type. Empty: all default.
    pub ticket_types: Vec<(SeatLabel, TicketTypeName)>,
    /// Places of standing areas, each area at most once, all or none together with
    /// `seats`; seats plus places at most
    /// [`Settings::max_seats_per_hold`](crate::Settings::max_seats_per_hold). Empty:
    /// seats only.
    pub areas: Vec<AreaWant>,
    /// The integrator's reference and metadata, kept with the hold and copied to its
    /// booking by the confirm unless the confirm names its own.
    pub reference: Reference,
}

impl HoldRequest {
    /// A request for `seats` of `show` by `user`, with the default ttl, no version
    /// condition, every seat as the show's default ticket type.
    pub fn new(show: ShowId, user: UserId, seats: SeatSelection) -> Self {
        HoldRequest {
            show,
            user,
            seats,
            ttl: None,
            if_versions: Vec::new(),
            ticket_types: Vec::new(),
            areas: Vec::new(),
            reference: Reference::default(),
        }
    }

    /// Seats plus places asked for.
    pub fn size(&self) -> usize {
        self.seats.len() + self.areas.iter().map(|w| w.count as usize).sum::<usize>()
    }
}

/// A hold as its owner sees it.
#[derive(Debug, Clone, Serialize)]
pub struct Hold {
    /// The hold's id, chosen at random when it was made.
    pub hold_id: HoldId,
    /// The show the held seats belong to.
    pub show_id: ShowId,
    /// The hold's owner.
    pub user_id: UserId,
    /// In seat-map order (row, then number); seats only.
    pub seats: Vec<SeatLabel>,
    /// Places of standing areas held, by area; empty when none (and then left out of
    /// the JSON).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub areas: BTreeMap<AreaCode, u32>,
    /// Each seat and place as sold: its ticket type and price, in seat-map order, the
    /// places last (by area, then number).
    pub tickets: Vec<Ticket>,
    /// As of this read: an active hold past `expires_at` reads
    /// [`HoldStatus::Expired`].
    pub status: HoldStatus,
    /// When the hold was made (database clock).
    pub created_at: DateTime<Utc>,
    /// When it stops holding its seats unless extended (database clock): its creation
    /// plus its ttl, or the time of the last extend plus that extend's ttl.
    pub expires_at: DateTime<Utc>,
    /// Sum of the tickets' prices in minor units (tickets without a price count 0).
    pub total: i64,
    /// The show's currency (ISO 4217 code) of `total`.
    pub currency: String,
    /// Set once the hold is confirmed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub booking_id: Option<BookingId>,
    /// The integrator's reference and metadata given when the hold was made.
    #[serde(flatten)]
    pub reference: Reference,
    /// The seat event this call wrote (any call that makes a hold, and [`release`]),
    /// once committed: the caller's process may apply it to what it caches before the
    /// feed brings it (read your writes). `None` from reads and extends. Not part of
    /// the hold's JSON.
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
            areas,
            tickets,
            status,
            created_at,
            expires_at,
            total,
            currency,
            booking_id,
            reference,
            event: _,
        } = self;
        *hold_id == other.hold_id
            && *show_id == other.show_id
            && *user_id == other.user_id
            && *seats == other.seats
            && *areas == other.areas
            && *tickets == other.tickets
            && *status == other.status
            && *created_at == other.created_at
            && *expires_at == other.expires_at
            && *total == other.total
            && *currency == other.currency
            && *booking_id == other.booking_id
            && *reference == other.reference
    }
}

impl Eq for Hold {}

/// How many of `tickets` are places of each area.
pub(crate) fn areas_of(tickets: &[Ticket]) -> BTreeMap<AreaCode, u32> {
    let mut areas = BTreeMap::new();
    for a in tickets.iter().filter_map(|t| t.area.as_ref()) {
        *areas.entry(a.clone()).or_insert(0) += 1;
    }
    areas
}

/// Reads a hold as it is now, whoever owns it.
pub(crate) async fn load<C: GenericClient>(client: &C, id: HoldId) -> Result<Option<Hold>> {
    let row = client
        .cq_opt(
            &format!(
                "SELECT h.user_id, h.status, h.expires_at <= booking_now(h.show_id) AS lapsed, h.created_at,
                    h.expires_at, h.total, sh.currency, b.id AS booking_key, {tickets},
                    h.external_ref, h.metadata::text AS metadata,
                    array(SELECT s.label
                            FROM hold_seats hs
                            JOIN seats s ON s.show_id = hs.show_id AND s.id = hs.seat_id
                           WHERE hs.show_id = $1 AND hs.hold_id = h.id
                             AND s.area IS NULL
                           ORDER BY s.row_index, s.number) AS seats
               FROM holds h
               JOIN shows sh ON sh.id = h.show_id
               LEFT JOIN bookings b ON b.show_id = h.show_id AND b.hold_id = h.id
              WHERE h.show_id = $1 AND h.id = $2",
                // The subqueries name the show by the parameter, not `h.show_id`:
                // Citus routes a statement to the show's node only when every table
                // in it, subqueries included, is pinned to the show.
                tickets = tickets_of_hold("$1", "h.id")
            ),
            &[&id.show().get(), &id.key()],
        )
        .await?;
    let Some(r) = row else { return Ok(None) };
    let tickets = tickets_from_json(r.get("tickets"))?;
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
        areas: areas_of(&tickets),
        tickets,
        status,
        created_at: r.get("created_at"),
        expires_at: r.get("expires_at"),
        total: r.get("total"),
        currency: r.get("currency"),
        booking_id: r
            .get::<_, Option<Uuid>>("booking_key")
            .map(|k| BookingId::from_parts(id.show(), k)),
        reference: Reference::from_row(&r)?,
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
