//! Unique jobs: Oban's `unique` and `replace` options, checked when a job is inserted.
//!
//! A job with [`Unique`] options is inserted only if no job already in the table matches it:
//! one in one of the options' states, inserted (or scheduled) within the period, and equal on
//! each of the options' fields, by Elixir's rule (`Oban.Engines.Basic` in Oban 2.23): `queue`
//! and `worker` by equality; `args` and `meta` by JSON containment both ways (so arrays compare
//! as sets, and `1` equals `1.0`) when no keys are named, or by containment of the named keys'
//! values otherwise (an `args` whose named keys are all absent matches only an empty `args`).
//! The insert then reports the job it found, marked as a conflict, after updating the fields
//! that [`NewJob::replace`](crate::insert::NewJob::replace) names for the found job's state.
//!
//! # Serialisation
//!
//! Two inserters in this runtime never both insert: each takes a transaction-scoped advisory
//! lock on a hash of the job's unique key (`sql/lock_unique_jobs.sql`), then looks and inserts
//! in a second statement, whose snapshot sees whatever the previous holder committed. The key
//! holds the prefix, the options and the compared values, with every nested `args`/`meta`
//! value reduced to its type, so two jobs that could match each other always share a key (two
//! that cannot may share one too, and then merely wait for each other). The caller's
//! transaction must be READ COMMITTED (PostgreSQL's default): a REPEATABLE READ snapshot is
//! taken before the lock and would miss the other inserter's job.
//!
//! Elixir's Basic engine takes `pg_try_advisory_xact_lock` on `phash2(prefix) + phash2([keys,
//! states, query])`: an Erlang term hash of the unique query it builds, which another runtime
//! cannot compute. So a Rust insert and an Elixir insert of the same unique job at the same
//! moment are not serialised against each other: each may miss the other's uncommitted row and
//! both insert. Once either has committed, the other sees it by the same rule and conflicts.
//! oban-py 0.7 has no unique jobs. Elixir also skips the insert when the try-lock is taken and
//! returns an unsaved job; here the insert waits for the lock and reports the job it then finds.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::job::JobState;
use crate::{Error, Result};

/// A field two jobs are compared on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum UniqueField {
    /// The args object (or the named keys of it).
    Args,
    /// The meta object (or the named keys of it).
    Meta,
    /// The queue name.
    Queue,
    /// The worker name.
    Worker,
}

impl UniqueField {
    fn as_str(self) -> &'static str {
        match self {
            UniqueField::Args => "args",
            UniqueField::Meta => "meta",
            UniqueField::Queue => "queue",
            UniqueField::Worker => "worker",
        }
    }
}

/// Which timestamp the period counts back from now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UniqueTimestamp {
    /// When the existing job was inserted (Oban's default).
    #[default]
    InsertedAt,
    /// When the existing job is (or was) scheduled to run.
    ScheduledAt,
}

/// Oban's `unique` options. [`Unique::default`] is `unique: []` with Oban's defaults: fields
/// args, queue and worker; no keys; a period of 60 s; the states of Oban's `:successful` group
/// (every state but `discarded` and `cancelled`); timestamp `inserted_at`.
///
/// ```
/// use std::time::Duration;
/// use oban_core::unique::{Unique, UniqueField};
/// let unique = Unique::default()
///     .fields([UniqueField::Worker, UniqueField::Args])
///     .keys(["account_id"])
///     .period(Some(Duration::from_secs(300)));
/// # assert!(unique.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Unique {
    fields: Vec<UniqueField>,
    keys: Vec<String>,
    period: Option<Duration>,
    states: Vec<JobState>,
    timestamp: UniqueTimestamp,
}

impl Default for Unique {
    fn default() -> Self {
        Self {
            fields: vec![UniqueField::Args, UniqueField::Queue, UniqueField::Worker],
            keys: Vec::new(),
            period: Some(Duration::from_secs(60)),
            states: Self::SUCCESSFUL.to_vec(),
            timestamp: UniqueTimestamp::InsertedAt,
        }
    }
}

impl Unique {
    /// Oban's `:incomplete` group: jobs that have not finished.
    pub const INCOMPLETE: [JobState; 5] = [
        JobState::Suspended,
        JobState::Available,
        JobState::Scheduled,
        JobState::Executing,
        JobState::Retryable,
    ];

    /// Oban's `:successful` group (the default): unfinished or completed.
    pub const SUCCESSFUL: [JobState; 6] = [
        JobState::Suspended,
        JobState::Available,
        JobState::Scheduled,
        JobState::Executing,
        JobState::Retryable,
        JobState::Completed,
    ];

    /// `unique: true`: the defaults with an infinite period.
    pub fn forever() -> Self {
        Self::default().period(None)
    }

