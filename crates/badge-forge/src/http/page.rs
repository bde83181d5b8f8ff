//! The live page: what it shows, how it is gathered, and the badge previews it links to.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use askama::Template;
use chrono::{NaiveDateTime, Utc};
use oban_core::job::JobState;
use oban_core::worker::Worker;
use serde_json::Value;

use super::{Dashboard, HISTORY_MINUTES};
use crate::badge_args::badge_from_args;
use crate::worker::GenerateBadge;

/// The latest badges: completed GenerateBadge jobs, newest first.
pub(super) const LATEST_BADGES: &str = include_str!("latest_badges.sql");

/// The latest failures of any node, each with its last error entry.
pub(super) const RECENT_ERRORS: &str = include_str!("recent_errors.sql");

/// The args of the latest job of one badge, for its preview.
pub(super) const BADGE_PREVIEW: &str = include_str!("badge_preview.sql");

/// Longest error message shown; the full one is in the job's row.
const MESSAGE_CHARS: usize = 300;

/// The whole page.
#[derive(Template)]
#[template(path = "live.html", config = "../../templates/askama.toml")]
pub(super) struct LivePage {
    view: LiveView,
}

/// The part the page's script reloads every two seconds.
#[derive(Template)]
#[template(path = "live_fragment.html", config = "../../templates/askama.toml")]
pub(super) struct LiveFragment {
    view: LiveView,
}

impl LivePage {
    pub async fn build(dashboard: &Dashboard) -> Result<String, askama::Error> {
        let view = LiveView::build(dashboard).await;
        LivePage { view }.render()
    }
}

impl LiveFragment {
    pub async fn build(dashboard: &Dashboard) -> Result<String, askama::Error> {
        let view = LiveView::build(dashboard).await;
        LiveFragment { view }.render()
    }
}

/// Everything the templates show, formatted.
struct LiveView {
    node: String,
    generated_at: String,
    leader: bool,
    database: Component,
    listener: Component,
    uptime: String,
    renders: u64,
    pdf: String,
    completed: u64,
    failed: u64,
    queues: Vec<QueueRow>,
    /// How many minutes of throughput the bars cover.
    minutes: usize,
    badges: Vec<BadgeCard>,
    errors: Vec<ErrorRow>,
    /// Why the lists are missing, when their queries failed.
    problem: Option<String>,
}

struct Component {
    up: bool,
    text: String,
}

struct QueueRow {
    name: String,
    limit: String,
    running: String,
    paused: bool,
    available: i64,
    scheduled: i64,
    executing: i64,
    retryable: i64,
    completed: u64,
    failed: u64,
    /// Jobs this node finished in the last minute.
    per_minute: u64,
    /// One bar per minute, oldest first.
    bars: Vec<Bar>,
}

struct Bar {
    /// Percent of the tallest bar, at least 1.
    height: u64,
    title: String,
}

struct BadgeCard {
    job: i64,
    /// The badge's id from the args: what its preview is addressed by.
    id: String,
    name: String,
    company: String,
    kind: String,
    at: String,
}

struct ErrorRow {
    job: i64,
    worker: String,
    queue: String,
    state: String,
    attempt: String,
    at: String,
    message: String,
}

