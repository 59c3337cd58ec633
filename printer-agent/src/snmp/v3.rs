//! SNMPv3 (USM) over snmp2 0.5.3 (docs/peers/snmp.md). Its async session has no timeout
//! and reads one datagram per request, so a reply that comes late would answer the next
//! request: every call here is bounded by a timeout, and the caller drops the session
//! after any failure (a new socket, so stale datagrams go to a dead port). snmp2 does not
//! check the names in an answer: the caller does.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use snmp2::v3;
use snmp2::{AsyncSession, Pdu};

use super::poll::SnmpFailure;
use super::wire::{BulkAnswer, Oid, Value, Varbind};
use crate::config::{self, AuthProtocol, PrivProtocol};

/// A key file is at most this large.
const MAX_KEY_FILE_BYTES: u64 = 4096;
/// RFC 3414 (11.2) asks for pass phrases of at least 8 octets; net-snmp refuses shorter.
const MIN_PASS_PHRASE: usize = 8;

/// The USM settings of one printer, with the pass phrases read from their files.
pub(super) fn security(cfg: &config::Snmp) -> Result<v3::Security, SnmpFailure> {
    let user = cfg
        .user
        .as_deref()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| SnmpFailure::Config("version 3 needs a user".into()))?;
    let auth = match (cfg.auth_protocol, &cfg.auth_key_file) {
        (Some(p), Some(f)) => Some((auth_protocol(p), pass_phrase(f, "auth_key_file")?)),
        (None, None) => None,
        _ => {
            return Err(SnmpFailure::Config(
                "auth_protocol and auth_key_file go together".into(),
            ));
        }
    };
    let privacy = match (cfg.priv_protocol, &cfg.priv_key_file) {
        (Some(p), Some(f)) => Some((cipher(p), pass_phrase(f, "priv_key_file")?)),
        (None, None) => None,
        _ => {
            return Err(SnmpFailure::Config(
                "priv_protocol and priv_key_file go together".into(),
            ));
        }
    };
    let security = match (auth, privacy) {
        (None, None) => v3::Security::new(user.as_bytes(), b"").with_auth(v3::Auth::NoAuthNoPriv),
        (Some((protocol, key)), None) => v3::Security::new(user.as_bytes(), &key)
            .with_auth_protocol(protocol)
            .with_auth(v3::Auth::AuthNoPriv),
        (Some((protocol, key)), Some((cipher, privacy_password))) => {
            v3::Security::new(user.as_bytes(), &key)
                .with_auth_protocol(protocol)
                .with_auth(v3::Auth::AuthPriv {
                    cipher,
                    privacy_password,
                })
        }
        (None, Some(_)) => {
            return Err(SnmpFailure::Config(
                "privacy needs authentication (auth_protocol)".into(),
            ));
        }
    };
    Ok(security.with_context_name(&cfg.context))
}

fn auth_protocol(p: AuthProtocol) -> v3::AuthProtocol {
    match p {
        AuthProtocol::Md5 => v3::AuthProtocol::Md5,
        AuthProtocol::Sha => v3::AuthProtocol::Sha1,
        AuthProtocol::Sha256 => v3::AuthProtocol::Sha256,
        AuthProtocol::Sha512 => v3::AuthProtocol::Sha512,
    }
}

fn cipher(p: PrivProtocol) -> v3::Cipher {
    match p {
        PrivProtocol::Des => v3::Cipher::Des,
        PrivProtocol::Aes => v3::Cipher::Aes128,
    }
}

/// The pass phrase a key file holds: the whole file but one final line end.
fn pass_phrase(path: &Path, key: &str) -> Result<Vec<u8>, SnmpFailure> {
    let bytes = pressrun_engine::source::read_regular(
        path,
        MAX_KEY_FILE_BYTES,
        pressrun_engine::source::FileKind::Text,
    )
    .map_err(|e| SnmpFailure::Config(format!("{key} {}: {e}", path.display())))?;
    let phrase = strip_line_end(&bytes);
    if phrase.len() < MIN_PASS_PHRASE {
        return Err(SnmpFailure::Config(format!(
            "{key} {}: the pass phrase has {} octets; SNMPv3 needs at least {MIN_PASS_PHRASE}",
            path.display(),
            phrase.len()
        )));
    }
    Ok(phrase.to_vec())
}

fn strip_line_end(b: &[u8]) -> &[u8] {
    let b = b.strip_suffix(b"\n").unwrap_or(b);
    b.strip_suffix(b"\r").unwrap_or(b)
}

