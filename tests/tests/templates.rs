//! The template registry through `dispatcher serve --users` and `dispatcher template`:
//! publish, four eyes, effective dates at their boundaries, rights refused and recorded,
//! a version fetched back as a folder — with the real binaries on 127.0.0.1.

use std::fs;
use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use pressrun_tests::*;
use serde_json::Value;
use sha2::{Digest, Sha256};

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const USERS: [(&str, &str); 4] = [
    ("ann", "author"),
    ("bob", "approver"),
    ("olga", "operator"),
    ("root", "admin"),
];

struct Server {
    _proc: Proc,
    addr: String,
    dir: std::path::PathBuf,
    state: std::path::PathBuf,
}

impl Server {
    fn start(dir: &Path) -> Self {
        let mut text = String::new();
        for (name, role) in USERS {
            let token = format!("token-of-{name}");
            fs::write(dir.join(format!("{name}.token")), &token).unwrap();
            text.push_str(&format!(
                "[[user]]\nname = \"{name}\"\nroles = [\"{role}\"]\ntoken_sha256 = \"{}\"\n\n",
                hex::encode(Sha256::digest(token.as_bytes()))
            ));
        }
        let users = dir.join("users.toml");
        fs::write(&users, text).unwrap();
        let state = dir.join("registry.sqlite");
        let mut child = Command::new(bin("dispatcher"))
            .args(["serve", "--listen", "127.0.0.1:0", "--users"])
            .arg(&users)
            .arg("--state")
            .arg(&state)
            .arg("--data-root")
            .arg(dir)
            .arg("--out-root")
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("dispatcher listening on ")
            .unwrap_or_else(|| panic!("{line:?}"))
            .to_string();
        Self {
            _proc: Proc(child),
            addr,
            dir: dir.to_path_buf(),
            state,
        }
    }

    /// `dispatcher template ARGS` as `user`.
    fn template(&self, user: &str, args: &[&str]) -> Output {
        run(Command::new(bin("dispatcher"))
            .env_remove("PRESSRUN_TOKEN")
            .args(["template", "--server", &self.addr, "--token-file"])
            .arg(self.dir.join(format!("{user}.token")))
            .args(args))
    }

    fn ok(&self, user: &str, args: &[&str]) -> String {
        let out = self.template(user, args);
        assert!(
            out.status.success(),
            "{user} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn refused(&self, user: &str, args: &[&str], why: &str) {
        let out = self.template(user, args);
        assert!(!out.status.success(), "{user} {args:?} was not refused");
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(e.contains(why), "{user} {args:?}: {e}");
    }
}

#[test]
fn a_template_goes_from_draft_to_in_force_with_four_eyes_and_dated_lookups() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let statement = root().join("examples/statement");
    let statement = statement.to_str().unwrap();

