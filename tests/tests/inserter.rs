//! The inserter simulator (`printer-agent simulate-inserter`) over real TCP, driven by
//! the PIL/1 host rules of `printer_agent::pil::host`: faults, a lost line, a duplicate
//! report and a dropped connection end in the right reprint set with nothing lost.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pressrun_tests::bin;
use printer_agent::pil::host::{Finding, Hello, Received, ReprintReason, Session};
use printer_agent::pil::line::{Line, LineSplitter};
use printer_agent::pil::message::{HostMessage, InserterMessage, PieceStatus};

struct Conn {
    sock: TcpStream,
    wire: LineSplitter,
    pending: Vec<Line>,
    /// A write failed: the peer is gone.
    closed: bool,
}

/// The simulator process, killed when the test ends (also when it fails).
struct Simulator(std::process::Child);

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Conn {
    fn open(addr: &str) -> Self {
        let sock = TcpStream::connect(addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Conn {
            sock,
            wire: LineSplitter::default(),
            pending: Vec::new(),
            closed: false,
        }
    }

    fn send(&mut self, m: &HostMessage) {
        if self.sock.write_all(format!("{m}\r\n").as_bytes()).is_err() {
            self.closed = true;
        }
    }

    /// The next line; `None` on a timeout, `Some(None)` when the peer closed.
    fn next(&mut self) -> Option<Option<Line>> {
        loop {
            if !self.pending.is_empty() {
                return Some(Some(self.pending.remove(0)));
            }
            if self.closed {
                return Some(None);
            }
            let mut buf = [0u8; 4096];
            match self.sock.read(&mut buf) {
                Ok(0) => return Some(None),
                Ok(n) => self.pending = self.wire.push(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return None;
                }
                Err(_) => return Some(None),
            }
        }
    }
}

#[test]
fn faults_over_tcp_end_in_the_right_reprint_set() {
    let mut child = Simulator(
        Command::new(bin("printer-agent"))
            .args([
                "simulate-inserter",
                "--tcp",
                "127.0.0.1:0",
                "--piece-ms",
                "20",
                "--fault",
                "000002=jam",
                "--fault",
                "000003=lost-report",
                "--fault",
                "000004=duplicate-report",
                "--fault",
                "000005=unreported",
                "--fault",
                "000006=garbage",
                "--fault",
                "000007=divert:misread",
                "--disconnect-after",
                "8",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut first = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr = first
        .trim()
        .strip_prefix("listening on ")
        .expect(&first)
        .to_string();

    let mut session = Session::default();
    let mut conn = Conn::open(&addr);
    conn.send(&HostMessage::Hello {
        agent: "test".into(),
    });
    let pieces: Vec<_> = (1..=12)
        .map(|i| (format!("{i:06}"), 1 + i % 3, i % 2))
        .collect();
    for line in session.declare("J000001", &pieces) {
        conn.send(&line);
    }
    let (mut bad_lines, mut reconnects, mut oks) = (0, 0, 0);
    let mut findings = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !session.ended("J000001") {
        assert!(Instant::now() < deadline, "no JOBEND within 60 s");
        let line = match conn.next() {
            None => continue,
            Some(None) => {
                // The inserter dropped the line: reconnect, HELLO, resend what was missed.
                reconnects += 1;
                conn = Conn::open(&addr);
                conn.send(&HostMessage::Hello {
                    agent: "test".into(),
                });
                continue;
            }
            Some(Some(l)) => l,
        };
        let Line::Text(text) = line else {
            bad_lines += 1;
            continue;
        };
        match InserterMessage::parse(&text) {
            Ok(InserterMessage::Event(e)) => match session.receive(e) {
                Received::Record(e) => {
                    // A real agent writes the event to its store here, before the ACK.
                    let (ack, f) = session.recorded(&e);
                    findings.extend(f);
                    conn.send(&ack);
                }
                Received::Retransmission { ack } => conn.send(&ack),
                Received::Gap { resend } => conn.send(&resend),
            },
            Ok(InserterMessage::Hello { last_seq, .. }) => match session.hello(last_seq) {
                Hello::Resend(m) => conn.send(&m),
                Hello::InSync => {}
                Hello::Reset { .. } => panic!("the simulator keeps its numbering"),
            },
            Ok(InserterMessage::Ok { .. }) => oks += 1,
            Ok(other) => panic!("unexpected reply {other:?}"),
            Err(_) => bad_lines += 1,
        }
    }
    drop(child);

    assert_eq!(oks, 2, "JOB and START accepted");
    assert_eq!(reconnects, 1);
    assert_eq!(bad_lines, 1, "the garbage line");
    assert!(
        matches!(&findings[..], [Finding::DuplicatePiece { piece, .. }] if piece == "000004"),
        "{findings:?}"
    );
    for ok in ["000001", "000003", "000004", "000008", "000009", "000012"] {
        assert_eq!(
            session.outcome("J000001", ok).unwrap().status,
            PieceStatus::Ok,
            "{ok}"
        );
    }
    assert_eq!(session.unknown("J000001"), vec!["000005"]);
    let reprints: Vec<(&str, bool)> = session
        .reprints("J000001")
        .into_iter()
        .map(|(p, why)| (p, why == ReprintReason::Unknown))
        .collect();
    assert_eq!(
        reprints,
        vec![("000002", false), ("000005", true), ("000007", false)]
    );
}

#[test]
fn a_bad_fault_is_refused_with_its_reason() {
    let out = Command::new(bin("printer-agent"))
        .args([
            "simulate-inserter",
            "--tcp",
            "127.0.0.1:0",
            "--fault",
            "12=jam",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a piece id"), "{err}");
    let out = Command::new(bin("printer-agent"))
        .arg("serve")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "serve says it is not built");
}
