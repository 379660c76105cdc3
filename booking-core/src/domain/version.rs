//! Seat versions, for "hold only if nothing moved since I looked".

use std::fmt;

/// An opaque token that changes every time a seat's state changes.
///
/// It is derived from the seat row's `xmin` (the id of the transaction that last wrote
/// it), plus a marker when the row still points at a hold that has lapsed: such a seat
/// reads `available` although its row has not been written since it was `held`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version(String);

impl Version {
    /// Any string a client sends: an unknown version simply never matches.
    pub fn new(s: impl Into<String>) -> Self {
        Version(s.into())
    }

    /// The token's text, as sent in the seat map; compare it for equality only.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}
