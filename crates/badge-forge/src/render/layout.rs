//! The badge design, computed once per badge and drawn by both the PDF and the SVG writer.
//!
//! Coordinates are points with the origin at the top-left corner of the badge, y down.
//! The design is specified for a 4 in × 3 in badge (288 × 216 pt) and scales with the
//! badge height, so the same layout fills an A6 card on A4 sheets.

use std::borrow::Cow;

use rustybuzz::ttf_parser::GlyphId;

use super::fonts::{FontSet, PRIMARY_BOLD, Style};
use super::qr;
use super::text::{Line, Lines, shape_line, split_two};
use super::{BadgeType, Field, RenderError};

/// An sRGB colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rgb(pub(crate) u8, pub(crate) u8, pub(crate) u8);

impl Rgb {
    /// `#rrggbb`, for SVG.
    pub(crate) fn hex(self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }
}

const INK: Rgb = Rgb(0x16, 0x18, 0x1d);
const MUTED: Rgb = Rgb(0x4f, 0x56, 0x63);
const WHITE: Rgb = Rgb(0xff, 0xff, 0xff);

/// The colour of each badge type's band.
pub(crate) fn type_colour(kind: BadgeType) -> Rgb {
    match kind {
        BadgeType::Attendee => Rgb(0x1d, 0x5f, 0xa8),
        BadgeType::Speaker => Rgb(0xc4, 0x2b, 0x3f),
        BadgeType::Sponsor => Rgb(0x1c, 0x7f, 0x56),
        BadgeType::Organizer => Rgb(0x4f, 0x2d, 0x7f),
    }
}

/// Letter spacing of the type label, in em.
pub(crate) const LABEL_TRACKING: f32 = 0.08;

/// The design grid for a 216 pt tall badge; everything scales with the height.
mod grid {
    pub(super) const DESIGN_HEIGHT: f32 = 216.0;
    pub(super) const MARGIN: f32 = 18.0;
    pub(super) const QR: f32 = 56.0;
    pub(super) const BAND: f32 = 46.0;
    pub(super) const EVENT_SIZE: f32 = 9.5;
    pub(super) const LABEL_SIZE: f32 = 13.0;
    pub(super) const NAME_MAX: f32 = 30.0;
    /// Below this a single-line name is wrapped onto two lines instead.
    pub(super) const NAME_MIN_SINGLE: f32 = 22.0;
    pub(super) const COMPANY_MAX: f32 = 12.5;
    pub(super) const COMPANY_MIN_SINGLE: f32 = 9.5;
    pub(super) const LINE_HEIGHT: f32 = 1.12;
    pub(super) const ACCENT_W: f32 = 26.0;
    pub(super) const ACCENT_H: f32 = 3.0;
}

/// A shaped line placed on the badge.
pub(crate) struct Run<'a> {
    pub(crate) line: Cow<'a, Line>,
    /// Left end of the line's baseline.
    pub(crate) x: f32,
    pub(crate) baseline: f32,
    pub(crate) size: f32,
    pub(crate) colour: Rgb,
}

/// A filled rectangle.
pub(crate) struct Block {
    pub(crate) x: f32,
    pub(crate) y: f32,
    pub(crate) w: f32,
    pub(crate) h: f32,
    pub(crate) colour: Rgb,
}

/// The QR code: its top-left corner and size in points, and its modules.
pub(crate) struct Qr {
    pub(crate) x: f32,
    pub(crate) y: f32,
    /// Width and height in points.
    pub(crate) size: f32,
    /// Modules per side.
    pub(crate) modules: usize,
    /// Rows top to bottom as bitsets: bit `x` of row `y` set = dark module.
    pub(crate) rows: Vec<u128>,
    pub(crate) colour: Rgb,
}

/// Everything drawn on one badge.
pub(crate) struct BadgeLayout<'a> {
    pub(crate) width: f32,
    pub(crate) height: f32,
    pub(crate) blocks: Vec<Block>,
    pub(crate) runs: Vec<Run<'a>>,
    pub(crate) qr: Qr,
}

/// What stays the same on every badge: the event line and the four type labels, shaped
/// once when the renderer is built.
pub(crate) struct Fixed {
    pub(crate) title: Line,
    pub(crate) city: Line,
    pub(crate) labels: [Line; 4],
}

/// The per-badge inputs, already validated.
pub(crate) struct Content<'t> {
    pub(crate) id: &'t str,
    pub(crate) name: &'t str,
    pub(crate) company: &'t str,
    pub(crate) kind: BadgeType,
}
/// Picks a font size for `text` at most `max` points, no wider than `width`: one line when
/// that allows at least `min_single` points, otherwise the larger of one line and the best
/// two-line split, the latter also limited by `max_two` (the height available).
fn fit(
    fonts: &FontSet,
    text: &str,
    style: Style,
    field: Field,
    (max, min_single, max_two): (f32, f32, f32),
    width: f32,
) -> Result<(Lines, f32), RenderError> {
    let single = shape_line(fonts, text, style, 0.0, field)?;
    let single_size = if single.width > 0.0 {
        max.min(width / single.width)
    } else {
        max
    };
    if single_size >= min_single {
        return Ok((one_line(single), single_size));
    }
    if let Some(two) = split_two(fonts, text, &single, style, field)? {
        let two_size = max_two.min(width / two.width);
        if two_size > single_size {
            return Ok((two, two_size));
        }
    }
    Ok((one_line(single), single_size))
}

