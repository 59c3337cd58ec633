//! `template.toml`: identity, fonts, record schema, page geometry and named styles.

use std::ops::Range;

use toml::de::{DeTable, DeValue};

use super::schema::{Field, FieldType};
use super::source::{Diags, SourceFile, did_you_mean};
use crate::style::{FixedRegion, Margins, PageMaster, PageMasters};

/// A TOML value with its span, detached from the parser's lifetimes.
#[derive(Clone, Debug)]
pub struct TVal {
    pub span: Range<usize>,
    pub kind: TKind,
}

/// The kinds of TOML value.
#[derive(Clone, Debug)]
pub enum TKind {
    Str(String),
    Number,
    Bool(bool),
    Array,
    /// Entries in key order with the key's span.
    Table(Vec<(String, Range<usize>, TVal)>),
    Other,
}

impl TVal {
    fn from_de(v: &DeValue<'_>, span: Range<usize>) -> TVal {
        let kind = match v {
            DeValue::String(s) => TKind::Str(s.to_string()),
            DeValue::Integer(_) | DeValue::Float(_) => TKind::Number,
            DeValue::Boolean(b) => TKind::Bool(*b),
            DeValue::Datetime(_) => TKind::Other,
            DeValue::Array(_) => TKind::Array,
            DeValue::Table(t) => TKind::Table(table_entries(t)),
        };
        TVal { span, kind }
    }

    /// Returns the string content, if a string.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            TKind::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Returns the byte offset of a string's first content character.
    pub fn content_offset(&self, src: &str) -> usize {
        let s = &src[self.span.start.min(src.len())..];
        if s.starts_with("\"\"\"") || s.starts_with("'''") {
            self.span.start + 3
        } else if s.starts_with('"') || s.starts_with('\'') {
            self.span.start + 1
        } else {
            self.span.start
        }
    }

    fn type_name(&self) -> &'static str {
        match self.kind {
            TKind::Str(_) => "string",
            TKind::Number => "number",
            TKind::Bool(_) => "boolean",
            TKind::Array => "array",
            TKind::Table(_) => "table",
            TKind::Other => "date-time",
        }
    }
}

fn table_entries(t: &DeTable<'_>) -> Vec<(String, Range<usize>, TVal)> {
    t.iter()
        .map(|(k, v)| {
            (
                k.get_ref().to_string(),
                k.span(),
                TVal::from_de(v.get_ref(), v.span()),
            )
        })
        .collect()
}

/// A string from the manifest with the offset of its content.
#[derive(Clone, Debug)]
pub struct Located {
    pub text: String,
    pub offset: usize,
}

/// A font family declared in `[fonts]`.
#[derive(Clone, Debug)]
pub struct FontDecl {
    pub family: String,
    /// Relative paths of regular, bold, italic, bold-italic with their offsets.
    pub faces: [Option<Located>; 4],
}

/// A style declared in `[styles.NAME]`, not yet resolved.
#[derive(Clone, Debug)]
pub struct StyleDecl {
    pub name: String,
    pub offset: usize,
    pub props: Vec<(String, Range<usize>, TVal)>,
}

/// The parsed manifest.
pub struct Manifest {
    pub id: String,
    pub version: String,
    pub title: Option<Located>,
    pub lang: String,
    pub locale: String,
    pub currency: String,
    /// How `money` and `number` round ties (`rounding` in `[template]`).
    pub rounding: super::format::Rounding,
    /// `currency` as a text template (`"{{ account.currency }}"`), evaluated per document.
    pub currency_template: Option<Located>,
    pub document_id: Option<Located>,
    pub fragments: Option<Located>,
    pub fonts: Vec<FontDecl>,
    pub fields: Vec<Field>,
    pub masters: PageMasters,
    pub styles: Vec<StyleDecl>,
}

/// Longest length a template may write, in points: 14,400 pt (200 in) is the largest page
/// PDF readers are required to show, so anything longer is a mistake.
pub const MAX_LENGTH: f32 = 14_400.0;

/// Parses a length: `12pt`, `5mm`, `1.5cm`, `1in`, or `0`. Returns points; lengths longer
/// than [`MAX_LENGTH`] either way are refused.
pub fn parse_length(s: &str) -> Option<f32> {
    let s = s.trim();
    if s == "0" {
        return Some(0.0);
    }
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = s.split_at(split);
    let n: f32 = num.trim().parse().ok()?;
    let k = match unit {
        "pt" => 1.0,
        "mm" => 72.0 / 25.4,
        "cm" => 72.0 / 2.54,
        "in" => 72.0,
        _ => return None,
    };
    let pt = n * k;
    (pt.is_finite() && pt.abs() <= MAX_LENGTH).then_some(pt)
}

