//! Run state in an embedded SQLite database: each run, the shards it has committed, and
//! the checkpoint (index-file lengths and counts) to resume from after a crash.

use std::path::Path;

use pressrun_engine::run::Checkpoint;
use rusqlite::{Connection, OptionalExtension, params};

/// The state database.
pub struct State {
    conn: Connection,
}

/// A run as the database knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    pub id: String,
    pub status: String,
    /// Shards committed (the next shard to commit).
    pub committed: u64,
    pub description: String,
}

/// A state database problem.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("run state database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("run state database holds a damaged checkpoint: {0}")]
    Checkpoint(#[from] serde_json::Error),
}

impl State {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS runs (
                id TEXT PRIMARY KEY,
                status TEXT NOT NULL,
                committed INTEGER NOT NULL DEFAULT 0,
                checkpoint TEXT,
                description TEXT NOT NULL
            );
            CREATE TABLE IF NOT EXISTS shards (
                run_id TEXT NOT NULL,
                shard INTEGER NOT NULL,
                records INTEGER NOT NULL,
                node TEXT NOT NULL,
                PRIMARY KEY (run_id, shard)
            );",
        )?;
        Ok(Self { conn })
    }

    /// Registers a run (or finds it again) and returns where to resume: the number of
    /// shards already committed and the checkpoint after the last of them.
    pub fn begin_run(
        &self,
        id: &str,
        description: &str,
    ) -> Result<(u64, Option<Checkpoint>), StateError> {
        let row: Option<(u64, Option<String>)> = self
            .conn
            .query_row(
                "SELECT committed, checkpoint FROM runs WHERE id = ?1",
                params![id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        match row {
            Some((committed, checkpoint)) => {
                self.conn.execute(
                    "UPDATE runs SET status = 'running' WHERE id = ?1",
                    params![id],
                )?;
                let cp = checkpoint.map(|c| serde_json::from_str(&c)).transpose()?;
                Ok((if cp.is_some() { committed } else { 0 }, cp))
            }
            None => {
                self.conn.execute("INSERT INTO runs (id, status, committed, description) VALUES (?1, 'running', 0, ?2)", params![id, description])?;
                Ok((0, None))
            }
        }
    }

    /// Records that `shard` is committed and the checkpoint after it, atomically.
    pub fn commit_shard(
        &mut self,
        id: &str,
        shard: u64,
        records: u64,
        node: &str,
        checkpoint: &Checkpoint,
    ) -> Result<(), StateError> {
        let cp = serde_json::to_string(checkpoint)?;
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT OR REPLACE INTO shards (run_id, shard, records, node) VALUES (?1, ?2, ?3, ?4)",
            params![id, shard, records, node],
        )?;
        tx.execute(
            "UPDATE runs SET committed = ?2, checkpoint = ?3 WHERE id = ?1",
            params![id, shard + 1, cp],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Marks a run as finished with `status` (`succeeded`, `failed`).
    pub fn finish_run(&self, id: &str, status: &str) -> Result<(), StateError> {
        self.conn.execute(
            "UPDATE runs SET status = ?2 WHERE id = ?1",
            params![id, status],
        )?;
        Ok(())
    }

    /// Lists runs, newest last.
    pub fn runs(&self) -> Result<Vec<RunRow>, StateError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, status, committed, description FROM runs ORDER BY rowid")?;
        let rows = stmt.query_map([], |r| {
            Ok(RunRow {
                id: r.get(0)?,
                status: r.get(1)?,
                committed: r.get(2)?,
                description: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_resumes_after_its_last_committed_shard() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite");
        {
            let mut s = State::open(&path).unwrap();
            assert_eq!(s.begin_run("r1", "{}").unwrap().0, 0);
            let mut cp = Checkpoint {
                documents_len: 100,
                ..Checkpoint::default()
            };
            cp.summary.documents = 7;
            s.commit_shard("r1", 0, 8, "local", &cp).unwrap();
            cp.documents_len = 250;
            s.commit_shard("r1", 1, 8, "127.0.0.1:1", &cp).unwrap();
        }
        let s = State::open(&path).unwrap();
        let (next, cp) = s.begin_run("r1", "{}").unwrap();
        assert_eq!(next, 2);
        let cp = cp.unwrap();
        assert_eq!((cp.documents_len, cp.summary.documents), (250, 7));
        s.finish_run("r1", "succeeded").unwrap();
        assert_eq!(s.runs().unwrap()[0].status, "succeeded");
        // Another run starts from scratch.
        let (next, cp) = s.begin_run("r2", "{}").unwrap();
        assert_eq!(next, 0);
        assert!(cp.is_none());
    }
}
