//! Seat maps served from memory, kept honest by the change feed.
//!
//! A show's map is built from the database once, then served from memory until the
//! feed brings an event of that show, or until its earliest hold lapses (that changes
//! the map without any write). So a map trails the database by at most the feed's lag;
//! and a hold made through this process drops the map at once, so its client reads its
//! own write in the next map it asks for.
//!
//! Race-free by generation: an entry is stored only if no event of its show arrived
//! between the start of its database read and the store.

use crate::http::Reply;
use booking_core::{Feed, ShowId};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A finished seat-map answer and its ETag.
#[derive(Clone)]
pub struct Entry {
    pub reply: Reply,
    pub etag: String,
    lapses_at: Option<DateTime<Utc>>,
}

impl Entry {
    /// An answer that is not cached.
    pub fn new(reply: Reply, etag: String) -> Entry {
        Entry {
            reply,
            etag,
            lapses_at: None,
        }
    }
}

#[derive(Default)]
struct Show {
    /// Held while one request reads the map from the database: the others wait for it
    /// and take its result instead of all reading the same map at once.
    building: Arc<tokio::sync::Mutex<()>>,
    /// Bumped by every event of the show.
    generation: u64,
    /// Whether a task follows the show's events for us.
    followed: bool,
    entry: Option<Entry>,
}

#[derive(Default)]
pub struct SeatCache {
    // A std Mutex: held for a lookup or an insert, never across an await.
    shows: Mutex<HashMap<ShowId, Show>>,
}

/// Shows whose maps are kept at most; past it, nothing new is cached.
const MAX_SHOWS: usize = 10_000;

impl SeatCache {
    /// The cached map of `show`, if it is still exact.
    pub fn get(&self, show: ShowId) -> Option<Entry> {
        let shows = self.shows.lock().unwrap_or_else(|p| p.into_inner());
        let entry = shows.get(&show)?.entry.clone()?;
        match entry.lapses_at {
            Some(t) if t <= Utc::now() => None,
            _ => Some(entry),
        }
    }

    /// The lock to hold while reading `show`'s map from the database.
    pub fn build_lock(&self, show: ShowId) -> Arc<tokio::sync::Mutex<()>> {
        let mut shows = self.shows.lock().unwrap_or_else(|p| p.into_inner());
        shows.entry(show).or_default().building.clone()
    }

    /// Starts following `show` (once) and returns the generation to pass to [`Self::put`].
    pub fn begin(self: &Arc<Self>, show: ShowId, feed: &Feed) -> u64 {
        let mut shows = self.shows.lock().unwrap_or_else(|p| p.into_inner());
        if shows.len() >= MAX_SHOWS && !shows.contains_key(&show) {
            return u64::MAX;
        }
        let s = shows.entry(show).or_default();
        if !s.followed {
            s.followed = true;
            s.generation += 1;
            let feed = feed.clone();
            let cache = Arc::clone(self);
            tokio::spawn(async move {
                let Ok(mut sub) = feed.subscribe(show, None).await else {
                    cache.unfollow(show);
                    return;
                };
                while sub.next().await.is_some() {
                    cache.invalidate(show);
                }
                // Cut off or stopped: forget the map rather than serve it unwatched.
                cache.unfollow(show);
            });
        }
        s.generation
    }

    /// Stores a map read from the database, unless an event came in meanwhile.
    pub fn put(
        &self,
        show: ShowId,
        generation: u64,
        reply: Reply,
        etag: String,
        lapses_at: Option<DateTime<Utc>>,
    ) {
        let mut shows = self.shows.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = shows.get_mut(&show) {
            if s.followed && s.generation == generation {
                s.entry = Some(Entry {
                    reply,
                    etag,
                    lapses_at,
                });
            }
        }
    }

    /// Drops the show's map (an event arrived, or this process changed its seats).
    pub fn invalidate(&self, show: ShowId) {
        let mut shows = self.shows.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = shows.get_mut(&show) {
            s.generation += 1;
            s.entry = None;
        }
    }

    fn unfollow(&self, show: ShowId) {
        let mut shows = self.shows.lock().unwrap_or_else(|p| p.into_inner());
        shows.remove(&show);
    }
}
