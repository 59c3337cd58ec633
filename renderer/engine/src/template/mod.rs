//! Templates: a folder of plain-text files compiled once into a checked program
//! ([`Template`]) that `bind` evaluates per record.

mod amount;
mod bind;
mod check;
mod compile;
mod expr;
mod format;
mod jinja;
mod manifest;
mod schema;
mod source;
mod styles;
mod table;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::diag::{Diagnostic, Diagnostics};
use crate::doc::{DocMeta, Document, MasterContent};
use crate::image::ImageStore;
use crate::style::{PageMasters, StyleSheet};
use crate::text::font::FontBook;

pub use amount::{AmountError, parse_decimal_str, parse_json_number};
pub use format::{
    Currency, CurrencyError, Locale, Negative, Rounding, format_date, format_money, format_number,
    parse_date,
};
pub use manifest::parse_length;
pub use schema::{Field, FieldType, Range, Scalar};

use compile::{Compiler, FragmentLib, Program};
use expr::{ExprCompiler, Fmt, Scope, TextPart};
use source::{Diags, SourceFile};
use styles::Styles;

/// Options for [`compile`].
#[derive(Clone, Debug, Default)]
pub struct CompileOptions {
    /// Fragment library folder; overrides the manifest's `fragments` path.
    pub fragments: Option<PathBuf>,
}

/// A compiled template with the warnings compilation produced.
pub struct Compiled {
    /// The checked template.
    pub template: Template,
    /// Problems that did not stop compilation (e.g. a dynamic fragment name matching nothing).
    pub warnings: Vec<Diagnostic>,
}

/// Compiles the template in `dir`. Errors name file, line and column.
pub fn compile(dir: &Path, opts: &CompileOptions) -> Result<Compiled, Diagnostics> {
    let mut diags = Diags::default();
    let result = compile_inner(dir, opts, &mut diags);
    match result {
        Some(template) if diags.errors.is_empty() => Ok(Compiled {
            template,
            warnings: diags.warnings,
        }),
        _ => {
            if diags.errors.is_empty() {
                diags
                    .errors
                    .push(Diagnostic::error(None, "template did not compile"));
            }
            Err(Diagnostics(diags.errors))
        }
    }
}

fn read_source(path: PathBuf, diags: &mut Diags) -> Option<SourceFile> {
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(SourceFile::new(path, text)),
        Err(e) => {
            diags.errors.push(Diagnostic::error(
                Some(crate::diag::SourceLocation {
                    file: path,
                    line: 1,
                    column: 1,
                }),
                format!("cannot read file: {e}"),
            ));
            None
        }
    }
}

/// Compiles a text template from the manifest, reporting errors at its position.
fn manifest_text(
    ex: &mut ExprCompiler,
    file: &SourceFile,
    loc: Option<&manifest::Located>,
    diags: &mut Diags,
) -> Vec<TextPart> {
    let Some(loc) = loc else {
        return Vec::new();
    };
    match ex.text(&loc.text, &expr::base_scope()) {
        Ok(p) => p,
        Err(e) => {
            diags.error_hint(file, loc.offset + e.offset, e.message, e.hint);
            Vec::new()
        }
    }
}

