//! PDF emission on pdf-writer: page content streams (built on worker threads), font
//! subsets with ToUnicode maps, images, tagged structure, print files and per-document PDFs.
//!
//! The work is split in two so that the expensive part runs on every core:
//! 1. [`encode_document`] (any worker thread): each page's operators are written into a
//!    reused buffer ([`content`]), hashed and deflated; the glyphs each font needs are
//!    collected with their Unicode text. Resource names come from ids (`/F3`, `/Im0`), so
//!    the result does not depend on the file it will land in.
//! 2. [`PdfFileWriter`] (one per output file): appends encoded documents page by page,
//!    and on [`PdfFileWriter::finish`] writes each font once as a subset of the glyphs
//!    the whole file uses ([`subset`], [`fonts`]), each image once, the structure tree
//!    ([`tags`]) and the trailer.

mod content;
mod fonts;
pub mod spool;
mod stream;
mod subset;
mod tags;
mod writer;

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::doc::DocMeta;
use crate::image::{ImageId, ImageStore};
use crate::layout::frame::{LaidOutDocument, StructId, StructTree, TextRun};
use crate::text::font::{Font, FontBook, FontId};

pub(crate) use content::push_num;
pub use subset::{SubsetError, subset_truetype};
pub use writer::{MARK_FONT, PdfFileWriter};

/// Emission options.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PdfOptions {
    /// Write a structure tree (tagged PDF aimed at PDF/UA-1).
    pub tagged: bool,
    /// Deflate level for content streams (1 fast … 9 small).
    pub compression: u8,
}

impl Default for PdfOptions {
    fn default() -> Self {
        Self {
            tagged: false,
            compression: 1,
        }
    }
}

/// The shared resources documents refer to.
#[derive(Clone)]
pub struct PdfEnv {
    /// The fonts that `FontId`s in the documents index.
    pub fonts: Arc<FontBook>,
    /// The images that `ImageId`s in the documents index.
    pub images: Arc<ImageStore>,
}

/// One page of an [`EncodedDocument`].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EncodedPage {
    /// Page width in points.
    pub width: f32,
    /// Page height in points.
    pub height: f32,
    /// The zlib-compressed content stream (FlateDecode); serialised as one byte string,
    /// not byte by byte.
    #[serde(with = "serde_bytes")]
    pub content: Vec<u8>,
    /// Fonts the page uses, ascending.
    pub fonts: Vec<FontId>,
    /// Images the page uses, ascending.
    pub images: Vec<ImageId>,
    /// The structure node each marked-content id belongs to (index = MCID); empty when
    /// the document was encoded untagged.
    pub mcids: Vec<StructId>,
}

/// The glyphs a document uses from one font, with the text each one stands for.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FontUsage {
    /// The font.
    pub font: FontId,
    /// `(glyph id, text start, text end)` ascending by glyph id; an empty range means the
    /// glyph has no text of its own (a mark or the second glyph of a cluster).
    glyphs: Vec<(u16, u32, u32)>,
    text: String,
}

impl FontUsage {
    /// Iterates over the glyphs used, ascending, with their Unicode text if they have any.
    pub fn glyphs(&self) -> impl Iterator<Item = (u16, Option<&str>)> + '_ {
        self.glyphs.iter().map(|&(g, s, e)| {
            let text = (e > s).then(|| &self.text[s as usize..e as usize]);
            (g, text)
        })
    }
    /// Number of distinct glyphs used.
    pub fn len(&self) -> usize {
        self.glyphs.len()
    }
    /// Whether every glyph's text range lies in the text on character boundaries (always
    /// true for a usage built here; checked for one read from a spool).
    pub fn ranges_valid(&self) -> bool {
        self.glyphs
            .iter()
            .all(|&(_, s, e)| s <= e && self.text.get(s as usize..e as usize).is_some())
    }

    /// Whether no glyph is used.
    pub fn is_empty(&self) -> bool {
        self.glyphs.is_empty()
    }
}

