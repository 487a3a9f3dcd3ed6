//! splitguard-vrrp: VRRP (RFC 3768 v2, RFC 5798 v3): the wire codec (`wire`), the
//! per-instance state machine (`instance`) and the claim gate it obeys (`gate`).
//! Nothing here touches a socket or a clock; the daemon feeds bytes and timestamps
//! in and carries actions out. Its only dependency is `thiserror`: the purity is
//! enforced by Cargo.toml, and CI checks the dependency tree.

#[doc(hidden)]
pub mod fuzzing;
pub mod gate;
pub mod instance;
pub mod wire;

pub use gate::{ClaimGate, WithholdReason};

/// The VRRP protocol version an instance speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Version {
    /// RFC 3768: IPv4 only, advert interval in whole seconds, optional PASS auth.
    V2,
    /// RFC 5798: IPv4 and IPv6, advert interval in centiseconds, no auth.
    V3,
}

impl Version {
    /// The value of the header's version nibble.
    pub fn number(self) -> u8 {
        match self {
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }
}
