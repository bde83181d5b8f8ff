//! How a node is set up. Defaults follow Oban's (Elixir's where the runtimes agree, oban-py's
//! for the maintenance loops that Elixir leaves off by default).

use std::time::Duration;

use sqlx::postgres::PgConnectOptions;

use crate::cron::CronEntry;
use crate::telemetry::LogArgs;
use crate::{Error, Prefix, Result};

/// A node's configuration. Build it with struct update syntax:
///
/// ```
/// use oban_core::config::{Config, QueueConfig};
/// let config = Config {
///     queues: vec![QueueConfig::new("badges", 10)],
///     ..Config::default()
/// };
/// ```
///
/// Its debug form shows [`Config::listen_options`] without the password.
#[derive(Clone)]
pub struct Config {
    /// Instance name, used in signal idents (`"<name>.<node>"`) and dashboards. Keep `"Oban"`
    /// so Oban Web and other runtimes can address this node.
    pub name: String,
    /// This node's name, unique per process; the first element of `attempted_by`.
    pub node: String,
    /// The schema holding the Oban tables.
    pub prefix: Prefix,
    /// Queues this node runs, with their local concurrency limits.
    pub queues: Vec<QueueConfig>,
    /// How often each producer looks for jobs without being woken.
    pub poll_interval: Duration,
    /// Wake-ups this soon after a claim are folded into one claim.
    pub dispatch_cooldown: Duration,
    /// How long running jobs may take to finish after shutdown begins.
    pub shutdown_grace: Duration,
    /// Most acks written in one statement.
    pub ack_batch_limit: usize,
    /// How long the first ack of a batch waits for others to share its statement; default
    /// zero (write as soon as the previous statement is done, as Oban acks). Raise it when
    /// jobs finish one by one at a few hundred per second (slow or CPU-bound workers): each
    /// small ack statement costs the database about as much as a large one, so batching cuts
    /// the database's CPU per job (the badge pipeline's figures are in the repository's
    /// docs/benchmarks.md). A job keeps its
    /// slot until its ack is written, so a batch stops lingering once half the node's slots
    /// (the sum of the configured queue limits) wait on it: the linger batches acks that
    /// trickle in and never caps a busy node at its slots per linger.
    pub ack_linger: Duration,
    /// Ack statements in flight at once; default 2. While one writer's statement runs, the
    /// next writer gathers the acks finishing behind it and writes them when its batch is full,
    /// when that statement is done, or after 100 ms: so one batch stuck behind a row lock (a
    /// long transaction, a dashboard) or a slow commit no longer holds up every ack of the node
    /// (and with them the slots of every queue), while under steady load the batches stay as
    /// large as one writer makes them. The default is for that isolation, not for speed: a
    /// drain is bound by its claims, and more writers did not drain faster (measured in
    /// docs/benchmarks.md). 1 restores strictly one ack statement at a time. Each writer uses a connection of
    /// the pool while it writes: size the pool for these, one claim per queue and two for
    /// maintenance (the node warns at start when it is smaller).
    pub ack_writers: usize,
    /// Interval of the listener's self-ping; three silent intervals mean a dead connection.
    pub heartbeat: Duration,
    /// Where to LISTEN, when not through the pool's server (e.g. the pool goes through a
    /// transaction-mode pooler, which cannot carry LISTEN).
    pub listen_options: Option<PgConnectOptions>,
    /// The pool goes through a transaction-mode pooler that does not track prepared
    /// statements (PgBouncer before 1.21, or without `max_prepared_statements`): every
    /// statement is sent unnamed inside a transaction of its own (see [`crate::Db`]).
    pub behind_pooler: bool,
    /// Whether this node takes part in leader election (and so may run maintenance).
    pub leadership: bool,
    /// The `oban_peers.name` this runtime elects under: distinct from Elixir's instance name
    /// so neither runtime takes leadership from the other.
    pub leadership_name: String,
    /// How long a leadership row lives; default 5 s. The leader renews it at half the interval
    /// and stops leading if a renewal has not landed within the interval; a follower tries
    /// again when the row expires, so a killed leader is replaced within about one interval
    /// (the README's oban-core section says how).
    pub leader_interval: Duration,
    /// Queues the leader stages, rescues and prunes; `None` means [`Config::queues`] and any
    /// other queue the leader runs now (started by a `start` signal).
    pub maintained_queues: Option<Vec<String>>,
    /// Staging interval.
    pub stage_interval: Duration,
    /// Most jobs staged per run.
    pub stage_limit: i64,
    /// Interval of the lifeline's full pass (the age rule below, and discarding available jobs
    /// that can never be claimed); producers that fell silent are looked for every second.
    pub rescue_interval: Duration,
    /// How long a producer that has gossiped may go unheard before the leader takes it for
    /// dead and rescues its executing jobs; default 5 s. A job of a producer heard within it
    /// is never rescued, however long it runs. Every node must gossip well within it (see
    /// [`Config::gossip_interval`]; Elixir's oban_met sends every 750 ms, oban-py every second
    /// when its metrics are on), and nobody is judged silent until this node's listener has
    /// been hearing for that long.
    pub rescue_silence: Duration,
    /// How long a job may be executing before the lifeline takes it for orphaned when its
    /// producer is one this node cannot see (never heard on `gossip`, and no live
    /// `oban_producers` row): Elixir nodes without oban_met, nodes with gossip off. Keep it
    /// above the longest job such nodes run.
    pub rescue_after: Duration,
    /// Pruner interval.
    pub prune_interval: Duration,
    /// How long finished jobs are kept.
    pub prune_max_age: Duration,
    /// Most jobs deleted per prune.
    pub prune_limit: i64,
    /// How often to publish `gossip` checks (queue status for Oban Web, and proof of life for
    /// the leader's lifeline); default 1 s, and at most half of [`Config::rescue_silence`].
    /// `None` publishes none: Oban Web then shows neither this node nor its queues, and its
    /// orphans are rescued only by the age rule ([`Config::rescue_after`]). Elixir sends
    /// them every 750 ms, oban-py every second; Oban Web forgets a check after 30 s.
    pub gossip_interval: Option<Duration>,
    /// How often to publish `metrics` (execution and wait time sketches and counts of the jobs
    /// this node finished, for Oban Web's charts); default 1 s, as oban_met. `None` publishes
    /// none.
    pub metrics_interval: Option<Duration>,
    /// Whether this runtime's leader (see [`Config::leadership`]) adds `full_count` (jobs per
    /// state and queue, which Oban Web's sidebar and queue counts show) to its metrics. Oban
    /// Web adds up every reporter's counts, so exactly one reporter in a cluster may send them:
    /// normally the Elixir leader running oban_met. Default `false`; turn it on only when no
    /// Elixir node with oban_met leads (and keep oban-py's `counts_enabled` off then).
    pub full_counts: bool,
    /// States with at least this many jobs at the previous count are estimated from the query
    /// planner instead of counted, as oban_met does; default 50,000.
    pub full_count_estimate_limit: i64,
    /// Jobs inserted on a schedule by the leader, one per entry and tick (see [`crate::cron`]);
    /// every node publishes its crontab to Oban Web. Empty by default.
    pub crontab: Vec<CronEntry>,
    /// How often the crontab is evaluated: each minute, aligned to the database clock. Tests
    /// shorten it; an entry then matches every tick within the minutes it names.
    pub cron_tick: Duration,
    /// How much of a job's args its job-end log event shows: all of them by default, as
    /// oban-py; only their keys, or none, when args hold personal data.
    pub log_args: LogArgs,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Spelled out because `PgConnectOptions`'s own debug form prints the password. The
        // exhaustive pattern makes a new field fail to compile until it is shown here too.
        let Config {
            name,
            node,
            prefix,
            queues,
            poll_interval,
            dispatch_cooldown,
            shutdown_grace,
            ack_batch_limit,
            ack_linger,
            ack_writers,
            heartbeat,
            listen_options,
            behind_pooler,
            leadership,
            leadership_name,
            leader_interval,
            maintained_queues,
            stage_interval,
            stage_limit,
            rescue_interval,
            rescue_silence,
            rescue_after,
            prune_interval,
            prune_max_age,
            prune_limit,
            gossip_interval,
            metrics_interval,
            full_counts,
            full_count_estimate_limit,
            crontab,
            cron_tick,
            log_args,
        } = self;
        f.debug_struct("Config")
            .field("name", name)
            .field("node", node)
            .field("prefix", prefix)
            .field("queues", queues)
            .field("poll_interval", poll_interval)
            .field("dispatch_cooldown", dispatch_cooldown)
            .field("shutdown_grace", shutdown_grace)
            .field("ack_batch_limit", ack_batch_limit)
            .field("ack_linger", ack_linger)
            .field("ack_writers", ack_writers)
            .field("heartbeat", heartbeat)
            .field("listen_options", &listen_options.as_ref().map(ListenTarget))
            .field("behind_pooler", behind_pooler)
            .field("leadership", leadership)
            .field("leadership_name", leadership_name)
            .field("leader_interval", leader_interval)
            .field("maintained_queues", maintained_queues)
            .field("stage_interval", stage_interval)
            .field("stage_limit", stage_limit)
            .field("rescue_interval", rescue_interval)
            .field("rescue_silence", rescue_silence)
            .field("rescue_after", rescue_after)
            .field("prune_interval", prune_interval)
            .field("prune_max_age", prune_max_age)
            .field("prune_limit", prune_limit)
            .field("gossip_interval", gossip_interval)
            .field("metrics_interval", metrics_interval)
            .field("full_counts", full_counts)
            .field("full_count_estimate_limit", full_count_estimate_limit)
            .field("crontab", crontab)
            .field("cron_tick", cron_tick)
            .field("log_args", log_args)
            .finish()
    }
}

