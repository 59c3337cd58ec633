//! A deterministic, seeded generator of realistic example records for the example templates.
//!
//! Same seed, same records, on every machine: the generator uses ChaCha8 and no clock.

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

/// Example templates that have a generator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Example {
    /// Bank statement (`examples/statement`).
    Statement,
    /// Insurance renewal letter (`examples/insurance-letter`).
    InsuranceLetter,
}

impl Example {
    /// The names the command line accepts, in the order of the variants.
    pub const NAMES: [&'static str; 2] = ["statement", "insurance-letter"];
}

impl std::str::FromStr for Example {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "statement" => Ok(Self::Statement),
            "insurance-letter" => Ok(Self::InsuranceLetter),
            other => Err(format!(
                "unknown example '{other}': use statement or insurance-letter"
            )),
        }
    }
}

const GIVEN: &[&str] = &[
    "Anna",
    "José",
    "Zoë",
    "Łukasz",
    "Søren",
    "Renée",
    "François",
    "Mária",
    "Ἑλένη",
    "Дмитрий",
    "Oliver",
    "Amélie",
    "Björn",
    "Nuño",
    "Siobhán",
    "Chloé",
    "Mohammed",
    "Priya",
    "Hans-Jürgen",
    "Marie-Thérèse",
    "William",
    "Jürgen",
    "Ægir",
    "Žofie",
    "Ewa",
    "Grace",
    "Κωνσταντίνος",
    "Анастасия",
];
const FAMILY: &[&str] = &[
    "Müller",
    "García",
    "O'Connor",
    "Nowak",
    "Dubois",
    "Østergaard",
    "Smith",
    "Schröder",
    "Papadopoulos",
    "Ivanova",
    "van der Berg",
    "Kowalczyk",
    "Fernández de Córdoba y Aguilar",
    "Brown",
    "Lefèvre",
    "Nuñez",
    "Wójcik",
    "Jensen",
    "Taylor",
    "Öztürk",
    "Bergström-Halvorsen",
    "Ní Bhriain",
];
const TITLES: &[&str] = &["Mr", "Ms", "Mrs", "Dr", "Prof."];
const STREETS: &[&str] = &[
    "High Street",
    "Station Road",
    "Hauptstraße",
    "Rue de la République",
    "Calle Mayor",
    "Kerkstraat",
    "Baker Street",
    "Schlossallee",
    "Avenue des Champs-Élysées",
    "Oak Lane",
    "Königsallee",
    "Boulevard Saint-Germain",
    "Church Lane",
];

struct Place {
    city: &'static str,
    country: &'static str,
    region: &'static str,
    currency: &'static str,
    postcode: fn(&mut ChaCha8Rng) -> String,
}

fn uk_postcode(r: &mut ChaCha8Rng) -> String {
    let a = ["SW", "EC", "M", "B", "LS", "G", "EH", "BS", "CF", "NW"]
        .choose(r)
        .unwrap();
    format!(
        "{a}{} {}{}{}",
        r.random_range(1..20),
        r.random_range(1..10),
        (b'A' + r.random_range(0..26)) as char,
        (b'A' + r.random_range(0..26)) as char
    )
}
fn five_digits(r: &mut ChaCha8Rng) -> String {
    format!("{:05}", r.random_range(1000..99999))
}
fn nl_postcode(r: &mut ChaCha8Rng) -> String {
    format!(
        "{} {}{}",
        r.random_range(1000..9999),
        (b'A' + r.random_range(0..26)) as char,
        (b'A' + r.random_range(0..26)) as char
    )
}

