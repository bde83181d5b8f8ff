//! Layout files: the default one draws today's badge where today's code drew it, the example
//! layouts draw what they say (read back with poppler: word boxes, pixels, page boxes), and
//! every kind of bad layout is one error naming the file, the line and the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use badge_forge::render::{Badge, Design, EventInfo, RenderError, Renderer};

use super::render::{assert_text_contains, poppler, poppler_info, run, words};
use crate::support::{BADGE_FORGE, output_dir};

/// The repository's `templates/layouts/NAME`.
fn layout_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../templates/layouts")
        .join(name)
}

fn renderer(name: &str) -> Renderer {
    let design = Design::load(&layout_path(name)).expect("the example layout is valid");
    Renderer::with_layout(EventInfo::default(), design).expect("renderer builds")
}

fn badge(name: &str, kind: &str, fields: &[(&str, &str)]) -> Badge {
    Badge {
        id: "layout-1".into(),
        name: name.into(),
        company: "Acme".into(),
        badge_type: kind.parse().unwrap(),
        fields: fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

/// The colour of the pixel at (`x`, `y`) points, rasterised by poppler at 72 dpi.
fn pixel(pdf: &[u8], x: u32, y: u32) -> [u8; 3] {
    let (x, y) = (x.to_string(), y.to_string());
    let ppm = run(
        "pdftoppm",
        &[
            "-r",
            "72",
            "-singlefile",
            "-x",
            &x,
            "-y",
            &y,
            "-W",
            "1",
            "-H",
            "1",
        ],
        pdf,
        false,
    );
    // P6 header "P6\n1 1\n255\n", then one RGB sample.
    let rgb = &ppm[ppm.len() - 3..];
    [rgb[0], rgb[1], rgb[2]]
}

#[test]
fn the_default_layout_file_draws_todays_badge_word_for_word() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/integration/fixtures");
    let cases = std::fs::read_to_string(fixtures.join("default_layout_cases.psv")).unwrap();
    let golden = std::fs::read_to_string(fixtures.join("default_layout_golden.tsv")).unwrap();
    let mut expected: BTreeMap<usize, Vec<(String, [f64; 4])>> = BTreeMap::new();
    for line in golden.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split('\t').collect();
        let num = |i: usize| f[i].parse::<f64>().unwrap();
        expected
            .entry(f[0].parse().unwrap())
            .or_default()
            .push((f[1].to_string(), [num(2), num(3), num(4), num(5)]));
    }
    let design = Design::load(&layout_path("default.toml")).unwrap();
    for (case, line) in cases.lines().filter(|l| !l.starts_with('#')).enumerate() {
        let f: Vec<&str> = line.split('|').collect();
        let event = EventInfo {
            title: f[3].into(),
            city: f[4].into(),
        };
        let renderer = Renderer::with_layout(event, design.clone()).unwrap();
        let badge = Badge {
            id: format!("golden-{case}"),
            name: f[0].into(),
            company: f[1].into(),
            badge_type: f[2].parse().unwrap(),
            fields: BTreeMap::new(),
        };
        let got = words(&renderer.render(&badge).unwrap());
        let want = &expected[&case];
        assert_eq!(got.len(), want.len(), "case {case}: {got:?}");
        for ((text, bbox), (want_text, want_box)) in got.iter().zip(want) {
            assert_eq!(text, want_text, "case {case}");
            for (a, b) in bbox.iter().zip(want_box) {
                assert!(
                    (a - b).abs() < 0.01,
                    "case {case} {text}: {bbox:?} != {want_box:?}"
                );
            }
        }
    }
}

#[test]
fn the_pronouns_line_prints_when_given_and_is_absent_otherwise() {
    let renderer = renderer("pronouns.toml");
    assert_eq!(renderer.design().fields(), ["pronouns"]);
    let with = renderer
        .render(&badge(
            "Ada Lovelace",
            "attendee",
            &[("pronouns", "she/her")],
        ))
        .unwrap();
    let found = words(&with);
    let (_, bbox) = found
        .iter()
        .find(|(t, _)| t == "she/her")
        .expect("the pronouns line is printed");
    // Its baseline sits 52 pt above the bottom edge, left-aligned at the margin.
    assert!((bbox[0] - 18.0).abs() < 0.5, "{bbox:?}");
    assert!(bbox[3] > 150.0 && bbox[3] < 168.0, "{bbox:?}");
    let without = renderer
        .render(&badge("Ada Lovelace", "attendee", &[]))
        .unwrap();
    let found = words(&without);
    assert!(found.iter().any(|(t, _)| t == "Lovelace"));
    assert!(
        found.iter().all(|(_, b)| b[3] < 140.0 || b[1] > 170.0),
        "nothing between the company and the band without pronouns: {found:?}"
    );
}

