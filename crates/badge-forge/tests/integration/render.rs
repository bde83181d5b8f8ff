//! Badge rendering, checked by reading the PDFs back with independent tools (poppler's
//! `pdftotext`, `pdffonts`, `pdfinfo`) rather than with the library that wrote them.
//!
//! A missing tool fails the test with the package to install; nothing is skipped.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use badge_forge::render::{
    Badge, BadgeType, EventInfo, Field, MAX_MARKS, MAX_TEXT_CHARS, RenderError, Renderer, Stock,
};

use crate::pdf_readback::{number, unescape};

static RENDERER: LazyLock<Renderer> =
    LazyLock::new(|| Renderer::new(EventInfo::default()).expect("renderer builds"));

fn badge(name: &str, company: &str, badge_type: BadgeType) -> Badge {
    Badge {
        id: "4f0c2b1e-9d7a-4c55-8e21-0b6f3a9d2c10".to_string(),
        name: name.to_string(),
        company: company.to_string(),
        badge_type,
        fields: Default::default(),
    }
}

/// Runs a poppler tool on `pdf` (written to a temporary file) and returns its stdout.
/// `to_stdout` appends the "-" output argument that pdftotext takes.
pub(super) fn run(tool: &str, args: &[&str], pdf: &[u8], to_stdout: bool) -> Vec<u8> {
    static N: AtomicUsize = AtomicUsize::new(0);
    let path: PathBuf = std::env::temp_dir().join(format!(
        "badge-forge-render-{}-{}.pdf",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, pdf).expect("write temporary PDF");
    let mut command = Command::new(tool);
    command.args(args).arg(&path);
    if to_stdout {
        command.arg("-");
    }
    let output = command.output();
    let _ = std::fs::remove_file(&path);
    let output = match output {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "`{tool}` is not installed; these tests read PDFs back with poppler: \
             apt-get install poppler-utils"
        ),
        Err(e) => panic!("running {tool}: {e}"),
    };
    assert!(
        output.status.success(),
        "{tool} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

pub(super) fn poppler(tool: &str, args: &[&str], pdf: &[u8]) -> String {
    String::from_utf8(run(tool, args, pdf, true)).expect("poppler prints UTF-8")
}

/// `pdfinfo` and `pdffonts`, which print to stdout on their own.
pub(super) fn poppler_info(tool: &str, pdf: &[u8]) -> String {
    String::from_utf8(run(tool, &[], pdf, false)).expect("poppler prints UTF-8")
}

/// Text without whitespace and the bidi controls pdftotext adds around RTL lines, so a
/// name wrapped onto two lines still compares equal.
fn squash(text: &str) -> String {
    text.chars()
        .filter(|c| {
            !c.is_whitespace() && !matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}')
        })
        .collect()
}

/// Asserts pdftotext finds each of `expected` in `pdf`. Its default (layout) mode puts
/// right-to-left text in logical order, but joins a line ending in a hyphen with the
/// next one; `-raw` keeps such hyphens, so a string is also accepted from raw mode.
pub(super) fn assert_text_contains(pdf: &[u8], expected: &[&str]) {
    let layout = poppler("pdftotext", &[], pdf);
    let raw = poppler("pdftotext", &["-raw"], pdf);
    for e in expected {
        let e = squash(e);
        assert!(
            squash(&layout).contains(&e) || squash(&raw).contains(&e),
            "pdftotext output lacks {e:?}:\n{layout}\n-raw:\n{raw}"
        );
    }
}

/// Every word pdftotext finds with its box `[xMin, yMin, xMax, yMax]` (points, y down).
pub(super) fn words(pdf: &[u8]) -> Vec<(String, [f64; 4])> {
    // Lossy: poppler writes an emoji in the <title> as UTF-16 surrogates.
    let html = String::from_utf8_lossy(&run("pdftotext", &["-bbox"], pdf, true)).into_owned();
    html.lines()
        .filter_map(|line| {
            let line = line.trim();
            let rest = line.strip_prefix("<word ")?;
            let text = rest[rest.find('>')? + 1..].strip_suffix("</word>")?;
            Some((
                unescape(text),
                ["xMin", "yMin", "xMax", "yMax"].map(|name| number(line, name)),
            ))
        })
        .collect()
}

/// Names in every script the badge must print, with companies in the same script.
const SCRIPTS: &[(&str, &str, &str)] = &[
    ("Latin with diacritics", "José Núñez-García", "Telefónica"),
    (
        "more Latin",
        "Zoë Œrsted-Ångström Đặng",
        "Ørsted Æblegård ApS",
    ),
    ("Greek", "Δημήτρης Παπαδόπουλος", "Ελληνικά Πετρέλαια"),
    ("Cyrillic", "Ярослава Ковальчук", "ООО Ромашка"),
    ("Chinese", "王小明", "阿里巴巴集团"),
    ("Japanese", "山田 太郎", "株式会社サンプル"),
    ("Korean", "김민준", "삼성전자"),
    ("Arabic", "محمد بن سلمان العتيبي", "شركة أرامكو"),
    ("Persian", "پریسا چگینی", "گروه ژیان"),
    ("Hebrew", "שרה כהן", "אוניברסיטת תל אביב"),
    ("emoji", "Sam 🚀 Rivera", "Rocket Labs 🎉"),
];

#[test]
fn every_script_prints_its_name_and_company() {
    for (script, name, company) in SCRIPTS {
        let pdf = RENDERER
            .render(&badge(name, company, BadgeType::SPEAKER))
            .unwrap_or_else(|e| panic!("{script}: {e}"));
        assert_text_contains(
            &pdf,
            &[name, company, "Oban Conf 2026 · Edinburgh", "SPEAKER"],
        );
    }
}

#[test]
fn fonts_are_embedded_as_subsets() {
    for (script, name, company) in SCRIPTS {
        let pdf = RENDERER
            .render(&badge(name, company, BadgeType::ATTENDEE))
            .unwrap();
        let fonts = poppler_info("pdffonts", &pdf);
        let rows: Vec<&str> = fonts.lines().skip(2).collect();
        assert!(!rows.is_empty(), "{script}: no fonts\n{fonts}");
        for row in rows {
            let cols: Vec<&str> = row.split_whitespace().collect();
            // name, type (two words), encoding, emb, sub, uni, object id, generation
            let (font, flags) = (cols[0], &cols[cols.len() - 5..cols.len() - 2]);
            assert_eq!(
                flags,
                ["yes", "yes", "yes"],
                "{script}: emb/sub/uni\n{fonts}"
            );
            let (tag, _) = font.split_once('+').expect("subset tag");
            assert!(
                tag.len() == 6 && tag.chars().all(|c| c.is_ascii_uppercase()),
                "{script}: subset tag of {font}"
            );
        }
        // Only the glyphs used travel: the CJK face alone is 13 MB.
        assert!(pdf.len() < 24 * 1024, "{script}: {} bytes", pdf.len());
    }
}

#[test]
fn page_is_four_by_three_inches() {
    let pdf = RENDERER
        .render(&badge(
            "Ada Lovelace",
            "Analytical Engines",
            BadgeType::ORGANIZER,
        ))
        .unwrap();
    let info = poppler_info("pdfinfo", &pdf);
    assert!(info.contains("Page size:       288 x 216 pts"), "{info}");
    assert!(info.lines().any(|l| l == "Pages:           1"), "{info}");
    assert!(info.contains("Title:           Ada Lovelace"), "{info}");
}

#[test]
fn a_latin_badge_is_smaller_than_weasyprints() {
    let pdf = RENDERER
        .render(&badge(
            "Ada Lovelace",
            "Analytical Engines Ltd",
            BadgeType::SPEAKER,
        ))
        .unwrap();
    assert!(pdf.len() <= 6_800, "{} bytes", pdf.len());
}

#[test]
fn rendering_is_deterministic() {
    let b = badge("Ярослава Ковальчук", "山田 🎉", BadgeType::SPONSOR);
    assert_eq!(RENDERER.render(&b).unwrap(), RENDERER.render(&b).unwrap());
}

#[test]
fn tricky_names_render_verbatim() {
    let two_hundred: String = "Wolfeschlegelsteinhausenbergerdorff Ñandú "
        .chars()
        .cycle()
        .take(200)
        .collect();
    let no_spaces = "x".repeat(200);
    for name in [
        "../../etc/passwd",
        "AC/DC",
        "Robert'); DROP TABLE badges;--",
        "<script>alert(1)</script> & \"friends\"",
        "O'Brien-Smith (Jr.) [CEO] {x} \\ 100%",
        two_hundred.trim(),
        &no_spaces,
    ] {
        let pdf = RENDERER
            .render(&badge(name, "AC/DC", BadgeType::ATTENDEE))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_text_contains(&pdf, &[name, "AC/DC"]);
    }
}

/// Every word box pdftotext finds lies inside the page: long names are shrunk or wrapped,
/// never cut off.
#[test]
fn long_names_fit_on_the_badge() {
    let long_words = "Maximilian Alexander Friedrich Wilhelm von Hohenzollern-Sigmaringen";
    let many_words: String = "Ana María ".repeat(20);
    let cjk: String = "山田太郎".repeat(40);
    for name in [long_words, many_words.trim(), &cjk, &"W".repeat(200)] {
        let pdf = RENDERER
            .render(&badge(name, &"Company ".repeat(30), BadgeType::SPEAKER))
            .unwrap();
        let html = poppler("pdftotext", &["-bbox"], &pdf);
        let mut words = 0;
        for line in html.lines().filter(|l| l.contains("<word ")) {
            let [x0, y0, x1, y1] = ["xMin", "yMin", "xMax", "yMax"].map(|key| number(line, key));
            assert!(
                x0 >= 0.0 && y0 >= 0.0 && x1 <= 288.0 && y1 <= 216.0,
                "{name}: word outside the page: {line}"
            );
            words += 1;
        }
        assert!(words > 3, "{name}: {html}");
    }
}

/// Rasterises the PDF with pdftoppm and decodes the QR code from the pixels.
#[test]
fn qr_code_scans_back_to_the_id() {
    for id in [
        "b-1",
        "4f0c2b1e-9d7a-4c55-8e21-0b6f3a9d2c10",
        "https://oban.example/badges/000123?type=speaker",
    ] {
        let mut b = badge("Ada Lovelace", "Analytical Engines", BadgeType::SPEAKER);
        b.id = id.to_string();
        let pgm = run(
            "pdftoppm",
            &["-r", "150", "-gray", "-singlefile"],
            &RENDERER.render(&b).unwrap(),
            false,
        );
        // Binary PGM: "P5", width, height, maxval, then one byte per pixel.
        let mut fields = pgm
            .split(|b| b.is_ascii_whitespace())
            .filter(|f| !f.is_empty());
        assert_eq!(fields.next(), Some(&b"P5"[..]));
        let mut number = || -> usize {
            std::str::from_utf8(fields.next().unwrap())
                .unwrap()
                .parse()
                .unwrap()
        };
        let (w, h, _max) = (number(), number(), number());
        let pixels = &pgm[pgm.len() - w * h..];
        let mut image = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| pixels[y * w + x]);
        let grids = image.detect_grids();
        assert_eq!(grids.len(), 1, "{id}: one QR code");
        let (_, content) = grids[0].decode().expect("decodes");
        assert_eq!(content, id);
    }
}

