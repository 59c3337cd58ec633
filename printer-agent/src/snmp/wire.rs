//! What either SNMP library hands back, as owned plain data: object identifiers, values
//! (exceptions included) and the answers to GET and GETBULK.

use std::fmt;

/// An object identifier; ordered as SNMP orders them (arc by arc, a prefix first).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Oid(Vec<u32>);

impl Oid {
    /// The identifier with these arcs.
    pub fn new(arcs: &[u32]) -> Self {
        Self(arcs.to_vec())
    }

    pub fn arcs(&self) -> &[u32] {
        &self.0
    }

    /// Whether `self` lies in the subtree `top` (or is `top`).
    pub fn starts_with(&self, top: &Oid) -> bool {
        self.0.starts_with(&top.0)
    }

    /// The arcs after `top`, when `self` lies in that subtree.
    pub fn suffix(&self, top: &Oid) -> Option<&[u32]> {
        self.0.strip_prefix(top.0.as_slice())
    }

    /// `self` followed by `arcs`.
    #[cfg(test)]
    pub fn child(&self, arcs: &[u32]) -> Oid {
        let mut v = self.0.clone();
        v.extend_from_slice(arcs);
        Oid(v)
    }
}

impl fmt::Display for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{a}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A value in a variable binding, or the exception an agent put in its place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Integer(i64),
    OctetString(Vec<u8>),
    ObjectId(Oid),
    IpAddress([u8; 4]),
    Counter32(u32),
    Unsigned32(u32),
    TimeTicks(u32),
    Counter64(u64),
    Opaque(Vec<u8>),
    Null,
    NoSuchObject,
    NoSuchInstance,
    EndOfMibView,
    /// Anything else a library decoded (a type SNMP does not put in a varbind).
    Other(&'static str),
}

impl Value {
    /// The SMI name of the value's type, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Integer(_) => "INTEGER",
            Value::OctetString(_) => "OCTET STRING",
            Value::ObjectId(_) => "OBJECT IDENTIFIER",
            Value::IpAddress(_) => "IpAddress",
            Value::Counter32(_) => "Counter32",
            Value::Unsigned32(_) => "Unsigned32",
            Value::TimeTicks(_) => "TimeTicks",
            Value::Counter64(_) => "Counter64",
            Value::Opaque(_) => "Opaque",
            Value::Null => "NULL",
            Value::NoSuchObject => "noSuchObject",
            Value::NoSuchInstance => "noSuchInstance",
            Value::EndOfMibView => "endOfMibView",
            Value::Other(t) => t,
        }
    }
}

/// One variable binding of an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Varbind {
    pub oid: Oid,
    pub value: Value,
}

/// The answer to one GETBULK.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BulkAnswer {
    /// The bindings in the order the agent sent them, except `endOfMibView` ones (those
    /// set `end_of_mib`).
    pub varbinds: Vec<Varbind>,
    /// The agent reached the end of its MIB view.
    pub end_of_mib: bool,
}
