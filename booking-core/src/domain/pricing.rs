//! How a show prices its seats: ticket types, each with a price per category.

use super::{Category, Layout, TicketTypeName};
use crate::error::{Error, Result};
use std::collections::BTreeMap;

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

/// How a show prices its seats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pricing {
    /// One type, `full`, sold for every category, at this price per category (a
    /// category without one is sold at no price).
    Prices(BTreeMap<Category, i64>),
    /// These types, the first the default; each sold for the categories it prices.
    Types(Vec<(TicketTypeName, BTreeMap<Category, i64>)>),
}

pub(super) fn check_prices(field: &str, prices: &BTreeMap<Category, i64>) -> Result<()> {
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
