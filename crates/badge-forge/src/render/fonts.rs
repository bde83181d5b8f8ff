//! The bundled font faces, parsed once per process, the fonts a layout names (read once, at
//! load), and per-cluster font fallback.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, RwLock};

use rustybuzz::{Direction, Face, Language, Script, ShapePlan};

/// Index of a face in [`FontSet::faces`].
pub(crate) type FaceId = u8;

/// The face a text asks for. Each has its own fallback chain over the scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// Event line (city), company.
    Regular,
    /// Name, event title, type label.
    Bold,
    /// The layout's font of this index ([`BrandFont`]), then the bundled chain of its weight.
    Brand(u8),
}

/// The most fonts one layout may name.
pub(crate) const MAX_BRAND_FONTS: usize = 16;

/// A font a layout names (`[fonts]`): its file's bytes, kept for the process.
#[derive(Debug, Clone)]
pub(crate) struct BrandFont {
    /// The name text elements use (`font = "brand"`).
    pub(crate) name: String,
    pub(crate) data: &'static [u8],
    /// PostScript name for the PDF's `/BaseFont` (letters, digits and `-` only).
    pub(crate) ps_name: Arc<str>,
    /// Bold or heavier (`OS/2` weight 600 and up): falls back on the bold chain.
    pub(crate) bold: bool,
}

/// Font files read so far, by content: a layout loaded again (tests, a reloaded renderer)
/// reuses the bytes instead of keeping another copy for the process. The bytes are leaked on
/// purpose: shaped faces (`Face<'static>`) borrow them for as long as any renderer lives.
static BRAND_FILES: Mutex<Vec<&'static [u8]>> = Mutex::new(Vec::new());

impl BrandFont {
    /// Checks that `bytes` is a font the renderer can shape and embed (TrueType or OpenType,
    /// the first face of a collection), and keeps it for the process.
    pub(crate) fn new(name: &str, bytes: Vec<u8>) -> Result<BrandFont, String> {
        let (bold, ps_name) = {
            let face = Face::from_slice(&bytes, 0)
                .ok_or("not a TrueType or OpenType font (or a damaged one)")?;
            let tables = face.tables();
            if tables.cmap.is_none() || tables.hmtx.is_none() {
                return Err("the font has no character map or no glyph widths".into());
            }
            if tables.glyf.is_none() && tables.cff.is_none() {
                return Err("the font has no TrueType or CFF outlines".into());
            }
            let ps_name: String = face
                .names()
                .into_iter()
                .filter(|n| n.name_id == rustybuzz::ttf_parser::name_id::POST_SCRIPT_NAME)
                .find_map(|n| n.to_string())
                .unwrap_or_default()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                .take(63)
                .collect();
            (face.weight().to_number() >= 600, ps_name)
        };
        let ps_name = if ps_name.is_empty() {
            "LayoutFont".to_string()
        } else {
            ps_name
        };
        let mut files = BRAND_FILES.lock().unwrap_or_else(|e| e.into_inner());
        let kept = files
            .iter()
            .find(|data| **data == bytes.as_slice())
            .copied();
        let data = kept.unwrap_or_else(|| {
            #[expect(
                clippy::disallowed_methods,
                reason = "font bytes, never SQL text: shaped faces borrow them for the process"
            )]
            let kept: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            files.push(kept);
            kept
        });
        Ok(BrandFont {
            name: name.to_string(),
            data,
            ps_name: ps_name.into(),
            bold,
        })
    }
}

/// A bundled face: its file bytes (compiled in) and what the PDF calls it.
struct FaceSpec {
    /// PostScript name, used as the PDF `/BaseFont` after the subset tag.
    ps_name: &'static str,
    data: &'static [u8],
    /// Preferred for clusters that ask for emoji presentation (U+FE0F).
    emoji: bool,
}

macro_rules! bundled {
    ($file:literal, $ps:literal, $emoji:literal) => {
        FaceSpec {
            ps_name: $ps,
            data: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fonts/", $file)),
            emoji: $emoji,
        }
    };
}

/// How many faces are bundled.
pub(crate) const FACE_COUNT: usize = 10;

