//! End-to-end: `dispatcher serve` driven by `submit` / `watch` / `status` / `cancel` and by
//! its gRPC API (on-demand rendering), on 127.0.0.1.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use pressrun_proto::v1::dispatcher_client::DispatcherClient;
use pressrun_proto::v1::{OutputParams, RenderNowRequest, render_document_response};
use pressrun_tests::{
    bin, jsonl, localhost_cert, page_count, qpdf_check, root, run, spawn_listening,
};

struct Server {
    child: Child,
    addr: String,
}

impl Server {
    /// A server whose data and output roots are `dir` and whose template root is examples/.
    fn start(dir: &Path) -> Server {
        Self::start_with(dir, &[])
    }

    fn start_with(dir: &Path, extra: &[&str]) -> Server {
        let (child, addr) = spawn_listening(
            Command::new(bin("dispatcher"))
                .args(["serve", "--listen", "127.0.0.1:0", "--state"])
                .arg(dir.join("state.sqlite"))
                .arg("--data-root")
                .arg(dir)
                .arg("--out-root")
                .arg(dir)
                .arg("--template-root")
                .arg(root().join("examples"))
                .args(extra),
            "dispatcher listening on ",
        );
        Server { child, addr }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn statements(dir: &Path, n: u64) -> PathBuf {
    let out = run(Command::new(bin("renderer")).args([
        "example-data",
        "statement",
        "--records",
        &n.to_string(),
        "--seed",
        "9",
    ]));
    let path = dir.join("statements.jsonl");
    fs::write(&path, out.stdout).unwrap();
    path
}

fn run_args(data: &Path, out: &Path) -> Vec<String> {
    let t = root().join("examples/statement");
    [
        "--template",
        t.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--run-date",
        "2026-11-23",
        "--batch-records",
        "10",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn submit(server: &Server, data: &Path, out: &Path) -> String {
    let res = run(Command::new(bin("dispatcher"))
        .args(["submit", "--server", &server.addr])
        .args(run_args(data, out)));
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    String::from_utf8(res.stdout).unwrap().trim().to_string()
}

/// `dispatcher submit --production PROFILE …`: its output, whether it succeeded or not.
fn submit_production(
    server: &Server,
    profile: &Path,
    data: &Path,
    out: &Path,
) -> std::process::Output {
    run(Command::new(bin("dispatcher"))
        .args(["submit", "--server", &server.addr, "--production"])
        .arg(profile)
        .args(run_args(data, out)))
}

fn watch(server: &Server, id: &str) -> (Option<i32>, String) {
    let res = run(Command::new(bin("dispatcher")).args(["watch", "--server", &server.addr, id]));
    (
        res.status.code(),
        String::from_utf8_lossy(&res.stdout).to_string(),
    )
}

#[test]
fn submitted_runs_are_watched_listed_cancelled_and_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let data = statements(dir.path(), 120);
    let reference = dir.path().join("reference");
    let res = run(Command::new(bin("renderer"))
        .arg("render")
        .arg("--quiet")
        .args(run_args(&data, &reference)));
    assert!(res.status.success());
    let server = Server::start(dir.path());

    // Cancelled at once: the run ends as cancelled.
    let out = dir.path().join("served");
    let id = submit(&server, &data, &out);
    let cancel =
        run(Command::new(bin("dispatcher")).args(["cancel", "--server", &server.addr, &id]));
    assert!(cancel.status.success());
    let (code, log) = watch(&server, &id);
    assert!(
        log.contains("cancelled") || log.contains("succeeded"),
        "{log}"
    );
    if !log.contains("cancelled") {
        // The run finished before the cancel arrived: its folder is finished, and a second
        // submission into it is refused.
        let res = run(Command::new(bin("dispatcher"))
            .args(["submit", "--server", &server.addr])
            .args(run_args(&data, &out)));
        assert!(!res.status.success());
        return;
    }
    assert_eq!(code, Some(1));

    // Submitted again, the same run resumes and completes with the embedded run's bytes.
    let again = submit(&server, &data, &out);
    assert_eq!(again, id, "the same run has the same id");
    let (code, log) = watch(&server, &id);
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("succeeded") && log.contains("documents 120"),
        "{log}"
    );
    for name in [
        "documents.jsonl",
        "exceptions.jsonl",
        "print-00001.pdf",
        "print-00012.pdf",
    ] {
        assert!(
            fs::read(out.join(name)).unwrap() == fs::read(reference.join(name)).unwrap(),
            "{name} differs"
        );
    }
    assert_eq!(jsonl(&out.join("documents.jsonl")).len(), 120);
    let status = run(Command::new(bin("dispatcher")).args(["status", "--server", &server.addr]));
    assert!(String::from_utf8_lossy(&status.stdout).contains(&id));
}

#[test]
fn one_document_is_rendered_on_demand_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let data = statements(dir.path(), 3);
    let record = fs::read_to_string(&data)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    let server = Server::start(dir.path());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut client = DispatcherClient::connect(format!("http://{}", server.addr))
            .await
            .unwrap();
        let params = OutputParams {
            run_date: "2026-11-23".into(),
            compression: 1,
            ..Default::default()
        };
        let template_dir = root().join("examples/statement").display().to_string();
        let answer = client
            .render_now(RenderNowRequest {
                template: String::new(),
                template_dir: template_dir.clone(),
                params: Some(params.clone()),
                record_json: record.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        let Some(render_document_response::Result::Document(doc)) = answer.result else {
            panic!("no document: {answer:?}")
        };
        let entry = doc.entry.unwrap();
        let pdf = dir.path().join("one.pdf");
        fs::write(&pdf, &doc.pdf).unwrap();
        qpdf_check(&pdf);
        assert_eq!(page_count(&pdf), entry.pages);
        // A bad record is rejected with a reason, not an error of the call.
        let bad = client
            .render_now(RenderNowRequest {
                template: String::new(),
                template_dir,
                params: Some(params),
                record_json: "{\"customer\": 1}".into(),
            })
            .await
            .unwrap()
            .into_inner();
        let Some(render_document_response::Result::Rejected(r)) = bad.result else {
            panic!("expected a rejection")
        };
        assert!(!r.reason.is_empty());
    });
}

#[test]
fn the_dispatcher_link_takes_tls_and_a_bearer_token() {
    let dir = tempfile::tempdir().unwrap();
    let data = statements(dir.path(), 12);
    let (cert_pem, key_pem) = localhost_cert(dir.path());
    let token = dir.path().join("token");
    fs::write(&token, "operator-token").unwrap();
    let p = |p: &PathBuf| p.to_str().unwrap().to_string();
    let server = Server::start_with(
        dir.path(),
        &[
            "--listen-tls-cert",
            &p(&cert_pem),
            "--listen-tls-key",
            &p(&key_pem),
            "--listen-token-file",
            &p(&token),
        ],
    );
    let addr = server.addr.replace("127.0.0.1", "localhost");
    let secure = [
        "--server",
        addr.as_str(),
        "--server-tls-ca",
        &p(&cert_pem),
        "--server-token-file",
        &p(&token),
    ]
    .map(str::to_string);
    let out = dir.path().join("out");
    let res = run(Command::new(bin("dispatcher"))
        .arg("submit")
        .args(&secure)
        .args(run_args(&data, &out)));
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let id = String::from_utf8(res.stdout).unwrap().trim().to_string();
    let watch = run(Command::new(bin("dispatcher"))
        .arg("watch")
        .args(&secure)
        .arg(&id));
    assert_eq!(
        watch.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&watch.stdout)
    );
    // Without the token, or without TLS, the server refuses.
    let no_token = run(Command::new(bin("dispatcher")).args([
        "status",
        "--server",
        &addr,
        "--server-tls-ca",
        &p(&cert_pem),
    ]));
    assert_eq!(no_token.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&no_token.stderr)
            .to_lowercase()
            .contains("token"),
        "{}",
        String::from_utf8_lossy(&no_token.stderr)
    );
    let plain = run(Command::new(bin("dispatcher")).args([
        "status",
        "--server",
        &addr,
        "--server-token-file",
        &p(&token),
    ]));
    assert_eq!(plain.status.code(), Some(1));
}

