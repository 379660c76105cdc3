//! Rows and seats are named the way a ticket names them: row letters, then a number.

use crate::error::{Error, Result};
use std::fmt;

/// A section of a venue (a stand, a block of a stadium): 1 to 8 of `A-Z`, `0-9`
/// (`101`, `NORTH`). Seats of a sectioned row are labelled `{section}-{row}{number}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Section(String);

impl Section {
    /// Checks a section name; [`Error::Invalid`] (field `section`) unless it is 1 to 8
    /// of `A-Z`, `0-9`.
    pub fn parse(s: &str) -> Result<Self> {
        if (1..=8).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            Ok(Section(s.to_owned()))
        } else {
            Err(Error::invalid(
                "section",
                "must be 1 to 8 capital letters or digits",
            ))
        }
    }

    /// The name, such as `101`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A row: 1 to 3 capital letters (`A`, `K`, `AB`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RowLabel(String);

impl RowLabel {
    /// Checks a row label; [`Error::Invalid`] (field `row`) unless it is 1 to 3 of
    /// `A-Z`.
    pub fn parse(s: &str) -> Result<Self> {
        if (1..=3).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(RowLabel(s.to_owned()))
        } else {
            Err(Error::invalid("row", "must be 1 to 3 capital letters"))
        }
    }

    /// The label, such as `AB`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RowLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A seat's label within its show: its row label followed by its number in the row,
/// 1 to 200 (`A1`, `K12`, `AB200`); in a row of a section, the section first
/// (`101-A12`).
///
/// ```
/// use booking_core::SeatLabel;
/// let a12 = SeatLabel::parse("A12").unwrap();
/// assert_eq!((a12.section(), a12.row(), a12.number()), (None, "A", 12));
/// let s = SeatLabel::parse("101-A12").unwrap();
/// assert_eq!((s.section(), s.row(), s.number()), (Some("101"), "A", 12));
/// for bad in ["a1", "A0", "A01", "A201", "ABCD1", "1A", "A", "-A1", "123456789-A1", "b-A1", "1-2-A1"] {
///     assert!(SeatLabel::parse(bad).is_err(), "{bad}");
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeatLabel {
    text: String,
    /// Length of the section part, 0 without one (the `-` after it not counted).
    section_len: u8,
    row_len: u8,
    number: u16,
}

impl SeatLabel {
    /// The highest seat number in a row.
    pub const MAX_NUMBER: u16 = 200;

    /// Parses `A12` or `101-A12`: an optional section (1 to 8 of `A-Z`, `0-9`) and
    /// `-`, a row label (1 to 3 capital letters), then a number from 1 to
    /// [`MAX_NUMBER`](Self::MAX_NUMBER) without leading zeros. [`Error::Invalid`]
    /// (field `seats`) otherwise.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || {
            Error::invalid(
                "seats",
                format!(
                    "{:?} is not a seat label (row letters then a number, like A12 or 101-A12)",
                    truncate(s)
                ),
            )
        };
        let (section_len, rest) = match s.split_once('-') {
            Some((section, rest)) => {
                if Section::parse(section).is_err() {
                    return Err(bad());
                }
                (section.len(), rest)
            }
            None => (0, s),
        };
        let row_len = rest.bytes().take_while(|b| b.is_ascii_uppercase()).count();
        let digits = &rest[row_len..];
        if !(1..=3).contains(&row_len)
            || digits.is_empty()
            || digits.len() > 3
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || digits.starts_with('0')
        {
            return Err(bad());
        }
        let number: u16 = digits.parse().map_err(|_| bad())?;
        if number > Self::MAX_NUMBER {
            return Err(bad());
        }
        Ok(SeatLabel {
            text: s.to_owned(),
            section_len: section_len as u8,
            row_len: row_len as u8,
            number,
        })
    }

    /// The label of seat `number` in `row` (of `section`, if any); [`Error::Invalid`]
    /// when `number` is 0 or above [`MAX_NUMBER`](Self::MAX_NUMBER).
    pub fn new(section: Option<&Section>, row: &RowLabel, number: u16) -> Result<Self> {
        match section {
            Some(s) => SeatLabel::parse(&format!("{s}-{row}{number}")),
            None => SeatLabel::parse(&format!("{row}{number}")),
        }
    }

    pub(crate) fn from_db(s: String) -> Self {
        // The schema's CHECK keeps stored labels well formed.
        SeatLabel::parse(&s).unwrap_or(SeatLabel {
            section_len: 0,
            row_len: 0,
            number: 0,
            text: s,
        })
    }

    /// The section part: `101` of `101-A12`; `None` for a seat of no section.
    pub fn section(&self) -> Option<&str> {
        (self.section_len > 0).then(|| &self.text[..self.section_len as usize])
    }

    /// The whole label, such as `A12`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The row part: `A` of `A12` and of `101-A12`.
    pub fn row(&self) -> &str {
        let start = match self.section_len {
            0 => 0,
            n => n as usize + 1,
        };
        &self.text[start..start + self.row_len as usize]
    }

    /// The seat's number in its row: `12` of `A12`, 1 to [`MAX_NUMBER`](Self::MAX_NUMBER).
    pub fn number(&self) -> u16 {
        self.number
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(16).collect()
}

impl fmt::Display for SeatLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl serde::Serialize for SeatLabel {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// The seats one hold asks for: 1 to `max` distinct labels, in the caller's order (or
/// none, for a hold of standing places only: [`SeatSelection::none`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatSelection(Vec<SeatLabel>);

impl SeatSelection {
    /// Parses labels, refusing an empty list, duplicates, or more than `max`.
    ///
    /// ```
    /// use booking_core::SeatSelection;
    /// assert!(SeatSelection::parse(["A1", "A2"], 10).is_ok());
    /// assert!(SeatSelection::parse(["A1", "A1"], 10).is_err());
    /// assert!(SeatSelection::parse(Vec::<&str>::new(), 10).is_err());
    /// assert!(SeatSelection::parse(["A1", "A2", "A3"], 2).is_err());
    /// ```
    pub fn parse<I, S>(labels: I, max: usize) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut seats = Vec::new();
        for label in labels {
            if seats.len() == max {
                return Err(Error::invalid(
                    "seats",
                    format!("at most {max} seats in one hold"),
                ));
            }
            let label = SeatLabel::parse(label.as_ref())?;
            if seats.contains(&label) {
                return Err(Error::invalid("seats", format!("{label} is listed twice")));
            }
            seats.push(label);
        }
        if seats.is_empty() {
            return Err(Error::invalid("seats", "name at least one seat"));
        }
        Ok(SeatSelection(seats))
    }

    /// No seats: for a hold of standing places only.
    pub fn none() -> Self {
        SeatSelection(Vec::new())
    }

    /// [`SeatSelection::parse`], but an empty list is [`SeatSelection::none`].
    pub fn parse_or_none<I, S>(labels: I, max: usize) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut labels = labels.into_iter().peekable();
        if labels.peek().is_none() {
            return Ok(Self::none());
        }
        Self::parse(labels, max)
    }

    /// The labels, in the caller's order.
    pub fn labels(&self) -> &[SeatLabel] {
        &self.0
    }

    /// How many seats: 1 to the `max` it was parsed with, or 0 for
    /// [`SeatSelection::none`].
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Only for [`SeatSelection::none`].
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
