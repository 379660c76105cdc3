//! The change feed: every committed change of a seat's state, exactly once, in order.
//!
//! # Writing
//!
//! Every transaction that changes seats (hold, confirm, release, expire, cancel; extend
//! changes none) inserts its events into `seat_events` in the same statement that
//! changes the seats. An event exists if and only if its change committed.
//!
//! Waking readers is separate from writing: a `pg_notify` inside each transaction takes
//! a cluster-wide lock at commit and held every seat-changing transaction behind the
//! previous one's WAL flush (measured: ~450 holds/s at 32 clients). So a writer only
//! signals its own process (memory); the process's notifier then sends one
//! `pg_notify('booking_events', '')` for whatever changed in the last few milliseconds,
//! outside any write transaction, to wake the other processes. A wake-up lost in a
//! crash costs latency, never an event: readers also poll.
//!
//! # Reading: a watermark, not a sequence
//!
//! Event ids come from a sequence, and sequence values are handed out before commit: a
//! reader that trusts `id > last_seen` skips the events of a transaction that took its
//! id early and committed late. So each event also stores its transaction's id (`xid`,
//! from `pg_current_xact_id()`), readers order by `(xid, id)` and take only events of
//! transactions older than every transaction still running
//! (`xid < pg_snapshot_xmin(pg_current_snapshot())`). Such a transaction has finished:
//! no event can ever appear before a position a reader has passed. The position of an
//! event, `{xid}.{id}`, is the cursor clients resume from.
//!
//! Order by xid is commit order for any two transactions that change the same seat:
//! a transaction locks its hold or booking row before its seats (so no seat can move
//! away and come back to it), and a new hold refuses a seat that a younger transaction
//! wrote while it waited for the lock (see [`crate::holds`]). So no later read
//! contradicts the order of the feed.
//!
//! # Following
//!
//! [`Feed::start`] runs one pump per process: it reads new events (woken by a LISTEN
//! connection outside the pool, and by a tick; while committed events wait behind the
//! watermark it looks again every few milliseconds, because the watermark moves when
//! an older transaction ends, which notifies nobody) and fans them out in memory to per-show
//! [`Subscription`]s. A subscriber that falls behind is cut off, never waited for; it
//! resumes from its last position with [`Feed::subscribe`].

use crate::database::Cached;
use crate::domain::{SeatLabel, SeatState, ShowId, Version};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::listener::Wakeup;
use deadpool_postgres::{GenericClient, Pool};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

/// The least time between two reads of the feed prompted by this process's own changes.
const LOCAL_GATHER: Duration = Duration::from_millis(3);

/// How soon to look again for events held back by the watermark.
const PENDING_RETRY: Duration = Duration::from_millis(20);

/// The channel writers notify (payload: the show id).
pub const EVENTS_CHANNEL: &str = "booking_events";

/// SQL: a CTE `ev` that writes the events of a change, in the statement that makes
/// the change: the one place that inserts into `seat_events`.
///
/// `from` has the seat rows just written (`id`, `label`, `xmin`); each event lists its
/// seats in id order with their new `state` and version. One event per group of rows
/// with the same `per` columns, or with `per: None` one event for all of them, and
/// none when no row was written. `ev` returns `show_id`, `xid_text`, `id` and `seats`
/// of each event (see [`EVENT_COLUMNS`] and [`written_event`]).
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
}

impl EventsSql<'_> {
    pub(crate) fn cte(&self) -> String {
        let until = self
            .until
            .map(|u| format!(", 'until', {u}"))
            .unwrap_or_default();
        let grouping = match self.per {
            Some(columns) => format!("GROUP BY {columns}"),
            None => "HAVING count(*) > 0".to_owned(),
        };
        format!(
            "ev AS (INSERT INTO seat_events (show_id, cause, seats)
                    SELECT {show}, '{cause}',
                           jsonb_agg(jsonb_build_object('label', label, 'state', '{state}',
                                                        'version', xmin::text{until})
                                     ORDER BY id)
                      FROM {from} {grouping}
                    RETURNING show_id, xid::text AS xid_text, id, seats)",
            show = self.show,
            cause = self.cause.as_str(),
            state = self.state.as_str(),
            from = self.from,
        )
    }
}

