//! Writes the PDF object graph printpdf built, with our content streams and fonts, as a
//! compact PDF 1.5 file.
//!
//! Hand-written because lopdf's own writer of the same structure costs far more CPU per badge
//! (docs/benchmarks.md, "the hand-written PDF parts against the libraries").
//!
//! First [`install`] puts the pages' content streams and the fonts into printpdf's graph,
//! [`tidy`] drops what printpdf writes by default and a badge does not need, and makes the
//! output a pure function of the input; then every stream is compressed.
//! Every non-stream object (page, font and descriptor dictionaries, `/Info`, ...) goes
//! into one compressed object stream, and the cross-reference table is a compressed
//! cross-reference stream: for a badge that is about a sixth of the file. lopdf can
//! write the same structure, but compresses the object stream with a fresh zlib state
//! per file and formats every object twice; writing it here, with the per-thread
//! compressor, saves both.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use flate2::{Compress, Compression, FlushCompress, Status};

use lopdf::{Dictionary, Object, StringFormat};
use printpdf::{PdfDocument, PdfParseErrorSeverity, PdfSaveOptions};

use super::embed::{self, Embedded};
use super::tokens::{push_hex2, push_int};
use crate::render::RenderError;
use crate::render::fnv::Fnv;
use crate::render::fonts::FaceId;

/// Writes `doc` as a PDF file, its pages showing `contents` in order with `fonts`; each
/// page with a TrimBox gets a BleedBox `bleed` points larger.
pub(super) fn write(
    doc: &PdfDocument,
    contents: Vec<Vec<u8>>,
    fonts: BTreeMap<FaceId, Embedded>,
    bleed: f32,
) -> Result<Vec<u8>, RenderError> {
    let options = PdfSaveOptions {
        optimize: true,
        subset_fonts: false, // there are none: the fonts are added below
        secure: true,
        image_optimization: None,
    };
    let mut warnings = Vec::new();
    let mut lo = doc.to_lopdf_document(&options, &mut warnings);
    if let Some(w) = warnings
        .iter()
        .find(|w| w.severity == PdfParseErrorSeverity::Error)
    {
        return Err(RenderError::Pdf(w.msg.clone()));
    }
    install(&mut lo, contents, fonts).ok_or_else(|| {
        RenderError::Pdf("printpdf wrote pages without contents or resources".into())
    })?;
    tidy(&mut lo, bleed);
    compress_streams(&mut lo);
    Ok(write_file(&lo, deflate))
}

/// Puts `contents` on printpdf's pages, in order, and `fonts` into the font resources
/// its pages share; `None` if a page lacks the objects printpdf always writes.
fn install(
    doc: &mut lopdf::Document,
    contents: Vec<Vec<u8>>,
    fonts: BTreeMap<FaceId, Embedded>,
) -> Option<()> {
    // printpdf gives every page the same font resource dictionary, empty here.
    let mut font_dicts = BTreeSet::new();
    for (page, content) in doc.get_pages().into_values().zip(contents) {
        let page = doc.get_dictionary(page).ok()?;
        let stream = entry(page, b"Contents")?.as_reference().ok()?;
        let resources = entry(page, b"Resources")?.as_reference().ok()?;
        let font = entry(doc.get_dictionary(resources).ok()?, b"Font")?;
        font_dicts.insert(font.as_reference().ok()?);
        doc.get_object_mut(stream)
            .ok()?
            .as_stream_mut()
            .ok()?
            .set_content(content);
    }
    let font_resources = embed::add_fonts(doc, fonts);
    for id in font_dicts {
        doc.objects
            .insert(id, Object::Dictionary(font_resources.clone()));
    }
    Some(())
}

/// `dict[key]`: lopdf's own `get` builds an error, with the key copied into a new `String`,
/// for every key a dictionary lacks, and most lookups here are for keys most objects lack.
fn entry<'a>(dict: &'a Dictionary, key: &[u8]) -> Option<&'a Object> {
    dict.as_hashmap().get(key)
}

/// Whether `dict`'s `/Type` is `name` (lopdf's `has_type`, without its error for a dictionary
/// with no `/Type`).
fn is_type(dict: &Dictionary, name: &[u8]) -> bool {
    matches!(entry(dict, b"Type"), Some(Object::Name(n)) if n == name)
}

/// A page box's `[llx, lly, urx, ury]`.
fn page_box(object: &Object) -> Option<[f32; 4]> {
    let array = object.as_array().ok()?;
    let mut corners = [0.0; 4];
    for (corner, value) in corners.iter_mut().zip(array) {
        *corner = value.as_float().ok()?;
    }
    (array.len() == 4).then_some(corners)
}

