//! Compose: one raw record → a laid-out, encoded document, or a rejection with a reason.
//! This is the whole per-document pipeline; workers, benchmarks and tests share it.

use crate::doc::DocMeta;
use crate::input::{RawData, RawRecord};
use serde_json::Value;

use crate::layout::frame::LaidOutDocument;
pub use crate::layout::limits::Limits;
use crate::layout::limits::{Budget, Exceeded};
use crate::layout::{Blame, LayoutContext, LayoutEnv, LayoutError, layout_document};
use crate::pdf::{EncodeScratch, EncodedDocument, PdfEnv, PdfOptions, encode_document};
use crate::template::{BindParams, FieldError, Template};

/// Per-thread state reused across documents.
#[derive(Default)]
pub struct Worker {
    pub layout: LayoutContext,
    pub encode: EncodeScratch,
    /// Bytes per document of the last print file, to size the next one's buffer.
    pub print_bytes_per_document: usize,
}

/// A record that could not become a document.
#[derive(Clone, Debug, PartialEq)]
pub struct Rejection {
    /// Dotted path of the offending field, empty when the whole record is at fault.
    pub field: String,
    pub reason: String,
}

impl From<FieldError> for Rejection {
    fn from(e: FieldError) -> Self {
        Rejection {
            field: e.path,
            reason: e.reason,
        }
    }
}

/// A composed document.
pub struct Composed {
    pub meta: DocMeta,
    pub laid_out: LaidOutDocument,
    pub warnings: Vec<String>,
}

/// Parses and validates a raw record against the template's declared fields.
pub fn parse_record(template: &Template, raw: &RawRecord) -> Result<serde_json::Value, Rejection> {
    let mut value = match &raw.data {
        RawData::Json(text) => {
            let v: serde_json::Value = serde_json::from_str(text).map_err(|e| Rejection {
                field: String::new(),
                reason: format!("malformed JSON: {e}"),
            })?;
            if !v.is_object() {
                return Err(Rejection {
                    field: String::new(),
                    reason: "a record must be a JSON object".into(),
                });
            }
            v
        }
        RawData::Csv { headers, row } => template.record_from_csv(headers, row)?,
        RawData::Unreadable(reason) => {
            return Err(Rejection {
                field: String::new(),
                reason: reason.clone(),
            });
        }
    };
    template.validate(&mut value)?;
    Ok(value)
}

/// Binds and lays out a parsed record; `structure` builds the tree tagged PDF needs.
///
/// A record whose document would exceed `limits` (more pages, or longer to compose) is
/// rejected as soon as that is known, naming the field at fault where one field made
/// most of the text of the paragraph (or the rows of the table) being laid out.
pub fn compose(
    template: &Template,
    record: &serde_json::Value,
    params: &BindParams,
    structure: bool,
    limits: &Limits,
    worker: &mut Worker,
) -> Result<Composed, Rejection> {
    let mut budget = Budget::new(limits);
    let doc = template.bind(record, params)?;
    budget
        .check_time()
        .map_err(|e| limit_rejection(record, e, &Blame::Unknown))?;
    let env = LayoutEnv {
        fonts: &template.fonts,
        images: &template.images,
        styles: &template.styles,
        masters: &template.masters,
        structure,
    };
    let laid_out = layout_document(&doc, &env, &mut budget, &mut worker.layout);
    // Warnings of a rejected document must not leak into the next one.
    let warnings = worker.layout.text.take_warnings();
    let laid_out = laid_out.map_err(|e| match e {
        LayoutError::Content(reason) => Rejection {
            field: String::new(),
            reason,
        },
        LayoutError::Limit { exceeded, at } => limit_rejection(record, exceeded, &at),
    })?;
    Ok(Composed {
        meta: doc.meta,
        laid_out,
        warnings,
    })
}

/// The rejection of a record that exceeded a limit: the field at fault when one field
/// of `record` made most of what `at` names, else no field (and the reason says so).
fn limit_rejection(record: &Value, exceeded: Exceeded, at: &Blame) -> Rejection {
    let field = match at {
        Blame::Unknown => None,
        Blame::Paragraph(text) => field_with_most_of(record, text),
        Blame::Table { rows } => array_of_len(record, *rows),
    };
    match field {
        Some(field) => Rejection {
            field,
            reason: exceeded.to_string(),
        },
        None => Rejection {
            field: String::new(),
            reason: format!("{exceeded} (no single field of the record is at fault)"),
        },
    }
}

