//! Neighbour discovery on one interface through a raw ICMPv6 socket bound to it:
//! unsolicited advertisements (RFC 4861 §7.2.6), the IPv6 counterpart of
//! gratuitous ARP, on takeover; and (`open_probe`) the ownership probe, a
//! solicitation for a VIP from this node's own address, whose answers (and any
//! other solicitation or advertisement on the link) it reads back. The kernel
//! fills in the IPv6 header and the ICMPv6 checksum, and verifies the checksum of
//! what arrives; the hop limit is ours to check (RFC 4861 §7.1: anything but 255
//! crossed a router and is dropped).

use std::io::{self, IoSlice};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::fd::AsRawFd;

use nix::sys::socket::{ControlMessage, MsgFlags, SockaddrIn6, sendmsg, setsockopt, sockopt};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;

use super::ndp::{ICMPV6_NEIGHBOUR_ADVERT, ICMPV6_NEIGHBOUR_SOLICIT, NdpRepr, solicited_node};
use super::vrrp_socket::recv_v6;

/// `ICMP6_FILTER` (linux/icmpv6.h; not in the libc crate): at `IPPROTO_ICMPV6`,
/// a 256-bit map of ICMPv6 types in which a set bit blocks the type.
const ICMP6_FILTER: libc::c_int = 1;

/// One neighbour discovery message read by a probe socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NdpReceived {
    /// The IPv6 source: the answering node's address (`::` for duplicate
    /// address detection).
    pub src: Ipv6Addr,
    /// Where it was sent: this node's address for a solicited answer, a
    /// multicast group otherwise.
    pub dst: Ipv6Addr,
    pub repr: NdpRepr,
}

/// All-nodes link-local multicast, where unsolicited advertisements go.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

pub struct NdiscSocket {
    ifindex: u32,
    sock: UdpSocket,
}

impl NdiscSocket {
    /// Opens the socket on `interface` (needs CAP_NET_RAW).
    pub fn open(interface: &str, ifindex: u32) -> io::Result<Self> {
        NdiscSocket::over(interface, ifindex, |s| {
            // Send only: nothing we read, so keep the receive queue tiny.
            s.set_recv_buffer_size(1)
        })
    }

    /// Opens a socket that also solicits and reads neighbour discovery on
    /// `interface` (needs CAP_NET_RAW): only solicitations and advertisements
    /// are queued to it (the kernel filters every other ICMPv6 type), with their
    /// hop limit.
    pub fn open_probe(interface: &str, ifindex: u32) -> io::Result<Self> {
        NdiscSocket::over(interface, ifindex, |s| {
            pass_only(s, &[ICMPV6_NEIGHBOUR_SOLICIT, ICMPV6_NEIGHBOUR_ADVERT])?;
            s.set_recv_hoplimit_v6(true)?;
            // The destination tells an answer to us from one to a group.
            setsockopt(s, sockopt::Ipv6RecvPacketInfo, &true)?;
            s.set_unicast_hops_v6(255)
        })
    }

    /// The raw ICMPv6 socket both kinds share, with `extra` set before it is
    /// handed to tokio.
    fn over(
        interface: &str,
        ifindex: u32,
        extra: impl FnOnce(&Socket) -> io::Result<()>,
    ) -> io::Result<Self> {
        let s = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
        s.bind_device(Some(interface.as_bytes()))?;
        // RFC 4861 §7.1.2: receivers drop neighbour discovery with a hop limit
        // other than 255.
        s.set_multicast_hops_v6(255)?;
        s.set_multicast_if_v6(ifindex)?;
        // Our own messages must not come back as someone's.
        s.set_multicast_loop_v6(false)?;
        extra(&s)?;
        s.set_nonblocking(true)?;
        let sock = UdpSocket::from_std(std::net::UdpSocket::from(s))?;
        Ok(NdiscSocket { ifindex, sock })
    }

    /// "Who has `target`?" to its solicited-node group, from `src` (this node's
    /// own address on the interface, never a VIP: the answer goes to the
    /// source, and never `::`, which is duplicate address detection and would
    /// make a holder's tentative address fail), carrying `mac`.
    pub async fn solicit(&self, src: Ipv6Addr, mac: [u8; 6], target: Ipv6Addr) -> io::Result<()> {
        if src.is_unspecified() || src.is_multicast() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a solicitation must come from a unicast address, not {src}"),
            ));
        }
        let body = NdpRepr::probe(target, mac).emit();
        let dst = SockaddrIn6::from(SocketAddrV6::new(
            solicited_node(target),
            0,
            0,
            self.ifindex,
        ));
        // The source goes with each message (IPV6_PKTINFO) rather than by bind:
        // a raw socket bound to an address receives only what is sent to it,
        // and advertisements to all nodes are evidence too.
        let info = libc::in6_pktinfo {
            ipi6_addr: libc::in6_addr {
                s6_addr: src.octets(),
            },
            ipi6_ifindex: self.ifindex,
        };
        self.sock
            .async_io(Interest::WRITABLE, || {
                sendmsg(
                    self.sock.as_raw_fd(),
                    &[IoSlice::new(&body)],
                    &[ControlMessage::Ipv6PacketInfo(&info)],
                    MsgFlags::empty(),
                    Some(&dst),
                )
                .map(|_| ())
                .map_err(io::Error::from)
            })
            .await
    }

    /// The next well-formed solicitation or advertisement that arrived with hop
    /// limit 255; anything else is skipped.
    pub async fn recv(&self) -> io::Result<NdpReceived> {
        let mut buf = [0u8; 1500];
        loop {
            let (n, ip) = self
                .sock
                .async_io(Interest::READABLE, || recv_v6(&self.sock, &mut buf))
                .await?;
            if ip.ttl != 255 {
                continue;
            }
            let (IpAddr::V6(src), IpAddr::V6(dst)) = (ip.endpoints.src(), ip.endpoints.dst())
            else {
                continue;
            };
            if let Ok(repr) = NdpRepr::parse(buf.get(..n).unwrap_or_default()) {
                return Ok(NdpReceived { src, dst, repr });
            }
        }
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

/// Sets the socket's ICMPv6 type filter to pass only `types`.
fn pass_only(s: &Socket, types: &[u8]) -> io::Result<()> {
    let mut filter = [u32::MAX; 8];
    for &t in types {
        filter[usize::from(t >> 5)] &= !(1u32 << (t & 31));
    }
    // SAFETY: the option value is the kernel's struct icmp6_filter (eight u32s),
    // passed by pointer with its exact size; the fd is a live socket.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_ICMPV6,
            ICMP6_FILTER,
            filter.as_ptr().cast(),
            std::mem::size_of_val(&filter) as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
