//! The run registry in an embedded SQLite database: every run this dispatcher started,
//! its folder and state, the counts so far, and which backend rendered each committed
//! shard. It is the operator's list of runs (`dispatcher runs`); the run's own checkpoint
//! is the journal in its output folder, which a resumed run verifies.

use std::path::Path;

use pressrun_engine::run::{CommitRecord, RunStatus};
use rusqlite::{Connection, params};

/// The registry database.
pub struct State {
    conn: Connection,
}

/// A run as the registry knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    pub id: String,
    pub out: String,
    pub status: String,
    /// Shards committed.
    pub committed: u64,
    pub records: u64,
    pub documents: u64,
    pub rejected: u64,
}

/// A registry problem.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("run registry database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("cannot create the run registry's folder: {0}")]
    Folder(#[from] std::io::Error),
}

impl State {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS runs (
                id TEXT PRIMARY KEY,
                out TEXT NOT NULL,
                status TEXT NOT NULL,
                committed INTEGER NOT NULL DEFAULT 0,
                records INTEGER NOT NULL DEFAULT 0,
                documents INTEGER NOT NULL DEFAULT 0,
                rejected INTEGER NOT NULL DEFAULT 0
            );
            CREATE TABLE IF NOT EXISTS shards (
                run_id TEXT NOT NULL,
                shard INTEGER NOT NULL,
                records INTEGER NOT NULL,
                backend TEXT NOT NULL,
                PRIMARY KEY (run_id, shard)
            );",
        )?;
        Ok(Self { conn })
    }

    /// Registers a run (or finds it again) as running.
    pub fn begin_run(&self, id: &str, out: &str, resumed: u64) -> Result<(), StateError> {
        self.conn.execute(
            "INSERT INTO runs (id, out, status, committed) VALUES (?1, ?2, 'running', ?3)
             ON CONFLICT(id) DO UPDATE SET status = 'running', committed = ?3",
            params![id, out, resumed],
        )?;
        Ok(())
    }

    /// Records a committed shard and the counts after it.
    pub fn commit_shard(&mut self, id: &str, r: &CommitRecord) -> Result<(), StateError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT OR REPLACE INTO shards (run_id, shard, records, backend) VALUES (?1, ?2, ?3, ?4)",
            params![id, r.shard, r.records, r.backend],
        )?;
        tx.execute(
            "UPDATE runs SET committed = ?2, records = ?3, documents = ?4, rejected = ?5 WHERE id = ?1",
            params![
                id,
                r.shard + 1,
                r.totals.records,
                r.totals.documents,
                r.totals.rejected
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Marks a run as ended with `status`.
    pub fn finish_run(&self, id: &str, status: RunStatus) -> Result<(), StateError> {
        self.conn.execute(
            "UPDATE runs SET status = ?2 WHERE id = ?1",
            params![id, status.as_str()],
        )?;
        Ok(())
    }

    /// Lists runs, oldest first.
    pub fn runs(&self) -> Result<Vec<RunRow>, StateError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, out, status, committed, records, documents, rejected FROM runs ORDER BY rowid",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(RunRow {
                id: r.get(0)?,
                out: r.get(1)?,
                status: r.get(2)?,
                committed: r.get(3)?,
                records: r.get(4)?,
                documents: r.get(5)?,
                rejected: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pressrun_engine::run::RunSummary;
    use pressrun_engine::run::output::Segment;

    #[test]
    fn runs_and_their_shards_are_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite");
        let mut s = State::open(&path).unwrap();
        s.begin_run("r1", "/out", 0).unwrap();
        let record = CommitRecord {
            shard: 0,
            records: 8,
            backend: "127.0.0.1:1".into(),
            files: vec![],
            documents: Segment::default(),
            exceptions: Segment::default(),
            warnings: Segment::default(),
            totals: RunSummary {
                records: 8,
                documents: 7,
                rejected: 1,
                ..RunSummary::default()
            },
        };
        s.commit_shard("r1", &record).unwrap();
        s.finish_run("r1", RunStatus::Succeeded).unwrap();
        let s = State::open(&path).unwrap();
        let runs = s.runs().unwrap();
        assert_eq!(
            runs,
            [RunRow {
                id: "r1".into(),
                out: "/out".into(),
                status: "succeeded".into(),
                committed: 1,
                records: 8,
                documents: 7,
                rejected: 1,
            }]
        );
        s.begin_run("r1", "/out", 1).unwrap();
        assert_eq!(s.runs().unwrap()[0].status, "running");
    }
}
