//! Standing areas: places sold by quantity (general admission), each area with its
//! code, capacity and category.

use super::Category;
use crate::error::{Error, Result};
use std::fmt;

/// An area's code, unique in its show (`FLOOR`, `PIT_1`): 1 to 16 of `A-Z`, `0-9`,
/// `_`. A place of the area is numbered `{code}-{n}` (`FLOOR-1187`), which no seat
/// label can be (a seat has row letters right before its number).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AreaCode(String);

impl AreaCode {
    /// Checks a code; [`Error::Invalid`] naming `field` otherwise.
    pub fn parse_as(s: &str, field: &str) -> Result<Self> {
        if (1..=16).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        {
            Ok(AreaCode(s.to_owned()))
        } else {
            Err(Error::invalid(
                field,
                "an area code is 1 to 16 capital letters, digits or '_'",
            ))
        }
    }

    /// [`AreaCode::parse_as`] for the field `area`.
    ///
    /// ```
    /// use booking_core::AreaCode;
    /// assert!(AreaCode::parse("FLOOR").is_ok());
    /// assert!(AreaCode::parse("PIT_2").is_ok());
    /// assert!(AreaCode::parse("floor").is_err());
    /// assert!(AreaCode::parse("A-1").is_err());
    /// assert!(AreaCode::parse("").is_err());
    /// ```
    pub fn parse(s: &str) -> Result<Self> {
        Self::parse_as(s, "area")
    }

    /// A code read from this crate's tables.
    pub(crate) fn from_db(s: String) -> Self {
        AreaCode(s)
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AreaCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for AreaCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// One standing area of a layout: `capacity` places of `category`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AreaSpec {
    /// Its code.
    pub area: AreaCode,
    /// How many places it has: 1 to [`AreaSpec::MAX_CAPACITY`].
    pub capacity: u32,
    /// What prices its places (as a row's category prices its seats).
    pub category: Category,
}

impl AreaSpec {
    /// Most places of one area.
    pub const MAX_CAPACITY: u32 = 100_000;

    /// An area of `capacity` places (1 to [`AreaSpec::MAX_CAPACITY`], else
    /// [`Error::Invalid`], field `areas.capacity`), `standard` unless a category is named.
    pub fn new(area: AreaCode, capacity: i64, category: Option<Category>) -> Result<Self> {
        if !(1..=i64::from(Self::MAX_CAPACITY)).contains(&capacity) {
            return Err(Error::invalid(
                "areas.capacity",
                format!("area {area} must have 1 to {} places", Self::MAX_CAPACITY),
            ));
        }
        Ok(AreaSpec {
            area,
            capacity: capacity as u32,
            category: category.unwrap_or_else(Category::standard),
        })
    }
}

/// Places one hold asks for in one area, and what each is sold as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AreaWant {
    /// The area.
    pub area: AreaCode,
    /// How many places (at least 1).
    pub count: u32,
    /// The ticket type of each place, `count` of them; empty: all the show's default.
    pub ticket_types: Vec<super::TicketTypeName>,
}

impl AreaWant {
    /// `count` places of `area` (at least 1, else [`Error::Invalid`], field `areas`),
    /// sold as the show's default type.
    pub fn new(area: AreaCode, count: i64) -> Result<Self> {
        if count < 1 || count > i64::from(u16::MAX) {
            return Err(Error::invalid(
                "areas",
                format!("ask for at least one place of {area}"),
            ));
        }
        Ok(AreaWant {
            area,
            count: count as u32,
            ticket_types: Vec::new(),
        })
    }

    /// The same places sold as `types`, one per place (else [`Error::Invalid`], field
    /// `ticket_types`).
    pub fn with_ticket_types(mut self, types: Vec<super::TicketTypeName>) -> Result<Self> {
        if types.len() != self.count as usize {
            return Err(Error::invalid(
                "ticket_types",
                format!(
                    "name one ticket type for each of the {} places of {}",
                    self.count, self.area
                ),
            ));
        }
        self.ticket_types = types;
        Ok(self)
    }
}
