//! The fuzz entry point of the VRRP core: `vrrp_packet`, the cargo-fuzz target of
//! the same name in `fuzz/`. It lives here rather than in the fuzz crate so that
//! `tests/fuzz_corpus.rs` replays the committed corpus through exactly the code
//! libFuzzer ran, and the target builds against this crate alone. It panics only
//! when a property it checks fails.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::wire::{
    self, AdvertRepr, Auth, ChecksumMode, Endpoints, Expect, IpInfo, Packet, build_advert,
};

/// `vrrp_packet`: one VRRP message in one receive context. The first byte picks the
/// checksum mode (bit 0) and the context ((byte >> 1) % 3): 0, the rest is a whole
/// IPv4 datagram as the raw socket delivers it; 1, 8 bytes of IPv4 source and
/// destination then the VRRP message; 2, 32 bytes of IPv6 source and destination
/// then the message. Checks that what parses re-emits to bytes that parse back to
/// the same advert, and that an advert is accepted by an instance configured as it
/// says (PASS and no auth only; AH and unknown types are always refused).
pub fn vrrp_packet(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mode = if selector & 1 == 0 {
        ChecksumMode::PseudoHeader
    } else {
        ChecksumMode::NoPseudoHeader
    };
    match (selector >> 1) % 3 {
        0 => {
            if let Ok((ip, vrrp)) = wire::parse_ipv4(rest) {
                vrrp_in_context(&ip, vrrp, mode);
            }
            // The daemon's own entry for datagrams, with some instance.
            let expect = Expect {
                version: crate::Version::V2,
                vrid: 51,
                auth: wire::pass_key(b"1111").ok(),
                interval: std::time::Duration::from_secs(1),
                vips: &[IpAddr::V4(Ipv4Addr::new(192, 0, 2, 3))],
                checksum_mode: mode,
                check_ttl: true,
            };
            let _ = wire::validate_ipv4_datagram(rest, &expect).map_err(|e| e.to_string());
        }
        1 => {
            let (Some(addrs), Some(vrrp)) = (rest.get(..8), rest.get(8..)) else {
                return;
            };
            let mut src = [0u8; 4];
            let mut dst = [0u8; 4];
            src.copy_from_slice(&addrs[..4]);
            dst.copy_from_slice(&addrs[4..]);
            let endpoints = Endpoints::V4 {
                src: Ipv4Addr::from(src),
                dst: Ipv4Addr::from(dst),
            };
            vrrp_in_context(
                &IpInfo {
                    endpoints,
                    ttl: wire::TTL,
                },
                vrrp,
                mode,
            );
        }
        _ => {
            let (Some(addrs), Some(vrrp)) = (rest.get(..32), rest.get(32..)) else {
                return;
            };
            let mut src = [0u8; 16];
            let mut dst = [0u8; 16];
            src.copy_from_slice(&addrs[..16]);
            dst.copy_from_slice(&addrs[16..]);
            let ip = IpInfo::ipv6(Ipv6Addr::from(src), Ipv6Addr::from(dst), wire::TTL);
            vrrp_in_context(&ip, vrrp, mode);
        }
    }
}

fn vrrp_in_context(ip: &IpInfo, vrrp: &[u8], mode: ChecksumMode) {
    let family = ip.endpoints.family();
    // Every accessor on an unchecked view, as the watchdog's describers use them.
    let view = Packet::new_unchecked(vrrp, family);
    let _ = (
        view.version(),
        view.msg_type(),
        view.vrid(),
        view.priority(),
    );
    let _ = (view.addr_count(), view.auth_type(), view.interval_raw());
    let _ = (view.checksum(), view.auth_data(), view.addresses().count());
    let unverified = AdvertRepr::parse_unverified(&view);

    let repr = match wire::inspect(ip, vrrp, mode) {
        Ok(repr) => repr,
        Err(e) => {
            let _ = (e.to_string(), e.reason());
            return;
        }
    };
    assert_eq!(
        unverified.as_ref(),
        Ok(&repr),
        "checksum changed the values"
    );
    let bytes = match build_advert(&repr, &ip.endpoints, mode) {
        Ok(bytes) => bytes,
        Err(e) => panic!("a parsed advert does not re-emit: {e}"),
    };
    assert_eq!(
        wire::inspect(ip, &bytes, mode).as_ref(),
        Ok(&repr),
        "the re-emitted advert parses differently"
    );

    let vips: Vec<IpAddr> = repr.addrs.iter().collect();
    let expect = Expect {
        version: repr.version,
        vrid: repr.vrid,
        auth: match repr.auth {
            Auth::Pass(key) => Some(key),
            _ => None,
        },
        interval: repr.interval(),
        vips: &vips,
        checksum_mode: mode,
        check_ttl: true,
    };
    let at_ttl = IpInfo {
        ttl: wire::TTL,
        ..*ip
    };
    let validated = wire::validate(&at_ttl, vrrp, &expect);
    match repr.auth {
        Auth::Ah | Auth::Other(_) => assert!(
            matches!(validated, Err(wire::Reject::AuthType { .. })),
            "AH or an unknown auth type accepted: {validated:?}"
        ),
        Auth::None | Auth::Pass(_) => assert_eq!(
            validated.as_ref(),
            Ok(&repr),
            "an advert is refused by an instance configured as it says"
        ),
    }
}
