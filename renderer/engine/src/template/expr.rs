//! Expressions and text templates: compiled once (a fast path for plain field paths with
//! our filters, MiniJinja for everything else) and evaluated per record.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::rc::Rc;
use std::sync::Arc;

use minijinja::{Environment, ErrorKind, UndefinedBehavior, Value as J};
use rust_decimal::Decimal;
use serde_json::Value;

use super::FieldError;
use super::amount::{AmountError, is_zero_text, json_number, parse_decimal_str, parse_json_number};
use super::check::{self, Arith, Operand, Side, UseKind};
use super::format::{
    Currency, Locale, Negative, Rounding, check_date_format, format_date, format_money,
    format_number, parse_date,
};
use super::jinja;
use super::schema::{DATE_REASON, FieldType, Lookup, Segment, json_kind, lookup_in};
use super::source::did_you_mean;

/// Formatting defaults of a template (the currency may be replaced per document).
#[derive(Clone, Debug)]
pub struct Fmt {
    pub locale: Locale,
    pub currency: Currency,
    pub rounding: Rounding,
}

/// A filter the fast path applies.
#[derive(Clone, Debug, PartialEq)]
enum Filter {
    Money {
        currency: Option<Currency>,
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

impl Filter {
    fn name(&self) -> &'static str {
        match self {
            Filter::Money { .. } => "money",
            Filter::Number(_) => "number",
            Filter::Date(_) => "date",
            Filter::Upper => "upper",
            Filter::Lower => "lower",
            Filter::Default(_) => "default",
            Filter::Credit => "credit",
            Filter::Debit => "debit",
        }
    }
}

/// The filters this module implements (MiniJinja has the same ones registered).
const OUR_FILTERS: [&str; 13] = [
    "money",
    "number",
    "date",
    "upper",
    "lower",
    "default",
    "d",
    "credit",
    "debit",
    "plus",
    "minus",
    "times",
    "divided_by",
];

/// Our filters that give an exact amount (a non-integer number, as far as the checks go).
const AMOUNT_FILTERS: [&str; 7] = [
    "credit",
    "debit",
    "plus",
    "minus",
    "times",
    "divided_by",
    "sum",
];

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
    /// Offset of each filter's name in the source (for compile errors).
    filter_at: Vec<usize>,
}

/// A MiniJinja expression: its template in the environment, the top-level record fields
/// it names (only those are converted for it, never the whole record) and, when it reads
/// exactly one field path, that path (to name the field when it fails).
#[derive(Debug)]
pub struct JinjaExpr {
    name: Arc<str>,
    roots: Vec<String>,
    reads: Option<FastExpr>,
}

/// A compiled expression.
#[derive(Clone, Debug)]
pub enum Expr {
    Fast(FastExpr),
    Jinja(Arc<JinjaExpr>),
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
    /// Names of MiniJinja globals (functions such as `range`), plus `loop` and `self`.
    globals: Vec<String>,
    /// Whether a filter or test name exists, by kind and name, asked once each.
    known: BTreeMap<(bool, String), bool>,
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

/// What kind of value a filter sees, as far as the schema tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ty {
    Text,
    Date,
    Num,
    Bool,
    List,
    Map,
}

fn ty_of(t: &FieldType) -> (Ty, &'static str) {
    use super::schema::Scalar;
    match t {
        FieldType::Scalar(s) => (
            match s {
                Scalar::String => Ty::Text,
                Scalar::Date => Ty::Date,
                Scalar::Boolean => Ty::Bool,
                Scalar::Number | Scalar::Integer | Scalar::Decimal(_) => Ty::Num,
            },
            s.name(),
        ),
        FieldType::AnyArray | FieldType::ArrayOf(_) | FieldType::Records(_) => (Ty::List, "array"),
        FieldType::AnyObject | FieldType::Object(_) => (Ty::Map, "object"),
    }
}

/// The input a filter gets: its kind, how to say where it comes from, and whether that is
/// a declared field (rather than a literal or another filter).
type Input = Option<(Ty, String, bool)>;

