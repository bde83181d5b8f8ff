//! Queue status for Oban Web: `gossip` checks, one per queue this node runs, published every
//! second on `<prefix>.oban_gossip` as `{"checks": [check, ...]}`.
//!
//! Oban Web learns about queues and nodes only from these checks (oban_met's Examiner keeps
//! each for 30 s, keyed by node, name and queue), and it marks an executing job as orphaned
//! unless some check's `uuid` equals the job's `attempted_by[1]` (0-based) — so a check carries
//! the producer's UUID exactly as the claim writes it. The same checks are the producers' proof
//! of life: every node notes whose checks it hears, and the leader rescues the jobs of a
//! producer that falls silent (see `liveness` and `lifeline`). The keys are the union of what Elixir
//! (`Oban.Engines.Basic.check_meta`) and oban-py (`_metrics.py`) send, minus Elixir's
//! `refresh_interval`, which describes a loop this node does not have. Timestamps are written
//! as Elixir writes `DateTime`s (`2026-08-02T12:34:56.123456Z`); Oban Web parses them with
//! `DateTime.from_iso8601`, which requires the offset.
//!
//! A queue stopped by a signal reports `shutdown_started_at` (and `paused`) while its running
//! jobs finish, as Elixir's producer does. When it is gone, and for every queue when the node
//! stops, a last check goes out with `shutdown_started_at` set and no running jobs, which Oban
//! Web shows as a terminating queue until the check expires.
//!
//! A node also keeps the checks it hears from every node, its own included ([`HeardChecks`]),
//! for `check_queue`: Elixir's `Oban.check_queue` asks the local producer only, but a check of
//! any node's queue is already on the channel every second, so no request and reply is needed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::notifier::{self, Channel, MAX_PAYLOAD, encode_payload};
use crate::producer::QueueStatus;
use crate::queues::Producers;
use crate::{Db, Prefix, Result};

/// One queue on one node, as a `gossip` check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// The node name, which node-targeted signals address.
    pub node: String,
    /// The Oban instance name, e.g. `"Oban"`.
    pub name: String,
    /// The queue.
    pub queue: String,
    /// The local concurrency limit (Elixir sends it as `limit`; oban_met renames it to this).
    #[serde(alias = "limit")]
    pub local_limit: u64,
    /// Whether the queue is paused; true while it shuts down, as in Elixir.
    pub paused: bool,
    /// Ids of the jobs running now.
    pub running: Vec<i64>,
    /// When the producer started.
    #[serde(with = "elixir_time")]
    pub started_at: DateTime<Utc>,
    /// The producer's UUID, the second element of `attempted_by` of its jobs.
    pub uuid: Uuid,
    /// When this check was made.
    #[serde(default, with = "elixir_time_option")]
    pub updated_at: Option<DateTime<Utc>>,
    /// When the queue began to shut down; `null` while it runs.
    #[serde(default, with = "elixir_time_option")]
    pub shutdown_started_at: Option<DateTime<Utc>>,
}

impl Check {
    /// The check for a producer's status, made at `now`.
    pub fn new(status: &QueueStatus, name: &str, node: &str, now: DateTime<Utc>) -> Self {
        Self {
            node: node.to_owned(),
            name: name.to_owned(),
            queue: status.queue.clone(),
            local_limit: status.limit as u64,
            paused: status.paused || status.shutdown_started_at.is_some(),
            running: status.running.clone(),
            started_at: status.started_at,
            uuid: status.uuid,
            updated_at: Some(now),
            shutdown_started_at: status.shutdown_started_at,
        }
    }
}

/// `{"checks": [...]}`.
fn message(checks: &[Check]) -> Value {
    json!({ "checks": checks })
}

/// Timestamps as Elixir's JSON encoding of a UTC `DateTime` writes them; any RFC 3339 offset
/// is read.
mod elixir_time {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub const FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";

    pub fn serialize<S: Serializer>(
        time: &DateTime<Utc>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&time.format(FORMAT))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(deserializer)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|time| time.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

/// [`elixir_time`] for optional timestamps, `null` when absent.
mod elixir_time_option {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        time: &Option<DateTime<Utc>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match time {
            Some(time) => serializer.collect_str(&time.format(super::elixir_time::FORMAT)),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|text| {
                DateTime::parse_from_rfc3339(&text)
                    .map(|time| time.with_timezone(&Utc))
                    .map_err(serde::de::Error::custom)
            })
            .transpose()
    }
}

/// How long a heard check is kept: as long as oban_met's Examiner keeps one.
pub const CHECK_TTL: Duration = Duration::from_secs(30);

/// Heard checks by (instance name, node, queue), with when each was heard.
type CheckTable = HashMap<(String, String, String), (Instant, Check)>;

