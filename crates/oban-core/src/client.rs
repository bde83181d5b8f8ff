//! A handle for talking to an Oban cluster without running queues: enqueue jobs (unique ones
//! too), send signals, and read, retry, cancel, delete and update jobs ([`crate::jobs`]).
//! Every node has one ([`crate::node::NodeHandle::client`]), and a program that only inserts
//! can build its own.

use serde_json::Value;
use sqlx::PgPool;

use crate::config::QueueConfig;
use crate::drain::{self, DrainCounts, DrainOptions};
use crate::insert::{self, InsertedJob, NewJob};
use crate::job::{JobRecord, JobState};
use crate::jobs::{self, JobFilter, JobUpdate};
use crate::notifier::{self, Channel};
use crate::signal::{self, Signal};
use crate::worker::Registry;
use crate::{Db, Prefix, Result};

/// How many jobs one queue holds in one state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobCount {
    /// The queue.
    pub queue: String,
    /// The state.
    pub state: JobState,
    /// The jobs in that queue and state, counted exactly.
    pub count: i64,
}

/// Enqueue, signal, cancel and count on one database and prefix. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Client {
    pool: Db,
    prefix: Prefix,
    name: String,
}

impl Client {
    /// A client for the instance named `"Oban"` under `prefix`; a `PgPool` converts into a
    /// [`Db`] with sqlx's prepared statements (see [`Db::behind_pooler`] for a pooler).
    pub fn new(pool: impl Into<Db>, prefix: Prefix) -> Self {
        Self {
            pool: pool.into(),
            prefix,
            name: "Oban".to_owned(),
        }
    }

    /// The pool it uses.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The pool with the way statements travel on it (a sqlx executor).
    pub fn db(&self) -> &Db {
        &self.pool
    }

    /// The prefix it uses.
    pub fn prefix(&self) -> &Prefix {
        &self.prefix
    }

    /// Inserts one job and announces its queue; a unique job that matches an existing one is
    /// not inserted, and the result is that job with `conflict` set (see [`crate::unique`]).
    /// To insert inside your own transaction, use [`insert::insert`] with `&mut tx`.
    pub async fn insert(&self, job: &NewJob) -> Result<InsertedJob> {
        insert::one(self.insert_all(std::slice::from_ref(job)).await?)
    }

    /// Inserts many jobs and announces their queues: jobs without unique options in one
    /// statement, unique ones as [`insert::insert_all`] describes, all in one transaction. To
    /// insert inside your own transaction, use [`insert::insert_all`] with `&mut tx`.
    pub async fn insert_all(&self, jobs: &[NewJob]) -> Result<Vec<InsertedJob>> {
        let persistent = self.pool.persistent();
        if jobs.iter().all(|job| job.unique_options().is_none()) {
            return insert::insert_plain(&self.pool, &self.prefix, jobs, persistent).await;
        }
        insert::validate_all(jobs)?;
        let mut tx = self.pool.begin().await?;
        let inserted = insert::insert_with_unique(&mut tx, &self.prefix, jobs, persistent).await?;
        tx.commit().await?;
        Ok(inserted)
    }

    /// Sends `signal` to every node (`node: None`) or to one node of this instance.
    pub async fn signal(&self, signal: &Signal, node: Option<&str>) -> Result<()> {
        let ident = node.map_or_else(|| "any".to_owned(), |node| signal::ident(&self.name, node));
        self.publish(Channel::Signal, &[signal.to_payload(&ident)])
            .await
    }

    /// Starts `queue` with `limit` on every node (`node: None`) or on one node of this
    /// instance, as `Oban.start_queue/2` does; a node already running it changes nothing. To
    /// start it paused, send [`Signal::Start`] with [`Client::signal`].
    pub async fn start_queue(&self, queue: &str, limit: usize, node: Option<&str>) -> Result<()> {
        QueueConfig::new(queue, limit).validate()?;
        let start = Signal::Start {
            queue: queue.to_owned(),
            limit,
            paused: false,
        };
        self.signal(&start, node).await
    }

    /// Stops `queue` on every node (`node: None`) or on one node of this instance, as
    /// `Oban.stop_queue/2` does: it claims nothing more and its running jobs finish.
    pub async fn stop_queue(&self, queue: &str, node: Option<&str>) -> Result<()> {
        let stop = Signal::Stop {
            queue: queue.to_owned(),
        };
        self.signal(&stop, node).await
    }

    /// Job `id` with every column, in whatever state; `None` if there is no such job.
    pub async fn get_job(&self, id: i64) -> Result<Option<JobRecord>> {
        let job = sqlx::query_as(self.prefix.render(jobs::GET_JOB))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(job)
    }

    /// Retries job `id` as `Oban.retry_job/1` does (see [`Client::retry_jobs`]). Returns
    /// whether it was retried (false if it is missing, available or executing).
    pub async fn retry_job(&self, id: i64) -> Result<bool> {
        Ok(!self.retry_jobs(&JobFilter::ids([id])).await?.is_empty())
    }

