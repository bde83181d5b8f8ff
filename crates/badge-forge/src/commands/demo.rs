//! `badge-forge demo`: the Badge Forge round trip in one command. With no `DATABASE_URL` it
//! starts a private PostgreSQL, then migrates, enqueues like Elixir, renders, and stands in for
//! Elixir's PrintCenter by printing each confirmation it receives.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use badge_forge::worker::{Confirmation, PRINT_CENTER, PRINT_QUEUE, QUEUE_LIMIT, RenderStats};
use indicatif::{ProgressBar, ProgressStyle};
use oban_core::config::QueueConfig;
use oban_core::job::Job;
use oban_core::schema;
use oban_core::testing::TempPostgres;
use oban_core::worker::{Outcome, WorkResult, Worker, WorkerOptions};

use super::work::{WorkArgs, start_node};
use super::{Database, EventArgs};

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// How many badges to make.
    #[arg(long, short = 'n', default_value_t = 200)]
    pub count: usize,
    /// Directory for the badge PDFs.
    #[arg(long, short, env = "BADGE_FORGE_OUTPUT", default_value = "output")]
    pub output: PathBuf,
    /// Badge jobs the node holds at once (renders run one per CPU core).
    #[arg(long, default_value_t = QUEUE_LIMIT)]
    pub concurrency: usize,
    /// Seed for the fake names.
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
    #[command(flatten)]
    pub event: EventArgs,
}

/// Stands in for Elixir's `BadgeForge.PrintCenter` on queue `printing`.
struct PrintCenterStandIn {
    printed: Arc<AtomicUsize>,
    progress: ProgressBar,
}

impl Worker for PrintCenterStandIn {
    const NAME: &'static str = PRINT_CENTER;
    const OPTIONS: WorkerOptions = WorkerOptions {
        queue: PRINT_QUEUE,
        ..WorkerOptions::DEFAULT
    };

    // A confirmation without its name and path is discarded by the node, naming the field.
    type Args = Confirmation;

    async fn process(&self, confirmation: Confirmation, _job: &Job) -> WorkResult {
        if self.printed.fetch_add(1, Ordering::Relaxed) < 10 {
            let Confirmation { name, path, .. } = confirmation;
            self.progress
                .println(format!("  printed {name}  →  {path}"));
        }
        self.progress.inc(1);
        Ok(Outcome::complete())
    }
}

pub async fn run(database: Database, args: DemoArgs) -> anyhow::Result<()> {
    let (database, _private) = match database.url {
        Some(_) => (database, None),
        None => {
            eprintln!("DATABASE_URL is not set: starting a private PostgreSQL for this demo…");
            let postgres = tokio::task::spawn_blocking(TempPostgres::start).await??;
            let database = Database {
                url: Some(postgres.url().to_owned()),
                ..database
            };
            (database, Some(postgres))
        }
    };
    let pool = database.connect(2).await?;
    schema::migrate(&pool, &database.prefix)
        .await
        .context("migrating the Oban schema")?;

    let progress = ProgressBar::new(args.count as u64);
    progress.set_style(ProgressStyle::with_template(
        "{spinner} {wide_bar} {pos}/{len} badges printed ({per_sec})",
    )?);
    let printed = Arc::new(AtomicUsize::new(0));
    let stats = Arc::new(RenderStats::default());
    let work = WorkArgs {
        output: args.output.clone(),
        queues: vec![
            QueueConfig::new("badges", args.concurrency),
            // Confirmations arrive in ack batches (see ACK_LINGER): room for a batch or two.
            QueueConfig::new(PRINT_QUEUE, QUEUE_LIMIT),
        ],
        event: args.event.clone(),
        ..WorkArgs::defaults()?
    };
    let stand_in = PrintCenterStandIn {
        printed: printed.clone(),
        progress: progress.clone(),
    };
    let renderer = Arc::new(work.event.renderer()?);
    let node = start_node(&database, &work, renderer, stats.clone(), |node| {
        node.worker(stand_in)
    })
    .await?;

    let started = Instant::now();
    let badges = super::enqueue::enqueue(node.client(), args.count, args.seed).await?;
    progress.println(format!(
        "enqueued {} badge jobs like Elixir's enqueue_batch({})",
        badges.len(),
        args.count
    ));
    let mut last = (0, Instant::now());
    while printed.load(Ordering::Relaxed) < args.count {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = printed.load(Ordering::Relaxed);
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(30) {
            progress.abandon();
            node.shutdown().await;
            anyhow::bail!(
                "no progress for 30 s with {now} of {} badges printed; see `badge-forge status`",
                args.count
            );
        }
    }
    let elapsed = started.elapsed();
    progress.finish_and_clear();
    let node_pool = node.client().pool().clone();
    node.shutdown().await;
    // Close the connections before a private cluster stops, which would otherwise end them
    // with an "administrator command" warning.
    node_pool.close().await;
    pool.close().await;

    let renders = stats.renders.load(Ordering::Relaxed).max(1);
    let mut sizes: Vec<u64> = badges
        .iter()
        .filter_map(|badge| {
            std::fs::metadata(args.output.join(format!("badge-{}.pdf", badge.id))).ok()
        })
        .map(|meta| meta.len())
        .collect();
    sizes.sort_unstable();
    println!("\nBadge Forge demo");
    println!("  badges printed      {}", args.count);
    println!(
        "  end to end          {:.2?} ({:.0} badges/s)",
        elapsed,
        args.count as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  render time         {:.3} ms CPU per badge",
        stats.render_nanos.load(Ordering::Relaxed) as f64 / renders as f64 / 1e6
    );
    println!(
        "  median PDF size     {} bytes",
        sizes.get(sizes.len() / 2).copied().unwrap_or(0)
    );
    println!(
        "  PDFs in             {}",
        std::fs::canonicalize(&args.output)?.display()
    );
    Ok(())
}