#[test]
fn a_submitted_run_assembles_print_jobs_with_a_profile_under_the_template_root() {
    let dir = tempfile::tempdir().unwrap();
    let data = statements(dir.path(), 60);
    let profile = root().join("examples/production/statement.toml");
    let reference = dir.path().join("reference");
    let res = run(Command::new(bin("renderer"))
        .args([
            "render",
            "--quiet",
            "--production",
            profile.to_str().unwrap(),
        ])
        .args(run_args(&data, &reference)));
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let profiles = dir.path().join("profiles");
    fs::create_dir(&profiles).unwrap();
    let server = Server::start_with(dir.path(), &["--template-root", profiles.to_str().unwrap()]);
    let out = dir.path().join("served");
    let res = submit_production(&server, &profile, &data, &out);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let id = String::from_utf8(res.stdout).unwrap().trim().to_string();
    let (code, log) = watch(&server, &id);
    assert_eq!(code, Some(0), "{log}");
    for name in ["J000001.pdf", "J000001.manifest.jsonl", "production.json"] {
        assert!(
            fs::read(out.join("jobs").join(name)).unwrap()
                == fs::read(reference.join("jobs").join(name)).unwrap(),
            "{name} differs from the in-process run"
        );
    }
    // A profile whose feeder rule cannot be decided for some records (a number compared
    // with a name): those documents are listed as unassembled, and the run exits 3 —
    // `renderer render` and `dispatcher watch` alike.
    let bad = profiles.join("bad.toml");
    let text = fs::read_to_string(&profile).unwrap().replace(
        "when = { field = \"customer.region\", equals = \"UK\" }",
        "when = { field = \"customer.name\", greater-than = \"0\" }",
    );
    assert!(text.contains("customer.name\", greater-than"));
    fs::write(&bad, text).unwrap();
    let local = dir.path().join("bad-local");
    let res = run(Command::new(bin("renderer"))
        .args(["render", "--quiet", "--production", bad.to_str().unwrap()])
        .args(run_args(&data, &local)));
    assert_eq!(
        res.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let listed = jsonl(&local.join("jobs/unassembled.jsonl"));
    assert_eq!(listed.len(), 60);
    assert_eq!(listed[0]["field"], "customer.name");
    let res = submit_production(&server, &bad, &data, &dir.path().join("bad-served"));
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let id = String::from_utf8(res.stdout).unwrap().trim().to_string();
    let (code, log) = watch(&server, &id);
    assert_eq!(code, Some(3), "{log}");

    // A profile outside the server's template roots is refused before anything runs.
    let outside = dir.path().join("p.toml");
    fs::copy(&profile, &outside).unwrap();
    let res = submit_production(&server, &outside, &data, &dir.path().join("other"));
    assert!(!res.status.success());
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        err.contains("PermissionDenied") || err.contains("permission") || err.contains("outside"),
        "{err}"
    );
}
