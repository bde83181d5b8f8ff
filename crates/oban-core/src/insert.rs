//! Enqueueing: building jobs and inserting them the way `Oban.insert_all` does.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::postgres::PgArguments;
use sqlx::query::QueryAs;
use sqlx::{Connection, PgConnection, PgExecutor, Postgres, SqlStr};

use crate::job::JobState;
use crate::unique::{ReplaceField, Unique};
use crate::worker::Worker;
use crate::{Error, Prefix, Result};

const INSERT_JOBS: &str = include_str!("sql/insert_jobs.sql");
const INSERT_ALL: &str = include_str!("sql/insert_all.sql");
const LOCK_UNIQUE_JOBS: &str = include_str!("sql/lock_unique_jobs.sql");
const INSERT_UNIQUE_JOB: &str = include_str!("sql/insert_unique_job.sql");

/// Elixir's schema limits worker and queue names to 1..=127 characters.
const MAX_NAME_CHARS: usize = 127;

/// A job to insert, built like `Oban.Job.new/2` (Elixir) or `Job(...)` (oban-py).
///
/// ```
/// # fn main() -> oban_core::Result<()> {
/// use oban_core::insert::NewJob;
/// let job = NewJob::new("BadgeForge.PrintCenter", &serde_json::json!({"id": 1}))?
///     .queue("printing")
///     .max_attempts(5)
///     .tags(["demo"]);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct NewJob {
    pub(crate) worker: String,
    pub(crate) queue: String,
    pub(crate) args: Value,
    pub(crate) max_attempts: i32,
    pub(crate) priority: Option<i32>,
    pub(crate) scheduled_at: Option<NaiveDateTime>,
    pub(crate) tags: Vec<String>,
    pub(crate) meta: Value,
    pub(crate) unique: Option<Unique>,
    pub(crate) replace: BTreeMap<JobState, Vec<ReplaceField>>,
}

impl NewJob {
    /// A job for `worker` (the name string stored in the row) with `args` serialized to a JSON
    /// object. Defaults are Oban's: queue `default`, max_attempts 20, priority left to the table
    /// (0), no tags, empty meta, runnable now.
    pub fn new(worker: impl Into<String>, args: &impl Serialize) -> Result<Self> {
        Self::from_value(worker.into(), serde_json::to_value(args)?)
    }

    /// A job for worker `W` with `args` as they are, and `W`'s [`WorkerOptions`] applied (queue,
    /// max_attempts, priority), as [`Worker::new_job`] builds it from typed args. For args
    /// that may not decode into [`Worker::Args`], e.g. in tests of bad input.
    ///
    /// [`WorkerOptions`]: crate::worker::WorkerOptions
    pub fn for_worker<W: Worker>(args: Value) -> Result<Self> {
        let options = W::OPTIONS;
        Ok(Self::from_value(W::NAME.to_owned(), args)?
            .queue(options.queue)
            .max_attempts(options.max_attempts)
            .priority(options.priority))
    }

    /// A job for `worker` with `args`, which must be a JSON object, and Oban's defaults.
    fn from_value(worker: String, args: Value) -> Result<Self> {
        if !args.is_object() {
            return Err(Error::InvalidJob(format!(
                "args must serialize to a JSON object, got {args}"
            )));
        }
        // Elixir writers strip the module prefix; a row carrying it would not match
        // worker-based queries, metrics labels or unique checks.
        let worker = worker
            .strip_prefix("Elixir.")
            .map(str::to_owned)
            .unwrap_or(worker);
        Ok(Self {
            worker,
            queue: "default".to_owned(),
            args,
            max_attempts: 20,
            priority: None,
            scheduled_at: None,
            tags: Vec::new(),
            meta: Value::Object(Default::default()),
            unique: None,
            replace: BTreeMap::new(),
        })
    }

    /// The queue to insert into.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// Attempts allowed before the job is discarded (must be positive).
    pub fn max_attempts(mut self, max_attempts: i32) -> Self {
        self.max_attempts = max_attempts;
        self
    }

