//! Print production: the production profile and the assembly planner.
//!
//! Pure and synchronous, with plain data between the steps:
//! 1. [`profile`](crate::production::profile): a production profile's TOML → checked
//!    [`Profile`](crate::production::Profile) (once per run);
//! 2. [`facts`](crate::production::facts): one record → the
//!    [`Facts`](crate::production::Facts) the planner needs (once per document);
//! 3. [`plan`](mod@crate::production::plan): documents' facts → jobs → mail pieces →
//!    sheets ([`plan()`](crate::production::plan())).
//!
//! Writing the print files and the marks is the PDF stage's job; this module only
//! decides. The rules are in `docs/production.md`.

pub mod facts;
pub mod plan;
pub mod profile;

#[cfg(test)]
mod tests;

pub use facts::{FactError, Facts, normalise, normalise_into};
pub use plan::{
    DocFacts, DocTable, Duplicate, GroupSummary, JobPlan, PageRef, PiecePlan, Plan, Routed,
    SheetPlan, TooManyDocuments, plan,
};
pub use profile::{
    Back, Channel, Condition, DataMatrixMark, DuplicatePolicy, Duplicates, Envelope, Feeder,
    FieldPath, GroupRule, Householding, JobLimit, Marks, OmrMark, OmrSignal, Overflow, Presort,
    Profile, ProfileError, Step, Test, TextMark, is_media_keyword,
};
