//! Runs: a template over every record of an input, committed durably into an output
//! folder the run owns. One entry point, [`run`], serves the in-process run and the
//! node-backed run alike; only the [`Backend`]s differ.
//!
//! 1. [`folder`]: the run's identity names it; it locks its output folder for its whole
//!    life and refuses a folder holding another or a finished run unless told to replace it;
//! 2. [`journal`]: a resumed run verifies every committed file and index segment against
//!    the journal and repairs what was damaged;
//! 3. [`schedule`]: shards are cut, rendered on the backends within a bounded window, and
//!    committed in input order, exactly once, by [`commit`];
//! 4. the run ends by writing `summary.json` and its final state in `run.json`.
//!
//! A shard's output ([`shard::render_shard`]) is a pure function of the template, its
//! records and [`shard::OutputParams`], so any backend produces the same bytes.

pub mod answer;
pub mod backend;
pub mod commit;
pub mod compose;
pub mod folder;
pub mod journal;
pub mod output;
pub mod pool;
pub mod schedule;
pub mod shard;
#[cfg(test)]
mod tests;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use backend::{Backend, BackendError, LocalBackend, ShardWork};
pub use folder::{FolderError, RunIdentity, RunStatus};
pub use journal::CommitRecord;

use crate::input::{InputError, InputFormat, RecordReader};
use crate::template::Template;
use folder::{Claim, OwnedFolder};
use journal::Journal;
use output::LocalDir;
use shard::OutputParams;

/// The engine's build (version and source commit), part of every run's identity and
/// recorded in every `summary.json`; renderer nodes report theirs and must match.
pub const ENGINE_BUILD: &str = concat!(
    "pressrun-engine ",
    env!("CARGO_PKG_VERSION"),
    " ",
    env!("PRESSRUN_ENGINE_COMMIT")
);

/// What a run renders, where, and how.
#[derive(Clone, Debug)]
pub struct RunSpec {
    pub data: PathBuf,
    pub format: Option<InputFormat>,
    pub out: PathBuf,
    /// Records per shard: one print file per shard of consecutive input records.
    pub batch_records: u64,
    /// Stop after this many records.
    pub limit: Option<u64>,
    /// What shapes the output's bytes.
    pub output: OutputParams,
    /// Remove the outputs of another (or a finished) run in the folder first.
    pub replace: bool,
    /// Shards that may be rendered ahead of the commit point (0 = twice the backend slots).
    pub window: usize,
    /// Attempts before one shard fails the run.
    pub max_attempts: u32,
    /// Who ran it (`renderer render`, `dispatcher run`, …), recorded in `summary.json`.
    pub runner: String,
    /// Largest record read; a longer one is rejected as unreadable (the run goes on).
    pub max_record_bytes: usize,
    /// The run fails (resumably) when no backend has been healthy for this long.
    pub unavailable: Duration,
    /// Print production: assemble print jobs with this profile once every shard is
    /// committed (the shards then spool their documents: `output.spool`).
    pub production: Option<Arc<crate::production::Profile>>,
    /// Print jobs written at once during assembly (0 = one per core).
    pub assemble_threads: usize,
}

impl Default for RunSpec {
    fn default() -> Self {
        Self {
            data: PathBuf::new(),
            format: None,
            out: PathBuf::from("out"),
            batch_records: 1000,
            limit: None,
            output: OutputParams::default(),
            replace: false,
            window: 0,
            max_attempts: 8,
            runner: "pressrun-engine".into(),
            max_record_bytes: crate::input::MAX_RECORD_BYTES,
            unavailable: Duration::from_secs(600),
            production: None,
            assemble_threads: 0,
        }
    }
}

/// Counts of a run. `records == documents + rejected` always holds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub records: u64,
    pub documents: u64,
    pub pages: u64,
    pub sheets: u64,
    pub rejected: u64,
    pub warnings: u64,
    pub print_files: u32,
}

/// A finished (or stopped) run.
#[derive(Clone, Debug)]
pub struct RunReport {
    pub run_id: String,
    pub status: RunStatus,
    /// The canonical output folder.
    pub out: PathBuf,
    pub summary: RunSummary,
    /// Shards committed by an earlier attempt and kept.
    pub resumed_shards: u64,
    /// Problems found in committed output and repaired.
    pub repaired: Vec<String>,
    pub input_sha256: String,
    pub elapsed: Duration,
    /// What assembly did (print production runs).
    pub production: Option<crate::assemble::AssembleReport>,
}

