//! Page content streams: painting operators written straight into a reused buffer.
//!
//! Numbers go through [`push_num`], a fixed-point formatter that rounds to thousandths
//! and never allocates, so the same page always gives the same bytes. Text is written
//! as `TJ` arrays of 2-byte glyph ids (Identity-H) with adjustments wherever a glyph's
//! laid-out advance differs from its `hmtx` width.

use crate::layout::frame::{Item, ItemKind, Page, Stroke, Tag, TextRun};
use crate::style::Color;
use crate::text::font::{FontBook, FontId};

use super::GlyphTracker;
use super::tags::role_name;

/// Writes `v` rounded to thousandths, without trailing zeros (`12`, `-0.5`, `3.142`).
pub(crate) fn push_num(buf: &mut Vec<u8>, v: f32) {
    let scaled = (f64::from(v) * 1000.0).round();
    // Out-of-range or NaN values are clamped: a PDF real must stay finite.
    let scaled = if scaled.is_finite() {
        scaled.clamp(-1.0e15, 1.0e15) as i64
    } else {
        0
    };
    if scaled < 0 {
        buf.push(b'-');
    }
    let abs = scaled.unsigned_abs();
    push_uint(buf, abs / 1000);
    let frac = abs % 1000;
    if frac != 0 {
        buf.push(b'.');
        let digits = [
            b'0' + (frac / 100) as u8,
            b'0' + (frac / 10 % 10) as u8,
            b'0' + (frac % 10) as u8,
        ];
        let len = if digits[2] != b'0' {
            3
        } else if digits[1] != b'0' {
            2
        } else {
            1
        };
        buf.extend_from_slice(&digits[..len]);
    }
}

/// Writes an unsigned integer in decimal.
pub(crate) fn push_uint(buf: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

/// Appends a 2-byte glyph id inside a literal string: half the bytes of a hex string
/// for the hasher and the compressor. `(`, `)` and `\\` are escaped, and CR too, because
/// a reader turns an unescaped CR inside a literal string into LF.
fn push_glyph_u16(buf: &mut Vec<u8>, v: u16) {
    for b in v.to_be_bytes() {
        match b {
            b'(' | b')' | b'\\' => buf.extend_from_slice(&[b'\\', b]),
            b'\r' => buf.extend_from_slice(b"\\r"),
            _ => buf.push(b),
        }
    }
}

fn same_color(a: Option<Color>, b: Color) -> bool {
    a.is_some_and(|a| a.r == b.r && a.g == b.g && a.b == b.b)
}

/// The graphics state a page's operators have established so far, so that repeated
/// `Tf`, `rg`, `RG`, `w` and `Ts` operators are left out.
#[derive(Default)]
struct GraphicsState {
    font: Option<(FontId, f32)>,
    fill: Option<Color>,
    stroke: Option<Color>,
    line_width: Option<f32>,
    rise: f32,
}

/// Writes one page's operators into `buf` (which it clears first).
pub(crate) struct PageWriter<'a> {
    pub buf: &'a mut Vec<u8>,
    pub fonts: &'a FontBook,
    pub tracker: &'a mut GlyphTracker,
    /// Role names by structure node, when tagging.
    pub tagging: Option<&'a crate::layout::frame::StructTree>,
    /// MCID → structure node of this page (filled when tagging).
    pub mcids: &'a mut Vec<crate::layout::frame::StructId>,
    /// Fonts used on this page (sorted, deduplicated by the caller).
    pub page_fonts: &'a mut Vec<FontId>,
    /// Images used on this page.
    pub page_images: &'a mut Vec<crate::image::ImageId>,
    state: GraphicsState,
    height: f32,
}

