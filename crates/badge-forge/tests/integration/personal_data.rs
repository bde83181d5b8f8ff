//! Attendees' data on the node's disk and in its logs, through the real binary: badge files
//! and their directory are private whatever the umask, `--retain` removes old badges and
//! nothing else, and `--log-args` keeps names out of the job-end line.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use sqlx::PgPool;

use crate::support::{BADGE_FORGE, READY, database, run_until};

/// The permission bits of `path` (not following a symlink).
fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

/// `badge-forge` with the most permissive umask: the modes it makes are its own choice.
fn permissive(args: &[&str]) -> Command {
    let mut command = Command::new(BADGE_FORGE);
    command.args(args);
    // SAFETY: umask is async-signal-safe and touches only the child.
    unsafe {
        command.pre_exec(|| {
            libc::umask(0);
            Ok(())
        });
    }
    command
}

/// A path under the temp dir that does not exist yet.
fn fresh_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("bf-personal-{name}-{}", rand::random::<u32>()))
}

/// `badge-forge work` in JSON logs with `extra` flags, writing into `output`, until it logs
/// `until`; returns the JSON lines.
fn work_until(url: &str, output: &Path, extra: &[&str], until: &str) -> Vec<Value> {
    let mut command = permissive(&["--log-format", "json", "work", "--poll-interval", "0.2"]);
    command
        .arg("--output")
        .arg(output)
        .args(extra)
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "info,sqlx=warn");
    run_until(command, &[until, READY])
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// Enqueues one fake badge with `badge-forge enqueue`; returns its args.
async fn enqueue_one(url: &str, pool: &PgPool, seed: u64) -> Value {
    let status = Command::new(BADGE_FORGE)
        .args(["enqueue", "-n", "1", "--seed", &seed.to_string()])
        .env("DATABASE_URL", url)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    sqlx::query_scalar("SELECT args FROM oban_jobs WHERE queue = 'badges' ORDER BY id DESC LIMIT 1")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn badge_files_and_their_directory_are_private_whatever_the_umask() {
    let (pool, url) = database().await;
    let args = enqueue_one(&url, &pool, 7).await;
    let parent = fresh_path("modes");
    let output = parent.join("badges");
    work_until(&url, &output, &[], "job finished");
    let badge = output.join(format!("badge-{}.pdf", args["id"].as_str().unwrap()));
    assert_eq!(mode(&badge), 0o640, "the badge PDF");
    assert_eq!(mode(&output), 0o750, "the output directory");
    assert_eq!(mode(&parent), 0o750, "a parent it created");

    // Sheets and single renders, with the default mode and with --file-mode.
    for (flags, file, dir) in [
        (&[][..], 0o640, 0o750),
        (&["--file-mode", "0600"], 0o600, 0o700),
    ] {
        for command in [
            &["sheet", "-n", "2"][..],
            &["render", "--name", "Zoë Private"],
        ] {
            let dir_path = fresh_path("sheet");
            let pdf = dir_path.join("print-run.pdf");
            let status = permissive(command)
                .args(flags)
                .arg("--output")
                .arg(&pdf)
                .stdout(std::process::Stdio::null())
                .status()
                .unwrap();
            assert!(status.success(), "{command:?}");
            assert_eq!(mode(&pdf), file, "{command:?} {flags:?}");
            assert_eq!(mode(&dir_path), dir, "{command:?} {flags:?}");
            std::fs::remove_dir_all(&dir_path).unwrap();
        }
    }
    std::fs::remove_dir_all(&parent).unwrap();
}

/// Creates `path` with `bytes`, last modified `age` ago.
fn file_aged(path: &Path, age: Duration) {
    std::fs::write(path, b"%PDF-1.7").unwrap();
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - age).unwrap();
}

/// Sets a symlink's own modification time (`lutimes`), so that only following it would tell
/// the sweep it is new.
fn symlink_aged(path: &Path, age: Duration) {
    let when = SystemTime::now() - age;
    let seconds = when
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let time = libc::timespec {
        tv_sec: seconds,
        tv_nsec: 0,
    };
    let path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a NUL-terminated path and two timespecs that outlive the call.
    let set = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            path.as_ptr(),
            [time, time].as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(set, 0, "{}", std::io::Error::last_os_error());
}

