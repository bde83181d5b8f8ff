//! [`Renderer`]: validates a badge, lays it out and hands the layout to the PDF or SVG writer.

use super::fonts::{FontSet, Style};
use super::layout::{self, Content, Fixed};
use super::model::{
    Badge, BadgeType, EventInfo, Field, MAX_ID_CHARS, MAX_MARKS, MAX_TEXT_CHARS, Paper, RenderError,
};
use super::{impose, pdf, svg, text};

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
}
