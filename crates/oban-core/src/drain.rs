//! `drain_queue` for tests: runs a queue's jobs to the end in the caller's task, as
//! `Oban.drain_queue` does, through the same claim, execution and ack as a node's queues.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::ack::{AckSettings, Acker};
use crate::executor::Execution;
use crate::job::{Job, JobState};
use crate::telemetry::{LogArgs, Metrics};
use crate::worker::Registry;
use crate::{Db, Prefix, Result};

const STAGE_QUEUE: &str = include_str!("sql/stage_queue.sql");

/// Which scheduled (and retryable) jobs a drain runs too, besides the available ones.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WithScheduled {
    /// None: only jobs available now (Oban's default).
    #[default]
    No,
    /// Every one, whatever its time.
    All,
    /// Those scheduled at or before this time.
    Until(DateTime<Utc>),
}

/// How [`Client::drain_queue`](crate::Client::drain_queue) drains, as `Oban.drain_queue`'s
/// options.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DrainOptions {
    /// Scheduled and retryable jobs to make available first (`with_scheduled`).
    pub with_scheduled: WithScheduled,
    /// Most jobs claimed per pass; `None` for all (`with_limit`).
    pub with_limit: Option<usize>,
    /// Drain again while a pass ran jobs, e.g. jobs that inserted jobs (`with_recursion`).
    pub with_recursion: bool,
}

/// How the drained jobs ended, as `Oban.drain_queue` counts them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DrainCounts {
    /// Completed.
    pub success: u64,
    /// Failed with attempts left (now retryable).
    pub failure: u64,
    /// Discarded, by the worker or with their attempts used up.
    pub discard: u64,
    /// Cancelled by the worker.
    pub cancelled: u64,
    /// Snoozed (now scheduled).
    pub snoozed: u64,
}

/// Drains `queue` of `prefix` on `pool` with `registry`'s workers.
pub(crate) async fn drain_queue(
    pool: &Db,
    prefix: &Prefix,
    queue: &str,
    registry: &Registry,
    options: DrainOptions,
) -> Result<DrainCounts> {
    // A metrics registry of the drain's own: its job counts are the drain's outcomes.
    let metrics = Metrics::default();
    let settings = AckSettings {
        batch_limit: 1,
        linger: Duration::ZERO,
        linger_until: 1,
        writers: 1,
    };
    let (acker, acker_task) = Acker::new(pool.clone(), prefix, settings, metrics.clone())
        .spawn(CancellationToken::new(), CancellationToken::new());
    let attempted_by = ["drain".to_owned(), Uuid::new_v4().to_string()];
    let claim = prefix.render(crate::producer::CLAIM);
    let stage = prefix.render(STAGE_QUEUE);
    let limit = options.with_limit.map_or(i64::MAX, |limit| limit as i64);
    let drained = async {
        loop {
            let until = match options.with_scheduled {
                WithScheduled::No => None,
                WithScheduled::All => Some(None),
                WithScheduled::Until(at) => Some(Some(at.naive_utc())),
            };
            if let Some(until) = until {
                sqlx::query(stage.clone())
                    .bind(queue)
                    .bind(until)
                    .execute(pool)
                    .await?;
            }
            let jobs: Vec<Job> = sqlx::query_as(claim.clone())
                .bind(queue)
                .bind(limit)
                .bind(&attempted_by[..])
                .fetch_all(pool)
                .await?;
            let ran = jobs.len();
            for job in jobs {
                let execution = Execution {
                    worker: registry.get(&job.worker).cloned(),
                    job,
                    kill: CancellationToken::new(),
                    abandon: CancellationToken::new(),
                    acker: acker.clone(),
                    metrics: metrics.clone(),
                    log_args: LogArgs::default(),
                };
                // Returns once the job's outcome is written.
                execution.run().await;
            }
            if !options.with_recursion || ran == 0 {
                return Ok::<_, crate::Error>(());
            }
        }
    }
    .await;
    drop(acker);
    acker_task.await?;
    drained?;
    Ok(counts(&metrics))
}

/// The drain's outcomes, from its metrics' job counts.
fn counts(metrics: &Metrics) -> DrainCounts {
    let mut counts = DrainCounts::default();
    for ((_, _, state), jobs) in metrics.snapshot().jobs {
        let count = match state {
            JobState::Completed => &mut counts.success,
            JobState::Retryable => &mut counts.failure,
            JobState::Discarded => &mut counts.discard,
            JobState::Cancelled => &mut counts.cancelled,
            JobState::Scheduled => &mut counts.snoozed,
            _ => continue,
        };
        *count += jobs.count;
    }
    counts
}
