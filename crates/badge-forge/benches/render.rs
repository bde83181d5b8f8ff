//! Render benchmark: `cargo bench -p badge-forge --bench render`.
//!
//! Every renderer here is built from a layout file read at run time, as `--layout` does:
//! `templates/layouts/default.toml` (not the copy compiled into the binary) and
//! `templates/layouts/pronouns.toml`. Printed, in order:
//!
//! 1. Loading the default layout and building its renderer, CPU ms each (once per process).
//! 2. Per script, 200 badges each as its own PDF: CPU ms per badge, wall ms, median bytes,
//!    and both as a ratio to the ASCII badge of the same run, so results compare across
//!    machines. Then a mixed corpus of every sample, two threads sharing one renderer, and
//!    500-badge sheets on two stocks.
//! 3. The issue's starting figures (#16: fixed, measured on another day under another load)
//!    beside this run's: ASCII and mixed-corpus CPU ms per badge, and the median PDF of the
//!    fake attendees `sheet -n` and the pipeline print. Their ratio says more on a quiet
//!    machine; the ratios to this run's ASCII badge hold on any.
//! 4. The default layout against the one with a logo and a brand font: loading it (the logo
//!    decoded and compressed, the font read: once per process) and building its renderer
//!    timed apart, then CPU ms and bytes per badge for both and the logo's extra per badge, as
//!    its own PDF (where the image is embedded in every file) and on a sheet (where it is one
//!    object for the whole PDF).
//!
//! Times are the thread's CPU time (what a render costs, even on a busy shared machine);
//! wall-clock time is shown beside it where the two can differ.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use badge_forge::fake_badges::fake_badges;
use badge_forge::render::{Badge, BadgeType, Design, EventInfo, Renderer, Stock};
use badge_forge::worker::thread_cpu_time;

/// Figures at the start of issue #16 for the hard-coded layout, each badge as its own PDF:
/// CPU ms per ASCII badge, per badge of the mixed corpus, and the median PDF in bytes.
const ISSUE_START: (f64, f64, usize) = (0.23, 0.40, 6_200);

/// Names per script, with a company in the same script where that is natural.
const SAMPLES: &[(&str, &str, &str)] = &[
    ("ascii", "Ada Lovelace", "Analytical Engines Ltd"),
    ("latin", "José Núñez-García", "Telefónica Investigación"),
    ("latin", "Zoë Œrsted-Ångström", "Ørsted Æblegård ApS"),
    ("greek", "Δημήτρης Παπαδόπουλος", "Ελληνικά Πετρέλαια"),
    ("cyrillic", "Ярослава Ковальчук", "ООО «Ромашка»"),
    ("arabic", "محمد بن سلمان العتيبي", "شركة أرامكو"),
    ("arabic", "فاطمة الزهراء", "مصرف الراجحي"),
    ("hebrew", "שרה כהן", "אוניברסיטת תל אביב"),
    ("cjk", "山田 太郎", "株式会社サンプル"),
    ("cjk", "王小明", "阿里巴巴集团"),
    ("cjk", "김민준", "삼성전자"),
    ("emoji", "Sam 🚀 Rivera", "Rocket Labs 🎉"),
    (
        "long",
        "Maximilian Alexander Friedrich Wilhelm von Hohenzollern-Sigmaringen und Hechingen der Jüngere, Graf zu Veringen, Herr zu Haigerloch und Wehrstein, Erbkämmerer des Heiligen Römischen Reiches",
        "Hohenzollernsche Landesbahn Aktiengesellschaft",
    ),
];

fn badge(i: usize, name: &str, company: &str) -> Badge {
    Badge {
        // UUID-shaped ids: the QR code is as large as it gets in practice.
        id: format!("4f0c2b1e-9d7a-4c55-8e21-{i:012x}"),
        name: name.to_string(),
        company: company.to_string(),
        badge_type: BadgeType::ALL[i % 4].clone(),
        fields: Default::default(),
    }
}

struct Stats {
    per_badge: Duration,
    wall_per_badge: Duration,
    median_bytes: usize,
    p95_bytes: usize,
}

