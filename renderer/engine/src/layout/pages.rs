//! Pages: units placed onto page masters; running headers/footers and fixed regions.

use super::flow::Flow;
use super::frame::{Item, ItemKind, Page, Stroke, StructTree, Tag};
use super::unit::{Unit, stack, translate};
use super::{LayoutContext, LayoutEnv, LayoutError};
use crate::doc::{Document, MasterContent};
use crate::style::{PageMaster, PageMasters};

/// Places units on pages: the first page uses `masters.first`, every other `masters.rest`.
///
/// Rules, in order: a unit with `break_before` starts a new page; a chain of units joined
/// by `keep_with_next` that does not fit moves to a new page whole (unless it is taller than
/// a page); space before a unit is dropped at the top of a page; a table row that starts
/// a page gets a copy of its table's header above it (tagged as an artifact); a unit
/// taller than a whole page is sliced at the page's bottom edge. A document of more than
/// [`MAX_PAGES`] pages is an error (a bound on runaway templates, not a real document).
pub fn paginate(
    units: Vec<Unit>,
    headers: &[Unit],
    masters: &PageMasters,
) -> Result<Vec<Page>, LayoutError> {
    let mut p = Paginator {
        masters,
        pages: Vec::new(),
        cursor: 0.0,
        last_table_border: None,
    };
    p.new_page();
    let heights: Vec<(f32, f32, bool)> = units
        .iter()
        .map(|u| (u.height, u.space_before, u.keep_with_next))
        .collect();
    for (i, mut unit) in units.into_iter().enumerate() {
        if unit.break_before {
            if p.cursor > 0.0 || p.pages.last().is_some_and(|pg| !pg.items.is_empty()) {
                p.new_page();
            }
            continue;
        }
        let area_h = p.area().3;
        let space = if p.cursor > 0.0 {
            unit.space_before
        } else {
            0.0
        };
        // Keep chains: the height from this unit to the end of its keep-with-next chain.
        if p.cursor > 0.0 && (i == 0 || !heights[i - 1].2) {
            let mut chain = space + heights[i].0;
            let mut j = i;
            while heights[j].2 && j + 1 < heights.len() {
                j += 1;
                chain += heights[j].1 + heights[j].0;
            }
            if p.cursor + chain > area_h && chain <= area_h {
                p.new_page();
            }
        }
        let space = if p.cursor > 0.0 {
            unit.space_before
        } else {
            0.0
        };
        if p.cursor > 0.0 && p.cursor + space + unit.height > area_h {
            p.new_page();
        }
        // A table row at the top of a page gets the table's header above it.
        let header = unit
            .table
            .as_ref()
            .and_then(|t| t.header)
            .and_then(|h| headers.get(h));
        if let (true, Some(h)) = (p.cursor == 0.0, header) {
            p.place(h.clone(), 0.0);
        }
        let space = if p.cursor > 0.0 {
            unit.space_before
        } else {
            0.0
        };
        let border = unit.table.as_ref().and_then(|t| t.border_bottom);
        if unit.height > area_h - p.cursor {
            // Taller than what is left of an empty page: slice it.
            loop {
                let room = p.area().3 - p.cursor;
                if unit.height <= room {
                    break;
                }
                if p.pages.len() > MAX_PAGES {
                    return Err(too_many_pages());
                }
                let (head, tail) = slice(unit, room);
                p.place(head, 0.0);
                p.new_page();
                unit = tail;
            }
        }
        p.place(unit, space);
        p.last_table_border = border;
        if p.pages.len() > MAX_PAGES {
            return Err(too_many_pages());
        }
    }
    Ok(p.pages)
}

/// Most pages one document may have.
pub const MAX_PAGES: usize = 10_000;

fn too_many_pages() -> LayoutError {
    LayoutError(format!(
        "the document has more than {MAX_PAGES} pages: check the template's lengths and the record's size"
    ))
}

struct Paginator<'a> {
    masters: &'a PageMasters,
    pages: Vec<Page>,
    cursor: f32,
    /// The border line to close at the bottom of a page if a table continues after it.
    last_table_border: Option<(f32, f32, crate::style::Color, f32)>,
}

