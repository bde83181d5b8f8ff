//! Print runs against Typst: `cargo bench -p badge-forge --bench typst`.
//!
//! Both sides print the same 500 attendees (`fake_badges(500, 2026)`, the names `sheet -n 500`
//! prints: several scripts) from the same CSV file, six 4 × 3 in badges to a Letter page:
//!
//! - **badge-forge**: the built binary's `sheet --input LIST --layout
//!   templates/layouts/default.toml` (the real `sheet --input` path: read, sort by surname,
//!   impose on Avery 5392 with crop marks, write the PDF), run as a child process
//!   [`ROUNDS`] times. Its CPU is the whole process's (user + system, `getrusage` of the reaped
//!   child: start-up and fonts included). A one-row list run the same way gives the fixed cost
//!   of a process, so the cost of each further badge is also printed.
//! - **Typst 0.15** (PyPI `typst==0.15.0`, installed on first use into `target/typst-venv` by
//!   `scripts/python-venv`) compiling `benches/typst/badge.typ`, a comparable badge without a
//!   QR code (Typst has none built in, and its QR packages are downloaded at compile time),
//!   over the same list in one document. `benches/typst/compile.py` reads the CPU time around
//!   the compile only (not the interpreter's start): **cold**, a fresh process's first compile,
//!   [`ROUNDS`] processes; **warm**, after compiling another 500 badges in the same process.
//!
//! Printed: CPU ms and PDF bytes per badge for each, and Typst's time per badge over ours (the
//! issue asks for at least 3x, aims for 5x). Then each badge as its own PDF, [`SINGLES`] of
//! them: ours in this process (the default layout from its file), Typst in one warm compiler.
//! Medians of the rounds; the machine's load average is printed, as figures move with it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use badge_forge::fake_badges::fake_badges;
use badge_forge::render::{Badge, Design, EventInfo, Renderer};
use badge_forge::worker::thread_cpu_time;
use serde::Deserialize;

/// Figures at the start of issue #16, for reference: `sheet -n 500`'s CPU ms and bytes per
/// badge (whole process), and Typst's in one document.
const ISSUE_START: (f64, usize, &str) = (0.08, 550, "0.23-0.30 ms and 983 B");
/// Badges on the sheet.
const BADGES: usize = 500;
/// Runs of each sheet measurement; the median is printed.
const ROUNDS: usize = 7;
/// Badges rendered each as its own PDF.
const SINGLES: usize = 100;

/// The repository's root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `value` as one CSV field: quoted, quotes doubled (RFC 4180).
fn csv_field(value: &str) -> String {
    format!("\"{}\"", value.replace('"', "\"\""))
}

/// Writes `badges` to `path` as an attendee list (the columns of `sheet --input`).
fn write_list(path: &Path, badges: &[Badge]) {
    let mut text = String::from("id,name,company,type\n");
    for b in badges {
        let fields = [&b.id, &b.name, &b.company, &b.badge_type.to_string()];
        let row: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        text.push_str(&row.join(","));
        text.push('\n');
    }
    std::fs::write(path, text).expect("write the attendee list");
}

/// One measurement: CPU per badge and PDF bytes per badge.
#[derive(Clone, Copy)]
struct PerBadge {
    cpu: Duration,
    bytes: usize,
}

/// The median of `ROUNDS` runs of `run` (by CPU, when it returns CPU first).
fn median<T: Ord>(mut run: impl FnMut() -> T) -> T {
    let mut runs: Vec<T> = (0..ROUNDS).map(|_| run()).collect();
    runs.sort_unstable();
    runs.swap_remove(ROUNDS / 2)
}

