//! The GenerateBadge worker on a real PostgreSQL: the happy path as Elixir enqueues it, every
//! bad input, the confirmation committed with the completion, and disk errors.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use badge_forge::output::OutputDir;
use badge_forge::render::{EventInfo, Renderer};
use badge_forge::worker::GenerateBadge;
use oban_core::config::{Config, QueueConfig};
use oban_core::node::{Node, NodeHandle};
use oban_core::temp_postgres::fresh_database;
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
    let out = std::process::Command::new("pdftotext")
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
            "missing key \"name\"",
        ),
        (
            json!({"id": "b2", "name": ["x"], "company": "x", "type": "attendee"}),
            "\"name\" must be a string",
        ),
        (
            json!({"id": "b3", "name": "x", "company": "x", "type": "vip"}),
            "unknown badge type \"vip\"",
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
async fn a_disk_error_retries_with_backoff_and_succeeds_once_the_disk_is_back() {
    let pool = database().await;
    let dir = output_dir("disk");
    let node = start(&pool, &dir, Duration::from_secs(300)).await;
    // Replace the output directory with a file: every write fails (as root, permissions would not).
    let aside = dir.with_extension("aside");
    std::fs::rename(&dir, &aside).unwrap();
    std::fs::write(&dir, b"not a directory").unwrap();
    let id = enqueue(
        &pool,
        json!({"id": "d1", "name": "Disk", "company": "", "type": "attendee"}),
    )
    .await;
    wait_for(
        &pool,
        "the job to be retryable",
        "SELECT count(*) FROM oban_jobs WHERE state = 'retryable'",
        1,
    )
    .await;
    let (error, delay): (String, f64) = sqlx::query_as(
        "SELECT errors[1]->>'error', extract(epoch FROM scheduled_at - attempted_at)::float8 FROM oban_jobs WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        error.contains("writing") && error.contains("badge-d1.pdf"),
        "{error}"
    );
    assert!(delay >= 16.9, "retried with backoff, not at once: {delay}s");

    std::fs::remove_file(&dir).unwrap();
    std::fs::rename(&aside, &dir).unwrap();
    sqlx::query("UPDATE oban_jobs SET scheduled_at = timezone('UTC', now()) WHERE id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    wait_for(
        &pool,
        "the retry to complete",
        "SELECT count(*) FROM oban_jobs WHERE state = 'completed'",
        1,
    )
    .await;
    node.shutdown().await;
    assert!(dir.join("badge-d1.pdf").exists());
    let leftovers = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".tmp")
        })
        .count();
    assert_eq!(leftovers, 0, "no partial PDF is left behind");
}
