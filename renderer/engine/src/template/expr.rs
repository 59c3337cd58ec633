//! Expressions and text templates: compiled once (a fast path for plain field paths with
//! our filters, MiniJinja for everything else) and evaluated per record.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

use minijinja::{Environment, UndefinedBehavior};
use serde_json::Value;

use super::FieldError;
use super::format::{
    Locale, Negative, check_date_format, format_date, format_money, format_number, parse_date,
};
use super::schema::{FieldType, Lookup, Segment, lookup_in};
use super::source::did_you_mean;

/// Formatting defaults of a template.
#[derive(Clone, Debug)]
pub struct Fmt {
    pub locale: Locale,
    pub currency: String,
}

/// A filter the fast path applies.
#[derive(Clone, Debug, PartialEq)]
enum Filter {
    Money {
        currency: Option<String>,
        negative: Negative,
    },
    Number(u32),
    Date(String),
    Upper,
    Lower,
    Default(Value),
    /// The amount if positive, else nothing (money in).
    Credit,
    /// The negated amount if negative, else nothing (money out).
    Debit,
}

/// Where a fast path starts.
#[derive(Clone, Debug, PartialEq)]
enum Head {
    /// A local (loop name, running total, `run`) by its slot in the scope stack.
    Local(usize),
    /// A top-level record field.
    Record(String),
}

/// A plain path with optional filters, evaluated directly on the JSON record.
#[derive(Clone, Debug, PartialEq)]
pub struct FastExpr {
    head: Head,
    path: Vec<Segment>,
    filters: Vec<Filter>,
}

/// A compiled expression.
#[derive(Clone, Debug)]
pub enum Expr {
    Fast(FastExpr),
    /// A MiniJinja template in the environment, by name, with the top-level record fields
    /// it names (only those are converted for it, never the whole record).
    Jinja(Arc<str>, Arc<[String]>),
}

/// A text template: literal text and interpolated expressions.
#[derive(Clone, Debug)]
pub enum TextPart {
    Lit(String),
    Expr(Expr),
}

/// An expression compile error: offset inside the expression source and message.
#[derive(Debug)]
pub struct ExprError {
    pub offset: usize,
    pub message: String,
    pub hint: Option<String>,
}

/// What a compiled expression is for (decides the MiniJinja wrapper).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Rendered as text.
    Text,
    /// Tested for truthiness.
    Test,
    /// Read as a value.
    Value,
}

/// A name in scope while compiling: loop names, running totals, `run`.
#[derive(Clone, Debug)]
pub struct ScopeEntry {
    pub name: String,
    pub ty: Option<FieldType>,
}

/// Compiles expressions into one shared MiniJinja environment.
pub struct ExprCompiler {
    env: Environment<'static>,
    count: usize,
    record: FieldType,
}

/// The name of the local that holds `run.*`; always slot 0.
pub const RUN: &str = "run";

fn run_type() -> FieldType {
    use super::schema::{Field, Scalar};
    FieldType::Object(vec![
        Field {
            name: "record_number".into(),
            optional: false,
            ty: FieldType::Scalar(Scalar::Integer),
        },
        Field {
            name: "date".into(),
            optional: false,
            ty: FieldType::Scalar(Scalar::Date),
        },
    ])
}

/// The scope every compilation starts with.
pub fn base_scope() -> Vec<ScopeEntry> {
    vec![ScopeEntry {
        name: RUN.into(),
        ty: Some(run_type()),
    }]
}

