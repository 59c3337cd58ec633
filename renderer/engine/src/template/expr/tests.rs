//! Tests of expressions: the fast path and MiniJinja agree, amounts are exact, and
//! failures reject the record with a field path and a reason that quotes no value.

use super::*;
use crate::template::schema::{Field, Range, Scalar};
use serde_json::json;

fn fmt_with(rounding: Rounding) -> Fmt {
    Fmt {
        locale: Locale::get_or_default("en-GB"),
        currency: Currency::from_code("GBP").unwrap(),
        rounding,
    }
}

fn record_type() -> FieldType {
    let s = |n: &str, ty| Field {
        name: n.into(),
        optional: false,
        ty,
    };
    let dec = || FieldType::Scalar(Scalar::Decimal(Range::default()));
    FieldType::Object(vec![
        s(
            "customer",
            FieldType::Object(vec![s("name", FieldType::Scalar(Scalar::String))]),
        ),
        s("tx", FieldType::Records(vec![s("amount", dec())])),
        s("n", FieldType::Scalar(Scalar::Number)),
        s("x", dec()),
        s("extra", FieldType::AnyObject),
    ])
}

fn compiler_with(rounding: Rounding) -> (ExprCompiler, Fmt) {
    let fmt = fmt_with(rounding);
    (ExprCompiler::new(&fmt, record_type()), fmt)
}

fn compiler() -> (ExprCompiler, Fmt) {
    compiler_with(Rounding::default())
}

fn run() -> Value {
    json!({"record_number": 1, "date": "2024-01-01"})
}

