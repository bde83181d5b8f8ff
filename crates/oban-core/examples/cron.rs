//! Cron: `DATABASE_URL=... cargo run -p oban-core --example cron`.
//!
//! A crontab in `Config`: the leader inserts one job per entry and tick (each minute), however
//! many nodes run the same crontab, and stamps each job's `meta` as Elixir's Cron plugin does.
//! Every node publishes its crontab, so Oban Web's Crons page lists it.

// Not in tests/integration/examples.rs, which runs `run` on a database of its own.
#[cfg(not(test))]
mod common;

use std::time::Duration;

use anyhow::Context;
use oban_core::config::{Config, QueueConfig};
use oban_core::cron::CronEntry;
use oban_core::job::Job;
use oban_core::node::Node;
use oban_core::worker::{Outcome, WorkResult, Worker, WorkerOptions};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::mpsc;

/// Which report to build.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReportArgs {
    pub kind: String,
}

/// Builds reports; hands each run's kind and `meta` to [`run`].
pub struct Report {
    built: mpsc::UnboundedSender<(String, Value)>,
}

impl Worker for Report {
    const NAME: &'static str = "MyApp.Workers.Report";
    const OPTIONS: WorkerOptions = WorkerOptions {
        queue: "reports",
        ..WorkerOptions::DEFAULT
    };
    type Args = ReportArgs;

    async fn process(&self, args: ReportArgs, job: &Job) -> WorkResult {
        self.built.send((args.kind, job.meta.clone()))?;
        Ok(Outcome::complete())
    }
}

/// Starts a node with a two-entry crontab evaluated every `cron_tick` (one minute in
/// production; tests shorten it), and returns the `meta` of the `@reboot` entry's job, which
/// runs at the first tick after the node becomes leader.
pub async fn run(pool: PgPool, cron_tick: Duration) -> anyhow::Result<Value> {
    let (built, mut reports) = mpsc::unbounded_channel();
    let report = |kind: &str| Report::new_job(&ReportArgs { kind: kind.into() });
    let crontab = vec![
        CronEntry::new("@reboot", report("startup")?)?.named("startup-report"),
        // Weekdays at 06:00 in Paris, whatever the servers' time zone.
        CronEntry::new("0 6 * * MON-FRI", report("daily")?)?.timezone("Europe/Paris")?,
    ];
    let config = Config {
        queues: vec![QueueConfig::new("reports", 2)],
        crontab,
        cron_tick,
        ..Config::default()
    };
    let node = Node::builder(pool)
        .config(config)
        .worker(Report { built })?
        .start()
        .await?;
    let meta = tokio::time::timeout(cron_tick * 2 + Duration::from_secs(30), async {
        while let Some((kind, meta)) = reports.recv().await {
            if kind == "startup" {
                return Some(meta);
            }
        }
        None
    })
    .await
    .context("no startup report within two ticks")?
    .context("the worker is gone")?;
    node.shutdown().await;
    Ok(meta)
}

#[cfg(not(test))]
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let pool = common::connect().await?;
    println!("waiting for the next minute's tick…");
    println!(
        "startup report's meta: {}",
        run(pool, Duration::from_secs(60)).await?
    );
    Ok(())
}
