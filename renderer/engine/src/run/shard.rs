//! Shards: a batch of consecutive input records rendered as one unit of work.
//!
//! A shard's output (its print files, per-document PDFs, index lines, exceptions and
//! warnings) is a pure function of the template, the records and [`OutputParams`]; it is
//! built in memory and committed at once. The embedded run renders shards on worker
//! threads; a rendering farm renders the same shards on other machines. Both produce the
//! same bytes because both call [`render_shard`].

use serde::{Deserialize, Serialize};

use super::compose::{Rejection, Worker, compose, encode, parse_record};
use super::output::{print_file_name, sheets_for};
use crate::doc::DocMeta;
use crate::input::RawRecord;
use crate::pdf::{EncodedDocument, PdfEnv, PdfFileWriter, PdfOptions};
use crate::template::{BindParams, Template};

/// Run parameters that shape a shard's output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutputParams {
    /// Run date `YYYY-MM-DD`, visible to templates as `run.date`.
    pub run_date: String,
    /// Every document starts on a new sheet: a blank back follows an odd page count.
    pub duplex: bool,
    /// Cut a shard's print file after the document that reaches this many sheets.
    pub batch_sheets: Option<u32>,
    /// Cut a shard's print file after this many documents.
    #[serde(default)]
    pub batch_documents: Option<u32>,
    /// Write print files.
    pub print_files: bool,
    /// Write one tagged PDF per document.
    pub per_document: bool,
    /// Tag print files too.
    pub tagged_print: bool,
    /// Deflate level 1..=9.
    pub compression: u8,
    /// Per-record limits (pages, composition time): a record over them is rejected.
    #[serde(default)]
    pub limits: super::compose::Limits,
    /// Print production: the print documents go into the shard's spool file
    /// ([`crate::pdf::spool`]) for assembly into print jobs, instead of into print files.
    #[serde(default)]
    pub spool: bool,
}

impl OutputParams {
    /// Checks the parameters, as they arrive from a command line or over the wire.
    pub fn validate(&self) -> Result<(), String> {
        if crate::template::parse_date(&self.run_date).is_none() {
            return Err(format!(
                "run date {:?} is not a calendar date YYYY-MM-DD",
                self.run_date
            ));
        }
        if !(1..=9).contains(&self.compression) {
            return Err(format!("compression {} is outside 1..=9", self.compression));
        }
        if self.limits.max_pages == 0 || self.limits.max_compose_time.is_zero() {
            return Err("per-record limits must be above zero".into());
        }
        if self.batch_sheets == Some(0) || self.batch_documents == Some(0) {
            return Err("batch sizes must be at least 1".into());
        }
        if self.spool && (!self.print_files || self.tagged_print) {
            return Err(
                "print production needs print files, and tagged print jobs are not supported yet"
                    .into(),
            );
        }
        Ok(())
    }
}

impl Default for OutputParams {
    fn default() -> Self {
        Self {
            run_date: "1970-01-01".into(),
            duplex: false,
            batch_sheets: None,
            batch_documents: None,
            print_files: true,
            per_document: false,
            tagged_print: false,
            compression: 1,
            limits: super::compose::Limits::default(),
            spool: false,
        }
    }
}

/// One line of `documents.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DocumentEntry {
    pub record: u64,
    pub document_id: String,
    /// Print file name relative to the output folder (absent when print files are off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub print_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_page: Option<u32>,
    pub pages: u32,
    pub sheets: u32,
    /// SHA-256 of the document's content (see `pdf::EncodedDocument::content_hash`).
    pub sha256: String,
    /// Content hash of the template version the document was rendered with.
    pub template_sha256: String,
    /// Per-document PDF, relative to the output folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pdf: Option<String>,
    /// The spool file holding the encoded document, for print production.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spool: Option<String>,
}

/// One line of `exceptions.jsonl`: a record that did not become a document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExceptionEntry {
    pub record: u64,
    /// 1-based line in the input file.
    pub line: u64,
    /// Field path such as `transactions[3].amount`; empty when the whole record is at fault.
    pub field: String,
    pub reason: String,
    /// Content hash of the template version that rejected it.
    #[serde(default)]
    pub template_sha256: String,
}

/// One line of `warnings.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WarningEntry {
    pub record: u64,
    pub document_id: String,
    pub message: String,
}

