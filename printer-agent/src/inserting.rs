//! The agent's inserter driver: PIL/1 as the host over TCP or a serial line, on the
//! rules of [`crate::pil::host::Session`]. Every event is recorded in the agent's store
//! (with the piece outcomes it means for the dispatcher, in one transaction) before it
//! is acknowledged; gaps ask for `RESEND`; after a reconnect `HELLO` and `RESEND`; at
//! `JOBEND` every declared piece without a report goes to the dispatcher as `unknown`.
//! Garbage lines are counted and reported, never acted on.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use pressrun_proto::v1::DeviceEvent;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, mpsc};

use crate::config::Link;
use crate::events;
use crate::pil::host::{Finding, Hello, Received, Session};
use crate::pil::line::{Line, LineSplitter};
use crate::pil::message::{
    DeviceState, Event, EventKind, HostMessage, InserterMessage, PieceStatus,
};
use crate::status::Statuses;
use crate::store::Store;

/// A job for the inserter to expect.
#[derive(Clone, Debug)]
pub struct Declare {
    pub run: String,
    /// The job id on the paper (the marks' `PR1|<job>|…`): the print job's, or for a
    /// reprint its original's.
    pub job: String,
    /// The print job the pieces are in now (the ledger's name for them).
    pub print_job: String,
    /// (piece id, sheets, feeders)
    pub pieces: Vec<(String, u32, u32)>,
}

/// Where an inserter is.
#[derive(Clone, Debug)]
pub enum Address {
    Tcp(String),
    Tty { path: std::path::PathBuf, baud: u32 },
}

impl From<Link<'_>> for Address {
    fn from(l: Link<'_>) -> Self {
        match l {
            Link::Tcp(a) => Self::Tcp(a.to_string()),
            Link::Tty { path, baud } => Self::Tty {
                path: path.to_path_buf(),
                baud,
            },
        }
    }
}

type Reader = Box<dyn AsyncRead + Unpin + Send>;
type Writer = Box<dyn AsyncWrite + Unpin + Send>;

async fn connect(addr: &Address) -> std::io::Result<(Reader, Writer)> {
    match addr {
        Address::Tcp(a) => {
            let s = tokio::net::TcpStream::connect(a).await?;
            s.set_nodelay(true)?;
            let (r, w) = s.into_split();
            Ok((Box::new(r), Box::new(w)))
        }
        Address::Tty { path, baud } => {
            use tokio_serial::SerialPortBuilderExt;
            let port = tokio_serial::new(path.to_string_lossy(), *baud)
                .data_bits(tokio_serial::DataBits::Eight)
                .parity(tokio_serial::Parity::None)
                .stop_bits(tokio_serial::StopBits::One)
                .open_native_async()
                .map_err(std::io::Error::other)?;
            let (r, w) = tokio::io::split(port);
            Ok((Box::new(r), Box::new(w)))
        }
    }
}

/// One inserter's driver state, kept across connections.
pub struct Driver {
    pub name: String,
    pub agent: String,
    pub address: Address,
    pub store: Arc<Store>,
    /// Woken when the outbox has something new.
    pub outbox: Arc<Notify>,
    pub statuses: Arc<Statuses>,
    session: Session,
    /// Job on the paper → (run, print job), for the jobs declared (or held for this
    /// inserter's printer).
    runs: BTreeMap<String, (String, String)>,
    waiting: VecDeque<Declare>,
    /// The job declared and not yet ended.
    current: Option<Declare>,
    /// The inserter said busy: declare again after the next `JOBEND`.
    busy: bool,
}

/// Why a connection ended.
enum Closed {
    Line(String),
    Store(String),
}

