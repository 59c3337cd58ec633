//! Tables: `<table>` with its columns, header and footer rows, compiled for `bind`.

use super::compile::{CellNode, Compiler, INode, Node, TableNode, is_blank};
use super::expr::{Mode, ScopeEntry, TextPart};
use super::source::{SourceFile, did_you_mean};
use crate::doc::{TableColumn, TableStyle};
use crate::style::StyleId;
use roxmltree::Node as X;

impl Compiler<'_> {
    /// Compiles a `<table>`.
    pub(super) fn table(
        &mut self,
        f: &SourceFile,
        n: X,
        keep: bool,
        scope: &mut Vec<ScopeEntry>,
    ) -> Option<Node> {
        self.check_attrs(
            f,
            n,
            &[
                "rows",
                "as",
                "style",
                "header-style",
                "padding",
                "row-rule",
                "border",
                "header-fill",
                "stripe-fill",
                "footer-fill",
                "running",
                "running-start",
                "running-add",
            ],
        );
        let rows = self.expr_attr(f, n, "rows", Mode::Value, scope);
        let var = n.attribute("as").unwrap_or("row").to_string();
        let cell_style = self.style_attr(f, n, "cell");
        let header_style = if n.has_attribute("header-style") {
            let off = Self::attr_off(n, "header-style");
            let name = n.attribute("header-style").unwrap_or_default();
            match self.styles.by_name.get(name) {
                Some(id) => *id,
                None => {
                    let hint = did_you_mean(name, self.styles.by_name.keys().map(String::as_str));
                    self.diags
                        .error_hint(f, off, format!("unknown style '{name}'"), hint);
                    StyleId(0)
                }
            }
        } else {
            self.styles.by_name["table-header"]
        };
        let style = TableStyle {
            padding: self.length_attr(f, n, "padding").unwrap_or(3.0),
            row_rule: self.stroke_attr(f, n, "row-rule"),
            border: self.stroke_attr(f, n, "border"),
            header_fill: self.color_attr(f, n, "header-fill"),
            stripe_fill: self.color_attr(f, n, "stripe-fill"),
            footer_fill: self.color_attr(f, n, "footer-fill"),
        };
        let elem = n.attribute("rows").and_then(|r| self.elem_type(r, scope));
        let depth = scope.len();
        scope.push(ScopeEntry {
            name: var.clone(),
            ty: elem,
        });
        let running = match n.attribute("running") {
            Some(name) => {
                let start = self.expr_attr(f, n, "running-start", Mode::Value, scope);
                let add = self.expr_attr(f, n, "running-add", Mode::Value, scope);
                scope.push(ScopeEntry {
                    name: name.to_string(),
                    ty: Some(super::schema::FieldType::Scalar(
                        super::schema::Scalar::Decimal(super::schema::Range::default()),
                    )),
                });
                start.zip(add).map(|(s, a)| (name.to_string(), s, a))
            }
            None => None,
        };
        let mut columns = Vec::new();
        let mut header = Vec::new();
        let mut any_header = false;
        let mut body = Vec::new();
        let mut footer = None;
        for c in n.children().filter(|c| !is_blank(c)) {
            let cname = if c.is_element() {
                c.tag_name().name()
            } else {
                ""
            };
            match cname {
                "column" => {
                    self.check_attrs(f, c, &["width", "align", "header", "style"]);
                    let width = self.width_attr(f, c, "width");
                    let align = self.align_attr(f, c);
                    let mut s = if c.has_attribute("style") {
                        self.style_attr(f, c, "cell")
                    } else {
                        cell_style
                    };
                    let mut hs = header_style;
                    if let Some(a) = align {
                        s = self.styles.aligned(s, a);
                        hs = self.styles.aligned(hs, a);
                    }
                    columns.push(TableColumn {
                        width,
                        align: align.unwrap_or_default(),
                    });
                    // Header text sees only the enclosing scope, not the row.
                    let outer: Vec<ScopeEntry> = scope[..depth].to_vec();
                    let h = self.text_attr(f, c, "header", &outer);
                    any_header |= c.has_attribute("header");
                    header.push(CellNode {
                        blocks: vec![Node::Para {
                            role: crate::doc::ParagraphRole::Paragraph,
                            style: hs,
                            inlines: h
                                .into_iter()
                                .map(|p| match p {
                                    TextPart::Lit(t) => INode::Text(t, hs),
                                    TextPart::Expr(e) => INode::Expr(e, hs),
                                })
                                .collect(),
                            keep: false,
                        }],
                        align: None,
                        fill: None,
                    });
                    body.push(CellNode {
                        blocks: self.flow(f, c, s, scope),
                        align: None,
                        fill: None,
                    });
                }
                "footer" => {
                    self.check_attrs(f, c, &[]);
                    let mut cells = Vec::new();
                    for (i, cell) in c.children().filter(|x| !is_blank(x)).enumerate() {
                        if !(cell.is_element() && cell.tag_name().name() == "cell") {
                            self.err(f, cell.range().start, "<footer> holds only <cell> elements");
                            continue;
                        }
                        self.check_attrs(f, cell, &["align", "fill", "style"]);
                        let align = self.align_attr(f, cell);
                        let fill = self.color_attr(f, cell, "fill");
                        let mut s = if cell.has_attribute("style") {
                            self.style_attr(f, cell, "cell")
                        } else {
                            cell_style
                        };
                        if let Some(a) =
                            align.or_else(|| columns.get(i).map(|c: &TableColumn| c.align))
                        {
                            s = self.styles.aligned(s, a);
                        }
                        let outer: Vec<ScopeEntry> = scope[..depth].to_vec();
                        let mut outer = outer;
                        cells.push(CellNode {
                            blocks: self.flow(f, cell, s, &mut outer),
                            align,
                            fill,
                        });
                    }
                    footer = Some((c.range().start, cells));
                }
                _ => {
                    self.diags.error_hint(
                        f,
                        c.range().start,
                        if cname.is_empty() {
                            "text directly inside <table>".to_string()
                        } else {
                            format!("unknown element <{cname}> in <table>")
                        },
                        Some("a table holds <column> and <footer> elements".into()),
                    );
                }
            }
        }
        scope.truncate(depth);
        if columns.is_empty() {
            self.err(f, n.range().start, "<table> needs at least one <column>");
        }
        let footer = footer.map(|(off, cells)| {
            if cells.len() != columns.len() {
                self.err(
                    f,
                    off,
                    format!(
                        "<footer> has {} cells but the table has {} columns",
                        cells.len(),
                        columns.len()
                    ),
                );
            }
            cells
        });
        Some(Node::Table(Box::new(TableNode {
            rows: rows?,
            rows_path: n
                .attribute("rows")
                .map(str::trim)
                .filter(|r| {
                    r.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
                })
                .unwrap_or(&var)
                .to_string(),
            var,
            running,
            columns,
            header: any_header.then_some(header),
            body,
            footer,
            style,
            keep,
        })))
    }
}
