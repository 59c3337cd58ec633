//! Shaping with rustybuzz behind a per-thread word cache, with font fallback.
//!
//! The cache maps `(FontId, text)` to shaped glyphs. It is a small open-addressing hash
//! table of its own: entries keep their key text in one string arena and their glyphs in
//! one glyph arena, so a lookup by `&str` hashes the borrowed text, compares it against the
//! arena, and allocates nothing. A hit costs one hash and one comparison. Text longer
//! than [`MAX_CACHED_WORD`] bytes is never cached: it is shaped into the per-paragraph
//! scratch arena, so one huge field cannot fill the cache with text never seen again.
//!
//! On a miss the text is itemised by font coverage: characters the chosen font lacks go
//! to the first fallback font that has them; characters no font has are shaped as the
//! chosen font's `.notdef` and reported (see [`Shaper::take_missing`]), never dropped.

use std::hash::Hasher;

use rustc_hash::FxHasher;
use rustybuzz::{Direction, Script, ShapePlan, UnicodeBuffer};

use super::font::{FontBook, FontId};

/// A shaped glyph. Advance and offsets are in thousandths of an em (multiply by the font
/// size / 1000 for points); `cluster` is the byte offset in the shaped text of the first
/// character the glyph represents.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ShapedGlyph {
    /// The font the glyph id belongs to (the chosen font or a fallback).
    pub font: FontId,
    pub id: u16,
    pub advance: f32,
    pub dx: f32,
    pub dy: f32,
    pub cluster: u32,
}

/// A handle to a word in the shaper's glyph arena, valid until the cache is cleared or
/// trimmed (see [`Shaper::trim`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WordRef {
    start: u32,
    len: u32,
    /// In the per-paragraph scratch arena (uncached words) rather than the cache's.
    scratch: bool,
    /// Sum of the glyph advances in thousandths of an em.
    pub advance: f32,
}

/// A character that no loaded font can display, with the font it was requested in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MissingChar {
    pub ch: char,
    pub font: FontId,
}

/// Words kept before the cache is cleared.
const MAX_WORDS: usize = 50_000;
/// Glyphs kept before the cache is cleared.
const MAX_GLYPHS: usize = 1 << 20;
/// Bytes of key text kept before the cache is cleared.
const MAX_TEXT: usize = 4 << 20;
/// Longest text, in bytes, that the cache keeps. Longer "words" (a field of one
/// 100,000-character token, the pieces an emergency break cuts from it) are shaped into
/// the per-paragraph scratch arena instead: they are rarely seen twice, and caching
/// them would fill the arenas with text no later lookup hits.
pub const MAX_CACHED_WORD: usize = 96;

#[derive(Clone, Copy, Debug)]
struct Entry {
    hash: u64,
    text_start: u32,
    text_len: u32,
    word: WordRef,
    font: FontId,
    /// Whether some character of the word is in no loaded font (re-reported on hits).
    missing: bool,
}

struct Plan {
    font: FontId,
    direction: Direction,
    script: Script,
    plan: ShapePlan,
}

/// Shapes words with rustybuzz and caches the results per `(font, text)`.
///
/// One per worker thread; it is never shared. Results are deterministic: the cache only
/// changes speed, never output.
pub struct Shaper {
    /// Open-addressing slots: 0 is empty, otherwise an index into `entries` plus one.
    slots: Vec<u32>,
    entries: Vec<Entry>,
    text: String,
    glyphs: Vec<ShapedGlyph>,
    buffer: Option<UnicodeBuffer>,
    plans: Vec<Plan>,
    missing: Vec<MissingChar>,
    /// Scratch: font runs `(start, end, font)` of the word being shaped.
    items: Vec<(usize, usize, FontId)>,
    /// Content hashes of the fonts of the book the cache was filled from, by `FontId`.
    bound: Vec<[u8; 32]>,
    /// Fallback list of that book.
    bound_fallbacks: Vec<FontId>,
    /// Per font: which amount-and-date characters shape context-free (see [`SimpleTable`]).
    simple: Vec<SimpleTable>,
    /// Glyphs of uncached words, cleared at every [`Shaper::trim`] (paragraph start).
    scratch: Vec<ShapedGlyph>,
    /// Glyphs rustybuzz has produced since the shaper was made (a work counter).
    shaped: u64,
}