/// Where connection options lead, without their password: `user@host:port/database (sslmode)`.
struct ListenTarget<'a>(&'a PgConnectOptions);

impl std::fmt::Debug for ListenTarget<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let options = self.0;
        write!(
            f,
            "{}@{}:{}/{} ({:?})",
            options.get_username(),
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or_default(),
            options.get_ssl_mode()
        )
    }
}

/// One queue and its local concurrency limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueConfig {
    /// Queue name.
    pub name: String,
    /// Jobs run at once on this node.
    pub limit: usize,
}

impl QueueConfig {
    /// A queue with its limit.
    pub fn new(name: impl Into<String>, limit: usize) -> Self {
        Self {
            name: name.into(),
            limit,
        }
    }

    /// Checks what the schema and a producer need: a name of 1-127 characters (Elixir's
    /// `queue_length` check) and a limit above zero.
    pub fn validate(&self) -> Result<()> {
        if self.name.is_empty() || self.name.chars().count() > 127 || self.limit == 0 {
            return Err(Error::Config(format!(
                "queue {:?} needs a name of 1-127 characters and a limit > 0",
                self.name
            )));
        }
        Ok(())
    }
}

impl std::fmt::Display for QueueConfig {
    /// `name=limit`, the form [`QueueConfig::from_str`](std::str::FromStr) reads.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.name, self.limit)
    }
}

