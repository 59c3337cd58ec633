//! The PDF file writer: pages appended as they come, shared resources written once.
//!
//! Page objects and content streams go into the output buffer as soon as a document is
//! appended; fonts and images get their object numbers on first use and are written by
//! [`PdfFileWriter::finish`], each once per file, fonts subset to the glyphs the whole
//! file uses. Object numbers are handed out in order of appearance, so a file is a pure
//! function of the documents appended and the metadata.

use std::collections::BTreeMap;

use pdf_writer::types::TabOrder;
use pdf_writer::{Chunk, Filter, Finish, Name, Pdf, Rect, Ref, TextStr};
use sha2::{Digest, Sha256};

use super::tags::{TaggedDoc, TaggedPage, write_structure};
use super::{EncodedDocument, PdfEnv, PdfOptions};
use crate::doc::DocMeta;
use crate::image::{ImageAsset, ImageColor, ImageData, ImageId};
use crate::layout::frame::StructTree;
use crate::text::font::FontId;

/// Pages directly under the page tree root; later pages go into intermediate nodes
/// of this many pages each, so a print file of 100 000 pages has a root of ~1 600 kids.
const FANOUT: usize = 64;

/// A font used in the file: its Type0 object and the glyphs used, with their text.
struct FileFont {
    type0: Ref,
    glyphs: BTreeMap<u16, String>,
}

/// Assembles encoded documents into one PDF file (a print file or a per-document PDF).
pub struct PdfFileWriter {
    env: PdfEnv,
    opts: PdfOptions,
    pdf: Pdf,
    next_ref: i32,
    catalog: Ref,
    page_tree: Ref,
    struct_root: Ref,
    pages: Vec<Ref>,
    /// Intermediate page tree nodes (pages after the first [`FANOUT`]).
    page_nodes: Vec<Ref>,
    fonts: BTreeMap<FontId, FileFont>,
    images: BTreeMap<ImageId, Ref>,
    tagged_docs: Vec<TaggedDoc>,
    next_key: i32,
    /// Hash over everything appended, for the file identifier.
    hasher: Sha256,
    name_buf: Vec<u8>,
    deflater: super::Deflater,
    /// Helvetica for the text of production marks, once used.
    mark_font: Option<Ref>,
    /// Where pages go when the file is streamed to disk instead of built in memory.
    stream: Option<super::stream::Streamer>,
}

/// The resource name of the font an overlay's text uses.
pub const MARK_FONT: &str = "PRmk";

/// Writes a page's font and image resources (`/F<id>`, `/Im<id>`, and the mark font).
fn resources(
    res: &mut pdf_writer::writers::Resources<'_>,
    page: &super::EncodedPage,
    file_fonts: &BTreeMap<FontId, FileFont>,
    images: &BTreeMap<ImageId, Ref>,
    mark_font: Option<Ref>,
    name_buf: &mut Vec<u8>,
) {
    if !page.fonts.is_empty() || mark_font.is_some() {
        let mut fonts = res.fonts();
        if let Some(m) = mark_font {
            fonts.pair(Name(MARK_FONT.as_bytes()), m);
        }
        for f in &page.fonts {
            name_buf.clear();
            name_buf.push(b'F');
            super::content::push_uint(name_buf, u64::from(f.0));
            fonts.pair(Name(name_buf), file_fonts[f].type0);
        }
    }
    if !page.images.is_empty() {
        let mut xobjects = res.x_objects();
        for i in &page.images {
            name_buf.clear();
            name_buf.extend_from_slice(b"Im");
            super::content::push_uint(name_buf, u64::from(i.0));
            xobjects.pair(Name(name_buf), images[i]);
        }
    }
}

fn uses_mark_font(ops: &[u8]) -> bool {
    ops.windows(MARK_FONT.len() + 1)
        .any(|w| w[0] == b'/' && &w[1..] == MARK_FONT.as_bytes())
}

impl PdfFileWriter {
    /// Starts an empty file.
    pub fn new(env: PdfEnv, opts: PdfOptions) -> Self {
        Self::with_capacity(env, opts, 0)
    }