/// Characters that usually shape without context: digits, spaces, and the punctuation
/// and currency signs of amounts and dates. Every amount in a statement is a different
/// string, so these would miss the word cache and cost a full rustybuzz call each.
const SIMPLE: [char; 29] = [
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ' ', '.', ',', ':', ';', '-', '+', '(', ')',
    '/', '%', '\'', '£', '€', '$', '¥', '\u{a0}', '\u{202f}', '#',
];

fn simple_index(c: char) -> Option<usize> {
    match c {
        '0'..='9' => Some(c as usize - '0' as usize),
        _ => SIMPLE[10..].iter().position(|&s| s == c).map(|i| i + 10),
    }
}

/// For one font: the glyph and advance of each [`SIMPLE`] character shaped alone, and
/// which ordered pairs shape exactly as their two characters alone (no kerning, no
/// ligature, no offsets). Built once per font and thread by shaping every pair with
/// rustybuzz, so the fast path gives the glyphs rustybuzz gives: a string of these
/// characters whose every adjacent pair is independent is shaped by table lookup.
struct SimpleTable {
    font: FontId,
    glyphs: [Option<(u16, f32)>; SIMPLE.len()],
    independent: [[bool; SIMPLE.len()]; SIMPLE.len()],
}

impl Default for Shaper {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Shaper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shaper")
            .field("words", &self.entries.len())
            .field("glyphs", &self.glyphs.len())
            .finish()
    }
}

impl Shaper {
    /// Creates an empty shaper.
    pub fn new() -> Self {
        Shaper {
            slots: vec![0; 1024],
            entries: Vec::new(),
            text: String::new(),
            glyphs: Vec::new(),
            buffer: Some(UnicodeBuffer::new()),
            plans: Vec::new(),
            missing: Vec::new(),
            items: Vec::new(),
            bound: Vec::new(),
            bound_fallbacks: Vec::new(),
            simple: Vec::new(),
            scratch: Vec::new(),
            shaped: 0,
        }
    }

    /// Makes the cache valid for `book`: font ids are only meaningful within one book, so
    /// when the fonts or fallbacks differ from the book the cache was filled from, the
    /// cache and the shape plans are cleared (and all [`WordRef`]s invalidated). Costs one
    /// comparison of the fonts' hashes when the book is the same.
    pub fn bind(&mut self, book: &FontBook) {
        let same = self.bound.len() == book.len()
            && self.bound_fallbacks == book.fallbacks()
            && self
                .bound
                .iter()
                .enumerate()
                .all(|(i, h)| h == book.font(FontId(i as u16)).hash());
        if !same {
            self.clear();
            self.plans.clear();
            self.simple.clear();
            self.bound.clear();
            self.bound
                .extend((0..book.len()).map(|i| *book.font(FontId(i as u16)).hash()));
            self.bound_fallbacks.clear();
            self.bound_fallbacks.extend_from_slice(book.fallbacks());
        }
    }

    /// Shapes `text` in `font` (cached) and returns its glyphs.
    pub fn shape(&mut self, book: &FontBook, font: FontId, text: &str) -> &[ShapedGlyph] {
        self.bind(book);
        self.trim();
        let word = self.shape_word(book, font, text);
        self.glyphs(word)
    }

