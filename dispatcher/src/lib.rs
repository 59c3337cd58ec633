//! The dispatcher as a library: the parts other crates (benchmarks, tests) use.
//!
//! - [`ledger`]: the per-sheet ledger of assured delivery;
//! - [`reprint`]: reprint jobs of the affected pieces, cut from their print job.

pub mod ledger;
pub mod reprint;
