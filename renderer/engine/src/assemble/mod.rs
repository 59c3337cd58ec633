//! Assembly: a run's rendered documents become print jobs of mail pieces.
//!
//! It runs after every shard is committed, on the run's own output folder:
//! 1. the index (`documents.jsonl`) and the input are read again, and the production
//!    profile gives each document its [`Facts`] (sort keys, household, feeders, channel);
//! 2. [`crate::production::plan`] decides jobs → pieces → sheets, deterministically;
//! 3. each job not yet committed is written from the shards' spool files
//!    ([`crate::pdf::spool`]) with the production marks as an overlay ([`marks`]), beside
//!    its manifest ([`manifest`]); both are fsynced, then the job is journaled in
//!    `jobs/commits.jsonl` — so a crash mid-assembly resumes after the committed jobs.
//!
//! Nothing here depends on how the run was cut into shards: a job's bytes are a function
//! of the documents, the profile and the plan only.

pub mod locate;
pub mod manifest;
pub mod marks;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};

use crate::doc::DocMeta;
use crate::input::{InputError, InputFormat, RecordReader};
use crate::pdf::spool::{self, Frame, SpoolError};
use crate::pdf::{EncodedDocument, PdfEnv, PdfFileWriter, PdfOptions};
use crate::production::{DocTable, JobPlan, Plan, Profile};
use crate::run::output::{FileDigest, LocalDir, OutputStore, sync_dir, write_durably};
use crate::run::shard::DocumentEntry;
use crate::template::Template;
use manifest::{
    GroupCount, JobSummary, ManifestDocument, ManifestLine, ManifestPiece, ManifestSheet, Part,
    job_file_name, manifest_name,
};
use marks::SheetId;

/// The jobs journal, inside the output folder.
pub const JOURNAL: &str = "jobs/commits.jsonl";

/// What assembly reads besides the output folder.
pub struct AssembleSpec<'a> {
    pub template: &'a Template,
    pub profile: &'a Profile,
    /// The run's input, read again for the facts the profile needs.
    pub data: &'a Path,
    /// Its SHA-256 as the run was named with: the input read again must be the same.
    pub input_sha256: &'a str,
    pub format: InputFormat,
    pub max_record_bytes: usize,
    pub limit: Option<u64>,
    /// Deflate level of the mark overlays.
    pub compression: u8,
    /// Jobs written at once (each on its own thread).
    pub threads: usize,
    /// The run date, for the fixed back-of-page content.
    pub run_date: &'a str,
}

/// Renders the template's fixed back-of-page content (`<back>`) once: one page, bound
/// with no record. The error says why it cannot be used.
pub fn render_back(
    template: &Template,
    run_date: &str,
    compression: u8,
) -> Result<EncodedDocument, String> {
    use crate::run::compose::{Limits, Worker, compose, encode};
    let back = template.back().ok_or(
        "the production profile asks for the template's back-of-page content (back = \"template\"), but its body.xml has no <back>",
    )?;
    let mut worker = Worker::default();
    let bind = crate::template::BindParams {
        record_number: 0,
        run_date: run_date.to_string(),
    };
    let composed = compose(
        &back,
        &serde_json::json!({}),
        &bind,
        false,
        &Limits::default(),
        &mut worker,
    )
    .map_err(|r| {
        format!(
            "the <back> content is bound once per run, without a record, and fails: {} {}",
            r.field, r.reason
        )
    })?;
    let pages = composed.laid_out.pages.len();
    if pages != 1 {
        return Err(format!(
            "the <back> content takes {pages} pages; it must fit on one page"
        ));
    }
    Ok(encode(
        &back,
        &composed,
        &PdfOptions {
            tagged: false,
            compression,
        },
        &mut worker,
    ))
}

/// What assembly did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AssembleReport {
    pub jobs: u64,
    pub pieces: u64,
    pub sheets: u64,
    pub impressions: u64,
    /// Documents routed to another channel (listed in `jobs/routed.jsonl`).
    pub routed: u64,
    /// Duplicates found, and how many of them were not produced.
    pub duplicates: u64,
    pub suppressed: u64,
    /// Documents that could not be placed (listed in `jobs/unassembled.jsonl`).
    pub unassembled: u64,
    /// Jobs committed by an earlier attempt and kept.
    pub resumed_jobs: u64,
    /// Committed jobs found damaged and written again.
    pub repaired: Vec<String>,
}

