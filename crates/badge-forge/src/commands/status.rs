//! `badge-forge status`: jobs per queue and state.

use badge_forge::worker::PRINT_QUEUE;

use super::Database;

/// Counts jobs by queue and state (any runtime's) in one scan.
const COUNTS: &str =
    "SELECT queue, state::text, count(*) FROM {prefix}.oban_jobs GROUP BY 1, 2 ORDER BY 1, 2";

pub async fn run(database: &Database) -> anyhow::Result<()> {
    let pool = database.connect_migrated(2).await?;
    let rows: Vec<(String, String, i64)> = sqlx::query_as(database.prefix.render(COUNTS))
        .fetch_all(&pool)
        .await?;
    if rows.is_empty() {
        println!("no jobs");
    }
    println!("{:<24} {:<11} {:>10}", "QUEUE", "STATE", "JOBS");
    for (queue, state, count) in &rows {
        println!("{queue:<24} {state:<11} {count:>10}");
    }
    let waiting: i64 = rows
        .iter()
        .filter(|(queue, state, _)| {
            queue == PRINT_QUEUE
                && ["available", "scheduled", "retryable", "executing"].contains(&state.as_str())
        })
        .map(|(_, _, count)| count)
        .sum();
    println!("\nconfirmations waiting for BadgeForge.PrintCenter: {waiting}");
    Ok(())
}
