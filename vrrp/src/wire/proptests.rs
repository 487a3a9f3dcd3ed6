//! Property tests of the codec: emit→parse round-trips for every version, family and
//! checksum mode, and no panic on arbitrary or mutated input.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::*;
use crate::Version;

fn v4_list(max: usize) -> impl Strategy<Value = VirtualAddrs> {
    proptest::collection::vec(any::<[u8; 4]>().prop_map(Ipv4Addr::from), 0..=max)
        .prop_map(VirtualAddrs::V4)
}

fn v6_list(max: usize) -> impl Strategy<Value = VirtualAddrs> {
    proptest::collection::vec(any::<[u8; 16]>().prop_map(Ipv6Addr::from), 0..=max)
        .prop_map(VirtualAddrs::V6)
}

fn v2_auth() -> impl Strategy<Value = Auth> {
    prop_oneof![
        Just(Auth::None),
        any::<[u8; 8]>().prop_map(Auth::Pass),
        Just(Auth::Ah),
        (3u8..=255).prop_map(Auth::Other),
    ]
}

fn v2_repr() -> impl Strategy<Value = AdvertRepr> {
    (any::<u8>(), any::<u8>(), 0u16..=255, v2_auth(), v4_list(40)).prop_map(
        |(vrid, priority, adver_int, auth, addrs)| AdvertRepr {
            version: Version::V2,
            vrid,
            priority,
            adver_int,
            auth,
            addrs,
        },
    )
}

fn v3_repr(addrs: impl Strategy<Value = VirtualAddrs>) -> impl Strategy<Value = AdvertRepr> {
    (any::<u8>(), any::<u8>(), 0u16..=MAX_V3_INTERVAL_CS, addrs).prop_map(
        |(vrid, priority, adver_int, addrs)| AdvertRepr {
            version: Version::V3,
            vrid,
            priority,
            adver_int,
            auth: Auth::None,
            addrs,
        },
    )
}

fn v4_endpoints() -> impl Strategy<Value = Endpoints> {
    (any::<[u8; 4]>(), any::<[u8; 4]>()).prop_map(|(s, d)| Endpoints::V4 {
        src: Ipv4Addr::from(s),
        dst: Ipv4Addr::from(d),
    })
}

fn v6_endpoints() -> impl Strategy<Value = Endpoints> {
    (any::<[u8; 16]>(), any::<[u8; 16]>()).prop_map(|(s, d)| Endpoints::V6 {
        src: Ipv6Addr::from(s),
        dst: Ipv6Addr::from(d),
    })
}

fn mode() -> impl Strategy<Value = ChecksumMode> {
    prop_oneof![
        Just(ChecksumMode::PseudoHeader),
        Just(ChecksumMode::NoPseudoHeader)
    ]
}

fn any_version() -> impl Strategy<Value = Version> {
    prop_oneof![Just(Version::V2), Just(Version::V3)]
}

fn any_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
        any::<[u8; 16]>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
    ]
}

/// Emit, then check the bytes parse back to `repr`, verify, and validate.
fn round_trip(
    repr: &AdvertRepr,
    endpoints: &Endpoints,
    mode: ChecksumMode,
) -> std::result::Result<(), TestCaseError> {
    let bytes =
        build_advert(repr, endpoints, mode).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(bytes.len(), repr.buffer_len());
    let packet = Packet::new_checked(&bytes[..], endpoints.family())
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(packet.verify_checksum(endpoints, mode));
    prop_assert_eq!(
        packet.checksum(),
        packet.compute_checksum(repr.version, endpoints, mode)
    );
    let parsed = AdvertRepr::parse(&packet, endpoints, mode);
    prop_assert_eq!(parsed.as_ref(), Ok(repr));
    let vips: Vec<IpAddr> = repr.addrs.iter().collect();
    let expect = Expect {
        version: repr.version,
        vrid: repr.vrid,
        auth: match repr.auth {
            Auth::Pass(k) => Some(k),
            _ => None,
        },
        interval: repr.interval(),
        vips: &vips,
        checksum_mode: mode,
        check_ttl: true,
    };
    let ip = IpInfo {
        endpoints: *endpoints,
        ttl: TTL,
    };
    let validated = validate(&ip, &bytes, &expect);
    match repr.auth {
        // We never accept AH or unknown auth types, whatever is configured.
        Auth::Ah | Auth::Other(_) => {
            let refused = matches!(validated, Err(check::Reject::AuthType { .. }));
            prop_assert!(refused, "AH/unknown auth accepted: {:?}", validated);
        }
        _ => prop_assert_eq!(validated.as_ref(), Ok(repr)),
    }
    Ok(())
}

