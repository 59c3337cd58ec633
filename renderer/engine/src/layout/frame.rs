//! Frames: the output of layout and the input of the emitters. Pages of positioned
//! items, each tagged with the structure element it belongs to, plus the structure tree.
//!
//! Coordinates are in points, `y` growing downwards from the page's top-left corner.

use crate::image::ImageId;
use crate::style::Color;
use crate::text::font::FontId;

/// A laid-out document: its pages and its logical structure.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LaidOutDocument {
    pub pages: Vec<Page>,
    pub structure: StructTree,
}

/// One page.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Page {
    pub width: f32,
    pub height: f32,
    /// Items in paint order, which is also reading order within each structure element.
    pub items: Vec<Item>,
}

/// One positioned item and the structure element it belongs to.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    pub tag: Tag,
    pub kind: ItemKind,
}

/// Whether an item is real content (belonging to a structure element) or an artifact
/// (running header/footer, repeated table header, production mark, decoration).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tag {
    Artifact,
    Struct(StructId),
}

#[derive(Clone, Debug, PartialEq)]
pub enum ItemKind {
    Text(TextRun),
    Rect {
        x: f32,
        y: f32,
        w: f32,
        h: f32,
        fill: Option<Color>,
        stroke: Option<Stroke>,
    },
    Line {
        x0: f32,
        y0: f32,
        x1: f32,
        y1: f32,
        stroke: Stroke,
    },
    Image {
        image: ImageId,
        x: f32,
        y: f32,
        w: f32,
        h: f32,
    },
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stroke {
    pub color: Color,
    pub width: f32,
}

/// A run of glyphs of one font, size and colour on one baseline.
#[derive(Clone, Debug, PartialEq)]
pub struct TextRun {
    /// Start of the run (left edge), points.
    pub x: f32,
    /// Baseline, points from the top of the page.
    pub y: f32,
    pub font: FontId,
    /// Font size in points.
    pub size: f32,
    pub color: Color,
    pub glyphs: Vec<PosGlyph>,
    /// The text the glyphs were shaped from; `PosGlyph::cluster` indexes into it.
    pub text: String,
}

/// A glyph with its advance and offsets in thousandths of an em (multiply by size/1000
/// for points). `advance` includes kerning and any justification space.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PosGlyph {
    pub id: u16,
    pub advance: f32,
    pub dx: f32,
    pub dy: f32,
    /// Byte offset in `TextRun::text` of the first character this glyph represents.
    pub cluster: u32,
}

/// Index of a node in a [`StructTree`].
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct StructId(pub u32);

/// Logical structure of a document (for tagged PDF). Node 0 is the `Document` root.
/// Children are in reading order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StructTree {
    pub nodes: Vec<StructNode>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct StructNode {
    pub role: Role,
    pub parent: Option<StructId>,
    pub children: Vec<StructId>,
    /// Alternative text (figures).
    pub alt: Option<String>,
}

/// Standard PDF structure types used by Pressrun.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Document,
    Sect,
    Div,
    /// Heading level 1..=6.
    H(u8),
    P,
    L,
    LI,
    Lbl,
    LBody,
    Table,
    THead,
    TBody,
    TFoot,
    TR,
    TH,
    TD,
    Figure,
}

impl StructTree {
    /// Creates a tree holding only the `Document` root.
    pub fn new() -> Self {
        Self {
            nodes: vec![StructNode {
                role: Role::Document,
                parent: None,
                children: Vec::new(),
                alt: None,
            }],
        }
    }

    /// Returns the root id.
    pub fn root(&self) -> StructId {
        StructId(0)
    }

    /// Appends a child to `parent` and returns its id.
    pub fn push(&mut self, parent: StructId, role: Role, alt: Option<String>) -> StructId {
        let id = StructId(self.nodes.len() as u32);
        self.nodes.push(StructNode {
            role,
            parent: Some(parent),
            children: Vec::new(),
            alt,
        });
        self.nodes[parent.0 as usize].children.push(id);
        id
    }
}
