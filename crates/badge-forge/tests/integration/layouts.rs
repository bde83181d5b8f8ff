//! Layout files: the default one draws today's badge where today's code drew it, the example
//! layouts draw what they say (read back with poppler: word boxes, pixels, page boxes, images,
//! fonts; and with MuPDF, which reads the same words at the same places), and every kind of bad layout is one error naming the file, the line and the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use badge_forge::render::{Badge, Design, EventInfo, RenderError, Renderer, Stock};

use super::render::{assert_text_contains, poppler, poppler_info, run, words};
use crate::pdf_readback::attribute;
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
    let source = std::fs::read_to_string(layout_path("pronouns.toml"))
        .unwrap()
        .replace(
            "text = \"{args.pronouns}\"",
            "text = \"{args.pronouns}\"\nrequired = true",
        );
    // Beside the example, whose logo and font it uses.
    let design = Design::parse("required.toml", &source, &layout_path("")).unwrap();
    let renderer = Renderer::with_layout(EventInfo::default(), design).unwrap();
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
    // The background image at the paper's very edge (in the bleed: its light sand, not the
    // paper's white), the speaker's colour in the header, and the title and name where the
    // file puts them.
    let [r, g, b_] = pixel(&pdf, 1, 300);
    assert!(
        (215..=245).contains(&r) && (220..=245).contains(&g) && (220..=240).contains(&b_),
        "{:?}",
        [r, g, b_]
    );
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

/// `pdfimages -list`'s rows: (page, type, width, height, object id), type being `image`,
/// `smask` or `stencil` (the QR code's mask).
fn images(pdf: &[u8]) -> Vec<(u32, String, u32, u32, u32)> {
    let list = String::from_utf8(run("pdfimages", &["-list"], pdf, false)).unwrap();
    list.lines()
        .skip(2)
        .map(|row| {
            let c: Vec<&str> = row.split_whitespace().collect();
            let n = |i: usize| c[i].parse::<u32>().unwrap();
            (n(0), c[2].to_string(), n(3), n(4), n(10))
        })
        .collect()
}

/// Whether two colours are within `tolerance` per channel.
fn near(a: [u8; 3], b: [u8; 3], tolerance: u8) -> bool {
    a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= tolerance)
}

#[test]
fn the_logo_is_one_image_of_its_box_drawn_where_the_file_says() {
    let pdf = renderer("pronouns.toml")
        .render(&badge("Ada Lovelace", "attendee", &[]))
        .unwrap();
    let found = images(&pdf);
    // The SVG logo, rasterised at 300 dpi for its 60 × 20 pt box, with its transparency as a
    // soft mask; and the QR code's stencil.
    let image: Vec<_> = found.iter().filter(|i| i.1 == "image").collect();
    assert_eq!(image.len(), 1, "{found:?}");
    assert_eq!((image[0].2, image[0].3), (250, 84), "{found:?}");
    assert!(
        found
            .iter()
            .any(|i| i.1 == "smask" && (i.2, i.3) == (250, 84))
    );
    assert!(found.iter().any(|i| i.1 == "stencil"));
    // The logo's blue disc left of its lighthouse, at (18 + 3, 16 + 10) pt; white paper
    // left of the logo's box and between it and the event line.
    assert!(
        near(pixel(&pdf, 21, 26), [0x1d, 0x5f, 0xa8], 6),
        "{:?}",
        pixel(&pdf, 21, 26)
    );
    assert_eq!(pixel(&pdf, 12, 26), [255, 255, 255]);
    assert_eq!(pixel(&pdf, 81, 26), [255, 255, 255]);
    // The event line moved right of the logo.
    let words = words(&pdf);
    let oban = &words.iter().find(|(t, _)| t == "Oban").unwrap().1;
    assert!((oban[0] - 84.0).abs() < 1.0, "{oban:?}");
}

