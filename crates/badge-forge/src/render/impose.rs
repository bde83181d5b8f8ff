//! Sheet imposition: label stocks by name, where each badge goes on their paper, and the
//! cut marks.

use std::path::Path;
use std::str::FromStr;

use super::Design;

/// Length of a cut mark, and its distance from the bleed edge of the badges it marks.
const MARK_LEN: f32 = 12.0;
const MARK_GAP: f32 = 4.0;

/// Paper sizes, in points, portrait.
const LETTER: (f32, f32) = (612.0, 792.0);
const A4: (f32, f32) = (210.0 * MM, 297.0 * MM);

/// Label stock: a paper, and where its badges are. Named presets are die-cut or perforated
/// sheets with fixed labels; plain paper (`a4`, `letter`) takes as many badges of the
/// layout's size as fit, with room for their bleed and the cut marks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stock {
    name: &'static str,
    layout: StockLayout,
}

/// Fixed labels, or plain paper (its portrait size).
#[derive(Debug, Clone, Copy, PartialEq)]
enum StockLayout {
    Labels(Labels),
    Plain((f32, f32)),
}

/// A preset's labels, on the paper in the orientation given.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Labels {
    paper: (f32, f32),
    width: f32,
    height: f32,
    columns: usize,
    rows: usize,
    left: f32,
    top: f32,
}

impl Stock {
    /// Every stock's name, as `--stock` takes it.
    pub const NAMES: [&'static str; 5] =
        ["avery-5392", "a6-4up-a4", "90x55-10up-a4", "a4", "letter"];

    /// The stock's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    fn preset(name: &str) -> Option<Stock> {
        let layout = match name {
            // Avery 5392 name badge inserts: 2 × 3 of 4 × 3 in, 1/4 in sides, 1 in top.
            "avery-5392" => StockLayout::Labels(Labels {
                paper: LETTER,
                width: 288.0,
                height: 216.0,
                columns: 2,
                rows: 3,
                left: 18.0,
                top: 72.0,
            }),
            // A4 landscape cut into four A6 landscape cards: the labels are the whole page.
            "a6-4up-a4" => StockLayout::Labels(Labels {
                paper: (A4.1, A4.0),
                width: A4.1 / 2.0,
                height: A4.0 / 2.0,
                columns: 2,
                rows: 2,
                left: 0.0,
                top: 0.0,
            }),
            // 90 × 55 mm cards, 2 × 5 on A4 portrait, centred (15 mm sides, 11 mm top).
            "90x55-10up-a4" => StockLayout::Labels(Labels {
                paper: A4,
                width: 90.0 * MM,
                height: 55.0 * MM,
                columns: 2,
                rows: 5,
                left: 15.0 * MM,
                top: 11.0 * MM,
            }),
            "a4" => StockLayout::Plain(A4),
            "letter" => StockLayout::Plain(LETTER),
            _ => return None,
        };
        Some(Stock {
            name: Stock::NAMES.into_iter().find(|n| *n == name)?,
            layout,
        })
    }
}

impl FromStr for Stock {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Stock::preset(&text.trim().to_ascii_lowercase()).ok_or_else(|| {
            format!(
                "unknown stock {text:?}: expected one of {}",
                Stock::NAMES.join(", ")
            )
        })
    }
}

/// Geometry of one stock's imposition for one badge size; all in points, top-left origin.
#[derive(Debug)]
pub(crate) struct Imposition {
    pub(crate) page_width: f32,
    pub(crate) page_height: f32,
    pub(crate) cell_width: f32,
    pub(crate) cell_height: f32,
    pub(crate) columns: usize,
    pub(crate) rows: usize,
    /// Top-left corner of the first cell, and the distance from one cell to the next.
    left: f32,
    top: f32,
    pitch_x: f32,
    pitch_y: f32,
    /// How far each badge may print past its trim: the layout's bleed where the stock has
    /// room for it (not between labels that touch).
    pub(crate) bleed: f32,
}