/// One session: a connected socket and the engine's discovered ID, boots and time.
pub(super) struct V3 {
    session: AsyncSession,
    timeout: Duration,
}

impl V3 {
    /// Opens a session to `target` and runs engine discovery; each step waits at most
    /// `timeout`. Request IDs start at `first_id`.
    pub async fn open(
        target: SocketAddr,
        security: v3::Security,
        timeout: Duration,
        first_id: i32,
    ) -> Result<Self, SnmpFailure> {
        let mut session =
            tokio::time::timeout(timeout, AsyncSession::new_v3(target, first_id, security))
                .await
                .map_err(|_| SnmpFailure::Timeout(timeout))?
                .map_err(|e| {
                    SnmpFailure::Unavailable(format!("cannot open a UDP socket to {target}: {e}"))
                })?;
        tokio::time::timeout(timeout, session.init())
            .await
            .map_err(|_| SnmpFailure::Timeout(timeout))?
            .map_err(failure)?;
        Ok(Self { session, timeout })
    }

    /// GET of `oids` in one PDU; exceptions come back as values.
    pub async fn get(&mut self, oids: &[Oid]) -> Result<Vec<Varbind>, SnmpFailure> {
        let ids = oids.iter().map(to_snmp2).collect::<Result<Vec<_>, _>>()?;
        let refs: Vec<&snmp2::Oid<'_>> = ids.iter().collect();
        let t = self.timeout;
        let session = &mut self.session;
        tokio::time::timeout(t, async move {
            let mut repeated = false;
            loop {
                match session.get_many(&refs).await {
                    Err(snmp2::Error::AuthUpdated) if !repeated => repeated = true,
                    Err(e) => return Err(failure(e)),
                    Ok(pdu) => return owned(pdu),
                }
            }
        })
        .await
        .map_err(|_| SnmpFailure::Timeout(t))?
    }

    /// GETBULK after `from` (no non-repeaters, `repetitions` steps).
    pub async fn bulk(&mut self, from: &Oid, repetitions: u32) -> Result<BulkAnswer, SnmpFailure> {
        let id = to_snmp2(from)?;
        let t = self.timeout;
        let session = &mut self.session;
        let varbinds = tokio::time::timeout(t, async move {
            let mut repeated = false;
            loop {
                match session.getbulk(&[&id], 0, repetitions).await {
                    Err(snmp2::Error::AuthUpdated) if !repeated => repeated = true,
                    Err(e) => return Err(failure(e)),
                    Ok(pdu) => return owned(pdu),
                }
            }
        })
        .await
        .map_err(|_| SnmpFailure::Timeout(t))??;
        let mut answer = BulkAnswer::default();
        for vb in varbinds {
            if vb.value == Value::EndOfMibView {
                answer.end_of_mib = true;
            } else {
                answer.varbinds.push(vb);
            }
        }
        Ok(answer)
    }
}

/// The answer as owned data, or the agent's error status.
fn owned(pdu: Pdu<'_>) -> Result<Vec<Varbind>, SnmpFailure> {
    if pdu.error_status != 0 {
        return Err(SnmpFailure::Refused(format!(
            "error-status {} ({}) at binding {}",
            pdu.error_status,
            error_status_name(pdu.error_status),
            pdu.error_index
        )));
    }
    pdu.varbinds
        .map(|(oid, v)| {
            Ok(Varbind {
                oid: from_snmp2(&oid)?,
                value: value(v)?,
            })
        })
        .collect()
}

/// RFC 3416's error-status names.
fn error_status_name(n: u32) -> &'static str {
    const NAMES: [&str; 19] = [
        "noError",
        "tooBig",
        "noSuchName",
        "badValue",
        "readOnly",
        "genErr",
        "noAccess",
        "wrongType",
        "wrongLength",
        "wrongEncoding",
        "wrongValue",
        "noCreation",
        "inconsistentValue",
        "resourceUnavailable",
        "commitFailed",
        "undoFailed",
        "authorizationError",
        "notWritable",
        "inconsistentName",
    ];
    usize::try_from(n)
        .ok()
        .and_then(|i| NAMES.get(i))
        .copied()
        .unwrap_or("not defined by RFC 3416")
}

fn to_snmp2(oid: &Oid) -> Result<snmp2::Oid<'static>, SnmpFailure> {
    let arcs: Vec<u64> = oid.arcs().iter().map(|&a| u64::from(a)).collect();
    snmp2::Oid::from(&arcs).map_err(|e| SnmpFailure::Internal(format!("OID {oid}: {e:?}")))
}