/// One document's pages encoded on a worker thread, ready to be appended to a PDF file.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EncodedDocument {
    /// SHA-256 over the document's uncompressed content, page sizes and the hashes of the
    /// fonts and images it uses: independent of the print file it lands in.
    pub content_hash: [u8; 32],
    /// Number of pages (the length of `pages`).
    pub page_count: u32,
    /// The pages in order.
    pub pages: Vec<EncodedPage>,
    /// Per font used (ascending by id), the glyphs used with their text.
    pub fonts: Vec<FontUsage>,
    /// Images used anywhere in the document, ascending.
    pub images: Vec<ImageId>,
    /// The structure tree, kept when encoded with [`PdfOptions::tagged`] (not spooled:
    /// spooled documents are untagged).
    #[serde(skip)]
    pub structure: Option<StructTree>,
    /// The document's title (from its metadata).
    pub title: String,
    /// The document's language (BCP 47, from its metadata).
    pub lang: String,
}

/// Reusable per-thread buffers for encoding.
#[derive(Default)]
pub struct EncodeScratch {
    content: Vec<u8>,
    mcids: Vec<StructId>,
    page_fonts: Vec<FontId>,
    page_images: Vec<ImageId>,
    tracker: GlyphTracker,
    deflater: Deflater,
}

/// Encodes a laid-out document's pages.
pub fn encode_document(
    doc: &LaidOutDocument,
    meta: &DocMeta,
    env: &PdfEnv,
    opts: &PdfOptions,
    scratch: &mut EncodeScratch,
) -> EncodedDocument {
    let tagging = opts.tagged.then_some(&doc.structure);
    let mut hasher = Sha256::new();
    let mut pages = Vec::with_capacity(doc.pages.len());
    let mut images = Vec::new();
    scratch.tracker.clear();
    for page in &doc.pages {
        let mut w = content::PageWriter::new(
            &mut scratch.content,
            &env.fonts,
            &mut scratch.tracker,
            tagging,
            &mut scratch.mcids,
            &mut scratch.page_fonts,
            &mut scratch.page_images,
            page,
        );
        w.write_page(page);
        hasher.update(b"page");
        hasher.update(page.width.to_bits().to_le_bytes());
        hasher.update(page.height.to_bits().to_le_bytes());
        hasher.update((scratch.content.len() as u64).to_le_bytes());
        hasher.update(&scratch.content);
        let mut compressed = Vec::with_capacity(scratch.content.len() / 3 + 64);
        scratch
            .deflater
            .compress(&scratch.content, opts.compression, &mut compressed);
        images.extend_from_slice(&scratch.page_images);
        pages.push(EncodedPage {
            width: page.width,
            height: page.height,
            content: compressed,
            fonts: scratch.page_fonts.clone(),
            images: scratch.page_images.clone(),
            mcids: scratch.mcids.clone(),
        });
    }
    images.sort_unstable();
    images.dedup();
    let fonts = scratch.tracker.take();

    for usage in &fonts {
        hasher.update(b"font");
        hasher.update(usage.font.0.to_le_bytes());
        hasher.update(env.fonts.font(usage.font).hash());
        for (gid, text) in usage.glyphs() {
            hasher.update(gid.to_le_bytes());
            let text = text.unwrap_or("");
            hasher.update((text.len() as u32).to_le_bytes());
            hasher.update(text.as_bytes());
        }
    }
    for &id in &images {
        hasher.update(b"image");
        hasher.update(id.0.to_le_bytes());
        hasher.update(env.images.get(id).hash);
    }
    if opts.tagged {
        tags::hash_structure(&mut hasher, &doc.structure);
        hasher.update(meta.lang.as_bytes());
    }
    EncodedDocument {
        content_hash: hasher.finalize().into(),
        page_count: pages.len() as u32,
        pages,
        fonts,
        images,
        structure: opts.tagged.then(|| doc.structure.clone()),
        title: meta.title.clone(),
        lang: meta.lang.clone(),
    }
}

/// Slot value of a glyph not seen yet in the current document.
const UNSEEN: u32 = u32::MAX;
/// Slot value of a glyph seen without text of its own.
const NO_TEXT: u32 = u32::MAX - 1;

/// Per font: which glyphs the current document used, and their text.
#[derive(Default)]
struct FontTrack {
    /// Per glyph id: [`UNSEEN`], [`NO_TEXT`] or an index into `spans`.
    slots: Vec<u32>,
    used: Vec<u16>,
    spans: Vec<(u32, u32)>,
    text: String,
}

/// Collects used glyphs and their text without allocating per glyph: a slot table per
/// font, sized once per thread and reset only where it was touched.
#[derive(Default)]
pub(crate) struct GlyphTracker {
    fonts: Vec<FontTrack>,
    used_fonts: Vec<FontId>,
}

