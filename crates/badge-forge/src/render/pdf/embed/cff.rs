//! Subsets of the bundled CID-keyed CFF face (Noto Sans CJK), with the font's structure
//! located once per process.
//!
//! Hand-written because `subsetter` is several times slower on this face, and still slower on a
//! desubroutinized copy of it (docs/benchmarks.md, "the hand-written PDF parts against the
//! libraries", which also says how to drop this module).
//!
//! `subsetter` parses the whole `CFF ` table and collects every global and local
//! subroutine into vectors on each call: for the CJK face (65,535 glyphs, thousands of
//! subroutines in 19 font dicts) that was about a millisecond per badge with a CJK name,
//! whatever the glyphs. Here [`CidCff::parse`] locates the INDEXes, FDSelect and font
//! dicts once; a subset then reads only the glyphs it needs. Each glyph's charstring is
//! desubroutinized (calls inlined, as `subsetter` also does) and the glyphs are written as
//! a new CID-keyed CFF with an identity charset (CID = new glyph id, so the content
//! stream's codes are the glyph ids), the font dicts the glyphs use, and their private
//! dicts without subroutines.
//!
//! Anything unexpected (an arithmetic charstring operator, a malformed table) returns
//! `None`, and the caller falls back to `subsetter`.

/// Reads a big-endian `u16`.
fn read_u16(data: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(data.get(at..at + 2)?.try_into().ok()?))
}

/// A CFF INDEX (CFF spec §5) located in the table.
#[derive(Clone, Copy)]
struct Index<'a> {
    table: &'a [u8],
    count: usize,
    off_size: usize,
    /// Where the offset array starts.
    offsets_at: usize,
    /// The byte before the first element: offsets count from 1.
    base: usize,
    /// The first byte after the INDEX.
    end: usize,
}

impl<'a> Index<'a> {
    fn parse(table: &'a [u8], at: usize) -> Option<Self> {
        let count = usize::from(read_u16(table, at)?);
        if count == 0 {
            return Some(Index {
                table,
                count,
                off_size: 1,
                offsets_at: at + 2,
                base: at + 2,
                end: at + 2,
            });
        }
        let off_size = usize::from(*table.get(at + 2)?);
        if !(1..=4).contains(&off_size) {
            return None;
        }
        let offsets_at = at + 3;
        let mut index = Index {
            table,
            count,
            off_size,
            offsets_at,
            base: offsets_at + (count + 1) * off_size - 1,
            end: 0,
        };
        index.end = index.base + index.offset(count)?;
        (index.end <= table.len()).then_some(index)
    }

    fn offset(&self, i: usize) -> Option<usize> {
        let at = self.offsets_at + i * self.off_size;
        let bytes = self.table.get(at..at + self.off_size)?;
        Some(bytes.iter().fold(0, |v, &b| (v << 8) | usize::from(b)))
    }

    fn get(&self, i: usize) -> Option<&'a [u8]> {
        if i >= self.count {
            return None;
        }
        let (start, end) = (self.offset(i)?, self.offset(i + 1)?);
        if start == 0 || end < start {
            return None;
        }
        self.table.get(self.base + start..self.base + end)
    }

    /// The subroutine number bias (Type 2 charstrings, §4.7).
    fn bias(&self) -> i32 {
        match self.count {
            0..1240 => 107,
            1240..33900 => 1131,
            _ => 32768,
        }
    }
}

/// Operator codes; escaped operators (`12 x`) are `1200 + x`.
mod op {
    pub(super) const NOTICE: u16 = 1;
    pub(super) const FONT_BBOX: u16 = 5;
    pub(super) const CHARSET: u16 = 15;
    pub(super) const CHAR_STRINGS: u16 = 17;
    pub(super) const PRIVATE: u16 = 18;
    pub(super) const SUBRS: u16 = 19;
    pub(super) const COPYRIGHT: u16 = 1200;
    pub(super) const FONT_MATRIX: u16 = 1207;
    pub(super) const ROS: u16 = 1230;
    pub(super) const CID_COUNT: u16 = 1234;
    pub(super) const FD_ARRAY: u16 = 1236;
    pub(super) const FD_SELECT: u16 = 1237;
    pub(super) const FONT_NAME: u16 = 1238;
}