    /// Starts an empty file whose buffer holds `bytes` before it grows (a print file of
    /// thousands of pages otherwise reallocates and copies itself a dozen times).
    pub fn with_capacity(env: PdfEnv, opts: PdfOptions, bytes: usize) -> Self {
        let mut pdf = Pdf::with_capacity(bytes);
        pdf.set_version(1, 7);
        pdf.set_binary_marker(b"\xC0\xFF\xEE\xAB");
        PdfFileWriter {
            env,
            opts,
            pdf,
            next_ref: 4,
            catalog: Ref::new(1),
            page_tree: Ref::new(2),
            struct_root: Ref::new(3),
            pages: Vec::new(),
            page_nodes: Vec::new(),
            fonts: BTreeMap::new(),
            images: BTreeMap::new(),
            tagged_docs: Vec::new(),
            next_key: 0,
            hasher: Sha256::new(),
            name_buf: Vec::with_capacity(16),
            deflater: super::Deflater::default(),
            mark_font: None,
            stream: None,
        }
    }

    fn alloc(&mut self) -> Ref {
        let r = Ref::new(self.next_ref);
        self.next_ref += 1;
        r
    }

    /// Returns the page tree node the next page goes into, opening a new one when the
    /// current one is full.
    fn next_page_parent(&mut self) -> Ref {
        let n = self.pages.len();
        if n < FANOUT {
            return self.page_tree;
        }
        if (n - FANOUT).is_multiple_of(FANOUT) {
            let node = self.alloc();
            self.page_nodes.push(node);
        }
        *self.page_nodes.last().expect("pushed above")
    }

    /// Appends a document; returns the 1-based number of its first page in this file.
    pub fn add_document(&mut self, doc: &EncodedDocument) -> u32 {
        let first = self.pages.len() as u32 + 1;
        self.register(doc);
        self.add_pages(doc);
        first
    }

    /// Makes a document's fonts (with its glyphs) and images part of the file, once per
    /// document appended; [`Self::add_page`] may then append its pages one by one.
    pub fn register(&mut self, doc: &EncodedDocument) {
        self.hasher.update(b"doc");
        self.hasher.update(doc.content_hash);
        for usage in &doc.fonts {
            if !self.fonts.contains_key(&usage.font) {
                let type0 = self.alloc();
                self.fonts.insert(
                    usage.font,
                    FileFont {
                        type0,
                        glyphs: BTreeMap::new(),
                    },
                );
            }
            let file_font = self.fonts.get_mut(&usage.font).expect("inserted above");
            for (gid, text) in usage.glyphs() {
                let entry = file_font.glyphs.entry(gid).or_default();
                if let (true, Some(t)) = (entry.is_empty(), text) {
                    entry.push_str(t);
                }
            }
        }
        for &img in &doc.images {
            if !self.images.contains_key(&img) {
                let r = self.alloc();
                self.images.insert(img, r);
            }
        }
    }

    /// Appends page `index` (0-based) of a registered document with an overlay content
    /// stream drawn over it (production marks: uncompressed operators, deflated here),
    /// untagged. Returns the page's 1-based number in the file.
    /// An overlay that writes text names the font [`MARK_FONT`] (Helvetica, one of the
    /// standard fonts every PDF reader and RIP has: marks are not document content).
    pub fn add_page(&mut self, doc: &EncodedDocument, index: usize, overlay: Option<&[u8]>) -> u32 {
        let page = &doc.pages[index];
        let parent = self.next_page_parent();
        let page_ref = self.alloc();
        let content_ref = self.alloc();
        self.pages.push(page_ref);
        let mut c = Chunk::new();
        c.stream(content_ref, &page.content)
            .filter(Filter::FlateDecode);
        self.put(&c);
        let overlay_ref = overlay.map(|ops| self.overlay_stream(ops));
        let mark_font = overlay
            .filter(|ops| uses_mark_font(ops))
            .map(|_| self.mark_font_ref());
        let mut c = Chunk::new();
        let mut p = c.page(page_ref);
        p.parent(parent)
            .media_box(Rect::new(0.0, 0.0, page.width, page.height));
        match overlay_ref {
            Some(o) => p.contents_array([content_ref, o]),
            None => p.contents(content_ref),
        };
        let mut res = p.resources();
        resources(
            &mut res,
            page,
            &self.fonts,
            &self.images,
            mark_font,
            &mut self.name_buf,
        );
        res.finish();
        p.finish();
        self.put(&c);
        self.pages.len() as u32
    }

