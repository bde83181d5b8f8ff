//! Typed workers against a real PostgreSQL: a worker receives its args decoded into its own
//! type, on a node and in `drain_queue` alike; args that do not decode are discarded at once
//! with an error entry naming the worker and the field, never retried (such jobs built with
//! the worker's options by `NewJob::for_worker`); a worker declaring
//! `serde_json::Value` gets any JSON as it is.

use std::sync::{Arc, Mutex};

use crate::support::{database, fast_config, state_of, wait_for_state};
use oban_core::drain::{DrainCounts, DrainOptions};
use oban_core::insert::NewJob;
use oban_core::job::Job;
use oban_core::node::Node;
use oban_core::worker::{Outcome, Registry, WorkResult, Worker, WorkerOptions};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u64,
    items: Vec<Item>,
    #[serde(default)]
    note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Item {
    name: String,
    quantity: u32,
}

/// Records the args each run receives, typed as `A`.
struct Recorder<A>(Arc<Mutex<Vec<A>>>);

impl<A> Recorder<A> {
    fn new() -> (Self, Arc<Mutex<Vec<A>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        (Self(seen.clone()), seen)
    }
}

impl Worker for Recorder<Order> {
    const NAME: &'static str = "Test.Orders";
    const OPTIONS: WorkerOptions = WorkerOptions {
        queue: "orders",
        max_attempts: 3,
        priority: 2,
        ..WorkerOptions::DEFAULT
    };
    type Args = Order;

    async fn process(&self, order: Order, _job: &Job) -> WorkResult {
        self.0.lock().unwrap().push(order);
        Ok(Outcome::complete())
    }
}

impl Worker for Recorder<Value> {
    const NAME: &'static str = "Test.Raw";
    const OPTIONS: WorkerOptions = WorkerOptions {
        queue: "raw",
        ..WorkerOptions::DEFAULT
    };
    type Args = Value;

    async fn process(&self, args: Value, job: &Job) -> WorkResult {
        assert_eq!(args, job.args, "raw args are the job's args");
        self.0.lock().unwrap().push(args);
        Ok(Outcome::complete())
    }
}

fn order() -> Order {
    Order {
        id: 7,
        items: vec![
            Item {
                name: "badge".into(),
                quantity: 2,
            },
            Item {
                name: "lanyard".into(),
                quantity: 1,
            },
        ],
        note: None,
    }
}

#[tokio::test]
async fn a_typed_worker_receives_its_args_decoded_on_a_node() {
    let (pool, client, _) = database().await;
    let (worker, seen) = Recorder::<Order>::new();
    let node = Node::builder(pool.clone())
        .config(fast_config(&[("orders", 2)]))
        .worker(worker)
        .unwrap()
        .start()
        .await
        .unwrap();
    let job = Recorder::<Order>::new_job(&order()).unwrap();
    assert_eq!(
        job.args(),
        &json!({"id": 7, "items": [{"name": "badge", "quantity": 2}, {"name": "lanyard", "quantity": 1}], "note": null}),
        "new_job writes the typed args as JSON"
    );
    // Written by another runtime: keys in another order, an optional key left out.
    let elixir = NewJob::new(
        Recorder::<Order>::NAME,
        &json!({"items": [], "id": 8, "extra": "ignored"}),
    )
    .unwrap()
    .queue("orders");
    let ids = [
        client.insert(&job).await.unwrap().id,
        client.insert(&elixir).await.unwrap().id,
    ];
    for id in ids {
        wait_for_state(&pool, id, "completed").await;
    }
    node.shutdown().await;
    let mut seen = seen.lock().unwrap().clone();
    seen.sort_by_key(|order| order.id);
    let elixir = Order {
        id: 8,
        items: Vec::new(),
        note: None,
    };
    assert_eq!(seen, [order(), elixir]);
}

#[tokio::test]
async fn args_that_do_not_decode_are_discarded_at_once_naming_the_field() {
    let (pool, client, _) = database().await;
    let (worker, seen) = Recorder::<Order>::new();
    let mut registry = Registry::default();
    registry.register(worker).unwrap();
    let cases = [
        (
            json!({"id": 1, "items": [{"name": "badge", "quantity": 1}, {"name": 7, "quantity": 1}]}),
            "items[1].name: invalid type: integer `7`, expected a string",
        ),
        (json!({"items": []}), "missing field `id`"),
        (
            json!({"id": -1, "items": []}),
            "id: invalid value: integer `-1`, expected u64",
        ),
        (
            json!({"id": 1, "items": {"name": "badge"}}),
            "items: invalid type: map, expected a sequence",
        ),
    ];
    let mut ids = Vec::new();
    for (args, _) in &cases {
        // Built as tests of bad input build them: the worker's options, args that do not decode.
        let job = NewJob::for_worker::<Recorder<Order>>(args.clone()).unwrap();
        assert_eq!(job.args(), args);
        ids.push(client.insert(&job).await.unwrap().id);
    }
    let counts = client
        .drain_queue("orders", &registry, DrainOptions::default())
        .await
        .unwrap();
    assert_eq!(
        counts,
        DrainCounts {
            discard: cases.len() as u64,
            ..DrainCounts::default()
        },
        "a decoding failure is a discard, not a failure to retry"
    );
    assert!(
        seen.lock().unwrap().is_empty(),
        "the worker never runs on bad args"
    );
    for ((_, reason), id) in cases.iter().zip(ids) {
        let (state, attempt, max_attempts, priority, error): (String, i32, i32, i32, String) =
            sqlx::query_as(
                "SELECT state::text, attempt, max_attempts, priority, errors[1]->>'error' \
                 FROM oban_jobs WHERE id = $1",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!((state.as_str(), attempt), ("discarded", 1), "{error}");
        assert_eq!(
            (max_attempts, priority),
            (3, 2),
            "the job carries the worker's options"
        );
        assert_eq!(
            error,
            format!("Test.Orders: args do not decode as integration::worker::Order: {reason}")
        );
    }
}

#[tokio::test]
async fn a_raw_value_worker_gets_any_json_as_it_is() {
    let (pool, client, _) = database().await;
    let (worker, seen) = Recorder::<Value>::new();
    let mut registry = Registry::default();
    registry.register(worker).unwrap();
    let args = [
        json!({"nested": {"list": [1, 2.5, "three", null]}, "flag": true}),
        json!({"list": [1, "two"], "unicode": "Zoë 👋"}),
        json!({}),
    ];
    let mut ids = Vec::new();
    for args in &args {
        let job = Recorder::<Value>::new_job(args).unwrap();
        ids.push(client.insert(&job).await.unwrap().id);
    }
    let counts = client
        .drain_queue("raw", &registry, DrainOptions::default())
        .await
        .unwrap();
    assert_eq!(counts.success, args.len() as u64);
    for id in ids {
        assert_eq!(state_of(&pool, id).await, "completed");
    }
    let mut seen = seen.lock().unwrap().clone();
    let mut expected = args.to_vec();
    seen.sort_by_key(Value::to_string);
    expected.sort_by_key(Value::to_string);
    assert_eq!(seen, expected);
}
