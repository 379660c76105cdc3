//! Whether a show sells now: its sales window and its cancellation, decided by the
//! database clock (`now()`: the transaction's start, or the statement's when it runs on
//! its own) in the statement or transaction that takes seats, never by a server's.
//!
//! Every path that takes seats or places reads it twice: in its snapshot read (a herd
//! on a closed show is refused there, before any lock), and, in the paths that lock and
//! then decide, once more in a new statement after every lock is had (`check`), which
//! sees a show cancellation committed while it waited. The one-statement paths (pooled,
//! batches) cannot read again; they write only rows unchanged since their snapshot,
//! and a cancellation rewrites every seat and place row of its show, so a statement
//! that began before a cancellation committed writes nothing of that show (see
//! [`super::cancel`] and DESIGN.md "Show lifecycle").

use crate::database::Cached;
use crate::domain::ShowId;
use crate::error::{Error, Result};
use deadpool_postgres::GenericClient;

/// SQL: the show `sh` sells now: not cancelled, and its node's `now()` inside its window (the
/// start included, the end not; a missing end is open).
pub(crate) const ON_SALE: &str = "(sh.cancelled_at IS NULL
     AND booking_now(sh.id) >= coalesce(sh.sales_start, '-infinity'::timestamptz)
     AND booking_now(sh.id) < coalesce(sh.sales_end, 'infinity'::timestamptz))";

/// SQL: the columns [`refusal`] reads, of the show `sh`.
pub(crate) const SALE_COLUMNS: &str = "sh.cancelled_at AS show_cancelled_at,
     sh.sales_start AS show_sales_start, sh.sales_end AS show_sales_end,
     (sh.cancelled_at IS NULL
      AND booking_now(sh.id) >= coalesce(sh.sales_start, '-infinity'::timestamptz)
      AND booking_now(sh.id) < coalesce(sh.sales_end, 'infinity'::timestamptz)) AS show_on_sale";

/// Refuses a show that does not sell now, from a row with [`SALE_COLUMNS`]:
/// [`Error::ShowCancelled`] first, then [`Error::NotOnSale`] with the window.
pub(crate) fn refusal(row: &tokio_postgres::Row) -> Result<()> {
    if row
        .get::<_, Option<chrono::DateTime<chrono::Utc>>>("show_cancelled_at")
        .is_some()
    {
        return Err(Error::ShowCancelled);
    }
    match row.get::<_, Option<bool>>("show_on_sale") {
        Some(true) => Ok(()),
        _ => Err(Error::NotOnSale {
            sales_start: row.get("show_sales_start"),
            sales_end: row.get("show_sales_end"),
        }),
    }
}

/// Refuses, in a new statement, a show that does not sell now: run after every lock of
/// a taking transaction is had, so that a cancellation committed while it waited is
/// seen (READ COMMITTED: each statement sees every commit before it).
/// [`Error::ShowNotFound`] when there is no such show.
pub(crate) async fn check<C: GenericClient>(client: &C, show: ShowId) -> Result<()> {
    let row = client
        .cq_opt(
            &format!("SELECT {SALE_COLUMNS} FROM shows sh WHERE sh.id = $1"),
            &[&show.get()],
        )
        .await?
        .ok_or(Error::ShowNotFound)?;
    refusal(&row)
}

/// Refuses, in a new statement, a cancelled show ([`Error::ShowCancelled`]): for what an
/// admin does to a show whatever its window (blocks, changes).
/// [`Error::ShowNotFound`] when there is no such show.
pub(crate) async fn check_live<C: GenericClient>(client: &C, show: ShowId) -> Result<()> {
    let row = client
        .cq_opt(
            "SELECT cancelled_at IS NOT NULL AS cancelled FROM shows WHERE id = $1",
            &[&show.get()],
        )
        .await?
        .ok_or(Error::ShowNotFound)?;
    match row.get::<_, bool>("cancelled") {
        true => Err(Error::ShowCancelled),
        false => Ok(()),
    }
}

/// SQL: the [`ShowStatus`] of the show `sh` now, as the column `status`.
pub(crate) const SHOW_STATUS: &str = "CASE WHEN sh.cancelled_at IS NOT NULL THEN 'cancelled'
          WHEN booking_now(sh.id) >= coalesce(sh.sales_start, '-infinity'::timestamptz)
               AND booking_now(sh.id) < coalesce(sh.sales_end, 'infinity'::timestamptz) THEN 'on_sale'
          ELSE 'not_on_sale' END AS status";

crate::domain::text_enum! {
    /// Whether a show sells, at the moment it was read (database clock).
    pub enum ShowStatus {
        /// Inside its sales window and not cancelled: holds are taken.
        OnSale = "on_sale",
        /// Before its `sales_start` or from its `sales_end` on: holds get
        /// [`Error::NotOnSale`].
        NotOnSale = "not_on_sale",
        /// Cancelled: holds get [`Error::ShowCancelled`], for ever.
        Cancelled = "cancelled",
    }
}