    /// The fields compared (duplicates are ignored).
    pub fn fields(mut self, fields: impl IntoIterator<Item = UniqueField>) -> Self {
        self.fields = fields.into_iter().collect();
        self.fields.sort();
        self.fields.dedup();
        self
    }

    /// The top-level keys of `args` and `meta` compared; none means the whole objects.
    pub fn keys<S: Into<String>>(mut self, keys: impl IntoIterator<Item = S>) -> Self {
        self.keys = keys.into_iter().map(Into::into).collect();
        self.keys.sort();
        self.keys.dedup();
        self
    }

    /// How far back an existing job counts; `None` is Oban's `:infinity`. Whole seconds, as
    /// Oban counts them (a fraction is rounded up).
    pub fn period(mut self, period: Option<Duration>) -> Self {
        self.period = period;
        self
    }

    /// The states an existing job must be in to count (duplicates are ignored).
    pub fn states(mut self, states: impl IntoIterator<Item = JobState>) -> Self {
        self.states = states.into_iter().collect();
        self.states.sort();
        self.states.dedup();
        self
    }

    /// Which timestamp the period applies to.
    pub fn timestamp(mut self, timestamp: UniqueTimestamp) -> Self {
        self.timestamp = timestamp;
        self
    }

    /// Checks the rules Oban's `validate_unique` enforces: some fields, some states, a
    /// positive period, and keys only when `args` or `meta` is compared.
    pub fn validate(&self) -> Result<()> {
        let invalid = |why: &str| Err(Error::InvalidJob(format!("unique options: {why}")));
        if self.fields.is_empty() {
            return invalid("fields must name at least one of args, meta, queue, worker");
        }
        if self.states.is_empty() {
            return invalid("states must name at least one state");
        }
        if self.period.is_some_and(|period| period.is_zero()) {
            return invalid("period must be positive (or None for ever)");
        }
        let keyable = self
            .fields
            .iter()
            .any(|field| matches!(field, UniqueField::Args | UniqueField::Meta));
        if !self.keys.is_empty() && !keyable {
            return invalid("keys need args or meta among the fields");
        }
        Ok(())
    }

    /// The compared value of `args` or `meta`: the whole object, or its named keys.
    fn compared(&self, object: &Value) -> Value {
        if self.keys.is_empty() {
            return object.clone();
        }
        let map = object.as_object().cloned().unwrap_or_default();
        Value::Object(
            map.into_iter()
                .filter(|(key, _)| self.keys.contains(key))
                .collect(),
        )
    }

    /// What `sql/insert_unique_job.sql` compares with, as its `$9`: the states, the period in
    /// seconds (`null` for ever), the timestamp, each compared field's value (absent when not
    /// compared), whether args/meta must be equal (rather than contain the value), and the
    /// replace lists by state.
    pub(crate) fn spec(
        &self,
        job: &crate::insert::NewJob,
        replace: &BTreeMap<JobState, Vec<ReplaceField>>,
    ) -> Value {
        let mut spec = Map::new();
        spec.insert("states".into(), json!(self.states));
        spec.insert(
            "period".into(),
            json!(self.period.map(|period| period.as_secs_f64().ceil())),
        );
        let scheduled = self.timestamp == UniqueTimestamp::ScheduledAt;
        spec.insert("by_scheduled_at".into(), json!(scheduled));
        for field in &self.fields {
            let value = match field {
                UniqueField::Args => self.compared(&job.args),
                UniqueField::Meta => self.compared(&job.meta),
                UniqueField::Queue => json!(job.queue),
                UniqueField::Worker => json!(job.worker),
            };
            // Elixir: equality (containment both ways) without keys, or when nothing is left
            // to compare; containment of the named keys' values otherwise.
            let exact = self.keys.is_empty() || value.as_object().is_some_and(Map::is_empty);
            spec.insert(format!("{}_exact", field.as_str()), json!(exact));
            spec.insert(field.as_str().to_owned(), value);
        }
        let replace: Map<String, Value> = replace
            .iter()
            .map(|(state, fields)| {
                let names: Vec<&str> = fields.iter().map(|field| field.as_str()).collect();
                (state.as_str().to_owned(), json!(names))
            })
            .collect();
        spec.insert("replace".into(), Value::Object(replace));
        Value::Object(spec)
    }

