//! Fencing's I/O edges: carrying out a power action on the peer (STONITH).
//! Two kinds of device: any of the standard fence agents (Debian's
//! `fence-agents`: `fence_ipmilan`, `fence_redfish`, `fence_idrac`, …), run
//! with their stdin `key=value` protocol (`agent`), and a native Redfish
//! client over the project's HTTP stack for hosts without fence-agents
//! (`redfish`). When to fence is the pure policy's
//! (`splitguard_arbiter::fence`); this module only runs what it asks, bounded
//! in time, and never shows a credential.

pub mod agent;
pub mod redfish;

use std::path::PathBuf;
use std::time::Duration;

use splitguard_watchdog::core::secret::Secret;

/// A power action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Off,
    On,
    Reboot,
    /// The power state; the agent's `status`.
    Status,
}

impl Op {
    /// The fence-agents protocol's name (`action=`).
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Off => "off",
            Op::On => "on",
            Op::Reboot => "reboot",
            Op::Status => "status",
        }
    }
}

/// The peer's power as the device reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerState {
    On,
    Off,
}

/// One `key=value` option of a fence agent; a secret is masked wherever an
/// option is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptionValue {
    Plain(String),
    Secret(Secret),
}

/// A standard fence agent and the options written to its stdin (besides
/// `action=`, which [`FenceDevice::run`] adds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSpec {
    /// A name found in `/usr/sbin` (and the PATH), or an absolute path.
    pub agent: String,
    pub options: Vec<(String, OptionValue)>,
}

/// The native Redfish client's target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedfishSpec {
    /// The BMC's base URL: `https://host[:port]`.
    pub url: url::Url,
    pub username: String,
    pub password: Secret,
    /// The system's id under `/redfish/v1/Systems/`; `None`: the only one.
    pub system: Option<String>,
    /// A CA bundle for the BMC's certificate (else the system roots).
    pub ca: Option<PathBuf>,
    /// Accept any certificate (BMCs ship self-signed ones).
    pub insecure: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceKind {
    Agent(AgentSpec),
    Redfish(RedfishSpec),
}

/// What fences one peer, with the bound on one action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FenceDevice {
    pub kind: DeviceKind,
    /// The longest one action may take; the agent is killed at it.
    pub timeout: Duration,
}

/// Why an action did not give an answer.
#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    #[error("cannot start fence agent {agent}: {source}")]
    Spawn {
        agent: String,
        source: std::io::Error,
    },
    #[error("{what} did not finish within {after:?}")]
    Timeout { what: String, after: Duration },
    #[error("{what} failed (exit code {code:?}): {detail}")]
    Failed {
        what: String,
        code: Option<i32>,
        detail: String,
    },
    #[error("redfish {what}: {detail}")]
    Redfish { what: String, detail: String },
    /// The device's configuration cannot be used as it is (a value with a
    /// line break would inject an option; see [`agent::validate`]).
    #[error("fence device: {detail}")]
    Invalid { detail: String },
}

impl FenceDevice {
    /// Carries out `op`. `Status` answers `Some(state)`; `Off`, `On` and
    /// `Reboot` answer `None` once the device says they are done (a fence
    /// agent waits for the new state itself; the Redfish client polls
    /// `PowerState`), or an error.
    pub async fn run(&self, op: Op) -> Result<Option<PowerState>, FenceError> {
        match &self.kind {
            DeviceKind::Agent(a) => agent::run(a, op, self.timeout).await,
            DeviceKind::Redfish(r) => redfish::run(r, op, self.timeout).await,
        }
    }

    /// The call `run(op)` would make, credentials masked: what `--dry-run`
    /// logs and the audit records.
    pub fn describe(&self, op: Op) -> String {
        match &self.kind {
            DeviceKind::Agent(a) => agent::describe(a, op),
            DeviceKind::Redfish(r) => redfish::describe(r, op),
        }
    }
}
