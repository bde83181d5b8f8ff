//! Every job end emits one `tracing` event with oban-py's keys, in its order and units.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::{
    Scripted, database, fast_config, start_scripted, wait_for_state, with_dispatch,
};
use oban_core::testing::perform_job;
use oban_core::worker::Worker;
use serde_json::json;
use tracing::Dispatch;
use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};

/// One event's fields, in the order they were recorded.
type EventFields = Vec<(String, String)>;

/// Fields of each event on target `oban` (from this test's runtime only: see `with_dispatch`).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<EventFields>>>);

struct Fields(Vec<(String, String)>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name().to_owned(), value.to_owned()));
    }
}

impl<S: tracing::Subscriber> Layer<S> for Captured {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() == "oban" {
            let mut fields = Fields(Vec::new());
            event.record(&mut fields);
            self.0.lock().unwrap().push(fields.0);
        }
    }
}

#[test]
fn job_end_events_carry_oban_pys_keys_in_order() {
    let captured = Captured::default();
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(captured.clone()));
    with_dispatch(dispatch, async move {
        let (pool, client, _) = database().await;
        let node = start_scripted(&pool, fast_config(&[("default", 2)])).await;
        // Runs 300 ms, after waiting 3 s since it was due: in milliseconds, neither is within
        // a factor of 1,000 of the other units' figures.
        let ok: i64 = sqlx::query_scalar(
            "INSERT INTO oban_jobs (worker, args, scheduled_at) VALUES \
             ('Test.Scripted', '{\"do\": \"sleep\", \"ms\": 300}', \
              timezone('UTC', now()) - interval '3 seconds') RETURNING id",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        let failing = client
            .insert(&Scripted::new_job(&json!({"do": "error"})).unwrap())
            .await
            .unwrap()
            .id;
        wait_for_state(&pool, ok, "completed").await;
        wait_for_state(&pool, failing, "retryable").await;
        node.shutdown().await;
        tokio::time::sleep(Duration::from_millis(50)).await;

        let events = captured.0.lock().unwrap().clone();
        let find = |id: i64| {
            events
                .iter()
                .find(|fields| {
                    fields
                        .iter()
                        .any(|(k, v)| k == "id" && v == &id.to_string())
                })
                .unwrap_or_else(|| panic!("no event for job {id}: {events:?}"))
        };
        let keys = |fields: &Vec<(String, String)>| -> Vec<String> {
            fields
                .iter()
                .map(|(k, _)| k.clone())
                .filter(|k| k != "message")
                .collect()
        };
        let value = |fields: &Vec<(String, String)>, key: &str| {
            fields.iter().find(|(k, _)| k == key).unwrap().1.clone()
        };
        let stop = find(ok);
        assert_eq!(
            keys(stop),
            [
                "id",
                "worker",
                "queue",
                "attempt",
                "max_attempts",
                "args",
                "meta",
                "tags",
                "event",
                "state",
                "duration",
                "queue_time"
            ]
        );
        assert_eq!(value(stop, "event"), "oban.job.stop");
        assert_eq!(value(stop, "state"), "completed");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&value(stop, "args")).unwrap(),
            json!({"do": "sleep", "ms": 300})
        );
        let milliseconds = |key: &str| -> f64 { value(stop, key).parse().unwrap() };
        let duration = milliseconds("duration");
        assert!(
            (300.0..30_000.0).contains(&duration),
            "duration is in milliseconds: {duration}"
        );
        // About 3,000 whatever the load; a little under is possible, as the claim's clock
        // (its transaction's start) may read before the insert's own now(). Seconds would
        // read 3, microseconds 3,000,000.
        let queue_time = milliseconds("queue_time");
        assert!(
            (2_500.0..60_000.0).contains(&queue_time),
            "queue_time is in milliseconds: {queue_time}"
        );
        let exception = find(failing);
        assert_eq!(
            keys(exception),
            [
                "id",
                "worker",
                "queue",
                "attempt",
                "max_attempts",
                "args",
                "meta",
                "tags",
                "event",
                "state",
                "error_message",
                "duration",
                "queue_time"
            ]
        );
        assert_eq!(value(exception, "event"), "oban.job.exception");
        assert_eq!(value(exception, "state"), "retryable");
        assert_eq!(value(exception, "error_message"), "boom");
    });
}

#[test]
fn perform_job_emits_the_job_end_event_a_node_emits() {
    let captured = Captured::default();
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(captured.clone()));
    with_dispatch(dispatch, async {
        for args in [json!({"do": "ok"}), json!({"do": "error"})] {
            let job = Scripted::new_job(&args).unwrap();
            perform_job(&Scripted, &job).await;
        }
    });
    let events = captured.0.lock().unwrap().clone();
    let value = |fields: &EventFields, key: &str| {
        let found = fields.iter().find(|(k, _)| k == key);
        found.map(|(_, v)| v.clone()).unwrap_or_default()
    };
    let ends: Vec<(String, String, String)> = events
        .iter()
        .map(|e| (value(e, "event"), value(e, "state"), value(e, "worker")))
        .collect();
    assert_eq!(
        ends,
        [
            (
                "oban.job.stop".into(),
                "completed".into(),
                "Test.Scripted".into()
            ),
            (
                "oban.job.exception".into(),
                "retryable".into(),
                "Test.Scripted".into()
            ),
        ],
        "{events:?}"
    );
}
