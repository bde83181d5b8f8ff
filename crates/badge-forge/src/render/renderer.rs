//! [`Renderer`]: validates a badge, lays it out and hands the layout to the PDF or SVG writer.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::fonts::FontSet;
use super::impose::{self, Stock};
use super::layout::{self, Content, Fixed};
use super::layout_file::Design;
use super::model::{
    Badge, BadgeType, EventInfo, Field, MAX_ID_CHARS, MAX_MARKS, MAX_TEXT_CHARS, RenderError,
};
use super::{pdf, svg, text};

/// Renders badges. Build one per process (fonts are parsed and the fixed text shaped
/// once) and share it (`Arc<Renderer>`); it is `Send + Sync` and rendering takes `&self`.
pub struct Renderer {
    event: EventInfo,
    fonts: Arc<FontSet>,
    design: Design,
    fixed: Fixed,
    /// The renderer of the layout's `[back]`, if it has one.
    back: Option<Box<Renderer>>,
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

    /// Parses the bundled fonts (once per process) and any the layout names, and shapes what
    /// `design` prints the same on many badges (the event line, the type labels).
    ///
    /// Fails if the event title or city does not validate like a name does.
    pub fn with_layout(event: EventInfo, design: Design) -> Result<Self, RenderError> {
        let fonts = FontSet::with_brand(&design.fonts).map_err(RenderError::Font)?;
        let title = text::clean(Field::EventTitle, &event.title, MAX_TEXT_CHARS, true)?;
        let city = text::clean(Field::EventCity, &event.city, MAX_TEXT_CHARS, false)?;
        Self::with_fonts(EventInfo { title, city }, design, fonts)
    }

