//! Workers: the code that runs a job, registered under the worker name string of its rows.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::insert::NewJob;
use crate::job::Job;
use crate::{Error, Result};

/// An error returned by a worker: recorded in the job's `errors` and retried with backoff
/// (or discarded once attempts are exhausted).
pub type WorkError = Box<dyn std::error::Error + Send + Sync>;

/// What [`Worker::process`] returns.
pub type WorkResult = std::result::Result<Outcome, WorkError>;

/// How a job ended, besides failing with a [`WorkError`].
#[derive(Debug)]
pub enum Outcome {
    /// Finished. The jobs listed are inserted in the same statement that records the
    /// completion, so they exist exactly when the completion was recorded: none when the node
    /// dies before the ack, no second copy when a rescued attempt runs again.
    Complete {
        /// Follow-up jobs to insert atomically with the completion.
        then_insert: Vec<NewJob>,
    },
    /// Failed for good: state `discarded` with this reason as the error entry, whatever
    /// attempts are left. For input that can never succeed.
    Discard(String),
    /// Cancelled by the worker: state `cancelled` with this reason as the error entry.
    Cancel(String),
    /// Run again after this delay without using up an attempt (oban-py's snooze rule:
    /// `attempt` is given back and `meta.snoozed` counts the snoozes).
    Snooze(Duration),
}

impl Outcome {
    /// A plain completion.
    pub fn complete() -> Self {
        Outcome::Complete {
            then_insert: Vec::new(),
        }
    }

    /// A completion that inserts `jobs` atomically with it.
    pub fn complete_and_insert(jobs: Vec<NewJob>) -> Self {
        Outcome::Complete { then_insert: jobs }
    }
}

/// Per-worker defaults, applied to jobs built with [`Worker::new_job`] (or
/// [`NewJob::for_worker`]) and to execution.
#[derive(Clone, Copy, Debug)]
pub struct WorkerOptions {
    /// Queue for new jobs.
    pub queue: &'static str,
    /// max_attempts for new jobs.
    pub max_attempts: i32,
    /// Priority for new jobs (0 highest).
    pub priority: i32,
    /// Execution time limit; `None` waits forever (Oban's `:infinity`).
    pub timeout: Option<Duration>,
}

impl WorkerOptions {
    /// Oban's defaults: queue `default`, 20 attempts, priority 0, no timeout.
    pub const DEFAULT: WorkerOptions = WorkerOptions {
        queue: "default",
        max_attempts: 20,
        priority: 0,
        timeout: None,
    };
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A job handler, registered on a node under [`Worker::NAME`].
///
/// A worker declares the type of its args: the node decodes each job's JSON args into
/// [`Worker::Args`] before calling [`Worker::process`], and discards a job whose args do not
/// decode (state `discarded`, whatever attempts are left, with an error entry naming the worker
/// and the field), as input that no retry can fix. A worker that reads the raw JSON declares
/// `type Args = serde_json::Value`.
///
/// ```
/// use oban_core::job::Job;
/// use oban_core::worker::{Outcome, WorkResult, Worker, WorkerOptions};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Greeting {
///     name: String,
///     #[serde(default)]
///     shout: bool,
/// }
///
/// struct Hello;
///
/// impl Worker for Hello {
///     const NAME: &'static str = "MyApp.Hello";
///     const OPTIONS: WorkerOptions = WorkerOptions { queue: "greetings", ..WorkerOptions::DEFAULT };
///     type Args = Greeting;
///
///     async fn process(&self, args: Greeting, _job: &Job) -> WorkResult {
///         let name = if args.shout { args.name.to_uppercase() } else { args.name };
///         println!("hello {name}");
///         Ok(Outcome::complete())
///     }
/// }
///
/// let job = Hello::new_job(&Greeting { name: "Ada".into(), shout: false }).unwrap();
/// assert_eq!(job.args()["name"], "Ada");
/// ```
pub trait Worker: Send + Sync + 'static {
    /// The worker name string stored in `oban_jobs.worker`.
    const NAME: &'static str;
    /// Defaults for new jobs and execution.
    const OPTIONS: WorkerOptions = WorkerOptions::DEFAULT;
    /// What the job's JSON args decode into (`serde_json::Value` to take them as they are).
    /// It serialises to a JSON object, as Oban's args are, that decodes back:
    /// [`Worker::new_job`] writes args so.
    type Args: Serialize + DeserializeOwned + Send + 'static;

