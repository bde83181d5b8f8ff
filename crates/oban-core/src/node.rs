//! A running node: producers for its queues, the acker, the listener, the `gossip` and
//! `metrics` publishers for Oban Web, and, when it leads, the maintenance loops.
//! [`Node::builder`] starts one; [`NodeHandle::shutdown`] stops it gracefully.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::ack::{AckSender, AckSettings, Acker};
use crate::client::Client;
use crate::config::{Config, QueueConfig};
use crate::cron::{self, CronEntry};
use crate::gossip::{Check, Gossip, HeardChecks};
use crate::leader::Leader;
use crate::lifeline::Lifeline;
use crate::liveness::Liveness;
use crate::met::{self, FullCounts};
use crate::notifier::{Channel, Listener, ListenerHealth, Notification};
use crate::producer::{ProducerContext, ProducerEvent, QueueStatus};
use crate::pruner::Pruner;
use crate::queues::{Maintained, Midwife, MidwifeSettings, Producers, QueueCommand};
use crate::schema::{self, SchemaInfo};
use crate::signal::{self, Signal};
use crate::stager::Stager;
use crate::telemetry::Metrics;
use crate::worker::{Registry, Worker};
use crate::{Db, Error, Result};

/// Entry point: `Node::builder(pool).config(config).worker(MyWorker)?.start().await?`.
pub struct Node;

impl Node {
    /// A builder for a node on `pool`.
    pub fn builder(pool: PgPool) -> NodeBuilder {
        NodeBuilder {
            pool,
            config: Config::default(),
            registry: Registry::default(),
        }
    }
}

/// Collects configuration and workers, then starts the node.
pub struct NodeBuilder {
    pool: PgPool,
    config: Config,
    registry: Registry,
}

impl NodeBuilder {
    /// Replaces the configuration.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Changes the configuration in place, e.g. one setting on top of what a caller built.
    pub fn configure(mut self, change: impl FnOnce(&mut Config)) -> Self {
        change(&mut self.config);
        self
    }

    /// Registers a worker under its name.
    pub fn worker<W: Worker>(mut self, worker: W) -> Result<Self> {
        self.registry.register(worker)?;
        Ok(self)
    }

    /// Checks the schema, then starts every component. Fails with one clear message when the
    /// schema is missing or too old, or the configuration is invalid.
    pub async fn start(self) -> Result<NodeHandle> {
        let NodeBuilder {
            pool,
            config,
            registry,
        } = self;
        config.validate()?;
        let pool = Db::with_pooler(pool, config.behind_pooler);
        let schema = schema::check(&pool, &config.prefix).await?;
        warn_if_the_pool_is_small(&pool, &config);
        let mut node = Wiring::new(pool, config);
        let (acker, acker_task) = node.acker();
        let (producers, commands, midwife_task) = node.queues(registry, acker);
        let health = node.listener(&producers, commands);
        node.gossip(&producers);
        node.metrics_reporter();
        node.maintenance(&schema, &producers, &health);
        node.cronitor();
        Ok(node.started(schema, producers, health, midwife_task, acker_task))
    }
}

/// Busy at once under load: one claim per queue, the ack writers, and a couple of maintenance
/// statements (the listener has a connection of its own). A smaller pool works, but statements
/// then queue for connections and the ack writers serialize.
fn warn_if_the_pool_is_small(pool: &Db, config: &Config) {
    let busy = config.queues.len() + config.ack_writers + 2;
    let size = pool.options().get_max_connections() as usize;
    if size < busy {
        tracing::warn!(
            pool_size = size,
            queues = config.queues.len(),
            ack_writers = config.ack_writers,
            "the pool has fewer connections than the node uses at once (one per queue, one per ack writer, two for maintenance); statements will wait for connections"
        );
    }
}

/// A node while it starts: what its components share, and each component as one step of
/// [`NodeBuilder::start`], which reads as the node's list of children.
struct Wiring {
    pool: Db,
    config: Config,
    metrics: Metrics,
    /// Filled by the router from the gossip channel, read by `check_queue`.
    checks: HeardChecks,
    /// Shared by the cron scheduler and the cronitor.
    crontab: Arc<[CronEntry]>,
    /// Who is alive: fed by the router on every node, so that whichever comes to lead knows;
    /// asked by the lifeline.
    liveness: Liveness,
    services: JoinSet<()>,
    /// Producers stop claiming (the first step of a shutdown).
    stop_claiming: CancellationToken,
    /// The listener, publishers and maintenance loops stop.
    stop_services: CancellationToken,
    /// Running jobs are abandoned once the grace period is over.
    abandon: CancellationToken,
    /// The acker stops retrying what it could not write.
    give_up_acks: CancellationToken,
    is_leader: watch::Receiver<bool>,
    /// Taken by the leader, which is the only one to say so.
    is_leader_tx: Option<watch::Sender<bool>>,
    /// The router hears a peer resign and tells the leader, which then elects at once.
    resigned_tx: mpsc::Sender<()>,
    resigned: Option<mpsc::Receiver<()>>,
}

