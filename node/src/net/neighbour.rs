//! Owns the family-neutral view of "who speaks for an address on a link": one
//! [`NeighbourSeen`] per ARP message or neighbour discovery message, which the
//! arbiter's ownership rounds, early takeover's confirmation and the watcher all
//! consume the same way, keyed by `(ifindex, address)`. Only messages that bind
//! an address to a MAC count: an ARP sender, an advertisement's target with its
//! link-layer address, a solicitation's unicast source with its link-layer
//! address. A duplicate address detection probe (source `::`) binds nothing.
//! [`probe_source`] picks which of this node's addresses a probe asks from, for
//! the watcher and `splitguard check` alike.

use std::net::IpAddr;

use splitguard_vrrp::wire::Family;

use super::arp::{ArpRepr, Operation};
use super::ndisc::NdpReceived;
use super::ndp::NdpRepr;
use super::netlink::AddrInfo;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighbourSeen {
    /// The interface it arrived on.
    pub ifindex: u32,
    /// The address its sender speaks for.
    pub ip: IpAddr,
    /// The MAC given for that address.
    pub mac: [u8; 6],
    /// The address it answers, when it is an answer to a request addressed to
    /// this node (an ARP reply's target, a solicited advertisement's
    /// destination); `None` for requests and unsolicited announcements.
    pub answer_to: Option<IpAddr>,
}

impl NeighbourSeen {
    pub fn from_arp(ifindex: u32, arp: &ArpRepr) -> NeighbourSeen {
        NeighbourSeen {
            ifindex,
            ip: IpAddr::V4(arp.sender_ip),
            mac: arp.sender_mac,
            answer_to: (arp.operation == Operation::Reply).then_some(IpAddr::V4(arp.target_ip)),
        }
    }

    /// None for a message that binds no address to a MAC: an advertisement
    /// without its target's link-layer address, a solicitation from `::` or
    /// without its source's.
    pub fn from_ndp(ifindex: u32, m: &NdpReceived) -> Option<NeighbourSeen> {
        match m.repr {
            NdpRepr::Advert {
                target,
                target_ll: Some(mac),
                solicited,
                ..
            } => Some(NeighbourSeen {
                ifindex,
                ip: IpAddr::V6(target),
                mac,
                answer_to: (solicited && !m.dst.is_multicast()).then_some(IpAddr::V6(m.dst)),
            }),
            NdpRepr::Solicit {
                source_ll: Some(mac),
                ..
            } if !m.src.is_unspecified() && !m.src.is_multicast() => Some(NeighbourSeen {
                ifindex,
                ip: IpAddr::V6(m.src),
                mac,
                answer_to: None,
            }),
            _ => None,
        }
    }
}