    /// Runs one attempt of `job`, whose args decoded into `args`. A panic is caught and
    /// recorded like an error.
    fn process(&self, args: Self::Args, job: &Job) -> impl Future<Output = WorkResult> + Send;

    /// Seconds to wait before retrying after a failed attempt; Oban's default when `None`.
    fn backoff(&self, _job: &Job) -> Option<Duration> {
        None
    }

    /// The time limit for this attempt; [`WorkerOptions::timeout`] by default.
    fn timeout(&self, _job: &Job) -> Option<Duration> {
        Self::OPTIONS.timeout
    }

    /// A job for this worker with `args` and its defaults applied ([`NewJob::for_worker`]
    /// takes args that may not decode).
    fn new_job(args: &Self::Args) -> Result<NewJob>
    where
        Self: Sized,
    {
        NewJob::for_worker::<Self>(serde_json::to_value(args)?)
    }
}

/// The object-safe face of a [`Worker`], so that workers of different types share a registry.
/// Every runner of jobs (the node's queues and [`crate::Client::drain_queue`]) goes through
/// it, so args are decoded, and bad args discarded, the same way everywhere.
pub(crate) trait DynWorker: Send + Sync {
    fn process<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, WorkResult>;
    fn backoff(&self, job: &Job) -> Option<Duration>;
    fn timeout(&self, job: &Job) -> Option<Duration>;
}

impl<W: Worker> DynWorker for W {
    fn process<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, WorkResult> {
        // Decoding runs inside the returned future, so a panicking `Deserialize` is caught
        // and recorded like a worker's panic.
        Box::pin(async move {
            match decode_args::<W>(job) {
                Ok(args) => Worker::process(self, args, job).await,
                Err(reason) => Ok(Outcome::Discard(reason)),
            }
        })
    }

    fn backoff(&self, job: &Job) -> Option<Duration> {
        Worker::backoff(self, job)
    }

    fn timeout(&self, job: &Job) -> Option<Duration> {
        Worker::timeout(self, job)
    }
}

/// `job`'s args as `W::Args`, or the error entry of its discard: the worker, the args type,
/// and serde's message prefixed with the path of the field that failed (e.g.
/// `items[2].name: invalid type: integer `7`, expected a string`).
fn decode_args<W: Worker>(job: &Job) -> std::result::Result<W::Args, String> {
    serde_path_to_error::deserialize(&job.args).map_err(|error| {
        format!(
            "{}: args do not decode as {}: {error}",
            W::NAME,
            std::any::type_name::<W::Args>()
        )
    })
}

/// Workers by name string.
#[derive(Clone, Default)]
pub struct Registry {
    workers: HashMap<String, Arc<dyn DynWorker>>,
}

impl Registry {
    /// Registers `worker` under `W::NAME`; a name can be registered once.
    pub fn register<W: Worker>(&mut self, worker: W) -> Result<()> {
        if self.workers.contains_key(W::NAME) {
            return Err(Error::Config(format!(
                "worker {} is registered twice",
                W::NAME
            )));
        }
        self.workers.insert(W::NAME.to_owned(), Arc::new(worker));
        Ok(())
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Arc<dyn DynWorker>> {
        self.workers.get(name)
    }

    /// Whether a worker is registered under `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.workers.contains_key(name)
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.workers.keys()).finish()
    }
}
