//! `agent.toml`: the devices one printer agent drives (schema:
//! `docs/schema/agent.schema.json`, documented in `docs/agent.md`).
//!
//! Everything is checked when the file is read, so a typo stops the agent before it
//! touches a device: unknown keys, a duplicate name, a printer followed by an inserter
//! that is not listed (or by one that already follows another printer), a URI that is
//! not `ipp://`, SNMP settings that do not fit their version, an inserter with both or
//! neither of `tty` and `tcp`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// `agent.toml` is at most this large.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The whole file.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub agent: Agent,
    #[serde(default, rename = "printer")]
    pub printers: Vec<Printer>,
    #[serde(default, rename = "inserter")]
    pub inserters: Vec<Inserter>,
}

/// `[agent]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agent {
    /// The name the agent announces to the dispatcher.
    pub name: String,
    /// Folder of the agent's durable state (its event journal).
    pub state_dir: PathBuf,
}

/// `[[printer]]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Printer {
    pub name: String,
    /// `ipp://host[:port]/path`.
    pub uri: String,
    /// The inserter that takes this printer's output, by name.
    pub inserter: Option<String>,
    pub snmp: Option<Snmp>,
    /// Capabilities announced to the dispatcher for routing.
    #[serde(default)]
    pub duplex: bool,
    #[serde(default)]
    pub colour: bool,
    /// Media it is loaded with (PWG names, e.g. `iso_a4_210x297mm`).
    #[serde(default)]
    pub media: Vec<String>,
    /// Rated speed in impressions per minute.
    pub speed_ppm: Option<u32>,
}

/// A printer's `snmp` table.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snmp {
    /// `host:port` (UDP; port 161 when left out).
    pub address: String,
    pub version: SnmpVersion,
    /// SNMPv2c community.
    pub community: Option<String>,
    /// SNMPv3 user name.
    pub user: Option<String>,
    pub auth_protocol: Option<AuthProtocol>,
    /// File holding the v3 authentication password.
    pub auth_key_file: Option<PathBuf>,
    pub priv_protocol: Option<PrivProtocol>,
    /// File holding the v3 privacy password.
    pub priv_key_file: Option<PathBuf>,
    /// SNMPv3 context name.
    #[serde(default)]
    pub context: String,
    /// Seconds between polls.
    #[serde(default = "default_poll")]
    pub poll_seconds: u32,
}

fn default_poll() -> u32 {
    5
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum SnmpVersion {
    #[serde(rename = "2c")]
    V2c,
    #[serde(rename = "3")]
    V3,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthProtocol {
    Md5,
    Sha,
    Sha256,
    Sha512,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrivProtocol {
    Des,
    Aes,
}

/// `[[inserter]]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inserter {
    pub name: String,
    /// Serial port (8N1).
    pub tty: Option<PathBuf>,
    #[serde(default = "default_baud")]
    pub baud: u32,
    /// `host:port` of an inserter on TCP.
    pub tcp: Option<String>,
}

fn default_baud() -> u32 {
    9600
}

/// How an inserter is reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link<'a> {
    Tty { path: &'a Path, baud: u32 },
    Tcp(&'a str),
}

impl Inserter {
    /// Its line (checked at load: exactly one is set).
    pub fn link(&self) -> Link<'_> {
        match (&self.tty, &self.tcp) {
            (Some(path), _) => Link::Tty {
                path,
                baud: self.baud,
            },
            (None, Some(addr)) => Link::Tcp(addr),
            (None, None) => unreachable!("checked when the file is read"),
        }
    }
}

/// What is wrong with a file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {msg}")]
    Read { file: String, msg: String },
    /// TOML syntax, an unknown key or a value of the wrong kind (with line and column).
    #[error("{file}: {msg}")]
    Syntax { file: String, msg: String },
    /// A value that does not fit the rest (the key path names it).
    #[error("{file}: {at}: {msg}")]
    Invalid {
        file: String,
        at: String,
        msg: String,
    },
}

impl Config {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        // A regular file of at most 1 MiB: never a FIFO, a device or a final symbolic link.
        let bytes = pressrun_engine::source::read_regular(
            path,
            MAX_CONFIG_BYTES,
            pressrun_engine::source::FileKind::Text,
        )
        .map_err(|e| ConfigError::Read {
            file: file.clone(),
            msg: e.to_string(),
        })?;
        let text = String::from_utf8(bytes).map_err(|_| ConfigError::Read {
            file: file.clone(),
            msg: "not UTF-8 text".into(),
        })?;
        Self::parse(&file, &text)
    }

    /// Parses and checks the text of a file named `file` (for messages).
    pub fn parse(file: &str, text: &str) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            file: file.into(),
            msg: e.to_string().trim_end().to_string(),
        })?;
        config.check().map_err(|(at, msg)| ConfigError::Invalid {
            file: file.into(),
            at,
            msg,
        })?;
        Ok(config)
    }

    fn check(&self) -> Result<(), (String, String)> {
        let name_ok = |n: &str| {
            !n.is_empty()
                && n.len() <= 64
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        };
        if !name_ok(&self.agent.name) {
            return Err(("agent.name".into(), name_rule(&self.agent.name)));
        }
        let mut names = BTreeSet::new();
        for (i, ins) in self.inserters.iter().enumerate() {
            let at = format!("inserter[{i}]");
            if !name_ok(&ins.name) {
                return Err((format!("{at}.name"), name_rule(&ins.name)));
            }
            if !names.insert(ins.name.as_str()) {
                return Err((
                    format!("{at}.name"),
                    format!("{:?} is listed twice", ins.name),
                ));
            }
            match (&ins.tty, &ins.tcp) {
                (Some(_), Some(_)) => {
                    return Err((at, "give either tty or tcp, not both".into()));
                }
                (None, None) => {
                    return Err((at, "give tty (a serial port) or tcp (host:port)".into()));
                }
                (None, Some(addr)) => {
                    host_port(addr, None).map_err(|m| (format!("{at}.tcp"), m))?
                }
                (Some(_), None) => {
                    if ins.baud == 0 {
                        return Err((format!("{at}.baud"), "must be above 0".into()));
                    }
                }
            }
        }
        let mut followed = BTreeSet::new();
        for (i, p) in self.printers.iter().enumerate() {
            let at = format!("printer[{i}]");
            if !name_ok(&p.name) {
                return Err((format!("{at}.name"), name_rule(&p.name)));
            }
            if !names.insert(p.name.as_str()) {
                return Err((
                    format!("{at}.name"),
                    format!(
                        "{:?} is already the name of a printer or an inserter",
                        p.name
                    ),
                ));
            }
            check_uri(&p.uri).map_err(|m| (format!("{at}.uri"), m))?;
            if let Some(ins) = &p.inserter {
                if !self.inserters.iter().any(|x| &x.name == ins) {
                    return Err((
                        format!("{at}.inserter"),
                        format!("no [[inserter]] is named {ins:?}"),
                    ));
                }
                if !followed.insert(ins.as_str()) {
                    return Err((
                        format!("{at}.inserter"),
                        format!("{ins:?} already follows another printer"),
                    ));
                }
            }
            if let Some(s) = &p.snmp {
                check_snmp(s).map_err(|(k, m)| (format!("{at}.snmp{k}"), m))?;
            }
        }
        Ok(())
    }
}