/// The latest check heard from each node for each queue, for at most [`CHECK_TTL`]. Cheap to
/// clone; the clones share the checks.
#[derive(Clone, Debug, Default)]
pub struct HeardChecks(Arc<Mutex<CheckTable>>);

impl HeardChecks {
    /// Keeps the checks of a `gossip` payload (`{"checks": [...]}`); malformed ones are
    /// skipped, and expired ones forgotten.
    pub(crate) fn hear(&self, payload: &Value) {
        let Some(checks) = payload.get("checks").and_then(Value::as_array) else {
            return;
        };
        let now = Instant::now();
        let mut heard = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        heard.retain(|_, (at, _)| now.duration_since(*at) < CHECK_TTL);
        for check in checks {
            if let Ok(check) = Check::deserialize(check) {
                let key = (check.name.clone(), check.node.clone(), check.queue.clone());
                heard.insert(key, (now, check));
            }
        }
    }

    /// The latest check of `queue` from each node (and instance name) heard within
    /// [`CHECK_TTL`], ordered by node. A queue stopped on a node shows its last check, with
    /// `shutdown_started_at` set, until it expires.
    pub fn queue(&self, queue: &str) -> Vec<Check> {
        let heard = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut checks: Vec<Check> = heard
            .values()
            .filter(|(at, check)| check.queue == queue && at.elapsed() < CHECK_TTL)
            .map(|(_, check)| check.clone())
            .collect();
        checks.sort_by(|a, b| (&a.node, &a.name).cmp(&(&b.node, &b.name)));
        checks
    }
}

/// Publishes this node's checks every `interval` until `stop`, then the final ones.
pub(crate) struct Gossip {
    pub pool: Db,
    pub prefix: Prefix,
    pub name: String,
    pub node: String,
    pub producers: Producers,
    pub interval: Duration,
}

impl Gossip {
    pub async fn run(self, stop: CancellationToken) {
        // The latest status of every producer, for its final check once it is gone.
        let mut latest: HashMap<Uuid, QueueStatus> = HashMap::new();
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            let statuses = self.producers.statuses().await;
            let now = Utc::now();
            let mut checks: Vec<Check> = statuses
                .iter()
                .map(|status| Check::new(status, &self.name, &self.node, now))
                .collect();
            let current: HashMap<Uuid, QueueStatus> = statuses
                .into_iter()
                .map(|status| (status.uuid, status))
                .collect();
            // Queues stopped by a signal end with a terminating check, as at node shutdown.
            let gone = std::mem::replace(&mut latest, current)
                .into_values()
                .filter(|status| !latest.contains_key(&status.uuid));
            checks.extend(gone.map(|status| self.last_check(status, now)));
            if let Err(error) = self.publish(checks).await {
                tracing::debug!(%error, "gossip checks not sent");
            }
        }
        // The node stops services after its producers have drained and their acks are written.
        let now = Utc::now();
        let mut last: Vec<QueueStatus> = latest.into_values().collect();
        last.sort_by(|a, b| a.queue.cmp(&b.queue));
        let last = last
            .into_iter()
            .map(|status| self.last_check(status, now))
            .collect();
        if let Err(error) = self.publish(last).await {
            tracing::debug!(%error, "final gossip checks not sent");
        }
    }

    /// The check of a producer that has ended: shutting down since then at the latest, with
    /// nothing running, so Oban Web shows it terminating until the check expires.
    fn last_check(&self, mut status: QueueStatus, now: DateTime<Utc>) -> Check {
        status.shutdown_started_at.get_or_insert(now);
        status.running.clear();
        Check::new(&status, &self.name, &self.node, now)
    }

    async fn publish(&self, checks: Vec<Check>) -> Result<()> {
        if checks.is_empty() {
            return Ok(());
        }
        let (mut messages, too_big) = notifier::split_to_fit(checks, message);
        for check in too_big {
            messages.extend(shortened(check));
        }
        notifier::publish(&self.pool, &self.prefix, Channel::Gossip, &messages).await
    }
}

