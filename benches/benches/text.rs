//! Text benchmarks: shaping through the word cache (warm and cold), line breaking, and
//! the emergency breaking of one 100,000-character word.

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

    // One unbreakable word of 100,000 characters (no two lines alike): cut into about a
    // thousand lines of 480 pt. The figure to report for "a huge field renders fast".
    let word = long_word(100_000);
    let spans = [TextSpan {
        text: &word,
        font,
        size: 10.0,
        color: Color::BLACK,
    }];
    let mut g = c.benchmark_group("text_long_word");
    g.throughput(Throughput::Bytes(word.len() as u64));
    g.sample_size(10);
    for hyphenate in [false, true] {
        let spec = ParagraphSpec { hyphenate, ..spec };
        let name = if hyphenate {
            "word_100000_chars_hyphenate"
        } else {
            "word_100000_chars"
        };
        let mut cx = TextContext::new();
        g.bench_function(name, |b| {
            b.iter(|| {
                lines.clear();
                cx.layout_paragraph(&book, &spans, &spec, &mut lines);
                lines.len()
            })
        });
    }
    g.finish();
}

/// A word of `n` letters from a fixed pseudo-random sequence.
fn long_word(n: usize) -> String {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (b'a' + (x % 26) as u8) as char
        })
        .collect()
}

criterion_group!(benches, bench);
criterion_main!(benches);