    /// Shapes `text` in `font` (cached) and returns a handle to its glyphs.
    ///
    /// Never clears the cache, so handles taken earlier stay valid until [`Shaper::trim`],
    /// [`Shaper::bind`] or [`Shaper::clear`]. The caller binds the book first.
    pub fn shape_word(&mut self, book: &FontBook, font: FontId, text: &str) -> WordRef {
        // Amounts and dates are nearly all different: shape them by table into the
        // scratch arena instead of filling the cache with strings never seen again.
        let start = self.scratch.len();
        if self.shape_simple(book, font, text) {
            let glyphs = &self.scratch[start..];
            let advance = glyphs.iter().map(|g| g.advance).sum();
            return WordRef {
                start: start as u32,
                len: glyphs.len() as u32,
                scratch: true,
                advance,
            };
        }
        if text.len() > MAX_CACHED_WORD {
            return self.shape_uncached(book, font, text);
        }
        let hash = hash_key(font, text);
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            let slot = self.slots[i];
            if slot == 0 {
                break;
            }
            let e = &self.entries[slot as usize - 1];
            if e.hash == hash
                && e.font == font
                && &self.text[e.text_start as usize..(e.text_start + e.text_len) as usize] == text
            {
                let (word, missing) = (e.word, e.missing);
                if missing {
                    self.collect_missing(book, font, text);
                }
                return word;
            }
            i = (i + 1) & mask;
        }
        self.insert(book, font, text, hash, i)
    }

    /// Returns the glyphs of a word handle.
    #[inline]
    pub fn glyphs(&self, word: WordRef) -> &[ShapedGlyph] {
        let arena = if word.scratch {
            &self.scratch
        } else {
            &self.glyphs
        };
        &arena[word.start as usize..(word.start + word.len) as usize]
    }

    /// Clears the cache if it has grown past its bounds (50,000 words, a million glyphs
    /// or 4 MiB of text). Invalidates all [`WordRef`]s when it clears.
    pub fn trim(&mut self) {
        self.scratch.clear();
        if self.entries.len() > MAX_WORDS
            || self.glyphs.len() > MAX_GLYPHS
            || self.text.len() > MAX_TEXT
        {
            self.clear();
        }
    }

    /// Empties the word cache (keeping its memory). Invalidates all [`WordRef`]s.
    pub fn clear(&mut self) {
        self.slots.iter_mut().for_each(|s| *s = 0);
        self.entries.clear();
        self.text.clear();
        self.glyphs.clear();
    }

    /// Returns the number of cached words.
    pub fn cached_words(&self) -> usize {
        self.entries.len()
    }

    /// Returns the number of glyphs in the arena.
    pub fn cached_glyphs(&self) -> usize {
        self.glyphs.len()
    }

    /// Returns how many glyphs rustybuzz has produced since the shaper was made: the
    /// shaping work done, cache hits and table lookups not counted.
    pub fn shaped_glyphs(&self) -> u64 {
        self.shaped
    }

    /// Drains the characters found in no loaded font since the last call (repeats included).
    pub fn take_missing(&mut self, out: &mut Vec<MissingChar>) {
        out.append(&mut self.missing);
    }

    /// Shapes `text` into the scratch arena, outside the cache (see [`MAX_CACHED_WORD`]).
    fn shape_uncached(&mut self, book: &FontBook, font: FontId, text: &str) -> WordRef {
        let start = self.glyphs.len();
        self.itemize(book, font, text);
        let mut items = std::mem::take(&mut self.items);
        for &(a, b, f) in &items {
            self.shape_run(book, f, &text[a..b], a as u32);
        }
        items.clear();
        self.items = items;
        let first = self.scratch.len();
        self.scratch.extend(self.glyphs.drain(start..));
        let glyphs = &self.scratch[first..];
        WordRef {
            start: first as u32,
            len: glyphs.len() as u32,
            scratch: true,
            advance: glyphs.iter().map(|g| g.advance).sum(),
        }
    }

    fn insert(
        &mut self,
        book: &FontBook,
        font: FontId,
        text: &str,
        hash: u64,
        slot: usize,
    ) -> WordRef {
        let start = self.glyphs.len();
        let missing = self.itemize(book, font, text);
        let mut items = std::mem::take(&mut self.items);
        for &(a, b, f) in &items {
            self.shape_run(book, f, &text[a..b], a as u32);
        }
        items.clear();
        self.items = items;
        let advance = self.glyphs[start..].iter().map(|g| g.advance).sum();
        let word = WordRef {
            start: start as u32,
            len: (self.glyphs.len() - start) as u32,
            scratch: false,
            advance,
        };
        let text_start = self.text.len() as u32;
        self.text.push_str(text);
        self.entries.push(Entry {
            hash,
            text_start,
            text_len: text.len() as u32,
            word,
            font,
            missing,
        });
        self.slots[slot] = self.entries.len() as u32;
        if self.entries.len() * 2 > self.slots.len() {
            self.grow();
        }
        word
    }

    /// Shapes `text` by table lookup if every character is a [`SIMPLE`] one the font has
    /// and every adjacent pair is independent; returns whether it did.
    fn shape_simple(&mut self, book: &FontBook, font: FontId, text: &str) -> bool {
        let k = match self.simple.iter().position(|t| t.font == font) {
            Some(k) => k,
            None => {
                let table = self.build_simple(book, font);
                self.simple.push(table);
                self.simple.len() - 1
            }
        };
        let table = &self.simple[k];
        let mut prev: Option<usize> = None;
        for c in text.chars() {
            let Some(i) = simple_index(c).filter(|&i| table.glyphs[i].is_some()) else {
                return false;
            };
            if prev.is_some_and(|p| !table.independent[p][i]) {
                return false;
            }
            prev = Some(i);
        }
        for (offset, c) in text.char_indices() {
            let (id, advance) = table.glyphs[simple_index(c).expect("checked")].expect("checked");
            self.scratch.push(ShapedGlyph {
                font,
                id,
                advance,
                dx: 0.0,
                dy: 0.0,
                cluster: offset as u32,
            });
        }
        true
    }

    fn build_simple(&mut self, book: &FontBook, font: FontId) -> SimpleTable {
        let mut table = SimpleTable {
            font,
            glyphs: [None; SIMPLE.len()],
            independent: [[false; SIMPLE.len()]; SIMPLE.len()],
        };
        let f = book.font(font);
        let mut buf = [0u8; 8];
        for (i, &c) in SIMPLE.iter().enumerate() {
            if !f.has_char(c) {
                continue;
            }
            let mark = self.glyphs.len();
            self.shape_run(book, font, c.encode_utf8(&mut buf), 0);
            if let [g] = &self.glyphs[mark..]
                && g.dx == 0.0
                && g.dy == 0.0
            {
                table.glyphs[i] = Some((g.id, g.advance));
            }
            self.glyphs.truncate(mark);
        }
        let mut pair = String::new();
        for (a, &ca) in SIMPLE.iter().enumerate() {
            for (b, &cb) in SIMPLE.iter().enumerate() {
                let (Some(ga), Some(gb)) = (table.glyphs[a], table.glyphs[b]) else {
                    continue;
                };
                pair.clear();
                pair.push(ca);
                pair.push(cb);
                let mark = self.glyphs.len();
                self.shape_run(book, font, &pair, 0);
                table.independent[a][b] = matches!(&self.glyphs[mark..], [x, y]
                    if (x.id, x.advance, y.id, y.advance) == (ga.0, ga.1, gb.0, gb.1)
                        && x.dx == 0.0 && x.dy == 0.0 && y.dx == 0.0 && y.dy == 0.0);
                self.glyphs.truncate(mark);
            }
        }
        table
    }

    fn grow(&mut self) {
        let n = self.slots.len() * 2;
        self.slots.clear();
        self.slots.resize(n, 0);
        let mask = n - 1;
        for (k, e) in self.entries.iter().enumerate() {
            let mut i = e.hash as usize & mask;
            while self.slots[i] != 0 {
                i = (i + 1) & mask;
            }
            self.slots[i] = k as u32 + 1;
        }
    }

    /// Splits `text` into runs of one font each (into `self.items`) and records
    /// characters no font has. Returns whether there were any.
    fn itemize(&mut self, book: &FontBook, font: FontId, text: &str) -> bool {
        self.items.clear();
        let mut any_missing = false;
        let mut cur: Option<FontId> = None;
        let mut run_start = 0;
        for (i, c) in text.char_indices() {
            let chosen = match cur {
                Some(f) if inherits_font(c) || (is_mark(c) && book.font(f).has_char(c)) => f,
                _ => match coverage(book, font, c) {
                    Some(f) => f,
                    None => {
                        any_missing = true;
                        self.missing.push(MissingChar { ch: c, font });
                        font
                    }
                },
            };
            if cur != Some(chosen) {
                if let Some(f) = cur {
                    self.items.push((run_start, i, f));
                }
                cur = Some(chosen);
                run_start = i;
            }
        }
        if let Some(f) = cur {
            self.items.push((run_start, text.len(), f));
        }
        any_missing
    }

    fn collect_missing(&mut self, book: &FontBook, font: FontId, text: &str) {
        for c in text.chars() {
            if !inherits_font(c) && coverage(book, font, c).is_none() {
                self.missing.push(MissingChar { ch: c, font });
            }
        }
    }

    fn shape_run(&mut self, book: &FontBook, font: FontId, text: &str, offset: u32) {
        let f = book.font(font);
        let face = f.shaping_face();
        let scale = f.scale();
        let first = self.glyphs.len();
        let mut buffer = self.buffer.take().unwrap_or_default();
        buffer.push_str(text);
        buffer.guess_segment_properties();
        let (direction, script) = (buffer.direction(), buffer.script());
        let k = match self
            .plans
            .iter()
            .position(|p| p.font == font && p.direction == direction && p.script == script)
        {
            Some(k) => k,
            None => {
                let plan = ShapePlan::new(face, direction, Some(script), None, &[]);
                self.plans.push(Plan {
                    font,
                    direction,
                    script,
                    plan,
                });
                self.plans.len() - 1
            }
        };
        let out = rustybuzz::shape_with_plan(face, &self.plans[k].plan, buffer);
        self.shaped += out.len() as u64;
        self.glyphs
            .extend(
                out.glyph_infos()
                    .iter()
                    .zip(out.glyph_positions())
                    .map(|(info, pos)| ShapedGlyph {
                        font,
                        id: info.glyph_id as u16,
                        advance: pos.x_advance as f32 * scale,
                        dx: pos.x_offset as f32 * scale,
                        dy: pos.y_offset as f32 * scale,
                        cluster: info.cluster + offset,
                    }),
            );
        self.buffer = Some(out.clear());
        if text.chars().any(char::is_control) {
            self.replace_controls(book, font, text, offset, first);
        }
    }

    /// Gives control characters, which fonts rarely map, the space glyph instead of
    /// `.notdef`: a tab as wide as a space, every other control without width.
    fn replace_controls(
        &mut self,
        book: &FontBook,
        font: FontId,
        text: &str,
        offset: u32,
        first: usize,
    ) {
        let f = book.font(font);
        let space = f.ttf().glyph_index(' ').map_or(0, |g| g.0);
        let space_advance = f.glyph_advance(space);
        for g in &mut self.glyphs[first..] {
            let c = text[(g.cluster - offset) as usize..].chars().next();
            if let Some(c) = c.filter(|c| c.is_control()) {
                g.id = space;
                g.advance = if c == '\t' { space_advance } else { 0.0 };
                (g.dx, g.dy) = (0.0, 0.0);
            }
        }
    }
}

