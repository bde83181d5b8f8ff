//! The badge design, computed once per badge and drawn by both the PDF and the SVG writer.
//!
//! Coordinates are points with the origin at the top-left corner of the badge, y down.
//! The design is specified for a 4 in × 3 in badge (288 × 216 pt) and scales with the
//! badge height, so the same layout fills an A6 card on A4 sheets.

use std::borrow::Cow;
use std::sync::OnceLock;

use qrcode::EcLevel;
use qrcode::canvas::{Canvas, MaskPattern};
use rustybuzz::ttf_parser::GlyphId;

use super::fonts::{FontSet, PRIMARY_BOLD, Style};
use super::text::{Line, Lines, shape_line, split_two};
use super::{BadgeType, Field, RenderError};

/// An sRGB colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rgb(pub(crate) u8, pub(crate) u8, pub(crate) u8);

impl Rgb {
    /// `#rrggbb`, for SVG.
    pub(crate) fn hex(self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }
}

const INK: Rgb = Rgb(0x16, 0x18, 0x1d);
const MUTED: Rgb = Rgb(0x4f, 0x56, 0x63);
const WHITE: Rgb = Rgb(0xff, 0xff, 0xff);

/// The colour of each badge type's band.
pub(crate) fn type_colour(kind: BadgeType) -> Rgb {
    match kind {
        BadgeType::Attendee => Rgb(0x1d, 0x5f, 0xa8),
        BadgeType::Speaker => Rgb(0xc4, 0x2b, 0x3f),
        BadgeType::Sponsor => Rgb(0x1c, 0x7f, 0x56),
        BadgeType::Organizer => Rgb(0x4f, 0x2d, 0x7f),
    }
}

/// Letter spacing of the type label, in em.
pub(crate) const LABEL_TRACKING: f32 = 0.08;

/// The design grid for a 216 pt tall badge; everything scales with the height.
mod grid {
    pub(super) const DESIGN_HEIGHT: f32 = 216.0;
    pub(super) const MARGIN: f32 = 18.0;
    pub(super) const QR: f32 = 56.0;
    pub(super) const BAND: f32 = 46.0;
    pub(super) const EVENT_SIZE: f32 = 9.5;
    pub(super) const LABEL_SIZE: f32 = 13.0;
    pub(super) const NAME_MAX: f32 = 30.0;
    /// Below this a single-line name is wrapped onto two lines instead.
    pub(super) const NAME_MIN_SINGLE: f32 = 22.0;
    pub(super) const COMPANY_MAX: f32 = 12.5;
    pub(super) const COMPANY_MIN_SINGLE: f32 = 9.5;
    pub(super) const LINE_HEIGHT: f32 = 1.12;
    pub(super) const ACCENT_W: f32 = 26.0;
    pub(super) const ACCENT_H: f32 = 3.0;
}

/// A shaped line placed on the badge.
pub(crate) struct Run<'a> {
    pub(crate) line: Cow<'a, Line>,
    /// Left end of the line's baseline.
    pub(crate) x: f32,
    pub(crate) baseline: f32,
    pub(crate) size: f32,
    pub(crate) colour: Rgb,
}

/// A filled rectangle.
pub(crate) struct Block {
    pub(crate) x: f32,
    pub(crate) y: f32,
    pub(crate) w: f32,
    pub(crate) h: f32,
    pub(crate) colour: Rgb,
}

/// The QR code: its top-left corner and size in points, and its modules.
pub(crate) struct Qr {
    pub(crate) x: f32,
    pub(crate) y: f32,
    /// Width and height in points.
    pub(crate) size: f32,
    /// Modules per side.
    pub(crate) modules: usize,
    /// Rows top to bottom as bitsets: bit `x` of row `y` set = dark module.
    pub(crate) rows: Vec<u128>,
    pub(crate) colour: Rgb,
}

/// Everything drawn on one badge.
pub(crate) struct BadgeLayout<'a> {
    pub(crate) width: f32,
    pub(crate) height: f32,
    pub(crate) blocks: Vec<Block>,
    pub(crate) runs: Vec<Run<'a>>,
    pub(crate) qr: Qr,
}

