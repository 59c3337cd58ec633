//! `agent.toml`: the example satisfies the documented JSON Schema and `printer-agent
//! check` accepts it; broken files are refused by both, naming what is wrong.

use std::process::Command;

use pressrun_tests::{bin, root};
use serde_json::Value;

fn schema() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("docs/schema/agent.schema.json")).unwrap(),
    )
    .unwrap();
    jsonschema::validator_for(&schema).expect("a valid schema")
}

fn as_json(text: &str) -> Value {
    serde_json::to_value(toml::from_str::<toml::Table>(text).unwrap()).unwrap()
}

fn check(text: &str) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(bin("printer-agent"))
        .args(["check", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_example_agent_toml_is_valid_and_checked() {
    let text = std::fs::read_to_string(root().join("examples/production/agent.toml")).unwrap();
    let v = schema();
    let errors: Vec<String> = v
        .iter_errors(&as_json(&text))
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let (code, out, err) = check(&text);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains(
            "printer line1-printer: ipp://10.20.0.21:631/ipp/print (duplex, mono), SNMPv2c"
        ),
        "{out}"
    );
    assert!(
        out.contains("inserter line1-inserter: serial /dev/ttyUSB0 at 19200 baud"),
        "{out}"
    );
    assert!(
        out.contains("inserter line1-inserter-b: tcp 10.20.0.31:7001"),
        "{out}"
    );
}

#[test]
fn broken_agent_files_are_refused_by_the_schema_and_by_check() {
    let good = std::fs::read_to_string(root().join("examples/production/agent.toml")).unwrap();
    let v = schema();
    let cases: [(&str, String, &str); 5] = [
        (
            "both lines",
            good.replace(
                "tcp = \"10.20.0.31:7001\"",
                "tcp = \"10.20.0.31:7001\"\ntty = \"/dev/ttyS1\"",
            ),
            "inserter[1]: give either tty or tcp",
        ),
        (
            "v2c without community",
            good.replace(", community = \"public\"", ""),
            "printer[0].snmp.community",
        ),
        (
            "v3 privacy without its key",
            good.replace("priv_key_file = \"/etc/pressrun/line1-colour.priv\"\n", ""),
            "priv_protocol and priv_key_file go together",
        ),
        (
            "not ipp",
            good.replace("ipp://10.20.0.22", "http://10.20.0.22"),
            "printer[1].uri",
        ),
        (
            "unknown key",
            good.replace("speed_ppm = 90", "speed = 90"),
            "unknown field `speed`",
        ),
    ];
    for (what, text, message) in cases {
        assert!(!v.is_valid(&as_json(&text)), "the schema accepts {what}");
        let (code, _, err) = check(&text);
        assert_eq!(code, Some(1), "{what}");
        assert!(err.contains(message), "{what}: {err}");
    }
    // What a schema cannot say is still checked.
    let (code, _, err) = check(&good.replace(
        "inserter = \"line1-inserter-b\"",
        "inserter = \"line1-inserter\"",
    ));
    assert_eq!(code, Some(1));
    assert!(
        err.contains("printer[1].inserter: \"line1-inserter\" already follows another printer"),
        "{err}"
    );
}
