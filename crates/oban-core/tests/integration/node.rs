//! The node against a real PostgreSQL: every outcome as Oban records it, claiming, signals,
//! leadership beside Elixir's, maintenance, graceful shutdown and lost notifications.

use std::time::Duration;

use crate::support::{
    Scripted, Tap, database, eventually, fast_config, start_scripted, state_of, wait_for_state,
    wait_until_listening,
};
use chrono::NaiveDateTime;
use oban_core::insert::NewJob;
use oban_core::notifier::ListenerHealth;
use oban_core::signal::{QueueTarget, Signal};
use oban_core::worker::Worker;
use serde_json::{Value, json};
use sqlx::PgPool;

async fn insert(client: &oban_core::Client, args: Value) -> i64 {
    client
        .insert(&Scripted::new_job(&args).unwrap())
        .await
        .unwrap()
        .id
}

async fn errors_of(pool: &PgPool, id: i64) -> Vec<Value> {
    sqlx::query_scalar("SELECT to_jsonb(errors) FROM oban_jobs WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .map(|errors: Value| errors.as_array().cloned().unwrap_or_default())
        .unwrap()
}

#[tokio::test]
async fn every_outcome_is_recorded_as_oban_records_it() {
    let (pool, client, _) = database().await;
    let node = start_scripted(&pool, fast_config(&[("default", 10)])).await;
    let ok = insert(&client, json!({"do": "ok"})).await;
    let error = insert(&client, json!({"do": "error"})).await;
    let panic = insert(&client, json!({"do": "panic"})).await;
    let timeout = insert(&client, json!({"do": "sleep", "ms": 60_000})).await;
    let discard = insert(&client, json!({"do": "discard"})).await;
    let cancel = insert(&client, json!({"do": "cancel"})).await;
    let snooze = insert(&client, json!({"do": "snooze"})).await;
    let unknown = client
        .insert(&NewJob::new("Nobody.Knows", &json!({})).unwrap())
        .await
        .unwrap()
        .id;

    wait_for_state(&pool, ok, "completed").await;
    for (id, message) in [
        (error, "boom"),
        (panic, "Test.Scripted panicked: worker exploded"),
        (timeout, "Test.Scripted timed out after 1500ms"),
        (unknown, "unknown worker: Nobody.Knows"),
    ] {
        wait_for_state(&pool, id, "retryable").await;
        let errors = errors_of(&pool, id).await;
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0]["attempt"], 1);
        assert_eq!(errors[0]["error"], message);
        let at = errors[0]["at"].as_str().unwrap();
        // Elixir's form: six fractional digits and Z.
        assert!(
            NaiveDateTime::parse_from_str(at, "%Y-%m-%dT%H:%M:%S%.6fZ").is_ok() && at.len() == 27,
            "{at}"
        );
    }
    wait_for_state(&pool, discard, "discarded").await;
    assert_eq!(errors_of(&pool, discard).await[0]["error"], "not fixable");
    wait_for_state(&pool, cancel, "cancelled").await;
    assert_eq!(
        errors_of(&pool, cancel).await[0]["error"],
        "no longer wanted"
    );
    wait_for_state(&pool, snooze, "scheduled").await;
    let (attempt, snoozed, errors): (i32, Value, Value) = sqlx::query_as(
        "SELECT attempt, meta->'snoozed', to_jsonb(errors) FROM oban_jobs WHERE id = $1",
    )
    .bind(snooze)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (attempt, snoozed, errors),
        (0, json!(1), json!([])),
        "a snooze gives the attempt back"
    );

    // Timestamps of the final states are set, and only theirs.
    let stamps: (bool, bool, bool) = sqlx::query_as(
        "SELECT bool_and(completed_at IS NOT NULL) FILTER (WHERE id = $1), \
                bool_and(discarded_at IS NOT NULL AND completed_at IS NULL) FILTER (WHERE id = $2), \
                bool_and(cancelled_at IS NOT NULL) FILTER (WHERE id = $3) FROM oban_jobs",
    )
    .bind(ok)
    .bind(discard)
    .bind(cancel)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(stamps, (true, true, true));
    node.shutdown().await;
}