/// Assembly that cannot go on (its committed jobs stay; the same run resumes).
#[derive(Debug, thiserror::Error)]
pub enum AssembleError {
    #[error("assembly cannot use {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("spool {file}: {source}")]
    Spool { file: String, source: SpoolError },
    #[error("the run's output does not add up: {0}")]
    Mismatch(String),
    #[error("a production mark cannot be encoded: {0}")]
    Marks(String),
    #[error("assembly was cancelled")]
    Cancelled,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AssembleError + '_ {
    move |source| AssembleError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// One committed job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct JobCommit {
    job: String,
    files: Vec<FileDigest>,
    pieces: u64,
    sheets: u64,
    impressions: u64,
}

/// A document as assembly knows it.
struct Doc {
    entry: DocumentEntry,
    /// Index of its spool file in the run's list of spool names, and its frame there.
    spool: usize,
    frame: Frame,
}

/// A document that could not be placed in a piece.
#[derive(Clone, Debug, Serialize)]
struct Unassembled<'a> {
    record: u64,
    document_id: &'a str,
    field: String,
    reason: String,
}

/// Assembles the print jobs of the run in `dir`.
pub fn assemble(
    dir: &Path,
    spec: &AssembleSpec<'_>,
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<AssembleReport, AssembleError> {
    let started = std::time::Instant::now();
    let back = match spec.profile.back {
        crate::production::Back::Template if spec.profile.duplex => Some(
            render_back(spec.template, spec.run_date, spec.compression)
                .map_err(AssembleError::Mismatch)?,
        ),
        _ => None,
    };
    let (docs, spools) = read_documents(dir)?;
    // Planner indices are into `facts`; `doc_of` maps them back to `docs`.
    let (doc_of, facts, unassembled) = read_facts(spec, &docs)?;
    let read = started.elapsed();
    let plan = crate::production::plan(spec.profile, &facts);
    drop(facts);
    let plan = &plan;
    tracing::info!(
        documents = docs.len(),
        jobs = plan.jobs.len(),
        read_seconds = read.as_secs_f64(),
        plan_seconds = (started.elapsed() - read).as_secs_f64(),
        "print jobs planned"
    );
    let jobs_dir = dir.join("jobs");
    if !jobs_dir.is_dir() {
        fs::create_dir_all(&jobs_dir).map_err(io(&jobs_dir))?;
        sync_dir(dir).map_err(io(dir))?;
    }
    let store = LocalDir(dir.to_path_buf());
    let (committed, repaired) = read_journal(dir, &store)?;
    let mut report = AssembleReport {
        resumed_jobs: committed.len() as u64,
        repaired,
        ..AssembleReport::default()
    };
    let pending: Vec<&JobPlan> = plan
        .jobs
        .iter()
        .filter(|j| !committed.contains_key(&j.id))
        .collect();
    let journal = Mutex::new(
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(JOURNAL))
            .map_err(io(&dir.join(JOURNAL)))?,
    );
    let env = PdfEnv {
        fonts: spec.template.fonts.clone(),
        images: spec.template.images.clone(),
    };
    let inputs = JobInputs {
        dir,
        spec,
        env: &env,
        docs: &docs,
        doc_of: &doc_of,
        plan,
        back: back.as_ref(),
    };
    let next = AtomicUsize::new(0);
    let failed: Mutex<Option<AssembleError>> = Mutex::new(None);
    let threads = spec.threads.clamp(1, pending.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..threads {
            let spawned = std::thread::Builder::new()
                .name("assemble".into())
                .spawn_scoped(s, || {
                    let mut reader = SpoolReader::new(dir, &spools, &env);
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let failing = failed.lock().unwrap_or_else(|e| e.into_inner()).is_some();
                        if i >= pending.len() || failing {
                            return;
                        }
                        if stop() {
                            failed
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .get_or_insert(AssembleError::Cancelled);
                            return;
                        }
                        let job = pending[i];
                        let result = write_job(inputs, job, &mut reader).and_then(|commit| {
                            let mut line = serde_json::to_vec(&commit).expect("serialisable");
                            line.push(b'\n');
                            let mut j = journal.lock().unwrap_or_else(|e| e.into_inner());
                            j.write_all(&line).map_err(io(dir))?;
                            j.sync_data().map_err(io(dir))?;
                            Ok(())
                        });
                        if let Err(e) = result {
                            failed
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .get_or_insert(e);
                            return;
                        }
                    }
                });
            if let Err(e) = spawned {
                failed
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_or_insert(AssembleError::Io {
                        path: dir.display().to_string(),
                        source: e,
                    });
            }
        }
    });
    if let Some(e) = failed.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    tracing::info!(
        written = pending.len(),
        kept = committed.len(),
        seconds = started.elapsed().as_secs_f64(),
        "print jobs assembled"
    );
    for job in &plan.jobs {
        report.jobs += 1;
        report.pieces += job.pieces.len() as u64;
        for p in &job.pieces {
            report.sheets += u64::from(p.sheet_count);
        }
        report.impressions += job
            .pieces
            .iter()
            .map(|p| u64::from(p.sheet_count) * if spec.profile.duplex { 2 } else { 1 })
            .sum::<u64>();
    }
    report.routed = plan.routed.len() as u64;
    report.duplicates = plan.duplicates.len() as u64;
    report.suppressed = plan.duplicates.iter().filter(|d| d.suppressed).count() as u64;
    report.unassembled = (unassembled.len() + plan.rejected.len()) as u64;
    write_lists(dir, spec, plan, &docs, &doc_of, unassembled, &report)?;
    Ok(report)
}

