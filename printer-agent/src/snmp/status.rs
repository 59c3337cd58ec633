//! What a printer's SNMP values mean (RFC 2790, RFC 3805), as plain data, and the one
//! pure function that turns a poll's answers into a [`PrinterStatus`].
//!
//! Nothing is defaulted: a value of the wrong type, or a number the RFC does not define,
//! is an error. Table rows are joined by index across the columns walked one after
//! another; a row that some required column lacks (it appeared or vanished between two
//! walks, or the agent skipped a cell) is dropped and counted in
//! [`PrinterStatus::torn_rows`].

use std::collections::BTreeMap;

use super::oids::{self, alert_column};
use super::wire::{Oid, Value, Varbind};

/// One poll of a printer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrinterStatus {
    /// `hrDeviceStatus`.
    pub device: DeviceStatus,
    /// `hrPrinterStatus`.
    pub printer: PrinterState,
    /// `hrPrinterDetectedErrorState`.
    pub errors: ErrorState,
    /// `prtMarkerLifeCount`: a Counter32, so it wraps at 2^32 (see
    /// [`LifeCountWitness`](super::LifeCountWitness)).
    pub life_count: u32,
    /// `prtMarkerCounterUnit`, the unit of `life_count` (PrtMarkerCounterUnitTC:
    /// [`COUNTER_UNIT_IMPRESSIONS`] = 7, 8 = sheets, …).
    pub life_count_unit: i32,
    /// `prtMarkerSuppliesTable`, in row order.
    pub supplies: Vec<Supply>,
    /// `prtInputTable`, in row order.
    pub inputs: Vec<InputTray>,
    /// `prtAlertTable`, in row order.
    pub alerts: Vec<Alert>,
    /// Table rows dropped because a required column had no cell for them.
    pub torn_rows: u32,
}

/// `prtMarkerCounterUnit` for impressions.
pub const COUNTER_UNIT_IMPRESSIONS: i32 = 7;

impl PrinterStatus {
    /// Whether `life_count` counts impressions, the unit IPP reports.
    pub fn counts_impressions(&self) -> bool {
        self.life_count_unit == COUNTER_UNIT_IMPRESSIONS
    }
}

/// `hrDeviceStatus` (RFC 2790).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceStatus {
    Unknown,
    Running,
    Warning,
    Testing,
    Down,
}

impl DeviceStatus {
    /// From the enum's number; `None` for a value RFC 2790 does not define.
    pub fn from_snmp(n: i32) -> Option<Self> {
        Some(match n {
            1 => Self::Unknown,
            2 => Self::Running,
            3 => Self::Warning,
            4 => Self::Testing,
            5 => Self::Down,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Running => "running",
            Self::Warning => "warning",
            Self::Testing => "testing",
            Self::Down => "down",
        }
    }
}

/// `hrPrinterStatus` (RFC 2790). A jam reads `Other` with the device `Down`
/// (RFC 3805, 2.2.13.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrinterState {
    Other,
    Unknown,
    Idle,
    Printing,
    Warmup,
}

impl PrinterState {
    /// From the enum's number; `None` for a value RFC 2790 does not define.
    pub fn from_snmp(n: i32) -> Option<Self> {
        Some(match n {
            1 => Self::Other,
            2 => Self::Unknown,
            3 => Self::Idle,
            4 => Self::Printing,
            5 => Self::Warmup,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Other => "other",
            Self::Unknown => "unknown",
            Self::Idle => "idle",
            Self::Printing => "printing",
            Self::Warmup => "warmup",
        }
    }
}

/// A condition of `hrPrinterDetectedErrorState` (RFC 3805 updates RFC 2790's list).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Condition {
    LowPaper,
    NoPaper,
    LowToner,
    NoToner,
    DoorOpen,
    Jammed,
    Offline,
    ServiceRequested,
    InputTrayMissing,
    OutputTrayMissing,
    MarkerSupplyMissing,
    OutputNearFull,
    OutputFull,
    InputTrayEmpty,
    OverduePreventMaint,
}

