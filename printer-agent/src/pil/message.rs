//! Every PIL/1 message, both directions, parsed from and written to one line.
//!
//! `VERB key=value …` with single spaces; unknown keys are ignored, unknown verbs are an
//! [`ErrCode::UnknownVerb`], anything else malformed an [`ErrCode::Syntax`].

use std::fmt;

/// The `code` of an `ERR` reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrCode {
    Syntax,
    Encoding,
    Overlong,
    UnknownVerb,
    State,
    Busy,
    Count,
    Duplicate,
}

impl ErrCode {
    const ALL: [(ErrCode, &'static str); 8] = [
        (ErrCode::Syntax, "syntax"),
        (ErrCode::Encoding, "encoding"),
        (ErrCode::Overlong, "overlong"),
        (ErrCode::UnknownVerb, "unknown-verb"),
        (ErrCode::State, "state"),
        (ErrCode::Busy, "busy"),
        (ErrCode::Count, "count"),
        (ErrCode::Duplicate, "duplicate"),
    ];

    /// The code as written on the line.
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(c, _)| *c == self)
            .expect("listed")
            .1
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().find(|(_, n)| *n == s).map(|(c, _)| *c)
    }
}

/// A line that is not a valid message, with the `ERR` code that answers it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code:?}: {msg}")]
pub struct ParseError {
    pub code: ErrCode,
    pub msg: String,
}

fn syntax(msg: impl Into<String>) -> ParseError {
    ParseError {
        code: ErrCode::Syntax,
        msg: msg.into(),
    }
}

/// The fate of a mail piece in a `PIECE` event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PieceStatus {
    /// Sealed and in a stacker: the only good final state.
    Ok,
    /// Outsorted (see the event's reason).
    Divert,
    /// Destroyed or lost in a jam.
    Jam,
    /// Removed by the operator.
    Pulled,
}

/// The inserter's state in `HELLO`, `STATUS` and `STATE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceState {
    Running,
    Jammed,
    Paused,
    Idle,
}

macro_rules! word_enum {
    ($t:ty, $( $v:ident = $s:literal ),+) => {
        impl $t {
            /// The word as written on the line.
            pub fn as_str(self) -> &'static str {
                match self { $( Self::$v => $s ),+ }
            }
            /// The value of a word as written on the line.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $( $s => Some(Self::$v), )+ _ => None }
            }
        }
    };
}
word_enum!(
    PieceStatus,
    Ok = "OK",
    Divert = "DIVERT",
    Jam = "JAM",
    Pulled = "PULLED"
);
word_enum!(
    DeviceState,
    Running = "RUNNING",
    Jammed = "JAMMED",
    Paused = "PAUSED",
    Idle = "IDLE"
);

/// A message from the host (the printer agent) to the inserter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostMessage {
    Hello {
        agent: String,
    },
    Job {
        job: String,
        pieces: u32,
    },
    Expect {
        job: String,
        piece: String,
        sheets: u32,
        feeders: u32,
    },
    Start {
        job: String,
    },
    Ack {
        seq: u64,
    },
    Resend {
        from: u64,
    },
    Status,
}

/// An inserter event: numbered, time-stamped, re-sent until acknowledged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub seq: u64,
    /// UTC, ISO 8601 with milliseconds (`2026-12-03T09:15:02.123Z`).
    pub t: String,
    pub kind: EventKind,
}

/// What an [`Event`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    Piece {
        job: String,
        piece: String,
        read: u32,
        expected: u32,
        status: PieceStatus,
        reason: Option<String>,
        bin: String,
    },
    State {
        state: DeviceState,
        job: Option<String>,
        reason: Option<String>,
        location: Option<String>,
    },
    JobEnd {
        job: String,
        counts: JobCounts,
    },
}

/// The counts of a job's `JOBEND`, as the inserter reports them or the host finds them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobCounts {
    pub expected: u32,
    pub reported: u32,
    pub ok: u32,
    pub divert: u32,
    pub jam: u32,
    pub pulled: u32,
}

