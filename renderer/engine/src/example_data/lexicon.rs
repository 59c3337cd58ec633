//! The realistic vocabulary: word lists generated once per process from syllables.
//!
//! Nothing is copied from a name list or a gazetteer (no licence to track): given and
//! family names, street and town roots and merchant brands are pseudo-words built from
//! small tables of syllables (Latin, and some Greek and Cyrillic), deduplicated, from a
//! fixed seed, so every machine builds the same lists. Records draw from them with a
//! skewed distribution (`skewed`): a few entries are very common, most are rare, as in a
//! real customer base.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The naming customs of a place: which town and street patterns its addresses use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flavour {
    Uk,
    De,
    Fr,
    Nl,
    Us,
}

const FLAVOURS: usize = 5;

impl Flavour {
    fn index(self) -> usize {
        self as usize
    }
}

/// Entries of each generated list.
const GIVEN: usize = 4_000;
const FAMILY: usize = 12_000;
const STREET_ROOTS: usize = 8_000;
const TOWNS_PER_FLAVOUR: usize = 3_000;
const MERCHANTS: usize = 25_000;

/// The seed the lists are built from: part of the vocabulary's definition.
const LEXICON_SEED: u64 = 0x1E71_C0DE_5EED_2026;

const ONSETS: &[&str] = &[
    "", "b", "br", "c", "ch", "d", "dr", "f", "fl", "g", "gr", "h", "j", "k", "kl", "l", "m", "n",
    "p", "pr", "r", "s", "sch", "sh", "sk", "st", "t", "th", "tr", "v", "w", "z",
];
const NUCLEI: &[&str] = &[
    "a", "e", "i", "o", "u", "a", "e", "o", "ai", "ei", "ou", "ea", "ie", "y", "ä", "ö", "ü", "é",
    "å", "ø", "oa", "í",
];
const CODAS: &[&str] = &[
    "", "", "", "n", "r", "l", "s", "m", "nd", "rt", "ck", "ng", "st", "th", "x", "ll", "rn", "tz",
    "sk", "ł",
];
const GREEK: (&[&str], &[&str], &[&str]) = (
    &[
        "κ", "λ", "μ", "ν", "π", "τ", "σ", "δ", "θ", "χ", "ρ", "γ", "β", "φ", "ξ", "",
    ],
    &["α", "ε", "ι", "ο", "ου", "η", "ω", "αι", "ά", "έ", "ί", "ό"],
    &["", "", "ν", "ρ", "λ", "σ"],
);
const CYRILLIC: (&[&str], &[&str], &[&str]) = (
    &[
        "б", "в", "г", "д", "ж", "з", "к", "л", "м", "н", "п", "р", "с", "т", "ш", "ч", "",
    ],
    &["а", "е", "и", "о", "у", "я", "ю", "ы", "ё"],
    &["", "", "н", "р", "в", "й", "л", "к"],
);
const FAMILY_SUFFIXES: &[&str] = &[
    "", "", "", "", "son", "sen", "mann", "er", "ez", "ini", "ová", "ski", "escu", "ley", "worth",
    "berg", "ström", "ides", "elli", "ard", "ić", "ens",
];
const GREEK_FAMILY: &[&str] = &["ος", "ης", "ου", "άκης", "όπουλος", "ίδης"];
const CYRILLIC_FAMILY: &[&str] = &["ов", "ев", "ин", "ова", "ский", "енко", "ич"];

const STREET_TYPES_UK: &[&str] = &[
    "Road", "Street", "Lane", "Close", "Avenue", "Crescent", "Gardens", "Way", "Drive", "Terrace",
    "Mews", "Row",
];
const STREET_TYPES_DE: &[&str] = &[
    "straße", "weg", "allee", "gasse", "platz", "ring", "damm", "ufer",
];
const STREET_TYPES_FR: &[&str] = &[
    "Rue de ",
    "Rue du ",
    "Rue des ",
    "Avenue ",
    "Boulevard ",
    "Impasse ",
    "Place ",
    "Chemin de ",
];
const STREET_TYPES_NL: &[&str] = &["straat", "laan", "weg", "gracht", "plein", "kade", "singel"];
const STREET_TYPES_US: &[&str] = &[
    "St", "Ave", "Blvd", "Road", "Drive", "Court", "Place", "Parkway", "Lane",
];
const TOWN_SUFFIXES: [&[&str]; FLAVOURS] = [
    &[
        "ton", "ford", "ham", "bury", "field", "wick", "chester", "by", "mouth", "well", "stead",
        "ley",
    ],
    &[
        "burg", "dorf", "hausen", "heim", "stadt", "feld", "bach", "au", "ingen", "rode",
    ],
    &[
        "ville", "court", "ac", "ières", "y", "mont", "bourg", "euil",
    ],
    &[
        "dam", "drecht", "hoven", "wijk", "veen", "huizen", "loo", "sum",
    ],
    &[
        "ville", "wood", " Springs", " Falls", " City", "port", "dale", " Heights",
    ],
];
const US_STATES: &[&str] = &[
    "AL", "AZ", "CA", "CO", "FL", "GA", "IL", "IN", "MA", "MI", "MN", "NC", "NJ", "NY", "OH", "OR",
    "PA", "TN", "TX", "VA", "WA", "WI",
];
const SHOP_KINDS: &[&str] = &[
    "Bakery",
    "Café",
    "Market",
    "Pharmacy",
    "Books",
    "Garage",
    "Hardware",
    "Electrics",
    "& Sons",
    "Ltd",
    "GmbH",
    "SARL",
    "B.V.",
    "Inc.",
    "Trattoria",
    "Deli",
    "Florist",
    "Opticians",
    "Brewery",
    "Outfitters",
    "Supermarket",
    "Cycles",
    "Dental Care",
    "Kebab House",
];
const SERVICES: &[&str] = &[
    "Energy",
    "Water",
    "Broadband",
    "Mobile",
    "Insurance",
    "Gym Membership",
    "Streaming",
    "Council Tax",
    "Loan",
    "Mortgage",
    "Parking",
    "Newspaper",
];