#[test]
fn a_sheet_of_many_badges_holds_the_image_once() {
    let renderer = renderer("pronouns.toml");
    let badges: Vec<Badge> = (0..13)
        .map(|i| Badge {
            id: format!("s-{i}"),
            ..badge("Ada Lovelace", "attendee", &[])
        })
        .collect();
    let sheet = renderer
        .render_sheet(&badges, &"avery-5392".parse::<Stock>().unwrap())
        .unwrap();
    let found = images(&sheet);
    let logos: Vec<_> = found.iter().filter(|i| i.1 == "image").collect();
    // Drawn on every badge of the three pages, from one object.
    assert_eq!(logos.len(), 13, "{found:?}");
    assert_eq!(logos.iter().map(|i| i.0).max(), Some(3));
    let objects: std::collections::BTreeSet<u32> = logos.iter().map(|i| i.4).collect();
    assert_eq!(objects.len(), 1, "{found:?}");
    // So the sheet is far smaller than thirteen badges' PDFs, each with its copy.
    let one = renderer
        .render(&badge("Ada Lovelace", "attendee", &[]))
        .unwrap();
    assert!(
        sheet.len() < 4 * one.len(),
        "{} vs {}",
        sheet.len(),
        one.len()
    );
}

#[test]
fn the_brand_font_is_embedded_and_noto_prints_what_it_lacks() {
    let event = EventInfo {
        title: "Oban Conf 東京".into(),
        city: "Łódź".into(),
    };
    let design = Design::load(&layout_path("pronouns.toml")).unwrap();
    let renderer = Renderer::with_layout(event, design).unwrap();
    let pdf = renderer
        .render(&badge("محمد Lee", "volunteer", &[]))
        .unwrap();
    let fonts = poppler_info("pdffonts", &pdf);
    // The title and the type label in League Spartan (a subset); the CJK of the title, which
    // it lacks, in Noto's CJK face, and the name in Noto as before.
    for face in [
        "+LeagueSpartan-Bold",
        "+NotoSansCJKsc-Bold",
        "+NotoSansArabic-Bold",
    ] {
        assert!(fonts.contains(face), "no {face}:\n{fonts}");
    }
    assert_text_contains(&pdf, &["Oban Conf 東京", "Łódź", "VOLUNTEER", "محمد"]);
    // The label is in the brand font: its word is set in League Spartan's own widths,
    // which differ from Noto Sans Bold's.
    let noto = Renderer::with_layout(
        EventInfo::default(),
        Design::parse(
            "noto.toml",
            &std::fs::read_to_string(layout_path("pronouns.toml"))
                .unwrap()
                .replace("font = \"brand\"", "font = \"bold\""),
            &layout_path(""),
        )
        .unwrap(),
    )
    .unwrap()
    .render(&badge("Ada", "press", &[]))
    .unwrap();
    let brand = renderer.render(&badge("Ada", "press", &[])).unwrap();
    let width = |pdf: &[u8]| {
        let w = &words(pdf)
            .into_iter()
            .find(|(t, _)| t == "PRESS")
            .unwrap()
            .1;
        w[2] - w[0]
    };
    assert!(
        (width(&brand) - width(&noto)).abs() > 1.0,
        "{} vs {}",
        width(&brand),
        width(&noto)
    );
    assert!(!poppler_info("pdffonts", &noto).contains("LeagueSpartan"));
}

#[test]
fn the_a6_background_is_one_image_covering_the_paper() {
    let pdf = renderer_for_a6()
        .render(&badge("Zoë Ångström", "attendee", &[]))
        .unwrap();
    let found = images(&pdf);
    let image: Vec<_> = found.iter().filter(|i| i.1 == "image").collect();
    // The PNG as it is: 210 × 294 pixels, opaque (no soft mask).
    assert_eq!(image.len(), 1, "{found:?}");
    assert_eq!((image[0].2, image[0].3), (210, 294));
    assert!(!found.iter().any(|i| i.1 == "smask"), "{found:?}");
    // It reaches every corner of the paper below the header band.
    let mm = 72.0 / 25.4;
    let (w, h) = ((111.0 * mm) as u32, (154.0 * mm) as u32);
    for (x, y) in [(0, h - 1), (w - 1, h - 1), (0, 120), (w - 1, 120)] {
        assert_ne!(pixel(&pdf, x, y), [255, 255, 255], "({x}, {y})");
    }
}

