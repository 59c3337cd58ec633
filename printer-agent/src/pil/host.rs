//! The host rules of PIL/1 as a state machine without I/O.
//!
//! The caller reads lines, parses them ([`super::message`]) and hands each event to
//! [`Session::receive`]. An event to keep comes back as [`Received::Record`]: the caller
//! records it durably, then calls [`Session::recorded`], which applies it and gives the
//! `ACK` to send — never before (rule 1). Gaps ask for a `RESEND`, retransmissions are
//! ignored (rule 2), `HELLO` after a reconnect is compared with what was recorded
//! (rule 3), and [`Session::unknown`] and [`Session::reprints`] give rules 4 and 5.

use std::collections::BTreeMap;

use super::message::{Event, EventKind, HostMessage, JobCounts, PieceStatus};

/// What to do with an event just read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Received {
    /// The next event: record it durably, then call [`Session::recorded`].
    Record(Event),
    /// An event already recorded, sent again: ignore it and re-send this `ACK`.
    Retransmission { ack: HostMessage },
    /// Events before this one were lost: it is dropped, and this `RESEND` brings them
    /// (and it) again.
    Gap { resend: HostMessage },
}

/// What `HELLO` after a (re)connect means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hello {
    /// The inserter has sent nothing the host has not recorded.
    InSync,
    /// Send this `RESEND`: the inserter holds events the host has not recorded.
    Resend(HostMessage),
    /// The inserter's `last-seq` is below what the host recorded: it lost its numbering
    /// (a reset or a replacement unit). The host follows the new numbering and tells the
    /// operator; pieces already reported keep their outcome.
    Reset { recorded: u64, device: u64 },
}

/// Something the operator must hear about, found while applying an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// The same piece reported again under another seq: counted once (the first report
    /// stands).
    DuplicatePiece {
        job: String,
        piece: String,
        first_seq: u64,
        seq: u64,
    },
    /// A report of a piece that was never declared.
    UnexpectedPiece {
        job: String,
        piece: String,
        seq: u64,
    },
    /// A report whose expected sheet count is not the declared one.
    SheetCountMismatch {
        job: String,
        piece: String,
        declared: u32,
        reported: u32,
    },
    /// `JOBEND`'s counts differ from the reports the host recorded.
    JobEndDisagrees {
        job: String,
        device: JobCounts,
        host: JobCounts,
    },
}

/// The recorded fate of one piece.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub seq: u64,
    pub status: PieceStatus,
    pub reason: Option<String>,
    pub read: u32,
}

/// Why a piece is to be printed again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReprintReason {
    /// Reported with a status that is not OK.
    Reported(Outcome),
    /// No report at `JOBEND` (or at the timeout).
    Unknown,
}

#[derive(Debug, Default)]
struct JobTrack {
    /// Declared pieces: id → (sheets, feeders).
    expected: BTreeMap<String, (u32, u32)>,
    outcomes: BTreeMap<String, Outcome>,
    ended: bool,
}

/// The host side of one inserter: what was recorded, and every job declared to it.
#[derive(Debug, Default)]
pub struct Session {
    /// The highest seq recorded; every event up to it is recorded.
    last_recorded: u64,
    jobs: BTreeMap<String, JobTrack>,
}

impl Session {
    /// A session that resumes after `last_recorded` (from the host's durable store).
    pub fn resume(last_recorded: u64) -> Self {
        Self {
            last_recorded,
            jobs: BTreeMap::new(),
        }
    }

    /// The highest seq recorded.
    pub fn last_recorded(&self) -> u64 {
        self.last_recorded
    }