impl std::str::FromStr for QueueConfig {
    type Err = Error;

    /// Parses `name` or `name=limit` (limit 10 when omitted, as oban-py's default).
    fn from_str(spec: &str) -> Result<Self> {
        let (name, limit) = match spec.split_once(['=', ':']) {
            Some((name, limit)) => {
                let limit = limit.trim().parse().map_err(|_| {
                    Error::Config(format!("queue limit in {spec:?} is not a number"))
                })?;
                (name, limit)
            }
            None => (spec, 10),
        };
        Ok(Self::new(name.trim(), limit))
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            name: "Oban".to_owned(),
            node: default_node_name(),
            prefix: Prefix::default(),
            queues: Vec::new(),
            poll_interval: Duration::from_secs(1),
            dispatch_cooldown: Duration::from_millis(5),
            shutdown_grace: Duration::from_secs(15),
            ack_batch_limit: 1000,
            ack_linger: Duration::ZERO,
            ack_writers: 2,
            heartbeat: Duration::from_secs(5),
            listen_options: None,
            behind_pooler: false,
            leadership: true,
            leadership_name: "Oban.rust".to_owned(),
            leader_interval: Duration::from_secs(5),
            maintained_queues: None,
            stage_interval: Duration::from_secs(1),
            stage_limit: 5_000,
            rescue_interval: Duration::from_secs(60),
            rescue_silence: Duration::from_secs(5),
            rescue_after: Duration::from_secs(300),
            prune_interval: Duration::from_secs(60),
            prune_max_age: Duration::from_secs(86_400),
            prune_limit: 10_000,
            gossip_interval: Some(Duration::from_secs(1)),
            metrics_interval: Some(Duration::from_secs(1)),
            full_counts: false,
            full_count_estimate_limit: 50_000,
            crontab: Vec::new(),
            cron_tick: Duration::from_secs(60),
            log_args: LogArgs::Full,
        }
    }
}

