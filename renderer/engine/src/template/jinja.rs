//! The MiniJinja side of expressions: our filters, record values converted by hand (JSON
//! numbers keep their exact digits), results converted back, and errors made into
//! record-facing reasons that name no customer value.

use std::collections::BTreeMap;

use minijinja::value::ValueKind;
use minijinja::{Environment, Error, ErrorKind, State, Value as J};
use rust_decimal::Decimal;
use serde_json::Value;

use super::amount::{AmountError, decimal_from_f64, exact_add, exact_f64, parse_decimal_str};
use super::expr::Fmt;
use super::format::{
    Currency, Negative, check_date_format, format_date, format_money, format_number, parse_date,
};
use super::schema::DATE_REASON;

/// The context key that carries the document's currency code to the `money` filter.
pub const CURRENCY_KEY: &str = "__currency";

/// A record-facing failure inside MiniJinja: our reason (never a customer value) and, when
/// known, the field it concerns. Travels as the source of a MiniJinja error.
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct Reject {
    /// The field the failure concerns, when known.
    pub path: Option<String>,
    /// What is wrong, in words that quote no value.
    pub reason: String,
}

fn reject(reason: impl Into<String>) -> Error {
    let reason = reason.into();
    Error::new(ErrorKind::InvalidOperation, reason.clone())
        .with_source(Reject { path: None, reason })
}

/// The field path and reason of a failed MiniJinja evaluation: ours when we raised it,
/// else a fixed text for the kind of failure (MiniJinja's own details can quote values).
pub fn failure(e: &Error) -> (Option<String>, String) {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<Reject>() {
            return (r.path.clone(), r.reason.clone());
        }
        cur = err.source();
    }
    let what = match e.kind() {
        ErrorKind::InvalidOperation => {
            "an operator or filter cannot use these values (wrong types, an integer overflow or a division by zero)"
        }
        ErrorKind::UndefinedError => "the expression uses an undefined value",
        ErrorKind::UnknownMethod | ErrorKind::UnknownFunction => {
            "the expression calls a method or function that does not exist for this value"
        }
        ErrorKind::MissingArgument | ErrorKind::TooManyArguments => {
            "a filter or function got arguments it does not take"
        }
        ErrorKind::CannotUnpack | ErrorKind::BadSerialization | ErrorKind::NonKey => {
            "a value has a shape the expression cannot use"
        }
        _ => "the expression cannot be evaluated for this record",
    };
    (None, format!("expression failed: {what}"))
}

/// A path built only when a conversion error needs it.
#[derive(Clone, Copy)]
pub enum Path<'a> {
    /// The path of the value converted (none when it is not a record field).
    Root(Option<&'a str>),
    /// A key below a path.
    Key(&'a Path<'a>, &'a str),
    /// An element below a path.
    Index(&'a Path<'a>, usize),
}

impl Path<'_> {
    fn render(&self) -> Option<String> {
        Some(match self {
            Path::Root(p) => (*p)?.to_string(),
            Path::Key(parent, k) => match parent.render()? {
                p if p.is_empty() => k.to_string(),
                p => format!("{p}.{k}"),
            },
            Path::Index(parent, i) => format!("{}[{i}]", parent.render()?),
        })
    }
}

/// The reason for a number MiniJinja cannot carry exactly.
pub const INEXACT: &str = "number has more significant digits than an expression computes with exactly (about 15); use it in a plain filter chain such as `x | money`, or round it in the data";

/// Converts a record value for MiniJinja. Integers stay exact integers; other numbers
/// become floats only when the float spells the same value; a number that cannot be
/// carried exactly becomes an invalid value that rejects the record if it is used.
pub fn to_jinja(v: &Value, path: &Path<'_>) -> J {
    match v {
        Value::Null => J::from(()),
        Value::Bool(b) => J::from(*b),
        Value::String(s) => J::from(s.as_str()),
        Value::Number(n) => number_to_jinja(n.as_str()).unwrap_or_else(|reason| {
            J::from(
                Error::new(ErrorKind::InvalidOperation, reason).with_source(Reject {
                    path: path.render(),
                    reason: reason.to_string(),
                }),
            )
        }),
        Value::Array(items) => J::from(
            items
                .iter()
                .enumerate()
                .map(|(i, x)| to_jinja(x, &Path::Index(path, i)))
                .collect::<Vec<J>>(),
        ),
        Value::Object(map) => J::from(
            map.iter()
                .map(|(k, x)| (k.clone(), to_jinja(x, &Path::Key(path, k))))
                .collect::<BTreeMap<String, J>>(),
        ),
    }
}

fn number_to_jinja(s: &str) -> Result<J, &'static str> {
    if !s.contains(['.', 'e', 'E']) {
        if let Ok(i) = s.parse::<i64>() {
            return Ok(J::from(i));
        }
        if let Ok(i) = s.parse::<i128>() {
            return Ok(J::from(i));
        }
    }
    exact_f64(s).map(J::from).ok_or(INEXACT)
}

