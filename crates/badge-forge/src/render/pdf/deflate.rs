//! zlib streams (RFC 1950 around one RFC 1951 DEFLATE block) for a PDF's large streams, the
//! font programs: a few KiB each for a badge.
//!
//! Hand-written because zlib-rs, sized for large inputs, costs more than it needs to on such
//! a stream (docs/benchmarks.md, "Session 9: render CPU"): at the level that builds Huffman
//! codes for the data it clears a 128 KiB hash table and a 48 KiB symbol buffer per stream
//! and builds each code with a heap. Here the hash table is sized to the input and never
//! cleared, the buffers are reused, each code is built from sorted frequencies, matching is
//! greedy along a short hash chain, and the block takes dynamic or fixed codes, whichever is
//! smaller.

use std::cell::RefCell;
use std::sync::LazyLock;

/// Matches are found by hashes of this many bytes (DEFLATE allows 3).
const MIN_MATCH: usize = 4;
/// The longest match DEFLATE can code.
const MAX_MATCH: usize = 258;
/// The farthest back a match may reach.
const WINDOW: usize = 32768;
/// Earlier positions with the same hash tried per position: past a few, the font programs
/// gain almost nothing for the time.
const MAX_CHAIN: u32 = 8;
/// The hash table's size in bits at most (and at least).
const MAX_HASH_BITS: u32 = 15;
const MIN_HASH_BITS: u32 = 8;

/// Marks a match in [`Buffers::symbols`] ([`Match`]); otherwise a symbol is a literal byte.
const MATCH: u32 = 1 << 31;

/// Literal/length symbols (0-255 bytes, 256 end of block, 257-285 lengths; 286 and 287 are
/// never used but complete the fixed code) and distance symbols DEFLATE defines.
const LITLEN_SYMBOLS: usize = 288;
const DIST_SYMBOLS: usize = 30;
const END_OF_BLOCK: usize = 256;

const LENGTH_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LENGTH_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
const DIST_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
const DIST_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];
/// The order in which the dynamic header gives the code-length code's lengths.
const CODE_LENGTH_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

/// What one thread reuses from stream to stream.
#[derive(Default)]
struct Buffers {
    /// Latest position with each hash, as `base` + position + 1 (`base` or less: none).
    head: Vec<u32>,
    /// For each position, the previous position with the same hash, as in `head`.
    prev: Vec<u32>,
    /// Where this stream's positions start in `head` and `prev`.
    base: u32,
    symbols: Vec<u32>,
}

thread_local! {
    static BUFFERS: RefCell<Buffers> = RefCell::new(Buffers::default());
}

/// `data` as a zlib stream, if that takes at most `limit` bytes.
pub(super) fn compress(data: &[u8], limit: usize) -> Option<Vec<u8>> {
    BUFFERS.with_borrow_mut(|buffers| {
        let mut freqs = Frequencies {
            litlen: [0; LITLEN_SYMBOLS],
            dist: [0; DIST_SYMBOLS],
        };
        find_matches(data, buffers, &mut freqs);
        freqs.litlen[END_OF_BLOCK] = 1;
        let block = Block::choose(&freqs);
        // zlib header, the block, the Adler-32 checksum.
        if 2 + block.bits.div_ceil(8) + 4 > limit {
            return None;
        }
        let mut out = Bits::with_capacity(2 + block.bits.div_ceil(8) + 4 + 8);
        // Deflate with a 32 KiB window, no preset dictionary (0x7801 is a multiple of 31).
        out.bytes.extend_from_slice(&[0x78, 0x01]);
        block.write(&buffers.symbols, &mut out);
        let mut bytes = out.finish();
        bytes.extend_from_slice(&adler32(data).to_be_bytes());
        Some(bytes)
    })
}

/// How often each symbol occurs in the block.
struct Frequencies {
    litlen: [u32; LITLEN_SYMBOLS],
    dist: [u32; DIST_SYMBOLS],
}