/// Returns the path of the longest string in `record` that occurs in `text` and makes
/// at least half of it. Strings shorter than half the text are never compared, so the
/// search is linear in the size of the record and the text.
fn field_with_most_of(record: &Value, text: &str) -> Option<String> {
    let mut best: Option<(usize, String)> = None;
    let min = text.len().div_ceil(2).max(1);
    walk(record, &mut String::new(), &mut |path, v| {
        if let Value::String(s) = v
            && s.len() >= min
            && best.as_ref().is_none_or(|(n, _)| s.len() > *n)
            && text.contains(s.as_str())
        {
            best = Some((s.len(), path.to_string()));
        }
    });
    best.map(|(_, p)| p)
}

/// Returns the path of the only array in `record` with `len` elements, if exactly one has.
fn array_of_len(record: &Value, len: usize) -> Option<String> {
    let mut found: Vec<String> = Vec::new();
    walk(record, &mut String::new(), &mut |path, v| {
        if let Value::Array(a) = v
            && a.len() == len
            && !path.is_empty()
        {
            found.push(path.to_string());
        }
    });
    (found.len() == 1).then(|| found.remove(0))
}

/// Calls `f` with the path (`customer.name`, `transactions[3].amount`) and value of every
/// node of `v`, in document order.
fn walk(v: &Value, path: &mut String, f: &mut impl FnMut(&str, &Value)) {
    f(path, v);
    let len = path.len();
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                walk(child, path, f);
                path.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                use std::fmt::Write;
                let _ = write!(path, "[{i}]");
                walk(child, path, f);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// Encodes a composed document for a PDF file.
pub fn encode(
    template: &Template,
    composed: &Composed,
    opts: &PdfOptions,
    worker: &mut Worker,
) -> EncodedDocument {
    let env = PdfEnv {
        fonts: template.fonts.clone(),
        images: template.images.clone(),
    };
    encode_document(
        &composed.laid_out,
        &composed.meta,
        &env,
        opts,
        &mut worker.encode,
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::example_data::{self, Example};
    use crate::template::{CompileOptions, compile};

    fn statement() -> Template {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/statement");
        compile(&dir, &CompileOptions::default())
            .unwrap_or_else(|d| panic!("{d}"))
            .template
    }

    fn params() -> BindParams {
        BindParams {
            record_number: 1,
            run_date: "2026-11-23".into(),
        }
    }

    /// An example statement whose first transaction's description is one word of
    /// `n` characters (no two lines of it alike).
    fn with_long_description(n: usize) -> Value {
        let mut r = example_data::record(Example::Statement, 1, 0);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let word: String = (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (b'a' + (x % 26) as u8) as char
            })
            .collect();
        r["transactions"][0]["description"] = json!(word);
        r
    }

    fn compose_with(
        t: &Template,
        r: &Value,
        limits: &Limits,
        w: &mut Worker,
    ) -> Result<Composed, Rejection> {
        compose(t, r, &params(), true, limits, w)
    }

    #[test]
    fn a_record_with_a_100000_character_word_composes_and_encodes_with_linear_work() {
        let t = statement();
        let n = 100_000;
        let record = with_long_description(n);
        let mut worker = Worker::default();
        let doc = compose_with(&t, &record, &Limits::default(), &mut worker).unwrap();
        // The description column is narrow: the word fills dozens of pages.
        assert!(
            doc.laid_out.pages.len() > 20,
            "{}",
            doc.laid_out.pages.len()
        );
        let word = record["transactions"][0]["description"].as_str().unwrap();
        let mut found = String::new();
        let mut glyphs = 0;
        for page in &doc.laid_out.pages {
            for item in &page.items {
                if let crate::layout::frame::ItemKind::Text(r) = &item.kind {
                    glyphs += r.glyphs.len();
                    if r.text.bytes().all(|b| b.is_ascii_lowercase()) && r.text.len() > 8 {
                        found.push_str(&r.text);
                    }
                }
            }
        }
        assert_eq!(found, word, "the word's lines, in order, are the word");
        assert!(glyphs > n);
        // Work, not time: shaping is a small multiple of the text, as are lines and units.
        let shaped = worker.layout.text.shaper().shaped_glyphs();
        assert!(shaped < 10 * n as u64, "{shaped} glyphs shaped");
        let enc = encode(&t, &doc, &crate::pdf::PdfOptions::default(), &mut worker);
        assert_eq!(enc.page_count as usize, doc.laid_out.pages.len());
    }

    #[test]
    fn the_page_limit_rejects_a_record_and_names_the_field() {
        let t = statement();
        let record = with_long_description(100_000);
        let limits = Limits {
            max_pages: 3,
            ..Limits::default()
        };
        let mut worker = Worker::default();
        let r = compose_with(&t, &record, &limits, &mut worker)
            .err()
            .unwrap();
        assert_eq!(r.field, "transactions[0].description");
        assert!(r.reason.contains("more than 3 pages"), "{}", r.reason);
        // It stopped early: the word was measured whole (twice) but only three pages of
        // its lines were made; laying it all out shapes about five times its length.
        let shaped = worker.layout.text.shaper().shaped_glyphs();
        assert!(shaped < 250_000, "{shaped} glyphs shaped");
        // The same worker composes the next record normally.
        let ok = example_data::record(Example::Statement, 1, 1);
        let doc = compose_with(&t, &ok, &Limits::default(), &mut worker).unwrap();
        assert!(doc.warnings.is_empty(), "{:?}", doc.warnings);
    }

    #[test]
    fn the_page_limit_names_the_array_of_a_huge_table() {
        let t = statement();
        let mut record = example_data::record(Example::Statement, 1, 0);
        let tx = record["transactions"][0].clone();
        record["transactions"] = Value::Array(vec![tx; 3_000]);
        let limits = Limits {
            max_pages: 4,
            ..Limits::default()
        };
        let r = compose_with(&t, &record, &limits, &mut Worker::default())
            .err()
            .unwrap();
        assert_eq!(r.field, "transactions");
        assert!(r.reason.contains("more than 4 pages"), "{}", r.reason);
    }

    #[test]
    fn a_zero_time_limit_rejects_the_record_without_a_field() {
        let t = statement();
        let record = example_data::record(Example::Statement, 1, 0);
        let limits = Limits {
            max_compose_time: Duration::ZERO,
            ..Limits::default()
        };
        let r = compose_with(&t, &record, &limits, &mut Worker::default())
            .err()
            .unwrap();
        assert_eq!(r.field, "");
        assert!(r.reason.contains("time limit"), "{}", r.reason);
        assert!(r.reason.contains("no single field"), "{}", r.reason);
        // Within the default limits the same record composes.
        assert!(compose_with(&t, &record, &Limits::default(), &mut Worker::default()).is_ok());
    }

    /// A template that puts each element of `pages` on a page of its own.
    fn one_page_each() -> (tempfile::TempDir, Template) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("template.toml"),
            "[template]\nid = \"pages\"\nversion = \"1.0.0\"\n\n[fields]\npages = \"array<string>\"\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("body.xml"),
            "<document><body><for each=\"p in pages\"><p>{{ p }}</p><page-break/></for>\
             </body></document>",
        )
        .unwrap();
        let t = compile(dir.path(), &CompileOptions::default())
            .unwrap_or_else(|d| panic!("{d}"))
            .template;
        (dir, t)
    }

    #[test]
    fn a_record_over_the_default_page_limit_ends_in_the_exceptions_of_its_shard() {
        use crate::input::{RawData, RawRecord};
        use crate::run::shard::{OutputParams, render_shard};
        let (_dir, t) = one_page_each();
        let pages =
            |n: usize| json!({ "pages": (0..n).map(|i| format!("page {i}")).collect::<Vec<_>>() });
        // n elements make n + 1 pages (the last page break starts an empty page).
        let raws: Vec<RawRecord> = [pages(3), pages(2_000), pages(1_999)]
            .iter()
            .enumerate()
            .map(|(i, r)| RawRecord {
                number: i as u64 + 1,
                line: i as u64 + 1,
                data: RawData::Json(r.to_string()),
            })
            .collect();
        let out = render_shard(
            &t,
            0,
            &raws,
            &OutputParams::default(),
            &mut Worker::default(),
        );
        assert_eq!(out.documents.len(), 2);
        assert_eq!(out.exceptions.len(), 1);
        let e = &out.exceptions[0];
        assert_eq!((e.record, e.line), (2, 2));
        assert!(e.reason.contains("more than 2000 pages"), "{}", e.reason);
        assert_eq!(out.documents[1].pages, 2_000, "exactly the limit passes");
    }

    #[test]
    fn the_field_is_the_string_that_makes_most_of_the_text() {
        let record = json!({
            "a": { "short": "Ms", "name": "Zoë Q. Very-Long-Name" },
            "items": [{ "d": "x" }, { "d": "Zoë Q. Very-Long" }],
        });
        assert_eq!(
            field_with_most_of(&record, "Dear Ms Zoë Q. Very-Long-Name,").as_deref(),
            Some("a.name")
        );
        assert_eq!(
            field_with_most_of(&record, "Zoë Q. Very-Long, hello").as_deref(),
            Some("items[1].d")
        );
        assert_eq!(
            field_with_most_of(&record, "Nothing of the record here"),
            None
        );
        assert_eq!(
            field_with_most_of(&record, "Ms and many other words of a template"),
            None
        );
        assert_eq!(array_of_len(&record, 2).as_deref(), Some("items"));
        assert_eq!(array_of_len(&record, 5), None);
    }
}
