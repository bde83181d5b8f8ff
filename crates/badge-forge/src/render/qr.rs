//! The QR symbol of the badge id: encoded at error correction level M with the mask chosen
//! as the standard says, as row bitsets; and those modules merged into rectangles for the
//! SVG preview.

use std::sync::OnceLock;

use qrcode::EcLevel;
use qrcode::canvas::{Canvas, MaskPattern};

use super::RenderError;

/// The eight QR mask patterns, in the standard's order (their format-information numbers).
const MASKS: [MaskPattern; 8] = [
    MaskPattern::Checkerboard,
    MaskPattern::HorizontalLines,
    MaskPattern::VerticalLines,
    MaskPattern::DiagonalLines,
    MaskPattern::LargeCheckerboard,
    MaskPattern::Fields,
    MaskPattern::Diamonds,
    MaskPattern::Meadow,
];

/// What every symbol of one version shares: its function patterns, where each bit of the
/// codewords goes, and what each mask changes (rows and columns as bitsets).
///
/// Masking is an XOR of the mask pattern over the data modules plus the format information,
/// which depends only on the mask and error correction level. So for symbols of the same
/// version, `masked(data) = unmasked(data) ^ (unmasked(light) ^ masked(light))`, where
/// `light` is all-light data: the part in brackets is computed once per version, and each
/// badge sets its dark data bits once instead of drawing a canvas and masking it eight times.
struct VersionTables {
    /// The function patterns (finders, timing, alignment, version information) as rows and
    /// as columns; every data module light.
    pattern_rows: Vec<u128>,
    pattern_columns: Vec<u128>,
    /// `(x, y)` of the module that bit `k` of the codewords (data, then error correction,
    /// most significant bit first) is drawn in, for every bit the symbol has room for.
    positions: Vec<(u8, u8)>,
    mask_rows: [Vec<u128>; 8],
    mask_columns: [Vec<u128>; 8],
}

/// Width in modules of a QR version's symbol.
fn width_of(version: qrcode::Version) -> usize {
    version.width() as usize
}

/// The symbol's modules as row bitsets (bit `x` of row `y` set = dark module).
fn canvas_rows(canvas: &Canvas, n: usize) -> Vec<u128> {
    (0..n)
        .map(|y| {
            (0..n).fold(0u128, |row, x| {
                row | (u128::from(canvas.get(x as i16, y as i16).is_dark()) << x)
            })
        })
        .collect()
}

/// Rows turned into columns (and back): bit `y` of column `x` = bit `x` of row `y`.
fn transpose(rows: &[u128], n: usize) -> Vec<u128> {
    (0..n)
        .map(|x| {
            rows.iter()
                .enumerate()
                .fold(0u128, |col, (y, row)| col | (((row >> x) & 1) << y))
        })
        .collect()
}

impl VersionTables {
    fn new(version: qrcode::Version, data_len: usize, ec_len: usize) -> Self {
        let n = width_of(version);
        let mut light = Canvas::new(version, EcLevel::M);
        light.draw_all_functional_patterns();
        let pattern_rows = canvas_rows(&light, n);
        // Where the crate draws each bit: drawn once per bit of the bits' indexes, with the
        // codewords spelling out, in every module, that bit of the module's own index.
        let total = data_len + ec_len;
        let index_bits = usize::BITS - (8 * total).leading_zeros();
        let mut index = vec![0usize; n * n];
        let mut drawn = vec![false; n * n];
        for t in 0..index_bits {
            let codewords: Vec<u8> = (0..total)
                .map(|i| {
                    (0..8).fold(0u8, |byte, j| {
                        let k = 8 * i + 7 - j;
                        byte | (u8::from((k >> t) & 1 == 1) << j)
                    })
                })
                .collect();
            let mut canvas = light.clone();
            canvas.draw_data(&codewords[..data_len], &codewords[data_len..]);
            for y in 0..n {
                for x in 0..n {
                    if let qrcode::canvas::Module::Unmasked(colour) = canvas.get(x as i16, y as i16)
                    {
                        drawn[y * n + x] = true;
                        if colour == qrcode::Color::Dark {
                            index[y * n + x] |= 1 << t;
                        }
                    }
                }
            }
        }
        let mut positions = vec![(0u8, 0u8); drawn.iter().filter(|d| **d).count()];
        for (module, _) in drawn.iter().enumerate().filter(|(_, d)| **d) {
            positions[index[module]] = ((module % n) as u8, (module / n) as u8);
        }

        light.draw_data(&vec![0; data_len], &vec![0; ec_len]);
        let unmasked = canvas_rows(&light, n);
        let mask_rows = MASKS.map(|mask| {
            let mut masked = light.clone();
            masked.apply_mask(mask);
            canvas_rows(&masked, n)
                .into_iter()
                .zip(&unmasked)
                .map(|(m, u)| m ^ u)
                .collect::<Vec<u128>>()
        });
        let mask_columns = mask_rows.each_ref().map(|r| transpose(r, n));
        VersionTables {
            pattern_columns: transpose(&pattern_rows, n),
            pattern_rows,
            positions,
            mask_rows,
            mask_columns,
        }
    }

