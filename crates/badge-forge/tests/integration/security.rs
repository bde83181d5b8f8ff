//! The `badge-forge` binary never shows a database password: every subcommand that connects,
//! with a wrong password, an unreachable server, an unknown URL parameter holding a secret, and
//! a LISTEN URL that cannot log in, in both log formats at the most verbose level. Its stdout
//! and stderr are searched for the secrets; the errors must still say what went wrong.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use oban_core::testing::{self, TempPostgres};

use crate::support::{BADGE_FORGE, READY, free_port, run_until};

/// The role's password: distinctive, and the same percent-encoded or not.
const PASSWORD: &str = "Tr0ub4dor-Zq9vX7wPk";
/// A wrong password.
const WRONG_PASSWORD: &str = "Wr0ngH0rse-Kq7mD2sL";
/// A secret in a URL parameter sqlx does not know (libpq's passphrase of a client key).
const PASSPHRASE: &str = "Pa55phrase-Vb3nR8tYq";
/// The live page's password (`--http-auth ops:…`).
const HTTP_PASSWORD: &str = "Ht7pPass-Wd4xQz";

/// Fails naming where one of the test's secrets shows up in `text`, with some context.
fn assert_no_secret(text: &str, what: &str) {
    testing::assert_no_secret(
        text,
        &[PASSWORD, WRONG_PASSWORD, PASSPHRASE, HTTP_PASSWORD],
        what,
    );
}

/// Runs `badge-forge` to completion with `DATABASE_URL=url`, everything logged.
fn run(format: &str, url: &str, args: &[&str]) -> Output {
    Command::new(BADGE_FORGE)
        .args(["--log-format", format])
        .args(args)
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "trace")
        .stdin(Stdio::null())
        .output()
        .expect("the badge-forge binary runs")
}