    /// Priority 0 (highest) to 9.
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = Some(priority);
        self
    }

    /// Runs no earlier than `at`; the job is inserted `scheduled` (whatever the time, as Oban does).
    pub fn scheduled_at(mut self, at: DateTime<Utc>) -> Self {
        self.scheduled_at = Some(at.naive_utc());
        self
    }

    /// Runs no earlier than `delay` from now (application clock, as Elixir's `schedule_in`).
    pub fn schedule_in(self, delay: Duration) -> Self {
        let delay = chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
        self.scheduled_at(Utc::now() + delay)
    }

    /// Tags, normalised as Elixir does: trimmed, lower-cased, blanks and duplicates removed,
    /// first occurrence order kept.
    pub fn tags<S: AsRef<str>>(mut self, tags: impl IntoIterator<Item = S>) -> Self {
        self.tags.clear();
        for tag in tags {
            let tag = tag.as_ref().trim().to_lowercase();
            if !tag.is_empty() && !self.tags.contains(&tag) {
                self.tags.push(tag);
            }
        }
        self
    }

    /// Metadata object stored in `meta`.
    pub fn meta(mut self, meta: &impl Serialize) -> Result<Self> {
        let meta = serde_json::to_value(meta)?;
        if !meta.is_object() {
            return Err(Error::InvalidJob(format!(
                "meta must be a JSON object, got {meta}"
            )));
        }
        self.meta = meta;
        Ok(self)
    }

    /// Makes the job unique (Oban's `unique` option): it is inserted only if no job matching
    /// `unique` exists, and otherwise the insert reports the job it found (see [`crate::unique`]).
    pub fn unique(mut self, unique: Unique) -> Self {
        self.unique = Some(unique);
        self
    }

    /// On a unique conflict, overwrites `fields` of the job found when it is in one of
    /// `states`, with this job's values (Oban's `replace: [state: fields]`). Calls add up.
    pub fn replace(
        mut self,
        states: impl IntoIterator<Item = JobState>,
        fields: impl IntoIterator<Item = ReplaceField> + Clone,
    ) -> Self {
        for state in states {
            let listed = self.replace.entry(state).or_default();
            listed.extend(fields.clone());
            listed.sort();
            listed.dedup();
        }
        self
    }

    /// The unique options, if any.
    pub fn unique_options(&self) -> Option<&Unique> {
        self.unique.as_ref()
    }

    /// The worker name string.
    pub fn worker_name(&self) -> &str {
        &self.worker
    }

    /// The queue name.
    pub fn queue_name(&self) -> &str {
        &self.queue
    }

    /// The arguments.
    pub fn args(&self) -> &Value {
        &self.args
    }

    /// Checks the rules both Oban runtimes and the schema's check constraints enforce.
    pub fn validate(&self) -> Result<()> {
        for (what, name) in [("worker", &self.worker), ("queue", &self.queue)] {
            let chars = name.chars().count();
            if name.trim().is_empty() || chars > MAX_NAME_CHARS {
                return Err(Error::InvalidJob(format!(
                    "{what} must be 1 to {MAX_NAME_CHARS} characters and not blank, got {name:?}"
                )));
            }
        }
        if self.max_attempts < 1 {
            return Err(Error::InvalidJob(format!(
                "max_attempts must be positive, got {}",
                self.max_attempts
            )));
        }
        if let Some(priority) = self.priority.filter(|p| !(0..=9).contains(p)) {
            return Err(Error::InvalidJob(format!(
                "priority must be 0..=9, got {priority}"
            )));
        }
        for (what, value) in [("args", &self.args), ("meta", &self.meta)] {
            if holds_nul(value) {
                return Err(Error::InvalidJob(format!(
                    "{what} must not contain U+0000, which PostgreSQL's jsonb cannot store"
                )));
            }
        }
        if let Some(unique) = &self.unique {
            unique.validate()?;
        }
        Ok(())
    }
}

/// Whether a string or key anywhere in `value` holds U+0000 (jsonb refuses it, so a job
/// carrying one could be run in memory but never inserted).
fn holds_nul(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(map) => map
            .iter()
            .any(|(key, value)| key.contains('\0') || holds_nul(value)),
        _ => false,
    }
}

/// What the database assigned to an inserted job, or, for a unique job that conflicted, the
/// job it found instead (after any replace).
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct InsertedJob {
    /// The new row's id, or the found job's.
    pub id: i64,
    /// Its queue.
    pub queue: String,
    /// `available` or `scheduled` for a new job; a found job's state may be any.
    #[sqlx(try_from = "String")]
    pub state: StateLabel,
    /// When it becomes (or became) runnable (UTC).
    pub scheduled_at: NaiveDateTime,
    /// Whether a unique job matched an existing job and was not inserted.
    pub conflict: bool,
}

/// A [`JobState`] decoded from its text label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateLabel(pub JobState);

impl TryFrom<String> for StateLabel {
    type Error = String;

