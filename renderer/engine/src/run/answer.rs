//! A backend's answer is checked before anything is written: it must be the output of the
//! shard that was asked for — every record accounted for once, in order, file names that
//! belong to that shard, counts that add up, the right template. A bad answer is a backend
//! failure, never output.

use std::collections::BTreeSet;

use super::backend::ShardWork;
use super::output::print_file_name;
use super::shard::ShardOutput;

/// Checks `out` answers `work`; the error says what is wrong.
pub fn check(work: &ShardWork, out: &ShardOutput) -> Result<(), String> {
    if out.shard != work.shard {
        return Err(format!(
            "answered shard {} for shard {}",
            out.shard, work.shard
        ));
    }
    let n = work.records.len() as u64;
    if out.records != n {
        return Err(format!("reported {} records for {n}", out.records));
    }
    let accounted = (out.documents.len() + out.exceptions.len()) as u64;
    if accounted != n {
        return Err(format!(
            "{} documents + {} rejected for {n} records",
            out.documents.len(),
            out.exceptions.len()
        ));
    }
    // Documents and rejections, merged by record number, are the shard's records in order.
    let mut numbers: Vec<u64> = out
        .documents
        .iter()
        .map(|d| d.record)
        .chain(out.exceptions.iter().map(|e| e.record))
        .collect();
    numbers.sort_unstable();
    if !numbers
        .iter()
        .zip(work.records.iter())
        .all(|(a, r)| *a == r.number)
    {
        return Err("the documents and rejections are not the shard's records".into());
    }
    if !is_sorted(out.documents.iter().map(|d| d.record))
        || !is_sorted(out.exceptions.iter().map(|e| e.record))
    {
        return Err("documents or rejections out of input order".into());
    }
    for e in &out.exceptions {
        let raw = work.records.iter().find(|r| r.number == e.record);
        if raw.is_none_or(|r| r.line != e.line) {
            return Err(format!(
                "rejection of record {} names the wrong line",
                e.record
            ));
        }
    }
    // File names: this shard's print files and per-document PDFs of its records, once each.
    let print_prefix = print_file_name(work.shard, 0);
    let print_prefix = print_prefix.trim_end_matches(".pdf");
    let mut names = BTreeSet::new();
    for f in &out.files {
        let plain = f
            .name
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..")
            && !f.name.contains('\\');
        let ok = plain
            && if let Some(rest) = f.name.strip_prefix("documents/") {
                !rest.contains('/')
                    && rest.ends_with(".pdf")
                    && rest.len() > 9
                    && rest
                        .get(..8)
                        .and_then(|n| n.parse::<u64>().ok())
                        .is_some_and(|r| {
                            out.documents
                                .iter()
                                .any(|d| d.record == r && d.pdf.as_deref() == Some(&f.name))
                        })
            } else {
                f.name == format!("{print_prefix}.pdf")
                    || f.name
                        .strip_prefix(print_prefix)
                        .and_then(|r| r.strip_prefix('-'))
                        .and_then(|r| r.strip_suffix(".pdf"))
                        .is_some_and(|p| p.len() >= 2 && p.bytes().all(|b| b.is_ascii_digit()))
            };
        if !ok {
            return Err(format!(
                "file name {:?} does not belong to shard {}",
                f.name, work.shard
            ));
        }
        if !names.insert(f.name.as_str()) {
            return Err(format!("file {} sent twice", f.name));
        }
    }
    let mut pages = 0u64;
    let mut sheets = 0u64;
    for d in &out.documents {
        if d.template_sha256 != *work.template_sha256 {
            return Err(format!(
                "record {} rendered with template {}, expected {}",
                d.record, d.template_sha256, work.template_sha256
            ));
        }
        if d.sha256.len() != 64 || !d.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("record {} has no valid content hash", d.record));
        }
        for f in [&d.print_file, &d.pdf].into_iter().flatten() {
            if !names.contains(f.as_str()) {
                return Err(format!(
                    "record {} refers to {f}, which was not sent",
                    d.record
                ));
            }
        }
        if d.print_file.is_some() != work.params.print_files
            || d.pdf.is_some() != work.params.per_document
        {
            return Err(format!("record {} has the wrong kinds of output", d.record));
        }
        pages += d.pages as u64;
        sheets += d.sheets as u64;
    }
    if pages != out.pages || sheets != out.sheets {
        return Err(format!(
            "counts {} pages / {} sheets, documents add up to {pages} / {sheets}",
            out.pages, out.sheets
        ));
    }
    Ok(())
}

fn is_sorted(mut it: impl Iterator<Item = u64>) -> bool {
    let Some(mut last) = it.next() else {
        return true;
    };
    for x in it {
        if x <= last {
            return false;
        }
        last = x;
    }
    true
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::input::{RawData, RawRecord};
    use crate::run::shard::{DocumentEntry, ExceptionEntry, OutputFile, OutputParams};

    fn work() -> ShardWork {
        ShardWork {
            run_id: "r".into(),
            shard: 2,
            records: Arc::new(
                (0..3)
                    .map(|i| RawRecord {
                        number: 21 + i,
                        line: 30 + i,
                        data: RawData::Json("{}".into()),
                    })
                    .collect(),
            ),
            params: Arc::new(OutputParams::default()),
            template_sha256: "ab".repeat(32).into(),
            attempt: 1,
            expected: None,
        }
    }

    fn doc(record: u64) -> DocumentEntry {
        DocumentEntry {
            record,
            document_id: format!("d{record}"),
            print_file: Some("print-00003.pdf".into()),
            first_page: Some(1),
            pages: 2,
            sheets: 2,
            sha256: "cd".repeat(32),
            template_sha256: "ab".repeat(32),
            pdf: None,
        }
    }

    fn good() -> ShardOutput {
        ShardOutput {
            shard: 2,
            records: 3,
            files: vec![OutputFile {
                name: "print-00003.pdf".into(),
                bytes: b"%PDF".to_vec(),
            }],
            documents: vec![doc(21), doc(23)],
            exceptions: vec![ExceptionEntry {
                record: 22,
                line: 31,
                field: String::new(),
                reason: "bad".into(),
            }],
            warnings: vec![],
            pages: 4,
            sheets: 4,
        }
    }

    #[test]
    fn a_true_answer_passes() {
        assert_eq!(check(&work(), &good()), Ok(()));
    }

    #[test]
    fn wrong_answers_are_caught() {
        type Spoil = fn(&mut ShardOutput);
        let bad: Vec<(&str, Spoil)> = vec![
            ("shard", |o| o.shard = 3),
            ("records", |o| o.records = 2),
            ("lost record", |o| {
                o.exceptions.clear();
            }),
            ("foreign record", |o| o.documents[1].record = 99),
            ("path", |o| o.files[0].name = "../print-00003.pdf".into()),
            ("other shard's file", |o| {
                o.files[0].name = "print-00001.pdf".into()
            }),
            ("absolute", |o| o.files[0].name = "/etc/passwd".into()),
            ("template", |o| {
                o.documents[0].template_sha256 = "00".repeat(32)
            }),
            ("counts", |o| o.pages = 5),
            ("line", |o| o.exceptions[0].line = 1),
            ("unsent file", |o| {
                o.documents[0].print_file = Some("print-00003-02.pdf".into())
            }),
        ];
        for (what, spoil) in bad {
            let mut o = good();
            spoil(&mut o);
            assert!(check(&work(), &o).is_err(), "{what} was not caught");
        }
    }
}