const DAY: Duration = Duration::from_secs(86_400);

#[tokio::test]
async fn retention_removes_old_badges_of_its_directory_and_nothing_else() {
    let (_pool, url) = database().await;
    let output = fresh_path("retain");
    let outside = fresh_path("outside");
    std::fs::create_dir_all(output.join("badge-nested.pdf")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    let old = 40 * DAY;
    // Expired: a badge and a temporary a crash left.
    file_aged(&output.join("badge-old.pdf"), old);
    file_aged(&output.join(".badge-left.pdf.123.tmp"), old);
    // Kept: a younger badge, files that are not badges, a directory's contents, and what
    // symlinks lead to (and the symlinks themselves).
    let kept = [
        output.join("badge-young.pdf"),
        output.join("notes.pdf"),
        output.join("badge-x.pdf.bak"),
        output.join("badge-nested.pdf/badge-inner.pdf"),
        outside.join("badge-target.pdf"),
        outside.join("badge-inside-dir.pdf"),
    ];
    file_aged(&kept[0], 29 * DAY);
    for path in &kept[1..] {
        file_aged(path, old);
    }
    let links = [
        (
            output.join("badge-link.pdf"),
            outside.join("badge-target.pdf"),
        ),
        (output.join("badge-dirlink.pdf"), outside.clone()),
    ];
    for (link, target) in &links {
        std::os::unix::fs::symlink(target, link).unwrap();
        symlink_aged(link, old);
    }

    let lines = work_until(&url, &output, &["--retain", "30d"], "expired badge PDFs");
    let sweep = lines
        .iter()
        .find(|line| line["message"] == "removed expired badge PDFs")
        .expect("the sweep's line");
    assert_eq!(sweep["removed"], 2, "{sweep}");
    assert_eq!(sweep["older_than"], "30d", "{sweep}");

    assert!(!output.join("badge-old.pdf").exists());
    assert!(!output.join(".badge-left.pdf.123.tmp").exists());
    for path in &kept {
        assert!(path.exists(), "{} was removed", path.display());
    }
    for (link, _) in &links {
        assert!(
            std::fs::symlink_metadata(link).is_ok(),
            "{} was removed",
            link.display()
        );
    }
    std::fs::remove_dir_all(&output).unwrap();
    std::fs::remove_dir_all(&outside).unwrap();
}

#[tokio::test]
async fn log_args_keeps_names_out_of_the_job_end_line() {
    let (pool, url) = database().await;
    let output = fresh_path("log-args");
    for (seed, mode) in [(1, "full"), (2, "keys"), (3, "none")] {
        let args = enqueue_one(&url, &pool, seed).await;
        let (name, company) = (
            args["name"].as_str().unwrap(),
            args["company"].as_str().unwrap(),
        );
        assert!(!name.is_empty() && !company.is_empty(), "{args}");
        let lines = work_until(&url, &output, &["--log-args", mode], "job finished");
        let line = lines
            .iter()
            .find(|line| line["event"] == "oban.job.stop")
            .expect("the job-end line");
        let text = line.to_string();
        match mode {
            // As oban-py logs it: the args as JSON text.
            "full" => {
                let logged: Value = serde_json::from_str(line["args"].as_str().unwrap()).unwrap();
                assert_eq!(logged, args);
                assert!(text.contains(name));
            }
            "keys" => {
                let mut keys: Vec<String> =
                    serde_json::from_str(line["args"].as_str().unwrap()).unwrap();
                keys.sort();
                assert_eq!(keys, ["company", "id", "name", "type"], "{text}");
            }
            _ => assert!(line.get("args").is_none(), "{text}"),
        }
        if mode != "full" {
            assert!(!text.contains(name) && !text.contains(company), "{text}");
        }
        // The rest of oban-py's keys are there in every mode.
        for key in [
            "id", "worker", "queue", "attempt", "meta", "state", "duration",
        ] {
            assert!(line.get(key).is_some(), "{mode}: no {key} in {text}");
        }
    }
    std::fs::remove_dir_all(&output).unwrap();
}
