//! The record schema declared in `[fields]`: validation of JSON records and CSV coercion.

use rust_decimal::Decimal;
use serde_json::{Map, Value};

use super::FieldError;
use super::amount::{AmountError, json_number, parse_decimal_str, parse_json_number};
use super::format::parse_date;

/// The inclusive bounds a `decimal` field may declare (`decimal(0..1000000)`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Range {
    /// The smallest allowed amount, if any.
    pub min: Option<Decimal>,
    /// The largest allowed amount, if any.
    pub max: Option<Decimal>,
}

impl Range {
    fn parse(s: &str) -> Option<Range> {
        let (lo, hi) = s.split_once("..")?;
        let bound = |b: &str| -> Option<Option<Decimal>> {
            let b = b.trim();
            if b.is_empty() {
                Some(None)
            } else {
                parse_json_number(b).ok().map(Some)
            }
        };
        let r = Range {
            min: bound(lo)?,
            max: bound(hi)?,
        };
        match (r.min, r.max) {
            (Some(a), Some(b)) if a > b => None,
            _ => Some(r),
        }
    }
}

/// A scalar field type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scalar {
    String,
    /// Any JSON number a 64-bit float can hold (measurements, rates, counts of things).
    Number,
    Integer,
    /// An exact amount: a JSON number or a decimal string, held as a 96-bit decimal.
    Decimal(Range),
    Boolean,
    Date,
}

impl Scalar {
    /// The type's name as written in `[fields]` (without a range).
    pub fn name(self) -> &'static str {
        match self {
            Scalar::String => "string",
            Scalar::Number => "number",
            Scalar::Integer => "integer",
            Scalar::Decimal(_) => "decimal",
            Scalar::Boolean => "boolean",
            Scalar::Date => "date",
        }
    }

    /// Whether values of this type are numbers (for `money`, `number` and friends).
    pub fn is_numeric(self) -> bool {
        matches!(self, Scalar::Number | Scalar::Integer | Scalar::Decimal(_))
    }

    fn parse(s: &str) -> Option<Scalar> {
        if let Some(range) = s
            .strip_prefix("decimal")
            .map(str::trim_start)
            .and_then(|r| r.strip_prefix('('))
            .and_then(|r| r.strip_suffix(')'))
        {
            return Range::parse(range).map(Scalar::Decimal);
        }
        Some(match s {
            "string" => Scalar::String,
            "number" => Scalar::Number,
            "integer" => Scalar::Integer,
            "decimal" => Scalar::Decimal(Range::default()),
            "boolean" => Scalar::Boolean,
            "date" => Scalar::Date,
            _ => return None,
        })
    }
}

/// The declared type of a field.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldType {
    Scalar(Scalar),
    /// `array`: an array of anything (not checked further).
    AnyArray,
    /// `array<T>`: an array of scalars.
    ArrayOf(Scalar),
    /// `object`: an object of anything.
    AnyObject,
    /// A table in `[fields]`: an object with declared fields.
    Object(Vec<Field>),
    /// A `NAME[]` table: an array of objects with declared fields.
    Records(Vec<Field>),
}

impl FieldType {
    /// Parses a type string (`number`, `array<string>`), without the optional marker.
    pub fn parse(s: &str) -> Option<FieldType> {
        if let Some(inner) = s.strip_prefix("array<").and_then(|r| r.strip_suffix('>')) {
            return Scalar::parse(inner.trim()).map(FieldType::ArrayOf);
        }
        match s {
            "array" => Some(FieldType::AnyArray),
            "object" => Some(FieldType::AnyObject),
            _ => Scalar::parse(s).map(FieldType::Scalar),
        }
    }

    /// The type of one element when this is an array type, if known.
    pub fn element(&self) -> Option<FieldType> {
        match self {
            FieldType::ArrayOf(s) => Some(FieldType::Scalar(*s)),
            FieldType::Records(f) => Some(FieldType::Object(f.clone())),
            _ => None,
        }
    }
}

