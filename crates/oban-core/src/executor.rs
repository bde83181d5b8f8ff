//! Running one claimed job: the worker call with its time limit, panic catching and
//! cancellation, then turning the result into an [`Ack`] and a telemetry event.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::ack::{Ack, AckSender};
use crate::backoff::default_backoff;
use crate::error::error_chain;
use crate::job::{Job, JobState};
use crate::telemetry::{self, LogArgs, Metrics};
use crate::worker::{DynWorker, Outcome, WorkResult};

/// Everything one execution needs; built by the producer for each claimed job.
pub(crate) struct Execution {
    pub job: Job,
    /// `None` when no worker of that name is registered on this node.
    pub worker: Option<Arc<dyn DynWorker>>,
    /// Cancelled by a `pkill` signal for this job.
    pub kill: CancellationToken,
    /// Cancelled when the shutdown grace period is over.
    pub abandon: CancellationToken,
    pub acker: AckSender,
    pub metrics: Metrics,
    /// How much of the args the job-end event shows.
    pub log_args: LogArgs,
}

/// How an attempt ended, before it is mapped onto the row.
pub(crate) enum Ending {
    Returned(WorkResult),
    Panicked(String),
    TimedOut(Duration),
    Killed,
    UnknownWorker,
}

/// Runs one attempt of `job` through `worker`: under the worker's time limit, with a panic
/// caught. A node's executions and `testing::perform_job` both run jobs through this.
pub(crate) async fn attempt(worker: &dyn DynWorker, job: &Job) -> Ending {
    let limit = worker.timeout(job);
    let attempt = AssertUnwindSafe(worker.process(job)).catch_unwind();
    let ended = match limit {
        Some(limit) => tokio::time::timeout(limit, attempt).await.ok(),
        None => Some(attempt.await),
    };
    match ended {
        None => Ending::TimedOut(limit.unwrap_or_default()),
        Some(Ok(result)) => Ending::Returned(result),
        Some(Err(panic)) => Ending::Panicked(panic_message(panic.as_ref())),
    }
}

impl Execution {
    /// Runs the job and queues its ack. Returns the job id when done; an attempt abandoned at
    /// shutdown is not acked at all, so the row stays `executing` for the lifeline to rescue
    /// rather than half-written.
    pub async fn run(self) -> i64 {
        let started = Instant::now();
        let job = &self.job;
        let ending = match &self.worker {
            None => Ending::UnknownWorker,
            Some(worker) => tokio::select! {
                biased;
                _ = self.abandon.cancelled() => {
                    tracing::warn!(id = job.id, worker = %job.worker, "shutdown grace period over; job left executing for rescue");
                    return job.id;
                }
                _ = self.kill.cancelled() => Ending::Killed,
                ending = attempt(worker.as_ref(), job) => ending,
            },
        };
        let duration = started.elapsed();
        let ack = ack_for(job, self.worker.as_deref(), ending);
        telemetry::job_ended(
            job,
            (ack.state, ack.error.as_deref()),
            duration,
            self.log_args,
        );
        self.metrics.record_job(job, ack.state, duration);
        let id = job.id;
        let (written, recorded) = oneshot::channel();
        self.acker.send(Ack {
            written: Some(written),
            ..ack
        });
        // The slot stays taken until the outcome is recorded (see `Ack::written`); at the end
        // of the grace period the node stops waiting.
        tokio::select! {
            _ = recorded => {}
            _ = self.abandon.cancelled() => {}
        }
        id
    }
}

/// The outcome the row records for `job`'s attempt that ended so; `worker` (if the node knows
/// it) chooses the retry backoff.
pub(crate) fn ack_for(job: &Job, worker: Option<&dyn DynWorker>, ending: Ending) -> Ack {
    let ack = |state, delay_seconds, error| Ack {
        id: job.id,
        attempted_at: job.attempted_at,
        state,
        delay_seconds,
        error,
        then_insert: Vec::new(),
        written: None,
    };
    let failure = match ending {
        Ending::Returned(Ok(Outcome::Complete { then_insert })) => {
            match then_insert.iter().try_for_each(|job| job.validate()) {
                Ok(()) => {
                    return Ack {
                        then_insert,
                        ..ack(JobState::Completed, None, None)
                    };
                }
                Err(error) => format!("{}: follow-up job rejected: {error}", job.worker),
            }
        }
        Ending::Returned(Ok(Outcome::Discard(reason))) => {
            return ack(JobState::Discarded, None, Some(reason));
        }
        Ending::Returned(Ok(Outcome::Cancel(reason))) => {
            return ack(JobState::Cancelled, None, Some(reason));
        }
        Ending::Returned(Ok(Outcome::Snooze(delay))) => {
            return ack(JobState::Scheduled, Some(delay.as_secs_f64()), None);
        }
        Ending::Killed => {
            let reason = format!(
                "{} was cancelled by a pkill signal while running",
                job.worker
            );
            return ack(JobState::Cancelled, None, Some(reason));
        }
        Ending::Returned(Err(error)) => error_chain(error.as_ref()),
        Ending::Panicked(message) => format!("{} panicked: {message}", job.worker),
        Ending::TimedOut(limit) => {
            format!("{} timed out after {}ms", job.worker, limit.as_millis())
        }
        // Oban's wording, and like Oban the default backoff: another node of this
        // cluster may know the worker by the time of the retry.
        Ending::UnknownWorker => format!("unknown worker: {}", job.worker),
    };
    if job.attempt >= job.max_attempts {
        return ack(JobState::Discarded, None, Some(failure));
    }
    let backoff = worker
        .and_then(|worker| worker.backoff(job))
        .map(|delay| delay.as_secs_f64())
        .unwrap_or_else(|| default_backoff(job.attempt, job.max_attempts, &mut rand::rng()) as f64);
    ack(JobState::Retryable, Some(backoff), Some(failure))
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(message) = panic.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = panic.downcast_ref::<String>() {
        message.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_messages_are_extracted() {
        let panic = std::panic::catch_unwind(|| panic!("boom {}", 1)).unwrap_err();
        assert_eq!(panic_message(panic.as_ref()), "boom 1");
    }
}
