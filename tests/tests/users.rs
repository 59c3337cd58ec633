//! `dispatcher serve --users`: named principals with roles, every call checked and
//! recorded, the users file read again on SIGHUP — with the real binaries on 127.0.0.1.

use std::fs;
use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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

fn users_file(path: &Path, users: &[(&str, &str, &str)]) {
    let mut text = String::new();
    for (name, roles, token) in users {
        text.push_str(&format!(
            "[[user]]\nname = \"{name}\"\nroles = [{roles}]\ntoken_sha256 = \"{}\"\n\n",
            hex::encode(Sha256::digest(token.as_bytes()))
        ));
    }
    fs::write(path, text).unwrap();
}

/// `dispatcher` with a token file holding `token` (none: no token at all).
fn as_user(dir: &Path, token: Option<&str>, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(bin("dispatcher"));
    cmd.args(args).env_remove("PRESSRUN_TOKEN");
    if let Some(t) = token {
        let f = dir.join(format!(
            "token-{}",
            hex::encode(Sha256::digest(t.as_bytes()))
        ));
        fs::write(&f, t).unwrap();
        cmd.arg("--token-file").arg(f);
    }
    run(&mut cmd)
}

fn access_log(state: &Path) -> Vec<Value> {
    let out = run(Command::new(bin("dispatcher"))
        .args(["access-log", "--json", "--state"])
        .arg(state));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn every_call_is_made_by_a_known_user_checked_against_its_roles_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.toml");
    users_file(
        &users,
        &[
            ("ana", "\"operator\"", "token-of-ana"),
            ("ben", "\"auditor\"", "token-of-ben"),
        ],
    );
    let state = dir.path().join("registry.sqlite");
    let log = dir.path().join("dispatcher.log");
    let mut child = Command::new(bin("dispatcher"))
        .args([
            "serve",
            "--log",
            "info",
            "--listen",
            "127.0.0.1:0",
            "--users",
        ])
        .arg(&users)
        .arg("--state")
        .arg(&state)
        .stdout(Stdio::piped())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let server = Proc(child);
    let addr = line
        .trim()
        .strip_prefix("dispatcher listening on ")
        .unwrap_or_else(|| panic!("{line:?}: {}", fs::read_to_string(&log).unwrap()))
        .to_string();
    let d = dir.path();

    // The auditor reads the fleet; the operator too.
    let fleet = ["fleet", "--server", addr.as_str(), "--json"];
    assert!(as_user(d, Some("token-of-ben"), &fleet).status.success());
    assert!(as_user(d, Some("token-of-ana"), &fleet).status.success());
    // The auditor may not print: refused, saying which role it takes.
    let print = ["print", "r-1", "--server", addr.as_str()];
    let refused = as_user(d, Some("token-of-ben"), &print);
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("operator"), "{why}");
    // No token, or a token nobody holds: unauthenticated.
    for t in [None, Some("token-of-nobody")] {
        let out = as_user(d, t, &fleet);
        assert!(!out.status.success());
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(e.contains("unknown bearer token"), "{e}");
    }

    // A new users file on SIGHUP: carl is known, ben no longer.
    users_file(
        &users,
        &[
            ("ana", "\"operator\"", "token-of-ana"),
            ("carl", "\"auditor\", \"operator\"", "token-of-carl"),
        ],
    );
    let hup = |n: usize| {
        assert!(
            Command::new("kill")
                .args(["-HUP", &server.0.id().to_string()])
                .status()
                .unwrap()
                .success()
        );
        let start = Instant::now();
        while fs::read_to_string(&log)
            .unwrap()
            .matches("users file")
            .count()
            < n
        {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no reload logged"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    hup(1);
    assert!(as_user(d, Some("token-of-carl"), &fleet).status.success());
    assert!(!as_user(d, Some("token-of-ben"), &fleet).status.success());
    // A broken file on SIGHUP changes nothing.
    fs::write(&users, "[[user]]\nname = 7\n").unwrap();
    hup(2);
    assert!(fs::read_to_string(&log).unwrap().contains("not reloaded"));
    assert!(as_user(d, Some("token-of-carl"), &fleet).status.success());

    // Every check is in the access log, with who, what and the verdict.
    let entries = access_log(&state);
    let got: Vec<(String, String, bool)> = entries
        .iter()
        .map(|e| {
            (
                e["principal"].as_str().unwrap().to_string(),
                e["action"].as_str().unwrap().to_string(),
                e["allowed"].as_bool().unwrap(),
            )
        })
        .collect();
    let want: Vec<(String, String, bool)> = [
        ("ben", "Fleet", true),
        ("ana", "Fleet", true),
        ("ben", "PrintRun", false),
        ("(unknown)", "Fleet", false),
        ("(unknown)", "Fleet", false),
        ("carl", "Fleet", true),
        ("(unknown)", "Fleet", false),
        ("carl", "Fleet", true),
    ]
    .iter()
    .map(|(p, a, ok)| (p.to_string(), a.to_string(), *ok))
    .collect();
    assert_eq!(got, want);
    assert_eq!(entries[2]["target"], "r-1");
    drop(server);

    // A users file that is not one stops the server at start with its line.
    fs::write(
        &users,
        "[[user]]\nname = \"x\"\nroles = [\"boss\"]\ntoken_sha256 = \"00\"\n",
    )
    .unwrap();
    for bad in [users.as_path(), Path::new("/dev/zero")] {
        let out = run(Command::new(bin("dispatcher"))
            .args(["serve", "--listen", "127.0.0.1:0", "--users"])
            .arg(bad)
            .arg("--state")
            .arg(&state));
        assert!(!out.status.success());
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(e.contains(&bad.display().to_string()), "{e}");
    }
}

#[test]
fn the_example_users_file_satisfies_the_schema_and_the_server_takes_it() {
    let schema: Value = serde_json::from_str(
        &fs::read_to_string(root().join("docs/schema/users.schema.json")).unwrap(),
    )
    .unwrap();
    let v = jsonschema::validator_for(&schema).expect("a valid schema");
    let text = fs::read_to_string(root().join("examples/users.toml")).unwrap();
    let json = serde_json::to_value(toml::from_str::<toml::Table>(&text).unwrap()).unwrap();
    let errors: Vec<String> = v.iter_errors(&json).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    // What the schema refuses, the server refuses too.
    for bad in [
        text.replacen("[\"operator\"]", "[\"boss\"]", 1),
        text.replacen("[\"operator\"]", "[]", 1),
        text.replacen("name = \"root\"", "name = \"root user\"", 1),
    ] {
        let json = serde_json::to_value(toml::from_str::<toml::Table>(&bad).unwrap()).unwrap();
        assert!(v.iter_errors(&json).next().is_some());
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("users.toml");
        fs::write(&f, &bad).unwrap();
        let out = run(Command::new(bin("dispatcher"))
            .args(["serve", "--listen", "127.0.0.1:0", "--users"])
            .arg(&f)
            .arg("--state")
            .arg(dir.path().join("s.sqlite")));
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("users.toml:"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
