//! A transactional insert: `DATABASE_URL=... cargo run -p oban-core --example
//! transactional_insert`.
//!
//! `oban_core::insert::insert` and `insert_all` take a connection or the caller's own sqlx
//! transaction: the job (and the notification that wakes the nodes) is committed with the
//! caller's rows, or not at all.

// Not in tests/integration/examples.rs, which runs `run` on a database of its own.
#[cfg(not(test))]
mod common;

use oban_core::insert::{self, NewJob};
use oban_core::{Client, Prefix};
use serde_json::json;
use sqlx::PgPool;

/// Signs up a user and enqueues their welcome email in one transaction.
async fn sign_up(pool: &PgPool, email: &str, commit: bool) -> anyhow::Result<i64> {
    let mut tx = pool.begin().await?;
    let user_id: i64 =
        sqlx::query_scalar("INSERT INTO example_users (email) VALUES ($1) RETURNING id")
            .bind(email)
            .fetch_one(&mut *tx)
            .await?;
    let welcome =
        NewJob::new("MyApp.Workers.SendWelcome", &json!({"user_id": user_id}))?.queue("mailers");
    let job = insert::insert(&mut tx, &Prefix::default(), &welcome).await?;
    if commit {
        tx.commit().await?;
    } else {
        tx.rollback().await?;
    }
    Ok(job.id)
}

/// Signs up one user and commits, another and rolls back; returns whether each one's job exists.
pub async fn run(pool: PgPool) -> anyhow::Result<(bool, bool)> {
    sqlx::query("CREATE TABLE IF NOT EXISTS example_users (id bigserial PRIMARY KEY, email text)")
        .execute(&pool)
        .await?;
    let kept = sign_up(&pool, "ada@example.com", true).await?;
    let dropped = sign_up(&pool, "grace@example.com", false).await?;
    let client = Client::new(pool, Prefix::default());
    Ok((
        client.get_job(kept).await?.is_some(),
        client.get_job(dropped).await?.is_some(),
    ))
}

#[cfg(not(test))]
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let pool = common::connect().await?;
    let (kept, dropped) = run(pool).await?;
    println!("committed sign-up's job exists: {kept}; rolled-back sign-up's job exists: {dropped}");
    Ok(())
}
