//! The SNMP printer driver: [`poll`] (a printer's status in one GET and a few walks,
//! every answer checked), [`status`] (what RFC 2790 and RFC 3805 values mean, as plain
//! data), [`witness`] (the life count as a witness of IPP's impressions), over `v2c`
//! (csnmp) and `v3` (snmp2, USM), with [`oids`] and the library-neutral `wire` types.

pub mod oids;
pub mod poll;
pub mod status;
mod v2c;
mod v3;
mod wire;
pub mod witness;

pub use poll::{SnmpFailure, SnmpPrinter};
pub use status::{
    Alert, AlertSeverity, Amount, Condition, DeviceStatus, ErrorState, InputTray, PrinterState,
    PrinterStatus, Supply,
};
pub use witness::{LifeCountWitness, Verdict};