/// A declared field.
#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    pub name: String,
    pub optional: bool,
    pub ty: FieldType,
}

/// The outcome of a static lookup of a path in the schema.
#[derive(Debug, PartialEq)]
pub enum Lookup {
    /// The path is declared with this type.
    Known(FieldType),
    /// The path goes through an untyped `array`/`object`: it cannot be checked.
    Unchecked,
    /// The segment at this index is not declared; the names that are.
    Unknown {
        index: usize,
        candidates: Vec<String>,
    },
}

/// One step of a field path.
#[derive(Clone, Debug, PartialEq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// Looks up the remaining `segments` below a value of type `ty` (segment indices are
/// reported relative to `offset`).
pub fn lookup_in(ty: &FieldType, segments: &[Segment], offset: usize) -> Lookup {
    let mut ty = ty.clone();
    for (i, seg) in segments.iter().enumerate() {
        ty = match (&ty, seg) {
            (FieldType::AnyArray | FieldType::AnyObject, _) => return Lookup::Unchecked,
            (FieldType::Object(fields), Segment::Key(k)) => {
                match fields.iter().find(|f| &f.name == k) {
                    Some(f) => f.ty.clone(),
                    None => {
                        return Lookup::Unknown {
                            index: offset + i,
                            candidates: fields.iter().map(|f| f.name.clone()).collect(),
                        };
                    }
                }
            }
            (FieldType::Records(_) | FieldType::ArrayOf(_), Segment::Index(_)) => {
                ty.element().expect("array types have elements")
            }
            _ => {
                return Lookup::Unknown {
                    index: offset + i,
                    candidates: Vec::new(),
                };
            }
        };
    }
    Lookup::Known(ty)
}

/// The JSON kind of a value, for messages that must not show the value itself.
pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A field path built only when an error needs it (validation runs per field per record).
#[derive(Clone, Copy)]
enum Path<'a> {
    Root(&'a str),
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl Path<'_> {
    fn render(&self) -> String {
        match self {
            Path::Root(p) => p.to_string(),
            Path::Key(parent, k) => {
                let p = parent.render();
                if p.is_empty() {
                    k.to_string()
                } else {
                    format!("{p}.{k}")
                }
            }
            Path::Index(parent, i) => format!("{}[{i}]", parent.render()),
        }
    }
}

fn err(path: &str, reason: impl Into<String>) -> FieldError {
    FieldError {
        path: path.to_string(),
        reason: reason.into(),
    }
}

fn perr(path: &Path<'_>, reason: impl Into<String>) -> FieldError {
    err(&path.render(), reason)
}

/// The reason for a number that is not an exact decimal amount.
pub fn amount_reason(e: AmountError) -> String {
    match e {
        AmountError::Syntax => {
            "expected decimal, found a string that is not a decimal number like \"1234.56\"".into()
        }
        AmountError::OutOfRange | AmountError::TooPrecise => format!("amount is {e}"),
    }
}

fn check_decimal(range: Range, v: &mut Value, path: &Path<'_>) -> Result<(), FieldError> {
    let d = match v {
        Value::Number(n) => parse_json_number(n.as_str()),
        Value::String(s) => parse_decimal_str(s),
        other => {
            return Err(perr(
                path,
                format!("expected decimal, found {}", json_kind(other)),
            ));
        }
    }
    .map_err(|e| perr(path, amount_reason(e)))?;
    if let Some(min) = range.min
        && d < min
    {
        return Err(perr(
            path,
            format!("amount is below the declared minimum {min}"),
        ));
    }
    if let Some(max) = range.max
        && d > max
    {
        return Err(perr(
            path,
            format!("amount is above the declared maximum {max}"),
        ));
    }
    if v.is_string() {
        // Checked once where it enters: from here on the amount is a number.
        *v = Value::Number(json_number(d));
    }
    Ok(())
}

