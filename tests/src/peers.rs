//! The device peers the printer-agent tests start on 127.0.0.1: ippeveprinter with
//! Pressrun's print command (`tests/peers/start-ippeveprinter`) and snmpsim playing a
//! printer (`tests/peers/start-snmpsim`). Each is stopped when dropped, also when a test
//! panics. A peer that cannot start fails the test saying what to install.

use std::collections::BTreeMap;
use std::fs;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::root;

/// ippeveprinter with the Pressrun print command, stopped when dropped.
pub struct Printer {
    pub dir: PathBuf,
    pub uri: String,
}

impl Printer {
    pub fn start(dir: &Path) -> Self {
        Self::start_with_ms(dir, 10)
    }

    /// The same with `ms` milliseconds per impression.
    pub fn start_with_ms(dir: &Path, ms: u32) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let out = Command::new(root().join("tests/peers/start-ippeveprinter"))
            .arg(dir)
            .arg(port.to_string())
            .env("PRESSRUN_PEER_MS", ms.to_string())
            .output()
            .expect("tests/peers/start-ippeveprinter runs (scripts/test.sh installs cups-ipp-utils and dbus-daemon)");
        assert!(
            out.status.success(),
            "ippeveprinter did not start: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let uri = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("URI=").map(str::to_string))
            .expect("the script prints URI=");
        Self {
            dir: dir.to_path_buf(),
            uri,
        }
    }

    /// The ground truth: impressions put out, per IPP job id.
    pub fn printed(&self) -> BTreeMap<String, u64> {
        let mut per_job = BTreeMap::new();
        let log = fs::read_to_string(self.dir.join("printed.log")).unwrap_or_default();
        for line in log.lines() {
            let job = line
                .split(' ')
                .find_map(|w| w.strip_prefix("job="))
                .unwrap()
                .to_string();
            *per_job.entry(job).or_insert(0) += 1;
        }
        per_job
    }
}

impl Drop for Printer {
    fn drop(&mut self) {
        let _ = Command::new(root().join("tests/peers/start-ippeveprinter"))
            .arg("stop")
            .arg(&self.dir)
            .output();
    }
}

const INSTALL: &str = "tests/peers/start-snmpsim needs snmpsim-command-responder \
    (pip install snmpsim==1.2.2 pysmi cryptography) and snmpget (apt-get install snmp); \
    scripts/test.sh installs them";

/// snmpsim playing a printer; stopped when dropped, also when a test panics.
pub struct Snmpsim {
    pub dir: PathBuf,
    pub port: u16,
    pub pid: u32,
}

/// A UDP port on 127.0.0.1 that was free a moment ago.
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Snmpsim {
    /// Starts snmpsim on a free port with its state in `dir`; `seed` writes value files
    /// (and extra recordings) first.
    pub fn start(dir: &Path, seed: impl Fn(&Path)) -> Self {
        seed(dir);
        let script = root().join("tests/peers/start-snmpsim");
        for attempt in 1..=3 {
            let port = free_udp_port();
            let out = Command::new(&script)
                .arg(dir)
                .arg(port.to_string())
                .output()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            if out.status.success() {
                let pid_file = std::fs::read_to_string(dir.join("snmpsim.pid"))
                    .expect("start-snmpsim writes STATE_DIR/snmpsim.pid");
                let pid: u32 = pid_file.trim().parse().expect("a pid in snmpsim.pid");
                assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), pid_file.trim());
                return Self {
                    dir: dir.to_path_buf(),
                    port,
                    pid,
                };
            }
            // Another process took the port between the probe and the start: try another.
            if !stderr.contains("already in use") || attempt == 3 {
                panic!(
                    "snmpsim did not start ({INSTALL}): {}{stderr}",
                    String::from_utf8_lossy(&out.stdout)
                );
            }
        }
        unreachable!()
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `printer-state DIR NAME VALUE` (`-` removes the value).
    pub fn set(&self, name: &str, value: &str) {
        printer_state(&self.dir, name, value);
    }

    pub fn signal(&self, signal: &str) {
        let out = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid.to_string())
            .output()
            .expect("kill runs");
        assert!(out.status.success(), "kill -{signal} {}", self.pid);
    }
}

impl Drop for Snmpsim {
    fn drop(&mut self) {
        // A stopped process keeps SIGTERM pending: continue it first.
        for signal in ["-CONT", "-TERM"] {
            let _ = Command::new("kill")
                .arg(signal)
                .arg(self.pid.to_string())
                .output();
        }
        // It takes 1-2 s to exit after SIGTERM (measured).
        let deadline = Instant::now() + Duration::from_secs(10);
        while !gone(self.pid) {
            if Instant::now() > deadline {
                let _ = Command::new("kill")
                    .arg("-KILL")
                    .arg(self.pid.to_string())
                    .output();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The process has exited (a zombie nobody reaps counts as exited).
pub fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

pub fn printer_state(dir: &Path, name: &str, value: &str) {
    let script = root().join("tests/peers/printer-state");
    let out = Command::new(&script)
        .arg(dir)
        .arg(name)
        .arg(value)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "printer-state {name} {value}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
