//! Domain values: each parses untrusted input once, so nothing below re-validates.

mod hold_ttl;
mod ids;
mod layout;
mod seat_count;
mod seat_label;
mod user_id;
mod version;

pub use hold_ttl::HoldTtl;
pub use ids::{BookingId, HoldId, ShowId};
pub use layout::{Category, Currency, NewShow, RowSpec};
pub use seat_count::SeatCount;
pub use seat_label::{RowLabel, SeatLabel, SeatSelection};
pub use user_id::{Actor, UserId};
pub use version::Version;

use serde::Serialize;

/// What a seat is right now (see the module docs of [`crate::holds`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SeatState {
    Available,
    Held,
    Booked,
}

/// A hold's status. An `active` hold past its `expires_at` reads `Expired` at once,
/// whether or not the sweeper has visited it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldStatus {
    Active,
    Confirmed,
    Released,
    Expired,
}

impl HoldStatus {
    pub(crate) fn from_db(s: &str) -> crate::Result<Self> {
        Ok(match s {
            "active" => HoldStatus::Active,
            "confirmed" => HoldStatus::Confirmed,
            "released" => HoldStatus::Released,
            "expired" => HoldStatus::Expired,
            other => return Err(crate::Error::Invariant(format!("hold status {other:?}"))),
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            HoldStatus::Active => "active",
            HoldStatus::Confirmed => "confirmed",
            HoldStatus::Released => "released",
            HoldStatus::Expired => "expired",
        }
    }
}

/// A booking's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BookingStatus {
    Confirmed,
    Cancelled,
}