#[test]
fn press_and_volunteer_bands_are_in_their_colours_and_unknown_types_use_the_default() {
    let renderer = renderer("pronouns.toml");
    for (kind, colour, label) in [
        ("press", [0xe0, 0x7a, 0x10], "PRESS"),
        ("volunteer", [0x2a, 0x9d, 0x8f], "VOLUNTEER"),
        ("speaker", [0xc4, 0x2b, 0x3f], "SPEAKER"),
        ("vip", [0x1d, 0x5f, 0xa8], "VIP"),
    ] {
        let pdf = renderer.render(&badge("Ada Lovelace", kind, &[])).unwrap();
        // Right of the label, inside the 46 pt band at the bottom.
        assert_eq!(pixel(&pdf, 270, 200), colour, "{kind}");
        assert_text_contains(&pdf, &[label]);
    }
    let press = renderer.render(&badge("Ada", "press", &[])).unwrap();
    assert_text_contains(&press, &["MEDIA"]);
    let volunteer = renderer.render(&badge("Ada", "volunteer", &[])).unwrap();
    assert!(!poppler("pdftotext", &[], &volunteer).contains("MEDIA"));
}

#[test]
fn a_required_field_and_a_closed_type_are_permanent_errors_per_badge() {
    let dir = output_dir("layout-required");
    let path = dir.join("required.toml");
    let source = std::fs::read_to_string(layout_path("pronouns.toml"))
        .unwrap()
        .replace(
            "text = \"{args.pronouns}\"",
            "text = \"{args.pronouns}\"\nrequired = true",
        );
    std::fs::write(&path, source).unwrap();
    let renderer =
        Renderer::with_layout(EventInfo::default(), Design::load(&path).unwrap()).unwrap();
    let err = renderer.render(&badge("Ada", "attendee", &[])).unwrap_err();
    assert_eq!(
        err,
        RenderError::MissingField {
            key: "pronouns".into()
        }
    );
    assert!(err.is_permanent());
    assert_eq!(
        err.to_string(),
        "args lack \"pronouns\", which the layout requires"
    );

    let closed = renderer_for_a6();
    let err = closed.render(&badge("Ada", "press", &[])).unwrap_err();
    assert!(err.is_permanent());
    assert_eq!(
        err.to_string(),
        "badge type \"press\" is not one of this layout's types \
         (attendee, speaker, sponsor, organizer)"
    );
    let bad = renderer
        .render(&badge("Ada", "attendee", &[("pronouns", "she\u{0}her")]))
        .unwrap_err();
    assert!(bad.is_permanent());
    assert_eq!(
        bad.to_string(),
        "args \"pronouns\": layout text contains control character U+0000"
    );
}

fn renderer_for_a6() -> Renderer {
    renderer("a6-portrait.toml")
}

#[test]
fn the_a6_layout_has_its_size_and_its_background_runs_into_the_bleed() {
    let pdf = renderer_for_a6()
        .render(&badge("Zoë Ångström", "speaker", &[]))
        .unwrap();
    let info = poppler_info("pdfinfo", &pdf);
    let boxes = String::from_utf8_lossy(&run("pdfinfo", &["-box"], &pdf, false)).into_owned();
    let mm = 72.0 / 25.4;
    let (w, h, b) = (105.0 * mm, 148.0 * mm, 3.0 * mm);
    let expect = |name: &str, x0: f64, y0: f64, x1: f64, y1: f64| {
        let line = boxes
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in {boxes}"));
        let v: Vec<f64> = line[name.len() + 1..]
            .split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect();
        for (got, want) in v.iter().zip([x0, y0, x1, y1]) {
            assert!((got - want).abs() < 0.02, "{line}: want {want}");
        }
    };
    expect("TrimBox:", b, b, b + w, b + h);
    expect("BleedBox:", 0.0, 0.0, w + 2.0 * b, h + 2.0 * b);
    expect("MediaBox:", 0.0, 0.0, w + 2.0 * b, h + 2.0 * b);
    assert!(info.contains("Pages:           1"), "{info}");
    // The background tint at the paper's very edge (in the bleed), the speaker's colour in
    // the header, and the title and name where the file puts them.
    assert_eq!(pixel(&pdf, 1, 300), [0xf4, 0xf1, 0xde]);
    assert_eq!(pixel(&pdf, 1, 1), [0x9b, 0x22, 0x26]);
    let found = words(&pdf);
    let title = &found.iter().find(|(t, _)| t == "Oban").unwrap().1;
    let centre = (found.iter().find(|(t, _)| t == "2026").unwrap().1[2] + title[0]) / 2.0;
    assert!(
        (centre - (b + w / 2.0)).abs() < 1.0,
        "title centred: {centre}"
    );
    let name = &found.iter().find(|(t, _)| t == "Zoë").unwrap().1;
    assert!((name[0] - (b + 8.0 * mm)).abs() < 1.0, "{name:?}");
    assert!(name[1] > b + 40.0 * mm, "{name:?}");
}