/// One DICT entry: its operator, its bytes (operands and operator, to copy verbatim) and
/// its operands (reals read as 0: no operand we interpret is a real).
struct Entry<'a> {
    op: u16,
    raw: &'a [u8],
    operands: Vec<i32>,
}

fn parse_dict(data: &[u8]) -> Option<Vec<Entry<'_>>> {
    let mut entries = Vec::new();
    let mut operands = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < data.len() {
        let b0 = data[i];
        let byte = |k: usize| data.get(i + k).copied().map(i32::from);
        match b0 {
            0..=21 => {
                let op = if b0 == 12 {
                    i += 1;
                    1200 + u16::from(*data.get(i)?)
                } else {
                    u16::from(b0)
                };
                i += 1;
                entries.push(Entry {
                    op,
                    raw: &data[start..i],
                    operands: std::mem::take(&mut operands),
                });
                start = i;
            }
            28 => {
                operands.push(i32::from(i16::from_be_bytes([
                    *data.get(i + 1)?,
                    *data.get(i + 2)?,
                ])));
                i += 3;
            }
            29 => {
                operands.push(i32::from_be_bytes(data.get(i + 1..i + 5)?.try_into().ok()?));
                i += 5;
            }
            30 => {
                // A real: nibbles up to and including an 0xf end nibble.
                i += 1;
                loop {
                    let b = *data.get(i)?;
                    i += 1;
                    if b >> 4 == 0xf || b & 0xf == 0xf {
                        break;
                    }
                }
                operands.push(0);
            }
            32..=246 => {
                operands.push(i32::from(b0) - 139);
                i += 1;
            }
            247..=250 => {
                operands.push((i32::from(b0) - 247) * 256 + byte(1)? + 108);
                i += 2;
            }
            251..=254 => {
                operands.push(-(i32::from(b0) - 251) * 256 - byte(1)? - 108);
                i += 2;
            }
            _ => return None,
        }
    }
    Some(entries)
}

fn find<'e, 'a>(entries: &'e [Entry<'a>], op: u16) -> Option<&'e Entry<'a>> {
    entries.iter().find(|e| e.op == op)
}

/// The single operand of `op`, as an offset or count.
fn operand(entries: &[Entry<'_>], op: u16, at: usize) -> Option<usize> {
    usize::try_from(*find(entries, op)?.operands.get(at)?).ok()
}

/// A font dict of the FDArray: its entries to copy, its private dict's entries to copy and
/// its local subroutines.
struct FontDict<'a> {
    /// Everything but `Private` and `FontName` (whose string is not carried over).
    entries: Vec<&'a [u8]>,
    /// Everything but `Subrs` (calls are inlined).
    private: Vec<&'a [u8]>,
    subrs: Option<Index<'a>>,
}

/// How glyphs map to font dicts.
enum FdSelect<'a> {
    /// One font dict index per glyph.
    PerGlyph(&'a [u8]),
    /// Ranges `(first glyph, fd)` sorted by glyph, and the sentinel (glyph count).
    Ranges(Vec<(u16, u8)>, u16),
}

impl FdSelect<'_> {
    fn get(&self, gid: u16) -> Option<u8> {
        match self {
            FdSelect::PerGlyph(fds) => fds.get(usize::from(gid)).copied(),
            FdSelect::Ranges(ranges, sentinel) => {
                if gid >= *sentinel {
                    return None;
                }
                let i = ranges.partition_point(|&(first, _)| first <= gid);
                Some(ranges.get(i.checked_sub(1)?)?.1)
            }
        }
    }
}

/// A CID-keyed CFF table, located.
pub(crate) struct CidCff<'a> {
    global_subrs: Index<'a>,
    char_strings: Index<'a>,
    fd_select: FdSelect<'a>,
    font_dicts: Vec<FontDict<'a>>,
    /// Top DICT entries copied verbatim.
    bbox: Option<&'a [u8]>,
    matrix: Option<&'a [u8]>,
    /// Notice and copyright strings, carried into the subset.
    notices: Vec<(u16, &'a [u8])>,
}

