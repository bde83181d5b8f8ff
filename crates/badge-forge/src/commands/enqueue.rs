//! `badge-forge enqueue`: what Elixir's `BadgeForge.enqueue_batch(n)` does, from Rust.

use badge_forge::badge_args::BadgeArgs;
use badge_forge::fake_badges::fake_badges;
use badge_forge::render::Badge;
use badge_forge::worker::GenerateBadge;
use indicatif::{ProgressBar, ProgressStyle};
use oban_core::insert::NewJob;
use oban_core::worker::Worker;
use oban_core::{Client, Db};

use super::Database;

#[derive(clap::Args, Debug, Clone)]
pub struct EnqueueArgs {
    /// How many badge jobs to insert.
    #[arg(long, short = 'n', default_value_t = 100)]
    pub count: usize,
    /// Seed for the fake names, to repeat a batch.
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
}

/// The GenerateBadge job for `badge`: args `{id, name, company, type}` as Elixir writes them.
pub fn badge_job(badge: &Badge) -> oban_core::Result<NewJob> {
    GenerateBadge::new_job(&BadgeArgs::of(badge))
}

/// Inserts `count` fake badge jobs in one statement; returns them.
pub async fn enqueue(client: &Client, count: usize, seed: u64) -> anyhow::Result<Vec<Badge>> {
    let progress = if count >= 10_000 {
        ProgressBar::new(count as u64)
    } else {
        ProgressBar::hidden()
    };
    progress.set_style(ProgressStyle::with_template(
        "{msg:>10} {bar:40} {pos}/{len}",
    )?);
    progress.set_message("building");
    let badges = fake_badges(count, seed);
    let mut jobs = Vec::with_capacity(count);
    for badge in &badges {
        jobs.push(badge_job(badge)?);
        progress.inc(1);
    }
    progress.set_message("inserting");
    client.insert_all(&jobs).await?;
    progress.finish_and_clear();
    Ok(badges)
}

pub async fn run(database: &Database, args: EnqueueArgs) -> anyhow::Result<()> {
    let pool = database.connect_migrated(2).await?;
    let client = Client::new(
        Db::with_pooler(pool, !database.statement_cache),
        database.prefix.clone(),
    );
    let started = std::time::Instant::now();
    enqueue(&client, args.count, args.seed).await?;
    println!(
        "enqueued {} badge jobs on queue badges in {:.2?}",
        args.count,
        started.elapsed()
    );
    Ok(())
}
