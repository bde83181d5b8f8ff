//! Font embedding: each document collects the glyph ids its pages use per face, cuts a
//! subset from the bytes compiled into the binary (tens of microseconds for a badge's few
//! dozen glyphs: [`cff`] for the CID-keyed CJK face, `subsetter` for the others, [`sfnt`]
//! for the table surgery), and writes it as a Type 0 font (ISO 32000-1, 9.7): the font
//! program, its descriptor, the glyph widths and a ToUnicode map.
//!
//! The dictionaries are written here rather than by printpdf because printpdf learns which
//! glyphs a font needs only from its own text operations, and the content streams are ours
//! (see `content`); what it knows about CFF programs (which are CID-keyed, their charsets)
//! is still asked of it.

mod cff;
mod sfnt;

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, RwLock};

use lopdf::{Dictionary, Object, ObjectId, Stream};
use rustybuzz::ttf_parser::{Tag, name_id};
use subsetter::GlyphRemapper;

use super::Sheet;
use super::tokens::{push_hex4, push_int};
use crate::render::RenderError;
use crate::render::fnv::Fnv;
use crate::render::fonts::{FaceId, FontFace, FontSet};
use cff::CidCff;

/// Per face: original glyph id -> the text it stands for (first non-empty one seen).
type GlyphUse<'a> = BTreeMap<FaceId, BTreeMap<u16, &'a str>>;

/// An embedded face: how its glyphs are coded in content streams, and its objects.
pub(super) struct Embedded {
    remap: GlyphRemapper,
    /// Content-stream code by new glyph id (`None`: the code is the new glyph id).
    codes: Option<BTreeMap<u16, u16>>,
    /// Advance widths in 1/1000 em by new glyph id, as `/W` gives them.
    widths: Vec<f32>,
    font: Font,
}

impl Embedded {
    /// The code that shows original glyph `gid`, and its advance in 1/1000 em as the
    /// viewer will move the pen (from `/W`).
    pub(super) fn code(&self, gid: u16) -> (u16, f32) {
        let new = self.remap.get(gid).unwrap_or(0);
        let code = code_of(self.codes.as_ref(), new);
        let width = self.widths.get(usize::from(new)).copied().unwrap_or(0.0);
        (code.unwrap_or(0), width)
    }
}

/// The content-stream code of new glyph id `new` (`codes`: a CFF charset's, else the id).
fn code_of(codes: Option<&BTreeMap<u16, u16>>, new: u16) -> Option<u16> {
    codes.map_or(Some(new), |c| c.get(&new).copied())
}

/// A subset font program and what its dictionaries say about it.
struct Font {
    /// `TAG+PostScriptName`.
    base_font: String,
    program: Program,
    /// `[(code, width)]` in ascending code order, and the ToUnicode CMap.
    widths: Vec<(u16, i64)>,
    to_unicode: Vec<u8>,
    /// Ascent, descent, cap height and bounding box in 1/1000 em; the StemV estimate.
    ascent: i64,
    descent: i64,
    cap_height: i64,
    bbox: [i64; 4],
    stem_v: i64,
}

/// A font program, as the PDF embeds it.
enum Program {
    /// TrueType outlines: `/FontFile2`, a `CIDFontType2` font.
    TrueType(Vec<u8>),
    /// A bare CID-keyed `CFF ` table: `/FontFile3 /CIDFontType0C`, a `CIDFontType0` font.
    CidCff(Vec<u8>),
    /// An `OTTO` sfnt with name-keyed CFF outlines: `/FontFile3 /OpenType`.
    OpenType(Vec<u8>),
}

