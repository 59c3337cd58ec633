//! Binding: walks the compiled program over one record and builds a `doc::Document`.

use std::rc::Rc;

use rust_decimal::Decimal;
use serde_json::Value;

use super::FieldError;
use super::amount::{exact_add, json_number};
use super::compile::{CellNode, INode, Node, Program, TableNode};
use super::expr::{Expr, Local, Origin, Scope};
use super::schema::json_kind;
use crate::doc::{
    BarcodeBlock, Block, BlockKind, Cell, Column, Columns, ImageBlock, Inline, List, Paragraph,
    Row, Table,
};

/// Binds a list of nodes, appending blocks to `out`.
pub fn nodes<'a>(
    prog: &'a Program,
    list: &'a [Node],
    scope: &mut Scope<'a>,
    out: &mut Vec<Block>,
) -> Result<(), FieldError> {
    for n in list {
        node(prog, n, scope, out)?;
    }
    Ok(())
}

fn block(kind: BlockKind, keep: bool) -> Block {
    Block {
        kind,
        keep_with_next: keep,
        keep_together: false,
    }
}

/// The elements of an array expression: borrowed from the record when possible.
enum Elems<'a> {
    Borrowed(&'a [Value]),
    Owned(Vec<Value>),
}

impl<'a> Elems<'a> {
    fn len(&self) -> usize {
        match self {
            Elems::Borrowed(s) => s.len(),
            Elems::Owned(v) => v.len(),
        }
    }
    fn local(&self, i: usize) -> Local<'a> {
        match self {
            Elems::Borrowed(s) => {
                let s: &'a [Value] = s;
                Local::Ref(&s[i])
            }
            Elems::Owned(v) => Local::Owned(v[i].clone()),
        }
    }
}

fn elems<'a>(scope: &Scope<'a>, e: &Expr, what: &str) -> Result<Elems<'a>, FieldError> {
    let bad = |other: &Value| FieldError {
        path: scope.path(e).unwrap_or_default(),
        reason: format!("{what} expects an array, found {}", json_kind(other)),
    };
    if let Some(v) = scope.borrow(e) {
        return match v {
            Value::Array(a) => Ok(Elems::Borrowed(a)),
            Value::Null => Ok(Elems::Borrowed(&[])),
            other => Err(bad(other)),
        };
    }
    match scope.value(e)?.into_owned() {
        Value::Array(a) => Ok(Elems::Owned(a)),
        Value::Null => Ok(Elems::Owned(Vec::new())),
        other => Err(bad(&other)),
    }
}

/// Where the elements of a list expression sit, for naming a field of one of them: the
/// record path when the list is the record's own array (a computed list, e.g. a filtered
/// one, has other indices), else `fallback`.
fn elems_origin(
    scope: &Scope<'_>,
    e: &Expr,
    list: &Elems<'_>,
    fallback: Option<&str>,
) -> Option<Rc<str>> {
    let own = match list {
        Elems::Borrowed(_) => scope.path(e),
        Elems::Owned(_) => None,
    };
    own.map(Rc::from).or_else(|| fallback.map(Rc::from))
}