impl Wiring {
    fn new(pool: Db, config: Config) -> Self {
        let (is_leader_tx, is_leader) = watch::channel(false);
        let (resigned_tx, resigned) = mpsc::channel(1);
        Self {
            crontab: config.crontab.clone().into(),
            // A producer is forgotten once the age rule covers its jobs, never while it may be
            // alive.
            liveness: Liveness::new(config.rescue_after.max(config.rescue_silence)),
            pool,
            config,
            metrics: Metrics::default(),
            checks: HeardChecks::default(),
            services: JoinSet::new(),
            stop_claiming: CancellationToken::new(),
            stop_services: CancellationToken::new(),
            abandon: CancellationToken::new(),
            give_up_acks: CancellationToken::new(),
            is_leader,
            is_leader_tx: Some(is_leader_tx),
            resigned_tx,
            resigned: Some(resigned),
        }
    }

    /// The acker, which records finished jobs in batches.
    fn acker(&self) -> (AckSender, tokio::task::JoinHandle<()>) {
        let config = &self.config;
        let settings = AckSettings {
            batch_limit: config.ack_batch_limit,
            linger: config.ack_linger,
            // From the configured limits: a queue scaled later by a signal leaves it as is.
            linger_until: config.queues.iter().map(|queue| queue.limit).sum::<usize>() / 2,
            writers: config.ack_writers,
        };
        Acker::new(
            self.pool.clone(),
            &config.prefix,
            settings,
            self.metrics.clone(),
        )
        .spawn(self.stop_claiming.clone(), self.give_up_acks.clone())
    }

    /// A producer per configured queue, under the midwife that starts and stops queues at
    /// run time.
    fn queues(
        &self,
        registry: Registry,
        acker: AckSender,
    ) -> (
        Producers,
        mpsc::Sender<QueueCommand>,
        tokio::task::JoinHandle<()>,
    ) {
        let config = &self.config;
        let context = ProducerContext {
            pool: self.pool.clone(),
            prefix: config.prefix.clone(),
            registry: Arc::new(registry),
            acker,
            metrics: self.metrics.clone(),
            log_args: config.log_args,
            abandon: self.abandon.clone(),
        };
        let settings = MidwifeSettings {
            node: config.node.clone(),
            poll_interval: config.poll_interval,
            dispatch_cooldown: config.dispatch_cooldown,
            shutdown_grace: config.shutdown_grace,
        };
        let mut midwife = Midwife::new(settings, context, self.stop_claiming.clone());
        for queue in &config.queues {
            midwife.start(queue.clone(), false);
        }
        let producers = midwife.producers();
        let (commands, inbox) = mpsc::channel(64);
        (producers, commands, tokio::spawn(midwife.run(inbox)))
    }

    /// The LISTEN connection, and the router that hands its notifications to the producers,
    /// the midwife and the leader. Returns the listener's health.
    fn listener(
        &mut self,
        producers: &Producers,
        commands: mpsc::Sender<QueueCommand>,
    ) -> watch::Receiver<ListenerHealth> {
        let config = &self.config;
        let (health_tx, health) = watch::channel(ListenerHealth::Down {
            since: tokio::time::Instant::now(),
        });
        let (deliver, notifications) = mpsc::channel(1024);
        let (reconnected_tx, reconnected) = mpsc::channel(1);
        let listen_options = config
            .listen_options
            .clone()
            .unwrap_or_else(|| self.pool.connect_options().as_ref().clone());
        let listener = Listener {
            pool: self.pool.clone(),
            listen_pool: Listener::pool_for(listen_options),
            prefix: config.prefix.clone(),
            node: config.node.clone(),
            heartbeat: config.heartbeat,
            deliver,
            health: health_tx,
            reconnected: reconnected_tx,
            polling_only: config.behind_pooler && config.listen_options.is_none(),
        };
        self.services
            .spawn(listener.run(self.stop_services.clone()));
        let router = Router {
            checks: self.checks.clone(),
            ident: signal::ident(&config.name, &config.node),
            leadership_name: config.leadership_name.clone(),
            producers: producers.clone(),
            liveness: self.liveness.clone(),
            commands,
            resigned: self.resigned_tx.clone(),
        };
        self.services.spawn(router.run(notifications, reconnected));
        health
    }