impl ExprCompiler {
    /// Creates a compiler whose filters use the template's formatting defaults.
    pub fn new(fmt: &Fmt, record: FieldType) -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        register_filters(&mut env, fmt);
        Self {
            env,
            count: 0,
            record,
        }
    }

    /// The declared type of the whole record.
    pub fn record_type(&self) -> &FieldType {
        &self.record
    }

    /// Finishes compilation, returning the environment to evaluate with.
    pub fn finish(self) -> Environment<'static> {
        self.env
    }

    /// Compiles one expression.
    pub fn expr(&mut self, src: &str, mode: Mode, scope: &[ScopeEntry]) -> Result<Expr, ExprError> {
        if mode != Mode::Test
            && let Some(fast) = parse_fast(src)
        {
            return self
                .check_fast(fast, scope)
                .map(Expr::Fast)
                .map_err(|e| lead(src, e));
        }
        if mode == Mode::Test
            && let Some(fast) = parse_fast(src)
            && fast.filters.is_empty()
        {
            return self
                .check_fast(fast, scope)
                .map(Expr::Fast)
                .map_err(|e| lead(src, e));
        }
        let (prefix, suffix) = match mode {
            Mode::Text => ("{{ ", " }}"),
            Mode::Test => ("{% if ", " %}1{% endif %}"),
            Mode::Value => ("{% set __v = ", " %}"),
        };
        if src.contains("{{") || src.contains("{%") || src.contains("%}") {
            return Err(ExprError {
                offset: src.find(['{', '%']).unwrap_or(0),
                message: "an expression cannot contain template tags".into(),
                hint: Some("write the bare expression, without {{ }}".into()),
            });
        }
        let name: Arc<str> = format!("e{}", self.count).into();
        self.count += 1;
        let source = format!("{prefix}{src}{suffix}");
        match self.env.add_template_owned(name.to_string(), source) {
            Ok(()) => {
                let roots = self.check_names(&name, src, scope)?;
                Ok(Expr::Jinja(name, roots.into()))
            }
            Err(e) => {
                let at = e.range().map(|r| r.start).unwrap_or(prefix.len());
                let offset = at.saturating_sub(prefix.len()).min(src.len());
                let detail = e.detail().unwrap_or("syntax error").to_string();
                Err(ExprError {
                    offset,
                    message: format!("bad expression '{}': {detail}", src.trim()),
                    hint: None,
                })
            }
        }
    }

    /// Compiles a text template with `{{ }}` interpolations; errors carry offsets in `src`.
    pub fn text(&mut self, src: &str, scope: &[ScopeEntry]) -> Result<Vec<TextPart>, ExprError> {
        let mut parts = Vec::new();
        let mut rest = 0;
        while let Some(open) = src[rest..].find("{{") {
            let open = rest + open;
            if open > rest {
                parts.push(TextPart::Lit(src[rest..open].to_string()));
            }
            let Some(close) = src[open + 2..].find("}}") else {
                return Err(ExprError {
                    offset: open,
                    message: "unclosed '{{'".into(),
                    hint: Some("close the interpolation with '}}'".into()),
                });
            };
            let inner_start = open + 2;
            let inner = &src[inner_start..inner_start + close];
            if inner.trim().is_empty() {
                return Err(ExprError {
                    offset: open,
                    message: "empty interpolation '{{ }}'".into(),
                    hint: None,
                });
            }
            let e = self.expr(inner, Mode::Text, scope).map_err(|mut e| {
                e.offset += inner_start;
                e
            })?;
            parts.push(TextPart::Expr(e));
            rest = inner_start + close + 2;
        }
        if rest < src.len() {
            parts.push(TextPart::Lit(src[rest..].to_string()));
        }
        Ok(parts)
    }

    /// Checks that the top-level names a MiniJinja expression reads are declared fields,
    /// names in scope or MiniJinja globals.
    /// Checks that every name an expression uses is known; returns the record fields it uses.
    fn check_names(
        &self,
        name: &str,
        src: &str,
        scope: &[ScopeEntry],
    ) -> Result<Vec<String>, ExprError> {
        const GLOBALS: [&str; 6] = ["range", "dict", "namespace", "debug", "loop", "self"];
        let t = self.env.get_template(name).map_err(|e| ExprError {
            offset: 0,
            message: e.to_string(),
            hint: None,
        })?;
        let mut names: Vec<String> = t.undeclared_variables(false).into_iter().collect();
        names.sort();
        let FieldType::Object(fields) = &self.record else {
            return Ok(names);
        };
        let mut roots = Vec::new();
        for n in names {
            if !scope.iter().any(|s| s.name == n) && fields.iter().any(|f| f.name == n) {
                roots.push(n.clone());
            }
            let known = GLOBALS.contains(&n.as_str())
                || scope.iter().any(|s| s.name == n)
                || fields.iter().any(|f| f.name == n);
            if !known {
                let candidates = fields
                    .iter()
                    .map(|f| f.name.as_str())
                    .chain(scope.iter().map(|s| s.name.as_str()));
                return Err(ExprError {
                    offset: find_word(src, &n).unwrap_or(0),
                    message: format!("unknown field '{n}'"),
                    hint: did_you_mean(&n, candidates)
                        .or_else(|| Some("declare the field in [fields] of template.toml".into())),
                });
            }
        }
        Ok(roots)
    }

    fn check_fast(&self, mut fast: FastExpr, scope: &[ScopeEntry]) -> Result<FastExpr, ExprError> {
        let Head::Record(head) = &fast.head else {
            unreachable!("parse_fast yields record heads")
        };
        // Locals shadow record fields; the innermost wins.
        if let Some(slot) = scope.iter().rposition(|s| &s.name == head) {
            if let Some(ty) = &scope[slot].ty
                && let Lookup::Unknown { index, candidates } = lookup_in(ty, &fast.path, 1)
            {
                return Err(unknown_field(head, &fast.path, index, &candidates));
            }
            fast.head = Head::Local(slot);
            return Ok(fast);
        }
        let mut full = vec![Segment::Key(head.clone())];
        full.extend(fast.path.iter().cloned());
        if let Lookup::Unknown { index, candidates } = lookup_in(&self.record, &full, 0) {
            let mut candidates = candidates;
            if index == 0 {
                candidates.extend(scope.iter().map(|s| s.name.clone()));
            }
            return Err(unknown_field(head, &fast.path, index, &candidates));
        }
        Ok(fast)
    }
}

