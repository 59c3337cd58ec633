//! Inputs the fuzzer (`tests/fuzz.rs`) found or was built to find, kept as tests: each
//! once panicked or hung, and is now an error with a reason.

use std::path::{Path, PathBuf};

use pressrun_engine::bundle::{Bundle, BundleError};
use pressrun_engine::example_data::{self, Example};
use pressrun_engine::run::compose::{Limits, Worker, compose};
use pressrun_engine::template::{BindParams, CompileOptions, compile};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn params() -> BindParams {
    BindParams {
        record_number: 1,
        run_date: "2024-04-02".into(),
    }
}

/// The example's bundle with one file's text edited.
fn edited(example: &str, file: &str, edit: impl Fn(&str) -> String) -> Bundle {
    let b = Bundle::from_dir(&examples().join(example), None).unwrap();
    let files = b
        .files
        .into_iter()
        .map(|(p, bytes)| {
            if p == file {
                let text = edit(std::str::from_utf8(&bytes).unwrap());
                (p, text.into_bytes())
            } else {
                (p, bytes)
            }
        })
        .collect();
    Bundle::from_files(files)
}

fn compile_errors(b: &Bundle) -> Vec<String> {
    match b.compile() {
        Err(BundleError::Compile(d)) => d.0.iter().map(|d| d.to_string()).collect(),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("the compile must fail"),
    }
}

#[test]
fn a_colour_with_a_multibyte_character_is_a_compile_error() {
    let b = edited("statement", "template/template.toml", |t| {
        t.replacen("color = \"#1a1a1a\"", "color = \"#€abc\"", 1)
    });
    let errors = compile_errors(&b);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("template/template.toml:49:10:"),
        "{}",
        errors[0]
    );
    assert!(errors[0].contains("bad colour"), "{}", errors[0]);
}

#[test]
fn a_length_beyond_any_page_is_a_compile_error_not_a_hang() {
    let b = edited("insurance-letter", "template/body.xml", |t| {
        t.replacen("padding=\"3pt\"", "padding=\"18446744073709551616pt\"", 1)
    });
    let errors = compile_errors(&b);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("template/body.xml:21:"),
        "{}",
        errors[0]
    );
}

#[test]
fn a_running_total_out_of_range_rejects_the_record() {
    let t = compile(&examples().join("statement"), &CompileOptions::default())
        .unwrap()
        .template;
    let mut record = example_data::record(Example::Statement, 1, 0);
    for tx in record["transactions"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .take(2)
    {
        tx["amount"] = serde_json::json!(1e300);
    }
    // 1e300 is beyond any exact decimal: the first such amount rejects the record by path.
    let e = t.bind(&record, &params()).unwrap_err();
    assert_eq!(e.path, "transactions[0].amount", "{e}");
    assert!(!e.reason.contains("1e300") && !e.reason.is_empty(), "{e}");
}

#[test]
fn a_document_over_the_page_limit_is_refused_early() {
    let b = edited("statement", "template/body.xml", |t| {
        t.replacen(
            "<body>",
            "<body><for each=\"tx in transactions\"><p>x</p><page-break/></for>",
            1,
        )
    });
    let t = b.compile().unwrap().template;
    let mut record = example_data::record(Example::Statement, 1, 0);
    let tx = record["transactions"][0].clone();
    record["transactions"] = serde_json::Value::Array(vec![tx; 10_001]);
    let mut worker = Worker::default();
    let e = compose(
        &t,
        &record,
        &params(),
        false,
        &Limits::default(),
        &mut worker,
    )
    .err()
    .expect("the document is refused");
    assert!(e.reason.contains("more than 2000 pages"), "{}", e.reason);
}

#[test]
fn right_to_left_text_before_latin_in_one_word_composes() {
    // U+FDFA (Arabic) then Latin text in one word: the shaper's clusters run backwards
    // and once underflowed the line breaker's run offsets.
    let b = edited("statement", "template/body.xml", |t| {
        t.replacen("<body>", "<body><p>\u{FDFA}Your transactions</p>", 1)
    });
    let t = b.compile().unwrap().template;
    let record = example_data::record(Example::Statement, 1, 0);
    let mut worker = Worker::default();
    let doc = compose(
        &t,
        &record,
        &params(),
        true,
        &Limits::default(),
        &mut worker,
    );
    assert!(doc.is_ok(), "{:?}", doc.err());
}
