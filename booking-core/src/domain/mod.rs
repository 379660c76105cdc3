//! Domain values: each parses untrusted input once, so nothing below re-validates.

mod area;
mod hold_ttl;
mod ids;
mod layout;
mod names;
mod new_show;
mod pricing;
mod queue_settings;
mod reference;
mod seat_count;
mod seat_label;
mod user_id;
mod version;

pub use area::{AreaCode, AreaSpec, AreaWant};
pub use hold_ttl::HoldTtl;
pub use ids::{BlockId, BookingId, HoldId, ShowId, VenueId};
pub use layout::{Layout, RowSpec, ShowLayout};
pub use names::{Category, Currency, Feature, TicketTypeName};
pub use new_show::{NewShow, SalesWindow};
pub use pricing::{Pricing, TicketType, MAX_PRICE, MAX_TICKET_TYPES};
pub use queue_settings::QueueSettings;
pub use reference::{ExternalRef, Metadata, Reference};

/// Checks a free text of the API (a show's title, a venue's name, a block's reason): 1
/// to 200 characters, not blank, no control characters; [`crate::Error::Invalid`]
/// naming `field` otherwise.
pub(crate) fn check_text(field: &str, s: &str) -> crate::Result<()> {
    if s.trim().is_empty() || s.chars().count() > 200 {
        return Err(crate::Error::invalid(field, "must be 1 to 200 characters"));
    }
    if s.chars().any(char::is_control) {
        return Err(crate::Error::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}
pub use seat_count::SeatCount;
pub use seat_label::{RowLabel, SeatLabel, SeatSelection, Section};
pub use user_id::{Actor, UserId};
pub use version::Version;

/// An enum stored and sent as text, with its one table of names: `as_str` (SQL, JSON,
/// events), `from_db` (rows written by this crate: an unknown name is a broken
/// invariant, not bad input), `Serialize` and `Display` all read the same table.
macro_rules! text_enum {
    ($(#[$meta:meta])* pub enum $name:ident {
        $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// The name stored in the database and sent in JSON.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// The value a row of this crate's tables names.
            pub(crate) fn from_db(s: &str) -> crate::Result<Self> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(crate::Error::Invariant(format!(
                        "{} {other:?}",
                        stringify!($name)
                    ))),
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use text_enum;

text_enum! {
    /// What a seat is right now (see the module docs of [`crate::holds`]).
    pub enum SeatState {
        /// No live booking, and no hold that is still before its `expires_at`.
        Available = "available",
        /// Part of an active hold whose `expires_at` is in the future.
        Held = "held",
        /// Part of a confirmed booking that has not been cancelled.
        Booked = "booked",
        /// Taken off sale by a block (a broken seat, the tech desk): no hold takes it
        /// until the block is deleted.
        Blocked = "blocked",
    }
}

text_enum! {
    /// A hold's status. An `active` hold past its `expires_at` reads `Expired` at once,
    /// whether or not the sweeper has visited it.
    pub enum HoldStatus {
        /// Holds its seats until `expires_at`; may be confirmed, extended or released.
        Active = "active",
        /// Turned into a booking (`Hold::booking_id`); final.
        Confirmed = "confirmed",
        /// Released by its owner before it expired; final.
        Released = "released",
        /// Passed its `expires_at` unconfirmed (swept or not yet); final.
        Expired = "expired",
    }
}

text_enum! {
    /// A booking's status.
    pub enum BookingStatus {
        /// The booking owns its seats.
        Confirmed = "confirmed",
        /// Cancelled by its owner or an admin (`Booking::cancelled_at`); its seats are
        /// free again. Final.
        Cancelled = "cancelled",
    }
}
