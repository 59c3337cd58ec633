//! Tests of the template stage: the examples end to end, diagnostics and records.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::*;
use crate::doc::{Block, BlockKind, Inline};

fn opts() -> CompileOptions {
    CompileOptions::default()
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn compile_example(name: &str) -> Template {
    match compile(&examples().join(name), &opts()) {
        Ok(c) => {
            assert!(c.warnings.is_empty(), "{:?}", c.warnings);
            c.template
        }
        Err(e) => panic!("{e}"),
    }
}

fn statement_record(n: usize, region: &str, closing_negative: bool) -> Value {
    let mut txs = Vec::new();
    let mut balance = 120.0;
    for i in 0..n {
        let amount = if i % 3 == 0 { 250.75 } else { -37.1 - i as f64 };
        balance += amount;
        txs.push(json!({
            "date": format!("2024-03-{:02}", 1 + i % 28),
            "description": format!("Card payment {i}"),
            "amount": amount,
        }));
    }
    let closing = if closing_negative { -512.34 } else { 1234.5 };
    let _ = balance;
    json!({
        "customer": {
            "name": "Ada Lovelace", "title": "Ms",
            "address_lines": ["12 Analytical Row", "Marylebone"],
            "postcode": "NW1 6XE", "city": "London", "country": "United Kingdom",
            "region": region
        },
        "account": {"number": "12345678", "sort_code": "12-34-56", "type": "Current",
            "currency": "GBP"},
        "statement": {"period_start": "2024-03-01", "period_end": "2024-03-31",
            "opening_balance": 120.0, "closing_balance": closing},
        "transactions": txs
    })
}

fn params() -> BindParams {
    BindParams {
        record_number: 7,
        run_date: "2024-04-02".into(),
    }
}

/// Collects all text of a block tree, in order.
fn text_of(blocks: &[Block], out: &mut String) {
    for b in blocks {
        match &b.kind {
            BlockKind::Paragraph(p) => {
                for i in &p.inlines {
                    match i {
                        Inline::Text { text, .. } => out.push_str(text),
                        Inline::PageNumber { .. } => out.push_str("<n>"),
                        Inline::PageCount { .. } => out.push_str("<N>"),
                        Inline::LineBreak => out.push('\n'),
                    }
                }
                out.push('\n');
            }
            BlockKind::List(l) => l.items.iter().for_each(|i| text_of(i, out)),
            BlockKind::Columns(c) => c.columns.iter().for_each(|c| text_of(&c.blocks, out)),
            BlockKind::Table(t) => {
                for r in t.header.iter().chain(&t.rows).chain(&t.footer) {
                    for c in &r.cells {
                        text_of(&c.blocks, out);
                    }
                }
            }
            BlockKind::Group(g) => text_of(g, out),
            _ => {}
        }
    }
}

fn all_text(blocks: &[Block]) -> String {
    let mut s = String::new();
    text_of(blocks, &mut s);
    s
}

fn find<'a>(blocks: &'a [Block], pred: &dyn Fn(&Block) -> bool) -> Option<&'a Block> {
    for b in blocks {
        if pred(b) {
            return Some(b);
        }
        let inner: Vec<&[Block]> = match &b.kind {
            BlockKind::Group(g) => vec![g],
            BlockKind::Columns(c) => c.columns.iter().map(|c| c.blocks.as_slice()).collect(),
            BlockKind::List(l) => l.items.iter().map(Vec::as_slice).collect(),
            _ => vec![],
        };
        for i in inner {
            if let Some(f) = find(i, pred) {
                return Some(f);
            }
        }
    }
    None
}

