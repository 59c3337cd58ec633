//! The inserter side of PIL/1, with fault injection: what `printer-agent
//! simulate-inserter` will run, and what the host rules are tested against.
//!
//! Lines in, lines out, no I/O and no clock of its own: [`Inserter::handle`] answers a
//! host line, [`Inserter::run_next`] feeds the next declared piece (its report shaped
//! by the piece's [`Fault`]), [`Inserter::retransmit`] re-sends what is unacknowledged
//! (the caller calls it every 2 s).

use std::collections::BTreeMap;

use super::line::Line;
use super::message::{
    DeviceState, ErrCode, Event, EventKind, HostMessage, InserterMessage, JobCounts, PieceStatus,
};

/// What goes wrong with one piece.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Outsorted with this reason (`misread`, `sequence`, `double-feed`, …).
    Divert(String),
    /// Destroyed in a jam; the inserter reports `STATE JAMMED` first.
    Jam,
    /// Removed by the operator.
    Pulled,
    /// Reported OK, but the line is lost on the wire (its seq is used: the host sees a
    /// gap and asks for a `RESEND`).
    LostReport,
    /// Reported OK twice, under two seqs.
    DuplicateReport,
    /// A line of garbage bytes goes out before the report.
    Garbage,
    /// Never reported at all (the host must call it unknown at `JOBEND`).
    Unreported,
}

/// Pieces of a job: id and sheets, in order.
type Pieces = Vec<(String, u32)>;

/// One simulated inserter.
#[derive(Debug)]
pub struct Inserter {
    device: String,
    serial: String,
    state: DeviceState,
    last_seq: u64,
    /// Events not yet acknowledged, by seq.
    unacked: BTreeMap<u64, Event>,
    /// The job being declared: id, declared count, pieces so far.
    declaring: Option<(String, u32, Pieces)>,
    /// The job running: id and its pieces, and how far it is.
    running: Option<Running>,
    faults: BTreeMap<String, Fault>,
    /// Milliseconds since the simulated start, for `t=`.
    clock_ms: u64,
}

#[derive(Debug)]
struct Running {
    job: String,
    pieces: Pieces,
    next: usize,
    counts: JobCounts,
}

impl Inserter {
    /// An idle inserter; `faults` by piece id.
    pub fn new(device: &str, serial: &str, faults: BTreeMap<String, Fault>) -> Self {
        Self {
            device: device.into(),
            serial: serial.into(),
            state: DeviceState::Idle,
            last_seq: 0,
            unacked: BTreeMap::new(),
            declaring: None,
            running: None,
            faults,
            clock_ms: 0,
        }
    }

    fn err(code: ErrCode, msg: &str) -> String {
        InserterMessage::Err {
            code,
            msg: msg.into(),
        }
        .to_string()
    }

