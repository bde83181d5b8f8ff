//! `badge-forge work` through PgBouncer in transaction mode (Debian's `pgbouncer`, started on
//! loopback by `oban_core::testing::TempPgBouncer`), with `--no-statement-cache`: every statement goes
//! through the pooler, which gives the node 3 server connections for its 10 pool connections.
//! LISTEN cannot work through such a pooler: with `--listen-url` straight to PostgreSQL the node
//! wakes at once; without it, it says so in one line and runs on polling. Its live page and
//! `/metrics` read the database through the pooler too.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{
    BADGE_FORGE, ONE_AT_A_TIME, assert_confirmed_once, count, database, free_port, get, output_dir,
    signal, wait_for_count,
};
use oban_core::testing::TempPgBouncer;
use sqlx::PgPool;

/// The warning the node logs once when it cannot LISTEN.
const POLLING_LINE: &str = "running on polling";

/// A `badge-forge work` whose log goes to a file.
struct LoggedNode {
    child: Child,
    log: PathBuf,
}

impl LoggedNode {
    fn start(url: &str, output: &Path, extra: &[&str]) -> Self {
        let log = output.join("node.log");
        let child = Command::new(BADGE_FORGE)
            .args([
                "work",
                "--database-url",
                url,
                "--no-statement-cache",
                "--node",
                "pooled",
            ])
            .arg("--output")
            .arg(output)
            .args(extra)
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start badge-forge work");
        Self { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn terminate(mut self) -> String {
        signal(self.child.id() as i32, "-TERM");
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "badge-forge work exited with {status}: {}",
            self.log()
        );
        self.log()
    }
}

impl Drop for LoggedNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `badge-forge enqueue` through the pooler: `count` badges, seeded by `seed` (ids included).
fn enqueue(url: &str, count: usize, seed: u64) {
    let status = Command::new(BADGE_FORGE)
        .args(["enqueue", "--no-statement-cache", "--database-url", url])
        .args(["--count", &count.to_string(), "--seed", &seed.to_string()])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(
        status.success(),
        "badge-forge enqueue through PgBouncer failed"
    );
}

/// Every badge completed on its first attempt with one confirmation; returns the longest wait
/// in seconds from insert to claim.
async fn assert_done_once(pool: &PgPool, expected: i64) -> f64 {
    let tally = assert_confirmed_once(pool, expected).await;
    assert_eq!(
        tally.first_attempt, expected,
        "badges rendered more than once"
    );
    sqlx::query_scalar(
        "SELECT coalesce(max(extract(epoch FROM attempted_at - inserted_at)), 0)::float8 \
         FROM oban_jobs WHERE queue = 'badges' AND state = 'completed'",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Query failures a pooler can cause (named statements, notifications mid-query).
fn assert_no_database_errors(log: &str) {
    for symptom in [
        "prepared statement",
        "NotificationResponse",
        "claim failed",
        "ack failed",
        "failed",
    ] {
        assert!(
            !log.contains(symptom),
            "the node logged {symptom:?}:\n{log}"
        );
    }
}

/// The node's `/metrics` and live page, served at `address`, answer with what their queries
/// through the pooler found: the database up, `badges` rendered, and the newest badge listed.
async fn assert_dashboard_shows(address: SocketAddr, pool: &PgPool, badges: i64) {
    let metrics = get(address, "/metrics", None).await;
    assert_eq!(metrics.status, 200, "/metrics: {}", metrics.body);
    for line in [
        "badge_forge_up{component=\"database\"} 1".to_owned(),
        format!("badge_forge_badges_rendered_total {badges}"),
    ] {
        assert!(
            metrics.body.lines().any(|sample| sample == line),
            "/metrics has no {line:?}:\n{}",
            metrics.body
        );
    }
    let newest = count(
        pool,
        "SELECT max(id) FROM oban_jobs WHERE queue = 'badges' AND state = 'completed'",
    )
    .await;
    let page = get(address, "/", None).await;
    assert_eq!(page.status, 200, "/: {}", page.body);
    assert!(
        !page.body.contains("unavailable"),
        "the live page's queries failed:\n{}",
        page.body
    );
    assert!(
        page.body.contains(&format!("job {newest} ")),
        "the live page does not list the newest badge (job {newest}):\n{}",
        page.body
    );
}

/// A backend of this database LISTENing on an Oban channel: the node's listener is ready.
const LISTENING: &str = "SELECT least(count(*), 1) FROM pg_stat_activity \
     WHERE datname = current_database() AND query LIKE 'LISTEN%oban_%' AND query NOT LIKE '%probe%'";

#[tokio::test(flavor = "multi_thread")]
async fn through_pgbouncer_with_a_direct_listener_every_wake_up_is_instant() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (pool, url) = database().await;
    let bouncer = TempPgBouncer::start(&url, 3).unwrap();
    let pooled = bouncer.url(&url).unwrap();
    let output = output_dir("pgbouncer-listen");
    // A 30 s poll: any job claimed within a second was woken by a notification.
    let node = LoggedNode::start(
        &pooled,
        &output,
        &["--listen-url", &url, "--poll-interval", "30"],
    );
    wait_for_count(
        &pool,
        "the direct listener",
        LISTENING,
        1,
        Duration::from_secs(20),
    )
    .await;
    let started = Instant::now();
    for batch in 0..5 {
        enqueue(&pooled, 40, 100 + batch);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let done = "SELECT count(*) FROM oban_jobs WHERE queue = 'badges' AND state = 'completed'";
    wait_for_count(&pool, "200 badges", done, 200, Duration::from_secs(60)).await;
    let took = started.elapsed();
    let log = node.terminate();
    let waited = assert_done_once(&pool, 200).await;
    assert_no_database_errors(&log);
    assert!(
        !log.contains(POLLING_LINE),
        "the direct listener was not heard:\n{log}"
    );
    assert!(
        waited < 5.0,
        "a job waited {waited:.2} s: wake-ups did not arrive (poll is 30 s)"
    );
    let server_side = bouncer.log();
    assert!(
        !server_side.contains("when not linked"),
        "a LISTEN went through PgBouncer:\n{server_side}"
    );
    println!(
        "deploy pgbouncer: 200 badges through PgBouncer (transaction mode, 3 server connections) in {took:.2?}, \
         LISTEN direct: longest insert-to-claim {:.0} ms with a 30 s poll",
        waited * 1000.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn through_pgbouncer_without_a_listener_it_says_so_once_and_polls() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (pool, url) = database().await;
    let bouncer = TempPgBouncer::start(&url, 3).unwrap();
    let pooled = bouncer.url(&url).unwrap();
    let output = output_dir("pgbouncer-poll");
    let address = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let node = LoggedNode::start(
        &pooled,
        &output,
        &["--poll-interval", "1", "--http", &address.to_string()],
    );
    // Jobs trickle in, each batch announced on a channel nobody hears: the poll finds each.
    for batch in 0..12 {
        enqueue(&pooled, 5, 200 + batch);
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let done = "SELECT count(*) FROM oban_jobs WHERE queue = 'badges' AND state = 'completed'";
    wait_for_count(&pool, "60 badges", done, 60, Duration::from_secs(30)).await;
    assert_dashboard_shows(address, &pool, 60).await;
    let log = node.terminate();
    let waited = assert_done_once(&pool, 60).await;
    let warnings: Vec<&str> = log.lines().filter(|line| line.contains("WARN")).collect();
    assert_eq!(warnings.len(), 1, "exactly one warning:\n{log}");
    assert!(
        warnings[0].contains(POLLING_LINE),
        "it says the node polls:\n{log}"
    );
    assert!(
        warnings[0].contains("--listen-url"),
        "it says what to set:\n{log}"
    );
    assert_no_database_errors(&log);
    // Nothing but the 1 s poll wakes this node: no job waits for a slower fallback. The
    // bound leaves a loaded 2-core machine room for late ticks, claims and renders.
    assert!(waited < 10.0, "a job waited {waited:.2} s with a 1 s poll");
    let listening = count(
        &pool,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND query LIKE 'LISTEN%' AND query NOT LIKE '%probe%'",
    )
    .await;
    assert_eq!(
        listening, 0,
        "no server connection was left listening on an Oban channel"
    );
    println!(
        "deploy pgbouncer: no --listen-url: one warning, 60 badges on polling, longest insert-to-claim {:.0} ms (poll 1 s)",
        waited * 1000.0
    );
}