#[test]
fn statement_binds_to_the_expected_shape() {
    let t = compile_example("statement");
    assert_eq!(t.id, "statement");
    assert_eq!(t.images.images.len(), 1);
    assert_eq!(t.masters.first.regions[0].name, "window");
    let mut rec = statement_record(42, "UK", true);
    t.validate(&mut rec).unwrap();
    let doc = t.bind(&rec, &params()).unwrap();
    assert_eq!(doc.meta.id, "12345678-2024-03-31");
    assert_eq!(doc.meta.title, "Statement 12345678 to 31 March 2024");
    assert_eq!(doc.meta.lang, "en-GB");

    let table = find(&doc.body, &|b| matches!(b.kind, BlockKind::Table(_))).unwrap();
    let BlockKind::Table(table) = &table.kind else {
        unreachable!()
    };
    assert_eq!(table.rows.len(), 42);
    assert_eq!(table.columns.len(), 5);
    assert!(table.header.is_some() && table.footer.is_some());
    // Running balance after the first row: 120 + 250.75.
    assert_eq!(all_text(&table.rows[0].cells[4].blocks).trim(), "£370.75");
    assert_eq!(all_text(&table.rows[0].cells[2].blocks).trim(), "£250.75");
    assert_eq!(all_text(&table.rows[1].cells[3].blocks).trim(), "£38.10");
    assert_eq!(all_text(&table.rows[1].cells[0].blocks).trim(), "02 Mar");

    let text = all_text(&doc.body);
    assert!(text.contains("Your account is overdrawn"), "{text}");
    assert!(text.contains("Your closing balance is -£512.34."), "{text}");
    assert!(text.contains("FSCS"), "UK clause expected: {text}");
    assert!(!text.contains("FDIC"));

    let window = &doc.first.regions[0];
    assert_eq!(window.0, 0);
    let address = all_text(&window.1);
    assert_eq!(
        address,
        "Ms Ada Lovelace\n12 Analytical Row\nMarylebone\nLONDON NW1 6XE\nUnited Kingdom\n"
    );
    assert!(all_text(&doc.first.footer).contains("Page <n> of <N>"));
    assert!(all_text(&doc.rest.header).contains("01 Mar 2024 to 31 Mar 2024"));

    let qr = find(&doc.body, &|b| matches!(b.kind, BlockKind::Barcode(_))).unwrap();
    let BlockKind::Barcode(qr) = &qr.kind else {
        unreachable!()
    };
    assert_eq!(qr.data, "https://pressrun.example/s/12345678/2024-03-31");
    let heading = find(&doc.body, &|b| {
        matches!(&b.kind, BlockKind::Paragraph(p) if p.role == crate::doc::ParagraphRole::Heading(2))
    })
    .unwrap();
    assert!(heading.keep_with_next);
}

#[test]
fn statement_rules_follow_the_record() {
    let t = compile_example("statement");
    for (region, clause) in [("UK", "FSCS"), ("EU", "2014/49/EU"), ("US", "FDIC")] {
        let doc = t
            .bind(&statement_record(5, region, false), &params())
            .unwrap();
        let text = all_text(&doc.body);
        assert!(text.contains(clause), "{region}: {text}");
        assert!(
            !text.contains("overdrawn"),
            "no overdraft clause when in credit"
        );
        let BlockKind::Table(tb) = &find(&doc.body, &|b| matches!(b.kind, BlockKind::Table(_)))
            .unwrap()
            .kind
        else {
            unreachable!()
        };
        assert_eq!(tb.rows.len(), 5);
    }
    let e = t
        .bind(&statement_record(5, "APAC", false), &params())
        .unwrap_err();
    assert_eq!(e.path, "customer.region");
    assert_eq!(
        e.reason,
        "no fragment matches the name this record gives; the template has legal-eu, legal-uk, legal-us"
    );
    let mut untitled = statement_record(5, "UK", false);
    untitled["customer"]
        .as_object_mut()
        .unwrap()
        .remove("title");
    t.validate(&mut untitled).unwrap();
    let doc = t.bind(&untitled, &params()).unwrap();
    assert!(all_text(&doc.first.regions[0].1).starts_with("Ada Lovelace\n"));
    let mut bad = statement_record(5, "UK", false);
    bad["transactions"][3]["date"] = json!("soon");
    let e = t.bind(&bad, &params()).unwrap_err();
    assert_eq!(e.path, "transactions[3].date");
    assert_eq!(e.reason, format!("date: {}", schema::DATE_REASON));
    // Binding is deterministic.
    let r = statement_record(150, "EU", true);
    assert_eq!(
        t.bind(&r, &params()).unwrap(),
        t.bind(&r, &params()).unwrap()
    );
}

