//! The deployment files parse, say what the README says they do, and their command lines
//! start the real binaries (with the secrets they name replaced by generated ones): no
//! container engine runs on this project's machines, so this is what can be checked here.

use std::fs;
use std::path::Path;
use std::process::Command;

use pressrun_tests::{bin, free_addr, root, run, spawn_listening};
use serde::Deserialize;
use serde_norway::Value;

fn documents(path: &str) -> Vec<Value> {
    let text = fs::read_to_string(root().join(path)).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{path}: {e}")))
        .collect()
}

fn kinds(docs: &[Value]) -> Vec<String> {
    docs.iter()
        .map(|d| d["kind"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

/// A certificate for `localhost`, its key, and a token, in `dir`.
fn secrets(dir: &Path) {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    fs::write(dir.join("tls.crt"), cert.pem()).unwrap();
    fs::write(dir.join("tls.key"), signing_key.serialize_pem()).unwrap();
    fs::write(dir.join("ca.crt"), cert.pem()).unwrap();
    fs::write(dir.join("token"), "deploy-test-token\n").unwrap();
}

/// Starts `renderer` with `args` and checks it serves; kills it.
fn renderer_starts(args: &[String]) {
    let (mut child, addr) = spawn_listening(
        Command::new(bin("renderer")).args(args),
        "renderer listening on ",
    );
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn kubernetes_renderers_run_as_a_numeric_user_with_tls_and_a_token_behind_a_headless_service() {
    let r = documents("deploy/k8s/renderer.yaml");
    assert_eq!(kinds(&r), ["Deployment", "Service"]);
    assert!(
        r[1]["spec"]["clusterIP"].as_str() == Some("None"),
        "the renderer service must be headless"
    );
    let pod = &r[0]["spec"]["template"]["spec"];
    assert!(
        pod["securityContext"]["runAsUser"]
            .as_u64()
            .is_some_and(|u| u > 0)
    );
    assert!(pod["securityContext"]["fsGroup"].as_u64().is_some());
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    let container = &pod["containers"][0];
    let args = strings(&container["args"]);
    for needed in [
        "--tls-cert=",
        "--tls-key=",
        "--token-file=",
        "--health-listen=",
    ] {
        assert!(
            args.iter().any(|a| a.starts_with(needed)),
            "{needed} missing: {args:?}"
        );
    }
    let health = args
        .iter()
        .find_map(|a| a.strip_prefix("--health-listen=0.0.0.0:"))
        .unwrap();
    assert_eq!(
        container["readinessProbe"]["grpc"]["port"].as_u64(),
        Some(health.parse().unwrap())
    );
    // The same command line, on loopback with generated secrets, starts a node.
    let dir = tempfile::tempdir().unwrap();
    secrets(dir.path());
    let d = dir.path().display().to_string();
    let local: Vec<String> = args
        .iter()
        .map(|a| {
            let a = a
                .replace("/etc/pressrun/tls", &d)
                .replace("/etc/pressrun/token", &d);
            match a.split_once('=') {
                Some(("--listen", _)) => "--listen=127.0.0.1:0".into(),
                Some(("--health-listen", _)) => format!("--health-listen={}", free_addr()),
                Some(("--metrics-listen", _)) => format!("--metrics-listen={}", free_addr()),
                _ => a,
            }
        })
        .collect();
    renderer_starts(&local);
}

#[test]
fn the_kubernetes_run_job_talks_tls_with_a_token_and_its_command_line_parses() {
    let d = documents("deploy/k8s/dispatcher.yaml");
    assert_eq!(kinds(&d), ["PersistentVolumeClaim", "Job"]);
    let pod = &d[1]["spec"]["template"]["spec"];
    assert!(
        pod["securityContext"]["runAsUser"]
            .as_u64()
            .is_some_and(|u| u > 0)
    );
    assert!(pod["securityContext"]["fsGroup"].as_u64().is_some());
    let args = strings(&pod["containers"][0]["args"]);
    assert!(args.contains(&"--renderer=pressrun-renderer:50051".to_string()));
    assert!(args.iter().any(|a| a.starts_with("--state=/runs/")));
    assert!(args.iter().any(|a| a.starts_with("--tls-ca=")));
    assert!(args.iter().any(|a| a.starts_with("--token-file=")));
    // With the paths moved here, the command line parses and the run gets as far as
    // looking up the renderer service (which does not exist here).
    let dir = tempfile::tempdir().unwrap();
    secrets(dir.path());
    let d = dir.path().display().to_string();
    fs::create_dir_all(dir.path().join("runs/input")).unwrap();
    let records =
        run(Command::new(bin("renderer")).args(["example-data", "statement", "--records", "2"]));
    fs::write(dir.path().join("runs/input/records.jsonl"), records.stdout).unwrap();
    let local: Vec<String> = args
        .iter()
        .map(|a| {
            a.replace("/etc/pressrun/tls", &d)
                .replace("/etc/pressrun/token", &d)
                .replace("/runs/", &format!("{d}/runs/"))
                .replace(
                    "/opt/pressrun/examples",
                    &root().join("examples").display().to_string(),
                )
                .replace("0.0.0.0:9100", &free_addr())
        })
        .collect();
    let res = run(Command::new(bin("dispatcher")).args(&local));
    let err = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(1), "{err}");
    assert!(err.contains("pressrun-renderer:50051"), "{err}");
}

#[test]
fn the_systemd_unit_loads_tls_and_the_token_as_credentials_and_starts_a_node() {
    let unit =
        fs::read_to_string(root().join("deploy/systemd/pressrun-renderer@.service")).unwrap();
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    for cred in ["token", "tls.crt", "tls.key"] {
        assert!(unit.contains(&format!("LoadCredential={cred}:")), "{cred}");
        assert!(exec.contains(&format!("%d/{cred}")), "{exec}");
    }
    let dir = tempfile::tempdir().unwrap();
    secrets(dir.path());
    let args: Vec<String> = exec
        .split_whitespace()
        .skip(1)
        .map(|a| {
            a.replace("%d", &dir.path().display().to_string())
                .replace("0.0.0.0:%i", "127.0.0.1:0")
        })
        .collect();
    renderer_starts(&args);
}

#[test]
fn the_image_runs_as_a_numeric_user_and_a_node_needs_its_token() {
    let docker = fs::read_to_string(root().join("deploy/Dockerfile")).unwrap();
    assert!(
        docker.lines().any(|l| l.trim() == "USER 10001:10001"),
        "{docker}"
    );
    assert!(docker.contains("--token-file"), "{docker}");
}

#[test]
fn the_compose_file_parses_and_points_the_dispatcher_at_the_renderers() {
    let c = documents("deploy/compose.yaml");
    let services = &c[0]["services"];
    assert!(services["renderer"].is_mapping() && services["dispatcher"].is_mapping());
    let cmd = strings(&services["dispatcher"]["command"]);
    assert!(cmd.contains(&"--renderer=renderer:50051".to_string()));
    assert!(cmd.iter().any(|a| a.starts_with("--token-file=")));
}
