//! `splitguard check`: one-shot answers for monitoring (Zabbix UserParameters,
//! Nagios/Icinga plugins). `check vip` finds the VIP's interface and this node's
//! addresses over netlink (no privilege needed) and asks the segment who holds
//! the VIP, with ARP for IPv4 and neighbour discovery (a solicitation from this
//! node's own address) for IPv6, both of which need CAP_NET_RAW (`setcap
//! cap_net_raw+ep` on the binary, see contrib); without it the answer is UNKNOWN
//! with the reason, never a guess. `check state` and `check discovery` read the
//! daemon's status over the control socket (mode 0660, its group for the
//! monitoring user).

pub mod report;

use std::collections::BTreeSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use splitguard_vrrp::gate::format_mac;

use crate::net::arp::{ArpRepr, Operation};
use crate::net::arp_socket::ArpSocket;
use crate::net::ndisc::NdiscSocket;
use crate::net::ndp::NdpRepr;
use crate::net::neighbour::probe_source;
use crate::net::netlink::{AddrInfo, Netlink, in_prefix};
use report::VipReport;

/// The interface to ask on when none is named: the one holding the VIP, else
/// one with an address whose prefix contains it (for IPv6 a usable global or
/// unique local one). None for a link-local VIP: every link has fe80::/64, so
/// only the caller can say which one is meant.
fn pick_interface(vip: IpAddr, addrs: &[AddrInfo]) -> Option<u32> {
    if is_link_local(vip) {
        return None;
    }
    let on_subnet = |a: &&AddrInfo| {
        let own = match a.addr {
            IpAddr::V4(v) => !v.is_loopback(),
            IpAddr::V6(v) => {
                a.usable && !v.is_loopback() && !v.is_unicast_link_local() && !v.is_multicast()
            }
        };
        own && in_prefix(vip, a.addr, a.prefix_len)
    };
    addrs
        .iter()
        .find(|a| a.addr == vip)
        .or_else(|| addrs.iter().find(on_subnet))
        .map(|a| a.index)
}

fn is_link_local(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v) if v.is_unicast_link_local())
}

/// Who holds `vip`, asked on `interface` (or the one found), answers collected
/// for `timeout` (two requests, the second halfway, in case one is lost).
pub async fn probe_vip(vip: IpAddr, interface: Option<&str>, timeout: Duration) -> VipReport {
    let mut report = VipReport {
        vip,
        owners: BTreeSet::new(),
        local: false,
        rtt_ms: None,
        unknown: None,
    };
    if let Err(why) = probe_into(&mut report, interface, timeout).await {
        report.unknown = Some(why);
    }
    report
}

/// [`probe_vip`]'s work; an error is the reason the answer is unknown.
async fn probe_into(
    report: &mut VipReport,
    interface: Option<&str>,
    timeout: Duration,
) -> Result<(), String> {
    let vip = report.vip;
    let nl = Netlink::connect().map_err(|e| format!("netlink: {e}"))?;
    let addrs = nl
        .all_addresses()
        .await
        .map_err(|e| format!("netlink: {e}"))?;
    let index = match interface {
        Some(name) => {
            nl.link_by_name(name)
                .await
                .map_err(|e| e.to_string())?
                .index
        }
        None if is_link_local(vip) => {
            return Err(format!(
                "{vip} is link-local and could be on any link; name the interface with --interface"
            ));
        }
        None => pick_interface(vip, &addrs).ok_or_else(|| {
            format!("no interface here is on {vip}'s subnet; name one with --interface")
        })?,
    };
    let link = nl.link_by_index(index).await.map_err(|e| e.to_string())?;
    let mac = link
        .mac
        .ok_or_else(|| format!("interface {} has no Ethernet address", link.name))?;
    let here: Vec<AddrInfo> = addrs.into_iter().filter(|a| a.index == index).collect();
    report.local = here.iter().any(|a| a.addr == vip);
    if report.local {
        report.owners.insert(format_mac(&mac));
    }
    let source = probe_source(&here, vip);
    let no_cap = |what: &str| {
        format!(
            "no CAP_NET_RAW to send {what}: grant it with `setcap cap_net_raw+ep` on the splitguard binary (see contrib/zabbix)"
        )
    };
    match vip {
        IpAddr::V4(vip) => {
            // Ask from our own address (not the VIP), or as an RFC 5227 probe.
            let source = match source {
                Some(IpAddr::V4(s)) => s,
                _ => Ipv4Addr::UNSPECIFIED,
            };
            let sock = ArpSocket::open(index).map_err(|e| match e.kind() {
                io::ErrorKind::PermissionDenied => no_cap("ARP"),
                _ => format!("ARP socket on {}: {e}", link.name),
            })?;
            let ask = ArpAsk {
                sock,
                request: ArpRepr::probe(mac, source, vip),
                vip,
                mac,
            };
            ask_twice(&ask, timeout, &link.name, report).await
        }
        IpAddr::V6(vip) => {
            // Never from `::` (RFC 5227's way for IPv4): that is duplicate
            // address detection, which would make a holder's tentative VIP fail.
            let Some(IpAddr::V6(src)) = source else {
                return Err(format!(
                    "interface {} has no usable IPv6 address of its own to solicit {vip} from",
                    link.name
                ));
            };
            let sock = NdiscSocket::open_probe(&link.name, index).map_err(|e| match e.kind() {
                io::ErrorKind::PermissionDenied => no_cap("neighbour solicitations (raw ICMPv6)"),
                _ => format!("ICMPv6 socket on {}: {e}", link.name),
            })?;
            let ask = NdAsk {
                sock,
                src,
                vip,
                mac,
            };
            ask_twice(&ask, timeout, &link.name, report).await
        }
    }
}

