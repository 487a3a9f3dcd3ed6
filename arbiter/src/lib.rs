//! splitguard-arbiter: what the network says before this node may hold a VIP.
//!
//! It owns reachability and ownership evidence and turns it into verdicts the VRRP
//! core obeys. The claim gate contract, the reachability debouncer and the policy
//! are pure; the probes that feed them live beside them as they are built.

pub mod arp;
pub mod gate;
pub mod hw_watchdog;
pub mod policy;
pub mod probe;
pub mod reachability;
pub mod reboot;

pub use gate::{ClaimGate, WithholdReason};
pub use policy::{
    Incident, InstanceSpec, Isolation, OnIsolated, Policy, PolicyConfig, PolicyError, Role, Verdict,
};
pub use reachability::{Reachability, ReachabilityError, TargetState};
