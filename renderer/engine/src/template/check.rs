//! Static checks of MiniJinja expressions: a lexical scan (Jinja's token grammar, not
//! MiniJinja's unstable parser API) that finds the filters, tests and functions an
//! expression names and the filter chains applied to a plain field path or literal.

use super::schema::Segment;

/// What a token is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Ident,
    Str,
    Num,
    Punct,
}

/// One token of an expression with its byte offset.
#[derive(Clone, Copy, Debug)]
struct Token<'a> {
    kind: Kind,
    text: &'a str,
    at: usize,
}

const KEYWORDS: [&str; 13] = [
    "true", "false", "none", "True", "False", "None", "not", "and", "or", "in", "is", "if", "else",
];

fn tokens(src: &str) -> Vec<Token<'_>> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        let kind = if c.is_ascii_whitespace() {
            i += 1;
            continue;
        } else if c == b'"' || c == b'\'' {
            i += 1;
            while i < b.len() && b[i] != c {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i = (i + 1).min(b.len());
            Kind::Str
        } else if c.is_ascii_digit() {
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
                i += 1;
            }
            if i + 1 < b.len() && b[i] == b'.' && b[i + 1].is_ascii_digit() {
                i += 1;
                while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
                    i += 1;
                }
            }
            if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
                let mut j = i + 1;
                if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
                    j += 1;
                }
                if j < b.len() && b[j].is_ascii_digit() {
                    i = j;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                }
            }
            Kind::Num
        } else if c.is_ascii_alphabetic() || c == b'_' {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            Kind::Ident
        } else {
            let two = src.get(i..i + 2).unwrap_or("");
            i += if ["**", "//", "==", "!=", "<=", ">="].contains(&two) {
                2
            } else {
                src[i..].chars().next().map_or(1, char::len_utf8)
            };
            Kind::Punct
        };
        out.push(Token {
            kind,
            text: &src[start..i.min(src.len())],
            at: start,
        });
    }
    out
}

/// What a name is used as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UseKind {
    Filter,
    Test,
    Function,
}

/// A filter, test or function an expression names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Use {
    pub kind: UseKind,
    pub name: String,
    pub at: usize,
}

/// What a filter chain starts from.
#[derive(Clone, Debug, PartialEq)]
pub enum Operand {
    /// A plain field path: its head name and the steps below it.
    Path(String, Vec<Segment>),
    /// A string literal.
    Text,
    /// A number literal.
    Number,
}

/// One filter of a chain: its name, offset and the source of its arguments.
#[derive(Clone, Debug, PartialEq)]
pub struct Applied {
    pub name: String,
    pub at: usize,
    pub args: Option<String>,
}

/// `operand | f(args) | g(args)…` found in an expression.
#[derive(Clone, Debug, PartialEq)]
pub struct Chain {
    pub operand: Operand,
    pub filters: Vec<Applied>,
}

/// What stands right beside an arithmetic operator.
#[derive(Clone, Debug, PartialEq)]
pub enum Side {
    /// A plain field path (or a parenthesised one).
    Path(String, Vec<Segment>),
    /// A number literal; `true` when it has a fraction or an exponent.
    Number(bool),
    /// A filter chain; the name of its last filter.
    Filtered(String),
}

/// A binary arithmetic operator (`+ - * / // % **`) and its operands, where the scan can
/// tell them (a computed operand such as `(a + b)` is `None`).
#[derive(Clone, Debug, PartialEq)]
pub struct Arith {
    pub op: String,
    pub at: usize,
    pub left: Option<Side>,
    pub right: Option<Side>,
}

/// The result of a scan.
#[derive(Debug, Default)]
pub struct Scan {
    pub uses: Vec<Use>,
    pub chains: Vec<Chain>,
    pub ops: Vec<Arith>,
}

const ARITH: [&str; 7] = ["+", "-", "*", "/", "//", "%", "**"];

/// Whether a token ends an operand, so an operator after it is binary.
fn ends_operand(t: &Token<'_>) -> bool {
    match t.kind {
        Kind::Ident => {
            !KEYWORDS.contains(&t.text)
                || ["true", "false", "none", "True", "False", "None"].contains(&t.text)
        }
        Kind::Str | Kind::Num => true,
        Kind::Punct => t.text == ")" || t.text == "]",
    }
}

fn is(t: Option<&Token<'_>>, kind: Kind, text: &str) -> bool {
    t.is_some_and(|t| t.kind == kind && t.text == text)
}

fn ident(t: Option<&Token<'_>>) -> bool {
    t.is_some_and(|t| t.kind == Kind::Ident)
}