/// Trims what printpdf writes by default and a badge does not need, and makes the output
/// a pure function of the input: empty resource dictionaries, empty `/Annots`, crop and
/// trim boxes equal to the media box, epoch dates and empty fields in `/Info`, and the
/// random file `/ID` (replaced by a hash of the content).
fn tidy(doc: &mut lopdf::Document, bleed: f32) {
    let empty: BTreeSet<lopdf::ObjectId> = doc
        .objects
        .iter()
        .filter(|(_, o)| matches!(o, Object::Dictionary(d) if d.is_empty()))
        .map(|(id, _)| *id)
        .collect();
    let mut hash = Fnv::default();
    for object in doc.objects.values_mut() {
        match object {
            Object::Dictionary(dict) => {
                for key in [&b"Font"[..], b"XObject", b"ExtGState", b"Shading"] {
                    if let Some(Object::Reference(id)) = entry(dict, key)
                        && empty.contains(id)
                    {
                        dict.remove(key);
                    }
                }
                if is_type(dict, b"Page") {
                    if matches!(entry(dict, b"Annots"), Some(Object::Array(a)) if a.is_empty()) {
                        dict.remove(b"Annots");
                    }
                    let media = entry(dict, b"MediaBox").cloned();
                    for key in [&b"CropBox"[..], b"TrimBox"] {
                        if entry(dict, key) == media.as_ref() {
                            dict.remove(key);
                        }
                    }
                    // A page larger than its trim: what prints past the trim is the bleed.
                    if let (Some(trim), Some(media)) = (
                        entry(dict, b"TrimBox").and_then(page_box),
                        media.as_ref().and_then(page_box),
                    ) {
                        let grown = [
                            (trim[0] - bleed).max(media[0]),
                            (trim[1] - bleed).max(media[1]),
                            (trim[2] + bleed).min(media[2]),
                            (trim[3] + bleed).min(media[3]),
                        ];
                        let bleed_box = grown.map(|v| Object::Real((v * 100.0).round() / 100.0));
                        dict.set("BleedBox", Object::Array(bleed_box.to_vec()));
                    }
                }
                if is_type(dict, b"Catalog") {
                    dict.remove(b"PageLayout");
                    dict.remove(b"PageMode");
                }
            }
            Object::Stream(stream) => hash.write(&stream.content),
            _ => {}
        }
    }
    for id in &empty {
        doc.objects.remove(id);
    }
    if let Some(Object::Reference(info_id)) = entry(&doc.trailer, b"Info")
        && let Some(Object::Dictionary(info)) = doc.objects.get_mut(info_id)
    {
        let title = entry(info, b"Title").cloned();
        *info = lopdf::Dictionary::new();
        if let Some(title) = title {
            if let Object::String(bytes, _) = &title {
                hash.write(bytes);
            }
            info.set("Title", title);
        }
        info.set(
            "Producer",
            Object::string_literal(concat!("badge-forge ", env!("CARGO_PKG_VERSION"))),
        );
    }
    let mut id = hash.0.to_be_bytes().to_vec();
    id.extend((hash.0.rotate_left(29) ^ 0x9e37_79b9_7f4a_7c15).to_be_bytes());
    // A literal string: the trailer is not compressed, and hex would double its bytes.
    let id = Object::String(id, lopdf::StringFormat::Literal);
    doc.trailer.set("ID", Object::Array(vec![id.clone(), id]));
}

thread_local! {
    /// One compressor per thread, reset for each stream: its window and hash table are
    /// allocated once instead of for every stream.
    static QUICK: RefCell<Compress> = RefCell::new(Compress::new(Compression::new(1), true));
}

/// Streams of at least this many bytes (the font programs) get [`super::deflate`]'s codes
/// built for the data, smaller ones (content stream, ToUnicode maps, object and
/// cross-reference streams) zlib-rs's level 1. That is the fastest, but writes fixed Huffman
/// codes, which cost a font program about a fifth more bytes; codes built for the data pay
/// off only on a large stream, and there `super::deflate` is faster than zlib-rs's level 2,
/// the smaller streams faster still in zlib-rs (figures in docs/benchmarks.md).
const LARGE_STREAM: usize = 2048;

/// What `/Filter/FlateDecode` adds to a stream's dictionary: compression must save more.
const FILTER_ENTRY_BYTES: usize = 20;

