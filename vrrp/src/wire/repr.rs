//! [`AdvertRepr`]: an advert as plain values, parsed from and emitted into a
//! [`Packet`], plus the helpers the daemon uses to send one ([`build_advert`]) and to
//! turn configuration into wire values ([`pass_key`], [`AdvertRepr::interval_field`]).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use super::packet::{Packet, message_len};
use super::{
    AUTH_LEN, ChecksumMode, Endpoints, Error, Family, MAX_V3_INTERVAL_CS, Result,
    TYPE_ADVERTISEMENT,
};
use crate::Version;

/// The VRRPv2 authentication type byte, as a value (so AH and unknown types can be
/// named when rejected).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthType {
    /// 0: no authentication.
    None,
    /// 1: simple text password (RFC 2338; "reserved" in RFC 3768, used by keepalived).
    Pass,
    /// 2: IP Authentication Header (RFC 2338; not supported).
    Ah,
    /// Any other value.
    Other(u8),
}

impl AuthType {
    /// The wire value.
    pub fn value(self) -> u8 {
        match self {
            AuthType::None => 0,
            AuthType::Pass => 1,
            AuthType::Ah => 2,
            AuthType::Other(v) => v,
        }
    }

    /// The type a wire value names.
    pub fn from_value(v: u8) -> AuthType {
        match v {
            0 => AuthType::None,
            1 => AuthType::Pass,
            2 => AuthType::Ah,
            v => AuthType::Other(v),
        }
    }
}

impl fmt::Display for AuthType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthType::None => f.write_str("none (0)"),
            AuthType::Pass => f.write_str("PASS (1)"),
            AuthType::Ah => f.write_str("AH (2)"),
            AuthType::Other(v) => write!(f, "unknown ({v})"),
        }
    }
}

/// An advert's authentication. VRRPv3 has none ([`Auth::None`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum Auth {
    /// Type 0. The 8 auth bytes are sent as zeros and ignored on receive.
    None,
    /// Type 1 with its 8 data bytes (the password, zero-padded).
    Pass([u8; AUTH_LEN]),
    /// Type 2; parsed only so it can be rejected by name. Emitted with zero data.
    Ah,
    /// Another type value; emitted with zero data.
    Other(u8),
}

impl Auth {
    /// The type this authentication is sent as.
    pub fn auth_type(&self) -> AuthType {
        match self {
            Auth::None => AuthType::None,
            Auth::Pass(_) => AuthType::Pass,
            Auth::Ah => AuthType::Ah,
            Auth::Other(v) => AuthType::Other(*v),
        }
    }

    fn data(&self) -> [u8; AUTH_LEN] {
        match self {
            Auth::Pass(d) => *d,
            _ => [0; AUTH_LEN],
        }
    }
}

// Never print a password, not even in debug output.
impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Pass(_) => f.write_str("Pass(<redacted>)"),
            other => write!(f, "{}", other.auth_type()),
        }
    }
}

/// A PASS key as sent: the password's bytes zero-padded to 8. keepalived truncates
/// longer passwords with a warning; we refuse them so configs say what is sent.
pub fn pass_key(password: &[u8]) -> Result<[u8; AUTH_LEN]> {
    let mut key = [0u8; AUTH_LEN];
    key.get_mut(..password.len())
        .ok_or(Error::PasswordTooLong(password.len()))?
        .copy_from_slice(password);
    Ok(key)
}

/// The virtual addresses an advert carries, all of one family.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VirtualAddrs {
    /// IPv4 addresses (v2, or v3 over IPv4).
    V4(Vec<Ipv4Addr>),
    /// IPv6 addresses (v3 over IPv6).
    V6(Vec<Ipv6Addr>),
}

impl VirtualAddrs {
    /// Splits a mixed list by family; `None` if it mixes families. An empty list is
    /// taken as IPv4.
    pub fn from_ips(ips: &[IpAddr]) -> Option<VirtualAddrs> {
        match ips.first() {
            Some(IpAddr::V6(_)) => ips
                .iter()
                .map(|ip| match ip {
                    IpAddr::V6(a) => Some(*a),
                    IpAddr::V4(_) => None,
                })
                .collect::<Option<Vec<_>>>()
                .map(VirtualAddrs::V6),
            _ => ips
                .iter()
                .map(|ip| match ip {
                    IpAddr::V4(a) => Some(*a),
                    IpAddr::V6(_) => None,
                })
                .collect::<Option<Vec<_>>>()
                .map(VirtualAddrs::V4),
        }
    }

