//! The sweeper's hint ([`crate::sweeper`]): the earliest deadline of a hold made
//! through this engine. Defined here, with the engine, so that the engine depends on
//! no operation module.

use std::sync::atomic::{AtomicI64, Ordering};
use tokio::sync::watch;

/// The earliest deadline of a hold made through an [`Engine`] that its sweepers may not
/// have read from the database yet (epoch ms, database clock), and the signal that it
/// moved. Part of the engine's state.
///
/// A new hold wakes the sweeper of its own process through memory rather than NOTIFY:
/// NOTIFY takes a cluster-wide lock at commit, which serialised every hold behind the
/// previous one's WAL flush (measured: ~450 holds/s). Any sweeper can expire any hold,
/// so the local one suffices; other processes still find it by their own deadlines.
pub(crate) struct Hint {
    at: AtomicI64,
    moved: watch::Sender<()>,
}

impl Default for Hint {
    fn default() -> Self {
        Hint {
            at: AtomicI64::new(i64::MAX),
            moved: watch::channel(()).0,
        }
    }
}

impl Hint {
    /// A hold expiring at `expires_at` exists: the sweepers sleep no longer than until
    /// then.
    pub(crate) fn hold_created(&self, expires_at: chrono::DateTime<chrono::Utc>) {
        let at = expires_at.timestamp_millis();
        if self.at.fetch_min(at, Ordering::SeqCst) > at {
            self.moved.send_replace(());
        }
    }
}

impl Hint {
    /// The earliest deadline (epoch ms; `i64::MAX`: none), which the sweeper clears
    /// once it has passed.
    pub(crate) fn at(&self) -> &AtomicI64 {
        &self.at
    }

    /// Changes when a sooner deadline was recorded.
    pub(crate) fn moved(&self) -> watch::Receiver<()> {
        self.moved.subscribe()
    }
}
