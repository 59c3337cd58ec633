//! The deployment files parse and say what the README says they do (no container engine
//! runs on this project's machines, so this is all that can be checked here).

use pressrun_tests::root;
use serde::Deserialize;
use serde_norway::Value;

fn documents(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(root().join(path)).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{path}: {e}")))
        .collect()
}

fn kinds(docs: &[Value]) -> Vec<String> {
    docs.iter()
        .map(|d| d["kind"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn kubernetes_manifests_parse_and_wire_renderers_through_a_headless_service() {
    let r = documents("deploy/k8s/renderer.yaml");
    assert_eq!(kinds(&r), ["Deployment", "Service"]);
    assert!(
        r[1]["spec"]["clusterIP"].as_str() == Some("None"),
        "the renderer service must be headless"
    );
    let container = &r[0]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["readinessProbe"]["grpc"]["port"].as_u64(),
        Some(50051)
    );
    let d = documents("deploy/k8s/dispatcher.yaml");
    assert_eq!(kinds(&d), ["PersistentVolumeClaim", "Job"]);
    let args: Vec<&str> = d[1]["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        args.contains(&"--renderer=pressrun-renderer:50051")
            && args.iter().any(|a| a.starts_with("--state=/runs/"))
    );
}

#[test]
fn the_compose_file_parses_and_points_the_dispatcher_at_the_renderers() {
    let c = documents("deploy/compose.yaml");
    let services = &c[0]["services"];
    assert!(services["renderer"].is_mapping() && services["dispatcher"].is_mapping());
    let cmd: Vec<&str> = services["dispatcher"]["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(cmd.contains(&"--renderer=renderer:50051"));
}