    /// The text hashed into the advisory lock key (with the prefix, in SQL): the options and
    /// the compared values, nested values of args/meta reduced to their type, numbers to their
    /// f64 value, so that any two jobs that may match each other have the same text.
    pub(crate) fn lock_text(&self, job: &crate::insert::NewJob) -> String {
        let coarse = |object: &Value| -> Value {
            let map = self
                .compared(object)
                .as_object()
                .cloned()
                .unwrap_or_default();
            Value::Object(
                map.into_iter()
                    .map(|(key, value)| (key, coarse_value(value)))
                    .collect(),
            )
        };
        let mut key = Map::new();
        for field in &self.fields {
            let value = match field {
                UniqueField::Args => coarse(&job.args),
                UniqueField::Meta => coarse(&job.meta),
                UniqueField::Queue => json!(job.queue),
                UniqueField::Worker => json!(job.worker),
            };
            key.insert(field.as_str().to_owned(), value);
        }
        key.insert("keys".into(), json!(self.keys));
        key.insert("states".into(), json!(self.states));
        // serde_json's maps are ordered by key, so equal keys print equally.
        Value::Object(key).to_string()
    }
}

/// A top-level value as the lock key sees it: scalars by value (numbers as f64, so that `1`
/// and `1.0`, equal to PostgreSQL's jsonb, agree), arrays and objects by type only (their
/// containment rules are too loose for a hash).
fn coarse_value(value: Value) -> Value {
    match value {
        Value::Number(number) => json!(number.as_f64().map(|n| n + 0.0)),
        Value::Array(_) => json!("<array>"),
        Value::Object(_) => json!("<object>"),
        scalar => scalar,
    }
}

/// A field a unique conflict may overwrite on the job it found (Oban's `replace` fields).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ReplaceField {
    /// `args`.
    Args,
    /// `max_attempts`.
    MaxAttempts,
    /// `meta`.
    Meta,
    /// `priority` (kept when the new job leaves it unset).
    Priority,
    /// `queue`.
    Queue,
    /// `scheduled_at` (kept when the new job is not scheduled; the state is not changed).
    ScheduledAt,
    /// `tags`.
    Tags,
    /// `worker`.
    Worker,
}

impl ReplaceField {
    fn as_str(self) -> &'static str {
        match self {
            ReplaceField::Args => "args",
            ReplaceField::MaxAttempts => "max_attempts",
            ReplaceField::Meta => "meta",
            ReplaceField::Priority => "priority",
            ReplaceField::Queue => "queue",
            ReplaceField::ScheduledAt => "scheduled_at",
            ReplaceField::Tags => "tags",
            ReplaceField::Worker => "worker",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insert::NewJob;

    fn job(args: Value) -> NewJob {
        NewJob::new("W", &args).unwrap()
    }

    #[test]
    fn defaults_are_obans() {
        let unique = Unique::default();
        assert_eq!(unique.period, Some(Duration::from_secs(60)));
        assert!(!unique.states.contains(&JobState::Discarded));
        assert!(!unique.states.contains(&JobState::Cancelled));
        assert_eq!(unique.states.len(), 6);
        assert_eq!(Unique::forever().period, None);
        assert!(unique.validate().is_ok());
    }

    #[test]
    fn rejects_what_oban_rejects() {
        assert!(Unique::default().fields([]).validate().is_err());
        assert!(Unique::default().states([]).validate().is_err());
        let zero = Unique::default().period(Some(Duration::ZERO));
        assert!(zero.validate().is_err());
        let keys_without_maps = Unique::default().fields([UniqueField::Queue]).keys(["id"]);
        assert!(keys_without_maps.validate().is_err());
    }

    #[test]
    fn jobs_that_may_match_share_a_lock_text() {
        let unique = Unique::default();
        let a = job(json!({"id": 1, "tags": [1, 2], "o": {"x": 1}}));
        let b = job(json!({"o": {"x": 1}, "tags": [2, 1], "id": 1.0}));
        assert_eq!(unique.lock_text(&a), unique.lock_text(&b));
        let other = job(json!({"id": 2, "tags": [1, 2], "o": {"x": 1}}));
        assert_ne!(unique.lock_text(&a), unique.lock_text(&other));
        // With keys, only the named keys count.
        let keyed = Unique::default().keys(["id"]);
        assert_eq!(
            keyed.lock_text(&job(json!({"id": 1, "x": 1}))),
            keyed.lock_text(&job(json!({"id": 1, "x": 2})))
        );
    }

    #[test]
    fn the_spec_compares_keys_by_containment_and_whole_maps_by_equality() {
        let keyed = Unique::default().keys(["id"]);
        let spec = keyed.spec(&job(json!({"id": 1, "x": 2})), &BTreeMap::new());
        assert_eq!(spec["args"], json!({"id": 1}));
        assert_eq!(spec["args_exact"], false);
        let spec = keyed.spec(&job(json!({"x": 2})), &BTreeMap::new());
        assert_eq!(
            (&spec["args"], &spec["args_exact"]),
            (&json!({}), &json!(true))
        );
        let spec = Unique::forever().spec(&job(json!({"x": 2})), &BTreeMap::new());
        assert_eq!(
            (&spec["args_exact"], &spec["period"]),
            (&json!(true), &Value::Null)
        );
        assert_eq!(spec.get("meta"), None);
    }
}
