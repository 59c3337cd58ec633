//! Locale-aware formatting of money, numbers and dates for the template filters.

use rust_decimal::{Decimal, RoundingStrategy};

/// Number and date conventions of one locale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Locale {
    /// The tag the template asked for, normalised (`en-GB`).
    pub tag: &'static str,
    group: &'static str,
    decimal: char,
    symbol_style: SymbolStyle,
    months: &'static [&'static str; 12],
    months_short: &'static [&'static str; 12],
}

/// Where the currency symbol goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SymbolStyle {
    /// `-£1,234.50`
    PrefixTight,
    /// `1.234,50 €` (separator is a no-break space)
    Suffix,
    /// `€ -1.234,50`
    PrefixSpaced,
}

const EN_MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const EN_SHORT: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const DE_MONTHS: [&str; 12] = [
    "Januar",
    "Februar",
    "März",
    "April",
    "Mai",
    "Juni",
    "Juli",
    "August",
    "September",
    "Oktober",
    "November",
    "Dezember",
];
const DE_SHORT: [&str; 12] = [
    "Jan.", "Feb.", "März", "Apr.", "Mai", "Juni", "Juli", "Aug.", "Sept.", "Okt.", "Nov.", "Dez.",
];
const FR_MONTHS: [&str; 12] = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
];
const FR_SHORT: [&str; 12] = [
    "janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.",
    "déc.",
];
const NL_MONTHS: [&str; 12] = [
    "januari",
    "februari",
    "maart",
    "april",
    "mei",
    "juni",
    "juli",
    "augustus",
    "september",
    "oktober",
    "november",
    "december",
];
const NL_SHORT: [&str; 12] = [
    "jan", "feb", "mrt", "apr", "mei", "jun", "jul", "aug", "sep", "okt", "nov", "dec",
];

const LOCALES: [Locale; 5] = [
    Locale {
        tag: "en-GB",
        group: ",",
        decimal: '.',
        symbol_style: SymbolStyle::PrefixTight,
        months: &EN_MONTHS,
        months_short: &EN_SHORT,
    },
    Locale {
        tag: "en-US",
        group: ",",
        decimal: '.',
        symbol_style: SymbolStyle::PrefixTight,
        months: &EN_MONTHS,
        months_short: &EN_SHORT,
    },
    Locale {
        tag: "de-DE",
        group: ".",
        decimal: ',',
        symbol_style: SymbolStyle::Suffix,
        months: &DE_MONTHS,
        months_short: &DE_SHORT,
    },
    Locale {
        tag: "fr-FR",
        group: "\u{202F}",
        decimal: ',',
        symbol_style: SymbolStyle::Suffix,
        months: &FR_MONTHS,
        months_short: &FR_SHORT,
    },
    Locale {
        tag: "nl-NL",
        group: ".",
        decimal: ',',
        symbol_style: SymbolStyle::PrefixSpaced,
        months: &NL_MONTHS,
        months_short: &NL_SHORT,
    },
];

impl Locale {
    /// Finds a supported locale by BCP 47 tag (case-insensitive), `None` if unsupported.
    pub fn find(tag: &str) -> Option<Locale> {
        LOCALES
            .iter()
            .find(|l| l.tag.eq_ignore_ascii_case(tag))
            .copied()
    }

    /// Returns the locale for a tag, falling back to `en-GB`.
    pub fn get_or_default(tag: &str) -> Locale {
        Self::find(tag).unwrap_or(LOCALES[0])
    }
}

/// How negative amounts are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Negative {
    /// `-£1,234.56`
    Minus,
    /// `(£1,234.56)`
    Parens,
}

impl Negative {
    /// Parses `"minus"` or `"parens"`.
    pub fn parse(s: &str) -> Option<Negative> {
        match s {
            "minus" | "-" => Some(Negative::Minus),
            "parens" | "()" => Some(Negative::Parens),
            _ => None,
        }
    }
}

/// How amounts are rounded to the digits they are shown with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Rounding {
    /// Ties go away from zero: 0.125 -> 0.13, -0.125 -> -0.13 (the default).
    #[default]
    HalfAwayFromZero,
    /// Ties go to the even digit (banker's rounding): 0.125 -> 0.12, 0.135 -> 0.14.
    HalfEven,
}

impl Rounding {
    /// Parses `"half-away-from-zero"` or `"half-even"`.
    pub fn parse(s: &str) -> Option<Rounding> {
        match s {
            "half-away-from-zero" | "half-up" => Some(Rounding::HalfAwayFromZero),
            "half-even" | "bankers" => Some(Rounding::HalfEven),
            _ => None,
        }
    }

