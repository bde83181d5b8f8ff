//! Font embedding: each document collects the glyph ids its pages use per face, cuts a
//! subset from the bytes compiled into the binary (tens of microseconds for a badge's few
//! dozen glyphs: [`cff`] for the CID-keyed CJK face, `subsetter` for the others, [`sfnt`]
//! for the table surgery), and hands printpdf the subset as the font program, with glyph
//! ids renumbered and the widths and ToUnicode text it needs to write `/W` and `/ToUnicode`.

mod cff;
mod sfnt;

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, LazyLock, RwLock};

use printpdf::{FontId, FontMetrics, FontType, ParsedFont, PdfDocument, PdfFontMetricsStub};
use rustybuzz::ttf_parser::{Tag, name_id};
use subsetter::GlyphRemapper;

use super::{Fnv, Sheet};
use crate::render::RenderError;
use crate::render::fonts::{FaceId, FontFace, FontSet};
use cff::CidCff;

/// Per face: original glyph id -> the text it stands for (first non-empty one seen).
type GlyphUse<'a> = BTreeMap<FaceId, BTreeMap<u16, &'a str>>;

/// An embedded face: its resource name and the renumbering of its glyphs.
pub(super) struct Embedded {
    pub(super) id: FontId,
    pub(super) remap: GlyphRemapper,
    /// Advance widths in 1/1000 em, as printpdf will write them into `/W`.
    pub(super) widths: BTreeMap<u16, f32>,
}

/// The fonts of one document.
pub(super) struct EmbeddedFonts {
    pub(super) by_face: BTreeMap<FaceId, Embedded>,
    /// BaseFont name -> our ToUnicode CMap, swapped in for printpdf's longer one.
    pub(super) to_unicode: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// Subsets every face the sheets use and adds it to `doc`'s font resources.
pub(super) fn embed(
    fonts: &FontSet,
    sheets: &[Sheet<'_>],
    doc: &mut PdfDocument,
) -> Result<EmbeddedFonts, RenderError> {
    let used = glyphs_used(sheets);
    let mut by_face = BTreeMap::new();
    let mut to_unicode = BTreeMap::new();
    for (&face_id, glyphs) in &used {
        let face = fonts.face(face_id);
        let (parsed, remap) = subset(face, glyphs.keys().copied())?;
        let id = FontId(format!("F{face_id}"));
        let mut entries: Vec<(u16, &str)> = glyphs
            .iter()
            .filter(|(_, text)| !text.is_empty())
            .map(|(&gid, &text)| (remap.get(gid).unwrap_or(0), text))
            .collect();
        entries.sort_unstable();
        if let Some(name) = &parsed.font_name {
            to_unicode.insert(name.clone().into_bytes(), to_unicode_cmap(&entries));
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
        by_face.insert(face_id, Embedded { id, remap, widths });
    }
    Ok(EmbeddedFonts {
        by_face,
        to_unicode,
    })
}

/// Every glyph the sheets draw, per face, with the text it stands for.
fn glyphs_used<'a>(sheets: &'a [Sheet<'_>]) -> GlyphUse<'a> {
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
                        *slot = text;
                    }
                }
            }
        }
    }
    used
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
            out.push('<');
            push_hex4(&mut out, *code);
            out.push_str("><");
            for unit in text.encode_utf16() {
                push_hex4(&mut out, unit);
            }
            out.push_str(">\n");
        }
        out.push_str("endbfchar\n");
    }
    out.push_str("endcmap CMapName currentdict/CMap defineresource pop end end");
    out.into_bytes()
}

/// Appends `value` as four upper-case hex digits (`{value:04X}`, without the formatting
/// machinery: a CMap has two such numbers per glyph).
fn push_hex4(out: &mut String, value: u16) {
    for shift in [12, 8, 4, 0] {
        out.push(char::from(
            b"0123456789ABCDEF"[usize::from((value >> shift) & 0xF)],
        ));
    }
}

/// The advance printpdf writes into `/W` for a glyph (it truncates to whole 1/1000 em);
/// text positioning compensates for the difference to the shaped advance.
fn pdf_width(advance: u16, units_per_em: f32) -> f32 {
    (f32::from(advance) * 1000.0 / units_per_em).trunc()
}

/// What embedding needs of a face beyond its parsed tables, made when the face is first
/// embedded and kept for the process.
struct Prepared {
    /// The `name` table given to embedded TrueType subsets: copyright and PostScript name.
    name_table: Vec<u8>,
    /// The located `CFF ` table of a CID-keyed CFF face, for fast subsets (`None`: not
    /// CID-keyed, or not understood, so `subsetter` cuts its subsets).
    cid_cff: Option<CidCff<'static>>,
}

/// [`Prepared`] per face, by the address of its bytes (compiled in, or a layout's font kept
/// for the process): a face is prepared once, whichever font set it is in.
static PREPARED: LazyLock<RwLock<HashMap<usize, Arc<Prepared>>>> = LazyLock::new(RwLock::default);

impl Prepared {
    fn get(face: &FontFace) -> Arc<Prepared> {
        let key = face.data.as_ptr() as usize;
        if let Some(prepared) = PREPARED.read().ok().and_then(|p| p.get(&key).cloned()) {
            return prepared;
        }
        let copyright = face
            .face
            .names()
            .into_iter()
            .filter(|n| n.name_id == name_id::COPYRIGHT_NOTICE)
            .find_map(|n| n.to_string())
            .unwrap_or_default();
        let data: &'static [u8] = face.data;
        let prepared = Prepared {
            name_table: sfnt::minimal_name_table(&copyright, &face.ps_name),
            cid_cff: rustybuzz::ttf_parser::RawFace::parse(data, 0)
                .ok()
                .and_then(|raw| raw.table(Tag::from_bytes(b"CFF ")))
                .and_then(CidCff::parse),
        };
        let mut map = PREPARED.write().unwrap_or_else(|e| e.into_inner());
        map.entry(key).or_insert_with(|| Arc::new(prepared)).clone()
    }
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
    let prepared = Prepared::get(face);
    // A CID-keyed CFF face is cut by our own subsetter, which locates the font's
    // structure once per process (see `cff`); `subsetter` is the fallback.
    let fast_cff = prepared.cid_cff.as_ref().and_then(|cff| {
        let gids: Vec<u16> = remap.remapped_gids().collect();
        cff.subset(&face.ps_name, &gids)
            .map(|table| sfnt::wrap_cff(&table))
    });
    let mut bytes = match fast_cff {
        Some(bytes) => bytes,
        None => subsetter::subset(face.data, 0, &remap)
            .map_err(|e| RenderError::Subset(format!("{}: {e}", face.ps_name)))?,
    };
    if !face.cff {
        // (For CFF faces printpdf embeds the bare `CFF ` table; no `name` goes along.)
        bytes = sfnt::replace_table(&bytes, b"name", &prepared.name_table)
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