    /// Their family.
    pub fn family(&self) -> Family {
        match self {
            VirtualAddrs::V4(_) => Family::Ipv4,
            VirtualAddrs::V6(_) => Family::Ipv6,
        }
    }

    /// How many.
    pub fn len(&self) -> usize {
        match self {
            VirtualAddrs::V4(v) => v.len(),
            VirtualAddrs::V6(v) => v.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// In wire order, as `IpAddr`.
    pub fn iter(&self) -> impl Iterator<Item = IpAddr> + '_ {
        let (v4, v6) = match self {
            VirtualAddrs::V4(v) => (v.as_slice(), &[][..]),
            VirtualAddrs::V6(v) => (&[][..], v.as_slice()),
        };
        v4.iter()
            .map(|a| IpAddr::V4(*a))
            .chain(v6.iter().map(|a| IpAddr::V6(*a)))
    }

    /// Whether `ip` is among them.
    pub fn contains(&self, ip: &IpAddr) -> bool {
        match (self, ip) {
            (VirtualAddrs::V4(v), IpAddr::V4(a)) => v.contains(a),
            (VirtualAddrs::V6(v), IpAddr::V6(a)) => v.contains(a),
            _ => false,
        }
    }
}

/// One VRRP advertisement as values. The type is implied (ADVERTISEMENT is the only
/// one) and the address count is the list's length.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AdvertRepr {
    /// Protocol version.
    pub version: Version,
    /// Virtual router ID.
    pub vrid: u8,
    /// Sender's priority (0: master leaving; 255: address owner).
    pub priority: u8,
    /// The interval field in its version's units: v2 `adver_int` in whole seconds
    /// (0..=255), v3 `max_adver_int` in centiseconds (0..=4095). See
    /// [`AdvertRepr::interval`].
    pub adver_int: u16,
    /// v2 authentication; always [`Auth::None`] for v3.
    pub auth: Auth,
    /// The virtual addresses.
    pub addrs: VirtualAddrs,
}

impl AdvertRepr {
    /// Parses a checked packet and verifies its type and checksum for the IP
    /// `endpoints` it arrived with (their family must be the packet's).
    pub fn parse<T: AsRef<[u8]>>(
        packet: &Packet<T>,
        endpoints: &Endpoints,
        mode: ChecksumMode,
    ) -> Result<AdvertRepr> {
        if endpoints.family() != packet.family() {
            return Err(Error::FamilyMismatch {
                addrs: packet.family(),
                packet: endpoints.family(),
            });
        }
        let repr = AdvertRepr::parse_unverified(packet)?;
        if !packet.verify_checksum(endpoints, mode) {
            return Err(Error::Checksum {
                expected: packet.compute_checksum(repr.version, endpoints, mode),
                got: packet.checksum(),
            });
        }
        Ok(repr)
    }

    /// Parses with the structural checks only (length, version, type), not the
    /// checksum: for reading the values of adverts that fail our checks.
    pub fn parse_unverified<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<AdvertRepr> {
        packet.check_len()?;
        let version = packet.checked_version()?;
        if packet.msg_type() != TYPE_ADVERTISEMENT {
            return Err(Error::Type(packet.msg_type()));
        }
        let auth = match version {
            Version::V3 => Auth::None,
            Version::V2 => match AuthType::from_value(packet.auth_type()) {
                AuthType::None => Auth::None,
                AuthType::Pass => Auth::Pass(packet.auth_data()),
                AuthType::Ah => Auth::Ah,
                AuthType::Other(v) => Auth::Other(v),
            },
        };
        let addrs = match packet.family() {
            Family::Ipv4 => VirtualAddrs::V4(
                packet
                    .addresses()
                    .filter_map(|a| match a {
                        IpAddr::V4(a) => Some(a),
                        IpAddr::V6(_) => None,
                    })
                    .collect(),
            ),
            Family::Ipv6 => VirtualAddrs::V6(
                packet
                    .addresses()
                    .filter_map(|a| match a {
                        IpAddr::V6(a) => Some(a),
                        IpAddr::V4(_) => None,
                    })
                    .collect(),
            ),
        };
        Ok(AdvertRepr {
            version,
            vrid: packet.vrid(),
            priority: packet.priority(),
            adver_int: packet.interval_raw(),
            auth,
            addrs,
        })
    }

