//! The production profile: a TOML file read once into a checked, typed value.
//!
//! The raw `serde` shapes below mirror the file one to one (unknown keys refused); the
//! public types are what the planner and the mark writer use. Every semantic check points
//! at the offending value with `file:line:column`.

use std::fmt;
use std::ops::Range;

use rust_decimal::Decimal;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use toml::Spanned;

use crate::template::{parse_decimal_str, parse_length};

const LENGTH_HINT: &str =
    "write a number with a unit: pt, mm, cm or in (e.g. \"5mm\", \"6pt\"), at most 200in";

/// A profile that could not be read or is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct ProfileError {
    /// The file name given to [`Profile::parse`].
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub column: u32,
    /// What is wrong, in lower case, saying what to do.
    pub message: String,
}

/// A checked production profile: how documents become mail pieces, sheets and jobs.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// `[profile] id`.
    pub id: String,
    /// `[profile] version`.
    pub version: String,
    /// Job ids are this prefix and a 6-digit sequence number (`J000001`).
    pub job_prefix: String,
    /// Both sides of a sheet are printed.
    pub duplex: bool,
    /// Production marks go on backs as well as fronts (duplex only; fronts only otherwise).
    pub marks_on_back: bool,
    /// What an otherwise blank back carries (duplex).
    pub back: Back,
    /// The paper the jobs print on, as an IPP `media` keyword (PWG 5101.1, e.g.
    /// `iso_a4_210x297mm`): sent with every print job and used to route it to a printer
    /// that has it. `None`: the printer's default, any printer.
    pub media: Option<String>,
    /// Envelopes by strictly ascending capacity.
    pub envelopes: Vec<Envelope>,
    /// What happens to a document above the largest envelope.
    pub overflow: Overflow,
    /// Enclosure feeders by ascending station.
    pub feeders: Vec<Feeder>,
    /// The presort and its sort groups.
    pub presort: Presort,
    /// Householding; `None` when off.
    pub householding: Option<Householding>,
    /// Duplicate detection; `None` when off.
    pub duplicates: Option<Duplicates>,
    /// Channel routing; `None` when every document is printed.
    pub channel: Option<Channel>,
    /// Job size limits.
    pub job: JobLimit,
    /// Production marks.
    pub marks: Marks,
    hash: [u8; 32],
}

/// An envelope size and how many sheets it takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub name: String,
    pub max_sheets: u32,
}

/// What happens to a single document with more sheets than the largest envelope takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Overflow {
    /// Cut into pieces "k of n", each at most the largest envelope.
    Split,
    /// Not printed; listed in [`Plan::rejected`](super::Plan::rejected).
    Reject,
}

/// An enclosure feeder that fires when its condition holds for a document.
#[derive(Debug, Clone, PartialEq)]
pub struct Feeder {
    /// Station 1..=8; bit `station - 1` of the feeder mask.
    pub station: u8,
    pub name: String,
    pub when: Condition,
}

/// A test on one field of a record.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub field: FieldPath,
    pub test: Test,
}

/// The test of a [`Condition`].
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    /// The value spelled as text equals this (numbers also compare as exact decimals).
    Equals(String),
    /// The value is absent or does not equal this.
    NotEquals(String),
    /// The value equals one of these.
    In(Vec<String>),
    /// The field is present and not null (`true`), or absent or null (`false`).
    Present(bool),
    /// The value is a number above this (exact decimal compare; absent = false).
    GreaterThan(Decimal),
    /// The value is a number below this (exact decimal compare; absent = false).
    LessThan(Decimal),
}

/// A dotted path into a record: `customer.postcode`, `customer.address_lines[0]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    pub text: String,
    pub steps: Vec<Step>,
}

/// One step of a [`FieldPath`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// The presort: the order of mail pieces and the sort groups of the summary.
#[derive(Debug, Clone, PartialEq)]
pub struct Presort {
    /// Sort key fields, compared as normalised text, then record order.
    pub keys: Vec<FieldPath>,
    /// The sort group; `None` puts every piece in the group `""`.
    pub group: Option<GroupRule>,
    /// Upper bounds (sheets) of the weight classes of the group summary, ascending.
    pub weight_classes: Vec<u32>,
}

