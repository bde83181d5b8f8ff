//! What every example starts with: a pool on `DATABASE_URL`, migrated to Oban's schema.

use anyhow::Context;
use oban_core::{Prefix, schema};
use sqlx::PgPool;

/// Connects to `DATABASE_URL` and migrates `oban_jobs` to the schema Elixir Oban 2.23 and
/// oban-py 0.7 use (nothing to do on a database they already migrated).
pub async fn connect() -> anyhow::Result<PgPool> {
    let url = std::env::var("DATABASE_URL").context(
        "DATABASE_URL is not set: point it at a PostgreSQL database, \
         e.g. DATABASE_URL=postgres://localhost/oban_example",
    )?;
    let pool = PgPool::connect(&url)
        .await
        .context("cannot connect to DATABASE_URL")?;
    schema::migrate(&pool, &Prefix::default()).await?;
    Ok(pool)
}