fn check_scalar(s: Scalar, v: &mut Value, path: &Path<'_>) -> Result<(), FieldError> {
    let ok = match s {
        Scalar::String => v.is_string(),
        Scalar::Number => match v {
            Value::Number(n) if n.as_f64().is_none() => {
                return Err(perr(
                    path,
                    "number is beyond what a 64-bit float holds; declare the field as decimal for exact amounts",
                ));
            }
            Value::Number(_) => true,
            _ => false,
        },
        Scalar::Integer => v.is_i64() || v.is_u64(),
        Scalar::Decimal(range) => return check_decimal(range, v, path),
        Scalar::Boolean => v.is_boolean(),
        Scalar::Date => match v.as_str() {
            Some(d) => {
                if parse_date(d).is_none() {
                    return Err(perr(path, DATE_REASON));
                }
                true
            }
            None => false,
        },
    };
    if ok {
        Ok(())
    } else {
        Err(perr(
            path,
            format!("expected {}, found {}", s.name(), json_kind(v)),
        ))
    }
}

/// The reason for a string that is not a calendar date.
pub const DATE_REASON: &str = "invalid date, expected a real calendar date YYYY-MM-DD";

/// Checks `v` against the fields of an object, writing `decimal` strings as JSON numbers.
pub fn validate_object(fields: &[Field], v: &mut Value, path: &str) -> Result<(), FieldError> {
    check_object(fields, v, &Path::Root(path))
}

fn check_object(fields: &[Field], v: &mut Value, path: &Path<'_>) -> Result<(), FieldError> {
    let Some(map) = v.as_object_mut() else {
        return Err(perr(
            path,
            format!("expected object, found {}", json_kind(v)),
        ));
    };
    for f in fields {
        let fpath = Path::Key(path, &f.name);
        match map.get_mut(&f.name) {
            None | Some(Value::Null) if f.optional => {}
            None | Some(Value::Null) => return Err(perr(&fpath, "missing required field")),
            Some(v) => check_value(&f.ty, v, &fpath)?,
        }
    }
    Ok(())
}

fn check_value(ty: &FieldType, v: &mut Value, path: &Path<'_>) -> Result<(), FieldError> {
    match ty {
        FieldType::Scalar(s) => check_scalar(*s, v, path),
        FieldType::AnyArray if v.is_array() => Ok(()),
        FieldType::AnyObject if v.is_object() => Ok(()),
        FieldType::AnyArray | FieldType::AnyObject => Err(perr(
            path,
            format!(
                "expected {}, found {}",
                if matches!(ty, FieldType::AnyArray) {
                    "array"
                } else {
                    "object"
                },
                json_kind(v)
            ),
        )),
        FieldType::Object(fields) => check_object(fields, v, path),
        FieldType::ArrayOf(_) | FieldType::Records(_) => {
            let kind = json_kind(v);
            let Some(items) = v.as_array_mut() else {
                return Err(perr(path, format!("expected array, found {kind}")));
            };
            for (i, item) in items.iter_mut().enumerate() {
                let ipath = Path::Index(path, i);
                match ty {
                    FieldType::ArrayOf(s) => check_scalar(*s, item, &ipath)?,
                    FieldType::Records(fields) => check_object(fields, item, &ipath)?,
                    _ => unreachable!("matched above"),
                }
            }
            Ok(())
        }
    }
}

/// Finds the declared field for a dotted CSV header through nested objects.
fn field_for_header<'a>(fields: &'a [Field], header: &str) -> Option<(&'a Field, Vec<&'a str>)> {
    let mut fields = fields;
    let mut keys = Vec::new();
    let mut parts = header.split('.').peekable();
    while let Some(part) = parts.next() {
        let f = fields.iter().find(|f| f.name == part)?;
        keys.push(f.name.as_str());
        if parts.peek().is_none() {
            return Some((f, keys));
        }
        match &f.ty {
            FieldType::Object(sub) => fields = sub,
            _ => return None,
        }
    }
    None
}

