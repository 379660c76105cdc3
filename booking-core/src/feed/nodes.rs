//! The feed's reads on a Citus formation: the whole feed one node at a time, each
//! node below its own watermark, and one show in its own order across shard moves
//! (DESIGN.md, "The sweeper, the reads and the feed per node").

use super::event::{event_from_row, parse_xid};
use super::links::NodeLinks;
use super::sql::{read_for, NODE_WATERMARK};
use super::{Cursor, Position, SeatEvent};
use crate::database::Cached;
use crate::domain::ShowId;
use crate::error::Result;
use deadpool_postgres::GenericClient;
use std::sync::LazyLock;

/// The next page of the whole feed after `cursor`, on one PostgreSQL or a formation
/// alike: what a library user pages through, moving the cursor past each event
/// ([`Cursor::advance`]). On a formation each node's events come in that node's
/// order, and a node that cannot be reached is left out until it can.
pub async fn read_after<C: GenericClient>(
    client: &C,
    settings: &crate::Settings,
    cursor: &Cursor,
    limit: i64,
) -> Result<Vec<SeatEvent>> {
    if settings.distributed {
        read_nodes(client, cursor, limit).await
    } else {
        read_for(client, settings, None, cursor.of(0), None, limit).await
    }
}

/// SQL: each node's watermark ([`NODE_WATERMARK`], run on the node itself over its own
/// snapshot and backends, by Citus's `run_command_on_all_nodes`), as `node` (its group
/// id) and `wm` (the `xid8` as text). A node that cannot be reached is left out: its
/// events wait, every other node's are read.
static NODE_WATERMARKS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT split_part(result, ' ', 1)::int AS node, split_part(result, ' ', 2) AS wm
           FROM run_command_on_all_nodes(
                $c$SELECT groupid || ' ' || {NODE_WATERMARK} FROM pg_dist_local_group$c$)
          WHERE success"
    )
});

/// SQL: the next page of the whole feed on a formation: after each node's position
/// (`$1`..`$3`: node, xid, id), below that node's watermark (`$4`). Ordered by
/// `(xid, id)` across nodes, which means nothing between two nodes but keeps each
/// node's events in its own order: a page cut by `LIMIT` is a prefix of every node's.
/// `node` is the node that wrote the event, wherever a shard move has taken it since:
/// its `xid` is that node's, and so is the watermark it waits for.
const READ_NODES: &str =
    "SELECT e.xid::text AS xid_text, e.id, e.show_id, e.cause, e.seats, e.node, e.epoch
       FROM seat_events e
       JOIN unnest($1::int[], $2::text[], $3::bigint[], $4::text[]) AS c(node, xid, id, wm)
         ON c.node = e.node
      WHERE (e.xid, e.id) > (c.xid::xid8, c.id)
        AND e.xid < c.wm::xid8
      ORDER BY e.xid, e.id
      LIMIT $5";

/// The next page of the whole feed on a formation, after `cursor` ([`READ_NODES`]),
/// with the watermarks of [`NODE_WATERMARKS`]. (The pump reads them over its own
/// connections, [`watermarks`], then [`read_nodes_below`].)
pub(super) async fn read_nodes<C: GenericClient>(
    client: &C,
    cursor: &Cursor,
    limit: i64,
) -> Result<Vec<SeatEvent>> {
    let (nodes, wms) = watermarks(client, None).await?;
    read_nodes_below(client, cursor, &nodes, &wms, limit).await
}

/// Each reachable node's group id and watermark (an `xid8` as text), in node order:
/// over `links` when given, else with [`NODE_WATERMARKS`]. The pump's and the webhook
/// router's one source of the watermarks on a formation.
pub(crate) async fn watermarks<C: GenericClient>(
    client: &C,
    links: Option<&mut NodeLinks>,
) -> Result<(Vec<i32>, Vec<String>)> {
    Ok(match links {
        Some(links) => links.watermarks(client).await?,
        None => {
            let marks = client.cq(&NODE_WATERMARKS, &[]).await?;
            (
                marks.iter().map(|r| r.get("node")).collect(),
                marks.iter().map(|r| r.get("wm")).collect(),
            )
        }
    })
}

