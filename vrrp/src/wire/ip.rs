//! What the receive checks need from the IP layer: the endpoints (for the v3
//! checksum and tie-breaks) and the TTL / hop limit. An IPv4 raw socket hands us the
//! header, so [`parse_ipv4`] reads it (IHL, TTL, protocol, addresses, total length);
//! an IPv6 raw socket does not, so the caller builds [`IpInfo`] from the source
//! address and the hop limit it got as ancillary data (`IPV6_RECVHOPLIMIT`).

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

/// Why a received IPv4 datagram could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpError {
    /// Fewer bytes than the header needs.
    #[error("IPv4 datagram of {len} bytes is shorter than its {need}-byte header")]
    Truncated {
        /// Bytes present.
        len: usize,
        /// Bytes the header needs.
        need: usize,
    },
    /// The version nibble is not 4.
    #[error("IP version {0} is not 4")]
    Version(u8),
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
        return Err(IpError::Version(first >> 4));
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(parse_ipv4(&[0x60; 40]), Err(IpError::Version(6)));
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
}
