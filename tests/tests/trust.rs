//! End-to-end: runs that can be trusted — a run owns its folder, commits durably, repairs
//! damage on resume, survives being killed at random, and the farm renders whatever the
//! in-process run renders; nodes give up shards whose caller went away; tokens, run dates
//! and empty inputs are checked; every metrics endpoint passes promtool.

use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use pressrun_tests::{
    NodeProc, assert_same_output, bin, dispatcher, dispatcher_batch, embedded, free_addr, jsonl,
    outputs, promtool_check, root, run, scrape, spawn_listening, statements, wait_for_lines,
};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// `renderer render` of the example statement into `out`, with extra flags.
fn render(data: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    run(Command::new(bin("renderer"))
        .args([
            "render",
            "--quiet",
            "--run-date",
            "2026-11-23",
            "--batch-records",
            "10",
            "--template",
        ])
        .arg(root().join("examples/statement"))
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(out)
        .args(extra))
}

#[test]
fn a_folder_belongs_to_one_run_and_replace_leaves_nothing_stale() {
    let dir = tempfile::tempdir().unwrap();
    let data = statements(dir.path(), 60);
    let out = dir.path().join("out");
    assert_eq!(render(&data, &out, &[]).status.code(), Some(3));
    // The same command again: the folder holds a finished run.
    let again = render(&data, &out, &[]);
    assert_eq!(again.status.code(), Some(6), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("finished run"),
        "{}",
        stderr(&again)
    );
    // However the folder is spelled.
    let spelled = format!("{}/./out/", dir.path().display());
    assert_eq!(
        render(&data, Path::new(&spelled), &[]).status.code(),
        Some(6)
    );
    // A smaller run into the folder of the bigger one.
    let small = render(&data, &out, &["--limit", "20"]);
    assert_eq!(small.status.code(), Some(6));
    assert!(stderr(&small).contains("another run"), "{}", stderr(&small));
    let replaced = render(&data, &out, &["--limit", "20", "--replace"]);
    assert_eq!(replaced.status.code(), Some(3), "{}", stderr(&replaced));
    let prints: Vec<String> = outputs(&out)
        .into_keys()
        .filter(|n| n.contains("print-"))
        .collect();
    assert_eq!(
        prints,
        ["/print-00001.pdf", "/print-00002.pdf"],
        "stale print files"
    );
    let index =
        jsonl(&out.join("documents.jsonl")).len() + jsonl(&out.join("exceptions.jsonl")).len();
    assert_eq!(index, 20);
}

#[test]
fn two_dispatchers_on_one_folder_the_second_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = statements(dir.path(), 800);
    let out = dir.path().join("out");
    let mut first = dispatcher(&data, &out, &[], &["--threads", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_lines(&out.join("documents.jsonl"), 1, Duration::from_secs(60));
    let second = run(&mut dispatcher(&data, &out, &[], &["--threads", "1"]));
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first run ended before the second started: give it more records"
    );
    assert_eq!(second.status.code(), Some(6), "{}", stderr(&second));
    assert!(
        stderr(&second).contains("in use by another run"),
        "{}",
        stderr(&second)
    );
    let status = first.wait().unwrap();
    assert_eq!(status.code(), Some(3));
    // Not even the first one's output was touched by the second.
    let index =
        jsonl(&out.join("documents.jsonl")).len() + jsonl(&out.join("exceptions.jsonl")).len();
    assert_eq!(index, 800);
}

