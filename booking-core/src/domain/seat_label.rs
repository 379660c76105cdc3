//! Rows and seats are named the way a ticket names them: row letters, then a number.

use crate::error::{Error, Result};
use std::fmt;

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
/// 1 to 200 (`A1`, `K12`, `AB200`).
///
/// ```
/// use booking_core::SeatLabel;
/// let a12 = SeatLabel::parse("A12").unwrap();
/// assert_eq!((a12.row(), a12.number()), ("A", 12));
/// for bad in ["a1", "A0", "A01", "A201", "ABCD1", "1A", "A"] {
///     assert!(SeatLabel::parse(bad).is_err(), "{bad}");
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeatLabel {
    text: String,
    row_len: u8,
    number: u16,
}

impl SeatLabel {
    /// The highest seat number in a row.
    pub const MAX_NUMBER: u16 = 200;

    /// Parses `A12`: a row label (1 to 3 capital letters), then a number from 1 to
    /// [`MAX_NUMBER`](Self::MAX_NUMBER) without leading zeros. [`Error::Invalid`]
    /// (field `seats`) otherwise.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || {
            Error::invalid(
                "seats",
                format!(
                    "{:?} is not a seat label (row letters then a number, like A12)",
                    truncate(s)
                ),
            )
        };
        let row_len = s.bytes().take_while(|b| b.is_ascii_uppercase()).count();
        let digits = &s[row_len..];
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
            row_len: row_len as u8,
            number,
        })
    }

    /// The label of seat `number` in `row`; [`Error::Invalid`] when `number` is 0 or
    /// above [`MAX_NUMBER`](Self::MAX_NUMBER).
    pub fn new(row: &RowLabel, number: u16) -> Result<Self> {
        SeatLabel::parse(&format!("{row}{number}"))
    }

    pub(crate) fn from_db(s: String) -> Self {
        // The schema's CHECK keeps stored labels well formed.
        SeatLabel::parse(&s).unwrap_or(SeatLabel {
            row_len: 0,
            number: 0,
            text: s,
        })
    }

    /// The whole label, such as `A12`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The row part: `A` of `A12`.
    pub fn row(&self) -> &str {
        &self.text[..self.row_len as usize]
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

/// The seats one hold asks for: 1 to `max` distinct labels, in the caller's order.
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

    /// The labels, in the caller's order.
    pub fn labels(&self) -> &[SeatLabel] {
        &self.0
    }

    /// How many seats: 1 to the `max` it was parsed with.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always `false`: a selection names at least one seat.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
