//! The Badge Forge round trip with a real Elixir peer (`e2e/elixir/peer.exs`) on a real
//! PostgreSQL: Elixir enqueues, the `badge-forge work` binary renders, Elixir's PrintCenter
//! prints. Each test prints what it measured.
//!
//! The tests run one at a time, and not beside the other modules' end-to-end tests
//! (`support::ONE_AT_A_TIME`): each drives two VMs and a database on a 2-core machine.

use std::cell::Cell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::support::{
    ElixirPeer, ONE_AT_A_TIME, PRINTED, RustNode, assert_confirmed_once, assert_printed_once,
    count, database, output_dir, pdftotext, wait_for_count,
};
use oban_core::testing::eventually;
use serde_json::Value;
use sqlx::PgPool;
use sqlx::postgres::PgListener;

const BADGES_DONE: &str = "SELECT count(*) FROM oban_jobs WHERE queue = 'badges' AND state IN ('completed', 'discarded', 'cancelled')";

/// Every badge is confirmed and printed exactly once, and each print is of a PDF showing the
/// name Elixir enqueued.
async fn assert_exactly_one_print_each(pool: &PgPool, expected: i64) {
    assert_confirmed_once(pool, expected).await;
    assert_printed_once(pool, expected).await;
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT p.name, p.path, j.args->>'name' FROM print_log p \
         JOIN oban_jobs j ON j.queue = 'badges' AND coalesce(j.args->>'id', j.args->>'badge_id') = p.id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(
        rows.len() as i64,
        expected,
        "every print matches a badge job"
    );
    for (printed_name, path, enqueued_name) in rows {
        assert_eq!(printed_name, enqueued_name);
        let text: String = pdftotext(&path).split_whitespace().collect();
        let name: String = enqueued_name.split_whitespace().collect();
        assert!(
            text.contains(&name),
            "{path} does not show {enqueued_name:?}: {text:?}"
        );
    }
}

/// Renders beyond one per badge: attempts of completed badge jobs past the first.
async fn duplicate_renders(pool: &PgPool) -> i64 {
    count(pool, "SELECT coalesce(sum(attempt - 1), 0)::int8 FROM oban_jobs WHERE queue = 'badges' AND state = 'completed'").await
}

