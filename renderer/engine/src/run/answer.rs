//! A backend's answer is checked before anything is written: it must be the output of the
//! shard that was asked for — every record accounted for once, in order, file names that
//! belong to that shard, counts that add up, the right template. A bad answer is a backend
//! failure, never output.

use std::collections::BTreeSet;

use super::backend::ShardWork;
use super::output::{file_stem, print_file_name, spool_file_name};
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
        if e.template_sha256 != *work.template_sha256 {
            return Err(format!(
                "record {} rejected under template {}, expected {}",
                e.record, e.template_sha256, work.template_sha256
            ));
        }
        let raw = work.records.iter().find(|r| r.number == e.record);
        if raw.is_none_or(|r| r.line != e.line) {
            return Err(format!(
                "rejection of record {} names the wrong line",
                e.record
            ));
        }
    }
    // File names: exactly the files the documents refer to, each named as the engine names
    // it — this shard's print files, numbered from the first part without a gap, and the
    // per-document PDFs of its own records — and each sent once.
    let mut expected = BTreeSet::new();
    // Print parts in the order the documents fill them.
    let mut parts: Vec<String> = Vec::new();
    for d in &out.documents {
        if let Some(pdf) = &d.pdf {
            let name = format!("documents/{}.pdf", file_stem(d.record, &d.document_id));
            if *pdf != name {
                return Err(format!(
                    "record {} names its PDF {pdf:?}, not {name:?}",
                    d.record
                ));
            }
            expected.insert(name);
        }
        if let Some(p) = &d.print_file
            && parts.last() != Some(p)
        {
            parts.push(p.clone());
        }
    }
    for (i, p) in parts.iter().enumerate() {
        if *p != print_file_name(work.shard, i as u32) {
            return Err(format!(
                "print file {p:?} does not belong to shard {} (or a part is missing)",
                work.shard
            ));
        }
    }
    expected.extend(parts);
    if out.documents.iter().any(|d| d.spool.is_some()) {
        expected.insert(spool_file_name(work.shard));
    }
    let mut names = BTreeSet::new();
    for f in &out.files {
        if !expected.contains(&f.name) {
            return Err(format!(
                "file {:?} does not belong to shard {}",
                f.name, work.shard
            ));
        }
        if !names.insert(f.name.as_str()) {
            return Err(format!("file {} sent twice", f.name));
        }
    }
    if names.len() != expected.len() {
        return Err("a file the documents refer to was not sent".into());
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
        if d.spool
            .as_ref()
            .is_some_and(|s| *s != spool_file_name(work.shard))
        {
            return Err(format!(
                "record {} is spooled in a file of another shard",
                d.record
            ));
        }
        for f in [&d.print_file, &d.pdf, &d.spool].into_iter().flatten() {
            if !names.contains(f.as_str()) {
                return Err(format!(
                    "record {} refers to {f}, which was not sent",
                    d.record
                ));
            }
        }
        let spooled = work.params.spool && work.params.print_files;
        if d.print_file.is_some() != (work.params.print_files && !spooled)
            || d.spool.is_some() != spooled
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
            spool: None,
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
                template_sha256: "ab".repeat(32),
            }],
            warnings: vec![],
            pages: 4,
            sheets: 4,
        }
    }

    #[test]
    fn a_true_answer_passes() {
        assert_eq!(check(&work(), &good()), Ok(()));
        // A print file cut into parts: the parts in order, each referred to.
        let mut parts = good();
        parts.files.push(OutputFile {
            name: "print-00003-02.pdf".into(),
            bytes: b"%PDF".to_vec(),
        });
        parts.documents[1].print_file = Some("print-00003-02.pdf".into());
        assert_eq!(check(&work(), &parts), Ok(()));
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
            ("rejecting template", |o| {
                o.exceptions[0].template_sha256 = "00".repeat(32)
            }),
            ("unsent file", |o| {
                o.documents[0].print_file = Some("print-00003-02.pdf".into())
            }),
            ("unreferenced file", |o| {
                o.files.push(OutputFile {
                    name: "print-00003-02.pdf".into(),
                    bytes: vec![],
                })
            }),
            ("odd pdf name", |o| {
                o.documents[0].pdf = Some("documents/00000021-x\n.pdf".into());
            }),
            ("a part skipped", |o| {
                o.files[0].name = "print-00003-02.pdf".into();
                o.documents[0].print_file = Some("print-00003-02.pdf".into());
                o.documents[1].print_file = Some("print-00003-02.pdf".into());
            }),
        ];
        for (what, spoil) in bad {
            let mut o = good();
            spoil(&mut o);
            assert!(check(&work(), &o).is_err(), "{what} was not caught");
        }
    }
}
