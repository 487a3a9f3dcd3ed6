//! Receive validation: the checks of RFC 3768 §7.1 and RFC 5798 §7.1 (as keepalived
//! 2.2.7 applies them) of one advert against one instance's expectations, in the
//! RFC's order, so the first failing reason is the one reported ([`validate`]); and
//! [`inspect`], the structural read the watchdog uses to name the offending values of
//! adverts our instance refuses.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use subtle::ConstantTimeEq;

use super::ip::{IpError, IpInfo, parse_ipv4};
use super::packet::Packet;
use super::repr::{AdvertRepr, Auth, AuthType};
use super::{AUTH_LEN, ChecksumMode, Endpoints, Error, Family, TTL, TYPE_ADVERTISEMENT};
use crate::Version;

/// What one instance accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expect<'a> {
    /// The instance's version.
    pub version: Version,
    /// The instance's virtual router ID.
    pub vrid: u8,
    /// v2: `Some(key)` for PASS with that (zero-padded, see
    /// [`pass_key`](super::pass_key)) key, `None` for no authentication. Ignored for v3.
    pub auth: Option<[u8; AUTH_LEN]>,
    /// The configured advert interval. v2 drops adverts whose interval differs; v3
    /// does not check it (a backup adopts the master's interval).
    pub interval: Duration,
    /// The configured virtual addresses; the advert's list must hold exactly these
    /// (order aside), as keepalived 2.2.7 requires.
    pub vips: &'a [IpAddr],
    /// How v3-over-IPv4 checksums are computed.
    pub checksum_mode: ChecksumMode,
    /// Whether to require TTL / hop limit 255. keepalived skips it for unicast peers
    /// (unless `min_ttl`/`max_ttl` are set), so callers may turn it off there.
    pub check_ttl: bool,
}

/// Why a received advert is not accepted; messages name the offending values (never
/// a password).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    /// The IP header could not be read.
    #[error("bad IP header: {0}")]
    Ip(#[from] IpError),
    /// TTL / hop limit is not 255: the advert crossed a router or was forged.
    #[error("{} {got} is not 255", if *.family == Family::Ipv4 { "TTL" } else { "hop limit" })]
    Ttl {
        /// The TTL or hop limit received.
        got: u8,
        /// The IP family (names the field).
        family: Family,
    },
    /// Fewer bytes than the fixed header.
    #[error("VRRP message of {len} bytes is shorter than the 8-byte header")]
    Truncated {
        /// Bytes present.
        len: usize,
    },
    /// The version differs from the instance's.
    #[error("version {got} does not match configured {expected}")]
    Version {
        /// The advert's version nibble.
        got: u8,
        /// The instance's version.
        expected: u8,
    },
    /// Not an ADVERTISEMENT.
    #[error("packet type {got} is not ADVERTISEMENT (1)")]
    Type {
        /// The advert's type nibble.
        got: u8,
    },
    /// The length does not fit the address count.
    #[error(
        "VRRP message of {len} bytes does not fit its address count {count} ({expected} bytes expected)"
    )]
    Length {
        /// Bytes present.
        len: usize,
        /// The advert's address count.
        count: u8,
        /// What the count implies.
        expected: usize,
    },
    /// The checksum is wrong.
    #[error("checksum 0x{got:04x} does not match computed 0x{expected:04x}")]
    Checksum {
        /// What the message should carry.
        expected: u16,
        /// What it carries.
        got: u16,
    },
    /// The v3-over-IPv4 checksum is valid only in the other mode: the sender and we
    /// disagree about the pseudo-header (keepalived >= 2.2.8 `v3_checksum_as_v2`,
    /// RFC 9568).
    #[error(
        "checksum 0x{got:04x} is valid only {}, but {} is configured",
        mode_words(.other), mode_words(.configured)
    )]
    ChecksumMode {
        /// What the message carries.
        got: u16,
        /// Our mode.
        configured: ChecksumMode,
        /// The mode the sender used.
        other: ChecksumMode,
    },
    /// Another virtual router's advert.
    #[error("vrid {got} does not match configured {expected}")]
    Vrid {
        /// The advert's VRID.
        got: u8,
        /// The instance's VRID.
        expected: u8,
    },
    /// v2: the authentication type differs (AH is always refused here).
    #[error("auth type {got} does not match configured {expected}")]
    AuthType {
        /// The advert's type.
        got: AuthType,
        /// The instance's type.
        expected: AuthType,
    },
    /// v2: the PASS key differs (compared in constant time; neither is printed).
    #[error("authentication password does not match the configured one")]
    Password,
    /// The address list is not the configured one.
    #[error(
        "addresses differ from configured: {count} advertised, {expected_count} configured; missing [{}], unexpected [{}]",
        ip_list(.missing), ip_list(.unexpected)
    )]
    Addresses {
        /// Addresses in the advert.
        count: usize,
        /// Addresses configured.
        expected_count: usize,
        /// Configured but not advertised.
        missing: Vec<IpAddr>,
        /// Advertised but not configured.
        unexpected: Vec<IpAddr>,
    },
    /// v2: the advert interval differs.
    #[error("advert interval {got:?} does not match configured {expected:?}")]
    Interval {
        /// The advert's interval.
        got: Duration,
        /// The instance's interval.
        expected: Duration,
    },
    /// Any other structural problem (e.g. a v2 advert over IPv6).
    #[error("malformed advert: {0}")]
    Malformed(Error),
}