/// This node's own address to probe `vip` from (`addrs`: the interface's): a usable primary address of the
/// VIP's family on the interface, never the VIP itself. For IPv6 the link-local
/// comes first: it is always on-link, as the VIP's other holder is, and it is
/// what VRRP itself speaks from.
pub fn probe_source(addrs: &[AddrInfo], vip: IpAddr) -> Option<IpAddr> {
    let mut candidates = addrs
        .iter()
        .filter(|a| a.usable && !a.secondary && a.addr != vip)
        .filter(|a| Family::of(a.addr) == Family::of(vip))
        .map(|a| a.addr);
    match vip {
        IpAddr::V4(_) => candidates.next(),
        IpAddr::V6(_) => {
            let all: Vec<IpAddr> = candidates.collect();
            all.iter()
                .find(|a| matches!(a, IpAddr::V6(v) if v.is_unicast_link_local()))
                .or_else(|| all.first())
                .copied()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    const MAC: [u8; 6] = [2, 0, 0, 0, 0, 5];
    const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 3);
    const US6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 6);

    #[test]
    fn arp_requests_and_replies_name_their_sender() {
        let vip = Ipv4Addr::new(192, 0, 2, 3);
        let us = Ipv4Addr::new(192, 0, 2, 6);
        let req = ArpRepr::probe(MAC, us, vip);
        let seen = NeighbourSeen::from_arp(4, &req);
        assert_eq!(seen.ip, IpAddr::V4(us));
        assert_eq!(seen.answer_to, None);
        let reply = ArpRepr {
            operation: Operation::Reply,
            sender_mac: MAC,
            sender_ip: vip,
            target_mac: [2, 0, 0, 0, 0, 6],
            target_ip: us,
        };
        let seen = NeighbourSeen::from_arp(4, &reply);
        assert_eq!(
            (seen.ifindex, seen.ip, seen.mac, seen.answer_to),
            (4, IpAddr::V4(vip), MAC, Some(IpAddr::V4(us)))
        );
    }

    #[test]
    fn an_advertisement_speaks_for_its_target_and_a_solicited_one_answers_us() {
        let solicited = NdpReceived {
            src: VIP6,
            dst: US6,
            repr: NdpRepr::Advert {
                router: false,
                solicited: true,
                override_: true,
                target: VIP6,
                target_ll: Some(MAC),
            },
        };
        let seen = NeighbourSeen::from_ndp(4, &solicited).expect("binds");
        assert_eq!(seen.ip, IpAddr::V6(VIP6));
        assert_eq!(seen.mac, MAC);
        assert_eq!(seen.answer_to, Some(IpAddr::V6(US6)));
        let unsolicited = NdpReceived {
            dst: "ff02::1".parse().unwrap(),
            repr: NdpRepr::unsolicited(VIP6, MAC),
            ..solicited
        };
        assert_eq!(
            NeighbourSeen::from_ndp(4, &unsolicited).map(|s| s.answer_to),
            Some(None)
        );
        let no_ll = NdpReceived {
            repr: NdpRepr::Advert {
                router: false,
                solicited: true,
                override_: false,
                target: VIP6,
                target_ll: None,
            },
            ..solicited
        };
        assert_eq!(NeighbourSeen::from_ndp(4, &no_ll), None);
    }

    #[test]
    fn a_solicitation_speaks_for_its_source_unless_it_is_duplicate_address_detection() {
        let ns = NdpReceived {
            src: VIP6,
            dst: "ff02::1:ff00:6".parse().unwrap(),
            repr: NdpRepr::probe(US6, MAC),
        };
        let seen = NeighbourSeen::from_ndp(7, &ns).expect("binds");
        assert_eq!(
            (seen.ip, seen.mac, seen.answer_to),
            (IpAddr::V6(VIP6), MAC, None)
        );
        let dad = NdpReceived {
            src: Ipv6Addr::UNSPECIFIED,
            repr: NdpRepr::Solicit {
                target: VIP6,
                source_ll: None,
            },
            ..ns
        };
        assert_eq!(NeighbourSeen::from_ndp(7, &dad), None);
    }

    fn addr(a: &str, secondary: bool, usable: bool) -> AddrInfo {
        AddrInfo {
            index: 2,
            addr: a.parse().unwrap(),
            prefix_len: 64,
            label: None,
            secondary,
            usable,
        }
    }

    #[test]
    fn probes_leave_from_a_usable_own_address_of_the_vips_family() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let addrs = [
            addr("192.0.2.3", false, true),
            addr("192.0.2.6", false, true),
            addr("2001:db8::3", false, true),
            addr("2001:db8::6", false, true),
            addr("fe80::ff:fe00:6", false, true),
        ];
        assert_eq!(probe_source(&addrs, ip("192.0.2.3")), Some(ip("192.0.2.6")));
        assert_eq!(
            probe_source(&addrs, ip("2001:db8::3")),
            Some(ip("fe80::ff:fe00:6")),
            "link-local first"
        );
        let global_only = [
            addr("2001:db8::6", false, true),
            addr("fe80::1", false, false),
        ];
        assert_eq!(
            probe_source(&global_only, ip("2001:db8::3")),
            Some(ip("2001:db8::6")),
            "a tentative link-local is skipped"
        );
        let none = [
            addr("2001:db8::3", false, true),
            addr("192.0.2.6", false, true),
        ];
        assert_eq!(probe_source(&none, ip("2001:db8::3")), None);
        assert_eq!(
            probe_source(&[addr("192.0.2.6", true, true)], ip("192.0.2.3")),
            None,
            "secondaries are not the node's own"
        );
    }
}
