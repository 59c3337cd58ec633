//! Line breaking: UAX #14 opportunities, first-fit filling, alignment, justification and
//! hyphenation.
//!
//! The paragraph's spans are concatenated into one scratch string so break opportunities
//! see across span boundaries. The text between two opportunities is a *segment*; a
//! segment is shaped (through the word cache) piecewise, one piece per span it touches.
//! Lines are filled first-fit: a segment goes on the current line if its content (without
//! trailing spaces) fits; otherwise the breaker tries a hyphenation point, then a new line,
//! and as a last resort (a word wider than a whole line) cuts the word at grapheme-cluster
//! boundaries into line-sized pieces in one pass (`Breaker::emergency_split`).
//!
//! Every step is linear in the paragraph's length: a word is shaped a bounded number of
//! times whatever its length, words longer than [`super::shape::MAX_CACHED_WORD`] bytes
//! bypass the word cache, and runs of more than `MAX_HYPHENATED_LETTERS` letters are not
//! hyphenated.

use std::sync::OnceLock;

use hyphenation::{Hyphenator, Language, Load, Standard};
use rustc_hash::FxHashMap;
use unicode_linebreak::{BreakOpportunity, linebreaks};
use unicode_segmentation::UnicodeSegmentation;

use super::font::{FontBook, FontId};
use super::shape::{ShapedGlyph, Shaper};
use super::{LaidLine, ParagraphSpec, TextSpan};
use crate::layout::frame::{PosGlyph, TextRun};
use crate::layout::limits::{Budget, Exceeded};
use crate::style::{Align, Color};

/// Tolerance, in points, when deciding whether content fits a line.
const EPS: f32 = 1e-3;
/// Marks a glyph whose character is a hyphen the breaker added (not in the source text).
const ADDED: u32 = u32::MAX;
const SOFT_HYPHEN: char = '\u{ad}';

/// Returns the embedded US English hyphenation patterns, loaded once per process.
fn hyphenator() -> Option<&'static Standard> {
    static EN: OnceLock<Option<Standard>> = OnceLock::new();
    EN.get_or_init(|| Standard::from_embedded(Language::EnglishUS).ok())
        .as_ref()
}

#[derive(Clone, Copy, Debug)]
struct SpanInfo {
    end: u32,
    font: FontId,
    size: f32,
    color: Color,
}

/// Text between two break opportunities (or a part of it after a split).
#[derive(Clone, Copy, Debug)]
struct Seg {
    start: u32,
    end: u32,
    /// End of the content: `end` without trailing spaces and line separators.
    content_end: u32,
    /// Followed by a mandatory break (not counting the end of the paragraph).
    hard: bool,
    /// The content ends with a soft hyphen (shown as a hyphen only at a line end).
    soft: bool,
    /// The head of a word split at a hyphenation point (a hyphen is added at the end).
    hyphenated: bool,
    /// A piece an emergency break cut from a word wider than a line: never hyphenated.
    emergency: bool,
}

/// Reusable scratch state of the line breaker.
#[derive(Debug, Default)]
pub(crate) struct Breaker {
    text: String,
    spans: Vec<SpanInfo>,
    segs: Vec<Seg>,
    line: Vec<Seg>,
    /// Segments to place before the next one of `segs`, the next on top: the tail of a
    /// hyphenated word, a segment that did not fit the full line, emergency pieces.
    pending: Vec<Seg>,
    /// Scratch of emergency breaking: advance in points at each byte of the word.
    advances: Vec<f32>,
    /// Scratch of emergency breaking: where the word is cut.
    cuts: Vec<u32>,
    hyphens: HyphenCache,
}

/// Words kept in the hyphenation cache before it is cleared.
const MAX_HYPHENATED_WORDS: usize = 20_000;
/// Longest run of letters that is hyphenated. Longer runs are no word of a natural
/// language (the longest English dictionary word has 45 letters); emergency breaking
/// cuts them instead, so pattern matching never runs over a huge field once per line.
const MAX_HYPHENATED_LETTERS: usize = 64;

/// Hyphenation points per word: pattern matching costs more than laying out the rest of
/// a line, and the same words end lines again and again in a run.
#[derive(Debug, Default)]
struct HyphenCache {
    /// Word → range in `points`. Looked up by `&str` (no allocation on a hit), never
    /// iterated.
    map: FxHashMap<Box<str>, (usize, usize)>,
    /// Byte offsets inside each word where it may be hyphenated, ascending.
    points: Vec<u32>,
}

impl HyphenCache {
    /// Returns the range in `self.points` of the hyphenation points of `word`.
    fn lookup(&mut self, word: &str) -> (usize, usize) {
        if let Some(&r) = self.map.get(word) {
            return r;
        }
        if self.map.len() >= MAX_HYPHENATED_WORDS {
            self.map.clear();
            self.points.clear();
        }
        let first = self.points.len();
        if let Some(hy) = hyphenator() {
            let breaks = hy.hyphenate(word).breaks;
            self.points.extend(breaks.iter().map(|&p| p as u32));
        }
        let r = (first, self.points.len());
        self.map.insert(word.into(), r);
        r
    }
}

/// Whether `c` takes no width at the end of a line (spaces and line separators).
fn is_trailing_space(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t'
            | '\n'
            | '\r'
            | '\u{b}'
            | '\u{c}'
            | '\u{85}'
            | '\u{1680}'
            | '\u{2000}'..='\u{2006}'
            | '\u{2008}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{205f}'
            | '\u{3000}'
    )
}