impl LiveView {
    async fn build(dashboard: &Dashboard) -> Self {
        let statuses = dashboard.monitor.queue_status().await;
        let snapshot = dashboard.monitor.metrics().snapshot();
        let lists = tokio::try_join!(latest_badges(dashboard), recent_errors(dashboard));
        let (badges, errors, problem) = match lists {
            Ok((badges, errors)) => (badges, errors, None),
            Err(error) => (Vec::new(), Vec::new(), Some(error.to_string())),
        };

        let mut completed: BTreeMap<&str, u64> = BTreeMap::new();
        let mut failed: BTreeMap<&str, u64> = BTreeMap::new();
        let mut finished: BTreeMap<String, u64> = BTreeMap::new();
        for ((queue, _, state), counts) in &snapshot.jobs {
            *finished.entry(queue.clone()).or_default() += counts.count;
            match state {
                JobState::Completed => *completed.entry(queue).or_default() += counts.count,
                JobState::Retryable | JobState::Discarded => {
                    *failed.entry(queue).or_default() += counts.count
                }
                _ => {}
            }
        }

        let samples = dashboard.samples();
        let health = dashboard.health_of(&samples);
        let names: BTreeSet<&str> = statuses
            .iter()
            .map(|status| status.queue.as_str())
            .chain(samples.depth.keys().map(String::as_str))
            .chain(finished.keys().map(String::as_str))
            .collect();
        let now = Instant::now();
        let queues = names
            .into_iter()
            .map(|name| {
                let status = statuses.iter().find(|status| status.queue == name);
                // In DEPTH_STATES order: available, scheduled, executing, retryable.
                let depth = samples.depth.get(name).copied().unwrap_or_default();
                let minutes = per_minute(&samples.finished, name, finished.get(name), now);
                let tallest = minutes.iter().copied().max().unwrap_or(0).max(1);
                let bars = minutes
                    .iter()
                    .enumerate()
                    .rev()
                    .map(|(ago, &count)| Bar {
                        // At least 1, so that an idle minute still shows as a baseline.
                        height: (count * 100 / tallest).max(1),
                        title: format!("{count} jobs, {}–{} min ago", ago, ago + 1),
                    })
                    .collect();
                QueueRow {
                    name: name.to_owned(),
                    limit: status.map_or("–".into(), |s| s.limit.to_string()),
                    running: status.map_or("–".into(), |s| s.running.len().to_string()),
                    paused: status.is_some_and(|s| s.paused),
                    available: depth[0],
                    scheduled: depth[1],
                    executing: depth[2],
                    retryable: depth[3],
                    completed: completed.get(name).copied().unwrap_or(0),
                    failed: failed.get(name).copied().unwrap_or(0),
                    per_minute: minutes[0],
                    bars,
                }
            })
            .collect();
        let component = |down: Option<Duration>, what: &str| match down {
            None => Component {
                up: true,
                text: format!("{what} up"),
            },
            Some(down) => Component {
                up: false,
                text: format!("{what} down for {}", duration(down)),
            },
        };
        LiveView {
            node: dashboard.node.clone(),
            generated_at: Utc::now().format("%H:%M:%S UTC").to_string(),
            leader: dashboard.monitor.is_leader(),
            database: component(health.database, "database"),
            listener: component(health.listener, "LISTEN"),
            uptime: duration(dashboard.started.elapsed()),
            renders: dashboard.stats.renders.load(Ordering::Relaxed),
            pdf: bytes(dashboard.stats.pdf_bytes.load(Ordering::Relaxed)),
            completed: completed.values().sum(),
            failed: failed.values().sum(),
            queues,
            minutes: HISTORY_MINUTES,
            badges,
            errors,
            problem,
        }
    }
}

/// Jobs of `queue` this node finished in each of the last [`HISTORY_MINUTES`] minutes, the
/// latest minute first, from the cumulative samples (`current` is the total now). Before the
/// first sample the node had finished nothing, so missing history counts as zero.
fn per_minute(
    history: &VecDeque<(Instant, BTreeMap<String, u64>)>,
    queue: &str,
    current: Option<&u64>,
    now: Instant,
) -> Vec<u64> {
    let total_at = |minutes: u64| -> u64 {
        let Some(at) = now.checked_sub(Duration::from_secs(60 * minutes)) else {
            return 0;
        };
        history
            .iter()
            .rev()
            .find(|(when, _)| *when <= at)
            .and_then(|(_, totals)| totals.get(queue).copied())
            .unwrap_or(0)
    };
    let mut end = current.copied().unwrap_or(0);
    (1..=HISTORY_MINUTES as u64)
        .map(|minutes| {
            let start = total_at(minutes);
            let count = end.saturating_sub(start);
            end = start;
            count
        })
        .collect()
}

async fn latest_badges(dashboard: &Dashboard) -> sqlx::Result<Vec<BadgeCard>> {
    let rows: Vec<(i64, Value, Option<NaiveDateTime>)> =
        sqlx::query_as(dashboard.sql.latest_badges.clone())
            .bind(GenerateBadge::NAME)
            .fetch_all(dashboard.client.db())
            .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(job, args, completed_at)| {
            let badge = badge_from_args(&args, &[]).ok()?;
            Some(BadgeCard {
                job,
                id: badge.id,
                name: badge.name,
                company: badge.company,
                kind: badge.badge_type.to_string(),
                at: completed_at.map_or_else(String::new, |at| at.format("%H:%M:%S").to_string()),
            })
        })
        .collect())
}

type ErrorColumns = (
    i64,
    String,
    String,
    String,
    i32,
    i32,
    Option<String>,
    Option<String>,
);

