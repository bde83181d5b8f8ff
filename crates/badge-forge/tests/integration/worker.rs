//! The GenerateBadge worker, through oban-core's testing helpers: every bad input and disk
//! errors (a real tmpfs, full, then read-only) with `perform_job`, as a node would end them;
//! jobs as Elixir enqueues them drained from a real PostgreSQL, their confirmations found
//! with `assert_enqueued`; and a node dying between render and commit, rescued by another.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use badge_forge::output::OutputDir;
use badge_forge::render::{Design, EventInfo, Renderer};
use badge_forge::worker::{GenerateBadge, PRINT_CENTER, PRINT_QUEUE};
use oban_core::backoff::base_backoff;
use oban_core::config::{Config, QueueConfig};
use oban_core::drain::{DrainCounts, DrainOptions};
use oban_core::insert::NewJob;
use oban_core::job::JobState;
use oban_core::jobs::JobFilter;
use oban_core::node::{Node, NodeHandle};
use oban_core::testing::{
    all_enqueued, assert_enqueued, eventually, perform_attempt, perform_job, refute_enqueued,
};
use oban_core::worker::{Registry, Worker};
use oban_core::{Client, Prefix};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::{database, output_dir, pdftotext, wait_for_count};

/// `Oban.insert_all` of a GenerateBadge job, as Elixir's `enqueue_batch` writes it.
const ELIXIR_INSERT: &str = "INSERT INTO oban_jobs (args, attempt, errors, max_attempts, meta, queue, state, tags, worker) \
     VALUES ($1, 0, '{}', 20, '{}', 'badges', 'available', '{}', 'badge_forge.generator.GenerateBadge') RETURNING id";

/// A worker writing into `dir`.
fn generate_badge(dir: &Path) -> GenerateBadge {
    let renderer = Arc::new(Renderer::new(EventInfo::default()).unwrap());
    let output = OutputDir::create(dir, false).unwrap();
    GenerateBadge::new(renderer, output, Arc::default())
}

/// A badge job with `args` as given, however wrong (`new_job` takes only args that decode),
/// with the worker's options.
fn badge_job(args: &Value) -> NewJob {
    NewJob::for_worker::<GenerateBadge>(args.clone()).unwrap()
}

