//! Locale-aware formatting of money, numbers and dates for the template filters.

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

/// Rounds an amount to integer cents, half away from zero.
pub fn to_cents(x: f64) -> i64 {
    (x * 100.0).round() as i64
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

/// Writes the integer part with group separators.
fn push_grouped(out: &mut String, mut n: u64, group: &str) {
    let mut digits = [0u8; 20];
    let mut len = 0;
    loop {
        digits[len] = (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in (0..len).rev() {
        out.push((b'0' + digits[i]) as char);
        if i > 0 && i % 3 == 0 {
            out.push_str(group);
        }
    }
}

/// Formats `x` with `decimals` fraction digits (half away from zero) and group separators.
pub fn format_number(x: f64, decimals: u32, locale: &Locale) -> String {
    let decimals = decimals.min(9);
    let scale = 10u64.pow(decimals);
    let scaled = (x.abs() * scale as f64).round() as u64;
    let mut out = String::with_capacity(16);
    if x < 0.0 && scaled != 0 {
        out.push('-');
    }
    push_grouped(&mut out, scaled / scale, locale.group);
    if decimals > 0 {
        out.push(locale.decimal);
        let frac = scaled % scale;
        let s = frac.to_string();
        for _ in s.len()..decimals as usize {
            out.push('0');
        }
        out.push_str(&s);
    }
    out
}

/// Formats a money amount in `currency` (ISO 4217 code) for `locale`.
pub fn format_money(x: f64, currency: &str, negative: Negative, locale: &Locale) -> String {
    let cents = to_cents(x);
    let neg = cents < 0;
    let abs = cents.unsigned_abs();
    let mut digits = String::with_capacity(16);
    push_grouped(&mut digits, abs / 100, locale.group);
    digits.push(locale.decimal);
    let c = abs % 100;
    digits.push((b'0' + (c / 10) as u8) as char);
    digits.push((b'0' + (c % 10) as u8) as char);
    let sym = symbol(currency, locale);
    let sym = if sym.is_empty() { currency } else { sym };
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

    #[test]
    fn money_per_locale() {
        let m = |x, cur, l| format_money(x, cur, Negative::Minus, &loc(l));
        assert_eq!(m(1234.5, "GBP", "en-GB"), "£1,234.50");
        assert_eq!(m(-1234.5, "GBP", "en-GB"), "-£1,234.50");
        assert_eq!(m(1234567.891, "USD", "en-US"), "$1,234,567.89");
        assert_eq!(m(1234.5, "EUR", "de-DE"), "1.234,50\u{A0}€");
        assert_eq!(m(-1234.5, "EUR", "de-DE"), "-1.234,50\u{A0}€");
        assert_eq!(m(1234.5, "EUR", "fr-FR"), "1\u{202F}234,50\u{A0}€");
        assert_eq!(m(-1234.5, "EUR", "nl-NL"), "€\u{A0}-1.234,50");
        assert_eq!(m(0.0, "GBP", "en-GB"), "£0.00");
        assert_eq!(m(5.0, "SEK", "en-GB"), "SEK\u{A0}5.00");
        assert_eq!(
            format_money(-1234.56, "GBP", Negative::Parens, &loc("en-GB")),
            "(£1,234.56)"
        );
    }

    #[test]
    fn money_rounds_half_away_from_zero() {
        let l = loc("en-GB");
        assert_eq!(format_money(0.125, "GBP", Negative::Minus, &l), "£0.13");
        assert_eq!(format_money(-0.125, "GBP", Negative::Minus, &l), "-£0.13");
        assert_eq!(format_money(-0.004, "GBP", Negative::Minus, &l), "£0.00");
        assert_eq!(to_cents(19.995), 2000);
    }

    #[test]
    fn numbers() {
        assert_eq!(format_number(1234567.891, 2, &loc("en-GB")), "1,234,567.89");
        assert_eq!(format_number(1234567.891, 0, &loc("de-DE")), "1.234.568");
        assert_eq!(format_number(-0.5, 1, &loc("nl-NL")), "-0,5");
        assert_eq!(format_number(999.0, 3, &loc("en-US")), "999.000");
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
