//! The dispatcher as a library: the parts other crates (benchmarks, tests) use.
//!
//! - [`ledger`]: the per-sheet ledger of assured delivery;
//! - [`reprint`]: reprint jobs of the affected pieces, cut from their print job;
//! - [`principals`]: the users file, the rights of each call and the access log;
//! - [`registry`]: template versions, their four-eyes lifecycle and effective dates.

pub mod ledger;
pub mod principals;
pub mod registry;
pub mod reprint;
