//! The commit journal (`commits.jsonl`): one line per committed shard, appended and
//! fsynced after the shard's files and index lines are on disk. It is the run's checkpoint:
//! it records what was committed (each file's length and SHA-256, each index segment's
//! offset, length and SHA-256, and the counts so far), so a resumed run can verify every
//! committed byte before trusting it.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::RunSummary;
use super::output::{FileDigest, OutputStore, Segment, segment_intact};

/// File name of the journal inside the output folder.
pub const JOURNAL: &str = "commits.jsonl";
/// The index files, in the order a shard writes them.
pub const DOCUMENTS: &str = "documents.jsonl";
pub const EXCEPTIONS: &str = "exceptions.jsonl";
pub const WARNINGS: &str = "warnings.jsonl";

/// One committed shard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommitRecord {
    pub shard: u64,
    /// Records the shard held.
    pub records: u64,
    /// Where it was rendered (`local`, a node address).
    pub backend: String,
    pub files: Vec<FileDigest>,
    pub documents: Segment,
    pub exceptions: Segment,
    pub warnings: Segment,
    /// Counts of the run after this shard.
    pub totals: RunSummary,
}

/// The journal file, open for appending.
pub struct Journal {
    file: File,
    /// Byte offset of the end of each record's line, as read or written.
    ends: Vec<u64>,
}

impl Journal {
    /// Opens (creating) the journal in `dir` and returns it with the records it holds.
    /// A torn last line (a power cut mid-append) is cut off: that shard was never committed.
    pub fn open(dir: &Path) -> std::io::Result<(Journal, Vec<CommitRecord>)> {
        let path = dir.join(JOURNAL);
        let mut file = fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)?;
        let mut text = Vec::new();
        file.read_to_end(&mut text)?;
        let mut records = Vec::new();
        let mut ends = Vec::new();
        let mut good = 0usize;
        for line in text.split_inclusive(|&b| b == b'\n') {
            if !line.ends_with(b"\n") {
                break;
            }
            match serde_json::from_slice::<CommitRecord>(line) {
                Ok(r) if r.shard == records.len() as u64 => records.push(r),
                _ => break,
            }
            good += line.len();
            ends.push(good as u64);
        }
        if good < text.len() {
            tracing::warn!(
                journal = %path.display(),
                kept = records.len(),
                "the journal ends in a damaged line; the shards after the last whole line are not committed"
            );
            file.set_len(good as u64)?;
            file.sync_all()?;
        }
        Ok((Journal { file, ends }, records))
    }

    /// Appends a record and fsyncs it: the shard is committed when this returns.
    pub fn append(&mut self, record: &CommitRecord) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(record)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.file.sync_data()?;
        let end = self.ends.last().copied().unwrap_or(0) + line.len() as u64;
        self.ends.push(end);
        Ok(())
    }

    /// Keeps only the first `keep` records (a resumed run drops what it cannot trust), cut
    /// at the byte where their lines ended as read.
    pub fn truncate(&mut self, keep: usize) -> std::io::Result<()> {
        let keep = keep.min(self.ends.len());
        let len = keep.checked_sub(1).map_or(0, |i| self.ends[i]);
        self.ends.truncate(keep);
        self.file.set_len(len)?;
        self.file.sync_all()
    }
}

/// What verifying a run's committed output found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Verified {
    /// Leading journal records whose index segments are intact: the run resumes after them.
    pub keep: usize,
    /// Kept shards with a missing or damaged file: rendered again and their files rewritten.
    pub repair: Vec<u64>,
    /// What was wrong, one line per problem (reported to the operator).
    pub damage: Vec<String>,
}

/// Picks one index file's segment out of a commit record.
type SegmentOf = fn(&CommitRecord) -> &Segment;

