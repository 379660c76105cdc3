//! `GET /shows`, answered from memory for up to [`LIST_MAX_AGE`].
//!
//! Only the plain first page (`GET /shows` without a query, what the web page and most
//! clients ask for) is reused. The list no longer counts seats (a page is one range of
//! the index `shows_by_start`, see `booking_core::queries::shows`), so a read is cheap;
//! the reuse keeps a crowd of page loads from becoming as many database reads. One
//! request at a time reads it, and the answer is reused for up to [`LIST_MAX_AGE`]: a
//! show may trail by that much; one created or changed through this process is listed
//! at once ([`ListCache::forget`]).

use crate::http::{ApiError, Reply};
use std::future::Future;
use std::time::{Duration, Instant};

/// How long a `GET /shows` answer is reused.
pub const LIST_MAX_AGE: Duration = Duration::from_secs(1);

/// The last `GET /shows` answer and when its read began.
#[derive(Default)]
pub struct ListCache {
    // A blocking mutex: held to copy or store one answer, never across an await.
    last: parking_lot::Mutex<ListEntry>,
    /// One database read at a time; the others wait for it and take its answer.
    building: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct ListEntry {
    /// Bumped by [`ListCache::forget`]: a read begun before it is not stored.
    generation: u64,
    reply: Option<(Instant, Reply)>,
}

impl ListCache {
    /// The stored answer while it is fresh, else the answer of `read` (one read at a
    /// time: the others wait for it and take its answer), stored.
    pub async fn get_or_read<F, Fut>(&self, read: F) -> Result<Reply, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Reply, ApiError>>,
    {
        if let Some(reply) = self.fresh() {
            return Ok(reply);
        }
        let _turn = self.building.lock().await;
        // Whoever held the lock before us may have just read it.
        if let Some(reply) = self.fresh() {
            return Ok(reply);
        }
        let generation = self.last.lock().generation;
        let read_at = Instant::now();
        let reply = read().await?;
        let mut last = self.last.lock();
        if last.generation == generation {
            last.reply = Some((read_at, reply.clone()));
        }
        Ok(reply)
    }

    fn fresh(&self) -> Option<Reply> {
        let last = self.last.lock();
        match &last.reply {
            Some((at, reply)) if at.elapsed() < LIST_MAX_AGE => Some(reply.clone()),
            _ => None,
        }
    }

    /// Drops the stored answer (a show was created here).
    pub fn forget(&self) {
        let mut last = self.last.lock();
        last.generation += 1;
        last.reply = None;
    }
}
