//! Shaping with rustybuzz behind a per-thread word cache.
