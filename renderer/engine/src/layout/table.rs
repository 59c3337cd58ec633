//! Tables: rows as units; the header row is kept for pagination to repeat on every page.

use super::flow::{Flow, blame, resolve_widths};
use super::frame::{Item, ItemKind, Role, Stroke, StructId, Tag};
use super::unit::{TableInfo, Unit, as_artifact, translate};
use super::{Blame, LayoutError};
use crate::doc::{Row, Table};
use crate::style::{Align, Color};

/// Lays out a table: a header unit (kept with the first row), one unit per body row, and
/// an optional footer unit. Each body/footer unit names the table's header so that
/// pagination repeats it at the top of every page the table continues on.
pub fn table(
    flow: &mut Flow<'_, '_>,
    t: &Table,
    width: f32,
    parent: Option<StructId>,
    out: &mut Vec<Unit>,
) -> Result<(), LayoutError> {
    let work_before = flow.budget.work();
    table_units(flow, t, width, parent, out).map_err(|e| {
        blame(e, flow.budget, work_before, || Blame::Table {
            rows: t.rows.len(),
        })
    })
}

/// Lays out the table's units, charging each to the page budget as it is made.
fn table_units(
    flow: &mut Flow<'_, '_>,
    t: &Table,
    width: f32,
    parent: Option<StructId>,
    out: &mut Vec<Unit>,
) -> Result<(), LayoutError> {
    let widths = resolve_widths(t.columns.iter().map(|c| c.width), width);
    let table_w: f32 = widths.iter().sum();
    let aligns: Vec<Align> = t.columns.iter().map(|c| c.align).collect();
    let table = flow.node(parent, Role::Table, None);
    let border = t.style.border.map(|(c, w)| Stroke { color: c, width: w });
    let border_bottom = border.map(|s| (0.0, table_w, s.color, s.width));
    let start = out.len();

    let mut header_index = None;
    if let Some(h) = &t.header {
        let thead = flow.node(table, Role::THead, None);
        let mut unit = row(
            flow,
            t,
            h,
            &widths,
            &aligns,
            thead,
            Role::TH,
            t.style.header_fill,
        )?;
        unit.keep_with_next = true;
        header_index = Some(flow.headers.len());
        flow.headers.push(as_artifact(unit.clone()));
        flow.charge(unit.height)?;
        out.push(unit);
    }
    let info = TableInfo {
        header: header_index,
        border_bottom,
    };
    let tbody = flow.node(table, Role::TBody, None);
    for (i, r) in t.rows.iter().enumerate() {
        let fill = if i % 2 == 1 {
            t.style.stripe_fill
        } else {
            None
        };
        let mut unit = row(flow, t, r, &widths, &aligns, tbody, Role::TD, fill)?;
        unit.table = Some(info.clone());
        flow.charge(unit.height)?;
        out.push(unit);
    }
    if let Some(f) = &t.footer {
        let tfoot = flow.node(table, Role::TFoot, None);
        let mut unit = row(
            flow,
            t,
            f,
            &widths,
            &aligns,
            tfoot,
            Role::TD,
            t.style.footer_fill,
        )?;
        unit.table = Some(info.clone());
        flow.charge(unit.height)?;
        out.push(unit);
    }
    // The table's outer border: top of the first unit, bottom of the last.
    if let (Some(s), Some(first)) = (border, out.get_mut(start)) {
        first.items.push(line(0.0, table_w, 0.0, s));
    }
    let produced = out.len() > start;
    if let (Some(s), Some(last), true) = (border, out.last_mut(), produced) {
        let y = last.height;
        last.items.push(line(0.0, table_w, y, s));
    }
    Ok(())
}

fn line(x0: f32, x1: f32, y: f32, stroke: Stroke) -> Item {
    Item {
        tag: Tag::Artifact,
        kind: ItemKind::Line {
            x0,
            y0: y,
            x1,
            y1: y,
            stroke,
        },
    }
}

