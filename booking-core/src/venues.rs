//! Venues: saved layouts (a multiplex's screen, a theatre's house) that shows copy
//! their rows and standing areas from when they are created.
//!
//! A show never reads its venue again after its creation: its seats are its own rows.
//! So editing a venue ([`update_venue`]) changes the shows created after the edit and
//! never moves a seat of a show that exists (a sold seat stays where it was sold).

use crate::database::Cached;
use crate::domain::{check_text, AreaSpec, Layout, RowSpec, VenueId};
use crate::error::{Error, Result};
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use tokio_postgres::Row;

/// A venue's name and rows, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVenue {
    name: String,
    layout: Layout,
}

impl NewVenue {
    /// Checks the name: 1 to 200 characters, not blank, no control characters
    /// ([`Error::Invalid`], field `name`).
    pub fn new(name: &str, layout: Layout) -> Result<Self> {
        check_text("name", name)?;
        Ok(NewVenue {
            name: name.to_owned(),
            layout,
        })
    }
}

/// A saved layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Venue {
    /// The venue's id, given by the database.
    pub venue_id: VenueId,
    /// Its name, such as `Screen 3`.
    pub name: String,
    /// Seats in all its rows.
    pub seats_total: i64,
    /// Its rows, front first, as given (defaults filled in).
    pub rows: Vec<RowSpec>,
    /// Places in all its standing areas.
    pub places_total: i64,
    /// Its standing areas, as given (defaults filled in).
    pub areas: Vec<AreaSpec>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When its layout was last replaced (its creation, until then).
    pub updated_at: DateTime<Utc>,
}

fn venue_from_row(r: &Row) -> Result<Venue> {
    let layout = Layout::from_json(r.get("rows"), r.get("areas"))?;
    Ok(Venue {
        venue_id: VenueId::from_db(r.get("id")),
        name: r.get("name"),
        seats_total: i64::from(r.get::<_, i32>("seats_total")),
        rows: layout.rows().to_vec(),
        places_total: layout.place_count() as i64,
        areas: layout.areas().to_vec(),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    })
}

const COLUMNS: &str = "id, name, rows, areas, seats_total, created_at, updated_at";

/// Saves a venue.
pub async fn create_venue<C: GenericClient>(client: &C, new: &NewVenue) -> Result<Venue> {
    let row = client
        .cq_one(
            &format!(
                "INSERT INTO venues (name, rows, seats_total, areas) VALUES ($1, $2, $3, $4)
                 RETURNING {COLUMNS}"
            ),
            &[
                &new.name,
                &new.layout.to_json(),
                &(new.layout.seat_count() as i32),
                &new.layout.areas_json(),
            ],
        )
        .await?;
    venue_from_row(&row)
}

/// Replaces a venue's name and rows. Shows created from it before keep their seats.
/// [`Error::VenueNotFound`] when there is no such venue.
pub async fn update_venue<C: GenericClient>(
    client: &C,
    id: VenueId,
    new: &NewVenue,
) -> Result<Venue> {
    let row = client
        .cq_opt(
            &format!(
                "UPDATE venues SET name = $2, rows = $3, seats_total = $4, areas = $5,
                        updated_at = now()
                  WHERE id = $1 RETURNING {COLUMNS}"
            ),
            &[
                &id.get(),
                &new.name,
                &new.layout.to_json(),
                &(new.layout.seat_count() as i32),
                &new.layout.areas_json(),
            ],
        )
        .await?
        .ok_or(Error::VenueNotFound)?;
    venue_from_row(&row)
}

/// One venue, or [`Error::VenueNotFound`].
pub async fn get_venue<C: GenericClient>(client: &C, id: VenueId) -> Result<Venue> {
    let row = client
        .cq_opt(
            &format!("SELECT {COLUMNS} FROM venues WHERE id = $1"),
            &[&id.get()],
        )
        .await?
        .ok_or(Error::VenueNotFound)?;
    venue_from_row(&row)
}

/// Every venue, oldest first.
pub async fn list_venues<C: GenericClient>(client: &C) -> Result<Vec<Venue>> {
    let rows = client
        .cq(&format!("SELECT {COLUMNS} FROM venues ORDER BY id"), &[])
        .await?;
    rows.iter().map(venue_from_row).collect()
}

/// The rows of venue `id` for a show being created in `client`'s transaction, read
/// `FOR SHARE` so that an edit of the venue waits for the show (or the show for the
/// edit): the show copies one version of the layout whole.
pub(crate) async fn layout_for_show<C: GenericClient>(client: &C, id: VenueId) -> Result<Layout> {
    let row = client
        .cq_opt(
            "SELECT rows, areas FROM venues WHERE id = $1 FOR SHARE",
            &[&id.get()],
        )
        .await?
        .ok_or(Error::VenueNotFound)?;
    Layout::from_json(row.get("rows"), row.get("areas"))
}

/// A page of venues, oldest first (by id), after `cursor` (the `next_cursor` of the
/// page before; another list's is [`Error::Invalid`], field `cursor`). Index: the
/// primary key.
pub async fn venues_page<C: GenericClient>(
    client: &C,
    limit: crate::pages::Limit,
    cursor: Option<crate::pages::Cursor>,
) -> Result<crate::pages::Page<Venue>> {
    use crate::pages::{Cursor, List, Page};
    let after = match cursor {
        Some(c) => c.of(List::Venues, None)?.show,
        None => 0,
    };
    let rows = client
        .cq(
            &format!("SELECT {COLUMNS} FROM venues WHERE id > $1 ORDER BY id LIMIT $2"),
            &[&after, &limit.fetch()],
        )
        .await?;
    let venues = rows
        .iter()
        .map(venue_from_row)
        .collect::<Result<Vec<_>>>()?;
    Ok(Page::of(venues, limit, |v| {
        Cursor::numbered(List::Venues, v.venue_id.get(), None)
    }))
}
