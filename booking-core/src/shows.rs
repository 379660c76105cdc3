//! Shows: creating one from a row layout, listing them with their seat counts.

use crate::database::Cached;
use crate::domain::{Layout, NewShow, ShowId, ShowLayout, TicketType, VenueId};
use crate::error::{Error, Result};
pub use crate::seats::ensure_exists;
use crate::seats::HELD;
use crate::tickets::{types_from_json, types_of_show};
use crate::venues;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use tokio_postgres::Row;

mod cancel;
mod sale;
mod update;
pub use cancel::{cancel, finish_cancellations, ShowCancellation};
pub use sale::ShowStatus;
pub(crate) use sale::{check as check_on_sale, refusal as sale_refusal, ON_SALE, SALE_COLUMNS};
pub(crate) use sale::{check_live, SHOW_STATUS};
pub use update::{update, ShowChanges};

/// SQL: the show's row as a derived table with one column, `pin` (its id), that every
/// `INSERT ... SELECT` of a show's statement joins on the show it writes
/// (`JOIN {PIN} p ON p.pin = $1`) and takes its `show_id` from. On plain PostgreSQL it
/// is one primary-key lookup. On Citus it is what keeps the whole statement on the
/// show's node: an `INSERT ... SELECT` whose rows come only from parameters or from the
/// statement's other CTEs is run "via the coordinator", and Citus then copies every CTE
/// result it reads to every worker (`intermediate_result_pruning.c`,
/// `SUBPLAN_ACCESS_ANYWHERE`), so a one-seat hold wrote to both workers in a two-phase
/// commit and stopped while any worker was down. Selecting from the show's distributed
/// row instead lets Citus push the insert down to the show's shard, and the CTE results
/// go to that node only. The column is renamed so that it can join any `FROM` without
/// making its unqualified `id` or `xmin` ambiguous.
pub(crate) const PIN: &str = "(SELECT id AS pin FROM shows)";

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
    /// Seats neither held, booked nor blocked: `seats_total - held - booked - blocked`.
    pub available: i64,
    /// Seats of active holds still before their `expires_at` (lapsed holds not counted).
    pub held: i64,
    /// Seats of confirmed, uncancelled bookings.
    pub booked: i64,
    /// Seats taken off sale by a block.
    pub blocked: i64,
    /// What its seats are sold as, the default first.
    pub ticket_types: Vec<TicketType>,
    /// Most seats one user may have in active holds and live bookings of the show.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_seats_per_user: Option<u32>,
    /// The venue whose rows it copied, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub venue_id: Option<VenueId>,
    /// When sales open (`null`: from creation on).
    pub sales_start: Option<DateTime<Utc>>,
    /// When sales close (`null`: never).
    pub sales_end: Option<DateTime<Utc>>,
    /// When the show was cancelled (`null`: it was not).
    pub cancelled_at: Option<DateTime<Utc>>,
    /// Whether it sells at the moment of this read (database clock).
    pub status: ShowStatus,
    /// Its waiting room (`null`: none): see [`crate::queue`].
    pub queue: Option<crate::domain::QueueSettings>,
}

