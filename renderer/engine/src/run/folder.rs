//! The output folder a run owns: an exclusive lock for the run's whole life (`run.lock`),
//! the run's identity and state (`run.json`), and the rules for reusing a folder.
//!
//! A folder belongs to one run, named by its identity: the canonical folder, the input's
//! SHA-256, the template's content hash and every parameter that shapes the output. The
//! same identity resumes; a different run, a finished run or a folder of unknown files is
//! refused unless the operator asks for `replace`, which removes the old outputs first.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::journal::{DOCUMENTS, EXCEPTIONS, JOURNAL, WARNINGS};
use super::output::{sync_dir, write_durably};
use super::shard::OutputParams;

/// The lock file: locked (advisory, `flock`) while a run works in the folder.
pub const LOCK: &str = "run.lock";
/// The run's identity and state.
pub const MANIFEST: &str = "run.json";
/// The summary a finished run writes.
pub const SUMMARY: &str = "summary.json";

/// Everything that decides a run's output, and so names the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunIdentity {
    /// Canonical absolute output folder.
    pub out: String,
    /// SHA-256 of the input file (`None` for standard input, which cannot be resumed).
    pub input_sha256: Option<String>,
    pub input_bytes: Option<u64>,
    /// Input format (`jsonl`, `csv`).
    pub format: String,
    /// Content hash of the template (bundle) the run renders.
    pub template_sha256: String,
    pub batch_records: u64,
    pub limit: Option<u64>,
    /// Largest record read (longer ones are rejected).
    pub max_record_bytes: u64,
    pub params: OutputParams,
    /// The engine build that renders it: a resume on another build would mix outputs.
    pub engine: String,
    /// SHA-256 of the production profile the run assembles print jobs with, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub production_sha256: Option<String>,
}

impl RunIdentity {
    /// The run id: the first 16 hex digits of the SHA-256 of the identity.
    pub fn run_id(&self) -> String {
        let json = serde_json::to_vec(self).expect("an identity serializes");
        hex::encode(&Sha256::digest(&json)[..8])
    }

    /// Whether a run with this identity can pick up where an earlier one stopped.
    fn resumable(&self) -> bool {
        self.input_sha256.is_some()
    }
}

/// Where a run is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
    Stopped,
    Cancelled,
}

impl RunStatus {
    /// The lower-case name used in files and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Stopped => "stopped",
            RunStatus::Cancelled => "cancelled",
        }
    }
}

/// The content of `run.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunManifest {
    pub run_id: String,
    pub status: RunStatus,
    /// The input as named on the command line (informational; the identity has its hash).
    pub input: String,
    pub identity: RunIdentity,
}

/// A folder that cannot be used for this run.
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    #[error(
        "{dir} is in use by another run (its run.lock is held): wait for it to end or choose another --out"
    )]
    Locked { dir: String },
    #[error(
        "{dir} holds the finished run {run_id}: choose another --out, or pass --replace to remove its output and render again"
    )]
    Finished { dir: String, run_id: String },
    #[error(
        "{dir} holds another run ({run_id}, {status}) with other inputs or parameters: choose another --out, or pass --replace to remove its output first"
    )]
    OtherRun {
        dir: String,
        run_id: String,
        status: String,
    },
    #[error(
        "{dir} is not empty and is not a pressrun output folder: choose an empty or new folder (or pass --replace to remove pressrun outputs from it)"
    )]
    Foreign { dir: String },
    #[error(
        "{dir} holds an earlier run of standard input, which cannot be resumed: pass --replace or choose another --out"
    )]
    NotResumable { dir: String },
    #[error(
        "{dir}/run.json is damaged ({reason}): inspect the folder, then pass --replace to start over"
    )]
    DamagedManifest { dir: String, reason: String },
    #[error("cannot use output folder {dir}: {source}")]
    Io { dir: String, source: std::io::Error },
}

/// How a run starts in its folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Nothing to keep: a new run.
    Fresh,
    /// An earlier attempt of the same run: verify and resume.
    Resume,
}

/// An output folder held by this run; the lock is released when it is dropped (or when
/// the process dies, so a killed run never leaves a stale lock).
pub struct OwnedFolder {
    dir: PathBuf,
    manifest: RunManifest,
    _lock: File,
}