impl Imposition {
    /// Where badges of `width` × `height` points with `bleed` go on `stock`: a preset turned
    /// to the badge's orientation (a portrait badge on a landscape sheet's labels would not
    /// fit), or as many as fit on plain paper in the orientation that takes more. Fails when
    /// no badge fits.
    pub(crate) fn new(stock: &Stock, width: f32, height: f32, bleed: f32) -> Result<Self, String> {
        let imposition = match stock.layout {
            StockLayout::Labels(labels) => Imposition::labels(labels, width, height, bleed),
            StockLayout::Plain(paper) => Imposition::plain(paper, width, height, bleed),
        };
        let fits = imposition.columns > 0
            && imposition.rows > 0
            && width <= imposition.cell_width + 0.5
            && height <= imposition.cell_height + 0.5;
        if !fits {
            let cell = match stock.layout {
                StockLayout::Labels(l) => {
                    format!("its labels are {} x {} pt", round(l.width), round(l.height))
                }
                StockLayout::Plain(_) => {
                    "its paper has no room for one with its bleed and cut marks".into()
                }
            };
            return Err(format!(
                "the layout's badge ({} x {} pt) does not fit stock {}: {cell}",
                round(width),
                round(height),
                stock.name
            ));
        }
        Ok(imposition)
    }

    fn labels(labels: Labels, width: f32, height: f32, bleed: f32) -> Self {
        let turn = (labels.width >= labels.height) != (width >= height);
        let l = if turn {
            Labels {
                paper: (labels.paper.1, labels.paper.0),
                width: labels.height,
                height: labels.width,
                columns: labels.rows,
                rows: labels.columns,
                left: labels.top,
                top: labels.left,
            }
        } else {
            labels
        };
        let (right, bottom) = (
            l.paper.0 - l.left - l.columns as f32 * l.width,
            l.paper.1 - l.top - l.rows as f32 * l.height,
        );
        // Labels touch: a badge's bleed would print on its neighbour. Only a lone label
        // (never a preset today) bleeds, as far as the paper's margins allow.
        let room = if l.columns * l.rows == 1 {
            l.left.min(l.top).min(right).min(bottom)
        } else {
            0.0
        };
        Imposition {
            page_width: l.paper.0,
            page_height: l.paper.1,
            cell_width: l.width,
            cell_height: l.height,
            columns: l.columns,
            rows: l.rows,
            left: l.left,
            top: l.top,
            pitch_x: l.width,
            pitch_y: l.height,
            bleed: bleed.min(room).max(0.0),
        }
    }

    fn plain(paper: (f32, f32), width: f32, height: f32, bleed: f32) -> Self {
        // Badges a bleed's width apart on each side (a gutter of twice the bleed), the grid
        // centred, with the bleed and the marks outside it.
        let margin = bleed + MARK_GAP + MARK_LEN;
        let fit = |extent: f32, size: f32| {
            (((extent - 2.0 * margin + 2.0 * bleed) / (size + 2.0 * bleed)).floor()).max(0.0)
                as usize
        };
        let grid = |(pw, ph): (f32, f32)| {
            let (columns, rows) = (fit(pw, width), fit(ph, height));
            let span =
                |n: usize, size: f32| n as f32 * size + n.saturating_sub(1) as f32 * 2.0 * bleed;
            Imposition {
                page_width: pw,
                page_height: ph,
                cell_width: width,
                cell_height: height,
                columns,
                rows,
                left: (pw - span(columns, width)) / 2.0,
                top: (ph - span(rows, height)) / 2.0,
                pitch_x: width + 2.0 * bleed,
                pitch_y: height + 2.0 * bleed,
                bleed,
            }
        };
        let (portrait, landscape) = (grid(paper), grid((paper.1, paper.0)));
        if landscape.per_page() > portrait.per_page() {
            landscape
        } else {
            portrait
        }
    }

    pub(crate) fn per_page(&self) -> usize {
        self.columns * self.rows
    }

    /// Top-left corner of the `slot`-th cell on a page (row by row).
    pub(crate) fn cell(&self, slot: usize) -> (f32, f32) {
        let (row, column) = (slot / self.columns, slot % self.columns);
        (
            self.left + column as f32 * self.pitch_x,
            self.top + row as f32 * self.pitch_y,
        )
    }