/// Creates a show and all its seats in one transaction (on `client`, or nested inside
/// the caller's transaction as a savepoint). A show of a venue copies the venue's rows
/// as they are now ([`Error::VenueNotFound`] when there is none).
///
/// Seat labels are the row label followed by 1..n (`{section}-` first in a section);
/// rows are numbered front to back in the order given. Seats a row lists as `blocked`
/// are blocked from the start by one block of reason `venue` (one `block` event).
#[tracing::instrument(skip_all, fields(title = new.title()))]
pub async fn create_show<C>(client: &mut C, new: &NewShow) -> Result<Show>
where
    C: GenericClient + Send,
{
    let tx = client.transaction().await?;
    let (layout, venue) = match new.layout() {
        ShowLayout::Rows(l) => (std::borrow::Cow::Borrowed(l), None),
        ShowLayout::Venue(v) => (
            std::borrow::Cow::Owned(venues::layout_for_show(&tx, *v).await?),
            Some(*v),
        ),
    };
    let types = new.pricing().ticket_types(&layout)?;
    let seats = SeatColumns::of(&layout);
    let n = seats.labels.len();
    let id = tx
        .cq_one(
            &format!(
                "INSERT INTO shows AS sh (title, starts_at, currency, seats_total, venue_id,
                                          max_seats_per_user, default_ticket_type,
                                          sales_start, sales_end)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id, {SHOW_STATUS}"
            ),
            &[
                &new.title(),
                &new.starts_at(),
                &new.currency().as_str(),
                &(n as i32),
                &venue.map(VenueId::get),
                &new.max_seats_per_user().map(|m| m as i32),
                &types[0].name.as_str(),
                &new.sales_window().start,
                &new.sales_window().end,
            ],
        )
        .await?;
    let status = ShowStatus::from_db(id.get("status"))?;
    let id: i64 = id.get("id");
    insert_types(&tx, id, &types).await?;
    let inserted = tx
        .cexec(
            "INSERT INTO seats (show_id, label, section, row_label, row_index, number, category,
                                aisle_after, features)
             SELECT $1, label, section, row_label, row_index, number, category, aisle_after,
                    string_to_array(features, ',')
               FROM unnest($2::text[], $3::text[], $4::text[], $5::int[], $6::int[], $7::text[],
                           $8::bool[], $9::text[])
                    AS x(label, section, row_label, row_index, number, category, aisle_after,
                         features)",
            &[
                &id,
                &seats.labels,
                &seats.sections,
                &seats.rows,
                &seats.row_index,
                &seats.numbers,
                &seats.categories,
                &seats.aisle_after,
                &seats.features,
            ],
        )
        .await?;
    if inserted != n as u64 {
        return Err(Error::Invariant(format!(
            "inserted {inserted} of {n} seats"
        )));
    }
    crate::areas::create(&tx, id, layout.areas()).await?;
    if new.queue().is_some() {
        crate::queue::set(&tx, id, new.queue()).await?;
    }
    let blocked =
        crate::blocks::block_at_creation(&tx, ShowId::from_db(id), &seats.blocked).await?;
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
        available: (n - blocked) as i64,
        held: 0,
        booked: 0,
        blocked: blocked as i64,
        ticket_types: types,
        max_seats_per_user: new.max_seats_per_user(),
        venue_id: venue,
        sales_start: new.sales_window().start,
        sales_end: new.sales_window().end,
        cancelled_at: None,
        status,
        queue: new.queue(),
    })
}

/// The seats of a layout as columns, for one `INSERT ... SELECT FROM unnest`.
struct SeatColumns<'a> {
    labels: Vec<String>,
    sections: Vec<Option<&'a str>>,
    rows: Vec<&'a str>,
    row_index: Vec<i32>,
    numbers: Vec<i32>,
    categories: Vec<&'a str>,
    aisle_after: Vec<bool>,
    /// Each seat's features joined by `,` (feature names have no commas).
    features: Vec<String>,
    /// Labels of the seats the layout blocks from the start.
    blocked: Vec<String>,
}

impl<'a> SeatColumns<'a> {
    fn of(layout: &'a Layout) -> Self {
        let n = layout.seat_count();
        let mut c = SeatColumns {
            labels: Vec::with_capacity(n),
            sections: Vec::with_capacity(n),
            rows: Vec::with_capacity(n),
            row_index: Vec::with_capacity(n),
            numbers: Vec::with_capacity(n),
            categories: Vec::with_capacity(n),
            aisle_after: Vec::with_capacity(n),
            features: Vec::with_capacity(n),
            blocked: Vec::new(),
        };
        for (i, row) in layout.rows().iter().enumerate() {
            let section = row.section.as_ref().map(|s| s.as_str());
            for number in 1..=row.seats {
                let label = match section {
                    Some(s) => format!("{s}-{}{number}", row.row),
                    None => format!("{}{number}", row.row),
                };
                if row.blocked.contains(&number) {
                    c.blocked.push(label.clone());
                }
                c.labels.push(label);
                c.sections.push(section);
                c.rows.push(row.row.as_str());
                c.row_index.push(i as i32);
                c.numbers.push(i32::from(number));
                c.categories.push(row.category.as_str());
                c.aisle_after.push(row.aisles_after.contains(&number));
                c.features.push(row.features_of(number).join(","));
            }
        }
        c
    }
}