    /// Declares a job: the lines to send (`JOB`, one `EXPECT` per piece, `START`).
    /// `pieces` are `(piece id, sheets, feeders)` in the job's order.
    /// Declaring a job id again (a reprint of some of its pieces, whose sheets carry the
    /// same job id) starts its track afresh.
    pub fn declare(&mut self, job: &str, pieces: &[(String, u32, u32)]) -> Vec<HostMessage> {
        let track = self.jobs.entry(job.to_string()).or_default();
        *track = JobTrack::default();
        let mut lines = vec![HostMessage::Job {
            job: job.to_string(),
            pieces: pieces.len() as u32,
        }];
        for (piece, sheets, feeders) in pieces {
            track.expected.insert(piece.clone(), (*sheets, *feeders));
            lines.push(HostMessage::Expect {
                job: job.to_string(),
                piece: piece.clone(),
                sheets: *sheets,
                feeders: *feeders,
            });
        }
        lines.push(HostMessage::Start {
            job: job.to_string(),
        });
        lines
    }

    /// Classifies an event just read (rule 2).
    pub fn receive(&self, event: Event) -> Received {
        if event.seq <= self.last_recorded {
            Received::Retransmission {
                ack: HostMessage::Ack {
                    seq: self.last_recorded,
                },
            }
        } else if event.seq > self.last_recorded + 1 {
            Received::Gap {
                resend: HostMessage::Resend {
                    from: self.last_recorded + 1,
                },
            }
        } else {
            Received::Record(event)
        }
    }

    /// Applies an event the caller has recorded durably; returns the `ACK` to send and
    /// what the operator must hear. Applying an event twice changes nothing.
    pub fn recorded(&mut self, event: &Event) -> (HostMessage, Vec<Finding>) {
        let mut findings = Vec::new();
        if event.seq == self.last_recorded + 1 {
            self.last_recorded = event.seq;
            self.apply(event, &mut findings);
        }
        (
            HostMessage::Ack {
                seq: self.last_recorded,
            },
            findings,
        )
    }

    fn apply(&mut self, event: &Event, findings: &mut Vec<Finding>) {
        match &event.kind {
            EventKind::Piece {
                job,
                piece,
                read,
                expected,
                status,
                reason,
                ..
            } => {
                let declared = self
                    .jobs
                    .get(job)
                    .and_then(|t| t.expected.get(piece))
                    .map(|&(sheets, _)| sheets);
                let Some(declared) = declared else {
                    findings.push(Finding::UnexpectedPiece {
                        job: job.clone(),
                        piece: piece.clone(),
                        seq: event.seq,
                    });
                    return;
                };
                if declared != *expected {
                    findings.push(Finding::SheetCountMismatch {
                        job: job.clone(),
                        piece: piece.clone(),
                        declared,
                        reported: *expected,
                    });
                }
                let track = self.jobs.get_mut(job).expect("found above");
                if let Some(first) = track.outcomes.get(piece) {
                    findings.push(Finding::DuplicatePiece {
                        job: job.clone(),
                        piece: piece.clone(),
                        first_seq: first.seq,
                        seq: event.seq,
                    });
                    return;
                }
                track.outcomes.insert(
                    piece.clone(),
                    Outcome {
                        seq: event.seq,
                        status: *status,
                        reason: reason.clone(),
                        read: *read,
                    },
                );
            }
            EventKind::JobEnd { job, counts } => {
                let track = self.jobs.entry(job.clone()).or_default();
                track.ended = true;
                let mut host = JobCounts {
                    expected: track.expected.len() as u32,
                    ..JobCounts::default()
                };
                for o in track.outcomes.values() {
                    host.add(o.status);
                }
                if *counts != host {
                    findings.push(Finding::JobEndDisagrees {
                        job: job.clone(),
                        device: *counts,
                        host,
                    });
                }
            }
            EventKind::State { .. } => {}
        }
    }

    /// Puts back the recorded outcome of a piece of a declared job (after a restart, from
    /// the host's store): counted once, as if it had been applied in this session.
    pub fn restore(&mut self, job: &str, piece: &str, outcome: Outcome) {
        if let Some(t) = self.jobs.get_mut(job) {
            t.outcomes.entry(piece.to_string()).or_insert(outcome);
        }
    }

