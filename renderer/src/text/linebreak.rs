//! Line breaking: UAX #14 opportunities, first-fit filling, alignment, justification and
//! hyphenation.
//!
//! The paragraph's spans are concatenated into one scratch string so break opportunities
//! see across span boundaries. The text between two opportunities is a *segment*; a
//! segment is shaped (through the word cache) piecewise, one piece per span it touches.
//! Lines are filled first-fit: a segment goes on the current line if its content (without
//! trailing spaces) fits; otherwise the breaker tries a hyphenation point, then a new line,
//! and as a last resort splits the segment at glyph-cluster boundaries.

use std::sync::OnceLock;

use hyphenation::{Hyphenator, Language, Load, Standard};
use unicode_linebreak::{BreakOpportunity, linebreaks};

use super::font::{FontBook, FontId};
use super::shape::{ShapedGlyph, Shaper};
use super::{LaidLine, ParagraphSpec, TextSpan};
use crate::layout::frame::{PosGlyph, TextRun};
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
}

/// Reusable scratch state of the line breaker.
#[derive(Debug, Default)]
pub(crate) struct Breaker {
    text: String,
    spans: Vec<SpanInfo>,
    segs: Vec<Seg>,
    line: Vec<Seg>,
    /// Scratch: `(byte offset, prefix width)` of cluster boundaries for forced splits.
    bounds: Vec<(u32, f32)>,
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

struct RunBuilder {
    runs: Vec<TextRun>,
    text_start: u32,
    pen: f32,
}

impl RunBuilder {
    fn push(&mut self, text: &str, span: &SpanInfo, abs: u32, g: &ShapedGlyph) {
        let same = self
            .runs
            .last()
            .is_some_and(|r| r.font == g.font && r.size == span.size && r.color == span.color);
        if !same {
            self.close(text, abs);
            self.runs.push(TextRun {
                x: self.pen,
                y: 0.0,
                font: g.font,
                size: span.size,
                color: span.color,
                glyphs: Vec::new(),
                text: String::new(),
            });
            self.text_start = abs;
        }
        let run = self.runs.last_mut().expect("a run was just ensured");
        run.glyphs.push(PosGlyph {
            id: g.id,
            advance: g.advance,
            dx: g.dx,
            dy: g.dy,
            cluster: abs,
        });
        self.pen += g.advance * span.size / 1000.0;
    }

