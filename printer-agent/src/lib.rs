//! Pressrun printer agent: drivers for the devices that put print jobs on paper and
//! into envelopes.
//!
//! Built so far: [`pil`], the PIL/1 inserter protocol (`../shared/PIL1.md`) as plain data
//! and state machines without I/O, both sides; [`config`], `agent.toml`. Not yet: the
//! IPP and SNMP drivers, the agent's own inserter driver, and `serve`.

pub mod config;
pub mod pil;
