//! Drain benchmark: how fast one node claims, runs and acks no-op jobs.
//!
//! `cargo bench -p oban-core --bench drain [-- --jobs N] [--quick]
//! [--only LIMIT,COOLDOWN_MS,ACK[,WRITERS]] [--writers N,N,...]`
//!
//! `--quick` runs the headline drain once, on the server as it starts (no durable repeat, no
//! sweep); `--only` does the same with another queue limit, dispatch cooldown, ack batch limit
//! and (optionally) number of ack writers, for profiling one setup. `--writers 1,2` repeats the
//! headline drain once per number of ack writers (`Config::ack_writers`), on a refilled table,
//! to compare them against the same baselines.
//!
//! Uses the server at `DATABASE_URL` when set (its settings are reported and left alone),
//! otherwise a throwaway cluster from `oban_core::testing::TempPostgres`. That cluster runs with `fsync`,
//! `synchronous_commit` and `full_page_writes` off; the headline drain is repeated after turning
//! them on (`ALTER SYSTEM` + reload), as a normal server runs.
//!
//! Each run: empty `oban_jobs`, insert the jobs with `insert_all`, `ANALYZE`, `CHECKPOINT`, then
//! start a node with one queue and a no-op worker and time it from `start()` until every job is
//! acked; the rows are checked to be `completed` afterwards. Printed per run: jobs/s; CPU per job
//! of this process (`/proc/self/stat`) and of all PostgreSQL server processes (the postmaster,
//! its children and the children it reaped, from `/proc/<pid>/stat`); peak RSS (`VmHWM`, reset
//! before each run); claim round trips and ack statements with the time spent in them, from the
//! node's metrics. Baselines measured in the same run give the figures a scale: a `SELECT 1`
//! round trip, the insert rate, and the same row writes as a drain (claim + ack: two batched
//! bare `UPDATE`s per job) done with no runtime at all, from one connection and then from two at
//! once (a drain's claim and ack run on two connections, so the second is its real ceiling).

// The benchmark creates and drops its own databases by name; clippy.toml's list guards product code.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use oban_core::config::{Config, QueueConfig};
use oban_core::insert::NewJob;
use oban_core::job::Job;
use oban_core::node::Node;
use oban_core::testing::TempPostgres;
use oban_core::worker::{Outcome, WorkResult, Worker, WorkerOptions};
use oban_core::{Client, Prefix, schema};
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection, PgPool};

/// The queue every benchmark job goes to.
const QUEUE: &str = "bench";

/// Jobs per `insert_all` call while filling the table.
const INSERT_CHUNK: usize = 10_000;

/// Rows per statement in the bare-UPDATE baseline.
const BARE_BATCH: usize = 1_000;

/// Round trips in the `SELECT 1` baseline.
const PINGS: usize = 5_000;

/// Completes every job at once.
struct Noop;

/// A bench job's args: its number, decoded as every typed worker's args are.
#[derive(serde::Serialize, serde::Deserialize)]
struct NoopArgs {
    i: usize,
}

impl Worker for Noop {
    const NAME: &'static str = "Bench.Noop";
    const OPTIONS: WorkerOptions = WorkerOptions {
        queue: QUEUE,
        ..WorkerOptions::DEFAULT
    };
    type Args = NoopArgs;

    async fn process(&self, _args: NoopArgs, _job: &Job) -> WorkResult {
        Ok(Outcome::complete())
    }
}

/// What one drain is run with.
#[derive(Clone, Copy, Debug)]
struct Setup {
    limit: usize,
    cooldown_ms: u64,
    ack_batch_limit: usize,
    ack_writers: usize,
    jobs: usize,
}

/// What one drain measured.
struct Outcomes {
    insert_per_second: f64,
    seconds: f64,
    client_cpu: f64,
    server_cpu: Option<f64>,
    start_rss_kb: Option<u64>,
    peak_rss_kb: Option<u64>,
    claims: (u64, u64, f64),
    acks: (u64, u64, f64),
}

/// What the baselines of one server mode measured.
struct Baseline {
    mode: Durability,
    ping_seconds: f64,
    insert_per_second: f64,
    bare_per_second: f64,
    bare_server_cpu: Option<f64>,
    /// The same bare UPDATEs split over two connections running at once.
    bare2_per_second: f64,
    bare2_server_cpu: Option<f64>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Durability {
    /// As the throwaway cluster starts: fsync, synchronous_commit, full_page_writes off.
    Off,
    /// As a normal server runs: all three on.
    On,
    /// An external server, whatever it is set to.
    AsConfigured,
}

impl Durability {
    fn label(self) -> &'static str {
        match self {
            Durability::Off => "fsync off",
            Durability::On => "fsync on",
            Durability::AsConfigured => "as configured",
        }
    }
}