    /// A renderer of `design` for the checked `event`, with `fonts` parsed for the design: its
    /// `[back]`, which names the same fonts, shares them rather than parsing them again.
    fn with_fonts(
        event: EventInfo,
        design: Design,
        fonts: Arc<FontSet>,
    ) -> Result<Self, RenderError> {
        let fixed = Fixed::new(&fonts, &design, &event)?;
        let back = match &design.back {
            Some(back) => Some(Box::new(Renderer::with_fonts(
                event.clone(),
                (**back).clone(),
                fonts.clone(),
            )?)),
            None => None,
        };
        Ok(Renderer {
            event,
            fonts,
            design,
            fixed,
            back,
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
            width: width + 2.0 * bleed,
            height: height + 2.0 * bleed,
            trim: [bleed, bleed, width, height],
            badges: vec![pdf::Placement {
                layout,
                x: bleed,
                y: bleed,
            }],
            cut_marks: Vec::new(),
        };
        pdf::write(&self.fonts, &valid.name, bleed, &[sheet])
    }

    /// Imposes `badges` on as many sheets of `stock` as needed, with cut marks, as one PDF.
    ///
    /// Fails on the first badge that cannot render ([`RenderError::InSheet`] says which).
    pub fn render_sheet(&self, badges: &[Badge], stock: &Stock) -> Result<Vec<u8>, RenderError> {
        let imposed = self.impose(badges, &[], stock)?;
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
    /// and leaves out the others, saying why: a print run goes on past a bad row. Each page
    /// has its TrimBox (the badges' trims) and BleedBox (with the layout's bleed, where the
    /// stock has room for it); a layout with a `[back]` gets a back page after each page,
    /// mirrored so that each back lies behind its front after duplex printing.
    ///
    /// Each of `dividers`, `(i, letter)`, puts a page showing `letter` before badge `i`, which
    /// starts a new page (unless no badge from `i` to the next divider can render).
    ///
    /// [`render_sheet`]: Renderer::render_sheet
    pub fn impose(
        &self,
        badges: &[Badge],
        dividers: &[(usize, String)],
        stock: &Stock,
    ) -> Result<Imposed, RenderError> {
        if badges.is_empty() {
            return Err(RenderError::NoBadges);
        }
        let (width, height) = self.design.size();
        let imposition = impose::Imposition::new(stock, width, height, self.design.bleed)
            .map_err(RenderError::Stock)?;
        let (cell_width, cell_height) = self.cell_size(&imposition);
        let cell = (cell_width, cell_height, imposition.bleed);
        let back = self.back.as_deref();
        let mut rejected = Vec::new();
        let mut layouts = Vec::with_capacity(badges.len());
        for (index, badge) in badges.iter().enumerate() {
            let sides = self.validate(badge).and_then(|valid| {
                let front = self.in_cell(&valid, cell)?;
                let back = match back {
                    Some(back) => Some(back.in_cell(&back.validate(badge)?, cell)?),
                    None => None,
                };
                Ok((front, back))
            });
            match sides {
                Ok(sides) => layouts.push((index, sides)),
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
        let divider = match dividers {
            [] => None,
            _ => Some(Renderer::with_layout(
                self.event.clone(),
                impose::divider(imposition.page_width, imposition.page_height),
            )?),
        };
        let mut pages = Pages {
            imposition: &imposition,
            duplex: back.is_some(),
            marks: imposition.cut_marks(),
            sheets: Vec::new(),
            fronts: Vec::new(),
            backs: Vec::new(),
        };
        let mut next_divider = dividers.iter().peekable();
        for (index, (front, back)) in layouts {
            let mut letter = None;
            while let Some((_, title)) = next_divider.next_if(|(at, _)| *at <= index) {
                letter = Some(title);
            }
            if let (Some(letter), Some(divider)) = (letter, &divider) {
                pages.finish();
                pages.single(divider.divider_page(letter, &imposition)?);
            }
            pages.add(front, back);
        }
        pages.finish();
        let title = format!("{} badges ({printed})", self.event.title);
        Ok(Imposed {
            pdf: Some(pdf::write(
                &self.fonts,
                &title,
                imposition.bleed,
                &pages.sheets,
            )?),
            printed,
            rejected,
        })
    }

    /// `valid` laid out in a cell of `(width, height, bleed)`: its blocks cut at the bleed.
    fn in_cell(
        &self,
        valid: &Valid,
        (width, height, bleed): (f32, f32, f32),
    ) -> Result<layout::BadgeLayout<'_>, RenderError> {
        let mut layout = self.compose(valid, width, height)?;
        clip_to_bleed(&mut layout, bleed);
        Ok(layout)
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
        let (width, height) = (imposition.page_width, imposition.page_height);
        let layout = self.compose(&valid, width, height)?;
        Ok(pdf::Sheet {
            width,
            height,
            trim: [0.0, 0.0, width, height],
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

/// The pages of a sheet as they fill: a front page of badges, and its back when duplex.
struct Pages<'i, 'a> {
    imposition: &'i impose::Imposition,
    duplex: bool,
    marks: Vec<[f32; 4]>,
    sheets: Vec<pdf::Sheet<'a>>,
    fronts: Vec<pdf::Placement<'a>>,
    backs: Vec<pdf::Placement<'a>>,
}

impl<'a> Pages<'_, 'a> {
    /// Puts a badge (and its back) in the next cell, finishing the page when it is full.
    fn add(&mut self, front: layout::BadgeLayout<'a>, back: Option<layout::BadgeLayout<'a>>) {
        let slot = self.fronts.len();
        let (x, y) = self.imposition.cell(slot);
        self.fronts.push(pdf::Placement {
            layout: front,
            x,
            y,
        });
        if let Some(layout) = back {
            let (x, y) = self.imposition.back_cell(slot);
            self.backs.push(pdf::Placement { layout, x, y });
        }
        if self.fronts.len() == self.imposition.per_page() {
            self.finish();
        }
    }

    /// Ends the page being filled, if it has a badge: the front, then its back when duplex
    /// (marks and trim mirrored like the badges).
    fn finish(&mut self) {
        if self.fronts.is_empty() {
            return;
        }
        let i = self.imposition;
        let trim = i.trim();
        self.sheets.push(pdf::Sheet {
            width: i.page_width,
            height: i.page_height,
            trim,
            badges: std::mem::take(&mut self.fronts),
            cut_marks: self.marks.clone(),
        });
        if self.duplex {
            let mirror = |x: f32| i.page_width - x;
            self.sheets.push(pdf::Sheet {
                width: i.page_width,
                height: i.page_height,
                trim: [mirror(trim[0] + trim[2]), trim[1], trim[2], trim[3]],
                badges: std::mem::take(&mut self.backs),
                cut_marks: self
                    .marks
                    .iter()
                    .map(|&[x1, y1, x2, y2]| [mirror(x1), y1, mirror(x2), y2])
                    .collect(),
            });
        }
    }

    /// A page of its own (a divider), followed by a blank back when duplex so that fronts
    /// stay on the fronts of the paper.
    fn single(&mut self, sheet: pdf::Sheet<'a>) {
        let (width, height) = (sheet.width, sheet.height);
        self.sheets.push(sheet);
        if self.duplex {
            self.sheets.push(pdf::Sheet {
                width,
                height,
                trim: [0.0, 0.0, width, height],
                badges: Vec::new(),
                cut_marks: Vec::new(),
            });
        }
    }
}

/// Cuts the layout's blocks (rectangles, which alone may reach into the bleed) at `bleed`
/// past the badge's edges, so that on a stock without room for the layout's whole bleed no
/// badge prints on its neighbour.
fn clip_to_bleed(layout: &mut layout::BadgeLayout<'_>, bleed: f32) {
    let (right, bottom) = (layout.width + bleed, layout.height + bleed);
    layout.blocks.retain_mut(|b| {
        let (x1, y1) = ((b.x + b.w).min(right), (b.y + b.h).min(bottom));
        b.x = b.x.max(-bleed);
        b.y = b.y.max(-bleed);
        b.w = x1 - b.x;
        b.h = y1 - b.y;
        b.w > 0.0 && b.h > 0.0
    });
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

    /// A layout naming its own fonts and a `[back]`: both sides draw with one parse of them.
    #[test]
    fn the_back_shares_the_fronts_parsed_fonts() {
        let layouts =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../templates/layouts");
        let back = r#"
[back]
[[back.element]]
kind = "text"
text = "Back of {id}"
left = 18
right = 18
top = 18
height = 20
size = 12
"#;
        let source = std::fs::read_to_string(layouts.join("pronouns.toml")).unwrap() + back;
        let design = Design::parse("back.toml", &source, &layouts).unwrap();
        assert!(
            !design.fonts.is_empty(),
            "the layout names fonts of its own"
        );
        let renderer = Renderer::with_layout(EventInfo::default(), design).unwrap();
        let back = renderer.back.as_deref().expect("a back renderer");
        assert!(
            Arc::ptr_eq(&renderer.fonts, &back.fonts),
            "the back parsed the layout's fonts again"
        );
    }

    #[test]
    fn renderer_is_shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Renderer>();
    }
}
