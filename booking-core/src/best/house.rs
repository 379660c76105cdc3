//! The house: which seats of a show are free right now, laid onto its layout (read
//! once per engine and kept: a show's seats never change after its creation), and
//! which of them the request may have (category, section, features, ticket types).

use crate::database::Cached;
use crate::domain::TicketType;
use crate::engine::best_memory::{Layout, Memory, LAYOUTS_KEPT};
use crate::error::{Error, Result};
use crate::rank::Place;
use crate::seats::{HELD, JOIN_HOLD};
use crate::shows::SALE_COLUMNS;
use crate::tickets::{types_from_json, types_of_show};
use deadpool_postgres::GenericClient;
use std::collections::HashMap;
use std::sync::Arc;

/// Which seats a request may have.
pub(super) struct Filter<'a> {
    pub(super) category: Option<&'a str>,
    /// Only this section's seats, ranked among its own rows as a house.
    pub(super) section: Option<&'a str>,
    /// Every chosen seat has each of these features.
    pub(super) require: &'a [String],
    /// No chosen seat has any of these, where a group without them exists.
    pub(super) avoid: &'a [String],
    /// Types the seats are sold as (the default when empty): only seats of categories
    /// every one of them sells.
    pub(super) ticket_types: &'a [String],
}

/// The house as one read saw it, in seat-map order.
pub(super) struct House {
    pub(super) currency: String,
    pub(super) max_seats_per_user: Option<u32>,
    /// The allowance of the show's queue, if it has one (`crate::queue`).
    pub(super) queue_max_seats: Option<u32>,
    pub(super) layout: Arc<Layout>,
    /// The places considered (the section's, or all), with who is free and eligible.
    pub(super) places: Vec<Place>,
    /// Of each place: it has a feature to avoid.
    pub(super) avoided: Vec<bool>,
    /// The layout index of each place when only a section is considered.
    at: Option<Vec<usize>>,
    /// For a section: the place of each seat id.
    index_in_section: HashMap<i64, usize>,
}

impl House {
    /// The seat id of place `i`.
    pub(super) fn id(&self, i: usize) -> i64 {
        match &self.at {
            Some(at) => self.layout.ids[at[i]],
            None => self.layout.ids[i],
        }
    }

    /// The place of seat `id`, if it is considered.
    pub(super) fn index_of(&self, id: i64) -> Option<usize> {
        match &self.at {
            Some(_) => self.index_in_section.get(&id).copied(),
            None => self.layout.index_of.get(&id).copied(),
        }
    }

    /// The category of place `i`.
    pub(super) fn category(&self, i: usize) -> &str {
        match &self.at {
            Some(at) => &self.layout.categories[at[i]],
            None => &self.layout.categories[i],
        }
    }
}

/// Reads the house: which seats are free right now, in one statement (the statement's
/// snapshot), laid onto the show's layout (read once per process and kept: a show's
/// seats never change after its creation), with the request's `filter` applied.
///
/// The statement returns one row: the show, and the ids of its free seats as an
/// array (a seat is free when it has no booking, no block and no hold that is active
/// and before its `expires_at`). It scans the show's seats once and sorts nothing.
/// The subquery names the show by the parameter: correlated on `sh.id`, Citus read
/// every shard of every worker.
pub(super) async fn read_house<C: GenericClient>(
    tx: &C,
    memory: &Memory,
    show: i64,
    filter: &Filter<'_>,
) -> Result<House> {
    let sql = format!(
        "SELECT sh.currency, sh.max_seats_per_user, sh.queue_max_seats, {SALE_COLUMNS},
                array(SELECT s.id FROM seats s {JOIN_HOLD}
                       WHERE s.show_id = $1 AND s.booking_id IS NULL AND s.block_id IS NULL
                         AND s.area IS NULL AND {HELD} IS NOT TRUE) AS free
           FROM shows sh
          WHERE sh.id = $1"
    );
    let row = tx
        .cq_opt(&sql, &[&show])
        .await?
        .ok_or(Error::ShowNotFound)?;
    crate::shows::sale_refusal(&row)?;
    let layout = layout(tx, memory, show).await?;
    let mut all = layout.places.clone();
    for id in row.get::<_, Vec<i64>>("free") {
        if let Some(&i) = layout.index_of.get(&id) {
            all[i].free = true;
        }
    }
    let sold = sold_categories(&layout.ticket_types, filter.ticket_types);
    let mut avoided_all = vec![false; all.len()];
    for (i, p) in all.iter_mut().enumerate() {
        let category = &layout.categories[i];
        let features = &layout.features[i];
        p.eligible = filter.category.is_none_or(|c| c == category)
            && sold.iter().any(|c| c == category)
            && filter.require.iter().all(|f| features.contains(f));
        avoided_all[i] = filter.avoid.iter().any(|f| features.contains(f));
    }
    let (places, avoided, at, index_in_section) = match filter.section {
        None => (all, avoided_all, None, HashMap::new()),
        Some(section) => {
            let at: Vec<usize> = (0..all.len())
                .filter(|&i| layout.sections[i].as_deref() == Some(section))
                .collect();
            let index_in_section = at
                .iter()
                .enumerate()
                .map(|(k, &i)| (layout.ids[i], k))
                .collect();
            let places = at.iter().map(|&i| all[i]).collect();
            let avoided = at.iter().map(|&i| avoided_all[i]).collect();
            (places, avoided, Some(at), index_in_section)
        }
    };
    Ok(House {
        currency: row.get("currency"),
        max_seats_per_user: row
            .get::<_, Option<i32>>("max_seats_per_user")
            .map(|m| m as u32),
        queue_max_seats: row
            .get::<_, Option<i32>>("queue_max_seats")
            .map(|m| m as u32),
        layout,
        places,
        avoided,
        at,
        index_in_section,
    })
}