impl<'a> CidCff<'a> {
    /// Locates the structures of `table` (a whole `CFF ` table). `None` if it is not a
    /// well-formed CID-keyed CFF.
    pub(crate) fn parse(table: &'a [u8]) -> Option<Self> {
        if *table.first()? != 1 {
            return None;
        }
        let names = Index::parse(table, usize::from(*table.get(2)?))?;
        let tops = Index::parse(table, names.end)?;
        let strings = Index::parse(table, tops.end)?;
        let global_subrs = Index::parse(table, strings.end)?;
        let top = parse_dict(tops.get(0)?)?;
        find(&top, op::ROS)?;
        let char_strings = Index::parse(table, operand(&top, op::CHAR_STRINGS, 0)?)?;
        let glyphs = char_strings.count;

        let fd_select_at = operand(&top, op::FD_SELECT, 0)?;
        let fd_select = match *table.get(fd_select_at)? {
            0 => FdSelect::PerGlyph(table.get(fd_select_at + 1..fd_select_at + 1 + glyphs)?),
            3 => {
                let n = usize::from(read_u16(table, fd_select_at + 1)?);
                let ranges = (0..n)
                    .map(|k| {
                        let at = fd_select_at + 3 + 3 * k;
                        Some((read_u16(table, at)?, *table.get(at + 2)?))
                    })
                    .collect::<Option<Vec<_>>>()?;
                FdSelect::Ranges(ranges, read_u16(table, fd_select_at + 3 + 3 * n)?)
            }
            _ => return None,
        };

        let fd_array = Index::parse(table, operand(&top, op::FD_ARRAY, 0)?)?;
        let font_dicts = (0..fd_array.count)
            .map(|k| {
                let dict = parse_dict(fd_array.get(k)?)?;
                let size = operand(&dict, op::PRIVATE, 0)?;
                let at = operand(&dict, op::PRIVATE, 1)?;
                let private = parse_dict(table.get(at..at + size)?)?;
                let subrs = match operand(&private, op::SUBRS, 0) {
                    Some(offset) => Some(Index::parse(table, at + offset)?),
                    None => None,
                };
                Some(FontDict {
                    entries: dict
                        .iter()
                        .filter(|e| e.op != op::PRIVATE && e.op != op::FONT_NAME)
                        .map(|e| e.raw)
                        .collect(),
                    private: private
                        .iter()
                        .filter(|e| e.op != op::SUBRS)
                        .map(|e| e.raw)
                        .collect(),
                    subrs,
                })
            })
            .collect::<Option<Vec<_>>>()?;

        let string = |sid: usize| match sid {
            0..391 => None, // a standard string: not a notice
            _ => strings.get(sid - 391),
        };
        let notices = [op::NOTICE, op::COPYRIGHT]
            .into_iter()
            .filter_map(|o| Some((o, string(operand(&top, o, 0)?)?)))
            .collect();
        Some(CidCff {
            global_subrs,
            char_strings,
            fd_select,
            font_dicts,
            bbox: find(&top, op::FONT_BBOX).map(|e| e.raw),
            matrix: find(&top, op::FONT_MATRIX).map(|e| e.raw),
            notices,
        })
    }

    /// Number of glyphs in the font.
    #[cfg(test)]
    fn glyph_count(&self) -> usize {
        self.char_strings.count
    }