impl Condition {
    /// All conditions, in bit order: `ALL[n]` is bit `n`.
    pub const ALL: [Condition; 15] = [
        Self::LowPaper,
        Self::NoPaper,
        Self::LowToner,
        Self::NoToner,
        Self::DoorOpen,
        Self::Jammed,
        Self::Offline,
        Self::ServiceRequested,
        Self::InputTrayMissing,
        Self::OutputTrayMissing,
        Self::MarkerSupplyMissing,
        Self::OutputNearFull,
        Self::OutputFull,
        Self::InputTrayEmpty,
        Self::OverduePreventMaint,
    ];

    /// The bit number: bit 0 is the most significant bit of the first octet.
    pub fn bit(self) -> u32 {
        self as u32
    }

    /// The RFC's name (`lowPaper`, `jammed`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LowPaper => "lowPaper",
            Self::NoPaper => "noPaper",
            Self::LowToner => "lowToner",
            Self::NoToner => "noToner",
            Self::DoorOpen => "doorOpen",
            Self::Jammed => "jammed",
            Self::Offline => "offline",
            Self::ServiceRequested => "serviceRequested",
            Self::InputTrayMissing => "inputTrayMissing",
            Self::OutputTrayMissing => "outputTrayMissing",
            Self::MarkerSupplyMissing => "markerSupplyMissing",
            Self::OutputNearFull => "outputNearFull",
            Self::OutputFull => "outputFull",
            Self::InputTrayEmpty => "inputTrayEmpty",
            Self::OverduePreventMaint => "overduePreventMaint",
        }
    }
}

/// `hrPrinterDetectedErrorState`, decoded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErrorState {
    /// The conditions whose bit is set, in bit order.
    pub conditions: Vec<Condition>,
    /// Set bits that no RFC names (15 and beyond), kept rather than dropped.
    pub unknown_bits: Vec<u32>,
}

/// `hrPrinterDetectedErrorState` is longer than this: not a bit string we trust.
const MAX_ERROR_STATE_OCTETS: usize = 8;

impl ErrorState {
    /// Decodes the octet string: bit 0 is the most significant bit of the first octet
    /// (RFC 3805). Agents may send fewer octets than there are conditions (RFC 2790
    /// defined only the first eight): missing octets are zero.
    pub fn from_octets(octets: &[u8]) -> Result<Self, String> {
        if octets.len() > MAX_ERROR_STATE_OCTETS {
            return Err(format!(
                "{} is {} octets long; a bit string of at most {MAX_ERROR_STATE_OCTETS} is expected",
                oids::name(oids::HR_PRINTER_DETECTED_ERROR_STATE),
                octets.len()
            ));
        }
        let mut state = ErrorState::default();
        for (i, octet) in octets.iter().enumerate() {
            for b in 0..8 {
                if octet & (0x80 >> b) != 0 {
                    let bit = (i * 8 + b) as u32;
                    match Condition::ALL.get(bit as usize) {
                        Some(&c) => state.conditions.push(c),
                        None => state.unknown_bits.push(bit),
                    }
                }
            }
        }
        Ok(state)
    }

    /// Whether `c` is set.
    pub fn has(&self, c: Condition) -> bool {
        self.conditions.contains(&c)
    }

    /// Whether no bit at all is set.
    pub fn is_clear(&self) -> bool {
        self.conditions.is_empty() && self.unknown_bits.is_empty()
    }
}

/// A capacity or level of the Printer MIB (`prtMarkerSuppliesLevel`,
/// `prtInputCurrentLevel`, and their maximum capacities).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Amount {
    /// In the row's unit (`prtMarkerSuppliesSupplyUnit`, `prtInputCapacityUnit`).
    Value(u32),
    /// -1: `other`.
    Other,
    /// -2: `unknown`.
    Unknown,
    /// -3: at least one unit remains (levels only).
    SomeRemaining,
}