#[test]
fn insurance_letter_binds() {
    let t = compile_example("insurance-letter");
    let mut rec = json!({
        "policyholder": {"name": "Grace Hopper", "address_lines": ["1 Harbour Way"],
            "postcode": "BS1 4ST", "city": "Bristol", "region": "UK"},
        "policy": {"number": "HM-0042", "type": "motor", "renewal_date": "2024-06-01",
            "premium_items": [{"cover": "Comprehensive", "amount": 412.5},
                {"cover": "Breakdown", "amount": 62.0}],
            "total_premium": 474.5}
    });
    t.validate(&mut rec).unwrap();
    let doc = t.bind(&rec, &params()).unwrap();
    let text = all_text(&doc.body);
    assert!(text.starts_with("02 April 2024\n"), "{text}");
    assert!(text.contains("Your motor cover"), "{text}");
    assert!(!text.contains("Your home cover"));
    assert!(text.contains("Financial Ombudsman"));
    assert!(text.contains("£474.50"));
    let BlockKind::Table(tb) = &find(&doc.body, &|b| matches!(b.kind, BlockKind::Table(_)))
        .unwrap()
        .kind
    else {
        unreachable!()
    };
    assert_eq!(tb.rows.len(), 2);
    let mut bad = rec.clone();
    bad["policy"]["premium_items"][1]["amount"] = json!(true);
    let e = t.validate(&mut bad).unwrap_err();
    assert_eq!(e.path, "policy.premium_items[1].amount");
    bad["policy"]["premium_items"][1]["amount"] = json!(-1);
    let e = t.validate(&mut bad).unwrap_err();
    assert_eq!(
        (e.path.as_str(), e.reason.as_str()),
        (
            "policy.premium_items[1].amount",
            "amount is below the declared minimum 0"
        )
    );
}

#[test]
fn csv_records_through_the_template() {
    let t = compile_example("insurance-letter");
    let headers: Vec<String> = [
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
        "crm_id",
    ]
    .map(String::from)
    .to_vec();
    let row: Vec<String> = [
        "Grace Hopper",
        r#"["1 Harbour Way"]"#,
        "BS1 4ST",
        "Bristol",
        "EU",
        "HM-7",
        "home",
        "2024-06-01",
        r#"[{"cover":"Buildings","amount":200}]"#,
        "200",
        "ignored",
    ]
    .map(String::from)
    .to_vec();
    let rec = t.record_from_csv(&headers, &row).unwrap();
    assert_eq!(rec["policy"]["total_premium"], json!(200));
    assert!(rec.get("crm_id").is_none());
    let doc = t.bind(&rec, &params()).unwrap();
    assert!(all_text(&doc.body).contains("Your home cover"));
}

const TOML: &str = r#"[template]
id = "t"
version = "1"

[fields]
customer.name = "string"
customer.region = "string"
amount = "number"

[styles.heading]
bold = true
"#;

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn fixture(toml: &str, body: &str, fragments: &[(&str, &str)]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t");
    std::fs::create_dir_all(path.join("../fragments")).unwrap();
    std::fs::write(path.join("template.toml"), toml).unwrap();
    std::fs::write(path.join("body.xml"), body).unwrap();
    for (name, text) in fragments {
        std::fs::write(path.join(format!("../fragments/{name}.xml")), text).unwrap();
    }
    Fixture { _dir: dir, path }
}

fn errors(toml: &str, body: &str) -> Vec<Diagnostic> {
    let f = fixture(
        toml,
        body,
        &[("legal-uk", "<fragment><p>UK</p></fragment>")],
    );
    match compile(&f.path, &opts()) {
        Ok(_) => panic!("expected errors"),
        Err(Diagnostics(d)) => d,
    }
}

fn at(d: &Diagnostic) -> (String, u32, u32) {
    let l = d.location.as_ref().unwrap();
    (
        l.file.file_name().unwrap().to_string_lossy().to_string(),
        l.line,
        l.column,
    )
}

#[test]
fn unknown_element_has_position_and_hint() {
    let d = errors(
        TOML,
        "<document>\n  <body>\n    <paragraf>x</paragraf>\n  </body>\n</document>\n",
    );
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(at(&d[0]), ("body.xml".into(), 3, 5));
    assert_eq!(d[0].message, "unknown element <paragraf>");
    assert!(d[0].hints[0].contains("<p>"), "{:?}", d[0].hints);
}

#[test]
fn bad_expression_points_inside_the_text() {
    let d = errors(
        TOML,
        "<document><body>\n<p>Dear {{ customer.name | }},</p>\n</body></document>",
    );
    assert_eq!(d.len(), 1, "{d:?}");
    let (file, line, col) = at(&d[0]);
    assert_eq!((file.as_str(), line), ("body.xml", 2));
    // The error lies inside the interpolation, after "<p>Dear {{ ".
    assert!((12..=30).contains(&col), "column {col}");
    assert!(
        d[0].message.starts_with("bad expression"),
        "{}",
        d[0].message
    );
}