/// One family's question to the link: "who has the VIP?".
trait Ask {
    /// What is sent, and what is read, for the reason when it fails.
    const REQUEST: &'static str;
    const ANSWER: &'static str;
    async fn send(&self) -> io::Result<()>;
    /// Reads the next message: the MAC of another node answering for the VIP,
    /// None for anything else.
    async fn answer(&self) -> io::Result<Option<[u8; 6]>>;
}

struct ArpAsk {
    sock: ArpSocket,
    request: ArpRepr,
    vip: Ipv4Addr,
    mac: [u8; 6],
}

impl Ask for ArpAsk {
    const REQUEST: &'static str = "ARP request";
    const ANSWER: &'static str = "ARP receive";

    async fn send(&self) -> io::Result<()> {
        self.sock.broadcast(&self.request).await
    }

    async fn answer(&self) -> io::Result<Option<[u8; 6]>> {
        let arp = self.sock.recv().await?;
        Ok((arp.operation == Operation::Reply
            && arp.sender_ip == self.vip
            && arp.sender_mac != self.mac)
            .then_some(arp.sender_mac))
    }
}

struct NdAsk {
    sock: NdiscSocket,
    src: Ipv6Addr,
    vip: Ipv6Addr,
    mac: [u8; 6],
}

impl Ask for NdAsk {
    const REQUEST: &'static str = "neighbour solicitation";
    const ANSWER: &'static str = "neighbour advertisement receive";

    async fn send(&self) -> io::Result<()> {
        self.sock.solicit(self.src, self.mac, self.vip).await
    }

    async fn answer(&self) -> io::Result<Option<[u8; 6]>> {
        let m = self.sock.recv().await?;
        Ok(match m.repr {
            NdpRepr::Advert {
                target,
                target_ll: Some(mac),
                ..
            } if target == self.vip && mac != self.mac => Some(mac),
            _ => None,
        })
    }
}

/// Asks, and again halfway through `timeout` in case the first was lost, adding
/// every other node that answers until then to `report` (rtt: the first one's).
async fn ask_twice<A: Ask>(
    ask: &A,
    timeout: Duration,
    interface: &str,
    report: &mut VipReport,
) -> Result<(), String> {
    let start = Instant::now();
    let deadline = start + timeout;
    let half = start + timeout / 2;
    let mut second_sent = false;
    ask.send()
        .await
        .map_err(|e| format!("{} on {interface}: {e}", A::REQUEST))?;
    loop {
        if Instant::now() >= deadline {
            return Ok(());
        }
        let wait_until = if second_sent { deadline } else { half };
        match tokio::time::timeout_at(wait_until.into(), ask.answer()).await {
            Ok(Ok(Some(mac))) => {
                if report.owners.insert(format_mac(&mac)) && report.rtt_ms.is_none() {
                    report.rtt_ms = Some(start.elapsed().as_secs_f64() * 1000.0);
                }
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => return Err(format!("{} on {interface}: {e}", A::ANSWER)),
            Err(_) if !second_sent => {
                second_sent = true;
                // A lost second request is no reason to drop the answers so far.
                let _ = ask.send().await;
            }
            Err(_) => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(index: u32, a: &str, prefix: u8) -> AddrInfo {
        AddrInfo {
            index,
            addr: a.parse().unwrap(),
            prefix_len: prefix,
            label: None,
            secondary: false,
            usable: true,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_interface_is_the_vips_or_its_subnets() {
        let vip = ip("192.0.2.3");
        let addrs = [
            addr(1, "127.0.0.1", 8),
            addr(2, "198.51.100.1", 24),
            addr(3, "192.0.2.6", 24),
        ];
        assert_eq!(pick_interface(vip, &addrs), Some(3));
        let addrs = [addr(2, "192.0.2.3", 32), addr(3, "192.0.2.6", 24)];
        assert_eq!(pick_interface(vip, &addrs), Some(2));
        assert_eq!(pick_interface(vip, &[addr(2, "198.51.100.1", 24)]), None);
    }

    #[test]
    fn an_ipv6_vips_interface_is_the_one_holding_it_or_a_usable_global_on_its_prefix() {
        let vip = ip("2001:db8::3");
        let addrs = [
            addr(1, "::1", 128),
            addr(2, "fe80::ff:fe00:6", 64),
            addr(2, "2001:db8:1::6", 64),
            addr(3, "fe80::ff:fe00:7", 64),
            addr(3, "2001:db8::6", 64),
        ];
        assert_eq!(pick_interface(vip, &addrs), Some(3));
        let holding = [addr(3, "2001:db8::6", 64), addr(4, "2001:db8::3", 64)];
        assert_eq!(pick_interface(vip, &holding), Some(4));
        let ula = ip("fd00:db8::3");
        assert_eq!(pick_interface(ula, &[addr(5, "fd00:db8::6", 64)]), Some(5));
        // An address still in duplicate address detection (or failed it) is
        // not this node's yet.
        let tentative = AddrInfo {
            usable: false,
            ..addr(3, "2001:db8::6", 64)
        };
        assert_eq!(pick_interface(vip, &[tentative]), None);
        // Link-locals are on every link: they pick nothing, and a link-local
        // VIP needs the interface named.
        assert_eq!(pick_interface(vip, &[addr(2, "fe80::1", 10)]), None);
        assert_eq!(pick_interface(ip("fe80::3"), &addrs), None);
        assert_eq!(
            pick_interface(ip("fe80::3"), &[addr(2, "fe80::3", 64)]),
            None
        );
        // Never across families.
        assert_eq!(pick_interface(vip, &[addr(2, "192.0.2.6", 0)]), None);
        assert_eq!(
            pick_interface(ip("192.0.2.3"), &[addr(2, "2001:db8::6", 0)]),
            None
        );
    }
}
