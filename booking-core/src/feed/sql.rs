//! The feed's SQL: events written with each change, and read below the watermark.

use super::event::{changes_from_json, event_from_row, parse_xid};
use super::{Cause, Cursor, Position, SeatEvent};
use crate::database::Cached;
use crate::domain::{SeatState, ShowId};
use crate::error::Result;
use deadpool_postgres::GenericClient;
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tokio_postgres::types::ToSql;

/// SQL: the feed's watermark (an `xid8`): events of transactions below it are final,
/// none can appear below it later. It is the oldest transaction still running in this
/// database (by the statement's snapshot), else the snapshot's `xmax`.
///
/// `pg_snapshot_xmin(pg_current_snapshot())` alone is the oldest running transaction
/// of the whole cluster: one long transaction in any other database held every show's
/// feed back for as long as it ran (measured: a hold's event reached its SSE
/// subscriber 3.0 s late behind a 3-second transaction in another database, and
/// 543 s late behind a bulk load elsewhere on the cluster). A transaction of another
/// database cannot write this database's `seat_events`, so its id is left out: those
/// that `pg_stat_activity` shows with a database other than ours (a backend never
/// changes its database). Only a transaction known to be another database's is left
/// out; one that ended before the view was read, or that the view does not show (a
/// prepared transaction, a session whose row we may not see), is kept, which can only
/// hold the feed back, never let it pass an event. Transaction ids are compared by
/// their low 32 bits (`backend_xid` is an `xid`): running transactions are less than
/// 2^31 apart, so the low bits name one. A long transaction of this database still
/// holds the feed back until it ends: that is what keeps the feed gap-free
/// (DESIGN.md, "The feed's watermark").
pub(crate) const WATERMARK: &str =
    "(SELECT coalesce(min(x), pg_snapshot_xmax(pg_current_snapshot()))
       FROM pg_snapshot_xip(pg_current_snapshot()) x
      WHERE (x::text::bigint % 4294967296) NOT IN (
            SELECT a.backend_xid::text::bigint FROM pg_stat_activity a
             WHERE a.backend_xid IS NOT NULL
               AND a.datid IS DISTINCT FROM
                   (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())))";

/// SQL: [`WATERMARK`] for a Citus formation, the same rule written with functions
/// only, so that the router ships it with the statement and the show's node evaluates
/// it over its own snapshot and backends. [`WATERMARK`] names `pg_stat_activity` and
/// `pg_database`, local tables to Citus: it plans them as subplans run on the
/// coordinator (EXPLAIN VERBOSE of a show's read: "Distributed Subplan ... Node:
/// port=57600"), so a show's feed was cut at the coordinator's watermark, whose
/// transaction ids are unrelated to the worker's. `pg_stat_get_activity(NULL)` is the
/// view's source; our database is the one of our own backend. Plain PostgreSQL keeps
/// [`WATERMARK`] and its plans.
pub(crate) const NODE_WATERMARK: &str =
    "(SELECT coalesce(min(x), pg_snapshot_xmax(pg_current_snapshot()))
       FROM pg_snapshot_xip(pg_current_snapshot()) x
      WHERE (x::text::bigint % 4294967296) NOT IN (
            SELECT a.backend_xid::text::bigint FROM pg_stat_get_activity(NULL) a
             WHERE a.backend_xid IS NOT NULL
               AND a.datid IS DISTINCT FROM
                   (SELECT o.datid FROM pg_stat_get_activity(pg_backend_pid()) o)))";

