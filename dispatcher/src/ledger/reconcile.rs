//! The reconciliation report of a run: what was expected, printed, inserted, reprinted,
//! resolved — by printer, inserter and reason — and whether the run is complete.

use std::collections::BTreeMap;

use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};

use super::LedgerError;

/// How many unresolved pieces the report lists by name (the counts cover them all).
const LISTED: usize = 1000;

/// `dispatcher reconcile RUN --json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reconciliation {
    pub run: String,
    /// Mail pieces assembled (reprints keep their piece and are not counted again).
    pub expected: u64,
    /// Pieces whose every sheet was confirmed printed at least once.
    pub printed: u64,
    /// Pieces the inserter reported sealed and stacked.
    pub inserted_ok: u64,
    /// Pieces put into a reprint job at least once.
    pub reprinted: u64,
    /// Pieces closed by an operator.
    pub resolved: u64,
    /// Pieces neither inserted OK nor resolved.
    pub unresolved: u64,
    /// Second reports of a piece already reported (counted once).
    pub duplicates: u64,
    /// Witnesses that disagreed (IPP against SNMP), and device reports that did not fit
    /// the plan (an impossible count, a piece not in the job).
    pub disagreements: u64,
    /// Every piece is inserted OK or resolved.
    pub complete: bool,
    pub print_jobs: u64,
    pub sheets: u64,
    /// Sheet printings confirmed (a sheet printed again in a reprint counts again).
    pub sheets_printed: u64,
    /// Sheet printings confirmed, by printer.
    pub by_printer: BTreeMap<String, u64>,
    /// Inserter reports that stand, by inserter and outcome.
    pub by_inserter: BTreeMap<String, BTreeMap<String, u64>>,
    /// Inserter reports that were not OK, by outcome (every report, reprinted or not).
    pub by_reason: BTreeMap<String, u64>,
    /// Print jobs a printer aborted or canceled, by printer and how they ended
    /// (`aborted: aborted-by-system; printer: media-empty, media-needed`).
    #[serde(default)]
    pub printer_stops: BTreeMap<String, BTreeMap<String, u64>>,
    /// The first unresolved pieces, in job and piece order.
    pub unresolved_pieces: Vec<Unresolved>,
}

/// A piece that keeps the run from being complete.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Unresolved {
    pub job: String,
    pub piece: String,
    pub print_job: String,
    pub state: String,
    pub reason: Option<String>,
}

