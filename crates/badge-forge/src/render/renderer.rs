//! [`Renderer`]: validates a badge, lays it out and hands the layout to the PDF or SVG writer.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::fonts::FontSet;
use super::layout::{self, Content, Fixed};
use super::layout_file::Design;
use super::model::{
    Badge, BadgeType, EventInfo, Field, MAX_ID_CHARS, MAX_MARKS, MAX_TEXT_CHARS, Paper, RenderError,
};
use super::{impose, pdf, svg, text};

/// Renders badges. Build one per process (fonts are parsed and the fixed text shaped
/// once) and share it (`Arc<Renderer>`); it is `Send + Sync` and rendering takes `&self`.
pub struct Renderer {
    event: EventInfo,
    fonts: Arc<FontSet>,
    design: Design,
    fixed: Fixed,
}

/// A badge's inputs after validation.
struct Valid {
    id: String,
    name: String,
    company: String,
    kind: BadgeType,
    /// The args fields the layout prints, cleaned.
    fields: BTreeMap<String, String>,
}

impl Renderer {
    /// A renderer of the default badge ([`Design::default_badge`]).
    ///
    /// Fails if the event title or city does not validate like a name does.
    pub fn new(event: EventInfo) -> Result<Self, RenderError> {
        Self::with_layout(event, Design::default_badge())
    }

    /// Parses the bundled fonts (once per process) and any the layout names, and shapes what
    /// `design` prints the same on many badges (the event line, the type labels).
    ///
    /// Fails if the event title or city does not validate like a name does.
    pub fn with_layout(event: EventInfo, design: Design) -> Result<Self, RenderError> {
        let fonts = FontSet::with_brand(&design.fonts).map_err(RenderError::Font)?;
        let title = text::clean(Field::EventTitle, &event.title, MAX_TEXT_CHARS, true)?;
        let city = text::clean(Field::EventCity, &event.city, MAX_TEXT_CHARS, false)?;
        let event = EventInfo { title, city };
        let fixed = Fixed::new(&fonts, &design, &event)?;
        Ok(Renderer {
            event,
            fonts,
            design,
            fixed,
        })
    }

    /// The layout this renderer draws.
    pub fn design(&self) -> &Design {
        &self.design
    }

    /// The event this renderer prints (normalised).
    pub fn event(&self) -> &EventInfo {
        &self.event
    }

    fn validate(&self, badge: &Badge) -> Result<Valid, RenderError> {
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
        let mut fields = BTreeMap::new();
        for key in self.design.fields() {
            let Some(raw) = badge.fields.get(key) else {
                continue;
            };
            let in_field = |source| RenderError::InField {
                key: key.clone(),
                source: Box::new(source),
            };
            let value = text::clean(Field::Text, raw, MAX_TEXT_CHARS, false).map_err(in_field)?;
            check_marks(Field::Text, &value).map_err(in_field)?;
            fields.insert(key.clone(), value);
        }
        Ok(Valid {
            id: id.clone(),
            name,
            company,
            kind: badge.badge_type.clone(),
            fields,
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
            kind: &valid.kind,
            fields: &valid.fields,
        };
        layout::compose(
            &self.fonts,
            &self.design,
            &self.event,
            &self.fixed,
            &content,
            width,
            height,
        )
    }

    /// Renders one badge as a single-page PDF of the layout's page size.
    pub fn render(&self, badge: &Badge) -> Result<Vec<u8>, RenderError> {
        let valid = self.validate(badge)?;
        let (width, height) = self.design.size();
        let layout = self.compose(&valid, width, height)?;
        let bleed = self.design.bleed;
        let sheet = pdf::Sheet {
            width,
            height,
            bleed,
            badges: vec![pdf::Placement {
                layout,
                x: bleed,
                y: bleed,
            }],
            cut_marks: Vec::new(),
        };
        pdf::write(&self.fonts, &valid.name, &[sheet])
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
                self.validate(badge).map_err(|e| RenderError::InSheet {
                    index,
                    id: badge.id.clone(),
                    source: Box::new(e),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let cut_marks = imposition.cut_marks();
        // The badge scaled to fit its cell; a cell wider than the scaled badge widens it
        // (edges given from the right follow the cell's right side).
        let (width, height) = self.design.size();
        let s = (imposition.cell_height / height).min(imposition.cell_width / width);
        let (cell_width, cell_height) = if imposition.cell_height / height <= s {
            (imposition.cell_width, imposition.cell_height)
        } else {
            (width * s, height * s)
        };
        let mut sheets = Vec::new();
        for (page, chunk) in valid.chunks(imposition.per_page()).enumerate() {
            let mut placements = Vec::with_capacity(chunk.len());
            for (slot, v) in chunk.iter().enumerate() {
                let (x, y) = imposition.cell(slot);
                let layout =
                    self.compose(v, cell_width, cell_height)
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
                bleed: 0.0,
                badges: placements,
                cut_marks: cut_marks.clone(),
            });
        }
        let title = format!("{} badges ({})", self.event.title, badges.len());
        pdf::write(&self.fonts, &title, &sheets)
    }

    /// Renders one badge as a standalone SVG document (the web preview), from the same
    /// layout as [`Renderer::render`]. Text is escaped; glyphs are outlines.
    pub fn render_svg(&self, badge: &Badge) -> Result<String, RenderError> {
        let valid = self.validate(badge)?;
        let (width, height) = self.design.size();
        let layout = self.compose(&valid, width, height)?;
        let mut title = valid.name.clone();
        if !valid.company.is_empty() {
            title.push_str(", ");
            title.push_str(&valid.company);
        }
        title.push_str(&format!(
            " \u{2014} {} badge, {}",
            valid.kind, self.event.title
        ));
        svg::write(&self.fonts, &layout, title)
    }

    /// The ink box `[x0, y0, x1, y1]` of every glyph [`Renderer::render`] draws for `badge`,
    /// in points on the layout's page (origin top-left, y down); glyphs without an
    /// outline (spaces, bitmap emoji) have none. Lets tests and the `badge_layout` fuzz target
    /// check that no name or company draws outside the badge.
    pub fn ink_boxes(&self, badge: &Badge) -> Result<Vec<[f32; 4]>, RenderError> {
        let valid = self.validate(badge)?;
        let (width, height) = self.design.size();
        let layout = self.compose(&valid, width, height)?;
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