impl GlyphTracker {
    fn clear(&mut self) {
        for id in self.used_fonts.drain(..) {
            let t = &mut self.fonts[id.0 as usize];
            for &g in &t.used {
                t.slots[g as usize] = UNSEEN;
            }
            t.used.clear();
            t.spans.clear();
            t.text.clear();
        }
    }

    /// Records the glyphs of a run. A glyph maps to `text[cluster..next cluster]`; only the
    /// first glyph of a cluster gets the text; the first mapping seen wins.
    pub(crate) fn record_run(&mut self, run: &TextRun, font: &Font) {
        let idx = run.font.0 as usize;
        if self.fonts.len() <= idx {
            self.fonts.resize_with(idx + 1, FontTrack::default);
        }
        let t = &mut self.fonts[idx];
        if t.slots.is_empty() {
            t.slots = vec![UNSEEN; usize::from(font.ttf().number_of_glyphs())];
        }
        if t.used.is_empty() && !self.used_fonts.contains(&run.font) {
            self.used_fonts.push(run.font);
        }
        for (i, g) in run.glyphs.iter().enumerate() {
            let Some(&slot) = t.slots.get(usize::from(g.id)) else {
                // Not a glyph of this font: it renders as .notdef and has no outline to keep.
                continue;
            };
            if slot != UNSEEN && slot != NO_TEXT {
                continue;
            }
            if slot == UNSEEN {
                t.used.push(g.id);
            }
            let shares_cluster = i > 0 && run.glyphs[i - 1].cluster == g.cluster;
            let mut new_slot = NO_TEXT;
            if !shares_cluster {
                let start = g.cluster as usize;
                let end = run
                    .glyphs
                    .iter()
                    .map(|o| o.cluster as usize)
                    .filter(|&c| c > start)
                    .min()
                    .unwrap_or(run.text.len());
                if let Some(s) = run.text.get(start..end).filter(|s| !s.is_empty()) {
                    let from = t.text.len() as u32;
                    t.text.push_str(s);
                    t.spans.push((from, t.text.len() as u32));
                    new_slot = t.spans.len() as u32 - 1;
                }
            }
            t.slots[usize::from(g.id)] = new_slot;
        }
    }

    /// Returns the document's usage per font (ascending by font id) and resets.
    fn take(&mut self) -> Vec<FontUsage> {
        self.used_fonts.sort_unstable();
        let mut out = Vec::with_capacity(self.used_fonts.len());
        for &id in &self.used_fonts {
            let t = &mut self.fonts[id.0 as usize];
            t.used.sort_unstable();
            let glyphs = t
                .used
                .iter()
                .map(|&g| match t.slots[g as usize] {
                    NO_TEXT | UNSEEN => (g, 0, 0),
                    s => {
                        let (a, b) = t.spans[s as usize];
                        (g, a, b)
                    }
                })
                .collect();
            out.push(FontUsage {
                font: id,
                glyphs,
                text: t.text.clone(),
            });
        }
        self.clear();
        out
    }
}

/// A zlib compressor kept per thread (its tables are large; allocating them per page
/// would cost more than compressing a small page).
#[derive(Default)]
pub(crate) struct Deflater {
    inner: Option<(u8, flate2::Compress)>,
}

impl Deflater {
    /// Appends the zlib stream of `input` at `level` (clamped to 1..=9) to `out`.
    pub(crate) fn compress(&mut self, input: &[u8], level: u8, out: &mut Vec<u8>) {
        let level = level.clamp(1, 9);
        let c = match &mut self.inner {
            Some((l, c)) if *l == level => {
                c.reset();
                c
            }
            slot => {
                &mut slot
                    .insert((
                        level,
                        flate2::Compress::new(flate2::Compression::new(level as u32), true),
                    ))
                    .1
            }
        };
        out.reserve(input.len() / 2 + 64);
        loop {
            let consumed = c.total_in() as usize;
            let status = c
                .compress_vec(&input[consumed..], out, flate2::FlushCompress::Finish)
                .expect("deflate of an in-memory buffer cannot fail");
            match status {
                flate2::Status::StreamEnd => break,
                _ => out.reserve(out.capacity().max(4096)),
            }
        }
    }
}

/// Compresses bytes with zlib at `level` (used for fonts, images and other streams).
pub(crate) fn deflate(input: &[u8], level: u8) -> Vec<u8> {
    let mut out = Vec::new();
    Deflater::default().compress(input, level, &mut out);
    out
}

#[cfg(test)]
mod tests;
