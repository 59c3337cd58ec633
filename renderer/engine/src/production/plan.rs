//! The assembly planner: rendered documents → print jobs → mail pieces → sheets.
//!
//! A pure function of the profile and the documents' facts, in the order of
//! `docs/production.md`: route, de-duplicate, count sheets, household, fit envelopes
//! (split or reject what is too big), presort, cut into jobs, summarise the sort groups.
//! Nothing depends on hash-map order: maps are only looked up, lists follow record order
//! or the presort.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use super::facts::Facts;
use super::profile::{DuplicatePolicy, Overflow, Profile};

/// One rendered document as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocFacts {
    /// Record number in the input (the tie-break of every order).
    pub record: u64,
    pub document_id: String,
    /// Hex SHA-256 of the document's content.
    pub sha256: String,
    pub pages: u32,
    pub facts: Facts,
}

/// A page of a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRef {
    /// Index into the input slice.
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

/// One mail piece: the sheets that go into one envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PiecePlan {
    /// 1-based, sequential within the job.
    pub piece: u32,
    pub envelope: String,
    /// OR of the member documents' feeder masks.
    pub feeders: u8,
    pub sort_group: String,
    /// Indices into the input, in print order.
    pub documents: Vec<usize>,
    /// More than one document merged.
    pub householded: bool,
    /// `Some((k, n))`: part k of a document split into n pieces.
    pub part: Option<(u32, u32)>,
    pub sheets: Vec<SheetPlan>,
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
}

/// A piece before presort: its documents, or one part of a split document.
struct Draft {
    docs: Vec<usize>,
    sheets: u32,
    /// For a split part: (k, n, first sheet index within the document).
    part: Option<(u32, u32, u32)>,
}

/// Plans the assembly of a run's documents under a profile.
pub fn plan(profile: &Profile, docs: &[DocFacts]) -> Plan {
    let mut out = Plan::default();
    let order = record_order(docs);
    let printed = route(docs, &order, &mut out.routed);
    let printed = deduplicate(profile, docs, printed, &mut out.duplicates);
    let mut drafts = gather(profile, docs, &printed, &mut out.rejected);
    drop(printed);
    presort(docs, &mut drafts);
    out.jobs = cut_jobs(profile, docs, drafts);
    out.groups = summarise(profile, &out.jobs);
    out
}

/// Indices of the documents by (record, index).
fn record_order(docs: &[DocFacts]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..docs.len()).collect();
    order.sort_by_key(|&i| (docs[i].record, i));
    order
}

/// Rule 1: documents with a channel leave; the rest, in record order, go on.
fn route(docs: &[DocFacts], order: &[usize], routed: &mut Vec<Routed>) -> Vec<usize> {
    let mut printed = Vec::with_capacity(order.len());
    for &i in order {
        match &docs[i].facts.channel {
            Some(c) => routed.push(Routed {
                doc: i,
                channel: c.clone(),
            }),
            None => printed.push(i),
        }
    }
    printed
}

/// Rule 2: same recipient and same content as an earlier printed document.
fn deduplicate(
    profile: &Profile,
    docs: &[DocFacts],
    printed: Vec<usize>,
    duplicates: &mut Vec<Duplicate>,
) -> Vec<usize> {
    let Some(rule) = &profile.duplicates else {
        return printed;
    };
    let suppress = rule.policy == DuplicatePolicy::Suppress;
    let mut seen: FxHashMap<(&str, &str), usize> = FxHashMap::default();
    let mut kept = Vec::with_capacity(printed.len());
    for i in printed {
        let d = &docs[i];
        if let Some(r) = &d.facts.recipient {
            let first = *seen.entry((r.as_str(), d.sha256.as_str())).or_insert(i);
            if first != i {
                duplicates.push(Duplicate {
                    doc: i,
                    first,
                    suppressed: suppress,
                });
                if suppress {
                    continue;
                }
            }
        }
        kept.push(i);
    }
    kept
}

