//! Passive capture of VRRP adverts on a segment, over IPv4 and IPv6: an
//! AF_PACKET socket on the interface with a classic BPF filter for IPv4 protocol
//! 112 and IPv6 next header 112, so the kernel hands us adverts only (the
//! interface also carries the service's traffic). It sees frames before the host
//! firewall does, and our own outgoing adverts too, which is how a firewalled or
//! misconfigured node is told apart from a dead peer.

use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;

use nix::sys::socket::{LinkAddr, recvfrom};
use socket2::{Domain, Protocol, SockAddr, SockAddrStorage, SockFilter, Socket, Type};
use splitguard_watchdog::core::classify::{AdvertSeen, AuthSeen, Captured, InvalidAdvert};
use tokio::io::Interest;
use tokio::net::UdpSocket;

use splitguard_vrrp::wire::{self, Auth, Family, Packet};

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_ALL: u16 = 0x0003;
/// `sll_pkttype` of a frame this host sent.
const PACKET_OUTGOING: u8 = 4;

// Classic BPF opcodes and the kernel's ancillary load of the frame's protocol.
const LD_H_ABS: u16 = 0x28;
const LD_B_ABS: u16 = 0x30;
const JEQ_K: u16 = 0x15;
const RET_K: u16 = 0x06;
const SKF_AD_PROTOCOL: u32 = 0xffff_f000;

/// "IPv4 and protocol == 112, or IPv6 and next header == 112", as (code, jt,
/// jf, k). The socket is bound to ETH_P_ALL, because only such sockets see
/// outgoing frames (our own adverts), so the filter checks the frame's protocol
/// first (`SKF_AD_PROTOCOL`), then byte 9 of the IPv4 header or byte 6 of the
/// IPv6 header (a SOCK_DGRAM packet socket's filter sees the packet from the
/// network header), and accepts the whole packet or nothing. IPv6 adverts carry
/// no extension headers, so the fixed header's next header is the one to test.
const VRRP_FILTER: [(u16, u8, u8, u32); 9] = [
    (LD_H_ABS, 0, 0, SKF_AD_PROTOCOL),
    (JEQ_K, 0, 2, ETH_P_IP as u32),
    (LD_B_ABS, 0, 0, 9),
    (JEQ_K, 3, 4, 112),
    // Not IPv4: the accumulator still holds the protocol.
    (JEQ_K, 0, 3, ETH_P_IPV6 as u32),
    (LD_B_ABS, 0, 0, 6),
    (JEQ_K, 0, 1, 112),
    (RET_K, 0, 0, 0x0004_0000),
    (RET_K, 0, 0, 0),
];

