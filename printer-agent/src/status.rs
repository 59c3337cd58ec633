//! The latest state of every device of the agent, shared by the drivers and sent to the
//! dispatcher (for `dispatcher fleet`) whenever one changes.

use std::collections::BTreeMap;
use std::sync::Mutex;

use pressrun_proto::v1::DeviceStatus;
use tokio::sync::Notify;

/// Device states, by device name.
#[derive(Default)]
pub struct Statuses {
    map: Mutex<BTreeMap<String, DeviceStatus>>,
    /// Device names changed since the link last took them.
    changed: Mutex<Vec<String>>,
    pub notify: Notify,
}

impl Statuses {
    /// Changes a device's state through `f`; the link hears about it if it changed.
    pub fn update(&self, device: &str, f: impl FnOnce(&mut DeviceStatus)) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let s = map
            .entry(device.to_string())
            .or_insert_with(|| DeviceStatus {
                device: device.to_string(),
                state: "unknown".into(),
                ..Default::default()
            });
        let before = s.clone();
        f(s);
        if *s != before {
            noticed(&before, s);
            self.changed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(device.to_string());
            self.notify.notify_one();
        }
    }

    /// The states changed since the last call.
    pub fn take_changed(&self) -> Vec<DeviceStatus> {
        let names = std::mem::take(&mut *self.changed.lock().unwrap_or_else(|e| e.into_inner()));
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let mut seen = std::collections::BTreeSet::new();
        names
            .into_iter()
            .filter(|n| seen.insert(n.clone()))
            .filter_map(|n| map.get(&n).cloned())
            .collect()
    }

    /// Every device's state (after a reconnect).
    pub fn all(&self) -> Vec<DeviceStatus> {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// One device's state.
    pub fn get(&self, device: &str) -> Option<DeviceStatus> {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(device)
            .cloned()
    }
}

/// Reasons that come from the printer's SNMP agent carry this prefix, so that the IPP
/// watcher and the SNMP watcher each replace only their own.
pub const SNMP: &str = "snmp:";

/// Replaces the items of one source (SNMP's, named with the [`SNMP`] prefix, or
/// everything else), keeping the other's: the device's own first, SNMP's after.
fn replace_source<T>(items: &mut Vec<T>, from_snmp: bool, new: Vec<T>, name: fn(&T) -> &str) {
    let mut kept: Vec<T> = std::mem::take(items)
        .into_iter()
        .filter(|x| name(x).starts_with(SNMP) != from_snmp)
        .collect();
    if from_snmp {
        kept.extend(new);
    } else {
        kept.splice(0..0, new);
    }
    *items = kept;
}

/// Replaces the reasons of one source, keeping the other's.
pub fn replace_reasons(s: &mut DeviceStatus, from_snmp: bool, new: Vec<String>) {
    replace_source(&mut s.reasons, from_snmp, new, |r| r.as_str());
}

/// The same for the supplies.
pub fn replace_supplies(
    s: &mut DeviceStatus,
    from_snmp: bool,
    new: Vec<pressrun_proto::v1::Supply>,
) {
    replace_source(&mut s.supplies, from_snmp, new, |x| x.name.as_str());
}