/// The hint for a bad length.
pub const LENGTH_HINT: &str =
    "write a number with a unit: pt, mm, cm or in (e.g. \"12pt\", \"5mm\"), at most 200in";

fn mm(x: f32) -> f32 {
    x * 72.0 / 25.4
}

/// Reads a whole template.toml.
pub fn parse(file: &SourceFile, diags: &mut Diags) -> Option<Manifest> {
    let root = match DeTable::parse(&file.text) {
        Ok(t) => TVal::from_de(&DeValue::Table(t.get_ref().clone()), t.span()),
        Err(e) => {
            let off = e.span().map_or(0, |s| s.start);
            diags.error(
                file,
                off,
                format!("malformed TOML: {}", e.message().trim_end_matches('\n')),
            );
            return None;
        }
    };
    let TKind::Table(entries) = root.kind else {
        return None;
    };
    let mut m = Manifest {
        id: String::new(),
        version: String::new(),
        title: None,
        lang: "en-GB".into(),
        locale: String::new(),
        currency: "GBP".into(),
        rounding: super::format::Rounding::default(),
        currency_template: None,
        document_id: None,
        fragments: None,
        fonts: Vec::new(),
        fields: Vec::new(),
        masters: default_masters(),
        styles: Vec::new(),
    };
    let mut saw_template = false;
    for (key, kspan, val) in &entries {
        match key.as_str() {
            "template" => {
                saw_template = true;
                parse_template_section(file, val, &mut m, diags);
            }
            "fonts" => m.fonts = parse_fonts(file, val, diags),
            "fields" => {
                if let Some(t) = table(file, val, diags) {
                    m.fields = parse_fields(file, t, diags);
                }
            }
            "page" => parse_page(file, val, &mut m.masters, diags),
            "styles" => {
                if let Some(t) = table(file, val, diags) {
                    for (name, nspan, sv) in t {
                        if let Some(props) = table(file, sv, diags) {
                            m.styles.push(StyleDecl {
                                name: name.clone(),
                                offset: nspan.start,
                                props: props.clone(),
                            });
                        }
                    }
                }
            }
            other => unknown_key(
                file,
                kspan.start,
                other,
                &["template", "fonts", "fields", "page", "styles"],
                diags,
            ),
        }
    }
    if !saw_template {
        diags.error(file, 0, "missing [template] section with id and version");
    }
    if m.locale.is_empty() {
        m.locale = m.lang.clone();
    }
    Some(m)
}

pub(super) fn unknown_key(
    file: &SourceFile,
    off: usize,
    key: &str,
    known: &[&str],
    diags: &mut Diags,
) {
    diags.error_hint(
        file,
        off,
        format!("unknown key '{key}'"),
        did_you_mean(key, known.iter().copied())
            .or_else(|| Some(format!("expected one of: {}", known.join(", ")))),
    );
}

pub(super) fn table<'a>(
    file: &SourceFile,
    v: &'a TVal,
    diags: &mut Diags,
) -> Option<&'a Vec<(String, Range<usize>, TVal)>> {
    match &v.kind {
        TKind::Table(t) => Some(t),
        _ => {
            diags.error(
                file,
                v.span.start,
                format!("expected a table, found {}", v.type_name()),
            );
            None
        }
    }
}

pub(super) fn string(file: &SourceFile, v: &TVal, diags: &mut Diags) -> Option<Located> {
    match v.as_str() {
        Some(s) => Some(Located {
            text: s.to_string(),
            offset: v.content_offset(&file.text),
        }),
        None => {
            diags.error(
                file,
                v.span.start,
                format!("expected a string, found {}", v.type_name()),
            );
            None
        }
    }
}

pub(super) fn boolean(file: &SourceFile, v: &TVal, diags: &mut Diags) -> Option<bool> {
    match v.kind {
        TKind::Bool(b) => Some(b),
        _ => {
            diags.error(
                file,
                v.span.start,
                format!("expected true or false, found {}", v.type_name()),
            );
            None
        }
    }
}

pub(super) fn length(file: &SourceFile, v: &TVal, diags: &mut Diags) -> Option<f32> {
    let s = string(file, v, diags)?;
    let l = parse_length(&s.text);
    if l.is_none() {
        diags.error_hint(
            file,
            s.offset,
            format!("bad length '{}'", s.text),
            Some(LENGTH_HINT.into()),
        );
    }
    l
}

