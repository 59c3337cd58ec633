//! Fonts: parsing with ttf-parser, families, the embedded default family and fallbacks.
//!
//! Font bytes live for the whole process: embedded fonts are `'static`, and fonts that
//! templates bring are interned by SHA-256 and leaked once per distinct file, so memory is
//! bounded by the number of distinct fonts a process ever sees, never by the run size.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use sha2::{Digest, Sha256};

/// Index of a font in a [`FontBook`].
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct FontId(pub u16);

/// A font problem (unreadable file, unsupported format).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FontError(pub String);

const LIBERATION_REGULAR: &[u8] = include_bytes!("../../fonts/LiberationSans-Regular.ttf");
const LIBERATION_BOLD: &[u8] = include_bytes!("../../fonts/LiberationSans-Bold.ttf");
const LIBERATION_ITALIC: &[u8] = include_bytes!("../../fonts/LiberationSans-Italic.ttf");
const LIBERATION_BOLD_ITALIC: &[u8] = include_bytes!("../../fonts/LiberationSans-BoldItalic.ttf");
const DEJAVU_SANS: &[u8] = include_bytes!("../../fonts/DejaVuSans.ttf");

/// The name of the embedded default family.
pub const DEFAULT_FAMILY: &str = "Liberation Sans";

/// A parsed font face with precomputed metrics and a content hash.
pub struct Font {
    data: &'static [u8],
    face: rustybuzz::Face<'static>,
    hash: [u8; 32],
    ps_name: String,
    /// Thousandths of an em per font unit.
    scale: f32,
    ascender: f32,
    descender: f32,
    cap_height: f32,
    /// hmtx advance of every glyph in thousandths of an em (read once, used per glyph).
    advances: Vec<f32>,
}

impl std::fmt::Debug for Font {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Font").field("name", &self.ps_name).finish()
    }
}

/// Font bytes kept for the life of the process, by hash.
static FONTS: OnceLock<Mutex<BTreeMap<[u8; 32], &'static [u8]>>> = OnceLock::new();

fn intern(data: Vec<u8>, hash: [u8; 32]) -> &'static [u8] {
    let mut map = FONTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    map.entry(hash)
        .or_insert_with(|| Box::leak(data.into_boxed_slice()))
}

#[cfg(test)]
fn is_interned(hash: &[u8; 32]) -> bool {
    FONTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains_key(hash)
}

fn not_a_font() -> FontError {
    FontError("not a TrueType or OpenType font, or a damaged one".into())
}

impl Font {
    /// Parses a font from process-lifetime bytes.
    pub fn from_static(data: &'static [u8]) -> Result<Font, FontError> {
        let hash: [u8; 32] = Sha256::digest(data).into();
        Self::parse(data, hash)
    }

    /// Parses a font from owned bytes, interning them by hash. Bytes that are not a font
    /// are refused before they are interned, so a damaged file is never kept.
    pub fn from_vec(data: Vec<u8>) -> Result<Font, FontError> {
        if ttf_parser::Face::parse(&data, 0).is_err() {
            return Err(not_a_font());
        }
        let hash: [u8; 32] = Sha256::digest(&data).into();
        Self::parse(intern(data, hash), hash)
    }

    fn parse(data: &'static [u8], hash: [u8; 32]) -> Result<Font, FontError> {
        let face = rustybuzz::Face::from_slice(data, 0).ok_or_else(not_a_font)?;
        let ttf: &ttf_parser::Face<'_> = &face;
        let ps_name = ttf
            .names()
            .into_iter()
            .filter(|n| n.name_id == ttf_parser::name_id::POST_SCRIPT_NAME)
            .find_map(|n| n.to_string())
            .unwrap_or_else(|| format!("Font{}", hex::encode(&hash[..4])));
        // PDF names must not contain spaces or delimiters.
        let ps_name: String = ps_name
            .chars()
            .filter(|c| c.is_ascii_graphic() && !"()<>[]{}/%#".contains(*c))
            .collect();
        let scale = 1000.0 / ttf.units_per_em() as f32;
        let ascender = ttf.ascender() as f32 * scale;
        let descender = ttf.descender() as f32 * scale;
        let cap_height = ttf
            .capital_height()
            .map(|c| c as f32 * scale)
            .unwrap_or(ascender * 0.7);
        let advances = (0..ttf.number_of_glyphs())
            .map(|g| ttf.glyph_hor_advance(ttf_parser::GlyphId(g)).unwrap_or(0) as f32 * scale)
            .collect();
        Ok(Font {
            data,
            face,
            hash,
            ps_name,
            scale,
            ascender,
            descender,
            cap_height,
            advances,
        })
    }

