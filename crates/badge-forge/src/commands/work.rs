//! `badge-forge work`: the drop-in GenerateBadge node.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use badge_forge::http::{self, Credentials, Dashboard};
use badge_forge::output::{FileMode, OutputDir};
use badge_forge::print_run::worker::PrintRun;
use badge_forge::render::Renderer;
use badge_forge::retention::{self, Retain};
use badge_forge::worker::{
    ACK_LINGER, GenerateBadge, PRINT_CENTER, PRINT_QUEUE, QUEUE_LIMIT, RenderStats,
};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, FromArgMatches};
use oban_core::config::{Config, QueueConfig};
use oban_core::cron::CronEntry;
use oban_core::node::{Node, NodeBuilder, NodeHandle};
use oban_core::telemetry::LogArgs;
use oban_core::worker::Worker;
use oban_core::{Client, Db};

use super::{Database, EventArgs, shutdown_signal};

/// `badge-forge work`: the node's flags and the optional HTTP server's.
#[derive(clap::Args, Debug, Clone)]
pub struct WorkCommand {
    #[command(flatten)]
    pub work: WorkArgs,
    #[command(flatten)]
    pub http: HttpArgs,
    /// Also publish job counts per state and queue for Oban Web's sidebar, from the leader of
    /// the Rust nodes. Only when no Elixir node with oban_met leads (and oban-py's counts are
    /// off): Oban Web adds up every reporter's counts.
    #[arg(long, env = "BADGE_FORGE_FULL_COUNTS")]
    pub full_counts: bool,
}

/// The `--http` server: Prometheus metrics, a health check and a live page.
#[derive(clap::Args, Debug, Clone)]
pub struct HttpArgs {
    /// Serve /metrics (Prometheus), /healthz and a live page at / on this address, e.g.
    /// 127.0.0.1:9000 (port 0 picks a free one). Off unless given.
    #[arg(long = "http", env = "BADGE_FORGE_HTTP", value_name = "ADDR")]
    pub address: Option<SocketAddr>,
    /// HTTP Basic credentials every route but /healthz asks for (the live page and previews
    /// show attendees' names). Prefer the environment variable: a flag shows in `ps`.
    #[arg(
        long = "http-auth",
        env = "BADGE_FORGE_HTTP_AUTH",
        value_name = "USER:PASSWORD",
        hide_env_values = true,
        value_parser = CredentialsParser
    )]
    pub auth: Option<Credentials>,
    /// Serve a non-loopback --http address without --http-auth: anyone who reaches it sees the
    /// attendees' names. Refused at start unless given.
    #[arg(long = "http-public", env = "BADGE_FORGE_HTTP_PUBLIC")]
    pub public: bool,
    /// Seconds the database or the LISTEN connection may be down before /healthz answers 503.
    #[arg(long, env = "BADGE_FORGE_HEALTH_THRESHOLD", default_value_t = 30.0)]
    pub health_threshold: f64,
}

impl HttpArgs {
    /// Refuses to serve attendees' names without credentials beyond this host, unless the
    /// operator said so with --http-public.
    fn check_exposure(&self) -> anyhow::Result<()> {
        let Some(address) = self.address else {
            return Ok(());
        };
        if address.ip().is_loopback() || self.auth.is_some() {
            return Ok(());
        }
        if self.public {
            tracing::warn!(%address, "--http-public: serving attendees' names without authentication");
            return Ok(());
        }
        anyhow::bail!(
            "refusing to serve the live page, previews and metrics on {address} without \
             authentication: they show attendees' names to anyone who reaches that address. Set \
             --http-auth USER:PASSWORD (or BADGE_FORGE_HTTP_AUTH), bind a loopback address such \
             as 127.0.0.1, or pass --http-public if you mean it"
        )
    }
}

/// Reads `--http-auth` with errors of its own: clap's would repeat the value, a password.
#[derive(Clone)]
struct CredentialsParser;

impl TypedValueParser for CredentialsParser {
    type Value = Credentials;

