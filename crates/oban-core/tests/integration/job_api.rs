//! The job API against a real PostgreSQL: on a table holding every combination of queue,
//! worker, state, tags and args, each call touches exactly the jobs its filter names (and its
//! state rule allows) and leaves every other row as it was; cancelling an executing job stops
//! it on its node through `pkill`; `check_queue` reports every node's queue from gossip.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::support::{
    Tap, database, eventually, fast_config, state_of, wait_for_state, wait_until_listening,
};
use oban_core::Client;
use oban_core::insert::NewJob;
use oban_core::job::{Job, JobState};
use oban_core::jobs::{JobFilter, JobUpdate};
use oban_core::node::Node;
use oban_core::notifier::Channel;
use oban_core::worker::{Outcome, WorkResult, Worker, WorkerOptions};
use serde_json::{Value, json};
use sqlx::PgPool;

/// One job of the mixed table, as inserted.
#[derive(Clone, Debug)]
struct Row {
    id: i64,
    queue: String,
    worker: String,
    state: JobState,
    tags: Vec<String>,
    group: i64,
    priority: i32,
    /// `meta.half`: the job's index modulo 2.
    half: usize,
}

/// Inserts a job for every queue (q1, q2) × worker (W1, W2) × state × group (1, 2), group 1
/// tagged `red`, group 2 `red` and `blue`, with args `{"group": G, "n": i}`, priority i mod 3
/// and meta `{"half": i mod 2}`.
async fn mixed_table(pool: &PgPool, client: &Client) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut jobs = Vec::new();
    for queue in ["q1", "q2"] {
        for worker in ["W1", "W2"] {
            for state in JobState::ALL {
                for group in [1, 2] {
                    let tags = if group == 1 {
                        vec!["red"]
                    } else {
                        vec!["red", "blue"]
                    };
                    let n = jobs.len();
                    jobs.push(
                        NewJob::new(worker, &json!({"group": group, "n": n}))
                            .unwrap()
                            .queue(queue)
                            .tags(&tags)
                            .priority((n % 3) as i32)
                            .meta(&json!({"half": n % 2}))
                            .unwrap(),
                    );
                    rows.push(Row {
                        id: 0,
                        queue: queue.into(),
                        worker: worker.into(),
                        state,
                        tags: tags.iter().map(|tag| tag.to_string()).collect(),
                        group,
                        priority: (n % 3) as i32,
                        half: n % 2,
                    });
                }
            }
        }
    }
    let inserted = client.insert_all(&jobs).await.unwrap();
    for (row, job) in rows.iter_mut().zip(inserted) {
        row.id = job.id;
        sqlx::query(
            "UPDATE oban_jobs SET state = $2::oban_job_state, attempt = 1, max_attempts = 1 \
             WHERE id = $1",
        )
        .bind(row.id)
        .bind(row.state.as_str())
        .execute(pool)
        .await
        .unwrap();
    }
    rows
}

/// Every row as JSON, by id.
async fn snapshot(pool: &PgPool) -> BTreeMap<i64, Value> {
    let rows: Vec<(i64, Value)> = sqlx::query_as("SELECT id, to_jsonb(j) FROM oban_jobs j")
        .fetch_all(pool)
        .await
        .unwrap();
    rows.into_iter().collect()
}

/// The ids of the rows `pick` selects.
fn ids(rows: &[Row], pick: impl Fn(&Row) -> bool) -> BTreeSet<i64> {
    rows.iter()
        .filter(|row| pick(row))
        .map(|row| row.id)
        .collect()
}

/// Asserts that the call touched exactly `expected` and left every other row as it was.
fn touched_only(
    before: &BTreeMap<i64, Value>,
    after: &BTreeMap<i64, Value>,
    touched: Vec<i64>,
    expected: &BTreeSet<i64>,
) {
    let touched: BTreeSet<i64> = touched.into_iter().collect();
    assert!(!expected.is_empty(), "the case names some jobs");
    assert_eq!(&touched, expected, "the jobs touched");
    for (id, row) in before {
        if !expected.contains(id) {
            assert_eq!(after.get(id), Some(row), "job {id} was not to be touched");
        }
    }
}

fn unfinished(state: JobState) -> bool {
    !matches!(
        state,
        JobState::Completed | JobState::Discarded | JobState::Cancelled
    )
}

#[tokio::test]
async fn retry_touches_only_the_filtered_jobs_not_running_or_available() {
    let (pool, client, _) = database().await;
    let rows = mixed_table(&pool, &client).await;
    let before = snapshot(&pool).await;
    let filter = JobFilter::all().queue("q1").worker("W1");
    let retried = client.retry_jobs(&filter).await.unwrap();
    let after = snapshot(&pool).await;
    let expected = ids(&rows, |row| {
        row.queue == "q1"
            && row.worker == "W1"
            && !matches!(row.state, JobState::Available | JobState::Executing)
    });
    touched_only(&before, &after, retried, &expected);
    for id in &expected {
        let row = &after[id];
        assert_eq!(row["state"], "available");
        assert_eq!(row["max_attempts"], 2, "an attempt more than it used");
        for at in ["completed_at", "cancelled_at", "discarded_at"] {
            assert_eq!(row[at], Value::Null);
        }
    }
}

