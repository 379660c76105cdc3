//! The batcher's memory of seats found taken: a herd on the same seats is refused from
//! it once one of its requests was refused by a snapshot, instead of one database
//! round per batch of latecomers.
//!
//! A refusal from the snapshot read of a request without places (its seats held,
//! booked or blocked in that snapshot: [`super::super::checks::refuse_taken`]) is noted
//! with when its statement or transaction began, under the request's show and set of
//! seats. A later request for exactly that set, without places, versions or a key,
//! queued before that moment, gets the same refusal: the snapshot was read while it
//! waited, and before the seats the request would be refused only for what is the
//! same for every request of the set at that snapshot (the show not selling, seats
//! unknown), which that snapshot passed. So the refusal is one the database gave at a
//! moment the request was waiting for its answer, as [`super::places`] reasons for
//! areas sold out. Refusals under a lock are not noted: a seat written by a younger
//! transaction is refused there although it may be free (DESIGN.md "Holds"). Requests
//! queued later go to the database, as do keyed ones (their refusal must be stored
//! under their key).
//!
//! On plain PostgreSQL the server's seat cache refuses such a herd first; on Citus the
//! change feed reaches the cache later, and every request decided alone costs the
//! two-step hold's first statements on the show's node: there a herd of 10,000 on one
//! seat waited past the batcher's two seconds without this memory.

use super::Job;
use crate::domain::{SeatLabel, ShowId};
use crate::error::Error;
use crate::holds::HoldRequest;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Most sets of seats remembered: beyond it, those noted longer ago than [`FORGET`]
/// are dropped (and all of them if that is not enough). Forgetting is always safe: a
/// forgotten set only sends its requests to the database.
const MAX_SETS: usize = 4096;
/// Past this a noting is of no use: a request queued before it has waited longer than
/// any queue wait the batcher allows.
const FORGET: Duration = Duration::from_secs(10);

/// What the batcher has seen taken (see the module documentation).
#[derive(Default)]
pub(super) struct Taken {
    sets: HashMap<(ShowId, Vec<SeatLabel>), Seen>,
}

/// One set's latest refusal: when the read that refused it began, and the seats it
/// named.
struct Seen {
    began: Instant,
    taken: Vec<SeatLabel>,
}

impl Taken {
    /// Notes `refusal` of `req`, given by a snapshot read that began after `began`.
    /// Only a refusal of taken seats, of a request without places, is kept.
    pub(super) fn note(&mut self, req: &HoldRequest, refusal: &Error, began: Instant) {
        let Error::SeatsUnavailable { seats, areas } = refusal else {
            return;
        };
        if !req.areas.is_empty() || !areas.is_empty() || seats.is_empty() {
            return;
        }
        if self.sets.len() >= MAX_SETS {
            self.sets.retain(|_, s| s.began.elapsed() < FORGET);
            if self.sets.len() >= MAX_SETS {
                self.sets.clear();
            }
        }
        let seen = self.sets.entry((req.show, set_of(req))).or_insert(Seen {
            began,
            taken: seats.clone(),
        });
        if began >= seen.began {
            seen.began = began;
            seen.taken.clone_from(seats);
        }
    }

    /// The refusal `job` gets from memory, if any: the seats of its set last seen
    /// taken, in the order it named them.
    pub(super) fn refusal(&self, job: &Job) -> Option<Error> {
        if self.sets.is_empty()
            || job.keyed().is_some()
            || !job.req.areas.is_empty()
            || !job.req.if_versions.is_empty()
        {
            return None;
        }
        let seen = self.sets.get(&(job.req.show, set_of(&job.req)))?;
        if job.queued >= seen.began {
            return None;
        }
        let seats = job
            .req
            .seats
            .labels()
            .iter()
            .filter(|l| seen.taken.contains(l))
            .cloned()
            .collect();
        Some(Error::SeatsUnavailable {
            seats,
            areas: Vec::new(),
        })
    }
}

/// A request's seats as a set: sorted.
fn set_of(req: &HoldRequest) -> Vec<SeatLabel> {
    let mut labels = req.seats.labels().to_vec();
    labels.sort_unstable();
    labels
}
