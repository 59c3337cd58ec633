//! Text: fonts, shaping (cached) and line breaking. Turns styled spans into laid-out lines.
//!
//! Owned by the text stage; the layouter calls [`TextContext::layout_paragraph`].

pub mod font;
pub mod linebreak;
pub mod shape;

use crate::layout::frame::TextRun;
use crate::style::{Align, Color};
use font::{FontBook, FontId};

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
pub struct TextContext {
    _private: (),
}

impl Default for TextContext {
    fn default() -> Self {
        Self::new()
    }
}

impl TextContext {
    /// Creates an empty context.
    pub fn new() -> Self {
        todo!("text stage")
    }

    /// Breaks `spans` into lines of at most `spec.width` and appends them to `out`.
    pub fn layout_paragraph(
        &mut self,
        book: &FontBook,
        spans: &[TextSpan<'_>],
        spec: &ParagraphSpec,
        out: &mut Vec<LaidLine>,
    ) {
        let _ = (book, spans, spec, out);
        todo!("text stage")
    }

    /// Returns the natural width in points of `spans` laid on one line.
    pub fn measure(&mut self, book: &FontBook, spans: &[TextSpan<'_>]) -> f32 {
        let _ = (book, spans);
        todo!("text stage")
    }

    /// Takes the warnings collected since the last call (e.g. a character no loaded font has).
    pub fn take_warnings(&mut self) -> Vec<String> {
        todo!("text stage")
    }
}
