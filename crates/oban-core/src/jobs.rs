//! The job API: read, retry, cancel, delete and update jobs by id or by [`JobFilter`], as
//! `Oban.retry_all_jobs`, `cancel_all_jobs`, `delete_all_jobs` and `update_job` do. Called
//! through [`Client`](crate::Client); each statement is a `.sql` file saying what it
//! guarantees.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::postgres::PgArguments;
use sqlx::query::QueryAs;
use sqlx::{Postgres, SqlStr};

use crate::job::JobState;
use crate::{Error, Prefix, Result};

pub(crate) const GET_JOB: &str = include_str!("sql/get_job.sql");
pub(crate) const RETRY_JOBS: &str = include_str!("sql/retry_jobs.sql");
pub(crate) const CANCEL_JOBS: &str = include_str!("sql/cancel_jobs.sql");
pub(crate) const DELETE_JOBS: &str = include_str!("sql/delete_jobs.sql");
pub(crate) const UPDATE_JOB: &str = include_str!("sql/update_job.sql");
const JOB_FILTER: &str = include_str!("sql/job_filter.sql");

/// Which jobs a job-API call acts on: those that meet every condition given. Within one
/// condition any listed value matches (any of the queues, say), except tags: a job must carry
/// all of them. [`JobFilter::all`] names every job.
///
/// ```
/// use oban_core::jobs::JobFilter;
/// use oban_core::job::JobState;
/// let filter = JobFilter::all()
///     .queue("mailers")
///     .state(JobState::Discarded)
///     .args_contain(&serde_json::json!({"account_id": 7}))?;
/// # Ok::<(), oban_core::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JobFilter {
    ids: Option<Vec<i64>>,
    queues: Option<Vec<String>>,
    states: Option<Vec<String>>,
    workers: Option<Vec<String>>,
    tags: Option<Vec<String>>,
    args: Option<Value>,
    priorities: Option<Vec<i32>>,
    meta: Option<Value>,
}

/// Appends `value` to a condition's list, creating it.
fn add<T>(list: &mut Option<Vec<T>>, value: T) {
    list.get_or_insert_with(Vec::new).push(value);
}

impl JobFilter {
    /// Every job.
    pub fn all() -> Self {
        Self::default()
    }

    /// The jobs with these ids (none for an empty list).
    pub fn ids(ids: impl IntoIterator<Item = i64>) -> Self {
        Self {
            ids: Some(ids.into_iter().collect()),
            ..Self::default()
        }
    }

    /// Also in `queue` (calls add queues).
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        add(&mut self.queues, queue.into());
        self
    }

    /// Also in `state` (calls add states).
    pub fn state(mut self, state: JobState) -> Self {
        add(&mut self.states, state.as_str().to_owned());
        self
    }

    /// Also of `worker`, the name string as stored (calls add workers).
    pub fn worker(mut self, worker: impl Into<String>) -> Self {
        add(&mut self.workers, worker.into());
        self
    }

    /// Also carrying `tag`, compared as [`NewJob::tags`](crate::insert::NewJob::tags) stores
    /// it (calls add tags, all of which a job must carry).
    pub fn tag(mut self, tag: &str) -> Self {
        add(&mut self.tags, tag.trim().to_lowercase());
        self
    }

    /// Also at `priority` (calls add priorities).
    pub fn priority(mut self, priority: i32) -> Self {
        add(&mut self.priorities, priority);
        self
    }

    /// Also with args that contain `args` (PostgreSQL's jsonb `@>`: `{"id": 1}` matches
    /// `{"id": 1, "x": 2}`). `args` must serialize to a JSON object.
    pub fn args_contain(mut self, args: &impl Serialize) -> Result<Self> {
        self.args = Some(json_object("args", args)?);
        Ok(self)
    }

    /// Also with meta that contains `meta`, as [`JobFilter::args_contain`] compares args
    /// (Oban Pro's batches and workflows, and Elixir's cron jobs, keep their marks there).
    /// `meta` must serialize to a JSON object.
    pub fn meta_contain(mut self, meta: &impl Serialize) -> Result<Self> {
        self.meta = Some(json_object("meta", meta)?);
        Ok(self)
    }

    /// The jobs a failed assertion about this filter lists, to show what was there instead:
    /// those of the filter's workers if it names any, else of its queues, else every job.
    #[cfg(feature = "testing")]
    pub(crate) fn neighbourhood(&self) -> Self {
        match (&self.workers, &self.queues) {
            (Some(workers), _) => Self {
                workers: Some(workers.clone()),
                ..Self::default()
            },
            (None, queues) => Self {
                queues: queues.clone(),
                ..Self::default()
            },
        }
    }

    /// Binds `$1..$8` of `sql/job_filter.sql`.
    pub(crate) fn bind<'q, O>(
        &self,
        query: QueryAs<'q, Postgres, O, PgArguments>,
    ) -> QueryAs<'q, Postgres, O, PgArguments> {
        query
            .bind(self.ids.clone())
            .bind(self.queues.clone())
            .bind(self.states.clone())
            .bind(self.workers.clone())
            .bind(self.tags.clone())
            .bind(self.args.clone())
            .bind(self.priorities.clone())
            .bind(self.meta.clone())
    }
}

/// `value` as JSON, which a containment filter on `what` needs to be an object.
fn json_object(what: &str, value: &impl Serialize) -> Result<Value> {
    let value = serde_json::to_value(value)?;
    if !value.is_object() {
        return Err(Error::InvalidJob(format!(
            "a {what} filter must be a JSON object, got {value}"
        )));
    }
    Ok(value)
}

