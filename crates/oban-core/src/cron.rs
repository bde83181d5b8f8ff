//! Cron: jobs inserted on a schedule, as `Oban.Plugins.Cron` does.
//!
//! A crontab ([`Config::crontab`](crate::config::Config::crontab)) lists [`CronEntry`]s: a
//! standard five-field expression or an `@`-nickname, a job, a name and a time zone. The
//! leader wakes at every tick (each minute, aligned to the database clock) and inserts one job
//! for each entry whose expression matches that minute in the entry's time zone, with `meta`
//! stamped as Elixir stamps it (`cron`, `cron_expr`, `cron_name`, `cron_tz`). `@reboot`
//! entries run once per node start, at the first tick at which the node leads (as Elixir's
//! plugin does).
//!
//! One job per entry and tick, however many nodes run the crontab and whoever leads: the
//! insert takes a transaction-scoped advisory lock per entry name and skips an entry that
//! already has a job inserted since the tick began. So two leaders for a moment, or a leader
//! that restarts within a minute, insert nothing twice.
//!
//! Every node also publishes its crontab on `cronitor` every 15 s, as Oban Met's Cronitor does,
//! so Oban Web's Crons page lists the entries and finds their jobs by `meta.cron_name`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, DurationRound, Timelike, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::insert::{JobColumns, NewJob, render_with_insert};
use crate::notifier::{self, Channel};
use crate::{Db, Error, Prefix, Result};

const NOW: &str = include_str!("sql/now.sql");
const LOCK_CRON_ENTRIES: &str = include_str!("sql/lock_cron_entries.sql");
const INSERT_CRON_JOBS: &str = include_str!("sql/insert_cron_jobs.sql");

/// How often a node publishes its crontab on `cronitor` (Oban Met's Cronitor interval).
pub const CRONITOR_INTERVAL: Duration = Duration::from_secs(15);

/// One line of a crontab: when, which job, and under which name.
///
/// ```
/// # fn main() -> oban_core::Result<()> {
/// use oban_core::cron::CronEntry;
/// use oban_core::insert::NewJob;
/// let job = NewJob::new("MyApp.Report", &serde_json::json!({"kind": "daily"}))?.queue("reports");
/// let entry = CronEntry::new("0 6 * * MON-FRI", job)?.timezone("Europe/Paris")?;
/// assert_eq!(entry.timezone_name(), "Europe/Paris");
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct CronEntry {
    expression: String,
    schedule: Schedule,
    job: NewJob,
    name: Option<String>,
    timezone: Tz,
}

#[derive(Clone, Debug)]
enum Schedule {
    /// `@reboot`: once per start, at the first tick at which the node leads.
    Reboot,
    At(Box<Cron>),
}

impl CronEntry {
    /// An entry inserting `job` whenever `expression` matches, in UTC (`Etc/UTC`).
    ///
    /// `expression` is five fields (minute, hour, day of month, month, day of week; names such
    /// as `JAN` and `MON`, ranges, lists and steps) or one of `@yearly`, `@annually`,
    /// `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`, `@reboot`. As in Elixir, a
    /// job runs when the day of month *and* the day of week match. An expression that cannot
    /// be parsed is an [`Error::Config`] naming it.
    pub fn new(expression: &str, job: NewJob) -> Result<Self> {
        job.validate()?;
        let schedule = match expression.trim() {
            "@reboot" => Schedule::Reboot,
            other => Schedule::At(Box::new(
                CronParser::builder()
                    .seconds(Seconds::Disallowed)
                    .dom_and_dow(true)
                    .sloppy_ranges(true)
                    .build()
                    .parse(other)
                    .map_err(|error| {
                        Error::Config(format!("cron expression {expression:?}: {error}"))
                    })?,
            )),
        };
        Ok(Self {
            expression: expression.trim().to_owned(),
            schedule,
            job,
            name: None,
            timezone: chrono_tz::Etc::UTC,
        })
    }

