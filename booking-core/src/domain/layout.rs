//! The rows of a show or venue: row specs (seats, aisles, category, section, features,
//! seats blocked from the start), checked as a whole, and their stored JSON form.

use super::{AreaCode, AreaSpec, Category, Feature, RowLabel, Section, VenueId};
use crate::error::{Error, Result};
use std::collections::{BTreeMap, BTreeSet};

/// One row of a new show or venue, front rows first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowSpec {
    /// The row's label; its seats are labelled `{row}{number}` (`{section}-{row}{number}`
    /// in a section). Unique within its section.
    pub row: RowLabel,
    /// Number of seats, 1 to 200, numbered from 1.
    pub seats: u16,
    /// Seat numbers after which an aisle runs (the seats either side are not adjacent).
    pub aisles_after: BTreeSet<u16>,
    /// The category of every seat in the row ([`Category::standard`] when none was
    /// given); the seats' prices are the ticket types' prices for it.
    pub category: Category,
    /// The section the row belongs to, if any.
    pub section: Option<Section>,
    /// The features of some of its seats: feature to seat numbers.
    pub features: BTreeMap<Feature, BTreeSet<u16>>,
    /// Seats blocked from the start in every show made with this row (reason
    /// `"venue"`).
    pub blocked: BTreeSet<u16>,
}

impl RowSpec {
    /// Most seats in one row (as [`SeatLabel::MAX_NUMBER`](super::SeatLabel::MAX_NUMBER)).
    pub const MAX_SEATS: u16 = 200;

    /// Checks a row: 1 to 200 seats, aisles strictly inside the row (after seat 1 to
    /// `seats - 1`; duplicates are merged). [`Error::Invalid`] (field `rows.seats` or
    /// `rows.aisles_after`) otherwise. No section, features or blocked seats: see
    /// [`in_section`](Self::in_section), [`with_features`](Self::with_features),
    /// [`with_blocked`](Self::with_blocked).
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
        let aisles = numbers_of(&row, seats, aisles_after, "rows.aisles_after", 1..seats)?;
        Ok(RowSpec {
            row,
            seats: seats as u16,
            aisles_after: aisles,
            category: category.unwrap_or_else(Category::standard),
            section: None,
            features: BTreeMap::new(),
            blocked: BTreeSet::new(),
        })
    }

    /// The row in `section`.
    pub fn in_section(mut self, section: Option<Section>) -> Self {
        self.section = section;
        self
    }

    /// The row with these features (feature to seat numbers of the row; a number
    /// listed twice for one feature is merged). [`Error::Invalid`] (field
    /// `rows.features`) for a number outside the row.
    pub fn with_features(mut self, features: BTreeMap<Feature, Vec<i64>>) -> Result<Self> {
        for (feature, numbers) in features {
            let set = numbers_of(
                &self.row,
                i64::from(self.seats),
                &numbers,
                "rows.features",
                1..i64::from(self.seats) + 1,
            )?;
            if !set.is_empty() {
                self.features.insert(feature, set);
            }
        }
        Ok(self)
    }

    /// The row with these seats blocked from the start. [`Error::Invalid`] (field
    /// `rows.blocked`) for a number outside the row.
    pub fn with_blocked(mut self, blocked: &[i64]) -> Result<Self> {
        self.blocked = numbers_of(
            &self.row,
            i64::from(self.seats),
            blocked,
            "rows.blocked",
            1..i64::from(self.seats) + 1,
        )?;
        Ok(self)
    }

    /// The features of seat `number`, sorted.
    pub fn features_of(&self, number: u16) -> Vec<&str> {
        self.features
            .iter()
            .filter(|(_, seats)| seats.contains(&number))
            .map(|(f, _)| f.as_str())
            .collect()
    }
}

fn numbers_of(
    row: &RowLabel,
    seats: i64,
    numbers: &[i64],
    field: &str,
    allowed: std::ops::Range<i64>,
) -> Result<BTreeSet<u16>> {
    let mut set = BTreeSet::new();
    for &n in numbers {
        if !allowed.contains(&n) {
            return Err(Error::invalid(
                field,
                format!(
                    "row {row}: {n} is not a seat number from {} to {}",
                    allowed.start,
                    (allowed.end - 1).min(seats)
                ),
            ));
        }
        set.insert(n as u16);
    }
    Ok(set)
}

/// The rows of a show or venue, checked: 1 to 2,000 rows with labels unique within
/// their section, at most 100,000 seats in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    rows: Vec<RowSpec>,
    areas: Vec<AreaSpec>,
}

impl Layout {
    /// Most seats in one show, all rows together.
    pub const MAX_SEATS: usize = 100_000;
    /// Most rows in one show.
    pub const MAX_ROWS: usize = 2_000;
    /// Most standing areas of one show.
    pub const MAX_AREAS: usize = 16;

    /// Checks the rows; [`Error::Invalid`] (field `rows`) otherwise.
    pub fn new(rows: Vec<RowSpec>) -> Result<Self> {
        if rows.is_empty() {
            return Err(Error::invalid("rows", "a show has at least one row"));
        }
        Self::with_areas(rows, Vec::new())
    }

