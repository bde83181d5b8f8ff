//! Print runs: `badge-forge sheet --input` on attendee lists, read back from the PDF with
//! poppler. Bad rows are reported by line and left out; the good ones print.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::pdf_readback::number;
use crate::render::poppler;
use crate::support::{BADGE_FORGE, output_dir};

/// What one `badge-forge sheet` run left: its exit code, stderr, and the PDF if it wrote one.
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stderr: String,
    pub(crate) pdf: Option<Vec<u8>>,
    /// The process's peak resident memory, in KiB.
    max_rss_kib: i64,
}

/// Runs `badge-forge sheet --input <list> -o <list>.pdf <args>`.
fn sheet(list: &Path, args: &[&str]) -> Run {
    let list_arg = list.to_str().expect("a UTF-8 temporary path");
    let args: Vec<&str> = ["--input", list_arg]
        .into_iter()
        .chain(args.iter().copied())
        .collect();
    run_sheet(&list.with_extension("pdf"), &args)
}

/// Runs `badge-forge sheet -o <pdf_path> <args>`, waiting with `wait4` for the child's own
/// peak memory.
#[expect(
    clippy::zombie_processes,
    reason = "the child is reaped by wait4, which also gives its peak memory"
)]
pub(crate) fn run_sheet(pdf_path: &Path, args: &[&str]) -> Run {
    let mut child = Command::new(BADGE_FORGE)
        .arg("sheet")
        .arg("-o")
        .arg(pdf_path)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run badge-forge sheet");
    let pid = child.id() as i32;
    let stderr = std::io::read_to_string(child.stderr.take().expect("piped")).unwrap();
    let (mut status, mut usage) = (0, unsafe { std::mem::zeroed::<libc::rusage>() });
    // SAFETY: waits for our own child, writing into the two locals above.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4");
    assert!(libc::WIFEXITED(status), "badge-forge sheet died: {stderr}");
    Run {
        code: libc::WEXITSTATUS(status),
        stderr,
        pdf: std::fs::read(pdf_path).ok(),
        max_rss_kib: usage.ru_maxrss,
    }
}

/// Writes `content` to a fresh directory as `name`.
fn list(name: &str, content: &[u8]) -> PathBuf {
    let path = output_dir("sheets").join(name);
    std::fs::write(&path, content).unwrap();
    path
}

/// The names in `pdf`, in the order the sheet prints them, out of `names`.
pub(crate) fn printed_order<'a>(pdf: &[u8], names: &[&'a str]) -> Vec<&'a str> {
    let text = poppler("pdftotext", &["-raw"], pdf);
    let mut found: Vec<(usize, &str)> = names
        .iter()
        .filter_map(|name| text.find(name).map(|at| (at, *name)))
        .collect();
    found.sort();
    found.into_iter().map(|(_, name)| name).collect()
}

/// Fifty megabytes on one line: what a runaway export or a binary file looks like.
fn huge_field() -> Vec<u8> {
    vec![b'x'; 50 << 20]
}