fn from_snmp2(oid: &snmp2::Oid<'_>) -> Result<Oid, SnmpFailure> {
    let bad = || SnmpFailure::Garbled(format!("an OID with an arc beyond 32 bits: {oid}"));
    let arcs = oid
        .iter()
        .ok_or_else(bad)?
        .map(|a| u32::try_from(a).map_err(|_| bad()))
        .collect::<Result<Vec<u32>, _>>()?;
    Ok(Oid::new(&arcs))
}

fn value(v: snmp2::Value<'_>) -> Result<Value, SnmpFailure> {
    use snmp2::Value as V;
    Ok(match v {
        V::Integer(n) => Value::Integer(n),
        V::OctetString(s) => Value::OctetString(s.to_vec()),
        V::ObjectIdentifier(o) => Value::ObjectId(from_snmp2(&o)?),
        V::IpAddress(a) => Value::IpAddress(a),
        V::Counter32(n) => Value::Counter32(n),
        V::Unsigned32(n) => Value::Unsigned32(n),
        V::Timeticks(n) => Value::TimeTicks(n),
        V::Counter64(n) => Value::Counter64(n),
        V::Opaque(o) => Value::Opaque(o.to_vec()),
        V::Null => Value::Null,
        V::EndOfMibView => Value::EndOfMibView,
        V::NoSuchObject => Value::NoSuchObject,
        V::NoSuchInstance => Value::NoSuchInstance,
        V::Boolean(_) => Value::Other("BOOLEAN"),
        _ => Value::Other("a constructed value"),
    })
}

fn failure(e: snmp2::Error) -> SnmpFailure {
    use snmp2::Error as E;
    match e {
        E::Send | E::Receive => SnmpFailure::Unavailable(format!(
            "{e}: nothing listens on that port, or the network refused the datagram"
        )),
        E::AuthFailure(kind) => SnmpFailure::Refused(format!(
            "SNMPv3 security: {kind}; check user, auth_protocol and auth_key_file"
        )),
        E::Crypto(m) => SnmpFailure::Refused(format!(
            "SNMPv3 privacy: {m}; check priv_protocol and priv_key_file"
        )),
        E::AuthUpdated => SnmpFailure::Refused(
            "the agent's engine boots or time changed twice in a row; it may be restarting".into(),
        ),
        E::AsnParse
        | E::AsnInvalidLen
        | E::AsnWrongType
        | E::AsnUnsupportedType
        | E::AsnEof
        | E::AsnIntOverflow
        | E::UnsupportedVersion
        | E::RequestIdMismatch
        | E::CommunityMismatch
        | E::ValueOutOfRange => SnmpFailure::Garbled(e.to_string()),
        E::BufferOverflow | E::Mib(_) => SnmpFailure::Internal(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oids_survive_the_round_trip_through_snmp2() {
        let o = Oid::new(&[1, 3, 6, 1, 2, 1, 43, 10, 2, 1, 4, 1, 4_294_967_295]);
        assert_eq!(from_snmp2(&to_snmp2(&o).unwrap()).unwrap(), o);
        let parsed: snmp2::Oid<'_> = "1.3.6.1.2.1.25.3.2.1.5.1".parse().unwrap();
        assert_eq!(
            from_snmp2(&parsed).unwrap().to_string(),
            "1.3.6.1.2.1.25.3.2.1.5.1"
        );
        let big: snmp2::Oid<'_> = "1.3.4294967296".parse().unwrap();
        assert!(matches!(from_snmp2(&big), Err(SnmpFailure::Garbled(_))));
    }

    #[test]
    fn key_files_hold_the_pass_phrase_without_its_line_end() {
        assert_eq!(strip_line_end(b"pressrun-auth\n"), b"pressrun-auth");
        assert_eq!(strip_line_end(b"pressrun-auth\r\n"), b"pressrun-auth");
        assert_eq!(strip_line_end(b"with space \n\n"), b"with space \n");
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short");
        std::fs::write(&short, "seven77\n").unwrap();
        let e = pass_phrase(&short, "auth_key_file")
            .unwrap_err()
            .to_string();
        assert!(e.contains("7 octets") && e.contains("at least 8"), "{e}");
        let e = pass_phrase(&dir.path().join("absent"), "priv_key_file")
            .unwrap_err()
            .to_string();
        assert!(e.contains("priv_key_file"), "{e}");
        assert_eq!(error_status_name(5), "genErr");
        assert_eq!(error_status_name(99), "not defined by RFC 3416");
    }
}