#[tokio::test]
async fn retries_back_off_within_obans_bounds_and_discard_when_exhausted() {
    let (pool, client, _) = database().await;
    let node = start_scripted(&pool, fast_config(&[("default", 10)])).await;
    let first = insert(&client, json!({"do": "error"})).await;
    wait_for_state(&pool, first, "retryable").await;
    let delay: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM scheduled_at - attempted_at)::float8 FROM oban_jobs WHERE id = $1",
    )
    .bind(first)
    .fetch_one(&pool)
    .await
    .unwrap();
    // Attempt 1: 15 + 2^1 = 17 s plus up to 10 % jitter.
    assert!((16.9..=18.8).contains(&delay), "backoff {delay}s");

    // On the last attempt a failure discards the job.
    let last = client
        .insert(
            &Scripted::new_job(&json!({"do": "error"}))
                .unwrap()
                .max_attempts(1),
        )
        .await
        .unwrap()
        .id;
    wait_for_state(&pool, last, "discarded").await;
    assert_eq!(errors_of(&pool, last).await.len(), 1);
    node.shutdown().await;
}

#[tokio::test]
async fn claims_by_priority_then_time_and_signs_attempted_by() {
    let (pool, client, _) = database().await;
    let mut ids = Vec::new();
    for priority in [3, 0, 2, 0] {
        let job = Scripted::new_job(&json!({"do": "ok"}))
            .unwrap()
            .priority(priority);
        ids.push(client.insert(&job).await.unwrap().id);
    }
    // One slot: jobs run one at a time, in claim order.
    let node = start_scripted(&pool, fast_config(&[("default", 1)])).await;
    eventually("all jobs to complete", Duration::from_secs(10), || async {
        let done: i64 =
            sqlx::query_scalar("SELECT count(*) FROM oban_jobs WHERE state = 'completed'")
                .fetch_one(&pool)
                .await
                .unwrap();
        (done == 4).then_some(())
    })
    .await;
    let order: Vec<i64> = sqlx::query_scalar("SELECT id FROM oban_jobs ORDER BY attempted_at, id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(order, [ids[1], ids[3], ids[2], ids[0]]);
    let status = node.queue_status().await;
    let by: Vec<Vec<String>> = sqlx::query_scalar("SELECT DISTINCT attempted_by FROM oban_jobs")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(
        by,
        [vec![node.config().node.clone(), status[0].uuid.to_string()]]
    );
    node.shutdown().await;
}

#[tokio::test]
async fn completion_and_follow_up_jobs_commit_together_and_a_stale_ack_writes_nothing() {
    let (pool, client, _) = database().await;
    let node = start_scripted(&pool, fast_config(&[("default", 5)])).await;
    let parent = insert(&client, json!({"do": "ok", "follow_up": true})).await;
    wait_for_state(&pool, parent, "completed").await;
    let follow_ups: Vec<(String, String, Value)> =
        sqlx::query_as("SELECT worker, queue, args FROM oban_jobs WHERE queue = 'follow_ups'")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        follow_ups,
        [(
            "Test.FollowUp".into(),
            "follow_ups".into(),
            json!({"parent": parent})
        )]
    );

    // A job rescued while it runs (attempted_at changes): its ack and follow-up are skipped.
    let slow = insert(
        &client,
        json!({"do": "sleep", "ms": 800, "follow_up": true}),
    )
    .await;
    wait_for_state(&pool, slow, "executing").await;
    sqlx::query(
        "UPDATE oban_jobs SET attempted_at = attempted_at - interval '1 hour' WHERE id = $1",
    )
    .bind(slow)
    .execute(&pool)
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        state_of(&pool, slow).await,
        "executing",
        "a guarded ack must not touch a rescued job"
    );
    let extra: i64 =
        sqlx::query_scalar("SELECT count(*) FROM oban_jobs WHERE queue = 'follow_ups'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(extra, 1, "no follow-up for an ack that did not land");
    node.shutdown().await;
}

#[tokio::test]
async fn obeys_pause_resume_scale_and_pkill_signals() {
    let (pool, client, _) = database().await;
    let node = start_scripted(&pool, fast_config(&[("default", 5)])).await;
    wait_until_listening(&node).await;

    client
        .signal(&Signal::Pause(QueueTarget::All), None)
        .await
        .unwrap();
    eventually("pause to apply", Duration::from_secs(5), || async {
        node.queue_status().await[0].paused.then_some(())
    })
    .await;
    let held = insert(&client, json!({"do": "ok"})).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        state_of(&pool, held).await,
        "available",
        "a paused queue claimed a job"
    );

    // Signals for another node are ignored.
    client
        .signal(&Signal::Resume(QueueTarget::All), Some("someone-else"))
        .await
        .unwrap();
    client
        .signal(
            &Signal::Scale {
                queue: "default".into(),
                limit: 2,
            },
            Some(&node.config().node),
        )
        .await
        .unwrap();
    eventually("scale to apply", Duration::from_secs(5), || async {
        (node.queue_status().await[0].limit == 2).then_some(())
    })
    .await;
    assert!(node.queue_status().await[0].paused);
    client
        .signal(&Signal::Resume(QueueTarget::Named("default".into())), None)
        .await
        .unwrap();
    wait_for_state(&pool, held, "completed").await;

    let long = insert(&client, json!({"do": "sleep", "ms": 1000})).await;
    wait_for_state(&pool, long, "executing").await;
    client
        .signal(&Signal::Kill { job_id: long }, None)
        .await
        .unwrap();
    wait_for_state(&pool, long, "cancelled").await;
    assert!(
        errors_of(&pool, long).await[0]["error"]
            .as_str()
            .unwrap()
            .contains("pkill")
    );
    node.shutdown().await;
}

