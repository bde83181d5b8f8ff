//! `/metrics` in the Prometheus text format (version 0.0.4), written by `prometheus-client`.
//!
//! The numbers already live elsewhere (oban-core's job metrics, the dashboard's sampler, the
//! pool, the render counters), so a scrape gathers them once into a [`Scrape`] and registers it
//! as a collector; nothing is counted twice and no handler waits on the database.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::Ordering;

use oban_core::job::JobState;
use oban_core::producer::QueueStatus;
use oban_core::telemetry::{DURATION_BUCKETS, JobCounts, MetricsSnapshot};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

use super::{DEPTH_STATES, Dashboard, Depth, Health};

pub(super) use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The whole `/metrics` page.
pub(super) async fn render(dashboard: &Dashboard) -> String {
    let mut registry = Registry::with_prefix("badge_forge");
    registry.register_collector(Box::new(Scrape::gather(dashboard).await));
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
        .expect("writing to a String cannot fail");
    out
}

/// Everything one scrape reports, read once.
#[derive(Debug)]
struct Scrape {
    jobs: MetricsSnapshot,
    queues: Vec<QueueStatus>,
    depth: BTreeMap<String, Depth>,
    health: Health,
    /// Open connections in use, idle, and the pool's limit.
    pool: (u32, u32, u32),
    renders: u64,
    pdf_bytes: u64,
    render_seconds: f64,
    leader: bool,
}

impl Scrape {
    async fn gather(dashboard: &Dashboard) -> Self {
        let queues = dashboard.monitor.queue_status().await;
        let (mut depth, health) = {
            let samples = dashboard.samples();
            (samples.depth.clone(), dashboard.health_of(&samples))
        };
        // This node's queues always have series, zero when nothing waits.
        for queue in &queues {
            depth.entry(queue.queue.clone()).or_default();
        }
        let pool = dashboard.client.pool();
        let (size, idle) = (pool.size(), pool.num_idle() as u32);
        let stats = &dashboard.stats;
        Scrape {
            jobs: dashboard.monitor.metrics().snapshot(),
            queues,
            depth,
            health,
            pool: (
                size.saturating_sub(idle),
                idle,
                pool.options().get_max_connections(),
            ),
            renders: stats.renders.load(Ordering::Relaxed),
            pdf_bytes: stats.pdf_bytes.load(Ordering::Relaxed),
            render_seconds: stats.render_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            leader: dashboard.monitor.is_leader(),
        }
    }
}

