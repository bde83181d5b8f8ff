//! oban-core's integration tests, one module per concept, in a single test binary: each
//! binary re-compiles and links the same sqlx and tokio code, so one instead of eight saves
//! most of the release build's time. Run one module with
//! `cargo test --release -p oban-core --test integration faults::` (a name filter).
//!
//! The modules share the process: each test uses a database of its own, `faults` scenarios run
//! one at a time on clusters of their own, and `telemetry` and `security` capture the `tracing`
//! events of their own runtimes only ([`support::with_dispatch`]).

// Tests build statements from their own literals; clippy.toml's list guards product code.
#![allow(clippy::disallowed_methods)]

mod cron;
mod dashboard;
mod drain;
mod examples;
mod faults;
mod insert;
mod job_api;
mod node;
mod pooler;
mod schema;
mod security;
mod sql_audit;
mod support;
mod telemetry;
mod testing;
mod unique;
mod worker;
