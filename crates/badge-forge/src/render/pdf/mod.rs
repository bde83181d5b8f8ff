//! The PDF of a badge or of sheets of badges: [`BadgeLayout`]s on pages that printpdf
//! assembles, with font subsets embedded, written as a compact PDF 1.5 file.
//!
//! [`write()`] is the one entry point, for a single badge and for sheets alike:
//!
//! - [`embed`] cuts a subset of each face the pages use and writes its font dictionaries
//!   (printpdf only subsets fonts with its `text_layout` feature, which pulls in a whole
//!   layout engine and re-parses every font per document);
//! - [`draw`] turns each page's layouts into its content stream, written by [`content`],
//!   and gives printpdf the page's boxes and images;
//! - [`writer`] puts the content streams and fonts on printpdf's pages, tidies its object
//!   graph and writes the compressed file;
//! - [`deflate`] compresses its large streams (the font programs);
//! - [`tokens`] writes numbers and hex digits in PDF syntax for all of them.

mod content;
mod deflate;
mod draw;
mod embed;
mod tokens;
mod writer;

use printpdf::PdfDocument;

use super::RenderError;
use super::fonts::FontSet;
use super::layout::BadgeLayout;

/// Where one badge goes on a page: its top-left corner, in points from the page's
/// top-left corner.
pub(crate) struct Placement<'a> {
    pub(crate) layout: BadgeLayout<'a>,
    pub(crate) x: f32,
    pub(crate) y: f32,
}

/// One page: its paper, its trimmed area, its badges and any cut marks (all in points,
/// top-left origin).
pub(crate) struct Sheet<'a> {
    /// The paper's size (the MediaBox).
    pub(crate) width: f32,
    pub(crate) height: f32,
    /// What is left after cutting, `[x, y, width, height]` (the TrimBox); the BleedBox is it
    /// grown by the document's bleed.
    pub(crate) trim: [f32; 4],
    pub(crate) badges: Vec<Placement<'a>>,
    pub(crate) cut_marks: Vec<[f32; 4]>,
}

/// Writes the sheets as one PDF; its badges print `bleed` points past their trim.
pub(crate) fn write(
    fonts: &FontSet,
    title: &str,
    bleed: f32,
    sheets: &[Sheet<'_>],
) -> Result<Vec<u8>, RenderError> {
    let embedded = embed::embed(fonts, sheets)?;
    let mut xobjects = draw::XObjects::new();
    let (pages, contents) = sheets
        .iter()
        .map(|sheet| {
            let drawn = draw::page(sheet, &mut xobjects, &embedded);
            (drawn.page, drawn.content)
        })
        .unzip();
    let mut doc = PdfDocument::new(title);
    doc.with_pages(pages);
    doc.resources.xobjects.map.extend(xobjects);
    writer::write(&doc, contents, embedded, bleed)
}