/// SQL: a CTE `ev` that writes the events of a change, in the statement that makes
/// the change: the one place that inserts into `seat_events`.
///
/// `from` has the seat rows just written (`id`, `label`, `xmin`, `area`); each event
/// lists its seats in id order with their new `state` and version. A row of a
/// standing area's place (`area` set) is listed the same way, with its `area`, and
/// with `was` when [`EventsSql::was`] says its state before was not the cause's usual
/// one: readers fold places into per-area deltas ([`super::AreaChange`]). One event per group of rows
/// with the same `per` columns, or with `per: None` one event for all of them, and
/// none when no row was written. `ev` returns `show_id`, `xid_text`, `id` and `seats`
/// of each event (see [`EVENT_COLUMNS`] and [`written_event`]). `per: Some("()")`
/// writes exactly one event, with `[]` as its seats when no row was written (a show's
/// cancellation, the one cause allowed no seats).
pub(crate) struct EventsSql<'a> {
    /// The show of the events: a parameter (`$1`) or a column of `from`.
    pub show: &'a str,
    pub cause: Cause,
    pub state: SeatState,
    /// For seats just held: SQL for the hold's `expires_at`, stored as each seat's
    /// `until`, so that a follower knows when the seat reads available again without
    /// asking. Not part of the events clients see.
    pub until: Option<&'a str>,
    pub from: &'a str,
    pub per: Option<&'a str>,
    /// SQL for a place's state before the change when it may differ from the usual
    /// one of the cause (a hold taking over places of a lapsed hold: `'held'`), else
    /// `NULL`; `None`: always the usual one ([`Cause::place_was`]).
    pub was: Option<&'a str>,
}

/// SQL for what each event of an [`EventsSql`] is about (the columns `hold_id`,
/// `booking_id` and `ended` of `seat_events`, read by webhooks): expressions over
/// `from`'s rows (or parameters), the same for every row of one event. `None`: not
/// known, stored as NULL.
#[derive(Default)]
pub(crate) struct Subject<'a> {
    /// The hold (its uuid key) whose seats changed.
    pub hold: Option<&'a str>,
    /// The booking (its uuid key) whose seats changed.
    pub booking: Option<&'a str>,
    /// For a cancel: whether it ended the booking (a boolean).
    pub ended: Option<&'a str>,
}

impl EventsSql<'_> {
    /// The CTE, every row with [`EventsSql::state`].
    pub(crate) fn cte(&self) -> String {
        self.cte_of(&Subject::default())
    }

    /// [`EventsSql::cte`], each event about `subject`.
    pub(crate) fn cte_of(&self, subject: &Subject) -> String {
        self.cte_with(&format!("'{}'", self.state.as_str()), subject)
    }

    /// The CTE, each row with its own state: the text column `state` of `from` (an
    /// exchange frees some seats and books others in one event), each event about
    /// `subject`.
    pub(crate) fn cte_stated_of(&self, subject: &Subject) -> String {
        self.cte_with("state", subject)
    }

    fn cte_with(&self, state: &str, subject: &Subject) -> String {
        // The subject is one value per event: any row's (aggregated, so that it fits
        // both a GROUP BY and the one-group HAVING form).
        let one = |e: Option<&str>, ty: &str| match e {
            Some(e) => format!("(array_agg(({e})::{ty}))[1]"),
            None => format!("NULL::{ty}"),
        };
        let (hold, booking, ended) = (
            one(subject.hold, "uuid"),
            one(subject.booking, "uuid"),
            one(subject.ended, "boolean"),
        );
        let until = self
            .until
            .map(|u| format!(", 'until', {u}"))
            .unwrap_or_default();
        let was = self
            .was
            .map(|w| format!(", 'was', {w}"))
            .unwrap_or_default();
        let grouping = match self.per {
            Some(columns) => format!("GROUP BY {columns}"),
            None => "HAVING count(*) > 0".to_owned(),
        };
        format!(
            "ev AS (INSERT INTO seat_events (show_id, cause, seats, hold_id, booking_id, ended)
                    SELECT {show}, '{cause}',
                           coalesce(jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
                                         'label', label, 'state', {state},
                                         'version', xmin::text{until}, 'area', area{was}))
                                     ORDER BY id), '[]'),
                           {hold}, {booking}, {ended}
                      FROM {from} {grouping}
                    RETURNING show_id, xid::text AS xid_text, id, seats, node, epoch)",
            show = self.show,
            cause = self.cause.as_str(),
            from = self.from,
        )
    }
}