/// Whether the glyph at byte `at` of `text` is an inter-word space that justification
/// may stretch.
fn is_stretchable(text: &str, at: usize) -> bool {
    matches!(text.as_bytes().get(at), Some(b' ')) || text[at..].starts_with('\u{a0}')
}

/// Collects a line's glyphs into runs of one font, size and colour.
struct RunBuilder {
    runs: Vec<TextRun>,
    /// Glyphs of the open run, moved into it when it closes.
    glyphs: Vec<PosGlyph>,
    open: bool,
    /// Span and font of the last glyph: the same pair means the same run (fast path).
    span: usize,
    font: FontId,
    size: f32,
    color: Color,
    /// Left edge of the open run, points from the start of the line.
    x: f32,
    /// Advances of the open run, thousandths of an em.
    units: f32,
    text_start: u32,
    /// End of the line's text: bounds the glyphs a new run can get (one allocation a run).
    line_end: u32,
}

impl RunBuilder {
    fn new(line_end: u32) -> Self {
        RunBuilder {
            runs: Vec::new(),
            glyphs: Vec::new(),
            open: false,
            span: usize::MAX,
            font: FontId(0),
            size: 0.0,
            color: Color::BLACK,
            x: 0.0,
            units: 0.0,
            text_start: 0,
            line_end,
        }
    }

    /// Returns the pen position in points from the start of the line.
    fn pen(&self) -> f32 {
        self.x + self.units * self.size / 1000.0
    }

    #[inline]
    fn push(&mut self, text: &str, k: usize, span: &SpanInfo, abs: u32, g: &ShapedGlyph) {
        if !(self.open && self.span == k && self.font == g.font) {
            let same = self.open
                && self.font == g.font
                && self.size == span.size
                && self.color == span.color;
            if !same {
                self.close(text, abs);
                self.open = true;
                (self.font, self.size, self.color) = (g.font, span.size, span.color);
                self.text_start = abs;
                self.glyphs = Vec::with_capacity(self.line_end.saturating_sub(abs) as usize + 2);
            }
            self.span = k;
        }
        self.glyphs.push(PosGlyph {
            id: g.id,
            advance: g.advance,
            dx: g.dx,
            dy: g.dy,
            cluster: abs,
        });
        self.units += g.advance;
    }

    /// Closes the open run: gives it its text `text[text_start..end]` (plus any added
    /// hyphen) and makes its clusters relative to that text.
    fn close(&mut self, text: &str, end: u32) {
        if !self.open {
            return;
        }
        let mut glyphs = std::mem::take(&mut self.glyphs);
        // A run that holds only an added hyphen has no source text. Right-to-left text
        // makes clusters run backwards, so the run's text spans its smallest to its largest
        // cluster, not its first to `end`.
        let (mut start, mut stop) = if self.text_start == ADDED {
            (end, end)
        } else {
            (self.text_start, end)
        };
        for g in glyphs.iter().filter(|g| g.cluster != ADDED) {
            start = start.min(g.cluster);
            let after = text[g.cluster as usize..]
                .chars()
                .next()
                .map_or(0, |c| c.len_utf8() as u32);
            stop = stop.max(g.cluster + after);
        }
        let stop = stop.max(start);
        let mut run_text = String::with_capacity((stop - start) as usize + 1);
        run_text.push_str(&text[start as usize..stop as usize]);
        let mut added = false;
        for g in &mut glyphs {
            if g.cluster == ADDED {
                added = true;
                g.cluster = run_text.len() as u32;
            } else {
                g.cluster -= start;
            }
        }
        if added {
            run_text.push('-');
        }
        self.runs.push(TextRun {
            x: self.x,
            y: 0.0,
            font: self.font,
            size: self.size,
            color: self.color,
            glyphs,
            text: run_text,
        });
        self.x = self.pen();
        self.units = 0.0;
        self.open = false;
    }
}