impl RunReport {
    /// Pages per second of wall time.
    pub fn pages_per_second(&self) -> f64 {
        self.summary.pages as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The one-line summary printed at the end of a run.
    pub fn line(&self) -> String {
        let s = &self.summary;
        format!(
            "run {} {} · records {} · documents {} · pages {} · sheets {} · rejected {} · warnings {} · {:.1} s · {:.0} pages/s",
            self.run_id,
            self.status.as_str(),
            s.records,
            s.documents,
            s.pages,
            s.sheets,
            s.rejected,
            s.warnings,
            self.elapsed.as_secs_f64(),
            self.pages_per_second()
        )
    }
}

/// A run that could not go on. Bad records are not errors: they are rejected and the
/// run goes on.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Folder(#[from] FolderError),
    #[error("cannot write output in {path}: {source}")]
    Output {
        path: String,
        source: std::io::Error,
    },
    #[error("nothing to write: enable print files or per-document PDFs")]
    NothingToWrite,
    #[error("invalid run parameters: {0}")]
    Params(String),
    #[error("no backend can render: give at least one render thread or renderer node")]
    NoBackend,
    #[error(
        "no renderer has been reachable for {seconds} s: start or fix the nodes, then run the same command again to resume"
    )]
    Unavailable { seconds: u64 },
    #[error("shard {shard} failed {attempts} times, last on {backend}: {error}")]
    ShardFailed {
        shard: u64,
        attempts: u32,
        backend: String,
        error: BackendError,
    },
    #[error(
        "shard {shard} rendered again differs from what was committed (a record at the edge of the time limit, or damaged state): start over with --replace"
    )]
    Diverged { shard: u64 },
    #[error(
        "the input changed while the run read it ({path}): its SHA-256 differs from the one the run started with"
    )]
    InputChanged { path: String },
    #[error("a worker thread failed: {0}")]
    Worker(String),
    #[error("print production: {0}")]
    Assemble(#[from] crate::assemble::AssembleError),
}

/// Progress of a run, reported after every committed shard.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Progress {
    /// Records rendered so far (committed or not).
    pub composed: u64,
    pub records: u64,
    pub documents: u64,
    pub pages: u64,
    pub rejected: u64,
    pub shards_committed: u64,
    /// Known once the whole input has been read.
    pub shards_total: Option<u64>,
}

/// What happens during a run, for progress bars, logs, metrics and run registries. Every
/// method has a default that does nothing.
pub trait RunObserver: Sync {
    /// The run has its folder and knows where it resumes.
    fn started(&self, _run_id: &str, _out: &Path, _resumed_shards: u64, _damage: &[String]) {}
    /// A shard is committed (on disk and journaled).
    fn committed(&self, _record: &CommitRecord, _progress: &Progress) {}
    /// A backend rendered a shard in `elapsed`.
    fn rendered(&self, _backend: &str, _shard: u64, _elapsed: Duration) {}
    /// A backend failed a shard (it goes elsewhere).
    fn failed(&self, _backend: &str, _shard: u64, _error: &BackendError) {}
    /// A backend became healthy or unhealthy.
    fn health(&self, _backend: &str, _healthy: bool) {}
    /// Shards in flight on a backend went up or down by one.
    fn in_flight(&self, _backend: &str, _delta: i64) {}
    /// A committed shard's damaged files were rewritten.
    fn repaired(&self, _shard: u64) {}
}

/// An observer that only reports progress.
pub struct OnProgress<F>(pub F);

impl<F: Fn(&Progress) + Sync> RunObserver for OnProgress<F> {
    fn committed(&self, _record: &CommitRecord, progress: &Progress) {
        (self.0)(progress)
    }
}

/// Stops a run from outside: `cancel` aborts it (committed shards stay, a later run
/// resumes); `drain` lets the shards in flight finish and commit, then stops resumably.
#[derive(Debug, Default)]
pub struct RunControl {
    cancel: AtomicBool,
    drain: AtomicBool,
}

impl RunControl {
    /// Asks the run to stop at once.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }

    /// Asks the run to finish what is in flight and stop.
    pub fn drain(&self) {
        self.drain.store(true, Ordering::SeqCst);
    }

    /// Whether cancel was asked for.
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }

    /// Whether a drain was asked for.
    pub fn draining(&self) -> bool {
        self.drain.load(Ordering::SeqCst)
    }
}

/// Reads through to an inner reader and hashes every byte.
pub(crate) struct Hashing<R> {
    inner: R,
    hash: Arc<Mutex<Sha256>>,
}

