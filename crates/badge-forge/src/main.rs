//! `badge-forge`: the command line of Badge Forge. See `badge-forge --help`.

mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Print-ready conference badges, rendered in Rust: a drop-in Oban worker for the Badge Forge
/// GenerateBadge jobs that Elixir enqueues, and the tools around it.
#[derive(Parser, Debug)]
#[command(name = "badge-forge", version, about, long_about = None)]
struct Cli {
    /// PostgreSQL URL of the shared Oban database (never logged).
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    database_url: Option<String>,
    /// The Oban prefix: the PostgreSQL schema holding oban_jobs.
    #[arg(long, env = "OBAN_PREFIX", default_value = "public", global = true)]
    prefix: String,
    /// For a transaction-mode pooler such as PgBouncer before 1.21: no prepared-statement
    /// cache, every statement sent unnamed inside a transaction of its own (a named statement
    /// would outlive its transaction on a shared server connection).
    #[arg(long, env = "BADGE_FORGE_NO_STATEMENT_CACHE", global = true)]
    no_statement_cache: bool,
    /// Log format: human-readable text, or one JSON object per line for log shippers.
    #[arg(long, env = "BADGE_FORGE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Install the Oban schema (version 14) or check that it is current; safe to repeat.
    Migrate,
    /// Run the worker node until SIGINT or SIGTERM, then stop gracefully and exit 0.
    Work(commands::work::WorkCommand),
    /// Enqueue fake badge jobs, as Elixir's BadgeForge.enqueue_batch(n) does.
    Enqueue(commands::enqueue::EnqueueArgs),
    /// Render one badge to a PDF file, without a database.
    Render(commands::render::RenderArgs),
    /// Impose badges on sheets with cut marks, for a print shop: an attendee list's (CSV or
    /// JSON Lines), the badge jobs completed in the database (--from-db), or fake ones.
    Sheet(commands::sheet::SheetArgs),
    /// Show jobs per queue and state, and the confirmations waiting for PrintCenter.
    Status,
    /// The whole round trip on a private database: enqueue, render, confirm, summarise.
    Demo(commands::demo::DemoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo draws a progress bar; one log line per job would bury it.
    let default_filter = match cli.command {
        Command::Demo(_) => "warn",
        _ => "info,sqlx=warn",
    };
    commands::init_logging(cli.log_format == LogFormat::Json, default_filter);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => {
            // Each cause once: sqlx's I/O errors print their source themselves.
            eprintln!("error: {}", oban_core::error::error_chain(error.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// Runs the command; its exit code is success unless it says otherwise (`sheet`).
async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let database = commands::Database {
        url: cli.database_url,
        prefix: oban_core::Prefix::new(cli.prefix)?,
        statement_cache: !cli.no_statement_cache,
    };
    let done = match cli.command {
        Command::Migrate => commands::migrate::run(&database).await,
        Command::Work(args) => commands::work::run(&database, args).await,
        Command::Enqueue(args) => commands::enqueue::run(&database, args).await,
        Command::Render(args) => commands::render::render(args),
        Command::Sheet(args) => return commands::sheet::sheet(&database, args).await,
        Command::Status => commands::status::run(&database).await,
        Command::Demo(args) => commands::demo::run(database, args).await,
    };
    done.map(|()| ExitCode::SUCCESS)
}
