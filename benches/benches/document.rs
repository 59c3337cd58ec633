//! Whole-document benchmark: parse JSON → validate → bind → layout → encode, one core.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pressrun_engine::input::{RawData, RawRecord};
use pressrun_engine::pdf::PdfOptions;
use pressrun_engine::run::compose::{Limits, Worker, compose, encode, parse_record};

fn bench(c: &mut Criterion) {
    let t = pressrun_benches::example_template("statement");
    let raws: Vec<RawRecord> = pressrun_benches::statements(50, 11)
        .iter()
        .enumerate()
        .map(|(i, r)| RawRecord {
            number: i as u64 + 1,
            line: i as u64 + 1,
            data: RawData::Json(r.to_string()),
        })
        .collect();
    let mut worker = Worker::default();
    let opts = PdfOptions::default();
    let mut pages = 0u64;
    for raw in &raws {
        let v = parse_record(&t, raw).unwrap();
        pages += compose(
            &t,
            &v,
            &pressrun_benches::params(raw.number),
            false,
            &Limits::default(),
            &mut worker,
        )
        .unwrap()
        .laid_out
        .pages
        .len() as u64;
    }
    let mut g = c.benchmark_group("document");
    g.throughput(Throughput::Elements(pages));
    g.sample_size(20);
    g.bench_function("statement_50_docs_parse_bind_layout_encode", |b| {
        b.iter(|| {
            let mut n = 0;
            for raw in &raws {
                let v = parse_record(&t, raw).unwrap();
                let composed = compose(
                    &t,
                    &v,
                    &pressrun_benches::params(raw.number),
                    false,
                    &Limits::default(),
                    &mut worker,
                )
                .unwrap();
                n += encode(&t, &composed, &opts, &mut worker).page_count;
            }
            n
        })
    });
    // One record whose transaction description is a single 100,000-character word.
    let mut record = pressrun_benches::statements(1, 11).remove(0);
    let word: String = (0..100_000u64)
        .map(|i| (b'a' + (i.wrapping_mul(0x9E37_79B9) >> 7) as u8 % 26) as char)
        .collect();
    record["transactions"][0]["description"] = serde_json::Value::String(word);
    let composed = compose(
        &t,
        &record,
        &pressrun_benches::params(1),
        false,
        &Limits::default(),
        &mut worker,
    )
    .unwrap();
    g.throughput(Throughput::Elements(composed.laid_out.pages.len() as u64));
    g.sample_size(10);
    g.bench_function("statement_100000_char_word_bind_layout_encode", |b| {
        b.iter(|| {
            let composed = compose(
                &t,
                &record,
                &pressrun_benches::params(1),
                false,
                &Limits::default(),
                &mut worker,
            )
            .unwrap();
            encode(&t, &composed, &opts, &mut worker).page_count
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