#[test]
fn the_event_line_is_configurable() {
    let renderer = Renderer::new(EventInfo {
        title: "RustConf 2027".into(),
        city: "Zürich".into(),
    })
    .unwrap();
    let pdf = renderer
        .render(&badge("Ada", "", BadgeType::ATTENDEE))
        .unwrap();
    assert_text_contains(&pdf, &["RustConf 2027 · Zürich", "Ada", "ATTENDEE"]);
    let no_city = Renderer::new(EventInfo {
        title: "RustConf".into(),
        city: " ".into(),
    })
    .unwrap();
    let text = poppler(
        "pdftotext",
        &[],
        &no_city
            .render(&badge("Ada", "", BadgeType::ATTENDEE))
            .unwrap(),
    );
    assert!(text.contains("RustConf") && !text.contains('·'), "{text}");
    assert_eq!(
        Renderer::new(EventInfo {
            title: "".into(),
            city: "Oban".into()
        })
        .err(),
        Some(RenderError::Empty {
            field: Field::EventTitle
        })
    );
}

#[test]
fn every_type_has_its_own_label_and_colour() {
    let mut colours = std::collections::BTreeSet::new();
    for t in BadgeType::ALL {
        let b = badge("Ada Lovelace", "", t.clone());
        assert_text_contains(
            &RENDERER.render(&b).unwrap(),
            &[&t.to_string().to_uppercase()],
        );
        let svg = RENDERER.render_svg(&b).unwrap();
        // The band is the only full-width rectangle after the white background.
        let band = svg
            .lines()
            .rfind(|l| l.starts_with("<rect x=\"0\""))
            .expect("band");
        colours.insert(band.to_string());
    }
    assert_eq!(colours.len(), 4, "{colours:?}");
}

