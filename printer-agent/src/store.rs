//! The agent's durable state, in `state_dir/agent.sqlite` (WAL, `synchronous = FULL`:
//! a change is on disk when the call returns):
//!
//! - the **outbox**: numbered event batches for the dispatcher, kept until it
//!   acknowledges them (it records each number once, so sending again is safe);
//! - the **jobs** the agent holds: header, folder, state (`queued` → `submitting` →
//!   `printing` with the printer's job id → `ended`) and impressions confirmed;
//! - per inserter, the last PIL/1 seq recorded (the seq `ACK`ed, rule 1).
//!
//! A job's state change and the events that report it are one transaction, so after a
//! crash the agent's state and what it owes the dispatcher agree.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use pressrun_proto::v1::{DeviceEvent, EventBatch, PrintJob};
use prost::Message;
use rusqlite::{Connection, OptionalExtension, params};

use crate::pil::host::Outcome;
use crate::pil::message::PieceStatus;

/// A store problem.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("agent state database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("cannot create the agent's state folder: {0}")]
    Folder(#[from] std::io::Error),
    #[error("agent state database holds a row that does not decode: {0}")]
    Decode(#[from] prost::DecodeError),
}

/// Where a held job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobStage {
    /// On disk, verified, waiting for its printer.
    Queued,
    /// Being sent to the printer: if the agent stops here, whether the printer took it
    /// is unknown.
    Submitting,
    /// The printer took it as its job `device_job`.
    Printing,
    /// The printer is done with it.
    Ended,
}

impl JobStage {
    fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Submitting => "submitting",
            Self::Printing => "printing",
            Self::Ended => "ended",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "queued" => Self::Queued,
            "submitting" => Self::Submitting,
            "printing" => Self::Printing,
            _ => Self::Ended,
        }
    }
}

/// A job the agent holds.
#[derive(Clone, Debug, PartialEq)]
pub struct HeldJob {
    pub header: PrintJob,
    pub dir: PathBuf,
    pub stage: JobStage,
    pub device_job: Option<i32>,
    pub completed: u64,
}

impl HeldJob {
    /// The print file.
    pub fn pdf(&self) -> PathBuf {
        self.dir.join(format!("{}.pdf", self.header.print_job))
    }
}

