//! Passive capture of VRRP adverts on a segment: an AF_PACKET socket on the
//! interface with a classic BPF filter for IP protocol 112, so the kernel hands
//! us adverts only (the interface also carries the service's traffic). It sees
//! frames before the host firewall does, and our own outgoing adverts too, which
//! is how a firewalled or misconfigured node is told apart from a dead peer.

use std::io;
use std::os::fd::AsRawFd;

use nix::sys::socket::{LinkAddr, recvfrom};
use socket2::{Domain, Protocol, SockAddr, SockAddrStorage, SockFilter, Socket, Type};
use splitguard_watchdog::core::classify::{AdvertSeen, AuthSeen};
use tokio::io::Interest;
use tokio::net::UdpSocket;

use splitguard_vrrp::wire::{self, Auth, ChecksumMode};

const ETH_P_IP: u16 = 0x0800;
const ETH_P_ALL: u16 = 0x0003;
/// `sll_pkttype` of a frame this host sent.
const PACKET_OUTGOING: u8 = 4;

/// "IPv4 and IP protocol == 112". The socket is bound to ETH_P_ALL, because
/// only such sockets see outgoing frames (our own adverts), so the filter checks
/// the frame's protocol first (the kernel's ancillary `SKF_AD_PROTOCOL` load),
/// then byte 9 of the IPv4 header (a SOCK_DGRAM packet socket's filter sees the
/// packet from the network header), and accepts the whole packet or nothing.
fn vrrp_filter() -> [SockFilter; 6] {
    const LD_H_ABS: u16 = 0x28;
    const LD_B_ABS: u16 = 0x30;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    const SKF_AD_PROTOCOL: u32 = 0xffff_f000;
    [
        SockFilter::new(LD_H_ABS, 0, 0, SKF_AD_PROTOCOL),
        SockFilter::new(JEQ_K, 0, 3, u32::from(ETH_P_IP)),
        SockFilter::new(LD_B_ABS, 0, 0, 9),
        SockFilter::new(JEQ_K, 0, 1, 112),
        SockFilter::new(RET_K, 0, 0, 0x0004_0000),
        SockFilter::new(RET_K, 0, 0, 0),
    ]
}

fn link_addr(ifindex: u32) -> SockAddr {
    let mut storage = SockAddrStorage::zeroed();
    // SAFETY: sockaddr_ll fits in sockaddr_storage, and the family and length set
    // below describe exactly the sockaddr_ll written into it.
    unsafe {
        let ll = storage.view_as::<libc::sockaddr_ll>();
        ll.sll_family = libc::AF_PACKET as u16;
        ll.sll_protocol = ETH_P_ALL.to_be();
        ll.sll_ifindex = ifindex as i32;
        SockAddr::new(
            storage,
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    }
}

pub struct VrrpCapture {
    sock: UdpSocket,
}

/// The advert as the classifier wants it, from an IPv4 datagram; None for
/// anything that is not a well-formed advert.
pub fn advert_seen(datagram: &[u8], from_self: bool) -> Option<AdvertSeen> {
    let (ip, vrrp) = wire::parse_ipv4(datagram).ok()?;
    let repr = wire::inspect(&ip, vrrp, ChecksumMode::PseudoHeader)
        .or_else(|_| wire::inspect(&ip, vrrp, ChecksumMode::NoPseudoHeader))
        .ok()?;
    Some(AdvertSeen {
        src: ip.endpoints.src(),
        vrid: repr.vrid,
        priority: repr.priority,
        version: repr.version.number(),
        interval: repr.interval(),
        vips: repr.addrs.iter().collect(),
        auth: auth_seen(repr.auth),
        from_self,
    })
}

/// An advert's authentication as the classifier compares it.
pub fn auth_seen(auth: Auth) -> AuthSeen {
    match auth {
        Auth::None => AuthSeen::None,
        Auth::Pass(p) => AuthSeen::Pass(p),
        Auth::Ah => AuthSeen::Other(2),
        Auth::Other(t) => AuthSeen::Other(t),
    }
}

impl VrrpCapture {
    /// Opens the capture on interface `ifindex` (needs CAP_NET_RAW).
    pub fn open(ifindex: u32) -> io::Result<Self> {
        let s = Socket::new(
            Domain::PACKET,
            Type::DGRAM,
            Some(Protocol::from(i32::from(ETH_P_ALL.to_be()))),
        )?;
        s.attach_filter(&vrrp_filter())?;
        s.bind(&link_addr(ifindex))?;
        s.set_nonblocking(true)?;
        Ok(VrrpCapture {
            sock: UdpSocket::from_std(std::net::UdpSocket::from(s))?,
        })
    }

    /// The next well-formed advert (malformed ones are skipped).
    pub async fn recv(&self) -> io::Result<AdvertSeen> {
        let mut buf = [0u8; 2048];
        loop {
            let (n, from) = self
                .sock
                .async_io(Interest::READABLE, || {
                    recvfrom::<LinkAddr>(self.sock.as_raw_fd(), &mut buf).map_err(io::Error::from)
                })
                .await?;
            let outgoing = from.is_some_and(|a| a.pkttype() == PACKET_OUTGOING);
            if let Some(a) = advert_seen(buf.get(..n).unwrap_or_default(), outgoing) {
                return Ok(a);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// keepalived 2.2.7's v2 PASS advert as captured (tests/fixtures/keepalived):
    /// pcap header (24) + record header (16) + Ethernet (14), then 40 bytes of IP.
    #[test]
    fn a_captured_keepalived_advert_reads_into_the_classifier_view() {
        let pcap = include_bytes!("../../../tests/fixtures/keepalived/v2_pass.pcap");
        let ip = &pcap[54..94];
        let a = advert_seen(ip, false).expect("parses");
        assert_eq!(a.version, 2);
        assert_eq!(a.vrid, 51);
        assert_eq!(a.priority, 150);
        assert_eq!(a.src, "192.0.2.5".parse::<std::net::IpAddr>().unwrap());
        assert_eq!(a.interval, std::time::Duration::from_secs(1));
        assert_eq!(a.auth, AuthSeen::Pass(*b"1111\0\0\0\0"));
        assert!(!a.vips.is_empty());
        assert!(advert_seen(&ip[..10], false).is_none());
        let mut bad = ip.to_vec();
        bad[30] ^= 0xff;
        assert!(advert_seen(&bad, false).is_none(), "checksum checked");
    }
}
