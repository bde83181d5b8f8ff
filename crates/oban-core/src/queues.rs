//! The queues a node runs, started and stopped while it runs.
//!
//! [`Producers`] is the shared view of the running producers that the router, the gossip
//! publisher, the lifeline and the monitor read. The [`Midwife`] owns the producer tasks: it
//! starts the configured queues, then starts and stops queues on `start` and `stop` signals, as
//! Elixir's `Oban.Midwife` does. A stopped queue claims nothing more; its running jobs get the
//! shutdown grace period to finish (then they are abandoned unacked, as at node shutdown), and
//! meanwhile it reports itself shutting down. Any queue can be started: every registered worker
//! runs wherever its jobs are claimed.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::QueueConfig;
use crate::producer::{Producer, ProducerContext, ProducerEvent, ProducerSettings, QueueStatus};

/// One producer as the others see it.
struct Entry {
    uuid: Uuid,
    events: mpsc::Sender<ProducerEvent>,
    /// Ends its claiming (a child of the node's stop token).
    stop: CancellationToken,
    /// Abandons its running jobs (a child of the node's abandon token).
    abandon: CancellationToken,
}

#[derive(Default)]
struct Entries {
    /// Claiming producers by queue: the ones signals and insert notifications reach.
    active: HashMap<String, Entry>,
    /// Stopped producers finishing their running jobs, by UUID.
    stopping: HashMap<Uuid, mpsc::Sender<ProducerEvent>>,
}

/// The node's producers, shared. Cheap to clone; every lock is held only to copy senders out.
#[derive(Clone, Default)]
pub(crate) struct Producers(Arc<RwLock<Entries>>);

impl Producers {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Entries> {
        // A panic while holding the lock leaves the map intact: nothing is half-written.
        self.0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Entries> {
        self.0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The inbox of the claiming producer of `queue`.
    pub fn events(&self, queue: &str) -> Option<mpsc::Sender<ProducerEvent>> {
        self.read()
            .active
            .get(queue)
            .map(|entry| entry.events.clone())
    }

    /// The names of the claiming queues.
    pub fn queues(&self) -> Vec<String> {
        self.read().active.keys().cloned().collect()
    }

    /// The inboxes of every producer, stopping ones included (they still run jobs).
    pub fn all_events(&self) -> Vec<mpsc::Sender<ProducerEvent>> {
        let entries = self.read();
        let active = entries.active.values().map(|entry| entry.events.clone());
        active.chain(entries.stopping.values().cloned()).collect()
    }

    /// Asks every producer, stopping ones included, for its status, sorted by queue;
    /// producers that have ended are left out.
    pub async fn statuses(&self) -> Vec<QueueStatus> {
        let inboxes = self.all_events();
        let mut statuses = Vec::with_capacity(inboxes.len());
        for events in inboxes {
            let (reply, answer) = oneshot::channel();
            if events.send(ProducerEvent::Status(reply)).await.is_ok()
                && let Ok(status) = answer.await
            {
                statuses.push(status);
            }
        }
        statuses.sort_by(|a, b| a.queue.cmp(&b.queue));
        statuses
    }

    /// The UUIDs of every producer, stopping ones included: the jobs they run are alive.
    pub fn uuids(&self) -> Vec<String> {
        let entries = self.read();
        let active = entries.active.values().map(|entry| entry.uuid);
        active
            .chain(entries.stopping.keys().copied())
            .map(|uuid| uuid.to_string())
            .collect()
    }
}

/// The queues the leader stages, rescues and prunes.
#[derive(Clone)]
pub(crate) enum Maintained {
    /// Exactly these (`Config::maintained_queues`).
    Listed(Arc<[String]>),
    /// The configured queues and any other this node runs now (started by a signal).
    Running {
        configured: Arc<[String]>,
        producers: Producers,
    },
}

impl Maintained {
    /// The queue names as of now.
    pub fn names(&self) -> Vec<String> {
        match self {
            Maintained::Listed(queues) => queues.to_vec(),
            Maintained::Running {
                configured,
                producers,
            } => {
                let mut names = configured.to_vec();
                for queue in producers.queues() {
                    if !names.contains(&queue) {
                        names.push(queue);
                    }
                }
                names
            }
        }
    }
}

/// A change to the running queues, from a signal.
#[derive(Debug)]
pub(crate) enum QueueCommand {
    Start { queue: QueueConfig, paused: bool },
    Stop { queue: String },
}

/// Starts and stops the node's producers and waits for them.
pub(crate) struct Midwife {
    /// Dropped once the node stops claiming: it holds an ack sender, and the acker ends only
    /// when every sender is gone.
    context: Option<ProducerContext>,
    node: String,
    poll_interval: Duration,
    dispatch_cooldown: Duration,
    shutdown_grace: Duration,
    producers: Producers,
    tasks: JoinSet<(String, Uuid)>,
    stop_claiming: CancellationToken,
}

/// How the midwife sets up producers, from the node's configuration.
pub(crate) struct MidwifeSettings {
    pub node: String,
    pub poll_interval: Duration,
    pub dispatch_cooldown: Duration,
    pub shutdown_grace: Duration,
}

impl Midwife {
    pub fn new(
        settings: MidwifeSettings,
        context: ProducerContext,
        stop_claiming: CancellationToken,
    ) -> Self {
        Self {
            context: Some(context),
            node: settings.node,
            poll_interval: settings.poll_interval,
            dispatch_cooldown: settings.dispatch_cooldown,
            shutdown_grace: settings.shutdown_grace,
            producers: Producers::default(),
            tasks: JoinSet::new(),
            stop_claiming,
        }
    }