/// zlib-compresses `data`, if that makes the stream smaller (the filter entry included).
fn deflate(data: &[u8]) -> Option<Vec<u8>> {
    let room = data.len().checked_sub(FILTER_ENTRY_BYTES + 1)?;
    if data.len() >= LARGE_STREAM {
        return super::deflate::compress(data, room);
    }
    QUICK.with_borrow_mut(|deflate| {
        deflate.reset();
        // Output that does not fit in `room` would not be worth it: the compressor stops
        // there, unfinished. (It writes into the spare capacity: nothing to zero first.)
        let mut out = Vec::with_capacity(room);
        let status = deflate
            .compress_vec(data, &mut out, FlushCompress::Finish)
            .ok()?;
        (status == Status::StreamEnd).then_some(out)
    })
}

/// Flate-compresses every stream that is not compressed yet (when that makes it smaller).
fn compress_streams(doc: &mut lopdf::Document) {
    for object in doc.objects.values_mut() {
        // The QR's image mask is left alone: its 1-bit modules are close to random, and
        // deflate never saves its own header, checksum and filter entry there.
        if let lopdf::Object::Stream(stream) = object
            && !stream.dict.has(b"Filter")
            && !stream.dict.has(b"ImageMask")
            && let Some(compressed) = deflate(&stream.content)
        {
            stream.dict.set("Filter", "FlateDecode");
            stream.set_content(compressed);
        }
    }
}

/// Appends `object` in PDF syntax.
fn write_object(out: &mut Vec<u8>, object: &Object) {
    match object {
        Object::Null => out.extend_from_slice(b"null"),
        Object::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Object::Integer(i) => {
            push_int(out, *i);
        }
        Object::Real(r) => {
            if r.is_finite() {
                let _ = write!(out, "{r}");
            } else {
                out.push(b'0');
            }
        }
        Object::Name(name) => write_name(out, name),
        Object::String(bytes, StringFormat::Hexadecimal) => {
            out.push(b'<');
            for &b in bytes {
                push_hex2(out, b);
            }
            out.push(b'>');
        }
        Object::String(bytes, StringFormat::Literal) => {
            out.push(b'(');
            for &b in bytes {
                match b {
                    b'(' | b')' | b'\\' => out.extend_from_slice(&[b'\\', b]),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    _ => out.push(b),
                }
            }
            out.push(b')');
        }
        Object::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                write_object(out, item);
            }
            out.push(b']');
        }
        Object::Dictionary(dict) => write_dict(out, dict),
        // Streams are only ever written as indirect objects (`write_file`).
        Object::Stream(stream) => write_dict(out, &stream.dict),
        Object::Reference((id, generation)) => {
            push_int(out, i64::from(*id));
            out.push(b' ');
            push_int(out, i64::from(*generation));
            out.extend_from_slice(b" R");
        }
    }
}

fn write_name(out: &mut Vec<u8>, name: &[u8]) {
    out.push(b'/');
    for &b in name {
        if !(33..=126).contains(&b) || b"()<>[]{}/%#".contains(&b) {
            out.push(b'#');
            push_hex2(out, b);
        } else {
            out.push(b);
        }
    }
}

fn write_dict(out: &mut Vec<u8>, dict: &Dictionary) {
    out.extend_from_slice(b"<<");
    for (key, value) in dict.iter() {
        write_entry(out, key, value);
    }
    out.extend_from_slice(b">>");
}

fn write_entry(out: &mut Vec<u8>, key: &[u8], value: &Object) {
    write_name(out, key);
    // A delimiter-led value needs no separating space after the key.
    if !matches!(
        value,
        Object::Name(_) | Object::Array(_) | Object::Dictionary(_) | Object::String(..)
    ) {
        out.push(b' ');
    }
    write_object(out, value);
}

/// `dict` with its `/Length` set to `length`, as `Dictionary::set` would place it (where the
/// dictionary has one, else last), without cloning the dictionary to set it.
fn write_stream_dict(out: &mut Vec<u8>, dict: &Dictionary, length: usize) {
    let length = Object::Integer(length as i64);
    out.extend_from_slice(b"<<");
    for (key, value) in dict.iter() {
        let value = if key.as_slice() == b"Length" {
            &length
        } else {
            value
        };
        write_entry(out, key, value);
    }
    if !dict.has(b"Length") {
        write_entry(out, b"Length", &length);
    }
    out.extend_from_slice(b">>");
}