    /// The tables for `version` (normal QR versions 1-40), built on first use.
    fn for_version(version: qrcode::Version, data_len: usize, ec_len: usize) -> &'static Self {
        static BY_VERSION: [OnceLock<VersionTables>; 40] = [const { OnceLock::new() }; 40];
        let qrcode::Version::Normal(v) = version else {
            // encode_auto only picks normal versions; a micro one would get its own set.
            unreachable!("micro QR versions are never chosen");
        };
        BY_VERSION[(v - 1) as usize].get_or_init(|| VersionTables::new(version, data_len, ec_len))
    }
}

/// Encodes `data` as a QR code (error correction level M): its width in modules and its
/// rows as bitsets (bit `x` of row `y` set = dark module).
///
/// Same steps as `QrCode::new`, but sets the dark bits of the codewords in the version's
/// function patterns ([`VersionTables`]) and tries the eight masks as XORs of bitsets,
/// scoring them with our own penalty function: the qrcode crate's allocates per module,
/// and cloning and masking the canvas eight times was a tenth of a badge's render time.
pub(crate) fn encode(data: &[u8]) -> Result<(usize, Vec<u128>), RenderError> {
    let qr_error = |e: qrcode::types::QrError| RenderError::QrCode(e.to_string());
    let bits = qrcode::bits::encode_auto(data, EcLevel::M).map_err(qr_error)?;
    let version = bits.version();
    let n = width_of(version);
    if n > 128 {
        // Only reachable with ids far beyond MAX_ID_CHARS; rows are 128-bit sets.
        return Err(RenderError::QrCode(format!("{n} modules is too large")));
    }
    let (codewords, ec) = qrcode::ec::construct_codewords(&bits.into_bytes(), version, EcLevel::M)
        .map_err(qr_error)?;
    let tables = VersionTables::for_version(version, codewords.len(), ec.len());
    let mut rows = tables.pattern_rows.clone();
    let mut columns = tables.pattern_columns.clone();
    for (i, &byte) in codewords.iter().chain(&ec).enumerate() {
        for j in 0..8 {
            if byte & (0x80 >> j) != 0
                && let Some(&(x, y)) = tables.positions.get(8 * i + j)
            {
                rows[usize::from(y)] |= 1 << x;
                columns[usize::from(x)] |= 1 << y;
            }
        }
    }
    let mask = best_mask(tables, &rows, &columns, n);
    let mut masked_rows = vec![0u128; n];
    xor_into(&mut masked_rows, &rows, &tables.mask_rows[mask]);
    Ok((n, masked_rows))
}

