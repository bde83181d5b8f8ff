//! A PostgreSQL-backed [Oban](https://github.com/oban-bg/oban) node in Rust.
//!
//! `oban-core` reads and writes the same `oban_jobs` table as Elixir Oban 2.23 and oban-py 0.7
//! (schema version 14), and speaks their LISTEN/NOTIFY protocol, so a Rust process can enqueue
//! jobs for Elixir or Python workers and run jobs that they enqueue.
//!
//! The modules follow the life of a job:
//! [`insert`] writes it, [`producer`] claims it for a queue, [`executor`] runs it through a
//! [`worker::Worker`], and [`ack`] records the outcome. [`notifier`] carries wake-ups and
//! [`signal`]s between nodes; [`leader`] elects the node that runs the maintenance loops
//! ([`stager`], [`lifeline`], [`pruner`]). [`node`] wires them together.

pub mod error;
pub mod prefix;
pub mod schema;
#[cfg(feature = "temp-postgres")]
pub mod temp_postgres;

pub use error::{Error, Result};
pub use prefix::Prefix;