/// The reasons counted by name: IPP `printer-state-reasons` keywords (RFC 8011, PWG
/// 5100.9) and the SNMP conditions; any other reason is counted as `other`, so a device
/// cannot grow the metric's series without bound.
const KNOWN: &[&str] = &[
    "media-jam",
    "media-empty",
    "media-needed",
    "media-low",
    "cover-open",
    "door-open",
    "interlock-open",
    "input-tray-missing",
    "output-tray-missing",
    "output-area-full",
    "output-area-almost-full",
    "marker-supply-empty",
    "marker-supply-low",
    "marker-waste-full",
    "marker-waste-almost-full",
    "toner-empty",
    "toner-low",
    "offline",
    "paused",
    "moving-to-paused",
    "shutdown",
    "spool-area-full",
    "connecting-to-device",
    "timed-out",
    "stopped-partly",
    "stopping",
    "fuser-over-temp",
    "fuser-under-temp",
    "developer-empty",
    "developer-low",
    "opc-life-over",
    "opc-near-eol",
    "other",
    "snmp:lowPaper",
    "snmp:noPaper",
    "snmp:lowToner",
    "snmp:noToner",
    "snmp:doorOpen",
    "snmp:jammed",
    "snmp:offline",
    "snmp:serviceRequested",
    "snmp:inputTrayMissing",
    "snmp:outputTrayMissing",
    "snmp:markerSupplyMissing",
    "snmp:outputNearFull",
    "snmp:outputFull",
    "snmp:inputTrayEmpty",
    "snmp:overduePreventMaint",
    "snmp:device-unknown",
    "snmp:device-warning",
    "snmp:device-testing",
    "snmp:device-down",
    "snmp:unreachable",
];

/// A reason as a metric label: a known keyword; `snmp:alert` for any critical SNMP
/// alert; the state's name for a free text while unreachable, stopped or down (an error
/// message); else `other`.
fn label(reason: &str, state: &str) -> String {
    if let Some(k) = KNOWN.iter().find(|k| **k == reason) {
        return (*k).to_string();
    }
    if reason.starts_with("snmp:alert-") {
        return "snmp:alert".to_string();
    }
    let keyword = reason
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b':' || b == b'_');
    if !keyword && matches!(state, "unreachable" | "stopped" | "down") {
        state.to_string()
    } else {
        "other".to_string()
    }
}

/// Logs and counts what changed on a device: its state, and every reason that appeared
/// (a jam, media empty, a cover open, an SNMP condition, the line lost) or cleared.
fn noticed(before: &DeviceStatus, now: &DeviceStatus) {
    let device = &now.device;
    if before.state != now.state {
        tracing::info!(%device, from = %before.state, to = %now.state, reasons = ?now.reasons, "device state changed");
        metrics::counter!("pressrun_agent_device_state_changes_total", "device" => device.clone(), "state" => now.state.clone())
            .increment(1);
    }
    for r in now.reasons.iter().filter(|r| !before.reasons.contains(r)) {
        if r == "none" {
            continue;
        }
        tracing::warn!(%device, state = %now.state, reason = %r, "device reports a condition");
        metrics::counter!("pressrun_agent_device_alerts_total", "device" => device.clone(), "reason" => label(r, &now.state))
            .increment(1);
    }
    for r in before.reasons.iter().filter(|r| !now.reasons.contains(r)) {
        if r != "none" {
            tracing::info!(%device, reason = %r, "device condition cleared");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_source_replaces_only_its_own_reasons() {
        let mut s = DeviceStatus::default();
        replace_reasons(&mut s, false, vec!["media-jam".into()]);
        replace_reasons(&mut s, true, vec!["snmp:jammed".into()]);
        assert_eq!(s.reasons, ["media-jam", "snmp:jammed"]);
        replace_reasons(&mut s, false, vec![]);
        assert_eq!(s.reasons, ["snmp:jammed"]);
        replace_reasons(&mut s, false, vec!["cover-open".into()]);
        replace_reasons(&mut s, true, vec![]);
        assert_eq!(s.reasons, ["cover-open"]);
    }

    #[test]
    fn labels_are_a_fixed_set() {
        assert_eq!(label("snmp:doorOpen", "stopped"), "snmp:doorOpen");
        assert_eq!(
            label("connection refused (os error 111)", "unreachable"),
            "unreachable"
        );
        assert_eq!(label(&"x".repeat(65), "idle"), "other");
        assert_eq!(label("media-jam", "stopped"), "media-jam");
        assert_eq!(label("snmp:alert-808", "idle"), "snmp:alert");
        assert_eq!(label("vendor-made-up-42", "idle"), "other");
    }
}