    /// Compares the inserter's `last-seq` from `HELLO` with what was recorded (rule 3).
    pub fn hello(&mut self, device_last_seq: u64) -> Hello {
        use std::cmp::Ordering::*;
        match device_last_seq.cmp(&self.last_recorded) {
            Equal => Hello::InSync,
            Greater => Hello::Resend(HostMessage::Resend {
                from: self.last_recorded + 1,
            }),
            Less => {
                let recorded = self.last_recorded;
                self.last_recorded = device_last_seq;
                Hello::Reset {
                    recorded,
                    device: device_last_seq,
                }
            }
        }
    }

    /// Whether `JOBEND` of `job` was recorded.
    pub fn ended(&self, job: &str) -> bool {
        self.jobs.get(job).is_some_and(|t| t.ended)
    }

    /// The recorded outcome of a piece.
    pub fn outcome(&self, job: &str, piece: &str) -> Option<&Outcome> {
        self.jobs.get(job)?.outcomes.get(piece)
    }

    /// Declared pieces of `job` without a report (rule 4): after `JOBEND` or a timeout
    /// these are unknown — reprint candidates, never good.
    pub fn unknown(&self, job: &str) -> Vec<&str> {
        let Some(t) = self.jobs.get(job) else {
            return Vec::new();
        };
        t.expected
            .keys()
            .filter(|p| !t.outcomes.contains_key(*p))
            .map(String::as_str)
            .collect()
    }