fn main() {
    let mut jobs = 100_000;
    let mut quick = false;
    let mut only = None;
    let mut writers = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--jobs" => {
                jobs = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("--jobs takes a number");
            }
            "--quick" => quick = true,
            "--only" => {
                let numbers: Vec<u64> = args
                    .next()
                    .map(|spec| spec.split(',').filter_map(|n| n.parse().ok()).collect())
                    .unwrap_or_default();
                let (limit, cooldown_ms, ack_batch_limit, ack_writers) = match numbers[..] {
                    [limit, cooldown_ms, ack] => (limit, cooldown_ms, ack, None),
                    [limit, cooldown_ms, ack, writers] => (limit, cooldown_ms, ack, Some(writers)),
                    _ => panic!("--only takes LIMIT,COOLDOWN_MS,ACK_BATCH_LIMIT[,ACK_WRITERS]"),
                };
                only = Some((limit as usize, cooldown_ms, ack_batch_limit as usize));
                writers.extend(ack_writers.map(|n| n as usize));
                quick = true;
            }
            "--writers" => {
                writers = args
                    .next()
                    .map(|spec| spec.split(',').filter_map(|n| n.parse().ok()).collect())
                    .unwrap_or_default();
                assert!(
                    !writers.is_empty() && !writers.contains(&0),
                    "--writers takes a list of ack writer counts, each at least 1"
                );
            }
            // Cargo passes --bench; filters for other benches are not ours.
            _ => {}
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    if writers.is_empty() {
        writers.push(Config::default().ack_writers);
    }
    runtime.block_on(run(jobs, quick, only, &writers));
}

async fn run(jobs: usize, quick: bool, only: Option<(usize, u64, usize)>, writers: &[usize]) {
    let (server_url, cluster) = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => (url, None),
        _ => {
            let cluster = tokio::task::spawn_blocking(TempPostgres::start)
                .await
                .expect("the start-up task")
                .expect("a throwaway PostgreSQL (set DATABASE_URL to use a running server)");
            (cluster.url().to_owned(), Some(cluster))
        }
    };
    let database = format!("oban_bench_{}", std::process::id());
    let mut admin = PgConnection::connect(&server_url)
        .await
        .expect("connect to the server");
    admin
        .execute(AssertSqlSafe(format!("CREATE DATABASE \"{database}\"")))
        .await
        .expect("create the benchmark database");
    let pool = PgPoolOptions::new()
        .max_connections(10)
        .connect(&database_url(&server_url, &database))
        .await
        .expect("connect to the benchmark database");
    schema::migrate(&pool, &Prefix::default())
        .await
        .expect("migrate");
    let client = Client::new(pool.clone(), Prefix::default());
    let postmaster = bench_support::postmaster_pid(&pool).await;

    print_header(&pool, cluster.is_some(), postmaster).await;

    // A finished job keeps its slot until its ack is written, so a queue limit of twice the
    // ack batch is what lets one batch be claimed while the previous one is acked: claim and
    // ack then run at once on two connections (and two cores of the server).
    let (limit, cooldown_ms, ack_batch_limit) = only.unwrap_or((2_000, 1, 1_000));
    let headline = Setup {
        limit,
        cooldown_ms,
        ack_batch_limit,
        ack_writers: writers[0],
        jobs,
    };
    let modes: &[Durability] = match (&cluster, quick) {
        (None, _) => &[Durability::AsConfigured],
        (Some(_), true) => &[Durability::Off],
        (Some(_), false) => &[Durability::Off, Durability::On],
    };
    let mut rows = Vec::new();
    let mut baseline_rows = Vec::new();
    for &mode in modes {
        if mode != Durability::AsConfigured {
            set_durability(&mut admin, &pool, mode == Durability::On).await;
        }
        println!("\n## {} ({})", mode.label(), settings(&pool).await);
        let baseline = baselines(&pool, &client, mode, jobs, postmaster).await;
        let mut insert_per_second = baseline.insert_per_second;
        baseline_rows.push(baseline);
        for (n, &ack_writers) in writers.iter().enumerate() {
            if n > 0 {
                insert_per_second = fill(&pool, &client, jobs).await;
            }
            let setup = Setup {
                ack_writers,
                ..headline
            };
            let outcomes = drain(&pool, setup, postmaster, insert_per_second).await;
            rows.push((mode, setup, outcomes));
        }
    }
    if !quick {
        // The sweep runs on the fastest mode the server offers, with fewer jobs where a small
        // queue limit makes a run slow, to keep the whole bench near two minutes.
        let mode = modes[0];
        if mode != Durability::AsConfigured {
            set_durability(&mut admin, &pool, false).await;
        }
        let sweep_jobs = (jobs / 5).max(1);
        let sweep = [
            (10, 5, 1_000, sweep_jobs / 5),
            (100, 5, 1_000, sweep_jobs),
            (100, 0, 1_000, sweep_jobs),
            (500, 1, 1_000, sweep_jobs),
            (1_000, 1, 1_000, sweep_jobs),
            (2_000, 1, 500, sweep_jobs),
            (2_000, 1, 100, sweep_jobs),
            (4_000, 1, 1_000, sweep_jobs),
            (5_000, 1, 5_000, sweep_jobs),
        ];
        for (limit, cooldown_ms, ack_batch_limit, jobs) in sweep {
            let setup = Setup {
                limit,
                cooldown_ms,
                ack_batch_limit,
                ack_writers: headline.ack_writers,
                jobs: jobs.max(1),
            };
            let insert_per_second = fill(&pool, &client, setup.jobs).await;
            let outcomes = drain(&pool, setup, postmaster, insert_per_second).await;
            rows.push((mode, setup, outcomes));
        }
    }
    print_baselines(&baseline_rows);
    print_table(&rows, &baseline_rows);
    println!(
        "\nload average at the end: {}",
        bench_support::load_average()
    );

    pool.close().await;
    admin
        .execute(AssertSqlSafe(format!("DROP DATABASE \"{database}\"")))
        .await
        .expect("drop the benchmark database");
    admin.close().await.expect("close");
    if let Some(cluster) = cluster {
        tokio::task::spawn_blocking(move || drop(cluster))
            .await
            .expect("stop the cluster");
    }
}

