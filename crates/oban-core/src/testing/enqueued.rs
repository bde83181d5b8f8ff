//! Assertions about the jobs waiting to run, as `Oban.Testing`'s `assert_enqueued`,
//! `refute_enqueued` and `all_enqueued`.

use std::fmt::Write;
use std::time::Duration;

use super::poll_until;
use crate::job::JobRecord;
use crate::jobs::{JobFilter, render_with_filter};
use crate::{Client, Result};

const ENQUEUED_JOBS: &str = include_str!("../sql/enqueued_jobs.sql");

/// Most jobs a failure message lists.
const LISTED: usize = 20;

/// The enqueued jobs (`available` or `scheduled`) that `filter` names under `client`'s prefix,
/// newest first. A state the filter names narrows that further: a filter for `completed` jobs
/// finds none.
pub async fn all_enqueued(client: &Client, filter: &JobFilter) -> Result<Vec<JobRecord>> {
    let prefix = client.prefix();
    let sql = render_with_filter(prefix, ENQUEUED_JOBS);
    let jobs = filter
        .bind(sqlx::query_as(sql))
        .fetch_all(client.db())
        .await?;
    Ok(jobs)
}

/// Asserts that a job `filter` names is enqueued, and returns it (the newest, if several).
///
/// # Panics
///
/// When none is, listing the jobs enqueued for the filter's workers instead (for its queues
/// when it names no worker, all enqueued jobs when it names neither); or when the database
/// cannot be read.
pub async fn assert_enqueued(client: &Client, filter: &JobFilter) -> JobRecord {
    assert_enqueued_within(client, filter, Duration::ZERO).await
}

/// [`assert_enqueued`], looking again until `timeout` has passed: for a job that another task
/// or process is about to insert.
///
/// # Panics
///
/// As [`assert_enqueued`].
pub async fn assert_enqueued_within(
    client: &Client,
    filter: &JobFilter,
    timeout: Duration,
) -> JobRecord {
    if let Some(job) = first_within(client, filter, timeout).await {
        return job;
    }
    let neighbourhood = filter.neighbourhood();
    let instead = enqueued(client, &neighbourhood).await;
    panic!(
        "expected an enqueued job (available or scheduled) matching {filter} in prefix {:?}{}; \
         enqueued {} instead:\n{}",
        client.prefix().as_str(),
        waited(timeout),
        match neighbourhood.to_string().as_str() {
            "every job" => "in all".to_owned(),
            named => format!("for {named}"),
        },
        listing(&instead)
    );
}

/// Asserts that no job `filter` names is enqueued.
///
/// # Panics
///
/// When one is, listing those that are; or when the database cannot be read.
pub async fn refute_enqueued(client: &Client, filter: &JobFilter) {
    refute_enqueued_within(client, filter, Duration::ZERO).await
}

/// [`refute_enqueued`], looking again until `timeout` has passed: for a job that another task
/// or process must not insert meanwhile.
///
/// # Panics
///
/// As [`refute_enqueued`].
pub async fn refute_enqueued_within(client: &Client, filter: &JobFilter, timeout: Duration) {
    if first_within(client, filter, timeout).await.is_none() {
        return;
    }
    let found = enqueued(client, filter).await;
    panic!(
        "expected no enqueued job (available or scheduled) matching {filter} in prefix {:?}{}; \
         found:\n{}",
        client.prefix().as_str(),
        waited(timeout),
        listing(&found)
    );
}

/// The newest enqueued job `filter` names, looking until `timeout` has passed (once for zero).
async fn first_within(client: &Client, filter: &JobFilter, timeout: Duration) -> Option<JobRecord> {
    poll_until(timeout, || async {
        enqueued(client, filter).await.into_iter().next()
    })
    .await
}

/// [`all_enqueued`] for an assertion, which fails the test when the database cannot be read.
async fn enqueued(client: &Client, filter: &JobFilter) -> Vec<JobRecord> {
    all_enqueued(client, filter)
        .await
        .unwrap_or_else(|error| panic!("reading the enqueued jobs: {error}"))
}

/// ` within 250ms`, or nothing for an assertion that looked once.
fn waited(timeout: Duration) -> String {
    if timeout.is_zero() {
        return String::new();
    }
    format!(" within {timeout:?}")
}

/// One line per job (at most [`LISTED`]), or `  (none)`.
fn listing(jobs: &[JobRecord]) -> String {
    if jobs.is_empty() {
        return "  (none)".to_owned();
    }
    let mut out = String::new();
    for job in jobs.iter().take(LISTED) {
        let _ = writeln!(
            out,
            "  #{} {} queue {:?} {} args {} tags {:?} priority {} scheduled_at {}",
            job.id,
            job.worker,
            job.queue,
            job.state.0,
            job.args,
            job.tags,
            job.priority,
            job.scheduled_at
        );
    }
    if jobs.len() > LISTED {
        let _ = writeln!(out, "  ... and {} more", jobs.len() - LISTED);
    }
    out.trim_end().to_owned()
}