/// The agent's state database.
pub struct Store {
    conn: Mutex<Connection>,
    root: PathBuf,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    batch BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    run_id TEXT NOT NULL,
    print_job TEXT NOT NULL,
    printer TEXT NOT NULL,
    header BLOB NOT NULL,
    dir TEXT NOT NULL,
    stage TEXT NOT NULL,
    device_job INTEGER,
    completed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, print_job)
);
CREATE TABLE IF NOT EXISTS pil (
    inserter TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS pil_outcomes (
    inserter TEXT NOT NULL,
    job TEXT NOT NULL,
    piece TEXT NOT NULL,
    seq INTEGER NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    read INTEGER NOT NULL,
    PRIMARY KEY (inserter, job, piece)
);
CREATE TABLE IF NOT EXISTS pil_jobs (
    inserter TEXT NOT NULL,
    job TEXT NOT NULL,
    run_id TEXT NOT NULL,
    print_job TEXT NOT NULL,
    pieces TEXT NOT NULL,
    ended INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (inserter, job)
);
";

impl Store {
    /// Opens (creating if needed) the store in `state_dir`.
    pub fn open(state_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(state_dir)?;
        let conn = Connection::open(state_dir.join("agent.sqlite"))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self {
            conn: Mutex::new(conn),
            root: state_dir.to_path_buf(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Where the files of `run`/`job` are kept.
    pub fn job_dir(&self, run: &str, job: &str) -> PathBuf {
        self.root.join("jobs").join(run).join(job)
    }

    /// Queues events for the dispatcher (durably) and returns their batch number.
    pub fn push(&self, run: &str, events: Vec<DeviceEvent>) -> Result<u64, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let seq = push_in(&tx, run, events)?;
        tx.commit()?;
        Ok(seq)
    }

    /// The batches not yet acknowledged, with a number above `after`, in order.
    pub fn pending(&self, after: u64, limit: usize) -> Result<Vec<EventBatch>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached("SELECT seq, batch FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
        let rows = stmt.query_map(params![after, limit as i64], |r| {
            Ok((r.get::<_, u64>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, blob) = row?;
            let mut b = EventBatch::decode(blob.as_slice())?;
            b.seq = seq;
            out.push(b);
        }
        Ok(out)
    }

    /// The dispatcher has recorded every batch up to `seq`: they are dropped. Returns
    /// how many wait still.
    pub fn acknowledged(&self, seq: u64) -> Result<u64, StoreError> {
        let conn = self.lock();
        conn.execute("DELETE FROM outbox WHERE seq <= ?1", params![seq])?;
        Ok(conn.query_row("SELECT count(*) FROM outbox", [], |r| r.get(0))?)
    }

    /// The dispatcher says it recorded up to `last_recorded` from this agent. If that is
    /// beyond any number this store ever gave (its state was lost or replaced), the
    /// batches waiting are renumbered above it, so none is taken for a retransmission.
    /// Returns how many were renumbered.
    pub fn welcome(&self, last_recorded: u64) -> Result<u64, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let issued: u64 = tx
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name='outbox'",
                [],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0);
        let mut renumbered = 0;
        if last_recorded > issued {
            let rows: Vec<(u64, String, Vec<u8>)> = {
                let mut stmt = tx.prepare("SELECT seq, run_id, batch FROM outbox ORDER BY seq")?;
                stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect::<Result<_, _>>()?
            };
            tx.execute("DELETE FROM outbox", [])?;
            // sqlite_sequence has no key: update its row, or make it.
            if tx.execute(
                "UPDATE sqlite_sequence SET seq=?1 WHERE name='outbox'",
                params![last_recorded],
            )? == 0
            {
                tx.execute(
                    "INSERT INTO sqlite_sequence (name, seq) VALUES ('outbox', ?1)",
                    params![last_recorded],
                )?;
            }
            for (_, run, blob) in rows {
                tx.execute(
                    "INSERT INTO outbox (run_id, batch) VALUES (?1, ?2)",
                    params![run, blob],
                )?;
                renumbered += 1;
            }
        } else {
            tx.execute("DELETE FROM outbox WHERE seq <= ?1", params![last_recorded])?;
        }
        tx.commit()?;
        Ok(renumbered)
    }

    /// Takes a received, verified job: held as `queued`, with its `queued` event.
    /// A job held already is left as it is (`false`).
    pub fn hold(&self, header: &PrintJob, dir: &Path) -> Result<bool, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let added = tx.execute(
            "INSERT OR IGNORE INTO jobs (run_id, print_job, printer, header, dir, stage)
             VALUES (?1, ?2, ?3, ?4, ?5, 'queued')",
            params![
                header.run_id,
                header.print_job,
                header.printer,
                header.encode_to_vec(),
                dir.display().to_string()
            ],
        )?;
        push_in(
            &tx,
            &header.run_id,
            vec![crate::events::queued(&header.print_job, &header.printer)],
        )?;
        tx.commit()?;
        Ok(added == 1)
    }

    /// Moves a job to `stage` and queues the events that report it, in one transaction.
    pub fn advance(
        &self,
        job: &HeldJob,
        stage: JobStage,
        device_job: Option<i32>,
        completed: u64,
        events: Vec<DeviceEvent>,
    ) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        tx.execute(
            "UPDATE jobs SET stage=?3, device_job=coalesce(?4, device_job), completed=max(completed, ?5)
             WHERE run_id=?1 AND print_job=?2",
            params![
                job.header.run_id,
                job.header.print_job,
                stage.as_str(),
                device_job,
                completed
            ],
        )?;
        if !events.is_empty() {
            push_in(&tx, &job.header.run_id, events)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Withdraws a held job that its printer has not started: ended, with its event.
    /// Returns whether it was withdrawn (`false`: not held, or already submitted).
    pub fn withdraw(&self, run: &str, job: &str, why: &str) -> Result<bool, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let printer: Option<String> = tx
            .query_row(
                "SELECT printer FROM jobs WHERE run_id=?1 AND print_job=?2 AND stage='queued'",
                params![run, job],
                |r| r.get(0),
            )
            .optional()?;
        let Some(printer) = printer else {
            return Ok(false);
        };
        tx.execute(
            "UPDATE jobs SET stage='ended' WHERE run_id=?1 AND print_job=?2",
            params![run, job],
        )?;
        push_in(
            &tx,
            run,
            vec![crate::events::ended(
                job,
                &printer,
                format!("withdrawn: {why}"),
                0,
            )],
        )?;
        tx.commit()?;
        Ok(true)
    }

    /// The stage a held job is at now.
    pub fn stage(&self, run: &str, job: &str) -> Result<Option<JobStage>, StoreError> {
        Ok(self
            .lock()
            .query_row(
                "SELECT stage FROM jobs WHERE run_id=?1 AND print_job=?2",
                params![run, job],
                |r| r.get::<_, String>(0),
            )
            .optional()?
            .map(|s| JobStage::parse(&s)))
    }

    /// The jobs held for `printer` that are not ended, oldest first.
    pub fn open_jobs(&self, printer: &str) -> Result<Vec<HeldJob>, StoreError> {
        self.jobs_where("printer=?1 AND stage<>'ended'", printer)
    }

    /// Every job not ended, "RUN/JOB", for the hello.
    pub fn holding(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT run_id || '/' || print_job FROM jobs WHERE stage<>'ended' ORDER BY rowid",
        )?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A held job by run and id.
    pub fn job(&self, run: &str, job: &str) -> Result<Option<HeldJob>, StoreError> {
        let conn = self.lock();
        let row = conn
            .query_row(
                "SELECT header, dir, stage, device_job, completed FROM jobs WHERE run_id=?1 AND print_job=?2",
                params![run, job],
                |r| {
                    Ok((
                        r.get::<_, Vec<u8>>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get(3)?,
                        r.get(4)?,
                    ))
                },
            )
            .optional()?;
        row.map(decode_job).transpose()
    }

    fn jobs_where(&self, filter: &str, arg: &str) -> Result<Vec<HeldJob>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(&format!(
            "SELECT header, dir, stage, device_job, completed FROM jobs WHERE {filter} ORDER BY rowid"
        ))?;
        let rows = stmt.query_map(params![arg], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get(3)?,
                r.get(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            out.push(decode_job(row?)?);
        }
        Ok(out)
    }

    /// The last PIL/1 seq recorded from `inserter` (0 if none).
    pub fn pil_last(&self, inserter: &str) -> Result<u64, StoreError> {
        Ok(self
            .lock()
            .query_row(
                "SELECT last_seq FROM pil WHERE inserter=?1",
                params![inserter],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0))
    }

    /// The recorded outcomes of the pieces of `job` as declared last to `inserter`.
    pub fn pil_outcomes(
        &self,
        inserter: &str,
        job: &str,
    ) -> Result<Vec<(String, Outcome)>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT piece, seq, status, reason, read FROM pil_outcomes WHERE inserter=?1 AND job=?2",
        )?;
        let rows = stmt.query_map(params![inserter, job], |r| {
            let status: String = r.get(2)?;
            Ok((
                r.get::<_, String>(0)?,
                Outcome {
                    seq: r.get(1)?,
                    status: PieceStatus::parse(&status).unwrap_or(PieceStatus::Divert),
                    reason: r.get(3)?,
                    read: r.get(4)?,
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A job declared to `inserter` (its id on the paper, run, print job, and pieces as
    /// `(piece, sheets, feeders)`), so that after a restart its reports still reach the
    /// right print job and its unreported pieces are still called unknown at `JOBEND`.
    pub fn pil_declared(
        &self,
        inserter: &str,
        job: &str,
        run: &str,
        print_job: &str,
        pieces: &[(String, u32, u32)],
    ) -> Result<(), StoreError> {
        let text: Vec<String> = pieces
            .iter()
            .map(|(p, s, f)| format!("{p}:{s}:{f}"))
            .collect();
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT OR REPLACE INTO pil_jobs (inserter, job, run_id, print_job, pieces, ended)
             VALUES (?1, ?2, ?3, ?4, ?5, 0)",
            params![inserter, job, run, print_job, text.join(" ")],
        )?;
        // A job id declared again (a reprint) starts afresh.
        tx.execute(
            "DELETE FROM pil_outcomes WHERE inserter=?1 AND job=?2",
            params![inserter, job],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// `JOBEND` of a declared job was recorded.
    pub fn pil_ended(&self, inserter: &str, job: &str) -> Result<(), StoreError> {
        self.lock().execute(
            "UPDATE pil_jobs SET ended=1 WHERE inserter=?1 AND job=?2",
            params![inserter, job],
        )?;
        Ok(())
    }

    /// Every job declared to `inserter`: (job, run, print job, pieces, ended).
    #[allow(clippy::type_complexity)]
    pub fn pil_jobs(
        &self,
        inserter: &str,
    ) -> Result<Vec<(String, String, String, Vec<(String, u32, u32)>, bool)>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT job, run_id, print_job, pieces, ended FROM pil_jobs WHERE inserter=?1 ORDER BY rowid",
        )?;
        let rows = stmt.query_map(params![inserter], |r| {
            let text: String = r.get(3)?;
            let pieces = text
                .split(' ')
                .filter_map(|w| {
                    let mut it = w.split(':');
                    Some((
                        it.next()?.to_string(),
                        it.next()?.parse().ok()?,
                        it.next()?.parse().ok()?,
                    ))
                })
                .collect();
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                pieces,
                r.get::<_, bool>(4)?,
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records a PIL/1 event from `inserter`: its seq and the events it means for the
    /// dispatcher, in one transaction — after this returns, it may be `ACK`ed.
    pub fn pil_record(
        &self,
        inserter: &str,
        seq: u64,
        run: Option<&str>,
        events: Vec<DeviceEvent>,
        piece: Option<(&str, &str, &Outcome)>,
    ) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        if let Some((job, piece, o)) = piece {
            // The first report of a piece in a declaration stands (a duplicate is not kept).
            tx.execute(
                "INSERT OR IGNORE INTO pil_outcomes (inserter, job, piece, seq, status, reason, read)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![inserter, job, piece, o.seq, o.status.as_str(), o.reason, o.read],
            )?;
        }
        tx.execute(
            "INSERT INTO pil (inserter, last_seq) VALUES (?1, ?2)
             ON CONFLICT (inserter) DO UPDATE SET last_seq=max(last_seq, ?2)",
            params![inserter, seq],
        )?;
        if let Some(run) = run
            && !events.is_empty()
        {
            push_in(&tx, run, events)?;
        }
        tx.commit()?;
        Ok(())
    }
}

type JobRow = (Vec<u8>, String, String, Option<i32>, u64);

fn decode_job((header, dir, stage, device_job, completed): JobRow) -> Result<HeldJob, StoreError> {
    Ok(HeldJob {
        header: PrintJob::decode(header.as_slice())?,
        dir: PathBuf::from(dir),
        stage: JobStage::parse(&stage),
        device_job,
        completed,
    })
}

fn push_in(
    tx: &rusqlite::Transaction<'_>,
    run: &str,
    events: Vec<DeviceEvent>,
) -> Result<u64, StoreError> {
    let batch = EventBatch {
        seq: 0,
        run_id: run.to_string(),
        events,
    };
    tx.prepare_cached("INSERT INTO outbox (run_id, batch) VALUES (?1, ?2)")?
        .execute(params![run, batch.encode_to_vec()])?;
    Ok(tx.last_insert_rowid() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(job: &str) -> PrintJob {
        PrintJob {
            run_id: "r1".into(),
            print_job: job.into(),
            origin: job.into(),
            printer: "p1".into(),
            duplex: true,
            impressions: 8,
            ..Default::default()
        }
    }

    #[test]
    fn batches_stay_until_acknowledged_and_numbers_are_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        assert!(s.hold(&header("J1"), dir.path()).unwrap());
        assert!(!s.hold(&header("J1"), dir.path()).unwrap());
        let j = s.job("r1", "J1").unwrap().unwrap();
        assert_eq!(j.stage, JobStage::Queued);
        s.advance(
            &j,
            JobStage::Printing,
            Some(17),
            4,
            vec![crate::events::accepted("J1", "p1", 17)],
        )
        .unwrap();
        let pending = s.pending(0, 100).unwrap();
        assert_eq!(pending.iter().map(|b| b.seq).collect::<Vec<_>>(), [1, 2, 3]);
        s.acknowledged(3).unwrap();
        drop(s);
        // Reopened: the acknowledged are gone, the numbering goes on.
        let s = Store::open(dir.path()).unwrap();
        assert!(s.pending(0, 100).unwrap().is_empty());
        assert_eq!(s.push("r1", vec![]).unwrap(), 4);
        let j = s.job("r1", "J1").unwrap().unwrap();
        assert_eq!(
            (j.stage, j.device_job, j.completed),
            (JobStage::Printing, Some(17), 4)
        );
        assert_eq!(s.holding().unwrap(), ["r1/J1"]);
        // A dispatcher that recorded more than this store ever numbered (the agent's
        // state was replaced): what waits is renumbered above it.
        assert_eq!(s.welcome(10).unwrap(), 1);
        assert_eq!(
            s.pending(0, 100)
                .unwrap()
                .iter()
                .map(|b| b.seq)
                .collect::<Vec<_>>(),
            [11]
        );
        assert_eq!(s.welcome(11).unwrap(), 0);
        assert!(s.pending(0, 100).unwrap().is_empty());
        s.pil_record("ins1", 5, Some("r1"), vec![], None).unwrap();
        s.pil_record("ins1", 3, None, vec![], None).unwrap();
        assert_eq!(s.pil_last("ins1").unwrap(), 5);
    }
}