impl JobCounts {
    /// Counts one reported piece.
    pub fn add(&mut self, status: PieceStatus) {
        self.reported += 1;
        *match status {
            PieceStatus::Ok => &mut self.ok,
            PieceStatus::Divert => &mut self.divert,
            PieceStatus::Jam => &mut self.jam,
            PieceStatus::Pulled => &mut self.pulled,
        } += 1;
    }
}

/// A message from the inserter to the host: a reply or an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InserterMessage {
    Hello {
        device: String,
        serial: String,
        state: DeviceState,
        last_seq: u64,
    },
    Ok {
        job: String,
    },
    Status {
        state: DeviceState,
        job: Option<String>,
        last_seq: u64,
        unacked: u64,
    },
    Err {
        code: ErrCode,
        msg: String,
    },
    Event(Event),
}

/// A line cut into its verb and `key=value` fields.
struct Fields<'a> {
    verb: &'a str,
    fields: Vec<(&'a str, &'a str)>,
}

impl<'a> Fields<'a> {
    fn split(line: &'a str) -> Result<Self, ParseError> {
        let mut words = line.split(' ');
        let verb = words.next().unwrap_or("");
        if verb.is_empty() || !verb.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(syntax(format!(
                "a message starts with its verb, not {verb:?}"
            )));
        }
        let mut fields = Vec::new();
        for w in words {
            let Some((k, v)) = w.split_once('=') else {
                return Err(syntax(format!(
                    "{w:?} is not key=value (single spaces only)"
                )));
            };
            if k.is_empty() || fields.iter().any(|(seen, _)| *seen == k) {
                return Err(syntax(format!("key {k:?} is empty or repeated")));
            }
            fields.push((k, v));
        }
        Ok(Self { verb, fields })
    }

    fn opt(&self, key: &str) -> Option<&'a str> {
        self.fields.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    fn text(&self, key: &str) -> Result<&'a str, ParseError> {
        match self.opt(key) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(syntax(format!("{} needs {key}=", self.verb))),
        }
    }

    fn id(&self, key: &str) -> Result<String, ParseError> {
        let v = self.text(key)?;
        if v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            Ok(v.to_string())
        } else {
            Err(syntax(format!("{key}={v} holds characters an id cannot")))
        }
    }

    fn piece(&self) -> Result<String, ParseError> {
        let v = self.text("piece")?;
        if v.len() >= 6 && v.bytes().all(|b| b.is_ascii_digit()) {
            Ok(v.to_string())
        } else {
            Err(syntax(format!(
                "piece={v} is not a piece id of 6 or more digits"
            )))
        }
    }

    fn num<T: std::str::FromStr>(&self, key: &str) -> Result<T, ParseError> {
        let v = self.text(key)?;
        if !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(syntax(format!("{key}={v} is not a number")));
        }
        v.parse()
            .map_err(|_| syntax(format!("{key}={v} is out of range")))
    }

    fn state(&self) -> Result<DeviceState, ParseError> {
        let v = self.text("state")?;
        DeviceState::parse(v).ok_or_else(|| syntax(format!("state={v} is not a state")))
    }

    fn opt_text(&self, key: &str) -> Option<String> {
        self.opt(key).filter(|v| !v.is_empty()).map(str::to_string)
    }
}

fn parse_time(v: &str) -> Result<String, ParseError> {
    const SHAPE: &[u8; 24] = b"dddd-dd-ddTdd:dd:dd.dddZ";
    let shape = v.len() == SHAPE.len()
        && v.bytes().zip(SHAPE).all(|(c, &p)| match p {
            b'd' => c.is_ascii_digit(),
            p => c == p,
        });
    if shape {
        Ok(v.to_string())
    } else {
        Err(syntax(format!("t={v} is not a UTC time with milliseconds")))
    }
}