/// stdout and stderr of `output`, for searching.
fn text(output: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs `badge-forge work` with `DATABASE_URL=url` and `OBAN_LISTEN_URL=listen_url`, its
/// live page behind `--http-auth`, until it logs `until`; returns all it printed.
fn work_until(format: &str, url: &str, listen_url: &str, output: &Path, until: &str) -> String {
    let mut command = Command::new(BADGE_FORGE);
    command
        .args(["--log-format", format, "work", "--poll-interval", "0.2"])
        .args(["--http", "127.0.0.1:0"])
        .arg("--output")
        .arg(output)
        .env("DATABASE_URL", url)
        .env("OBAN_LISTEN_URL", listen_url)
        .env("BADGE_FORGE_HTTP_AUTH", format!("ops:{HTTP_PASSWORD}"))
        .env("RUST_LOG", "trace");
    run_until(command, &[until, READY])
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_never_prints_a_password() {
    let cluster = tokio::task::spawn_blocking(|| {
        TempPostgres::builder()
            .hba("host all app 127.0.0.1/32 scram-sha-256")
            .start()
    })
    .await
    .unwrap()
    .unwrap();
    cluster
        .create_login_role("app", PASSWORD, "jobs")
        .await
        .unwrap();
    let port = cluster.port();
    let url = |password: &str| format!("postgres://app:{password}@127.0.0.1:{port}/jobs");
    let output = std::env::temp_dir().join(format!("bf-security-{:08x}", rand::random::<u32>()));
    let output_arg = output.to_str().unwrap();

    let migrated = run("text", &url(PASSWORD), &["migrate"]);
    assert!(migrated.status.success(), "{}", text(&migrated));
    assert_no_secret(&text(&migrated), "badge-forge migrate");

    let wrong = url(WRONG_PASSWORD);
    let unreachable = format!("postgres://app:{PASSWORD}@127.0.0.1:{}/jobs", free_port());
    let unknown_parameter = format!("{}?sslpassword={PASSPHRASE}", url(WRONG_PASSWORD));
    let http_auth = format!("ops:{HTTP_PASSWORD}");
    let failing: [(&str, &[&str], &str); 8] = [
        (&wrong, &["migrate"], "password authentication failed"),
        (&wrong, &["status"], "password authentication failed"),
        (
            &wrong,
            &["enqueue", "-n", "1"],
            "password authentication failed",
        ),
        (
            &wrong,
            &["work", "--output", output_arg],
            "password authentication failed",
        ),
        (
            &wrong,
            &[
                "work",
                "--output",
                output_arg,
                "--http",
                "127.0.0.1:0",
                "--http-auth",
                &http_auth,
            ],
            "password authentication failed",
        ),
        (
            &wrong,
            &["demo", "-n", "1", "--output", output_arg],
            "password authentication failed",
        ),
        // The cause, not only the pool's "timed out".
        (&unreachable, &["status"], "Connection refused"),
        // The parameter is named in a warning, without its value.
        (&unknown_parameter, &["migrate"], "sslpassword"),
    ];
    for format in ["text", "json"] {
        for (database_url, args, reason) in failing {
            let failed = run(format, database_url, args);
            let printed = text(&failed);
            assert!(!failed.status.success(), "{args:?} succeeded: {printed}");
            assert!(
                printed.contains(reason),
                "{args:?}: no {reason:?} in {printed}"
            );
            assert_no_secret(&printed, &format!("{args:?} ({format})"));
        }
        // The URL as a flag instead of the environment.
        let failed = Command::new(BADGE_FORGE)
            .args(["--log-format", format, "status", "--database-url", &wrong])
            .env("RUST_LOG", "trace")
            .output()
            .unwrap();
        assert!(!failed.status.success());
        assert_no_secret(&text(&failed), "status --database-url");

        // A node whose LISTEN connection cannot log in logs each failure, and stops cleanly.
        let printed = work_until(
            format,
            &url(PASSWORD),
            &wrong,
            &output,
            "notification listener lost its connection",
        );
        assert!(
            printed.contains("password authentication failed"),
            "{printed}"
        );
        assert_no_secret(&printed, &format!("badge-forge work ({format})"));
    }
    let _ = std::fs::remove_dir_all(&output);
    tokio::task::spawn_blocking(move || drop(cluster))
        .await
        .unwrap();
}

/// No `--help` prints a password held in a URL of the environment (`DATABASE_URL`,
/// `OBAN_LISTEN_URL`), though each names the variable it reads.
#[test]
fn help_never_prints_a_urls_password() {
    let url = format!("postgres://badge_forge:{PASSWORD}@db.internal/app");
    for command in [
        &["--help"][..],
        &["migrate", "--help"],
        &["work", "--help"],
        &["enqueue", "--help"],
        &["status", "--help"],
        &["demo", "--help"],
    ] {
        let help = Command::new(BADGE_FORGE)
            .args(command)
            .env("DATABASE_URL", &url)
            .env("OBAN_LISTEN_URL", &url)
            .output()
            .unwrap();
        assert!(help.status.success(), "{command:?}");
        assert!(text(&help).contains("DATABASE_URL"), "{command:?}");
        assert_no_secret(&text(&help), &format!("{command:?}"));
    }
}

/// The live page's password stays out of `--help` (given in the environment) and out of the
/// errors about a malformed value, which still say what is wrong.
#[test]
fn the_cli_never_prints_the_http_password() {
    let help = Command::new(BADGE_FORGE)
        .args(["work", "--help"])
        .env("BADGE_FORGE_HTTP_AUTH", format!("ops:{HTTP_PASSWORD}"))
        .output()
        .unwrap();
    assert!(help.status.success());
    assert!(
        text(&help).contains("--http-auth <USER:PASSWORD>"),
        "{}",
        text(&help)
    );
    assert_no_secret(&text(&help), "work --help");
    for value in [
        HTTP_PASSWORD.to_owned(),
        format!(":{HTTP_PASSWORD}"),
        format!("ops:{HTTP_PASSWORD}\u{7}"),
    ] {
        for (flag, env) in [(Some(value.as_str()), None), (None, Some(value.as_str()))] {
            let mut command = Command::new(BADGE_FORGE);
            command.args(["work", "--http", "127.0.0.1:0"]);
            if let Some(value) = flag {
                command.args(["--http-auth", value]);
            }
            if let Some(value) = env {
                command.env("BADGE_FORGE_HTTP_AUTH", value);
            }
            let refused = command.output().unwrap();
            assert!(!refused.status.success());
            let printed = text(&refused);
            assert!(
                printed.contains("--http-auth must be USER:PASSWORD"),
                "{printed}"
            );
            assert_no_secret(&printed, "a malformed --http-auth");
        }
    }
}

/// Logs piped to a file or a collector are plain text: no terminal colour codes that a log
/// shipper would store (or a terminal viewing the file later would interpret).
#[test]
fn piped_logs_carry_no_terminal_escape_codes() {
    let url = format!("postgres://app@127.0.0.1:{}/app", free_port());
    let output = run("text", &url, &["status"]);
    assert!(!output.status.success(), "status against a closed port");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]
            .iter()
            .any(|level| stderr.contains(level)),
        "no log line to check: {stderr}"
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "escape codes in piped logs: {stderr:?}"
    );
}
