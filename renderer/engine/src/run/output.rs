//! Output: batching rules, file names, and durable writes of shard output to a store.
//!
//! "Committed" means on stable storage: every file is written under a temporary name,
//! fsynced, renamed into place, and its folder fsynced before anything refers to it.

use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::shard::OutputFile;

/// The spool file of shard `batch` (0-based), for print production.
pub fn spool_file_name(batch: u64) -> String {
    format!("spool/{:05}.spool", batch.saturating_add(1))
}

/// Whether `name` is a spool file name as [`spool_file_name`] makes them.
pub fn is_spool_file_name(name: &str) -> bool {
    name.strip_prefix("spool/")
        .and_then(|n| n.strip_suffix(".spool"))
        .is_some_and(|n| n.len() >= 5 && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Print-file name of `part` (0-based) of batch `batch` (0-based).
pub fn print_file_name(batch: u64, part: u32) -> String {
    if part == 0 {
        format!("print-{:05}.pdf", batch.saturating_add(1))
    } else {
        format!(
            "print-{:05}-{:02}.pdf",
            batch.saturating_add(1),
            part.saturating_add(1)
        )
    }
}

/// Sheets a document of `pages` pages takes.
pub fn sheets_for(pages: u32, duplex: bool) -> u32 {
    if duplex { pages.div_ceil(2) } else { pages }
}

/// What a committed file holds: its length and SHA-256, as the journal records them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    /// Name relative to the output location (`print-00001.pdf`, `documents/x.pdf`).
    pub name: String,
    pub bytes: u64,
    /// SHA-256 of the bytes, lower-case hex.
    pub sha256: String,
}

impl FileDigest {
    /// Digests bytes about to be stored under `name`.
    pub fn of(name: &str, bytes: &[u8]) -> Self {
        Self {
            name: name.to_string(),
            bytes: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(bytes)),
        }
    }
}

/// Where a run's files (print files, per-document PDFs) go. Every put is whole, atomic and
/// durable: once `put_all` returns, a reader sees each complete file, and a power cut cannot
/// take it back. The local folder is the default; an object store (S3) fits the same
/// interface. The index files (`documents.jsonl`, …) and the journal are the run's record
/// and stay in the local output folder.
pub trait OutputStore: Send + Sync {
    /// Stores every file (names are relative paths such as `documents/x.pdf`).
    fn put_all(&self, files: &[OutputFile]) -> std::io::Result<()>;

    /// Reads back what is stored under `name` (length and SHA-256), `None` if absent.
    fn digest(&self, name: &str) -> std::io::Result<Option<FileDigest>>;
}

/// The default store: a local folder, written with temporary names, fsyncs and renames.
pub struct LocalDir(pub PathBuf);

impl OutputStore for LocalDir {
    fn put_all(&self, files: &[OutputFile]) -> std::io::Result<()> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        let mut staged = Vec::with_capacity(files.len());
        // Many files (one PDF per document) are made durable by one flush of the file
        // system instead of one fsync each, which would make the commit disk-bound.
        let batch = files.len() > FSYNC_ONE_BY_ONE && cfg!(target_os = "linux");
        for f in files {
            let path = self.0.join(&f.name);
            let parent = path.parent().unwrap_or(&self.0).to_path_buf();
            if !dirs.contains(&parent) {
                if !parent.is_dir() {
                    fs::create_dir_all(&parent)?;
                    // A new folder's own name must survive a power cut too.
                    if let Some(up) = parent.parent()
                        && !dirs.iter().any(|d| d == up)
                    {
                        dirs.push(up.to_path_buf());
                    }
                }
                dirs.push(parent);
            }
            let tmp = part_path(&path);
            let mut out = File::create(&tmp)?;
            out.write_all(&f.bytes)?;
            if !batch {
                out.sync_all()?;
            }
            staged.push((tmp, path));
        }
        if batch {
            sync_file_system(&self.0)?;
        }
        for (tmp, path) in staged {
            fs::rename(tmp, path)?;
        }
        for d in dirs {
            sync_dir(&d)?;
        }
        Ok(())
    }

    fn digest(&self, name: &str) -> std::io::Result<Option<FileDigest>> {
        let path = self.0.join(name);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => {}
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        }
        let mut f = File::open(&path)?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut bytes = 0u64;
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            bytes += n as u64;
        }
        Ok(Some(FileDigest {
            name: name.to_string(),
            bytes,
            sha256: hex::encode(h.finalize()),
        }))
    }
}

/// Up to this many files a commit fsyncs one by one; more are flushed together.
const FSYNC_ONE_BY_ONE: usize = 4;

/// Flushes every written file of the file system `dir` is on to stable storage (Linux
/// `syncfs`): the durable point of a batch of files, with one call.
fn sync_file_system(dir: &Path) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        rustix::fs::syncfs(File::open(dir)?).map_err(std::io::Error::from)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = dir;
        Err(std::io::Error::other("batched fsync needs Linux"))
    }
}

/// The temporary name a file is written under before it is renamed into place.
pub fn part_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    path.with_file_name(name)
}