/// Finds `word` in `src` as a whole identifier.
fn find_word(src: &str, word: &str) -> Option<usize> {
    src.match_indices(word).map(|(i, _)| i).find(|&i| {
        let before = src[..i].chars().next_back();
        let after = src[i + word.len()..].chars().next();
        !before.is_some_and(|c| is_ident(c) || c == '.') && !after.is_some_and(is_ident)
    })
}

/// Moves a path error past the expression's leading whitespace.
fn lead(src: &str, mut e: ExprError) -> ExprError {
    e.offset += src.len() - src.trim_start().len();
    e
}

fn unknown_field(head: &str, path: &[Segment], index: usize, candidates: &[String]) -> ExprError {
    let mut shown = head.to_string();
    let mut bad = head.to_string();
    for (i, s) in path.iter().enumerate() {
        if i + 1 > index {
            break;
        }
        match s {
            Segment::Key(k) => {
                shown.push('.');
                shown.push_str(k);
                bad = k.clone();
            }
            Segment::Index(n) => {
                let _ = write!(shown, "[{n}]");
            }
        }
    }
    ExprError {
        offset: 0,
        message: format!("unknown field '{shown}'"),
        hint: did_you_mean(&bad, candidates.iter().map(String::as_str))
            .or_else(|| Some("declare the field in [fields] of template.toml".into())),
    }
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

const KEYWORDS: [&str; 11] = [
    "true", "false", "none", "True", "False", "None", "not", "and", "or", "in", "is",
];

/// A tiny cursor over an expression for the fast-path grammar.
struct Cur<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Cur<'a> {
    fn ws(&mut self) {
        while self.s[self.i..].starts_with(char::is_whitespace) {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: char) -> bool {
        self.ws();
        if self.s[self.i..].starts_with(c) {
            self.i += c.len_utf8();
            true
        } else {
            false
        }
    }
    fn ident(&mut self) -> Option<&'a str> {
        self.ws();
        let rest = &self.s[self.i..];
        if !rest.starts_with(is_ident_start) {
            return None;
        }
        let len = rest.find(|c| !is_ident(c)).unwrap_or(rest.len());
        self.i += len;
        Some(&rest[..len])
    }
    fn literal(&mut self) -> Option<Value> {
        self.ws();
        let rest = &self.s[self.i..];
        let q = rest.chars().next()?;
        if q == '"' || q == '\'' {
            let end = rest[1..].find(q)?;
            let lit = &rest[1..1 + end];
            if lit.contains('\\') {
                return None;
            }
            self.i += end + 2;
            return Some(Value::String(lit.to_string()));
        }
        let len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
            .unwrap_or(rest.len());
        if len > 0 {
            let n = &rest[..len];
            self.i += len;
            if let Ok(i) = n.parse::<i64>() {
                return Some(Value::from(i));
            }
            return n
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number);
        }
        let id = self.ident()?;
        match id {
            "true" | "True" => Some(Value::Bool(true)),
            "false" | "False" => Some(Value::Bool(false)),
            "none" | "None" => Some(Value::Null),
            _ => None,
        }
    }
    fn done(&mut self) -> bool {
        self.ws();
        self.i == self.s.len()
    }
}

