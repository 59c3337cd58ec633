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
