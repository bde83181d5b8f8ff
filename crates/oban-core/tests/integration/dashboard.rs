//! What the node publishes for Oban Web, as it arrives on a real PostgreSQL: `gossip` checks,
//! `metrics` reports and the `cronitor` crontab, checked key by key and type by type against
//! what the real Elixir Oban 2.23.1 with Oban Met 1.3.0 sent (`../shared/oban-recordings/`),
//! decoded back into their typed forms, and kept within the payload limit.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::support::{
    Heard, Scripted, Tap, database, fast_config, recording, start_scripted, wait_for_state,
};
use chrono::{DateTime, Utc};
use oban_core::config::{Config, QueueConfig};
use oban_core::cron::CronEntry;
use oban_core::gossip::Check;
use oban_core::insert::NewJob;
use oban_core::met::{MetricValue, MetricsMessage, Sketch};
use oban_core::notifier::{ListenerHealth, MAX_PAYLOAD, decode_payload};
use oban_core::signal::{QueueTarget, Signal};
use oban_core::worker::Worker;
use serde_json::{Value, json};

/// Checks the encoding rule every publisher follows: compact JSON up to 512 bytes, bare
/// base64 of gzip above (never Elixir's `Z:` prefix, which oban-py cannot read), always under
/// PostgreSQL's 8,000-byte limit.
fn assert_encoding(heard: &Heard) {
    assert!(heard.raw.len() <= MAX_PAYLOAD, "{} bytes", heard.raw.len());
    let json = heard.json.to_string();
    if heard.raw.starts_with('{') {
        assert!(heard.raw.len() <= 512, "plain payload over 512 bytes");
        // Compact: same length as serde_json's compact form of the same value.
        assert_eq!(heard.raw.len(), json.len(), "{}", heard.raw);
    } else {
        assert!(heard.raw.starts_with("H4sI"), "{}", heard.raw);
        assert!(json.len() > 512, "small payload compressed: {json}");
    }
}

fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .map(String::as_str)
        .collect()
}

/// `2026-08-02T12:34:56.123456Z`, as Elixir encodes a UTC DateTime.
fn assert_elixir_time(value: &Value) -> DateTime<Utc> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"));
    let bytes = text.as_bytes();
    assert_eq!(bytes.len(), 27, "{text}");
    for (at, byte) in [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
        (26, b'Z'),
    ] {
        assert_eq!(bytes[at], byte, "{text}");
    }
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|error| panic!("{text}: {error}"))
        .with_timezone(&Utc)
}

/// The payloads real Elixir Oban 2.23.1 with Oban Met 1.3.0 sent on `public.oban_<channel>`
/// (`elixir-notifications.jsonl`), decoded.
fn elixir_sent(channel: &str) -> Vec<Value> {
    let channel = format!("public.oban_{channel}");
    recording("elixir-notifications.jsonl")
        .into_iter()
        .filter(|line| line["channel"] == channel.as_str())
        .map(|line| decode_payload(line["payload"].as_str().unwrap()).unwrap())
        .collect()
}

/// What a reader pattern-matches on a JSON value: its kind.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(number) if number.is_i64() || number.is_u64() => "integer",
        Value::Number(_) => "float",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Asserts that `ours` has the keys of the real Elixir's `elixir`, each of the same kind where
/// Elixir's is not null.
fn assert_same_shape(ours: &Value, elixir: &Value) {
    assert_eq!(keys(ours), keys(elixir), "ours: {ours}\nElixir's: {elixir}");
    for (key, theirs) in elixir.as_object().unwrap() {
        if !theirs.is_null() {
            assert_eq!(kind(&ours[key]), kind(theirs), "{key} in {ours}");
        }
    }
}

