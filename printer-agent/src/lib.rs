//! Pressrun printer agent: drivers for the devices that put print jobs on paper and
//! into envelopes.
//!
//! Built so far: [`pil`], the PIL/1 inserter protocol (`../shared/PIL1.md`) as plain data
//! and state machines without I/O, both sides; [`config`], `agent.toml`; [`ipp`], the
//! IPP printer driver (one job through one printer). Not yet: the SNMP driver, the
//! agent's own inserter driver, and `serve`.

pub mod config;
pub mod ipp;
pub mod pil;