/// Subsets every face the sheets use, by face.
pub(super) fn embed(
    fonts: &FontSet,
    sheets: &[Sheet<'_>],
) -> Result<BTreeMap<FaceId, Embedded>, RenderError> {
    glyphs_used(sheets)
        .iter()
        .map(|(&face_id, glyphs)| Ok((face_id, subset(fonts.face(face_id), glyphs)?)))
        .collect()
}

/// Adds each embedded face to `doc` as a Type 0 font, and returns the font resource
/// dictionary naming them `F<face id>` (the names `content` shows them by).
pub(super) fn add_fonts(
    doc: &mut lopdf::Document,
    fonts: BTreeMap<FaceId, Embedded>,
) -> Dictionary {
    let mut resources = Dictionary::new();
    for (face_id, embedded) in fonts {
        let id = add_font(doc, embedded.font);
        resources.set(format!("F{face_id}"), Object::Reference(id));
    }
    resources
}

fn add_font(doc: &mut lopdf::Document, font: Font) -> ObjectId {
    let file3 = |kind: &str| Dictionary::from_iter([("Subtype", Object::from(kind))]);
    let (subtype, file_key, file) = match font.program {
        Program::TrueType(bytes) => {
            let dict = Dictionary::from_iter([("Length1", Object::Integer(bytes.len() as i64))]);
            ("CIDFontType2", "FontFile2", Stream::new(dict, bytes))
        }
        Program::CidCff(bytes) => (
            "CIDFontType0",
            "FontFile3",
            Stream::new(file3("CIDFontType0C"), bytes),
        ),
        Program::OpenType(bytes) => (
            "CIDFontType0",
            "FontFile3",
            Stream::new(file3("OpenType"), bytes),
        ),
    };
    let file = doc.add_object(file);
    let [x_min, y_min, x_max, y_max] = font.bbox;
    let descriptor = Dictionary::from_iter([
        ("Type", "FontDescriptor".into()),
        ("FontName", font.base_font.as_str().into()),
        ("Ascent", Object::Integer(font.ascent)),
        ("Descent", Object::Integer(font.descent)),
        ("CapHeight", Object::Integer(font.cap_height)),
        ("ItalicAngle", Object::Integer(0)),
        // Nonsymbolic (ISO 32000-1, table 123): the glyphs are the standard Latin set's.
        ("Flags", Object::Integer(32)),
        ("StemV", Object::Integer(font.stem_v)),
        (
            "FontBBox",
            Object::Array(vec![x_min.into(), y_min.into(), x_max.into(), y_max.into()]),
        ),
        (file_key, Object::Reference(file)),
    ]);
    let descriptor = doc.add_object(descriptor);
    let to_unicode = doc.add_object(Stream::new(Dictionary::new(), font.to_unicode));
    let cid_font = Dictionary::from_iter([
        ("Type", "Font".into()),
        ("Subtype", subtype.into()),
        ("BaseFont", font.base_font.as_str().into()),
        (
            "CIDSystemInfo",
            Object::Dictionary(Dictionary::from_iter([
                ("Registry", Object::string_literal("Adobe")),
                ("Ordering", Object::string_literal("Identity")),
                ("Supplement", Object::Integer(0)),
            ])),
        ),
        ("FontDescriptor", Object::Reference(descriptor)),
        ("W", Object::Array(w_array(&font.widths))),
    ]);
    doc.add_object(Dictionary::from_iter([
        ("Type", "Font".into()),
        ("Subtype", "Type0".into()),
        ("BaseFont", font.base_font.as_str().into()),
        ("Encoding", "Identity-H".into()),
        (
            "DescendantFonts",
            Object::Array(vec![Object::Dictionary(cid_font)]),
        ),
        ("ToUnicode", Object::Reference(to_unicode)),
    ]))
}

/// `/W` (ISO 32000-1, 9.7.4.3): each run of consecutive codes as `first [w1 w2 ...]`.
fn w_array(widths: &[(u16, i64)]) -> Vec<Object> {
    let mut out = Vec::new();
    let mut run: Vec<Object> = Vec::new();
    let mut next = None;
    for &(code, width) in widths {
        if next != Some(code) {
            if !run.is_empty() {
                out.push(Object::Array(std::mem::take(&mut run)));
            }
            out.push(Object::Integer(i64::from(code)));
        }
        run.push(Object::Integer(width));
        next = code.checked_add(1);
    }
    if !run.is_empty() {
        out.push(Object::Array(run));
    }
    out
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
/// structure readers need (printpdf's own carries comments and PostScript resource headers
/// that cost a few hundred bytes per font).
fn to_unicode_cmap(entries: &[(u16, &str)]) -> Vec<u8> {
    let mut out = Vec::from(
        &b"/CIDInit/ProcSet findresource begin 12 dict begin begincmap\n\
         /CIDSystemInfo<</Registry(Adobe)/Ordering(UCS)/Supplement 0>>def\n\
         /CMapName/Adobe-Identity-UCS def/CMapType 2 def\n\
         1 begincodespacerange<0000><FFFF>endcodespacerange\n"[..],
    );
    for chunk in entries.chunks(100) {
        push_int(&mut out, chunk.len() as i64);
        out.extend_from_slice(b" beginbfchar\n");
        for (code, text) in chunk {
            out.push(b'<');
            push_hex4(&mut out, *code);
            out.extend_from_slice(b"><");
            for unit in text.encode_utf16() {
                push_hex4(&mut out, unit);
            }
            out.extend_from_slice(b">\n");
        }
        out.extend_from_slice(b"endbfchar\n");
    }
    out.extend_from_slice(b"endcmap CMapName currentdict/CMap defineresource pop end end");
    out
}

/// A glyph's advance as `/W` gives it, truncated to whole 1/1000 em; text positioning
/// compensates for the difference to the shaped advance.
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

/// Cuts the subset of `face` holding `glyphs` (original id -> the text it stands for).
fn subset(face: &FontFace, glyphs: &BTreeMap<u16, &str>) -> Result<Embedded, RenderError> {
    let mut remap = GlyphRemapper::new();
    // Same glyphs, same subset tag.
    let mut tag_hash = Fnv::default();
    tag_hash.write(face.ps_name.as_bytes());
    for &gid in glyphs.keys() {
        remap.remap(gid);
        tag_hash.write(&gid.to_be_bytes());
    }
    let prepared = Prepared::get(face);
    let malformed = || RenderError::Subset(format!("{}: malformed subset", face.ps_name));
    // A CID-keyed CFF face is cut by our own subsetter, which locates the font's
    // structure once per process (see `cff`), with an identity charset; `subsetter` is the
    // fallback, and printpdf says whether what it cut is CID-keyed, and its charset.
    let fast_cff = prepared.cid_cff.as_ref().and_then(|cff| {
        let gids: Vec<u16> = remap.remapped_gids().collect();
        cff.subset(&face.ps_name, &gids)
    });
    let (program, codes) = match fast_cff {
        Some(table) => (Program::CidCff(table), None),
        None => {
            let bytes = subsetter::subset(face.data, 0, &remap)
                .map_err(|e| RenderError::Subset(format!("{}: {e}", face.ps_name)))?;
            if !face.cff {
                let bytes = sfnt::replace_table(&bytes, b"name", &prepared.name_table)
                    .ok_or_else(malformed)?;
                (Program::TrueType(bytes), None)
            } else if let Some(table) = printpdf::extract_cid_keyed_cff(&bytes, 0) {
                let codes =
                    printpdf::cff_charset_gid_to_cid_map(&table, 0).ok_or_else(malformed)?;
                (Program::CidCff(table), Some(codes))
            } else {
                (Program::OpenType(bytes), None)
            }
        }
    };

    let widths: Vec<f32> = remap
        .remapped_gids()
        .map(|gid| pdf_width(face.advance(gid), face.units_per_em))
        .collect();
    let mut coded: Vec<(u16, i64, &str)> = glyphs
        .iter()
        .map(|(&gid, &text)| {
            let new = remap.get(gid).unwrap_or(0);
            let code = code_of(codes.as_ref(), new).ok_or_else(malformed)?;
            Ok((code, widths[usize::from(new)] as i64, text))
        })
        .collect::<Result<_, RenderError>>()?;
    coded.sort_unstable_by_key(|&(code, ..)| code);
    let texts: Vec<(u16, &str)> = coded
        .iter()
        .filter(|(.., text)| !text.is_empty())
        .map(|&(code, _, text)| (code, text))
        .collect();

    // The six-letter tag marks the embedded program as a subset (ISO 32000-1, 9.6.4).
    let tag: String = (0..6)
        .map(|i| char::from(b'A' + ((tag_hash.0 >> (i * 5)) % 26) as u8))
        .collect();
    let ttf: &rustybuzz::ttf_parser::Face<'_> = face.face.as_ref();
    let scale = |v: i16| (f32::from(v) * 1000.0 / face.units_per_em).round() as i64;
    let bbox = ttf.global_bounding_box();
    // No font table holds the vertical stem width; producers estimate it from the
    // weight class (about 88 at 400, 166 at 700).
    let weight = f32::from(ttf.weight().to_number());
    let font = Font {
        base_font: format!("{tag}+{}", face.ps_name),
        program,
        widths: coded
            .iter()
            .map(|&(code, width, _)| (code, width))
            .collect(),
        to_unicode: to_unicode_cmap(&texts),
        ascent: scale(ttf.ascender()),
        descent: scale(ttf.descender()),
        cap_height: scale(ttf.capital_height().unwrap_or(ttf.ascender())),
        bbox: [bbox.x_min, bbox.y_min, bbox.x_max, bbox.y_max].map(scale),
        stem_v: if weight == 0.0 {
            80
        } else {
            50 + (weight / 65.0).powi(2).round() as i64
        },
    };
    Ok(Embedded {
        remap,
        codes,
        widths,
        font,
    })
}
