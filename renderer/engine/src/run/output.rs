//! Output: batching rules, file names and atomic commits of shard output to a folder.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;

use serde::Serialize;

/// Print-file name of `part` (0-based) of batch `batch` (0-based).
pub fn print_file_name(batch: u64, part: u32) -> String {
    if part == 0 {
        format!("print-{:05}.pdf", batch + 1)
    } else {
        format!("print-{:05}-{:02}.pdf", batch + 1, part + 1)
    }
}

/// Sheets a document of `pages` pages takes.
pub fn sheets_for(pages: u32, duplex: bool) -> u32 {
    if duplex { pages.div_ceil(2) } else { pages }
}

/// Where a run's files (print files, per-document PDFs) go. Every put is whole and atomic:
/// a reader sees the complete object or none. The local folder is the default; an object
/// store (S3) fits the same interface. The index files (`documents.jsonl`, …) are the run's
/// journal and stay in the local output folder, which resumption truncates.
pub trait OutputStore: Send {
    /// Stores `bytes` under `name` (a relative path such as `documents/x.pdf`).
    fn put(&self, name: &str, bytes: &[u8]) -> std::io::Result<()>;
}

/// The default store: a local folder, written with temporary names and renames.
pub struct LocalDir(pub std::path::PathBuf);

impl OutputStore for LocalDir {
    fn put(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        let path = self.0.join(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        write_atomically(&path, bytes)
    }
}

/// Writes a file under a temporary name, then renames it into place.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("part");
    fs::write(&tmp, bytes)?;
    fs::rename(&tmp, path)
}

/// A JSON Lines file written through a buffer.
pub struct JsonLines {
    out: BufWriter<File>,
    /// Bytes in the file once the buffer is flushed.
    len: u64,
}

impl JsonLines {
    /// Creates (truncates) the file.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        Ok(Self {
            out: BufWriter::with_capacity(1 << 16, File::create(path)?),
            len: 0,
        })
    }

    /// Opens the file for appending after cutting it to `len` bytes (resuming a run
    /// after its last checkpoint: lines written after it are discarded).
    pub fn open_at(path: &Path, len: u64) -> std::io::Result<Self> {
        let f = fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(path)?;
        f.set_len(len)?;
        let mut f = f;
        std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(len))?;
        Ok(Self {
            out: BufWriter::with_capacity(1 << 16, f),
            len,
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
        let line = serde_json::to_vec(value)?;
        self.out.write_all(&line)?;
        self.out.write_all(b"\n")?;
        self.len += line.len() as u64 + 1;
        Ok(())
    }

    /// Flushes the buffer.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
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
    fn the_local_store_puts_whole_files_in_subfolders() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDir(dir.path().to_path_buf());
        store.put("documents/a.pdf", b"%PDF-1.7").unwrap();
        assert_eq!(
            fs::read(dir.path().join("documents/a.pdf")).unwrap(),
            b"%PDF-1.7"
        );
        assert!(!dir.path().join("documents/a.part").exists());
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
