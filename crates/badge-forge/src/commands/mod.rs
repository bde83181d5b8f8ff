//! One module per subcommand, and what they share: connecting, logging, the renderer.

pub mod demo;
pub mod enqueue;
pub mod migrate;
pub mod render;
pub mod sheet;
pub mod status;
pub mod work;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use badge_forge::render::{Design, EventInfo, Renderer};
use oban_core::{Prefix, schema};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};
use tracing::field::{Field, Visit};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{self, Layer, SubscriberExt};

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
        let options = parse_url(url, "DATABASE_URL")?;
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
        // One direct connection first: when the server is unreachable or refuses us, the pool
        // would only report, after its timeout, that it timed out; this says why, at once.
        PgConnection::connect_with(&options)
            .await
            .with_context(|| format!("cannot connect to PostgreSQL at {target}"))?
            .close()
            .await?;
        PgPoolOptions::new()
            .max_connections(size)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .with_context(|| format!("cannot connect to PostgreSQL at {target}"))
    }

    /// A pool of up to `size` connections to a database whose Oban schema this build can run
    /// against, checked once here so that every command touching the Oban tables refuses a
    /// missing or outdated schema with the library's message and this program's fix, not with
    /// PostgreSQL's error about a missing relation.
    pub async fn connect_migrated(&self, size: u32) -> anyhow::Result<PgPool> {
        let pool = self.connect(size).await?;
        schema::check(&pool, &self.prefix)
            .await
            .map_err(|error| match error {
                oban_core::Error::Schema(message) => {
                    anyhow::anyhow!("{message}; here, run `{}`", self.migrate_command())
                }
                other => other.into(),
            })?;
        Ok(pool)
    }

    /// The `badge-forge migrate` command line that installs the schema in this prefix.
    fn migrate_command(&self) -> String {
        match self.prefix.as_str() {
            "public" => "badge-forge migrate".to_owned(),
            prefix => format!("badge-forge migrate --prefix {prefix}"),
        }
    }
}

/// Parses a connection URL; `what` names it in messages, which never repeat the URL.
///
/// sqlx logs every query parameter it does not know together with its value, which may be a
/// secret (libpq's `sslpassword`, a misspelt `password`). Its events while parsing are caught
/// here: that one is logged again naming the parameter only, the others (about `.pgpass`,
/// say) go on to the logger unchanged.
pub fn parse_url(url: &str, what: &str) -> anyhow::Result<PgConnectOptions> {
    let unknown = Arc::new(Mutex::new(Vec::new()));
    let catcher = tracing_subscriber::registry().with(UnknownParameters {
        unknown: unknown.clone(),
        logger: tracing::dispatcher::get_default(Clone::clone),
    });
    let parsed = tracing::subscriber::with_default(catcher, || url.parse::<PgConnectOptions>());
    for parameter in unknown.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        tracing::warn!(%parameter, "{what}: ignoring a connection parameter sqlx does not know");
    }
    parsed.map_err(|_| anyhow::anyhow!("{what} is not a valid postgres:// URL"))
}

/// Collects the names in sqlx's "ignoring unrecognized connect parameter" events and passes
/// every other event to `logger`.
struct UnknownParameters {
    unknown: Arc<Mutex<Vec<String>>>,
    logger: tracing::Dispatch,
}

impl<S: tracing::Subscriber> Layer<S> for UnknownParameters {
    fn on_event(&self, event: &tracing::Event<'_>, _: layer::Context<'_, S>) {
        /// The event's `key` field.
        struct Key(Option<String>);
        impl Visit for Key {
            fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
                if field.name() == "key" {
                    self.0 = Some(format!("{value:?}"));
                }
            }
        }
        let mut key = Key(None);
        if event.metadata().target() == "sqlx_postgres::options::parse" {
            event.record(&mut key);
        }
        match key.0 {
            Some(key) => self
                .unknown
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(key),
            None if self.logger.enabled(event.metadata()) => self.logger.event(event),
            None => {}
        }
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
    /// Layout file (TOML, docs/layouts.md); the default is today's 4x3 in badge.
    #[arg(long, env = "BADGE_FORGE_LAYOUT")]
    pub layout: Option<PathBuf>,
}

impl EventArgs {
    pub fn event_info(&self) -> EventInfo {
        EventInfo {
            title: self.event.clone(),
            city: self.city.clone(),
        }
    }

    /// The renderer of the chosen layout, loaded and validated here, once: a bad layout file
    /// stops the command before it does anything else.
    pub fn renderer(&self) -> anyhow::Result<Renderer> {
        let design = match &self.layout {
            Some(path) => Design::load(path)?,
            None => Design::default_badge(),
        };
        Ok(Renderer::with_layout(self.event_info(), design)?)
    }
}

/// Logs to stderr; `RUST_LOG` filters, else `default_filter`. Colours only on a terminal, so
/// that logs piped to a file or a collector carry no escape codes.
pub fn init_logging(json: bool, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
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

/// Handles SIGINT and SIGTERM from now on; the future completes with the first that comes.
pub fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = &'static str>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        }
    })
}
