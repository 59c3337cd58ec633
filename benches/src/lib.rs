//! Shared helpers for Pressrun benchmarks: the example templates and records.

use std::path::{Path, PathBuf};

use pressrun_engine::example_data::{self, Example};
use pressrun_engine::template::{BindParams, CompileOptions, Template, compile};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Compiles an example template (`statement`, `insurance-letter`).
pub fn example_template(name: &str) -> Template {
    match compile(
        &root().join("examples").join(name),
        &CompileOptions::default(),
    ) {
        Ok(c) => c.template,
        Err(d) => panic!("example {name} does not compile:\n{d}"),
    }
}

/// Example statement records.
pub fn statements(n: u64, seed: u64) -> Vec<serde_json::Value> {
    (0..n)
        .map(|i| example_data::record(Example::Statement, seed, i))
        .collect()
}

/// Bind parameters for record `n`.
pub fn params(n: u64) -> BindParams {
    BindParams {
        record_number: n,
        run_date: "2026-11-23".into(),
    }
}

/// Peak resident set size of this process in KiB (VmHWM), where /proc is available.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// CPU time (user + system) of this process in seconds, where /proc is available.
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start at state (field 3).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // Linux reports clock ticks of USER_HZ, 100 on every architecture it runs on.
    Some((utime + stime) / 100.0)
}

/// Reads a production profile.
pub fn profile(path: &Path) -> pressrun_engine::production::Profile {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    pressrun_engine::production::Profile::parse(&path.display().to_string(), &text)
        .unwrap_or_else(|e| panic!("{e}"))
}
