//! Blocks: seats taken off sale (a broken seat, the tech desk, press seats) until the
//! block is deleted.
//!
//! A blocked seat points at its block (`seats.block_id`) as a held seat points at its
//! hold, and the schema allows one pointer per seat (`seats_one_pointer`): a seat can
//! never be blocked and held, or blocked and booked. Blocking follows the hold's steps
//! (see [`crate::holds`]): refuse from a snapshot without locks, lock the seats in id
//! order, re-read them under the locks in a new statement, then write the block, the
//! seat pointers (each checked against the version read under the lock) and the
//! change-feed event in one statement. A seat that is held (unexpired), booked or
//! blocked is refused with [`Error::SeatsUnavailable`] and nothing is blocked.

use crate::database::{lock_timeout_value, Cached, SET_SHOW_LOCK_TIMEOUT};
use crate::domain::{BlockId, SeatLabel, SeatSelection, SeatState, ShowId};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::feed::{self, Cause, SeatEvent};
use crate::holds::WRITTEN_BEFORE_US;
use crate::seats::{HELD, JOIN_HOLD};
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

/// Most seats in one block.
pub const MAX_SEATS_PER_BLOCK: usize = 1_000;

/// The reason of a block made by a venue's row's `blocked` seats.
pub const VENUE_REASON: &str = "venue";

/// A block: seats off sale, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Block {
    /// The block's id.
    pub block_id: BlockId,
    /// The show of its seats.
    pub show_id: ShowId,
    /// Its seats, in seat-map order.
    pub seats: Vec<SeatLabel>,
    /// Why they are off sale, as given.
    pub reason: String,
    /// When it was made (database clock).
    pub created_at: DateTime<Utc>,
    /// The seat event this call wrote, for the caller's caches (as [`crate::Hold::event`]).
    #[serde(skip)]
    pub event: Option<Arc<SeatEvent>>,
}

/// Checks a block's reason: 1 to 200 characters, not blank, no control characters
/// ([`Error::Invalid`], field `reason`).
pub fn check_reason(reason: &str) -> Result<()> {
    crate::domain::check_text("reason", reason)
}

/// How many times [`block`] starts over when a seat changed hands while it waited.
const ATTEMPTS: usize = 3;

/// Blocks `seats` of `show` with `reason`, all or none. Errors: [`Error::ShowNotFound`],
/// [`Error::SeatNotFound`] (the unknown labels), [`Error::SeatsUnavailable`] (the seats
/// held, booked or blocked already), [`Error::Invalid`] (`reason`), [`Error::Busy`].
#[tracing::instrument(skip_all, fields(show = %show, seats = seats.len()))]
pub async fn block<C>(
    client: &mut C,
    engine: &Engine,
    show: ShowId,
    seats: &SeatSelection,
    reason: &str,
) -> Result<Block>
where
    C: GenericClient + Send,
{
    check_reason(reason)?;
    for _ in 0..ATTEMPTS {
        let tx = client.transaction().await?;
        match block_in(&tx, engine, show, seats, reason).await? {
            Some(block) => {
                tx.commit().await?;
                engine.committed(None);
                return Ok(block);
            }
            // A seat was written by a transaction younger than ours: our event would
            // sort before its event in the feed although we commit after it. Start over
            // with a new transaction (rolled back on drop).
            None => continue,
        }
    }
    Err(Error::Busy("seats kept changing hands while being blocked"))
}

