//! Runs: stream records through compose on every core and write ordered output.
//!
//! Threads: one reader splits the input into chunks; N workers parse, validate, bind,
//! lay out and encode; the calling thread puts results back in input order and writes
//! print files, the document index and exceptions. Channels are bounded, so memory
//! depends on the chunks in flight, never on the size of the run (DESIGN.md invariant 5).

pub mod compose;
pub mod output;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::bounded;
use serde::Serialize;

use crate::input::{InputError, InputFormat, RawRecord, RecordReader};
use crate::pdf::{PdfEnv, PdfFileWriter, PdfOptions};
use crate::template::{BindParams, Template};
use compose::{Rejection, Worker, compose, encode, parse_record};
use output::{
    Batching, ExceptionEntry, IndexEntry, JsonLines, PrintFiles, WarningEntry, file_stem,
    sheets_for, write_atomically,
};

/// Options of a run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub data: PathBuf,
    pub format: Option<InputFormat>,
    pub out: PathBuf,
    /// Records per batch: one print file per batch of consecutive input records.
    pub batch_records: u64,
    /// Sheets per print file (a batch is cut after the document that reaches it).
    pub batch_sheets: Option<u32>,
    pub duplex: bool,
    /// Write print files (concatenated documents).
    pub print_files: bool,
    /// Write one tagged PDF per document under `documents/`.
    pub per_document: bool,
    /// Tag print files too (per-document PDFs are always tagged).
    pub tagged_print: bool,
    /// Worker threads (0 = one per core).
    pub threads: usize,
    /// Stop after this many records.
    pub limit: Option<u64>,
    /// Run date `YYYY-MM-DD`, visible to templates as `run.date`.
    pub run_date: String,
    /// Deflate level 1..=9.
    pub compression: u8,
    /// Records per work unit handed to a worker.
    pub chunk_size: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            data: PathBuf::new(),
            format: None,
            out: PathBuf::from("out"),
            batch_records: 1000,
            batch_sheets: None,
            duplex: false,
            print_files: true,
            per_document: false,
            tagged_print: false,
            threads: 0,
            limit: None,
            run_date: "1970-01-01".into(),
            compression: 1,
            chunk_size: 16,
        }
    }
}

/// Counts of a finished run. `records == documents + rejected` always holds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunSummary {
    pub records: u64,
    pub documents: u64,
    pub pages: u64,
    pub sheets: u64,
    pub rejected: u64,
    pub warnings: u64,
    pub print_files: u32,
    #[serde(skip)]
    pub elapsed: Duration,
}

impl RunSummary {
    /// Pages per second of wall time.
    pub fn pages_per_second(&self) -> f64 {
        self.pages as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The one-line summary printed at the end of a run.
    pub fn line(&self) -> String {
        format!(
            "records {} · documents {} · pages {} · sheets {} · rejected {} · warnings {} · {:.1} s · {:.0} pages/s",
            self.records,
            self.documents,
            self.pages,
            self.sheets,
            self.rejected,
            self.warnings,
            self.elapsed.as_secs_f64(),
            self.pages_per_second()
        )
    }
}

/// A run that could not go on (unreadable input, unwritable output). Bad records are
/// not errors: they are rejected and the run goes on.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("cannot write output in {path}: {source}")]
    Output {
        path: String,
        source: std::io::Error,
    },
    #[error("nothing to write: enable print files or per-document PDFs")]
    NothingToWrite,
    #[error("a worker thread failed: {0}")]
    Worker(String),
}

struct Chunk {
    seq: u64,
    records: Vec<RawRecord>,
}

enum Outcome {
    Document {
        record: u64,
        meta: crate::doc::DocMeta,
        encoded: Option<crate::pdf::EncodedDocument>,
        content_hash: [u8; 32],
        pages: u32,
        last_page: (f32, f32),
        pdf: Option<String>,
        warnings: Vec<String>,
    },
    Rejected {
        record: u64,
        line: u64,
        rejection: Rejection,
    },
}

/// Progress reported after every chunk.
#[derive(Clone, Copy, Debug, Default)]
pub struct Progress {
    pub records: u64,
    pub documents: u64,
    pub pages: u64,
    pub rejected: u64,
}