#[tokio::test]
async fn priority_and_meta_name_their_jobs() {
    let (pool, client, _) = database().await;
    let rows = mixed_table(&pool, &client).await;
    let before = snapshot(&pool).await;
    let filter = JobFilter::all()
        .priority(1)
        .priority(2)
        .meta_contain(&json!({"half": 0}))
        .unwrap();
    let retried = client.retry_jobs(&filter).await.unwrap();
    let after = snapshot(&pool).await;
    let expected = ids(&rows, |row| {
        row.priority != 0
            && row.half == 0
            && !matches!(row.state, JobState::Available | JobState::Executing)
    });
    touched_only(&before, &after, retried, &expected);
    for id in &expected {
        assert_eq!(after[id]["state"], "available");
    }
}

#[tokio::test]
async fn cancel_touches_only_the_filtered_unfinished_jobs_and_kills_the_running_ones() {
    let (pool, client, url) = database().await;
    let rows = mixed_table(&pool, &client).await;
    let mut signals = Tap::new(&url, &["signal"]).await;
    let before = snapshot(&pool).await;
    let filter = JobFilter::all()
        .tag("blue")
        .tag("RED ")
        .state(JobState::Executing)
        .state(JobState::Scheduled)
        .state(JobState::Completed);
    let cancelled = client.cancel_jobs(&filter).await.unwrap();
    let after = snapshot(&pool).await;
    let expected = ids(&rows, |row| {
        row.group == 2
            && matches!(row.state, JobState::Executing | JobState::Scheduled)
            && unfinished(row.state)
    });
    touched_only(&before, &after, cancelled, &expected);
    for id in &expected {
        assert_eq!(after[id]["state"], "cancelled");
        assert_ne!(after[id]["cancelled_at"], Value::Null);
    }
    let running = ids(&rows, |row| {
        row.group == 2 && row.state == JobState::Executing
    });
    let mut killed = BTreeSet::new();
    while killed.len() < running.len() {
        let heard = signals.next("a pkill signal", Duration::from_secs(5)).await;
        assert_eq!(heard.json["action"], "pkill", "{}", heard.raw);
        killed.insert(heard.json["job_id"].as_i64().unwrap());
    }
    assert_eq!(killed, running);
}

#[tokio::test]
async fn delete_touches_only_the_filtered_jobs_not_running() {
    let (pool, client, _) = database().await;
    let rows = mixed_table(&pool, &client).await;
    let before = snapshot(&pool).await;
    let filter = JobFilter::all()
        .args_contain(&json!({"group": 1}))
        .unwrap()
        .queue("q2");
    let deleted = client.delete_jobs(&filter).await.unwrap();
    let after = snapshot(&pool).await;
    let expected = ids(&rows, |row| {
        row.group == 1 && row.queue == "q2" && row.state != JobState::Executing
    });
    for id in &expected {
        assert!(!after.contains_key(id), "job {id} is gone");
    }
    let mut remaining = after.clone();
    for id in &expected {
        remaining.insert(*id, before[id].clone());
    }
    touched_only(&before, &remaining, deleted, &expected);
}

#[tokio::test]
async fn single_job_calls_touch_only_their_job() {
    let (pool, client, _) = database().await;
    let rows = mixed_table(&pool, &client).await;
    let pick = |state| rows.iter().find(|row| row.state == state).unwrap().id;
    let (discarded, scheduled, executing) = (
        pick(JobState::Discarded),
        pick(JobState::Scheduled),
        pick(JobState::Executing),
    );
    let before = snapshot(&pool).await;
    assert!(client.retry_job(discarded).await.unwrap());
    assert!(!client.retry_job(executing).await.unwrap(), "running");
    assert!(client.cancel_job(scheduled).await.unwrap());
    assert!(!client.cancel_job(scheduled).await.unwrap(), "already");
    assert!(!client.delete_job(executing).await.unwrap(), "running");
    let after = snapshot(&pool).await;
    touched_only(
        &before,
        &after,
        vec![discarded, scheduled],
        &[discarded, scheduled].into(),
    );
    let deleted = pick(JobState::Completed);
    assert!(client.delete_job(deleted).await.unwrap());
    assert!(client.get_job(deleted).await.unwrap().is_none());
    assert!(!client.retry_job(deleted).await.unwrap(), "missing");
    assert!(
        client
            .retry_jobs(&JobFilter::ids([]))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(snapshot(&pool).await.len(), rows.len() - 1);
}

#[tokio::test]
async fn get_and_update_read_and_change_one_job() {
    let (pool, client, _) = database().await;
    let rows = mixed_table(&pool, &client).await;
    let target = rows
        .iter()
        .find(|row| row.state == JobState::Retryable)
        .unwrap();
    let job = client.get_job(target.id).await.unwrap().unwrap();
    assert_eq!(
        (
            job.state.0,
            job.queue.as_str(),
            job.worker.as_str(),
            &job.tags
        ),
        (
            target.state,
            target.queue.as_str(),
            target.worker.as_str(),
            &target.tags
        )
    );
    let before = snapshot(&pool).await;
    let at = chrono::Utc::now() + chrono::Duration::seconds(600);
    let update = JobUpdate {
        args: Some(json!({"changed": true})),
        priority: Some(9),
        tags: Some(vec!["Urgent".into()]),
        scheduled_at: Some(at),
        ..JobUpdate::default()
    };
    let updated = client
        .update_job(target.id, &update)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        updated.state.0,
        JobState::Scheduled,
        "a new time reschedules it"
    );
    assert_eq!(
        (updated.args.clone(), updated.priority, updated.tags.clone()),
        (json!({"changed": true}), 9, vec!["urgent".to_owned()])
    );
    assert_eq!(
        updated.scheduled_at.and_utc().timestamp_micros(),
        at.timestamp_micros()
    );
    assert_eq!(
        (updated.queue.as_str(), updated.max_attempts),
        (target.queue.as_str(), 1)
    );
    let after = snapshot(&pool).await;
    touched_only(&before, &after, vec![target.id], &[target.id].into());

    let bad = JobUpdate {
        priority: Some(12),
        ..JobUpdate::default()
    };
    assert!(client.update_job(target.id, &bad).await.is_err());
    assert_eq!(
        snapshot(&pool).await,
        after,
        "a refused update changes nothing"
    );
    assert!(client.update_job(-1, &update).await.unwrap().is_none());
    assert!(client.get_job(-1).await.unwrap().is_none());
}