/// How the sort group is taken from a field.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupRule {
    pub field: FieldPath,
    /// The first this many characters of the normalised value; `None` = all of it.
    pub prefix: Option<usize>,
}

/// Householding: documents to the same address travel in one envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct Householding {
    /// The fields of the household key (normalised, joined).
    pub key: Vec<FieldPath>,
    /// Documents for which this holds are never householded.
    pub exclude_when: Option<Condition>,
}

/// Duplicate detection: same recipient and same document content.
#[derive(Debug, Clone, PartialEq)]
pub struct Duplicates {
    /// The fields of the recipient key (normalised, joined).
    pub key: Vec<FieldPath>,
    pub policy: DuplicatePolicy,
}

/// What happens to a duplicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DuplicatePolicy {
    /// Printed, and listed.
    Flag,
    /// Not printed (the first one is), and listed.
    Suppress,
}

/// Channel routing: documents whose channel is not a print channel are not printed.
#[derive(Debug, Clone, PartialEq)]
pub struct Channel {
    pub field: FieldPath,
    /// Channel names that mean print (absent, null or empty also mean print).
    pub print: Vec<String>,
}

/// How big a print job may get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobLimit {
    pub max_pieces: u32,
    pub max_sheets: u32,
    /// Automatic reprints stop (and wait for an operator) once more than this percentage
    /// of a job's pieces would have been reprinted (`reprint-cap-percent`, default 10).
    pub reprint_cap_percent: u32,
}

/// Production marks, placed from the bottom-left corner of the page, in points.
#[derive(Debug, Clone, PartialEq)]
pub struct Marks {
    pub datamatrix: DataMatrixMark,
    pub omr: Option<OmrMark>,
    pub text: Option<TextMark>,
}

/// The PIL/1 Data Matrix: bottom-left corner of the symbol at (`x`, `y`).
#[derive(Debug, Clone, PartialEq)]
pub struct DataMatrixMark {
    pub x: f32,
    pub y: f32,
    /// Edge of the square symbol.
    pub size: f32,
    /// Quiet zone around the symbol that the overlay keeps white.
    pub clear_zone: f32,
}

/// An OMR track: horizontal bars from the top one at (`x`, `y`) downwards every `pitch`.
#[derive(Debug, Clone, PartialEq)]
pub struct OmrMark {
    pub x: f32,
    pub y: f32,
    pub pitch: f32,
    /// Bar length (horizontal).
    pub length: f32,
    /// Bar thickness (vertical).
    pub thickness: f32,
    /// The marks from top to bottom.
    pub marks: Vec<OmrSignal>,
}

/// What one OMR position means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OmrSignal {
    /// Always printed: the reading starts here.
    Start,
    /// Printed on the last sheet of a piece: collation done, insert.
    Insert,
    /// Printed when feeder station N (1..=8) fires for the piece.
    Feeder(u8),
    /// Bit N (1..=3) of the sheet number within the piece (wrap-around sequence check).
    Sequence(u8),
    /// Printed when needed to make the number of printed marks even.
    Parity,
    /// Always printed: closes the code.
    End,
    /// Always printed: tells a read track from a blank or dirty one.
    Safety,
}

impl OmrMark {
    /// Returns which marks are printed on sheet `k` (1-based) of a piece of `n` sheets
    /// whose feeder mask is `feeders`, in the order of [`OmrMark::marks`].
    pub fn bits(&self, k: u32, n: u32, feeders: u8) -> Vec<bool> {
        let mut bits: Vec<bool> = self
            .marks
            .iter()
            .map(|m| match *m {
                OmrSignal::Start | OmrSignal::End | OmrSignal::Safety => true,
                OmrSignal::Insert => k == n,
                OmrSignal::Feeder(s) => feeders & (1 << (s - 1)) != 0,
                OmrSignal::Sequence(b) => k & (1 << (b - 1)) != 0,
                OmrSignal::Parity => false,
            })
            .collect();
        let odd = bits.iter().filter(|b| **b).count() % 2 == 1;
        for (b, m) in bits.iter_mut().zip(&self.marks) {
            if *m == OmrSignal::Parity {
                *b = odd;
            }
        }
        bits
    }
}

