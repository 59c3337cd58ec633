//! Runs: stream records through compose on every core and commit output in input order.
//!
//! The input is cut into shards of `batch_records` consecutive records. One thread reads
//! and cuts; N workers render whole shards ([`shard::render_shard`]) into memory; the
//! calling thread commits shards in order: files first (each written under a temporary
//! name and renamed), then the shard's lines of `documents.jsonl`, `exceptions.jsonl` and
//! `warnings.jsonl`. Channels are bounded, so memory depends on the shards in flight,
//! never on the size of the run (DESIGN.md invariant 5).

pub mod compose;
pub mod output;
pub mod pool;
pub mod shard;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::bounded;
use serde::Serialize;

use crate::input::{InputError, InputFormat, RawRecord, RecordReader};
use crate::template::Template;
use compose::Worker;
use output::JsonLines;
use shard::{OutputParams, ShardOutput, render_shard};

/// Options of a run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub data: PathBuf,
    pub format: Option<InputFormat>,
    pub out: PathBuf,
    /// Records per shard: one print file per shard of consecutive input records.
    pub batch_records: u64,
    /// Worker threads (0 = one per core).
    pub threads: usize,
    /// Stop after this many records.
    pub limit: Option<u64>,
    /// What shapes the output's bytes.
    pub output: OutputParams,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            data: PathBuf::new(),
            format: None,
            out: PathBuf::from("out"),
            batch_records: 1000,
            threads: 0,
            limit: None,
            output: OutputParams::default(),
        }
    }
}

/// Counts of a finished run. `records == documents + rejected` always holds.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
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

/// Progress: records composed so far (updated by workers, per record) and committed.
#[derive(Clone, Copy, Debug, Default)]
pub struct Progress {
    pub composed: u64,
    pub records: u64,
    pub documents: u64,
    pub pages: u64,
    pub rejected: u64,
}

