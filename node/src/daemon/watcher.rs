//! Owns the watcher at work, in `run` and in `watch` alike: split-brain detection
//! on the watched VIPs (the instances' VIPs in `run`, the `[[watch]]` VIPs
//! beside keepalived), the alert engine, and the replies to its pages. It is fed
//! the address events of the watched interfaces, the ARP, neighbour discovery
//! and adverts seen there,
//! and the incidents in the outbox; it decides replies, and the owner of the VIPs
//! (the instances, or keepalived through `watch_actions`) carries them out.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::config::Config;
use crate::net::neighbour::NeighbourSeen;
use crate::net::netlink::NetEvent;
use crate::net::pace::ProbeQueue;
use crate::watch::reply::{OwnerAction, ReplyOutcome};
use crate::watch::{VipSite, Watcher};
use splitguard_vrrp::wire::Family;
use splitguard_watchdog::core::classify::{Captured, ExpectedRole, WatchedVip};
use splitguard_watchdog::io::dispatch::Delivery;
use splitguard_watchdog::io::reply::http::ReplyEvent;
use tokio::sync::{mpsc, oneshot};

use super::instances::Instances;
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

    /// In `run`: starts the watcher over the instances' VIPs and the receivers
    /// that feed it (and the arbiter): ARP or neighbour discovery about our VIPs
    /// per interface and family, and one VRRP capture per interface.
    pub fn start_on_instances(
        cfg: &Config,
        inst: &Instances,
        reports: mpsc::UnboundedSender<Delivery>,
        adverts: mpsc::Sender<Captured>,
        neighbours: mpsc::Sender<NeighbourSeen>,
    ) -> anyhow::Result<Watching> {
        let mut vips = Vec::new();
        let mut sites = Vec::new();
        let mut probes: BTreeMap<(u32, Family), Arc<ProbeQueue>> = BTreeMap::new();
        for r in inst.routers() {
            for &vip in &r.vip_addrs {
                vips.push(WatchedVip {
                    vip,
                    interface: r.cfg.interface.clone(),
                    // The core knows this node's role; the classifier judges
                    // ownership only.
                    role: ExpectedRole::Any,
                    instance: Some(r.cfg.name.clone()),
                    expected: Some(r.expected_advert()),
                });
                // The instance's primary is of its VIPs' family: the IPv4
                // address, or the IPv6 link-local.
                sites.push(VipSite {
                    vip,
                    ifindex: r.ifindex,
                    mac: r.mac,
                    source: r.primary,
                });
            }
        }
        let mut captured = BTreeSet::new();
        for (&(ifindex, family), iface) in &inst.ifaces {
            let Some(queue) = &iface.probes else {
                continue;
            };
            probes.insert((ifindex, family), queue.clone());
            let watched: HashSet<IpAddr> = sites
                .iter()
                .filter(|s| s.ifindex == ifindex && Family::of(s.vip) == family)
                .map(|s| s.vip)
                .collect();
            let ours: HashSet<IpAddr> = inst
                .routers()
                .iter()
                .filter(|r| r.ifindex == ifindex && Family::of(r.primary) == family)
                .map(|r| r.primary)
                .collect();
            crate::watch::spawn_neighbour_receiver(
                ifindex,
                iface.announcer.probe_socket(),
                watched,
                ours,
                neighbours.clone(),
            );
            // A dual-stack interface carries two families, and one capture
            // sees both.
            if captured.insert(ifindex) {
                crate::watch::spawn_capture(ifindex, &iface.name, adverts.clone())?;
            }
        }
        let watcher = Watcher::start(cfg, vips, sites, probes, reports)?;
        // Address events on any instance's interface, as the instances see them.
        let ifindexes = inst.routers().iter().map(|r| r.ifindex).collect();
        Ok(Watching::new(watcher, ifindexes))
    }

    /// Addresses arriving on or leaving a watched interface.
    pub async fn on_net_event(&mut self, ev: &NetEvent, now: Instant) {
        match ev {
            // A tentative address is not held yet, and a dadfailed one is
            // someone else's: only a usable one is present.
            NetEvent::AddrAdded(a) if self.ifindexes.contains(&a.index) => {
                self.watcher.on_addr(now, a.addr, a.usable).await;
            }
            NetEvent::AddrRemoved(a) if self.ifindexes.contains(&a.index) => {
                self.watcher.on_addr(now, a.addr, false).await;
            }
            _ => {}
        }
    }

    pub async fn on_neighbour(&mut self, n: &NeighbourSeen, now: Instant) {
        self.watcher.on_neighbour(now, n).await;
    }

    pub async fn on_advert(&mut self, a: Captured, now: Instant) {
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
        if let Some(OwnerAction::Fence { target, by }) = pending.outcome.action.clone() {
            let text = match &mut self.fence {
                Some(f) => f.order(now, &target, &by, &mut self.out),
                None => Err("no [[fence]] is configured on this node".to_owned()),
            };
            if let Some(c) = pending.outcome.confirm.as_mut() {
                c.text = match text {
                    Ok(t) => format!("splitguard: {t}."),
                    Err(why) => format!("splitguard: FENCE {target} not done: {why}."),
                };
            }
            self.watching.answer(pending);
            return;
        }
        if let Some(action) = pending.outcome.action.clone() {
            match &mut self.owner {
                Owner::Instances { instances, arbiter } => {
                    let (hold, instance) = match action {
                        OwnerAction::Demote { instance } => (true, instance),
                        OwnerAction::Resume { instance } => (false, instance),
                        OwnerAction::Fence { .. } => return,
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