/// Lays out one row: cells side by side, padded, with fills, rules and side borders.
#[expect(
    clippy::too_many_arguments,
    reason = "a row needs its table, geometry and structure context"
)]
fn row(
    flow: &mut Flow<'_, '_>,
    t: &Table,
    r: &Row,
    widths: &[f32],
    aligns: &[Align],
    group: Option<StructId>,
    cell_role: Role,
    row_fill: Option<Color>,
) -> Result<Unit, LayoutError> {
    let tr = flow.node(group, Role::TR, None);
    let table_w: f32 = widths.iter().take(r.cells.len()).sum();
    let mut unit = Unit::default();
    // Fills are painted first; their height is set once the row's height is known.
    let fill_rect = |x: f32, w: f32, fill: Color| Item {
        tag: Tag::Artifact,
        kind: ItemKind::Rect {
            x,
            y: 0.0,
            w,
            h: 0.0,
            fill: Some(fill),
            stroke: None,
        },
    };
    let mut fills: Vec<usize> = Vec::new();
    if let Some(fill) = row_fill {
        fills.push(unit.items.len());
        unit.items.push(fill_rect(0.0, table_w, fill));
    }
    // Cell content goes straight into the row's items (no stacked unit per cell); the
    // cells sit side by side, so the row, not their units, is charged to the page budget.
    flow.side_by_side += 1;
    let laid = cells(
        flow, t, r, widths, aligns, tr, cell_role, &mut unit, &mut fills,
    );
    flow.side_by_side -= 1;
    let height = laid?;
    for i in fills {
        if let ItemKind::Rect { h, .. } = &mut unit.items[i].kind {
            *h = height;
        }
    }
    unit.height = height;
    if let Some((color, width)) = t.style.row_rule {
        unit.items
            .push(line(0.0, table_w, height, Stroke { color, width }));
    }
    if let Some((color, width)) = t.style.border {
        let s = Stroke { color, width };
        for x in [0.0, table_w] {
            unit.items.push(Item {
                tag: Tag::Artifact,
                kind: ItemKind::Line {
                    x0: x,
                    y0: 0.0,
                    x1: x,
                    y1: height,
                    stroke: s,
                },
            });
        }
    }
    Ok(unit)
}

/// Lays out a row's cells side by side into `unit`'s items (recording fills to size in
/// `fills`); returns the row's height.
#[expect(
    clippy::too_many_arguments,
    reason = "a row's cells need its table, geometry and structure context"
)]
fn cells(
    flow: &mut Flow<'_, '_>,
    t: &Table,
    r: &Row,
    widths: &[f32],
    aligns: &[Align],
    tr: Option<StructId>,
    cell_role: Role,
    unit: &mut Unit,
    fills: &mut Vec<usize>,
) -> Result<f32, LayoutError> {
    let pad = t.style.padding;
    let fill_rect = |x: f32, w: f32, fill: Color| Item {
        tag: Tag::Artifact,
        kind: ItemKind::Rect {
            x,
            y: 0.0,
            w,
            h: 0.0,
            fill: Some(fill),
            stroke: None,
        },
    };
    let mut units = std::mem::take(&mut flow.cell_units);
    let mut height: f32 = 0.0;
    let mut x = 0.0;
    for (i, cell) in r.cells.iter().enumerate() {
        let w = widths.get(i).copied().unwrap_or(0.0);
        let align = cell.align.or(aligns.get(i).copied());
        let node = flow.node(tr, cell_role, None);
        if let Some(fill) = cell.fill {
            fills.push(unit.items.len());
            unit.items.push(fill_rect(x, w, fill));
        }
        units.clear();
        if let Err(e) = flow.blocks_into(
            &cell.blocks,
            (w - 2.0 * pad).max(1.0),
            node,
            align,
            &mut units,
        ) {
            flow.cell_units = units;
            return Err(e);
        }
        let mut y = 0.0;
        for (k, u) in units.drain(..).enumerate() {
            if k > 0 {
                y += u.space_before;
            }
            if unit.first_baseline.is_none() {
                unit.first_baseline = u.first_baseline.map(|b| b + y + pad);
            }
            for mut item in u.items {
                translate(&mut item, x + pad, y + pad);
                unit.items.push(item);
            }
            y += u.height;
        }
        height = height.max(y + 2.0 * pad);
        x += w;
    }
    flow.cell_units = units;
    Ok(height)
}
