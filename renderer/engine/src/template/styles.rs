//! Named styles resolved from the manifest, and styles derived from them at compile time.

use std::collections::BTreeMap;

use super::manifest::{StyleDecl, TKind, TVal, boolean, length, string, unknown_key};
use super::source::{Diags, SourceFile, did_you_mean};
use crate::style::{Align, Color, Style, StyleId, StyleSheet};
use crate::text::font::FontBook;

/// Styles resolved by name, for lookups during compilation only.
pub struct ResolvedStyles {
    pub sheet: StyleSheet,
    pub by_name: BTreeMap<String, StyleId>,
}

fn builtin_default(fonts: &FontBook) -> Style {
    Style {
        name: "default".into(),
        family: "Liberation Sans".into(),
        bold: false,
        italic: false,
        font: fonts
            .select("Liberation Sans", false, false)
            .expect("the default family is embedded"),
        size: 10.0,
        leading: 12.0,
        color: Color::BLACK,
        align: Align::Left,
        space_before: 0.0,
        space_after: 0.0,
        indent_left: 0.0,
        indent_right: 0.0,
        first_line_indent: 0.0,
        hyphenate: false,
        underline: false,
    }
}

/// Built-in styles `(name, props)` used when the manifest does not declare them.
fn builtin_props(name: &str) -> Option<Vec<(&'static str, BuiltinVal)>> {
    use BuiltinVal::*;
    let heading = |size: f32| {
        vec![
            ("bold", B(true)),
            ("size", L(size)),
            ("leading", L(size * 1.2)),
            ("space-before", L(4.0)),
            ("space-after", L(3.0)),
        ]
    };
    Some(match name {
        "h1" => heading(18.0),
        "h2" => heading(15.0),
        "h3" => heading(13.0),
        "h4" => heading(11.5),
        "h5" => heading(10.5),
        "h6" => heading(10.0),
        "table-header" => vec![("bold", B(true))],
        "cell" => vec![],
        "small" | "footer" => vec![("size", L(8.0)), ("leading", L(9.6))],
        _ => return None,
    })
}

enum BuiltinVal {
    B(bool),
    L(f32),
}

const BUILTINS: [&str; 10] = [
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "table-header",
    "cell",
    "small",
    "footer",
];

const STYLE_KEYS: [&str; 15] = [
    "base",
    "family",
    "bold",
    "italic",
    "underline",
    "size",
    "leading",
    "color",
    "align",
    "space-before",
    "space-after",
    "indent-left",
    "indent-right",
    "first-line-indent",
    "hyphenate",
];

/// Parses an alignment keyword.
pub fn parse_align(s: &str) -> Option<Align> {
    Some(match s {
        "left" => Align::Left,
        "right" => Align::Right,
        "center" | "centre" => Align::Center,
        "justify" => Align::Justify,
        _ => return None,
    })
}

/// Resolves every declared and built-in style into a sheet (index 0 = `default`).
pub fn resolve_styles(
    file: &SourceFile,
    decls: &[StyleDecl],
    fonts: &FontBook,
    families: &[String],
    diags: &mut Diags,
) -> ResolvedStyles {
    let mut sheet = StyleSheet::default();
    let mut by_name = BTreeMap::new();
    let root = builtin_default(fonts);
    let decl_of = |n: &str| decls.iter().find(|d| d.name == n);
    // Order: default, declared (in key order), remaining built-ins.
    let mut order: Vec<String> = vec!["default".into()];
    order.extend(
        decls
            .iter()
            .filter(|d| d.name != "default")
            .map(|d| d.name.clone()),
    );
    order.extend(
        BUILTINS
            .iter()
            .filter(|b| decl_of(b).is_none())
            .map(|b| b.to_string()),
    );
    for name in &order {
        let mut visiting = Vec::new();
        resolve_one(
            name,
            file,
            decls,
            fonts,
            families,
            &root,
            &mut sheet,
            &mut by_name,
            &mut visiting,
            diags,
        );
    }
    ResolvedStyles { sheet, by_name }
}

