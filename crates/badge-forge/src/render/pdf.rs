//! Draws [`BadgeLayout`]s into a PDF with printpdf, embedding font subsets made with
//! `subsetter`.
//!
//! printpdf only subsets fonts with its `text_layout` feature, which pulls in a whole
//! layout engine and re-parses every font per document. Instead each document collects
//! the glyph ids its pages use per face, cuts a subset from the bytes compiled into the
//! binary (tens of microseconds for a badge's few dozen glyphs), and hands printpdf the
//! subset as the font program, with glyph ids renumbered and the widths and ToUnicode
//! text printpdf needs to write `/W` and `/ToUnicode`.

use std::collections::{BTreeMap, BTreeSet};

use printpdf::{
    Codepoint, Color, CurTransMat, FontId, FontMetrics, FontType, Line, LinePoint, Op, PaintMode,
    ParsedFont, PdfDocument, PdfFontHandle, PdfFontMetricsStub, PdfPage, PdfParseErrorSeverity,
    PdfSaveOptions, Point, Pt, Rect, TextItem, TextMatrix,
};
use subsetter::GlyphRemapper;

use super::fonts::{FaceId, FontFace, FontSet};
use super::layout::{BadgeLayout, Rgb};
use super::{RenderError, sfnt};

/// Where one badge goes on a page: its top-left corner, in points from the page's
/// top-left corner.
pub(crate) struct Placement<'a> {
    pub(crate) layout: BadgeLayout<'a>,
    pub(crate) x: f32,
    pub(crate) y: f32,
}

/// One page: its size, its badges and any cut marks (line segments, top-left origin).
pub(crate) struct Sheet<'a> {
    pub(crate) width: f32,
    pub(crate) height: f32,
    pub(crate) badges: Vec<Placement<'a>>,
    pub(crate) cut_marks: Vec<[f32; 4]>,
}

/// Per face: original glyph id -> the text it stands for (first non-empty one seen).
type GlyphUse = BTreeMap<FaceId, BTreeMap<u16, Box<str>>>;

/// An embedded face: its resource name and the renumbering of its glyphs.
struct Embedded {
    id: FontId,
    remap: GlyphRemapper,
    /// Advance widths in 1/1000 em, as printpdf will write them into `/W`.
    widths: BTreeMap<u16, f32>,
}

