//! Print production end to end: `dispatcher run --production` on the example statement
//! with a duplex profile of two envelopes, two feeder rules, householding and presort by
//! postal code. The jobs are checked against the input, the index, the print files (page by
//! page with poppler) and the Data Matrix codes (decoded with libdmtx's `dmtxread`), and
//! they must be the same bytes for any batch size, in-process or on three renderer nodes,
//! and after the dispatcher is killed in the middle of assembly.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pressrun_tests::*;
use serde_json::Value;

/// The example profile (duplex, fixed backs from the template's `<back>`), with the
/// duplicates flagged (printed and listed) and small jobs so that a run has many of them.
fn profile(dir: &Path) -> PathBuf {
    let text = fs::read_to_string(root().join("examples/production/statement.toml")).unwrap();
    assert!(text.contains("policy = \"suppress\"") && text.contains("max-pieces = 5000"));
    let text = text
        .replace("policy = \"suppress\"", "policy = \"flag\"")
        .replace("max-pieces = 5000", "max-pieces = 10");
    let path = dir.join("statement-test.toml");
    fs::write(&path, text).unwrap();
    path
}

/// 240 example statements plus: a second account of record 10's customer (a household),
/// an exact copy of record 20 (a duplicate) and a statement long enough to be split.
fn data(dir: &Path) -> (PathBuf, Vec<Value>) {
    let out = run(Command::new(bin("renderer")).args([
        "example-data",
        "statement",
        "--records",
        "240",
        "--seed",
        "11",
    ]));
    assert!(out.status.success());
    let mut records: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Household: the same person at the same address, another (personal) account.
    records[9]["account"]["type"] = "current".into();
    let mut second = records[30].clone();
    second["customer"] = records[9]["customer"].clone();
    second["account"]["type"] = "savings".into();
    second["account"]["number"] = "99000001".into();
    records.push(second);
    // Duplicate: record 20 again, byte for byte.
    records.push(records[19].clone());
    // Long: 6,000 transactions (155 pages), well over the 60 sheets of the largest envelope.
    let mut long = records[40].clone();
    long["account"]["number"] = "99000002".into();
    long["account"]["type"] = "business".into();
    let tx = long["transactions"][0].clone();
    let mut txs = Vec::new();
    for _ in 0..6000 {
        let mut t = tx.clone();
        t["amount"] = serde_json::from_str("0.00").unwrap();
        txs.push(t);
    }
    long["transactions"] = Value::Array(txs);
    long["statement"]["closing_balance"] = long["statement"]["opening_balance"].clone();
    records.push(long);
    let path = dir.join("statements.jsonl");
    let text: String = records.iter().map(|r| format!("{r}\n")).collect();
    fs::write(&path, text).unwrap();
    (path, records)
}

fn norm(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_whitespace() || ".,;:-'\"/".contains(c) {
            if !out.ends_with(' ') && !out.is_empty() {
                out.push(' ');
            }
        } else {
            out.extend(c.to_uppercase());
        }
    }
    out.trim_end().to_string()
}

fn run_production(data: &Path, out: &Path, profile: &Path, nodes: &[&str], batch: u64) {
    let res = run(&mut dispatcher_batch(
        data,
        out,
        nodes,
        batch,
        &["--production", profile.to_str().unwrap()],
    ));
    assert_eq!(
        res.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&res.stdout),
        String::from_utf8_lossy(&res.stderr)
    );
}

/// Asserts two runs wrote the same print jobs, manifests and lists, byte for byte.
fn assert_same_jobs(a: &Path, b: &Path, why: &str) {
    let (ja, jb) = (jobs(a), jobs(b));
    assert_eq!(
        ja.keys().collect::<Vec<_>>(),
        jb.keys().collect::<Vec<_>>(),
        "{why}"
    );
    for (name, bytes) in &ja {
        assert!(bytes == &jb[name], "{name} differs: {why}");
    }
}

/// The print jobs and manifests of a run, by name.
fn jobs(out: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for e in fs::read_dir(out.join("jobs")).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().to_string();
        if name != "commits.jsonl" {
            files.insert(name, fs::read(e.path()).unwrap());
        }
    }
    files
}

