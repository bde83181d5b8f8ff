//! One module per subcommand, and what they share: connecting, logging, the renderer.

pub mod demo;
pub mod enqueue;
pub mod migrate;
pub mod render;
pub mod status;
pub mod work;

use std::time::Duration;

use anyhow::Context;
use badge_forge::render::EventInfo;
use oban_core::Prefix;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tracing_subscriber::EnvFilter;

/// Where the Oban database is.
pub struct Database {
    pub url: Option<String>,
    pub prefix: Prefix,
    pub statement_cache: bool,
}

impl Database {
    /// Connection options from the URL; the error never repeats the URL (it may hold a password).
    pub fn options(&self) -> anyhow::Result<PgConnectOptions> {
        let url = self
            .url
            .as_deref()
            .context("no database given: set DATABASE_URL or pass --database-url")?;
        let options: PgConnectOptions = url
            .parse()
            .map_err(|_| anyhow::anyhow!("DATABASE_URL is not a valid postgres:// URL"))?;
        Ok(if self.statement_cache {
            options
        } else {
            options.statement_cache_capacity(0)
        })
    }

    /// A pool of up to `size` connections.
    pub async fn connect(&self, size: u32) -> anyhow::Result<PgPool> {
        let options = self.options()?;
        let target = format!(
            "{}:{}/{}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or("")
        );
        PgPoolOptions::new()
            .max_connections(size)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .with_context(|| format!("cannot connect to PostgreSQL at {target}"))
    }
}

/// Options naming the event printed on every badge.
#[derive(clap::Args, Debug, Clone)]
pub struct EventArgs {
    /// Conference name printed on the badge.
    #[arg(long, env = "BADGE_FORGE_EVENT", default_value = "Oban Conf 2026")]
    pub event: String,
    /// City printed after the conference name.
    #[arg(long, env = "BADGE_FORGE_CITY", default_value = "Edinburgh")]
    pub city: String,
}

impl EventArgs {
    pub fn event_info(&self) -> EventInfo {
        EventInfo {
            title: self.event.clone(),
            city: self.city.clone(),
        }
    }
}

/// Logs to stderr; `RUST_LOG` filters, else `default_filter`.
pub fn init_logging(json: bool, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init();
    } else {
        builder.init();
    }
}

/// Waits for SIGINT or SIGTERM.
pub async fn shutdown_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    })
}
