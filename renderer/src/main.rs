//! The `renderer` binary.

fn main() {}
