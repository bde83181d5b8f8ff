//! Soak of the product (issue 5, scenario 8; issue 3's memory target): badges through the real
//! `badge-forge work` process, sampling its resident memory, open file descriptors and database
//! connections from start to end. Issue 3 asks for RSS flat under 64 MiB over 100,000 badges.
//!
//! Size: `SOAK_BADGES` (default 20,000, a CI-sized run; the full size is 100,000). It
//! samples every 100 ms and prints the curve (about 15 rows) and a `FAULTS |` row of the table in `docs/reliability.md`.
//! Full size by hand: build with
//! `cargo test --release -p badge-forge --test integration --no-run`, then run that binary with
//! `SOAK_BADGES=100000`, `--nocapture` and the filter `soak::`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::{ONE_AT_A_TIME, RustNode, count, database, output_dir};
use badge_forge::badge_args::BadgeArgs;
use badge_forge::fake_badges::fake_badges;
use badge_forge::worker::GenerateBadge;
use bench_support::soak::{Flatness, Sample, print_curve};
use oban_core::worker::Worker;
use oban_core::{Client, Prefix};
use sqlx::PgPool;

/// `application_name` of the node's connections, to count them.
const NODE_APP: &str = "bf-soak-node";
/// `badge-forge work`'s default `--pool-size`.
const POOL: i64 = 10;
/// Descriptors the node may hold beyond mid-run's: a PDF is written while its render permit
/// is held (one permit per core, one file open each), and the pool may open more connections.
const FD_HEADROOM: usize = 10;
/// Issue 3's ceiling on the node's resident memory.
const RSS_LIMIT_KB: u64 = 64 * 1024;
/// How often the node is sampled: dense enough that a run of a few seconds still has a mid-run
/// and an end apart from its start-up.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// Jobs inserted per batch, as Elixir's `enqueue_batch` would in waves.
const BATCH: i64 = 5_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn badges_keep_memory_fds_and_connections_flat() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let badges: i64 = std::env::var("SOAK_BADGES")
        .ok()
        .map(|n| n.parse().expect("SOAK_BADGES is a number"))
        // At 5,000 the renderer finished in ~4 s: mid-run fell inside start-up's heap growth.
        .unwrap_or(20_000);
    assert!(badges >= 1_000, "SOAK_BADGES below 1,000 shows no trend");
    let (pool, url) = database().await;
    let separator = if url.contains('?') { '&' } else { '?' };
    let node_url = format!("{url}{separator}application_name={NODE_APP}");
    let output = RemovedAtEnd(output_dir("soak"));
    let node = RustNode::start(&node_url, &output.0, "soak", &[]);
    let feeder = tokio::spawn(feed(pool.clone(), badges));

    let started = Instant::now();
    // A generous bound (50 badges/s) on a loaded machine; the target is 1,000/s.
    let limit = Duration::from_secs(60) + Duration::from_millis(20) * badges as u32;
    let mut curve = Vec::new();
    loop {
        let done = count(
            &pool,
            "SELECT count(*) FROM oban_jobs WHERE queue = 'badges' AND state = 'completed'",
        )
        .await;
        let connections: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1")
                .bind(NODE_APP)
                .fetch_one(&pool)
                .await
                .unwrap();
        curve.push(Sample::take(
            node.pid() as u32,
            started.elapsed().as_secs_f64(),
            done,
            connections,
        ));
        if done >= badges {
            break;
        }
        assert!(
            started.elapsed() < limit,
            "{done} of {badges} badges after {limit:?}"
        );
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
    let took = started.elapsed();
    feeder.await.unwrap();
    let (status, _) = node.terminate(Duration::from_secs(30));
    assert!(status.success(), "the soaked node stops cleanly: {status}");

    let (completed, unfinished, confirmations): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE queue = 'badges' AND state = 'completed'), \
                count(*) FILTER (WHERE queue = 'badges' AND state <> 'completed'), \
                count(*) FILTER (WHERE queue = 'printing') \
         FROM oban_jobs",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let (pdfs, others) = files(&output.0);

    print_curve(&format!("soak curve, {badges} badges"), &curve);
    let flat = Flatness::of(&curve);
    println!(
        "FAULTS | 8. soak ({badges} badges, badge-forge work) | {badges} | {completed} | {} | {} \
         | – | {:.0} badges/s over {:.0} s; RSS peak {:.1} MiB (limit 64), median {:.1} MiB mid-run \
         → {:.1} MiB at the end ({:.2}×; anonymous {:.1} → {:.1} MiB); fds {} → {} (peak {}); connections peak {} \
         (pool {POOL} + listener); {confirmations} confirmations, {pdfs} PDFs, {} other files |",
        confirmations - completed,
        badges - completed,
        completed as f64 / took.as_secs_f64(),
        took.as_secs_f64(),
        flat.rss_peak as f64 / 1024.0,
        flat.rss_mid as f64 / 1024.0,
        flat.rss_end as f64 / 1024.0,
        flat.rss_end as f64 / flat.rss_mid as f64,
        flat.anon_mid as f64 / 1024.0,
        flat.anon_end as f64 / 1024.0,
        flat.fds_mid,
        flat.fds_end,
        flat.fds_peak,
        flat.connections_peak,
        others.len()
    );

    assert_eq!(
        (completed, unfinished),
        (badges, 0),
        "every badge completed"
    );
    assert_eq!(confirmations, badges, "exactly one confirmation per badge");
    assert_eq!(pdfs, badges as usize, "one PDF per badge");
    assert!(others.is_empty(), "no temporary files left: {others:?}");
    assert!(
        flat.rss_peak < RSS_LIMIT_KB,
        "RSS peaked at {} kB, over 64 MiB",
        flat.rss_peak
    );
    // Flat: from mid-run to the end, at most 4 MiB more at the full size, where the heap has
    // levelled off (it grows during the first ~40,000 badges, docs/reliability.md): that
    // catches a leak of ~100 bytes per badge. A CI-sized run is still in that warm-up, and how
    // far the heap grows there depends on how many badges the load leaves in flight (beside
    // the whole suite it grew 5.6 MiB where alone it grows ~1), so it allows 8 MiB: a leak of
    // ~3 KB per badge, less than one badge's PDF, still fails it.
    let allowed_kb = if badges >= 40_000 { 4 * 1024 } else { 8 * 1024 };
    assert!(
        flat.rss_end <= flat.rss_mid + allowed_kb,
        "RSS grew from {} kB mid-run to {} kB at the end",
        flat.rss_mid,
        flat.rss_end
    );
    assert!(
        flat.fds_end <= flat.fds_mid + 2,
        "fds grew from {} to {}",
        flat.fds_mid,
        flat.fds_end
    );
    assert!(
        flat.fds_peak <= flat.fds_mid + FD_HEADROOM,
        "fds peaked at {}, more than one temporary file per running job over {}",
        flat.fds_peak,
        flat.fds_mid
    );
    assert!(
        flat.connections_peak <= POOL + 1,
        "{} connections",
        flat.connections_peak
    );
    assert!(
        curve.iter().any(|s| s.connections > 0),
        "the node's connections were never seen: is application_name applied?"
    );
}