async fn block_in<C: GenericClient>(
    tx: &C,
    engine: &Engine,
    show: ShowId,
    seats: &SeatSelection,
    reason: &str,
) -> Result<Option<Block>> {
    let labels: Vec<&str> = seats.labels().iter().map(SeatLabel::as_str).collect();
    tx.cexec(
        SET_SHOW_LOCK_TIMEOUT,
        &[&lock_timeout_value(engine.settings()), &show.get()],
    )
    .await?;
    // 1. The snapshot: unknown seats and taken ones are refused before any lock.
    let rows = tx
        .cq(
            &format!(
                "SELECT s.id, s.label, s.row_index, s.number,
                        s.booking_id IS NOT NULL OR s.block_id IS NOT NULL OR {HELD} IS TRUE
                            AS taken
                   FROM shows sh
                   LEFT JOIN seats s ON s.show_id = sh.id AND s.label = ANY($2)
                   {JOIN_HOLD}
                  WHERE sh.id = $1"
            ),
            &[&show.get(), &labels],
        )
        .await?;
    if rows.is_empty() {
        return Err(Error::ShowNotFound);
    }
    // A cancelled show takes no more blocks (nor anything else); its window does not
    // matter to an admin.
    crate::shows::check_live(tx, show).await?;
    let mut by_id: HashMap<i64, (SeatLabel, (i32, i32))> = HashMap::new();
    let mut taken = Vec::new();
    for r in rows
        .iter()
        .filter(|r| r.get::<_, Option<i64>>("id").is_some())
    {
        let label = SeatLabel::from_db(r.get("label"));
        if r.get::<_, bool>("taken") {
            taken.push(label.clone());
        }
        by_id.insert(r.get("id"), (label, (r.get("row_index"), r.get("number"))));
    }
    let missing: Vec<SeatLabel> = seats
        .labels()
        .iter()
        .filter(|l| !by_id.values().any(|(have, _)| have == *l))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(Error::SeatNotFound { seats: missing });
    }
    refuse(seats, &taken)?;

    // 2. Lock in id order; 3. re-read under the locks (a new statement sees every
    // commit so far, including the hold of a transaction we waited for).
    let mut ids: Vec<i64> = by_id.keys().copied().collect();
    ids.sort_unstable();
    tx.cq(
        "SELECT id FROM seats WHERE show_id = $1 AND id = ANY($2) ORDER BY id FOR UPDATE",
        &[&show.get(), &ids],
    )
    .await?;
    let locked = tx
        .cq(
            &format!(
                "SELECT s.id, s.xmin::text AS xmin, {WRITTEN_BEFORE_US} AS written_before_us,
                        s.booking_id IS NOT NULL OR s.block_id IS NOT NULL
                        OR EXISTS (SELECT 1 FROM holds h
                                    WHERE h.show_id = $1 AND h.id = s.hold_id
                                      AND {HELD}) AS taken
                   FROM seats s
                  WHERE s.show_id = $1 AND s.id = ANY($2)"
            ),
            &[&show.get(), &ids],
        )
        .await?;
    if locked.len() != ids.len() {
        return Err(Error::Invariant(format!(
            "locked {} of {} seats",
            locked.len(),
            ids.len()
        )));
    }
    let taken: Vec<SeatLabel> = locked
        .iter()
        .filter(|r| r.get::<_, bool>("taken"))
        .map(|r| by_id[&r.get::<_, i64>("id")].0.clone())
        .collect();
    refuse(seats, &taken)?;
    if locked
        .iter()
        .any(|r| !r.get::<_, bool>("written_before_us"))
    {
        return Ok(None);
    }
    let xmins: HashMap<i64, String> = locked
        .iter()
        .map(|r| (r.get("id"), r.get("xmin")))
        .collect();
    let seen: Vec<&str> = ids.iter().map(|id| xmins[id].as_str()).collect();

    // 4. Write the block, the pointers and the event in one statement.
    let row = tx
        .cq_one(
            &format!(
                "WITH b AS (
                     INSERT INTO blocks (show_id, reason) VALUES ($1, $2)
                     RETURNING id, created_at
                 ), t AS (
                     UPDATE seats s SET block_id = (SELECT id FROM b), hold_id = NULL
                       FROM unnest($3::bigint[], $4::text[]) AS w(id, xmin)
                      WHERE s.show_id = $1 AND s.id = w.id AND s.xmin::text = w.xmin
                     RETURNING s.id, s.label, s.xmin, s.area
                 ), {events}
                 SELECT b.id, b.created_at, (SELECT count(*) FROM t) AS written, {columns}
                   FROM b",
                events = block_events(),
                columns = feed::EVENT_COLUMNS,
            ),
            &[&show.get(), &reason, &ids, &seen],
        )
        .await?;
    let written: i64 = row.get("written");
    if written != ids.len() as i64 {
        return Err(Error::Invariant(format!(
            "blocked {written} of {} locked seats",
            ids.len()
        )));
    }
    let mut in_order: Vec<&(SeatLabel, (i32, i32))> = by_id.values().collect();
    in_order.sort_by_key(|(_, order)| *order);
    Ok(Some(Block {
        block_id: BlockId::from_db(row.get("id")),
        show_id: show,
        seats: in_order.into_iter().map(|(l, _)| l.clone()).collect(),
        reason: reason.to_owned(),
        created_at: row.get("created_at"),
        event: feed::written_event(&row, show, Cause::Block)?,
    }))
}

