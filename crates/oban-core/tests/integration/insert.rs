//! Enqueueing against a real PostgreSQL: rows indistinguishable from `Oban.insert_all`'s,
//! batches of any size, transactions, and the insert notification.

use std::time::Duration;

use crate::support::{database, recording};
use oban_core::insert::{self, NewJob};
use oban_core::{Error, Prefix};
use serde_json::{Value, json};
use sqlx::postgres::PgListener;

/// The rows of `enqueue_batch(3)` as real `Oban.insert_all` wrote them (recorded), and ours
/// for the same args, queue and worker: every column equal but the per-run id and timestamps,
/// which are the database clock's, once per statement, as Elixir's are.
#[tokio::test]
async fn rows_are_indistinguishable_from_oban_insert_all() {
    let (pool, _, _) = database().await;
    let elixir = recording("elixir-insert_all-rows.json").remove(0);
    let elixir = elixir.as_array().expect("an array of rows");
    assert_eq!(elixir.len(), 3, "the recording holds enqueue_batch(3)");
    let jobs: Vec<NewJob> = elixir
        .iter()
        .map(|row| {
            NewJob::new(row["worker"].as_str().unwrap(), &row["args"])
                .unwrap()
                .queue(row["queue"].as_str().unwrap())
        })
        .collect();
    let mut conn = pool.acquire().await.unwrap();
    let ours = insert::insert_all(&mut conn, &Prefix::default(), &jobs)
        .await
        .unwrap();
    let rows: Vec<Value> = sqlx::query_scalar(
        "SELECT row_to_json(j)::jsonb FROM oban_jobs j WHERE id = ANY($1) ORDER BY id",
    )
    .bind(ours.iter().map(|job| job.id).collect::<Vec<_>>())
    .fetch_all(&pool)
    .await
    .unwrap();
    let per_run = ["id", "inserted_at", "scheduled_at"];
    let without_per_run = |row: &Value| -> Value {
        let mut row = row.as_object().expect("a row object").clone();
        for column in per_run {
            row.remove(column);
        }
        Value::Object(row)
    };
    for (elixir, ours) in elixir.iter().zip(&rows) {
        assert_eq!(
            without_per_run(ours),
            without_per_run(elixir),
            "an oban-core row differs from Oban.insert_all's"
        );
        let same_instant = |row: &Value| row["inserted_at"] == row["scheduled_at"];
        assert!(same_instant(elixir) && same_instant(ours), "{ours}");
    }
}

#[tokio::test]
async fn options_land_in_their_columns() {
    let (pool, client, _) = database().await;
    let job = NewJob::new("W", &json!({"a": 1}))
        .unwrap()
        .queue("q")
        .priority(3)
        .max_attempts(5)
        .tags(["Red", "blue "])
        .meta(&json!({"source": "test"}))
        .unwrap()
        .schedule_in(Duration::from_secs(3600));
    let inserted = client.insert(&job).await.unwrap();
    let row: (String, i32, i32, Vec<String>, Value, bool) = sqlx::query_as(
        "SELECT state::text, priority, max_attempts, tags, meta, \
         scheduled_at > timezone('UTC', now()) + interval '59 minutes' FROM oban_jobs WHERE id = $1",
    )
    .bind(inserted.id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        row,
        (
            "scheduled".into(),
            3,
            5,
            vec!["red".into(), "blue".into()],
            json!({"source": "test"}),
            true
        )
    );
}

#[tokio::test]
async fn one_statement_takes_more_jobs_than_the_parameter_limit_allows_rows() {
    let (pool, client, _) = database().await;
    // 9 parameters a row would cap a VALUES insert at 7,281 rows; arrays have no such cap.
    let jobs: Vec<NewJob> = (0..20_000)
        .map(|i| {
            NewJob::new("W", &json!({"i": i}))
                .unwrap()
                .queue(format!("q{}", i % 3))
        })
        .collect();
    let inserted = client.insert_all(&jobs).await.unwrap();
    assert_eq!(inserted.len(), 20_000);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM oban_jobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 20_000);
}

#[tokio::test]
async fn invalid_jobs_are_rejected_before_anything_is_written() {
    let (pool, client, _) = database().await;
    let good = NewJob::new("W", &json!({})).unwrap();
    let bad = NewJob::new("W", &json!({})).unwrap().priority(12);
    let error = client.insert_all(&[good, bad]).await.unwrap_err();
    assert!(
        matches!(error, Error::InvalidJob(ref message) if message.contains("priority")),
        "{error}"
    );
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM oban_jobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 0);
}

#[tokio::test]
async fn announces_each_queue_once_at_commit_and_never_on_rollback() {
    let (pool, _, url) = database().await;
    let mut listener = PgListener::connect(&url).await.unwrap();
    listener.listen("public.oban_insert").await.unwrap();
    let prefix = Prefix::default();
    let jobs: Vec<NewJob> = ["a", "a", "b"]
        .iter()
        .map(|queue| NewJob::new("W", &json!({})).unwrap().queue(*queue))
        .chain([NewJob::new("W", &json!({}))
            .unwrap()
            .queue("later")
            .schedule_in(Duration::from_secs(60))])
        .collect();

    let mut tx = pool.begin().await.unwrap();
    insert::insert_all(&mut tx, &prefix, &jobs).await.unwrap();
    tx.rollback().await.unwrap();

    let mut tx = pool.begin().await.unwrap();
    insert::insert_all(&mut tx, &prefix, &jobs).await.unwrap();
    let early = tokio::time::timeout(Duration::from_millis(300), listener.recv()).await;
    assert!(early.is_err(), "a notification arrived before commit");
    tx.commit().await.unwrap();

    let mut payloads = Vec::new();
    while let Ok(Ok(notification)) =
        tokio::time::timeout(Duration::from_millis(500), listener.recv()).await
    {
        payloads.push(notification.payload().to_owned());
    }
    payloads.sort();
    // Compact JSON exactly as Elixir sends it; nothing for the scheduled job's queue.
    assert_eq!(payloads, [r#"{"queue":"a"}"#, r#"{"queue":"b"}"#]);
}

#[tokio::test]
async fn a_job_committed_with_the_callers_data_or_not_at_all() {
    let (pool, _, _) = database().await;
    sqlx::query("CREATE TABLE orders (id int primary key)")
        .execute(&pool)
        .await
        .unwrap();
    let prefix = Prefix::default();
    for commit in [false, true] {
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("INSERT INTO orders VALUES (1)")
            .execute(&mut *tx)
            .await
            .unwrap();
        insert::insert(
            &mut tx,
            &prefix,
            &NewJob::new("Mailer", &json!({"order": 1})).unwrap(),
        )
        .await
        .unwrap();
        if commit {
            tx.commit().await.unwrap()
        } else {
            tx.rollback().await.unwrap()
        }
        let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM oban_jobs")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(jobs, i64::from(commit));
    }
}