    /// The shared view of the producers it runs.
    pub fn producers(&self) -> Producers {
        self.producers.clone()
    }

    /// Starts a producer for `queue`, unless one claims for it already (as in Elixir and
    /// oban-py, a second start changes nothing).
    pub fn start(&mut self, queue: QueueConfig, paused: bool) {
        let Some(context) = &self.context else { return };
        if self.producers.read().active.contains_key(&queue.name) {
            tracing::debug!(queue = %queue.name, "start ignored: the queue runs already");
            return;
        }
        let (stop, abandon) = (
            self.stop_claiming.child_token(),
            context.abandon.child_token(),
        );
        let producer = Producer::new(
            ProducerSettings {
                queue: queue.name.clone(),
                limit: queue.limit,
                paused,
                node: self.node.clone(),
                poll_interval: self.poll_interval,
                dispatch_cooldown: self.dispatch_cooldown,
            },
            ProducerContext {
                abandon: abandon.clone(),
                ..context.clone()
            },
        );
        let uuid = producer.uuid();
        let (events, inbox) = mpsc::channel(256);
        let name = queue.name.clone();
        let task_stop = stop.clone();
        self.tasks.spawn(async move {
            producer.run(inbox, task_stop).await;
            (name, uuid)
        });
        self.producers.write().active.insert(
            queue.name,
            Entry {
                uuid,
                events,
                stop,
                abandon,
            },
        );
    }

    /// Stops the producer of `queue`: it claims nothing more, and its running jobs are
    /// abandoned if they are still running after the shutdown grace period.
    fn stop(&mut self, queue: &str) {
        let entry = {
            let mut entries = self.producers.write();
            let Some(entry) = entries.active.remove(queue) else {
                tracing::debug!(queue, "stop ignored: the queue does not run here");
                return;
            };
            entries.stopping.insert(entry.uuid, entry.events.clone());
            entry
        };
        entry.stop.cancel();
        tracing::info!(queue, grace = ?self.shutdown_grace, "queue stopping");
        let (abandon, grace) = (entry.abandon, self.shutdown_grace);
        // Ends at the deadline, or earlier once the node abandons everything anyway.
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(grace) => abandon.cancel(),
                _ = abandon.cancelled() => {}
            }
        });
    }

    fn apply(&mut self, command: QueueCommand) {
        match command {
            QueueCommand::Start { queue, paused } => match queue.validate() {
                Ok(()) => {
                    tracing::info!(queue = %queue.name, limit = queue.limit, paused, "queue starting on signal");
                    self.start(queue, paused);
                }
                Err(error) => tracing::warn!(%error, "start signal ignored"),
            },
            QueueCommand::Stop { queue } => self.stop(&queue),
        }
    }

    /// Forgets a producer whose task has ended.
    fn ended(&mut self, done: Result<(String, Uuid), tokio::task::JoinError>) {
        match done {
            Ok((queue, uuid)) => {
                let mut entries = self.producers.write();
                entries.stopping.remove(&uuid);
                if entries
                    .active
                    .get(&queue)
                    .is_some_and(|entry| entry.uuid == uuid)
                {
                    entries.active.remove(&queue);
                }
            }
            Err(error) => tracing::error!(%error, "producer task failed"),
        }
    }

    /// Applies commands until the node stops claiming, then waits for every producer to drain.
    pub async fn run(mut self, mut commands: mpsc::Receiver<QueueCommand>) {
        loop {
            tokio::select! {
                _ = self.stop_claiming.cancelled() => break,
                Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => self.ended(done),
                Some(command) = commands.recv() => self.apply(command),
            }
        }
        self.context = None;
        while let Some(done) = self.tasks.join_next().await {
            self.ended(done);
        }
    }
}