/// SQL: the `block` event of the seats the CTE `t` just blocked (show `$1`).
fn block_events() -> String {
    feed::EventsSql {
        show: "$1",
        cause: Cause::Block,
        state: SeatState::Blocked,
        until: None,
        was: None,
        from: "t",
        per: None,
    }
    .cte()
}

fn refuse(seats: &SeatSelection, taken: &[SeatLabel]) -> Result<()> {
    if taken.is_empty() {
        return Ok(());
    }
    // In the order they were asked for.
    let seats = seats
        .labels()
        .iter()
        .filter(|l| taken.contains(l))
        .cloned()
        .collect();
    Err(Error::SeatsUnavailable {
        seats,
        areas: Vec::new(),
    })
}

/// Blocks the seats `labels` of a show being created (in its transaction), with
/// [`VENUE_REASON`]; returns how many. Nobody else can see the seats yet.
pub(crate) async fn block_at_creation<C: GenericClient>(
    tx: &C,
    show: ShowId,
    labels: &[String],
) -> Result<usize> {
    if labels.is_empty() {
        return Ok(0);
    }
    let row = tx
        .cq_one(
            &format!(
                "WITH b AS (
                     INSERT INTO blocks (show_id, reason) VALUES ($1, $2) RETURNING id
                 ), t AS (
                     UPDATE seats s SET block_id = (SELECT id FROM b)
                      WHERE s.show_id = $1 AND s.label = ANY($3)
                     RETURNING s.id, s.label, s.xmin, s.area
                 ), {events}
                 SELECT (SELECT count(*) FROM t) AS written, {columns}",
                events = block_events(),
                columns = feed::EVENT_COLUMNS,
            ),
            &[&show.get(), &VENUE_REASON, &labels],
        )
        .await?;
    let written: i64 = row.get("written");
    if written != labels.len() as i64 {
        return Err(Error::Invariant(format!(
            "blocked {written} of {} seats of a new show",
            labels.len()
        )));
    }
    Ok(labels.len())
}