impl Config {
    /// Checks values that would otherwise fail later or silently misbehave.
    pub fn validate(&self) -> Result<()> {
        if self.node.is_empty() || self.node.chars().any(char::is_whitespace) {
            return Err(Error::Config(format!(
                "node name {:?} must be non-empty without whitespace",
                self.node
            )));
        }
        if self.leadership_name == self.name {
            return Err(Error::Config(format!(
                "leadership_name must differ from the instance name {:?}, or this node would contend with Elixir for leadership",
                self.name
            )));
        }
        if self.ack_writers == 0 {
            return Err(Error::Config(
                "ack_writers must be at least 1: nothing would write the acks".into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for queue in &self.queues {
            queue.validate()?;
            if !seen.insert(&queue.name) {
                return Err(Error::Config(format!(
                    "queue {:?} is configured twice",
                    queue.name
                )));
            }
        }
        for (what, value) in [
            ("poll_interval", self.poll_interval),
            ("heartbeat", self.heartbeat),
            ("leader_interval", self.leader_interval),
            ("stage_interval", self.stage_interval),
            ("rescue_interval", self.rescue_interval),
            ("rescue_silence", self.rescue_silence),
            ("prune_interval", self.prune_interval),
            ("cron_tick", self.cron_tick),
            (
                "gossip_interval",
                self.gossip_interval.unwrap_or(Duration::MAX),
            ),
            (
                "metrics_interval",
                self.metrics_interval.unwrap_or(Duration::MAX),
            ),
        ] {
            if value.is_zero() {
                return Err(Error::Config(format!("{what} must be positive")));
            }
        }
        if let Some(gossip) = self.gossip_interval
            && gossip.saturating_mul(2) > self.rescue_silence
        {
            return Err(Error::Config(format!(
                "gossip_interval ({gossip:?}) must be at most half of rescue_silence ({:?}), or \
                 the leader would take this node's producers for dead between two checks",
                self.rescue_silence
            )));
        }
        let mut names = std::collections::HashSet::new();
        for entry in &self.crontab {
            if !names.insert(entry.name()) {
                return Err(Error::Config(format!(
                    "two cron entries are named {:?}: each needs a name of its own",
                    entry.name()
                )));
            }
        }
        if self.full_counts && self.metrics_interval.is_none() {
            return Err(Error::Config(
                "full_counts needs metrics_interval: counts travel with the metrics".into(),
            ));
        }
        Ok(())
    }

    /// The queues the leader maintains.
    pub fn maintained_queues(&self) -> Vec<String> {
        self.maintained_queues
            .clone()
            .unwrap_or_else(|| self.queues.iter().map(|queue| queue.name.clone()).collect())
    }
}

/// `<hostname>.<pid>`, unique per process on a host, as oban-py names nodes.
pub fn default_node_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|host| host.trim().to_owned())
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{host}.{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_queue_specs() {
        assert_eq!(
            "badges=25".parse::<QueueConfig>().unwrap(),
            QueueConfig::new("badges", 25)
        );
        assert_eq!(
            "badges:3".parse::<QueueConfig>().unwrap(),
            QueueConfig::new("badges", 3)
        );
        assert_eq!(
            "badges".parse::<QueueConfig>().unwrap(),
            QueueConfig::new("badges", 10)
        );
        assert!("badges=lots".parse::<QueueConfig>().is_err());
    }

    #[test]
    fn rejects_contending_for_elixirs_leadership() {
        let config = Config {
            leadership_name: "Oban".into(),
            ..Config::default()
        };
        assert!(config.validate().is_err());
    }

    #[test]
    fn gossip_must_beat_the_rescue_silence() {
        let config = Config {
            gossip_interval: Some(Duration::from_secs(3)),
            ..Config::default()
        };
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("rescue_silence"), "{error}");
        let no_gossip = Config {
            gossip_interval: None,
            ..Config::default()
        };
        assert!(no_gossip.validate().is_ok());
    }

    #[test]
    fn debug_shows_the_listen_target_without_its_password() {
        let config = Config {
            listen_options: Some(
                "postgres://app:s3cret-pw@db.internal:6432/jobs?sslmode=verify-full"
                    .parse()
                    .unwrap(),
            ),
            ..Config::default()
        };
        let debug = format!("{config:?}");
        assert!(!debug.contains("s3cret-pw"), "{debug}");
        assert!(
            debug.contains("Some(app@db.internal:6432/jobs (VerifyFull))"),
            "{debug}"
        );
    }

    #[test]
    fn default_node_names_carry_the_pid() {
        assert!(default_node_name().ends_with(&format!(".{}", std::process::id())));
        assert!(Config::default().validate().is_ok());
    }
}