/// SQL: the columns a statement with an `ev` CTE adds to its result, read back by
/// [`written_event`].
pub(crate) const EVENT_COLUMNS: &str =
    "(SELECT xid_text FROM ev) AS ev_xid, (SELECT id FROM ev) AS ev_id, (SELECT seats FROM ev) AS ev_seats";

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
        xid: parse_xid(xid)?,
        id: row.get("ev_id"),
    };
    Ok(Some(Arc::new(SeatEvent {
        position,
        show_id: show,
        cause,
        seats: changes_from_json(row.get("ev_seats"))?,
        json: Default::default(),
    })))
}

/// How long the notifier gathers changes into one NOTIFY.
const NOTIFY_COALESCE: Duration = Duration::from_millis(2);

/// A place in the feed: `{xid}.{id}`. Positions are totally ordered; the feed only
/// ever moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    xid: u64,
    id: i64,
}

impl Position {
    /// Before every event.
    pub const START: Position = Position { xid: 0, id: 0 };

    /// The id of the transaction that wrote the event (a full `xid8`, as in
    /// `pg_current_snapshot()`).
    pub fn xid(&self) -> u64 {
        self.xid
    }

    /// Parses the `{xid}.{id}` form (as sent in `Last-Event-ID`).
    pub fn parse(s: &str) -> Result<Position> {
        let bad = || Error::invalid("since", "not an event id (as sent in the `id:` field)");
        let (xid, id) = s.split_once('.').ok_or_else(bad)?;
        let digits =
            |t: &str| !t.is_empty() && t.len() <= 19 && t.bytes().all(|b| b.is_ascii_digit());
        if !digits(xid) || !digits(id) {
            return Err(bad());
        }
        Ok(Position {
            xid: xid.parse().map_err(|_| bad())?,
            id: id.parse().map_err(|_| bad())?,
        })
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.xid, self.id)
    }
}

impl serde::Serialize for Position {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A transaction snapshot (`pg_current_snapshot()`): which transactions' changes a
/// read saw. A transaction is seen when it committed before the snapshot was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxSnapshot {
    xmin: u64,
    xmax: u64,
    /// Transactions in progress when the snapshot was taken (between `xmin` and `xmax`).
    running: Vec<u64>,
}

impl TxSnapshot {
    /// Parses the text form `xmin:xmax:xip,xip,...`.
    pub fn parse(s: &str) -> Result<TxSnapshot> {
        let bad = || Error::Invariant(format!("snapshot {s:?}"));
        let mut parts = s.split(':');
        let mut next = || parts.next().ok_or_else(bad);
        let xmin = next()?.parse().map_err(|_| bad())?;
        let xmax = next()?.parse().map_err(|_| bad())?;
        let running = next()?
            .split(',')
            .filter(|x| !x.is_empty())
            .map(|x| x.parse().map_err(|_| bad()))
            .collect::<Result<Vec<u64>>>()?;
        Ok(TxSnapshot {
            xmin,
            xmax,
            running,
        })
    }

    /// Whether the changes of transaction `xid` (one that wrote an event, so one that
    /// committed) are visible in this snapshot: `pg_visible_in_snapshot`.
    pub fn sees(&self, xid: u64) -> bool {
        xid < self.xmin || (xid < self.xmax && !self.running.contains(&xid))
    }
}

crate::domain::text_enum! {
    /// What happened to the seats.
    pub enum Cause {
        Hold = "hold",
        Confirm = "confirm",
        Release = "release",
        Expire = "expire",
        Cancel = "cancel",
    }
}

/// One seat's new state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeatChange {
    pub label: SeatLabel,
    pub state: SeatState,
    pub version: Version,
    /// For a seat just held: the hold's `expires_at`, when the seat reads available
    /// again unless the hold is extended (extending writes no event). Not sent to
    /// clients; absent in events written before it was recorded.
    #[serde(skip)]
    pub held_until: Option<chrono::DateTime<chrono::Utc>>,
}

