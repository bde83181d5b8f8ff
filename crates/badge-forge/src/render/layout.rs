//! The badge, computed once per badge from the loaded layout ([`Design`]) and drawn by
//! both the PDF and the SVG writer.
//!
//! Coordinates are points with the origin at the top-left corner of the badge, y down. A
//! layout is drawn at its own page size, or scaled by height into a sheet's cell: edges the
//! file gives from the right or the bottom follow that side of a wider cell, so the same
//! layout fills an A6 card on A4 sheets.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use super::fonts::{FontSet, PRIMARY_BOLD, Style};
use super::image::{Fit, Image};
pub(crate) use super::layout_file::Rgb;
use super::layout_file::{
    Align, Design, Element, Kind, Names, Paint, Piece, Template, Text, TypeStyle, Valign,
};
use super::model::{BadgeType, EventInfo};
use super::qr;
use super::text::{Line, Lines, shape_line, split_two};
use super::{Field, RenderError};

/// A shaped line placed on the badge.
pub(crate) struct Run<'a> {
    pub(crate) line: Cow<'a, Line>,
    /// Left end of the line's baseline.
    pub(crate) x: f32,
    pub(crate) baseline: f32,
    pub(crate) size: f32,
    pub(crate) colour: Rgb,
}

/// A rectangle filled with a colour or an image.
pub(crate) struct Block {
    pub(crate) x: f32,
    pub(crate) y: f32,
    pub(crate) w: f32,
    pub(crate) h: f32,
    pub(crate) fill: Fill,
}

/// What fills a [`Block`].
pub(crate) enum Fill {
    Colour(Rgb),
    /// The image, placed in the block by `fit` (and cut at its edges).
    Image {
        image: Arc<Image>,
        fit: Fit,
    },
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
    pub(crate) qrs: Vec<Qr>,
}

/// A span's text and its shaped line.
#[derive(Clone)]
pub(crate) struct SpanLine {
    text: String,
    line: Line,
}

/// A text span shaped before any badge: its line, or nothing when its placeholders all came
/// out empty; `None` where the span must be shaped per badge.
type Shaped = Option<Option<SpanLine>>;

/// What stays the same on many badges, shaped once when the renderer is built: every span
/// that depends only on the event, and every span that depends on the type, for each type
/// the layout names.
pub(crate) struct Fixed {
    /// By element (the layout's own, then each type's own in order), then span.
    common: Vec<Vec<Shaped>>,
    /// By type index in the layout, then element, then span.
    by_type: Vec<Vec<Vec<Shaped>>>,
}

/// The per-badge inputs, already validated.
pub(crate) struct Content<'t> {
    pub(crate) id: &'t str,
    pub(crate) name: &'t str,
    pub(crate) company: &'t str,
    pub(crate) kind: &'t BadgeType,
    /// The args fields the layout prints, cleaned.
    pub(crate) fields: &'t BTreeMap<String, String>,
}

/// The text a template gives for one badge, and whether it drew anything from its
/// placeholders (a span whose placeholders are all empty is left out).
fn fill(
    template: &Template,
    event: &EventInfo,
    kind: &BadgeType,
    style: Option<&TypeStyle>,
    content: Option<&Content<'_>>,
) -> (String, bool) {
    let mut out = String::new();
    let mut filled = !template.has_placeholder();
    for piece in &template.0 {
        let value: &str = match piece {
            Piece::Literal(text) => {
                out.push_str(text);
                continue;
            }
            Piece::EventTitle => &event.title,
            Piece::EventCity => &event.city,
            Piece::Type => kind.as_str(),
            Piece::TypeLabel => {
                if let Some(style) = style {
                    &style.label
                } else {
                    out.push_str(&kind.as_str().to_ascii_uppercase());
                    filled = true;
                    continue;
                }
            }
            Piece::Id => content.map_or("", |c| c.id),
            Piece::Name => content.map_or("", |c| c.name),
            Piece::Company => content.map_or("", |c| c.company),
            Piece::Arg(key) => content
                .and_then(|c| c.fields.get(key))
                .map_or("", String::as_str),
        };
        filled |= !value.is_empty();
        out.push_str(value);
    }
    (out, filled)
}

fn shape_span(
    fonts: &FontSet,
    text: &Text,
    span: usize,
    filled: (String, bool),
) -> Result<Option<SpanLine>, RenderError> {
    let (mut string, filled) = filled;
    if !filled {
        return Ok(None);
    }
    if text.uppercase {
        string = string.to_uppercase();
    }
    let field = if text.spans[span].template.varies() == super::layout_file::Varies::Never {
        Field::EventTitle
    } else {
        Field::Text
    };
    let line = shape_line(fonts, &string, text.spans[span].style, text.tracking, field)?;
    Ok(Some(SpanLine { text: string, line }))
}

