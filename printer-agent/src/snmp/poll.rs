//! One printer over SNMP: [`SnmpPrinter::poll`] reads its status in one GET and a few
//! walks, checks every answer against what was asked, and decodes it into a
//! [`PrinterStatus`].
//!
//! The agent is not trusted: a GET answer must hold exactly the names asked (snmpsim,
//! for one, answers a missing object with the next object's name and value), a walk must
//! move forward and stops at the first name outside its subtree, and a value of the
//! wrong type is [`SnmpFailure::Garbled`]. After any failure the session is dropped and
//! the next poll opens a fresh one (for snmp2 that is what keeps a late reply from
//! answering the next request; for csnmp it costs one socket).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use super::oids;
use super::status::{self, Answers, PrinterStatus, SCALARS};
use super::v2c::V2c;
use super::v3::{self, V3};
use super::wire::{BulkAnswer, Oid, Value, Varbind};
use crate::config::{self, SnmpVersion};

/// Why a poll did not give a status.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SnmpFailure {
    /// The `snmp` settings can't be used (a key file, the version's keys).
    #[error("snmp settings: {0}")]
    Config(String),
    /// No answer in time: a wrong address, community, user or context gets no answer
    /// at all.
    #[error(
        "no answer within {0:?}: check the address, the community (2c) or the user and context (3)"
    )]
    Timeout(Duration),
    /// The agent can't be reached: the name does not resolve, nothing listens, a
    /// socket error.
    #[error("the printer's SNMP agent can't be reached: {0}")]
    Unavailable(String),
    /// The agent answered with an error status, or refused the credentials.
    #[error("the printer's SNMP agent refused the request: {0}")]
    Refused(String),
    /// The agent does not have an object the driver needs.
    #[error(
        "the printer has no {object} ({oid}); the driver needs the Host Resources and Printer MIBs for device 1"
    )]
    Missing { object: &'static str, oid: String },
    /// An answer that does not fit what was asked, or a value of the wrong type.
    #[error("the printer's SNMP agent sent a garbled answer: {0}")]
    Garbled(String),
    /// A fault of the driver itself.
    #[error("internal error in the SNMP driver: {0}")]
    Internal(String),
}

/// Port 161 when the address has none.
const DEFAULT_PORT: u16 = 161;
/// Steps of one GETBULK in a walk.
const BULK_REPETITIONS: u32 = 16;
/// A walk of one column or table stops with an error past this many cells.
const MAX_WALK_CELLS: usize = 4096;

/// A printer's SNMP agent (device 1 of its Host Resources and Printer MIBs).
pub struct SnmpPrinter {
    address: String,
    timeout: Duration,
    poll_every: Duration,
    credentials: Credentials,
    state: tokio::sync::Mutex<State>,
}

enum Credentials {
    V2c { community: Vec<u8> },
    V3 { security: Box<snmp2::v3::Security> },
}

#[derive(Default)]
struct State {
    session: Option<Session>,
    opened: u32,
}

enum Session {
    V2c(V2c),
    V3(Box<V3>),
}