/// Drains `oban_jobs`, which the caller filled with `setup.jobs` jobs at `insert_per_second`,
/// with one node, and measures.
async fn drain(
    pool: &PgPool,
    setup: Setup,
    postmaster: Option<u32>,
    insert_per_second: f64,
) -> Outcomes {
    sqlx::query("CHECKPOINT")
        .execute(pool)
        .await
        .expect("checkpoint");
    if !bench_support::reset_peak_rss() {
        eprintln!("note: could not reset VmHWM; peak RSS is the process-wide peak");
    }
    let start_rss_kb = bench_support::status_kib("VmRSS");

    let config = Config {
        queues: vec![QueueConfig::new(QUEUE, setup.limit)],
        dispatch_cooldown: Duration::from_millis(setup.cooldown_ms),
        ack_batch_limit: setup.ack_batch_limit,
        ack_writers: setup.ack_writers,
        ..Config::default()
    };
    let client_before = bench_support::own_cpu_seconds();
    let server_before = postmaster.and_then(bench_support::server_cpu_seconds);
    let started = Instant::now();
    let node = Node::builder(pool.clone())
        .config(config)
        .worker(Noop)
        .expect("register the worker")
        .start()
        .await
        .expect("start the node");
    let deadline = started + Duration::from_secs(300);
    while node.metrics().snapshot().acks.1 < setup.jobs as u64 {
        assert!(
            Instant::now() < deadline,
            "the drain did not finish in 5 minutes"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let client_cpu = bench_support::own_cpu_seconds() - client_before;
    let server_cpu = server_before
        .zip(postmaster.and_then(bench_support::server_cpu_seconds))
        .map(|(a, b)| b - a);
    let peak_rss_kb = bench_support::status_kib("VmHWM");
    let snapshot = node.metrics().snapshot();
    let report = node.shutdown().await;
    assert!(report.drained, "the node did not shut down cleanly");

    let (completed, total): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE state = 'completed'), count(*) FROM oban_jobs",
    )
    .fetch_one(pool)
    .await
    .expect("count jobs");
    assert_eq!(
        (completed, total),
        (setup.jobs as i64, setup.jobs as i64),
        "every job must end completed"
    );
    let outcomes = Outcomes {
        insert_per_second,
        seconds,
        client_cpu,
        server_cpu,
        start_rss_kb,
        peak_rss_kb,
        claims: snapshot.claims,
        acks: snapshot.acks,
    };
    print_run(setup, &outcomes);
    outcomes
}