/// SQL: the columns a statement with an `ev` CTE adds to its result, read back by
/// [`written_event`].
pub(crate) const EVENT_COLUMNS: &str =
    "(SELECT xid_text FROM ev) AS ev_xid, (SELECT id FROM ev) AS ev_id, (SELECT seats FROM ev) AS ev_seats,
     (SELECT node FROM ev) AS ev_node, (SELECT epoch FROM ev) AS ev_epoch";

/// The event a statement with [`EVENT_COLUMNS`] wrote, if it wrote one: what the
/// caller's own process may apply to its caches before the feed brings it.
pub(crate) fn written_event(
    row: &tokio_postgres::Row,
    show: ShowId,
    cause: Cause,
) -> Result<Option<Arc<SeatEvent>>> {
    let Some(xid) = row.get::<_, Option<&str>>("ev_xid") else {
        return Ok(None);
    };
    let position = Position {
        epoch: row.get("ev_epoch"),
        xid: parse_xid(xid)?,
        id: row.get("ev_id"),
        node: row.get("ev_node"),
    };
    let (seats, areas) = changes_from_json(row.get("ev_seats"), cause)?;
    Ok(Some(Arc::new(SeatEvent {
        position,
        show_id: show,
        cause,
        seats,
        areas,
        json: Default::default(),
    })))
}

/// The next page of one show's feed below `watermark` (see [`read`]).
fn read_show_sql(watermark: &str) -> String {
    format!(
        "SELECT xid::text AS xid_text, id, show_id, cause, seats, node, epoch
           FROM seat_events
          WHERE show_id = $5
            AND (xid, id) > ($1::text::xid8, $2)
            AND (xid, id) <= ($3::text::xid8, $4)
            AND xid < {watermark}
          ORDER BY xid, id
          LIMIT $6"
    )
}

/// The next page of the whole feed below `watermark` (see [`read`]).
fn read_all_sql(watermark: &str) -> String {
    format!(
        "SELECT xid::text AS xid_text, id, show_id, cause, seats, node, epoch
           FROM seat_events
          WHERE (xid, id) > ($1::text::xid8, $2)
            AND (xid, id) <= ($3::text::xid8, $4)
            AND xid < {watermark}
          ORDER BY xid, id
          LIMIT $5"
    )
}

static READ_SHOW: LazyLock<String> = LazyLock::new(|| read_show_sql(WATERMARK));
static READ_ALL: LazyLock<String> = LazyLock::new(|| read_all_sql(WATERMARK));

/// The newest readable event (see [`head`]).
static HEAD: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT xid::text AS xid_text, id FROM seat_events
          WHERE xid < {WATERMARK}
          ORDER BY xid DESC, id DESC LIMIT 1"
    )
});

/// Events after `after` (and at most `until`), of one show or of all, that no
/// transaction still running can precede: the next page of the feed.
///
/// One statement per form: a show's page walks `seat_events_show_feed` (`show_id, xid,
/// id`) and costs its own rows. As one statement with `($5 IS NULL OR show_id = $5)`,
/// the generic plan walked the whole feed's index and filtered by show: a `since=`
/// read of one show with a day of events (500,000, on 10,000 shows) took 356 ms to
/// find 55 rows, removing 499,950 (auto_explain, scripts/bench_growth.sh's data).
pub async fn read<C: GenericClient>(
    client: &C,
    show: Option<ShowId>,
    after: Position,
    until: Option<Position>,
    limit: i64,
) -> Result<Vec<SeatEvent>> {
    read_for(
        client,
        &crate::Settings::default(),
        show,
        after,
        until,
        limit,
    )
    .await
}

