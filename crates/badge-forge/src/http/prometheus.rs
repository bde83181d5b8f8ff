//! `/metrics` in the Prometheus text exposition format (version 0.0.4).

use std::fmt::{Display, Write};
use std::sync::atomic::Ordering;

use oban_core::telemetry::{DURATION_BUCKETS, MetricsSnapshot};

use super::{DEPTH_STATES, Dashboard};

/// Builds an exposition: families with their `# HELP`/`# TYPE` lines, then their samples.
#[derive(Default)]
struct Exposition(String);

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{key}=\"{}\"", escape(value));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }
}

/// Escapes a label value as the format requires: backslash, double quote and newline.
fn escape(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', r#"\""#)
        .replace('\n', r"\n")
}

/// The whole `/metrics` page.
pub(super) async fn render(dashboard: &Dashboard) -> String {
    let snapshot: MetricsSnapshot = dashboard.monitor.metrics().snapshot();
    let queues = dashboard.monitor.queue_status().await;
    let (mut depth, health) = {
        let samples = dashboard.samples();
        (samples.depth.clone(), dashboard.health_of(&samples))
    };
    // This node's queues always have series, zero when nothing waits.
    for queue in &queues {
        depth.entry(queue.queue.clone()).or_default();
    }
    let mut out = Exposition::default();

    out.family(
        "badge_forge_jobs_total",
        "counter",
        "Jobs this node finished, by queue, worker and the state they ended in.",
    );
    for ((queue, worker, state), counts) in &snapshot.jobs {
        let labels = [
            ("queue", queue.as_str()),
            ("worker", worker.as_str()),
            ("state", state.as_str()),
        ];
        out.sample("badge_forge_jobs_total", &labels, counts.count);
    }

    out.family(
        "badge_forge_job_duration_seconds",
        "histogram",
        "How long this node's jobs ran, by queue, worker and final state.",
    );
    for ((queue, worker, state), counts) in &snapshot.jobs {
        let base = [
            ("queue", queue.as_str()),
            ("worker", worker.as_str()),
            ("state", state.as_str()),
        ];
        for (bound, cumulative) in DURATION_BUCKETS.iter().zip(counts.buckets) {
            let le = bound.to_string();
            let labels = [base[0], base[1], base[2], ("le", le.as_str())];
            out.sample(
                "badge_forge_job_duration_seconds_bucket",
                &labels,
                cumulative,
            );
        }
        let labels = [base[0], base[1], base[2], ("le", "+Inf")];
        out.sample(
            "badge_forge_job_duration_seconds_bucket",
            &labels,
            counts.count,
        );
        out.sample(
            "badge_forge_job_duration_seconds_sum",
            &base,
            counts.duration_sum,
        );
        out.sample(
            "badge_forge_job_duration_seconds_count",
            &base,
            counts.count,
        );
    }

    out.family(
        "badge_forge_queue_jobs",
        "gauge",
        "Jobs waiting or running in the database per queue and state (any node's), sampled every 2 s.",
    );
    for (queue, counts) in &depth {
        for (state, count) in DEPTH_STATES.iter().zip(counts) {
            out.sample(
                "badge_forge_queue_jobs",
                &[("queue", queue), ("state", state.as_str())],
                count,
            );
        }
    }

    out.family(
        "badge_forge_queue_limit",
        "gauge",
        "Concurrency limit of each queue on this node.",
    );
    for queue in &queues {
        out.sample(
            "badge_forge_queue_limit",
            &[("queue", &queue.queue)],
            queue.limit,
        );
    }
    out.family(
        "badge_forge_queue_running",
        "gauge",
        "Jobs running now on this node, per queue.",
    );
    for queue in &queues {
        out.sample(
            "badge_forge_queue_running",
            &[("queue", &queue.queue)],
            queue.running.len(),
        );
    }
    out.family(
        "badge_forge_queue_paused",
        "gauge",
        "1 when the queue is paused on this node.",
    );
    for queue in &queues {
        out.sample(
            "badge_forge_queue_paused",
            &[("queue", &queue.queue)],
            u8::from(queue.paused),
        );
    }

    let (claims, claimed, claim_seconds) = snapshot.claims;
    out.family(
        "badge_forge_claim_duration_seconds",
        "summary",
        "Claim queries (one per fetch of a queue) and the time they took.",
    );
    out.sample("badge_forge_claim_duration_seconds_sum", &[], claim_seconds);
    out.sample("badge_forge_claim_duration_seconds_count", &[], claims);
    out.family(
        "badge_forge_claimed_jobs_total",
        "counter",
        "Jobs the claim queries returned.",
    );
    out.sample("badge_forge_claimed_jobs_total", &[], claimed);

    let (batches, acked, ack_seconds) = snapshot.acks;
    out.family(
        "badge_forge_ack_duration_seconds",
        "summary",
        "Ack statements (each records a batch of finished jobs) and the time they took.",
    );
    out.sample("badge_forge_ack_duration_seconds_sum", &[], ack_seconds);
    out.sample("badge_forge_ack_duration_seconds_count", &[], batches);
    out.family(
        "badge_forge_acked_jobs_total",
        "counter",
        "Jobs whose outcome the ack statements recorded.",
    );
    out.sample("badge_forge_acked_jobs_total", &[], acked);

    let pool = &dashboard.pool;
    let (size, idle) = (pool.size(), pool.num_idle() as u32);
    out.family(
        "badge_forge_db_pool_connections",
        "gauge",
        "Open connections of the database pool, in use or idle.",
    );
    out.sample(
        "badge_forge_db_pool_connections",
        &[("state", "in_use")],
        size.saturating_sub(idle),
    );
    out.sample(
        "badge_forge_db_pool_connections",
        &[("state", "idle")],
        idle,
    );
    out.family(
        "badge_forge_db_pool_max_connections",
        "gauge",
        "The pool's connection limit.",
    );
    out.sample(
        "badge_forge_db_pool_max_connections",
        &[],
        pool.options().get_max_connections(),
    );

    let stats = &dashboard.stats;
    out.family(
        "badge_forge_badges_rendered_total",
        "counter",
        "Badges rendered and written.",
    );
    out.sample(
        "badge_forge_badges_rendered_total",
        &[],
        stats.renders.load(Ordering::Relaxed),
    );
    out.family(
        "badge_forge_pdf_bytes_total",
        "counter",
        "Bytes of badge PDF written.",
    );
    out.sample(
        "badge_forge_pdf_bytes_total",
        &[],
        stats.pdf_bytes.load(Ordering::Relaxed),
    );
    out.family(
        "badge_forge_render_seconds_total",
        "counter",
        "CPU time spent rendering badges.",
    );
    out.sample(
        "badge_forge_render_seconds_total",
        &[],
        stats.render_nanos.load(Ordering::Relaxed) as f64 / 1e9,
    );

    out.family(
        "badge_forge_up",
        "gauge",
        "1 while a component works: the database (sampled every 2 s) and the LISTEN connection.",
    );
    out.sample(
        "badge_forge_up",
        &[("component", "database")],
        u8::from(health.database.is_none()),
    );
    out.sample(
        "badge_forge_up",
        &[("component", "listener")],
        u8::from(health.listener.is_none()),
    );
    out.family(
        "badge_forge_leader",
        "gauge",
        "1 while this node leads the Rust nodes (staging, rescuing, pruning).",
    );
    out.sample(
        "badge_forge_leader",
        &[],
        u8::from(dashboard.monitor.is_leader()),
    );
    out.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_written_in_the_text_format() {
        let mut out = Exposition::default();
        out.family("x_total", "counter", "Things.");
        out.sample("x_total", &[("queue", "a\"b\\c\nd"), ("state", "ok")], 3);
        out.sample("x_total", &[], 0.25);
        assert_eq!(
            out.0,
            "# HELP x_total Things.\n# TYPE x_total counter\n\
             x_total{queue=\"a\\\"b\\\\c\\nd\",state=\"ok\"} 3\nx_total 0.25\n"
        );
    }
}