    /// Parses a crontab line: the expression (five fields or an `@`-nickname), the worker
    /// name, then optionally the job's args as a JSON object, e.g.
    /// `*/15 * * * * MyApp.Sync {"full": false}`. `queue_of` gives the queue of a worker
    /// this node knows (its [`WorkerOptions`](crate::worker::WorkerOptions)); an unknown
    /// worker is an error, since the line names no queue.
    pub fn parse_line(line: &str, queue_of: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let invalid = |why: String| Error::Config(format!("cron line {line:?}: {why}"));
        let line = line.trim();
        let fields = if line.starts_with('@') { 1 } else { 5 };
        let mut rest = line;
        for _ in 0..fields {
            rest = rest
                .trim_start()
                .split_once(char::is_whitespace)
                .ok_or_else(|| {
                    invalid("expected an expression, a worker and optional JSON args".into())
                })?
                .1;
        }
        let expression = line[..line.len() - rest.len()].trim();
        let rest = rest.trim_start();
        let (worker, args) = rest.split_once(char::is_whitespace).unwrap_or((rest, "{}"));
        let args: Value = serde_json::from_str(args.trim())
            .map_err(|error| invalid(format!("args are not JSON: {error}")))?;
        let queue = queue_of(worker)
            .ok_or_else(|| invalid(format!("no worker {worker:?} is registered on this node")))?;
        Self::new(expression, NewJob::new(worker, &args)?.queue(queue))
    }

    /// Names the entry: Oban Web lists it under this name and finds its jobs by
    /// `meta.cron_name`. Without one, the name is derived from the expression, the worker and
    /// the job's options (the first 8 hex digits of a SHA-256, as oban-py names entries).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Evaluates the expression in an IANA time zone such as `"Europe/Paris"`.
    pub fn timezone(mut self, timezone: &str) -> Result<Self> {
        self.timezone = timezone
            .parse()
            .map_err(|_| Error::Config(format!("unknown time zone {timezone:?}")))?;
        Ok(self)
    }

    /// The expression as written.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The time zone's IANA name.
    pub fn timezone_name(&self) -> &str {
        self.timezone.name()
    }

    /// The name stamped in `meta.cron_name` and published to Oban Web.
    pub fn name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            let hash = Sha256::digest(format!(
                "{}:{}:{}",
                self.expression,
                self.job.worker_name(),
                Value::Object(self.options())
            ));
            hash[..4].iter().map(|byte| format!("{byte:02x}")).collect()
        })
    }

    /// Whether the entry runs in the minute holding `at`.
    fn matches(&self, at: DateTime<Utc>) -> bool {
        let Schedule::At(cron) = &self.schedule else {
            return false;
        };
        let minute = at
            .with_timezone(&self.timezone)
            .with_second(0)
            .and_then(|t| t.with_nanosecond(0));
        minute.is_some_and(|minute| cron.is_time_matching(&minute).unwrap_or(false))
    }

    /// The job to insert, its meta stamped as Elixir's Cron plugin stamps it.
    fn job(&self) -> NewJob {
        let mut meta = self.job.meta.as_object().cloned().unwrap_or_default();
        meta.insert("cron".into(), Value::Bool(true));
        meta.insert("cron_expr".into(), self.expression.clone().into());
        meta.insert("cron_name".into(), self.name().into());
        meta.insert("cron_tz".into(), self.timezone.name().into());
        let mut job = self.job.clone();
        job.meta = Value::Object(meta);
        job
    }

    /// The job's options as Oban Met's Cronitor lists them: `args`, then whatever differs
    /// from a plain job, and the time zone when it is not UTC.
    fn options(&self) -> Map<String, Value> {
        let job = &self.job;
        let mut options = Map::new();
        options.insert("args".into(), job.args.clone());
        options.insert("queue".into(), job.queue.clone().into());
        if job.max_attempts != 20 {
            options.insert("max_attempts".into(), job.max_attempts.into());
        }
        if let Some(priority) = job.priority {
            options.insert("priority".into(), priority.into());
        }
        if !job.tags.is_empty() {
            options.insert("tags".into(), job.tags.clone().into());
        }
        if job.meta.as_object().is_some_and(|meta| !meta.is_empty()) {
            options.insert("meta".into(), job.meta.clone());
        }
        if self.timezone != chrono_tz::Etc::UTC {
            options.insert("timezone".into(), self.timezone.name().into());
        }
        options
    }

    /// `[expr, worker, opts]`, one entry of a `cronitor` crontab.
    fn cronitor_entry(&self) -> Value {
        let mut options = self.options();
        options.insert("name".into(), self.name().into());
        json!([self.expression, self.job.worker_name(), options])
    }
}

/// Inserts the crontab's jobs at every tick while this node leads.
pub(crate) struct Scheduler {
    pub pool: Db,
    pub prefix: Prefix,
    pub crontab: Arc<[CronEntry]>,
    /// One minute; tests shorten it.
    pub tick: Duration,
}

