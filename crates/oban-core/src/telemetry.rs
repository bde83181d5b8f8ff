//! What a node tells the outside world about its jobs: one structured `tracing` event per job
//! end, and in-process [`Metrics`] that a metrics endpoint can render, plus the per-interval
//! time sketches that the [`met`](crate::met) reporter publishes for Oban Web.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::job::{Job, JobState};
use crate::sketch::Sketch;

/// How much of a job's args the job-end event shows (see [`Config::log_args`]). Args often
/// hold personal data (names, addresses) that logs, kept longer and read more widely than the
/// jobs table, should not.
///
/// [`Config::log_args`]: crate::config::Config::log_args
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogArgs {
    /// The args as JSON text, as oban-py logs them.
    #[default]
    Full,
    /// The args' keys only, as a JSON array of strings (none when the args are not an object).
    Keys,
    /// No `args` field at all.
    None,
}

impl LogArgs {
    /// The names [`LogArgs::from_str`](std::str::FromStr) reads.
    pub const NAMES: [&'static str; 3] = ["full", "keys", "none"];
}

impl std::str::FromStr for LogArgs {
    type Err = crate::Error;

    fn from_str(text: &str) -> crate::Result<Self> {
        match text {
            "full" => Ok(Self::Full),
            "keys" => Ok(Self::Keys),
            "none" => Ok(Self::None),
            _ => Err(crate::Error::Config(format!(
                "log_args {text:?} is not one of full, keys, none"
            ))),
        }
    }
}

/// A job's args as [`LogArgs`] shows them.
enum ArgsText<'a> {
    Full(JsonText<'a, serde_json::Value>),
    Keys(&'a serde_json::Value),
}

impl std::fmt::Display for ArgsText<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Full(args) => args.fmt(f),
            Self::Keys(args) => {
                let keys: Vec<&String> = args
                    .as_object()
                    .into_iter()
                    .flat_map(|args| args.keys())
                    .collect();
                JsonText(&keys).fmt(f)
            }
        }
    }
}

/// Emits the job-end event with oban-py's keys, in its order and units:
/// `id, worker, queue, attempt, max_attempts, args, meta, tags, event` (`oban.job.stop` or
/// `oban.job.exception`), then `state`, for exceptions `error_message`, then `duration` and
/// `queue_time` in milliseconds rounded to two decimals. `args`, `meta` and `tags` are JSON text;
/// `args` as much of it as `log_args` allows.
pub(crate) fn job_ended(
    job: &Job,
    (state, error): (JobState, Option<&str>),
    duration: Duration,
    log_args: LogArgs,
) {
    let duration = round2(duration.as_secs_f64() * 1000.0);
    let queue_time =
        round2(job.queue_time().num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0);
    // As JSON text, written only if a subscriber records the event (no cost when logs are off).
    // A `None` field is left out of the event.
    let args = match log_args {
        LogArgs::Full => Some(ArgsText::Full(JsonText(&job.args))),
        LogArgs::Keys => Some(ArgsText::Keys(&job.args)),
        LogArgs::None => None,
    }
    .map(tracing::field::display);
    let (meta, tags) = (&job.meta, JsonText(&job.tags));
    match (state, error) {
        (JobState::Retryable | JobState::Discarded, Some(error)) => tracing::warn!(
            target: "oban",
            id = job.id, worker = %job.worker, queue = %job.queue, attempt = job.attempt,
            max_attempts = job.max_attempts, args, %meta, %tags, event = "oban.job.exception",
            state = state.as_str(), error_message = %error, duration, queue_time,
            "job failed"
        ),
        _ => tracing::info!(
            target: "oban",
            id = job.id, worker = %job.worker, queue = %job.queue, attempt = job.attempt,
            max_attempts = job.max_attempts, args, %meta, %tags, event = "oban.job.stop",
            state = state.as_str(), duration, queue_time,
            "job finished"
        ),
    }
}

/// Displays a value as compact JSON.
struct JsonText<'a, T>(&'a T);

impl<T: serde::Serialize> std::fmt::Display for JsonText<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = serde_json::to_string(self.0).map_err(|_| std::fmt::Error)?;
        f.write_str(&text)
    }
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// Upper bounds (seconds) of the job duration histogram buckets.
pub const DURATION_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0,
];

/// Finished jobs of one (queue, worker, state).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JobCounts {
    /// Jobs that ended in this state.
    pub count: u64,
    /// Sum of their run durations in seconds.
    pub duration_sum: f64,
    /// Cumulative counts per [`DURATION_BUCKETS`] bound.
    pub buckets: [u64; DURATION_BUCKETS.len()],
}

