//! splitguard-arbiter: what the network says before this node may hold a VIP.
//!
//! It owns reachability and ownership evidence and turns it into verdicts the VRRP
//! core obeys (the core's claim gate, `splitguard_vrrp::gate`), and the limits on
//! acting on them. The reachability debouncer, the per-instance evidence (heartbeat,
//! ownership rounds: `evidence`), the policy and the reboot ledger's decision are
//! pure; the I/O edges beside them are the ICMP prober (`probe`), the ledger's file
//! store (`reboot`) and the hardware watchdog feeder (`hw_watchdog`). Early
//! takeover (`early`) confirms a silent master dead from a per-peer liveness
//! stream and a confirmation round, so a backup may claim before the down timer.
//! The witness (`witness`, pure) rules who may hold a VRID's VIPs when an etcd
//! lease referees, and codes the peer confirmation path (`witness::confirm`).

pub mod early;
pub mod evidence;
pub mod fence;
pub mod hw_watchdog;
pub mod policy;
pub mod probe;
pub mod reachability;
pub mod reboot;
pub mod witness;

pub use early::{Declined, EarlyAction, EarlyConfig, EarlyTakeover};
pub use evidence::{Heartbeat, OwnershipRound, PROBE_REQUESTS_PER_ROUND};
pub use policy::{
    Incident, InstanceSpec, Isolation, OnIsolated, Policy, PolicyConfig, PolicyError, Role,
    Verdict, yield_backoff,
};
pub use reachability::{Reachability, ReachabilityError, TargetState};