fn permanent(badge: &Badge) -> RenderError {
    let err = RENDERER.render(badge).expect_err("must not render");
    assert!(err.is_permanent(), "{err} should be permanent");
    assert_eq!(
        RENDERER.render_svg(badge).expect_err("nor as SVG"),
        err,
        "the preview fails the same way"
    );
    err
}

#[test]
fn validation_errors_are_permanent_and_clear() {
    let t = BadgeType::ATTENDEE;
    assert_eq!(
        permanent(&badge("", "Acme", t.clone())),
        RenderError::Empty { field: Field::Name }
    );
    assert_eq!(
        permanent(&badge(" \t ", "Acme", t.clone())).to_string(),
        "name contains control character U+0009"
    );
    assert_eq!(
        permanent(&badge(" \u{3000} ", "Acme", t.clone())).to_string(),
        "name is empty"
    );
    assert_eq!(
        permanent(&badge("Ada\u{7}", "Acme", t.clone())).to_string(),
        "name contains control character U+0007"
    );
    assert_eq!(
        permanent(&badge("Ada\nLovelace", "Acme", t.clone())).to_string(),
        "name contains control character U+000A"
    );
    assert_eq!(
        permanent(&badge("Ada", "Acme\u{0}", t.clone())).to_string(),
        "company contains control character U+0000"
    );
    let too_long = "a".repeat(MAX_TEXT_CHARS + 1);
    assert_eq!(
        permanent(&badge(&too_long, "Acme", t.clone())).to_string(),
        format!(
            "name is {} characters long; at most {MAX_TEXT_CHARS} can be printed",
            MAX_TEXT_CHARS + 1
        )
    );
    // Tamil and a private-use character are in no bundled font: reported, never boxed.
    assert_eq!(
        permanent(&badge("தமிழ்", "Acme", t.clone())).to_string(),
        "no bundled font can draw 'த' (U+0BA4) in the name"
    );
    assert_eq!(
        permanent(&badge("Ada", "Acme \u{E000}", t.clone())),
        RenderError::MissingGlyph {
            field: Field::Company,
            ch: '\u{E000}'
        }
    );
    let mut no_id = badge("Ada", "Acme", t.clone());
    no_id.id = "  ".into();
    assert_eq!(permanent(&no_id).to_string(), "badge id is empty");
    let mut bad_id = badge("Ada", "Acme", t.clone());
    bad_id.id = "a\rb".into();
    assert_eq!(
        permanent(&bad_id).to_string(),
        "badge id contains control character U+000D"
    );
    assert_eq!(
        "v/ip".parse::<BadgeType>().unwrap_err().to_string(),
        "badge type \"v/ip\" must be 1 to 32 letters, digits, '-' or '_'"
    );
}

