//! Owns what `splitguard watch` adds beside a running keepalived, which holds the
//! VIPs there: the `[[watch]]` VIPs found on their interfaces (ARP or neighbour
//! discovery sockets and VRRP captures on them), their re-read when netlink events were lost, and the
//! `watch_actions` commands that DEMOTE and RESUME replies run. With `[[fence]]`
//! it also holds the reference probes (`references`) that tell fencing whether
//! this node is isolated; the fenced peer is the keepalived node holding a
//! watched VIP it should not.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{Config, Role, WatchActions};
use crate::net::arp_socket::ArpSocket;
use crate::net::ndisc::NdiscSocket;
use crate::net::neighbour::{NeighbourSeen, probe_source};
use crate::net::netlink::Netlink;
use crate::net::pace::{ProbeQueue, ProbeSocket};
use crate::watch::reply::{Confirmation, OwnerAction};
use crate::watch::{VipSite, Watcher};
use anyhow::Context;
use splitguard_vrrp::wire::Family;
use splitguard_watchdog::core::classify::{Captured, ExpectedRole, WatchedVip};
use splitguard_watchdog::io::dispatch::Delivery;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::references::References;
use super::watcher::Watching;

/// Bound on DEMOTE/RESUME commands.
const ACTION_TIMEOUT: Duration = Duration::from_secs(60);

pub(super) struct Beside {
    nl: Netlink,
    sites: Vec<VipSite>,
    actions: WatchActions,
    /// Whether this node is isolated, when fencing is configured.
    pub(super) references: Option<References>,
}

impl Beside {
    /// Finds each `[[watch]]` VIP's interface and this node's address there,
    /// opens the neighbour sockets (ARP, or neighbour discovery for IPv6 VIPs)
    /// and captures (feeding `neighbours` and `adverts`) and starts the watcher.
    pub async fn start(
        cfg: &Config,
        nl: &Netlink,
        reports: mpsc::UnboundedSender<Delivery>,
        adverts: mpsc::Sender<Captured>,
        neighbours: mpsc::Sender<NeighbourSeen>,
    ) -> anyhow::Result<(Beside, Watching)> {
        let mut vips = Vec::new();
        let mut sites = Vec::new();
        let mut socks: BTreeMap<(u32, Family), ProbeSocket> = BTreeMap::new();
        let mut ifindexes: BTreeMap<u32, String> = BTreeMap::new();
        for w in &cfg.watches {
            let link = nl
                .link_by_name(&w.interface)
                .await
                .with_context(|| format!("watch {}: interface {}", w.vip, w.interface))?;
            let mac = link
                .mac
                .with_context(|| format!("interface {} has no Ethernet address", w.interface))?;
            let addrs = nl.addresses(link.index).await?;
            let family = Family::of(w.vip);
            let source = probe_source(&addrs, w.vip).with_context(|| {
                format!(
                    "interface {} has no usable {} address of its own to probe {} from",
                    w.interface,
                    match family {
                        Family::Ipv4 => "IPv4",
                        Family::Ipv6 => "IPv6",
                    },
                    w.vip
                )
            })?;
            if let std::collections::btree_map::Entry::Vacant(e) = socks.entry((link.index, family))
            {
                let sock = match family {
                    Family::Ipv4 => {
                        ProbeSocket::Arp(Arc::new(ArpSocket::open(link.index).with_context(
                            || format!("open ARP socket on {} (needs CAP_NET_RAW)", w.interface),
                        )?))
                    }
                    Family::Ipv6 => ProbeSocket::Nd(Arc::new(
                        NdiscSocket::open_probe(&w.interface, link.index).with_context(|| {
                            format!("open ICMPv6 socket on {} (needs CAP_NET_RAW)", w.interface)
                        })?,
                    )),
                };
                e.insert(sock);
            }
            ifindexes.insert(link.index, w.interface.clone());
            vips.push(WatchedVip {
                vip: w.vip,
                interface: w.interface.clone(),
                role: match w.role {
                    Role::Master => ExpectedRole::Master,
                    Role::Backup => ExpectedRole::Backup,
                },
                instance: None,
                // Beside keepalived the watch does not know the instance's settings.
                expected: None,
            });
            sites.push(VipSite {
                vip: w.vip,
                ifindex: link.index,
                mac,
                source,
            });
        }
        let watched: HashSet<IpAddr> = sites.iter().map(|s| s.vip).collect();
        let mut probes = BTreeMap::new();
        for (&(ifindex, family), sock) in &socks {
            probes.insert((ifindex, family), ProbeQueue::start(sock.clone()));
            // keepalived does the claiming: no requests of ours to answer.
            // Fencing asks for the peer's MAC from our own address: those
            // answers are wanted.
            let ours: HashSet<IpAddr> = if cfg.fences.is_empty() {
                HashSet::new()
            } else {
                sites
                    .iter()
                    .filter(|s| s.ifindex == ifindex && Family::of(s.source) == family)
                    .map(|s| s.source)
                    .collect()
            };
            crate::watch::spawn_neighbour_receiver(
                ifindex,
                sock.clone(),
                watched.clone(),
                ours,
                neighbours.clone(),
            );
        }
        for (&ifindex, name) in &ifindexes {
            crate::watch::spawn_capture(ifindex, name, adverts.clone())?;
        }
        let watcher = Watcher::start(cfg, vips, sites.clone(), probes, reports)?;
        let watching = Watching::new(watcher, ifindexes.keys().copied().collect::<BTreeSet<_>>());
        let beside = Beside {
            nl: nl.clone(),
            sites,
            actions: cfg.watch_actions.clone(),
            references: None,
        };
        Ok((beside, watching))
    }