/// Parses `path ( '|' filter(args) )*` with our own filters; `None` when not that shape.
fn parse_fast(src: &str) -> Option<FastExpr> {
    let mut c = Cur { s: src, i: 0 };
    let head = c.ident()?;
    if KEYWORDS.contains(&head) {
        return None;
    }
    let mut path = Vec::new();
    loop {
        c.ws();
        if c.s[c.i..].starts_with('.') {
            c.i += 1;
            path.push(Segment::Key(c.ident()?.to_string()));
        } else if c.s[c.i..].starts_with('[') {
            c.i += 1;
            c.ws();
            let rest = &c.s[c.i..];
            let len = rest
                .find(|ch: char| !ch.is_ascii_digit())
                .unwrap_or(rest.len());
            let n: usize = rest[..len].parse().ok()?;
            c.i += len;
            if !c.eat(']') {
                return None;
            }
            path.push(Segment::Index(n));
        } else {
            break;
        }
    }
    let mut filters = Vec::new();
    while c.eat('|') {
        let name = c.ident()?;
        let mut args = Vec::new();
        if c.eat('(') && !c.eat(')') {
            loop {
                args.push(c.literal()?);
                if c.eat(')') {
                    break;
                }
                if !c.eat(',') {
                    return None;
                }
            }
        }
        filters.push(fast_filter(name, &args)?);
    }
    if !c.done() {
        return None;
    }
    Some(FastExpr {
        head: Head::Record(head.to_string()),
        path,
        filters,
    })
}

/// Builds a fast-path filter; `None` leaves the expression to MiniJinja (which reports
/// bad arguments at bind time).
fn fast_filter(name: &str, args: &[Value]) -> Option<Filter> {
    Some(match (name, args) {
        ("money", []) => Filter::Money {
            currency: None,
            negative: Negative::Minus,
        },
        ("money", [Value::String(c)]) => Filter::Money {
            currency: Some(c.clone()),
            negative: Negative::Minus,
        },
        ("money", [cur, Value::String(n)]) => Filter::Money {
            currency: match cur {
                Value::String(c) => Some(c.clone()),
                Value::Null => None,
                _ => return None,
            },
            negative: Negative::parse(n)?,
        },
        ("number", []) => Filter::Number(0),
        ("number", [Value::Number(n)]) => Filter::Number(u32::try_from(n.as_u64()?).ok()?),
        ("date", []) => Filter::Date("%d %B %Y".into()),
        ("date", [Value::String(f)]) => {
            check_date_format(f).ok()?;
            Filter::Date(f.clone())
        }
        ("upper", []) => Filter::Upper,
        ("lower", []) => Filter::Lower,
        ("credit", []) => Filter::Credit,
        ("debit", []) => Filter::Debit,
        ("default" | "d", [v]) => Filter::Default(v.clone()),
        _ => return None,
    })
}

