//! Badge Forge beside the Python worker it replaces: a real oban-py 0.7 node (`oban start`,
//! PyPI's `oban`, with `e2e/python/badge_forge/generator.py`) and `badge-forge work` drain queue
//! `badges` together, the Elixir peer prints, and each runtime keeps its own leader. Every
//! test prints what it measured.
//!
//! The schema is installed as protocol §1.6 says a mixed deployment must: Elixir's migrations
//! first (`badge-forge migrate`), then oban-py's installer on top.
//!
//! The tests run one at a time, and not beside the other modules' end-to-end tests
//! (`support::ONE_AT_A_TIME`): each drives three runtimes and a database on 2 cores.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::support::{
    BADGE_FORGE, ElixirPeer, ONE_AT_A_TIME, PRINTED, RustNode, assert_confirmed_once,
    assert_printed_once, count, database, empty_database, output_dir, signal, wait_at_most,
    wait_for_count,
};
use oban_core::testing::{eventually, poll_until};
use sqlx::PgPool;

const BADGES_COMPLETED: &str =
    "SELECT count(*) FROM oban_jobs WHERE queue = 'badges' AND state = 'completed'";

fn python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../e2e/python")
}

/// The virtualenv with oban-py, made (once per test binary) by `e2e/python/setup`.
fn oban_py() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let out = Command::new("bash")
            .arg(python_dir().join("setup"))
            .stderr(Stdio::inherit())
            .output()
            .expect("run e2e/python/setup");
        assert!(
            out.status.success(),
            "e2e/python/setup could not provide oban-py 0.7 (see its message above)"
        );
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
}

/// `oban install`: oban-py's schema on top of the Elixir one `database()` migrated.
fn oban_install(url: &str) {
    let out = Command::new(oban_py().join("bin/oban"))
        .args(["install", "--dsn", url])
        .output()
        .expect("run oban install");
    assert!(
        out.status.success(),
        "oban install failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A database as a mixed deployment has it: our (Elixir's) migrations, then oban-py's.
async fn mixed_database() -> (PgPool, String) {
    let (pool, url) = database().await;
    oban_install(&url);
    let comment: Option<String> =
        sqlx::query_scalar("SELECT obj_description('public.oban_jobs'::regclass, 'pg_class')")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        comment.as_deref(),
        Some("14"),
        "oban-py's installer must keep Elixir's version"
    );
    (pool, url)
}

/// An `oban start` process running one queue (`badges` with the Python GenerateBadge).
struct PythonNode {
    child: Child,
    log: PathBuf,
}

impl PythonNode {
    /// Starts the node on `queue` and waits until its producer registered (it then takes jobs).
    async fn start(pool: &PgPool, url: &str, output: &Path, name: &str, queue: &str) -> Self {
        let log = output.join(format!("{name}.log"));
        let child = Command::new(oban_py().join("bin/oban"))
            .args([
                "start",
                "--dsn",
                url,
                "--queues",
                &format!("{queue}:10"),
                "--node",
                name,
            ])
            .args(["--log-level", "WARNING"])
            .current_dir(python_dir())
            .env("PYTHONPATH", python_dir())
            .env("BADGE_FORGE_OUTPUT", output)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start oban (oban-py)");
        let node = Self { child, log };
        let registered = format!(
            "SELECT count(*) FROM oban_producers WHERE node = '{name}' AND queue = '{queue}'"
        );
        let started = poll_until(Duration::from_secs(60), || async {
            (count(pool, &registered).await > 0).then_some(())
        })
        .await;
        assert!(
            started.is_some(),
            "oban-py node {name} did not start: {}",
            std::fs::read_to_string(&node.log).unwrap_or_default()
        );
        node
    }

    /// SIGTERM (oban-py's graceful shutdown), then wait at most `limit` for the exit.
    fn terminate(mut self, limit: Duration) -> (ExitStatus, Duration) {
        let started = Instant::now();
        signal(self.child.id() as i32, "-TERM");
        let status = wait_at_most(&mut self.child, limit)
            .unwrap_or_else(|| panic!("oban-py did not exit within {limit:?} of SIGTERM"));
        (status, started.elapsed())
    }
}

impl Drop for PythonNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `badge-forge enqueue`: badge jobs written by oban-core's insert.
fn rust_enqueue(url: &str, count: usize) {
    let status = Command::new(BADGE_FORGE)
        .args([
            "enqueue",
            "--database-url",
            url,
            "--count",
            &count.to_string(),
        ])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "badge-forge enqueue failed");
}

/// Every badge job completed on its first and only attempt with one confirmation each (see
/// [`assert_confirmed_once`]); with the Elixir peer printing, one print each. Returns badges
/// done per node.
async fn assert_each_badge_once(pool: &PgPool, expected: i64, printed: bool) -> Vec<(String, i64)> {
    let tally = assert_confirmed_once(pool, expected).await;
    assert_eq!(
        tally.first_attempt, expected,
        "badges rendered more than once"
    );
    if printed {
        assert_printed_once(pool, expected).await;
    }
    tally.by_node
}