/// One transaction's change to some seats of one show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeatEvent {
    #[serde(skip)]
    pub position: Position,
    pub show_id: ShowId,
    pub cause: Cause,
    pub seats: Vec<SeatChange>,
    /// The JSON of this event, made once however many subscribers send it.
    #[serde(skip)]
    json: std::sync::OnceLock<String>,
}

impl SeatEvent {
    /// `{"show_id": .., "cause": .., "seats": [..]}`, serialised once and shared.
    pub fn json(&self) -> &str {
        self.json
            .get_or_init(|| serde_json::to_string(self).unwrap_or_default())
    }
}

#[derive(serde::Deserialize)]
struct StoredChange {
    label: String,
    state: String,
    version: String,
    #[serde(default)]
    until: Option<chrono::DateTime<chrono::Utc>>,
}

/// A transaction id as the text of an `xid8`. Ids travel as text (tokio-postgres has
/// no `xid8` type) but are compared only as numbers, here and in SQL, where every
/// query orders by the `xid8` column itself: a text column named `xid` would win the
/// name in `ORDER BY xid`, and text order puts `1000000` before `999999` (issue 12).
fn parse_xid(text: &str) -> Result<u64> {
    text.parse()
        .map_err(|_| Error::Invariant(format!("xid {text:?}")))
}

fn event_from_row(r: &tokio_postgres::Row) -> Result<SeatEvent> {
    let position = Position {
        xid: parse_xid(r.get("xid_text"))?,
        id: r.get("id"),
    };
    let cause = Cause::from_db(r.get("cause"))?;
    let seats = changes_from_json(r.get("seats"))?;
    Ok(SeatEvent {
        position,
        show_id: ShowId::from_db(r.get("show_id")),
        cause,
        seats,
        json: Default::default(),
    })
}

fn changes_from_json(seats: serde_json::Value) -> Result<Vec<SeatChange>> {
    let stored: Vec<StoredChange> =
        serde_json::from_value(seats).map_err(|e| Error::Invariant(format!("event seats: {e}")))?;
    stored
        .into_iter()
        .map(|c| {
            Ok(SeatChange {
                label: SeatLabel::from_db(c.label),
                state: SeatState::from_db(&c.state)?,
                version: Version::new(c.version),
                held_until: c.until,
            })
        })
        .collect()
}

/// Events after `after` (and at most `until`), of one show or of all, that no
/// transaction still running can precede: the next page of the feed.
pub async fn read<C: GenericClient>(
    client: &C,
    show: Option<ShowId>,
    after: Position,
    until: Option<Position>,
    limit: i64,
) -> Result<Vec<SeatEvent>> {
    let until = until.unwrap_or(Position {
        xid: i64::MAX as u64,
        id: i64::MAX,
    });
    let rows = client
        .cq(
            "SELECT xid::text AS xid_text, id, show_id, cause, seats
               FROM seat_events
              WHERE (xid, id) > ($1::text::xid8, $2)
                AND (xid, id) <= ($3::text::xid8, $4)
                AND xid < pg_snapshot_xmin(pg_current_snapshot())
                AND ($5::bigint IS NULL OR show_id = $5)
              ORDER BY xid, id
              LIMIT $6",
            &[
                &after.xid.to_string(),
                &after.id,
                &until.xid.to_string(),
                &until.id,
                &show.map(ShowId::get),
                &limit,
            ],
        )
        .await?;
    rows.iter().map(event_from_row).collect()
}

/// The position of the newest event that can be read now ([`Position::START`] when
/// there is none).
pub async fn head<C: GenericClient>(client: &C) -> Result<Position> {
    let row = client
        .cq_opt(
            "SELECT xid::text AS xid_text, id FROM seat_events
              WHERE xid < pg_snapshot_xmin(pg_current_snapshot())
              ORDER BY xid DESC, id DESC LIMIT 1",
            &[],
        )
        .await?;
    Ok(match row {
        None => Position::START,
        Some(r) => Position {
            xid: parse_xid(r.get("xid_text"))?,
            id: r.get("id"),
        },
    })
}