/// The next page of the whole feed on a formation after `cursor`, each node of
/// `nodes` below its watermark in `wms` ([`READ_NODES`]).
async fn read_nodes_below<C: GenericClient>(
    client: &C,
    cursor: &Cursor,
    nodes: &[i32],
    wms: &[String],
    limit: i64,
) -> Result<Vec<SeatEvent>> {
    let at: Vec<Position> = nodes.iter().map(|n| cursor.of(*n)).collect();
    let xids: Vec<String> = at.iter().map(|p| p.xid.to_string()).collect();
    let ids: Vec<i64> = at.iter().map(|p| p.id).collect();
    let rows = client
        .cq(READ_NODES, &[&nodes, &xids, &ids, &wms, &limit])
        .await?;
    rows.iter().map(event_from_row).collect()
}

/// SQL: [`READ_NODES`] with what it leaves out counted in: every event after each
/// node's position, those below the node's watermark first (in `(xid, id)` order),
/// then those it still holds back (`held`). The pump's one read a round: one statement
/// on every shard where a read and then a look for held-back events were two.
const READ_NODES_AHEAD: &str =
    "SELECT e.xid::text AS xid_text, e.id, e.show_id, e.cause, e.seats, e.node, e.epoch,
            e.xid >= c.wm::xid8 AS held
       FROM seat_events e
       JOIN unnest($1::int[], $2::text[], $3::bigint[], $4::text[]) AS c(node, xid, id, wm)
         ON c.node = e.node
      WHERE (e.xid, e.id) > (c.xid::xid8, c.id)
      ORDER BY e.xid >= c.wm::xid8, e.xid, e.id
      LIMIT $5";

/// What the pump's read of a round found ([`read_nodes_ahead`]).
pub(super) struct Ahead {
    /// The events below their nodes' watermarks, at most the limit.
    pub events: Vec<SeatEvent>,
    /// Committed events after `cursor` that a watermark still holds back.
    pub held: bool,
}

/// The next page of the whole feed on a formation after `cursor`, each node of
/// `nodes` below its watermark in `wms`, and whether committed events beyond them
/// wait ([`READ_NODES_AHEAD`]). `events` has `limit` events only when there may be
/// more below the watermarks: a page with a held-back event has all of those.
pub(super) async fn read_nodes_ahead<C: GenericClient>(
    client: &C,
    cursor: &Cursor,
    nodes: &[i32],
    wms: &[String],
    limit: i64,
) -> Result<Ahead> {
    let at: Vec<Position> = nodes.iter().map(|n| cursor.of(*n)).collect();
    let xids: Vec<String> = at.iter().map(|p| p.xid.to_string()).collect();
    let ids: Vec<i64> = at.iter().map(|p| p.id).collect();
    let rows = client
        .cq(READ_NODES_AHEAD, &[&nodes, &xids, &ids, &wms, &limit])
        .await?;
    let mut ahead = Ahead {
        events: Vec::with_capacity(rows.len()),
        held: false,
    };
    for row in &rows {
        if row.get::<_, bool>("held") {
            ahead.held = true;
            break;
        }
        ahead.events.push(event_from_row(row)?);
    }
    Ok(ahead)
}

/// Where the whole feed stands now on a formation: each node's newest event below
/// its watermark.
pub(crate) async fn head_nodes<C: GenericClient>(client: &C) -> Result<Cursor> {
    let mut cursor = Cursor::start();
    for mark in client.cq(&NODE_WATERMARKS, &[]).await? {
        let (node, wm): (i32, String) = (mark.get("node"), mark.get("wm"));
        let row = client
            .cq_opt(
                "SELECT xid::text AS xid_text, id FROM seat_events
                  WHERE node = $1 AND xid < $2::text::xid8
                  ORDER BY xid DESC, id DESC LIMIT 1",
                &[&node, &wm],
            )
            .await?;
        if let Some(r) = row {
            cursor.advance(Position {
                xid: parse_xid(r.get("xid_text"))?,
                id: r.get("id"),
                ..Position::start_of(node, 0)
            });
        }
    }
    Ok(cursor)
}

