//! Images a layout places (a logo, a full-bleed background): read and decoded once, when the
//! layout is loaded, into what a PDF embeds (an image XObject's samples, already compressed)
//! and what the SVG preview shows (a `data:` URI of the file). Rendering a badge then only
//! places the image: its cost is paid once per process, and once per PDF (one object however
//! many badges draw it).
//!
//! - PNG is decoded (`png`) to 8-bit grey or RGB samples, compressed as `FlateDecode`, with
//!   any transparency as a soft mask (`/SMask`).
//! - JPEG is embedded as it is (`DCTDecode`); only its header is read, for its size and
//!   colour components.
//! - SVG is rasterised (`resvg`) at [`SVG_DPI`] for the size the layout draws it at, then
//!   embedded like a PNG: the PDF writer has no vector path for arbitrary SVG.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use flate2::Compression;
use flate2::write::ZlibEncoder;
use serde::Deserialize;

use super::fnv::Fnv;

/// The resolution an SVG image is rasterised at, in pixels per inch: a print shop's.
pub(crate) const SVG_DPI: f32 = 300.0;

/// The largest image accepted, in pixels (width × height): 8,000 × 6,000, far more than a
/// badge can show at print resolution.
const MAX_PIXELS: u64 = 48_000_000;

/// The largest image file accepted.
const MAX_FILE_BYTES: u64 = 32 * 1024 * 1024;

/// How an image fills its element's box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Fit {
    /// As large as fits inside the box, centred, keeping its proportions (a logo).
    Contain,
    /// Covers the whole box, keeping its proportions, cut at the box's edges (a background).
    Cover,
    /// Exactly the box, proportions or not.
    Stretch,
}

impl Fit {
    /// Where an image `natural` (width, height) in any unit goes in the box `(x, y, w, h)`:
    /// the rectangle it is drawn in (with [`Fit::Cover`], larger than the box, which clips).
    pub(crate) fn place(self, (x, y, w, h): (f32, f32, f32, f32), natural: (f32, f32)) -> [f32; 4] {
        let (nw, nh) = (natural.0.max(f32::EPSILON), natural.1.max(f32::EPSILON));
        let scale = match self {
            Fit::Stretch => return [x, y, w, h],
            Fit::Contain => (w / nw).min(h / nh),
            Fit::Cover => (w / nw).max(h / nh),
        };
        let (dw, dh) = (nw * scale, nh * scale);
        [x + (w - dw) / 2.0, y + (h - dh) / 2.0, dw, dh]
    }
}

/// A decoded image, ready to embed.
pub(crate) struct Image {
    /// Size in pixels.
    pub(crate) width: u32,
    pub(crate) height: u32,
    /// `DeviceRGB` or `DeviceGray`.
    pub(crate) colour_space: &'static str,
    /// `DCTDecode` (a JPEG file) or `FlateDecode` (8-bit samples, zlib-compressed).
    pub(crate) filter: &'static str,
    pub(crate) data: Vec<u8>,
    /// 8-bit alpha samples, zlib-compressed, when the image has transparency.
    pub(crate) alpha: Option<Vec<u8>>,
    /// The XObject's resource name, from a hash of its samples.
    pub(crate) key: String,
    /// The file as a `data:` URI, for the SVG preview.
    pub(crate) data_uri: String,
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the samples: a layout's debug output stays readable.
        write!(
            f,
            "Image({} × {} {}, {})",
            self.width, self.height, self.colour_space, self.filter
        )
    }
}

