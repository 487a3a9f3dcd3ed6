//! The network layer: raw VRRP sockets, the ARP codec (`arp`, pure) and ARP over
//! AF_PACKET, the neighbour discovery codec (`ndp`, pure) and
//! neighbour discovery over a raw ICMPv6 socket, the family-neutral "who
//! speaks for an address" both feed (`neighbour`), rtnetlink for links, addresses and
//! their events, and the pacing of GARP repeats and ARP probes (`pace`).
//! Everything here moves bytes and reports kernel state; decisions live in
//! `splitguard_vrrp::instance` and the arbiter.

pub mod arp;
pub mod arp_socket;
pub mod ndisc;
pub mod ndp;
pub mod neighbour;
pub mod netlink;
pub mod pace;
pub mod vrrp_socket;