impl Reject {
    /// A short label for metrics (`splitguard_adverts_rejected_total{reason}`).
    pub fn reason(&self) -> &'static str {
        match self {
            Reject::Ip(_) => "ip",
            Reject::Ttl { .. } => "ttl",
            Reject::Truncated { .. } => "truncated",
            Reject::Version { .. } => "version",
            Reject::Type { .. } => "type",
            Reject::Length { .. } => "length",
            Reject::Checksum { .. } => "checksum",
            Reject::ChecksumMode { .. } => "checksum_mode",
            Reject::Vrid { .. } => "vrid",
            Reject::AuthType { .. } => "auth_type",
            Reject::Password => "password",
            Reject::Addresses { .. } => "addresses",
            Reject::Interval { .. } => "interval",
            Reject::Malformed(_) => "malformed",
        }
    }
}

fn mode_words(mode: &ChecksumMode) -> &'static str {
    match mode {
        ChecksumMode::PseudoHeader => "with the IPv4 pseudo-header",
        ChecksumMode::NoPseudoHeader => "without the IPv4 pseudo-header (RFC 9568)",
    }
}

struct IpList<'a>(&'a [IpAddr]);

impl fmt::Display for IpList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, ip) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{ip}")?;
        }
        Ok(())
    }
}

fn ip_list(ips: &[IpAddr]) -> IpList<'_> {
    IpList(ips)
}

impl From<Error> for Reject {
    fn from(e: Error) -> Reject {
        match e {
            Error::Truncated { len } => Reject::Truncated { len },
            Error::Length {
                len,
                count,
                expected,
                ..
            } => Reject::Length {
                len,
                count,
                expected,
            },
            Error::Type(got) => Reject::Type { got },
            Error::Checksum { expected, got } => Reject::Checksum { expected, got },
            other => Reject::Malformed(other),
        }
    }
}

/// Reads an advert with the structural checks and the checksum only (nothing about
/// our instance): the watchdog's view of adverts it must describe even when our
/// instance refuses them (other VRIDs, other passwords, other intervals).
pub fn inspect(ip: &IpInfo, vrrp: &[u8], mode: ChecksumMode) -> Result<AdvertRepr, Reject> {
    let packet = Packet::new_checked(vrrp, ip.endpoints.family())?;
    parse_checked(&packet, ip, mode)
}