fn coerce(f: &Field, cell: &str, path: &str) -> Result<Option<Value>, FieldError> {
    let t = cell.trim();
    if t.is_empty() {
        return match (&f.ty, f.optional) {
            (_, true) => Ok(None),
            (FieldType::Scalar(Scalar::String), false) => Ok(Some(Value::String(String::new()))),
            _ => Err(err(path, "missing required field")),
        };
    }
    let bad = |what: &str| err(path, format!("expected {what} in the cell"));
    let v = match &f.ty {
        FieldType::Scalar(Scalar::String) => Value::String(cell.to_string()),
        FieldType::Scalar(Scalar::Date) => {
            if parse_date(t).is_none() {
                return Err(err(path, DATE_REASON));
            }
            Value::String(t.to_string())
        }
        FieldType::Scalar(Scalar::Decimal(_)) => match parse_json_number(t) {
            Ok(d) => Value::Number(json_number(d)),
            Err(AmountError::Syntax) => return Err(bad("a decimal number like 1234.56")),
            Err(e) => return Err(err(path, amount_reason(e))),
        },
        FieldType::Scalar(Scalar::Number) => {
            let x: f64 = t.parse().map_err(|_| bad("a number"))?;
            if !x.is_finite() {
                return Err(bad("a finite number"));
            }
            // The cell's own digits when they are JSON number syntax, so nothing is rounded.
            match t.parse::<serde_json::Number>() {
                Ok(n) => Value::Number(n),
                Err(_) => serde_json::Number::from_f64(x)
                    .map(Value::Number)
                    .ok_or_else(|| bad("a finite number"))?,
            }
        }
        FieldType::Scalar(Scalar::Integer) => {
            Value::Number(t.parse::<i64>().map_err(|_| bad("an integer"))?.into())
        }
        FieldType::Scalar(Scalar::Boolean) => match t.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Value::Bool(true),
            "false" | "0" | "no" => Value::Bool(false),
            _ => return Err(bad("a boolean (true/false, 1/0, yes/no)")),
        },
        _ => serde_json::from_str(t).map_err(|e| {
            err(
                path,
                format!(
                    "expected JSON text in the cell (syntax error at column {})",
                    e.column()
                ),
            )
        })?,
    };
    Ok(Some(v))
}