fn register_filters(env: &mut Environment<'static>, fmt: &Fmt) {
    use minijinja::{Error, ErrorKind, Value as J};
    fn missing(v: &J) -> bool {
        v.is_undefined() || v.is_none()
    }
    fn num(v: &J, filter: &str) -> Result<f64, Error> {
        f64::try_from(v.clone()).map_err(|_| {
            Error::new(
                ErrorKind::InvalidOperation,
                format!("{filter} expects a number, found {}", v.kind()),
            )
        })
    }
    let f = fmt.clone();
    env.add_filter(
        "money",
        move |v: J, cur: Option<J>, neg: Option<String>| -> Result<String, Error> {
            if missing(&v) {
                return Ok(String::new());
            }
            let x = num(&v, "money")?;
            let cur = cur
                .filter(|c| !missing(c))
                .and_then(|c| c.as_str().map(str::to_string))
                .unwrap_or_else(|| f.currency.clone());
            let negative = match neg.as_deref() {
                None => Negative::Minus,
                Some(n) => Negative::parse(n).ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidOperation,
                        format!("money: negative style '{n}' is not \"minus\" or \"parens\""),
                    )
                })?,
            };
            Ok(format_money(x, &cur, negative, &f.locale))
        },
    );
    for (name, sign) in [("credit", 1.0), ("debit", -1.0)] {
        env.add_filter(name, move |v: J| -> Result<J, Error> {
            if missing(&v) {
                return Ok(J::from(()));
            }
            let x = num(&v, name)? * sign;
            Ok(if x > 0.0 { J::from(x) } else { J::from(()) })
        });
    }
    let f = fmt.clone();
    env.add_filter(
        "number",
        move |v: J, decimals: Option<u32>| -> Result<String, Error> {
            if missing(&v) {
                return Ok(String::new());
            }
            Ok(format_number(
                num(&v, "number")?,
                decimals.unwrap_or(0),
                &f.locale,
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
            let s = v.as_str().unwrap_or_default();
            let d = parse_date(s).ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidOperation,
                    format!("date expects YYYY-MM-DD, found '{v}'"),
                )
            })?;
            let format = format.as_deref().unwrap_or("%d %B %Y");
            check_date_format(format).map_err(|bad| {
                Error::new(
                    ErrorKind::InvalidOperation,
                    format!("date: unsupported directive {bad}"),
                )
            })?;
            Ok(format_date(d, format, &f.locale))
        },
    );
}

/// A local value in scope at bind time.
#[derive(Debug)]
pub enum Local<'a> {
    Ref(&'a Value),
    Owned(Value),
}

impl Local<'_> {
    fn get(&self) -> &Value {
        match self {
            Local::Ref(v) => v,
            Local::Owned(v) => v,
        }
    }
}

/// Evaluation state of one document: the record, the locals stack and the lazily
/// converted MiniJinja view of the record.
pub struct Scope<'a> {
    pub record: &'a Value,
    pub locals: Vec<(&'a str, Local<'a>)>,
    env: &'a Environment<'static>,
    fmt: &'a Fmt,
}

static NULL: Value = Value::Null;

fn err(reason: impl Into<String>) -> FieldError {
    FieldError {
        path: String::new(),
        reason: reason.into(),
    }
}

impl<'a> Scope<'a> {
    /// Starts a document scope; `run` is slot 0.
    pub fn new(record: &'a Value, run: Value, env: &'a Environment<'static>, fmt: &'a Fmt) -> Self {
        Self {
            record,
            locals: vec![(RUN, Local::Owned(run))],
            env,
            fmt,
        }
    }