#[test]
fn the_preview_draws_the_images_too() {
    for (name, mime, aspect) in [
        ("pronouns.toml", "image/svg+xml", "xMidYMid meet"),
        ("a6-portrait.toml", "image/png", "xMidYMid slice"),
    ] {
        let svg = renderer(name)
            .render_svg(&badge("Ada", "attendee", &[]))
            .unwrap();
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let image = doc
            .descendants()
            .find(|n| n.has_tag_name("image"))
            .unwrap_or_else(|| panic!("{name}: no <image>"));
        assert!(
            image
                .attribute("href")
                .unwrap()
                .starts_with(&format!("data:{mime};base64,")),
            "{name}"
        );
        assert_eq!(image.attribute("preserveAspectRatio"), Some(aspect));
    }
}

#[test]
fn every_bad_image_or_font_is_one_error_naming_file_line_and_key() {
    // Files beside no layout: each case names them by their full path.
    let dir = output_dir("layout-bad-files");
    std::fs::write(dir.join("notes.txt"), "not an image, nor a font\n").unwrap();
    std::fs::write(
        dir.join("broken.png"),
        b"\x89PNG\r\n\x1a\nthen nothing that decodes",
    )
    .unwrap();
    std::fs::write(dir.join("broken.otf"), b"OTTO and nothing more").unwrap();
    let base = std::fs::read_to_string(layout_path("default.toml")).unwrap();
    let image = |extra: &str| {
        format!(
            "{base}\n[[element]]\nkind = \"image\"\nleft = 0\ntop = 0\nwidth = 50\nheight = 20\n{extra}\n"
        )
    };
    let font = |file: &str| {
        base.replacen(
            "[band]",
            &format!("[fonts]\nbrand = \"{file}\"\n\n[band]"),
            1,
        )
    };
    let beside = |file: &str| dir.join(file).display().to_string();
    let last = base.matches("[[element]]").count();
    let cases = [
        (
            "image-missing",
            image("file = \"logo.svg\""),
            "file = ",
            format!("element[{last}].file: cannot read "),
        ),
        (
            "image-not-an-image",
            image(&format!("file = \"{}\"", beside("notes.txt"))),
            "file = ",
            format!("element[{last}].file: {} is not a PNG, JPEG or SVG image", beside("notes.txt")),
        ),
        (
            "image-broken-png",
            image(&format!("file = \"{}\"", beside("broken.png"))),
            "file = ",
            format!("element[{last}].file: {}: not a readable PNG", beside("broken.png")),
        ),
        (
            "image-without-file",
            image("fit = \"cover\""),
            "[[element]]",
            format!("element[{last}].file: an image element needs a file"),
        ),
        (
            "image-with-colour",
            image(&format!("file = \"{}\"\ncolour = \"#ffffff\"", beside("notes.txt"))),
            "colour = \"#ffffff\"",
            format!("element[{last}].colour: an image element has no colour"),
        ),
        (
            "image-bad-fit",
            image(&format!("file = \"{}\"\nfit = \"fill\"", beside("notes.txt"))),
            "fit = ",
            "unknown variant `fill`".to_string(),
        ),
        (
            "font-missing",
            font("Brand.otf"),
            "brand = ",
            "fonts.brand: cannot read ".to_string(),
        ),
        (
            "font-not-a-font",
            font(&beside("notes.txt")),
            "brand = ",
            format!("fonts.brand: {}: not a TrueType or OpenType font", beside("notes.txt")),
        ),
        (
            "font-broken",
            font(&beside("broken.otf")),
            "brand = ",
            format!("fonts.brand: {}: not a TrueType or OpenType font", beside("broken.otf")),
        ),
        (
            "font-unknown-name",
            font(&layout_path("assets/LeagueSpartan-Bold.otf").display().to_string())
                .replace("font = \"bold\"\nspans", "font = \"brnad\"\nspans"),
            "font = \"brnad\"",
            "element[0].font: unknown font \"brnad\": expected \"regular\", \"bold\" or \"brand\" (from [fonts])".to_string(),
        ),
    ];
    for (name, source, at, message) in cases {
        let line = source[..source.rfind(at).unwrap()].matches('\n').count() + 1;
        let (file, err) = load_error(name, &source);
        let prefix = format!("{file}:{line}: ");
        assert!(
            err.starts_with(&prefix),
            "{name}: {err}\nwanted prefix {prefix}"
        );
        assert!(err.contains(&message), "{name}: {err}\nwanted {message}");
    }
}

