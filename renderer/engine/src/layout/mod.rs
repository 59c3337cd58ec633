//! Layout: a bound document → pages of positioned items, by regions.
//!
//! [`layout_document`] reads like a table of contents:
//! 1. [`flow`] turns the body's blocks into a sequence of unbreakable *units*
//!    (a paragraph line, a table row, an image) at the body width, building the
//!    structure tree in logical order as it goes;
//! 2. [`pages`] places the units onto pages of the first and following page masters,
//!    honouring keep-with-next, keep-together, page breaks and repeated table headers;
//! 3. [`pages`] then lays out each page's running header and footer (now that
//!    "page X of Y" is known) and the first page's fixed regions (the address window).

pub mod flow;
pub mod frame;
pub mod pages;
pub mod table;
pub mod unit;

use crate::doc::Document;
use crate::image::ImageStore;
use crate::style::{PageMasters, StyleSheet};
use crate::text::TextContext;
use crate::text::font::FontBook;
use frame::LaidOutDocument;

/// What layout reads besides the document: the template's shared resources.
#[derive(Clone, Copy)]
pub struct LayoutEnv<'a> {
    pub fonts: &'a FontBook,
    pub images: &'a ImageStore,
    pub styles: &'a StyleSheet,
    pub masters: &'a PageMasters,
    /// Build the structure tree (for tagged PDF). Off, every item is tagged with the root
    /// and no tree is built: print streams that are not tagged skip that work.
    pub structure: bool,
}

/// A document that cannot be laid out (for example barcode data the symbology cannot hold).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct LayoutError(pub String);

/// Per-thread layout state, reused across documents.
#[derive(Default)]
pub struct LayoutContext {
    pub text: TextContext,
    /// Scratch buffer for paragraph lines.
    pub(crate) lines: Vec<crate::text::LaidLine>,
    /// Scratch buffer for paragraph text.
    pub(crate) buf: String,
}

impl LayoutContext {
    /// Creates a context.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Lays out one document.
pub fn layout_document(
    doc: &Document,
    env: &LayoutEnv<'_>,
    ctx: &mut LayoutContext,
) -> Result<LaidOutDocument, LayoutError> {
    let mut structure = frame::StructTree::new();
    let root = structure.root();
    let body_width = env.masters.first.body_area().2;
    let mut flow = flow::Flow::new(env, ctx, &mut structure, None);
    let units = flow.blocks(&doc.body, body_width, Some(root), None)?;
    let headers = flow.take_headers();
    let mut pages = pages::paginate(units, &headers, env.masters)?;
    pages::add_running_content(&mut pages, doc, env, ctx, &mut structure)?;
    Ok(LaidOutDocument { pages, structure })
}

#[cfg(test)]
mod tests;
