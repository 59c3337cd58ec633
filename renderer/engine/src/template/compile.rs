//! `body.xml` and fragments → the checked program that `bind` walks per record.

use std::collections::BTreeMap;
use std::path::PathBuf;

use roxmltree::Node as X;

use super::expr::{Expr, ExprCompiler, ExprError, Mode, ScopeEntry, TextPart, base_scope};
use super::manifest::{LENGTH_HINT, parse_length};
use super::source::{Diags, SourceFile, did_you_mean, raw_offset};
use super::styles::{Derive, Styles, parse_align};
use crate::doc::{BarcodeKind, Rule, TableColumn, TableStyle, Width};
use crate::image::{ImageAsset, ImageId, ImageStore};
use crate::source::{FileKind, RelPath, Root, TemplateSource};
use crate::style::{Align, Color, StyleId};

/// Inline content of a compiled paragraph.
#[derive(Clone, Debug)]
pub enum INode {
    Text(String, StyleId),
    Expr(Expr, StyleId),
    PageNumber(StyleId),
    PageCount(StyleId),
    Br,
}

/// A compiled block or rule.
#[derive(Clone, Debug)]
pub enum Node {
    Para {
        role: crate::doc::ParagraphRole,
        style: StyleId,
        inlines: Vec<INode>,
        keep: bool,
    },
    List {
        style: StyleId,
        ordered: bool,
        items: Vec<Vec<Node>>,
        keep: bool,
    },
    Columns {
        gap: f32,
        columns: Vec<(Width, Vec<Node>)>,
        keep: bool,
    },
    Table(Box<TableNode>),
    Image {
        image: ImageId,
        width: Option<f32>,
        height: Option<f32>,
        align: Align,
        alt: String,
        keep: bool,
    },
    Barcode {
        kind: BarcodeKind,
        data: Vec<TextPart>,
        width: f32,
        height: Option<f32>,
        align: Align,
        artifact: bool,
        alt: Vec<TextPart>,
        keep: bool,
    },
    Rule(Rule, bool),
    Spacer(f32, bool),
    PageBreak,
    Keep(Vec<Node>, bool),
    /// `if`/`elif`/`else` branches in order; `None` is `else`.
    If(Vec<(Option<Expr>, Vec<Node>)>),
    For {
        items: Expr,
        body: Vec<Node>,
        /// Name of the loop variable (slot is the scope depth at compile time).
        var: String,
    },
    /// A fragment by index into [`Program::fragments`].
    Fragment(usize, bool),
    /// A fragment chosen per record: the name template and candidates by name.
    DynFragment {
        name: Vec<TextPart>,
        candidates: Vec<(String, usize)>,
        keep: bool,
    },
}

/// A table bound to an array.
#[derive(Clone, Debug)]
pub struct TableNode {
    pub rows: Expr,
    /// How errors name a row: the rows path (`transactions`) or the row name.
    pub rows_path: String,
    pub var: String,
    /// Running total: name, start and addend.
    pub running: Option<(String, Expr, Expr)>,
    pub columns: Vec<TableColumn>,
    pub header: Option<Vec<CellNode>>,
    pub body: Vec<CellNode>,
    pub footer: Option<Vec<CellNode>>,
    pub style: TableStyle,
    pub keep: bool,
}

/// A compiled table cell.
#[derive(Clone, Debug)]
pub struct CellNode {
    pub blocks: Vec<Node>,
    pub align: Option<Align>,
    pub fill: Option<Color>,
}

/// The compiled masters and body.
#[derive(Clone, Debug, Default)]
pub struct Program {
    pub body: Vec<Node>,
    pub first_header: Option<Vec<Node>>,
    pub first_footer: Option<Vec<Node>>,
    pub window: Vec<Node>,
    pub rest_header: Vec<Node>,
    pub rest_footer: Vec<Node>,
    /// The fixed back-of-page content (`<back>`), for print production's blank backs.
    pub back: Option<Vec<Node>>,
    /// Compiled fragments by index; the names are in `fragment_names`.
    pub fragments: Vec<Vec<Node>>,
}