struct Piece {
    job: String,
    v: Value,
}

fn pieces(out: &Path) -> (Vec<Piece>, Vec<Value>) {
    let production: Value =
        serde_json::from_slice(&fs::read(out.join("jobs/production.json")).unwrap()).unwrap();
    let mut all = Vec::new();
    let mut summaries = Vec::new();
    for job in production["jobs"].as_array().unwrap() {
        let lines = jsonl(&out.join(job["manifest"].as_str().unwrap()));
        let (last, rest) = lines.split_last().unwrap();
        summaries.push(last["summary"].clone());
        for (i, p) in rest.iter().enumerate() {
            assert_eq!(
                p["piece"],
                format!("{:06}", i + 1),
                "pieces are numbered in order"
            );
            all.push(Piece {
                job: job["job"].as_str().unwrap().to_string(),
                v: p.clone(),
            });
        }
    }
    (all, summaries)
}

/// Decodes the Data Matrix code of page `page` of a print file (cropped around the
/// profile's mark: 8 mm from the left, 120 mm from the bottom, 10 mm square).
fn decode_mark(pdf: &Path, page: u32, dir: &Path) -> String {
    let px = |mm: f64| (mm / 25.4 * 200.0).round() as i64;
    let prefix = dir.join(format!("mark-{page}"));
    let out = tool(
        "pdftoppm",
        &[
            "-r",
            "200",
            "-f",
            &page.to_string(),
            "-l",
            &page.to_string(),
            "-x",
            &px(3.0).to_string(),
            "-y",
            &px(297.0 - 120.0 - 10.0 - 5.0).to_string(),
            "-W",
            &px(20.0).to_string(),
            "-H",
            &px(20.0).to_string(),
            "-singlefile",
            "-png",
            pdf.to_str().unwrap(),
            prefix.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = format!("{}.png", prefix.display());
    let out = Command::new("dmtxread")
        .args(["-N1", "-m", "20000", &png])
        .output()
        .unwrap_or_else(|e| {
            panic!("dmtxread (Debian dmtx-utils) is required by this test but cannot run ({e}): scripts/test.sh installs it")
        });
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn print_jobs_of_mail_pieces_are_right_deterministic_and_survive_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let profile = profile(dir.path());
    let (data, records) = data(dir.path());
    let out = dir.path().join("prod");
    run_production(&data, &out, &profile, &[], 100);

    // The ordinary run of the same input: documents and their hashes are the same.
    let plain = dir.path().join("plain");
    let res = run(&mut dispatcher_batch(&data, &plain, &[], 100, &[]));
    assert_eq!(res.status.code(), Some(0));
    let index = jsonl(&out.join("documents.jsonl"));
    assert_eq!(index.len(), records.len());
    let plain_index = jsonl(&plain.join("documents.jsonl"));
    for (a, b) in index.iter().zip(&plain_index) {
        assert_eq!(
            a["sha256"], b["sha256"],
            "marks never change a document's hash"
        );
        assert!(a.get("spool").is_some() && a.get("print_file").is_none());
    }
    let by_record: BTreeMap<u64, &Value> = index
        .iter()
        .map(|d| (d["record"].as_u64().unwrap(), d))
        .collect();

    let (pieces, summaries) = pieces(&out);
    // Every manifest line satisfies the documented schema.
    let schema: Value =
        serde_json::from_slice(&fs::read(root().join("docs/schema/manifest.schema.json")).unwrap())
            .unwrap();
    let validator = jsonschema::validator_for(&schema).expect("a valid schema");
    for e in fs::read_dir(out.join("jobs")).unwrap() {
        let path = e.unwrap().path();
        if path.to_string_lossy().ends_with(".manifest.jsonl") {
            for line in jsonl(&path) {
                if let Err(err) = validator.validate(&line) {
                    panic!("{}: {err}", path.display());
                }
            }
        }
    }
    assert!(summaries.len() > 3, "small jobs: {}", summaries.len());
    // Every document is in exactly one piece (a split one in each of its parts).
    let mut seen: BTreeMap<u64, Vec<(u32, u32)>> = BTreeMap::new();
    for p in &pieces {
        for d in p.v["documents"].as_array().unwrap() {
            let r = d["record"].as_u64().unwrap();
            assert_eq!(d["sha256"], by_record[&r]["sha256"]);
            let part = p.v.get("part").map_or((1, 1), |x| {
                (
                    x["k"].as_u64().unwrap() as u32,
                    x["n"].as_u64().unwrap() as u32,
                )
            });
            seen.entry(r).or_default().push(part);
        }
    }
    assert_eq!(seen.len(), records.len(), "every document is in a piece");
    for (r, parts) in &seen {
        let n = parts[0].1;
        let want: Vec<(u32, u32)> = (1..=n).map(|k| (k, n)).collect();
        assert_eq!(parts, &want, "record {r}: once, or once per part");
    }
    let long = records.len() as u64;
    assert!(seen[&long].len() >= 2, "the long statement was split");

    // Envelopes: the smallest that takes the piece's sheets; none above its capacity.
    for p in &pieces {
        let sheets = p.v["sheets"].as_array().unwrap().len();
        let want = if sheets <= 5 { "DL" } else { "C4" };
        assert!(sheets <= 60, "{} sheets", sheets);
        assert_eq!(p.v["envelope"], want);
    }

    // Presort: by country, then postcode, then record order, across all jobs.
    let key = |r: u64| {
        let c = &records[r as usize - 1]["customer"];
        (
            norm(c["country"].as_str().unwrap()),
            norm(c["postcode"].as_str().unwrap()),
            r,
        )
    };
    let keys: Vec<_> = pieces
        .iter()
        .map(|p| key(p.v["documents"][0]["record"].as_u64().unwrap()))
        .collect();
    assert!(
        keys.windows(2).all(|w| w[0] <= w[1]),
        "pieces are in sort order"
    );

    // Householding: records 10 and 241 share a piece; feeders are the OR of their rules.
    let household = pieces
        .iter()
        .find(|p| p.v["documents"][0]["record"] == 10)
        .expect("record 10 leads its piece");
    let members: Vec<u64> = household.v["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["record"].as_u64().unwrap())
        .collect();
    assert_eq!(members, [10, 241]);
    assert_eq!(household.v["householded"], true);
    let feeders_of = |r: u64| {
        let rec = &records[r as usize - 1];
        let mut f = 0u8;
        if rec["customer"]["region"] == "UK" {
            f |= 1;
        }
        if rec["statement"]["closing_balance"]
            .to_string()
            .starts_with('-')
        {
            f |= 2;
        }
        f
    };
    for p in &pieces {
        let want = p.v["documents"]
            .as_array()
            .unwrap()
            .iter()
            .fold(0, |f, d| f | feeders_of(d["record"].as_u64().unwrap()));
        assert_eq!(p.v["feeders"], format!("{want:02X}"));
    }
    // `dispatcher locate` finds a document and a piece where the manifests put them.
    let locate = |args: &[&str]| -> Vec<Value> {
        let res = run(Command::new(bin("dispatcher"))
            .args(["locate", "--out", out.to_str().unwrap()])
            .args(args));
        assert!(
            res.status.success(),
            "{}",
            String::from_utf8_lossy(&res.stderr)
        );
        String::from_utf8(res.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let found = locate(&["--record", "241"]);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["job"], household.job.as_str());
    assert_eq!(found[0]["piece"], household.v["piece"]);
    let doc241 = &household.v["documents"][1];
    assert_eq!(
        found[0]["pages"],
        serde_json::json!([doc241["first_page"], doc241["last_page"]])
    );
    let by_piece = locate(&[
        "--job",
        &household.job,
        "--piece",
        household.v["piece"].as_str().unwrap(),
    ]);
    assert_eq!(by_piece.len(), 1);
    assert_eq!(
        by_piece[0]["pages"][0],
        household.v["sheets"][0]["front_page"]
    );
    let parts = locate(&["--record", &long.to_string()]);
    assert_eq!(
        parts.len(),
        seen[&long].len(),
        "a split document is in each of its pieces"
    );
    let missing = run(Command::new(bin("dispatcher")).args([
        "locate",
        "--out",
        out.to_str().unwrap(),
        "--record",
        "99999",
    ]));
    assert_eq!(missing.status.code(), Some(1));

    // The run's pieces and sheets are in the ledger, assembled and nothing more.
    let state = out.join("run-state.sqlite");
    let runs =
        run(Command::new(bin("dispatcher")).args(["runs", "--state", state.to_str().unwrap()]));
    let listing = String::from_utf8(runs.stdout).unwrap();
    let run_id = listing
        .split_whitespace()
        .next()
        .expect("the run is listed")
        .to_string();
    let reconcile = || {
        let res = run(Command::new(bin("dispatcher")).args([
            "reconcile",
            &run_id,
            "--state",
            state.to_str().unwrap(),
            "--json",
        ]));
        let v: Value = serde_json::from_slice(&res.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&res.stderr)));
        (res.status.code(), v)
    };
    let (code, r) = reconcile();
    let sheets: usize = pieces
        .iter()
        .map(|p| p.v["sheets"].as_array().unwrap().len())
        .sum();
    assert_eq!(
        code,
        Some(1),
        "a run nothing of which is printed is not complete"
    );
    assert_eq!(r["expected"], pieces.len() as u64);
    assert_eq!(r["sheets"], sheets as u64);
    assert_eq!(r["print_jobs"], summaries.len() as u64);
    for key in [
        "printed",
        "inserted_ok",
        "reprinted",
        "resolved",
        "duplicates",
        "disagreements",
    ] {
        assert_eq!(r[key], 0, "{key}");
    }
    assert_eq!(r["unresolved"], pieces.len() as u64);
    assert_eq!(r["complete"], false);
    let piece = format!(
        "{}/{}",
        pieces[0].job,
        pieces[0].v["piece"].as_str().unwrap()
    );
    let resolve = |reason: &str, piece: &str| {
        run(Command::new(bin("dispatcher"))
            .args(["resolve", &run_id, "--piece", piece, "--reason", reason])
            .args(["--state", state.to_str().unwrap()]))
    };
    let res = resolve("withdrawn by the customer", &piece);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let (_, r) = reconcile();
    assert_eq!(
        (r["resolved"].as_u64(), r["unresolved"].as_u64()),
        (Some(1), Some(pieces.len() as u64 - 1))
    );
    let res = resolve("", &piece);
    assert_eq!(res.status.code(), Some(1), "a resolution needs a reason");
    let res = resolve("x", "J999999/1");
    assert_eq!(res.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&res.stderr).contains("no piece J999999/000001"));
    // `enter-jobs` enters nothing twice, and fills another ledger from the folder.
    let enter = |state: &Path| {
        let res = run(Command::new(bin("dispatcher")).args([
            "enter-jobs",
            "--out",
            out.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
        ]));
        assert!(
            res.status.success(),
            "{}",
            String::from_utf8_lossy(&res.stderr)
        );
        String::from_utf8(res.stdout).unwrap()
    };
    let jobs_n = summaries.len();
    assert!(enter(&state).contains(&format!(": 0 print jobs entered, {jobs_n} already")));
    let other = dir.path().join("other.sqlite");
    assert!(enter(&other).contains(&format!(": {jobs_n} print jobs entered, 0 already")));
    let res = run(Command::new(bin("dispatcher")).args([
        "reconcile",
        &run_id,
        "--json",
        "--state",
        other.to_str().unwrap(),
    ]));
    let r: Value = serde_json::from_slice(&res.stdout).unwrap();
    assert_eq!(
        (r["expected"].as_u64(), r["resolved"].as_u64()),
        (Some(pieces.len() as u64), Some(0))
    );

    // Duplicates: the copy of record 20 is flagged (and, with "flag", printed).
    let dups = jsonl(&out.join("jobs/duplicates.jsonl"));
    assert_eq!(dups.len(), 1, "{dups:?}");
    assert_eq!(dups[0]["record"], 242);
    assert_eq!(dups[0]["duplicate_of"], 20);
    assert_eq!(dups[0]["suppressed"], false);

    // Page and impression numbers against the print files, page by page.
    let mut decoded = 0;
    let mut fixed_backs = 0;
    for (j, summary) in summaries.iter().enumerate() {
        let pdf = out.join(summary["print_file"].as_str().unwrap());
        qpdf_check(&pdf);
        let pages = page_count(&pdf);
        assert_eq!(u64::from(pages), summary["pages"].as_u64().unwrap());
        assert_eq!(
            summary["impressions"],
            summary["sheets"].as_u64().unwrap() * 2
        );
        let text = pdftotext(&pdf, None);
        let page_text: Vec<&str> = text.split('\u{c}').collect();
        let mut impression = 0;
        let mut next_page = 1;
        for p in pieces.iter().filter(|p| p.job == summary["job"]) {
            let sheets = p.v["sheets"].as_array().unwrap();
            for (k, s) in sheets.iter().enumerate() {
                impression += 2;
                assert_eq!(
                    s["impressions"],
                    serde_json::json!([impression - 1, impression])
                );
                assert_eq!(s["sheet"], k + 1);
                assert_eq!(s["front_page"], next_page, "front pages follow each other");
                if s["back_page"].is_null() {
                    assert!(
                        page_text[next_page].trim().is_empty(),
                        "a blank back is blank"
                    );
                } else {
                    assert_eq!(s["back_page"], next_page + 1);
                    // An odd last page's back carries the template's <back> (the profile
                    // says back = "template"), and only such a back does.
                    let terms = page_text[next_page].contains("Terms and conditions");
                    assert_eq!(
                        s.get("back_fixed").is_some(),
                        terms,
                        "page {}",
                        next_page + 1
                    );
                    fixed_backs += usize::from(terms);
                }
                next_page += 2;
                // Every sheet's code of the first jobs, and of the split and household pieces.
                let wanted = j < 5 || p.v.get("part").is_some() || p.v["householded"] == true;
                if wanted && decoded < 400 {
                    let got =
                        decode_mark(&pdf, s["front_page"].as_u64().unwrap() as u32, dir.path());
                    let want = format!(
                        "PR1|{}|{}|{}/{}|{}",
                        p.job,
                        p.v["piece"].as_str().unwrap(),
                        k + 1,
                        sheets.len(),
                        p.v["feeders"].as_str().unwrap()
                    );
                    assert_eq!(got, want);
                    assert_eq!(p.v["marks"][k], want);
                    // The human-readable line says the same.
                    let line = format!(
                        "{} piece {} sheet {}/{} feeders {}",
                        p.job,
                        p.v["piece"].as_str().unwrap(),
                        k + 1,
                        sheets.len(),
                        p.v["feeders"].as_str().unwrap()
                    );
                    assert!(page_text[next_page - 3].contains(&line), "{line}");
                    decoded += 1;
                }
            }
            for d in p.v["documents"].as_array().unwrap() {
                let first = d["first_page"].as_u64().unwrap() as usize;
                let account = by_record[&d["record"].as_u64().unwrap()]["document_id"]
                    .as_str()
                    .unwrap()
                    .split('-')
                    .next()
                    .unwrap()
                    .to_string();
                assert!(
                    page_text[first - 1].contains(&account),
                    "page {first} of {} is record {}'s first page",
                    pdf.display(),
                    d["record"]
                );
            }
        }
        assert_eq!(next_page - 1, pages as usize);
    }
    assert!(decoded > 50, "decoded {decoded} codes");
    assert!(
        fixed_backs > 20,
        "{fixed_backs} backs carry the fixed content"
    );

    // Same jobs with another batch size, and on three renderer nodes.
    let out_1000 = dir.path().join("prod-1000");
    run_production(&data, &out_1000, &profile, &[], 1000);
    assert_same_jobs(&out, &out_1000, "batch size changes nothing");
    let nodes: Vec<NodeProc> = (0..3).map(|_| NodeProc::start()).collect();
    let addrs: Vec<&str> = nodes.iter().map(|n| n.addr.as_str()).collect();
    let out_farm = dir.path().join("prod-farm");
    run_production(&data, &out_farm, &profile, &addrs, 30);
    assert_same_jobs(&out, &out_farm, "the farm assembles the same jobs");
    drop(nodes);

    // Killed in the middle of assembly, then resumed: the same bytes, committed jobs kept.
    let out_kill = dir.path().join("prod-kill");
    let total = summaries.len();
    let mut child = dispatcher_batch(
        &data,
        &out_kill,
        &[],
        100,
        &["--production", profile.to_str().unwrap(), "--threads", "1"],
    )
    .spawn()
    .unwrap();
    wait_for_lines(
        &out_kill.join("jobs/commits.jsonl"),
        1,
        Duration::from_secs(120),
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let committed = fs::read_to_string(out_kill.join("jobs/commits.jsonl"))
        .unwrap()
        .lines()
        .count();
    assert!(
        committed < total,
        "killed mid-assembly ({committed} of {total} jobs)"
    );
    // A committed job damaged before the resume (a power cut, a bad disk) is written again.
    let first: Value = serde_json::from_str(
        fs::read_to_string(out_kill.join("jobs/commits.jsonl"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let damaged = out_kill.join(first["files"][0]["name"].as_str().unwrap());
    let bytes = fs::read(&damaged).unwrap();
    fs::write(&damaged, &bytes[..bytes.len() / 2]).unwrap();
    let res = run(&mut dispatcher_batch(
        &data,
        &out_kill,
        &[],
        100,
        &["--production", profile.to_str().unwrap()],
    ));
    assert_eq!(
        res.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let summary: Value =
        serde_json::from_slice(&fs::read(out_kill.join("summary.json")).unwrap()).unwrap();
    assert_eq!(
        summary["production"]["assembly"]["resumed_jobs"]
            .as_u64()
            .unwrap() as usize,
        committed - 1,
        "the damaged job is not kept"
    );
    let repaired = summary["production"]["assembly"]["repaired"].to_string();
    assert!(
        repaired.contains(first["job"].as_str().unwrap()),
        "{repaired}"
    );
    assert_same_jobs(&out, &out_kill, "resumed assembly gives the same jobs");
    // The resumed run's ledger holds every piece once.
    let kill_state = out_kill.join("run-state.sqlite");
    let res = run(Command::new(bin("dispatcher")).args([
        "runs",
        "--state",
        kill_state.to_str().unwrap(),
    ]));
    let kill_id = String::from_utf8(res.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let res = run(Command::new(bin("dispatcher")).args([
        "reconcile",
        &kill_id,
        "--json",
        "--state",
        kill_state.to_str().unwrap(),
    ]));
    let r: Value = serde_json::from_slice(&res.stdout).unwrap();
    assert_eq!(r["expected"], pieces.len() as u64);
    let lines: BTreeSet<String> = fs::read_to_string(out_kill.join("jobs/commits.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["job"].to_string())
        .collect();
    assert_eq!(lines.len(), total, "each job committed exactly once");
}

#[test]
fn a_bad_profile_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    let text = fs::read_to_string(root().join("examples/production/statement.toml"))
        .unwrap()
        .replace("above = \"split\"", "above = \"squash\"");
    fs::write(&bad, text).unwrap();
    let data = statements(dir.path(), 20);
    let res = run(&mut dispatcher(
        &data,
        &dir.path().join("out"),
        &[],
        &["--production", bad.to_str().unwrap()],
    ));
    assert_eq!(res.status.code(), Some(4));
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(err.contains("bad.toml:") && err.contains("squash"), "{err}");
    assert!(!dir.path().join("out").exists(), "nothing was written");
    // back = "template" with a template that has no <back>: refused before rendering.
    let res = run(Command::new(bin("dispatcher"))
        .args(["run", "--quiet", "--run-date", "2026-11-23", "--template"])
        .arg(root().join("examples/insurance-letter"))
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(dir.path().join("no-back"))
        .arg("--production")
        .arg(root().join("examples/production/statement.toml")));
    assert_eq!(res.status.code(), Some(1));
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(err.contains("has no <back>"), "{err}");
    assert!(!dir.path().join("no-back").exists(), "nothing was written");
    // Tagged print jobs are not made yet: refused before anything is written.
    let res = run(&mut dispatcher(
        &data,
        &dir.path().join("tagged"),
        &[],
        &[
            "--production",
            root()
                .join("examples/production/statement.toml")
                .to_str()
                .unwrap(),
            "--tagged-print",
        ],
    ));
    assert_eq!(res.status.code(), Some(1));
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        err.contains("tagged print jobs are not supported yet"),
        "{err}"
    );
    assert!(!dir.path().join("tagged").exists(), "nothing was written");
    for path in ["/dev/zero", "/etc"] {
        let res = run(&mut dispatcher(
            &data,
            &dir.path().join("out"),
            &[],
            &["--production", path],
        ));
        assert_eq!(res.status.code(), Some(4), "{path}");
    }
}

#[test]
fn simplex_jobs_route_other_channels_and_marks_can_go_on_backs() {
    let dir = tempfile::tempdir().unwrap();
    // The insurance letter, simplex, with three records for e-mail.
    let out = run(Command::new(bin("renderer")).args([
        "example-data",
        "insurance-letter",
        "--records",
        "30",
        "--seed",
        "2",
    ]));
    let mut records: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for i in [2, 5, 9] {
        records[i]["delivery"] = serde_json::json!({"channel": "email"});
    }
    let data = dir.path().join("letters.jsonl");
    fs::write(
        &data,
        records.iter().map(|r| format!("{r}\n")).collect::<String>(),
    )
    .unwrap();
    let letters = dir.path().join("letters");
    let res = run(Command::new(bin("dispatcher"))
        .args(["run", "--quiet", "--run-date", "2026-11-23", "--template"])
        .arg(root().join("examples/insurance-letter"))
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&letters)
        .arg("--production")
        .arg(root().join("examples/production/insurance-letter.toml")));
    assert_eq!(
        res.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let routed = jsonl(&letters.join("jobs/routed.jsonl"));
    let routed: Vec<(u64, &str)> = routed
        .iter()
        .map(|r| {
            (
                r["record"].as_u64().unwrap(),
                r["channel"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(routed, [(3, "email"), (6, "email"), (10, "email")]);
    let (letter_pieces, summaries) = pieces(&letters);
    assert_eq!(letter_pieces.len(), 27, "routed letters are not printed");
    assert!(letter_pieces.iter().all(|p| {
        p.v["documents"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| ![3, 6, 10].contains(&d["record"].as_u64().unwrap()))
    }));
    // Simplex: fronts only, one impression per sheet.
    for p in &letter_pieces {
        for s in p.v["sheets"].as_array().unwrap() {
            assert!(s["back_page"].is_null());
            assert_eq!(s["impressions"].as_array().unwrap().len(), 1);
        }
    }
    assert_eq!(summaries[0]["impressions"], summaries[0]["sheets"]);

    // The statement with marks on backs too: a back carries its sheet's code.
    let text = fs::read_to_string(root().join("examples/production/statement.toml"))
        .unwrap()
        .replace("marks-on-back = false", "marks-on-back = true");
    let profile = dir.path().join("backs.toml");
    fs::write(&profile, text).unwrap();
    let (data, _) = self::data(dir.path());
    let out = dir.path().join("backs");
    let res = run(&mut dispatcher_batch(
        &data,
        &out,
        &[],
        100,
        &["--production", profile.to_str().unwrap(), "--limit", "12"],
    ));
    assert_eq!(
        res.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let (pieces, _) = pieces(&out);
    let p = &pieces[0];
    let pdf = out.join(format!("jobs/{}.pdf", p.job));
    for (k, s) in p.v["sheets"].as_array().unwrap().iter().enumerate() {
        let back = s["back_page"].as_u64().unwrap() as u32;
        assert_eq!(
            decode_mark(&pdf, back, dir.path()),
            p.v["marks"][k].as_str().unwrap()
        );
    }
}