    /// The advert interval as a duration.
    pub fn interval(&self) -> Duration {
        match self.version {
            Version::V2 => Duration::from_secs(u64::from(self.adver_int)),
            Version::V3 => Duration::from_millis(u64::from(self.adver_int) * 10),
        }
    }

    /// The interval field value for a configured interval: v2 takes whole seconds
    /// 1..=255, v3 whole centiseconds 1..=4095 (10 ms .. 40.95 s).
    pub fn interval_field(version: Version, interval: Duration) -> Result<u16> {
        let (unit_ns, max) = match version {
            Version::V2 => (1_000_000_000u128, 255u128),
            Version::V3 => (10_000_000u128, u128::from(MAX_V3_INTERVAL_CS)),
        };
        let ns = interval.as_nanos();
        let units = ns / unit_ns;
        if !ns.is_multiple_of(unit_ns) || units == 0 || units > max {
            return Err(Error::Interval(interval));
        }
        u16::try_from(units).map_err(|_| Error::Interval(interval))
    }

    /// Bytes [`AdvertRepr::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        message_len(self.version, self.addrs.family(), self.addrs.len())
    }

    /// Checks that the values can be sent: v2 only over IPv4 and v3 without auth, the
    /// interval within its field, at most 255 addresses.
    pub fn check(&self) -> Result<()> {
        if self.version == Version::V2 && self.addrs.family() == Family::Ipv6 {
            return Err(Error::V2NotIpv4(Family::Ipv6));
        }
        if self.version == Version::V3 && self.auth != Auth::None {
            return Err(Error::AuthOnV3);
        }
        let max = match self.version {
            Version::V2 => 255,
            Version::V3 => MAX_V3_INTERVAL_CS,
        };
        if self.adver_int > max {
            return Err(Error::IntervalField {
                value: self.adver_int,
                max,
            });
        }
        if self.addrs.len() > 255 {
            return Err(Error::TooManyAddresses(self.addrs.len()));
        }
        Ok(())
    }

    /// Writes the advert, checksum included, into the first [`AdvertRepr::buffer_len`]
    /// bytes of `buf` and returns that length. `endpoints` are the IP source and the
    /// actual destination the message will be sent with (224.0.0.18 / ff02::12, or the
    /// unicast peer).
    pub fn emit(&self, buf: &mut [u8], endpoints: &Endpoints, mode: ChecksumMode) -> Result<usize> {
        self.check()?;
        if endpoints.family() != self.addrs.family() {
            return Err(Error::FamilyMismatch {
                addrs: self.addrs.family(),
                packet: endpoints.family(),
            });
        }
        let need = self.buffer_len();
        let buf_len = buf.len();
        let msg = buf
            .get_mut(..need)
            .ok_or(Error::BufferTooSmall { len: buf_len, need })?;
        msg.fill(0);
        let mut p = Packet::new_unchecked(msg, self.addrs.family());
        p.set_version_type(self.version.number(), TYPE_ADVERTISEMENT);
        p.set_vrid(self.vrid);
        p.set_priority(self.priority);
        // check() bounded the count to 255.
        p.set_addr_count(u8::try_from(self.addrs.len()).unwrap_or(u8::MAX));
        match self.version {
            Version::V2 => {
                p.set_auth_type(self.auth.auth_type().value());
                p.set_adver_int(u8::try_from(self.adver_int).unwrap_or(u8::MAX));
            }
            Version::V3 => p.set_max_adver_int(self.adver_int),
        }
        for (i, a) in self.addrs.iter().enumerate() {
            p.set_address(i, a);
        }
        if self.version == Version::V2 {
            // keepalived always sends (and checksums) the 8 auth bytes.
            p.set_auth_data(&self.auth.data());
        }
        p.fill_checksum(endpoints, mode);
        Ok(need)
    }
}

