//! `badge-forge work`: the drop-in GenerateBadge node.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use badge_forge::output::OutputDir;
use badge_forge::render::Renderer;
use badge_forge::worker::{GenerateBadge, RenderStats};
use oban_core::config::{Config, QueueConfig};
use oban_core::node::{Node, NodeBuilder, NodeHandle};
use oban_core::worker::Worker;

use super::{Database, EventArgs, shutdown_signal};

#[derive(clap::Args, Debug, Clone)]
pub struct WorkArgs {
    /// Directory for the badge PDFs.
    #[arg(long, short, env = "BADGE_FORGE_OUTPUT", default_value = "output")]
    pub output: PathBuf,
    /// A queue to run as NAME=LIMIT (repeatable).
    #[arg(
        long = "queue",
        short,
        env = "BADGE_FORGE_QUEUES",
        value_delimiter = ',',
        default_value = "badges=10"
    )]
    pub queues: Vec<QueueConfig>,
    /// This node's name (default: <hostname>.<pid>).
    #[arg(long, env = "OBAN_NODE")]
    pub node: Option<String>,
    /// Seconds running jobs get to finish after SIGTERM.
    #[arg(long, env = "BADGE_FORGE_GRACE_PERIOD", default_value_t = 15.0)]
    pub grace_period: f64,
    /// Seconds after which the leader takes an executing job for orphaned and runs it again.
    #[arg(long, env = "BADGE_FORGE_RESCUE_AFTER", default_value_t = 300.0)]
    pub rescue_after: f64,
    /// Seconds between a producer's own looks for jobs (the fallback when notifications stop).
    #[arg(long, env = "BADGE_FORGE_POLL_INTERVAL", default_value_t = 1.0)]
    pub poll_interval: f64,
    /// LISTEN on this URL instead of DATABASE_URL (when the pool goes through a pooler).
    #[arg(long, env = "OBAN_LISTEN_URL", hide_env_values = true)]
    pub listen_url: Option<String>,
    /// Database connections in the pool.
    #[arg(long, env = "BADGE_FORGE_POOL_SIZE", default_value_t = 10)]
    pub pool_size: u32,
    /// fsync each PDF before renaming it into place (survives power loss, costs a disk flush).
    #[arg(long, env = "BADGE_FORGE_FSYNC")]
    pub fsync: bool,
    #[command(flatten)]
    pub event: EventArgs,
}

impl WorkArgs {
    /// The node configuration these flags describe.
    pub fn config(&self) -> anyhow::Result<Config> {
        let mut config = Config {
            queues: self.queues.clone(),
            shutdown_grace: seconds("--grace-period", self.grace_period)?,
            rescue_after: seconds("--rescue-after", self.rescue_after)?,
            poll_interval: seconds("--poll-interval", self.poll_interval)?,
            ..Config::default()
        };
        if let Some(node) = &self.node {
            config.node = node.clone();
        }
        if let Some(url) = &self.listen_url {
            config.listen_options = Some(
                url.parse()
                    .map_err(|_| anyhow::anyhow!("--listen-url is not a valid postgres:// URL"))?,
            );
        }
        Ok(config)
    }
}

fn seconds(flag: &str, value: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| anyhow::anyhow!("{flag} must be a non-negative number of seconds"))
}

/// Starts a node running GenerateBadge with these flags on `database`; `more_workers` may
/// register other workers on the same node.
pub async fn start_node(
    database: &Database,
    args: &WorkArgs,
    stats: Arc<RenderStats>,
    more_workers: impl FnOnce(NodeBuilder) -> oban_core::Result<NodeBuilder>,
) -> anyhow::Result<NodeHandle> {
    let mut config = args.config()?;
    config.prefix = database.prefix.clone();
    let renderer = Arc::new(Renderer::new(args.event.event_info())?);
    let output = OutputDir::create(&args.output, args.fsync).with_context(|| {
        format!(
            "cannot create the output directory {}",
            args.output.display()
        )
    })?;
    let pool = database.connect(args.pool_size).await?;
    tracing::info!(output = %output.path().display(), "writing badges");
    let builder = Node::builder(pool)
        .config(config)
        .worker(GenerateBadge::new(renderer, output, stats))?;
    Ok(more_workers(builder)?.start().await?)
}

pub async fn run(database: &Database, args: WorkArgs) -> anyhow::Result<()> {
    let node = start_node(database, &args, Arc::default(), Ok).await?;
    tracing::info!(
        worker = GenerateBadge::NAME,
        "ready; stop with SIGINT or SIGTERM"
    );
    let signal = shutdown_signal().await?;
    tracing::info!(signal, "stopping");
    let report = node.shutdown().await;
    if !report.drained {
        tracing::warn!("some jobs outlived the grace period; they stay executing until rescued");
    }
    Ok(())
}