    /// A CID-keyed CFF holding `gids` (old glyph ids, in their new order: the glyph at
    /// position `i` becomes glyph and CID `i`; `gids[0]` should be 0, `.notdef`), named
    /// `name`.
    pub(crate) fn subset(&self, name: &str, gids: &[u16]) -> Option<Vec<u8>> {
        // Charstrings and the font dict of each glyph (renumbered in order of first use).
        let mut used_fds: Vec<u8> = Vec::new();
        let mut fd_of = Vec::with_capacity(gids.len());
        let mut char_strings = Vec::with_capacity(gids.len());
        for &gid in gids {
            let fd = self.fd_select.get(gid)?;
            let new_fd = match used_fds.iter().position(|&f| f == fd) {
                Some(k) => k,
                None => {
                    used_fds.push(fd);
                    used_fds.len() - 1
                }
            };
            fd_of.push(u8::try_from(new_fd).ok()?);
            let dict = self.font_dicts.get(usize::from(fd))?;
            let mut desub = Desubroutinizer {
                global: self.global_subrs,
                local: dict.subrs,
                out: Vec::with_capacity(256),
                stack: 0,
                stems: 0,
                last_number: None,
                ended: false,
            };
            desub.run(self.char_strings.get(usize::from(gid))?, 0)?;
            char_strings.push(desub.out);
        }

        // Strings: 391 "Adobe", 392 "Identity", then the notices.
        let mut strings: Vec<&[u8]> = vec![b"Adobe", b"Identity"];
        let mut top = Vec::with_capacity(128);
        for sid in [391, 392, 0] {
            push_int(&mut top, sid);
        }
        push_op(&mut top, op::ROS);
        for &(o, text) in &self.notices {
            strings.push(text);
            push_int(&mut top, 390 + strings.len() as i32);
            push_op(&mut top, o);
        }
        top.extend(self.bbox.into_iter().chain(self.matrix).flatten());
        push_int(&mut top, i32::try_from(gids.len()).ok()?);
        push_op(&mut top, op::CID_COUNT);
        // Offsets, patched once the layout is known (5-byte integers keep sizes fixed).
        let mut patches = Vec::new();
        for o in [op::CHARSET, op::FD_SELECT, op::FD_ARRAY, op::CHAR_STRINGS] {
            patches.push((o, top.len()));
            push_int5(&mut top, 0);
            push_op(&mut top, o);
        }

        let mut out = Vec::with_capacity(4096);
        out.extend_from_slice(&[1, 0, 4, 4]);
        write_index(&mut out, &[name.as_bytes()])?;
        let top_at = write_index(&mut out, &[&top])?[0];
        write_index(&mut out, &strings)?;
        write_index(&mut out, &[])?; // no global subroutines: calls are inlined

        let charset_at = out.len();
        match gids.len() {
            0 => return None,
            1 => out.push(0), // format 0, no entries: only .notdef
            n => {
                // Format 2, one range: glyphs 1.. are CIDs 1..
                out.push(2);
                out.extend_from_slice(&1u16.to_be_bytes());
                out.extend_from_slice(&u16::try_from(n - 2).ok()?.to_be_bytes());
            }
        }
        let fd_select_at = out.len();
        out.push(0);
        out.extend_from_slice(&fd_of);
        let char_strings_at = out.len();
        let refs: Vec<&[u8]> = char_strings.iter().map(Vec::as_slice).collect();
        write_index(&mut out, &refs)?;

        let fd_array_at = out.len();
        let mut fd_dicts = Vec::with_capacity(used_fds.len());
        let mut private_patches = Vec::with_capacity(used_fds.len());
        for &fd in &used_fds {
            let dict = &self.font_dicts[usize::from(fd)];
            let mut bytes: Vec<u8> = dict.entries.concat();
            private_patches.push(bytes.len());
            push_int5(&mut bytes, 0);
            push_int5(&mut bytes, 0);
            push_op(&mut bytes, op::PRIVATE);
            fd_dicts.push(bytes);
        }
        let refs: Vec<&[u8]> = fd_dicts.iter().map(Vec::as_slice).collect();
        let fd_starts = write_index(&mut out, &refs)?;
        for (k, &fd) in used_fds.iter().enumerate() {
            let private = self.font_dicts[usize::from(fd)].private.concat();
            let at = fd_starts[k] + private_patches[k];
            patch_int5(&mut out, at, private.len())?;
            let private_at = out.len();
            patch_int5(&mut out, at + 5, private_at)?;
            out.extend_from_slice(&private);
        }

        for (o, at) in patches {
            let value = match o {
                op::CHARSET => charset_at,
                op::FD_SELECT => fd_select_at,
                op::FD_ARRAY => fd_array_at,
                _ => char_strings_at,
            };
            patch_int5(&mut out, top_at + at, value)?;
        }
        Some(out)
    }
}

