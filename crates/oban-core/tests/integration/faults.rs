//! The node's fault suite (issue 5), on real PostgreSQL clusters of its own: server restarts
//! (`-m fast` and `-m immediate`), killed backends, SIGKILLed nodes, pool exhaustion, a retry
//! storm, priority under a flood, a long-held snapshot and a soak.
//!
//! Each scenario prints one line starting with `FAULTS |`: a row of the table in
//! `docs/reliability.md` (jobs expected, completed, duplicated, lost, recovery time, and its
//! figures as ratios against a baseline measured in the same run), then asserts what the issue
//! asks. Scenarios run one at a time so that their figures do not disturb each other, each on a
//! private cluster (restarting a shared server would break every other test).
//!
//! Sizes (environment): `FAULTS_SOAK_JOBS` (no-op jobs of the soak, default 50,000; the issue's
//! full size is 1,000,000) and `FAULTS_LONG_TX_SECS` (how long the snapshot is held, default 30).
//! Run just this suite with
//! `cargo test --release -p oban-core --test integration faults:: -- --nocapture`.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::{Duration, Instant};

use bench_support::soak::{Flatness, Sample, print_curve};
use oban_core::config::{Config, QueueConfig};
use oban_core::job::Job;
use oban_core::node::{Node, NodeHandle};
use oban_core::notifier::ListenerHealth;
use oban_core::testing::{StopMode, TempPostgres, TempPostgresBuilder, eventually, poll_until};
use oban_core::worker::{Outcome, WorkResult, Worker, WorkerOptions};
use oban_core::{Prefix, schema};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::Mutex;

/// The scenarios measure throughput: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// The queue every scenario runs.
const QUEUE: &str = "faults";

/// `application_name` of the node's connections, so that a scenario can find (and kill) them.
const NODE_APP: &str = "faults-node";

// ---------------------------------------------------------------------------------------------
// A private cluster
// ---------------------------------------------------------------------------------------------

/// A private cluster with a migrated `postgres` database and an admin pool on it.
struct Cluster {
    pg: Arc<TempPostgres>,
    admin: PgPool,
}

impl Cluster {
    /// Starts a cluster configured by `builder`, with `synchronous_commit` on as in
    /// production (the default tuning turns it off, and then a crash may lose commits the node
    /// was told about, which is a property of that setting, not of the node).
    async fn start(builder: TempPostgresBuilder) -> Self {
        // `RUST_LOG=oban_core=debug` shows what the node does during a scenario.
        if std::env::var_os("RUST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_test_writer()
                .try_init();
        }
        let builder = builder.setting("synchronous_commit", "on");
        let pg = tokio::task::spawn_blocking(move || builder.start())
            .await
            .unwrap()
            .expect("a private PostgreSQL cluster (see scripts/test)");
        let admin = PgPoolOptions::new()
            .max_connections(3)
            .connect(pg.url())
            .await
            .unwrap();
        schema::migrate(&admin, &Prefix::default()).await.unwrap();
        Self {
            pg: Arc::new(pg),
            admin,
        }
    }

    /// Connection options of the `postgres` database as `user`, tagged with `application_name`.
    fn options(&self, user: &str, app: &str) -> PgConnectOptions {
        self.pg
            .url()
            .parse::<PgConnectOptions>()
            .unwrap()
            .username(user)
            .application_name(app)
    }

    /// A pool for a node: at most `size` connections, the 10 s acquire timeout `badge-forge`
    /// uses, tagged [`NODE_APP`].
    async fn node_pool(&self, size: u32) -> PgPool {
        PgPoolOptions::new()
            .max_connections(size)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(self.options("postgres", NODE_APP))
            .await
            .unwrap()
    }

    /// Restarts the server in `mode`; returns how long it was unavailable.
    async fn restart(&self, mode: StopMode) -> Duration {
        let pg = self.pg.clone();
        let started = Instant::now();
        tokio::task::spawn_blocking(move || pg.restart(mode))
            .await
            .unwrap()
            .unwrap();
        started.elapsed()
    }

    async fn scalar(&self, query: &str) -> i64 {
        // The admin pool may hold connections that a restart broke: retry on fresh ones.
        let mut error = None;
        for _ in 0..3 {
            match sqlx::query_scalar(sqlx::AssertSqlSafe(query.to_owned()))
                .fetch_one(&self.admin)
                .await
            {
                Ok(value) => return value,
                Err(e) => error = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{query} failed three times: {error:?}");
    }
}

/// `pg_terminate_backend` on every connection named `app`; returns how many there were.
async fn terminate_backends(admin: &PgPool, app: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(app)
    .fetch_one(admin)
    .await
    .unwrap()
}

/// Inserts `n` jobs of `worker` into [`QUEUE`] in one statement; `args` gets `"n": i` added.
async fn seed(pool: &PgPool, worker: &str, n: i64, args: Value, priority: i32, max_attempts: i32) {
    try_seed(pool, worker, n, args, priority, max_attempts)
        .await
        .unwrap();
}

async fn try_seed(
    pool: &PgPool,
    worker: &str,
    n: i64,
    args: Value,
    priority: i32,
    max_attempts: i32,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO oban_jobs (worker, queue, args, priority, max_attempts) \
         SELECT $1, $2, $3 || jsonb_build_object('n', i), $4, $5 FROM generate_series(1, $6) AS i",
    )
    .bind(worker)
    .bind(QUEUE)
    .bind(args)
    .bind(priority)
    .bind(max_attempts)
    .bind(n)
    .execute(pool)
    .await?;
    Ok(())
}

/// Keeps at least `backlog` jobs of [`Probe`] available in [`QUEUE`] until stopped, riding out
/// database outages, so that a scenario never runs dry whatever the machine's speed.
struct Feeder {
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
    admin: PgPool,
}

impl Feeder {
    fn start(cluster: &Cluster, args: Value, backlog: i64) -> Self {
        Self::up_to(cluster, args, backlog, i64::MAX)
    }

