//! The assembly planner: rendered documents → print jobs → mail pieces → sheets.
//!
//! A pure function of the profile and the documents' facts, in the order of
//! `docs/production.md`: route, de-duplicate, count sheets, household, fit envelopes
//! (split or reject what is too big), presort, cut into jobs, summarise the sort groups.
//! Nothing depends on hash-map order: maps are only looked up, lists follow record order
//! or the presort.
//!
//! Memory is the point of the representation: a run of 10^6 documents is planned in a
//! fixed-size row per document ([`DocTable`]) plus the presort keys' text, and a plan
//! holds numbers, not strings — a piece's sheets are derived from its documents' page
//! counts when asked ([`Plan::sheets`]), never stored. Household and recipient keys are
//! kept as their SHA-256 (the same trust a document's identity already rests on), so
//! two addresses share an envelope only when their normalised texts are equal.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use sha2::{Digest, Sha256};

use super::facts::Facts;
use super::profile::{DuplicatePolicy, Overflow, Profile};

/// One rendered document as the planner is given it (one row of a [`DocTable`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocFacts {
    /// Record number in the input (the tie-break of every order).
    pub record: u64,
    /// Hex SHA-256 of the document's content.
    pub sha256: String,
    pub pages: u32,
    pub facts: Facts,
}

/// No household, no recipient, no channel.
const NONE: u32 = u32::MAX;
const HAS_HOUSEHOLD: u8 = 1;
const HAS_RECIPIENT: u8 = 2;

/// One document, in a fixed number of bytes (104).
#[derive(Debug, Clone, Copy)]
struct Row {
    record: u64,
    /// SHA-256 of the normalised household key (when `HAS_HOUSEHOLD`).
    household: [u8; 32],
    /// SHA-256 of the recipient key and the content hash (when `HAS_RECIPIENT`).
    duplicate: [u8; 32],
    /// The presort key: `sort_len` bytes of [`DocTable::sort_text`] from `sort_start`.
    sort_start: u64,
    sort_len: u32,
    pages: u32,
    /// Index into [`DocTable::groups`].
    group: u32,
    /// Index into [`DocTable::channels`], or [`NONE`] for print.
    channel: u32,
    feeders: u8,
    flags: u8,
}

/// The planner's input: every document's facts, compactly. Build it with
/// [`DocTable::push`] (documents in any order) and hand it to [`plan`].
#[derive(Debug, Clone, Default)]
pub struct DocTable {
    rows: Vec<Row>,
    /// Every presort key, one after the other; the key's texts are joined by U+001F,
    /// which normalised text never holds, so joined keys order as the lists would.
    sort_text: String,
    groups: Names,
    channels: Names,
}

/// Interned names (sort groups, channels): a few distinct values over many documents.
#[derive(Debug, Clone, Default)]
struct Names {
    list: Vec<String>,
    index: FxHashMap<String, u32>,
}

impl Names {
    fn intern(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let i = u32::try_from(self.list.len()).expect("fewer than 2^32 names");
        self.list.push(name.to_string());
        self.index.insert(name.to_string(), i);
        i
    }
}

/// More documents than a plan can number (2^32 − 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a run plans at most {} documents", u32::MAX - 1)]
pub struct TooManyDocuments;

impl DocTable {
    /// An empty table with room for `n` documents.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            rows: Vec::with_capacity(n),
            ..Self::default()
        }
    }

    /// The table of `docs`, in their order (the planner's indices are into `docs`).
    pub fn of(docs: &[DocFacts]) -> Self {
        let mut t = Self::with_capacity(docs.len());
        for d in docs {
            t.push(d.record, &d.sha256, d.pages, &d.facts)
                .expect("a test table is small");
        }
        t
    }

    /// Adds one document; the planner calls it `self.len()` before the call.
    pub fn push(
        &mut self,
        record: u64,
        sha256: &str,
        pages: u32,
        facts: &Facts,
    ) -> Result<(), TooManyDocuments> {
        if self.rows.len() >= (u32::MAX - 1) as usize {
            return Err(TooManyDocuments);
        }
        let sort_start = self.sort_text.len() as u64;
        for (i, part) in facts.sort_key.iter().enumerate() {
            if i > 0 {
                self.sort_text.push('\u{1f}');
            }
            self.sort_text.push_str(part);
        }
        let sort_len = u32::try_from(self.sort_text.len() as u64 - sort_start)
            .expect("a record's sort key is bounded by the record's size");
        let mut row = Row {
            record,
            household: [0; 32],
            duplicate: [0; 32],
            sort_start,
            sort_len,
            pages,
            group: self.groups.intern(&facts.group),
            channel: facts
                .channel
                .as_deref()
                .map_or(NONE, |c| self.channels.intern(c)),
            feeders: facts.feeders,
            flags: 0,
        };
        if let Some(h) = &facts.household {
            row.household = Sha256::digest(h.as_bytes()).into();
            row.flags |= HAS_HOUSEHOLD;
        }
        if let Some(r) = &facts.recipient {
            let mut d = Sha256::new();
            // The length first: no recipient text can run into the content hash.
            d.update((r.len() as u64).to_le_bytes());
            d.update(r.as_bytes());
            d.update(sha256.as_bytes());
            row.duplicate = d.finalize().into();
            row.flags |= HAS_RECIPIENT;
        }
        self.rows.push(row);
        Ok(())
    }

    /// Documents in the table.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the table holds no document.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn sort_key(&self, i: u32) -> &str {
        let r = &self.rows[i as usize];
        &self.sort_text[r.sort_start as usize..r.sort_start as usize + r.sort_len as usize]
    }
}