/// The categories every one of `wanted` (the default type when empty) is sold for.
/// A type the show does not have sells nothing.
fn sold_categories(types: &[TicketType], wanted: &[String]) -> Vec<String> {
    let default: Vec<String> = types
        .first()
        .map(|t| t.name.as_str().to_owned())
        .into_iter()
        .collect();
    let wanted = if wanted.is_empty() { &default } else { wanted };
    let mut sold: Option<Vec<String>> = None;
    for name in wanted {
        let of_type: Vec<String> = types
            .iter()
            .find(|t| t.name.as_str() == name)
            .map(|t| t.prices.keys().cloned().collect())
            .unwrap_or_default();
        sold = Some(match sold {
            None => of_type,
            Some(before) => before.into_iter().filter(|c| of_type.contains(c)).collect(),
        });
    }
    sold.unwrap_or_default()
}

/// The layout of `show`, from the engine's memory or read once.
async fn layout<C: GenericClient>(tx: &C, memory: &Memory, show: i64) -> Result<Arc<Layout>> {
    if let Some(l) = memory.layouts().get(&show) {
        return Ok(l.clone());
    }
    let (rows, types) = futures_util::future::try_join(
        tx.cq(
            "SELECT id, row_index, number, aisle_after, category, section, features
               FROM seats WHERE show_id = $1 AND area IS NULL",
            &[&show],
        ),
        tx.cq_one(
            &format!(
                "SELECT {} FROM shows sh WHERE sh.id = $1",
                types_of_show("$1")
            ),
            &[&show],
        ),
    )
    .await?;
    if rows.is_empty() {
        // Standing areas only: no group of seats fits any request.
        return Err(Error::SeatsUnavailable {
            seats: Vec::new(),
            areas: Vec::new(),
        });
    }
    type Seat = (Place, i64, String, Option<String>, Vec<String>);
    let mut seats: Vec<Seat> = rows
        .iter()
        .map(|r| {
            let place = Place {
                row: r.get::<_, i32>("row_index") as u32,
                number: r.get::<_, i32>("number") as u16,
                aisle_after: r.get("aisle_after"),
                free: false,
                eligible: true,
            };
            (
                place,
                r.get("id"),
                r.get("category"),
                r.get("section"),
                r.get("features"),
            )
        })
        .collect();
    seats.sort_unstable_by_key(|(p, ..)| (p.row, p.number));
    let n = seats.len();
    let mut layout = Layout {
        ids: Vec::with_capacity(n),
        places: Vec::with_capacity(n),
        categories: Vec::with_capacity(n),
        sections: Vec::with_capacity(n),
        features: Vec::with_capacity(n),
        index_of: HashMap::with_capacity(n),
        ticket_types: types_from_json(types.get("ticket_types"))?,
    };
    for (i, (place, id, category, section, features)) in seats.into_iter().enumerate() {
        layout.ids.push(id);
        layout.places.push(place);
        layout.categories.push(category);
        layout.sections.push(section);
        layout.features.push(features);
        layout.index_of.insert(id, i);
    }
    let layout = Arc::new(layout);
    let mut cache = memory.layouts();
    if cache.len() >= LAYOUTS_KEPT {
        cache.clear();
    }
    cache.insert(show, layout.clone());
    Ok(layout)
}