#[test]
fn a_jpeg_is_embedded_as_it_is() {
    // A 40 × 30 px JPEG of one orange, beside a layout that stretches it over the badge's top
    // half.
    let dir = output_dir("layout-jpeg");
    let photo = dir.join("photo.jpg");
    let orange = [0xe0u8, 0x7a, 0x10];
    let pixels: Vec<u8> = orange.iter().copied().cycle().take(40 * 30 * 3).collect();
    jpeg_encoder::Encoder::new_file(&photo, 90)
        .unwrap()
        .encode(&pixels, 40, 30, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    let source = std::fs::read_to_string(layout_path("default.toml")).unwrap()
        + "\n[[element]]\nkind = \"image\"\nfile = \"photo.jpg\"\nfit = \"stretch\"\n\
           left = 0\nright = 0\ntop = 0\nheight = 108\n";
    let design = Design::parse("photo.toml", &source, &dir).unwrap();
    let pdf = Renderer::with_layout(EventInfo::default(), design)
        .unwrap()
        .render(&badge("Ada Lovelace", "attendee", &[]))
        .unwrap();
    let list = String::from_utf8(run("pdfimages", &["-list"], &pdf, false)).unwrap();
    let row = list
        .lines()
        .find(|l| l.contains(" image "))
        .unwrap_or_else(|| panic!("no image:\n{list}"));
    // The file's own DCT data (`enc` jpeg), not samples decoded and compressed again.
    let c: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        (c[3], c[4], c[5], c[8]),
        ("40", "30", "rgb", "jpeg"),
        "{row}"
    );
    assert!(pdf.windows(9).any(|w| w == b"DCTDecode"));
    assert!(
        near(pixel(&pdf, 144, 54), orange, 6),
        "{:?}",
        pixel(&pdf, 144, 54)
    );
    assert_eq!(pixel(&pdf, 284, 112), [255, 255, 255]);
}

/// MuPDF's characters of `pdf`: each one's text and box `[x0, y0, x1, y1]`, in reading order.
fn mupdf_chars(pdf: &[u8]) -> Vec<(String, [f64; 4])> {
    let stext = run(
        "mutool",
        &["draw", "-q", "-F", "stext", "-o", "-"],
        pdf,
        false,
    );
    let stext = String::from_utf8(stext).expect("MuPDF's stext is UTF-8");
    stext
        .lines()
        .filter(|line| line.trim_start().starts_with("<char "))
        .map(|line| {
            let quad: Vec<f64> = attribute(line, "quad")
                .expect("a char has its quad")
                .split(' ')
                .map(|n| n.parse().unwrap())
                .collect();
            let text = attribute(line, "c").expect("a char has its text");
            (text, [quad[0], quad[1], quad[6], quad[7]])
        })
        .collect()
}

/// The two readers agree: every word poppler finds on the example layouts' badges is, in
/// MuPDF, the same characters in a row across the same width on the same line; and MuPDF
/// sees the logo image.
#[test]
fn mupdf_reads_the_example_layouts_as_poppler_does() {
    let pronouns = renderer("pronouns.toml")
        .render(&badge("Ada Lovelace", "press", &[("pronouns", "she/her")]))
        .unwrap();
    let a6 = renderer_for_a6()
        .render(&badge("Grace Hopper", "speaker", &[]))
        .unwrap();
    for pdf in [&pronouns, &a6] {
        let chars = mupdf_chars(pdf);
        let found = words(pdf);
        assert!(found.len() >= 5, "{found:?}");
        for (word, bbox) in &found {
            let n = word.chars().count();
            let matched = chars.windows(n).any(|run| {
                let text: String = run.iter().map(|(c, _)| c.as_str()).collect();
                let (first, last) = (run[0].1, run[n - 1].1);
                // The readers take a glyph's height from different font metrics, so the
                // vertical check is that poppler's box centre lies in MuPDF's line.
                let centre = (bbox[1] + bbox[3]) / 2.0;
                text == *word
                    && (first[0] - bbox[0]).abs() < 0.5
                    && (last[2] - bbox[2]).abs() < 0.5
                    && (first[1]..first[3]).contains(&centre)
            });
            assert!(
                matched,
                "MuPDF does not read {word:?} at {bbox:?}: {chars:?}"
            );
        }
    }
    let info = String::from_utf8(run("mutool", &["info", "-I"], &pronouns, false)).unwrap();
    assert!(info.contains("[ Flate ] 250x84 8bpc DevRGB"), "{info}");
}