/// Reads the index and finds every document's frame in its spool file.
/// Returns the documents and the names of the spool files, in order.
fn read_documents(dir: &Path) -> Result<(Vec<Doc>, Vec<String>), AssembleError> {
    let path = dir.join(crate::run::journal::DOCUMENTS);
    let file = File::open(&path).map_err(io(&path))?;
    let mut docs = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(io(&path))?;
        let entry: DocumentEntry = serde_json::from_str(&line)
            .map_err(|e| AssembleError::Mismatch(format!("documents.jsonl line {}: {e}", i + 1)))?;
        // The index names the spool: only a spool file of this folder can be meant.
        if let Some(name) = &entry.spool
            && !crate::run::output::is_spool_file_name(name)
        {
            return Err(AssembleError::Mismatch(format!(
                "documents.jsonl line {} names {name:?}, which is not a spool file of this run",
                i + 1
            )));
        }
        let Some(name) = entry.spool.clone() else {
            return Err(AssembleError::Mismatch(format!(
                "document of record {} was not spooled (the run was not rendered for print production)",
                entry.record
            )));
        };
        if names.last() != Some(&name) {
            names.push(name);
        }
        docs.push(Doc {
            entry,
            spool: names.len() - 1,
            frame: Frame {
                record: 0,
                offset: 0,
                len: 0,
            },
        });
    }
    // Frames, in the order the documents of each spool were listed.
    let mut at = 0;
    for (s, name) in names.iter().enumerate() {
        let path = dir.join(name);
        let mut f = File::open(&path).map_err(io(&path))?;
        let len = f.metadata().map_err(io(&path))?.len();
        let frames = spool::frames_from(&mut f, len).map_err(|source| AssembleError::Spool {
            file: name.clone(),
            source,
        })?;
        for frame in frames {
            let Some(d) = docs.get_mut(at).filter(|d| d.spool == s) else {
                return Err(AssembleError::Mismatch(format!(
                    "{name} holds more documents than the index lists"
                )));
            };
            if d.entry.record != frame.record {
                return Err(AssembleError::Mismatch(format!(
                    "{name} holds record {} where the index lists record {}",
                    frame.record, d.entry.record
                )));
            }
            d.frame = frame;
            at += 1;
        }
    }
    if at != docs.len() {
        return Err(AssembleError::Mismatch(format!(
            "the spool files hold {at} documents, the index lists {}",
            docs.len()
        )));
    }
    Ok((docs, names))
}

/// Most records handed to a facts worker at once (small runs use smaller chunks, so that
/// every worker has some).
const FACTS_CHUNK: usize = 256;

/// One document's facts as a worker found them: the facts, or why they cannot be had.
type FactsOf = (
    usize,
    Result<crate::production::Facts, crate::production::FactError>,
);

