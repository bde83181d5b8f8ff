//! Print runs of the completed badge jobs: `badge-forge sheet --from-db` as the real binary,
//! and the `BadgeForge.PrintRun` worker drained from a real PostgreSQL, both read back from
//! the PDF with poppler. Only the jobs the filters name print, in the desk's order; a job
//! whose args make no badge is reported by its id.

use std::path::Path;
use std::sync::Arc;

use badge_forge::output::OutputDir;
use badge_forge::print_run::completed::PAGE_SIZE;
use badge_forge::print_run::worker::{PrintRun, PrintRunArgs};
use badge_forge::render::{EventInfo, Renderer};
use badge_forge::worker::{PRINT_CENTER, PRINT_QUEUE};
use chrono::Utc;
use oban_core::drain::DrainOptions;
use oban_core::insert::NewJob;
use oban_core::job::JobState;
use oban_core::jobs::JobFilter;
use oban_core::testing::{Performed, assert_enqueued, perform_job};
use oban_core::worker::{Registry, Worker};
use oban_core::{Client, Prefix};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::sheets::{printed_order, run_sheet};
use crate::support::{database, empty_database, output_dir};

/// A GenerateBadge job as a node leaves it: `$3` its state, completed (if it is) `$5`
/// minutes ago.
const BADGE_JOB: &str = "INSERT INTO oban_jobs (args, attempt, errors, max_attempts, meta, queue, state, tags, worker, attempted_at, completed_at) \
     VALUES ($1, 1, '{}', 20, '{}', $2, $3::text::oban_job_state, $4, 'badge_forge.generator.GenerateBadge', \
     now() - $5 * interval '1 minute', CASE WHEN $3::text = 'completed' THEN now() - $5 * interval '1 minute' END) RETURNING id";

/// Every name in the table, printed or not.
const EVERYONE: [&str; 7] = [
    "Ada Lovelace",
    "Zoë Ångström",
    "Anna Zander",
    "Grace Hopper",
    "Alan Turing",
    "Mallory Queue",
    "Bob Pending",
];

/// The badges completed in queue `badges` within two hours with tag `day1`, as a Swedish
/// desk orders them: Å after Z.
const DAY_ONE_SV: [&str; 3] = ["Ada Lovelace", "Anna Zander", "Zoë Ångström"];

/// Fills the table: three badges of day 1 in the last two hours, and one completed before,
/// one without the tag, one in another queue, one not completed yet; and a day-1 job whose
/// args make no badge (an empty name), whose id this returns.
async fn badge_jobs(pool: &PgPool) -> i64 {
    let jobs: [(&str, &str, &str, &[&str], i32); 7] = [
        ("Ada Lovelace", "badges", "completed", &["day1"], 60),
        ("Zoë Ångström", "badges", "completed", &["day1", "vip"], 30),
        ("Anna Zander", "badges", "completed", &["day1"], 5),
        ("Grace Hopper", "badges", "completed", &["day1"], 300),
        ("Alan Turing", "badges", "completed", &[], 10),
        ("Mallory Queue", "vip_badges", "completed", &["day1"], 10),
        ("Bob Pending", "badges", "available", &["day1"], 10),
    ];
    for (i, (name, queue, state, tags, minutes)) in jobs.into_iter().enumerate() {
        let args =
            json!({"id": format!("p{i}"), "name": name, "company": "Acme", "type": "attendee"});
        insert(pool, args, queue, state, tags, minutes).await;
    }
    let bad = json!({"id": "bad", "name": "", "company": "Acme", "type": "attendee"});
    insert(pool, bad, "badges", "completed", &["day1"], 20).await
}

