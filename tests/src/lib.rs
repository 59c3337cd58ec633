//! Helpers for the end-to-end tests in `tests/tests/`: locate the real binaries, run them,
//! and inspect PDFs with qpdf and poppler (missing tools fail the test, never skip it).

pub mod peers;

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::Duration;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Path of a workspace binary built by `cargo build --workspace --bins`.
pub fn bin(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    let path = target.join("debug").join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (`cargo build --workspace --bins`; scripts/test.sh does it)",
        path.display()
    );
    path
}

/// Runs a command and returns its output.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs an external tool that the tests need; fails loudly if it is not installed.
pub fn tool(name: &str, args: &[&str]) -> Output {
    Command::new(name)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{name} is required by this test but cannot run ({e}): install it (scripts/test.sh installs qpdf and poppler-utils)"))
}

/// Asserts that `qpdf --check` accepts a PDF.
pub fn qpdf_check(pdf: &Path) {
    let out = tool("qpdf", &["--check", pdf.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "qpdf --check {} failed:\n{}{}",
        pdf.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Extracts text with pdftotext (pages `first..=last`, 1-based, or all).
pub fn pdftotext(pdf: &Path, pages: Option<(u32, u32)>) -> String {
    let mut args = vec!["-layout".to_string()];
    if let Some((f, l)) = pages {
        args.extend(["-f".into(), f.to_string(), "-l".into(), l.to_string()]);
    }
    args.extend([pdf.to_str().unwrap().to_string(), "-".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = tool("pdftotext", &args);
    assert!(
        out.status.success(),
        "pdftotext failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 text")
}

/// Page count from pdfinfo.
pub fn page_count(pdf: &Path) -> u32 {
    let out = tool("pdfinfo", &[pdf.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "pdfinfo failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Pages:").map(|v| v.trim().parse().unwrap()))
        .expect("pdfinfo prints Pages:")
}

/// Reads a JSON Lines file.
pub fn jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).expect("valid JSON line"))
        .collect()
}

/// Starts a server process and returns it with the address from its first output line
/// (`<prefix><address>`), as `renderer serve` and `dispatcher serve` print it.
pub fn spawn_listening(cmd: &mut Command, prefix: &str) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .expect("first line");
    let addr = line
        .trim()
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    (child, addr)
}

/// A renderer node process, killed when dropped.
pub struct NodeProc {
    pub child: Child,
    pub addr: String,
}

impl NodeProc {
    pub fn start() -> NodeProc {
        Self::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> NodeProc {
        let (child, addr) = spawn_listening(
            Command::new(bin("renderer"))
                .args([
                    "serve",
                    "--listen",
                    "127.0.0.1:0",
                    "--threads",
                    "1",
                    "--drain-seconds",
                    "2",
                ])
                .args(extra),
            "renderer listening on ",
        );
        NodeProc { child, addr }
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} failed");
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn statements(dir: &Path, n: u64) -> PathBuf {
    let out = run(Command::new(bin("renderer")).args([
        "example-data",
        "statement",
        "--records",
        &n.to_string(),
        "--seed",
        "5",
    ]));
    assert!(out.status.success());
    let mut text = String::from_utf8(out.stdout).unwrap();
    // Two bad records: counts must still reconcile.
    let mut lines: Vec<&str> = text.lines().collect();
    lines[3] = "{ not json";
    lines[17] = "{\"customer\": {}}";
    text = lines.join("\n") + "\n";
    let path = dir.join("statements.jsonl");
    fs::write(&path, text).unwrap();
    path
}

pub fn embedded(dir: &Path, data: &Path) -> PathBuf {
    let out = dir.join("embedded");
    let res = run(Command::new(bin("renderer"))
        .args([
            "render",
            "--quiet",
            "--run-date",
            "2026-11-23",
            "--batch-records",
            "10",
            "--threads",
            "2",
            "--template",
        ])
        .arg(root().join("examples/statement"))
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(&out));
    assert_eq!(
        res.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    out
}

/// `dispatcher run` of the example statement in shards of 10 records.
pub fn dispatcher(data: &Path, out: &Path, nodes: &[&str], extra: &[&str]) -> Command {
    dispatcher_batch(data, out, nodes, 10, extra)
}

/// `dispatcher run` of the example statement in shards of `batch` records.
pub fn dispatcher_batch(
    data: &Path,
    out: &Path,
    nodes: &[&str],
    batch: u64,
    extra: &[&str],
) -> Command {
    let mut cmd = Command::new(bin("dispatcher"));
    cmd.args([
        "run",
        "--quiet",
        "--log",
        "info",
        "--run-date",
        "2026-11-23",
        "--batch-records",
        &batch.to_string(),
        "--template",
    ])
    .arg(root().join("examples/statement"))
    .arg("--data")
    .arg(data)
    .arg("--out")
    .arg(out)
    .args(extra);
    for n in nodes {
        cmd.args(["--renderer", n]);
    }
    cmd
}

/// Every output file, by name, except the run's own bookkeeping.
pub fn outputs(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for sub in ["", "documents"] {
        let Ok(entries) = fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for e in entries {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().to_string();
            if e.file_type().unwrap().is_file()
                && !name.starts_with("run-state")
                && !["summary.json", "run.json", "run.lock", "commits.jsonl"]
                    .contains(&name.as_str())
            {
                files.insert(format!("{sub}/{name}"), fs::read(e.path()).unwrap());
            }
        }
    }
    files
}

pub fn assert_same_output(a: &Path, b: &Path) {
    let (fa, fb) = (outputs(a), outputs(b));
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    for (name, bytes) in &fa {
        assert!(
            bytes == &fb[name],
            "{name} differs between {} and {}",
            a.display(),
            b.display()
        );
    }
}

pub fn wait_for_lines(path: &Path, n: usize, limit: Duration) {
    // Polls every 20 ms, giving up after `limit` worth of polls.
    for _ in 0..(limit.as_millis() / 20).max(1) {
        if fs::read_to_string(path)
            .map(|s| s.lines().count() >= n)
            .unwrap_or(false)
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{} never reached {n} lines", path.display());
}

/// GETs /metrics over plain HTTP/1.1, retrying until the endpoint answers.
pub fn scrape(addr: &str) -> String {
    for _ in 0..200 {
        if let Ok(mut conn) = std::net::TcpStream::connect(addr) {
            conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            write!(
                conn,
                "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            let mut body = String::new();
            let _ = conn.read_to_string(&mut body);
            if body.starts_with("HTTP/1.1 200") {
                return body;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no metrics at {addr}");
}

/// Checks a Prometheus exposition with `promtool check metrics` (Debian `prometheus`);
/// fails loudly when promtool is missing or finds a problem.
pub fn promtool_check(exposition: &str) {
    let body = exposition
        .split_once("\r\n\r\n")
        .map_or(exposition, |(_, b)| b);
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("promtool is required by this test but cannot run ({e}): install the Debian package prometheus (scripts/test.sh does)"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- exposition ---\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A free TCP port on 127.0.0.1 (for servers that take an address rather than port 0).
pub fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// A self-signed certificate for `localhost` and its key, written as `DIR/cert.pem` and
/// `DIR/key.pem` (for the TLS tests).
pub fn localhost_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert_pem, key_pem) = (dir.join("cert.pem"), dir.join("key.pem"));
    fs::write(&cert_pem, cert.pem()).unwrap();
    fs::write(&key_pem, signing_key.serialize_pem()).unwrap();
    (cert_pem, key_pem)
}