/// Inlines the subroutine calls of one Type 2 charstring.
struct Desubroutinizer<'a> {
    global: Index<'a>,
    local: Option<Index<'a>>,
    out: Vec<u8>,
    /// Operands on the argument stack.
    stack: usize,
    /// Stem hints declared so far (they size the hintmask bytes).
    stems: usize,
    /// Where in `out` the last operand starts, and its value if it is an integer.
    last_number: Option<(usize, Option<i32>)>,
    ended: bool,
}

impl Desubroutinizer<'_> {
    fn run(&mut self, code: &[u8], depth: u8) -> Option<()> {
        // The Type 2 limit on nested subroutine calls.
        if depth > 10 {
            return None;
        }
        let mut i = 0;
        while i < code.len() {
            let b0 = code[i];
            let (len, value) = match b0 {
                28 => (
                    3,
                    Some(i32::from(i16::from_be_bytes([
                        *code.get(i + 1)?,
                        *code.get(i + 2)?,
                    ]))),
                ),
                32..=246 => (1, Some(i32::from(b0) - 139)),
                247..=250 => (
                    2,
                    Some((i32::from(b0) - 247) * 256 + i32::from(*code.get(i + 1)?) + 108),
                ),
                251..=254 => (
                    2,
                    Some(-(i32::from(b0) - 251) * 256 - i32::from(*code.get(i + 1)?) - 108),
                ),
                255 => (5, None), // 16.16 fixed
                _ => (0, None),
            };
            if len > 0 {
                self.last_number = Some((self.out.len(), value));
                self.out.extend_from_slice(code.get(i..i + len)?);
                self.stack += 1;
                i += len;
                continue;
            }
            match b0 {
                // callsubr, callgsubr: pop the (biased) subroutine number and run it here.
                10 | 29 => {
                    let (at, number) = self.last_number.take()?;
                    let subrs = if b0 == 10 { self.local? } else { self.global };
                    let sub = subrs.get(usize::try_from(number? + subrs.bias()).ok()?)?;
                    self.out.truncate(at);
                    self.stack -= 1;
                    self.run(sub, depth + 1)?;
                    if self.ended {
                        return Some(());
                    }
                    i += 1;
                }
                // return
                11 => return Some(()),
                // endchar
                14 => {
                    self.out.push(b0);
                    self.ended = true;
                    return Some(());
                }
                // hstem, vstem, hstemhm, vstemhm
                1 | 3 | 18 | 23 => {
                    self.stems += self.stack / 2;
                    self.operator(&code[i..=i]);
                    i += 1;
                }
                // hintmask, cntrmask: operands before them are an implicit vstem; the mask
                // bytes follow the operator.
                19 | 20 => {
                    self.stems += self.stack / 2;
                    let end = i + 1 + self.stems.div_ceil(8);
                    self.operator(code.get(i..end)?);
                    i = end;
                }
                12 => {
                    // Only the flex operators; the arithmetic and storage ones would need
                    // a real interpreter (and do not occur in the bundled face).
                    let b1 = *code.get(i + 1)?;
                    if !(34..=37).contains(&b1) {
                        return None;
                    }
                    self.operator(&code[i..i + 2]);
                    i += 2;
                }
                0 | 2 | 9 | 13 | 15..=17 => return None, // reserved
                _ => {
                    self.operator(&code[i..=i]);
                    i += 1;
                }
            }
        }
        Some(())
    }

    /// Copies a stack-clearing operator.
    fn operator(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
        self.stack = 0;
        self.last_number = None;
    }
}

/// Appends a DICT integer in its shortest form.
fn push_int(out: &mut Vec<u8>, v: i32) {
    match v {
        -107..=107 => out.push((v + 139) as u8),
        108..=1131 => {
            let v = v - 108;
            out.extend_from_slice(&[(v / 256 + 247) as u8, (v % 256) as u8]);
        }
        -1131..=-108 => {
            let v = -v - 108;
            out.extend_from_slice(&[(v / 256 + 251) as u8, (v % 256) as u8]);
        }
        -32768..=32767 => {
            out.push(28);
            out.extend_from_slice(&(v as i16).to_be_bytes());
        }
        _ => push_int5(out, v),
    }
}

/// Appends a DICT integer as five bytes (operator 29), whatever its value.
fn push_int5(out: &mut Vec<u8>, v: i32) {
    out.push(29);
    out.extend_from_slice(&v.to_be_bytes());
}

