//! A job as read from `oban_jobs`, whichever runtime inserted it.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::Value;
use sqlx::FromRow;

/// The states of `oban_job_state`, compared by label (the enum's sort order differs between
/// Elixir- and Python-created schemas, so it is never relied on).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Ready to be claimed.
    Available,
    /// Held back (Oban Pro workflows); never claimed.
    Suspended,
    /// Waiting for `scheduled_at`; the stager makes it available.
    Scheduled,
    /// Claimed by a producer and running.
    Executing,
    /// Failed with attempts left; the stager makes it available at `scheduled_at`.
    Retryable,
    /// Finished successfully.
    Completed,
    /// Failed for good (attempts exhausted or discarded explicitly).
    Discarded,
    /// Cancelled by the worker, a user or a dashboard.
    Cancelled,
}

impl JobState {
    /// Every state, in the order Oban Web lists them.
    pub const ALL: [JobState; 8] = [
        JobState::Available,
        JobState::Suspended,
        JobState::Scheduled,
        JobState::Executing,
        JobState::Retryable,
        JobState::Completed,
        JobState::Discarded,
        JobState::Cancelled,
    ];

    /// The enum label as stored in PostgreSQL.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Available => "available",
            JobState::Suspended => "suspended",
            JobState::Scheduled => "scheduled",
            JobState::Executing => "executing",
            JobState::Retryable => "retryable",
            JobState::Completed => "completed",
            JobState::Discarded => "discarded",
            JobState::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for JobState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| format!("unknown job state {s:?}"))
    }
}

/// A job claimed for execution: every column of its `oban_jobs` row after the claim.
///
/// Columns that differ in type between Elixir- and Python-created schemas are normalised by the
/// claim query (`errors` as a JSON array, integers as `i32`, absent `tags`/`meta` as empty).
#[derive(Clone, Debug, FromRow)]
pub struct Job {
    /// Primary key.
    pub id: i64,
    /// Queue the job was inserted into.
    pub queue: String,
    /// Worker name string, e.g. `badge_forge.generator.GenerateBadge` or `BadgeForge.PrintCenter`.
    pub worker: String,
    /// Arguments, a JSON object with string keys.
    pub args: Value,
    /// Error entries of earlier attempts (`{"at", "attempt", "error"}` objects), oldest first.
    #[sqlx(json)]
    pub errors: Vec<Value>,
    /// The current attempt, starting at 1 for the first execution.
    pub attempt: i32,
    /// Attempts allowed before the job is discarded.
    pub max_attempts: i32,
    /// 0 is the highest priority.
    pub priority: i32,
    /// Normalised tags.
    pub tags: Vec<String>,
    /// Free-form metadata object.
    pub meta: Value,
    /// When the job was inserted (UTC).
    pub inserted_at: NaiveDateTime,
    /// When the job became (or becomes) runnable (UTC).
    pub scheduled_at: NaiveDateTime,
    /// When this attempt was claimed (UTC); the ack is guarded on it.
    pub attempted_at: NaiveDateTime,
    /// `[node, producer uuid]` of the producer that claimed this attempt.
    pub attempted_by: Vec<String>,
}

impl Job {
    /// `inserted_at` as an aware UTC timestamp.
    pub fn inserted_at_utc(&self) -> DateTime<Utc> {
        self.inserted_at.and_utc()
    }

    /// Time the job waited between becoming runnable and being claimed.
    pub fn queue_time(&self) -> chrono::Duration {
        self.attempted_at - self.scheduled_at
    }

    /// Deserializes `args` into a typed value.
    pub fn args_as<T: serde::de::DeserializeOwned>(&self) -> serde_json::Result<T> {
        T::deserialize(&self.args)
    }
}

/// A job as stored, in any state: every column of its `oban_jobs` row, as
/// [`Client::get_job`](crate::Client::get_job) and [`Client::update_job`](crate::Client::update_job)
/// return it. Normalised across schemas as [`Job`] is.
#[derive(Clone, Debug, PartialEq, FromRow)]
pub struct JobRecord {
    /// Primary key.
    pub id: i64,
    /// Its state.
    #[sqlx(try_from = "String")]
    pub state: crate::insert::StateLabel,
    /// Queue.
    pub queue: String,
    /// Worker name string.
    pub worker: String,
    /// Arguments.
    pub args: Value,
    /// Metadata object.
    pub meta: Value,
    /// Tags.
    pub tags: Vec<String>,
    /// Error entries of earlier attempts, oldest first.
    #[sqlx(json)]
    pub errors: Vec<Value>,
    /// Attempts made so far (the current one while executing).
    pub attempt: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// 0 is the highest priority.
    pub priority: i32,
    /// When it was inserted (UTC).
    pub inserted_at: NaiveDateTime,
    /// When it is (or was) runnable (UTC).
    pub scheduled_at: NaiveDateTime,
    /// When its last attempt was claimed, if ever.
    pub attempted_at: Option<NaiveDateTime>,
    /// `[node, producer uuid]` of its last claim, if ever.
    pub attempted_by: Option<Vec<String>>,
    /// When it completed.
    pub completed_at: Option<NaiveDateTime>,
    /// When it was cancelled.
    pub cancelled_at: Option<NaiveDateTime>,
    /// When it was discarded.
    pub discarded_at: Option<NaiveDateTime>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_their_labels() {
        for state in JobState::ALL {
            assert_eq!(state.as_str().parse::<JobState>().unwrap(), state);
        }
        assert!("running".parse::<JobState>().is_err());
    }
}