async fn insert_types<C: GenericClient>(tx: &C, show: i64, types: &[TicketType]) -> Result<()> {
    let names: Vec<&str> = types.iter().map(|t| t.name.as_str()).collect();
    let positions: Vec<i32> = (0..types.len() as i32).collect();
    let mut price_types = Vec::new();
    let mut categories = Vec::new();
    let mut prices = Vec::new();
    for t in types {
        for (category, price) in &t.prices {
            price_types.push(t.name.as_str());
            categories.push(category.as_str());
            prices.push(*price);
        }
    }
    // Two statements, each selecting from the show's row: Citus then runs each whole
    // on the show's node. (As one statement, or with `SELECT $1, ...`, Citus answers
    // "could not create distributed plan".)
    tx.cexec(
        "INSERT INTO ticket_types (show_id, type, position)
         SELECT sh.id, u.t, u.p FROM shows sh, unnest($2::text[], $3::int[]) AS u(t, p)
          WHERE sh.id = $1",
        &[&show, &names, &positions],
    )
    .await?;
    tx.cexec(
        "INSERT INTO ticket_prices (show_id, type, category, price)
         SELECT sh.id, u.t, u.c, u.p
           FROM shows sh, unnest($2::text[], $3::text[], $4::bigint[]) AS u(t, c, p)
          WHERE sh.id = $1",
        &[&show, &price_types, &categories, &prices],
    )
    .await?;
    Ok(())
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
           sh.max_seats_per_user, sh.venue_id, {types},
           sh.sales_start, sh.sales_end, sh.cancelled_at, {SHOW_STATUS},
           sh.queue_admit_per_minute, sh.queue_admission_minutes, sh.queue_max_seats,
           (SELECT count(*) FROM seats s
             WHERE s.show_id = sh.id AND s.area IS NULL AND s.booking_id IS NOT NULL) AS booked,
           (SELECT count(*) FROM seats s
             WHERE s.show_id = sh.id AND s.area IS NULL AND s.block_id IS NOT NULL) AS blocked,
           (SELECT count(*) FROM seats s
             WHERE s.show_id = sh.id AND s.area IS NULL AND s.hold_id IS NOT NULL
               AND (SELECT {HELD} FROM holds h
                     WHERE h.show_id = s.show_id AND h.id = s.hold_id)) AS held
      FROM shows sh",
        types = types_of_show("sh.id"),
    )
}

fn show_from_row(row: &Row) -> Result<Show> {
    let total: i64 = row.get("seats_total");
    let held: i64 = row.get("held");
    let booked: i64 = row.get("booked");
    let blocked: i64 = row.get("blocked");
    Ok(Show {
        id: ShowId::from_db(row.get("id")),
        title: row.get("title"),
        starts_at: row.get("starts_at"),
        currency: row.get("currency"),
        seats_total: total,
        available: total - held - booked - blocked,
        held,
        booked,
        blocked,
        ticket_types: types_from_json(row.get("ticket_types"))?,
        max_seats_per_user: row
            .get::<_, Option<i32>>("max_seats_per_user")
            .map(|m| m as u32),
        venue_id: row.get::<_, Option<i64>>("venue_id").map(VenueId::from_db),
        sales_start: row.get("sales_start"),
        sales_end: row.get("sales_end"),
        cancelled_at: row.get("cancelled_at"),
        status: ShowStatus::from_db(row.get("status"))?,
        queue: crate::queue::settings_of(row),
    })
}

/// All shows, soonest first, with their seat counts.
pub async fn list_shows<C: GenericClient>(client: &C) -> Result<Vec<Show>> {
    let sql = format!("{} ORDER BY sh.starts_at, sh.id", shows_with_counts());
    let rows = client.cq(&sql, &[]).await?;
    rows.iter().map(show_from_row).collect()
}

/// One show with its seat counts, or [`Error::ShowNotFound`].
pub async fn get_show<C: GenericClient>(client: &C, show: ShowId) -> Result<Show> {
    let sql = format!("{} WHERE sh.id = $1", shows_with_counts());
    let row = client
        .cq_opt(&sql, &[&show.get()])
        .await?
        .ok_or(Error::ShowNotFound)?;
    show_from_row(&row)
}
