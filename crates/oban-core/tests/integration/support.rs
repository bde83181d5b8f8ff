//! Shared set-up for the runtime tests: a fresh migrated database per test, a configurable test
//! worker, polling helpers, and a runtime whose `tracing` events go to a test's own subscriber.
//! Every test talks to a real PostgreSQL.

use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oban_core::config::{Config, QueueConfig};
use oban_core::job::Job;
use oban_core::node::{Node, NodeHandle};
use oban_core::notifier::{ListenerHealth, decode_payload};
pub use oban_core::testing::eventually;
use oban_core::testing::fresh_database;
use oban_core::worker::{Outcome, WorkResult, Worker, WorkerOptions};
use oban_core::{Client, Prefix, schema};
use serde_json::Value;
use sqlx::PgPool;
use sqlx::postgres::{PgListener, PgPoolOptions};
use tracing::Dispatch;
use tracing_subscriber::fmt::MakeWriter;

/// A migrated database of its own, and a client on it.
pub async fn database() -> (PgPool, Client, String) {
    let url = fresh_database()
        .await
        .expect("a test database (see scripts/test)");
    let pool = PgPoolOptions::new()
        .max_connections(20)
        .connect(&url)
        .await
        .expect("connect to the test database");
    schema::migrate(&pool, &Prefix::default())
        .await
        .expect("migrate");
    (pool.clone(), Client::new(pool, Prefix::default()), url)
}

/// A configuration with short intervals so tests run in seconds.
pub fn fast_config(queues: &[(&str, usize)]) -> Config {
    Config {
        queues: queues
            .iter()
            .map(|(name, limit)| QueueConfig::new(*name, *limit))
            .collect(),
        poll_interval: Duration::from_millis(200),
        heartbeat: Duration::from_millis(500),
        shutdown_grace: Duration::from_secs(5),
        leader_interval: Duration::from_secs(2),
        stage_interval: Duration::from_millis(200),
        rescue_interval: Duration::from_millis(200),
        prune_interval: Duration::from_millis(200),
        ..Config::default()
    }
}

/// A node running [`Scripted`] with `config`.
pub async fn start_scripted(pool: &PgPool, config: Config) -> NodeHandle {
    Node::builder(pool.clone())
        .config(config)
        .worker(Scripted)
        .expect("register Test.Scripted")
        .start()
        .await
        .expect("start the node")
}

/// Does what its args say: `{"do": "ok" | "error" | "panic" | "discard" | "cancel" | "snooze" |
/// "sleep", "ms": N, "follow_up": bool, "untimed": bool}`; times out after 1.5 s unless
/// `untimed`.
pub struct Scripted;

impl Worker for Scripted {
    const NAME: &'static str = "Test.Scripted";
    const OPTIONS: WorkerOptions = WorkerOptions {
        queue: "default",
        max_attempts: 3,
        priority: 0,
        timeout: Some(Duration::from_millis(1500)),
    };
    // Raw JSON: tests hand it any args, including ones no struct would accept.
    type Args = Value;

    fn timeout(&self, job: &Job) -> Option<Duration> {
        Self::OPTIONS
            .timeout
            .filter(|_| job.args["untimed"] != true)
    }

    async fn process(&self, args: Value, job: &Job) -> WorkResult {
        let ms = args["ms"].as_u64().unwrap_or(0);
        match args["do"].as_str().unwrap_or("ok") {
            "ok" if args["follow_up"] == true => Ok(Outcome::complete_and_insert(vec![
                oban_core::insert::NewJob::new(
                    "Elixir.Test.FollowUp",
                    &serde_json::json!({"parent": job.id}),
                )?
                .queue("follow_ups"),
            ])),
            "ok" => Ok(Outcome::complete()),
            "error" => Err(std::io::Error::other("boom").into()),
            "panic" => panic!("worker exploded"),
            "discard" => Ok(Outcome::Discard("not fixable".into())),
            "cancel" => Ok(Outcome::Cancel("no longer wanted".into())),
            "snooze" => Ok(Outcome::Snooze(Duration::from_secs(30))),
            "sleep" => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(Outcome::complete())
            }
            other => Err(format!("unknown instruction {other}").into()),
        }
    }
}

