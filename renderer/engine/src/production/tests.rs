//! Tests of the profile parser, the facts and the planner.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::*;

/// A small valid profile; tests append or replace sections.
const BASE: &str = r#"[profile]
id = "test"
version = "1"

[print]
duplex = true

[[envelope]]
name = "DL"
max-sheets = 5

[[envelope]]
name = "C4"
max-sheets = 60

[job]
max-pieces = 5000
max-sheets = 20000

[marks.datamatrix]
x = "8mm"
y = "120mm"
size = "10mm"
"#;

fn profile(extra: &str) -> Profile {
    Profile::parse("production.toml", &format!("{BASE}{extra}")).unwrap()
}

fn parse_err(text: &str) -> ProfileError {
    Profile::parse("production.toml", text).unwrap_err()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn doc(record: u64, pages: u32, facts: Facts) -> DocFacts {
    DocFacts {
        record,
        sha256: format!("{record:064x}"),
        pages,
        facts,
    }
}

fn keyed(key: &str) -> Facts {
    Facts {
        sort_key: vec![key.to_string()],
        group: key.chars().take(2).collect(),
        ..Facts::default()
    }
}

fn plan_of(p: &Profile, docs: &[DocFacts]) -> Plan {
    plan(p, &DocTable::of(docs))
}

fn pieces(plan: &Plan) -> Vec<&PiecePlan> {
    plan.jobs.iter().flat_map(|j| &j.pieces).collect()
}

// ---- profile errors ------------------------------------------------------------------

#[test]
fn unknown_key_is_an_error_at_its_line_and_column() {
    let text = BASE.replace("duplex = true", "duplex = true\nstaple = true");
    let e = parse_err(&text);
    assert_eq!((e.line, e.column), (7, 1), "{e}");
    assert!(e.message.contains("staple"), "{e}");
    assert!(e.to_string().starts_with("production.toml:7:1: "), "{e}");
}

#[test]
fn unknown_overflow_mode_is_an_error() {
    let e = parse_err(&format!("{BASE}\n[envelopes]\nabove = \"squash\"\n"));
    assert_eq!(e.line, 26, "{e}");
    assert_eq!(e.column, 9, "{e}");
    assert!(e.message.contains("squash"), "{e}");
}

#[test]
fn capacities_must_ascend() {
    let text = BASE.replace("max-sheets = 60", "max-sheets = 5");
    let e = parse_err(&text);
    assert_eq!((e.line, e.column), (14, 14), "{e}");
    assert!(e.message.contains("strictly ascending"), "{e}");
    let text = BASE.replace("name = \"C4\"", "name = \"DL\"");
    assert!(parse_err(&text).message.contains("declared twice"));
    let text = BASE.replace("max-sheets = 5\n", "max-sheets = 0\n");
    let e = parse_err(&text);
    assert_eq!((e.line, e.column), (10, 14), "{e}");
}

#[test]
fn bad_length_unit_is_an_error_at_the_value() {
    let text = BASE.replace("size = \"10mm\"", "size = \"10px\"");
    let e = parse_err(&text);
    assert_eq!((e.line, e.column), (23, 8), "{e}");
    assert!(e.message.contains("10px"), "{e}");
    let text = BASE.replace("size = \"10mm\"", "size = \"0\"");
    assert!(parse_err(&text).message.contains("above zero"));
}

#[test]
fn media_is_an_ipp_keyword_or_an_error_at_its_line() {
    let text = BASE.replace(
        "duplex = true",
        "duplex = true\nmedia = \"iso_a4_210x297mm\"",
    );
    let p = Profile::parse("production.toml", &text).unwrap();
    assert_eq!(p.media.as_deref(), Some("iso_a4_210x297mm"));
    assert_eq!(profile("").media, None);
    for bad in ["A4", "", "iso a4", "x\\u0000"] {
        let text = BASE.replace(
            "duplex = true",
            &format!("duplex = true\nmedia = \"{bad}\""),
        );
        let e = parse_err(&text);
        assert_eq!(e.line, 7, "{bad}: {e}");
        assert!(e.message.contains("not an IPP media keyword"), "{e}");
    }
}

#[test]
fn semantic_checks() {
    // No envelope.
    let text = BASE.replace("[[envelope]]\nname = \"DL\"\nmax-sheets = 5\n\n", "");
    let text = text.replace("[[envelope]]\nname = \"C4\"\nmax-sheets = 60\n", "");
    assert!(parse_err(&text).message.contains("at least one"));
    // The Data Matrix is required.
    let text = BASE.replace("[marks.datamatrix]", "[marks.omr]");
    assert!(Profile::parse("p", &text).is_err());
    // Stations 1..=8, unique.
    let feeder = |s: u32| {
        format!(
            "\n[[feeder]]\nstation = {s}\nname = \"f\"\nwhen = {{ field = \"a\", present = true }}\n"
        )
    };
    let e = parse_err(&format!("{BASE}{}", feeder(9)));
    assert!(e.message.contains("1 to 8"), "{e}");
    let e = parse_err(&format!("{BASE}{}{}", feeder(2), feeder(2)));
    assert!(e.message.contains("twice"), "{e}");
    // Exactly one test per condition, pointing at the condition.
    let e = parse_err(&format!(
        "{BASE}\n[[feeder]]\nstation = 1\nname = \"f\"\nwhen = {{ field = \"a\", equals = \"x\", present = true }}\n"
    ));
    assert_eq!((e.line, e.column), (28, 8), "{e}");
    assert!(e.message.contains("exactly one"), "{e}");
    // Amounts are exact text, not floats.
    let e = parse_err(&format!(
        "{BASE}\n[[feeder]]\nstation = 1\nname = \"f\"\nwhen = {{ field = \"a\", less-than = 0.1 }}\n"
    ));
    assert!(e.message.contains("string"), "{e}");
    // Field paths.
    let e = parse_err(&format!("{BASE}\n[presort]\nkeys = [\"a..b\"]\n"));
    assert_eq!((e.line, e.column), (26, 9), "{e}");
    // Weight classes ascend; job limits at least 1.
    let e = parse_err(&format!("{BASE}\n[presort]\nweight-classes = [1, 5, 3]\n"));
    assert!(e.message.contains("ascending"), "{e}");
    let text = BASE.replace("max-pieces = 5000", "max-pieces = 0");
    assert!(parse_err(&text).message.contains("max-pieces"));
    // Unknown duplicate policy, unknown OMR mark.
    let e = parse_err(&format!(
        "{BASE}\n[duplicates]\nkey = [\"a\"]\npolicy = \"drop\"\n"
    ));
    assert!(e.message.contains("drop"), "{e}");
    let e = parse_err(&format!(
        "{BASE}\n[marks.omr]\nx = \"5mm\"\ny = \"200mm\"\npitch = \"4mm\"\nlength = \"8mm\"\nthickness = \"0.4mm\"\nmarks = [\"start\", \"feeder-9\"]\n"
    ));
    assert!(e.message.contains("feeder-9"), "{e}");
}

#[test]
fn lengths_are_points_and_the_hash_is_of_the_text() {
    let p = profile("");
    assert!((p.marks.datamatrix.size - 28.346_457).abs() < 1e-3);
    assert_eq!(p.marks.datamatrix.clear_zone, 0.0);
    assert_eq!(p.job_prefix, "J");
    assert_eq!(p.overflow, Overflow::Split);
    assert_eq!(p.presort.weight_classes, vec![5, 60]);
    use sha2::Digest;
    let want: [u8; 32] = sha2::Sha256::digest(BASE.as_bytes()).into();
    assert_eq!(p.content_hash(), want);
    assert_ne!(profile("\n").content_hash(), want);
}

// ---- facts ---------------------------------------------------------------------------

fn feeder_profile(when: &str) -> Profile {
    profile(&format!(
        "\n[[feeder]]\nstation = 3\nname = \"f\"\nwhen = {when}\n"
    ))
}

fn fires(when: &str, record: Value) -> bool {
    feeder_profile(when).facts(&record).unwrap().feeders == 0b100
}

#[test]
fn conditions_of_each_kind() {
    let r = json!({"c": {"region": "UK", "n": 3, "flag": true}, "list": ["a", "b"]});
    assert!(fires(r#"{ field = "c.region", equals = "UK" }"#, r.clone()));
    assert!(!fires(
        r#"{ field = "c.region", equals = "uk" }"#,
        r.clone()
    ));
    assert!(fires(r#"{ field = "c.n", equals = 3 }"#, r.clone()));
    assert!(fires(r#"{ field = "c.n", equals = "3.00" }"#, r.clone()));
    assert!(fires(r#"{ field = "c.flag", equals = true }"#, r.clone()));
    assert!(fires(
        r#"{ field = "c.region", not-equals = "EU" }"#,
        r.clone()
    ));
    assert!(!fires(
        r#"{ field = "c.region", not-equals = "UK" }"#,
        r.clone()
    ));
    assert!(fires(
        r#"{ field = "c.missing", not-equals = "UK" }"#,
        r.clone()
    ));
    assert!(fires(
        r#"{ field = "c.region", in = ["EU", "UK"] }"#,
        r.clone()
    ));
    assert!(!fires(
        r#"{ field = "c.region", in = ["EU", "US"] }"#,
        r.clone()
    ));
    assert!(fires(
        r#"{ field = "c.region", present = true }"#,
        r.clone()
    ));
    assert!(fires(
        r#"{ field = "c.missing", present = false }"#,
        r.clone()
    ));
    assert!(fires(r#"{ field = "list[1]", equals = "b" }"#, r.clone()));
    assert!(!fires(
        r#"{ field = "list[2]", present = true }"#,
        r.clone()
    ));
    assert!(fires(r#"{ field = "c.n", greater-than = 2 }"#, r.clone()));
    assert!(!fires(
        r#"{ field = "c.n", greater-than = "3" }"#,
        r.clone()
    ));
    assert!(!fires(
        r#"{ field = "c.missing", less-than = "3" }"#,
        r.clone()
    ));
    assert!(fires(
        r#"{ field = "c", present = true }"#,
        json!({"c": {"x": 1}})
    ));
    assert!(!fires(
        r#"{ field = "c", present = true }"#,
        json!({"c": null})
    ));
}

#[test]
fn decimal_compares_are_exact() {
    let record =
        |text: &str| -> Value { serde_json::from_str(&format!("{{\"b\": {text}}}")).unwrap() };
    // 0.10 and 0.1 are the same amount: neither is below the other.
    assert!(!fires(
        r#"{ field = "b", less-than = "0.10" }"#,
        record("0.1")
    ));
    assert!(!fires(
        r#"{ field = "b", greater-than = "0.10" }"#,
        record("0.1")
    ));
    assert!(fires(r#"{ field = "b", equals = "0.10" }"#, record("0.1")));
    // Beyond a float's precision.
    assert!(fires(
        r#"{ field = "b", less-than = "0.30000000000000000000000001" }"#,
        record("0.3")
    ));
    assert!(fires(
        r#"{ field = "b", less-than = "0" }"#,
        record("-0.0000000000000000000000001")
    ));
    assert!(fires(
        r#"{ field = "b", greater-than = "100" }"#,
        record("1e3")
    ));
    // Decimal strings are amounts too.
    assert!(fires(
        r#"{ field = "b", less-than = "0" }"#,
        record("\"-12.50\"")
    ));
    // Anything else is an error naming the field.
    let p = feeder_profile(r#"{ field = "b", less-than = "0" }"#);
    let e = p.facts(&record("\"abc\"")).unwrap_err();
    assert_eq!(e.field, "b");
    assert!(e.to_string().starts_with("b: "), "{e}");
    assert!(p.facts(&record("true")).is_err());
    assert!(p.facts(&record("[1]")).is_err());
}

#[test]
fn normalisation() {
    assert_eq!(normalise("  12, High-St.  "), "12 HIGH ST");
    assert_eq!(normalise("O'Brien/\"Flat\" 2;;3:"), "O BRIEN FLAT 2 3");
    assert_eq!(normalise("straße\tgrüß\n"), "STRASSE GRÜSS");
    assert_eq!(normalise(" .,- "), "");
    let p = profile(
        "\n[presort]\nkeys = [\"a\", \"n\", \"missing\"]\ngroup = { field = \"pc\", prefix = 3 }\n\
         [householding]\nkey = [\"name\", \"lines\", \"pc\"]\n\
         [duplicates]\nkey = [\"name\"]\npolicy = \"flag\"\n",
    );
    let f = p
        .facts(
            &serde_json::from_str(
                r#"{"a": "x  y", "n": 12.50, "name": "Ann  Lee", "lines": ["1 High St.", "Flat 2"], "pc": "sw1a 1aa"}"#,
            )
            .unwrap(),
        )
        .unwrap();
    assert_eq!(f.sort_key, vec!["X Y", "12.50", ""]);
    assert_eq!(f.group, "SW1");
    assert_eq!(f.recipient.as_deref(), Some("ANN LEE"));
    let h = f.household.unwrap();
    assert_eq!(h, "ANN LEE\u{1f}1 HIGH ST FLAT 2\u{1f}SW1A 1AA");
    // The same address, written differently.
    let g = p
        .facts(&json!({"name": "ann lee", "lines": ["1, High St", " Flat 2 "], "pc": "SW1A-1AA"}))
        .unwrap();
    assert_eq!(g.household.as_deref(), Some(h.as_str()));
    // No address at all is no household (never everyone in one envelope).
    assert_eq!(p.facts(&json!({})).unwrap().household, None);
    assert_eq!(p.facts(&json!({})).unwrap().recipient, None);
    // An object cannot be a key.
    let e = p.facts(&json!({"a": {"b": 1}})).unwrap_err();
    assert_eq!(e.field, "a");
}

#[test]
fn household_excluded_and_channels() {
    let p = profile(
        "\n[householding]\nkey = [\"name\"]\nexclude-when = { field = \"type\", equals = \"business\" }\n\
         [channel]\nfield = \"delivery.channel\"\n",
    );
    let f = p.facts(&json!({"name": "A", "type": "business"})).unwrap();
    assert_eq!(f.household, None);
    assert_eq!(f.channel, None);
    let f = p
        .facts(&json!({"name": "A", "type": "personal", "delivery": {"channel": "print"}}))
        .unwrap();
    assert_eq!(f.household.as_deref(), Some("A"));
    assert_eq!(f.channel, None);
    let f = p.facts(&json!({"delivery": {"channel": "email"}})).unwrap();
    assert_eq!(f.channel.as_deref(), Some("email"));
    assert!(p.facts(&json!({"delivery": {"channel": 3}})).is_err());
    // Without [householding], no household key.
    assert_eq!(
        profile("").facts(&json!({"name": "A"})).unwrap().household,
        None
    );
}

#[test]
fn omr_bits() {
    let p = profile(
        "\n[marks.omr]\nx = \"5mm\"\ny = \"200mm\"\npitch = \"4.23mm\"\nlength = \"8mm\"\nthickness = \"0.4mm\"\n\
         marks = [\"start\", \"insert\", \"feeder-2\", \"sequence-1\", \"parity\", \"safety\"]\n",
    );
    let omr = p.marks.omr.as_ref().unwrap();
    // Sheet 1 of 2, feeder 2 on: start, feeder-2, sequence-1, safety = 4 → parity off.
    assert_eq!(
        omr.bits(1, 2, 0b10),
        vec![true, false, true, true, false, true]
    );
    // Sheet 2 of 2, no feeders: start, insert, safety = 3 → parity on.
    assert_eq!(
        omr.bits(2, 2, 0),
        vec![true, true, false, false, true, true]
    );
}

// ---- planner -------------------------------------------------------------------------

#[test]
fn duplex_and_simplex_sheets() {
    let docs = [doc(1, 3, keyed("a")), doc(2, 2, keyed("b"))];
    let plan = plan_of(&profile(""), &docs);
    let p = pieces(&plan);
    let page = |doc, page| Some(PageRef { doc, page });
    assert_eq!(
        plan.sheets(p[0]),
        vec![
            SheetPlan {
                front: page(0, 1),
                back: page(0, 2)
            },
            SheetPlan {
                front: page(0, 3),
                back: None
            },
        ]
    );
    assert_eq!(
        plan.sheets(p[1]),
        vec![SheetPlan {
            front: page(1, 1),
            back: page(1, 2)
        }]
    );
    let simplex = Profile::parse("p", &BASE.replace("duplex = true", "duplex = false")).unwrap();
    let plan = plan_of(&simplex, &docs);
    let p = pieces(&plan);
    assert_eq!(plan.sheets(p[0]).len(), 3);
    assert!(plan.sheets(p[0]).iter().all(|s| s.back.is_none()));
    assert_eq!(plan.sheets(p[0])[2].front, page(0, 3));
    assert_eq!(plan.envelope(p[0]), "DL");
}

fn household(key: &str, h: &str, feeders: u8) -> Facts {
    Facts {
        household: Some(h.to_string()),
        feeders,
        ..keyed(key)
    }
}

#[test]
fn householding_merges_until_the_largest_envelope_is_full() {
    // Largest envelope: 60 sheets; documents of 40, 30, 20, 10 sheets (duplex: pages × 2).
    let docs = [
        doc(1, 80, household("a", "H", 1)),
        doc(2, 60, household("b", "H", 2)),
        doc(3, 40, household("c", "H", 0)),
        doc(4, 2, keyed("d")),
        doc(5, 20, household("e", "H", 4)),
        doc(6, 2, household("f", "OTHER", 0)),
    ];
    let plan = plan_of(&profile(""), &docs);
    let p = pieces(&plan);
    let sets: Vec<&[u32]> = p.iter().map(|p| plan.documents(p)).collect();
    // 40 + 30 > 60 → new piece; 30 + 20 = 50, + 10 = 60 fits.
    assert_eq!(sets, vec![&[0][..], &[1, 2, 4], &[3], &[5]]);
    assert!(!p[0].householded);
    assert!(p[1].householded);
    assert_eq!(p[1].feeders, 0b110);
    assert_eq!(plan.sheets(p[1]).len(), 60);
    assert_eq!(plan.envelope(p[1]), "C4");
    // Each document starts on its own sheet, in order.
    assert_eq!(
        plan.sheets(p[1])[30].front,
        Some(PageRef { doc: 2, page: 1 })
    );
    assert_eq!(plan.sort_group(p[1]), "b");
}

#[test]
fn oversize_documents_split_into_parts() {
    // 130 pages duplex = 65 sheets > 60 → 60 + 5.
    let docs = [
        doc(1, 4, household("a", "H", 0)),
        doc(2, 130, household("b", "H", 1)),
        doc(3, 4, household("c", "H", 0)),
    ];
    let plan = plan_of(&profile(""), &docs);
    let p = pieces(&plan);
    assert_eq!(p.len(), 3);
    // The big one is never merged; the small ones still are.
    assert_eq!(plan.documents(p[0]), vec![0, 2]);
    assert_eq!(p[1].part, Some((1, 2)));
    assert_eq!(plan.envelope(p[1]), "C4");
    assert_eq!(plan.sheets(p[1]).len(), 60);
    assert_eq!(p[2].part, Some((2, 2)));
    assert_eq!(plan.envelope(p[2]), "DL");
    assert_eq!(plan.sheets(p[2]).len(), 5);
    assert_eq!(
        plan.sheets(p[2])[0].front,
        Some(PageRef { doc: 1, page: 121 })
    );
    assert_eq!(
        plan.sheets(p[2])[4].back,
        Some(PageRef { doc: 1, page: 130 })
    );
    assert_eq!(p[2].feeders, 1);
    assert!(plan.rejected.is_empty());
}

#[test]
fn oversize_documents_rejected() {
    let p = profile("\n[envelopes]\nabove = \"reject\"\n");
    let docs = [
        doc(1, 122, keyed("a")),
        doc(2, 2, keyed("b")),
        doc(3, 0, keyed("c")),
    ];
    let plan = plan_of(&p, &docs);
    assert_eq!(pieces(&plan).len(), 1);
    assert_eq!(plan.rejected.len(), 2);
    assert_eq!(plan.rejected[0].0, 0);
    assert!(
        plan.rejected[0].1.contains("61 sheets"),
        "{}",
        plan.rejected[0].1
    );
    assert_eq!(plan.rejected[1].0, 2);
}

#[test]
fn presort_is_stable_with_equal_keys() {
    // Input not in record order; equal keys keep record order.
    let docs = [
        doc(5, 2, keyed("b")),
        doc(1, 2, keyed("b")),
        doc(3, 2, keyed("a")),
        doc(2, 2, keyed("b")),
        doc(4, 2, keyed("a")),
    ];
    let plan = plan_of(&profile(""), &docs);
    let order: Vec<usize> = pieces(&plan)
        .iter()
        .map(|p| plan.documents(p)[0] as usize)
        .collect();
    assert_eq!(order, vec![2, 4, 1, 3, 0]);
    let numbers: Vec<u32> = pieces(&plan).iter().map(|p| p.piece).collect();
    assert_eq!(numbers, vec![1, 2, 3, 4, 5]);
}

#[test]
fn jobs_cut_by_pieces() {
    let text = BASE.replace("max-pieces = 5000", "max-pieces = 2");
    let p = Profile::parse("p", &text).unwrap();
    let docs: Vec<DocFacts> = (0..5).map(|i| doc(i, 2, keyed(&format!("k{i}")))).collect();
    let plan = plan_of(&p, &docs);
    let ids: Vec<&str> = plan.jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, vec!["J000001", "J000002", "J000003"]);
    let sizes: Vec<usize> = plan.jobs.iter().map(|j| j.pieces.len()).collect();
    assert_eq!(sizes, vec![2, 2, 1]);
    assert_eq!(plan.jobs[1].pieces[0].piece, 1);
    assert_eq!(plan.jobs[1].pieces[1].piece, 2);
}

#[test]
fn jobs_cut_by_sheets_and_big_pieces_get_their_own() {
    let text = BASE.replace("max-sheets = 20000", "max-sheets = 10");
    let p = Profile::parse("p", &text).unwrap();
    // Sheets: 4, 4, 4 | 30 (alone, above the limit) | 2
    let docs = [
        doc(1, 8, keyed("a")),
        doc(2, 8, keyed("b")),
        doc(3, 8, keyed("c")),
        doc(4, 60, keyed("d")),
        doc(5, 4, keyed("e")),
    ];
    let plan = plan_of(&p, &docs);
    let sets: Vec<Vec<usize>> = plan
        .jobs
        .iter()
        .map(|j| {
            j.pieces
                .iter()
                .map(|p| plan.documents(p)[0] as usize)
                .collect()
        })
        .collect();
    assert_eq!(sets, vec![vec![0, 1], vec![2], vec![3], vec![4]]);
}

#[test]
fn duplicates_flag_and_suppress() {
    let recipient = |r: &str, key: &str| Facts {
        recipient: Some(r.to_string()),
        ..keyed(key)
    };
    let mut docs = vec![
        doc(1, 2, recipient("ANN", "a")),
        doc(2, 2, recipient("ANN", "b")),
        doc(3, 2, recipient("BOB", "c")),
        doc(4, 2, recipient("ANN", "d")),
        doc(5, 2, keyed("e")),
    ];
    docs[1].sha256 = docs[0].sha256.clone(); // same content, same recipient
    docs[3].sha256 = docs[0].sha256.clone();
    docs[2].sha256 = docs[0].sha256.clone(); // same content, other recipient
    docs[4].sha256 = docs[0].sha256.clone(); // no recipient key
    let flag = profile("\n[duplicates]\nkey = [\"n\"]\npolicy = \"flag\"\n");
    let plan = plan_of(&flag, &docs);
    assert_eq!(
        plan.duplicates,
        vec![
            Duplicate {
                doc: 1,
                first: 0,
                suppressed: false
            },
            Duplicate {
                doc: 3,
                first: 0,
                suppressed: false
            },
        ]
    );
    assert_eq!(pieces(&plan).len(), 5);
    let suppress = profile("\n[duplicates]\nkey = [\"n\"]\npolicy = \"suppress\"\n");
    let plan = plan_of(&suppress, &docs);
    assert!(plan.duplicates.iter().all(|d| d.suppressed));
    let printed: Vec<usize> = pieces(&plan)
        .iter()
        .map(|p| plan.documents(p)[0] as usize)
        .collect();
    assert_eq!(printed, vec![0, 2, 4]);
}

#[test]
fn routed_documents_are_not_printed_nor_duplicates() {
    let mut email = keyed("a");
    email.channel = Some("email".to_string());
    email.recipient = Some("ANN".to_string());
    let mut second = keyed("b");
    second.recipient = Some("ANN".to_string());
    let mut docs = vec![doc(1, 2, email), doc(2, 2, second)];
    docs[1].sha256 = docs[0].sha256.clone();
    let p = profile("\n[duplicates]\nkey = [\"n\"]\npolicy = \"suppress\"\n");
    let plan = plan_of(&p, &docs);
    assert_eq!(
        plan.routed,
        vec![Routed {
            doc: 0,
            channel: "email".to_string()
        }]
    );
    assert!(plan.duplicates.is_empty());
    assert_eq!(pieces(&plan).len(), 1);
    assert_eq!(plan.documents(pieces(&plan)[0]), vec![1]);
}

#[test]
fn group_summary_by_weight_class() {
    let p = profile("\n[presort]\nweight-classes = [1, 3]\n");
    let docs = [
        doc(1, 2, keyed("SW1")),  // 1 sheet
        doc(2, 6, keyed("SW2")),  // 3 sheets
        doc(3, 10, keyed("SW3")), // 5 sheets: above the last class
        doc(4, 1, keyed("AB1")),  // 1 sheet
    ];
    let plan = plan_of(&p, &docs);
    assert_eq!(
        plan.groups,
        vec![
            GroupSummary {
                group: "AB".into(),
                pieces: 1,
                sheets: 1,
                by_weight_class: vec![(1, 1), (3, 0)],
            },
            GroupSummary {
                group: "SW".into(),
                pieces: 3,
                sheets: 9,
                by_weight_class: vec![(1, 1), (3, 1), (u32::MAX, 1)],
            },
        ]
    );
}

/// A tiny deterministic PRNG (xorshift64*), so the property test needs no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn every_document_is_accounted_for_once_and_pieces_fit_and_are_sorted() {
    for seed in 1..=60u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let duplex = rng.below(2) == 0;
        let mut caps = Vec::new();
        let mut cap = 0;
        for _ in 0..1 + rng.below(3) {
            cap += 1 + rng.below(6) as u32;
            caps.push(cap);
        }
        let envelopes: String = caps
            .iter()
            .enumerate()
            .map(|(i, c)| format!("[[envelope]]\nname = \"E{i}\"\nmax-sheets = {c}\n"))
            .collect();
        let above = if rng.below(3) == 0 { "reject" } else { "split" };
        let policy = if rng.below(2) == 0 {
            "flag"
        } else {
            "suppress"
        };
        let text = format!(
            "[profile]\nid = \"p\"\nversion = \"1\"\n[print]\nduplex = {duplex}\n{envelopes}\
             [envelopes]\nabove = \"{above}\"\n[duplicates]\nkey = [\"n\"]\npolicy = \"{policy}\"\n\
             [job]\nmax-pieces = {}\nmax-sheets = {}\n\
             [marks.datamatrix]\nx = \"1mm\"\ny = \"1mm\"\nsize = \"5mm\"\n",
            1 + rng.below(8),
            1 + rng.below(30)
        );
        let p = Profile::parse("p", &text).unwrap();
        let n = rng.below(200) as usize;
        let docs: Vec<DocFacts> = (0..n)
            .map(|i| {
                let facts = Facts {
                    sort_key: vec![format!("{}", rng.below(5)), format!("{}", rng.below(3))],
                    group: format!("G{}", rng.below(3)),
                    household: (rng.below(2) == 0).then(|| format!("H{}", rng.below(6))),
                    recipient: (rng.below(2) == 0).then(|| format!("R{}", rng.below(4))),
                    feeders: rng.below(256) as u8,
                    channel: (rng.below(10) == 0).then(|| "email".to_string()),
                };
                let mut d = doc(rng.below(1000), rng.below(3 * u64::from(cap)) as u32, facts);
                d.sha256 = format!("{}", rng.below(3));
                let _ = i;
                d
            })
            .collect();
        let plan = plan_of(&p, &docs);

        // Each document: in pieces (all sheets, split parts complete) or in exactly one list.
        let mut sheets_seen = vec![0u32; n];
        let mut in_pieces = vec![0u32; n];
        for piece in plan.jobs.iter().flat_map(|j| &j.pieces) {
            let env = p
                .envelopes
                .iter()
                .find(|e| e.name == plan.envelope(piece))
                .unwrap();
            let sheets = plan.sheets(piece);
            assert_eq!(sheets.len() as u32, piece.sheet_count, "seed {seed}");
            assert!(piece.sheet_count <= env.max_sheets, "seed {seed}");
            assert_eq!(
                Some(env),
                p.envelope_for(piece.sheet_count),
                "seed {seed}: not the smallest envelope"
            );
            let members = plan.documents(piece);
            for &d in members {
                in_pieces[d as usize] += 1;
            }
            for s in &sheets {
                for side in [s.front, s.back].into_iter().flatten() {
                    sheets_seen[side.doc] += 1;
                    assert!(members.contains(&(side.doc as u32)), "seed {seed}");
                }
            }
            assert_eq!(
                piece.feeders,
                members
                    .iter()
                    .fold(0, |m, &d| m | docs[d as usize].facts.feeders)
            );
        }
        let mut elsewhere = vec![0u32; n];
        for r in &plan.routed {
            elsewhere[r.doc] += 1;
        }
        for d in plan.duplicates.iter().filter(|d| d.suppressed) {
            elsewhere[d.doc] += 1;
        }
        for (d, _) in &plan.rejected {
            elsewhere[*d] += 1;
        }
        for i in 0..n {
            let printed = in_pieces[i] > 0;
            assert_eq!(
                u32::from(printed) + elsewhere[i],
                1,
                "seed {seed}: document {i} accounted for {} + {} times",
                in_pieces[i],
                elsewhere[i]
            );
            if printed {
                assert_eq!(sheets_seen[i], docs[i].pages, "seed {seed}: pages of {i}");
                let parts = p.sheets(docs[i].pages).div_ceil(p.largest());
                assert!(in_pieces[i] == 1 || in_pieces[i] == parts, "seed {seed}");
            }
        }

        // Sort order, job limits, numbering.
        let all: Vec<&PiecePlan> = plan.jobs.iter().flat_map(|j| &j.pieces).collect();
        for w in all.windows(2) {
            let (a, b) = (
                &docs[plan.documents(w[0])[0] as usize],
                &docs[plan.documents(w[1])[0] as usize],
            );
            assert!(
                (&a.facts.sort_key, a.record) <= (&b.facts.sort_key, b.record),
                "seed {seed}: pieces out of order"
            );
        }
        for (k, job) in plan.jobs.iter().enumerate() {
            assert_eq!(job.id, format!("J{:06}", k + 1));
            assert!(job.pieces.len() <= p.job.max_pieces as usize);
            let sheets: usize = job.pieces.iter().map(|p| p.sheet_count as usize).sum();
            assert!(sheets <= p.job.max_sheets as usize || job.pieces.len() == 1);
            for (j, piece) in job.pieces.iter().enumerate() {
                assert_eq!(piece.piece as usize, j + 1);
            }
        }
        let total: u64 = plan.groups.iter().map(|g| g.pieces).sum();
        assert_eq!(total as usize, all.len());
    }
}

// ---- the example profiles and the editor schema --------------------------------------

#[test]
fn example_profiles_parse_and_satisfy_the_editor_schema() {
    let root = repo();
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("docs/schema/production.schema.json")).unwrap(),
    )
    .unwrap();
    for name in ["statement", "insurance-letter"] {
        let path = root.join(format!("examples/production/{name}.toml"));
        let text = std::fs::read_to_string(&path).unwrap();
        let p = Profile::parse(&format!("{name}.toml"), &text).unwrap_or_else(|e| panic!("{e}"));
        assert!(!p.envelopes.is_empty());
        let as_json = serde_json::to_value(toml::from_str::<toml::Table>(&text).unwrap()).unwrap();
        let mut errors = Vec::new();
        validate(&schema, &schema, &as_json, name, &mut errors);
        assert!(errors.is_empty(), "{name}: {errors:#?}");
    }
    let p = Profile::parse(
        "statement.toml",
        &std::fs::read_to_string(root.join("examples/production/statement.toml")).unwrap(),
    )
    .unwrap();
    assert!(p.duplex);
    assert_eq!(p.feeders.len(), 2);
    assert!(p.householding.is_some());
    assert!(p.marks.omr.is_some() && p.marks.text.is_some());
    let f = p
        .facts(&json!({
            "customer": {"name": "Ann Lee", "address_lines": ["1 High St"], "postcode": "SW1A 1AA",
                         "country": "GB", "region": "UK"},
            "account": {"type": "personal"},
            "statement": {"closing_balance": -0.01}
        }))
        .unwrap();
    assert_eq!(f.feeders, 0b11);
    assert_eq!(f.group, "SW");
    assert_eq!(f.sort_key, vec!["GB", "SW1A 1AA"]);
}

#[test]
fn the_schema_check_catches_mistakes() {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("docs/schema/production.schema.json")).unwrap(),
    )
    .unwrap();
    let bad = [
        json!({"profile": {"id": "x", "version": "1"}, "envelope": [{"name": "DL", "max-sheets": 5}],
               "job": {"max-pieces": 1, "max-sheets": 1}, "marks": {"datamatrix": {"x": "1mm", "y": "1mm", "size": "1mm"}},
               "staple": true}),
        json!({"profile": {"id": "x", "version": "1"}, "envelope": [],
               "job": {"max-pieces": 1, "max-sheets": 1}, "marks": {"datamatrix": {"x": "1mm", "y": "1mm", "size": "1mm"}}}),
        json!({"profile": {"id": "x", "version": "1"}, "envelope": [{"name": "DL", "max-sheets": 5}],
               "envelopes": {"above": "squash"},
               "job": {"max-pieces": 1, "max-sheets": 1}, "marks": {"datamatrix": {"x": "1mm", "y": "1mm", "size": "1mm"}}}),
        json!({"profile": {"id": "x", "version": "1"}, "envelope": [{"name": "DL", "max-sheets": 5}],
               "feeder": [{"station": 1, "name": "f", "when": {"field": "a", "equals": "x", "present": true}}],
               "job": {"max-pieces": 1, "max-sheets": 1}, "marks": {"datamatrix": {"x": "1mm", "y": "1mm", "size": "1mm"}}}),
    ];
    for (i, v) in bad.iter().enumerate() {
        let mut errors = Vec::new();
        validate(&schema, &schema, v, "bad", &mut errors);
        assert!(!errors.is_empty(), "bad profile {i} passed the schema");
    }
}

/// Checks a value against the subset of JSON Schema the profile schema uses (type,
/// properties, additionalProperties, required, items, enum, bounds, anyOf, local $ref);
/// `pattern` is left to the parser, which the example test also runs.
fn validate(root: &Value, schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.strip_prefix("#/$defs/").expect("local $ref");
        validate(root, &root["$defs"][name], v, at, errors);
    }
    if let Some(t) = schema["type"].as_str() {
        let ok = match t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            other => panic!("type {other}"),
        };
        if !ok {
            errors.push(format!("{at}: not {t}"));
            return;
        }
    }
    if let Some(options) = schema["enum"].as_array()
        && !options.contains(v)
    {
        errors.push(format!("{at}: {v} not one of {options:?}"));
    }
    if let Some(any) = schema["anyOf"].as_array() {
        let ok = any.iter().any(|s| {
            let mut e = Vec::new();
            validate(root, s, v, at, &mut e);
            e.is_empty()
        });
        if !ok {
            errors.push(format!("{at}: matches none of anyOf"));
        }
    }
    let bound = |k: &str| schema[k].as_f64();
    if let Some(n) = v.as_f64()
        && (bound("minimum").is_some_and(|m| n < m) || bound("maximum").is_some_and(|m| n > m))
    {
        errors.push(format!("{at}: {n} out of bounds"));
    }
    if let Some(s) = v.as_str()
        && bound("minLength").is_some_and(|m| (s.chars().count() as f64) < m)
    {
        errors.push(format!("{at}: too short"));
    }
    if let Some(items) = v.as_array() {
        let len = items.len() as f64;
        if bound("minItems").is_some_and(|m| len < m) || bound("maxItems").is_some_and(|m| len > m)
        {
            errors.push(format!("{at}: {len} items"));
        }
        if schema.get("items").is_some() {
            for (i, item) in items.iter().enumerate() {
                validate(root, &schema["items"], item, &format!("{at}[{i}]"), errors);
            }
        }
    }
    if let Some(obj) = v.as_object() {
        let len = obj.len() as f64;
        if bound("minProperties").is_some_and(|m| len < m)
            || bound("maxProperties").is_some_and(|m| len > m)
        {
            errors.push(format!("{at}: {len} properties"));
        }
        for r in schema["required"].as_array().into_iter().flatten() {
            if !obj.contains_key(r.as_str().unwrap()) {
                errors.push(format!("{at}: missing {r}"));
            }
        }
        for (k, val) in obj {
            match schema["properties"].get(k) {
                Some(s) => validate(root, s, val, &format!("{at}.{k}"), errors),
                None if schema["additionalProperties"] == Value::Bool(false) => {
                    errors.push(format!("{at}: unknown key {k}"));
                }
                None => {}
            }
        }
    }
}