/// `badge-forge sheet --input list`, or `-n N`, as a child process: its whole CPU and the
/// sheet's size.
fn our_sheet(badges: Badges, pdf: &Path) -> (Duration, usize) {
    let before = bench_support::reaped_children_cpu_seconds();
    let mut command = Command::new(env!("CARGO_BIN_EXE_badge-forge"));
    command.arg("sheet");
    match badges {
        Badges::List(list) => command.arg("--input").arg(list),
        Badges::Fake(n) => command.arg("-n").arg(n.to_string()),
    };
    let out = command
        .arg("--layout")
        .arg(repo().join("templates/layouts/default.toml"))
        .arg("--output")
        .arg(pdf)
        .output()
        .expect("run badge-forge sheet");
    let cpu = bench_support::reaped_children_cpu_seconds() - before;
    assert!(
        out.status.success(),
        "badge-forge sheet failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::metadata(pdf).expect("the sheet").len() as usize;
    (Duration::from_secs_f64(cpu), bytes)
}

/// The badges of a `sheet` run.
#[derive(Clone, Copy)]
enum Badges<'a> {
    /// `--input`: an attendee list.
    List(&'a Path),
    /// `-n`: that many fake attendees, `fake_badges(n, 2026)`.
    Fake(usize),
}

/// Per badge, of a sheet of [`BADGES`].
fn per_badge((cpu, bytes): (Duration, usize)) -> PerBadge {
    PerBadge {
        cpu: cpu / BADGES as u32,
        bytes: bytes / BADGES,
    }
}

/// What `compile.py` prints.
#[derive(Deserialize)]
struct Compiled {
    cpu_seconds: f64,
    badges: usize,
    bytes: Vec<usize>,
}

/// The virtualenv with Typst, made on first use; panics with `scripts/python-venv`'s reason
/// when it cannot be made.
fn typst_venv() -> PathBuf {
    let out = Command::new(repo().join("scripts/python-venv"))
        .arg(repo().join("target/typst-venv"))
        .arg(typst_dir().join("requirements.txt"))
        .arg("Typst 0.15 (PyPI typst==0.15.0)")
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("run scripts/python-venv");
    assert!(
        out.status.success(),
        "the Typst comparison needs PyPI's typst==0.15.0 in a Python 3.12+ virtualenv, \
         and scripts/python-venv could not make one (its message is above)"
    );
    PathBuf::from(String::from_utf8(out.stdout).expect("a path").trim())
}

/// `benches/typst`: the template, the compile script and its requirements.
fn typst_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/typst")
}

