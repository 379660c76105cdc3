//! Whether a show sells, as far as refusals from memory need to know.
//!
//! The database decides a show's window and cancellation (`409 not_on_sale`, `409
//! show_cancelled`) before anything about its seats, so a refusal from memory (`409
//! seats_unavailable`) is right only for a show that sells. Its window can change
//! without a seat event (`PATCH /shows/{id}`, through any process): what is known is
//! read with each map, read again in the background when a refusal finds it older than
//! [`MAX_AGE`] (so a change through another process reaches this one's refusals from
//! memory a second after it, plus one request), and forgotten at once after a change
//! through this process. A refusal from memory is given only while the show is known
//! to sell with [`REFUSAL_MARGIN`] to spare at both ends (the database's clock decides
//! near them); anything else goes to the database.

use super::REFUSAL_MARGIN;
use booking_core::ShowId;
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long what was read of a show's window is trusted: a change through another
/// process reaches this one's refusals from memory within it.
pub const MAX_AGE: Duration = Duration::from_secs(1);

/// Shows whose sale is remembered at most (as many as maps are kept).
const MAX_SHOWS: usize = 10_000;

/// A show's window as read, or that it was cancelled.
#[derive(Debug, Clone, Copy)]
pub(super) enum Sale {
    /// Sells from `.0` (`None`: from creation) to `.1` (`None`: no end).
    Window(Option<DateTime<Utc>>, Option<DateTime<Utc>>),
    Cancelled,
}

#[derive(Default)]
pub(super) struct Sales {
    known: Mutex<HashMap<ShowId, (Sale, Instant)>>,
    reading: Mutex<std::collections::HashSet<ShowId>>,
}

impl Sales {
    /// `None` when `show`'s sale is unknown; else whether it sells now with the margin to
    /// spare, and whether what is known is older than [`MAX_AGE`] (read it again).
    pub(super) fn sells(&self, show: ShowId) -> Option<(bool, bool)> {
        let known = self.known.lock();
        let (sale, read) = known.get(&show)?;
        let now = Utc::now();
        let sells = match sale {
            Sale::Cancelled => false,
            Sale::Window(start, end) => {
                start.is_none_or(|s| s + REFUSAL_MARGIN <= now)
                    && end.is_none_or(|e| now + REFUSAL_MARGIN < e)
            }
        };
        Some((sells, read.elapsed() > MAX_AGE))
    }

    /// Whether a read is due (unknown or stale, and none in flight); marks it begun.
    pub(super) fn begin_read(&self, show: ShowId) -> bool {
        let fresh = self
            .known
            .lock()
            .get(&show)
            .is_some_and(|(_, read)| read.elapsed() <= MAX_AGE);
        !fresh && self.reading.lock().insert(show)
    }

    /// What a read found (`None`: the show does not exist).
    pub(super) fn read(&self, show: ShowId, sale: Option<Sale>, began: Instant) {
        self.reading.lock().remove(&show);
        let mut known = self.known.lock();
        match sale {
            Some(sale) if known.len() < MAX_SHOWS || known.contains_key(&show) => {
                known.insert(show, (sale, began));
            }
            _ => {
                known.remove(&show);
            }
        }
    }

    /// Forgets `show`'s window: it changed through this process.
    pub(super) fn forget(&self, show: ShowId) {
        self.known.lock().remove(&show);
    }
}

/// Reads `show`'s window from the database, on a pooled connection.
pub(super) async fn read_sale(
    pool: &booking_core::deadpool_postgres::Pool,
    show: ShowId,
) -> Result<Option<Sale>, booking_core::Error> {
    let client = booking_core::database::client(pool).await?;
    read_sale_on(&client, show).await
}

/// Reads `show`'s window from the database, on `client`.
pub(super) async fn read_sale_on(
    client: &booking_core::deadpool_postgres::Client,
    show: ShowId,
) -> Result<Option<Sale>, booking_core::Error> {
    let row = client
        .query_opt(
            "SELECT sales_start, sales_end, cancelled_at IS NOT NULL AS cancelled
               FROM shows WHERE id = $1",
            &[&show.get()],
        )
        .await?;
    Ok(row.map(|r| match r.get::<_, bool>("cancelled") {
        true => Sale::Cancelled,
        false => Sale::Window(r.get("sales_start"), r.get("sales_end")),
    }))
}
