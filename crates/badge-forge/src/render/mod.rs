//! Badge rendering: one 4 in × 3 in badge as a PDF, sheets of badges for a print shop,
//! and an SVG preview drawn from the same layout.
//!
//! # Pipeline
//!
//! 1. **Validate** ([`text::clean`]): NFC-normalise, collapse whitespace, reject control
//!    characters, blank names and names longer than [`MAX_TEXT_CHARS`]. Every such
//!    failure is a permanent [`RenderError`].
//! 2. **Shape** ([`text`]): the Unicode bidi algorithm orders runs visually; each grapheme
//!    cluster gets the first bundled face that has all its glyphs (Latin/Greek/Cyrillic,
//!    Arabic, Hebrew, CJK, emoji); rustybuzz shapes each run (joining, ligatures, marks,
//!    kerning). A character no bundled font has is reported with its code point
//!    ([`RenderError::MissingGlyph`]), never drawn as a box.
//! 3. **Lay out** ([`layout`]): the name is the largest element, shrunk to fit and, below a
//!    threshold size, wrapped onto the most balanced two lines.
//! 4. **Draw**: [`pdf`] writes the layout with printpdf and embeds font *subsets*;
//!    [`svg`] writes the same layout through the askama template `templates/badge.svg`.
//!
//! # Fonts are compiled into the binary
//!
//! The faces in `fonts/` are embedded with `include_bytes!` rather than read from disk at
//! run time:
//!
//! - *Robust deployment*: the worker is one file; there is no font directory to ship,
//!   mount or keep in step with the code, and no way for a deployment to render every
//!   badge with a missing or different font (which would fail every job or silently
//!   change every badge).
//! - *Memory*: the 15 MB of font data live in the binary's read-only pages, which the OS
//!   pages in on demand and can drop at any time; only the glyphs actually used become
//!   resident, instead of a heap copy of every font in every worker process.
//! - *Simplicity*: `&'static` font data lets the parsed faces (which borrow their bytes)
//!   be built once per process ([`fonts::FontSet`]) and shared by every [`Renderer`]
//!   and thread, with no self-referential structs and no I/O error paths at render time.
//!
//! The cost is a larger binary (about 16 MB more) and a rebuild to change a font, which is
//! the point: fonts are part of the design. No fontconfig, no network, no file access.

mod cff;
mod fonts;
mod impose;
mod layout;
mod pdf;
mod serial;
mod sfnt;
mod svg;
mod text;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use fonts::{FontSet, Style};
use layout::{Content, Fixed};

/// The longest name or company accepted, in characters (after NFC normalisation).
///
/// A 200-character name still renders (in two lines of small type); past this limit a
/// name is not a name, and no badge could print it legibly.
pub const MAX_TEXT_CHARS: usize = 256;

/// The longest badge id accepted, in characters; it is encoded in the QR code.
pub const MAX_ID_CHARS: usize = 128;

/// The most combining marks one character of a name or company may carry. Names need a few
/// (Vietnamese tones, Hebrew points, Indic conjuncts); a stack of more ("Zalgo" text) is drawn
/// above and below the line until it leaves the badge.
pub const MAX_MARKS: usize = 6;

/// The kind of badge, shown as the coloured band.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BadgeType {
    /// A conference attendee.
    Attendee,
    /// A speaker.
    Speaker,
    /// A sponsor's representative.
    Sponsor,
    /// A member of the organising team.
    Organizer,
}

impl BadgeType {
    /// Every badge type, in band-colour order.
    pub const ALL: [BadgeType; 4] = [
        BadgeType::Attendee,
        BadgeType::Speaker,
        BadgeType::Sponsor,
        BadgeType::Organizer,
    ];

    /// The lowercase name used in job args (`"speaker"`).
    pub fn as_str(self) -> &'static str {
        match self {
            BadgeType::Attendee => "attendee",
            BadgeType::Speaker => "speaker",
            BadgeType::Sponsor => "sponsor",
            BadgeType::Organizer => "organizer",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for BadgeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown badge type name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown badge type {0:?} (expected attendee, speaker, sponsor or organizer)")]
pub struct UnknownBadgeType(pub String);

impl FromStr for BadgeType {
    type Err = UnknownBadgeType;

    /// Parses the lowercase name, ignoring ASCII case and surrounding whitespace.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim();
        BadgeType::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| UnknownBadgeType(s.to_string()))
    }
}