/// The real Elixir's gossip check (recorded) as ours is written: `local_limit` for its `limit`
/// (oban_met stores it so, and oban-py sends it so) and no optional `refresh_interval`
/// (protocol §8.2).
fn elixir_check() -> Value {
    let mut check = elixir_sent("gossip")[0]["checks"][0].clone();
    let fields = check.as_object_mut().unwrap();
    let limit = fields.remove("limit").expect("Elixir's check has a limit");
    fields.insert("local_limit".into(), limit);
    fields
        .remove("refresh_interval")
        .expect("and a refresh_interval");
    check
}

/// The first metric entry of `series` the real Oban Met sent.
fn elixir_metric(series: &str) -> Value {
    elixir_sent("metrics")
        .iter()
        .flat_map(|message| message["metrics"].as_array().unwrap().clone())
        .find(|entry| entry["series"] == series)
        .unwrap_or_else(|| panic!("no {series} in the recording"))
}

/// Asserts a check's keys and JSON types; returns it decoded.
fn assert_check_shape(check: &Value) -> Check {
    assert_same_shape(check, &elixir_check());
    for key in ["node", "name", "queue", "uuid"] {
        assert!(check[key].is_string(), "{key} in {check}");
    }
    assert!(check["local_limit"].is_u64(), "{check}");
    assert!(check["paused"].is_boolean(), "{check}");
    assert!(
        check["running"]
            .as_array()
            .unwrap()
            .iter()
            .all(Value::is_i64),
        "{check}"
    );
    assert_elixir_time(&check["started_at"]);
    assert_elixir_time(&check["updated_at"]);
    if !check["shutdown_started_at"].is_null() {
        assert_elixir_time(&check["shutdown_started_at"]);
    }
    uuid::Uuid::parse_str(check["uuid"].as_str().unwrap()).unwrap();
    serde_json::from_value(check.clone()).unwrap()
}

async fn insert(client: &oban_core::Client, queue: &str, args: Value) -> i64 {
    client
        .insert(&Scripted::new_job(&args).unwrap().queue(queue))
        .await
        .unwrap()
        .id
}

