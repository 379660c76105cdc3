//! What a hold request must say of itself, and the refusals a snapshot of its seats
//! gives (versions moved, seats taken, ticket types not sold): shared by every hold
//! path through `take.rs`.

use super::HoldRequest;
use crate::database::Settings;
use crate::domain::{HoldTtl, SeatLabel, TicketTypeName};
use crate::error::{Error, Result};

/// Refuses the seats whose ticket type the show does not have ([`Error::Invalid`],
/// field `ticket_types`) or does not sell for their category
/// ([`Error::TicketTypeUnavailable`]); `known_sells` gives both for a label.
pub(super) fn refuse_tickets<'a>(
    req: &HoldRequest,
    known_sells: impl Fn(&SeatLabel) -> (bool, bool),
    ticket_type: impl Fn(&SeatLabel) -> &'a TicketTypeName,
) -> Result<()> {
    let labels = req.seats.labels();
    if let Some(l) = labels.iter().find(|l| !known_sells(l).0) {
        return Err(Error::invalid(
            "ticket_types",
            format!("the show has no ticket type {}", ticket_type(l)),
        ));
    }
    let refused: Vec<(SeatLabel, TicketTypeName)> = labels
        .iter()
        .filter(|l| !known_sells(l).1)
        .map(|l| (l.clone(), ticket_type(l).clone()))
        .collect();
    if refused.is_empty() {
        Ok(())
    } else {
        Err(Error::TicketTypeUnavailable {
            tickets: refused,
            areas: Vec::new(),
        })
    }
}

/// Checks what a request says of itself before anything is read: its ticket types
/// and versions name only seats it asks for, it asks for 1 to
/// [`Settings::max_seats_per_hold`] seats and places together, each area once; and its
/// ttl, which is returned.
pub(super) fn check(req: &HoldRequest, settings: &Settings) -> Result<HoldTtl> {
    check_if_versions(req)?;
    check_ticket_types(req)?;
    let size = req.size();
    if size == 0 {
        return Err(Error::invalid("seats", "name at least one seat or place"));
    }
    if size > settings.max_seats_per_hold {
        return Err(Error::invalid(
            "areas",
            format!(
                "at most {} seats and places in one hold",
                settings.max_seats_per_hold
            ),
        ));
    }
    for (i, w) in req.areas.iter().enumerate() {
        if req.areas[..i].iter().any(|o| o.area == w.area) {
            return Err(Error::invalid(
                "areas",
                format!("{} is listed twice", w.area),
            ));
        }
    }
    settings.hold_ttl(req.ttl)
}

/// `req.ticket_types` may only name seats of `req.seats` ([`Error::Invalid`], field
/// `ticket_types`).
fn check_ticket_types(req: &HoldRequest) -> Result<()> {
    for (label, _) in &req.ticket_types {
        if !req.seats.labels().contains(label) {
            return Err(Error::invalid(
                "ticket_types",
                format!("{label} is not one of the seats asked for"),
            ));
        }
    }
    Ok(())
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

pub(super) fn check_versions<'a>(
    req: &HoldRequest,
    current: impl Fn(&SeatLabel) -> &'a str,
) -> Result<()> {
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

pub(super) fn refuse_taken(req: &HoldRequest, taken: impl Fn(&SeatLabel) -> bool) -> Result<()> {
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
        Err(Error::SeatsUnavailable {
            seats: blocked,
            areas: Vec::new(),
        })
    }
}
