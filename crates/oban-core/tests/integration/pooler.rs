//! A node whose LISTEN goes through a transaction-mode pooler it was not told about
//! (docs/deploy.md §4): it probes LISTEN on a private channel, hears nothing, warns once with
//! the advice, runs on polling, and probes again only after [`SILENT_RETRY_HEARTBEATS`].
//!
//! Everything goes through Debian's PgBouncer 1.18 in transaction mode. That version does not
//! track named statements, so the pool is declared (`behind_pooler`), as PgBouncer ≥ 1.21 with
//! `max_prepared_statements` would make unnecessary; the listener is pointed at the pooler too
//! (`listen_options`), so nothing tells it that LISTEN cannot work there: the probe must find out.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::support::{
    LogBuffer, Scripted, database, eventually, fast_config, start_scripted, wait_for_state,
    with_dispatch,
};
use oban_core::config::Config;
use oban_core::notifier::{ListenerHealth, SILENT_RETRY_HEARTBEATS};
use oban_core::testing::TempPgBouncer;
use oban_core::worker::Worker;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tracing::Dispatch;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::prelude::*;

/// The line of each unheard probe (the first one also warns).
const UNHEARD: &str = "LISTEN probe unheard";

/// The notifier's warnings, which carry the advice. Other loops may warn too: a probe's one
/// notification can reach another client of the pooler mid-statement (docs/deploy.md §4), and
/// the loop that ran that statement warns and retries; that is not the advice repeated.
const ADVICE: &str = "WARN oban_core::notifier";

/// When each unheard probe was logged, from the lines' own timestamps.
fn probe_times(logs: &LogBuffer) -> Vec<DateTime<Utc>> {
    logs.text()
        .lines()
        .filter(|line| line.contains(UNHEARD))
        .map(|line| {
            let stamp = line.split_whitespace().next().unwrap_or_default();
            stamp
                .parse()
                .unwrap_or_else(|error| panic!("no timestamp ({error}) in {line:?}"))
        })
        .collect()
}

#[test]
fn an_undeclared_pooler_is_probed_warned_about_polled_and_probed_again() {
    let logs = LogBuffer::default();
    let subscriber = tracing_subscriber::registry()
        .with(Targets::new().with_target("oban_core", LevelFilter::DEBUG))
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(logs.clone()),
        );
    with_dispatch(Dispatch::new(subscriber), async {
        let (pool, client, url) = database().await;
        let bouncer = TempPgBouncer::start(&url, 3).unwrap();
        let pooled: PgConnectOptions = bouncer.url(&url).unwrap().parse().unwrap();
        let through_bouncer = PgPoolOptions::new()
            .max_connections(10)
            .connect_with(pooled.clone())
            .await
            .unwrap();
        // A 100 ms heartbeat: a probe lasts 0.3 s and the next comes 6 s later, not 5 minutes.
        let heartbeat = Duration::from_millis(100);
        let retry = heartbeat * SILENT_RETRY_HEARTBEATS;
        let config = Config {
            heartbeat,
            behind_pooler: true,
            listen_options: Some(pooled),
            ..fast_config(&[("default", 5)])
        };
        let node = start_scripted(&through_bouncer, config).await;

        eventually("the first probe to go unheard", retry, || async {
            logs.text().contains(ADVICE).then_some(())
        })
        .await;
        let warnings: Vec<String> = logs
            .text()
            .lines()
            .filter(|line| line.contains(ADVICE))
            .map(str::to_owned)
            .collect();
        assert_eq!(warnings.len(), 1, "one warning: {warnings:?}");
        for advice in ["running on polling", "--listen-url"] {
            assert!(
                warnings[0].contains(advice),
                "the warning says {advice:?}: {warnings:?}"
            );
        }

        // Nothing can wake the node: only its 200 ms poll finds these jobs.
        let mut jobs = Vec::new();
        for _ in 0..10 {
            let job = Scripted::new_job(&json!({"do": "ok"})).unwrap();
            jobs.push(client.insert(&job).await.unwrap().id);
        }
        for id in jobs {
            wait_for_state(&pool, id, "completed").await;
        }
        assert_ne!(node.listener_health(), ListenerHealth::Up);

        let probed = eventually(
            "the probe to be repeated",
            retry + Duration::from_secs(30),
            || async { Some(probe_times(&logs)).filter(|times| times.len() >= 2) },
        )
        .await;
        // A probe leaves a LISTEN behind on a shared server connection: they must stay rare.
        let gap = (probed[1] - probed[0]).to_std().unwrap();
        assert!(
            gap >= retry,
            "probed again {gap:?} after an unheard probe, not {retry:?}"
        );
        let advice = logs.text().matches(ADVICE).count();
        assert_eq!(advice, 1, "the advice is given once:\n{}", logs.text());
        assert_ne!(node.listener_health(), ListenerHealth::Up);
        node.shutdown().await;
    });
}
