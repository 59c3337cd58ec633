//! Layout: a bound document → pages of positioned items, by regions.

pub mod frame;