fn node<'a>(
    prog: &'a Program,
    n: &'a Node,
    scope: &mut Scope<'a>,
    out: &mut Vec<Block>,
) -> Result<(), FieldError> {
    match n {
        Node::Para {
            role,
            style,
            inlines,
            keep,
        } => {
            let mut runs = Vec::with_capacity(inlines.len());
            bind_inlines(inlines, scope, &mut runs)?;
            trim_runs(&mut runs);
            out.push(block(
                BlockKind::Paragraph(Paragraph {
                    role: *role,
                    style: *style,
                    inlines: runs,
                }),
                *keep,
            ));
        }
        Node::List {
            style,
            ordered,
            items,
            keep,
        } => {
            let mut bound = Vec::with_capacity(items.len());
            for it in items {
                let mut b = Vec::new();
                nodes(prog, it, scope, &mut b)?;
                bound.push(b);
            }
            out.push(block(
                BlockKind::List(List {
                    style: *style,
                    ordered: *ordered,
                    items: bound,
                }),
                *keep,
            ));
        }
        Node::Columns { gap, columns, keep } => {
            let mut cols = Vec::with_capacity(columns.len());
            for (w, body) in columns {
                let mut b = Vec::new();
                nodes(prog, body, scope, &mut b)?;
                cols.push(Column {
                    width: *w,
                    blocks: b,
                });
            }
            out.push(block(
                BlockKind::Columns(Columns {
                    gap: *gap,
                    columns: cols,
                }),
                *keep,
            ));
        }
        Node::Table(t) => out.push(table(prog, t, scope)?),
        Node::Image {
            image,
            width,
            height,
            align,
            alt,
            keep,
        } => out.push(block(
            BlockKind::Image(ImageBlock {
                image: *image,
                width: *width,
                height: *height,
                align: *align,
                alt: alt.clone(),
            }),
            *keep,
        )),
        Node::Barcode {
            kind,
            data,
            width,
            height,
            align,
            artifact,
            alt,
            keep,
        } => {
            let text = scope.text(data)?;
            if text.is_empty() {
                return Err(FieldError {
                    path: scope.text_path(data),
                    reason: "barcode data is empty".into(),
                });
            }
            let data = text;
            out.push(block(
                BlockKind::Barcode(BarcodeBlock {
                    kind: *kind,
                    data,
                    width: *width,
                    height: *height,
                    align: *align,
                    artifact: *artifact,
                    alt: scope.text(alt)?,
                }),
                *keep,
            ));
        }
        Node::Rule(r, keep) => out.push(block(BlockKind::Rule(r.clone()), *keep)),
        Node::Spacer(h, keep) => out.push(block(BlockKind::Spacer(*h), *keep)),
        Node::PageBreak => out.push(Block::new(BlockKind::PageBreak)),
        Node::Keep(body, keep) => {
            let mut b = Vec::new();
            nodes(prog, body, scope, &mut b)?;
            out.push(Block {
                kind: BlockKind::Group(b),
                keep_with_next: *keep,
                keep_together: true,
            });
        }
        Node::If(branches) => {
            for (test, body) in branches {
                let taken = match test {
                    Some(t) => scope.truthy(t)?,
                    None => true,
                };
                if taken {
                    nodes(prog, body, scope, out)?;
                    break;
                }
            }
        }
        Node::For {
            items: e,
            body,
            var,
        } => {
            let list = elems(scope, e, "for")?;
            let base = elems_origin(scope, e, &list, None);
            for i in 0..list.len() {
                let origin = base
                    .as_ref()
                    .map_or(Origin::Unknown, |b| Origin::Elem(b.clone(), i));
                scope.push(var.as_str(), list.local(i), origin);
                let r = nodes(prog, body, scope, out);
                scope.pop();
                r?;
            }
        }
        Node::Fragment(i, keep) => {
            let mut b = Vec::new();
            nodes(prog, &prog.fragments[*i], scope, &mut b)?;
            out.push(block(BlockKind::Group(b), *keep));
        }
        Node::DynFragment {
            name,
            candidates,
            keep,
        } => {
            let resolved = scope.text(name)?;
            let Ok(i) = candidates.binary_search_by(|(n, _)| n.as_str().cmp(&resolved)) else {
                let names: Vec<&str> = candidates.iter().map(|(n, _)| n.as_str()).collect();
                return Err(FieldError {
                    path: scope.text_path(name),
                    reason: format!(
                        "no fragment matches the name this record gives; the template has {}",
                        if names.is_empty() {
                            "none".to_string()
                        } else {
                            names.join(", ")
                        }
                    ),
                });
            };
            let mut b = Vec::new();
            nodes(prog, &prog.fragments[candidates[i].1], scope, &mut b)?;
            out.push(block(BlockKind::Group(b), *keep));
        }
    }
    Ok(())
}

/// Binds inline nodes, merging adjacent text of the same style.
pub fn bind_inlines(
    list: &[INode],
    scope: &Scope<'_>,
    out: &mut Vec<Inline>,
) -> Result<(), FieldError> {
    for i in list {
        match i {
            INode::Text(t, s) => push_text(out, *s, |buf| {
                buf.push_str(t);
                Ok(())
            })?,
            INode::Expr(e, s) => push_text(out, *s, |buf| scope.write(e, buf))?,
            INode::PageNumber(s) => out.push(Inline::PageNumber { style: *s }),
            INode::PageCount(s) => out.push(Inline::PageCount { style: *s }),
            INode::Br => out.push(Inline::LineBreak),
        }
    }
    Ok(())
}