fn compile_inner(dir: &Path, opts: &CompileOptions, diags: &mut Diags) -> Option<Template> {
    let toml_file = read_source(dir.join("template.toml"), diags)?;
    let m = manifest::parse(&toml_file, diags)?;

    // Fonts: the embedded defaults plus the declared families.
    let mut book = FontBook::with_defaults();
    let mut families: Vec<String> = [
        "Liberation Sans",
        "sans",
        "sans-serif",
        "default",
        "DejaVu Sans",
    ]
    .map(String::from)
    .to_vec();
    let mut font_bytes: Vec<(String, Vec<u8>)> = Vec::new();
    for decl in &m.fonts {
        let mut ids = [None; 4];
        for (i, face) in decl.faces.iter().enumerate() {
            let Some(face) = face else { continue };
            match std::fs::read(dir.join(&face.text)) {
                Ok(bytes) => match book.add_font(bytes.clone()) {
                    Ok(id) => {
                        ids[i] = Some(id);
                        font_bytes.push((face.text.clone(), bytes));
                    }
                    Err(e) => diags.error(
                        &toml_file,
                        face.offset,
                        format!("cannot load font '{}': {e}", face.text),
                    ),
                },
                Err(e) => diags.error(
                    &toml_file,
                    face.offset,
                    format!("cannot read font '{}': {e}", face.text),
                ),
            }
        }
        if let Some(regular) = ids[0] {
            book.add_family(&decl.family, regular, ids[1], ids[2], ids[3]);
            families.push(decl.family.clone());
        }
    }
    let fonts = Arc::new(book);
    let resolved = styles::resolve_styles(&toml_file, &m.styles, &fonts, &families, diags);
    let mut styles = Styles::new(resolved.sheet, resolved.by_name, fonts.clone());

    let fmt = Fmt {
        locale: Locale::get_or_default(&m.locale),
        // An unknown code is already a compile error of the manifest.
        currency: Currency::from_code(&m.currency)
            .unwrap_or_else(|_| Currency::from_code("GBP").expect("GBP is in ISO 4217")),
        rounding: m.rounding,
    };
    let mut ex = ExprCompiler::new(&fmt, FieldType::Object(m.fields.clone()));
    let title = manifest_text(&mut ex, &toml_file, m.title.as_ref(), diags);
    let doc_id = manifest_text(&mut ex, &toml_file, m.document_id.as_ref(), diags);
    let currency = manifest_text(&mut ex, &toml_file, m.currency_template.as_ref(), diags);

    let frag_dir = match (&opts.fragments, &m.fragments) {
        (Some(p), _) => p.clone(),
        (None, Some(l)) => dir.join(&l.text),
        (None, None) => dir.join("../fragments"),
    };
    let body_file = read_source(dir.join("body.xml"), diags)?;
    let mut images = ImageStore::default();
    let mut c = Compiler {
        diags,
        styles: &mut styles,
        exprs: &mut ex,
        images: &mut images,
        assets: BTreeMap::new(),
        dir,
        lib: FragmentLib::open(frag_dir),
        program: Program::default(),
    };
    match roxmltree::Document::parse(&body_file.text) {
        Ok(doc) => compile_document(&mut c, &body_file, doc.root_element()),
        Err(e) => compile::xml_error(c.diags, &body_file, &e),
    }
    let Compiler {
        program,
        assets,
        lib,
        ..
    } = c;

    let mut h = Sha256::new();
    let mut part = |kind: &str, name: &str, bytes: &[u8]| {
        for field in [kind.as_bytes(), name.as_bytes(), bytes] {
            h.update((field.len() as u64).to_le_bytes());
            h.update(field);
        }
    };
    part("manifest", "template.toml", toml_file.text.as_bytes());
    part("body", "body.xml", body_file.text.as_bytes());
    for (name, bytes) in &font_bytes {
        part("font", name, bytes);
    }
    for (name, src) in &lib.sources {
        part("fragment", name, src);
    }
    for (name, (_, bytes)) in &assets {
        part("asset", name, bytes);
    }
    let content_hash: [u8; 32] = h.finalize().into();

    let mut masters = m.masters;
    if masters.first.regions.iter().all(|r| r.name != "window") && !program.window.is_empty() {
        diags.error(
            &body_file,
            0,
            "<region name=\"window\"> needs a window in [page.first] of template.toml",
        );
    }
    masters.first.regions.sort_by(|a, b| a.name.cmp(&b.name));
    Some(Template {
        id: m.id,
        version: m.version,
        fonts,
        images: Arc::new(images),
        styles: Arc::new(styles.sheet),
        masters: Arc::new(masters),
        content_hash,
        lang: m.lang,
        title,
        doc_id,
        currency,
        fields: m.fields,
        fmt,
        env: Arc::new(ex.finish()),
        program: Arc::new(program),
    })
}

/// Binds the running content of one page master.
fn master<'a>(
    p: &'a Program,
    header: &'a [compile::Node],
    footer: &'a [compile::Node],
    scope: &mut Scope<'a>,
) -> Result<MasterContent, FieldError> {
    let mut m = MasterContent::default();
    bind::nodes(p, header, scope, &mut m.header)?;
    bind::nodes(p, footer, scope, &mut m.footer)?;
    Ok(m)
}

/// Compiles `<document>`: `<first-page>`, `<page>` and `<body>`.
fn compile_document(c: &mut Compiler<'_>, f: &SourceFile, root: roxmltree::Node<'_, '_>) {
    if root.tag_name().name() != "document" {
        c.diags.error(
            f,
            root.range().start,
            format!(
                "the root element must be <document>, found <{}>",
                root.tag_name().name()
            ),
        );
        return;
    }
    let mut scope = expr::base_scope();
    let mut saw_body = false;
    for n in root.children() {
        if n.is_text() && n.text().is_some_and(|t| !t.trim().is_empty()) {
            c.diags
                .error(f, n.range().start, "text directly inside <document>");
            continue;
        }
        if !n.is_element() {
            continue;
        }
        match n.tag_name().name() {
            "body" => {
                saw_body = true;
                c.program.body = c.blocks(f, n, &mut scope);
            }
            master @ ("first-page" | "page") => {
                let first = master == "first-page";
                for part in n.children() {
                    if part.is_text() && part.text().is_some_and(|t| !t.trim().is_empty()) {
                        c.diags.error(
                            f,
                            part.range().start,
                            format!("text directly inside <{master}>"),
                        );
                        continue;
                    }
                    if !part.is_element() {
                        continue;
                    }
                    match (part.tag_name().name(), first) {
                        ("header", _) => {
                            let b = c.blocks(f, part, &mut scope);
                            if first {
                                c.program.first_header = Some(b);
                            } else {
                                c.program.rest_header = b;
                            }
                        }
                        ("footer", _) => {
                            let b = c.blocks(f, part, &mut scope);
                            if first {
                                c.program.first_footer = Some(b);
                            } else {
                                c.program.rest_footer = b;
                            }
                        }
                        ("region", true) => match part.attribute("name") {
                            Some("window") => c.program.window = c.blocks(f, part, &mut scope),
                            other => c.diags.error_hint(
                                f,
                                part.range().start,
                                format!("unknown region '{}'", other.unwrap_or("")),
                                Some("the first page has one region: name=\"window\"".into()),
                            ),
                        },
                        (other, _) => {
                            let known: &[&str] = if first {
                                &["header", "footer", "region"]
                            } else {
                                &["header", "footer"]
                            };
                            c.diags.error_hint(
                                f,
                                part.range().start,
                                format!("unknown element <{other}> in <{master}>"),
                                source::did_you_mean(other, known.iter().copied()).or_else(|| {
                                    Some(format!("<{master}> holds {}", known.join(", ")))
                                }),
                            );
                        }
                    }
                }
            }
            other => c.diags.error_hint(
                f,
                n.range().start,
                format!("unknown element <{other}> in <document>"),
                source::did_you_mean(other, ["first-page", "page", "body"]),
            ),
        }
    }
    if !saw_body {
        c.diags
            .error(f, root.range().start, "<document> needs a <body>");
    }
}