    fn parse_ref(
        &self,
        _: &clap::Command,
        _: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Credentials, clap::Error> {
        let invalid = |message: String| {
            clap::Error::raw(clap::error::ErrorKind::ValueValidation, message + "\n")
        };
        let text = value
            .to_str()
            .ok_or_else(|| invalid("--http-auth must be valid UTF-8".into()))?;
        Credentials::parse(text).map_err(|error| invalid(error.to_string()))
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct WorkArgs {
    /// Directory for the badge PDFs.
    #[arg(long, short, env = "BADGE_FORGE_OUTPUT", default_value = "output")]
    pub output: PathBuf,
    /// A queue to run as NAME=LIMIT (repeatable; replaces the default). Add
    /// printing_runs=1 on the nodes that should run BadgeForge.PrintRun jobs (print runs,
    /// docs/print-runs.md), which write their sheets into this node's --output.
    #[arg(
        long = "queue",
        short,
        env = "BADGE_FORGE_QUEUES",
        value_delimiter = ',',
        default_values_t = [QueueConfig::new("badges", QUEUE_LIMIT)]
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
    /// Seconds a node heard on `gossip` may fall silent before the leader takes it for dead and
    /// runs its executing jobs again (at least twice the gossip interval of 1 s).
    #[arg(long, env = "BADGE_FORGE_RESCUE_SILENCE", default_value_t = 5.0)]
    pub rescue_silence: f64,
    /// Seconds between a producer's own looks for jobs (the fallback when notifications stop).
    #[arg(long, env = "BADGE_FORGE_POLL_INTERVAL", default_value_t = 1.0)]
    pub poll_interval: f64,
    /// Seconds a finished job's ack waits for others to share its database statement (larger
    /// batches cost PostgreSQL less per badge; a job holds its queue slot until then).
    #[arg(long, env = "BADGE_FORGE_ACK_LINGER", default_value_t = ACK_LINGER.as_secs_f64())]
    pub ack_linger: f64,
    /// LISTEN on this URL instead of DATABASE_URL (when the pool goes through a pooler).
    #[arg(long, env = "OBAN_LISTEN_URL", hide_env_values = true)]
    pub listen_url: Option<String>,
    /// Database connections in the pool.
    #[arg(long, env = "BADGE_FORGE_POOL_SIZE", default_value_t = 10)]
    pub pool_size: u32,
    /// fsync each PDF before renaming it into place (survives power loss, costs a disk flush).
    #[arg(long, env = "BADGE_FORGE_FSYNC")]
    pub fsync: bool,
    /// Insert a job on a schedule, as "EXPR WORKER [JSON-ARGS]": five cron fields or an
    /// @-alias (@hourly, @daily, @reboot, ...), then the worker (GenerateBadge's or Elixir's
    /// PrintCenter, each to its queue), then its args, e.g. '@daily BadgeForge.PrintCenter
    /// {"id":"daily"}'. Evaluated each minute in UTC by the leader of the Rust nodes, one job
    /// per tick; BadgeForge.PrintRun goes to printing_runs. Repeatable; in the environment,
    /// one entry per line.
    #[arg(
        long = "cron",
        env = "BADGE_FORGE_CRON",
        value_delimiter = '\n',
        value_name = "ENTRY"
    )]
    pub cron: Vec<String>,
    /// Permission bits of the badge PDFs, in octal (0640: the owner's group, a print spooler's,
    /// may read them, nobody else); a directory the node creates gets search access for the
    /// same readers (0750).
    #[arg(long, env = "BADGE_FORGE_FILE_MODE", default_value_t = FileMode::DEFAULT)]
    pub file_mode: FileMode,
    /// Delete badge PDFs older than this from the output directory (e.g. 30d, 12h), checked
    /// at start and then hourly (every tenth of the bound if shorter). Off unless given: the
    /// PDFs are kept.
    #[arg(long, env = "BADGE_FORGE_RETAIN", value_name = "DURATION")]
    pub retain: Option<Retain>,
    /// How much of a job's args its job-end log line shows: full (the JSON, as oban-py logs
    /// it), keys (their names only) or none (no args field). Args hold attendees' names.
    #[arg(
        long,
        env = "BADGE_FORGE_LOG_ARGS",
        default_value = "full",
        value_parser = PossibleValuesParser::new(LogArgs::NAMES)
            .map(|name| name.parse::<LogArgs>().expect("one of the names"))
    )]
    pub log_args: LogArgs,
    #[command(flatten)]
    pub event: EventArgs,
}

impl WorkArgs {
    /// `work`'s flags at clap's defaults, environment variables ignored: `demo` starts its node
    /// from these, so a default changed above holds there too.
    pub fn defaults() -> anyhow::Result<Self> {
        let command = Self::augment_args(clap::Command::new("work")).mut_args(|arg| arg.env(None));
        let matches = command.try_get_matches_from(["work"])?;
        Ok(Self::from_arg_matches(&matches)?)
    }

    /// The node configuration these flags describe.
    pub fn config(&self) -> anyhow::Result<Config> {
        let mut config = Config {
            queues: self.queues.clone(),
            shutdown_grace: seconds("--grace-period", self.grace_period)?,
            rescue_after: seconds("--rescue-after", self.rescue_after)?,
            rescue_silence: seconds("--rescue-silence", self.rescue_silence)?,
            poll_interval: seconds("--poll-interval", self.poll_interval)?,
            ack_linger: seconds("--ack-linger", self.ack_linger)?,
            log_args: self.log_args,
            ..Config::default()
        };
        if let Some(node) = &self.node {
            config.node = node.clone();
        }
        config.crontab = self
            .cron
            .iter()
            .map(|line| CronEntry::parse_line(line, queue_of))
            .collect::<Result<_, _>>()?;
        if let Some(url) = &self.listen_url {
            config.listen_options = Some(super::parse_url(url, "--listen-url")?);
        }
        Ok(config)
    }
}

