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
use std::fmt::Write as _;

use printpdf::{
    Codepoint, Color, DictItem, ExternalStream, ExternalXObject, FontId, FontMetrics, FontType,
    Line, LinePoint, Op, PaintMode, ParsedFont, PdfDocument, PdfFontHandle, PdfFontMetricsStub,
    PdfPage, PdfParseErrorSeverity, PdfSaveOptions, Point, Pt, Rect, TextItem, TextMatrix, XObject,
    XObjectId, XObjectTransform,
};
use subsetter::GlyphRemapper;

use super::fonts::{FaceId, FontFace, FontSet};
use super::layout::{BadgeLayout, Qr, Rgb};
use super::{RenderError, serial, sfnt};

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
    // BaseFont name -> our ToUnicode CMap, swapped in for printpdf's longer one.
    let mut cmaps: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    for (&face_id, glyphs) in &used {
        let face = fonts.face(face_id);
        let (parsed, remap) = subset(face, glyphs.keys().copied())?;
        let id = FontId(format!("F{face_id}"));
        let mut entries: Vec<(u16, &str)> = glyphs
            .iter()
            .filter(|(_, text)| !text.is_empty())
            .map(|(&gid, text)| (remap.get(gid).unwrap_or(0), &**text))
            .collect();
        entries.sort_unstable();
        if let Some(name) = &parsed.font_name {
            cmaps.insert(name.clone().into_bytes(), to_unicode_cmap(&entries));
        }
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

    let mut xobjects = Vec::new();
    let pages = sheets
        .iter()
        .map(|sheet| {
            let mut ops = Vec::with_capacity(64 * sheet.badges.len());
            for placed in &sheet.badges {
                draw_badge(&mut ops, &mut xobjects, placed, sheet.height, &embedded);
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
    doc.resources.xobjects.map.extend(xobjects);

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
    tidy(&mut lo, &cmaps);
    compress_streams(&mut lo);
    Ok(serial::write_file(&lo, deflate))
}

/// A ToUnicode CMap mapping each glyph code to the text it stands for: the minimal
/// structure readers need (printpdf's carries comments and PostScript resource headers
/// that cost a few hundred bytes per font).
fn to_unicode_cmap(entries: &[(u16, &str)]) -> Vec<u8> {
    let mut out = String::from(
        "/CIDInit/ProcSet findresource begin 12 dict begin begincmap\n\
         /CIDSystemInfo<</Registry(Adobe)/Ordering(UCS)/Supplement 0>>def\n\
         /CMapName/Adobe-Identity-UCS def/CMapType 2 def\n\
         1 begincodespacerange<0000><FFFF>endcodespacerange\n",
    );
    for chunk in entries.chunks(100) {
        let _ = writeln!(out, "{} beginbfchar", chunk.len());
        for (code, text) in chunk {
            let _ = write!(out, "<{code:04X}><");
            for unit in text.encode_utf16() {
                let _ = write!(out, "{unit:04X}");
            }
            out.push_str(">\n");
        }
        out.push_str("endbfchar\n");
    }
    out.push_str("endcmap CMapName currentdict/CMap defineresource pop end end");
    out.into_bytes()
}

/// Trims what printpdf writes by default and a badge does not need, and makes the output
/// a pure function of the input: empty resource dictionaries, empty `/Annots`, crop and
/// trim boxes equal to the media box, epoch dates and empty fields in `/Info`, and the
/// random file `/ID` (replaced by a hash of the content). Swaps in `cmaps`, keyed by
/// `/BaseFont`, as the fonts' ToUnicode streams.
fn tidy(doc: &mut lopdf::Document, cmaps: &BTreeMap<Vec<u8>, Vec<u8>>) {
    use lopdf::Object;

    let to_unicode: Vec<(lopdf::ObjectId, &Vec<u8>)> = doc
        .objects
        .values()
        .filter_map(|o| {
            let dict = o.as_dict().ok()?;
            let name = dict.get(b"BaseFont").ok()?.as_name().ok()?;
            let cmap = cmaps.get(name)?;
            Some((dict.get(b"ToUnicode").ok()?.as_reference().ok()?, cmap))
        })
        .collect();
    for (id, cmap) in to_unicode {
        if let Some(Object::Stream(stream)) = doc.objects.get_mut(&id) {
            stream.set_content(cmap.clone());
        }
    }

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
                // Entries of the descendant CIDFont equal to their defaults (ISO 32000-1,
                // table 117): /DW 1000 and, for TrueType outlines, /CIDToGIDMap /Identity.
                if let Ok(Object::Array(descendants)) = dict.get_mut(b"DescendantFonts") {
                    for cid_font in descendants.iter_mut() {
                        if let Object::Dictionary(cid_font) = cid_font {
                            if cid_font.get(b"DW").and_then(Object::as_i64).ok() == Some(1000) {
                                cid_font.remove(b"DW");
                            }
                            let identity = cid_font
                                .get(b"CIDToGIDMap")
                                .and_then(Object::as_name)
                                .is_ok_and(|name| name == b"Identity");
                            if identity {
                                cid_font.remove(b"CIDToGIDMap");
                            }
                        }
                    }
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
    let mut id = hash.0.to_be_bytes().to_vec();
    id.extend((hash.0.rotate_left(29) ^ 0x9e37_79b9_7f4a_7c15).to_be_bytes());
    // A literal string: the trailer is not compressed, and hex would double its bytes.
    let id = Object::String(id, lopdf::StringFormat::Literal);
    doc.trailer.set("ID", Object::Array(vec![id.clone(), id]));
}

thread_local! {
    /// One compressor per thread: libdeflate keeps no stream state, so reusing it costs
    /// nothing and saves its setup on every stream.
    static DEFLATE: std::cell::RefCell<libdeflater::Compressor> =
        std::cell::RefCell::new(libdeflater::Compressor::new(DEFLATE_LEVEL));
}

/// Level 1, libdeflate's fastest that still compresses (0 stores). Against its default (6),
/// measured with the render bench:
/// 11-13 % less CPU per badge for 1.7 % larger PDFs (mixed corpus 0.81 -> 0.72 ms, median
/// 6,855 -> 6,975 B); levels 9 and 12 took up to half the render time for under 0.5 %
/// smaller badges.
const DEFLATE_LEVEL: libdeflater::CompressionLvl = match libdeflater::CompressionLvl::new(1) {
    Ok(level) => level,
    Err(_) => panic!("libdeflate has level 1"),
};

/// What `/Filter/FlateDecode` adds to a stream's dictionary: compression must save more.
const FILTER_ENTRY_BYTES: usize = 20;

/// zlib-compresses `data`, if that makes the stream smaller (the filter entry included).
fn deflate(data: &[u8]) -> Option<Vec<u8>> {
    DEFLATE.with_borrow_mut(|deflate| {
        let mut out = vec![0; deflate.zlib_compress_bound(data.len())];
        let len = deflate.zlib_compress(data, &mut out).ok()?;
        (len + FILTER_ENTRY_BYTES < data.len()).then(|| {
            out.truncate(len);
            out
        })
    })
}

/// Flate-compresses every stream that is not compressed yet (when that makes it smaller).
fn compress_streams(doc: &mut lopdf::Document) {
    for object in doc.objects.values_mut() {
        // The QR's image mask is left alone: its 1-bit modules are close to random, and
        // deflate never saves its own header, checksum and filter entry there.
        if let lopdf::Object::Stream(stream) = object
            && !stream.dict.has(b"Filter")
            && !stream.dict.has(b"ImageMask")
            && let Some(compressed) = deflate(&stream.content)
        {
            stream.dict.set("Filter", "FlateDecode");
            stream.set_content(compressed);
        }
    }
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
    // A CID-keyed CFF face is cut by our own subsetter, which locates the font's
    // structure once per process (see `cff`); `subsetter` is the fallback.
    let fast_cff = face.cid_cff().and_then(|cff| {
        let gids: Vec<u16> = remap.remapped_gids().collect();
        cff.subset(face.ps_name, &gids)
            .map(|table| sfnt::wrap_cff(&table))
    });
    let mut bytes = match fast_cff {
        Some(bytes) => bytes,
        None => subsetter::subset(face.data, 0, &remap)
            .map_err(|e| RenderError::Subset(format!("{}: {e}", face.ps_name)))?,
    };
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
    // Three decimals resolve 1/1000: finer than the 1/255 steps of the source colour.
    let channel = |v: u8| (f32::from(v) / 255.0 * 1000.0).round() / 1000.0;
    Color::Rgb(printpdf::Rgb {
        r: channel(c.0),
        g: channel(c.1),
        b: channel(c.2),
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
    xobjects: &mut Vec<(XObjectId, XObject)>,
    placed: &Placement<'_>,
    page_height: f32,
    embedded: &BTreeMap<FaceId, Embedded>,
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

    // QR code: a 1-bit image mask, one sample per module, painted in the fill colour.
    // A tenth of the bytes of the same symbol as rectangles (about 120 B against 550 B
    // compressed), and exact: masks are not interpolated, so module edges stay sharp at
    // any scale.
    let qr = &layout.qr;
    let id = XObjectId(format!("Q{}", xobjects.len()));
    xobjects.push((id.clone(), XObject::External(qr_image(qr))));
    ops.push(Op::SetFillColor {
        col: colour(qr.colour),
    });
    ops.push(Op::UseXobject {
        id,
        transform: XObjectTransform {
            translate_x: Some(Pt(px(qr.x))),
            translate_y: Some(Pt(py(qr.y + qr.size))),
            scale_x: Some(round2(qr.size)),
            scale_y: Some(round2(qr.size)),
            ..XObjectTransform::default()
        },
    });

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
                // No text for printpdf: `tidy` swaps in our own ToUnicode map, so the one
                // printpdf would build from the text is thrown away anyway.
                items.push(Codepoint::with_cid(new_gid, offset, String::new()));
            }
            ops.push(Op::ShowText {
                items: vec![TextItem::GlyphIds(items)],
            });
            i = end;
        }
    }
    ops.push(Op::EndTextSection);
}

/// The QR symbol as an image mask XObject (ISO 32000-1, 8.9.6.2): rows top to bottom,
/// leftmost module in the high bit, `/Decode [1 0]` so that 1 (dark) paints.
fn qr_image(qr: &Qr) -> ExternalXObject {
    let n = qr.modules;
    let row_bytes = n.div_ceil(8);
    let mut samples = Vec::with_capacity(row_bytes * n);
    for &row in &qr.rows {
        samples.extend((0..row_bytes).map(|k| ((row >> (8 * k)) as u8).reverse_bits()));
    }
    let int = |v: usize| DictItem::Int(v as i64);
    ExternalXObject {
        stream: ExternalStream {
            dict: BTreeMap::from([
                ("Type".to_string(), DictItem::Name(b"XObject".to_vec())),
                ("Subtype".to_string(), DictItem::Name(b"Image".to_vec())),
                ("Width".to_string(), int(n)),
                ("Height".to_string(), int(n)),
                ("ImageMask".to_string(), DictItem::Bool(true)),
                (
                    "Decode".to_string(),
                    DictItem::Array(vec![DictItem::Int(1), DictItem::Int(0)]),
                ),
            ]),
            content: samples,
            compress: true,
        },
        width: None,
        height: None,
        dpi: None,
    }
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