/// The length symbol (0-28, to add to 257) of a match length (3-258).
fn length_code(len: usize) -> usize {
    let x = len - 3;
    if len == MAX_MATCH {
        28
    } else if x < 8 {
        x
    } else {
        let log = x.ilog2() as usize;
        4 * (log - 1) + ((x >> (log - 2)) & 3)
    }
}

/// The distance symbol (0-29) of a match distance (1-32768).
fn distance_code(dist: usize) -> usize {
    let x = dist - 1;
    if x < 4 {
        x
    } else {
        let log = x.ilog2() as usize;
        2 * log + ((x >> (log - 1)) & 1)
    }
}

/// Fills `buffers.symbols` with `data` as literals and matches (greedy: the longest match
/// among the chain's candidates at each position), counting the symbols in `freqs`.
fn find_matches(data: &[u8], buffers: &mut Buffers, freqs: &mut Frequencies) {
    let n = data.len();
    let bits = (usize::BITS - n.leading_zeros()).clamp(MIN_HASH_BITS, MAX_HASH_BITS);
    let Buffers {
        head,
        prev,
        base,
        symbols,
    } = buffers;
    // Entries up to `base` are from earlier streams, so the tables need no clearing; only
    // when positions would run past u32 are they cleared and `base` starts again.
    if u32::try_from(n + 1)
        .ok()
        .and_then(|len| base.checked_add(len))
        .is_none()
    {
        head.clear();
        *base = 0;
    }
    let start = *base;
    *base += n as u32 + 1;
    if head.len() < 1 << bits {
        head.resize(1 << bits, 0);
    }
    if prev.len() < n {
        prev.resize(n, 0);
    }
    let (head, prev) = (&mut head[..1 << bits], prev.as_mut_slice());
    symbols.clear();
    symbols.reserve(n);
    let word = |i: usize| u32::from_le_bytes(data[i..i + 4].try_into().unwrap_or_default());
    let hash = |word: u32| (word.wrapping_mul(0x9E37_79B1) >> (32 - bits)) as usize;
    let mut i = 0;
    while i + MIN_MATCH <= n {
        let here = word(i);
        let h = hash(here);
        let mut candidate = head[h];
        prev[i] = candidate;
        head[h] = start + i as u32 + 1;
        let max_len = (n - i).min(MAX_MATCH);
        let (mut best_len, mut best_dist) = (0, 0);
        let mut chain = MAX_CHAIN;
        while candidate > start {
            let c = (candidate - start) as usize - 1;
            if i - c > WINDOW {
                break;
            }
            // A candidate can only beat the best if it also matches at the best's length.
            if word(c) == here && data[c + best_len] == data[i + best_len] {
                let len = MIN_MATCH
                    + common_prefix(&data[c + MIN_MATCH..], &data[i + MIN_MATCH..i + max_len]);
                if len > best_len {
                    (best_len, best_dist) = (len, i - c);
                    if len == max_len {
                        break;
                    }
                }
            }
            chain -= 1;
            if chain == 0 {
                break;
            }
            candidate = prev[c];
        }
        if best_len == 0 {
            symbols.push(u32::from(data[i]));
            freqs.litlen[usize::from(data[i])] += 1;
            i += 1;
            continue;
        }
        let symbol = Match::new(best_len, best_dist);
        freqs.litlen[symbol.length_symbol()] += 1;
        freqs.dist[symbol.distance_symbol()] += 1;
        symbols.push(symbol.0);
        // The positions inside the match go into the chains too, for later matches.
        let inside = i + 1..(i + best_len).min(n + 1 - MIN_MATCH);
        for (j, link) in inside.clone().zip(&mut prev[inside]) {
            let h = hash(word(j));
            *link = head[h];
            head[h] = start + j as u32 + 1;
        }
        i += best_len;
    }
    for &byte in &data[i..] {
        symbols.push(u32::from(byte));
        freqs.litlen[usize::from(byte)] += 1;
    }
}