/// The generated word lists.
pub(crate) struct Lexicon {
    given: Vec<String>,
    family: Vec<String>,
    street_roots: Vec<String>,
    towns: [Vec<String>; FLAVOURS],
    merchants: Vec<String>,
}

/// An index in `0..n`, skewed towards small ones: index `k` is drawn with probability
/// about `(k+1)^(1/3) - k^(1/3)` over `n^(1/3)`, so the first entries are common and
/// every entry of a large list still appears in a large run.
fn skewed(r: &mut ChaCha8Rng, n: usize) -> usize {
    let u: f64 = r.random();
    ((u * u * u) * n as f64) as usize % n
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// A pseudo-word of `syllables` syllables from the tables `(onsets, nuclei, codas)`.
fn word(r: &mut ChaCha8Rng, tables: (&[&str], &[&str], &[&str]), syllables: usize) -> String {
    let mut w = String::new();
    for k in 0..syllables {
        w.push_str(tables.0.choose(r).unwrap());
        w.push_str(tables.1.choose(r).unwrap());
        // Codas mostly close the word; inside it they make clusters hard to read.
        if k + 1 == syllables || r.random_bool(0.3) {
            w.push_str(tables.2.choose(r).unwrap());
        }
    }
    w
}

const LATIN: (&[&str], &[&str], &[&str]) = (ONSETS, NUCLEI, CODAS);

/// Fills a list of `n` distinct entries made by `make`.
fn distinct(
    r: &mut ChaCha8Rng,
    n: usize,
    mut make: impl FnMut(&mut ChaCha8Rng) -> String,
) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let w = make(r);
        if w.chars().count() >= 3 && seen.insert(w.clone()) {
            out.push(w);
        }
    }
    out
}

