//! A unique insert: `DATABASE_URL=... cargo run -p oban-core --example unique_insert`.
//!
//! A job with `Unique` options is inserted only if no matching job exists (by Oban's rule: in
//! the options' states, within the period, equal on the options' fields); otherwise the insert
//! reports the job it found, with `conflict` set.

// Not in tests/integration/examples.rs, which runs `run` on a database of its own.
#[cfg(not(test))]
mod common;

use std::time::Duration;

use oban_core::insert::{InsertedJob, NewJob};
use oban_core::unique::Unique;
use oban_core::{Client, Prefix};
use serde_json::json;
use sqlx::PgPool;

/// Inserts the same account sync twice within five minutes; returns both results.
pub async fn run(pool: PgPool) -> anyhow::Result<(InsertedJob, InsertedJob)> {
    // A client inserts without running queues: the worker may live in any runtime.
    let client = Client::new(pool, Prefix::default());
    // Unique per account for five minutes; `requested_by` does not count.
    let unique = Unique::default()
        .keys(["account_id"])
        .period(Some(Duration::from_secs(300)));
    let sync = |requested_by: &str| {
        NewJob::new(
            "MyApp.Workers.SyncAccount",
            &json!({"account_id": 7, "requested_by": requested_by}),
        )
        .map(|job| job.queue("sync").unique(unique.clone()))
    };
    let first = client.insert(&sync("signup")?).await?;
    let second = client.insert(&sync("settings page")?).await?;
    Ok((first, second))
}

#[cfg(not(test))]
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let pool = common::connect().await?;
    let (first, second) = run(pool).await?;
    println!(
        "first insert: job {} (conflict: {})",
        first.id, first.conflict
    );
    println!(
        "second insert: job {} (conflict: {})",
        second.id, second.conflict
    );
    Ok(())
}