    /// Returns the PostScript name (for the PDF BaseFont).
    pub fn postscript_name(&self) -> &str {
        &self.ps_name
    }
    /// Returns the SHA-256 of the font file.
    pub fn hash(&self) -> &[u8; 32] {
        &self.hash
    }
    /// Returns the font file bytes.
    pub fn data(&self) -> &'static [u8] {
        self.data
    }
    /// Returns the rustybuzz face used for shaping.
    pub fn shaping_face(&self) -> &rustybuzz::Face<'static> {
        &self.face
    }
    /// Returns the parsed face.
    pub fn ttf(&self) -> &ttf_parser::Face<'static> {
        &self.face
    }
    /// Thousandths of an em per font design unit.
    pub fn scale(&self) -> f32 {
        self.scale
    }
    /// Ascender in thousandths of an em.
    pub fn ascender(&self) -> f32 {
        self.ascender
    }
    /// Descender in thousandths of an em (negative).
    pub fn descender(&self) -> f32 {
        self.descender
    }
    /// Cap height in thousandths of an em.
    pub fn cap_height(&self) -> f32 {
        self.cap_height
    }
    /// Horizontal advance of a glyph in thousandths of an em (the hmtx width).
    #[inline]
    pub fn glyph_advance(&self, gid: u16) -> f32 {
        self.advances.get(gid as usize).copied().unwrap_or(0.0)
    }
    /// Whether the font maps `c` to a glyph.
    pub fn has_char(&self, c: char) -> bool {
        self.face.glyph_index(c).is_some()
    }
}

#[derive(Debug)]
struct Family {
    /// Lower-case name for case-insensitive lookup.
    key: String,
    /// Regular, bold, italic, bold italic.
    faces: [FontId; 4],
}

/// The fonts of a template: families (regular, bold, italic, bold italic) and fallbacks.
#[derive(Debug)]
pub struct FontBook {
    fonts: Vec<Font>,
    families: Vec<Family>,
    fallbacks: Vec<FontId>,
}

