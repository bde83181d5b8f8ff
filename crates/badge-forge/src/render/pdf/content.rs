//! A page's content stream (ISO 32000-1, 7.8.2 and annex A), written straight into bytes.
//!
//! Hand-written because printpdf builds an operation object per operator and an object
//! per glyph, and lopdf then formats each number through `Display`: on a sheet that was a
//! third of the CPU, against a few percent for this writer (docs/benchmarks.md, session 10).
//! Only the operators badges use are here.

use super::tokens::{push_hex4, push_int};
use crate::render::layout::Rgb;

/// One content stream being written.
#[derive(Default)]
pub(super) struct Content {
    out: Vec<u8>,
    /// Text state set since `BT`: the font and size, and the fill colour in or out of text.
    font: Option<(u8, f32)>,
    fill: Option<Rgb>,
}

impl Content {
    pub(super) fn with_capacity(bytes: usize) -> Content {
        Content {
            out: Vec::with_capacity(bytes),
            ..Content::default()
        }
    }

    pub(super) fn into_bytes(self) -> Vec<u8> {
        self.out
    }

    /// `v` rounded to `1/scale` (a power of ten), in its shortest decimal form.
    fn fixed(&mut self, v: f32, scale: i64) {
        let n = (f64::from(v) * scale as f64).round() as i64;
        if n < 0 {
            self.out.push(b'-');
        }
        let (n, scale) = (n.unsigned_abs(), scale.unsigned_abs());
        push_int(&mut self.out, (n / scale) as i64);
        let mut frac = n % scale;
        if frac != 0 {
            self.out.push(b'.');
            let mut unit = scale / 10;
            while frac != 0 {
                self.out.push(b'0' + (frac / unit) as u8);
                frac %= unit;
                unit /= 10;
            }
        }
    }

    /// A coordinate or length: 1/100 pt is far below what a printer resolves.
    fn num(&mut self, v: f32) {
        self.fixed(v, 100);
        self.out.push(b' ');
    }

    fn op(&mut self, operator: &[u8]) {
        self.out.extend_from_slice(operator);
        self.out.push(b'\n');
    }

    /// `rg`, unless the fill colour is already `c`. Three decimals resolve 1/1000: finer
    /// than the 1/255 steps of the source colour.
    pub(super) fn fill_colour(&mut self, c: Rgb) {
        if self.fill == Some(c) {
            return;
        }
        self.fill = Some(c);
        for channel in [c.0, c.1, c.2] {
            self.fixed(f32::from(channel) / 255.0, 1000);
            self.out.push(b' ');
        }
        self.op(b"rg");
    }

    /// A rectangle path, `[x, y, w, h]` from its lower-left corner.
    fn rect(&mut self, [x, y, w, h]: [f32; 4]) {
        for v in [x, y, w, h] {
            self.num(v);
        }
        self.op(b"re");
    }

    /// Fills a rectangle with the fill colour.
    pub(super) fn fill_rect(&mut self, r: [f32; 4]) {
        self.rect(r);
        self.op(b"f");
    }

    /// Paints XObject `name` into the rectangle `[x, y, w, h]` (an image's unit square
    /// scaled to it), cut at `clip` if given; the graphics state is restored after.
    pub(super) fn xobject(&mut self, name: &str, [x, y, w, h]: [f32; 4], clip: Option<[f32; 4]>) {
        self.op(b"q");
        if let Some(clip) = clip {
            self.rect(clip);
            self.op(b"W n");
        }
        for v in [w, 0.0, 0.0, h, x, y] {
            self.num(v);
        }
        self.op(b"cm");
        self.out.push(b'/');
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(b' ');
        self.op(b"Do");
        self.op(b"Q");
    }

    pub(super) fn begin_text(&mut self) {
        self.font = None;
        self.op(b"BT");
    }

    pub(super) fn end_text(&mut self) {
        self.op(b"ET");
    }

