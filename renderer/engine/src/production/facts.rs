//! The facts the planner needs from one record, taken once when the record is rendered.
//!
//! Keys are normalised text (see [`normalise_into`]); conditions compare text, or exact
//! decimals for `greater-than`/`less-than` (numbers are read from their JSON text, never
//! through a float).

use rust_decimal::Decimal;
use serde_json::Value;

use super::profile::{Condition, FieldPath, Profile, Step, Test};
use crate::template::{parse_decimal_str, parse_json_number};

/// What the planner knows about one document's record.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Facts {
    /// The presort key, one normalised text per `[presort] keys` field.
    pub sort_key: Vec<String>,
    /// The sort group (normalised, cut to the group prefix).
    pub group: String,
    /// The household key; `None` when householding is off, excluded or the key is empty.
    pub household: Option<String>,
    /// The recipient key for duplicate detection; `None` when off or the key is empty.
    pub recipient: Option<String>,
    /// Feeder mask: bit `station - 1` set when that feeder fires.
    pub feeders: u8,
    /// `None` = print; `Some(name)` = routed out to that channel.
    pub channel: Option<String>,
}

/// A record field the profile cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FactError {
    /// The field path as the profile writes it.
    pub field: String,
    /// What is wrong with its value.
    pub message: String,
}

/// Separates the fields of a household or recipient key; normalisation never leaves one.
const KEY_SEPARATOR: char = '\u{1f}';

/// Punctuation that normalisation treats like whitespace.
const PUNCTUATION: &[char] = &['.', ',', ';', ':', '-', '\'', '"', '/'];

impl Profile {
    /// Returns the facts the planner needs from one record.
    pub fn facts(&self, record: &Value) -> Result<Facts, FactError> {
        let mut facts = Facts {
            sort_key: Vec::with_capacity(self.presort.keys.len()),
            ..Facts::default()
        };
        for key in &self.presort.keys {
            let mut s = String::new();
            key_text(record, key, &mut s)?;
            facts.sort_key.push(s);
        }
        if let Some(g) = &self.presort.group {
            key_text(record, &g.field, &mut facts.group)?;
            if let Some(n) = g.prefix
                && let Some((cut, _)) = facts.group.char_indices().nth(n)
            {
                facts.group.truncate(cut);
                let kept = facts.group.trim_end().len();
                facts.group.truncate(kept);
            }
        }
        if let Some(h) = &self.householding {
            let excluded = match &h.exclude_when {
                Some(c) => c.holds(record)?,
                None => false,
            };
            if !excluded {
                facts.household = joined_key(record, &h.key)?;
            }
        }
        if let Some(d) = &self.duplicates {
            facts.recipient = joined_key(record, &d.key)?;
        }
        for f in &self.feeders {
            if f.when.holds(record)? {
                facts.feeders |= 1 << (f.station - 1);
            }
        }
        if let Some(c) = &self.channel {
            facts.channel = match c.field.lookup(record) {
                None => None,
                Some(Value::String(s)) if s.is_empty() || c.print.iter().any(|p| p == s) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(other) => {
                    return Err(FactError {
                        field: c.field.text.clone(),
                        message: format!(
                            "is {}, not a channel name: send a string such as \"print\" or \"email\"",
                            kind(other)
                        ),
                    });
                }
            };
        }
        Ok(facts)
    }
}

impl FieldPath {
    /// Returns the value at this path; `None` when absent or null.
    pub fn lookup<'v>(&self, record: &'v Value) -> Option<&'v Value> {
        let mut v = record;
        for step in &self.steps {
            v = match step {
                Step::Key(k) => v.as_object()?.get(k)?,
                Step::Index(i) => v.as_array()?.get(*i)?,
            };
        }
        (!v.is_null()).then_some(v)
    }
}