/// A fragment library: the names of its `NAME.xml` files (sorted) and what is compiled.
pub struct FragmentLib {
    /// How messages name the library.
    pub dir: PathBuf,
    pub names: Vec<String>,
    /// Compiled index per name, once compiled (`usize::MAX` while in progress).
    pub index: BTreeMap<String, usize>,
}

impl FragmentLib {
    /// Wraps the fragment names a source lists.
    pub fn open(mut names: Vec<String>, dir: PathBuf) -> Self {
        names.sort();
        Self {
            dir,
            names,
            index: BTreeMap::new(),
        }
    }
}

/// The state shared while compiling a body and its fragments.
pub struct Compiler<'c> {
    pub diags: &'c mut Diags,
    pub styles: &'c mut Styles,
    pub exprs: &'c mut ExprCompiler,
    pub images: &'c mut ImageStore,
    /// Images by the `src` they were named with.
    pub assets: BTreeMap<String, ImageId>,
    /// Where every file comes from.
    pub src: &'c mut dyn TemplateSource,
    pub lib: FragmentLib,
    pub program: Program,
}

const BLOCKS: [&str; 23] = [
    "p",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "ul",
    "ol",
    "columns",
    "table",
    "image",
    "barcode",
    "hr",
    "spacer",
    "page-break",
    "keep-together",
    "if",
    "elif",
    "else",
    "for",
    "fragment",
    "region",
];

const INLINES: [&str; 7] = ["b", "i", "u", "span", "br", "page-number", "page-count"];

pub(super) fn is_blank(n: &X) -> bool {
    n.is_comment() || n.is_pi() || (n.is_text() && n.text().is_some_and(|t| t.trim().is_empty()))
}

