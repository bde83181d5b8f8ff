//! `badge-forge status`: jobs per queue and state.

use badge_forge::worker::PRINT_QUEUE;
use oban_core::job::JobState;
use oban_core::{Client, Db};

use super::Database;

/// The states of a confirmation still on its way to BadgeForge.PrintCenter.
const WAITING: [JobState; 4] = [
    JobState::Available,
    JobState::Scheduled,
    JobState::Retryable,
    JobState::Executing,
];

pub async fn run(database: &Database) -> anyhow::Result<()> {
    let pool = database.connect_migrated(2).await?;
    let client = Client::new(
        Db::with_pooler(pool, !database.statement_cache),
        database.prefix.clone(),
    );
    let mut counts = client.count_jobs(&JobState::ALL).await?;
    counts.sort_by(|a, b| (&a.queue, a.state.as_str()).cmp(&(&b.queue, b.state.as_str())));
    if counts.is_empty() {
        println!("no jobs");
    }
    println!("{:<24} {:<11} {:>10}", "QUEUE", "STATE", "JOBS");
    for count in &counts {
        println!(
            "{:<24} {:<11} {:>10}",
            count.queue,
            count.state.as_str(),
            count.count
        );
    }
    let waiting: i64 = counts
        .iter()
        .filter(|count| count.queue == PRINT_QUEUE && WAITING.contains(&count.state))
        .map(|count| count.count)
        .sum();
    println!("\nconfirmations waiting for BadgeForge.PrintCenter: {waiting}");
    Ok(())
}
