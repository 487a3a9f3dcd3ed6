//! The probes that feed the policy with evidence from the network. Each one only
//! moves packets and timestamps; what the results mean is decided in
//! [`crate::reachability`] and [`crate::policy`].

pub mod icmp;

pub use icmp::{IcmpProber, ProbeError, ProbeResult, SocketKind, spawn_probe_loop};