#[tokio::test]
async fn gossip_checks_carry_what_oban_web_reads() {
    let (pool, client, url) = database().await;
    let mut tap = Tap::new(&url, &["gossip"]).await;
    let config = fast_config(&[("alpha", 2), ("beta", 7)]);
    let node_name = config.node.clone();
    let node = start_scripted(&pool, config).await;
    let sleeping = [
        insert(&client, "alpha", json!({"do": "sleep", "ms": 4_000})).await,
        insert(&client, "alpha", json!({"do": "sleep", "ms": 4_000})).await,
    ];
    // A signal sent before the node listens is lost (PostgreSQL keeps no notifications).
    crate::support::eventually("the node to listen", Duration::from_secs(10), || async {
        (node.listener_health() == ListenerHealth::Up).then_some(())
    })
    .await;
    client
        .signal(&Signal::Pause(QueueTarget::Named("beta".into())), None)
        .await
        .unwrap();

    // A message in which alpha runs both jobs and beta is paused.
    let checks = tap
        .until(
            "a gossip check with both jobs running",
            Duration::from_secs(10),
            |heard| {
                assert_eq!(heard.channel, "public.oban_gossip");
                assert_encoding(heard);
                assert_eq!(keys(&heard.json), BTreeSet::from(["checks"]));
                let checks: Vec<Check> = heard.json["checks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(assert_check_shape)
                    .collect();
                let ready = checks.len() == 2
                    && checks
                        .iter()
                        .any(|c| c.queue == "alpha" && c.running.len() == 2)
                    && checks.iter().any(|c| c.queue == "beta" && c.paused);
                ready.then_some(checks)
            },
        )
        .await;
    let alpha = checks.iter().find(|check| check.queue == "alpha").unwrap();
    let beta = checks.iter().find(|check| check.queue == "beta").unwrap();
    assert_eq!((alpha.local_limit, beta.local_limit), (2, 7));
    assert_eq!((alpha.paused, beta.paused), (false, true));
    assert_eq!(beta.running, Vec::<i64>::new());
    let mut running = alpha.running.clone();
    running.sort_unstable();
    assert_eq!(running, sleeping.to_vec());
    for check in &checks {
        assert_eq!(
            (check.node.as_str(), check.name.as_str()),
            (node_name.as_str(), "Oban")
        );
        assert_eq!(check.shutdown_started_at, None);
        assert!(check.updated_at.unwrap() >= check.started_at);
        assert!((Utc::now() - check.started_at).num_seconds() < 30);
    }

    // Oban Web takes executing jobs for orphans unless a check's uuid is attempted_by[2].
    let attempted_by: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT id, attempted_by[1], attempted_by[2] FROM oban_jobs WHERE state = 'executing' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(attempted_by.len(), 2);
    for (_, node_of_job, uuid) in &attempted_by {
        assert_eq!(node_of_job, &node_name);
        assert_eq!(uuid, &alpha.uuid.to_string());
    }
    assert_ne!(alpha.uuid, beta.uuid);

    // The decoded checks equal what the node reports about itself.
    let statuses = node.queue_status().await;
    for status in &statuses {
        let check = checks
            .iter()
            .find(|check| check.queue == status.queue)
            .unwrap();
        assert_eq!(
            (check.uuid, check.local_limit),
            (status.uuid, status.limit as u64)
        );
        // Microsecond precision on the wire.
        assert_eq!(
            check.started_at.timestamp_micros(),
            status.started_at.timestamp_micros()
        );
    }
    node.shutdown().await;
}

#[tokio::test]
async fn shutdown_ends_with_a_terminating_check_per_queue() {
    let (pool, client, url) = database().await;
    let node = start_scripted(&pool, fast_config(&[("alpha", 2), ("beta", 2)])).await;
    let job = insert(&client, "alpha", json!({"do": "sleep", "ms": 600})).await;
    wait_for_state(&pool, job, "executing").await;
    let mut tap = Tap::new(&url, &["gossip"]).await;
    // Both queues announced first: a queue that starts and stops between two gossip ticks
    // (a loaded machine can delay the first) was never heard, and has nothing to end.
    tap.until("a check of both queues", Duration::from_secs(10), |heard| {
        let queues: Vec<&str> = heard.json["checks"]
            .as_array()?
            .iter()
            .filter_map(|check| check["queue"].as_str())
            .collect();
        (queues.contains(&"alpha") && queues.contains(&"beta")).then_some(())
    })
    .await;
    let report = node.shutdown().await;
    assert!(report.drained);
    wait_for_state(&pool, job, "completed").await;

    // Every check sent after shutdown began is marked; the last ones show no running jobs.
    let mut last: BTreeMap<String, Check> = BTreeMap::new();
    while let Ok(heard) = tokio::time::timeout(
        Duration::from_millis(300),
        tap.next("gossip", Duration::from_secs(1)),
    )
    .await
    {
        for check in heard.json["checks"].as_array().unwrap() {
            let check = assert_check_shape(check);
            last.insert(check.queue.clone(), check);
        }
    }
    assert_eq!(last.len(), 2, "{last:?}");
    for check in last.values() {
        let stopping = check.shutdown_started_at.expect("shutdown_started_at set");
        assert!(stopping >= check.started_at);
        assert!(
            check.paused,
            "a stopping queue reads as paused, as in Elixir"
        );
        assert!(check.running.is_empty());
    }
}

/// Every entry of a metrics message, after checking the envelope.
fn metric_entries(heard: &Heard, node: &str) -> Vec<Value> {
    assert_eq!(heard.channel, "public.oban_metrics");
    assert_encoding(heard);
    assert_same_shape(&heard.json, &elixir_sent("metrics")[0]);
    assert_eq!(heard.json["name"], "Oban");
    assert_eq!(heard.json["node"], node);
    let time = heard.json["time"].as_i64().expect("integer unix seconds");
    assert!((Utc::now().timestamp() - time).abs() <= 5, "{time}");
    let decoded: MetricsMessage = serde_json::from_value(heard.json.clone()).unwrap();
    assert_eq!(decoded.time, time);
    heard.json["metrics"].as_array().unwrap().clone()
}

/// Asserts an exec entry's shape; returns (series, state, queue, worker, value).
fn assert_exec_shape(entry: &Value) -> (String, String, String, String, MetricValue) {
    let series = entry["series"].as_str().unwrap();
    let elixir = elixir_metric(series);
    assert_same_shape(entry, &elixir);
    assert_same_shape(&entry["value"], &elixir["value"]);
    match series {
        "exec_time" | "wait_time" => {
            let data = entry["value"]["data"].as_object().unwrap();
            let mut total = 0;
            for (bin, count) in data {
                bin.parse::<i32>().unwrap_or_else(|_| panic!("bin {bin:?}"));
                total += count.as_u64().unwrap();
            }
            assert_eq!(Some(total), entry["value"]["size"].as_u64());
        }
        "exec_count" => {
            let data = entry["value"]["data"].as_array().unwrap();
            assert_eq!(data.len(), 1);
            assert!(data[0].as_u64().unwrap() > 0);
        }
        other => panic!("unexpected series {other}"),
    }
    let text = |key: &str| entry[key].as_str().unwrap().to_owned();
    let value: MetricValue = serde_json::from_value(entry["value"].clone()).unwrap();
    (
        text("series"),
        text("state"),
        text("queue"),
        text("worker"),
        value,
    )
}

#[tokio::test]
async fn metrics_report_finished_jobs_as_sketches_in_nanoseconds() {
    let (pool, client, url) = database().await;
    let mut tap = Tap::new(&url, &["metrics"]).await;
    let config = fast_config(&[("alpha", 5)]);
    let node_name = config.node.clone();
    let node = start_scripted(&pool, config).await;
    for _ in 0..3 {
        insert(&client, "alpha", json!({"do": "sleep", "ms": 120})).await;
    }
    insert(&client, "alpha", json!({"do": "error"})).await;

    let mut exec_time: BTreeMap<String, Sketch> = BTreeMap::new();
    let mut wait_time: BTreeMap<String, Sketch> = BTreeMap::new();
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    tap.until(
        "metrics for all four jobs",
        Duration::from_secs(15),
        |heard| {
            for entry in metric_entries(heard, &node_name) {
                let (series, state, queue, worker, value) = assert_exec_shape(&entry);
                assert_eq!(
                    (queue.as_str(), worker.as_str()),
                    ("alpha", "Test.Scripted")
                );
                match (series.as_str(), value) {
                    ("exec_time", MetricValue::Sketch(sketch)) => {
                        merge(exec_time.entry(state).or_default(), sketch)
                    }
                    ("wait_time", MetricValue::Sketch(sketch)) => {
                        merge(wait_time.entry(state).or_default(), sketch)
                    }
                    ("exec_count", MetricValue::Gauge(gauge)) => {
                        *counts.entry(state).or_default() += gauge.data.iter().sum::<u64>()
                    }
                    other => panic!("{other:?}"),
                }
            }
            (counts.values().sum::<u64>() == 4).then_some(())
        },
    )
    .await;
    assert_eq!(
        counts,
        BTreeMap::from([("completed".into(), 3), ("retryable".into(), 1)])
    );
    assert_eq!(exec_time["completed"].size, 3);
    assert_eq!(wait_time["completed"].size, 3);
    // 120 ms of sleep, in nanoseconds: every value lies between the bins of 120 ms and 2 s.
    let (low, high) = (Sketch::bin(120_000_000), Sketch::bin(2_000_000_000));
    for bin in exec_time["completed"].data.keys() {
        assert!(
            (low..=high).contains(bin),
            "bin {bin} outside {low}..={high}"
        );
        assert!(Sketch::bin_value(*bin) >= 0.98 * 120e6);
    }
    // Waits are positive and well under a minute.
    for bin in wait_time.values().flat_map(|sketch| sketch.data.keys()) {
        assert!(
            *bin >= 0 && *bin <= Sketch::bin(60_000_000_000),
            "wait bin {bin}"
        );
    }
    node.shutdown().await;
}

fn merge(into: &mut Sketch, from: Sketch) {
    for (bin, count) in from.data {
        *into.data.entry(bin).or_default() += count;
    }
    into.size += from.size;
}

/// `full_count` gauges, (state, queue) → count, of one message from `node`; `None` if it has
/// none (or comes from a node stopped earlier in the test).
fn full_counts(heard: &Heard, node: &str) -> Option<BTreeMap<(String, String), u64>> {
    if heard.json["node"] != node {
        return None;
    }
    let mut counts = BTreeMap::new();
    for entry in metric_entries(heard, node) {
        if entry["series"] != "full_count" {
            continue;
        }
        let elixir = elixir_metric("full_count");
        assert_same_shape(&entry, &elixir);
        assert_same_shape(&entry["value"], &elixir["value"]);
        let data = entry["value"]["data"].as_array().unwrap();
        assert_eq!(data.len(), 1);
        let key = (
            entry["state"].as_str().unwrap().to_owned(),
            entry["queue"].as_str().unwrap().to_owned(),
        );
        assert!(counts.insert(key, data[0].as_u64().unwrap()).is_none());
    }
    (!counts.is_empty()).then_some(counts)
}

#[tokio::test]
async fn full_counts_come_only_from_a_leader_that_enables_them() {
    let (pool, client, url) = database().await;
    for _ in 0..3 {
        insert(&client, "elsewhere", json!({})).await;
    }
    client
        .insert(
            &NewJob::new("Test.Later", &json!({}))
                .unwrap()
                .queue("elsewhere")
                .schedule_in(Duration::from_secs(3_600)),
        )
        .await
        .unwrap();
    let mut tap = Tap::new(&url, &["metrics"]).await;

    // Default configuration: never any full_count, even when leading.
    let config = fast_config(&[("alpha", 1)]);
    let quiet_name = config.node.clone();
    let quiet = start_scripted(&pool, config).await;
    let done = insert(&client, "alpha", json!({})).await;
    wait_for_state(&pool, done, "completed").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while let Ok(heard) =
        tokio::time::timeout_at(deadline, tap.next("metrics", Duration::from_secs(5))).await
    {
        assert_eq!(full_counts(&heard, &quiet_name), None);
    }
    assert!(
        quiet.is_leader(),
        "the quiet node led, and still sent no counts"
    );
    quiet.shutdown().await;

    // Enabled on a node that does not lead: still none.
    let follower = Config {
        full_counts: true,
        leadership: false,
        ..fast_config(&[("alpha", 1)])
    };
    let follower_name = follower.node.clone();
    let follower = start_scripted(&pool, follower).await;
    insert(&client, "alpha", json!({})).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let mut heard_any = false;
    while let Ok(heard) =
        tokio::time::timeout_at(deadline, tap.next("metrics", Duration::from_secs(5))).await
    {
        heard_any |= heard.json["node"] == follower_name.as_str();
        assert_eq!(full_counts(&heard, &follower_name), None);
    }
    assert!(heard_any, "the follower sent its exec metrics");
    follower.shutdown().await;

    // Enabled on the leader: counts per state × queue, every interval.
    let leader = Config {
        full_counts: true,
        full_count_estimate_limit: 3,
        ..fast_config(&[("alpha", 1)])
    };
    let leader_name = leader.node.clone();
    let leader = start_scripted(&pool, leader).await;
    let first = tap
        .until("full counts", Duration::from_secs(10), |heard| {
            full_counts(heard, &leader_name)
        })
        .await;
    assert_eq!(
        first.get(&("available".into(), "elsewhere".into())),
        Some(&3)
    );
    assert_eq!(
        first.get(&("scheduled".into(), "elsewhere".into())),
        Some(&1)
    );
    assert_eq!(first.get(&("completed".into(), "alpha".into())), Some(&2));
    assert!(
        !first.keys().any(|(state, _)| state == "executing"),
        "no zero counts: {first:?}"
    );

    // `available` reached the estimate limit (3): from now on it comes from the planner.
    sqlx::query("ANALYZE oban_jobs")
        .execute(&pool)
        .await
        .unwrap();
    let estimated = tap
        .until("estimated counts", Duration::from_secs(10), |heard| {
            full_counts(heard, &leader_name)
                .filter(|counts| counts.contains_key(&("available".into(), "alpha".into())))
        })
        .await;
    // Estimated for every queue seen so far, including one with no available job at all; the
    // planner never estimates fewer than one row.
    assert!(estimated[&("available".into(), "elsewhere".into())] >= 1);
    assert!(estimated[&("available".into(), "alpha".into())] >= 1);
    assert_eq!(
        estimated.get(&("scheduled".into(), "elsewhere".into())),
        Some(&1)
    );
    leader.shutdown().await;
}

#[tokio::test]
async fn many_queues_are_split_within_the_payload_limit() {
    let (pool, client, url) = database().await;
    let mut tap = Tap::new(&url, &["gossip", "metrics"]).await;
    let queues: Vec<String> = (0..200)
        .map(|i| format!("a_queue_with_a_fairly_long_descriptive_name_{i:03}"))
        .collect();
    let config = Config {
        queues: queues
            .iter()
            .map(|name| QueueConfig::new(name, 3))
            .collect(),
        // 200 producers polling five times a second would load the test machine for nothing.
        poll_interval: Duration::from_secs(2),
        ..fast_config(&[])
    };
    let node_name = config.node.clone();
    let node = start_scripted(&pool, config).await;
    let jobs: Vec<NewJob> = queues
        .iter()
        .map(|queue| Scripted::new_job(&json!({})).unwrap().queue(queue))
        .collect();
    client.insert_all(&jobs).await.unwrap();

    let mut checked: BTreeSet<String> = BTreeSet::new();
    let mut counted: BTreeSet<String> = BTreeSet::new();
    let mut most_checks = 0;
    tap.until(
        "every queue in checks and metrics",
        Duration::from_secs(30),
        |heard| {
            assert_encoding(heard);
            if heard.channel == "public.oban_gossip" {
                let checks = heard.json["checks"].as_array().unwrap();
                most_checks = most_checks.max(checks.len());
                for check in checks {
                    checked.insert(assert_check_shape(check).queue);
                }
            } else {
                // 600 repetitive entries still fit compressed; splitting them is unit-tested.
                for entry in metric_entries(heard, &node_name) {
                    counted.insert(assert_exec_shape(&entry).2);
                }
            }
            (checked.len() == queues.len() && counted.len() == queues.len()).then_some(())
        },
    )
    .await;
    // Each round of 200 checks was split: it does not fit one notification even compressed.
    assert!(
        most_checks < queues.len(),
        "{most_checks} checks in one message"
    );
    assert!(most_checks > 1, "split further than needed: {most_checks}");
    node.shutdown().await;
}

/// What real Oban Met sent reads with this crate's types, and its metrics write back as the
/// same JSON.
#[test]
fn real_oban_met_payloads_read_with_these_types() {
    let messages = elixir_sent("metrics");
    assert!(
        messages
            .iter()
            .any(|m| !m["metrics"].as_array().unwrap().is_empty())
    );
    for message in messages {
        let decoded: MetricsMessage = serde_json::from_value(message.clone()).unwrap();
        assert_eq!(serde_json::to_value(&decoded).unwrap(), message);
    }
    for message in elixir_sent("gossip") {
        for check in message["checks"].as_array().unwrap() {
            let decoded: Check = serde_json::from_value(check.clone()).unwrap();
            assert_eq!(Some(decoded.local_limit), check["limit"].as_u64());
            assert_eq!(decoded.uuid.to_string(), check["uuid"].as_str().unwrap());
        }
    }
}

#[tokio::test]
async fn the_crontab_is_published_as_oban_mets_cronitor_does() {
    let recorded = recording("elixir-cronitor.jsonl").remove(0);
    let elixir = decode_payload(recorded["payload"].as_str().unwrap()).unwrap();
    // The same two entries as the recorded Elixir crontab.
    let crontab: Vec<CronEntry> = elixir["crontab"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            let options = &entry[2];
            let mut job = NewJob::new(entry[1].as_str().unwrap(), &options["args"])
                .unwrap()
                .queue("printing");
            if let Some(max_attempts) = options["max_attempts"].as_i64() {
                job = job.max_attempts(max_attempts as i32);
            }
            CronEntry::new(entry[0].as_str().unwrap(), job).unwrap()
        })
        .collect();
    let names: Vec<String> = crontab.iter().map(CronEntry::name).collect();
    let (pool, _client, url) = database().await;
    let mut tap = Tap::new(&url, &["cronitor"]).await;
    let config = Config {
        crontab,
        ..fast_config(&[])
    };
    let node_name = config.node.clone();
    let node = start_scripted(&pool, config).await;
    let heard = tap
        .next("a cronitor message", Duration::from_secs(20))
        .await;
    node.shutdown().await;

    assert_encoding(&heard);
    let ours = &heard.json;
    assert_eq!(keys(ours), keys(&elixir));
    assert_eq!(ours["name"], elixir["name"]);
    assert_eq!(ours["node"], node_name);
    let (ours, theirs) = (
        ours["crontab"].as_array().unwrap(),
        elixir["crontab"].as_array().unwrap(),
    );
    assert_eq!(ours.len(), theirs.len());
    for ((entry, elixir), name) in ours.iter().zip(theirs).zip(&names) {
        assert_eq!((&entry[0], &entry[1]), (&elixir[0], &elixir[1]));
        // Every option Elixir lists, with its value; then the name Oban Web finds jobs by
        // (meta.cron_name) and the queue, which Elixir leaves to the worker module.
        for (key, value) in elixir[2].as_object().unwrap() {
            assert_eq!(&entry[2][key], value, "{key} in {entry}");
        }
        assert_eq!(entry[2]["name"], json!(name));
        let extra: BTreeSet<&str> = keys(&entry[2])
            .difference(&keys(&elixir[2]))
            .copied()
            .collect();
        assert_eq!(extra, BTreeSet::from(["name", "queue"]), "{entry}");
    }
}

/// `Client::count_jobs`, what a dashboard or CLI reads queue depth from: exact counts per queue
/// of the states asked for, other states left out, and no row for an empty pair.
#[tokio::test]
async fn count_jobs_counts_each_queue_in_the_states_asked_for() {
    use oban_core::client::JobCount;
    use oban_core::job::JobState;

    let (pool, client, _) = database().await;
    let job = |queue: &str| NewJob::new("W", &json!({})).unwrap().queue(queue);
    client
        .insert_all(&[job("a"), job("a"), job("b"), job("b"), job("b")])
        .await
        .unwrap();
    sqlx::query("UPDATE oban_jobs SET state = 'completed' WHERE id = (SELECT min(id) FROM oban_jobs WHERE queue = 'b')")
        .execute(&pool)
        .await
        .unwrap();

    let mut counts = client
        .count_jobs(&[JobState::Available, JobState::Discarded])
        .await
        .unwrap();
    counts.sort_by(|x, y| x.queue.cmp(&y.queue));
    let available = |queue: &str, count| JobCount {
        queue: queue.to_owned(),
        state: JobState::Available,
        count,
    };
    assert_eq!(counts, [available("a", 2), available("b", 2)]);
}