/// Deletes events older than `retention`; returns how many.
pub async fn prune<C: GenericClient>(client: &C, retention: Duration) -> Result<u64> {
    Ok(client
        .cexec(
            "DELETE FROM seat_events WHERE created_at < now() - $1::bigint * interval '1 second'",
            &[&(retention.as_secs() as i64)],
        )
        .await?)
}

/// How the pump of [`Feed::start`] behaves.
#[derive(Clone)]
pub struct FeedOptions {
    /// The process's LISTEN connection, to read as soon as events are written.
    /// `None`: poll only.
    pub listen: Option<crate::listener::Listener>,
    /// Read even without a notification this often: the watermark also moves when a
    /// transaction without events ends.
    pub poll: Duration,
    /// Events a subscriber may have unread before it is cut off.
    pub subscriber_buffer: usize,
    /// Send one NOTIFY for the changes this process makes, so that the feeds of other
    /// processes read them at once rather than at their next poll.
    pub notify_others: bool,
}

impl Default for FeedOptions {
    fn default() -> Self {
        FeedOptions {
            listen: None,
            poll: Duration::from_millis(100),
            subscriber_buffer: 1024,
            notify_others: true,
        }
    }
}

/// The process's follower of the feed: one pump, many subscribers. Cheap to clone.
#[derive(Clone)]
pub struct Feed {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    hub: Mutex<Hub>,
    /// When the last read began that left no committed event unread (see
    /// [`Feed::caught_up_after`]).
    caught_up: tokio::sync::watch::Sender<Option<std::time::Instant>>,
    wake: Notify,
    buffer: usize,
    stopped: CancellationToken,
}

struct Hub {
    /// Every event up to here has been handed to the subscribers of its show.
    position: Position,
    subscribers: HashMap<ShowId, Vec<mpsc::Sender<Arc<SeatEvent>>>>,
    /// The last event handed to each show's subscribers (shows with subscribers only).
    last: HashMap<ShowId, Position>,
}

impl Feed {
    /// Starts following from the newest event: a pump task, and a LISTEN task when
    /// `options.listen` is set. Both stop when `cancel` fires; subscriptions then end.
    /// The pump reads at once when an operation of `engine` committed a change, and
    /// the notifier tells the other processes.
    pub async fn start(
        engine: &Engine,
        pool: Pool,
        options: FeedOptions,
        cancel: CancellationToken,
    ) -> Result<Feed> {
        let position = {
            let client = crate::database::client(&pool).await?;
            head(&client).await?
        };
        let feed = Feed {
            inner: Arc::new(Inner {
                pool,
                hub: Mutex::new(Hub {
                    position,
                    subscribers: HashMap::new(),
                    last: HashMap::new(),
                }),
                caught_up: tokio::sync::watch::channel(None).0,
                wake: Notify::new(),
                buffer: options.subscriber_buffer.max(1),
                stopped: cancel.clone(),
            }),
        };
        if let Some(listener) = &options.listen {
            let mut follower = listener.follow();
            let (feed, cancel) = (feed.clone(), cancel.clone());
            tokio::spawn(async move {
                loop {
                    let w = tokio::select! {
                        _ = cancel.cancelled() => return,
                        w = follower.next() => match w { Some(w) => w, None => return },
                    };
                    match w {
                        Wakeup::Notification { channel, .. } if channel != EVENTS_CHANNEL => {}
                        // A new event, or a reconnect (read at once: nothing is lost,
                        // the pump reads from its own position, but why wait).
                        _ => feed.inner.wake.notify_one(),
                    }
                }
            });
        }
        if options.notify_others {
            tokio::spawn(notifier(
                feed.inner.pool.clone(),
                engine.changes(),
                cancel.clone(),
            ));
        }
        tokio::spawn(feed.clone().pump(engine.changes(), options.poll, cancel));
        Ok(feed)
    }

