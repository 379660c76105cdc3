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
//! transactions older than every transaction still running in this database (the
//! watermark, `WATERMARK` of `sql.rs`: the snapshot's `xmin` less the transactions of
//! other databases, which cannot write these events). Such a transaction has finished:
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
//!
//! # Files
//!
//! - `event.rs`: what an event is ([`SeatEvent`], [`SeatChange`], [`AreaChange`], [`Cause`],
//!   [`Position`], [`TxSnapshot`]) and how it is read from its row.
//! - `sql.rs`: writing events (`EventsSql`, the one insert into `seat_events`) and the
//!   queries that read them ([`read`], [`head`], [`prune`]).
//! - `nodes.rs`: the reads on a Citus formation, per node ([`read_after`]).
//! - `cursor.rs`: where a reader of the whole feed stands, per node ([`Cursor`]).
//! - `map_position.rs`: where a seat map stands in the feed ([`MapPosition`]), so that
//!   a client reading the map follows on from exactly there.
//! - `follow.rs`: the per-process pump and its subscribers ([`Feed`], [`FeedOptions`],
//!   [`Subscription`]).
//! - `notify.rs`: one `pg_notify` on [`EVENTS_CHANNEL`] for this process's changes;
//!   `listen.rs`: the LISTEN connection that hears the other processes' ([`Listener`],
//!   [`Follower`], [`Wakeup`]).

mod cursor;
mod event;
mod follow;
mod links;
mod listen;
mod map_position;
mod nodes;
mod notify;
mod sql;

pub use cursor::Cursor;
pub use event::{AreaChange, Cause, Position, SeatChange, SeatEvent, TxSnapshot};
pub use follow::{Feed, FeedOptions, Subscription};
pub(crate) use links::NodeLinks;
pub use listen::{Follower, Listener, Wakeup};
pub use map_position::MapPosition;
pub use nodes::read_after;
pub(crate) use nodes::{head_nodes, watermarks};
pub use notify::EVENTS_CHANNEL;
pub use sql::{head, horizon, prune, read, read_for};
pub(crate) use sql::{written_event, EventsSql, Subject, EVENT_COLUMNS};