    /// `gossip` checks of this node's queues, for Oban Web and the other nodes.
    fn gossip(&mut self, producers: &Producers) {
        let config = &self.config;
        let Some(interval) = config.gossip_interval else {
            return;
        };
        let gossip = Gossip {
            pool: self.pool.clone(),
            prefix: config.prefix.clone(),
            name: config.name.clone(),
            node: config.node.clone(),
            producers: producers.clone(),
            interval,
        };
        self.services.spawn(gossip.run(self.stop_services.clone()));
    }

    /// Oban Met's job metrics, for Oban Web's charts.
    fn metrics_reporter(&mut self) {
        let config = &self.config;
        let Some(interval) = config.metrics_interval else {
            return;
        };
        let reporter = met::Reporter {
            pool: self.pool.clone(),
            prefix: config.prefix.clone(),
            name: config.name.clone(),
            node: config.node.clone(),
            metrics: self.metrics.clone(),
            interval,
            full_counts: config.full_counts.then(|| FullCounts {
                estimate_limit: config.full_count_estimate_limit,
                is_leader: self.is_leader.clone(),
            }),
        };
        self.services
            .spawn(reporter.run(self.stop_services.clone()));
    }

    /// The election, and what the leader alone runs: staging, rescuing, pruning and cron.
    fn maintenance(
        &mut self,
        schema: &SchemaInfo,
        producers: &Producers,
        health: &watch::Receiver<ListenerHealth>,
    ) {
        let config = &self.config;
        let table = schema.leadership_table.filter(|_| config.leadership);
        if config.leadership && table.is_none() {
            tracing::warn!(
                "neither oban_peers nor oban_leaders exists: this node will not lead, so its queues are not staged, rescued or pruned by it"
            );
        }
        let (Some(table), Some(is_leader_tx), Some(resigned)) =
            (table, self.is_leader_tx.take(), self.resigned.take())
        else {
            return;
        };
        let queues = match &config.maintained_queues {
            Some(listed) => Maintained::Listed(listed.clone().into()),
            None => Maintained::Running {
                configured: config.maintained_queues().into(),
                producers: producers.clone(),
            },
        };
        let (pool, prefix, stop) = (&self.pool, &config.prefix, &self.stop_services);
        let leader = Leader {
            pool: pool.clone(),
            prefix: prefix.clone(),
            table,
            name: config.leadership_name.clone(),
            node: config.node.clone(),
            interval: config.leader_interval,
            is_leader: is_leader_tx,
            resigned,
        };
        self.services.spawn(leader.run(stop.clone()));
        let stager = Stager {
            pool: pool.clone(),
            prefix: prefix.clone(),
            queues: queues.clone(),
            interval: config.stage_interval,
            limit: config.stage_limit,
        };
        let is_leader = &self.is_leader;
        self.services
            .spawn(stager.run(is_leader.clone(), stop.clone()));
        let lifeline = Lifeline {
            pool: pool.clone(),
            prefix: prefix.clone(),
            queues: queues.clone(),
            own_producers: producers.clone(),
            liveness: self.liveness.clone(),
            health: health.clone(),
            oban_py_producers: schema.oban_producers,
            interval: config.rescue_interval,
            silence: config.rescue_silence,
            rescue_after: config.rescue_after,
        };
        self.services
            .spawn(lifeline.run(is_leader.clone(), stop.clone()));
        let pruner = Pruner {
            pool: pool.clone(),
            prefix: prefix.clone(),
            queues,
            interval: config.prune_interval,
            max_age: config.prune_max_age,
            limit: config.prune_limit,
        };
        self.services
            .spawn(pruner.run(is_leader.clone(), stop.clone()));
        if !self.crontab.is_empty() {
            let scheduler = cron::Scheduler {
                pool: pool.clone(),
                prefix: prefix.clone(),
                crontab: self.crontab.clone(),
                tick: config.cron_tick,
            };
            self.services
                .spawn(scheduler.run(is_leader.clone(), stop.clone()));
        }
    }

    /// The crontab on `cronitor`, for Oban Web's Crons page.
    fn cronitor(&mut self) {
        let config = &self.config;
        if self.crontab.is_empty() {
            return;
        }
        let cronitor = cron::Cronitor {
            pool: self.pool.clone(),
            prefix: config.prefix.clone(),
            name: config.name.clone(),
            node: config.node.clone(),
            crontab: self.crontab.clone(),
        };
        self.services
            .spawn(cronitor.run(self.stop_services.clone()));
    }

