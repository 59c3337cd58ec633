//! The architecture as rules the build can check: the composition engine is a synchronous
//! library with no async runtime, RPC, wire-format or command-line dependency (STYLE.md,
//! "one engine crate"); the gRPC node, the CLIs and the wire conversions sit on top of it.

use std::process::Command;

use pressrun_tests::root;

/// Every crate `pressrun-engine` links, directly or not (normal dependencies only).
fn engine_dependencies() -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(root())
        .args([
            "tree",
            "-p",
            "pressrun-engine",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
            "--offline",
        ])
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

#[test]
fn the_engine_has_no_runtime_rpc_or_cli_dependency() {
    let deps = engine_dependencies();
    assert!(
        deps.iter().any(|d| d == "rustybuzz"),
        "the dependency listing looks wrong: {deps:?}"
    );
    for banned in [
        "tokio",
        "tonic",
        "prost",
        "pressrun-proto",
        "clap",
        "hyper",
        "anyhow",
    ] {
        assert!(
            !deps.iter().any(|d| d == banned),
            "pressrun-engine must not depend on {banned}: move that code to renderer/node or the dispatcher"
        );
    }
}