#[test]
fn unknown_style_and_field_and_length_are_all_reported() {
    let body = "<document><body>\n  <p style=\"headng\">{{ customer.nmae }}</p>\n  <spacer height=\"12xx\"/>\n</body></document>";
    let d = errors(TOML, body);
    assert_eq!(d.len(), 3, "{d:?}");
    assert_eq!(at(&d[0]), ("body.xml".into(), 2, 13));
    assert_eq!(d[0].message, "unknown style 'headng'");
    assert_eq!(d[0].hints, vec!["did you mean 'heading'?".to_string()]);
    assert_eq!(at(&d[1]), ("body.xml".into(), 2, 24));
    assert_eq!(d[1].message, "unknown field 'customer.nmae'");
    assert_eq!(d[1].hints, vec!["did you mean 'name'?".to_string()]);
    assert_eq!(at(&d[2]), ("body.xml".into(), 3, 19));
    assert_eq!(d[2].message, "bad length '12xx'");
}

#[test]
fn missing_fragment_and_malformed_xml() {
    let d = errors(
        TOML,
        "<document><body>\n  <fragment name=\"legal-ku\"/>\n</body></document>",
    );
    assert_eq!(at(&d[0]), ("body.xml".into(), 2, 19));
    assert_eq!(d[0].message, "missing fragment 'legal-ku'");
    assert_eq!(d[0].hints, vec!["did you mean 'legal-uk'?".to_string()]);

    let d = errors(TOML, "<document><body>\n  <p>open\n</body></document>");
    assert_eq!(d.len(), 1);
    let (file, line, _) = at(&d[0]);
    assert_eq!((file.as_str(), line), ("body.xml", 3));
    assert!(
        d[0].message.starts_with("malformed XML"),
        "{}",
        d[0].message
    );
}

#[test]
fn manifest_errors_have_positions() {
    let toml = "[template]\nid = \"t\"\nversion = \"1\"\n[page]\nmargins = \"20xx\"\n[styles.a]\nbase = \"nope\"\nsize = \"9pt\"\n";
    let d = errors(toml, "<document><body/></document>");
    assert_eq!(d.len(), 2, "{d:?}");
    assert_eq!(at(&d[0]), ("template.toml".into(), 5, 12));
    assert!(d[0].message.starts_with("bad margins"));
    assert_eq!(at(&d[1]), ("template.toml".into(), 7, 9));
    assert_eq!(d[1].message, "unknown base style 'nope'");

    let d = errors(
        "[template]\nid = \"t\nversion = 1\n",
        "<document><body/></document>",
    );
    assert_eq!(d.len(), 1);
    assert_eq!(at(&d[0]).1, 2);
    assert!(
        d[0].message.starts_with("malformed TOML"),
        "{}",
        d[0].message
    );
}

#[test]
fn fragments_are_part_of_the_content_hash() {
    let body = "<document><body><fragment name=\"legal-{{ customer.region | lower }}\"/></body></document>";
    let a = fixture(
        TOML,
        body,
        &[("legal-uk", "<fragment><p>UK</p></fragment>")],
    );
    let h1 = compile(&a.path, &opts()).unwrap().template.content_hash;
    assert_eq!(h1, compile(&a.path, &opts()).unwrap().template.content_hash);
    std::fs::write(
        a.path.join("../fragments/legal-uk.xml"),
        "<fragment><p>UK v2</p></fragment>",
    )
    .unwrap();
    let h2 = compile(&a.path, &opts()).unwrap().template.content_hash;
    assert_ne!(h1, h2);
}

