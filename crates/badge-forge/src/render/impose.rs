//! Sheet imposition: where each badge goes on a Letter or A4 page, and the cut marks.

use std::path::Path;

use super::{Design, Paper};

/// Length of a cut mark, and its distance from the trim line it extends.
const MARK_LEN: f32 = 12.0;
const MARK_GAP: f32 = 4.0;

/// Geometry of one paper's imposition; all in points, top-left origin.
pub(crate) struct Imposition {
    pub(crate) page_width: f32,
    pub(crate) page_height: f32,
    pub(crate) cell_width: f32,
    pub(crate) cell_height: f32,
    pub(crate) columns: usize,
    pub(crate) rows: usize,
    /// Top-left corner of the grid.
    pub(crate) left: f32,
    pub(crate) top: f32,
}

impl Imposition {
    pub(crate) fn for_paper(paper: Paper) -> Self {
        match paper {
            // Avery 5392 layout: 2 × 3 badges of 4 × 3 in, 1/4 in side and 1 in top margins.
            Paper::Letter => Imposition {
                page_width: 612.0,
                page_height: 792.0,
                cell_width: 288.0,
                cell_height: 216.0,
                columns: 2,
                rows: 3,
                left: 18.0,
                top: 72.0,
            },
            // A4 landscape cut into four A6 landscape cards: the grid is the whole page.
            Paper::A4 => {
                let (w, h) = (297.0 * MM, 210.0 * MM);
                Imposition {
                    page_width: w,
                    page_height: h,
                    cell_width: w / 2.0,
                    cell_height: h / 2.0,
                    columns: 2,
                    rows: 2,
                    left: 0.0,
                    top: 0.0,
                }
            }
        }
    }

    pub(crate) fn per_page(&self) -> usize {
        self.columns * self.rows
    }

    /// Top-left corner of the `slot`-th cell on a page (row by row).
    pub(crate) fn cell(&self, slot: usize) -> (f32, f32) {
        let (row, column) = (slot / self.columns, slot % self.columns);
        (
            self.left + column as f32 * self.cell_width,
            self.top + row as f32 * self.cell_height,
        )
    }

    /// Cut marks: every cut line (grid edge) gets a short mark where it leaves the grid,
    /// in the page margin, `MARK_GAP` away from the trim so no mark touches a badge.
    /// Where the grid reaches the paper edge (A4), the mark runs inward from the paper
    /// edge along the cut line instead, which is also where a guillotine operator looks.
    /// Cuts along the paper edge itself need no mark.
    pub(crate) fn cut_marks(&self) -> Vec<[f32; 4]> {
        let right = self.left + self.columns as f32 * self.cell_width;
        let bottom = self.top + self.rows as f32 * self.cell_height;
        let mut marks = Vec::new();
        for c in 0..=self.columns {
            let x = self.left + c as f32 * self.cell_width;
            if x > 0.5 && x < self.page_width - 0.5 {
                for (a, b) in [
                    outward(self.top, -1.0, self.page_height),
                    outward(bottom, 1.0, self.page_height),
                ] {
                    marks.push([x, a, x, b]);
                }
            }
        }
        for r in 0..=self.rows {
            let y = self.top + r as f32 * self.cell_height;
            if y > 0.5 && y < self.page_height - 0.5 {
                for (a, b) in [
                    outward(self.left, -1.0, self.page_width),
                    outward(right, 1.0, self.page_width),
                ] {
                    marks.push([a, y, b, y]);
                }
            }
        }
        marks
    }
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
