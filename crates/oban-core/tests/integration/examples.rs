//! The crate's examples (`examples/`), each run against a database of its own: the same code
//! `cargo run --example NAME` runs, minus the `main` that connects to `DATABASE_URL`. Including
//! the files here costs one compile of four small modules; running the four example binaries
//! would build and link each of them on every test run.

#[path = "../../examples/cron.rs"]
mod cron_example;
#[path = "../../examples/transactional_insert.rs"]
mod transactional_insert;
#[path = "../../examples/typed_worker.rs"]
mod typed_worker;
#[path = "../../examples/unique_insert.rs"]
mod unique_insert;

use std::time::Duration;

use crate::support::database;
use serde_json::json;

#[tokio::test]
async fn typed_worker_runs_its_job_with_the_decoded_args() {
    let (pool, _, _) = database().await;
    let sent = typed_worker::run(pool).await.unwrap();
    assert_eq!(sent, "Bienvenue, ada@example.com (user 42)");
}

#[tokio::test]
async fn cron_runs_the_reboot_entry_with_elixirs_meta() {
    let (pool, _, _) = database().await;
    let meta = cron_example::run(pool, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(
        meta,
        json!({"cron": true, "cron_expr": "@reboot", "cron_name": "startup-report", "cron_tz": "Etc/UTC"})
    );
}

#[tokio::test]
async fn unique_insert_conflicts_with_the_first_job() {
    let (pool, _, _) = database().await;
    let (first, second) = unique_insert::run(pool).await.unwrap();
    assert!(!first.conflict);
    assert!(second.conflict);
    assert_eq!(
        second.id, first.id,
        "the second insert reports the first job"
    );
}

#[tokio::test]
async fn transactional_insert_keeps_the_committed_job_only() {
    let (pool, _, _) = database().await;
    let (kept, dropped) = transactional_insert::run(pool).await.unwrap();
    assert_eq!((kept, dropped), (true, false));
}
