//! A new show's description: title, start, currency, prices and rows of seats.

use super::RowLabel;
use crate::error::{Error, Result};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};

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

/// One row of a new show, front rows first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowSpec {
    /// The row's label; its seats are labelled `{row}{number}`. Unique within a show.
    pub row: RowLabel,
    /// Number of seats, 1 to 200, numbered from 1.
    pub seats: u16,
    /// Seat numbers after which an aisle runs (the seats either side are not adjacent).
    pub aisles_after: BTreeSet<u16>,
    /// The category of every seat in the row ([`Category::standard`] when none was
    /// given); the seats' price is the show's price for it.
    pub category: Category,
}

impl RowSpec {
    /// Most seats in one row (as [`SeatLabel::MAX_NUMBER`](super::SeatLabel::MAX_NUMBER)).
    pub const MAX_SEATS: u16 = 200;

    /// Checks a row: 1 to 200 seats, aisles strictly inside the row (after seat 1 to
    /// `seats - 1`; duplicates are merged). [`Error::Invalid`] (field `rows.seats` or
    /// `rows.aisles_after`) otherwise.
    pub fn new(
        row: RowLabel,
        seats: i64,
        aisles_after: &[i64],
        category: Option<Category>,
    ) -> Result<Self> {
        if !(1..=i64::from(Self::MAX_SEATS)).contains(&seats) {
            return Err(Error::invalid(
                "rows.seats",
                format!("row {row} must have 1 to {} seats", Self::MAX_SEATS),
            ));
        }
        let mut aisles = BTreeSet::new();
        for &a in aisles_after {
            if !(1..seats).contains(&a) {
                return Err(Error::invalid(
                    "rows.aisles_after",
                    format!(
                        "row {row}: an aisle must run after a seat from 1 to {}",
                        seats - 1
                    ),
                ));
            }
            aisles.insert(a as u16);
        }
        Ok(RowSpec {
            row,
            seats: seats as u16,
            aisles_after: aisles,
            category: category.unwrap_or_else(Category::standard),
        })
    }
}

/// Everything needed to create a show, already checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewShow {
    title: String,
    starts_at: DateTime<Utc>,
    currency: Currency,
    prices: BTreeMap<Category, i64>,
    rows: Vec<RowSpec>,
}

impl NewShow {
    /// Most seats in one show, all rows together.
    pub const MAX_SEATS: usize = 100_000;
    /// Most rows in one show.
    pub const MAX_ROWS: usize = 2_000;

    /// Checks the whole layout: a title of 1 to 200 characters (not blank, no control
    /// characters), 1 to 2,000 rows with unique labels, at most 100,000 seats in all,
    /// prices from 0 to 10,000,000,000 minor units of `currency` (`prices` maps a
    /// category to the price of each of its seats; a category without one has no
    /// price). [`Error::Invalid`] (field `title`, `rows` or `prices`) otherwise.
    pub fn new(
        title: &str,
        starts_at: DateTime<Utc>,
        currency: Currency,
        prices: BTreeMap<Category, i64>,
        rows: Vec<RowSpec>,
    ) -> Result<Self> {
        let title_len = title.chars().count();
        if title.trim().is_empty() || title_len > 200 {
            return Err(Error::invalid("title", "must be 1 to 200 characters"));
        }
        if title.chars().any(char::is_control) {
            return Err(Error::invalid(
                "title",
                "must not contain control characters",
            ));
        }
        if rows.is_empty() || rows.len() > Self::MAX_ROWS {
            return Err(Error::invalid(
                "rows",
                format!("a show has 1 to {} rows", Self::MAX_ROWS),
            ));
        }
        let mut seen = BTreeSet::new();
        for r in &rows {
            if !seen.insert(r.row.clone()) {
                return Err(Error::invalid(
                    "rows",
                    format!("row {} is listed twice", r.row),
                ));
            }
        }
        let total: usize = rows.iter().map(|r| usize::from(r.seats)).sum();
        if total > Self::MAX_SEATS {
            return Err(Error::invalid(
                "rows",
                format!("a show has at most {} seats", Self::MAX_SEATS),
            ));
        }
        if let Some((c, _)) = prices.iter().find(|(_, p)| **p < 0 || **p > 10_000_000_000) {
            return Err(Error::invalid(
                "prices",
                format!(
                    "price of {} must be 0 to 10000000000 minor units",
                    c.as_str()
                ),
            ));
        }
        Ok(NewShow {
            title: title.to_owned(),
            starts_at,
            currency,
            prices,
            rows,
        })
    }

    /// The show's title, as given.
    pub fn title(&self) -> &str {
        &self.title
    }
    /// When the show starts.
    pub fn starts_at(&self) -> DateTime<Utc> {
        self.starts_at
    }
    /// The currency of every price of the show.
    pub fn currency(&self) -> &Currency {
        &self.currency
    }
    /// The price of a seat of each category, in minor units of the currency.
    pub fn prices(&self) -> &BTreeMap<Category, i64> {
        &self.prices
    }
    /// The rows, front first.
    pub fn rows(&self) -> &[RowSpec] {
        &self.rows
    }
    /// Seats in all rows together.
    pub fn seat_count(&self) -> usize {
        self.rows.iter().map(|r| usize::from(r.seats)).sum()
    }
}
