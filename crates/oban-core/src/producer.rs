//! A producer runs one queue on this node: it claims as many jobs as it has free slots, starts
//! an `Execution` (see `executor`) for each, and obeys pause, resume, scale and kill.
//!
//! It claims when woken (an insert notification for its queue, a finished job, a signal, a
//! reconnected listener) and on its own poll timer, so a lost notification delays a job by at
//! most the poll interval. Wake-ups that arrive within the dispatch cooldown of the previous
//! claim are coalesced into one claim, as Oban's producer does.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::SqlStr;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::ack::AckSender;
use crate::backoff::reconnect_delay;
use crate::executor::Execution;
use crate::job::Job;
use crate::telemetry::{LogArgs, Metrics};
use crate::worker::Registry;
use crate::{Db, Prefix, Result};

pub(crate) const CLAIM: &str = include_str!("sql/claim.sql");

/// What a producer can be told.
#[derive(Debug)]
pub(crate) enum ProducerEvent {
    /// Jobs may be available: claim if there is room.
    Wake,
    Pause,
    Resume,
    Scale(usize),
    /// Cancel the job with this id if it runs here.
    Kill(i64),
    /// Report the queue's status.
    Status(oneshot::Sender<QueueStatus>),
}

/// A queue's state on this node, as Oban Web's gossip checks describe it.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueStatus {
    /// Queue name.
    pub queue: String,
    /// The producer's UUID, the second element of `attempted_by` of its jobs.
    pub uuid: Uuid,
    /// Local concurrency limit.
    pub limit: usize,
    /// Whether claiming is paused.
    pub paused: bool,
    /// Ids of the jobs running now.
    pub running: Vec<i64>,
    /// When the producer started.
    pub started_at: DateTime<Utc>,
    /// When shutdown began, if it has.
    pub shutdown_started_at: Option<DateTime<Utc>>,
}

/// How a producer is set up.
pub(crate) struct ProducerSettings {
    pub queue: String,
    pub limit: usize,
    /// Starts paused (a `start` signal may ask for it).
    pub paused: bool,
    pub node: String,
    pub poll_interval: Duration,
    pub dispatch_cooldown: Duration,
}

/// Shared pieces every producer of a node uses.
#[derive(Clone)]
pub(crate) struct ProducerContext {
    pub pool: Db,
    pub prefix: Prefix,
    pub registry: Arc<Registry>,
    pub acker: AckSender,
    pub metrics: Metrics,
    /// How much of the args each job-end event shows.
    pub log_args: LogArgs,
    /// Cancelled when the shutdown grace period is over: running jobs are abandoned.
    pub abandon: CancellationToken,
}

pub(crate) struct Producer {
    settings: ProducerSettings,
    context: ProducerContext,
    uuid: Uuid,
    attempted_by: [String; 2],
    claim_sql: SqlStr,
    paused: bool,
    started_at: DateTime<Utc>,
    shutdown_started_at: Option<DateTime<Utc>>,
    running: HashMap<i64, CancellationToken>,
    tasks: JoinSet<i64>,
    /// Job id of each execution task, to free its slot even if the task itself fails.
    task_jobs: HashMap<tokio::task::Id, i64>,
    next_claim: Option<Instant>,
    last_claim: Option<Instant>,
    claim_failures: u32,
}

impl Producer {
    pub fn new(settings: ProducerSettings, context: ProducerContext) -> Self {
        let uuid = Uuid::new_v4();
        Self {
            paused: settings.paused,
            attempted_by: [settings.node.clone(), uuid.to_string()],
            claim_sql: context.prefix.render(CLAIM),
            settings,
            context,
            uuid,
            started_at: Utc::now(),
            shutdown_started_at: None,
            running: HashMap::new(),
            tasks: JoinSet::new(),
            task_jobs: HashMap::new(),
            next_claim: Some(Instant::now()),
            last_claim: None,
            claim_failures: 0,
        }
    }

    /// The producer's UUID, as written into `attempted_by`.
    pub fn uuid(&self) -> Uuid {
        self.uuid
    }