    fn try_from(label: String) -> std::result::Result<Self, String> {
        label.parse().map(StateLabel)
    }
}

/// A batch of jobs laid out as the parallel arrays that `insert_jobs.sql` unnests.
#[derive(Default)]
pub(crate) struct JobColumns {
    pub worker: Vec<String>,
    pub queue: Vec<String>,
    pub args: Vec<Value>,
    pub max_attempts: Vec<i32>,
    pub priority: Vec<Option<i32>>,
    pub scheduled_at: Vec<Option<NaiveDateTime>>,
    pub tags: Vec<Value>,
    pub meta: Vec<Value>,
}

impl JobColumns {
    /// Validates and appends one job.
    pub fn push(&mut self, job: &NewJob) -> Result<()> {
        job.validate()?;
        self.worker.push(job.worker.clone());
        self.queue.push(job.queue.clone());
        self.args.push(job.args.clone());
        self.max_attempts.push(job.max_attempts);
        self.priority.push(job.priority);
        self.scheduled_at.push(job.scheduled_at);
        self.tags.push(Value::from(job.tags.clone()));
        self.meta.push(job.meta.clone());
        Ok(())
    }

    /// Binds the eight arrays, in the order of the `new_jobs` columns.
    pub fn bind<'q, O>(
        self,
        query: QueryAs<'q, Postgres, O, PgArguments>,
    ) -> QueryAs<'q, Postgres, O, PgArguments> {
        query
            .bind(self.worker)
            .bind(self.queue)
            .bind(self.args)
            .bind(self.max_attempts)
            .bind(self.priority)
            .bind(self.scheduled_at)
            .bind(self.tags)
            .bind(self.meta)
    }
}

/// A `.sql` file to splice into another statement: its lines without the comment lines (a
/// comment line spliced mid-line would swallow the rest of the statement's line).
pub(crate) fn fragment(sql: &str) -> String {
    sql.lines()
        .filter(|line| !line.starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Renders a statement that embeds `insert_jobs.sql`, with `$channel` bound at `channel_param`.
pub(crate) fn render_with_insert(prefix: &Prefix, template: &str, channel_param: usize) -> SqlStr {
    let insert = fragment(INSERT_JOBS).replace("$channel", &format!("${channel_param}"));
    prefix.render(&template.replace("{insert_jobs}", &insert))
}

/// Inserts one job. See [`insert_all`].
pub async fn insert(conn: &mut PgConnection, prefix: &Prefix, job: &NewJob) -> Result<InsertedJob> {
    let inserted = insert_all(conn, prefix, std::slice::from_ref(job)).await?;
    one(inserted)
}

/// The single result of a one-job insert.
pub(crate) fn one(mut inserted: Vec<InsertedJob>) -> Result<InsertedJob> {
    inserted
        .pop()
        .ok_or_else(|| Error::InvalidJob("the insert was skipped by a conflict".to_owned()))
}

/// Inserts `jobs` as `Oban.insert_all` does, and announces every queue that received an
/// available job on `<prefix>.oban_insert`. Returns one [`InsertedJob`] per job, in order.
///
/// `conn` is a connection or the caller's transaction (`&mut tx`): inside a transaction the
/// jobs and their notification are committed with the caller's data or not at all. Every job
/// is validated before anything is sent. Jobs without unique options go in one statement.
/// Unique jobs (which Elixir's `insert_all` ignores) are checked one by one, in order, after
/// the others, inside a transaction (a savepoint in the caller's), holding their advisory
/// locks until it ends: a unique job that matches an earlier job of the batch conflicts with
/// it. See [`crate::unique`] for the rule and how it serialises.
pub async fn insert_all(
    conn: &mut PgConnection,
    prefix: &Prefix,
    jobs: &[NewJob],
) -> Result<Vec<InsertedJob>> {
    if jobs.iter().all(|job| job.unique.is_none()) {
        return insert_plain(conn, prefix, jobs, true).await;
    }
    validate_all(jobs)?;
    let mut tx = conn.begin().await?;
    let inserted = insert_with_unique(&mut tx, prefix, jobs, true).await?;
    tx.commit().await?;
    Ok(inserted)
}

/// Validates every job of a batch.
pub(crate) fn validate_all(jobs: &[NewJob]) -> Result<()> {
    jobs.iter().try_for_each(NewJob::validate)
}

/// Inserts jobs without unique options in one statement (`insert_all.sql`), validating each
/// before anything is sent; `persistent` as for [`insert_with_unique`].
pub(crate) async fn insert_plain<'e>(
    executor: impl PgExecutor<'e>,
    prefix: &Prefix,
    jobs: &[NewJob],
    persistent: bool,
) -> Result<Vec<InsertedJob>> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let mut columns = JobColumns::default();
    for job in jobs {
        columns.push(job)?;
    }
    let sql = render_with_insert(prefix, INSERT_ALL, 9);
    let query = columns
        .bind(sqlx::query_as(sql))
        .bind(prefix.channel("insert"))
        .persistent(persistent);
    Ok(query.fetch_all(executor).await?)
}