fn patch_int5(out: &mut [u8], at: usize, v: usize) -> Option<()> {
    out.get_mut(at + 1..at + 5)?
        .copy_from_slice(&i32::try_from(v).ok()?.to_be_bytes());
    Some(())
}

fn push_op(out: &mut Vec<u8>, op: u16) {
    if op >= 1200 {
        out.extend_from_slice(&[12, (op - 1200) as u8]);
    } else {
        out.push(op as u8);
    }
}

/// Appends an INDEX of `items`; returns where each item's data starts in `out`.
fn write_index(out: &mut Vec<u8>, items: &[&[u8]]) -> Option<Vec<usize>> {
    out.extend_from_slice(&u16::try_from(items.len()).ok()?.to_be_bytes());
    if items.is_empty() {
        return Some(Vec::new());
    }
    let total: usize = items.iter().map(|i| i.len()).sum::<usize>() + 1;
    let off_size = match total {
        0..=0xff => 1,
        0x100..=0xffff => 2,
        0x1_0000..=0xff_ffff => 3,
        _ => 4,
    };
    out.push(off_size as u8);
    // Offsets 1, 1 + len(item 0), ...: one more than there are items.
    let mut offset = 1usize;
    for item in std::iter::once(&[][..]).chain(items.iter().copied()) {
        offset += item.len();
        out.extend_from_slice(&offset.to_be_bytes()[size_of::<usize>() - off_size..]);
    }
    let mut starts = Vec::with_capacity(items.len());
    for item in items {
        starts.push(out.len());
        out.extend_from_slice(item);
    }
    Some(starts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::fonts::FontSet;
    use rustybuzz::ttf_parser::{self, GlyphId, OutlineBuilder, Tag};

    /// Records an outline as text, to compare glyphs drawn from two fonts.
    #[derive(Default)]
    struct Pen(String);

    impl OutlineBuilder for Pen {
        fn move_to(&mut self, x: f32, y: f32) {
            self.0 += &format!("M{x} {y}");
        }
        fn line_to(&mut self, x: f32, y: f32) {
            self.0 += &format!("L{x} {y}");
        }
        fn quad_to(&mut self, x1: f32, y1: f32, x: f32, y: f32) {
            self.0 += &format!("Q{x1} {y1} {x} {y}");
        }
        fn curve_to(&mut self, x1: f32, y1: f32, x2: f32, y2: f32, x: f32, y: f32) {
            self.0 += &format!("C{x1} {y1} {x2} {y2} {x} {y}");
        }
        fn close(&mut self) {
            self.0 += "Z";
        }
    }

    #[test]
    fn subset_glyphs_draw_like_the_original() {
        let fonts = FontSet::get().unwrap();
        let face = fonts.face(6);
        let table = face
            .face
            .raw_face()
            .table(Tag::from_bytes(b"CFF "))
            .unwrap();
        let cff = CidCff::parse(table).expect("the CJK face is CID-keyed CFF");
        assert_eq!(cff.glyph_count(), usize::from(face.face.number_of_glyphs()));

        let text = "山田太郎김민준王小明株式会社サンプル";
        let mut gids = vec![0u16];
        gids.extend(text.chars().map(|c| face.face.glyph_index(c).unwrap().0));
        let subset = cff.subset("Test-Bold", &gids).unwrap();
        let parsed = ttf_parser::cff::Table::parse(&subset).expect("the subset parses");
        assert_eq!(parsed.number_of_glyphs(), gids.len() as u16);
        for (new, &old) in gids.iter().enumerate().skip(1) {
            let mut original = Pen::default();
            let mut ours = Pen::default();
            face.face
                .outline_glyph(GlyphId(old), &mut original)
                .unwrap();
            parsed
                .outline(GlyphId(new as u16), &mut ours)
                .expect("the subset glyph draws");
            assert_eq!(ours.0, original.0, "glyph {old} -> {new}");
            // CID-keyed with an identity charset: glyph i is CID i.
            assert_eq!(parsed.glyph_cid(GlyphId(new as u16)), Some(new as u16));
        }
        assert!(subset.len() < 20_000, "{} bytes", subset.len());
    }
}
