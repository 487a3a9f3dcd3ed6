//! Owns the watcher at work, in `run` and in `watch` alike: split-brain detection
//! on the watched VIPs (the instances' IPv4 VIPs in `run`, the `[[watch]]` VIPs
//! beside keepalived), the alert engine, and the replies to its pages. It is fed
//! the address events of the watched interfaces, the ARP and adverts seen there,
//! and the incidents in the outbox; it decides replies, and the owner of the VIPs
//! (the instances, or keepalived through `watch_actions`) carries them out.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

use crate::config::Config;
use crate::net::arp::ArpRepr;
use crate::net::netlink::NetEvent;
use crate::net::pace::ProbeQueue;
use crate::watch::reply::{OwnerAction, ReplyOutcome};
use crate::watch::{VipSite, Watcher};
use splitguard_watchdog::core::classify::{AdvertSeen, ExpectedRole, WatchedVip};
use splitguard_watchdog::io::dispatch::Delivery;
use splitguard_watchdog::io::reply::http::ReplyEvent;
use tokio::sync::{mpsc, oneshot};

use super::instances::{Announcer, Instances};
use super::outputs::Outputs;
use super::{Node, Owner};

pub(super) struct Watching {
    pub watcher: Watcher,
    /// Interfaces whose address events concern the watched VIPs.
    ifindexes: BTreeSet<u32>,
}

/// A reply the watcher decided, answered once the owner has acted on it.
pub(super) struct PendingReply {
    pub outcome: ReplyOutcome,
    answer: oneshot::Sender<u16>,
}

impl Watching {
    pub fn new(watcher: Watcher, ifindexes: BTreeSet<u32>) -> Watching {
        Watching { watcher, ifindexes }
    }

    /// In `run`: starts the watcher over the instances' IPv4 VIPs and the
    /// receivers that feed it (and the arbiter): ARP about our VIPs and a VRRP
    /// capture per IPv4 interface.
    pub fn start_on_instances(
        cfg: &Config,
        inst: &Instances,
        reports: mpsc::UnboundedSender<Delivery>,
        adverts: mpsc::Sender<AdvertSeen>,
        arps: mpsc::Sender<(u32, ArpRepr)>,
    ) -> anyhow::Result<Watching> {
        let mut vips = Vec::new();
        let mut sites = Vec::new();
        let mut probes: BTreeMap<u32, Arc<ProbeQueue>> = BTreeMap::new();
        for r in inst.routers() {
            let IpAddr::V4(source) = r.primary else {
                continue;
            };
            for vip in r.ipv4_vips() {
                vips.push(WatchedVip {
                    vip: IpAddr::V4(vip),
                    interface: r.cfg.interface.clone(),
                    // The core knows this node's role; the classifier judges
                    // ownership only.
                    role: ExpectedRole::Any,
                    instance: Some(r.cfg.name.clone()),
                    expected: Some(r.expected_advert()),
                });
                sites.push(VipSite {
                    vip,
                    ifindex: r.ifindex,
                    mac: r.mac,
                    source,
                });
            }
        }
        for (&(ifindex, _), iface) in &inst.ifaces {
            let (Announcer::Arp(sock), Some(queue)) = (&iface.announcer, &iface.probes) else {
                continue;
            };
            probes.insert(ifindex, queue.clone());
            let watched: HashSet<Ipv4Addr> = sites
                .iter()
                .filter(|s| s.ifindex == ifindex)
                .map(|s| s.vip)
                .collect();
            let ours: HashSet<Ipv4Addr> = inst
                .routers()
                .iter()
                .filter(|r| r.ifindex == ifindex)
                .filter_map(|r| match r.primary {
                    IpAddr::V4(a) => Some(a),
                    IpAddr::V6(_) => None,
                })
                .collect();
            crate::watch::spawn_arp_receiver(ifindex, sock.clone(), watched, ours, arps.clone());
            crate::watch::spawn_capture(ifindex, &iface.name, adverts.clone())?;
        }
        let watcher = Watcher::start(cfg, vips, sites, probes, reports)?;
        // Address events on any instance's interface, as the instances see them.
        let ifindexes = inst.routers().iter().map(|r| r.ifindex).collect();
        Ok(Watching::new(watcher, ifindexes))
    }

