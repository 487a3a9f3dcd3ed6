//! `splitguard check`: one-shot answers for monitoring (Zabbix UserParameters,
//! Nagios/Icinga plugins). `check vip` finds the VIP's interface and this node's
//! addresses over netlink (no privilege needed) and asks the segment who holds
//! the VIP with ARP, which needs CAP_NET_RAW (`setcap cap_net_raw+ep` on the
//! binary, see contrib); without it the answer is UNKNOWN with the reason, never
//! a guess. `check state` and `check discovery` read the daemon's status over the
//! control socket (mode 0660, its group for the monitoring user).

pub mod report;

use std::collections::BTreeSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use crate::net::arp::{ArpRepr, Operation};
use splitguard_vrrp::gate::format_mac;

use crate::net::arp_socket::ArpSocket;
use crate::net::netlink::{AddrInfo, Netlink, in_prefix};
use report::VipReport;

/// The interface to ask on: the one named, else the one holding the VIP, else
/// the one with an address in the VIP's subnet.
fn pick_interface(vip: Ipv4Addr, addrs: &[AddrInfo]) -> Option<u32> {
    addrs
        .iter()
        .find(|a| a.addr == IpAddr::V4(vip))
        .or_else(|| {
            addrs.iter().find(|a| match a.addr {
                IpAddr::V4(v) => {
                    !v.is_loopback() && in_prefix(IpAddr::V4(vip), a.addr, a.prefix_len)
                }
                IpAddr::V6(_) => false,
            })
        })
        .map(|a| a.index)
}

/// Who holds `vip`, asked on `interface` (or the one found), answers collected
/// for `timeout` (two requests, the second halfway, in case one is lost).
pub async fn probe_vip(vip: Ipv4Addr, interface: Option<&str>, timeout: Duration) -> VipReport {
    let mut report = VipReport {
        vip: IpAddr::V4(vip),
        owners: BTreeSet::new(),
        local: false,
        rtt_ms: None,
        unknown: None,
    };
    let unknown = |mut r: VipReport, why: String| {
        r.unknown = Some(why);
        r
    };
    let nl = match Netlink::connect() {
        Ok(nl) => nl,
        Err(e) => return unknown(report, format!("netlink: {e}")),
    };
    let addrs = match nl.all_addresses().await {
        Ok(a) => a,
        Err(e) => return unknown(report, format!("netlink: {e}")),
    };
    let index = match interface {
        Some(name) => match nl.link_by_name(name).await {
            Ok(l) => l.index,
            Err(e) => return unknown(report, e.to_string()),
        },
        None => match pick_interface(vip, &addrs) {
            Some(i) => i,
            None => {
                return unknown(
                    report,
                    format!("no interface here is on {vip}'s subnet; name one with --interface"),
                );
            }
        },
    };
    let link = match nl.link_by_index(index).await {
        Ok(l) => l,
        Err(e) => return unknown(report, e.to_string()),
    };
    let Some(mac) = link.mac else {
        return unknown(
            report,
            format!("interface {} has no Ethernet address", link.name),
        );
    };
    let here: Vec<&AddrInfo> = addrs.iter().filter(|a| a.index == index).collect();
    report.local = here.iter().any(|a| a.addr == IpAddr::V4(vip));
    if report.local {
        report.owners.insert(format_mac(&mac));
    }
    // Ask from our own address (not the VIP), or as an RFC 5227 probe.
    let source = here
        .iter()
        .filter(|a| !a.secondary && a.addr != IpAddr::V4(vip))
        .find_map(|a| match a.addr {
            IpAddr::V4(v) => Some(v),
            IpAddr::V6(_) => None,
        })
        .unwrap_or(Ipv4Addr::UNSPECIFIED);
    let sock = match ArpSocket::open(index) {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            return unknown(
                report,
                "no CAP_NET_RAW to send ARP: grant it with `setcap cap_net_raw+ep` on the splitguard binary (see contrib/zabbix)".to_owned(),
            );
        }
        Err(e) => return unknown(report, format!("ARP socket on {}: {e}", link.name)),
    };
    let request = ArpRepr::probe(mac, source, vip);
    let start = Instant::now();
    let deadline = start + timeout;
    let mut second_sent = false;
    if let Err(e) = sock.broadcast(&request).await {
        return unknown(report, format!("ARP request on {}: {e}", link.name));
    }
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let half = start + timeout / 2;
        let wait_until = if second_sent {
            deadline
        } else {
            half.min(deadline)
        };
        match tokio::time::timeout_at(wait_until.into(), sock.recv()).await {
            Ok(Ok(arp)) => {
                if arp.operation == Operation::Reply
                    && arp.sender_ip == vip
                    && arp.sender_mac != mac
                    && report.owners.insert(format_mac(&arp.sender_mac))
                    && report.rtt_ms.is_none()
                {
                    report.rtt_ms = Some(start.elapsed().as_secs_f64() * 1000.0);
                }
            }
            Ok(Err(e)) => return unknown(report, format!("ARP receive on {}: {e}", link.name)),
            Err(_) if !second_sent => {
                second_sent = true;
                let _ = sock.broadcast(&request).await;
            }
            Err(_) => break,
        }
    }
    report
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

    #[test]
    fn the_interface_is_the_vips_or_its_subnets() {
        let vip: Ipv4Addr = "192.0.2.3".parse().unwrap();
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
}
