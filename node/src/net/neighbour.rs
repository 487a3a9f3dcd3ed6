//! Owns the family-neutral view of "who speaks for an address on a link": one
//! [`NeighbourSeen`] per ARP message or neighbour discovery message, which the
//! arbiter's ownership rounds, early takeover's confirmation and the watcher all
//! consume the same way, keyed by `(ifindex, address)`. Only messages that bind
//! an address to a MAC count: an ARP sender, an advertisement's target with its
//! link-layer address, a solicitation's unicast source with its link-layer
//! address. A duplicate address detection probe (source `::`) binds nothing.

use std::net::IpAddr;

use super::arp::{ArpRepr, Operation};
use super::ndisc::NdpReceived;
use super::ndp::NdpRepr;

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
}
