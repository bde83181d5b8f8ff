//! Minimal sfnt (TrueType) table surgery for embedded subsets.
//!
//! Hand-written because `subsetter` keeps a `name` table that makes a badge PDF about a sixth
//! larger (docs/benchmarks.md, "the hand-written PDF parts against the libraries").
//!
//! `subsetter` keeps most of the `name` table, whose licence and description strings are
//! about 1.5 KB per face: a fifth of a badge PDF. A font program embedded in a PDF needs
//! no `name` table at all (PDF names the font in its own dictionaries); we keep a minimal
//! one with the copyright notice and PostScript name, so the embedded program still says
//! whose it is.

/// Builds a `name` table (format 0) with records for the copyright notice (name id 0)
/// and the PostScript name (name id 6).
///
/// ASCII strings get Macintosh Roman records (one byte per character, of which ASCII is
/// a subset), others Windows Unicode ones (UTF-16): the notice is the larger part of the
/// table, and half its bytes saves about 50 B per embedded font after compression.
pub(crate) fn minimal_name_table(copyright: &str, ps_name: &str) -> Vec<u8> {
    // (platform, encoding, language) for each kind of record.
    const MAC_ROMAN: [u16; 3] = [1, 0, 0];
    const WINDOWS_UNICODE: [u16; 3] = [3, 1, 0x0409];
    let mut strings: Vec<([u16; 3], u16, Vec<u8>)> = [(0u16, copyright), (6, ps_name)]
        .into_iter()
        .map(|(id, s)| {
            if s.is_ascii() {
                (MAC_ROMAN, id, s.as_bytes().to_vec())
            } else {
                let utf16 = s.encode_utf16().flat_map(u16::to_be_bytes).collect();
                (WINDOWS_UNICODE, id, utf16)
            }
        })
        .collect();
    // Records sorted by platform, encoding, language, then name id.
    strings.sort_by_key(|(platform, id, _)| (*platform, *id));
    let count = strings.len() as u16;
    let mut out = Vec::new();
    out.extend(0u16.to_be_bytes()); // format
    out.extend(count.to_be_bytes());
    out.extend((6 + 12 * count).to_be_bytes()); // storage offset
    let mut offset = 0u16;
    for ([platform, encoding, language], id, bytes) in &strings {
        for field in [
            *platform,
            *encoding,
            *language,
            *id,
            bytes.len() as u16,
            offset,
        ] {
            out.extend(field.to_be_bytes());
        }
        offset += bytes.len() as u16;
    }
    for (_, _, bytes) in strings {
        out.extend(bytes);
    }
    out
}

fn read_u16(data: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(data.get(at..at + 2)?.try_into().ok()?))
}

fn read_u32(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

fn checksum(data: &[u8]) -> u32 {
    let mut words = data.chunks_exact(4);
    let sum = words.by_ref().fold(0u32, |sum, word| {
        sum.wrapping_add(u32::from_be_bytes([word[0], word[1], word[2], word[3]]))
    });
    // The last word, padded with zeros.
    let mut last = [0u8; 4];
    last[..words.remainder().len()].copy_from_slice(words.remainder());
    sum.wrapping_add(u32::from_be_bytes(last))
}

/// Rebuilds the font `font` with its `tag` table replaced by `table`, recomputing the
/// table directory, checksums and `head.checkSumAdjustment`. `None` if `font` is not a
/// well-formed single-face sfnt.
pub(crate) fn replace_table(font: &[u8], tag: &[u8; 4], table: &[u8]) -> Option<Vec<u8>> {
    let count = usize::from(read_u16(font, 4)?);
    let mut tables: Vec<([u8; 4], &[u8])> = Vec::with_capacity(count);
    for i in 0..count {
        let record = 12 + 16 * i;
        let this_tag: [u8; 4] = font.get(record..record + 4)?.try_into().ok()?;
        let offset = read_u32(font, record + 8)? as usize;
        let length = read_u32(font, record + 12)? as usize;
        let data = font.get(offset..offset.checked_add(length)?)?;
        tables.push((this_tag, if &this_tag == tag { table } else { data }));
    }

    let mut out = Vec::with_capacity(font.len());
    out.extend_from_slice(&font[..12]);
    let mut offset = 12 + 16 * count;
    let mut head_at = None;
    for (tag, data) in &tables {
        let mut sum = checksum(data);
        if tag == b"head" {
            // The adjustment is computed with this (word-aligned) field zeroed.
            sum = sum.wrapping_sub(read_u32(data, 8)?);
            head_at = Some(offset);
        }
        out.extend_from_slice(tag);
        out.extend(sum.to_be_bytes());
        out.extend((offset as u32).to_be_bytes());
        out.extend((data.len() as u32).to_be_bytes());
        offset += data.len().next_multiple_of(4);
    }
    for (tag, data) in &tables {
        let start = out.len();
        out.extend_from_slice(data);
        if tag == b"head" {
            out.get_mut(start + 8..start + 12)?.fill(0);
        }
        out.resize(out.len().next_multiple_of(4), 0);
    }
    if let Some(at) = head_at {
        let adjustment = 0xB1B0_AFBAu32.wrapping_sub(checksum(&out));
        out[at + 8..at + 12].copy_from_slice(&adjustment.to_be_bytes());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustybuzz::ttf_parser::{Face, PlatformId, name_id};

    #[test]
    fn replaced_name_table_parses_and_checksums() {
        let fonts = crate::render::fonts::FontSet::get().unwrap();
        let original = fonts.face(0).data;
        let name = minimal_name_table("Copyright © Test", "Test-Regular");
        let slim = replace_table(original, b"name", &name).unwrap();
        assert!(slim.len() < original.len());
        let face = Face::parse(&slim, 0).unwrap();
        // A non-ASCII notice stays UTF-16 (Windows); the ASCII name is Mac Roman.
        let names: Vec<(u16, PlatformId, String)> = face
            .names()
            .into_iter()
            .map(|n| {
                let text = match n.platform_id {
                    PlatformId::Macintosh => String::from_utf8(n.name.to_vec()).unwrap(),
                    _ => n.to_string().unwrap(),
                };
                (n.name_id, n.platform_id, text)
            })
            .collect();
        assert_eq!(
            names,
            vec![
                (
                    name_id::POST_SCRIPT_NAME,
                    PlatformId::Macintosh,
                    "Test-Regular".to_string()
                ),
                (
                    name_id::COPYRIGHT_NOTICE,
                    PlatformId::Windows,
                    "Copyright © Test".to_string()
                ),
            ]
        );
        let ascii = minimal_name_table("Copyright Test", "Test-Regular");
        assert_eq!(
            ascii.len(),
            6 + 2 * 12 + "Copyright Test".len() + "Test-Regular".len()
        );
        assert_eq!(face.glyph_index('A'), fonts.face(0).face.glyph_index('A'));
        // The whole font, including the adjustment, sums to the magic constant.
        assert_eq!(checksum(&slim), 0xB1B0_AFBA);
    }
}
