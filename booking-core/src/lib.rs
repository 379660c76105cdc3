//! Seat holds and bookings for shows, with PostgreSQL as the only source of truth.
//!
//! Many people race for the same seats; each seat ends in at most one active hold or
//! live booking, every request gets a prompt answer, and nothing acknowledged is lost.
//! The invariants and the reasoning behind them are in `DESIGN.md` of the repository;
//! the module docs of [`holds`] and [`bookings`] say how each operation keeps them.
//!
//! # Layout
//!
//! One file per module (`src/{module}.rs`), with the files of a split module in
//! `src/{module}/`:
//! - [`domain`] (`domain/mod.rs`): newtypes that parse untrusted input once and the
//!   state enums ([`SeatState`], [`HoldStatus`], [`BookingStatus`]): `ids.rs`
//!   ([`ShowId`], [`HoldId`], [`BookingId`]), `seat_label.rs` ([`RowLabel`],
//!   [`SeatLabel`], [`SeatSelection`]), `user_id.rs` ([`UserId`], [`Actor`]),
//!   `hold_ttl.rs` ([`HoldTtl`]), `seat_count.rs` ([`SeatCount`]), `version.rs`
//!   ([`Version`]), `names.rs` ([`Category`], [`Feature`], [`TicketTypeName`],
//!   [`Currency`]), `layout.rs` (rows: [`Layout`], [`RowSpec`], [`ShowLayout`]),
//!   `pricing.rs` ([`Pricing`], [`TicketType`]), `new_show.rs` ([`NewShow`]),
//!   `area.rs` ([`AreaCode`], [`AreaSpec`], [`AreaWant`]), `reference.rs` (an
//!   integrator's [`Reference`]: [`ExternalRef`], [`Metadata`]); ids of
//!   venues and blocks ([`VenueId`], [`BlockId`]) and sections ([`Section`]) too.
//! - [`engine`]: the [`Engine`] handle every operation takes: [`Settings`] and what one
//!   process shares in memory (the local-change signal, the sweeper's hint, best
//!   available's layouts and claims, the background tasks it started), created once
//!   and passed explicitly.
//! - [`database`]: connection pool ([`PoolOptions`]), migrations (embedded from the
//!   workspace's `migrations/`), [`Settings`].
//! - [`shows`]: create a show from rows of seats (or a venue's); read and list shows
//!   with seat counts. Its lifecycle: whether it sells now (`shows/sale.rs`: the sales
//!   window and the cancellation, checked by every path that takes seats), changes
//!   (`shows/update.rs`: [`shows::update`]) and cancellation (`shows/cancel.rs`:
//!   [`shows::cancel`]).
//! - [`venues`]: saved layouts that shows copy when they are created.
//! - [`areas`]: standing areas (places sold by quantity, one row each) and their counts;
//!   holds claim places in `holds/places.rs`.
//! - [`blocks`]: seats taken off sale (and put back), with the hold's locking steps.
//! - [`tickets`]: ticket types and what each held seat is sold as, at what price.
//! - [`seats`]: the seat map, and the SQL that defines "held" and a seat's version.
//! - [`holds`]: hold seats all-or-none (`holds/take.rs`: [`holds::hold`];
//!   `holds/pooled.rs`: [`holds::hold_pooled`], one round trip on a pooled connection
//!   when nobody else touches the seats), read (`holds.rs`), extend and release
//!   (`holds/lifecycle.rs`), with the snapshot read of `holds/snapshot.rs`, the
//!   hold-then-seats locking of `holds/lock.rs`, the limit per buyer of
//!   `holds/limit.rs` and the places of standing areas of `holds/places.rs`; new ticket types for a hold's seats (`holds/retype.rs`,
//!   [`holds::change_tickets`]); seats and places added to and removed from a live
//!   hold (`holds/cart.rs`: [`holds::add`], [`holds::remove`]).
//!   [`holds::batch`] (`holds/batch.rs`): the holds of many callers written by one
//!   statement (`Batcher`, `hold_all`), each still all-or-none with its own answer;
//!   holds of places only by a statement of their own (`holds/place_batch.rs`, run by
//!   `holds/batch/places.rs`), adds of seats to live holds by another
//!   (`holds/add_batch.rs`, run by `holds/batch/adds.rs`: `Batcher::add`, `add_all`),
//!   all from one queue (`holds/batch/queue.rs`), which refuses from memory a herd on
//!   seats a snapshot showed taken while it waited (`holds/batch/taken.rs`). What a
//!   request must say of itself:
//!   `holds/checks.rs`.
//! - [`best`]: best available: rank the free groups of `count` seats (`best/rank.rs`,
//!   [`best::rank`], pure: rows from two thirds back, centre of the row, aisles, no
//!   stranded single seat) of the house read by `best/house.rs`, and hold the best one
//!   that nobody else is taking (`best/attempt.rs`, with `FOR UPDATE SKIP LOCKED`:
//!   concurrent callers skip each other, nobody waits), all run by [`best::hold_best`].
//! - [`bookings`]: confirm a hold into a booking (idempotent; late, for an expired hold
//!   whose seats nobody took: [`bookings::confirm_late`]), read, list; cancel whole or
//!   in part (`bookings/cancel.rs`: [`bookings::cancel_part`]), exchange seats
//!   (`bookings/exchange.rs`: [`bookings::exchange`]).
//! - [`sweeper`]: expire lapsed holds (`sweep_once`) and the deadline-driven `run` loop,
//!   which also prunes old idempotency keys and feed events.
//! - [`idempotency`]: store a request's answer with its work, under its caller and show;
//!   replay it to retries.
//! - [`feed`]: the change feed: what an event is (`feed/event.rs`), events written with
//!   each change and read below a transaction watermark (`feed/sql.rs`), followed by one
//!   pump per process and fanned out per show (`feed/follow.rs`); the process's one
//!   LISTEN connection outside the pool ([`Listener`], `feed/listen.rs`) and its
//!   notifier (`feed/notify.rs`) wake the pumps of the other processes.
//! - [`queue`]: a show's waiting room: joining, where a buyer is ([`queue::status`]),
//!   the pre-queue's shuffle and the admitting passes every process runs
//!   (`queue/admit.rs`: [`queue::admit::admit_once`], [`queue::admit::run`]), and the
//!   admission and allowance every taking of a queued show checks (`queue/allowance.rs`).
//! - [`error`]: the one [`Error`] enum.
//! - [`pages`]: pages of lists by keyset: their size ([`Limit`]), the opaque cursor
//!   where the next one starts ([`Cursor`]), a page ([`Page`]).
//! - [`queries`]: a show's holds and bookings, a user's bookings and the shows (by
//!   start, without live counts: [`ShowListing`]), filtered, in pages, each served by
//!   an index of `migrations/V10__query_indexes.sql`.
//! - [`reports`]: a show's report ([`reports::show_report`]): counts and revenue by
//!   category, ticket type and area, cancellations and exchanges, in one snapshot.
//! - [`webhooks`]: endpoints ([`webhooks::create`], `webhooks.rs`) that get the feed's
//!   events pushed, signed the Standard Webhooks way (`webhooks/sign.rs`), URLs checked
//!   by `webhooks/url.rs`; events routed into per-endpoint deliveries
//!   (`webhooks/route.rs`), delivered in order per show with leases, timeouts and
//!   backed-off retries (`webhooks/deliver.rs`) by one worker per process
//!   ([`webhooks::worker::run`], `webhooks/worker.rs`).
//!
//! # Running operations
//!
//! Every operation takes a `deadpool_postgres` client or transaction
//! ([`deadpool_postgres::GenericClient`]). On a pooled client it runs in a transaction
//! of its own; inside the caller's transaction it runs as a savepoint, so an embedding
//! service can, say, confirm a booking together with its own payment record, and roll
//! both back.
//!
//! ```no_run
//! use booking_core::{database, holds, bookings, shows, Engine, Settings};
//! use booking_core::{HoldRequest, NewShow, RowSpec, RowLabel, SeatSelection, UserId, Currency};
//! use std::collections::BTreeMap;
//!
//! # async fn demo() -> booking_core::Result<()> {
//! let pool = database::pool(database::parse_url("postgres://localhost/booking")?, &Default::default())?;
//! database::migrate_pool(&pool).await?;
//! let engine = Engine::new(Settings::default()); // once, shared by every operation
//! let mut client = database::client(&pool).await?;
//!
//! let row = RowSpec::new(RowLabel::parse("A")?, 12, &[4, 8], None)?;
//! let new = NewShow::new("Inception", chrono::Utc::now(), Currency::eur(), BTreeMap::new(), vec![row])?;
//! let show = shows::create_show(&mut client, &new).await?;
//!
//! let user = UserId::parse("u-17")?;
//! let hold = holds::hold(&mut client, &engine, &HoldRequest {
//!     show: show.id,
//!     user: user.clone(),
//!     seats: SeatSelection::parse(["A1", "A2"], engine.settings().max_seats_per_hold)?,
//!     ttl: None,
//!     if_versions: vec![],
//!     ticket_types: vec![],
//!     areas: vec![],
//!     reference: Default::default(),
//! }).await?;
//!
//! // Confirm inside our own transaction, next to a row of our own.
//! let mut tx = client.transaction().await?;
//! let confirmed = bookings::confirm(&mut tx, &engine, &user, hold.hold_id).await?;
//! tx.execute("SELECT 1", &[]).await?; // e.g. INSERT INTO payments ...
//! tx.commit().await?;
//! assert!(confirmed.created);
//! # Ok(()) }
//! ```
//!
//! A runnable version is `booking-core/examples/embed.rs`.

