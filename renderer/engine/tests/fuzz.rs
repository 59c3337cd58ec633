//! Bounded mutation fuzzing inside the test suite (there is no nightly toolchain, so no
//! cargo-fuzz): inputs mutated from the example templates and records must never make the
//! engine panic or hang.
//!
//! Two targets run for a time budget each and print the iterations they reached:
//! - `the_template_compiler_survives_mutated_templates`: `template.toml`, `body.xml` and
//!   fragments of the examples, mutated and compiled from memory as bundles, then bound
//!   and laid out with a record when they compile;
//! - `the_record_reader_survives_mutated_records`: JSON Lines and CSV streams mutated from
//!   generated example records, read, parsed, validated, bound and laid out against the
//!   statement template.
//!
//! `PRESSRUN_FUZZ_SECONDS` sets the budget per target (default 15),
//! `PRESSRUN_FUZZ_ITERATIONS` a fixed number of iterations instead, `PRESSRUN_FUZZ_SEED`
//! the seed (default 1). The same seed and iteration count give the same inputs. A crash
//! is saved under the test's temporary folder (`CARGO_TARGET_TMPDIR/fuzz`) and reported;
//! a target that makes no progress for `HANG_SECONDS` fails as a hang.
//!
//! Run longer: `PRESSRUN_FUZZ_SECONDS=600 cargo test -p pressrun-engine --test fuzz -- --nocapture`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use pressrun_engine::bundle::{Bundle, BundleError};
use pressrun_engine::example_data::{self, Example};
use pressrun_engine::input::{InputFormat, RecordReader};
use pressrun_engine::run::compose::{Limits, Worker, compose, parse_record};
use pressrun_engine::template::{BindParams, CompileOptions, Template, compile};

/// Seconds without a finished iteration after which a target counts as hung.
const HANG_SECONDS: u64 = 120;
/// The message `compile_source` turns a compiler panic into.
const PANIC_MARK: &str = "the template compiler failed";

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// How long and with which seed to fuzz.
struct Budget {
    seconds: f64,
    iterations: Option<u64>,
    seed: u64,
}

fn budget() -> Budget {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    Budget {
        seconds: var("PRESSRUN_FUZZ_SECONDS")
            .map(|v| {
                v.parse()
                    .expect("PRESSRUN_FUZZ_SECONDS is a number of seconds")
            })
            .unwrap_or(15.0),
        iterations: var("PRESSRUN_FUZZ_ITERATIONS").map(|v| {
            v.parse()
                .expect("PRESSRUN_FUZZ_ITERATIONS is a whole number")
        }),
        seed: var("PRESSRUN_FUZZ_SEED")
            .map(|v| v.parse().expect("PRESSRUN_FUZZ_SEED is a whole number"))
            .unwrap_or(1),
    }
}

/// The input of the iteration in progress, saved if it crashes or hangs.
#[derive(Default)]
struct Current {
    label: String,
    bytes: Vec<u8>,
}

