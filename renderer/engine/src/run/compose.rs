//! Compose: one raw record → a laid-out, encoded document, or a rejection with a reason.
//! This is the whole per-document pipeline; workers, benchmarks and tests share it.

use crate::doc::DocMeta;
use crate::input::{RawData, RawRecord};
use crate::layout::frame::LaidOutDocument;
use crate::layout::{LayoutContext, LayoutEnv, layout_document};
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
pub fn compose(
    template: &Template,
    record: &serde_json::Value,
    params: &BindParams,
    structure: bool,
    worker: &mut Worker,
) -> Result<Composed, Rejection> {
    let doc = template.bind(record, params)?;
    let env = LayoutEnv {
        fonts: &template.fonts,
        images: &template.images,
        styles: &template.styles,
        masters: &template.masters,
        structure,
    };
    let laid_out = layout_document(&doc, &env, &mut worker.layout).map_err(|e| Rejection {
        field: String::new(),
        reason: e.0,
    })?;
    let warnings = worker.layout.text.take_warnings();
    Ok(Composed {
        meta: doc.meta,
        laid_out,
        warnings,
    })
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