impl std::fmt::Debug for SnmpPrinter {
    /// Leaves out the community and the pass phrases.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let version = match self.credentials {
            Credentials::V2c { .. } => "2c",
            Credentials::V3 { .. } => "3",
        };
        f.debug_struct("SnmpPrinter")
            .field("address", &self.address)
            .field("version", &version)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl SnmpPrinter {
    /// A printer with these settings (the v3 key files are read now); each request of a
    /// poll waits at most `timeout` for its answer, and is not repeated: the next poll is
    /// the retry.
    pub fn new(cfg: &config::Snmp, timeout: Duration) -> Result<Self, SnmpFailure> {
        if timeout.is_zero() {
            return Err(SnmpFailure::Config("the timeout must be above 0".into()));
        }
        let credentials = match cfg.version {
            SnmpVersion::V2c => Credentials::V2c {
                community: cfg
                    .community
                    .as_deref()
                    .filter(|c| !c.is_empty())
                    .ok_or_else(|| SnmpFailure::Config("version 2c needs a community".into()))?
                    .as_bytes()
                    .to_vec(),
            },
            SnmpVersion::V3 => Credentials::V3 {
                security: Box::new(v3::security(cfg)?),
            },
        };
        Ok(Self {
            address: cfg.address.clone(),
            timeout,
            poll_every: Duration::from_secs(cfg.poll_seconds.max(1).into()),
            credentials,
            state: tokio::sync::Mutex::default(),
        })
    }

    /// `host[:port]` as configured.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// How often the configuration asks for a poll (`poll_seconds`).
    pub fn poll_every(&self) -> Duration {
        self.poll_every
    }

    /// Reads the printer's status: one GET of hrDeviceStatus, hrPrinterStatus,
    /// hrPrinterDetectedErrorState, prtMarkerCounterUnit and prtMarkerLifeCount, then
    /// walks of the supplies' descriptions, capacities and levels, the input trays'
    /// names, capacities and levels, and prtAlertTable. Polls of one printer run one at
    /// a time; a poll that is dropped midway leaves no session behind.
    pub async fn poll(&self) -> Result<PrinterStatus, SnmpFailure> {
        let mut state = self.state.lock().await;
        let mut session = match state.session.take() {
            Some(s) => s,
            None => {
                state.opened = state.opened.wrapping_add(1);
                self.open(state.opened).await?
            }
        };
        let status = read(&mut session).await?;
        state.session = Some(session);
        Ok(status)
    }

    async fn open(&self, nth: u32) -> Result<Session, SnmpFailure> {
        let target = resolve(&self.address, self.timeout).await?;
        Ok(match &self.credentials {
            Credentials::V2c { community } => {
                Session::V2c(V2c::open(target, community.clone(), self.timeout).await?)
            }
            Credentials::V3 { security } => {
                // Each session's request IDs start elsewhere, so a stale datagram that
                // reaches a reused port still has an ID nobody waits for.
                let first_id = i32::try_from(nth % 2048).unwrap_or(0) << 20;
                Session::V3(Box::new(
                    V3::open(target, (**security).clone(), self.timeout, first_id).await?,
                ))
            }
        })
    }
}

impl Session {
    async fn get(&mut self, oids: &[Oid]) -> Result<Vec<Varbind>, SnmpFailure> {
        match self {
            Session::V2c(s) => s.get(oids).await,
            Session::V3(s) => s.get(oids).await,
        }
    }

    async fn bulk(&mut self, from: &Oid) -> Result<BulkAnswer, SnmpFailure> {
        match self {
            Session::V2c(s) => s.bulk(from, BULK_REPETITIONS).await,
            Session::V3(s) => s.bulk(from, BULK_REPETITIONS).await,
        }
    }
}

/// The poll itself, as a table of contents.
async fn read(s: &mut Session) -> Result<PrinterStatus, SnmpFailure> {
    let asked: Vec<Oid> = SCALARS.iter().map(|o| Oid::new(o)).collect();
    let scalars = check_get(&asked, s.get(&asked).await?)?;
    let answers = Answers {
        scalars,
        supplies_description: walk(s, oids::PRT_MARKER_SUPPLIES_DESCRIPTION).await?,
        supplies_max: walk(s, oids::PRT_MARKER_SUPPLIES_MAX_CAPACITY).await?,
        supplies_level: walk(s, oids::PRT_MARKER_SUPPLIES_LEVEL).await?,
        input_name: walk(s, oids::PRT_INPUT_NAME).await?,
        input_max: walk(s, oids::PRT_INPUT_MAX_CAPACITY).await?,
        input_level: walk(s, oids::PRT_INPUT_CURRENT_LEVEL).await?,
        alerts: walk(s, oids::PRT_ALERT_ENTRY).await?,
    };
    status::decode(&answers).map_err(SnmpFailure::Garbled)
}

/// The values of a GET, in the order asked: every name answered must be one asked, once,
/// and every name asked must be answered.
fn check_get(asked: &[Oid], got: Vec<Varbind>) -> Result<Vec<Value>, SnmpFailure> {
    let mut slots: Vec<Option<Value>> = vec![None; asked.len()];
    for vb in got {
        let Some(i) = asked.iter().position(|a| *a == vb.oid) else {
            return Err(SnmpFailure::Garbled(format!(
                "the answer to a GET names {}, which was not asked",
                vb.oid
            )));
        };
        let name = oids::name(asked[i].arcs());
        match vb.value {
            Value::NoSuchObject | Value::NoSuchInstance => {
                return Err(SnmpFailure::Missing {
                    object: name,
                    oid: vb.oid.to_string(),
                });
            }
            Value::EndOfMibView => {
                return Err(SnmpFailure::Garbled(format!(
                    "endOfMibView for {name} in the answer to a GET"
                )));
            }
            _ => {}
        }
        if slots[i].replace(vb.value).is_some() {
            return Err(SnmpFailure::Garbled(format!(
                "{name} ({}) is answered twice",
                asked[i]
            )));
        }
    }
    slots
        .into_iter()
        .zip(asked)
        .map(|(v, a)| {
            v.ok_or_else(|| {
                SnmpFailure::Garbled(format!(
                    "the answer to a GET has no {} ({a})",
                    oids::name(a.arcs())
                ))
            })
        })
        .collect()
}