impl Breaker {
    /// Copies `spans` into the scratch text and computes the segments.
    fn prepare(&mut self, spans: &[TextSpan<'_>]) {
        self.text.clear();
        self.spans.clear();
        self.segs.clear();
        for s in spans {
            if s.text.is_empty() {
                continue;
            }
            self.text.push_str(s.text);
            self.spans.push(SpanInfo {
                end: self.text.len() as u32,
                font: s.font,
                size: s.size,
                color: s.color,
            });
        }
        let len = self.text.len();
        let mut prev = 0;
        for (pos, opp) in linebreaks(&self.text) {
            if pos == prev {
                continue;
            }
            let s = &self.text[prev..pos];
            let content = s.trim_end_matches(is_trailing_space);
            self.segs.push(Seg {
                start: prev as u32,
                end: pos as u32,
                content_end: (prev + content.len()) as u32,
                hard: opp == BreakOpportunity::Mandatory && pos < len,
                soft: opp == BreakOpportunity::Allowed && content.ends_with(SOFT_HYPHEN),
                hyphenated: false,
                emergency: false,
            });
            prev = pos;
        }
    }

    /// Returns the span that holds byte `pos` (the last span for the end of the text).
    fn span_at(&self, pos: u32) -> usize {
        self.spans
            .partition_point(|s| s.end <= pos)
            .min(self.spans.len() - 1)
    }

    /// Returns `(content width, full width)` in points of `[start, end)` where content
    /// stops at `content_end`. Shapes one piece per span.
    fn widths(
        &self,
        shaper: &mut Shaper,
        book: &FontBook,
        start: u32,
        content_end: u32,
        end: u32,
    ) -> (f32, f32) {
        let (mut content, mut full) = (0.0, 0.0);
        let mut k = self.span_at(start);
        let mut a = start;
        while a < end {
            let span = &self.spans[k];
            let b = span.end.min(end);
            let w = shaper.shape_word(book, span.font, &self.text[a as usize..b as usize]);
            let k_pts = span.size / 1000.0;
            full += w.advance * k_pts;
            if b <= content_end {
                content += w.advance * k_pts;
            } else if a < content_end {
                let part: f32 = shaper
                    .glyphs(w)
                    .iter()
                    .filter(|g| a + g.cluster < content_end)
                    .map(|g| g.advance)
                    .sum();
                content += part * k_pts;
            }
            a = b;
            k += 1;
        }
        (content, full)
    }

    /// Returns the width in points of the hyphen added after byte `at` (in that span).
    fn hyphen_width(&self, shaper: &mut Shaper, book: &FontBook, at: u32) -> f32 {
        let span = &self.spans[self.span_at(at.saturating_sub(1))];
        shaper.shape_word(book, span.font, "-").advance * span.size / 1000.0
    }

    /// Tries to split `seg` at a hyphenation point so that its head plus a hyphen fits
    /// `room` points. Returns the head and the tail.
    fn hyphenate(
        &mut self,
        shaper: &mut Shaper,
        book: &FontBook,
        seg: Seg,
        room: f32,
    ) -> Option<(Seg, Seg)> {
        let word = &self.text[seg.start as usize..seg.content_end as usize];
        let a = word.find(char::is_alphabetic)?;
        let b = word[a..]
            .find(|c: char| !c.is_alphabetic())
            .map_or(word.len(), |n| a + n);
        let letters = word[a..b].chars().take(MAX_HYPHENATED_LETTERS + 1).count();
        if !(5..=MAX_HYPHENATED_LETTERS).contains(&letters) {
            return None;
        }
        let (first, end) = self.hyphens.lookup(&word[a..b]);
        for k in (first..end).rev() {
            let at = seg.start + a as u32 + self.hyphens.points[k];
            let (w, _) = self.widths(shaper, book, seg.start, at, at);
            if w + self.hyphen_width(shaper, book, at) <= room + EPS {
                let head = Seg {
                    end: at,
                    content_end: at,
                    hard: false,
                    soft: false,
                    hyphenated: true,
                    ..seg
                };
                return Some((head, Seg { start: at, ..seg }));
            }
        }
        None
    }

    /// Emergency breaking: cuts `seg`, a word wider than the line it starts, at
    /// grapheme-cluster boundaries into pieces, the first at most `room` points wide and
    /// every other at most `avail`, and pushes them onto `self.pending` (the first on top).
    /// `hyphen` is the width of the hyphen shown after the word (a soft hyphen at its end),
    /// counted with its last grapheme. Returns `false`, pushing nothing, when there is
    /// nothing to cut (a single grapheme).
    ///
    /// One pass over the word: its glyphs are shaped once, their advances summed per
    /// grapheme, and the pieces filled first-fit, so a word of any length costs time
    /// linear in its length (parley's emergency breaks and CSS `overflow-wrap: anywhere`
    /// work the same way). The pieces are re-measured when they are placed, so kerning
    /// across a cut can only make a piece be cut again, never overflow the line.
    fn emergency_split(
        &mut self,
        shaper: &mut Shaper,
        book: &FontBook,
        seg: Seg,
        room: f32,
        avail: f32,
        hyphen: f32,
    ) -> bool {
        let (start, end) = (seg.start, seg.content_end);
        self.advances.clear();
        self.advances.resize((end - start) as usize, 0.0);
        let mut k = self.span_at(start);
        let mut a = start;
        while a < end {
            let span = self.spans[k];
            let b = span.end.min(end);
            let w = shaper.shape_word(book, span.font, &self.text[a as usize..b as usize]);
            let scale = span.size / 1000.0;
            for g in shaper.glyphs(w) {
                let c = a + g.cluster;
                if c < b {
                    self.advances[(c - start) as usize] += g.advance * scale;
                }
            }
            a = b;
            k += 1;
        }
        self.cuts.clear();
        let word = &self.text[start as usize..end as usize];
        let (mut x, mut limit, mut piece_start) = (0.0f32, room, 0usize);
        for (off, g) in word.grapheme_indices(true) {
            let mut gw: f32 = self.advances[off..off + g.len()].iter().sum();
            if off + g.len() == word.len() {
                gw += hyphen;
            }
            if off > piece_start && x + gw > limit + EPS {
                self.cuts.push(start + off as u32);
                (x, limit, piece_start) = (0.0, avail, off);
            }
            x += gw;
        }
        if self.cuts.is_empty() {
            return false;
        }
        let last = *self.cuts.last().expect("a cut");
        self.pending.push(Seg {
            start: last,
            emergency: true,
            ..seg
        });
        let mut next = last;
        for &c in self
            .cuts
            .iter()
            .rev()
            .skip(1)
            .chain(std::iter::once(&start))
        {
            self.pending.push(Seg {
                start: c,
                end: next,
                content_end: next,
                hard: false,
                soft: false,
                hyphenated: false,
                emergency: true,
            });
            next = c;
        }
        true
    }

    /// Breaks `spans` into lines and appends them to `out`.
    ///
    /// Stops with [`Exceeded::Pages`] once it has made `max_lines` lines and more text is
    /// left, and with [`Exceeded::Time`] when `budget` runs out of time (checked as lines
    /// are made); `out` then holds the lines made so far.
    #[expect(
        clippy::too_many_arguments,
        reason = "the paragraph, its shaping state and its limits"
    )]
    pub(crate) fn layout(
        &mut self,
        shaper: &mut Shaper,
        book: &FontBook,
        spans: &[TextSpan<'_>],
        spec: &ParagraphSpec,
        max_lines: usize,
        budget: &mut Budget,
        out: &mut Vec<LaidLine>,
    ) -> Result<(), Exceeded> {
        self.prepare(spans);
        if self.spans.is_empty() {
            if let Some(s) = spans.first() {
                let f = book.font(s.font);
                out.push(LaidLine {
                    width: 0.0,
                    ascent: f.ascender() * s.size / 1000.0,
                    descent: -f.descender() * s.size / 1000.0,
                    runs: Vec::new(),
                });
            }
            return Ok(());
        }
        self.line.clear();
        self.pending.clear();
        let first_line = out.len();
        // Called after every line but the last: the line limit, then the clock.
        let mut line_made = |out: &Vec<LaidLine>| -> Result<(), Exceeded> {
            if out.len() - first_line >= max_lines {
                return Err(Exceeded::Pages(budget.limits().max_pages));
            }
            budget.tick()
        };
        let mut first = true;
        let mut width = 0.0;
        let mut next = 0;
        loop {
            let seg = match self.pending.pop() {
                Some(s) => s,
                None if next < self.segs.len() => {
                    next += 1;
                    self.segs[next - 1]
                }
                None => break,
            };
            let avail = spec.width - if first { spec.first_line_indent } else { 0.0 };
            let room = avail - width;
            let (content, full) = self.widths(shaper, book, seg.start, seg.content_end, seg.end);
            let hy = if seg.soft {
                self.hyphen_width(shaper, book, seg.content_end)
            } else {
                0.0
            };
            if content + hy <= room + EPS || (self.line.is_empty() && content <= EPS) {
                self.line.push(seg);
                width += full;
                if seg.hard {
                    self.emit(shaper, book, spec, first, false, out);
                    line_made(out)?;
                    first = false;
                    width = 0.0;
                }
                continue;
            }
            if let Some((head, tail)) = (spec.hyphenate && !seg.emergency)
                .then(|| self.hyphenate(shaper, book, seg, room))
                .flatten()
            {
                self.line.push(head);
                self.emit(shaper, book, spec, first, true, out);
                line_made(out)?;
                (first, width) = (false, 0.0);
                self.pending.push(tail);
                continue;
            }
            if !self.line.is_empty() {
                self.emit(shaper, book, spec, first, true, out);
                line_made(out)?;
                (first, width) = (false, 0.0);
                self.pending.push(seg);
                continue;
            }
            if !self.emergency_split(shaper, book, seg, room, spec.width, hy) {
                // A single grapheme wider than the line: it overflows.
                self.line.push(seg);
                width += full;
                if seg.hard {
                    self.emit(shaper, book, spec, first, false, out);
                    line_made(out)?;
                    (first, width) = (false, 0.0);
                }
            }
        }
        if !self.line.is_empty() {
            self.emit(shaper, book, spec, first, false, out);
        }
        Ok(())
    }

    /// Returns the widest line's natural width when `spans` are laid without a width limit
    /// (mandatory breaks still end lines).
    pub(crate) fn measure(
        &mut self,
        shaper: &mut Shaper,
        book: &FontBook,
        spans: &[TextSpan<'_>],
    ) -> f32 {
        self.prepare(spans);
        let (mut max, mut width) = (0.0f32, 0.0);
        for k in 0..self.segs.len() {
            let seg = self.segs[k];
            let (content, full) = self.widths(shaper, book, seg.start, seg.content_end, seg.end);
            max = max.max(width + content);
            width += full;
            if seg.hard {
                width = 0.0;
            }
        }
        max
    }

    /// Turns the segments in `self.line` into a [`LaidLine`]: runs, alignment,
    /// justification (when `stretch` and the paragraph is justified) and metrics.
    fn emit(
        &mut self,
        shaper: &mut Shaper,
        book: &FontBook,
        spec: &ParagraphSpec,
        first: bool,
        stretch: bool,
        out: &mut Vec<LaidLine>,
    ) {
        let text = self.text.as_str();
        let mut rb = RunBuilder::new(self.line.last().map_or(0, |s| s.content_end));
        let n = self.line.len();
        let mut limit = 0;
        for (i, seg) in self.line.iter().enumerate() {
            let last = i + 1 == n;
            limit = if last { seg.content_end } else { seg.end };
            let mut k = self.span_at(seg.start);
            let mut a = seg.start;
            while a < limit {
                let span = self.spans[k];
                let b = span.end.min(seg.end);
                let w = shaper.shape_word(book, span.font, &text[a as usize..b as usize]);
                for g in shaper.glyphs(w) {
                    let abs = a + g.cluster;
                    if abs >= limit || text[abs as usize..].starts_with(SOFT_HYPHEN) {
                        continue;
                    }
                    rb.push(text, k, &span, abs, g);
                }
                a = b;
                k += 1;
            }
            if last && (seg.soft || seg.hyphenated) {
                let at = seg.content_end - 1;
                let k = self.span_at(at);
                let span = self.spans[k];
                let abs = if seg.soft {
                    (seg.content_end as usize - SOFT_HYPHEN.len_utf8()) as u32
                } else {
                    ADDED
                };
                let w = shaper.shape_word(book, span.font, "-");
                for g in shaper.glyphs(w) {
                    rb.push(text, k, &span, abs, g);
                }
            }
        }
        rb.close(text, limit);
        let width = rb.x;
        let mut runs = rb.runs;

        let indent = if first { spec.first_line_indent } else { 0.0 };
        let slack = spec.width - indent - width;
        let mut x0 = indent;
        match spec.align {
            Align::Left => {}
            Align::Right => x0 += slack.max(0.0),
            Align::Center => x0 += slack.max(0.0) / 2.0,
            Align::Justify => {
                if stretch && slack > EPS {
                    justify(&mut runs, slack);
                }
            }
        }
        let mut x = x0;
        let (mut ascent, mut descent) = (0.0f32, 0.0f32);
        for r in &mut runs {
            r.x = x;
            x += r.glyphs.iter().map(|g| g.advance).sum::<f32>() * r.size / 1000.0;
            let f = book.font(r.font);
            ascent = ascent.max(f.ascender() * r.size / 1000.0);
            descent = descent.max(-f.descender() * r.size / 1000.0);
        }
        if runs.is_empty() {
            let s = self.spans[self.span_at(self.line[0].start)];
            let f = book.font(s.font);
            ascent = f.ascender() * s.size / 1000.0;
            descent = -f.descender() * s.size / 1000.0;
        }
        out.push(LaidLine {
            width,
            ascent,
            descent,
            runs,
        });
        self.line.clear();
    }
}

/// Distributes `slack` points over the line's inter-word spaces.
fn justify(runs: &mut [TextRun], slack: f32) {
    let count: usize = runs
        .iter()
        .map(|r| {
            r.glyphs
                .iter()
                .filter(|g| is_stretchable(&r.text, g.cluster as usize))
                .count()
        })
        .sum();
    if count == 0 {
        return;
    }
    let extra = slack / count as f32;
    for r in runs {
        let units = extra * 1000.0 / r.size;
        for g in &mut r.glyphs {
            if is_stretchable(&r.text, g.cluster as usize) {
                g.advance += units;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use unicode_segmentation::UnicodeSegmentation;

    use super::*;
    use crate::text::TextContext;

    fn span<'a>(book: &FontBook, text: &'a str) -> TextSpan<'a> {
        TextSpan {
            text,
            font: book.select("sans", false, false).unwrap(),
            size: 10.0,
            color: Color::BLACK,
        }
    }

    fn spec(width: f32, align: Align, hyphenate: bool) -> ParagraphSpec {
        ParagraphSpec {
            width,
            first_line_indent: 0.0,
            align,
            hyphenate,
        }
    }

    fn lay(book: &FontBook, spans: &[TextSpan<'_>], spec: &ParagraphSpec) -> Vec<LaidLine> {
        let mut cx = TextContext::new();
        let mut out = Vec::new();
        cx.layout_paragraph(book, spans, spec, &mut out);
        out
    }

    fn line_text(l: &LaidLine) -> String {
        l.runs.iter().map(|r| r.text.as_str()).collect()
    }

    /// Drawn width of a line in points (after justification).
    fn drawn(l: &LaidLine) -> f32 {
        l.runs
            .iter()
            .map(|r| r.glyphs.iter().map(|g| g.advance).sum::<f32>() * r.size / 1000.0)
            .sum()
    }

    #[test]
    fn mandatory_breaks_end_lines_and_are_not_emitted() {
        let book = FontBook::with_defaults();
        let lines = lay(
            &book,
            &[span(&book, "one two\nthree\n\nfour\n")],
            &spec(500.0, Align::Justify, false),
        );
        let texts: Vec<String> = lines.iter().map(line_text).collect();
        assert_eq!(texts, ["one two", "three", "", "four"]);
        // A line ending in a mandatory break is not stretched.
        assert!((drawn(&lines[0]) - lines[0].width).abs() < 1e-3);
        assert!(lines[2].runs.is_empty() && lines[2].ascent > 5.0);
        assert!(lines.iter().all(|l| l.ascent > 8.0 && l.descent > 1.0));
    }

    #[test]
    fn right_and_center_alignment_offset_the_runs() {
        let book = FontBook::with_defaults();
        let s = [span(&book, "Hello world ")];
        let left = lay(&book, &s, &spec(200.0, Align::Left, false));
        let w = left[0].width;
        assert!(w > 40.0 && w < 60.0, "{w}");
        assert_eq!(left[0].runs[0].x, 0.0);
        assert_eq!(line_text(&left[0]), "Hello world", "trailing space dropped");
        let right = lay(&book, &s, &spec(200.0, Align::Right, false));
        assert!((right[0].runs[0].x - (200.0 - w)).abs() < 1e-3);
        let center = lay(&book, &s, &spec(200.0, Align::Center, false));
        assert!((center[0].runs[0].x - (200.0 - w) / 2.0).abs() < 1e-3);
        let mut indented = spec(200.0, Align::Left, false);
        indented.first_line_indent = 15.0;
        assert_eq!(lay(&book, &s, &indented)[0].runs[0].x, 15.0);
    }

    #[test]
    fn justified_lines_fill_the_width_except_the_last() {
        let book = FontBook::with_defaults();
        let text = "Your account statement for the period shows all payments received \
                    and all charges made, with the balance carried forward.";
        let lines = lay(
            &book,
            &[span(&book, text)],
            &spec(120.0, Align::Justify, false),
        );
        assert!(lines.len() > 3);
        let (last, rest) = lines.split_last().unwrap();
        for l in rest {
            assert!(
                (drawn(l) - 120.0).abs() < 0.01,
                "{} {}",
                line_text(l),
                drawn(l)
            );
            assert!(l.width <= 120.0 + 1e-3);
        }
        assert!((drawn(last) - last.width).abs() < 1e-3);
        assert!(last.width < 120.0);
    }

    #[test]
    fn long_words_hyphenate_in_narrow_columns() {
        let book = FontBook::with_defaults();
        let s = [span(&book, "the telecommunications infrastructure")];
        let lines = lay(&book, &s, &spec(70.0, Align::Left, true));
        let first = line_text(&lines[0]);
        assert!(first.ends_with('-'), "{first:?}");
        let last_glyph = lines[0]
            .runs
            .last()
            .unwrap()
            .glyphs
            .last()
            .copied()
            .unwrap();
        let run = lines[0].runs.last().unwrap();
        assert_eq!(last_glyph.cluster as usize, run.text.len() - 1);
        assert!(lines.iter().all(|l| l.width <= 70.0 + 1e-3));
        let joined: String = lines
            .iter()
            .map(|l| line_text(l).trim_end_matches('-').to_string())
            .collect::<Vec<_>>()
            .join("");
        assert_eq!(
            joined.replace(' ', ""),
            "thetelecommunicationsinfrastructure"
        );
    }

    #[test]
    fn hyphenation_points_are_cached_per_word() {
        let mut c = HyphenCache::default();
        let (a, b) = c.lookup("telecommunications");
        assert!(b - a >= 3, "{:?}", &c.points[a..b]);
        let points = c.points[a..b].to_vec();
        assert!(points.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(c.lookup("telecommunications"), (a, b));
        assert_eq!(c.points.len(), b);
        let (x, y) = c.lookup("Telecommunications");
        assert_eq!(&c.points[x..y], &points[..], "case-insensitive");
    }

    #[test]
    fn an_unbreakable_word_is_split_rather_than_overflowing() {
        let book = FontBook::with_defaults();
        let s = [span(&book, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")];
        let lines = lay(&book, &s, &spec(40.0, Align::Left, false));
        assert!(lines.len() > 2);
        assert!(
            lines
                .iter()
                .all(|l| l.width <= 40.0 + 1e-3 && !l.runs.is_empty())
        );
        let joined: String = lines.iter().map(line_text).collect();
        assert_eq!(joined, "A".repeat(30));
    }

    #[test]
    fn soft_hyphens_are_invisible_unless_broken_at() {
        let book = FontBook::with_defaults();
        let mut cx = TextContext::new();
        let plain = cx.measure(&book, &[span(&book, "contract")]);
        let soft = [span(&book, "con\u{ad}tract")];
        let wide = lay(&book, &soft, &spec(200.0, Align::Left, false));
        assert_eq!(wide.len(), 1);
        assert!((wide[0].width - plain).abs() < 1e-3);
        let hyphen = cx.shaper().shape(&book, soft[0].font, "-")[0].id;
        assert!(wide[0].runs[0].glyphs.iter().all(|g| g.id != hyphen));
        assert_eq!(wide[0].runs[0].glyphs.len(), "contract".len());

        let narrow = lay(&book, &soft, &spec(plain * 0.7, Align::Left, false));
        assert_eq!(narrow.len(), 2);
        let g = *narrow[0].runs[0].glyphs.last().unwrap();
        assert_eq!(g.id, hyphen);
        assert_eq!(&narrow[0].runs[0].text[g.cluster as usize..], "\u{ad}");
        assert_eq!(line_text(&narrow[1]), "tract");
    }

    #[test]
    fn spans_make_runs_with_their_own_metrics() {
        let book = FontBook::with_defaults();
        let bold = book.select("sans", true, false).unwrap();
        let mut big = span(&book, "Total: ");
        big.font = bold;
        big.size = 20.0;
        let s = [big, span(&book, "42.00 EUR")];
        let lines = lay(&book, &s, &spec(400.0, Align::Left, false));
        assert_eq!(lines.len(), 1);
        let runs = &lines[0].runs;
        assert_eq!(runs.len(), 2);
        assert_eq!((runs[0].font, runs[0].size), (bold, 20.0));
        assert_eq!(
            (runs[0].text.as_str(), runs[1].text.as_str()),
            ("Total: ", "42.00 EUR")
        );
        assert_eq!(runs[1].glyphs[0].cluster, 0);
        assert!(runs[1].x > runs[0].x);
        let f = book.font(bold);
        assert!((lines[0].ascent - f.ascender() * 0.02).abs() < 1e-3);
        let mut cx = TextContext::new();
        assert!((cx.measure(&book, &s) - lines[0].width).abs() < 1e-3);
    }

    #[test]
    fn adjacent_spans_of_one_style_share_a_run() {
        let book = FontBook::with_defaults();
        let s = [
            span(&book, "Dear "),
            span(&book, "Ms"),
            span(&book, " Smith,"),
        ];
        let lines = lay(&book, &s, &spec(400.0, Align::Left, false));
        assert_eq!(lines[0].runs.len(), 1);
        let run = &lines[0].runs[0];
        assert_eq!(run.text, "Dear Ms Smith,");
        assert_eq!(run.glyphs.len(), run.text.len());
        assert!(run.glyphs.iter().zip(0..).all(|(g, i)| g.cluster == i));
    }

    #[test]
    fn fallback_glyphs_get_their_own_run_and_missing_chars_warn_once() {
        let book = FontBook::with_defaults();
        let c = crate::text::shape::tests::uncovered_char(&book);
        let text = format!("a ⇒ b {c} {c}");
        let mut cx = TextContext::new();
        let mut out = Vec::new();
        let s = [span(&book, &text)];
        cx.layout_paragraph(&book, &s, &spec(400.0, Align::Left, false), &mut out);
        let dv = book.fallbacks()[0];
        assert!(out[0].runs.iter().any(|r| r.font == dv && r.text == "⇒"));
        let joined: String = out[0].runs.iter().map(|r| r.text.as_str()).collect();
        assert_eq!(joined, text);
        let w = cx.take_warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains(&format!("U+{:04X}", c as u32)), "{}", w[0]);
        assert!(w[0].contains("LiberationSans"));
        assert!(cx.take_warnings().is_empty());
        cx.layout_paragraph(&book, &s, &spec(400.0, Align::Left, false), &mut out);
        assert_eq!(
            cx.take_warnings().len(),
            1,
            "the next document is told again"
        );
    }

    /// Lays out one word of `n` characters drawn from `alphabet` (a fixed pseudo-random
    /// sequence, so that no two lines are alike), and checks that every line fits
    /// `width`, that the lines hold the word exactly, and that shaping did work linear in
    /// `n`. Returns the lines.
    fn long_word(n: usize, alphabet: &str, width: f32, hyphenate: bool) -> Vec<LaidLine> {
        let book = FontBook::with_defaults();
        let letters: Vec<char> = alphabet.chars().collect();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let word: String = (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                letters[(x % letters.len() as u64) as usize]
            })
            .collect();
        let mut cx = TextContext::new();
        let mut lines = Vec::new();
        let s = [span(&book, &word)];
        cx.layout_paragraph(
            &book,
            &s,
            &spec(width, Align::Justify, hyphenate),
            &mut lines,
        );
        for l in &lines {
            assert!(l.width <= width + 1e-3, "{} > {width}", l.width);
        }
        let joined: String = lines.iter().map(line_text).collect();
        assert!(joined == word, "the lines lose or add text");
        let shaped = cx.shaper().shaped_glyphs();
        assert!(
            shaped <= 8 * n as u64,
            "{shaped} glyphs shaped for a word of {n} characters"
        );
        lines
    }

    #[test]
    fn a_word_of_100000_characters_is_cut_into_full_lines_in_linear_time() {
        let lines = long_word(100_000, "Pressrunfolgtdemwortéλ", 480.0, false);
        // About 90 characters of 10 pt sans fit 480 pt; every line but the last is full.
        assert!(lines.len() > 800 && lines.len() < 2_000, "{}", lines.len());
        let (last, rest) = lines.split_last().unwrap();
        assert!(rest.iter().all(|l| l.width > 470.0), "lines are filled");
        assert!(last.width <= 480.0);
    }

    #[test]
    fn a_huge_word_is_not_hyphenated_but_cut() {
        let lines = long_word(20_000, "abcdefghijklmnopqrstuvwxyz", 200.0, true);
        assert!(lines.iter().all(|l| !line_text(l).ends_with('-')));
        assert!(lines.len() > 100);
    }

    #[test]
    fn emergency_breaks_keep_grapheme_clusters_whole() {
        // A base letter with two combining marks, a flag (two regional indicators) and a
        // family emoji (a ZWJ sequence): cutting inside any of them would be wrong.
        let clusters = ["e\u{301}\u{327}", "🇬🇧", "👨\u{200d}👩\u{200d}👧", "Ж", "ab"];
        let word: String = clusters.iter().cycle().take(600).copied().collect();
        let book = FontBook::with_defaults();
        for width in [6.0f32, 15.0, 33.3, 90.0] {
            let lines = lay(
                &book,
                &[span(&book, &word)],
                &spec(width, Align::Left, false),
            );
            assert!(lines.len() > 2, "{width}");
            let bounds: Vec<usize> = word.grapheme_indices(true).map(|(i, _)| i).collect();
            let mut at = 0;
            for l in &lines {
                at += line_text(l).len();
                assert!(
                    at == word.len() || bounds.binary_search(&at).is_ok(),
                    "cut inside a grapheme at byte {at} (width {width})"
                );
            }
            assert_eq!(at, word.len());
        }
    }

    fn check_runs_are_contiguous(l: &LaidLine) -> Result<(), TestCaseError> {
        for w in l.runs.windows(2) {
            let end =
                w[0].x + w[0].glyphs.iter().map(|g| g.advance).sum::<f32>() * w[0].size / 1000.0;
            prop_assert!((end - w[1].x).abs() < 1e-3, "{} vs {}", end, w[1].x);
        }
        for r in &l.runs {
            prop_assert!(!r.glyphs.is_empty());
            prop_assert!(r.glyphs.iter().all(|g| (g.cluster as usize) < r.text.len()));
            prop_assert!(r.glyphs.windows(2).all(|g| g[0].cluster <= g[1].cluster));
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn very_long_words_are_cut_into_lines_that_fit_without_losing_text(
            pieces in prop::collection::vec(
                prop::sample::select(vec![
                    "a", "W", "ﬁ", "1", ".", "é", "e\u{301}", "Ж", "λ", "🇩🇪", "👍🏽", "\u{ad}", "AV", "⇒",
                ]),
                50..1500,
            ),
            width in 4.0f32..400.0,
            indent in -20.0f32..40.0,
            hyphenate in any::<bool>(),
        ) {
            let book = FontBook::with_defaults();
            let word: String = pieces.concat();
            let mut sp = spec(width, Align::Justify, hyphenate);
            sp.first_line_indent = indent;
            let lines = lay(&book, &[span(&book, &word)], &sp);
            // Soft hyphens are invisible (or shown as the added hyphen at a line end).
            let visible = |s: &str| s.replace(['\u{ad}', '-'], "");
            let word = visible(&word);
            let mut at = 0;
            for (i, l) in lines.iter().enumerate() {
                let text = visible(&line_text(l));
                prop_assert!(word[at..].starts_with(&text), "line {} {:?} is not the next text", i, text);
                let graphemes = text.graphemes(true).count();
                let avail = width - if i == 0 { indent } else { 0.0 };
                prop_assert!(
                    l.width <= avail + 0.01 || graphemes <= 1,
                    "line {} {:?} is {} wide, more than {}", i, text, l.width, avail
                );
                at += text.len();
                check_runs_are_contiguous(l)?;
            }
            prop_assert_eq!(at, word.len(), "text lost");
        }

        #[test]
        fn lines_fit_keep_the_text_and_justify(
            words in prop::collection::vec("[a-zA-Z]{1,14}", 1..40),
            width in 20.0f32..300.0,
            hyphenate in any::<bool>(),
        ) {
            let book = FontBook::with_defaults();
            let text = words.join(" ");
            let lines = lay(&book, &[span(&book, &text)], &spec(width, Align::Justify, hyphenate));
            for l in &lines {
                let glyphs: usize = l.runs.iter().map(|r| r.glyphs.len()).sum();
                prop_assert!(l.width <= width + 0.01 || glyphs == 1, "{} > {}", l.width, width);
                check_runs_are_contiguous(l)?;
            }
            let joined: String = lines.iter().map(line_text).collect();
            prop_assert_eq!(joined.replace(['-', ' '], ""), text.replace(' ', ""));
            let (_, rest) = lines.split_last().unwrap();
            for l in rest {
                if line_text(l).contains(' ') {
                    prop_assert!((drawn(l) - width).abs() < 0.01, "{} vs {}", drawn(l), width);
                }
            }
        }

        #[test]
        fn mixed_spans_scripts_and_breaks_keep_every_character(
            parts in prop::collection::vec(
                ("[a-zA-Zαβγλοςжщыя0-9 ,.\u{ad}\n⇒]{0,24}", 0usize..3, 6.0f32..24.0),
                1..8,
            ),
            width in 10.0f32..250.0,
            align in prop::sample::select(
                vec![Align::Left, Align::Right, Align::Center, Align::Justify],
            ),
            hyphenate in any::<bool>(),
            indent in -10.0f32..30.0,
        ) {
            let book = FontBook::with_defaults();
            let fonts = [
                book.select("sans", false, false).unwrap(),
                book.select("sans", true, false).unwrap(),
                book.select("sans", false, true).unwrap(),
            ];
            let spans: Vec<TextSpan<'_>> = parts
                .iter()
                .map(|(t, f, size)| TextSpan {
                    text: t,
                    font: fonts[*f],
                    size: *size,
                    color: Color::BLACK,
                })
                .collect();
            let mut sp = spec(width, align, hyphenate);
            sp.first_line_indent = indent;
            let lines = lay(&book, &spans, &sp);
            let source: String = parts.iter().map(|p| p.0.as_str()).collect();
            let keep = |s: &str| {
                s.chars()
                    .filter(|c| !matches!(c, ' ' | '\n' | '-' | '\u{ad}'))
                    .collect::<String>()
            };
            let joined: String = lines.iter().map(line_text).collect();
            prop_assert_eq!(keep(&joined), keep(&source));
            for (i, l) in lines.iter().enumerate() {
                check_runs_are_contiguous(l)?;
                let avail = width - if i == 0 { indent } else { 0.0 };
                let clusters: usize = l.runs.iter().map(|r| r.glyphs.len()).sum();
                prop_assert!(
                    l.width <= avail + 0.01 || clusters <= 2,
                    "line {} {} > {}", i, l.width, avail
                );
                if let Some(r) = l.runs.first() {
                    let x0 = if i == 0 { indent } else { 0.0 };
                    prop_assert!(r.x >= x0 - 1e-3);
                }
            }
        }
    }
}