/// The PrintCenter confirmations waiting to run.
fn confirmations() -> JobFilter {
    JobFilter::all().worker(PRINT_CENTER).queue(PRINT_QUEUE)
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
    Node::builder(pool.clone())
        .config(config)
        .worker(generate_badge(dir))
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

#[tokio::test]
async fn renders_writes_and_confirms_to_print_center_in_one_step() {
    let (pool, _) = database().await;
    let client = Client::new(pool.clone(), Prefix::default());
    let dir = output_dir("happy");
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
    let mut registry = Registry::default();
    registry.register(generate_badge(&dir)).unwrap();
    let both_completed = DrainCounts {
        success: 2,
        ..DrainCounts::default()
    };
    let drained = client.drain_queue("badges", &registry, DrainOptions::default());
    assert_eq!(drained.await.unwrap(), both_completed);

    for id in [id, legacy] {
        let state = client.get_job(id).await.unwrap().unwrap().state.0;
        assert_eq!(state, JobState::Completed, "job {id}");
    }
    assert_eq!(
        all_enqueued(&client, &confirmations()).await.unwrap().len(),
        2
    );
    let dir = std::fs::canonicalize(&dir).unwrap();
    for (badge_id, name) in [("7f1c", "Zoë Saldaña"), ("99", "Ada")] {
        let path = dir.join(format!("badge-{badge_id}.pdf"));
        let path = path.to_str().unwrap();
        let args = json!({"id": badge_id, "name": name, "path": path});
        let confirmation =
            assert_enqueued(&client, &confirmations().args_contain(&args).unwrap()).await;
        assert_eq!(
            (confirmation.args, confirmation.max_attempts),
            (args, 20),
            "exactly these args, Oban's default attempts"
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
    let dir = output_dir("bad");
    let worker = generate_badge(&dir);
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
    for (args, expected) in &cases {
        // Discarded on the first of its 5 attempts: bad input is never retried.
        let performed = perform_job(&worker, &badge_job(args)).await;
        let error = performed.error.unwrap_or_default().to_lowercase();
        assert_eq!(performed.state, JobState::Discarded, "{args}: {error}");
        assert!(
            error.contains(&expected.to_lowercase()),
            "{args}: {error:?} should mention {expected:?}"
        );
        assert!(performed.then_insert.is_empty(), "{args}: no confirmation");
    }
    // The same worker then renders a good badge.
    let good = json!({"id": "ok1", "name": "Grace Hopper", "company": "Navy", "type": "attendee"});
    let performed = perform_job(&worker, &badge_job(&good)).await;
    assert_eq!(performed.state, JobState::Completed);
    assert_eq!(performed.then_insert.len(), 1, "one confirmation");
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

/// A job without a field its layout marks `required` is bad input like any other: discarded
/// on its first attempt with an error entry naming the field, while a job that has it prints.
#[tokio::test]
async fn a_job_lacking_a_field_its_layout_requires_is_discarded_naming_the_field() {
    let layouts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../templates/layouts");
    let source = std::fs::read_to_string(layouts.join("pronouns.toml"))
        .unwrap()
        .replace(
            "text = \"{args.pronouns}\"",
            "text = \"{args.pronouns}\"\nrequired = true",
        );
    let design = Design::parse("required.toml", &source, &layouts).unwrap();
    let renderer = Arc::new(Renderer::with_layout(EventInfo::default(), design).unwrap());
    let dir = output_dir("required");
    let output = OutputDir::create(&dir, false).unwrap();
    let worker = GenerateBadge::new(renderer, output, Arc::default());

    let lacking = json!({"id": "r1", "name": "Ada", "company": "x", "type": "attendee"});
    let performed = perform_job(&worker, &badge_job(&lacking)).await;
    assert_eq!(
        performed.state,
        JobState::Discarded,
        "{:?}",
        performed.error
    );
    assert_eq!(
        performed.error.as_deref(),
        Some("args lack \"pronouns\", which the layout requires")
    );
    let having = json!({"id": "r2", "name": "Ada", "company": "x", "type": "attendee", "pronouns": "she/her"});
    let performed = perform_job(&worker, &badge_job(&having)).await;
    assert_eq!(
        performed.state,
        JobState::Completed,
        "{:?}",
        performed.error
    );
    assert!(pdftotext(dir.join("badge-r2.pdf").to_str().unwrap()).contains("she/her"));
}

#[tokio::test]
async fn a_node_dying_between_render_and_commit_sends_no_confirmation_and_the_retry_sends_one() {
    let (pool, _) = database().await;
    let client = Client::new(pool.clone(), Prefix::default());
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
    eventually(
        "the badge to be rendered",
        Duration::from_secs(10),
        || async { pdf.exists().then_some(()) },
    )
    .await;
    node.shutdown().await;
    let state = client.get_job(id).await.unwrap().unwrap().state.0;
    assert_eq!(state, JobState::Executing, "left for the lifeline");
    refute_enqueued(&client, &confirmations()).await;

    // The database is back; another node rescues the orphan and the retry confirms once.
    sqlx::query("DROP TRIGGER refuse ON oban_jobs")
        .execute(&pool)
        .await
        .unwrap();
    let node = start(&pool, &dir, Duration::from_millis(500)).await;
    wait_for_count(
        &pool,
        "the rescued badge to complete",
        "SELECT count(*) FROM oban_jobs WHERE queue = 'badges' AND state = 'completed'",
        1,
        Duration::from_secs(20),
    )
    .await;
    node.shutdown().await;
    assert_eq!(
        all_enqueued(&client, &confirmations()).await.unwrap().len(),
        1
    );
}

#[tokio::test]
async fn a_full_or_read_only_disk_retries_with_backoff_and_succeeds_once_the_disk_is_back() {
    // A real file system of its own: 512 KiB of tmpfs, filled to the last page.
    let disk = Tmpfs::mount("disk", "512k");
    let filler = disk.fill();
    let worker = generate_badge(disk.path());
    let job =
        badge_job(&json!({"id": "d1", "name": "Disk Full", "company": "", "type": "attendee"}));
    let max_attempts = GenerateBadge::OPTIONS.max_attempts;

    // Disk full: the temporary file is created, its write fails with ENOSPC.
    let performed = perform_attempt(&worker, &job, 1).await;
    let error = performed.error.clone().unwrap_or_default();
    assert_eq!(performed.state, JobState::Retryable, "{error}");
    assert!(
        error.contains("writing") && error.contains("badge-d1.pdf"),
        "the error names the file: {error}"
    );
    assert!(
        error.contains("No space left on device"),
        "the error names the cause: {error}"
    );
    let backoff = Duration::from_secs(base_backoff(1, max_attempts));
    assert!(
        performed.delay.unwrap() >= backoff,
        "retried with backoff, not at once: {performed:?}"
    );
    assert_eq!(disk.files(), ["filler"], "no partial PDF or temporary file");

    // Space is back but the file system is read-only: EROFS, at the temporary file's creation.
    std::fs::remove_file(filler).unwrap();
    disk.remount("ro");
    let performed = perform_attempt(&worker, &job, 2).await;
    let error = performed.error.clone().unwrap_or_default();
    assert_eq!(performed.state, JobState::Retryable, "{error}");
    assert!(
        error.contains("badge-d1.pdf") && error.contains("Read-only file system"),
        "the error names the file and the cause: {error}"
    );
    let backoff = Duration::from_secs(base_backoff(2, max_attempts));
    assert!(
        performed.delay.unwrap() >= backoff,
        "retried with backoff, not at once: {performed:?}"
    );
    assert!(disk.files().is_empty(), "nothing written");

    // Writable again: the next attempt writes the badge and confirms it, once.
    disk.remount("rw");
    let performed = perform_attempt(&worker, &job, 3).await;
    assert_eq!(performed.state, JobState::Completed, "{performed:?}");
    assert_eq!(
        disk.files(),
        ["badge-d1.pdf"],
        "the PDF alone, no leftovers"
    );
    let pdf = std::fs::canonicalize(disk.path().join("badge-d1.pdf")).unwrap();
    assert!(pdftotext(pdf.to_str().unwrap()).contains("Disk Full"));
    let [confirmation] = &performed.then_insert[..] else {
        panic!("one confirmation, got {:?}", performed.then_insert);
    };
    assert_eq!(
        (
            confirmation.worker_name(),
            confirmation.args()["path"].as_str()
        ),
        (PRINT_CENTER, pdf.to_str())
    );
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