#[test]
fn a_power_cut_then_the_same_command_repairs_and_completes() {
    let dir = tempfile::tempdir().unwrap();
    let data = statements(dir.path(), 60);
    let reference = embedded(dir.path(), &data);
    let out = dir.path().join("cut");
    let first = run(&mut dispatcher(&data, &out, &[], &[]));
    assert_eq!(first.status.code(), Some(3), "{}", stderr(&first));
    // As after a power cut mid-run: the run never recorded its end, the index lost its
    // tail, one print file is empty, one is zeroed, one is gone.
    let manifest = fs::read_to_string(out.join("run.json")).unwrap();
    fs::write(
        out.join("run.json"),
        manifest.replace("\"succeeded\"", "\"running\""),
    )
    .unwrap();
    let docs = out.join("documents.jsonl");
    let len = fs::metadata(&docs).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&docs)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    fs::write(out.join("print-00001.pdf"), b"").unwrap();
    let p2 = out.join("print-00002.pdf");
    fs::write(&p2, vec![0u8; fs::metadata(&p2).unwrap().len() as usize]).unwrap();
    fs::remove_file(out.join("print-00006.pdf")).unwrap();
    let again = run(&mut dispatcher(&data, &out, &[], &[]));
    assert_eq!(again.status.code(), Some(3), "{}", stderr(&again));
    let err = stderr(&again);
    assert!(err.contains("repaired: print-00001.pdf"), "{err}");
    assert!(err.contains("repaired: print-00002.pdf"), "{err}");
    assert!(err.contains("documents.jsonl"), "{err}");
    assert_same_output(&reference, &out);
}

#[test]
fn a_dispatcher_killed_ten_times_at_random_still_gives_the_embedded_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let data = statements(dir.path(), 1500);
    let reference = embedded(dir.path(), &data);
    let nodes: Vec<NodeProc> = (0..2).map(|_| NodeProc::start()).collect();
    let addrs: Vec<&str> = nodes.iter().map(|n| n.addr.as_str()).collect();
    let out = dir.path().join("killed");
    let committed = || {
        fs::read_to_string(out.join("commits.jsonl"))
            .map(|j| j.lines().count())
            .unwrap_or(0)
    };
    // Deterministic "random" moments: a small linear congruential sequence. Each kill
    // comes at a random moment after the restarted run has committed something new, so
    // every kill interrupts a resumed run that is working.
    let mut seed: u64 = 0x5eed;
    let mut seen = Vec::new();
    for _ in 0..10 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let before = committed();
        let mut child = dispatcher(&data, &out, &addrs, &[])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..1200 {
            if committed() > before || child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        std::thread::sleep(Duration::from_millis((seed >> 33) % 400));
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before kill {}: make it longer",
            seen.len() + 1
        );
        child.kill().unwrap();
        child.wait().unwrap();
        seen.push(committed());
    }
    assert!(
        seen.windows(2).all(|w| w[1] > w[0]) && seen[0] > 0,
        "every restart committed more before it was killed: {seen:?}"
    );
    let last = run(&mut dispatcher(&data, &out, &addrs, &[]));
    assert_eq!(last.status.code(), Some(3), "{}", stderr(&last));
    assert_same_output(&reference, &out);
    assert_eq!(committed(), 150, "every shard committed exactly once");
}

#[test]
fn a_shard_larger_than_a_grpc_message_renders_on_the_farm() {
    let dir = tempfile::tempdir().unwrap();
    let data = statements(dir.path(), 20);
    // Every record carries 3 MB the template does not print: one shard of ten is 30 MB,
    // far above one gRPC message (4 MiB by default).
    let pad = "x".repeat(3 << 20);
    let text: String = fs::read_to_string(&data)
        .unwrap()
        .lines()
        .map(|l| match l.strip_prefix('{') {
            Some(rest) if l.starts_with("{\"") => format!("{{\"padding\":\"{pad}\",{rest}\n"),
            _ => format!("{l}\n"),
        })
        .collect();
    fs::write(&data, text).unwrap();
    let reference = embedded(dir.path(), &data);
    let node = NodeProc::start();
    let out = dir.path().join("farm");
    let res = run(&mut dispatcher(&data, &out, &[&node.addr], &[]));
    assert_eq!(res.status.code(), Some(3), "{}", stderr(&res));
    assert_same_output(&reference, &out);
}

