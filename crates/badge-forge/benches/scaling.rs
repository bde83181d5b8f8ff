//! Many nodes on one database: 1, 2 and 4 `badge-forge work` processes (distinct `--node`, set
//! up as `badge-forge work` sets itself up: queue limit 128, 50 ms ack linger) drain one queue
//! on a private PostgreSQL, for two workloads:
//!
//! - `no-op`: jobs whose args GenerateBadge rejects at once (type "v/ip" is no type name), so
//!   each costs a claim and a discarding ack and nothing else: the database's cost per job,
//!   undiluted;
//! - `badges`: real badges, rendered to PDF, each confirmed with a PrintCenter job.
//!
//! For each run it prints jobs/s, duplicates (attempts past the first, or extra confirmations:
//! must be 0), lock waits (sampled `pg_locks` rows not granted), jobs per claim statement,
//! database time per job (`pg_stat_statements` execution time, and the CPU time of the server's
//! processes from /proc, less the sampler's own backend), the nodes' CPU per job, WAL bytes per
//! job and the most connections seen. On 2 cores the nodes and the server share the CPU, so
//! jobs/s is bounded by the machine, not by the database; the per-job costs are what
//! `docs/scaling.md` builds on.
//!
//! `cargo bench -p badge-forge --bench scaling` (env `SCALING_NOOP_JOBS`, `SCALING_BADGE_JOBS`
//! change the sizes, default 10,000 and 2,000; `SCALING_NODE_ARGS` adds arguments to every
//! `badge-forge work`, e.g. `"--queue badges=10 --ack-linger 0"` for many small claims).

// The benchmark creates and drops its own databases by name; clippy.toml's list guards product code.
#![allow(clippy::disallowed_methods)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oban_core::testing::TempPostgres;
use sqlx::{Connection, PgConnection, PgPool};

const BADGE_FORGE: &str = env!("CARGO_BIN_EXE_badge-forge");

#[derive(Clone, Copy, PartialEq)]
enum Workload {
    Noop,
    Badges,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Noop => "no-op",
            Workload::Badges => "badges",
        }
    }
}

struct Row {
    workload: Workload,
    nodes: usize,
    jobs: i64,
    seconds: f64,
    duplicates: i64,
    lock_wait_samples: usize,
    samples: usize,
    max_lock_waits: i64,
    exec_ms: f64,
    cpu_ms: f64,
    wal_bytes: f64,
    max_connections: i64,
    jobs_per_claim: f64,
    node_cpu_ms: f64,
}

