//! Unsolicited neighbour advertisements (RFC 4861 §7.2.6), the IPv6 counterpart of
//! gratuitous ARP: on takeover they tell the segment that an IPv6 VIP now lives at
//! this node's MAC. A raw ICMPv6 socket bound to the interface; the kernel fills in
//! the IPv6 header and the ICMPv6 checksum (it always does for ICMPv6 raw sockets).

use std::io;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

use super::ndp::NdpRepr;

/// All-nodes link-local multicast, where unsolicited advertisements go.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

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
            .send_to(&NdpRepr::unsolicited(vip, mac).emit(), to)
            .await
            .map(|_| ())
    }
}
