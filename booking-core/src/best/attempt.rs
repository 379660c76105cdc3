//! One attempt at a group: lock its seats with `SKIP LOCKED` under a savepoint and
//! re-read them; and the claims that keep this engine's callers off each other's groups.

use crate::database::Cached;
use crate::domain::SeatLabel;
use crate::engine::best_memory::Memory;
use crate::error::{Error, Result};
use crate::holds::WRITTEN_BEFORE_US;
use crate::seats::HELD;
use deadpool_postgres::GenericClient;
use futures_util::TryFutureExt;
use std::collections::BTreeSet;
use uuid::Uuid;

pub(super) const SAVEPOINT: &str = "SAVEPOINT best_attempt";
const UNDO: &str = "ROLLBACK TO SAVEPOINT best_attempt";

pub(super) struct LockedSeat {
    pub(super) id: i64,
    pub(super) label: SeatLabel,
    pub(super) xmin: String,
}

pub(super) enum Attempt {
    /// Every seat locked and free: ours to write, in id order.
    Won(Vec<LockedSeat>),
    /// These seats were skipped (locked by another) or are taken (`taken`: some seat
    /// was locked but held, booked or written since our read).
    Lost { bad: Vec<i64>, taken: bool },
}

/// Locks the seats `ids` (ascending) with `SKIP LOCKED` and re-reads what they point at.
pub(super) async fn try_lock<C: GenericClient>(
    tx: &C,
    show: i64,
    ids: &[i64],
    dirty: bool,
) -> Result<Attempt> {
    let sql = format!(
        "SELECT id, label, hold_id, booking_id IS NOT NULL OR block_id IS NOT NULL AS booked,
                xmin::text AS xmin, {WRITTEN_BEFORE_US} AS written_before_us
           FROM seats WHERE show_id = $1 AND id = ANY($2)
          ORDER BY id FOR UPDATE SKIP LOCKED"
    );
    let (_, rows) = futures_util::future::try_join(
        undo(tx, dirty),
        tx.cq(&sql, &[&show, &ids]).map_err(Error::from),
    )
    .await?;
    if rows.len() < ids.len() {
        let got: BTreeSet<i64> = rows.iter().map(|r| r.get("id")).collect();
        return Ok(Attempt::Lost {
            bad: ids.iter().copied().filter(|id| !got.contains(id)).collect(),
            taken: false,
        });
    }
    let mut bad: Vec<i64> = rows
        .iter()
        .filter(|r| r.get::<_, bool>("booked") || !r.get::<_, bool>("written_before_us"))
        .map(|r| r.get("id"))
        .collect();
    // A seat that points at a hold: is the hold live? A new statement sees every commit
    // so far, including a hold committed after our read of the house.
    let pointed: Vec<Uuid> = rows
        .iter()
        .filter_map(|r| r.get::<_, Option<Uuid>>("hold_id"))
        .collect();
    if !pointed.is_empty() {
        let live: BTreeSet<Uuid> = tx
            .cq(
                &format!(
                    "SELECT h.id FROM holds h WHERE h.show_id = $1 AND h.id = ANY($2) AND {HELD}"
                ),
                &[&show, &pointed],
            )
            .await?
            .iter()
            .map(|r| r.get("id"))
            .collect();
        bad.extend(
            rows.iter()
                .filter(|r| {
                    r.get::<_, Option<Uuid>>("hold_id")
                        .is_some_and(|h| live.contains(&h))
                })
                .map(|r| r.get::<_, i64>("id")),
        );
    }
    if !bad.is_empty() {
        return Ok(Attempt::Lost { bad, taken: true });
    }
    Ok(Attempt::Won(
        rows.iter()
            .map(|r| LockedSeat {
                id: r.get("id"),
                label: SeatLabel::from_db(r.get("label")),
                xmin: r.get("xmin"),
            })
            .collect(),
    ))
}

/// One caller's claims on the seats of one show in this engine; given back when the
/// request ends (dropped).
pub(super) struct Claims<'a> {
    memory: &'a Memory,
    show: i64,
    mine: Vec<i64>,
}

impl<'a> Claims<'a> {
    pub(super) fn new(memory: &'a Memory, show: i64) -> Claims<'a> {
        memory.callers().entry(show).or_default().callers += 1;
        Claims {
            memory,
            show,
            mine: Vec::new(),
        }
    }

    /// The seats other callers here have claimed.
    pub(super) fn others(&self) -> Vec<i64> {
        self.memory
            .callers()
            .get(&self.show)
            .map_or_else(Vec::new, |c| {
                c.claimed
                    .iter()
                    .copied()
                    .filter(|id| !self.mine.contains(id))
                    .collect()
            })
    }

    /// Claims `ids` for an attempt. When another caller of this process has claimed
    /// some of them, claims nothing and returns those.
    pub(super) fn claim(&mut self, ids: &[i64]) -> Vec<i64> {
        let mut all = self.memory.callers();
        let c = all.entry(self.show).or_default();
        let theirs: Vec<i64> = ids
            .iter()
            .copied()
            .filter(|id| c.claimed.contains(id))
            .collect();
        if theirs.is_empty() {
            c.claimed.extend(ids.iter().copied());
            self.mine.extend_from_slice(ids);
        }
        theirs
    }

    /// Gives back the claims of a failed attempt.
    pub(super) fn unclaim(&mut self, ids: &[i64]) {
        let mut all = self.memory.callers();
        if let Some(c) = all.get_mut(&self.show) {
            for id in ids {
                c.claimed.remove(id);
            }
        }
        self.mine.retain(|id| !ids.contains(id));
    }
}

impl Drop for Claims<'_> {
    fn drop(&mut self) {
        let mut all = self.memory.callers();
        if let Some(c) = all.get_mut(&self.show) {
            for id in &self.mine {
                c.claimed.remove(id);
            }
            c.callers -= 1;
            if c.callers == 0 {
                all.remove(&self.show);
            }
        }
    }
}

/// Rolls back to the attempt savepoint when the last attempt left locks behind.
pub(super) async fn undo<C: GenericClient>(tx: &C, dirty: bool) -> Result<()> {
    if dirty {
        tx.batch_execute(UNDO).await?;
    }
    Ok(())
}
