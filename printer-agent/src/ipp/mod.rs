//! The IPP printer driver: [`client`] (the operations), [`watch`] (what polled
//! attributes mean, without I/O) and [`driver`] (one job through one printer).

pub mod client;
pub mod driver;
pub mod watch;
