//! Text: fonts, shaping (cached) and line breaking. Turns styled spans into laid-out lines.
//!
//! Owned by the text stage; the layouter calls [`TextContext::layout_paragraph`].

pub mod font;
pub mod linebreak;
pub mod shape;

use crate::layout::frame::TextRun;
use crate::layout::limits::{Budget, Exceeded};
use crate::style::{Align, Color};
use font::{FontBook, FontId};
use linebreak::Breaker;
pub use shape::{MissingChar, ShapedGlyph, Shaper, WordRef};

/// A run of text in one font, size and colour.
#[derive(Clone, Copy, Debug)]
pub struct TextSpan<'a> {
    pub text: &'a str,
    pub font: FontId,
    pub size: f32,
    pub color: Color,
}

/// How to break and align a paragraph.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ParagraphSpec {
    /// Available line width in points.
    pub width: f32,
    /// Indent of the first line in points (may be negative for hanging indents).
    pub first_line_indent: f32,
    pub align: Align,
    /// Hyphenate words that do not fit (English patterns).
    pub hyphenate: bool,
}

/// One line of a laid-out paragraph.
#[derive(Clone, Debug, PartialEq)]
pub struct LaidLine {
    /// Natural width of the line's content in points (before justification).
    pub width: f32,
    /// Largest ascent of the line's fonts, points (positive).
    pub ascent: f32,
    /// Largest descent of the line's fonts, points (positive).
    pub descent: f32,
    /// Runs positioned relative to the line: `x` from the left edge of the paragraph box
    /// (alignment and indent applied), `y` = 0 on the baseline.
    pub runs: Vec<TextRun>,
}

/// Per-thread text scratch state: the shaping cache and reusable buffers.
/// Cleared per document only where needed; never dropped between documents.
#[derive(Debug, Default)]
pub struct TextContext {
    shaper: Shaper,
    breaker: Breaker,
    missing: Vec<MissingChar>,
    /// Characters already reported since the last [`TextContext::take_warnings`], sorted.
    reported: Vec<char>,
    warnings: Vec<String>,
}

impl TextContext {
    /// Creates an empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Breaks `spans` into lines of at most `spec.width` and appends them to `out`.
    ///
    /// Text without any character still gives one empty line (with the first span's
    /// metrics) so that an empty paragraph keeps its height; no spans give no line.
    pub fn layout_paragraph(
        &mut self,
        book: &FontBook,
        spans: &[TextSpan<'_>],
        spec: &ParagraphSpec,
        out: &mut Vec<LaidLine>,
    ) {
        let mut budget = Budget::unlimited();
        let done = self.layout_paragraph_within(book, spans, spec, usize::MAX, &mut budget, out);
        debug_assert!(done.is_ok(), "an unlimited budget is never exceeded");
    }

    /// Like [`TextContext::layout_paragraph`], within limits: stops with
    /// [`Exceeded::Pages`] once `max_lines` lines are made and text is left, and with
    /// [`Exceeded::Time`] when `budget`'s time runs out (checked once per line). On
    /// either, `out` holds the lines made so far.
    pub fn layout_paragraph_within(
        &mut self,
        book: &FontBook,
        spans: &[TextSpan<'_>],
        spec: &ParagraphSpec,
        max_lines: usize,
        budget: &mut Budget,
        out: &mut Vec<LaidLine>,
    ) -> Result<(), Exceeded> {
        self.shaper.bind(book);
        self.shaper.trim();
        let done = self
            .breaker
            .layout(&mut self.shaper, book, spans, spec, max_lines, budget, out);
        self.collect_warnings(book);
        done
    }

    /// Returns the natural width in points of `spans` laid on one line.
    ///
    /// Mandatory breaks (such as `\n`) still end lines; the widest line is returned.
    /// Trailing spaces take no width.
    pub fn measure(&mut self, book: &FontBook, spans: &[TextSpan<'_>]) -> f32 {
        self.shaper.bind(book);
        self.shaper.trim();
        let w = self.breaker.measure(&mut self.shaper, book, spans);
        self.collect_warnings(book);
        w
    }

    /// Takes the warnings collected since the last call (e.g. a character no loaded font has).
    ///
    /// Each character is reported once between two calls; call it once per document.
    pub fn take_warnings(&mut self) -> Vec<String> {
        self.reported.clear();
        std::mem::take(&mut self.warnings)
    }

    /// Returns the shaper (for benchmarks and direct shaping).
    pub fn shaper(&mut self) -> &mut Shaper {
        &mut self.shaper
    }

    fn collect_warnings(&mut self, book: &FontBook) {
        self.shaper.take_missing(&mut self.missing);
        for m in self.missing.drain(..) {
            if let Err(i) = self.reported.binary_search(&m.ch) {
                self.reported.insert(i, m.ch);
                self.warnings.push(format!(
                    "character U+{:04X} '{}' is in neither {} nor any fallback font",
                    m.ch as u32,
                    m.ch,
                    book.font(m.font).postscript_name()
                ));
            }
        }
    }
}
