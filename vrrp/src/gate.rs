//! The claim gate: the core's question "may this backup become master now?", which
//! the arbiter answers.
//!
//! The VRRP core consults it only when its Master_Down_Timer expires, so whoever
//! drives it (the daemon, from the arbiter's verdicts) must keep it current ahead of
//! time; a claim never waits for a probe.

use std::fmt;
use std::net::IpAddr;

/// Whether a backup whose master went silent may claim the VIPs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ClaimGate {
    /// No objection: the core's own election stands.
    #[default]
    Open,
    /// Do not claim; the reason is reported with the withheld claim.
    Closed(WithholdReason),
}

impl ClaimGate {
    pub fn is_open(&self) -> bool {
        matches!(self, ClaimGate::Open)
    }
}

/// Why a claim is withheld. Each variant names the evidence, so the sentence an
/// operator reads says what was seen, not just that something was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WithholdReason {
    /// Fewer reference IPs answer than the quorum asks for: this node is cut off.
    Isolated { reachable: usize, quorum: usize },
    /// The master is silent but its VIP still answers ARP from another MAC: the
    /// heartbeat path is broken, not the peer.
    VipAnsweredElsewhere { vip: IpAddr, mac: [u8; 6] },
    /// An operator asked this node to stay backup (a `DEMOTE` reply or a command).
    ManualHold,
    /// The witness (etcd) says another node holds the VRID's key: the smart
    /// lock refuses this claim.
    WitnessHeld { holder: String },
    /// The VRID's key is not yet this node's, or the deadline by which the old
    /// master must have released has not passed.
    WitnessPending,
    /// This node has no live lease at the witness: it may not claim.
    WitnessUnreachable,
    /// This node is fencing its peer, or its fence failed: the peer is not
    /// proven off, so it may still hold the VIPs.
    FenceUnconfirmed { peer: IpAddr },
}

impl fmt::Display for WithholdReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WithholdReason::Isolated { reachable, quorum } => write!(
                f,
                "isolated: {reachable} reference(s) reachable, quorum is {quorum}"
            ),
            WithholdReason::VipAnsweredElsewhere { vip, mac } => write!(
                f,
                "master is silent but VIP {vip} still answers ARP from {}",
                format_mac(mac)
            ),
            WithholdReason::ManualHold => f.write_str("held backup by an operator"),
            WithholdReason::WitnessHeld { holder } => {
                write!(f, "the witness refuses: the VRID's key is held by {holder}")
            }
            WithholdReason::WitnessPending => f.write_str(
                "the witness has not granted the VRID's key yet (or the old master's release deadline has not passed)",
            ),
            WithholdReason::WitnessUnreachable => {
                f.write_str("the witness is unreachable: no live lease to claim under")
            }
            WithholdReason::FenceUnconfirmed { peer } => write!(
                f,
                "the fence of peer {peer} is not confirmed: it may still hold the VIPs"
            ),
        }
    }
}

/// `aa:bb:cc:dd:ee:ff`, the form `ip neigh` and arping print.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_name_their_evidence() {
        let r = WithholdReason::VipAnsweredElsewhere {
            vip: "192.0.2.3".parse().unwrap(),
            mac: [0x02, 0, 0, 0, 0x0a, 0xff],
        };
        assert_eq!(
            r.to_string(),
            "master is silent but VIP 192.0.2.3 still answers ARP from 02:00:00:00:0a:ff"
        );
        let r = WithholdReason::Isolated {
            reachable: 0,
            quorum: 1,
        };
        assert_eq!(
            r.to_string(),
            "isolated: 0 reference(s) reachable, quorum is 1"
        );
        assert!(ClaimGate::default().is_open());
        assert!(!ClaimGate::Closed(WithholdReason::ManualHold).is_open());
    }
}