impl Paginator<'_> {
    fn master(&self) -> &PageMaster {
        if self.pages.len() <= 1 {
            &self.masters.first
        } else {
            &self.masters.rest
        }
    }

    fn area(&self) -> (f32, f32, f32, f32) {
        self.master().body_area()
    }

    fn new_page(&mut self) {
        let (ax, ay, _, _) = self.area();
        if let (Some((x0, x1, color, width)), Some(page)) =
            (self.last_table_border.take(), self.pages.last_mut())
        {
            let y = ay + self.cursor;
            page.items.push(Item {
                tag: Tag::Artifact,
                kind: ItemKind::Line {
                    x0: ax + x0,
                    y0: y,
                    x1: ax + x1,
                    y1: y,
                    stroke: Stroke { color, width },
                },
            });
        }
        let m = if self.pages.is_empty() {
            &self.masters.first
        } else {
            &self.masters.rest
        };
        self.pages.push(Page {
            width: m.width,
            height: m.height,
            items: Vec::new(),
        });
        self.cursor = 0.0;
    }

    fn place(&mut self, mut unit: Unit, space: f32) {
        let (x, y, _, _) = self.area();
        let top = y + self.cursor + space;
        unit.translate(x, top);
        self.cursor += space + unit.height;
        self.last_table_border = None;
        self.pages
            .last_mut()
            .expect("a page exists")
            .items
            .extend(unit.items);
    }
}

/// Splits a unit at `at` (relative to its top): items starting above go first.
fn slice(unit: Unit, at: f32) -> (Unit, Unit) {
    let at = at.max(1.0);
    let mut head = Unit {
        height: at,
        ..Unit::default()
    };
    let mut tail = Unit {
        height: (unit.height - at).max(0.0),
        table: unit.table.clone(),
        keep_with_next: unit.keep_with_next,
        ..Unit::default()
    };
    for mut item in unit.items {
        let top = match &item.kind {
            ItemKind::Text(r) => r.y - r.size,
            ItemKind::Rect { y, .. } | ItemKind::Image { y, .. } => *y,
            ItemKind::Line { y0, y1, .. } => y0.min(*y1),
        };
        if top < at {
            head.items.push(item);
        } else {
            translate(&mut item, 0.0, -at);
            tail.items.push(item);
        }
    }
    (head, tail)
}

/// Adds each page's running header and footer (with "page X of Y" resolved) and the
/// fixed regions. Content of the first page's regions is real content: its structure
/// elements are moved to the front of the reading order (the address comes first).
/// Everything else added here is a pagination artifact.
pub fn add_running_content(
    pages: &mut [Page],
    doc: &Document,
    env: &LayoutEnv<'_>,
    ctx: &mut LayoutContext,
    structure: &mut StructTree,
) -> Result<(), LayoutError> {
    let count = pages.len() as u32;
    let root = structure.root();
    for (i, page) in pages.iter_mut().enumerate() {
        let (master, content): (&PageMaster, &MasterContent) = if i == 0 {
            (&env.masters.first, &doc.first)
        } else {
            (&env.masters.rest, &doc.rest)
        };
        let info = Some((i as u32 + 1, count));
        let mut flow = Flow::new(env, ctx, structure, info);
        let width = master.width - master.margins.left - master.margins.right;
        let mut extra = Vec::new();
        if !content.header.is_empty() {
            let mut u = stack(flow.blocks(&content.header, width, None, None)?);
            u.translate(master.margins.left, master.margins.top);
            extra.extend(u.items);
        }
        if !content.footer.is_empty() {
            let mut u = stack(flow.blocks(&content.footer, width, None, None)?);
            u.translate(
                master.margins.left,
                master.height - master.margins.bottom - master.footer_height,
            );
            extra.extend(u.items);
        }
        let before = flow.structure.nodes[root.0 as usize].children.len();
        for (index, blocks) in &content.regions {
            let Some(region) = master.regions.get(*index) else {
                continue;
            };
            let parent = if i == 0 { Some(root) } else { None };
            let mut u = stack(flow.blocks(blocks, region.width, parent, None)?);
            u.translate(region.x, region.y);
            extra.extend(u.items);
        }
        // Region content goes first in reading order.
        let children = &mut structure.nodes[root.0 as usize].children;
        let added = children.len() - before;
        children.rotate_right(added);
        // Running content is painted first; body items keep their order after it.
        extra.append(&mut page.items);
        page.items = extra;
    }
    Ok(())
}