/// A page of a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRef {
    /// Index into the input.
    pub doc: usize,
    /// 1-based within the document.
    pub page: u32,
}

/// One sheet: the page on each side, `None` for a blank side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SheetPlan {
    pub front: Option<PageRef>,
    pub back: Option<PageRef>,
}

/// One mail piece: the sheets that go into one envelope. Its names, documents and
/// sheets are read through the [`Plan`] that holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PiecePlan {
    /// 1-based, sequential within the job.
    pub piece: u32,
    /// OR of the member documents' feeder masks.
    pub feeders: u8,
    /// More than one document merged.
    pub householded: bool,
    /// Index into the profile's envelopes ([`Plan::envelope`]).
    pub envelope: u16,
    /// Index into [`Plan::group_names`] ([`Plan::sort_group`]).
    pub sort_group: u32,
    /// `Some((k, n))`: part k of a document split into n pieces.
    pub part: Option<(u32, u32)>,
    /// Sheets in the piece.
    pub sheet_count: u32,
    /// For a split part: the part's first sheet within the document (0-based).
    first_sheet: u32,
    /// The documents: `members[members_start..members_start + members_len]`.
    members_start: u64,
    members_len: u32,
}

/// One print job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobPlan {
    /// `<prefix><6-digit number>`, e.g. `J000001`.
    pub id: String,
    pub pieces: Vec<PiecePlan>,
}

/// A document sent to another channel instead of print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    pub doc: usize,
    pub channel: String,
}

/// A document with the same recipient and content as an earlier one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duplicate {
    pub doc: usize,
    /// The earliest document (record order) it duplicates.
    pub first: usize,
    /// Not printed (policy `suppress`); printed when `false`.
    pub suppressed: bool,
}

/// Pieces and sheets of one sort group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSummary {
    pub group: String,
    pub pieces: u64,
    pub sheets: u64,
    /// Pieces per weight class: (upper bound in sheets, pieces), one entry per configured
    /// bound, then `(u32::MAX, pieces)` only when some pieces are above the last bound.
    pub by_weight_class: Vec<(u32, u64)>,
}

/// The assembly of a run: every input document is in exactly one of: a piece (split
/// documents in all their parts), `routed`, a suppressed `duplicates` entry, `rejected`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub jobs: Vec<JobPlan>,
    /// Record order.
    pub routed: Vec<Routed>,
    /// Record order.
    pub duplicates: Vec<Duplicate>,
    /// By group name.
    pub groups: Vec<GroupSummary>,
    /// Documents not printed, with the reason; record order.
    pub rejected: Vec<(usize, String)>,
    /// Sort group names, by [`PiecePlan::sort_group`].
    pub group_names: Vec<String>,
    /// Envelope names, by [`PiecePlan::envelope`].
    pub envelope_names: Vec<String>,
    /// The pieces' documents, piece after piece.
    members: Vec<u32>,
    /// Pages per input document.
    pages: Vec<u32>,
    duplex: bool,
}

impl Plan {
    /// The piece's documents (indices into the input), in print order.
    pub fn documents(&self, p: &PiecePlan) -> &[u32] {
        let start = p.members_start as usize;
        &self.members[start..start + p.members_len as usize]
    }

    /// The piece's envelope name.
    pub fn envelope(&self, p: &PiecePlan) -> &str {
        &self.envelope_names[usize::from(p.envelope)]
    }

    /// The piece's sort group.
    pub fn sort_group(&self, p: &PiecePlan) -> &str {
        &self.group_names[p.sort_group as usize]
    }

    /// The piece's sheets, in order: each document starts on a new sheet.
    pub fn sheets(&self, p: &PiecePlan) -> Vec<SheetPlan> {
        let mut out = Vec::with_capacity(p.sheet_count as usize);
        for &d in self.documents(p) {
            let pages = self.pages[d as usize];
            let (from, count) = match p.part {
                Some(_) => (p.first_sheet, p.sheet_count),
                None => (0, sheets_of(self.duplex, pages)),
            };
            for s in from..from + count {
                out.push(sheet(self.duplex, d as usize, pages, s));
            }
        }
        out
    }
}

