//! Render benchmark: `cargo bench -p badge-forge --bench render`.
//!
//! Prints time per badge and PDF sizes for single badges per script, for a mixed corpus,
//! for 500-badge sheets, and for the default layout against the example layout with a logo
//! and a brand font (`templates/layouts/pronouns.toml`). Every figure is also given as a ratio to an ASCII-only
//! baseline measured in the same run, so results compare across machines.
//!
//! Times are the thread's CPU time (what a render costs, even on a busy shared machine);
//! wall-clock time is shown beside it where the two can differ.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use badge_forge::render::{Badge, BadgeType, Design, EventInfo, Paper, Renderer};
use badge_forge::worker::thread_cpu_time;

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

fn main() {
    let started = thread_cpu_time();
    let renderer = Arc::new(Renderer::new(EventInfo::default()).expect("renderer"));
    let setup = thread_cpu_time() - started;
    println!(
        "Renderer::new (fonts parsed, fixed text shaped): {:.2} cpu ms",
        ms(setup)
    );

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
    for paper in [Paper::Letter, Paper::A4] {
        let (per_badge, bytes) = sheet_of(&renderer, &sheet, paper);
        println!(
            "sheet {paper:?}, 500 badges: {:.3} cpu ms/badge ({:.2}x base), {} B/badge ({:.2}x base single PDF), {} KB total",
            ms(per_badge),
            per_badge.as_secs_f64() / base.per_badge.as_secs_f64(),
            bytes / sheet.len(),
            (bytes / sheet.len()) as f64 / base.median_bytes as f64,
            bytes / 1024
        );
    }

    layouts(&renderer, &ascii, &mixed);
}

/// Renders `badges` as one sheet three times: CPU time per badge, and the PDF's size.
fn sheet_of(renderer: &Renderer, badges: &[Badge], paper: Paper) -> (Duration, usize) {
    let mut bytes = 0;
    let rounds = 3;
    let cpu = thread_cpu_time();
    for _ in 0..rounds {
        bytes = black_box(renderer.render_sheet(badges, paper).expect("sheet")).len();
    }
    (
        (thread_cpu_time() - cpu) / (rounds * badges.len()) as u32,
        bytes,
    )
}

/// The default layout against the one with a logo (an SVG rasterised at load) and a brand
/// font: the logo is decoded once per process and embedded once per PDF.
fn layouts(default: &Renderer, ascii: &[Badge], mixed: &[Badge]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../templates/layouts");
    let cpu = thread_cpu_time();
    let design = Design::load(&dir.join("pronouns.toml")).expect("example layout");
    let logo = Renderer::with_layout(EventInfo::default(), design).expect("renderer");
    println!();
    println!(
        "pronouns.toml (logo + brand font) loaded and renderer built: {:.2} cpu ms",
        ms(thread_cpu_time() - cpu)
    );
    single(&logo, ascii, 1); // warm up
    println!(
        "{:<8} {:>13} {:>8} {:>13} {:>8} {:>15} {:>12}",
        "layout", "ascii ms", "bytes", "mixed ms", "bytes", "sheet ms/badge", "sheet B/badge"
    );
    for (label, renderer) in [("default", default), ("logo", &logo)] {
        let a = single(renderer, ascii, 5);
        let m = single(renderer, mixed, 2);
        let (sheet, bytes) = sheet_of(renderer, &mixed[..500], Paper::Letter);
        println!(
            "{:<8} {:>13.3} {:>8} {:>13.3} {:>8} {:>15.3} {:>12}",
            label,
            ms(a.per_badge),
            a.median_bytes,
            ms(m.per_badge),
            m.median_bytes,
            ms(sheet),
            bytes / 500
        );
    }
}
