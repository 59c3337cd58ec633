//! Layout benchmarks: a bound statement (tables spanning pages) → pages.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pressrun_engine::layout::{Budget, LayoutContext, LayoutEnv, Limits, layout_document};

fn bench(c: &mut Criterion) {
    let t = pressrun_benches::example_template("statement");
    let env = LayoutEnv {
        fonts: &t.fonts,
        images: &t.images,
        styles: &t.styles,
        masters: &t.masters,
        structure: true,
    };
    let mut g = c.benchmark_group("layout");
    // A long statement: the transactions table spans several pages.
    let record = pressrun_benches::statements(64, 5)
        .into_iter()
        .max_by_key(|r| r["transactions"].as_array().map_or(0, Vec::len))
        .unwrap();
    let doc = t.bind(&record, &pressrun_benches::params(1)).unwrap();
    let mut ctx = LayoutContext::new();
    let pages = layout_document(&doc, &env, &mut Budget::unlimited(), &mut ctx)
        .unwrap()
        .pages
        .len() as u64;
    g.throughput(Throughput::Elements(pages));
    // With the default per-record limits, as a run lays out: the budget's clock reads
    // and height charges are part of the figure.
    g.bench_function("statement_table_pagination", |b| {
        b.iter(|| {
            layout_document(&doc, &env, &mut Budget::new(&Limits::default()), &mut ctx).unwrap()
        })
    });
    g.bench_function("bind_statement", |b| {
        b.iter(|| t.bind(&record, &pressrun_benches::params(1)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