    /// Evaluates a plain path that points into the record (or a borrowed local) without
    /// copying; `None` when the expression is not such a path.
    pub fn borrow(&self, e: &Expr) -> Option<&'a Value> {
        let Expr::Fast(f) = e else {
            return None;
        };
        if !f.filters.is_empty() {
            return None;
        }
        let mut v: &'a Value = match &f.head {
            Head::Local(i) => match &self.locals[*i].1 {
                Local::Ref(r) => r,
                Local::Owned(_) => return None,
            },
            Head::Record(k) => self.record.get(k).unwrap_or(&NULL),
        };
        for s in &f.path {
            v = match s {
                Segment::Key(k) => v.get(k),
                Segment::Index(i) => v.get(*i),
            }
            .unwrap_or(&NULL);
        }
        Some(v)
    }

    fn resolve<'s>(&'s self, f: &FastExpr) -> &'s Value {
        let mut v = match &f.head {
            Head::Local(i) => self.locals[*i].1.get(),
            Head::Record(k) => self.record.get(k).unwrap_or(&NULL),
        };
        for s in &f.path {
            v = match s {
                Segment::Key(k) => v.get(k),
                Segment::Index(i) => v.get(*i),
            }
            .unwrap_or(&NULL);
        }
        v
    }

    /// The context of a MiniJinja expression: the locals, and only the record fields the
    /// expression names (converting a statement's 150 transactions for a test on its
    /// balance would cost more than the rest of the document's binding).
    fn jinja_ctx(&self, roots: &[String]) -> minijinja::Value {
        let mut map: BTreeMap<String, minijinja::Value> = BTreeMap::new();
        for (name, v) in &self.locals {
            map.insert(name.to_string(), minijinja::Value::from_serialize(v.get()));
        }
        for r in roots {
            if let (false, Some(v)) = (map.contains_key(r), self.record.get(r)) {
                map.insert(r.clone(), minijinja::Value::from_serialize(v));
            }
        }
        minijinja::Value::from(map)
    }

    fn jinja_err(&self, e: minijinja::Error) -> FieldError {
        err(format!(
            "expression failed: {}",
            e.detail()
                .map(str::to_string)
                .unwrap_or_else(|| e.to_string())
        ))
    }

    /// Appends the text of an expression to `out`.
    pub fn write(&self, e: &Expr, out: &mut String) -> Result<(), FieldError> {
        match e {
            Expr::Fast(f) => self.write_fast(f, out),
            Expr::Jinja(name, roots) => {
                let t = self.env.get_template(name).map_err(|e| self.jinja_err(e))?;
                let s = t
                    .render(self.jinja_ctx(roots))
                    .map_err(|e| self.jinja_err(e))?;
                out.push_str(&s);
                Ok(())
            }
        }
    }

    /// Appends a text template to `out`.
    pub fn write_text(&self, parts: &[TextPart], out: &mut String) -> Result<(), FieldError> {
        for p in parts {
            match p {
                TextPart::Lit(s) => out.push_str(s),
                TextPart::Expr(e) => self.write(e, out)?,
            }
        }
        Ok(())
    }

    /// Renders a text template into a new string.
    pub fn text(&self, parts: &[TextPart]) -> Result<String, FieldError> {
        let mut s = String::new();
        self.write_text(parts, &mut s)?;
        Ok(s)
    }

    /// Evaluates an expression for truthiness (Jinja rules).
    pub fn truthy(&self, e: &Expr) -> Result<bool, FieldError> {
        match e {
            Expr::Fast(f) => Ok(match self.resolve(f) {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64().is_some_and(|x| x != 0.0),
                Value::String(s) => !s.is_empty(),
                Value::Array(a) => !a.is_empty(),
                Value::Object(o) => !o.is_empty(),
            }),
            Expr::Jinja(name, roots) => {
                let t = self.env.get_template(name).map_err(|e| self.jinja_err(e))?;
                Ok(t.render(self.jinja_ctx(roots))
                    .map_err(|e| self.jinja_err(e))?
                    == "1")
            }
        }
    }

    /// Evaluates an expression to a value (borrowed from the record on the fast path).
    pub fn value(&self, e: &Expr) -> Result<Cow<'_, Value>, FieldError> {
        match e {
            Expr::Fast(f) if f.filters.is_empty() => Ok(Cow::Borrowed(self.resolve(f))),
            Expr::Fast(f) => {
                let mut s = String::new();
                self.write_fast(f, &mut s)?;
                Ok(Cow::Owned(Value::String(s)))
            }
            Expr::Jinja(name, roots) => {
                let t = self.env.get_template(name).map_err(|e| self.jinja_err(e))?;
                let captured = t
                    .render_captured(self.jinja_ctx(roots))
                    .map_err(|e| self.jinja_err(e))?;
                let v = captured.state().lookup("__v").unwrap_or_default();
                if v.is_undefined() {
                    return Ok(Cow::Owned(Value::Null));
                }
                serde_json::to_value(&v)
                    .map(Cow::Owned)
                    .map_err(|e| err(format!("expression value: {e}")))
            }
        }
    }

    fn write_fast(&self, f: &FastExpr, out: &mut String) -> Result<(), FieldError> {
        let v = self.resolve(f);
        if f.filters.is_empty() {
            write_value(v, out);
            return Ok(());
        }
        let mut cur: Cow<'_, Value> = Cow::Borrowed(v);
        for filter in &f.filters {
            cur = Cow::Owned(self.apply(filter, &cur)?);
        }
        write_value(&cur, out);
        Ok(())
    }

    fn apply(&self, filter: &Filter, v: &Value) -> Result<Value, FieldError> {
        let loc = &self.fmt.locale;
        if v.is_null() {
            return Ok(match filter {
                Filter::Default(d) => d.clone(),
                _ => Value::Null,
            });
        }
        if let Filter::Credit | Filter::Debit = filter {
            let x = v
                .as_f64()
                .ok_or_else(|| err(format!("credit/debit expect a number, found {v}")))?;
            let x = if *filter == Filter::Credit { x } else { -x };
            return Ok(if x > 0.0 { Value::from(x) } else { Value::Null });
        }
        let num = |name: &str| {
            v.as_f64()
                .ok_or_else(|| err(format!("{name} expects a number, found {v}")))
        };
        Ok(Value::String(match filter {
            Filter::Money { currency, negative } => format_money(
                num("money")?,
                currency.as_deref().unwrap_or(&self.fmt.currency),
                *negative,
                loc,
            ),
            Filter::Number(d) => format_number(num("number")?, *d, loc),
            Filter::Date(format) => {
                let d = v
                    .as_str()
                    .and_then(parse_date)
                    .ok_or_else(|| err(format!("date expects YYYY-MM-DD, found {v}")))?;
                format_date(d, format, loc)
            }
            Filter::Upper | Filter::Lower => {
                let mut s = String::new();
                write_value(v, &mut s);
                if *filter == Filter::Upper {
                    s.to_uppercase()
                } else {
                    s.to_lowercase()
                }
            }
            Filter::Default(_) => return Ok(v.clone()),
            Filter::Credit | Filter::Debit => unreachable!("handled above"),
        }))
    }
}

