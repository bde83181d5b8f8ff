//! `oban_core::testing` against a real PostgreSQL: `perform_job` ends every kind of job as a
//! node records it (compared with the row a drain writes for the same job), and the enqueued
//! assertions match by worker, queue, args subset and prefix, and fail saying what was there.

use std::future::Future;
use std::time::Duration;

use crate::support::{Scripted, database};
use oban_core::drain::DrainOptions;
use oban_core::insert::NewJob;
use oban_core::job::JobState;
use oban_core::jobs::JobFilter;
use oban_core::testing::{
    all_enqueued, assert_enqueued, assert_enqueued_within, perform_attempt, perform_job,
    refute_enqueued, refute_enqueued_within,
};
use oban_core::worker::{Registry, Worker};
use oban_core::{Client, Prefix, schema};
use serde_json::{Value, json};

/// Runs `assertion` on a task of its own and returns its panic message; fails if it passed.
async fn failure_of<T: Send + 'static>(
    assertion: impl Future<Output = T> + Send + 'static,
) -> String {
    let panic = tokio::spawn(assertion)
        .await
        .err()
        .expect("the assertion should have failed")
        .into_panic();
    match panic.downcast::<String>() {
        Ok(message) => *message,
        Err(panic) => panic.downcast_ref::<&str>().unwrap().to_string(),
    }
}

fn worker(name: &str) -> JobFilter {
    JobFilter::all().worker(name)
}

fn args(filter: JobFilter, args: Value) -> JobFilter {
    filter.args_contain(&args).unwrap()
}

#[tokio::test]
async fn perform_job_ends_each_job_as_a_node_records_it() {
    let (_pool, client, _) = database().await;
    let mut registry = Registry::default();
    registry.register(Scripted).unwrap();
    // (args, state, error entry); "sleep" outlasts Scripted's 1.5 s time limit.
    let cases = [
        (json!({"do": "ok"}), JobState::Completed, None),
        (
            json!({"do": "error"}),
            JobState::Retryable,
            Some("boom".to_owned()),
        ),
        (
            json!({"do": "panic"}),
            JobState::Retryable,
            Some("Test.Scripted panicked: worker exploded".to_owned()),
        ),
        (
            json!({"do": "sleep", "ms": 5_000}),
            JobState::Retryable,
            Some("Test.Scripted timed out after 1500ms".to_owned()),
        ),
        (
            json!({"do": "discard"}),
            JobState::Discarded,
            Some("not fixable".to_owned()),
        ),
        (
            json!({"do": "cancel"}),
            JobState::Cancelled,
            Some("no longer wanted".to_owned()),
        ),
        (json!({"do": "snooze"}), JobState::Scheduled, None),
    ];
    for (args, state, error) in cases {
        let job = Scripted::new_job(&args).unwrap();
        let performed = perform_job(&Scripted, &job).await;
        assert_eq!(
            (performed.state, &performed.error),
            (state, &error),
            "{args}"
        );
        match state {
            JobState::Retryable => assert!(performed.delay.unwrap() > Duration::ZERO, "{args}"),
            JobState::Scheduled => assert_eq!(performed.delay, Some(Duration::from_secs(30))),
            _ => assert_eq!(performed.delay, None, "{args}"),
        }
        assert!(
            all_enqueued(&client, &JobFilter::all())
                .await
                .unwrap()
                .is_empty(),
            "perform_job inserts nothing"
        );

        // The same job drained from a real row ends the same way.
        let id = client.insert(&job).await.unwrap().id;
        client
            .drain_queue("default", &registry, DrainOptions::default())
            .await
            .unwrap();
        let row = client.get_job(id).await.unwrap().unwrap();
        let recorded = row
            .errors
            .last()
            .map(|entry| entry["error"].as_str().unwrap().to_owned());
        assert_eq!((row.state.0, recorded), (state, error), "{args} drained");
    }
}

