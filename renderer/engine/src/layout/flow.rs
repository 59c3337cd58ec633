//! Flow: blocks → units at a given width, building the structure tree in reading order.

use super::frame::{Item, ItemKind, Role, Stroke, StructId, StructTree, Tag, TextRun};
use super::limits::{Budget, TICKS_PER_CLOCK_READ};
use super::unit::{Unit, stack};
use super::{Blame, LayoutContext, LayoutEnv, LayoutError};
use crate::barcode;
use crate::doc::{
    BarcodeBlock, Block, BlockKind, Columns, ImageBlock, Inline, List, Paragraph, ParagraphRole,
    Width,
};
use crate::style::{Align, Color};
use crate::text::{ParagraphSpec, TextSpan};

/// Lays out blocks into units. Holds the per-document state of one flow.
pub struct Flow<'a, 'c> {
    pub(crate) env: &'a LayoutEnv<'a>,
    pub(crate) ctx: &'c mut LayoutContext,
    pub(crate) structure: &'c mut StructTree,
    /// (page number, page count) when laying out running content.
    page_info: Option<(u32, u32)>,
    /// Header rows of the tables laid out so far, already marked as artifacts,
    /// for pagination to repeat.
    pub(crate) headers: Vec<Unit>,
    /// Reused by table rows for their cells' units.
    pub(crate) cell_units: Vec<Unit>,
    /// The document's limits being spent.
    pub(crate) budget: &'c mut Budget,
    /// Depth of side-by-side content being laid out (table cells, columns): the units
    /// inside are not charged to the page budget one by one; the row or column set that
    /// holds them is charged its height.
    pub(crate) side_by_side: u32,
}

/// Charges one unit of `height` points: to the page budget when `to_pages` (body flow,
/// not side by side), else as work only.
pub(crate) fn charge(budget: &mut Budget, to_pages: bool, height: f32) -> Result<(), LayoutError> {
    if to_pages {
        budget.charge(height)?;
    } else {
        budget.tick()?;
    }
    Ok(())
}

/// Names `what` as the part being laid out when `e`, a limit, stopped it, if nothing
/// inside was named already and `what` did most of the document's work (`work_before` is
/// the budget's work when it started).
pub(crate) fn blame(
    e: LayoutError,
    budget: &Budget,
    work_before: u64,
    what: impl FnOnce() -> Blame,
) -> LayoutError {
    match e {
        LayoutError::Limit {
            exceeded,
            at: Blame::Unknown,
        } => {
            let own = budget.work() - work_before;
            let at = if own >= 2 * u64::from(TICKS_PER_CLOCK_READ) && 2 * own >= budget.work() {
                what()
            } else {
                Blame::Unknown
            };
            LayoutError::Limit { exceeded, at }
        }
        other => other,
    }
}

/// Resolves column widths: points first, the rest shared in proportion to fractions.
pub fn resolve_widths(widths: impl Iterator<Item = Width> + Clone, available: f32) -> Vec<f32> {
    let fixed: f32 = widths
        .clone()
        .map(|w| if let Width::Points(p) = w { p } else { 0.0 })
        .sum();
    let fr: f32 = widths
        .clone()
        .map(|w| if let Width::Fraction(f) = w { f } else { 0.0 })
        .sum();
    let rest = (available - fixed).max(0.0);
    widths
        .map(|w| match w {
            Width::Points(p) => p,
            Width::Fraction(f) if fr > 0.0 => rest * f / fr,
            Width::Fraction(_) => 0.0,
        })
        .collect()
}

impl<'a, 'c> Flow<'a, 'c> {
    /// Starts a flow. `page_info` resolves page-number/page-count inlines (running content,
    /// whose units are not charged to the page budget).
    pub fn new(
        env: &'a LayoutEnv<'a>,
        ctx: &'c mut LayoutContext,
        structure: &'c mut StructTree,
        budget: &'c mut Budget,
        page_info: Option<(u32, u32)>,
    ) -> Self {
        Self {
            env,
            ctx,
            structure,
            page_info,
            headers: Vec::new(),
            cell_units: Vec::new(),
            budget,
            side_by_side: 0,
        }
    }

    /// Whether units made now count towards the page budget.
    pub(crate) fn charges_pages(&self) -> bool {
        self.page_info.is_none() && self.side_by_side == 0
    }