impl Driver {
    /// A driver resuming from the store: the jobs declared before (what their reports
    /// mean) and the one still running, with the outcomes recorded for it.
    pub fn new(
        name: String,
        agent: String,
        address: Address,
        store: Arc<Store>,
        outbox: Arc<Notify>,
        statuses: Arc<Statuses>,
    ) -> Result<Self, crate::store::StoreError> {
        let last = store.pil_last(&name)?;
        let mut session = Session::resume(last);
        let mut runs = BTreeMap::new();
        let mut current = None;
        // The jobs declared before a restart: what their reports mean, and the one still
        // running (its pieces not reported by JOBEND are unknown).
        for (job, run, print_job, pieces, ended) in store.pil_jobs(&name)? {
            runs.insert(job.clone(), (run.clone(), print_job.clone()));
            if !ended {
                let _ = session.declare(&job, &pieces);
                for (piece, outcome) in store.pil_outcomes(&name, &job)? {
                    session.restore(&job, &piece, outcome);
                }
                current = Some(Declare {
                    run,
                    job,
                    print_job,
                    pieces,
                });
            }
        }
        Ok(Self {
            name,
            agent,
            address,
            store,
            outbox,
            statuses,
            session,
            runs,
            waiting: VecDeque::new(),
            current,
            busy: false,
        })
    }

