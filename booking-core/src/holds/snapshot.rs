//! The snapshot read of a hold: what the wanted seats look like in one statement's
//! snapshot, without locks, and the refusals it gives before any lock is taken (unknown
//! seats, moved versions, seats taken already, ticket types not sold). Shared by every
//! hold path (`take.rs`, `pooled.rs`, `batch.rs`).

use super::checks::{check_versions, refuse_taken, refuse_tickets};
use super::take::Written;
use super::{Hold, HoldRequest};
use crate::database::Cached;
use crate::domain::{HoldId, HoldStatus, SeatLabel, TicketTypeName};
use crate::error::{Error, Result};
use crate::seats::{HELD, JOIN_HOLD, VERSION};
use crate::shows::{sale_refusal, SALE_COLUMNS};
use crate::tickets::{seat_ticket, Ticket, PRICE_JOIN};
use deadpool_postgres::GenericClient;
use std::collections::HashMap;

pub(super) struct Candidate {
    pub(super) id: i64,
    pub(super) label: SeatLabel,
    pub(super) ticket_type: TicketTypeName,
    pub(super) price: Option<i64>,
    pub(super) taken: bool,
    pub(super) version: String,
    /// Seat-map order: (row index, number).
    pub(super) order: (i32, i32),
}

/// What the wanted seats look like in one snapshot, read without locks. Unknown seats,
/// moved versions and seats taken already are refused here, before any lock is taken.
pub(super) struct Snapshot {
    pub(super) currency: String,
    /// The show's limit of seats per user, if it has one.
    pub(super) max_seats_per_user: Option<u32>,
    /// The allowance of the show's queue, if it has one (`crate::queue`).
    pub(super) queue_max_seats: Option<u32>,
    pub(super) by_label: HashMap<String, Candidate>,
}

impl Snapshot {
    /// The new hold `hold_id` of `req` on these seats, as `written`.
    pub(super) fn into_hold(self, req: &HoldRequest, hold_id: HoldId, written: Written) -> Hold {
        let mut seats: Vec<&Candidate> = self.by_label.values().collect();
        seats.sort_by_key(|c| c.order);
        Hold {
            hold_id,
            show_id: req.show,
            user_id: req.user.clone(),
            seats: seats.iter().map(|c| c.label.clone()).collect(),
            areas: Default::default(),
            tickets: seats
                .iter()
                .map(|c| Ticket {
                    seat: c.label.clone(),
                    area: None,
                    ticket_type: c.ticket_type.clone(),
                    price: c.price,
                })
                .collect(),
            status: HoldStatus::Active,
            created_at: written.created_at,
            expires_at: written.expires_at,
            total: self.by_label.values().filter_map(|c| c.price).sum(),
            currency: self.currency,
            booking_id: None,
            reference: req.reference.clone(),
            event: written.event,
        }
    }
}

/// The version each of `req`'s seats must still have (`if_versions`), or `None`, in
/// the order of its labels.
pub(super) fn wanted_versions(req: &HoldRequest) -> impl Iterator<Item = Option<&str>> {
    req.seats.labels().iter().map(|l| {
        req.if_versions
            .iter()
            .find(|(label, _)| label == l)
            .map(|(_, v)| v.as_str())
    })
}

pub(super) async fn snapshot<C: GenericClient>(client: &C, req: &HoldRequest) -> Result<Snapshot> {
    let show = req.show.get();
    let labels: Vec<&str> = req.seats.labels().iter().map(SeatLabel::as_str).collect();
    let types: Vec<Option<&str>> = named_types(req).collect();
    let rows = client
        .cq(
            &snapshot_sql("$1", "$2::text[]", "$3::text[]"),
            &[&show, &labels, &types],
        )
        .await?;
    snapshot_of(req, &rows)
}

/// SQL: the snapshot read of [`snapshot`], for the show `show`, the labels `labels`
/// and the ticket type named for each (`types`, text arrays of one length; `NULL`: the
/// default type): the show (for its currency and limit, and to tell "no such show"
/// from "no such seats") joined to the wanted seats, the holds they point at, and
/// their prices as the types asked for ([`seat_ticket`]).
pub(super) fn snapshot_sql(show: &str, labels: &str, types: &str) -> String {
    let seat_ticket = seat_ticket(show);
    format!(
        "SELECT sh.currency, sh.max_seats_per_user, sh.queue_max_seats, s.id, s.label, s.row_index, s.number,
                s.booking_id IS NOT NULL OR s.block_id IS NOT NULL OR {HELD} IS TRUE AS taken,
                s.hold_id IS NULL AND s.booking_id IS NULL AND s.block_id IS NULL AS clean,
                {VERSION} AS version, s.xmin::text AS xmin, {seat_ticket},
                {SALE_COLUMNS}
           FROM shows sh
           LEFT JOIN (unnest({labels}, {types}) AS w(label, type)
                      JOIN seats s ON s.show_id = {show} AND s.label = w.label) ON true
           {JOIN_HOLD}
           {PRICE_JOIN}
          WHERE sh.id = {show}"
    )
}

/// The ticket type `req` names for each of its seats (`None`: the default), in the
/// order of its labels.
pub(super) fn named_types(req: &HoldRequest) -> impl Iterator<Item = Option<&str>> {
    req.seats.labels().iter().map(|l| {
        req.ticket_types
            .iter()
            .find(|(label, _)| label == l)
            .map(|(_, t)| t.as_str())
    })
}

/// Reads the rows of a snapshot query (one per wanted seat that exists, or one with
/// no seat when none does; none when the show does not exist) and refuses what they
/// show cannot be held: a show not on sale or cancelled, unknown seats, then moved versions, then taken seats.
pub(super) fn snapshot_of(req: &HoldRequest, rows: &[tokio_postgres::Row]) -> Result<Snapshot> {
    let first = rows.first().ok_or(Error::ShowNotFound)?;
    let currency: String = first
        .get::<_, Option<String>>("currency")
        .ok_or(Error::ShowNotFound)?;
    // A show that does not sell now refuses whatever it is asked for.
    sale_refusal(first)?;
    let max_seats_per_user = first
        .get::<_, Option<i32>>("max_seats_per_user")
        .map(|m| m as u32);
    let queue_max_seats = first
        .get::<_, Option<i32>>("queue_max_seats")
        .map(|m| m as u32);
    let seat_rows = || {
        rows.iter()
            .filter(|r| r.get::<_, Option<i64>>("id").is_some())
    };
    let by_label: HashMap<String, Candidate> = seat_rows()
        .map(|r| {
            let label: String = r.get("label");
            let c = Candidate {
                id: r.get("id"),
                label: SeatLabel::from_db(label.clone()),
                ticket_type: TicketTypeName::from_db(r.get("ticket_type")),
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
    let sells: HashMap<String, (bool, bool)> = seat_rows()
        .map(|r| (r.get("label"), (r.get("type_known"), r.get("sells"))))
        .collect();
    refuse_tickets(
        req,
        |l| sells[l.as_str()],
        |l| &by_label[l.as_str()].ticket_type,
    )?;
    Ok(Snapshot {
        currency,
        max_seats_per_user,
        queue_max_seats,
        by_label,
    })
}