/// Fsyncs a folder, so the names created or renamed in it survive a power cut.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes a small file durably: temporary name, fsync, rename, fsync of the folder.
pub fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = part_path(path);
    let mut out = File::create(&tmp)?;
    out.write_all(bytes)?;
    out.sync_all()?;
    fs::rename(&tmp, path)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// A stretch of an index file that one shard wrote: where it starts, how long it is, and
/// the SHA-256 of its bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    pub offset: u64,
    pub bytes: u64,
    pub sha256: String,
}

/// A JSON Lines file written through a buffer, appended to in segments.
pub struct JsonLines {
    out: BufWriter<File>,
    /// Bytes in the file once the buffer is flushed.
    len: u64,
    segment_start: u64,
    segment: Sha256,
}

impl JsonLines {
    /// Opens the file for appending after cutting it to `len` bytes (a new run passes 0;
    /// a resumed run passes the end of its last committed segment, discarding what was
    /// written after it).
    pub fn open_at(path: &Path, len: u64) -> std::io::Result<Self> {
        let mut f = fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(path)?;
        f.set_len(len)?;
        std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(len))?;
        Ok(Self {
            out: BufWriter::with_capacity(1 << 16, f),
            len,
            segment_start: len,
            segment: Sha256::new(),
        })
    }

    /// Bytes written so far (flushed or not).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends one value as a line.
    pub fn write<T: Serialize>(&mut self, value: &T) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(value)?;
        line.push(b'\n');
        self.out.write_all(&line)?;
        self.segment.update(&line);
        self.len += line.len() as u64;
        Ok(())
    }

    /// Flushes and fsyncs what was written since the last call, and returns that segment.
    pub fn commit_segment(&mut self) -> std::io::Result<Segment> {
        self.out.flush()?;
        self.out.get_ref().sync_data()?;
        let seg = Segment {
            offset: self.segment_start,
            bytes: self.len - self.segment_start,
            sha256: hex::encode(std::mem::take(&mut self.segment).finalize()),
        };
        self.segment_start = self.len;
        Ok(seg)
    }
}

/// Reads `seg` back from `path` and tells whether its bytes are intact.
pub fn segment_intact(path: &Path, seg: &Segment) -> std::io::Result<bool> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(seg.bytes == 0),
        Err(e) => return Err(e),
    };
    if f.metadata()?.len() < seg.offset + seg.bytes {
        return Ok(false);
    }
    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(seg.offset))?;
    let mut h = Sha256::new();
    let mut left = seg.bytes;
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        let n = f.read(&mut buf[..left.min(1 << 20) as usize])?;
        if n == 0 {
            return Ok(false);
        }
        h.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(hex::encode(h.finalize()) == seg.sha256)
}

/// Makes a document id safe as a file name.
pub fn file_stem(record: u64, id: &str) -> String {
    let safe: String = id
        .chars()
        .take(80)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{record:08}-{safe}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sheets_round_up_in_duplex() {
        assert_eq!(sheets_for(3, true), 2);
        assert_eq!(sheets_for(4, true), 2);
        assert_eq!(sheets_for(3, false), 3);
    }

    #[test]
    fn the_local_store_puts_whole_files_in_subfolders_and_digests_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDir(dir.path().to_path_buf());
        let files = [OutputFile {
            name: "documents/a.pdf".into(),
            bytes: b"%PDF-1.7".to_vec(),
        }];
        store.put_all(&files).unwrap();
        assert_eq!(
            fs::read(dir.path().join("documents/a.pdf")).unwrap(),
            b"%PDF-1.7"
        );
        assert!(!dir.path().join("documents/a.pdf.part").exists());
        assert_eq!(
            store.digest("documents/a.pdf").unwrap(),
            Some(FileDigest::of("documents/a.pdf", b"%PDF-1.7"))
        );
        assert_eq!(store.digest("documents/none.pdf").unwrap(), None);
    }

    #[test]
    fn segments_are_verified_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.jsonl");
        let mut j = JsonLines::open_at(&path, 0).unwrap();
        j.write(&1).unwrap();
        let a = j.commit_segment().unwrap();
        j.write(&"two").unwrap();
        j.write(&3).unwrap();
        let b = j.commit_segment().unwrap();
        assert_eq!((a.offset, a.bytes, b.offset, b.bytes), (0, 2, 2, 8));
        assert!(segment_intact(&path, &a).unwrap());
        assert!(segment_intact(&path, &b).unwrap());
        // A truncated file loses the second segment; zeroed bytes fail the hash.
        let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(6).unwrap();
        assert!(segment_intact(&path, &a).unwrap());
        assert!(!segment_intact(&path, &b).unwrap());
        fs::write(&path, b"\0\0").unwrap();
        assert!(!segment_intact(&path, &a).unwrap());
    }

    #[test]
    fn print_files_are_named_by_batch_and_part() {
        assert_eq!(print_file_name(0, 0), "print-00001.pdf");
        assert_eq!(print_file_name(2, 1), "print-00003-02.pdf");
    }

    #[test]
    fn file_stems_are_safe() {
        assert_eq!(file_stem(7, "GB12/34 ü"), "00000007-GB12_34__");
    }
}
