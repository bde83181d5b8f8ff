//! Acknowledging finished jobs: batched, guarded, and never lost on shutdown.
//!
//! Executors hand their outcome to one [`Acker`] per node, whose writers (`Config::ack_writers`)
//! take turns gathering whatever has accumulated and write it in one statement (`sql/ack.sql`).
//! Under load that batches naturally, with no added latency when idle; `Config::ack_linger`
//! lets a batch wait for more acks when jobs finish one by one (except while the node stops, and
//! no longer than until half the node's slots are waiting on it).
//! A second statement starts beside one in flight when its batch is full or the first is slow
//! (stuck behind a row lock, say), so one batch never holds up every ack of the node. When the database is unreachable the
//! batch is kept and retried with backoff; a job's ack is dropped only when the node stops and
//! the database stayed unreachable for the whole grace period, and then the job is left
//! `executing` for the lifeline to rescue.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use tokio::sync::{Mutex, mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::backoff::reconnect_delay;
use crate::insert::{JobColumns, NewJob, render_with_insert};
use crate::job::JobState;
use crate::telemetry::Metrics;
use crate::{Db, Prefix, Result};

const ACK: &str = include_str!("sql/ack.sql");

/// One finished job's outcome, as the ack statement records it.
#[derive(Debug)]
pub(crate) struct Ack {
    pub id: i64,
    /// The claim's attempted_at, which guards the update.
    pub attempted_at: NaiveDateTime,
    /// completed, retryable, discarded, cancelled or scheduled (snoozed).
    pub state: JobState,
    /// For retryable and scheduled: seconds from now until scheduled_at.
    pub delay_seconds: Option<f64>,
    /// The error entry's text, for retryable, discarded and cancelled.
    pub error: Option<String>,
    /// Jobs inserted when (and only when) this completion is recorded.
    pub then_insert: Vec<NewJob>,
    /// Told once the outcome is written (dropped if it is given up at the shutdown deadline).
    /// The job's execution waits for it, so the job keeps its slot until then: finished jobs
    /// never pile up unrecorded behind the queue's limit, and a crash reruns at most `limit`
    /// jobs per queue.
    pub written: Option<oneshot::Sender<()>>,
}

/// How acks are batched and written, from [`crate::config::Config`].
pub(crate) struct AckSettings {
    /// Most acks in one statement.
    pub batch_limit: usize,
    /// How long a batch's first ack waits for others.
    pub linger: Duration,
    /// A lingering batch is written as soon as it holds this many acks. A finished job keeps
    /// its slot until its ack is written, so the node sets this to half its slots: lingering
    /// then batches acks that trickle in, but never idles most of the node's slots.
    pub linger_until: usize,
    /// Statements in flight at once.
    pub writers: usize,
}

/// Where executors send acks. Cloned into every producer; the acker stops after the last
/// clone is dropped and everything sent has been written.
#[derive(Clone)]
pub(crate) struct AckSender(mpsc::UnboundedSender<Ack>);

impl AckSender {
    pub fn send(&self, ack: Ack) {
        // The acker outlives every sender (it ends only when they are all dropped), so this
        // cannot fail while a sender exists.
        let _ = self.0.send(ack);
    }
}

/// The per-node ack writers.
pub(crate) struct Acker {
    pool: Db,
    sql: sqlx::SqlStr,
    insert_channel: String,
    batch_limit: usize,
    linger: Duration,
    linger_until: usize,
    writers: usize,
    /// Statements being written right now (retries' waits not included).
    in_flight: watch::Sender<usize>,
    metrics: Metrics,
}

/// How long a gathered batch, short of the batch limit, waits for another writer's statement
/// to finish before it is written beside it. Under load a statement takes a few tens of
/// milliseconds: waiting for it keeps the batches as large as one writer makes them (each
/// statement costs the database about as much as a larger one), while a statement stuck
/// behind a row lock or a slow server holds the acks behind it up for this long only.
const PATIENCE: Duration = Duration::from_millis(100);

/// The receiving end of the ack channel, shared by the writers: a writer holds it only while it
/// gathers a batch.
type SharedReceiver = Arc<Mutex<mpsc::UnboundedReceiver<Ack>>>;

impl Acker {
    pub fn new(pool: Db, prefix: &Prefix, settings: AckSettings, metrics: Metrics) -> Self {
        let batch_limit = settings.batch_limit.max(1);
        Self {
            pool,
            sql: render_with_insert(prefix, ACK, 15),
            insert_channel: prefix.channel("insert"),
            batch_limit,
            linger: settings.linger,
            linger_until: settings.linger_until.clamp(1, batch_limit),
            writers: settings.writers.max(1),
            in_flight: watch::Sender::new(0),
            metrics,
        }
    }

    /// Starts the writers; the returned task ends when they all have. `shutdown` is cancelled
    /// when the node begins to stop: from then on acks no longer linger. `give_up` is cancelled
    /// when the shutdown deadline has passed: only then is a batch that cannot be written
    /// abandoned.
    pub fn spawn(
        self,
        shutdown: CancellationToken,
        give_up: CancellationToken,
    ) -> (AckSender, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let rx: SharedReceiver = Arc::new(Mutex::new(rx));
        let acker = Arc::new(self);
        let mut writers = JoinSet::new();
        for _ in 0..acker.writers {
            writers.spawn(
                acker
                    .clone()
                    .run(rx.clone(), shutdown.clone(), give_up.clone()),
            );
        }
        let handle = tokio::spawn(async move { while writers.join_next().await.is_some() {} });
        (AckSender(tx), handle)
    }