    /// The handle of the started node.
    fn started(
        self,
        schema: SchemaInfo,
        producers: Producers,
        health: watch::Receiver<ListenerHealth>,
        midwife_task: tokio::task::JoinHandle<()>,
        acker_task: tokio::task::JoinHandle<()>,
    ) -> NodeHandle {
        let config = self.config;
        tracing::info!(
            node = %config.node,
            queues = ?config.queues.iter().map(|q| format!("{}={}", q.name, q.limit)).collect::<Vec<_>>(),
            schema = ?schema.version,
            "node started"
        );
        NodeHandle {
            client: Client::new(self.pool, config.prefix.clone()),
            config,
            schema,
            monitor: NodeMonitor {
                checks: self.checks,
                metrics: self.metrics,
                producers,
                is_leader: self.is_leader,
                health,
            },
            midwife_task,
            acker_task,
            services: self.services,
            stop_claiming: self.stop_claiming,
            stop_services: self.stop_services,
            abandon: self.abandon,
            give_up_acks: self.give_up_acks,
        }
    }
}

/// A running node.
pub struct NodeHandle {
    config: Config,
    schema: SchemaInfo,
    client: Client,
    monitor: NodeMonitor,
    /// Ends once every producer has drained (see [`Midwife::run`]).
    midwife_task: tokio::task::JoinHandle<()>,
    acker_task: tokio::task::JoinHandle<()>,
    services: JoinSet<()>,
    stop_claiming: CancellationToken,
    stop_services: CancellationToken,
    abandon: CancellationToken,
    give_up_acks: CancellationToken,
}

/// A cheap, cloneable view of a node for health checks and dashboards: counters, leadership,
/// listener health and queue status. It may outlive the [`NodeHandle`] (a metrics endpoint
/// keeps answering while the node drains); once the node has stopped, its queues are absent.
#[derive(Clone)]
pub struct NodeMonitor {
    checks: HeardChecks,
    metrics: Metrics,
    producers: Producers,
    is_leader: watch::Receiver<bool>,
    health: watch::Receiver<ListenerHealth>,
}

impl NodeMonitor {
    /// Counters since start.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Whether this node currently leads this runtime's nodes.
    pub fn is_leader(&self) -> bool {
        *self.is_leader.borrow()
    }

    /// The notification listener's state.
    pub fn listener_health(&self) -> ListenerHealth {
        *self.health.borrow()
    }

    /// The status of each running queue (and of each stopped one still finishing its jobs),
    /// as gossip checks report it.
    pub async fn queue_status(&self) -> Vec<QueueStatus> {
        self.producers.statuses().await
    }

    /// The latest `gossip` check of `queue` from every node that runs it (this one included
    /// when it publishes checks), Rust, Elixir or Python, heard within
    /// [`CHECK_TTL`](crate::gossip::CHECK_TTL); like `Oban.check_queue`, but cluster-wide.
    /// Empty until the first checks arrive (every second by default) or while the listener is
    /// down.
    pub fn check_queue(&self, queue: &str) -> Vec<Check> {
        self.checks.queue(queue)
    }
}

/// What a graceful shutdown achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Whether every running job finished within the grace period.
    pub drained: bool,
}

impl NodeHandle {
    /// The configuration the node runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// What the schema check found.
    pub fn schema(&self) -> &SchemaInfo {
        &self.schema
    }

    /// A client on the node's pool and prefix.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A view of the node for monitoring that can be cloned and outlive this handle.
    pub fn monitor(&self) -> NodeMonitor {
        self.monitor.clone()
    }

    /// Counters since start.
    pub fn metrics(&self) -> &Metrics {
        self.monitor.metrics()
    }

    /// Whether this node currently leads this runtime's nodes.
    pub fn is_leader(&self) -> bool {
        self.monitor.is_leader()
    }

    /// Watches leadership changes.
    pub fn leadership(&self) -> watch::Receiver<bool> {
        self.monitor.is_leader.clone()
    }

    /// The notification listener's state.
    pub fn listener_health(&self) -> ListenerHealth {
        self.monitor.listener_health()
    }

    /// The status of each queue, as gossip checks report it.
    pub async fn queue_status(&self) -> Vec<QueueStatus> {
        self.monitor.queue_status().await
    }

    /// Every node's latest check of `queue` (see [`NodeMonitor::check_queue`]).
    pub fn check_queue(&self, queue: &str) -> Vec<Check> {
        self.monitor.check_queue(queue)
    }

