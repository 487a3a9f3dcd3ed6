//! What the receive checks need from the IP layer: the endpoints (for the v3
//! checksum and tie-breaks) and the TTL / hop limit. An IPv4 raw socket hands us the
//! header, so [`parse_ipv4`] reads it (IHL, TTL, protocol, addresses, total length);
//! an IPv6 raw socket does not, so the caller builds [`IpInfo`] from the source
//! address and the hop limit it got as ancillary data (`IPV6_RECVHOPLIMIT`). A
//! packet socket (the watchdog's capture) sees the IPv6 header too: [`parse_ipv6`].

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{Endpoints, PROTOCOL};

/// The IP facts of one received advert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpInfo {
    /// Source and destination.
    pub endpoints: Endpoints,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
}

impl IpInfo {
    /// An IPv6 advert's facts, from the socket's source address, the destination it
    /// was received on (ff02::12, or our address for unicast) and the hop limit from
    /// ancillary data.
    pub fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, hop_limit: u8) -> IpInfo {
        IpInfo {
            endpoints: Endpoints::V6 { src, dst },
            ttl: hop_limit,
        }
    }
}

/// Why a received IPv4 or IPv6 datagram could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpError {
    /// Fewer bytes than the header needs.
    #[error("IP datagram of {len} bytes is shorter than its {need}-byte header")]
    Truncated {
        /// Bytes present.
        len: usize,
        /// Bytes the header needs (IPv4: 20 or IHL's; IPv6: 40).
        need: usize,
    },
    /// The version nibble is not the one of the family being read.
    #[error("IP version {got} is not {expected}")]
    Version {
        /// The datagram's version nibble.
        got: u8,
        /// 4 or 6.
        expected: u8,
    },
    /// The header length field is below the 20-byte minimum.
    #[error("IPv4 header length {0} bytes is below 20")]
    HeaderLength(usize),
    /// The total length field disagrees with the bytes received.
    #[error("IPv4 total length {total} is outside {header}..={len} (header..=bytes received)")]
    TotalLength {
        /// The field.
        total: usize,
        /// The header length.
        header: usize,
        /// Bytes received.
        len: usize,
    },
    /// Not VRRP.
    #[error("IP protocol {0} is not VRRP (112)")]
    Protocol(u8),
    /// The IPv6 payload length claims more bytes than follow the header.
    #[error("IPv6 payload length {payload} is longer than the {len} bytes after the header")]
    PayloadLength {
        /// The field.
        payload: usize,
        /// Bytes received after the 40-byte header.
        len: usize,
    },
    /// Not VRRP, or VRRP behind extension headers, which adverts never carry.
    #[error("IPv6 next header {0} is not VRRP (112)")]
    NextHeader(u8),
}

/// Reads a received IPv4 datagram (as a raw IPPROTO 112 socket delivers it) and
/// returns its facts and the VRRP message, cut at the total length so any link-layer
/// padding is dropped. The header length comes from IHL (options are skipped).
pub fn parse_ipv4(datagram: &[u8]) -> Result<(IpInfo, &[u8]), IpError> {
    let len = datagram.len();
    let first = *datagram
        .first()
        .ok_or(IpError::Truncated { len, need: 20 })?;
    if first >> 4 != 4 {
        return Err(IpError::Version {
            got: first >> 4,
            expected: 4,
        });
    }
    let header = usize::from(first & 0x0f) * 4;
    if header < 20 {
        return Err(IpError::HeaderLength(header));
    }
    let hdr = datagram
        .get(..header)
        .ok_or(IpError::Truncated { len, need: header })?;
    let field = |i: usize| hdr.get(i).copied().unwrap_or(0);
    let total = usize::from(u16::from_be_bytes([field(2), field(3)]));
    if total < header || total > len {
        return Err(IpError::TotalLength { total, header, len });
    }
    if field(9) != PROTOCOL {
        return Err(IpError::Protocol(field(9)));
    }
    let src = Ipv4Addr::new(field(12), field(13), field(14), field(15));
    let dst = Ipv4Addr::new(field(16), field(17), field(18), field(19));
    let payload = datagram.get(header..total).unwrap_or(&[]);
    Ok((
        IpInfo {
            endpoints: Endpoints::V4 { src, dst },
            ttl: field(8),
        },
        payload,
    ))
}

/// Length of the fixed IPv6 header.
const IPV6_HEADER_LEN: usize = 40;