/// A match as a symbol of [`Buffers::symbols`], coded as it will be written: bit 31 set,
/// the length symbol minus 257 in bits 26-30 and its extra bits' value in 21-25, the
/// distance symbol in bits 16-20 and its extra bits' value in 0-12.
#[derive(Clone, Copy)]
struct Match(u32);

impl Match {
    fn new(len: usize, dist: usize) -> Self {
        let lc = length_code(len);
        let dc = distance_code(dist);
        let len_extra = (len - usize::from(LENGTH_BASE[lc])) as u32;
        let dist_extra = (dist - usize::from(DIST_BASE[dc])) as u32;
        Match(MATCH | (lc as u32) << 26 | len_extra << 21 | (dc as u32) << 16 | dist_extra)
    }

    fn length_symbol(self) -> usize {
        257 + ((self.0 >> 26) & 0x1f) as usize
    }

    fn length_extra(self) -> u32 {
        (self.0 >> 21) & 0x1f
    }

    fn distance_symbol(self) -> usize {
        ((self.0 >> 16) & 0x1f) as usize
    }

    fn distance_extra(self) -> u32 {
        self.0 & 0x1fff
    }
}

/// How many leading bytes `a` and `b` share (`a` at least as long as `b`).
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let mut len = 0;
    while len + 8 <= b.len() {
        let x = u64::from_le_bytes(a[len..len + 8].try_into().unwrap_or_default());
        let y = u64::from_le_bytes(b[len..len + 8].try_into().unwrap_or_default());
        let diff = x ^ y;
        if diff != 0 {
            return len + (diff.trailing_zeros() / 8) as usize;
        }
        len += 8;
    }
    while len < b.len() && a[len] == b[len] {
        len += 1;
    }
    len
}

/// Code lengths (at most `max_bits`) for symbols of `freqs` into `lengths`: a
/// minimum-redundancy code (Moffat and Katajainen's in-place method), its longest codes
/// shortened as miniz and zlib do when they exceed the limit. With fewer than two symbols
/// used, two get one-bit codes, so that every code is complete.
fn code_lengths(freqs: &[u32], max_bits: usize, lengths: &mut [u8]) {
    lengths.fill(0);
    // Frequency and symbol in one integer, to sort by frequency (then symbol) quickly.
    let mut packed = [0u64; LITLEN_SYMBOLS];
    let mut count = 0;
    for (symbol, &f) in freqs.iter().enumerate() {
        if f > 0 {
            packed[count] = u64::from(f) << 16 | symbol as u64;
            count += 1;
        }
    }
    let used = &mut packed[..count];
    let symbol = |packed: u64| (packed & 0xffff) as usize;
    if used.len() < 2 {
        let only = used.first().map_or(0, |&u| symbol(u));
        lengths[only] = 1;
        lengths[usize::from(only == 0)] = 1;
        return;
    }
    used.sort_unstable();
    let mut depths = [0u32; LITLEN_SYMBOLS];
    let depths = &mut depths[..used.len()];
    for (depth, &u) in depths.iter_mut().zip(used.iter()) {
        *depth = (u >> 16) as u32;
    }
    minimum_redundancy(depths);
    let mut count = [0u32; 16];
    for &depth in depths.iter() {
        count[(depth as usize).min(max_bits)] += 1;
    }
    // Codes cut down to max_bits overfill the code space: move codes down a level, one
    // unit of the space at a time, until the lengths fit (Kraft sum exactly one).
    let mut total: u32 = (1..=max_bits).map(|l| count[l] << (max_bits - l)).sum();
    while total > 1 << max_bits {
        count[max_bits] -= 1;
        if let Some(l) = (1..max_bits).rev().find(|&l| count[l] != 0) {
            count[l] -= 1;
            count[l + 1] += 2;
        }
        total -= 1;
    }
    // The most frequent symbols (last in `used`) get the shortest codes.
    let mut j = used.len();
    for (length, &n) in count.iter().enumerate().take(max_bits + 1).skip(1) {
        for _ in 0..n {
            j -= 1;
            lengths[symbol(used[j])] = length as u8;
        }
    }
}

