//! Exact amounts: JSON number text and decimal strings read into [`Decimal`] without a
//! binary floating-point round trip, and the checks that keep arithmetic exact.

use rust_decimal::Decimal;

/// Why a number cannot be an exact decimal amount. The texts name the kind of problem,
/// never the value (they end up in exception files).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// Not number syntax at all.
    #[error("not a decimal number")]
    Syntax,
    /// More significant digits or a larger magnitude than a 96-bit decimal holds.
    #[error(
        "beyond what an exact decimal holds (at most 28 significant digits, magnitude below 7.9e28)"
    )]
    OutOfRange,
    /// More than 28 digits after the decimal point (that are not trailing zeros).
    #[error("more than 28 decimal places")]
    TooPrecise,
}

/// The most digits after the decimal point an amount may have.
pub const MAX_SCALE: u32 = 28;

/// Reads JSON number text (`-12.50`, `1e3`, `2.675`) as an exact decimal.
pub fn parse_json_number(s: &str) -> Result<Decimal, AmountError> {
    parse(s, true)
}

/// Reads a decimal string (`"1234.56"`, `"-0.5"`): optional `-`, digits, optional
/// fraction; no exponent, no spaces, no group separators.
pub fn parse_decimal_str(s: &str) -> Result<Decimal, AmountError> {
    parse(s, false)
}

fn parse(s: &str, exponent: bool) -> Result<Decimal, AmountError> {
    let b = s.as_bytes();
    let mut i = 0;
    let neg = b.first() == Some(&b'-');
    if neg {
        i += 1;
    }
    // The significant digits as an integer (no allocation: this runs for every amount a
    // document shows), without leading zeros; `zeros` counts the zeros seen since the
    // last non-zero digit, which are trailing until another digit follows.
    let mut m: i128 = 0;
    let mut ndigits: u32 = 0;
    let mut zeros: u32 = 0;
    let mut frac_len: i64 = 0;
    let mut seen_digit = false;
    let mut in_frac = false;
    loop {
        match b.get(i) {
            Some(&c @ b'0'..=b'9') => {
                if c == b'0' {
                    zeros += u32::from(ndigits > 0);
                } else {
                    if ndigits + zeros + 1 > 38 {
                        return Err(AmountError::OutOfRange);
                    }
                    m = m * 10i128.pow(zeros + 1) + i128::from(c - b'0');
                    ndigits += zeros + 1;
                    zeros = 0;
                }
                seen_digit = true;
                frac_len += i64::from(in_frac);
            }
            Some(b'.') if !in_frac && seen_digit => {
                in_frac = true;
                if !b.get(i + 1).is_some_and(u8::is_ascii_digit) {
                    return Err(AmountError::Syntax);
                }
            }
            _ => break,
        }
        i += 1;
    }
    if !seen_digit {
        return Err(AmountError::Syntax);
    }
    let mut exp: i64 = 0;
    if exponent && matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        let eneg = match b.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            exp = (exp * 10 + i64::from(b[i] - b'0')).min(1_000_000);
            i += 1;
        }
        if i == start {
            return Err(AmountError::Syntax);
        }
        if eneg {
            exp = -exp;
        }
    }
    if i != b.len() {
        return Err(AmountError::Syntax);
    }
    if ndigits == 0 {
        return Ok(Decimal::ZERO);
    }
    // value = m × 10^(zeros + exp - frac_len); the spelling's own scale is frac_len - exp.
    let written = frac_len - exp;
    let mut scale = written - i64::from(zeros);
    if scale > i64::from(MAX_SCALE) {
        return Err(AmountError::TooPrecise);
    }
    // Keep the written scale (`12.50` stays `12.50`) where the digits allow it.
    while scale < written.min(i64::from(MAX_SCALE)) || scale < 0 {
        match m.checked_mul(10) {
            Some(x) if x <= MAX_MANTISSA => {
                m = x;
                scale += 1;
            }
            _ if scale < 0 => return Err(AmountError::OutOfRange),
            _ => break,
        }
    }
    if m > MAX_MANTISSA {
        return Err(AmountError::OutOfRange);
    }
    if neg {
        m = -m;
    }
    Decimal::try_from_i128_with_scale(m, scale as u32).map_err(|_| AmountError::OutOfRange)
}

/// The largest mantissa a decimal holds (2^96 - 1).
const MAX_MANTISSA: i128 = (1 << 96) - 1;

/// Adds two amounts exactly: `None` when the sum overflows or would need rounding.
pub fn exact_add(a: Decimal, b: Decimal) -> Option<Decimal> {
    let r = a.checked_add(b)?;
    (r.scale() >= a.scale().max(b.scale())).then_some(r)
}

/// A number written as digits and a power of ten, for comparing two spellings of a value.
#[derive(Debug, PartialEq, Eq)]
struct Canonical {
    neg: bool,
    digits: Vec<u8>,
    exp: i64,
}

fn canonical(s: &str) -> Option<Canonical> {
    let b = s.as_bytes();
    let mut i = 0;
    let neg = b.first() == Some(&b'-');
    if neg {
        i += 1;
    }
    let mut digits = Vec::with_capacity(24);
    let mut frac: i64 = 0;
    let mut in_frac = false;
    while i < b.len() {
        match b[i] {
            d @ b'0'..=b'9' => {
                if !(digits.is_empty() && d == b'0') {
                    digits.push(d);
                }
                if in_frac {
                    frac += 1;
                }
            }
            b'.' if !in_frac => in_frac = true,
            b'e' | b'E' => break,
            _ => return None,
        }
        i += 1;
    }
    let mut exp: i64 = 0;
    if i < b.len() {
        exp = s[i + 1..].parse().ok()?;
    }
    while digits.last() == Some(&b'0') {
        digits.pop();
        exp += 1;
    }
    if digits.is_empty() {
        return Some(Canonical {
            neg: false,
            digits,
            exp: 0,
        });
    }
    Some(Canonical {
        neg,
        digits,
        exp: exp - frac,
    })
}