    /// Appends a blank page with an optional overlay (the back of a sheet).
    pub fn add_blank_page_with(&mut self, width: f32, height: f32, overlay: Option<&[u8]>) -> u32 {
        match overlay {
            None => self.add_blank_page(width, height),
            Some(ops) => {
                self.hasher.update(b"blank");
                self.hasher.update(width.to_bits().to_le_bytes());
                self.hasher.update(height.to_bits().to_le_bytes());
                let parent = self.next_page_parent();
                let page_ref = self.alloc();
                self.pages.push(page_ref);
                let o = self.overlay_stream(ops);
                let mark_font = uses_mark_font(ops).then(|| self.mark_font_ref());
                let mut c = Chunk::new();
                let mut p = c.page(page_ref);
                p.parent(parent)
                    .media_box(Rect::new(0.0, 0.0, width, height))
                    .contents(o);
                let mut res = p.resources();
                if let Some(m) = mark_font {
                    res.fonts().pair(Name(MARK_FONT.as_bytes()), m);
                }
                res.finish();
                p.finish();
                self.put(&c);
            }
        }
        self.pages.len() as u32
    }

    /// The file's Helvetica for mark text, allocated on first use and written by `finish`.
    fn mark_font_ref(&mut self) -> Ref {
        match self.mark_font {
            Some(r) => r,
            None => {
                let r = self.alloc();
                self.mark_font = Some(r);
                r
            }
        }
    }

    fn overlay_stream(&mut self, ops: &[u8]) -> Ref {
        self.hasher.update(b"overlay");
        self.hasher.update(ops);
        let r = self.alloc();
        let mut packed = Vec::with_capacity(ops.len() / 3 + 64);
        self.deflater
            .compress(ops, self.opts.compression, &mut packed);
        let mut c = Chunk::new();
        c.stream(r, &packed).filter(Filter::FlateDecode);
        self.put(&c);
        r
    }

    /// Adds one page-phase object: into the file's buffer, or out to the file when the
    /// writer streams.
    fn put(&mut self, c: &Chunk) {
        match &mut self.stream {
            Some(s) => s.put(c),
            None => self.pdf.extend(c),
        }
    }

    /// Appends all pages of a registered document, tagged when the file is.
    fn add_pages(&mut self, doc: &EncodedDocument) {
        let tagged = self.opts.tagged && doc.structure.is_some();
        let mut tagged_pages = Vec::new();
        for page in &doc.pages {
            let parent = self.next_page_parent();
            let page_ref = self.alloc();
            let content_ref = self.alloc();
            self.pages.push(page_ref);
            self.pdf
                .stream(content_ref, &page.content)
                .filter(Filter::FlateDecode);
            let key = (tagged && !page.mcids.is_empty()).then(|| {
                self.next_key += 1;
                self.next_key - 1
            });
            let mut p = self.pdf.page(page_ref);
            p.parent(parent)
                .media_box(Rect::new(0.0, 0.0, page.width, page.height))
                .contents(content_ref);
            if let Some(k) = key {
                p.struct_parents(k);
            }
            if tagged {
                p.tab_order(TabOrder::StructureOrder);
            }
            let mut res = p.resources();
            resources(
                &mut res,
                page,
                &self.fonts,
                &self.images,
                None,
                &mut self.name_buf,
            );
            res.finish();
            p.finish();
            if tagged {
                tagged_pages.push(TaggedPage {
                    page: page_ref,
                    key,
                    mcids: page.mcids.clone(),
                });
            }
        }
        if tagged {
            // A tree without nodes still needs its root for the content to point at.
            let structure = match &doc.structure {
                Some(s) if !s.nodes.is_empty() => s.clone(),
                _ => StructTree::new(),
            };
            self.tagged_docs.push(TaggedDoc {
                structure,
                title: doc.title.clone(),
                lang: doc.lang.clone(),
                pages: tagged_pages,
            });
        }
    }