    /// Addresses arriving on or leaving a watched interface.
    pub async fn on_net_event(&mut self, ev: &NetEvent, now: Instant) {
        match ev {
            NetEvent::AddrAdded(a) if self.ifindexes.contains(&a.index) => {
                self.watcher.on_addr(now, a.addr, true).await;
            }
            NetEvent::AddrRemoved(a) if self.ifindexes.contains(&a.index) => {
                self.watcher.on_addr(now, a.addr, false).await;
            }
            _ => {}
        }
    }

    pub async fn on_arp(&mut self, ifindex: u32, arp: &ArpRepr, now: Instant) {
        self.watcher.on_arp(now, ifindex, arp).await;
    }

    pub async fn on_advert(&mut self, a: AdvertSeen, now: Instant) {
        self.watcher.on_advert(now, a).await;
    }

    pub async fn on_timers(&mut self, now: Instant) {
        self.watcher.on_timers(now).await;
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.watcher.deadline()
    }

    /// Hands the outbox's incidents to the alert engine and writes its events.
    pub async fn flush(&mut self, now: Instant, out: &mut Outputs) {
        for (raise, raised) in std::mem::take(&mut out.incidents) {
            if raised {
                self.watcher.raise(now, raise).await;
            } else {
                self.watcher.resolve(now, &raise.key).await;
            }
        }
        for ev in self.watcher.take_events() {
            out.emit(Some(ev));
        }
    }

    /// Decides a reply from the listener (a refused one is only audited).
    async fn decide(&mut self, ev: ReplyEvent, summary: &str) -> Option<PendingReply> {
        match ev {
            ReplyEvent::Refused(rec) => {
                self.watcher.audit_refused(rec);
                None
            }
            ReplyEvent::Request { reply, answer } => Some(PendingReply {
                outcome: self.watcher.on_reply(reply, summary).await,
                answer,
            }),
        }
    }

    /// Answers the reply's sender, then confirms on its channel.
    fn answer(&self, p: PendingReply) {
        let _ = p.answer.send(p.outcome.http_status);
        if let Some(c) = p.outcome.confirm {
            self.watcher.confirm(c);
        }
    }
}

impl Node {
    /// A reply from the listener, decided by the watcher. In `run`, DEMOTE holds
    /// the incident's instance (all of them when the incident names none) backup
    /// and releases its VIPs, RESUME lifts the hold (the arbiter's gate carries
    /// the hold when it runs); beside keepalived they run `watch_actions`.
    pub(super) async fn on_reply(&mut self, ev: ReplyEvent, now: Instant) {
        let watched = self.watching.watcher.summary(&self.out.node);
        let summary = match &self.owner {
            Owner::Instances { instances, .. } => format!("{}; {watched}", instances.summary()),
            Owner::Keepalived(_) => watched,
        };
        let Some(mut pending) = self.watching.decide(ev, &summary).await else {
            return;
        };
        if let Some(action) = pending.outcome.action.clone() {
            match &mut self.owner {
                Owner::Instances { instances, arbiter } => {
                    let (hold, instance) = match action {
                        OwnerAction::Demote { instance } => (true, instance),
                        OwnerAction::Resume { instance } => (false, instance),
                    };
                    super::control::hold(
                        instances,
                        arbiter.as_mut(),
                        &mut self.out,
                        instance.as_deref(),
                        hold,
                        None,
                        now,
                    )
                    .await;
                }
                Owner::Keepalived(beside) => {
                    beside
                        .act(&action, &mut pending.outcome.confirm, &self.out.node)
                        .await;
                }
            }
        }
        self.watching.answer(pending);
    }
}
