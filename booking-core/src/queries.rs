//! Queries in pages (see [`crate::pages`]): a show's holds and bookings for its admins,
//! a user's bookings across shows, and the shows by their start.
//!
//! Newest first: holds by `created_at`, bookings by `confirmed_at`, ties broken by id
//! (descending); shows soonest first, by `starts_at` then id ([`shows`]). Each query is one range scan of an index in that order (named at each
//! query; `migrations/V10__query_indexes.sql` makes them, `tests/it/queries.rs` checks
//! with `EXPLAIN` that they are used), starting at the cursor: never `OFFSET`.
//!
//! The rows come through the readers of [`crate::holds`] and [`crate::bookings`], so
//! a hold or booking in a list is exactly what reading it alone gives. Filters are
//! applied in the database; a status filter walks the index past the rows it skips, so
//! a page of a rare status may read more rows than it returns.

use crate::bookings::{booking_from_row, SELECT_BOOKING, SELECT_BOOKING_OF_SHOW};
use crate::database::Cached;
use crate::domain::{BookingStatus, HoldId, HoldStatus, ShowId, TicketType, UserId, VenueId};
use crate::error::{Error, Result};
use crate::holds::Hold;
use crate::pages::{Cursor, Limit, List, Page};
use crate::shows::SHOW_STATUS;
use crate::tickets::{types_from_json, types_of_show};
use crate::Booking;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

/// Which holds of a show to list.
#[derive(Debug, Clone, Default)]
pub struct HoldQuery {
    /// Only holds of this status as of the read (an active hold past its
    /// `expires_at` is expired, as [`Hold::status`] says); `None`: all.
    pub status: Option<HoldStatus>,
    /// Only this user's holds; `None`: everybody's.
    pub user: Option<UserId>,
    /// Rows a page.
    pub limit: Limit,
    /// Where the page starts: the `next_cursor` of the page before; `None`: the first.
    pub cursor: Option<Cursor>,
}

/// Which bookings of a show to list.
#[derive(Debug, Clone, Default)]
pub struct BookingQuery {
    /// Only bookings of this status; `None`: all.
    pub status: Option<BookingStatus>,
    /// Only this user's bookings; `None`: everybody's.
    pub user: Option<UserId>,
    /// Only the booking with this reference (one at most: a reference names one
    /// booking of its show): 1 to 128 visible ASCII characters, else the query is
    /// [`Error::Invalid`] (field `external_ref`).
    pub external_ref: Option<String>,
    /// Rows a page.
    pub limit: Limit,
    /// Where the page starts: the `next_cursor` of the page before; `None`: the first.
    pub cursor: Option<Cursor>,
}

/// A reference as a filter: 1 to 128 visible ASCII characters (the rule of
/// `migrations/V8__integrator.sql`), else [`Error::Invalid`] (field `external_ref`).
fn check_reference(r: &str) -> Result<()> {
    if r.is_empty() || r.len() > 128 || !r.bytes().all(|b| (b'!'..=b'~').contains(&b)) {
        return Err(Error::invalid(
            "external_ref",
            "a reference is 1 to 128 visible ASCII characters",
        ));
    }
    Ok(())
}

/// A hold status as a query string names it: [`Error::Invalid`] (field `status`) when
/// it names none.
pub fn parse_hold_status(s: &str) -> Result<HoldStatus> {
    [
        HoldStatus::Active,
        HoldStatus::Confirmed,
        HoldStatus::Released,
        HoldStatus::Expired,
    ]
    .into_iter()
    .find(|h| h.as_str() == s)
    .ok_or_else(|| {
        Error::invalid(
            "status",
            "a hold's status is active, confirmed, released or expired",
        )
    })
}

/// A booking status as a query string names it: [`Error::Invalid`] (field `status`)
/// when it names none.
pub fn parse_booking_status(s: &str) -> Result<BookingStatus> {
    [BookingStatus::Confirmed, BookingStatus::Cancelled]
        .into_iter()
        .find(|b| b.as_str() == s)
        .ok_or_else(|| Error::invalid("status", "a booking's status is confirmed or cancelled"))
}

/// SQL: holds `h` of a status as of now (the database clock decides expiry, as
/// everywhere: `booking_now`, the show's node's clock on Citus). Literal SQL of a closed
/// set, never input.
fn hold_status_sql(status: HoldStatus) -> &'static str {
    match status {
        HoldStatus::Active => "h.status = 'active' AND h.expires_at > booking_now(h.show_id)",
        HoldStatus::Expired => {
            "(h.status = 'expired' OR (h.status = 'active' AND h.expires_at <= booking_now(h.show_id)))"
        }
        HoldStatus::Confirmed => "h.status = 'confirmed'",
        HoldStatus::Released => "h.status = 'released'",
    }
}