impl Compiler<'_> {
    pub(super) fn err(&mut self, f: &SourceFile, off: usize, msg: impl Into<String>) {
        self.diags.error(f, off, msg);
    }

    pub(super) fn expr_err(&mut self, f: &SourceFile, base: usize, raw: &str, e: ExprError) {
        let off = base + raw_offset(raw, e.offset);
        self.diags.error_hint(f, off, e.message, e.hint);
    }

    /// Checks the attributes of an element against the allowed names.
    pub(super) fn check_attrs(&mut self, f: &SourceFile, n: X, allowed: &[&str]) {
        for a in n.attributes() {
            if a.name() != "keep-with-next" && !allowed.contains(&a.name()) {
                let known: Vec<&str> = allowed.iter().copied().chain(["keep-with-next"]).collect();
                let hint = did_you_mean(a.name(), known.iter().copied()).or_else(|| {
                    Some(if allowed.is_empty() {
                        format!("<{}> takes no attributes", n.tag_name().name())
                    } else {
                        format!("<{}> takes: {}", n.tag_name().name(), known.join(", "))
                    })
                });
                self.diags.error_hint(
                    f,
                    a.range().start,
                    format!(
                        "unknown attribute '{}' on <{}>",
                        a.name(),
                        n.tag_name().name()
                    ),
                    hint,
                );
            }
        }
    }

    pub(super) fn attr_off(n: X, name: &str) -> usize {
        n.attribute_node(name)
            .map_or(n.range().start, |a| a.range_value().start)
    }

    pub(super) fn raw_attr<'a>(f: &'a SourceFile, n: X, name: &str) -> &'a str {
        n.attribute_node(name)
            .map_or("", |a| &f.text[a.range_value()])
    }

    pub(super) fn keep(&mut self, f: &SourceFile, n: X) -> bool {
        self.flag(f, n, "keep-with-next")
    }

    pub(super) fn flag(&mut self, f: &SourceFile, n: X, name: &str) -> bool {
        match n.attribute(name) {
            None | Some("false") => false,
            Some("true") => true,
            Some(v) => {
                let off = Self::attr_off(n, name);
                self.err(
                    f,
                    off,
                    format!("{name} must be \"true\" or \"false\", found '{v}'"),
                );
                false
            }
        }
    }

    pub(super) fn length_attr(&mut self, f: &SourceFile, n: X, name: &str) -> Option<f32> {
        let v = n.attribute(name)?;
        let l = parse_length(v);
        if l.is_none() {
            let off = Self::attr_off(n, name);
            self.diags.error_hint(
                f,
                off,
                format!("bad length '{v}'"),
                Some(LENGTH_HINT.into()),
            );
        }
        l
    }

    pub(super) fn width_attr(&mut self, f: &SourceFile, n: X, name: &str) -> Width {
        let Some(v) = n.attribute(name) else {
            return Width::Fraction(1.0);
        };
        if let Some(fr) = v.strip_suffix("fr") {
            if let Ok(x) = fr.trim().parse::<f32>()
                && x > 0.0
            {
                return Width::Fraction(x);
            }
        } else if let Some(l) = parse_length(v) {
            return Width::Points(l);
        }
        let off = Self::attr_off(n, name);
        self.diags.error_hint(
            f,
            off,
            format!("bad width '{v}'"),
            Some(format!(
                "write a length or a share like \"2fr\"; {LENGTH_HINT}"
            )),
        );
        Width::Fraction(1.0)
    }

    pub(super) fn color_attr(&mut self, f: &SourceFile, n: X, name: &str) -> Option<Color> {
        let v = n.attribute(name)?;
        let c = Color::parse_hex(v);
        if c.is_none() {
            let off = Self::attr_off(n, name);
            self.diags.error_hint(
                f,
                off,
                format!("bad colour '{v}'"),
                Some("write #rrggbb or #rgb".into()),
            );
        }
        c
    }

    /// Parses `"THICKNESS COLOR"` (colour optional, default black).
    pub(super) fn stroke_attr(&mut self, f: &SourceFile, n: X, name: &str) -> Option<(Color, f32)> {
        let v = n.attribute(name)?;
        let mut it = v.split_whitespace();
        let t = it.next().and_then(parse_length);
        let c = match it.next() {
            Some(c) => Color::parse_hex(c),
            None => Some(Color::BLACK),
        };
        match (t, c, it.next()) {
            (Some(t), Some(c), None) => Some((c, t)),
            _ => {
                let off = Self::attr_off(n, name);
                self.diags.error_hint(
                    f,
                    off,
                    format!("bad rule '{v}'"),
                    Some("write a thickness and an optional colour, e.g. \"0.5pt #cccccc\"".into()),
                );
                None
            }
        }
    }

    pub(super) fn align_attr(&mut self, f: &SourceFile, n: X) -> Option<Align> {
        let v = n.attribute("align")?;
        let a = parse_align(v);
        if a.is_none() {
            let off = Self::attr_off(n, "align");
            self.diags.error_hint(
                f,
                off,
                format!("bad alignment '{v}'"),
                Some("use left, right, center or justify".into()),
            );
        }
        a
    }

    pub(super) fn style_attr(&mut self, f: &SourceFile, n: X, default: &str) -> StyleId {
        let name = n.attribute("style").unwrap_or(default);
        match self.styles.by_name.get(name) {
            Some(id) => *id,
            None => {
                let off = Self::attr_off(n, "style");
                let hint = did_you_mean(name, self.styles.by_name.keys().map(String::as_str));
                self.diags
                    .error_hint(f, off, format!("unknown style '{name}'"), hint);
                StyleId(0)
            }
        }
    }

    pub(super) fn text_attr(
        &mut self,
        f: &SourceFile,
        n: X,
        name: &str,
        scope: &[ScopeEntry],
    ) -> Vec<TextPart> {
        let Some(v) = n.attribute(name) else {
            return Vec::new();
        };
        match self.exprs.text(v, scope) {
            Ok(p) => p,
            Err(e) => {
                let base = Self::attr_off(n, name);
                let raw = Self::raw_attr(f, n, name);
                self.expr_err(f, base, raw, e);
                Vec::new()
            }
        }
    }

    pub(super) fn expr_attr(
        &mut self,
        f: &SourceFile,
        n: X,
        name: &str,
        mode: Mode,
        scope: &[ScopeEntry],
    ) -> Option<Expr> {
        let Some(v) = n.attribute(name) else {
            self.err(
                f,
                n.range().start,
                format!("<{}> needs a '{name}' attribute", n.tag_name().name()),
            );
            return None;
        };
        match self.exprs.expr(v, mode, scope) {
            Ok(e) => Some(e),
            Err(e) => {
                let base = Self::attr_off(n, name);
                let raw = Self::raw_attr(f, n, name);
                self.expr_err(f, base, raw, e);
                None
            }
        }
    }

    /// Compiles the children of `parent` as blocks.
    pub fn blocks(&mut self, f: &SourceFile, parent: X, scope: &mut Vec<ScopeEntry>) -> Vec<Node> {
        let mut out = Vec::new();
        let mut open_if: Option<usize> = None;
        for n in parent.children() {
            if is_blank(&n) {
                continue;
            }
            if n.is_text() {
                let off = n.range().start + n.text().map_or(0, |t| t.len() - t.trim_start().len());
                self.err(
                    f,
                    off,
                    format!("text directly inside <{}>", parent.tag_name().name()),
                );
                if let Some(d) = self.diags.errors.last_mut() {
                    d.hints.push("wrap the text in <p>…</p>".into());
                }
                open_if = None;
                continue;
            }
            if !n.is_element() {
                continue;
            }
            let name = n.tag_name().name();
            match name {
                "elif" | "else" => {
                    let Some(i) = open_if else {
                        self.err(
                            f,
                            n.range().start,
                            format!("<{name}> must follow an <if> or <elif>"),
                        );
                        continue;
                    };
                    let test = if name == "elif" {
                        self.check_attrs(f, n, &["test"]);
                        self.expr_attr(f, n, "test", Mode::Test, scope)
                    } else {
                        self.check_attrs(f, n, &[]);
                        None
                    };
                    let body = self.blocks(f, n, scope);
                    if let Node::If(branches) = &mut out[i] {
                        branches.push((test, body));
                    }
                    open_if = if name == "elif" { Some(i) } else { None };
                    continue;
                }
                "if" => {
                    self.check_attrs(f, n, &["test"]);
                    let test = self.expr_attr(f, n, "test", Mode::Test, scope);
                    let body = self.blocks(f, n, scope);
                    out.push(Node::If(vec![(test, body)]));
                    open_if = Some(out.len() - 1);
                    continue;
                }
                _ => open_if = None,
            }
            if let Some(b) = self.block(f, n, scope) {
                out.push(b);
            }
        }
        out
    }

    pub(super) fn block(
        &mut self,
        f: &SourceFile,
        n: X,
        scope: &mut Vec<ScopeEntry>,
    ) -> Option<Node> {
        let name = n.tag_name().name();
        let keep = self.keep(f, n);
        Some(match name {
            "p" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                self.check_attrs(f, n, &["style", "align"]);
                let (role, default) = match name {
                    "p" => (crate::doc::ParagraphRole::Paragraph, "default"),
                    h => (
                        crate::doc::ParagraphRole::Heading(h.as_bytes()[1] - b'0'),
                        h,
                    ),
                };
                let mut style = self.style_attr(f, n, default);
                if let Some(a) = self.align_attr(f, n) {
                    style = self.styles.aligned(style, a);
                }
                let inlines = self.paragraph(f, n, style, scope);
                Node::Para {
                    role,
                    style,
                    inlines,
                    keep,
                }
            }
            "ul" | "ol" => {
                self.check_attrs(f, n, &["style"]);
                let style = self.style_attr(f, n, "default");
                let mut items = Vec::new();
                for c in n.children().filter(|c| !is_blank(c)) {
                    if c.is_element() && c.tag_name().name() == "li" {
                        self.check_attrs(f, c, &["style"]);
                        let s = if c.has_attribute("style") {
                            self.style_attr(f, c, "default")
                        } else {
                            style
                        };
                        items.push(self.flow(f, c, s, scope));
                    } else {
                        self.err(
                            f,
                            c.range().start,
                            format!("<{name}> holds only <li> items"),
                        );
                    }
                }
                Node::List {
                    style,
                    ordered: name == "ol",
                    items,
                    keep,
                }
            }
            "columns" => {
                self.check_attrs(f, n, &["gap"]);
                let gap = self.length_attr(f, n, "gap").unwrap_or(12.0);
                let mut columns = Vec::new();
                for c in n.children().filter(|c| !is_blank(c)) {
                    if c.is_element() && c.tag_name().name() == "column" {
                        self.check_attrs(f, c, &["width"]);
                        let w = self.width_attr(f, c, "width");
                        columns.push((w, self.blocks(f, c, scope)));
                    } else {
                        self.err(f, c.range().start, "<columns> holds only <column> elements");
                    }
                }
                Node::Columns { gap, columns, keep }
            }
            "table" => return self.table(f, n, keep, scope),
            "image" => {
                self.check_attrs(f, n, &["src", "width", "height", "align", "alt"]);
                let width = self.length_attr(f, n, "width");
                let height = self.length_attr(f, n, "height");
                let align = self.align_attr(f, n).unwrap_or_default();
                let alt = n.attribute("alt").unwrap_or_default().to_string();
                let Some(src) = n.attribute("src") else {
                    self.err(f, n.range().start, "<image> needs a 'src' attribute");
                    return None;
                };
                let image = self.image(f, n, src)?;
                Node::Image {
                    image,
                    width,
                    height,
                    align,
                    alt,
                    keep,
                }
            }
            "barcode" => {
                self.check_attrs(
                    f,
                    n,
                    &[
                        "type", "data", "width", "height", "align", "alt", "artifact",
                    ],
                );
                let kind = match n.attribute("type") {
                    Some("code128") => BarcodeKind::Code128,
                    Some("qr") => BarcodeKind::Qr,
                    Some("datamatrix") => BarcodeKind::DataMatrix,
                    other => {
                        let off = Self::attr_off(n, "type");
                        self.diags.error_hint(
                            f,
                            off,
                            format!("unknown barcode type '{}'", other.unwrap_or("")),
                            Some("use code128, qr or datamatrix".into()),
                        );
                        BarcodeKind::Qr
                    }
                };
                if !n.has_attribute("data") {
                    self.err(f, n.range().start, "<barcode> needs a 'data' attribute");
                }
                let data = self.text_attr(f, n, "data", scope);
                let alt = self.text_attr(f, n, "alt", scope);
                let width = self.length_attr(f, n, "width").unwrap_or(72.0);
                let height = self.length_attr(f, n, "height");
                let align = self.align_attr(f, n).unwrap_or_default();
                let artifact = self.flag(f, n, "artifact");
                Node::Barcode {
                    kind,
                    data,
                    width,
                    height,
                    align,
                    artifact,
                    alt,
                    keep,
                }
            }
            "hr" => {
                self.check_attrs(f, n, &["thickness", "color", "space-before", "space-after"]);
                Node::Rule(
                    Rule {
                        thickness: self.length_attr(f, n, "thickness").unwrap_or(0.5),
                        color: self.color_attr(f, n, "color").unwrap_or(Color::BLACK),
                        space_before: self.length_attr(f, n, "space-before").unwrap_or(3.0),
                        space_after: self.length_attr(f, n, "space-after").unwrap_or(3.0),
                    },
                    keep,
                )
            }
            "spacer" => {
                self.check_attrs(f, n, &["height"]);
                if !n.has_attribute("height") {
                    self.err(f, n.range().start, "<spacer> needs a 'height' attribute");
                }
                Node::Spacer(self.length_attr(f, n, "height").unwrap_or(0.0), keep)
            }
            "page-break" => {
                self.check_attrs(f, n, &[]);
                Node::PageBreak
            }
            "keep-together" => {
                self.check_attrs(f, n, &[]);
                Node::Keep(self.blocks(f, n, scope), keep)
            }
            "for" => {
                self.check_attrs(f, n, &["each"]);
                let Some(each) = n.attribute("each") else {
                    self.err(f, n.range().start, "<for> needs an 'each' attribute");
                    return None;
                };
                let base = Self::attr_off(n, "each");
                let Some((var, list)) = each.split_once(" in ") else {
                    self.diags.error_hint(
                        f,
                        base,
                        format!("bad loop '{each}'"),
                        Some("write each=\"NAME in EXPRESSION\"".into()),
                    );
                    return None;
                };
                let var = var.trim();
                if var.is_empty() || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    self.err(f, base, format!("bad loop name '{var}'"));
                    return None;
                }
                let list_off = each.len() - list.len();
                let items = match self.exprs.expr(list, Mode::Value, scope) {
                    Ok(e) => e,
                    Err(mut e) => {
                        e.offset += list_off;
                        let raw = Self::raw_attr(f, n, "each");
                        self.expr_err(f, base, raw, e);
                        return None;
                    }
                };
                let ty = self.elem_type(list, scope);
                scope.push(ScopeEntry {
                    name: var.to_string(),
                    ty,
                });
                let body = self.blocks(f, n, scope);
                scope.pop();
                Node::For {
                    items,
                    body,
                    var: var.to_string(),
                }
            }
            "fragment" => {
                self.check_attrs(f, n, &["name"]);
                let Some(fname) = n.attribute("name") else {
                    self.err(f, n.range().start, "<fragment> needs a 'name' attribute");
                    return None;
                };
                let off = Self::attr_off(n, "name");
                if fname.contains("{{") {
                    let parts = self.text_attr(f, n, "name", scope);
                    let pattern: Vec<&str> = split_pattern(fname);
                    let mut candidates = Vec::new();
                    for cand in self.lib.names.clone() {
                        if glob_match(&pattern, &cand)
                            && let Some(i) = self.fragment(f, off, &cand)
                        {
                            candidates.push((cand, i));
                        }
                    }
                    if candidates.is_empty() {
                        self.diags.warning(
                            f,
                            off,
                            format!(
                                "no fragment in {} matches '{fname}'",
                                self.lib.dir.display()
                            ),
                        );
                    }
                    Node::DynFragment {
                        name: parts,
                        candidates,
                        keep,
                    }
                } else {
                    Node::Fragment(self.fragment(f, off, fname)?, keep)
                }
            }
            "region" | "header" | "footer" | "body" | "first-page" | "page" | "document" => {
                self.err(f, n.range().start, format!("<{name}> is not allowed here"));
                return None;
            }
            other => {
                let hint = did_you_mean(other, BLOCKS.iter().chain(INLINES.iter()).copied());
                let hint = if INLINES.contains(&other) {
                    Some(format!("<{other}> is inline: put it inside a <p>"))
                } else {
                    hint.or_else(|| {
                        Some(format!(
                            "blocks are: <{}>",
                            BLOCKS[..BLOCKS.len() - 1].join(">, <")
                        ))
                    })
                };
                self.diags.error_hint(
                    f,
                    n.range().start,
                    format!("unknown element <{other}>"),
                    hint,
                );
                return None;
            }
        })
    }

    /// The element type of a list expression, when it is a plain declared path.
    pub(super) fn elem_type(
        &self,
        list: &str,
        scope: &[ScopeEntry],
    ) -> Option<super::schema::FieldType> {
        use super::schema::{FieldType, Lookup, Segment, lookup_in};
        let list = list.trim();
        if !list
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            return None;
        }
        let segs: Vec<&str> = list.split('.').collect();
        let rest: Vec<Segment> = segs[1..]
            .iter()
            .map(|s| Segment::Key(s.to_string()))
            .collect();
        let ty = if let Some(e) = scope.iter().rev().find(|e| e.name == segs[0]) {
            match lookup_in(e.ty.as_ref()?, &rest, 0) {
                Lookup::Known(t) => t,
                _ => return None,
            }
        } else {
            let all: Vec<Segment> = segs.iter().map(|s| Segment::Key(s.to_string())).collect();
            match lookup_in(self.exprs.record_type(), &all, 0) {
                Lookup::Known(t) => t,
                _ => return None,
            }
        };
        FieldType::element(&ty)
    }

    /// Compiles (once) and returns the index of a fragment.
    pub(super) fn fragment(&mut self, f: &SourceFile, off: usize, name: &str) -> Option<usize> {
        if let Some(&i) = self.lib.index.get(name) {
            if i == usize::MAX {
                self.err(f, off, format!("fragment '{name}' includes itself"));
                return None;
            }
            return Some(i);
        }
        if !self.lib.names.iter().any(|n| n == name) {
            let hint = did_you_mean(name, self.lib.names.iter().map(String::as_str))
                .or_else(|| Some(format!("add {}/{name}.xml", self.lib.dir.display())));
            self.diags
                .error_hint(f, off, format!("missing fragment '{name}'"), hint);
            return None;
        }
        let rel = match RelPath::exact(&format!("{name}.xml")) {
            Ok(p) => p,
            Err(e) => {
                self.err(f, off, format!("cannot read fragment '{name}': {e}"));
                return None;
            }
        };
        let path = self.src.describe(Root::Fragments, &rel);
        let text = match self.src.read(Root::Fragments, &rel, FileKind::Text) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(t) => t,
                Err(e) => {
                    self.err(
                        f,
                        off,
                        format!("cannot read fragment '{name}': it is not UTF-8 text ({e})"),
                    );
                    return None;
                }
            },
            Err(e) => {
                self.err(f, off, format!("cannot read fragment '{name}': {e}"));
                return None;
            }
        };
        let text = match text.strip_prefix('\u{feff}') {
            Some(t) => t.to_string(),
            None => text,
        };
        self.lib.index.insert(name.to_string(), usize::MAX);
        let file = SourceFile::new(path, text);
        let blocks = match roxmltree::Document::parse(&file.text) {
            Ok(doc) => {
                let root = doc.root_element();
                if root.tag_name().name() != "fragment" {
                    self.err(
                        &file,
                        root.range().start,
                        "a fragment file's root element must be <fragment>",
                    );
                }
                self.check_attrs(&file, root, &[]);
                let mut scope = base_scope();
                self.blocks(&file, root, &mut scope)
            }
            Err(e) => {
                xml_error(self.diags, &file, &e);
                Vec::new()
            }
        };
        let i = self.program.fragments.len();
        self.program.fragments.push(blocks);
        self.lib.index.insert(name.to_string(), i);
        Some(i)
    }

    pub(super) fn image(&mut self, f: &SourceFile, n: X, src: &str) -> Option<ImageId> {
        if let Some(id) = self.assets.get(src) {
            return Some(*id);
        }
        let off = Self::attr_off(n, "src");
        let bytes = match RelPath::new(src)
            .and_then(|rel| self.src.read(Root::Template, &rel, FileKind::Image))
        {
            Ok(b) => b,
            Err(e) => {
                self.err(f, off, format!("cannot read image '{src}': {e}"));
                return None;
            }
        };
        match ImageAsset::load(src, &bytes) {
            Ok(asset) => {
                let id = self.images.add(asset);
                self.assets.insert(src.to_string(), id);
                Some(id)
            }
            Err(e) => {
                self.err(f, off, format!("cannot decode image '{src}': {e}"));
                None
            }
        }
    }

    /// Content of a list item or cell: blocks if it holds any block element, else one paragraph.
    pub(super) fn flow(
        &mut self,
        f: &SourceFile,
        n: X,
        style: StyleId,
        scope: &mut Vec<ScopeEntry>,
    ) -> Vec<Node> {
        let has_blocks = n
            .children()
            .any(|c| c.is_element() && BLOCKS.contains(&c.tag_name().name()));
        if has_blocks {
            self.blocks(f, n, scope)
        } else {
            vec![Node::Para {
                role: crate::doc::ParagraphRole::Paragraph,
                style,
                inlines: self.paragraph(f, n, style, scope),
                keep: false,
            }]
        }
    }

    /// Compiles the inline content of a paragraph, collapsing whitespace.
    pub(super) fn paragraph(
        &mut self,
        f: &SourceFile,
        n: X,
        style: StyleId,
        scope: &[ScopeEntry],
    ) -> Vec<INode> {
        let mut out = Vec::new();
        self.inlines(f, n, style, scope, &mut out);
        // Trim leading and trailing whitespace of the paragraph.
        if let Some(INode::Text(t, _)) = out.first_mut() {
            *t = t.trim_start().to_string();
        }
        if let Some(INode::Text(t, _)) = out.last_mut() {
            *t = t.trim_end().to_string();
        }
        out.retain(|i| !matches!(i, INode::Text(t, _) if t.is_empty()));
        out
    }

    pub(super) fn inlines(
        &mut self,
        f: &SourceFile,
        n: X,
        style: StyleId,
        scope: &[ScopeEntry],
        out: &mut Vec<INode>,
    ) {
        for c in n.children() {
            if c.is_text() {
                let text = c.text().unwrap_or_default();
                let raw = &f.text[c.range()];
                match self.exprs.text(text, scope) {
                    Ok(parts) => {
                        for p in parts {
                            match p {
                                TextPart::Lit(s) => push_text(out, &collapse(&s), style),
                                TextPart::Expr(e) => out.push(INode::Expr(e, style)),
                            }
                        }
                    }
                    Err(e) => self.expr_err(f, c.range().start, raw, e),
                }
                continue;
            }
            if !c.is_element() {
                continue;
            }
            let name = c.tag_name().name();
            let derived = match name {
                "b" => Some(self.styles.derive(style, Derive::Bold)),
                "i" => Some(self.styles.derive(style, Derive::Italic)),
                "u" => Some(self.styles.derive(style, Derive::Underline)),
                "span" => {
                    self.check_attrs(f, c, &["style"]);
                    let s = self.style_attr(f, c, "default");
                    Some(self.styles.derive(style, Derive::Span(s.0)))
                }
                _ => None,
            };
            if let Some(d) = derived {
                if name != "span" {
                    self.check_attrs(f, c, &[]);
                }
                self.inlines(f, c, d, scope, out);
                continue;
            }
            self.check_attrs(f, c, &[]);
            match name {
                "br" => out.push(INode::Br),
                "page-number" => out.push(INode::PageNumber(style)),
                "page-count" => out.push(INode::PageCount(style)),
                other => {
                    let hint = if BLOCKS.contains(&other) {
                        Some(format!("<{other}> is a block: close the paragraph first"))
                    } else {
                        did_you_mean(other, INLINES.iter().copied())
                    };
                    self.diags.error_hint(
                        f,
                        c.range().start,
                        format!("unknown inline element <{other}>"),
                        hint,
                    );
                }
            }
        }
    }
}

