//! `[[fence]]`: how this node may power off a peer (STONITH), one table per
//! peer. The device is a standard fence agent with its `key=value` options
//! (`agent = "fence_ipmilan"`, …) or the native Redfish client
//! (`agent = "redfish"`); the rest are the fencing policy's limits
//! (`splitguard_arbiter::fence`). Checked in `validate/fence.rs`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;

use super::duration::{DurationDisplay, serde_opt};
use crate::fence::FenceDevice;

/// One `[[fence]]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The peer's primary address, as its adverts and `unicast_peers` name it.
    pub peer: IpAddr,
    /// The peer's node name, by which a `FENCE` reply may name it (the
    /// address always works).
    pub name: Option<String>,
    pub device: FenceDevice,
    /// How long a split brain (or a dead daemon with its VIP) must hold.
    pub fence_after: Duration,
    /// At most this many fences per `window`.
    pub limit: u32,
    pub window: Duration,
    /// No fence this soon after the daemon started.
    pub min_uptime: Duration,
    /// The peer's VRRP priority, when its adverts may never be heard here
    /// (both nodes must agree who fences first; see the README).
    pub peer_priority: Option<u8>,
    /// The peer's own MAC, when it is known and fixed: answers for the
    /// peer's address from any other MAC (an address conflict, proxy ARP, a
    /// spoofer) are ignored instead of learned, so they can never make the
    /// peer the one fenced for a VIP another host holds.
    pub peer_mac: Option<[u8; 6]>,
    /// Log the agent call instead of making it.
    pub dry_run: bool,
}

pub const DEFAULT_FENCE_AFTER: Duration = Duration::from_secs(5);
pub const MIN_FENCE_AFTER: Duration = Duration::from_secs(1);
pub const MAX_FENCE_AFTER: Duration = Duration::from_secs(600);
pub const DEFAULT_FENCE_TIMEOUT: Duration = Duration::from_secs(30);
pub const MIN_FENCE_TIMEOUT: Duration = Duration::from_secs(1);
pub const MAX_FENCE_TIMEOUT: Duration = Duration::from_secs(600);
pub const DEFAULT_FENCE_LIMIT: u32 = 1;
pub const MAX_FENCE_LIMIT: u32 = 100;
pub const DEFAULT_FENCE_WINDOW: Duration = Duration::from_secs(3600);
pub const DEFAULT_FENCE_MIN_UPTIME: Duration = Duration::from_secs(300);

impl Fence {
    /// One line for check-config; credentials masked.
    pub fn summary(&self) -> String {
        format!(
            "fence: peer {}{} by `{}` after {}, at most {} per {}, not in the first {}{}",
            self.peer,
            self.peer_mac
                .map(|m| format!(" (MAC {})", splitguard_vrrp::gate::format_mac(&m)))
                .unwrap_or_default(),
            self.device.describe(crate::fence::Op::Off),
            DurationDisplay(self.fence_after),
            self.limit,
            DurationDisplay(self.window),
            DurationDisplay(self.min_uptime),
            if self.dry_run { " (dry run)" } else { "" },
        )
    }
}

/// A `[[fence]]` as read. Option values may be written as strings, integers
/// or booleans (`lanplus = 1`); the agents read text.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFence {
    pub peer: IpAddr,
    #[serde(default)]
    pub name: Option<String>,
    pub agent: String,
    #[serde(default)]
    pub options: BTreeMap<String, OptionText>,
    #[serde(default, with = "serde_opt")]
    pub fence_after: Option<Duration>,
    #[serde(default, with = "serde_opt")]
    pub timeout: Option<Duration>,
    #[serde(default)]
    pub fence_limit: Option<u32>,
    #[serde(default, with = "serde_opt")]
    pub fence_window: Option<Duration>,
    #[serde(default, with = "serde_opt")]
    pub fence_min_uptime: Option<Duration>,
    #[serde(default)]
    pub peer_priority: Option<u8>,
    #[serde(default)]
    pub peer_mac: Option<String>,
    #[serde(default)]
    pub dry_run: bool,
}

/// An option's value as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OptionText(pub String);

impl<'de> Deserialize<'de> for OptionText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Any {
            S(String),
            I(i64),
            B(bool),
        }
        match Any::deserialize(d) {
            Ok(Any::S(s)) => Ok(OptionText(s)),
            Ok(Any::I(i)) => Ok(OptionText(i.to_string())),
            Ok(Any::B(b)) => Ok(OptionText(if b { "1" } else { "0" }.to_owned())),
            Err(_) => Err(serde::de::Error::custom(
                "an option's value must be a string, an integer or a boolean",
            )),
        }
    }
}
