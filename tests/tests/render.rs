//! End-to-end: the real `renderer` binary on the example templates, checked with qpdf and poppler.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use pressrun_tests::{bin, jsonl, page_count, pdftotext, qpdf_check, root, run, tool};
use serde_json::Value;

fn example_data(example: &str, records: u64, seed: u64) -> Vec<Value> {
    let out = run(Command::new(bin("renderer")).args([
        "example-data",
        example,
        "--records",
        &records.to_string(),
        "--seed",
        &seed.to_string(),
    ]));
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

fn write_lines(path: &Path, lines: &[String]) {
    fs::write(path, lines.join("\n") + "\n").unwrap();
}

fn render(template: &str, data: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let t = root().join("examples").join(template);
    let mut cmd = Command::new(bin("renderer"));
    cmd.args([
        "render",
        "--quiet",
        "--run-date",
        "2026-11-23",
        "--template",
    ])
    .arg(t)
    .arg("--data")
    .arg(data)
    .arg("--out")
    .arg(out)
    .args(extra);
    run(&mut cmd)
}

fn print_files(out: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("print-")
        })
        .collect();
    v.sort();
    v
}

#[test]
fn statement_run_end_to_end_with_bad_records() {
    let dir = tempfile::tempdir().unwrap();
    let records = example_data("statement", 40, 7);
    let mut lines: Vec<String> = records.iter().map(|r| r.to_string()).collect();
    lines[4] = "{\"customer\": {\"name\": \"Broken".into();
    let mut missing = records[9].clone();
    missing["customer"].as_object_mut().unwrap().remove("name");
    lines[9] = missing.to_string();
    let mut wrong = records[14].clone();
    wrong["transactions"][2]["amount"] = Value::String("twelve".into());
    lines[14] = wrong.to_string();
    let data = dir.path().join("statements.jsonl");
    write_lines(&data, &lines);
    let out = dir.path().join("out");

    let res = render(
        "statement",
        &data,
        &out,
        &["--per-document", "--batch-records", "16"],
    );
    let stdout = String::from_utf8_lossy(&res.stdout);
    assert_eq!(
        res.status.code(),
        Some(3),
        "exit 3 = completed with rejections; stderr: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert!(
        stdout.contains("records 40 · documents 37") && stdout.contains("rejected 3"),
        "{stdout}"
    );

    // Exceptions: line numbers, field paths, reasons.
    let exc = jsonl(&out.join("exceptions.jsonl"));
    let got: Vec<(u64, String)> = exc
        .iter()
        .map(|e| {
            (
                e["line"].as_u64().unwrap(),
                e["field"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(got[0], (5, String::new()));
    assert_eq!(got[1], (10, "customer.name".to_string()));
    assert_eq!(got[2], (15, "transactions[2].amount".to_string()));
    assert!(
        exc.iter()
            .all(|e| !e["reason"].as_str().unwrap().is_empty())
    );
    assert!(
        exc[0]["reason"].as_str().unwrap().contains("JSON"),
        "{}",
        exc[0]
    );

    // Index: one line per document, in input order, pages add up to the print files.
    let index = jsonl(&out.join("documents.jsonl"));
    assert_eq!(index.len(), 37);
    let recs: Vec<u64> = index
        .iter()
        .map(|d| d["record"].as_u64().unwrap())
        .collect();
    assert!(
        recs.windows(2).all(|w| w[0] < w[1])
            && !recs.contains(&5)
            && !recs.contains(&10)
            && !recs.contains(&15)
    );
    let files = print_files(&out);
    assert_eq!(files.len(), 3, "40 records in batches of 16");
    let total: u64 = index.iter().map(|d| d["pages"].as_u64().unwrap()).sum();
    let in_files: u64 = files.iter().map(|f| page_count(f) as u64).sum();
    assert_eq!(total, in_files);
    for f in &files {
        qpdf_check(f);
        let fonts = tool("pdffonts", &[f.to_str().unwrap()]);
        let listing = String::from_utf8_lossy(&fonts.stdout);
        let rows: Vec<&str> = listing.lines().skip(2).collect();
        assert!(!rows.is_empty());
        for row in rows {
            assert!(
                row.contains("Identity-H") && row.contains("yes yes"),
                "font not embedded as a subset: {row}"
            );
        }
    }
    // first_page numbers are consistent within each print file.
    for pair in index.windows(2) {
        if pair[0]["print_file"] == pair[1]["print_file"] {
            assert_eq!(
                pair[1]["first_page"].as_u64().unwrap(),
                pair[0]["first_page"].as_u64().unwrap() + pair[0]["pages"].as_u64().unwrap()
            );
        }
    }

    // Text comes back out (accents, Greek, Cyrillic via ToUnicode).
    let text = pdftotext(&files[0], None);
    let name = records[0]["customer"]["name"].as_str().unwrap();
    assert!(
        text.contains(name),
        "customer name {name:?} not in extracted text"
    );

    // Per-document PDFs: tagged, titled, "Page X of Y", header repeated on each page.
    let mut multi = 0;
    for d in &index {
        let pdf = out.join(d["pdf"].as_str().unwrap());
        let pages = d["pages"].as_u64().unwrap() as u32;
        assert_eq!(page_count(&pdf), pages);
        if pages < 2 || multi >= 3 {
            continue;
        }
        multi += 1;
        qpdf_check(&pdf);
        let info =
            String::from_utf8_lossy(&tool("pdfinfo", &[pdf.to_str().unwrap()]).stdout).to_string();
        assert!(
            info.lines()
                .any(|l| l.starts_with("Tagged:") && l.contains("yes")),
            "{info}"
        );
        for p in 1..=pages {
            let t = pdftotext(&pdf, Some((p, p)));
            let squashed: String = t.split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(
                squashed.contains(&format!("Page {p} of {pages}")),
                "page {p}/{pages}: {squashed}"
            );
            if p > 1 && p < pages {
                assert!(
                    squashed.contains("Description"),
                    "table header not repeated on page {p}: {squashed}"
                );
            }
        }
    }
    assert!(multi > 0, "the sample should contain multi-page statements");
}

#[test]
fn the_same_input_gives_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("s.jsonl");
    write_lines(
        &data,
        &example_data("statement", 12, 3)
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>(),
    );
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    assert!(
        render(
            "statement",
            &data,
            &a,
            &["--per-document", "--threads", "2"]
        )
        .status
        .success()
    );
    assert!(
        render(
            "statement",
            &data,
            &b,
            &["--per-document", "--threads", "1", "--batch-records", "5"]
        )
        .status
        .success()
    );
    // Print files cut differently, but document hashes are identical.
    let ia = jsonl(&a.join("documents.jsonl"));
    let ib = jsonl(&b.join("documents.jsonl"));
    let hashes = |v: &[Value]| {
        v.iter()
            .map(|d| d["sha256"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(hashes(&ia), hashes(&ib));
    for d in &ia {
        let name = d["pdf"].as_str().unwrap();
        assert_eq!(
            fs::read(a.join(name)).unwrap(),
            fs::read(b.join(name)).unwrap(),
            "{name} differs"
        );
    }
    // Same batching, same print-file bytes.
    let c = dir.path().join("c");
    assert!(
        render(
            "statement",
            &data,
            &c,
            &["--per-document", "--threads", "1"]
        )
        .status
        .success()
    );
    for f in print_files(&a) {
        let name = f.file_name().unwrap();
        assert_eq!(
            fs::read(&f).unwrap(),
            fs::read(c.join(name)).unwrap(),
            "{name:?} differs"
        );
    }
    assert_eq!(
        fs::read(a.join("documents.jsonl")).unwrap(),
        fs::read(c.join("documents.jsonl")).unwrap()
    );
}

#[test]
fn duplex_starts_every_document_on_a_new_sheet() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("s.jsonl");
    write_lines(
        &data,
        &example_data("statement", 10, 21)
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>(),
    );
    let out = dir.path().join("out");
    assert!(
        render(
            "statement",
            &data,
            &out,
            &["--duplex", "--batch-documents", "4"]
        )
        .status
        .success()
    );
    let index = jsonl(&out.join("documents.jsonl"));
    let sheets: u64 = index.iter().map(|d| d["sheets"].as_u64().unwrap()).sum();
    // 10 documents, at most 4 per print file: the batch is cut into three parts.
    let files = print_files(&out);
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "print-00001-02.pdf",
            "print-00001-03.pdf",
            "print-00001.pdf"
        ]
    );
    let pages: u64 = files.iter().map(|f| page_count(f) as u64).sum();
    assert_eq!(pages, sheets * 2);
    assert_eq!(
        index
            .iter()
            .filter(|d| d["print_file"] == "print-00001.pdf")
            .count(),
        4
    );
    for d in &index {
        assert_eq!(
            d["first_page"].as_u64().unwrap() % 2,
            1,
            "a document starts on a back side: {d}"
        );
    }
    for f in &files {
        qpdf_check(f);
    }
}

#[test]
fn insurance_letters_from_csv() {
    let dir = tempfile::tempdir().unwrap();
    let records = example_data("insurance-letter", 6, 4);
    let headers = [
        "policyholder.name",
        "policyholder.address_lines",
        "policyholder.postcode",
        "policyholder.city",
        "policyholder.region",
        "policy.number",
        "policy.type",
        "policy.renewal_date",
        "policy.premium_items",
        "policy.total_premium",
    ];
    let mut w = String::new();
    w.push_str(&headers.join(","));
    w.push('\n');
    for r in &records {
        let cells: Vec<String> = headers
            .iter()
            .map(|h| {
                let mut v = r;
                for part in h.split('.') {
                    v = &v[part];
                }
                let s = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                format!("\"{}\"", s.replace('"', "\"\""))
            })
            .collect();
        w.push_str(&cells.join(","));
        w.push('\n');
    }
    w.push_str(
        "\"Nobody\",\"[]\",\"X\",\"Y\",\"UK\",\"P1\",\"home\",\"not-a-date\",\"[]\",\"0\"\n",
    );
    let data = dir.path().join("letters.csv");
    fs::write(&data, w).unwrap();
    let out = dir.path().join("out");
    let res = render("insurance-letter", &data, &out, &[]);
    assert_eq!(
        res.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let exc = jsonl(&out.join("exceptions.jsonl"));
    assert_eq!(exc.len(), 1);
    assert_eq!(exc[0]["line"].as_u64(), Some(8));
    assert_eq!(exc[0]["field"].as_str(), Some("policy.renewal_date"));
    let files = print_files(&out);
    qpdf_check(&files[0]);
    let text = pdftotext(&files[0], None);
    for r in &records {
        let number = r["policy"]["number"].as_str().unwrap();
        assert!(text.contains(number), "{number} missing");
    }
}

#[test]
fn a_character_no_font_has_is_a_warning_not_a_loss() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = example_data("statement", 1, 2).remove(0);
    r["customer"]["name"] = Value::String("Anna 🦀 Kowalska".into());
    let data = dir.path().join("s.jsonl");
    write_lines(&data, &[r.to_string()]);
    let out = dir.path().join("out");
    let res = render("statement", &data, &out, &[]);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let warnings = jsonl(&out.join("warnings.jsonl"));
    assert!(
        warnings
            .iter()
            .any(|w| w["message"].as_str().unwrap().contains("U+1F980")),
        "{warnings:?}"
    );
    assert_eq!(jsonl(&out.join("documents.jsonl")).len(), 1);
}

#[test]
fn a_bad_template_fails_with_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("statement");
    copy_dir(&root().join("examples/statement"), &t);
    let body = t.join("body.xml");
    let text = fs::read_to_string(&body).unwrap();
    let at = text.find("<body>").expect("body.xml has <body>") + "<body>".len();
    let line = text[..at].lines().count() as u32 + 1;
    let broken = format!("{}\n<paragraf>oops</paragraf>{}", &text[..at], &text[at..]);
    fs::write(&body, broken).unwrap();
    let frag = root().join("examples/fragments");
    let out = run(Command::new(bin("renderer"))
        .args(["check", "--template"])
        .arg(&t)
        .arg("--fragments")
        .arg(&frag));
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("body.xml:{line}:")),
        "expected body.xml:{line}: in\n{err}"
    );
    assert!(err.contains("paragraf"), "{err}");
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            fs::copy(e.path(), dest).unwrap();
        }
    }
}