/// Builds the bytes of one outgoing advert (the VRRP message, no IP header): what the
/// daemon sends each interval. The kernel must send it with the same source and
/// destination as `endpoints` (bind the raw socket to the primary address), since the
/// v3 checksum covers them.
pub fn build_advert(
    repr: &AdvertRepr,
    endpoints: &Endpoints,
    mode: ChecksumMode,
) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut buf, endpoints, mode)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(src: [u8; 4], dst: [u8; 4]) -> Endpoints {
        Endpoints::V4 {
            src: Ipv4Addr::from(src),
            dst: Ipv4Addr::from(dst),
        }
    }

    #[test]
    fn construct_matches_keepalived_v2() {
        let repr = AdvertRepr {
            version: Version::V2,
            vrid: 51,
            priority: 150,
            adver_int: 1,
            auth: Auth::Pass(*b"1111\0\0\0\0"),
            addrs: VirtualAddrs::V4(vec![Ipv4Addr::new(192, 0, 2, 3)]),
        };
        let ep = v4([192, 0, 2, 5], [224, 0, 0, 18]);
        let bytes = build_advert(&repr, &ep, ChecksumMode::default()).expect("emit");
        assert_eq!(
            bytes,
            [
                0x21, 0x33, 0x96, 0x01, 0x01, 0x01, 0x23, 0x64, 192, 0, 2, 3, b'1', b'1', b'1',
                b'1', 0, 0, 0, 0
            ]
        );
    }

    #[test]
    fn interval_field_units() {
        assert_eq!(
            AdvertRepr::interval_field(Version::V2, Duration::from_secs(1)),
            Ok(1)
        );
        assert_eq!(
            AdvertRepr::interval_field(Version::V3, Duration::from_millis(100)),
            Ok(10)
        );
        assert_eq!(
            AdvertRepr::interval_field(Version::V3, Duration::from_millis(40950)),
            Ok(4095)
        );
        assert!(AdvertRepr::interval_field(Version::V2, Duration::from_millis(1500)).is_err());
        assert!(AdvertRepr::interval_field(Version::V2, Duration::from_secs(256)).is_err());
        assert!(AdvertRepr::interval_field(Version::V3, Duration::from_millis(5)).is_err());
        assert!(AdvertRepr::interval_field(Version::V3, Duration::ZERO).is_err());
        assert!(AdvertRepr::interval_field(Version::V3, Duration::from_secs(41)).is_err());
    }

    #[test]
    fn pass_key_pads_and_refuses_long() {
        assert_eq!(pass_key(b"1111"), Ok(*b"1111\0\0\0\0"));
        assert_eq!(pass_key(b"12345678"), Ok(*b"12345678"));
        assert_eq!(pass_key(b"123456789"), Err(Error::PasswordTooLong(9)));
    }

    #[test]
    fn password_never_in_debug() {
        let s = format!("{:?}", Auth::Pass(*b"sekrit\0\0"));
        assert!(!s.contains("sekrit"), "{s}");
    }

    #[test]
    fn emit_refuses_unsendable() {
        let ep = v4([192, 0, 2, 5], [224, 0, 0, 18]);
        let mut repr = AdvertRepr {
            version: Version::V3,
            vrid: 1,
            priority: 100,
            adver_int: 100,
            auth: Auth::Pass([0; 8]),
            addrs: VirtualAddrs::V4(vec![]),
        };
        let mut buf = [0u8; 64];
        assert_eq!(
            repr.emit(&mut buf, &ep, ChecksumMode::default()),
            Err(Error::AuthOnV3)
        );
        repr.auth = Auth::None;
        repr.adver_int = 4096;
        assert!(matches!(
            repr.emit(&mut buf, &ep, ChecksumMode::default()),
            Err(Error::IntervalField { .. })
        ));
        repr.adver_int = 100;
        repr.addrs = VirtualAddrs::V4(vec![Ipv4Addr::UNSPECIFIED; 256]);
        assert_eq!(
            repr.emit(&mut buf, &ep, ChecksumMode::default()),
            Err(Error::TooManyAddresses(256))
        );
        repr.addrs = VirtualAddrs::V4(vec![Ipv4Addr::UNSPECIFIED; 20]);
        assert_eq!(
            repr.emit(&mut buf, &ep, ChecksumMode::default()),
            Err(Error::BufferTooSmall { len: 64, need: 88 })
        );
        repr.addrs = VirtualAddrs::V6(vec![]);
        assert!(matches!(
            repr.emit(&mut buf, &ep, ChecksumMode::default()),
            Err(Error::FamilyMismatch { .. })
        ));
        repr.version = Version::V2;
        assert_eq!(
            repr.emit(&mut buf, &ep, ChecksumMode::default()),
            Err(Error::V2NotIpv4(Family::Ipv6))
        );
    }
}
