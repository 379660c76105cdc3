//! The feed's SQL: events written with each change, and read below the watermark.

use super::event::{changes_from_json, event_from_row, parse_xid};
use super::nodes::{read_nodes, read_show_on_nodes};
use super::{Cause, Cursor, Position, SeatEvent};
use crate::database::Cached;
use crate::domain::{SeatState, ShowId};
use crate::error::Result;
use crate::shows::PIN;
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
///
/// It also leaves out the prepared transactions (two-phase commit) of other databases,
/// which no backend shows: on a formation every write of several nodes and every
/// distributed DDL of any database of the node prepares, and one whose coordinator
/// backend died between its `PREPARE` and its `COMMIT PREPARED` stays until Citus
/// recovers it (`citus.recover_2pc_interval`, a minute), holding back every
/// database's feed on that node meanwhile. A prepared transaction of another database
/// can never write our events; ours are kept.
pub(crate) const NODE_WATERMARK: &str =
    "(SELECT coalesce(min(x), pg_snapshot_xmax(pg_current_snapshot()))
       FROM pg_snapshot_xip(pg_current_snapshot()) x
      WHERE (x::text::bigint % 4294967296) NOT IN (
            SELECT a.backend_xid::text::bigint FROM pg_stat_get_activity(NULL) a
             WHERE a.backend_xid IS NOT NULL
               AND a.datid IS DISTINCT FROM
                   (SELECT o.datid FROM pg_stat_get_activity(pg_backend_pid()) o)
            UNION ALL
            SELECT p.transaction::text::bigint FROM pg_prepared_xact() p
             WHERE p.dbid IS DISTINCT FROM
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
/// cancellation, the one cause allowed no seats); `from` is then one relation.
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
        // Joined to the show's row (`PIN`), so that on Citus the insert is pushed
        // down whole to the show's node: see `crate::shows::PIN`.
        let (from, grouping) = match self.per {
            // Exactly one event, with or without rows (`from` is one relation here).
            Some("()") => (
                format!(
                    "{PIN} p LEFT JOIN {from} ON true WHERE p.pin = {show}",
                    from = self.from,
                    show = self.show
                ),
                "GROUP BY p.pin".to_owned(),
            ),
            Some(columns) => (
                format!(
                    "{from} JOIN {PIN} p ON p.pin = {show}",
                    from = self.from,
                    show = self.show
                ),
                format!("GROUP BY {columns}, p.pin"),
            ),
            None => (
                format!(
                    "{from} JOIN {PIN} p ON p.pin = {show}",
                    from = self.from,
                    show = self.show
                ),
                "GROUP BY p.pin".to_owned(),
            ),
        };
        format!(
            "ev AS (INSERT INTO seat_events AS e (show_id, id, xid, created_at, cause, seats,
                                                  hold_id, booking_id, ended)
                    OVERRIDING SYSTEM VALUE
                    SELECT p.pin, booking_event_id(p.pin), booking_xid(p.pin), booking_now(p.pin),
                           '{cause}',
                           coalesce(jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
                                         'label', label, 'state', {state},
                                         'version', xmin::text{until}, 'area', area{was}))
                                     ORDER BY id) FILTER (WHERE label IS NOT NULL), '[]'),
                           {hold}, {booking}, {ended}
                      FROM {from} {grouping}
                    RETURNING e.show_id, e.xid::text AS xid_text, e.id, e.seats, e.node, e.epoch)",
            cause = self.cause.as_str(),
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

/// The next page of one show's feed, cut by `cut` (`AND xid < {watermark}`; see
/// [`read`]).
fn read_show_sql(cut: &str) -> String {
    format!(
        "SELECT xid::text AS xid_text, id, show_id, cause, seats, node, epoch
           FROM seat_events
          WHERE show_id = $5
            AND (xid, id) > ($1::text::xid8, $2)
            AND (xid, id) <= ($3::text::xid8, $4)
            {cut}
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

static READ_SHOW: LazyLock<String> =
    LazyLock::new(|| read_show_sql(&format!("AND xid < {WATERMARK}")));

/// A show's events up to where the pump stands ([`read_handed_out`]): no cut.
static READ_SHOW_HANDED: LazyLock<String> = LazyLock::new(|| read_show_sql(""));
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
                read_show_on_nodes(client, show, after, until.as_ref(), false, limit).await
            }
            None => {
                let events = read_nodes(client, &Cursor::at(after), limit).await?;
                Ok(events
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
        Some(show) => return read_show_with(client, &READ_SHOW, show, after, until, limit).await,
        None => {
            let params: [&(dyn ToSql + Sync); 5] =
                [&after_xid, &after.id, &until_xid, &until.id, &limit];
            client.cq(&READ_ALL, &params).await?
        }
    };
    rows.iter().map(event_from_row).collect()
}

/// One show's events after `after`, up to `until` inclusive, on one PostgreSQL,
/// with no watermark: every one of them was handed out by the process's pump (`until`
/// is where it stands), so below its watermark then, so its transaction had ended.
/// Cutting them at the watermark again could only lose some: a transaction of
/// another database that ends between the snapshot and the read of
/// `pg_stat_activity` holds the watermark back for that one read (`WATERMARK`), and a
/// follower's backlog read once missed two events so (CI, 2026-12-03).
pub(super) async fn read_handed_out<C: GenericClient>(
    client: &C,
    show: ShowId,
    after: Position,
    until: Position,
    limit: i64,
) -> Result<Vec<SeatEvent>> {
    read_show_with(client, &READ_SHOW_HANDED, show, after, until, limit).await
}

async fn read_show_with<C: GenericClient>(
    client: &C,
    sql: &str,
    show: ShowId,
    after: Position,
    until: Position,
    limit: i64,
) -> Result<Vec<SeatEvent>> {
    let (after_xid, until_xid) = (after.xid.to_string(), until.xid.to_string());
    let params: [&(dyn ToSql + Sync); 6] = [
        &after_xid,
        &after.id,
        &until_xid,
        &until.id,
        &show.get(),
        &limit,
    ];
    let rows = client.cq(sql, &params).await?;
    rows.iter().map(event_from_row).collect()
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
