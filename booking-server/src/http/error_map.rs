//! The one place where `booking_core::Error` becomes an answer: each case gets one
//! status, one error code and one sentence. Handlers only write `?`.

use super::reply::{ApiError, Detail, TicketRef};
use booking_core::{AreaCode, Error as CoreError, SeatLabel};
use hyper::StatusCode;

impl ApiError {
    fn with_seats(mut self, seats: &[SeatLabel]) -> ApiError {
        self.detail.get_or_insert_with(Default::default).seats =
            Some(seats.iter().map(|s| s.as_str().to_owned()).collect());
        self
    }
}

fn area_list(areas: &[AreaCode]) -> String {
    areas
        .iter()
        .map(AreaCode::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

fn codes(areas: &[AreaCode]) -> Vec<String> {
    areas.iter().map(|a| a.as_str().to_owned()).collect()
}

fn seat_list(seats: &[SeatLabel]) -> String {
    seats
        .iter()
        .map(SeatLabel::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> ApiError {
        use StatusCode as S;
        match e {
            // Best available found no group: there is no seat to name.
            CoreError::SeatsUnavailable { seats, areas } if !areas.is_empty() => {
                let what = if seats.is_empty() {
                    format!("Not enough places left in {}", area_list(&areas))
                } else {
                    format!(
                        "Already held, booked or blocked: {}; and not enough places left in {}",
                        seat_list(&seats),
                        area_list(&areas)
                    )
                };
                let mut e = ApiError::new(
                    S::CONFLICT,
                    "seats_unavailable",
                    format!("{what}. Nothing was held; ask for fewer places or other seats."),
                )
                .with_seats(&seats);
                e.detail.get_or_insert_with(Default::default).areas = Some(codes(&areas));
                e
            }
            CoreError::AreaNotFound { areas } => {
                let mut e = ApiError::new(
                    S::NOT_FOUND,
                    "area_not_found",
                    format!("The show has no standing areas {}.", area_list(&areas)),
                );
                e.detail = Some(Box::new(Detail {
                    areas: Some(codes(&areas)),
                    ..Default::default()
                }));
                e
            }
            CoreError::SeatsUnavailable { seats, .. } if seats.is_empty() => ApiError::new(
                S::CONFLICT,
                "seats_unavailable",
                "No group of free seats fits the request. Nothing was held; ask for fewer seats, another category or seats not side by side.",
            )
            .with_seats(&seats),
            CoreError::SeatsUnavailable { seats, .. } => ApiError::new(
                S::CONFLICT,
                "seats_unavailable",
                format!("Already held, booked or blocked: {}. Nothing was done; pick other seats.", seat_list(&seats)),
            )
            .with_seats(&seats),
            CoreError::StaleVersion { seats } => ApiError::new(
                S::PRECONDITION_FAILED,
                "stale_version",
                format!("These seats changed since you looked: {}. Reload the seat map.", seat_list(&seats)),
            )
            .with_seats(&seats),
            CoreError::SeatNotFound { seats } => ApiError::new(
                S::NOT_FOUND,
                "seat_not_found",
                format!("The show has no seats {}.", seat_list(&seats)),
            )
            .with_seats(&seats),
            CoreError::ShowNotFound => ApiError::new(S::NOT_FOUND, "show_not_found", "No show has this id."),
            CoreError::VenueNotFound => ApiError::new(S::NOT_FOUND, "venue_not_found", "No venue has this id."),
            CoreError::BlockNotFound => {
                ApiError::new(S::NOT_FOUND, "block_not_found", "The show has no block with this id.")
            }
            CoreError::TicketTypeUnavailable { tickets, areas } => {
                let list = tickets
                    .iter()
                    .map(|(s, t)| format!("{s} as {t}"))
                    .chain(areas.iter().map(|(a, t)| format!("places of {a} as {t}")))
                    .collect::<Vec<_>>()
                    .join(", ");
                let mut e = ApiError::new(
                    S::CONFLICT,
                    "ticket_type_unavailable",
                    format!("These seats are not sold as the type asked: {list}. Nothing was held; pick another type or other seats."),
                );
                e.detail = Some(Box::new(Detail {
                    seats: None,
                    tickets: Some(
                        tickets
                            .into_iter()
                            .map(|(s, t)| TicketRef {
                                seat: Some(s.as_str().to_owned()),
                                area: None,
                                ticket_type: t.as_str().to_owned(),
                            })
                            .chain(areas.into_iter().map(|(a, t)| TicketRef {
                                seat: None,
                                area: Some(a.as_str().to_owned()),
                                ticket_type: t.as_str().to_owned(),
                            }))
                            .collect(),
                    ),
                    limit: None,
                    areas: None,
                    ..Default::default()
                }));
                e
            }
            CoreError::UserLimitReached { limit, current } => {
                let mut e = ApiError::new(
                    S::CONFLICT,
                    "user_limit_reached",
                    format!("A user may have at most {limit} seats of this show; you have {current}. Nothing was held."),
                );
                e.detail = Some(Box::new(Detail {
                    seats: None,
                    tickets: None,
                    limit: Some((limit, current)),
                    areas: None,
                    ..Default::default()
                }));
                e
            }
            CoreError::NotOnSale {
                sales_start,
                sales_end,
            } => {
                let when = match (sales_start, sales_end) {
                    (Some(s), None) => format!("Sales open at {}", s.to_rfc3339()),
                    (None, Some(e)) => format!("Sales closed at {}", e.to_rfc3339()),
                    (Some(s), Some(e)) => format!(
                        "The show sells from {} to {}",
                        s.to_rfc3339(),
                        e.to_rfc3339()
                    ),
                    (None, None) => "The show is not on sale".to_owned(),
                };
                let mut e = ApiError::new(
                    S::CONFLICT,
                    "not_on_sale",
                    format!("{when}; nothing was held."),
                );
                e.detail = Some(Box::new(Detail {
                    window: Some((sales_start, sales_end)),
                    ..Default::default()
                }));
                e
            }
            CoreError::QueueNotEnabled => ApiError::new(
                S::CONFLICT,
                "queue_not_enabled",
                "The show has no queue: take seats directly.",
            ),
            CoreError::NotInQueue => ApiError::new(
                S::NOT_FOUND,
                "not_in_queue",
                "You have not joined this show's queue.",
            ),
            CoreError::NotAdmitted => ApiError::new(
                S::FORBIDDEN,
                "not_admitted",
                "The show sells through its queue: join it and wait to be admitted. Nothing was held.",
            ),
            CoreError::AdmissionExpired => ApiError::new(
                S::CONFLICT,
                "admission_expired",
                "Your admission from the queue has ended. Nothing was held.",
            ),
            CoreError::QueueMaxSeats { max_seats, current } => {
                let mut e = ApiError::new(
                    S::CONFLICT,
                    "queue_max_seats",
                    format!("An admitted buyer may have at most {max_seats} seats of this show; you have {current}. Nothing was held."),
                );
                e.detail = Some(Box::new(Detail {
                    limit: Some((max_seats, current)),
                    ..Default::default()
                }));
                e
            }
            CoreError::ShowCancelled => ApiError::new(
                S::CONFLICT,
                "show_cancelled",
                "The show was cancelled; nothing can be held or changed.",
            ),
            CoreError::HoldNotFound => ApiError::new(S::NOT_FOUND, "hold_not_found", "No hold has this id."),
            CoreError::BookingNotFound => {
                ApiError::new(S::NOT_FOUND, "booking_not_found", "No booking has this id.")
            }
            CoreError::WebhookNotFound => {
                ApiError::new(S::NOT_FOUND, "webhook_not_found", "No webhook has this id.")
            }
            CoreError::NotInHold { seats, areas } => {
                let mut named: Vec<String> = seats.iter().map(|s| s.as_str().to_owned()).collect();
                named.extend(areas.iter().map(|a| format!("places of {a}")));
                let mut e = ApiError::new(
                    S::CONFLICT,
                    "not_in_hold",
                    format!("The hold does not have {}. Nothing was changed.", named.join(", ")),
                )
                .with_seats(&seats);
                if !areas.is_empty() {
                    e.detail.get_or_insert_with(Default::default).areas = Some(codes(&areas));
                }
                e
            }
            CoreError::NotInBooking { seats, areas } => {
                let mut named: Vec<String> = seats.iter().map(|s| s.as_str().to_owned()).collect();
                named.extend(areas.iter().map(|a| format!("that many places of {a}")));
                let mut e = ApiError::new(
                    S::CONFLICT,
                    "not_in_booking",
                    format!("The booking does not have {}. Nothing was changed.", named.join(", ")),
                )
                .with_seats(&seats);
                if !areas.is_empty() {
                    e.detail.get_or_insert_with(Default::default).areas = Some(codes(&areas));
                }
                e
            }
            CoreError::PositionExpired => ApiError::new(
                S::GONE,
                "position_expired",
                "Events since this position are no longer kept (24 hours); read the seat map again and follow from its position.",
            ),
            CoreError::ExternalRefTaken => ApiError::new(
                S::CONFLICT,
                "external_ref_taken",
                "Another booking of this show has this external_ref; nothing was booked. Use another reference, or find that booking by it.",
            ),
            CoreError::BookingCancelled => ApiError::new(
                S::CONFLICT,
                "booking_cancelled",
                "The booking is cancelled; nothing in it can be changed.",
            ),
            CoreError::HoldExpiredTaken { seats } => ApiError::new(
                S::GONE,
                "hold_expired",
                format!(
                    "The hold expired and some of its seats were taken since: {}. Nothing was booked; hold seats again.",
                    seat_list(&seats)
                ),
            )
            .with_seats(&seats),
            CoreError::HoldExpired => ApiError::new(
                S::GONE,
                "hold_expired",
                "The hold expired and its seats were let go; hold them again.",
            ),
            CoreError::HoldReleased => {
                ApiError::new(S::CONFLICT, "hold_released", "The hold was released; hold the seats again.")
            }
            CoreError::HoldConfirmed => ApiError::new(
                S::CONFLICT,
                "hold_confirmed",
                "The hold is already confirmed into a booking; cancel the booking instead.",
            ),
            CoreError::Forbidden => {
                ApiError::new(S::FORBIDDEN, "forbidden", "This belongs to another user.")
            }
            CoreError::HoldLimitReached { max_seconds } => ApiError::new(
                S::CONFLICT,
                "hold_limit_reached",
                format!("A hold lives at most {max_seconds} seconds from its creation; confirm it or hold again."),
            ),
            CoreError::Invalid { field, reason } => {
                ApiError::invalid(field.clone(), format!("Invalid {field}: {reason}."))
            }
            CoreError::Busy(why) => {
                tracing::warn!(reason = why, "busy");
                let mut e = ApiError::unavailable("The service is busy right now; retry shortly.");
                e.lock_timeout = why == booking_core::error::LOCK_WAIT;
                e
            }
            CoreError::Database(e) if is_transient(&e) => {
                tracing::warn!(error = %booking_core::error::describe(&e), "database unavailable");
                ApiError::unavailable("The database cannot be reached right now; retry shortly.")
            }
            CoreError::Pool(e) => {
                tracing::warn!(error = %e, "connection pool");
                ApiError::unavailable("The database cannot be reached right now; retry shortly.")
            }
            other => ApiError::internal(other),
        }
    }
}

/// Connection trouble, shutdowns, failovers, resource limits: worth a retry. Anything
/// else from the database (a constraint, a syntax error) is a bug here.
fn is_transient(e: &booking_core::tokio_postgres::Error) -> bool {
    let Some(code) = e.code() else {
        // No SQLSTATE: I/O error, closed connection, time-out while connecting.
        return true;
    };
    let c = code.code();
    c.starts_with("08") // connection exception
        || c.starts_with("53") // insufficient resources (too many connections, ...)
        || c.starts_with("57P") // admin/crash shutdown, cannot connect now
        || c == "40001" // serialization failure
        || c == "40P01" // deadlock detected (should never happen: ids are locked in order)
        || c == "25006" // read-only transaction: a standby took our connection during failover
        // Citus: an intermediate result deleted by a failure in another part of the
        // same distributed transaction (seen once, right after a shard move, by a
        // statement planned for the old placement): the transaction rolled back.
        || c == "CIINF"
        || citus_lost_a_node(e)
}

/// Citus (a coordinator relaying to its workers) reports a worker it cannot reach
/// mostly as `08006`, which the prefix above covers; but when a connection to a
/// worker that the transaction already used breaks (the worker crashed, restarted or
/// is starting up), it raises `XX000` ("failure on connection marked as essential",
/// or the client library's own message, such as an SSL EOF, when the worker's answer
/// never came), with no SQLSTATE of the cause. Those are told apart by where they
/// were raised (the report's source file, sent with every error): Citus's connection
/// and remote-transaction code, which raises nothing but connection trouble as
/// `XX000`; its placement code, whose one `XX000` is "could not commit transaction
/// for shard N on at least one active node" (the worker's COMMIT got no answer); and
/// its COPY code, which says "failed to COPY to shard" with `58030` (`io_error`)
/// when the connection that carries a statement's intermediate result to the worker
/// breaks. The statement did not finish on the worker (a COMMIT may be in doubt, as
/// with any lost connection): worth a retry, `503`. Tried on `scripts/citus.sh`'s
/// formation (Citus 13.0.3) with a worker stopped `-m immediate` under load
/// (`scripts/faults.sh citus`): without this, those answered `500`.
fn citus_lost_a_node(e: &booking_core::tokio_postgres::Error) -> bool {
    use booking_core::tokio_postgres::error::SqlState;
    const CONNECTION_SOURCES: [&str; 4] = [
        "remote_transaction.c",
        "remote_commands.c",
        "connection_management.c",
        "placement_connection.c",
    ];
    e.as_db_error().is_some_and(|d| match d.file() {
        Some(f) if *d.code() == SqlState::INTERNAL_ERROR => CONNECTION_SOURCES.contains(&f),
        Some("multi_copy.c") => *d.code() == SqlState::IO_ERROR,
        _ => false,
    })
}
