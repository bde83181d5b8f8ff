//! Job metrics for Oban Web, published on `<prefix>.oban_metrics` the way oban_met 1.3's
//! Listener and Reporter do, so the dashboard's charts and counts include this node.
//!
//! Every interval (1 s) the reporter publishes what this node's jobs did since the previous
//! report: for each (final state, queue, worker) an `exec_time` and a `wait_time`
//! [`Sketch`] in nanoseconds and an `exec_count` [`Gauge`]. Optionally (off by default) the
//! leader also publishes `full_count` gauges, the number of jobs per state × queue. oban_met
//! **sums** the counts of every reporter, so exactly one reporter in a cluster may send them:
//! normally the Elixir leader running oban_met; turn them on here only when there is none.
//!
//! The envelope is `{"metrics": [...], "name": <instance>, "node": <node>, "time": <unix s>}`.
//! Reports larger than a notification can carry are split into several envelopes with the same
//! `time`; oban_met merges entries with the same labels and time.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::SqlStr;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::job::JobState;
use crate::notifier::{self, Channel};
pub use crate::sketch::Sketch;
use crate::telemetry::{IntervalJobs, Metrics};
use crate::{Db, Prefix, Result};

pub(crate) const COUNT_JOBS: &str = include_str!("sql/count_jobs.sql");
const ESTIMATE_JOBS: &str = include_str!("sql/estimate_jobs.sql");

/// A gauge as oban_met's `Oban.Met.Values.Gauge` encodes it: `{"data": [n, ...]}`; readers
/// sum the list. This node always sends one summed number, as oban-py does.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gauge {
    /// The values; their sum is the reading.
    pub data: Vec<u64>,
}

/// A metric's value: a sketch (times) or a gauge (counts).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MetricValue {
    /// `exec_time` and `wait_time`.
    Sketch(Sketch),
    /// `exec_count` and `full_count`.
    Gauge(Gauge),
}

/// One entry of a `metrics` message. oban_met stores it under labels made of every key except
/// `series` and `value`, plus the envelope's `node`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metric {
    /// `exec_time`, `wait_time`, `exec_count` or `full_count`.
    pub series: String,
    /// The job state: the final state for exec series, the counted state for `full_count`.
    pub state: String,
    /// The queue.
    pub queue: String,
    /// The worker; absent for `full_count`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// The reading.
    pub value: MetricValue,
}

/// A whole `metrics` message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricsMessage {
    /// The entries.
    pub metrics: Vec<Metric>,
    /// The Oban instance name, e.g. `"Oban"`.
    pub name: String,
    /// The reporting node.
    pub node: String,
    /// When the report was made, in Unix seconds.
    pub time: i64,
}

/// The exec entries for one interval's finished jobs: per (state, queue, worker) an
/// `exec_time` and a `wait_time` sketch and an `exec_count` gauge.
pub(crate) fn exec_metrics(jobs: IntervalJobs) -> Vec<Metric> {
    let mut metrics = Vec::with_capacity(jobs.len() * 3);
    for ((queue, worker, state), group) in jobs {
        let entry = |series: &str, value| Metric {
            series: series.to_owned(),
            state: state.as_str().to_owned(),
            queue: queue.clone(),
            worker: Some(worker.clone()),
            value,
        };
        metrics.push(entry("exec_time", MetricValue::Sketch(group.exec_time)));
        metrics.push(entry("wait_time", MetricValue::Sketch(group.wait_time)));
        metrics.push(entry(
            "exec_count",
            MetricValue::Gauge(Gauge {
                data: vec![group.count],
            }),
        ));
    }
    metrics
}

/// Settings of the `full_count` part of the reports.
pub(crate) struct FullCounts {
    /// States whose previous total reached this many jobs are estimated, not counted.
    pub estimate_limit: i64,
    /// True while this node leads; counts are sent only then.
    pub is_leader: watch::Receiver<bool>,
}

/// Publishes a report every `interval` until `stop`, then a last one for the jobs that
/// finished during shutdown.
pub(crate) struct Reporter {
    pub pool: Db,
    pub prefix: Prefix,
    pub name: String,
    pub node: String,
    pub metrics: Metrics,
    pub interval: Duration,
    pub full_counts: Option<FullCounts>,
}