impl<'a> PageWriter<'a> {
    /// Prepares a writer for `page`.
    #[expect(
        clippy::too_many_arguments,
        reason = "plain borrowed parts of the scratch"
    )]
    pub fn new(
        buf: &'a mut Vec<u8>,
        fonts: &'a FontBook,
        tracker: &'a mut GlyphTracker,
        tagging: Option<&'a crate::layout::frame::StructTree>,
        mcids: &'a mut Vec<crate::layout::frame::StructId>,
        page_fonts: &'a mut Vec<FontId>,
        page_images: &'a mut Vec<crate::image::ImageId>,
        page: &Page,
    ) -> Self {
        buf.clear();
        mcids.clear();
        page_fonts.clear();
        page_images.clear();
        PageWriter {
            buf,
            fonts,
            tracker,
            tagging,
            mcids,
            page_fonts,
            page_images,
            state: GraphicsState::default(),
            height: page.height,
        }
    }

    /// Writes every item of the page.
    pub fn write_page(&mut self, page: &Page) {
        for item in &page.items {
            self.write_item(item);
        }
        self.page_fonts.sort_unstable();
        self.page_fonts.dedup();
        self.page_images.sort_unstable();
        self.page_images.dedup();
    }

    fn op(&mut self, s: &[u8]) {
        self.buf.extend_from_slice(s);
    }

    fn num(&mut self, v: f32) {
        push_num(self.buf, v);
        self.buf.push(b' ');
    }

    fn write_item(&mut self, item: &Item) {
        let marked = match (self.tagging, item.tag) {
            (None, _) => false,
            (Some(_), Tag::Artifact) => {
                self.op(b"/Artifact <</Type /Pagination>> BDC\n");
                true
            }
            (Some(tree), Tag::Struct(id)) => {
                let role = tree
                    .nodes
                    .get(id.0 as usize)
                    .map(|n| n.role)
                    .unwrap_or(crate::layout::frame::Role::Div);
                let mcid = self.mcids.len() as u64;
                self.mcids.push(id);
                self.buf.push(b'/');
                self.op(role_name(role).as_bytes());
                self.op(b" <</MCID ");
                push_uint(self.buf, mcid);
                self.op(b">> BDC\n");
                true
            }
        };
        match &item.kind {
            ItemKind::Text(run) => self.write_text(run),
            ItemKind::Rect {
                x,
                y,
                w,
                h,
                fill,
                stroke,
            } => self.write_rect(*x, *y, *w, *h, *fill, *stroke),
            ItemKind::Line {
                x0,
                y0,
                x1,
                y1,
                stroke,
            } => {
                self.set_stroke(*stroke);
                self.num(*x0);
                self.num(self.height - y0);
                self.op(b"m ");
                self.num(*x1);
                self.num(self.height - y1);
                self.op(b"l S\n");
            }
            ItemKind::Image { image, x, y, w, h } => {
                self.page_images.push(*image);
                self.op(b"q ");
                self.num(*w);
                self.op(b"0 0 ");
                self.num(*h);
                self.num(*x);
                self.num(self.height - y - h);
                self.op(b"cm /Im");
                push_uint(self.buf, u64::from(image.0));
                self.op(b" Do Q\n");
            }
        }
        if marked {
            self.op(b"EMC\n");
        }
    }

    fn set_fill(&mut self, c: Color) {
        if !same_color(self.state.fill, c) {
            self.num(c.r);
            self.num(c.g);
            self.num(c.b);
            self.op(b"rg\n");
            self.state.fill = Some(c);
        }
    }

    fn set_stroke(&mut self, s: Stroke) {
        if !same_color(self.state.stroke, s.color) {
            self.num(s.color.r);
            self.num(s.color.g);
            self.num(s.color.b);
            self.op(b"RG\n");
            self.state.stroke = Some(s.color);
        }
        if self.state.line_width != Some(s.width) {
            self.num(s.width);
            self.op(b"w\n");
            self.state.line_width = Some(s.width);
        }
    }

    fn write_rect(
        &mut self,
        x: f32,
        y: f32,
        w: f32,
        h: f32,
        fill: Option<Color>,
        stroke: Option<Stroke>,
    ) {
        if let Some(c) = fill {
            self.set_fill(c);
        }
        if let Some(s) = stroke {
            self.set_stroke(s);
        }
        self.num(x);
        self.num(self.height - y - h);
        self.num(w);
        self.num(h);
        let paint: &[u8] = match (fill.is_some(), stroke.is_some()) {
            (true, true) => b"re B\n",
            (true, false) => b"re f\n",
            (false, true) => b"re S\n",
            // Nothing to paint: end the path without painting it.
            (false, false) => b"re n\n",
        };
        self.op(paint);
    }

    fn write_text(&mut self, run: &TextRun) {
        if run.glyphs.is_empty() {
            return;
        }
        let font = self.fonts.font(run.font);
        self.page_fonts.push(run.font);
        self.tracker.record_run(run, font);
        self.set_fill(run.color);
        self.op(b"BT\n");
        if self.state.font != Some((run.font, run.size)) {
            self.op(b"/F");
            push_uint(self.buf, u64::from(run.font.0));
            self.buf.push(b' ');
            self.num(run.size);
            self.op(b"Tf\n");
            self.state.font = Some((run.font, run.size));
        }
        self.op(b"1 0 0 1 ");
        self.num(run.x);
        self.num(self.height - run.y);
        self.op(b"Tm\n");

        let em = run.size / 1000.0;
        // Whether a TJ array / a glyph string is open.
        let mut in_array = false;
        let mut in_hex = false;
        // Adjustment (thousandths of an em, TJ sign convention) waiting to be written.
        let mut pending = 0.0f32;
        for g in &run.glyphs {
            let rise = g.dy * em;
            if rise != self.state.rise {
                if in_hex {
                    self.buf.push(b')');
                    in_hex = false;
                }
                if in_array {
                    // Moves the pen to where the previous glyph's advance ends.
                    self.flush_adjust(&mut pending, &mut in_hex);
                    self.op(b"] TJ\n");
                    in_array = false;
                }
                self.num(rise);
                self.op(b"Ts\n");
                self.state.rise = rise;
            }
            if !in_array {
                self.buf.push(b'[');
                in_array = true;
            }
            pending -= g.dx;
            self.flush_adjust(&mut pending, &mut in_hex);
            if !in_hex {
                self.buf.push(b'(');
                in_hex = true;
            }
            push_glyph_u16(self.buf, g.id);
            pending += font.glyph_advance(g.id) + g.dx - g.advance;
        }
        if in_hex {
            self.buf.push(b')');
        }
        self.op(b"] TJ\nET\n");
    }

    /// Writes the pending TJ adjustment if it is visible at all.
    fn flush_adjust(&mut self, pending: &mut f32, in_hex: &mut bool) {
        if pending.abs() >= 0.0005 {
            if *in_hex {
                self.buf.push(b')');
                *in_hex = false;
            }
            self.buf.push(b' ');
            push_num(self.buf, *pending);
            self.buf.push(b' ');
        }
        *pending = 0.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(v: f32) -> String {
        let mut b = Vec::new();
        push_num(&mut b, v);
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn numbers_are_rounded_to_thousandths_without_trailing_zeros() {
        assert_eq!(fmt(0.0), "0");
        assert_eq!(fmt(-0.0001), "0");
        assert_eq!(fmt(12.0), "12");
        assert_eq!(fmt(-0.5), "-0.5");
        assert_eq!(fmt(1.23456), "1.235");
        assert_eq!(fmt(841.89), "841.89");
        assert_eq!(fmt(0.05), "0.05");
        assert_eq!(fmt(1_000_000.25), "1000000.25");
        assert_eq!(fmt(f32::NAN), "0");
    }
}

#[cfg(test)]
mod glyph_string_tests {
    use super::push_glyph_u16;

    #[test]
    fn delimiters_and_carriage_returns_are_escaped() {
        let mut b = Vec::new();
        for g in [0x2829u16, 0x5C0D, 0x0041] {
            push_glyph_u16(&mut b, g);
        }
        assert_eq!(b, b"\\(\\)\\\\\\r\x00A");
    }
}