impl Condition {
    /// Returns whether the condition holds for a record.
    pub fn holds(&self, record: &Value) -> Result<bool, FactError> {
        let value = self.field.lookup(record);
        Ok(match &self.test {
            Test::Present(p) => value.is_some() == *p,
            Test::Equals(want) => match value {
                None => false,
                Some(v) => self.equals(v, want)?,
            },
            Test::NotEquals(want) => match value {
                None => true,
                Some(v) => !self.equals(v, want)?,
            },
            Test::In(list) => match value {
                None => false,
                Some(v) => {
                    let mut any = false;
                    for want in list {
                        any |= self.equals(v, want)?;
                    }
                    any
                }
            },
            Test::GreaterThan(bound) => match value {
                None => false,
                Some(v) => self.amount(v, "greater-than")? > *bound,
            },
            Test::LessThan(bound) => match value {
                None => false,
                Some(v) => self.amount(v, "less-than")? < *bound,
            },
        })
    }

    /// Text equality; a JSON number also equals a decimal text of the same amount.
    fn equals(&self, v: &Value, want: &str) -> Result<bool, FactError> {
        Ok(match v {
            Value::String(s) => s == want,
            Value::Bool(b) => want == if *b { "true" } else { "false" },
            Value::Number(n) => {
                n.as_str() == want
                    || match (parse_json_number(n.as_str()), parse_decimal_str(want)) {
                        (Ok(a), Ok(b)) => a == b,
                        _ => false,
                    }
            }
            other => {
                return Err(self.error(format!(
                    "is {}: a condition tests one value (index it, e.g. {}[0])",
                    kind(other),
                    self.field.text
                )));
            }
        })
    }

    fn amount(&self, v: &Value, test: &str) -> Result<Decimal, FactError> {
        let parsed = match v {
            Value::Number(n) => parse_json_number(n.as_str()).map_err(|e| e.to_string()),
            Value::String(s) => {
                parse_decimal_str(s.trim()).map_err(|_| format!("is the text '{s}', not an amount"))
            }
            other => Err(format!("is {}, not an amount", kind(other))),
        };
        parsed.map_err(|why| self.error(format!("{why}: {test} compares exact amounts")))
    }

    fn error(&self, message: String) -> FactError {
        FactError {
            field: self.field.text.clone(),
            message,
        }
    }
}

/// Appends the normalised text of `s` to `out`: upper case, every run of whitespace,
/// control characters and `.,;:-'"/` as one space, nothing leading or trailing (a space
/// separates it from what `out` already holds).
pub fn normalise_into(s: &str, out: &mut String) {
    let mut gap = true;
    for c in s.chars() {
        if c.is_whitespace() || c.is_control() || PUNCTUATION.contains(&c) {
            gap = true;
            continue;
        }
        if gap && !out.is_empty() {
            out.push(' ');
        }
        gap = false;
        out.extend(c.to_uppercase());
    }
}

/// Returns the normalised text of `s`.
pub fn normalise(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    normalise_into(s, &mut out);
    out
}

/// Appends the normalised text of a field (empty when absent) to `out`; a number is its
/// JSON text as written.
fn key_text(record: &Value, field: &FieldPath, out: &mut String) -> Result<(), FactError> {
    match field.lookup(record) {
        None => Ok(()),
        Some(v) => value_text(v, out).map_err(|k| FactError {
            field: field.text.clone(),
            message: format!("is {k}: a key takes text, numbers or lists of them"),
        }),
    }
}

fn value_text(v: &Value, out: &mut String) -> Result<(), &'static str> {
    match v {
        Value::Null => {}
        Value::String(s) => normalise_into(s, out),
        // A number keeps its JSON text (`12.50` stays `12.50`, not `12 50`).
        Value::Number(n) => {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(n.as_str());
        }
        Value::Bool(b) => normalise_into(if *b { "true" } else { "false" }, out),
        Value::Array(items) => {
            for item in items {
                value_text(item, out)?;
            }
        }
        Value::Object(_) => return Err("an object"),
    }
    Ok(())
}

/// The fields' normalised texts joined by [`KEY_SEPARATOR`]; `None` when all are empty.
fn joined_key(record: &Value, fields: &[FieldPath]) -> Result<Option<String>, FactError> {
    let mut key = String::new();
    let mut part = String::new();
    let mut any = false;
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            key.push(KEY_SEPARATOR);
        }
        part.clear();
        key_text(record, f, &mut part)?;
        any |= !part.is_empty();
        key.push_str(&part);
    }
    Ok(any.then_some(key))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
