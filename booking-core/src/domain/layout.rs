//! A new show's description: title, start, currency, ticket types and rows of seats
//! (or the venue whose rows it copies).

use super::{RowLabel, Section, VenueId};
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

/// A ticket type of a show: what a seat of each category costs when sold as it. A type
/// is sold only for the categories it lists; a listed category may have no price.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TicketType {
    /// The type's name.
    #[serde(rename = "type")]
    pub name: TicketTypeName,
    /// Price per category, in minor units; `None`: sold at no price.
    pub prices: BTreeMap<String, Option<i64>>,
}

/// Most ticket types of one show.
pub const MAX_TICKET_TYPES: usize = 16;

/// The highest price of one seat, in minor units.
pub const MAX_PRICE: i64 = 10_000_000_000;

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
pub struct Layout(Vec<RowSpec>);

impl Layout {
    /// Most seats in one show, all rows together.
    pub const MAX_SEATS: usize = 100_000;
    /// Most rows in one show.
    pub const MAX_ROWS: usize = 2_000;

    /// Checks the rows; [`Error::Invalid`] (field `rows`) otherwise.
    pub fn new(rows: Vec<RowSpec>) -> Result<Self> {
        if rows.is_empty() || rows.len() > Self::MAX_ROWS {
            return Err(Error::invalid(
                "rows",
                format!("a show has 1 to {} rows", Self::MAX_ROWS),
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
        Ok(Layout(rows))
    }

    /// The rows, front first.
    pub fn rows(&self) -> &[RowSpec] {
        &self.0
    }

    /// Seats in all rows together.
    pub fn seat_count(&self) -> usize {
        self.0.iter().map(|r| usize::from(r.seats)).sum()
    }

    /// The categories of its rows.
    pub fn categories(&self) -> BTreeSet<&Category> {
        self.0.iter().map(|r| &r.category).collect()
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

/// How a show prices its seats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pricing {
    /// One type, `full`, sold for every category, at this price per category (a
    /// category without one is sold at no price).
    Prices(BTreeMap<Category, i64>),
    /// These types, the first the default; each sold for the categories it prices.
    Types(Vec<(TicketTypeName, BTreeMap<Category, i64>)>),
}

/// Everything needed to create a show, already checked (a venue's rows are checked
/// against the pricing when the show is created).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewShow {
    title: String,
    starts_at: DateTime<Utc>,
    currency: Currency,
    pricing: Pricing,
    layout: ShowLayout,
    max_seats_per_user: Option<u32>,
}

impl NewShow {
    /// Most seats in one show, all rows together.
    pub const MAX_SEATS: usize = Layout::MAX_SEATS;
    /// Most rows in one show.
    pub const MAX_ROWS: usize = Layout::MAX_ROWS;

    /// Checks the whole show: a title of 1 to 200 characters (not blank, no control
    /// characters), the rows ([`Layout::new`]), prices from 0 to 10,000,000,000 minor
    /// units of `currency` (`prices` maps a category to the price of each of its seats,
    /// sold as the one ticket type `full`; a category without one has no price).
    /// [`Error::Invalid`] (field `title`, `rows` or `prices`) otherwise.
    pub fn new(
        title: &str,
        starts_at: DateTime<Utc>,
        currency: Currency,
        prices: BTreeMap<Category, i64>,
        rows: Vec<RowSpec>,
    ) -> Result<Self> {
        let layout = Layout::new(rows)?;
        Self::with_layout(title, starts_at, currency, ShowLayout::Rows(layout))?.with_prices(prices)
    }

    /// A show of `layout`, sold as one ticket type `full` at no price until
    /// [`with_prices`](Self::with_prices) or [`with_ticket_types`](Self::with_ticket_types).
    pub fn with_layout(
        title: &str,
        starts_at: DateTime<Utc>,
        currency: Currency,
        layout: ShowLayout,
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
        Ok(NewShow {
            title: title.to_owned(),
            starts_at,
            currency,
            pricing: Pricing::Prices(BTreeMap::new()),
            layout,
            max_seats_per_user: None,
        })
    }

    /// Sold as the one type `full` at these prices per category.
    pub fn with_prices(mut self, prices: BTreeMap<Category, i64>) -> Result<Self> {
        check_prices("prices", &prices)?;
        self.pricing = Pricing::Prices(prices);
        Ok(self)
    }

    /// Sold as these types (the first is the default; 1 to 16, names unique), each for
    /// the categories it prices. [`Error::Invalid`] (field `ticket_types`) otherwise.
    pub fn with_ticket_types(
        mut self,
        types: Vec<(TicketTypeName, BTreeMap<Category, i64>)>,
    ) -> Result<Self> {
        if types.is_empty() || types.len() > MAX_TICKET_TYPES {
            return Err(Error::invalid(
                "ticket_types",
                format!("a show has 1 to {MAX_TICKET_TYPES} ticket types"),
            ));
        }
        let mut seen = BTreeSet::new();
        for (name, prices) in &types {
            if !seen.insert(name) {
                return Err(Error::invalid(
                    "ticket_types",
                    format!("ticket type {name} is listed twice"),
                ));
            }
            if prices.is_empty() {
                return Err(Error::invalid(
                    "ticket_types",
                    format!("ticket type {name} prices no category"),
                ));
            }
            check_prices("ticket_types", prices)?;
        }
        self.pricing = Pricing::Types(types);
        Ok(self)
    }

    /// At most `limit` seats (1 to 100,000) per user in active holds and live bookings
    /// of the show. [`Error::Invalid`] (field `max_seats_per_user`) otherwise.
    pub fn with_max_seats_per_user(mut self, limit: Option<i64>) -> Result<Self> {
        self.max_seats_per_user = match limit {
            None => None,
            Some(n) if (1..=100_000).contains(&n) => Some(n as u32),
            Some(_) => return Err(Error::invalid("max_seats_per_user", "must be 1 to 100000")),
        };
        Ok(self)
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
    /// How its seats are priced.
    pub fn pricing(&self) -> &Pricing {
        &self.pricing
    }
    /// Its rows, or the venue they come from.
    pub fn layout(&self) -> &ShowLayout {
        &self.layout
    }
    /// The limit of seats per user, if any.
    pub fn max_seats_per_user(&self) -> Option<u32> {
        self.max_seats_per_user
    }
    /// Seats in all rows together; 0 until a venue's rows are read.
    pub fn seat_count(&self) -> usize {
        match &self.layout {
            ShowLayout::Rows(l) => l.seat_count(),
            ShowLayout::Venue(_) => 0,
        }
    }
}

fn check_prices(field: &str, prices: &BTreeMap<Category, i64>) -> Result<()> {
    match prices.iter().find(|(_, p)| **p < 0 || **p > MAX_PRICE) {
        Some((c, _)) => Err(Error::invalid(
            field,
            format!(
                "price of {} must be 0 to {MAX_PRICE} minor units",
                c.as_str()
            ),
        )),
        None => Ok(()),
    }
}

impl Pricing {
    /// The ticket types this pricing gives a show of `layout`, the default first;
    /// [`Error::Invalid`] (field `ticket_types`) when a type prices a category no row
    /// has (a misspelt category would otherwise sell nothing, silently).
    pub fn ticket_types(&self, layout: &Layout) -> Result<Vec<TicketType>> {
        let categories = layout.categories();
        match self {
            Pricing::Prices(prices) => Ok(vec![TicketType {
                name: TicketTypeName::full(),
                prices: categories
                    .into_iter()
                    .map(|c| (c.as_str().to_owned(), prices.get(c).copied()))
                    .collect(),
            }]),
            Pricing::Types(types) => types
                .iter()
                .map(|(name, prices)| {
                    if let Some(c) = prices.keys().find(|c| !categories.contains(c)) {
                        return Err(Error::invalid(
                            "ticket_types",
                            format!(
                                "ticket type {name} prices category {}, which no row has",
                                c.as_str()
                            ),
                        ));
                    }
                    Ok(TicketType {
                        name: name.clone(),
                        prices: prices
                            .iter()
                            .map(|(c, p)| (c.as_str().to_owned(), Some(*p)))
                            .collect(),
                    })
                })
                .collect(),
        }
    }
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
        serde_json::to_value(&self.0).unwrap_or_default()
    }

    /// Rows written by [`Layout::to_json`], checked again as any input is.
    pub(crate) fn from_json(value: serde_json::Value) -> Result<Self> {
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
        Layout::new(specs)
    }
}