/// Reads an IPv6 packet from its header on (as a packet socket delivers it) and
/// returns its facts and the VRRP message, cut at the payload length so any
/// link-layer padding is dropped. VRRP adverts carry no extension headers, so
/// only next header 112 is read; anything else is not an advert.
pub fn parse_ipv6(datagram: &[u8]) -> Result<(IpInfo, &[u8]), IpError> {
    let len = datagram.len();
    let truncated = IpError::Truncated {
        len,
        need: IPV6_HEADER_LEN,
    };
    let first = *datagram.first().ok_or(truncated.clone())?;
    if first >> 4 != 6 {
        return Err(IpError::Version {
            got: first >> 4,
            expected: 6,
        });
    }
    // Fixed fields (version .. hop limit), then source and destination.
    let header = datagram.split_first_chunk::<8>().and_then(|(fixed, rest)| {
        let (src, rest) = rest.split_first_chunk::<16>()?;
        let (dst, rest) = rest.split_first_chunk::<16>()?;
        Some((fixed, src, dst, rest))
    });
    let (&[_, _, _, _, len_hi, len_lo, next, hop_limit], src, dst, rest) =
        header.ok_or(truncated)?;
    let payload = usize::from(u16::from_be_bytes([len_hi, len_lo]));
    let vrrp = rest.get(..payload).ok_or(IpError::PayloadLength {
        payload,
        len: rest.len(),
    })?;
    if next != PROTOCOL {
        return Err(IpError::NextHeader(next));
    }
    Ok((
        IpInfo::ipv6(Ipv6Addr::from(*src), Ipv6Addr::from(*dst), hop_limit),
        vrrp,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::MULTICAST_V6;

    fn header(ihl: u8, total: u16, ttl: u8, proto: u8) -> Vec<u8> {
        let t = total.to_be_bytes();
        let mut h = vec![0x40 | ihl, 0xc0, t[0], t[1], 0, 1, 0, 0, ttl, proto, 0, 0];
        h.extend_from_slice(&[192, 0, 2, 5, 224, 0, 0, 18]);
        h.resize(usize::from(ihl) * 4, 0x01); // options (NOPs)
        h
    }

    #[test]
    fn reads_header_and_cuts_padding() {
        let mut d = header(5, 24, 255, 112);
        d.extend_from_slice(&[1, 2, 3, 4, 0, 0, 0, 0]); // 4 payload bytes + padding
        let (info, payload) = parse_ipv4(&d).expect("valid");
        assert_eq!(info.ttl, 255);
        assert_eq!(
            info.endpoints,
            Endpoints::V4 {
                src: Ipv4Addr::new(192, 0, 2, 5),
                dst: Ipv4Addr::new(224, 0, 0, 18)
            }
        );
        assert_eq!(payload, &[1, 2, 3, 4]);
    }

    #[test]
    fn skips_options() {
        let mut d = header(6, 26, 255, 112);
        d.extend_from_slice(&[9, 9]);
        assert_eq!(parse_ipv4(&d).map(|(_, p)| p.to_vec()), Ok(vec![9, 9]));
    }

    #[test]
    fn rejects_bad_headers() {
        assert_eq!(
            parse_ipv4(&[]),
            Err(IpError::Truncated { len: 0, need: 20 })
        );
        assert_eq!(
            parse_ipv4(&[0x60; 40]),
            Err(IpError::Version {
                got: 6,
                expected: 4
            })
        );
        assert_eq!(
            parse_ipv4(&header(4, 20, 255, 112)[..16]),
            Err(IpError::HeaderLength(16))
        );
        assert_eq!(
            parse_ipv4(&header(5, 20, 255, 112)[..19]),
            Err(IpError::Truncated { len: 19, need: 20 })
        );
        assert!(matches!(
            parse_ipv4(&header(5, 30, 255, 112)),
            Err(IpError::TotalLength { total: 30, .. })
        ));
        assert!(matches!(
            parse_ipv4(&header(5, 10, 255, 112)),
            Err(IpError::TotalLength { total: 10, .. })
        ));
        assert_eq!(
            parse_ipv4(&header(5, 20, 255, 6)),
            Err(IpError::Protocol(6))
        );
    }

    /// A fixed IPv6 header from fe80::5 to ff02::12, traffic class 0xc0.
    fn header_v6(payload_len: u16, next: u8, hop_limit: u8) -> Vec<u8> {
        let p = payload_len.to_be_bytes();
        let mut h = vec![0x6c, 0x00, 0x00, 0x00, p[0], p[1], next, hop_limit];
        h.extend_from_slice(&Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 5).octets());
        h.extend_from_slice(&MULTICAST_V6.octets());
        h
    }

    #[test]
    fn reads_ipv6_header() {
        let mut d = header_v6(4, 112, 255);
        d.extend_from_slice(&[1, 2, 3, 4]);
        let (info, payload) = parse_ipv6(&d).expect("valid");
        assert_eq!(
            info,
            IpInfo::ipv6(
                Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 5),
                MULTICAST_V6,
                255
            )
        );
        assert_eq!(payload, &[1, 2, 3, 4]);
    }

    #[test]
    fn ipv6_padding_is_cut_at_the_payload_length() {
        let mut d = header_v6(4, 112, 254);
        d.extend_from_slice(&[1, 2, 3, 4, 0, 0, 0, 0, 0, 0]);
        let (info, payload) = parse_ipv6(&d).expect("valid");
        assert_eq!(info.ttl, 254);
        assert_eq!(payload, &[1, 2, 3, 4]);
    }

    #[test]
    fn ipv6_short_header_is_truncated() {
        assert_eq!(
            parse_ipv6(&[]),
            Err(IpError::Truncated { len: 0, need: 40 })
        );
        let d = header_v6(0, 112, 255);
        for cut in 1..40 {
            assert_eq!(
                parse_ipv6(&d[..cut]),
                Err(IpError::Truncated { len: cut, need: 40 })
            );
        }
        assert!(
            parse_ipv6(&d).is_ok(),
            "a bare header is a (then empty) datagram"
        );
    }

    #[test]
    fn ipv6_payload_longer_than_the_bytes_is_refused() {
        let mut d = header_v6(8, 112, 255);
        d.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(
            parse_ipv6(&d),
            Err(IpError::PayloadLength { payload: 8, len: 7 })
        );
    }

    #[test]
    fn ipv6_wrong_version_is_refused() {
        let mut d = header_v6(0, 112, 255);
        d[0] = 0x45;
        assert_eq!(
            parse_ipv6(&d),
            Err(IpError::Version {
                got: 4,
                expected: 6
            })
        );
        assert_eq!(
            parse_ipv6(&[0x40]),
            Err(IpError::Version {
                got: 4,
                expected: 6
            }),
            "the version is named before the length"
        );
    }

    #[test]
    fn ipv6_other_next_headers_are_not_vrrp() {
        // Hop-by-hop options (0), ICMPv6 (58), UDP (17): never read through.
        for next in [0, 58, 17] {
            let mut d = header_v6(4, next, 255);
            d.extend_from_slice(&[0x31, 1, 100, 0]);
            assert_eq!(parse_ipv6(&d), Err(IpError::NextHeader(next)));
        }
    }

    #[test]
    fn messages_name_the_family() {
        let v6 = IpError::Version {
            got: 4,
            expected: 6,
        };
        assert_eq!(v6.to_string(), "IP version 4 is not 6");
        assert!(IpError::NextHeader(0).to_string().starts_with("IPv6 "));
        assert!(
            !IpError::Truncated { len: 3, need: 40 }
                .to_string()
                .contains("IPv4")
        );
    }

    /// Every truncation and every value of every byte of a good packet (with
    /// padding): no panic, and what is accepted is cut at its own payload length.
    #[test]
    fn ipv6_never_panics_on_truncation_or_changed_bytes() {
        // A v3 header and one address, then 6 bytes of padding.
        let mut good = header_v6(24, 112, 255);
        good.extend_from_slice(&[0x31, 7, 100, 1, 0, 100, 0, 0]);
        good.extend_from_slice(&Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 9).octets());
        good.extend_from_slice(&[0; 6]);
        let check = |d: &[u8]| {
            if let Ok((_, payload)) = parse_ipv6(d) {
                let field = usize::from(u16::from_be_bytes([d[4], d[5]]));
                assert_eq!(payload.len(), field);
                assert_eq!(payload, &d[40..40 + field]);
            }
        };
        for cut in 0..=good.len() {
            check(&good[..cut]);
        }
        for at in 0..good.len() {
            for x in 1..=255u8 {
                let mut d = good.clone();
                d[at] ^= x;
                check(&d);
            }
        }
    }
}
