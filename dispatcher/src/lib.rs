//! The dispatcher as a library: the parts other crates (benchmarks, tests) use.

pub mod ledger;