/// Checks that our filter `name` can take `input`; returns what it gives.
fn apply_type(name: &str, input: Input) -> Result<Input, (String, Option<String>)> {
    let (accepts, gives, needs): (&[Ty], Option<Ty>, &str) = match name {
        "money" | "number" => (&[Ty::Num], Some(Ty::Text), "a number"),
        "credit" | "debit" | "plus" | "minus" | "times" | "divided_by" => {
            (&[Ty::Num], Some(Ty::Num), "a number")
        }
        "date" => (&[Ty::Text, Ty::Date], Some(Ty::Text), "a date"),
        "upper" | "lower" => (&[], Some(Ty::Text), ""),
        "default" | "d" => return Ok(input),
        _ => return Ok(None),
    };
    if let Some((ty, from, declared)) = &input
        && !accepts.is_empty()
        && !accepts.contains(ty)
    {
        let hint = match (*declared, needs == "a number") {
            (true, true) => {
                "declare the field as decimal (amounts) or number in [fields], or drop the filter"
            }
            (true, false) => "declare the field as date in [fields], or drop the filter",
            (false, _) => "drop the filter or apply the filters in another order",
        };
        return Err((
            format!("'{name}' needs {needs}, but {from}"),
            Some(hint.into()),
        ));
    }
    let says = |t: Ty| if t == Ty::Num { "a number" } else { "text" };
    Ok(gives.map(|t| (t, format!("'{name}' gives {}", says(t)), false)))
}

fn show_path(head: &str, segs: &[Segment]) -> String {
    let mut s = head.to_string();
    for seg in segs {
        match seg {
            Segment::Key(k) => {
                s.push('.');
                s.push_str(k);
            }
            Segment::Index(i) => {
                let _ = write!(s, "[{i}]");
            }
        }
    }
    s
}

