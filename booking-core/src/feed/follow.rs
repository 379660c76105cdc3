//! Following the feed: one pump per process reads new events and fans them out to
//! per-show subscribers.

use super::links::NodeLinks;
use super::listen::{Listener, Wakeup};
use super::nodes::{head_nodes, read_nodes_ahead, read_show_until, show_placement, watermarks};
use super::notify::{notifier, EVENTS_CHANNEL};
use super::{head, read_for, Cursor, MapPosition, Position, SeatEvent};
use crate::database::Cached;
use crate::domain::ShowId;
use crate::engine::Engine;
use crate::error::Result;
use deadpool_postgres::Pool;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

/// The least time between two reads of the feed prompted by this process's own changes.
const LOCAL_GATHER: Duration = Duration::from_millis(3);

/// How soon to look again for events held back by the watermark.
const PENDING_RETRY: Duration = Duration::from_millis(20);

/// How the pump of [`Feed::start`] behaves.
#[derive(Clone)]
pub struct FeedOptions {
    /// The process's LISTEN connection, to read as soon as events are written.
    /// `None`: poll only.
    pub listen: Option<Listener>,
    /// Read even without a notification this often: the watermark also moves when a
    /// transaction without events ends.
    pub poll: Duration,
    /// Events a subscriber may have unread before it is cut off.
    pub subscriber_buffer: usize,
    /// Send one NOTIFY for the changes this process makes, so that the feeds of other
    /// processes read them at once rather than at their next poll.
    pub notify_others: bool,
    /// On a Citus formation: the coordinator's connection settings, with which the pump
    /// keeps a connection of its own to each node to read that node's watermark
    /// (`feed/links.rs`). `None`: Citus's `run_command_on_all_nodes`, which connects to
    /// every node anew each round (correct, but some 100 ms a round). Unused on plain
    /// PostgreSQL.
    pub nodes: Option<tokio_postgres::Config>,
}