/// The state of job `id`.
pub async fn state_of(pool: &PgPool, id: i64) -> String {
    sqlx::query_scalar("SELECT state::text FROM oban_jobs WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .expect("job exists")
}

/// Waits until job `id` is in `state`.
pub async fn wait_for_state(pool: &PgPool, id: i64, state: &str) {
    eventually(
        &format!("job {id} to be {state}"),
        Duration::from_secs(10),
        || async { (state_of(pool, id).await == state).then_some(()) },
    )
    .await
}

/// Waits until `node` hears its own heartbeat: a signal sent before then is lost
/// (PostgreSQL keeps no notifications for a session that is not listening yet).
pub async fn wait_until_listening(node: &NodeHandle) {
    eventually(
        "the listener to hear itself",
        Duration::from_secs(15),
        || async { (node.listener_health() == ListenerHealth::Up).then_some(()) },
    )
    .await;
}

/// Runs `test` to completion on a multi-threaded runtime of its own whose every thread (its
/// workers, its blocking pool, and this thread while it waits) sends `tracing` events to
/// `dispatch`. The other tests of this binary run on other threads, so `dispatch` sees this
/// test's events only, and no process-wide subscriber is needed (a process can have one only).
pub fn with_dispatch<F: Future>(dispatch: Dispatch, test: F) -> F::Output {
    let for_threads = dispatch.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(move || {
            // The runtime's threads end with it, so each keeps this default for its whole life.
            std::mem::forget(tracing::dispatcher::set_default(&for_threads));
        })
        .build()
        .expect("a test runtime");
    let _default = tracing::dispatcher::set_default(&dispatch);
    runtime.block_on(test)
}

/// A `tracing` writer that keeps what it is given, for a test to read back.
#[derive(Clone, Default)]
pub struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// A file of `../shared/oban-recordings/` (what the real Elixir Oban and oban-py wrote and
/// sent), as text.
pub fn recording_text(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/oban-recordings")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|error| {
        panic!(
            "the recording {} is missing ({error}): the tests need ../shared beside the checkout",
            path.display()
        )
    })
}

/// A recording read as JSON, or one JSON value per line for `.jsonl`.
pub fn recording(name: &str) -> Vec<serde_json::Value> {
    let text = recording_text(name);
    if name.ends_with(".jsonl") {
        text.lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect()
    } else {
        vec![serde_json::from_str(&text).expect("a JSON file")]
    }
}

/// A LISTEN connection of the test's own on Oban channels.
pub struct Tap(PgListener);

/// One notification: the raw payload as sent, and its decoded JSON.
pub struct Heard {
    pub channel: String,
    pub raw: String,
    pub json: Value,
}

impl Tap {
    pub async fn new(url: &str, channels: &[&str]) -> Self {
        let mut listener = PgListener::connect(url).await.unwrap();
        let names: Vec<String> = channels
            .iter()
            .map(|channel| format!("public.oban_{channel}"))
            .collect();
        listener
            .listen_all(names.iter().map(String::as_str))
            .await
            .unwrap();
        Self(listener)
    }

    /// The next notification, or a panic naming `what` after `timeout`.
    pub async fn next(&mut self, what: &str, timeout: Duration) -> Heard {
        let notification = tokio::time::timeout(timeout, self.0.recv())
            .await
            .unwrap_or_else(|_| panic!("no {what} within {timeout:?}"))
            .unwrap();
        let raw = notification.payload().to_owned();
        let json = decode_payload(&raw)
            .unwrap_or_else(|error| panic!("undecodable payload {raw:?}: {error}"));
        Heard {
            channel: notification.channel().to_owned(),
            raw,
            json,
        }
    }

    /// Notifications until `done` returns `Some` for one of them.
    pub async fn until<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut done: impl FnMut(&Heard) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let heard = self.next(what, left).await;
            if let Some(found) = done(&heard) {
                return found;
            }
        }
    }
}
