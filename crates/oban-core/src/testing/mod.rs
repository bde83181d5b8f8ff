//! Helpers for the tests of applications that use oban-core (cargo feature `testing`), as
//! Elixir's `Oban.Testing` and oban-py's `oban.testing` offer them.
//!
//! ```toml
//! [dev-dependencies]
//! oban-core = { version = "*", features = ["testing"] }
//! ```
//!
//! - [`perform_job`] runs one job through a worker in memory, without a node and without a row,
//!   and says what a node would have recorded: completed (with the jobs it inserts),
//!   retryable with its error and backoff, discarded, cancelled or snoozed.
//! - [`assert_enqueued`], [`refute_enqueued`] and [`all_enqueued`] look at the jobs waiting to
//!   run, named by a [`JobFilter`] (worker, queue, args containment, tags...).
//! - [`Client::drain_queue`] runs a queue's real rows to the end in the test's task, through
//!   the same claim, execution and ack as a node (this module adds nothing to it).
//! - [`eventually`] and [`poll_until`] wait for what another task, process or node does,
//!   looking again every 50 ms until a deadline.
//! - [`assert_no_secret`] fails a test when a password shows up in logs, errors or output.
//! - [`TempPostgres`] and [`fresh_database`] give a test a throwaway PostgreSQL server and a
//!   database of its own; [`TempPgBouncer`] puts PgBouncer in front of it. They are test support,
//!   never a place for data that matters (the cluster runs without fsync).
//!
//! # Design
//!
//! `perform_job` goes through the same object-safe worker layer and the same code as a node's
//! executions (time limit, panic catching, the mapping of a result to a state and error entry),
//! so a panic, a timeout or args the worker cannot decode end exactly as they would on a node;
//! what it leaves out is the database: nothing is claimed or acked, and the follow-up jobs of a
//! completion come back in [`Performed::then_insert`] instead of being inserted. The job is
//! checked first as an insert would check it ([`NewJob::validate`], which also refuses what
//! PostgreSQL's `jsonb` cannot store), so a test cannot pass on a job that could never be
//! enqueued.
//!
//! "Enqueued" means what it means to Oban: `available` or `scheduled`. The assertions take a
//! [`Client`] (its pool and prefix), reuse the job API's [`JobFilter`] rather than a second
//! filter, and panic like `assert!`, with a message that lists what *was* enqueued for the
//! filter's workers and queues, so a failing test explains itself. Each has a `_within` form that
//! keeps looking for a while, as Oban's `:timeout` does, for jobs inserted by another task.
//!
//! ```no_run
//! use oban_core::Client;
//! use oban_core::job::{Job, JobState};
//! use oban_core::jobs::JobFilter;
//! use oban_core::testing::{assert_enqueued, perform_job};
//! use oban_core::worker::{Outcome, WorkResult, Worker};
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Signup {
//!     user: i64,
//! }
//!
//! struct Welcome;
//!
//! impl Worker for Welcome {
//!     const NAME: &'static str = "MyApp.Welcome";
//!     type Args = Signup;
//!     async fn process(&self, args: Signup, _job: &Job) -> WorkResult {
//!         let mail = Mail::new_job(&serde_json::json!({"to": args.user}))?;
//!         Ok(Outcome::complete_and_insert(vec![mail]))
//!     }
//! }
//! # struct Mail;
//! # impl Worker for Mail {
//! #     const NAME: &'static str = "MyApp.Mail";
//! #     type Args = serde_json::Value;
//! #     async fn process(&self, _: serde_json::Value, _: &Job) -> WorkResult { Ok(Outcome::complete()) }
//! # }
//!
//! # async fn test(client: Client) -> oban_core::Result<()> {
//! let performed = perform_job(&Welcome, &Welcome::new_job(&Signup { user: 7 })?).await;
//! assert_eq!(performed.state, JobState::Completed);
//! assert_eq!(performed.then_insert[0].worker_name(), "MyApp.Mail");
//!
//! // After the code under test enqueued a Welcome for user 7:
//! let job = assert_enqueued(&client, &JobFilter::all().worker("MyApp.Welcome")
//!     .args_contain(&serde_json::json!({"user": 7}))?).await;
//! # Ok(()) }
//! ```

mod enqueued;
mod perform;
mod poll;
mod secrets;
mod temp_pgbouncer;
mod temp_postgres;

pub use enqueued::{
    all_enqueued, assert_enqueued, assert_enqueued_within, refute_enqueued, refute_enqueued_within,
};
pub use perform::{Performed, perform_attempt, perform_job};
pub use poll::{eventually, poll_until};
pub use secrets::assert_no_secret;
pub use temp_pgbouncer::TempPgBouncer;
pub use temp_postgres::{
    StopMode, TempPostgres, TempPostgresBuilder, TestCertificates, fresh_database,
};

#[cfg(doc)]
use crate::{Client, insert::NewJob, jobs::JobFilter};