pub mod areas;
pub mod best;
pub mod blocks;
pub mod bookings;
pub mod database;
pub mod domain;
pub mod engine;
pub mod error;
pub mod feed;
pub mod holds;
pub mod idempotency;
pub mod pages;
pub mod queries;
pub mod queue;
pub mod rank;
pub mod reports;
pub mod seats;
pub mod shows;
pub mod sweeper;
pub mod tickets;
pub mod venues;
pub mod webhooks;

pub use areas::Area;
pub use best::{BestHold, BestRequest};
pub use blocks::Block;
pub use bookings::{Booking, CancelPart, Cancellation, Confirmation, Exchange, Exchanged};
pub use database::{PoolOptions, Settings};
pub use domain::QueueSettings;
pub use domain::SalesWindow;
pub use domain::{
    Actor, AreaCode, AreaSpec, AreaWant, BlockId, BookingId, BookingStatus, Category, Currency,
    ExternalRef, Feature, HoldId, HoldStatus, HoldTtl, Layout, Metadata, NewShow, Pricing,
    Reference, RowLabel, RowSpec, SeatCount, SeatLabel, SeatSelection, SeatState, Section, ShowId,
    ShowLayout, TicketType, TicketTypeName, UserId, VenueId, Version,
};
pub use engine::Engine;
pub use error::{Error, Result};
pub use feed::{AreaChange, Feed, Listener, MapPosition, Position, SeatEvent, Subscription};
pub use holds::{Hold, HoldAddition, HoldRequest};
pub use pages::{Cursor, Limit, Page};
pub use queries::{BookingQuery, HoldQuery, ShowListing, ShowQuery};
pub use seats::{Seat, SeatMap};
pub use shows::Show;
pub use shows::{ShowCancellation, ShowChanges, ShowStatus};
pub use sweeper::SweepOutcome;
pub use tickets::Ticket;
pub use venues::{NewVenue, Venue};

/// Re-exported so that embedding services name the same versions.
pub use deadpool_postgres;
pub use tokio_postgres;
pub use tokio_util::sync::CancellationToken;