#[tokio::test]
async fn perform_job_returns_the_follow_up_jobs_and_honours_the_attempt() {
    let completed = perform_job(
        &Scripted,
        &Scripted::new_job(&json!({"do": "ok", "follow_up": true})).unwrap(),
    )
    .await;
    assert_eq!(completed.state, JobState::Completed);
    let [follow_up] = &completed.then_insert[..] else {
        panic!("one follow-up job, got {:?}", completed.then_insert);
    };
    assert_eq!(
        (follow_up.worker_name(), follow_up.queue_name()),
        ("Test.FollowUp", "follow_ups")
    );
    assert!(
        follow_up.args()["parent"].as_i64().unwrap() > 0,
        "the in-memory job has an id"
    );

    // Scripted allows 3 attempts: a failure on the last one discards, as on a node.
    let failing = Scripted::new_job(&json!({"do": "error"})).unwrap();
    let second = perform_attempt(&Scripted, &failing, 2).await;
    assert_eq!(second.state, JobState::Retryable);
    let last = perform_attempt(&Scripted, &failing, 3).await;
    assert_eq!(
        (last.state, last.error.as_deref(), last.delay),
        (JobState::Discarded, Some("boom"), None)
    );
}

#[tokio::test]
async fn perform_job_refuses_a_job_no_insert_would_accept() {
    let cases = [
        (
            Scripted::new_job(&json!({})).unwrap().priority(10),
            "priority must be 0..=9",
        ),
        (
            Scripted::new_job(&json!({"name": "a\u{0}b"})).unwrap(),
            "U+0000",
        ),
        (
            NewJob::new("Test.Other", &json!({})).unwrap(),
            "another worker",
        ),
    ];
    for (job, expected) in cases {
        let message = failure_of(async move { perform_job(&Scripted, &job).await }).await;
        assert!(message.contains(expected), "{message:?} lacks {expected:?}");
    }
}

