//! What best available ([`crate::best`]) remembers in an [`super::Engine`]: each show's
//! layout once read, and the seats its callers in flight have claimed. Defined here,
//! with the engine, so that the engine depends on no operation module.

use crate::domain::TicketType;
use crate::rank::Place;
use parking_lot::{Mutex, MutexGuard};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// A show's seats as they never change after its creation: ids, places (row,
/// number, aisle), categories, sections and features, in seat-map order; and the
/// show's ticket types.
pub(crate) struct Layout {
    pub(crate) ids: Vec<i64>,
    pub(crate) places: Vec<Place>,
    pub(crate) categories: Vec<String>,
    pub(crate) sections: Vec<Option<String>>,
    pub(crate) features: Vec<Vec<String>>,
    pub(crate) index_of: HashMap<i64, usize>,
    pub(crate) ticket_types: Vec<TicketType>,
}

/// What best available remembers per [`Engine`]: the layouts read so far, and the
/// claims of the callers in flight. At most [`LAYOUTS_KEPT`] layouts are kept; past
/// that the cache is emptied and refilled on demand (one extra read per show).
#[derive(Default)]
pub(crate) struct Memory {
    layouts: Mutex<HashMap<i64, Arc<Layout>>>,
    callers: Mutex<HashMap<i64, Callers>>,
}

pub(crate) const LAYOUTS_KEPT: usize = 256;

impl Memory {
    pub(crate) fn layouts(&self) -> MutexGuard<'_, HashMap<i64, Arc<Layout>>> {
        self.layouts.lock()
    }

    pub(crate) fn callers(&self) -> MutexGuard<'_, HashMap<i64, Callers>> {
        self.callers.lock()
    }
}

/// The seats that this engine's best-available callers are trying to lock, or have
/// taken (until their request ends), per show. They only spare round trips: a caller
/// ranks the house without the seats others here are taking, and passes over a group
/// another caller claimed first, instead of meeting it in `SKIP LOCKED`. Correctness
/// never depends on them; callers of other processes are kept apart by `SKIP LOCKED`
/// alone.
#[derive(Default)]
pub(crate) struct Callers {
    pub(crate) callers: usize,
    pub(crate) claimed: HashSet<i64>,
}
