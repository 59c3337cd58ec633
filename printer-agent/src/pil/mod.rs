//! PIL/1, the Pressrun Inserter Line protocol: both sides, as plain data and state machines.
//!
//! - [`line`] cuts a byte stream into lines (`\r`, `\n` or `\r\n`; 512 bytes at most).
//! - [`message`] parses and writes every message of both directions.
//! - [`host`] applies the host rules: events in sequence, gaps resent, retransmissions
//!   ignored, duplicate pieces flagged and counted once, unknown pieces after `JOBEND`,
//!   the reprint set. Acknowledgements wait until the caller has recorded an event.
//! - [`inserter`] is the other side, with fault injection, for tests and the simulator.

pub mod host;
pub mod inserter;
pub mod line;
pub mod message;
