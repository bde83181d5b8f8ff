//! End-to-end badge throughput: enqueue badges as Elixir does, drain them with a GenerateBadge
//! node, and count the PrintCenter confirmations in the database.
//!
//! `cargo bench -p badge-forge --bench pipeline [-- --badges N] [--output DIR] [--layout FILE]
//! [--limit N] [--ack-linger-ms MS]`
//!
//! The badge node is set up as `badge-forge work --layout templates/layouts/default.toml` sets
//! it up: the default layout read from its file (`--layout` names another), queue limit
//! [`QUEUE_LIMIT`], ack linger [`ACK_LINGER`]; `--limit` and `--ack-linger-ms` change that, to
//! compare.
//!
//! Uses `DATABASE_URL` when set, else a throwaway cluster (fsync off: see oban-core's src/testing/temp_postgres.rs).
//! Printed: badges/s from the end of the enqueue to the last confirmation, render CPU ms per
//! badge (the render threads' own clocks) and PDF write ms per badge (wall time),
//! median and p95 PDF bytes, and peak RSS (VmHWM). PDFs go to a fresh directory under
//! `/dev/shm` (a tmpfs, which takes the file system out of the measurement) where there is
//! one, else the system temporary directory, or under `--output DIR`. The baseline,
//! measured in the same run on the same database, drains as many no-op jobs through the same
//! node machinery (claim, run, ack with one follow-up insert each) at its fastest (no ack
//! linger, which would only hold no-op jobs back): the ratio says what the rendering and file
//! writing cost on top of the queue itself. For both drains it also prints
//! the CPU per job of this process and of the PostgreSQL server (from /proc), and the rate
//! that CPU would allow on two otherwise idle cores: wall-clock rates on a shared machine
//! move with everyone else's load, CPU per job much less.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use badge_forge::fake_badges::fake_badges;
use badge_forge::output::OutputDir;
use badge_forge::render::{Design, EventInfo, Renderer};
use badge_forge::worker::{ACK_LINGER, GenerateBadge, PRINT_QUEUE, QUEUE_LIMIT, RenderStats};
use oban_core::config::{Config, QueueConfig};
use oban_core::insert::NewJob;
use oban_core::job::Job;
use oban_core::node::Node;
use oban_core::testing::TempPostgres;
use oban_core::worker::{Outcome, WorkResult, Worker, WorkerOptions};
use oban_core::{Client, Prefix, schema};
use serde_json::json;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// A worker that does no work but confirms like GenerateBadge: the queue's own cost.
struct NoOpConfirm;

impl Worker for NoOpConfirm {
    const NAME: &'static str = "Bench.NoOpConfirm";
    const OPTIONS: WorkerOptions = WorkerOptions {
        queue: "noop",
        ..WorkerOptions::DEFAULT
    };
    type Args = serde_json::Value;

    async fn process(&self, _args: serde_json::Value, job: &Job) -> WorkResult {
        let confirm =
            NewJob::new("BadgeForge.PrintCenter", &json!({"id": job.id}))?.queue(PRINT_QUEUE);
        Ok(Outcome::complete_and_insert(vec![confirm]))
    }
}

/// CPU seconds used so far by this process and by the PostgreSQL server, when it runs here.
fn cpu_now(postmaster: Option<u32>) -> (f64, Option<f64>) {
    (
        bench_support::own_cpu_seconds(),
        postmaster.and_then(bench_support::server_cpu_seconds),
    )
}

/// CPU per job between two [`cpu_now`] readings, in µs: (this process, PostgreSQL).
fn cpu_per_job(
    before: (f64, Option<f64>),
    after: (f64, Option<f64>),
    jobs: usize,
) -> (f64, Option<f64>) {
    let per_job = |seconds: f64| seconds * 1e6 / jobs as f64;
    (
        per_job(after.0 - before.0),
        after.1.zip(before.1).map(|(a, b)| per_job(a - b)),
    )
}

/// Confirmations inserted after row `after`, and the highest id among them. Only rows above
/// `after` are read, through the primary key: a count of the whole queue every 20 ms would
/// itself cost PostgreSQL a noticeable share of the CPU being measured.
const NEW_CONFIRMATIONS: &str = "SELECT count(*), coalesce(max(id), $1) FROM oban_jobs \
                                 WHERE id > $1 AND queue = 'printing'";

/// Waits until `target` confirmations exist (none before `started`); returns the time it took.
async fn drain(pool: &PgPool, target: i64, started: Instant) -> Duration {
    let (mut seen, mut after) = (0, 0);
    loop {
        let (count, highest): (i64, i64) = sqlx::query_as(NEW_CONFIRMATIONS)
            .bind(after)
            .fetch_one(pool)
            .await
            .unwrap();
        (seen, after) = (seen + count, highest);
        if seen >= target {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the drain stalled"
        );
    }
}

