//! The VRRP wire codec: VRRPv2 (RFC 3768) over IPv4 and VRRPv3 (RFC 5798) over IPv4
//! and IPv6, in the smoltcp style (a zero-copy [`Packet`] view plus an owned
//! [`AdvertRepr`]), the checksums keepalived 2.2.7 uses, the IPv4 and IPv6 header
//! facts the receive checks need, and the RFC §7.1 receive validation ([`check`]).
//! No I/O.
//!
//! Nothing here panics on input bytes: constructors check lengths, accessors read
//! through bounds-checked helpers, and every failure is a typed error.

pub mod check;
mod checksum;
mod ip;
mod packet;
#[cfg(test)]
mod proptests;
mod repr;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use check::{Expect, Reject, inspect, link_check, validate, validate_ipv4_datagram};
pub use checksum::internet_checksum;
pub use ip::{IpError, IpInfo, parse_ipv4, parse_ipv6};
pub use packet::Packet;
pub use repr::{AdvertRepr, Auth, AuthType, VirtualAddrs, build_advert, pass_key};

/// IP protocol number of VRRP (both versions).
pub const PROTOCOL: u8 = 112;
/// The only VRRP packet type: ADVERTISEMENT.
pub const TYPE_ADVERTISEMENT: u8 = 1;
/// TTL / hop limit every VRRP advert is sent with and must arrive with.
pub const TTL: u8 = 255;
/// IPv4 multicast group of VRRP (224.0.0.18).
pub const MULTICAST_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// IPv6 multicast group of VRRP (ff02::12).
pub const MULTICAST_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// Length of the fixed VRRP header (both versions).
pub const HEADER_LEN: usize = 8;
/// Length of the VRRPv2 authentication data that always trails the address list.
pub const AUTH_LEN: usize = 8;
/// Largest VRRPv3 max_adver_int (12 bits, centiseconds).
pub const MAX_V3_INTERVAL_CS: u16 = 0x0fff;

/// The IP family a VRRP message travels in; it fixes the address length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// 4-byte addresses.
    Ipv4,
    /// 16-byte addresses.
    Ipv6,
}

impl Family {
    /// The family of an address.
    pub fn of(ip: IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::Ipv4,
            IpAddr::V6(_) => Family::Ipv6,
        }
    }

    /// Bytes per address in the advert's address list.
    pub fn addr_len(self) -> usize {
        match self {
            Family::Ipv4 => 4,
            Family::Ipv6 => 16,
        }
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Family::Ipv4 => "IPv4",
            Family::Ipv6 => "IPv6",
        })
    }
}

/// Source and destination of the IP packet carrying (or to carry) an advert. The
/// VRRPv3 checksum covers them through the pseudo-header; `dst` is the address the
/// packet is actually sent to (the multicast group, or the unicast peer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoints {
    /// An IPv4 packet.
    V4 {
        /// IP source (the sender's primary address).
        src: Ipv4Addr,
        /// IP destination (224.0.0.18 or the unicast peer).
        dst: Ipv4Addr,
    },
    /// An IPv6 packet.
    V6 {
        /// IP source (the sender's link-local address).
        src: Ipv6Addr,
        /// IP destination (ff02::12 or the unicast peer).
        dst: Ipv6Addr,
    },
}

impl Endpoints {
    /// Pairs two addresses of one family; `None` if the families differ.
    pub fn new(src: IpAddr, dst: IpAddr) -> Option<Endpoints> {
        match (src, dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => Some(Endpoints::V4 { src, dst }),
            (IpAddr::V6(src), IpAddr::V6(dst)) => Some(Endpoints::V6 { src, dst }),
            _ => None,
        }
    }

    /// The family of both addresses.
    pub fn family(&self) -> Family {
        match self {
            Endpoints::V4 { .. } => Family::Ipv4,
            Endpoints::V6 { .. } => Family::Ipv6,
        }
    }