fn collapse(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        if c.is_whitespace() && c != '\u{A0}' && c != '\u{202F}' {
            if !space {
                out.push(' ');
            }
            space = true;
        } else {
            out.push(c);
            space = false;
        }
    }
    out
}

fn push_text(out: &mut Vec<INode>, s: &str, style: StyleId) {
    if s.is_empty() {
        return;
    }
    if let Some(INode::Text(t, st)) = out.last_mut()
        && *st == style
    {
        if t.ends_with(' ') && s.starts_with(' ') {
            t.push_str(&s[1..]);
        } else {
            t.push_str(s);
        }
        return;
    }
    out.push(INode::Text(s.to_string(), style));
}

/// Splits a dynamic fragment name into literal parts around its `{{ }}` holes.
fn split_pattern(name: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = name;
    while let Some(open) = rest.find("{{") {
        parts.push(&rest[..open]);
        match rest[open..].find("}}") {
            Some(close) => rest = &rest[open + close + 2..],
            None => {
                rest = "";
                break;
            }
        }
    }
    parts.push(rest);
    parts
}

/// Matches a name against literal parts with a wildcard between each pair.
fn glob_match(parts: &[&str], name: &str) -> bool {
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut pos = first.len();
    let end = name.len() - last.len();
    for mid in &parts[1..parts.len().saturating_sub(1)] {
        match name[pos..end].find(mid) {
            Some(i) => pos += i + mid.len(),
            None => return false,
        }
    }
    parts.len() > 1 || name == first
}

/// Reports a malformed XML document at its position.
pub fn xml_error(diags: &mut Diags, file: &SourceFile, e: &roxmltree::Error) {
    let p = e.pos();
    diags.errors.push(crate::diag::Diagnostic::error(
        Some(crate::diag::SourceLocation {
            file: file.path.clone(),
            line: p.row,
            column: p.col,
        }),
        format!("malformed XML: {e}"),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let p = split_pattern("legal-{{ customer.region | lower }}");
        assert_eq!(p, vec!["legal-", ""]);
        assert!(glob_match(&p, "legal-uk"));
        assert!(!glob_match(&p, "privacy-uk"));
        let p = split_pattern("{{ a }}-{{ b }}-clause");
        assert!(glob_match(&p, "x-y-clause"));
        assert!(!glob_match(&p, "xy-clause"));
        assert_eq!(collapse("a \n\t b"), "a b");
    }
}