/// A file a shard produced, relative to the output folder.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputFile {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// Everything a shard produced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ShardOutput {
    /// 0-based shard (batch) number.
    pub shard: u64,
    /// Records the shard held (documents + exceptions).
    pub records: u64,
    pub files: Vec<OutputFile>,
    pub documents: Vec<DocumentEntry>,
    pub exceptions: Vec<ExceptionEntry>,
    pub warnings: Vec<WarningEntry>,
    pub pages: u64,
    pub sheets: u64,
}

/// A render given up because its caller asked (the caller went away, the run ended).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the render was cancelled")]
pub struct Cancelled;

/// Renders shard `shard` (records in input order) into memory.
///
/// A record that panics the engine is rejected with the panic's message, never lost.
pub fn render_shard(
    template: &Template,
    shard: u64,
    records: &[RawRecord],
    params: &OutputParams,
    worker: &mut Worker,
) -> ShardOutput {
    render_shard_until(
        template,
        shard,
        records,
        params,
        worker,
        &std::sync::atomic::AtomicBool::new(false),
    )
    .expect("never cancelled")
}

/// Renders a shard like [`render_shard`], giving up between records once `cancel` is set.
pub fn render_shard_until(
    template: &Template,
    shard: u64,
    records: &[RawRecord],
    params: &OutputParams,
    worker: &mut Worker,
    cancel: &std::sync::atomic::AtomicBool,
) -> Result<ShardOutput, Cancelled> {
    let env = PdfEnv {
        fonts: template.fonts.clone(),
        images: template.images.clone(),
    };
    let print_opts = PdfOptions {
        tagged: params.tagged_print,
        compression: params.compression,
    };
    let mut out = ShardOutput {
        shard,
        records: records.len() as u64,
        ..ShardOutput::default()
    };
    let capacity = worker.print_bytes_per_document * records.len() * 11 / 10;
    let print_capacity = if params.spool { 0 } else { capacity };
    let mut print = PrintFile::new(shard, env.clone(), print_opts, template, print_capacity);
    let template_sha256 = hex::encode(template.content_hash);
    let spool_name = super::output::spool_file_name(shard);
    let mut spool = if params.spool {
        Vec::with_capacity(capacity)
    } else {
        Vec::new()
    };
    for raw in records {
        if cancel.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(Cancelled);
        }
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            document(template, raw, params, &env, worker)
        }));
        let result = result.unwrap_or_else(|panic| {
            *worker = Worker::default();
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            tracing::error!(record = raw.number, "internal error while composing: {msg}");
            Err(Rejection {
                field: String::new(),
                reason: format!("internal error: {msg}"),
            })
        });
        match result {
            Ok(doc) => {
                let pages = doc.pages;
                let mut entry = DocumentEntry {
                    record: raw.number,
                    document_id: doc.meta.id.clone(),
                    print_file: None,
                    first_page: None,
                    pages,
                    sheets: sheets_for(pages, params.duplex),
                    sha256: hex::encode(doc.content_hash),
                    template_sha256: template_sha256.clone(),
                    pdf: None,
                    spool: None,
                };
                if let (true, Some(enc)) = (params.spool, &doc.print) {
                    crate::pdf::spool::push_document(&mut spool, raw.number, enc);
                    entry.spool = Some(spool_name.clone());
                } else if let Some(enc) = &doc.print {
                    let full = params.batch_sheets.is_some_and(|m| print.sheets >= m)
                        || params
                            .batch_documents
                            .is_some_and(|m| print.documents >= m as usize);
                    if full {
                        print.finish_into(&mut out.files, worker);
                        print.next_part(template);
                    }
                    let first = print.writer.add_document(enc);
                    if params.duplex && pages % 2 == 1 {
                        print
                            .writer
                            .add_blank_page(doc.last_page.0, doc.last_page.1);
                    }
                    print.sheets += entry.sheets;
                    print.documents += 1;
                    entry.print_file = Some(print.name.clone());
                    entry.first_page = Some(first);
                }
                if let Some(bytes) = doc.pdf {
                    let name = format!(
                        "documents/{}.pdf",
                        super::output::file_stem(raw.number, &doc.meta.id)
                    );
                    entry.pdf = Some(name.clone());
                    out.files.push(OutputFile { name, bytes });
                }
                for message in doc.warnings {
                    out.warnings.push(WarningEntry {
                        record: raw.number,
                        document_id: doc.meta.id.clone(),
                        message,
                    });
                }
                out.pages += pages as u64;
                out.sheets += entry.sheets as u64;
                out.documents.push(entry);
            }
            Err(r) => out.exceptions.push(ExceptionEntry {
                record: raw.number,
                line: raw.line,
                field: r.field,
                reason: r.reason,
                template_sha256: template_sha256.clone(),
            }),
        }
    }
    print.finish_into(&mut out.files, worker);
    if !spool.is_empty() {
        if let Some(per) = spool.len().checked_div(out.documents.len()) {
            worker.print_bytes_per_document = per;
        }
        out.files.push(OutputFile {
            name: spool_name,
            bytes: spool,
        });
    }
    Ok(out)
}