/// The first of the eight masks with the lowest penalty, for the unmasked symbol `rows`
/// (and the same as `columns`).
///
/// Scoring is shifts and popcounts of whole lines, so it runs on 64-bit lines where the
/// symbol fits (up to version 11, every id of a usual length), and where the CPU has a
/// POPCNT instruction (x86-64 since about 2008, but not in the baseline target) it is
/// compiled to use it. Together they more than halve the time a badge's QR code takes
/// (docs/benchmarks.md, session 10).
fn best_mask(tables: &VersionTables, rows: &[u128], columns: &[u128], n: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("popcnt") {
        // SAFETY: the CPU was just found to have POPCNT, the one feature the function
        // is compiled for.
        return unsafe { best_mask_popcnt(tables, rows, columns, n) };
    }
    score_masks(tables, rows, columns, n)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
fn best_mask_popcnt(tables: &VersionTables, rows: &[u128], columns: &[u128], n: usize) -> usize {
    score_masks(tables, rows, columns, n)
}

/// [`best_mask`]'s work, inlined into each of its compilations.
#[inline(always)]
fn score_masks(tables: &VersionTables, rows: &[u128], columns: &[u128], n: usize) -> usize {
    if n <= 64 {
        score_masks_as::<u64>(tables, rows, columns, n)
    } else {
        score_masks_as::<u128>(tables, rows, columns, n)
    }
}

#[inline(always)]
fn score_masks_as<L: Bits>(
    tables: &VersionTables,
    rows: &[u128],
    columns: &[u128],
    n: usize,
) -> usize {
    let mut masked_rows = vec![L::ZERO; n];
    let mut masked_columns = vec![L::ZERO; n];
    let mut best = (u32::MAX, 0);
    for mask in 0..MASKS.len() {
        xor_into(&mut masked_rows, rows, &tables.mask_rows[mask]);
        xor_into(&mut masked_columns, columns, &tables.mask_columns[mask]);
        let score = penalty(&masked_rows, &masked_columns, n);
        if score < best.0 {
            best = (score, mask);
        }
    }
    best.1
}

/// `out = a ^ b`, line by line, each line cut to `L`'s width.
#[inline(always)]
fn xor_into<L: Bits>(out: &mut [L], a: &[u128], b: &[u128]) {
    for ((o, a), b) in out.iter_mut().zip(a).zip(b) {
        *o = L::truncate(a ^ b);
    }
}

/// A line of modules as a bitset: `u64` for symbols up to 64 modules wide, `u128` beyond.
trait Bits:
    Copy
    + Eq
    + std::ops::Not<Output = Self>
    + std::ops::BitAnd<Output = Self>
    + std::ops::BitOr<Output = Self>
    + std::ops::BitXor<Output = Self>
    + std::ops::Shl<u32, Output = Self>
    + std::ops::Shr<u32, Output = Self>
{
    const BITS: u32;
    const ZERO: Self;
    const ONES: Self;
    fn ones(self) -> u32;
    /// The low `BITS` bits of `line`.
    fn truncate(line: u128) -> Self;
}

/// `Bits` for the unsigned integers, whose operators it names.
macro_rules! bits {
    ($($line:ty),*) => {$(
        impl Bits for $line {
            const BITS: u32 = <$line>::BITS;
            const ZERO: Self = 0;
            const ONES: Self = !0;
            #[inline(always)]
            fn ones(self) -> u32 {
                self.count_ones()
            }
            #[inline(always)]
            fn truncate(line: u128) -> Self {
                line as $line
            }
        }
    )*};
}
bits!(u64, u128);

/// The QR mask penalty (ISO/IEC 18004 §7.8.3): runs of five or more, 2×2 blocks,
/// finder-like 1:1:3:1:1 patterns next to four light modules, and dark/light imbalance.
///
/// Rows and columns are bitsets (bit `x` = module `x`, `n <= L::BITS`), so every rule is a
/// few shifts and popcounts per line.
#[inline(always)]
fn penalty<L: Bits>(rows: &[L], columns: &[L], n: usize) -> u32 {
    let inside = L::ONES >> (L::BITS - n as u32);

    let mut score = 0;
    for &a in rows.iter().chain(columns) {
        // Runs of five or more score run - 2 = (run - 4) + 2: one point per window of five
        // like modules, and two per stretch of such windows (one stretch per run), counted
        // with shifts instead of walking the run boundaries.
        let same = !(a ^ (a >> 1)) & (inside >> 1);
        let fives = same & (same >> 1) & (same >> 2) & (same >> 3);
        let stretches = fives & !(fives << 1);
        score += fives.ones() + 2 * stretches.ones();
        // Finder-like dark-light-dark×3-light-dark starting at bit x, with four light
        // modules before or after it; outside the symbol counts as light (quiet zone).
        let finder =
            a & !(a >> 1) & (a >> 2) & (a >> 3) & (a >> 4) & !(a >> 5) & (a >> 6) & (inside >> 6);
        if finder != L::ZERO {
            let light = !a | !inside;
            let before = (1..=4).fold(L::ONES, |acc, k| acc & ((light << k) | !(L::ONES << k)));
            let after = (7..=10).fold(L::ONES, |acc, k| acc & ((light >> k) | !(L::ONES >> k)));
            score += 40 * (finder & (before | after)).ones();
        }
    }
    // 2×2 blocks of one colour.
    for pair in rows.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let same = !(a ^ b) & !(a ^ (a >> 1)) & !(b ^ (b >> 1)) & (inside >> 1);
        score += 3 * same.ones();
    }
    let dark_count: u32 = rows.iter().map(|r| r.ones()).sum();
    let percent = dark_count as usize * 100 / (n * n);
    score + 10 * (percent.abs_diff(50) / 5) as u32
}