/// Canonicalizes an output folder, creating it if needed.
pub fn canonical_out(out: &Path) -> Result<PathBuf, FolderError> {
    let io = |source| FolderError::Io {
        dir: out.display().to_string(),
        source,
    };
    fs::create_dir_all(out).map_err(io)?;
    fs::canonicalize(out).map_err(io)
}

impl OwnedFolder {
    /// Takes the folder `identity.out` for the run, or says why it cannot.
    pub fn claim(
        identity: RunIdentity,
        input: &str,
        replace: bool,
    ) -> Result<(OwnedFolder, Claim), FolderError> {
        let dir = PathBuf::from(&identity.out);
        let shown = dir.display().to_string();
        let io = |source| FolderError::Io {
            dir: shown.clone(),
            source,
        };
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK))
            .map_err(io)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(FolderError::Locked { dir: shown }),
            Err(fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        let run_id = identity.run_id();
        let existing = match fs::read(dir.join(MANIFEST)) {
            Ok(bytes) => Some(serde_json::from_slice::<RunManifest>(&bytes).map_err(|e| {
                FolderError::DamagedManifest {
                    dir: shown.clone(),
                    reason: e.to_string(),
                }
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(e)),
        };
        let claim = match existing {
            // `replace` always starts over: whatever the folder holds goes first.
            Some(old) if replace => {
                if let Ok(m) = &old {
                    tracing::warn!(dir = %shown, old = %m.run_id, "replacing an earlier run's output");
                }
                clear(&dir).map_err(io)?;
                Claim::Fresh
            }
            Some(Err(e)) => return Err(e),
            Some(Ok(m)) if m.run_id == run_id && m.status != RunStatus::Succeeded => {
                if !identity.resumable() {
                    return Err(FolderError::NotResumable { dir: shown });
                }
                Claim::Resume
            }
            Some(Ok(m)) if m.run_id == run_id => {
                return Err(FolderError::Finished {
                    dir: shown,
                    run_id: m.run_id,
                });
            }
            Some(Ok(m)) => {
                return Err(FolderError::OtherRun {
                    dir: shown,
                    run_id: m.run_id,
                    status: m.status.as_str().into(),
                });
            }
            None => {
                if has_entries(&dir).map_err(io)? {
                    if !replace {
                        return Err(FolderError::Foreign { dir: shown });
                    }
                    clear(&dir).map_err(io)?;
                }
                Claim::Fresh
            }
        };
        let manifest = RunManifest {
            run_id,
            status: RunStatus::Running,
            input: input.to_string(),
            identity,
        };
        let owned = OwnedFolder {
            dir,
            manifest,
            _lock: lock,
        };
        owned.set_status(RunStatus::Running).map_err(io)?;
        Ok((owned, claim))
    }

    /// The canonical folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The run id.
    pub fn run_id(&self) -> &str {
        &self.manifest.run_id
    }

    /// The identity the run was claimed with.
    pub fn identity(&self) -> &RunIdentity {
        &self.manifest.identity
    }

    /// Records the run's state in `run.json`, durably.
    pub fn set_status(&self, status: RunStatus) -> std::io::Result<()> {
        let manifest = RunManifest {
            status,
            ..self.manifest.clone()
        };
        write_durably(
            &self.dir.join(MANIFEST),
            &serde_json::to_vec_pretty(&manifest)?,
        )
    }
}

/// Whether the folder holds anything but the lock file.
fn has_entries(dir: &Path) -> std::io::Result<bool> {
    for e in fs::read_dir(dir)? {
        if e?.file_name() != LOCK {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether a file name in the output folder is one of the outputs a run writes.
fn is_run_output(name: &str) -> bool {
    matches!(
        name,
        MANIFEST | SUMMARY | JOURNAL | DOCUMENTS | EXCEPTIONS | WARNINGS
    ) || name.starts_with("run-state.sqlite")
        || (name.starts_with("print-") && (name.ends_with(".pdf") || name.ends_with(".pdf.part")))
        || name.ends_with(".part")
}

/// The folders a run writes into, and the endings of the files it writes there.
const SUBFOLDERS: [(&str, &[&str]); 3] = [
    ("documents", &[".pdf"]),
    ("spool", &[".spool"]),
    ("jobs", &[".pdf", ".jsonl", ".json"]),
];

/// Removes every output of an earlier run from the folder (and only those: files the
/// run did not write stay, and are reported).
fn clear(dir: &Path) -> std::io::Result<()> {
    let mut kept = Vec::new();
    for e in fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let kind = e.file_type()?;
        if name == LOCK {
            continue;
        }
        if let Some(&(_, exts)) = SUBFOLDERS.iter().find(|(n, _)| *n == name)
            && kind.is_dir()
        {
            for d in fs::read_dir(e.path())? {
                let d = d?;
                let n = d.file_name().to_string_lossy().into_owned();
                if d.file_type()?.is_file()
                    && (exts.iter().any(|x| n.ends_with(x)) || n.ends_with(".part"))
                {
                    fs::remove_file(d.path())?;
                } else {
                    kept.push(format!("{name}/{n}"));
                }
            }
            if fs::remove_dir(e.path()).is_err() {
                kept.push(format!("{name}/"));
            }
        } else if kind.is_file() && is_run_output(&name) {
            fs::remove_file(e.path())?;
        } else {
            kept.push(name);
        }
    }
    sync_dir(dir)?;
    if !kept.is_empty() {
        tracing::warn!(dir = %dir.display(), files = ?kept, "--replace left files that no run writes");
    }
    Ok(())
}

/// Removes temporary files (`*.part`) an interrupted commit may have left.
pub fn remove_partials(dir: &Path) -> std::io::Result<()> {
    let subs = SUBFOLDERS.iter().map(|(n, _)| dir.join(n));
    for sub in std::iter::once(dir.to_path_buf()).chain(subs) {
        let Ok(entries) = fs::read_dir(&sub) else {
            continue;
        };
        for e in entries {
            let e = e?;
            if e.file_name().to_string_lossy().ends_with(".part") && e.file_type()?.is_file() {
                fs::remove_file(e.path())?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(dir: &Path, input: &str) -> RunIdentity {
        RunIdentity {
            production_sha256: None,
            out: canonical_out(dir).unwrap().display().to_string(),
            input_sha256: Some(input.into()),
            input_bytes: Some(1),
            format: "jsonl".into(),
            template_sha256: "t".into(),
            batch_records: 10,
            limit: None,
            max_record_bytes: 1 << 20,
            params: OutputParams::default(),
            engine: "test".into(),
        }
    }

    #[test]
    fn a_folder_has_one_run_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let (held, claim) = OwnedFolder::claim(identity(dir.path(), "a"), "in", false).unwrap();
        assert_eq!(claim, Claim::Fresh);
        let again = OwnedFolder::claim(identity(dir.path(), "a"), "in", false);
        assert!(
            matches!(again, Err(FolderError::Locked { .. })),
            "{:?}",
            again.err()
        );
        drop(held);
        let (_, claim) = OwnedFolder::claim(identity(dir.path(), "a"), "in", false).unwrap();
        assert_eq!(claim, Claim::Resume);
    }

    #[test]
    fn finished_other_and_foreign_folders_are_refused_unless_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let (held, _) = OwnedFolder::claim(identity(dir.path(), "a"), "in", false).unwrap();
        held.set_status(RunStatus::Succeeded).unwrap();
        fs::write(dir.path().join("print-00001.pdf"), b"old").unwrap();
        fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
        drop(held);
        assert!(matches!(
            OwnedFolder::claim(identity(dir.path(), "a"), "in", false),
            Err(FolderError::Finished { .. })
        ));
        assert!(matches!(
            OwnedFolder::claim(identity(dir.path(), "b"), "in", false),
            Err(FolderError::OtherRun { .. })
        ));
        let (_, claim) = OwnedFolder::claim(identity(dir.path(), "b"), "in", true).unwrap();
        assert_eq!(claim, Claim::Fresh);
        assert!(!dir.path().join("print-00001.pdf").exists());
        assert!(dir.path().join("notes.txt").exists(), "foreign files stay");

        let other = tempfile::tempdir().unwrap();
        fs::write(other.path().join("x"), b"").unwrap();
        assert!(matches!(
            OwnedFolder::claim(identity(other.path(), "a"), "in", false),
            Err(FolderError::Foreign { .. })
        ));
    }

    #[test]
    fn the_folder_is_named_canonically() {
        let dir = tempfile::tempdir().unwrap();
        let a = canonical_out(&dir.path().join("x")).unwrap();
        let b = canonical_out(&dir.path().join("./x/")).unwrap();
        assert_eq!(a, b);
    }
}