impl Amount {
    /// From the integer; `None` for a negative value the RFC does not define (-3 only
    /// for a level).
    pub fn from_snmp(n: i32, is_level: bool) -> Option<Self> {
        Some(match n {
            0.. => Self::Value(n.unsigned_abs()),
            -1 => Self::Other,
            -2 => Self::Unknown,
            -3 if is_level => Self::SomeRemaining,
            _ => return None,
        })
    }
}

/// A row of `prtMarkerSuppliesTable` (toner, ink, waste toner, fuser, …).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Supply {
    /// `prtMarkerSuppliesIndex`.
    pub index: u32,
    /// `prtMarkerSuppliesDescription`, when the agent has it.
    pub description: Option<String>,
    pub level: Amount,
    pub max: Amount,
}

/// A row of `prtInputTable`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputTray {
    /// `prtInputIndex`.
    pub index: u32,
    /// `prtInputName`, when the agent has it.
    pub name: Option<String>,
    pub level: Amount,
    pub max: Amount,
}

/// `prtAlertSeverityLevel` (RFC 3805).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertSeverity {
    Other,
    Critical,
    Warning,
    WarningBinaryChangeEvent,
}

impl AlertSeverity {
    /// From the enum's number; `None` for a value RFC 3805 does not define.
    pub fn from_snmp(n: i32) -> Option<Self> {
        Some(match n {
            1 => Self::Other,
            3 => Self::Critical,
            4 => Self::Warning,
            5 => Self::WarningBinaryChangeEvent,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Other => "other",
            Self::Critical => "critical",
            Self::Warning => "warning",
            Self::WarningBinaryChangeEvent => "warningBinaryChangeEvent",
        }
    }
}

/// Some `prtAlertCode` values (PrtAlertCodeTC).
pub mod alert_code {
    /// `jam`.
    pub const JAM: i32 = 8;
    /// `inputMediaSupplyEmpty`.
    pub const INPUT_MEDIA_SUPPLY_EMPTY: i32 = 808;
}

/// A row of `prtAlertTable`: an alert the printer has now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    /// `prtAlertIndex`.
    pub index: u32,
    pub severity: AlertSeverity,
    /// `prtAlertTrainingLevel`, when the agent has it.
    pub training: Option<i32>,
    /// `prtAlertGroup` (PrtAlertGroupTC; 13 = mediaPath).
    pub group: i32,
    /// `prtAlertGroupIndex`, when the agent has it.
    pub group_index: Option<i32>,
    /// `prtAlertLocation`, when the agent has it.
    pub location: Option<i32>,
    /// `prtAlertCode` (PrtAlertCodeTC; see [`alert_code`]).
    pub code: i32,
    /// `prtAlertDescription` (lossy UTF-8).
    pub description: String,
    /// `prtAlertTime`, in hundredths of a second of `sysUpTime`, when the agent has it.
    pub time: Option<u32>,
}

/// The objects read with one GET, in the order [`Answers::scalars`] holds their values.
pub(crate) const SCALARS: [&[u32]; 5] = [
    oids::HR_DEVICE_STATUS,
    oids::HR_PRINTER_STATUS,
    oids::HR_PRINTER_DETECTED_ERROR_STATE,
    oids::PRT_MARKER_COUNTER_UNIT,
    oids::PRT_MARKER_LIFE_COUNT,
];

/// What one poll read: the GET's values (checked against the names asked) and the
/// walks (each checked to lie in its subtree).
#[derive(Clone, Debug, Default)]
pub(crate) struct Answers {
    pub scalars: Vec<Value>,
    pub supplies_description: Vec<Varbind>,
    pub supplies_max: Vec<Varbind>,
    pub supplies_level: Vec<Varbind>,
    pub input_name: Vec<Varbind>,
    pub input_max: Vec<Varbind>,
    pub input_level: Vec<Varbind>,
    pub alerts: Vec<Varbind>,
}