/// A statement built from a query's filters: its SQL and its parameters, numbered as
/// they are added. [`Statement::explain`] says how PostgreSQL runs it (which index).
pub struct Statement {
    sql: String,
    values: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Statement {
    fn new(sql: &str) -> Statement {
        Statement {
            sql: sql.to_owned(),
            values: Vec::new(),
        }
    }

    /// The next parameter's placeholder, bound to `value`.
    fn bind(&mut self, value: impl ToSql + Sync + Send + 'static) -> String {
        self.values.push(Box::new(value));
        format!("${}", self.values.len())
    }

    /// Appends `sql`.
    fn push(&mut self, sql: &str) {
        self.sql.push_str(sql);
    }

    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.values
            .iter()
            .map(|v| v.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }

    async fn rows<C: GenericClient>(&self, client: &C) -> Result<Vec<tokio_postgres::Row>> {
        Ok(client.cq(&self.sql, &self.params()).await?)
    }

    /// PostgreSQL's plan of the statement (`EXPLAIN`, text format, not run): what an
    /// operator or a test reads to see which index serves a query.
    pub async fn explain<C: GenericClient>(&self, client: &C) -> Result<String> {
        let rows = client
            .query(&format!("EXPLAIN {}", self.sql), &self.params())
            .await?;
        Ok(rows
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
            .join("\n"))
    }

    /// The statement of [`show_holds`]. Index: `holds_page` (show, created_at, id), or
    /// `holds_page_by_user` (show, user, created_at, id) with a user.
    pub fn show_holds(show: ShowId, q: &HoldQuery) -> Result<Statement> {
        let cursor = q
            .cursor
            .map(|c| c.of(List::ShowHolds, Some(show.get())))
            .transpose()?;
        let mut st = Statement::new("SELECT h.id FROM holds h WHERE h.show_id = ");
        let p = st.bind(show.get());
        st.push(&p);
        if let Some(u) = &q.user {
            let p = st.bind(u.as_str().to_owned());
            st.push(&format!(" AND h.user_id = {p}"));
        }
        if let Some(s) = q.status {
            st.push(" AND ");
            st.push(hold_status_sql(s));
        }
        if let Some(c) = cursor {
            let (at, key) = (st.bind(c.at), st.bind(c.key));
            st.push(&format!(" AND (h.created_at, h.id) < ({at}, {key})"));
        }
        let p = st.bind(q.limit.fetch());
        st.push(&format!(" ORDER BY h.created_at DESC, h.id DESC LIMIT {p}"));
        Ok(st)
    }

    /// The statement of [`show_bookings`]. Index: `bookings_page` (show, confirmed_at,
    /// id), `bookings_page_by_user` (show, user, confirmed_at, id) with a user,
    /// `bookings_external_ref` (show, external_ref) with a reference.
    pub fn show_bookings(show: ShowId, q: &BookingQuery) -> Result<Statement> {
        let cursor = q
            .cursor
            .map(|c| c.of(List::ShowBookings, Some(show.get())))
            .transpose()?;
        // The show is bound first: it is the `$1` the subqueries name.
        let mut st = Statement::new(&SELECT_BOOKING_OF_SHOW);
        let p = st.bind(show.get());
        st.push(&format!(" WHERE b.show_id = {p}"));
        if let Some(u) = &q.user {
            let p = st.bind(u.as_str().to_owned());
            st.push(&format!(" AND b.user_id = {p}"));
        }
        if let Some(r) = &q.external_ref {
            check_reference(r)?;
            let p = st.bind(r.clone());
            st.push(&format!(" AND b.external_ref = {p}"));
        }
        if let Some(s) = q.status {
            // A closed set: literal SQL, never input.
            st.push(match s {
                BookingStatus::Confirmed => " AND b.status = 'confirmed'",
                BookingStatus::Cancelled => " AND b.status = 'cancelled'",
            });
        }
        if let Some(c) = cursor {
            let (at, key) = (st.bind(c.at), st.bind(c.key));
            st.push(&format!(" AND (b.confirmed_at, b.id) < ({at}, {key})"));
        }
        let p = st.bind(q.limit.fetch());
        st.push(&format!(
            " ORDER BY b.confirmed_at DESC, b.id DESC LIMIT {p}"
        ));
        Ok(st)
    }

    /// The statement of [`user_bookings`]. Index: `bookings_page_of_user` (user,
    /// confirmed_at, show, id).
    pub fn user_bookings(user: &UserId, limit: Limit, cursor: Option<Cursor>) -> Result<Statement> {
        let cursor = cursor.map(|c| c.of(List::UserBookings, None)).transpose()?;
        let mut st = Statement::new(&SELECT_BOOKING);
        let p = st.bind(user.as_str().to_owned());
        st.push(&format!(" WHERE b.user_id = {p}"));
        if let Some(c) = cursor {
            let (at, show, key) = (st.bind(c.at), st.bind(c.show), st.bind(c.key));
            st.push(&format!(
                " AND (b.confirmed_at, b.show_id, b.id) < ({at}, {show}, {key})"
            ));
        }
        let p = st.bind(limit.fetch());
        st.push(&format!(
            " ORDER BY b.confirmed_at DESC, b.show_id DESC, b.id DESC LIMIT {p}"
        ));
        Ok(st)
    }

    /// The statement of [`shows`]. Index: `shows_by_start` (starts_at, id).
    pub fn shows(q: &ShowQuery) -> Result<Statement> {
        let cursor = q.cursor.map(|c| c.of(List::Shows, None)).transpose()?;
        let mut st = Statement::new(&format!(
            "SELECT sh.id, sh.title, sh.starts_at, sh.currency, sh.seats_total,
                    sh.max_seats_per_user, sh.venue_id, {types},
                    sh.sales_start, sh.sales_end, sh.cancelled_at, {SHOW_STATUS},
                    sh.queue_admit_per_minute, sh.queue_admission_minutes, sh.queue_max_seats
               FROM shows sh WHERE true",
            types = types_of_show("sh.id"),
        ));
        if let Some(from) = q.from {
            let p = st.bind(from);
            st.push(&format!(" AND sh.starts_at >= {p}"));
        }
        if let Some(to) = q.to {
            let p = st.bind(to);
            st.push(&format!(" AND sh.starts_at < {p}"));
        }
        if let Some(c) = cursor {
            let (at, id) = (st.bind(c.at), st.bind(c.show));
            st.push(&format!(" AND (sh.starts_at, sh.id) > ({at}, {id})"));
        }
        let p = st.bind(q.limit.fetch());
        st.push(&format!(" ORDER BY sh.starts_at, sh.id LIMIT {p}"));
        Ok(st)
    }
}

/// Which shows to list.
#[derive(Debug, Clone, Default)]
pub struct ShowQuery {
    /// Only shows starting at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Only shows starting before this time.
    pub to: Option<DateTime<Utc>>,
    /// Rows a page.
    pub limit: Limit,
    /// Where the page starts: the `next_cursor` of the page before; `None`: the first.
    pub cursor: Option<Cursor>,
}

/// A show as the list of shows gives it: what it is, not how many of its seats are
/// taken right now. Live counts would cost a look at every taken seat of every listed
/// show on each request; [`crate::shows::get_show`] (and the seat map, and the report)
/// give them exactly, for one show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShowListing {
    /// The show's id.
    pub id: ShowId,
    /// Its title.
    pub title: String,
    /// When it starts.
    pub starts_at: DateTime<Utc>,
    /// The ISO 4217 code of its prices.
    pub currency: String,
    /// How many seats it has; fixed at creation (places of standing areas not
    /// counted, as in [`crate::Show`]).
    pub seats_total: i64,
    /// What its seats are sold as, the default first.
    pub ticket_types: Vec<TicketType>,
    /// Most seats one user may have in active holds and live bookings of the show.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_seats_per_user: Option<u32>,
    /// The venue whose rows it copied, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub venue_id: Option<VenueId>,
    /// When sales open (`null`: from creation on), as in [`crate::Show`].
    pub sales_start: Option<DateTime<Utc>>,
    /// When sales close (`null`: never).
    pub sales_end: Option<DateTime<Utc>>,
    /// When the show was cancelled (`null`: it was not).
    pub cancelled_at: Option<DateTime<Utc>>,
    /// On sale, not on sale or cancelled, by the database clock of the read.
    pub status: crate::shows::ShowStatus,
    /// Its waiting room (`null`: none), as in [`crate::Show`].
    pub queue: Option<crate::domain::QueueSettings>,
}