fn main() {
    let noop_jobs = size("SCALING_NOOP_JOBS", 10_000);
    let badge_jobs = size("SCALING_BADGE_JOBS", 2_000);
    let node_args: Vec<String> = std::env::var("SCALING_NODE_ARGS")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let cluster = TempPostgres::builder()
        .setting("shared_preload_libraries", "'pg_stat_statements'")
        .setting("pg_stat_statements.track", "all")
        .start()
        .expect("a private PostgreSQL (see scripts/ensure-deps)");
    // On a shared machine the figures move with everyone else's load: say what it was.
    println!(
        "load average at the start: {}",
        bench_support::load_average()
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut rows = Vec::new();
    for (workload, jobs) in [(Workload::Noop, noop_jobs), (Workload::Badges, badge_jobs)] {
        for nodes in [1, 2, 4] {
            let row = runtime.block_on(run(&cluster, workload, nodes, jobs, &node_args));
            print_row(&row);
            rows.push(row);
        }
    }
    println!();
    println!(
        "| workload | nodes | jobs | jobs/s | duplicates | lock waits (samples, max) | jobs/claim | SQL exec ms/job | server CPU ms/job | nodes' CPU ms/job | WAL bytes/job | connections |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for row in &rows {
        println!(
            "| {} | {} | {} | {:.0} | {} | {}/{}, max {} | {:.1} | {:.3} | {:.3} | {:.3} | {:.0} | {} |",
            row.workload.name(),
            row.nodes,
            row.jobs,
            row.jobs as f64 / row.seconds,
            row.duplicates,
            row.lock_wait_samples,
            row.samples,
            row.max_lock_waits,
            row.jobs_per_claim,
            row.exec_ms,
            row.cpu_ms,
            row.node_cpu_ms,
            row.wal_bytes,
            row.max_connections
        );
    }
    println!(
        "\nload average at the end: {}",
        bench_support::load_average()
    );
    assert!(
        rows.iter().all(|row| row.duplicates == 0),
        "a job ran twice"
    );
}

fn size(var: &str, default: i64) -> i64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn print_row(row: &Row) {
    eprintln!(
        "scaling: {} x{}: {} jobs in {:.2} s ({:.0}/s), {} duplicates, {:.3} ms SQL and {:.3} ms server CPU per job",
        row.workload.name(),
        row.nodes,
        row.jobs,
        row.seconds,
        row.jobs as f64 / row.seconds,
        row.duplicates,
        row.exec_ms,
        row.cpu_ms
    );
}

async fn run(
    cluster: &TempPostgres,
    workload: Workload,
    nodes: usize,
    jobs: i64,
    node_args: &[String],
) -> Row {
    let name = format!("scaling_{}_{nodes}", workload.name().replace('-', ""));
    let mut admin = PgConnection::connect(cluster.url()).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
    let url = database_url(cluster.url(), &name);
    command(&["migrate", "--database-url", &url]);
    let pool = PgPool::connect(&url).await.unwrap();
    match workload {
        Workload::Badges => command(&[
            "enqueue",
            "--database-url",
            &url,
            "--count",
            &jobs.to_string(),
        ]),
        Workload::Noop => {
            sqlx::query(
                "INSERT INTO oban_jobs (worker, queue, args, max_attempts) \
                 SELECT 'badge_forge.generator.GenerateBadge', 'badges', \
                        jsonb_build_object('id', g::text, 'name', 'N', 'company', 'C', 'type', 'v/ip'), 1 \
                 FROM generate_series(1, $1) AS g",
            )
            .bind(jobs)
            .execute(&pool)
            .await
            .unwrap();
        }
    }
    // One statement each: several in one simple query run as one transaction, which VACUUM
    // refuses.
    for statement in [
        "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
        "VACUUM ANALYZE oban_jobs",
    ] {
        sqlx::raw_sql(statement).execute(&pool).await.unwrap();
    }
    sqlx::query("SELECT pg_stat_statements_reset()")
        .execute(&pool)
        .await
        .unwrap();
    let wal_start: i64 = scalar(&pool, "SELECT (pg_current_wal_lsn() - '0/0')::int8").await;
    // The sampler below has a connection of its own, whose backend's CPU is taken out of the
    // server's: its counting queries would otherwise be billed to the jobs.
    let mut sampler = PgConnection::connect(&url).await.unwrap();
    let sampler_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut sampler)
        .await
        .unwrap();
    let postmaster = bench_support::postmaster_pid(&pool)
        .await
        .expect("the bench's own cluster runs on this machine");
    // CPU time (ms) of the whole server so far: backends, background processes and the
    // children it reaped.
    let server_cpu_ms = || bench_support::server_cpu_seconds(postmaster).unwrap_or(0.0) * 1000.0;
    let sampler_start = process_cpu_ms(sampler_pid as u32);
    let cpu_start = server_cpu_ms();

    let output = std::env::temp_dir().join(format!("bf-scaling-{name}-{}", std::process::id()));
    let workers: Vec<Child> = (0..nodes)
        .map(|i| {
            Command::new(BADGE_FORGE)
                .args([
                    "work",
                    "--database-url",
                    &url,
                    "--node",
                    &format!("bench-{i}"),
                ])
                .args(node_args)
                .arg("--output")
                .arg(&output)
                .env("RUST_LOG", "error")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .expect("start badge-forge work")
        })
        .collect();

    let started = Instant::now();
    let (mut samples, mut lock_wait_samples, mut max_lock_waits, mut max_connections) =
        (0, 0, 0, 0);
    loop {
        let (done, waits, connections): (i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM oban_jobs WHERE queue = 'badges' AND state IN ('completed', 'discarded')), \
                    (SELECT count(*) FROM pg_locks WHERE NOT granted), \
                    (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database())",
        )
        .fetch_one(&mut sampler)
        .await
        .unwrap();
        samples += 1;
        lock_wait_samples += usize::from(waits > 0);
        max_lock_waits = max_lock_waits.max(waits);
        // Less this sampler's own connection.
        max_connections = max_connections.max(connections - 1);
        if done == jobs {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "{done} of {jobs} after 15 minutes"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu_ms = server_cpu_ms() - cpu_start - (process_cpu_ms(sampler_pid as u32) - sampler_start);
    sampler.close().await.unwrap();
    let wal_end: i64 = scalar(&pool, "SELECT (pg_current_wal_lsn() - '0/0')::int8").await;
    let exec_ms: f64 = scalar(
        &pool,
        "SELECT coalesce(sum(total_exec_time), 0)::float8 FROM pg_stat_statements \
         WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
           AND query NOT LIKE '%pg_stat_activity%'",
    )
    .await;
    // Rows per claim statement, from the claim's own comment line (sql/claim.sql).
    let jobs_per_claim: f64 = scalar(
        &pool,
        "SELECT coalesce(sum(rows)::float8 / nullif(sum(calls), 0), 0) FROM pg_stat_statements \
         WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
           AND query LIKE '-- Claims up to%'",
    )
    .await;
    // The nodes' CPU since they started (start-up included, which is small next to the run).
    let node_cpu_ms: f64 = workers
        .iter()
        .map(|worker| process_cpu_ms(worker.id()))
        .sum();
    for worker in workers {
        let _ = Command::new("kill")
            .args(["-TERM", &worker.id().to_string()])
            .status();
        let _ = { worker }.wait();
    }
    let duplicates: i64 = scalar(
        &pool,
        "SELECT (SELECT count(*) FROM oban_jobs WHERE queue = 'badges' AND attempt > 1) \
              + (SELECT count(*) - count(DISTINCT args->>'id') FROM oban_jobs WHERE queue = 'printing')",
    )
    .await;
    pool.close().await;
    let _ = std::fs::remove_dir_all(&output);
    Row {
        workload,
        nodes,
        jobs,
        seconds,
        duplicates,
        lock_wait_samples,
        samples,
        max_lock_waits,
        exec_ms: exec_ms / jobs as f64,
        cpu_ms: cpu_ms / jobs as f64,
        wal_bytes: (wal_end - wal_start) as f64 / jobs as f64,
        max_connections,
        jobs_per_claim,
        node_cpu_ms: node_cpu_ms / jobs as f64,
    }
}

/// `url` (which names a database in its path, and no query) pointing at `database` instead.
fn database_url(url: &str, database: &str) -> String {
    let (server, _) = url
        .rsplit_once('/')
        .expect("a connection URL with a database path");
    format!("{server}/{database}")
}

async fn scalar<T>(pool: &PgPool, sql: &'static str) -> T
where
    T: Send + Unpin + for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

fn command(args: &[&str]) {
    let status = Command::new(BADGE_FORGE)
        .args(args)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "badge-forge {args:?} failed");
}

/// CPU time (user + system, ms) of one process so far.
fn process_cpu_ms(pid: u32) -> f64 {
    bench_support::process_cpu_seconds(pid).unwrap_or(0.0) * 1000.0
}