const PLACES: &[Place] = &[
    Place {
        city: "London",
        country: "United Kingdom",
        region: "UK",
        currency: "GBP",
        postcode: uk_postcode,
    },
    Place {
        city: "Manchester",
        country: "United Kingdom",
        region: "UK",
        currency: "GBP",
        postcode: uk_postcode,
    },
    Place {
        city: "Edinburgh",
        country: "United Kingdom",
        region: "UK",
        currency: "GBP",
        postcode: uk_postcode,
    },
    Place {
        city: "München",
        country: "Deutschland",
        region: "EU",
        currency: "EUR",
        postcode: five_digits,
    },
    Place {
        city: "Köln",
        country: "Deutschland",
        region: "EU",
        currency: "EUR",
        postcode: five_digits,
    },
    Place {
        city: "Paris",
        country: "France",
        region: "EU",
        currency: "EUR",
        postcode: five_digits,
    },
    Place {
        city: "Amsterdam",
        country: "Nederland",
        region: "EU",
        currency: "EUR",
        postcode: nl_postcode,
    },
    Place {
        city: "New York, NY",
        country: "United States",
        region: "US",
        currency: "USD",
        postcode: five_digits,
    },
    Place {
        city: "San Francisco, CA",
        country: "United States",
        region: "US",
        currency: "USD",
        postcode: five_digits,
    },
];

const MERCHANTS: &[&str] = &[
    "Card payment — Tesco Stores",
    "Direct debit — City Energy",
    "Salary — Acme Industries Ltd",
    "Transfer to savings",
    "Card payment — Café Müller",
    "Standing order — Rent",
    "ATM withdrawal",
    "Card payment — Boulangerie Dupont",
    "Refund — Online Bookshop",
    "Direct debit — Mobile Telecom plc",
    "Interest paid",
    "Card payment — Ресторан «Пушкин»",
    "Faster payment from J. Smith",
    "Card payment — Ταβέρνα Ο Γιώργος",
    "Insurance premium",
    "Council tax instalment",
    "Card payment — Petrol station",
    "Subscription — Streaming service",
    "Transfer from current account",
];

/// Days since 1970-01-01 → `YYYY-MM-DD` (proleptic Gregorian).
pub fn civil_date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    format!("{:04}-{:02}-{:02}", if m <= 2 { y + 1 } else { y }, m, d)
}

fn name(r: &mut ChaCha8Rng) -> String {
    let mut n = format!("{} {}", GIVEN.choose(r).unwrap(), FAMILY.choose(r).unwrap());
    if r.random_bool(0.08) {
        n = format!(
            "{} {} {}",
            GIVEN.choose(r).unwrap(),
            GIVEN.choose(r).unwrap(),
            FAMILY.choose(r).unwrap()
        );
    }
    n
}

fn address(r: &mut ChaCha8Rng, place: &Place) -> Vec<String> {
    let mut lines = vec![format!(
        "{} {}",
        r.random_range(1..250),
        STREETS.choose(r).unwrap()
    )];
    if r.random_bool(0.3) {
        lines.insert(0, format!("Flat {}", r.random_range(1..40)));
    }
    if r.random_bool(0.1) {
        lines.push("c/o Accounts Department, Very Long Building Name Business Park".into());
    }
    let _ = place;
    lines
}

fn money(r: &mut ChaCha8Rng, lo: f64, hi: f64) -> f64 {
    (r.random_range(lo..hi) * 100.0).round() / 100.0
}