/// Verifies every committed shard against the journal: index segments first (a damaged
/// segment ends what can be kept, since the index files are appended in order), then each
/// kept shard's files (damaged files are re-rendered; deterministic output makes that exact).
pub fn verify(
    dir: &Path,
    store: &dyn OutputStore,
    records: &[CommitRecord],
) -> std::io::Result<Verified> {
    let mut v = Verified::default();
    let index: [(&str, SegmentOf); 3] = [
        (DOCUMENTS, |r| &r.documents),
        (EXCEPTIONS, |r| &r.exceptions),
        (WARNINGS, |r| &r.warnings),
    ];
    let paths: Vec<(PathBuf, SegmentOf)> = index.iter().map(|(n, f)| (dir.join(n), *f)).collect();
    'records: for r in records {
        for (path, seg) in &paths {
            if !segment_intact(path, seg(r))? {
                v.damage.push(format!(
                    "{}: the lines of shard {} are missing or damaged",
                    path.file_name().unwrap_or_default().to_string_lossy(),
                    r.shard
                ));
                break 'records;
            }
        }
        let mut damaged = false;
        for f in &r.files {
            match store.digest(&f.name)? {
                Some(d) if d == *f => {}
                Some(d) if d.bytes != f.bytes => {
                    v.damage.push(format!(
                        "{}: {} bytes on disk, {} committed",
                        f.name, d.bytes, f.bytes
                    ));
                    damaged = true;
                }
                Some(_) => {
                    v.damage.push(format!(
                        "{}: content differs from what was committed",
                        f.name
                    ));
                    damaged = true;
                }
                None => {
                    v.damage.push(format!("{}: missing", f.name));
                    damaged = true;
                }
            }
        }
        if damaged {
            v.repair.push(r.shard);
        }
        v.keep += 1;
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::output::LocalDir;
    use crate::run::shard::OutputFile;

    fn record(shard: u64, files: Vec<FileDigest>) -> CommitRecord {
        CommitRecord {
            shard,
            records: 1,
            backend: "local".into(),
            files,
            documents: Segment::default(),
            exceptions: Segment::default(),
            warnings: Segment::default(),
            totals: RunSummary::default(),
        }
    }

    #[test]
    fn a_torn_last_line_is_not_a_commit() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut j, r) = Journal::open(dir.path()).unwrap();
            assert!(r.is_empty());
            j.append(&record(0, vec![])).unwrap();
            j.append(&record(1, vec![])).unwrap();
        }
        let path = dir.path().join(JOURNAL);
        let text = fs::read(&path).unwrap();
        fs::write(&path, &text[..text.len() - 5]).unwrap();
        let (_, r) = Journal::open(dir.path()).unwrap();
        assert_eq!(r.len(), 1);
        let (_, r) = Journal::open(dir.path()).unwrap();
        assert_eq!(r.len(), 1, "the torn line was cut off");
    }

    #[test]
    fn truncation_cuts_at_the_lines_as_they_were_read() {
        let dir = tempfile::tempdir().unwrap();
        // Lines spelled differently from how this build writes them (another version).
        let spaced = |shard: u64| {
            let v = serde_json::to_value(record(shard, vec![])).unwrap();
            format!(
                "{}\n",
                serde_json::to_string_pretty(&v).unwrap().replace('\n', " ")
            )
        };
        let (first, second) = (spaced(0), spaced(1));
        fs::write(dir.path().join(JOURNAL), format!("{first}{second}")).unwrap();
        let (mut j, r) = Journal::open(dir.path()).unwrap();
        assert_eq!(r.len(), 2);
        j.truncate(1).unwrap();
        j.append(&record(1, vec![])).unwrap();
        let (_, r) = Journal::open(dir.path()).unwrap();
        assert_eq!(r.len(), 2, "the append after the cut is a whole line");
        let text = fs::read_to_string(dir.path().join(JOURNAL)).unwrap();
        assert!(text.starts_with(&first));
    }

    #[test]
    fn verification_finds_damaged_files_and_segments() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDir(dir.path().to_path_buf());
        let a = OutputFile {
            name: "print-00001.pdf".into(),
            bytes: b"aaaa".to_vec(),
        };
        let b = OutputFile {
            name: "print-00002.pdf".into(),
            bytes: b"bbbb".to_vec(),
        };
        store.put_all(&[a.clone(), b.clone()]).unwrap();
        let mut docs =
            crate::run::output::JsonLines::open_at(&dir.path().join(DOCUMENTS), 0).unwrap();
        docs.write(&"one").unwrap();
        let s0 = docs.commit_segment().unwrap();
        docs.write(&"two").unwrap();
        let s1 = docs.commit_segment().unwrap();
        let mut r0 = record(0, vec![FileDigest::of(&a.name, &a.bytes)]);
        r0.documents = s0;
        let mut r1 = record(1, vec![FileDigest::of(&b.name, &b.bytes)]);
        r1.documents = s1;
        let records = [r0, r1];
        assert_eq!(
            verify(dir.path(), &store, &records).unwrap(),
            Verified {
                keep: 2,
                ..Verified::default()
            }
        );
        fs::write(dir.path().join(&a.name), b"").unwrap();
        let v = verify(dir.path(), &store, &records).unwrap();
        assert_eq!((v.keep, v.repair.as_slice()), (2, [0].as_slice()));
        let f = fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join(DOCUMENTS))
            .unwrap();
        f.set_len(8).unwrap();
        let v = verify(dir.path(), &store, &records).unwrap();
        assert_eq!(v.keep, 1, "{v:?}");
        assert_eq!(v.damage.len(), 2);
    }
}
