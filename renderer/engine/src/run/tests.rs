//! Tests of runs: folder ownership, durable commits and repair, the bounded window, bad
//! answers, draining — on the example statement with small batches.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::*;
use crate::example_data::{self, Example};
use crate::template::{CompileOptions, compile};

fn template() -> Arc<Template> {
    static T: OnceLock<Arc<Template>> = OnceLock::new();
    T.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/statement");
        Arc::new(compile(&dir, &CompileOptions::default()).unwrap().template)
    })
    .clone()
}

fn data(dir: &Path, n: u64) -> PathBuf {
    let path = dir.join("in.jsonl");
    let mut f = std::fs::File::create(&path).unwrap();
    example_data::write(Example::Statement, 3, n, &mut f).unwrap();
    path
}

fn spec(data: &Path, out: &Path) -> RunSpec {
    RunSpec {
        data: data.to_path_buf(),
        out: out.to_path_buf(),
        batch_records: 4,
        output: OutputParams {
            run_date: "2026-11-23".into(),
            ..OutputParams::default()
        },
        ..RunSpec::default()
    }
}

fn local(threads: usize) -> Vec<Arc<dyn Backend>> {
    vec![Arc::new(LocalBackend::new(template(), threads))]
}

fn quiet() -> OnProgress<fn(&Progress)> {
    OnProgress(|_| {})
}

fn go(spec: &RunSpec, backends: &[Arc<dyn Backend>]) -> Result<RunReport, RunError> {
    run(template(), spec, backends, &RunControl::default(), &quiet())
}

/// The output files of a folder (not the run's bookkeeping), by name.
fn outputs(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for sub in ["", "documents"] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for e in entries {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().to_string();
            let bookkeeping = [
                folder::LOCK,
                folder::MANIFEST,
                folder::SUMMARY,
                journal::JOURNAL,
            ];
            if e.file_type().unwrap().is_file() && !bookkeeping.contains(&name.as_str()) {
                files.insert(format!("{sub}/{name}"), std::fs::read(e.path()).unwrap());
            }
        }
    }
    files
}

#[test]
fn a_finished_or_foreign_folder_is_refused_and_replace_leaves_nothing_stale() {
    let dir = tempfile::tempdir().unwrap();
    let input = data(dir.path(), 24);
    let out = dir.path().join("out");
    let first = go(&spec(&input, &out), &local(2)).unwrap();
    assert_eq!(first.status, RunStatus::Succeeded);
    assert_eq!(first.summary.records, 24);
    // The same run again: finished.
    let again = go(&spec(&input, &out), &local(2));
    assert!(matches!(
        again,
        Err(RunError::Folder(FolderError::Finished { .. }))
    ));
    // Spelled differently, it is still the same folder and the same run.
    let spelled = dir.path().join("./out/");
    let again = go(&spec(&input, &spelled), &local(2));
    assert!(matches!(
        again,
        Err(RunError::Folder(FolderError::Finished { .. }))
    ));
    // A smaller run into the folder of the bigger one: refused, then replaced cleanly.
    let mut small = spec(&input, &out);
    small.limit = Some(8);
    let refused = go(&small, &local(2));
    assert!(matches!(
        refused,
        Err(RunError::Folder(FolderError::OtherRun { .. }))
    ));
    small.replace = true;
    let replaced = go(&small, &local(2)).unwrap();
    assert_eq!(replaced.summary.records, 8);
    let names: Vec<String> = outputs(&out).into_keys().collect();
    assert_eq!(
        names,
        [
            "/documents.jsonl",
            "/exceptions.jsonl",
            "/print-00001.pdf",
            "/print-00002.pdf",
            "/warnings.jsonl"
        ]
    );
    // A folder of someone else's files is never written into.
    let foreign = dir.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "mine").unwrap();
    assert!(matches!(
        go(&spec(&input, &foreign), &local(1)),
        Err(RunError::Folder(FolderError::Foreign { .. }))
    ));
}

