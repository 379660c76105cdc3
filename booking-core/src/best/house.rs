//! The house: which seats of a show are free right now, laid onto its layout (read
//! once per engine and kept: a show's seats never change after its creation).

use crate::database::Cached;
use crate::engine::best_memory::{Layout, Memory, LAYOUTS_KEPT};
use crate::error::{Error, Result};
use crate::rank::Place;
use crate::seats::{HELD, JOIN_HOLD};
use deadpool_postgres::GenericClient;
use std::collections::HashMap;
use std::sync::Arc;

/// The house as one read saw it, in seat-map order.
pub(super) struct House {
    pub(super) currency: String,
    pub(super) layout: Arc<Layout>,
    /// The layout's places, with who is free and of the asked category now.
    pub(super) places: Vec<Place>,
}

/// Reads the house: which seats are free right now, in one statement (the statement's
/// snapshot), laid onto the show's layout (read once per process and kept: a show's
/// seats never change after its creation).
///
/// The statement returns one row: the show, and the ids of its free seats as an
/// array (a seat is free when it has no booking and no hold that is active and before
/// its `expires_at`). It scans the show's seats once and sorts nothing.
pub(super) async fn read_house<C: GenericClient>(
    tx: &C,
    memory: &Memory,
    show: i64,
    category: Option<&str>,
) -> Result<House> {
    let sql = format!(
        "SELECT sh.currency,
                array(SELECT s.id FROM seats s {JOIN_HOLD}
                       WHERE s.show_id = sh.id AND s.booking_id IS NULL
                         AND {HELD} IS NOT TRUE) AS free
           FROM shows sh
          WHERE sh.id = $1"
    );
    let row = tx
        .cq_opt(&sql, &[&show])
        .await?
        .ok_or(Error::ShowNotFound)?;
    let layout = layout(tx, memory, show).await?;
    let mut places = layout.places.clone();
    for id in row.get::<_, Vec<i64>>("free") {
        if let Some(&i) = layout.index_of.get(&id) {
            places[i].free = true;
        }
    }
    if let Some(c) = category {
        for (p, seat_category) in places.iter_mut().zip(&layout.categories) {
            p.eligible = seat_category == c;
        }
    }
    Ok(House {
        currency: row.get("currency"),
        layout,
        places,
    })
}

/// The layout of `show`, from the engine's memory or read once.
async fn layout<C: GenericClient>(tx: &C, memory: &Memory, show: i64) -> Result<Arc<Layout>> {
    if let Some(l) = memory.layouts().get(&show) {
        return Ok(l.clone());
    }
    let rows = tx
        .cq(
            "SELECT id, row_index, number, aisle_after, category FROM seats WHERE show_id = $1",
            &[&show],
        )
        .await?;
    if rows.is_empty() {
        return Err(Error::Invariant(format!("show {show} has no seats")));
    }
    let mut seats: Vec<(Place, i64, String)> = rows
        .iter()
        .map(|r| {
            let place = Place {
                row: r.get::<_, i32>("row_index") as u32,
                number: r.get::<_, i32>("number") as u16,
                aisle_after: r.get("aisle_after"),
                free: false,
                eligible: true,
            };
            (place, r.get("id"), r.get("category"))
        })
        .collect();
    seats.sort_unstable_by_key(|(p, _, _)| (p.row, p.number));
    let mut layout = Layout {
        ids: Vec::with_capacity(seats.len()),
        places: Vec::with_capacity(seats.len()),
        categories: Vec::with_capacity(seats.len()),
        index_of: HashMap::with_capacity(seats.len()),
    };
    for (i, (place, id, category)) in seats.into_iter().enumerate() {
        layout.ids.push(id);
        layout.places.push(place);
        layout.categories.push(category);
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
