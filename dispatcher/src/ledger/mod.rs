//! The per-sheet ledger of assured delivery: for every sheet and mail piece of a run,
//! assembled → sent to a printer → impressions confirmed → inserted (or not), each
//! transition an append-only event with time, device and evidence, kept in the run
//! registry's SQLite database (WAL, `synchronous = FULL`: a recorded batch is on disk).
//!
//! Device handlers hand in [`Event`]s in batches; one batch is one transaction. What a
//! device says is checked against the plan before it changes anything: an impression
//! count beyond the job, a report of a piece the job does not hold, a second report of
//! the same piece — each is kept as an event and returned as a [`Finding`], never
//! applied blindly.

mod event;
mod reconcile;
mod schema;
mod writer;

pub use event::{Event, Outcome, PieceId};
pub use reconcile::{Reconciliation, Unresolved};
pub use writer::{NotRecorded, Writer};

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, Transaction, params};

/// A print job as the ledger tracks it: its pieces and, per sheet, the job's impression
/// number that completes the sheet.
#[derive(Clone, Debug, PartialEq)]
pub struct JobPlan {
    pub print_job: String,
    /// The job the pieces were assembled in: `print_job` itself, or for a reprint job
    /// the original (a reprint keeps its pieces' ids).
    pub origin: String,
    pub pieces: Vec<PiecePlan>,
}

/// One piece of a [`JobPlan`].
#[derive(Clone, Debug, PartialEq)]
pub struct PiecePlan {
    pub piece: String,
    /// Per sheet, its last impression in the print job (1-based, as a printer counts).
    pub sheet_last_impression: Vec<u64>,
}

impl JobPlan {
    /// The plan of an assembled job, from its manifest's pieces.
    pub fn from_manifest<'a>(
        print_job: &str,
        origin: &str,
        pieces: impl IntoIterator<Item = &'a pressrun_engine::assemble::manifest::ManifestPiece>,
    ) -> Self {
        Self {
            print_job: print_job.to_string(),
            origin: origin.to_string(),
            pieces: pieces
                .into_iter()
                .map(|p| PiecePlan {
                    piece: p.piece.clone(),
                    sheet_last_impression: p
                        .sheets
                        .iter()
                        .map(|s| s.impressions.iter().copied().max().unwrap_or(0))
                        .collect(),
                })
                .collect(),
        }
    }

    /// The plans of every print job of the assembled run in `out` (its
    /// `jobs/production.json` and manifests).
    pub fn of_run(out: &Path) -> Result<Vec<Self>, String> {
        use pressrun_engine::assemble::locate::{job_ids, read_manifest};
        use pressrun_engine::assemble::manifest::ManifestLine;
        job_ids(out)?
            .into_iter()
            .map(|id| {
                let lines = read_manifest(out, &id)?;
                let pieces = lines.iter().filter_map(|l| match l {
                    ManifestLine::Piece(p) => Some(&**p),
                    ManifestLine::Summary { .. } => None,
                });
                Ok(Self::from_manifest(&id, &id, pieces))
            })
            .collect()
    }

    fn impressions(&self) -> u64 {
        self.pieces
            .iter()
            .map(PiecePlan::last_impression)
            .max()
            .unwrap_or(0)
    }
}

impl PiecePlan {
    /// The impression that completes the piece.
    fn last_impression(&self) -> u64 {
        self.sheet_last_impression
            .iter()
            .copied()
            .max()
            .unwrap_or(0)
    }
}

/// Something a device reported that the ledger kept as evidence but did not apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// An event for a print job this run does not have.
    UnknownJob { print_job: String },
    /// More impressions than the job has, or fewer than already confirmed.
    Implausible {
        print_job: String,
        completed: u64,
        detail: String,
    },
    /// A report of a piece the print job does not hold.
    UnexpectedPiece { print_job: String, piece: String },
    /// A second report of a piece in the same print job: the first stands.
    Duplicate { print_job: String, piece: String },
}

