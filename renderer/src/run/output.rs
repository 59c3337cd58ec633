//! Output: print files in batches, the document index, exceptions and warnings.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::doc::DocMeta;
use crate::pdf::{EncodedDocument, PdfEnv, PdfFileWriter, PdfOptions};

/// One line of `documents.jsonl`.
#[derive(Serialize)]
pub struct IndexEntry<'a> {
    pub record: u64,
    pub document_id: &'a str,
    /// Print file name relative to the output folder (absent when print files are off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub print_file: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_page: Option<u32>,
    pub pages: u32,
    pub sheets: u32,
    /// SHA-256 of the document's content (see `pdf::EncodedDocument::content_hash`).
    pub sha256: String,
    /// Per-document PDF, relative to the output folder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pdf: Option<&'a str>,
}

/// One line of `exceptions.jsonl`.
#[derive(Serialize)]
pub struct ExceptionEntry<'a> {
    pub record: u64,
    pub line: u64,
    pub field: &'a str,
    pub reason: &'a str,
}

/// One line of `warnings.jsonl`.
#[derive(Serialize)]
pub struct WarningEntry<'a> {
    pub record: u64,
    pub document_id: &'a str,
    pub message: &'a str,
}

/// How print files are cut.
///
/// A batch is `records` consecutive input records (rejected records leave it short), so a
/// batch is the same set of documents whichever machine renders it: the unit of work a
/// rendering farm ships as one shard. A batch is further cut when it reaches
/// `max_sheets`.
#[derive(Clone, Copy, Debug)]
pub struct Batching {
    pub records: u64,
    pub max_sheets: Option<u32>,
    pub duplex: bool,
}

impl Batching {
    /// The 0-based batch of a 1-based record number.
    pub fn batch_of(&self, record: u64) -> u64 {
        (record.max(1) - 1) / self.records.max(1)
    }
}

/// Print-file name of `part` (0-based) of batch `batch` (0-based).
pub fn print_file_name(batch: u64, part: u32) -> String {
    if part == 0 {
        format!("print-{:05}.pdf", batch + 1)
    } else {
        format!("print-{:05}-{:02}.pdf", batch + 1, part + 1)
    }
}

/// Writes print files one batch at a time; each is written to a temporary name and
/// renamed when complete, so a print file on disk is always whole.
pub struct PrintFiles {
    dir: PathBuf,
    env: PdfEnv,
    opts: PdfOptions,
    batching: Batching,
    title: String,
    lang: String,
    current: Option<Current>,
    pub files_written: u32,
}

struct Current {
    writer: PdfFileWriter,
    name: String,
    batch: u64,
    part: u32,
    sheets: u32,
}

/// Where a document landed in a print file.
pub struct Placement {
    pub file: String,
    pub first_page: u32,
    pub sheets: u32,
}

impl PrintFiles {
    /// Prepares to write print files into `dir`.
    pub fn new(
        dir: &Path,
        env: PdfEnv,
        opts: PdfOptions,
        batching: Batching,
        title: String,
        lang: String,
    ) -> Self {
        Self {
            dir: dir.to_path_buf(),
            env,
            opts,
            batching,
            title,
            lang,
            current: None,
            files_written: 0,
        }
    }

    /// Appends the document of record `record` (and a blank back in duplex when its page
    /// count is odd), closing the previous print file when the batch changes.
    pub fn add(
        &mut self,
        record: u64,
        doc: &EncodedDocument,
        last_page: (f32, f32),
    ) -> std::io::Result<Placement> {
        let batch = self.batching.batch_of(record);
        let mut part = 0;
        if let Some(cur) = &self.current {
            let sheets_full = self.batching.max_sheets.is_some_and(|m| cur.sheets >= m);
            if cur.batch != batch {
                self.close()?;
            } else if sheets_full {
                part = cur.part + 1;
                self.close()?;
            }
        }
        let cur = self.current.get_or_insert_with(|| Current {
            writer: PdfFileWriter::new(self.env.clone(), self.opts),
            name: print_file_name(batch, part),
            batch,
            part,
            sheets: 0,
        });
        let first_page = cur.writer.add_document(doc);
        let sheets = sheets_for(doc.page_count, self.batching.duplex);
        if self.batching.duplex && doc.page_count % 2 == 1 {
            cur.writer.add_blank_page(last_page.0, last_page.1);
        }
        cur.sheets += sheets;
        Ok(Placement {
            file: cur.name.clone(),
            first_page,
            sheets,
        })
    }

    /// Finishes the current print file, if any.
    pub fn close(&mut self) -> std::io::Result<()> {
        let Some(cur) = self.current.take() else {
            return Ok(());
        };
        let meta = DocMeta {
            id: cur.name.clone(),
            title: self.title.clone(),
            lang: self.lang.clone(),
        };
        let bytes = cur.writer.finish(&meta);
        write_atomically(&self.dir.join(&cur.name), &bytes)?;
        self.files_written += 1;
        Ok(())
    }
}

/// Sheets a document of `pages` pages takes.
pub fn sheets_for(pages: u32, duplex: bool) -> u32 {
    if duplex { pages.div_ceil(2) } else { pages }
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
}

impl JsonLines {
    /// Creates (truncates) the file.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        Ok(Self {
            out: BufWriter::with_capacity(1 << 16, File::create(path)?),
        })
    }

    /// Appends one value as a line.
    pub fn write<T: Serialize>(&mut self, value: &T) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, value)?;
        self.out.write_all(b"\n")
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
    fn batches_are_record_ranges() {
        let b = Batching {
            records: 16,
            max_sheets: None,
            duplex: false,
        };
        assert_eq!((b.batch_of(1), b.batch_of(16), b.batch_of(17)), (0, 0, 1));
        assert_eq!(print_file_name(0, 0), "print-00001.pdf");
        assert_eq!(print_file_name(2, 1), "print-00003-02.pdf");
    }

    #[test]
    fn file_stems_are_safe() {
        assert_eq!(file_stem(7, "GB12/34 ü"), "00000007-GB12_34__");
    }
}