impl Default for FeedOptions {
    fn default() -> Self {
        FeedOptions {
            listen: None,
            poll: Duration::from_millis(100),
            subscriber_buffer: 1024,
            notify_others: true,
            nodes: None,
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
    /// A caller waits to be caught up ([`Feed::caught_up_after`]).
    wake: Notify,
    /// A notification came (another process's change, or a reconnect).
    notified: Notify,
    buffer: usize,
    stopped: CancellationToken,
    /// The engine's settings: which watermark the reads use ([`read_for`]).
    settings: crate::Settings,
    /// The pump's connections to each node of a formation ([`FeedOptions::nodes`]).
    links: tokio::sync::Mutex<Option<NodeLinks>>,
    /// On a formation: the watermarks of the pump's last read that reached the end,
    /// and whether events remained that they held back (see [`Feed::drain_nodes`]).
    last_marks: Mutex<Option<Marks>>,
}

/// The nodes a read reached, their watermarks, and whether it found events held back.
type Marks = (Vec<i32>, Vec<String>, bool);

/// What woke the pump for a round.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Woken {
    /// A change this process committed.
    Local,
    /// A notification.
    Notified,
    /// A caller waiting to be caught up.
    Asked,
    /// Its poll or its retry for held-back events.
    Timer,
}

struct Hub {
    /// Every event up to here (on each node) has been handed to the subscribers of its
    /// show.
    position: Cursor,
    subscribers: HashMap<ShowId, Vec<mpsc::Sender<Arc<SeatEvent>>>>,
    /// The last event handed to each show's subscribers (shows with subscribers only).
    last: HashMap<ShowId, Position>,
}

impl Feed {
    /// Starts following from the newest event readable now ([`head`]), with tasks of
    /// `engine`: the pump; when `options.listen` is set, one that wakes the pump on the
    /// listener's notifications; when `options.notify_others`, the notifier. All stop
    /// when `cancel` fires; subscriptions then end. The pump reads at once when an
    /// operation of `engine` committed a change, and the notifier tells the other
    /// processes. Fails only when that first read of the head does.
    pub async fn start(
        engine: &Engine,
        pool: Pool,
        options: FeedOptions,
        cancel: CancellationToken,
    ) -> Result<Feed> {
        let position = {
            let client = crate::database::client(&pool).await?;
            if engine.settings().distributed {
                head_nodes(&client).await?
            } else {
                Cursor::at(head(&client).await?)
            }
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
                notified: Notify::new(),
                buffer: options.subscriber_buffer.max(1),
                stopped: cancel.clone(),
                settings: engine.settings().clone(),
                links: tokio::sync::Mutex::new(options.nodes.clone().map(NodeLinks::new)),
                last_marks: Mutex::new(None),
            }),
        };
        if let Some(listener) = &options.listen {
            let mut follower = listener.follow();
            let (feed, cancel) = (feed.clone(), cancel.clone());
            engine.spawn(async move {
                loop {
                    let w = tokio::select! {
                        _ = cancel.cancelled() => return,
                        w = follower.next() => match w { Some(w) => w, None => return },
                    };
                    match w {
                        Wakeup::Notification { channel, .. } if channel != EVENTS_CHANNEL => {}
                        // A new event, or a reconnect (read at once: nothing is lost,
                        // the pump reads from its own position, but why wait).
                        _ => feed.inner.notified.notify_one(),
                    }
                }
            });
        }
        if options.notify_others {
            engine.spawn(notifier(
                feed.inner.pool.clone(),
                engine.changes(),
                cancel.clone(),
            ));
        }
        engine.spawn(feed.clone().pump(engine.changes(), options.poll, cancel));
        Ok(feed)
    }

    /// Where the events handed out so far end, on each node.
    pub fn position(&self) -> Cursor {
        self.inner.hub.lock().position.clone()
    }

    /// The last event of `show` handed to its subscribers, if it has any.
    pub fn last_dispatched(&self, show: ShowId) -> Option<Position> {
        let hub = self.inner.hub.lock();
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
    /// no repeat. [`Error::PositionExpired`](crate::Error::PositionExpired) when `since`
    /// is older than the retained feed ([`super::horizon`]).
    pub async fn subscribe(&self, show: ShowId, since: Option<Position>) -> Result<Subscription> {
        match since {
            Some(p) => self.subscribe_from(show, &MapPosition::at(p)).await,
            None => self.subscribe_at(show, None).await,
        }
    }

    /// Follows `show` from a seat map's position: exactly the events the map does not
    /// reflect, in feed order, then live ones. [`Error::PositionExpired`] as
    /// [`Feed::subscribe`].
    ///
    /// [`Error::PositionExpired`]: crate::Error::PositionExpired
    pub async fn subscribe_from(&self, show: ShowId, since: &MapPosition) -> Result<Subscription> {
        let mut sub = self.subscribe_at(show, Some(since.after())).await?;
        sub.reflected = Some(since.clone());
        sub.backlog.retain(|e| !since.includes(e.position));
        Ok(sub)
    }

    async fn subscribe_at(&self, show: ShowId, since: Option<Position>) -> Result<Subscription> {
        let (tx, rx) = mpsc::channel(self.inner.buffer);
        // Register and note the position under one lock: every event after it reaches
        // the channel, every event up to it is in the database below the watermark.
        let now = {
            let mut hub = self.inner.hub.lock();
            hub.subscribers.entry(show).or_default().push(tx);
            hub.position.clone()
        };
        let settings = &self.inner.settings;
        let mut backlog = VecDeque::new();
        if let Some(since) = since {
            // On a formation `now` is a position per node, not one to compare with.
            if settings.distributed || since < now.of(0) {
                let client = crate::database::client(&self.inner.pool).await?;
                let mut after = since;
                loop {
                    let page = read_show_until(&client, settings, show, after, &now, 1000).await?;
                    let full = page.len() == 1000;
                    if let Some(last) = page.last() {
                        after = last.position;
                    }
                    backlog.extend(page.into_iter().map(Arc::new));
                    if !full {
                        break;
                    }
                }
                // After the backlog's read: a prune that deleted some of it committed
                // before, and shows here.
                if super::horizon(&client).await?.expired(since) {
                    return Err(crate::Error::PositionExpired);
                }
            }
        }
        let after = match since {
            Some(since) => since,
            // Where the show stands in `now`: every event of it handed out so far is at
            // or before it, every later one after it.
            None => {
                let client = crate::database::client(&self.inner.pool).await?;
                let (node, epoch) = show_placement(&client, settings, show).await?;
                Position {
                    epoch,
                    ..now.of(node)
                }
            }
        };
        Ok(Subscription {
            backlog,
            live: rx,
            after: after.max(Position::START),
            stopped: self.inner.stopped.clone(),
            reflected: None,
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
        let mut woken = Woken::Asked;
        loop {
            // This process's own changes are read at most every LOCAL_GATHER: under
            // load one read takes many writes' events, instead of two statements per
            // write (measured: ~0.7 reads per hold at c=32 without it).
            if woken == Woken::Local {
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
            let wait = match self.drain(woken != Woken::Asked).await {
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
            woken = tokio::select! {
                _ = cancel.cancelled() => break,
                _ = self.inner.wake.notified() => Woken::Asked,
                _ = self.inner.notified.notified() => Woken::Notified,
                _ = local.changed() => Woken::Local,
                _ = tokio::time::sleep(wait) => Woken::Timer,
            };
        }
        // Ending every subscription tells SSE streams to close.
        self.inner.hub.lock().subscribers.clear();
    }

    /// Reads and hands out everything readable after our position; tells whether
    /// committed events remain that the watermark still holds back. `may_skip`: no
    /// caller waits for this round to be caught up (see [`Feed::drain_nodes`]).
    async fn drain(&self, may_skip: bool) -> Result<bool> {
        let client = crate::database::client(&self.inner.pool).await?;
        if self.inner.settings.distributed {
            return self.drain_nodes(&client, may_skip).await;
        }
        loop {
            let after = self.position().of(0);
            let page = read_for(&client, &self.inner.settings, None, after, None, 1000).await?;
            let full = page.len() == 1000;
            for event in page {
                self.dispatch(event);
            }
            if !full {
                let after = self.position().of(0);
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

    /// [`Feed::drain`] on a formation: every node's events after our position on that
    /// node, below that node's watermark.
    ///
    /// A round whose watermarks are those of the last read that reached the end reads
    /// nothing (`may_skip`): every event below them was read then (a transaction below
    /// a watermark had ended when it was taken, and the read came after), so none can
    /// have become readable, whatever woke the pump (a change that committed while an
    /// older transaction runs is held back by it), and it answers what that read found
    /// held back. On a formation a read asks every shard (32 of them): an idle server
    /// polled them ten times a second (some 350 remote commands a second, measured
    /// with `citus.log_remote_commands`), and a hold cost two reads, one for the
    /// change and one for its notification's echo. The watermarks come over the
    /// pump's own connection to each node, one short statement each. A round that a
    /// caller waits for ([`Feed::caught_up_after`]) reads: it needs a read that began
    /// after its moment and left no committed event unread, which an unchanged
    /// watermark does not tell (a younger transaction may have committed behind an
    /// older one).
    async fn drain_nodes(
        &self,
        client: &deadpool_postgres::Client,
        may_skip: bool,
    ) -> Result<bool> {
        let mut first = true;
        loop {
            let asked = std::time::Instant::now();
            let mut links = self.inner.links.lock().await;
            let (nodes, wms) = watermarks(client, links.as_mut()).await?;
            drop(links);
            if first && may_skip {
                if let Some((n, w, pending)) = &*self.inner.last_marks.lock() {
                    if *n == nodes && *w == wms {
                        return Ok(*pending);
                    }
                }
            }
            first = false;
            let page = read_nodes_ahead(client, &self.position(), &nodes, &wms, 1000).await?;
            let more = page.events.len() == 1000 && !page.held;
            for event in page.events {
                self.dispatch(event);
            }
            if !more {
                if !page.held {
                    self.inner.caught_up.send_replace(Some(asked));
                }
                *self.inner.last_marks.lock() = Some((nodes, wms, page.held));
                return Ok(page.held);
            }
        }
    }

    fn dispatch(&self, event: SeatEvent) {
        let mut hub = self.inner.hub.lock();
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
        hub.position.advance(position);
    }
}

/// One follower of one show's events.
pub struct Subscription {
    backlog: VecDeque<Arc<SeatEvent>>,
    live: mpsc::Receiver<Arc<SeatEvent>>,
    after: Position,
    stopped: CancellationToken,
    /// Events a seat map reflects already ([`Feed::subscribe_from`]): skipped.
    reflected: Option<MapPosition>,
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
                if self
                    .reflected
                    .as_ref()
                    .is_some_and(|m| m.includes(e.position))
                {
                    continue;
                }
                return Some(e);
            }
        }
    }

    /// The position of the last event returned (or the starting point).
    pub fn position(&self) -> Position {
        self.after
    }
}