fn parse_feeders(v: Option<&str>) -> Result<u32, ParseError> {
    match v {
        None => Ok(0),
        Some(v) if !v.is_empty() && v.len() <= 8 && v.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(u32::from_str_radix(v, 16).expect("checked hex"))
        }
        Some(v) => Err(syntax(format!("feeders={v} is not a hex bit mask"))),
    }
}

impl HostMessage {
    /// Parses one line (without its end) as the inserter reads it.
    pub fn parse(line: &str) -> Result<Self, ParseError> {
        let f = Fields::split(line)?;
        Ok(match f.verb {
            "HELLO" => {
                let proto = f.text("proto")?;
                if proto != "PIL/1" {
                    return Err(syntax(format!("proto={proto} is not PIL/1")));
                }
                HostMessage::Hello {
                    agent: f.id("agent")?,
                }
            }
            "JOB" => HostMessage::Job {
                job: f.id("job")?,
                pieces: f.num("pieces")?,
            },
            "EXPECT" => HostMessage::Expect {
                job: f.id("job")?,
                piece: f.piece()?,
                sheets: f.num("sheets")?,
                feeders: parse_feeders(f.opt("feeders"))?,
            },
            "START" => HostMessage::Start { job: f.id("job")? },
            "ACK" => HostMessage::Ack { seq: f.num("seq")? },
            "RESEND" => HostMessage::Resend {
                from: f.num("from")?,
            },
            "STATUS" => HostMessage::Status,
            verb => {
                return Err(ParseError {
                    code: ErrCode::UnknownVerb,
                    msg: format!("{verb} is not a PIL/1 verb"),
                });
            }
        })
    }
}

impl InserterMessage {
    /// Parses one line (without its end) as the host reads it.
    pub fn parse(line: &str) -> Result<Self, ParseError> {
        let f = Fields::split(line)?;
        let event = |kind| -> Result<Self, ParseError> {
            Ok(InserterMessage::Event(Event {
                seq: f.num("seq")?,
                t: parse_time(f.text("t")?)?,
                kind,
            }))
        };
        match f.verb {
            "HELLO" => {
                let proto = f.text("proto")?;
                if proto != "PIL/1" {
                    return Err(syntax(format!("proto={proto} is not PIL/1")));
                }
                Ok(InserterMessage::Hello {
                    device: f.text("device")?.to_string(),
                    serial: f.text("serial")?.to_string(),
                    state: f.state()?,
                    last_seq: f.num("last-seq")?,
                })
            }
            "OK" => Ok(InserterMessage::Ok { job: f.id("job")? }),
            "STATUS" => Ok(InserterMessage::Status {
                state: f.state()?,
                job: f.opt_text("job"),
                last_seq: f.num("last-seq")?,
                unacked: f.num("unacked")?,
            }),
            "ERR" => {
                let v = f.text("code")?;
                let code = ErrCode::parse(v)
                    .ok_or_else(|| syntax(format!("code={v} is not an ERR code")))?;
                Ok(InserterMessage::Err {
                    code,
                    msg: f.opt("msg").unwrap_or("").to_string(),
                })
            }
            "PIECE" => {
                let sheets = f.text("sheets")?;
                let Some((read, expected)) = sheets.split_once('/') else {
                    return Err(syntax(format!("sheets={sheets} is not read/expected")));
                };
                let n = |s: &str| {
                    s.parse::<u32>()
                        .ok()
                        .filter(|_| s.bytes().all(|b| b.is_ascii_digit()))
                        .ok_or_else(|| syntax(format!("sheets={sheets} is not read/expected")))
                };
                let v = f.text("status")?;
                let status = PieceStatus::parse(v)
                    .ok_or_else(|| syntax(format!("status={v} is not a piece status")))?;
                event(EventKind::Piece {
                    job: f.id("job")?,
                    piece: f.piece()?,
                    read: n(read)?,
                    expected: n(expected)?,
                    status,
                    reason: f.opt_text("reason"),
                    bin: f.id("bin")?,
                })
            }
            "STATE" => event(EventKind::State {
                state: f.state()?,
                job: f.opt_text("job"),
                reason: f.opt_text("reason"),
                location: f.opt_text("location"),
            }),
            "JOBEND" => event(EventKind::JobEnd {
                job: f.id("job")?,
                counts: JobCounts {
                    expected: f.num("expected")?,
                    reported: f.num("reported")?,
                    ok: f.num("ok")?,
                    divert: f.num("divert")?,
                    jam: f.num("jam")?,
                    pulled: f.num("pulled")?,
                },
            }),
            verb => Err(ParseError {
                code: ErrCode::UnknownVerb,
                msg: format!("{verb} is not a PIL/1 verb"),
            }),
        }
    }
}