/// `stop` and `start` as Elixir's Midwife obeys them: a stopped queue claims nothing more,
/// finishes what runs while its gossip says it is shutting down, then is gone; `start` runs it
/// again with the given limit, or runs a queue the node was not configured with (whose due
/// retries the leader then stages), and a start for another node changes nothing here.
#[tokio::test]
async fn start_and_stop_signals_run_and_retire_queues() {
    let (pool, client, url) = database().await;
    let node = start_scripted(&pool, fast_config(&[("default", 5)])).await;
    let me = node.config().node.clone();
    wait_until_listening(&node).await;
    let old_uuid = node.queue_status().await[0].uuid;
    let mut gossip = Tap::new(&url, &["gossip"]).await;

    let running = insert(&client, json!({"do": "sleep", "ms": 1000})).await;
    wait_for_state(&pool, running, "executing").await;
    client.stop_queue("default", None).await.unwrap();
    let draining = gossip
        .until(
            "a check of default shutting down",
            Duration::from_secs(10),
            |heard| {
                heard.json["checks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find_map(|check| {
                        (check["queue"] == "default" && !check["shutdown_started_at"].is_null())
                            .then(|| check.clone())
                    })
            },
        )
        .await;
    assert_eq!(draining["paused"], true, "{draining}");
    assert_eq!(draining["uuid"], old_uuid.to_string());
    let held = insert(&client, json!({"do": "ok"})).await;
    wait_for_state(&pool, running, "completed").await;
    eventually(
        "the stopped queue to be gone",
        Duration::from_secs(10),
        || async { node.queue_status().await.is_empty().then_some(()) },
    )
    .await;
    assert_eq!(
        state_of(&pool, held).await,
        "available",
        "a stopped queue claimed a job"
    );

    // Another node's start is not ours; ours starts the queue again, with a new producer.
    client
        .start_queue("default", 3, Some("someone-else"))
        .await
        .unwrap();
    client.start_queue("default", 3, Some(&me)).await.unwrap();
    wait_for_state(&pool, held, "completed").await;
    let status = node.queue_status().await;
    assert_eq!(status.len(), 1, "{status:?}");
    assert_eq!((status[0].queue.as_str(), status[0].limit), ("default", 3));
    assert_ne!(status[0].uuid, old_uuid);

    // A queue this node was never configured with: it runs, and its retries are staged.
    let retry: i64 = sqlx::query_scalar(
        "INSERT INTO oban_jobs (worker, queue, state, attempt, scheduled_at) \
         VALUES ('Test.Scripted', 'extra', 'retryable', 1, timezone('UTC', now()) - interval '1 second') RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    client.start_queue("extra", 2, None).await.unwrap();
    wait_for_state(&pool, retry, "completed").await;
    assert!(
        client.start_queue("extra", 0, None).await.is_err(),
        "a zero limit was sent"
    );
    node.shutdown().await;
}

#[tokio::test]
async fn leads_beside_an_elixir_leader_without_taking_its_row() {
    let (pool, _, _) = database().await;
    sqlx::query(
        "INSERT INTO oban_peers VALUES ('Oban', 'elixir@host', timezone('UTC', now()), timezone('UTC', now()) + interval '30 seconds')",
    )
    .execute(&pool)
    .await
    .unwrap();
    // Rows that live a minute: within this test leadership can move only by resigning, which
    // tells the follower to elect at once; it would otherwise wait for the row to expire.
    let start = |node: &str| {
        let config = oban_core::config::Config {
            node: node.into(),
            leader_interval: Duration::from_secs(60),
            ..fast_config(&[("default", 1)])
        };
        start_scripted(&pool, config)
    };
    let first = start("rust-1").await;
    eventually("rust-1 to lead", Duration::from_secs(10), || async {
        first.is_leader().then_some(())
    })
    .await;
    let second = start("rust-2").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        first.is_leader() && !second.is_leader(),
        "leadership moved while its holder was alive"
    );
    let peers: Vec<(String, String)> =
        sqlx::query_as("SELECT name, node FROM oban_peers ORDER BY name")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        peers,
        [
            ("Oban".into(), "elixir@host".into()),
            ("Oban.rust".into(), "rust-1".into())
        ]
    );

    // Resigning hands over at once, and Elixir's row is still untouched.
    first.shutdown().await;
    eventually("rust-2 to take over", Duration::from_secs(5), || async {
        second.is_leader().then_some(())
    })
    .await;
    let elixir: String = sqlx::query_scalar("SELECT node FROM oban_peers WHERE name = 'Oban'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(elixir, "elixir@host");
    second.shutdown().await;
}

