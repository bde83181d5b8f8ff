//! Content streams: each badge's blocks (colours and images), QR symbol and text as printpdf
//! operations, and the sheets' cut marks.

use std::collections::BTreeMap;

use printpdf::{
    Codepoint, Color, DictItem, ExternalStream, ExternalXObject, Line, LinePoint, Op, PaintMode,
    PdfFontHandle, PdfPage, Point, Pt, Rect, TextItem, TextMatrix, XObject, XObjectId,
    XObjectTransform,
};

use super::embed::Embedded;
use super::{Placement, Sheet};
use crate::render::fonts::FaceId;
use crate::render::image::{Fit, Image};
use crate::render::layout::{Block, Fill, Qr, Rgb};

/// The document's image XObjects by resource name: each QR symbol, and each layout image
/// once however many badges draw it.
pub(super) type XObjects = BTreeMap<XObjectId, XObject>;

/// Draws one sheet as a page; the QR symbols' and images' XObjects go to `xobjects`.
pub(super) fn page(
    sheet: &Sheet<'_>,
    xobjects: &mut XObjects,
    embedded: &BTreeMap<FaceId, Embedded>,
) -> PdfPage {
    let mut ops = Vec::with_capacity(64 * sheet.badges.len());
    for placed in &sheet.badges {
        draw_badge(
            &mut ops,
            xobjects,
            placed,
            sheet.height + 2.0 * sheet.bleed,
            embedded,
        );
    }
    draw_cut_marks(&mut ops, &sheet.cut_marks, sheet.height);
    let mut page = PdfPage::new(printpdf::Mm(0.0), printpdf::Mm(0.0), ops);
    let bleed = sheet.bleed;
    let media = Rect::from_wh(
        Pt(sheet.width + 2.0 * bleed),
        Pt(sheet.height + 2.0 * bleed),
    );
    page.media_box = media.clone();
    page.crop_box = media;
    // printpdf writes a page box's `width` and `height` as its upper-right corner.
    page.trim_box = Rect {
        x: Pt(bleed),
        y: Pt(bleed),
        ..Rect::from_wh(Pt(bleed + sheet.width), Pt(bleed + sheet.height))
    };
    page
}

fn colour(c: Rgb) -> Color {
    // Three decimals resolve 1/1000: finer than the 1/255 steps of the source colour.
    let channel = |v: u8| (f32::from(v) / 255.0 * 1000.0).round() / 1000.0;
    Color::Rgb(printpdf::Rgb {
        r: channel(c.0),
        g: channel(c.1),
        b: channel(c.2),
        icc_profile: None,
    })
}

/// Rounds to 1/100 pt (or 1/10 of a 1/1000 em): far below what a printer resolves, and
/// keeps the content stream short.
fn round2(v: f32) -> f32 {
    (v * 100.0).round() / 100.0
}

