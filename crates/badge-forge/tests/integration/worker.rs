//! The GenerateBadge worker on a real PostgreSQL: the happy path as Elixir enqueues it, every
//! bad input, the confirmation committed with the completion, and disk errors (a real tmpfs,
//! full, then read-only).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use badge_forge::output::OutputDir;
use badge_forge::render::{EventInfo, Renderer};
use badge_forge::worker::GenerateBadge;
use oban_core::config::{Config, QueueConfig};
use oban_core::node::{Node, NodeHandle};
use oban_core::testing::fresh_database;
use oban_core::{Prefix, schema};
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// `Oban.insert_all` of a GenerateBadge job, as Elixir's `enqueue_batch` writes it.
const ELIXIR_INSERT: &str = "INSERT INTO oban_jobs (args, attempt, errors, max_attempts, meta, queue, state, tags, worker) \
     VALUES ($1, 0, '{}', 20, '{}', 'badges', 'available', '{}', 'badge_forge.generator.GenerateBadge') RETURNING id";

async fn database() -> PgPool {
    let url = fresh_database().await.expect("a test database");
    let pool = PgPoolOptions::new()
        .max_connections(10)
        .connect(&url)
        .await
        .unwrap();
    schema::migrate(&pool, &Prefix::default()).await.unwrap();
    pool
}

fn output_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bf-worker-{name}-{}", rand::random::<u32>()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn start(pool: &PgPool, dir: &Path, rescue_after: Duration) -> NodeHandle {
    let config = Config {
        queues: vec![QueueConfig::new("badges", 4)],
        poll_interval: Duration::from_millis(200),
        stage_interval: Duration::from_millis(200),
        rescue_interval: Duration::from_millis(200),
        shutdown_grace: Duration::from_secs(2),
        rescue_after,
        ..Config::default()
    };
    let renderer = Arc::new(Renderer::new(EventInfo::default()).unwrap());
    let output = OutputDir::create(dir, false).unwrap();
    Node::builder(pool.clone())
        .config(config)
        .worker(GenerateBadge::new(renderer, output, Arc::default()))
        .unwrap()
        .start()
        .await
        .unwrap()
}