/// Inserts a batch holding unique jobs, on a connection inside a transaction: takes every
/// unique job's lock (`lock_unique_jobs.sql`), inserts the plain jobs in one statement, then
/// each unique job with its check (`insert_unique_job.sql`). `persistent` is false behind a
/// transaction-mode pooler (see [`crate::Db::persistent`]).
pub(crate) async fn insert_with_unique(
    conn: &mut PgConnection,
    prefix: &Prefix,
    jobs: &[NewJob],
    persistent: bool,
) -> Result<Vec<InsertedJob>> {
    type Numbered<'a> = Vec<(usize, &'a NewJob)>;
    let (unique, plain): (Numbered, Numbered) = jobs
        .iter()
        .enumerate()
        .partition(|(_, job)| job.unique.is_some());
    let keys: Vec<String> = unique
        .iter()
        .filter_map(|(_, job)| Some(job.unique.as_ref()?.lock_text(job)))
        .collect();
    sqlx::query(prefix.render(LOCK_UNIQUE_JOBS))
        .bind(&keys)
        .bind(prefix.as_str())
        .persistent(persistent)
        .execute(&mut *conn)
        .await?;
    let mut results: Vec<Option<InsertedJob>> = vec![None; jobs.len()];
    let plain_jobs: Vec<NewJob> = plain.iter().map(|(_, job)| (*job).clone()).collect();
    let inserted = insert_plain(&mut *conn, prefix, &plain_jobs, persistent).await?;
    for ((at, _), job) in plain.iter().zip(inserted) {
        results[*at] = Some(job);
    }
    let sql = render_with_insert(prefix, INSERT_UNIQUE_JOB, 10);
    for (at, job) in unique {
        let mut columns = JobColumns::default();
        columns.push(job)?;
        let spec = job
            .unique
            .as_ref()
            .map(|unique| unique.spec(job, &job.replace));
        let found: InsertedJob = columns
            .bind(sqlx::query_as(sql.clone()))
            .bind(spec)
            .bind(prefix.channel("insert"))
            .persistent(persistent)
            .fetch_one(&mut *conn)
            .await?;
        results[at] = Some(found);
    }
    results
        .into_iter()
        .map(|job| {
            job.ok_or_else(|| Error::InvalidJob("a job of the batch was not inserted".into()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> NewJob {
        NewJob::new("Elixir.MyApp.Worker", &serde_json::json!({"a": 1})).unwrap()
    }

    #[test]
    fn strips_the_elixir_module_prefix_and_keeps_defaults() {
        let job = job();
        assert_eq!(job.worker_name(), "MyApp.Worker");
        assert_eq!(job.queue_name(), "default");
        assert_eq!(job.max_attempts, 20);
        assert!(job.validate().is_ok());
    }

    #[test]
    fn normalises_tags_like_elixir() {
        let job = job().tags([" Foo", "bar", "", "foo", "BAR "]);
        assert_eq!(job.tags, ["foo", "bar"]);
    }

    #[test]
    fn rejects_what_the_schema_would_reject() {
        assert!(job().queue("").validate().is_err());
        assert!(job().queue("q".repeat(128)).validate().is_err());
        assert!(job().max_attempts(0).validate().is_err());
        assert!(job().priority(10).validate().is_err());
        assert!(NewJob::new("W", &[1, 2]).is_err());
        let nul = serde_json::json!({"deep": [{"name": "a\u{0}b"}]});
        assert!(NewJob::new("W", &nul).unwrap().validate().is_err());
        assert!(
            job()
                .meta(&serde_json::json!({"a\u{0}": 1}))
                .unwrap()
                .validate()
                .is_err()
        );
    }

    #[test]
    fn scheduling_sets_scheduled_at() {
        let job = job().schedule_in(Duration::from_secs(60));
        let at = job.scheduled_at.unwrap().and_utc();
        assert!(at > Utc::now() + chrono::Duration::seconds(59));
    }
}