/// Says which jobs the filter names, e.g. `worker "MyApp.Mailer", queue "mailers", args
/// containing {"id":1}`; `every job` when it names all.
impl std::fmt::Display for JobFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lists = [
            (
                "worker",
                self.workers.as_ref().map(|w| listed(w, "\"", " or ")),
            ),
            (
                "queue",
                self.queues.as_ref().map(|q| listed(q, "\"", " or ")),
            ),
            ("state", self.states.as_ref().map(|s| listed(s, "", " or "))),
            ("id", self.ids.as_ref().map(|ids| listed(ids, "", " or "))),
            ("tags", self.tags.as_ref().map(|t| listed(t, "\"", " and "))),
            (
                "priority",
                self.priorities.as_ref().map(|p| listed(p, "", " or ")),
            ),
        ];
        let mut parts: Vec<String> = lists
            .into_iter()
            .filter_map(|(what, list)| Some(format!("{what} {}", list?)))
            .collect();
        for (what, json) in [("args", &self.args), ("meta", &self.meta)] {
            if let Some(json) = json {
                parts.push(format!("{what} containing {json}"));
            }
        }
        if parts.is_empty() {
            return f.write_str("every job");
        }
        f.write_str(&parts.join(", "))
    }
}

/// The values joined by `joiner` (`a or b`), each between `quote`s; `none` for an empty list.
fn listed<T: std::fmt::Display>(values: &[T], quote: &str, joiner: &str) -> String {
    if values.is_empty() {
        return "none".to_owned();
    }
    values
        .iter()
        .map(|value| format!("{quote}{value}{quote}"))
        .collect::<Vec<_>>()
        .join(joiner)
}

/// Renders a job-API statement with its `{job_filter}` condition.
pub(crate) fn render_with_filter(prefix: &Prefix, template: &str) -> SqlStr {
    let filter = crate::insert::fragment(JOB_FILTER);
    prefix.render(&template.replace("{job_filter}", &filter))
}

/// The fields [`Client::update_job`](crate::Client::update_job) changes, as
/// `Oban.update_job` accepts them: those left `None` are kept. Validated as a new job's are.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JobUpdate {
    /// New args (a JSON object).
    pub args: Option<Value>,
    /// New attempt limit (positive).
    pub max_attempts: Option<i32>,
    /// New meta (a JSON object).
    pub meta: Option<Value>,
    /// New priority, 0..=9.
    pub priority: Option<i32>,
    /// New queue.
    pub queue: Option<String>,
    /// New run time; a job waiting to run becomes `scheduled`.
    pub scheduled_at: Option<DateTime<Utc>>,
    /// New tags, normalised as [`NewJob::tags`](crate::insert::NewJob::tags) normalises them.
    pub tags: Option<Vec<String>>,
    /// New worker name string.
    pub worker: Option<String>,
}

impl JobUpdate {
    /// Checks each given field by the rules a new job's obey, and normalises the tags.
    pub(crate) fn validated(&self) -> Result<Self> {
        let mut probe = crate::insert::NewJob::new(
            self.worker.as_deref().unwrap_or("W"),
            self.args
                .as_ref()
                .unwrap_or(&Value::Object(Default::default())),
        )?
        .queue(self.queue.as_deref().unwrap_or("q"))
        .max_attempts(self.max_attempts.unwrap_or(1))
        .tags(self.tags.iter().flatten());
        if let Some(meta) = &self.meta {
            probe = probe.meta(meta)?;
        }
        if let Some(priority) = self.priority {
            probe = probe.priority(priority);
        }
        probe.validate()?;
        Ok(Self {
            tags: self.tags.as_ref().map(|_| probe.tags.clone()),
            worker: self.worker.as_ref().map(|_| probe.worker.clone()),
            ..self.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_are_checked_like_new_jobs() {
        let bad = [
            JobUpdate {
                priority: Some(10),
                ..JobUpdate::default()
            },
            JobUpdate {
                max_attempts: Some(0),
                ..JobUpdate::default()
            },
            JobUpdate {
                args: Some(serde_json::json!([1])),
                ..JobUpdate::default()
            },
            JobUpdate {
                queue: Some(String::new()),
                ..JobUpdate::default()
            },
        ];
        for update in bad {
            assert!(update.validated().is_err(), "{update:?}");
        }
        let tags = JobUpdate {
            tags: Some(vec![" A".into(), "a".into(), "b".into()]),
            worker: Some("Elixir.My.Worker".into()),
            ..JobUpdate::default()
        }
        .validated()
        .unwrap();
        assert_eq!(tags.tags, Some(vec!["a".to_owned(), "b".to_owned()]));
        assert_eq!(tags.worker.as_deref(), Some("My.Worker"));
        assert_eq!(
            JobUpdate::default().validated().unwrap(),
            JobUpdate::default()
        );
    }

    #[test]
    fn filters_say_what_they_name() {
        assert_eq!(JobFilter::all().to_string(), "every job");
        let filter = JobFilter::all()
            .worker("My.Mailer")
            .queue("mailers")
            .queue("urgent")
            .tag("a")
            .tag("b")
            .args_contain(&serde_json::json!({"id": 1}))
            .unwrap()
            .priority(0)
            .priority(3)
            .meta_contain(&serde_json::json!({"batch": "b1"}))
            .unwrap();
        assert_eq!(
            filter.to_string(),
            r#"worker "My.Mailer", queue "mailers" or "urgent", tags "a" and "b", priority 0 or 3, args containing {"id":1}, meta containing {"batch":"b1"}"#
        );
        assert_eq!(JobFilter::ids([]).to_string(), "id none");
    }

    #[test]
    fn filters_refuse_non_object_args_and_meta() {
        assert!(JobFilter::all().args_contain(&[1]).is_err());
        let error = JobFilter::all().meta_contain(&"b1").unwrap_err();
        assert!(
            error
                .to_string()
                .contains("a meta filter must be a JSON object"),
            "{error}"
        );
    }
}