    /// Makes every job `filter` names runnable now, as `Oban.retry_all_jobs/1` does: each one
    /// not available or executing becomes available, scheduled now, with one more attempt if
    /// it had used them all, and its queue is announced. Returns the ids retried.
    pub async fn retry_jobs(&self, filter: &JobFilter) -> Result<Vec<i64>> {
        let sql = jobs::render_with_filter(&self.prefix, jobs::RETRY_JOBS);
        let retried: Vec<(i64, i64)> = filter
            .bind(sqlx::query_as(sql))
            .bind(self.prefix.channel("insert"))
            .fetch_all(&self.pool)
            .await?;
        Ok(retried.into_iter().map(|(id, _)| id).collect())
    }

    /// Cancels a job as `Oban.cancel_job/1` does (see [`Client::cancel_jobs`]). Returns
    /// whether the job was cancelled now.
    pub async fn cancel_job(&self, id: i64) -> Result<bool> {
        Ok(!self.cancel_jobs(&JobFilter::ids([id])).await?.is_empty())
    }

    /// Cancels every job `filter` names that has not finished, as `Oban.cancel_all_jobs/1`
    /// does: it becomes `cancelled` at once, executing or not, and for each one that was
    /// executing a `pkill` signal goes out, on which the node running it (Rust, Elixir or
    /// Python) stops it. Returns the ids cancelled.
    pub async fn cancel_jobs(&self, filter: &JobFilter) -> Result<Vec<i64>> {
        let sql = jobs::render_with_filter(&self.prefix, jobs::CANCEL_JOBS);
        let cancelled: Vec<(i64, bool)> = filter
            .bind(sqlx::query_as(sql))
            .fetch_all(&self.pool)
            .await?;
        let kills: Vec<Value> = cancelled
            .iter()
            .filter(|(_, was_executing)| *was_executing)
            .map(|(job_id, _)| Signal::Kill { job_id: *job_id }.to_payload("any"))
            .collect();
        if !kills.is_empty() {
            self.publish(Channel::Signal, &kills).await?;
        }
        Ok(cancelled.into_iter().map(|(id, _)| id).collect())
    }

    /// Deletes job `id` unless it is executing, as `Oban.delete_job/1` does. Returns whether
    /// it was deleted.
    pub async fn delete_job(&self, id: i64) -> Result<bool> {
        Ok(!self.delete_jobs(&JobFilter::ids([id])).await?.is_empty())
    }

    /// Deletes every job `filter` names that is not executing, as `Oban.delete_all_jobs/1`
    /// does. Returns the ids deleted.
    pub async fn delete_jobs(&self, filter: &JobFilter) -> Result<Vec<i64>> {
        let sql = jobs::render_with_filter(&self.prefix, jobs::DELETE_JOBS);
        let deleted: Vec<(i64,)> = filter
            .bind(sqlx::query_as(sql))
            .fetch_all(&self.pool)
            .await?;
        Ok(deleted.into_iter().map(|(id,)| id).collect())
    }

    /// Changes the given fields of job `id`, as `Oban.update_job/2` does, after checking
    /// them as a new job's; a new `scheduled_at` makes a job waiting to run `scheduled`.
    /// Returns the job as changed, or `None` if there is no such job. Changing a running job's
    /// args, queue or worker does not reach the attempt under way.
    pub async fn update_job(&self, id: i64, update: &JobUpdate) -> Result<Option<JobRecord>> {
        let update = update.validated()?;
        let job = sqlx::query_as(self.prefix.render(jobs::UPDATE_JOB))
            .bind(id)
            .bind(update.args)
            .bind(update.max_attempts)
            .bind(update.meta)
            .bind(update.priority)
            .bind(update.queue)
            .bind(update.scheduled_at.map(|at| at.naive_utc()))
            .bind(update.tags.map(Value::from))
            .bind(update.worker)
            .fetch_optional(&self.pool)
            .await?;
        Ok(job)
    }

    /// Runs `queue`'s jobs with `registry`'s workers in the caller's task until none is left,
    /// as `Oban.drain_queue/1` does for tests: claimed, run and acked as a node runs them, one
    /// at a time. Returns how they ended. A job whose worker `registry` lacks fails as on a
    /// node ("unknown worker").
    pub async fn drain_queue(
        &self,
        queue: &str,
        registry: &Registry,
        options: DrainOptions,
    ) -> Result<DrainCounts> {
        drain::drain_queue(&self.pool, &self.prefix, queue, registry, options).await
    }

    /// Counts the jobs of any runtime in each queue for each of `states`, exactly, in one scan
    /// of those states. Only the queue × state pairs that hold jobs come back, in no particular
    /// order.
    pub async fn count_jobs(&self, states: &[JobState]) -> Result<Vec<JobCount>> {
        let states: Vec<&str> = states.iter().map(|state| state.as_str()).collect();
        let rows: Vec<(String, String, i64)> =
            sqlx::query_as(self.prefix.render(crate::met::COUNT_JOBS))
                .bind(&states)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(state, queue, count)| {
                let state = state.parse().ok()?;
                Some(JobCount {
                    queue,
                    state,
                    count,
                })
            })
            .collect())
    }

    /// Publishes raw messages on an Oban channel.
    pub async fn publish(&self, channel: Channel, messages: &[Value]) -> Result<()> {
        notifier::publish(&self.pool, &self.prefix, channel, messages).await
    }
}
