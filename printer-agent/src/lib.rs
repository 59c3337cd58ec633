//! Pressrun printer agent: drivers for the devices that put print jobs on paper and
//! into envelopes.
//!
//! Built so far: [`pil`], the host side of the PIL/1 inserter protocol
//! (`../shared/PIL1.md`) as plain data and a state machine without I/O. Not yet: the
//! IPP and SNMP drivers, the serial and TCP transports, the `serve` and
//! `simulate-inserter` commands (the printer-agent issue).

pub mod pil;