fn parse_template_section(file: &SourceFile, v: &TVal, m: &mut Manifest, diags: &mut Diags) {
    let Some(t) = table(file, v, diags) else {
        return;
    };
    let known = [
        "id",
        "version",
        "title",
        "lang",
        "locale",
        "currency",
        "rounding",
        "document-id",
        "fragments",
    ];
    let mut has_id = false;
    let mut has_version = false;
    for (k, ks, val) in t {
        let Some(s) = string(file, val, diags) else {
            continue;
        };
        match k.as_str() {
            "id" => {
                has_id = true;
                if s.text.is_empty()
                    || !s
                        .text
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                {
                    diags.error(
                        file,
                        s.offset,
                        "template id must be lower-case letters, digits and '-'",
                    );
                }
                m.id = s.text;
            }
            "version" => {
                has_version = true;
                m.version = s.text;
            }
            "title" => m.title = Some(s),
            "lang" => m.lang = s.text,
            "locale" => {
                if super::format::Locale::find(&s.text).is_none() {
                    diags.error_hint(
                        file,
                        s.offset,
                        format!("unsupported locale '{}'", s.text),
                        Some("supported: en-GB, en-US, de-DE, fr-FR, nl-NL".into()),
                    );
                }
                m.locale = s.text;
            }
            "currency" if s.text.contains("{{") => m.currency_template = Some(s),
            "currency" => {
                if let Err(e) = super::format::Currency::from_code(&s.text) {
                    diags.error(file, s.offset, format!("currency '{}': {e}", s.text));
                }
                m.currency = s.text;
            }
            "rounding" => match super::format::Rounding::parse(&s.text) {
                Some(r) => m.rounding = r,
                None => diags.error_hint(
                    file,
                    s.offset,
                    format!("unknown rounding '{}'", s.text),
                    Some("use \"half-away-from-zero\" (the default) or \"half-even\"".into()),
                ),
            },
            "document-id" => m.document_id = Some(s),
            "fragments" => m.fragments = Some(s),
            other => unknown_key(file, ks.start, other, &known, diags),
        }
    }
    if !has_id {
        diags.error(file, v.span.start, "[template] needs an id");
    }
    if !has_version {
        diags.error(file, v.span.start, "[template] needs a version");
    }
}

fn parse_fonts(file: &SourceFile, v: &TVal, diags: &mut Diags) -> Vec<FontDecl> {
    let mut out = Vec::new();
    let Some(t) = table(file, v, diags) else {
        return out;
    };
    for (family, _, fv) in t {
        let mut faces: [Option<Located>; 4] = Default::default();
        if let TKind::Str(_) = fv.kind {
            faces[0] = string(file, fv, diags);
        } else if let Some(ft) = table(file, fv, diags) {
            for (k, ks, pv) in ft {
                let i = match k.as_str() {
                    "regular" => 0,
                    "bold" => 1,
                    "italic" => 2,
                    "bold-italic" => 3,
                    other => {
                        unknown_key(
                            file,
                            ks.start,
                            other,
                            &["regular", "bold", "italic", "bold-italic"],
                            diags,
                        );
                        continue;
                    }
                };
                faces[i] = string(file, pv, diags);
            }
        }
        if faces[0].is_none() {
            diags.error(
                file,
                fv.span.start,
                format!("font family '{family}' needs a regular face"),
            );
            continue;
        }
        out.push(FontDecl {
            family: family.clone(),
            faces,
        });
    }
    out
}

fn parse_fields(
    file: &SourceFile,
    entries: &[(String, Range<usize>, TVal)],
    diags: &mut Diags,
) -> Vec<Field> {
    let mut fields = Vec::new();
    for (key, kspan, v) in entries {
        let (mut name, mut optional) = match key.strip_suffix('?') {
            Some(n) => (n, true),
            None => (key.as_str(), false),
        };
        let records = name.ends_with("[]");
        if records {
            name = &name[..name.len() - 2];
        }
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            diags.error(
                file,
                kspan.start,
                format!("field name '{name}' must be letters, digits, '_' or '-'"),
            );
            continue;
        }
        let ty = match &v.kind {
            TKind::Table(sub) => {
                let sub = parse_fields(file, sub, diags);
                if records {
                    FieldType::Records(sub)
                } else {
                    FieldType::Object(sub)
                }
            }
            TKind::Str(s) => {
                if records {
                    diags.error(
                        file,
                        kspan.start,
                        format!(
                            "'{key}' declares an array of objects: give it a table of item fields"
                        ),
                    );
                    continue;
                }
                let (t, opt) = match s.strip_suffix('?') {
                    Some(t) => (t, true),
                    None => (s.as_str(), false),
                };
                optional |= opt;
                match FieldType::parse(t.trim()) {
                    Some(ty) => ty,
                    None => {
                        diags.error_hint(
                            file,
                            v.content_offset(&file.text),
                            format!("unknown field type '{t}'"),
                            Some(
                                "types: string, number, integer, decimal, decimal(MIN..MAX), boolean, date, array, array<T>, object; append '?' for optional".into(),
                            ),
                        );
                        continue;
                    }
                }
            }
            _ => {
                diags.error(
                    file,
                    v.span.start,
                    format!(
                        "expected a type string or a table of fields, found {}",
                        v.type_name()
                    ),
                );
                continue;
            }
        };
        fields.push(Field {
            name: name.to_string(),
            optional,
            ty,
        });
    }
    fields
}