    /// Stops gracefully: no new claims; running jobs get the grace period to finish and are
    /// acked; jobs still running after it are abandoned unacked (left `executing` for rescue,
    /// never half-written); acks are flushed; leadership is released.
    pub async fn shutdown(mut self) -> ShutdownReport {
        tracing::info!(node = %self.config.node, grace = ?self.config.shutdown_grace, "shutting down");
        self.stop_claiming.cancel();
        let drained = tokio::time::timeout(self.config.shutdown_grace, &mut self.midwife_task)
            .await
            .is_ok();
        if !drained {
            self.abandon.cancel();
            let _ = (&mut self.midwife_task).await;
        }
        let ack_deadline = self.config.shutdown_grace.max(Duration::from_secs(5));
        if tokio::time::timeout(ack_deadline, &mut self.acker_task)
            .await
            .is_err()
        {
            self.give_up_acks.cancel();
            let _ = (&mut self.acker_task).await;
        }
        self.stop_services.cancel();
        while self.services.join_next().await.is_some() {}
        tracing::info!(node = %self.config.node, drained, "node stopped");
        ShutdownReport { drained }
    }
}

/// Routes notifications to the producers, the leader and the heard checks.
struct Router {
    checks: HeardChecks,
    ident: String,
    leadership_name: String,
    producers: Producers,
    /// Fed with the producers heard on `gossip`.
    liveness: Liveness,
    /// To the midwife, which starts and stops queues.
    commands: mpsc::Sender<QueueCommand>,
    resigned: mpsc::Sender<()>,
}

impl Router {
    async fn run(
        self,
        mut notifications: mpsc::Receiver<Notification>,
        mut reconnected: mpsc::Receiver<()>,
    ) {
        loop {
            tokio::select! {
                Some(notification) = notifications.recv() => self.route(notification),
                Some(()) = reconnected.recv() => {
                    self.liveness.listening(tokio::time::Instant::now());
                    // Wake-ups sent while the listener was away are lost: look now.
                    for events in self.producers.all_events() {
                        let _ = events.try_send(ProducerEvent::Wake);
                    }
                }
                else => return,
            }
        }
    }

    fn route(&self, Notification { channel, payload }: Notification) {
        match channel {
            Channel::Insert => {
                if let Some(events) = payload["queue"]
                    .as_str()
                    .and_then(|queue| self.producers.events(queue))
                {
                    // A full inbox already holds a wake-up.
                    let _ = events.try_send(ProducerEvent::Wake);
                }
            }
            Channel::Signal => self.signal(&payload),
            Channel::Leader => {
                if payload["down"].as_str() == Some(self.leadership_name.as_str()) {
                    let _ = self.resigned.try_send(());
                }
            }
            Channel::Gossip => {
                self.checks.hear(&payload);
                self.liveness
                    .heard_checks(&payload, tokio::time::Instant::now());
            }
            Channel::Sonar | Channel::Metrics | Channel::Cronitor => {}
        }
    }

    fn signal(&self, payload: &Value) {
        let Some(signal) = Signal::parse(payload, &self.ident) else {
            return;
        };
        tracing::debug!(?signal, "signal received");
        let send = |queue: &str, event: ProducerEvent| {
            if let Some(events) = self.producers.events(queue) {
                let _ = events.try_send(event);
            }
        };
        let command = |command: QueueCommand| {
            if let Err(error) = self.commands.try_send(command) {
                tracing::warn!(%error, "queue start/stop signal dropped");
            }
        };
        match signal {
            Signal::Pause(ref target) | Signal::Resume(ref target) => {
                let pause = matches!(signal, Signal::Pause(_));
                for queue in self.producers.queues() {
                    if target.matches(&queue) {
                        send(
                            &queue,
                            if pause {
                                ProducerEvent::Pause
                            } else {
                                ProducerEvent::Resume
                            },
                        );
                    }
                }
            }
            Signal::Scale { queue, limit } => send(&queue, ProducerEvent::Scale(limit)),
            Signal::Start {
                queue,
                limit,
                paused,
            } => command(QueueCommand::Start {
                queue: QueueConfig::new(queue, limit),
                paused,
            }),
            Signal::Stop { queue } => command(QueueCommand::Stop { queue }),
            // A stopping queue still runs jobs, which may be killed.
            Signal::Kill { job_id } => {
                for events in self.producers.all_events() {
                    let _ = events.try_send(ProducerEvent::Kill(job_id));
                }
            }
        }
    }
}

impl From<tokio::task::JoinError> for Error {
    fn from(error: tokio::task::JoinError) -> Self {
        Error::Config(format!("task failed: {error}"))
    }
}
