//! What the ledger records: plain data handed in by the dispatcher's device handlers.

use serde::Serialize;

/// The inserter's verdict on a mail piece (PIL/1 `PIECE` status), or the host's when the
/// inserter never reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Sealed and stacked: the only good end.
    Ok,
    Diverted,
    Jammed,
    Pulled,
    /// Never reported by the time the inserter closed the job (PIL/1 host rule 4).
    Unknown,
}

impl Outcome {
    /// The word stored in the ledger and shown in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Diverted => "diverted",
            Self::Jammed => "jammed",
            Self::Pulled => "pulled",
            Self::Unknown => "unknown",
        }
    }
}

/// A print job's piece as the ledger names it: the job the piece was assembled in and
/// its piece id there (a reprint keeps both).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct PieceId {
    pub job: String,
    pub piece: String,
}

impl std::fmt::Display for PieceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.job, self.piece)
    }
}

impl std::str::FromStr for PieceId {
    type Err = String;
    /// `J000001/000042` (the piece number may be written without its leading zeros).
    fn from_str(s: &str) -> Result<Self, String> {
        let (job, piece) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?}: a piece is named JOB/PIECE, e.g. J000001/000042"))?;
        let n: u32 = piece
            .parse()
            .map_err(|_| format!("{s:?}: the piece number {piece:?} is not a number"))?;
        if job.is_empty() || !job.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(format!("{s:?}: {job:?} is not a print job id"));
        }
        Ok(Self {
            job: job.to_string(),
            piece: format!("{n:06}"),
        })
    }
}

/// One thing a device reported about a run's print jobs (an operator's resolution is
/// [`super::Ledger::resolve`]). A batch of them is recorded in one transaction.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The printer accepted the print job (its own job id is the evidence): every sheet
    /// of the job is now "sent" to it.
    Sent {
        print_job: String,
        printer: String,
        device_job: String,
    },
    /// The printer's `job-impressions-completed` for the print job reached `completed`:
    /// every sheet whose last impression is at or below it is printed.
    Impressions {
        print_job: String,
        printer: String,
        completed: u64,
        /// Where the count comes from, e.g. `ipp job 17`.
        evidence: String,
    },
    /// The inserter's report on a piece of the print job.
    Inserted {
        print_job: String,
        piece: String,
        outcome: Outcome,
        reason: Option<String>,
        inserter: String,
        /// The PIL/1 sequence number of the report.
        seq: u64,
    },
    /// The agent holding `printer` has the job on its own disk, queued to print.
    Queued {
        print_job: String,
        printer: String,
        agent: String,
    },
    /// The printer is done with the job: it finished, was stopped (a jam, aborted,
    /// cancelled) or vanished from the printer's list with `completed` impressions
    /// confirmed. Its pieces not confirmed printed become reprint candidates.
    Ended {
        print_job: String,
        printer: String,
        /// `completed`, `aborted`, `canceled` or `unknown`, with the printer's reasons.
        how: String,
        completed: u64,
    },
    /// Two witnesses disagree (e.g. the SNMP life-count delta and IPP's impressions).
    Disagreement {
        print_job: String,
        printer: String,
        detail: String,
    },
}