    /// Starts probing the references for fencing (`[[fence]]` configured).
    pub async fn start_references(
        &mut self,
        cfg: &Config,
        probes: mpsc::Sender<splitguard_arbiter::probe::ProbeResult>,
    ) -> anyhow::Result<()> {
        self.references = Some(References::start(cfg, &self.nl, &self.sites, probes).await?);
        Ok(())
    }

    /// Fencing's word on isolation: isolated unless the references say
    /// otherwise (no references probed is no proof).
    pub fn isolated(&self) -> bool {
        self.references.as_ref().is_none_or(References::isolated)
    }

    /// What is already here counts as arriving now.
    pub async fn present_at_start(&self, w: &mut Watching) -> anyhow::Result<()> {
        let now = Instant::now();
        for s in &self.sites {
            let present = self
                .nl
                .addresses(s.ifindex)
                .await?
                .iter()
                .any(|a| a.addr == s.vip && a.usable);
            if present {
                w.watcher.on_addr(now, s.vip, true).await;
            }
        }
        Ok(())
    }

    /// Netlink events were lost: re-reads the watched addresses.
    pub async fn resync(&self, w: &mut Watching) {
        warn!("netlink events were lost; re-reading the watched addresses");
        for s in &self.sites {
            let present = self
                .nl
                .addresses(s.ifindex)
                .await
                .map(|l| l.iter().any(|a| a.addr == s.vip && a.usable))
                .unwrap_or(false);
            w.watcher.on_addr(Instant::now(), s.vip, present).await;
        }
    }

    /// A DEMOTE or RESUME reply: runs the configured command (e.g. `systemctl
    /// stop keepalived`), as the tutorial's nginx check does; a failure is told
    /// in the confirmation.
    pub async fn act(&self, action: &OwnerAction, confirm: &mut Option<Confirmation>, node: &str) {
        let (word, argv) = match action {
            OwnerAction::Demote { .. } => ("DEMOTE", &self.actions.demote_command),
            OwnerAction::Resume { .. } => ("RESUME", &self.actions.resume_command),
            // Fencing's, never keepalived's (see `Node::on_reply`).
            OwnerAction::Fence { .. } => return,
        };
        let result = match argv {
            Some(argv) => crate::track::command::run(argv, ACTION_TIMEOUT)
                .await
                .map_err(|e| e.to_string())
                .and_then(|st| {
                    if st.success() {
                        Ok(())
                    } else {
                        Err(format!("exited with {st}"))
                    }
                }),
            None => Err(format!(
                "{word} is not configured on {node} (watch_actions)"
            )),
        };
        if let Err(why) = result {
            warn!(word, error = %why, "reply command failed");
            if let Some(c) = confirm.as_mut() {
                c.text = format!("splitguard: {word} not done: {why}.");
            }
        } else {
            info!(word, "reply command ran");
        }
    }
}
