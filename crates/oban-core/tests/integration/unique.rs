//! Unique jobs against a real PostgreSQL: concurrent inserters from many connections leave one
//! job and each learns which; Oban's matching rule, option by option, including rows written
//! the way Elixir writes them; `replace` per state; batches mixing unique and plain jobs.

use std::sync::Arc;
use std::time::Duration;

use crate::support::database;
use oban_core::insert::{self, InsertedJob, NewJob};
use oban_core::job::JobState;
use oban_core::unique::{ReplaceField, Unique, UniqueField, UniqueTimestamp};
use oban_core::{Client, Prefix};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::Barrier;

fn job(args: Value) -> NewJob {
    NewJob::new("Test.Unique", &args).unwrap().queue("q")
}

async fn count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM oban_jobs")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Runs `inserts` batches at once, each from a task of its own on a connection of its own,
/// released together by a barrier.
async fn at_once(client: &Client, batches: Vec<Vec<NewJob>>) -> Vec<Vec<InsertedJob>> {
    let barrier = Arc::new(Barrier::new(batches.len()));
    let tasks: Vec<_> = batches
        .into_iter()
        .map(|batch| {
            let (client, barrier) = (client.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                client.insert_all(&batch).await.unwrap()
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_unique_inserts_leave_one_job_and_each_reports_it() {
    let (pool, client, _) = database().await;
    // Rounds of 16 inserters of one job each, a new job per round: the race is short, so a
    // missing lock shows within a few rounds.
    for round in 0..10 {
        let unique = job(json!({"round": round})).unique(Unique::forever());
        let results = at_once(&client, vec![vec![unique]; 16]).await;
        let ids: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM oban_jobs WHERE args->>'round' = $1")
                .bind(round.to_string())
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(ids.len(), 1, "round {round}: duplicates were inserted");
        let fresh = results.iter().flatten().filter(|r| !r.conflict).count();
        assert_eq!(
            fresh, 1,
            "round {round}: exactly one insert reports a new job"
        );
        for inserted in results.iter().flatten() {
            assert_eq!(
                inserted.id, ids[0],
                "round {round}: every insert reports the one job"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_batches_with_keys_in_any_order_neither_deadlock_nor_duplicate() {
    let (pool, client, _) = database().await;
    let a = job(json!({"id": "a"})).unique(Unique::forever());
    let b = job(json!({"id": "b"})).unique(Unique::forever());
    let plain = job(json!({"id": "plain"}));
    let batches: Vec<Vec<NewJob>> = (0..12)
        .map(|i| {
            if i % 2 == 0 {
                vec![a.clone(), plain.clone(), b.clone()]
            } else {
                vec![b.clone(), a.clone()]
            }
        })
        .collect();
    let results = tokio::time::timeout(Duration::from_secs(60), at_once(&client, batches))
        .await
        .expect("the inserters finish");
    let rows: Vec<(Value, i64)> =
        sqlx::query_as("SELECT args, count(*) FROM oban_jobs GROUP BY args ORDER BY args->>'id'")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        rows,
        [
            (json!({"id": "a"}), 1),
            (json!({"id": "b"}), 1),
            (json!({"id": "plain"}), 6)
        ]
    );
    let fresh = results.iter().flatten().filter(|r| !r.conflict).count();
    assert_eq!(fresh, 2 + 6, "one new a, one new b, every plain job");
}

/// Inserts `existing`, then moves it to `state` and its timestamps `age` into the past, then
/// inserts `new`: whether `new` conflicted with it.
async fn conflicts(existing: NewJob, state: &str, age: Duration, new: NewJob) -> bool {
    let (pool, client, _) = database().await;
    let first = client.insert(&existing).await.unwrap();
    sqlx::query(
        "UPDATE oban_jobs SET state = $2::oban_job_state, \
         inserted_at = inserted_at - make_interval(secs => $3), \
         scheduled_at = scheduled_at - make_interval(secs => $3) WHERE id = $1",
    )
    .bind(first.id)
    .bind(state)
    .bind(age.as_secs_f64())
    .execute(&pool)
    .await
    .unwrap();
    let second = client.insert(&new).await.unwrap();
    assert_eq!(
        second.conflict,
        second.id == first.id,
        "conflict reports the found job"
    );
    assert_eq!(count(&pool).await, if second.conflict { 1 } else { 2 });
    second.conflict
}

#[tokio::test]
async fn duplicates_are_judged_by_obans_rule() {
    let now = Duration::ZERO;
    let unique = Unique::default;
    let cases: Vec<(&str, NewJob, &str, Duration, NewJob, bool)> = vec![
        (
            "same args, queue and worker",
            job(json!({"id": 1})).unique(unique()),
            "available",
            now,
            job(json!({"id": 1})).unique(unique()),
            true,
        ),
        (
            "other args",
            job(json!({"id": 1})).unique(unique()),
            "available",
            now,
            job(json!({"id": 2})).unique(unique()),
            false,
        ),
        (
            "args that contain the new ones are not equal to them",
            job(json!({"id": 1, "x": 1})),
            "available",
            now,
            job(json!({"id": 1})).unique(unique()),
            false,
        ),
        (
            "jsonb equality: arrays as sets, 1 equals 1.0",
            job(json!({"ids": [1, 2], "n": 1})),
            "available",
            now,
            job(json!({"ids": [2, 1], "n": 1.0})).unique(unique()),
            true,
        ),
        (
            "other queue",
            job(json!({"id": 1})),
            "available",
            now,
            job(json!({"id": 1})).queue("other").unique(unique()),
            false,
        ),
        (
            "other worker",
            job(json!({"id": 1})),
            "available",
            now,
            NewJob::new("Test.Other", &json!({"id": 1}))
                .unwrap()
                .queue("q")
                .unique(unique()),
            false,
        ),
        (
            "other queue, worker and args only",
            job(json!({"id": 1})),
            "available",
            now,
            job(json!({"id": 1}))
                .queue("other")
                .unique(unique().fields([UniqueField::Args, UniqueField::Worker])),
            true,
        ),
        (
            "keys compare only the named args",
            job(json!({"id": 1, "at": "x"})),
            "available",
            now,
            job(json!({"id": 1, "at": "y"})).unique(unique().keys(["id"])),
            true,
        ),
        (
            "keys with other values",
            job(json!({"id": 1, "at": "x"})),
            "available",
            now,
            job(json!({"id": 2, "at": "x"})).unique(unique().keys(["id"])),
            false,
        ),
        (
            "meta keys",
            job(json!({"id": 1}))
                .meta(&json!({"slug": "s", "n": 1}))
                .unwrap(),
            "available",
            now,
            job(json!({"id": 2}))
                .meta(&json!({"slug": "s", "n": 2}))
                .unwrap()
                .unique(unique().fields([UniqueField::Meta]).keys(["slug"])),
            true,
        ),
        (
            "completed counts by default",
            job(json!({"id": 1})),
            "completed",
            now,
            job(json!({"id": 1})).unique(unique()),
            true,
        ),
        (
            "completed does not count among the incomplete states",
            job(json!({"id": 1})),
            "completed",
            now,
            job(json!({"id": 1})).unique(unique().states(Unique::INCOMPLETE)),
            false,
        ),
        (
            "discarded does not count by default",
            job(json!({"id": 1})),
            "discarded",
            now,
            job(json!({"id": 1})).unique(unique()),
            false,
        ),
        (
            "older than the period",
            job(json!({"id": 1})),
            "available",
            Duration::from_secs(120),
            job(json!({"id": 1})).unique(unique()),
            false,
        ),
        (
            "within a longer period",
            job(json!({"id": 1})),
            "available",
            Duration::from_secs(120),
            job(json!({"id": 1})).unique(unique().period(Some(Duration::from_secs(300)))),
            true,
        ),
        (
            "for ever",
            job(json!({"id": 1})),
            "completed",
            Duration::from_secs(86_400 * 365),
            job(json!({"id": 1})).unique(Unique::forever()),
            true,
        ),
        (
            "the period counted on scheduled_at",
            job(json!({"id": 1})).schedule_in(Duration::from_secs(3_600)),
            "scheduled",
            Duration::from_secs(120),
            job(json!({"id": 1})).unique(unique().timestamp(UniqueTimestamp::ScheduledAt)),
            true,
        ),
    ];
    for (what, existing, state, age, new, expected) in cases {
        assert_eq!(
            conflicts(existing, state, age, new).await,
            expected,
            "{what}"
        );
    }
}

/// What `Oban.insert_all` writes for a job (see insert.rs): a row Elixir inserted.
const ELIXIR_INSERT: &str = "INSERT INTO public.oban_jobs AS o0 \
    (args, attempt, errors, max_attempts, meta, queue, state, tags, worker) \
    VALUES ($1, 0, '{}', 20, '{}', $2, 'available', '{}', $3) RETURNING id";

#[tokio::test]
async fn a_job_elixir_inserted_is_a_duplicate_by_the_same_rule() {
    let (pool, client, _) = database().await;
    let elixir_id: i64 = sqlx::query_scalar(ELIXIR_INSERT)
        .bind(json!({"account": 7, "kind": "sync"}))
        .bind("q")
        .bind("Test.Unique")
        .fetch_one(&pool)
        .await
        .unwrap();
    let ours = job(json!({"kind": "sync", "account": 7})).unique(Unique::default());
    let inserted = client.insert(&ours).await.unwrap();
    assert!(inserted.conflict);
    assert_eq!(inserted.id, elixir_id);
    assert_eq!(count(&pool).await, 1);
}

#[tokio::test]
async fn replace_overwrites_the_named_fields_for_the_found_jobs_state() {
    let (pool, client, _) = database().await;
    let unique = Unique::default().keys(["id"]);
    let first = client
        .insert(
            &job(json!({"id": 1, "v": 1}))
                .schedule_in(Duration::from_secs(600))
                .unique(unique.clone()),
        )
        .await
        .unwrap();
    let at = chrono::Utc::now() + chrono::Duration::seconds(3_600);
    let replacing = job(json!({"id": 1, "v": 2}))
        .priority(7)
        .tags(["new"])
        .scheduled_at(at)
        .unique(unique.clone())
        .replace(
            [JobState::Scheduled],
            [
                ReplaceField::Args,
                ReplaceField::Priority,
                ReplaceField::ScheduledAt,
            ],
        )
        .replace([JobState::Executing], [ReplaceField::Tags]);
    let found = client.insert(&replacing).await.unwrap();
    assert!(found.conflict);
    assert_eq!(found.id, first.id);
    assert_eq!(found.state.0, JobState::Scheduled);
    assert_eq!(
        found.scheduled_at.and_utc().timestamp_micros(),
        at.timestamp_micros()
    );
    let row: (Value, i32, Vec<String>) =
        sqlx::query_as("SELECT args, priority, tags FROM oban_jobs WHERE id = $1")
            .bind(first.id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        row,
        (json!({"id": 1, "v": 2}), 7, vec![]),
        "scheduled: args, priority, time"
    );

    // In another state, only that state's fields are replaced.
    sqlx::query("UPDATE oban_jobs SET state = 'executing' WHERE id = $1")
        .bind(first.id)
        .execute(&pool)
        .await
        .unwrap();
    let again = replacing.clone().priority(1);
    assert!(client.insert(&again).await.unwrap().conflict);
    let row: (Value, i32, Vec<String>) =
        sqlx::query_as("SELECT args, priority, tags FROM oban_jobs WHERE id = $1")
            .bind(first.id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(row, (json!({"id": 1, "v": 2}), 7, vec!["new".to_owned()]));
}

#[tokio::test]
async fn a_batch_reports_each_job_in_order_and_its_own_duplicates_conflict() {
    let (pool, client, _) = database().await;
    let unique = job(json!({"id": "u"})).unique(Unique::default());
    let batch = [
        job(json!({"id": "p1"})),
        unique.clone(),
        unique.clone(),
        job(json!({"id": "p2"})),
    ];
    let inserted = client.insert_all(&batch).await.unwrap();
    let conflicts: Vec<bool> = inserted.iter().map(|job| job.conflict).collect();
    assert_eq!(conflicts, [false, false, true, false]);
    assert_eq!(inserted[2].id, inserted[1].id);
    let args: Vec<Value> = sqlx::query_scalar("SELECT args FROM oban_jobs WHERE id = ANY($1)")
        .bind(vec![inserted[0].id, inserted[3].id])
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(args.len(), 2);
    assert_eq!(count(&pool).await, 3);
}

#[tokio::test]
async fn unique_inserts_in_the_callers_transaction_commit_or_roll_back_with_it() {
    let (pool, client, _) = database().await;
    let unique = job(json!({"id": 1})).unique(Unique::default());
    let prefix = Prefix::default();
    let mut tx = pool.begin().await.unwrap();
    let inserted = insert::insert_all(&mut tx, &prefix, &[unique.clone(), unique.clone()])
        .await
        .unwrap();
    assert_eq!((inserted[0].conflict, inserted[1].conflict), (false, true));
    tx.rollback().await.unwrap();
    assert_eq!(count(&pool).await, 0);
    let mut tx = pool.begin().await.unwrap();
    insert::insert(&mut tx, &prefix, &unique).await.unwrap();
    tx.commit().await.unwrap();
    assert!(client.insert(&unique).await.unwrap().conflict);
    assert_eq!(count(&pool).await, 1);
}

#[tokio::test]
async fn invalid_unique_options_are_refused_before_anything_is_written() {
    let (pool, client, _) = database().await;
    let bad = job(json!({"id": 1})).unique(Unique::default().states([]));
    let error = client
        .insert_all(&[job(json!({"id": 0})), bad])
        .await
        .unwrap_err();
    assert!(error.to_string().contains("states"), "{error}");
    assert_eq!(count(&pool).await, 0);
}
