//! Each sheet as a page: its badges' blocks (colours and images), QR symbols and text, and
//! its cut marks, written as the page's content stream; printpdf gets the page's boxes and
//! the image XObjects.

use std::collections::BTreeMap;

use printpdf::{DictItem, ExternalStream, ExternalXObject, PdfPage, Pt, Rect, XObject, XObjectId};

use super::content::Content;
use super::embed::Embedded;
use super::{Placement, Sheet};
use crate::render::fonts::FaceId;
use crate::render::image::{Fit, Image};
use crate::render::layout::{Block, Fill, Qr};

/// The document's image XObjects by resource name: each QR symbol, and each layout image
/// once however many badges draw it.
pub(super) type XObjects = BTreeMap<XObjectId, XObject>;

/// One sheet drawn: the page (boxes only) and its content stream.
pub(super) struct Page {
    pub(super) page: PdfPage,
    pub(super) content: Vec<u8>,
}

/// Draws one sheet; the QR symbols' and images' XObjects go to `xobjects`.
pub(super) fn page(
    sheet: &Sheet<'_>,
    xobjects: &mut XObjects,
    embedded: &BTreeMap<FaceId, Embedded>,
) -> Page {
    let mut content = Content::with_capacity(1024 * sheet.badges.len());
    for placed in &sheet.badges {
        draw_badge(&mut content, xobjects, placed, sheet.height, embedded);
    }
    let marks: Vec<[f32; 4]> = sheet
        .cut_marks
        .iter()
        .map(|&[x1, y1, x2, y2]| [x1, sheet.height - y1, x2, sheet.height - y2])
        .collect();
    content.lines(&marks);
    let mut page = PdfPage::new(printpdf::Mm(0.0), printpdf::Mm(0.0), Vec::new());
    let media = Rect::from_wh(Pt(sheet.width), Pt(sheet.height));
    page.media_box = media.clone();
    page.crop_box = media;
    // printpdf writes a page box's `width` and `height` as its upper-right corner.
    let [x, y, w, h] = sheet.trim;
    let bottom = sheet.height - y - h;
    page.trim_box = Rect {
        x: Pt(round2(x)),
        y: Pt(round2(bottom)),
        ..Rect::from_wh(Pt(round2(x + w)), Pt(round2(bottom + h)))
    };
    Page {
        page,
        content: content.into_bytes(),
    }
}

/// Rounds to 1/100 pt, as the content stream writes its numbers.
fn round2(v: f32) -> f32 {
    (v * 100.0).round() / 100.0
}

fn draw_badge(
    out: &mut Content,
    xobjects: &mut XObjects,
    placed: &Placement<'_>,
    page_height: f32,
    embedded: &BTreeMap<FaceId, Embedded>,
) {
    let layout = &placed.layout;
    // Page coordinates: PDF's origin is bottom-left, the layout's top-left.
    let px = |x: f32| placed.x + x;
    let py = |y: f32| page_height - (placed.y + y);
    let rect = |b: &Block| [px(b.x), py(b.y + b.h), b.w, b.h];

    for b in &layout.blocks {
        match &b.fill {
            Fill::Colour(c) => {
                out.fill_colour(*c);
                out.fill_rect(rect(b));
            }
            Fill::Image { image, fit } => {
                let id = XObjectId(image.key.clone());
                if !xobjects.contains_key(&id) {
                    xobjects.insert(id.clone(), XObject::External(image_xobject(image)));
                }
                let natural = (image.width as f32, image.height as f32);
                let [x, y, w, h] = fit.place((b.x, b.y, b.w, b.h), natural);
                let clip = (*fit == Fit::Cover).then(|| rect(b));
                out.xobject(&id.0, [px(x), py(y + h), w, h], clip);
            }
        }
    }

    // QR code: a 1-bit image mask, one sample per module, painted in the fill colour.
    // A tenth of the bytes of the same symbol as rectangles (about 120 B against 550 B
    // compressed), and exact: masks are not interpolated, so module edges stay sharp at
    // any scale.
    for qr in &layout.qrs {
        let name = format!("Q{}", xobjects.len());
        xobjects.insert(XObjectId(name.clone()), XObject::External(qr_image(qr)));
        out.fill_colour(qr.colour);
        out.xobject(
            &name,
            [px(qr.x), py(qr.y + qr.size), qr.size, qr.size],
            None,
        );
    }

    out.begin_text();
    for run in &layout.runs {
        out.fill_colour(run.colour);
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
            let mut pen = 0.0f32; // where the viewer's pen is, 1/1000 em from first.x
            let segment = (i..end).map(|j| {
                let g = &glyphs[j];
                let (code, advance) = font.code(g.gid);
                let kern = match glyphs.get(j + 1).filter(|_| j + 1 < end) {
                    Some(next) => {
                        let target = (next.x - first.x) * 1000.0;
                        (((pen + advance - target) * 10.0).round()) / 10.0
                    }
                    None => 0.0,
                };
                pen += advance - kern;
                (code, kern)
            });
            let origin = (
                px(run.x + first.x * run.size),
                py(run.baseline - first.y * run.size),
            );
            out.show(first.face, run.size, origin, segment);
            i = end;
        }
    }
    out.end_text();
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

/// A layout image as an image XObject (ISO 32000-1, 8.9.5): its samples as decoded and
/// compressed at load, with its alpha as a soft mask.
fn image_xobject(image: &Image) -> ExternalXObject {
    let int = |v: u32| DictItem::Int(i64::from(v));
    let name = |n: &str| DictItem::Name(n.as_bytes().to_vec());
    // (The writer adds each stream's /Length.)
    let samples = |colour_space: &str, filter: &str| {
        BTreeMap::from([
            ("Type".to_string(), name("XObject")),
            ("Subtype".to_string(), name("Image")),
            ("Width".to_string(), int(image.width)),
            ("Height".to_string(), int(image.height)),
            ("ColorSpace".to_string(), name(colour_space)),
            ("BitsPerComponent".to_string(), DictItem::Int(8)),
            ("Filter".to_string(), name(filter)),
        ])
    };
    let mut dict = samples(image.colour_space, image.filter);
    if let Some(alpha) = &image.alpha {
        dict.insert(
            "SMask".to_string(),
            DictItem::Stream {
                stream: ExternalStream {
                    dict: samples("DeviceGray", "FlateDecode"),
                    content: alpha.clone(),
                    compress: false,
                },
            },
        );
    }
    ExternalXObject {
        stream: ExternalStream {
            dict,
            content: image.data.clone(),
            compress: false,
        },
        width: None,
        height: None,
        dpi: None,
    }
}
