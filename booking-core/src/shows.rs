//! Shows: creating one from a row layout, listing them with their seat counts.

use crate::database::Cached;
use crate::domain::{NewShow, ShowId};
use crate::error::{Error, Result};
pub use crate::seats::ensure_exists;
use crate::seats::HELD;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use tokio_postgres::Row;

/// A show with how many of its seats are in each state right now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Show {
    /// The show's id, given by the database at creation.
    pub id: ShowId,
    /// The title it was created with.
    pub title: String,
    /// When the show starts.
    pub starts_at: DateTime<Utc>,
    /// The ISO 4217 code of its prices, such as `EUR`.
    pub currency: String,
    /// How many seats the show has; fixed at creation.
    pub seats_total: i64,
    /// Seats neither held nor booked: `seats_total - held - booked`.
    pub available: i64,
    /// Seats of active holds still before their `expires_at` (lapsed holds not counted).
    pub held: i64,
    /// Seats of confirmed, uncancelled bookings.
    pub booked: i64,
}

/// Creates a show and all its seats in one transaction (on `client`, or nested inside
/// the caller's transaction as a savepoint).
///
/// Seat labels are the row label followed by 1..n; rows are numbered front to back in
/// the order given. A seat whose category has a price carries it.
#[tracing::instrument(skip_all, fields(title = new.title(), seats = new.seat_count()))]
pub async fn create_show<C>(client: &mut C, new: &NewShow) -> Result<Show>
where
    C: GenericClient + Send,
{
    let n = new.seat_count();
    let mut labels = Vec::with_capacity(n);
    let mut rows = Vec::with_capacity(n);
    let mut row_index = Vec::with_capacity(n);
    let mut numbers = Vec::with_capacity(n);
    let mut categories = Vec::with_capacity(n);
    let mut prices: Vec<Option<i64>> = Vec::with_capacity(n);
    let mut aisle_after = Vec::with_capacity(n);
    for (i, row) in new.rows().iter().enumerate() {
        let price = new.prices().get(&row.category).copied();
        for number in 1..=row.seats {
            labels.push(format!("{}{}", row.row, number));
            rows.push(row.row.as_str());
            row_index.push(i as i32);
            numbers.push(i32::from(number));
            categories.push(row.category.as_str());
            prices.push(price);
            aisle_after.push(row.aisles_after.contains(&number));
        }
    }

    let tx = client.transaction().await?;
    let id: i64 = tx
        .cq_one(
            "INSERT INTO shows (title, starts_at, currency, seats_total)
             VALUES ($1, $2, $3, $4) RETURNING id",
            &[
                &new.title(),
                &new.starts_at(),
                &new.currency().as_str(),
                &(n as i32),
            ],
        )
        .await?
        .get(0);
    let inserted = tx
        .cexec(
            "INSERT INTO seats (show_id, label, row_label, row_index, number, category, price, aisle_after)
             SELECT $1, * FROM unnest($2::text[], $3::text[], $4::int[], $5::int[], $6::text[],
                                      $7::bigint[], $8::bool[])",
            &[&id, &labels, &rows, &row_index, &numbers, &categories, &prices, &aisle_after],
        )
        .await?;
    if inserted != n as u64 {
        return Err(Error::Invariant(format!(
            "inserted {inserted} of {n} seats"
        )));
    }
    tx.commit().await?;
    // A show adds up to 100,000 rows at once: refresh the planner's statistics now, so
    // that statements planned from here on do not take `seats` for the small table it
    // was (measured: holds ran 4x slower on a plan that scanned all seats). Best effort:
    // ANALYZE blocks no reads or writes. Inside a caller's transaction it cannot see the
    // new rows yet; autovacuum then catches up as usual.
    let _ = client.cexec("ANALYZE seats", &[]).await;
    Ok(Show {
        id: ShowId::from_db(id),
        title: new.title().to_owned(),
        starts_at: new.starts_at(),
        currency: new.currency().as_str().to_owned(),
        seats_total: n as i64,
        available: n as i64,
        held: 0,
        booked: 0,
    })
}

/// Shows with their counts. Only taken seats are read (the partial indexes on
/// `hold_id` and `booking_id`); the total is stored with the show. Counting every seat
/// of every show made `GET /shows` the slowest request (p50 576 ms in `mixed`). Each
/// held seat looks its hold up by primary key: as a join, the planner (estimating one
/// held seat a show) scanned every active hold per seat (26 ms against 6.7 ms for 20
/// shows with ~1,000 held seats).
fn shows_with_counts() -> String {
    format!(
        "SELECT sh.id, sh.title, sh.starts_at, sh.currency, sh.seats_total::bigint AS seats_total,
           (SELECT count(*) FROM seats s
             WHERE s.show_id = sh.id AND s.booking_id IS NOT NULL) AS booked,
           (SELECT count(*) FROM seats s
             WHERE s.show_id = sh.id AND s.hold_id IS NOT NULL
               AND (SELECT {HELD} FROM holds h
                     WHERE h.show_id = s.show_id AND h.id = s.hold_id)) AS held
      FROM shows sh"
    )
}

fn show_from_row(row: &Row) -> Show {
    let total: i64 = row.get("seats_total");
    let held: i64 = row.get("held");
    let booked: i64 = row.get("booked");
    Show {
        id: ShowId::from_db(row.get("id")),
        title: row.get("title"),
        starts_at: row.get("starts_at"),
        currency: row.get("currency"),
        seats_total: total,
        available: total - held - booked,
        held,
        booked,
    }
}

/// All shows, soonest first, with their seat counts.
pub async fn list_shows<C: GenericClient>(client: &C) -> Result<Vec<Show>> {
    let sql = format!("{} ORDER BY sh.starts_at, sh.id", shows_with_counts());
    let rows = client.cq(&sql, &[]).await?;
    Ok(rows.iter().map(show_from_row).collect())
}

/// One show with its seat counts, or [`Error::ShowNotFound`].
pub async fn get_show<C: GenericClient>(client: &C, show: ShowId) -> Result<Show> {
    let sql = format!("{} WHERE sh.id = $1", shows_with_counts());
    let row = client
        .cq_opt(&sql, &[&show.get()])
        .await?
        .ok_or(Error::ShowNotFound)?;
    Ok(show_from_row(&row))
}