fn default_masters() -> PageMasters {
    let m = PageMaster {
        width: mm(210.0),
        height: mm(297.0),
        margins: Margins {
            top: mm(20.0),
            right: mm(20.0),
            bottom: mm(20.0),
            left: mm(20.0),
        },
        header_height: 0.0,
        footer_height: 0.0,
        body_offset: 0.0,
        regions: Vec::new(),
    };
    PageMasters {
        first: m.clone(),
        rest: m,
    }
}

fn page_size(s: &str) -> Option<(f32, f32)> {
    Some(match s.to_ascii_lowercase().as_str() {
        "a4" => (mm(210.0), mm(297.0)),
        "a5" => (mm(148.0), mm(210.0)),
        "letter" => (612.0, 792.0),
        "legal" => (612.0, 1008.0),
        _ => {
            let mut it = s.split_whitespace();
            let w = parse_length(it.next()?)?;
            let h = parse_length(it.next()?)?;
            if it.next().is_some() || w <= 0.0 || h <= 0.0 {
                return None;
            }
            (w, h)
        }
    })
}

fn margins(s: &str) -> Option<Margins> {
    let v: Option<Vec<f32>> = s.split_whitespace().map(parse_length).collect();
    let v = v?;
    let (t, r, b, l) = match v.as_slice() {
        [a] => (*a, *a, *a, *a),
        [a, b] => (*a, *b, *a, *b),
        [a, b, c, d] => (*a, *b, *c, *d),
        _ => return None,
    };
    Some(Margins {
        top: t,
        right: r,
        bottom: b,
        left: l,
    })
}

/// Parses the `[page]` table into both masters, then `[page.first]` into the first.
fn parse_page(file: &SourceFile, v: &TVal, masters: &mut PageMasters, diags: &mut Diags) {
    let Some(t) = table(file, v, diags) else {
        return;
    };
    // Shared keys first (apply to both masters), then `first` overrides.
    for (k, ks, val) in t {
        if k == "first" {
            continue;
        }
        if k == "size" {
            if let Some(s) = string(file, val, diags) {
                match page_size(&s.text) {
                    Some((w, h)) => {
                        for m in [&mut masters.first, &mut masters.rest] {
                            m.width = w;
                            m.height = h;
                        }
                    }
                    None => diags.error_hint(
                        file,
                        s.offset,
                        format!("bad page size '{}'", s.text),
                        Some(
                            "use A4, A5, Letter, Legal or \"WIDTH HEIGHT\" like \"210mm 297mm\""
                                .into(),
                        ),
                    ),
                }
            }
            continue;
        }
        let mut first = masters.first.clone();
        if geometry_key(file, k, ks, val, &mut first, false, diags) {
            masters.first = first;
            geometry_key(
                file,
                k,
                ks,
                val,
                &mut masters.rest,
                false,
                &mut Diags::default(),
            );
        }
    }
    if let Some((_, _, fv)) = t.iter().find(|(k, _, _)| k == "first")
        && let Some(ft) = table(file, fv, diags)
    {
        for (k, ks, val) in ft {
            geometry_key(file, k, ks, val, &mut masters.first, true, diags);
        }
    }
}

