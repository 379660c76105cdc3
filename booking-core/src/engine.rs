//! The engine handle: the settings and the in-memory state that the operations of one
//! process share, created once and passed to every operation explicitly.
//!
//! PostgreSQL is the only source of truth; what an [`Engine`] keeps in memory only
//! spares work and latency, and is lost harmlessly with the process:
//! - the *local-change signal*: bumped after an operation of this engine committed a
//!   seat change, so that the feed pump of this process reads at once and its notifier
//!   wakes the other processes (see [`crate::feed`]);
//! - the *sweeper's hint*: the earliest deadline of a hold made here that the sweeper
//!   may not have read yet (see [`crate::sweeper`]);
//! - best available's layouts and claims (see [`crate::best`]);
//! - the *background tasks* it started (the feed's pump, notifier and LISTEN
//!   connection, the hold batches; the server adds its sweeper), so that a shutdown can
//!   wait for every one of them: [`Engine::wait_for_tasks`].
//!
//! Two engines never see each other's signals, so tests (or an embedder serving
//! several databases) create one engine per database. Cloning is cheap: clones share
//! one state, as mini-redis's `Db { shared: Arc<Shared> }` does.

pub(crate) mod best_memory;
pub(crate) mod sweeper_hint;

use crate::database::Settings;
use chrono::{DateTime, Utc};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

/// The engine's shared state; see the module docs. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    shared: Arc<Shared>,
}

struct Shared {
    settings: Settings,
    /// How many times operations of this engine committed seat changes.
    changes: watch::Sender<u64>,
    sweeper: sweeper_hint::Hint,
    best: best_memory::Memory,
    tasks: TaskTracker,
}

impl Engine {
    /// An engine with `settings` and nothing remembered yet.
    pub fn new(settings: Settings) -> Engine {
        Engine {
            shared: Arc::new(Shared {
                settings,
                changes: watch::channel(0).0,
                sweeper: sweeper_hint::Hint::default(),
                best: best_memory::Memory::default(),
                tasks: TaskTracker::new(),
            }),
        }
    }

    /// The limits and time bounds every operation of this engine keeps.
    pub fn settings(&self) -> &Settings {
        &self.shared.settings
    }

    /// Changes when an operation of this engine has committed a seat change (the
    /// value counts them). The feed pump and the notifier of [`crate::Feed`] follow it.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.shared.changes.subscribe()
    }

    /// Called by every operation right after it committed seat changes (`hold_until`:
    /// the deadline of a hold it created, if any): the one place where the feed of
    /// this process and its sweeper hear of a write.
    pub(crate) fn committed(&self, hold_until: Option<DateTime<Utc>>) {
        self.shared.changes.send_modify(|n| *n = n.wrapping_add(1));
        if let Some(at) = hold_until {
            self.shared.sweeper.hold_created(at);
        }
    }

    /// Runs `task` in the background as one of this engine's tasks (see
    /// [`Engine::wait_for_tasks`]). Every task must end when a cancellation token the
    /// caller controls fires.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.shared.tasks.spawn(task);
    }

    /// The background tasks of this engine that are still running.
    pub fn tasks_running(&self) -> usize {
        self.shared.tasks.len()
    }

    /// Waits, at most `within`, until every background task of this engine has ended
    /// (after the tokens that stop them fired); `false` when some had not. Tasks may
    /// still be spawned afterwards, and are waited for by the next call.
    pub async fn wait_for_tasks(&self, within: Duration) -> bool {
        let tasks = &self.shared.tasks;
        tasks.close();
        let done = tokio::time::timeout(within, tasks.wait()).await.is_ok();
        tasks.reopen();
        done
    }

    pub(crate) fn sweeper_hint(&self) -> &sweeper_hint::Hint {
        &self.shared.sweeper
    }

    pub(crate) fn best_memory(&self) -> &best_memory::Memory {
        &self.shared.best
    }
}

impl Default for Engine {
    /// An engine with [`Settings::default`].
    fn default() -> Self {
        Engine::new(Settings::default())
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("settings", &self.shared.settings)
            .finish_non_exhaustive()
    }
}
