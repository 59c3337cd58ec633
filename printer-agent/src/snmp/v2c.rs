//! SNMPv2c over csnmp 0.6 (docs/peers/snmp.md): its client matches replies by request
//! ID and drops stray ones, so a late answer can't be taken for the next one. csnmp's own
//! checks are not relied on: GET answers and walk steps are checked again by the caller,
//! and a GETBULK that csnmp rejects at the end of the MIB view is read from the bindings
//! it returns with the error.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use csnmp::message::{BindingValue, VariableBinding};
use csnmp::{ObjectIdentifier, ObjectValue, Snmp2cClient, SnmpClientError};

use super::poll::SnmpFailure;
use super::wire::{BulkAnswer, Oid, Value, Varbind};

/// One client socket for one agent; requests on it must be sequential.
pub(super) struct V2c {
    client: Snmp2cClient,
    timeout: Duration,
}

impl V2c {
    /// A client for `target`; every request waits at most `timeout`, without retries.
    pub async fn open(
        target: SocketAddr,
        community: Vec<u8>,
        timeout: Duration,
    ) -> Result<Self, SnmpFailure> {
        // csnmp binds [::]:0 by default, which fails where IPv6 is off.
        let bind: SocketAddr = if target.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let client = Snmp2cClient::new(target, community, Some(bind), Some(timeout), 0)
            .await
            .map_err(|e| failure(e, timeout))?;
        Ok(Self { client, timeout })
    }

    /// GET of `oids` in one PDU. Exceptions come back as values (csnmp reports only the
    /// first one, as the only binding).
    pub async fn get(&self, oids: &[Oid]) -> Result<Vec<Varbind>, SnmpFailure> {
        let ids = oids.iter().map(to_csnmp).collect::<Result<Vec<_>, _>>()?;
        match self.client.get_multiple(ids).await {
            Ok(map) => map
                .into_iter()
                .map(|(oid, v)| {
                    Ok(Varbind {
                        oid: from_csnmp(&oid),
                        value: value(v),
                    })
                })
                .collect(),
            Err(SnmpClientError::FailedBinding { binding }) => match binding.value {
                BindingValue::Unspecified => Err(SnmpFailure::Refused(
                    "the agent answered the GET with an error status".into(),
                )),
                _ => Ok(vec![binding_of(binding)]),
            },
            Err(e) => Err(failure(e, self.timeout)),
        }
    }

    /// GETBULK after `from` (no non-repeaters, `repetitions` steps).
    pub async fn bulk(&self, from: &Oid, repetitions: u32) -> Result<BulkAnswer, SnmpFailure> {
        match self
            .client
            .get_bulk(&[to_csnmp(from)?], 0, repetitions)
            .await
        {
            Ok(r) => Ok(BulkAnswer {
                varbinds: r
                    .values
                    .into_iter()
                    .map(|(oid, v)| Varbind {
                        oid: from_csnmp(&oid),
                        value: value(v),
                    })
                    .collect(),
                end_of_mib: r.end_of_mib_view,
            }),
            // csnmp compares names before it looks at the values, so the endOfMibView an
            // agent correctly names after the requested OID becomes this error; duplicate
            // names too. The bindings are all there: the walk checks them itself.
            Err(
                SnmpClientError::PrecedingValue { obtained, .. }
                | SnmpClientError::DuplicateValue { obtained, .. },
            ) => {
                let mut answer = BulkAnswer::default();
                for b in obtained {
                    match b.value {
                        BindingValue::EndOfMibView => answer.end_of_mib = true,
                        BindingValue::Unspecified => {
                            return Err(SnmpFailure::Refused(
                                "the agent answered the GETBULK with an error status".into(),
                            ));
                        }
                        _ => answer.varbinds.push(binding_of(b)),
                    }
                }
                Ok(answer)
            }
            Err(SnmpClientError::FailedBinding { binding }) => Err(SnmpFailure::Garbled(format!(
                "{} for {} in an answer to GETBULK",
                binding_of(binding.clone()).value.type_name(),
                from_csnmp(&binding.name)
            ))),
            Err(e) => Err(failure(e, self.timeout)),
        }
    }
}

fn to_csnmp(oid: &Oid) -> Result<ObjectIdentifier, SnmpFailure> {
    ObjectIdentifier::try_from(oid.arcs())
        .map_err(|e| SnmpFailure::Internal(format!("OID {oid}: {e}")))
}

fn from_csnmp(oid: &ObjectIdentifier) -> Oid {
    Oid::new(oid.as_slice())
}

fn value(v: ObjectValue) -> Value {
    match v {
        ObjectValue::Integer(n) => Value::Integer(n.into()),
        ObjectValue::String(s) => Value::OctetString(s),
        ObjectValue::ObjectId(o) => Value::ObjectId(from_csnmp(&o)),
        ObjectValue::IpAddress(a) => Value::IpAddress(a.octets()),
        ObjectValue::Counter32(n) => Value::Counter32(n),
        ObjectValue::Unsigned32(n) => Value::Unsigned32(n),
        ObjectValue::TimeTicks(n) => Value::TimeTicks(n),
        ObjectValue::Opaque(o) => Value::Opaque(o),
        ObjectValue::Counter64(n) => Value::Counter64(n),
    }
}

fn binding_of(b: VariableBinding) -> Varbind {
    Varbind {
        oid: from_csnmp(&b.name),
        value: match b.value {
            BindingValue::Value(v) => value(v),
            BindingValue::Unspecified => Value::Null,
            BindingValue::NoSuchObject => Value::NoSuchObject,
            BindingValue::NoSuchInstance => Value::NoSuchInstance,
            BindingValue::EndOfMibView => Value::EndOfMibView,
        },
    }
}

fn failure(e: SnmpClientError, timeout: Duration) -> SnmpFailure {
    use SnmpClientError as E;
    match e {
        E::TimedOut => SnmpFailure::Timeout(timeout),
        E::CreatingSocket { .. }
        | E::Connecting { .. }
        | E::Sending { .. }
        | E::ShortSend { .. }
        | E::Receiving { .. } => SnmpFailure::Unavailable(e.to_string()),
        E::EncodingOutgoing { .. } => SnmpFailure::Internal(e.to_string()),
        E::DecodingIncoming { .. }
        | E::InvalidPdu { .. }
        | E::BindingCount { .. }
        | E::UnexpectedValue { .. }
        | E::PrecedingValue { .. }
        | E::NonIncreasingValue { .. }
        | E::DuplicateValue { .. }
        | E::FailedBinding { .. } => SnmpFailure::Garbled(e.to_string()),
    }
}