#[tokio::test]
async fn assert_enqueued_matches_by_worker_queue_and_args_subset() {
    let (_pool, client, _) = database().await;
    let insert = |worker: &str, queue: &str, args: Value| {
        let client = client.clone();
        let job = NewJob::new(worker, &args).unwrap().queue(queue);
        async move { client.insert(&job).await.unwrap().id }
    };
    let first = insert("Test.Ping", "alpha", json!({"id": 1, "ref": "a"})).await;
    let second = insert("Test.Ping", "alpha", json!({"id": 2, "ref": "b"})).await;
    insert(
        "Test.Pong",
        "gamma",
        json!({"id": 3, "nested": {"x": [1, 2]}}),
    )
    .await;

    assert_eq!(
        assert_enqueued(&client, &worker("Test.Ping")).await.id,
        second,
        "newest first"
    );
    assert_enqueued(&client, &worker("Test.Ping").queue("alpha")).await;
    let found = assert_enqueued(&client, &args(worker("Test.Ping"), json!({"id": 1}))).await;
    assert_eq!(found.id, first);
    assert_enqueued(
        &client,
        &args(
            JobFilter::all().queue("gamma"),
            json!({"nested": {"x": [2]}}),
        ),
    )
    .await;
    let ids: Vec<i64> = all_enqueued(&client, &worker("Test.Ping"))
        .await
        .unwrap()
        .iter()
        .map(|job| job.id)
        .collect();
    assert_eq!(ids, [second, first]);

    // Wrong args: the message lists what Test.Ping has enqueued, and nothing of Test.Pong.
    let (c, f) = (client.clone(), args(worker("Test.Ping"), json!({"id": 9})));
    let message = failure_of(async move { assert_enqueued(&c, &f).await }).await;
    assert!(
        message.contains(
            r#"matching worker "Test.Ping", args containing {"id":9} in prefix "public""#
        ),
        "{message}"
    );
    assert!(
        message.contains(r#"enqueued for worker "Test.Ping" instead"#),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "#{first} Test.Ping queue \"alpha\" available args {{\"id\":1,\"ref\":\"a\"}}"
        )),
        "{message}"
    );
    assert!(
        message.contains(&format!("#{second} Test.Ping")),
        "{message}"
    );
    assert!(!message.contains("Test.Pong"), "{message}");

    // Right worker, wrong queue: the message shows the worker's job in its queue.
    let (c, f) = (client.clone(), worker("Test.Pong").queue("alpha"));
    let message = failure_of(async move { assert_enqueued(&c, &f).await }).await;
    assert!(
        message.contains(r#"enqueued for worker "Test.Pong" instead:"#),
        "{message}"
    );
    assert!(message.contains(r#"Test.Pong queue "gamma""#), "{message}");

    // A queue alone: the message lists that queue's jobs; nothing in it says so.
    let (c, f) = (client.clone(), JobFilter::all().queue("empty"));
    let message = failure_of(async move { assert_enqueued(&c, &f).await }).await;
    assert!(
        message.ends_with("enqueued for queue \"empty\" instead:\n  (none)"),
        "{message}"
    );
}

#[tokio::test]
async fn only_available_and_scheduled_jobs_of_the_clients_prefix_are_enqueued() {
    let (pool, client, _) = database().await;
    let job = |n: i64| NewJob::new("Test.Ping", &json!({"n": n})).unwrap();
    client
        .insert(&job(1).schedule_in(Duration::from_secs(3_600)))
        .await
        .unwrap();
    let done = client.insert(&job(2)).await.unwrap().id;
    sqlx::query("UPDATE oban_jobs SET state = 'completed', completed_at = now() WHERE id = $1")
        .bind(done)
        .execute(&pool)
        .await
        .unwrap();
    let other = Prefix::new("other_tenant").unwrap();
    schema::migrate(&pool, &other).await.unwrap();
    let tenant = Client::new(pool.clone(), other);
    tenant.insert(&job(3)).await.unwrap();

    let scheduled = assert_enqueued(&client, &args(worker("Test.Ping"), json!({"n": 1}))).await;
    assert_eq!(scheduled.state.0, JobState::Scheduled);
    refute_enqueued(&client, &args(worker("Test.Ping"), json!({"n": 2}))).await;
    refute_enqueued(&client, &args(worker("Test.Ping"), json!({"n": 3}))).await;
    assert_enqueued(&tenant, &args(worker("Test.Ping"), json!({"n": 3}))).await;
    refute_enqueued(&tenant, &args(worker("Test.Ping"), json!({"n": 1}))).await;

    // refute_enqueued fails listing the jobs it found.
    let (c, f) = (client.clone(), worker("Test.Ping"));
    let message = failure_of(async move { refute_enqueued(&c, &f).await }).await;
    assert!(message.starts_with(r#"expected no enqueued job (available or scheduled) matching worker "Test.Ping" in prefix "public"; found:"#), "{message}");
    assert!(message.contains(r#"scheduled args {"n":1}"#), "{message}");
    assert!(!message.contains(r#"{"n":2}"#), "{message}");
}

#[tokio::test]
async fn the_within_forms_wait_for_a_job_another_task_inserts() {
    let (_pool, client, _) = database().await;
    let insert_soon = |n: i64| {
        let client = client.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let job = NewJob::new("Test.Later", &json!({"n": n})).unwrap();
            client.insert(&job).await.unwrap();
        })
    };

    let inserting = insert_soon(1);
    refute_enqueued(&client, &worker("Test.Later")).await;
    assert_enqueued_within(&client, &worker("Test.Later"), Duration::from_secs(20)).await;
    inserting.await.unwrap();

    // Nothing comes: the refutation holds for its whole time.
    refute_enqueued_within(
        &client,
        &args(worker("Test.Later"), json!({"n": 2})),
        Duration::from_millis(200),
    )
    .await;
    let (c, f) = (client.clone(), args(worker("Test.Later"), json!({"n": 2})));
    let message =
        failure_of(async move { assert_enqueued_within(&c, &f, Duration::from_millis(200)).await })
            .await;
    assert!(message.contains("within 200ms"), "{message}");

    // A job inserted while a refutation waits fails it.
    let inserting = insert_soon(3);
    let (c, f) = (client.clone(), args(worker("Test.Later"), json!({"n": 3})));
    let message =
        failure_of(async move { refute_enqueued_within(&c, &f, Duration::from_secs(20)).await })
            .await;
    assert!(message.contains(r#"args {"n":3}"#), "{message}");
    inserting.await.unwrap();
}
