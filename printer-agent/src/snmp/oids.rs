//! The objects the driver reads, all of device 1 (`hrDeviceIndex` 1, the printer):
//! Host Resources MIB (RFC 2790) and Printer MIB v2 (RFC 3805).

/// `hrDeviceStatus.1`: INTEGER, 1 unknown, 2 running, 3 warning, 4 testing, 5 down.
pub const HR_DEVICE_STATUS: &[u32] = &[1, 3, 6, 1, 2, 1, 25, 3, 2, 1, 5, 1];
/// `hrPrinterStatus.1`: INTEGER, 1 other, 2 unknown, 3 idle, 4 printing, 5 warmup.
pub const HR_PRINTER_STATUS: &[u32] = &[1, 3, 6, 1, 2, 1, 25, 3, 5, 1, 1, 1];
/// `hrPrinterDetectedErrorState.1`: OCTET STRING, one bit per condition.
pub const HR_PRINTER_DETECTED_ERROR_STATE: &[u32] = &[1, 3, 6, 1, 2, 1, 25, 3, 5, 1, 2, 1];
/// `prtMarkerCounterUnit.1.1`: INTEGER, 7 impressions, 8 sheets (PrtMarkerCounterUnitTC).
pub const PRT_MARKER_COUNTER_UNIT: &[u32] = &[1, 3, 6, 1, 2, 1, 43, 10, 2, 1, 3, 1, 1];
/// `prtMarkerLifeCount.1.1`: Counter32, in `prtMarkerCounterUnit` units.
pub const PRT_MARKER_LIFE_COUNT: &[u32] = &[1, 3, 6, 1, 2, 1, 43, 10, 2, 1, 4, 1, 1];

/// `prtMarkerSuppliesDescription` of device 1 (a column: one row per supply).
pub const PRT_MARKER_SUPPLIES_DESCRIPTION: &[u32] = &[1, 3, 6, 1, 2, 1, 43, 11, 1, 1, 6, 1];
/// `prtMarkerSuppliesMaxCapacity` of device 1.
pub const PRT_MARKER_SUPPLIES_MAX_CAPACITY: &[u32] = &[1, 3, 6, 1, 2, 1, 43, 11, 1, 1, 8, 1];
/// `prtMarkerSuppliesLevel` of device 1.
pub const PRT_MARKER_SUPPLIES_LEVEL: &[u32] = &[1, 3, 6, 1, 2, 1, 43, 11, 1, 1, 9, 1];

/// `prtInputMaxCapacity` of device 1 (a column: one row per input tray).
pub const PRT_INPUT_MAX_CAPACITY: &[u32] = &[1, 3, 6, 1, 2, 1, 43, 8, 2, 1, 9, 1];
/// `prtInputCurrentLevel` of device 1.
pub const PRT_INPUT_CURRENT_LEVEL: &[u32] = &[1, 3, 6, 1, 2, 1, 43, 8, 2, 1, 10, 1];
/// `prtInputName` of device 1.
pub const PRT_INPUT_NAME: &[u32] = &[1, 3, 6, 1, 2, 1, 43, 8, 2, 1, 13, 1];

/// `prtAlertEntry`: walked whole; a cell is `prtAlertEntry.COLUMN.DEVICE.ROW`.
pub const PRT_ALERT_ENTRY: &[u32] = &[1, 3, 6, 1, 2, 1, 43, 18, 1, 1];

/// The columns of `prtAlertEntry` (RFC 3805).
pub mod alert_column {
    pub const SEVERITY_LEVEL: u32 = 2;
    pub const TRAINING_LEVEL: u32 = 3;
    pub const GROUP: u32 = 4;
    pub const GROUP_INDEX: u32 = 5;
    pub const LOCATION: u32 = 6;
    pub const CODE: u32 = 7;
    pub const DESCRIPTION: u32 = 8;
    pub const TIME: u32 = 9;
}

/// The name of one of the objects above, for messages.
pub fn name(oid: &[u32]) -> &'static str {
    match oid {
        HR_DEVICE_STATUS => "hrDeviceStatus",
        HR_PRINTER_STATUS => "hrPrinterStatus",
        HR_PRINTER_DETECTED_ERROR_STATE => "hrPrinterDetectedErrorState",
        PRT_MARKER_COUNTER_UNIT => "prtMarkerCounterUnit",
        PRT_MARKER_LIFE_COUNT => "prtMarkerLifeCount",
        PRT_MARKER_SUPPLIES_DESCRIPTION => "prtMarkerSuppliesDescription",
        PRT_MARKER_SUPPLIES_MAX_CAPACITY => "prtMarkerSuppliesMaxCapacity",
        PRT_MARKER_SUPPLIES_LEVEL => "prtMarkerSuppliesLevel",
        PRT_INPUT_MAX_CAPACITY => "prtInputMaxCapacity",
        PRT_INPUT_CURRENT_LEVEL => "prtInputCurrentLevel",
        PRT_INPUT_NAME => "prtInputName",
        PRT_ALERT_ENTRY => "prtAlertEntry",
        _ => "an object",
    }
}
