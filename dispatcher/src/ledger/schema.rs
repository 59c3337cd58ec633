//! The ledger's tables, in the run registry's SQLite database.
//!
//! `ledger_events` is the append-only record (triggers refuse UPDATE and DELETE);
//! `ledger_sheets` is the plan (each sheet's last impression in its print job: a sheet is
//! printed when its job's confirmed count reaches it); `ledger_jobs` and `ledger_pieces`
//! hold the current state, changed in the same transaction as the events that explain
//! the change; `ledger_counts` keeps the report's running counts.

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
    -- the agent and printer that hold the job to print (set when the agent has it on disk)
    queued_to TEXT,
    -- the printer finished with the job (done, stopped or lost): its unconfirmed pieces
    -- are reprint candidates
    ended TEXT,
    PRIMARY KEY (run_id, print_job)
);
CREATE TABLE IF NOT EXISTS ledger_sheets (
    run_id TEXT NOT NULL,
    print_job TEXT NOT NULL,
    piece TEXT NOT NULL,
    sheet INTEGER NOT NULL,
    last_impression INTEGER NOT NULL,
    PRIMARY KEY (run_id, print_job, piece, sheet)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ledger_sheets_by_impression
    ON ledger_sheets (run_id, print_job, last_impression);
CREATE TABLE IF NOT EXISTS ledger_pieces (
    run_id TEXT NOT NULL,
    job TEXT NOT NULL,
    piece TEXT NOT NULL,
    sheets INTEGER NOT NULL,
    -- the print job the piece is in now (its own job, or its latest reprint)
    print_job TEXT NOT NULL,
    -- the impression of print_job that completes the piece
    last_impression INTEGER NOT NULL,
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
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ledger_pieces_by_impression
    ON ledger_pieces (run_id, print_job, last_impression);
CREATE TABLE IF NOT EXISTS ledger_events (
    seq INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    print_job TEXT NOT NULL,
    piece TEXT,
    sheet INTEGER,
    -- assembled | sent | printed | inserted | duplicate | unexpected | implausible
    -- | disagreement | reprint | resolved | queued | ended | superseded
    event TEXT NOT NULL,
    outcome TEXT,
    device TEXT,
    evidence TEXT,
    at TEXT NOT NULL
);
-- running counts the report needs without reading the events: disagreements, and
-- inserter reports that were not OK by outcome (reason:jammed, …)
CREATE TABLE IF NOT EXISTS ledger_counts (
    run_id TEXT NOT NULL,
    what TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (run_id, what)
) WITHOUT ROWID;
-- per event source (a printer agent), the last of its numbered batches recorded: a
-- batch sent again after a reconnect is recognised and not applied twice
CREATE TABLE IF NOT EXISTS ledger_sources (
    source TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL
) WITHOUT ROWID;
-- runs an operator asked to print (`dispatcher print`, `SubmitRun` with printing): their
-- jobs not yet with an agent are handed out whenever a capable printer attaches, also
-- after the dispatcher restarts
CREATE TABLE IF NOT EXISTS ledger_print_requests (
    run_id TEXT PRIMARY KEY,
    at TEXT NOT NULL
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS ledger_events_no_update BEFORE UPDATE ON ledger_events
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS ledger_events_no_delete BEFORE DELETE ON ledger_events
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
";