fn name_rule(n: &str) -> String {
    format!("{n:?}: a name is 1 to 64 letters, digits, '-', '_' or '.'")
}

/// Checks `host:port` (the port may be left out when `default` is given).
fn host_port(addr: &str, default: Option<u16>) -> Result<(), String> {
    let (host, port) = match addr.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') || h.starts_with('[') => (h, Some(p)),
        _ => (addr, None),
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(format!("{addr:?} is not host:port"));
    }
    match (port, default) {
        (Some(p), _) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p > 0)
            .map(|_| ())
            .ok_or_else(|| format!("{addr:?}: {p:?} is not a port")),
        (None, Some(_)) => Ok(()),
        (None, None) => Err(format!("{addr:?} has no port (host:port)")),
    }
}

fn check_uri(uri: &str) -> Result<(), String> {
    let Some(rest) = uri.strip_prefix("ipp://") else {
        return Err(if uri.starts_with("ipps://") {
            format!("{uri:?}: ipps:// (IPP over TLS) is not supported yet; use ipp://")
        } else {
            format!("{uri:?} is not an ipp:// URI")
        });
    };
    let (authority, _path) = rest.split_once('/').unwrap_or((rest, ""));
    host_port(authority, Some(631)).map_err(|m| format!("{uri:?}: {m}"))
}