/// The three leaders: Elixir's `oban_peers` row "Oban", ours "Oban.rust", oban-py's
/// `oban_leaders` row.
async fn leaders(pool: &PgPool) -> (Option<String>, Option<String>, Option<String>) {
    sqlx::query_as(
        "SELECT (SELECT node FROM oban_peers WHERE name = 'Oban'), \
                (SELECT node FROM oban_peers WHERE name = 'Oban.rust'), \
                (SELECT node FROM oban_leaders WHERE name = 'Oban')",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn python_and_rust_drain_2000_badges_together_each_keeping_its_own_leader() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (pool, url) = mixed_database().await;
    let output = output_dir("beside-python");
    let peer = ElixirPeer::start(&url, &["print-center", "--node", "elixir-printer"]);
    let python = PythonNode::start(&pool, &url, &output, "python-1", "badges").await;
    let rust = RustNode::start(&url, &output, "rust-1", &[]);
    let expected = (
        Some("elixir-printer".to_owned()),
        Some("rust-1".to_owned()),
        Some("python-1".to_owned()),
    );
    let elected = poll_until(Duration::from_secs(30), || async {
        (leaders(&pool).await == expected).then_some(())
    })
    .await;
    assert!(
        elected.is_some(),
        "each runtime elects its own leader: {:?}",
        leaders(&pool).await
    );

    ElixirPeer::run(&url, &["enqueue", "2000"]);
    let started = Instant::now();
    let mut samples = 0;
    while count(&pool, PRINTED).await < 2000 {
        assert_eq!(
            leaders(&pool).await,
            expected,
            "a runtime took another's leadership"
        );
        samples += 1;
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "2000 prints did not arrive"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let took = started.elapsed();
    let (status, _) = rust.terminate(Duration::from_secs(15));
    assert!(status.success(), "badge-forge work exited with {status}");
    let (status, _) = python.terminate(Duration::from_secs(20));
    assert!(status.success(), "oban-py exited with {status}");
    peer.stop();

    let by_node = assert_each_badge_once(&pool, 2000, true).await;
    let done = |node: &str| {
        by_node
            .iter()
            .find(|(name, _)| name == node)
            .map_or(0, |(_, n)| *n)
    };
    assert!(
        done("rust-1") > 0 && done("python-1") > 0,
        "both runtimes worked: {by_node:?}"
    );
    assert_eq!(
        done("rust-1") + done("python-1"),
        2000,
        "only the two workers ran badges"
    );
    println!(
        "deploy python: 2000 badges in {took:.2?} ({:.0}/s), Rust {} / Python {}, each exactly once; \
         leaders held in {samples} samples (Elixir oban_peers \"Oban\", ours \"Oban.rust\", oban-py oban_leaders)",
        2000.0 / took.as_secs_f64(),
        done("rust-1"),
        done("python-1"),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn swapping_python_for_rust_mid_run_loses_nothing() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (pool, url) = mixed_database().await;
    let output = output_dir("swap");
    let peer = ElixirPeer::start(&url, &["print-center", "--node", "elixir-swap"]);
    let python = PythonNode::start(&pool, &url, &output, "python-old", "badges").await;
    ElixirPeer::run(&url, &["enqueue", "1000"]);
    let progress =
        "SELECT least(count(*), 300) FROM oban_jobs WHERE queue = 'badges' AND state = 'completed'";
    wait_for_count(
        &pool,
        "Python's progress",
        progress,
        300,
        Duration::from_secs(120),
    )
    .await;

    let rust = RustNode::start(&url, &output, "rust-new", &[]);
    wait_for_count(
        &pool,
        "the Rust node's first badge",
        "SELECT least(count(*), 1) FROM oban_jobs WHERE attempted_by[1] = 'rust-new'",
        1,
        Duration::from_secs(60),
    )
    .await;
    let (status, exit_time) = python.terminate(Duration::from_secs(20));
    assert!(
        status.success(),
        "oban-py exited with {status} after SIGTERM"
    );
    let orphans = count(
        &pool,
        "SELECT count(*) FROM oban_jobs WHERE state = 'executing' AND attempted_by[1] = 'python-old'",
    )
    .await;
    assert_eq!(
        orphans, 0,
        "oban-py finished and acked its running badges before exiting"
    );
    let by_python = count(
        &pool,
        "SELECT count(*) FROM oban_jobs WHERE attempted_by[1] = 'python-old' AND queue = 'badges'",
    )
    .await;

    wait_for_count(
        &pool,
        "1000 prints",
        PRINTED,
        1000,
        Duration::from_secs(180),
    )
    .await;
    let (status, _) = rust.terminate(Duration::from_secs(15));
    assert!(status.success());
    peer.stop();
    let by_node = assert_each_badge_once(&pool, 1000, true).await;
    assert_eq!(
        by_node.len(),
        2,
        "the old and the new node did every badge: {by_node:?}"
    );
    println!(
        "deploy python swap: Python did {by_python} of 1000, exited 0 {exit_time:.2?} after SIGTERM, \
         Rust did the rest; none lost, none twice"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_worker_runs_jobs_that_oban_core_inserted() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (pool, url) = mixed_database().await;
    let output = output_dir("py-runs-rust-jobs");
    let python = PythonNode::start(&pool, &url, &output, "python-only", "badges").await;
    let started = Instant::now();
    rust_enqueue(&url, 200);
    wait_for_count(
        &pool,
        "200 badges by Python",
        BADGES_COMPLETED,
        200,
        Duration::from_secs(60),
    )
    .await;
    let took = started.elapsed();
    let (status, _) = python.terminate(Duration::from_secs(20));
    assert!(status.success());
    let by_node = assert_each_badge_once(&pool, 200, false).await;
    assert_eq!(by_node, vec![("python-only".to_owned(), 200)]);
    // The rows oban-core wrote, as oban-py read them: Elixir's shape, untouched but for the run.
    let untouched = count(
        &pool,
        "SELECT count(*) FROM oban_jobs WHERE queue = 'badges' AND worker = 'badge_forge.generator.GenerateBadge' \
         AND priority = 0 AND errors = '{}' AND meta = '{}' AND tags = '{}' \
         AND args ?& array['id', 'name', 'company', 'type']",
    )
    .await;
    assert_eq!(
        untouched, 200,
        "oban-py ran the rows exactly as oban-core wrote them"
    );
    println!("deploy python: 200 jobs inserted by oban-core run by oban-py in {took:.2?}");
}

/// oban-py's leader row, `(node, elected_at)` as text, if it has one.
async fn python_leader(pool: &PgPool) -> Option<(String, String)> {
    sqlx::query_as("SELECT node, elected_at::text FROM oban_leaders WHERE name = 'Oban'")
        .fetch_optional(pool)
        .await
        .unwrap()
}

/// A Python shop's database, which oban-py's own `oban install` made (no Elixir migrations:
/// no `oban_peers`, `errors` one jsonb array): a Rust node leads through `oban_leaders` under
/// its own name while a real oban-py node leads there under `"Oban"`, stages and runs the
/// retryable and the scheduled badge of its queue (oban-py stages only its own queues), and
/// never touches oban-py's row.
#[tokio::test(flavor = "multi_thread")]
async fn on_a_schema_oban_py_installed_rust_leads_beside_oban_py_and_stages_its_queue() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (pool, url) = empty_database().await;
    oban_install(&url);
    let peers = count(
        &pool,
        "SELECT count(*) FROM pg_class WHERE relname = 'oban_peers'",
    )
    .await;
    assert_eq!(peers, 0, "oban install created oban_peers");
    let output = output_dir("py-installed");
    // A Python node on a queue of its own, so that nothing but the Rust leader stages badges.
    let python = PythonNode::start(&pool, &url, &output, "python-1", "python_only").await;
    let python_row = eventually("oban-py to lead", Duration::from_secs(30), || async {
        python_leader(&pool).await
    })
    .await;
    assert_eq!(python_row.0, "python-1");

    sqlx::query(
        "INSERT INTO oban_jobs (worker, queue, state, attempt, scheduled_at, args) \
         SELECT 'badge_forge.generator.GenerateBadge', 'badges', s.state::oban_job_state, s.attempt, \
                timezone('UTC', now()) - interval '1 second', \
                jsonb_build_object('id', gen_random_uuid()::text, 'name', 'Ada', 'company', 'Analytical', 'type', 'speaker') \
         FROM (VALUES ('retryable', 1), ('scheduled', 0)) AS s(state, attempt)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let rust = RustNode::start(&url, &output, "rust-1", &[]);
    wait_for_count(
        &pool,
        "the retryable and the scheduled badge",
        BADGES_COMPLETED,
        2,
        Duration::from_secs(60),
    )
    .await;
    let ours = count(
        &pool,
        "SELECT count(*) FROM oban_leaders WHERE name = 'Oban.rust' AND node = 'rust-1'",
    )
    .await;
    assert_eq!(
        ours, 1,
        "the Rust node leads in oban_leaders under its own name"
    );
    assert_eq!(
        python_leader(&pool).await,
        Some(python_row.clone()),
        "oban-py's leader row changed"
    );

    let (status, _) = rust.terminate(Duration::from_secs(15));
    assert!(status.success(), "badge-forge work exited with {status}");
    let left = count(
        &pool,
        "SELECT count(*) FROM oban_leaders WHERE name = 'Oban.rust'",
    )
    .await;
    assert_eq!(left, 0, "the Rust leader resigned its row");
    assert_eq!(
        python_leader(&pool).await,
        Some(python_row),
        "oban-py's leader row changed"
    );
    let (status, _) = python.terminate(Duration::from_secs(20));
    assert!(status.success(), "oban-py exited with {status}");
    println!(
        "deploy python-installed: the Rust node led in oban_leaders beside oban-py and staged both badges"
    );
}