#[test]
fn damaged_committed_output_is_verified_and_repaired_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    let input = data(dir.path(), 24);
    let clean = dir.path().join("clean");
    go(&spec(&input, &clean), &local(2)).unwrap();

    let out = dir.path().join("cut");
    go(&spec(&input, &out), &local(2)).unwrap();
    // Simulate a power cut after the fact: the run is "running" again, an index file is
    // truncated, a print file emptied, another deleted, another's bytes zeroed.
    let manifest = std::fs::read_to_string(out.join(folder::MANIFEST)).unwrap();
    std::fs::write(
        out.join(folder::MANIFEST),
        manifest.replace("\"succeeded\"", "\"running\""),
    )
    .unwrap();
    let docs = out.join(journal::DOCUMENTS);
    let len = std::fs::metadata(&docs).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&docs)
        .unwrap()
        .set_len(len * 2 / 3)
        .unwrap();
    std::fs::write(out.join("print-00001.pdf"), b"").unwrap();
    std::fs::remove_file(out.join("print-00002.pdf")).unwrap();
    let p3 = out.join("print-00003.pdf");
    let zeros = vec![0u8; std::fs::metadata(&p3).unwrap().len() as usize];
    std::fs::write(&p3, zeros).unwrap();

    let report = go(&spec(&input, &out), &local(2)).unwrap();
    assert_eq!(report.status, RunStatus::Succeeded);
    assert!(
        report.resumed_shards > 0 && report.resumed_shards < 6,
        "{report:?}"
    );
    assert!(
        report
            .repaired
            .iter()
            .any(|d| d.contains("print-00001.pdf"))
            && report
                .repaired
                .iter()
                .any(|d| d.contains("print-00002.pdf: missing"))
            && report
                .repaired
                .iter()
                .any(|d| d.contains("print-00003.pdf"))
            && report
                .repaired
                .iter()
                .any(|d| d.contains("documents.jsonl")),
        "{:?}",
        report.repaired
    );
    assert_eq!(outputs(&out), outputs(&clean));
    assert_eq!(report.summary, go_summary(&clean));
}

fn go_summary(dir: &Path) -> RunSummary {
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(folder::SUMMARY)).unwrap()).unwrap();
    serde_json::from_value(s["summary"].clone()).unwrap()
}

/// A backend that hangs on its first shard until released (then reports a stall), and
/// records which shards the other backends took meanwhile.
struct Hanging {
    inner: LocalBackend,
    hanging: Arc<AtomicBool>,
    hung_once: AtomicBool,
    hung_shard: std::sync::atomic::AtomicU64,
}

impl Backend for Hanging {
    fn name(&self) -> &str {
        "hanging"
    }
    fn slots(&self) -> usize {
        1
    }
    fn render(
        &self,
        slot: usize,
        work: &ShardWork,
        cancel: &AtomicBool,
    ) -> Result<shard::ShardOutput, BackendError> {
        if !self.hung_once.swap(true, Ordering::SeqCst) {
            self.hung_shard.store(work.shard, Ordering::SeqCst);
            self.hanging.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(1500));
            self.hanging.store(false, Ordering::SeqCst);
            return Err(BackendError::Stalled("test".into()));
        }
        self.inner.render(slot, work, cancel)
    }
}

/// A backend that records the shards it rendered while another one hung.
struct Watching {
    inner: LocalBackend,
    hanging: Arc<AtomicBool>,
    during_hang: Mutex<Vec<u64>>,
}

impl Backend for Watching {
    fn name(&self) -> &str {
        "watching"
    }
    fn slots(&self) -> usize {
        2
    }
    fn render(
        &self,
        slot: usize,
        work: &ShardWork,
        cancel: &AtomicBool,
    ) -> Result<shard::ShardOutput, BackendError> {
        if self.hanging.load(Ordering::SeqCst) {
            self.during_hang.lock().unwrap().push(work.shard);
        }
        self.inner.render(slot, work, cancel)
    }
}

#[test]
fn a_hung_backend_holds_back_at_most_a_window_of_shards() {
    let dir = tempfile::tempdir().unwrap();
    let input = data(dir.path(), 40);
    let hanging = Arc::new(AtomicBool::new(false));
    let hang = Arc::new(Hanging {
        inner: LocalBackend::new(template(), 1),
        hanging: hanging.clone(),
        hung_once: AtomicBool::new(false),
        hung_shard: std::sync::atomic::AtomicU64::new(0),
    });
    let watch = Arc::new(Watching {
        inner: LocalBackend::new(template(), 2),
        hanging,
        during_hang: Mutex::new(Vec::new()),
    });
    let backends: Vec<Arc<dyn Backend>> = vec![hang.clone(), watch.clone()];
    let mut s = spec(&input, &dir.path().join("out"));
    s.window = 3;
    let report = go(&s, &backends).unwrap();
    assert_eq!(report.summary.records, 40);
    let during = watch.during_hang.lock().unwrap().clone();
    assert!(!during.is_empty(), "the hang was not observed");
    // The commit point could not pass the hung shard, so nothing a window past it ran.
    let hung = hang.hung_shard.load(Ordering::SeqCst);
    assert!(
        during.iter().all(|&s| s < hung + 3),
        "shards {during:?} ran more than a window ahead of the hung shard {hung}"
    );
    let clean = dir.path().join("clean");
    go(&spec(&input, &clean), &local(2)).unwrap();
    assert_eq!(outputs(&dir.path().join("out")), outputs(&clean));
}

/// A backend that answers one shard with someone else's output.
struct Lying {
    inner: LocalBackend,
    lied: AtomicBool,
}

