//! Fonts: parsing with ttf-parser, families, the embedded default family and fallbacks.

/// Index of a font in a [`FontBook`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FontId(pub u16);

/// A font problem (unreadable file, unsupported format).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FontError(pub String);

/// A parsed font face with precomputed metrics and a content hash.
pub struct Font {
    _private: (),
}

impl Font {
    /// Returns the PostScript name (for the PDF BaseFont).
    pub fn postscript_name(&self) -> &str {
        todo!("text stage")
    }
    /// Returns the SHA-256 of the font file.
    pub fn hash(&self) -> &[u8; 32] {
        todo!("text stage")
    }
    /// Returns the font file bytes.
    pub fn data(&self) -> &[u8] {
        todo!("text stage")
    }
    /// Returns the parsed face.
    pub fn ttf(&self) -> &ttf_parser::Face<'_> {
        todo!("text stage")
    }
    /// Ascender in thousandths of an em.
    pub fn ascender(&self) -> f32 {
        todo!("text stage")
    }
    /// Descender in thousandths of an em (negative).
    pub fn descender(&self) -> f32 {
        todo!("text stage")
    }
    /// Cap height in thousandths of an em.
    pub fn cap_height(&self) -> f32 {
        todo!("text stage")
    }
    /// Horizontal advance of a glyph in thousandths of an em (the hmtx width).
    pub fn glyph_advance(&self, gid: u16) -> f32 {
        let _ = gid;
        todo!("text stage")
    }
}

/// The fonts of a template: families (regular, bold, italic, bold italic) and fallbacks.
pub struct FontBook {
    _private: (),
}

impl FontBook {
    /// Creates a book with the embedded default family ("Liberation Sans", alias "sans")
    /// and the embedded fallback font (DejaVu Sans).
    pub fn with_defaults() -> Self {
        todo!("text stage")
    }
    /// Adds a font file; the same bytes added twice give the same id.
    pub fn add_font(&mut self, data: Vec<u8>) -> Result<FontId, FontError> {
        let _ = data;
        todo!("text stage")
    }
    /// Registers a family; missing variants fall back to the nearest existing one.
    pub fn add_family(
        &mut self,
        name: &str,
        regular: FontId,
        bold: Option<FontId>,
        italic: Option<FontId>,
        bold_italic: Option<FontId>,
    ) {
        let _ = (name, regular, bold, italic, bold_italic);
        todo!("text stage")
    }
    /// Selects the face of a family (case-insensitive name).
    pub fn select(&self, family: &str, bold: bool, italic: bool) -> Option<FontId> {
        let _ = (family, bold, italic);
        todo!("text stage")
    }
    /// Returns a font.
    pub fn font(&self, id: FontId) -> &Font {
        let _ = id;
        todo!("text stage")
    }
    /// Fonts tried, in order, for a character the chosen font lacks.
    pub fn fallbacks(&self) -> &[FontId] {
        todo!("text stage")
    }
    /// Number of fonts.
    pub fn len(&self) -> usize {
        todo!("text stage")
    }
    /// Whether the book is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
