//! The daemon's side of the watchdog: it starts the [`Watcher`] over the
//! instances' IPv4 VIPs (split-brain detection on our own VIPs), feeds it the
//! address events, the ARP and the adverts seen on the instances' interfaces, and
//! hands it the arbiter's incidents for paging.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

use crate::config::Config;
use crate::control::{Command, CommandRequest, ErrorKind, Response};
use crate::net::arp_socket::ArpSocket;
use crate::watch::reply::OwnerAction;
use crate::watch::{VipSite, Watcher};
use splitguard_watchdog::core::classify::{AdvertSeen, ExpectedRole, WatchedVip};
use splitguard_watchdog::core::engine::Raise;
use splitguard_watchdog::io::dispatch::Delivery;
use splitguard_watchdog::io::reply::http::ReplyEvent;
use tokio::sync::mpsc;
use tracing::info;

use super::{Announcer, Daemon};
use crate::net::arp::ArpRepr;

pub use crate::watch::delivery_event;

impl Daemon {
    /// Starts the watcher and the receivers that feed it (and the arbiter): ARP
    /// about our VIPs and a VRRP capture per IPv4 interface.
    pub(super) fn start_watcher(
        &mut self,
        cfg: &Config,
        reports: mpsc::UnboundedSender<Delivery>,
        adverts: mpsc::Sender<AdvertSeen>,
        arps: mpsc::Sender<(u32, ArpRepr)>,
    ) -> anyhow::Result<()> {
        let mut vips = Vec::new();
        let mut sites = Vec::new();
        let mut arp_socks: BTreeMap<u32, Arc<ArpSocket>> = BTreeMap::new();
        for r in &self.routers {
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
        for (&(ifindex, _), iface) in &self.ifaces {
            let Announcer::Arp(sock) = &iface.announcer else {
                continue;
            };
            arp_socks.insert(ifindex, sock.clone());
            let watched: Vec<Ipv4Addr> = sites
                .iter()
                .filter(|s| s.ifindex == ifindex)
                .map(|s| s.vip)
                .collect();
            crate::watch::spawn_arp_receiver(ifindex, sock.clone(), watched, arps.clone());
            crate::watch::spawn_capture(ifindex, &iface.name, adverts.clone())?;
        }
        self.watcher = Some(Watcher::start(cfg, vips, sites, arp_socks, reports)?);
        Ok(())
    }

    pub(super) async fn on_arp_seen(&mut self, (ifindex, arp): (u32, ArpRepr), now: Instant) {
        if let Some(w) = &mut self.watcher {
            w.on_arp(now, ifindex, &arp).await;
        }
        self.on_arp(ifindex, arp);
    }

    pub(super) async fn on_advert_seen(&mut self, a: AdvertSeen, now: Instant) {
        if let Some(w) = &mut self.watcher {
            w.on_advert(now, a).await;
        }
    }

    /// Hands queued arbiter incidents to the watcher and writes its events.
    pub(super) async fn flush_watcher(&mut self, now: Instant) {
        let queued: Vec<(Raise, bool)> = std::mem::take(&mut self.incidents);
        let Some(w) = &mut self.watcher else { return };
        for (raise, raised) in queued {
            if raised {
                w.raise(now, raise).await;
            } else {
                w.resolve(now, &raise.key).await;
            }
        }
        let events = w.take_events();
        for ev in events {
            self.emit(Some(ev));
        }
    }
}

impl Daemon {
    /// One line on the instances and open incidents, for STATUS replies.
    fn summary(&self) -> String {
        let inst: Vec<String> = self
            .routers
            .iter()
            .map(|r| format!("{} {}", r.cfg.name, r.fsm.state().as_str()))
            .collect();
        let watched = self
            .watcher
            .as_ref()
            .map(|w| w.summary(&self.node))
            .unwrap_or_default();
        format!("{}; {watched}", inst.join(", "))
    }

    /// A reply from the listener. DEMOTE holds the incident's instance (all of
    /// them when the incident names none) backup and releases its VIPs; RESUME
    /// lifts the hold. The arbiter's gate carries the hold when it runs.
    pub(super) async fn on_reply_event(&mut self, ev: ReplyEvent, now: Instant) {
        let summary = self.summary();
        let Some(w) = &mut self.watcher else { return };
        let (reply, answer) = match ev {
            ReplyEvent::Refused(rec) => {
                w.audit_refused(rec);
                return;
            }
            ReplyEvent::Request { reply, answer } => (reply, answer),
        };
        let outcome = w.on_reply(reply, &summary).await;
        let (hold, instance) = match &outcome.action {
            Some(OwnerAction::Demote { instance }) => (true, instance.clone()),
            Some(OwnerAction::Resume { instance }) => (false, instance.clone()),
            None => {
                let _ = answer.send(outcome.http_status);
                if let (Some(c), Some(w)) = (outcome.confirm, &self.watcher) {
                    w.confirm(c);
                }
                return;
            }
        };
        for i in 0..self.routers.len() {
            let name = self.routers[i].cfg.name.clone();
            if instance.as_ref().is_some_and(|n| *n != name) {
                continue;
            }
            info!(instance = %name, hold, "operator hold from a reply");
            self.set_manual_hold(i, hold, now);
        }
        self.settle(now).await;
        for i in 0..self.routers.len() {
            self.run_actions(i, now).await;
        }
        let _ = answer.send(outcome.http_status);
        if let (Some(c), Some(w)) = (outcome.confirm, &self.watcher) {
            w.confirm(c);
        }
    }
}

impl Daemon {
    /// A command from the control socket (already authorized by the server).
    pub(super) async fn on_command(&mut self, req: CommandRequest, now: Instant) {
        let CommandRequest {
            command,
            peer,
            reply,
        } = req;
        let by = format!("uid {}", peer.uid);
        let hold = matches!(command, Command::Demote { .. });
        match command {
            Command::Owners { vip } => {
                if let Some(w) = &mut self.watcher {
                    w.request_owners(now, vip, reply).await;
                } else {
                    let _ = reply.send(Response::error(ErrorKind::Unsupported, "no watchdog"));
                }
            }
            Command::Ack { code } => {
                let r = match &mut self.watcher {
                    Some(w) => w.ack_local(now, &code, &by).await,
                    None => Response::error(ErrorKind::Unsupported, "no watchdog"),
                };
                let _ = reply.send(r);
            }
            Command::Demote { instance } | Command::Resume { instance }
                if instance
                    .as_ref()
                    .is_some_and(|n| !self.routers.iter().any(|r| &r.cfg.name == n)) =>
            {
                let name = instance.unwrap_or_default();
                let _ = reply.send(Response::error(
                    ErrorKind::BadRequest,
                    format!("no instance named {name}"),
                ));
            }
            Command::Demote { instance } | Command::Resume { instance } => {
                let mut names = Vec::new();
                for i in 0..self.routers.len() {
                    let name = self.routers[i].cfg.name.clone();
                    if instance.as_ref().is_none_or(|n| *n == name) {
                        info!(instance = %name, hold, %by, "operator hold from the control socket");
                        self.set_manual_hold(i, hold, now);
                        names.push(name);
                    }
                }
                self.settle(now).await;
                for i in 0..self.routers.len() {
                    self.run_actions(i, now).await;
                }
                let what = if hold {
                    "VIPs released, held backup until resume"
                } else {
                    "hold lifted"
                };
                let _ = reply.send(Response::done(format!("{}: {what}", names.join(", "))));
            }
        }
    }
}