    /// Charges a unit of `height` points made now (see [`charge`]).
    pub(crate) fn charge(&mut self, height: f32) -> Result<(), LayoutError> {
        let to_pages = self.charges_pages();
        charge(self.budget, to_pages, height)
    }

    /// Takes the repeated-header units collected so far.
    pub fn take_headers(&mut self) -> Vec<Unit> {
        std::mem::take(&mut self.headers)
    }

    pub(crate) fn node(
        &mut self,
        parent: Option<StructId>,
        role: Role,
        alt: Option<String>,
    ) -> Option<StructId> {
        if !self.env.structure {
            return parent.map(|_| StructId(0));
        }
        parent.map(|p| self.structure.push(p, role, alt))
    }

    /// Lays out `blocks` at `width`. `parent` = structure parent, `None` = artifacts
    /// (running content). `align` overrides paragraph alignment (table cells).
    pub fn blocks(
        &mut self,
        blocks: &[Block],
        width: f32,
        parent: Option<StructId>,
        align: Option<Align>,
    ) -> Result<Vec<Unit>, LayoutError> {
        let mut out = Vec::new();
        self.blocks_into(blocks, width, parent, align, &mut out)?;
        Ok(out)
    }

    /// Like [`Flow::blocks`], appending to `out` (so callers can reuse one vector).
    pub fn blocks_into(
        &mut self,
        blocks: &[Block],
        width: f32,
        parent: Option<StructId>,
        align: Option<Align>,
        out: &mut Vec<Unit>,
    ) -> Result<(), LayoutError> {
        let mut pending_after = 0.0f32;
        for block in blocks {
            let start = out.len();
            let after = self.block(block, width, parent, align, out)?;
            if let Some(first) = out.get_mut(start) {
                first.space_before = first.space_before.max(pending_after);
                pending_after = after;
            } else {
                pending_after = pending_after.max(after);
            }
            let produced = &mut out[start..];
            if block.keep_together && produced.len() > 1 {
                let n = produced.len();
                for u in &mut produced[..n - 1] {
                    u.keep_with_next = true;
                }
            }
            if let (true, Some(last)) = (block.keep_with_next, produced.last_mut()) {
                last.keep_with_next = true;
            }
        }
        Ok(())
    }

    /// Lays out one block, appending units; returns the space wanted after it.
    fn block(
        &mut self,
        block: &Block,
        width: f32,
        parent: Option<StructId>,
        align: Option<Align>,
        out: &mut Vec<Unit>,
    ) -> Result<f32, LayoutError> {
        let start = out.len();
        match &block.kind {
            BlockKind::Paragraph(p) => return self.paragraph(p, width, parent, align, out),
            BlockKind::List(l) => self.list(l, width, parent, out)?,
            BlockKind::Columns(c) => self.columns(c, width, parent, out)?,
            BlockKind::Table(t) => super::table::table(self, t, width, parent, out)?,
            BlockKind::Image(img) => out.push(self.image(img, width, parent)),
            BlockKind::Barcode(b) => out.push(self.barcode(b, width, parent)?),
            BlockKind::Rule(r) => {
                let y = r.space_before + r.thickness / 2.0;
                let stroke = Stroke {
                    color: r.color,
                    width: r.thickness,
                };
                let item = Item {
                    tag: Tag::Artifact,
                    kind: ItemKind::Line {
                        x0: 0.0,
                        y0: y,
                        x1: width,
                        y1: y,
                        stroke,
                    },
                };
                out.push(Unit {
                    height: r.space_before + r.thickness + r.space_after,
                    items: vec![item],
                    ..Unit::default()
                });
            }
            BlockKind::Spacer(h) => out.push(Unit {
                height: *h,
                ..Unit::default()
            }),
            BlockKind::PageBreak => out.push(Unit {
                break_before: true,
                ..Unit::default()
            }),
            BlockKind::Group(blocks) => {
                let units = self.blocks(blocks, width, parent, align)?;
                out.extend(units);
            }
        }
        // Paragraphs, lists, tables and groups charge their units as they make them.
        if matches!(
            block.kind,
            BlockKind::Image(_)
                | BlockKind::Barcode(_)
                | BlockKind::Rule(_)
                | BlockKind::Spacer(_)
                | BlockKind::PageBreak
                | BlockKind::Columns(_)
        ) {
            let height = out[start..].iter().map(|u| u.height).sum();
            self.charge(height)?;
        }
        Ok(0.0)
    }