    /// The reprint set of `job` (rule 5): every piece whose status is not OK, except a
    /// divert the host requested, plus every unknown piece; in piece order.
    pub fn reprints(&self, job: &str) -> Vec<(&str, ReprintReason)> {
        let Some(t) = self.jobs.get(job) else {
            return Vec::new();
        };
        t.expected
            .keys()
            .filter_map(|p| match t.outcomes.get(p) {
                None => Some((p.as_str(), ReprintReason::Unknown)),
                Some(o) if o.status == PieceStatus::Ok => None,
                Some(o)
                    if o.status == PieceStatus::Divert
                        && o.reason.as_deref() == Some("requested") =>
                {
                    None
                }
                Some(o) => Some((p.as_str(), ReprintReason::Reported(o.clone()))),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::message::InserterMessage;
    use super::*;

    fn ev(line: &str) -> Event {
        match InserterMessage::parse(line).unwrap() {
            InserterMessage::Event(e) => e,
            other => panic!("{other:?}"),
        }
    }

    fn piece(seq: u64, piece: &str, status: &str) -> Event {
        ev(&format!(
            "PIECE seq={seq} t=2026-12-03T09:00:00.000Z job=J1 piece={piece} sheets=2/2 status={status} bin=STACKER1"
        ))
    }

    fn declared() -> Session {
        let mut s = Session::default();
        let pieces: Vec<_> = (1..=4).map(|i| (format!("{i:06}"), 2, 0)).collect();
        let lines = s.declare("J1", &pieces);
        assert_eq!(lines.len(), 6);
        assert_eq!(
            lines[1].to_string(),
            "EXPECT job=J1 piece=000001 sheets=2 feeders=00"
        );
        assert_eq!(lines[5].to_string(), "START job=J1");
        s
    }

    /// Receives and records an event, as a host that records everything would.
    fn take(s: &mut Session, e: Event) -> Vec<Finding> {
        match s.receive(e) {
            Received::Record(e) => s.recorded(&e).1,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn acknowledgement_waits_for_the_record_and_gaps_ask_for_a_resend() {
        let mut s = declared();
        let e1 = piece(1, "000001", "OK");
        let Received::Record(e1) = s.receive(e1) else {
            panic!()
        };
        // Not yet recorded: a retransmission of it must still be recorded.
        assert!(matches!(s.receive(e1.clone()), Received::Record(_)));
        assert_eq!(s.last_recorded(), 0);
        let (ack, findings) = s.recorded(&e1);
        assert_eq!(ack.to_string(), "ACK seq=1");
        assert!(findings.is_empty());
        // A retransmission after the record is ignored and acknowledged again.
        assert_eq!(
            s.receive(e1.clone()),
            Received::Retransmission {
                ack: HostMessage::Ack { seq: 1 }
            }
        );
        assert_eq!(
            s.recorded(&e1).0.to_string(),
            "ACK seq=1",
            "applying twice changes nothing"
        );
        // Seq 2 lost: 3 asks for a resend from 2 and is not applied.
        assert_eq!(
            s.receive(piece(3, "000003", "OK")),
            Received::Gap {
                resend: HostMessage::Resend { from: 2 }
            }
        );
        assert!(s.outcome("J1", "000003").is_none());
    }

    #[test]
    fn a_piece_reported_twice_is_flagged_and_counted_once() {
        let mut s = declared();
        take(&mut s, piece(1, "000001", "OK"));
        let f = take(&mut s, piece(2, "000001", "JAM"));
        assert_eq!(
            f,
            vec![Finding::DuplicatePiece {
                job: "J1".into(),
                piece: "000001".into(),
                first_seq: 1,
                seq: 2
            }]
        );
        assert_eq!(s.outcome("J1", "000001").unwrap().status, PieceStatus::Ok);
        let f = take(&mut s, piece(3, "999999", "OK"));
        assert!(matches!(&f[0], Finding::UnexpectedPiece { piece, .. } if piece == "999999"));
        let f = take(
            &mut s,
            ev(
                "PIECE seq=4 t=2026-12-03T09:00:00.000Z job=J1 piece=000002 sheets=3/3 status=OK bin=STACKER1",
            ),
        );
        assert!(matches!(
            &f[0],
            Finding::SheetCountMismatch {
                declared: 2,
                reported: 3,
                ..
            }
        ));
    }

    #[test]
    fn after_jobend_unreported_pieces_are_unknown_and_reprinted_with_the_bad_ones() {
        let mut s = declared();
        take(&mut s, piece(1, "000001", "OK"));
        take(
            &mut s,
            ev(
                "PIECE seq=2 t=2026-12-03T09:00:00.000Z job=J1 piece=000002 sheets=1/2 status=DIVERT reason=sheet-missing bin=DIVERT1",
            ),
        );
        take(
            &mut s,
            ev(
                "PIECE seq=3 t=2026-12-03T09:00:00.000Z job=J1 piece=000003 sheets=2/2 status=DIVERT reason=requested bin=DIVERT1",
            ),
        );
        // The device claims all four were reported: the host disagrees (one is missing).
        let f = take(
            &mut s,
            ev(
                "JOBEND seq=4 t=2026-12-03T09:00:01.000Z job=J1 expected=4 reported=4 ok=2 divert=2 jam=0 pulled=0",
            ),
        );
        assert_eq!(
            f,
            vec![Finding::JobEndDisagrees {
                job: "J1".into(),
                device: JobCounts {
                    expected: 4,
                    reported: 4,
                    ok: 2,
                    divert: 2,
                    jam: 0,
                    pulled: 0
                },
                host: JobCounts {
                    expected: 4,
                    reported: 3,
                    ok: 1,
                    divert: 2,
                    jam: 0,
                    pulled: 0
                }
            }]
        );
        assert!(s.ended("J1"));
        assert_eq!(s.unknown("J1"), vec!["000004"]);
        let reprints = s.reprints("J1");
        assert_eq!(reprints.len(), 2, "{reprints:?}");
        assert_eq!(reprints[0].0, "000002");
        assert!(
            matches!(&reprints[0].1, ReprintReason::Reported(o) if o.reason.as_deref() == Some("sheet-missing"))
        );
        assert_eq!(reprints[1], ("000004", ReprintReason::Unknown));
    }

    #[test]
    fn hello_after_a_reconnect_resends_what_was_missed_or_reports_a_reset() {
        let mut s = Session::resume(7);
        assert_eq!(s.hello(7), Hello::InSync);
        assert_eq!(s.hello(10), Hello::Resend(HostMessage::Resend { from: 8 }));
        assert_eq!(
            s.hello(2),
            Hello::Reset {
                recorded: 7,
                device: 2
            }
        );
        assert_eq!(s.last_recorded(), 2);
    }
}