    /// Appends a blank page (the empty back of a sheet in duplex).
    pub fn add_blank_page(&mut self, width: f32, height: f32) {
        self.hasher.update(b"blank");
        self.hasher.update(width.to_bits().to_le_bytes());
        self.hasher.update(height.to_bits().to_le_bytes());
        let parent = self.next_page_parent();
        let page_ref = self.alloc();
        self.pages.push(page_ref);
        let mut c = Chunk::new();
        let mut p = c.page(page_ref);
        p.parent(parent)
            .media_box(Rect::new(0.0, 0.0, width, height));
        p.resources();
        p.finish();
        self.put(&c);
    }

    /// Pages written so far.
    pub fn page_count(&self) -> u32 {
        self.pages.len() as u32
    }

    /// Starts a file that is written to `path` page by page as it is built (print jobs of
    /// any size in bounded memory): pages appended with [`Self::add_page`] and
    /// [`Self::add_blank_page_with`] go straight to disk; fonts, images, the page tree and
    /// the trailer follow in [`Self::finish_streamed`]. Untagged only.
    pub fn streaming(
        env: PdfEnv,
        opts: PdfOptions,
        path: &std::path::Path,
    ) -> std::io::Result<Self> {
        let mut w = Self::with_capacity(
            env,
            PdfOptions {
                tagged: false,
                ..opts
            },
            1 << 16,
        );
        w.stream = Some(super::stream::Streamer::create(path)?);
        Ok(w)
    }

    /// Finishes a streamed file: writes the rest, fsyncs it; returns its length and SHA-256.
    pub fn finish_streamed(mut self, meta: &DocMeta) -> std::io::Result<(u64, [u8; 32])> {
        let stream = self
            .stream
            .take()
            .ok_or_else(|| std::io::Error::other("the writer does not stream"))?;
        let tail = self.finish(meta);
        stream.finish(&tail)
    }

    /// Writes fonts, images, structure and trailer; returns the file's bytes.
    pub fn finish(mut self, meta: &DocMeta) -> Vec<u8> {
        let level = self.opts.compression;
        let fonts = std::mem::take(&mut self.fonts);
        let env = self.env.clone();
        for (id, file_font) in &fonts {
            let font = env.fonts.font(*id);
            let mut next = self.next_ref;
            let mut alloc = || {
                next += 1;
                Ref::new(next - 1)
            };
            super::fonts::write_font(
                &mut self.pdf,
                &mut alloc,
                font,
                file_font.type0,
                &file_font.glyphs,
                level,
            );
            self.next_ref = next;
        }
        let images = std::mem::take(&mut self.images);
        for (id, r) in &images {
            let asset = env.images.get(*id);
            let smask = match &asset.data {
                ImageData::Flate { alpha: Some(_), .. } => Some(self.alloc()),
                _ => None,
            };
            write_image(&mut self.pdf, asset, *r, smask);
        }

        let count = self.pages.len() as i32;
        let direct = self.pages.len().min(FANOUT);
        self.pdf
            .pages(self.page_tree)
            .kids(self.pages[..direct].iter().chain(&self.page_nodes).copied())
            .count(count);
        for (node, kids) in self
            .page_nodes
            .iter()
            .zip(self.pages[direct..].chunks(FANOUT))
        {
            self.pdf
                .pages(*node)
                .parent(self.page_tree)
                .kids(kids.iter().copied())
                .count(kids.len() as i32);
        }

        if let Some(r) = self.mark_font {
            self.pdf
                .type1_font(r)
                .base_font(Name(b"Helvetica"))
                .encoding_predefined(Name(b"WinAnsiEncoding"));
        }
        let info = self.alloc();
        let mut di = self.pdf.document_info(info);
        if !meta.title.is_empty() {
            di.title(TextStr(&meta.title));
        }
        di.producer(TextStr("Pressrun"));
        di.finish();

        let tagged = self.opts.tagged;
        let metadata = tagged.then(|| {
            let r = self.alloc();
            let xmp = xmp(meta);
            self.pdf.metadata(r, xmp.as_bytes());
            r
        });
        if tagged {
            let docs = std::mem::take(&mut self.tagged_docs);
            let mut next = self.next_ref;
            let mut alloc = || {
                next += 1;
                Ref::new(next - 1)
            };
            write_structure(
                &mut self.pdf,
                &mut alloc,
                self.struct_root,
                &docs,
                &meta.lang,
            );
            self.next_ref = next;
        }

        let mut cat = self.pdf.catalog(self.catalog);
        cat.pages(self.page_tree);
        if !meta.lang.is_empty() {
            cat.lang(TextStr(&meta.lang));
        }
        if !meta.title.is_empty() {
            cat.viewer_preferences().display_doc_title(true);
        }
        if tagged {
            cat.pair(Name(b"StructTreeRoot"), self.struct_root);
            cat.mark_info().marked(true);
            if let Some(m) = metadata {
                cat.metadata(m);
            }
        }
        cat.finish();

        self.hasher.update(b"meta");
        self.hasher.update(meta.title.as_bytes());
        self.hasher.update([0]);
        self.hasher.update(meta.lang.as_bytes());
        self.hasher.update([u8::from(tagged)]);
        let digest = self.hasher.finalize();
        let id = digest[..16].to_vec();
        self.pdf.set_file_id((id.clone(), id));
        self.pdf.finish()
    }
}