/// Empties `oban_jobs` and inserts `jobs` no-op jobs; returns the insert rate.
async fn fill(pool: &PgPool, client: &Client, jobs: usize) -> f64 {
    sqlx::query("TRUNCATE oban_jobs")
        .execute(pool)
        .await
        .expect("truncate");
    let batch: Vec<NewJob> = (0..jobs)
        .map(|i| Noop::new_job(&NoopArgs { i }).expect("a valid job"))
        .collect();
    let started = Instant::now();
    for chunk in batch.chunks(INSERT_CHUNK) {
        client.insert_all(chunk).await.expect("insert_all");
    }
    let rate = jobs as f64 / started.elapsed().as_secs_f64();
    // A live table has statistics; a freshly filled one would be planned as empty.
    sqlx::query("ANALYZE oban_jobs")
        .execute(pool)
        .await
        .expect("analyze");
    rate
}

/// Baselines for this server mode: a round trip, the insert rate, and the bare row writes.
/// Leaves `oban_jobs` filled with `jobs` available jobs.
async fn baselines(
    pool: &PgPool,
    client: &Client,
    mode: Durability,
    jobs: usize,
    postmaster: Option<u32>,
) -> Baseline {
    let mut conn = pool.acquire().await.expect("a connection");
    let started = Instant::now();
    for _ in 0..PINGS {
        sqlx::query("SELECT 1")
            .execute(&mut *conn)
            .await
            .expect("SELECT 1");
    }
    let ping_seconds = started.elapsed().as_secs_f64() / PINGS as f64;
    drop(conn);
    let insert_per_second = fill(pool, client, jobs).await;
    let (bare_per_second, bare_server_cpu) = bare_updates(pool, 1, postmaster).await;
    let (bare2_per_second, bare2_server_cpu) = bare_updates(pool, 2, postmaster).await;
    let baseline = Baseline {
        mode,
        ping_seconds,
        insert_per_second,
        bare_per_second,
        bare_server_cpu,
        bare2_per_second,
        bare2_server_cpu,
    };
    println!(
        "baselines: SELECT 1 round trip {:.1} µs; insert_all {:.0} jobs/s; bare UPDATEs {:.0} jobs/s \
         using {} µs of PostgreSQL CPU per job; on 2 connections {:.0} jobs/s using {} µs",
        baseline.ping_seconds * 1e6,
        baseline.insert_per_second,
        baseline.bare_per_second,
        micros(baseline.bare_server_cpu),
        baseline.bare2_per_second,
        micros(baseline.bare2_server_cpu),
    );
    baseline
}

/// The bare-UPDATE baseline on `connections` connections: a copy of `oban_jobs` (same rows and
/// indexes) is updated the way a drain changes it (available → executing → completed), in
/// batches of BARE_BATCH, with no locking or runtime. With two connections, batch i goes to
/// connection i % 2, so both work on neighbouring rows at once as a node's claim and ack do.
/// Returns jobs/s and PostgreSQL CPU µs per job.
async fn bare_updates(
    pool: &PgPool,
    connections: usize,
    postmaster: Option<u32>,
) -> (f64, Option<f64>) {
    let mut conns = Vec::with_capacity(connections);
    for _ in 0..connections {
        conns.push(pool.acquire().await.expect("a connection"));
    }
    for statement in [
        "DROP TABLE IF EXISTS bench_bare",
        "CREATE TABLE bench_bare (LIKE oban_jobs INCLUDING ALL)",
        "INSERT INTO bench_bare SELECT * FROM oban_jobs",
        "ANALYZE bench_bare",
        "CHECKPOINT",
    ] {
        sqlx::query(statement)
            .execute(&mut *conns[0])
            .await
            .expect(statement);
    }
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM bench_bare ORDER BY id")
        .fetch_all(&mut *conns[0])
        .await
        .expect("ids");
    let chunks: Vec<&[i64]> = ids.chunks(BARE_BATCH).collect();
    let server_before = postmaster.and_then(bench_support::server_cpu_seconds);
    let started = Instant::now();
    let runs = conns.iter_mut().enumerate().map(|(n, conn)| {
        let mine: Vec<&[i64]> = chunks.iter().skip(n).step_by(connections).copied().collect();
        async move {
            for chunk in mine {
                sqlx::query(
                    "UPDATE bench_bare SET state = 'executing', attempt = attempt + 1, \
                     attempted_at = timezone('UTC', now()) WHERE id = ANY($1)",
                )
                .bind(chunk)
                .execute(&mut **conn)
                .await
                .expect("bare claim update");
                sqlx::query(
                    "UPDATE bench_bare SET state = 'completed', completed_at = timezone('UTC', now()) \
                     WHERE id = ANY($1)",
                )
                .bind(chunk)
                .execute(&mut **conn)
                .await
                .expect("bare ack update");
            }
        }
    });
    futures::future::join_all(runs).await;
    let per_second = ids.len() as f64 / started.elapsed().as_secs_f64();
    let server_cpu = server_before
        .zip(postmaster.and_then(bench_support::server_cpu_seconds))
        .map(|(a, b)| (b - a) * 1e6 / ids.len() as f64);
    sqlx::query("DROP TABLE bench_bare")
        .execute(&mut *conns[0])
        .await
        .expect("drop bench_bare");
    (per_second, server_cpu)
}