impl<R> Hashing<R> {
    /// Hashes what is read from `inner` into `hash`.
    pub(crate) fn new(inner: R, hash: Arc<Mutex<Sha256>>) -> Self {
        Self { inner, hash }
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .update(&buf[..n]);
        Ok(n)
    }
}

/// SHA-256 and length of a file.
fn file_sha256(path: &Path) -> Result<(String, u64), InputError> {
    let err = |source| InputError::Open {
        path: path.display().to_string(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(err)?;
    if !meta.is_file() {
        return Err(err(std::io::Error::other(
            "not a regular file: name a JSON Lines or CSV file",
        )));
    }
    let mut f = std::fs::File::open(path).map_err(err)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(err)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        len += n as u64;
    }
    Ok((hex::encode(h.finalize()), len))
}

/// A run whose identity is known (its input hashed, its folder named canonically).
pub struct Prepared {
    identity: RunIdentity,
    format: InputFormat,
    input: Option<(String, u64)>,
    started: Instant,
}

impl Prepared {
    /// The run id: a hash of everything that decides the run's output.
    pub fn run_id(&self) -> String {
        self.identity.run_id()
    }

    /// The identity.
    pub fn identity(&self) -> &RunIdentity {
        &self.identity
    }

    /// Takes the output folder for the run (see [`folder`]): from here until the run ends,
    /// no other run can use it.
    pub fn claim(self, spec: &RunSpec) -> Result<Claimed, RunError> {
        let (owned, claim) = OwnedFolder::claim(
            self.identity.clone(),
            &spec.data.display().to_string(),
            spec.replace,
        )?;
        Ok(Claimed {
            prepared: self,
            owned,
            claim,
        })
    }
}

/// A run that holds its output folder.
pub struct Claimed {
    prepared: Prepared,
    owned: OwnedFolder,
    claim: Claim,
}

impl Claimed {
    /// The run id.
    pub fn run_id(&self) -> &str {
        self.owned.run_id()
    }

    /// The canonical output folder.
    pub fn out(&self) -> &Path {
        self.owned.dir()
    }
}

/// Checks the run's parameters and computes its identity (hashing the input file).
pub fn prepare(template: &Template, spec: &RunSpec) -> Result<Prepared, RunError> {
    let started = Instant::now();
    if !spec.output.print_files && !spec.output.per_document {
        return Err(RunError::NothingToWrite);
    }
    spec.output.validate().map_err(RunError::Params)?;
    if spec.production.is_some() != spec.output.spool {
        return Err(RunError::Params(
            "a production profile and spooled output go together".into(),
        ));
    }
    if let Some(p) = &spec.production
        && p.duplex
        && p.back == crate::production::Back::Template
    {
        // Checked before anything renders: the back must exist and fit on one page.
        crate::assemble::render_back(template, &spec.output.run_date, spec.output.compression)
            .map_err(RunError::Params)?;
    }
    if spec.production.is_some() && spec.data.as_os_str() == "-" {
        return Err(RunError::Params(
            "print production reads the input twice: give a file, not standard input".into(),
        ));
    }
    let stdin = spec.data.as_os_str() == "-";
    let format = spec
        .format
        .or_else(|| InputFormat::from_path(&spec.data))
        .ok_or_else(|| InputError::UnknownFormat(spec.data.display().to_string()))?;
    let input = if stdin {
        None
    } else {
        Some(file_sha256(&spec.data)?)
    };
    let out = folder::canonical_out(&spec.out)?;
    let identity = RunIdentity {
        out: out.display().to_string(),
        input_sha256: input.as_ref().map(|i| i.0.clone()),
        input_bytes: input.as_ref().map(|i| i.1),
        format: InputFormat::NAMES[format as usize].to_string(),
        template_sha256: hex::encode(template.content_hash),
        batch_records: spec.batch_records.max(1),
        limit: spec.limit,
        max_record_bytes: spec.max_record_bytes as u64,
        params: spec.output.clone(),
        engine: ENGINE_BUILD.to_string(),
        production_sha256: spec
            .production
            .as_ref()
            .map(|p| hex::encode(p.content_hash())),
    };
    Ok(Prepared {
        identity,
        format,
        input,
        started,
    })
}

/// Prepares, claims and runs: the whole run in one call.
pub fn run(
    template: Arc<Template>,
    spec: &RunSpec,
    backends: &[Arc<dyn Backend>],
    control: &RunControl,
    observer: &dyn RunObserver,
) -> Result<RunReport, RunError> {
    let claimed = prepare(&template, spec)?.claim(spec)?;
    run_claimed(template, spec, claimed, backends, control, observer)
}

/// Runs `template` over the records in `spec.data` on `backends`, writing into the
/// claimed folder.
///
/// Returns the report of a run that completed, was stopped by a drain, or was cancelled;
/// an error when it could not go on (its committed shards stay, and the same run resumes).
pub fn run_claimed(
    template: Arc<Template>,
    spec: &RunSpec,
    claimed: Claimed,
    backends: &[Arc<dyn Backend>],
    control: &RunControl,
    observer: &dyn RunObserver,
) -> Result<RunReport, RunError> {
    let Claimed {
        prepared,
        owned,
        claim,
    } = claimed;
    let Prepared {
        format,
        input,
        started,
        ..
    } = prepared;
    let stdin = input.is_none();
    let template_sha256 = hex::encode(template.content_hash);
    let dir = owned.dir().to_path_buf();
    let io = |source| RunError::Output {
        path: dir.display().to_string(),
        source,
    };
    folder::remove_partials(&dir).map_err(io)?;
    let store = LocalDir(dir.clone());
    let (mut journal, records) = Journal::open(&dir).map_err(io)?;
    let verified = match claim {
        Claim::Resume => journal::verify(&dir, &store, &records).map_err(io)?,
        Claim::Fresh => journal::Verified::default(),
    };
    if verified.keep < records.len() {
        journal.truncate(verified.keep).map_err(io)?;
    }
    let kept = &records[..verified.keep];
    for d in &verified.damage {
        tracing::warn!(run = owned.run_id(), "committed output damaged: {d}");
    }
    if !kept.is_empty() {
        tracing::info!(
            run = owned.run_id(),
            shards = kept.len(),
            "resuming after the verified committed shards"
        );
    }
    observer.started(owned.run_id(), &dir, kept.len() as u64, &verified.damage);
    let mut committer = commit::Committer::open(&dir, Box::new(store), journal, kept.last())?;
    // The journal and index files may have just been created: their names must be on disk
    // before the first commit refers to them.
    output::sync_dir(&dir).map_err(io)?;

    // The input, hashed while it is read: it must be the input the run was named for.
    let hash = Arc::new(Mutex::new(Sha256::new()));
    let reader: Box<dyn Read + Send> = if stdin {
        Box::new(std::io::stdin())
    } else {
        Box::new(
            std::fs::File::open(&spec.data).map_err(|source| InputError::Open {
                path: spec.data.display().to_string(),
                source,
            })?,
        )
    };
    let reader = Hashing {
        inner: reader,
        hash: hash.clone(),
    };
    let reader = RecordReader::with_max_record(
        Box::new(reader),
        format,
        &spec.data.display().to_string(),
        spec.max_record_bytes.max(1),
    )?;
    let limit = spec.limit.unwrap_or(u64::MAX);
    // The reader thread is detached: a run that ends early must not wait for it to get
    // bytes from a slow producer. It stops when the run drops the receiver.
    let (records_tx, records_in) = crossbeam_channel::bounded(256);
    std::thread::Builder::new()
        .name("input".into())
        .spawn(move || {
            for r in
                reader.take_while(|r| r.as_ref().is_ok_and(|r| r.number <= limit) || r.is_err())
            {
                let failed = r.is_err();
                if records_tx.send(r).is_err() || failed {
                    return;
                }
            }
        })
        .map_err(|e| RunError::Worker(format!("cannot start the input reader: {e}")))?;

    let slots: usize = backends.iter().map(|b| b.slots()).sum();
    let plan = schedule::Plan {
        run_id: owned.run_id().into(),
        template_sha256: template_sha256.clone().into(),
        params: Arc::new(spec.output.clone()),
        batch_records: spec.batch_records.max(1) as usize,
        resume: kept.len() as u64,
        repair: verified.repair.iter().copied().collect(),
        kept,
        window: if spec.window == 0 {
            (2 * slots).max(2)
        } else {
            spec.window
        },
        max_attempts: spec.max_attempts.max(1),
        unavailable: spec.unavailable,
    };
    let ended = schedule::execute(
        &plan,
        records_in,
        &mut committer,
        backends,
        control,
        observer,
    );
    let status = match &ended {
        Ok(schedule::Ended::Completed) => RunStatus::Succeeded,
        Ok(schedule::Ended::Stopped) => RunStatus::Stopped,
        Ok(schedule::Ended::Cancelled) => RunStatus::Cancelled,
        Err(_) => RunStatus::Failed,
    };
    let read_sha256 = hex::encode(
        std::mem::take(&mut *hash.lock().unwrap_or_else(|e| e.into_inner())).finalize(),
    );
    let ended = match ended {
        // Only a run that read its whole input can compare the hash.
        Ok(schedule::Ended::Completed)
            if spec.limit.is_none() && input.as_ref().is_some_and(|i| i.0 != read_sha256) =>
        {
            Err(RunError::InputChanged {
                path: spec.data.display().to_string(),
            })
        }
        other => other,
    };
    // Print production: the jobs are assembled once every shard is committed.
    let mut production = None;
    let ended = match (ended, &spec.production) {
        (Ok(schedule::Ended::Completed), Some(profile)) => {
            let aspec = crate::assemble::AssembleSpec {
                template: &template,
                profile,
                data: &spec.data,
                input_sha256: input.as_ref().map_or("", |i| i.0.as_str()),
                format,
                max_record_bytes: spec.max_record_bytes,
                limit: spec.limit,
                compression: spec.output.compression,
                run_date: &spec.output.run_date,
                threads: if spec.assemble_threads == 0 {
                    backend::threads_or_cores(0)
                } else {
                    spec.assemble_threads
                },
            };
            let stop = || control.cancelled() || control.draining();
            match crate::assemble::assemble(&dir, &aspec, &stop) {
                Ok(r) => {
                    production = Some(r);
                    Ok(schedule::Ended::Completed)
                }
                // Stopped between jobs: the committed jobs stay, the same run resumes.
                Err(crate::assemble::AssembleError::Cancelled) if control.cancelled() => {
                    Ok(schedule::Ended::Cancelled)
                }
                Err(crate::assemble::AssembleError::Cancelled) => Ok(schedule::Ended::Stopped),
                Err(e) => Err(e.into()),
            }
        }
        (other, _) => other,
    };
    let status = match &ended {
        Err(_) => RunStatus::Failed,
        Ok(schedule::Ended::Cancelled) => RunStatus::Cancelled,
        Ok(schedule::Ended::Stopped) => RunStatus::Stopped,
        Ok(_) => status,
    };
    let report = RunReport {
        run_id: owned.run_id().to_string(),
        status,
        out: dir.clone(),
        summary: committer.summary.clone(),
        resumed_shards: kept.len() as u64,
        repaired: verified.damage.clone(),
        input_sha256: input.map(|i| i.0).unwrap_or(read_sha256),
        elapsed: started.elapsed(),
        production,
    };
    let error = ended.as_ref().err().map(|e| e.to_string());
    write_summary(&dir, &template, spec, &report, backends, error.as_deref()).map_err(io)?;
    owned.set_status(status).map_err(io)?;
    ended.map(|_| report)
}

/// Writes `summary.json` at the end of every attempt: what was run, by what, on what,
/// how it ended (and why, when it failed) and the counts committed so far.
fn write_summary(
    dir: &Path,
    template: &Template,
    spec: &RunSpec,
    report: &RunReport,
    backends: &[Arc<dyn Backend>],
    error: Option<&str>,
) -> std::io::Result<()> {
    let summary = serde_json::json!({
        "run_id": report.run_id,
        "status": report.status.as_str(),
        "error": error,
        "runner": spec.runner,
        "engine": ENGINE_BUILD,
        "template": {
            "id": template.id,
            "version": template.version,
            "content_hash": hex::encode(template.content_hash),
        },
        "input": {
            "path": spec.data.display().to_string(),
            "sha256": report.input_sha256,
        },
        "run_date": spec.output.run_date,
        "params": spec.output,
        "batch_records": spec.batch_records,
        "limit": spec.limit,
        "backends": backends.iter().map(|b| b.name()).collect::<Vec<_>>(),
        "summary": report.summary,
        "resumed_shards": report.resumed_shards,
        "repaired": report.repaired,
        "production": report.production.as_ref().map(|p| serde_json::json!({
            "profile": spec.production.as_ref().map(|x| serde_json::json!({
                "id": x.id, "version": x.version, "sha256": hex::encode(x.content_hash()),
            })),
            "assembly": p,
        })),
        "elapsed_seconds": report.elapsed.as_secs_f64(),
    });
    output::write_durably(
        &dir.join(folder::SUMMARY),
        &serde_json::to_vec_pretty(&summary)?,
    )
}
