//! The SVG preview: the same [`BadgeLayout`] as the PDF, written through the askama
//! template `templates/badge.svg`.
//!
//! Glyphs are drawn as outlines (`<path>` in `<defs>`, placed with `<use>`), so the preview
//! matches the PDF exactly and needs no web fonts; the text itself is in the `<title>`,
//! which askama escapes.

use std::collections::BTreeSet;
use std::fmt::Write;

use askama::Template;
use rustybuzz::ttf_parser::{GlyphId, OutlineBuilder};

use super::RenderError;
use super::fonts::{FaceId, FontSet};
use super::image::Fit;
use super::layout::{BadgeLayout, Fill};
use super::qr;

#[derive(Template)]
#[template(path = "badge.svg", config = "../../templates/askama.toml")]
struct BadgeSvg {
    width: String,
    height: String,
    width_in: String,
    height_in: String,
    title: String,
    glyphs: Vec<GlyphDef>,
    blocks: Vec<SvgRect>,
    qrs: Vec<SvgQr>,
    runs: Vec<SvgRun>,
}

struct GlyphDef {
    id: String,
    d: String,
}

/// A block: a filled rectangle, or an image.
struct SvgRect {
    x: String,
    y: String,
    w: String,
    h: String,
    fill: String,
    image: Option<SvgImage>,
}

/// An image's file as a `data:` URI (an SVG shown as an image runs no script and loads
/// nothing else), fitted to its box by `preserveAspectRatio`.
struct SvgImage {
    href: String,
    aspect: &'static str,
}

struct SvgQr {
    x: String,
    y: String,
    module: String,
    fill: String,
    d: String,
}

/// The glyphs of one face within one run, placed in font units.
struct SvgRun {
    fill: String,
    x: String,
    y: String,
    scale: String,
    uses: Vec<SvgUse>,
}

struct SvgUse {
    id: String,
    x: String,
    y: String,
}

/// A number with at most `decimals` decimals, without trailing zeros.
fn num(v: f32, decimals: usize) -> String {
    let mut s = format!("{v:.decimals$}");
    if s.contains('.') {
        while s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.pop();
        }
    }
    if s == "-0" { "0".to_string() } else { s }
}

fn glyph_id(face: FaceId, gid: u16) -> String {
    format!("g{face}-{gid}")
}

/// Collects an outline as SVG path data, in font units (y up, like the font).
struct PathData(String);

impl OutlineBuilder for PathData {
    fn move_to(&mut self, x: f32, y: f32) {
        let _ = write!(self.0, "M{} {}", num(x, 1), num(y, 1));
    }
    fn line_to(&mut self, x: f32, y: f32) {
        let _ = write!(self.0, "L{} {}", num(x, 1), num(y, 1));
    }
    fn quad_to(&mut self, x1: f32, y1: f32, x: f32, y: f32) {
        let _ = write!(
            self.0,
            "Q{} {} {} {}",
            num(x1, 1),
            num(y1, 1),
            num(x, 1),
            num(y, 1)
        );
    }
    fn curve_to(&mut self, x1: f32, y1: f32, x2: f32, y2: f32, x: f32, y: f32) {
        let _ = write!(
            self.0,
            "C{} {} {} {} {} {}",
            num(x1, 1),
            num(y1, 1),
            num(x2, 1),
            num(y2, 1),
            num(x, 1),
            num(y, 1)
        );
    }
    fn close(&mut self) {
        self.0.push('Z');
    }
}

/// Renders `layout` as a standalone SVG document titled `title`.
pub(crate) fn write(
    fonts: &FontSet,
    layout: &BadgeLayout<'_>,
    title: String,
) -> Result<String, RenderError> {
    let mut defined = BTreeSet::new();
    let mut glyphs = Vec::new();
    let mut runs = Vec::new();
    for run in &layout.runs {
        let faces: BTreeSet<FaceId> = run.line.glyphs.iter().map(|g| g.face).collect();
        for face_id in faces {
            let face = fonts.face(face_id);
            let upm = face.units_per_em;
            let mut uses = Vec::new();
            for g in run.line.glyphs.iter().filter(|g| g.face == face_id) {
                let id = glyph_id(face_id, g.gid);
                if defined.insert((face_id, g.gid)) {
                    let mut d = PathData(String::new());
                    // Glyphs without an outline (spaces) are simply empty paths.
                    let _ = face.face.outline_glyph(GlyphId(g.gid), &mut d);
                    glyphs.push(GlyphDef {
                        id: id.clone(),
                        d: d.0,
                    });
                }
                uses.push(SvgUse {
                    id,
                    x: num(g.x * upm, 1),
                    y: num(g.y * upm, 1),
                });
            }
            runs.push(SvgRun {
                fill: run.colour.hex(),
                x: num(run.x, 2),
                y: num(run.baseline, 2),
                scale: num(run.size / upm, 6),
                uses,
            });
        }
    }

    let qrs = layout
        .qrs
        .iter()
        .map(|qr| {
            let mut d = String::new();
            for [x, y, w, h] in qr::rects(&qr.rows) {
                let _ = write!(d, "M{x} {y}h{w}v{h}h-{w}z");
            }
            SvgQr {
                x: num(qr.x, 2),
                y: num(qr.y, 2),
                module: num(qr.size / qr.modules as f32, 4),
                fill: qr.colour.hex(),
                d,
            }
        })
        .collect();

    let svg = BadgeSvg {
        width: num(layout.width, 2),
        height: num(layout.height, 2),
        width_in: num(layout.width / 72.0, 3),
        height_in: num(layout.height / 72.0, 3),
        title,
        glyphs,
        blocks: layout
            .blocks
            .iter()
            .map(|b| {
                let (fill, image) = match &b.fill {
                    Fill::Colour(c) => (c.hex(), None),
                    Fill::Image { image, fit } => (
                        String::new(),
                        Some(SvgImage {
                            href: image.data_uri.clone(),
                            aspect: match fit {
                                Fit::Contain => "xMidYMid meet",
                                Fit::Cover => "xMidYMid slice",
                                Fit::Stretch => "none",
                            },
                        }),
                    ),
                };
                SvgRect {
                    x: num(b.x, 2),
                    y: num(b.y, 2),
                    w: num(b.w, 2),
                    h: num(b.h, 2),
                    fill,
                    image,
                }
            })
            .collect(),
        qrs,
        runs,
    };
    svg.render().map_err(|e| RenderError::Svg(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::num;

    #[test]
    fn numbers_are_short() {
        assert_eq!(num(12.0, 2), "12");
        assert_eq!(num(12.5, 2), "12.5");
        assert_eq!(num(0.123_456, 2), "0.12");
        assert_eq!(num(-0.001, 2), "0");
    }
}
