//! Reprint jobs: a real print job of only the affected pieces, cut from the print job
//! they were last in. In a print file every side of every sheet is one page (a blank
//! side is a blank page), so a sheet's impressions are its page numbers: the reprint
//! keeps exactly those pages — marks and all, so the inserter reads the same job and
//! piece ids on the paper (`PR1|<original job>|<piece>|k/n|…`) — and gets its own
//! manifest with the pages and impressions numbered afresh.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use pressrun_engine::assemble::locate::read_manifest;
use pressrun_engine::assemble::manifest::{
    JobSummary, ManifestLine, ManifestPiece, ManifestWriter, job_file_name, manifest_name,
};
use pressrun_engine::run::output::{sync_dir, write_durably};

use crate::ledger::JobPlan;

/// Largest print file a reprint is cut from.
const MAX_PDF: u64 = 2 << 30;

/// Why a reprint job cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum ReprintError {
    #[error("print job {job}: {msg}")]
    Source { job: String, msg: String },
    #[error("print job {job}: the print file is not a PDF this reprint can cut: {msg}")]
    Pdf { job: String, msg: String },
    #[error("print job {job} has no piece {piece}")]
    NoPiece { job: String, piece: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReprintError + '_ {
    move |source| ReprintError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes the reprint job `id` of `pieces` (piece ids) of the print job `source` in the
/// run folder `out` — `jobs/<id>.pdf` and its manifest, both durable — and returns its
/// plan for the ledger, with `origin` as the job the pieces were assembled in.
pub fn write(
    out: &Path,
    source: &str,
    origin: &str,
    pieces: &[String],
    id: &str,
) -> Result<JobPlan, ReprintError> {
    let wanted: BTreeSet<&str> = pieces.iter().map(String::as_str).collect();
    let lines = read_manifest(out, source).map_err(|msg| ReprintError::Source {
        job: source.into(),
        msg,
    })?;
    let mut kept: Vec<ManifestPiece> = lines
        .into_iter()
        .filter_map(|l| match l {
            ManifestLine::Piece(p) if wanted.contains(p.piece.as_str()) => Some(*p),
            _ => None,
        })
        .collect();
    for w in &wanted {
        if !kept.iter().any(|p| p.piece == *w) {
            return Err(ReprintError::NoPiece {
                job: source.into(),
                piece: (*w).to_string(),
            });
        }
    }
    // Old page (= impression) number → new, in the source's order.
    let mut renumber: BTreeMap<u32, u32> = BTreeMap::new();
    for p in &kept {
        for s in &p.sheets {
            for &i in &s.impressions {
                let next = renumber.len() as u32 + 1;
                renumber.insert(i as u32, next);
            }
        }
    }
    let pdf_path = out.join(job_file_name(source));
    // A regular file of at most 2 GiB (it is loaded whole to be cut).
    let bytes = pressrun_engine::source::read_regular(
        &pdf_path,
        MAX_PDF,
        pressrun_engine::source::FileKind::Output,
    )
    .map_err(|e| ReprintError::Source {
        job: source.into(),
        msg: e.to_string(),
    })?;
    let pdf = cut(&bytes, &renumber).map_err(|msg| ReprintError::Pdf {
        job: source.into(),
        msg,
    })?;
    let new = |n: u32| renumber.get(&n).copied().unwrap_or(0);
    let mut summary = JobSummary {
        job: id.to_string(),
        print_file: job_file_name(id),
        ..JobSummary::default()
    };
    for p in &mut kept {
        p.job = id.to_string();
        for s in &mut p.sheets {
            s.front_page = s.front_page.map(new);
            s.back_page = s.back_page.map(new);
            for i in &mut s.impressions {
                *i = u64::from(new(*i as u32));
            }
        }
        for d in &mut p.documents {
            d.first_page = new(d.first_page);
            d.last_page = new(d.last_page);
        }
        summary.pieces += 1;
        summary.documents += p.documents.len() as u64;
        summary.sheets += p.sheets.len() as u64;
        summary.impressions += p
            .sheets
            .iter()
            .map(|s| s.impressions.len() as u64)
            .sum::<u64>();
    }
    summary.pages = summary.impressions;
    let pdf_out = out.join(job_file_name(id));
    write_durably(&pdf_out, &pdf).map_err(io(&pdf_out))?;
    let manifest = out.join(manifest_name(id));
    let mut w = ManifestWriter::create(&manifest).map_err(io(&manifest))?;
    for p in &kept {
        w.push(&ManifestLine::Piece(Box::new(p.clone())))
            .map_err(io(&manifest))?;
    }
    w.push(&ManifestLine::Summary { summary })
        .map_err(io(&manifest))?;
    w.finish().map_err(io(&manifest))?;
    let jobs = out.join("jobs");
    sync_dir(&jobs).map_err(io(&jobs))?;
    Ok(JobPlan::from_manifest(id, origin, kept.iter()))
}

/// The PDF with only the pages in `keep` (old number → new), in that order.
fn cut(bytes: &[u8], keep: &BTreeMap<u32, u32>) -> Result<Vec<u8>, String> {
    let mut doc = lopdf::Document::load_mem(bytes).map_err(|e| e.to_string())?;
    let pages = doc.get_pages();
    if let Some((&last, _)) = keep.iter().next_back()
        && last as usize > pages.len()
    {
        return Err(format!(
            "it has {} pages, the manifest names page {last}",
            pages.len()
        ));
    }
    let drop: Vec<u32> = pages
        .keys()
        .copied()
        .filter(|n| !keep.contains_key(n))
        .collect();
    doc.delete_pages(&drop);
    doc.prune_objects();
    let mut out = Vec::new();
    doc.save_to(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}