/// Escapes text for XML character data.
fn xml_escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
}

/// The XMP packet: title, language, producer and the PDF/UA-1 identification.
fn xmp(meta: &DocMeta) -> String {
    let mut title = String::new();
    xml_escape(&meta.title, &mut title);
    let mut lang = String::new();
    xml_escape(
        if meta.lang.is_empty() {
            "x-default"
        } else {
            &meta.lang
        },
        &mut lang,
    );
    format!(
        concat!(
            "<?xpacket begin=\"\u{feff}\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?>\n",
            "<x:xmpmeta xmlns:x=\"adobe:ns:meta/\">\n",
            "<rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\">\n",
            "<rdf:Description rdf:about=\"\"",
            " xmlns:dc=\"http://purl.org/dc/elements/1.1/\"",
            " xmlns:pdf=\"http://ns.adobe.com/pdf/1.3/\"",
            " xmlns:pdfuaid=\"http://www.aiim.org/pdfua/ns/id/\">\n",
            "<dc:title><rdf:Alt><rdf:li xml:lang=\"x-default\">{title}</rdf:li></rdf:Alt></dc:title>\n",
            "<dc:language><rdf:Bag><rdf:li>{lang}</rdf:li></rdf:Bag></dc:language>\n",
            "<dc:format>application/pdf</dc:format>\n",
            "<pdf:Producer>Pressrun</pdf:Producer>\n",
            "<pdfuaid:part>1</pdfuaid:part>\n",
            "</rdf:Description>\n",
            "</rdf:RDF>\n",
            "</x:xmpmeta>\n",
            "<?xpacket end=\"r\"?>"
        ),
        title = title,
        lang = lang
    )
}

/// Writes an image XObject (and its soft mask, at `smask`, if it has one).
fn write_image(pdf: &mut Pdf, asset: &ImageAsset, id: Ref, smask: Option<Ref>) {
    let color_name = |c: ImageColor| match c {
        ImageColor::Gray => Name(b"DeviceGray"),
        ImageColor::Rgb => Name(b"DeviceRGB"),
        ImageColor::Cmyk => Name(b"DeviceCMYK"),
    };
    let (w, h) = (asset.width_px as i32, asset.height_px as i32);
    match &asset.data {
        ImageData::Jpeg {
            bytes,
            color,
            inverted,
        } => {
            let mut x = pdf.image_xobject(id, bytes);
            x.filter(Filter::DctDecode);
            x.width(w)
                .height(h)
                .color_space_name(color_name(*color))
                .bits_per_component(8);
            if *inverted {
                x.decode([1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0]);
            }
        }
        ImageData::Flate {
            samples,
            color,
            alpha,
        } => {
            let mut x = pdf.image_xobject(id, samples);
            x.filter(Filter::FlateDecode);
            x.width(w)
                .height(h)
                .color_space_name(color_name(*color))
                .bits_per_component(8);
            if let Some(m) = smask {
                x.s_mask(m);
            }
            x.finish();
            if let (Some(a), Some(smask)) = (alpha, smask) {
                let mut m = pdf.image_xobject(smask, a);
                m.filter(Filter::FlateDecode);
                m.width(w)
                    .height(h)
                    .color_space_name(Name(b"DeviceGray"))
                    .bits_per_component(8);
            }
        }
    }
}