/// Runs `one` until the budget is spent, catching panics; fails on a crash or a hang.
fn fuzz<S: Send + 'static>(
    name: &'static str,
    state: S,
    one: fn(&mut S, &mut ChaCha8Rng, &Mutex<Current>) -> Result<bool, String>,
) {
    let budget = budget();
    let done = Arc::new(AtomicU64::new(0));
    let finished = Arc::new(AtomicBool::new(false));
    let current = Arc::new(Mutex::new(Current::default()));
    let worker = {
        let (done, finished, current) = (done.clone(), finished.clone(), current.clone());
        std::thread::spawn(move || {
            let mut state = state;
            let mut rng = ChaCha8Rng::seed_from_u64(budget.seed);
            let start = Instant::now();
            let mut crashes = Vec::new();
            let (mut n, mut accepted) = (0u64, 0u64);
            loop {
                let more = match budget.iterations {
                    Some(max) => n < max,
                    None => start.elapsed().as_secs_f64() < budget.seconds,
                };
                if !more {
                    break;
                }
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    one(&mut state, &mut rng, &current)
                }));
                let failure = match outcome {
                    Ok(Ok(deep)) => {
                        accepted += u64::from(deep);
                        None
                    }
                    Ok(Err(why)) => Some(why),
                    Err(p) => Some(
                        p.downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| p.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "panic".into()),
                    ),
                };
                if let Some(why) = failure {
                    let path = save(name, n, &current.lock().unwrap_or_else(|e| e.into_inner()));
                    crashes.push(format!("iteration {n}: {why} (input: {})", path.display()));
                }
                n += 1;
                done.store(n, Ordering::Relaxed);
            }
            finished.store(true, Ordering::Release);
            (n, accepted, start.elapsed().as_secs_f64(), crashes)
        })
    };
    let mut last = (0, Instant::now());
    while !finished.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(200));
        let now = done.load(Ordering::Relaxed);
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(HANG_SECONDS) {
            let path = save(
                name,
                now,
                &current.lock().unwrap_or_else(|e| e.into_inner()),
            );
            panic!(
                "{name}: iteration {now} made no progress for {HANG_SECONDS} s (input: {})",
                path.display()
            );
        }
    }
    let (n, accepted, secs, crashes) = worker.join().expect("the fuzz loop itself does not panic");
    let report = format!(
        "fuzz {name}: {n} iterations in {secs:.1} s ({accepted} accepted all the way), seed {}, {} crashes",
        budget.seed,
        crashes.len()
    );
    println!("{report}");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join(format!("{name}.txt")), format!("{report}\n"));
    assert!(crashes.is_empty(), "{report}:\n{}", crashes.join("\n"));
}

fn save(name: &str, n: u64, current: &Current) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz");
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format!(
        "{name}-{n}-{}",
        current.label.replace(['/', '.'], "_")
    ));
    let _ = std::fs::write(&path, &current.bytes);
    path
}

const TOML_TOKENS: &[&str] = &[
    "\"",
    "'",
    "[",
    "]",
    "[[",
    "]]",
    "=",
    "#",
    "{",
    "}",
    ",",
    ".",
    "\n",
    "\\",
    "\\u00",
    "\"\"\"",
    "true",
    "false",
    "0",
    "-1",
    "1e309",
    "nan",
    "inf",
    "-0",
    "9223372036854775808",
    "1979-05-27",
    "\"#€abc\"",
    "\"#fff\"",
    "\"#ffffff\"",
    "\"#12\"",
    "\"€\"",
    "\"\"",
    "\"-5mm\"",
    "\"1e30pt\"",
    "\"0pt\"",
    "\"0\"",
    "\"NaNpt\"",
    "\"infmm\"",
    "\"A4\"",
    "\"A5\"",
    "\"Letter\"",
    "\"DL\"",
    "\"C5\"",
    "\"1mm 2mm\"",
    "\"1mm 2mm 3mm 4mm 5mm\"",
    "\"string\"",
    "\"string?\"",
    "\"number\"",
    "\"date\"",
    "\"integer\"",
    "\"boolean\"",
    "\"array<string>\"",
    "\"array<number>\"",
    "\"array<array<string>>\"",
    "\"array<\"",
    "\"object\"",
    "\"{{ x }}\"",
    "\"{{\"",
    "\"}}\"",
    "\"{% if x %}\"",
    "\"{{ a | money }}\"",
    "\"{{ a | date('%Y') }}\"",
    "\"{{ a | date('%') }}\"",
    "\"{{ a | number(99) }}\"",
    "\"{{ customer.name[0] }}\"",
    "[styles.x]",
    "[styles.default]",
    "[page]",
    "[page.first]",
    "[fields]",
    "[fonts]",
    "[fields.\"a[]\"]",
    "[template]",
    "family = ",
    "size = ",
    "leading = ",
    "color = ",
    "margins = ",
    "window = ",
    "body-offset = ",
    "header-height = ",
    "footer-height = ",
    "align = ",
    "bold = ",
    "italic = ",
    "underline = ",
    "space-before = ",
    "space-after = ",
    "indent = ",
    "hyphenate = ",
    "justify = ",
    "locale = ",
    "lang = ",
    "currency = ",
    "fragments = ",
    "\"../fragments\"",
    "\"/etc\"",
    "\"fonts/x.ttf\"",
    "\"/dev/zero\"",
    "\"de-DE\"",
    "\"fr-FR\"",
    "\"xx\"",
    "\"GBP\"",
    "\"€€€\"",
    "\u{0}",
    "\u{feff}",
    "\r",
    "\t",
    "𝕏",
    "ß",
    "İ",
    "\u{301}",
    "\u{202e}",
];