/// Merges the dark modules of `rows` into as few rectangles as a greedy row-run merge
/// finds (runs that repeat on the next row grow downwards), as `[x, y, w, h]`.
pub(crate) fn rects(rows: &[u128]) -> Vec<[u16; 4]> {
    let mut done: Vec<[u16; 4]> = Vec::new();
    let mut open: Vec<[u16; 4]> = Vec::new();
    for (y, &row) in rows.iter().enumerate() {
        let mut runs = Vec::new();
        let mut rest = row;
        while rest != 0 {
            let start = rest.trailing_zeros();
            let len = (!(rest >> start)).trailing_zeros();
            runs.push((start as u16, len as u16));
            let run = u128::MAX.checked_shr(128 - len).unwrap_or(0) << start;
            rest &= !run;
        }
        let mut next_open = Vec::with_capacity(runs.len());
        for (rx, rw) in runs {
            match open.iter().position(|r| r[0] == rx && r[2] == rw) {
                Some(i) => {
                    let mut r = open.swap_remove(i);
                    r[3] += 1;
                    next_open.push(r);
                }
                None => next_open.push([rx, y as u16, rw, 1]),
            }
        }
        done.append(&mut open);
        open = next_open;
    }
    done.append(&mut open);
    done.sort_unstable_by_key(|r| (r[1], r[0]));
    done
}

#[cfg(test)]
mod tests {
    use super::*;
    use qrcode::Color as QrColor;

    #[test]
    fn qr_is_the_best_of_the_crates_eight_masked_symbols() {
        // Masking by XOR with per-version deltas must give exactly the crate's masked
        // symbols (data, format information and all), and we must pick the first one with
        // the lowest penalty. Ids of several lengths cover several versions; "b-3" scores
        // masks 0 and 2 alike, the lowest, so the choice between tied masks is seen too.
        let ids = [
            "b-3".to_string(),
            "4f0c2b1e-9d7a-4c55-8e21-0b6f3a9d2c10".to_string(),
            "x".repeat(60),
            "0123456789abcdef".repeat(8),
        ];
        let mut widths = std::collections::BTreeSet::new();
        for id in &ids {
            let (n, rows) = encode(id.as_bytes()).unwrap();
            widths.insert(n);
            let bits = qrcode::bits::encode_auto(id.as_bytes(), EcLevel::M).unwrap();
            let version = bits.version();
            let (data, ec) =
                qrcode::ec::construct_codewords(&bits.into_bytes(), version, EcLevel::M).unwrap();
            let mut canvas = Canvas::new(version, EcLevel::M);
            canvas.draw_all_functional_patterns();
            canvas.draw_data(&data, &ec);
            let candidates: Vec<Vec<u128>> = MASKS
                .iter()
                .map(|&m| {
                    let mut c = canvas.clone();
                    c.apply_mask(m);
                    let colors = c.into_colors();
                    (0..n)
                        .map(|y| {
                            (0..n).fold(0u128, |r, x| {
                                r | (u128::from(colors[y * n + x] == QrColor::Dark) << x)
                            })
                        })
                        .collect()
                })
                .collect();
            let penalties: Vec<u32> = candidates
                .iter()
                .map(|c| penalty(c, &transpose(c, n), n))
                .collect();
            let lowest = *penalties.iter().min().unwrap();
            let first_lowest = penalties.iter().position(|&p| p == lowest).unwrap();
            assert_eq!(rows, candidates[first_lowest], "id {id:?}");
        }
        assert_eq!(widths.len(), ids.len(), "one version per id: {widths:?}");
    }

