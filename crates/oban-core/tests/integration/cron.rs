//! Cron against a real PostgreSQL: the jobs Elixir's Cron plugin would insert, one per entry
//! and tick whoever leads, across a restart of a leader, and `@reboot` once per start.

use std::time::Duration;

use crate::support::{database, eventually, fast_config, recording, start_scripted};
use chrono::{DateTime, Utc};
use oban_core::config::Config;
use oban_core::cron::CronEntry;
use oban_core::insert::NewJob;
use serde_json::{Value, json};
use sqlx::PgPool;

/// A node config whose crontab is evaluated every second; it runs no queue, so the cron jobs
/// stay `available` to be counted.
fn cron_config(crontab: Vec<CronEntry>) -> Config {
    Config {
        crontab,
        cron_tick: Duration::from_secs(1),
        ..fast_config(&[])
    }
}

fn every_minute(worker: &str, args: Value) -> CronEntry {
    let job = NewJob::new(worker, &args).unwrap().queue("cron");
    CronEntry::new("* * * * *", job).unwrap()
}

async fn jobs_of(pool: &PgPool, worker: &str) -> Vec<Value> {
    sqlx::query_scalar("SELECT row_to_json(j) FROM oban_jobs AS j WHERE worker = $1 ORDER BY id")
        .bind(worker)
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn db_now(pool: &PgPool) -> DateTime<Utc> {
    sqlx::query_scalar("SELECT now()")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn cron_jobs_are_the_rows_elixirs_cron_plugin_inserts() {
    let elixir = recording("elixir-cron-rows.json").remove(0)[0].clone();
    let (pool, _client, _url) = database().await;
    let entry = CronEntry::new(
        elixir["meta"]["cron_expr"].as_str().unwrap(),
        NewJob::new(elixir["worker"].as_str().unwrap(), &elixir["args"])
            .unwrap()
            .queue(elixir["queue"].as_str().unwrap()),
    )
    .unwrap();
    let name = entry.name();
    let node = start_scripted(&pool, cron_config(vec![entry])).await;
    let worker = elixir["worker"].as_str().unwrap();
    let ours = eventually("a cron job", Duration::from_secs(20), || async {
        jobs_of(&pool, worker).await.into_iter().next()
    })
    .await;
    node.shutdown().await;

    for column in [
        "state",
        "queue",
        "worker",
        "args",
        "errors",
        "attempt",
        "max_attempts",
        "priority",
        "tags",
    ] {
        assert_eq!(ours[column], elixir[column], "{column}");
    }
    let mut expected = elixir["meta"].clone();
    // Elixir names an unnamed entry by an Erlang hash Rust cannot reproduce; ours is our own.
    expected["cron_name"] = json!(name);
    assert_eq!(ours["meta"], expected);
}

#[tokio::test]
async fn one_job_per_tick_with_two_leaders_and_across_a_restart() {
    let (pool, _client, _url) = database().await;
    let crontab = || vec![every_minute("Test.Ticked", json!({"n": 1}))];
    // Two election names: both nodes lead at once, as two leaders might for a moment. Only
    // the insert's own guard can keep a tick to one job.
    let leader = |name: &str| Config {
        leadership_name: name.to_owned(),
        ..cron_config(crontab())
    };
    let first = start_scripted(&pool, leader("Oban.rust.a")).await;
    let second = start_scripted(&pool, leader("Oban.rust.b")).await;
    eventually("both nodes to lead", Duration::from_secs(20), || async {
        (first.is_leader() && second.is_leader()).then_some(())
    })
    .await;
    let started = db_now(&pool).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    first.shutdown().await;
    let restarted = start_scripted(&pool, leader("Oban.rust.a")).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let ended = db_now(&pool).await;
    restarted.shutdown().await;
    second.shutdown().await;

    let inserted: Vec<DateTime<Utc>> = sqlx::query_scalar(
        "SELECT inserted_at AT TIME ZONE 'UTC' FROM oban_jobs WHERE worker = 'Test.Ticked' AND inserted_at BETWEEN $1 AND $2 ORDER BY inserted_at",
    )
    .bind(started.naive_utc())
    .bind(ended.naive_utc())
    .fetch_all(&pool)
    .await
    .unwrap();
    let ticks = (ended - started).num_milliseconds() / 1000 + 1;
    assert!(
        inserted.len() as i64 <= ticks,
        "{} jobs in {ticks} ticks: {inserted:?}",
        inserted.len()
    );
    assert!(inserted.len() >= 3, "the crontab ran: {inserted:?}");
    for pair in inserted.windows(2) {
        assert!(
            pair[1] - pair[0] >= chrono::Duration::milliseconds(500),
            "two jobs for one tick: {pair:?}"
        );
    }
}

#[tokio::test]
async fn reboot_entries_run_once_per_start() {
    let (pool, _client, _url) = database().await;
    let reboot = CronEntry::new(
        "@reboot",
        NewJob::new("Test.Reboot", &json!({}))
            .unwrap()
            .queue("cron"),
    )
    .unwrap();
    let node = start_scripted(&pool, cron_config(vec![reboot])).await;
    eventually("the @reboot job", Duration::from_secs(20), || async {
        (!jobs_of(&pool, "Test.Reboot").await.is_empty()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    node.shutdown().await;
    let jobs = jobs_of(&pool, "Test.Reboot").await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0]["meta"]["cron_expr"], "@reboot");
}
