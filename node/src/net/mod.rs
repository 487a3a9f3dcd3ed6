//! The network layer: raw VRRP sockets, the ARP codec (`arp`, pure) and ARP over
//! AF_PACKET, IPv6 neighbour advertisements, and rtnetlink for links, addresses and
//! their events. Everything here moves bytes and reports kernel state; decisions
//! live in `splitguard_vrrp::instance` and the arbiter.

pub mod arp;
pub mod arp_socket;
pub mod ndisc;
pub mod netlink;
pub mod vrrp_socket;