const XML_TOKENS: &[&str] = &[
    "<",
    ">",
    "</",
    "/>",
    "&",
    "&amp;",
    "&lt;",
    "&#0;",
    "&#x10FFFF;",
    "&#xD800;",
    "&#65;",
    "&bogus;",
    "<![CDATA[",
    "]]>",
    "<!--",
    "-->",
    "<?xml version=\"1.0\"?>",
    "<!DOCTYPE x [<!ENTITY e \"eeeeeeee\">]>",
    "&e;",
    "\"",
    "'",
    "=",
    "{{",
    "}}",
    "{{ x }}",
    "{{ customer.name }}",
    "{{ customer.name | upper }}",
    "{{ statement.closing_balance | money }}",
    "{{ statement.period_end | date('%d %B %Y') }}",
    "{{ 1/0 }}",
    "{{ range(10) | length }}",
    "{{ customer.address_lines[99] }}",
    "{{ run.record_number }}",
    "{{ run.date | date }}",
    "{% for x in y %}",
    "{% endfor %}",
    "{%",
    "%}",
    "<p>",
    "</p>",
    "<p style=\"title\">",
    "<p style=\"nope\">",
    "<b>",
    "</b>",
    "<i>",
    "</i>",
    "<u>",
    "<span style=\"legal\">",
    "</span>",
    "<br/>",
    "<page-number/>",
    "<page-count/>",
    "<h1>",
    "</h1>",
    "<h6>",
    "<ul><li>",
    "</li></ul>",
    "<ol><li>x</li></ol>",
    "<table rows=\"transactions\" as=\"tx\">",
    "</table>",
    "<column width=\"1fr\" header=\"H\">{{ tx.amount | money }}</column>",
    "<column width=\"0mm\">",
    "</column>",
    "<columns gap=\"4mm\">",
    "</columns>",
    "<footer><cell/></footer>",
    "<cell align=\"right\">",
    "</cell>",
    " running=\"balance\" running-start=\"statement.opening_balance\" running-add=\"tx.amount\"",
    "<image src=\"assets/logo.png\" alt=\"x\"/>",
    "<image src=\"../x\" alt=\"x\"/>",
    "<image src=\"/dev/zero\" alt=\"x\"/>",
    "<barcode type=\"qr\" data=\"{{ account.number }}\" width=\"20mm\"/>",
    "<barcode type=\"code128\" data=\"{{ customer.name }}\" width=\"1mm\"/>",
    "<barcode type=\"datamatrix\" data=\"\" width=\"0mm\"/>",
    "<hr/>",
    "<hr thickness=\"1e9pt\" color=\"#€abc\"/>",
    "<spacer height=\"1e9mm\"/>",
    "<spacer height=\"-5mm\"/>",
    "<page-break/>",
    "<keep-together>",
    "</keep-together>",
    " keep-with-next=\"true\"",
    "<if test=\"statement.closing_balance &lt; 0\">",
    "<if test=\"\">",
    "<elif test=\"x\">",
    "<else>",
    "</else>",
    "</if>",
    "<for each=\"t in transactions\">",
    "<for each=\"t in\">",
    "</for>",
    "<fragment name=\"legal-uk\"/>",
    "<fragment name=\"legal-{{ customer.region | lower }}\"/>",
    "<fragment name=\"../x\"/>",
    "<fragment name=\"{{ x }}\"/>",
    "<region name=\"window\">",
    "</region>",
    " style=\"",
    " align=\"right\"",
    " align=\"justify\"",
    " align=\"nope\"",
    " width=\"",
    " height=\"",
    " color=\"#€abc\"",
    " fill=\"#zzz\"",
    "mm",
    "pt",
    "fr",
    "%",
    "-",
    "1e40",
    "0",
    "NaN",
    "€",
    "\u{0}",
    "\u{1}",
    "\u{feff}",
    "\u{202e}",
    "\u{ad}",
    "\u{200b}",
    "𝕏",
    "ﷺ",
    "\t",
    "\n",
    " ",
];