#[tokio::test]
async fn the_leader_stages_rescues_and_prunes_its_queues_only() {
    let (pool, _, _) = database().await;
    // Due scheduled and retryable jobs, an orphan of a dead node, an unclaimable job, old and
    // fresh finished jobs; the same in a queue that belongs to someone else.
    for queue in ["default", "elixir_only"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO oban_jobs (worker, queue, state, scheduled_at, attempt, max_attempts, attempted_at, attempted_by, completed_at, meta) VALUES
             ('Test.Scripted', '{queue}', 'scheduled', timezone('UTC', now()) - interval '1 second', 0, 3, NULL, NULL, NULL, '{{\"tag\": \"staged\"}}'),
             ('Test.Scripted', '{queue}', 'retryable', timezone('UTC', now()) - interval '1 second', 1, 3, NULL, NULL, NULL, '{{\"tag\": \"retried\"}}'),
             ('Test.Scripted', '{queue}', 'executing', timezone('UTC', now()), 1, 3, timezone('UTC', now()) - interval '1 hour', '{{dead-node,00000000-0000-0000-0000-000000000000}}', NULL, '{{\"tag\": \"orphan\"}}'),
             ('Test.Scripted', '{queue}', 'executing', timezone('UTC', now()), 3, 3, timezone('UTC', now()) - interval '1 hour', '{{dead-node,x}}', NULL, '{{\"tag\": \"orphan_exhausted\"}}'),
             ('Test.Scripted', '{queue}', 'completed', timezone('UTC', now()), 1, 3, NULL, NULL, timezone('UTC', now()) - interval '2 days', '{{\"tag\": \"old\"}}'),
             ('Test.Scripted', '{queue}', 'completed', timezone('UTC', now()), 1, 3, NULL, NULL, timezone('UTC', now()), '{{\"tag\": \"fresh\"}}')"
        )))
        .execute(&pool)
        .await
        .unwrap();
    }
    let config = oban_core::config::Config {
        rescue_after: Duration::from_secs(60),
        // Paused from the start would need a signal; a zero-job worker set is simpler: the
        // staged jobs complete, which is what the states below account for.
        ..fast_config(&[("default", 5)])
    };
    let node = start_scripted(&pool, config).await;
    let states = || async {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT queue, meta->>'tag', state::text FROM oban_jobs ORDER BY queue, id",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        rows
    };
    let expected_default = [
        ("staged", "completed"),
        ("retried", "completed"),
        ("orphan", "completed"),
        ("orphan_exhausted", "discarded"),
        ("fresh", "completed"),
    ];
    let rows = eventually(
        "maintenance of queue default",
        Duration::from_secs(15),
        || async {
            let rows = states().await;
            let default: Vec<(&str, &str)> = rows
                .iter()
                .filter(|(queue, _, _)| queue == "default")
                .map(|(_, tag, state)| (tag.as_str(), state.as_str()))
                .collect();
            (default == expected_default).then_some(rows)
        },
    )
    .await;
    let rescued: i64 = sqlx::query_scalar("SELECT (meta->>'rescued')::int8 FROM oban_jobs WHERE queue = 'default' AND meta->>'tag' = 'orphan'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rescued, 1);
    let elixir: Vec<(&str, &str)> = rows
        .iter()
        .filter(|(queue, _, _)| queue == "elixir_only")
        .map(|(_, tag, state)| (tag.as_str(), state.as_str()))
        .collect();
    assert_eq!(
        elixir,
        [
            ("staged", "scheduled"),
            ("retried", "retryable"),
            ("orphan", "executing"),
            ("orphan_exhausted", "executing"),
            ("old", "completed"),
            ("fresh", "completed"),
        ],
        "another runtime's queue was touched"
    );
    node.shutdown().await;
}