/// Runs `template` over the records in `opts.data`, writing into `opts.out`.
/// `progress` is called after every committed shard.
pub fn run(
    template: Arc<Template>,
    opts: &RunOptions,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<RunSummary, RunError> {
    if !opts.output.print_files && !opts.output.per_document {
        return Err(RunError::NothingToWrite);
    }
    let started = Instant::now();
    let out_err = |source: std::io::Error| RunError::Output {
        path: opts.out.display().to_string(),
        source,
    };
    std::fs::create_dir_all(&opts.out).map_err(out_err)?;
    if opts.output.per_document {
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
    let (shard_tx, shard_rx) = bounded::<(u64, Vec<RawRecord>)>(threads);
    let (result_tx, result_rx) = bounded::<ShardOutput>(threads);
    let limit = opts.limit.unwrap_or(u64::MAX);
    let size = opts.batch_records.max(1) as usize;
    let composed = AtomicU64::new(0);

    std::thread::scope(|s| -> Result<RunSummary, RunError> {
        let reader_handle = s.spawn(move || -> Result<(), InputError> {
            let mut shard = 0;
            let mut records = Vec::with_capacity(size.min(4096));
            for raw in reader {
                let raw = raw?;
                if raw.number > limit {
                    break;
                }
                records.push(raw);
                if records.len() == size {
                    let full = std::mem::replace(&mut records, Vec::with_capacity(size.min(4096)));
                    if shard_tx.send((shard, full)).is_err() {
                        return Ok(());
                    }
                    shard += 1;
                }
            }
            if !records.is_empty() {
                let _ = shard_tx.send((shard, records));
            }
            Ok(())
        });
        for _ in 0..threads {
            let rx = shard_rx.clone();
            let tx = result_tx.clone();
            let template = template.clone();
            let params = opts.output.clone();
            let composed = &composed;
            s.spawn(move || {
                let mut worker = Worker::default();
                for (id, records) in rx {
                    let out = render_shard(&template, id, &records, &params, &mut worker);
                    composed.fetch_add(records.len() as u64, Ordering::Relaxed);
                    if tx.send(out).is_err() {
                        return;
                    }
                }
            });
        }
        drop(result_tx);
        drop(shard_rx);

        let mut commit = Committer::create(opts)?;
        let mut pending: BTreeMap<u64, ShardOutput> = BTreeMap::new();
        let mut next = 0u64;
        let mut failed = None;
        for out in result_rx {
            pending.insert(out.shard, out);
            while let Some(out) = pending.remove(&next) {
                next += 1;
                if failed.is_none()
                    && let Err(e) = commit.shard(out)
                {
                    failed = Some(e);
                }
                let s = &commit.summary;
                progress(Progress {
                    composed: composed.load(Ordering::Relaxed),
                    records: s.records,
                    documents: s.documents,
                    pages: s.pages,
                    rejected: s.rejected,
                });
            }
        }
        let read = reader_handle
            .join()
            .map_err(|_| RunError::Worker("the reader panicked".into()))?;
        if let Some(e) = failed {
            return Err(e);
        }
        read?;
        if !pending.is_empty() {
            return Err(RunError::Worker(format!(
                "{} shards never came back from the workers",
                pending.len()
            )));
        }
        let mut summary = commit.finish()?;
        summary.elapsed = started.elapsed();
        Ok(summary)
    })
}

/// Where a run's index files ended after a committed shard, and the counts then.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
pub struct Checkpoint {
    pub documents_len: u64,
    pub exceptions_len: u64,
    pub warnings_len: u64,
    pub summary: RunSummary,
}

/// Commits shard output to the output folder, in order.
pub struct Committer {
    dir: PathBuf,
    store: Box<dyn output::OutputStore>,
    index: JsonLines,
    exceptions: JsonLines,
    warnings: JsonLines,
    pub summary: RunSummary,
}

impl Committer {
    /// Reopens the index files of a run at a checkpoint, with the counts it had then.
    pub fn resume(opts: &RunOptions, at: &Checkpoint) -> Result<Self, RunError> {
        let out_err = |source: std::io::Error| RunError::Output {
            path: opts.out.display().to_string(),
            source,
        };
        Ok(Self {
            dir: opts.out.clone(),
            store: Box::new(output::LocalDir(opts.out.clone())),
            index: JsonLines::open_at(&opts.out.join("documents.jsonl"), at.documents_len)
                .map_err(out_err)?,
            exceptions: JsonLines::open_at(&opts.out.join("exceptions.jsonl"), at.exceptions_len)
                .map_err(out_err)?,
            warnings: JsonLines::open_at(&opts.out.join("warnings.jsonl"), at.warnings_len)
                .map_err(out_err)?,
            summary: at.summary.clone(),
        })
    }

    /// Flushes the index files and returns where they end: a point to resume from.
    pub fn checkpoint(&mut self) -> Result<Checkpoint, RunError> {
        let err = |source: std::io::Error| RunError::Output {
            path: self.dir.display().to_string(),
            source,
        };
        self.index.flush().map_err(err)?;
        self.exceptions.flush().map_err(err)?;
        self.warnings.flush().map_err(err)?;
        Ok(Checkpoint {
            documents_len: self.index.len(),
            exceptions_len: self.exceptions.len(),
            warnings_len: self.warnings.len(),
            summary: self.summary.clone(),
        })
    }

    /// Creates (truncates) the index files in `opts.out`.
    pub fn create(opts: &RunOptions) -> Result<Self, RunError> {
        let out_err = |source: std::io::Error| RunError::Output {
            path: opts.out.display().to_string(),
            source,
        };
        Ok(Self {
            dir: opts.out.clone(),
            store: Box::new(output::LocalDir(opts.out.clone())),
            index: JsonLines::create(&opts.out.join("documents.jsonl")).map_err(out_err)?,
            exceptions: JsonLines::create(&opts.out.join("exceptions.jsonl")).map_err(out_err)?,
            warnings: JsonLines::create(&opts.out.join("warnings.jsonl")).map_err(out_err)?,
            summary: RunSummary::default(),
        })
    }

    /// Sends the shard files to another store (the index files stay in the output folder).
    pub fn with_store(mut self, store: Box<dyn output::OutputStore>) -> Self {
        self.store = store;
        self
    }

    /// Writes a shard's files (atomically, each) and then its index lines.
    pub fn shard(&mut self, out: ShardOutput) -> Result<(), RunError> {
        let err = |source: std::io::Error| RunError::Output {
            path: self.dir.display().to_string(),
            source,
        };
        for f in &out.files {
            self.store.put(&f.name, &f.bytes).map_err(err)?;
            if f.name.starts_with("print-") {
                self.summary.print_files += 1;
            }
        }
        // Documents and exceptions interleave by record number, as in the input.
        for d in &out.documents {
            self.index.write(d).map_err(err)?;
        }
        for e in &out.exceptions {
            self.exceptions.write(e).map_err(err)?;
        }
        for w in &out.warnings {
            self.warnings.write(w).map_err(err)?;
        }
        let s = &mut self.summary;
        s.records += out.records;
        s.documents += out.documents.len() as u64;
        s.rejected += out.exceptions.len() as u64;
        s.warnings += out.warnings.len() as u64;
        s.pages += out.pages;
        s.sheets += out.sheets;
        Ok(())
    }

    /// Flushes the index files and returns the counts.
    pub fn finish(mut self) -> Result<RunSummary, RunError> {
        let err = |source: std::io::Error| RunError::Output {
            path: self.dir.display().to_string(),
            source,
        };
        self.index.flush().map_err(err)?;
        self.exceptions.flush().map_err(err)?;
        self.warnings.flush().map_err(err)?;
        Ok(self.summary)
    }
}