impl Backend for Lying {
    fn name(&self) -> &str {
        "lying"
    }
    fn slots(&self) -> usize {
        1
    }
    fn render(
        &self,
        slot: usize,
        work: &ShardWork,
        cancel: &AtomicBool,
    ) -> Result<shard::ShardOutput, BackendError> {
        let mut out = self.inner.render(slot, work, cancel)?;
        if !self.lied.swap(true, Ordering::SeqCst) {
            out.files[0].name = "../../escape.pdf".into();
        }
        Ok(out)
    }
}

#[derive(Default)]
struct Failures(Mutex<Vec<BackendError>>);

impl RunObserver for Failures {
    fn failed(&self, _backend: &str, _shard: u64, error: &BackendError) {
        self.0.lock().unwrap().push(error.clone());
    }
}

#[test]
fn a_false_answer_is_a_backend_failure_and_never_output() {
    let dir = tempfile::tempdir().unwrap();
    let input = data(dir.path(), 12);
    let backends: Vec<Arc<dyn Backend>> = vec![Arc::new(Lying {
        inner: LocalBackend::new(template(), 1),
        lied: AtomicBool::new(false),
    })];
    let failures = Failures::default();
    let out = dir.path().join("out");
    let report = run(
        template(),
        &spec(&input, &out),
        &backends,
        &RunControl::default(),
        &failures,
    )
    .unwrap();
    assert_eq!(report.status, RunStatus::Succeeded);
    let seen = failures.0.lock().unwrap().clone();
    assert!(
        matches!(seen.as_slice(), [BackendError::BadAnswer(m)] if m.contains("does not belong")),
        "{seen:?}"
    );
    assert!(!dir.path().join("escape.pdf").exists());
    let clean = dir.path().join("clean");
    go(&spec(&input, &clean), &local(1)).unwrap();
    assert_eq!(outputs(&out), outputs(&clean));
}

/// Drains the run after its second commit.
struct DrainAfter<'a>(&'a RunControl, AtomicUsize);

impl RunObserver for DrainAfter<'_> {
    fn committed(&self, _record: &CommitRecord, _progress: &Progress) {
        if self.1.fetch_add(1, Ordering::SeqCst) == 1 {
            self.0.drain();
        }
    }
}

#[test]
fn a_drained_run_stops_on_a_shard_boundary_and_resumes_to_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let input = data(dir.path(), 40);
    let out = dir.path().join("out");
    let control = RunControl::default();
    let report = run(
        template(),
        &spec(&input, &out),
        &local(1),
        &control,
        &DrainAfter(&control, AtomicUsize::new(0)),
    )
    .unwrap();
    assert_eq!(report.status, RunStatus::Stopped);
    assert!(report.summary.records < 40 && report.summary.records.is_multiple_of(4));
    let stopped: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join(folder::SUMMARY)).unwrap()).unwrap();
    assert_eq!(stopped["status"], "stopped");
    assert_eq!(stopped["summary"]["records"], report.summary.records);
    let resumed = go(&spec(&input, &out), &local(2)).unwrap();
    assert_eq!(resumed.status, RunStatus::Succeeded);
    assert!(resumed.resumed_shards >= 2);
    assert_eq!(resumed.summary.records, 40);
    let clean = dir.path().join("clean");
    go(&spec(&input, &clean), &local(2)).unwrap();
    assert_eq!(outputs(&out), outputs(&clean));
}

#[test]
fn an_input_that_changes_during_the_run_fails_it() {
    let dir = tempfile::tempdir().unwrap();
    let input = data(dir.path(), 8);
    let template = template();
    let s = spec(&input, &dir.path().join("out"));
    let claimed = prepare(&template, &s).unwrap().claim(&s).unwrap();
    // Changed after the run hashed it, before it read it.
    std::fs::write(
        &input,
        std::fs::read_to_string(&input).unwrap().replace("a", "b"),
    )
    .unwrap();
    let r = run_claimed(
        template,
        &s,
        claimed,
        &local(1),
        &RunControl::default(),
        &quiet(),
    );
    assert!(matches!(r, Err(RunError::InputChanged { .. })), "{r:?}");
}

#[test]
fn summary_and_index_name_the_template_input_and_engine() {
    let dir = tempfile::tempdir().unwrap();
    let input = data(dir.path(), 5);
    let out = dir.path().join("out");
    let report = go(&spec(&input, &out), &local(1)).unwrap();
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join(folder::SUMMARY)).unwrap()).unwrap();
    let hash = hex::encode(template().content_hash);
    assert_eq!(s["template"]["content_hash"], hash.as_str());
    assert_eq!(s["template"]["id"], "statement");
    assert_eq!(s["engine"], ENGINE_BUILD);
    let expected = hex::encode(sha2::Sha256::digest(std::fs::read(&input).unwrap()));
    assert_eq!(s["input"]["sha256"], expected.as_str());
    assert_eq!(report.input_sha256, expected);
    assert_eq!(s["summary"]["records"], 5);
    assert_eq!(s["run_id"], report.run_id.as_str());
    for line in std::fs::read_to_string(out.join(journal::DOCUMENTS))
        .unwrap()
        .lines()
    {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(row["template_sha256"], hash.as_str());
    }
}