/// Reads and decodes the image at `path`; an SVG is rasterised for the box `(w, h)` (points)
/// it is drawn into with `fit`. The error says what is wrong, for a layout error.
pub(crate) fn load(path: &Path, fit: Fit, (w, h): (f32, f32)) -> Result<Image, String> {
    let size = std::fs::metadata(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(format!(
            "{} is {size} bytes; at most {MAX_FILE_BYTES} are accepted",
            path.display()
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let (mime, decoded) = if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        ("image/png", png(&bytes))
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        ("image/jpeg", jpeg(&bytes))
    } else if looks_like_svg(&bytes) {
        ("image/svg+xml", svg(&bytes, fit, (w, h)))
    } else {
        return Err(format!(
            "{} is not a PNG, JPEG or SVG image",
            path.display()
        ));
    };
    let mut image = decoded.map_err(|e| format!("{}: {e}", path.display()))?;
    image.data_uri = format!(
        "data:{mime};base64,{}",
        base64::engine::general_purpose::STANDARD.encode(&bytes)
    );
    Ok(image)
}

fn looks_like_svg(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(4096)];
    let head = String::from_utf8_lossy(head);
    head.contains("<svg")
}

/// A decoded image from its samples: 1 (grey) or 3 (RGB) colour channels per pixel, with
/// an optional alpha channel, all 8-bit.
fn from_samples(
    width: u32,
    height: u32,
    colour: &[u8],
    channels: usize,
    alpha: Option<&[u8]>,
) -> Image {
    let data = zlib(colour);
    // Fully opaque alpha is no alpha: the image needs no soft mask.
    let alpha = alpha.filter(|a| a.iter().any(|&v| v != 255)).map(zlib);
    let mut hash = Fnv::default();
    hash.write(&data);
    if let Some(alpha) = &alpha {
        hash.write(alpha);
    }
    Image {
        width,
        height,
        colour_space: if channels == 1 {
            "DeviceGray"
        } else {
            "DeviceRGB"
        },
        filter: "FlateDecode",
        data,
        alpha,
        key: format!("I{:016x}", hash.0),
        data_uri: String::new(),
    }
}

/// Compressed once, at load, so the best level costs nothing per badge.
fn zlib(data: &[u8]) -> Vec<u8> {
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::best());
    encoder
        .write_all(data)
        .and_then(|()| encoder.finish())
        .expect("writing to a Vec cannot fail")
}

fn check_pixels(width: u32, height: u32) -> Result<(), String> {
    if width == 0 || height == 0 || u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(format!(
            "the image is {width} × {height} pixels; at most {MAX_PIXELS} pixels are accepted"
        ));
    }
    Ok(())
}

fn png(bytes: &[u8]) -> Result<Image, String> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    // 8 bits per sample, palettes and low bit depths expanded, tRNS as an alpha channel.
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder
        .read_info()
        .map_err(|e| format!("not a readable PNG: {e}"))?;
    let (width, height) = (reader.info().width, reader.info().height);
    check_pixels(width, height)?;
    let size = reader
        .output_buffer_size()
        .ok_or("not a readable PNG: too large")?;
    let mut pixels = vec![0; size];
    let frame = reader
        .next_frame(&mut pixels)
        .map_err(|e| format!("not a readable PNG: {e}"))?;
    pixels.truncate(frame.buffer_size());
    let (channels, has_alpha) = match frame.color_type {
        png::ColorType::Grayscale => (1, false),
        png::ColorType::GrayscaleAlpha => (1, true),
        png::ColorType::Rgb => (3, false),
        png::ColorType::Rgba => (3, true),
        png::ColorType::Indexed => return Err("not a readable PNG: palette not expanded".into()),
    };
    if !has_alpha {
        return Ok(from_samples(width, height, &pixels, channels, None));
    }
    let stride = channels + 1;
    let colour: Vec<u8> = pixels
        .chunks_exact(stride)
        .flat_map(|px| px[..channels].iter().copied())
        .collect();
    let alpha: Vec<u8> = pixels.chunks_exact(stride).map(|px| px[channels]).collect();
    Ok(from_samples(width, height, &colour, channels, Some(&alpha)))
}