/// A job of a live producer is never rescued, however long it runs: a job that runs far past
/// `rescue_after` on another node, which the leader hears gossip from, runs once.
#[tokio::test]
async fn a_live_nodes_long_job_is_never_rescued() {
    let (pool, client, url) = database().await;
    let leader = start_scripted(
        &pool,
        oban_core::config::Config {
            node: "leader".into(),
            maintained_queues: Some(vec!["default".into()]),
            rescue_after: Duration::from_millis(100),
            ..fast_config(&[("elsewhere", 1)])
        },
    )
    .await;
    eventually("the leader to lead", Duration::from_secs(10), || async {
        leader.is_leader().then_some(())
    })
    .await;
    wait_until_listening(&leader).await;
    let mut gossip = Tap::new(&url, &["gossip"]).await;
    let worker = start_scripted(
        &pool,
        oban_core::config::Config {
            node: "worker".into(),
            leadership: false,
            ..fast_config(&[("default", 1)])
        },
    )
    .await;
    gossip
        .until("the worker's check", Duration::from_secs(10), |heard| {
            heard.json["checks"]
                .as_array()?
                .iter()
                .any(|check| check["node"] == "worker")
                .then_some(())
        })
        .await;

    // Twelve times the age rule's window, within Test.Scripted's timeout.
    let long = insert(&client, json!({"do": "sleep", "ms": 1200})).await;
    // Rescued, it would be claimed again, and discarded after its third attempt.
    let ended = eventually("the long job to end", Duration::from_secs(15), || async {
        let row: (String, i32, Value) =
            sqlx::query_as("SELECT state::text, attempt, meta FROM oban_jobs WHERE id = $1")
                .bind(long)
                .fetch_one(&pool)
                .await
                .unwrap();
        ["completed", "discarded"]
            .contains(&row.0.as_str())
            .then_some(row)
    })
    .await;
    assert_eq!(
        ended,
        ("completed".into(), 1, json!({})),
        "the long job ran once and was never rescued"
    );
    worker.shutdown().await;
    leader.shutdown().await;
}

/// oban-py's producers are alive while their `oban_producers` row is touched: a job of a
/// fresh row is never rescued whatever its age, and a job of a row that went stale is rescued
/// at once, whatever its age.
#[tokio::test]
async fn oban_py_producers_are_alive_while_their_row_is_touched() {
    let (pool, _, _) = database().await;
    sqlx::query(
        "CREATE UNLOGGED TABLE oban_producers (uuid uuid PRIMARY KEY, name text NOT NULL DEFAULT 'oban', \
         node text NOT NULL, queue text NOT NULL, meta jsonb NOT NULL DEFAULT '{}', \
         started_at timestamp NOT NULL DEFAULT timezone('UTC', now()), \
         updated_at timestamp NOT NULL DEFAULT timezone('UTC', now()))",
    )
    .execute(&pool)
    .await
    .unwrap();
    let (fresh, stale) = (
        "00000000-0000-0000-0000-0000000000f1",
        "00000000-0000-0000-0000-0000000000f2",
    );
    sqlx::query(
        "INSERT INTO oban_producers (uuid, node, queue, updated_at) VALUES \
         ($1::uuid, 'py-live', 'default', timezone('UTC', now())), \
         ($2::uuid, 'py-dead', 'default', timezone('UTC', now()) - interval '2 minutes')",
    )
    .bind(fresh)
    .bind(stale)
    .execute(&pool)
    .await
    .unwrap();
    let executing = |node: &str, uuid: &str, age: &str| {
        sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!(
            "INSERT INTO oban_jobs (worker, queue, state, attempt, attempted_at, attempted_by) \
             VALUES ('Test.Scripted', 'default', 'executing', 1, timezone('UTC', now()) - interval '{age}', \
             ARRAY['{node}', '{uuid}']) RETURNING id"
        )))
        .fetch_one(&pool)
    };
    let old_but_alive = executing("py-live", fresh, "1 hour").await.unwrap();
    let young_but_dead = executing("py-dead", stale, "1 second").await.unwrap();
    let node = start_scripted(
        &pool,
        oban_core::config::Config {
            rescue_after: Duration::from_secs(60),
            ..fast_config(&[("default", 5)])
        },
    )
    .await;
    assert!(node.schema().oban_producers);
    wait_for_state(&pool, young_but_dead, "completed").await;
    // Several full passes later, the live producer's job is still its own.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(state_of(&pool, old_but_alive).await, "executing");
    node.shutdown().await;
}