pub(super) fn reconcile(conn: &Connection, run: &str) -> Result<Reconciliation, LedgerError> {
    let (print_jobs, sheets): (u64, u64) = conn.query_row(
        "SELECT count(*), coalesce(sum(sheets), 0) FROM ledger_jobs WHERE run_id=?1 AND origin=print_job",
        params![run],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if print_jobs == 0 {
        return Err(LedgerError::NoSuchRun { run: run.into() });
    }
    let (expected, printed, inserted_ok, reprinted, resolved, duplicates): (
        u64,
        u64,
        u64,
        u64,
        u64,
        u64,
    ) = conn.query_row(
        "SELECT count(*), coalesce(sum(ever_printed), 0), coalesce(sum(state='ok'), 0),
                    coalesce(sum(reprints>0), 0), coalesce(sum(state='resolved'), 0),
                    coalesce(sum(duplicates), 0)
             FROM ledger_pieces WHERE run_id=?1",
        params![run],
        |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        },
    )?;
    let disagreements: u64 = conn.query_row(
        "SELECT coalesce(sum(n), 0) FROM ledger_counts WHERE run_id=?1 AND what='disagreements'",
        params![run],
        |r| r.get(0),
    )?;
    let grouped = |sql: &str| -> Result<Vec<(String, String, u64)>, LedgerError> {
        let mut stmt = conn.prepare(sql)?;
        let rows = stmt.query_map(params![run], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    };
    let mut by_printer = BTreeMap::new();
    let mut sheets_printed = 0;
    for (printer, _, n) in grouped(
        "SELECT substr(what, 8), '', n FROM ledger_counts
         WHERE run_id=?1 AND what LIKE 'sheets:%'",
    )? {
        sheets_printed += n;
        by_printer.insert(printer, n);
    }
    let mut by_inserter: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for (inserter, state, n) in grouped(
        "SELECT inserter, state, count(*) FROM ledger_pieces
         WHERE run_id=?1 AND inserter IS NOT NULL GROUP BY inserter, state",
    )? {
        by_inserter.entry(inserter).or_default().insert(state, n);
    }
    let by_reason = grouped(
        "SELECT substr(what, 8), '', n FROM ledger_counts
         WHERE run_id=?1 AND what LIKE 'reason:%'",
    )?
    .into_iter()
    .map(|(k, _, n)| (k, n))
    .collect();
    let mut printer_stops: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for (what, _, n) in grouped(
        "SELECT substr(what, 6), '', n FROM ledger_counts
         WHERE run_id=?1 AND what LIKE 'stop:%'",
    )? {
        let (printer, how) = what.split_once('|').unwrap_or((&what, ""));
        printer_stops
            .entry(printer.to_string())
            .or_default()
            .insert(how.to_string(), n);
    }
    let mut stmt = conn.prepare(
        "SELECT job, piece, print_job, state, reason FROM ledger_pieces
         WHERE run_id=?1 AND state NOT IN ('ok', 'resolved') ORDER BY job, piece LIMIT ?2",
    )?;
    let unresolved_pieces = stmt
        .query_map(params![run, LISTED as i64], |r| {
            Ok(Unresolved {
                job: r.get(0)?,
                piece: r.get(1)?,
                print_job: r.get(2)?,
                state: r.get(3)?,
                reason: r.get(4)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let unresolved = expected - inserted_ok - resolved;
    Ok(Reconciliation {
        run: run.into(),
        expected,
        printed,
        inserted_ok,
        reprinted,
        resolved,
        unresolved,
        duplicates,
        disagreements,
        complete: unresolved == 0,
        print_jobs,
        sheets,
        sheets_printed,
        by_printer,
        by_inserter,
        by_reason,
        printer_stops,
        unresolved_pieces,
    })
}

impl std::fmt::Display for Reconciliation {
    /// The report an operator reads.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verdict = if self.complete {
            "complete"
        } else {
            "NOT complete"
        };
        writeln!(f, "run {}: {verdict}", self.run)?;
        writeln!(
            f,
            "  pieces   expected {}  printed {}  inserted OK {}  reprinted {}  resolved {}  unresolved {}",
            self.expected,
            self.printed,
            self.inserted_ok,
            self.reprinted,
            self.resolved,
            self.unresolved
        )?;
        writeln!(
            f,
            "  sheets   {} in {} print jobs, {} confirmed printed",
            self.sheets, self.print_jobs, self.sheets_printed
        )?;
        writeln!(
            f,
            "  flagged  duplicates {}  disagreements {}",
            self.duplicates, self.disagreements
        )?;
        for (p, n) in &self.by_printer {
            writeln!(f, "  printer  {p}: {n} sheets")?;
        }
        for (i, states) in &self.by_inserter {
            let s: Vec<String> = states.iter().map(|(k, n)| format!("{k} {n}")).collect();
            writeln!(f, "  inserter {i}: {}", s.join(", "))?;
        }
        for (r, n) in &self.by_reason {
            writeln!(f, "  reason   {r}: {n}")?;
        }
        for (p, stops) in &self.printer_stops {
            for (how, n) in stops {
                writeln!(f, "  stopped  {p}: {how}: {n}")?;
            }
        }
        for u in &self.unresolved_pieces {
            writeln!(
                f,
                "  open     {}/{} in {}: {}{}",
                u.job,
                u.piece,
                u.print_job,
                u.state,
                u.reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            )?;
        }
        if self.unresolved as usize > self.unresolved_pieces.len() {
            writeln!(
                f,
                "  … and {} more",
                self.unresolved as usize - self.unresolved_pieces.len()
            )?;
        }
        Ok(())
    }
}