/// What stays the same on every badge: the event line and the four type labels, shaped
/// once when the renderer is built.
pub(crate) struct Fixed {
    pub(crate) title: Line,
    pub(crate) city: Line,
    pub(crate) labels: [Line; 4],
}

/// The per-badge inputs, already validated.
pub(crate) struct Content<'t> {
    pub(crate) id: &'t str,
    pub(crate) name: &'t str,
    pub(crate) company: &'t str,
    pub(crate) kind: BadgeType,
}

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

/// What each mask changes in a symbol of one version, as rows and as columns (bitsets).
///
/// Masking is an XOR of the mask pattern over the data modules plus the format information,
/// which depends only on the mask and error correction level. So for symbols of the same
/// version, `masked(data) = unmasked(data) ^ (unmasked(light) ^ masked(light))`, where
/// `light` is all-light data: the part in brackets is computed once per version, and each
/// badge draws its data once instead of cloning and masking the canvas eight times.
struct MaskDeltas {
    rows: [Vec<u128>; 8],
    columns: [Vec<u128>; 8],
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

impl MaskDeltas {
    fn new(version: qrcode::Version, data_len: usize, ec_len: usize) -> Self {
        let n = width_of(version);
        let mut light = Canvas::new(version, EcLevel::M);
        light.draw_all_functional_patterns();
        light.draw_data(&vec![0; data_len], &vec![0; ec_len]);
        let unmasked = canvas_rows(&light, n);
        let rows = MASKS.map(|mask| {
            let mut masked = light.clone();
            masked.apply_mask(mask);
            canvas_rows(&masked, n)
                .into_iter()
                .zip(&unmasked)
                .map(|(m, u)| m ^ u)
                .collect::<Vec<u128>>()
        });
        let columns = rows.each_ref().map(|r| transpose(r, n));
        MaskDeltas { rows, columns }
    }

    /// The deltas for `version` (normal QR versions 1-40), built on first use.
    fn for_version(version: qrcode::Version, data_len: usize, ec_len: usize) -> &'static Self {
        static BY_VERSION: [OnceLock<MaskDeltas>; 40] = [const { OnceLock::new() }; 40];
        let qrcode::Version::Normal(v) = version else {
            // encode_auto only picks normal versions; a micro one would get its own set.
            unreachable!("micro QR versions are never chosen");
        };
        BY_VERSION[(v - 1) as usize].get_or_init(|| MaskDeltas::new(version, data_len, ec_len))
    }
}