/// The 64-bit float a JSON number text denotes, when that float's shortest spelling is
/// the same value (so an expression that passes it on loses nothing).
pub fn exact_f64(s: &str) -> Option<f64> {
    let f: f64 = s.parse().ok()?;
    if !f.is_finite() {
        return None;
    }
    let back = format!("{f:e}");
    (canonical(s)? == canonical(&back)?).then_some(f)
}

/// The exact decimal a finite float stands for: its shortest round-trip spelling
/// (`1.005_f64` is `1.005`), not its binary expansion.
pub fn decimal_from_f64(f: f64) -> Result<Decimal, AmountError> {
    if !f.is_finite() {
        return Err(AmountError::OutOfRange);
    }
    match parse_json_number(&format!("{f:e}")) {
        // A float far below a cent (1e-30) is zero to any amount.
        Err(AmountError::TooPrecise) if f.abs() < 1e-20 => Ok(Decimal::ZERO),
        r => r,
    }
}

/// A decimal as a JSON number with the same digits (`12.50` stays `12.50`).
pub fn json_number(d: Decimal) -> serde_json::Number {
    d.to_string()
        .parse()
        .expect("a decimal's spelling is JSON number syntax")
}

/// Whether JSON number text denotes zero (any spelling: `0`, `-0.00`, `0e5`).
pub fn is_zero_text(s: &str) -> bool {
    s.bytes()
        .take_while(|&c| c != b'e' && c != b'E')
        .all(|c| matches!(c, b'0' | b'.' | b'-' | b'+'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        parse_json_number(s).unwrap()
    }

    #[test]
    fn json_numbers_are_read_exactly() {
        assert_eq!(d("1.005").to_string(), "1.005");
        assert_eq!(d("-12.50").to_string(), "-12.50");
        assert_eq!(d("1e3").to_string(), "1000");
        assert_eq!(d("2.5E-2").to_string(), "0.025");
        assert_eq!(d("1000000000000000.01").to_string(), "1000000000000000.01");
        assert_eq!(d("0.000").to_string(), "0");
        assert_eq!(
            d("1.50000000000000000000000000000000000").to_string(),
            "1.5000000000000000000000000000"
        );
        assert_eq!(parse_json_number("1e308"), Err(AmountError::OutOfRange));
        assert_eq!(
            parse_json_number("79228162514264337593543950336"),
            Err(AmountError::OutOfRange)
        );
        assert_eq!(
            d("79228162514264337593543950335").to_string(),
            "79228162514264337593543950335"
        );
        assert_eq!(parse_json_number("1e-29"), Err(AmountError::TooPrecise));
        assert_eq!(parse_json_number("1."), Err(AmountError::Syntax));
        assert_eq!(parse_json_number("abc"), Err(AmountError::Syntax));
        assert_eq!(parse_decimal_str("1e3"), Err(AmountError::Syntax));
        assert_eq!(parse_decimal_str("1234.56").unwrap().to_string(), "1234.56");
        assert_eq!(parse_decimal_str(""), Err(AmountError::Syntax));
        assert_eq!(parse_decimal_str("-"), Err(AmountError::Syntax));
        assert_eq!(parse_decimal_str("1,5"), Err(AmountError::Syntax));
    }

    #[test]
    fn sums_are_exact_or_refused() {
        let s = exact_add(d("92000000000000000"), d("92000000000000000")).unwrap();
        let s = exact_add(s, d("92000000000000000")).unwrap();
        assert_eq!(s.to_string(), "276000000000000000");
        assert_eq!(
            exact_add(d("1000000000000000"), d("0.01"))
                .unwrap()
                .to_string(),
            "1000000000000000.01"
        );
        assert_eq!(exact_add(Decimal::MAX, d("1")), None);
        // Representable only by rounding away the fraction: refused, not rounded.
        assert_eq!(
            exact_add(d("79228162514264337593543950334"), d("0.5")),
            None
        );
    }

    #[test]
    fn floats_carry_only_what_they_spell() {
        assert_eq!(exact_f64("1.005"), Some(1.005));
        assert_eq!(exact_f64("2.675"), Some(2.675));
        assert_eq!(exact_f64("1e308"), Some(1e308));
        assert_eq!(exact_f64("-0.0"), Some(-0.0));
        assert_eq!(exact_f64("1000000000000000.01"), None);
        assert_eq!(exact_f64("1e400"), None);
        assert_eq!(decimal_from_f64(1.005).unwrap().to_string(), "1.005");
        assert_eq!(
            decimal_from_f64(0.1 + 0.2).unwrap().to_string(),
            "0.30000000000000004"
        );
        assert_eq!(decimal_from_f64(1e-30).unwrap(), Decimal::ZERO);
        assert_eq!(
            decimal_from_f64(f64::INFINITY),
            Err(AmountError::OutOfRange)
        );
        assert_eq!(decimal_from_f64(1e300), Err(AmountError::OutOfRange));
        assert!(is_zero_text("-0.00") && is_zero_text("0e7") && !is_zero_text("0.01"));
        assert_eq!(json_number(d("12.50")).as_str(), "12.50");
    }
}
