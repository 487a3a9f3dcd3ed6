//! The codec against real adverts from keepalived 2.2.7 (captured by
//! `tests/fixtures/keepalived/capture.sh`): each parses in keepalived's checksum mode,
//! passes validation with the matching instance expectations, and re-emits
//! byte-identical, checksum included.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use splitguard_vrrp::Version;
use splitguard_vrrp::wire::{
    AdvertRepr, Auth, ChecksumMode, Endpoints, Expect, IpInfo, Packet, Reject, VirtualAddrs,
    build_advert, pass_key, validate, validate_ipv4_datagram,
};

struct Fixture {
    bin: &'static [u8],
    meta: HashMap<String, String>,
    pcap: &'static [u8],
}

macro_rules! fixture {
    ($name:literal) => {
        Fixture {
            bin: include_bytes!(concat!("fixtures/keepalived/", $name, ".bin")),
            meta: parse_meta(include_str!(concat!(
                "fixtures/keepalived/",
                $name,
                ".meta"
            ))),
            pcap: include_bytes!(concat!("fixtures/keepalived/", $name, ".pcap")),
        }
    };
}

fn parse_meta(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Fixture {
    fn get(&self, key: &str) -> &str {
        self.meta
            .get(key)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("meta lacks {key}"))
    }

    fn ip(&self) -> IpInfo {
        let src: IpAddr = self.get("src").parse().expect("src");
        let dst: IpAddr = self.get("dst").parse().expect("dst");
        let ttl_key = if self.get("family") == "ipv4" {
            "ttl"
        } else {
            "hop_limit"
        };
        let ttl = self.get(ttl_key).parse().expect("ttl");
        IpInfo {
            endpoints: Endpoints::new(src, dst).expect("one family"),
            ttl,
        }
    }

    /// The Ethernet frames of the capture (little-endian microsecond pcap).
    fn frames(&self) -> Vec<&'static [u8]> {
        let data = self.pcap;
        let le32 = |at: usize| u32::from_le_bytes(data[at..at + 4].try_into().expect("4 bytes"));
        assert_eq!(le32(0), 0xa1b2_c3d4, "pcap magic");
        assert_eq!(le32(20), 1, "Ethernet link type");
        let (mut off, mut frames) = (24, Vec::new());
        while off + 16 <= data.len() {
            let incl = le32(off + 8) as usize;
            frames.push(&data[off + 16..off + 16 + incl]);
            off += 16 + incl;
        }
        frames
    }
}

fn v4(a: [u8; 4]) -> Ipv4Addr {
    Ipv4Addr::from(a)
}

fn expect<'a>(repr: &AdvertRepr, vips: &'a [IpAddr]) -> Expect<'a> {
    Expect {
        version: repr.version,
        vrid: repr.vrid,
        auth: match repr.auth {
            Auth::Pass(key) => Some(key),
            _ => None,
        },
        interval: repr.interval(),
        vips,
        checksum_mode: ChecksumMode::PseudoHeader,
        check_ttl: true,
    }
}

/// Parse, validate and re-emit one fixture; returns the parsed advert.
fn round_trip(f: &Fixture, want: &AdvertRepr) -> AdvertRepr {
    let ip = f.ip();
    let mode = ChecksumMode::PseudoHeader; // keepalived 2.2.7's only v3 behaviour
    let packet = Packet::new_checked(f.bin, ip.endpoints.family()).expect("checked");
    let parsed = AdvertRepr::parse(&packet, &ip.endpoints, mode).expect("parse");
    assert_eq!(&parsed, want);
    let vips: Vec<IpAddr> = want.addrs.iter().collect();
    assert_eq!(
        validate(&ip, f.bin, &expect(want, &vips)).as_ref(),
        Ok(want)
    );
    assert_eq!(parsed.buffer_len(), f.bin.len());
    let emitted = build_advert(&parsed, &ip.endpoints, mode).expect("emit");
    assert_eq!(emitted, f.bin, "re-emitted bytes differ from keepalived's");
    parsed
}