/// `vrrp` behind a fixed IPv6 header (next header 112), as a packet socket
/// delivers it.
fn ipv6_datagram(src: Ipv6Addr, dst: Ipv6Addr, hop_limit: u8, vrrp: &[u8]) -> Vec<u8> {
    let len = u16::try_from(vrrp.len()).unwrap_or(u16::MAX).to_be_bytes();
    let mut d = vec![0x6c, 0, 0, 0, len[0], len[1], PROTOCOL, hop_limit];
    d.extend_from_slice(&src.octets());
    d.extend_from_slice(&dst.octets());
    d.extend_from_slice(vrrp);
    d
}

proptest! {
    #[test]
    fn v2_round_trip(repr in v2_repr(), ep in v4_endpoints(), mode in mode()) {
        round_trip(&repr, &ep, mode)?;
    }

    #[test]
    fn v3_ipv4_round_trip(repr in v3_repr(v4_list(40)), ep in v4_endpoints(), mode in mode()) {
        round_trip(&repr, &ep, mode)?;
    }

    #[test]
    fn v3_ipv6_round_trip(repr in v3_repr(v6_list(12)), ep in v6_endpoints(), mode in mode()) {
        round_trip(&repr, &ep, mode)?;
    }

    #[test]
    fn never_panics_on_arbitrary_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
        ep in prop_oneof![v4_endpoints(), v6_endpoints()],
        ttl in any::<u8>(),
        version in any_version(),
        vrid in any::<u8>(),
        auth in proptest::option::of(any::<[u8; 8]>()),
        secs in 0u64..300,
        vips in proptest::collection::vec(any_ip(), 0..4),
        mode in mode(),
        check_ttl in any::<bool>(),
    ) {
        let ip = IpInfo { endpoints: ep, ttl };
        let expect = Expect {
            version, vrid, auth, interval: std::time::Duration::from_secs(secs), vips: &vips,
            checksum_mode: mode, check_ttl,
        };
        let _ = validate(&ip, &bytes, &expect);
        let _ = inspect(&ip, &bytes, mode);
        let _ = validate_ipv4_datagram(&bytes, &expect);
        let _ = parse_ipv4(&bytes);
        let _ = parse_ipv6(&bytes);
        let p = Packet::new_unchecked(&bytes[..], ep.family());
        let _ = (p.version(), p.msg_type(), p.vrid(), p.priority(), p.addr_count(), p.auth_type());
        let _ = (p.interval_raw(), p.checksum(), p.auth_data(), p.addresses().count());
        let _ = (p.verify_checksum(&ep, mode), p.check_len());
        let _ = AdvertRepr::parse_unverified(&p);
        let _ = AdvertRepr::parse(&p, &ep, mode);
    }

    #[test]
    fn never_panics_on_mutated_adverts(
        repr in prop_oneof![v2_repr(), v3_repr(v4_list(6))],
        ep in v4_endpoints(),
        mutations in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        cut in any::<usize>(),
        extra in proptest::collection::vec(any::<u8>(), 0..8),
        mode in mode(),
    ) {
        let mut bytes = build_advert(&repr, &ep, mode).map_err(|e| TestCaseError::fail(e.to_string()))?;
        for (at, x) in mutations {
            let len = bytes.len();
            if let Some(b) = bytes.get_mut(at % len) {
                *b ^= x;
            }
        }
        bytes.truncate(cut % (bytes.len() + 1) + usize::from(cut % 3 == 0) * bytes.len());
        bytes.extend_from_slice(&extra);
        let vips: Vec<IpAddr> = repr.addrs.iter().collect();
        let expect = Expect {
            version: repr.version, vrid: repr.vrid, auth: None, interval: repr.interval(), vips: &vips,
            checksum_mode: mode, check_ttl: true,
        };
        let ip = IpInfo { endpoints: ep, ttl: TTL };
        let _ = validate(&ip, &bytes, &expect);
        let _ = inspect(&ip, &bytes, mode);
        // As an IPv4 datagram with a plausible header, too.
        let total = u16::try_from(bytes.len() + 20).unwrap_or(u16::MAX).to_be_bytes();
        let mut d = vec![0x45, 0xc0, total[0], total[1], 0, 1, 0, 0, 255, PROTOCOL, 0, 0, 192, 0, 2, 5, 224, 0, 0, 18];
        d.extend_from_slice(&bytes);
        let _ = validate_ipv4_datagram(&d, &expect);
    }

    /// A single flipped bit is always caught: by the checksum (every byte is covered,
    /// auth data and reserved bits included) or by an earlier structural check.
    #[test]
    fn single_bit_flips_are_rejected(repr in prop_oneof![v2_repr(), v3_repr(v4_list(6))], ep in v4_endpoints(), bit in any::<usize>()) {
        let mut bytes = build_advert(&repr, &ep, ChecksumMode::PseudoHeader).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let bit = bit % (bytes.len() * 8);
        if let Some(b) = bytes.get_mut(bit / 8) {
            *b ^= 1 << (bit % 8);
        }
        let got = inspect(&IpInfo { endpoints: ep, ttl: TTL }, &bytes, ChecksumMode::PseudoHeader);
        prop_assert!(got.is_err(), "bit {} flipped, still accepted: {:?}", bit, got);
    }

    /// An IPv6 advert as the capture reads it: the header's facts come back, the
    /// padding is cut, and the advert parses with the pseudo-header.
    #[test]
    fn ipv6_datagram_round_trip(
        repr in v3_repr(v6_list(12)),
        src in any::<[u8; 16]>(),
        dst in any::<[u8; 16]>(),
        hop_limit in any::<u8>(),
        padding in proptest::collection::vec(any::<u8>(), 0..8),
    ) {
        let (src, dst) = (Ipv6Addr::from(src), Ipv6Addr::from(dst));
        let ep = Endpoints::V6 { src, dst };
        let vrrp = build_advert(&repr, &ep, ChecksumMode::PseudoHeader).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut d = ipv6_datagram(src, dst, hop_limit, &vrrp);
        d.extend_from_slice(&padding);
        let (ip, payload) = parse_ipv6(&d).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(ip, IpInfo::ipv6(src, dst, hop_limit));
        prop_assert_eq!(payload, &vrrp[..]);
        prop_assert_eq!(inspect(&ip, payload, ChecksumMode::PseudoHeader), Ok(repr));
    }

    #[test]
    fn never_panics_on_mutated_ipv6_datagrams(
        repr in v3_repr(v6_list(4)),
        src in any::<[u8; 16]>(),
        mutations in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        cut in any::<usize>(),
        extra in proptest::collection::vec(any::<u8>(), 0..8),
    ) {
        let src = Ipv6Addr::from(src);
        let ep = Endpoints::V6 { src, dst: MULTICAST_V6 };
        let vrrp = build_advert(&repr, &ep, ChecksumMode::PseudoHeader).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut d = ipv6_datagram(src, MULTICAST_V6, TTL, &vrrp);
        for (at, x) in mutations {
            let len = d.len();
            if let Some(b) = d.get_mut(at % len) {
                *b ^= x;
            }
        }
        d.truncate(cut % (d.len() + 1) + usize::from(cut % 3 == 0) * d.len());
        d.extend_from_slice(&extra);
        if let Ok((ip, payload)) = parse_ipv6(&d) {
            prop_assert!(payload.len() <= d.len().saturating_sub(40));
            let _ = inspect(&ip, payload, ChecksumMode::PseudoHeader).map_err(|e| e.to_string());
        }
    }
}