fn hash_key(font: FontId, text: &str) -> u64 {
    let mut h = FxHasher::default();
    h.write_u16(font.0);
    h.write(text.as_bytes());
    h.write_u8(0xff);
    // Fx mixes into the high bits; fold them down for the slot index.
    let x = h.finish();
    x ^ (x >> 29) ^ (x >> 47)
}

/// Returns the font that displays `c`: the chosen one, else the first fallback with it.
fn coverage(book: &FontBook, font: FontId, c: char) -> Option<FontId> {
    if book.font(font).has_char(c) {
        return Some(font);
    }
    book.fallbacks()
        .iter()
        .copied()
        .find(|&f| book.font(f).has_char(c))
}

/// Characters that need no glyph of their own (controls and default ignorables such as
/// the soft hyphen, joiners and variation selectors): they stay in the current font.
fn inherits_font(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{ad}'
                | '\u{34f}'
                | '\u{61c}'
                | '\u{180b}'..='\u{180f}'
                | '\u{200b}'..='\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2060}'..='\u{206f}'
                | '\u{fe00}'..='\u{fe0f}'
                | '\u{feff}'
                | '\u{e0000}'..='\u{e0fff}'
        )
}

/// Common combining marks, kept with their base when its font has them.
fn is_mark(c: char) -> bool {
    matches!(
        c,
        '\u{300}'..='\u{36f}'
            | '\u{1ab0}'..='\u{1aff}'
            | '\u{1dc0}'..='\u{1dff}'
            | '\u{20d0}'..='\u{20ff}'
            | '\u{fe20}'..='\u{fe2f}'
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn sans(book: &FontBook) -> FontId {
        book.select("sans", false, false).unwrap()
    }

    #[test]
    fn kerning_narrows_av() {
        let book = FontBook::with_defaults();
        let f = sans(&book);
        let font = book.font(f);
        let mut s = Shaper::new();
        let av: f32 = s.shape(&book, f, "AV").iter().map(|g| g.advance).sum();
        let a = font.glyph_advance(font.ttf().glyph_index('A').unwrap().0);
        let v = font.glyph_advance(font.ttf().glyph_index('V').unwrap().0);
        assert!(av < a + v - 10.0, "AV {av} vs {a} + {v}");
    }

    #[test]
    fn ligature_maps_one_glyph_to_several_chars() {
        let book = FontBook::with_defaults();
        let f = sans(&book);
        let mut s = Shaper::new();
        let g = s.shape(&book, f, "office").to_vec();
        // Whether or not the font has an "ffi" ligature, clusters are increasing byte
        // offsets that start at 0 and stay inside the text.
        assert_eq!(g[0].cluster, 0);
        assert!(g.windows(2).all(|w| w[0].cluster <= w[1].cluster));
        assert!(g.iter().all(|x| (x.cluster as usize) < "office".len()));
    }

    #[test]
    fn cache_hit_returns_identical_glyphs_without_growing() {
        let book = FontBook::with_defaults();
        let f = sans(&book);
        let mut s = Shaper::new();
        let first = s.shape(&book, f, "Statement").to_vec();
        let (words, glyphs) = (s.cached_words(), s.cached_glyphs());
        let again = s.shape(&book, f, "Statement").to_vec();
        assert_eq!(first, again);
        assert_eq!((words, glyphs), (s.cached_words(), s.cached_glyphs()));
        // Another font is another key.
        let bold = book.select("sans", true, false).unwrap();
        s.shape(&book, bold, "Statement");
        assert_eq!(s.cached_words(), words + 1);
        s.clear();
        assert_eq!(s.cached_words(), 0);
        assert_eq!(s.shape(&book, f, "Statement"), &first[..]);
    }

    #[test]
    fn another_book_with_other_fonts_clears_the_cache() {
        let book = FontBook::with_defaults();
        let f = sans(&book);
        let mut s = Shaper::new();
        let a = s.shape(&book, f, "Total").to_vec();
        s.shape(&book, f, "Due");
        s.shape(&FontBook::with_defaults(), f, "Total");
        assert_eq!(s.cached_words(), 2, "an equal book keeps the cache");

        let mut other_fallbacks = FontBook::with_defaults();
        other_fallbacks.add_fallback(FontId(1));
        s.shape(&other_fallbacks, f, "Total");
        assert_eq!(s.cached_words(), 1, "other fallbacks clear the cache");

        // A book whose FontId(0) is DejaVu Sans: the same id now means another font.
        let mut dejavu = FontBook::empty();
        let dv = book.font(book.fallbacks()[0]).data().to_vec();
        assert_eq!(dejavu.add_font(dv).unwrap(), FontId(0));
        let b = s.shape(&dejavu, FontId(0), "Total").to_vec();
        assert_eq!(s.cached_words(), 1);
        assert_ne!(a, b);
    }

    #[test]
    fn many_words_survive_table_growth() {
        let book = FontBook::with_defaults();
        let f = sans(&book);
        let mut s = Shaper::new();
        let words: Vec<String> = (0..3000).map(|i| format!("w{i}")).collect();
        let refs: Vec<WordRef> = words.iter().map(|w| s.shape_word(&book, f, w)).collect();
        for (w, r) in words.iter().zip(&refs) {
            assert_eq!(s.shape_word(&book, f, w), *r);
        }
        assert_eq!(s.cached_words(), 3000);
    }

    #[test]
    fn words_longer_than_the_entry_bound_are_shaped_but_never_cached() {
        let book = FontBook::with_defaults();
        let f = sans(&book);
        let mut s = Shaper::new();
        s.bind(&book);
        let fits = "w".repeat(MAX_CACHED_WORD);
        let long = "w".repeat(MAX_CACHED_WORD + 1);
        s.shape_word(&book, f, &fits);
        assert_eq!(s.cached_words(), 1);
        let before = s.shaped_glyphs();
        let w = s.shape_word(&book, f, &long);
        assert_eq!(s.glyphs(w).len(), long.len());
        assert_eq!(s.cached_words(), 1, "the long word is not cached");
        assert_eq!(s.cached_glyphs(), MAX_CACHED_WORD);
        s.shape_word(&book, f, &long);
        assert_eq!(s.shaped_glyphs() - before, 2 * long.len() as u64);
        // Uncached glyphs equal what the cache would have held.
        let w = s.shape_word(&book, f, &long);
        let one = s.shape_word(&book, f, "w");
        assert!(s.glyphs(w).iter().all(|g| g.id == s.glyphs(one)[0].id));
    }

    #[test]
    fn greek_and_cyrillic_shape_without_notdef() {
        let book = FontBook::with_defaults();
        let f = sans(&book);
        let mut s = Shaper::new();
        for w in ["Λογαριασμός", "Выписка", "Ελλάδα", "Ёжик"] {
            let g = s.shape(&book, f, w);
            assert!(g.iter().all(|g| g.id != 0 && g.font == f), "{w}: {g:?}");
            assert_eq!(g.len(), w.chars().count(), "{w}");
        }
        let mut m = Vec::new();
        s.take_missing(&mut m);
        assert!(m.is_empty());
    }

    #[test]
    fn fallback_font_covers_what_the_primary_lacks() {
        let book = FontBook::with_defaults();
        let f = sans(&book);
        let dv = book.fallbacks()[0];
        let c = ['⇒', '∰', '⊕', '☎', '✓']
            .into_iter()
            .find(|&c| !book.font(f).has_char(c) && book.font(dv).has_char(c))
            .expect("a symbol only DejaVu Sans has");
        let text = format!("a{c}b");
        let mut s = Shaper::new();
        let g = s.shape(&book, f, &text).to_vec();
        assert_eq!(g.len(), 3);
        assert_eq!((g[0].font, g[1].font, g[2].font), (f, dv, f));
        assert!(g.iter().all(|g| g.id != 0));
        assert_eq!(g[1].cluster, 1);
        assert_eq!(g[2].cluster, 1 + c.len_utf8() as u32);
        let mut m = Vec::new();
        s.take_missing(&mut m);
        assert!(m.is_empty());
    }

    /// Returns a character neither Liberation Sans nor DejaVu Sans has (DejaVu Sans does
    /// have U+1F600, so the emoji is no such character).
    pub(crate) fn uncovered_char(book: &FontBook) -> char {
        ['\u{1F9FF}', '\u{6F22}', '\u{1F600}', '\u{10FFFD}']
            .into_iter()
            .find(|&c| (0..book.len()).all(|i| !book.font(FontId(i as u16)).has_char(c)))
            .expect("a character no embedded font has")
    }

    #[test]
    fn a_character_no_font_has_is_notdef_and_reported_on_every_use() {
        let book = FontBook::with_defaults();
        let f = sans(&book);
        let c = uncovered_char(&book);
        let text = format!("ok{c}");
        let mut s = Shaper::new();
        let g = s.shape(&book, f, &text).to_vec();
        assert_eq!(g.len(), 3);
        assert_eq!((g[2].id, g[2].font), (0, f));
        let mut m = Vec::new();
        s.take_missing(&mut m);
        assert_eq!(m, [MissingChar { ch: c, font: f }]);
        s.shape(&book, f, &text);
        s.take_missing(&mut m);
        assert_eq!(m.len(), 2, "a cache hit reports again");
    }

    #[test]
    fn controls_become_spaces_not_notdef() {
        let book = FontBook::with_defaults();
        let f = sans(&book);
        let mut s = Shaper::new();
        let space = s.shape(&book, f, " ")[0];
        let g = s.shape(&book, f, "a\tb\r\n").to_vec();
        assert!(g.iter().all(|g| g.id != 0), "{g:?}");
        assert_eq!((g[1].id, g[1].advance), (space.id, space.advance));
        assert_eq!((g[3].advance, g[4].advance), (0.0, 0.0));
        let mut m = Vec::new();
        s.take_missing(&mut m);
        assert!(m.is_empty());
    }

    #[test]
    fn soft_hyphen_has_no_width() {
        let book = FontBook::with_defaults();
        let f = sans(&book);
        let mut s = Shaper::new();
        let plain: f32 = s.shape(&book, f, "state").iter().map(|g| g.advance).sum();
        let shy: f32 = s
            .shape(&book, f, "sta\u{ad}te")
            .iter()
            .map(|g| g.advance)
            .sum();
        assert!((plain - shy).abs() < 0.01, "{plain} vs {shy}");
        let mut m = Vec::new();
        s.take_missing(&mut m);
        assert!(m.is_empty());
    }
}

#[cfg(test)]
mod simple_tests {
    use super::*;

    /// The table-lookup path must give exactly what rustybuzz gives.
    #[test]
    fn amounts_shape_the_same_by_table_as_by_rustybuzz() {
        let book = FontBook::with_defaults();
        let samples = [
            "£1,234.56",
            "(€12.00)",
            "-$0.07",
            "19/05/2026",
            "12:30",
            "100%",
            "1 234,50 €",
            "2026-11-23",
            "#42",
            "(£381.25)",
            "¥7",
        ];
        for bold in [false, true] {
            let font = book.select("sans", bold, false).unwrap();
            let mut fast = Shaper::new();
            let mut slow = Shaper::new();
            for s in samples {
                let a = fast.shape(&book, font, s).to_vec();
                slow.bind(&book);
                let mark = slow.glyphs.len();
                slow.shape_run(&book, font, s, 0);
                let b = slow.glyphs[mark..].to_vec();
                assert_eq!(a, b, "{s:?} bold={bold}");
            }
            assert!(fast.simple.iter().any(|t| t.font == font));
        }
    }

    #[test]
    fn letters_never_take_the_table_path() {
        let book = FontBook::with_defaults();
        let font = book.select("sans", false, false).unwrap();
        let mut s = Shaper::new();
        s.bind(&book);
        assert!(!s.shape_simple(&book, font, "AV"));
        assert!(s.shape_simple(&book, font, "1,234.56"));
        // Amounts go to the scratch arena: they never fill the word cache.
        s.shape(&book, font, "£9,876.54");
        s.shape(&book, font, "Statement");
        assert_eq!(s.cached_words(), 1);
    }
}