/// Applies one geometry key to a master; returns whether the key was known and valid.
fn geometry_key(
    file: &SourceFile,
    k: &str,
    ks: &Range<usize>,
    val: &TVal,
    m: &mut PageMaster,
    first: bool,
    diags: &mut Diags,
) -> bool {
    match k {
        "margins" => {
            let Some(s) = string(file, val, diags) else {
                return false;
            };
            match margins(&s.text) {
                Some(mg) => {
                    m.margins = mg;
                    true
                }
                None => {
                    diags.error_hint(
                        file,
                        s.offset,
                        format!("bad margins '{}'", s.text),
                        Some(format!("give 1, 2 or 4 lengths; {LENGTH_HINT}")),
                    );
                    false
                }
            }
        }
        "header-height" => length(file, val, diags)
            .map(|l| m.header_height = l)
            .is_some(),
        "footer-height" => length(file, val, diags)
            .map(|l| m.footer_height = l)
            .is_some(),
        "body-offset" if first => length(file, val, diags)
            .map(|l| m.body_offset = l)
            .is_some(),
        "window" if first => {
            let region = match &val.kind {
                TKind::Str(s) => {
                    let (x, w) = match s.as_str() {
                        "DL" | "DL-left" | "C5" | "C5-left" => (20.0, 90.0),
                        "DL-right" | "C5-right" => (100.0, 90.0),
                        _ => {
                            diags.error_hint(
                                file,
                                val.content_offset(&file.text),
                                format!("unknown window '{s}'"),
                                Some("use DL, DL-left, DL-right, C5, C5-left, C5-right or { x, y, width, height }".into()),
                            );
                            return false;
                        }
                    };
                    Some((mm(x), mm(45.0), mm(w), mm(45.0)))
                }
                TKind::Table(wt) => {
                    let mut xywh = [None; 4];
                    for (wk, wks, wv) in wt {
                        let i = match wk.as_str() {
                            "x" => 0,
                            "y" => 1,
                            "width" => 2,
                            "height" => 3,
                            other => {
                                unknown_key(
                                    file,
                                    wks.start,
                                    other,
                                    &["x", "y", "width", "height"],
                                    diags,
                                );
                                continue;
                            }
                        };
                        xywh[i] = length(file, wv, diags);
                    }
                    match xywh {
                        [Some(x), Some(y), Some(w), Some(h)] => Some((x, y, w, h)),
                        _ => {
                            diags.error(
                                file,
                                val.span.start,
                                "window needs x, y, width and height",
                            );
                            None
                        }
                    }
                }
                _ => {
                    diags.error(
                        file,
                        val.span.start,
                        "window must be a name like \"DL\" or a table",
                    );
                    None
                }
            };
            match region {
                Some((x, y, width, height)) => {
                    m.regions.retain(|r| r.name != "window");
                    m.regions.push(FixedRegion {
                        name: "window".into(),
                        x,
                        y,
                        width,
                        height,
                    });
                    true
                }
                None => false,
            }
        }
        other => {
            let mut known = vec!["margins", "header-height", "footer-height"];
            if first {
                known.extend(["body-offset", "window"]);
            } else {
                known.extend(["size", "first"]);
            }
            unknown_key(file, ks.start, other, &known, diags);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths() {
        assert_eq!(parse_length("12pt"), Some(12.0));
        assert!((parse_length("25.4mm").unwrap() - 72.0).abs() < 1e-4);
        assert!((parse_length("2.54cm").unwrap() - 72.0).abs() < 1e-4);
        assert_eq!(parse_length("1in"), Some(72.0));
        assert_eq!(parse_length("0"), Some(0.0));
        assert_eq!(parse_length("12xx"), None);
        assert_eq!(parse_length("12"), None);
        assert_eq!(parse_length("mm"), None);
        assert_eq!(parse_length("200in"), Some(MAX_LENGTH));
        assert_eq!(parse_length("-200in"), Some(-MAX_LENGTH));
        for long in [
            "201in",
            "18446744073709551616pt",
            "1e38mm",
            "-1e30cm",
            "infpt",
            "NaNpt",
        ] {
            assert_eq!(parse_length(long), None, "{long}");
        }
    }

    #[test]
    fn manifest_page_and_window() {
        let src = r#"
[template]
id = "t"
version = "1"
[page]
size = "Letter"
margins = "10mm 20mm"
[page.first]
window = "DL-right"
body-offset = "80mm"
"#;
        let f = SourceFile::new("template.toml".into(), src.into());
        let mut d = Diags::default();
        let m = parse(&f, &mut d).unwrap();
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        assert_eq!(m.masters.rest.width, 612.0);
        assert!((m.masters.first.margins.left - mm(20.0)).abs() < 1e-4);
        assert!(m.masters.rest.regions.is_empty());
        let w = &m.masters.first.regions[0];
        assert_eq!(w.name, "window");
        assert!((w.x - mm(100.0)).abs() < 1e-3 && (w.y - mm(45.0)).abs() < 1e-3);
        assert!((m.masters.first.body_offset - mm(80.0)).abs() < 1e-3);
    }
}