    /// Shows `glyphs` from `(x, y)` with font resource `F{font}` (as `embed::add_fonts`
    /// names the face) at `size`: each glyph a
    /// two-byte code followed by the kerning number (1/1000 em, to 1/10) that moves the
    /// pen to the next glyph; runs of unkerned glyphs share one string.
    pub(super) fn show(
        &mut self,
        font: u8,
        size: f32,
        (x, y): (f32, f32),
        glyphs: impl Iterator<Item = (u16, f32)>,
    ) {
        if self.font != Some((font, size)) {
            self.font = Some((font, size));
            self.out.extend_from_slice(b"/F");
            push_int(&mut self.out, i64::from(font));
            self.out.push(b' ');
            self.num(size);
            self.op(b"Tf");
        }
        self.out.extend_from_slice(b"1 0 0 1 ");
        self.num(x);
        self.num(y);
        self.op(b"Tm");
        self.out.push(b'[');
        let mut open = false;
        for (code, kern) in glyphs {
            if !open {
                self.out.push(b'<');
                open = true;
            }
            push_hex4(&mut self.out, code);
            let kern = (f64::from(kern) * 10.0).round();
            if kern != 0.0 {
                self.out.push(b'>');
                open = false;
                self.fixed(kern as f32 / 10.0, 10);
            }
        }
        if open {
            self.out.push(b'>');
        }
        self.out.extend_from_slice(b"]TJ\n");
    }

    /// Black hairlines (0.3 pt) from `(x1, y1)` to `(x2, y2)`.
    pub(super) fn lines(&mut self, lines: &[[f32; 4]]) {
        if lines.is_empty() {
            return;
        }
        self.op(b"0 G");
        self.op(b"0.3 w");
        for &[x1, y1, x2, y2] in lines {
            self.num(x1);
            self.num(y1);
            self.op(b"m");
            self.num(x2);
            self.num(y2);
            self.op(b"l S");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(draw: impl FnOnce(&mut Content)) -> String {
        let mut c = Content::default();
        draw(&mut c);
        String::from_utf8(c.into_bytes()).unwrap()
    }

    #[test]
    fn numbers_are_short_and_exact_to_their_resolution() {
        let s = written(|c| {
            for v in [0.0, 12.0, 12.5, -0.25, 684.2249, 0.004, -0.004, 1e6] {
                c.num(v);
            }
        });
        assert_eq!(s, "0 12 12.5 -0.25 684.22 0 0 1000000 ");
    }

    #[test]
    fn glyph_runs_share_strings_until_a_kerning_number() {
        let s = written(|c| {
            c.begin_text();
            let glyphs = [(0x0f, 0.0), (0x16, -10.04), (0x13, 0.0), (0x2a, 0.0)];
            c.show(1, 9.5, (36.0, 695.22), glyphs.into_iter());
            c.show(1, 9.5, (40.0, 600.0), [(0xABCD, 80.0)].into_iter());
            c.end_text();
        });
        assert_eq!(
            s,
            "BT\n/F1 9.5 Tf\n1 0 0 1 36 695.22 Tm\n[<000F0016>-10<0013002A>]TJ\n\
             1 0 0 1 40 600 Tm\n[<ABCD>80]TJ\nET\n"
        );
    }

    #[test]
    fn colours_images_and_marks() {
        let s = written(|c| {
            c.fill_colour(Rgb(29, 95, 168));
            c.fill_colour(Rgb(29, 95, 168));
            c.fill_rect([36.0, 684.22, 26.0, 3.0]);
            c.xobject("Q0", [232.0, 646.0, 56.0, 56.0], None);
            c.xobject("I1", [0.0, 0.0, 10.0, 20.0], Some([1.0, 2.0, 3.0, 4.0]));
            c.lines(&[[1.0, 2.0, 3.0, 4.0]]);
        });
        assert_eq!(
            s,
            "0.114 0.373 0.659 rg\n36 684.22 26 3 re\nf\n\
             q\n56 0 0 56 232 646 cm\n/Q0 Do\nQ\n\
             q\n1 2 3 4 re\nW n\n10 0 0 20 0 0 cm\n/I1 Do\nQ\n\
             0 G\n0.3 w\n1 2 m\n3 4 l S\n"
        );
    }
}