/// A backend that is never reachable.
struct Down;

impl Backend for Down {
    fn name(&self) -> &str {
        "down"
    }
    fn slots(&self) -> usize {
        1
    }
    fn probe(&self) -> Result<(), BackendError> {
        Err(BackendError::Unavailable("test".into()))
    }
    fn render(
        &self,
        _slot: usize,
        _work: &ShardWork,
        _cancel: &AtomicBool,
    ) -> Result<shard::ShardOutput, BackendError> {
        Err(BackendError::Unavailable("test".into()))
    }
}

#[test]
fn a_run_with_no_reachable_backend_fails_instead_of_waiting_forever() {
    let dir = tempfile::tempdir().unwrap();
    let input = data(dir.path(), 8);
    let mut s = spec(&input, &dir.path().join("out"));
    s.unavailable = Duration::from_millis(300);
    let backends: Vec<Arc<dyn Backend>> = vec![Arc::new(Down)];
    let r = go(&s, &backends);
    assert!(matches!(r, Err(RunError::Unavailable { .. })), "{r:?}");
    // Resumable: the same run with a working backend completes.
    let done = go(&spec(&input, &dir.path().join("out")), &local(1)).unwrap();
    assert_eq!(done.summary.records, 8);
}

/// A print-production run of the example statement with the example profile.
fn production_spec(data: &Path, out: &Path) -> (RunSpec, Arc<crate::production::Profile>) {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/production/statement.toml");
    let profile = Arc::new(crate::production::Profile::read(&path).unwrap());
    let mut s = spec(data, out);
    s.output.spool = true;
    s.output.duplex = profile.duplex;
    s.production = Some(profile.clone());
    (s, profile)
}

#[test]
fn assembly_trusts_no_name_and_no_input_it_did_not_check() {
    let tmp = tempfile::tempdir().unwrap();
    let input = data(tmp.path(), 10);
    let out = tmp.path().join("out");
    let (s, profile) = production_spec(&input, &out);
    let report = go(&s, &local(2)).unwrap();
    assert_eq!(report.production.as_ref().unwrap().jobs, 1);
    let t = template();
    let (sha, _) = file_sha256(&input).unwrap();
    fn aspec<'a>(
        template: &'a Template,
        profile: &'a crate::production::Profile,
        data: &'a Path,
        input_sha256: &'a str,
    ) -> crate::assemble::AssembleSpec<'a> {
        crate::assemble::AssembleSpec {
            template,
            profile,
            data,
            input_sha256,
            format: crate::input::InputFormat::Jsonl,
            max_record_bytes: 1 << 20,
            limit: None,
            compression: 1,
            threads: 1,
            run_date: "2026-11-23",
        }
    }
    let never = || false;
    let other = "0".repeat(64);
    let aspec = |h| aspec(&t, &profile, &input, h);
    // The same folder assembles again, keeping its committed job.
    let again = crate::assemble::assemble(&out, &aspec(&sha), &never).unwrap();
    assert_eq!(again.resumed_jobs, 1);
    // An input that is not the one the run rendered is refused.
    let e = crate::assemble::assemble(&out, &aspec(&other), &never).unwrap_err();
    assert!(
        e.to_string().contains("changed after the run rendered it"),
        "{e}"
    );
    // A journal line naming a file outside the job is not trusted: the job is rewritten.
    let journal = out.join(crate::assemble::JOURNAL);
    let text = std::fs::read_to_string(&journal).unwrap();
    std::fs::write(
        &journal,
        text.replace("jobs/J000001.pdf", "../../../dev/zero"),
    )
    .unwrap();
    let again = crate::assemble::assemble(&out, &aspec(&sha), &never).unwrap();
    assert_eq!(again.resumed_jobs, 0);
    // An index that names a file other than a spool of this run is refused.
    let index = out.join(journal::DOCUMENTS);
    let text = std::fs::read_to_string(&index).unwrap();
    std::fs::write(
        &index,
        text.replacen("spool/00001.spool", "../../etc/passwd", 1),
    )
    .unwrap();
    let e = crate::assemble::assemble(&out, &aspec(&sha), &never).unwrap_err();
    assert!(
        e.to_string().contains("not a spool file of this run"),
        "{e}"
    );
}
