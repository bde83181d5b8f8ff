//! A worker with typed args: `DATABASE_URL=... cargo run -p oban-core --example typed_worker`.
//!
//! The worker declares `type Args = Welcome`. The node decodes each job's JSON args into it
//! before calling `process`, and discards a job whose args do not decode (never retries it),
//! with an error entry naming the worker and the field.

// Not in tests/integration/examples.rs, which runs `run` on a database of its own.
#[cfg(not(test))]
mod common;

use std::time::Duration;

use anyhow::Context;
use oban_core::config::{Config, QueueConfig};
use oban_core::job::Job;
use oban_core::node::Node;
use oban_core::worker::{Outcome, WorkResult, Worker, WorkerOptions};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio::sync::mpsc;

/// A welcome email's args, as this or any other Oban runtime writes them.
#[derive(Debug, Serialize, Deserialize)]
pub struct Welcome {
    pub user_id: i64,
    pub email: String,
    /// `#[serde(default)]`: jobs written before this key existed still decode.
    #[serde(default)]
    pub locale: Option<String>,
}

/// "Sends" welcome emails, onto a channel so that [`run`] sees them.
pub struct SendWelcome {
    outbox: mpsc::UnboundedSender<String>,
}

impl Worker for SendWelcome {
    const NAME: &'static str = "MyApp.Workers.SendWelcome";
    const OPTIONS: WorkerOptions = WorkerOptions {
        queue: "mailers",
        max_attempts: 5,
        ..WorkerOptions::DEFAULT
    };
    type Args = Welcome;

    async fn process(&self, welcome: Welcome, _job: &Job) -> WorkResult {
        let greeting = match welcome.locale.as_deref() {
            Some("fr") => "Bienvenue",
            _ => "Welcome",
        };
        // An `Err` is recorded in the job's errors and retried with backoff.
        self.outbox.send(format!(
            "{greeting}, {} (user {})",
            welcome.email, welcome.user_id
        ))?;
        Ok(Outcome::complete())
    }
}

/// Starts a node running `mailers`, enqueues one welcome, and returns the email it "sent".
pub async fn run(pool: PgPool) -> anyhow::Result<String> {
    let (outbox, mut sent) = mpsc::unbounded_channel();
    let config = Config {
        queues: vec![QueueConfig::new("mailers", 10)],
        ..Config::default()
    };
    let node = Node::builder(pool)
        .config(config)
        .worker(SendWelcome { outbox })?
        .start()
        .await?;
    // `new_job` takes the typed args and applies the worker's queue and attempts.
    let welcome = Welcome {
        user_id: 42,
        email: "ada@example.com".into(),
        locale: Some("fr".into()),
    };
    node.client()
        .insert(&SendWelcome::new_job(&welcome)?)
        .await?;
    let email = tokio::time::timeout(Duration::from_secs(60), sent.recv())
        .await
        .context("the job did not run within a minute")?
        .context("the worker is gone")?;
    node.shutdown().await;
    Ok(email)
}

#[cfg(not(test))]
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let pool = common::connect().await?;
    println!("sent: {}", run(pool).await?);
    Ok(())
}