/// Turns the weights `a` (ascending, at least two) into the code lengths of a
/// minimum-redundancy code, in place (Moffat and Katajainen, 1995).
fn minimum_redundancy(a: &mut [u32]) {
    let n = a.len();
    // First pass: pair the two lightest nodes, leaves or internal, keeping parent links.
    a[0] += a[1];
    let (mut root, mut leaf) = (0, 2);
    for next in 1..n - 1 {
        if leaf >= n || a[root] < a[leaf] {
            a[next] = a[root];
            a[root] = next as u32;
            root += 1;
        } else {
            a[next] = a[leaf];
            leaf += 1;
        }
        if leaf >= n || (root < next && a[root] < a[leaf]) {
            a[next] += a[root];
            a[root] = next as u32;
            root += 1;
        } else {
            a[next] += a[leaf];
            leaf += 1;
        }
    }
    // Second pass: internal nodes' depths from their parents'.
    a[n - 2] = 0;
    for next in (0..n - 2).rev() {
        a[next] = a[a[next] as usize] + 1;
    }
    // Third pass: leaves' depths, from the internal nodes at each depth.
    let (mut available, mut used, mut depth) = (1u32, 0u32, 0u32);
    let mut root = n as isize - 2;
    let mut next = n as isize - 1;
    while available > 0 {
        while root >= 0 && a[root as usize] == depth {
            used += 1;
            root -= 1;
        }
        while available > used {
            a[next as usize] = depth;
            next -= 1;
            available -= 1;
        }
        available = 2 * used;
        depth += 1;
        used = 0;
    }
}

/// Each byte with its bits in reverse order.
const REVERSED: [u8; 256] = {
    let mut table = [0; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = (byte as u8).reverse_bits();
        byte += 1;
    }
    table
};

/// Canonical codes for `lengths`, bit-reversed (DEFLATE sends codes most significant bit
/// first into a stream written least significant bit first).
fn canonical_codes(lengths: &[u8], codes: &mut [u16]) {
    let mut count = [0u16; 16];
    for &l in lengths {
        count[usize::from(l)] += 1;
    }
    count[0] = 0;
    let mut next = [0u16; 16];
    let mut code = 0u16;
    for bits in 1..16 {
        code = (code + count[bits - 1]) << 1;
        next[bits] = code;
    }
    for (symbol, &l) in lengths.iter().enumerate() {
        if l > 0 {
            let code = next[usize::from(l)];
            let reversed = u16::from(REVERSED[usize::from(code as u8)]) << 8
                | u16::from(REVERSED[usize::from(code >> 8)]);
            codes[symbol] = reversed >> (16 - l);
            next[usize::from(l)] += 1;
        }
    }
}

/// Bits `freqs` take in a code of `lengths`.
fn cost(freqs: &[u32], lengths: &[u8]) -> usize {
    freqs
        .iter()
        .zip(lengths)
        .map(|(&f, &l)| f as usize * usize::from(l))
        .sum()
}

/// A Huffman code: each symbol's (bit-reversed) code in the low 16 bits, its length in the
/// next 8 and the number of extra bits that follow the symbol in the top 8.
struct Code<const N: usize> {
    packed: [u32; N],
}

impl<const N: usize> Code<N> {
    fn new(lengths: [u8; N], extra_bits: &[u8]) -> Self {
        let mut codes = [0; N];
        canonical_codes(&lengths, &mut codes);
        let mut packed = [0; N];
        for (symbol, p) in packed.iter_mut().enumerate() {
            let extra = extra_bits.get(symbol).copied().unwrap_or(0);
            *p = u32::from(codes[symbol])
                | u32::from(lengths[symbol]) << 16
                | u32::from(extra) << 24;
        }
        Code { packed }
    }