/// Values put between the quotes of a TOML string or an XML attribute.
const VALUES: &[&str] = &[
    "#€abc",
    "#fff",
    "#ffffff",
    "#12",
    "#ggg",
    "€",
    "",
    " ",
    "0",
    "-1",
    "1e309",
    "1e30pt",
    "-5mm",
    "0pt",
    "0mm",
    "NaNpt",
    "infmm",
    "1e-30mm",
    "A4",
    "A0",
    "DL",
    "C5",
    "string",
    "string?",
    "number?",
    "date",
    "integer",
    "boolean",
    "array<string>",
    "array<",
    "object",
    "{{ x }}",
    "{{",
    "}}",
    "{% if x %}",
    "{{ a | money }}",
    "{{ a | date('%') }}",
    "{{ customer.name | money }}",
    "{{ statement.period_end | date('%Q') }}",
    "../x",
    "/dev/zero",
    "/etc/passwd",
    "fonts/x.ttf",
    "assets/logo.png",
    "legal-{{ customer.region }}",
    "t in transactions",
    "x in",
    "in",
    "right",
    "left",
    "center",
    "justify",
    "nope",
    "1fr",
    "0fr",
    "-1fr",
    "999999fr",
    "1fr 2fr",
    "qr",
    "code128",
    "datamatrix",
    "ean13",
    "0.5pt #cccccc",
    "1e9pt #€abc",
    "0.5pt",
    "#cccccc 0.5pt",
    "transactions",
    "customer",
    "customer.address_lines",
    "statement.closing_balance",
    "true",
    "false",
    "yes",
    "𝕏",
    "\u{301}",
    "ß",
    "x\u{0}y",
    "de-DE",
    "fr",
    "zz-ZZ",
    "en-GB",
    "GBP",
    "EUR",
    "xx",
    "%",
    "1mm 2mm 3mm",
    "1mm 2mm 3mm 4mm 5mm",
    "15mm 18mm",
    "window",
    "header",
    "title",
    "legal",
];