    /// Answers one line from the host: the lines to send back.
    pub fn handle(&mut self, line: &Line) -> Vec<String> {
        let text = match line {
            Line::Text(t) => t,
            Line::Overlong => return vec![Self::err(ErrCode::Overlong, "line over 512 bytes")],
            Line::Encoding => return vec![Self::err(ErrCode::Encoding, "not printable ASCII")],
        };
        let msg = match HostMessage::parse(text) {
            Ok(m) => m,
            Err(e) => return vec![Self::err(e.code, &e.msg)],
        };
        match msg {
            HostMessage::Hello { .. } => vec![
                InserterMessage::Hello {
                    device: self.device.clone(),
                    serial: self.serial.clone(),
                    state: self.state,
                    last_seq: self.last_seq,
                }
                .to_string(),
            ],
            HostMessage::Job { job, pieces } => {
                if self.declaring.is_some() || self.running.is_some() {
                    return vec![Self::err(ErrCode::Busy, "a job is declared or running")];
                }
                self.declaring = Some((job.clone(), pieces, Vec::new()));
                vec![InserterMessage::Ok { job }.to_string()]
            }
            HostMessage::Expect {
                job, piece, sheets, ..
            } => match &mut self.declaring {
                Some((j, _, list)) if *j == job => {
                    if list.iter().any(|(p, _)| *p == piece) {
                        return vec![Self::err(ErrCode::Duplicate, "piece already expected")];
                    }
                    list.push((piece, sheets));
                    Vec::new()
                }
                _ => vec![Self::err(ErrCode::State, "EXPECT outside its JOB")],
            },
            HostMessage::Start { job } => match self.declaring.take() {
                Some((j, n, list)) if j == job && n as usize == list.len() => {
                    self.running = Some(Running {
                        job: job.clone(),
                        pieces: list,
                        next: 0,
                        counts: JobCounts::default(),
                    });
                    let mut out = vec![InserterMessage::Ok { job: job.clone() }.to_string()];
                    out.extend(self.state_event(DeviceState::Running, Some(job), None));
                    out
                }
                Some((j, n, list)) if j == job => {
                    let e = Self::err(
                        ErrCode::Count,
                        &format!("declared {n}, expected {}", list.len()),
                    );
                    self.declaring = Some((j, n, list));
                    vec![e]
                }
                other => {
                    self.declaring = other;
                    vec![Self::err(ErrCode::State, "START of a job not declared")]
                }
            },
            HostMessage::Ack { seq } => {
                self.unacked.retain(|&s, _| s > seq);
                Vec::new()
            }
            HostMessage::Resend { from } => self
                .unacked
                .range(from..)
                .map(|(_, e)| InserterMessage::Event(e.clone()).to_string())
                .collect(),
            HostMessage::Status => vec![
                InserterMessage::Status {
                    state: self.state,
                    job: self.running.as_ref().map(|r| r.job.clone()),
                    last_seq: self.last_seq,
                    unacked: self.unacked.len() as u64,
                }
                .to_string(),
            ],
        }
    }

    fn event(&mut self, kind: EventKind) -> Event {
        self.last_seq += 1;
        self.clock_ms += 250;
        let ms = self.clock_ms;
        let t = format!(
            "2026-01-01T{:02}:{:02}:{:02}.{:03}Z",
            ms / 3_600_000 % 24,
            ms / 60_000 % 60,
            ms / 1000 % 60,
            ms % 1000
        );
        let e = Event {
            seq: self.last_seq,
            t,
            kind,
        };
        self.unacked.insert(e.seq, e.clone());
        e
    }

    fn state_event(
        &mut self,
        state: DeviceState,
        job: Option<String>,
        reason: Option<&str>,
    ) -> Option<String> {
        self.state = state;
        let e = self.event(EventKind::State {
            state,
            job,
            reason: reason.map(str::to_string),
            location: reason.map(|_| "feeder-1".to_string()),
        });
        Some(InserterMessage::Event(e).to_string())
    }

    /// Feeds the next piece of the running job: the lines that go out. After the last
    /// piece, `JOBEND`; then nothing.
    pub fn run_next(&mut self) -> Vec<String> {
        let Some(r) = self.running.as_mut() else {
            return Vec::new();
        };
        let job = r.job.clone();
        if r.next == r.pieces.len() {
            let counts = JobCounts {
                expected: r.pieces.len() as u32,
                ..r.counts
            };
            self.running = None;
            let e = self.event(EventKind::JobEnd {
                job: job.clone(),
                counts,
            });
            let mut out = vec![InserterMessage::Event(e).to_string()];
            out.extend(self.state_event(DeviceState::Idle, None, None));
            return out;
        }
        let (piece, sheets) = r.pieces[r.next].clone();
        r.next += 1;
        // A fault fires once: the piece's reprint goes through clean.
        let fault = self.faults.remove(&piece);
        let (status, reason, bin, read) = match &fault {
            Some(Fault::Divert(reason)) => {
                (PieceStatus::Divert, Some(reason.clone()), "DIVERT1", sheets)
            }
            Some(Fault::Jam) => (PieceStatus::Jam, Some("jam".into()), "NONE", sheets / 2),
            Some(Fault::Pulled) => (PieceStatus::Pulled, None, "NONE", sheets),
            _ => (PieceStatus::Ok, None, "STACKER1", sheets),
        };
        let mut out = Vec::new();
        if fault == Some(Fault::Unreported) {
            return out;
        }
        if fault == Some(Fault::Garbage) {
            out.push("\u{1}\u{7f}#@! noise".to_string());
        }
        if fault == Some(Fault::Jam) {
            out.extend(self.state_event(DeviceState::Jammed, Some(job.clone()), Some("jam")));
        }
        let kind = EventKind::Piece {
            job: job.clone(),
            piece: piece.clone(),
            read,
            expected: sheets,
            status,
            reason,
            bin: bin.into(),
        };
        let r = self.running.as_mut().expect("running");
        r.counts.add(status);
        let e = self.event(kind.clone());
        if fault != Some(Fault::LostReport) {
            out.push(InserterMessage::Event(e).to_string());
        }
        if fault == Some(Fault::DuplicateReport) {
            let again = self.event(kind);
            out.push(InserterMessage::Event(again).to_string());
        }
        if fault == Some(Fault::Jam) {
            out.extend(self.state_event(DeviceState::Running, Some(job), None));
        }
        out
    }