/// Writes a JSON value as text: strings as is, integers without a fraction, missing as "".
fn write_value(v: &Value, out: &mut String) {
    match v {
        Value::Null => {}
        Value::String(s) => out.push_str(s),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::schema::{Field, Scalar};
    use serde_json::json;

    fn compiler() -> (ExprCompiler, Fmt) {
        let fmt = Fmt {
            locale: Locale::get_or_default("en-GB"),
            currency: "GBP".into(),
        };
        let s = |n: &str, ty| Field {
            name: n.into(),
            optional: false,
            ty,
        };
        let record = FieldType::Object(vec![
            s(
                "customer",
                FieldType::Object(vec![s("name", FieldType::Scalar(Scalar::String))]),
            ),
            s(
                "tx",
                FieldType::Records(vec![s("amount", FieldType::Scalar(Scalar::Number))]),
            ),
            s("n", FieldType::Scalar(Scalar::Number)),
        ]);
        (ExprCompiler::new(&fmt, record), fmt)
    }

    #[test]
    fn fast_path_shapes() {
        assert!(parse_fast("customer.name").is_some());
        assert!(parse_fast("tx[0].amount | money('EUR', 'parens')").is_some());
        assert!(parse_fast("n | number(2) | upper").is_some());
        assert!(parse_fast("n + 1").is_none());
        assert!(parse_fast("n | round").is_none());
        assert!(parse_fast("not n").is_none());
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
        let rec = json!({"customer": {"name": "Ann"}, "n": -1234.5, "tx": []});
        let s = Scope::new(
            &rec,
            json!({"record_number": 1, "date": "2024-01-01"}),
            &env,
            &fmt,
        );
        let mut a = String::new();
        s.write(&fast, &mut a).unwrap();
        let mut b = String::new();
        s.write(&slow, &mut b).unwrap();
        assert_eq!(a, "-£1,234.50");
        assert_eq!(a, b);
        assert!(s.truthy(&test).unwrap());
        assert_eq!(s.text(&text).unwrap(), "Dear ANN, -1,234.5");
        drop(s);
        let mut rec2 = rec.clone();
        rec2["n"] = json!(12.5);
        let s = Scope::new(&rec2, json!({}), &env, &fmt);
        assert!(!s.truthy(&test).unwrap());
        assert_eq!(s.text(&credit).unwrap(), "£12.50|");
        assert_eq!(s.text(&credit_j).unwrap(), "£12.50|");
        let s = Scope::new(&rec, json!({}), &env, &fmt);
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
        let rec = json!({"n": -1.0});
        let mut s = Scope::new(&rec, json!({"date": "2024-01-02"}), &env, &fmt);
        s.locals.push(("n", Local::Owned(json!(5))));
        for e in [&fast, &slow] {
            let mut out = String::new();
            s.write(e, &mut out).unwrap();
            assert_eq!(out, "£5.00");
        }
        assert_eq!(s.text(&[TextPart::Expr(run)]).unwrap(), "2024-01-02");
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
}