impl Collector for Scrape {
    fn encode(&self, mut out: DescriptorEncoder) -> fmt::Result {
        let jobs = &self.jobs.jobs;
        family(
            &mut out,
            "jobs",
            "Jobs this node finished, by queue, worker and the state they ended in.",
            jobs.iter()
                .map(|(key, counts)| (job_labels(key), ConstCounter::new(counts.count))),
        )?;
        family(
            &mut out,
            "job_duration_seconds",
            "How long this node's jobs ran, by queue, worker and final state.",
            jobs.iter()
                .map(|(key, counts)| (job_labels(key), Durations(counts))),
        )?;
        family(
            &mut out,
            "queue_jobs",
            "Jobs waiting or running in the database per queue and state (any node's), sampled every 2 s.",
            self.depth.iter().flat_map(|(queue, counts)| {
                DEPTH_STATES.iter().zip(counts).map(move |(state, count)| {
                    (
                        [("queue", queue.as_str()), ("state", state.as_str())],
                        ConstGauge::new(*count),
                    )
                })
            }),
        )?;
        let per_queue = |value: fn(&QueueStatus) -> i64| {
            self.queues.iter().map(move |queue| {
                (
                    [("queue", queue.queue.as_str())],
                    ConstGauge::new(value(queue)),
                )
            })
        };
        family(
            &mut out,
            "queue_limit",
            "Concurrency limit of each queue on this node.",
            per_queue(|queue| queue.limit as i64),
        )?;
        family(
            &mut out,
            "queue_running",
            "Jobs running now on this node, per queue.",
            per_queue(|queue| queue.running.len() as i64),
        )?;
        family(
            &mut out,
            "queue_paused",
            "1 when the queue is paused on this node.",
            per_queue(|queue| i64::from(queue.paused)),
        )?;

        let (claims, claimed, claim_seconds) = self.jobs.claims;
        single(
            &mut out,
            "claims",
            "Claim queries (one per fetch of a queue).",
            ConstCounter::new(claims),
        )?;
        single(
            &mut out,
            "claim_seconds",
            "Time the claim queries took.",
            ConstCounter::new(claim_seconds),
        )?;
        single(
            &mut out,
            "claimed_jobs",
            "Jobs the claim queries returned.",
            ConstCounter::new(claimed),
        )?;
        let (acks, acked, ack_seconds) = self.jobs.acks;
        single(
            &mut out,
            "acks",
            "Ack statements (each records a batch of finished jobs).",
            ConstCounter::new(acks),
        )?;
        single(
            &mut out,
            "ack_seconds",
            "Time the ack statements took.",
            ConstCounter::new(ack_seconds),
        )?;
        single(
            &mut out,
            "acked_jobs",
            "Jobs whose outcome the ack statements recorded.",
            ConstCounter::new(acked),
        )?;

        let (in_use, idle, max) = self.pool;
        family(
            &mut out,
            "db_pool_connections",
            "Open connections of the database pool, in use or idle.",
            [("in_use", in_use), ("idle", idle)]
                .map(|(state, count)| ([("state", state)], ConstGauge::new(count))),
        )?;
        single(
            &mut out,
            "db_pool_max_connections",
            "The pool's connection limit.",
            ConstGauge::new(max),
        )?;

        single(
            &mut out,
            "badges_rendered",
            "Badges rendered and written.",
            ConstCounter::new(self.renders),
        )?;
        single(
            &mut out,
            "pdf_bytes",
            "Bytes of badge PDF written.",
            ConstCounter::new(self.pdf_bytes),
        )?;
        single(
            &mut out,
            "render_seconds",
            "CPU time spent rendering badges.",
            ConstCounter::new(self.render_seconds),
        )?;

        family(
            &mut out,
            "up",
            "1 while a component works: the database (sampled every 2 s) and the LISTEN connection.",
            [
                ("database", self.health.database),
                ("listener", self.health.listener),
            ]
            .map(|(component, down)| {
                (
                    [("component", component)],
                    ConstGauge::new(i64::from(down.is_none())),
                )
            }),
        )?;
        single(
            &mut out,
            "leader",
            "1 while this node leads the Rust nodes (staging, rescuing, pruning).",
            ConstGauge::new(i64::from(self.leader)),
        )
    }
}

/// The labels of one (queue, worker, final state).
fn job_labels((queue, worker, state): &(String, String, JobState)) -> [(&'static str, &str); 3] {
    [
        ("queue", queue),
        ("worker", worker),
        ("state", state.as_str()),
    ]
}

/// One family whose series differ by their labels.
fn family<L: EncodeLabelSet, M: EncodeMetric + TypedMetric>(
    out: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (L, M)>,
) -> fmt::Result {
    let mut family = out.encode_descriptor(name, help, None, M::TYPE)?;
    for (labels, metric) in series {
        metric.encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// One family of a single, unlabelled series.
fn single<M: EncodeMetric + TypedMetric>(
    out: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric: M,
) -> fmt::Result {
    metric.encode(out.encode_descriptor(name, help, None, M::TYPE)?)
}

/// One (queue, worker, state)'s run durations as a histogram over [`DURATION_BUCKETS`].
#[derive(Debug)]
struct Durations<'a>(&'a JobCounts);

impl TypedMetric for Durations<'_> {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Durations<'_> {
    fn encode(&self, mut encoder: MetricEncoder) -> fmt::Result {
        // oban-core keeps cumulative counts; the encoder wants each bucket's own.
        let mut below = 0;
        let buckets: Vec<(f64, u64)> = DURATION_BUCKETS
            .iter()
            .zip(self.0.buckets)
            .chain([(&f64::INFINITY, self.0.count)])
            .map(|(bound, cumulative)| {
                let own = cumulative - below;
                below = cumulative;
                (*bound, own)
            })
            .collect();
        encoder.encode_histogram::<NoLabelSet>(self.0.duration_sum, self.0.count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}