#[test]
fn text_is_nfc_normalised() {
    // "José" with a combining acute accent prints as the precomposed é.
    let pdf = RENDERER
        .render(&badge("Jose\u{301}", "", BadgeType::ATTENDEE))
        .unwrap();
    let text = poppler("pdftotext", &[], &pdf);
    assert!(text.contains("Jos\u{e9}"), "{text:?}");
    assert!(!text.contains('\u{301}'), "{text:?}");
}

#[test]
fn svg_preview_escapes_markup() {
    let svg = RENDERER
        .render_svg(&badge(
            "<script>alert('x')</script>",
            "Tom & \"Jerry\"",
            BadgeType::SPEAKER,
        ))
        .unwrap();
    // Escaped, however askama spells the entities; the title reads back verbatim below.
    assert!(!svg.contains("<script"), "{svg}");
    assert!(!svg.contains("Tom & "), "{svg}");
    let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(root.attribute("viewBox"), Some("0 0 288 216"));
    let title = root
        .children()
        .find(|n| n.has_tag_name("title"))
        .and_then(|n| n.text())
        .unwrap();
    assert!(
        title.starts_with("<script>alert('x')</script>, Tom & \"Jerry\""),
        "{title}"
    );
    // Glyphs are outlines: one <use> per glyph of the name, label and event line.
    let uses = doc.descendants().filter(|n| n.has_tag_name("use")).count();
    assert!(uses > 40, "{uses}");
}