/// The human-readable line (`J000001 000001 2/3 01`) at (`x`, `y`).
#[derive(Debug, Clone, PartialEq)]
pub struct TextMark {
    pub x: f32,
    pub y: f32,
    pub size: f32,
}

/// The largest production profile read.
pub const MAX_PROFILE_BYTES: u64 = 1 << 20;

impl Profile {
    /// Reads a profile file — a regular file of at most [`MAX_PROFILE_BYTES`], never a
    /// device, a FIFO or a final symbolic link ([`crate::source::read_regular`]) — and
    /// parses it. The error is `file: what` or `file:line:column: what`.
    pub fn read(path: &std::path::Path) -> Result<Profile, String> {
        let name = path.display().to_string();
        let bytes =
            crate::source::read_regular(path, MAX_PROFILE_BYTES, crate::source::FileKind::Text)
                .map_err(|e| format!("{name}: {e}"))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| format!("{name}: a production profile must be UTF-8 text"))?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        Profile::parse(&name, text).map_err(|e| e.to_string())
    }

    /// Parses and validates a profile's TOML text; `file` is the name used in errors.
    pub fn parse(file: &str, text: &str) -> Result<Profile, ProfileError> {
        let at = Locator { file, text };
        let raw: RawProfile = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            at.error(span, e.message().trim_end_matches('\n').to_string())
        })?;
        build(&at, raw, text)
    }

    /// Returns the SHA-256 of the exact text (the profile's identity).
    pub fn content_hash(&self) -> [u8; 32] {
        self.hash
    }

    /// Returns the sheets a document of `pages` pages takes.
    pub fn sheets(&self, pages: u32) -> u32 {
        if self.duplex {
            pages.div_ceil(2)
        } else {
            pages
        }
    }

    /// Returns the envelope that takes `sheets` sheets: the first large enough.
    pub fn envelope_for(&self, sheets: u32) -> Option<&Envelope> {
        self.envelopes.iter().find(|e| e.max_sheets >= sheets)
    }

    /// Returns the capacity of the largest envelope.
    pub fn largest(&self) -> u32 {
        self.envelopes.last().map_or(0, |e| e.max_sheets)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Turns byte offsets into `file:line:column` errors.
struct Locator<'a> {
    file: &'a str,
    text: &'a str,
}

impl Locator<'_> {
    fn error(&self, span: Range<usize>, message: impl Into<String>) -> ProfileError {
        let (line, column) = line_col(self.text, span.start);
        ProfileError {
            file: self.file.to_string(),
            line,
            column,
            message: message.into(),
        }
    }
}

/// Returns the 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (u32, u32) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = text[start..offset].chars().count() + 1;
    (line as u32, column as u32)
}

// ---- the file as written -------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawProfile {
    profile: RawMeta,
    #[serde(default)]
    print: RawPrint,
    #[serde(default)]
    envelope: Vec<Spanned<RawEnvelope>>,
    #[serde(default)]
    envelopes: RawEnvelopes,
    #[serde(default)]
    feeder: Vec<Spanned<RawFeeder>>,
    #[serde(default)]
    presort: RawPresort,
    householding: Option<RawHouseholding>,
    duplicates: Option<RawDuplicates>,
    channel: Option<RawChannel>,
    job: RawJob,
    marks: RawMarks,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawMeta {
    id: Spanned<String>,
    version: Spanned<String>,
    job_prefix: Option<Spanned<String>>,
}

/// Whether `name` can be an IPP `media` keyword (PWG 5101.1 self-describing names such
/// as `iso_a4_210x297mm`): 1 to 64 lower-case letters, digits, `_`, `.` or `-`. Used by
/// the profile, by the dispatcher for what it reads back and by the agent for what it
/// receives.
pub fn is_media_keyword(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-')
        })
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawPrint {
    #[serde(default)]
    duplex: bool,
    #[serde(default)]
    marks_on_back: bool,
    #[serde(default)]
    back: Back,
    media: Option<Spanned<String>>,
}