    /// One writer: gathers a batch while holding the receiver, then writes it with the
    /// receiver released, so that another writer gathers (and writes) the next batch while
    /// this one is in flight. Ends when the channel is closed and empty.
    ///
    /// A batch is written beside another writer's statement only once it is full, or after
    /// [`PATIENCE`]; until then it keeps gathering, as one writer's would.
    async fn run(
        self: Arc<Self>,
        rx: SharedReceiver,
        shutdown: CancellationToken,
        give_up: CancellationToken,
    ) {
        let mut batch: Vec<Ack> = Vec::new();
        loop {
            {
                let mut rx = rx.lock().await;
                if rx.recv_many(&mut batch, self.batch_limit).await == 0 {
                    return;
                }
                self.linger(&mut rx, &mut batch, &shutdown).await;
                self.await_turn(&mut rx, &mut batch, &shutdown).await;
            }
            if !self.write_until_done(&mut batch, &give_up).await {
                let mut ids: Vec<i64> = batch.iter().map(|ack| ack.id).collect();
                // Whatever no writer has taken yet is abandoned with this batch; the other
                // writers then find the channel closed and end once their own batches are
                // written or given up.
                let mut rx = rx.lock().await;
                rx.close();
                while let Ok(ack) = rx.try_recv() {
                    ids.push(ack.id);
                }
                tracing::error!(
                    ?ids,
                    "shutdown deadline passed with acks unwritten; these jobs stay executing until rescued"
                );
                return;
            }
        }
    }

    /// Writes `batch`, retrying with backoff. Returns false, with the batch kept, when a write
    /// failed after `give_up` was cancelled.
    async fn write_until_done(&self, batch: &mut Vec<Ack>, give_up: &CancellationToken) -> bool {
        let mut failures = 0u32;
        loop {
            let Err(error) = self.write(batch).await else {
                return true;
            };
            failures += 1;
            let delay = reconnect_delay(
                failures,
                Duration::from_millis(50),
                Duration::from_secs(5),
                &mut rand::rng(),
            );
            tracing::warn!(%error, pending = batch.len(), retry_in = ?delay, "ack failed; will retry");
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = give_up.cancelled() => return false,
            }
        }
    }

    /// Gathers the acks that arrive within the linger time of the batch's first one, until
    /// the batch holds `linger_until` of them. Once the node is stopping nothing lingers: the
    /// jobs draining in the grace period keep their slots until their acks are written.
    async fn linger(
        &self,
        rx: &mut mpsc::UnboundedReceiver<Ack>,
        batch: &mut Vec<Ack>,
        shutdown: &CancellationToken,
    ) {
        let deadline = tokio::time::sleep(self.linger);
        tokio::pin!(deadline);
        while batch.len() < self.linger_until {
            let room = self.batch_limit - batch.len();
            // Biased: what has already arrived is taken even when the linger is zero.
            tokio::select! {
                biased;
                received = rx.recv_many(batch, room) => if received == 0 { return },
                _ = &mut deadline => return,
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// While another writer's statement is in flight, gathers more acks, until the batch is
    /// full, that statement is done, [`PATIENCE`] has passed or the node is stopping.
    async fn await_turn(
        &self,
        rx: &mut mpsc::UnboundedReceiver<Ack>,
        batch: &mut Vec<Ack>,
        shutdown: &CancellationToken,
    ) {
        let mut in_flight = self.in_flight.subscribe();
        let patience = tokio::time::sleep(PATIENCE);
        tokio::pin!(patience);
        while batch.len() < self.batch_limit && *in_flight.borrow_and_update() > 0 {
            let room = self.batch_limit - batch.len();
            tokio::select! {
                biased;
                received = rx.recv_many(batch, room) => if received == 0 { return },
                _ = in_flight.changed() => {}
                _ = &mut patience => return,
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// Writes `batch` and empties it on success.
    async fn write(&self, batch: &mut Vec<Ack>) -> Result<()> {
        let started = Instant::now();
        let mut ids = Vec::with_capacity(batch.len());
        let mut attempted_at = Vec::with_capacity(batch.len());
        let mut states = Vec::with_capacity(batch.len());
        let mut delays = Vec::with_capacity(batch.len());
        let mut errors = Vec::with_capacity(batch.len());
        let mut parents = Vec::new();
        let mut follow_ups = JobColumns::default();
        for ack in batch.iter() {
            ids.push(ack.id);
            attempted_at.push(ack.attempted_at);
            states.push(ack.state.as_str());
            delays.push(ack.delay_seconds);
            errors.push(ack.error.as_deref());
            for job in &ack.then_insert {
                // Validated by the executor before the ack was queued.
                follow_ups.push(job)?;
                parents.push(ack.id);
            }
        }
        let query = sqlx::query_as::<_, (Vec<i64>, i64, i64)>(self.sql.clone())
            .bind(&ids)
            .bind(&attempted_at)
            .bind(&states)
            .bind(&delays)
            .bind(&errors)
            .bind(&parents);
        self.in_flight.send_modify(|n| *n += 1);
        let written = follow_ups
            .bind(query)
            .bind(&self.insert_channel)
            .fetch_one(&self.pool)
            .await;
        self.in_flight.send_modify(|n| *n -= 1);
        let (acked, inserted, _) = written?;
        self.metrics
            .record_ack_batch(batch.len(), started.elapsed());
        if acked.len() < ids.len() {
            let stale: Vec<i64> = ids
                .iter()
                .filter(|id| !acked.contains(id))
                .copied()
                .collect();
            tracing::warn!(
                ?stale,
                "acks skipped: these jobs were rescued, cancelled or deleted while running"
            );
        }
        tracing::trace!(acked = acked.len(), inserted, "acks written");
        for ack in batch.drain(..) {
            if let Some(written) = ack.written {
                let _ = written.send(());
            }
        }
        Ok(())
    }
}