/// Trims whitespace that empty values leave at the start and end of a paragraph.
fn trim_runs(runs: &mut Vec<Inline>) {
    if let Some(Inline::Text { text, .. }) = runs.first_mut() {
        let n = text.len() - text.trim_start().len();
        text.drain(..n);
    }
    if let Some(Inline::Text { text, .. }) = runs.last_mut() {
        let n = text.trim_end().len();
        text.truncate(n);
    }
    runs.retain(|r| !matches!(r, Inline::Text { text, .. } if text.is_empty()));
}

fn push_text(
    out: &mut Vec<Inline>,
    style: crate::style::StyleId,
    write: impl FnOnce(&mut String) -> Result<(), FieldError>,
) -> Result<(), FieldError> {
    if let Some(Inline::Text { text, style: s }) = out.last_mut()
        && *s == style
    {
        return write(text);
    }
    let mut text = String::new();
    write(&mut text)?;
    if !text.is_empty() {
        out.push(Inline::Text { text, style });
    }
    Ok(())
}

fn cells<'a>(
    prog: &'a Program,
    list: &'a [CellNode],
    scope: &mut Scope<'a>,
) -> Result<Row, FieldError> {
    let mut cells = Vec::with_capacity(list.len());
    for c in list {
        let mut blocks = Vec::with_capacity(c.blocks.len());
        nodes(prog, &c.blocks, scope, &mut blocks)?;
        cells.push(Cell {
            blocks,
            align: c.align,
            fill: c.fill,
        });
    }
    Ok(Row { cells })
}

fn table<'a>(
    prog: &'a Program,
    t: &'a TableNode,
    scope: &mut Scope<'a>,
) -> Result<Block, FieldError> {
    let header = match &t.header {
        Some(h) => Some(cells(prog, h, scope)?),
        None => None,
    };
    let list = elems(scope, &t.rows, "table rows")?;
    let mut running = match &t.running {
        Some((_, start, _)) => Some(scope.amount(start, "running-start")?.unwrap_or_default()),
        None => None,
    };
    let base = elems_origin(scope, &t.rows, &list, Some(&t.rows_path));
    let mut rows = Vec::with_capacity(list.len());
    for i in 0..list.len() {
        let origin = base
            .as_ref()
            .map_or(Origin::Unknown, |b| Origin::Elem(b.clone(), i));
        scope.push(t.var.as_str(), list.local(i), origin);
        let r = row(prog, t, scope, running.as_mut());
        scope.pop();
        rows.push(r.map_err(|mut e| {
            if e.path.is_empty() {
                e.path = format!("{}[{i}]", t.rows_path);
            }
            e
        })?);
    }
    let footer = match &t.footer {
        Some(f) => Some(cells(prog, f, scope)?),
        None => None,
    };
    Ok(block(
        BlockKind::Table(Table {
            columns: t.columns.clone(),
            header,
            rows,
            footer,
            style: t.style.clone(),
        }),
        t.keep,
    ))
}

/// Binds one body row; the row's element is already in scope. The running total is an
/// exact decimal: the sum of the addends as written, with no rounding and no overflow.
fn row<'a>(
    prog: &'a Program,
    t: &'a TableNode,
    scope: &mut Scope<'a>,
    running: Option<&mut Decimal>,
) -> Result<Row, FieldError> {
    let (Some((name, _, add)), Some(total)) = (&t.running, running) else {
        return cells(prog, &t.body, scope);
    };
    let a = scope.amount(add, "running-add")?.unwrap_or_default();
    *total = exact_add(*total, a).ok_or_else(|| FieldError {
        path: scope.path(add).unwrap_or_default(),
        reason: "the running total needs more digits than an exact decimal holds".into(),
    })?;
    let value = Value::Number(json_number(*total));
    scope.push(name.as_str(), Local::Owned(value), Origin::Unknown);
    let r = cells(prog, &t.body, scope);
    scope.pop();
    r
}
