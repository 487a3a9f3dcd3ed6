//! Owns the arbiter's ICMP probers at run time: one per (interface, source kind)
//! that the probe routes (`config::probe_plan`) and early takeover need, each
//! bound to this node's own address of that kind on that interface, never a
//! VIP; and the probe loops, one per prober, that feed one results channel.
//! A raw ICMP socket is woken by every ICMP packet the node receives, so the
//! reference and peer probes and the liveness echoes share a prober.
//! Where this node's own addresses are ([`Homes`]) comes from `run`'s
//! instances or, beside keepalived, from `watch`'s watched VIPs.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use splitguard_arbiter::probe::icmp::{IcmpProber, ProbeResult, spawn_probe_loop};
use tokio::sync::mpsc;
use tracing::info;

use super::instances::Instances;
use crate::config::probe_plan::{ProbeRoute, SourceKind};
use crate::net::netlink::{AddrInfo, Netlink};

/// How long an IPv6 source may stay tentative (duplicate address detection,
/// about a second after the link comes up) before `run` gives up on it.
const TENTATIVE_WAIT: Duration = Duration::from_secs(5);

pub(super) struct Probers {
    by: BTreeMap<(String, SourceKind), Arc<IcmpProber>>,
}

/// One interface this node probes from, with an address of its own there of
/// one family (an IPv4 one is the source itself; an IPv6 one only says the
/// family runs there: the source is read from the interface).
pub(super) struct Home {
    pub interface: String,
    pub ifindex: u32,
    pub primary: IpAddr,
}

/// Where this node's own addresses are, and the VIPs, which are never a
/// source (replies to a VIP go to whichever node holds it).
pub(super) struct Homes {
    nl: Netlink,
    links: Vec<Home>,
    vips: BTreeSet<IpAddr>,
}

impl Homes {
    pub fn new(nl: Netlink, links: Vec<Home>, vips: BTreeSet<IpAddr>) -> Homes {
        Homes { nl, links, vips }
    }

    /// `run`: each instance's interface and primary address.
    pub fn of_instances(inst: &Instances) -> Homes {
        let routers = inst.routers();
        Homes {
            nl: inst.nl.clone(),
            links: routers
                .iter()
                .map(|r| Home {
                    interface: r.cfg.interface.clone(),
                    ifindex: r.ifindex,
                    primary: r.primary,
                })
                .collect(),
            vips: routers
                .iter()
                .flat_map(|r| r.vip_addrs.iter().copied())
                .collect(),
        }
    }
}

impl Probers {
    /// Opens a prober for each of `needs`.
    pub async fn open(
        needs: &BTreeSet<(String, SourceKind)>,
        homes: &Homes,
    ) -> anyhow::Result<Probers> {
        let mut by = BTreeMap::new();
        for (interface, kind) in needs {
            let prober = open_one(interface, *kind, homes).await?;
            by.insert((interface.clone(), *kind), Arc::new(prober));
        }
        Ok(Probers { by })
    }

    pub fn is_empty(&self) -> bool {
        self.by.is_empty()
    }

    /// The prober for echoes to `target` leaving through `interface`.
    pub fn get(&self, interface: &str, target: IpAddr) -> Option<&Arc<IcmpProber>> {
        self.by
            .get(&(interface.to_owned(), SourceKind::for_target(target)))
    }

    /// Starts one probe loop per prober over its share of `routes`, all into
    /// `results`.
    pub fn spawn_loops(
        &self,
        routes: &[ProbeRoute],
        interval: Duration,
        timeout: Duration,
        results: &mpsc::Sender<ProbeResult>,
    ) -> anyhow::Result<()> {
        for ((interface, kind), prober) in &self.by {
            let targets: Vec<IpAddr> = routes
                .iter()
                .filter(|r| &r.interface == interface && r.source == *kind)
                .map(|r| r.target)
                .collect();
            if targets.is_empty() {
                continue;
            }
            info!(
                source = %prober.local(), %interface, socket = ?prober.socket_kind(),
                targets = ?targets, "arbiter probing"
            );
            spawn_probe_loop(
                Arc::clone(prober),
                targets,
                interval,
                timeout,
                results.clone(),
            )
            .with_context(|| format!("start the probe loop from {}", prober.local()))?;
        }
        Ok(())
    }
}

/// This node's address of `kind` on `interface`: its IPv4 address there (an
/// instance's own, or the watched VIP's probe source), or a usable IPv6
/// address of the kind that is no VIP, waited for while it is still
/// tentative.
async fn open_one(interface: &str, kind: SourceKind, homes: &Homes) -> anyhow::Result<IcmpProber> {
    let Some(h) = homes
        .links
        .iter()
        .find(|h| h.interface == interface && h.primary.is_ipv4() == (kind == SourceKind::Ipv4))
    else {
        bail!(
            "no instance or watched VIP of the probe's address family on {interface} to send echoes from"
        );
    };
    let local = match kind {
        SourceKind::Ipv4 => h.primary,
        SourceKind::LinkLocal | SourceKind::Global => {
            let started = Instant::now();
            loop {
                let addrs = homes
                    .nl
                    .addresses(h.ifindex)
                    .await
                    .with_context(|| format!("read the addresses of {interface}"))?;
                if let Some(a) = ipv6_source(&addrs, kind, &homes.vips) {
                    break a;
                }
                if started.elapsed() >= TENTATIVE_WAIT {
                    bail!(
                        "{interface} has no usable IPv6 {} address of its own (a VIP is never a source) to send echoes from",
                        if kind == SourceKind::LinkLocal {
                            "link-local"
                        } else {
                            "global"
                        }
                    );
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    };
    IcmpProber::new_scoped(local, interface, h.ifindex)
        .with_context(|| format!("ICMP probes from {local} on {interface}"))
}

/// The first usable IPv6 address of `kind` in `addrs` that is not a VIP.
fn ipv6_source(addrs: &[AddrInfo], kind: SourceKind, vips: &BTreeSet<IpAddr>) -> Option<IpAddr> {
    addrs
        .iter()
        .filter(|a| a.usable && !vips.contains(&a.addr))
        .map(|a| a.addr)
        .find(|a| match a {
            IpAddr::V6(v6) if v6.is_loopback() || v6.is_multicast() => false,
            IpAddr::V6(v6) => v6.is_unicast_link_local() == (kind == SourceKind::LinkLocal),
            IpAddr::V4(_) => false,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(a: &str, usable: bool) -> AddrInfo {
        AddrInfo {
            index: 2,
            addr: a.parse().unwrap(),
            prefix_len: 64,
            label: None,
            secondary: false,
            usable,
        }
    }

    #[test]
    fn an_ipv6_source_is_usable_of_its_kind_and_never_a_vip() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let vips: BTreeSet<IpAddr> = [ip("2001:db8::3")].into();
        let addrs = [
            addr("192.0.2.6", true),
            addr("2001:db8::3", true),
            addr("2001:db8::9", false),
            addr("fe80::1", false),
            addr("2001:db8::6", true),
            addr("fe80::ff:fe00:6", true),
        ];
        assert_eq!(
            ipv6_source(&addrs, SourceKind::Global, &vips),
            Some(ip("2001:db8::6"))
        );
        assert_eq!(
            ipv6_source(&addrs, SourceKind::LinkLocal, &vips),
            Some(ip("fe80::ff:fe00:6"))
        );
        assert_eq!(
            ipv6_source(&addrs[..4], SourceKind::Global, &vips),
            None,
            "the VIP and a tentative address are not sources"
        );
    }
}