    /// Lays out a paragraph: one unit per line. Returns the space wanted after it.
    pub(crate) fn paragraph(
        &mut self,
        p: &Paragraph,
        width: f32,
        parent: Option<StructId>,
        align: Option<Align>,
        out: &mut Vec<Unit>,
    ) -> Result<f32, LayoutError> {
        let styles = self.env.styles;
        let st = styles.get(p.style);
        let role = match p.role {
            ParagraphRole::Paragraph => Role::P,
            ParagraphRole::Heading(l) => Role::H(l.clamp(1, 6)),
        };
        let tag = match self.node(parent, role, None) {
            Some(id) => Tag::Struct(id),
            None => Tag::Artifact,
        };
        let LayoutContext { text, lines, buf } = &mut *self.ctx;
        buf.clear();
        let mut ranges: Vec<(usize, usize, crate::style::StyleId)> =
            Vec::with_capacity(p.inlines.len());
        let mut last_style = p.style;
        for inline in &p.inlines {
            let start = buf.len();
            let style = match inline {
                Inline::Text { text, style } => {
                    buf.push_str(text);
                    *style
                }
                Inline::PageNumber { style } => {
                    use std::fmt::Write;
                    match self.page_info {
                        Some((n, _)) => write!(buf, "{n}").ok(),
                        None => write!(buf, "–").ok(),
                    };
                    *style
                }
                Inline::PageCount { style } => {
                    use std::fmt::Write;
                    match self.page_info {
                        Some((_, c)) => write!(buf, "{c}").ok(),
                        None => write!(buf, "–").ok(),
                    };
                    *style
                }
                Inline::LineBreak => {
                    buf.push('\n');
                    last_style
                }
            };
            last_style = style;
            if buf.len() > start {
                ranges.push((start, buf.len(), style));
            }
        }
        let spans: Vec<TextSpan<'_>> = ranges
            .iter()
            .map(|&(a, b, s)| {
                let cs = styles.get(s);
                TextSpan {
                    text: &buf[a..b],
                    font: cs.font,
                    size: cs.size,
                    color: cs.color,
                }
            })
            .collect();
        let spec = ParagraphSpec {
            width: (width - st.indent_left - st.indent_right).max(1.0),
            first_line_indent: st.first_line_indent,
            align: align.unwrap_or(st.align),
            hyphenate: st.hyphenate,
        };
        lines.clear();
        let work_before = self.budget.work();
        let to_pages = self.page_info.is_none() && self.side_by_side == 0;
        let budget = &mut *self.budget;
        let fail = |e: LayoutError, budget: &Budget, buf: &str| {
            blame(e, budget, work_before, || Blame::Paragraph(buf.to_string()))
        };
        if !spans.is_empty() {
            // Every line is at least `leading` tall, and a body paragraph's lines stack up
            // (in a table cell or a column too): no more lines than the pages left hold.
            // Running content is not charged to the pages, so it is not cut either.
            let max_lines = if st.leading >= 0.5 && self.page_info.is_none() {
                budget.lines_left(st.leading)
            } else {
                usize::MAX
            };
            if let Err(e) = text.layout_paragraph_within(
                self.env.fonts,
                &spans,
                &spec,
                max_lines,
                budget,
                lines,
            ) {
                return Err(fail(e.into(), budget, buf));
            }
        }
        let start = out.len();
        if lines.is_empty() {
            out.push(Unit {
                height: st.leading,
                ..Unit::default()
            });
            charge(budget, to_pages, st.leading)?;
        }
        for line in lines.drain(..) {
            let content = line.ascent + line.descent;
            let height = st.leading.max(content);
            let baseline = (height - content) / 2.0 + line.ascent;
            let mut items = Vec::with_capacity(line.runs.len());
            for mut run in line.runs {
                run.x += st.indent_left;
                run.y = baseline;
                if st.underline {
                    let w: f32 =
                        run.glyphs.iter().map(|g| g.advance).sum::<f32>() * run.size / 1000.0;
                    let y = baseline + run.size * 0.12;
                    let stroke = Stroke {
                        color: run.color,
                        width: run.size * 0.06,
                    };
                    items.push(Item {
                        tag: Tag::Artifact,
                        kind: ItemKind::Line {
                            x0: run.x,
                            y0: y,
                            x1: run.x + w,
                            y1: y,
                            stroke,
                        },
                    });
                }
                items.push(Item {
                    tag,
                    kind: ItemKind::Text(run),
                });
            }
            out.push(Unit {
                height,
                items,
                first_baseline: Some(baseline),
                ..Unit::default()
            });
            if let Err(e) = charge(budget, to_pages, height) {
                return Err(fail(e, budget, buf));
            }
        }
        let produced = &mut out[start..];
        produced[0].space_before = st.space_before;
        let n = produced.len();
        if matches!(p.role, ParagraphRole::Heading(_)) {
            for u in produced.iter_mut() {
                u.keep_with_next = true;
            }
        } else if n >= 2 {
            // Orphan and widow control: never leave a paragraph's first or last line alone.
            produced[0].keep_with_next = true;
            produced[n - 2].keep_with_next = true;
        }
        Ok(st.space_after)
    }