    /// `symbol`'s code followed by its extra bits, `extra`.
    fn put(&self, symbol: usize, extra: u32, out: &mut Bits) {
        let p = self.packed[symbol];
        let length = (p >> 16) & 0xff;
        out.put((p & 0xffff) | extra << length, length + (p >> 24));
    }
}

/// The extra bits after each literal/length symbol, distance symbol and code-length symbol.
const LITLEN_EXTRA: [u8; LITLEN_SYMBOLS] = {
    let mut extra = [0; LITLEN_SYMBOLS];
    let mut code = 0;
    while code < LENGTH_EXTRA.len() {
        extra[257 + code] = LENGTH_EXTRA[code];
        code += 1;
    }
    extra
};
const CODE_LENGTH_EXTRA: [u8; 19] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3, 7];

/// DEFLATE's fixed literal/length code lengths.
const FIXED_LITLEN: [u8; LITLEN_SYMBOLS] = {
    let mut lengths = [8; LITLEN_SYMBOLS];
    let mut symbol = 144;
    while symbol < 280 {
        lengths[symbol] = if symbol < 256 { 9 } else { 7 };
        symbol += 1;
    }
    lengths
};
const FIXED_DIST: [u8; DIST_SYMBOLS] = [5; DIST_SYMBOLS];

/// The fixed codes, built once.
static FIXED: LazyLock<(Code<LITLEN_SYMBOLS>, Code<DIST_SYMBOLS>)> = LazyLock::new(|| {
    (
        Code::new(FIXED_LITLEN, &LITLEN_EXTRA),
        Code::new(FIXED_DIST, &DIST_EXTRA),
    )
});

/// The block's code lengths: `None` for the fixed codes.
struct Block {
    dynamic: Option<Dynamic>,
    /// The whole block's size in bits.
    bits: usize,
}

/// A dynamic block's code lengths, and its header describing them: the lengths, run-length
/// coded, and the code for those.
struct Dynamic {
    litlen: [u8; LITLEN_SYMBOLS],
    dist: [u8; DIST_SYMBOLS],
    litlen_count: usize,
    dist_count: usize,
    lengths_code: [u8; 19],
    lengths_code_count: usize,
    /// Code-length symbols with their extra bits' value.
    runs: Vec<(u8, u8)>,
}

impl Block {
    /// The codes, dynamic or fixed, that make the smaller block for `freqs`.
    fn choose(freqs: &Frequencies) -> Block {
        let extra: usize = freqs.litlen[257..]
            .iter()
            .zip(LENGTH_EXTRA)
            .chain(freqs.dist.iter().zip(DIST_EXTRA))
            .map(|(&f, e)| f as usize * usize::from(e))
            .sum();
        let fixed_bits =
            3 + cost(&freqs.litlen, &FIXED_LITLEN) + cost(&freqs.dist, &FIXED_DIST) + extra;
        let (dynamic, dynamic_bits) = Dynamic::new(freqs);
        if fixed_bits <= dynamic_bits + extra {
            Block {
                dynamic: None,
                bits: fixed_bits,
            }
        } else {
            Block {
                dynamic: Some(dynamic),
                bits: dynamic_bits + extra,
            }
        }
    }

    /// Writes the block (the last of the stream) with `symbols` and the end of block.
    fn write(&self, symbols: &[u32], out: &mut Bits) {
        let built;
        let (litlen, dist) = match &self.dynamic {
            None => {
                out.put(0b011, 3);
                (&FIXED.0, &FIXED.1)
            }
            Some(dynamic) => {
                out.put(0b101, 3);
                dynamic.write_header(out);
                built = (
                    Code::new(dynamic.litlen, &LITLEN_EXTRA),
                    Code::new(dynamic.dist, &DIST_EXTRA),
                );
                (&built.0, &built.1)
            }
        };
        for &symbol in symbols {
            if symbol & MATCH == 0 {
                litlen.put(symbol as usize, 0, out);
                continue;
            }
            let m = Match(symbol);
            litlen.put(m.length_symbol(), m.length_extra(), out);
            dist.put(m.distance_symbol(), m.distance_extra(), out);
        }
        litlen.put(END_OF_BLOCK, 0, out);
    }
}