    /// Feeds at most `total` jobs in all.
    fn up_to(cluster: &Cluster, args: Value, backlog: i64, total: i64) -> Self {
        let stop = tokio_util::sync::CancellationToken::new();
        let (admin, stopped) = (cluster.admin.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let mut fed = 0;
            while !stopped.is_cancelled() && fed < total {
                let available: Result<i64, _> = sqlx::query_scalar(
                    "SELECT count(*) FROM oban_jobs WHERE state = 'available' AND queue = $1",
                )
                .bind(QUEUE)
                .fetch_one(&admin)
                .await;
                if matches!(available, Ok(n) if n < backlog) {
                    let batch = backlog.min(total - fed);
                    // Errors (the server is restarting) are retried on the next round.
                    if try_seed(&admin, Probe::NAME, batch, args.clone(), 0, 20)
                        .await
                        .is_ok()
                    {
                        fed += batch;
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Self {
            stop,
            task,
            admin: cluster.admin.clone(),
        }
    }

    /// Whether every job has been fed (for [`Feeder::up_to`]).
    fn done(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops feeding; returns how many jobs of [`Probe`] exist (the expected total).
    async fn stop(self) -> i64 {
        self.stop.cancel();
        self.task.await.unwrap();
        sqlx::query_scalar("SELECT count(*) FROM oban_jobs WHERE worker = $1")
            .bind(Probe::NAME)
            .fetch_one(&self.admin)
            .await
            .unwrap()
    }
}

// ---------------------------------------------------------------------------------------------
// The in-process worker and what it saw
// ---------------------------------------------------------------------------------------------

/// Executions per job id, as the worker saw them.
#[derive(Clone, Default)]
struct Executions(Arc<SyncMutex<HashMap<i64, u32>>>);

impl Executions {
    fn record(&self, id: i64) {
        *self.0.lock().unwrap().entry(id).or_default() += 1;
    }

    /// (distinct jobs run, runs beyond the first).
    fn totals(&self) -> (u64, u64) {
        let runs = self.0.lock().unwrap();
        let extra = runs.values().map(|&n| u64::from(n - 1)).sum();
        (runs.len() as u64, extra)
    }

    fn ran(&self, id: i64) -> bool {
        self.0.lock().unwrap().contains_key(&id)
    }
}

/// Sleeps `args.ms` (default: its own `sleep` ± 50%, uniformly: identical durations would keep
/// jobs that started together finishing together, in waves), then fails if `args.fail`, else
/// completes.
/// With `runs` it records each execution in memory (an entry per job: never in a soak, where
/// that map would be the growth measured). With `args.effect` it first records a side effect
/// in table `effects` (a row per execution, committed on its own as a real job's effect would
/// be), which makes duplicate executions visible across processes.
struct Probe {
    sleep: Duration,
    runs: Option<Executions>,
    effects: Option<PgPool>,
}

impl Worker for Probe {
    const NAME: &'static str = "Faults.Probe";
    const OPTIONS: WorkerOptions = WorkerOptions {
        queue: QUEUE,
        ..WorkerOptions::DEFAULT
    };
    type Args = serde_json::Value;

    async fn process(&self, args: serde_json::Value, job: &Job) -> WorkResult {
        if let Some(runs) = &self.runs {
            runs.record(job.id);
        }
        if let (Some(pool), true) = (&self.effects, args["effect"] == true) {
            sqlx::query("INSERT INTO effects (job_id) VALUES ($1)")
                .bind(job.id)
                .execute(pool)
                .await?;
        }
        let sleep = args["ms"].as_u64().map_or_else(
            || self.sleep.mul_f64(rand::random_range(0.5..1.5)),
            Duration::from_millis,
        );
        if !sleep.is_zero() {
            tokio::time::sleep(sleep).await;
        }
        if args["fail"] == true {
            return Err("the downstream service is down".into());
        }
        Ok(Outcome::complete())
    }
}

/// The node configuration the scenarios share: one queue, production intervals, a rescue
/// window short enough to see rescues within a test.
fn config(limit: usize) -> Config {
    Config {
        queues: vec![QueueConfig::new(QUEUE, limit)],
        rescue_after: Duration::from_secs(10),
        rescue_interval: Duration::from_secs(1),
        ..Config::default()
    }
}

async fn start_node(pool: PgPool, config: Config, worker: Probe) -> NodeHandle {
    Node::builder(pool)
        .config(config)
        .worker(worker)
        .unwrap()
        .start()
        .await
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Throughput over time
// ---------------------------------------------------------------------------------------------

/// Samples the node's acked-jobs counter every 50 ms.
struct Progress {
    samples: Arc<SyncMutex<Vec<(Instant, u64)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    fn start(node: &NodeHandle) -> Self {
        let monitor = node.monitor();
        let samples = Arc::new(SyncMutex::new(Vec::new()));
        let into = samples.clone();
        let task = tokio::spawn(async move {
            loop {
                let acked = monitor.metrics().snapshot().acks.1;
                into.lock().unwrap().push((Instant::now(), acked));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Self { samples, task }
    }

    /// The counter at the last sample taken at or before `at`.
    fn at(&self, at: Instant) -> u64 {
        let samples = self.samples.lock().unwrap();
        samples
            .iter()
            .take_while(|(t, _)| *t <= at)
            .last()
            .map_or(0, |(_, n)| *n)
    }

    /// Acked jobs per second between two instants.
    fn rate(&self, from: Instant, to: Instant) -> f64 {
        (self.at(to) - self.at(from)) as f64 / (to - from).as_secs_f64()
    }

    /// The longest time between `from` and `to` in which the counter did not move.
    fn longest_stall(&self, from: Instant, to: Instant) -> Duration {
        let samples = self.samples.lock().unwrap();
        let mut moved_at = from;
        let mut count = None;
        let mut longest = Duration::ZERO;
        for &(at, n) in samples.iter().filter(|(at, _)| (from..=to).contains(at)) {
            if count.is_some_and(|count| n > count) {
                moved_at = at;
            }
            count = Some(n);
            longest = longest.max(at - moved_at);
        }
        longest
    }

    /// The median of the rates of `seconds` consecutive one-second windows from `from`.
    fn median_rate(&self, from: Instant, seconds: u32) -> f64 {
        let mut rates: Vec<f64> = (0..seconds)
            .map(|i| {
                let start = from + Duration::from_secs(u64::from(i));
                self.rate(start, start + Duration::from_secs(1))
            })
            .collect();
        rates.sort_by(f64::total_cmp);
        rates[rates.len() / 2]
    }

    /// The first instant at or after `after` whose preceding 500 ms ran at `rate` or faster.
    fn reaches(&self, rate: f64, after: Instant) -> Option<Instant> {
        let times: Vec<Instant> = self.samples.lock().unwrap().iter().map(|s| s.0).collect();
        let window = Duration::from_millis(500);
        times
            .into_iter()
            .filter(|t| *t >= after + window)
            .find(|t| self.rate(*t - window, *t) >= rate)
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Waits until `check` holds ([`eventually`]); returns how long that took.
async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    eventually(what, limit, || {
        let holds = check();
        async move { holds.await.then_some(()) }
    })
    .await;
    started.elapsed()
}

// ---------------------------------------------------------------------------------------------
// Reports
// ---------------------------------------------------------------------------------------------

/// One scenario's outcome, printed as a row of docs/reliability.md's table.
struct Report {
    scenario: String,
    expected: u64,
    completed: u64,
    duplicated: u64,
    lost: u64,
    recovery: Option<Duration>,
    figures: String,
}

impl Report {
    fn print(&self) {
        let recovery = self
            .recovery
            .map_or_else(|| "–".to_owned(), |d| format!("{:.2} s", d.as_secs_f64()));
        println!(
            "FAULTS | {} | {} | {} | {} | {} | {} | {} |",
            self.scenario,
            self.expected,
            self.completed,
            self.duplicated,
            self.lost,
            recovery,
            self.figures
        );
    }
}

/// Completed jobs of [`QUEUE`] once every one of `expected` has ended (or after `limit`).
async fn final_completed(cluster: &Cluster, expected: i64, limit: Duration) -> i64 {
    let finished =
        "SELECT count(*) FROM oban_jobs WHERE state IN ('completed', 'discarded', 'cancelled')";
    poll_until(limit, || async {
        (cluster.scalar(finished).await >= expected).then_some(())
    })
    .await;
    cluster
        .scalar("SELECT count(*) FROM oban_jobs WHERE state = 'completed'")
        .await
}

// ---------------------------------------------------------------------------------------------
// 1 and 2: the server goes away under the node
// ---------------------------------------------------------------------------------------------

/// What breaks the node's connections in [`survives`].
#[derive(Clone, Copy, Debug)]
enum Fault {
    Restart(StopMode),
    /// `pg_terminate_backend` on every connection of the node, this many times, 1 s apart.
    TerminateBackends(u32),
}

/// The fraction of the same run's baseline that the throughput must get back to after a
/// fault. The work caps the rate (40 slots of 100–300 ms jobs), so a node that got all of its
/// connections and slots back runs at about 1.0×, less whatever CPU other processes of this
/// shared machine take meanwhile (docs/reliability.md has the measured ratios: loaded runs
/// went down to 0.85×). A node that lost capacity for good runs at the fraction it kept: near
/// zero with a pool that never reopens its connections or a producer that stopped claiming,
/// 0.5× with half its slots held by jobs whose acks the fault lost. 0.6× leaves the machine's
/// swings room and still fails a node that lost 40% of its capacity.
const RECOVERED: f64 = 0.6;

/// Runs 100–300 ms jobs 40 at a time (at most 200 jobs/s: a throughput bound by the work rather
/// than by this shared machine's CPU, whose load swings of ±25% blurred the before/after
/// comparison with 20 and 50 ms jobs), breaks every connection, and measures how fast and how
/// fully the node comes back. Before and after are each the median of six one-second rates, so
/// that a burst of load from another process does not decide the comparison. The durations
/// vary: with equal ones, the 40 jobs restarted together after the fault can keep finishing
/// together, each wave waiting for its acks and the next claim (a run measured 0.86×).
async fn survives(fault: Fault) -> Report {
    let cluster = Cluster::start(TempPostgres::builder()).await;
    // Seconds of work at 200 jobs/s, however slow the feeder's refills get.
    let feeder = Feeder::start(&cluster, json!({}), 1_500);
    let runs = Executions::default();
    let worker = Probe {
        sleep: Duration::from_millis(200),
        runs: Some(runs.clone()),
        effects: None,
    };
    // A 30 s poll: after the fault, claims resume on their own retry and wake-ups come only
    // through a LISTEN that must have been re-established.
    let node_config = Config {
        poll_interval: Duration::from_secs(30),
        ..config(40)
    };
    let node = start_node(cluster.node_pool(10).await, node_config, worker).await;
    let progress = Progress::start(&node);

    tokio::time::sleep(Duration::from_secs(2)).await; // warm-up
    let baseline_from = Instant::now();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let mut fault_at = Instant::now();
    let baseline = progress.median_rate(baseline_from, 6);

    let downtime = match fault {
        Fault::Restart(mode) => cluster.restart(mode).await,
        Fault::TerminateBackends(times) => {
            let mut killed = 0;
            for round in 0..times {
                if round > 0 {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                // Recovery counts from the last blow.
                fault_at = Instant::now();
                killed += terminate_backends(&cluster.admin, NODE_APP).await;
            }
            assert!(
                killed >= i64::from(times),
                "only {killed} backends terminated"
            );
            fault_at.elapsed()
        }
    };
    let fault_over = Instant::now();

    let recovered_at = eventually(
        &format!("{fault:?}: throughput to come back to {RECOVERED}× {baseline:.0} jobs/s"),
        Duration::from_secs(30),
        || async { progress.reaches(RECOVERED * baseline, fault_over) },
    )
    .await;
    let recovery = recovered_at - fault_at;
    let after_from = recovered_at + Duration::from_millis(500);
    tokio::time::sleep_until((after_from + Duration::from_secs(6)).into()).await;
    let after = progress.median_rate(after_from, 6);
    let expected = feeder.stop().await;

    let completed = final_completed(&cluster, expected, Duration::from_secs(60)).await;
    // The listener came back: a job inserted now is announced and runs long before the poll.
    wait_until("the listener to be up", Duration::from_secs(15), || async {
        node.listener_health() == ListenerHealth::Up
    })
    .await;
    let probe = node
        .client()
        .insert(&Probe::new_job(&json!({"ms": 0})).unwrap())
        .await
        .unwrap()
        .id;
    let wake_up = wait_until(
        "the notified job to run",
        Duration::from_secs(10),
        || async { runs.ran(probe) },
    )
    .await;
    node.shutdown().await;
    drop(progress);

    let (distinct, duplicated) = runs.totals();
    let report = Report {
        scenario: match fault {
            Fault::Restart(mode) => format!("1. restart -m {mode:?}").to_lowercase(),
            Fault::TerminateBackends(times) => format!("2. pg_terminate_backend ×{times}"),
        },
        expected: expected as u64,
        completed: completed as u64,
        duplicated,
        lost: (expected - completed) as u64,
        recovery: Some(recovery),
        figures: format!(
            "baseline {baseline:.0} jobs/s; after recovery {after:.0} jobs/s ({:.2}× baseline; \
             medians of 6 × 1 s, 100–300 ms jobs × 40); server down {:.2} s; wake-up by NOTIFY after \
             recovery {} ms",
            after / baseline,
            downtime.as_secs_f64(),
            wake_up.as_millis()
        ),
    };
    report.print();
    assert_eq!(completed, expected, "{fault:?}: jobs lost");
    assert_eq!(distinct, expected as u64 + 1, "{fault:?}: jobs never run");
    assert_eq!(duplicated, 0, "{fault:?}: nothing was running twice");
    assert!(
        recovery < Duration::from_secs(10),
        "{fault:?}: recovery took {recovery:?}"
    );
    assert!(
        after >= RECOVERED * baseline,
        "{fault:?}: {after:.0} jobs/s after recovery, {baseline:.0} before: capacity was lost"
    );
    assert!(
        wake_up < Duration::from_secs(5),
        "{fault:?}: the insert notification took {wake_up:?}: LISTEN was not re-established"
    );
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_fast_mid_run() {
    let _serial = ONE_AT_A_TIME.lock().await;
    survives(Fault::Restart(StopMode::Fast)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_immediate_mid_run() {
    let _serial = ONE_AT_A_TIME.lock().await;
    survives(Fault::Restart(StopMode::Immediate)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backends_terminated_repeatedly() {
    let _serial = ONE_AT_A_TIME.lock().await;
    survives(Fault::TerminateBackends(5)).await;
}

// ---------------------------------------------------------------------------------------------
// Nodes in processes of their own (3 and 8)
// ---------------------------------------------------------------------------------------------

/// Set in a copy of this test binary that a scenario starts as a node of its own: the JSON
/// [`ChildSpec`] of that node.
const CHILD: &str = "FAULTS_CHILD_NODE";

/// What a child node runs.
#[derive(serde::Serialize, serde::Deserialize)]
struct ChildSpec {
    url: String,
    /// `application_name` of its connections.
    app: String,
    limit: usize,
    pool: u32,
    // The node's leadership and rescue windows (the `Config` fields of the same names).
    leader_interval: Duration,
    rescue_after: Duration,
    rescue_interval: Duration,
}

impl ChildSpec {
    /// Short leadership and rescue windows: a killed leader's row expires in 2 s and its
    /// orphans are rescued 3 s after their claim at the latest, so ten kills fit in a test.
    fn short_windows(url: &str, app: &str, limit: usize, pool: u32) -> Self {
        Self {
            url: url.to_owned(),
            app: app.to_owned(),
            limit,
            pool,
            leader_interval: Duration::from_secs(2),
            rescue_after: Duration::from_secs(3),
            rescue_interval: Duration::from_millis(500),
        }
    }

    /// The production defaults of leadership and rescue.
    fn default_windows(url: &str, app: &str, limit: usize) -> Self {
        let defaults = Config::default();
        Self {
            leader_interval: defaults.leader_interval,
            rescue_after: defaults.rescue_after,
            rescue_interval: defaults.rescue_interval,
            ..Self::short_windows(url, app, limit, 10)
        }
    }
}

/// In a child (see [`CHILD`]): runs a [`Probe`] node until SIGTERM, then shuts down gracefully
/// and exits 0. A SIGKILL is the point of some scenarios.
async fn run_child(spec: &str) -> ! {
    let spec: ChildSpec = serde_json::from_str(spec).unwrap();
    let options = spec
        .url
        .parse::<PgConnectOptions>()
        .unwrap()
        .application_name(&spec.app);
    let pool = PgPoolOptions::new()
        .max_connections(spec.pool)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .unwrap();
    let worker = Probe {
        sleep: Duration::ZERO,
        runs: None,
        effects: Some(pool.clone()),
    };
    let config = Config {
        leader_interval: spec.leader_interval,
        rescue_after: spec.rescue_after,
        rescue_interval: spec.rescue_interval,
        ..config(spec.limit)
    };
    let node = start_node(pool, config, worker).await;
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
    terminate.recv().await;
    let report = node.shutdown().await;
    std::process::exit(if report.drained { 0 } else { 3 });
}

/// A child node process (this test binary again, running only `test` of this module).
struct ChildNode(Child);

impl ChildNode {
    fn start(test: &str, spec: &ChildSpec) -> Self {
        // libtest names a test by its path below the crate root: `faults::<test>`.
        let (_crate, module) = module_path!()
            .split_once("::")
            .expect("a module of the crate");
        let path = format!("{module}::{test}");
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", path.as_str(), "--nocapture", "--test-threads=1"])
            .env(CHILD, serde_json::to_string(spec).unwrap())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start a child node");
        Self(child)
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    /// SIGKILL: no shutdown, no acks, no resignation.
    fn kill(mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }

    /// SIGTERM, then its exit status.
    fn terminate(mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.0.wait().unwrap()
    }
}

impl Drop for ChildNode {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// 3. SIGKILL at random moments, ten times in a row, then one node finishes the work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_ten_times_at_random_moments() {
    if let Ok(spec) = std::env::var(CHILD) {
        run_child(&spec).await;
    }
    let _serial = ONE_AT_A_TIME.lock().await;
    const JOBS: i64 = 4_000;
    const LIMIT: usize = 10;
    const KILLS: u32 = 10;
    let cluster = Cluster::start(TempPostgres::builder()).await;
    sqlx::query("CREATE TABLE effects (job_id bigint NOT NULL)")
        .execute(&cluster.admin)
        .await
        .unwrap();
    seed(
        &cluster.admin,
        Probe::NAME,
        JOBS,
        json!({"effect": true, "ms": 50}),
        0,
        20,
    )
    .await;
    let spec = ChildSpec::short_windows(cluster.pg.url(), "faults-killed", LIMIT, 10);
    let test = "sigkill_ten_times_at_random_moments";
    let started = Instant::now();
    let mut orphaned = Vec::new();
    for _ in 0..KILLS {
        let node = ChildNode::start(test, &spec);
        // Anywhere from mid start-up to well into the run.
        let life = Duration::from_millis(rand::random_range(200..2_000));
        tokio::time::sleep(life).await;
        node.kill();
        orphaned.push(
            cluster
                .scalar("SELECT count(*) FROM oban_jobs WHERE state = 'executing'")
                .await,
        );
    }
    let done_when_killed = cluster
        .scalar("SELECT count(*) FROM oban_jobs WHERE state = 'completed'")
        .await;
    assert!(
        done_when_killed < JOBS,
        "every job finished before the last kill: seed more"
    );
    let survivor = ChildNode::start(test, &spec);
    let finishing = Instant::now();
    let completed = final_completed(&cluster, JOBS, Duration::from_secs(120)).await;
    let finish = finishing.elapsed();
    assert!(
        survivor.terminate().success(),
        "the last node stops cleanly"
    );

    let (effects, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT job_id) FROM effects")
            .fetch_one(&cluster.admin)
            .await
            .unwrap();
    let rescued = cluster
        .scalar("SELECT count(*) FROM oban_jobs WHERE meta ? 'rescued'")
        .await;
    let not_completed = cluster
        .scalar("SELECT count(*) FROM oban_jobs WHERE state <> 'completed'")
        .await;
    let duplicated = (effects - distinct) as u64;
    let bound = u64::from(KILLS) * LIMIT as u64;
    Report {
        scenario: format!("3. SIGKILL ×{KILLS} at random moments"),
        expected: JOBS as u64,
        completed: completed as u64,
        duplicated,
        lost: (JOBS - completed) as u64,
        recovery: None,
        figures: format!(
            "{done_when_killed} done by the killed nodes, jobs left executing after each kill \
             {orphaned:?}; {rescued} rescued and rerun; duplicate executions {duplicated} ≤ \
             kills × concurrency = {bound}; the last node finished the rest in {:.1} s; \
             {:.1} s in all",
            finish.as_secs_f64(),
            started.elapsed().as_secs_f64()
        ),
    }
    .print();
    assert_eq!(completed, JOBS, "every job completed");
    assert_eq!(not_completed, 0);
    assert_eq!(distinct, JOBS, "every job's effect happened");
    assert!(duplicated <= bound, "{duplicated} duplicates > {bound}");
    assert!(
        rescued > 0 && orphaned.iter().any(|&n| n > 0),
        "kills mid-run orphan jobs, which are rescued: {orphaned:?}, {rescued} rescued"
    );
}

/// 3b. A SIGKILLed node's jobs are rescued by liveness with the production defaults: back in
/// play on the other node within 10 s, whichever node was killed, while the survivor's own
/// jobs, which run far longer than that, run once.
async fn sigkill_one_of_two(test: &str, kill_the_leader: bool) {
    const JOB_MS: u64 = 20_000;
    let cluster = Cluster::start(TempPostgres::builder()).await;
    sqlx::query("CREATE TABLE effects (job_id bigint NOT NULL)")
        .execute(&cluster.admin)
        .await
        .unwrap();
    let args = json!({"effect": true, "ms": JOB_MS});
    let executing = "SELECT count(*) FROM oban_jobs WHERE state = 'executing'";
    // Each node takes two jobs; the first one started leads.
    let spec = ChildSpec::default_windows(cluster.pg.url(), "faults-liveness", 4);
    seed(&cluster.admin, Probe::NAME, 2, args.clone(), 0, 20).await;
    let first = ChildNode::start(test, &spec);
    wait_until(
        "the first node to run two jobs",
        Duration::from_secs(30),
        || async { cluster.scalar(executing).await == 2 },
    )
    .await;
    seed(&cluster.admin, Probe::NAME, 2, args, 0, 20).await;
    let second = ChildNode::start(test, &spec);
    wait_until(
        "the second node to run two jobs",
        Duration::from_secs(30),
        || async { cluster.scalar(executing).await == 4 },
    )
    .await;
    let leader: String = sqlx::query_scalar("SELECT node FROM oban_peers WHERE name = 'Oban.rust'")
        .fetch_one(&cluster.admin)
        .await
        .unwrap();
    // Node names are `<host>.<pid>`.
    let first_is_leader = leader.ends_with(&format!(".{}", first.pid()));
    assert!(first_is_leader, "the first node leads: {leader}");
    let (victim, survivor) = if kill_the_leader {
        (first, second)
    } else {
        (second, first)
    };
    let of_victim = format!("%.{}", victim.pid());
    let victims_jobs: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM oban_jobs WHERE attempted_by[1] LIKE $1 ORDER BY id")
            .bind(&of_victim)
            .fetch_all(&cluster.admin)
            .await
            .unwrap();
    assert_eq!(victims_jobs.len(), 2, "the victim runs two jobs");
    // The survivor has been listening for longer than the silence window, as a node of a
    // running cluster has.
    tokio::time::sleep(Config::default().rescue_silence).await;
    victim.kill();

    let of_survivor = format!("%.{}", survivor.pid());
    let back_in_play = wait_until(
        "the killed node's jobs to run on the survivor",
        Duration::from_secs(60),
        || async {
            let moved: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM oban_jobs WHERE id = ANY($1) AND attempted_by[1] LIKE $2",
            )
            .bind(&victims_jobs)
            .bind(&of_survivor)
            .fetch_one(&cluster.admin)
            .await
            .unwrap();
            moved == 2
        },
    )
    .await;
    let new_leader: String =
        sqlx::query_scalar("SELECT node FROM oban_peers WHERE name = 'Oban.rust'")
            .fetch_one(&cluster.admin)
            .await
            .unwrap();
    let completed = final_completed(&cluster, 4, Duration::from_secs(120)).await;
    assert!(survivor.terminate().success(), "the survivor stops cleanly");
    let runs: Vec<(i64, i64, Option<i32>)> = sqlx::query_as(
        "SELECT j.id, (SELECT count(*) FROM effects e WHERE e.job_id = j.id), \
         (j.meta->>'rescued')::int FROM oban_jobs j ORDER BY j.id",
    )
    .fetch_all(&cluster.admin)
    .await
    .unwrap();
    let reruns: i64 = runs.iter().map(|(_, effects, _)| effects - 1).sum();
    Report {
        scenario: format!(
            "3b. SIGKILL of the {} of two nodes (default windows)",
            if kill_the_leader {
                "leader"
            } else {
                "follower"
            }
        ),
        expected: 4,
        completed: completed as u64,
        duplicated: reruns as u64,
        lost: (4 - completed) as u64,
        recovery: Some(back_in_play),
        figures: format!(
            "the killed node's 2 jobs ran again on the survivor {:.1} s after the kill (their \
             killed runs never completed); the survivor's own 2 jobs of {} s ran once",
            back_in_play.as_secs_f64(),
            JOB_MS / 1000,
        ),
    }
    .print();
    assert!(
        back_in_play < Duration::from_secs(10),
        "the killed node's jobs back in play after {back_in_play:?}"
    );
    assert!(
        new_leader.ends_with(&of_survivor[1..]),
        "the survivor leads: {new_leader}"
    );
    assert_eq!(completed, 4, "every job completed");
    for (id, effects, rescued) in runs {
        // The killed node's jobs ran twice (the killed run never completed), once rescued;
        // the survivor's ran once and were never rescued.
        let expected = if victims_jobs.contains(&id) {
            (2, Some(1))
        } else {
            (1, None)
        };
        assert_eq!((effects, rescued), expected, "job {id}: runs, rescues");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_a_follower_puts_its_jobs_back_in_play_within_seconds() {
    if let Ok(spec) = std::env::var(CHILD) {
        run_child(&spec).await;
    }
    let _serial = ONE_AT_A_TIME.lock().await;
    sigkill_one_of_two(
        "sigkill_of_a_follower_puts_its_jobs_back_in_play_within_seconds",
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_leader_puts_its_jobs_back_in_play_within_seconds() {
    if let Ok(spec) = std::env::var(CHILD) {
        run_child(&spec).await;
    }
    let _serial = ONE_AT_A_TIME.lock().await;
    sigkill_one_of_two(
        "sigkill_of_the_leader_puts_its_jobs_back_in_play_within_seconds",
        true,
    )
    .await;
}

/// 8. Soak: `FAULTS_SOAK_JOBS` no-op jobs through a node in its own process, sampling its
/// resident memory, file descriptors and connections from start to end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_memory_fds_and_connections_stay_flat() {
    if let Ok(spec) = std::env::var(CHILD) {
        run_child(&spec).await;
    }
    let _serial = ONE_AT_A_TIME.lock().await;
    let jobs: i64 = std::env::var("FAULTS_SOAK_JOBS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(50_000);
    const POOL: u32 = 10;
    let cluster = Cluster::start(TempPostgres::builder()).await;
    let spec = ChildSpec::short_windows(cluster.pg.url(), "faults-soak", 20, POOL);
    let feeder = Feeder::up_to(&cluster, json!({}), 10_000, jobs);
    let node = ChildNode::start("soak_memory_fds_and_connections_stay_flat", &spec);
    let started = Instant::now();
    let mut curve = Vec::new();
    loop {
        let completed = cluster
            .scalar("SELECT count(*) FROM oban_jobs WHERE state = 'completed'")
            .await;
        let connections: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1")
                .bind(&spec.app)
                .fetch_one(&cluster.admin)
                .await
                .unwrap();
        curve.push(Sample::take(
            node.pid(),
            started.elapsed().as_secs_f64(),
            completed,
            connections,
        ));
        if completed >= jobs && feeder.done() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3_600),
            "the soak did not finish"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let took = started.elapsed();
    assert!(node.terminate().success(), "the soaked node stops cleanly");
    let expected = feeder.stop().await;
    let completed = final_completed(&cluster, expected, Duration::from_secs(10)).await;

    print_curve("soak curve, jobs completed", &curve);
    let Flatness {
        rss_peak,
        rss_mid,
        rss_end,
        anon_mid,
        anon_end,
        fds_mid,
        fds_end,
        fds_peak,
        connections_peak: peak_connections,
    } = Flatness::of(&curve);
    Report {
        scenario: "8. soak (no-op jobs)".into(),
        expected: expected as u64,
        completed: completed as u64,
        duplicated: 0,
        lost: (expected - completed) as u64,
        recovery: None,
        figures: format!(
            "{:.0} jobs/s over {:.0} s; RSS median {:.1} MiB mid-run → {:.1} MiB at the end \
             ({:.2}×; anonymous {:.1} → {:.1} MiB), peak {:.1} MiB; fds {fds_mid} → {fds_end} \
             (peak {fds_peak}); connections peak {peak_connections} (pool {POOL} + listener)",
            completed as f64 / took.as_secs_f64(),
            took.as_secs_f64(),
            rss_mid as f64 / 1024.0,
            rss_end as f64 / 1024.0,
            rss_end as f64 / rss_mid as f64,
            anon_mid as f64 / 1024.0,
            anon_end as f64 / 1024.0,
            rss_peak as f64 / 1024.0,
        ),
    }
    .print();
    assert_eq!(completed, expected, "every job completed");
    // At the full size (1,000,000) this catches a leak of 4 bytes per job; at the default
    // size, about 80.
    assert!(
        rss_end <= rss_mid + 2 * 1024,
        "RSS grew from {rss_mid} kB mid-run to {rss_end} kB at the end"
    );
    assert!(
        fds_end <= fds_mid + 2,
        "fds grew from {fds_mid} to {fds_end}"
    );
    assert!(
        fds_peak <= fds_mid + 4,
        "fds peaked at {fds_peak} ({fds_mid} mid-run)"
    );
    assert!(
        peak_connections <= i64::from(POOL) + 1,
        "{peak_connections} connections"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Pool exhaustion
// ---------------------------------------------------------------------------------------------

/// Another client holds all but two of the server's connections while the node starts and
/// runs; then lets them go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_exhaustion_slows_but_never_fails_jobs() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let cluster = Cluster::start(TempPostgres::builder().setting("max_connections", "40")).await;
    let feeder = Feeder::start(&cluster, json!({}), 3_000);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut hog = Vec::new();
    let hog_url = cluster.options("postgres", "faults-hog");
    while let Ok(conn) = PgConnection::connect_with(&hog_url).await {
        hog.push(conn);
        assert!(hog.len() < 100, "max_connections was not applied");
    }
    let held = hog.len() - 2;
    hog.truncate(held);
    tokio::time::sleep(Duration::from_millis(200)).await;

    let runs = Executions::default();
    let worker = Probe {
        sleep: Duration::ZERO,
        runs: Some(runs.clone()),
        effects: None,
    };
    let node = start_node(cluster.node_pool(10).await, config(20), worker).await;
    let progress = Progress::start(&node);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let squeezed_from = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let released_at = Instant::now();
    let squeezed = progress.rate(squeezed_from, released_at);
    let connections_squeezed = node_connections(&cluster).await;
    drop(hog);

    // Recovered: the pool has grown past what the squeeze allowed.
    let regrown = wait_until("the pool to grow", Duration::from_secs(20), || async {
        node_connections(&cluster).await > connections_squeezed
    })
    .await;
    let after_from = Instant::now() + Duration::from_millis(500);
    tokio::time::sleep_until((after_from + Duration::from_secs(5)).into()).await;
    let released = progress.rate(after_from, after_from + Duration::from_secs(5));
    let connections_released = node_connections(&cluster).await;
    let expected = feeder.stop().await;
    let completed = final_completed(&cluster, expected, Duration::from_secs(60)).await;
    node.shutdown().await;
    let troubled = cluster
        .scalar(
            "SELECT count(*) FROM oban_jobs WHERE state <> 'completed' OR attempt <> 1 \
             OR cardinality(errors) > 0",
        )
        .await;
    let (_, duplicated) = runs.totals();
    Report {
        scenario: format!("4. pool exhaustion ({held} of 40 connections held)"),
        expected: expected as u64,
        completed: completed as u64,
        duplicated,
        lost: (expected - completed) as u64,
        recovery: Some(regrown),
        figures: format!(
            "{squeezed:.0} jobs/s on {connections_squeezed} connections while squeezed, \
             {released:.0} jobs/s on {connections_released} after release ({:.2}×); jobs with an \
             error or a second attempt: {troubled}",
            squeezed / released
        ),
    }
    .print();
    assert_eq!(completed, expected, "jobs lost");
    assert_eq!(troubled, 0, "the squeeze failed jobs");
    assert!(
        squeezed > 0.2 * released,
        "the squeezed node stalled: {squeezed:.0} jobs/s, {released:.0} after release"
    );
}

async fn node_connections(cluster: &Cluster) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1")
        .bind(NODE_APP)
        .fetch_one(&cluster.admin)
        .await
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// 5. Retry storm
// ---------------------------------------------------------------------------------------------

/// Statements the node's role has run, from pg_stat_statements.
async fn node_statements(admin: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT coalesce(sum(calls), 0)::int8 FROM pg_stat_statements \
         WHERE userid = 'faults_node'::regrole",
    )
    .fetch_one(admin)
    .await
    .unwrap()
}

/// Inserts 10 healthy jobs every 100 ms until stopped, as an application would (one statement
/// and an insert notification); returns the task.
fn healthy_stream(
    admin: PgPool,
    stop: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = oban_core::Client::new(admin, Prefix::default());
        let jobs: Vec<_> = (0..10)
            .map(|_| Probe::new_job(&json!({"healthy": true})).unwrap())
            .collect();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        while !stop.is_cancelled() {
            tick.tick().await;
            client.insert_all(&jobs).await.unwrap();
        }
    })
}

/// 10,000 jobs that fail, among a steady stream of healthy jobs in the same queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_storm_is_spread_and_healthy_jobs_keep_flowing() {
    let _serial = ONE_AT_A_TIME.lock().await;
    const FAILING: i64 = 10_000;
    let cluster = Cluster::start(
        TempPostgres::builder().setting("shared_preload_libraries", "'pg_stat_statements'"),
    )
    .await;
    for statement in [
        "CREATE EXTENSION pg_stat_statements",
        "CREATE ROLE faults_node LOGIN SUPERUSER",
    ] {
        sqlx::query(statement)
            .execute(&cluster.admin)
            .await
            .unwrap();
    }
    let pool = PgPoolOptions::new()
        .max_connections(10)
        .connect_with(cluster.options("faults_node", NODE_APP))
        .await
        .unwrap();
    let worker = Probe {
        sleep: Duration::ZERO,
        runs: None,
        effects: None,
    };
    let node = start_node(pool, config(20), worker).await;
    let stop_stream = tokio_util::sync::CancellationToken::new();
    let stream = healthy_stream(cluster.admin.clone(), stop_stream.clone());

    tokio::time::sleep(Duration::from_secs(2)).await;
    let (baseline_from, statements_before) =
        (Instant::now(), node_statements(&cluster.admin).await);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let statements_at_storm = node_statements(&cluster.admin).await;
    let storm_at = Instant::now();
    let baseline_qps =
        (statements_at_storm - statements_before) as f64 / (storm_at - baseline_from).as_secs_f64();

    seed(
        &cluster.admin,
        Probe::NAME,
        FAILING,
        json!({"fail": true}),
        0,
        2,
    )
    .await;
    // Sample the node's statements every second until every failing job is discarded.
    let mut per_second = Vec::new();
    let mut last = statements_at_storm;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = node_statements(&cluster.admin).await;
        per_second.push(now - last);
        last = now;
        let discarded = cluster
            .scalar("SELECT count(*) FROM oban_jobs WHERE state = 'discarded'")
            .await;
        if discarded == FAILING {
            break;
        }
        assert!(
            storm_at.elapsed() < Duration::from_secs(90),
            "the storm did not end: {discarded} of {FAILING} discarded"
        );
    }
    let storm_secs = storm_at.elapsed().as_secs_f64();
    let storm_qps = (last - statements_at_storm) as f64 / storm_secs;
    let peak_qps = *per_second.iter().max().unwrap();
    stop_stream.cancel();
    stream.await.unwrap();
    let healthy = cluster
        .scalar("SELECT count(*) FROM oban_jobs WHERE args ? 'healthy'")
        .await;
    let healthy_completed =
        final_completed(&cluster, FAILING + healthy, Duration::from_secs(30)).await;
    node.shutdown().await;

    // The second attempts: when they ran, and how long after the first failure.
    let (spread, min_gap, max_gap): (f64, f64, f64) = sqlx::query_as(
        "SELECT extract(epoch FROM max(attempted_at) - min(attempted_at))::float8, \
                min(extract(epoch FROM attempted_at - (errors[1]->>'at')::timestamp))::float8, \
                max(extract(epoch FROM attempted_at - (errors[1]->>'at')::timestamp))::float8 \
         FROM oban_jobs WHERE args ? 'fail'",
    )
    .fetch_one(&cluster.admin)
    .await
    .unwrap();
    let attempts = cluster
        .scalar("SELECT sum(attempt)::int8 FROM oban_jobs WHERE args ? 'fail'")
        .await;
    // Healthy jobs' wait (claim - insert), before the storm, during the first wave (queued
    // behind 10,000 jobs inserted at once, first in, first out) and during the retries.
    let waits: Vec<(String, f64, f64, i64)> = sqlx::query_as(
        "WITH marks AS ( \
           SELECT min(inserted_at) AS storm, \
                  max((errors[1]->>'at')::timestamp) AS first_wave_end \
           FROM oban_jobs WHERE args ? 'fail') \
         SELECT phase, \
                percentile_cont(0.99) WITHIN GROUP (ORDER BY wait)::float8, \
                max(wait)::float8, count(*) \
         FROM (SELECT CASE WHEN j.inserted_at < m.storm THEN 'before' \
                           WHEN j.inserted_at < m.first_wave_end THEN 'first wave' \
                           ELSE 'retries' END AS phase, \
                      extract(epoch FROM j.attempted_at - j.scheduled_at) AS wait \
               FROM oban_jobs j, marks m WHERE j.args ? 'healthy') AS w \
         GROUP BY phase ORDER BY phase",
    )
    .fetch_all(&cluster.admin)
    .await
    .unwrap();
    let wait = |phase: &str| {
        waits
            .iter()
            .find(|w| w.0 == phase)
            .map(|w| (w.1, w.2, w.3))
            .unwrap_or_else(|| panic!("no healthy jobs {phase}: {waits:?}"))
    };
    let (before, first_wave, retries) = (wait("before"), wait("first wave"), wait("retries"));
    let expected = FAILING + healthy;
    let completed_healthy = healthy_completed;
    // Both ends as meant: healthy jobs completed, failing ones discarded after two attempts.
    let discarded = cluster
        .scalar("SELECT count(*) FROM oban_jobs WHERE args ? 'fail' AND state = 'discarded'")
        .await;
    let finished = completed_healthy + discarded;
    Report {
        scenario: "5. retry storm (10,000 failing jobs)".into(),
        expected: expected as u64,
        completed: finished as u64,
        duplicated: 0,
        lost: (expected - finished) as u64,
        recovery: None,
        figures: format!(
            "completed = {completed_healthy} healthy jobs completed + {discarded} failing jobs \
             discarded after their 2 attempts; {attempts} attempts, retries {min_gap:.1}–{max_gap:.1} s after the failure, \
             spread over {spread:.1} s; node statements/s: baseline {baseline_qps:.0}, storm \
             {storm_qps:.0} ({:.1}×), peak {peak_qps}/s ({:.1}×), {:.2} statements per attempt; \
             healthy jobs' p99 wait {:.3} s before, {:.2} s behind the first wave, {:.3} s during \
             the retries (max {:.3} s)",
            storm_qps / baseline_qps,
            peak_qps as f64 / baseline_qps,
            (last - statements_at_storm) as f64 / attempts as f64,
            before.0,
            first_wave.0,
            retries.0,
            retries.1
        ),
    }
    .print();
    assert_eq!(attempts, 2 * FAILING, "each failing job ran exactly twice");
    assert!(
        min_gap >= 17.0,
        "a retry came {min_gap} s after its failure"
    );
    assert!(max_gap <= 17.0 * 1.1 + 5.0, "a retry waited {max_gap} s");
    assert!(spread >= 1.0, "retries are spread by jitter: {spread} s");
    assert_eq!(
        completed_healthy, healthy,
        "every healthy job completed: {completed_healthy} of {healthy}"
    );
    assert!(
        (last - statements_at_storm) as f64 / (attempts as f64) < 1.0,
        "claims and acks are batched: fewer statements than attempts"
    );
    // Healthy jobs inserted while retries are due queue behind the retries that became due
    // before them (first in, first out within a priority, as in Oban): a bounded delay, never
    // starvation.
    assert!(
        retries.1 < 10.0,
        "healthy jobs keep flowing through the retries: max wait {} s",
        retries.1
    );
}

// ---------------------------------------------------------------------------------------------
// 6. Priority under a flood
// ---------------------------------------------------------------------------------------------

/// A backlog of low-priority jobs fills every slot; priority 0 jobs inserted meanwhile run next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priority_zero_is_never_starved_by_a_flood() {
    let _serial = ONE_AT_A_TIME.lock().await;
    const FLOOD: i64 = 8_000;
    const URGENT: i64 = 40;
    let cluster = Cluster::start(TempPostgres::builder()).await;
    seed(&cluster.admin, Probe::NAME, FLOOD, json!({"ms": 10}), 9, 20).await;
    let worker = Probe {
        sleep: Duration::ZERO,
        runs: None,
        effects: None,
    };
    let node = start_node(cluster.node_pool(10).await, config(10), worker).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut urgent = Vec::new();
    for _ in 0..URGENT {
        let job = Probe::new_job(&json!({"urgent": true}))
            .unwrap()
            .priority(0);
        urgent.push(node.client().insert(&job).await.unwrap().id);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Flood jobs still waiting when the last urgent job was done.
    let waited = Instant::now();
    let flood_left_when_urgent_done = loop {
        let (done, available): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE id = ANY($1) AND state = 'completed'), \
                    count(*) FILTER (WHERE priority = 9 AND state = 'available') \
             FROM oban_jobs",
        )
        .bind(&urgent)
        .fetch_one(&cluster.admin)
        .await
        .unwrap();
        if done == URGENT {
            break available;
        }
        assert!(
            waited.elapsed() < Duration::from_secs(30),
            "{done} of {URGENT} urgent jobs done"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let completed = final_completed(&cluster, FLOOD + URGENT, Duration::from_secs(60)).await;
    node.shutdown().await;
    let (urgent_p50, urgent_max, flood_p50): (f64, f64, f64) = sqlx::query_as(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY w) FILTER (WHERE priority = 0), \
                max(w) FILTER (WHERE priority = 0), \
                percentile_cont(0.5) WITHIN GROUP (ORDER BY w) FILTER (WHERE priority = 9) \
         FROM (SELECT priority, extract(epoch FROM attempted_at - scheduled_at)::float8 AS w \
               FROM oban_jobs) AS waits",
    )
    .fetch_one(&cluster.admin)
    .await
    .unwrap();
    Report {
        scenario: "6. priority 0 among a low-priority flood".into(),
        expected: (FLOOD + URGENT) as u64,
        completed: completed as u64,
        duplicated: 0,
        lost: (FLOOD + URGENT - completed) as u64,
        recovery: None,
        figures: format!(
            "{URGENT} priority-0 jobs waited p50 {:.1} ms, max {:.1} ms, while the flood's \
             median wait was {flood_p50:.1} s ({:.4}×); {flood_left_when_urgent_done} flood \
             jobs still waiting when the last urgent one was done",
            urgent_p50 * 1000.0,
            urgent_max * 1000.0,
            urgent_p50 / flood_p50
        ),
    }
    .print();
    assert_eq!(completed, FLOOD + URGENT);
    assert!(
        flood_left_when_urgent_done > 0,
        "the flood drained first: the test proves nothing"
    );
    assert!(
        urgent_max < 1.0,
        "a priority-0 job waited {urgent_max} s behind the flood"
    );
}

// ---------------------------------------------------------------------------------------------
// 7. A long REPEATABLE READ transaction
// ---------------------------------------------------------------------------------------------

/// Scenario 7's bound on the time between two acks while the snapshot is held.
const MAX_STALL: Duration = Duration::from_secs(3);

/// Another client holds a snapshot open for `FAULTS_LONG_TX_SECS`, so no dead row can be
/// vacuumed meanwhile; the node must keep working through the bloat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_repeatable_read_transaction_slows_but_never_stops_the_node() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let hold = Duration::from_secs(
        std::env::var("FAULTS_LONG_TX_SECS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(30),
    );
    let window = Duration::from_secs(5);
    let cluster = Cluster::start(TempPostgres::builder()).await;
    let feeder = Feeder::start(&cluster, json!({}), 5_000);
    let worker = Probe {
        sleep: Duration::ZERO,
        runs: None,
        effects: None,
    };
    let node = start_node(cluster.node_pool(10).await, config(20), worker).await;
    let progress = Progress::start(&node);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let baseline_from = Instant::now();
    tokio::time::sleep(window).await;
    let baseline = progress.rate(baseline_from, Instant::now());

    let mut old = PgConnection::connect(cluster.pg.url()).await.unwrap();
    sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut old)
        .await
        .unwrap();
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM oban_jobs")
        .fetch_one(&mut old)
        .await
        .unwrap();
    let held_from = Instant::now();
    let mut windows = Vec::new();
    while held_from.elapsed() < hold {
        let from = Instant::now();
        tokio::time::sleep(window.min(hold - held_from.elapsed())).await;
        windows.push(progress.rate(from, Instant::now()));
    }
    let dead: i64 = sqlx::query_scalar(
        "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'oban_jobs'",
    )
    .fetch_one(&cluster.admin)
    .await
    .unwrap();
    let still: i64 = sqlx::query_scalar("SELECT count(*) FROM oban_jobs")
        .fetch_one(&mut old)
        .await
        .unwrap();
    assert_eq!(seen, still, "the snapshot really was held");
    sqlx::query("COMMIT").execute(&mut old).await.unwrap();
    let held = held_from.elapsed();
    let released_from = Instant::now();
    tokio::time::sleep(window).await;
    let released = progress.rate(released_from, Instant::now());
    let expected = feeder.stop().await;
    let completed = final_completed(&cluster, expected, Duration::from_secs(120)).await;
    node.shutdown().await;

    let (first, last) = (windows[0], *windows.last().unwrap());
    let slowest = windows.iter().copied().fold(f64::INFINITY, f64::min);
    let stall = progress.longest_stall(held_from, held_from + held);
    Report {
        scenario: format!("7. REPEATABLE READ held {:.0} s", held.as_secs_f64()),
        expected: expected as u64,
        completed: completed as u64,
        duplicated: 0,
        lost: (expected - completed) as u64,
        recovery: None,
        figures: format!(
            "baseline {baseline:.0} jobs/s; while held: first {}s {first:.0} jobs/s ({:.2}×), \
             last {}s {last:.0} jobs/s ({:.2}×), slowest {slowest:.0}, longest time without an ack \
             {:.0} ms; {dead} dead rows at the end of the hold; after commit {released:.0} jobs/s ({:.2}×)",
            window.as_secs(),
            first / baseline,
            window.as_secs(),
            last / baseline,
            stall.as_secs_f64() * 1000.0,
            released / baseline
        ),
    }
    .print();
    assert_eq!(completed, expected, "every job completed");
    // The feeder keeps thousands of jobs waiting, so a working node acks every few
    // milliseconds, slowed by the bloat (docs/reliability.md: a third of the baseline at
    // worst). Seconds without a single ack mean claims or acks stopped, e.g. stuck behind the
    // snapshot; the bound leaves room for a loaded machine's scheduling pauses.
    assert!(
        stall < MAX_STALL,
        "the node stalled for {stall:?} while the snapshot was held: rates {windows:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Why a kill reruns at most `limit` jobs
// ---------------------------------------------------------------------------------------------

/// A job's slot stays taken until its outcome is in the database. Otherwise, while acks are
/// slow, finished jobs pile up unrecorded behind the slots they freed, and a crash reruns all of
/// them: more than kills × concurrency (scenario 3's bound). Here another transaction locks the
/// rows of the first jobs, so their acks wait; the node must not run more jobs meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_jobs_hold_their_slot_until_their_ack_is_written() {
    let _serial = ONE_AT_A_TIME.lock().await;
    const LIMIT: usize = 5;
    let cluster = Cluster::start(TempPostgres::builder()).await;
    seed(&cluster.admin, Probe::NAME, 100, json!({"ms": 300}), 0, 20).await;
    let runs = Executions::default();
    let worker = Probe {
        sleep: Duration::ZERO,
        runs: Some(runs.clone()),
        effects: None,
    };
    let node = start_node(cluster.node_pool(10).await, config(LIMIT), worker).await;
    wait_until("the first jobs to run", Duration::from_secs(10), || async {
        runs.totals().0 == LIMIT as u64
    })
    .await;
    let mut blocker = cluster.admin.begin().await.unwrap();
    let locked: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM oban_jobs WHERE state = 'executing' FOR UPDATE")
            .fetch_all(&mut *blocker)
            .await
            .unwrap();
    assert_eq!(
        locked.len(),
        LIMIT,
        "locked the running jobs before they ended"
    );
    // Long enough for several rounds of 300 ms jobs, had the slots been freed.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (ran_while_blocked, _) = runs.totals();
    blocker.rollback().await.unwrap();
    let completed = final_completed(&cluster, 100, Duration::from_secs(30)).await;
    node.shutdown().await;
    assert_eq!(
        ran_while_blocked, LIMIT as u64,
        "jobs ran while {LIMIT} finished jobs waited for their acks"
    );
    assert_eq!(completed, 100);
}
