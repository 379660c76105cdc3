//! A new show's description: title, start, currency, pricing, and its rows (or the
//! venue whose rows it copies).

use super::pricing::{check_prices, MAX_TICKET_TYPES};
use super::{check_text, Category, Currency, Layout, Pricing, RowSpec, ShowLayout, TicketTypeName};
use crate::error::{Error, Result};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};

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
    sales_window: SalesWindow,
    queue: Option<super::QueueSettings>,
}

/// When a show sells: from `start` (included) to `end` (excluded), either end open when
/// `None`. Checked: `start` before `end` when both are given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SalesWindow {
    /// When sales open; `None`: at once.
    pub start: Option<DateTime<Utc>>,
    /// When sales close; `None`: never.
    pub end: Option<DateTime<Utc>>,
}

impl SalesWindow {
    /// The window from `start` to `end`; [`Error::Invalid`] (field `sales_end`) unless
    /// `start` is before `end` (when both are given).
    pub fn new(start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) -> Result<Self> {
        if let (Some(s), Some(e)) = (start, end) {
            if s >= e {
                return Err(Error::invalid("sales_end", "must be after sales_start"));
            }
        }
        Ok(SalesWindow { start, end })
    }
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
        check_text("title", title)?;
        Ok(NewShow {
            title: title.to_owned(),
            starts_at,
            currency,
            pricing: Pricing::Prices(BTreeMap::new()),
            layout,
            max_seats_per_user: None,
            sales_window: SalesWindow::default(),
            queue: None,
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

    /// Sells only inside `window` (by default: from its creation on, without end).
    pub fn with_sales_window(mut self, window: SalesWindow) -> Self {
        self.sales_window = window;
        self
    }

    /// When it sells.
    pub fn sales_window(&self) -> SalesWindow {
        self.sales_window
    }

    /// Buyers wait in a queue and are admitted as `queue` says (`crate::queue`). A
    /// queue opens at the sales window's start: [`Error::Invalid`] (field `queue`)
    /// when the window has none.
    pub fn with_queue(mut self, queue: Option<super::QueueSettings>) -> Result<Self> {
        if queue.is_some() && self.sales_window.start.is_none() {
            return Err(Error::invalid("queue", "a queue needs a sales_start"));
        }
        self.queue = queue;
        Ok(self)
    }

    /// Its queue's settings, if it has one.
    pub fn queue(&self) -> Option<super::QueueSettings> {
        self.queue
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