#[test]
fn svg_and_pdf_share_the_layout() {
    // The same shaped glyphs are drawn in both: the SVG's glyph count equals the number
    // of non-space characters pdftotext extracts for a Latin badge (one glyph each).
    let b = badge("Ada Lovelace", "Analytical Engines", BadgeType::SPONSOR);
    let svg = RENDERER.render_svg(&b).unwrap();
    let text = poppler("pdftotext", &[], &RENDERER.render(&b).unwrap());
    let lines = [
        "Oban Conf 2026 · Edinburgh",
        "Ada Lovelace",
        "Analytical Engines",
        "SPONSOR",
    ];
    let spaces_in_svg: usize = lines.iter().map(|l| l.matches(' ').count()).sum();
    let uses = svg.matches("<use ").count();
    assert_eq!(uses - spaces_in_svg, squash(&text).chars().count());
}

fn stock(name: &str) -> Stock {
    name.parse().unwrap()
}

#[test]
fn sheets_impose_six_up_on_letter_and_four_up_on_a4() {
    let badges: Vec<Badge> = (0..13)
        .map(|i| Badge {
            id: format!("badge-{i}"),
            name: SCRIPTS[i % SCRIPTS.len()].1.to_string(),
            company: SCRIPTS[i % SCRIPTS.len()].2.to_string(),
            badge_type: BadgeType::ALL[i % 4].clone(),
            fields: Default::default(),
        })
        .collect();

    let letter = RENDERER
        .render_sheet(&badges, &stock("avery-5392"))
        .unwrap();
    let info = poppler_info("pdfinfo", &letter);
    assert!(info.contains("Pages:           3"), "{info}");
    assert!(
        info.contains("Page size:       612 x 792 pts (letter)"),
        "{info}"
    );
    let names: Vec<&str> = badges.iter().map(|b| b.name.as_str()).collect();
    assert_text_contains(&letter, &names);
    for row in poppler_info("pdffonts", &letter).lines().skip(2) {
        assert!(row.contains(" yes yes yes "), "{row}");
    }

    let a4 = RENDERER
        .render_sheet(&badges[..5], &stock("a6-4up-a4"))
        .unwrap();
    let info = poppler_info("pdfinfo", &a4);
    assert!(info.contains("Pages:           2"), "{info}");
    assert!(
        info.contains("Page size:       841.89 x 595.276 pts (A4)"),
        "{info}"
    );
    assert_text_contains(&a4, &names[..5]);
}

#[test]
fn sheets_carry_cut_marks() {
    let badges = vec![badge("Ada", "", BadgeType::ATTENDEE)];
    for (paper, marks) in [("avery-5392", 14), ("a6-4up-a4", 4)] {
        let pdf = RENDERER.render_sheet(&badges, &stock(paper)).unwrap();
        let doc = lopdf::Document::load_mem(&pdf).unwrap();
        let page = *doc.get_pages().values().next().unwrap();
        let content = doc.get_and_decode_page_content(page).unwrap();
        let strokes = content
            .operations
            .iter()
            .filter(|op| op.operator == "S")
            .count();
        assert_eq!(strokes, marks, "{paper:?}");
    }
}

#[test]
fn sheet_errors_name_the_badge() {
    assert_eq!(
        RENDERER.render_sheet(&[], &stock("avery-5392")),
        Err(RenderError::NoBadges)
    );
    let mut badges = vec![badge("Ada", "", BadgeType::ATTENDEE); 3];
    badges[2].id = "third".into();
    badges[2].name = "\u{E000}".into();
    let err = RENDERER
        .render_sheet(&badges, &stock("a6-4up-a4"))
        .unwrap_err();
    assert!(err.is_permanent());
    assert_eq!(
        err.to_string(),
        "badge 2 (id \"third\"): no bundled font can draw '\\u{e000}' (U+E000) in the name"
    );
}

#[test]
fn one_renderer_serves_many_threads() {
    let renderer = Arc::new(Renderer::new(EventInfo::default()).unwrap());
    let handles: Vec<_> = SCRIPTS
        .iter()
        .map(|(_, name, company)| {
            let renderer = Arc::clone(&renderer);
            let b = badge(name, company, BadgeType::SPEAKER);
            std::thread::spawn(move || (renderer.render(&b).unwrap(), b))
        })
        .collect();
    for h in handles {
        let (pdf, b) = h.join().unwrap();
        assert_eq!(pdf, RENDERER.render(&b).unwrap());
    }
}