/// Renders `badges` one by one, `rounds` times, and reports mean time and sizes.
fn single(renderer: &Renderer, badges: &[Badge], rounds: usize) -> Stats {
    let mut sizes: Vec<usize> = badges
        .iter()
        .map(|b| renderer.render(b).expect("renders").len())
        .collect();
    let start = Instant::now();
    let cpu = thread_cpu_time();
    for _ in 0..rounds {
        for b in badges {
            black_box(renderer.render(black_box(b)).expect("renders"));
        }
    }
    let n = (rounds * badges.len()) as u32;
    let per_badge = (thread_cpu_time() - cpu) / n;
    let wall_per_badge = start.elapsed() / n;
    sizes.sort_unstable();
    Stats {
        per_badge,
        wall_per_badge,
        median_bytes: sizes[sizes.len() / 2],
        p95_bytes: sizes[(sizes.len() * 95).div_ceil(100) - 1],
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `templates/layouts/NAME`.
fn layout_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../templates/layouts")
        .join(name)
}

/// The renderer of the layout file `name`, printing the CPU time of loading the file
/// (`Design::load`: parsing, checking, decoding its images and reading its fonts) and of
/// building the renderer (fonts parsed, fixed text shaped) apart.
fn load_renderer(name: &str) -> Renderer {
    let cpu = thread_cpu_time();
    let design = Design::load(&layout_file(name)).expect("a valid layout");
    let loaded = thread_cpu_time();
    let renderer = Renderer::with_layout(EventInfo::default(), design).expect("renderer");
    println!(
        "{name}: Design::load {:.2} cpu ms, Renderer::with_layout {:.2} cpu ms (once per process)",
        ms(loaded - cpu),
        ms(thread_cpu_time() - loaded)
    );
    renderer
}

fn main() {
    let renderer = Arc::new(load_renderer("default.toml"));

    // Baseline: an ASCII name.
    let ascii: Vec<Badge> = (0..200)
        .map(|i| badge(i, SAMPLES[0].1, SAMPLES[0].2))
        .collect();
    single(&renderer, &ascii, 1); // warm up caches and page in the fonts
    let base = single(&renderer, &ascii, 10);
    println!();
    println!(
        "{:<10} {:>12} {:>8} {:>12} {:>10} {:>8}",
        "script", "cpu ms/badge", "x base", "wall ms", "bytes", "x base"
    );
    let row = |label: &str, s: &Stats| {
        println!(
            "{:<10} {:>12.3} {:>8.2} {:>12.3} {:>10} {:>8.2}",
            label,
            ms(s.per_badge),
            s.per_badge.as_secs_f64() / base.per_badge.as_secs_f64(),
            ms(s.wall_per_badge),
            s.median_bytes,
            s.median_bytes as f64 / base.median_bytes as f64
        );
    };
    row("ascii", &base);
    for script in [
        "latin", "greek", "cyrillic", "arabic", "hebrew", "cjk", "emoji", "long",
    ] {
        let badges: Vec<Badge> = SAMPLES
            .iter()
            .filter(|s| s.0 == script)
            .cycle()
            .take(200)
            .enumerate()
            .map(|(i, s)| badge(i, s.1, s.2))
            .collect();
        row(script, &single(&renderer, &badges, 5));
    }

    // A mixed corpus: every sample in turn.
    let mixed: Vec<Badge> = SAMPLES
        .iter()
        .cycle()
        .take(1300)
        .enumerate()
        .map(|(i, s)| badge(i, s.1, s.2))
        .collect();
    let m = single(&renderer, &mixed, 2);
    println!();
    println!(
        "mixed corpus ({} badges, all scripts): {:.3} cpu ms/badge ({:.2}x base, {:.3} wall), median {} B ({:.2}x), p95 {} B",
        mixed.len(),
        ms(m.per_badge),
        m.per_badge.as_secs_f64() / base.per_badge.as_secs_f64(),
        ms(m.wall_per_badge),
        m.median_bytes,
        m.median_bytes as f64 / base.median_bytes as f64,
        m.p95_bytes
    );

    // Two threads sharing one renderer, as the worker does.
    let threads = 2;
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let renderer = Arc::clone(&renderer);
            let mixed = mixed.clone();
            std::thread::spawn(move || {
                for b in &mixed {
                    black_box(renderer.render(b).expect("renders"));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread");
    }
    let elapsed = start.elapsed();
    println!(
        "{threads} threads, shared Arc<Renderer>: {:.0} badges/s",
        (threads * mixed.len()) as f64 / elapsed.as_secs_f64()
    );

    // 500-badge sheets.
    let sheet: Vec<Badge> = mixed[..500].to_vec();
    println!();
    for stock in ["avery-5392", "a6-4up-a4"] {
        let stock: Stock = stock.parse().expect("a stock");
        let (per_badge, bytes) = sheet_of(&renderer, &sheet, &stock);
        println!(
            "sheet {}, 500 badges: {:.3} cpu ms/badge ({:.2}x base), {} B/badge ({:.2}x base single PDF), {} KB total",
            stock.name(),
            ms(per_badge),
            per_badge.as_secs_f64() / base.per_badge.as_secs_f64(),
            bytes / sheet.len(),
            (bytes / sheet.len()) as f64 / base.median_bytes as f64,
            bytes / 1024
        );
    }

    issue_start(&renderer, &base, &m);
    layouts(&renderer, &ascii, &mixed);
}

/// This run's figures for the default layout beside [`ISSUE_START`]'s.
fn issue_start(renderer: &Renderer, ascii: &Stats, mixed: &Stats) {
    let fake = single(renderer, &fake_badges(500, 2026), 2);
    let (ascii_ms, mixed_ms, median_bytes) = ISSUE_START;
    println!();
    println!(
        "default layout from its file, against the issue-start figures (hard-coded layout, another day)"
    );
    println!(
        "{:<44} {:>12} {:>10} {:>14}",
        "each badge as its own PDF", "issue start", "this run", "x issue start"
    );
    let row = |label: &str, then: f64, now: f64, unit: &str| {
        println!(
            "{label:<44} {then:>9.3} {unit} {now:>7.3} {unit} {:>14.2}",
            now / then
        );
    };
    row("ASCII badge, cpu", ascii_ms, ms(ascii.per_badge), "ms");
    row(
        "mixed corpus, cpu per badge",
        mixed_ms,
        ms(mixed.per_badge),
        "ms",
    );
    row(
        "fake attendees, median PDF",
        median_bytes as f64 / 1000.0,
        fake.median_bytes as f64 / 1000.0,
        "KB",
    );
    println!(
        "(the fake attendees, 500 as in the pipeline: {:.3} cpu ms per badge)",
        ms(fake.per_badge)
    );
}

/// Renders `badges` as one sheet three times: CPU time per badge, and the PDF's size.
fn sheet_of(renderer: &Renderer, badges: &[Badge], stock: &Stock) -> (Duration, usize) {
    let mut bytes = 0;
    let rounds = 3;
    let cpu = thread_cpu_time();
    for _ in 0..rounds {
        bytes = black_box(renderer.render_sheet(badges, stock).expect("sheet")).len();
    }
    (
        (thread_cpu_time() - cpu) / (rounds * badges.len()) as u32,
        bytes,
    )
}

/// One layout's figures in [`layouts`]: as its own PDF (ASCII badge, mixed corpus) and on a
/// 500-badge sheet (CPU per badge, bytes per badge).
struct LayoutRow {
    ascii: Stats,
    mixed: Stats,
    sheet: (Duration, usize),
}

/// The figures of [`LayoutRow`] for `renderer`.
fn layout_row(renderer: &Renderer, ascii: &[Badge], mixed: &[Badge]) -> LayoutRow {
    let (cpu, bytes) = sheet_of(
        renderer,
        &mixed[..500],
        &"avery-5392".parse().expect("a stock"),
    );
    LayoutRow {
        ascii: single(renderer, ascii, 5),
        mixed: single(renderer, mixed, 2),
        sheet: (cpu, bytes / 500),
    }
}

/// The default layout against the one with a logo (an SVG rasterised at load) and a brand
/// font: the logo is decoded once per process (in `Design::load`, timed apart), embedded in
/// every PDF of one badge and once in a sheet's, which the last row (logo minus default, per
/// badge) shows.
fn layouts(default: &Renderer, ascii: &[Badge], mixed: &[Badge]) {
    println!();
    let logo = load_renderer("pronouns.toml");
    single(&logo, ascii, 1); // warm up
    println!(
        "{:<16} {:>10} {:>8} {:>10} {:>8} {:>15} {:>14}",
        "layout", "ascii ms", "bytes", "mixed ms", "bytes", "sheet ms/badge", "sheet B/badge"
    );
    let d = layout_row(default, ascii, mixed);
    let l = layout_row(&logo, ascii, mixed);
    for (label, r) in [("default", &d), ("logo", &l)] {
        println!(
            "{:<16} {:>10.3} {:>8} {:>10.3} {:>8} {:>15.3} {:>14}",
            label,
            ms(r.ascii.per_badge),
            r.ascii.median_bytes,
            ms(r.mixed.per_badge),
            r.mixed.median_bytes,
            ms(r.sheet.0),
            r.sheet.1
        );
    }
    let delta_ms = |a: Duration, b: Duration| ms(a) - ms(b);
    let delta_bytes = |a: usize, b: usize| a as i64 - b as i64;
    println!(
        "{:<16} {:>+10.3} {:>+8} {:>+10.3} {:>+8} {:>+15.3} {:>+14}",
        "logo - default",
        delta_ms(l.ascii.per_badge, d.ascii.per_badge),
        delta_bytes(l.ascii.median_bytes, d.ascii.median_bytes),
        delta_ms(l.mixed.per_badge, d.mixed.per_badge),
        delta_bytes(l.mixed.median_bytes, d.mixed.median_bytes),
        delta_ms(l.sheet.0, d.sheet.0),
        delta_bytes(l.sheet.1, d.sheet.1)
    );
}