#[expect(
    clippy::too_many_arguments,
    reason = "a recursive helper over one resolution context"
)]
fn resolve_one(
    name: &str,
    file: &SourceFile,
    decls: &[StyleDecl],
    fonts: &FontBook,
    families: &[String],
    root: &Style,
    sheet: &mut StyleSheet,
    by_name: &mut BTreeMap<String, StyleId>,
    visiting: &mut Vec<String>,
    diags: &mut Diags,
) -> Option<StyleId> {
    if let Some(id) = by_name.get(name) {
        return Some(*id);
    }
    if visiting.iter().any(|v| v == name) {
        return None;
    }
    visiting.push(name.to_string());
    let decl = decls.iter().find(|d| d.name == name);
    let mut style = if let Some(d) = decl {
        let base = d.props.iter().find(|(k, _, _)| k == "base");
        let base_name = match base {
            Some((_, _, v)) => v.as_str().map(str::to_string),
            None if name == "default" => None,
            None => Some("default".to_string()),
        };
        match base_name {
            None => root.clone(),
            Some(b) => {
                let exists = decls.iter().any(|d| d.name == b)
                    || b == "default"
                    || BUILTINS.contains(&b.as_str());
                let (_, _, bv) = base.cloned().unwrap_or_else(|| {
                    (
                        String::new(),
                        0..0,
                        TVal {
                            span: d.offset..d.offset,
                            kind: TKind::Other,
                        },
                    )
                });
                if !exists {
                    let names = decls
                        .iter()
                        .map(|d| d.name.as_str())
                        .chain(BUILTINS)
                        .chain(["default"]);
                    diags.error_hint(
                        file,
                        bv.content_offset(&file.text),
                        format!("unknown base style '{b}'"),
                        did_you_mean(&b, names),
                    );
                    root.clone()
                } else {
                    match resolve_one(
                        &b, file, decls, fonts, families, root, sheet, by_name, visiting, diags,
                    ) {
                        Some(id) => sheet.get(id).clone(),
                        None => {
                            diags.error(
                                file,
                                d.offset,
                                format!("style '{name}' inherits from itself through '{b}'"),
                            );
                            root.clone()
                        }
                    }
                }
            }
        }
    } else if let Some(props) = builtin_props(name) {
        let mut s = if name == "default" {
            root.clone()
        } else {
            let id = resolve_one(
                "default", file, decls, fonts, families, root, sheet, by_name, visiting, diags,
            )?;
            sheet.get(id).clone()
        };
        for (k, v) in props {
            match (k, v) {
                ("bold", BuiltinVal::B(b)) => s.bold = b,
                ("size", BuiltinVal::L(l)) => s.size = l,
                ("leading", BuiltinVal::L(l)) => s.leading = l,
                ("space-before", BuiltinVal::L(l)) => s.space_before = l,
                ("space-after", BuiltinVal::L(l)) => s.space_after = l,
                _ => {}
            }
        }
        s
    } else if name == "default" {
        root.clone()
    } else {
        visiting.pop();
        return None;
    };
    style.name = name.to_string();
    if let Some(d) = decl {
        let mut leading_set = false;
        let mut size_set = false;
        for (k, ks, v) in &d.props {
            match k.as_str() {
                "base" => {}
                "family" => {
                    if let Some(s) = string(file, v, diags) {
                        if fonts.select(&s.text, false, false).is_none() {
                            diags.error_hint(
                                file,
                                s.offset,
                                format!("unknown font family '{}'", s.text),
                                did_you_mean(&s.text, families.iter().map(String::as_str)),
                            );
                        } else {
                            style.family = s.text;
                        }
                    }
                }
                "bold" => style.bold = boolean(file, v, diags).unwrap_or(style.bold),
                "italic" => style.italic = boolean(file, v, diags).unwrap_or(style.italic),
                "underline" => style.underline = boolean(file, v, diags).unwrap_or(style.underline),
                "hyphenate" => style.hyphenate = boolean(file, v, diags).unwrap_or(style.hyphenate),
                "size" => {
                    if let Some(l) = length(file, v, diags) {
                        style.size = l;
                        size_set = true;
                    }
                }
                "leading" => {
                    if let Some(l) = length(file, v, diags) {
                        style.leading = l;
                        leading_set = true;
                    }
                }
                "space-before" => {
                    style.space_before = length(file, v, diags).unwrap_or(style.space_before)
                }
                "space-after" => {
                    style.space_after = length(file, v, diags).unwrap_or(style.space_after)
                }
                "indent-left" => {
                    style.indent_left = length(file, v, diags).unwrap_or(style.indent_left)
                }
                "indent-right" => {
                    style.indent_right = length(file, v, diags).unwrap_or(style.indent_right)
                }
                "first-line-indent" => {
                    style.first_line_indent =
                        length(file, v, diags).unwrap_or(style.first_line_indent)
                }
                "color" => {
                    if let Some(s) = string(file, v, diags) {
                        match Color::parse_hex(&s.text) {
                            Some(c) => style.color = c,
                            None => diags.error_hint(
                                file,
                                s.offset,
                                format!("bad colour '{}'", s.text),
                                Some("write #rrggbb or #rgb".into()),
                            ),
                        }
                    }
                }
                "align" => {
                    if let Some(s) = string(file, v, diags) {
                        match parse_align(&s.text) {
                            Some(a) => style.align = a,
                            None => diags.error_hint(
                                file,
                                s.offset,
                                format!("bad alignment '{}'", s.text),
                                Some("use left, right, center or justify".into()),
                            ),
                        }
                    }
                }
                other => unknown_key(file, ks.start, other, &STYLE_KEYS, diags),
            }
        }
        if size_set && !leading_set {
            style.leading = style.size * 1.2;
        }
    }
    style.font = fonts
        .select(&style.family, style.bold, style.italic)
        .unwrap_or(root.font);
    let id = StyleId(sheet.styles.len() as u32);
    sheet.styles.push(style);
    by_name.insert(name.to_string(), id);
    visiting.pop();
    Some(id)
}

