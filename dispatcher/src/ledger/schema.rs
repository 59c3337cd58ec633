//! The ledger's tables, in the run registry's SQLite database.
//!
//! `ledger_events` is the append-only record (triggers refuse UPDATE and DELETE);
//! `ledger_jobs`, `ledger_sheets` and `ledger_pieces` hold each thing's current state,
//! changed in the same transaction as the events that explain the change.

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS ledger_jobs (
    run_id TEXT NOT NULL,
    print_job TEXT NOT NULL,
    -- the job its pieces were assembled in (itself, or the original of a reprint)
    origin TEXT NOT NULL,
    pieces INTEGER NOT NULL,
    sheets INTEGER NOT NULL,
    impressions INTEGER NOT NULL,
    printer TEXT,
    device_job TEXT,
    completed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, print_job)
);
CREATE TABLE IF NOT EXISTS ledger_sheets (
    run_id TEXT NOT NULL,
    print_job TEXT NOT NULL,
    piece TEXT NOT NULL,
    sheet INTEGER NOT NULL,
    last_impression INTEGER NOT NULL,
    -- assembled | sent | printed
    state TEXT NOT NULL,
    printer TEXT,
    PRIMARY KEY (run_id, print_job, piece, sheet)
);
CREATE INDEX IF NOT EXISTS ledger_sheets_by_impression
    ON ledger_sheets (run_id, print_job, state, last_impression);
CREATE TABLE IF NOT EXISTS ledger_pieces (
    run_id TEXT NOT NULL,
    job TEXT NOT NULL,
    piece TEXT NOT NULL,
    sheets INTEGER NOT NULL,
    -- the print job the piece is in now (its own job, or its latest reprint)
    print_job TEXT NOT NULL,
    printed_sheets INTEGER NOT NULL DEFAULT 0,
    ever_printed INTEGER NOT NULL DEFAULT 0,
    -- assembled | sent | printed | ok | diverted | jammed | pulled | unknown | resolved
    state TEXT NOT NULL,
    reason TEXT,
    -- the print job of the inserter report that stands
    inserted_in TEXT,
    inserter TEXT,
    reprints INTEGER NOT NULL DEFAULT 0,
    duplicates INTEGER NOT NULL DEFAULT 0,
    resolved_by TEXT,
    PRIMARY KEY (run_id, job, piece)
);
CREATE TABLE IF NOT EXISTS ledger_events (
    seq INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    print_job TEXT NOT NULL,
    piece TEXT,
    sheet INTEGER,
    -- assembled | sent | printed | inserted | duplicate | unexpected | implausible
    -- | disagreement | reprint | resolved
    event TEXT NOT NULL,
    outcome TEXT,
    device TEXT,
    evidence TEXT,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_events_by_run ON ledger_events (run_id, event);
CREATE TRIGGER IF NOT EXISTS ledger_events_no_update BEFORE UPDATE ON ledger_events
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS ledger_events_no_delete BEFORE DELETE ON ledger_events
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
";