/// Every cell under `top`, with GETBULK.
async fn walk(s: &mut Session, top: &[u32]) -> Result<Vec<Varbind>, SnmpFailure> {
    let mut walk = Walk::new(Oid::new(top));
    while let Some(cursor) = walk.next_request() {
        let answer = s.bulk(&cursor).await?;
        walk.take(answer)?;
    }
    Ok(walk.cells)
}

/// A walk as a state machine without I/O: where to ask next, and what an answer adds.
struct Walk {
    top: Oid,
    cursor: Oid,
    cells: Vec<Varbind>,
    done: bool,
}

impl Walk {
    fn new(top: Oid) -> Self {
        Self {
            cursor: top.clone(),
            top,
            cells: Vec::new(),
            done: false,
        }
    }

    fn next_request(&self) -> Option<Oid> {
        (!self.done).then(|| self.cursor.clone())
    }

    fn take(&mut self, answer: BulkAnswer) -> Result<(), SnmpFailure> {
        let name = oids::name(self.top.arcs());
        if answer.varbinds.is_empty() && !answer.end_of_mib {
            return Err(SnmpFailure::Garbled(format!(
                "an empty answer to GETBULK after {} (walking {name})",
                self.cursor
            )));
        }
        for vb in answer.varbinds {
            if vb.oid <= self.cursor {
                return Err(SnmpFailure::Garbled(format!(
                    "a walk of {name} went from {} back to {}",
                    self.cursor, vb.oid
                )));
            }
            if !vb.oid.starts_with(&self.top) {
                self.done = true;
                return Ok(());
            }
            if matches!(
                vb.value,
                Value::NoSuchObject | Value::NoSuchInstance | Value::EndOfMibView
            ) {
                return Err(SnmpFailure::Garbled(format!(
                    "{} for {} in a walk of {name}",
                    vb.value.type_name(),
                    vb.oid
                )));
            }
            if self.cells.len() == MAX_WALK_CELLS {
                return Err(SnmpFailure::Garbled(format!(
                    "{name} has more than {MAX_WALK_CELLS} cells"
                )));
            }
            self.cursor = vb.oid.clone();
            self.cells.push(vb);
        }
        if answer.end_of_mib {
            self.done = true;
        }
        Ok(())
    }
}

/// An address that needs no name lookup: `ip:port`, `[v6]:port`, or an IP alone.
fn literal(address: &str) -> Option<SocketAddr> {
    if let Ok(a) = address.parse::<SocketAddr>() {
        return Some(a);
    }
    if let Ok(ip) = address.parse::<IpAddr>() {
        return Some((ip, DEFAULT_PORT).into());
    }
    let v6 = address.strip_prefix('[')?.strip_suffix(']')?;
    Some((v6.parse::<Ipv6Addr>().ok()?, DEFAULT_PORT).into())
}

/// `host:port` for the resolver (`host` alone gets port 161).
fn lookup_query(address: &str) -> String {
    if address.contains(':') {
        address.to_string()
    } else {
        format!("{address}:{DEFAULT_PORT}")
    }
}

