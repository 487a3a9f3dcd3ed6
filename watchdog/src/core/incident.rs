//! Incident kinds and severities: the names outside tools see in `status --json`
//! and webhook bodies. Extend, never rename.

use serde::{Deserialize, Serialize};
use std::fmt;

/// How loudly an incident pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened, as DESIGN.md's watchdog rules name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum IncidentKind {
    Failover,
    SplitBrain,
    VridMismatch,
    AuthMismatch,
    AdvertIntervalMismatch,
    VipOnBackup,
    ClaimWithheld,
    Isolated,
    Demoted,
    Rebooting,
    Resolved,
    /// A stream of frames that fail the link rule, naming our VIP or VRID.
    InvalidAdverts,
    /// Every interface this node's instances run on is down: a local fault.
    LinkDown,
    /// This node holds no safe lease at the witness (etcd down or out of reach).
    WitnessUnreachable,
    /// This node is powering its peer off (STONITH).
    Fencing,
    /// The peer's power-off is confirmed.
    Fenced,
    /// A fence failed, was not confirmed, or was refused.
    FenceFailed,
}

impl IncidentKind {
    pub const ALL: [IncidentKind; 17] = [
        IncidentKind::Failover,
        IncidentKind::SplitBrain,
        IncidentKind::VridMismatch,
        IncidentKind::AuthMismatch,
        IncidentKind::AdvertIntervalMismatch,
        IncidentKind::VipOnBackup,
        IncidentKind::ClaimWithheld,
        IncidentKind::Isolated,
        IncidentKind::Demoted,
        IncidentKind::Rebooting,
        IncidentKind::Resolved,
        IncidentKind::InvalidAdverts,
        IncidentKind::LinkDown,
        IncidentKind::WitnessUnreachable,
        IncidentKind::Fencing,
        IncidentKind::Fenced,
        IncidentKind::FenceFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IncidentKind::Failover => "failover",
            IncidentKind::SplitBrain => "split_brain",
            IncidentKind::VridMismatch => "vrid_mismatch",
            IncidentKind::AuthMismatch => "auth_mismatch",
            IncidentKind::AdvertIntervalMismatch => "advert_interval_mismatch",
            IncidentKind::VipOnBackup => "vip_on_backup",
            IncidentKind::ClaimWithheld => "claim_withheld",
            IncidentKind::Isolated => "isolated",
            IncidentKind::Demoted => "demoted",
            IncidentKind::Rebooting => "rebooting",
            IncidentKind::Resolved => "resolved",
            IncidentKind::InvalidAdverts => "invalid_adverts",
            IncidentKind::LinkDown => "link_down",
            IncidentKind::WitnessUnreachable => "witness_unreachable",
            IncidentKind::Fencing => "fencing",
            IncidentKind::Fenced => "fenced",
            IncidentKind::FenceFailed => "fence_failed",
        }
    }

    /// The severity an incident of this kind starts with; the classifier may raise it.
    pub fn default_severity(self) -> Severity {
        match self {
            IncidentKind::SplitBrain
            | IncidentKind::Isolated
            | IncidentKind::Rebooting
            | IncidentKind::Fencing
            | IncidentKind::FenceFailed => Severity::Critical,
            IncidentKind::VridMismatch
            | IncidentKind::AuthMismatch
            | IncidentKind::AdvertIntervalMismatch
            | IncidentKind::VipOnBackup
            | IncidentKind::ClaimWithheld
            | IncidentKind::Demoted
            | IncidentKind::InvalidAdverts
            | IncidentKind::LinkDown
            | IncidentKind::WitnessUnreachable
            | IncidentKind::Fenced
            | IncidentKind::Failover => Severity::Warning,
            IncidentKind::Resolved => Severity::Info,
        }
    }
}

impl fmt::Display for IncidentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::IntoDeserializer;
    use serde::de::value::{Error, StrDeserializer};

    /// serde's derived names must be the contract's names (`as_str`), or the status
    /// JSON and webhook bodies would drift from DESIGN.md.
    #[test]
    fn serde_names_match_the_contract() {
        for kind in IncidentKind::ALL {
            let de: StrDeserializer<'_, Error> = kind.as_str().into_deserializer();
            assert_eq!(IncidentKind::deserialize(de), Ok(kind), "{kind:?}");
        }
        for sev in [Severity::Info, Severity::Warning, Severity::Critical] {
            let de: StrDeserializer<'_, Error> = sev.as_str().into_deserializer();
            assert_eq!(Severity::deserialize(de), Ok(sev));
        }
    }
}