/// Parses a record from JSON text, as the engine reads records: numbers keep their digits.
fn rec(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

/// Compiles `exprs` as text, binds them against `record`, returns each result.
fn eval(rounding: Rounding, exprs: &[&str], record: &Value) -> Vec<Result<String, FieldError>> {
    let (mut c, fmt) = compiler_with(rounding);
    let compiled: Vec<Expr> = exprs
        .iter()
        .map(|e| c.expr(e, Mode::Text, &base_scope()).unwrap())
        .collect();
    let env = c.finish();
    let s = Scope::new(record, run(), &env, &fmt);
    compiled
        .iter()
        .map(|e| {
            let mut out = String::new();
            s.write(e, &mut out).map(|()| out)
        })
        .collect()
}

#[test]
fn fast_path_shapes() {
    let fast = |s: &str| parse_fast(s).unwrap().is_some();
    assert!(fast("customer.name"));
    assert!(fast("tx[0].amount | money('EUR', 'parens')"));
    assert!(fast("n | number(2) | upper"));
    assert!(!fast("n + 1"));
    assert!(!fast("n | round"));
    assert!(!fast("not n"));
    assert!(!fast("x | money(customer.currency)"));
}

#[test]
fn evaluates_fast_and_jinja_alike() {
    let (mut c, fmt) = compiler();
    let scope = base_scope();
    let fast = c.expr("n | money", Mode::Text, &scope).unwrap();
    assert!(matches!(fast, Expr::Fast(_)));
    let slow = c.expr("(n) | money", Mode::Text, &scope).unwrap();
    assert!(matches!(slow, Expr::Jinja(..)));
    let test = c
        .expr("n < 0 and customer.name", Mode::Test, &scope)
        .unwrap();
    let text = c
        .text(
            "Dear {{ customer.name | upper }}, {{ n | number(1) }}",
            &scope,
        )
        .unwrap();
    let credit = c
        .text("{{ n | credit | money }}|{{ n | debit | money }}", &scope)
        .unwrap();
    let credit_j = c
        .text(
            "{{ (n) | credit | money }}|{{ (n) | debit | money }}",
            &scope,
        )
        .unwrap();
    let env = c.finish();
    let r = json!({"customer": {"name": "Ann"}, "n": -1234.5, "tx": []});
    let s = Scope::new(&r, run(), &env, &fmt);
    let mut a = String::new();
    s.write(&fast, &mut a).unwrap();
    let mut b = String::new();
    s.write(&slow, &mut b).unwrap();
    assert_eq!(a, "-£1,234.50");
    assert_eq!(a, b);
    assert!(s.truthy(&test).unwrap());
    assert_eq!(s.text(&text).unwrap(), "Dear ANN, -1,234.5");
    drop(s);
    let mut r2 = r.clone();
    r2["n"] = json!(12.5);
    let s = Scope::new(&r2, json!({}), &env, &fmt);
    assert!(!s.truthy(&test).unwrap());
    assert_eq!(s.text(&credit).unwrap(), "£12.50|");
    assert_eq!(s.text(&credit_j).unwrap(), "£12.50|");
    let s = Scope::new(&r, json!({}), &env, &fmt);
    assert_eq!(s.text(&credit).unwrap(), "|£1,234.50");
    assert_eq!(s.text(&credit_j).unwrap(), "|£1,234.50");
}

#[test]
fn locals_shadow_record_fields_on_both_paths() {
    let (mut c, fmt) = compiler();
    let mut scope = base_scope();
    scope.push(ScopeEntry {
        name: "n".into(),
        ty: None,
    });
    let fast = c.expr("n | money", Mode::Text, &scope).unwrap();
    let slow = c.expr("(n * 1) | money", Mode::Text, &scope).unwrap();
    let run = c.expr("run.date", Mode::Text, &scope).unwrap();
    let env = c.finish();
    let r = json!({"n": -1.0});
    let mut s = Scope::new(&r, json!({"date": "2024-01-02"}), &env, &fmt);
    s.push("n", Local::Owned(json!(5)), Origin::Unknown);
    for e in [&fast, &slow] {
        let mut out = String::new();
        s.write(e, &mut out).unwrap();
        assert_eq!(out, "£5.00");
    }
    assert_eq!(s.text(&[TextPart::Expr(run)]).unwrap(), "2024-01-02");
}

#[test]
fn ties_round_exactly_on_both_paths_in_both_modes() {
    // (amount, half away from zero, half even): f64 gets every one of these wrong.
    let cases = [
        ("1.005", "£1.01", "£1.00"),
        ("1.015", "£1.02", "£1.02"),
        ("4.015", "£4.02", "£4.02"),
        ("2.675", "£2.68", "£2.68"),
        ("-2.665", "-£2.67", "-£2.66"),
    ];
    for (x, away, even) in cases {
        let r = rec(&format!(r#"{{"x": {x}, "n": {x}, "s": "{x}"}}"#));
        for (mode, want) in [
            (Rounding::HalfAwayFromZero, away),
            (Rounding::HalfEven, even),
        ] {
            let got = eval(
                mode,
                &[
                    "x | money",
                    "(x) | money",
                    "n | money",
                    "(n | times(1)) | money",
                    "x | number(2)",
                ],
                &r,
            );
            let want_n = want.replace('£', "");
            let want: Vec<Result<String, FieldError>> = vec![
                Ok(want.into()),
                Ok(want.into()),
                Ok(want.into()),
                Ok(want.into()),
                Ok(want_n),
            ];
            assert_eq!(got, want, "{x} {mode:?}");
        }
    }
}

#[test]
fn large_amounts_are_exact_or_rejected_never_wrong() {
    let r = rec(r#"{"x": 1000000000000000.01, "n": 1e308, "tx": []}"#);
    let got = eval(
        Rounding::default(),
        &[
            "x | money",
            "x | number(2)",
            "x",
            "(x) | money",
            "n | money",
            "(n) | money",
            "n",
        ],
        &r,
    );
    assert_eq!(got[0].as_deref(), Ok("£1,000,000,000,000,000.01"));
    assert_eq!(got[1].as_deref(), Ok("1,000,000,000,000,000.01"));
    assert_eq!(got[2].as_deref(), Ok("1000000000000000.01"));
    // MiniJinja computes with f64: an amount it cannot carry rejects the record.
    let e = got[3].clone().unwrap_err();
    assert_eq!((e.path.as_str(), e.reason.as_str()), ("x", jinja::INEXACT));
    for e in [got[4].clone().unwrap_err(), got[5].clone().unwrap_err()] {
        assert_eq!(e.path, "n");
        assert!(
            e.reason.contains("beyond what an exact decimal holds"),
            "{e}"
        );
    }
    // Printed as the record spells it (serde_json writes the exponent's sign).
    assert_eq!(got[6].as_deref(), Ok("1e+308"));
}

#[test]
fn minor_units_follow_the_currency_on_both_paths() {
    let r = rec(r#"{"x": 1234.5675}"#);
    let got = eval(
        Rounding::default(),
        &[
            "x | money('JPY')",
            "(x) | money('JPY')",
            "x | money('BHD')",
            "(x) | money('BHD')",
        ],
        &r,
    );
    assert_eq!(got[0].as_deref(), Ok("¥1,235"));
    assert_eq!(got[1].as_deref(), Ok("¥1,235"));
    assert_eq!(got[2].as_deref(), Ok("BHD\u{A0}1,234.568"));
    assert_eq!(got[3].as_deref(), Ok("BHD\u{A0}1,234.568"));
}

#[test]
fn failed_arithmetic_rejects_instead_of_printing_inf() {
    let r = rec(r#"{"x": 5, "n": 2.5, "extra": {"zero": 0, "i": 7}}"#);
    let exprs = [
        "x | divided_by(0)",
        "(x | divided_by(extra.zero)) | money",
        "n | divided_by(0, 2) | number(2)",
        "extra.i // extra.zero",
        "extra.i % extra.zero",
        "9223372036854775807 * 9223372036854775807 * 9223372036854775807",
        "x | times(79228162514264337593543950335)",
        "x | divided_by(3)",
        "x | plus(extra.missing)",
    ];
    for (e, got) in exprs.iter().zip(eval(Rounding::default(), &exprs, &r)) {
        let err = got.expect_err(e);
        assert!(!err.reason.is_empty(), "{e}");
    }
    let (mut c, fmt) = compiler();
    let v = c
        .expr("x | divided_by(0)", Mode::Value, &base_scope())
        .unwrap();
    let t = c
        .expr("n | divided_by(0) > 1", Mode::Test, &base_scope())
        .unwrap();
    let env = c.finish();
    let s = Scope::new(&r, run(), &env, &fmt);
    assert!(s.value(&v).is_err());
    // Inside a comparison too: the division fails, it does not give an infinity.
    assert!(s.truthy(&t).is_err());
}

#[test]
fn exact_arithmetic_filters() {
    let r = rec(r#"{"x": 0.1, "n": 0.2,
            "extra": {"big": 1000000000000.01, "rate": 0.035, "i": 7, "cents": 1.005}}"#);
    let got = eval(
        Rounding::default(),
        &[
            "x | plus(n)",
            "x | plus(n) | money",
            "extra.big | plus(0.01) | money",
            "extra.big | minus(x) | money",
            "n | times(3)",
            "extra.rate | times(100) | number(1)",
            "extra.i | divided_by(4)",
            "extra.i | divided_by(3, 2) | money",
            "extra.cents | times(1) | money",
            "x | minus(n) | money('EUR', 'parens')",
            "extra.i + 1",
            "extra.i // 2",
            "extra.nothing | plus(1) | money",
        ],
        &r,
    );
    let want = [
        "0.3",
        "£0.30",
        "£1,000,000,000,000.02",
        "£999,999,999,999.91",
        "0.6",
        "3.5",
        "1.75",
        "£2.33",
        "£1.01",
        "(€0.10)",
        "8",
        "3",
        "",
    ];
    for (i, w) in want.iter().enumerate() {
        assert_eq!(got[i].as_deref(), Ok(*w), "expression {i}");
    }
    // The document's rounding rule rounds a quotient given its decimals.
    let got = eval(Rounding::HalfEven, &["extra.i | divided_by(8, 2)"], &r);
    assert_eq!(got[0].as_deref(), Ok("0.88"));
    let got = eval(
        Rounding::HalfAwayFromZero,
        &["extra.i | divided_by(8, 2)"],
        &r,
    );
    assert_eq!(got[0].as_deref(), Ok("0.88"));
    let got = eval(Rounding::HalfEven, &["extra.i | divided_by(40, 2)"], &r);
    assert_eq!(got[0].as_deref(), Ok("0.18"));
    let got = eval(
        Rounding::HalfAwayFromZero,
        &["extra.i | divided_by(40, 2)"],
        &r,
    );
    assert_eq!(got[0].as_deref(), Ok("0.18"));
    let got = eval(
        Rounding::HalfEven,
        &["extra.cents | times(10) | divided_by(4, 2)"],
        &r,
    );
    assert_eq!(got[0].as_deref(), Ok("2.51"));
}

#[test]
fn float_arithmetic_on_amounts_is_a_compile_error() {
    let (mut c, _) = compiler();
    let cases: [(&str, usize, &str); 7] = [
        (
            "x * 3",
            2,
            "'*' on 'x' (declared as decimal) computes in binary floating point, not exactly",
        ),
        (
            "3 + tx[0].amount",
            2,
            "'+' on 'tx[0].amount' (declared as decimal) computes in binary floating point, not exactly",
        ),
        (
            "(n) - 1",
            4,
            "'-' on 'n' (declared as number) computes in binary floating point, not exactly",
        ),
        (
            "extra.i * 1.1",
            8,
            "'*' on a number literal computes in binary floating point, not exactly",
        ),
        (
            "run.record_number / 2",
            18,
            "'/' on 'run.record_number' (declared as integer) divides in binary floating point",
        ),
        (
            "(tx | map(attribute='amount') | sum) * 2 > x | minus(-x)",
            37,
            "'*' on the result of 'sum' computes in binary floating point, not exactly",
        ),
        (
            "x | plus(1) ** 2",
            12,
            "'**' on the result of 'plus' computes in binary floating point, not exactly",
        ),
    ];
    for (src, at, msg) in cases {
        let e = c.expr(src, Mode::Text, &base_scope()).expect_err(src);
        assert_eq!((e.offset, e.message.as_str()), (at, msg), "{src}");
        assert!(e.hint.is_some(), "{src}");
    }
    for ok in [
        "run.record_number + 1",
        "run.record_number // 2 * 3 % 4",
        "-x | money",
        "x | minus(-x) | money",
        "customer.name ~ ' ' ~ x | money",
        "extra.i * 2",
    ] {
        c.expr(ok, Mode::Text, &base_scope())
            .unwrap_or_else(|e| panic!("{ok}: {e:?}"));
    }
}

#[test]
fn exact_sums_in_expressions() {
    let r = rec(r#"{"tx": [{"amount": 0.1}, {"amount": 0.2}],
            "extra": {"big": [92000000000000000, 92000000000000000, 92000000000000000]}}"#);
    let got = eval(
        Rounding::default(),
        &[
            "tx | map(attribute='amount') | sum",
            "tx | map(attribute='amount') | sum | money",
            "extra.big | sum | money",
        ],
        &r,
    );
    assert_eq!(got[0].as_deref(), Ok("0.3"));
    assert_eq!(got[1].as_deref(), Ok("£0.30"));
    assert_eq!(got[2].as_deref(), Ok("£276,000,000,000,000,000.00"));
}

#[test]
fn the_document_currency_reaches_minijinja() {
    let (mut c, _) = compiler();
    let e = c.expr("(x) | money", Mode::Text, &base_scope()).unwrap();
    let env = c.finish();
    let mut fmt = fmt_with(Rounding::default());
    fmt.currency = Currency::from_code("EUR").unwrap();
    let r = rec(r#"{"x": 2.5}"#);
    let s = Scope::new(&r, run(), &env, &fmt);
    assert_eq!(s.text(&[TextPart::Expr(e)]).unwrap(), "€2.50");
}

#[test]
fn reasons_name_the_field_and_never_the_value() {
    let r = rec(r#"{"extra": {"v": "secret-4111", "d": "secret-1990-02-31"},
            "tx": [{"amount": 1}], "customer": {"name": "Ann"}}"#);
    let exprs = [
        "extra.v | money",
        "(extra.v) | money",
        "extra.v - 1",
        "extra.d | date",
        "(extra.d) | date",
    ];
    for (e, got) in exprs.iter().zip(eval(Rounding::default(), &exprs, &r)) {
        let err = got.expect_err(e);
        assert!(!err.reason.contains("secret"), "{e}: {err}");
        assert!(!err.reason.contains("4111"), "{e}: {err}");
        assert!(err.path.starts_with("extra."), "{e}: path '{}'", err.path);
    }
    // A currency taken from the record is checked per record, and not quoted either.
    let r = rec(r#"{"x": 1, "extra": {"c": "secret"}}"#);
    let got = eval(Rounding::default(), &["(x) | money(extra.c)"], &r);
    let err = got[0].clone().unwrap_err();
    assert!(err.reason.contains("unknown currency code"), "{err}");
    assert!(!err.reason.contains("secret"), "{err}");
}

#[test]
fn compile_errors_have_offsets() {
    let (mut c, _) = compiler();
    let scope = base_scope();
    let e = c.expr("customer.nmae", Mode::Text, &scope).unwrap_err();
    assert_eq!(e.message, "unknown field 'customer.nmae'");
    assert_eq!(e.hint.as_deref(), Some("did you mean 'name'?"));
    let e = c
        .expr("n > 0 and custmer.name", Mode::Test, &scope)
        .unwrap_err();
    assert_eq!(
        (e.offset, e.message.as_str()),
        (10, "unknown field 'custmer'")
    );
    assert_eq!(e.hint.as_deref(), Some("did you mean 'customer'?"));
    let e = c.text("Total: {{ n | }}", &scope).unwrap_err();
    assert!(e.offset >= 10, "{e:?}");
    assert!(e.message.starts_with("bad expression"), "{}", e.message);
}

#[test]
fn unknown_names_are_compile_errors() {
    let (mut c, _) = compiler();
    let scope = base_scope();
    let cases: [(&str, usize, &str); 9] = [
        ("x | nosuchfilter", 4, "unknown filter 'nosuchfilter'"),
        ("(x) | monye", 6, "unknown filter 'monye'"),
        (
            "x if x is nosuchtest else 0",
            10,
            "unknown test 'nosuchtest'",
        ),
        ("nosuchfn(x) | money", 0, "unknown function 'nosuchfn'"),
        ("customer.nmae > 0", 0, "unknown field 'customer.nmae'"),
        (
            "x | money('EURO')",
            4,
            "money: currency 'EURO': unknown currency code, expected an ISO 4217 code like GBP",
        ),
        (
            "(x) | money('EURO')",
            6,
            "money: currency 'EURO': unknown currency code, expected an ISO 4217 code like GBP",
        ),
        (
            "x | money(none, 'brackets')",
            4,
            "money: the negative style is \"minus\" or \"parens\"",
        ),
        (
            "x | number(40)",
            4,
            "number takes a count of decimals from 0 to 28",
        ),
    ];
    for (src, at, msg) in cases {
        let e = c.expr(src, Mode::Text, &scope).unwrap_err();
        assert_eq!((e.offset, e.message.as_str()), (at, msg), "{src}");
    }
    assert_eq!(
        c.expr("x | monye", Mode::Text, &scope)
            .unwrap_err()
            .hint
            .as_deref(),
        Some("did you mean 'money'?")
    );
    // Known names of every kind still compile.
    for ok in [
        "x | round | int",
        "x is number",
        "range(3) | length",
        "customer.name.upper()",
        "x | default(0) | money",
    ] {
        c.expr(ok, Mode::Text, &scope)
            .unwrap_or_else(|e| panic!("{ok}: {e:?}"));
    }
}

#[test]
fn filters_on_fields_of_the_wrong_type_are_compile_errors() {
    let (mut c, _) = compiler();
    let mut scope = base_scope();
    scope.push(ScopeEntry {
        name: "row".into(),
        ty: Some(FieldType::Object(vec![Field {
            name: "label".into(),
            optional: false,
            ty: FieldType::Scalar(Scalar::String),
        }])),
    });
    let cases = [
        (
            "customer.name | money",
            16,
            "'money' needs a number, but 'customer.name' is declared as string",
        ),
        (
            "(customer.name) | number(2)",
            18,
            "'number' needs a number, but 'customer.name' is declared as string",
        ),
        (
            "customer.name | upper | money",
            24,
            "'money' needs a number, but 'upper' gives text",
        ),
        (
            "x | money | money",
            12,
            "'money' needs a number, but 'money' gives text",
        ),
        (
            "row.label | credit",
            12,
            "'credit' needs a number, but 'row.label' is declared as string",
        ),
        (
            "x | date",
            4,
            "'date' needs a date, but 'x' is declared as decimal",
        ),
        (
            "'abc' | money",
            8,
            "'money' needs a number, but the value is a string literal",
        ),
        (
            "1 + (customer.name) | money",
            22,
            "'money' needs a number, but 'customer.name' is declared as string",
        ),
    ];
    for (src, at, msg) in cases {
        let e = c.expr(src, Mode::Text, &scope).unwrap_err();
        assert_eq!((e.offset, e.message.as_str()), (at, msg), "{src}");
        assert!(e.hint.is_some(), "{src}");
    }
    for ok in [
        "x | money",
        "extra.anything | money",
        "tx[0].amount | credit | money",
        "n | number(2)",
    ] {
        c.expr(ok, Mode::Text, &scope)
            .unwrap_or_else(|e| panic!("{ok}: {e:?}"));
    }
}