/// Order matters: it is the [`FaceId`] of each face.
const SPECS: [FaceSpec; FACE_COUNT] = [
    bundled!("NotoSans-Regular.ttf", "NotoSans-Regular", false),
    bundled!("NotoSans-Bold.ttf", "NotoSans-Bold", false),
    bundled!(
        "NotoSansArabic-Regular.ttf",
        "NotoSansArabic-Regular",
        false
    ),
    bundled!("NotoSansArabic-Bold.ttf", "NotoSansArabic-Bold", false),
    bundled!(
        "NotoSansHebrew-Regular.ttf",
        "NotoSansHebrew-Regular",
        false
    ),
    bundled!("NotoSansHebrew-Bold.ttf", "NotoSansHebrew-Bold", false),
    bundled!("NotoSansCJKsc-Bold.otf", "NotoSansCJKsc-Bold", false),
    bundled!("NotoEmoji-Bold.ttf", "NotoEmoji-Bold", true),
    bundled!(
        "NotoSansDevanagari-Regular.ttf",
        "NotoSansDevanagari-Regular",
        false
    ),
    bundled!(
        "NotoSansDevanagari-Bold.ttf",
        "NotoSansDevanagari-Bold",
        false
    ),
];

/// Fallback order per style: the first face that has every glyph of a cluster draws it.
const REGULAR_CHAIN: [FaceId; 6] = [0, 2, 4, 8, 6, 7];
const BOLD_CHAIN: [FaceId; 6] = [1, 3, 5, 9, 6, 7];
/// The face whose metrics (cap height, ascender) set the type scale.
pub(crate) const PRIMARY_BOLD: FaceId = 1;

/// One parsed face.
pub(crate) struct FontFace {
    pub(crate) ps_name: Arc<str>,
    pub(crate) data: &'static [u8],
    pub(crate) face: Face<'static>,
    pub(crate) units_per_em: f32,
    pub(crate) emoji: bool,
    /// CFF outlines (embedded as CIDFontType0) rather than TrueType `glyf`.
    pub(crate) cff: bool,
    /// [`FontFace::ink_bottom`] of the glyphs measured so far: outlining a glyph costs
    /// microseconds, and names repeat their glyphs (at most one entry per glyph of the face).
    ink_bottoms: RwLock<HashMap<u16, Option<i16>>>,
}

impl FontFace {
    /// Advance of `gid` in font units (0 for an unknown glyph).
    pub(crate) fn advance(&self, gid: u16) -> u16 {
        self.face
            .glyph_hor_advance(rustybuzz::ttf_parser::GlyphId(gid))
            .unwrap_or(0)
    }

    /// The lowest point of `gid`'s outline in font units, `None` for a glyph with no
    /// outline; each glyph is outlined once. (A `glyf` glyph's header also gives its
    /// extent, without outlining, but Noto's headers are off by a unit on some glyphs.)
    pub(crate) fn ink_bottom(&self, gid: u16) -> Option<i16> {
        let known = self
            .ink_bottoms
            .read()
            .ok()
            .and_then(|b| b.get(&gid).copied());
        known.unwrap_or_else(|| {
            let id = rustybuzz::ttf_parser::GlyphId(gid);
            let bottom = self.face.glyph_bounding_box(id).map(|b| b.y_min);
            if let Ok(mut bottoms) = self.ink_bottoms.write() {
                bottoms.insert(gid, bottom);
            }
            bottom
        })
    }

    /// Whether the face's cmap maps `c`.
    pub(crate) fn has_char(&self, c: char) -> bool {
        self.face.glyph_index(c).is_some()
    }

    /// Cap height in em (falls back to 0.7 em when OS/2 does not say).
    pub(crate) fn cap_height(&self) -> f32 {
        self.face
            .capital_height()
            .map_or(0.7, |h| f32::from(h) / self.units_per_em)
    }
}