/// Inserts `total` fake badge jobs (several locales, so many scripts and fonts are used) in
/// batches of [`BATCH`], keeping at least half a batch waiting, until all are in.
async fn feed(pool: PgPool, total: i64) {
    let client = Client::new(pool.clone(), Prefix::default());
    let mut fed = 0;
    while fed < total {
        let waiting = count(
            &pool,
            "SELECT count(*) FROM oban_jobs WHERE queue = 'badges' AND state = 'available'",
        )
        .await;
        if waiting < BATCH / 2 {
            let n = BATCH.min(total - fed);
            let jobs: Vec<_> = fake_badges(n as usize, fed as u64)
                .iter()
                .map(|badge| GenerateBadge::new_job(&BadgeArgs::of(badge)).unwrap())
                .collect();
            client.insert_all(&jobs).await.unwrap();
            fed += n;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The number of `badge-*.pdf` files in `dir`, and the names of any other files.
fn files(dir: &Path) -> (usize, Vec<String>) {
    let (mut pdfs, mut others) = (0, Vec::new());
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.starts_with("badge-") && name.ends_with(".pdf") {
            pdfs += 1;
        } else {
            others.push(name);
        }
    }
    (pdfs, others)
}

/// The output directory, removed when the test ends (100,000 PDFs are about 700 MB).
struct RemovedAtEnd(PathBuf);

impl Drop for RemovedAtEnd {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
