//! A handle for talking to an Oban cluster without running queues: enqueue jobs, send signals,
//! cancel jobs. Every node has one ([`crate::node::NodeHandle::client`]), and a program that
//! only inserts can build its own.

use serde_json::Value;
use sqlx::PgPool;

use crate::config::QueueConfig;
use crate::insert::{self, InsertedJob, NewJob};
use crate::job::JobState;
use crate::notifier::{self, Channel};
use crate::signal::{self, Signal};
use crate::{Db, Prefix, Result};

const CANCEL: &str = include_str!("sql/cancel.sql");

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

    /// Inserts one job and announces its queue. To insert inside your own transaction, use
    /// [`insert::insert`] with `&mut *tx`.
    pub async fn insert(&self, job: &NewJob) -> Result<InsertedJob> {
        insert::insert(&self.pool, &self.prefix, job).await
    }

    /// Inserts many jobs in one statement and announces their queues. To insert inside your own
    /// transaction, use [`insert::insert_all`] with `&mut *tx`.
    pub async fn insert_all(&self, jobs: &[NewJob]) -> Result<Vec<InsertedJob>> {
        insert::insert_all(&self.pool, &self.prefix, jobs).await
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

    /// Cancels a job as `Oban.cancel_job/1` does: a job not yet finished becomes `cancelled`
    /// at once; if it was executing, the node running it is sent a `pkill` to stop it.
    /// Returns whether the job was cancelled now.
    pub async fn cancel_job(&self, id: i64) -> Result<bool> {
        let cancelled: Option<(bool,)> = sqlx::query_as(self.prefix.render(CANCEL))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        match cancelled {
            Some((was_executing,)) => {
                if was_executing {
                    self.signal(&Signal::Kill { job_id: id }, None).await?;
                }
                Ok(true)
            }
            None => Ok(false),
        }
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
