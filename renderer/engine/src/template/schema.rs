//! The record schema declared in `[fields]`: validation of JSON records and CSV coercion.

use serde_json::{Map, Value};

use super::FieldError;
use super::format::parse_date;

/// A scalar field type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scalar {
    String,
    Number,
    Integer,
    Boolean,
    Date,
}

impl Scalar {
    fn name(self) -> &'static str {
        match self {
            Scalar::String => "string",
            Scalar::Number => "number",
            Scalar::Integer => "integer",
            Scalar::Boolean => "boolean",
            Scalar::Date => "date",
        }
    }

    fn parse(s: &str) -> Option<Scalar> {
        Some(match s {
            "string" => Scalar::String,
            "number" => Scalar::Number,
            "integer" => Scalar::Integer,
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

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn err(path: &str, reason: impl Into<String>) -> FieldError {
    FieldError {
        path: path.to_string(),
        reason: reason.into(),
    }
}

fn check_scalar(s: Scalar, v: &Value, path: &str) -> Result<(), FieldError> {
    let ok = match s {
        Scalar::String => v.is_string(),
        Scalar::Number => v.is_number(),
        Scalar::Integer => v.is_i64() || v.is_u64(),
        Scalar::Boolean => v.is_boolean(),
        Scalar::Date => match v.as_str() {
            Some(d) => {
                if parse_date(d).is_none() {
                    return Err(err(
                        path,
                        format!("invalid date '{d}', expected YYYY-MM-DD"),
                    ));
                }
                true
            }
            None => false,
        },
    };
    if ok {
        Ok(())
    } else {
        Err(err(
            path,
            format!("expected {}, found {}", s.name(), json_kind(v)),
        ))
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// Checks `v` against the fields of an object.
pub fn validate_object(fields: &[Field], v: &Value, path: &str) -> Result<(), FieldError> {
    let Some(map) = v.as_object() else {
        return Err(err(
            path,
            format!("expected object, found {}", json_kind(v)),
        ));
    };
    for f in fields {
        let fpath = join(path, &f.name);
        match map.get(&f.name) {
            None | Some(Value::Null) if f.optional => {}
            None | Some(Value::Null) => return Err(err(&fpath, "missing required field")),
            Some(v) => validate_value(&f.ty, v, &fpath)?,
        }
    }
    Ok(())
}

fn validate_value(ty: &FieldType, v: &Value, path: &str) -> Result<(), FieldError> {
    match ty {
        FieldType::Scalar(s) => check_scalar(*s, v, path),
        FieldType::AnyArray if v.is_array() => Ok(()),
        FieldType::AnyObject if v.is_object() => Ok(()),
        FieldType::AnyArray | FieldType::AnyObject => Err(err(
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
        FieldType::Object(fields) => validate_object(fields, v, path),
        FieldType::ArrayOf(_) | FieldType::Records(_) => {
            let Some(items) = v.as_array() else {
                return Err(err(path, format!("expected array, found {}", json_kind(v))));
            };
            for (i, item) in items.iter().enumerate() {
                let ipath = format!("{path}[{i}]");
                match ty {
                    FieldType::ArrayOf(s) => check_scalar(*s, item, &ipath)?,
                    FieldType::Records(fields) => validate_object(fields, item, &ipath)?,
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
    let bad = |what: &str| err(path, format!("expected {what}, found '{t}'"));
    let v = match &f.ty {
        FieldType::Scalar(Scalar::String) => Value::String(cell.to_string()),
        FieldType::Scalar(Scalar::Date) => {
            if parse_date(t).is_none() {
                return Err(err(
                    path,
                    format!("invalid date '{t}', expected YYYY-MM-DD"),
                ));
            }
            Value::String(t.to_string())
        }
        FieldType::Scalar(Scalar::Number) => {
            let x: f64 = t.parse().map_err(|_| bad("number"))?;
            serde_json::Number::from_f64(x)
                .map(Value::Number)
                .ok_or_else(|| bad("finite number"))?
        }
        FieldType::Scalar(Scalar::Integer) => {
            Value::Number(t.parse::<i64>().map_err(|_| bad("integer"))?.into())
        }
        FieldType::Scalar(Scalar::Boolean) => match t.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Value::Bool(true),
            "false" | "0" | "no" => Value::Bool(false),
            _ => return Err(bad("boolean")),
        },
        _ => serde_json::from_str(t)
            .map_err(|e| err(path, format!("expected JSON text in the cell: {e}")))?,
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
    let record = Value::Object(root);
    validate_object(fields, &record, "")?;
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
                FieldType::Records(vec![s("amount", FieldType::Scalar(Scalar::Number), false)]),
                false,
            ),
        ]
    }

    #[test]
    fn validate_reports_paths() {
        let f = schema();
        let ok = json!({"customer": {"name": "A", "lines": ["x"]}, "due": "2024-01-31",
            "transactions": [{"amount": 1.5}]});
        assert_eq!(validate_object(&f, &ok, ""), Ok(()));
        let bad = json!({"customer": {"name": "A", "lines": ["x"]}, "due": "2024-01-31",
            "transactions": [{"amount": 1}, {"amount": 2}, {"amount": 3}, {"amount": "4"}]});
        let e = validate_object(&f, &bad, "").unwrap_err();
        assert_eq!(e.path, "transactions[3].amount");
        assert_eq!(e.reason, "expected number, found string");
        let missing = json!({"customer": {"lines": []}, "due": "2024-01-31", "transactions": []});
        let e = validate_object(&f, &missing, "").unwrap_err();
        assert_eq!(
            (e.path.as_str(), e.reason.as_str()),
            ("customer.name", "missing required field")
        );
        let date = json!({"customer": {"name": "A", "lines": []}, "due": "2024-02-30",
            "transactions": []});
        let e = validate_object(&f, &date, "").unwrap_err();
        assert_eq!(e.path, "due");
        assert!(e.reason.contains("invalid date"), "{}", e.reason);
        let lines = json!({"customer": {"name": "A", "lines": ["a", 2]}, "due": "2024-02-03",
            "transactions": []});
        assert_eq!(
            validate_object(&f, &lines, "").unwrap_err().path,
            "customer.lines[1]"
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
            "ignored",
        ]
        .map(String::from)
        .to_vec();
        let r = record_from_csv(&f, &h, &row).unwrap();
        assert_eq!(
            r,
            json!({"customer": {"name": "Ann", "lines": ["1 High St", "Leeds"]},
                "due": "2024-05-01", "count": 7, "vip": true,
                "transactions": [{"amount": -2.5}]})
        );
        let mut bad = row.clone();
        bad[4] = "7.5".into();
        let e = record_from_csv(&f, &h, &bad).unwrap_err();
        assert_eq!(e.path, "count");
        let mut bad = row.clone();
        bad[3] = "31/01/2024".into();
        assert_eq!(record_from_csv(&f, &h, &bad).unwrap_err().path, "due");
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
            Lookup::Known(FieldType::Scalar(Scalar::Number))
        );
    }
}
