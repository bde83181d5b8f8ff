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
    let mut masked_rows = vec![0u128; n];
    let mut masked_columns = vec![0u128; n];
    let mut best: Option<(u32, usize)> = None;
    for mask in 0..MASKS.len() {
        xor_into(&mut masked_rows, &rows, &tables.mask_rows[mask]);
        xor_into(&mut masked_columns, &columns, &tables.mask_columns[mask]);
        let score = penalty(&masked_rows, &masked_columns, n);
        if best.is_none_or(|(p, _)| score < p) {
            best = Some((score, mask));
        }
    }
    let (_, mask) = best.ok_or_else(|| RenderError::QrCode("no mask".into()))?;
    xor_into(&mut masked_rows, &rows, &tables.mask_rows[mask]);
    Ok((n, masked_rows))
}

fn xor_into(out: &mut [u128], a: &[u128], b: &[u128]) {
    for ((o, a), b) in out.iter_mut().zip(a).zip(b) {
        *o = a ^ b;
    }
}

/// The QR mask penalty (ISO/IEC 18004 §7.8.3): runs of five or more, 2×2 blocks,
/// finder-like 1:1:3:1:1 patterns next to four light modules, and dark/light imbalance.
///
/// Rows and columns are bitsets (bit `x` = module `x`, `n <= 128`), so every rule is a few
/// shifts and popcounts per line.
fn penalty(rows: &[u128], columns: &[u128], n: usize) -> u32 {
    let inside: u128 = if n == 128 { !0 } else { (1 << n) - 1 };

    let mut score = 0;
    for &a in rows.iter().chain(columns) {
        // Runs of five or more score run - 2 = (run - 4) + 2: one point per window of five
        // like modules, and two per stretch of such windows (one stretch per run), counted
        // with shifts instead of walking the run boundaries.
        let same = !(a ^ (a >> 1)) & (inside >> 1);
        let fives = same & (same >> 1) & (same >> 2) & (same >> 3);
        let stretches = fives & !(fives << 1);
        score += fives.count_ones() + 2 * stretches.count_ones();
        // Finder-like dark-light-dark×3-light-dark starting at bit x, with four light
        // modules before or after it; outside the symbol counts as light (quiet zone).
        let finder =
            a & !(a >> 1) & (a >> 2) & (a >> 3) & (a >> 4) & !(a >> 5) & (a >> 6) & (inside >> 6);
        if finder != 0 {
            let light = !a | !inside;
            let before = (1..=4).fold(!0u128, |acc, k| acc & ((light << k) | ((1 << k) - 1)));
            let after = (7..=10).fold(!0u128, |acc, k| acc & ((light >> k) | !(!0u128 >> k)));
            score += 40 * (finder & (before | after)).count_ones();
        }
    }
    // 2×2 blocks of one colour.
    for pair in rows.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let same = !(a ^ b) & !(a ^ (a >> 1)) & !(b ^ (b >> 1)) & (inside >> 1);
        score += 3 * same.count_ones();
    }
    let dark_count: u32 = rows.iter().map(|r| r.count_ones()).sum();
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
        // the lowest penalty. Ids of several lengths cover several versions.
        let ids = [
            "b-1".to_string(),
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
        assert_eq!(penalty(&[0; 5], &[0; 5], 5), 10 * 3 + 16 * 3 + 100);
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
