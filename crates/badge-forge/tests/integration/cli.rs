//! The CLI's commands against a database that was never migrated: each refuses with the
//! library's schema message and the command that fixes it, not PostgreSQL's raw error; and
//! `status` on a migrated one; `work` refusing a configuration the library rejects; `demo`
//! running its node on `work`'s defaults.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{BADGE_FORGE, database, empty_database, output_dir, wait_at_most};

/// Runs `badge-forge <args> --database-url <url>`; returns whether it succeeded and its stderr.
fn run(url: &str, args: &[&str]) -> (bool, String) {
    let output = Command::new(BADGE_FORGE)
        .args(args)
        .args(["--database-url", url])
        .output()
        .expect("run badge-forge");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn commands_on_an_unmigrated_database_say_to_migrate() {
    let (_pool, url) = empty_database().await;
    let output = output_dir("unmigrated");
    let output = output.to_str().unwrap();
    for args in [
        &["status"][..],
        &["enqueue", "--count", "1"],
        &["work", "--output", output],
    ] {
        let (succeeded, stderr) = run(&url, args);
        assert!(!succeeded, "{args:?} succeeded on an unmigrated database");
        assert!(
            stderr.contains("the Oban schema is not installed")
                && stderr.contains("run `badge-forge migrate`"),
            "{args:?} printed: {stderr}"
        );
        assert!(
            !stderr.contains("does not exist"),
            "{args:?} printed: {stderr}"
        );
    }
}

#[tokio::test]
async fn status_counts_jobs_per_queue_and_state() {
    let (_pool, url) = database().await;
    assert!(run(&url, &["enqueue", "--count", "3"]).0, "enqueue failed");
    let output = Command::new(BADGE_FORGE)
        .args(["status", "--database-url", &url])
        .output()
        .expect("run badge-forge status");
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .map(|line| line.split_whitespace().collect())
        .collect();
    assert!(rows.contains(&vec!["badges", "available", "3"]), "{stdout}");
    assert!(
        stdout.contains("confirmations waiting for BadgeForge.PrintCenter: 0"),
        "{stdout}"
    );
}

/// `--rescue-silence` reaches the node's configuration: a silence shorter than two gossip
/// intervals is refused at start with the rule that bounds it, instead of running a node whose
/// leader would take live nodes for dead.
#[tokio::test]
async fn work_refuses_a_rescue_silence_shorter_than_two_gossip_intervals() {
    let (_pool, url) = database().await;
    let output = output_dir("rescue-silence");
    let mut child = Command::new(BADGE_FORGE)
        .args(["work", "--rescue-silence", "1", "--output"])
        .arg(&output)
        .args(["--database-url", &url])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run badge-forge work");
    let Some(status) = wait_at_most(&mut child, Duration::from_secs(60)) else {
        child.kill().unwrap();
        panic!("work ran with --rescue-silence 1 instead of refusing it");
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("must be at most half of rescue_silence (1s)"),
        "{stderr}"
    );
}

/// `demo` runs its node on `work`'s flag defaults, not on `work`'s environment: a variable
/// `work` would refuse does not reach it, and the round trip prints every badge.
#[tokio::test]
async fn demo_runs_its_node_on_works_defaults_whatever_works_environment_says() {
    let (_pool, url) = database().await;
    let output = output_dir("demo");
    let demo = Command::new(BADGE_FORGE)
        .args(["demo", "--count", "3", "--output", output.to_str().unwrap()])
        .args(["--database-url", &url])
        .env("BADGE_FORGE_POOL_SIZE", "many")
        .output()
        .expect("run badge-forge demo");
    let stderr = String::from_utf8_lossy(&demo.stderr);
    assert!(demo.status.success(), "demo failed: {stderr}");
    let pdfs = std::fs::read_dir(&output).unwrap().count();
    assert_eq!(pdfs, 3, "{stderr}");
}