impl Lexicon {
    /// Returns the lexicon, building it on first use (a few milliseconds).
    pub(crate) fn get() -> &'static Lexicon {
        static LEXICON: OnceLock<Lexicon> = OnceLock::new();
        LEXICON.get_or_init(Lexicon::build)
    }

    fn build() -> Lexicon {
        let mut r = ChaCha8Rng::seed_from_u64(LEXICON_SEED);
        let given = distinct(&mut r, GIVEN, |r| {
            let n = r.random_range(2..=3);
            match r.random_range(0..100) {
                0..4 => capitalise(&word(r, GREEK, n)),
                4..8 => capitalise(&word(r, CYRILLIC, n)),
                _ => capitalise(&word(r, LATIN, n)),
            }
        });
        let family = distinct(&mut r, FAMILY, |r| {
            let n = r.random_range(1..=3);
            match r.random_range(0..100) {
                0..4 => capitalise(&word(r, GREEK, n)) + GREEK_FAMILY.choose(r).unwrap(),
                4..8 => capitalise(&word(r, CYRILLIC, n)) + CYRILLIC_FAMILY.choose(r).unwrap(),
                8..12 => format!(
                    "{}-{}",
                    capitalise(&word(r, LATIN, n)),
                    capitalise(&word(r, LATIN, 2))
                ),
                _ => capitalise(&word(r, LATIN, n)) + FAMILY_SUFFIXES.choose(r).unwrap(),
            }
        });
        let street_roots = distinct(&mut r, STREET_ROOTS, |r| {
            let n = r.random_range(1..=3);
            capitalise(&word(r, LATIN, n))
        });
        let towns = std::array::from_fn(|f| {
            distinct(&mut r, TOWNS_PER_FLAVOUR, |r| {
                let n = r.random_range(1..=2);
                let root = capitalise(&word(r, LATIN, n));
                let town = root + TOWN_SUFFIXES[f].choose(r).unwrap();
                match (f, r.random_range(0..10)) {
                    (1, 0) => format!("Bad {town}"),
                    (2, 0) => format!("Saint-{town}"),
                    (0, 0) => format!("Upper {town}"),
                    _ => town,
                }
            })
        });
        let merchants = distinct(&mut r, MERCHANTS, |r| {
            let n = r.random_range(2..=3);
            let brand = capitalise(&word(r, LATIN, n));
            match r.random_range(0..10) {
                0..3 => brand,
                3..5 => format!("{brand} {}", capitalise(&word(r, LATIN, 2))),
                5 => format!("Café {brand}"),
                _ => format!("{brand} {}", SHOP_KINDS.choose(r).unwrap()),
            }
        });
        Lexicon {
            given,
            family,
            street_roots,
            towns,
            merchants,
        }
    }

    /// A given name.
    pub(crate) fn given(&self, r: &mut ChaCha8Rng) -> &str {
        &self.given[skewed(r, self.given.len())]
    }

    /// A family name.
    pub(crate) fn family(&self, r: &mut ChaCha8Rng) -> &str {
        &self.family[skewed(r, self.family.len())]
    }

    /// A town of `flavour` (US towns with their state).
    pub(crate) fn city(&self, r: &mut ChaCha8Rng, flavour: Flavour) -> String {
        let towns = &self.towns[flavour.index()];
        let town = &towns[skewed(r, towns.len())];
        match flavour {
            Flavour::Us => format!("{town}, {}", US_STATES.choose(r).unwrap()),
            _ => town.clone(),
        }
    }

    /// A street name of `flavour` (without the house number).
    pub(crate) fn street(&self, r: &mut ChaCha8Rng, flavour: Flavour) -> String {
        let root = &self.street_roots[skewed(r, self.street_roots.len())];
        match flavour {
            Flavour::Uk => format!("{root} {}", STREET_TYPES_UK.choose(r).unwrap()),
            Flavour::De => format!("{root}{}", STREET_TYPES_DE.choose(r).unwrap()),
            Flavour::Fr => format!("{}{root}", STREET_TYPES_FR.choose(r).unwrap()),
            Flavour::Nl => format!("{root}{}", STREET_TYPES_NL.choose(r).unwrap()),
            Flavour::Us => format!("{root} {}", STREET_TYPES_US.choose(r).unwrap()),
        }
    }

    fn merchant(&self, r: &mut ChaCha8Rng) -> &str {
        &self.merchants[skewed(r, self.merchants.len())]
    }

    /// A payment reference: letters and digits, different nearly every time.
    fn reference(r: &mut ChaCha8Rng) -> String {
        const ALNUM: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
        (0..r.random_range(6..=10))
            .map(|_| ALNUM[r.random_range(0..ALNUM.len())] as char)
            .collect()
    }

    /// A transaction description for a customer living in a place of `flavour`.
    pub(crate) fn description(&self, r: &mut ChaCha8Rng, flavour: Flavour) -> String {
        match r.random_range(0..100) {
            0..40 => format!(
                "Card payment — {} {}",
                self.merchant(r),
                self.city(r, flavour)
            ),
            40..55 => format!(
                "Direct debit — {} {}",
                self.merchant(r),
                SERVICES.choose(r).unwrap()
            ),
            55..63 => format!("Faster payment from {} {}", self.given(r), self.family(r)),
            63..70 => format!("Transfer to {} {}", self.given(r), self.family(r)),
            70..76 => format!("Standing order — ref {}", Self::reference(r)),
            76..82 => format!(
                "ATM withdrawal {} {}",
                self.street(r, flavour),
                self.city(r, flavour)
            ),
            82..86 => format!("Salary — {} Ltd", self.merchant(r)),
            86..92 => format!("Refund — {}", self.merchant(r)),
            92..96 => format!(
                "Online purchase — {} order {}",
                self.merchant(r),
                Self::reference(r)
            ),
            _ => "Interest paid".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lists_are_as_long_as_declared_and_distinct() {
        let l = Lexicon::get();
        assert_eq!(l.given.len(), GIVEN);
        assert_eq!(l.family.len(), FAMILY);
        assert_eq!(l.merchants.len(), MERCHANTS);
        for towns in &l.towns {
            assert_eq!(towns.len(), TOWNS_PER_FLAVOUR);
            assert_eq!(towns.iter().collect::<BTreeSet<_>>().len(), towns.len());
        }
        assert_eq!(l.family.iter().collect::<BTreeSet<_>>().len(), FAMILY);
        // Some names are Greek and some Cyrillic.
        assert!(
            l.family
                .iter()
                .any(|f| f.chars().any(|c| ('α'..='ω').contains(&c)))
        );
        assert!(
            l.family
                .iter()
                .any(|f| f.chars().any(|c| ('а'..='я').contains(&c)))
        );
    }

    #[test]
    fn skewed_draws_favour_the_head_but_reach_the_tail() {
        let mut r = ChaCha8Rng::seed_from_u64(3);
        let n = 1_000;
        let mut hits = vec![0u32; n];
        for _ in 0..200_000 {
            hits[skewed(&mut r, n)] += 1;
        }
        assert!(
            hits[0] > 20 * hits[n - 1].max(1),
            "{} vs {}",
            hits[0],
            hits[n - 1]
        );
        assert!(hits.iter().all(|&h| h > 0), "every entry is drawn");
    }
}
