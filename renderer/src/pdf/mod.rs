//! PDF emission on pdf-writer: page content streams (built on worker threads), font
//! subsets with ToUnicode maps, images, tagged structure, print files and per-document PDFs.

use std::sync::Arc;

use crate::doc::DocMeta;
use crate::image::ImageStore;
use crate::layout::frame::LaidOutDocument;
use crate::text::font::FontBook;

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
    pub fonts: Arc<FontBook>,
    pub images: Arc<ImageStore>,
}

/// One document's pages encoded on a worker thread, ready to be appended to a PDF file.
pub struct EncodedDocument {
    /// SHA-256 over the document's uncompressed content, page sizes and the hashes of the
    /// fonts and images it uses: independent of the print file it lands in.
    pub content_hash: [u8; 32],
    pub page_count: u32,
}

/// Reusable per-thread buffers for encoding.
#[derive(Default)]
pub struct EncodeScratch {}

/// Encodes a laid-out document's pages.
pub fn encode_document(
    doc: &LaidOutDocument,
    meta: &DocMeta,
    env: &PdfEnv,
    opts: &PdfOptions,
    scratch: &mut EncodeScratch,
) -> EncodedDocument {
    let _ = (doc, meta, env, opts, scratch);
    todo!("pdf stage")
}

/// Assembles encoded documents into one PDF file (a print file or a per-document PDF).
pub struct PdfFileWriter {
    _private: (),
}

impl PdfFileWriter {
    /// Starts an empty file.
    pub fn new(env: PdfEnv, opts: PdfOptions) -> Self {
        let _ = (env, opts);
        todo!("pdf stage")
    }
    /// Appends a document; returns the 1-based number of its first page in this file.
    pub fn add_document(&mut self, doc: &EncodedDocument) -> u32 {
        let _ = doc;
        todo!("pdf stage")
    }
    /// Appends a blank page (the empty back of a sheet in duplex).
    pub fn add_blank_page(&mut self, width: f32, height: f32) {
        let _ = (width, height);
        todo!("pdf stage")
    }
    /// Pages written so far.
    pub fn page_count(&self) -> u32 {
        todo!("pdf stage")
    }
    /// Writes fonts, images, structure and trailer; returns the file's bytes.
    pub fn finish(self, meta: &DocMeta) -> Vec<u8> {
        let _ = meta;
        todo!("pdf stage")
    }
}