/// Mutates `seed` with one to eight stacked edits (usually few): mostly UTF-8-preserving
/// text edits with tokens of the format, sometimes a value between quotes replaced, raw byte
/// edits or a splice from `other`.
fn mutate(rng: &mut ChaCha8Rng, seed: &[u8], other: &[u8], tokens: &[&str]) -> Vec<u8> {
    let mut s = seed.to_vec();
    let mut edits = 1;
    while edits < 8 && rng.random_bool(0.5) {
        edits += 1;
    }
    for _ in 0..edits {
        let at = |rng: &mut ChaCha8Rng, s: &[u8]| char_boundary(s, rng.random_range(0..=s.len()));
        match rng.random_range(0..125) {
            115..=124 => {
                // Delete, duplicate or move a whole line.
                let lines: Vec<usize> = std::iter::once(0)
                    .chain((0..s.len()).filter(|&i| s[i] == b'\n').map(|i| i + 1))
                    .collect();
                let k = rng.random_range(0..lines.len());
                let (i, j) = (lines[k], lines.get(k + 1).copied().unwrap_or(s.len()));
                let line: Vec<u8> = s.drain(i..j).collect();
                if rng.random_bool(0.6) {
                    let to = lines[rng.random_range(0..lines.len())].min(s.len());
                    s.splice(to..to, line.iter().copied());
                    if rng.random_bool(0.5) {
                        s.splice(i.min(s.len())..i.min(s.len()), line);
                    }
                }
            }
            100..=114 => {
                // Replace the text between a pair of quotes on one line.
                let quotes: Vec<usize> = (0..s.len()).filter(|&i| s[i] == b'"').collect();
                if quotes.len() >= 2 {
                    let k = rng.random_range(0..quotes.len() - 1);
                    let (i, j) = (quotes[k], quotes[k + 1]);
                    if !s[i..j].contains(&b'\n') {
                        let v = VALUES[rng.random_range(0..VALUES.len())];
                        s.splice(i + 1..j, v.bytes());
                    }
                }
            }
            0..=34 => {
                let i = at(rng, &s);
                let t = tokens[rng.random_range(0..tokens.len())];
                s.splice(i..i, t.bytes());
            }
            35..=49 if !s.is_empty() => {
                let i = at(rng, &s);
                let len = rng.random_range(1..=16.min(s.len() - i).max(1));
                let j = char_boundary(&s, (i + len).min(s.len()));
                s.drain(i..j);
            }
            50..=59 if !s.is_empty() => {
                // Duplicate a span (repeats elements, lines, entities).
                let i = at(rng, &s);
                let j = char_boundary(&s, (i + rng.random_range(1..=200)).min(s.len()));
                let span = s[i..j].to_vec();
                let k = at(rng, &s);
                s.splice(k..k, span);
            }
            60..=69 => {
                // Replace a number with an extreme one.
                let digits: Vec<usize> = (0..s.len()).filter(|&i| s[i].is_ascii_digit()).collect();
                if let Some(&i) = digits.get(rng.random_range(0..digits.len().max(1))) {
                    let j = (i..s.len())
                        .find(|&j| !s[j].is_ascii_digit())
                        .unwrap_or(s.len());
                    let n = [
                        "0",
                        "00",
                        "999999999",
                        "1e308",
                        "-1",
                        "18446744073709551616",
                        "3.5",
                    ][rng.random_range(0..7)];
                    s.splice(i..j, n.bytes());
                }
            }
            70..=79 if !other.is_empty() => {
                let i = at(rng, &s);
                let a = char_boundary(other, rng.random_range(0..other.len()));
                let b = char_boundary(other, (a + rng.random_range(1..=300)).min(other.len()));
                s.splice(i..i, other[a..b].iter().copied());
            }
            80..=89 if !s.is_empty() => {
                let i = rng.random_range(0..s.len());
                s[i] ^= 1 << rng.random_range(0..8);
            }
            90..=94 if !s.is_empty() => {
                let i = rng.random_range(0..s.len());
                s[i] = [
                    0, b'"', b'<', b'>', b'&', b'{', b'}', b'[', b']', b'\n', b',', 0xff, 0xc3,
                ][rng.random_range(0..13)];
            }
            _ => {
                let i = at(rng, &s);
                let n = rng.random_range(1..=8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                s.splice(i..i, bytes);
            }
        }
    }
    s
}

/// The nearest UTF-8 character boundary at or before `i` (any position when `s` is not
/// valid UTF-8 there).
fn char_boundary(s: &[u8], mut i: usize) -> usize {
    while i > 0 && i < s.len() && (s[i] & 0xC0) == 0x80 {
        i -= 1;
    }
    i
}

/// Example bundles with the files worth mutating.
struct Templates {
    bundles: Vec<Bundle>,
    records: Vec<serde_json::Value>,
    worker: Worker,
}

fn params() -> BindParams {
    BindParams {
        record_number: 1,
        run_date: "2024-04-02".into(),
    }
}

fn compile_one(
    t: &mut Templates,
    rng: &mut ChaCha8Rng,
    current: &Mutex<Current>,
) -> Result<bool, String> {
    let which = rng.random_range(0..t.bundles.len());
    let bundle = &t.bundles[which];
    let candidates: Vec<usize> = (0..bundle.files.len())
        .filter(|&i| {
            let p = &bundle.files[i].0;
            p.ends_with(".toml") || p.ends_with(".xml")
        })
        .collect();
    let roll = rng.random_range(0..100);
    let name = match roll {
        0..=44 => "template/template.toml",
        45..=89 => "template/body.xml",
        _ => "",
    };
    let i = candidates
        .iter()
        .copied()
        .find(|&i| bundle.files[i].0 == name)
        .unwrap_or_else(|| candidates[rng.random_range(0..candidates.len())]);
    let other = &bundle.files[candidates[rng.random_range(0..candidates.len())]].1;
    let path = bundle.files[i].0.clone();
    let tokens = if path.ends_with(".toml") {
        TOML_TOKENS
    } else {
        XML_TOKENS
    };
    let mutated = mutate(rng, &bundle.files[i].1, other, tokens);
    {
        let mut c = current.lock().unwrap_or_else(|e| e.into_inner());
        c.label = format!("{which}-{path}");
        c.bytes.clone_from(&mutated);
    }
    let mut files = bundle.files.clone();
    files[i].1 = mutated;
    let mutated = Bundle::from_files(files);
    match mutated.compile() {
        Ok(c) => {
            let record = &t.records[which];
            if c.template.bind(record, &params()).is_ok() {
                let _ = compose(
                    &c.template,
                    record,
                    &params(),
                    true,
                    &Limits::default(),
                    &mut t.worker,
                );
            }
            Ok(true)
        }
        Err(BundleError::Compile(d)) if d.to_string().contains(PANIC_MARK) => Err(d.to_string()),
        Err(BundleError::Compile(_)) => Ok(false),
        Err(e) => Err(format!("unexpected bundle error: {e}")),
    }
}

#[test]
fn the_template_compiler_survives_mutated_templates() {
    let bundles = ["statement", "insurance-letter"]
        .map(|n| Bundle::from_dir(&examples().join(n), None).unwrap())
        .to_vec();
    let records = vec![
        example_data::record(Example::Statement, 1, 0),
        example_data::record(Example::InsuranceLetter, 1, 0),
    ];
    let t = Templates {
        bundles,
        records,
        worker: Worker::default(),
    };
    fuzz("compile", t, compile_one);
}

/// The statement template and record streams to mutate.
struct Records {
    template: Template,
    jsonl: Vec<u8>,
    csv: Vec<u8>,
    worker: Worker,
}

/// Writes records as CSV: one column per scalar path, arrays as JSON cells.
fn to_csv(records: &[serde_json::Value]) -> Vec<u8> {
    fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    flatten(&p, v, out);
                }
            }
            serde_json::Value::String(s) => out.push((prefix.to_string(), s.clone())),
            other => out.push((prefix.to_string(), other.to_string())),
        }
    }
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let mut out = String::new();
    for (i, r) in records.iter().enumerate() {
        let mut cells = Vec::new();
        flatten("", r, &mut cells);
        if i == 0 {
            let header: Vec<String> = cells.iter().map(|(h, _)| quote(h)).collect();
            out.push_str(&header.join(","));
            out.push('\n');
        }
        let row: Vec<String> = cells.iter().map(|(_, c)| quote(c)).collect();
        out.push_str(&row.join(","));
        out.push_str("\r\n");
    }
    out.into_bytes()
}

