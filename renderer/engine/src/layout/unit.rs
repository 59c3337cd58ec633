//! Units: the unbreakable pieces that flow hands to pagination.

use super::frame::{Item, ItemKind, Tag};

/// An unbreakable piece of the flow: one paragraph line, one table row, one image.
/// Items are relative to the unit: `x` from the left edge of the flow area, `y` from the
/// unit's top.
#[derive(Clone, Debug, Default)]
pub struct Unit {
    pub height: f32,
    /// Space wanted above the unit; dropped at the top of a page.
    pub space_before: f32,
    pub items: Vec<Item>,
    /// Never put a page break between this unit and the next.
    pub keep_with_next: bool,
    /// Start a new page before this unit.
    pub break_before: bool,
    /// Baseline of the first line, for list markers.
    pub first_baseline: Option<f32>,
    /// The table this unit is a body or footer row of: its header is repeated when the
    /// unit starts a page.
    pub table: Option<TableInfo>,
}

/// What pagination needs to know about the table a row belongs to.
#[derive(Clone, Debug)]
pub struct TableInfo {
    /// Index of the header unit in [`super::flow::Flow::headers`] output.
    pub header: Option<usize>,
    /// Line closing the table's border at a page break: (x0, x1, colour, width).
    pub border_bottom: Option<(f32, f32, crate::style::Color, f32)>,
}

impl Unit {
    /// Moves every item by (`dx`, `dy`).
    pub fn translate(&mut self, dx: f32, dy: f32) {
        for item in &mut self.items {
            translate(item, dx, dy);
        }
        if let Some(b) = &mut self.first_baseline {
            *b += dy;
        }
    }

    /// Appends `other` below this unit's content, at `y` (relative to this unit's top).
    pub fn append_at(&mut self, other: Unit, dx: f32, y: f32) {
        if self.first_baseline.is_none() {
            self.first_baseline = other.first_baseline.map(|b| b + y);
        }
        for mut item in other.items {
            translate(&mut item, dx, y);
            self.items.push(item);
        }
        self.height = self.height.max(y + other.height);
    }
}

/// Stacks units vertically into one unit (for table cells and column content).
pub fn stack(units: Vec<Unit>) -> Unit {
    let mut out = Unit::default();
    let mut y = 0.0;
    let mut first = true;
    for u in units {
        if !first {
            y += u.space_before;
        }
        first = false;
        let h = u.height;
        out.append_at(u, 0.0, y);
        y += h;
    }
    out.height = y;
    out
}

/// Moves an item by (`dx`, `dy`).
pub fn translate(item: &mut Item, dx: f32, dy: f32) {
    match &mut item.kind {
        ItemKind::Text(run) => {
            run.x += dx;
            run.y += dy;
        }
        ItemKind::Rect { x, y, .. } | ItemKind::Image { x, y, .. } => {
            *x += dx;
            *y += dy;
        }
        ItemKind::Line { x0, y0, x1, y1, .. } => {
            *x0 += dx;
            *x1 += dx;
            *y0 += dy;
            *y1 += dy;
        }
    }
}

/// Marks every item as an artifact (repeated table headers).
pub fn as_artifact(mut unit: Unit) -> Unit {
    for item in &mut unit.items {
        item.tag = Tag::Artifact;
    }
    unit
}
