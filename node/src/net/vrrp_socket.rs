//! Raw IP-protocol-112 sockets for VRRP, one pair per interface and address family.
//!
//! Receiving and sending use separate sockets: a raw socket bound to an address only
//! receives datagrams addressed to it, which would lose the multicast adverts, while
//! the sending socket must be bound to the node's own address so adverts never leave
//! from a VIP (ties are broken on the source address).
//!
//! IPv4 raw sockets hand us the IP header, so the TTL is read from it. IPv6 raw
//! sockets do not: the hop limit and the destination come as ancillary data
//! (`IPV6_RECVHOPLIMIT`, `IPV6_RECVPKTINFO`), read with `recvmsg`.

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrIn6, recvmsg, setsockopt, sockopt};
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;

use splitguard_vrrp::wire::{self, Family, IpError, IpInfo};

/// IANA protocol number of VRRP.
pub const IPPROTO_VRRP: i32 = 112;
/// The VRRP IPv4 multicast group.
pub const VRRP_GROUP_V4: Ipv4Addr = wire::MULTICAST_V4;
/// The VRRP IPv6 multicast group.
pub const VRRP_GROUP_V6: Ipv6Addr = wire::MULTICAST_V6;
/// DSCP CS6 / precedence 6, the TOS (IPv4) or traffic class (IPv6) keepalived uses.
const TOS_INTERNETWORK_CONTROL: u32 = 0xc0;
/// The receive queue of the VRRP socket, in bytes (the kernel doubles it for
/// its bookkeeping). The default (about 200 KiB, some 270 small frames) fills
/// within 30 ms of a 10,000 frames a second flood whenever the event loop is
/// busy that long, and a full queue drops the peer's adverts with the garbage:
/// a backup that misses three takes over. 4 MiB holds about 400 ms of such a
/// flood; the memory is used only while frames wait.
pub const RECEIVE_BUFFER: usize = 4 << 20;

/// Grows `s`'s receive queue to [`RECEIVE_BUFFER`]: past `net.core.rmem_max`
/// with CAP_NET_ADMIN (SO_RCVBUFFORCE), else as far as that limit allows.
pub fn grow_receive_buffer(s: &Socket) -> io::Result<()> {
    match setsockopt(s, sockopt::RcvBufForce, &RECEIVE_BUFFER) {
        Ok(()) => Ok(()),
        Err(_) => s.set_recv_buffer_size(RECEIVE_BUFFER),
    }
}

#[derive(Debug, thiserror::Error)]
#[error("VRRP socket on {interface}: {what}: {source}")]
pub struct SocketError {
    pub interface: String,
    pub what: &'static str,
    #[source]
    pub source: io::Error,
}

/// One datagram read from a VRRP socket.
#[derive(Debug)]
pub enum Received {
    /// The IP facts and the VRRP message.
    Advert { ip: IpInfo, vrrp: Vec<u8> },
    /// An IPv4 datagram whose header could not be read (dropped by the caller).
    BadHeader(IpError),
}

/// The receiving and sending raw sockets of one interface and family.
pub struct VrrpSocket {
    interface: String,
    ifindex: u32,
    family: Family,
    rx: UdpSocket,
    tx: UdpSocket,
}

fn err(interface: &str, what: &'static str) -> impl FnOnce(io::Error) -> SocketError {
    let interface = interface.to_string();
    move |source| SocketError {
        interface,
        what,
        source,
    }
}

/// tokio's UdpSocket drives any datagram fd; AsyncFd's safe constructors are
/// deprecated (see research/anchors-rust.md).
fn into_tokio(s: Socket) -> io::Result<UdpSocket> {
    s.set_nonblocking(true)?;
    UdpSocket::from_std(std::net::UdpSocket::from(s))
}