    /// Rounds `x` to `decimals` fraction digits (at most 28) by this rule.
    pub fn round(self, x: Decimal, decimals: u32) -> Decimal {
        x.round_dp_with_strategy(decimals.min(super::amount::MAX_SCALE), self.strategy())
    }

    fn strategy(self) -> RoundingStrategy {
        match self {
            Rounding::HalfAwayFromZero => RoundingStrategy::MidpointAwayFromZero,
            Rounding::HalfEven => RoundingStrategy::MidpointNearestEven,
        }
    }
}

/// A currency as ISO 4217 defines it: its code and its minor units (digits after the
/// decimal point: JPY 0, EUR 2, BHD 3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Currency {
    code: iso_currency::Currency,
    minor_units: u32,
}

/// Why a currency code cannot be used for money.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CurrencyError {
    #[error("unknown currency code, expected an ISO 4217 code like GBP")]
    Unknown,
    #[error(
        "the currency has no minor unit in ISO 4217 (like XAU), so it cannot be shown as money"
    )]
    NoMinorUnit,
}

impl Currency {
    /// Looks up an ISO 4217 alphabetic code (upper case, `GBP`).
    pub fn from_code(code: &str) -> Result<Currency, CurrencyError> {
        let c = iso_currency::Currency::from_code(code).ok_or(CurrencyError::Unknown)?;
        let minor_units = u32::from(c.exponent().ok_or(CurrencyError::NoMinorUnit)?);
        Ok(Currency {
            code: c,
            minor_units,
        })
    }

    /// The alphabetic code.
    pub fn code(&self) -> &'static str {
        self.code.code()
    }

    /// Digits after the decimal point.
    pub fn minor_units(&self) -> u32 {
        self.minor_units
    }
}

fn symbol(currency: &str, locale: &Locale) -> &'static str {
    match currency {
        "GBP" => "£",
        "EUR" => "€",
        "USD" if locale.tag == "en-US" => "$",
        "USD" => "US$",
        "CHF" => "CHF",
        "JPY" => "¥",
        _ => "",
    }
}

/// Writes the decimal digits of `n` into `buf`, least significant first; returns how many.
/// (Amounts nearly always fit a u64, whose division is much cheaper than a u128's.)
fn digits_of(n: u128, buf: &mut [u8; 40]) -> usize {
    let mut len = 0;
    let mut push = |d: u8| {
        buf[len] = d;
        len += 1;
    };
    match u64::try_from(n) {
        Ok(mut n) => loop {
            push((n % 10) as u8);
            n /= 10;
            if n == 0 {
                break;
            }
        },
        Err(_) => {
            let mut n = n;
            loop {
                push((n % 10) as u8);
                n /= 10;
                if n == 0 {
                    break;
                }
            }
        }
    }
    len
}

/// Writes the integer part with group separators.
fn push_grouped(out: &mut String, n: u128, group: &str) {
    let mut digits = [0u8; 40];
    let len = digits_of(n, &mut digits);
    for i in (0..len).rev() {
        out.push((b'0' + digits[i]) as char);
        if i > 0 && i % 3 == 0 {
            out.push_str(group);
        }
    }
}

/// Writes `|x|` rounded to `decimals` digits with group separators; returns whether the
/// rounded value is negative (a value that rounds to zero is not).
fn push_digits(out: &mut String, x: Decimal, decimals: u32, locale: &Locale, r: Rounding) -> bool {
    let rounded = x.round_dp_with_strategy(decimals, r.strategy());
    // After rounding the scale is at most `decimals`.
    let scale = rounded.scale();
    let m = rounded.mantissa().unsigned_abs();
    let pow = 10u128.pow(scale);
    push_grouped(out, m / pow, locale.group);
    if decimals > 0 {
        out.push(locale.decimal);
        let mut digits = [0u8; 40];
        let len = digits_of(m % pow, &mut digits);
        // The fraction's `scale` digits with their leading zeros, then zeros up to `decimals`.
        for _ in len..scale as usize {
            out.push('0');
        }
        for i in (0..len.min(scale as usize)).rev() {
            out.push((b'0' + digits[i]) as char);
        }
        for _ in scale..decimals {
            out.push('0');
        }
    }
    rounded.is_sign_negative() && !rounded.is_zero()
}

