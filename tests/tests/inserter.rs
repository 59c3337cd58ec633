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

/// A child process (the simulator, socat), killed when the test ends, also when it fails.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A line to the inserter, as the host sees it.
trait Link {
    fn send(&mut self, m: &HostMessage);
    /// The next line; `None` on a timeout, `Some(None)` when the peer closed.
    fn next(&mut self) -> Option<Option<Line>>;
    /// Opens the line again after the peer closed it.
    fn reconnect(&mut self);
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
}

struct Tcp {
    addr: String,
    conn: Conn,
}

impl Link for Tcp {
    fn send(&mut self, m: &HostMessage) {
        self.conn.send(m)
    }
    fn next(&mut self) -> Option<Option<Line>> {
        self.conn.next()
    }
    fn reconnect(&mut self) {
        self.conn = Conn::open(&self.addr);
    }
}

impl Conn {
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

/// What the host saw besides the events.
#[derive(Default)]
struct Seen {
    bad_lines: usize,
    reconnects: usize,
    oks: usize,
    findings: Vec<Finding>,
}

/// Declares job J000001 and follows the host rules until its JOBEND is recorded.
fn drive(link: &mut dyn Link, pieces: &[(String, u32, u32)]) -> (Session, Seen) {
    let mut session = Session::default();
    let mut seen = Seen::default();
    link.send(&HostMessage::Hello {
        agent: "test".into(),
    });
    for line in session.declare("J000001", pieces) {
        link.send(&line);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while !session.ended("J000001") {
        assert!(Instant::now() < deadline, "no JOBEND within 60 s");
        let line = match link.next() {
            None => continue,
            Some(None) => {
                // The inserter dropped the line: reconnect, HELLO, resend what was missed.
                seen.reconnects += 1;
                link.reconnect();
                link.send(&HostMessage::Hello {
                    agent: "test".into(),
                });
                continue;
            }
            Some(Some(l)) => l,
        };
        let Line::Text(text) = line else {
            seen.bad_lines += 1;
            continue;
        };
        match InserterMessage::parse(&text) {
            Ok(InserterMessage::Event(e)) => match session.receive(e) {
                Received::Record(e) => {
                    // A real agent writes the event to its store here, before the ACK.
                    let (ack, f) = session.recorded(&e);
                    seen.findings.extend(f);
                    link.send(&ack);
                }
                Received::Retransmission { ack } => link.send(&ack),
                Received::Gap { resend } => link.send(&resend),
            },
            Ok(InserterMessage::Hello { last_seq, .. }) => match session.hello(last_seq) {
                Hello::Resend(m) => link.send(&m),
                Hello::InSync => {}
                Hello::Reset { .. } => panic!("the simulator keeps its numbering"),
            },
            Ok(InserterMessage::Ok { .. }) => seen.oks += 1,
            Ok(other) => panic!("unexpected reply {other:?}"),
            Err(_) => seen.bad_lines += 1,
        }
    }
    (session, seen)
}

#[test]
fn faults_over_tcp_end_in_the_right_reprint_set() {
    let mut child = Killed(
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

    let mut link = Tcp {
        conn: Conn::open(&addr),
        addr,
    };
    let pieces: Vec<_> = (1..=12)
        .map(|i| (format!("{i:06}"), 1 + i % 3, i % 2))
        .collect();
    let (session, seen) = drive(&mut link, &pieces);
    let Seen {
        bad_lines,
        reconnects,
        oks,
        findings,
    } = seen;
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

/// One end of a socat pty pair, read on a thread (a pty has no read timeout).
struct Tty {
    file: std::fs::File,
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    wire: LineSplitter,
    pending: Vec<Line>,
}

impl Link for Tty {
    fn send(&mut self, m: &HostMessage) {
        self.file.write_all(format!("{m}\r\n").as_bytes()).unwrap();
    }
    fn next(&mut self) -> Option<Option<Line>> {
        loop {
            if !self.pending.is_empty() {
                return Some(Some(self.pending.remove(0)));
            }
            match self.rx.recv_timeout(Duration::from_millis(200)) {
                Ok(bytes) => self.pending = self.wire.push(&bytes),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => return None,
                Err(_) => panic!("the serial line closed"),
            }
        }
    }
    fn reconnect(&mut self) {
        panic!("a serial line is not reconnected");
    }
}

#[test]
fn the_simulator_speaks_over_a_serial_line() {
    let dir = tempfile::tempdir().unwrap();
    let (agent, device) = (dir.path().join("agent"), dir.path().join("device"));
    let socat = Command::new("socat")
        .arg(format!("pty,raw,echo=0,link={}", agent.display()))
        .arg(format!("pty,raw,echo=0,link={}", device.display()))
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "socat is required by this test but cannot run ({e}): scripts/test.sh installs it"
            )
        });
    let _socat = Killed(socat);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(agent.exists() && device.exists()) {
        assert!(Instant::now() < deadline, "socat made no pty pair");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut child = Command::new(bin("printer-agent"))
        .args(["simulate-inserter", "--baud", "115200", "--piece-ms", "20"])
        .arg("--tty")
        .arg(&device)
        .args(["--fault", "000002=jam", "--fault", "000003=lost-report"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let _sim = Killed(child);
    assert!(first.starts_with("open on "), "{first}");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&agent)
        .unwrap();
    let mut reader = file.try_clone().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut link = Tty {
        file,
        rx,
        wire: LineSplitter::default(),
        pending: Vec::new(),
    };
    let pieces: Vec<_> = (1..=4).map(|i| (format!("{i:06}"), 2, 0)).collect();
    let (session, seen) = drive(&mut link, &pieces);
    assert_eq!(seen.oks, 2);
    assert!(seen.findings.is_empty(), "{:?}", seen.findings);
    assert_eq!(
        session.outcome("J000001", "000003").unwrap().status,
        PieceStatus::Ok,
        "the lost line came again on RESEND"
    );
    let reprints: Vec<&str> = session
        .reprints("J000001")
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert_eq!(reprints, vec!["000002"]);
}