/// Reads the input again and gives each document its facts; documents whose facts cannot
/// be had (a condition on a value of the wrong kind) are listed, not planned.
///
/// One thread reads and hashes the input, `spec.threads` workers parse the records and
/// take their facts in chunks, and this thread puts the chunks back in input order, so
/// the table is the same whatever the number of workers.
#[allow(clippy::type_complexity)]
fn read_facts<'d>(
    spec: &AssembleSpec<'_>,
    docs: &'d [Doc],
) -> Result<(Vec<usize>, DocTable, Vec<Unassembled<'d>>), AssembleError> {
    let file = File::open(spec.data).map_err(|source| InputError::Open {
        path: spec.data.display().to_string(),
        source,
    })?;
    let hash = std::sync::Arc::new(std::sync::Mutex::new(sha2::Sha256::default()));
    let reader = RecordReader::with_max_record(
        Box::new(crate::run::Hashing::new(file, hash.clone())),
        spec.format,
        &spec.data.display().to_string(),
        spec.max_record_bytes.max(1),
    )?;
    let limit = spec.limit.unwrap_or(u64::MAX);
    let mut doc_of = Vec::with_capacity(docs.len());
    let mut out = DocTable::with_capacity(docs.len());
    let mut bad = Vec::new();
    let mut failed: Option<AssembleError> = None;
    let workers = spec.threads.max(1);
    let chunk_len = (docs.len() / (workers * 8)).clamp(16, FACTS_CHUNK);
    let read = std::thread::scope(|s| {
        let (work_tx, work_rx) = crossbeam_channel::bounded::<(usize, Vec<_>)>(8);
        let (done_tx, done_rx) =
            crossbeam_channel::bounded::<(usize, Result<Vec<FactsOf>, AssembleError>)>(8);
        for _ in 0..workers {
            let (work_rx, done_tx) = (work_rx.clone(), done_tx.clone());
            s.spawn(move || {
                for (seq, chunk) in work_rx {
                    let facts: Result<Vec<FactsOf>, AssembleError> = chunk
                        .into_iter()
                        .map(|(d, raw)| facts_of(spec, d, &raw))
                        .collect();
                    if done_tx.send((seq, facts)).is_err() {
                        return;
                    }
                }
            });
        }
        drop((work_rx, done_tx));
        // Reads the input to its end (its hash covers all of it) and returns how many
        // documented records it found.
        let reading = s.spawn(move || -> Result<usize, AssembleError> {
            let mut next = 0;
            let mut chunk = Vec::with_capacity(chunk_len);
            let mut seq = 0;
            for raw in reader {
                let raw = raw?;
                if raw.number > limit {
                    break;
                }
                if next >= docs.len() || raw.number != docs[next].entry.record {
                    continue;
                }
                chunk.push((next, raw));
                next += 1;
                if chunk.len() == chunk_len {
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(chunk_len));
                    if work_tx.send((seq, full)).is_err() {
                        return Ok(next);
                    }
                    seq += 1;
                }
            }
            if !chunk.is_empty() {
                let _ = work_tx.send((seq, chunk));
            }
            Ok(next)
        });
        // Chunks come back in any order; they are taken in input order.
        let mut early = BTreeMap::new();
        let mut expect = 0;
        'collect: for (seq, facts) in done_rx {
            early.insert(seq, facts);
            while let Some(facts) = early.remove(&expect) {
                expect += 1;
                let facts = match facts {
                    Ok(facts) => facts,
                    Err(e) => {
                        failed = Some(e);
                        break 'collect;
                    }
                };
                for (next, facts) in facts {
                    let d = &docs[next];
                    match facts {
                        Ok(facts) => {
                            doc_of.push(next);
                            if let Err(e) =
                                out.push(d.entry.record, &d.entry.sha256, d.entry.pages, &facts)
                            {
                                failed = Some(AssembleError::Mismatch(e.to_string()));
                                break 'collect;
                            }
                        }
                        Err(e) => bad.push(Unassembled {
                            record: d.entry.record,
                            document_id: &d.entry.document_id,
                            field: e.field,
                            reason: e.message,
                        }),
                    }
                }
            }
        }
        // Dropping the receiver (at the loop's end) stops workers and reader early on a failure.
        reading
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    });
    // A failure in a chunk comes before anything the reader failed at later.
    if let Some(e) = failed {
        return Err(e);
    }
    let next = read?;
    if next != docs.len() || doc_of.len() + bad.len() != docs.len() {
        return Err(AssembleError::Mismatch(format!(
            "the input holds {next} of the {} documented records: the input changed",
            docs.len()
        )));
    }
    if spec.limit.is_none() {
        use sha2::Digest;
        let read = std::mem::take(&mut *hash.lock().unwrap_or_else(|e| e.into_inner()));
        if hex::encode(read.finalize()) != spec.input_sha256 {
            return Err(AssembleError::Mismatch(format!(
                "{} changed after the run rendered it (its SHA-256 differs): restore it, or start over with --replace",
                spec.data.display()
            )));
        }
    }
    Ok((doc_of, out, bad))
}