fn sheets_of(duplex: bool, pages: u32) -> u32 {
    if duplex { pages.div_ceil(2) } else { pages }
}

/// A piece before presort: a chain of documents (through `next`), or one part of a split
/// document.
struct Draft {
    head: u32,
    tail: u32,
    docs: u32,
    sheets: u32,
    feeders: u8,
    /// For a split part: (k, n, first sheet index within the document).
    part: Option<(u32, u32, u32)>,
}

/// Plans the assembly of a run's documents under a profile.
pub fn plan(profile: &Profile, docs: &DocTable) -> Plan {
    let mut out = Plan {
        group_names: docs.groups.list.clone(),
        envelope_names: profile.envelopes.iter().map(|e| e.name.clone()).collect(),
        duplex: profile.duplex,
        ..Plan::default()
    };
    let order = record_order(docs);
    let printed = route(docs, order, &mut out.routed);
    let printed = deduplicate(profile, docs, printed, &mut out.duplicates);
    let (mut drafts, next) = gather(profile, docs, &printed, &mut out.rejected);
    drop(printed);
    presort(docs, &mut drafts);
    cut_jobs(profile, docs, drafts, &next, &mut out);
    out.pages = docs.rows.iter().map(|r| r.pages).collect();
    out.groups = summarise(profile, &out);
    out
}

/// Indices of the documents by (record, index).
fn record_order(docs: &DocTable) -> Vec<u32> {
    let mut order: Vec<u32> = (0..docs.len() as u32).collect();
    order.sort_unstable_by_key(|&i| (docs.rows[i as usize].record, i));
    order
}

/// Rule 1: documents with a channel leave; the rest, in record order, go on.
fn route(docs: &DocTable, mut order: Vec<u32>, routed: &mut Vec<Routed>) -> Vec<u32> {
    order.retain(|&i| match docs.rows[i as usize].channel {
        NONE => true,
        c => {
            routed.push(Routed {
                doc: i as usize,
                channel: docs.channels.list[c as usize].clone(),
            });
            false
        }
    });
    order
}

/// Rule 2: same recipient and same content as an earlier printed document.
fn deduplicate(
    profile: &Profile,
    docs: &DocTable,
    mut printed: Vec<u32>,
    duplicates: &mut Vec<Duplicate>,
) -> Vec<u32> {
    let Some(rule) = &profile.duplicates else {
        return printed;
    };
    let suppress = rule.policy == DuplicatePolicy::Suppress;
    let mut seen: FxHashMap<&[u8; 32], u32> = FxHashMap::default();
    printed.retain(|&i| {
        let row = &docs.rows[i as usize];
        if row.flags & HAS_RECIPIENT == 0 {
            return true;
        }
        let first = *seen.entry(&row.duplicate).or_insert(i);
        if first == i {
            return true;
        }
        duplicates.push(Duplicate {
            doc: i as usize,
            first: first as usize,
            suppressed: suppress,
        });
        !suppress
    });
    printed
}

/// Rules 3–5: sheets per document, householding, and what is too big for any envelope.
/// Returns the drafts and the chain of documents within them (`next[doc]`).
fn gather(
    profile: &Profile,
    docs: &DocTable,
    printed: &[u32],
    rejected: &mut Vec<(usize, String)>,
) -> (Vec<Draft>, Vec<u32>) {
    let largest = profile.largest();
    let mut drafts: Vec<Draft> = Vec::with_capacity(printed.len());
    let mut next = vec![NONE; docs.len()];
    // The open (last) draft of each household.
    let mut open: FxHashMap<&[u8; 32], u32> = FxHashMap::default();
    for &i in printed {
        let row = &docs.rows[i as usize];
        let sheets = profile.sheets(row.pages);
        if sheets == 0 {
            rejected.push((i as usize, "document has no pages".to_string()));
            continue;
        }
        let single = |sheets, part| Draft {
            head: i,
            tail: i,
            docs: 1,
            sheets,
            feeders: row.feeders,
            part,
        };
        if sheets > largest {
            match profile.overflow {
                Overflow::Reject => {
                    let big = profile.envelopes.last().map_or("", |e| e.name.as_str());
                    rejected.push((
                        i as usize,
                        format!(
                            "document has {sheets} sheets, more than the largest envelope '{big}' takes ({largest}); the profile rejects such documents (envelopes above = \"reject\")"
                        ),
                    ));
                }
                Overflow::Split => {
                    let n = sheets.div_ceil(largest);
                    for k in 0..n {
                        let first = k * largest;
                        drafts.push(single(largest.min(sheets - first), Some((k + 1, n, first))));
                    }
                }
            }
            continue;
        }
        if row.flags & HAS_HOUSEHOLD != 0 {
            if let Some(&at) = open.get(&row.household) {
                let d = &mut drafts[at as usize];
                if d.sheets + sheets <= largest {
                    next[d.tail as usize] = i;
                    d.tail = i;
                    d.docs += 1;
                    d.sheets += sheets;
                    d.feeders |= row.feeders;
                    continue;
                }
            }
            open.insert(&row.household, drafts.len() as u32);
        }
        drafts.push(single(sheets, None));
    }
    (drafts, next)
}