/// A ledger problem.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("cannot create the ledger's folder: {0}")]
    Folder(#[from] std::io::Error),
    #[error("run {run}: no piece {piece} in its print jobs")]
    NoSuchPiece { run: String, piece: PieceId },
    #[error("run {run}: piece {piece} is inserted OK; only a piece that is not can be resolved")]
    AlreadyOk { run: String, piece: PieceId },
    #[error("run {run}: the ledger has no print jobs for it")]
    NoSuchRun { run: String },
    #[error("a resolution needs a reason")]
    NoReason,
    #[error(
        "reprint job {print_job}: piece {origin}/{piece} is {state}; only a piece that is not inserted OK or resolved is printed again"
    )]
    ReprintOfDone {
        print_job: String,
        origin: String,
        piece: String,
        state: String,
    },
    #[error("reprint job {print_job}: piece {piece} is not in {origin}")]
    ReprintOfUnknown {
        print_job: String,
        origin: String,
        piece: String,
    },
}

/// One device's batch of events for [`Ledger::record_group`].
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a> {
    pub run: &'a str,
    pub events: &'a [Event],
    /// `(source, n)`: the source's n-th batch (strictly increasing per source), so that
    /// a batch sent again is recorded once.
    pub numbered: Option<(&'a str, u64)>,
}

/// Where a print job is, for the print scheduler.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct JobState {
    pub print_job: String,
    pub origin: String,
    pub pieces: u64,
    pub sheets: u64,
    pub impressions: u64,
    /// The printer that accepted it.
    pub printer: Option<String>,
    /// `agent/printer` holding it to print.
    pub queued_to: Option<String>,
    /// How the printer finished with it.
    pub ended: Option<String>,
    pub completed: u64,
}

/// The ledger, on one connection to the run registry's database.
pub struct Ledger {
    conn: Connection,
}

fn now() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Millisecond)
        .unwrap_or_else(|_| jiff::Timestamp::now())
        .to_string()
}