impl Scheduler {
    pub async fn run(self, is_leader: watch::Receiver<bool>, stop: CancellationToken) {
        let (now, lock, insert) = (
            self.prefix.render(NOW),
            self.prefix.render(LOCK_CRON_ENTRIES),
            render_with_insert(&self.prefix, INSERT_CRON_JOBS, 10),
        );
        let mut reboot_pending = true;
        loop {
            let next = self.next_tick(&now).await;
            let delay = next.map_or(self.tick, |(_, delay)| delay);
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            let (Some((tick, _)), true) = (next, *is_leader.borrow()) else {
                continue;
            };
            let due: Vec<&CronEntry> = self
                .crontab
                .iter()
                .filter(|entry| match entry.schedule {
                    Schedule::Reboot => reboot_pending,
                    Schedule::At(_) => entry.matches(tick),
                })
                .collect();
            reboot_pending = false;
            if let Err(error) = self.insert(&lock, &insert, tick, &due).await {
                tracing::warn!(%error, "cron could not insert this tick's jobs");
            }
        }
    }

    /// The next tick by the database clock, and how long until it; `None` (logged) when the
    /// clock cannot be read, so the caller waits a whole tick and tries again.
    async fn next_tick(&self, now: &sqlx::SqlStr) -> Option<(DateTime<Utc>, Duration)> {
        let now = sqlx::query_scalar::<_, DateTime<Utc>>(now.clone())
            .fetch_one(&self.pool)
            .await
            .inspect_err(|error| {
                tracing::warn!(%error, "cron could not read the database clock; retrying next tick")
            })
            .ok()?;
        let tick = next_tick(now, self.tick)?;
        Some((tick, (tick - now).to_std().unwrap_or_default()))
    }

    /// Inserts the jobs of `due` in one transaction, skipping any entry with a job inserted
    /// since `tick` began.
    async fn insert(
        &self,
        lock: &sqlx::SqlStr,
        insert: &sqlx::SqlStr,
        tick: DateTime<Utc>,
        due: &[&CronEntry],
    ) -> Result<()> {
        if due.is_empty() {
            return Ok(());
        }
        let mut names: Vec<String> = due.iter().map(|entry| entry.name()).collect();
        let mut columns = JobColumns::default();
        for entry in due {
            columns.push(&entry.job())?;
        }
        let mut tx = self.pool.begin().await?;
        names.sort();
        sqlx::query(lock.clone())
            .bind(&names)
            .bind(self.prefix.as_str())
            .execute(&mut *tx)
            .await?;
        let inserted: Vec<(i64,)> = columns
            .bind(sqlx::query_as(insert.clone()))
            .bind(tick.naive_utc())
            .bind(self.prefix.channel("insert"))
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::debug!(due = due.len(), inserted = inserted.len(), "cron tick");
        Ok(())
    }
}

/// The first multiple of `tick` (since the epoch) after `now`.
fn next_tick(now: DateTime<Utc>, tick: Duration) -> Option<DateTime<Utc>> {
    let tick = chrono::Duration::from_std(tick).ok()?;
    Some(now.duration_trunc(tick).ok()? + tick)
}

/// Publishes this node's crontab on `cronitor` every [`CRONITOR_INTERVAL`] until `stop`.
pub(crate) struct Cronitor {
    pub pool: Db,
    pub prefix: Prefix,
    pub name: String,
    pub node: String,
    pub crontab: Arc<[CronEntry]>,
}