/// Index of the `)` matching the `(` at `open`.
fn close_of(toks: &[Token<'_>], open: usize) -> Option<usize> {
    let mut depth = 0;
    for (i, t) in toks.iter().enumerate().skip(open) {
        if t.kind == Kind::Punct {
            match t.text {
                "(" | "[" | "{" => depth += 1,
                ")" | "]" | "}" => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(i);
                    }
                }
                _ => {}
            }
        }
    }
    None
}

/// Reads `ident ( .ident | [int] )*` at `i`; returns the path and the index after it.
fn path_at(toks: &[Token<'_>], mut i: usize) -> Option<(String, Vec<Segment>, usize)> {
    let t = toks.get(i)?;
    if t.kind != Kind::Ident || KEYWORDS.contains(&t.text) {
        return None;
    }
    let head = t.text.to_string();
    let mut segs = Vec::new();
    i += 1;
    loop {
        if is(toks.get(i), Kind::Punct, ".") && ident(toks.get(i + 1)) {
            segs.push(Segment::Key(toks[i + 1].text.to_string()));
            i += 2;
        } else if is(toks.get(i), Kind::Punct, "[")
            && toks.get(i + 1).is_some_and(|t| t.kind == Kind::Num)
            && is(toks.get(i + 2), Kind::Punct, "]")
        {
            segs.push(Segment::Index(toks[i + 1].text.parse().ok()?));
            i += 3;
        } else {
            break;
        }
    }
    // A method call or a computed subscript is not a plain path.
    if is(toks.get(i), Kind::Punct, "(") || is(toks.get(i), Kind::Punct, "[") {
        return None;
    }
    Some((head, segs, i))
}

/// Scans an expression.
pub fn scan(src: &str) -> Scan {
    let toks = tokens(src);
    let mut out = Scan::default();
    // Names that are filter or test names, not operands or functions.
    let mut named = vec![false; toks.len()];
    for i in 0..toks.len() {
        let prev = i.checked_sub(1).map(|p| &toks[p]);
        if is(Some(&toks[i]), Kind::Punct, "|") && ident(toks.get(i + 1)) {
            named[i + 1] = true;
            out.uses.push(Use {
                kind: UseKind::Filter,
                name: toks[i + 1].text.to_string(),
                at: toks[i + 1].at,
            });
        } else if is(Some(&toks[i]), Kind::Ident, "is") && prev.is_some() {
            let j = if is(toks.get(i + 1), Kind::Ident, "not") {
                i + 2
            } else {
                i + 1
            };
            if ident(toks.get(j)) {
                named[j] = true;
                out.uses.push(Use {
                    kind: UseKind::Test,
                    name: toks[j].text.to_string(),
                    at: toks[j].at,
                });
            }
        } else if toks[i].kind == Kind::Ident
            && !named[i]
            && !KEYWORDS.contains(&toks[i].text)
            && is(toks.get(i + 1), Kind::Punct, "(")
            && !is(prev, Kind::Punct, ".")
        {
            out.uses.push(Use {
                kind: UseKind::Function,
                name: toks[i].text.to_string(),
                at: toks[i].at,
            });
        }
    }
    // Operands: the token they start at, the token after their end, what they are.
    let mut spans: Vec<(usize, usize, Side)> = Vec::new();
    for i in 0..toks.len() {
        if named[i] {
            continue;
        }
        let prev = i.checked_sub(1).map(|p| &toks[p]);
        if is(prev, Kind::Punct, ".") {
            continue;
        }
        let t = &toks[i];
        let start = match t.kind {
            Kind::Str => Some((Operand::Text, i + 1)),
            Kind::Num => Some((Operand::Number, i + 1)),
            Kind::Ident => path_at(&toks, i).map(|(h, s, j)| (Operand::Path(h, s), j)),
            Kind::Punct
                if t.text == "("
                    && !prev.is_some_and(|p| {
                        p.kind == Kind::Ident && !KEYWORDS.contains(&p.text)
                            || p.kind == Kind::Punct && (p.text == ")" || p.text == "]")
                    }) =>
            {
                path_at(&toks, i + 1)
                    .filter(|&(_, _, j)| is(toks.get(j), Kind::Punct, ")"))
                    .map(|(h, s, j)| (Operand::Path(h, s), j + 1))
            }
            _ => None,
        };
        let Some((operand, mut j)) = start else {
            continue;
        };
        let mut filters = Vec::new();
        while is(toks.get(j), Kind::Punct, "|") && ident(toks.get(j + 1)) {
            let name = toks[j + 1];
            j += 2;
            let mut args = None;
            if is(toks.get(j), Kind::Punct, "(")
                && let Some(close) = close_of(&toks, j)
            {
                args = Some(src[toks[j].at + 1..toks[close].at].to_string());
                j = close + 1;
            }
            filters.push(Applied {
                name: name.text.to_string(),
                at: name.at,
                args,
            });
        }
        let side = match (filters.last(), &operand) {
            (Some(f), _) => Side::Filtered(f.name.clone()),
            (None, Operand::Path(h, s)) => Side::Path(h.clone(), s.clone()),
            (None, Operand::Number) => Side::Number(t.text.contains(['.', 'e', 'E'])),
            (None, Operand::Text) => continue,
        };
        spans.push((i, j, side));
        if !filters.is_empty() {
            out.chains.push(Chain { operand, filters });
        }
    }
    // A group `( operand )` is that operand; inner groups close first.
    let mut groups: Vec<(usize, usize)> = (0..toks.len())
        .filter(|&o| is(toks.get(o), Kind::Punct, "(") && (o == 0 || !ends_operand(&toks[o - 1])))
        .filter_map(|o| close_of(&toks, o).map(|c| (o, c)))
        .collect();
    groups.sort_by_key(|&(_, c)| c);
    for (o, c) in groups {
        if let Some(side) = spans
            .iter()
            .find(|(s, e, _)| *s == o + 1 && *e == c)
            .map(|(_, _, side)| side.clone())
        {
            spans.push((o, c + 1, side));
        }
    }
    let mut starts: Vec<Option<Side>> = vec![None; toks.len() + 1];
    let mut ends: Vec<Option<Side>> = vec![None; toks.len() + 1];
    for (s, e, side) in spans {
        starts[s] = Some(side.clone());
        ends[e] = Some(side);
    }
    for (i, t) in toks.iter().enumerate() {
        let binary = i > 0 && ends_operand(&toks[i - 1]);
        if t.kind != Kind::Punct || !ARITH.contains(&t.text) || !binary {
            continue;
        }
        // A unary sign after the operator belongs to the right operand.
        let r = if toks
            .get(i + 1)
            .is_some_and(|n| n.kind == Kind::Punct && (n.text == "-" || n.text == "+"))
        {
            i + 2
        } else {
            i + 1
        };
        out.ops.push(Arith {
            op: t.text.to_string(),
            at: t.at,
            left: ends[i].clone(),
            right: starts.get(r).cloned().flatten(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(src: &str) -> Vec<(UseKind, String, usize)> {
        scan(src)
            .uses
            .into_iter()
            .map(|u| (u.kind, u.name, u.at))
            .collect()
    }

    #[test]
    fn finds_filters_tests_and_functions() {
        use UseKind::*;
        assert_eq!(
            names("x | nosuchfilter"),
            vec![(Filter, "nosuchfilter".into(), 4)]
        );
        assert_eq!(
            names("a is not odd and b is defined or range(3) | length > 0"),
            vec![
                (Test, "odd".into(), 9),
                (Test, "defined".into(), 22),
                (Function, "range".into(), 33),
                (Filter, "length".into(), 44),
            ]
        );
        // Strings, method calls and keywords are not names.
        assert_eq!(names("'a | b' ~ x.upper() ~ not (y)"), vec![]);
        assert_eq!(
            names("x is divisibleby(3)"),
            vec![(Test, "divisibleby".into(), 5)]
        );
    }

    #[test]
    fn finds_chains_on_paths_and_literals() {
        let s = scan("a + customer.name | upper | money('EUR', 'parens') ~ (tx[0].amount) | money");
        assert_eq!(s.chains.len(), 2);
        assert_eq!(
            s.chains[0].operand,
            Operand::Path("customer".into(), vec![Segment::Key("name".into())])
        );
        let f: Vec<&str> = s.chains[0]
            .filters
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(f, ["upper", "money"]);
        assert_eq!(
            s.chains[0].filters[1].args.as_deref(),
            Some("'EUR', 'parens'")
        );
        assert_eq!(
            s.chains[1].operand,
            Operand::Path(
                "tx".into(),
                vec![Segment::Index(0), Segment::Key("amount".into())]
            )
        );
        assert_eq!(scan("'x' | money").chains[0].operand, Operand::Text);
        // A call result or a computed expression is not a known operand.
        assert!(scan("f(x) | money").chains.is_empty());
        assert!(scan("(a + b) | money").chains.is_empty());
        assert!(scan("a.b() | money").chains.is_empty());
    }
}