async fn insert(
    pool: &PgPool,
    args: Value,
    queue: &str,
    state: &str,
    tags: &[&str],
    minutes_ago: i32,
) -> i64 {
    sqlx::query_scalar(BADGE_JOB)
        .bind(args)
        .bind(queue)
        .bind(state)
        .bind(tags)
        .bind(minutes_ago)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn sheet_from_db_prints_the_completed_badges_the_filters_name() {
    let (pool, url) = database().await;
    let bad = badge_jobs(&pool).await;
    let dir = output_dir("from-db");
    let from_db = ["--from-db", "--database-url", &url];

    let args = [
        &from_db[..],
        &["--since", "2h", "--tag", "Day1", "--locale", "sv"],
    ]
    .concat();
    let run = run_sheet(&dir.join("day1.pdf"), &args);
    assert_eq!(run.code, 3, "{}", run.stderr);
    let reported = run
        .stderr
        .lines()
        .find(|line| line.starts_with(&format!("job {bad}: ")));
    assert!(
        reported.is_some_and(|line| line.contains("name is empty")),
        "job {bad} should be reported:\n{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("1 of 4 completed badge jobs matched could not be printed"),
        "{}",
        run.stderr
    );
    let pdf = run.pdf.expect("the good jobs print");
    assert_eq!(printed_order(&pdf, &EVERYONE), DAY_ONE_SV);

    // An RFC 3339 --since, no tag: every completed badge of the queue since then, in the
    // jobs' order.
    let six_hours_ago = (Utc::now() - chrono::Duration::hours(6)).to_rfc3339();
    let args = [&from_db[..], &["--since", &six_hours_ago, "--sort", "none"]].concat();
    let run = run_sheet(&dir.join("all.pdf"), &args);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_eq!(
        printed_order(&run.pdf.unwrap(), &EVERYONE),
        EVERYONE[..5],
        "every completed badge of queue badges"
    );

    // A span reaching before any job (and PostgreSQL's timestamps) means every job.
    let args = [&from_db[..], &["--since", "100000000d", "--sort", "none"]].concat();
    let run = run_sheet(&dir.join("ever.pdf"), &args);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_eq!(printed_order(&run.pdf.unwrap(), &EVERYONE), EVERYONE[..5]);

    let args = [&from_db[..], &["--queue", "vip_badges"]].concat();
    let run = run_sheet(&dir.join("vip.pdf"), &args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        printed_order(&run.pdf.unwrap(), &EVERYONE),
        ["Mallory Queue"]
    );

    let args = [&from_db[..], &["--tag", "nobody"]].concat();
    let run = run_sheet(&dir.join("none.pdf"), &args);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("no badge written: no completed badge job matches the filters"),
        "{}",
        run.stderr
    );
    assert!(run.pdf.is_none());
}

#[tokio::test]
async fn sheet_from_db_refuses_an_unmigrated_database_and_an_input_file() {
    let (_pool, url) = empty_database().await;
    let dir = output_dir("from-db-refused");
    let run = run_sheet(&dir.join("run.pdf"), &["--from-db", "--database-url", &url]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("badge-forge migrate"), "{}", run.stderr);
    assert!(
        !run.stderr.contains("oban_jobs\" does not exist"),
        "{}",
        run.stderr
    );

    let run = run_sheet(
        &dir.join("both.pdf"),
        &["--from-db", "--database-url", &url, "--input", "list.csv"],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("cannot be used with"), "{}", run.stderr);
}

/// A PrintRun worker writing into `dir`, reading through `client`.
fn print_run(dir: &Path, client: &Client) -> PrintRun {
    let renderer = Arc::new(Renderer::new(EventInfo::default()).unwrap());
    PrintRun::new(renderer, OutputDir::create(dir, false).unwrap(), client)
}

/// What `worker` did with `job`, which must complete.
async fn completed(worker: &PrintRun, job: &NewJob) -> Performed {
    let performed = perform_job(worker, job).await;
    assert_eq!(
        performed.state,
        JobState::Completed,
        "{:?}",
        performed.error
    );
    performed
}