/// Where the PDFs go without `--output`: `/dev/shm` (tmpfs) where there is one.
fn default_output() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// The node as `badge-forge work` sets it up, on `queue`.
fn config(queue: &str, limit: usize, ack_linger: Duration) -> Config {
    Config {
        queues: vec![QueueConfig::new(queue, limit)],
        ack_linger,
        leadership: false,
        ..Config::default()
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let option = |name: &str| {
        args.iter()
            .position(|arg| arg == name)
            .and_then(|i| args.get(i + 1))
    };
    let badges: usize = option("--badges")
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000);
    let limit: usize = option("--limit")
        .and_then(|n| n.parse().ok())
        .unwrap_or(QUEUE_LIMIT);
    let ack_linger = option("--ack-linger-ms")
        .and_then(|n| n.parse().ok())
        .map_or(ACK_LINGER, Duration::from_millis);
    let output_parent = option("--output").map_or_else(default_output, Into::into);
    let layout = option("--layout").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../templates/layouts/default.toml"),
        Into::into,
    );
    let _private;
    let url = match std::env::var("DATABASE_URL") {
        Ok(url) => url,
        Err(_) => {
            let postgres = TempPostgres::start().expect("start a throwaway PostgreSQL");
            let url = postgres.url().to_owned();
            _private = postgres;
            url
        }
    };
    let pool = PgPoolOptions::new()
        .max_connections(12)
        .connect(&url)
        .await
        .unwrap();
    schema::migrate(&pool, &Prefix::default()).await.unwrap();
    sqlx::query("TRUNCATE oban_jobs")
        .execute(&pool)
        .await
        .unwrap();
    let client = Client::new(pool.clone(), Prefix::default());
    let postmaster = bench_support::postmaster_pid(&pool).await;

    // Baseline: the same number of no-op jobs, each confirming, through the same machinery.
    let jobs: Vec<NewJob> = (0..badges)
        .map(|i| NoOpConfirm::new_job(&json!({"i": i})).unwrap())
        .collect();
    client.insert_all(&jobs).await.unwrap();
    let cpu_before = cpu_now(postmaster);
    let started = Instant::now();
    let node = Node::builder(pool.clone())
        .config(config("noop", limit, Duration::ZERO))
        .worker(NoOpConfirm)
        .unwrap()
        .start()
        .await
        .unwrap();
    let baseline = drain(&pool, badges as i64, started).await;
    node.shutdown().await;
    let baseline_cpu = cpu_per_job(cpu_before, cpu_now(postmaster), badges);
    sqlx::query("TRUNCATE oban_jobs")
        .execute(&pool)
        .await
        .unwrap();

    // Badges, enqueued as Elixir's enqueue_batch does, rendered and confirmed.
    let output = output_parent.join(format!("bf-bench-{}", std::process::id()));
    let design = Design::load(&layout).expect("a valid layout");
    let renderer = Arc::new(Renderer::with_layout(EventInfo::default(), design).unwrap());
    let stats = Arc::new(RenderStats::default());
    let worker = GenerateBadge::new(
        renderer,
        OutputDir::create(&output, false).unwrap(),
        stats.clone(),
    );
    let people = fake_badges(badges, 2026);
    let jobs: Vec<NewJob> = people
        .iter()
        .map(|b| {
            NewJob::new(
                "badge_forge.generator.GenerateBadge",
                &json!({"id": b.id, "name": b.name, "company": b.company, "type": b.badge_type.to_string()}),
            )
            .unwrap()
            .queue("badges")
        })
        .collect();
    let enqueue_started = Instant::now();
    client.insert_all(&jobs).await.unwrap();
    let enqueue = enqueue_started.elapsed();
    let cpu_before = cpu_now(postmaster);
    let started = Instant::now();
    let node = Node::builder(pool.clone())
        .config(config("badges", limit, ack_linger))
        .worker(worker)
        .unwrap()
        .start()
        .await
        .unwrap();
    let took = drain(&pool, badges as i64, started).await;
    node.shutdown().await;
    let badge_cpu = cpu_per_job(cpu_before, cpu_now(postmaster), badges);

    let renders = stats.renders.load(Ordering::Relaxed).max(1) as f64;
    let render_ms = stats.render_nanos.load(Ordering::Relaxed) as f64 / renders / 1e6;
    let write_ms = stats.write_nanos.load(Ordering::Relaxed) as f64 / renders / 1e6;
    let mut sizes: Vec<u64> = std::fs::read_dir(&output)
        .unwrap()
        .filter_map(|entry| entry.ok()?.metadata().ok().map(|m| m.len()))
        .collect();
    sizes.sort_unstable();
    let pct = |p: f64| {
        sizes
            .get(((sizes.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(0)
    };
    let rate = badges as f64 / took.as_secs_f64();
    let baseline_rate = badges as f64 / baseline.as_secs_f64();
    println!(
        "badge pipeline, {badges} badges, layout {}, queue limit {limit}, ack linger {} ms, 2 cores shared with PostgreSQL",
        std::fs::canonicalize(&layout)
            .unwrap_or(layout.clone())
            .display(),
        ack_linger.as_millis()
    );
    println!(
        "  enqueue (insert_all)        {:>9.0} jobs/s",
        badges as f64 / enqueue.as_secs_f64()
    );
    println!("  baseline: no-op + confirm   {baseline_rate:>9.0} jobs/s");
    println!(
        "  badges end to end           {rate:>9.0} badges/s   ({:.2}x the baseline's time per job)",
        baseline_rate / rate
    );
    for (label, (own, server)) in [("baseline", baseline_cpu), ("badges", badge_cpu)] {
        let server_text = server.map_or("n/a".to_string(), |s| format!("{s:.0}"));
        // What the measured work allows on two cores that do nothing else.
        let ceiling = server.map_or("n/a".to_string(), |s| format!("{:.0}", 2e6 / (own + s)));
        println!(
            "  CPU per job, {label:<9}      {own:>6.0} µs node + {server_text} µs PostgreSQL -> ceiling {ceiling} jobs/s on 2 idle cores"
        );
    }
    println!("  render                      {render_ms:>9.3} ms CPU/badge");
    println!(
        "  write PDF                   {write_ms:>9.3} ms/badge   (into {})",
        output_parent.display()
    );
    println!(
        "  PDF size median / p95       {:>6} B / {} B",
        pct(0.5),
        pct(0.95)
    );
    println!(
        "  peak RSS                    {:>9.1} MiB",
        bench_support::peak_rss_mib().unwrap_or(0.0)
    );
    println!(
        "  vs the Python worker (15 badges/s here): {:.0}x",
        rate / 15.0
    );
    let _ = std::fs::remove_dir_all(output);
}