/// Sleeps for a minute, with no time limit: only a kill ends it in a test's time.
struct Sleeper;

impl Worker for Sleeper {
    const NAME: &'static str = "Test.Sleeper";
    const OPTIONS: WorkerOptions = WorkerOptions {
        queue: "sleepy",
        ..WorkerOptions::DEFAULT
    };
    type Args = serde_json::Value;

    async fn process(&self, _args: serde_json::Value, _job: &Job) -> WorkResult {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok(Outcome::complete())
    }
}

#[tokio::test]
async fn cancelling_an_executing_job_stops_it_on_its_node() {
    let (pool, client, _) = database().await;
    let node = Node::builder(pool.clone())
        .config(fast_config(&[("sleepy", 1)]))
        .worker(Sleeper)
        .unwrap()
        .start()
        .await
        .unwrap();
    let job = client
        .insert(&Sleeper::new_job(&json!({})).unwrap())
        .await
        .unwrap();
    wait_for_state(&pool, job.id, "executing").await;
    wait_until_listening(&node).await;
    assert!(client.cancel_job(job.id).await.unwrap());
    let key = (
        "sleepy".to_owned(),
        Sleeper::NAME.to_owned(),
        JobState::Cancelled,
    );
    eventually(
        "the node to stop the job",
        Duration::from_secs(15),
        || async {
            let running = node
                .queue_status()
                .await
                .iter()
                .any(|q| !q.running.is_empty());
            let stopped = node
                .metrics()
                .snapshot()
                .jobs
                .iter()
                .any(|(k, _)| *k == key);
            (stopped && !running).then_some(())
        },
    )
    .await;
    assert_eq!(state_of(&pool, job.id).await, "cancelled");
    node.shutdown().await;
}

#[tokio::test]
async fn check_queue_reports_every_nodes_latest_check() {
    let (pool, client, _) = database().await;
    let mut config = fast_config(&[("checked", 3)]);
    config.node = "rust.1".into();
    config.gossip_interval = Some(Duration::from_millis(200));
    let node = Node::builder(pool.clone())
        .config(config)
        .worker(Sleeper)
        .unwrap()
        .start()
        .await
        .unwrap();
    // A check as Elixir 2.23 sends it, for a node of its own.
    let elixir = json!({"checks": [{"limit": 5, "queue": "checked", "paused": true,
        "refresh_interval": 60000, "uuid": "6f1c1e1a-4f61-4c5e-9a57-1d1b8e0c2a10", "name": "Oban",
        "node": "elixir@host", "started_at": "2026-08-02T12:00:00.000001Z",
        "updated_at": "2026-08-02T12:00:00.000001Z", "shutdown_started_at": null, "running": [1]}]});
    let checks = eventually("checks of both nodes", Duration::from_secs(10), || async {
        client
            .publish(Channel::Gossip, std::slice::from_ref(&elixir))
            .await
            .unwrap();
        let checks = node.check_queue("checked");
        (checks.len() == 2).then_some(checks)
    })
    .await;
    let seen: Vec<(&str, u64, bool)> = checks
        .iter()
        .map(|check| (check.node.as_str(), check.local_limit, check.paused))
        .collect();
    assert_eq!(seen, [("elixir@host", 5, true), ("rust.1", 3, false)]);
    assert!(node.check_queue("unknown").is_empty());
    node.shutdown().await;
}
