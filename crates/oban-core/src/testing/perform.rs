//! `perform_job`: one job through a worker in memory, ending as it would on a node.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::executor::{ack_for, attempt};
use crate::insert::NewJob;
use crate::job::{Job, JobState};
use crate::telemetry::{self, LogArgs};
use crate::worker::{DynWorker, Worker};

/// What a node would have recorded for an attempt [`perform_job`] ran.
#[derive(Debug)]
pub struct Performed {
    /// `completed`, `retryable`, `discarded`, `cancelled`, or `scheduled` for a snooze.
    pub state: JobState,
    /// The error entry's text, for `retryable`, `discarded` and `cancelled`: the worker's error
    /// chain, its discard or cancel reason, or what a panic or timeout records.
    pub error: Option<String>,
    /// For `retryable` the backoff before the retry (the worker's, or Oban's default with its
    /// jitter), for `scheduled` the snooze.
    pub delay: Option<Duration>,
    /// The jobs a completion inserts with it (not inserted here).
    pub then_insert: Vec<NewJob>,
}

/// Runs `job` through `worker` as its first attempt and returns what a node would record; see
/// [`perform_attempt`].
///
/// # Panics
///
/// As [`perform_attempt`].
pub async fn perform_job<W: Worker>(worker: &W, job: &NewJob) -> Performed {
    perform_attempt(worker, job, 1).await
}

/// Runs `job` through `worker` as attempt `attempt_number` (to test what a worker does on a retry, or
/// that its last attempt discards), without a node or a database: the job is built in memory
/// from `job`'s args, meta, queue, priority, tags and max_attempts, and run under the worker's
/// time limit with panics caught, exactly as a node's executions run jobs; it ends with the
/// job-end `tracing` event a node emits (as Elixir's `perform_job` emits its telemetry).
///
/// # Panics
///
/// When `job` is not one an insert would accept ([`NewJob::validate`]), when it names another
/// worker than `W`, or when `attempt_number` is below 1: the test is wrong, not the worker.
pub async fn perform_attempt<W: Worker>(
    worker: &W,
    job: &NewJob,
    attempt_number: i32,
) -> Performed {
    if let Err(error) = job.validate() {
        panic!("perform_job: an insert would refuse this job: {error}");
    }
    assert_eq!(
        job.worker_name(),
        W::NAME,
        "perform_job: the job names another worker than the one given"
    );
    assert!(
        attempt_number >= 1,
        "perform_job: attempts count from 1, got {attempt_number}"
    );
    let job = in_memory(job, attempt_number);
    let worker: &dyn DynWorker = worker;
    let started = Instant::now();
    let ending = attempt(worker, &job).await;
    let ack = ack_for(&job, Some(worker), ending);
    let end = (ack.state, ack.error.as_deref());
    telemetry::job_ended(&job, end, started.elapsed(), LogArgs::Full);
    Performed {
        state: ack.state,
        error: ack.error,
        delay: ack.delay_seconds.map(Duration::from_secs_f64),
        then_insert: ack.then_insert,
    }
}

/// The row a node would have claimed for `job`'s attempt `attempt`, with an id no other
/// in-memory job of this process has (Oban's `System.unique_integer`).
fn in_memory(job: &NewJob, attempt: i32) -> Job {
    static IDS: AtomicI64 = AtomicI64::new(1);
    let now = Utc::now().naive_utc();
    Job {
        id: IDS.fetch_add(1, Ordering::Relaxed),
        queue: job.queue.clone(),
        worker: job.worker.clone(),
        args: job.args.clone(),
        errors: Vec::new(),
        attempt,
        max_attempts: job.max_attempts,
        priority: job.priority.unwrap_or(0),
        tags: job.tags.clone(),
        meta: job.meta.clone(),
        inserted_at: now,
        scheduled_at: job.scheduled_at.unwrap_or(now),
        attempted_at: now,
        attempted_by: vec!["perform_job".to_owned()],
    }
}