/// Converts an exact decimal for MiniJinja (integers exactly, others as an exact float).
pub fn decimal_to_jinja(d: Decimal) -> Result<J, Error> {
    if d.scale() == 0 {
        let m = d.mantissa();
        return Ok(i64::try_from(m).map_or_else(|_| J::from(m), J::from));
    }
    number_to_jinja(&d.to_string()).map_err(reject)
}

/// Refuses a result that is an infinite or undefined float, or an invalid value.
pub fn check_finite(v: &J) -> Result<(), Error> {
    match v.kind() {
        ValueKind::Invalid => Err(reject(INEXACT)),
        ValueKind::Number
            if !v.is_integer() && f64::try_from(v.clone()).is_ok_and(|f| !f.is_finite()) =>
        {
            Err(reject(NON_FINITE))
        }
        _ => Ok(()),
    }
}

/// Converts a MiniJinja result back to JSON; a non-finite float is an error, not `null`.
pub fn from_jinja(v: &J) -> Result<Value, Error> {
    Ok(match v.kind() {
        ValueKind::Invalid => return Err(reject(INEXACT)),
        ValueKind::Undefined | ValueKind::None => Value::Null,
        ValueKind::Bool => Value::Bool(v.is_true()),
        ValueKind::Number => {
            if v.is_integer() {
                let i = i128::try_from(v.clone()).map_err(|_| reject(INTEGER_RANGE))?;
                Value::Number(i.to_string().parse().expect("an integer is a JSON number"))
            } else {
                let f = f64::try_from(v.clone()).map_err(|_| reject(NON_FINITE))?;
                Value::Number(serde_json::Number::from_f64(f).ok_or_else(|| reject(NON_FINITE))?)
            }
        }
        ValueKind::String => Value::String(v.as_str().unwrap_or_default().to_string()),
        ValueKind::Seq | ValueKind::Iterable => Value::Array(
            v.try_iter()?
                .map(|x| from_jinja(&x))
                .collect::<Result<_, _>>()?,
        ),
        ValueKind::Map => {
            let mut m = serde_json::Map::new();
            for k in v.try_iter()? {
                let x = v.get_item(&k)?;
                m.insert(k.to_string(), from_jinja(&x)?);
            }
            Value::Object(m)
        }
        _ => return Err(reject("the expression gave a value that is not data")),
    })
}

const NON_FINITE: &str =
    "the expression gave an infinite or undefined number (a division by zero or an overflow)";
const INTEGER_RANGE: &str = "the expression gave an integer beyond 128 bits";

/// Reads a MiniJinja number (or decimal string) as an exact decimal.
pub fn to_decimal(v: &J, filter: &str) -> Result<Decimal, Error> {
    let amount = |e: AmountError| reject(format!("{filter}: the amount is {e}"));
    match v.kind() {
        ValueKind::Number if v.is_integer() => {
            let i = i128::try_from(v.clone()).map_err(|_| amount(AmountError::OutOfRange))?;
            Decimal::try_from_i128_with_scale(i, 0).map_err(|_| amount(AmountError::OutOfRange))
        }
        ValueKind::Number => {
            let f = f64::try_from(v.clone()).map_err(|_| reject(NON_FINITE))?;
            if !f.is_finite() {
                return Err(reject(NON_FINITE));
            }
            decimal_from_f64(f).map_err(amount)
        }
        ValueKind::String => {
            parse_decimal_str(v.as_str().unwrap_or_default()).map_err(|e| match e {
                AmountError::Syntax => reject(format!(
                    "{filter} expects a number, found a string that is not one"
                )),
                e => amount(e),
            })
        }
        other => Err(reject(format!("{filter} expects a number, found {other}"))),
    }
}

fn missing(v: &J) -> bool {
    v.is_undefined() || v.is_none()
}

