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

use crate::diag::{Diagnostic, Diagnostics};
use crate::doc::{DocMeta, Document, MasterContent};
use crate::image::ImageStore;
use crate::source::{FileKind, FolderSource, RelPath, Root, SourceError, TemplateSource};
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

/// Compiles the template folder `dir` (read through a [`FolderSource`]). Errors name
/// file, line and column.
pub fn compile(dir: &Path, opts: &CompileOptions) -> Result<Compiled, Diagnostics> {
    let mut src = FolderSource::open(dir, opts.fragments.as_deref()).map_err(|e| {
        let file = match &e {
            SourceError::BundleTooLarge { largest, .. } => PathBuf::from(largest),
            _ => dir.to_path_buf(),
        };
        Diagnostics(vec![Diagnostic::error(
            Some(crate::diag::SourceLocation {
                file,
                line: 1,
                column: 1,
            }),
            e.to_string(),
        )])
    })?;
    compile_source(&mut src)
}

/// Compiles a template from any [`TemplateSource`]: every file the compiler reads comes
/// from it, and the template's `content_hash` is the source's
/// [`content_hash`](TemplateSource::content_hash). A panic inside the compiler becomes an
/// error (a last line of defence: each one is a bug to fix).
pub fn compile_source(src: &mut dyn TemplateSource) -> Result<Compiled, Diagnostics> {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut diags = Diags::default();
        let template = compile_inner(src, &mut diags);
        (template, diags)
    }));
    let (result, mut diags) = match result {
        Ok(r) => r,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            return Err(Diagnostics(vec![Diagnostic::error(
                None,
                format!(
                    "the template compiler failed on this template ({what}); report it with the template attached"
                ),
            )]));
        }
    };
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

/// Reads a UTF-8 text file of the template (a leading byte-order mark is dropped).
fn read_source(
    src: &mut dyn TemplateSource,
    root: Root,
    path: &RelPath,
    diags: &mut Diags,
) -> Option<SourceFile> {
    let shown = src.describe(root, path);
    let text = src
        .read(root, path, FileKind::Text)
        .map_err(|e| e.to_string())
        .and_then(|bytes| {
            String::from_utf8(bytes)
                .map_err(|e| format!("it is not UTF-8 text ({e}); save it as UTF-8"))
        });
    match text {
        Ok(mut text) => {
            if text.starts_with('\u{feff}') {
                text.drain(..'\u{feff}'.len_utf8());
            }
            Some(SourceFile::new(shown, text))
        }
        Err(e) => {
            diags.error_in(&shown, format!("cannot read file: {e}"));
            None
        }
    }
}

/// Names a file of the template by a confined path, or reports why it cannot be one.
fn rel_path(
    file: &SourceFile,
    offset: usize,
    what: &str,
    path: &str,
    diags: &mut Diags,
) -> Option<RelPath> {
    match RelPath::new(path) {
        Ok(p) => Some(p),
        Err(e) => {
            diags.error(file, offset, format!("cannot read {what} '{path}': {e}"));
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

fn compile_inner(src: &mut dyn TemplateSource, diags: &mut Diags) -> Option<Template> {
    let toml_path = RelPath::new("template.toml").ok()?;
    let toml_file = read_source(src, Root::Template, &toml_path, diags)?;
    let m = manifest::parse(&toml_file, diags)?;
    if let Some(lib) = &m.fragments
        && Path::new(&lib.text).is_absolute()
    {
        diags.error_hint(
            &toml_file,
            lib.offset,
            "the fragment library must be a path relative to the template folder",
            Some(
                "use a relative path such as \"../fragments\", or pass the library to the compiler"
                    .into(),
            ),
        );
    }

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
    for decl in &m.fonts {
        let mut ids = [None; 4];
        for (i, face) in decl.faces.iter().enumerate() {
            let Some(face) = face else { continue };
            let Some(path) = rel_path(&toml_file, face.offset, "font", &face.text, diags) else {
                continue;
            };
            match src.read(Root::Template, &path, FileKind::Font) {
                Ok(bytes) => match book.add_font(bytes) {
                    Ok(id) => ids[i] = Some(id),
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

    let body_path = RelPath::new("body.xml").ok()?;
    let body_file = read_source(src, Root::Template, &body_path, diags)?;
    let mut images = ImageStore::default();
    let lib = FragmentLib::open(src.fragment_names(), src.root_name(Root::Fragments));
    let mut c = Compiler {
        diags,
        styles: &mut styles,
        exprs: &mut ex,
        images: &mut images,
        assets: BTreeMap::new(),
        src: &mut *src,
        lib,
        program: Program::default(),
    };
    match roxmltree::Document::parse(&body_file.text) {
        Ok(doc) => compile_document(&mut c, &body_file, doc.root_element()),
        Err(e) => compile::xml_error(c.diags, &body_file, &e),
    }
    let Compiler { program, .. } = c;

    let content_hash = match src.content_hash() {
        Ok(h) => h,
        Err(e) => {
            diags.error_in(
                &src.root_name(Root::Template),
                format!("cannot hash the template's files: {e}"),
            );
            return None;
        }
    };

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
            "back" => c.program.back = Some(c.blocks(f, n, &mut scope)),
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
    /// The identity of the files the template was compiled from: the
    /// [`ContentHasher`](crate::source::ContentHasher) hash of every file of the template
    /// folder and the fragment library, equal to the hash of the bundle made of them.
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

    /// The fixed back-of-page content (`<back>` in body.xml) as a template of its own: the
    /// same fonts, images and styles (so its pages can go into the same print file), laid
    /// out on the following-page master without header or footer, with no fields: it is
    /// bound once per run with `{}` and the run's parameters.
    pub fn back(&self) -> Option<Template> {
        let back = self.program.back.clone()?;
        let program = Program {
            body: back,
            first_header: Some(Vec::new()),
            first_footer: Some(Vec::new()),
            window: Vec::new(),
            rest_header: Vec::new(),
            rest_footer: Vec::new(),
            back: None,
            fragments: self.program.fragments.clone(),
        };
        let mut rest = self.masters.rest.clone();
        rest.regions.clear();
        Some(Template {
            id: self.id.clone(),
            version: self.version.clone(),
            fonts: self.fonts.clone(),
            images: self.images.clone(),
            styles: self.styles.clone(),
            masters: Arc::new(crate::style::PageMasters {
                first: rest.clone(),
                rest,
            }),
            content_hash: self.content_hash,
            lang: self.lang.clone(),
            title: Vec::new(),
            doc_id: Vec::new(),
            currency: Vec::new(),
            fields: Vec::new(),
            fmt: self.fmt.clone(),
            env: self.env.clone(),
            program: Arc::new(program),
        })
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
