//! Assured delivery end to end, with real processes and real peers on 127.0.0.1: a
//! print-production run composed by `dispatcher run`, printed through `dispatcher serve`
//! and `printer-agent serve` on ippeveprinter (whose print command "prints" impression
//! by impression and keeps a ground-truth log), inserted by the PIL/1 inserter simulator
//! over TCP, and reconciled from the ledger.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pressrun_tests::peers::{Printer, Snmpsim};
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

/// A composed print-production run: 24 example statements, duplex, jobs of at most 5
/// pieces, the default reprint cap. Returns the state database and the run id.
fn composed(dir: &Path) -> (PathBuf, String) {
    composed_with(dir, None, None)
}

/// The same with `reprint-cap-percent = cap`.
fn composed_with(dir: &Path, cap: Option<u32>, print_server: Option<&str>) -> (PathBuf, String) {
    let edit = |text: String| match cap {
        Some(cap) => {
            assert!(text.contains("reprint-cap-percent = 10 "));
            text.replace(
                "reprint-cap-percent = 10 ",
                &format!("reprint-cap-percent = {cap} "),
            )
        }
        None => text,
    };
    composed_edit(dir, &edit, print_server)
}

/// The same with the example profile changed by `edit` (after `max-pieces = 5`).
fn composed_edit(
    dir: &Path,
    edit: &dyn Fn(String) -> String,
    print_server: Option<&str>,
) -> (PathBuf, String) {
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
    let text = edit(text.replace("max-pieces = 5000", "max-pieces = 5"));
    fs::write(&profile, text).unwrap();
    let state = dir.join("registry.sqlite");
    let out = dir.join("out");
    let mut extra = vec![
        "--production",
        profile.to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
    ];
    if let Some(addr) = print_server {
        extra.extend(["--print", "--print-server", addr]);
    }
    let res = run(&mut dispatcher_batch(&data_path, &out, &[], 10, &extra));
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

/// `dispatcher serve` on the registry; logs in the registry's folder, dispatcher.log.
fn serve_dispatcher(state: &Path) -> (Proc, String) {
    serve_dispatcher_on(state, "127.0.0.1:0")
}

fn serve_dispatcher_on(state: &Path, listen: &str) -> (Proc, String) {
    serve_dispatcher_with(state, listen, &[])
}

fn serve_dispatcher_with(state: &Path, listen: &str, extra: &[&str]) -> (Proc, String) {
    use std::io::BufRead;
    let log = fs::File::options()
        .create(true)
        .append(true)
        .open(state.with_file_name("dispatcher.log"))
        .unwrap();
    let mut child = Command::new(bin("dispatcher"))
        .args(["serve", "--log", "info", "--listen", listen, "--state"])
        .arg(state)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("dispatcher serve starts");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("dispatcher listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    (Proc(child), addr)
}

/// The inserter simulator on TCP; with `follow`, it feeds a piece only once the printer's
/// ground-truth log shows its sheets printed (as an inserter inline after the printer).
fn inserter(faults: &[&str], follow: Option<&Printer>) -> (Proc, String) {
    inserter_per_sheet(faults, follow, 2)
}

/// The same for a printer putting out `per_sheet` impressions per sheet (1: simplex).
fn inserter_per_sheet(faults: &[&str], follow: Option<&Printer>, per_sheet: u32) -> (Proc, String) {
    let mut cmd = Command::new(bin("printer-agent"));
    cmd.args([
        "simulate-inserter",
        "--tcp",
        "127.0.0.1:0",
        "--piece-ms",
        "20",
    ]);
    if let Some(p) = follow {
        cmd.arg("--follow-log")
            .arg(p.dir.join("printed.log"))
            .args(["--idle-end-ms", "1500"])
            .arg("--impressions-per-sheet")
            .arg(per_sheet.to_string());
    }
    for f in faults {
        cmd.args(["--fault", f]);
    }
    let (child, addr) = spawn_listening(&mut cmd, "listening on ");
    (Proc(child), addr)
}

/// `printer-agent serve` with one printer followed by one inserter, the printer's SNMP
/// agent at `snmp` (v2c) if given; logs in DIR/agent.log.
fn agent(dir: &Path, dispatcher: &str, printer: &str, inserter: &str, snmp: Option<&str>) -> Proc {
    let snmp = snmp.map_or(String::new(), |a| {
        format!("snmp = {{ address = \"{a}\", version = \"2c\", community = \"printer\" }}\n")
    });
    let link = format!("tcp = \"{inserter}\"");
    agent_with(dir, dispatcher, &[("p1", printer, "i1", &link, &snmp)])
}

/// `printer-agent serve` with these printers, each followed by its inserter: (printer,
/// URI, inserter, the inserter's link lines (`tcp = …` or `tty = …`), extra printer lines).
fn agent_with(dir: &Path, dispatcher: &str, lines: &[(&str, &str, &str, &str, &str)]) -> Proc {
    agent_args(dir, dispatcher, lines, &[])
}

/// The same with more `printer-agent serve` arguments (TLS, token).
fn agent_args(
    dir: &Path,
    dispatcher: &str,
    lines: &[(&str, &str, &str, &str, &str)],
    extra: &[&str],
) -> Proc {
    let config = dir.join("agent.toml");
    let mut text = format!(
        "[agent]\nname = \"line-1\"\nstate_dir = \"{}\"\n\n",
        dir.join("agent-state").display()
    );
    for (p, uri, i, _, extra) in lines {
        text.push_str(&format!(
            "[[printer]]\nname = \"{p}\"\nuri = \"{uri}\"\ninserter = \"{i}\"\nduplex = true\n{extra}\n"
        ));
    }
    for (_, _, i, link, _) in lines {
        text.push_str(&format!("[[inserter]]\nname = \"{i}\"\n{link}\n\n"));
    }
    fs::write(&config, text).unwrap();
    let log = fs::File::options()
        .create(true)
        .append(true)
        .open(dir.join("agent.log"))
        .unwrap();
    let metrics = free_addr();
    let health = free_addr();
    fs::write(dir.join("agent.addrs"), format!("{metrics} {health}")).unwrap();
    let child = Command::new(bin("printer-agent"))
        .args([
            "serve",
            "--dispatcher",
            dispatcher,
            "--poll-seconds",
            "0.1",
            "--metrics-listen",
            &metrics,
            "--health-listen",
            &health,
            "--config",
        ])
        .arg(&config)
        .args(extra)
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
    // Null while the ledger has no jobs for the run (it is still being composed).
    let v: Value = serde_json::from_slice(&res.stdout).unwrap_or(Value::Null);
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
                "not reached in {limit:?}: {r:#}\nagent log:\n{}\ndispatcher log:\n{}",
                fs::read_to_string(dir.join("agent.log")).unwrap_or_default(),
                fs::read_to_string(dir.join("dispatcher.log")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn a_run_printed_and_inserted_is_complete_and_agrees_with_the_printer() {
    let dir = tempfile::tempdir().unwrap();
    // The server, the printer and its agent first; then `dispatcher run --print` on the
    // server's registry composes the run and has it printed.
    let state = dir.path().join("registry.sqlite");
    let (_server, addr) = serve_dispatcher(&state);
    let printer = Printer::start(&dir.path().join("printer"));
    let (_ins, ins_addr) = inserter(&[], None);
    // snmpsim reads the life count that the printer's command mirrors into its folder.
    let snmp = Snmpsim::start(&printer.dir, |_| {});
    let _agent = agent(
        dir.path(),
        &addr,
        &printer.uri,
        &ins_addr,
        Some(&snmp.address()),
    );
    let (state, run_id) = composed_with(dir.path(), None, Some(&addr));
    let (_, before) = reconcile(&state, &run_id);
    let expected = before["expected"].as_u64().unwrap();
    let sheets = before["sheets"].as_u64().unwrap();
    assert!(before["print_jobs"].as_u64().unwrap() >= 3, "{before:#}");

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

    // SNMP's life count agrees with IPP and with the printer's own log.
    assert_eq!(
        fs::read_to_string(printer.dir.join("lifecount"))
            .unwrap()
            .trim(),
        (sheets * 2).to_string()
    );
    // The printer's own log: every impression of every job, once.
    let truth = printer.printed();
    let impressions: u64 = truth.values().sum();
    assert_eq!(impressions, sheets * 2, "{truth:?}");
    assert_eq!(truth.len() as u64, r["print_jobs"].as_u64().unwrap());

    // Printing again hands nothing over twice.
    let again = run(Command::new(bin("dispatcher")).args(["print", &run_id, "--server", &addr]));
    let text = String::from_utf8_lossy(&again.stdout);
    assert!(text.starts_with("0 print jobs handed"), "{text}");

    // The agent's metrics (promtool agrees) count every impression; its health serves.
    let addrs = fs::read_to_string(dir.path().join("agent.addrs")).unwrap();
    let (metrics, health) = addrs.split_once(' ').unwrap();
    let text = scrape(metrics);
    promtool_check(&text);
    assert!(
        text.contains(&format!(
            "pressrun_agent_impressions_total{{printer=\"p1\"}} {}",
            sheets * 2
        )),
        "{text}"
    );
    assert!(
        text.contains("pressrun_agent_pieces_total{inserter=\"i1\",outcome=\"ok\"}"),
        "{text}"
    );
    let serving = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{health}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        tonic_health::pb::health_client::HealthClient::new(channel)
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .status
    });
    assert_eq!(
        serving,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    // The same report through the gRPC API.
    let grpc = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut c = pressrun_proto::v1::print_agents_client::PrintAgentsClient::connect(format!(
            "http://{addr}"
        ))
        .await
        .unwrap();
        c.reconcile(pressrun_proto::v1::ReconcileRequest {
            run_id: run_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
    });
    assert!(grpc.complete);
    let via: Value = serde_json::from_str(&grpc.json).unwrap();
    assert_eq!(via["inserted_ok"], r["inserted_ok"]);
    assert_eq!(via["by_printer"], r["by_printer"]);

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

/// The pieces of a print job in the run folder and their last impressions.
fn job_pieces(dir: &Path, job: &str) -> Vec<(String, u64)> {
    jsonl(&dir.join(format!("out/jobs/{job}.manifest.jsonl")))
        .into_iter()
        .filter(|l| l.get("piece").is_some())
        .map(|l| {
            let last = l["sheets"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|s| s["impressions"].as_array().unwrap().clone())
                .map(|i| i.as_u64().unwrap())
                .max()
                .unwrap();
            (l["piece"].as_str().unwrap().to_string(), last)
        })
        .collect()
}

fn print(run_id: &str, addr: &str) {
    let print = run(Command::new(bin("dispatcher")).args(["print", run_id, "--server", addr]));
    assert!(
        print.status.success(),
        "{}",
        String::from_utf8_lossy(&print.stderr)
    );
}

#[test]
fn a_jam_mid_job_reprints_exactly_the_unconfirmed_pieces_once() {
    let dir = tempfile::tempdir().unwrap();
    let (state, run_id) = composed_with(dir.path(), Some(100), None);
    let (_, before) = reconcile(&state, &run_id);
    let expected = before["expected"].as_u64().unwrap();
    let (_server, addr) = serve_dispatcher(&state);
    let printer = Printer::start(&dir.path().join("printer"));
    // The first job jams after its 5th impression (one-shot).
    fs::write(printer.dir.join("jam-after"), "5").unwrap();
    let (_ins, ins_addr) = inserter(&[], Some(&printer));
    let _agent = agent(dir.path(), &addr, &printer.uri, &ins_addr, None);
    print(&run_id, &addr);
    let r = wait_for(dir.path(), &state, &run_id, Duration::from_secs(240), |r| {
        r["complete"] == true
    });
    // Exactly the pieces of J000001 not confirmed by the jammed job's count went into
    // one reprint job, keeping their ids; every piece is inserted OK once.
    let unconfirmed: Vec<String> = job_pieces(dir.path(), "J000001")
        .into_iter()
        .filter(|(_, last)| *last > 5)
        .map(|(p, _)| p)
        .collect();
    assert!(!unconfirmed.is_empty());
    let reprinted: Vec<String> = job_pieces(dir.path(), "J000001R1")
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert_eq!(reprinted, unconfirmed);
    assert!(!dir.path().join("out/jobs/J000001R2.pdf").exists());
    assert_eq!(r["reprinted"], unconfirmed.len() as u64, "{r:#}");
    assert_eq!(r["inserted_ok"], expected, "{r:#}");
    assert_eq!(r["printed"], expected, "{r:#}");
    assert_eq!(r["duplicates"], 0, "{r:#}");
    assert_eq!(r["unresolved"], 0, "{r:#}");
    // The printer's log: the jammed job stopped at 5 impressions, and the reprint job
    // printed the reprinted pieces' sheets once.
    let truth = printer.printed();
    assert_eq!(
        truth.len() as u64,
        r["print_jobs"].as_u64().unwrap() + 1,
        "{truth:?}"
    );
    assert_eq!(truth.values().next(), Some(&5), "{truth:?}");
    let reprint_impressions: u64 = job_pieces(dir.path(), "J000001R1")
        .iter()
        .map(|(_, l)| *l)
        .max()
        .unwrap();
    assert_eq!(
        truth.values().last(),
        Some(&reprint_impressions),
        "{truth:?}"
    );
    // The reprint job is a real PDF of exactly those sheets.
    assert_eq!(
        page_count(&dir.path().join("out/jobs/J000001R1.pdf")) as u64,
        reprint_impressions
    );
}

#[test]
fn inserter_faults_are_reprinted_once_and_the_duplicate_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let (state, run_id) = composed_with(dir.path(), Some(100), None);
    let (_, before) = reconcile(&state, &run_id);
    let expected = before["expected"].as_u64().unwrap();
    let (_server, addr) = serve_dispatcher(&state);
    let printer = Printer::start(&dir.path().join("printer"));
    // Faults fire once each, on the first job that has the piece: J000001. The inserter
    // is on a serial line: a socat pty pair, the simulator on one end, the agent on the
    // other at 115200 baud, 8N1.
    let (agent_end, device_end) = (dir.path().join("tty-agent"), dir.path().join("tty-device"));
    let _socat = pty_pair(&agent_end, &device_end);
    let mut sim = Command::new(bin("printer-agent"));
    sim.args(["simulate-inserter", "--baud", "115200", "--piece-ms", "20"])
        .arg("--tty")
        .arg(&device_end)
        .arg("--follow-log")
        .arg(printer.dir.join("printed.log"))
        .args(["--idle-end-ms", "1500"]);
    for f in [
        "000001=garbage",
        "000002=divert:misread",
        "000003=jam",
        "000004=lost-report",
        "000005=duplicate-report",
    ] {
        sim.args(["--fault", f]);
    }
    let (sim, _) = spawn_listening(&mut sim, "open on ");
    let _sim = Proc(sim);
    let link = format!("tty = \"{}\"\nbaud = 115200", agent_end.display());
    let _agent = agent_with(dir.path(), &addr, &[("p1", &printer.uri, "i1", &link, "")]);
    print(&run_id, &addr);
    let r = wait_for(dir.path(), &state, &run_id, Duration::from_secs(240), |r| {
        r["complete"] == true
    });
    let reprinted: Vec<String> = job_pieces(dir.path(), "J000001R1")
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    // The divert and the jam are reprinted (once); the lost report came back on RESEND;
    // the garbage line changed nothing; the duplicate is flagged and counted once.
    let mut reprinted_all = reprinted.clone();
    if dir.path().join("out/jobs/J000001R2.pdf").exists() {
        reprinted_all.extend(
            job_pieces(dir.path(), "J000001R2")
                .into_iter()
                .map(|(p, _)| p),
        );
    }
    reprinted_all.sort();
    assert_eq!(reprinted_all, ["000002", "000003"], "{r:#}");
    assert_eq!(r["reprinted"], 2, "{r:#}");
    assert_eq!(r["duplicates"], 1, "{r:#}");
    assert_eq!(r["inserted_ok"], expected, "{r:#}");
    assert_eq!(r["by_reason"]["diverted"], 1, "{r:#}");
    assert_eq!(r["by_reason"]["jammed"], 1, "{r:#}");
    assert_eq!(r["unresolved"], 0, "{r:#}");
}

#[test]
fn an_snmp_count_that_disagrees_with_ipp_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (state, run_id) = composed(dir.path());
    let (_server, addr) = serve_dispatcher(&state);
    let printer = Printer::start(&dir.path().join("printer"));
    let snmp = Snmpsim::start(&printer.dir, |_| {});
    // The first job's impressions do not reach the life count (a counter the printer
    // did not advance): SNMP says 0 where IPP says all.
    fs::write(printer.dir.join("skip-mirror"), "").unwrap();
    let (_ins, ins_addr) = inserter(&[], Some(&printer));
    let _agent = agent(
        dir.path(),
        &addr,
        &printer.uri,
        &ins_addr,
        Some(&snmp.address()),
    );
    print(&run_id, &addr);
    let r = wait_for(dir.path(), &state, &run_id, Duration::from_secs(240), |r| {
        r["complete"] == true && r["disagreements"] == 1
    });
    assert_eq!(r["reprinted"], 0, "{r:#}");
    let log = fs::read_to_string(dir.path().join("agent.log")).unwrap();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("SNMP and IPP disagree"))
        .collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(lines[0].contains("J000001"), "{log}");
}

/// A socat pty pair linked at `a` and `b` (the serial line between agent and inserter).
fn pty_pair(a: &Path, b: &Path) -> Proc {
    let socat = Command::new("socat")
        .arg(format!("pty,raw,echo=0,link={}", a.display()))
        .arg(format!("pty,raw,echo=0,link={}", b.display()))
        .spawn()
        .expect("socat is required by this test: scripts/test.sh installs it");
    let p = Proc(socat);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(a.exists() && b.exists()) {
        assert!(Instant::now() < deadline, "socat made no pty pair");
        std::thread::sleep(Duration::from_millis(20));
    }
    p
}

/// `dispatcher fleet --json` of the server.
fn fleet(addr: &str) -> Value {
    let out = run(Command::new(bin("dispatcher")).args(["fleet", "--server", addr, "--json"]));
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// The reasons the fleet shows for `device`.
fn fleet_reasons(addr: &str, device: &str) -> Vec<String> {
    let f = fleet(addr);
    f["devices"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["device"] == device)
        .flat_map(|d| d["reasons"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| r.as_str().map(str::to_string))
        .collect()
}

/// Waits until `done` holds or `limit` passes (then panics with `what` and the logs).
fn wait_until(dir: &Path, limit: Duration, what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > limit {
            panic!(
                "{what}: not reached in {limit:?}\nagent log:\n{}\ndispatcher log:\n{}",
                fs::read_to_string(dir.join("agent.log")).unwrap_or_default(),
                fs::read_to_string(dir.join("dispatcher.log")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The agent's metrics exposition (promtool agrees with it).
fn agent_metrics(dir: &Path) -> String {
    let addrs = fs::read_to_string(dir.join("agent.addrs")).unwrap();
    let text = scrape(addrs.split_once(' ').unwrap().0);
    promtool_check(&text);
    text
}

/// The value of one sample of the exposition (0 if absent).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// The stops the ledger recorded for `printer`: how each job ended → count.
fn stops(r: &Value, printer: &str) -> Vec<(String, u64)> {
    r["printer_stops"][printer]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect()
}

#[test]
fn a_cover_opened_and_paper_run_out_stop_the_printer_and_only_the_unconfirmed_pieces_are_reprinted()
{
    let dir = tempfile::tempdir().unwrap();
    let (state, run_id) = composed_with(dir.path(), Some(100), None);
    let (_, before) = reconcile(&state, &run_id);
    let expected = before["expected"].as_u64().unwrap();
    let (_server, addr) = serve_dispatcher(&state);
    let printer = Printer::start(&dir.path().join("printer"));
    // J000001: the cover is opened after impression 3. J000002: the paper runs out after
    // impression 5, and the printer then holds every job until paper is loaded.
    fs::write(printer.dir.join("fault-after"), "3 cover-open\n").unwrap();
    fs::write(printer.dir.join("empty-after"), "5").unwrap();
    let (_ins, ins_addr) = inserter(&[], Some(&printer));
    let _agent = agent(dir.path(), &addr, &printer.uri, &ins_addr, None);
    print(&run_id, &addr);
    // The fleet shows the printer out of paper, and nothing more is printed meanwhile.
    wait_until(
        dir.path(),
        Duration::from_secs(120),
        "media-empty in the fleet",
        || {
            fleet_reasons(&addr, "p1")
                .iter()
                .any(|r| r == "media-empty")
        },
    );
    let held = printer.printed();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(printer.printed(), held, "the printer printed without paper");
    let (_, r) = reconcile(&state, &run_id);
    assert_eq!(r["complete"], false, "{r:#}");
    // Paper loaded: the held job prints, the reprints follow, the run completes.
    let refill = run(Command::new(root().join("tests/peers/start-ippeveprinter"))
        .arg("refill")
        .arg(&printer.dir));
    assert!(
        refill.status.success(),
        "{}",
        String::from_utf8_lossy(&refill.stderr)
    );
    let r = wait_for(dir.path(), &state, &run_id, Duration::from_secs(240), |r| {
        r["complete"] == true
    });
    // Exactly the pieces each stop left unconfirmed were reprinted, once, keeping ids.
    let unconfirmed = |job: &str, at: u64| -> Vec<String> {
        job_pieces(dir.path(), job)
            .into_iter()
            .filter(|(_, last)| *last > at)
            .map(|(p, _)| p)
            .collect()
    };
    let ids = |job: &str| -> Vec<String> {
        job_pieces(dir.path(), job)
            .into_iter()
            .map(|(p, _)| p)
            .collect()
    };
    assert_eq!(ids("J000001R1"), unconfirmed("J000001", 3));
    assert_eq!(ids("J000002R1"), unconfirmed("J000002", 5));
    assert!(!dir.path().join("out/jobs/J000001R2.pdf").exists());
    assert!(!dir.path().join("out/jobs/J000002R2.pdf").exists());
    let n = unconfirmed("J000001", 3).len() + unconfirmed("J000002", 5).len();
    assert_eq!(r["reprinted"], n as u64, "{r:#}");
    assert_eq!(r["inserted_ok"], expected, "{r:#}");
    assert_eq!(r["duplicates"], 0, "{r:#}");
    // The ledger names both stops.
    let p1 = stops(&r, "p1");
    assert_eq!(p1.len(), 2, "{r:#}");
    assert!(
        p1.iter()
            .any(|(how, n)| how.starts_with("aborted") && how.contains("cover-open") && *n == 1),
        "{r:#}"
    );
    assert!(
        p1.iter()
            .any(|(how, n)| how.starts_with("aborted") && how.contains("media-empty") && *n == 1),
        "{r:#}"
    );
    // The printer's log: 3 impressions of the first job, 5 of the second.
    let truth: Vec<u64> = printer.printed().into_values().collect();
    assert_eq!(&truth[..2], &[3, 5], "{truth:?}");
    // The agent counted both conditions and the job endings.
    let m = agent_metrics(dir.path());
    assert_eq!(
        sample(
            &m,
            "pressrun_agent_device_alerts_total{device=\"p1\",reason=\"cover-open\"}"
        ),
        1.0,
        "{m}"
    );
    assert!(
        sample(
            &m,
            "pressrun_agent_device_alerts_total{device=\"p1\",reason=\"media-empty\"}"
        ) >= 1.0,
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            "pressrun_agent_jobs_ended_total{printer=\"p1\",how=\"aborted\"}"
        ),
        2.0,
        "{m}"
    );
}

#[test]
fn an_snmp_agent_that_stops_answering_mid_job_is_reported_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (state, run_id) = composed(dir.path());
    let (_, before) = reconcile(&state, &run_id);
    let expected = before["expected"].as_u64().unwrap();
    let (_server, addr) = serve_dispatcher(&state);
    let printer = Printer::start_with_ms(&dir.path().join("printer"), 40);
    let snmp = Snmpsim::start(&printer.dir, |_| {});
    let (_ins, ins_addr) = inserter(&[], Some(&printer));
    let snmp_line = format!(
        "snmp = {{ address = \"{}\", version = \"2c\", community = \"printer\", poll_seconds = 1 }}\n",
        snmp.address()
    );
    let link = format!("tcp = \"{ins_addr}\"");
    let _agent = agent_with(
        dir.path(),
        &addr,
        &[("p1", &printer.uri, "i1", &link, &snmp_line)],
    );
    // The printer's SNMP agent says it is offline (hrPrinterDetectedErrorState bit 6),
    // then back: the fleet shows it, the agent counts it.
    snmp.set("errorState", "0200");
    wait_until(
        dir.path(),
        Duration::from_secs(60),
        "snmp:offline in the fleet",
        || {
            fleet_reasons(&addr, "p1")
                .iter()
                .any(|r| r == "snmp:offline")
        },
    );
    snmp.set("errorState", "0000");
    wait_until(
        dir.path(),
        Duration::from_secs(60),
        "snmp:offline cleared",
        || {
            !fleet_reasons(&addr, "p1")
                .iter()
                .any(|r| r == "snmp:offline")
        },
    );
    // Then it stops answering while the first job prints, and comes back.
    print(&run_id, &addr);
    wait_until(
        dir.path(),
        Duration::from_secs(60),
        "the first job printing",
        || !printer.printed().is_empty(),
    );
    snmp.signal("STOP");
    wait_until(
        dir.path(),
        Duration::from_secs(60),
        "the SNMP failure seen",
        || {
            fs::read_to_string(dir.path().join("agent.log"))
                .unwrap_or_default()
                .contains("SNMP poll failed")
                && fleet_reasons(&addr, "p1")
                    .iter()
                    .any(|r| r == "snmp:unreachable")
        },
    );
    snmp.signal("CONT");
    let r = wait_for(dir.path(), &state, &run_id, Duration::from_secs(240), |r| {
        r["complete"] == true
    });
    // IPP's count alone carried the job without a second witness: nothing reprinted,
    // nothing counted as a disagreement; the later jobs were witnessed again.
    assert_eq!(r["inserted_ok"], expected, "{r:#}");
    assert_eq!(r["reprinted"], 0, "{r:#}");
    assert_eq!(r["disagreements"], 0, "{r:#}");
    let log = fs::read_to_string(dir.path().join("agent.log")).unwrap();
    let failed_at = log.find("SNMP poll failed").unwrap();
    assert!(
        log[failed_at..].contains("SNMP life count agrees with IPP"),
        "{log}"
    );
    let m = agent_metrics(dir.path());
    assert!(
        sample(&m, "pressrun_agent_snmp_failures_total{printer=\"p1\"}") >= 1.0,
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            "pressrun_agent_device_alerts_total{device=\"p1\",reason=\"snmp:offline\"}"
        ),
        1.0,
        "{m}"
    );
    assert!(
        sample(
            &m,
            "pressrun_agent_device_alerts_total{device=\"p1\",reason=\"snmp:unreachable\"}"
        ) >= 1.0,
        "{m}"
    );
    assert_eq!(
        sample(&m, "pressrun_agent_snmp_up{printer=\"p1\"}"),
        1.0,
        "{m}"
    );
}

#[test]
fn the_inserter_cable_pulled_mid_job_and_put_back_loses_no_piece() {
    let dir = tempfile::tempdir().unwrap();
    let (state, run_id) = composed(dir.path());
    let (_, before) = reconcile(&state, &run_id);
    let expected = before["expected"].as_u64().unwrap();
    let (_server, addr) = serve_dispatcher(&state);
    let printer = Printer::start_with_ms(&dir.path().join("printer"), 30);
    let (agent_end, device_end) = (dir.path().join("tty-agent"), dir.path().join("tty-device"));
    let mut socat = pty_pair(&agent_end, &device_end);
    let mut sim = Command::new(bin("printer-agent"));
    sim.args(["simulate-inserter", "--baud", "115200", "--piece-ms", "20"])
        .arg("--tty")
        .arg(&device_end)
        .arg("--follow-log")
        .arg(printer.dir.join("printed.log"))
        .args(["--idle-end-ms", "1500"]);
    let (sim, _) = spawn_listening(&mut sim, "open on ");
    let _sim = Proc(sim);
    let link = format!("tty = \"{}\"\nbaud = 115200", agent_end.display());
    let _agent = agent_with(dir.path(), &addr, &[("p1", &printer.uri, "i1", &link, "")]);
    print(&run_id, &addr);
    wait_for(dir.path(), &state, &run_id, Duration::from_secs(120), |r| {
        r["inserted_ok"].as_u64().unwrap_or(0) >= 3
    });
    // The cable is pulled: the line is gone on both sides for a second, then put back.
    let _ = Command::new("kill")
        .args(["-TERM", &socat.0.id().to_string()])
        .output();
    let _ = socat.0.wait();
    std::thread::sleep(Duration::from_secs(1));
    let _ = fs::remove_file(&agent_end);
    let _ = fs::remove_file(&device_end);
    socat = pty_pair(&agent_end, &device_end);
    let r = wait_for(dir.path(), &state, &run_id, Duration::from_secs(240), |r| {
        r["complete"] == true
    });
    drop(socat);
    assert_eq!(r["inserted_ok"], expected, "{r:#}");
    assert_eq!(r["reprinted"], 0, "{r:#}");
    assert_eq!(r["duplicates"], 0, "{r:#}");
    assert_eq!(r["by_inserter"]["i1"]["ok"], expected, "{r:#}");
    let log = fs::read_to_string(dir.path().join("agent.log")).unwrap();
    assert!(log.contains("inserter line closed"), "{log}");
    let m = agent_metrics(dir.path());
    assert!(
        sample(
            &m,
            "pressrun_agent_inserter_connects_total{inserter=\"i1\"}"
        ) >= 2.0,
        "{m}"
    );
}

#[test]
fn a_simplex_run_is_printed_one_impression_per_sheet_and_reconciled_over_grpc() {
    let dir = tempfile::tempdir().unwrap();
    let simplex = |text: String| {
        assert!(text.contains("duplex = true "));
        text.replace("duplex = true ", "duplex = false ")
    };
    let (state, run_id) = composed_edit(dir.path(), &simplex, None);
    let (_server, addr) = serve_dispatcher(&state);
    let printer = Printer::start(&dir.path().join("printer"));
    let (_ins, ins_addr) = inserter_per_sheet(&[], Some(&printer), 1);
    let _agent = agent(dir.path(), &addr, &printer.uri, &ins_addr, None);
    print(&run_id, &addr);
    let r = wait_for(dir.path(), &state, &run_id, Duration::from_secs(240), |r| {
        r["complete"] == true && r["sheets_printed"] == r["sheets"]
    });
    // Simplex: one impression per sheet, in the plan, at the printer and in the ledger.
    let sheets = r["sheets"].as_u64().unwrap();
    let impressions: u64 = printer.printed().values().sum();
    assert_eq!(impressions, sheets);
    // Print-Job said so: the printer's command saw one-sided on every impression.
    let log = fs::read_to_string(printer.dir.join("printed.log")).unwrap();
    assert!(log.lines().all(|l| l.contains("sides=one-sided")), "{log}");
    assert_eq!(r["reprinted"], 0, "{r:#}");
    assert_eq!(r["inserted_ok"], r["expected"], "{r:#}");
    // The operator's report from the server, as from the database.
    let remote = run(Command::new(bin("dispatcher")).args([
        "reconcile",
        &run_id,
        "--server",
        &addr,
        "--json",
    ]));
    assert_eq!(
        remote.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&remote.stderr)
    );
    let via: Value = serde_json::from_slice(&remote.stdout).unwrap();
    assert_eq!(via, r);
    let text = run(Command::new(bin("dispatcher")).args(["reconcile", &run_id, "--server", &addr]));
    assert!(String::from_utf8_lossy(&text.stdout).contains(": complete"));
    // A mistyped database is an error, never a new empty database.
    let typo = dir.path().join("no-such.sqlite");
    let res = run(Command::new(bin("dispatcher"))
        .args(["reconcile", &run_id, "--state"])
        .arg(&typo));
    assert_ne!(res.status.code(), Some(0));
    assert!(!typo.exists());
}

#[test]
fn jobs_on_a4_go_only_to_the_printer_that_has_a4_and_the_printer_is_told_the_media() {
    let dir = tempfile::tempdir().unwrap();
    let on_a4 = |text: String| {
        assert!(text.contains("duplex = true "));
        text.replacen(
            "duplex = true ",
            "media = \"iso_a4_210x297mm\"\nduplex = true ",
            1,
        )
    };
    let (state, run_id) = composed_edit(dir.path(), &on_a4, None);
    let (_server, addr) = serve_dispatcher(&state);
    let p1 = Printer::start(&dir.path().join("printer1"));
    let p2 = Printer::start(&dir.path().join("printer2"));
    let (_i1, i1) = inserter(&[], Some(&p1));
    let (_i2, i2) = inserter(&[], Some(&p2));
    let _agent = agent_with(
        dir.path(),
        &addr,
        &[
            (
                "p1",
                &p1.uri,
                "i1",
                &format!("tcp = \"{i1}\""),
                "media = [\"na_letter_8.5x11in\"]\n",
            ),
            (
                "p2",
                &p2.uri,
                "i2",
                &format!("tcp = \"{i2}\""),
                "media = [\"iso_a4_210x297mm\", \"iso_a3_297x420mm\"]\n",
            ),
        ],
    );
    wait_until(
        dir.path(),
        Duration::from_secs(30),
        "both printers attached",
        || {
            fleet(&addr)["devices"]
                .as_array()
                .is_some_and(|d| d.len() == 4)
        },
    );
    print(&run_id, &addr);
    let r = wait_for(dir.path(), &state, &run_id, Duration::from_secs(240), |r| {
        r["complete"] == true && r["sheets_printed"] == r["sheets"]
    });
    // Every job went to the A4 printer; the letter printer printed nothing.
    assert_eq!(r["by_printer"]["p2"], r["sheets"], "{r:#}");
    assert!(r["by_printer"].get("p1").is_none(), "{r:#}");
    assert!(p1.printed().is_empty());
    // Print-Job carried the media: the printer's command saw it on every impression.
    let log = fs::read_to_string(p2.dir.join("printed.log")).unwrap();
    assert!(!log.is_empty());
    assert!(log.lines().all(|l| l.contains("iso_a4_210x297mm")), "{log}");
}

fn kill9(p: &mut Proc) {
    let _ = p.0.kill();
    let _ = p.0.wait();
}

#[test]
fn an_agent_and_a_dispatcher_killed_mid_job_lose_and_double_count_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (state, run_id) = composed(dir.path());
    let (_, before) = reconcile(&state, &run_id);
    let expected = before["expected"].as_u64().unwrap();
    let sheets = before["sheets"].as_u64().unwrap();
    let (mut server, addr) = serve_dispatcher(&state);
    let printer = Printer::start(&dir.path().join("printer"));
    // Slow impressions, so that the kills land mid-job.
    fs::write(printer.dir.join("impression-ms"), "60").unwrap();
    let (_ins, ins_addr) = inserter(&[], Some(&printer));
    let mut agent_proc = agent(dir.path(), &addr, &printer.uri, &ins_addr, None);
    print(&run_id, &addr);
    let printed = |r: &Value| r["sheets_printed"].as_u64().unwrap();
    let r = wait_for(dir.path(), &state, &run_id, Duration::from_secs(60), |r| {
        printed(r) >= 4
    });
    // SIGKILL the agent mid-job and start it again on its own store.
    kill9(&mut agent_proc);
    let at_kill = printed(&r);
    std::thread::sleep(Duration::from_millis(500));
    let _agent = agent(dir.path(), &addr, &printer.uri, &ins_addr, None);
    let r = wait_for(dir.path(), &state, &run_id, Duration::from_secs(60), |r| {
        printed(r) >= at_kill + 8
    });
    assert!(
        printed(&r) < sheets,
        "the run ended before the dispatcher could be killed"
    );
    // SIGKILL the dispatcher mid-job and start it again on the same address and registry.
    kill9(&mut server);
    std::thread::sleep(Duration::from_millis(500));
    let (_server, again) = serve_dispatcher_on(&state, &addr);
    assert_eq!(again, addr);
    let r = wait_for(dir.path(), &state, &run_id, Duration::from_secs(240), |r| {
        r["complete"] == true && r["sheets_printed"].as_u64().unwrap() >= sheets
    });
    assert_eq!(r["inserted_ok"], expected, "{r:#}");
    assert_eq!(r["duplicates"], 0, "{r:#}");
    assert_eq!(r["disagreements"], 0, "{r:#}");
    assert_eq!(r["unresolved"], 0, "{r:#}");
    // Nothing printed twice: the printer's log has every impression once, and so has the
    // ledger (a job the agent was submitting when killed would be reprinted, not lost).
    let truth: u64 = printer.printed().values().sum();
    if r["reprinted"] == 0 {
        assert_eq!(r["sheets_printed"], sheets, "{r:#}");
        assert_eq!(truth, sheets * 2);
    }
    assert_eq!(truth, r["sheets_printed"].as_u64().unwrap() * 2, "{r:#}");
}

#[test]
fn two_printers_one_goes_down_and_its_work_moves_to_the_other() {
    let dir = tempfile::tempdir().unwrap();
    // Moving the unconfirmed pieces of the job in progress is not held by the cap.
    let (state, run_id) = composed_with(dir.path(), Some(100), None);
    let (_, before) = reconcile(&state, &run_id);
    let expected = before["expected"].as_u64().unwrap();
    let (_server, addr) =
        serve_dispatcher_with(&state, "127.0.0.1:0", &["--drain-after-seconds", "2"]);
    let p1 = Printer::start(&dir.path().join("printer1"));
    let p2 = Printer::start(&dir.path().join("printer2"));
    // Printer 2 is slow: it is in its first job when its power goes.
    fs::write(p2.dir.join("impression-ms"), "300").unwrap();
    let (_i1, i1) = inserter(&[], Some(&p1));
    let (_i2, i2) = inserter(&[], Some(&p2));
    let _agent = agent_with(
        dir.path(),
        &addr,
        &[
            ("p1", &p1.uri, "i1", &format!("tcp = \"{i1}\""), ""),
            ("p2", &p2.uri, "i2", &format!("tcp = \"{i2}\""), ""),
        ],
    );
    // Both printers attached before the run is printed: its jobs are spread over them.
    let start = Instant::now();
    loop {
        let fleet =
            run(Command::new(bin("dispatcher")).args(["fleet", "--server", &addr, "--json"]));
        let f: Value = serde_json::from_slice(&fleet.stdout).unwrap_or(Value::Null);
        if f["devices"].as_array().is_some_and(|d| d.len() == 4) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the agent did not attach: {}",
            fs::read_to_string(dir.path().join("agent.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    print(&run_id, &addr);
    let r = wait_for(dir.path(), &state, &run_id, Duration::from_secs(60), |r| {
        r["by_printer"]["p2"].as_u64().unwrap_or(0) >= 1
    });
    assert!(r["complete"] == false);
    // Printer 2 loses power: the printer, its D-Bus and the command printing (not the
    // inserter after it).
    let _ = Command::new("pkill")
        .args(["-KILL", "-f"])
        .arg(format!("{}/(spool|dbus)", p2.dir.display()))
        .status();
    let r = wait_for(dir.path(), &state, &run_id, Duration::from_secs(240), |r| {
        r["complete"] == true
    });
    assert_eq!(r["inserted_ok"], expected, "{r:#}");
    assert_eq!(r["unresolved"], 0, "{r:#}");
    assert_eq!(r["duplicates"], 0, "{r:#}");
    assert!(r["reprinted"].as_u64().unwrap() > 0, "{r:#}");
    // Every sheet was put out at least once (the printers' own logs), most by printer 1.
    // (A sheet printer 2 put out just before the power went, which its count never
    // confirmed, is inserted OK on the inserter's word alone.)
    let sheets = before["sheets"].as_u64().unwrap();
    let out: u64 = p1.printed().values().sum::<u64>() + p2.printed().values().sum::<u64>();
    assert!(out >= sheets * 2, "{out} impressions for {sheets} sheets");
    let by_p2 = r["by_printer"]["p2"].as_u64().unwrap();
    assert!(by_p2 < sheets / 2, "{r:#}");
}

#[test]
fn reprints_above_the_cap_wait_for_an_operator() {
    let dir = tempfile::tempdir().unwrap();
    // The example profile's cap: 10 % of a job's pieces; a jam in a job of 5 is above it.
    let (state, run_id) = composed(dir.path());
    let (_server, addr) = serve_dispatcher(&state);
    let printer = Printer::start(&dir.path().join("printer"));
    fs::write(printer.dir.join("jam-after"), "5").unwrap();
    let (_ins, ins_addr) = inserter(&[], Some(&printer));
    let _agent = agent(dir.path(), &addr, &printer.uri, &ins_addr, None);
    print(&run_id, &addr);
    // Everything else completes; the jammed job's pieces wait.
    let r = wait_for(dir.path(), &state, &run_id, Duration::from_secs(120), |r| {
        r["sheets_printed"].as_u64().unwrap() >= r["sheets"].as_u64().unwrap() - 8
            && r["unresolved_pieces"]
                .as_array()
                .unwrap()
                .iter()
                .all(|p| p["job"] == "J000001")
    });
    assert_eq!(r["complete"], false);
    assert_eq!(r["reprinted"], 0, "{r:#}");
    let held = run(Command::new(bin("dispatcher")).args(["print", &run_id, "--server", &addr]));
    let text = String::from_utf8_lossy(&held.stdout).to_string();
    assert!(
        text.contains("0 reprint jobs made, 1 jobs' reprints held"),
        "{text}"
    );
    assert!(!dir.path().join("out/jobs/J000001R1.pdf").exists());
    // The operator lets them through.
    let go = run(Command::new(bin("dispatcher")).args([
        "print",
        &run_id,
        "--server",
        &addr,
        "--reprint-held",
    ]));
    let text = String::from_utf8_lossy(&go.stdout).to_string();
    assert!(text.contains("1 reprint jobs made"), "{text}");
    let r = wait_for(dir.path(), &state, &run_id, Duration::from_secs(120), |r| {
        r["complete"] == true
    });
    assert!(r["reprinted"].as_u64().unwrap() > 0, "{r:#}");
}

#[test]
fn a_run_submitted_with_print_is_printed_once_it_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("registry.sqlite");
    let root_dir = dir.path().to_str().unwrap().to_string();
    let examples = root().join("examples");
    let (_server, addr) = serve_dispatcher_with(
        &state,
        "127.0.0.1:0",
        &[
            "--data-root",
            &root_dir,
            "--out-root",
            &root_dir,
            "--template-root",
            examples.to_str().unwrap(),
            "--template-root",
            &root_dir,
        ],
    );
    let printer = Printer::start(&dir.path().join("printer"));
    let (_ins, ins_addr) = inserter(&[], Some(&printer));
    let _agent = agent(dir.path(), &addr, &printer.uri, &ins_addr, None);
    let data = run(Command::new(bin("renderer")).args([
        "example-data",
        "statement",
        "--records",
        "12",
        "--seed",
        "4",
    ]));
    let data_path = dir.path().join("statements.jsonl");
    fs::write(&data_path, &data.stdout).unwrap();
    let profile = dir.path().join("profile.toml");
    let text = fs::read_to_string(examples.join("production/statement.toml")).unwrap();
    fs::write(
        &profile,
        text.replace("max-pieces = 5000", "max-pieces = 5"),
    )
    .unwrap();
    let submitted = run(Command::new(bin("dispatcher"))
        .args(["submit", "--server", &addr, "--print", "--production"])
        .arg(&profile)
        .args(["--template"])
        .arg(examples.join("statement"))
        .arg("--data")
        .arg(&data_path)
        .arg("--out")
        .arg(dir.path().join("out"))
        .args(["--run-date", "2026-11-23", "--batch-records", "10"]));
    assert!(
        submitted.status.success(),
        "{}",
        String::from_utf8_lossy(&submitted.stderr)
    );
    let run_id = String::from_utf8(submitted.stdout)
        .unwrap()
        .trim()
        .to_string();
    // Nobody calls `dispatcher print`: the server prints the run when it succeeds.
    let r = wait_for(dir.path(), &state, &run_id, Duration::from_secs(120), |r| {
        r.get("complete") == Some(&Value::Bool(true))
    });
    assert_eq!(r["inserted_ok"], r["expected"], "{r:#}");
    assert_eq!(r["expected"], 12, "{r:#}");
}

#[test]
fn an_agent_attaches_over_tls_with_its_token_and_without_it_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (state, run_id) = composed(dir.path());
    let (cert_pem, key_pem) = localhost_cert(dir.path());
    let (token, wrong) = (dir.path().join("token"), dir.path().join("wrong-token"));
    fs::write(&token, "agent-token").unwrap();
    fs::write(&wrong, "not-the-token").unwrap();
    let p = |p: &Path| p.to_str().unwrap().to_string();
    let (_server, addr) = serve_dispatcher_with(
        &state,
        "127.0.0.1:0",
        &[
            "--listen-tls-cert",
            &p(&cert_pem),
            "--listen-tls-key",
            &p(&key_pem),
            "--listen-token-file",
            &p(&token),
        ],
    );
    let addr = addr.replace("127.0.0.1", "localhost");
    let printer = Printer::start(&dir.path().join("printer"));
    let (_ins, ins_addr) = inserter(&[], Some(&printer));
    let link = format!("tcp = \"{ins_addr}\"");
    let lines = [("p1", printer.uri.as_str(), "i1", link.as_str(), "")];
    // With the wrong token the agent is refused and attaches nothing.
    let bad_dir = dir.path().join("bad");
    fs::create_dir_all(&bad_dir).unwrap();
    let mut bad = agent_args(
        &bad_dir,
        &addr,
        &lines,
        &[
            "--dispatcher-tls-ca",
            &p(&cert_pem),
            "--token-file",
            &p(&wrong),
        ],
    );
    let secure = [
        "--server",
        addr.as_str(),
        "--server-tls-ca",
        &p(&cert_pem),
        "--server-token-file",
        &p(&token),
    ];
    let fleet = || -> Value {
        let out = run(Command::new(bin("dispatcher"))
            .args(["fleet", "--json"])
            .args(secure));
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    };
    let start = Instant::now();
    loop {
        let log = fs::read_to_string(bad_dir.join("agent.log")).unwrap_or_default();
        if log.contains("attach refused") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{log}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(fleet()["devices"].as_array().map(Vec::len), Some(0));
    kill9(&mut bad);
    // With its token, over TLS, it attaches and the run prints.
    let _agent = agent_args(
        dir.path(),
        &addr,
        &lines,
        &[
            "--dispatcher-tls-ca",
            &p(&cert_pem),
            "--token-file",
            &p(&token),
        ],
    );
    let print = run(Command::new(bin("dispatcher"))
        .args(["print", &run_id])
        .args(secure));
    assert!(
        print.status.success(),
        "{}",
        String::from_utf8_lossy(&print.stderr)
    );
    let r = wait_for(dir.path(), &state, &run_id, Duration::from_secs(120), |r| {
        r["complete"] == true
    });
    assert_eq!(r["inserted_ok"], r["expected"], "{r:#}");
}