/// One run of `compile.py MODE` over `list` (after compiling `warmup`, if given).
fn typst(venv: &Path, mode: &str, list: &Path, warmup: Option<&Path>) -> Compiled {
    let out = Command::new(venv.join("bin/python"))
        .arg(typst_dir().join("compile.py"))
        .arg(mode)
        .arg(typst_dir().join("badge.typ"))
        .arg(repo().join("fonts"))
        .arg(list)
        .args(warmup)
        .output()
        .expect("run compile.py");
    assert!(
        out.status.success(),
        "Typst failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("compile.py's JSON")
}

/// A sheet of [`BADGES`] compiled by Typst: the compile's CPU and the PDF's size.
fn typst_sheet(venv: &Path, list: &Path, warmup: Option<&Path>) -> (Duration, usize) {
    let compiled = typst(venv, "sheet", list, warmup);
    assert_eq!(compiled.badges, BADGES, "Typst's badges");
    (
        Duration::from_secs_f64(compiled.cpu_seconds),
        compiled.bytes[0],
    )
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One row of the sheet table, with Typst's CPU per badge over ours.
fn row(label: &str, s: PerBadge, ours: PerBadge) {
    println!(
        "{label:<52} {:>8.3} {:>8} {:>10.1}x",
        ms(s.cpu),
        s.bytes,
        s.cpu.as_secs_f64() / ours.cpu.as_secs_f64()
    );
}

/// Each of `badges` as its own PDF, in this process: CPU per badge and the median size.
fn our_singles(badges: &[Badge]) -> PerBadge {
    let design = Design::load(&repo().join("templates/layouts/default.toml")).expect("layout");
    let renderer = Renderer::with_layout(EventInfo::default(), design).expect("renderer");
    renderer.render(&badges[0]).expect("renders"); // warm up
    let cpu = thread_cpu_time();
    let mut sizes: Vec<usize> = badges
        .iter()
        .map(|b| renderer.render(b).expect("renders").len())
        .collect();
    let cpu = (thread_cpu_time() - cpu) / badges.len() as u32;
    sizes.sort_unstable();
    PerBadge {
        cpu,
        bytes: sizes[sizes.len() / 2],
    }
}

/// Typst's single-badge documents, per badge, with the median size.
fn typst_singles(venv: &Path, list: &Path, warmup: &Path) -> PerBadge {
    let mut compiled = typst(venv, "single", list, Some(warmup));
    compiled.bytes.sort_unstable();
    PerBadge {
        cpu: Duration::from_secs_f64(compiled.cpu_seconds) / compiled.badges as u32,
        bytes: compiled.bytes[compiled.bytes.len() / 2],
    }
}

/// The attendee lists both sides print, as CSV files in a scratch directory.
struct Lists {
    dir: PathBuf,
    /// [`BADGES`] fake attendees (`fake_badges(BADGES, 2026)`).
    all: PathBuf,
    /// The first of them.
    one: PathBuf,
    /// The first [`SINGLES`] of them.
    singles: PathBuf,
    /// [`BADGES`] others (seed 2027), compiled first to warm Typst up.
    others: PathBuf,
}

impl Lists {
    fn write(badges: &[Badge]) -> Lists {
        let dir = std::env::temp_dir().join(format!("bf-typst-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        let lists = Lists {
            all: dir.join("attendees.csv"),
            one: dir.join("one.csv"),
            singles: dir.join("singles.csv"),
            others: dir.join("others.csv"),
            dir,
        };
        write_list(&lists.all, badges);
        write_list(&lists.one, &badges[..1]);
        write_list(&lists.singles, &badges[..SINGLES]);
        write_list(&lists.others, &fake_badges(BADGES, 2027));
        lists
    }
}

/// The sheet table: ours through `sheet`, whole process, against Typst's compile.
fn sheets(venv: &Path, lists: &Lists) {
    let pdf = lists.dir.join("sheet.pdf");
    let (fixed, _) = our_sheet(Badges::List(&lists.one), &pdf);
    let (total, bytes) = median(|| our_sheet(Badges::List(&lists.all), &pdf));
    let whole = per_badge((total, bytes));
    let further = total.saturating_sub(fixed) / (BADGES as u32 - 1);
    let fake = per_badge(median(|| our_sheet(Badges::Fake(BADGES), &pdf)));
    let cold = per_badge(median(|| typst_sheet(venv, &lists.all, None)));
    let warm = per_badge(median(|| {
        typst_sheet(venv, &lists.all, Some(&lists.others))
    }));

    println!("{BADGES} badges from one CSV, one PDF, Letter 6-up (CPU ms and bytes per badge)");
    println!("{:<52} {:>8} {:>8} {:>11}", "", "cpu ms", "bytes", "x ours");
    row(
        "badge-forge sheet --input (whole process, QR code)",
        whole,
        whole,
    );
    println!(
        "{:<52} {:>8.3}   (a one-row run: {:.1} cpu ms)",
        "  each badge after the process's fixed cost",
        ms(further),
        ms(fixed)
    );
    row("badge-forge sheet -n 500 (the same, no list)", fake, whole);
    row("Typst 0.15, cold compile (no QR code)", cold, whole);
    row("Typst 0.15, warm compile (no QR code)", warm, whole);
    println!(
        "issue start (another day): sheet -n 500 {:.3} cpu ms and {} B per badge; Typst {}",
        ISSUE_START.0, ISSUE_START.1, ISSUE_START.2
    );
}

/// The single-badge table: ours in this process against Typst's warm compiler.
fn singles(venv: &Path, lists: &Lists, badges: &[Badge]) {
    let ours = our_singles(&badges[..SINGLES]);
    let theirs = typst_singles(venv, &lists.singles, &lists.others);
    println!("each badge as its own PDF, {SINGLES} badges (median bytes)");
    row("badge-forge Renderer::render (QR code)", ours, ours);
    row("Typst 0.15, warm compiler (no QR code)", theirs, ours);
}

fn main() {
    let badges = fake_badges(BADGES, 2026);
    let lists = Lists::write(&badges);
    let venv = typst_venv();
    println!("load average {}", bench_support::load_average());
    println!();
    sheets(&venv, &lists);
    println!();
    singles(&venv, &lists, &badges);
    let _ = std::fs::remove_dir_all(&lists.dir);
}