impl Fixed {
    /// Shapes what can be shaped before any badge.
    pub(crate) fn new(
        fonts: &FontSet,
        design: &Design,
        event: &EventInfo,
    ) -> Result<Fixed, RenderError> {
        use super::layout_file::Varies;
        let elements = all_elements(design);
        let shape_for = |kind: &BadgeType, style: Option<&TypeStyle>, wanted: Varies| {
            elements
                .iter()
                .map(|element| {
                    let Kind::Text(text) = &element.kind else {
                        return Ok(Vec::new());
                    };
                    (0..text.spans.len())
                        .map(|i| {
                            let template = &text.spans[i].template;
                            if template.varies() != wanted {
                                return Ok(None);
                            }
                            let filled = fill(template, event, kind, style, None);
                            shape_span(fonts, text, i, filled).map(Some)
                        })
                        .collect::<Result<Vec<_>, RenderError>>()
                })
                .collect::<Result<Vec<_>, RenderError>>()
        };
        let common = shape_for(&BadgeType::ATTENDEE, None, Varies::Never)?;
        let by_type = design
            .types
            .iter()
            .map(|style| shape_for(&style.name, Some(style), Varies::ByType))
            .collect::<Result<_, _>>()?;
        Ok(Fixed { common, by_type })
    }
}

/// The layout's own elements, then each type's own: the order [`Fixed`] indexes them in.
fn all_elements(design: &Design) -> Vec<&Element> {
    design
        .elements
        .iter()
        .chain(design.types.iter().flat_map(|t| &t.elements))
        .collect()
}

/// Picks a font size for `text` (shaped on one line as `single`) at most `max` points, no wider than `width`: one line when
/// that allows at least `min_single` points, otherwise the larger of one line and the best
/// two-line split, the latter also limited by `max_two` (the height available).
fn fit(
    fonts: &FontSet,
    text: &str,
    single: Line,
    style: Style,
    field: Field,
    (max, min_single, max_two): (f32, f32, f32),
    width: f32,
) -> Result<(Lines, f32), RenderError> {
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
    design: &Design,
    event: &EventInfo,
    fixed: &'a Fixed,
    content: &Content<'_>,
    width: f32,
    height: f32,
) -> Result<BadgeLayout<'a>, RenderError> {
    let type_index = design.types.iter().position(|t| &t.name == content.kind);
    if type_index.is_none() && design.closed {
        return Err(RenderError::UnknownType {
            kind: content.kind.to_string(),
            known: design
                .types
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let style = type_index.map(|i| &design.types[i]);
    let band = style.map_or(design.default_colour, |t| t.colour);
    let paint = |p: Paint| match p {
        Paint::Fixed(c) => c,
        Paint::Type => band,
    };
    let mut page = Page {
        s: height / design.height,
        cap: fonts.face(PRIMARY_BOLD).cap_height(),
        out: BadgeLayout {
            width,
            height,
            blocks: Vec::with_capacity(2),
            runs: Vec::with_capacity(8),
            qrs: Vec::with_capacity(1),
        },
    };
    // The layout's own elements, then those of this badge's type.
    let own = design.elements.len();
    let mut first_of_type = own;
    for t in &design.types[..type_index.unwrap_or(0)] {
        first_of_type += t.elements.len();
    }
    let chosen = design.elements.iter().enumerate().chain(
        style
            .into_iter()
            .flat_map(|t| t.elements.iter())
            .enumerate()
            .map(|(i, e)| (first_of_type + i, e)),
    );
    for (index, element) in chosen {
        let (x, w) = element.x.resolve(page.s, width);
        let (y, h) = element.y.resolve(page.s, height);
        let bounds = Bounds { x, y, w, h };
        match &element.kind {
            Kind::Rect { colour } => page.out.blocks.push(Block {
                x,
                y,
                w,
                h,
                fill: Fill::Colour(paint(*colour)),
            }),
            Kind::Image { image, fit } => page.out.blocks.push(Block {
                x,
                y,
                w,
                h,
                fill: Fill::Image {
                    image: Arc::clone(image),
                    fit: *fit,
                },
            }),
            Kind::Qr {
                content: template,
                colour,
            } => {
                let (data, _) = fill(template, event, content.kind, style, Some(content));
                let (modules, rows) = qr::encode(data.as_bytes())?;
                let size = w.min(h);
                page.out.qrs.push(Qr {
                    x,
                    y,
                    size,
                    modules,
                    rows,
                    colour: paint(*colour),
                });
            }
            Kind::Text(text) => {
                let shaped = |span: usize| -> Result<Option<Cow<'a, SpanLine>>, RenderError> {
                    let pre = type_index
                        .and_then(|t| fixed.by_type[t][index].get(span))
                        .and_then(Option::as_ref)
                        .or_else(|| fixed.common[index].get(span).and_then(Option::as_ref));
                    if let Some(line) = pre {
                        return Ok(line.as_ref().map(Cow::Borrowed));
                    }
                    let template = &text.spans[span].template;
                    if text.required
                        && let Some(key) = template.0.iter().find_map(|p| match p {
                            Piece::Arg(key)
                                if content.fields.get(key).is_none_or(String::is_empty) =>
                            {
                                Some(key)
                            }
                            _ => None,
                        })
                    {
                        return Err(RenderError::MissingField { key: key.clone() });
                    }
                    let filled = fill(template, event, content.kind, style, Some(content));
                    Ok(shape_span(fonts, text, span, filled)?.map(Cow::Owned))
                };
                let mut lines = Vec::with_capacity(text.spans.len());
                for span in 0..text.spans.len() {
                    if let Some(line) = shaped(span)? {
                        lines.push((line, paint(text.spans[span].colour)));
                    }
                }
                page.text(fonts, text, lines, bounds, paint)?;
            }
            Kind::Names(names) => page.names(fonts, names, content, bounds, paint)?,
        }
    }
    Ok(page.out)
}

/// An element's box, in points.
#[derive(Clone, Copy)]
struct Bounds {
    x: f32,
    y: f32,
    w: f32,
    h: f32,
}

/// The badge being laid out.
struct Page<'a> {
    /// Scale from the layout's points to the badge's.
    s: f32,
    /// Cap height of the primary face, in em: the type scale's reference.
    cap: f32,
    out: BadgeLayout<'a>,
}