    #[test]
    fn penalty_scores_follow_the_standard() {
        // 5×5 all light: each of 5 rows and 5 columns is one run of 5 (3 points each),
        // 16 2×2 blocks (3 each), 0 % dark (10 × 10 points).
        assert_eq!(penalty(&[0u128; 5], &[0; 5], 5), 10 * 3 + 16 * 3 + 100);
        assert_eq!(penalty(&[0u64; 5], &[0; 5], 5), 10 * 3 + 16 * 3 + 100);
        // 11×11 light with a finder-like 1:1:3:1:1 row in the middle (columns 2..9):
        // runs: 10 light rows (9 each), 5 split columns (3 + 3), 6 light columns (9);
        // blocks: 84 uniform; one finder pattern (40); 4 % dark (9 × 10 points).
        let mut grid = [0u128; 11];
        grid[5] = 0b1011101 << 2;
        assert_eq!(
            penalty(&grid, &transpose(&grid, 11), 11),
            90 + 30 + 54 + 84 * 3 + 40 + 90
        );
    }

    #[test]
    fn narrow_and_wide_lines_score_alike() {
        // Every symbol up to 64 modules wide is scored on 64-bit lines: the same scores as
        // on 128-bit ones, for symbols 21, 57 and 61 modules wide (the last reaches bit 60,
        // near the narrow line's end) and a full 64-module grid, each scrambled eight ways.
        let mut symbols: Vec<(usize, Vec<u128>)> = ["b-1", &"x".repeat(200), &"y".repeat(240)]
            .iter()
            .map(|id| encode(id.as_bytes()).unwrap())
            .collect();
        let stripes = (0..64)
            .map(|y| 0x0F0F_7A5A_F0F0_A5A5u128.rotate_left(y))
            .collect();
        symbols.push((64, stripes));
        let mut widths = Vec::new();
        for (n, rows) in symbols {
            widths.push(n);
            // Eight scramblings of each, standing in for masks.
            for k in 1..=8u128 {
                let masked: Vec<u128> = (0..n)
                    .map(|y| {
                        let scramble = (0x9E37_79B9_7F4A_7C15 * k).rotate_left(7 * y as u32);
                        (rows[y] ^ scramble) & (u128::MAX >> (128 - n))
                    })
                    .collect();
                let columns = transpose(&masked, n);
                let narrow = |lines: &[u128]| lines.iter().map(|&l| l as u64).collect::<Vec<_>>();
                assert_eq!(
                    penalty(&narrow(&masked), &narrow(&columns), n),
                    penalty(&masked, &columns, n),
                    "{n} modules, scrambling {k}"
                );
            }
        }
        assert_eq!(widths, [21, 57, 61, 64], "the symbols' widths");
    }

    #[test]
    fn qr_rectangles_cover_exactly_the_dark_modules() {
        let id = "4f0c2b1e-9d7a-4c55-8e21-0b6f3a9d2c10";
        let (n, rows) = encode(id.as_bytes()).unwrap();
        let rects = rects(&rows);
        let mut covered = vec![0u8; n * n];
        for [x, y, w, h] in &rects {
            for yy in *y..y + h {
                for xx in *x..x + w {
                    covered[usize::from(yy) * n + usize::from(xx)] += 1;
                }
            }
        }
        let dark: Vec<u8> = (0..n * n)
            .map(|i| ((rows[i / n] >> (i % n)) & 1) as u8)
            .collect();
        assert_eq!(
            covered, dark,
            "every dark module exactly once, no light one"
        );
        let dark_count = dark.iter().filter(|d| **d == 1).count();
        assert!(rects.len() * 2 < dark_count, "merging saves rectangles");
    }
}
