//! A PostgreSQL-backed [Oban](https://github.com/oban-bg/oban) node in Rust.
//!
//! `oban-core` reads and writes the same `oban_jobs` table as Elixir Oban 2.23 and oban-py 0.7
//! (schema version 14), and speaks their LISTEN/NOTIFY protocol, so a Rust process can enqueue
//! jobs for Elixir or Python workers and run jobs that they enqueue, on the same database.
//!
//! The modules follow the life of a job: [`insert`] writes it; a [`producer`] claims it for its
//! queue; `executor` runs it through a [`worker::Worker`]; `ack` records the outcome. The
//! [`notifier`] carries wake-ups and [`signal`]s between nodes; `leader` elects the node that
//! runs the maintenance loops (`stager`, `lifeline`, `pruner`) and the [`cron`] scheduler
//! (`liveness` tells the lifeline which producers are alive); [`node`] wires them together,
//! and [`client`] enqueues (with [`unique`] jobs), signals and manages jobs ([`jobs`], and
//! [`drain`] for tests) without running queues; `testing` (cargo feature `testing`) helps an
//! application's tests as `Oban.Testing` does. [`gossip`] and [`met`] publish
//! the queue status and job metrics that Oban Web shows. Every statement lives in `src/sql/`
//! with a comment saying what it guarantees.
//!
//! ```no_run
//! use oban_core::config::{Config, QueueConfig};
//! use oban_core::job::Job;
//! use oban_core::node::Node;
//! use oban_core::worker::{Outcome, WorkResult, Worker};
//!
//! struct Echo;
//!
//! impl Worker for Echo {
//!     const NAME: &'static str = "MyApp.Echo";
//!     // The args as they are; a struct deriving `Deserialize` makes the worker typed.
//!     type Args = serde_json::Value;
//!
//!     async fn process(&self, args: serde_json::Value, _job: &Job) -> WorkResult {
//!         println!("{args}");
//!         Ok(Outcome::complete())
//!     }
//! }
//!
//! # async fn run() -> oban_core::Result<()> {
//! let pool = sqlx::PgPool::connect("postgres://localhost/app").await?;
//! let config = Config { queues: vec![QueueConfig::new("default", 10)], ..Config::default() };
//! let node = Node::builder(pool).config(config).worker(Echo)?.start().await?;
//! node.client().insert(&Echo::new_job(&serde_json::json!({"hello": "world"}))?).await?;
//! node.shutdown().await;
//! # Ok(()) }
//! ```

mod ack;
pub mod backoff;
pub mod client;
pub mod config;
pub mod cron;
pub mod db;
pub mod drain;
pub mod error;
mod executor;
pub mod gossip;
pub mod insert;
pub mod job;
pub mod jobs;
mod leader;
mod lifeline;
mod liveness;
pub mod met;
pub mod node;
pub mod notifier;
pub mod prefix;
pub mod producer;
mod pruner;
mod queues;
pub mod schema;
pub mod signal;
pub mod sketch;
mod stager;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod unique;
pub mod worker;

pub use client::Client;
pub use db::Db;
pub use error::{Error, Result};
pub use prefix::Prefix;