    /// Where the `slot`-th cell's back is: the front's cell mirrored left to right, so that
    /// after duplex printing (turned on the long edge) each back lies behind its front.
    pub(crate) fn back_cell(&self, slot: usize) -> (f32, f32) {
        let (x, y) = self.cell(slot);
        (self.page_width - x - self.cell_width, y)
    }

    /// The trimmed grid `[x, y, width, height]`: the union of the badges' trims.
    pub(crate) fn trim(&self) -> [f32; 4] {
        let (right, bottom) = self.far_edges();
        [self.left, self.top, right - self.left, bottom - self.top]
    }

    fn far_edges(&self) -> (f32, f32) {
        (
            self.left + (self.columns - 1) as f32 * self.pitch_x + self.cell_width,
            self.top + (self.rows - 1) as f32 * self.pitch_y + self.cell_height,
        )
    }

    /// Cut marks: every trim line gets a short mark where it leaves the grid, in the page
    /// margin, `MARK_GAP` beyond the badges' bleed so no mark touches a badge. Where the grid
    /// reaches the paper edge (A6 on A4), the mark runs inward from the paper edge along
    /// the cut line instead, which is also where a guillotine operator looks. Cuts along
    /// the paper edge itself need no mark.
    pub(crate) fn cut_marks(&self) -> Vec<[f32; 4]> {
        let (right, bottom) = self.far_edges();
        let edges = |start: f32, pitch: f32, size: f32, n: usize| {
            let mut edges: Vec<f32> = (0..n)
                .flat_map(|i| [start + i as f32 * pitch, start + i as f32 * pitch + size])
                .collect();
            edges.dedup_by(|a, b| (*a - *b).abs() < 0.01);
            edges
        };
        let b = self.bleed;
        let mut marks = Vec::new();
        for x in edges(self.left, self.pitch_x, self.cell_width, self.columns) {
            if x > 0.5 && x < self.page_width - 0.5 {
                for (a, z) in [
                    outward(self.top - b, -1.0, self.page_height),
                    outward(bottom + b, 1.0, self.page_height),
                ] {
                    marks.push([x, a, x, z]);
                }
            }
        }
        for y in edges(self.top, self.pitch_y, self.cell_height, self.rows) {
            if y > 0.5 && y < self.page_height - 0.5 {
                for (a, z) in [
                    outward(self.left - b, -1.0, self.page_width),
                    outward(right + b, 1.0, self.page_width),
                ] {
                    marks.push([a, y, z, y]);
                }
            }
        }
        marks
    }
}

/// `v` to two decimals, for messages.
fn round(v: f32) -> f32 {
    (v * 100.0).round() / 100.0
}

/// The extent of a mark along its cut line, beyond the grid edge at `edge` in direction
/// `dir` (-1 towards 0, 1 towards `extent`).
fn outward(edge: f32, dir: f32, extent: f32) -> (f32, f32) {
    let start = edge + dir * MARK_GAP;
    let end = start + dir * MARK_LEN;
    if (0.0..=extent).contains(&end) {
        (start, end)
    } else if dir < 0.0 {
        (0.0, MARK_LEN)
    } else {
        (extent - MARK_LEN, extent)
    }
}

const MM: f32 = 72.0 / 25.4;

/// The layout of a divider page `width` × `height` points: the group's letter, filled in as
/// the name, large in the middle of the page, so a desk finds where each letter starts.
pub(crate) fn divider(width: f32, height: f32) -> Design {
    let source = format!(
        "[page]\nwidth = {width}\nheight = {height}\n[band]\ncolour = \"#000000\"\n\
         [[element]]\nkind = \"text\"\ntext = \"{{name}}\"\nfont = \"bold\"\n\
         left = 36\nright = 36\ntop = 36\nbottom = 36\nalign = \"centre\"\n\
         valign = \"middle\"\nsize = {size}\nmin_size = 24\n",
        size = (width.min(height) * 0.6).min(500.0)
    );
    Design::parse("divider page", &source, Path::new("."))
        .expect("the divider layout is valid for any page")
}