/// Builds a record from a CSV row: headers are field paths, unknown columns are ignored,
/// cells are coerced to the declared types, then the record is validated.
pub fn record_from_csv(
    fields: &[Field],
    headers: &[String],
    row: &[String],
) -> Result<Value, FieldError> {
    if headers.len() != row.len() {
        return Err(err(
            "",
            format!(
                "row has {} cells but the header has {} columns",
                row.len(),
                headers.len()
            ),
        ));
    }
    let mut root = Map::new();
    for (h, cell) in headers.iter().zip(row) {
        let h = h.trim();
        let Some((field, keys)) = field_for_header(fields, h) else {
            continue;
        };
        let Some(v) = coerce(field, cell, h)? else {
            continue;
        };
        let mut map = &mut root;
        for k in &keys[..keys.len() - 1] {
            let entry = map
                .entry(k.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            map = match entry {
                Value::Object(m) => m,
                _ => return Err(err(h, "a column sets both an object and its field")),
            };
        }
        map.insert(keys[keys.len() - 1].to_string(), v);
    }
    let mut record = Value::Object(root);
    validate_object(fields, &mut record, "")?;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Vec<Field> {
        let s = |name: &str, ty: FieldType, optional| Field {
            name: name.into(),
            optional,
            ty,
        };
        vec![
            s(
                "customer",
                FieldType::Object(vec![
                    s("name", FieldType::Scalar(Scalar::String), false),
                    s("title", FieldType::Scalar(Scalar::String), true),
                    s("lines", FieldType::ArrayOf(Scalar::String), false),
                ]),
                false,
            ),
            s("due", FieldType::Scalar(Scalar::Date), false),
            s("count", FieldType::Scalar(Scalar::Integer), true),
            s("vip", FieldType::Scalar(Scalar::Boolean), true),
            s(
                "transactions",
                FieldType::Records(vec![s(
                    "amount",
                    FieldType::Scalar(Scalar::Decimal(Range::default())),
                    false,
                )]),
                false,
            ),
            s(
                "limit",
                FieldType::parse("decimal(0..1000000)").unwrap(),
                true,
            ),
            s("rate", FieldType::Scalar(Scalar::Number), true),
        ]
    }

    fn base() -> Value {
        json!({"customer": {"name": "A", "lines": ["x"]}, "due": "2024-01-31",
            "transactions": [{"amount": 1.5}]})
    }

    fn check(mut v: Value) -> Result<Value, FieldError> {
        validate_object(&schema(), &mut v, "").map(|()| v)
    }

    #[test]
    fn validate_reports_paths() {
        assert_eq!(check(base()), Ok(base()));
        let mut bad = base();
        bad["transactions"] =
            json!([{"amount": 1}, {"amount": 2}, {"amount": 3}, {"amount": true}]);
        let e = check(bad).unwrap_err();
        assert_eq!(e.path, "transactions[3].amount");
        assert_eq!(e.reason, "expected decimal, found boolean");
        let missing = json!({"customer": {"lines": []}, "due": "2024-01-31", "transactions": []});
        let e = check(missing).unwrap_err();
        assert_eq!(
            (e.path.as_str(), e.reason.as_str()),
            ("customer.name", "missing required field")
        );
        let mut date = base();
        date["due"] = json!("1990-02-31");
        let e = check(date).unwrap_err();
        assert_eq!(e.path, "due");
        assert_eq!(e.reason, DATE_REASON);
        let mut lines = base();
        lines["customer"]["lines"] = json!(["a", 2]);
        assert_eq!(check(lines).unwrap_err().path, "customer.lines[1]");
    }

    #[test]
    fn reasons_never_echo_the_value() {
        let secret = "1990-02-31";
        let cases = [
            ("due", json!(secret)),
            ("vip", json!("maybe-1990-02-31")),
            ("limit", json!("12,50-1990-02-31")),
            ("count", json!("1990-02-31")),
        ];
        for (field, v) in cases {
            let mut r = base();
            r[field] = v;
            let e = check(r).unwrap_err();
            assert_eq!(e.path, field);
            assert!(!e.reason.contains("1990"), "{field}: {}", e.reason);
            assert!(!e.reason.contains("maybe"), "{field}: {}", e.reason);
        }
        let h: Vec<String> = [
            "customer.name",
            "customer.lines",
            "due",
            "transactions",
            "vip",
        ]
        .map(String::from)
        .to_vec();
        for (i, cell) in [
            (2, "31/02/1990"),
            (3, "[{\"amount\": 1990-02}]"),
            (4, "maybe1990"),
        ] {
            let mut row: Vec<String> = ["A", "[]", "2024-01-01", "[]", "yes"]
                .map(String::from)
                .to_vec();
            row[i] = cell.into();
            let e = record_from_csv(&schema(), &h, &row).unwrap_err();
            assert!(!e.reason.contains("1990"), "{cell}: {}", e.reason);
        }
    }

    #[test]
    fn decimals_are_exact_ranged_and_normalised() {
        let mut r = base();
        r["transactions"] = json!([{"amount": "1234.56"}, {"amount": 1.005}]);
        r["limit"] = json!("999999.99");
        let v = check(r).unwrap();
        // Decimal strings become JSON numbers with the same digits, once, at the boundary.
        assert_eq!(
            v["transactions"][0]["amount"].as_number().unwrap().as_str(),
            "1234.56"
        );
        assert_eq!(v["limit"].as_number().unwrap().as_str(), "999999.99");
        let parsed: Value = serde_json::from_str(r#"{"amount": 1.005}"#).unwrap();
        assert_eq!(parsed["amount"].as_number().unwrap().as_str(), "1.005");

        for (limit, reason) in [
            (json!(-0.01), "amount is below the declared minimum 0"),
            (
                json!("1000000.01"),
                "amount is above the declared maximum 1000000",
            ),
            (
                json!("12,50"),
                "expected decimal, found a string that is not a decimal number like \"1234.56\"",
            ),
        ] {
            let mut r = base();
            r["limit"] = limit;
            let e = check(r).unwrap_err();
            assert_eq!((e.path.as_str(), e.reason.as_str()), ("limit", reason));
        }
        let huge: Value = serde_json::from_str(
            r#"{"customer": {"name": "A", "lines": []}, "due": "2024-01-31",
                "transactions": [{"amount": 1}, {"amount": 1e308}]}"#,
        )
        .unwrap();
        let e = check(huge).unwrap_err();
        assert_eq!(e.path, "transactions[1].amount");
        assert!(
            e.reason.contains("beyond what an exact decimal holds"),
            "{}",
            e.reason
        );
        // `number` stays a float-ish type: large magnitudes pass, beyond f64 does not.
        let mut r = base();
        r["rate"] = serde_json::from_str("1e308").unwrap();
        assert!(check(r).is_ok());
        let mut r = base();
        r["rate"] = serde_json::from_str("1e400").unwrap();
        assert_eq!(check(r).unwrap_err().path, "rate");
        assert_eq!(FieldType::parse("decimal(5..1)"), None);
        assert_eq!(FieldType::parse("decimal(x..)"), None);
        assert_eq!(
            FieldType::parse("array<decimal(..10)>"),
            Some(FieldType::ArrayOf(Scalar::Decimal(Range {
                min: None,
                max: Some(Decimal::TEN)
            })))
        );
    }

    #[test]
    fn csv_coerces_by_declared_type() {
        let f = schema();
        let h: Vec<String> = [
            "customer.name",
            "customer.title",
            "customer.lines",
            "due",
            "count",
            "vip",
            "transactions",
            "limit",
            "rate",
            "unknown.column",
        ]
        .map(String::from)
        .to_vec();
        let row: Vec<String> = [
            "Ann",
            "",
            r#"["1 High St","Leeds"]"#,
            "2024-05-01",
            "7",
            "yes",
            r#"[{"amount": -2.5}]"#,
            "1000.10",
            "0.1",
            "ignored",
        ]
        .map(String::from)
        .to_vec();
        let r = record_from_csv(&f, &h, &row).unwrap();
        assert_eq!(
            r,
            serde_json::from_str::<Value>(
                r#"{"customer": {"name": "Ann", "lines": ["1 High St", "Leeds"]},
                "due": "2024-05-01", "count": 7, "vip": true,
                "transactions": [{"amount": -2.5}], "limit": 1000.10, "rate": 0.1}"#
            )
            .unwrap()
        );
        let mut bad = row.clone();
        bad[4] = "7.5".into();
        let e = record_from_csv(&f, &h, &bad).unwrap_err();
        assert_eq!(e.path, "count");
        let mut bad = row.clone();
        bad[3] = "31/01/2024".into();
        assert_eq!(record_from_csv(&f, &h, &bad).unwrap_err().path, "due");
        let mut bad = row.clone();
        bad[7] = "2000000".into();
        assert_eq!(record_from_csv(&f, &h, &bad).unwrap_err().path, "limit");
        let mut bad = row;
        bad[6] = r#"[{"amount": "x"}]"#.into();
        assert_eq!(
            record_from_csv(&f, &h, &bad).unwrap_err().path,
            "transactions[0].amount"
        );
    }

    #[test]
    fn lookup_paths() {
        let root = FieldType::Object(schema());
        let k = |s: &str| Segment::Key(s.into());
        assert_eq!(
            lookup_in(&root, &[k("customer"), k("name")], 0),
            Lookup::Known(FieldType::Scalar(Scalar::String))
        );
        assert!(matches!(
            lookup_in(&root, &[k("customer"), k("nmae")], 0),
            Lookup::Unknown { index: 1, .. }
        ));
        assert_eq!(
            lookup_in(
                &root,
                &[k("transactions"), Segment::Index(0), k("amount")],
                0
            ),
            Lookup::Known(FieldType::Scalar(Scalar::Decimal(Range::default())))
        );
    }
}
