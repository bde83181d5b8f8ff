//! `--retain`: deleting the badge PDFs older than a bound from the node's output directory, so
//! attendees' names are not kept forever.
//!
//! Only what this program writes is touched: regular files named `badge-<id>.pdf` (and the
//! hidden names on their way in or out) directly in the directory, never a symlink, a
//! directory or anything below one. Several nodes may sweep one shared directory: a file one
//! of them removed is simply gone for the others. A badge rewritten while it is swept (a
//! retried job) survives: the old file is moved aside before it is removed, and whatever was
//! moved is checked again, and put back if it turns out fresh.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use crate::output::OutputDir;

/// How often the directory is swept at most: often enough that a file outlives the bound by
/// little, rarely enough that listing a large directory costs nothing that matters.
const LONGEST_INTERVAL: Duration = Duration::from_secs(3_600);

/// How long badge PDFs are kept (`--retain`), e.g. `30d`, `12h`, `90m`, `45s`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retain(pub Duration);

impl FromStr for Retain {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match parse_duration(text)? {
            Duration::ZERO => Err(format!(
                "--retain {text} would delete every badge as it is written"
            )),
            duration => Ok(Self(duration)),
        }
    }
}

/// A whole number of seconds, minutes, hours or days: `45s`, `90m`, `12h`, `30d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("{text:?} is not a duration such as 30d, 12h, 90m or 45s");
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(invalid)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| invalid())?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(invalid()),
    };
    number
        .checked_mul(unit)
        .map(Duration::from_secs)
        .ok_or_else(invalid)
}

impl fmt::Display for Retain {
    /// The largest whole unit: `30d`, `36h`, `90m`, `45s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.0.as_secs();
        let (count, unit) = [(86_400, "d"), (3_600, "h"), (60, "m")]
            .into_iter()
            .find(|(unit, _)| seconds % unit == 0)
            .map_or((seconds, "s"), |(unit, name)| (seconds / unit, name));
        write!(f, "{count}{unit}")
    }
}

/// Sweeps `output` now and then every [`LONGEST_INTERVAL`] (sooner for short bounds), logging
/// what each sweep removed, until the task is dropped.
pub async fn sweep_forever(output: OutputDir, retain: Retain) {
    let interval = (retain.0 / 10).clamp(Duration::from_secs(1), LONGEST_INTERVAL);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let dir = output.path().to_owned();
        // Listing and removing files is blocking work: off the runtime's threads.
        let swept = tokio::task::spawn_blocking(move || sweep(&dir, retain.0)).await;
        match swept {
            Ok(Ok(removed)) => tracing::info!(
                removed,
                older_than = %retain,
                dir = %output.path().display(),
                "removed expired badge PDFs"
            ),
            Ok(Err(error)) => tracing::warn!(
                %error,
                dir = %output.path().display(),
                "cannot sweep the output directory for expired badge PDFs"
            ),
            Err(error) => tracing::warn!(%error, "the retention sweep failed"),
        }
    }
}

/// Removes the badge files in `dir` last modified more than `max_age` ago; returns how many.
/// A file that cannot be removed is logged and skipped.
pub fn sweep(dir: &Path, max_age: Duration) -> io::Result<usize> {
    let Some(cutoff) = SystemTime::now().checked_sub(max_age) else {
        return Ok(0);
    };
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if !OutputDir::is_badge_name(&name) && !is_leftover(&name) {
            continue;
        }
        match expire(dir, &name, cutoff) {
            Ok(true) => removed += 1,
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, file = name, "cannot remove an expired badge"),
        }
    }
    Ok(removed)
}

/// Whether `path` is a regular file (not a symlink to one: `symlink_metadata` does not follow)
/// last modified at or before `cutoff`.
fn expired(path: &Path, cutoff: SystemTime) -> io::Result<bool> {
    let metadata = std::fs::symlink_metadata(path)?;
    Ok(metadata.file_type().is_file() && metadata.modified()? <= cutoff)
}

