//! ARP over Ethernet/IPv4 on the wire (RFC 826): the 28-byte body the kernel wraps
//! in an Ethernet header for AF_PACKET/SOCK_DGRAM sockets. Used for gratuitous ARP
//! when a node takes a VIP and for the ownership probe ("who answers for this VIP?").
//! Parsing is checked: anything but Ethernet/IPv4 ARP is rejected, never panics.

use std::net::Ipv4Addr;

/// Length of an Ethernet/IPv4 ARP body.
pub const ARP_LEN: usize = 28;
/// EtherType of ARP, for the AF_PACKET socket's protocol.
pub const ETH_P_ARP: u16 = 0x0806;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ArpError {
    #[error("ARP packet too short: {0} bytes, need 28")]
    Truncated(usize),
    #[error("not Ethernet/IPv4 ARP (htype {htype}, ptype {ptype:#06x}, hlen {hlen}, plen {plen})")]
    NotEthernetIpv4 {
        htype: u16,
        ptype: u16,
        hlen: u8,
        plen: u8,
    },
    #[error("unknown ARP operation {0}")]
    Operation(u16),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Request,
    Reply,
}

/// A parsed Ethernet/IPv4 ARP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRepr {
    pub operation: Operation,
    pub sender_mac: [u8; 6],
    pub sender_ip: Ipv4Addr,
    pub target_mac: [u8; 6],
    pub target_ip: Ipv4Addr,
}

impl ArpRepr {
    /// The gratuitous ARP keepalived sends on takeover: a request with SPA = TPA =
    /// the VIP and THA = broadcast, which updates every neighbour cache and switch
    /// table on the segment.
    pub fn gratuitous(mac: [u8; 6], vip: Ipv4Addr) -> Self {
        ArpRepr {
            operation: Operation::Request,
            sender_mac: mac,
            sender_ip: vip,
            target_mac: [0xff; 6],
            target_ip: vip,
        }
    }

    /// "Who has `target`? Tell `sender_ip`": the ownership probe, sent from this
    /// node's own address so the answer comes back to us and not to the VIP holder.
    pub fn probe(mac: [u8; 6], sender_ip: Ipv4Addr, target: Ipv4Addr) -> Self {
        ArpRepr {
            operation: Operation::Request,
            sender_mac: mac,
            sender_ip,
            target_mac: [0; 6],
            target_ip: target,
        }
    }

    pub fn parse(b: &[u8]) -> Result<Self, ArpError> {
        let b: &[u8; ARP_LEN] = b
            .get(..ARP_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(ArpError::Truncated(b.len()))?;
        let htype = u16::from_be_bytes([b[0], b[1]]);
        let ptype = u16::from_be_bytes([b[2], b[3]]);
        let (hlen, plen) = (b[4], b[5]);
        if htype != 1 || ptype != 0x0800 || hlen != 6 || plen != 4 {
            return Err(ArpError::NotEthernetIpv4 {
                htype,
                ptype,
                hlen,
                plen,
            });
        }
        let operation = match u16::from_be_bytes([b[6], b[7]]) {
            1 => Operation::Request,
            2 => Operation::Reply,
            other => return Err(ArpError::Operation(other)),
        };
        let mac = |at: usize| -> [u8; 6] {
            let mut m = [0u8; 6];
            m.copy_from_slice(&b[at..at + 6]);
            m
        };
        let ip = |at: usize| Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3]);
        Ok(ArpRepr {
            operation,
            sender_mac: mac(8),
            sender_ip: ip(14),
            target_mac: mac(18),
            target_ip: ip(24),
        })
    }

    pub fn emit(&self) -> [u8; ARP_LEN] {
        let mut b = [0u8; ARP_LEN];
        b[0..2].copy_from_slice(&1u16.to_be_bytes());
        b[2..4].copy_from_slice(&0x0800u16.to_be_bytes());
        b[4] = 6;
        b[5] = 4;
        let op: u16 = match self.operation {
            Operation::Request => 1,
            Operation::Reply => 2,
        };
        b[6..8].copy_from_slice(&op.to_be_bytes());
        b[8..14].copy_from_slice(&self.sender_mac);
        b[14..18].copy_from_slice(&self.sender_ip.octets());
        b[18..24].copy_from_slice(&self.target_mac);
        b[24..28].copy_from_slice(&self.target_ip.octets());
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A gratuitous ARP for 192.0.2.3 from 02:00:00:00:00:05, byte by byte.
    const GARP: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, // eth/ipv4, request
        0x02, 0x00, 0x00, 0x00, 0x00, 0x05, 192, 0, 2, 3, // sender
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 192, 0, 2, 3, // target
    ];

    #[test]
    fn gratuitous_arp_bytes() {
        let g = ArpRepr::gratuitous([2, 0, 0, 0, 0, 5], Ipv4Addr::new(192, 0, 2, 3));
        assert_eq!(g.emit(), GARP);
        assert_eq!(ArpRepr::parse(&GARP), Ok(g));
    }

    #[test]
    fn rejects_what_is_not_ethernet_ipv4_arp() {
        assert_eq!(ArpRepr::parse(&GARP[..27]), Err(ArpError::Truncated(27)));
        let mut b = GARP;
        b[2] = 0x86;
        b[3] = 0xdd;
        assert!(matches!(
            ArpRepr::parse(&b),
            Err(ArpError::NotEthernetIpv4 { ptype: 0x86dd, .. })
        ));
        let mut b = GARP;
        b[7] = 9;
        assert_eq!(ArpRepr::parse(&b), Err(ArpError::Operation(9)));
    }

    #[test]
    fn parse_never_panics_and_round_trips() {
        // Every length up to and past 28, every byte position flipped.
        for len in 0..40 {
            let mut v = GARP.to_vec();
            v.resize(len, 0xaa);
            let _ = ArpRepr::parse(&v);
        }
        for i in 0..28 {
            let mut b = GARP;
            b[i] ^= 0xff;
            if let Ok(r) = ArpRepr::parse(&b) {
                assert_eq!(ArpRepr::parse(&r.emit()), Ok(r));
            }
        }
    }
}
