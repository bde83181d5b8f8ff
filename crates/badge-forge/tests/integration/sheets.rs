//! Print runs: `badge-forge sheet --input` on attendee lists, read back from the PDF with
//! poppler. Bad rows are reported by line and left out; the good ones print.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::render::poppler;
use crate::support::{BADGE_FORGE, output_dir};

/// What one `badge-forge sheet` run left: its exit code, stderr, and the PDF if it wrote one.
struct Run {
    code: i32,
    stderr: String,
    pdf: Option<Vec<u8>>,
    /// The process's peak resident memory, in KiB.
    max_rss_kib: i64,
}

/// Runs `badge-forge sheet --input <list> -o <dir>/sheet.pdf <args>`, waiting with `wait4`
/// for the child's own peak memory.
fn sheet(list: &Path, args: &[&str]) -> Run {
    let pdf_path = list.with_extension("pdf");
    let mut child = Command::new(BADGE_FORGE)
        .arg("sheet")
        .arg("--input")
        .arg(list)
        .arg("-o")
        .arg(&pdf_path)
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
        pdf: std::fs::read(&pdf_path).ok(),
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
fn printed_order<'a>(pdf: &[u8], names: &[&'a str]) -> Vec<&'a str> {
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
            "{file}:2: invalid badge args: missing key \"name\""
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
    for (locale, latin) in [
        // Å Ä Ö after Z (Æ as Ä, Ø as Ö); Ü as Y; Ł as L.
        (
            "sv",
            &[
                "Lee",
                "Łukasz",
                "Lund",
                "Mann",
                "Müller",
                "Mzyk",
                "Olsen",
                "Über",
                "Zander",
                "Ångström",
                "Æbelø",
                "Ødegård",
            ],
        ),
        // Æ Ø Å after Z.
        (
            "da",
            &[
                "Lee",
                "Łukasz",
                "Lund",
                "Mann",
                "Müller",
                "Mzyk",
                "Olsen",
                "Über",
                "Zander",
                "Æbelø",
                "Ødegård",
                "Ångström",
            ],
        ),
        // Ł after L.
        (
            "pl",
            &[
                "Æbelø",
                "Ångström",
                "Lee",
                "Lund",
                "Łukasz",
                "Mann",
                "Müller",
                "Mzyk",
                "Ødegård",
                "Olsen",
                "Über",
                "Zander",
            ],
        ),
        // Ü with U, Å with A, Ø with O.
        (
            "de",
            &[
                "Æbelø",
                "Ångström",
                "Lee",
                "Łukasz",
                "Lund",
                "Mann",
                "Müller",
                "Mzyk",
                "Ødegård",
                "Olsen",
                "Über",
                "Zander",
            ],
        ),
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