/// The queue of each worker a `--cron` entry may name.
fn queue_of(worker: &str) -> Option<String> {
    match worker {
        GenerateBadge::NAME => Some(GenerateBadge::OPTIONS.queue.to_owned()),
        PRINT_CENTER => Some(PRINT_QUEUE.to_owned()),
        PrintRun::NAME => Some(PrintRun::OPTIONS.queue.to_owned()),
        _ => None,
    }
}

fn seconds(flag: &str, value: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| anyhow::anyhow!("{flag} must be a non-negative number of seconds"))
}

/// Starts a node running GenerateBadge (and PrintRun, on the nodes given its queue) with these
/// flags and `renderer` (built once by the caller, which may share it) on `database`;
/// `more_workers` may register other workers on the same node.
pub async fn start_node(
    database: &Database,
    args: &WorkArgs,
    renderer: Arc<Renderer>,
    stats: Arc<RenderStats>,
    more_workers: impl FnOnce(NodeBuilder) -> oban_core::Result<NodeBuilder>,
) -> anyhow::Result<NodeHandle> {
    let mut config = args.config()?;
    config.prefix = database.prefix.clone();
    config.behind_pooler = !database.statement_cache;
    let output = OutputDir::create_with_mode(&args.output, args.fsync, args.file_mode)
        .with_context(|| {
            format!(
                "cannot create the output directory {}",
                args.output.display()
            )
        })?;
    let pool = database.connect_migrated(args.pool_size).await?;
    tracing::info!(output = %output.path().display(), mode = %args.file_mode, "writing badges");
    if let Some(retain) = args.retain {
        // Runs until the process ends; a sweep during the drain is harmless.
        tokio::spawn(retention::sweep_forever(output.clone(), retain));
    }
    // Print runs read the completed badge jobs as the node's own statements travel.
    let client = Client::new(
        Db::with_pooler(pool.clone(), config.behind_pooler),
        config.prefix.clone(),
    );
    let print_run = PrintRun::new(renderer.clone(), output.clone(), &client);
    let builder = Node::builder(pool)
        .config(config)
        .worker(GenerateBadge::new(renderer, output, stats))?
        .worker(print_run)?;
    Ok(more_workers(builder)?.start().await?)
}

pub async fn run(database: &Database, command: WorkCommand) -> anyhow::Result<()> {
    let WorkCommand {
        work: args,
        http,
        full_counts,
    } = command;
    http.check_exposure()?;
    let stats = Arc::new(RenderStats::default());
    // One renderer (and one read of the layout file) for the worker and the live page.
    let renderer = Arc::new(args.event.renderer()?);
    let node = start_node(database, &args, renderer.clone(), stats.clone(), |node| {
        Ok(node.configure(|config| config.full_counts = full_counts))
    })
    .await?;
    let server = match http.address {
        Some(address) => {
            let dashboard = Dashboard::new(
                node.monitor(),
                node.config().node.clone(),
                node.client().clone(),
                stats,
                renderer,
                seconds("--health-threshold", http.health_threshold)?,
            );
            Some(start_http(address, dashboard, http.auth).await?)
        }
        None => None,
    };
    // Handled before saying so: a SIGTERM right after this line still drains the node.
    let stop = shutdown_signal()?;
    tracing::info!(
        worker = GenerateBadge::NAME,
        "ready; stop with SIGINT or SIGTERM"
    );
    let signal = stop.await;
    tracing::info!(signal, "stopping");
    // The HTTP server keeps answering while the node drains, so the drain can be watched.
    let report = node.shutdown().await;
    if !report.drained {
        tracing::warn!("some jobs outlived the grace period; they stay executing until rescued");
    }
    if let Some((stop, server)) = server {
        let _ = stop.send(());
        match tokio::time::timeout(Duration::from_secs(5), server).await {
            Ok(Ok(Err(error))) => tracing::warn!(%error, "HTTP server failed"),
            Ok(_) => {}
            Err(_) => tracing::warn!("HTTP connections still open after 5 s; closing them"),
        }
    }
    Ok(())
}

/// A running HTTP server: the sender that stops it, and its task.
type HttpServer = (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
);

/// Binds `address` (failing here if it is taken) and serves the dashboard on it, asking for
/// `credentials` if given.
async fn start_http(
    address: SocketAddr,
    dashboard: Dashboard,
    credentials: Option<Credentials>,
) -> anyhow::Result<HttpServer> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} for --http"))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, "serving the live page at http://{address}/, /metrics and /healthz");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(http::serve(
        listener,
        Arc::new(dashboard),
        credentials,
        async {
            let _ = stopped.await;
        },
    ));
    Ok((stop, server))
}