#[tokio::test(flavor = "multi_thread")]
async fn round_trip_500_badges_from_elixir_to_print_center() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (pool, url) = database().await;
    let output = output_dir("round-trip");
    let peer = ElixirPeer::start(&url, &["print-center", "--node", "elixir-e2e"]);
    let node = RustNode::start(&url, &output, "rust-e2e", &[]);
    let started = Instant::now();
    ElixirPeer::run(&url, &["enqueue", "500"]);
    let took = wait_for_count(&pool, "500 prints", PRINTED, 500, Duration::from_secs(180)).await;
    let total = started.elapsed();
    let (status, _) = node.terminate(Duration::from_secs(15));
    assert!(status.success(), "badge-forge work exited with {status}");
    peer.stop();
    assert_exactly_one_print_each(&pool, 500).await;
    println!(
        "e2e round trip: 500 badges Elixir → Rust → Elixir printed {:.2?} after the enqueue returned, \
         {:.0} badges/s counting the Elixir enqueue (VM start included), duplicates {}",
        took,
        500.0 / total.as_secs_f64(),
        duplicate_renders(&pool).await
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_twice_with_sigkill_and_every_badge_is_printed_exactly_once() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (pool, url) = database().await;
    let output = output_dir("crash");
    let peer = ElixirPeer::start(&url, &["print-center", "--node", "elixir-crash"]);
    // A short rescue window: orphans of a killed node are retried seconds later.
    let flags = ["--rescue-after", "3", "--queue", "badges=8"];
    ElixirPeer::run(&url, &["enqueue", "2000"]);
    let started = Instant::now();
    let mut kills = 0;
    for round in 0..2 {
        let node = RustNode::start(&url, &output, &format!("rust-crash-{round}"), &flags);
        let target = 400 * (round + 1);
        wait_for_count(&pool, "progress before the kill", &format!("SELECT least(count(*), {target}) FROM oban_jobs WHERE queue = 'badges' AND state = 'completed'"), target, Duration::from_secs(120)).await;
        node.kill();
        kills += 1;
    }
    let executing = count(
        &pool,
        "SELECT count(*) FROM oban_jobs WHERE queue = 'badges' AND state = 'executing'",
    )
    .await;
    let node = RustNode::start(&url, &output, "rust-crash-final", &flags);
    wait_for_count(
        &pool,
        "2000 prints",
        PRINTED,
        2000,
        Duration::from_secs(300),
    )
    .await;
    let (status, _) = node.terminate(Duration::from_secs(15));
    assert!(status.success());
    peer.stop();
    assert_exactly_one_print_each(&pool, 2000).await;
    let names: Vec<String> = std::fs::read_dir(&output)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let pdfs: Vec<&String> = names.iter().filter(|name| name.ends_with(".pdf")).collect();
    assert_eq!(pdfs.len(), 2000, "one PDF per badge");
    for name in &pdfs {
        let bytes = std::fs::read(output.join(name)).unwrap();
        assert!(
            bytes.starts_with(b"%PDF-") && bytes.trim_ascii_end().ends_with(b"%%EOF"),
            "{name} is not a whole PDF ({} bytes)",
            bytes.len()
        );
    }
    // Each badge is written as an unnamed file (O_TMPFILE) and linked under its name once
    // whole, so a SIGKILL mid-write leaves no name behind. Only replacing an existing badge
    // passes through a temporary name, between a link and a rename; the kills here land long
    // after the earlier orphans were rendered again. So nothing but the badges is left.
    let temporaries: Vec<&String> = names
        .iter()
        .filter(|name| !name.ends_with(".pdf"))
        .collect();
    assert!(
        temporaries.is_empty(),
        "left in the output directory: {temporaries:?}"
    );
    let duplicates = duplicate_renders(&pool).await;
    // Rescues in all: a job orphaned by both kills was rescued twice.
    let rescued = count(
        &pool,
        "SELECT coalesce(sum((meta->>'rescued')::int8), 0)::int8 FROM oban_jobs WHERE queue = 'badges'",
    )
    .await;
    let still_executing = count(
        &pool,
        "SELECT count(*) FROM oban_jobs WHERE state = 'executing'",
    )
    .await;
    // A job keeps its slot until its ack is written, so a kill orphans at most the node's
    // limit (8): only those run again, and each is rescued, once the final node leads.
    assert_eq!(still_executing, 0, "jobs left executing after the rescue");
    assert!(
        executing <= kills * 8,
        "{executing} jobs orphaned by {kills} kills of 8-slot nodes"
    );
    assert!(
        rescued >= executing && rescued <= kills * 8,
        "{rescued} rescues: every orphan ({executing} at the last kill), at most 8 per kill"
    );
    assert!(
        rescued > 0,
        "the kills orphaned nothing: the test proves nothing"
    );
    assert!(
        duplicates <= rescued,
        "{duplicates} duplicate renders, {rescued} rescues: only orphans run again"
    );
    println!(
        "e2e crash: 2000 badges, {kills} SIGKILLs ({executing} jobs orphaned at the last), {rescued} rescued, \
         {duplicates} duplicate renders, 0 duplicate confirmations, no temporary file left, {:.2?} in all",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn coexists_with_an_elixir_leader_and_its_queue() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (pool, url) = database().await;
    let output = output_dir("coexist");
    let peer = ElixirPeer::start(
        &url,
        &["print-center", "--coexist", "--node", "elixir-leader"],
    );
    let elixir_leader = || async {
        sqlx::query_scalar::<_, String>("SELECT node FROM oban_peers WHERE name = 'Oban'")
            .fetch_optional(&pool)
            .await
            .unwrap()
    };
    assert_eq!(elixir_leader().await.as_deref(), Some("elixir-leader"));
    let node = RustNode::start(&url, &output, "rust-coexist", &[]);
    ElixirPeer::run(&url, &["enqueue", "200"]);
    // The Elixir leader keeps its row at every look until the prints are in.
    let samples = Cell::new(0);
    eventually("200 prints", Duration::from_secs(150), || async {
        assert_eq!(
            elixir_leader().await.as_deref(),
            Some("elixir-leader"),
            "the Rust node took Elixir's leadership"
        );
        samples.set(samples.get() + 1);
        (count(&pool, PRINTED).await >= 200).then_some(())
    })
    .await;
    let samples = samples.get();
    let rust_leader: Option<String> =
        sqlx::query_scalar("SELECT node FROM oban_peers WHERE name = 'Oban.rust'")
            .fetch_optional(&pool)
            .await
            .unwrap();
    let (status, _) = node.terminate(Duration::from_secs(15));
    assert!(status.success());
    let stopped = peer.stop();
    let touched = count(&pool, "SELECT count(*) FROM oban_jobs WHERE queue = 'elixir_only' AND attempted_by[1] = 'rust-coexist'").await;
    let elixir_jobs = count(
        &pool,
        "SELECT count(*) FROM oban_jobs WHERE queue = 'elixir_only' AND state = 'completed'",
    )
    .await;
    assert_eq!(touched, 0, "the Rust node ran a job of Elixir's queue");
    assert!(elixir_jobs > 0, "the Elixir queue ran meanwhile: {stopped}");
    assert_eq!(
        rust_leader.as_deref(),
        Some("rust-coexist"),
        "the Rust node keeps a leadership of its own"
    );
    assert_exactly_one_print_each(&pool, 200).await;
    println!(
        "e2e coexistence: 200 badges beside an Elixir leader; its row held in {samples} samples, {elixir_jobs} elixir_only jobs untouched by Rust"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_from_elixir_is_discarded_and_the_rest_of_the_batch_prints() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (pool, url) = database().await;
    let output = output_dir("bad");
    let peer = ElixirPeer::start(&url, &["print-center", "--node", "elixir-bad"]);
    let node = RustNode::start(&url, &output, "rust-bad", &[]);
    let events = ElixirPeer::run(&url, &["enqueue", "50", "--bad"]);
    let cases: HashMap<i64, String> = events
        .iter()
        .filter(|event| event["event"] == "enqueued" && event["case"] != "ok")
        .map(|event| {
            (
                event["job_id"].as_i64().unwrap(),
                event["case"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        cases.len() >= 7,
        "the peer wrote the malformed cases: {cases:?}"
    );
    wait_for_count(
        &pool,
        "every badge job to end",
        BADGES_DONE,
        50 + cases.len() as i64,
        Duration::from_secs(60),
    )
    .await;
    wait_for_count(&pool, "50 prints", PRINTED, 50, Duration::from_secs(60)).await;
    let (status, _) = node.terminate(Duration::from_secs(15));
    assert!(status.success());
    peer.stop();
    let expected = |case: &str| match case {
        "missing_name" => "missing field `name`",
        "name_not_string" => "name: invalid type",
        "missing_type" => "missing field `type`",
        "unknown_type" => "badge type \"v/ip\" must be",
        "name_10kb" => "long",
        "empty_name" => "name",
        "missing_id" => "missing key \"id\"",
        "control_chars" => "control",
        other => panic!("unexpected case {other}"),
    };
    for (id, case) in &cases {
        let (state, attempt, error): (String, i32, Option<String>) = sqlx::query_as(
            "SELECT state::text, attempt, errors[1]->>'error' FROM oban_jobs WHERE id = $1",
        )
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
        let error = error.unwrap_or_default();
        assert_eq!(
            (state.as_str(), attempt),
            ("discarded", 1),
            "{case}: {error}"
        );
        assert!(
            error
                .to_lowercase()
                .contains(&expected(case).to_lowercase()),
            "{case}: {error:?}"
        );
        assert!(
            error.len() < 600,
            "{case}: the error entry should be short, not echo 10 kB: {} bytes",
            error.len()
        );
    }
    assert_exactly_one_print_each(&pool, 50).await;
    println!(
        "e2e bad input: {} malformed jobs discarded on their first attempt, 50 good badges printed",
        cases.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_mid_run_finishes_in_flight_badges_and_the_restart_finishes_the_rest() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (pool, url) = database().await;
    let output = output_dir("sigterm");
    let peer = ElixirPeer::start(&url, &["print-center", "--node", "elixir-term"]);
    ElixirPeer::run(&url, &["enqueue", "1000"]);
    let node = RustNode::start(&url, &output, "rust-term-1", &[]);
    wait_for_count(
        &pool,
        "progress",
        "SELECT least(count(*), 300) FROM oban_jobs WHERE queue = 'badges' AND state = 'completed'",
        300,
        Duration::from_secs(120),
    )
    .await;
    let (status, exit_time) = node.terminate(Duration::from_secs(12));
    assert!(status.success(), "SIGTERM must end in exit 0, got {status}");
    let orphans = count(&pool, "SELECT count(*) FROM oban_jobs WHERE state = 'executing' AND attempted_by[1] = 'rust-term-1'").await;
    assert_eq!(
        orphans, 0,
        "in-flight badges finished and were acked before exit"
    );
    let done_by_first = count(
        &pool,
        "SELECT count(*) FROM oban_jobs WHERE queue = 'badges' AND state = 'completed'",
    )
    .await;
    let confirmed_by_first = count(
        &pool,
        "SELECT count(*) FROM oban_jobs WHERE queue = 'printing'",
    )
    .await;
    assert_eq!(
        done_by_first, confirmed_by_first,
        "every completed badge was confirmed"
    );
    let node = RustNode::start(&url, &output, "rust-term-2", &[]);
    wait_for_count(
        &pool,
        "1000 prints",
        PRINTED,
        1000,
        Duration::from_secs(180),
    )
    .await;
    let (status, _) = node.terminate(Duration::from_secs(15));
    assert!(status.success());
    peer.stop();
    assert_exactly_one_print_each(&pool, 1000).await;
    assert_eq!(
        duplicate_renders(&pool).await,
        0,
        "a graceful stop re-renders nothing"
    );
    println!(
        "e2e graceful stop: exit 0 in {exit_time:.2?} after SIGTERM with {done_by_first} of 1000 done; the restart finished the rest; 0 duplicates"
    );
}

/// `work --cron`: the Rust node's crontab inserts an Elixir job at the next minute, stamped as
/// Elixir's Cron plugin stamps it, and Elixir's PrintCenter runs it.
#[tokio::test(flavor = "multi_thread")]
async fn a_cron_entry_of_the_rust_node_is_run_by_elixirs_print_center() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (pool, url) = database().await;
    let output = output_dir("cron");
    let pdf = output.join("cron.pdf");
    std::fs::write(&pdf, b"%PDF-1.5\n").unwrap();
    let entry = format!(
        "* * * * * BadgeForge.PrintCenter {}",
        serde_json::json!({"id": "cron-1", "name": "Cron Person", "path": pdf})
    );
    let peer = ElixirPeer::start(&url, &["print-center", "--node", "elixir-cron"]);
    let node = RustNode::start(&url, &output, "rust-cron", &["--cron", &entry]);
    // The first tick is the next minute boundary.
    let printed = "SELECT count(*) FROM print_log WHERE id = 'cron-1'";
    wait_for_count(
        &pool,
        "the cron job printed",
        printed,
        1,
        Duration::from_secs(90),
    )
    .await;
    let (status, _) = node.terminate(Duration::from_secs(15));
    assert!(status.success(), "badge-forge work exited with {status}");
    peer.stop();
    let meta: serde_json::Value = sqlx::query_scalar(
        "SELECT meta FROM oban_jobs WHERE worker = 'BadgeForge.PrintCenter' AND queue = 'printing' ORDER BY id LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(meta["cron"], true, "{meta}");
    assert_eq!(meta["cron_expr"], "* * * * *", "{meta}");
    assert_eq!(meta["cron_tz"], "Etc/UTC", "{meta}");
    assert!(meta["cron_name"].is_string(), "{meta}");
}

/// A print run asked for as a job: the node runs `BadgeForge.PrintRun` when it runs its queue,
/// imposes the badges Elixir enqueued and the node rendered, and Elixir's PrintCenter (the
/// article's, which matches a badge's `id`, `name` and `path`) prints the sheet it confirms.
#[tokio::test(flavor = "multi_thread")]
async fn a_print_run_is_imposed_by_the_node_and_printed_by_elixirs_print_center() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (pool, url) = database().await;
    let output = output_dir("print-run");
    let peer = ElixirPeer::start(&url, &["print-center", "--node", "elixir-runs"]);
    let queues = ["--queue", "badges=16", "--queue", "printing_runs=1"];
    let node = RustNode::start(&url, &output, "rust-runs", &queues);
    ElixirPeer::run(&url, &["enqueue", "30"]);
    wait_for_count(&pool, "30 prints", PRINTED, 30, Duration::from_secs(120)).await;
    let run: i64 = sqlx::query_scalar(
        "INSERT INTO oban_jobs (worker, queue, args, max_attempts) \
         VALUES ('BadgeForge.PrintRun', 'printing_runs', '{\"sort\": \"name\"}', 3) RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let sheet_printed = format!("SELECT count(*) FROM print_log WHERE id = 'print-run-{run}'");
    wait_for_count(
        &pool,
        "the sheet printed",
        &sheet_printed,
        1,
        Duration::from_secs(120),
    )
    .await;
    let (status, _) = node.terminate(Duration::from_secs(15));
    assert!(status.success(), "badge-forge work exited with {status}");
    peer.stop();
    let (name, path): (String, String) =
        sqlx::query_as("SELECT name, path FROM print_log WHERE id = $1")
            .bind(format!("print-run-{run}"))
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(name, format!("print run {run}: 30 badges"));
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM print_log WHERE id NOT LIKE 'print-run-%' ORDER BY name",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let text: String = pdftotext(&path).split_whitespace().collect();
    for name in &names {
        let name: String = name.split_whitespace().collect();
        assert!(text.contains(&name), "{name} is not on the sheet: {text}");
    }
}

/// The next gossip check of `queue` from `node` for which `wanted` holds.
async fn gossip_check(
    tap: &mut PgListener,
    node: &str,
    queue: &str,
    wanted: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let note = tokio::time::timeout(left, tap.recv())
            .await
            .unwrap_or_else(|_| panic!("no such gossip check of {queue} from {node}"))
            .unwrap();
        let payload = oban_core::notifier::decode_payload(note.payload()).unwrap();
        let found = payload["checks"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|check| check["node"] == node && check["queue"] == queue && wanted(check));
        if let Some(check) = found {
            return check.clone();
        }
    }
}

/// Elixir's `Oban.stop_queue/2` and `Oban.start_queue/2`, as the peer sends them: after `stop`
/// the Rust node claims no badge (its gossip shows the queue shutting down), a stop scoped to
/// another node (`local_only` from Elixir, or `node`) changes nothing, and `start` with limit 4
/// runs the queue again.
#[tokio::test(flavor = "multi_thread")]
async fn elixir_stops_and_starts_the_rust_nodes_queue() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (pool, url) = database().await;
    let output = output_dir("queue-control");
    let mut tap = PgListener::connect(&url).await.unwrap();
    tap.listen("public.oban_gossip").await.unwrap();
    let rust = RustNode::start(&url, &output, "rust-ctl", &[]);
    ElixirPeer::run(&url, &["enqueue", "5"]);
    wait_for_count(
        &pool,
        "the first 5 badges",
        BADGES_DONE,
        5,
        Duration::from_secs(60),
    )
    .await;

    // Scoped elsewhere: Elixir's own node (local_only) and another node by name.
    ElixirPeer::run(&url, &["queue", "stop", "badges", "--local-only"]);
    ElixirPeer::run(&url, &["queue", "stop", "badges", "--node", "someone-else"]);
    ElixirPeer::run(&url, &["enqueue", "5"]);
    wait_for_count(
        &pool,
        "5 more badges",
        BADGES_DONE,
        10,
        Duration::from_secs(60),
    )
    .await;

    ElixirPeer::run(&url, &["queue", "stop", "badges"]);
    let stopping = gossip_check(&mut tap, "rust-ctl", "badges", |check| {
        !check["shutdown_started_at"].is_null()
    })
    .await;
    assert_eq!(stopping["paused"], true, "{stopping}");
    ElixirPeer::run(&url, &["enqueue", "20"]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let waiting = count(
        &pool,
        "SELECT count(*) FROM oban_jobs WHERE queue = 'badges' AND state = 'available'",
    )
    .await;
    assert_eq!(waiting, 20, "the stopped queue claimed badges");

    ElixirPeer::run(&url, &["queue", "start", "badges", "--limit", "4"]);
    let started = gossip_check(&mut tap, "rust-ctl", "badges", |check| {
        check["shutdown_started_at"].is_null() && check["local_limit"] == 4
    })
    .await;
    assert_ne!(
        started["uuid"], stopping["uuid"],
        "a new producer runs the queue"
    );
    wait_for_count(
        &pool,
        "the 20 held badges",
        BADGES_DONE,
        30,
        Duration::from_secs(120),
    )
    .await;
    let (status, _) = rust.terminate(Duration::from_secs(15));
    assert!(status.success(), "badge-forge work exited with {status}");
    assert_confirmed_once(&pool, 30).await;
    println!(
        "e2e elixir queue control: stop held 20 badges, start (limit 4) ran them; scoped stops ignored"
    );
}