    /// Rows and standing areas: at most [`Layout::MAX_ROWS`] rows and
    /// [`Layout::MAX_AREAS`] areas, at least one of either, no row or area twice, at most
    /// [`Layout::MAX_SEATS`] seats and as many places; else [`Error::Invalid`] (field
    /// `rows` or `areas`).
    pub fn with_areas(rows: Vec<RowSpec>, areas: Vec<AreaSpec>) -> Result<Self> {
        if rows.len() > Self::MAX_ROWS {
            return Err(Error::invalid(
                "rows",
                format!("a show has at most {} rows", Self::MAX_ROWS),
            ));
        }
        if rows.is_empty() && areas.is_empty() {
            return Err(Error::invalid(
                "rows",
                "a show has at least one row or standing area",
            ));
        }
        if areas.len() > Self::MAX_AREAS {
            return Err(Error::invalid(
                "areas",
                format!("a show has at most {} standing areas", Self::MAX_AREAS),
            ));
        }
        let mut codes = BTreeSet::new();
        for a in &areas {
            if !codes.insert(&a.area) {
                return Err(Error::invalid(
                    "areas",
                    format!("area {} is listed twice", a.area),
                ));
            }
        }
        let places: u64 = areas.iter().map(|a| u64::from(a.capacity)).sum();
        if places > Self::MAX_SEATS as u64 {
            return Err(Error::invalid(
                "areas",
                format!("a show has at most {} standing places", Self::MAX_SEATS),
            ));
        }
        let mut seen = BTreeSet::new();
        for r in &rows {
            if !seen.insert((r.section.clone(), r.row.clone())) {
                let place = match &r.section {
                    Some(s) => format!("row {} of section {s}", r.row),
                    None => format!("row {}", r.row),
                };
                return Err(Error::invalid("rows", format!("{place} is listed twice")));
            }
        }
        let total: usize = rows.iter().map(|r| usize::from(r.seats)).sum();
        if total > Self::MAX_SEATS {
            return Err(Error::invalid(
                "rows",
                format!("a show has at most {} seats", Self::MAX_SEATS),
            ));
        }
        Ok(Layout { rows, areas })
    }

    /// The rows, front first.
    pub fn rows(&self) -> &[RowSpec] {
        &self.rows
    }

    /// The standing areas, in the order given.
    pub fn areas(&self) -> &[AreaSpec] {
        &self.areas
    }

    /// Places in all areas together.
    pub fn place_count(&self) -> usize {
        self.areas.iter().map(|a| a.capacity as usize).sum()
    }

    /// Seats in all rows together.
    pub fn seat_count(&self) -> usize {
        self.rows.iter().map(|r| usize::from(r.seats)).sum()
    }

    /// The categories of its rows and areas.
    pub fn categories(&self) -> BTreeSet<&Category> {
        self.rows
            .iter()
            .map(|r| &r.category)
            .chain(self.areas.iter().map(|a| &a.category))
            .collect()
    }
}

/// What a show's rows are: given, or copied from a venue when it is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShowLayout {
    /// These rows.
    Rows(Layout),
    /// The rows of this venue, as they are when the show is created.
    Venue(VenueId),
}

/// A row as the API writes it (and a venue stores it): only what was given, defaults
/// filled in (`category`).
#[derive(serde::Serialize, serde::Deserialize)]
struct RowJson {
    row: String,
    seats: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    aisles_after: Vec<i64>,
    category: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    section: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    features: BTreeMap<String, Vec<i64>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    blocked: Vec<i64>,
}

impl serde::Serialize for RowSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let numbers = |set: &BTreeSet<u16>| set.iter().map(|&n| i64::from(n)).collect();
        RowJson {
            row: self.row.as_str().to_owned(),
            seats: i64::from(self.seats),
            aisles_after: numbers(&self.aisles_after),
            category: self.category.as_str().to_owned(),
            section: self.section.as_ref().map(|s| s.as_str().to_owned()),
            features: self
                .features
                .iter()
                .map(|(f, set)| (f.as_str().to_owned(), numbers(set)))
                .collect(),
            blocked: numbers(&self.blocked),
        }
        .serialize(s)
    }
}

impl Layout {
    /// The rows as JSON, the form [`Layout::from_json`] reads back (a venue's rows).
    pub(crate) fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.rows).unwrap_or_default()
    }

    /// The areas as JSON, the form [`Layout::from_json`] reads back (a venue's areas).
    pub(crate) fn areas_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.areas).unwrap_or_default()
    }

    /// Rows written by [`Layout::to_json`], checked again as any input is.
    pub(crate) fn from_json(value: serde_json::Value, areas: serde_json::Value) -> Result<Self> {
        let rows: Vec<RowJson> = serde_json::from_value(value)
            .map_err(|e| Error::Invariant(format!("stored rows: {e}")))?;
        let mut specs = Vec::with_capacity(rows.len());
        for r in rows {
            let features = r
                .features
                .iter()
                .map(|(f, n)| Ok((Feature::parse(f)?, n.clone())))
                .collect::<Result<BTreeMap<_, _>>>()?;
            specs.push(
                RowSpec::new(
                    RowLabel::parse(&r.row)?,
                    r.seats,
                    &r.aisles_after,
                    Some(Category::parse(&r.category)?),
                )?
                .in_section(r.section.as_deref().map(Section::parse).transpose()?)
                .with_features(features)?
                .with_blocked(&r.blocked)?,
            );
        }
        let areas: Vec<AreaJson> = serde_json::from_value(areas)
            .map_err(|e| Error::Invariant(format!("stored areas: {e}")))?;
        let areas = areas
            .into_iter()
            .map(|a| {
                AreaSpec::new(
                    AreaCode::parse(&a.area)?,
                    a.capacity,
                    Some(Category::parse(&a.category)?),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Layout::with_areas(specs, areas)
    }
}

/// An area as a venue stores it (what [`AreaSpec`] serialises to).
#[derive(serde::Deserialize)]
struct AreaJson {
    area: String,
    capacity: i64,
    category: String,
}
