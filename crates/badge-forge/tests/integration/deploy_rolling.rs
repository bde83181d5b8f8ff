//! A rolling restart: during a 5,000-badge run from the Elixir peer, each of two Rust nodes is
//! replaced in turn (start the new one, SIGTERM the old). Nothing is lost, nothing is rendered or
//! confirmed twice, and the test prints the throughput around each swap.

use std::time::{Duration, Instant};

use crate::support::{
    ElixirPeer, ONE_AT_A_TIME, RustNode, assert_confirmed_once, assert_printed_once, count,
    database, output_dir, wait_for_count,
};
use sqlx::PgPool;

const TOTAL: i64 = 5000;
const COMPLETED: &str =
    "SELECT count(*) FROM oban_jobs WHERE queue = 'badges' AND state = 'completed'";

/// Completed badges over time, sampled by a background task.
struct Timeline {
    samples: std::sync::Arc<std::sync::Mutex<Vec<(Duration, i64)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Timeline {
    fn start(pool: PgPool, started: Instant) -> Self {
        let samples = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = samples.clone();
        let task = tokio::spawn(async move {
            loop {
                let done = count(&pool, COMPLETED).await;
                sink.lock().unwrap().push((started.elapsed(), done));
                if done >= TOTAL {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Self { samples, task }
    }

    /// Badges per second over [from, to).
    fn rate(&self, from: Duration, to: Duration) -> f64 {
        let samples = self.samples.lock().unwrap();
        let at = |t: Duration| {
            samples
                .iter()
                .rev()
                .find(|(when, _)| *when <= t)
                .map_or(0, |(_, done)| *done)
        };
        (at(to) - at(from)) as f64 / (to - from).as_secs_f64()
    }

    /// The slowest one-second rate in [from, to).
    fn slowest_second(&self, from: Duration, to: Duration) -> f64 {
        let mut slowest = f64::INFINITY;
        let mut t = from;
        while t + Duration::from_secs(1) <= to {
            slowest = slowest.min(self.rate(t, t + Duration::from_secs(1)));
            t += Duration::from_millis(200);
        }
        slowest
    }
}

/// Starts `new`, waits until it has claimed a badge, then SIGTERMs `old`: the new node and
/// the swap's start and end.
async fn replace(
    pool: &PgPool,
    old: RustNode,
    url: &str,
    output: &std::path::Path,
    new: &str,
    started: Instant,
) -> (RustNode, Duration, Duration) {
    let from = started.elapsed();
    let node = RustNode::start(url, output, new, &[]);
    let claimed =
        format!("SELECT least(count(*), 1) FROM oban_jobs WHERE attempted_by[1] = '{new}'");
    wait_for_count(
        pool,
        &format!("{new}'s first claim"),
        &claimed,
        1,
        Duration::from_secs(30),
    )
    .await;
    let old_name = old.name.clone();
    let (status, _) = old.terminate(Duration::from_secs(15));
    assert!(
        status.success(),
        "{old_name} exited with {status} after SIGTERM"
    );
    let orphans = count(
        pool,
        &format!("SELECT count(*) FROM oban_jobs WHERE state = 'executing' AND attempted_by[1] = '{old_name}'"),
    )
    .await;
    assert_eq!(orphans, 0, "{old_name} left badges executing");
    (node, from, started.elapsed())
}

#[tokio::test(flavor = "multi_thread")]
async fn replacing_both_nodes_one_at_a_time_loses_and_repeats_nothing() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (pool, url) = database().await;
    let output = output_dir("rolling");
    let peer = ElixirPeer::start(&url, &["print-center", "--node", "elixir-rolling"]);
    let a = RustNode::start(&url, &output, "rust-a1", &[]);
    let b = RustNode::start(&url, &output, "rust-b1", &[]);
    ElixirPeer::run(&url, &["enqueue", &TOTAL.to_string()]);
    let started = Instant::now();
    let mut timeline = Timeline::start(pool.clone(), started);

    let progress = |n: i64| {
        format!(
            "SELECT least(count(*), {n}) FROM oban_jobs WHERE queue = 'badges' AND state = 'completed'"
        )
    };
    wait_for_count(
        &pool,
        "1500 badges",
        &progress(1500),
        1500,
        Duration::from_secs(120),
    )
    .await;
    let (a, swap_a_from, swap_a_to) = replace(&pool, a, &url, &output, "rust-a2", started).await;
    wait_for_count(
        &pool,
        "3000 badges",
        &progress(3000),
        3000,
        Duration::from_secs(120),
    )
    .await;
    let (b, swap_b_from, swap_b_to) = replace(&pool, b, &url, &output, "rust-b2", started).await;

    wait_for_count(
        &pool,
        "5000 prints",
        "SELECT count(*) FROM print_log",
        TOTAL,
        Duration::from_secs(180),
    )
    .await;
    let took = started.elapsed();
    (&mut timeline.task).await.unwrap();
    for node in [a, b] {
        let (status, _) = node.terminate(Duration::from_secs(15));
        assert!(status.success());
    }
    peer.stop();

    let tally = assert_confirmed_once(&pool, TOTAL).await;
    assert_eq!(tally.first_attempt, TOTAL, "badges rendered more than once");
    assert_printed_once(&pool, TOTAL).await;
    let by_node = tally.by_node;
    assert_eq!(by_node.len(), 4, "all four nodes worked: {by_node:?}");

    let steady = timeline.rate(
        Duration::from_secs(1),
        swap_a_from.max(Duration::from_secs(2)),
    );
    println!(
        "deploy rolling: {TOTAL} badges in {took:.2?} ({:.0}/s overall), nodes {by_node:?}; steady {steady:.0}/s; \
         swap 1 ({:.1}-{:.1} s): {:.0}/s, slowest second {:.0}/s; swap 2 ({:.1}-{:.1} s): {:.0}/s, slowest second {:.0}/s; \
         0 lost, 0 duplicates",
        TOTAL as f64 / took.as_secs_f64(),
        swap_a_from.as_secs_f64(),
        swap_a_to.as_secs_f64(),
        timeline.rate(
            swap_a_from,
            swap_a_to.max(swap_a_from + Duration::from_secs(1))
        ),
        timeline.slowest_second(swap_a_from, swap_a_to + Duration::from_secs(2)),
        swap_b_from.as_secs_f64(),
        swap_b_to.as_secs_f64(),
        timeline.rate(
            swap_b_from,
            swap_b_to.max(swap_b_from + Duration::from_secs(1))
        ),
        timeline.slowest_second(swap_b_from, swap_b_to + Duration::from_secs(2)),
    );
}