/// Parses document `d`'s record again and takes its facts.
fn facts_of(
    spec: &AssembleSpec<'_>,
    d: usize,
    raw: &crate::input::RawRecord,
) -> Result<FactsOf, AssembleError> {
    let value = crate::run::compose::parse_record(spec.template, raw).map_err(|r| {
        AssembleError::Mismatch(format!(
            "record {} rendered but does not parse again ({}): the input changed",
            raw.number, r.reason
        ))
    })?;
    Ok((d, spec.profile.facts(&value)))
}

/// Reads the jobs journal and keeps the jobs whose files are intact; a torn last line or a
/// damaged file means that job is written again.
fn read_journal(
    dir: &Path,
    store: &LocalDir,
) -> Result<(BTreeMap<String, JobCommit>, Vec<String>), AssembleError> {
    let path = dir.join(JOURNAL);
    let mut text = String::new();
    if let Ok(mut f) = File::open(&path) {
        f.read_to_string(&mut text).map_err(io(&path))?;
    }
    let mut kept = BTreeMap::new();
    let mut damage = Vec::new();
    let mut good = 0;
    for line in text.split_inclusive('\n') {
        if !line.ends_with('\n') {
            break;
        }
        let Ok(c) = serde_json::from_str::<JobCommit>(line) else {
            break;
        };
        // Only this job's own two files can be meant: a journal names nothing else.
        let own = [job_file_name(&c.job), manifest_name(&c.job)];
        if !c.job.bytes().all(|b| b.is_ascii_alphanumeric())
            || c.files.len() != 2
            || c.files.iter().zip(&own).any(|(f, n)| f.name != *n)
        {
            break;
        }
        good += line.len();
        let mut intact = true;
        for f in &c.files {
            if store.digest(&f.name).map_err(io(dir))?.as_ref() != Some(f) {
                damage.push(format!(
                    "{} is damaged or missing; job {} is written again",
                    f.name, c.job
                ));
                intact = false;
            }
        }
        if intact {
            kept.insert(c.job.clone(), c);
        }
    }
    if good < text.len() {
        let f = fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        f.set_len(good as u64).map_err(io(&path))?;
        f.sync_all().map_err(io(&path))?;
    }
    for d in &damage {
        tracing::warn!("{d}");
    }
    Ok((kept, damage))
}

/// Reads spooled documents, one open file per spool, keeping the last document decoded.
struct SpoolReader<'a> {
    dir: &'a Path,
    names: &'a [String],
    files: BTreeMap<usize, File>,
    fonts: usize,
    images: usize,
}

impl<'a> SpoolReader<'a> {
    fn new(dir: &'a Path, names: &'a [String], env: &PdfEnv) -> Self {
        Self {
            dir,
            names,
            files: BTreeMap::new(),
            fonts: env.fonts.len(),
            images: env.images.len(),
        }
    }

    /// Reads a document from its spool, checked against the index's content hash.
    fn load(&mut self, d: &Doc) -> Result<EncodedDocument, AssembleError> {
        let name = &self.names[d.spool];
        let path = self.dir.join(name);
        let f = match self.files.entry(d.spool) {
            std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(File::open(&path).map_err(io(&path))?)
            }
        };
        let mut body = vec![0u8; d.frame.len as usize];
        f.seek(SeekFrom::Start(d.frame.offset))
            .and_then(|_| f.read_exact(&mut body))
            .map_err(io(&path))?;
        let doc = spool::read_document(d.entry.record, &body, self.fonts, self.images).map_err(
            |source| AssembleError::Spool {
                file: name.clone(),
                source,
            },
        )?;
        if hex::encode(doc.content_hash) != d.entry.sha256 {
            return Err(AssembleError::Mismatch(format!(
                "the spooled document of record {} is not the one the index lists (content hash differs)",
                d.entry.record
            )));
        }
        Ok(doc)
    }
}

/// The documents of a job in the order the writer first needs them, read and checked on
/// another thread ahead of it, so that a single job keeps two cores busy.
struct Prefetched {
    rx: crossbeam_channel::Receiver<Result<(usize, EncodedDocument), AssembleError>>,
    current: Option<(usize, EncodedDocument)>,
}

