//! booking-server's integration tests, one binary: each starts the server (in process
//! on port 0, or the real binary) against a fresh database of its own on DATABASE_URL's
//! server and talks real HTTP to it; every answer is checked against openapi.json
//! (`common/contract.rs`).

// A test that unwraps fails loudly at the line that broke, which is what a test is for;
// the server's own code never unwraps (`[workspace.lints]`).
#![allow(clippy::unwrap_used)]

mod api;
mod areas;
mod auth;
mod bad_input;
mod cart;
mod common;
mod events;
// The core's test databases on a Citus formation, one source for both crates' tests.
#[path = "../../../booking-core/tests/it/formation.rs"]
mod formation;
mod idempotency;
mod inventory;
mod keyed_batches;
mod lifecycle;
mod limits;
mod map_encoding;
mod map_follow;
mod pages;
mod parsing;
mod process;
mod queue;
mod references;
mod reports;
mod seat_cache;
mod shutdown;
mod webhooks;