    /// The position up to which events have been handed out.
    pub fn position(&self) -> Position {
        self.inner
            .hub
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .position
    }

    /// The last event of `show` handed to its subscribers, if it has any.
    pub fn last_dispatched(&self, show: ShowId) -> Option<Position> {
        let hub = self.inner.hub.lock().unwrap_or_else(|p| p.into_inner());
        hub.last.get(&show).copied()
    }

    /// Waits (at most `wait`) until every event committed before `t` has been handed
    /// to the subscribers: until a read of the feed that began after `t` left no
    /// committed event unread. Wakes the pump to make that read now. `false` when that
    /// did not happen in time.
    pub async fn caught_up_after(&self, t: std::time::Instant, wait: Duration) -> bool {
        let mut rx = self.inner.caught_up.subscribe();
        if rx.borrow_and_update().is_some_and(|at| at > t) {
            return true;
        }
        self.inner.wake.notify_one();
        tokio::time::timeout(wait, async {
            loop {
                if rx.changed().await.is_err() {
                    return false;
                }
                if rx.borrow_and_update().is_some_and(|at| at > t) {
                    return true;
                }
                // A read that began before `t`: ask for another.
                self.inner.wake.notify_one();
            }
        })
        .await
        .unwrap_or(false)
    }

    /// Follows `show` from after `since` (`None`: from now on). Events between `since`
    /// and now are read from the database first, then live ones follow, with no gap and
    /// no repeat.
    pub async fn subscribe(&self, show: ShowId, since: Option<Position>) -> Result<Subscription> {
        let (tx, rx) = mpsc::channel(self.inner.buffer);
        // Register and note the position under one lock: every event after it reaches
        // the channel, every event up to it is in the database below the watermark.
        let now = {
            let mut hub = self.inner.hub.lock().unwrap_or_else(|p| p.into_inner());
            hub.subscribers.entry(show).or_default().push(tx);
            hub.position
        };
        let mut backlog = VecDeque::new();
        if let Some(since) = since {
            if since < now {
                let client = crate::database::client(&self.inner.pool).await?;
                let mut after = since;
                loop {
                    let page = read(&client, Some(show), after, Some(now), 1000).await?;
                    let full = page.len() == 1000;
                    if let Some(last) = page.last() {
                        after = last.position;
                    }
                    backlog.extend(page.into_iter().map(Arc::new));
                    if !full {
                        break;
                    }
                }
            }
        }
        Ok(Subscription {
            backlog,
            live: rx,
            after: since.unwrap_or(now).max(Position::START),
            stopped: self.inner.stopped.clone(),
        })
    }