impl Prefetched {
    /// Document `i`: the current one, or the next that arrives.
    fn get(&mut self, i: usize) -> Result<&EncodedDocument, AssembleError> {
        if self.current.as_ref().is_none_or(|(j, _)| *j != i) {
            match self.rx.recv() {
                Ok(Ok((j, doc))) if j == i => self.current = Some((j, doc)),
                Ok(Ok(_)) => {
                    return Err(AssembleError::Mismatch(
                        "documents reached the print job out of order".into(),
                    ));
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    return Err(AssembleError::Mismatch(
                        "the spool reader stopped before the job was complete".into(),
                    ));
                }
            }
        }
        Ok(&self.current.as_ref().expect("set above").1)
    }
}

/// The documents a job reads, in the order it first reads each (consecutive repeats once).
fn doc_sequence(plan: &Plan, job: &JobPlan, doc_of: &[usize]) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::new();
    for piece in &job.pieces {
        for sheet in &plan.sheets(piece) {
            for p in [&sheet.front, &sheet.back].into_iter().flatten() {
                let i = doc_of[p.doc];
                if out.last() != Some(&i) {
                    out.push(i);
                }
            }
        }
    }
    out
}

/// Writes one job, its documents read ahead on a second thread.
fn write_job(
    inputs: JobInputs<'_>,
    job: &JobPlan,
    reader: &mut SpoolReader<'_>,
) -> Result<JobCommit, AssembleError> {
    let (tx, rx) = crossbeam_channel::bounded(32);
    let sequence = doc_sequence(inputs.plan, job, inputs.doc_of);
    std::thread::scope(|s| {
        let docs = inputs.docs;
        let ahead = std::thread::Builder::new()
            .name("spool".into())
            .spawn_scoped(s, move || {
                for i in sequence {
                    let r = reader.load(&docs[i]).map(|d| (i, d));
                    let failed = r.is_err();
                    // The writer stopped (it failed): stop too.
                    if tx.send(r).is_err() || failed {
                        return;
                    }
                }
            })
            .map_err(io(inputs.dir))?;
        let mut prefetched = Prefetched { rx, current: None };
        let result = write_job_from(inputs, job, &mut prefetched);
        // Unblock the reader if the writer stopped early.
        drop(prefetched);
        let _ = ahead.join();
        result
    })
}

/// Writes one job: its print file and manifest, and the journal line that commits them.
/// What every job of a run is written from.
#[derive(Clone, Copy)]
struct JobInputs<'a> {
    dir: &'a Path,
    spec: &'a AssembleSpec<'a>,
    env: &'a PdfEnv,
    docs: &'a [Doc],
    doc_of: &'a [usize],
    plan: &'a Plan,
    back: Option<&'a EncodedDocument>,
}

