//! The I/O edges of the VRRP core: raw VRRP sockets, ARP over AF_PACKET, IPv6
//! neighbour advertisements, and
//! rtnetlink for links, addresses and their events. Everything here moves bytes
//! and reports kernel state; decisions live in `vrrp::instance` and the arbiter.

pub mod arp_socket;
pub mod ndisc;
pub mod netlink;
pub mod vrrp_socket;