fn print_run(setup: Setup, o: &Outcomes) {
    println!(
        "limit {:>5}  cooldown {}ms  ack batch {:>5}  ack writers {}  {:>6} jobs: {:>7.0} jobs/s in {:.2}s (inserted at {:.0}/s)",
        setup.limit,
        setup.cooldown_ms,
        setup.ack_batch_limit,
        setup.ack_writers,
        setup.jobs,
        setup.jobs as f64 / o.seconds,
        o.seconds,
        o.insert_per_second
    );
}

fn print_baselines(baselines: &[Baseline]) {
    println!("\n## Baselines\n");
    println!(
        "| server | SELECT 1 round trip µs | insert_all jobs/s | bare UPDATEs jobs/s | \
         bare UPDATEs PG CPU µs/job | bare UPDATEs on 2 connections jobs/s | on 2 connections PG CPU µs/job |"
    );
    println!("|---|--:|--:|--:|--:|--:|--:|");
    for b in baselines {
        println!(
            "| {} | {:.1} | {:.0} | {:.0} | {} | {:.0} | {} |",
            b.mode.label(),
            b.ping_seconds * 1e6,
            b.insert_per_second,
            b.bare_per_second,
            micros(b.bare_server_cpu),
            b.bare2_per_second,
            micros(b.bare2_server_cpu),
        );
    }
    println!(
        "\nbare UPDATEs: per job, the two row writes a drain makes (available → executing → \
         completed), {BARE_BATCH} rows per statement from one connection (or alternating batches \
         on two at once): no claim query, row locks, acks or runtime. Their CPU is the floor under \
         a drain's PostgreSQL CPU."
    );
}

