//! Text benchmarks: shaping through the word cache (warm and cold) and line breaking.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pressrun_engine::style::{Align, Color};
use pressrun_engine::text::font::FontBook;
use pressrun_engine::text::{ParagraphSpec, TextContext, TextSpan};

const PARA: &str = "Your statement shows every payment into and out of your account during the period. \
If you see a transaction you do not recognise, call us straight away on the number overleaf. \
Überweisungen, Lastschriften und Kartenzahlungen erscheinen am Tag der Buchung. Выписка по счёту. Λογαριασμός.";

fn bench(c: &mut Criterion) {
    let book = FontBook::with_defaults();
    let font = book.select("sans", false, false).unwrap();
    let spans = [TextSpan {
        text: PARA,
        font,
        size: 10.0,
        color: Color::BLACK,
    }];
    let spec = ParagraphSpec {
        width: 480.0,
        first_line_indent: 0.0,
        align: Align::Justify,
        hyphenate: false,
    };
    let words = PARA.split_whitespace().count() as u64;
    let mut g = c.benchmark_group("text");
    g.throughput(Throughput::Elements(words));
    let mut warm = TextContext::new();
    let mut lines = Vec::new();
    warm.layout_paragraph(&book, &spans, &spec, &mut lines);
    g.bench_function("paragraph_cached_shaping", |b| {
        b.iter(|| {
            lines.clear();
            warm.layout_paragraph(&book, &spans, &spec, &mut lines);
            lines.len()
        })
    });
    // Every word misses the cache (cleared each time): the cost of shaping with rustybuzz.
    let mut cold = TextContext::new();
    g.bench_function("paragraph_uncached_shaping", |b| {
        b.iter(|| {
            cold.shaper().clear();
            lines.clear();
            cold.layout_paragraph(&book, &spans, &spec, &mut lines);
            lines.len()
        })
    });
    let hyph = ParagraphSpec {
        width: 120.0,
        hyphenate: true,
        ..spec
    };
    g.bench_function("paragraph_narrow_hyphenated", |b| {
        b.iter(|| {
            lines.clear();
            warm.layout_paragraph(&book, &spans, &hyph, &mut lines);
            lines.len()
        })
    });
    g.bench_function("measure_cached", |b| b.iter(|| warm.measure(&book, &spans)));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