#[test]
fn inline_styles_are_interned_at_compile_time() {
    let body = "<document><body><p style=\"heading\">A <b>b</b> <i>c <b>d</b></i> {{ amount | money('EUR', 'parens') }}<br/>e</p></body></document>";
    let f = fixture(TOML, body, &[]);
    let t = compile(&f.path, &opts()).unwrap().template;
    let doc = t
        .bind(
            &json!({"customer": {"name": "x", "region": "UK"}, "amount": -3.5}),
            &params(),
        )
        .unwrap();
    let BlockKind::Paragraph(p) = &doc.body[0].kind else {
        panic!()
    };
    let styles: Vec<(String, bool, bool)> = p
        .inlines
        .iter()
        .filter_map(|i| match i {
            Inline::Text { text, style } => {
                let s = t.styles.get(*style);
                Some((text.clone(), s.bold, s.italic))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        styles,
        vec![
            ("A b ".to_string(), true, false),
            // <b> inside <i> inside a bold style changes nothing: one run.
            ("c d".to_string(), true, true),
            (" (€3.50)".to_string(), true, false),
            ("e".to_string(), true, false),
        ]
    );
    assert_eq!(p.inlines.len(), 5);
    assert!(matches!(p.inlines[3], Inline::LineBreak));
}

#[test]
fn example_manifests_satisfy_the_editor_schema() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("docs/schema/template.schema.json")).unwrap(),
    )
    .unwrap();
    let props = |v: &Value| -> Vec<String> {
        v["properties"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    };
    let required = |v: &Value| -> Vec<String> {
        v["required"]
            .as_array()
            .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    };
    let style_keys = props(&schema["definitions"]["style"]);
    for name in ["statement", "insurance-letter"] {
        let text = std::fs::read_to_string(examples().join(name).join("template.toml")).unwrap();
        let manifest: toml::Table = toml::from_str(&text).unwrap();
        for key in required(&schema) {
            assert!(manifest.contains_key(&key), "{name}: missing [{key}]");
        }
        for key in manifest.keys() {
            assert!(
                props(&schema).contains(key),
                "{name}: [{key}] not in schema"
            );
        }
        let tschema = &schema["properties"]["template"];
        let t = manifest["template"].as_table().unwrap();
        for key in required(tschema) {
            assert!(t.contains_key(&key), "{name}: missing template.{key}");
        }
        for key in t.keys() {
            assert!(
                props(tschema).contains(key),
                "{name}: template.{key} not in schema"
            );
        }
        let page = manifest["page"].as_table().unwrap();
        let pschema = &schema["properties"]["page"];
        for key in page.keys() {
            assert!(
                props(pschema).contains(key),
                "{name}: page.{key} not in schema"
            );
        }
        for (style, body) in manifest["styles"].as_table().unwrap() {
            for key in body.as_table().unwrap().keys() {
                assert!(
                    style_keys.contains(key),
                    "{name}: styles.{style}.{key} not in schema"
                );
            }
        }
    }
}

/// Counts per-row expressions in table bodies that need MiniJinja.
fn jinja_in_rows(nodes: &[compile::Node], in_row: bool, count: &mut (usize, usize)) {
    use compile::{INode, Node};
    for n in nodes {
        match n {
            Node::Para { inlines, .. } if in_row => {
                for i in inlines {
                    if let INode::Expr(e, _) = i {
                        count.0 += 1;
                        count.1 += usize::from(matches!(e, expr::Expr::Jinja(..)));
                    }
                }
            }
            Node::Table(t) => {
                for c in &t.body {
                    jinja_in_rows(&c.blocks, true, count);
                }
            }
            Node::Columns { columns, .. } => {
                for (_, b) in columns {
                    jinja_in_rows(b, in_row, count);
                }
            }
            Node::Keep(b, _) => jinja_in_rows(b, in_row, count),
            Node::If(branches) => {
                for (_, b) in branches {
                    jinja_in_rows(b, in_row, count);
                }
            }
            _ => {}
        }
    }
}

#[test]
fn example_rows_stay_on_the_fast_path() {
    for name in ["statement", "insurance-letter"] {
        let t = compile_example(name);
        let mut count = (0, 0);
        jinja_in_rows(&t.program.body, false, &mut count);
        assert!(count.0 >= 2, "{name}: {count:?}");
        assert_eq!(
            count.1, 0,
            "{name}: per-row expressions must not need MiniJinja"
        );
    }
}

#[test]
fn templates_are_shared_across_render_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Template>();
}

const MONEY_TOML: &str = r#"[template]
id = "m"
version = "1"
currency = "{{ currency }}"
ROUNDING

[fields]
currency = "string"
x = "decimal"
s = "decimal"
n = "number?"
opening = "decimal"

[fields."tx[]"]
amount = "decimal"
"#;

const MONEY_BODY: &str = r#"<document><body>
<p>{{ x | money }}|{{ (x) | money }}|{{ s | money }}|{{ x | number(2) }}|{{ (x) | number(2) }}</p>
<table rows="tx" as="t" running="balance" running-start="opening" running-add="t.amount">
  <column>{{ t.amount | money }}</column>
  <column>{{ balance | money }}</column>
