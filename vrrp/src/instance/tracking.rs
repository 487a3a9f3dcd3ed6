//! Tracked conditions and the effective priority they, and the arbiter's demotion,
//! produce. Pure bookkeeping: the state machine decides what a change means.

use thiserror::Error;

use super::config::TrackerConfig;

/// The priority of the address owner; trackers and demotion never move it (keepalived).
pub const OWNER_PRIORITY: u8 = 255;

/// A tracker report the instance cannot place.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TrackerError {
    #[error("no tracker named {name:?} on this instance")]
    Unknown { name: String },
}

/// One tracker as the instance sees it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackerStatus<'a> {
    pub name: &'a str,
    pub weight: i32,
    pub up: bool,
}

#[derive(Debug, Clone)]
struct Entry {
    name: String,
    weight: i32,
    up: bool,
}

#[derive(Debug, Clone)]
pub(super) struct Trackers {
    entries: Vec<Entry>,
}

impl Trackers {
    /// Every tracker starts up. keepalived's default too (`init_fail` is opt-in); a
    /// tracker that is really down says so on its first report, and starting "down"
    /// would hold every instance in FAULT until all checks have run once.
    pub fn new(cfgs: &[TrackerConfig]) -> Self {
        Trackers {
            entries: cfgs
                .iter()
                .map(|c| Entry {
                    name: c.name.clone(),
                    weight: c.weight,
                    up: true,
                })
                .collect(),
        }
    }

    /// Records a report; `Ok(true)` if it changed anything. Duplicate names (rejected
    /// by `validate`) all follow the report.
    pub fn set(&mut self, name: &str, up: bool) -> Result<bool, TrackerError> {
        let mut known = false;
        let mut changed = false;
        for e in self.entries.iter_mut().filter(|e| e.name == name) {
            known = true;
            changed |= e.up != up;
            e.up = up;
        }
        if known {
            Ok(changed)
        } else {
            Err(TrackerError::Unknown {
                name: name.to_owned(),
            })
        }
    }

    /// The first weight-0 tracker that is down, if any: the reason for FAULT.
    pub fn fault(&self) -> Option<&str> {
        self.entries
            .iter()
            .find(|e| e.weight == 0 && !e.up)
            .map(|e| e.name.as_str())
    }

    /// Up trackers with a positive weight add it; down trackers with a negative weight
    /// add it (so subtract). i64: no sum of i32s can overflow it.
    pub fn adjustment(&self) -> i64 {
        self.entries
            .iter()
            .filter(|e| (e.weight > 0 && e.up) || (e.weight < 0 && !e.up))
            .map(|e| i64::from(e.weight))
            .sum()
    }

    pub fn get(&self, name: &str) -> Option<bool> {
        self.entries.iter().find(|e| e.name == name).map(|e| e.up)
    }

    pub fn iter(&self) -> impl Iterator<Item = TrackerStatus<'_>> {
        self.entries.iter().map(|e| TrackerStatus {
            name: &e.name,
            weight: e.weight,
            up: e.up,
        })
    }
}

/// base + tracker adjustment − demotion, clamped to 1..=254; the owner stays 255.
///
/// The clamp follows keepalived: a tracked instance can neither reach 255 (which would
/// make it claim ownership) nor 0 (which on the wire means "I am leaving").
pub(super) fn effective_priority(base: u8, adjustment: i64, demotion: u8) -> u8 {
    if base == OWNER_PRIORITY {
        return OWNER_PRIORITY;
    }
    let p = (i64::from(base) + adjustment - i64::from(demotion)).clamp(1, 254);
    u8::try_from(p).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, weight: i32) -> TrackerConfig {
        TrackerConfig {
            name: name.into(),
            weight,
        }
    }

    #[test]
    fn weights_follow_keepalived() {
        let mut tr = Trackers::new(&[t("up+", 10), t("down-", -20), t("fault", 0)]);
        assert_eq!(tr.adjustment(), 10);
        assert_eq!(tr.set("down-", false), Ok(true));
        assert_eq!(tr.set("down-", false), Ok(false));
        assert_eq!(tr.adjustment(), -10);
        assert_eq!(tr.set("up+", false), Ok(true));
        assert_eq!(tr.adjustment(), -20);
        assert_eq!(tr.fault(), None);
        tr.set("fault", false).unwrap();
        assert_eq!(tr.fault(), Some("fault"));
        assert_eq!(
            tr.set("nope", true),
            Err(TrackerError::Unknown {
                name: "nope".into()
            })
        );
    }

    #[test]
    fn priority_clamps_and_owner_is_fixed() {
        assert_eq!(effective_priority(100, 10, 0), 110);
        assert_eq!(effective_priority(100, 500, 0), 254);
        assert_eq!(effective_priority(100, -500, 0), 1);
        assert_eq!(effective_priority(100, 0, 255), 1);
        assert_eq!(effective_priority(255, -100, 200), 255);
        assert_eq!(effective_priority(254, 10, 0), 254);
    }
}