/// Removes `dir/name` if it is an expired badge file. It is first renamed to a hidden name of
/// this sweep's, then checked there: a worker that replaced it in between made a new file,
/// which is put back (unless a newer one took its name meanwhile).
fn expire(dir: &Path, name: &str, cutoff: SystemTime) -> io::Result<bool> {
    let path = dir.join(name);
    if !expired(&path, cutoff)? {
        return Ok(false);
    }
    if is_leftover(name) {
        // Nobody writes to a leftover's name again: no race to guard against.
        std::fs::remove_file(&path)?;
        return Ok(true);
    }
    let aside = aside_path(dir, name);
    match std::fs::rename(&path, &aside) {
        Ok(()) => {}
        // Another node's sweep took it first.
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(error) => return Err(error),
    }
    if expired(&aside, cutoff)? {
        std::fs::remove_file(&aside)?;
        return Ok(true);
    }
    put_back(&aside, &path)?;
    Ok(false)
}

/// Returns a fresh file moved aside to `path`; a file written there since is newer and stays.
fn put_back(aside: &Path, path: &Path) -> io::Result<()> {
    match std::fs::hard_link(aside, path) {
        Ok(()) => std::fs::remove_file(aside),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => std::fs::remove_file(aside),
        // A file system without hard links: a rename cannot keep a newer file, but keeps this.
        Err(_) => std::fs::rename(aside, path),
    }
}

/// A hidden name for `name` while this sweep checks it.
fn aside_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!(".{name}.{}.expired", rand::random::<u64>()))
}

/// Whether `name` is a hidden file left by a crash: a badge on its way in
/// (`.badge-<id>.pdf.<n>.tmp`, see `OutputDir::write_atomically`) or out (`….expired`).
fn is_leftover(name: &str) -> bool {
    let Some(rest) = name.strip_prefix('.') else {
        return false;
    };
    let mut parts = rest.rsplitn(3, '.');
    let (Some(suffix), Some(number), Some(badge)) = (parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    matches!(suffix, "tmp" | "expired")
        && !number.is_empty()
        && number.chars().all(|c| c.is_ascii_digit())
        && OutputDir::is_badge_name(badge)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn durations_read_and_print_in_whole_units() {
        for (text, seconds) in [
            ("30d", 30 * 86_400),
            ("36h", 36 * 3_600),
            ("90m", 5_400),
            ("45s", 45),
        ] {
            let retain: Retain = text.parse().unwrap();
            assert_eq!(retain.0, Duration::from_secs(seconds));
            assert_eq!(retain.to_string(), text);
        }
        for bad in [
            "",
            "30",
            "d",
            "30x",
            "-1d",
            "1.5d",
            "0d",
            "99999999999999999999d",
        ] {
            assert!(bad.parse::<Retain>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn leftovers_are_hidden_badge_names_with_a_number_and_a_suffix() {
        assert!(is_leftover(".badge-a1.pdf.123.tmp"));
        assert!(is_leftover(".badge-a1.pdf.9.expired"));
        for name in [
            ".badge-a1.pdf.tmp",
            "badge-a1.pdf.1.tmp",
            ".notes.txt.1.tmp",
            ".badge-a1.pdf.x.tmp",
        ] {
            assert!(!is_leftover(name), "{name}");
        }
    }

    /// A badge rewritten between the sweep's look and its move is fresh once moved aside: it
    /// goes back under its name, and nothing else is left.
    #[test]
    fn a_badge_rewritten_while_swept_is_put_back() {
        let dir = std::env::temp_dir().join(format!("bf-retain-{}", rand::random::<u64>()));
        std::fs::create_dir(&dir).unwrap();
        let path = dir.join("badge-race.pdf");
        std::fs::write(&path, b"%PDF fresh").unwrap();
        // As if the look had happened before the rewrite: the cutoff is now, the file newer.
        let cutoff = SystemTime::now() - DAY;
        let aside = aside_path(&dir, "badge-race.pdf");
        std::fs::rename(&path, &aside).unwrap();
        assert!(!expired(&aside, cutoff).unwrap());
        put_back(&aside, &path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"%PDF fresh");
        // A newer badge already there wins over the one being put back.
        std::fs::write(&aside, b"%PDF older").unwrap();
        put_back(&aside, &path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"%PDF fresh");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["badge-race.pdf"]);
        // And `expire` itself leaves a fresh badge alone.
        assert!(!expire(&dir, "badge-race.pdf", cutoff).unwrap());
        let old = File::options().write(true).open(&path).unwrap();
        old.set_modified(SystemTime::now() - 2 * DAY).unwrap();
        assert!(expire(&dir, "badge-race.pdf", cutoff).unwrap());
        assert!(std::fs::read_dir(&dir).unwrap().next().is_none());
        std::fs::remove_dir(&dir).unwrap();
    }
}
