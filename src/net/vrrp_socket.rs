//! Raw IP-protocol-112 sockets for VRRP over IPv4, one pair per interface.
//!
//! Receiving and sending use separate sockets: a raw socket bound to an address only
//! receives datagrams addressed to it, which would lose the multicast adverts, while
//! the sending socket must be bound to the primary address so adverts never leave
//! from a VIP (keepalived ties are broken on the source address).

use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use tokio::net::UdpSocket;

/// IANA protocol number of VRRP.
pub const IPPROTO_VRRP: i32 = 112;
/// The VRRP IPv4 multicast group.
pub const VRRP_GROUP_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// DSCP CS6 / precedence 6, the TOS keepalived sends adverts with.
const TOS_INTERNETWORK_CONTROL: u32 = 0xc0;

#[derive(Debug, thiserror::Error)]
#[error("VRRP socket on {interface}: {what}: {source}")]
pub struct SocketError {
    pub interface: String,
    pub what: &'static str,
    #[source]
    pub source: io::Error,
}

/// The receiving and sending raw sockets of one interface.
pub struct VrrpSocketV4 {
    interface: String,
    rx: UdpSocket,
    tx: UdpSocket,
}

impl VrrpSocketV4 {
    /// Opens the sockets on `interface` (index `ifindex`), sending from `source`.
    /// With `multicast` the receiver joins 224.0.0.18 on that interface.
    pub fn open(
        interface: &str,
        ifindex: u32,
        source: Ipv4Addr,
        multicast: bool,
    ) -> Result<Self, SocketError> {
        let err = |what: &'static str| {
            let interface = interface.to_string();
            move |source| SocketError {
                interface,
                what,
                source,
            }
        };
        let raw = || Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(IPPROTO_VRRP)));

        let rx = raw().map_err(err("open raw receive socket (needs CAP_NET_RAW)"))?;
        // Without this the socket sees protocol 112 from every interface.
        rx.bind_device(Some(interface.as_bytes()))
            .map_err(err("bind receive socket to the device"))?;
        if multicast {
            rx.join_multicast_v4_n(&VRRP_GROUP_V4, &InterfaceIndexOrAddress::Index(ifindex))
                .map_err(err("join 224.0.0.18"))?;
        }
        rx.set_nonblocking(true).map_err(err("set non-blocking"))?;

        let tx = raw().map_err(err("open raw send socket (needs CAP_NET_RAW)"))?;
        tx.bind_device(Some(interface.as_bytes()))
            .map_err(err("bind send socket to the device"))?;
        tx.bind(&SockAddr::from(SocketAddrV4::new(source, 0)))
            .map_err(err("bind send socket to the primary address"))?;
        // RFC 3768/5798 §5.1.1.3: TTL 255 so receivers can prove the advert is local.
        tx.set_multicast_ttl_v4(255)
            .map_err(err("set multicast TTL"))?;
        tx.set_ttl_v4(255).map_err(err("set unicast TTL"))?;
        tx.set_multicast_if_v4(&source)
            .map_err(err("set multicast interface"))?;
        tx.set_multicast_loop_v4(false)
            .map_err(err("disable multicast loop"))?;
        tx.set_tos_v4(TOS_INTERNETWORK_CONTROL)
            .map_err(err("set TOS"))?;
        // Never read: keep what it queues (unicast adverts to us) small.
        tx.set_recv_buffer_size(1)
            .map_err(err("shrink send socket receive buffer"))?;
        tx.set_nonblocking(true).map_err(err("set non-blocking"))?;

        // tokio's UdpSocket drives any datagram fd; AsyncFd's safe constructors are
        // deprecated (see research/anchors-rust.md).
        let rx = UdpSocket::from_std(std::net::UdpSocket::from(rx))
            .map_err(err("register receive socket with tokio"))?;
        let tx = UdpSocket::from_std(std::net::UdpSocket::from(tx))
            .map_err(err("register send socket with tokio"))?;
        Ok(VrrpSocketV4 {
            interface: interface.to_string(),
            rx,
            tx,
        })
    }

    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// Receives one datagram: the IPv4 header followed by the VRRP message.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, Ipv4Addr)> {
        let (n, from) = self.rx.recv_from(buf).await?;
        let src = match from.ip() {
            IpAddr::V4(a) => a,
            IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
        };
        Ok((n, src))
    }

    /// Sends a VRRP message (no IP header: the kernel adds it) to `dst`.
    pub async fn send(&self, vrrp: &[u8], dst: Ipv4Addr) -> io::Result<()> {
        self.tx
            .send_to(vrrp, SocketAddr::V4(SocketAddrV4::new(dst, 0)))
            .await
            .map(|_| ())
    }
}