    async fn pump(
        self,
        mut local: tokio::sync::watch::Receiver<u64>,
        poll: Duration,
        cancel: CancellationToken,
    ) {
        let mut failing = false;
        let mut last_read: Option<tokio::time::Instant> = None;
        let mut by_local = false;
        loop {
            // This process's own changes are read at most every LOCAL_GATHER: under
            // load one read takes many writes' events, instead of two statements per
            // write (measured: ~0.7 reads per hold at c=32 without it).
            if by_local {
                if let Some(t) = last_read {
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep_until(t + LOCAL_GATHER) => {}
                    }
                }
            }
            // Before reading: a change signalled from now on is read by a later round
            // (one signalled during this read may have committed too late for it).
            local.borrow_and_update();
            last_read = Some(tokio::time::Instant::now());
            // Committed events that an older transaction still holds back (below the
            // watermark only once it ends, which notifies nobody) are looked for again
            // soon rather than at the next tick.
            let wait = match self.drain().await {
                Ok(pending) => {
                    failing = false;
                    if pending {
                        PENDING_RETRY.min(poll)
                    } else {
                        poll
                    }
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "reading the change feed failed; retrying");
                    }
                    failing = true;
                    poll.max(Duration::from_millis(500))
                }
            };
            by_local = tokio::select! {
                _ = cancel.cancelled() => break,
                _ = self.inner.wake.notified() => false,
                _ = local.changed() => true,
                _ = tokio::time::sleep(wait) => false,
            };
        }
        // Ending every subscription tells SSE streams to close.
        self.inner
            .hub
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .subscribers
            .clear();
    }

    /// Reads and hands out everything readable after our position; tells whether
    /// committed events remain that the watermark still holds back.
    async fn drain(&self) -> Result<bool> {
        let client = crate::database::client(&self.inner.pool).await?;
        loop {
            let after = self.position();
            let page = read(&client, None, after, None, 1000).await?;
            let full = page.len() == 1000;
            for event in page {
                self.dispatch(event);
            }
            if !full {
                let after = self.position();
                // Every event committed before this statement's snapshot is either
                // read already or counted here.
                let asked = std::time::Instant::now();
                let pending: bool = client
                    .cq_one(
                        // Not `EXISTS`: the planner drops an EXISTS subquery's ORDER BY and
                        // LIMIT and, expecting a third of the table to match, scanned all
                        // of it (1.7 ms with 12,000 events; the pump runs this after every
                        // read). In index order it stops at the first newer event (0.08 ms).
                        "SELECT (SELECT 1 FROM seat_events WHERE (xid, id) > ($1::text::xid8, $2)
                                  ORDER BY xid, id LIMIT 1) IS NOT NULL",
                        &[&after.xid.to_string(), &after.id],
                    )
                    .await?
                    .get(0);
                if !pending {
                    self.inner.caught_up.send_replace(Some(asked));
                }
                return Ok(pending);
            }
        }
    }

    fn dispatch(&self, event: SeatEvent) {
        let mut hub = self.inner.hub.lock().unwrap_or_else(|p| p.into_inner());
        let position = event.position;
        if let Some(subs) = hub.subscribers.get_mut(&event.show_id) {
            let event = Arc::new(event);
            // A full channel means a slow reader: cut it off rather than wait for it.
            subs.retain(|tx| tx.try_send(event.clone()).is_ok());
            let show = event.show_id;
            if subs.is_empty() {
                hub.subscribers.remove(&show);
                hub.last.remove(&show);
            } else {
                hub.last.insert(show, position);
            }
        }
        hub.position = position;
    }
}

/// Turns this process's changes into one `pg_notify` every few milliseconds at most,
/// outside any write transaction (see the module docs).
async fn notifier(
    pool: Pool,
    mut local: tokio::sync::watch::Receiver<u64>,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            changed = local.changed() => if changed.is_err() { return },
        }
        tokio::time::sleep(NOTIFY_COALESCE).await;
        local.borrow_and_update();
        let sent = async {
            let client = crate::database::client(&pool).await?;
            client
                .cexec("SELECT pg_notify($1, '')", &[&EVENTS_CHANNEL])
                .await?;
            Ok::<_, Error>(())
        };
        if let Err(e) = sent.await {
            tracing::debug!(error = %e, "could not notify other processes; they will poll");
        }
    }
}

/// One follower of one show's events.
pub struct Subscription {
    backlog: VecDeque<Arc<SeatEvent>>,
    live: mpsc::Receiver<Arc<SeatEvent>>,
    after: Position,
    stopped: CancellationToken,
}

impl Subscription {
    /// The next event, or `None` when the subscription ended: it fell too far behind
    /// (resume from the last position seen) or the feed stopped.
    pub async fn next(&mut self) -> Option<Arc<SeatEvent>> {
        if let Some(e) = self.backlog.pop_front() {
            self.after = e.position;
            return Some(e);
        }
        loop {
            let e = tokio::select! {
                e = self.live.recv() => e?,
                _ = self.stopped.cancelled() => return None,
            };
            // Another process may have told the subscriber of events this one has
            // not handed out yet: skip what it already has.
            if e.position > self.after {
                self.after = e.position;
                return Some(e);
            }
        }
    }

    /// The position of the last event returned (or the starting point).
    pub fn position(&self) -> Position {
        self.after
    }
}
