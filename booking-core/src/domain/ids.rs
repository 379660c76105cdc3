//! Identifiers: shows are numbered, holds and bookings carry 128 random bits.

use crate::error::{Error, Result};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// A numbered id: a positive integer, written as a decimal string in the API.
macro_rules! numbered_id {
    ($(#[$meta:meta])* $name:ident, $field:literal, $table:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(i64);

        impl $name {
            /// Parses the decimal form (no sign, no leading zeros, at most 18 digits).
            pub fn parse(s: &str) -> Result<Self> {
                let bad = || Error::invalid($field, "must be a positive decimal integer");
                // One spelling per id: no leading zeros (`007` and `7` would be the same).
                if s.is_empty()
                    || s.len() > 18
                    || s.starts_with('0')
                    || !s.bytes().all(|b| b.is_ascii_digit())
                {
                    return Err(bad());
                }
                match s.parse::<i64>() {
                    Ok(n) if n > 0 => Ok($name(n)),
                    _ => Err(bad()),
                }
            }

            /// Wraps a value read from the database.
            pub(crate) fn from_db(n: i64) -> Self {
                $name(n)
            }

            #[doc = concat!("The number, positive (as stored in the `", $table, "` table).")]
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                $name::parse(s)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    };
}

numbered_id!(
    /// A show's id: a positive integer, written as a decimal string in the API.
    ///
    /// ```
    /// use booking_core::ShowId;
    /// assert_eq!(ShowId::parse("42").unwrap().get(), 42);
    /// assert!(ShowId::parse("0").is_err());
    /// assert!(ShowId::parse("4x").is_err());
    /// ```
    ShowId,
    "show_id",
    "shows"
);
numbered_id!(
    /// A venue's id (a saved layout), numbered like shows.
    VenueId,
    "venue_id",
    "venues"
);
numbered_id!(
    /// A block's id (seats taken off sale), numbered across all shows.
    BlockId,
    "block_id",
    "blocks"
);

/// Holds and bookings are named by their show and 128 random bits (UUIDv4), written
/// `{show}-{uuid}`. Carrying the show in the id lets every statement that follows
/// filter by `show_id` (one shard per show), while the random part keeps ids
/// unguessable.
macro_rules! show_scoped_id {
    ($name:ident, $field:literal, $what:literal) => {
        #[doc = concat!("The id of a ", $what, ": `{show}-{uuid}`, opaque to clients.")]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name {
            show: ShowId,
            key: Uuid,
        }

        impl $name {
            /// A new, random id in `show`.
            pub fn generate(show: ShowId) -> Self {
                $name {
                    show,
                    key: Uuid::new_v4(),
                }
            }

            pub(crate) fn from_parts(show: ShowId, key: Uuid) -> Self {
                $name { show, key }
            }

            /// Parses the `{show}-{uuid}` form the API hands out.
            pub fn parse(s: &str) -> Result<Self> {
                let bad = || Error::invalid($field, concat!("not a ", $what, " id"));
                let (show, key) = s.split_once('-').ok_or_else(bad)?;
                let show = ShowId::parse(show).map_err(|_| bad())?;
                // Only the canonical form (hyphenated, lowercase), so one id has one spelling.
                if key.len() != 36 || key.bytes().any(|b| b.is_ascii_uppercase()) {
                    return Err(bad());
                }
                let key = Uuid::try_parse(key).map_err(|_| bad())?;
                Ok($name { show, key })
            }

            /// The show this belongs to.
            pub fn show(&self) -> ShowId {
                self.show
            }

            /// The random part, as stored in the database.
            pub fn key(&self) -> Uuid {
                self.key
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}-{}", self.show, self.key.hyphenated())
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                $name::parse(s)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    };
}

show_scoped_id!(HoldId, "hold_id", "hold");
show_scoped_id!(BookingId, "booking_id", "booking");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_ids_round_trip_through_their_text_form() {
        let id = HoldId::generate(ShowId::parse("7").unwrap());
        let text = id.to_string();
        assert!(text.starts_with("7-"));
        assert_eq!(HoldId::parse(&text).unwrap(), id);
    }

    #[test]
    fn malformed_hold_ids_are_rejected() {
        for bad in [
            "",
            "7",
            "7-",
            "-6f1c0b2e-1b2c-4d5e-8f90-0123456789ab",
            "x-6f1c0b2e-1b2c-4d5e-8f90-0123456789ab",
            "7-6f1c0b2e1b2c4d5e8f900123456789ab",
            "7-6f1c0b2e-1b2c-4d5e-8f90-0123456789a",
            "0-6f1c0b2e-1b2c-4d5e-8f90-0123456789ab",
        ] {
            assert!(HoldId::parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn show_ids_reject_signs_spaces_and_overflow() {
        for bad in ["-1", "+1", " 1", "1 ", "99999999999999999999", ""] {
            assert!(ShowId::parse(bad).is_err(), "{bad:?} parsed");
        }
    }
}