/// SQL: the next page of one show's feed on a formation, in the show's order
/// (`$1` show; `$2`..`$4` after: epoch, xid, id), at most `$8`. Events the show's node
/// wrote are cut at its own watermark ([`NODE_WATERMARK`]); those another node wrote
/// came with a shard move, which waited for them to commit. With `$5`..`$7` (node,
/// xid, id per node), only the events up to there. With `$9` (`$5`..`$7` is where
/// the process's pump stands), no cut: the pump handed each of them out below its
/// node's watermark, so its transaction had ended (`sql::read_handed_out` says why a
/// second cut could lose some).
static READ_SHOW_ON_NODES: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT e.xid::text AS xid_text, e.id, e.show_id, e.cause, e.seats, e.node, e.epoch
           FROM seat_events e
          WHERE e.show_id = $1
            AND (e.epoch, e.xid, e.id) > ($2::int, $3::text::xid8, $4)
            AND ($9::bool OR e.node <> booking_node(e.show_id) OR e.xid < {NODE_WATERMARK})
            AND ($5::int[] IS NULL
                 OR EXISTS (SELECT 1 FROM unnest($5::int[], $6::text[], $7::bigint[]) AS u(node, xid, id)
                             WHERE u.node = e.node AND (e.xid, e.id) <= (u.xid::xid8, u.id)))
          ORDER BY e.epoch, e.xid, e.id
          LIMIT $8"
    )
});

pub(super) async fn read_show_on_nodes<C: GenericClient>(
    client: &C,
    show: ShowId,
    after: Position,
    until: Option<&Cursor>,
    handed_out: bool,
    limit: i64,
) -> Result<Vec<SeatEvent>> {
    let after_xid = after.xid.to_string();
    let (nodes, xids, ids) = match until {
        None => (None, None, None),
        Some(c) => {
            let at: Vec<Position> = c.nodes().collect();
            (
                Some(at.iter().map(|p| p.node).collect::<Vec<i32>>()),
                Some(
                    at.iter()
                        .map(|p| p.xid.to_string())
                        .collect::<Vec<String>>(),
                ),
                Some(at.iter().map(|p| p.id).collect::<Vec<i64>>()),
            )
        }
    };
    let rows = client
        .cq(
            &READ_SHOW_ON_NODES,
            &[
                &show.get(),
                &after.epoch,
                &after_xid,
                &after.id,
                &nodes,
                &xids,
                &ids,
                &limit,
                &handed_out,
            ],
        )
        .await?;
    rows.iter().map(event_from_row).collect()
}

/// [`read`] for a follower of one show that stands at `until` in the whole feed (its
/// process's pump): the show's events after `after`, up to there, every one of them
/// handed out by the pump already (so not cut at the watermark again).
pub(super) async fn read_show_until<C: GenericClient>(
    client: &C,
    settings: &crate::Settings,
    show: ShowId,
    after: Position,
    until: &Cursor,
    limit: i64,
) -> Result<Vec<SeatEvent>> {
    if settings.distributed {
        read_show_on_nodes(client, show, after, Some(until), true, limit).await
    } else {
        super::sql::read_handed_out(client, show, after, until.of(0), limit).await
    }
}

/// SQL: where `$1` is now: its node and its stay there (the epoch its next event
/// gets), evaluated on the show's node. No row when the show does not exist.
const SHOW_PLACEMENT: &str =
    "SELECT booking_node(sh.id) AS node, booking_epoch(sh.id) AS epoch FROM shows sh WHERE sh.id = $1";

/// The node `show` is on and its stay there ([`SHOW_PLACEMENT`]); `(0, 0)` on one
/// PostgreSQL, and for a show that does not exist.
pub(super) async fn show_placement<C: GenericClient>(
    client: &C,
    settings: &crate::Settings,
    show: ShowId,
) -> Result<(i32, i32)> {
    if !settings.distributed {
        return Ok((0, 0));
    }
    Ok(match client.cq_opt(SHOW_PLACEMENT, &[&show.get()]).await? {
        Some(r) => (r.get("node"), r.get("epoch")),
        None => (0, 0),
    })
}