#[test]
fn every_bad_row_is_reported_by_line_and_the_rest_print() {
    let mut csv = b"id,name,company,type,pronouns\n\
        a1,Ada Lovelace,Analytical Engines,speaker,she/her\n\
        a2,,Nameless Ltd,attendee,\n\
        a3,Grace Hopper,Navy,attendee,extra,field\n\
        a4,\xff\xfeBroken,UTF-8 Inc,attendee,\n\
        a5,"
    .to_vec();
    csv.extend(huge_field());
    csv.extend(b",Big Co,attendee,\n../etc,Mallory,Evil,attendee,\na7,Zo\xc3\xab \xc3\x85ngstr\xc3\xb6m,Acme,press,they/them\n");
    let path = list("attendees.csv", &csv);
    let run = sheet(&path, &["--sort", "none"]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    let file = path.display();
    for (line, reason) in [
        (3, "name is empty"),
        (4, "the row has 6 fields, the header 5"),
        (5, "column \"name\" is not UTF-8"),
        (6, "the row is longer than 65536 bytes"),
        (7, "\"id\" \"../etc\" must be 1 to 128 letters"),
    ] {
        let expected = format!("{file}:{line}: ");
        let reported = run.stderr.lines().find(|l| l.starts_with(&expected));
        assert!(
            reported.is_some_and(|l| l.contains(reason)),
            "line {line} should say {reason:?}:\n{}",
            run.stderr
        );
    }
    assert!(
        run.stderr.contains("5 of 7 rows of"),
        "no summary:\n{}",
        run.stderr
    );
    let pdf = run.pdf.expect("the good rows print");
    assert_eq!(
        printed_order(&pdf, &["Ada Lovelace", "Zoë Ångström", "Mallory", "Grace"]),
        ["Ada Lovelace", "Zoë Ångström"]
    );
    // The 50 MB line is skipped, never held: the run peaks no higher than one without it,
    // give or take a few pages.
    let small = sheet(
        &list("small.csv", b"id,name,company,type\n1,Ada,X,attendee\n"),
        &[],
    );
    assert_eq!(small.code, 0, "{}", small.stderr);
    assert!(
        run.max_rss_kib < small.max_rss_kib + (16 << 10),
        "peak memory {} KiB against {} KiB without the 50 MB line: it was read whole",
        run.max_rss_kib,
        small.max_rss_kib
    );
}

#[test]
fn json_lines_are_read_as_job_args() {
    let mut jsonl =
        b"{\"id\":\"j1\",\"name\":\"Ada Lovelace\",\"company\":\"\",\"type\":\"speaker\"}\n\
        {\"id\":\"j2\",\"company\":\"\",\"type\":\"speaker\"}\n\
        {\"id\":\"j3\",\"name\":\""
            .to_vec();
    jsonl.extend(huge_field());
    jsonl.extend(b"\",\"company\":\"\",\"type\":\"x\"}\n\n{\"badge_id\":4,\"name\":\"Alan Turing\",\"company\":\"NPL\",\"type\":\"staff\"}");
    let path = list("attendees.jsonl", &jsonl);
    let run = sheet(&path, &[]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    let file = path.display();
    assert!(
        run.stderr.contains(&format!(
            "{file}:2: invalid badge args: missing field `name`"
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains(&format!("{file}:3: the line is longer than 65536 bytes")),
        "{}",
        run.stderr
    );
    let pdf = run.pdf.expect("the good rows print");
    assert_eq!(
        printed_order(&pdf, &["Ada Lovelace", "Alan Turing"]).len(),
        2
    );
}

#[test]
fn a_list_that_cannot_be_read_prints_nothing() {
    let path = list("no-name-column.csv", b"id,company,type\n1,X,attendee\n");
    let run = sheet(&path, &[]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("line 1: the header (id,company,type) has no column \"name\""),
        "{}",
        run.stderr
    );
    assert!(run.pdf.is_none());

    let path = list("all-bad.csv", b"id,name,company,type\n1,,X,attendee\n");
    let run = sheet(&path, &[]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains(":2: name is empty"), "{}", run.stderr);
    assert!(run.pdf.is_none());

    let path = list("attendees.txt", b"");
    let run = sheet(&path, &[]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("--format csv"), "{}", run.stderr);
}

#[test]
fn a_layout_required_column_must_be_in_the_header() {
    let layout = output_dir("sheets-layout").join("required.toml");
    let default = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../templates/layouts/default.toml"),
    )
    .unwrap();
    std::fs::write(
        &layout,
        format!(
            "{default}\n[[element]]\nkind = \"text\"\ntext = \"{{args.pronouns}}\"\n\
             required = true\nleft = 18\nright = 18\ntop = 70\nheight = 12\n"
        ),
    )
    .unwrap();
    let path = list("attendees.csv", b"id,name,company,type\n1,Ada,X,attendee\n");
    let run = sheet(&path, &["--layout", layout.to_str().unwrap()]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("has no column \"pronouns\""),
        "{}",
        run.stderr
    );
}

/// Attendees whose names a desk in each country files differently, and names in scripts
/// without letters' case (Arabic, right to left; Han, without spaces) and with an emoji.
const HOSTILE: &str = "id,name,company,type
h1,Zoë Zander,Acme,attendee
h2,Anders Ångström,KTH,speaker
h3,Søren Ødegård,DTU,attendee
h4,Ola Olsen,UiO,attendee
h5,Uwe Müller,TUM,attendee
h6,Paul Mann,SAP,attendee
h7,Jan Łukasz,PW,attendee
h8,Ida Lund,LU,attendee
h9,Ana 🎉 Lee,Fun,attendee
h10,محمد علي,Cairo,attendee
h11,山田太郎,Tokyo,attendee
h12,Max Mzyk,PL,attendee
h13,Ærø Æbelø,DK,attendee
h14,Ulf Über,X,attendee
";

/// One word of each hostile name, as pdftotext prints it.
const SURNAMES: [&str; 14] = [
    "Zander",
    "Ångström",
    "Ødegård",
    "Olsen",
    "Müller",
    "Mann",
    "Łukasz",
    "Lund",
    "Lee",
    "محمد",
    "山田太郎",
    "Mzyk",
    "Æbelø",
    "Über",
];

#[test]
fn hostile_names_sort_as_each_desk_expects() {
    let path = list("hostile.csv", HOSTILE.as_bytes());
    let latin_then_others = ["محمد", "山田太郎"];
    // Swedish and Danish: Ü as Y, Ł as L, and their own letters after Z.
    let nordic = |after_z: [&'static str; 3]| -> Vec<&'static str> {
        let head = [
            "Lee", "Łukasz", "Lund", "Mann", "Müller", "Mzyk", "Olsen", "Über", "Zander",
        ];
        head.into_iter().chain(after_z).collect()
    };
    // Polish and German: Æ Å Ø Ü with their base letters; Ł as the locale has it.
    let continental = |l: [&'static str; 2]| -> Vec<&'static str> {
        let tail = [
            "Mann",
            "Müller",
            "Mzyk",
            "Ødegård",
            "Olsen",
            "Über",
            "Zander",
        ];
        ["Æbelø", "Ångström", "Lee"]
            .into_iter()
            .chain(l)
            .chain(tail)
            .collect()
    };
    for (locale, latin) in [
        // Å Ä Ö after Z (Æ as Ä, Ø as Ö).
        ("sv", nordic(["Ångström", "Æbelø", "Ødegård"])),
        // Æ Ø Å after Z.
        ("da", nordic(["Æbelø", "Ødegård", "Ångström"])),
        // Ł after L.
        ("pl", continental(["Lund", "Łukasz"])),
        // Ł with L.
        ("de", continental(["Łukasz", "Lund"])),
    ] {
        let run = sheet(&path, &["--locale", locale]);
        assert_eq!(run.code, 0, "{locale}: {}", run.stderr);
        let expected: Vec<&str> = latin.iter().chain(&latin_then_others).copied().collect();
        assert_eq!(
            printed_order(&run.pdf.unwrap(), &SURNAMES),
            expected,
            "{locale}"
        );
    }
}

#[test]
fn dividers_open_each_letter_on_a_page_of_its_own() {
    let path = list("hostile.csv", HOSTILE.as_bytes());
    let run = sheet(&path, &["--locale", "de", "--dividers"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let text = poppler("pdftotext", &["-raw"], &run.pdf.unwrap());
    let pages: Vec<&str> = text.split('\u{c}').map(str::trim).collect();
    // A divider page holds its letter alone (pdftotext wraps the Arabic one in bidi marks);
    // the page after it starts with the group's first badge.
    let dividers: Vec<(&str, &str)> = pages
        .windows(2)
        .filter(|w| w[0].chars().filter(|c| c.is_alphabetic()).count() == 1)
        .map(|w| {
            let letter = w[0].trim_matches(|c: char| !c.is_alphabetic());
            let first_name = w[1].lines().nth(2).unwrap_or("");
            (letter, first_name)
        })
        .collect();
    assert_eq!(
        dividers,
        [
            ("Æ", "Ærø Æbelø"),
            ("A", "Anders Ångström"),
            ("L", "Ana 🎉 Lee"),
            ("M", "Paul Mann"),
            ("O", "Søren Ødegård"),
            ("U", "Ulf Über"),
            ("Z", "Zoë Zander"),
            ("ع", "\u{202b}علي\u{202c} \u{202b}محمد\u{202c}"),
            ("山", "山田太郎"),
        ]
    );
    // Nine dividers and nine groups, each group's badges on pages of their own: three
    // groups (L, M, O) fill a page each with three badges of 6-up Letter.
    assert_eq!(pages.iter().filter(|p| !p.is_empty()).count(), 18);
}

/// The project's example layout at `name` under templates/layouts/.
fn example_layout(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../templates/layouts")
        .join(name)
        .display()
        .to_string()
}

/// The first `n` rows of the hostile list.
fn attendees(n: usize) -> PathBuf {
    let rows: Vec<&str> = HOSTILE.lines().take(n + 1).collect();
    list("attendees.csv", (rows.join("\n") + "\n").as_bytes())
}

/// `Page N <name>: llx lly urx ury` of every page, as pdfinfo prints the boxes.
fn page_boxes(pdf: &[u8], name: &str) -> Vec<[f32; 4]> {
    let info = String::from_utf8(crate::render::run(
        "pdfinfo",
        &["-box", "-f", "1", "-l", "999"],
        pdf,
        false,
    ))
    .unwrap();
    info.lines()
        .filter(|l| l.starts_with("Page ") && l.contains(&format!(" {name}:")))
        .map(|l| {
            let v: Vec<f32> = l
                .rsplit(':')
                .next()
                .unwrap()
                .split_whitespace()
                .map(|n| n.parse().unwrap())
                .collect();
            [v[0], v[1], v[2], v[3]]
        })
        .collect()
}

/// The paths MuPDF draws on page `page`: `(stroked, [x0, y0, x1, y1] of its points)`, in
/// PDF coordinates.
fn paths(pdf: &[u8], page: usize) -> Vec<(bool, [f32; 4])> {
    let trace = String::from_utf8(crate::render::run("mutool", &["trace"], pdf, false)).unwrap();
    let page = trace
        .split("<page ")
        .nth(page)
        .expect("mutool trace prints the page");
    let attribute = |line: &str, name: &str| number(line, name) as f32;
    let mut paths = Vec::new();
    for block in page.split("_path ").skip(1) {
        let stroked = page[..page.find(block).unwrap()].ends_with("<stroke_path ");
        let mut bounds = [f32::MAX, f32::MAX, f32::MIN, f32::MIN];
        for line in block
            .lines()
            .filter(|l| l.contains("<moveto") || l.contains("<lineto"))
        {
            let (x, y) = (attribute(line, "x"), attribute(line, "y"));
            bounds = [
                bounds[0].min(x),
                bounds[1].min(y),
                bounds[2].max(x),
                bounds[3].max(y),
            ];
        }
        paths.push((stroked, bounds));
    }
    paths
}

#[test]
fn stocks_set_each_pages_trim_and_bleed_boxes() {
    let a6 = example_layout("a6-portrait.toml");
    for (stock, layout, pages, trim, bleed) in [
        // 4x3 in, 6-up: the grid of labels, which touch, so nothing bleeds.
        ("avery-5392", None, 3, [18.0, 72.0, 594.0, 720.0], 0.0),
        // 90x55 mm cards: the default badge does not fit, so the A6 one cannot either; a
        // plain A4 takes two A6 badges with their 3 mm bleed, landscape.
        (
            "a4",
            Some(a6.as_str()),
            7,
            [114.8, 87.87, 727.09, 507.4],
            8.5,
        ),
        ("letter", None, 3, [18.0, 72.0, 594.0, 720.0], 0.0),
    ] {
        let mut args = vec!["--stock", stock];
        if let Some(layout) = layout {
            args.extend(["--layout", layout]);
        }
        let run = sheet(&attendees(14), &args);
        assert_eq!(run.code, 0, "{stock}: {}", run.stderr);
        let pdf = run.pdf.unwrap();
        let (trims, bleeds) = (page_boxes(&pdf, "TrimBox"), page_boxes(&pdf, "BleedBox"));
        assert_eq!(trims.len(), pages, "{stock}");
        for (t, b) in trims.iter().zip(&bleeds) {
            for i in 0..4 {
                assert!((t[i] - trim[i]).abs() < 0.02, "{stock}: TrimBox {t:?}");
                let grown = trim[i] + if i < 2 { -bleed } else { bleed };
                assert!((b[i] - grown).abs() < 0.02, "{stock}: BleedBox {b:?}");
            }
        }
    }
}

#[test]
fn crop_marks_lie_outside_the_bleed_on_the_trim_lines() {
    let a6 = example_layout("a6-portrait.toml");
    for (stock, layout, marks) in [("avery-5392", None, 14), ("a4", Some(a6.as_str()), 12)] {
        let mut args = vec!["--stock", stock];
        if let Some(layout) = layout {
            args.extend(["--layout", layout]);
        }
        let run = sheet(&attendees(3), &args);
        let pdf = run.pdf.expect(stock);
        let trim = page_boxes(&pdf, "TrimBox")[0];
        let bleed = page_boxes(&pdf, "BleedBox")[0];
        let strokes: Vec<[f32; 4]> = paths(&pdf, 1)
            .into_iter()
            .filter_map(|(stroked, b)| stroked.then_some(b))
            .collect();
        assert_eq!(strokes.len(), marks, "{stock}");
        for [x0, y0, x1, y1] in strokes {
            let outside = x1 <= bleed[0] || x0 >= bleed[2] || y1 <= bleed[1] || y0 >= bleed[3];
            assert!(
                outside,
                "{stock}: mark {x0},{y0}-{x1},{y1} inside {bleed:?}"
            );
            // Each mark extends a trim line: vertical ones stand on a cut between the trim's
            // left and right, horizontal ones likewise.
            let on_line = if x0 == x1 {
                (trim[0] - 0.02..=trim[2] + 0.02).contains(&x0)
            } else {
                (trim[1] - 0.02..=trim[3] + 0.02).contains(&y0)
            };
            assert!(
                on_line,
                "{stock}: mark {x0},{y0}-{x1},{y1} off the trim {trim:?}"
            );
        }
    }
}

#[test]
fn bleed_prints_past_the_trim_only_where_the_stock_has_room() {
    let a6 = example_layout("a6-portrait.toml");
    // Plain A4: the background runs the layout's 3 mm (8.5 pt) past each badge's trim.
    let pdf = sheet(&attendees(2), &["--stock", "a4", "--layout", &a6])
        .pdf
        .unwrap();
    let trim = page_boxes(&pdf, "TrimBox")[0];
    let widest = paths(&pdf, 1)
        .into_iter()
        .filter(|(stroked, _)| !stroked)
        .map(|(_, b)| b)
        .fold([f32::MAX, f32::MAX, f32::MIN, f32::MIN], |a, b| {
            [
                a[0].min(b[0]),
                a[1].min(b[1]),
                a[2].max(b[2]),
                a[3].max(b[3]),
            ]
        });
    for i in 0..4 {
        let expected = trim[i] + if i < 2 { -8.5 } else { 8.5 };
        assert!(
            (widest[i] - expected).abs() < 0.1,
            "fills reach {widest:?}, trim {trim:?}"
        );
    }
    // Four A6 on A4: the cards touch, so each background stops at its own card's edge.
    let pdf = sheet(&attendees(4), &["--stock", "a6-4up-a4", "--layout", &a6])
        .pdf
        .unwrap();
    let (half_width, half_height) = (595.276 / 2.0, 841.89 / 2.0);
    for (_, [x0, y0, x1, y1]) in paths(&pdf, 1).into_iter().filter(|(s, _)| !s) {
        let crosses = |a: f32, b: f32, line: f32| a < line - 0.05 && b > line + 0.05;
        assert!(
            !crosses(x0, x1, half_width) && !crosses(y0, y1, half_height),
            "a fill {x0},{y0}-{x1},{y1} runs onto the next card"
        );
    }
}

#[test]
fn a_badge_larger_than_the_stocks_labels_is_refused() {
    let a6 = example_layout("a6-portrait.toml");
    for (args, message) in [
        (
            vec!["--stock", "avery-5392", "--layout", &a6],
            "the layout's badge (297.64 x 419.53 pt) does not fit stock avery-5392: its labels are 288 x 216 pt",
        ),
        (
            vec!["--stock", "90x55-10up-a4"],
            "the layout's badge (288 x 216 pt) does not fit stock 90x55-10up-a4: its labels are 255.12 x 155.91 pt",
        ),
    ] {
        let run = sheet(&attendees(1), &args);
        assert_eq!(run.code, 1, "{args:?}");
        assert!(run.stderr.contains(message), "{}", run.stderr);
        assert!(run.pdf.is_none());
    }
}

#[test]
fn duplex_backs_lie_behind_their_fronts() {
    let layout = output_dir("sheets-back").join("back.toml");
    let default = std::fs::read_to_string(example_layout("default.toml")).unwrap();
    std::fs::write(
        &layout,
        format!(
            "{default}\n[back]\n[[back.element]]\nkind = \"text\"\ntext = \"Back of {{id}}\"\n\
             left = 18\nright = 18\ntop = 18\nheight = 20\nsize = 12\n"
        ),
    )
    .unwrap();
    let run = sheet(
        &attendees(7),
        &["--sort", "none", "--layout", layout.to_str().unwrap()],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let pdf = run.pdf.unwrap();
    // Seven badges, 6-up: two sheets, each a front and a back.
    assert_eq!(page_boxes(&pdf, "TrimBox").len(), 4);
    // Where pdftotext finds a word first on page `page`: its left edge and top.
    let word = |page: &str, text: &str| -> (f32, f32) {
        let bbox = poppler("pdftotext", &["-bbox", "-f", page, "-l", page], &pdf);
        let line = bbox
            .lines()
            .find(|l| l.ends_with(&format!(">{text}</word>")))
            .unwrap_or_else(|| panic!("no {text:?} on page {page}:\n{bbox}"));
        (number(line, "xMin") as f32, number(line, "yMin") as f32)
    };
    // h1 is in the top-left cell, h2 top-right: their backs swap columns, rows stay.
    let (front, back) = (word("1", "Zander"), word("2", "h1"));
    assert!(
        front.0 < 306.0 && back.0 > 306.0,
        "front {front:?}, back {back:?}"
    );
    assert!(
        (back.1 - front.1).abs() < 216.0,
        "same row: {front:?} {back:?}"
    );
    let back_h2 = word("2", "h2");
    assert!(
        (back.0 - back_h2.0 - 288.0).abs() < 0.5 && (back.1 - back_h2.1).abs() < 0.5,
        "h1's back one cell right of h2's: {back:?} {back_h2:?}"
    );
    assert!(
        poppler("pdftotext", &["-f", "3", "-l", "3"], &pdf).contains("Łukasz"),
        "the second sheet's front is page 3"
    );
}