fn write_job_from(
    inputs: JobInputs<'_>,
    job: &JobPlan,
    reader: &mut Prefetched,
) -> Result<JobCommit, AssembleError> {
    let JobInputs {
        dir,
        spec,
        env,
        docs,
        doc_of,
        plan,
        back,
    } = inputs;
    let profile = spec.profile;
    let opts = PdfOptions {
        tagged: false,
        compression: spec.compression,
    };
    // The print file is streamed to disk page by page: memory does not grow with the job.
    let part = dir.join(format!("{}.part", job_file_name(&job.id)));
    let mut w = PdfFileWriter::streaming(env.clone(), opts, &part).map_err(io(&part))?;
    let mut registered_set = std::collections::BTreeSet::new();
    let mut back_registered = false;
    let manifest_part = dir.join(format!("{}.part", manifest_name(&job.id)));
    let mut lines = manifest::ManifestWriter::create(&manifest_part).map_err(io(&manifest_part))?;
    let mut overlay = Vec::with_capacity(4096);
    let mut impression = 0u64;
    let mut summary = JobSummary {
        job: job.id.clone(),
        print_file: job_file_name(&job.id),
        ..JobSummary::default()
    };
    let mut groups: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for piece in &job.pieces {
        let planned = plan.sheets(piece);
        let n = piece.sheet_count;
        let mut sheets = Vec::with_capacity(planned.len());
        let mut texts = Vec::with_capacity(planned.len());
        // Page ranges of each document in this job.
        let mut ranges: BTreeMap<usize, (u32, u32)> = BTreeMap::new();
        for (k0, sheet) in planned.iter().enumerate() {
            let id = SheetId {
                job: &job.id,
                piece: piece.piece,
                k: k0 as u32 + 1,
                n,
                feeders: piece.feeders,
            };
            texts.push(id.pil_text());
            marks::overlay(
                &profile.marks.datamatrix,
                profile.marks.omr.as_ref(),
                profile.marks.text.as_ref(),
                &id,
                &mut overlay,
            )
            .map_err(|e| AssembleError::Marks(e.to_string()))?;
            let mut size = (595.0, 842.0);
            let mut side = |page: Option<&crate::production::PageRef>,
                            front: bool,
                            marked: bool,
                            w: &mut PdfFileWriter,
                            size: &mut (f32, f32)|
             -> Result<Option<u32>, AssembleError> {
                let mark = marked.then_some(overlay.as_slice());
                let Some(p) = page else {
                    if let Some(b) = back.filter(|_| !front) {
                        if !back_registered {
                            w.register(b);
                            back_registered = true;
                        }
                        return Ok(Some(w.add_page(b, 0, mark)));
                    }
                    w.add_blank_page_with(size.0, size.1, mark);
                    return Ok(None);
                };
                let i = doc_of[p.doc];
                let d = &docs[i];
                let enc = reader.get(i)?;
                let index = (p.page as usize)
                    .checked_sub(1)
                    .filter(|&x| x < enc.pages.len());
                let Some(index) = index else {
                    return Err(AssembleError::Mismatch(format!(
                        "the plan names page {} of record {}, which has {} pages",
                        p.page,
                        d.entry.record,
                        enc.pages.len()
                    )));
                };
                if registered_set.insert(i) {
                    w.register(enc);
                }
                *size = (enc.pages[index].width, enc.pages[index].height);
                let number = w.add_page(enc, index, mark);
                let r = ranges.entry(i).or_insert((number, number));
                r.0 = r.0.min(number);
                r.1 = r.1.max(number);
                Ok(Some(number))
            };
            let front_page = side(sheet.front.as_ref(), true, true, &mut w, &mut size)?;
            let back_page = if profile.duplex {
                side(
                    sheet.back.as_ref(),
                    false,
                    profile.marks_on_back,
                    &mut w,
                    &mut size,
                )?
            } else {
                None
            };
            let back_fixed = profile.duplex && sheet.back.is_none() && back.is_some();
            let per_sheet = if profile.duplex { 2 } else { 1 };
            let impressions = (impression + 1..=impression + per_sheet).collect();
            impression += per_sheet;
            sheets.push(ManifestSheet {
                sheet: id.k,
                front_page,
                back_page,
                back_fixed,
                impressions,
            });
        }
        let documents = plan
            .documents(piece)
            .iter()
            .map(|&p| {
                let i = doc_of[p as usize];
                let d = &docs[i].entry;
                let (first_page, last_page) = ranges.get(&i).copied().unwrap_or((0, 0));
                ManifestDocument {
                    document_id: d.document_id.clone(),
                    record: d.record,
                    sha256: d.sha256.clone(),
                    first_page,
                    last_page,
                }
            })
            .collect::<Vec<_>>();
        summary.pieces += 1;
        summary.documents += documents.len() as u64;
        summary.sheets += u64::from(n);
        let g = groups.entry(plan.sort_group(piece)).or_default();
        g.0 += 1;
        g.1 += u64::from(n);
        let line = ManifestLine::Piece(Box::new(ManifestPiece {
            job: job.id.clone(),
            piece: format!("{:06}", piece.piece),
            envelope: plan.envelope(piece).to_string(),
            feeders: format!("{:02X}", piece.feeders),
            sort_group: plan.sort_group(piece).to_string(),
            householded: piece.householded,
            part: piece.part.map(|(k, n)| Part { k, n }),
            documents,
            sheets,
            marks: texts,
        }));
        lines.push(&line).map_err(io(&manifest_part))?;
    }
    summary.pages = u64::from(w.page_count());
    summary.impressions = impression;
    summary.sort_groups = groups
        .into_iter()
        .map(|(g, (pieces, sheets))| GroupCount {
            group: g.to_string(),
            pieces,
            sheets,
        })
        .collect();
    let pieces = summary.pieces;
    let sheets = summary.sheets;
    lines
        .push(&ManifestLine::Summary { summary })
        .map_err(io(&manifest_part))?;
    let meta = DocMeta {
        id: job.id.clone(),
        title: format!(
            "{} {} {} {}",
            spec.template.id, spec.template.version, profile.id, job.id
        ),
        lang: "und".into(),
    };
    let (pdf_len, pdf_sha) = w.finish_streamed(&meta).map_err(io(&part))?;
    let (manifest_len, manifest_sha) = lines.finish().map_err(io(&manifest_part))?;
    let digests = vec![
        FileDigest {
            name: job_file_name(&job.id),
            bytes: pdf_len,
            sha256: hex::encode(pdf_sha),
        },
        FileDigest {
            name: manifest_name(&job.id),
            bytes: manifest_len,
            sha256: hex::encode(manifest_sha),
        },
    ];
    // Both files were fsynced as they were finished; they get their names, and the
    // folder is fsynced before the job is journaled.
    for (from, name) in [
        (&part, job_file_name(&job.id)),
        (&manifest_part, manifest_name(&job.id)),
    ] {
        let to = dir.join(name);
        fs::rename(from, &to).map_err(io(&to))?;
    }
    let jobs = dir.join("jobs");
    sync_dir(&jobs).map_err(io(&jobs))?;
    Ok(JobCommit {
        job: job.id.clone(),
        files: digests,
        pieces,
        sheets,
        impressions: impression,
    })
}

