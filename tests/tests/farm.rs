//! End-to-end: the dispatcher sharding runs over real renderer node processes on 127.0.0.1.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use pressrun_tests::{
    NodeProc, assert_same_output, dispatcher, embedded, jsonl, localhost_cert, promtool_check, run,
    scrape, statements, wait_for_lines,
};

#[test]
fn three_nodes_give_the_embedded_bytes_and_reconcile() {
    let dir = tempfile::tempdir().unwrap();
    let data = statements(dir.path(), 80);
    let reference = embedded(dir.path(), &data);
    let nodes: Vec<NodeProc> = (0..3).map(|_| NodeProc::start()).collect();
    let addrs: Vec<&str> = nodes.iter().map(|n| n.addr.as_str()).collect();
    // One node by name: names resolve to every address they stand for (a headless service).
    let by_name = addrs[2].replace("127.0.0.1", "localhost");
    let out = dir.path().join("farm");
    let res = run(&mut dispatcher(
        &data,
        &out,
        &[addrs[0], addrs[1], &by_name],
        &[],
    ));
    let stdout = String::from_utf8_lossy(&res.stdout);
    assert_eq!(
        res.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert!(
        stdout.contains("records 80 · documents 78") && stdout.contains("rejected 2"),
        "{stdout}"
    );
    assert_same_output(&reference, &out);
    let exc = jsonl(&out.join("exceptions.jsonl"));
    assert_eq!(
        exc.iter()
            .map(|e| e["line"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        vec![4, 18]
    );
    // Work was spread over the nodes.
    let log = String::from_utf8_lossy(&res.stderr);
    let used = addrs
        .iter()
        .filter(|a| log.contains(&format!("node={a}")) || log.contains(&format!("node=\"{a}\"")))
        .count();
    assert!(used >= 2, "shards went to {used} node(s):\n{log}");
}

#[test]
fn a_renderer_killed_mid_run_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = statements(dir.path(), 160);
    let reference = embedded(dir.path(), &data);
    let nodes: Vec<NodeProc> = (0..3).map(|_| NodeProc::start()).collect();
    let addrs: Vec<&str> = nodes.iter().map(|n| n.addr.as_str()).collect();
    let out = dir.path().join("farm");
    let mut child = dispatcher(&data, &out, &addrs, &["--shard-timeout-seconds", "20"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_lines(&out.join("documents.jsonl"), 10, Duration::from_secs(60));
    nodes[1].signal("-KILL");
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(3), "{err}");
    assert_same_output(&reference, &out);
    let index = jsonl(&out.join("documents.jsonl"));
    let exceptions = jsonl(&out.join("exceptions.jsonl"));
    assert_eq!(
        index.len() + exceptions.len(),
        160,
        "every record exactly once"
    );
}

#[test]
fn a_killed_dispatcher_resumes_without_redoing_committed_shards() {
    let dir = tempfile::tempdir().unwrap();
    let data = statements(dir.path(), 200);
    let reference = embedded(dir.path(), &data);
    let out = dir.path().join("resumed");
    let mut first = dispatcher(&data, &out, &[], &["--threads", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_lines(&out.join("documents.jsonl"), 40, Duration::from_secs(120));
    first.kill().unwrap();
    first.wait().unwrap();
    let res = run(&mut dispatcher(&data, &out, &[], &["--threads", "1"]));
    let log = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(3), "{log}");
    assert!(
        log.contains("resuming"),
        "the second run did not resume:\n{log}"
    );
    let recommitted = log.matches("shard committed").count();
    assert!(
        recommitted < 20,
        "the second run committed {recommitted} of 20 shards: committed ones were redone"
    );
    assert_same_output(&reference, &out);
}

#[test]
fn hung_and_garbage_nodes_are_timed_out_and_their_work_moved() {
    let dir = tempfile::tempdir().unwrap();
    let data = statements(dir.path(), 160);
    let reference = embedded(dir.path(), &data);
    // A "node" that answers every connection with garbage.
    let garbage = TcpListener::bind("127.0.0.1:0").unwrap();
    let garbage_addr = garbage.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for conn in garbage.incoming().flatten() {
            let mut conn = conn;
            let _ = conn.write_all(b"HTTP/1.0 500 nonsense\r\n\r\n\x00\xff\x13garbage");
        }
    });
    let good = NodeProc::start();
    let hung = NodeProc::start();
    let out = dir.path().join("farm");
    let metrics_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let mut child = dispatcher(
        &data,
        &out,
        &[&good.addr, &hung.addr, &garbage_addr],
        &["--stall-seconds", "2", "--metrics-listen", &metrics_addr],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // Once work flows, freeze one node: it holds its shards and never answers.
    wait_for_lines(&out.join("documents.jsonl"), 1, Duration::from_secs(60));
    hung.signal("-STOP");
    // While the run waits for the hung node, the metrics endpoint answers, and promtool
    // accepts what it says.
    let metrics = scrape(&metrics_addr);
    promtool_check(&metrics);
    for name in [
        "pressrun_pages_rendered",
        "pressrun_shards_committed_total",
        "pressrun_node_healthy",
        "pressrun_shard_seconds",
        "pressrun_shards_in_flight",
    ] {
        assert!(
            metrics.contains(name),
            "{name} missing from /metrics:\n{metrics}"
        );
    }
    let status = child.wait().unwrap();
    hung.signal("-CONT");
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(3), "{err}");
    assert_same_output(&reference, &out);
    assert!(
        err.contains(&garbage_addr),
        "the garbage node was not reported:\n{err}"
    );
    assert!(
        err.lines()
            .any(|l| l.contains("stalled") && l.contains(&hung.addr)),
        "the hung node was not reported stalled:\n{err}"
    );
}

#[test]
fn tls_and_a_bearer_token_guard_the_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let data = statements(dir.path(), 30);
    let reference = embedded(dir.path(), &data);
    let (cert_pem, key_pem) = localhost_cert(dir.path());
    let (token, wrong) = (dir.path().join("token"), dir.path().join("wrong"));
    fs::write(&token, "s3cret-token\n").unwrap();
    fs::write(&wrong, "guess").unwrap();
    let p = |p: &PathBuf| p.to_str().unwrap().to_string();
    let node = NodeProc::start_with(&[
        "--tls-cert",
        &p(&cert_pem),
        "--tls-key",
        &p(&key_pem),
        "--token-file",
        &p(&token),
    ]);
    // Addressed by the name its certificate carries.
    let by_name = node.addr.replace("127.0.0.1", "localhost");

    let out = dir.path().join("tls");
    let res = run(&mut dispatcher(
        &data,
        &out,
        &[&by_name],
        &["--tls-ca", &p(&cert_pem), "--token-file", &p(&token)],
    ));
    assert_eq!(
        res.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert_same_output(&reference, &out);

    let refused = |extra: &[&str], what: &str| {
        let out = dir.path().join(what);
        let res = run(&mut dispatcher(&data, &out, &[&by_name], extra));
        let err = String::from_utf8_lossy(&res.stderr).to_string();
        assert_eq!(res.status.code(), Some(1), "{what}: {err}");
        assert!(
            err.contains("no renderer node is reachable"),
            "{what}: {err}"
        );
    };
    refused(
        &["--tls-ca", &p(&cert_pem), "--token-file", &p(&wrong)],
        "wrong-token",
    );
    refused(&["--tls-ca", &p(&cert_pem)], "no-token");
    refused(&["--token-file", &p(&token)], "plain-text");
}

#[test]
fn sigterm_drains_in_flight_shards_and_the_run_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let data = statements(dir.path(), 600);
    let reference = embedded(dir.path(), &data);
    let nodes: Vec<NodeProc> = (0..2).map(|_| NodeProc::start()).collect();
    let addrs: Vec<&str> = nodes.iter().map(|n| n.addr.as_str()).collect();
    let out = dir.path().join("drained");
    let mut child = dispatcher(&data, &out, &addrs, &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_lines(&out.join("documents.jsonl"), 20, Duration::from_secs(60));
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    if status.code() == Some(3) {
        // The run finished before the signal arrived: nothing to drain.
        assert_same_output(&reference, &out);
        return;
    }
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("stopped by a signal"), "{err}");
    // Only whole shards (10 records each) were committed.
    let committed =
        jsonl(&out.join("documents.jsonl")).len() + jsonl(&out.join("exceptions.jsonl")).len();
    assert_eq!(
        committed % 10,
        0,
        "{committed} records committed: a shard was cut"
    );
    let res = run(&mut dispatcher(&data, &out, &addrs, &[]));
    assert_eq!(
        res.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert_same_output(&reference, &out);
}