#[tokio::test]
async fn a_print_run_job_writes_its_sheet_and_confirms_it() {
    let (pool, _) = database().await;
    let bad = badge_jobs(&pool).await;
    let client = Client::new(pool.clone(), Prefix::default());
    let dir = output_dir("print-run");
    let args = PrintRunArgs {
        since: Some("2h".into()),
        tags: vec!["day1".into()],
        locale: Some("sv".into()),
        ..PrintRunArgs::default()
    };
    let job = client
        .insert(&PrintRun::new_job(&args).unwrap())
        .await
        .unwrap();
    assert_eq!(job.queue, "printing_runs");
    let mut registry = Registry::default();
    registry.register(print_run(&dir, &client)).unwrap();
    let drained = client
        .drain_queue("printing_runs", &registry, DrainOptions::default())
        .await
        .unwrap();
    assert_eq!(drained.success, 1, "{drained:?}");

    let dir = std::fs::canonicalize(&dir).unwrap();
    let sheet = dir.join(format!("print-run-{}.pdf", job.id));
    let files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        files,
        [format!("print-run-{}.pdf", job.id)],
        "the sheet and nothing else"
    );
    let pdf = std::fs::read(&sheet).unwrap();
    assert_eq!(printed_order(&pdf, &EVERYONE), DAY_ONE_SV);
    let confirmation = JobFilter::all()
        .worker(PRINT_CENTER)
        .queue(PRINT_QUEUE)
        .args_contain(&json!({
            // The keys the article's PrintCenter matches on, all strings.
            "id": format!("print-run-{}", job.id),
            "name": format!("print run {}: 3 badges", job.id),
            "path": sheet.to_str().unwrap(),
            "job_id": job.id,
            "printed": 3,
            "failed": 1,
        }))
        .unwrap();
    assert_enqueued(&client, &confirmation).await;
    assert!(
        client.get_job(bad).await.unwrap().is_some(),
        "a bad badge job is reported, not touched"
    );
}

#[tokio::test]
async fn a_print_run_with_bad_args_is_discarded_naming_the_key() {
    let (pool, _) = database().await;
    badge_jobs(&pool).await;
    let client = Client::new(pool.clone(), Prefix::default());
    let dir = output_dir("print-run-bad");
    let worker = print_run(&dir, &client);
    for (args, says) in [
        (json!({"layout": "mine.toml"}), "unknown field `layout`"),
        (json!({"tags": "day1"}), "tags"),
        (json!({"stock": "a3"}), "stock: unknown stock \"a3\""),
        (
            json!({"since": "yesterday"}),
            "since: \"yesterday\" is neither",
        ),
        (json!({"locale": "no such locale"}), "locale: "),
    ] {
        let job = NewJob::new(PrintRun::NAME, &args)
            .unwrap()
            .queue(PrintRun::OPTIONS.queue);
        let performed = perform_job(&worker, &job).await;
        assert_eq!(performed.state, JobState::Discarded, "{args}");
        let error = performed.error.unwrap_or_default();
        assert!(error.contains(says), "{args}: {error}");
    }
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);

    // Nothing to print is no error: the job completes, and neither a file nor a
    // confirmation (which a PrintCenter could not print) is made.
    let job = PrintRun::new_job(&PrintRunArgs {
        tags: vec!["nobody".into()],
        ..PrintRunArgs::default()
    })
    .unwrap();
    let performed = completed(&worker, &job).await;
    assert!(
        performed.then_insert.is_empty(),
        "{:?}",
        performed.then_insert
    );
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
}

#[tokio::test]
async fn a_print_run_reads_every_page_of_jobs() {
    let (pool, _) = database().await;
    let pages = PAGE_SIZE * 2 + 345;
    sqlx::query(
        "INSERT INTO oban_jobs (args, attempt, max_attempts, queue, state, worker, attempted_at, completed_at) \
         SELECT jsonb_build_object('id', 'n' || n, 'name', 'Name ' || n, 'company', '', 'type', 'attendee'), \
         1, 20, 'badges', 'completed', 'badge_forge.generator.GenerateBadge', now(), now() \
         FROM generate_series(1, $1) AS n",
    )
    .bind(pages)
    .execute(&pool)
    .await
    .unwrap();
    let client = Client::new(pool.clone(), Prefix::default());
    let worker = print_run(&output_dir("print-run-pages"), &client);
    let job = PrintRun::new_job(&PrintRunArgs::default()).unwrap();
    let performed = completed(&worker, &job).await;
    let confirmation = performed.then_insert[0].args();
    assert_eq!(confirmation["printed"], pages, "every page read once");
    assert_eq!(confirmation["failed"], 0);
}
