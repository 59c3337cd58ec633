//! Templates: a folder of plain-text files compiled once into a checked program
//! ([`Template`]) that `bind` evaluates per record.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::diag::{Diagnostic, Diagnostics};
use crate::doc::Document;
use crate::image::ImageStore;
use crate::style::{PageMasters, StyleSheet};
use crate::text::font::FontBook;

/// Options for [`compile`].
#[derive(Clone, Debug, Default)]
pub struct CompileOptions {
    /// Fragment library folder; overrides the manifest's `fragments` path.
    pub fragments: Option<PathBuf>,
}

/// A compiled template with the warnings compilation produced.
pub struct Compiled {
    pub template: Template,
    pub warnings: Vec<Diagnostic>,
}

/// Compiles the template in `dir`. Errors name file, line and column.
pub fn compile(dir: &Path, opts: &CompileOptions) -> Result<Compiled, Diagnostics> {
    let _ = (dir, opts);
    todo!("template stage")
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
}

impl Template {
    /// Checks a JSON record against the declared fields.
    pub fn validate(&self, record: &serde_json::Value) -> Result<(), FieldError> {
        let _ = record;
        todo!("template stage")
    }
    /// Converts a CSV row (with its header) into a record typed by the declared fields.
    pub fn record_from_csv(
        &self,
        headers: &[String],
        row: &[String],
    ) -> Result<serde_json::Value, FieldError> {
        let _ = (headers, row);
        todo!("template stage")
    }
    /// Binds a validated record into a document.
    pub fn bind(
        &self,
        record: &serde_json::Value,
        params: &BindParams,
    ) -> Result<Document, FieldError> {
        let _ = (record, params);
        todo!("template stage")
    }
}