/// One badge to print.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Badge {
    /// Identifier, encoded in the QR code (never used for anything on disk here).
    #[serde(alias = "badge_id")]
    pub id: String,
    /// The attendee's name, in any script.
    pub name: String,
    /// Company or affiliation; may be empty.
    #[serde(default)]
    pub company: String,
    /// Kind of badge (`"type"` in job args).
    #[serde(rename = "type")]
    pub badge_type: BadgeType,
}

/// The event printed at the top of every badge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventInfo {
    /// Conference name, e.g. "Oban Conf 2026".
    pub title: String,
    /// City, e.g. "Edinburgh"; may be empty.
    pub city: String,
}

impl Default for EventInfo {
    fn default() -> Self {
        EventInfo {
            title: "Oban Conf 2026".to_string(),
            city: "Edinburgh".to_string(),
        }
    }
}

/// Paper for [`Renderer::render_sheet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Paper {
    /// US Letter portrait, 6-up 4 in × 3 in badges (Avery 5392 layout).
    Letter,
    /// A4 landscape, 4-up A6 badges.
    A4,
}

impl FromStr for Paper {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "letter" => Ok(Paper::Letter),
            "a4" => Ok(Paper::A4),
            _ => Err(format!("unknown paper {s:?} (expected letter or a4)")),
        }
    }
}

/// Which input a validation error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// [`Badge::id`].
    Id,
    /// [`Badge::name`].
    Name,
    /// [`Badge::company`].
    Company,
    /// [`EventInfo::title`].
    EventTitle,
    /// [`EventInfo::city`].
    EventCity,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Id => "badge id",
            Field::Name => "name",
            Field::Company => "company",
            Field::EventTitle => "event title",
            Field::EventCity => "event city",
        })
    }
}