/// A check too large for one notification on its own (thousands of running jobs): its
/// `running` list cut down until it fits, since a queue missing from Oban Web is worse than an
/// executing count that is too low. `None` if even that does not fit.
fn shortened(mut check: Check) -> Option<Value> {
    let running = check.running.len();
    loop {
        let candidate = message(std::slice::from_ref(&check));
        if encode_payload(&candidate).len() <= MAX_PAYLOAD {
            tracing::warn!(
                queue = %check.queue, running, reported = check.running.len(),
                "gossip check too large for a notification; reporting only part of its running jobs"
            );
            return Some(candidate);
        }
        if check.running.is_empty() {
            tracing::warn!(queue = %check.queue, "gossip check too large for a notification; not sent");
            return None;
        }
        check.running.truncate(check.running.len() / 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> QueueStatus {
        QueueStatus {
            queue: "badges".into(),
            uuid: Uuid::parse_str("6f1c1e1a-4f61-4c5e-9a57-1d1b8e0c2a10").unwrap(),
            limit: 10,
            paused: false,
            running: vec![3, 5],
            started_at: DateTime::parse_from_rfc3339("2026-08-02T12:34:56.5Z")
                .unwrap()
                .with_timezone(&Utc),
            shutdown_started_at: None,
        }
    }

    #[test]
    fn checks_encode_like_elixirs() {
        let now = status().started_at + chrono::Duration::microseconds(1_000_001);
        let check = Check::new(&status(), "Oban", "host.1", now);
        assert_eq!(
            serde_json::to_string(&check).unwrap(),
            concat!(
                r#"{"node":"host.1","name":"Oban","queue":"badges","local_limit":10,"paused":false,"#,
                r#""running":[3,5],"started_at":"2026-08-02T12:34:56.500000Z","#,
                r#""uuid":"6f1c1e1a-4f61-4c5e-9a57-1d1b8e0c2a10","updated_at":"2026-08-02T12:34:57.500001Z","#,
                r#""shutdown_started_at":null}"#
            )
        );
        let decoded: Check = serde_json::from_str(&serde_json::to_string(&check).unwrap()).unwrap();
        assert_eq!(decoded, check);
    }

    #[test]
    fn reads_elixir_and_python_checks() {
        let elixir = json!({"limit": 5, "queue": "q", "paused": false, "refresh_interval": 60000,
            "uuid": "6f1c1e1a-4f61-4c5e-9a57-1d1b8e0c2a10", "name": "Oban", "node": "a@b",
            "started_at": "2026-08-02T12:00:00.000001Z", "updated_at": "2026-08-02T12:00:00.000001Z",
            "shutdown_started_at": null, "running": [1]});
        let python = json!({"uuid": "6f1c1e1a-4f61-4c5e-9a57-1d1b8e0c2a10", "node": "py.1",
            "name": "Oban", "queue": "q", "local_limit": 3, "paused": true, "running": [],
            "started_at": "2026-08-02T12:00:00.123456+00:00"});
        let elixir: Check = serde_json::from_value(elixir).unwrap();
        let python: Check = serde_json::from_value(python).unwrap();
        assert_eq!((elixir.local_limit, python.local_limit), (5, 3));
        assert_eq!(python.updated_at, None);
        assert_eq!(python.started_at.timestamp_subsec_micros(), 123_456);
    }

    #[test]
    fn a_stopping_queue_reads_as_paused_and_terminating() {
        let mut stopping = status();
        stopping.shutdown_started_at = Some(stopping.started_at);
        let check = serde_json::to_value(Check::new(&stopping, "Oban", "n", Utc::now())).unwrap();
        assert_eq!(check["paused"], true);
        assert_eq!(check["shutdown_started_at"], "2026-08-02T12:34:56.500000Z");
    }

    #[test]
    fn heard_checks_keep_the_latest_per_node_and_queue() {
        let heard = HeardChecks::default();
        let check = |node: &str, queue: &str, limit: u64| {
            let mut check = Check::new(&status(), "Oban", node, Utc::now());
            check.queue = queue.into();
            check.local_limit = limit;
            check
        };
        heard.hear(&message(&[
            check("b", "q", 1),
            check("a", "q", 2),
            check("a", "other", 3),
        ]));
        heard.hear(&message(&[check("a", "q", 4)]));
        heard.hear(&json!({"checks": [{"queue": "q", "node": "broken"}]}));
        heard.hear(&json!({"not": "checks"}));
        let checks = heard.queue("q");
        let seen: Vec<(&str, u64)> = checks
            .iter()
            .map(|check| (check.node.as_str(), check.local_limit))
            .collect();
        assert_eq!(seen, [("a", 4), ("b", 1)]);
        assert!(heard.queue("missing").is_empty());
    }

    #[test]
    fn oversized_checks_keep_part_of_their_running_list() {
        let mut huge = Check::new(&status(), "Oban", "n", Utc::now());
        // Spread-out ids compress poorly, like real ones after some churn.
        huge.running = (0..20_000)
            .map(|i| i * 7_919 % 1_000_003 + 1_000_000)
            .collect();
        let sent = shortened(huge).expect("fits after cutting");
        assert!(encode_payload(&sent).len() <= MAX_PAYLOAD);
        let running = sent["checks"][0]["running"].as_array().unwrap().len();
        assert!(running > 0 && running < 20_000, "{running}");
    }
}