/// Registers our filters, the exact `sum` and the formatter that refuses non-finite numbers.
pub fn register(env: &mut Environment<'static>, fmt: &Fmt) {
    env.set_formatter(|out, state, value| {
        if value.kind() == ValueKind::Number
            && !value.is_integer()
            && f64::try_from(value.clone()).is_ok_and(|f| !f.is_finite())
        {
            return Err(reject(NON_FINITE));
        }
        minijinja::escape_formatter(out, state, value)
    });
    let f = fmt.clone();
    env.add_filter(
        "money",
        move |state: &State, v: J, cur: Option<J>, neg: Option<String>| -> Result<String, Error> {
            if missing(&v) {
                return Ok(String::new());
            }
            let x = to_decimal(&v, "money")?;
            let currency = match cur.filter(|c| !missing(c)) {
                Some(c) => currency(c.as_str().unwrap_or_default())?,
                None => match state.lookup(CURRENCY_KEY) {
                    Some(c) if c.as_str().is_some() => currency(c.as_str().unwrap_or_default())?,
                    _ => f.currency.clone(),
                },
            };
            let negative = match neg.as_deref() {
                None => Negative::Minus,
                Some(n) => Negative::parse(n).ok_or_else(|| {
                    reject("money: the negative style is not \"minus\" or \"parens\"")
                })?,
            };
            Ok(format_money(x, &currency, negative, &f.locale, f.rounding))
        },
    );
    for (name, credit) in [("credit", true), ("debit", false)] {
        env.add_filter(name, move |v: J| -> Result<J, Error> {
            if missing(&v) {
                return Ok(J::from(()));
            }
            let x = to_decimal(&v, name)?;
            let x = if credit { x } else { -x };
            if x > Decimal::ZERO {
                decimal_to_jinja(x)
            } else {
                Ok(J::from(()))
            }
        });
    }
    let f = fmt.clone();
    env.add_filter(
        "number",
        move |v: J, decimals: Option<u32>| -> Result<String, Error> {
            if missing(&v) {
                return Ok(String::new());
            }
            let decimals = decimals.unwrap_or(0);
            if decimals > super::amount::MAX_SCALE {
                return Err(reject("number takes a count of decimals from 0 to 28"));
            }
            Ok(format_number(
                to_decimal(&v, "number")?,
                decimals,
                &f.locale,
                f.rounding,
            ))
        },
    );
    let f = fmt.clone();
    env.add_filter(
        "date",
        move |v: J, format: Option<String>| -> Result<String, Error> {
            if missing(&v) {
                return Ok(String::new());
            }
            let Some(s) = v.as_str() else {
                return Err(reject(format!(
                    "date expects a date YYYY-MM-DD, found {}",
                    v.kind()
                )));
            };
            let d = parse_date(s).ok_or_else(|| reject(format!("date: {DATE_REASON}")))?;
            let format = format.as_deref().unwrap_or("%d %B %Y");
            check_date_format(format).map_err(|_| {
                reject("date: the format has an unsupported directive; use %d %e %m %B %b %Y %y %%")
            })?;
            Ok(format_date(d, format, &f.locale))
        },
    );
    for op in [Op::Plus, Op::Minus, Op::Times] {
        env.add_filter(op.name(), move |v: J, other: J| -> Result<J, Error> {
            if missing(&v) {
                return Ok(J::from(()));
            }
            let (a, b) = operands(&v, &other, op.name())?;
            let r = op.apply(a, b).ok_or_else(|| reject(op.overflow()))?;
            decimal_to_jinja(r.normalize())
        });
    }
    let rounding = fmt.rounding;
    env.add_filter(
        "divided_by",
        move |v: J, other: J, decimals: Option<u32>| -> Result<J, Error> {
            if missing(&v) {
                return Ok(J::from(()));
            }
            let (a, b) = operands(&v, &other, "divided_by")?;
            if b.is_zero() {
                return Err(reject("divided_by: division by zero"));
            }
            let q = a
                .checked_div(b)
                .ok_or_else(|| reject(Op::Divide.overflow()))?;
            let q = match decimals {
                Some(d) if d > super::amount::MAX_SCALE => {
                    return Err(reject("divided_by takes a count of decimals from 0 to 28"));
                }
                Some(d) => rounding.round(q, d),
                // Without a count of decimals the quotient must be exact (it ends).
                None if Op::Divide.apply(a, b).is_some() => q,
                None => {
                    return Err(reject(
                        "divided_by: the quotient does not end; give the decimals to round to, as in divided_by(y, 2)",
                    ));
                }
            };
            decimal_to_jinja(q.normalize())
        },
    );
    env.add_filter("sum", |values: J| -> Result<J, Error> {
        let mut total = Decimal::ZERO;
        for v in values.try_iter()? {
            if missing(&v) {
                continue;
            }
            total = exact_add(total, to_decimal(&v, "sum")?).ok_or_else(|| {
                reject("sum: the total needs more digits than an exact decimal holds")
            })?;
        }
        decimal_to_jinja(total)
    });
}

/// The exact arithmetic filters.
#[derive(Clone, Copy)]
enum Op {
    Plus,
    Minus,
    Times,
    Divide,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Plus => "plus",
            Op::Minus => "minus",
            Op::Times => "times",
            Op::Divide => "divided_by",
        }
    }

    /// The exact result, `None` when it overflows or would need rounding (a product is
    /// exact when the scales add up; a quotient when it multiplies back).
    fn apply(self, a: Decimal, b: Decimal) -> Option<Decimal> {
        match self {
            Op::Plus => exact_add(a, b),
            Op::Minus => exact_add(a, -b),
            Op::Times => a
                .checked_mul(b)
                .filter(|r| r.scale() >= a.scale() + b.scale()),
            Op::Divide => a.checked_div(b).filter(|q| q.checked_mul(b) == Some(a)),
        }
    }

    fn overflow(self) -> String {
        format!(
            "{}: the result needs more digits than an exact decimal holds",
            self.name()
        )
    }
}

/// The two operands of an arithmetic filter as exact decimals; a missing second operand
/// rejects the record.
fn operands(v: &J, other: &J, filter: &str) -> Result<(Decimal, Decimal), Error> {
    if missing(other) {
        return Err(reject(format!("{filter}: the other operand is missing")));
    }
    Ok((
        to_decimal(v, filter)?.normalize(),
        to_decimal(other, filter)?.normalize(),
    ))
}

fn currency(code: &str) -> Result<Currency, Error> {
    Currency::from_code(code).map_err(|e| reject(format!("money: {e}")))
}