/// Formats `x` exactly with `decimals` fraction digits (at most 28), rounded as `rounding`
/// says, with the locale's group separators.
pub fn format_number(x: Decimal, decimals: u32, locale: &Locale, rounding: Rounding) -> String {
    let decimals = decimals.min(super::amount::MAX_SCALE);
    let mut digits = String::with_capacity(16);
    let neg = push_digits(&mut digits, x, decimals, locale, rounding);
    if neg {
        digits.insert(0, '-');
    }
    digits
}

/// Formats a money amount in `currency` for `locale`: exactly, with the currency's
/// ISO 4217 minor units, rounded as `rounding` says.
pub fn format_money(
    x: Decimal,
    currency: &Currency,
    negative: Negative,
    locale: &Locale,
    rounding: Rounding,
) -> String {
    let mut digits = String::with_capacity(16);
    let neg = push_digits(&mut digits, x, currency.minor_units, locale, rounding);
    let code = currency.code();
    let sym = symbol(code, locale);
    let sym = if sym.is_empty() { code } else { sym };
    let minus = if neg && negative == Negative::Minus {
        "-"
    } else {
        ""
    };
    let body = match locale.symbol_style {
        SymbolStyle::PrefixTight if sym.chars().any(|c| !c.is_ascii_alphabetic()) => {
            format!("{minus}{sym}{digits}")
        }
        SymbolStyle::PrefixTight => format!("{minus}{sym}\u{A0}{digits}"),
        SymbolStyle::Suffix => format!("{minus}{digits}\u{A0}{sym}"),
        SymbolStyle::PrefixSpaced => format!("{sym}\u{A0}{minus}{digits}"),
    };
    if neg && negative == Negative::Parens {
        format!("({body})")
    } else {
        body
    }
}

/// A calendar date.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Date {
    pub year: i32,
    pub month: u32,
    pub day: u32,
}

/// Parses a `YYYY-MM-DD` date and checks that it exists in the Gregorian calendar.
pub fn parse_date(s: &str) -> Option<Date> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = &s[r];
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let year = num(0..4)? as i32;
    let month = num(5..7)?;
    let day = num(8..10)?;
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    (day >= 1 && day <= days).then_some(Date { year, month, day })
}

/// Checks a `date` format string, returning the first unsupported directive.
pub fn check_date_format(format: &str) -> Result<(), String> {
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.next() {
                Some('d' | 'e' | 'm' | 'B' | 'b' | 'Y' | 'y' | '%') => {}
                Some(o) => return Err(format!("%{o}")),
                None => return Err("%".into()),
            }
        }
    }
    Ok(())
}