    // Published by its author as a draft: NAME@VERSION from the manifest.
    let id = s.ok("ann", &["publish", statement]);
    assert_eq!(id.trim(), "statement@1.0.0");
    let id = id.trim();
    // The approver may not publish; the same files again change nothing.
    s.refused("bob", &["publish", statement], "author");
    assert_eq!(s.ok("ann", &["publish", statement]).trim(), id);
    // A draft cannot be approved; the author cannot approve their own version.
    s.refused("bob", &["approve", id, "--comment", "ok"], "submitted");
    s.ok("ann", &["submit", id]);
    s.refused("ann", &["approve", id, "--comment", "mine"], "approver");
    // The operator lacks the right: refused, and the attempt is recorded.
    s.refused("olga", &["approve", id, "--comment", "x"], "approver");
    s.ok(
        "bob",
        &["approve", id, "--comment", "legal and brand checked"],
    );
    // Four eyes: even an admin may not approve a version they published.
    let letter = root().join("examples/insurance-letter");
    let letter_id = s.ok("root", &["publish", letter.to_str().unwrap()]);
    let letter_id = letter_id.trim();
    s.ok("root", &["submit", letter_id]);
    s.refused(
        "root",
        &["approve", letter_id, "--comment", "mine"],
        "four eyes",
    );
    s.ok("bob", &["reject", letter_id, "--comment", "wrong clause"]);
    s.refused(
        "bob",
        &["schedule", letter_id, "--from", "2027-01-01"],
        "rejected",
    );
    // Not in force before it is scheduled; then from its first day, not the day before,
    // and until the day before its end.
    let in_force = |on: &str| s.template("olga", &["in-force", "statement", "--on", on]);
    assert_eq!(in_force("2027-01-01").status.code(), Some(1));
    s.refused("ann", &["schedule", id, "--from", "2027-01-01"], "approver");
    s.ok(
        "bob",
        &["schedule", id, "--from", "2027-01-01", "--to", "2028-01-01"],
    );
    assert_eq!(in_force("2026-12-31").status.code(), Some(1));
    for on in ["2027-01-01", "2027-12-31"] {
        let out = in_force(on);
        assert_eq!(out.status.code(), Some(0), "{on}");
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("statement@1.0.0 "));
    }
    assert_eq!(in_force("2028-01-01").status.code(), Some(1));

    // A production run names the template: refused on a day it is not in force, or for
    // a version that is not approved; run from the registry's bundle when it is.
    let data = dir.path().join("statements.jsonl");
    let records = run(Command::new(bin("renderer")).args([
        "example-data",
        "statement",
        "--records",
        "12",
        "--seed",
        "4",
    ]));
    fs::write(&data, records.stdout).unwrap();
    let submit = |template: &str, day: &str, out: &str| {
        run(Command::new(bin("dispatcher"))
            .env_remove("PRESSRUN_TOKEN")
            .args(["submit", "--server", &s.addr, "--token-file"])
            .arg(dir.path().join("olga.token"))
            .args(["--template", template, "--data"])
            .arg(&data)
            .arg("--out")
            .arg(dir.path().join(out))
            .args(["--run-date", day]))
    };
    let refused = submit("statement", "2026-12-31", "early");
    assert!(!refused.status.success());
    let e = String::from_utf8_lossy(&refused.stderr);
    assert!(
        e.contains("no approved version is in force on 2026-12-31"),
        "{e}"
    );
    let e = submit("statement@1.0.0", "2028-01-01", "late");
    assert!(String::from_utf8_lossy(&e.stderr).contains("until 2028-01-01"));
    let e = submit("insurance-letter@1.0.0", "2027-02-01", "rejected");
    assert!(String::from_utf8_lossy(&e.stderr).contains("rejected, not approved"));
    let ok = submit("statement", "2027-02-01", "run");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let run_id = String::from_utf8(ok.stdout).unwrap().trim().to_string();
    let watched = run(Command::new(bin("dispatcher"))
        .env_remove("PRESSRUN_TOKEN")
        .args(["watch", "--server", &s.addr, "--token-file"])
        .arg(dir.path().join("olga.token"))
        .arg(&run_id));
    assert_eq!(
        watched.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&watched.stderr)
    );
    let summary: Value =
        serde_json::from_str(&fs::read_to_string(dir.path().join("run/summary.json")).unwrap())
            .unwrap();
    let hash = s.ok("olga", &["in-force", "statement", "--on", "2027-02-01"]);
    let hash = hash.split_whitespace().nth(1).unwrap();
    assert!(summary.to_string().contains(hash), "{summary:#}");

    // The history: who, when, why.
    let show: Value = serde_json::from_str(&s.ok("olga", &["show", id, "--json"])).unwrap();
    assert_eq!(show["state"], "approved");
    assert_eq!(show["author"], "ann");
    assert_eq!(show["effective_from"], "2027-01-01");
    let history: Vec<(String, String)> = show["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap().to_string(),
                e["principal"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = [
        ("published", "ann"),
        ("submitted", "ann"),
        ("approved", "bob"),
        ("scheduled", "bob"),
    ];
    assert_eq!(history, want.map(|(a, b)| (a.to_string(), b.to_string())));
    assert_eq!(show["history"][2]["comment"], "legal and brand checked");

    // Fetched back as a folder, it is the same template: the same hash when published.
    let back = dir.path().join("back");
    s.ok("olga", &["fetch", id, "--out", back.to_str().unwrap()]);
    assert!(back.join("template/template.toml").is_file());
    assert!(back.join("fragments").is_dir());
    let again = s.ok("ann", &["publish", back.join("template").to_str().unwrap()]);
    assert_eq!(again.trim(), id);
    s.refused(
        "olga",
        &["fetch", id, "--out", back.to_str().unwrap()],
        "does not exist yet",
    );
    // A new version from the fetched folder, and the readable diff between the two.
    let manifest = back.join("template/template.toml");
    let text = fs::read_to_string(&manifest).unwrap();
    assert!(text.contains("version = \"1.0.0\""));
    fs::write(
        &manifest,
        text.replace("version = \"1.0.0\"", "version = \"1.0.1\""),
    )
    .unwrap();
    let v2 = s.ok("ann", &["publish", back.join("template").to_str().unwrap()]);
    assert_eq!(v2.trim(), "statement@1.0.1");
    let d = s.template("olga", &["diff", id, "statement@1.0.1"]);
    assert_eq!(d.status.code(), Some(1));
    let d = String::from_utf8_lossy(&d.stdout);
    assert!(
        d.contains("--- statement@1.0.0/template/template.toml"),
        "{d}"
    );
    assert!(
        d.contains("-version = \"1.0.0\"") && d.contains("+version = \"1.0.1\""),
        "{d}"
    );
    assert!(!d.contains("body.xml"), "{d}");
    assert_eq!(s.template("olga", &["diff", id, id]).status.code(), Some(0));

    // A preview of the draft: watermarked on every page and flagged; the approved version
    // in force renders without it; a name with no version in force that day is refused.
    let record = run(Command::new(bin("renderer")).args([
        "example-data",
        "statement",
        "--records",
        "1",
        "--seed",
        "5",
    ]));
    let record = String::from_utf8(record.stdout).unwrap();
    let render = |template: &str, day: &str| {
        render_now(&s.addr, "token-of-ann", template, day, record.trim())
    };
    let (pdf, preview) = render("statement@1.0.1", "2027-02-01").unwrap();
    assert!(preview);
    let path = dir.path().join("preview.pdf");
    fs::write(&path, &pdf).unwrap();
    qpdf_check(&path);
    let pages = page_count(&path);
    for p in 1..=pages {
        let text = pdftotext(&path, Some((p, p)));
        let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(flat.contains("PREVIEW – NOT APPROVED"), "page {p}: {text}");
    }
    let (pdf, preview) = render("statement@1.0.0", "2027-02-01").unwrap();
    assert!(!preview);
    let path = dir.path().join("approved.pdf");
    fs::write(&path, &pdf).unwrap();
    assert!(!pdftotext(&path, None).contains("PREVIEW"));
    let e = render("statement", "2026-06-01").unwrap_err();
    assert!(e.contains("no approved version is in force"), "{e}");
    let list: Vec<Value> = s
        .ok("olga", &["list", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(list.len(), 3);
    let listed = list.iter().find(|v| v["id"] == id).unwrap();
    assert_eq!(listed["hash"], show["hash"]);
    assert!(
        list.iter()
            .any(|v| v["id"] == letter_id && v["state"] == "rejected")
    );

    // A bad template fails at publication with its file and line.
    let bad = dir.path().join("bad");
    fs::create_dir(&bad).unwrap();
    for f in ["template.toml", "body.xml"] {
        fs::copy(root().join("examples/statement").join(f), bad.join(f)).unwrap();
    }
    fs::create_dir(bad.join("assets")).unwrap();
    for e in fs::read_dir(root().join("examples/statement/assets")).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), bad.join("assets").join(e.file_name())).unwrap();
    }
    let manifest = fs::read_to_string(bad.join("template.toml")).unwrap();
    fs::write(
        bad.join("template.toml"),
        manifest.replace(
            "fragments = \"../fragments\"",
            &format!(
                "fragments = \"{}\"",
                root().join("examples/fragments").display()
            ),
        ),
    )
    .unwrap();
    let body = fs::read_to_string(bad.join("body.xml")).unwrap();
    fs::write(bad.join("body.xml"), body.replacen("</", "<</", 1)).unwrap();
    s.refused("ann", &["publish", bad.to_str().unwrap()], "body.xml");

    // Every call was checked and recorded, the refusals with their reason.
    let log = run(Command::new(bin("dispatcher"))
        .args(["access-log", "--json", "--state"])
        .arg(&s.state));
    let entries: Vec<Value> = String::from_utf8(log.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(entries.iter().any(|e| e["principal"] == "olga"
        && e["action"] == "TemplateApprove"
        && e["allowed"] == false
        && e["target"] == id));
    assert!(entries.iter().any(|e| e["principal"] == "bob"
        && e["action"] == "TemplateApprove"
        && e["allowed"] == true));
}

/// `RenderNow` of a registry template as the holder of `token`: the PDF and whether it
/// is a preview, or the refusal.
fn render_now(
    addr: &str,
    token: &str,
    template: &str,
    day: &str,
    record: &str,
) -> Result<(Vec<u8>, bool), String> {
    use pressrun_proto::v1::dispatcher_client::DispatcherClient;
    use pressrun_proto::v1::{OutputParams, RenderNowRequest, render_document_response};
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let bearer: tonic::metadata::MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
        let mut client =
            DispatcherClient::with_interceptor(channel, move |mut req: tonic::Request<()>| {
                req.metadata_mut().insert("authorization", bearer.clone());
                Ok(req)
            });
        let answer = client
            .render_now(RenderNowRequest {
                template: template.into(),
                template_dir: String::new(),
                params: Some(OutputParams {
                    run_date: day.into(),
                    compression: 1,
                    ..Default::default()
                }),
                record_json: record.into(),
            })
            .await
            .map_err(|e| e.message().to_string())?
            .into_inner();
        match answer.result {
            Some(render_document_response::Result::Document(d)) => Ok((d.pdf.to_vec(), d.preview)),
            other => Err(format!("no document: {other:?}")),
        }
    })
}