impl Dynamic {
    /// Codes for `freqs`, and the bits of the block's header and symbols, extra bits not
    /// included.
    fn new(freqs: &Frequencies) -> (Dynamic, usize) {
        let mut litlen = [0; LITLEN_SYMBOLS];
        code_lengths(&freqs.litlen, 15, &mut litlen);
        let mut dist = [0; DIST_SYMBOLS];
        code_lengths(&freqs.dist, 15, &mut dist);
        let used = |lengths: &[u8], at_least: usize| {
            lengths
                .iter()
                .rposition(|&l| l != 0)
                .map_or(0, |p| p + 1)
                .max(at_least)
        };
        let litlen_count = used(&litlen, 257);
        let dist_count = used(&dist, 1);
        let mut all = [0; LITLEN_SYMBOLS + DIST_SYMBOLS];
        all[..litlen_count].copy_from_slice(&litlen[..litlen_count]);
        all[litlen_count..litlen_count + dist_count].copy_from_slice(&dist[..dist_count]);
        let runs = run_lengths(&all[..litlen_count + dist_count]);
        let mut lengths_freqs = [0u32; 19];
        for &(symbol, _) in &runs {
            lengths_freqs[usize::from(symbol)] += 1;
        }
        let mut lengths_code = [0; 19];
        code_lengths(&lengths_freqs, 7, &mut lengths_code);
        let lengths_code_count = used(&CODE_LENGTH_ORDER.map(|s| lengths_code[s]), 4);
        let run_extra: usize = runs
            .iter()
            .map(|&(symbol, _)| usize::from(CODE_LENGTH_EXTRA[usize::from(symbol)]))
            .sum();
        let bits = 3
            + 14
            + 3 * lengths_code_count
            + cost(&lengths_freqs, &lengths_code)
            + run_extra
            + cost(&freqs.litlen, &litlen)
            + cost(&freqs.dist, &dist);
        let dynamic = Dynamic {
            litlen,
            dist,
            litlen_count,
            dist_count,
            lengths_code,
            lengths_code_count,
            runs,
        };
        (dynamic, bits)
    }

    fn write_header(&self, out: &mut Bits) {
        out.put(self.litlen_count as u32 - 257, 5);
        out.put(self.dist_count as u32 - 1, 5);
        out.put(self.lengths_code_count as u32 - 4, 4);
        for &symbol in &CODE_LENGTH_ORDER[..self.lengths_code_count] {
            out.put(u32::from(self.lengths_code[symbol]), 3);
        }
        let code = Code::new(self.lengths_code, &CODE_LENGTH_EXTRA);
        for &(symbol, extra) in &self.runs {
            code.put(usize::from(symbol), u32::from(extra), out);
        }
    }
}

/// Code lengths as the header's symbols: lengths 0-15, 16 (repeat the previous length 3-6
/// times), 17 (3-10 zeros) and 18 (11-138 zeros), each with its extra bits' value.
fn run_lengths(lengths: &[u8]) -> Vec<(u8, u8)> {
    let mut runs = Vec::new();
    let mut i = 0;
    while i < lengths.len() {
        let length = lengths[i];
        let run = lengths[i..].iter().take_while(|&&l| l == length).count();
        let mut left = run;
        if length == 0 {
            while left >= 11 {
                let k = left.min(138);
                runs.push((18, (k - 11) as u8));
                left -= k;
            }
            if left >= 3 {
                runs.push((17, (left - 3) as u8));
                left = 0;
            }
        } else {
            runs.push((length, 0));
            left -= 1;
            while left >= 3 {
                let k = left.min(6);
                runs.push((16, (k - 3) as u8));
                left -= k;
            }
        }
        runs.extend(std::iter::repeat_n((length, 0), left));
        i += run;
    }
    runs
}