/// The leader announces a maintained queue only while it has an available job: one available
/// `badges` job must not wake the nodes of `printing` and `other` every second.
#[tokio::test]
async fn the_stager_announces_only_the_queues_that_have_available_jobs() {
    let (pool, client, url) = database().await;
    let config = oban_core::config::Config {
        // Runs no queue, so the available job stays available.
        maintained_queues: Some(vec!["badges".into(), "printing".into(), "other".into()]),
        ..fast_config(&[])
    };
    let node = start_scripted(&pool, config).await;
    eventually("the node to lead", Duration::from_secs(10), || async {
        node.is_leader().then_some(())
    })
    .await;
    client
        .insert(&Scripted::new_job(&json!({})).unwrap().queue("badges"))
        .await
        .unwrap();
    let mut tap = Tap::new(&url, &["insert"]).await;
    let mut heard = Vec::new();
    // Three announcements of badges span at least two staging runs.
    tap.until(
        "three announcements of badges",
        Duration::from_secs(10),
        |note| {
            heard.push(note.json["queue"].as_str().unwrap_or_default().to_owned());
            (heard.iter().filter(|queue| *queue == "badges").count() == 3).then_some(())
        },
    )
    .await;
    assert!(
        heard.iter().all(|queue| queue == "badges"),
        "announced queues without available jobs: {heard:?}"
    );
    node.shutdown().await;
}

#[tokio::test]
async fn graceful_shutdown_finishes_what_fits_in_the_grace_period_and_leaves_the_rest() {
    let (pool, client, _) = database().await;
    // The grace period fits the 400 ms job many times over on a loaded machine, and the
    // 60 s job (which no timeout ends sooner) not at all.
    let config = oban_core::config::Config {
        shutdown_grace: Duration::from_secs(5),
        ..fast_config(&[("default", 5)])
    };
    let node = start_scripted(&pool, config).await;
    let quick = insert(&client, json!({"do": "sleep", "ms": 400})).await;
    let slow = client
        .insert(&Scripted::new_job(&json!({"do": "sleep", "ms": 60_000, "untimed": true})).unwrap())
        .await
        .unwrap()
        .id;
    wait_for_state(&pool, quick, "executing").await;
    wait_for_state(&pool, slow, "executing").await;
    let later = insert(&client, json!({"do": "ok"})).await;
    let report = node.shutdown().await;
    assert!(!report.drained);
    assert_eq!(
        state_of(&pool, quick).await,
        "completed",
        "an in-flight job that fits the grace period is acked"
    );
    assert_eq!(
        state_of(&pool, slow).await,
        "executing",
        "a job past the grace period is left for rescue"
    );
    assert!(
        errors_of(&pool, slow).await.is_empty(),
        "an abandoned job is not half-written"
    );
    // Inserted while stopping: claimed by nobody, or completed if it was claimed before.
    assert!(["available", "completed"].contains(&state_of(&pool, later).await.as_str()));
    let leaders: i64 = sqlx::query_scalar("SELECT count(*) FROM oban_peers")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(leaders, 0, "leadership is released on shutdown");
}

/// Starts a node whose acks linger 600 s, on queue `default` with `limit` slots, and inserts
/// `jobs` jobs that end one by one, a millisecond apart.
async fn start_lingering(
    pool: &PgPool,
    client: &oban_core::Client,
    limit: usize,
    jobs: u64,
) -> (oban_core::node::NodeHandle, Vec<i64>) {
    let config = oban_core::config::Config {
        ack_linger: Duration::from_secs(600),
        ..fast_config(&[("default", limit)])
    };
    let node = start_scripted(pool, config).await;
    let mut ids = Vec::new();
    for ms in 0..jobs {
        ids.push(insert(client, json!({"do": "sleep", "ms": ms})).await);
    }
    (node, ids)
}

#[tokio::test]
async fn acks_within_the_linger_share_a_statement_and_shutdown_cuts_the_linger_short() {
    let (pool, client, _) = database().await;
    // Twenty jobs stay short of half the slots (30), where the linger would end.
    let (node, ids) = start_lingering(&pool, &client, 60, 20).await;
    let metrics = node.metrics().clone();
    eventually("every job has run", Duration::from_secs(10), || async {
        let ran: u64 = metrics.snapshot().jobs.iter().map(|(_, j)| j.count).sum();
        (ran == 20).then_some(())
    })
    .await;
    assert_eq!(
        metrics.snapshot().acks.0,
        0,
        "no ack is written before the linger is over or the node stops"
    );
    let stopping = std::time::Instant::now();
    let report = node.shutdown().await;
    assert!(report.drained);
    // Anything short of the linger proves it was cut; a minute leaves a loaded machine room.
    assert!(
        stopping.elapsed() < Duration::from_secs(60),
        "shutdown does not wait out a 600 s linger: {:?}",
        stopping.elapsed()
    );
    let (statements, acked, _) = metrics.snapshot().acks;
    assert_eq!(acked, 20);
    assert_eq!(statements, 1, "the twenty acks shared one statement");
    for id in ids {
        assert_eq!(state_of(&pool, id).await, "completed");
    }
}