/// Run parameters visible to templates as `run.*`.
#[derive(Clone, Debug, Default)]
pub struct BindParams {
    /// 1-based record number in the input.
    pub record_number: u64,
    /// Run date `YYYY-MM-DD` (never the clock: output must be deterministic).
    pub run_date: String,
}

/// A record the template cannot bind: the field path and why.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct FieldError {
    /// Dotted path of the offending field (`transactions[3].amount`), empty for the whole record.
    pub path: String,
    pub reason: String,
}

/// A compiled, checked template.
pub struct Template {
    pub id: String,
    pub version: String,
    pub fonts: Arc<FontBook>,
    pub images: Arc<ImageStore>,
    pub styles: Arc<StyleSheet>,
    pub masters: Arc<PageMasters>,
    /// SHA-256 over every source file, fragment, font and asset the template uses.
    pub content_hash: [u8; 32],
    /// BCP 47 language of the documents.
    pub lang: String,
    title: Vec<TextPart>,
    doc_id: Vec<TextPart>,
    /// Per-document default currency (empty: the manifest's fixed `currency`).
    currency: Vec<TextPart>,
    fields: Vec<Field>,
    fmt: Fmt,
    env: Arc<minijinja::Environment<'static>>,
    program: Arc<Program>,
}

impl Template {
    /// Returns the declared record fields.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// Checks a JSON record against the declared fields, once, where it enters: a
    /// `decimal` field given as a decimal string (`"1234.56"`) is rewritten as the JSON
    /// number with the same digits, so binding sees numbers only.
    pub fn validate(&self, record: &mut serde_json::Value) -> Result<(), FieldError> {
        schema::validate_object(&self.fields, record, "")
    }

    /// Converts a CSV row (with its header) into a record typed by the declared fields.
    /// Unknown columns are ignored; the result is validated.
    pub fn record_from_csv(
        &self,
        headers: &[String],
        row: &[String],
    ) -> Result<serde_json::Value, FieldError> {
        schema::record_from_csv(&self.fields, headers, row)
    }

    /// Binds a validated record into a document.
    pub fn bind(
        &self,
        record: &serde_json::Value,
        params: &BindParams,
    ) -> Result<Document, FieldError> {
        let run = serde_json::json!({
            "record_number": params.record_number,
            "date": params.run_date,
        });
        let doc_fmt;
        let fmt = if self.currency.is_empty() {
            &self.fmt
        } else {
            let scope = Scope::new(record, run.clone(), &self.env, &self.fmt);
            let code = scope.text(&self.currency)?;
            let currency = Currency::from_code(&code).map_err(|e| FieldError {
                path: scope.text_path(&self.currency),
                reason: e.to_string(),
            })?;
            doc_fmt = Fmt {
                currency,
                ..self.fmt.clone()
            };
            &doc_fmt
        };
        let mut scope = Scope::new(record, run, &self.env, fmt);
        let p: &Program = &self.program;
        let id = if self.doc_id.is_empty() {
            params.record_number.to_string()
        } else {
            scope.text(&self.doc_id)?
        };
        let meta = DocMeta {
            id,
            title: scope.text(&self.title)?,
            lang: self.lang.clone(),
        };
        let mut body = Vec::new();
        bind::nodes(p, &p.body, &mut scope, &mut body)?;
        let first_header = p.first_header.as_deref().unwrap_or(&p.rest_header);
        let first_footer = p.first_footer.as_deref().unwrap_or(&p.rest_footer);
        let mut first = master(p, first_header, first_footer, &mut scope)?;
        let rest = master(p, &p.rest_header, &p.rest_footer, &mut scope)?;
        if let Some(i) = self
            .masters
            .first
            .regions
            .iter()
            .position(|r| r.name == "window")
        {
            let mut window = Vec::new();
            bind::nodes(p, &p.window, &mut scope, &mut window)?;
            first.regions.push((i, window));
        }
        Ok(Document {
            meta,
            body,
            first,
            rest,
        })
    }
}

#[cfg(test)]
mod tests;
