//! Changing a show after its creation: its title, start, sales window and limit per
//! buyer (`PATCH /shows/{id}`).

use super::{get_show, Show};
use crate::database::Cached;
use crate::domain::{check_text, SalesWindow, ShowId};
use crate::error::{Error, Result};
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;

/// What to change of a show: each `None` leaves that field as it is. For the window
/// ends and the limit, `Some(None)` clears them (an open end; no limit).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShowChanges {
    /// A new title: 1 to 200 characters, not blank, no control characters.
    pub title: Option<String>,
    /// When the show starts.
    pub starts_at: Option<DateTime<Utc>>,
    /// When sales open; `Some(None)`: at once.
    pub sales_start: Option<Option<DateTime<Utc>>>,
    /// When sales close; `Some(None)`: never.
    pub sales_end: Option<Option<DateTime<Utc>>>,
    /// The limit of seats per user (1 to 100,000); `Some(None)`: none. A lower limit
    /// takes nothing back from anyone: it limits what each buyer takes next.
    pub max_seats_per_user: Option<Option<u32>>,
    /// New queue settings; `Some(None)`: no queue (its entries are dropped). A queue
    /// needs a sales_start; one kept keeps its entries and admissions.
    pub queue: Option<Option<crate::domain::QueueSettings>>,
}

/// Changes the show `id` as `changes` says and returns it as it is then; nothing
/// changed asked for: it is returned as it is. Runs in its own transaction, or as a
/// savepoint inside the caller's.
///
/// The show row is locked first (as a cancellation locks it), so a change and a
/// cancellation are one after the other, and a cancelled show is never changed.
/// Errors: [`Error::ShowNotFound`], [`Error::ShowCancelled`], [`Error::Invalid`]
/// (field `title`, `max_seats_per_user`, or `sales_end` when the window would not end
/// after it starts; `sales_start` when only the start was given).
///
/// What a new window or limit means to holds in flight: a hold decides by what its own
/// statement or transaction reads, so one that read the show before this committed is
/// decided by the old values, as if it had come just before (only a cancellation is
/// closed against every such race: see [`super::cancel`]).
pub async fn update<C>(client: &mut C, id: ShowId, changes: &ShowChanges) -> Result<Show>
where
    C: GenericClient + Send,
{
    if let Some(t) = &changes.title {
        check_text("title", t)?;
    }
    if let Some(Some(m)) = changes.max_seats_per_user {
        if !(1..=100_000).contains(&m) {
            return Err(Error::invalid("max_seats_per_user", "must be 1 to 100000"));
        }
    }
    let tx = client.transaction().await?;
    let row = tx
        .cq_opt(
            "SELECT cancelled_at IS NOT NULL AS cancelled, sales_start, sales_end,
                    queue_max_seats IS NOT NULL AS queued
               FROM shows WHERE id = $1 FOR NO KEY UPDATE",
            &[&id.get()],
        )
        .await?
        .ok_or(Error::ShowNotFound)?;
    if row.get::<_, bool>("cancelled") {
        return Err(Error::ShowCancelled);
    }
    let start = changes
        .sales_start
        .unwrap_or_else(|| row.get("sales_start"));
    let end = changes.sales_end.unwrap_or_else(|| row.get("sales_end"));
    if let Err(e) = SalesWindow::new(start, end) {
        // Name what the caller sent: the end, unless only the start was.
        return Err(match (changes.sales_start, changes.sales_end) {
            (Some(_), None) => Error::invalid("sales_start", "must be before sales_end"),
            _ => e,
        });
    }
    let queued = match changes.queue {
        Some(q) => q.is_some(),
        None => row.get("queued"),
    };
    if queued && start.is_none() {
        // Name what the caller sent: the queue, unless only the start was.
        let field = match changes.queue {
            Some(_) => "queue",
            None => "sales_start",
        };
        return Err(Error::invalid(field, "a queue needs a sales_start"));
    }
    tx.cexec(
        "UPDATE shows SET
             title = coalesce($2, title),
             starts_at = coalesce($3, starts_at),
             sales_start = CASE WHEN $4 THEN $5 ELSE sales_start END,
             sales_end = CASE WHEN $6 THEN $7 ELSE sales_end END,
             max_seats_per_user = CASE WHEN $8 THEN $9 ELSE max_seats_per_user END
          WHERE id = $1",
        &[
            &id.get(),
            &changes.title,
            &changes.starts_at,
            &changes.sales_start.is_some(),
            &start,
            &changes.sales_end.is_some(),
            &end,
            &changes.max_seats_per_user.is_some(),
            &changes.max_seats_per_user.flatten().map(|m| m as i32),
        ],
    )
    .await?;
    if let Some(q) = changes.queue {
        crate::queue::set(&tx, id.get(), q).await?;
    }
    let show = get_show(&tx, id).await?;
    tx.commit().await?;
    Ok(show)
}