impl VrrpSocket {
    /// Opens IPv4 sockets on `interface` (index `ifindex`), sending from `source`.
    /// With `multicast` the receiver joins 224.0.0.18 on that interface.
    pub fn open_v4(
        interface: &str,
        ifindex: u32,
        source: Ipv4Addr,
        multicast: bool,
    ) -> Result<Self, SocketError> {
        let e = |what| err(interface, what);
        let raw = || Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(IPPROTO_VRRP)));

        let rx = raw().map_err(e("open raw receive socket (needs CAP_NET_RAW)"))?;
        // Without this the socket sees protocol 112 from every interface.
        rx.bind_device(Some(interface.as_bytes()))
            .map_err(e("bind receive socket to the device"))?;
        grow_receive_buffer(&rx).map_err(e("grow the receive buffer"))?;
        if multicast {
            rx.join_multicast_v4_n(&VRRP_GROUP_V4, &InterfaceIndexOrAddress::Index(ifindex))
                .map_err(e("join 224.0.0.18"))?;
        }

        let tx = raw().map_err(e("open raw send socket (needs CAP_NET_RAW)"))?;
        tx.bind_device(Some(interface.as_bytes()))
            .map_err(e("bind send socket to the device"))?;
        tx.bind(&SockAddr::from(SocketAddrV4::new(source, 0)))
            .map_err(e("bind send socket to the primary address"))?;
        // RFC 3768/5798 §5.1.1.3: TTL 255 so receivers can prove the advert is local.
        tx.set_multicast_ttl_v4(255)
            .map_err(e("set multicast TTL"))?;
        tx.set_ttl_v4(255).map_err(e("set unicast TTL"))?;
        tx.set_multicast_if_v4(&source)
            .map_err(e("set multicast interface"))?;
        tx.set_multicast_loop_v4(false)
            .map_err(e("disable multicast loop"))?;
        tx.set_tos_v4(TOS_INTERNETWORK_CONTROL)
            .map_err(e("set TOS"))?;
        // Never read: keep what it queues (unicast adverts to us) small.
        tx.set_recv_buffer_size(1)
            .map_err(e("shrink send socket receive buffer"))?;

        Ok(VrrpSocket {
            interface: interface.to_string(),
            ifindex,
            family: Family::Ipv4,
            rx: into_tokio(rx).map_err(e("register receive socket with tokio"))?,
            tx: into_tokio(tx).map_err(e("register send socket with tokio"))?,
        })
    }

    /// Opens IPv6 sockets on `interface`, sending from `source` (RFC 5798 §5.1.2.1:
    /// the interface's link-local address). The receiver always joins ff02::12:
    /// unicast adverts reach it as well.
    pub fn open_v6(interface: &str, ifindex: u32, source: Ipv6Addr) -> Result<Self, SocketError> {
        let e = |what| err(interface, what);
        let raw = || Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::from(IPPROTO_VRRP)));

        let rx = raw().map_err(e("open raw IPv6 receive socket (needs CAP_NET_RAW)"))?;
        rx.bind_device(Some(interface.as_bytes()))
            .map_err(e("bind receive socket to the device"))?;
        grow_receive_buffer(&rx).map_err(e("grow the receive buffer"))?;
        rx.join_multicast_v6(&VRRP_GROUP_V6, ifindex)
            .map_err(e("join ff02::12"))?;
        rx.set_recv_hoplimit_v6(true)
            .map_err(e("ask for the hop limit of received adverts"))?;
        setsockopt(&rx, sockopt::Ipv6RecvPacketInfo, &true)
            .map_err(|errno| e("ask for the destination of received adverts")(errno.into()))?;

        let tx = raw().map_err(e("open raw IPv6 send socket (needs CAP_NET_RAW)"))?;
        tx.bind_device(Some(interface.as_bytes()))
            .map_err(e("bind send socket to the device"))?;
        // A link-local address may still be tentative (DAD) right after the link
        // came up; freebind lets the bind succeed, and the kernel sends once it is
        // usable.
        tx.set_freebind_v6(true).map_err(e("set IPV6_FREEBIND"))?;
        let scope = if source.is_unicast_link_local() {
            ifindex
        } else {
            0
        };
        tx.bind(&SockAddr::from(SocketAddrV6::new(source, 0, 0, scope)))
            .map_err(e("bind send socket to the link-local address"))?;
        tx.set_multicast_hops_v6(255)
            .map_err(e("set multicast hop limit"))?;
        tx.set_unicast_hops_v6(255)
            .map_err(e("set unicast hop limit"))?;
        tx.set_multicast_if_v6(ifindex)
            .map_err(e("set multicast interface"))?;
        tx.set_multicast_loop_v6(false)
            .map_err(e("disable multicast loop"))?;
        tx.set_tclass_v6(TOS_INTERNETWORK_CONTROL)
            .map_err(e("set traffic class"))?;
        tx.set_recv_buffer_size(1)
            .map_err(e("shrink send socket receive buffer"))?;

        Ok(VrrpSocket {
            interface: interface.to_string(),
            ifindex,
            family: Family::Ipv6,
            rx: into_tokio(rx).map_err(e("register receive socket with tokio"))?,
            tx: into_tokio(tx).map_err(e("register send socket with tokio"))?,
        })
    }

    pub fn interface(&self) -> &str {
        &self.interface
    }

    pub fn family(&self) -> Family {
        self.family
    }

    /// Receives one datagram.
    pub async fn recv(&self) -> io::Result<Received> {
        let mut buf = [0u8; 2048];
        match self.family {
            Family::Ipv4 => {
                let n = self.rx.recv(&mut buf).await?;
                let datagram = buf.get(..n).unwrap_or_default();
                Ok(match wire::parse_ipv4(datagram) {
                    Ok((ip, vrrp)) => Received::Advert {
                        ip,
                        vrrp: vrrp.to_vec(),
                    },
                    Err(e) => Received::BadHeader(e),
                })
            }
            Family::Ipv6 => {
                let (n, ip) = self
                    .rx
                    .async_io(Interest::READABLE, || recv_v6(&self.rx, &mut buf))
                    .await?;
                Ok(Received::Advert {
                    ip,
                    vrrp: buf.get(..n).unwrap_or_default().to_vec(),
                })
            }
        }
    }

    /// Sends a VRRP message (no IP header: the kernel adds it) to `dst`.
    pub async fn send(&self, vrrp: &[u8], dst: IpAddr) -> io::Result<()> {
        let to = match dst {
            IpAddr::V4(a) => SocketAddr::V4(SocketAddrV4::new(a, 0)),
            // Link-local and link-scope multicast destinations need the interface.
            IpAddr::V6(a) => {
                let scoped = a.is_unicast_link_local() || a.is_multicast();
                let scope = if scoped { self.ifindex } else { 0 };
                SocketAddr::V6(SocketAddrV6::new(a, 0, 0, scope))
            }
        };
        self.tx.send_to(vrrp, to).await.map(|_| ())
    }
}

/// One `recvmsg` on an IPv6 raw socket: the payload length and its IP facts. A
/// datagram without a hop limit reads as hop limit 0, which the TTL check rejects.
pub(super) fn recv_v6(sock: &UdpSocket, buf: &mut [u8]) -> io::Result<(usize, IpInfo)> {
    let mut cmsg = nix::cmsg_space!(libc::in6_pktinfo, libc::c_int);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<SockaddrIn6>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::empty(),
    )?;
    let src = msg.address.map(|a| a.ip()).unwrap_or(Ipv6Addr::UNSPECIFIED);
    let mut hop_limit = 0u8;
    let mut dst = Ipv6Addr::UNSPECIFIED;
    for c in msg.cmsgs()? {
        match c {
            ControlMessageOwned::Ipv6HopLimit(h) => hop_limit = u8::try_from(h).unwrap_or(0),
            ControlMessageOwned::Ipv6PacketInfo(info) => {
                dst = Ipv6Addr::from(info.ipi6_addr.s6_addr)
            }
            _ => {}
        }
    }
    Ok((msg.bytes, IpInfo::ipv6(src, dst, hop_limit)))
}