fn draw_badge(
    ops: &mut Vec<Op>,
    xobjects: &mut XObjects,
    placed: &Placement<'_>,
    page_height: f32,
    embedded: &BTreeMap<FaceId, Embedded>,
) {
    let layout = &placed.layout;
    // Page coordinates: PDF's origin is bottom-left, the layout's top-left.
    let px = |x: f32| round2(placed.x + x);
    let py = |y: f32| round2(page_height - (placed.y + y));

    let rect = |b: &Block, mode: PaintMode| Rect {
        x: Pt(px(b.x)),
        y: Pt(py(b.y + b.h)),
        width: Pt(round2(b.w)),
        height: Pt(round2(b.h)),
        mode: Some(mode),
        winding_order: None,
    };
    for b in &layout.blocks {
        match &b.fill {
            Fill::Colour(c) => {
                ops.push(Op::SetFillColor { col: colour(*c) });
                ops.push(Op::DrawRectangle {
                    rectangle: rect(b, PaintMode::Fill),
                });
            }
            Fill::Image { image, fit } => {
                let id = XObjectId(image.key.clone());
                if !xobjects.contains_key(&id) {
                    xobjects.insert(id.clone(), XObject::External(image_xobject(image)));
                }
                let natural = (image.width as f32, image.height as f32);
                let [x, y, w, h] = fit.place((b.x, b.y, b.w, b.h), natural);
                ops.push(Op::SaveGraphicsState);
                if *fit == Fit::Cover {
                    ops.push(Op::DrawRectangle {
                        rectangle: rect(b, PaintMode::Clip),
                    });
                }
                ops.push(Op::UseXobject {
                    id,
                    transform: XObjectTransform {
                        translate_x: Some(Pt(px(x))),
                        translate_y: Some(Pt(py(y + h))),
                        scale_x: Some(round2(w)),
                        scale_y: Some(round2(h)),
                        ..XObjectTransform::default()
                    },
                });
                ops.push(Op::RestoreGraphicsState);
            }
        }
    }

    // QR code: a 1-bit image mask, one sample per module, painted in the fill colour.
    // A tenth of the bytes of the same symbol as rectangles (about 120 B against 550 B
    // compressed), and exact: masks are not interpolated, so module edges stay sharp at
    // any scale.
    for qr in &layout.qrs {
        let id = XObjectId(format!("Q{}", xobjects.len()));
        xobjects.insert(id.clone(), XObject::External(qr_image(qr)));
        ops.push(Op::SetFillColor {
            col: colour(qr.colour),
        });
        ops.push(Op::UseXobject {
            id,
            transform: XObjectTransform {
                translate_x: Some(Pt(px(qr.x))),
                translate_y: Some(Pt(py(qr.y + qr.size))),
                scale_x: Some(round2(qr.size)),
                scale_y: Some(round2(qr.size)),
                ..XObjectTransform::default()
            },
        });
    }

    ops.push(Op::StartTextSection);
    let mut current_colour = None;
    for run in &layout.runs {
        if current_colour != Some(run.colour) {
            ops.push(Op::SetFillColor {
                col: colour(run.colour),
            });
            current_colour = Some(run.colour);
        }
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
            ops.push(Op::SetFont {
                font: PdfFontHandle::External(font.id.clone()),
                size: Pt(round2(run.size)),
            });
            ops.push(Op::SetTextMatrix {
                matrix: TextMatrix::Translate(
                    Pt(px(run.x + first.x * run.size)),
                    Pt(py(run.baseline - first.y * run.size)),
                ),
            });
            let mut pen = 0.0f32; // where the viewer's pen is, 1/1000 em from first.x
            let mut items = Vec::with_capacity(end - i);
            for j in i..end {
                let g = &glyphs[j];
                let new_gid = font.remap.get(g.gid).unwrap_or(0);
                let advance = font.widths.get(&new_gid).copied().unwrap_or(0.0);
                let offset = match glyphs.get(j + 1).filter(|_| j + 1 < end) {
                    Some(next) => {
                        let target = (next.x - first.x) * 1000.0;
                        (((pen + advance - target) * 10.0).round()) / 10.0
                    }
                    None => 0.0,
                };
                pen += advance - offset;
                // No text for printpdf: `tidy` swaps in our own ToUnicode map, so the one
                // printpdf would build from the text is thrown away anyway.
                items.push(Codepoint::with_cid(new_gid, offset, String::new()));
            }
            ops.push(Op::ShowText {
                items: vec![TextItem::GlyphIds(items)],
            });
            i = end;
        }
    }
    ops.push(Op::EndTextSection);
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

fn draw_cut_marks(ops: &mut Vec<Op>, marks: &[[f32; 4]], page_height: f32) {
    if marks.is_empty() {
        return;
    }
    ops.push(Op::SetOutlineColor {
        col: Color::Greyscale(printpdf::Greyscale {
            percent: 0.0,
            icc_profile: None,
        }),
    });
    ops.push(Op::SetOutlineThickness { pt: Pt(0.3) });
    for &[x1, y1, x2, y2] in marks {
        let point = |x: f32, y: f32| LinePoint {
            p: Point {
                x: Pt(round2(x)),
                y: Pt(round2(page_height - y)),
            },
            bezier: false,
        };
        ops.push(Op::DrawLine {
            line: Line {
                points: vec![point(x1, y1), point(x2, y2)],
                is_closed: false,
            },
        });
    }
}