    /// The IP source.
    pub fn src(&self) -> IpAddr {
        match *self {
            Endpoints::V4 { src, .. } => IpAddr::V4(src),
            Endpoints::V6 { src, .. } => IpAddr::V6(src),
        }
    }

    /// The IP destination.
    pub fn dst(&self) -> IpAddr {
        match *self {
            Endpoints::V4 { dst, .. } => IpAddr::V4(dst),
            Endpoints::V6 { dst, .. } => IpAddr::V6(dst),
        }
    }
}

/// How the VRRPv3-over-IPv4 checksum is computed. VRRPv2 never uses a pseudo-header
/// and VRRPv3 over IPv6 always does, so this only matters for VRRPv3 over IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ChecksumMode {
    /// Include the IPv4 pseudo-header (src, dst, 0, 112, length): RFC 5798 as
    /// keepalived 2.2.7 (its only behaviour), FRR and Wireshark read it.
    #[default]
    PseudoHeader,
    /// Checksum the VRRP message alone, as for v2: RFC 9568, keepalived >= 2.2.8 with
    /// `v3_checksum_as_v2`, Cisco, Juniper.
    NoPseudoHeader,
}

/// Why a VRRP message could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Fewer bytes than the fixed header.
    #[error("VRRP message of {len} bytes is shorter than the {HEADER_LEN}-byte header")]
    Truncated {
        /// Bytes present.
        len: usize,
    },
    /// The version nibble is neither 2 nor 3.
    #[error("unknown VRRP version {0}")]
    Version(u8),
    /// VRRPv2 exists only over IPv4.
    #[error("VRRPv2 is IPv4 only, not carried over {0}")]
    V2NotIpv4(Family),
    /// The type nibble is not ADVERTISEMENT (1).
    #[error("VRRP packet type {0} is not ADVERTISEMENT (1)")]
    Type(u8),
    /// The length does not fit the address count (plus auth data for v2).
    #[error(
        "VRRP message of {len} bytes does not fit {count} {family} addresses ({expected} bytes expected)"
    )]
    Length {
        /// Bytes present.
        len: usize,
        /// The header's address count.
        count: u8,
        /// The family the addresses were read as.
        family: Family,
        /// What the count implies.
        expected: usize,
    },
    /// The checksum field does not match the message.
    #[error("VRRP checksum 0x{got:04x} does not match computed 0x{expected:04x}")]
    Checksum {
        /// What the message should carry.
        expected: u16,
        /// What it carries.
        got: u16,
    },
    /// An emit buffer is too small.
    #[error("buffer of {len} bytes is too small for a {need}-byte VRRP message")]
    BufferTooSmall {
        /// Bytes available.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
    /// More addresses than the 8-bit count can carry.
    #[error("{0} addresses do not fit the 8-bit address count")]
    TooManyAddresses(usize),
    /// The addresses' family differs from the carrying packet's.
    #[error("{addrs} addresses cannot be sent over {packet}")]
    FamilyMismatch {
        /// The advert's addresses.
        addrs: Family,
        /// The packet's family.
        packet: Family,
    },
    /// The interval does not fit the version's field.
    #[error(
        "advert interval {0:?} is not representable (v2: 1..=255 whole seconds; v3: 1..=4095 centiseconds)"
    )]
    Interval(std::time::Duration),
    /// Raw interval units out of the field's range.
    #[error("advert interval field value {value} exceeds the version's maximum {max}")]
    IntervalField {
        /// The value given.
        value: u16,
        /// The field's largest value.
        max: u16,
    },
    /// VRRPv3 has no authentication field.
    #[error("VRRPv3 carries no authentication")]
    AuthOnV3,
    /// PASS keys are at most 8 bytes.
    #[error("PASS authentication key of {0} bytes is longer than 8")]
    PasswordTooLong(usize),
}

/// Result of the codec's operations.
pub type Result<T> = core::result::Result<T, Error>;