/// Rules 3–5: sheets per document, householding, and what is too big for any envelope.
fn gather(
    profile: &Profile,
    docs: &[DocFacts],
    printed: &[usize],
    rejected: &mut Vec<(usize, String)>,
) -> Vec<Draft> {
    let largest = profile.largest();
    let mut drafts: Vec<Draft> = Vec::with_capacity(printed.len());
    // The open (last) draft of each household.
    let mut open: FxHashMap<&str, usize> = FxHashMap::default();
    for &i in printed {
        let d = &docs[i];
        let sheets = profile.sheets(d.pages);
        if sheets == 0 {
            rejected.push((i, "document has no pages".to_string()));
            continue;
        }
        if sheets > largest {
            match profile.overflow {
                Overflow::Reject => {
                    let big = profile.envelopes.last().map_or("", |e| e.name.as_str());
                    rejected.push((
                        i,
                        format!(
                            "document has {sheets} sheets, more than the largest envelope '{big}' takes ({largest}); the profile rejects such documents (envelopes above = \"reject\")"
                        ),
                    ));
                }
                Overflow::Split => {
                    let n = sheets.div_ceil(largest);
                    for k in 0..n {
                        let first = k * largest;
                        drafts.push(Draft {
                            docs: vec![i],
                            sheets: largest.min(sheets - first),
                            part: Some((k + 1, n, first)),
                        });
                    }
                }
            }
            continue;
        }
        if let Some(h) = &d.facts.household {
            if let Some(&at) = open.get(h.as_str())
                && drafts[at].sheets + sheets <= largest
            {
                drafts[at].docs.push(i);
                drafts[at].sheets += sheets;
                continue;
            }
            open.insert(h.as_str(), drafts.len());
        }
        drafts.push(Draft {
            docs: vec![i],
            sheets,
            part: None,
        });
    }
    drafts
}

/// Rule 6: by the first document's sort key, then its record, then the part.
fn presort(docs: &[DocFacts], drafts: &mut [Draft]) {
    drafts.sort_by(|a, b| {
        let (da, db) = (&docs[a.docs[0]], &docs[b.docs[0]]);
        da.facts
            .sort_key
            .cmp(&db.facts.sort_key)
            .then(da.record.cmp(&db.record))
            .then(a.docs[0].cmp(&b.docs[0]))
            .then(a.part.map(|p| p.0).cmp(&b.part.map(|p| p.0)))
    });
}

/// Rule 7: consecutive pieces into jobs within the limits; a piece is never split.
fn cut_jobs(profile: &Profile, docs: &[DocFacts], drafts: Vec<Draft>) -> Vec<JobPlan> {
    let limit = profile.job;
    let mut jobs: Vec<JobPlan> = Vec::new();
    let mut sheets_in_job: u64 = 0;
    for draft in drafts {
        let fits = jobs.last().is_some_and(|j| {
            j.pieces.len() < limit.max_pieces as usize
                && sheets_in_job + u64::from(draft.sheets) <= u64::from(limit.max_sheets)
        });
        if !fits {
            jobs.push(JobPlan {
                id: format!("{}{:06}", profile.job_prefix, jobs.len() + 1),
                pieces: Vec::new(),
            });
            sheets_in_job = 0;
        }
        sheets_in_job += u64::from(draft.sheets);
        let job = jobs.last_mut().expect("a job was just opened");
        let number = job.pieces.len() as u32 + 1;
        job.pieces.push(piece(profile, docs, draft, number));
    }
    jobs
}

fn piece(profile: &Profile, docs: &[DocFacts], draft: Draft, number: u32) -> PiecePlan {
    let envelope = profile
        .envelope_for(draft.sheets)
        .expect("drafts fit the largest envelope")
        .name
        .clone();
    let mut sheets = Vec::with_capacity(draft.sheets as usize);
    let mut feeders = 0;
    for &i in &draft.docs {
        feeders |= docs[i].facts.feeders;
        let total = profile.sheets(docs[i].pages);
        let (from, count) = match draft.part {
            Some((_, _, first)) => (first, draft.sheets),
            None => (0, total),
        };
        for s in from..from + count {
            sheets.push(sheet(profile.duplex, i, docs[i].pages, s));
        }
    }
    PiecePlan {
        piece: number,
        envelope,
        feeders,
        sort_group: docs[draft.docs[0]].facts.group.clone(),
        householded: draft.docs.len() > 1,
        part: draft.part.map(|(k, n, _)| (k, n)),
        documents: draft.docs,
        sheets,
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
fn summarise(profile: &Profile, jobs: &[JobPlan]) -> Vec<GroupSummary> {
    let bounds = &profile.presort.weight_classes;
    let mut groups: BTreeMap<&str, (u64, u64, Vec<u64>)> = BTreeMap::new();
    for p in jobs.iter().flat_map(|j| &j.pieces) {
        let g = groups
            .entry(p.sort_group.as_str())
            .or_insert_with(|| (0, 0, vec![0; bounds.len() + 1]));
        let sheets = p.sheets.len() as u64;
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