impl Reporter {
    pub async fn run(mut self, stop: CancellationToken) {
        let mut counter = Counter::new(&self.prefix);
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            let stopping = tokio::select! {
                _ = stop.cancelled() => true,
                _ = tick.tick() => false,
            };
            let mut metrics = exec_metrics(self.metrics.take_interval());
            if !stopping && let Some(full) = &mut self.full_counts {
                if *full.is_leader.borrow_and_update() {
                    match counter.count(&self.pool, full.estimate_limit).await {
                        Ok(counts) => metrics.extend(counts),
                        Err(error) => tracing::warn!(%error, "counting jobs for full_count failed"),
                    }
                } else {
                    // A new leader starts from exact counts.
                    counter.forget();
                }
            }
            if let Err(error) = self.publish(metrics).await {
                tracing::debug!(%error, "metrics report not sent");
            }
            if stopping {
                return;
            }
        }
    }

    async fn publish(&self, metrics: Vec<Metric>) -> Result<()> {
        if metrics.is_empty() {
            return Ok(());
        }
        let time = chrono::Utc::now().timestamp();
        let (messages, too_big) = notifier::split_to_fit(metrics, |part| {
            serde_json::to_value(MetricsMessage {
                metrics: part.to_vec(),
                name: self.name.clone(),
                node: self.node.clone(),
                time,
            })
            .expect("metrics serialize to JSON")
        });
        for metric in too_big {
            tracing::warn!(series = %metric.series, queue = %metric.queue, "metric too large for one notification; dropped");
        }
        notifier::publish(&self.pool, &self.prefix, Channel::Metrics, &messages).await
    }
}

/// Counts jobs per state × queue as oban_met's Reporter does: exactly while a state's previous
/// total was below the estimate limit, from the planner's row estimate above it.
struct Counter {
    count_sql: SqlStr,
    estimate_sql: SqlStr,
    /// Each state's total in the previous report.
    totals: BTreeMap<JobState, i64>,
    /// Queues seen in any count so far: those an estimated state is estimated for. A queue
    /// shows up in the small, exactly counted states (available, executing) before any of its
    /// states grows past the limit, so this avoids scanning the table for its queues.
    queues: BTreeSet<String>,
}

impl Counter {
    fn new(prefix: &Prefix) -> Self {
        Self {
            count_sql: prefix.render(COUNT_JOBS),
            estimate_sql: prefix.render(ESTIMATE_JOBS),
            totals: BTreeMap::new(),
            queues: BTreeSet::new(),
        }
    }

    fn forget(&mut self) {
        self.totals.clear();
    }

    async fn count(&mut self, pool: &Db, estimate_limit: i64) -> Result<Vec<Metric>> {
        let (exact, estimated): (Vec<JobState>, Vec<JobState>) = JobState::ALL
            .into_iter()
            .partition(|state| self.totals.get(state).copied().unwrap_or(0) < estimate_limit);
        let exact: Vec<&str> = exact.iter().map(|state| state.as_str()).collect();
        let mut rows: Vec<(String, String, i64)> = sqlx::query_as(self.count_sql.clone())
            .bind(&exact)
            .fetch_all(pool)
            .await?;
        for state in estimated {
            for queue in &self.queues {
                let (plan,): (serde_json::Value,) = sqlx::query_as(self.estimate_sql.clone())
                    .bind(state.as_str())
                    .bind(queue)
                    .fetch_one(pool)
                    .await?;
                let rows_estimate = plan[0]["Plan"]["Plan Rows"].as_f64().unwrap_or(0.0);
                rows.push((
                    state.as_str().to_owned(),
                    queue.clone(),
                    rows_estimate as i64,
                ));
            }
        }
        self.totals.clear();
        let mut metrics = Vec::with_capacity(rows.len());
        for (state, queue, count) in rows {
            if let Ok(state) = state.parse::<JobState>() {
                *self.totals.entry(state).or_default() += count;
            }
            self.queues.insert(queue.clone());
            // oban_met sends only groups that exist (its count has no zero rows).
            if count > 0 {
                metrics.push(Metric {
                    series: "full_count".to_owned(),
                    state,
                    queue,
                    worker: None,
                    value: MetricValue::Gauge(Gauge {
                        data: vec![count as u64],
                    }),
                });
            }
        }
        Ok(metrics)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sketches_and_gauges_encode_like_oban_met() {
        let mut sketch = Sketch::default();
        for value in [1_000, 1_000, 1_000_000] {
            sketch.add(value);
        }
        let metric = Metric {
            series: "exec_time".into(),
            state: "completed".into(),
            queue: "q".into(),
            worker: Some("W".into()),
            value: MetricValue::Sketch(sketch),
        };
        assert_eq!(
            serde_json::to_string(&metric).unwrap(),
            r#"{"series":"exec_time","state":"completed","queue":"q","worker":"W","value":{"data":{"173":2,"346":1},"size":3}}"#
        );
        let count = Metric {
            series: "full_count".into(),
            state: "available".into(),
            queue: "q".into(),
            worker: None,
            value: MetricValue::Gauge(Gauge { data: vec![7] }),
        };
        assert_eq!(
            serde_json::to_value(&count).unwrap(),
            json!({"series": "full_count", "state": "available", "queue": "q", "value": {"data": [7]}})
        );
        let decoded: Metric =
            serde_json::from_value(serde_json::to_value(&metric).unwrap()).unwrap();
        assert_eq!(decoded, metric);
    }
}