/// Turns a poll's answers into a status, or says what does not fit.
pub(crate) fn decode(a: &Answers) -> Result<PrinterStatus, String> {
    let [device, printer, errors, unit, life] = a.scalars.as_slice() else {
        return Err(format!(
            "{} values for {} objects",
            a.scalars.len(),
            SCALARS.len()
        ));
    };
    let device = int32(oids::HR_DEVICE_STATUS, device)?;
    let device = DeviceStatus::from_snmp(device)
        .ok_or_else(|| undefined(oids::HR_DEVICE_STATUS, device, "RFC 2790"))?;
    let printer = int32(oids::HR_PRINTER_STATUS, printer)?;
    let printer = PrinterState::from_snmp(printer)
        .ok_or_else(|| undefined(oids::HR_PRINTER_STATUS, printer, "RFC 2790"))?;
    let errors = match errors {
        Value::OctetString(o) => ErrorState::from_octets(o)?,
        v => {
            return Err(wrong_type(
                oids::HR_PRINTER_DETECTED_ERROR_STATE,
                v,
                "OCTET STRING",
            ));
        }
    };
    let life_count_unit = int32(oids::PRT_MARKER_COUNTER_UNIT, unit)?;
    let life_count = match life {
        Value::Counter32(n) => *n,
        v => return Err(wrong_type(oids::PRT_MARKER_LIFE_COUNT, v, "Counter32")),
    };

    let mut torn = 0;
    let supplies = rows3(
        (
            oids::PRT_MARKER_SUPPLIES_DESCRIPTION,
            &a.supplies_description,
        ),
        (oids::PRT_MARKER_SUPPLIES_MAX_CAPACITY, &a.supplies_max),
        (oids::PRT_MARKER_SUPPLIES_LEVEL, &a.supplies_level),
        &mut torn,
    )?
    .into_iter()
    .map(|(index, label, max, level)| {
        Ok(Supply {
            index,
            description: label,
            level: level_of(oids::PRT_MARKER_SUPPLIES_LEVEL, level, true)?,
            max: level_of(oids::PRT_MARKER_SUPPLIES_MAX_CAPACITY, max, false)?,
        })
    })
    .collect::<Result<Vec<_>, String>>()?;
    let inputs = rows3(
        (oids::PRT_INPUT_NAME, &a.input_name),
        (oids::PRT_INPUT_MAX_CAPACITY, &a.input_max),
        (oids::PRT_INPUT_CURRENT_LEVEL, &a.input_level),
        &mut torn,
    )?
    .into_iter()
    .map(|(index, label, max, level)| {
        Ok(InputTray {
            index,
            name: label,
            level: level_of(oids::PRT_INPUT_CURRENT_LEVEL, level, true)?,
            max: level_of(oids::PRT_INPUT_MAX_CAPACITY, max, false)?,
        })
    })
    .collect::<Result<Vec<_>, String>>()?;
    let alerts = alerts(&a.alerts, &mut torn)?;
    Ok(PrinterStatus {
        device,
        printer,
        errors,
        life_count,
        life_count_unit,
        supplies,
        inputs,
        alerts,
        torn_rows: torn,
    })
}

fn wrong_type(oid: &[u32], v: &Value, want: &str) -> String {
    format!(
        "{} ({}) is {}, not {want}",
        oids::name(oid),
        Oid::new(oid),
        v.type_name()
    )
}

fn undefined(oid: &[u32], n: i32, rfc: &str) -> String {
    format!("{} is {n}, which {rfc} does not define", oids::name(oid))
}

/// An INTEGER that fits Integer32.
fn int32(oid: &[u32], v: &Value) -> Result<i32, String> {
    match v {
        Value::Integer(n) => {
            i32::try_from(*n).map_err(|_| format!("{} is {n}, outside Integer32", oids::name(oid)))
        }
        v => Err(wrong_type(oid, v, "INTEGER")),
    }
}

fn text(v: &Value, what: &str) -> Result<String, String> {
    match v {
        Value::OctetString(o) => Ok(String::from_utf8_lossy(o).into_owned()),
        v => Err(format!("{what} is {}, not OCTET STRING", v.type_name())),
    }
}

fn level_of(column: &[u32], v: &Value, is_level: bool) -> Result<Amount, String> {
    let n = int32(column, v)?;
    Amount::from_snmp(n, is_level).ok_or_else(|| undefined(column, n, "RFC 3805"))
}