    /// Lays out a one-line label (list markers) right-aligned in `width`; returns its runs.
    fn label(&mut self, text: &str, style: crate::style::StyleId, width: f32) -> Vec<TextRun> {
        let cs = self.env.styles.get(style);
        let span = [TextSpan {
            text,
            font: cs.font,
            size: cs.size,
            color: cs.color,
        }];
        let spec = ParagraphSpec {
            width: width.max(1.0),
            first_line_indent: 0.0,
            align: Align::Right,
            hyphenate: false,
        };
        let mut lines = Vec::new();
        self.ctx
            .text
            .layout_paragraph(self.env.fonts, &span, &spec, &mut lines);
        lines.into_iter().next().map(|l| l.runs).unwrap_or_default()
    }

    fn list(
        &mut self,
        l: &List,
        width: f32,
        parent: Option<StructId>,
        out: &mut Vec<Unit>,
    ) -> Result<(), LayoutError> {
        let st = self.env.styles.get(l.style);
        let gutter = if st.indent_left > 0.0 {
            st.indent_left
        } else {
            st.size * 1.8
        };
        let list = self.node(parent, Role::L, None);
        for (i, item) in l.items.iter().enumerate() {
            let li = self.node(list, Role::LI, None);
            let lbl = self.node(li, Role::Lbl, None);
            let body = self.node(li, Role::LBody, None);
            let mut units = self.blocks(item, width - gutter, body, None)?;
            for u in &mut units {
                u.translate(gutter, 0.0);
            }
            let marker = if l.ordered {
                format!("{}.", i + 1)
            } else {
                "•".to_string()
            };
            let runs = self.label(&marker, l.style, gutter - st.size * 0.5);
            if units.is_empty() {
                units.push(Unit {
                    height: st.leading,
                    first_baseline: Some(st.size),
                    ..Unit::default()
                });
                self.charge(st.leading)?;
            }
            let first = &mut units[0];
            let baseline = first.first_baseline.unwrap_or(st.size);
            let tag = lbl.map(Tag::Struct).unwrap_or(Tag::Artifact);
            for mut run in runs {
                run.y = baseline;
                first.items.push(Item {
                    tag,
                    kind: ItemKind::Text(run),
                });
            }
            out.extend(units);
        }
        Ok(())
    }

    fn columns(
        &mut self,
        c: &Columns,
        width: f32,
        parent: Option<StructId>,
        out: &mut Vec<Unit>,
    ) -> Result<(), LayoutError> {
        let n = c.columns.len() as f32;
        let widths = resolve_widths(
            c.columns.iter().map(|c| c.width),
            width - c.gap * (n - 1.0).max(0.0),
        );
        let mut combined = Unit::default();
        let mut x = 0.0;
        self.side_by_side += 1;
        for (col, w) in c.columns.iter().zip(widths) {
            let units = match self.blocks(&col.blocks, w, parent, None) {
                Ok(u) => u,
                Err(e) => {
                    self.side_by_side -= 1;
                    return Err(e);
                }
            };
            if combined.items.is_empty() && combined.height == 0.0 {
                combined.space_before = units.first().map(|u| u.space_before).unwrap_or(0.0);
            }
            combined.append_at(stack(units), x, 0.0);
            x += w + c.gap;
        }
        self.side_by_side -= 1;
        out.push(combined);
        Ok(())
    }