/// Writes the sheets as one PDF.
pub(crate) fn write(
    fonts: &FontSet,
    title: &str,
    sheets: &[Sheet<'_>],
) -> Result<Vec<u8>, RenderError> {
    let mut used: GlyphUse = BTreeMap::new();
    for sheet in sheets {
        for placed in &sheet.badges {
            for run in &placed.layout.runs {
                for g in &run.line.glyphs {
                    let texts = used.entry(g.face).or_default();
                    let slot = texts.entry(g.gid).or_default();
                    if slot.is_empty()
                        && let Some(text) = &g.text
                    {
                        *slot = text.clone();
                    }
                }
            }
        }
    }

    let mut doc = PdfDocument::new(title);
    let mut embedded: BTreeMap<FaceId, Embedded> = BTreeMap::new();
    for (&face_id, glyphs) in &used {
        let face = fonts.face(face_id);
        let (parsed, remap) = subset(face, glyphs.keys().copied())?;
        let id = FontId(format!("F{face_id}"));
        let widths = parsed
            .glyph_widths
            .iter()
            .map(|(&gid, &w)| (gid, pdf_width(w, face.units_per_em)))
            .collect();
        doc.resources
            .fonts
            .map
            .insert(id.clone(), printpdf::PdfFont::new(parsed));
        embedded.insert(face_id, Embedded { id, remap, widths });
    }

    let pages = sheets
        .iter()
        .map(|sheet| {
            let mut ops = Vec::with_capacity(64 * sheet.badges.len());
            for placed in &sheet.badges {
                draw_badge(&mut ops, placed, sheet.height, &embedded, &used);
            }
            draw_cut_marks(&mut ops, &sheet.cut_marks, sheet.height);
            let mut page = PdfPage::new(printpdf::Mm(0.0), printpdf::Mm(0.0), ops);
            let rect = Rect::from_wh(Pt(sheet.width), Pt(sheet.height));
            page.media_box = rect.clone();
            page.trim_box = rect.clone();
            page.crop_box = rect;
            page
        })
        .collect();
    doc.with_pages(pages);

    let options = PdfSaveOptions {
        optimize: true,
        subset_fonts: false, // already subset above
        secure: true,
        image_optimization: None,
    };
    let mut warnings = Vec::new();
    let mut lo = doc.to_lopdf_document(&options, &mut warnings);
    if let Some(w) = warnings
        .iter()
        .find(|w| w.severity == PdfParseErrorSeverity::Error)
    {
        return Err(RenderError::Pdf(w.msg.clone()));
    }
    tidy(&mut lo);
    lo.compress();
    let mut out = Vec::with_capacity(8 * 1024);
    let save = lopdf::SaveOptions::builder()
        .use_object_streams(true)
        .use_xref_streams(true)
        .compression_level(9)
        .build();
    lo.save_with_options(&mut out, save)
        .map_err(|e| RenderError::Pdf(e.to_string()))?;
    Ok(out)
}

/// Trims what printpdf writes by default and a badge does not need, and makes the output
/// a pure function of the input: empty resource dictionaries, empty `/Annots`, crop and
/// trim boxes equal to the media box, epoch dates and empty fields in `/Info`, and the
/// random file `/ID` (replaced by a hash of the content).
fn tidy(doc: &mut lopdf::Document) {
    use lopdf::Object;

    let empty: BTreeSet<lopdf::ObjectId> = doc
        .objects
        .iter()
        .filter(|(_, o)| matches!(o, Object::Dictionary(d) if d.is_empty()))
        .map(|(id, _)| *id)
        .collect();
    let mut hash = Fnv::default();
    for object in doc.objects.values_mut() {
        match object {
            Object::Dictionary(dict) => {
                for key in [&b"XObject"[..], b"ExtGState", b"Shading"] {
                    if let Ok(Object::Reference(id)) = dict.get(key)
                        && empty.contains(id)
                    {
                        dict.remove(key);
                    }
                }
                if dict.has_type(b"Page") {
                    if matches!(dict.get(b"Annots"), Ok(Object::Array(a)) if a.is_empty()) {
                        dict.remove(b"Annots");
                    }
                    let media = dict.get(b"MediaBox").ok().cloned();
                    for key in [&b"CropBox"[..], b"TrimBox"] {
                        if dict.get(key).ok() == media.as_ref() {
                            dict.remove(key);
                        }
                    }
                }
                if dict.has_type(b"Catalog") {
                    dict.remove(b"PageLayout");
                    dict.remove(b"PageMode");
                }
            }
            Object::Stream(stream) => hash.write(&stream.content),
            _ => {}
        }
    }
    for id in &empty {
        doc.objects.remove(id);
    }
    if let Ok(Object::Reference(info_id)) = doc.trailer.get(b"Info")
        && let Some(Object::Dictionary(info)) = doc.objects.get_mut(info_id)
    {
        let title = info.get(b"Title").ok().cloned();
        *info = lopdf::Dictionary::new();
        if let Some(title) = title {
            if let Object::String(bytes, _) = &title {
                hash.write(bytes);
            }
            info.set("Title", title);
        }
        info.set(
            "Producer",
            Object::string_literal(concat!("badge-forge ", env!("CARGO_PKG_VERSION"))),
        );
    }
    let id = format!(
        "{:016x}{:016x}",
        hash.0,
        hash.0.rotate_left(29) ^ 0x9e37_79b9_7f4a_7c15
    );
    let id = Object::String(id.into_bytes(), lopdf::StringFormat::Hexadecimal);
    doc.trailer.set("ID", Object::Array(vec![id.clone(), id]));
}

/// FNV-1a, for deterministic identifiers (not security).
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// The advance printpdf writes into `/W` for a glyph (it truncates to whole 1/1000 em);
/// text positioning compensates for the difference to the shaped advance.
fn pdf_width(advance: u16, units_per_em: f32) -> f32 {
    (f32::from(advance) * 1000.0 / units_per_em).trunc()
}

/// Cuts the subset of `face` holding `gids` and wraps it as printpdf's font.
fn subset(
    face: &FontFace,
    gids: impl Iterator<Item = u16>,
) -> Result<(ParsedFont, GlyphRemapper), RenderError> {
    let mut remap = GlyphRemapper::new();
    let mut widths = BTreeMap::new();
    // Same glyphs, same subset tag.
    let mut tag_hash = Fnv::default();
    tag_hash.write(face.ps_name.as_bytes());
    for gid in gids {
        let new = remap.remap(gid);
        widths.insert(new, face.advance(gid));
        tag_hash.write(&gid.to_be_bytes());
    }
    let mut bytes = subsetter::subset(face.data, 0, &remap)
        .map_err(|e| RenderError::Subset(format!("{}: {e}", face.ps_name)))?;
    if !face.cff {
        // (For CFF faces printpdf embeds the bare `CFF ` table; no `name` goes along.)
        bytes = sfnt::replace_table(&bytes, b"name", &face.name_table)
            .ok_or_else(|| RenderError::Subset(format!("{}: malformed subset", face.ps_name)))?;
    }

    // The six-letter tag marks the embedded program as a subset (ISO 32000-1, 9.6.4).
    let tag: String = (0..6)
        .map(|i| char::from(b'A' + ((tag_hash.0 >> (i * 5)) % 26) as u8))
        .collect();
    let ttf: &rustybuzz::ttf_parser::Face<'_> = face.face.as_ref();
    let bbox = ttf.global_bounding_box();
    let upm = ttf.units_per_em();
    let parsed = ParsedFont {
        original_bytes: bytes,
        font_index: 0,
        font_name: Some(format!("{tag}+{}", face.ps_name)),
        codepoint_to_glyph: BTreeMap::new(),
        glyph_widths: widths,
        units_per_em: upm,
        font_metrics: FontMetrics {
            ascent: ttf.ascender(),
            descent: ttf.descender(),
        },
        font_type: if face.cff {
            FontType::OpenTypeCFF(())
        } else {
            FontType::TrueType
        },
        pdf_font_metrics: PdfFontMetricsStub {
            units_per_em: upm,
            x_min: bbox.x_min,
            y_min: bbox.y_min,
            x_max: bbox.x_max,
            y_max: bbox.y_max,
            caret_slope_rise: 1,
            caret_slope_run: 0,
            us_weight_class: ttf.weight().to_number(),
        },
    };
    Ok((parsed, remap))
}

fn colour(c: Rgb) -> Color {
    Color::Rgb(printpdf::Rgb {
        r: f32::from(c.0) / 255.0,
        g: f32::from(c.1) / 255.0,
        b: f32::from(c.2) / 255.0,
        icc_profile: None,
    })
}

/// Rounds to 1/100 pt (or 1/10 of a 1/1000 em): far below what a printer resolves, and
/// keeps the content stream short.
fn round2(v: f32) -> f32 {
    (v * 100.0).round() / 100.0
}

fn draw_badge(
    ops: &mut Vec<Op>,
    placed: &Placement<'_>,
    page_height: f32,
    embedded: &BTreeMap<FaceId, Embedded>,
    used: &GlyphUse,
) {
    let layout = &placed.layout;
    // Page coordinates: PDF's origin is bottom-left, the layout's top-left.
    let px = |x: f32| round2(placed.x + x);
    let py = |y: f32| round2(page_height - (placed.y + y));

    for b in &layout.blocks {
        ops.push(Op::SetFillColor {
            col: colour(b.colour),
        });
        ops.push(Op::DrawRectangle {
            rectangle: Rect {
                x: Pt(px(b.x)),
                y: Pt(py(b.y + b.h)),
                width: Pt(round2(b.w)),
                height: Pt(round2(b.h)),
                mode: Some(PaintMode::Fill),
                winding_order: None,
            },
        });
    }

    // QR code: one y-flipped coordinate system in module units, so every rectangle is
    // four small integers.
    let qr = &layout.qr;
    ops.push(Op::SaveGraphicsState);
    ops.push(Op::SetTransformationMatrix {
        matrix: CurTransMat::Raw([qr.module, 0.0, 0.0, -qr.module, px(qr.x), py(qr.y)]),
    });
    ops.push(Op::SetFillColor {
        col: colour(qr.colour),
    });
    for &[x, y, w, h] in &qr.rects {
        ops.push(Op::DrawRectangle {
            rectangle: Rect {
                x: Pt(f32::from(x)),
                y: Pt(f32::from(y)),
                width: Pt(f32::from(w)),
                height: Pt(f32::from(h)),
                mode: Some(PaintMode::Fill),
                winding_order: None,
            },
        });
    }
    ops.push(Op::RestoreGraphicsState);

    ops.push(Op::StartTextSection);
    let mut current_colour = None;
    for run in &layout.runs {
        if current_colour != Some(run.colour) {
            ops.push(Op::SetFillColor {
                col: colour(run.colour),
            });
            current_colour = Some(run.colour);
        }
        let glyphs = &run.line.glyphs;
        let mut i = 0;
        while i < glyphs.len() {
            // A segment: consecutive glyphs of one face on one baseline, shown from one
            // text matrix with kerning numbers placing each glyph where shaping put it.
            let first = &glyphs[i];
            let mut end = i + 1;
            while end < glyphs.len() && glyphs[end].face == first.face && glyphs[end].y == first.y {
                end += 1;
            }
            let font = &embedded[&first.face];
            let texts = &used[&first.face];
            ops.push(Op::SetFont {
                font: PdfFontHandle::External(font.id.clone()),
                size: Pt(round2(run.size)),
            });
            ops.push(Op::SetTextMatrix {
                matrix: TextMatrix::Translate(
                    Pt(px(run.x + first.x * run.size)),
                    Pt(py(run.baseline - first.y * run.size)),
                ),
            });
            let mut pen = 0.0f32; // where the viewer's pen is, 1/1000 em from first.x
            let mut items = Vec::with_capacity(end - i);
            for j in i..end {
                let g = &glyphs[j];
                let new_gid = font.remap.get(g.gid).unwrap_or(0);
                let advance = font.widths.get(&new_gid).copied().unwrap_or(0.0);
                let offset = match glyphs.get(j + 1).filter(|_| j + 1 < end) {
                    Some(next) => {
                        let target = (next.x - first.x) * 1000.0;
                        (((pen + advance - target) * 10.0).round()) / 10.0
                    }
                    None => 0.0,
                };
                pen += advance - offset;
                let text = texts.get(&g.gid).map(|t| t.to_string()).unwrap_or_default();
                items.push(Codepoint::with_cid(new_gid, offset, text));
            }
            ops.push(Op::ShowText {
                items: vec![TextItem::GlyphIds(items)],
            });
            i = end;
        }
    }
    ops.push(Op::EndTextSection);
}

fn draw_cut_marks(ops: &mut Vec<Op>, marks: &[[f32; 4]], page_height: f32) {
    if marks.is_empty() {
        return;
    }
    ops.push(Op::SetOutlineColor {
        col: Color::Greyscale(printpdf::Greyscale {
            percent: 0.0,
            icc_profile: None,
        }),
    });
    ops.push(Op::SetOutlineThickness { pt: Pt(0.3) });
    for &[x1, y1, x2, y2] in marks {
        let point = |x: f32, y: f32| LinePoint {
            p: Point {
                x: Pt(round2(x)),
                y: Pt(round2(page_height - y)),
            },
            bezier: false,
        };
        ops.push(Op::DrawLine {
            line: Line {
                points: vec![point(x1, y1), point(x2, y2)],
                is_closed: false,
            },
        });
    }
}