/// A document of a shard, encoded.
struct ShardDocument {
    meta: DocMeta,
    pages: u32,
    last_page: (f32, f32),
    content_hash: [u8; 32],
    print: Option<EncodedDocument>,
    pdf: Option<Vec<u8>>,
    warnings: Vec<String>,
}

fn document(
    template: &Template,
    raw: &RawRecord,
    params: &OutputParams,
    env: &PdfEnv,
    worker: &mut Worker,
) -> Result<ShardDocument, Rejection> {
    let bind = BindParams {
        record_number: raw.number,
        run_date: params.run_date.clone(),
    };
    let value = parse_record(template, raw)?;
    let composed = compose(
        template,
        &value,
        &bind,
        params.tagged_print || params.per_document,
        &params.limits,
        worker,
    )?;
    let pages = composed.laid_out.pages.len() as u32;
    let last_page = composed
        .laid_out
        .pages
        .last()
        .map(|p| (p.width, p.height))
        .unwrap_or((595.0, 842.0));
    let print_opts = PdfOptions {
        tagged: params.tagged_print,
        compression: params.compression,
    };
    let doc_opts = PdfOptions {
        tagged: true,
        compression: params.compression,
    };
    let print = params
        .print_files
        .then(|| encode(template, &composed, &print_opts, worker));
    let mut content_hash = print.as_ref().map(|e| e.content_hash).unwrap_or_default();
    let pdf = if params.per_document {
        let own = if print.is_some() && params.tagged_print {
            None
        } else {
            Some(encode(template, &composed, &doc_opts, worker))
        };
        let enc = own
            .as_ref()
            .or(print.as_ref())
            .expect("one encoding exists");
        if print.is_none() {
            content_hash = enc.content_hash;
        }
        let mut w = PdfFileWriter::new(env.clone(), doc_opts);
        w.add_document(enc);
        Some(w.finish(&composed.meta))
    } else {
        None
    };
    Ok(ShardDocument {
        meta: composed.meta,
        pages,
        last_page,
        content_hash,
        print,
        pdf,
        warnings: composed.warnings,
    })
}

/// The print file being filled for a shard.
struct PrintFile {
    shard: u64,
    part: u32,
    name: String,
    writer: PdfFileWriter,
    env: PdfEnv,
    opts: PdfOptions,
    sheets: u32,
    documents: usize,
    meta: DocMeta,
}

impl PrintFile {
    fn new(
        shard: u64,
        env: PdfEnv,
        opts: PdfOptions,
        template: &Template,
        capacity: usize,
    ) -> Self {
        let name = print_file_name(shard, 0);
        let meta = DocMeta {
            id: name.clone(),
            title: format!("{} {} {name}", template.id, template.version),
            lang: "und".into(),
        };
        Self {
            shard,
            part: 0,
            writer: PdfFileWriter::with_capacity(env.clone(), opts, capacity),
            name,
            env,
            opts,
            sheets: 0,
            documents: 0,
            meta,
        }
    }

    fn next_part(&mut self, template: &Template) {
        let part = self.part + 1;
        *self = PrintFile::new(self.shard, self.env.clone(), self.opts, template, 0);
        self.part = part;
        self.name = print_file_name(self.shard, part);
        self.meta.id = self.name.clone();
        self.meta.title = format!("{} {} {}", template.id, template.version, self.name);
    }

    fn finish_into(&mut self, files: &mut Vec<OutputFile>, worker: &mut Worker) {
        if self.writer.page_count() == 0 {
            return;
        }
        let writer = std::mem::replace(
            &mut self.writer,
            PdfFileWriter::new(self.env.clone(), self.opts),
        );
        let bytes = writer.finish(&self.meta);
        if let Some(per) = bytes.len().checked_div(self.documents) {
            worker.print_bytes_per_document = per;
        }
        files.push(OutputFile {
            name: self.name.clone(),
            bytes,
        });
    }
}