/// A finished job keeps its slot until its ack is written, so a lingering batch is written as
/// soon as half the node's slots wait on it: the linger cannot idle a busy queue.
#[tokio::test]
async fn a_lingering_batch_is_written_once_half_the_slots_wait_on_it() {
    let (pool, client, _) = database().await;
    let (node, ids) = start_lingering(&pool, &client, 10, 10).await;
    let metrics = node.metrics().clone();
    eventually(
        "a batch written long before the 600 s linger ends",
        Duration::from_secs(10),
        || async {
            let (statements, acked, _) = metrics.snapshot().acks;
            (statements >= 1 && acked >= 5).then_some(())
        },
    )
    .await;
    let mut completed = 0;
    for &id in &ids {
        completed += usize::from(state_of(&pool, id).await == "completed");
    }
    assert!(
        completed >= 5,
        "half the slots' worth of jobs are recorded while the node runs: {completed} of 10"
    );
    assert!(node.shutdown().await.drained);
    for id in ids {
        assert_eq!(state_of(&pool, id).await, "completed");
    }
}

/// With two ack writers, a batch that waits (here on a row lock another transaction holds on
/// its job) no longer holds up the acks finishing after it: they go out in a statement of their
/// own meanwhile. With one writer, B would stay `executing` until the lock is released.
#[tokio::test]
async fn an_ack_blocked_on_a_row_lock_does_not_hold_up_later_acks() {
    let (pool, client, _) = database().await;
    let config = oban_core::config::Config {
        ack_writers: 2,
        ..fast_config(&[("default", 5)])
    };
    let node = start_scripted(&pool, config).await;
    let a = insert(&client, json!({"do": "sleep", "ms": 300})).await;
    wait_for_state(&pool, a, "executing").await;
    let mut blocker = pool.begin().await.unwrap();
    sqlx::query("SELECT id FROM oban_jobs WHERE id = $1 FOR UPDATE")
        .bind(a)
        .execute(&mut *blocker)
        .await
        .unwrap();
    eventually(
        "A's ack to wait on the row lock",
        Duration::from_secs(5),
        || async {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            (waiting >= 1).then_some(())
        },
    )
    .await;
    let b = insert(&client, json!({"do": "ok"})).await;
    eventually(
        "B's ack, written beside A's blocked one",
        Duration::from_secs(5),
        || async { (state_of(&pool, b).await == "completed").then_some(()) },
    )
    .await;
    assert_eq!(
        state_of(&pool, a).await,
        "executing",
        "A's ack waits for the lock"
    );
    blocker.rollback().await.unwrap();
    eventually(
        "A's ack once the lock is gone",
        Duration::from_secs(5),
        || async { (state_of(&pool, a).await == "completed").then_some(()) },
    )
    .await;
    let metrics = node.metrics().clone();
    assert!(node.shutdown().await.drained);
    let (statements, acked, _) = metrics.snapshot().acks;
    assert_eq!((statements, acked), (2, 2), "one statement each, B's first");
}

/// Refuses every ack (an update of an `executing` row) until [`allow_acks`].
async fn refuse_acks(pool: &PgPool) {
    sqlx::raw_sql(
        "CREATE OR REPLACE FUNCTION refuse_ack() RETURNS trigger LANGUAGE plpgsql AS \
           $$ BEGIN RAISE EXCEPTION 'acks refused by the test'; END $$; \
         CREATE TRIGGER refuse_ack BEFORE UPDATE ON oban_jobs FOR EACH ROW \
           WHEN (OLD.state = 'executing') EXECUTE FUNCTION refuse_ack();",
    )
    .execute(pool)
    .await
    .unwrap();
}

async fn allow_acks(pool: &PgPool) {
    sqlx::query("DROP TRIGGER refuse_ack ON oban_jobs")
        .execute(pool)
        .await
        .unwrap();
}

/// Runs three jobs, one after the other so that both writers hold a failing batch, and waits
/// until they have all run.
async fn run_three(client: &oban_core::Client, node: &oban_core::node::NodeHandle) -> Vec<i64> {
    let mut ids = Vec::new();
    for n in 1..=3 {
        ids.push(insert(client, json!({"do": "ok"})).await);
        eventually("the job to run", Duration::from_secs(5), || async {
            let ran: u64 = node
                .metrics()
                .snapshot()
                .jobs
                .iter()
                .map(|(_, j)| j.count)
                .sum();
            (ran == n).then_some(())
        })
        .await;
    }
    ids
}