impl ExprCompiler {
    /// Creates a compiler whose filters use the template's formatting defaults.
    pub fn new(fmt: &Fmt, record: FieldType) -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        jinja::register(&mut env, fmt);
        let mut globals: Vec<String> = env.globals().map(|(k, _)| k.to_string()).collect();
        globals.extend(["loop".to_string(), "self".to_string()]);
        Self {
            env,
            count: 0,
            record,
            globals,
            known: BTreeMap::new(),
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
        match parse_fast(src) {
            Err((offset, message)) => {
                return Err(ExprError {
                    offset,
                    message,
                    hint: None,
                });
            }
            Ok(Some(fast)) if mode != Mode::Test || fast.filters.is_empty() => {
                return self
                    .check_fast(fast, scope)
                    .map(Expr::Fast)
                    .map_err(|e| lead(src, e));
            }
            Ok(_) => {}
        }
        if src.contains("{{") || src.contains("{%") || src.contains("%}") {
            return Err(ExprError {
                offset: src.find(['{', '%']).unwrap_or(0),
                message: "an expression cannot contain template tags".into(),
                hint: Some("write the bare expression, without {{ }}".into()),
            });
        }
        let (prefix, suffix) = match mode {
            Mode::Text => ("{{ ", " }}"),
            Mode::Test | Mode::Value => ("{% set __v = ", " %}"),
        };
        let name: Arc<str> = format!("e{}", self.count).into();
        self.count += 1;
        let source = format!("{prefix}{src}{suffix}");
        match self.env.add_template_owned(name.to_string(), source) {
            Ok(()) => {
                self.check_jinja(src, scope)?;
                let (roots, reads) = self.check_names(&name, src, scope)?;
                Ok(Expr::Jinja(Arc::new(JinjaExpr { name, roots, reads })))
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

    /// Whether MiniJinja knows a filter (`filter`) or test by that name: asked once per
    /// name through the public API, by rendering a probe and reading the error kind.
    fn exists(&mut self, filter: bool, name: &str) -> bool {
        if let Some(&k) = self.known.get(&(filter, name.to_string())) {
            return k;
        }
        let (probe, unknown) = if filter {
            (format!("{{{{ none | {name} }}}}"), ErrorKind::UnknownFilter)
        } else {
            (
                format!("{{% if none is {name} %}}{{% endif %}}"),
                ErrorKind::UnknownTest,
            )
        };
        let known = !matches!(self.env.render_str(&probe, ()), Err(e) if e.kind() == unknown);
        self.known.insert((filter, name.to_string()), known);
        known
    }

    /// The declared type of a path that starts at a local or a record field.
    fn path_type(&self, head: &str, segs: &[Segment], scope: &[ScopeEntry]) -> Option<FieldType> {
        let found = if let Some(slot) = scope.iter().rposition(|s| s.name == head) {
            lookup_in(scope[slot].ty.as_ref()?, segs, 1)
        } else {
            let mut full = vec![Segment::Key(head.to_string())];
            full.extend(segs.iter().cloned());
            lookup_in(&self.record, &full, 0)
        };
        match found {
            Lookup::Known(t) => Some(t),
            _ => None,
        }
    }

    /// Checks the filters, tests and functions a MiniJinja expression names, the literal
    /// arguments of our filters and the declared types our filters are applied to.
    fn check_jinja(&mut self, src: &str, scope: &[ScopeEntry]) -> Result<(), ExprError> {
        let scan = check::scan(src);
        for u in &scan.uses {
            let (ok, what) = match u.kind {
                UseKind::Filter => (self.exists(true, &u.name), "filter"),
                UseKind::Test => (self.exists(false, &u.name), "test"),
                UseKind::Function => (self.globals.contains(&u.name), "function"),
            };
            if !ok {
                let hint = match u.kind {
                    UseKind::Filter => did_you_mean(&u.name, OUR_FILTERS.iter().copied())
                        .or_else(|| Some("see the filters in docs/templates.md".into())),
                    UseKind::Test => {
                        Some("see MiniJinja's tests: defined, none, number, string…".into())
                    }
                    UseKind::Function => {
                        did_you_mean(&u.name, self.globals.iter().map(String::as_str))
                            .or_else(|| Some(format!("functions are: {}", self.globals.join(", "))))
                    }
                };
                return Err(ExprError {
                    offset: u.at,
                    message: format!("unknown {what} '{}'", u.name),
                    hint,
                });
            }
        }
        for op in &scan.ops {
            self.check_arith(op, scope)?;
        }
        for chain in &scan.chains {
            let mut cur: Input = match &chain.operand {
                Operand::Text => Some((Ty::Text, "the value is a string literal".into(), false)),
                Operand::Number => Some((Ty::Num, "the value is a number".into(), false)),
                Operand::Path(head, segs) => self.path_type(head, segs, scope).map(|t| {
                    let (ty, name) = ty_of(&t);
                    let from = format!("'{}' is declared as {name}", show_path(head, segs));
                    (ty, from, true)
                }),
            };
            for f in &chain.filters {
                if OUR_FILTERS.contains(&f.name.as_str()) {
                    let args = match &f.args {
                        Some(a) => literal_args(a),
                        None => Some(Vec::new()),
                    };
                    if let Some(args) = args
                        && let Err(message) = fast_filter(&f.name, &args)
                    {
                        return Err(ExprError {
                            offset: f.at,
                            message,
                            hint: None,
                        });
                    }
                }
                cur = apply_type(&f.name, cur).map_err(|(message, hint)| ExprError {
                    offset: f.at,
                    message,
                    hint,
                })?;
            }
        }
        Ok(())
    }

    /// Refuses binary floating point on amounts: an arithmetic operator beside a
    /// non-integer number (a `decimal` or `number` field, a literal with a fraction, an
    /// exact filter's result), and `/` (which always gives a float) beside any number.
    fn check_arith(&self, op: &Arith, scope: &[ScopeEntry]) -> Result<(), ExprError> {
        use super::schema::Scalar;
        // (is a number, is a non-integer, how to name it)
        let class = |side: &Option<Side>| -> Option<(bool, String)> {
            match side.as_ref()? {
                Side::Number(frac) => Some((*frac, "a number literal".into())),
                Side::Filtered(f) => AMOUNT_FILTERS
                    .contains(&f.as_str())
                    .then(|| (true, format!("the result of '{f}'"))),
                Side::Path(head, segs) => match self.path_type(head, segs, scope)? {
                    FieldType::Scalar(s @ (Scalar::Decimal(_) | Scalar::Number)) => Some((
                        true,
                        format!("'{}' (declared as {})", show_path(head, segs), s.name()),
                    )),
                    FieldType::Scalar(Scalar::Integer) => Some((
                        false,
                        format!("'{}' (declared as integer)", show_path(head, segs)),
                    )),
                    _ => None,
                },
            }
        };
        let sides = [class(&op.left), class(&op.right)];
        let fraction = sides.iter().flatten().find(|(f, _)| *f);
        let number = sides.iter().flatten().next();
        let what = match (op.op.as_str(), fraction, number) {
            (_, Some((_, what)), _) => what.clone(),
            ("/", None, Some((_, what))) => what.clone(),
            _ => return Ok(()),
        };
        let (message, hint) = if op.op == "/" && fraction.is_none() {
            (
                format!("'/' on {what} divides in binary floating point"),
                "use '//' for a whole-number quotient, or `x | divided_by(y, 2)` for an exact one",
            )
        } else {
            (
                format!(
                    "'{}' on {what} computes in binary floating point, not exactly",
                    op.op
                ),
                "use the exact filters: `a | plus(b)`, `a | minus(b)`, `a | times(b)`, `a | divided_by(b, 2)`",
            )
        };
        Err(ExprError {
            offset: op.at,
            message,
            hint: Some(hint.into()),
        })
    }

    /// Checks that every name a MiniJinja expression reads is a declared field (down to
    /// nested fields of declared objects), a name in scope or a global; returns the record
    /// fields it uses and the one path it reads, if it reads exactly one.
    fn check_names(
        &self,
        name: &str,
        src: &str,
        scope: &[ScopeEntry],
    ) -> Result<(Vec<String>, Option<FastExpr>), ExprError> {
        let t = self.env.get_template(name).map_err(|e| ExprError {
            offset: 0,
            message: e.to_string(),
            hint: None,
        })?;
        let mut names: Vec<String> = t.undeclared_variables(false).into_iter().collect();
        names.sort();
        let mut nested: Vec<String> = t
            .undeclared_variables(true)
            .into_iter()
            .filter(|n| !self.globals.iter().any(|g| n.split('.').next() == Some(g)))
            .collect();
        nested.sort();
        let FieldType::Object(fields) = &self.record else {
            return Ok((names, None));
        };
        let mut roots = Vec::new();
        for n in names {
            let local = scope.iter().any(|s| s.name == n);
            if !local && fields.iter().any(|f| f.name == n) {
                roots.push(n.clone());
            }
            let known = self.globals.contains(&n) || local || fields.iter().any(|f| f.name == n);
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
        let mut reads = Vec::new();
        for dotted in &nested {
            let mut parts = dotted.split('.');
            let head = parts.next().unwrap_or_default();
            let segs: Vec<Segment> = parts.map(|p| Segment::Key(p.to_string())).collect();
            let slot = scope.iter().rposition(|s| s.name == head);
            let found = match slot {
                Some(i) => scope[i].ty.as_ref().map(|t| lookup_in(t, &segs, 1)),
                None => {
                    let mut full = vec![Segment::Key(head.to_string())];
                    full.extend(segs.iter().cloned());
                    Some(lookup_in(&self.record, &full, 0))
                }
            };
            // Only a key missing from a declared object is an error: a key on a scalar may
            // be a method (`name.upper()`).
            if let Some(Lookup::Unknown { index, candidates }) = found
                && !candidates.is_empty()
            {
                let mut e = unknown_field(head, &segs, index, &candidates);
                e.offset = src
                    .find(dotted.as_str())
                    .or_else(|| find_word(src, head))
                    .unwrap_or(0);
                return Err(e);
            }
            reads.push(FastExpr {
                head: match slot {
                    Some(i) => Head::Local(i),
                    None => Head::Record(head.to_string()),
                },
                path: segs,
                filters: Vec::new(),
                filter_at: Vec::new(),
            });
        }
        let reads = if reads.len() == 1 { reads.pop() } else { None };
        Ok((roots, reads))
    }

    fn check_fast(&self, mut fast: FastExpr, scope: &[ScopeEntry]) -> Result<FastExpr, ExprError> {
        let Head::Record(head) = fast.head.clone() else {
            unreachable!("parse_fast yields record heads")
        };
        // Locals shadow record fields; the innermost wins.
        let declared = if let Some(slot) = scope.iter().rposition(|s| s.name == head) {
            let found = scope[slot]
                .ty
                .as_ref()
                .map(|ty| lookup_in(ty, &fast.path, 1));
            if let Some(Lookup::Unknown { index, candidates }) = &found {
                return Err(unknown_field(&head, &fast.path, *index, candidates));
            }
            fast.head = Head::Local(slot);
            match found {
                Some(Lookup::Known(t)) => Some(t),
                _ => None,
            }
        } else {
            let mut full = vec![Segment::Key(head.clone())];
            full.extend(fast.path.iter().cloned());
            match lookup_in(&self.record, &full, 0) {
                Lookup::Unknown { index, candidates } => {
                    let mut candidates = candidates;
                    if index == 0 {
                        candidates.extend(scope.iter().map(|s| s.name.clone()));
                    }
                    return Err(unknown_field(&head, &fast.path, index, &candidates));
                }
                Lookup::Known(t) => Some(t),
                Lookup::Unchecked => None,
            }
        };
        let mut cur: Input = declared.map(|t| {
            let (ty, name) = ty_of(&t);
            (
                ty,
                format!("'{}' is declared as {name}", show_path(&head, &fast.path)),
                true,
            )
        });
        for (f, &at) in fast.filters.iter().zip(&fast.filter_at) {
            cur = apply_type(f.name(), cur).map_err(|(message, hint)| ExprError {
                offset: at,
                message,
                hint,
            })?;
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
    if e.offset == 0 {
        e.offset += src.len() - src.trim_start().len();
    }
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
        while let Some(c) = self.s[self.i..]
            .chars()
            .next()
            .filter(|c| c.is_whitespace())
        {
            self.i += c.len_utf8();
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
            // The literal's own digits: `default(0.10)` is exactly 0.10.
            return n.parse::<serde_json::Number>().ok().map(Value::Number);
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

/// Parses a filter's argument list (`'EUR', 'parens'`) when every argument is a literal.
fn literal_args(src: &str) -> Option<Vec<Value>> {
    let mut c = Cur { s: src, i: 0 };
    let mut args = Vec::new();
    if c.done() {
        return Some(args);
    }
    loop {
        args.push(c.literal()?);
        if c.done() {
            return Some(args);
        }
        if !c.eat(',') {
            return None;
        }
    }
}

/// A filter as written on the fast path: name, literal arguments, offset of the name.
type RawFilter<'a> = (&'a str, Vec<Value>, usize);

/// Parses `path ( '|' filter(literal args) )*`; `None` when not that shape.
fn parse_shape(src: &str) -> Option<(&str, Vec<Segment>, Vec<RawFilter<'_>>)> {
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
        c.ws();
        let at = c.i;
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
        filters.push((name, args, at));
    }
    if !c.done() {
        return None;
    }
    Some((head, path, filters))
}

/// Parses a fast-path expression: `Ok(None)` leaves it to MiniJinja, `Err` is a bad
/// literal argument of one of our filters (offset and message).
fn parse_fast(src: &str) -> Result<Option<FastExpr>, (usize, String)> {
    let Some((head, path, raw)) = parse_shape(src) else {
        return Ok(None);
    };
    let mut filters = Vec::with_capacity(raw.len());
    let mut filter_at = Vec::with_capacity(raw.len());
    for (name, args, at) in raw {
        match fast_filter(name, &args) {
            Ok(Some(f)) => filters.push(f),
            Ok(None) => return Ok(None),
            Err(m) => return Err((at, m)),
        }
        filter_at.push(at);
    }
    Ok(Some(FastExpr {
        head: Head::Record(head.to_string()),
        path,
        filters,
        filter_at,
    }))
}

fn currency_arg(v: &Value) -> Result<Option<Currency>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(c) => Currency::from_code(c)
            .map(Some)
            .map_err(|e| format!("money: currency '{c}': {e}")),
        _ => Err("money: the currency is a code like \"EUR\" or none".into()),
    }
}

fn negative_arg(v: &Value) -> Result<Negative, String> {
    v.as_str()
        .and_then(Negative::parse)
        .ok_or_else(|| "money: the negative style is \"minus\" or \"parens\"".into())
}

/// Builds one of our filters from literal arguments: `Ok(None)` for a filter that is not
/// ours (MiniJinja runs it), `Err` for our filter with arguments it does not take.
fn fast_filter(name: &str, args: &[Value]) -> Result<Option<Filter>, String> {
    Ok(Some(match (name, args) {
        ("money", []) => Filter::Money {
            currency: None,
            negative: Negative::Minus,
        },
        ("money", [cur]) => Filter::Money {
            currency: currency_arg(cur)?,
            negative: Negative::Minus,
        },
        ("money", [cur, neg]) => Filter::Money {
            currency: currency_arg(cur)?,
            negative: negative_arg(neg)?,
        },
        ("money", _) => {
            return Err("money takes a currency code and a negative style, both optional".into());
        }
        ("number", []) => Filter::Number(0),
        ("number", [Value::Number(n)])
            if n.as_u64()
                .is_some_and(|d| d <= u64::from(super::amount::MAX_SCALE)) =>
        {
            Filter::Number(n.as_u64().unwrap_or_default() as u32)
        }
        ("number", _) => return Err("number takes a count of decimals from 0 to 28".into()),
        ("date", []) => Filter::Date("%d %B %Y".into()),
        ("date", [Value::String(f)]) => {
            check_date_format(f).map_err(|bad| format!("date: unsupported directive {bad}"))?;
            Filter::Date(f.clone())
        }
        ("date", _) => return Err("date takes one format string like \"%d %B %Y\"".into()),
        ("upper", []) => Filter::Upper,
        ("lower", []) => Filter::Lower,
        ("credit", []) => Filter::Credit,
        ("debit", []) => Filter::Debit,
        ("upper" | "lower" | "credit" | "debit", _) => {
            return Err(format!("{name} takes no arguments"));
        }
        ("default" | "d", [v]) => Filter::Default(v.clone()),
        _ => return Ok(None),
    }))
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

/// Where a local's value sits in the record, to name the field when it is at fault.
#[derive(Clone, Debug)]
pub enum Origin {
    /// Not a record field (a running total).
    Unknown,
    /// A field path (`run`, `statement`).
    Path(Rc<str>),
    /// Element `i` of the array at a path (`transactions[3]`).
    Elem(Rc<str>, usize),
}

impl Origin {
    fn render(&self) -> Option<String> {
        match self {
            Origin::Unknown => None,
            Origin::Path(p) => Some(p.to_string()),
            Origin::Elem(p, i) => Some(format!("{p}[{i}]")),
        }
    }
}

/// A local in scope: its name, value and origin.
#[derive(Debug)]
struct LocalVar<'a> {
    name: &'a str,
    value: Local<'a>,
    origin: Origin,
}

/// Evaluation state of one document: the record, the locals stack and the lazily
/// converted MiniJinja view of the record.
pub struct Scope<'a> {
    pub record: &'a Value,
    locals: Vec<LocalVar<'a>>,
    env: &'a Environment<'static>,
    fmt: &'a Fmt,
}

static NULL: Value = Value::Null;

/// A value inside a fast filter chain.
enum FVal<'v> {
    Json(&'v Value),
    Dec(Decimal),
    Text(String),
}

impl FVal<'_> {
    fn write(&self, out: &mut String) {
        match self {
            FVal::Json(v) => write_value(v, out),
            FVal::Dec(d) => {
                let _ = write!(out, "{d}");
            }
            FVal::Text(s) => out.push_str(s),
        }
    }
}

impl<'a> Scope<'a> {
    /// Starts a document scope; `run` is slot 0.
    pub fn new(record: &'a Value, run: Value, env: &'a Environment<'static>, fmt: &'a Fmt) -> Self {
        Self {
            record,
            locals: vec![LocalVar {
                name: RUN,
                value: Local::Owned(run),
                origin: Origin::Path(RUN.into()),
            }],
            env,
            fmt,
        }
    }

    /// Brings a local into scope (a loop element, a running total).
    pub fn push(&mut self, name: &'a str, value: Local<'a>, origin: Origin) {
        self.locals.push(LocalVar {
            name,
            value,
            origin,
        });
    }

    /// Takes the innermost local out of scope.
    pub fn pop(&mut self) {
        self.locals.pop();
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
            Head::Local(i) => match &self.locals[*i].value {
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
            Head::Local(i) => self.locals[*i].value.get(),
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

    /// The record field path a fast expression reads (`transactions[3].amount`).
    fn fast_path(&self, f: &FastExpr) -> Option<String> {
        let mut s = match &f.head {
            Head::Local(i) => self.locals[*i].origin.render()?,
            Head::Record(k) => k.clone(),
        };
        for seg in &f.path {
            match seg {
                Segment::Key(k) => {
                    if !s.is_empty() {
                        s.push('.');
                    }
                    s.push_str(k);
                }
                Segment::Index(i) => {
                    let _ = write!(s, "[{i}]");
                }
            }
        }
        Some(s)
    }

    /// The record field an expression reads, when it reads exactly one.
    pub fn path(&self, e: &Expr) -> Option<String> {
        match e {
            Expr::Fast(f) => self.fast_path(f),
            Expr::Jinja(j) => j.reads.as_ref().and_then(|f| self.fast_path(f)),
        }
    }

    /// The record field a text template reads, when it interpolates exactly one.
    pub fn text_path(&self, parts: &[TextPart]) -> String {
        let mut exprs = parts.iter().filter_map(|p| match p {
            TextPart::Expr(e) => Some(e),
            TextPart::Lit(_) => None,
        });
        match (exprs.next(), exprs.next()) {
            (Some(e), None) => self.path(e).unwrap_or_default(),
            _ => String::new(),
        }
    }

    /// A record-facing error about what a fast expression reads.
    fn fast_err(&self, f: &FastExpr, reason: String) -> FieldError {
        FieldError {
            path: self.fast_path(f).unwrap_or_default(),
            reason,
        }
    }

    /// The context of a MiniJinja expression: the locals, only the record fields the
    /// expression names (converting a statement's 150 transactions for a test on its
    /// balance would cost more than the rest of the document's binding), and the
    /// document's currency for `money`.
    fn jinja_ctx(&self, j: &JinjaExpr) -> J {
        let mut map: BTreeMap<String, J> = BTreeMap::new();
        for l in &self.locals {
            let origin = l.origin.render();
            let v = jinja::to_jinja(l.value.get(), &jinja::Path::Root(origin.as_deref()));
            map.insert(l.name.to_string(), v);
        }
        for r in &j.roots {
            if let (false, Some(v)) = (map.contains_key(r), self.record.get(r)) {
                map.insert(r.clone(), jinja::to_jinja(v, &jinja::Path::Root(Some(r))));
            }
        }
        map.insert(
            jinja::CURRENCY_KEY.to_string(),
            J::from(self.fmt.currency.code()),
        );
        J::from(map)
    }

    fn jinja_err(&self, j: &JinjaExpr, e: &minijinja::Error) -> FieldError {
        let (path, reason) = jinja::failure(e);
        FieldError {
            path: path
                .or_else(|| j.reads.as_ref().and_then(|f| self.fast_path(f)))
                .unwrap_or_default(),
            reason,
        }
    }

    /// Evaluates a `Test` or `Value` MiniJinja expression to its value.
    fn jinja_value(&self, j: &JinjaExpr) -> Result<J, FieldError> {
        let t = self
            .env
            .get_template(&j.name)
            .map_err(|e| self.jinja_err(j, &e))?;
        let captured = t
            .render_captured(self.jinja_ctx(j))
            .map_err(|e| self.jinja_err(j, &e))?;
        Ok(captured.state().lookup("__v").unwrap_or_default())
    }

    /// Appends the text of an expression to `out`.
    pub fn write(&self, e: &Expr, out: &mut String) -> Result<(), FieldError> {
        match e {
            Expr::Fast(f) => self.write_fast(f, out),
            Expr::Jinja(j) => {
                let t = self
                    .env
                    .get_template(&j.name)
                    .map_err(|e| self.jinja_err(j, &e))?;
                let s = t
                    .render(self.jinja_ctx(j))
                    .map_err(|e| self.jinja_err(j, &e))?;
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

    /// Evaluates an expression for truthiness (Jinja rules; zero in any spelling is false).
    pub fn truthy(&self, e: &Expr) -> Result<bool, FieldError> {
        match e {
            Expr::Fast(f) => Ok(match self.resolve(f) {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => !is_zero_text(n.as_str()),
                Value::String(s) => !s.is_empty(),
                Value::Array(a) => !a.is_empty(),
                Value::Object(o) => !o.is_empty(),
            }),
            Expr::Jinja(j) => {
                let v = self.jinja_value(j)?;
                jinja::check_finite(&v).map_err(|e| self.jinja_err(j, &e))?;
                Ok(v.is_true())
            }
        }
    }

    /// Evaluates an expression to a value (borrowed from the record on the fast path).
    pub fn value(&self, e: &Expr) -> Result<Cow<'_, Value>, FieldError> {
        match e {
            Expr::Fast(f) if f.filters.is_empty() => Ok(Cow::Borrowed(self.resolve(f))),
            Expr::Fast(f) => Ok(Cow::Owned(match self.eval_fast(f)? {
                FVal::Json(v) => v.clone(),
                FVal::Dec(d) => Value::Number(json_number(d)),
                FVal::Text(s) => Value::String(s),
            })),
            Expr::Jinja(j) => {
                let v = self.jinja_value(j)?;
                if v.is_undefined() {
                    return Ok(Cow::Owned(Value::Null));
                }
                jinja::from_jinja(&v)
                    .map(Cow::Owned)
                    .map_err(|e| self.jinja_err(j, &e))
            }
        }
    }

    /// Reads the value an expression gives as an exact amount (`None` when missing).
    pub fn amount(&self, e: &Expr, what: &str) -> Result<Option<Decimal>, FieldError> {
        let v = self.value(e)?;
        let path = || self.path(e).unwrap_or_default();
        match decimal_of(&FVal::Json(&v), what) {
            Ok(d) => Ok(Some(d)),
            Err(_) if v.is_null() => Ok(None),
            Err(reason) => Err(FieldError {
                path: path(),
                reason,
            }),
        }
    }

    fn eval_fast<'s>(&'s self, f: &'s FastExpr) -> Result<FVal<'s>, FieldError> {
        let mut cur = FVal::Json(self.resolve(f));
        for filter in &f.filters {
            cur = self
                .apply(filter, cur)
                .map_err(|reason| self.fast_err(f, reason))?;
        }
        Ok(cur)
    }

    fn write_fast(&self, f: &FastExpr, out: &mut String) -> Result<(), FieldError> {
        if f.filters.is_empty() {
            write_value(self.resolve(f), out);
            return Ok(());
        }
        self.eval_fast(f)?.write(out);
        Ok(())
    }

    fn apply<'s>(&'s self, filter: &'s Filter, v: FVal<'s>) -> Result<FVal<'s>, String> {
        let loc = &self.fmt.locale;
        if matches!(v, FVal::Json(Value::Null)) {
            return Ok(match filter {
                Filter::Default(d) => FVal::Json(d),
                _ => v,
            });
        }
        Ok(match filter {
            Filter::Credit | Filter::Debit => {
                let x = decimal_of(&v, filter.name())?;
                let x = if *filter == Filter::Credit { x } else { -x };
                if x > Decimal::ZERO {
                    FVal::Dec(x)
                } else {
                    FVal::Json(&NULL)
                }
            }
            Filter::Money { currency, negative } => FVal::Text(format_money(
                decimal_of(&v, "money")?,
                currency.as_ref().unwrap_or(&self.fmt.currency),
                *negative,
                loc,
                self.fmt.rounding,
            )),
            Filter::Number(d) => FVal::Text(format_number(
                decimal_of(&v, "number")?,
                *d,
                loc,
                self.fmt.rounding,
            )),
            Filter::Date(format) => {
                let FVal::Json(Value::String(s)) = &v else {
                    return Err(format!(
                        "date expects a date YYYY-MM-DD, found {}",
                        kind(&v)
                    ));
                };
                let d = parse_date(s).ok_or_else(|| format!("date: {DATE_REASON}"))?;
                FVal::Text(format_date(d, format, loc))
            }
            Filter::Upper | Filter::Lower => {
                let mut s = String::new();
                v.write(&mut s);
                FVal::Text(if *filter == Filter::Upper {
                    s.to_uppercase()
                } else {
                    s.to_lowercase()
                })
            }
            Filter::Default(_) => v,
        })
    }
}

fn kind(v: &FVal<'_>) -> &'static str {
    match v {
        FVal::Json(v) => json_kind(v),
        FVal::Dec(_) => "number",
        FVal::Text(_) => "text",
    }
}

/// Reads a value as an exact amount: a JSON number's own digits or a decimal string.
fn decimal_of(v: &FVal<'_>, filter: &str) -> Result<Decimal, String> {
    let amount = |e: AmountError| format!("{filter}: the amount is {e}");
    match v {
        FVal::Dec(d) => Ok(*d),
        FVal::Json(Value::Number(n)) => parse_json_number(n.as_str()).map_err(amount),
        FVal::Json(Value::String(s)) => parse_decimal_str(s).map_err(|e| match e {
            AmountError::Syntax => {
                format!("{filter} expects a number, found a string that is not one")
            }
            e => amount(e),
        }),
        other => Err(format!("{filter} expects a number, found {}", kind(other))),
    }
}

/// Writes a JSON value as text: strings as is, numbers as written, missing as "".
fn write_value(v: &Value, out: &mut String) {
    match v {
        Value::Null => {}
        Value::String(s) => out.push_str(s),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(n.as_str()),
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

#[cfg(test)]
mod tests;
