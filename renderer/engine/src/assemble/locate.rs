//! Where is piece P, or document D? Answered from a run's manifests alone.

use std::path::Path;

use serde::Serialize;

use super::manifest::{self, ManifestLine};

/// What to look for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query {
    /// A piece by number (`42` or `000042`), in one job or in every job.
    Piece { job: Option<String>, piece: u32 },
    /// A document by its id.
    Document(String),
    /// A document by its input record number.
    Record(u64),
}

/// Where a piece (or one document of it) is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Location {
    pub job: String,
    pub print_file: String,
    pub piece: String,
    pub envelope: String,
    /// The document found (absent when a piece was asked for).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<u64>,
    /// Pages in the print file, first and last (the document's, or the whole piece's
    /// including blank backs).
    pub pages: [u32; 2],
    /// Sheets of the job, first and last (1-based, counted from the job's start).
    pub sheets: [u64; 2],
    /// Impressions of the job, first and last, as a printer counts them.
    pub impressions: [u64; 2],
}

/// The print jobs of the run in `dir`, as `jobs/production.json` lists them.
pub fn job_ids(dir: &Path) -> Result<Vec<String>, String> {
    let production = dir.join("jobs/production.json");
    let text = read_listed(&production)
        .map_err(|e| format!("{e} (not a print-production run, or not assembled yet)"))?;
    let plan: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", production.display()))?;
    let mut ids = Vec::new();
    for job in plan["jobs"].as_array().into_iter().flatten() {
        let id = job["job"].as_str().unwrap_or_default();
        // A job id names files in jobs/: only the ids assembly makes are read.
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(format!(
                "{}: {id:?} is not a print job id",
                production.display()
            ));
        }
        ids.push(id.to_string());
    }
    Ok(ids)
}

/// The lines of job `id`'s manifest in the run in `dir`.
pub fn read_manifest(dir: &Path, id: &str) -> Result<Vec<ManifestLine>, String> {
    let path = dir.join(manifest::manifest_name(id));
    let text = String::from_utf8(read_listed(&path)?)
        .map_err(|_| format!("{}: not UTF-8", path.display()))?;
    manifest::parse(&text).map_err(|(l, e)| format!("{}:{l}: {e}", path.display()))
}

/// A run folder's list or manifest is at most this large (a job of 10^6 pieces is about
/// 600 MB of manifest).
const MAX_LISTED_BYTES: u64 = 2 << 30;

/// Reads a file of the run folder: a regular file of bounded size (never a FIFO, a device
/// or a final symbolic link that someone put there).
fn read_listed(path: &Path) -> Result<Vec<u8>, String> {
    crate::source::read_regular(path, MAX_LISTED_BYTES, crate::source::FileKind::Text)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Finds `query` in the manifests of the run in `dir` (`jobs/production.json` lists them).
pub fn locate(dir: &Path, query: &Query) -> Result<Vec<Location>, String> {
    let mut found = Vec::new();
    for id in job_ids(dir)? {
        let id = id.as_str();
        if let Query::Piece { job: Some(j), .. } = query
            && j != id
        {
            continue;
        }
        let lines = read_manifest(dir, id)?;
        let mut sheets_before = 0u64;
        for line in lines {
            let ManifestLine::Piece(p) = line else {
                continue;
            };
            let n = p.sheets.len() as u64;
            let first_sheet = sheets_before + 1;
            sheets_before += n;
            let piece_pages = || {
                let pages: Vec<u32> = p
                    .sheets
                    .iter()
                    .flat_map(|s| [s.front_page, s.back_page])
                    .flatten()
                    .collect();
                let first = pages.iter().min().copied().unwrap_or(0);
                // A blank back is the page after its front.
                let last = p
                    .sheets
                    .last()
                    .and_then(|s| {
                        s.back_page
                            .or(s.front_page.map(|f| f + u32::from(s.impressions.len() > 1)))
                    })
                    .unwrap_or(first);
                [first, last]
            };
            let imps = |from: usize, to: usize| -> [u64; 2] {
                let first = p.sheets[from].impressions.first().copied().unwrap_or(0);
                let last = p.sheets[to].impressions.last().copied().unwrap_or(0);
                [first, last]
            };
            let base = |document_id, record, pages, sheets, impressions| Location {
                job: id.to_string(),
                print_file: manifest::job_file_name(id),
                piece: p.piece.clone(),
                envelope: p.envelope.clone(),
                document_id,
                record,
                pages,
                sheets,
                impressions,
            };
            match query {
                Query::Piece { piece, .. } => {
                    if p.piece.parse::<u32>().ok() == Some(*piece) {
                        found.push(base(
                            None,
                            None,
                            piece_pages(),
                            [first_sheet, first_sheet + n - 1],
                            imps(0, p.sheets.len() - 1),
                        ));
                    }
                }
                Query::Document(_) | Query::Record(_) => {
                    for d in &p.documents {
                        let hit = match query {
                            Query::Document(id) => d.document_id == *id,
                            Query::Record(r) => d.record == *r,
                            Query::Piece { .. } => false,
                        };
                        if !hit {
                            continue;
                        }
                        // The sheets that carry the document's pages.
                        let on = |s: &manifest::ManifestSheet| {
                            [s.front_page, s.back_page]
                                .iter()
                                .flatten()
                                .any(|pg| (d.first_page..=d.last_page).contains(pg))
                        };
                        let from = p.sheets.iter().position(on).unwrap_or(0);
                        let to = p.sheets.iter().rposition(on).unwrap_or(from);
                        found.push(base(
                            Some(d.document_id.clone()),
                            Some(d.record),
                            [d.first_page, d.last_page],
                            [first_sheet + from as u64, first_sheet + to as u64],
                            imps(from, to),
                        ));
                    }
                }
            }
        }
    }
    Ok(found)
}