fn check_snmp(s: &Snmp) -> Result<(), (String, String)> {
    host_port(&s.address, Some(161)).map_err(|m| (".address".into(), m))?;
    if s.poll_seconds == 0 {
        return Err((".poll_seconds".into(), "must be above 0".into()));
    }
    let v3_keys = s.user.is_some()
        || s.auth_protocol.is_some()
        || s.auth_key_file.is_some()
        || s.priv_protocol.is_some()
        || s.priv_key_file.is_some();
    match s.version {
        SnmpVersion::V2c => {
            if s.community.as_deref().is_none_or(str::is_empty) {
                return Err((".community".into(), "version 2c needs a community".into()));
            }
            if v3_keys {
                return Err((
                    String::new(),
                    "user, auth_* and priv_* belong to version 3, not 2c".into(),
                ));
            }
        }
        SnmpVersion::V3 => {
            if s.community.is_some() {
                return Err((
                    ".community".into(),
                    "version 3 has no community; give user".into(),
                ));
            }
            if s.user.as_deref().is_none_or(str::is_empty) {
                return Err((".user".into(), "version 3 needs a user".into()));
            }
            if s.auth_protocol.is_some() != s.auth_key_file.is_some() {
                return Err((
                    String::new(),
                    "auth_protocol and auth_key_file go together".into(),
                ));
            }
            if s.priv_protocol.is_some() != s.priv_key_file.is_some() {
                return Err((
                    String::new(),
                    "priv_protocol and priv_key_file go together".into(),
                ));
            }
            if s.priv_protocol.is_some() && s.auth_protocol.is_none() {
                return Err((
                    String::new(),
                    "privacy needs authentication (auth_protocol)".into(),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[agent]
name = "line-1"
state_dir = "/var/lib/pressrun/agent"

[[printer]]
name = "p1"
uri = "ipp://127.0.0.1:8631/ipp/print"
inserter = "i1"
duplex = true
media = ["iso_a4_210x297mm"]
snmp = { address = "127.0.0.1:1161", version = "2c", community = "printer" }

[[printer]]
name = "p2"
uri = "ipp://printer2/ipp/print"
snmp = { address = "printer2", version = "3", user = "pressrun", auth_protocol = "sha", auth_key_file = "/etc/pressrun/p2.auth", priv_protocol = "aes", priv_key_file = "/etc/pressrun/p2.priv", context = "printer" }

[[inserter]]
name = "i1"
tty = "/dev/ttyUSB0"

[[inserter]]
name = "i2"
tcp = "10.0.0.5:7001"
"#;

    fn bad(edit: impl Fn(&str) -> String) -> String {
        Config::parse("agent.toml", &edit(GOOD))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_good_file_reads() {
        let c = Config::parse("agent.toml", GOOD).unwrap();
        assert_eq!(c.printers.len(), 2);
        assert_eq!(c.inserters[0].baud, 9600);
        assert_eq!(
            c.inserters[0].link(),
            Link::Tty {
                path: Path::new("/dev/ttyUSB0"),
                baud: 9600
            }
        );
        assert_eq!(c.inserters[1].link(), Link::Tcp("10.0.0.5:7001"));
        let s = c.printers[1].snmp.as_ref().unwrap();
        assert_eq!((s.version, s.poll_seconds), (SnmpVersion::V3, 5));
    }

    #[test]
    fn mistakes_are_named_where_they_are() {
        let e = bad(|t| t.replace("duplex = true", "duplx = true"));
        assert!(
            e.contains("agent.toml") && e.contains("duplx") && e.contains("line"),
            "{e}"
        );
        let e = bad(|t| t.replace("inserter = \"i1\"", "inserter = \"i9\""));
        assert!(
            e.contains("printer[0].inserter: no [[inserter]] is named \"i9\""),
            "{e}"
        );
        let e = bad(|t| t.replace("name = \"p2\"", "name = \"i1\""));
        assert!(e.contains("printer[1].name"), "{e}");
        let e = bad(|t| t.replace("ipp://127", "ipps://127"));
        assert!(e.contains("not supported yet"), "{e}");
        let e = bad(|t| t.replace("ipp://printer2", "http://printer2"));
        assert!(e.contains("printer[1].uri"), "{e}");
        let e = bad(|t| t.replace("ipp://printer2/", "ipp://printer2:99999/"));
        assert!(e.contains("not a port"), "{e}");
        let e = bad(|t| t.replace(", community = \"printer\"", ""));
        assert!(e.contains("printer[0].snmp.community"), "{e}");
        let e = bad(|t| {
            t.replace(
                "version = \"2c\", community = \"printer\"",
                "version = \"2c\", community = \"c\", user = \"u\"",
            )
        });
        assert!(e.contains("belong to version 3"), "{e}");
        let e = bad(|t| t.replace(", auth_key_file = \"/etc/pressrun/p2.auth\"", ""));
        assert!(e.contains("go together"), "{e}");
        let e = bad(|t| t.replace("version = \"3\"", "version = \"1\""));
        assert!(e.contains("version") && e.contains("line"), "{e}");
        let e = bad(|t| {
            t.replace(
                "tcp = \"10.0.0.5:7001\"",
                "tcp = \"10.0.0.5:7001\"\ntty = \"/dev/ttyS1\"",
            )
        });
        assert!(e.contains("inserter[1]: give either tty or tcp"), "{e}");
        let e = bad(|t| t.replace("tcp = \"10.0.0.5:7001\"", ""));
        assert!(e.contains("inserter[1]: give tty"), "{e}");
        let e = bad(|t| t.replace("tcp = \"10.0.0.5:7001\"", "tcp = \"10.0.0.5\""));
        assert!(e.contains("has no port"), "{e}");
        let e = bad(|t| {
            format!("{t}\n[[printer]]\nname = \"p3\"\nuri = \"ipp://x/\"\ninserter = \"i1\"\n")
        });
        assert!(e.contains("already follows another printer"), "{e}");
        let e = bad(|t| t.replace("name = \"line-1\"", "name = \"line 1\""));
        assert!(e.contains("agent.name"), "{e}");
    }

    #[test]
    fn only_a_small_regular_file_is_read() {
        let e = Config::load(Path::new("/dev/zero"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/dev/zero: "), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("agent.toml");
        std::fs::write(&big, vec![b'#'; (MAX_CONFIG_BYTES + 1) as usize]).unwrap();
        assert!(Config::load(&big).is_err());
    }
}