/// Writes the run-wide production lists: routed documents, duplicates, documents that
/// could not be placed, and `jobs/production.json` (the plan's totals and sort groups).
fn write_lists<'d>(
    dir: &Path,
    spec: &AssembleSpec<'_>,
    plan: &Plan,
    docs: &'d [Doc],
    doc_of: &[usize],
    mut unassembled: Vec<Unassembled<'d>>,
    report: &AssembleReport,
) -> Result<(), AssembleError> {
    let entry = |p: usize| &docs[doc_of[p]].entry;
    let mut routed = Vec::new();
    for r in &plan.routed {
        let d = entry(r.doc);
        serde_json::to_writer(
            &mut routed,
            &serde_json::json!({"record": d.record, "document_id": d.document_id, "channel": r.channel}),
        )
        .expect("serialisable");
        routed.push(b'\n');
    }
    let mut dups = Vec::new();
    for x in &plan.duplicates {
        let (d, first) = (entry(x.doc), entry(x.first));
        serde_json::to_writer(
            &mut dups,
            &serde_json::json!({
                "record": d.record, "document_id": d.document_id, "sha256": d.sha256,
                "duplicate_of": first.record, "suppressed": x.suppressed,
            }),
        )
        .expect("serialisable");
        dups.push(b'\n');
    }
    for (p, reason) in &plan.rejected {
        let d = entry(*p);
        unassembled.push(Unassembled {
            record: d.record,
            document_id: &d.document_id,
            field: String::new(),
            reason: reason.clone(),
        });
    }
    unassembled.sort_by_key(|u| u.record);
    let mut un = Vec::new();
    for u in &unassembled {
        serde_json::to_writer(&mut un, u).expect("serialisable");
        un.push(b'\n');
    }
    let summary = serde_json::json!({
        "profile": {
            "id": spec.profile.id,
            "version": spec.profile.version,
            "sha256": hex::encode(spec.profile.content_hash()),
            "reprint_cap_percent": spec.profile.job.reprint_cap_percent,
            "media": spec.profile.media,
        },
        // What the plan holds; what one attempt did (resumed, repaired) is in summary.json.
        "totals": {
            "jobs": report.jobs,
            "pieces": report.pieces,
            "sheets": report.sheets,
            "impressions": report.impressions,
            "routed": report.routed,
            "duplicates": report.duplicates,
            "suppressed": report.suppressed,
            "unassembled": report.unassembled,
        },
        "jobs": plan.jobs.iter().map(|j| serde_json::json!({
            "job": j.id,
            "print_file": job_file_name(&j.id),
            "manifest": manifest_name(&j.id),
            "pieces": j.pieces.len(),
            "sheets": j.pieces.iter().map(|p| u64::from(p.sheet_count)).sum::<u64>(),
        })).collect::<Vec<_>>(),
        "sort_groups": plan.groups.iter().map(|g| serde_json::json!({
            "group": g.group,
            "pieces": g.pieces,
            "sheets": g.sheets,
            "by_weight_class": g.by_weight_class.iter().map(|(bound, pieces)| serde_json::json!({
                "max_sheets": bound, "pieces": pieces,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    let jobs = dir.join("jobs");
    for (name, bytes) in [
        ("routed.jsonl", routed),
        ("duplicates.jsonl", dups),
        ("unassembled.jsonl", un),
        (
            "production.json",
            serde_json::to_vec_pretty(&summary).expect("serialisable"),
        ),
    ] {
        let path: PathBuf = jobs.join(name);
        write_durably(&path, &bytes).map_err(io(&path))?;
    }
    Ok(())
}
