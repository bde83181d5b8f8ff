//! `drain_queue` against a real PostgreSQL: a queue's jobs run in the caller's task through
//! the node's own claim, execution and ack, and come back counted as `Oban.drain_queue`
//! counts them; scheduled jobs wait unless asked for; limits and recursion work per pass.

use std::time::Duration;

use crate::support::{Scripted, database, state_of};
use oban_core::drain::{DrainCounts, DrainOptions, WithScheduled};
use oban_core::worker::{Registry, Worker};
use serde_json::json;

fn registry() -> Registry {
    let mut registry = Registry::default();
    registry.register(Scripted).unwrap();
    registry
}

#[tokio::test]
async fn drains_available_jobs_and_counts_how_they_ended() {
    let (pool, client, _) = database().await;
    let mut ids = Vec::new();
    for instruction in ["ok", "error", "discard", "cancel", "snooze", "ok"] {
        let job = Scripted::new_job(&json!({"do": instruction})).unwrap();
        ids.push(client.insert(&job).await.unwrap().id);
    }
    let later = Scripted::new_job(&json!({"do": "ok"}))
        .unwrap()
        .schedule_in(Duration::from_secs(3_600));
    let later = client.insert(&later).await.unwrap().id;
    let other_queue = Scripted::new_job(&json!({})).unwrap().queue("elsewhere");
    let other_queue = client.insert(&other_queue).await.unwrap().id;

    let counts = client
        .drain_queue("default", &registry(), DrainOptions::default())
        .await
        .unwrap();
    assert_eq!(
        counts,
        DrainCounts {
            success: 2,
            failure: 1,
            discard: 1,
            cancelled: 1,
            snoozed: 1,
        }
    );
    let mut states = Vec::new();
    for id in ids {
        states.push(state_of(&pool, id).await);
    }
    assert_eq!(
        states,
        [
            "completed",
            "retryable",
            "discarded",
            "cancelled",
            "scheduled",
            "completed"
        ]
    );
    assert_eq!(state_of(&pool, later).await, "scheduled", "not yet due");
    assert_eq!(
        state_of(&pool, other_queue).await,
        "available",
        "another queue"
    );

    // With scheduled jobs: the later one, the retryable and the snoozed run too.
    let counts = client
        .drain_queue(
            "default",
            &registry(),
            DrainOptions {
                with_scheduled: WithScheduled::All,
                ..DrainOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        counts,
        DrainCounts {
            success: 1,
            failure: 1,
            snoozed: 1,
            ..DrainCounts::default()
        }
    );
    assert_eq!(state_of(&pool, later).await, "completed");
}

#[tokio::test]
async fn limits_apply_per_pass_and_recursion_drains_the_rest() {
    let (_, client, _) = database().await;
    for _ in 0..3 {
        client
            .insert(&Scripted::new_job(&json!({"do": "ok"})).unwrap())
            .await
            .unwrap();
    }
    let one = DrainOptions {
        with_limit: Some(1),
        ..DrainOptions::default()
    };
    let counts = client
        .drain_queue("default", &registry(), one)
        .await
        .unwrap();
    assert_eq!(counts.success, 1);
    let recursive = DrainOptions {
        with_recursion: true,
        ..one
    };
    let counts = client
        .drain_queue("default", &registry(), recursive)
        .await
        .unwrap();
    assert_eq!(counts.success, 2);
    let counts = client
        .drain_queue("default", &registry(), DrainOptions::default())
        .await
        .unwrap();
    assert_eq!(counts, DrainCounts::default(), "nothing left");
}