</table>
</body></document>"#;

fn money_template(rounding: &str) -> (Fixture, Template) {
    let toml = MONEY_TOML.replace("ROUNDING", rounding);
    let f = fixture(&toml, MONEY_BODY, &[]);
    let c = compile(&f.path, &opts()).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    (f, c.template)
}

/// Reads a JSON line as the engine does (exact numbers), validates and binds it.
fn bind_line(t: &Template, line: &str) -> Result<Document, FieldError> {
    use crate::input::{RawData, RawRecord};
    let raw = RawRecord {
        number: 1,
        line: 1,
        data: RawData::Json(line.into()),
    };
    let record = crate::run::compose::parse_record(t, &raw).map_err(|r| FieldError {
        path: r.field,
        reason: r.reason,
    })?;
    t.bind(&record, &params())
}

fn table_text(doc: &Document) -> Vec<String> {
    let BlockKind::Table(tb) = &doc.body[1].kind else {
        panic!("expected a table")
    };
    tb.rows
        .iter()
        .map(|r| {
            r.cells
                .iter()
                .map(|c| all_text(&c.blocks).trim().to_string())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

#[test]
fn money_is_exact_end_to_end_through_a_record() {
    let line = r#"{"currency": "GBP", "x": 1.005, "s": "2.675", "opening": 0.01,
        "tx": [{"amount": 92000000000000000}, {"amount": "92000000000000000"},
               {"amount": 92000000000000000}]}"#
        .replace('\n', " ");
    let (_f, t) = money_template("");
    let doc = bind_line(&t, &line).unwrap();
    assert_eq!(
        all_text(&doc.body[..1]).trim(),
        "£1.01|£1.01|£2.68|1.01|1.01"
    );
    // Three amounts of 9.2e16 would wrap an i64 of cents; the exact total does not.
    assert_eq!(
        table_text(&doc),
        [
            "£92,000,000,000,000,000.00 £92,000,000,000,000,000.01",
            "£92,000,000,000,000,000.00 £184,000,000,000,000,000.01",
            "£92,000,000,000,000,000.00 £276,000,000,000,000,000.01",
        ]
    );
    let (_f, even) = money_template("rounding = \"half-even\"");
    let doc = even.bind(&rec_of(&even, &line), &params()).unwrap();
    assert_eq!(
        all_text(&doc.body[..1]).trim(),
        "£1.00|£1.00|£2.68|1.00|1.00"
    );
    // The per-document currency brings its ISO 4217 minor units.
    let jpy = line.replace("GBP", "JPY");
    let doc = bind_line(&t, &jpy).unwrap();
    assert_eq!(all_text(&doc.body[..1]).trim(), "¥1|¥1|¥3|1.01|1.01");
    let bhd = line.replace("GBP", "BHD").replace("1.005", "1.0005");
    let doc = bind_line(&t, &bhd).unwrap();
    assert_eq!(
        all_text(&doc.body[..1]).trim(),
        "BHD\u{A0}1.001|BHD\u{A0}1.001|BHD\u{A0}2.675|1.00|1.00"
    );
}

fn rec_of(t: &Template, line: &str) -> Value {
    let mut v: Value = serde_json::from_str(line).unwrap();
    t.validate(&mut v).unwrap();
    v
}

#[test]
fn out_of_range_amounts_and_currencies_reject_the_record_by_path() {
    let (_f, t) = money_template("");
    let ok = r#"{"currency": "GBP", "x": 1, "s": "1", "opening": 0, "tx": []}"#;
    assert!(bind_line(&t, ok).is_ok());
    let cases = [
        (
            ok.replace("\"x\": 1", "\"x\": 1e308"),
            "x",
            "beyond what an exact decimal holds",
        ),
        (
            ok.replace("\"s\": \"1\"", "\"s\": \"1e3\""),
            "s",
            "not a decimal number",
        ),
        (
            ok.replace(
                "\"tx\": []",
                "\"tx\": [{\"amount\": 1}, {\"amount\": 1e29}]",
            ),
            "tx[1].amount",
            "beyond what an exact decimal holds",
        ),
        (
            ok.replace("GBP", "XYZ"),
            "currency",
            "unknown currency code",
        ),
        (
            ok.replace(
                "\"opening\": 0",
                "\"opening\": 79228162514264337593543950335",
            )
            .replace("\"tx\": []", "\"tx\": [{\"amount\": 1}]"),
            "tx[0].amount",
            "the running total needs more digits than an exact decimal holds",
        ),
        (
            ok.replace("\"x\": 1", "\"x\": 1000000000000000.01"),
            "x",
            "more significant digits than an expression computes with exactly",
        ),
    ];
    for (line, path, reason) in cases {
        let e = bind_line(&t, &line).unwrap_err();
        assert_eq!(e.path, path, "{line}: {e}");
        assert!(e.reason.contains(reason), "{line}: {e}");
        assert!(!e.reason.contains("XYZ") && !e.reason.contains("1e"), "{e}");
    }
}

#[test]
fn bind_errors_name_the_exact_field() {
    let toml = "[template]\nid = \"t\"\nversion = \"1\"\n[fields]\naccount.opening = \"decimal\"\nitems = \"array\"\n[fields.\"tx[]\"]\namount = \"decimal\"\n";
    let body = r#"<document><body>
<for each="item in items"><p>{{ item.v | money }}</p></for>
<table rows="tx" as="t" running="b" running-start="account.opening" running-add="t.amount">
  <column>{{ t.amount | credit | money }}</column>
</table>
</body></document>"#;
    let f = fixture(toml, body, &[]);
    let t = compile(&f.path, &opts()).unwrap().template;
    // Bound without validation, as a caller of `bind` may: every reason names its field.
    let cases = [
        (
            json!({"account": {"opening": "x"}, "items": [], "tx": []}),
            "account.opening",
        ),
        (
            json!({"account": {"opening": 1}, "items": [{"v": 1}, {"v": "x"}], "tx": []}),
            "items[1].v",
        ),
        (
            json!({"account": {"opening": 1}, "items": [], "tx": [{"amount": 1}, {"amount": true}]}),
            "tx[1].amount",
        ),
        (
            json!({"account": {"opening": 1}, "items": "x", "tx": []}),
            "items",
        ),
    ];
    for (rec, path) in cases {
        let e = t.bind(&rec, &params()).unwrap_err();
        assert_eq!(e.path, path, "{rec}: {e}");
        assert!(!e.reason.contains("\"x\""), "{e}");
    }
}

#[test]
fn check_reports_unknown_names_and_mistyped_filters_with_positions() {
    let toml =
        "[template]\nid = \"t\"\nversion = \"1\"\n[fields]\nx = \"decimal\"\nname = \"string\"\n";
    let body = "<document><body>\n<p>{{ x | nosuchfilter }}</p>\n<p>{{ name | money }}</p>\n<p>{{ (x) | number(2) if x is nosuchtest else nofn(x) }}</p>\n<p>{{ (name) | money }}</p>\n<p>{{ y + 1 }}</p>\n<p>{{ x * 1.5 | money }}</p>\n</body></document>";
    let d = errors(toml, body);
    let got: Vec<(u32, u32, &str)> = d
        .iter()
        .map(|d| {
            let (_, l, c) = at(d);
            (l, c, d.message.as_str())
        })
        .collect();
    assert_eq!(
        got,
        [
            (2, 11, "unknown filter 'nosuchfilter'"),
            (
                3,
                14,
                "'money' needs a number, but 'name' is declared as string"
            ),
            (4, 31, "unknown test 'nosuchtest'"),
            (
                5,
                16,
                "'money' needs a number, but 'name' is declared as string"
            ),
            (6, 7, "unknown field 'y'"),
            (
                7,
                9,
                "'*' on 'x' (declared as decimal) computes in binary floating point, not exactly"
            ),
        ]
    );
    let toml = "[template]\nid = \"t\"\nversion = \"1\"\ncurrency = \"EURO\"\nrounding = \"up\"\n";
    let d = errors(toml, "<document><body/></document>");
    let got: Vec<((String, u32, u32), &str)> =
        d.iter().map(|d| (at(d), d.message.as_str())).collect();
    assert_eq!(got[0].0, ("template.toml".into(), 4, 13));
    assert!(
        got[0]
            .1
            .starts_with("currency 'EURO': unknown currency code"),
        "{}",
        got[0].1
    );
    assert_eq!(
        got[1],
        (("template.toml".into(), 5, 13), "unknown rounding 'up'")
    );
}