/// Every bundled face, and any the layout names, parsed.
pub(crate) struct FontSet {
    pub(crate) faces: Vec<FontFace>,
    /// The fallback chain of each layout font: its face, then the bundled chain of its weight.
    brand_chains: Vec<Vec<FaceId>>,
    /// Compiled shaping plans (which lookups apply for a face, direction, script and
    /// language): building one costs as much as shaping a name, and a badge run needs
    /// only a handful of distinct ones.
    plans: RwLock<HashMap<PlanKey, Arc<ShapePlan>>>,
}

type PlanKey = (FaceId, bool, u32, Option<String>);

/// Parsed once per process: parsing only reads table directories, the glyph data stays in
/// the binary's read-only pages and is paged in on demand.
static FONTS: LazyLock<Result<Arc<FontSet>, &'static str>> =
    LazyLock::new(|| FontSet::parse(&[]).map(Arc::new));

impl FontSet {
    /// The process-wide set of bundled faces, or the name of the face that failed to parse.
    pub(crate) fn get() -> Result<&'static Arc<FontSet>, &'static str> {
        FONTS.as_ref().map_err(|name| *name)
    }

    /// The bundled faces and a layout's own (the bundled set itself when it names none).
    pub(crate) fn with_brand(brand: &[BrandFont]) -> Result<Arc<FontSet>, &'static str> {
        if brand.is_empty() {
            return FontSet::get().cloned();
        }
        FontSet::parse(brand).map(Arc::new)
    }

    fn parse(brand: &[BrandFont]) -> Result<FontSet, &'static str> {
        let specs = SPECS
            .iter()
            .map(|spec| (Arc::from(spec.ps_name), spec.data, spec.emoji))
            .chain(brand.iter().map(|b| (b.ps_name.clone(), b.data, false)));
        let faces = specs
            .map(|(ps_name, data, emoji)| {
                // Bundled faces are compiled in and a layout's were checked when it loaded.
                let face = Face::from_slice(data, 0).ok_or("a font no longer parses")?;
                Ok::<_, &'static str>(FontFace {
                    ps_name,
                    data,
                    units_per_em: f32::from(face.units_per_em() as u16),
                    cff: face.tables().cff.is_some(),
                    ink_bottoms: RwLock::default(),
                    emoji,
                    face,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let brand_chains = brand
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let bundled = if b.bold { &BOLD_CHAIN } else { &REGULAR_CHAIN };
                let own = (FACE_COUNT + i) as FaceId;
                std::iter::once(own)
                    .chain(bundled.iter().copied())
                    .collect()
            })
            .collect();
        Ok(FontSet {
            faces,
            brand_chains,
            plans: RwLock::new(HashMap::new()),
        })
    }

    /// The shaping plan for `face` and a buffer's direction, script and language.
    pub(crate) fn plan(
        &self,
        face: FaceId,
        direction: Direction,
        script: Script,
        language: Option<&Language>,
    ) -> Arc<ShapePlan> {
        let key = (
            face,
            direction == Direction::RightToLeft,
            script.tag().as_u32(),
            language.map(|l| l.as_str().to_string()),
        );
        if let Some(plan) = self.plans.read().ok().and_then(|p| p.get(&key).cloned()) {
            return plan;
        }
        let plan = Arc::new(ShapePlan::new(
            &self.face(face).face,
            direction,
            Some(script),
            language,
            &[],
        ));
        if let Ok(mut plans) = self.plans.write() {
            plans.insert(key, Arc::clone(&plan));
        }
        plan
    }

    pub(crate) fn face(&self, id: FaceId) -> &FontFace {
        &self.faces[usize::from(id)]
    }

    pub(crate) fn chain(&self, style: Style) -> &[FaceId] {
        match style {
            Style::Regular => &REGULAR_CHAIN,
            Style::Bold => &BOLD_CHAIN,
            Style::Brand(i) => &self.brand_chains[usize::from(i)],
        }
    }

    /// Picks the face for one grapheme cluster: emoji presentation first when asked for,
    /// then the face of the previous cluster for script-neutral clusters (spaces,
    /// punctuation, digits) so they shape with their neighbours, then the chain order.
    ///
    /// `Err(c)` names the first character that no face of the chain can draw.
    pub(crate) fn pick(
        &self,
        style: Style,
        cluster: &str,
        previous: Option<FaceId>,
    ) -> Result<FaceId, char> {
        let covers = |id: FaceId| {
            let face = self.face(id);
            cluster
                .chars()
                .all(|c| is_default_ignorable(c) || face.has_char(c))
        };
        let chain = self.chain(style);
        if cluster.contains('\u{FE0F}')
            && let Some(&id) = chain.iter().find(|&&id| self.face(id).emoji)
            && covers(id)
        {
            return Ok(id);
        }
        // Not after an emoji face, though: its spaces and punctuation are emoji-wide (a
        // space after "🚀" would print as a hole two letters wide).
        if !cluster.chars().any(char::is_alphabetic)
            && let Some(prev) = previous
            && !self.face(prev).emoji
            && covers(prev)
        {
            return Ok(prev);
        }
        if let Some(&id) = chain.iter().find(|&&id| covers(id)) {
            return Ok(id);
        }
        // No single face draws the whole cluster: blame the first character the face of
        // its base character cannot draw (or the base itself when nothing has it).
        let base = cluster.chars().next().unwrap_or('\u{FFFD}');
        let base_face = chain.iter().find(|&&id| self.face(id).has_char(base));
        let culprit = match base_face {
            Some(&id) => cluster
                .chars()
                .find(|&c| !is_default_ignorable(c) && !self.face(id).has_char(c))
                .unwrap_or(base),
            None => base,
        };
        Err(culprit)
    }
}