#[test]
fn a_node_gives_up_a_shard_whose_caller_went_away() {
    let dir = tempfile::tempdir().unwrap();
    let data = statements(dir.path(), 200);
    let metrics = free_addr();
    let node = NodeProc::start_with(&["--metrics-listen", &metrics]);
    let out = dir.path().join("out");
    // One shard of 200 records: the dispatcher is killed while the node renders it.
    let mut child = dispatcher_batch(&data, &out, &[&node.addr], 200, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let cancelled = |m: &str| {
        m.lines()
            .find_map(|l| l.strip_prefix("pressrun_node_shards_cancelled_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Wait until the node has the shard in flight.
    for _ in 0..600 {
        let m = scrape(&metrics);
        if m.lines().any(|l| l == "pressrun_node_shards_in_flight 1") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let mut last = String::new();
    for _ in 0..600 {
        last = scrape(&metrics);
        if cancelled(&last) >= 1.0
            && last
                .lines()
                .any(|l| l == "pressrun_node_shards_in_flight 0")
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        cancelled(&last) >= 1.0,
        "the node never gave up the dead caller's shard:\n{last}"
    );
    assert!(
        last.lines()
            .any(|l| l == "pressrun_node_shards_in_flight 0"),
        "the in-flight gauge did not return to 0:\n{last}"
    );
    promtool_check(&last);
    // The restarted dispatcher finds the node free, not busy with the dead run.
    let res = run(&mut dispatcher_batch(&data, &out, &[&node.addr], 200, &[]));
    assert_eq!(res.status.code(), Some(3), "{}", stderr(&res));
}

#[test]
fn blank_tokens_and_unauthenticated_exposed_listeners_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let blank = dir.path().join("blank");
    fs::write(&blank, "  \n").unwrap();
    for args in [
        vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--token-file",
            blank.to_str().unwrap(),
        ],
        vec!["serve", "--listen", "0.0.0.0:0"],
    ] {
        let mut child = Command::new(bin("renderer"))
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(1), "{args:?} started: {err}");
        assert!(
            err.contains("blank") || err.contains("without a bearer token"),
            "{err}"
        );
    }
    let empty_env = Command::new(bin("renderer"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("PRESSRUN_TOKEN", "")
        .output()
        .unwrap();
    assert_eq!(empty_env.status.code(), Some(1));
    let dispatcher_blank = run(Command::new(bin("dispatcher")).args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--state",
        dir.path().join("s.sqlite").to_str().unwrap(),
        "--listen-token-file",
        blank.to_str().unwrap(),
    ]));
    assert_eq!(
        dispatcher_blank.status.code(),
        Some(1),
        "{}",
        stderr(&dispatcher_blank)
    );
}

#[test]
fn run_dates_empty_inputs_and_overlong_records_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let data = statements(dir.path(), 20);
    let res = run(Command::new(bin("renderer"))
        .args(["render", "--run-date", "2026-13-45", "--template"])
        .arg(root().join("examples/statement"))
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(dir.path().join("x")));
    assert_eq!(res.status.code(), Some(2), "{}", stderr(&res));
    assert!(
        stderr(&res).contains("not a calendar date"),
        "{}",
        stderr(&res)
    );
    let empty = dir.path().join("empty.jsonl");
    fs::write(&empty, "\n\n").unwrap();
    let res = render(&empty, &dir.path().join("e"), &[]);
    assert_eq!(res.status.code(), Some(5), "{}", stderr(&res));
    assert!(stderr(&res).contains("no records"), "{}", stderr(&res));
    // A record over --max-record-bytes is rejected by line, and the run goes on.
    let mut lines: Vec<String> = fs::read_to_string(&data)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let mut v: serde_json::Value = serde_json::from_str(&lines[7]).unwrap();
    v["padding"] = serde_json::Value::String("p".repeat(50_000));
    lines[7] = v.to_string();
    fs::write(&data, lines.join("\n") + "\n").unwrap();
    let out = dir.path().join("long");
    let res = render(&data, &out, &["--max-record-bytes", "20000"]);
    assert_eq!(res.status.code(), Some(3), "{}", stderr(&res));
    let exceptions = jsonl(&out.join("exceptions.jsonl"));
    let long = exceptions
        .iter()
        .find(|e| e["record"] == 8)
        .expect("record 8 rejected");
    assert_eq!(long["line"], 8);
    assert!(
        long["reason"]
            .as_str()
            .unwrap()
            .contains("more than the 20000 bytes"),
        "{long}"
    );
    assert_eq!(
        jsonl(&out.join("documents.jsonl")).len() + exceptions.len(),
        20
    );
}

#[test]
fn the_served_run_reports_shard_counts_and_its_metrics_pass_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let data = statements(dir.path(), 40);
    let metrics = free_addr();
    let (mut server, addr) = spawn_listening(
        Command::new(bin("dispatcher"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--metrics-listen",
                &metrics,
                "--state",
            ])
            .arg(dir.path().join("state.sqlite"))
            .arg("--data-root")
            .arg(dir.path())
            .arg("--out-root")
            .arg(dir.path())
            .arg("--template-root")
            .arg(root().join("examples")),
        "dispatcher listening on ",
    );
    let submit = |out: &Path| {
        run(Command::new(bin("dispatcher"))
            .args([
                "submit",
                "--server",
                &addr,
                "--run-date",
                "2026-11-23",
                "--batch-records",
                "10",
                "--template",
            ])
            .arg(root().join("examples/statement"))
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(out))
    };
    let res = submit(&dir.path().join("served"));
    assert!(res.status.success(), "{}", stderr(&res));
    let id = String::from_utf8(res.stdout).unwrap().trim().to_string();
    let watch = run(Command::new(bin("dispatcher")).args(["watch", "--server", &addr, &id]));
    let log = String::from_utf8_lossy(&watch.stdout).to_string();
    assert_eq!(watch.status.code(), Some(3), "{log}");
    assert!(log.contains("shards 4/4"), "{log}");
    // Outside the roots: refused, and nothing is written there.
    let elsewhere = tempfile::tempdir().unwrap();
    let res = submit(&elsewhere.path().join("x"));
    assert!(!res.status.success());
    assert!(
        stderr(&res).contains("outside this server's --out-root"),
        "{}",
        stderr(&res)
    );
    assert!(!elsewhere.path().join("x").exists());
    // The finished folder cannot be submitted again.
    let res = submit(&dir.path().join("served"));
    assert!(!res.status.success());
    assert!(stderr(&res).contains("finished run"), "{}", stderr(&res));
    let m = scrape(&metrics);
    promtool_check(&m);
    assert!(m.contains("# TYPE pressrun_shard_seconds histogram"), "{m}");
    for l in m
        .lines()
        .filter(|l| l.starts_with("pressrun_shards_in_flight{"))
    {
        assert!(
            l.ends_with(" 0"),
            "in-flight gauge did not return to 0: {l}"
        );
    }
    let _ = server.kill();
    let _ = server.wait();
}