const RECORD_TOKENS: &[&str] = &[
    "\"",
    ",",
    "\n",
    "\r\n",
    "{",
    "}",
    "[",
    "]",
    ":",
    "null",
    "true",
    "1e400",
    "-0",
    "1.5e-400",
    "\"\"",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\"2024-02-30\"",
    "\"0000-00-00\"",
    "\"9999-12-31\"",
    "\"2024-13-01\"",
    "\"+2024-01-01\"",
    "\"€\"",
    "\"𝕏\"",
    "\u{feff}",
    "\"GBP\"",
    "\"XXX\"",
    "\"gbp\"",
    "\"\u{301}\"",
    "[[[[[[[[[[[[[[[[[[[[",
    "]]]]]]]]]]]]]]]]]]]]",
    "{\"a\":{\"a\":{\"a\":{}}}}",
    "123456789012345678901234567890",
    "-9223372036854775809",
    "\"UK\"",
    "\"EU\"",
    "\"US\"",
    "\"uk\"",
    "\"../../x\"",
    "\"{{ x }}\"",
    "\"<p>\"",
    "\u{0}",
];

fn record_one(
    t: &mut Records,
    rng: &mut ChaCha8Rng,
    current: &Mutex<Current>,
) -> Result<bool, String> {
    let csv = rng.random_bool(0.5);
    let (seed, other) = if csv {
        (&t.csv, &t.jsonl)
    } else {
        (&t.jsonl, &t.csv)
    };
    let mutated = mutate(rng, seed, other, RECORD_TOKENS);
    {
        let mut c = current.lock().unwrap_or_else(|e| e.into_inner());
        c.label = if csv { "records.csv" } else { "records.jsonl" }.into();
        c.bytes.clone_from(&mutated);
    }
    let format = if csv {
        InputFormat::Csv
    } else {
        InputFormat::Jsonl
    };
    // Sometimes a tiny record limit, to go through the too-long path.
    let max = if rng.random_bool(0.1) {
        rng.random_range(1..2000)
    } else {
        1 << 20
    };
    let reader = match RecordReader::with_max_record(
        Box::new(std::io::Cursor::new(mutated)),
        format,
        "fuzz",
        max,
    ) {
        Ok(r) => r,
        Err(_) => return Ok(false),
    };
    let mut deep = false;
    let (mut last_line, mut expected) = (0, 0);
    for raw in reader.take(20) {
        let Ok(raw) = raw else { continue };
        expected += 1;
        // Lines only grow; two CSV records may share one when a lone CR ends a record.
        let line_ok = if csv {
            raw.line >= last_line
        } else {
            raw.line > last_line
        };
        if raw.number != expected || !line_ok {
            return Err(format!(
                "record {expected} has number {} and line {} after line {last_line}",
                raw.number, raw.line
            ));
        }
        last_line = raw.line;
        let i = expected - 1;
        if let Ok(value) = parse_record(&t.template, &raw) {
            deep = true;
            let params = BindParams {
                record_number: raw.number,
                run_date: "2024-04-02".into(),
            };
            if i < 2 {
                let _ = compose(
                    &t.template,
                    &value,
                    &params,
                    true,
                    &Limits::default(),
                    &mut t.worker,
                );
            } else {
                let _ = t.template.bind(&value, &params);
            }
        }
    }
    Ok(deep)
}

#[test]
fn the_record_reader_survives_mutated_records() {
    let template = compile(&examples().join("statement"), &CompileOptions::default())
        .unwrap()
        .template;
    let records: Vec<serde_json::Value> = (0..3)
        .map(|i| example_data::record(Example::Statement, 1, i))
        .collect();
    let mut jsonl = Vec::new();
    for r in &records {
        serde_json::to_writer(&mut jsonl, r).unwrap();
        jsonl.push(b'\n');
    }
    let csv = to_csv(&records);
    // The seeds themselves are good records.
    for (bytes, format) in [(&jsonl, InputFormat::Jsonl), (&csv, InputFormat::Csv)] {
        let reader = RecordReader::from_reader(
            Box::new(std::io::Cursor::new(bytes.clone())),
            format,
            "seed",
        )
        .unwrap();
        for raw in reader {
            let raw = raw.unwrap();
            parse_record(&template, &raw).unwrap_or_else(|e| panic!("{format:?} seed: {e:?}"));
        }
    }
    let t = Records {
        template,
        jsonl,
        csv,
        worker: Worker::default(),
    };
    fuzz("records", t, record_one);
}