    /// Runs until `stop`, then waits for its running jobs (which are abandoned, unacked, when
    /// the node's grace period ends).
    pub async fn run(mut self, mut events: mpsc::Receiver<ProducerEvent>, stop: CancellationToken) {
        let mut poll = tokio::time::interval(self.settings.poll_interval);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let claim_at = self.next_claim.map(tokio::time::Instant::from_std);
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                Some(done) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => {
                    self.finished(done);
                    self.want_claim();
                }
                Some(event) = events.recv() => self.handle(event),
                _ = poll.tick() => self.want_claim(),
                _ = tokio::time::sleep_until(claim_at.unwrap_or_else(tokio::time::Instant::now)), if claim_at.is_some() => {
                    self.claim().await;
                }
            }
        }
        self.shutdown_started_at = Some(Utc::now());
        tracing::debug!(queue = %self.settings.queue, running = self.running.len(), "producer draining");
        loop {
            tokio::select! {
                done = self.tasks.join_next_with_id() => match done {
                    Some(done) => self.finished(done),
                    None => break,
                },
                Some(event) = events.recv() => self.handle(event),
            }
        }
    }

    fn handle(&mut self, event: ProducerEvent) {
        match event {
            ProducerEvent::Wake => self.want_claim(),
            ProducerEvent::Pause => {
                self.paused = true;
                tracing::info!(queue = %self.settings.queue, "queue paused");
            }
            ProducerEvent::Resume => {
                self.paused = false;
                tracing::info!(queue = %self.settings.queue, "queue resumed");
                self.want_claim();
            }
            ProducerEvent::Scale(limit) => {
                self.settings.limit = limit;
                tracing::info!(queue = %self.settings.queue, limit, "queue scaled");
                self.want_claim();
            }
            ProducerEvent::Kill(id) => {
                if let Some(kill) = self.running.get(&id) {
                    tracing::info!(queue = %self.settings.queue, id, "killing job on pkill signal");
                    kill.cancel();
                }
            }
            ProducerEvent::Status(reply) => {
                let _ = reply.send(self.status());
            }
        }
    }

    fn status(&self) -> QueueStatus {
        let mut running: Vec<i64> = self.running.keys().copied().collect();
        running.sort_unstable();
        QueueStatus {
            queue: self.settings.queue.clone(),
            uuid: self.uuid,
            limit: self.settings.limit,
            paused: self.paused,
            running,
            started_at: self.started_at,
            shutdown_started_at: self.shutdown_started_at,
        }
    }

    fn finished(
        &mut self,
        done: std::result::Result<(tokio::task::Id, i64), tokio::task::JoinError>,
    ) {
        let task = match done {
            Ok((task, _)) => task,
            // Execution catches the worker's panics, so this is a bug in this crate; the job
            // is left executing for the lifeline.
            Err(error) => {
                tracing::error!(%error, queue = %self.settings.queue, "execution task failed");
                error.id()
            }
        };
        if let Some(id) = self.task_jobs.remove(&task) {
            self.running.remove(&id);
        }
    }

    fn demand(&self) -> usize {
        if self.paused || self.shutdown_started_at.is_some() {
            0
        } else {
            self.settings.limit.saturating_sub(self.running.len())
        }
    }

    /// Schedules a claim: now, or at the end of the cooldown after the previous one.
    fn want_claim(&mut self) {
        if self.demand() == 0 {
            return;
        }
        let earliest = self
            .last_claim
            .map_or_else(Instant::now, |last| last + self.settings.dispatch_cooldown);
        self.next_claim = Some(self.next_claim.map_or(earliest, |at| at.min(earliest)));
    }

    async fn claim(&mut self) {
        self.next_claim = None;
        let demand = self.demand();
        if demand == 0 {
            return;
        }
        self.last_claim = Some(Instant::now());
        match self.fetch(demand).await {
            Ok(jobs) => {
                self.claim_failures = 0;
                for job in jobs {
                    self.start(job);
                }
            }
            Err(error) => {
                self.claim_failures += 1;
                let delay = reconnect_delay(
                    self.claim_failures,
                    Duration::from_millis(100),
                    Duration::from_secs(5),
                    &mut rand::rng(),
                );
                tracing::warn!(%error, queue = %self.settings.queue, retry_in = ?delay, "claim failed");
                self.next_claim = Some(Instant::now() + delay);
            }
        }
    }

    async fn fetch(&self, demand: usize) -> Result<Vec<Job>> {
        let started = Instant::now();
        let jobs: Vec<Job> = sqlx::query_as(self.claim_sql.clone())
            .bind(&self.settings.queue)
            .bind(demand as i64)
            .bind(&self.attempted_by[..])
            .fetch_all(&self.context.pool)
            .await?;
        self.context
            .metrics
            .record_claim(jobs.len(), started.elapsed());
        Ok(jobs)
    }

    fn start(&mut self, job: Job) {
        let kill = CancellationToken::new();
        self.running.insert(job.id, kill.clone());
        let id = job.id;
        let execution = Execution {
            worker: self.context.registry.get(&job.worker).cloned(),
            job,
            kill,
            abandon: self.context.abandon.clone(),
            acker: self.context.acker.clone(),
            metrics: self.context.metrics.clone(),
            log_args: self.context.log_args,
        };
        let task = self.tasks.spawn(execution.run());
        self.task_jobs.insert(task.id(), id);
    }
}