fn one_line(line: Line) -> Lines {
    Lines {
        width: line.width,
        lines: vec![line],
    }
}

/// Lays out one badge of `width` × `height` points.
pub(crate) fn compose<'a>(
    fonts: &FontSet,
    fixed: &'a Fixed,
    content: &Content<'_>,
    width: f32,
    height: f32,
) -> Result<BadgeLayout<'a>, RenderError> {
    use grid::*;
    let s = height / DESIGN_HEIGHT;
    let margin = MARGIN * s;
    let bold = fonts.face(PRIMARY_BOLD);
    let cap = bold.cap_height();
    let colour = type_colour(content.kind);
    let mut blocks = Vec::with_capacity(2);
    let mut runs = Vec::with_capacity(8);

    // Top row: event line on the left, QR code on the right.
    let qr_size = QR * s;
    let qr_x = width - margin - qr_size;
    let (modules, rows) = qr::encode(content.id.as_bytes())?;
    let qr = Qr {
        x: qr_x,
        y: margin,
        size: qr_size,
        modules,
        rows,
        colour: INK,
    };
    let event_room = qr_x - margin - 14.0 * s;
    let event_width = fixed.title.width + fixed.city.width;
    let event_size = (EVENT_SIZE * s).min(event_room / event_width.max(f32::EPSILON));
    let event_baseline = margin + cap * event_size;
    runs.push(Run {
        line: Cow::Borrowed(&fixed.title),
        x: margin,
        baseline: event_baseline,
        size: event_size,
        colour: INK,
    });
    runs.push(Run {
        line: Cow::Borrowed(&fixed.city),
        x: margin + fixed.title.width * event_size,
        baseline: event_baseline,
        size: event_size,
        colour: MUTED,
    });
    blocks.push(Block {
        x: margin,
        y: event_baseline + 8.0 * s,
        w: ACCENT_W * s,
        h: ACCENT_H * s,
        colour,
    });

    // Bottom: the type band, its label optically centred on the cap height.
    let band_y = height - BAND * s;
    blocks.push(Block {
        x: 0.0,
        y: band_y,
        w: width,
        h: BAND * s,
        colour,
    });
    let label_size = LABEL_SIZE * s;
    runs.push(Run {
        line: Cow::Borrowed(&fixed.labels[content.kind.index()]),
        x: margin,
        baseline: band_y + (BAND * s + cap * label_size) / 2.0,
        size: label_size,
        colour: WHITE,
    });

    // Middle: name and company, centred as one block between the QR code and the band.
    let text_width = width - 2.0 * margin;
    let region_top = margin + qr_size + 12.0 * s;
    let region_bottom = band_y - 14.0 * s;
    let region = region_bottom - region_top;
    let company = if content.company.is_empty() {
        None
    } else {
        Some(fit(
            fonts,
            content.company,
            Style::Regular,
            Field::Company,
            (
                COMPANY_MAX * s,
                COMPANY_MIN_SINGLE * s,
                COMPANY_MIN_SINGLE * s,
            ),
            text_width,
        )?)
    };
    let company_height = company.as_ref().map_or(0.0, |(lines, size)| {
        cap * size + (lines.lines.len() - 1) as f32 * LINE_HEIGHT * size
    });
    // Two name lines must fit above the company with a gap of ~0.35 em.
    let name_room = region - company_height;
    let max_two = name_room / (cap + LINE_HEIGHT + if company.is_some() { 0.35 } else { 0.0 });
    let (name_lines, name_size) = fit(
        fonts,
        content.name,
        Style::Bold,
        Field::Name,
        (NAME_MAX * s, NAME_MIN_SINGLE * s, max_two.min(NAME_MAX * s)),
        text_width,
    )?;
    let name_height =
        cap * name_size + (name_lines.lines.len() - 1) as f32 * LINE_HEIGHT * name_size;
    // Room under the last name line for its deepest glyph (Arabic and CJK reach lower
    // than Latin), measured from the outlines actually drawn.
    let deepest = name_lines.lines.last().map_or(0.0, |line| {
        line.glyphs
            .iter()
            .filter_map(|g| {
                let face = fonts.face(g.face);
                let bbox = face.face.glyph_bounding_box(GlyphId(g.gid))?;
                Some(-(f32::from(bbox.y_min) / face.units_per_em + g.y))
            })
            .fold(0.0, f32::max)
    });
    let gap = if company.is_some() {
        (0.35 * name_size).max(deepest * name_size + 4.0 * s)
    } else {
        0.0
    };
    let block_height = name_height + gap + company_height;
    // Each line starts at its paragraph's start: left for LTR, right for RTL names.
    let start_x = |line: &Line, size: f32| {
        if line.rtl {
            width - margin - line.width * size
        } else {
            margin
        }
    };
    let mut baseline = region_top + (region - block_height) / 2.0 + cap * name_size;
    for line in name_lines.lines {
        runs.push(Run {
            x: start_x(&line, name_size),
            line: Cow::Owned(line),
            baseline,
            size: name_size,
            colour: INK,
        });
        baseline += LINE_HEIGHT * name_size;
    }
    if let Some((lines, size)) = company {
        baseline += gap - LINE_HEIGHT * name_size + cap * size;
        for line in lines.lines {
            runs.push(Run {
                x: start_x(&line, size),
                line: Cow::Owned(line),
                baseline,
                size,
                colour: MUTED,
            });
            baseline += LINE_HEIGHT * size;
        }
    }

    Ok(BadgeLayout {
        width,
        height,
        blocks,
        runs,
        qr,
    })
}