impl Cronitor {
    pub async fn run(self, stop: CancellationToken) {
        let message = json!({
            "crontab": self.crontab.iter().map(CronEntry::cronitor_entry).collect::<Vec<_>>(),
            "name": self.name,
            "node": self.node,
        });
        let mut tick = tokio::time::interval(CRONITOR_INTERVAL);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let sent = notifier::publish(
                &self.pool,
                &self.prefix,
                Channel::Cronitor,
                std::slice::from_ref(&message),
            );
            if let Err(error) = sent.await {
                tracing::warn!(%error, "could not publish the crontab");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn entry(expression: &str) -> CronEntry {
        let job = NewJob::new("MyApp.Report", &json!({"a": 1})).unwrap();
        CronEntry::new(expression, job).unwrap()
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn matches_like_elixir() {
        // 2026-12-07 is a Monday.
        assert!(entry("* * * * *").matches(utc(2026, 12, 7, 10, 3)));
        assert!(entry("*/15 9-17 * * MON-FRI").matches(utc(2026, 12, 7, 10, 30)));
        assert!(!entry("*/15 9-17 * * MON-FRI").matches(utc(2026, 12, 6, 10, 30)));
        assert!(entry("@hourly").matches(utc(2026, 12, 7, 10, 0)));
        assert!(!entry("@hourly").matches(utc(2026, 12, 7, 10, 1)));
        assert!(entry("@daily").matches(utc(2026, 12, 7, 0, 0)));
        assert!(entry("0 0 1 JAN *").matches(utc(2027, 1, 1, 0, 0)));
        // Day of month AND day of week, not POSIX's OR: the 7th is a Monday, the 8th is not.
        assert!(entry("0 0 7 * 1").matches(utc(2026, 12, 7, 0, 0)));
        assert!(!entry("0 0 8 * 1").matches(utc(2026, 12, 8, 0, 0)));
        // Seconds within the minute do not matter (a shortened tick lands mid-minute).
        assert!(
            entry("3 10 * * *").matches(utc(2026, 12, 7, 10, 3) + chrono::Duration::seconds(41))
        );
    }

    #[test]
    fn evaluates_in_the_entry_time_zone() {
        let paris = entry("0 9 * * *").timezone("Europe/Paris").unwrap();
        assert!(
            paris.matches(utc(2026, 12, 7, 8, 0)),
            "09:00 CET is 08:00 UTC in winter"
        );
        assert!(
            paris.matches(utc(2026, 7, 7, 7, 0)),
            "09:00 CEST is 07:00 UTC in summer"
        );
        assert!(!paris.matches(utc(2026, 12, 7, 9, 0)));
        assert!(entry("@daily").timezone("Mars/Olympus").is_err());
    }

    #[test]
    fn rejects_what_is_not_an_expression() {
        let job = || NewJob::new("W", &json!({})).unwrap();
        for bad in [
            "",
            "* * * *",
            "61 * * * *",
            "* * * * * *",
            "@fortnightly",
            "a b c d e",
        ] {
            let error = CronEntry::new(bad, job()).unwrap_err().to_string();
            assert!(error.contains("cron expression"), "{bad:?}: {error}");
        }
    }

    #[test]
    fn stamps_meta_as_elixir_does() {
        let job = NewJob::new("MyApp.Report", &json!({}))
            .unwrap()
            .meta(&json!({"own": 1}))
            .unwrap();
        let entry = CronEntry::new("* * * * *", job).unwrap().named("reports");
        assert_eq!(
            entry.job().meta,
            json!({"own": 1, "cron": true, "cron_expr": "* * * * *", "cron_name": "reports", "cron_tz": "Etc/UTC"})
        );
    }

    #[test]
    fn default_names_are_stable_and_tell_entries_apart() {
        assert_eq!(entry("* * * * *").name(), entry("* * * * *").name());
        assert_eq!(entry("* * * * *").name().len(), 8);
        assert_ne!(entry("* * * * *").name(), entry("@hourly").name());
        let paris = entry("* * * * *").timezone("Europe/Paris").unwrap();
        assert_ne!(entry("* * * * *").name(), paris.name());
    }

    #[test]
    fn parses_crontab_lines() {
        let queue_of = |worker: &str| (worker == "MyApp.Sync").then(|| "sync".to_owned());
        let entry =
            CronEntry::parse_line(r#"*/15 * * * * MyApp.Sync {"full": false}"#, queue_of).unwrap();
        assert_eq!(entry.expression(), "*/15 * * * *");
        assert_eq!(entry.job.queue_name(), "sync");
        assert_eq!(entry.job.args(), &json!({"full": false}));
        let entry = CronEntry::parse_line("@daily MyApp.Sync", queue_of).unwrap();
        assert_eq!(
            (entry.expression(), entry.job.args()),
            ("@daily", &json!({}))
        );
        for bad in [
            "@daily",
            "* * * * *",
            "@daily Other.Worker",
            "@daily MyApp.Sync {nope",
            "@daily MyApp.Sync [1]",
        ] {
            assert!(CronEntry::parse_line(bad, queue_of).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ticks_align_to_their_length() {
        let now = utc(2026, 12, 7, 10, 3) + chrono::Duration::milliseconds(41_250);
        assert_eq!(
            next_tick(now, Duration::from_secs(60)),
            Some(utc(2026, 12, 7, 10, 4))
        );
        assert_eq!(
            next_tick(now, Duration::from_secs(1)),
            Some(utc(2026, 12, 7, 10, 3) + chrono::Duration::seconds(42))
        );
    }
}
