//! The committer: writes shard output in input order, durably, and journals each shard.
//!
//! A shard is committed in three steps, each on disk before the next: its files (fsynced,
//! renamed, folder fsynced), its index lines (appended, fsynced), its journal record
//! (appended, fsynced). A crash between steps leaves an uncommitted shard that a resumed
//! run renders again; nothing committed is ever rewritten except to repair damage.

use std::path::{Path, PathBuf};

use super::journal::{CommitRecord, DOCUMENTS, EXCEPTIONS, Journal, WARNINGS};
use super::output::{FileDigest, JsonLines, OutputStore};
use super::shard::ShardOutput;
use super::{RunError, RunSummary};

/// Commits shard output to the output folder, in order.
pub struct Committer {
    dir: PathBuf,
    store: Box<dyn OutputStore>,
    index: JsonLines,
    exceptions: JsonLines,
    warnings: JsonLines,
    journal: Journal,
    /// Counts of the run so far.
    pub summary: RunSummary,
}

impl Committer {
    /// Opens the index files after the last kept commit (cutting off whatever an
    /// interrupted attempt wrote after it) and continues its counts.
    pub fn open(
        dir: &Path,
        store: Box<dyn OutputStore>,
        journal: Journal,
        last: Option<&CommitRecord>,
    ) -> Result<Self, RunError> {
        let err = |source| RunError::Output {
            path: dir.display().to_string(),
            source,
        };
        let end = |s: &super::output::Segment| s.offset + s.bytes;
        let (d, e, w) = last.map_or((0, 0, 0), |r| {
            (end(&r.documents), end(&r.exceptions), end(&r.warnings))
        });
        Ok(Self {
            dir: dir.to_path_buf(),
            store,
            index: JsonLines::open_at(&dir.join(DOCUMENTS), d).map_err(err)?,
            exceptions: JsonLines::open_at(&dir.join(EXCEPTIONS), e).map_err(err)?,
            warnings: JsonLines::open_at(&dir.join(WARNINGS), w).map_err(err)?,
            journal,
            summary: last.map(|r| r.totals.clone()).unwrap_or_default(),
        })
    }

    fn err(&self, source: std::io::Error) -> RunError {
        RunError::Output {
            path: self.dir.display().to_string(),
            source,
        }
    }

    /// Commits a shard: files, then index lines, then the journal record.
    pub fn commit(&mut self, out: ShardOutput, backend: &str) -> Result<CommitRecord, RunError> {
        self.store.put_all(&out.files).map_err(|e| self.err(e))?;
        let files: Vec<FileDigest> = out
            .files
            .iter()
            .map(|f| FileDigest::of(&f.name, &f.bytes))
            .collect();
        for d in &out.documents {
            self.index.write(d).map_err(|e| self.err(e))?;
        }
        for x in &out.exceptions {
            self.exceptions.write(x).map_err(|e| self.err(e))?;
        }
        for w in &out.warnings {
            self.warnings.write(w).map_err(|e| self.err(e))?;
        }
        let documents = self.index.commit_segment().map_err(|e| self.err(e))?;
        let exceptions = self.exceptions.commit_segment().map_err(|e| self.err(e))?;
        let warnings = self.warnings.commit_segment().map_err(|e| self.err(e))?;
        let s = &mut self.summary;
        s.records += out.records;
        s.documents += out.documents.len() as u64;
        s.rejected += out.exceptions.len() as u64;
        s.warnings += out.warnings.len() as u64;
        s.pages += out.pages;
        s.sheets += out.sheets;
        s.print_files += out
            .files
            .iter()
            .filter(|f| f.name.starts_with("print-"))
            .count() as u32;
        let record = CommitRecord {
            shard: out.shard,
            records: out.records,
            backend: backend.to_string(),
            files,
            documents,
            exceptions,
            warnings,
            totals: self.summary.clone(),
        };
        self.journal.append(&record).map_err(|e| self.err(e))?;
        Ok(record)
    }

    /// Rewrites the files of an already committed shard from a fresh rendering, after
    /// checking they are exactly the bytes the journal recorded.
    pub fn repair(&mut self, out: &ShardOutput, committed: &CommitRecord) -> Result<(), RunError> {
        let fresh: Vec<FileDigest> = out
            .files
            .iter()
            .map(|f| FileDigest::of(&f.name, &f.bytes))
            .collect();
        if fresh != committed.files {
            return Err(RunError::Diverged { shard: out.shard });
        }
        self.store.put_all(&out.files).map_err(|e| self.err(e))
    }
}