fn parse_checked(
    packet: &Packet<&[u8]>,
    ip: &IpInfo,
    mode: ChecksumMode,
) -> Result<AdvertRepr, Reject> {
    match AdvertRepr::parse(packet, &ip.endpoints, mode) {
        Err(Error::Checksum { expected, got }) => {
            // Tell a pseudo-header disagreement from corruption: it is a config fix.
            let other = match mode {
                ChecksumMode::PseudoHeader => ChecksumMode::NoPseudoHeader,
                ChecksumMode::NoPseudoHeader => ChecksumMode::PseudoHeader,
            };
            let v3_over_v4 =
                packet.version() == Version::V3.number() && ip.endpoints.family() == Family::Ipv4;
            if v3_over_v4 && packet.verify_checksum(&ip.endpoints, other) {
                Err(Reject::ChecksumMode {
                    got,
                    configured: mode,
                    other,
                })
            } else {
                Err(Reject::Checksum { expected, got })
            }
        }
        other => other.map_err(Reject::from),
    }
}

/// The link rule, shared by the core ([`validate`] runs the same checks
/// first) and the watchdog's passive capture: what must hold before a frame
/// counts as a VRRP router speaking on this link at all. TTL / hop limit 255
/// (a router decrements it, so less means it crossed one or was forged;
/// adverts sent to a unicast address are exempt, as routed unicast VRRP is),
/// then version 2 or 3, the advertisement type, the length and the checksum
/// (v3 over IPv4 either way: RFC 5798 and RFC 9568 senders differ).
pub fn link_check(ip: &IpInfo, vrrp: &[u8]) -> Result<AdvertRepr, Reject> {
    let multicast = match ip.endpoints {
        Endpoints::V4 { dst, .. } => dst.is_multicast(),
        Endpoints::V6 { dst, .. } => dst.is_multicast(),
    };
    let family = ip.endpoints.family();
    if multicast && ip.ttl != TTL {
        return Err(Reject::Ttl {
            got: ip.ttl,
            family,
        });
    }
    let first = *vrrp.first().ok_or(Reject::Truncated { len: 0 })?;
    let version = first >> 4;
    if version != Version::V2.number() && version != Version::V3.number() {
        return Err(Reject::Version {
            got: version,
            expected: Version::V3.number(),
        });
    }
    if first & 0x0f != TYPE_ADVERTISEMENT {
        return Err(Reject::Type { got: first & 0x0f });
    }
    let packet = Packet::new_checked(vrrp, family)?;
    match parse_checked(&packet, ip, ChecksumMode::PseudoHeader) {
        Err(Reject::ChecksumMode { .. }) => {
            parse_checked(&packet, ip, ChecksumMode::NoPseudoHeader)
        }
        other => other,
    }
}

/// Validates one received advert (`vrrp`: the VRRP message, cut at the IP length)
/// against `expect`, in RFC 3768/5798 §7.1 order: TTL, version, type, length,
/// checksum, VRID, auth type, password, address list, then (v2) interval. Returns the
/// advert on success, or the first failing reason.
///
/// The address list is checked for every sender, as keepalived 2.2.7 does (the RFCs
/// would let an address owner's mismatching advert through).
pub fn validate(ip: &IpInfo, vrrp: &[u8], expect: &Expect<'_>) -> Result<AdvertRepr, Reject> {
    let family = ip.endpoints.family();
    if expect.check_ttl && ip.ttl != TTL {
        return Err(Reject::Ttl {
            got: ip.ttl,
            family,
        });
    }
    let first = *vrrp.first().ok_or(Reject::Truncated { len: 0 })?;
    if first >> 4 != expect.version.number() {
        return Err(Reject::Version {
            got: first >> 4,
            expected: expect.version.number(),
        });
    }
    if first & 0x0f != TYPE_ADVERTISEMENT {
        return Err(Reject::Type { got: first & 0x0f });
    }
    let packet = Packet::new_checked(vrrp, family)?;
    let repr = parse_checked(&packet, ip, expect.checksum_mode)?;
    if repr.vrid != expect.vrid {
        return Err(Reject::Vrid {
            got: repr.vrid,
            expected: expect.vrid,
        });
    }
    if repr.version == Version::V2 {
        check_auth(&repr.auth, expect.auth.as_ref())?;
    }
    check_addresses(&repr, expect.vips)?;
    if repr.version == Version::V2 && repr.interval() != expect.interval {
        return Err(Reject::Interval {
            got: repr.interval(),
            expected: expect.interval,
        });
    }
    Ok(repr)
}

