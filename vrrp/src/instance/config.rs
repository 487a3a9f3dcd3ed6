//! What an instance is told at birth: [`InstanceConfig`], its checks ([`ConfigError`])
//! and the sanitising that lets [`Instance::new`](super::Instance::new) never fail.

use std::net::IpAddr;
use std::time::Duration;

use thiserror::Error;

use super::timers;
use crate::Version;

/// The longest `preempt_delay` keepalived accepts (`preempt_delay` 0–1000 s).
pub const MAX_PREEMPT_DELAY: Duration = Duration::from_secs(1000);

/// keepalived's tracker weight range (`weight -253..253`): larger magnitudes add nothing
/// because the effective priority is clamped to 1..=254 anyway.
pub const MAX_TRACKER_WEIGHT: i32 = 253;

/// One VRRP instance (one VRID on one interface), as the daemon derives it from the
/// configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceConfig {
    pub version: Version,
    pub vrid: u8,
    /// Base priority, 1..=255; 255 means the address owner.
    pub priority: u8,
    /// Our own Advertisement_Interval. v2 speaks whole seconds, v3 centiseconds.
    pub advert_interval: Duration,
    pub preempt: bool,
    /// keepalived's `preempt_delay`: how long a lower-priority master is tolerated
    /// after startup (see the backup receive rules in the module docs).
    pub preempt_delay: Duration,
    /// The address we send adverts from; it breaks priority ties.
    pub primary_ip: IpAddr,
    pub trackers: Vec<TrackerConfig>,
}

/// A tracked condition (script, interface, file…). The daemon reports its state by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerConfig {
    pub name: String,
    /// 0: the instance goes to FAULT while it is down. > 0: added to the priority while
    /// up. < 0: added (so subtracted) while down. keepalived semantics.
    pub weight: i32,
}

/// Why a configuration cannot be used as written.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error("virtual_router_id must be 1..=255, got 0")]
    ZeroVrid,
    #[error("priority must be 1..=255, got 0")]
    ZeroPriority,
    #[error("advert_interval {got:?} is outside {min:?}..={max:?} for VRRPv{version}")]
    IntervalOutOfRange {
        version: u8,
        got: Duration,
        min: Duration,
        max: Duration,
    },
    #[error("advert_interval {got:?} is not a whole number of {unit} (VRRPv{version} wire unit)")]
    IntervalNotOnWireUnit {
        version: u8,
        got: Duration,
        unit: &'static str,
    },
    #[error("VRRPv2 is IPv4 only, but the primary address is {0}")]
    V2OverIpv6(IpAddr),
    #[error("preempt_delay {0:?} exceeds {MAX_PREEMPT_DELAY:?}")]
    PreemptDelayTooLong(Duration),
    #[error("tracker {name:?} has weight {weight}, outside -253..=253")]
    TrackerWeight { name: String, weight: i32 },
    #[error("tracker {0:?} is listed twice")]
    DuplicateTracker(String),
}

impl InstanceConfig {
    /// Every problem [`Instance::new`](super::Instance::new) would otherwise paper over;
    /// the config loader should call this and refuse to start on `Err`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.vrid == 0 {
            return Err(ConfigError::ZeroVrid);
        }
        if self.priority == 0 {
            return Err(ConfigError::ZeroPriority);
        }
        let (min, max) = timers::interval_bounds(self.version);
        if self.advert_interval < min || self.advert_interval > max {
            return Err(ConfigError::IntervalOutOfRange {
                version: self.version.number(),
                got: self.advert_interval,
                min,
                max,
            });
        }
        if timers::wire_interval(self.version, self.advert_interval) != self.advert_interval {
            return Err(ConfigError::IntervalNotOnWireUnit {
                version: self.version.number(),
                got: self.advert_interval,
                unit: match self.version {
                    Version::V2 => "seconds",
                    Version::V3 => "centiseconds",
                },
            });
        }
        if self.version == Version::V2 && self.primary_ip.is_ipv6() {
            return Err(ConfigError::V2OverIpv6(self.primary_ip));
        }
        if self.preempt_delay > MAX_PREEMPT_DELAY {
            return Err(ConfigError::PreemptDelayTooLong(self.preempt_delay));
        }
        for (i, t) in self.trackers.iter().enumerate() {
            if !(-MAX_TRACKER_WEIGHT..=MAX_TRACKER_WEIGHT).contains(&t.weight) {
                return Err(ConfigError::TrackerWeight {
                    name: t.name.clone(),
                    weight: t.weight,
                });
            }
            if self.trackers[..i].iter().any(|o| o.name == t.name) {
                return Err(ConfigError::DuplicateTracker(t.name.clone()));
            }
        }
        Ok(())
    }
}

/// The values the state machine actually runs with. `Instance::new` must not fail, so
/// anything `validate` would reject is pulled to the nearest usable value here.
#[derive(Debug, Clone)]
pub(super) struct Sanitized {
    /// 0 becomes 1: the lowest real priority, never "releasing" (0 on the wire).
    pub priority: u8,
    /// Rounded to the wire unit and clamped to what the wire can carry, so the
    /// interval we time with is the one we advertise.
    pub advert_interval: Duration,
    /// Clamped to keepalived's 1000 s.
    pub preempt_delay: Duration,
}

impl Sanitized {
    pub fn from(cfg: &InstanceConfig) -> Self {
        Sanitized {
            priority: cfg.priority.max(1),
            advert_interval: timers::wire_interval(cfg.version, cfg.advert_interval),
            preempt_delay: cfg.preempt_delay.min(MAX_PREEMPT_DELAY),
        }
    }
}
