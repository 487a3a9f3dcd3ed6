//! Unsolicited neighbour advertisements (RFC 4861 §7.2.6), the IPv6 counterpart of
//! gratuitous ARP: on takeover they tell the segment that an IPv6 VIP now lives at
//! this node's MAC. A raw ICMPv6 socket bound to the interface; the kernel fills in
//! the IPv6 header and the ICMPv6 checksum (it always does for ICMPv6 raw sockets).

use std::io;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

/// All-nodes link-local multicast, where unsolicited advertisements go.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

const ICMPV6_NEIGHBOUR_ADVERT: u8 = 136;
/// Flag bits in the first byte after the checksum.
const FLAG_OVERRIDE: u8 = 0x20;
/// Option: Target Link-Layer Address, length in units of 8 bytes.
const OPT_TARGET_LL_ADDR: u8 = 2;

/// Length of an advertisement with the target link-layer option.
pub const NA_LEN: usize = 32;

/// The ICMPv6 message: Override set (replace whatever MAC receivers cached),
/// Solicited clear, Router clear (a VIP is not a router announcement), checksum
/// left zero for the kernel.
pub fn unsolicited_na(target: Ipv6Addr, mac: [u8; 6]) -> [u8; NA_LEN] {
    let mut m = [0u8; NA_LEN];
    m[0] = ICMPV6_NEIGHBOUR_ADVERT;
    m[4] = FLAG_OVERRIDE;
    m[8..24].copy_from_slice(&target.octets());
    m[24] = OPT_TARGET_LL_ADDR;
    m[25] = 1;
    m[26..32].copy_from_slice(&mac);
    m
}

pub struct NdiscSocket {
    ifindex: u32,
    sock: UdpSocket,
}

impl NdiscSocket {
    /// Opens the socket on `interface` (needs CAP_NET_RAW).
    pub fn open(interface: &str, ifindex: u32) -> io::Result<Self> {
        let s = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
        s.bind_device(Some(interface.as_bytes()))?;
        // RFC 4861 §7.1.2: receivers drop neighbour discovery with a hop limit
        // other than 255.
        s.set_multicast_hops_v6(255)?;
        s.set_multicast_if_v6(ifindex)?;
        s.set_multicast_loop_v6(false)?;
        // Send only: nothing we read, so keep the receive queue tiny.
        s.set_recv_buffer_size(1)?;
        s.set_nonblocking(true)?;
        let sock = UdpSocket::from_std(std::net::UdpSocket::from(s))?;
        Ok(NdiscSocket { ifindex, sock })
    }

    /// Advertises `vip` at `mac` to all nodes on the link.
    pub async fn unsolicited(&self, mac: [u8; 6], vip: Ipv6Addr) -> io::Result<()> {
        let to = SocketAddr::V6(SocketAddrV6::new(ALL_NODES, 0, 0, self.ifindex));
        self.sock
            .send_to(&unsolicited_na(vip, mac), to)
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertisement_layout() {
        let vip: Ipv6Addr = "fe80::55:3".parse().unwrap();
        let m = unsolicited_na(vip, [0x02, 0, 0, 0, 0, 0x05]);
        assert_eq!(m[0], 136, "type");
        assert_eq!(m[1], 0, "code");
        assert_eq!(&m[2..4], &[0, 0], "checksum left to the kernel");
        assert_eq!(m[4], 0x20, "override only");
        assert_eq!(&m[5..8], &[0, 0, 0]);
        assert_eq!(&m[8..24], &vip.octets());
        assert_eq!(&m[24..26], &[2, 1], "target link-layer address, 8 bytes");
        assert_eq!(&m[26..32], &[0x02, 0, 0, 0, 0, 0x05]);
    }
}
