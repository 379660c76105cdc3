//! booking-core's integration tests, one binary: every test against a real PostgreSQL
//! (a fresh database of its own on DATABASE_URL's server, see `common`).

// A test that unwraps fails loudly at the line that broke, which is what a test is for;
// the library's own code never unwraps (`[workspace.lints]`).
#![allow(clippy::unwrap_used)]

mod add_batch;
mod area_batch;
mod areas;
mod batch;
mod best;
mod bookings;
mod cart;
mod changes;
mod common;
mod engine;
mod expiry;
mod expiry_by_show;
mod feed;
mod feed_prepared;
mod feed_watermark;
mod feed_xids;
mod formation;
mod idempotency;
mod inventory;
mod late;
mod lifecycle;
mod lifecycle_race;
mod lock_timeouts;
mod node_functions;
mod parsing;
mod queries;
mod queue;
mod races;
mod references;
mod reports;
mod retype;
mod shard_move;
mod ttl;
mod worker_connections;