/// Generates record `i` (0-based) of the stream for `seed`.
pub fn record(example: Example, seed: u64, i: u64) -> Value {
    let mut r = ChaCha8Rng::seed_from_u64(seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let place = PLACES.choose(&mut r).unwrap();
    let name = name(&mut r);
    let addr = address(&mut r, place);
    let postcode = (place.postcode)(&mut r);
    match example {
        Example::Statement => {
            let start = 20_454 + r.random_range(0..300); // 2026
            let end = start + 30;
            let n = r.random_range(5..=150usize);
            let opening = money(&mut r, -500.0, 8000.0);
            let mut balance = opening;
            let mut days: Vec<i64> = (0..n).map(|_| start + r.random_range(0..=30)).collect();
            days.sort_unstable();
            let tx: Vec<Value> = days
                .iter()
                .map(|d| {
                    let amount = if r.random_bool(0.2) { money(&mut r, 10.0, 2500.0) } else { -money(&mut r, 1.0, 300.0) };
                    balance = ((balance + amount) * 100.0).round() / 100.0;
                    json!({ "date": civil_date(*d), "description": MERCHANTS.choose(&mut r).unwrap(), "amount": amount })
                })
                .collect();
            let mut customer = json!({
                "name": name, "address_lines": addr, "postcode": postcode, "city": place.city, "country": place.country, "region": place.region,
            });
            if r.random_bool(0.7) {
                customer["title"] = json!(TITLES.choose(&mut r).unwrap());
            }
            json!({
                "customer": customer,
                "account": {
                    "number": format!("{:08}", r.random_range(10_000_000..99_999_999u32)),
                    "sort_code": format!("{:02}-{:02}-{:02}", r.random_range(10..99), r.random_range(10..99), r.random_range(10..99)),
                    "type": *["current", "savings", "business"].choose(&mut r).unwrap(),
                    "currency": place.currency,
                },
                "statement": {
                    "period_start": civil_date(start), "period_end": civil_date(end),
                    "opening_balance": opening, "closing_balance": balance,
                },
                "transactions": tx,
            })
        }
        Example::InsuranceLetter => {
            let kind = *["home", "motor", "travel"].choose(&mut r).unwrap();
            let covers: &[&str] = match kind {
                "home" => &[
                    "Buildings",
                    "Contents",
                    "Accidental damage",
                    "Legal expenses",
                    "Home emergency",
                ],
                "motor" => &[
                    "Comprehensive cover",
                    "Breakdown assistance",
                    "Courtesy car",
                    "Windscreen",
                    "Protected no-claims discount",
                ],
                _ => &[
                    "Medical expenses",
                    "Cancellation",
                    "Baggage",
                    "Winter sports",
                    "Gadget cover",
                ],
            };
            let k = r.random_range(2..=covers.len());
            let items: Vec<Value> = covers[..k]
                .iter()
                .map(|c| json!({ "cover": c, "amount": money(&mut r, 12.0, 480.0) }))
                .collect();
            let total = items
                .iter()
                .map(|v| v["amount"].as_f64().unwrap_or(0.0))
                .sum::<f64>();
            json!({
                "policyholder": { "name": name, "address_lines": addr, "postcode": postcode, "city": place.city, "region": place.region },
                "policy": {
                    "number": format!("P{}-{:07}", kind.to_uppercase().chars().next().unwrap_or('X'), r.random_range(1..9_999_999u32)),
                    "type": kind,
                    "renewal_date": civil_date(20_454 + r.random_range(0..365)),
                    "premium_items": items,
                    "total_premium": (total * 100.0).round() / 100.0,
                },
            })
        }
    }
}

/// Writes `n` records as JSON Lines.
pub fn write(
    example: Example,
    seed: u64,
    n: u64,
    out: &mut impl std::io::Write,
) -> std::io::Result<()> {
    for i in 0..n {
        serde_json::to_writer(&mut *out, &record(example, seed, i))?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_records() {
        let a = record(Example::Statement, 7, 3);
        assert_eq!(a, record(Example::Statement, 7, 3));
        assert_ne!(a, record(Example::Statement, 8, 3));
    }

    #[test]
    fn statements_have_5_to_150_transactions_and_consistent_balances() {
        for i in 0..200 {
            let r = record(Example::Statement, 1, i);
            let tx = r["transactions"].as_array().unwrap();
            assert!((5..=150).contains(&tx.len()));
            let sum: f64 = tx.iter().map(|t| t["amount"].as_f64().unwrap()).sum();
            let open = r["statement"]["opening_balance"].as_f64().unwrap();
            let close = r["statement"]["closing_balance"].as_f64().unwrap();
            assert!((open + sum - close).abs() < 0.01, "record {i}");
        }
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(20_454), "2026-01-01");
        assert_eq!(civil_date(11_016), "2000-02-29");
    }
}