/// [`read`], for the database `settings` describe. On a Citus formation
/// ([`crate::Settings::distributed`]) a show's page is in the show's order
/// (`(epoch, xid, id)`) and `until` bounds the events of `until`'s node only; a page of
/// all shows is of the node of `after` only (the whole feed is one order per node:
/// [`Cursor`]).
pub async fn read_for<C: GenericClient>(
    client: &C,
    settings: &crate::Settings,
    show: Option<ShowId>,
    after: Position,
    until: Option<Position>,
    limit: i64,
) -> Result<Vec<SeatEvent>> {
    if settings.distributed {
        return match show {
            Some(show) => {
                let until = until.map(Cursor::at);
                read_show_on_nodes(client, show, after, until.as_ref(), limit).await
            }
            None => {
                let nodes = read_nodes(client, &Cursor::at(after), limit).await?;
                Ok(nodes
                    .events
                    .into_iter()
                    .filter(|e| e.position.node == after.node)
                    .collect())
            }
        };
    }
    let until = until.unwrap_or(Position {
        xid: i64::MAX as u64,
        id: i64::MAX,
        ..Position::START
    });
    let (after_xid, until_xid) = (after.xid.to_string(), until.xid.to_string());
    let rows = match show {
        Some(show) => {
            let params: [&(dyn ToSql + Sync); 6] = [
                &after_xid,
                &after.id,
                &until_xid,
                &until.id,
                &show.get(),
                &limit,
            ];
            client.cq(&READ_SHOW, &params).await?
        }
        None => {
            let params: [&(dyn ToSql + Sync); 5] =
                [&after_xid, &after.id, &until_xid, &until.id, &limit];
            client.cq(&READ_ALL, &params).await?
        }
    };
    rows.iter().map(event_from_row).collect()
}

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
        Ok(read_nodes(client, cursor, limit).await?.events)
    } else {
        read_for(client, settings, None, cursor.of(0), None, limit).await
    }
}

/// SQL: each node's watermark ([`WATERMARK`], run on the node itself over its own
/// snapshot and backends, by Citus's `run_command_on_all_nodes`), as `node` (its group
/// id) and `wm` (the `xid8` as text). A node that cannot be reached is left out: its
/// events wait, every other node's are read.
static NODE_WATERMARKS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT split_part(result, ' ', 1)::int AS node, split_part(result, ' ', 2) AS wm
           FROM run_command_on_all_nodes(
                $c$SELECT groupid || ' ' || {WATERMARK} FROM pg_dist_local_group$c$)
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

/// A page of the whole feed on a formation, and the nodes it read.
pub(super) struct NodesPage {
    pub events: Vec<SeatEvent>,
    /// Every node whose watermark was read (a node down is not among them).
    pub nodes: Vec<i32>,
}

/// The next page of the whole feed on a formation, after `cursor` ([`READ_NODES`]).
pub(super) async fn read_nodes<C: GenericClient>(
    client: &C,
    cursor: &Cursor,
    limit: i64,
) -> Result<NodesPage> {
    let marks = client.cq(&NODE_WATERMARKS, &[]).await?;
    let nodes: Vec<i32> = marks.iter().map(|r| r.get("node")).collect();
    let wms: Vec<String> = marks.iter().map(|r| r.get("wm")).collect();
    let events = read_nodes_below(client, cursor, &nodes, &wms, limit).await?;
    Ok(NodesPage { events, nodes })
}

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

/// Whether any event of `nodes` is after `cursor`, committed or not: events the
/// watermark still holds back.
pub(super) async fn pending_on_nodes<C: GenericClient>(
    client: &C,
    cursor: &Cursor,
    nodes: &[i32],
) -> Result<bool> {
    let beyond = vec![u64::MAX.to_string(); nodes.len()];
    Ok(!read_nodes_below(client, cursor, nodes, &beyond, 1)
        .await?
        .is_empty())
}