/// [`validate`] on a whole IPv4 datagram as a raw socket delivers it.
pub fn validate_ipv4_datagram(datagram: &[u8], expect: &Expect<'_>) -> Result<AdvertRepr, Reject> {
    let (ip, vrrp) = parse_ipv4(datagram)?;
    validate(&ip, vrrp, expect)
}

fn check_auth(got: &Auth, expected: Option<&[u8; AUTH_LEN]>) -> Result<(), Reject> {
    let expected_type = if expected.is_some() {
        AuthType::Pass
    } else {
        AuthType::None
    };
    if got.auth_type() != expected_type {
        return Err(Reject::AuthType {
            got: got.auth_type(),
            expected: expected_type,
        });
    }
    if let (Auth::Pass(data), Some(key)) = (got, expected)
        && !bool::from(data.ct_eq(key))
    {
        return Err(Reject::Password);
    }
    Ok(())
}

fn check_addresses(repr: &AdvertRepr, vips: &[IpAddr]) -> Result<(), Reject> {
    let missing: Vec<IpAddr> = vips
        .iter()
        .filter(|ip| !repr.addrs.contains(ip))
        .copied()
        .collect();
    let unexpected: Vec<IpAddr> = repr.addrs.iter().filter(|ip| !vips.contains(ip)).collect();
    if missing.is_empty() && unexpected.is_empty() && repr.addrs.len() == vips.len() {
        return Ok(());
    }
    Err(Reject::Addresses {
        count: repr.addrs.len(),
        expected_count: vips.len(),
        missing,
        unexpected,
    })
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::super::{Endpoints, VirtualAddrs, build_advert, pass_key};
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 5);
    const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
    const VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 3));
    const VIP2: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 4));

    fn ip4() -> IpInfo {
        IpInfo {
            endpoints: Endpoints::V4 {
                src: SRC,
                dst: GROUP,
            },
            ttl: 255,
        }
    }

    fn v2_repr() -> AdvertRepr {
        AdvertRepr {
            version: Version::V2,
            vrid: 51,
            priority: 150,
            adver_int: 1,
            auth: Auth::Pass(*b"1111\0\0\0\0"),
            addrs: VirtualAddrs::V4(vec![Ipv4Addr::new(192, 0, 2, 3)]),
        }
    }

    fn v2_expect(vips: &[IpAddr]) -> Expect<'_> {
        Expect {
            version: Version::V2,
            vrid: 51,
            auth: pass_key(b"1111").ok(),
            interval: Duration::from_secs(1),
            vips,
            checksum_mode: ChecksumMode::PseudoHeader,
            check_ttl: true,
        }
    }

    fn v3_repr() -> AdvertRepr {
        AdvertRepr {
            version: Version::V3,
            vrid: 52,
            priority: 100,
            adver_int: 100,
            auth: Auth::None,
            addrs: VirtualAddrs::V4(vec![
                Ipv4Addr::new(192, 0, 2, 3),
                Ipv4Addr::new(192, 0, 2, 4),
            ]),
        }
    }

    fn v3_expect(vips: &[IpAddr]) -> Expect<'_> {
        Expect {
            version: Version::V3,
            vrid: 52,
            auth: None,
            interval: Duration::from_secs(1),
            ..v2_expect(vips)
        }
    }

    fn emit(repr: &AdvertRepr) -> Vec<u8> {
        build_advert(repr, &ip4().endpoints, ChecksumMode::PseudoHeader).expect("emit")
    }

    #[test]
    fn the_link_rule_takes_what_a_router_on_the_link_sends_and_nothing_else() {
        let v2 = emit(&v2_repr());
        let v3 = emit(&v3_repr());
        assert_eq!(link_check(&ip4(), &v2).map(|r| r.vrid), Ok(51));
        assert_eq!(link_check(&ip4(), &v3).map(|r| r.vrid), Ok(52));
        // v3 over IPv4 checksummed without the pseudo-header (RFC 9568 senders).
        let no_pseudo =
            build_advert(&v3_repr(), &ip4().endpoints, ChecksumMode::NoPseudoHeader).expect("emit");
        assert_eq!(link_check(&ip4(), &no_pseudo).map(|r| r.vrid), Ok(52));
        // TTL below 255 to the group: crossed a router, or forged.
        let routed = IpInfo { ttl: 64, ..ip4() };
        assert!(matches!(
            link_check(&routed, &v2),
            Err(Reject::Ttl { got: 64, .. })
        ));
        // To a unicast address it may have crossed routers (unicast VRRP).
        let unicast = IpInfo {
            endpoints: Endpoints::V4 {
                src: SRC,
                dst: Ipv4Addr::new(192, 0, 2, 6),
            },
            ttl: 64,
        };
        assert_eq!(link_check(&unicast, &v2).map(|r| r.vrid), Ok(51));
        // Version, type, length and checksum, each with its reason.
        let mut bad = v2.clone();
        bad[0] = 0x11;
        assert!(matches!(
            link_check(&ip4(), &bad),
            Err(Reject::Version { got: 1, .. })
        ));
        let mut bad = v2.clone();
        bad[0] = 0x22;
        assert!(matches!(
            link_check(&ip4(), &bad),
            Err(Reject::Type { got: 2 })
        ));
        assert!(link_check(&ip4(), &v2[..10]).is_err());
        assert!(link_check(&ip4(), &[]).is_err());
        let mut bad = v2.clone();
        bad[7] ^= 0xff;
        assert!(matches!(
            link_check(&ip4(), &bad),
            Err(Reject::Checksum { .. })
        ));
    }

    /// Re-fills the checksum after a mutation so only the intended check fails.
    fn refill(bytes: &mut [u8]) {
        let mut p = Packet::new_unchecked(bytes, Family::Ipv4);
        p.fill_checksum(&ip4().endpoints, ChecksumMode::PseudoHeader);
    }

    #[test]
    fn accepts_valid_v2_and_v3() {
        let vips = [VIP];
        assert_eq!(
            validate(&ip4(), &emit(&v2_repr()), &v2_expect(&vips)),
            Ok(v2_repr())
        );
        let vips = [VIP2, VIP];
        assert_eq!(
            validate(&ip4(), &emit(&v3_repr()), &v3_expect(&vips)),
            Ok(v3_repr())
        );
    }

    #[test]
    fn rejects_bad_ip_header() {
        let vips = [VIP];
        let r = validate_ipv4_datagram(&[0x45, 0, 0], &v2_expect(&vips));
        assert_eq!(r, Err(Reject::Ip(IpError::Truncated { len: 3, need: 20 })));
    }

    #[test]
    fn accepts_whole_datagram() {
        let vips = [VIP];
        let msg = emit(&v2_repr());
        let mut d = vec![
            0x45, 0xc0, 0, 40, 0, 1, 0, 0, 255, 112, 0, 0, 192, 0, 2, 5, 224, 0, 0, 18,
        ];
        d.extend_from_slice(&msg);
        d.extend_from_slice(&[0; 6]); // Ethernet padding a NIC may leave
        assert_eq!(validate_ipv4_datagram(&d, &v2_expect(&vips)), Ok(v2_repr()));
    }

    #[test]
    fn rejects_ttl_unless_disabled() {
        let vips = [VIP];
        let ip = IpInfo { ttl: 254, ..ip4() };
        let e = validate(&ip, &emit(&v2_repr()), &v2_expect(&vips)).unwrap_err();
        assert_eq!(
            e,
            Reject::Ttl {
                got: 254,
                family: Family::Ipv4
            }
        );
        assert_eq!(e.to_string(), "TTL 254 is not 255");
        let unicast = Expect {
            check_ttl: false,
            ..v2_expect(&vips)
        };
        assert!(validate(&ip, &emit(&v2_repr()), &unicast).is_ok());
        let ip6 = IpInfo::ipv6(Ipv6Addr::LOCALHOST, super::super::MULTICAST_V6, 1);
        let e = validate(&ip6, &[], &v3_expect(&vips)).unwrap_err();
        assert_eq!(e.to_string(), "hop limit 1 is not 255");
    }

    #[test]
    fn rejects_empty_and_short() {
        let vips = [VIP];
        assert_eq!(
            validate(&ip4(), &[], &v2_expect(&vips)),
            Err(Reject::Truncated { len: 0 })
        );
        assert_eq!(
            validate(&ip4(), &emit(&v2_repr())[..7], &v2_expect(&vips)),
            Err(Reject::Truncated { len: 7 })
        );
    }

    #[test]
    fn rejects_version() {
        let vips = [VIP];
        let e = validate(&ip4(), &emit(&v3_repr()), &v2_expect(&vips)).unwrap_err();
        assert_eq!(
            e,
            Reject::Version {
                got: 3,
                expected: 2
            }
        );
        assert_eq!(e.to_string(), "version 3 does not match configured 2");
    }

    #[test]
    fn rejects_type() {
        let vips = [VIP];
        let mut b = emit(&v2_repr());
        b[0] = 0x22;
        refill(&mut b);
        assert_eq!(
            validate(&ip4(), &b, &v2_expect(&vips)),
            Err(Reject::Type { got: 2 })
        );
    }

    #[test]
    fn rejects_length_vs_count() {
        let vips = [VIP];
        let mut b = emit(&v2_repr());
        b[3] = 2; // claims two addresses, carries one
        let e = validate(&ip4(), &b, &v2_expect(&vips)).unwrap_err();
        assert_eq!(
            e,
            Reject::Length {
                len: 20,
                count: 2,
                expected: 24
            }
        );
        let mut long = emit(&v2_repr());
        long.push(0);
        assert!(matches!(
            validate(&ip4(), &long, &v2_expect(&vips)),
            Err(Reject::Length { len: 21, .. })
        ));
    }

    #[test]
    fn rejects_checksum() {
        let vips = [VIP];
        let mut b = emit(&v2_repr());
        b[7] ^= 0x01;
        let e = validate(&ip4(), &b, &v2_expect(&vips)).unwrap_err();
        assert_eq!(
            e,
            Reject::Checksum {
                expected: 0x2364,
                got: 0x2365
            }
        );
        assert_eq!(
            e.to_string(),
            "checksum 0x2365 does not match computed 0x2364"
        );
    }

    #[test]
    fn names_a_checksum_mode_disagreement() {
        let vips = [VIP2, VIP];
        let b =
            build_advert(&v3_repr(), &ip4().endpoints, ChecksumMode::NoPseudoHeader).expect("emit");
        let e = validate(&ip4(), &b, &v3_expect(&vips)).unwrap_err();
        assert!(
            matches!(
                e,
                Reject::ChecksumMode {
                    other: ChecksumMode::NoPseudoHeader,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("RFC 9568"), "{e}");
        let rfc9568 = Expect {
            checksum_mode: ChecksumMode::NoPseudoHeader,
            ..v3_expect(&vips)
        };
        assert!(validate(&ip4(), &b, &rfc9568).is_ok());
        // The pseudo-header's dst is the one the packet was sent to.
        let unicast = IpInfo {
            endpoints: Endpoints::V4 {
                src: SRC,
                dst: Ipv4Addr::new(192, 0, 2, 6),
            },
            ttl: 255,
        };
        assert!(matches!(
            validate(&unicast, &emit(&v3_repr()), &v3_expect(&vips)),
            Err(Reject::Checksum { .. })
        ));
    }

    #[test]
    fn rejects_vrid() {
        let vips = [VIP];
        let repr = AdvertRepr {
            vrid: 52,
            ..v2_repr()
        };
        let e = validate(&ip4(), &emit(&repr), &v2_expect(&vips)).unwrap_err();
        assert_eq!(
            e,
            Reject::Vrid {
                got: 52,
                expected: 51
            }
        );
        assert_eq!(e.to_string(), "vrid 52 does not match configured 51");
    }

    #[test]
    fn rejects_auth_type() {
        let vips = [VIP];
        let none = AdvertRepr {
            auth: Auth::None,
            ..v2_repr()
        };
        let e = validate(&ip4(), &emit(&none), &v2_expect(&vips)).unwrap_err();
        assert_eq!(
            e,
            Reject::AuthType {
                got: AuthType::None,
                expected: AuthType::Pass
            }
        );
        assert_eq!(
            e.to_string(),
            "auth type none (0) does not match configured PASS (1)"
        );
        let ah = AdvertRepr {
            auth: Auth::Ah,
            ..v2_repr()
        };
        let e = validate(&ip4(), &emit(&ah), &v2_expect(&vips)).unwrap_err();
        assert_eq!(
            e,
            Reject::AuthType {
                got: AuthType::Ah,
                expected: AuthType::Pass
            }
        );
        let open = Expect {
            auth: None,
            ..v2_expect(&vips)
        };
        let e = validate(&ip4(), &emit(&v2_repr()), &open).unwrap_err();
        assert_eq!(
            e,
            Reject::AuthType {
                got: AuthType::Pass,
                expected: AuthType::None
            }
        );
        let odd = AdvertRepr {
            auth: Auth::Other(7),
            ..v2_repr()
        };
        assert!(
            validate(&ip4(), &emit(&odd), &v2_expect(&vips))
                .unwrap_err()
                .to_string()
                .contains("unknown (7)")
        );
        assert!(validate(&ip4(), &emit(&none), &open).is_ok());
    }

    #[test]
    fn rejects_password_without_printing_it() {
        let vips = [VIP];
        let repr = AdvertRepr {
            auth: Auth::Pass(*b"sekrit\0\0"),
            ..v2_repr()
        };
        let e = validate(&ip4(), &emit(&repr), &v2_expect(&vips)).unwrap_err();
        assert_eq!(e, Reject::Password);
        let text = format!("{e} {e:?}");
        assert!(!text.contains("sekrit") && !text.contains("1111"), "{text}");
        // Padding counts: "1111" and "1111\0\0\0x" differ.
        let padded = AdvertRepr {
            auth: Auth::Pass(*b"1111\0\0\0x"),
            ..v2_repr()
        };
        assert_eq!(
            validate(&ip4(), &emit(&padded), &v2_expect(&vips)),
            Err(Reject::Password)
        );
    }

    #[test]
    fn rejects_address_list_naming_the_difference() {
        let vips = [VIP2, VIP];
        let repr = AdvertRepr {
            addrs: VirtualAddrs::V4(vec![Ipv4Addr::new(192, 0, 2, 3)]),
            ..v3_repr()
        };
        let e = validate(&ip4(), &emit(&repr), &v3_expect(&vips)).unwrap_err();
        assert_eq!(
            e,
            Reject::Addresses {
                count: 1,
                expected_count: 2,
                missing: vec![VIP2],
                unexpected: vec![]
            }
        );
        assert_eq!(
            e.to_string(),
            "addresses differ from configured: 1 advertised, 2 configured; missing [192.0.2.4], unexpected []"
        );
        let other = AdvertRepr {
            addrs: VirtualAddrs::V4(vec![
                Ipv4Addr::new(192, 0, 2, 3),
                Ipv4Addr::new(192, 0, 2, 9),
            ]),
            ..v3_repr()
        };
        let e = validate(&ip4(), &emit(&other), &v3_expect(&vips)).unwrap_err();
        assert!(
            e.to_string()
                .contains("missing [192.0.2.4], unexpected [192.0.2.9]"),
            "{e}"
        );
        // Same set, duplicated entry: the count tells them apart.
        let dup = AdvertRepr {
            addrs: VirtualAddrs::V4(vec![
                Ipv4Addr::new(192, 0, 2, 3),
                Ipv4Addr::new(192, 0, 2, 4),
                Ipv4Addr::new(192, 0, 2, 4),
            ]),
            ..v3_repr()
        };
        assert!(matches!(
            validate(&ip4(), &emit(&dup), &v3_expect(&vips)),
            Err(Reject::Addresses { count: 3, .. })
        ));
    }

    #[test]
    fn rejects_v2_interval_but_not_v3() {
        let vips = [VIP];
        let repr = AdvertRepr {
            adver_int: 2,
            ..v2_repr()
        };
        let e = validate(&ip4(), &emit(&repr), &v2_expect(&vips)).unwrap_err();
        assert_eq!(
            e,
            Reject::Interval {
                got: Duration::from_secs(2),
                expected: Duration::from_secs(1)
            }
        );
        assert_eq!(
            e.to_string(),
            "advert interval 2s does not match configured 1s"
        );
        let vips = [VIP2, VIP];
        let fast = AdvertRepr {
            adver_int: 10,
            ..v3_repr()
        };
        assert_eq!(
            validate(&ip4(), &emit(&fast), &v3_expect(&vips)).map(|r| r.interval()),
            Ok(Duration::from_millis(100))
        );
    }

    #[test]
    fn rejects_v2_over_ipv6_as_malformed() {
        let vips = [VIP];
        let ip6 = IpInfo::ipv6(Ipv6Addr::LOCALHOST, super::super::MULTICAST_V6, 255);
        let e = validate(&ip6, &emit(&v2_repr()), &v2_expect(&vips)).unwrap_err();
        assert_eq!(e, Reject::Malformed(Error::V2NotIpv4(Family::Ipv6)));
    }

    #[test]
    fn first_failing_reason_wins() {
        // Wrong TTL, version, vrid and password at once: TTL is reported.
        let vips = [VIP];
        let ip = IpInfo { ttl: 1, ..ip4() };
        let repr = AdvertRepr {
            vrid: 9,
            auth: Auth::Pass([9; 8]),
            ..v2_repr()
        };
        assert!(matches!(
            validate(&ip, &emit(&repr), &v2_expect(&vips)),
            Err(Reject::Ttl { .. })
        ));
        // Bad checksum and wrong vrid: the checksum comes first.
        let mut b = emit(&repr);
        b[6] ^= 0xff;
        assert!(matches!(
            validate(&ip4(), &b, &v2_expect(&vips)),
            Err(Reject::Checksum { .. })
        ));
        // Wrong vrid and wrong password: vrid first.
        assert!(matches!(
            validate(&ip4(), &emit(&repr), &v2_expect(&vips)),
            Err(Reject::Vrid { got: 9, .. })
        ));
    }

    #[test]
    fn inspect_reads_what_validate_refuses() {
        let repr = AdvertRepr {
            vrid: 77,
            adver_int: 3,
            auth: Auth::Pass(*b"other\0\0\0"),
            ..v2_repr()
        };
        let got =
            inspect(&ip4(), &emit(&repr), ChecksumMode::PseudoHeader).expect("structurally valid");
        assert_eq!(
            (got.vrid, got.interval(), got.auth.auth_type()),
            (77, Duration::from_secs(3), AuthType::Pass)
        );
        let mut b = emit(&repr);
        b[7] ^= 1;
        assert!(matches!(
            inspect(&ip4(), &b, ChecksumMode::PseudoHeader),
            Err(Reject::Checksum { .. })
        ));
    }
}