/// Writes `source` as `NAME.toml` and returns the error loading it gives.
fn load_error(name: &str, source: &str) -> (String, String) {
    let dir = output_dir("layout-errors");
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, source).unwrap();
    let err = Design::load(&path).expect_err(name);
    (path.display().to_string(), err.to_string())
}

#[test]
fn every_bad_layout_is_one_error_naming_file_line_and_key() {
    let base = std::fs::read_to_string(layout_path("default.toml")).unwrap();
    let line_of = |source: &str, needle: &str| {
        source[..source.find(needle).unwrap()].matches('\n').count() + 1
    };
    let cases = [
        (
            "unknown-key",
            base.replace("size = 56", "size = 56\nshape = \"round\""),
            "shape = ",
            "unknown field `shape`",
        ),
        (
            "off-page",
            base.replace("top = 86", "top = 200"),
            "top = 200",
            "element[4].top: the element runs from 200 to 156 pt",
        ),
        (
            "bad-colour",
            base.replace("colour = \"#c42b3f\"", "colour = \"crimson\""),
            "colour = \"crimson\"",
            "types[1].colour: \"crimson\" is not a colour (#rrggbb or #rgb)",
        ),
        (
            "unknown-font",
            base.replace("font = \"bold\"\nspans", "font = \"Brand Sans\"\nspans"),
            "font = \"Brand Sans\"",
            "element[0].font: unknown font \"Brand Sans\"",
        ),
        (
            "unknown-placeholder",
            base.replace("{type.label}", "{type.colour}"),
            "{type.colour}",
            "element[3].text: unknown placeholder {type.colour}",
        ),
        (
            "unknown-kind",
            base.replace("kind = \"qr\"", "kind = \"barcode\""),
            "kind = \"barcode\"",
            "element[1].kind: unknown element kind \"barcode\"",
        ),
        (
            "two-horizontal-edges-and-a-width",
            base.replace(
                "right = 18\ntop = 18\nsize = 56",
                "left = 7\nright = 18\ntop = 18\nsize = 56",
            ),
            "left = 7",
            "element[1]: give exactly two of left, right and width",
        ),
        (
            "bad-length",
            base.replace("width = \"4in\"", "width = \"4 inches\""),
            "width = \"4 inches\"",
            "is not a length",
        ),
    ];
    for (name, source, at, message) in cases {
        assert_ne!(source, base, "{name}: the case changes nothing");
        let (file, err) = load_error(name, &source);
        let prefix = format!("{file}:{}: ", line_of(&source, at));
        assert!(
            err.starts_with(&prefix),
            "{name}: {err}\nwanted prefix {prefix}"
        );
        assert!(err.contains(message), "{name}: {err}");
    }
    let missing = Design::load(Path::new("/nonexistent/layout.toml")).unwrap_err();
    assert!(
        missing
            .to_string()
            .starts_with("/nonexistent/layout.toml:0: layout: cannot read it")
    );
}

#[test]
fn the_cli_takes_a_layout_and_whole_args_and_refuses_a_bad_layout_at_start() {
    let dir = output_dir("layout-cli");
    let pdf = dir.join("press.pdf");
    let layout = layout_path("pronouns.toml");
    let output = Command::new(BADGE_FORGE)
        .args(["render", "--layout"])
        .arg(&layout)
        .args([
            "--args",
            r#"{"id":"p-1","name":"Ada Lovelace","company":"Acme","type":"press","pronouns":"she/her","extra":[1]}"#,
            "--output",
        ])
        .arg(&pdf)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let pdf = std::fs::read(&pdf).unwrap();
    assert_text_contains(&pdf, &["she/her", "PRESS", "Ada Lovelace"]);

    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[page]\nwidth = 288\nheight = 216\n\n[band]\ncolour = \"blue\"\n",
    )
    .unwrap();
    for command in [&["render", "--name", "Ada"][..], &["sheet", "-n", "2"]] {
        let output = Command::new(BADGE_FORGE)
            .args(command)
            .arg("--layout")
            .arg(&bad)
            .arg("--output")
            .arg(dir.join("never.pdf"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{command:?}");
        assert!(
            stderr.contains(&format!(
                "{}:6: band.colour: \"blue\" is not a colour",
                bad.display()
            )),
            "{command:?}: {stderr}"
        );
        assert!(!dir.join("never.pdf").exists());
    }
}