fn vrrp_filter() -> [SockFilter; 9] {
    VRRP_FILTER.map(|(code, jt, jf, k)| SockFilter::new(code, jt, jf, k))
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

/// The advert as the classifier wants it, from an IPv4 or IPv6 packet (from its
/// network header on); None for anything that fails the link rule
/// ([`wire::link_check`], the core's own first checks): a malformed frame, or
/// one with TTL / hop limit below 255 that crossed a router or was forged. The
/// core discards those, so they name no VRRP speaker here.
pub fn advert_seen(datagram: &[u8], from_self: bool) -> Option<AdvertSeen> {
    match read_frame(datagram, from_self)? {
        Captured::Advert(a) => Some(a),
        Captured::Invalid(_) => None,
    }
}

/// What one captured frame is: an advert that passes the link rule, or an
/// invalid one with what it names as far as its bytes go (its VRID byte and
/// addresses) and why it fails; None without a readable IP header (no source
/// to name).
pub fn read_frame(datagram: &[u8], from_self: bool) -> Option<Captured> {
    let (ip, vrrp) = match datagram.first()? >> 4 {
        4 => wire::parse_ipv4(datagram).ok()?,
        6 => wire::parse_ipv6(datagram).ok()?,
        _ => return None,
    };
    let src = ip.endpoints.src();
    Some(match wire::link_check(&ip, vrrp) {
        Ok(repr) => Captured::Advert(AdvertSeen {
            src,
            vrid: repr.vrid,
            priority: repr.priority,
            version: repr.version.number(),
            interval: repr.interval(),
            vips: repr.addrs.iter().collect(),
            auth: auth_seen(repr.auth),
            from_self,
        }),
        Err(reject) => Captured::Invalid(InvalidAdvert {
            src,
            vrid: vrrp.get(1).copied(),
            vips: readable_addresses(vrrp, ip.endpoints.family()),
            reason: reject.reason(),
            detail: reject.to_string(),
            from_self,
        }),
    })
}

/// The addresses an invalid frame holds, as far as its bytes go and never
/// more than a valid one could carry.
fn readable_addresses(vrrp: &[u8], family: Family) -> Vec<IpAddr> {
    Packet::new_unchecked(vrrp, family)
        .addresses()
        .take(usize::from(u8::MAX))
        .collect()
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
        // A flood must not push the adverts that matter out of the queue.
        crate::net::vrrp_socket::grow_receive_buffer(&s)?;
        s.bind(&link_addr(ifindex))?;
        s.set_nonblocking(true)?;
        Ok(VrrpCapture {
            sock: UdpSocket::from_std(std::net::UdpSocket::from(s))?,
        })
    }

    /// The next VRRP frame with a readable IP header: an advert, or an
    /// invalid frame (frames without a readable IP header are skipped).
    pub async fn recv(&self) -> io::Result<Captured> {
        let mut buf = [0u8; 2048];
        loop {
            let (n, from) = self
                .sock
                .async_io(Interest::READABLE, || {
                    recvfrom::<LinkAddr>(self.sock.as_raw_fd(), &mut buf).map_err(io::Error::from)
                })
                .await?;
            let outgoing = from.is_some_and(|a| a.pkttype() == PACKET_OUTGOING);
            if let Some(a) = read_frame(buf.get(..n).unwrap_or_default(), outgoing) {
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

    /// The IPv4 header's checksum, set again after a test changed the header.
    fn reseal_ipv4(ip: &mut [u8]) {
        ip[10..12].fill(0);
        let sum = wire::internet_checksum(&ip[..20]);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
    }

    /// The false `split_brain` of issue 19: an advert the core discards (TTL
    /// below 255: it crossed a router, or was forged) names no speaker here.
    #[test]
    fn an_advert_that_crossed_a_router_or_was_forged_is_not_seen() {
        let pcap = include_bytes!("../../../tests/fixtures/keepalived/v2_pass.pcap");
        let mut ip = pcap[54..94].to_vec();
        assert_eq!(ip[8], 255);
        ip[8] = 64;
        reseal_ipv4(&mut ip);
        assert!(advert_seen(&ip, false).is_none());
        // Sent to a unicast address (routed unicast VRRP) it may have crossed
        // routers: the core's unicast instances take it, so it is seen.
        ip[16..20].copy_from_slice(&[192, 0, 2, 6]);
        reseal_ipv4(&mut ip);
        assert!(advert_seen(&ip, false).is_some());
        // The same over IPv6: hop limit 64 to ff02::12.
        let (mut v6, _) = v3_ipv6_fixture();
        assert_eq!(v6[7], 255);
        v6[7] = 64;
        assert!(advert_seen(&v6, false).is_none());
    }

    /// What the watcher counts toward `invalid_adverts`: the frame's source,
    /// its VRID and addresses as far as they go, and the reason.
    #[test]
    fn an_invalid_frame_is_read_as_far_as_it_goes() {
        let pcap = include_bytes!("../../../tests/fixtures/keepalived/v2_pass.pcap");
        let mut ip = pcap[54..94].to_vec();
        ip[8] = 64;
        reseal_ipv4(&mut ip);
        let Some(Captured::Invalid(i)) = read_frame(&ip, false) else {
            panic!("not read as invalid: {:?}", read_frame(&ip, false));
        };
        assert_eq!(i.src, "192.0.2.5".parse::<IpAddr>().unwrap());
        assert_eq!((i.vrid, i.reason), (Some(51), "ttl"));
        assert!(!i.vips.is_empty());
        assert_eq!(i.detail, "TTL 64 is not 255");
        // Cut inside the header: the VRID byte is still there, no address is.
        ip[8] = 255;
        let mut cut = ip[..26].to_vec();
        cut[2..4].copy_from_slice(&26u16.to_be_bytes());
        reseal_ipv4(&mut cut);
        let Some(Captured::Invalid(i)) = read_frame(&cut, false) else {
            panic!("not read as invalid: {:?}", read_frame(&cut, false));
        };
        assert_eq!((i.vrid, i.reason, i.vips.len()), (Some(51), "truncated", 0));
        assert_eq!(
            read_frame(&ip[..10], false),
            None,
            "no IP header, no source"
        );
    }

    /// keepalived 2.2.7's v3 advert over IPv6 (tests/fixtures/keepalived): pcap
    /// header (24) + record header (16) + Ethernet (14), then 40 bytes of IPv6
    /// header and 40 of VRRP (two addresses).
    fn v3_ipv6_fixture() -> (Vec<u8>, std::net::IpAddr) {
        let pcap = include_bytes!("../../../tests/fixtures/keepalived/v3_ipv6.pcap");
        // The source is the capture's random link-local: re-capturing changes it.
        let meta = include_str!("../../../tests/fixtures/keepalived/v3_ipv6.meta");
        let src = meta
            .lines()
            .find_map(|l| l.strip_prefix("src="))
            .expect("src= in the meta")
            .parse()
            .expect("an address");
        (pcap[54..134].to_vec(), src)
    }

    #[test]
    fn a_captured_keepalived_ipv6_advert_reads_into_the_classifier_view() {
        let (ip, src) = v3_ipv6_fixture();
        let a = advert_seen(&ip, true).expect("parses");
        let vip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        assert_eq!(
            a,
            AdvertSeen {
                src,
                vrid: 55,
                priority: 100,
                version: 3,
                interval: std::time::Duration::from_secs(1),
                vips: vec![vip("fe80::55:3"), vip("fe80::55:4")],
                auth: AuthSeen::None,
                from_self: true,
            }
        );
        let mut padded = ip.clone();
        padded.extend_from_slice(&[0; 6]);
        assert_eq!(advert_seen(&padded, true), Some(a), "padding is cut");
        assert!(advert_seen(&ip[..60], false).is_none(), "truncated");
    }

    #[test]
    fn an_ipv6_advert_with_a_bad_checksum_is_refused() {
        let (ip, _) = v3_ipv6_fixture();
        // VRRP's checksum field (bytes 6..8 of the message after the header).
        let mut bad = ip.clone();
        bad[46] ^= 0xff;
        assert!(advert_seen(&bad, false).is_none(), "checksum checked");
        // The pseudo-header's source: the checksum covers it.
        let mut bad = ip.clone();
        bad[23] ^= 0x01;
        assert!(advert_seen(&bad, false).is_none(), "pseudo-header checked");
    }

    #[test]
    fn an_ipv6_advert_checksummed_without_the_pseudo_header_is_refused() {
        let (mut ip, _) = v3_ipv6_fixture();
        ip[46..48].fill(0);
        let c = wire::internet_checksum(&ip[40..]).to_be_bytes();
        ip[46..48].copy_from_slice(&c);
        assert!(
            advert_seen(&ip, false).is_none(),
            "no RFC 9568 fallback over IPv6"
        );
    }

    #[test]
    fn other_ip_versions_are_not_adverts() {
        let (mut ip, _) = v3_ipv6_fixture();
        ip[0] = 0x5c;
        assert!(advert_seen(&ip, false).is_none());
        assert!(advert_seen(&[], false).is_none());
    }

    /// Runs [`VRRP_FILTER`] as the kernel would, for the opcodes it uses: the
    /// value it returns (0 drops the packet).
    fn run_filter(protocol: u16, packet: &[u8]) -> u32 {
        let (mut a, mut pc) = (0u32, 0usize);
        loop {
            let (code, jt, jf, k) = VRRP_FILTER[pc];
            pc += 1;
            match code {
                LD_H_ABS if k == SKF_AD_PROTOCOL => a = u32::from(protocol),
                // An out-of-bounds load ends the program with 0, as in the kernel.
                LD_B_ABS => match packet.get(k as usize) {
                    Some(&b) => a = u32::from(b),
                    None => return 0,
                },
                JEQ_K => pc += usize::from(if a == k { jt } else { jf }),
                RET_K => return k,
                _ => panic!("opcode {code:#x} not modelled"),
            }
        }
    }

    #[test]
    fn the_filter_takes_vrrp_over_ipv4_and_ipv6_only() {
        let v4 = include_bytes!("../../../tests/fixtures/keepalived/v2_pass.pcap");
        let v4 = &v4[54..94];
        let (v6, _) = v3_ipv6_fixture();
        assert_ne!(run_filter(ETH_P_IP, v4), 0);
        assert_ne!(run_filter(ETH_P_IPV6, &v6), 0);

        let with = |p: &[u8], at: usize, b: u8| {
            let mut p = p.to_vec();
            p[at] = b;
            p
        };
        // Other protocols / next headers (TCP, ICMPv6).
        assert_eq!(run_filter(ETH_P_IP, &with(v4, 9, 6)), 0);
        assert_eq!(run_filter(ETH_P_IPV6, &with(&v6, 6, 58)), 0);
        // Each family's byte is tested at its own offset only.
        assert_eq!(run_filter(ETH_P_IPV6, &with(&with(&v6, 6, 17), 9, 112)), 0);
        assert_eq!(run_filter(ETH_P_IP, &with(&with(v4, 9, 17), 6, 112)), 0);
        // Not IP at all (ARP), whatever its bytes say.
        assert_eq!(run_filter(0x0806, &with(&with(v4, 9, 112), 6, 112)), 0);
        assert_eq!(run_filter(ETH_P_IPV6, &v6[..6]), 0);
    }

    /// The kernel's own check of the program (jumps in range, ends in a return);
    /// a plain UDP socket takes the same check without privileges.
    #[test]
    fn the_kernel_accepts_the_filter() {
        let s = Socket::new(Domain::IPV4, Type::DGRAM, None).expect("udp socket");
        s.attach_filter(&vrrp_filter()).expect("filter accepted");
    }
}