fn print_table(rows: &[(Durability, Setup, Outcomes)], baselines: &[Baseline]) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("\n## Drains\n");
    println!(
        "| server | limit | cooldown | ack batch | ack writers | jobs | jobs/s | × bare UPDATEs | × bare on 2 conns | insert/s | \
         client CPU µs/job | PG CPU µs/job | PG CPU × bare | CPU busy | CPU ceiling jobs/s | \
         RSS start → peak MB | claims | jobs/claim | claim ms | acks | jobs/ack | ack ms |"
    );
    println!(
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
    );
    for (mode, setup, o) in rows {
        let baseline = baselines.iter().find(|b| b.mode == *mode);
        let per_job = |seconds: f64| seconds * 1e6 / setup.jobs as f64;
        let rate = setup.jobs as f64 / o.seconds;
        let server = o.server_cpu.map(per_job);
        let busy = (o.client_cpu + o.server_cpu.unwrap_or(0.0)) / o.seconds;
        let ceiling = server.map(|server| cores as f64 * 1e6 / (server + per_job(o.client_cpu)));
        let mean_ms = |(count, _, seconds): (u64, u64, f64)| {
            if count == 0 {
                0.0
            } else {
                seconds * 1e3 / count as f64
            }
        };
        let mb = |kb: Option<u64>| {
            kb.map_or_else(
                || "n/a".to_owned(),
                |kb| format!("{:.0}", kb as f64 / 1024.0),
            )
        };
        println!(
            "| {} | {} | {}ms | {} | {} | {} | {:.0} | {} | {} | {:.0} | {:.1} | {} | {} | {:.2} cores | {} | {} → {} | {} | {:.0} | {:.2} | {} | {:.0} | {:.2} |",
            mode.label(),
            setup.limit,
            setup.cooldown_ms,
            setup.ack_batch_limit,
            setup.ack_writers,
            setup.jobs,
            rate,
            baseline.map_or_else(
                || "n/a".to_owned(),
                |b| format!("{:.2}", rate / b.bare_per_second)
            ),
            baseline.map_or_else(
                || "n/a".to_owned(),
                |b| format!("{:.2}", rate / b.bare2_per_second)
            ),
            o.insert_per_second,
            per_job(o.client_cpu),
            micros(server),
            baseline
                .and_then(|b| server.zip(b.bare_server_cpu))
                .map_or_else(
                    || "n/a".to_owned(),
                    |(drain, bare)| format!("{:.2}", drain / bare)
                ),
            busy,
            ceiling.map_or_else(|| "n/a".to_owned(), |ceiling| format!("{ceiling:.0}")),
            mb(o.start_rss_kb),
            mb(o.peak_rss_kb),
            o.claims.0,
            o.claims.1 as f64 / o.claims.0.max(1) as f64,
            mean_ms(o.claims),
            o.acks.0,
            o.acks.1 as f64 / o.acks.0.max(1) as f64,
            mean_ms(o.acks),
        );
    }
    println!(
        "\nCPU busy: (client + PostgreSQL CPU) / wall time, out of {cores} cores shared with \
         whatever else runs. CPU ceiling: {cores} cores / (client + PostgreSQL CPU per job), the \
         rate the measured work per job allows when the cores do nothing else. claim ms / ack \
         ms: mean time of one claim round trip / one ack statement, from the node's metrics."
    );
}

/// Microseconds with one decimal, or `n/a`.
fn micros(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_owned(), |value| format!("{value:.1}"))
}

async fn print_header(pool: &PgPool, throwaway: bool, postmaster: Option<u32>) {
    let version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(pool)
        .await
        .expect("version");
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split(':').nth(1))
                .map(|model| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    println!("# oban-core drain benchmark");
    println!(
        "load average at the start: {}",
        bench_support::load_average()
    );
    println!(
        "{} × {cpu}; PostgreSQL {version} on {}; PostgreSQL CPU {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if throwaway {
            "a throwaway local cluster (oban_core::testing::TempPostgres)"
        } else {
            "DATABASE_URL"
        },
        if postmaster.is_some() {
            "read from /proc"
        } else {
            "not readable (not a local server)"
        }
    );
    if throwaway {
        println!(
            "note: the throwaway cluster starts with fsync, synchronous_commit and full_page_writes \
             off; the headline drain is repeated with them on."
        );
    }
}

/// The durability settings the pool's connections run with.
async fn settings(pool: &PgPool) -> String {
    let values: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, current_setting(name) FROM pg_settings WHERE name IN \
         ('fsync', 'synchronous_commit', 'full_page_writes', 'shared_buffers', 'wal_level') ORDER BY name",
    )
    .fetch_all(pool)
    .await
    .expect("settings");
    values
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Turns fsync, synchronous_commit and full_page_writes on or off, server-wide.
async fn set_durability(admin: &mut PgConnection, pool: &PgPool, on: bool) {
    let value = if on { "on" } else { "off" };
    for name in ["fsync", "synchronous_commit", "full_page_writes"] {
        admin
            .execute(AssertSqlSafe(format!("ALTER SYSTEM SET {name} = {value}")))
            .await
            .expect("ALTER SYSTEM");
    }
    admin
        .execute("SELECT pg_reload_conf()")
        .await
        .expect("reload");
    // Backends apply a reload before their next statement; wait until the pool's do.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let fsync: String = sqlx::query_scalar("SHOW fsync")
            .fetch_one(pool)
            .await
            .expect("SHOW fsync");
        if fsync == value {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not apply fsync = {value}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    admin.execute("CHECKPOINT").await.expect("checkpoint");
}

/// `url` pointing at `database` instead of its own.
fn database_url(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority = base.find("://").map_or(0, |i| i + 3);
    let path = base[authority..]
        .find('/')
        .map_or(base.len(), |i| authority + i);
    match query {
        Some(query) => format!("{}/{database}?{query}", &base[..path]),
        None => format!("{}/{database}", &base[..path]),
    }
}
