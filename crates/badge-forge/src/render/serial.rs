//! Writes the PDF object graph printpdf built as a compact PDF 1.5 file.
//!
//! Every non-stream object (page, font and descriptor dictionaries, `/Info`, ...) goes
//! into one compressed object stream, and the cross-reference table is a compressed
//! cross-reference stream: for a badge that is about a sixth of the file. lopdf can
//! write the same structure, but compresses the object stream with a fresh zlib state
//! per file and formats every object twice; writing it here, with the per-thread
//! libdeflate compressor, took a tenth off the render time.

use std::io::Write;

use lopdf::{Dictionary, Object, StringFormat};

/// Appends `object` in PDF syntax.
fn write_object(out: &mut Vec<u8>, object: &Object) {
    match object {
        Object::Null => out.extend_from_slice(b"null"),
        Object::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Object::Integer(i) => {
            let _ = write!(out, "{i}");
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
            for b in bytes {
                let _ = write!(out, "{b:02X}");
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
            let _ = write!(out, "{id} {generation} R");
        }
    }
}

fn write_name(out: &mut Vec<u8>, name: &[u8]) {
    out.push(b'/');
    for &b in name {
        if !(33..=126).contains(&b) || b"()<>[]{}/%#".contains(&b) {
            let _ = write!(out, "#{b:02X}");
        } else {
            out.push(b);
        }
    }
}

fn write_dict(out: &mut Vec<u8>, dict: &Dictionary) {
    out.extend_from_slice(b"<<");
    for (key, value) in dict.iter() {
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
    out.extend_from_slice(b">>");
}

/// Serialises `doc` as PDF 1.5 with one object stream and a cross-reference stream,
/// compressing both with `compress` (zlib format; `None` leaves the data as is).
pub(crate) fn write_file(
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
            let _ = writeln!(out, "{id} 0 obj");
            let mut dict = stream.dict.clone();
            dict.set("Length", stream.content.len() as i64);
            write_dict(&mut out, &dict);
            out.extend_from_slice(b"stream\n");
            out.extend_from_slice(&stream.content);
            out.extend_from_slice(b"\nendstream\nendobj\n");
        } else {
            if members > 0 {
                header.push(b' ');
                body.push(b'\n');
            }
            let _ = write!(header, "{id} {}", body.len());
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
        if let Ok(value) = doc.trailer.get(key) {
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