/// Deletes the block `id` of `show`: its seats read available again (one `unblock`
/// event). [`Error::BlockNotFound`] when the show has no such block (a repeat included),
/// [`Error::ShowNotFound`] when there is no such show. Returns the event written.
#[tracing::instrument(skip_all, fields(show = %show, block = %id))]
pub async fn unblock<C>(
    client: &mut C,
    engine: &Engine,
    show: ShowId,
    id: BlockId,
) -> Result<Option<Arc<SeatEvent>>>
where
    C: GenericClient + Send,
{
    let tx = client.transaction().await?;
    tx.cexec(
        SET_SHOW_LOCK_TIMEOUT,
        &[&lock_timeout_value(engine.settings()), &show.get()],
    )
    .await?;
    // The block row first: two deletes of one block queue here, and the second finds
    // it gone.
    let found = tx
        .cq_one(
            "SELECT EXISTS (SELECT 1 FROM shows WHERE id = $1) AS show,
                    (SELECT id FROM blocks WHERE show_id = $1 AND id = $2 FOR UPDATE) AS block",
            &[&show.get(), &id.get()],
        )
        .await?;
    if !found.get::<_, bool>("show") {
        return Err(Error::ShowNotFound);
    }
    if found.get::<_, Option<i64>>("block").is_none() {
        return Err(Error::BlockNotFound);
    }
    tx.cq(
        "SELECT id FROM seats WHERE show_id = $1 AND block_id = $2 ORDER BY id FOR UPDATE",
        &[&show.get(), &id.get()],
    )
    .await?;
    let row = tx
        .cq_one(
            &format!(
                "WITH t AS (
                     UPDATE seats SET block_id = NULL WHERE show_id = $1 AND block_id = $2
                     RETURNING id, label, xmin, area
                 ), {events}
                 SELECT {columns}",
                events = feed::EventsSql {
                    show: "$1",
                    cause: Cause::Unblock,
                    state: SeatState::Available,
                    until: None,
                    was: None,
                    from: "t",
                    per: None,
                }
                .cte(),
                columns = feed::EVENT_COLUMNS,
            ),
            &[&show.get(), &id.get()],
        )
        .await?;
    tx.cexec(
        "DELETE FROM blocks WHERE show_id = $1 AND id = $2",
        &[&show.get(), &id.get()],
    )
    .await?;
    let event = feed::written_event(&row, show, Cause::Unblock)?;
    tx.commit().await?;
    engine.committed(None);
    Ok(event)
}

/// The blocks of `show`, oldest first, or [`Error::ShowNotFound`].
pub async fn list_blocks<C: GenericClient>(client: &C, show: ShowId) -> Result<Vec<Block>> {
    crate::seats::ensure_exists(client, show).await?;
    let rows = client
        .cq(
            &format!("{SELECT_BLOCKS} ORDER BY b.id"),
            &[&show.get(), &0i64],
        )
        .await?;
    Ok(rows.iter().map(|r| block_from_row(show, r)).collect())
}

/// A page of the blocks of `show`, oldest first (by id), after `cursor` (the
/// `next_cursor` of the page before; another list's or show's is [`Error::Invalid`],
/// field `cursor`), or [`Error::ShowNotFound`]. Index: the primary key.
pub async fn blocks_page<C: GenericClient>(
    client: &C,
    show: ShowId,
    limit: crate::pages::Limit,
    cursor: Option<crate::pages::Cursor>,
) -> Result<crate::pages::Page<Block>> {
    use crate::pages::{Cursor, List, Page};
    let after = match cursor {
        Some(c) => c.of(List::ShowBlocks, Some(show.get()))?.number(),
        None => 0,
    };
    crate::seats::ensure_exists(client, show).await?;
    let rows = client
        .cq(
            &format!("{SELECT_BLOCKS} ORDER BY b.id LIMIT $3"),
            &[&show.get(), &after, &limit.fetch()],
        )
        .await?;
    let blocks = rows.iter().map(|r| block_from_row(show, r)).collect();
    Ok(Page::of(blocks, limit, |b: &Block| {
        Cursor::numbered(List::ShowBlocks, show.get(), Some(b.block_id.get()))
    }))
}

/// The blocks of show `$1` numbered after `$2`, with their seats.
const SELECT_BLOCKS: &str = "SELECT b.id, b.reason, b.created_at,
        array(SELECT s.label FROM seats s
               WHERE s.show_id = b.show_id AND s.block_id = b.id
               ORDER BY s.row_index, s.number) AS seats
   FROM blocks b WHERE b.show_id = $1 AND b.id > $2";

fn block_from_row(show: ShowId, r: &tokio_postgres::Row) -> Block {
    Block {
        block_id: BlockId::from_db(r.get("id")),
        show_id: show,
        seats: r
            .get::<_, Vec<String>>("seats")
            .into_iter()
            .map(SeatLabel::from_db)
            .collect(),
        reason: r.get("reason"),
        created_at: r.get("created_at"),
        event: None,
    }
}
