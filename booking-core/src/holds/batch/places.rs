//! The batcher's memory of standing areas found sold out (their statement,
//! `place_batch.rs`, runs from `statement.rs`).

use super::{Counters, Job, Outcome};
use crate::domain::AreaCode;
use crate::error::Error;
use crate::holds::place_batch;
use std::sync::atomic::Ordering;

/// Refuses, without the database, the holds of places queued before a statement found
/// one of their areas sold out: that statement's snapshot, taken between the request's
/// arrival and its answer, had no place of the area left to take, so the refusal is
/// one the database gave at a moment the request was waiting for its answer. A herd on
/// a standing floor then drains at once after the sell-out instead of one statement
/// for each batch of latecomers. Requests queued later go to the database, and so do
/// keyed ones: their refusal must be stored under their key, in the database.
pub(super) fn refuse_sold_out(batch: Vec<Job>, counters: &Counters) -> Vec<Job> {
    let sold_out = counters.sold_out.lock();
    if sold_out.is_empty() {
        return batch;
    }
    let mut rest = Vec::with_capacity(batch.len());
    for job in batch {
        if job.keyed().is_some() {
            rest.push(job);
            continue;
        }
        let short: Vec<AreaCode> = job
            .req
            .areas
            .iter()
            .filter(|w| {
                sold_out
                    .get(&(job.req.show, w.area.clone()))
                    .is_some_and(|&at| job.queued < at)
            })
            .map(|w| w.area.clone())
            .collect();
        if short.is_empty() {
            rest.push(job);
        } else {
            counters.refused_from_memory.fetch_add(1, Ordering::Relaxed);
            job.answer(Err(Error::SeatsUnavailable {
                seats: Vec::new(),
                areas: short,
            }));
        }
    }
    rest
}

impl From<place_batch::Outcome> for Outcome {
    fn from(o: place_batch::Outcome) -> Outcome {
        match o {
            place_batch::Outcome::Done(hold) => Outcome::Done(hold),
            place_batch::Outcome::Refused(e) => Outcome::Refused(e),
            place_batch::Outcome::Undecided => Outcome::Undecided,
        }
    }
}