/// Formats a date with a strftime-like format (`%d %e %m %B %b %Y %y %%`).
pub fn format_date(d: Date, format: &str, locale: &Locale) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(format.len() + 8);
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let _ = match chars.next() {
            Some('d') => write!(out, "{:02}", d.day),
            Some('e') => write!(out, "{}", d.day),
            Some('m') => write!(out, "{:02}", d.month),
            Some('B') => write!(out, "{}", locale.months[d.month as usize - 1]),
            Some('b') => write!(out, "{}", locale.months_short[d.month as usize - 1]),
            Some('Y') => write!(out, "{:04}", d.year),
            Some('y') => write!(out, "{:02}", d.year.rem_euclid(100)),
            Some('%') => write!(out, "%"),
            Some(o) => write!(out, "%{o}"),
            None => write!(out, "%"),
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(t: &str) -> Locale {
        Locale::find(t).unwrap()
    }

    fn dec(s: &str) -> Decimal {
        super::super::amount::parse_json_number(s).unwrap()
    }

    fn cur(code: &str) -> Currency {
        Currency::from_code(code).unwrap()
    }

    fn m(x: &str, code: &str, l: &str) -> String {
        format_money(
            dec(x),
            &cur(code),
            Negative::Minus,
            &loc(l),
            Rounding::default(),
        )
    }

    #[test]
    fn money_per_locale() {
        assert_eq!(m("1234.5", "GBP", "en-GB"), "£1,234.50");
        assert_eq!(m("-1234.5", "GBP", "en-GB"), "-£1,234.50");
        assert_eq!(m("1234567.891", "USD", "en-US"), "$1,234,567.89");
        assert_eq!(m("1234.5", "USD", "en-GB"), "US$1,234.50");
        assert_eq!(m("1234.5", "EUR", "de-DE"), "1.234,50\u{A0}€");
        assert_eq!(m("-1234.5", "EUR", "de-DE"), "-1.234,50\u{A0}€");
        assert_eq!(m("1234.5", "EUR", "fr-FR"), "1\u{202F}234,50\u{A0}€");
        assert_eq!(m("-1234.5", "EUR", "nl-NL"), "€\u{A0}-1.234,50");
        assert_eq!(m("0", "GBP", "en-GB"), "£0.00");
        assert_eq!(m("5", "SEK", "en-GB"), "SEK\u{A0}5.00");
        assert_eq!(
            format_money(
                dec("-1234.56"),
                &cur("GBP"),
                Negative::Parens,
                &loc("en-GB"),
                Rounding::default()
            ),
            "(£1,234.56)"
        );
    }

    #[test]
    fn minor_units_come_from_iso_4217() {
        assert_eq!(m("1234", "JPY", "en-GB"), "¥1,234");
        assert_eq!(m("1234.5", "JPY", "en-GB"), "¥1,235");
        assert_eq!(m("1234.5675", "BHD", "en-GB"), "BHD\u{A0}1,234.568");
        assert_eq!(m("-1234.5", "BHD", "de-DE"), "-1.234,500\u{A0}BHD");
        assert_eq!(cur("EUR").minor_units(), 2);
        assert_eq!(Currency::from_code("EURO"), Err(CurrencyError::Unknown));
        assert_eq!(Currency::from_code("gbp"), Err(CurrencyError::Unknown));
        assert_eq!(Currency::from_code("XAU"), Err(CurrencyError::NoMinorUnit));
    }

    #[test]
    fn money_rounds_ties_exactly_in_either_mode() {
        let l = loc("en-GB");
        let g = cur("GBP");
        let both = |x: &str| {
            (
                format_money(dec(x), &g, Negative::Minus, &l, Rounding::HalfAwayFromZero),
                format_money(dec(x), &g, Negative::Minus, &l, Rounding::HalfEven),
            )
        };
        // Each of these is a tie only in decimal: as f64 they sit just below or above it.
        assert_eq!(both("1.005"), ("£1.01".into(), "£1.00".into()));
        assert_eq!(both("1.015"), ("£1.02".into(), "£1.02".into()));
        assert_eq!(both("4.015"), ("£4.02".into(), "£4.02".into()));
        assert_eq!(both("2.675"), ("£2.68".into(), "£2.68".into()));
        assert_eq!(both("2.665"), ("£2.67".into(), "£2.66".into()));
        assert_eq!(both("0.125"), ("£0.13".into(), "£0.12".into()));
        assert_eq!(both("-0.125"), ("-£0.13".into(), "-£0.12".into()));
        assert_eq!(both("-0.004"), ("£0.00".into(), "£0.00".into()));
        assert_eq!(both("19.995"), ("£20.00".into(), "£20.00".into()));
        assert_eq!(both("1000000000000000.01").0, "£1,000,000,000,000,000.01");
        assert_eq!(
            both("79228162514264337593543950335").0,
            "£79,228,162,514,264,337,593,543,950,335.00"
        );
    }

    #[test]
    fn numbers() {
        let n = |x: &str, d, l: &str| format_number(dec(x), d, &loc(l), Rounding::default());
        assert_eq!(n("1234567.891", 2, "en-GB"), "1,234,567.89");
        assert_eq!(n("1234567.891", 0, "de-DE"), "1.234.568");
        assert_eq!(n("-0.5", 1, "nl-NL"), "-0,5");
        assert_eq!(n("999", 3, "en-US"), "999.000");
        assert_eq!(n("1.005", 2, "en-GB"), "1.01");
        assert_eq!(n("-0.4", 0, "en-GB"), "0");
        assert_eq!(
            format_number(dec("2.5"), 0, &loc("en-GB"), Rounding::HalfEven),
            "2"
        );
        assert_eq!(n("0.1", 30, "en-GB").len(), 30);
    }

    #[test]
    fn dates() {
        let d = parse_date("2024-03-05").unwrap();
        assert_eq!(format_date(d, "%d %B %Y", &loc("en-GB")), "05 March 2024");
        assert_eq!(format_date(d, "%e. %B %Y", &loc("de-DE")), "5. März 2024");
        assert_eq!(format_date(d, "%e %B %Y", &loc("fr-FR")), "5 mars 2024");
        assert_eq!(format_date(d, "%d %b %y", &loc("nl-NL")), "05 mrt 24");
        assert_eq!(format_date(d, "%d/%m/%Y", &loc("en-US")), "05/03/2024");
        assert!(parse_date("2024-02-29").is_some());
        assert!(parse_date("2023-02-29").is_none());
        assert!(parse_date("2024-13-01").is_none());
        assert!(parse_date("24-01-01").is_none());
        assert!(check_date_format("%d %Q").is_err());
    }
}