async fn resolve(address: &str, timeout: Duration) -> Result<SocketAddr, SnmpFailure> {
    if let Some(a) = literal(address) {
        return Ok(a);
    }
    let found = tokio::time::timeout(timeout, tokio::net::lookup_host(lookup_query(address)))
        .await
        .map_err(|_| {
            SnmpFailure::Unavailable(format!("resolving {address} took more than {timeout:?}"))
        })?
        .map_err(|e| SnmpFailure::Unavailable(format!("cannot resolve {address}: {e}")))?
        .next();
    found.ok_or_else(|| SnmpFailure::Unavailable(format!("{address} resolves to no address")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oid(s: &str) -> Oid {
        Oid::new(
            &s.split('.')
                .map(|a| a.parse().unwrap())
                .collect::<Vec<u32>>(),
        )
    }

    fn vb(s: &str, value: Value) -> Varbind {
        Varbind { oid: oid(s), value }
    }

    #[test]
    fn a_get_answer_must_name_exactly_what_was_asked() {
        let asked = [
            oid("1.3.6.1.2.1.25.3.2.1.5.1"),
            oid("1.3.6.1.2.1.25.3.5.1.1.1"),
        ];
        // In any order (csnmp hands back a map).
        let v = check_get(
            &asked,
            vec![
                vb("1.3.6.1.2.1.25.3.5.1.1.1", Value::Integer(3)),
                vb("1.3.6.1.2.1.25.3.2.1.5.1", Value::Integer(2)),
            ],
        )
        .unwrap();
        assert_eq!(v, vec![Value::Integer(2), Value::Integer(3)]);
        // snmpsim's quirk: a missing object answered with the next object's name.
        let e = check_get(
            &asked,
            vec![
                vb("1.3.6.1.2.1.25.3.5.1.1.1", Value::Integer(1)),
                vb("1.3.6.1.2.1.25.3.5.1.1.1", Value::Integer(1)),
            ],
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("hrPrinterStatus") && e.to_string().contains("twice"),
            "{e}"
        );
        let e = check_get(
            &asked,
            vec![
                vb("1.3.6.1.2.1.25.3.2.1.5.1", Value::Integer(2)),
                vb("1.3.6.1.2.1.25.3.5.1.2.1", Value::Integer(1)),
            ],
        )
        .unwrap_err();
        assert!(e.to_string().contains("not asked"), "{e}");
        let e = check_get(
            &asked,
            vec![vb("1.3.6.1.2.1.25.3.2.1.5.1", Value::Integer(2))],
        )
        .unwrap_err();
        assert!(e.to_string().contains("has no hrPrinterStatus"), "{e}");
        let e = check_get(
            &asked,
            vec![vb("1.3.6.1.2.1.25.3.2.1.5.1", Value::NoSuchInstance)],
        )
        .unwrap_err();
        assert_eq!(
            e,
            SnmpFailure::Missing {
                object: "hrDeviceStatus",
                oid: "1.3.6.1.2.1.25.3.2.1.5.1".into()
            }
        );
    }

    #[test]
    fn a_walk_stays_in_its_subtree_and_moves_forward() {
        let mut w = Walk::new(oid("1.3.6.1.2.1.43.18.1.1"));
        assert_eq!(w.next_request(), Some(oid("1.3.6.1.2.1.43.18.1.1")));
        w.take(BulkAnswer {
            varbinds: vec![
                vb("1.3.6.1.2.1.43.18.1.1.2.1.1", Value::Integer(3)),
                vb("1.3.6.1.2.1.43.18.1.1.4.1.1", Value::Integer(13)),
            ],
            end_of_mib: false,
        })
        .unwrap();
        assert_eq!(w.next_request(), Some(oid("1.3.6.1.2.1.43.18.1.1.4.1.1")));
        // The first name outside the subtree ends the walk; what follows is not read.
        w.take(BulkAnswer {
            varbinds: vec![
                vb("1.3.6.1.2.1.43.18.1.1.7.1.1", Value::Integer(8)),
                vb("1.3.6.1.6.3.10.2.1.1.0", Value::OctetString(vec![])),
                vb("1.3.6.1.6.3.10.2.1.2.0", Value::Integer(1)),
            ],
            end_of_mib: false,
        })
        .unwrap();
        assert_eq!(w.next_request(), None);
        assert_eq!(w.cells.len(), 3);

        // End of the MIB view inside the subtree, or with nothing at all: done.
        let mut w = Walk::new(oid("1.3.6.1.2.1.43.18.1.1"));
        w.take(BulkAnswer {
            varbinds: vec![],
            end_of_mib: true,
        })
        .unwrap();
        assert_eq!((w.next_request(), w.cells.len()), (None, 0));

        // Backwards, the same name again, an exception, an empty answer: garbled.
        let garbled = |answer: BulkAnswer| {
            let mut w = Walk::new(oid("1.3.6.1.2.1.43.18.1.1"));
            w.cursor = oid("1.3.6.1.2.1.43.18.1.1.4.1.1");
            matches!(w.take(answer), Err(SnmpFailure::Garbled(_)))
        };
        assert!(garbled(BulkAnswer {
            varbinds: vec![vb("1.3.6.1.2.1.43.18.1.1.2.1.1", Value::Integer(3))],
            end_of_mib: false,
        }));
        assert!(garbled(BulkAnswer {
            varbinds: vec![vb("1.3.6.1.2.1.43.18.1.1.4.1.1", Value::Integer(3))],
            end_of_mib: false,
        }));
        assert!(garbled(BulkAnswer {
            varbinds: vec![vb("1.3.6.1.2.1.43.18.1.1.5.1.1", Value::NoSuchInstance)],
            end_of_mib: false,
        }));
        assert!(garbled(BulkAnswer::default()));
    }

    #[test]
    fn a_walk_that_never_ends_is_refused() {
        let mut w = Walk::new(oid("1.3.6.1.2.1.43.18.1.1"));
        let mut n = 0;
        let err = loop {
            let varbinds = (0..16)
                .map(|_| {
                    n += 1;
                    Varbind {
                        oid: Oid::new(oids::PRT_ALERT_ENTRY).child(&[2, 1, n]),
                        value: Value::Integer(3),
                    }
                })
                .collect();
            if let Err(e) = w.take(BulkAnswer {
                varbinds,
                end_of_mib: false,
            }) {
                break e;
            }
        };
        assert!(err.to_string().contains("more than 4096"), "{err}");
    }

    #[test]
    fn addresses_default_to_port_161() {
        assert_eq!(
            literal("127.0.0.1:1161"),
            Some("127.0.0.1:1161".parse().unwrap())
        );
        assert_eq!(literal("10.0.0.5"), Some("10.0.0.5:161".parse().unwrap()));
        assert_eq!(literal("[::1]:1161"), Some("[::1]:1161".parse().unwrap()));
        assert_eq!(literal("[::1]"), Some("[::1]:161".parse().unwrap()));
        assert_eq!(literal("::1"), Some("[::1]:161".parse().unwrap()));
        assert_eq!(literal("printer2"), None);
        assert_eq!(lookup_query("printer2"), "printer2:161");
        assert_eq!(lookup_query("printer2:1161"), "printer2:1161");
    }

    fn v2c(address: &str) -> config::Snmp {
        config::Snmp {
            address: address.into(),
            version: SnmpVersion::V2c,
            community: Some("printer".into()),
            user: None,
            auth_protocol: None,
            auth_key_file: None,
            priv_protocol: None,
            priv_key_file: None,
            context: String::new(),
            poll_seconds: 5,
        }
    }

    #[test]
    fn settings_are_checked_when_the_printer_is_made() {
        let p = SnmpPrinter::new(&v2c("127.0.0.1:1161"), Duration::from_secs(1)).unwrap();
        assert_eq!(
            (p.address(), p.poll_every()),
            ("127.0.0.1:1161", Duration::from_secs(5))
        );
        assert!(!format!("{p:?}").contains("printer\""), "{p:?}");
        let e = SnmpPrinter::new(&v2c("h"), Duration::ZERO).unwrap_err();
        assert!(matches!(e, SnmpFailure::Config(_)));
        let mut c = v2c("h");
        c.community = None;
        assert!(matches!(
            SnmpPrinter::new(&c, Duration::from_secs(1)),
            Err(SnmpFailure::Config(_))
        ));
        let mut c = v2c("h");
        c.version = SnmpVersion::V3;
        c.community = None;
        c.user = Some("pressrun".into());
        c.auth_protocol = Some(config::AuthProtocol::Sha);
        c.auth_key_file = Some("/nonexistent/pressrun.auth".into());
        let e = SnmpPrinter::new(&c, Duration::from_secs(1)).unwrap_err();
        assert!(
            e.to_string()
                .contains("auth_key_file /nonexistent/pressrun.auth"),
            "{e}"
        );
    }

    #[test]
    fn the_poll_future_can_be_spawned() {
        fn is_send<T: Send>(_: &T) {}
        let p = SnmpPrinter::new(&v2c("127.0.0.1:1"), Duration::from_secs(1)).unwrap();
        is_send(&p.poll());
        fn is_sync<T: Send + Sync>() {}
        is_sync::<SnmpPrinter>();
    }
}
