//! Assured delivery end to end, with real processes and real peers on 127.0.0.1: a
//! print-production run composed by `dispatcher run`, printed through `dispatcher serve`
//! and `printer-agent serve` on ippeveprinter (whose print command "prints" impression
//! by impression and keeps a ground-truth log), inserted by the PIL/1 inserter simulator
//! over TCP, and reconciled from the ledger.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pressrun_tests::*;
use serde_json::Value;

/// A process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// ippeveprinter with the Pressrun print command, stopped when dropped.
struct Printer {
    dir: PathBuf,
    uri: String,
}

impl Printer {
    fn start(dir: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let out = Command::new(root().join("tests/peers/start-ippeveprinter"))
            .arg(dir)
            .arg(port.to_string())
            .env("PRESSRUN_PEER_MS", "10")
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
    fn printed(&self) -> BTreeMap<String, u64> {
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

/// A composed print-production run: 24 example statements, duplex, jobs of at most 5
/// pieces. Returns the state database and the run id.
fn composed(dir: &Path) -> (PathBuf, String) {
    let data = run(Command::new(bin("renderer")).args([
        "example-data",
        "statement",
        "--records",
        "24",
        "--seed",
        "3",
    ]));
    assert!(data.status.success());
    let data_path = dir.join("statements.jsonl");
    fs::write(&data_path, &data.stdout).unwrap();
    let profile = dir.join("profile.toml");
    let text = fs::read_to_string(root().join("examples/production/statement.toml")).unwrap();
    assert!(text.contains("max-pieces = 5000"));
    fs::write(
        &profile,
        text.replace("max-pieces = 5000", "max-pieces = 5"),
    )
    .unwrap();
    let state = dir.join("registry.sqlite");
    let out = dir.join("out");
    let res = run(&mut dispatcher_batch(
        &data_path,
        &out,
        &[],
        10,
        &[
            "--production",
            profile.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
        ],
    ));
    assert_eq!(
        res.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let runs =
        run(Command::new(bin("dispatcher")).args(["runs", "--state", state.to_str().unwrap()]));
    let run_id = String::from_utf8(runs.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .expect("the run is listed")
        .to_string();
    (state, run_id)
}

fn serve_dispatcher(state: &Path) -> (Proc, String) {
    let (child, addr) = spawn_listening(
        Command::new(bin("dispatcher")).args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--state",
            state.to_str().unwrap(),
        ]),
        "dispatcher listening on ",
    );
    (Proc(child), addr)
}

fn inserter(faults: &[&str]) -> (Proc, String) {
    let mut cmd = Command::new(bin("printer-agent"));
    cmd.args([
        "simulate-inserter",
        "--tcp",
        "127.0.0.1:0",
        "--piece-ms",
        "20",
    ]);
    for f in faults {
        cmd.args(["--fault", f]);
    }
    let (child, addr) = spawn_listening(&mut cmd, "listening on ");
    (Proc(child), addr)
}

/// `printer-agent serve` with one printer followed by one inserter; logs in DIR/agent.log.
fn agent(dir: &Path, dispatcher: &str, printer: &str, inserter: &str) -> Proc {
    let config = dir.join("agent.toml");
    fs::write(
        &config,
        format!(
            "[agent]\nname = \"line-1\"\nstate_dir = \"{}\"\n\n\
             [[printer]]\nname = \"p1\"\nuri = \"{printer}\"\ninserter = \"i1\"\nduplex = true\n\n\
             [[inserter]]\nname = \"i1\"\ntcp = \"{inserter}\"\n",
            dir.join("agent-state").display()
        ),
    )
    .unwrap();
    let log = fs::File::create(dir.join("agent.log")).unwrap();
    let child = Command::new(bin("printer-agent"))
        .args([
            "serve",
            "--dispatcher",
            dispatcher,
            "--poll-seconds",
            "0.1",
            "--config",
        ])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("printer-agent serve starts");
    Proc(child)
}

fn reconcile(state: &Path, run_id: &str) -> (Option<i32>, Value) {
    let res = run(Command::new(bin("dispatcher")).args([
        "reconcile",
        run_id,
        "--state",
        state.to_str().unwrap(),
        "--json",
    ]));
    let v: Value = serde_json::from_slice(&res.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&res.stderr)));
    (res.status.code(), v)
}

/// Polls the reconciliation until `done` holds or `limit` passes (then panics with the
/// last report and the agent's log).
fn wait_for(
    dir: &Path,
    state: &Path,
    run_id: &str,
    limit: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        let (_, r) = reconcile(state, run_id);
        if done(&r) {
            return r;
        }
        if start.elapsed() > limit {
            panic!(
                "not reached in {limit:?}: {r:#}\nagent log:\n{}",
                fs::read_to_string(dir.join("agent.log")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn a_run_printed_and_inserted_is_complete_and_agrees_with_the_printer() {
    let dir = tempfile::tempdir().unwrap();
    let (state, run_id) = composed(dir.path());
    let (code, before) = reconcile(&state, &run_id);
    assert_eq!(code, Some(1), "{before:#}");
    let expected = before["expected"].as_u64().unwrap();
    let sheets = before["sheets"].as_u64().unwrap();
    assert!(before["print_jobs"].as_u64().unwrap() >= 3, "{before:#}");

    let (_server, addr) = serve_dispatcher(&state);
    let printer = Printer::start(&dir.path().join("printer"));
    let (_ins, ins_addr) = inserter(&[]);
    let _agent = agent(dir.path(), &addr, &printer.uri, &ins_addr);

    let print = run(Command::new(bin("dispatcher")).args(["print", &run_id, "--server", &addr]));
    assert!(
        print.status.success(),
        "{}",
        String::from_utf8_lossy(&print.stderr)
    );
    // The simulator inserts as soon as a job starts, ahead of the printer: wait for the
    // printer's last count too.
    let r = wait_for(dir.path(), &state, &run_id, Duration::from_secs(180), |r| {
        r["complete"] == true && r["sheets_printed"] == sheets
    });
    assert_eq!(r["expected"], expected);
    assert_eq!(r["printed"], expected);
    assert_eq!(r["inserted_ok"], expected);
    assert_eq!(r["unresolved"], 0);
    assert_eq!(r["reprinted"], 0);
    assert_eq!(r["duplicates"], 0);
    assert_eq!(r["disagreements"], 0);
    assert_eq!(r["by_printer"]["p1"], sheets, "{r:#}");
    assert_eq!(r["by_inserter"]["i1"]["ok"], expected, "{r:#}");
    let (code, _) = reconcile(&state, &run_id);
    assert_eq!(code, Some(0));

    // The printer's own log: every impression of every job, once.
    let truth = printer.printed();
    let impressions: u64 = truth.values().sum();
    assert_eq!(impressions, sheets * 2, "{truth:?}");
    assert_eq!(truth.len() as u64, r["print_jobs"].as_u64().unwrap());

    // Printing again hands nothing over twice.
    let again = run(Command::new(bin("dispatcher")).args(["print", &run_id, "--server", &addr]));
    let text = String::from_utf8_lossy(&again.stdout);
    assert!(text.starts_with("0 print jobs handed"), "{text}");

    // The fleet shows the agent's devices attached.
    let fleet = run(Command::new(bin("dispatcher")).args(["fleet", "--server", &addr, "--json"]));
    let f: Value = serde_json::from_slice(&fleet.stdout).unwrap();
    let devices = f["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 2, "{f:#}");
    assert!(devices.iter().all(|d| d["attached"] == true), "{f:#}");
    assert_eq!(devices[0]["device"], "p1");
    assert_eq!(devices[0]["duplex"], true);
    assert_eq!(devices[1]["kind"], "inserter");
}