/// Failing acks are retried, by every writer, until the shutdown deadline: written when the
/// database takes them again in time, abandoned only after the deadline, their jobs left
/// `executing` for the lifeline.
#[tokio::test]
async fn failing_acks_are_retried_until_the_shutdown_deadline_and_only_then_abandoned() {
    let (pool, client, _) = database().await;
    // The acks' deadline is the grace period, but at least 5 s. Retries back off up to 5 s.
    // The patient node's 60 s deadline sets waiting for the retried acks (about 6 s at most,
    // more on a loaded machine) well apart from waiting for the deadline.
    let patient = oban_core::config::Config {
        ack_writers: 2,
        shutdown_grace: Duration::from_secs(60),
        ..fast_config(&[("default", 5)])
    };
    let hasty = oban_core::config::Config {
        shutdown_grace: Duration::from_millis(500),
        ..patient.clone()
    };

    refuse_acks(&pool).await;
    let node = start_scripted(&pool, patient).await;
    let recovered = run_three(&client, &node).await;
    let metrics = node.metrics().clone();
    let stopping = std::time::Instant::now();
    let allow = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        allow_acks(&pool).await;
    };
    let (report, ()) = tokio::join!(node.shutdown(), allow);
    assert!(
        report.drained,
        "the jobs' slots were freed by the retried acks"
    );
    let took = stopping.elapsed();
    assert!(
        (Duration::from_secs(1)..Duration::from_secs(30)).contains(&took),
        "shutdown waited for the retried acks (at most 5 s of backoff), not for the 60 s deadline: {took:?}"
    );
    assert_eq!(metrics.snapshot().acks.1, 3);
    for id in recovered {
        assert_eq!(
            state_of(&pool, id).await,
            "completed",
            "a retried ack was lost"
        );
    }

    refuse_acks(&pool).await;
    let node = start_scripted(&pool, hasty).await;
    let abandoned = run_three(&client, &node).await;
    let metrics = node.metrics().clone();
    let stopping = std::time::Instant::now();
    // Not drained: a job keeps its slot until its ack is written, past this grace period.
    node.shutdown().await;
    let took = stopping.elapsed();
    // Not before the deadline (a timer, exact), and then at once: the upper bound only
    // catches acks retried on past it, and leaves a loaded machine seconds of room.
    assert!(
        (Duration::from_millis(4900)..Duration::from_secs(20)).contains(&took),
        "acks are given up at the 5 s deadline, not before and not much after: {took:?}"
    );
    assert_eq!(metrics.snapshot().acks.1, 0);
    allow_acks(&pool).await;
    for id in abandoned {
        assert_eq!(
            state_of(&pool, id).await,
            "executing",
            "left for the lifeline"
        );
        assert!(errors_of(&pool, id).await.is_empty(), "not half-written");
    }
}

#[tokio::test]
async fn jobs_still_run_when_the_listen_connection_is_killed() {
    let (pool, client, _) = database().await;
    let node = start_scripted(&pool, fast_config(&[("default", 5)])).await;
    wait_until_listening(&node).await;
    for round in 0..3 {
        // After a kill the node can report the listener up before it notices the loss, so wait
        // for its new LISTEN connection rather than for the health.
        eventually(
            &format!("round {round}: one LISTEN connection"),
            Duration::from_secs(10),
            || async {
                let listening: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                     AND query ILIKE 'LISTEN%' AND pid <> pg_backend_pid()",
                )
                .fetch_one(&pool)
                .await
                .unwrap();
                (listening == 1).then_some(())
            },
        )
        .await;
        let killed: i64 = sqlx::query_scalar(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND query ILIKE 'LISTEN%' AND pid <> pg_backend_pid()",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(
            killed, 1,
            "round {round}: expected the node's LISTEN connection"
        );
        let id = insert(&client, json!({"do": "ok"})).await;
        wait_for_state(&pool, id, "completed").await;
        wait_until_listening(&node).await;
    }
    node.shutdown().await;
}

#[tokio::test]
async fn a_node_told_it_is_behind_a_pooler_runs_on_polling_and_reports_the_listener_disabled() {
    let (pool, client, _) = database().await;
    let config = oban_core::config::Config {
        behind_pooler: true,
        ..fast_config(&[("default", 2)])
    };
    let node = start_scripted(&pool, config).await;
    eventually(
        "the listener to report itself disabled",
        Duration::from_secs(5),
        || async { (node.listener_health() == ListenerHealth::Disabled).then_some(()) },
    )
    .await;
    // No LISTEN anywhere, yet jobs run (found by polling).
    let id = insert(&client, json!({"do": "ok"})).await;
    wait_for_state(&pool, id, "completed").await;
    let listening: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(listening, 0);
    node.shutdown().await;
}