/// How derived styles are made from a base style.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Derive {
    Bold,
    Italic,
    Underline,
    Span(u32),
    Align(u8),
}

/// Named styles and derived styles interned at compile time.
pub struct Styles {
    pub sheet: StyleSheet,
    pub by_name: BTreeMap<String, StyleId>,
    derived: BTreeMap<(u32, Derive), StyleId>,
    pub fonts: std::sync::Arc<crate::text::font::FontBook>,
}

impl Styles {
    /// Wraps the resolved named styles.
    pub fn new(
        sheet: StyleSheet,
        by_name: BTreeMap<String, StyleId>,
        fonts: std::sync::Arc<crate::text::font::FontBook>,
    ) -> Self {
        Self {
            sheet,
            by_name,
            derived: BTreeMap::new(),
            fonts,
        }
    }

    pub(super) fn derive(&mut self, base: StyleId, how: Derive) -> StyleId {
        if let Some(id) = self.derived.get(&(base.0, how)) {
            return *id;
        }
        let mut s = self.sheet.get(base).clone();
        let suffix = match how {
            Derive::Bold => {
                s.bold = true;
                "+b".to_string()
            }
            Derive::Italic => {
                s.italic = true;
                "+i".to_string()
            }
            Derive::Underline => {
                s.underline = true;
                "+u".to_string()
            }
            Derive::Span(id) => {
                let src = self.sheet.get(StyleId(id));
                s.family = src.family.clone();
                s.bold = src.bold;
                s.italic = src.italic;
                s.size = src.size;
                s.color = src.color;
                s.underline = src.underline;
                format!("+{}", src.name)
            }
            Derive::Align(a) => {
                s.align = match a {
                    0 => Align::Left,
                    1 => Align::Right,
                    2 => Align::Center,
                    _ => Align::Justify,
                };
                format!("+align{a}")
            }
        };
        if let Some(f) = self.fonts.select(&s.family, s.bold, s.italic) {
            s.font = f;
        }
        if s == *self.sheet.get(base) {
            self.derived.insert((base.0, how), base);
            return base;
        }
        s.name.push_str(&suffix);
        let id = StyleId(self.sheet.styles.len() as u32);
        self.sheet.styles.push(s);
        self.derived.insert((base.0, how), id);
        id
    }

    pub(super) fn aligned(&mut self, base: StyleId, align: Align) -> StyleId {
        let a = match align {
            Align::Left => 0,
            Align::Right => 1,
            Align::Center => 2,
            Align::Justify => 3,
        };
        self.derive(base, Derive::Align(a))
    }
}
