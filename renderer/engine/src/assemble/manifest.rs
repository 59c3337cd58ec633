//! The manifest beside each print job: `X.manifest.jsonl`, one line per mail piece and a
//! last `{"summary": …}` line (schema: `docs/schema/manifest.schema.json`).

use serde::{Deserialize, Serialize};

/// A document of a piece.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManifestDocument {
    pub document_id: String,
    pub record: u64,
    /// The document's content hash (as in `documents.jsonl`; marks are not part of it).
    pub sha256: String,
    /// Its pages in the print job, first and last (1-based).
    pub first_page: u32,
    pub last_page: u32,
}

/// One sheet of a piece.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManifestSheet {
    /// 1-based sheet number in the piece.
    pub sheet: u32,
    /// Page of the print job printed on the front, `null` for a blank side.
    pub front_page: Option<u32>,
    /// Page of the print job on the back (duplex), `null` for a blank or no back.
    pub back_page: Option<u32>,
    /// The back carries the template's fixed back-of-page content, not a document page.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub back_fixed: bool,
    /// The impression numbers in the job that `job-impressions-completed` counts: one
    /// per sheet in simplex, two (front, back — a blank back included) in duplex.
    pub impressions: Vec<u64>,
}

/// Which part of a split document a piece holds (`1 of 2`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    pub k: u32,
    pub n: u32,
}

/// One line of a manifest: a mail piece.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManifestPiece {
    pub job: String,
    /// Sequential in the job, six digits or more: `000001`.
    pub piece: String,
    pub envelope: String,
    /// Feeder stations to fire, hex bit mask (`00` for none), as in the PIL/1 text.
    pub feeders: String,
    pub sort_group: String,
    /// More than one document merged into this piece (householding).
    pub householded: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<Part>,
    pub documents: Vec<ManifestDocument>,
    pub sheets: Vec<ManifestSheet>,
    /// The PIL/1 texts of the sheets' Data Matrix codes, in sheet order.
    pub marks: Vec<String>,
}

/// Counts of one sort group in a job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupCount {
    pub group: String,
    pub pieces: u64,
    pub sheets: u64,
}

/// The last line's `summary`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JobSummary {
    pub job: String,
    pub print_file: String,
    pub pieces: u64,
    pub documents: u64,
    pub sheets: u64,
    pub pages: u64,
    pub impressions: u64,
    pub sort_groups: Vec<GroupCount>,
}

/// A manifest line: a piece, or the summary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ManifestLine {
    Summary { summary: JobSummary },
    Piece(Box<ManifestPiece>),
}

/// A manifest written line by line to disk (a job of any size in bounded memory), hashed
/// as it is written.
pub struct ManifestWriter {
    file: std::io::BufWriter<std::fs::File>,
    hasher: sha2::Sha256,
    len: u64,
    line: Vec<u8>,
}

impl ManifestWriter {
    /// Creates (truncates) the file.
    pub fn create(path: &std::path::Path) -> std::io::Result<Self> {
        Ok(Self {
            file: std::io::BufWriter::new(std::fs::File::create(path)?),
            hasher: sha2::Sha256::default(),
            len: 0,
            line: Vec::with_capacity(4096),
        })
    }

    /// Appends one line.
    pub fn push(&mut self, line: &ManifestLine) -> std::io::Result<()> {
        use sha2::Digest;
        use std::io::Write;
        self.line.clear();
        serde_json::to_writer(&mut self.line, line)?;
        self.line.push(b'\n');
        self.file.write_all(&self.line)?;
        self.hasher.update(&self.line);
        self.len += self.line.len() as u64;
        Ok(())
    }

    /// Flushes and fsyncs; returns the length and SHA-256.
    pub fn finish(self) -> std::io::Result<(u64, [u8; 32])> {
        use sha2::Digest;
        let file = self.file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok((self.len, self.hasher.finalize().into()))
    }
}

/// The manifest file name of a print job file `X.pdf`.
pub fn manifest_name(job: &str) -> String {
    format!("jobs/{job}.manifest.jsonl")
}

/// The print file of a job.
pub fn job_file_name(job: &str) -> String {
    format!("jobs/{job}.pdf")
}

/// Reads a manifest's lines.
pub fn parse(text: &str) -> Result<Vec<ManifestLine>, (usize, String)> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| (i + 1, e.to_string())))
        .collect()
}