/// Characters that are invisible formatting controls: shapers drop them, so no font
/// needs a glyph for them (ZWJ, ZWNJ, variation selectors, bidi marks, tags, ...).
pub(crate) fn is_default_ignorable(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}'
        | '\u{17B4}' | '\u{17B5}' | '\u{180B}'..='\u{180F}'
        | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}'
        | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}'
        | '\u{1BCA0}'..='\u{1BCA3}' | '\u{1D173}'..='\u{1D17A}'
        | '\u{E0000}'..='\u{E0FFF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bundled_face_parses() {
        let set = FontSet::get().expect("bundled fonts parse");
        assert_eq!(set.faces.len(), SPECS.len());
        assert!(set.face(6).cff, "the CJK face has CFF outlines");
        assert!(!set.face(0).cff);
    }

    #[test]
    fn fallback_follows_the_script() {
        let set = FontSet::get().unwrap();
        assert_eq!(set.pick(Style::Bold, "é", None), Ok(1));
        assert_eq!(set.pick(Style::Bold, "ع", None), Ok(3));
        assert_eq!(set.pick(Style::Regular, "ש", None), Ok(4));
        assert_eq!(set.pick(Style::Bold, "山", None), Ok(6));
        assert_eq!(set.pick(Style::Bold, "한", None), Ok(6));
        assert_eq!(set.pick(Style::Bold, "🎉", None), Ok(7));
        // A space after Arabic stays in the Arabic face.
        assert_eq!(set.pick(Style::Bold, " ", Some(3)), Ok(3));
        // Emoji presentation selector prefers the emoji face even for a text symbol.
        assert_eq!(set.pick(Style::Bold, "\u{2764}\u{FE0F}", None), Ok(7));
        // Private-use characters are in no face.
        assert_eq!(set.pick(Style::Bold, "\u{E000}", None), Err('\u{E000}'));
    }

    #[test]
    fn ink_bottom_is_where_the_outline_ends() {
        // Measured, then remembered: for the first 1,000 glyphs of every bundled face,
        // asked twice, it is the outline's lowest point.
        let set = FontSet::get().unwrap();
        let mut compared = 0;
        for face in &set.faces {
            let count = face.face.number_of_glyphs().min(1_000);
            for _ in 0..2 {
                for gid in 0..count {
                    let outlined = face
                        .face
                        .glyph_bounding_box(rustybuzz::ttf_parser::GlyphId(gid))
                        .map(|b| b.y_min);
                    assert_eq!(
                        face.ink_bottom(gid),
                        outlined,
                        "{} glyph {gid}",
                        face.ps_name
                    );
                    compared += 1;
                }
            }
        }
        assert!(compared > 15_000, "{compared} glyphs compared");
    }
}