    /// The sheets of the next piece of the running job (`None` when no job runs or its
    /// last piece is fed).
    pub fn next_sheets(&self) -> Option<u32> {
        let r = self.running.as_ref()?;
        r.pieces.get(r.next).map(|(_, s)| *s)
    }

    /// The job running, if any.
    pub fn running_job(&self) -> Option<&str> {
        self.running.as_ref().map(|r| r.job.as_str())
    }

    /// Ends the running job now (its feed ran dry: the printer stopped): `JOBEND` with
    /// the pieces not fed left unreported, for the host to call unknown.
    pub fn end_now(&mut self) -> Vec<String> {
        match self.running.as_mut() {
            Some(r) => {
                r.next = r.pieces.len();
                self.run_next()
            }
            None => Vec::new(),
        }
    }

    /// Every unacknowledged event again, oldest first (sent every 2 s).
    pub fn retransmit(&self) -> Vec<String> {
        self.unacked
            .values()
            .map(|e| InserterMessage::Event(e.clone()).to_string())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::super::host::{Finding, Received, ReprintReason, Session};
    use super::super::line::LineSplitter;
    use super::*;

    fn text(m: &HostMessage) -> Line {
        Line::Text(m.to_string())
    }

    /// What the host saw of a conversation.
    #[derive(Default)]
    struct HostSide {
        session: Session,
        wire: LineSplitter,
        recorded: Vec<u64>,
        findings: Vec<Finding>,
        replies: Vec<InserterMessage>,
        bad_lines: usize,
    }

    impl HostSide {
        /// Carries the inserter's lines over a byte stream to the host, and the host's
        /// answers (ACK, RESEND) back, until both are quiet.
        fn deliver(&mut self, ins: &mut Inserter, lines: Vec<String>) {
            let mut queue: VecDeque<String> = lines.into();
            while let Some(l) = queue.pop_front() {
                for line in self.wire.push(format!("{l}\r\n").as_bytes()) {
                    let Line::Text(t) = line else {
                        self.bad_lines += 1;
                        continue;
                    };
                    let answer = match InserterMessage::parse(&t) {
                        Ok(InserterMessage::Event(e)) => match self.session.receive(e) {
                            Received::Record(e) => {
                                self.recorded.push(e.seq);
                                let (ack, f) = self.session.recorded(&e);
                                self.findings.extend(f);
                                ack
                            }
                            Received::Retransmission { ack } => ack,
                            Received::Gap { resend } => resend,
                        },
                        Ok(reply) => {
                            self.replies.push(reply);
                            continue;
                        }
                        Err(_) => {
                            self.bad_lines += 1;
                            continue;
                        }
                    };
                    queue.extend(ins.handle(&text(&answer)));
                }
            }
        }
    }

    #[test]
    fn every_fault_ends_in_the_right_reprint_set_and_nothing_is_lost() {
        let piece = |i: u32| format!("{i:06}");
        let faults: BTreeMap<String, Fault> = [
            (2, Fault::Garbage),
            (3, Fault::LostReport),
            (5, Fault::DuplicateReport),
            (6, Fault::Jam),
            (7, Fault::Pulled),
            (8, Fault::Unreported),
            (9, Fault::Divert("requested".into())),
            (10, Fault::Divert("misread".into())),
        ]
        .into_iter()
        .map(|(i, f)| (piece(i), f))
        .collect();
        let mut ins = Inserter::new("SIM-1", "SN0001", faults);
        let mut host = HostSide::default();
        let pieces: Vec<_> = (1..=10).map(|i| (piece(i), 2 + i % 3, 0)).collect();
        let hello = ins.handle(&text(&HostMessage::Hello {
            agent: "test".into(),
        }));
        host.deliver(&mut ins, hello);
        for line in host.session.declare("J000001", &pieces) {
            let out = ins.handle(&text(&line));
            host.deliver(&mut ins, out);
        }
        assert!(
            matches!(host.replies.last(), Some(InserterMessage::Ok { job }) if job == "J000001"),
            "{:?}",
            host.replies
        );
        for _ in 0..=pieces.len() {
            let out = ins.run_next();
            host.deliver(&mut ins, out);
        }
        // Retransmission after everything is acknowledged sends nothing.
        assert!(ins.retransmit().is_empty());

        // Every event recorded exactly once, in order, the lost one through a RESEND.
        let last = *host.recorded.last().unwrap();
        assert_eq!(host.recorded, (1..=last).collect::<Vec<_>>());
        assert_eq!(host.bad_lines, 1, "the garbage line");
        assert!(host.session.ended("J000001"));
        assert_eq!(
            host.findings,
            vec![Finding::DuplicatePiece {
                job: "J000001".into(),
                piece: piece(5),
                first_seq: host.session.outcome("J000001", &piece(5)).unwrap().seq,
                seq: host.session.outcome("J000001", &piece(5)).unwrap().seq + 1,
            }],
            "the duplicate is flagged; JOBEND agrees with the host's counts"
        );
        assert_eq!(
            host.session.outcome("J000001", &piece(3)).unwrap().status,
            PieceStatus::Ok
        );
        assert_eq!(host.session.unknown("J000001"), vec![piece(8).as_str()]);
        let reprints: Vec<(String, bool)> = host
            .session
            .reprints("J000001")
            .into_iter()
            .map(|(p, why)| (p.to_string(), why == ReprintReason::Unknown))
            .collect();
        assert_eq!(
            reprints,
            vec![
                (piece(6), false),
                (piece(7), false),
                (piece(8), true),
                (piece(10), false)
            ]
        );
    }

    #[test]
    fn the_inserter_refuses_what_the_protocol_forbids() {
        let mut ins = Inserter::new("SIM-1", "SN0001", BTreeMap::new());
        let mut say = |l: &str| ins.handle(&Line::Text(l.into()));
        assert!(say("EXPECT job=J1 piece=000001 sheets=1")[0].starts_with("ERR code=state"));
        assert_eq!(say("JOB job=J1 pieces=2"), vec!["OK job=J1"]);
        assert!(say("JOB job=J2 pieces=1")[0].starts_with("ERR code=busy"));
        assert!(say("EXPECT job=J1 piece=000001 sheets=1").is_empty());
        assert!(say("EXPECT job=J1 piece=000001 sheets=1")[0].starts_with("ERR code=duplicate"));
        assert!(say("START job=J1")[0].starts_with("ERR code=count"));
        assert!(say("EXPECT job=J1 piece=000002 sheets=1").is_empty());
        assert_eq!(say("START job=J1")[0], "OK job=J1");
        assert!(say("FROB x=1")[0].starts_with("ERR code=unknown-verb"));
        assert!(say("ACK seq=x")[0].starts_with("ERR code=syntax"));
        assert!(ins.handle(&Line::Overlong)[0].starts_with("ERR code=overlong"));
        assert!(ins.handle(&Line::Encoding)[0].starts_with("ERR code=encoding"));
        let status = ins.handle(&Line::Text("STATUS".into()));
        assert_eq!(
            status,
            vec!["STATUS state=RUNNING job=J1 last-seq=1 unacked=1"]
        );
        // Unacknowledged events come again on RESEND and on the 2-second retransmission.
        assert_eq!(
            ins.handle(&Line::Text("RESEND from=1".into())),
            ins.retransmit()
        );
        assert!(ins.handle(&Line::Text("ACK seq=1".into())).is_empty());
        assert!(ins.retransmit().is_empty());
    }
}
