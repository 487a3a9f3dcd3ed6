//! splitguard-arbiter: what the network says before this node may hold a VIP.
//!
//! It owns reachability and ownership evidence and turns it into verdicts the VRRP
//! core obeys. Today that is the claim gate contract; the probes and the policy that
//! drive it live beside it as they are built.

pub mod arp;
pub mod gate;
pub mod reachability;

pub use gate::{ClaimGate, WithholdReason};