/// What an otherwise blank back of a duplex sheet carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Back {
    /// Nothing: the side is left blank.
    #[default]
    Blank,
    /// The template's fixed back-of-page content (`<back>` in its body.xml), such as
    /// terms and conditions.
    Template,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawEnvelope {
    name: Spanned<String>,
    max_sheets: Spanned<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawEnvelopes {
    above: Overflow,
}

impl Default for RawEnvelopes {
    fn default() -> Self {
        Self {
            above: Overflow::Split,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawFeeder {
    station: Spanned<i64>,
    name: Spanned<String>,
    when: Spanned<RawCondition>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawCondition {
    field: Spanned<String>,
    equals: Option<Spanned<toml::Value>>,
    not_equals: Option<Spanned<toml::Value>>,
    #[serde(rename = "in")]
    in_: Option<Vec<Spanned<toml::Value>>>,
    present: Option<bool>,
    greater_than: Option<Spanned<toml::Value>>,
    less_than: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawPresort {
    #[serde(default)]
    keys: Vec<Spanned<String>>,
    group: Option<RawGroup>,
    weight_classes: Option<Spanned<Vec<Spanned<i64>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawGroup {
    field: Spanned<String>,
    prefix: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawHouseholding {
    key: Spanned<Vec<Spanned<String>>>,
    exclude_when: Option<Spanned<RawCondition>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawDuplicates {
    key: Spanned<Vec<Spanned<String>>>,
    policy: DuplicatePolicy,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawChannel {
    field: Spanned<String>,
    print: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawJob {
    max_pieces: Spanned<i64>,
    max_sheets: Spanned<i64>,
    reprint_cap_percent: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawMarks {
    datamatrix: RawDataMatrix,
    omr: Option<RawOmr>,
    text: Option<RawText>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawDataMatrix {
    x: Spanned<String>,
    y: Spanned<String>,
    size: Spanned<String>,
    clear_zone: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawOmr {
    x: Spanned<String>,
    y: Spanned<String>,
    pitch: Spanned<String>,
    length: Spanned<String>,
    thickness: Spanned<String>,
    marks: Spanned<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawText {
    x: Spanned<String>,
    y: Spanned<String>,
    size: Spanned<String>,
}

// ---- checking ------------------------------------------------------------------------

fn build(at: &Locator<'_>, raw: RawProfile, text: &str) -> Result<Profile, ProfileError> {
    let meta = raw.profile;
    let id = meta.id.get_ref();
    if id.is_empty()
        || !id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(at.error(
            meta.id.span(),
            format!("profile id '{id}': use lower-case letters, digits and '-'"),
        ));
    }
    if meta.version.get_ref().trim().is_empty() {
        return Err(at.error(meta.version.span(), "profile version is empty: write one"));
    }
    let job_prefix = match meta.job_prefix {
        None => "J".to_string(),
        Some(p) => {
            let ok = (1..=8).contains(&p.get_ref().len())
                && p.get_ref().bytes().all(|b| b.is_ascii_alphanumeric());
            if !ok {
                return Err(at.error(
                    p.span(),
                    format!(
                        "job prefix '{}': use 1 to 8 ASCII letters or digits (it goes into the Data Matrix)",
                        p.get_ref()
                    ),
                ));
            }
            p.into_inner()
        }
    };

    let envelopes = envelopes(at, raw.envelope)?;
    let mut feeders: Vec<Feeder> = Vec::with_capacity(raw.feeder.len());
    for f in raw.feeder {
        let f = f.into_inner();
        let station = *f.station.get_ref();
        if !(1..=8).contains(&station) {
            return Err(at.error(
                f.station.span(),
                format!("feeder station {station}: stations are 1 to 8"),
            ));
        }
        let station = station as u8;
        if feeders.iter().any(|g| g.station == station) {
            return Err(at.error(
                f.station.span(),
                format!(
                    "feeder station {station} declared twice: give each feeder its own station"
                ),
            ));
        }
        if f.name.get_ref().trim().is_empty() {
            return Err(at.error(f.name.span(), "feeder name is empty: name the insert"));
        }
        feeders.push(Feeder {
            station,
            name: f.name.into_inner(),
            when: condition(at, f.when)?,
        });
    }
    feeders.sort_by_key(|f| f.station);

    let presort = presort(at, raw.presort, &envelopes)?;
    let householding = match raw.householding {
        None => None,
        Some(h) => Some(Householding {
            key: key_list(at, h.key, "householding key")?,
            exclude_when: h.exclude_when.map(|c| condition(at, c)).transpose()?,
        }),
    };
    let duplicates = match raw.duplicates {
        None => None,
        Some(d) => Some(Duplicates {
            key: key_list(at, d.key, "duplicates key")?,
            policy: d.policy,
        }),
    };
    let channel = match raw.channel {
        None => None,
        Some(c) => Some(Channel {
            field: path(at, &c.field)?,
            print: c.print.unwrap_or_else(|| vec!["print".to_string()]),
        }),
    };
    let job = JobLimit {
        max_pieces: at_least_one(at, &raw.job.max_pieces, "max-pieces")?,
        max_sheets: at_least_one(at, &raw.job.max_sheets, "max-sheets")?,
        reprint_cap_percent: match &raw.job.reprint_cap_percent {
            None => 10,
            Some(v) => {
                let n = *v.get_ref();
                if !(0..=100).contains(&n) {
                    return Err(at.error(
                        v.span(),
                        format!("reprint-cap-percent is {n}: write a whole number from 0 to 100"),
                    ));
                }
                n as u32
            }
        },
    };
    let marks = marks(at, raw.marks)?;
    let media = match raw.print.media {
        None => None,
        Some(m) => {
            let name = m.get_ref();
            if !is_media_keyword(name) {
                return Err(at.error(
                    m.span(),
                    format!(
                        "media {name:?} is not an IPP media keyword: write a PWG 5101.1 name such as \"iso_a4_210x297mm\" or \"na_letter_8.5x11in\" (lower-case letters, digits, '_', '.', '-'; at most 64)"
                    ),
                ));
            }
            Some(m.into_inner())
        }
    };

    Ok(Profile {
        id: meta.id.into_inner(),
        version: meta.version.into_inner(),
        job_prefix,
        duplex: raw.print.duplex,
        marks_on_back: raw.print.marks_on_back,
        back: raw.print.back,
        media,
        envelopes,
        overflow: raw.envelopes.above,
        feeders,
        presort,
        householding,
        duplicates,
        channel,
        job,
        marks,
        hash: Sha256::digest(text.as_bytes()).into(),
    })
}

fn envelopes(
    at: &Locator<'_>,
    raw: Vec<Spanned<RawEnvelope>>,
) -> Result<Vec<Envelope>, ProfileError> {
    if raw.is_empty() {
        return Err(at.error(
            0..0,
            "no envelope: declare at least one [[envelope]] with name and max-sheets",
        ));
    }
    let mut out: Vec<Envelope> = Vec::with_capacity(raw.len());
    for e in raw {
        let e = e.into_inner();
        let name = e.name.get_ref().trim();
        if name.is_empty() {
            return Err(at.error(
                e.name.span(),
                "envelope name is empty: name it (e.g. \"DL\")",
            ));
        }
        if out.iter().any(|o| o.name == name) {
            return Err(at.error(
                e.name.span(),
                format!("envelope '{name}' declared twice: give each envelope its own name"),
            ));
        }
        let max = at_least_one(at, &e.max_sheets, "max-sheets")?;
        if let Some(prev) = out.last()
            && max <= prev.max_sheets
        {
            return Err(at.error(
                e.max_sheets.span(),
                format!(
                    "envelope '{name}' takes {max} sheets, not more than '{}' before it ({}): list envelopes by strictly ascending max-sheets",
                    prev.name, prev.max_sheets
                ),
            ));
        }
        out.push(Envelope {
            name: name.to_string(),
            max_sheets: max,
        });
    }
    Ok(out)
}

fn presort(
    at: &Locator<'_>,
    raw: RawPresort,
    envelopes: &[Envelope],
) -> Result<Presort, ProfileError> {
    let keys = raw
        .keys
        .iter()
        .map(|k| path(at, k))
        .collect::<Result<Vec<_>, _>>()?;
    let group = match raw.group {
        None => None,
        Some(g) => Some(GroupRule {
            field: path(at, &g.field)?,
            prefix: match g.prefix {
                None => None,
                Some(p) => Some(at_least_one(at, &p, "group prefix")? as usize),
            },
        }),
    };
    let weight_classes = match raw.weight_classes {
        None => envelopes.iter().map(|e| e.max_sheets).collect(),
        Some(list) => {
            let mut out: Vec<u32> = Vec::new();
            for w in list.get_ref() {
                let v = at_least_one(at, w, "weight class")?;
                if out.last().is_some_and(|&p| v <= p) {
                    return Err(at.error(
                        w.span(),
                        format!(
                            "weight class {v} after {}: list the bounds strictly ascending",
                            out[out.len() - 1]
                        ),
                    ));
                }
                out.push(v);
            }
            if out.is_empty() {
                return Err(at.error(
                    list.span(),
                    "weight-classes is empty: list sheet bounds, or leave it out to use the envelope capacities",
                ));
            }
            out
        }
    };
    Ok(Presort {
        keys,
        group,
        weight_classes,
    })
}

fn key_list(
    at: &Locator<'_>,
    raw: Spanned<Vec<Spanned<String>>>,
    what: &str,
) -> Result<Vec<FieldPath>, ProfileError> {
    if raw.get_ref().is_empty() {
        return Err(at.error(raw.span(), format!("{what} is empty: list the fields")));
    }
    raw.get_ref().iter().map(|k| path(at, k)).collect()
}

fn at_least_one(at: &Locator<'_>, v: &Spanned<i64>, what: &str) -> Result<u32, ProfileError> {
    let n = *v.get_ref();
    if n < 1 || n > i64::from(u32::MAX) {
        return Err(at.error(
            v.span(),
            format!("{what} is {n}: write a whole number from 1 to {}", u32::MAX),
        ));
    }
    Ok(n as u32)
}

/// Parses `a.b[0].c`.
fn path(at: &Locator<'_>, raw: &Spanned<String>) -> Result<FieldPath, ProfileError> {
    let text = raw.get_ref();
    let bad = |why: &str| {
        at.error(
            raw.span(),
            format!("field path '{text}' {why}: write names joined by '.', with [n] to index an array (e.g. customer.address_lines[0])"),
        )
    };
    let mut steps = Vec::new();
    for part in text.split('.') {
        let (name, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
        {
            return Err(bad("has an empty or unusual name"));
        }
        steps.push(Step::Key(name.to_string()));
        while !rest.is_empty() {
            let close = rest.find(']').ok_or_else(|| bad("has an unclosed ["))?;
            let n: usize = rest[1..close]
                .parse()
                .map_err(|_| bad("has an index that is not a number"))?;
            steps.push(Step::Index(n));
            rest = &rest[close + 1..];
            if !rest.is_empty() && !rest.starts_with('[') {
                return Err(bad("has text after ]"));
            }
        }
    }
    Ok(FieldPath {
        text: text.clone(),
        steps,
    })
}

fn condition(at: &Locator<'_>, raw: Spanned<RawCondition>) -> Result<Condition, ProfileError> {
    let span = raw.span();
    let c = raw.into_inner();
    let field = path(at, &c.field)?;
    let count = [
        c.equals.is_some(),
        c.not_equals.is_some(),
        c.in_.is_some(),
        c.present.is_some(),
        c.greater_than.is_some(),
        c.less_than.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if count != 1 {
        return Err(at.error(
            span,
            format!(
                "condition on '{}' has {count} tests: write exactly one of equals, not-equals, in, present, greater-than, less-than",
                field.text
            ),
        ));
    }
    let test = if let Some(v) = c.equals {
        Test::Equals(scalar(at, &v)?)
    } else if let Some(v) = c.not_equals {
        Test::NotEquals(scalar(at, &v)?)
    } else if let Some(list) = c.in_ {
        Test::In(
            list.iter()
                .map(|v| scalar(at, v))
                .collect::<Result<_, _>>()?,
        )
    } else if let Some(p) = c.present {
        Test::Present(p)
    } else if let Some(v) = c.greater_than {
        Test::GreaterThan(amount(at, &v)?)
    } else if let Some(v) = c.less_than {
        Test::LessThan(amount(at, &v)?)
    } else {
        unreachable!("exactly one test is set")
    };
    Ok(Condition { field, test })
}

fn scalar(at: &Locator<'_>, v: &Spanned<toml::Value>) -> Result<String, ProfileError> {
    match v.get_ref() {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        _ => Err(at.error(
            v.span(),
            "compare with a string, a whole number or a boolean (write amounts as strings, e.g. \"0.10\")",
        )),
    }
}

fn amount(at: &Locator<'_>, v: &Spanned<toml::Value>) -> Result<Decimal, ProfileError> {
    let hint = "write an exact amount as a string (e.g. \"0\", \"-12.50\") or a whole number";
    match v.get_ref() {
        toml::Value::Integer(i) => Ok(Decimal::from(*i)),
        toml::Value::String(s) => parse_decimal_str(s.trim())
            .map_err(|e| at.error(v.span(), format!("'{s}' is {e}: {hint}"))),
        _ => Err(at.error(v.span(), hint)),
    }
}

fn length(at: &Locator<'_>, v: &Spanned<String>, positive: bool) -> Result<f32, ProfileError> {
    let s = v.get_ref();
    match parse_length(s) {
        Some(pt) if pt > 0.0 || (!positive && pt == 0.0) => Ok(pt),
        Some(_) => Err(at.error(
            v.span(),
            format!(
                "length '{s}' must be {}",
                if positive {
                    "above zero"
                } else {
                    "zero or more"
                }
            ),
        )),
        None => Err(at.error(v.span(), format!("length '{s}': {LENGTH_HINT}"))),
    }
}

fn marks(at: &Locator<'_>, raw: RawMarks) -> Result<Marks, ProfileError> {
    let dm = raw.datamatrix;
    let datamatrix = DataMatrixMark {
        x: length(at, &dm.x, false)?,
        y: length(at, &dm.y, false)?,
        size: length(at, &dm.size, true)?,
        clear_zone: match &dm.clear_zone {
            None => 0.0,
            Some(c) => length(at, c, false)?,
        },
    };
    let omr = match raw.omr {
        None => None,
        Some(o) => {
            let mut marks = Vec::new();
            for m in o.marks.get_ref() {
                marks.push(omr_signal(m.get_ref()).ok_or_else(|| {
                    at.error(
                        m.span(),
                        format!(
                            "unknown OMR mark '{}': use start, insert, feeder-1..feeder-8, sequence-1..sequence-3, parity, end, safety",
                            m.get_ref()
                        ),
                    )
                })?);
            }
            if marks.is_empty() {
                return Err(at.error(o.marks.span(), "OMR marks is empty: list the marks"));
            }
            Some(OmrMark {
                x: length(at, &o.x, false)?,
                y: length(at, &o.y, false)?,
                pitch: length(at, &o.pitch, true)?,
                length: length(at, &o.length, true)?,
                thickness: length(at, &o.thickness, true)?,
                marks,
            })
        }
    };
    let text = match raw.text {
        None => None,
        Some(t) => Some(TextMark {
            x: length(at, &t.x, false)?,
            y: length(at, &t.y, false)?,
            size: length(at, &t.size, true)?,
        }),
    };
    Ok(Marks {
        datamatrix,
        omr,
        text,
    })
}

fn omr_signal(s: &str) -> Option<OmrSignal> {
    let numbered = |prefix: &str, max: u8| -> Option<u8> {
        let n: u8 = s.strip_prefix(prefix)?.parse().ok()?;
        (1..=max).contains(&n).then_some(n)
    };
    Some(match s {
        "start" => OmrSignal::Start,
        "insert" => OmrSignal::Insert,
        "parity" => OmrSignal::Parity,
        "end" => OmrSignal::End,
        "safety" => OmrSignal::Safety,
        _ => {
            if let Some(n) = numbered("feeder-", 8) {
                OmrSignal::Feeder(n)
            } else {
                OmrSignal::Sequence(numbered("sequence-", 3)?)
            }
        }
    })
}