/// Reads a JPEG's frame header (SOF) for its size and components; the file itself is the
/// PDF stream.
fn jpeg(bytes: &[u8]) -> Result<Image, String> {
    let mut at = 2;
    loop {
        let marker = bytes
            .get(at..at + 4)
            .ok_or("not a readable JPEG: no frame header")?;
        if marker[0] != 0xFF {
            return Err("not a readable JPEG: broken marker".into());
        }
        let kind = marker[1];
        // Fill bytes and markers without a length.
        if kind == 0xFF {
            at += 1;
            continue;
        }
        if kind == 0x01 || (0xD0..=0xD7).contains(&kind) {
            at += 2;
            continue;
        }
        let length = usize::from(u16::from_be_bytes([marker[2], marker[3]]));
        // SOF0-SOF15, except DHT (C4), JPG (C8) and DAC (CC).
        if (0xC0..=0xCF).contains(&kind) && ![0xC4, 0xC8, 0xCC].contains(&kind) {
            let sof = bytes
                .get(at + 4..at + 2 + length)
                .filter(|s| s.len() >= 6)
                .ok_or("not a readable JPEG: short frame header")?;
            let precision = sof[0];
            let height = u32::from(u16::from_be_bytes([sof[1], sof[2]]));
            let width = u32::from(u16::from_be_bytes([sof[3], sof[4]]));
            let components = sof[5];
            if precision != 8 {
                return Err(format!(
                    "{precision}-bit JPEG: only 8-bit JPEGs are accepted"
                ));
            }
            if kind == 0xC3 || kind >= 0xC9 {
                return Err(
                    "lossless or arithmetic-coded JPEG: save it as a baseline or progressive JPEG"
                        .into(),
                );
            }
            check_pixels(width, height)?;
            let colour_space = match components {
                1 => "DeviceGray",
                3 => "DeviceRGB",
                n => {
                    return Err(format!(
                        "a JPEG with {n} colour components (CMYK?): save it as RGB or greyscale"
                    ));
                }
            };
            let mut hash = Fnv::default();
            hash.write(bytes);
            return Ok(Image {
                width,
                height,
                colour_space,
                filter: "DCTDecode",
                data: bytes.to_vec(),
                alpha: None,
                key: format!("I{:016x}", hash.0),
                data_uri: String::new(),
            });
        }
        at += 2 + length;
    }
}

/// Rasterises an SVG at [`SVG_DPI`] for the size it is drawn at. Its shapes only: resvg is
/// built without text and raster-image support, and reads no other file.
fn svg(bytes: &[u8], fit: Fit, (w, h): (f32, f32)) -> Result<Image, String> {
    let options = resvg::usvg::Options::default();
    let tree = resvg::usvg::Tree::from_data(bytes, &options)
        .map_err(|e| format!("not a readable SVG: {e}"))?;
    let natural = (tree.size().width(), tree.size().height());
    let [_, _, dw, dh] = fit.place((0.0, 0.0, w, h), natural);
    let px = |pt: f32| (pt * SVG_DPI / 72.0).ceil().max(1.0) as u32;
    let (width, height) = (px(dw), px(dh));
    check_pixels(width, height)?;
    let mut pixmap =
        resvg::tiny_skia::Pixmap::new(width, height).ok_or("cannot rasterise the SVG")?;
    let transform = resvg::tiny_skia::Transform::from_scale(
        width as f32 / natural.0.max(f32::EPSILON),
        height as f32 / natural.1.max(f32::EPSILON),
    );
    resvg::render(&tree, transform, &mut pixmap.as_mut());
    let mut colour = Vec::with_capacity(width as usize * height as usize * 3);
    let mut alpha = Vec::with_capacity(width as usize * height as usize);
    for px in pixmap.pixels() {
        // The pixmap holds premultiplied colour; the PDF wants it straight.
        let c = px.demultiply();
        colour.extend([c.red(), c.green(), c.blue()]);
        alpha.push(c.alpha());
    }
    Ok(from_samples(width, height, &colour, 3, Some(&alpha)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_place_the_image() {
        let b = (10.0, 20.0, 100.0, 50.0);
        assert_eq!(
            Fit::Stretch.place(b, (10.0, 10.0)),
            [10.0, 20.0, 100.0, 50.0]
        );
        assert_eq!(
            Fit::Contain.place(b, (10.0, 10.0)),
            [35.0, 20.0, 50.0, 50.0]
        );
        assert_eq!(
            Fit::Cover.place(b, (10.0, 10.0)),
            [10.0, -5.0, 100.0, 100.0]
        );
    }

    #[test]
    fn jpeg_header_gives_size_and_components() {
        // SOI, an APP0 segment, then a baseline SOF0: 8-bit, 30 high, 40 wide, 3 components.
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x00, 0x00];
        jpeg.extend([0xFF, 0xC0, 0x00, 0x11, 8, 0, 30, 0, 40, 3]);
        jpeg.extend([0; 9]);
        let image = super::jpeg(&jpeg).unwrap();
        assert_eq!((image.width, image.height), (40, 30));
        assert_eq!(image.colour_space, "DeviceRGB");
        jpeg[17] = 4;
        assert!(super::jpeg(&jpeg).unwrap_err().contains("CMYK"));
        assert!(super::jpeg(&jpeg[..6]).is_err());
    }
}