/// A page of shows, soonest first (by `starts_at`, then id), from `from` (inclusive) to
/// `to` (exclusive) when given; a cursor of another list is [`Error::Invalid`]
/// (`cursor`). Index: see [`Statement::shows`]: a page reads its own rows of the index
/// and each show's ticket types, however many shows there are.
pub async fn shows<C: GenericClient>(client: &C, q: &ShowQuery) -> Result<Page<ShowListing>> {
    let rows = Statement::shows(q)?.rows(client).await?;
    let shows = rows
        .iter()
        .map(|r| {
            Ok(ShowListing {
                id: ShowId::from_db(r.get("id")),
                title: r.get("title"),
                starts_at: r.get("starts_at"),
                currency: r.get("currency"),
                seats_total: i64::from(r.get::<_, i32>("seats_total")),
                ticket_types: types_from_json(r.get("ticket_types"))?,
                max_seats_per_user: r
                    .get::<_, Option<i32>>("max_seats_per_user")
                    .map(|m| m as u32),
                venue_id: r.get::<_, Option<i64>>("venue_id").map(VenueId::from_db),
                sales_start: r.get("sales_start"),
                sales_end: r.get("sales_end"),
                cancelled_at: r.get("cancelled_at"),
                status: crate::shows::ShowStatus::from_db(r.get("status"))?,
                queue: crate::queue::settings_of(r),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Page::of(shows, q.limit, |s| {
        Cursor::new(List::Shows, s.starts_at, s.id.get(), Uuid::nil())
    }))
}

/// A page of `show`'s holds, newest first (see the module docs), or
/// [`Error::ShowNotFound`]; a cursor of another list is [`Error::Invalid`] (`cursor`).
/// Index: see [`Statement::show_holds`].
pub async fn show_holds<C: GenericClient>(
    client: &C,
    show: ShowId,
    q: &HoldQuery,
) -> Result<Page<Hold>> {
    let st = Statement::show_holds(show, q)?;
    let (_, rows) =
        futures_util::future::try_join(crate::seats::ensure_exists(client, show), st.rows(client))
            .await?;
    // Each hold through the one reader of holds (pipelined on the one connection): a
    // listed hold is what GET /holds/{id} gives.
    let holds = futures_util::future::try_join_all(rows.iter().map(|r| {
        let id = HoldId::from_parts(show, r.get::<_, Uuid>("id"));
        async move {
            crate::holds::load(client, id)
                .await?
                .ok_or_else(|| Error::Invariant(format!("listed hold {id} vanished")))
        }
    }))
    .await?;
    Ok(Page::of(holds, q.limit, |h| {
        Cursor::new(List::ShowHolds, h.created_at, show.get(), h.hold_id.key())
    }))
}

/// A page of `show`'s bookings, newest first (see the module docs), or
/// [`Error::ShowNotFound`]; a cursor of another list is [`Error::Invalid`] (`cursor`).
/// Index: see [`Statement::show_bookings`].
pub async fn show_bookings<C: GenericClient>(
    client: &C,
    show: ShowId,
    q: &BookingQuery,
) -> Result<Page<Booking>> {
    let st = Statement::show_bookings(show, q)?;
    let (_, rows) =
        futures_util::future::try_join(crate::seats::ensure_exists(client, show), st.rows(client))
            .await?;
    let bookings = rows
        .iter()
        .map(booking_from_row)
        .collect::<Result<Vec<_>>>()?;
    Ok(Page::of(bookings, q.limit, |b| {
        booking_cursor(List::ShowBookings, b)
    }))
}

fn booking_cursor(list: List, b: &Booking) -> Cursor {
    Cursor::new(list, b.confirmed_at, b.show_id.get(), b.booking_id.key())
}

/// A page of `user`'s bookings of every show, newest first (confirmed and cancelled);
/// a cursor of another list is [`Error::Invalid`] (`cursor`). Index: see
/// [`Statement::user_bookings`].
pub async fn user_bookings<C: GenericClient>(
    client: &C,
    user: &UserId,
    limit: Limit,
    cursor: Option<Cursor>,
) -> Result<Page<Booking>> {
    let rows = Statement::user_bookings(user, limit, cursor)?
        .rows(client)
        .await?;
    let bookings = rows
        .iter()
        .map(booking_from_row)
        .collect::<Result<Vec<_>>>()?;
    Ok(Page::of(bookings, limit, |b| {
        booking_cursor(List::UserBookings, b)
    }))
}