/// Why a badge could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The field is empty or only whitespace.
    #[error("{field} is empty")]
    Empty {
        /// The offending input.
        field: Field,
    },
    /// The field contains a control character (newline, tab, NUL, ...).
    #[error("{field} contains control character U+{:04X}", u32::from(*ch))]
    ControlCharacter {
        /// The offending input.
        field: Field,
        /// The first control character found.
        ch: char,
    },
    /// The field is longer than anything printable.
    #[error("{field} is {len} characters long; at most {max} can be printed")]
    TooLong {
        /// The offending input.
        field: Field,
        /// Its length in characters.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// One character carries more combining marks than can be printed.
    #[error("{field} has {marks} combining marks on {ch:?}; at most {max} can be printed")]
    TooManyMarks {
        /// The offending input.
        field: Field,
        /// The base character of the cluster.
        ch: char,
        /// How many marks it carries.
        marks: usize,
        /// The limit.
        max: usize,
    },
    /// No bundled font has a glyph for a character.
    #[error("no bundled font can draw {ch:?} (U+{:04X}) in the {field}", u32::from(*ch))]
    MissingGlyph {
        /// The offending input.
        field: Field,
        /// The character.
        ch: char,
    },
    /// The id cannot be encoded as a QR code.
    #[error("badge id cannot be encoded as a QR code: {0}")]
    QrCode(String),
    /// A sheet was requested with no badges.
    #[error("a sheet needs at least one badge")]
    NoBadges,
    /// One badge of a sheet failed.
    #[error("badge {index} (id {id:?}): {source}")]
    InSheet {
        /// Position of the badge in the input slice.
        index: usize,
        /// Its id.
        id: String,
        /// What went wrong.
        source: Box<RenderError>,
    },
    /// A bundled font failed to parse (a build defect, not bad input).
    #[error("bundled font {0} failed to parse")]
    Font(&'static str),
    /// Font subsetting failed.
    #[error("font subsetting failed: {0}")]
    Subset(String),
    /// printpdf reported an error while writing.
    #[error("PDF writing failed: {0}")]
    Pdf(String),
    /// The SVG template failed.
    #[error("SVG template failed: {0}")]
    Svg(String),
}

impl RenderError {
    /// `true` when the input itself can never render (bad name, unknown glyph, ...):
    /// retrying is pointless. `false` for failures of the renderer itself.
    pub fn is_permanent(&self) -> bool {
        match self {
            RenderError::Empty { .. }
            | RenderError::ControlCharacter { .. }
            | RenderError::TooLong { .. }
            | RenderError::TooManyMarks { .. }
            | RenderError::MissingGlyph { .. }
            | RenderError::QrCode(_)
            | RenderError::NoBadges => true,
            RenderError::InSheet { source, .. } => source.is_permanent(),
            RenderError::Font(_)
            | RenderError::Subset(_)
            | RenderError::Pdf(_)
            | RenderError::Svg(_) => false,
        }
    }
}

/// The size of a single badge: 4 in × 3 in, landscape.
const BADGE_WIDTH: f32 = 288.0;
const BADGE_HEIGHT: f32 = 216.0;

/// Renders badges. Build one per process (fonts are parsed and the fixed text shaped
/// once) and share it (`Arc<Renderer>`); it is `Send + Sync` and rendering takes `&self`.
pub struct Renderer {
    event: EventInfo,
    fonts: &'static FontSet,
    fixed: Fixed,
}

/// A badge's inputs after validation.
struct Valid {
    id: String,
    name: String,
    company: String,
    kind: BadgeType,
}

impl Renderer {
    /// Parses the bundled fonts (once per process) and shapes the event line and labels.
    ///
    /// Fails if the event title or city does not validate like a name does.
    pub fn new(event: EventInfo) -> Result<Self, RenderError> {
        let fonts = FontSet::get().map_err(RenderError::Font)?;
        let title = text::clean(Field::EventTitle, &event.title, MAX_TEXT_CHARS, true)?;
        let city = text::clean(Field::EventCity, &event.city, MAX_TEXT_CHARS, false)?;
        let city_line = if city.is_empty() {
            String::new()
        } else {
            format!(" \u{00B7} {city}")
        };
        let label = |kind: BadgeType| {
            let upper = kind.as_str().to_ascii_uppercase();
            text::shape_line(
                fonts,
                &upper,
                Style::Bold,
                layout::LABEL_TRACKING,
                Field::EventTitle,
            )
        };
        let fixed = Fixed {
            title: text::shape_line(fonts, &title, Style::Bold, 0.0, Field::EventTitle)?,
            city: text::shape_line(fonts, &city_line, Style::Regular, 0.0, Field::EventCity)?,
            labels: [
                label(BadgeType::Attendee)?,
                label(BadgeType::Speaker)?,
                label(BadgeType::Sponsor)?,
                label(BadgeType::Organizer)?,
            ],
        };
        Ok(Renderer {
            event: EventInfo { title, city },
            fonts,
            fixed,
        })
    }

    /// The event this renderer prints (normalised).
    pub fn event(&self) -> &EventInfo {
        &self.event
    }

    fn validate(badge: &Badge) -> Result<Valid, RenderError> {
        let id = &badge.id;
        if let Some(ch) = id.chars().find(|c| c.is_control()) {
            return Err(RenderError::ControlCharacter {
                field: Field::Id,
                ch,
            });
        }
        if id.trim().is_empty() {
            return Err(RenderError::Empty { field: Field::Id });
        }
        let len = id.chars().count();
        if len > MAX_ID_CHARS {
            return Err(RenderError::TooLong {
                field: Field::Id,
                len,
                max: MAX_ID_CHARS,
            });
        }
        let name = text::clean(Field::Name, &badge.name, MAX_TEXT_CHARS, true)?;
        let company = text::clean(Field::Company, &badge.company, MAX_TEXT_CHARS, false)?;
        check_marks(Field::Name, &name)?;
        check_marks(Field::Company, &company)?;
        Ok(Valid {
            id: id.clone(),
            name,
            company,
            kind: badge.badge_type,
        })
    }

    fn compose(
        &self,
        valid: &Valid,
        width: f32,
        height: f32,
    ) -> Result<layout::BadgeLayout<'_>, RenderError> {
        let content = Content {
            id: &valid.id,
            name: &valid.name,
            company: &valid.company,
            kind: valid.kind,
        };
        layout::compose(self.fonts, &self.fixed, &content, width, height)
    }

    /// Renders one badge as a single-page 4 in × 3 in PDF.
    pub fn render(&self, badge: &Badge) -> Result<Vec<u8>, RenderError> {
        let valid = Self::validate(badge)?;
        let layout = self.compose(&valid, BADGE_WIDTH, BADGE_HEIGHT)?;
        let sheet = pdf::Sheet {
            width: BADGE_WIDTH,
            height: BADGE_HEIGHT,
            badges: vec![pdf::Placement {
                layout,
                x: 0.0,
                y: 0.0,
            }],
            cut_marks: Vec::new(),
        };
        pdf::write(self.fonts, &valid.name, &[sheet])
    }

    /// Imposes `badges` on as many pages of `paper` as needed (6-up 4 in × 3 in on
    /// Letter, 4-up A6 on A4), with cut marks, as one PDF.
    ///
    /// Fails on the first badge that cannot render ([`RenderError::InSheet`] says which).
    pub fn render_sheet(&self, badges: &[Badge], paper: Paper) -> Result<Vec<u8>, RenderError> {
        if badges.is_empty() {
            return Err(RenderError::NoBadges);
        }
        let imposition = impose::Imposition::for_paper(paper);
        let valid = badges
            .iter()
            .enumerate()
            .map(|(index, badge)| {
                Self::validate(badge).map_err(|e| RenderError::InSheet {
                    index,
                    id: badge.id.clone(),
                    source: Box::new(e),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let cut_marks = imposition.cut_marks();
        let mut sheets = Vec::new();
        for (page, chunk) in valid.chunks(imposition.per_page()).enumerate() {
            let mut placements = Vec::with_capacity(chunk.len());
            for (slot, v) in chunk.iter().enumerate() {
                let (x, y) = imposition.cell(slot);
                let layout = self
                    .compose(v, imposition.cell_width, imposition.cell_height)
                    .map_err(|e| RenderError::InSheet {
                        index: page * imposition.per_page() + slot,
                        id: v.id.clone(),
                        source: Box::new(e),
                    })?;
                placements.push(pdf::Placement { layout, x, y });
            }
            sheets.push(pdf::Sheet {
                width: imposition.page_width,
                height: imposition.page_height,
                badges: placements,
                cut_marks: cut_marks.clone(),
            });
        }
        let title = format!("{} badges ({})", self.event.title, badges.len());
        pdf::write(self.fonts, &title, &sheets)
    }

    /// Renders one badge as a standalone SVG document (the web preview), from the same
    /// layout as [`Renderer::render`]. Text is escaped; glyphs are outlines.
    pub fn render_svg(&self, badge: &Badge) -> Result<String, RenderError> {
        let valid = Self::validate(badge)?;
        let layout = self.compose(&valid, BADGE_WIDTH, BADGE_HEIGHT)?;
        let mut title = valid.name.clone();
        if !valid.company.is_empty() {
            title.push_str(", ");
            title.push_str(&valid.company);
        }
        title.push_str(&format!(
            " \u{2014} {} badge, {}",
            valid.kind, self.event.title
        ));
        svg::write(self.fonts, &layout, title)
    }

    /// The ink box `[x0, y0, x1, y1]` of every glyph [`Renderer::render`] draws for `badge`,
    /// in points on the 288 × 216 pt badge (origin top-left, y down); glyphs without an
    /// outline (spaces, bitmap emoji) have none. Lets tests and the `badge_layout` fuzz target
    /// check that no name or company draws outside the badge.
    pub fn ink_boxes(&self, badge: &Badge) -> Result<Vec<[f32; 4]>, RenderError> {
        let valid = Self::validate(badge)?;
        let layout = self.compose(&valid, BADGE_WIDTH, BADGE_HEIGHT)?;
        let mut boxes = Vec::new();
        for run in &layout.runs {
            for glyph in &run.line.glyphs {
                let face = self.fonts.face(glyph.face);
                let gid = rustybuzz::ttf_parser::GlyphId(glyph.gid);
                let Some(ink) = face.face.glyph_bounding_box(gid) else {
                    continue;
                };
                let (x, y) = (
                    run.x + glyph.x * run.size,
                    run.baseline - glyph.y * run.size,
                );
                let scale = run.size / face.units_per_em;
                boxes.push([
                    x + f32::from(ink.x_min) * scale,
                    y - f32::from(ink.y_max) * scale,
                    x + f32::from(ink.x_max) * scale,
                    y - f32::from(ink.y_min) * scale,
                ]);
            }
        }
        Ok(boxes)
    }
}

/// Refuses a grapheme cluster with more than [`MAX_MARKS`] combining marks.
fn check_marks(field: Field, text: &str) -> Result<(), RenderError> {
    use unicode_normalization::char::is_combining_mark;
    use unicode_segmentation::UnicodeSegmentation;
    for cluster in text.graphemes(true) {
        let marks = cluster.chars().filter(|&c| is_combining_mark(c)).count();
        if marks > MAX_MARKS {
            return Err(RenderError::TooManyMarks {
                field,
                ch: cluster.chars().next().unwrap_or(' '),
                marks,
                max: MAX_MARKS,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stacked_marks_are_refused_and_real_ones_kept() {
        // Found by the `badge_layout` fuzz target: twenty marks on one digit stacked below
        // the badge's bottom edge.
        let zalgo = format!("F1{} Zalgo", "\u{34c}\u{34d}\u{34e}\u{350}".repeat(5));
        assert_eq!(
            check_marks(Field::Name, &zalgo),
            Err(RenderError::TooManyMarks {
                field: Field::Name,
                ch: '1',
                marks: 20,
                max: MAX_MARKS
            })
        );
        for name in [
            "Nguy\u{1ec5}n V\u{103}n \u{1eea}",
            "\u{5e9}\u{5c1}\u{5b8}\u{5dc}\u{5d5}\u{5b9}\u{5dd}",
            "\u{938}\u{94d}\u{924}\u{94d}\u{930}\u{940}",
        ] {
            assert_eq!(check_marks(Field::Name, name), Ok(()), "{name}");
        }
    }

    #[test]
    fn renderer_is_shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Renderer>();
    }

    #[test]
    fn badge_type_round_trips() {
        for t in BadgeType::ALL {
            assert_eq!(t.to_string().parse::<BadgeType>(), Ok(t));
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{t}\""));
        }
        assert_eq!(" Speaker ".parse::<BadgeType>(), Ok(BadgeType::Speaker));
        assert!("vip".parse::<BadgeType>().is_err());
    }

    #[test]
    fn badge_reads_job_args() {
        let badge: Badge = serde_json::from_str(
            r#"{"badge_id": "b-1", "name": "Ada", "type": "sponsor", "extra": 1}"#,
        )
        .unwrap();
        assert_eq!(badge.id, "b-1");
        assert_eq!(badge.company, "");
        assert_eq!(badge.badge_type, BadgeType::Sponsor);
    }

    #[test]
    fn permanence() {
        assert!(RenderError::Empty { field: Field::Name }.is_permanent());
        assert!(!RenderError::Pdf("x".into()).is_permanent());
        let nested = RenderError::InSheet {
            index: 0,
            id: "a".into(),
            source: Box::new(RenderError::MissingGlyph {
                field: Field::Name,
                ch: '\u{E000}',
            }),
        };
        assert!(nested.is_permanent());
        assert_eq!(
            nested.to_string(),
            "badge 0 (id \"a\"): no bundled font can draw '\\u{e000}' (U+E000) in the name"
        );
    }
}