/// Serialises `doc` as PDF 1.5 with one object stream and a cross-reference stream,
/// compressing both with `compress` (zlib format; `None` leaves the data as is).
fn write_file(
    doc: &lopdf::Document,
    mut compress: impl FnMut(&[u8]) -> Option<Vec<u8>>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 * 1024);
    out.extend_from_slice(b"%PDF-1.5\n%\xE2\xE3\xCF\xD3\n");

    // xref entries by object number: (type, field 2, field 3).
    let size = doc.max_id as usize + 3; // + object stream + xref stream
    let objstm_id = doc.max_id + 1;
    let xref_id = doc.max_id + 2;
    // Free entries (numbers nothing uses) point at object 0 with generation 0: a
    // cross-reference stream only needs them to be type 0 (ISO 32000-1, 7.5.8.3).
    let mut xref = vec![(0u8, 0u32, 0u16); size];

    let mut header = Vec::new();
    let mut body = Vec::new();
    let mut members = 0u16;
    for (&(id, _), object) in &doc.objects {
        if let Object::Stream(stream) = object {
            xref[id as usize] = (1, out.len() as u32, 0);
            push_int(&mut out, i64::from(id));
            out.extend_from_slice(b" 0 obj\n");
            write_stream_dict(&mut out, &stream.dict, stream.content.len());
            out.extend_from_slice(b"stream\n");
            out.extend_from_slice(&stream.content);
            out.extend_from_slice(b"\nendstream\nendobj\n");
        } else {
            if members > 0 {
                header.push(b' ');
                body.push(b'\n');
            }
            push_int(&mut header, i64::from(id));
            header.push(b' ');
            push_int(&mut header, body.len() as i64);
            write_object(&mut body, object);
            xref[id as usize] = (2, objstm_id, members);
            members += 1;
        }
    }

    header.push(b'\n');
    let first = header.len();
    header.extend_from_slice(&body);
    let mut objstm = Dictionary::new();
    objstm.set("Type", "ObjStm");
    objstm.set("N", i64::from(members));
    objstm.set("First", first as i64);
    xref[objstm_id as usize] = (1, out.len() as u32, 0);
    write_stream(&mut out, objstm_id, objstm, &header, &mut compress);

    // The cross-reference stream lists itself; its offset is where it starts.
    xref[xref_id as usize] = (1, out.len() as u32, 0);
    // Fields as narrow as the largest value allows: a badge's offsets fit in two bytes
    // and its object-stream indexes in one, which saves a third of the table.
    let width = |max: u32| (4 - max.leading_zeros() / 8).max(1) as usize;
    let w2 = width(xref.iter().map(|e| e.1).max().unwrap_or(0));
    let w3 = width(xref.iter().map(|e| u32::from(e.2)).max().unwrap_or(0));
    let mut table = Vec::with_capacity(size * (1 + w2 + w3));
    for (kind, field2, field3) in &xref {
        table.push(*kind);
        table.extend_from_slice(&field2.to_be_bytes()[4 - w2..]);
        table.extend_from_slice(&u32::from(*field3).to_be_bytes()[4 - w3..]);
    }
    let mut trailer = Dictionary::new();
    trailer.set("Type", "XRef");
    trailer.set("Size", size as i64);
    trailer.set(
        "W",
        Object::Array(vec![1.into(), (w2 as i64).into(), (w3 as i64).into()]),
    );
    for key in [&b"Root"[..], b"Info", b"ID"] {
        if let Some(value) = entry(&doc.trailer, key) {
            trailer.set(key.to_vec(), value.clone());
        }
    }
    let xref_offset = xref[xref_id as usize].1;
    write_stream(&mut out, xref_id, trailer, &table, &mut compress);
    let _ = write!(out, "startxref\n{xref_offset}\n%%EOF\n");
    out
}

fn write_stream(
    out: &mut Vec<u8>,
    id: u32,
    mut dict: Dictionary,
    data: &[u8],
    compress: &mut impl FnMut(&[u8]) -> Option<Vec<u8>>,
) {
    let compressed = compress(data);
    let content = match &compressed {
        Some(c) => {
            dict.set("Filter", "FlateDecode");
            c.as_slice()
        }
        None => data,
    };
    dict.set("Length", content.len() as i64);
    let _ = writeln!(out, "{id} 0 obj");
    write_dict(out, &dict);
    out.extend_from_slice(b"stream\n");
    out.extend_from_slice(content);
    out.extend_from_slice(b"\nendstream\nendobj\n");
}
