//! The bound document: what `bind` makes of a template and one record, and what
//! `layout` consumes. Plain data, channel-neutral (blocks and styles, no page operators).

use crate::image::ImageId;
use crate::style::{Align, Color, StyleId};

/// Metadata of one bound document.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct DocMeta {
    /// Stable document id (from the template's `document-id` expression, or the record number).
    pub id: String,
    /// Title shown as the PDF window title.
    pub title: String,
    /// BCP 47 language tag, e.g. `en-GB`.
    pub lang: String,
}

/// One document bound from one record.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Document {
    pub meta: DocMeta,
    /// Flowing body content.
    pub body: Vec<Block>,
    /// Running content and fixed regions of the first page.
    pub first: MasterContent,
    /// Running content and fixed regions of every following page.
    pub rest: MasterContent,
}

/// Running header/footer and the content of fixed regions of one page master.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct MasterContent {
    pub header: Vec<Block>,
    pub footer: Vec<Block>,
    /// Content of the master's fixed regions, by index into `PageMaster::regions`.
    pub regions: Vec<(usize, Vec<Block>)>,
}

/// A block with its pagination rules.
#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    pub kind: BlockKind,
    /// Never separate this block from the next one by a page break.
    pub keep_with_next: bool,
    /// Move the whole block to the next page rather than split it (unless it is taller than a page).
    pub keep_together: bool,
}

impl Block {
    /// Wraps a block kind without keep rules.
    pub fn new(kind: BlockKind) -> Self {
        Self {
            kind,
            keep_with_next: false,
            keep_together: false,
        }
    }
}

/// The kinds of block.
#[derive(Clone, Debug, PartialEq)]
pub enum BlockKind {
    /// A paragraph or heading of inline runs.
    Paragraph(Paragraph),
    /// A bulleted or numbered list.
    List(List),
    /// Side-by-side columns (an address beside account details; a label left, an amount right).
    Columns(Columns),
    Table(Table),
    Image(ImageBlock),
    Barcode(BarcodeBlock),
    /// A horizontal rule across the available width.
    Rule(Rule),
    /// Vertical space in points.
    Spacer(f32),
    /// Forces the next block onto a new page.
    PageBreak,
    /// A group of blocks (e.g. from a fragment or `keep-together` section).
    Group(Vec<Block>),
}

/// What a paragraph is, for the structure tree and for other channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParagraphRole {
    Paragraph,
    /// Heading level 1..=6.
    Heading(u8),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Paragraph {
    pub role: ParagraphRole,
    /// Paragraph style: alignment, spacing, indents, leading and default character style.
    pub style: StyleId,
    pub inlines: Vec<Inline>,
}

/// Inline content of a paragraph. Each run names a resolved style for its characters.
#[derive(Clone, Debug, PartialEq)]
pub enum Inline {
    Text {
        text: String,
        style: StyleId,
    },
    /// The current page number within the document (resolved at layout time).
    PageNumber {
        style: StyleId,
    },
    /// The number of pages of the document (resolved at layout time).
    PageCount {
        style: StyleId,
    },
    /// A forced line break.
    LineBreak,
}

#[derive(Clone, Debug, PartialEq)]
pub struct List {
    pub style: StyleId,
    pub ordered: bool,
    /// Each item is a sequence of blocks.
    pub items: Vec<Vec<Block>>,
}

/// A width of a column: absolute points or a relative share of the remaining width.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Width {
    Points(f32),
    /// Relative share (`2fr` = 2.0); remaining width is split in proportion.
    Fraction(f32),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Columns {
    /// Gap between columns in points.
    pub gap: f32,
    pub columns: Vec<Column>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    pub width: Width,
    pub blocks: Vec<Block>,
}

/// A table bound to an array of the record.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    pub columns: Vec<TableColumn>,
    /// Repeated at the top of every page the table spans.
    pub header: Option<Row>,
    pub rows: Vec<Row>,
    /// Footer / total row, after the last body row.
    pub footer: Option<Row>,
    pub style: TableStyle,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TableColumn {
    pub width: Width,
    pub align: Align,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TableStyle {
    /// Cell padding in points (all sides).
    pub padding: f32,
    /// Horizontal rule between rows, if any.
    pub row_rule: Option<(Color, f32)>,
    /// Rule around the whole table, if any.
    pub border: Option<(Color, f32)>,
    /// Background of the header row.
    pub header_fill: Option<Color>,
    /// Background of every second body row.
    pub stripe_fill: Option<Color>,
    /// Background of the footer row.
    pub footer_fill: Option<Color>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub cells: Vec<Cell>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Cell {
    pub blocks: Vec<Block>,
    /// Overrides the column's alignment.
    pub align: Option<Align>,
    pub fill: Option<Color>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ImageBlock {
    pub image: ImageId,
    /// Width in points; `None` = natural size at the image's resolution (or from height).
    pub width: Option<f32>,
    pub height: Option<f32>,
    pub align: Align,
    /// Alternative text for the structure tree and for other channels.
    pub alt: String,
}

/// Supported barcode symbologies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarcodeKind {
    Code128,
    Qr,
    DataMatrix,
}

#[derive(Clone, Debug, PartialEq)]
pub struct BarcodeBlock {
    pub kind: BarcodeKind,
    pub data: String,
    /// Width in points.
    pub width: f32,
    /// Height in points (for 2D codes, `None` = square).
    pub height: Option<f32>,
    pub align: Align,
    /// Production marks (e.g. inserter codes) are artifacts; customer-facing codes are figures.
    pub artifact: bool,
    pub alt: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub thickness: f32,
    pub color: Color,
    pub space_before: f32,
    pub space_after: f32,
}