/// A walked column of device 1, by row: every cell must be `column.ROW`.
fn column<'a>(top: &[u32], walked: &'a [Varbind]) -> Result<BTreeMap<u32, &'a Value>, String> {
    let top_oid = Oid::new(top);
    let mut rows = BTreeMap::new();
    for vb in walked {
        match vb.oid.suffix(&top_oid) {
            Some(&[row]) => {
                if rows.insert(row, &vb.value).is_some() {
                    return Err(format!("{} row {row} came twice", oids::name(top)));
                }
            }
            _ => {
                return Err(format!(
                    "{} has a cell {} whose index is not one number",
                    oids::name(top),
                    vb.oid
                ));
            }
        }
    }
    Ok(rows)
}

/// One complete row of a table with a label column and two required integer columns.
type Row3<'a> = (u32, Option<String>, &'a Value, &'a Value);

/// Joins a label column (optional cells) and two required columns by row.
fn rows3<'a>(
    label: (&[u32], &'a [Varbind]),
    max: (&[u32], &'a [Varbind]),
    level: (&[u32], &'a [Varbind]),
    torn: &mut u32,
) -> Result<Vec<Row3<'a>>, String> {
    let labels = column(label.0, label.1)?;
    let maxes = column(max.0, max.1)?;
    let levels = column(level.0, level.1)?;
    let all: std::collections::BTreeSet<u32> = labels
        .keys()
        .chain(maxes.keys())
        .chain(levels.keys())
        .copied()
        .collect();
    let mut out = Vec::new();
    for row in all {
        let (Some(m), Some(l)) = (maxes.get(&row), levels.get(&row)) else {
            *torn += 1;
            continue;
        };
        let name = labels
            .get(&row)
            .map(|v| text(v, &format!("{} row {row}", oids::name(label.0))))
            .transpose()?;
        out.push((row, name, *m, *l));
    }
    Ok(out)
}

/// The walked `prtAlertEntry`, rows of device 1 only.
fn alerts(walked: &[Varbind], torn: &mut u32) -> Result<Vec<Alert>, String> {
    let top = Oid::new(oids::PRT_ALERT_ENTRY);
    let mut rows: BTreeMap<u32, BTreeMap<u32, &Value>> = BTreeMap::new();
    for vb in walked {
        let Some(&[col, device, row]) = vb.oid.suffix(&top) else {
            return Err(format!(
                "prtAlertEntry has a cell {} that is not COLUMN.DEVICE.ROW",
                vb.oid
            ));
        };
        if device != 1 {
            continue;
        }
        if rows
            .entry(row)
            .or_default()
            .insert(col, &vb.value)
            .is_some()
        {
            return Err(format!("prtAlertEntry {col}.1.{row} came twice"));
        }
    }
    let mut out = Vec::new();
    for (row, cells) in rows {
        let cell = |c: u32| cells.get(&c).copied();
        let (Some(severity), Some(group), Some(code), Some(description)) = (
            cell(alert_column::SEVERITY_LEVEL),
            cell(alert_column::GROUP),
            cell(alert_column::CODE),
            cell(alert_column::DESCRIPTION),
        ) else {
            *torn += 1;
            continue;
        };
        let what = |c: u32| format!("prtAlertEntry {c}.1.{row}");
        let int = |c: u32, v: &Value| match v {
            Value::Integer(n) => {
                i32::try_from(*n).map_err(|_| format!("{} is {n}, outside Integer32", what(c)))
            }
            v => Err(format!("{} is {}, not INTEGER", what(c), v.type_name())),
        };
        let opt_int = |c: u32| cell(c).map(|v| int(c, v)).transpose();
        let severity_n = int(alert_column::SEVERITY_LEVEL, severity)?;
        let severity = AlertSeverity::from_snmp(severity_n).ok_or_else(|| {
            format!(
                "prtAlertSeverityLevel of row {row} is {severity_n}, which RFC 3805 does not define"
            )
        })?;
        let time = match cell(alert_column::TIME) {
            None => None,
            Some(Value::TimeTicks(t)) => Some(*t),
            Some(v) => {
                return Err(format!(
                    "{} is {}, not TimeTicks",
                    what(alert_column::TIME),
                    v.type_name()
                ));
            }
        };
        out.push(Alert {
            index: row,
            severity,
            training: opt_int(alert_column::TRAINING_LEVEL)?,
            group: int(alert_column::GROUP, group)?,
            group_index: opt_int(alert_column::GROUP_INDEX)?,
            location: opt_int(alert_column::LOCATION)?,
            code: int(alert_column::CODE, code)?,
            description: text(description, &what(alert_column::DESCRIPTION))?,
            time,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vb(top: &[u32], suffix: &[u32], value: Value) -> Varbind {
        Varbind {
            oid: Oid::new(top).child(suffix),
            value,
        }
    }

    fn alert_row(row: u32, severity: i64, group: i64, code: i64, text: &str) -> Vec<Varbind> {
        let e = oids::PRT_ALERT_ENTRY;
        vec![
            vb(e, &[2, 1, row], Value::Integer(severity)),
            vb(e, &[3, 1, row], Value::Integer(4)),
            vb(e, &[4, 1, row], Value::Integer(group)),
            vb(e, &[5, 1, row], Value::Integer(1)),
            vb(e, &[6, 1, row], Value::Integer(0)),
            vb(e, &[7, 1, row], Value::Integer(code)),
            vb(
                e,
                &[8, 1, row],
                Value::OctetString(text.as_bytes().to_vec()),
            ),
            vb(e, &[9, 1, row], Value::TimeTicks(1500)),
        ]
    }

    /// The simulated printer's answers when idle, as the peer notes list them.
    fn idle() -> Answers {
        Answers {
            scalars: vec![
                Value::Integer(2),
                Value::Integer(3),
                Value::OctetString(vec![0, 0]),
                Value::Integer(7),
                Value::Counter32(1234),
            ],
            supplies_description: vec![vb(
                oids::PRT_MARKER_SUPPLIES_DESCRIPTION,
                &[1],
                Value::OctetString(b"Black Toner".to_vec()),
            )],
            supplies_max: vec![vb(
                oids::PRT_MARKER_SUPPLIES_MAX_CAPACITY,
                &[1],
                Value::Integer(100),
            )],
            supplies_level: vec![vb(
                oids::PRT_MARKER_SUPPLIES_LEVEL,
                &[1],
                Value::Integer(-3),
            )],
            input_name: vec![vb(
                oids::PRT_INPUT_NAME,
                &[1],
                Value::OctetString(b"Tray 1".to_vec()),
            )],
            input_max: vec![vb(oids::PRT_INPUT_MAX_CAPACITY, &[1], Value::Integer(500))],
            input_level: vec![vb(oids::PRT_INPUT_CURRENT_LEVEL, &[1], Value::Integer(250))],
            alerts: Vec::new(),
        }
    }

    #[test]
    fn error_bits_count_from_the_first_octets_most_significant_bit() {
        // RFC 3805: a jam is bit 5, 0x04 of the first octet; inputTrayEmpty is bit 13.
        let s = ErrorState::from_octets(&[0x04, 0x00]).unwrap();
        assert_eq!(s.conditions, vec![Condition::Jammed]);
        assert!(s.has(Condition::Jammed) && !s.is_clear());
        let s = ErrorState::from_octets(&[0x00, 0x04]).unwrap();
        assert_eq!(s.conditions, vec![Condition::InputTrayEmpty]);
        let s = ErrorState::from_octets(&[0x80, 0x02]).unwrap();
        assert_eq!(
            s.conditions,
            vec![Condition::LowPaper, Condition::OverduePreventMaint]
        );
        // Every bit, one at a time, names the condition at its position.
        for (n, c) in Condition::ALL.iter().enumerate() {
            let mut octets = [0u8; 2];
            octets[n / 8] = 0x80 >> (n % 8);
            let s = ErrorState::from_octets(&octets).unwrap();
            assert_eq!(s.conditions, vec![*c], "bit {n}");
            assert_eq!(c.bit() as usize, n);
        }
        // All set: all fifteen names, in order, and bit 15 kept as unknown.
        let s = ErrorState::from_octets(&[0xff, 0xff]).unwrap();
        assert_eq!(s.conditions, Condition::ALL.to_vec());
        assert_eq!(s.unknown_bits, vec![15]);
        assert_eq!(
            Condition::ALL.map(Condition::as_str)[..6],
            [
                "lowPaper", "noPaper", "lowToner", "noToner", "doorOpen", "jammed"
            ]
        );
    }

    #[test]
    fn short_and_empty_error_strings_are_clear_bits_and_long_ones_are_refused() {
        assert!(ErrorState::from_octets(&[]).unwrap().is_clear());
        // One octet (RFC 2790 agents): offline.
        let s = ErrorState::from_octets(&[0x02]).unwrap();
        assert_eq!(s.conditions, vec![Condition::Offline]);
        // A third octet: bits no RFC names, kept.
        let s = ErrorState::from_octets(&[0, 0, 0x81]).unwrap();
        assert!(s.conditions.is_empty());
        assert_eq!(s.unknown_bits, vec![16, 23]);
        assert!(ErrorState::from_octets(&[0; 9]).is_err());
    }

    #[test]
    fn an_idle_printer_decodes_to_plain_data() {
        let s = decode(&idle()).unwrap();
        assert_eq!(s.device, DeviceStatus::Running);
        assert_eq!(s.printer, PrinterState::Idle);
        assert!(s.errors.is_clear());
        assert_eq!((s.life_count, s.counts_impressions()), (1234, true));
        assert_eq!(
            s.supplies,
            vec![Supply {
                index: 1,
                description: Some("Black Toner".into()),
                level: Amount::SomeRemaining,
                max: Amount::Value(100),
            }]
        );
        assert_eq!(
            s.inputs,
            vec![InputTray {
                index: 1,
                name: Some("Tray 1".into()),
                level: Amount::Value(250),
                max: Amount::Value(500),
            }]
        );
        assert!(s.alerts.is_empty());
        assert_eq!(s.torn_rows, 0);
    }

    #[test]
    fn a_jam_reads_as_down_other_jammed_and_an_alert_row() {
        let mut a = idle();
        a.scalars[0] = Value::Integer(5);
        a.scalars[1] = Value::Integer(1);
        a.scalars[2] = Value::OctetString(vec![0x04, 0x00]);
        // Two rows, walked column by column as an agent answers; one of another device.
        let mut cells = alert_row(1, 3, 13, 8, "Paper jam");
        cells.extend(alert_row(4, 4, 8, 808, "Tray 1 empty"));
        cells.push(vb(oids::PRT_ALERT_ENTRY, &[2, 2, 1], Value::Integer(3)));
        cells.sort_by(|a, b| a.oid.cmp(&b.oid));
        a.alerts = cells;
        let s = decode(&a).unwrap();
        assert_eq!(
            (s.device, s.printer, s.errors.conditions.clone()),
            (
                DeviceStatus::Down,
                PrinterState::Other,
                vec![Condition::Jammed]
            )
        );
        assert_eq!(s.alerts.len(), 2, "{:?}", s.alerts);
        let jam = &s.alerts[0];
        assert_eq!(
            (jam.index, jam.severity, jam.group, jam.code),
            (1, AlertSeverity::Critical, 13, alert_code::JAM)
        );
        assert_eq!(jam.description, "Paper jam");
        assert_eq!(
            (jam.training, jam.group_index, jam.location, jam.time),
            (Some(4), Some(1), Some(0), Some(1500))
        );
        assert_eq!(
            (s.alerts[1].index, s.alerts[1].severity, s.alerts[1].code),
            (
                4,
                AlertSeverity::Warning,
                alert_code::INPUT_MEDIA_SUPPLY_EMPTY
            )
        );
        assert_eq!(s.torn_rows, 0);
    }

    #[test]
    fn rows_missing_a_required_cell_are_dropped_and_counted() {
        let mut a = idle();
        a.input_level.clear();
        // An alert row whose code vanished between walks; optional cells may be absent.
        let mut cells = alert_row(1, 3, 13, 8, "Paper jam");
        cells.retain(|v| v.oid.arcs()[10] != alert_column::CODE);
        let mut short = alert_row(2, 4, 8, 808, "empty");
        short.retain(|v| v.oid.arcs()[10] != alert_column::TIME);
        cells.extend(short);
        a.alerts = cells;
        let s = decode(&a).unwrap();
        assert!(s.inputs.is_empty());
        assert_eq!(s.alerts.len(), 1);
        assert_eq!((s.alerts[0].index, s.alerts[0].time), (2, None));
        assert_eq!(s.torn_rows, 2);
        // A label cell alone is a torn row too; a missing label is None.
        let mut a = idle();
        a.supplies_description.clear();
        a.input_name.push(vb(
            oids::PRT_INPUT_NAME,
            &[2],
            Value::OctetString(b"Tray 2".to_vec()),
        ));
        let s = decode(&a).unwrap();
        assert_eq!(s.supplies[0].description, None);
        assert_eq!((s.inputs.len(), s.torn_rows), (1, 1));
    }

    #[test]
    fn wrong_types_and_undefined_numbers_are_errors() {
        let bad = |edit: &dyn Fn(&mut Answers)| {
            let mut a = idle();
            edit(&mut a);
            decode(&a).unwrap_err()
        };
        let e = bad(&|a| a.scalars[4] = Value::Integer(1234));
        assert!(
            e.contains("prtMarkerLifeCount") && e.contains("not Counter32"),
            "{e}"
        );
        let e = bad(&|a| a.scalars[0] = Value::OctetString(b"2".to_vec()));
        assert!(
            e.contains("hrDeviceStatus") && e.contains("not INTEGER"),
            "{e}"
        );
        let e = bad(&|a| a.scalars[2] = Value::Integer(4));
        assert!(e.contains("hrPrinterDetectedErrorState"), "{e}");
        let e = bad(&|a| a.scalars[0] = Value::Integer(6));
        assert!(e.contains("does not define"), "{e}");
        let e = bad(&|a| a.scalars[1] = Value::Integer(1 << 40));
        assert!(e.contains("outside Integer32"), "{e}");
        let e = bad(&|a| a.supplies_max[0].value = Value::Integer(-3));
        assert!(e.contains("prtMarkerSuppliesMaxCapacity is -3"), "{e}");
        let e = bad(&|a| a.input_level[0].value = Value::Integer(-4));
        assert!(e.contains("prtInputCurrentLevel is -4"), "{e}");
        let e = bad(&|a| a.input_name[0].value = Value::Integer(1));
        assert!(e.contains("prtInputName row 1"), "{e}");
        let e = bad(&|a| a.scalars.pop().map(drop).unwrap_or(()));
        assert!(e.contains("4 values for 5 objects"), "{e}");
        let e = bad(&|a| {
            a.supplies_level[0].oid = Oid::new(oids::PRT_MARKER_SUPPLIES_LEVEL).child(&[1, 1]);
        });
        assert!(e.contains("not one number"), "{e}");
        let e = bad(&|a| {
            a.alerts = alert_row(1, 2, 13, 8, "x");
        });
        assert!(e.contains("prtAlertSeverityLevel of row 1 is 2"), "{e}");
        let e = bad(&|a| {
            a.alerts = alert_row(1, 3, 13, 8, "x");
            a.alerts[7].value = Value::Counter32(1);
        });
        assert!(e.contains("not TimeTicks"), "{e}");
        let e = bad(&|a| {
            a.alerts = vec![vb(oids::PRT_ALERT_ENTRY, &[2, 1], Value::Integer(3))];
        });
        assert!(e.contains("COLUMN.DEVICE.ROW"), "{e}");
    }
}
