//! Arbitrary UTF-8 as a badge's name and company (split at the first newline), through
//! validation, shaping, layout, the SVG preview and the PDF.
//!
//! Input the renderer rejects must be rejected with an error, never a panic. Input it accepts
//! must draw every glyph inside the 288 × 216 pt badge, give an SVG that is well-formed XML
//! with no element the template does not write (the text may not inject markup), and a PDF.
#![no_main]

use std::sync::LazyLock;

use badge_forge::render::{Badge, BadgeType, EventInfo, Renderer};
use libfuzzer_sys::fuzz_target;

static RENDERER: LazyLock<Renderer> =
    LazyLock::new(|| Renderer::new(EventInfo::default()).expect("the default event renders"));

/// The badge, in points.
const WIDTH: f32 = 288.0;
const HEIGHT: f32 = 216.0;

/// Every element and attribute `templates/badge.svg` writes.
const SVG_ELEMENTS: [&str; 7] = ["svg", "title", "defs", "path", "rect", "g", "use"];
const SVG_ATTRIBUTES: [&str; 13] = [
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

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (name, company) = text.split_once('\n').unwrap_or((text, ""));
    let badge = Badge {
        id: "fuzz-1".into(),
        name: name.into(),
        company: company.into(),
        badge_type: BadgeType::ALL[data.len() % BadgeType::ALL.len()].clone(),
        fields: Default::default(),
    };

    let boxes = match RENDERER.ink_boxes(&badge) {
        Ok(boxes) => boxes,
        Err(error) => {
            assert!(error.is_permanent(), "{name:?} / {company:?}: {error}");
            return;
        }
    };
    for [x0, y0, x1, y1] in boxes {
        assert!(
            x0 >= 0.0 && y0 >= 0.0 && x1 <= WIDTH && y1 <= HEIGHT,
            "{name:?} / {company:?}: glyph drawn at [{x0}, {y0}, {x1}, {y1}], outside the badge"
        );
    }

    let svg = RENDERER
        .render_svg(&badge)
        .expect("what lays out draws as SVG");
    let doc = roxmltree::Document::parse(&svg).expect("the preview is well-formed XML");
    for node in doc.descendants().filter(|node| node.is_element()) {
        let element = node.tag_name().name();
        assert!(
            SVG_ELEMENTS.contains(&element),
            "{name:?}: injected <{element}>"
        );
        for attribute in node.attributes() {
            assert!(
                SVG_ATTRIBUTES.contains(&attribute.name()),
                "{name:?}: injected attribute {}",
                attribute.name()
            );
        }
    }
    let titles = doc.descendants().filter(|node| node.has_tag_name("title"));
    assert_eq!(titles.count(), 1, "{name:?}");

    let pdf = RENDERER.render(&badge).expect("what lays out draws as PDF");
    assert!(pdf.starts_with(b"%PDF-"));
});
