//! Pressrun printer agent: drivers for the devices that put print jobs on paper and
//! into envelopes.
//!
//! Built so far: [`pil`], the PIL/1 inserter protocol (`../shared/PIL1.md`) as plain data
//! and state machines without I/O, both sides; [`config`], `agent.toml`; [`ipp`], the
//! IPP printer driver (one job through one printer); [`snmp`], the SNMP driver (a
//! printer's status, supplies, trays and alerts over v2c or v3, and its life count as a
//! witness of IPP's impressions). Not yet: the agent's own inserter driver, and `serve`.

pub mod config;
pub mod ipp;
pub mod pil;
pub mod snmp;