/// Rule 6: by the first document's sort key, then its record, then the part.
fn presort(docs: &DocTable, drafts: &mut [Draft]) {
    drafts.sort_by(|a, b| {
        docs.sort_key(a.head)
            .cmp(docs.sort_key(b.head))
            .then(
                docs.rows[a.head as usize]
                    .record
                    .cmp(&docs.rows[b.head as usize].record),
            )
            .then(a.head.cmp(&b.head))
            .then(a.part.map(|p| p.0).cmp(&b.part.map(|p| p.0)))
    });
}

/// Rule 7: consecutive pieces into jobs within the limits; a piece is never split.
fn cut_jobs(profile: &Profile, docs: &DocTable, drafts: Vec<Draft>, next: &[u32], out: &mut Plan) {
    let limit = profile.job;
    let mut sheets_in_job: u64 = 0;
    out.members.reserve(drafts.len());
    for draft in drafts {
        let fits = out.jobs.last().is_some_and(|j| {
            j.pieces.len() < limit.max_pieces as usize
                && sheets_in_job + u64::from(draft.sheets) <= u64::from(limit.max_sheets)
        });
        if !fits {
            out.jobs.push(JobPlan {
                id: format!("{}{:06}", profile.job_prefix, out.jobs.len() + 1),
                pieces: Vec::new(),
            });
            sheets_in_job = 0;
        }
        sheets_in_job += u64::from(draft.sheets);
        let members_start = out.members.len() as u64;
        let mut d = draft.head;
        while d != NONE {
            out.members.push(d);
            d = next[d as usize];
        }
        let envelope = profile
            .envelopes
            .iter()
            .position(|e| e.max_sheets >= draft.sheets)
            .expect("drafts fit the largest envelope");
        let job = out.jobs.last_mut().expect("a job was just opened");
        job.pieces.push(PiecePlan {
            piece: job.pieces.len() as u32 + 1,
            feeders: draft.feeders,
            householded: draft.docs > 1,
            envelope: u16::try_from(envelope).expect("a profile has few envelopes"),
            sort_group: docs.rows[draft.head as usize].group,
            part: draft.part.map(|(k, n, _)| (k, n)),
            sheet_count: draft.sheets,
            first_sheet: draft.part.map_or(0, |p| p.2),
            members_start,
            members_len: draft.docs,
        });
    }
}

/// Sheet `s` (0-based) of document `doc` of `pages` pages.
fn sheet(duplex: bool, doc: usize, pages: u32, s: u32) -> SheetPlan {
    if duplex {
        let back = 2 * s + 2;
        SheetPlan {
            front: Some(PageRef {
                doc,
                page: 2 * s + 1,
            }),
            back: (back <= pages).then_some(PageRef { doc, page: back }),
        }
    } else {
        SheetPlan {
            front: Some(PageRef { doc, page: s + 1 }),
            back: None,
        }
    }
}

/// Rule 8: pieces and sheets per sort group, by weight class.
fn summarise(profile: &Profile, plan: &Plan) -> Vec<GroupSummary> {
    let bounds = &profile.presort.weight_classes;
    let mut groups: BTreeMap<&str, (u64, u64, Vec<u64>)> = BTreeMap::new();
    for p in plan.jobs.iter().flat_map(|j| &j.pieces) {
        let g = groups
            .entry(plan.sort_group(p))
            .or_insert_with(|| (0, 0, vec![0; bounds.len() + 1]));
        let sheets = u64::from(p.sheet_count);
        g.0 += 1;
        g.1 += sheets;
        let class = bounds.partition_point(|&b| u64::from(b) < sheets);
        g.2[class] += 1;
    }
    groups
        .into_iter()
        .map(|(name, (pieces, sheets, counts))| {
            let mut by_weight_class: Vec<(u32, u64)> =
                bounds.iter().copied().zip(counts.iter().copied()).collect();
            if counts[bounds.len()] > 0 {
                by_weight_class.push((u32::MAX, counts[bounds.len()]));
            }
            GroupSummary {
                group: name.to_string(),
                pieces,
                sheets,
                by_weight_class,
            }
        })
        .collect()
}