impl Ledger {
    /// Opens (creating the tables if needed) the ledger in the database at `path`.
    pub fn open(path: &Path) -> Result<Self, LedgerError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        // 64 MiB of page cache: a run's sheet and piece rows stay in memory while it prints.
        conn.pragma_update(None, "cache_size", -65536)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(schema::SCHEMA)?;
        Ok(Self { conn })
    }

    /// Registers print jobs (all in one transaction). A job already registered is left as
    /// it is, so registering a resumed run's jobs again changes nothing. A reprint job
    /// (origin ≠ print job) moves its pieces to it: their sheets start again from
    /// "assembled", and the piece counts one more reprint.
    pub fn register(&mut self, run: &str, jobs: &[JobPlan]) -> Result<u64, LedgerError> {
        let tx = self.conn.transaction()?;
        let at = now();
        let mut added = 0;
        for job in jobs {
            if register_job(&tx, run, job, &at)? {
                added += 1;
            }
        }
        tx.commit()?;
        Ok(added)
    }

    /// Records a batch of device events in one transaction (on disk when this returns).
    /// Events that do not fit the plan are kept as evidence and returned, not applied.
    pub fn record(&mut self, run: &str, events: &[Event]) -> Result<Vec<Finding>, LedgerError> {
        Ok(self
            .record_group(&[Batch {
                run,
                events,
                numbered: None,
            }])?
            .pop()
            .unwrap_or_default())
    }

    /// Records several devices' batches in one transaction (group commit: one fsync for
    /// all of them), returning each batch's findings in order. If it fails, none is
    /// recorded. A numbered batch whose number its source already had recorded is a
    /// retransmission: it is skipped (its findings are empty).
    pub fn record_group(
        &mut self,
        batches: &[Batch<'_>],
    ) -> Result<Vec<Vec<Finding>>, LedgerError> {
        let tx = self.conn.transaction()?;
        let at = now();
        let mut all = Vec::with_capacity(batches.len());
        for b in batches {
            let mut findings = Vec::new();
            if let Some((source, seq)) = b.numbered {
                let last: Option<u64> = tx
                    .prepare_cached("SELECT last_seq FROM ledger_sources WHERE source=?1")?
                    .query_row(params![source], |r| r.get(0))
                    .optional()?;
                if last.is_some_and(|l| seq <= l) {
                    all.push(findings);
                    continue;
                }
                tx.prepare_cached(
                    "INSERT INTO ledger_sources (source, last_seq) VALUES (?1, ?2)
                     ON CONFLICT (source) DO UPDATE SET last_seq=?2",
                )?
                .execute(params![source, seq])?;
            }
            for e in b.events {
                if let Some(f) = apply(&tx, b.run, e, &at)? {
                    findings.push(f);
                }
            }
            all.push(findings);
        }
        tx.commit()?;
        Ok(all)
    }

    /// Jobs queued to `agent/printer` that its printer has not taken: (run, job).
    pub fn queued_not_started(&self, to: &str) -> Result<Vec<(String, String)>, LedgerError> {
        let mut stmt = self.conn.prepare(
            "SELECT run_id, print_job FROM ledger_jobs
             WHERE queued_to=?1 AND printer IS NULL AND ended IS NULL ORDER BY run_id, print_job",
        )?;
        let rows = stmt.query_map(params![to], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records that the run is to be printed.
    pub fn request_print(&mut self, run: &str) -> Result<(), LedgerError> {
        self.conn.execute(
            "INSERT OR IGNORE INTO ledger_print_requests (run_id, at) VALUES (?1, ?2)",
            params![run, now()],
        )?;
        Ok(())
    }

    /// Runs asked to print that still have print jobs no agent holds.
    pub fn runs_to_print(&self) -> Result<Vec<String>, LedgerError> {
        let mut stmt = self.conn.prepare(
            "SELECT r.run_id FROM ledger_print_requests r WHERE EXISTS (
               SELECT 1 FROM ledger_jobs j WHERE j.run_id=r.run_id
               AND j.queued_to IS NULL AND j.printer IS NULL AND j.ended IS NULL)
             ORDER BY r.at",
        )?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The last numbered batch recorded from `source` (0 if none).
    pub fn last_recorded(&self, source: &str) -> Result<u64, LedgerError> {
        Ok(self
            .conn
            .query_row(
                "SELECT last_seq FROM ledger_sources WHERE source=?1",
                params![source],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0))
    }

    /// The run's print jobs in id order with where they are: for the print scheduler.
    pub fn jobs(&self, run: &str) -> Result<Vec<JobState>, LedgerError> {
        let mut stmt = self.conn.prepare(
            "SELECT print_job, origin, pieces, sheets, impressions, printer, queued_to, ended, completed
             FROM ledger_jobs WHERE run_id=?1 ORDER BY print_job",
        )?;
        let rows = stmt.query_map(params![run], |r| {
            Ok(JobState {
                print_job: r.get(0)?,
                origin: r.get(1)?,
                pieces: r.get(2)?,
                sheets: r.get(3)?,
                impressions: r.get(4)?,
                printer: r.get(5)?,
                queued_to: r.get(6)?,
                ended: r.get(7)?,
                completed: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The pieces now in `print_job` to print again: reported not OK by the inserter
    /// (except a divert the host asked for, `reason=requested`) or never reported at
    /// `JOBEND` (`unknown`), and — once the printer is done with the job — those whose
    /// sheets it never confirmed. With each, how often it was reprinted before.
    pub fn reprint_candidates(
        &self,
        run: &str,
        print_job: &str,
    ) -> Result<Vec<(PieceId, u32)>, LedgerError> {
        let mut stmt = self.conn.prepare(
            "SELECT job, piece, reprints FROM ledger_pieces
             WHERE run_id=?1 AND print_job=?2 AND (
               (state IN ('diverted', 'jammed', 'pulled', 'unknown')
                  AND NOT (state='diverted' AND coalesce(reason, '')='requested'))
               OR (state IN ('assembled', 'sent') AND EXISTS (
                  SELECT 1 FROM ledger_jobs j
                  WHERE j.run_id=?1 AND j.print_job=?2 AND j.ended IS NOT NULL)))
             ORDER BY job, piece",
        )?;
        let rows = stmt.query_map(params![run, print_job], |r| {
            Ok((
                PieceId {
                    job: r.get(0)?,
                    piece: r.get(1)?,
                },
                r.get(2)?,
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// For the job `origin`: its pieces, the pieces reprinted at least once, and the
    /// reprint jobs made of it so far.
    pub fn reprint_counts(&self, run: &str, origin: &str) -> Result<(u64, u64, u64), LedgerError> {
        let (pieces, reprinted): (u64, u64) = self.conn.query_row(
            "SELECT count(*), coalesce(sum(reprints > 0), 0) FROM ledger_pieces
             WHERE run_id=?1 AND job=?2",
            params![run, origin],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let jobs: u64 = self.conn.query_row(
            "SELECT count(*) FROM ledger_jobs WHERE run_id=?1 AND origin=?2 AND print_job<>origin",
            params![run, origin],
            |r| r.get(0),
        )?;
        Ok((pieces, reprinted, jobs))
    }

    /// The pieces now in `print_job` that are neither inserted OK nor resolved: what a
    /// reprint of it must hold once the printer and the inserter are done with it.
    pub fn open_pieces(&self, run: &str, print_job: &str) -> Result<Vec<PieceId>, LedgerError> {
        let mut stmt = self.conn.prepare(
            "SELECT job, piece FROM ledger_pieces
             WHERE run_id=?1 AND print_job=?2 AND state NOT IN ('ok', 'resolved')
             ORDER BY job, piece",
        )?;
        let rows = stmt.query_map(params![run, print_job], |r| {
            Ok(PieceId {
                job: r.get(0)?,
                piece: r.get(1)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// An operator closes a piece that is not inserted OK, with who and why.
    pub fn resolve(
        &mut self,
        run: &str,
        piece: &PieceId,
        by: &str,
        reason: &str,
    ) -> Result<(), LedgerError> {
        if reason.trim().is_empty() {
            return Err(LedgerError::NoReason);
        }
        let tx = self.conn.transaction()?;
        let row: Option<(String, String)> = tx
            .query_row(
                "SELECT state, print_job FROM ledger_pieces WHERE run_id=?1 AND job=?2 AND piece=?3",
                params![run, piece.job, piece.piece],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((state, print_job)) = row else {
            return Err(LedgerError::NoSuchPiece {
                run: run.into(),
                piece: piece.clone(),
            });
        };
        if state == "ok" {
            return Err(LedgerError::AlreadyOk {
                run: run.into(),
                piece: piece.clone(),
            });
        }
        tx.execute(
            "UPDATE ledger_pieces SET state='resolved', resolved_by=?4, reason=?5
             WHERE run_id=?1 AND job=?2 AND piece=?3",
            params![run, piece.job, piece.piece, by, reason],
        )?;
        append(
            &tx,
            run,
            &Entry {
                print_job: &print_job,
                event: "resolved",
                piece: Some(&piece.piece),
                outcome: Some(&state),
                device: Some(by),
                evidence: Some(reason),
                ..Entry::default()
            },
            &now(),
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The run's reconciliation report.
    pub fn reconcile(&self, run: &str) -> Result<Reconciliation, LedgerError> {
        reconcile::reconcile(&self.conn, run)
    }

    /// Events recorded for the run, in order: (event, print job, piece, sheet, outcome,
    /// device, evidence). For reports and tests.
    pub fn events(&self, run: &str) -> Result<Vec<EventRow>, LedgerError> {
        let mut stmt = self.conn.prepare(
            "SELECT seq, event, print_job, piece, sheet, outcome, device, evidence, at
             FROM ledger_events WHERE run_id=?1 ORDER BY seq",
        )?;
        let rows = stmt.query_map(params![run], |r| {
            Ok(EventRow {
                seq: r.get(0)?,
                event: r.get(1)?,
                print_job: r.get(2)?,
                piece: r.get(3)?,
                sheet: r.get(4)?,
                outcome: r.get(5)?,
                device: r.get(6)?,
                evidence: r.get(7)?,
                at: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// One recorded event.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct EventRow {
    pub seq: u64,
    pub event: String,
    pub print_job: String,
    pub piece: Option<String>,
    pub sheet: Option<u32>,
    pub outcome: Option<String>,
    pub device: Option<String>,
    pub evidence: Option<String>,
    pub at: String,
}

/// One row of `ledger_events`, as [`append`] writes it.
#[derive(Default)]
struct Entry<'a> {
    print_job: &'a str,
    piece: Option<&'a str>,
    sheet: Option<u32>,
    event: &'a str,
    outcome: Option<&'a str>,
    device: Option<&'a str>,
    evidence: Option<&'a str>,
}

/// Appends one event and keeps the running counts it feeds.
fn append(tx: &Transaction, run: &str, e: &Entry<'_>, at: &str) -> rusqlite::Result<()> {
    let Entry {
        print_job,
        piece,
        sheet,
        event,
        outcome,
        device,
        evidence,
    } = *e;
    tx.prepare_cached(
        "INSERT INTO ledger_events (run_id, print_job, piece, sheet, event, outcome, device, evidence, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![run, print_job, piece, sheet, event, outcome, device, evidence, at])?;
    let counted = match (event, outcome) {
        ("disagreement" | "implausible" | "unexpected", _) => Some("disagreements".to_string()),
        ("inserted", Some(o)) if o != "ok" => Some(format!("reason:{o}")),
        _ => None,
    };
    if let Some(what) = counted {
        count(tx, run, &what, 1)?;
    }
    Ok(())
}

/// Adds `n` to one of the run's running counts.
fn count(tx: &Transaction, run: &str, what: &str, n: usize) -> rusqlite::Result<()> {
    if n > 0 {
        tx.prepare_cached(
            "INSERT INTO ledger_counts (run_id, what, n) VALUES (?1, ?2, ?3)
             ON CONFLICT (run_id, what) DO UPDATE SET n = n + ?3",
        )?
        .execute(params![run, what, n])?;
    }
    Ok(())
}

fn register_job(tx: &Transaction, run: &str, job: &JobPlan, at: &str) -> Result<bool, LedgerError> {
    let sheets: usize = job
        .pieces
        .iter()
        .map(|p| p.sheet_last_impression.len())
        .sum();
    let inserted = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO ledger_jobs (run_id, print_job, origin, pieces, sheets, impressions)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            run,
            job.print_job,
            job.origin,
            job.pieces.len(),
            sheets,
            job.impressions()
        ])?;
    if inserted == 0 {
        return Ok(false);
    }
    let reprint = job.origin != job.print_job;
    for p in &job.pieces {
        if reprint {
            let state: Option<String> = tx
                .prepare_cached(
                    "SELECT state FROM ledger_pieces WHERE run_id=?1 AND job=?2 AND piece=?3",
                )?
                .query_row(params![run, job.origin, p.piece], |r| r.get(0))
                .optional()?;
            if let Some(state) = state.filter(|s| s == "ok" || s == "resolved") {
                return Err(LedgerError::ReprintOfDone {
                    print_job: job.print_job.clone(),
                    origin: job.origin.clone(),
                    piece: p.piece.clone(),
                    state,
                });
            }
            let moved = tx
                .prepare_cached(
                    "UPDATE ledger_pieces SET print_job=?4, last_impression=?5, state='assembled',
                     reason=NULL, reprints=reprints+1
                     WHERE run_id=?1 AND job=?2 AND piece=?3",
                )?
                .execute(params![
                    run,
                    job.origin,
                    p.piece,
                    job.print_job,
                    p.last_impression()
                ])?;
            if moved == 0 {
                return Err(LedgerError::ReprintOfUnknown {
                    print_job: job.print_job.clone(),
                    origin: job.origin.clone(),
                    piece: p.piece.clone(),
                });
            }
            append(
                tx,
                run,
                &Entry {
                    print_job: &job.print_job,
                    event: "reprint",
                    piece: Some(&p.piece),
                    evidence: Some(&format!("reprint of {}/{}", job.origin, p.piece)),
                    ..Entry::default()
                },
                at,
            )?;
        } else {
            tx.prepare_cached(
                "INSERT INTO ledger_pieces (run_id, job, piece, sheets, print_job, last_impression, state)
                 VALUES (?1, ?2, ?3, ?4, ?2, ?5, 'assembled')",
            )?
            .execute(params![
                run,
                job.print_job,
                p.piece,
                p.sheet_last_impression.len(),
                p.last_impression()
            ])?;
        }
        for (i, last) in p.sheet_last_impression.iter().enumerate() {
            let sheet = i as u32 + 1;
            tx.prepare_cached(
                "INSERT INTO ledger_sheets (run_id, print_job, piece, sheet, last_impression)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![run, job.print_job, p.piece, sheet, last])?;
            append(
                tx,
                run,
                &Entry {
                    print_job: &job.print_job,
                    event: "assembled",
                    piece: Some(&p.piece),
                    sheet: Some(sheet),
                    ..Entry::default()
                },
                at,
            )?;
        }
    }
    Ok(true)
}

/// The job row an event names: (origin, impressions, completed).
fn job_row(
    tx: &Transaction,
    run: &str,
    print_job: &str,
) -> rusqlite::Result<Option<(String, u64, u64)>> {
    tx.prepare_cached(
        "SELECT origin, impressions, completed FROM ledger_jobs WHERE run_id=?1 AND print_job=?2",
    )?
    .query_row(params![run, print_job], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })
    .optional()
}

fn apply(tx: &Transaction, run: &str, e: &Event, at: &str) -> Result<Option<Finding>, LedgerError> {
    let print_job = match e {
        Event::Sent { print_job, .. }
        | Event::Queued { print_job, .. }
        | Event::Ended { print_job, .. }
        | Event::Impressions { print_job, .. }
        | Event::Inserted { print_job, .. }
        | Event::Disagreement { print_job, .. } => print_job,
    };
    let Some((origin, impressions, completed_before)) = job_row(tx, run, print_job)? else {
        append(
            tx,
            run,
            &Entry {
                print_job,
                event: "unexpected",
                evidence: Some(&format!("{e:?}")),
                ..Entry::default()
            },
            at,
        )?;
        return Ok(Some(Finding::UnknownJob {
            print_job: print_job.clone(),
        }));
    };
    match e {
        Event::Sent {
            printer,
            device_job,
            ..
        } => {
            let already: Option<(Option<String>, Option<String>)> = tx
                .prepare_cached(
                    "SELECT printer, device_job FROM ledger_jobs WHERE run_id=?1 AND print_job=?2",
                )?
                .query_row(params![run, print_job], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            if already == Some((Some(printer.clone()), Some(device_job.clone()))) {
                // The same acceptance reported again (an agent that reconnected).
                return Ok(None);
            }
            tx.prepare_cached(
                "UPDATE ledger_jobs SET printer=?3, device_job=?4, completed=0, ended=NULL
                 WHERE run_id=?1 AND print_job=?2",
            )?
            .execute(params![run, print_job, printer, device_job])?;
            // One statement appends a "sent" event per sheet, inside SQLite.
            let sheets = tx
                .prepare_cached(
                    "INSERT INTO ledger_events (run_id, print_job, piece, sheet, event, device, evidence, at)
                     SELECT run_id, print_job, piece, sheet, 'sent', ?3, ?4, ?5 FROM ledger_sheets
                     WHERE run_id=?1 AND print_job=?2",
                )?
                .execute(params![run, print_job, printer, format!("device job {device_job}"), at])?;
            count(tx, run, &format!("sent:{printer}"), sheets)?;
            tx.prepare_cached(
                "UPDATE ledger_pieces SET state='sent'
                 WHERE run_id=?1 AND job=?3 AND print_job=?2 AND state='assembled'",
            )?
            .execute(params![run, print_job, origin])?;
            Ok(None)
        }
        Event::Impressions {
            printer,
            completed,
            evidence,
            ..
        } => {
            if *completed > impressions || *completed < completed_before {
                let detail = if *completed > impressions {
                    format!("the job has {impressions} impressions")
                } else {
                    format!("{completed_before} were already confirmed")
                };
                append(
                    tx,
                    run,
                    &Entry {
                        print_job,
                        event: "implausible",
                        device: Some(printer),
                        evidence: Some(&format!(
                            "{evidence}: {completed} impressions completed, but {detail}"
                        )),
                        ..Entry::default()
                    },
                    at,
                )?;
                return Ok(Some(Finding::Implausible {
                    print_job: print_job.clone(),
                    completed: *completed,
                    detail,
                }));
            }
            if *completed == completed_before {
                return Ok(None);
            }
            tx.prepare_cached(
                "UPDATE ledger_jobs SET completed=?3 WHERE run_id=?1 AND print_job=?2",
            )?
            .execute(params![run, print_job, completed])?;
            // The sheets the new count completes, and only those: the range between the
            // last count and this one, appended as "printed" events in one statement.
            let evidence = format!("{evidence}: {completed} impressions completed");
            let sheets = tx
                .prepare_cached(
                    "INSERT INTO ledger_events (run_id, print_job, piece, sheet, event, device, evidence, at)
                     SELECT run_id, print_job, piece, sheet, 'printed', ?5, ?6, ?7 FROM ledger_sheets
                     WHERE run_id=?1 AND print_job=?2 AND last_impression>?3 AND last_impression<=?4",
                )?
                .execute(params![run, print_job, completed_before, completed, printer, evidence, at])?;
            count(tx, run, &format!("sheets:{printer}"), sheets)?;
            // A piece is printed when the sheet with its last impression is.
            tx.prepare_cached(
                "UPDATE ledger_pieces SET ever_printed=1,
                   state = CASE WHEN state IN ('assembled','sent') THEN 'printed' ELSE state END
                 WHERE run_id=?1 AND print_job=?2 AND last_impression>?3 AND last_impression<=?4",
            )?
            .execute(params![run, print_job, completed_before, completed])?;
            Ok(None)
        }
        Event::Inserted {
            piece,
            outcome,
            reason,
            inserter,
            seq,
            ..
        } => {
            let evidence = match reason {
                Some(r) => format!("PIL/1 seq {seq}: {r}"),
                None => format!("PIL/1 seq {seq}"),
            };
            let row: Option<Option<String>> = tx
                .prepare_cached(
                    "SELECT inserted_in FROM ledger_pieces
                     WHERE run_id=?1 AND job=?2 AND piece=?3 AND print_job=?4",
                )?
                .query_row(params![run, origin, piece, print_job], |r| r.get(0))
                .optional()?;
            match row {
                None if *outcome == Outcome::Unknown
                    && piece_moved_on(tx, run, &origin, piece, print_job)? =>
                {
                    // The host's "never reported" for a piece already in a reprint job:
                    // kept, and nothing to act on.
                    append(
                        tx,
                        run,
                        &Entry {
                            print_job,
                            event: "superseded",
                            piece: Some(piece),
                            outcome: Some(outcome.as_str()),
                            device: Some(inserter),
                            evidence: Some(&evidence),
                            ..Entry::default()
                        },
                        at,
                    )?;
                    Ok(None)
                }
                None => {
                    append(
                        tx,
                        run,
                        &Entry {
                            print_job,
                            event: "unexpected",
                            piece: Some(piece),
                            outcome: Some(outcome.as_str()),
                            device: Some(inserter),
                            evidence: Some(&evidence),
                            ..Entry::default()
                        },
                        at,
                    )?;
                    Ok(Some(Finding::UnexpectedPiece {
                        print_job: print_job.clone(),
                        piece: piece.clone(),
                    }))
                }
                Some(Some(already)) if &already == print_job && *outcome == Outcome::Unknown => {
                    // The host's "never reported" for a piece whose report stands (an
                    // agent that restarted lost which pieces it had heard of): kept,
                    // nothing to act on, no duplicate.
                    append(
                        tx,
                        run,
                        &Entry {
                            print_job,
                            event: "superseded",
                            piece: Some(piece),
                            outcome: Some(outcome.as_str()),
                            device: Some(inserter),
                            evidence: Some(&evidence),
                            ..Entry::default()
                        },
                        at,
                    )?;
                    Ok(None)
                }
                Some(Some(already)) if &already == print_job => {
                    tx.prepare_cached(
                        "UPDATE ledger_pieces SET duplicates=duplicates+1
                         WHERE run_id=?1 AND job=?2 AND piece=?3",
                    )?
                    .execute(params![run, origin, piece])?;
                    append(
                        tx,
                        run,
                        &Entry {
                            print_job,
                            event: "duplicate",
                            piece: Some(piece),
                            outcome: Some(outcome.as_str()),
                            device: Some(inserter),
                            evidence: Some(&evidence),
                            ..Entry::default()
                        },
                        at,
                    )?;
                    Ok(Some(Finding::Duplicate {
                        print_job: print_job.clone(),
                        piece: piece.clone(),
                    }))
                }
                Some(_) => {
                    tx.prepare_cached(
                        "UPDATE ledger_pieces SET inserted_in=?4, inserter=?5,
                           state = CASE WHEN state='resolved' AND ?6<>'ok' THEN state ELSE ?6 END,
                           reason = CASE WHEN state='resolved' AND ?6<>'ok' THEN reason ELSE ?7 END
                         WHERE run_id=?1 AND job=?2 AND piece=?3",
                    )?
                    .execute(params![
                        run,
                        origin,
                        piece,
                        print_job,
                        inserter,
                        outcome.as_str(),
                        reason
                    ])?;
                    append(
                        tx,
                        run,
                        &Entry {
                            print_job,
                            event: "inserted",
                            piece: Some(piece),
                            outcome: Some(outcome.as_str()),
                            device: Some(inserter),
                            evidence: Some(&evidence),
                            ..Entry::default()
                        },
                        at,
                    )?;
                    Ok(None)
                }
            }
        }
        Event::Queued { printer, agent, .. } => {
            let to = format!("{agent}/{printer}");
            tx.prepare_cached(
                "UPDATE ledger_jobs SET queued_to=?3 WHERE run_id=?1 AND print_job=?2",
            )?
            .execute(params![run, print_job, to])?;
            append(
                tx,
                run,
                &Entry {
                    print_job,
                    event: "queued",
                    device: Some(printer),
                    evidence: Some(&to),
                    ..Entry::default()
                },
                at,
            )?;
            Ok(None)
        }
        Event::Ended {
            printer,
            how,
            completed,
            ..
        } => {
            let before: Option<Option<String>> = tx
                .prepare_cached("SELECT ended FROM ledger_jobs WHERE run_id=?1 AND print_job=?2")?
                .query_row(params![run, print_job], |r| r.get(0))
                .optional()?;
            if let Some(None) = before
                && let Some(stop) = stop_of(how)
            {
                count(tx, run, &format!("stop:{printer}|{stop}"), 1)?;
            }
            tx.prepare_cached("UPDATE ledger_jobs SET ended=?3 WHERE run_id=?1 AND print_job=?2")?
                .execute(params![run, print_job, how])?;
            append(
                tx,
                run,
                &Entry {
                    print_job,
                    event: "ended",
                    outcome: Some(how),
                    device: Some(printer),
                    evidence: Some(&format!("{completed} impressions confirmed")),
                    ..Entry::default()
                },
                at,
            )?;
            Ok(None)
        }
        Event::Disagreement {
            printer, detail, ..
        } => {
            append(
                tx,
                run,
                &Entry {
                    print_job,
                    event: "disagreement",
                    device: Some(printer),
                    evidence: Some(detail),
                    ..Entry::default()
                },
                at,
            )?;
            Ok(None)
        }
    }
}

/// How a printer stopped a print job, without the printer's message: e.g. `aborted:
/// aborted-by-system; printer: media-jam` of the same with ` (jam after impression 5)`;
/// `None` for a job that completed, was withdrawn, not printed, or whose fate is unknown
/// (those are not the printer stopping a job it had).
fn stop_of(how: &str) -> Option<String> {
    if !(how.starts_with("aborted") || how.starts_with("canceled")) {
        return None;
    }
    let short = how.split(" (").next().unwrap_or(how);
    Some(short.chars().take(120).collect())
}

/// Whether the piece `origin`/`piece` is now in another print job than `print_job`.
fn piece_moved_on(
    tx: &Transaction,
    run: &str,
    origin: &str,
    piece: &str,
    print_job: &str,
) -> rusqlite::Result<bool> {
    Ok(tx
        .prepare_cached(
            "SELECT print_job FROM ledger_pieces WHERE run_id=?1 AND job=?2 AND piece=?3",
        )?
        .query_row(params![run, origin, piece], |r| r.get::<_, String>(0))
        .optional()?
        .is_some_and(|now| now != print_job))
}

#[cfg(test)]
mod tests;