async fn enqueue(pool: &PgPool, args: Value) -> i64 {
    sqlx::query_scalar(ELIXIR_INSERT)
        .bind(args)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn wait_for(pool: &PgPool, what: &str, query: &'static str, want: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let got: i64 = sqlx::query_scalar(query).fetch_one(pool).await.unwrap();
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {got} != {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn pdftotext(path: &str) -> String {
    let out = Command::new("pdftotext")
        .args([path, "-"])
        .output()
        .expect("pdftotext (poppler-utils) must be installed: run scripts/ensure-deps");
    assert!(out.status.success(), "pdftotext failed on {path}");
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn renders_writes_and_confirms_to_print_center_in_one_step() {
    let pool = database().await;
    let dir = output_dir("happy");
    let node = start(&pool, &dir, Duration::from_secs(300)).await;
    let id = enqueue(
        &pool,
        json!({"id": "7f1c", "name": "Zoë Saldaña", "company": "Acme", "type": "speaker"}),
    )
    .await;
    let legacy = enqueue(
        &pool,
        json!({"badge_id": 99, "name": "Ada", "company": "", "type": "organizer", "x": true}),
    )
    .await;
    wait_for(
        &pool,
        "two confirmations",
        "SELECT count(*) FROM oban_jobs WHERE queue = 'printing'",
        2,
    )
    .await;
    node.shutdown().await;

    let states: Vec<String> =
        sqlx::query_scalar("SELECT state::text FROM oban_jobs WHERE id = ANY($1)")
            .bind(vec![id, legacy])
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(states, ["completed", "completed"]);
    let confirmations: Vec<(String, String, Value, i32)> = sqlx::query_as(
        "SELECT worker, state::text, args, max_attempts FROM oban_jobs WHERE queue = 'printing' ORDER BY args->>'id'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let dir = std::fs::canonicalize(&dir).unwrap();
    for ((worker, state, args, max_attempts), (badge_id, name)) in confirmations
        .iter()
        .zip([("7f1c", "Zoë Saldaña"), ("99", "Ada")])
    {
        assert_eq!(
            (worker.as_str(), state.as_str(), *max_attempts),
            ("BadgeForge.PrintCenter", "available", 20)
        );
        let path = args["path"].as_str().unwrap();
        assert_eq!(args, &json!({"id": badge_id, "name": name, "path": path}));
        assert_eq!(
            PathBuf::from(path),
            dir.join(format!("badge-{badge_id}.pdf"))
        );
        assert!(std::fs::read(path).unwrap().starts_with(b"%PDF-"));
        assert!(
            pdftotext(path).contains(name),
            "the PDF does not show {name}"
        );
    }
}

#[tokio::test]
async fn bad_input_is_discarded_at_once_with_a_clear_error_and_blocks_nothing() {
    let pool = database().await;
    let dir = output_dir("bad");
    let node = start(&pool, &dir, Duration::from_secs(300)).await;
    let good = json!({"id": "ok1", "name": "Grace Hopper", "company": "Navy", "type": "attendee"});
    let cases = [
        (
            json!({"id": "b1", "company": "x", "type": "attendee"}),
            "missing field `name`",
        ),
        (
            json!({"id": "b2", "name": ["x"], "company": "x", "type": "attendee"}),
            "name: invalid type: sequence, expected a string",
        ),
        (
            json!({"id": "b3", "name": "x", "company": "x", "type": "v/ip"}),
            "badge type \"v/ip\" must be 1 to 32 letters",
        ),
        (
            json!({"id": "b4", "name": "   ", "company": "x", "type": "attendee"}),
            "name",
        ),
        (
            json!({"id": "b5", "name": "a\u{7}b", "company": "x", "type": "attendee"}),
            "control",
        ),
        (
            json!({"id": "b6", "name": "x".repeat(10_000), "company": "x", "type": "attendee"}),
            "long",
        ),
        (
            json!({"id": "../../etc/passwd", "name": "x", "company": "x", "type": "attendee"}),
            "\"id\"",
        ),
        (
            json!({"name": "x", "company": "x", "type": "attendee"}),
            "missing key \"id\"",
        ),
    ];
    let mut ids = Vec::new();
    for (args, _) in &cases {
        ids.push(enqueue(&pool, args.clone()).await);
    }
    let good_id = enqueue(&pool, good).await;
    wait_for(&pool, "every job to finish", "SELECT count(*) FROM oban_jobs WHERE queue = 'badges' AND state IN ('completed', 'discarded')", 9).await;
    node.shutdown().await;
    for ((_, expected), id) in cases.iter().zip(ids) {
        let (state, attempt, errors): (String, i32, Value) = sqlx::query_as(
            "SELECT state::text, attempt, to_jsonb(errors) FROM oban_jobs WHERE id = $1",
        )
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
        let error = errors[0]["error"]
            .as_str()
            .unwrap_or_default()
            .to_lowercase();
        assert_eq!(
            (state.as_str(), attempt),
            ("discarded", 1),
            "job {id}: {error}"
        );
        assert!(
            error.contains(&expected.to_lowercase()),
            "job {id}: {error:?} should mention {expected:?}"
        );
    }
    let good_state: String = sqlx::query_scalar("SELECT state::text FROM oban_jobs WHERE id = $1")
        .bind(good_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(good_state, "completed");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        files,
        ["badge-ok1.pdf"],
        "only the good badge is written, nothing outside or temporary"
    );
}

#[tokio::test]
async fn a_node_dying_between_render_and_commit_sends_no_confirmation_and_the_retry_sends_one() {
    let pool = database().await;
    let dir = output_dir("crash");
    // The ack statement (completion + confirmation) fails while this trigger exists, as if the
    // node died after writing the PDF and before committing.
    sqlx::query(
        "CREATE FUNCTION refuse_confirmations() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'database went away'; END $$",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("CREATE TRIGGER refuse BEFORE INSERT ON oban_jobs FOR EACH ROW WHEN (NEW.queue = 'printing') EXECUTE FUNCTION refuse_confirmations()")
        .execute(&pool)
        .await
        .unwrap();
    let node = start(&pool, &dir, Duration::from_secs(300)).await;
    let id = enqueue(
        &pool,
        json!({"id": "c1", "name": "Linus", "company": "", "type": "sponsor"}),
    )
    .await;
    let pdf = dir.join("badge-c1.pdf");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !pdf.exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the badge was never rendered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    node.shutdown().await;
    let (state, confirmations): (String, i64) = sqlx::query_as(
        "SELECT (SELECT state::text FROM oban_jobs WHERE id = $1), (SELECT count(*) FROM oban_jobs WHERE queue = 'printing')",
    )
    .bind(id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (state.as_str(), confirmations),
        ("executing", 0),
        "no confirmation without the completion"
    );

    // The database is back; another node rescues the orphan and the retry confirms once.
    sqlx::query("DROP TRIGGER refuse ON oban_jobs")
        .execute(&pool)
        .await
        .unwrap();
    let node = start(&pool, &dir, Duration::from_millis(500)).await;
    wait_for(
        &pool,
        "the rescued badge to complete",
        "SELECT count(*) FROM oban_jobs WHERE queue = 'badges' AND state = 'completed'",
        1,
    )
    .await;
    node.shutdown().await;
    let confirmations: i64 =
        sqlx::query_scalar("SELECT count(*) FROM oban_jobs WHERE queue = 'printing'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(confirmations, 1);
}

#[tokio::test]
async fn a_full_or_read_only_disk_retries_with_backoff_and_succeeds_once_the_disk_is_back() {
    let pool = database().await;
    // A real file system of its own: 512 KiB of tmpfs, filled to the last page.
    let disk = Tmpfs::mount("disk", "512k");
    let filler = disk.fill();
    let node = start(&pool, disk.path(), Duration::from_secs(300)).await;
    let id = enqueue(
        &pool,
        json!({"id": "d1", "name": "Disk Full", "company": "", "type": "attendee"}),
    )
    .await;

    // Disk full: the temporary file is created, its write fails with ENOSPC.
    wait_for(
        &pool,
        "the first failure",
        "SELECT count(*) FROM oban_jobs WHERE state = 'retryable' AND cardinality(errors) = 1",
        1,
    )
    .await;
    let (error, delay) = last_error(&pool, id).await;
    assert!(
        error.contains("writing") && error.contains("badge-d1.pdf"),
        "the error names the file: {error}"
    );
    assert!(
        error.contains("No space left on device"),
        "the error names the cause: {error}"
    );
    assert!(delay >= 16.9, "retried with backoff, not at once: {delay}s");
    assert_eq!(disk.files(), ["filler"], "no partial PDF or temporary file");

    // Space is back but the file system is read-only: EROFS, at the temporary file's creation.
    std::fs::remove_file(filler).unwrap();
    disk.remount("ro");
    retry_now(&pool, id).await;
    wait_for(
        &pool,
        "the second failure",
        "SELECT count(*) FROM oban_jobs WHERE state = 'retryable' AND cardinality(errors) = 2",
        1,
    )
    .await;
    let (error, delay) = last_error(&pool, id).await;
    assert!(
        error.contains("badge-d1.pdf") && error.contains("Read-only file system"),
        "the error names the file and the cause: {error}"
    );
    assert!(delay >= 16.9, "retried with backoff, not at once: {delay}s");
    assert!(disk.files().is_empty(), "nothing written");

    // Writable again: the next attempt writes the badge and confirms it, once.
    disk.remount("rw");
    retry_now(&pool, id).await;
    wait_for(
        &pool,
        "the retry to complete",
        "SELECT count(*) FROM oban_jobs WHERE state = 'completed'",
        1,
    )
    .await;
    node.shutdown().await;
    assert_eq!(
        disk.files(),
        ["badge-d1.pdf"],
        "the PDF alone, no leftovers"
    );
    let pdf = disk.path().join("badge-d1.pdf");
    assert!(pdftotext(pdf.to_str().unwrap()).contains("Disk Full"));
    let (attempt, confirmations): (i32, i64) = sqlx::query_as(
        "SELECT (SELECT attempt FROM oban_jobs WHERE id = $1), \
                (SELECT count(*) FROM oban_jobs WHERE queue = 'printing')",
    )
    .bind(id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((attempt, confirmations), (3, 1));
}

/// The latest error entry of job `id`, and how long after that attempt its retry is scheduled.
async fn last_error(pool: &PgPool, id: i64) -> (String, f64) {
    sqlx::query_as(
        "SELECT errors[cardinality(errors)]->>'error', \
                extract(epoch FROM scheduled_at - attempted_at)::float8 \
         FROM oban_jobs WHERE id = $1",
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Makes the retryable job `id` due now instead of after its backoff.
async fn retry_now(pool: &PgPool, id: i64) {
    sqlx::query("UPDATE oban_jobs SET scheduled_at = timezone('UTC', now()) WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await
        .unwrap();
}

/// A small tmpfs of the test's own as an output directory (tests run as root, here and in CI),
/// unmounted when dropped, so a failing test leaves no mount behind.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(name: &str, size: &str) -> Self {
        let disk = Self {
            dir: output_dir(name),
        };
        mount(
            &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"],
            &disk.dir,
        );
        disk
    }

    fn path(&self) -> &Path {
        &self.dir
    }

    /// `mount -o remount,<options>`: `ro` or `rw`.
    fn remount(&self, options: &str) {
        mount(&["-o", &format!("remount,{options}")], &self.dir);
    }

    /// Fills the file system with one file until a write fails with ENOSPC; returns its path.
    fn fill(&self) -> PathBuf {
        let path = self.dir.join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let page = [0u8; 4096];
        loop {
            match file.write_all(&page) {
                Ok(()) => {}
                Err(error) if error.raw_os_error() == Some(libc::ENOSPC) => return path,
                Err(error) => panic!("filling the tmpfs: {error}"),
            }
        }
    }

    /// The names in the directory, sorted.
    fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: detached at once even if a failed test still holds a file open in it.
        let _ = Command::new("umount").arg("--lazy").arg(&self.dir).status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Runs `mount ARGS DIR`; fails the test saying why if it cannot (never a silent skip).
fn mount(args: &[&str], dir: &Path) {
    let out = Command::new("mount")
        .args(args)
        .arg(dir)
        .output()
        .unwrap_or_else(|error| panic!("cannot run mount ({error}): util-linux is needed"));
    assert!(
        out.status.success(),
        "`mount {} {}` failed: {}. This test mounts a small tmpfs to fill it and remount it \
         read-only: it must run as root (or with CAP_SYS_ADMIN), as scripts/test and CI do",
        args.join(" "),
        dir.display(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}