impl<'a> Page<'a> {
    /// A text element: its spans on one line, or one span over up to `max_lines` lines,
    /// shrunk to fit the box's width.
    fn text(
        &mut self,
        fonts: &FontSet,
        text: &Text,
        spans: Vec<(Cow<'a, SpanLine>, Rgb)>,
        b: Bounds,
        paint: impl Fn(Paint) -> Rgb,
    ) -> Result<(), RenderError> {
        let Some(first) = spans.first() else {
            return Ok(());
        };
        let (max, min_single) = (text.size * self.s, text.min_size * self.s);
        let line_height = 1.12;
        let (lines, size): (Vec<(Cow<'a, Line>, Rgb)>, f32) = if spans.len() == 1 {
            let colour = first.1;
            let max_two = if text.max_lines > 1 {
                max.min(b.h / (self.cap + line_height))
            } else {
                0.0
            };
            let (lines, size) = fit_line(
                fonts,
                spans.into_iter().next().map(|(l, _)| l).expect("one span"),
                text.spans[0].style,
                (max, min_single, max_two),
                b.w,
            )?;
            (lines.into_iter().map(|l| (l, colour)).collect(), size)
        } else {
            let total: f32 = spans.iter().map(|(l, _)| l.line.width).sum();
            let size = max.min(b.w / total.max(f32::EPSILON));
            let lines = spans
                .into_iter()
                .map(|(l, colour)| (as_line(l), colour))
                .collect();
            (lines, size)
        };
        let rows = if text.spans.len() == 1 {
            lines.len()
        } else {
            1
        };
        let block = self.cap * size + (rows - 1) as f32 * line_height * size;
        let mut baseline = match text.valign {
            Valign::Top => b.y + self.cap * size,
            Valign::Middle => b.y + (b.h - block) / 2.0 + self.cap * size,
            Valign::Bottom => b.y + b.h - (rows - 1) as f32 * line_height * size,
        };
        if let Some(rule) = text.rule {
            self.out.blocks.push(Block {
                x: b.x,
                y: baseline + rule.offset * self.s,
                w: rule.width * self.s,
                h: rule.height * self.s,
                fill: Fill::Colour(paint(rule.colour)),
            });
        }
        if rows == 1 && lines.len() > 1 {
            // Spans follow each other on one line.
            let total: f32 = lines.iter().map(|(l, _)| l.width).sum::<f32>() * size;
            let mut x = align_x(text.align, false, b, total);
            for (line, colour) in lines {
                let advance = line.width * size;
                self.out.runs.push(Run {
                    line,
                    x,
                    baseline,
                    size,
                    colour,
                });
                x += advance;
            }
            return Ok(());
        }
        for (line, colour) in lines {
            let x = align_x(text.align, line.rtl, b, line.width * size);
            self.out.runs.push(Run {
                line,
                x,
                baseline,
                size,
                colour,
            });
            baseline += line_height * size;
        }
        Ok(())
    }

    /// The name block: name and company, centred as one block in the box.
    fn names(
        &mut self,
        fonts: &FontSet,
        names: &Names,
        content: &Content<'_>,
        b: Bounds,
        paint: impl Fn(Paint) -> Rgb,
    ) -> Result<(), RenderError> {
        let (s, cap, line_height) = (self.s, self.cap, names.line_height);
        let company = if content.company.is_empty() {
            None
        } else {
            let (min, max) = names.company_size;
            let single = shape_line(fonts, content.company, Style::Regular, 0.0, Field::Company)?;
            Some(fit(
                fonts,
                content.company,
                single,
                Style::Regular,
                Field::Company,
                (max * s, min * s, min * s),
                b.w,
            )?)
        };
        let company_height = company.as_ref().map_or(0.0, |(lines, size)| {
            cap * size + (lines.lines.len() - 1) as f32 * line_height * size
        });
        // Two name lines must fit above the company with a gap of ~0.35 em.
        let name_room = b.h - company_height;
        let max_two = name_room / (cap + line_height + if company.is_some() { 0.35 } else { 0.0 });
        let (min, max) = names.name_size;
        let single = shape_line(fonts, content.name, Style::Bold, 0.0, Field::Name)?;
        let (name_lines, name_size) = fit(
            fonts,
            content.name,
            single,
            Style::Bold,
            Field::Name,
            (max * s, min * s, max_two.min(max * s)),
            b.w,
        )?;
        let name_height =
            cap * name_size + (name_lines.lines.len() - 1) as f32 * line_height * name_size;
        // Room under the last name line for its deepest glyph (Arabic and CJK reach lower
        // than Latin), measured from the outlines actually drawn.
        let deepest = name_lines.lines.last().map_or(0.0, |line| {
            line.glyphs
                .iter()
                .filter_map(|g| {
                    let face = fonts.face(g.face);
                    let bottom = face.ink_bottom(g.gid)?;
                    Some(-(f32::from(bottom) / face.units_per_em + g.y))
                })
                .fold(0.0, f32::max)
        });
        let gap = if company.is_some() {
            (0.35 * name_size).max(deepest * name_size + 4.0 * s)
        } else {
            0.0
        };
        let block_height = name_height + gap + company_height;
        let mut baseline = b.y + (b.h - block_height) / 2.0 + cap * name_size;
        let name_colour = paint(names.name_colour);
        for line in name_lines.lines {
            self.out.runs.push(Run {
                x: align_x(Align::Start, line.rtl, b, line.width * name_size),
                line: Cow::Owned(line),
                baseline,
                size: name_size,
                colour: name_colour,
            });
            baseline += line_height * name_size;
        }
        if let Some((lines, size)) = company {
            let colour = paint(names.company_colour);
            baseline += gap - line_height * name_size + cap * size;
            for line in lines.lines {
                self.out.runs.push(Run {
                    x: align_x(Align::Start, line.rtl, b, line.width * size),
                    line: Cow::Owned(line),
                    baseline,
                    size,
                    colour,
                });
                baseline += line_height * size;
            }
        }
        Ok(())
    }
}

/// The left end of a line `width` points wide in the box. `Start` puts each line at its
/// paragraph's start: left for LTR, right for RTL text.
fn align_x(align: Align, rtl: bool, b: Bounds, width: f32) -> f32 {
    match align {
        Align::Start if rtl => b.x + b.w - width,
        Align::Start | Align::Left => b.x,
        Align::Right => b.x + b.w - width,
        Align::Centre => b.x + (b.w - width) / 2.0,
    }
}

/// The line of a span, borrowed when the span is.
fn as_line(span: Cow<'_, SpanLine>) -> Cow<'_, Line> {
    match span {
        Cow::Borrowed(span) => Cow::Borrowed(&span.line),
        Cow::Owned(span) => Cow::Owned(span.line),
    }
}

/// [`fit`] for a line that may have been shaped before the badge: wrapped only when it must
/// (the text is then shaped again in two).
fn fit_line<'a>(
    fonts: &FontSet,
    span: Cow<'a, SpanLine>,
    style: Style,
    (max, min_single, max_two): (f32, f32, f32),
    width: f32,
) -> Result<(Vec<Cow<'a, Line>>, f32), RenderError> {
    let size = if span.line.width > 0.0 {
        max.min(width / span.line.width)
    } else {
        max
    };
    if size >= min_single || max_two <= 0.0 {
        return Ok((vec![as_line(span)], size));
    }
    let line = span;
    let span = line.into_owned();
    let (lines, size) = fit(
        fonts,
        &span.text,
        span.line,
        style,
        Field::Text,
        (max, min_single, max_two),
        width,
    )?;
    Ok((lines.lines.into_iter().map(Cow::Owned).collect(), size))
}