async fn recent_errors(dashboard: &Dashboard) -> sqlx::Result<Vec<ErrorRow>> {
    let rows: Vec<ErrorColumns> = sqlx::query_as(dashboard.sql.recent_errors.clone())
        .fetch_all(dashboard.client.db())
        .await?;
    Ok(rows
        .into_iter()
        .map(
            |(job, worker, queue, state, attempt, max_attempts, at, message)| ErrorRow {
                job,
                worker,
                queue,
                state,
                attempt: format!("{attempt}/{max_attempts}"),
                // `…T12:34:56.123456Z` (Elixir) or `…T12:34:56.123456+00:00` (Python).
                at: at
                    .as_deref()
                    .and_then(|at| at.get(11..19))
                    .unwrap_or("")
                    .to_owned(),
                message: shorten(message.as_deref().unwrap_or("(no error entry)")),
            },
        )
        .collect())
}

fn shorten(message: &str) -> String {
    if message.chars().count() <= MESSAGE_CHARS {
        return message.to_owned();
    }
    let mut short: String = message.chars().take(MESSAGE_CHARS).collect();
    short.push('…');
    short
}

/// `1h 02m`, `3m 05s`, `12s`.
fn duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3_600 => format!("{}m {:02}s", seconds / 60, seconds % 60),
        _ => format!("{}h {:02}m", seconds / 3_600, seconds % 3_600 / 60),
    }
}

/// `812 B`, `4.2 MB`.
fn bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if bytes < 1_000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = "B";
    for next in UNITS {
        if value < 1_000.0 {
            break;
        }
        value /= 1_000.0;
        unit = next;
    }
    format!("{value:.1} {unit}")
}

/// What a badge preview request found.
pub(super) enum Preview {
    Svg(String),
    /// No GenerateBadge job of that badge.
    NotFound,
    /// The job's args make no badge (the job was discarded for it).
    Invalid(String),
}

/// The preview of the badge with id `badge`, as its latest GenerateBadge job renders it.
pub(super) async fn preview(dashboard: &Dashboard, badge: &str) -> anyhow::Result<Preview> {
    // Args may carry an integer id ({"badge_id": 42}), which reads as the badge id "42".
    let as_number = badge
        .parse::<i64>()
        .ok()
        .filter(|number| number.to_string() == badge)
        .map(Value::from);
    let args: Option<Value> = sqlx::query_scalar(dashboard.sql.badge_preview.clone())
        .bind(GenerateBadge::NAME)
        .bind(Value::from(badge))
        .bind(as_number)
        .fetch_optional(dashboard.client.db())
        .await?;
    let Some(args) = args else {
        return Ok(Preview::NotFound);
    };
    let badge = match badge_from_args(&args, dashboard.renderer.design().fields()) {
        Ok(badge) => badge,
        Err(invalid) => return Ok(Preview::Invalid(invalid.to_string())),
    };
    let renderer = dashboard.renderer.clone();
    // Drawing is CPU work, as in the worker: keep it off the runtime's threads.
    let svg = tokio::task::spawn_blocking(move || renderer.render_svg(&badge)).await?;
    Ok(match svg {
        Ok(svg) => Preview::Svg(svg),
        Err(error) if error.is_permanent() => Preview::Invalid(error.to_string()),
        Err(error) => return Err(error.into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_minute_counts_come_from_cumulative_samples() {
        let now = Instant::now();
        let sample = |minutes_ago: u64, total: u64| {
            (
                now - Duration::from_secs(60 * minutes_ago),
                BTreeMap::from([("q".to_owned(), total)]),
            )
        };
        // 10 jobs before 3 minutes ago, 25 by 2 minutes ago, 40 by 1 minute ago, 42 now.
        let history = VecDeque::from([sample(3, 10), sample(2, 25), sample(1, 40)]);
        let minutes = per_minute(&history, "q", Some(&42), now);
        assert_eq!(minutes.len(), HISTORY_MINUTES);
        assert_eq!(&minutes[..4], &[2, 15, 15, 10]);
        assert!(minutes[4..].iter().all(|&count| count == 0));
        assert_eq!(
            per_minute(&history, "other", None, now),
            vec![0; HISTORY_MINUTES]
        );
    }

    #[test]
    fn formats_are_short() {
        assert_eq!(duration(Duration::from_secs(12)), "12s");
        assert_eq!(duration(Duration::from_secs(185)), "3m 05s");
        assert_eq!(duration(Duration::from_secs(3_725)), "1h 02m");
        assert_eq!(bytes(812), "812 B");
        assert_eq!(bytes(4_200_000), "4.2 MB");
        assert_eq!(shorten(&"x".repeat(400)).chars().count(), MESSAGE_CHARS + 1);
    }
}
