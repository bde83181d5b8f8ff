//! badge-forge's integration tests, one module per concept, in a single test binary: each
//! binary re-compiles and links the same sqlx, tokio and rendering code, so one instead of
//! eleven saves most of the release build's time. Run one module with
//! `cargo test --release -p badge-forge --test integration e2e_elixir::` (a name filter).
//!
//! The modules share the process: each test uses a database and an output directory of its
//! own, and the tests that drive several runtimes or measure throughput take
//! [`support::ONE_AT_A_TIME`], so that only one of them runs at a time across all modules.

// Tests build statements from their own literals; clippy.toml's list guards product code.
#![allow(clippy::disallowed_methods)]

mod cli;
mod deploy_pgbouncer;
mod deploy_prefix;
mod deploy_python;
mod deploy_rolling;
mod e2e_elixir;
mod http;
mod layouts;
mod pdf_readback;
mod personal_data;
mod print_runs;
mod render;
mod render_rtl;
mod security;
mod sheets;
mod soak;
mod support;
mod worker;