#[test]
fn v2_pass() {
    let f = fixture!("v2_pass");
    let want = AdvertRepr {
        version: Version::V2,
        vrid: 51,
        priority: 150,
        adver_int: 1,
        auth: Auth::Pass(pass_key(b"1111").expect("key")),
        addrs: VirtualAddrs::V4(vec![v4([192, 0, 2, 3])]),
    };
    let got = round_trip(&f, &want);
    assert_eq!(got.interval(), Duration::from_secs(1));
    // v2 ignores the mode: no pseudo-header either way.
    let ip = f.ip();
    let packet = Packet::new_checked(f.bin, ip.endpoints.family()).expect("checked");
    assert!(AdvertRepr::parse(&packet, &ip.endpoints, ChecksumMode::NoPseudoHeader).is_ok());
    // A wrong password is refused.
    let vips = [IpAddr::V4(v4([192, 0, 2, 3]))];
    let wrong = Expect {
        auth: pass_key(b"2222").ok(),
        ..expect(&want, &vips)
    };
    assert_eq!(validate(&ip, f.bin, &wrong), Err(Reject::Password));
}

#[test]
fn v3_ipv4() {
    let f = fixture!("v3_ipv4");
    let want = AdvertRepr {
        version: Version::V3,
        vrid: 52,
        priority: 100,
        adver_int: 100,
        auth: Auth::None,
        addrs: VirtualAddrs::V4(vec![v4([192, 0, 2, 3]), v4([192, 0, 2, 4])]),
    };
    round_trip(&f, &want);
    // keepalived 2.2.7 includes the pseudo-header: an RFC 9568 receiver refuses it.
    let vips: Vec<IpAddr> = want.addrs.iter().collect();
    let rfc9568 = Expect {
        checksum_mode: ChecksumMode::NoPseudoHeader,
        ..expect(&want, &vips)
    };
    assert!(matches!(
        validate(&f.ip(), f.bin, &rfc9568),
        Err(Reject::ChecksumMode {
            configured: ChecksumMode::NoPseudoHeader,
            ..
        })
    ));
}

#[test]
fn v3_ipv4_fast() {
    let f = fixture!("v3_ipv4_fast");
    let want = AdvertRepr {
        version: Version::V3,
        vrid: 53,
        priority: 200,
        adver_int: 10,
        auth: Auth::None,
        addrs: VirtualAddrs::V4(vec![v4([192, 0, 2, 4])]),
    };
    assert_eq!(round_trip(&f, &want).interval(), Duration::from_millis(100));
}

#[test]
fn v3_ipv4_unicast() {
    let f = fixture!("v3_ipv4_unicast");
    assert_eq!(f.get("dst"), "192.0.2.6");
    let want = AdvertRepr {
        version: Version::V3,
        vrid: 54,
        priority: 120,
        adver_int: 100,
        auth: Auth::None,
        addrs: VirtualAddrs::V4(vec![v4([192, 0, 2, 3])]),
    };
    round_trip(&f, &want);
    // The pseudo-header dst is the unicast peer; with 224.0.0.18 it would not verify.
    let mut ip = f.ip();
    ip.endpoints = Endpoints::V4 {
        src: v4([192, 0, 2, 5]),
        dst: v4([224, 0, 0, 18]),
    };
    let vips: Vec<IpAddr> = want.addrs.iter().collect();
    assert!(matches!(
        validate(&ip, f.bin, &expect(&want, &vips)),
        Err(Reject::Checksum { .. })
    ));
}

#[test]
fn v3_ipv6() {
    let f = fixture!("v3_ipv6");
    let ll = |last: u16| Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0x55, last);
    let want = AdvertRepr {
        version: Version::V3,
        vrid: 55,
        priority: 100,
        adver_int: 100,
        auth: Auth::None,
        addrs: VirtualAddrs::V6(vec![ll(3), ll(4)]),
    };
    round_trip(&f, &want);
}

/// Whole captured IPv4 datagrams (TOS 0xC0, TTL 255, counting IP ID) go through the
/// IP header reader and validation.
#[test]
fn captured_ipv4_datagrams_validate() {
    for f in [
        fixture!("v2_pass"),
        fixture!("v3_ipv4"),
        fixture!("v3_ipv4_fast"),
        fixture!("v3_ipv4_unicast"),
    ] {
        let ip = f.ip();
        let packet = Packet::new_checked(f.bin, ip.endpoints.family()).expect("checked");
        let want =
            AdvertRepr::parse(&packet, &ip.endpoints, ChecksumMode::PseudoHeader).expect("parse");
        let vips: Vec<IpAddr> = want.addrs.iter().collect();
        let frames = f.frames();
        assert!(!frames.is_empty());
        for frame in frames {
            assert_eq!(&frame[12..14], &[0x08, 0x00], "IPv4 ethertype");
            let datagram = &frame[14..];
            assert_eq!(datagram[1], 0xc0, "keepalived sends TOS 0xC0");
            assert_eq!(
                validate_ipv4_datagram(datagram, &expect(&want, &vips)),
                Ok(want.clone())
            );
        }
    }
}