/// Where the whole feed stands now on a formation: each node's newest event below
/// its watermark.
pub(super) async fn head_nodes<C: GenericClient>(client: &C) -> Result<Cursor> {
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
/// xid, id per node: where the process's pump stands), only the events up to there.
static READ_SHOW_ON_NODES: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT e.xid::text AS xid_text, e.id, e.show_id, e.cause, e.seats, e.node, e.epoch
           FROM seat_events e
          WHERE e.show_id = $1
            AND (e.epoch, e.xid, e.id) > ($2::int, $3::text::xid8, $4)
            AND (e.node <> booking_node(e.show_id) OR e.xid < {NODE_WATERMARK})
            AND ($5::int[] IS NULL
                 OR EXISTS (SELECT 1 FROM unnest($5::int[], $6::text[], $7::bigint[]) AS u(node, xid, id)
                             WHERE u.node = e.node AND (e.xid, e.id) <= (u.xid::xid8, u.id)))
          ORDER BY e.epoch, e.xid, e.id
          LIMIT $8"
    )
});

async fn read_show_on_nodes<C: GenericClient>(
    client: &C,
    show: ShowId,
    after: Position,
    until: Option<&Cursor>,
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
            ],
        )
        .await?;
    rows.iter().map(event_from_row).collect()
}

/// [`read`] for a follower of one show that stands at `until` in the whole feed (its
/// process's pump): the show's events after `after`, up to there.
pub(super) async fn read_show_until<C: GenericClient>(
    client: &C,
    settings: &crate::Settings,
    show: ShowId,
    after: Position,
    until: &Cursor,
    limit: i64,
) -> Result<Vec<SeatEvent>> {
    if settings.distributed {
        read_show_on_nodes(client, show, after, Some(until), limit).await
    } else {
        read_for(
            client,
            settings,
            Some(show),
            after,
            Some(until.of(0)),
            limit,
        )
        .await
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

/// The position of the newest event that can be read now ([`Position::START`] when
/// there is none).
pub async fn head<C: GenericClient>(client: &C) -> Result<Position> {
    let row = client.cq_opt(&HEAD, &[]).await?;
    Ok(match row {
        None => Position::START,
        Some(r) => Position {
            xid: parse_xid(r.get("xid_text"))?,
            id: r.get("id"),
            ..Position::START
        },
    })
}

/// Deletes events older than `retention`; returns how many. The newest position
/// deleted becomes the feed's [`horizon`], in the same statement: no follower can then
/// resume from before it without being told.
pub async fn prune<C: GenericClient>(client: &C, retention: Duration) -> Result<u64> {
    let row = client
        .cq_one(
            "WITH gone AS (
                 DELETE FROM seat_events
                  WHERE created_at < now() - $1::bigint * interval '1 second'
                 RETURNING node, xid, id
             ), newest AS (
                 SELECT DISTINCT ON (node) node, xid, id FROM gone
                  ORDER BY node, xid DESC, id DESC
             ), moved AS (
                 INSERT INTO feed_horizon (node, xid, id) SELECT node, xid, id FROM newest
                 ON CONFLICT (node) DO UPDATE SET xid = excluded.xid, id = excluded.id
                  WHERE (feed_horizon.xid, feed_horizon.id) < (excluded.xid, excluded.id)
             )
             SELECT count(*) FROM gone",
            &[&(retention.as_secs() as i64)],
        )
        .await?;
    Ok(row.get::<_, i64>(0) as u64)
}

/// The feed's retention horizon: per node, the newest position of its events pruned so
/// far (at the start where nothing was). Events after it are all kept; a follower
/// resuming from before it may have missed some ([`crate::Error::PositionExpired`]).
/// One show's events are pruned oldest first on every node alike (by age), so a
/// position is checked against the horizon of its own node.
pub async fn horizon<C: GenericClient>(client: &C) -> Result<Cursor> {
    let mut cursor = Cursor::start();
    for r in client
        .cq(
            "SELECT node, xid::text AS xid_text, id FROM feed_horizon",
            &[],
        )
        .await?
    {
        cursor.advance(Position {
            xid: parse_xid(r.get("xid_text"))?,
            id: r.get("id"),
            ..Position::start_of(r.get("node"), 0)
        });
    }
    Ok(cursor)
}