impl fmt::Display for HostMessage {
    /// The line, without its end (send it followed by `\r\n`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostMessage::Hello { agent } => write!(f, "HELLO proto=PIL/1 agent={agent}"),
            HostMessage::Job { job, pieces } => write!(f, "JOB job={job} pieces={pieces}"),
            HostMessage::Expect {
                job,
                piece,
                sheets,
                feeders,
            } => {
                write!(
                    f,
                    "EXPECT job={job} piece={piece} sheets={sheets} feeders={feeders:02X}"
                )
            }
            HostMessage::Start { job } => write!(f, "START job={job}"),
            HostMessage::Ack { seq } => write!(f, "ACK seq={seq}"),
            HostMessage::Resend { from } => write!(f, "RESEND from={from}"),
            HostMessage::Status => write!(f, "STATUS"),
        }
    }
}

/// A free text made fit for a value: spaces become `_`, anything outside printable
/// ASCII `-`.
pub fn value_text(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            ' ' => '_',
            '!'..='~' => c,
            _ => '-',
        })
        .collect()
}

impl fmt::Display for InserterMessage {
    /// The line, without its end.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InserterMessage::Hello {
                device,
                serial,
                state,
                last_seq,
            } => write!(
                f,
                "HELLO proto=PIL/1 device={device} serial={serial} state={} last-seq={last_seq}",
                state.as_str()
            ),
            InserterMessage::Ok { job } => write!(f, "OK job={job}"),
            InserterMessage::Status {
                state,
                job,
                last_seq,
                unacked,
            } => {
                write!(f, "STATUS state={}", state.as_str())?;
                if let Some(job) = job {
                    write!(f, " job={job}")?;
                }
                write!(f, " last-seq={last_seq} unacked={unacked}")
            }
            InserterMessage::Err { code, msg } => {
                write!(f, "ERR code={} msg={}", code.as_str(), value_text(msg))
            }
            InserterMessage::Event(Event { seq, t, kind }) => match kind {
                EventKind::Piece {
                    job,
                    piece,
                    read,
                    expected,
                    status,
                    reason,
                    bin,
                } => {
                    write!(
                        f,
                        "PIECE seq={seq} t={t} job={job} piece={piece} sheets={read}/{expected} status={}",
                        status.as_str()
                    )?;
                    if let Some(r) = reason {
                        write!(f, " reason={r}")?;
                    }
                    write!(f, " bin={bin}")
                }
                EventKind::State {
                    state,
                    job,
                    reason,
                    location,
                } => {
                    write!(f, "STATE seq={seq} t={t} state={}", state.as_str())?;
                    for (k, v) in [("job", job), ("reason", reason), ("location", location)] {
                        if let Some(v) = v {
                            write!(f, " {k}={v}")?;
                        }
                    }
                    Ok(())
                }
                EventKind::JobEnd { job, counts: c } => write!(
                    f,
                    "JOBEND seq={seq} t={t} job={job} expected={} reported={} ok={} divert={} jam={} pulled={}",
                    c.expected, c.reported, c.ok, c.divert, c.jam, c.pulled
                ),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_of_the_spec_round_trips() {
        let host = [
            "HELLO proto=PIL/1 agent=agent-1",
            "JOB job=J000042 pieces=3",
            "EXPECT job=J000042 piece=000001 sheets=3 feeders=01",
            "START job=J000042",
            "ACK seq=17",
            "RESEND from=12",
            "STATUS",
        ];
        for line in host {
            assert_eq!(HostMessage::parse(line).unwrap().to_string(), line);
        }
        let inserter = [
            "HELLO proto=PIL/1 device=FP-Inserter-9 serial=SN123 state=IDLE last-seq=0",
            "OK job=J000042",
            "STATUS state=RUNNING job=J000042 last-seq=9 unacked=2",
            "STATUS state=IDLE last-seq=9 unacked=0",
            "ERR code=unknown-verb msg=FOO_is_not_a_verb",
            "PIECE seq=1 t=2026-12-03T09:15:02.123Z job=J000042 piece=000001 sheets=3/3 status=OK bin=STACKER1",
            "PIECE seq=2 t=2026-12-03T09:15:02.500Z job=J000042 piece=000002 sheets=1/2 status=DIVERT reason=sheet-missing bin=DIVERT1",
            "STATE seq=3 t=2026-12-03T09:15:03.000Z state=JAMMED job=J000042 reason=jam location=folder",
            "JOBEND seq=4 t=2026-12-03T09:16:00.000Z job=J000042 expected=3 reported=2 ok=1 divert=1 jam=0 pulled=0",
        ];
        for line in inserter {
            assert_eq!(InserterMessage::parse(line).unwrap().to_string(), line);
        }
    }

    #[test]
    fn expect_without_feeders_means_none_and_unknown_keys_are_ignored() {
        assert_eq!(
            HostMessage::parse("EXPECT job=J1 piece=000007 sheets=2 colour=blue").unwrap(),
            HostMessage::Expect {
                job: "J1".into(),
                piece: "000007".into(),
                sheets: 2,
                feeders: 0
            }
        );
    }

    #[test]
    fn malformed_lines_get_the_code_that_answers_them() {
        let code = |l: &str| InserterMessage::parse(l).unwrap_err().code;
        assert_eq!(code("FOO bar=1"), ErrCode::UnknownVerb);
        for bad in [
            "",
            "ack seq=1",
            "PIECE seq=1 t=2026-12-03T09:15:02.123Z job=J1 piece=12 sheets=1/1 status=OK bin=STACKER1",
            "PIECE seq=1 t=yesterday job=J1 piece=000012 sheets=1/1 status=OK bin=STACKER1",
            "PIECE seq=-1 t=2026-12-03T09:15:02.123Z job=J1 piece=000012 sheets=1/1 status=OK bin=STACKER1",
            "PIECE seq=1 t=2026-12-03T09:15:02.123Z job=J1 piece=000012 sheets=1 status=OK bin=STACKER1",
            "PIECE seq=1 t=2026-12-03T09:15:02.123Z job=J1 piece=000012 sheets=1/1 status=FINE bin=STACKER1",
            "PIECE seq=1  t=2026-12-03T09:15:02.123Z job=J1 piece=000012 sheets=1/1 status=OK bin=STACKER1",
            "JOBEND seq=99999999999999999999999 t=2026-12-03T09:15:02.123Z job=J1 expected=1 reported=1 ok=1 divert=0 jam=0 pulled=0",
            "STATUS state=RUNNING last-seq=1 last-seq=2 unacked=0",
            "HELLO proto=PIL/2 device=X serial=Y state=IDLE last-seq=0",
        ] {
            assert_eq!(code(bad), ErrCode::Syntax, "{bad}");
        }
        assert_eq!(
            HostMessage::parse("EXPECT job=J1 piece=000001 sheets=1 feeders=zz")
                .unwrap_err()
                .code,
            ErrCode::Syntax
        );
    }
}