#[test]
fn a_pathological_record_is_rejected_by_name_in_process_and_on_the_farm() {
    let dir = tempfile::tempdir().unwrap();
    let data = statements(dir.path(), 20);
    // Record 5: a 100,000-character unbreakable word (renders, broken at any character);
    // record 6: a 300,000-character one (over the 150-page limit: rejected, by field).
    let mut lines: Vec<String> = fs::read_to_string(&data)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    for (i, n) in [(4usize, 100_000usize), (5, 300_000)] {
        let mut v: serde_json::Value = serde_json::from_str(&lines[i]).unwrap();
        v["transactions"][0]["description"] = serde_json::Value::String("W".repeat(n));
        lines[i] = v.to_string();
    }
    fs::write(&data, lines.join("\n") + "\n").unwrap();
    let limit = ["--max-pages", "150"];
    let reference = dir.path().join("embedded");
    let res = run(Command::new(bin("renderer"))
        .args([
            "render",
            "--quiet",
            "--run-date",
            "2026-11-23",
            "--batch-records",
            "10",
            "--template",
        ])
        .arg(root().join("examples/statement"))
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&reference)
        .args(limit));
    assert_eq!(res.status.code(), Some(3), "{}", stderr(&res));
    let exceptions = jsonl(&reference.join("exceptions.jsonl"));
    let six = exceptions
        .iter()
        .find(|e| e["record"] == 6)
        .expect("record 6 rejected");
    assert_eq!(six["field"], "transactions[0].description", "{six}");
    assert!(
        six["reason"].as_str().unwrap().contains("150 pages"),
        "{six}"
    );
    let docs = jsonl(&reference.join("documents.jsonl"));
    let five = docs
        .iter()
        .find(|d| d["record"] == 5)
        .expect("record 5 rendered");
    assert!(five["pages"].as_u64().unwrap() > 10, "{five}");
    // The farm names the same record and field, byte for byte.
    let node = NodeProc::start();
    let out = dir.path().join("farm");
    let res = run(&mut dispatcher(&data, &out, &[&node.addr], &limit));
    assert_eq!(res.status.code(), Some(3), "{}", stderr(&res));
    assert_same_output(&reference, &out);
}

