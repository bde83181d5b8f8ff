//! [`Renderer`]: validates a badge, lays it out and hands the layout to the PDF or SVG writer.

use std::collections::BTreeMap;

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
    fonts: &'static FontSet,
    design: Design,
    fixed: Fixed,
}

/// A sheet PDF of the badges that could render, and those that could not.
#[derive(Debug)]
pub struct Imposed {
    /// The PDF; `None` when no badge could render.
    pub pdf: Option<Vec<u8>>,
    /// How many badges it holds.
    pub printed: usize,
    /// Each badge left out, by its index in the input, with why.
    pub rejected: Vec<(usize, RenderError)>,
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

    /// Parses the bundled fonts (once per process) and shapes what `design` prints the same
    /// on many badges (the event line, the type labels).
    ///
    /// Fails if the event title or city does not validate like a name does.
    pub fn with_layout(event: EventInfo, design: Design) -> Result<Self, RenderError> {
        let fonts = FontSet::get().map_err(RenderError::Font)?;
        let title = text::clean(Field::EventTitle, &event.title, MAX_TEXT_CHARS, true)?;
        let city = text::clean(Field::EventCity, &event.city, MAX_TEXT_CHARS, false)?;
        let event = EventInfo { title, city };
        let fixed = Fixed::new(fonts, &design, &event)?;
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
            self.fonts,
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
        pdf::write(self.fonts, &valid.name, &[sheet])
    }

    /// Imposes `badges` on as many pages of `paper` as needed (6-up 4 in × 3 in on
    /// Letter, 4-up A6 on A4), with cut marks, as one PDF.
    ///
    /// Fails on the first badge that cannot render ([`RenderError::InSheet`] says which).
    pub fn render_sheet(&self, badges: &[Badge], paper: Paper) -> Result<Vec<u8>, RenderError> {
        let imposed = self.impose(badges, &[], paper)?;
        match imposed.rejected.into_iter().next() {
            Some((index, error)) => Err(RenderError::InSheet {
                index,
                id: badges[index].id.clone(),
                source: Box::new(error),
            }),
            None => imposed.pdf.ok_or(RenderError::NoBadges),
        }
    }

    /// Imposes every badge of `badges` that can render, in order, as [`render_sheet`] does,
    /// and leaves out the others, saying why: a print run goes on past a bad row.
    ///
    /// [`render_sheet`]: Renderer::render_sheet
    ///
    /// Each of `dividers`, `(i, letter)`, puts a page showing `letter` before badge `i`, which
    /// starts a new page (unless no badge from `i` to the next divider can render).
    pub fn impose(
        &self,
        badges: &[Badge],
        dividers: &[(usize, String)],
        paper: Paper,
    ) -> Result<Imposed, RenderError> {
        if badges.is_empty() {
            return Err(RenderError::NoBadges);
        }
        let imposition = impose::Imposition::for_paper(paper);
        let (cell_width, cell_height) = self.cell_size(&imposition);
        let mut rejected = Vec::new();
        let mut layouts = Vec::with_capacity(badges.len());
        for (index, badge) in badges.iter().enumerate() {
            match self
                .validate(badge)
                .and_then(|valid| self.compose(&valid, cell_width, cell_height))
            {
                Ok(layout) => layouts.push((index, layout)),
                Err(error) => rejected.push((index, error)),
            }
        }
        if layouts.is_empty() {
            return Ok(Imposed {
                pdf: None,
                printed: 0,
                rejected,
            });
        }
        let printed = layouts.len();
        let cut_marks = imposition.cut_marks();
        let page = |placements| pdf::Sheet {
            width: imposition.page_width,
            height: imposition.page_height,
            bleed: 0.0,
            badges: placements,
            cut_marks: cut_marks.clone(),
        };
        let divider = match dividers {
            [] => None,
            _ => Some(Renderer::with_layout(
                self.event.clone(),
                impose::divider(imposition.page_width, imposition.page_height),
            )?),
        };
        let mut sheets = Vec::new();
        let mut placements = Vec::new();
        let mut next_divider = dividers.iter().peekable();
        for (index, layout) in layouts {
            let mut letter = None;
            while let Some((_, title)) = next_divider.next_if(|(at, _)| *at <= index) {
                letter = Some(title);
            }
            if let (Some(letter), Some(divider)) = (letter, &divider) {
                if !placements.is_empty() {
                    sheets.push(page(std::mem::take(&mut placements)));
                }
                sheets.push(divider.divider_page(letter, &imposition)?);
            }
            let (x, y) = imposition.cell(placements.len());
            placements.push(pdf::Placement { layout, x, y });
            if placements.len() == imposition.per_page() {
                sheets.push(page(std::mem::take(&mut placements)));
            }
        }
        if !placements.is_empty() {
            sheets.push(page(placements));
        }
        let title = format!("{} badges ({printed})", self.event.title);
        Ok(Imposed {
            pdf: Some(pdf::write(self.fonts, &title, &sheets)?),
            printed,
            rejected,
        })
    }

    /// A page of this (divider) renderer's layout with `letter` as the name.
    fn divider_page(
        &self,
        letter: &str,
        imposition: &impose::Imposition,
    ) -> Result<pdf::Sheet<'_>, RenderError> {
        let badge = Badge {
            id: "divider".into(),
            name: letter.to_string(),
            company: String::new(),
            badge_type: BadgeType::ATTENDEE,
            fields: Default::default(),
        };
        let valid = self.validate(&badge)?;
        let layout = self.compose(&valid, imposition.page_width, imposition.page_height)?;
        Ok(pdf::Sheet {
            width: imposition.page_width,
            height: imposition.page_height,
            bleed: 0.0,
            badges: vec![pdf::Placement {
                layout,
                x: 0.0,
                y: 0.0,
            }],
            cut_marks: Vec::new(),
        })
    }

    /// The size a badge is drawn at in one of `imposition`'s cells: scaled to fit it, and a
    /// cell wider than the scaled badge widens it (edges given from the right follow the
    /// cell's right side).
    fn cell_size(&self, imposition: &impose::Imposition) -> (f32, f32) {
        let (width, height) = self.design.size();
        let s = (imposition.cell_height / height).min(imposition.cell_width / width);
        if imposition.cell_height / height <= s {
            (imposition.cell_width, imposition.cell_height)
        } else {
            (width * s, height * s)
        }
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
        svg::write(self.fonts, &layout, title)
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