/// A bit stream written least significant bit first, as DEFLATE's.
struct Bits {
    bytes: Vec<u8>,
    pending: u64,
    count: u32,
}

impl Bits {
    fn with_capacity(capacity: usize) -> Self {
        Bits {
            bytes: Vec::with_capacity(capacity),
            pending: 0,
            count: 0,
        }
    }

    /// Appends the low `bits` bits of `value` (at most 32).
    fn put(&mut self, value: u32, bits: u32) {
        self.pending |= u64::from(value) << self.count;
        self.count += bits;
        if self.count >= 32 {
            self.bytes
                .extend_from_slice(&(self.pending as u32).to_le_bytes());
            self.pending >>= 32;
            self.count -= 32;
        }
    }

    /// The bytes, the last one padded with zero bits.
    fn finish(mut self) -> Vec<u8> {
        let tail = self.count.div_ceil(8) as usize;
        self.bytes
            .extend_from_slice(&self.pending.to_le_bytes()[..tail]);
        self.bytes
    }
}

/// The Adler-32 checksum zlib ends a stream with.
fn adler32(data: &[u8]) -> u32 {
    const MOD: u32 = 65521;
    // The most bytes before `b` could overflow 32 bits.
    const CHUNK: usize = 5552;
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in data.chunks(CHUNK) {
        for &byte in chunk {
            a += u32::from(byte);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn inflate(stream: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::ZlibDecoder::new(stream)
            .read_to_end(&mut out)
            .expect("a valid zlib stream");
        out
    }

    /// Deterministic bytes, `period` of them repeating with a few changes, so that there are
    /// matches of every length and distance.
    fn sample(len: usize, period: usize, seed: u64) -> Vec<u8> {
        let mut state = seed;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as u8
        };
        let base: Vec<u8> = (0..period).map(|_| next()).collect();
        (0..len)
            .map(|i| {
                let b = next();
                if b < 16 { b } else { base[i % period] }
            })
            .collect()
    }

    #[test]
    fn streams_inflate_to_their_data() {
        let text = b"BT /F1 12 Tf 72 712 Td (Ada Lovelace) Tj ET\n".repeat(40);
        let mut inputs: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"a".to_vec(),
            b"abcd".to_vec(),
            text,
            (0..=255u8).collect(),
            vec![0; 100_000],
            (0..70_000u32)
                .flat_map(|i| (i * 2_654_435_761).to_le_bytes())
                .collect(),
        ];
        for (len, period) in [
            (2_000, 700),
            (40_000, 33_000),
            (100_000, 20_000),
            (5_000, 3),
        ] {
            inputs.push(sample(len, period, len as u64));
        }
        for data in &inputs {
            let stream = compress(data, usize::MAX).expect("no limit");
            assert_eq!(inflate(&stream), *data, "{} bytes", data.len());
        }
        // Repeated data shrinks.
        let zeros = compress(&vec![0; 100_000], usize::MAX).unwrap();
        assert!(zeros.len() < 200, "{} bytes", zeros.len());
    }

    /// Many streams of every shape a font program or a hostile input might take: lengths
    /// from empty to beyond the window, alphabets of one byte to all 256, runs, repeats near
    /// and far, each compressed after the others on the same buffers and inflated by zlib-rs.
    #[test]
    fn a_thousand_varied_streams_round_trip() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |bound: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % bound as u64) as usize
        };
        for round in 0..1_000 {
            let len = match round % 4 {
                0 => next(64),
                1 => next(4_096),
                2 => next(40_000),
                _ => WINDOW + next(8_192),
            };
            let alphabet = 1 + next(256);
            let mut data = Vec::with_capacity(len);
            while data.len() < len {
                match next(4) {
                    // A literal stretch.
                    0 | 1 => data.extend((0..1 + next(32)).map(|_| next(alphabet) as u8)),
                    // A run of one byte.
                    2 => data.extend(std::iter::repeat_n(next(alphabet) as u8, 1 + next(300))),
                    // A copy of earlier bytes, near or up to the window's reach.
                    _ if !data.is_empty() => {
                        let from = data.len() - 1 - next(data.len().min(WINDOW + 64));
                        for i in 0..1 + next(300) {
                            data.push(data[from + i % (data.len() - from)]);
                        }
                    }
                    _ => {}
                }
            }
            data.truncate(len);
            let stream = compress(&data, usize::MAX).expect("no limit");
            assert_eq!(inflate(&stream), data, "round {round}, {len} bytes");
        }
    }

    #[test]
    fn positions_left_from_earlier_streams_are_never_matched() {
        // Earlier streams' positions stay in the tables: a stream with the same bytes must not
        // reach back into them, also when the positions start again from zero.
        let data = sample(20_000, 5_000, 3);
        let short = sample(3_000, 900, 4);
        for base in [0, u32::MAX - 25_000] {
            BUFFERS.with_borrow_mut(|buffers| buffers.base = base);
            for input in [&data, &short, &data] {
                let stream = compress(input, usize::MAX).unwrap();
                assert_eq!(inflate(&stream), *input, "base {base}");
            }
        }
    }

    #[test]
    fn a_stream_over_the_limit_is_not_made() {
        let data = sample(3_000, 1_000, 7);
        let size = compress(&data, usize::MAX).unwrap().len();
        assert_eq!(compress(&data, size).map(|s| s.len()), Some(size));
        assert_eq!(compress(&data, size - 1), None);
    }

    #[test]
    fn code_lengths_stay_within_the_limit_and_fill_the_code_space() {
        // Fibonacci frequencies make a minimum-redundancy code as deep as there are symbols.
        let mut freqs = [0u32; 30];
        let (mut a, mut b) = (1, 1);
        for f in &mut freqs {
            *f = a;
            (a, b) = (b, a + b);
        }
        for max_bits in [7, 15] {
            let mut lengths = [0u8; 30];
            code_lengths(&freqs, max_bits, &mut lengths);
            assert!(lengths.iter().all(|&l| (1..=max_bits as u8).contains(&l)));
            let kraft: u64 = lengths.iter().map(|&l| 1u64 << (max_bits as u8 - l)).sum();
            assert_eq!(kraft, 1 << max_bits, "{lengths:?}");
        }
        let mut lengths = [0u8; 4];
        code_lengths(&[5, 1, 1, 2], 15, &mut lengths);
        assert_eq!(lengths, [1, 3, 3, 2]);
    }

    #[test]
    fn symbols_follow_the_format() {
        assert_eq!(length_code(3), 0);
        assert_eq!(length_code(10), 7);
        assert_eq!(length_code(11), 8);
        assert_eq!(length_code(12), 8);
        assert_eq!(length_code(13), 9);
        assert_eq!(length_code(227), 27);
        assert_eq!(length_code(257), 27);
        assert_eq!(length_code(258), 28);
        assert_eq!(distance_code(1), 0);
        assert_eq!(distance_code(4), 3);
        assert_eq!(distance_code(5), 4);
        assert_eq!(distance_code(7), 5);
        assert_eq!(distance_code(24577), 29);
        assert_eq!(distance_code(32768), 29);
        // Every length and distance falls in its symbol's range (base, base + 2^extra bits).
        let covers = |value: usize, symbol: usize, base: &[u16], extra: &[u8]| {
            let first = usize::from(base[symbol]);
            (first..first + (1 << extra[symbol])).contains(&value)
        };
        for len in 3..=MAX_MATCH {
            let symbol = length_code(len);
            assert!(covers(len, symbol, &LENGTH_BASE, &LENGTH_EXTRA), "{len}");
        }
        for dist in 1..=WINDOW {
            let symbol = distance_code(dist);
            assert!(covers(dist, symbol, &DIST_BASE, &DIST_EXTRA), "{dist}");
        }
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
    }
}
