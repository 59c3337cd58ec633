//! Pressrun printer agent: drivers for the devices that put print jobs on paper and
//! into envelopes, and the session that connects them to the dispatcher.
//!
//! - [`config`]: the file `agent.toml`;
//! - [`pil`]: the PIL/1 inserter protocol (`../shared/PIL1.md`) as plain data and state
//!   machines without I/O, both sides;
//! - [`ipp`]: the IPP printer driver (one job through one printer);
//! - [`snmp`]: the SNMP status driver (v2c over csnmp, v3 over snmp2) and the life-count
//!   witness that cross-checks IPP's impressions;
//! - [`store`]: the agent's durable state (outbox, held jobs, PIL/1 seqs);
//! - [`receive`]: taking a print job's files from the dispatcher, verified;
//! - [`printing`], [`inserting`]: the per-device workers of `serve`;
//! - [`link`]: the gRPC session with the dispatcher; [`serve`] wires it all.

pub mod config;
pub mod events;
pub mod inserting;
pub mod ipp;
pub mod link;
pub mod pil;
pub mod printing;
pub mod receive;
pub mod serve;
pub mod snmp;
pub mod status;
pub mod store;
