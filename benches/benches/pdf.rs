//! PDF benchmarks: page encoding (content streams, compression) and print-file assembly.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pressrun_engine::layout::{Budget, LayoutContext, LayoutEnv, layout_document};
use pressrun_engine::pdf::{EncodeScratch, PdfEnv, PdfFileWriter, PdfOptions, encode_document};

fn bench(c: &mut Criterion) {
    let t = pressrun_benches::example_template("statement");
    let env = LayoutEnv {
        fonts: &t.fonts,
        images: &t.images,
        styles: &t.styles,
        masters: &t.masters,
        structure: true,
    };
    let mut ctx = LayoutContext::new();
    let docs: Vec<_> = pressrun_benches::statements(20, 9)
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let d = t.bind(r, &pressrun_benches::params(i as u64 + 1)).unwrap();
            (
                layout_document(&d, &env, &mut Budget::unlimited(), &mut ctx).unwrap(),
                d.meta,
            )
        })
        .collect();
    let pages: u64 = docs.iter().map(|(l, _)| l.pages.len() as u64).sum();
    let penv = PdfEnv {
        fonts: t.fonts.clone(),
        images: t.images.clone(),
    };
    let mut scratch = EncodeScratch::default();
    let mut g = c.benchmark_group("pdf");
    g.throughput(Throughput::Elements(pages));
    for tagged in [false, true] {
        let opts = PdfOptions {
            tagged,
            compression: 1,
        };
        let name = if tagged {
            "encode_tagged"
        } else {
            "encode_untagged"
        };
        g.bench_function(name, |b| {
            b.iter(|| {
                docs.iter()
                    .map(|(l, m)| encode_document(l, m, &penv, &opts, &mut scratch).page_count)
                    .sum::<u32>()
            })
        });
    }
    let opts = PdfOptions::default();
    let encoded: Vec<_> = docs
        .iter()
        .map(|(l, m)| encode_document(l, m, &penv, &opts, &mut scratch))
        .collect();
    g.bench_function("print_file_assembly_with_subsetting", |b| {
        b.iter(|| {
            let mut w = PdfFileWriter::new(penv.clone(), opts);
            for e in &encoded {
                w.add_document(e);
            }
            w.finish(&docs[0].1).len()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