/// Text that tries to close the SVG's `<title>` (or any element) and open its own: it stays
/// text, the document has only the template's elements and attributes, and the title reads
/// back exactly as typed.
#[test]
fn svg_preview_cannot_be_broken_out_of() {
    const ELEMENTS: [&str; 7] = ["svg", "title", "defs", "path", "rect", "g", "use"];
    const ATTRIBUTES: [&str; 13] = [
        "xmlns",
        "width",
        "height",
        "viewBox",
        "role",
        "id",
        "d",
        "x",
        "y",
        "fill",
        "shape-rendering",
        "transform",
        "href",
    ];
    let cases = [
        (
            "</text><script>alert(1)</script>",
            "</title><svg onload=alert(2)>",
        ),
        (
            "]]><!-- <![CDATA[ x",
            "--><foreignObject><iframe src=javascript:alert(3)>",
        ),
        (
            "&lt;b&gt; &amp;amp; &#x3C;",
            "\"/><image href=x onerror=alert(4)>",
        ),
        (
            "<?xml version=\"1.0\"?>",
            "<!DOCTYPE x [<!ENTITY e \"boom\">]> &e;",
        ),
    ];
    for (name, company) in cases {
        let svg = RENDERER
            .render_svg(&badge(name, company, BadgeType::SPEAKER))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let doc = roxmltree::Document::parse(&svg)
            .unwrap_or_else(|e| panic!("{name}: not well-formed ({e}):\n{svg}"));
        for node in doc.descendants().filter(|node| node.is_element()) {
            let element = node.tag_name().name();
            assert!(ELEMENTS.contains(&element), "{name}: injected <{element}>");
            for attribute in node.attributes() {
                assert!(
                    ATTRIBUTES.contains(&attribute.name()),
                    "{name}: injected attribute {}",
                    attribute.name()
                );
            }
        }
        let title = doc
            .descendants()
            .find(|node| node.has_tag_name("title"))
            .and_then(|node| node.text())
            .unwrap();
        assert_eq!(
            title,
            format!("{name}, {company} \u{2014} speaker badge, Oban Conf 2026")
        );
    }
}

/// Every glyph of long, wrapped, stacked and mixed-direction names lies inside the badge,
/// from the layout itself (`Renderer::ink_boxes`, which the `badge_layout` fuzz target checks
/// for any text).
#[test]
fn every_glyph_is_drawn_inside_the_badge() {
    let stacked = format!("Z{} Zalgo", "\u{0301}\u{0316}".repeat(MAX_MARKS / 2));
    // The most marks allowed, all below the line, on a name long enough to wrap.
    let marks: String = "\u{0316}\u{0317}\u{0318}\u{0319}\u{0323}\u{0324}\u{0325}\u{0326}"
        .chars()
        .take(MAX_MARKS)
        .collect();
    let below = format!("Zalgo{marks} ").repeat(6);
    let names = [
        "Maximilian Alexander Friedrich Wilhelm von Hohenzollern-Sigmaringen".to_owned(),
        "W".repeat(200),
        "山田太郎".repeat(40),
        "ليلى عبد الله بن محمد".repeat(6),
        stacked,
        below.trim().to_owned(),
        "Ｗ".repeat(3),
    ];
    for name in &names {
        let badge = badge(name, &"Company ".repeat(30), BadgeType::ORGANIZER);
        let boxes = RENDERER
            .ink_boxes(&badge)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(boxes.len() > name.split_whitespace().count(), "{name}");
        for [x0, y0, x1, y1] in boxes {
            assert!(
                x0 >= 0.0 && y0 >= 0.0 && x1 <= 288.0 && y1 <= 216.0,
                "{name}: glyph at [{x0}, {y0}, {x1}, {y1}]"
            );
        }
    }
}

#[test]
fn a_space_after_an_emoji_is_as_wide_as_a_space() {
    for (name, emoji, next) in [
        ("Ana 🎉 Lee", "🎉", "Lee"),
        ("Zoë 🚀 Ångström", "🚀", "Ångström"),
    ] {
        let pdf = RENDERER
            .render(&badge(name, "", BadgeType::ATTENDEE))
            .unwrap();
        let found = words(&pdf);
        let find = |w: &str| found.iter().find(|(t, _)| t == w).expect(w).1;
        let (before, after) = (find(emoji), find(next));
        let gap = after[0] - before[2];
        let line = after[3] - after[1];
        // A space is about a quarter of the line; the bug made it twice the line.
        assert!(
            gap > 0.0 && gap < 0.5 * line,
            "{name}: gap {gap} on a {line} pt line"
        );
    }
}
