//! Names of things a show is made of: seat categories, seat features, ticket types,
//! currencies. Each parses untrusted input once.

use crate::error::{Error, Result};

/// A seat category (`standard`, `premium`, ...): 1 to 32 of `a-z`, `0-9`, `_`, `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Category(String);

impl Category {
    /// Checks a category name; [`Error::Invalid`] (field `category`) unless it is 1 to
    /// 32 of `a-z`, `0-9`, `_`, `-`.
    pub fn parse(s: &str) -> Result<Self> {
        if (1..=32).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            Ok(Category(s.to_owned()))
        } else {
            Err(Error::invalid(
                "category",
                "must be 1 to 32 lowercase letters, digits, '_' or '-'",
            ))
        }
    }

    /// The category of a row that names none.
    pub fn standard() -> Self {
        Category("standard".into())
    }

    /// The name, as stored with each seat.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl serde::Serialize for Category {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// Names of seat features and ticket types: 1 to 32 of `a-z`, `0-9`, `_`.
fn is_name(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// A seat feature (`wheelchair`, `companion`, `restricted_view`): 1 to 32 of `a-z`,
/// `0-9`, `_`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Feature(String);

impl Feature {
    /// Checks a feature name; [`Error::Invalid`] (field `features`) otherwise.
    pub fn parse(s: &str) -> Result<Self> {
        if is_name(s) {
            Ok(Feature(s.to_owned()))
        } else {
            Err(Error::invalid(
                "features",
                "a feature is 1 to 32 lowercase letters, digits or '_'",
            ))
        }
    }

    /// The name, as stored with each seat.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The name of a ticket type (`adult`, `child`): 1 to 32 of `a-z`, `0-9`, `_`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TicketTypeName(String);

impl TicketTypeName {
    /// Checks a type name; [`Error::Invalid`] (field `ticket_types`) otherwise.
    pub fn parse(s: &str) -> Result<Self> {
        if is_name(s) {
            Ok(TicketTypeName(s.to_owned()))
        } else {
            Err(Error::invalid(
                "ticket_types",
                "a ticket type is 1 to 32 lowercase letters, digits or '_'",
            ))
        }
    }

    /// The type every show made with the `prices` shorthand sells.
    pub fn full() -> Self {
        TicketTypeName("full".into())
    }

    pub(crate) fn from_db(s: String) -> Self {
        TicketTypeName(s)
    }

    /// The name, such as `adult`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TicketTypeName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for TicketTypeName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// An ISO 4217 currency code: three capital letters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Currency(String);

impl Currency {
    /// Checks the form only (three capital letters), not that ISO 4217 lists the code;
    /// [`Error::Invalid`] (field `currency`) otherwise.
    pub fn parse(s: &str) -> Result<Self> {
        if s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Currency(s.to_owned()))
        } else {
            Err(Error::invalid(
                "currency",
                "must be an ISO 4217 code such as EUR",
            ))
        }
    }

    /// Euro, `EUR`.
    pub fn eur() -> Self {
        Currency("EUR".into())
    }

    /// The code, such as `EUR`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