/// Counters kept by a node since it started; cheap to clone and share.
#[derive(Clone, Debug, Default)]
pub struct Metrics(Arc<Mutex<MetricsInner>>);

/// Jobs finished since the last report, by (queue, worker, final state).
pub(crate) type IntervalJobs = BTreeMap<(String, String, JobState), IntervalGroup>;

/// One group's jobs of one reporting interval, as oban_met's Listener collects them.
#[derive(Debug, Default)]
pub(crate) struct IntervalGroup {
    /// Run durations in nanoseconds.
    pub exec_time: Sketch,
    /// `attempted_at - scheduled_at` in nanoseconds (absolute, at least 1, as oban_met clamps).
    pub wait_time: Sketch,
    /// How many jobs.
    pub count: u64,
}

#[derive(Debug, Default)]
struct MetricsInner {
    jobs: BTreeMap<(String, String, JobState), JobCounts>,
    /// Drained by the metrics reporter every interval; sketches keep it bounded in between.
    interval: IntervalJobs,
    claims: u64,
    claimed_jobs: u64,
    claim_seconds: f64,
    ack_batches: u64,
    acked_jobs: u64,
    ack_seconds: f64,
}

/// A consistent copy of [`Metrics`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricsSnapshot {
    /// Finished jobs by (queue, worker, state).
    pub jobs: Vec<((String, String, JobState), JobCounts)>,
    /// Claim round trips, jobs they returned, and their total time in seconds.
    pub claims: (u64, u64, f64),
    /// Ack statements, jobs they recorded, and their total time in seconds.
    pub acks: (u64, u64, f64),
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, MetricsInner> {
        // A panic while holding this lock cannot leave the counters inconsistent in a way
        // that matters more than losing them, so a poisoned lock is simply reused.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn record_job(&self, job: &Job, state: JobState, duration: Duration) {
        let seconds = duration.as_secs_f64();
        let wait = job
            .queue_time()
            .num_nanoseconds()
            .map_or(u64::MAX, i64::unsigned_abs);
        let mut inner = self.lock();
        let key = (job.queue.clone(), job.worker.clone(), state);
        // Looked up before inserting so that the steady state clones the key only once.
        if !inner.interval.contains_key(&key) {
            inner.interval.insert(key.clone(), IntervalGroup::default());
        }
        let group = inner.interval.get_mut(&key).expect("inserted above");
        group
            .exec_time
            .add(duration.as_nanos().try_into().unwrap_or(u64::MAX));
        group.wait_time.add(wait);
        group.count += 1;
        let counts = inner.jobs.entry(key).or_default();
        counts.count += 1;
        counts.duration_sum += seconds;
        for (bucket, bound) in counts.buckets.iter_mut().zip(DURATION_BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
    }

    pub(crate) fn record_claim(&self, jobs: usize, elapsed: Duration) {
        let mut inner = self.lock();
        inner.claims += 1;
        inner.claimed_jobs += jobs as u64;
        inner.claim_seconds += elapsed.as_secs_f64();
    }

    pub(crate) fn record_ack_batch(&self, jobs: usize, elapsed: Duration) {
        let mut inner = self.lock();
        inner.ack_batches += 1;
        inner.acked_jobs += jobs as u64;
        inner.ack_seconds += elapsed.as_secs_f64();
    }

    /// Takes the jobs finished since the previous call.
    pub(crate) fn take_interval(&self) -> IntervalJobs {
        std::mem::take(&mut self.lock().interval)
    }

    /// Copies the counters.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let inner = self.lock();
        MetricsSnapshot {
            jobs: inner
                .jobs
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            claims: (inner.claims, inner.claimed_jobs, inner.claim_seconds),
            acks: (inner.ack_batches, inner.acked_jobs, inner.ack_seconds),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn log_args_reads_its_names_and_shows_keys_without_values() {
        for name in LogArgs::NAMES {
            assert_eq!(
                format!("{:?}", name.parse::<LogArgs>().unwrap()).to_lowercase(),
                name
            );
        }
        assert!("names".parse::<LogArgs>().is_err());
        let args = json!({"name": "Zoë", "id": "a1"});
        assert_eq!(ArgsText::Keys(&args).to_string(), r#"["id","name"]"#);
        assert_eq!(ArgsText::Keys(&json!([1, 2])).to_string(), "[]");
        assert_eq!(
            ArgsText::Full(JsonText(&args)).to_string(),
            r#"{"id":"a1","name":"Zoë"}"#
        );
    }
}