/// Runs `template` over the records in `opts.data`, writing into `opts.out`.
pub fn run(
    template: Arc<Template>,
    opts: &RunOptions,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<RunSummary, RunError> {
    if !opts.print_files && !opts.per_document {
        return Err(RunError::NothingToWrite);
    }
    let started = Instant::now();
    let out_err = |source: std::io::Error| RunError::Output {
        path: opts.out.display().to_string(),
        source,
    };
    std::fs::create_dir_all(&opts.out).map_err(out_err)?;
    if opts.per_document {
        std::fs::create_dir_all(opts.out.join("documents")).map_err(out_err)?;
    }
    let reader = RecordReader::open(&opts.data, opts.format)?;
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        opts.threads
    };
    let (chunk_tx, chunk_rx) = bounded::<Chunk>(threads * 2);
    let (result_tx, result_rx) = bounded::<(u64, Vec<Outcome>)>(threads * 2);
    let limit = opts.limit.unwrap_or(u64::MAX);
    let chunk_size = opts.chunk_size.max(1);

    std::thread::scope(|s| -> Result<RunSummary, RunError> {
        let reader_handle = s.spawn(move || -> Result<(), InputError> {
            let mut seq = 0;
            let mut records = Vec::with_capacity(chunk_size);
            for raw in reader {
                let raw = raw?;
                if raw.number > limit {
                    break;
                }
                records.push(raw);
                if records.len() == chunk_size {
                    let full = std::mem::replace(&mut records, Vec::with_capacity(chunk_size));
                    if chunk_tx.send(Chunk { seq, records: full }).is_err() {
                        return Ok(());
                    }
                    seq += 1;
                }
            }
            if !records.is_empty() {
                let _ = chunk_tx.send(Chunk { seq, records });
            }
            Ok(())
        });
        for _ in 0..threads {
            let rx = chunk_rx.clone();
            let tx = result_tx.clone();
            let template = template.clone();
            let opts = opts.clone();
            s.spawn(move || {
                let mut worker = Worker::default();
                for chunk in rx {
                    let outcomes = chunk
                        .records
                        .into_iter()
                        .map(|raw| process_isolated(&template, &opts, raw, &mut worker))
                        .collect();
                    if tx.send((chunk.seq, outcomes)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(result_tx);
        drop(chunk_rx);

        let result = write_results(&template, opts, result_rx, progress);
        let read = reader_handle
            .join()
            .map_err(|_| RunError::Worker("the reader panicked".into()))?;
        let mut summary = result?;
        read?;
        summary.elapsed = started.elapsed();
        Ok(summary)
    })
}

/// Processes a record; a panic in the engine rejects the record (with the panic's
/// message) instead of losing it, and the worker's scratch state is rebuilt.
fn process_isolated(
    template: &Template,
    opts: &RunOptions,
    raw: RawRecord,
    worker: &mut Worker,
) -> Outcome {
    let (record, line) = (raw.number, raw.line);
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        process(template, opts, raw, worker)
    })) {
        Ok(outcome) => outcome,
        Err(panic) => {
            *worker = Worker::default();
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            tracing::error!(record, "internal error while composing: {msg}");
            Outcome::Rejected {
                record,
                line,
                rejection: Rejection {
                    field: String::new(),
                    reason: format!("internal error: {msg}"),
                },
            }
        }
    }
}

fn process(template: &Template, opts: &RunOptions, raw: RawRecord, worker: &mut Worker) -> Outcome {
    let (record, line) = (raw.number, raw.line);
    let params = BindParams {
        record_number: record,
        run_date: opts.run_date.clone(),
    };
    let composed =
        match parse_record(template, &raw).and_then(|v| compose(template, &v, &params, worker)) {
            Ok(c) => c,
            Err(rejection) => {
                return Outcome::Rejected {
                    record,
                    line,
                    rejection,
                };
            }
        };
    let last_page = composed
        .laid_out
        .pages
        .last()
        .map(|p| (p.width, p.height))
        .unwrap_or((595.0, 842.0));
    let pages = composed.laid_out.pages.len() as u32;
    let print_opts = PdfOptions {
        tagged: opts.tagged_print,
        compression: opts.compression,
    };
    let encoded = opts
        .print_files
        .then(|| encode(template, &composed, &print_opts, worker));
    let mut content_hash = encoded.as_ref().map(|e| e.content_hash).unwrap_or_default();
    let mut pdf = None;
    if opts.per_document {
        let doc_opts = PdfOptions {
            tagged: true,
            compression: opts.compression,
        };
        let single = if encoded.is_some() && opts.tagged_print {
            None
        } else {
            Some(encode(template, &composed, &doc_opts, worker))
        };
        let enc = single
            .as_ref()
            .or(encoded.as_ref())
            .expect("one encoding exists");
        if encoded.is_none() {
            content_hash = enc.content_hash;
        }
        let env = PdfEnv {
            fonts: template.fonts.clone(),
            images: template.images.clone(),
        };
        let mut w = PdfFileWriter::new(env, doc_opts);
        w.add_document(enc);
        let bytes = w.finish(&composed.meta);
        let name = format!("documents/{}.pdf", file_stem(record, &composed.meta.id));
        if let Err(e) = write_atomically(&opts.out.join(&name), &bytes) {
            return Outcome::Rejected {
                record,
                line,
                rejection: Rejection {
                    field: String::new(),
                    reason: format!("cannot write {name}: {e}"),
                },
            };
        }
        pdf = Some(name);
    }
    Outcome::Document {
        record,
        meta: composed.meta,
        encoded,
        content_hash,
        pages,
        last_page,
        pdf,
        warnings: composed.warnings,
    }
}

fn write_results(
    template: &Template,
    opts: &RunOptions,
    results: crossbeam_channel::Receiver<(u64, Vec<Outcome>)>,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<RunSummary, RunError> {
    let out_err = |source: std::io::Error| RunError::Output {
        path: opts.out.display().to_string(),
        source,
    };
    let mut index = JsonLines::create(&opts.out.join("documents.jsonl")).map_err(out_err)?;
    let mut exceptions = JsonLines::create(&opts.out.join("exceptions.jsonl")).map_err(out_err)?;
    let mut warnings = JsonLines::create(&opts.out.join("warnings.jsonl")).map_err(out_err)?;
    let env = PdfEnv {
        fonts: template.fonts.clone(),
        images: template.images.clone(),
    };
    let batching = Batching {
        records: opts.batch_records.max(1),
        max_sheets: opts.batch_sheets,
        duplex: opts.duplex,
    };
    let title = format!("{} {} print file", template.id, template.version);
    let print_opts = PdfOptions {
        tagged: opts.tagged_print,
        compression: opts.compression,
    };
    let mut files = PrintFiles::new(&opts.out, env, print_opts, batching, title, "und".into());
    let mut summary = RunSummary::default();
    let mut pending: BTreeMap<u64, Vec<Outcome>> = BTreeMap::new();
    let mut next = 0u64;
    for (seq, outcomes) in results {
        pending.insert(seq, outcomes);
        while let Some(outcomes) = pending.remove(&next) {
            next += 1;
            for outcome in outcomes {
                summary.records += 1;
                match outcome {
                    Outcome::Document {
                        record,
                        meta,
                        encoded,
                        content_hash,
                        pages,
                        last_page,
                        pdf,
                        warnings: w,
                    } => {
                        let (file, first_page, sheets) = match &encoded {
                            Some(enc) => {
                                let p = files.add(record, enc, last_page).map_err(out_err)?;
                                (Some(p.file), Some(p.first_page), p.sheets)
                            }
                            None => (None, None, sheets_for(pages, opts.duplex)),
                        };
                        let entry = IndexEntry {
                            record,
                            document_id: &meta.id,
                            print_file: file.as_deref(),
                            first_page,
                            pages,
                            sheets,
                            sha256: hex::encode(content_hash),
                            pdf: pdf.as_deref(),
                        };
                        index.write(&entry).map_err(out_err)?;
                        for message in &w {
                            warnings
                                .write(&WarningEntry {
                                    record,
                                    document_id: &meta.id,
                                    message,
                                })
                                .map_err(out_err)?;
                        }
                        summary.documents += 1;
                        summary.pages += pages as u64;
                        summary.sheets += sheets as u64;
                        summary.warnings += w.len() as u64;
                    }
                    Outcome::Rejected {
                        record,
                        line,
                        rejection,
                    } => {
                        exceptions
                            .write(&ExceptionEntry {
                                record,
                                line,
                                field: &rejection.field,
                                reason: &rejection.reason,
                            })
                            .map_err(out_err)?;
                        summary.rejected += 1;
                    }
                }
            }
            progress(Progress {
                records: summary.records,
                documents: summary.documents,
                pages: summary.pages,
                rejected: summary.rejected,
            });
        }
    }
    if !pending.is_empty() {
        return Err(RunError::Worker(format!(
            "{} chunks of records never came back from the workers",
            pending.len()
        )));
    }
    files.close().map_err(out_err)?;
    summary.print_files = files.files_written;
    index.flush().map_err(out_err)?;
    exceptions.flush().map_err(out_err)?;
    warnings.flush().map_err(out_err)?;
    Ok(summary)
}