    fn image(&mut self, img: &ImageBlock, width: f32, parent: Option<StructId>) -> Unit {
        let asset = self.env.images.get(img.image);
        let (pw, ph) = (asset.width_px.max(1) as f32, asset.height_px.max(1) as f32);
        let natural = (pw / asset.dpi * 72.0, ph / asset.dpi * 72.0);
        let (mut w, mut h) = match (img.width, img.height) {
            (Some(w), Some(h)) => (w, h),
            (Some(w), None) => (w, w * ph / pw),
            (None, Some(h)) => (h * pw / ph, h),
            (None, None) => natural,
        };
        if w > width {
            h *= width / w;
            w = width;
        }
        let x = align_x(img.align, width, w);
        let tag = self
            .node(parent, Role::Figure, Some(img.alt.clone()))
            .map(Tag::Struct)
            .unwrap_or(Tag::Artifact);
        Unit {
            height: h,
            items: vec![Item {
                tag,
                kind: ItemKind::Image {
                    image: img.image,
                    x,
                    y: 0.0,
                    w,
                    h,
                },
            }],
            ..Unit::default()
        }
    }

    fn barcode(
        &mut self,
        b: &BarcodeBlock,
        width: f32,
        parent: Option<StructId>,
    ) -> Result<Unit, LayoutError> {
        let m = barcode::encode(b.kind, &b.data)
            .map_err(|e| LayoutError::Content(format!("barcode: {e}")))?;
        let total_w = b.width.min(width);
        let module = total_w / (m.width + 2 * m.quiet_zone) as f32;
        let one_d = m.height == 1;
        let h = b.height.unwrap_or(if one_d {
            total_w * 0.25
        } else {
            module * (m.height + 2 * m.quiet_zone) as f32
        });
        let row_h = if one_d { h } else { module };
        let x0 = align_x(b.align, width, total_w) + module * m.quiet_zone as f32;
        let y0 = if one_d {
            0.0
        } else {
            module * m.quiet_zone as f32
        };
        let tag = if b.artifact {
            Tag::Artifact
        } else {
            self.node(parent, Role::Figure, Some(b.alt.clone()))
                .map(Tag::Struct)
                .unwrap_or(Tag::Artifact)
        };
        let mut items = Vec::new();
        for row in 0..m.height {
            let cells = &m.modules[(row * m.width) as usize..((row + 1) * m.width) as usize];
            let mut col = 0usize;
            while col < cells.len() {
                if !cells[col] {
                    col += 1;
                    continue;
                }
                let start = col;
                while col < cells.len() && cells[col] {
                    col += 1;
                }
                items.push(Item {
                    tag,
                    kind: ItemKind::Rect {
                        x: x0 + start as f32 * module,
                        y: y0 + row as f32 * row_h,
                        w: (col - start) as f32 * module,
                        h: row_h,
                        fill: Some(Color::BLACK),
                        stroke: None,
                    },
                });
            }
        }
        Ok(Unit {
            height: h,
            items,
            ..Unit::default()
        })
    }
}

/// Returns the left edge of a box of width `w` aligned in `width`.
pub fn align_x(align: Align, width: f32, w: f32) -> f32 {
    match align {
        Align::Left | Align::Justify => 0.0,
        Align::Right => (width - w).max(0.0),
        Align::Center => ((width - w) / 2.0).max(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_share_the_rest_by_fraction() {
        let w = resolve_widths(
            [
                Width::Points(100.0),
                Width::Fraction(1.0),
                Width::Fraction(3.0),
            ]
            .into_iter(),
            500.0,
        );
        assert_eq!(w, vec![100.0, 100.0, 300.0]);
        let w = resolve_widths(
            [Width::Points(600.0), Width::Fraction(1.0)].into_iter(),
            500.0,
        );
        assert_eq!(w, vec![600.0, 0.0]);
    }

    #[test]
    fn boxes_align() {
        assert_eq!(align_x(Align::Right, 100.0, 40.0), 60.0);
        assert_eq!(align_x(Align::Center, 100.0, 40.0), 30.0);
        assert_eq!(align_x(Align::Left, 100.0, 40.0), 0.0);
    }
}