    /// Gives the last run its text `text[text_start..end]` (plus any added hyphen) and
    /// makes its clusters relative to that text.
    fn close(&mut self, text: &str, end: u32) {
        let Some(run) = self.runs.last_mut() else {
            return;
        };
        if !run.text.is_empty() || run.glyphs.is_empty() {
            return;
        }
        // A run that holds only an added hyphen has no source text.
        let start = if self.text_start == ADDED {
            end
        } else {
            self.text_start
        };
        run.text.push_str(&text[start as usize..end as usize]);
        let mut added = false;
        for g in &mut run.glyphs {
            if g.cluster == ADDED {
                added = true;
                g.cluster = run.text.len() as u32;
            } else {
                g.cluster -= start;
            }
        }
        if added {
            run.text.push('-');
        }
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
                soft: content.ends_with(SOFT_HYPHEN),
                hyphenated: false,
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
        &self,
        shaper: &mut Shaper,
        book: &FontBook,
        seg: Seg,
        room: f32,
    ) -> Option<(Seg, Seg)> {
        let hy = hyphenator()?;
        let word = &self.text[seg.start as usize..seg.content_end as usize];
        let a = word.find(char::is_alphabetic)?;
        let b = word[a..]
            .find(|c: char| !c.is_alphabetic())
            .map_or(word.len(), |n| a + n);
        if word[a..b].chars().count() < 5 {
            return None;
        }
        let breaks = hy.hyphenate(&word[a..b]).breaks;
        for &p in breaks.iter().rev() {
            let at = seg.start + (a + p) as u32;
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

    /// Splits `seg` at the last glyph-cluster boundary whose head fits `room` (at least
    /// one cluster, so an unbreakable cluster wider than the line still makes progress).
    fn force_split(
        &mut self,
        shaper: &mut Shaper,
        book: &FontBook,
        seg: Seg,
        room: f32,
    ) -> (Seg, Option<Seg>) {
        self.bounds.clear();
        let mut k = self.span_at(seg.start);
        let mut a = seg.start;
        let mut x = 0.0;
        while a < seg.content_end {
            let span = self.spans[k];
            let b = span.end.min(seg.content_end);
            let w = shaper.shape_word(book, span.font, &self.text[a as usize..b as usize]);
            let mut last = None;
            for g in shaper.glyphs(w) {
                let c = a + g.cluster;
                if c >= b {
                    continue;
                }
                if last != Some(c) && c > seg.start {
                    self.bounds.push((c, x));
                }
                last = Some(c);
                x += g.advance * span.size / 1000.0;
            }
            a = b;
            k += 1;
        }
        // Candidates from the widest down; the first boundary is always taken if needed.
        let mut pick = self.bounds.partition_point(|&(_, w)| w <= room + EPS);
        let at = loop {
            if pick == 0 {
                break self.bounds.first().map_or(seg.content_end, |&(p, _)| p);
            }
            let p = self.bounds[pick - 1].0;
            let (w, _) = self.widths(shaper, book, seg.start, p, p);
            if w <= room + EPS || pick == 1 {
                break p;
            }
            pick -= 1;
        };
        if at >= seg.content_end {
            return (seg, None);
        }
        let head = Seg {
            end: at,
            content_end: at,
            hard: false,
            soft: false,
            ..seg
        };
        (head, Some(Seg { start: at, ..seg }))
    }

    /// Breaks `spans` into lines and appends them to `out`.
    pub(crate) fn layout(
        &mut self,
        shaper: &mut Shaper,
        book: &FontBook,
        spans: &[TextSpan<'_>],
        spec: &ParagraphSpec,
        out: &mut Vec<LaidLine>,
    ) {
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
            return;
        }
        self.line.clear();
        let mut first = true;
        let mut width = 0.0;
        let mut next = 0;
        let mut pending: Option<Seg> = None;
        loop {
            let seg = match pending.take() {
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
                    first = false;
                    width = 0.0;
                }
                continue;
            }
            if spec.hyphenate {
                if let Some((head, tail)) = self.hyphenate(shaper, book, seg, room) {
                    self.line.push(head);
                    self.emit(shaper, book, spec, first, true, out);
                    (first, width, pending) = (false, 0.0, Some(tail));
                    continue;
                }
            }
            if !self.line.is_empty() {
                self.emit(shaper, book, spec, first, true, out);
                (first, width, pending) = (false, 0.0, Some(seg));
                continue;
            }
            let (head, tail) = self.force_split(shaper, book, seg, room);
            if let Some(tail) = tail {
                self.line.push(head);
                self.emit(shaper, book, spec, first, true, out);
                (first, width, pending) = (false, 0.0, Some(tail));
            } else {
                self.line.push(seg);
                width += full;
                if seg.hard {
                    self.emit(shaper, book, spec, first, false, out);
                    (first, width) = (false, 0.0);
                }
            }
        }
        if !self.line.is_empty() {
            self.emit(shaper, book, spec, first, false, out);
        }
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
        let mut rb = RunBuilder {
            runs: Vec::new(),
            text_start: 0,
            pen: 0.0,
        };
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
                    rb.push(text, &span, abs, g);
                }
                a = b;
                k += 1;
            }
            if last && (seg.soft || seg.hyphenated) {
                let at = seg.content_end - 1;
                let span = self.spans[self.span_at(at)];
                let abs = if seg.soft {
                    (seg.content_end as usize - SOFT_HYPHEN.len_utf8()) as u32
                } else {
                    ADDED
                };
                let w = shaper.shape_word(book, span.font, "-");
                for g in shaper.glyphs(w) {
                    rb.push(text, &span, abs, g);
                }
            }
        }
        rb.close(text, limit);
        let width = rb.pen;
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
