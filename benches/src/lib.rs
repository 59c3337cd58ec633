//! Shared helpers for Pressrun benchmarks.
