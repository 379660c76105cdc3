//! The caller's identity, as established by whatever sits in front of the engine.

use crate::error::{Error, Result};
use std::fmt;

/// 1 to 128 visible ASCII characters (`!` to `~`).
///
/// ```
/// use booking_core::UserId;
/// assert!(UserId::parse("u-17").is_ok());
/// assert!(UserId::parse("has space").is_err());
/// assert!(UserId::parse("").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserId(String);

impl UserId {
    /// The longest id, in bytes (= characters: they are ASCII).
    pub const MAX_LEN: usize = 128;

    /// Checks an id; [`Error::Invalid`] (field `user_id`) unless it is 1 to
    /// [`MAX_LEN`](Self::MAX_LEN) visible ASCII characters.
    pub fn parse(s: &str) -> Result<Self> {
        if s.is_empty() || s.len() > Self::MAX_LEN {
            return Err(Error::invalid("user_id", "must be 1 to 128 characters"));
        }
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::invalid(
                "user_id",
                "must be visible ASCII characters only",
            ));
        }
        Ok(UserId(s.to_owned()))
    }

    pub(crate) fn from_db(s: String) -> Self {
        UserId(s)
    }

    /// The id, as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for UserId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// Who asks for an operation that an owner or an administrator may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// This user: may act on what they own only.
    User(UserId),
    /// The holder of the admin token: may change anyone's holds and bookings.
    Admin,
}

impl Actor {
    /// May this actor change what `owner` owns? [`Error::Forbidden`] if not.
    pub fn authorise(&self, owner: &UserId) -> Result<()> {
        match self {
            Actor::Admin => Ok(()),
            Actor::User(u) if u == owner => Ok(()),
            Actor::User(_) => Err(Error::Forbidden),
        }
    }
}
