//! ARP on one interface through an AF_PACKET/SOCK_DGRAM socket: the kernel adds the
//! Ethernet header with the interface's own MAC, so we write and read only the
//! 28-byte ARP body. Sends gratuitous ARP on takeover; receives ARP for probes.

use crate::net::arp::{ArpRepr, ETH_P_ARP};
use socket2::{Domain, Protocol, SockAddr, SockAddrStorage, SockRef, Socket, Type};
use std::io;
use std::net::Ipv4Addr;
use tokio::io::Interest;
use tokio::net::UdpSocket;

pub struct ArpSocket {
    ifindex: u32,
    sock: UdpSocket,
}

/// `sockaddr_ll` for `ifindex`, protocol ARP, link-layer destination `dst`.
fn link_addr(ifindex: u32, dst: [u8; 6]) -> SockAddr {
    let mut storage = SockAddrStorage::zeroed();
    // SAFETY: sockaddr_ll fits in sockaddr_storage, and the family and length set
    // below describe exactly the sockaddr_ll written into it.
    unsafe {
        let ll = storage.view_as::<libc::sockaddr_ll>();
        ll.sll_family = libc::AF_PACKET as u16;
        ll.sll_protocol = ETH_P_ARP.to_be();
        ll.sll_ifindex = ifindex as i32;
        ll.sll_halen = 6;
        ll.sll_addr[..6].copy_from_slice(&dst);
        SockAddr::new(
            storage,
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    }
}

impl ArpSocket {
    /// Opens the socket on interface `ifindex` (needs CAP_NET_RAW).
    pub fn open(ifindex: u32) -> io::Result<Self> {
        let s = Socket::new(
            Domain::PACKET,
            Type::DGRAM,
            Some(Protocol::from(i32::from(ETH_P_ARP.to_be()))),
        )?;
        // Binding limits reception to this interface.
        s.bind(&link_addr(ifindex, [0; 6]))?;
        s.set_nonblocking(true)?;
        let sock = UdpSocket::from_std(std::net::UdpSocket::from(s))?;
        Ok(ArpSocket { ifindex, sock })
    }

    /// Broadcasts `repr` on the segment.
    pub async fn broadcast(&self, repr: &ArpRepr) -> io::Result<()> {
        let body = repr.emit();
        let dst = link_addr(self.ifindex, [0xff; 6]);
        self.sock
            .async_io(Interest::WRITABLE, || {
                SockRef::from(&self.sock).send_to(&body, &dst).map(|_| ())
            })
            .await
    }

    /// Sends a gratuitous ARP for `vip` from `mac`.
    pub async fn gratuitous(&self, mac: [u8; 6], vip: Ipv4Addr) -> io::Result<()> {
        self.broadcast(&ArpRepr::gratuitous(mac, vip)).await
    }

    /// Receives the next well-formed ARP message; malformed frames are skipped.
    pub async fn recv(&self) -> io::Result<ArpRepr> {
        let mut buf = [0u8; 64];
        loop {
            let n = self.sock.recv(&mut buf).await?;
            if let Ok(repr) = ArpRepr::parse(buf.get(..n).unwrap_or(&[])) {
                return Ok(repr);
            }
        }
    }
}