/// Encodes `data` as a QR code (error correction level M): its width in modules and its
/// rows as bitsets (bit `x` of row `y` set = dark module).
///
/// Same steps as `QrCode::new`, but draws the data once and tries the eight masks as
/// XORs of bitsets ([`MaskDeltas`]), scoring them with our own penalty function: the
/// qrcode crate's allocates per module, and cloning and masking the canvas eight times
/// was a tenth of a badge's render time.
fn encode_qr(data: &[u8]) -> Result<(usize, Vec<u128>), RenderError> {
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
    let mut canvas = Canvas::new(version, EcLevel::M);
    canvas.draw_all_functional_patterns();
    canvas.draw_data(&codewords, &ec);
    let rows = canvas_rows(&canvas, n);
    let columns = transpose(&rows, n);
    let deltas = MaskDeltas::for_version(version, codewords.len(), ec.len());
    let mut masked_rows = vec![0u128; n];
    let mut masked_columns = vec![0u128; n];
    let mut best: Option<(u32, usize)> = None;
    for mask in 0..MASKS.len() {
        xor_into(&mut masked_rows, &rows, &deltas.rows[mask]);
        xor_into(&mut masked_columns, &columns, &deltas.columns[mask]);
        let penalty = qr_penalty(&masked_rows, &masked_columns, n);
        if best.is_none_or(|(p, _)| penalty < p) {
            best = Some((penalty, mask));
        }
    }
    let (_, mask) = best.ok_or_else(|| RenderError::QrCode("no mask".into()))?;
    xor_into(&mut masked_rows, &rows, &deltas.rows[mask]);
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
fn qr_penalty(rows: &[u128], columns: &[u128], n: usize) -> u32 {
    let inside: u128 = if n == 128 { !0 } else { (1 << n) - 1 };

    let mut score = 0;
    for &a in rows.iter().chain(columns) {
        // Runs of five or more: gaps between colour changes.
        let mut changes = (a ^ (a >> 1)) & (inside >> 1);
        let mut previous_end: i32 = -1;
        loop {
            let end = if changes == 0 {
                n as i32 - 1
            } else {
                changes.trailing_zeros() as i32
            };
            let run = (end - previous_end) as u32;
            if run >= 5 {
                score += run - 2;
            }
            if changes == 0 {
                break;
            }
            previous_end = end;
            changes &= changes - 1;
        }
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
pub(crate) fn qr_rects(rows: &[u128]) -> Vec<[u16; 4]> {
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

/// Picks a font size for `text` at most `max` points, no wider than `width`: one line when
/// that allows at least `min_single` points, otherwise the larger of one line and the best
/// two-line split, the latter also limited by `max_two` (the height available).
fn fit(
    fonts: &FontSet,
    text: &str,
    style: Style,
    field: Field,
    (max, min_single, max_two): (f32, f32, f32),
    width: f32,
) -> Result<(Lines, f32), RenderError> {
    let single = shape_line(fonts, text, style, 0.0, field)?;
    let single_size = if single.width > 0.0 {
        max.min(width / single.width)
    } else {
        max
    };
    if single_size >= min_single {
        return Ok((one_line(single), single_size));
    }
    if let Some(two) = split_two(fonts, text, &single, style, field)? {
        let two_size = max_two.min(width / two.width);
        if two_size > single_size {
            return Ok((two, two_size));
        }
    }
    Ok((one_line(single), single_size))
}

fn one_line(line: Line) -> Lines {
    Lines {
        width: line.width,
        lines: vec![line],
    }
}

/// Lays out one badge of `width` × `height` points.
pub(crate) fn compose<'a>(
    fonts: &FontSet,
    fixed: &'a Fixed,
    content: &Content<'_>,
    width: f32,
    height: f32,
) -> Result<BadgeLayout<'a>, RenderError> {
    use grid::*;
    let s = height / DESIGN_HEIGHT;
    let margin = MARGIN * s;
    let bold = fonts.face(PRIMARY_BOLD);
    let cap = bold.cap_height();
    let colour = type_colour(content.kind);
    let mut blocks = Vec::with_capacity(2);
    let mut runs = Vec::with_capacity(8);

    // Top row: event line on the left, QR code on the right.
    let qr_size = QR * s;
    let qr_x = width - margin - qr_size;
    let (modules, rows) = encode_qr(content.id.as_bytes())?;
    let qr = Qr {
        x: qr_x,
        y: margin,
        size: qr_size,
        modules,
        rows,
        colour: INK,
    };
    let event_room = qr_x - margin - 14.0 * s;
    let event_width = fixed.title.width + fixed.city.width;
    let event_size = (EVENT_SIZE * s).min(event_room / event_width.max(f32::EPSILON));
    let event_baseline = margin + cap * event_size;
    runs.push(Run {
        line: Cow::Borrowed(&fixed.title),
        x: margin,
        baseline: event_baseline,
        size: event_size,
        colour: INK,
    });
    runs.push(Run {
        line: Cow::Borrowed(&fixed.city),
        x: margin + fixed.title.width * event_size,
        baseline: event_baseline,
        size: event_size,
        colour: MUTED,
    });
    blocks.push(Block {
        x: margin,
        y: event_baseline + 8.0 * s,
        w: ACCENT_W * s,
        h: ACCENT_H * s,
        colour,
    });

    // Bottom: the type band, its label optically centred on the cap height.
    let band_y = height - BAND * s;
    blocks.push(Block {
        x: 0.0,
        y: band_y,
        w: width,
        h: BAND * s,
        colour,
    });
    let label_size = LABEL_SIZE * s;
    runs.push(Run {
        line: Cow::Borrowed(&fixed.labels[content.kind.index()]),
        x: margin,
        baseline: band_y + (BAND * s + cap * label_size) / 2.0,
        size: label_size,
        colour: WHITE,
    });

    // Middle: name and company, centred as one block between the QR code and the band.
    let text_width = width - 2.0 * margin;
    let region_top = margin + qr_size + 12.0 * s;
    let region_bottom = band_y - 14.0 * s;
    let region = region_bottom - region_top;
    let company = if content.company.is_empty() {
        None
    } else {
        Some(fit(
            fonts,
            content.company,
            Style::Regular,
            Field::Company,
            (
                COMPANY_MAX * s,
                COMPANY_MIN_SINGLE * s,
                COMPANY_MIN_SINGLE * s,
            ),
            text_width,
        )?)
    };
    let company_height = company.as_ref().map_or(0.0, |(lines, size)| {
        cap * size + (lines.lines.len() - 1) as f32 * LINE_HEIGHT * size
    });
    // Two name lines must fit above the company with a gap of ~0.35 em.
    let name_room = region - company_height;
    let max_two = name_room / (cap + LINE_HEIGHT + if company.is_some() { 0.35 } else { 0.0 });
    let (name_lines, name_size) = fit(
        fonts,
        content.name,
        Style::Bold,
        Field::Name,
        (NAME_MAX * s, NAME_MIN_SINGLE * s, max_two.min(NAME_MAX * s)),
        text_width,
    )?;
    let name_height =
        cap * name_size + (name_lines.lines.len() - 1) as f32 * LINE_HEIGHT * name_size;
    // Room under the last name line for its deepest glyph (Arabic and CJK reach lower
    // than Latin), measured from the outlines actually drawn.
    let deepest = name_lines.lines.last().map_or(0.0, |line| {
        line.glyphs
            .iter()
            .filter_map(|g| {
                let face = fonts.face(g.face);
                let bbox = face.face.glyph_bounding_box(GlyphId(g.gid))?;
                Some(-(f32::from(bbox.y_min) / face.units_per_em + g.y))
            })
            .fold(0.0, f32::max)
    });
    let gap = if company.is_some() {
        (0.35 * name_size).max(deepest * name_size + 4.0 * s)
    } else {
        0.0
    };
    let block_height = name_height + gap + company_height;
    // Each line starts at its paragraph's start: left for LTR, right for RTL names.
    let start_x = |line: &Line, size: f32| {
        if line.rtl {
            width - margin - line.width * size
        } else {
            margin
        }
    };
    let mut baseline = region_top + (region - block_height) / 2.0 + cap * name_size;
    for line in name_lines.lines {
        runs.push(Run {
            x: start_x(&line, name_size),
            line: Cow::Owned(line),
            baseline,
            size: name_size,
            colour: INK,
        });
        baseline += LINE_HEIGHT * name_size;
    }
    if let Some((lines, size)) = company {
        baseline += gap - LINE_HEIGHT * name_size + cap * size;
        for line in lines.lines {
            runs.push(Run {
                x: start_x(&line, size),
                line: Cow::Owned(line),
                baseline,
                size,
                colour: MUTED,
            });
            baseline += LINE_HEIGHT * size;
        }
    }

    Ok(BadgeLayout {
        width,
        height,
        blocks,
        runs,
        qr,
    })
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
            let (n, rows) = encode_qr(id.as_bytes()).unwrap();
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
                .map(|c| qr_penalty(c, &transpose(c, n), n))
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
        assert_eq!(qr_penalty(&[0; 5], &[0; 5], 5), 10 * 3 + 16 * 3 + 100);
        // 11×11 light with a finder-like 1:1:3:1:1 row in the middle (columns 2..9):
        // runs: 10 light rows (9 each), 5 split columns (3 + 3), 6 light columns (9);
        // blocks: 84 uniform; one finder pattern (40); 4 % dark (9 × 10 points).
        let mut grid = [0u128; 11];
        grid[5] = 0b1011101 << 2;
        assert_eq!(
            qr_penalty(&grid, &transpose(&grid, 11), 11),
            90 + 30 + 54 + 84 * 3 + 40 + 90
        );
    }

    #[test]
    fn qr_rectangles_cover_exactly_the_dark_modules() {
        let id = "4f0c2b1e-9d7a-4c55-8e21-0b6f3a9d2c10";
        let (n, rows) = encode_qr(id.as_bytes()).unwrap();
        let rects = qr_rects(&rows);
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