impl FontBook {
    /// Creates a book with the embedded default family ("Liberation Sans", alias "sans")
    /// and the embedded fallback font (DejaVu Sans).
    pub fn with_defaults() -> Self {
        let mut book = FontBook::empty();
        let mut add = |d: &'static [u8]| {
            let font = Font::from_static(d).expect("embedded fonts parse");
            book.fonts.push(font);
            FontId(book.fonts.len() as u16 - 1)
        };
        let r = add(LIBERATION_REGULAR);
        let b = add(LIBERATION_BOLD);
        let i = add(LIBERATION_ITALIC);
        let bi = add(LIBERATION_BOLD_ITALIC);
        let dv = add(DEJAVU_SANS);
        for name in [DEFAULT_FAMILY, "sans", "sans-serif", "default"] {
            book.add_family(name, r, Some(b), Some(i), Some(bi));
        }
        book.add_family("DejaVu Sans", dv, None, None, None);
        book.fallbacks = vec![dv];
        book
    }

    /// Creates a book without fonts or fallbacks (for templates that bring all their own).
    pub fn empty() -> Self {
        FontBook {
            fonts: Vec::new(),
            families: Vec::new(),
            fallbacks: Vec::new(),
        }
    }

    /// Adds a font file; the same bytes added twice give the same id.
    pub fn add_font(&mut self, data: Vec<u8>) -> Result<FontId, FontError> {
        let hash: [u8; 32] = Sha256::digest(&data).into();
        if let Some(i) = self.fonts.iter().position(|f| f.hash == hash) {
            return Ok(FontId(i as u16));
        }
        if self.fonts.len() >= u16::MAX as usize {
            return Err(FontError("too many fonts in one template".into()));
        }
        self.fonts.push(Font::from_vec(data)?);
        Ok(FontId(self.fonts.len() as u16 - 1))
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
        let b = bold.unwrap_or(regular);
        let i = italic.unwrap_or(regular);
        let bi = bold_italic.or(bold).or(italic).unwrap_or(regular);
        let key = name.to_lowercase();
        let faces = [regular, b, i, bi];
        match self.families.iter_mut().find(|f| f.key == key) {
            Some(f) => f.faces = faces,
            None => self.families.push(Family { key, faces }),
        }
    }

    /// Adds a font to the fallback list (tried after the ones already there).
    pub fn add_fallback(&mut self, id: FontId) {
        if !self.fallbacks.contains(&id) {
            self.fallbacks.push(id);
        }
    }

    /// Selects the face of a family (case-insensitive name).
    pub fn select(&self, family: &str, bold: bool, italic: bool) -> Option<FontId> {
        let key = family.to_lowercase();
        let f = self.families.iter().find(|f| f.key == key)?;
        Some(f.faces[(bold as usize) | ((italic as usize) << 1)])
    }
    /// Returns a font.
    pub fn font(&self, id: FontId) -> &Font {
        &self.fonts[id.0 as usize]
    }
    /// Fonts tried, in order, for a character the chosen font lacks.
    pub fn fallbacks(&self) -> &[FontId] {
        &self.fallbacks
    }
    /// Number of fonts.
    pub fn len(&self) -> usize {
        self.fonts.len()
    }
    /// Whether the book is empty.
    pub fn is_empty(&self) -> bool {
        self.fonts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_that_are_not_a_font_are_refused_and_not_kept() {
        let mut damaged = DEJAVU_SANS[..4096].to_vec();
        damaged[0] ^= 0xff;
        let hash: [u8; 32] = Sha256::digest(&damaged).into();
        let mut book = FontBook::empty();
        assert!(book.add_font(damaged).is_err());
        assert!(!is_interned(&hash));
        let good = LIBERATION_REGULAR.to_vec();
        let hash: [u8; 32] = Sha256::digest(&good).into();
        book.add_font(good).unwrap();
        assert!(is_interned(&hash));
    }

    #[test]
    fn defaults_select_faces_case_insensitively() {
        let book = FontBook::with_defaults();
        let r = book.select("liberation sans", false, false).unwrap();
        let b = book.select("Sans", true, false).unwrap();
        let bi = book.select("sans", true, true).unwrap();
        assert_ne!(r, b);
        assert_ne!(b, bi);
        assert_eq!(book.font(r).postscript_name(), "LiberationSans");
        assert_eq!(book.font(b).postscript_name(), "LiberationSans-Bold");
        assert!(book.select("Comic Sans", false, false).is_none());
        assert_eq!(book.fallbacks().len(), 1);
    }

    #[test]
    fn metrics_are_in_thousandths_of_an_em() {
        let book = FontBook::with_defaults();
        let f = book.font(book.select("sans", false, false).unwrap());
        assert!(
            f.ascender() > 800.0 && f.ascender() < 1000.0,
            "{}",
            f.ascender()
        );
        assert!(f.descender() < -100.0);
        let gid = f.ttf().glyph_index('M').unwrap().0;
        assert!(
            (f.glyph_advance(gid) - 833.0).abs() < 1.0,
            "{}",
            f.glyph_advance(gid)
        );
        assert!(f.has_char('é') && f.has_char('Ω') && f.has_char('Ж'));
    }

    #[test]
    fn the_same_font_added_twice_has_one_id() {
        let mut book = FontBook::with_defaults();
        let a = book.add_font(DEJAVU_SANS.to_vec()).unwrap();
        let b = book.add_font(DEJAVU_SANS.to_vec()).unwrap();
        assert_eq!(a, b);
        assert!(book.add_font(b"not a font".to_vec()).is_err());
    }
}