#[test]
fn a_served_run_being_watched_drains_on_sigterm_and_resumes_when_submitted_again() {
    let dir = tempfile::tempdir().unwrap();
    let data = statements(dir.path(), 1500);
    let out = dir.path().join("served");
    let start = || {
        spawn_listening(
            Command::new(bin("dispatcher"))
                .args([
                    "serve",
                    "--listen",
                    "127.0.0.1:0",
                    "--threads",
                    "1",
                    "--state",
                ])
                .arg(dir.path().join("state.sqlite"))
                .arg("--data-root")
                .arg(dir.path())
                .arg("--out-root")
                .arg(dir.path())
                .arg("--template-root")
                .arg(root().join("examples")),
            "dispatcher listening on ",
        )
    };
    let submit = |addr: &str| {
        let res = run(Command::new(bin("dispatcher"))
            .args([
                "submit",
                "--server",
                addr,
                "--run-date",
                "2026-11-23",
                "--batch-records",
                "10",
                "--template",
            ])
            .arg(root().join("examples/statement"))
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(&out));
        assert!(res.status.success(), "{}", stderr(&res));
        String::from_utf8(res.stdout).unwrap().trim().to_string()
    };
    let (mut server, addr) = start();
    let id = submit(&addr);
    let watcher = Command::new(bin("dispatcher"))
        .args(["watch", "--server", &addr, &id])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_lines(&out.join("commits.jsonl"), 2, Duration::from_secs(60));
    let ok = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    // The server drains the watched run and exits; the watch ends with the run stopped.
    let watched = watcher.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&watched.stdout).to_string();
    assert_eq!(watched.status.code(), Some(1), "{log}");
    assert!(
        log.lines().last().unwrap_or("").contains("stopped"),
        "{log}"
    );
    let status = server.wait().unwrap();
    assert!(
        status.success(),
        "the server did not exit cleanly: {status:?}"
    );
    let committed = fs::read_to_string(out.join("commits.jsonl"))
        .unwrap()
        .lines()
        .count();
    assert!(
        committed < 150,
        "the run was not stopped: {committed} shards"
    );
    // Submitted again to a new server, it resumes and completes.
    let (mut server, addr) = start();
    assert_eq!(submit(&addr), id);
    let res = run(Command::new(bin("dispatcher")).args(["watch", "--server", &addr, &id]));
    assert_eq!(
        res.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&res.stdout)
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["status"], "succeeded");
    assert!(summary["resumed_shards"].as_u64().unwrap() >= committed as u64);
    let _ = server.kill();
    let _ = server.wait();
}