    /// Runs the driver: connects (again and again, with back-off), speaks PIL/1, takes
    /// jobs to declare from `jobs`. Returns only when `jobs` closes.
    pub async fn run(mut self, mut jobs: mpsc::Receiver<Declare>) {
        let mut backoff = Duration::from_millis(200);
        loop {
            match connect(&self.address).await {
                Ok((rd, wr)) => {
                    backoff = Duration::from_millis(200);
                    metrics_connect(&self.name);
                    match self.converse(rd, wr, &mut jobs).await {
                        Ok(()) => return,
                        Err(Closed::Line(why)) => {
                            tracing::warn!(inserter = %self.name, "inserter line closed: {why}");
                        }
                        Err(Closed::Store(why)) => {
                            tracing::error!(inserter = %self.name, "cannot record: {why}");
                        }
                    }
                    self.set_state("unreachable", vec!["connection lost".into()]);
                }
                Err(e) => {
                    self.set_state("unreachable", vec![e.to_string()]);
                    tracing::warn!(inserter = %self.name, "cannot reach the inserter: {e}");
                }
            }
            // Wait, still taking jobs to declare.
            let sleep = tokio::time::sleep(backoff);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    _ = &mut sleep => break,
                    d = jobs.recv() => match d {
                        Some(d) => self.queue(d),
                        None => return,
                    },
                }
            }
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    }

    /// A job waits to be declared. What its pieces' reports mean changes only when it is
    /// declared: until then, reports under the same job id on the paper are still about
    /// the job before (a reprint carries its original's id).
    fn queue(&mut self, d: Declare) {
        self.waiting.push_back(d);
    }

    fn set_state(&self, state: &str, reasons: Vec<String>) {
        self.statuses.update(&self.name, |s| {
            s.state = state.to_string();
            s.reasons = reasons;
        });
    }

    async fn converse(
        &mut self,
        mut rd: Reader,
        mut wr: Writer,
        jobs: &mut mpsc::Receiver<Declare>,
    ) -> Result<(), Closed> {
        let mut splitter = LineSplitter::default();
        let mut buf = [0u8; 4096];
        let hello = HostMessage::Hello {
            agent: self.agent.clone(),
        };
        send(&mut wr, &[hello]).await?;
        let mut greeted = false;
        let mut status = tokio::time::interval(Duration::from_secs(5));
        loop {
            let out: Vec<HostMessage> = tokio::select! {
                n = rd.read(&mut buf) => match n {
                    Ok(0) => return Err(Closed::Line("the inserter closed the line".into())),
                    Err(e) => return Err(Closed::Line(e.to_string())),
                    Ok(n) => {
                        let mut out = Vec::new();
                        for line in splitter.push(&buf[..n]) {
                            out.extend(self.line(line, &mut greeted)?);
                        }
                        out
                    }
                },
                d = jobs.recv() => match d {
                    Some(d) => { self.queue(d); Vec::new() }
                    None => return Ok(()),
                },
                _ = status.tick() => if greeted { vec![HostMessage::Status] } else { Vec::new() },
            };
            let mut out = out;
            if greeted
                && !self.busy
                && self.current.is_none()
                && let Some(d) = self.waiting.pop_front()
            {
                self.store
                    .pil_declared(&self.name, &d.job, &d.run, &d.print_job, &d.pieces)
                    .map_err(|e| Closed::Store(e.to_string()))?;
                self.runs
                    .insert(d.job.clone(), (d.run.clone(), d.print_job.clone()));
                out.extend(self.session.declare(&d.job, &d.pieces));
                self.current = Some(d);
            }
            send(&mut wr, &out).await?;
        }
    }

    /// One line read: what to send back.
    fn line(&mut self, line: Line, greeted: &mut bool) -> Result<Vec<HostMessage>, Closed> {
        let text = match line {
            Line::Text(t) => t,
            Line::Overlong | Line::Encoding => {
                self.garbage("a line too long or not printable ASCII");
                return Ok(Vec::new());
            }
        };
        let msg = match InserterMessage::parse(&text) {
            Ok(m) => m,
            Err(e) => {
                self.garbage(&format!(
                    "{e}: {:?}",
                    text.chars().take(80).collect::<String>()
                ));
                return Ok(Vec::new());
            }
        };
        match msg {
            InserterMessage::Hello {
                device,
                serial,
                state,
                last_seq,
            } => {
                *greeted = true;
                self.set_state(state_word(state), Vec::new());
                tracing::info!(inserter = %self.name, %device, %serial, last_seq, "inserter says hello");
                Ok(match self.session.hello(last_seq) {
                    Hello::InSync => Vec::new(),
                    Hello::Resend(m) => vec![m],
                    Hello::Reset { recorded, device } => {
                        tracing::error!(
                            inserter = %self.name,
                            recorded,
                            device,
                            "the inserter's numbering restarted (reset or replaced): following it; pieces reported before keep their outcome"
                        );
                        Vec::new()
                    }
                })
            }
            InserterMessage::Ok { job } => {
                tracing::info!(inserter = %self.name, %job, "job accepted by the inserter");
                Ok(Vec::new())
            }
            InserterMessage::Status { state, .. } => {
                self.set_state(state_word(state), Vec::new());
                Ok(Vec::new())
            }
            InserterMessage::Err { code, msg } => {
                tracing::warn!(inserter = %self.name, code = code.as_str(), %msg, "inserter refused a line");
                if code.as_str() == "busy"
                    && let Some(d) = self.current.take()
                {
                    // Declared again once the job in the way ends.
                    tracing::info!(inserter = %self.name, job = %d.job, "inserter busy: the job waits for its JOBEND");
                    self.waiting.push_front(d);
                    self.busy = true;
                }
                Ok(Vec::new())
            }
            InserterMessage::Event(e) => self.event(e),
        }
    }

    fn garbage(&self, what: &str) {
        metrics::counter!("pressrun_agent_garbage_lines_total", "inserter" => self.name.clone())
            .increment(1);
        tracing::warn!(inserter = %self.name, "garbage on the inserter line, ignored: {what}");
        self.statuses.update(&self.name, |s| {
            s.reasons = vec![format!("garbage line: {what}")];
        });
    }

    fn event(&mut self, e: Event) -> Result<Vec<HostMessage>, Closed> {
        let e = match self.session.receive(e) {
            Received::Record(e) => e,
            Received::Retransmission { ack } => return Ok(vec![ack]),
            Received::Gap { resend } => return Ok(vec![resend]),
        };
        let (run, events) = self.meaning(&e);
        let outcome = match &e.kind {
            EventKind::Piece {
                job,
                piece,
                status,
                reason,
                read,
                ..
            } => Some((
                job.as_str(),
                piece.as_str(),
                crate::pil::host::Outcome {
                    seq: e.seq,
                    status: *status,
                    reason: reason.clone(),
                    read: *read,
                },
            )),
            _ => None,
        };
        self.store
            .pil_record(
                &self.name,
                e.seq,
                run.as_deref(),
                events,
                outcome.as_ref().map(|(j, p, o)| (*j, *p, o)),
            )
            .map_err(|err| Closed::Store(err.to_string()))?;
        self.outbox.notify_one();
        let (ack, findings) = self.session.recorded(&e);
        let mut extra = Vec::new();
        for f in findings {
            tracing::warn!(inserter = %self.name, "inserter finding: {f:?}");
            match f {
                Finding::SheetCountMismatch { job, piece, declared, reported } => extra.push((
                    job.clone(),
                    events::disagreement(
                        &self.print_job_of(&job),
                        &self.name,
                        format!("piece {piece}: {declared} sheets declared, the inserter expected {reported}"),
                    ),
                )),
                Finding::JobEndDisagrees { job, device, host } => extra.push((
                    job.clone(),
                    events::disagreement(
                        &self.print_job_of(&job),
                        &self.name,
                        format!("JOBEND counts {device:?}, the host recorded {host:?}"),
                    ),
                )),
                Finding::DuplicatePiece { .. } | Finding::UnexpectedPiece { .. } => {}
            }
        }
        for (job, ev) in extra {
            if let Some((run, _)) = self.runs.get(&job) {
                self.store
                    .push(run, vec![ev])
                    .map_err(|err| Closed::Store(err.to_string()))?;
            }
        }
        if let EventKind::JobEnd { job, .. } = &e.kind {
            self.store
                .pil_ended(&self.name, job)
                .map_err(|err| Closed::Store(err.to_string()))?;
            self.busy = false;
            if self.current.as_ref().is_some_and(|d| &d.job == job) {
                self.current = None;
            }
        }
        if let EventKind::State { state, reason, .. } = &e.kind {
            self.set_state(state_word(*state), reason.iter().cloned().collect());
        }
        Ok(vec![ack])
    }

    fn print_job_of(&self, job: &str) -> String {
        self.runs
            .get(job)
            .map_or_else(|| job.to_string(), |(_, p)| p.clone())
    }

    /// What an event means for the dispatcher: its run and the piece reports. At
    /// `JOBEND`, the declared pieces never reported come as `unknown` (rule 4) — in the
    /// same record as the `JOBEND`, so a crash cannot lose them.
    fn meaning(&self, e: &Event) -> (Option<String>, Vec<DeviceEvent>) {
        match &e.kind {
            EventKind::Piece {
                job,
                piece,
                status,
                reason,
                ..
            } => {
                let Some((run, print_job)) = self.runs.get(job) else {
                    tracing::error!(inserter = %self.name, %job, %piece, seq = e.seq, "a piece of a job this agent does not hold: recorded, not reported to a run");
                    return (None, Vec::new());
                };
                let outcome = match status {
                    PieceStatus::Ok => "ok",
                    PieceStatus::Divert => "diverted",
                    PieceStatus::Jam => "jammed",
                    PieceStatus::Pulled => "pulled",
                };
                metrics::counter!("pressrun_agent_pieces_total", "inserter" => self.name.clone(), "outcome" => outcome)
                    .increment(1);
                (
                    Some(run.clone()),
                    vec![events::piece(
                        print_job,
                        &self.name,
                        piece,
                        outcome,
                        reason.as_deref().unwrap_or(""),
                        e.seq,
                    )],
                )
            }
            EventKind::JobEnd { job, .. } => {
                let Some((run, print_job)) = self.runs.get(job) else {
                    return (None, Vec::new());
                };
                let unknown = self
                    .session
                    .unknown(job)
                    .into_iter()
                    .map(|p| {
                        events::piece(
                            print_job,
                            &self.name,
                            p,
                            "unknown",
                            "no report at JOBEND",
                            0,
                        )
                    })
                    .collect();
                (Some(run.clone()), unknown)
            }
            EventKind::State { .. } => (None, Vec::new()),
        }
    }
}

fn state_word(s: DeviceState) -> &'static str {
    match s {
        DeviceState::Running => "processing",
        DeviceState::Jammed => "stopped",
        DeviceState::Paused => "stopped",
        DeviceState::Idle => "idle",
    }
}

fn metrics_connect(name: &str) {
    metrics::counter!("pressrun_agent_inserter_connects_total", "inserter" => name.to_string())
        .increment(1);
    tracing::info!(inserter = %name, "inserter line open");
}

async fn send(wr: &mut Writer, lines: &[HostMessage]) -> Result<(), Closed> {
    if lines.is_empty() {
        return Ok(());
    }
    let mut out = String::new();
    for l in lines {
        out.push_str(&l.to_string());
        out.push_str("\r\n");
    }
    wr.write_all(out.as_bytes())
        .await
        .map_err(|e| Closed::Line(e.to_string()))?;
    wr.flush().await.map_err(|e| Closed::Line(e.to_string()))
}
