//! Owns the VRRP instances and their interfaces: the state machines (`Router`s),
//! the raw VRRP socket per interface and family, the GARP / unsolicited NA
//! announcers, the VIPs on the interfaces (netlink), the track scripts and the
//! notify queues. It turns datagrams, timers, link and address events and track
//! results into the actions the state machines return; decisions stay in
//! `splitguard_vrrp::instance`.
//!
//! Start-up rule for VIPs left by a crashed run: every configured VIP found on its
//! instance's interface is removed before the instances start. A node starts as
//! backup (unless it owns the address, priority 255, and then adds them straight
//! back), so a VIP present at start is never ours to keep; leaving it would make a
//! second owner until the next transition.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::config::Config;
use crate::net::arp_socket::ArpSocket;
use crate::net::ndisc::NdiscSocket;
use crate::net::netlink::{self, AddrInfo, NetEvent, Netlink};
use crate::net::vrrp_socket::{Received, VrrpSocket};
use crate::notify::events::{Event, unix_ms};
use crate::notify::{Notifier, NotifyHandle, NotifySpec, ScriptLimit};
use crate::track::{ScriptSpec, ScriptTrackers, TrackerUpdate};
use anyhow::Context;
use splitguard_vrrp::instance::{Action, AdvertOutcome, Cause, ReceivedAdvert, State};
use splitguard_vrrp::wire::{self, Family};
use splitguard_watchdog::core::engine::Raise;
use splitguard_watchdog::core::incident::IncidentKind;
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use super::outputs::{InstanceReport, Outputs};
use super::reject_log::{RejectLine, RejectLog, Source};
use super::router::{Router, interface_tracker, script_tracker};
use super::schedule::{Deadlines, Touched};
use crate::net::pace::{Pacer, ProbeQueue, ProbeSocket};

/// How takeovers are announced on a segment: gratuitous ARP for IPv4 VIPs,
/// unsolicited neighbour advertisements for IPv6 ones.
pub(super) enum Announcer {
    Arp(Arc<ArpSocket>),
    Nd(Arc<NdiscSocket>),
}

impl Announcer {
    /// The same socket, as the probe queue and the neighbour receiver take it.
    pub fn probe_socket(&self) -> ProbeSocket {
        match self {
            Announcer::Arp(s) => ProbeSocket::Arp(s.clone()),
            Announcer::Nd(s) => ProbeSocket::Nd(s.clone()),
        }
    }
}

/// The sockets of one interface and address family that carries instances.
pub(super) struct Iface {
    pub name: String,
    vrrp: Arc<VrrpSocket>,
    pub announcer: Announcer,
    /// Slots for GARP repeats and refreshes on this interface.
    garp_pacer: Pacer,
    /// The paced probes of this interface and family (ARP requests or
    /// neighbour solicitations), shared by the arbiter's ownership rounds, early
    /// takeover and the watcher.
    pub probes: Option<Arc<ProbeQueue>>,
    /// The networks of the interface's addresses of this family when it was
    /// opened: a peer outside them (and, for IPv6, not link-local) is routed,
    /// and neither ARP nor neighbour discovery can say whether it lives.
    pub subnets: Vec<(IpAddr, u8)>,
}

/// At most one instance's GARP repeat (or refresh) per interface this often: 251
/// instances' repeats spread over a quarter of a second instead of one burst.
const GARP_PACE: Duration = Duration::from_millis(1);

/// One datagram read from an interface's VRRP socket.
pub(super) struct Datagram {
    ifindex: u32,
    received: Received,
}

pub(super) struct Instances {
    pub nl: Netlink,
    pub ifaces: BTreeMap<(u32, Family), Iface>,
    /// Private: every change goes through [`Instances::router_mut`], which marks
    /// the instance touched, so a step's follow-up work (the arbiter's settle,
    /// the status, the timers) visits only what the step changed.
    routers: Vec<Router>,
    /// Which instances an advert on (interface, family, VRID) is for: found by
    /// lookup, not by a scan of every instance.
    by_vrid: HashMap<(u32, Family, u8), Vec<usize>>,
    /// The instances this step touched.
    touched: Touched,
    /// Each instance's next state machine timer or GARP, ordered.
    deadlines: Deadlines,
    /// Per router (same index): its ordered notify queue, when it has scripts.
    notifiers: Vec<Option<NotifyHandle>>,
    /// The `[[track_script]]`s the instances use.
    trackers: Option<ScriptTrackers>,
    /// What of the rejected adverts reaches the log (bounded under a flood).
    rejects: RejectLog,
}

impl Instances {
    /// Resolves each instance's interface and source address, removes VIPs a
    /// previous run left and opens the interfaces' sockets (datagrams go to
    /// `dgrams`).
    pub async fn open(
        cfg: &Config,
        nl: &Netlink,
        dgrams: mpsc::Sender<Datagram>,
    ) -> anyhow::Result<Instances> {
        let mut this = Instances {
            nl: nl.clone(),
            ifaces: BTreeMap::new(),
            routers: Vec::new(),
            by_vrid: HashMap::new(),
            touched: Touched::default(),
            deadlines: Deadlines::default(),
            notifiers: Vec::new(),
            trackers: None,
            rejects: RejectLog::new(),
        };
        // One bound on concurrent notify scripts for the whole daemon.
        let scripts = ScriptLimit::default();
        for inst in &cfg.instances {
            let link = nl
                .link_by_name(&inst.interface)
                .await
                .with_context(|| format!("instance {}: interface {}", inst.name, inst.interface))?;
            let mac = link
                .mac
                .with_context(|| format!("interface {} has no Ethernet address", inst.interface))?;
            let addrs = nl.addresses(link.index).await?;
            let vips: Vec<IpAddr> = inst.vips.iter().map(|v| v.addr).collect();
            let ipv6 = vips.first().is_some_and(IpAddr::is_ipv6);
            let primary = match inst.unicast_src_ip {
                Some(a) => a,
                // RFC 5798 §5.1.2.1: IPv6 adverts come from the link-local address.
                None if ipv6 => addrs
                    .iter()
                    .find_map(|a| match a.addr {
                        IpAddr::V6(v) if v.is_unicast_link_local() && !vips.contains(&a.addr) => {
                            Some(a.addr)
                        }
                        _ => None,
                    })
                    .with_context(|| {
                        format!(
                            "interface {} has no IPv6 link-local address to send adverts from (is IPv6 disabled on it?)",
                            inst.interface
                        )
                    })?,
                None => addrs
                    .iter()
                    .filter(|a| !a.secondary && !vips.contains(&a.addr) && a.addr.is_ipv4())
                    .map(|a| a.addr)
                    .next()
                    .with_context(|| {
                        format!(
                            "interface {} has no IPv4 address of its own to send adverts from",
                            inst.interface
                        )
                    })?,
            };
            this.reconcile_stale_vips(inst, link.index, &addrs).await;
            this.open_iface(&inst.interface, link.index, primary, &addrs, &dgrams)
                .with_context(|| format!("instance {}", inst.name))?;
            let router = Router::new(inst.clone(), &cfg.track_scripts, link.index, mac, primary)?;
            this.by_vrid
                .entry((link.index, router.family(), inst.vrid))
                .or_default()
                .push(this.routers.len());
            this.routers.push(router);
            this.notifiers.push(notifier(inst, &scripts));
        }
        this.touched = Touched::new(this.routers.len());
        this.deadlines = Deadlines::new(this.routers.len());
        Ok(this)
    }

    /// Every instance, to read.
    pub fn routers(&self) -> &[Router] {
        &self.routers
    }

    /// Instance `i`, to change: marks it touched for this step.
    pub fn router_mut(&mut self, i: usize) -> &mut Router {
        self.touched.touch(i);
        &mut self.routers[i]
    }

    /// The instances this step touched so far.
    pub fn touched(&self) -> Vec<usize> {
        self.touched.list()
    }

    /// Marks instance `i` touched without changing it (its arbiter-side timers moved).
    pub fn touch(&mut self, i: usize) {
        self.touched.touch(i);
    }

    /// Ends a step: the touched instances' deadlines are re-read, and the
    /// touched set starts empty.
    pub fn end_step(&mut self) {
        for i in self.touched.list() {
            let r = &self.routers[i];
            let due = [r.fsm.poll_timeout(), r.garp.map(|g| g.due)]
                .into_iter()
                .flatten()
                .min();
            self.deadlines.set(i, due);
        }
        self.touched.clear();
    }

    /// Starts the `[[track_script]]`s the instances use; results go to `tracks`.
    pub fn spawn_trackers(&mut self, cfg: &Config, tracks: &mpsc::Sender<TrackerUpdate>) {
        let used_scripts = cfg
            .track_scripts
            .iter()
            .filter(|t| {
                cfg.instances
                    .iter()
                    .any(|i| i.track_scripts.contains(&t.name))
            })
            .map(|t| ScriptSpec {
                name: t.name.clone(),
                argv: t.command.clone(),
                interval: t.interval,
                timeout: t.timeout,
                rise: t.rise,
                fall: t.fall,
            });
        self.trackers = Some(ScriptTrackers::spawn(used_scripts, tracks));
    }

    /// First link states in, then every instance starts (as backup, or master
    /// when it owns the address).
    pub async fn start(&mut self, now: Instant, out: &mut Outputs) {
        self.refresh_links(now, out).await;
        for i in 0..self.routers.len() {
            self.router_mut(i).fsm.handle_startup(now);
            self.run_actions(i, now, out).await;
        }
    }

    /// The earliest state machine timer or GARP due (as of the last step's end).
    pub fn deadline(&self) -> Option<Instant> {
        self.deadlines
            .first()
            .into_iter()
            .chain(self.rejects.poll_timeout())
            .min()
    }

    /// The interface's name, for log lines about it.
    fn iface_name(&self, ifindex: u32) -> &str {
        self.ifaces
            .range((ifindex, Family::Ipv4)..)
            .next()
            .filter(|((i, _), _)| *i == ifindex)
            .map_or("?", |(_, f)| f.name.as_str())
    }

    /// Writes a summary of rejected adverts.
    fn log_rejects(&self, line: RejectLine) {
        match line {
            // Written where they happen, with the instance.
            RejectLine::First { .. } => {}
            RejectLine::Summary {
                source,
                counts,
                period,
            } => {
                let total: u64 = counts.iter().map(|c| c.1).sum();
                warn!(
                    interface = self.iface_name(source.ifindex),
                    src = %source.src,
                    total,
                    reasons = %reason_counts(&counts),
                    "rejected {total} adverts from {} in the last {}s",
                    source.src,
                    period.as_secs()
                );
            }
            RejectLine::Rest {
                sources,
                untracked,
                counts,
                unwritten,
                period,
            } => {
                let total: u64 = counts.iter().map(|c| c.1).sum();
                warn!(
                    total,
                    sources,
                    untracked,
                    unwritten,
                    reasons = %reason_counts(&counts),
                    "rejected {total} adverts from other sources in the last {}s \
                     ({unwritten} first-of-a-kind lines held back by the rate limit)",
                    period.as_secs()
                );
            }
        }
    }

    /// Instance `i`'s status line.
    /// Router `i`'s status line if it changed since it was last asked for,
    /// and its counters (a status cache, not a change to the router: nothing
    /// is touched).
    pub fn status_report(&mut self, i: usize) -> Option<InstanceReport> {
        let r = self.routers.get_mut(i)?;
        Some(InstanceReport {
            index: i,
            status: r.status_if_changed(),
            counters: r.counters.clone(),
        })
    }

    /// One line on the instances, for STATUS replies.
    pub fn summary(&self) -> String {
        let inst: Vec<String> = self
            .routers
            .iter()
            .map(|r| format!("{} {}", r.cfg.name, r.fsm.state().as_str()))
            .collect();
        inst.join(", ")
    }

    /// The effective priority and primary address of the instance that
    /// holds `vip`: this node's place in VRRP's order for it. Only for rare
    /// inputs (a split brain): a scan.
    pub fn order_for_vip(&self, vip: std::net::IpAddr) -> Option<(u8, std::net::IpAddr)> {
        self.routers
            .iter()
            .find(|r| r.vip_addrs.contains(&vip))
            .map(|r| (r.fsm.effective_priority(), r.primary))
    }

    /// A VIP of `addr`'s family, whose interface and source can ask who
    /// speaks for `addr`. Only for rare inputs: a scan.
    pub fn vip_of_family(&self, addr: std::net::IpAddr) -> Option<std::net::IpAddr> {
        self.routers
            .iter()
            .flat_map(|r| r.vip_addrs.iter())
            .find(|v| v.is_ipv4() == addr.is_ipv4())
            .copied()
    }

    /// Only for rare inputs (a verdict, a command): a scan by name.
    pub fn router_index(&self, name: &str) -> Option<usize> {
        self.routers.iter().position(|r| r.cfg.name == name)
    }

    /// Steps every instance down (releasing its VIPs, a last advert at priority
    /// 0) once the track scripts are stopped.
    pub async fn shutdown(&mut self, now: Instant, out: &mut Outputs) {
        if let Some(t) = self.trackers.take() {
            t.shutdown().await;
        }
        for i in 0..self.routers.len() {
            self.router_mut(i).fsm.handle_shutdown(now);
            self.run_actions(i, now, out).await;
        }
    }

    /// Lets queued notify scripts (STOP included) finish, bounded.
    pub async fn drain(&mut self, bound: Duration) {
        for n in self.notifiers.drain(..).flatten() {
            if let Err(e) = n.drain(bound).await {
                warn!(error = %e, "notify queue not drained");
            }
        }
    }
}
/// The notify queue of `inst`, when it has any notify script; its scripts
/// count against the daemon's `limit`.
fn notifier(inst: &crate::config::Instance, limit: &ScriptLimit) -> Option<NotifyHandle> {
    let mut spec = NotifySpec::new(inst.name.clone());
    spec.notify = inst.notify.clone();
    spec.notify_master = inst.notify_master.clone();
    spec.notify_backup = inst.notify_backup.clone();
    spec.notify_fault = inst.notify_fault.clone();
    spec.notify_stop = inst.notify_stop.clone();
    (!spec.is_empty()).then(|| Notifier::spawn_limited(spec, limit.clone()))
}

impl Instances {
    /// A track script's new result, to the instances that track it.
    pub async fn on_tracker(&mut self, up: TrackerUpdate, now: Instant, out: &mut Outputs) {
        let tracker = script_tracker(&up.name);
        for i in 0..self.routers.len() {
            if self.routers[i].fsm.tracker_up(&tracker).is_some() {
                let r = self.router_mut(i);
                info!(instance = %r.cfg.name, script = %up.name, up = up.up, detail = %up.detail, "track script changed");
                let _ = r.fsm.handle_tracker(now, &tracker, up.up);
                self.run_actions(i, now, out).await;
            }
        }
    }

    async fn reconcile_stale_vips(
        &self,
        inst: &crate::config::Instance,
        ifindex: u32,
        present: &[netlink::AddrInfo],
    ) {
        for vip in &inst.vips {
            if present.iter().any(|a| a.addr == vip.addr) {
                match self.nl.del_address(ifindex, vip.addr, vip.prefix_len).await {
                    Ok(_) => warn!(
                        instance = %inst.name, vip = %vip.addr,
                        "removed a VIP left on {} by a previous run; it is re-added only if this node becomes master",
                        inst.interface
                    ),
                    Err(e) => {
                        error!(instance = %inst.name, vip = %vip.addr, error = %e, "could not remove stale VIP")
                    }
                }
            }
        }
    }

    fn open_iface(
        &mut self,
        name: &str,
        index: u32,
        source: IpAddr,
        addrs: &[AddrInfo],
        dgrams: &mpsc::Sender<Datagram>,
    ) -> anyhow::Result<()> {
        let family = match source {
            IpAddr::V4(_) => Family::Ipv4,
            IpAddr::V6(_) => Family::Ipv6,
        };
        if self.ifaces.contains_key(&(index, family)) {
            return Ok(());
        }
        // One receive socket per interface and family, joined to the group: unicast
        // adverts arrive on it too, and the instances filter by VRID and peer.
        let (vrrp, announcer) = match source {
            IpAddr::V4(src) => (
                VrrpSocket::open_v4(name, index, src, true)?,
                Announcer::Arp(Arc::new(ArpSocket::open(index).with_context(|| {
                    format!("open ARP socket on {name} (needs CAP_NET_RAW)")
                })?)),
            ),
            IpAddr::V6(src) => (
                VrrpSocket::open_v6(name, index, src)?,
                Announcer::Nd(Arc::new(
                    NdiscSocket::open_probe(name, index).with_context(|| {
                        format!("open ICMPv6 socket on {name} (needs CAP_NET_RAW)")
                    })?,
                )),
            ),
        };
        let probes = Some(ProbeQueue::start(announcer.probe_socket()));
        let vrrp = Arc::new(vrrp);
        let rx = vrrp.clone();
        let tx = dgrams.clone();
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(received) => {
                        if tx
                            .send(Datagram {
                                ifindex: index,
                                received,
                            })
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                    Err(e) => {
                        error!(interface = %rx.interface(), error = %e, "VRRP receive failed");
                        // A persistent error must not spin: back off before retrying.
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    }
                }
            }
        });
        self.ifaces.insert(
            (index, family),
            Iface {
                name: name.to_string(),
                vrrp,
                announcer,
                garp_pacer: Pacer::new(GARP_PACE),
                probes,
                subnets: addrs
                    .iter()
                    .filter(|a| !a.addr.is_loopback() && Family::of(a.addr) == family)
                    .map(|a| (a.addr, a.prefix_len))
                    .collect(),
            },
        );
        Ok(())
    }

    /// A datagram from an interface's VRRP socket, to every instance it may
    /// concern. Returns the instances that heard a live master's advert (the
    /// arbiter's heartbeat).
    pub async fn on_datagram(
        &mut self,
        d: Datagram,
        now: Instant,
        out: &mut Outputs,
    ) -> Vec<usize> {
        let mut heard = Vec::new();
        let (ip, vrrp) = match d.received {
            Received::Advert { ip, vrrp } => (ip, vrrp),
            Received::BadHeader(e) => {
                debug!(error = %e, "dropped a datagram with a bad IPv4 header");
                return heard;
            }
        };
        let vrrp = vrrp.as_slice();
        let src = ip.endpoints.src();
        let family = ip.endpoints.family();
        let Some(&vrid) = vrrp.get(1) else {
            return heard;
        };
        let targets = self
            .by_vrid
            .get(&(d.ifindex, family, vrid))
            .cloned()
            .unwrap_or_default();
        for i in targets {
            let r = self.router_mut(i);
            if r.is_unicast() && !r.cfg.unicast_peers.contains(&src) {
                self.rejected(i, now, (d.ifindex, src, vrid), "peer", || {
                    format!("from {src}, which is not a unicast peer")
                });
                continue;
            }
            match wire::validate(&ip, vrrp, &r.expect()) {
                Ok(repr) => {
                    r.counters.adverts_received += 1;
                    let alive = repr.priority > 0;
                    let outcome = r.fsm.handle_advert(
                        now,
                        ReceivedAdvert {
                            src,
                            priority: repr.priority,
                            interval: repr.interval(),
                        },
                    );
                    if let AdvertOutcome::Discarded(why) = outcome {
                        debug!(instance = %r.cfg.name, vrid, %src, reason = ?why, "advert discarded");
                    }
                    if alive {
                        heard.push(i);
                    }
                }
                Err(reject) => {
                    self.rejected(i, now, (d.ifindex, src, vrid), reject.reason(), || {
                        reject.to_string()
                    });
                }
            }
            self.run_actions(i, now, out).await;
        }
        heard
    }

    /// Instance `i` refused an advert from `(ifindex, src, vrid)` for
    /// `reason`: counted exactly, logged as the bounded rejection log allows
    /// (`detail` is built only for a line that is written).
    fn rejected(
        &mut self,
        i: usize,
        now: Instant,
        (ifindex, src, vrid): (u32, IpAddr, u8),
        reason: &'static str,
        detail: impl FnOnce() -> String,
    ) {
        let r = self.router_mut(i);
        *r.counters.adverts_rejected.entry(reason).or_default() += 1;
        let name = r.cfg.name.clone();
        let source = Source { ifindex, src };
        if let Some(RejectLine::First { detail, .. }) =
            self.rejects.handle_reject(now, source, reason, detail)
        {
            warn!(
                instance = %name,
                vrid,
                interface = self.iface_name(ifindex),
                %src,
                reason,
                "rejected advert: {detail}"
            );
        }
    }

    /// Runs the actions the state machines of `routers` queued, as a batch:
    /// every leading advert first, then the addresses of every instance that
    /// claimed as one batch of netlink requests in flight together (rather than
    /// one round trip each), then the rest in each instance's order. At a mass
    /// takeover hundreds of claims land together, and the peer must hear each
    /// (and a lower-priority peer stop its own) before the slower work of all.
    pub async fn run_claimed(&mut self, routers: &[usize], now: Instant, out: &mut Outputs) {
        let mut rest: Vec<(usize, Action)> = Vec::new();
        for &i in routers {
            self.touched.touch(i);
            // An instance's own actions keep their order: only its leading adverts
            // go ahead.
            let mut leading = true;
            while let Some(action) = self.routers[i].fsm.poll_action() {
                if leading && matches!(action, Action::SendAdvert { .. }) {
                    self.run_action(i, action, now, out).await;
                } else {
                    leading = false;
                    rest.push((i, action));
                }
            }
        }
        // The addresses of every instance that just claimed, as one batch of
        // netlink requests in flight together rather than one round trip each.
        // Only an AddVips right behind the adverts is taken ahead (a claim's
        // order), so no instance's own actions change order.
        let mut adds = Vec::new();
        let mut prev = None;
        rest.retain(|&(i, ref action)| {
            let first = prev != Some(i);
            prev = Some(i);
            if first && *action == Action::AddVips {
                adds.push(i);
                false
            } else {
                true
            }
        });
        futures::future::join_all(adds.iter().map(|&i| self.add_vips(i))).await;
        for (i, action) in rest {
            self.run_action(i, action, now, out).await;
        }
    }

    /// State machine timers and GARP bursts that are due, and the rejection
    /// log's summary. The due instances' actions run as one batch
    /// ([`Instances::run_claimed`]), then the GARPs.
    pub async fn on_timers(&mut self, now: Instant, out: &mut Outputs) {
        for line in self.rejects.handle_timeout(now) {
            self.log_rejects(line);
        }
        let due = self.deadlines.due(now);
        for &i in &due {
            let r = self.router_mut(i);
            if r.fsm.poll_timeout().is_some_and(|t| t <= now) {
                r.fsm.handle_timeout(now);
            }
        }
        self.run_claimed(&due, now, out).await;
        for i in due {
            let r = &mut self.routers[i];
            if r.garp.is_some_and(|g| g.due <= now) {
                if r.fsm.state() == State::Master {
                    match self
                        .ifaces
                        .get(&(r.ifindex, r.family()))
                        .map(|f| &f.announcer)
                    {
                        Some(Announcer::Arp(arp)) => {
                            for vip in r.ipv4_vips() {
                                if let Err(e) = arp.gratuitous(r.mac, vip).await {
                                    warn!(instance = %r.cfg.name, %vip, error = %e, "GARP failed");
                                }
                            }
                        }
                        Some(Announcer::Nd(nd)) => {
                            for vip in r.ipv6_vips() {
                                if let Err(e) = nd.unsolicited(r.mac, vip).await {
                                    warn!(instance = %r.cfg.name, %vip, error = %e, "unsolicited neighbour advertisement failed");
                                }
                            }
                        }
                        None => {}
                    }
                    match self.ifaces.get_mut(&(r.ifindex, r.family())) {
                        Some(f) => r.garp_sent(now, &mut f.garp_pacer),
                        None => r.garp = None,
                    }
                } else {
                    r.garp = None;
                }
            }
        }
    }

    /// The interfaces the instances run on, while every one is down (a local
    /// fault, which the arbiter reports as such); None while one is up.
    pub fn own_links_down(&self) -> Option<Vec<String>> {
        let mut names = std::collections::BTreeSet::new();
        for r in &self.routers {
            if r.fsm.tracker_up(&interface_tracker(&r.cfg.interface)) != Some(false) {
                return None;
            }
            names.insert(r.cfg.interface.clone());
        }
        (!names.is_empty()).then(|| names.into_iter().collect())
    }

    /// Link changes (interface trackers), a VIP removed by someone else while
    /// master (added back), lost events (everything re-read).
    pub async fn on_net_event(&mut self, ev: NetEvent, now: Instant, out: &mut Outputs) {
        match ev {
            NetEvent::Link(link) => {
                let tracker = interface_tracker(&link.name);
                for i in 0..self.routers.len() {
                    if self.routers[i]
                        .fsm
                        .tracker_up(&tracker)
                        .is_some_and(|up| up != link.up)
                    {
                        let r = self.router_mut(i);
                        info!(instance = %r.cfg.name, interface = %link.name, up = link.up, "link state changed");
                        let _ = r.fsm.handle_tracker(now, &tracker, link.up);
                        self.run_actions(i, now, out).await;
                    }
                }
            }
            NetEvent::AddrRemoved(a) => {
                for i in 0..self.routers.len() {
                    let r = &self.routers[i];
                    if r.ifindex == a.index
                        && r.vip_addrs.contains(&a.addr)
                        && r.fsm.state() == State::Master
                    {
                        warn!(instance = %r.cfg.name, vip = %a.addr, "VIP removed by someone else while master; adding it back");
                        self.add_vips(i).await;
                    }
                }
            }
            // The watcher takes arrivals.
            NetEvent::AddrAdded(_) => {}
            NetEvent::Overrun => {
                warn!("netlink events were lost; re-reading links and VIPs");
                self.refresh_links(now, out).await;
                for i in 0..self.routers.len() {
                    if self.routers[i].fsm.state() == State::Master {
                        self.add_vips(i).await;
                    }
                }
            }
        }
    }

    /// Reads the link state of every tracked interface and feeds it in.
    async fn refresh_links(&mut self, now: Instant, out: &mut Outputs) {
        for i in 0..self.routers.len() {
            let names: Vec<String> = self.routers[i]
                .fsm
                .trackers()
                .filter_map(|t| t.name.strip_prefix("interface:").map(str::to_string))
                .collect();
            for name in names {
                let up = match self.nl.link_by_name(&name).await {
                    Ok(link) => link.up,
                    Err(e) => {
                        warn!(instance = %self.routers[i].cfg.name, interface = %name, error = %e, "tracked interface unavailable; counting it down");
                        false
                    }
                };
                let r = self.router_mut(i);
                let _ = r.fsm.handle_tracker(now, &interface_tracker(&name), up);
            }
            self.run_actions(i, now, out).await;
        }
    }

    async fn add_vips(&self, i: usize) {
        let r = &self.routers[i];
        for vip in &r.cfg.vips {
            let label = if vip.is_ipv6() {
                None
            } else {
                r.cfg.vip_label.as_deref()
            };
            match self
                .nl
                .add_address(r.ifindex, vip.addr, vip.prefix_len, label)
                .await
            {
                Ok(true) => {
                    info!(instance = %r.cfg.name, vrid = r.cfg.vrid, vip = %vip.addr, "VIP added")
                }
                Ok(false) => debug!(instance = %r.cfg.name, vip = %vip.addr, "VIP already present"),
                Err(e) => {
                    error!(instance = %r.cfg.name, vip = %vip.addr, error = %e, "could not add VIP")
                }
            }
        }
    }

    async fn remove_vips(&self, i: usize) {
        let r = &self.routers[i];
        for vip in &r.cfg.vips {
            match self
                .nl
                .del_address(r.ifindex, vip.addr, vip.prefix_len)
                .await
            {
                Ok(true) => {
                    info!(instance = %r.cfg.name, vrid = r.cfg.vrid, vip = %vip.addr, "VIP removed")
                }
                Ok(false) => debug!(instance = %r.cfg.name, vip = %vip.addr, "VIP was not present"),
                Err(e) => {
                    error!(instance = %r.cfg.name, vip = %vip.addr, error = %e, "could not remove VIP")
                }
            }
        }
    }

    /// Sends instance `i`'s advert to each destination; returns how many went.
    async fn send_advert(&self, i: usize, priority: u8) -> u64 {
        let r = &self.routers[i];
        let Some(iface) = self.ifaces.get(&(r.ifindex, r.family())) else {
            return 0;
        };
        let mut sent = 0;
        for dst in r.destinations() {
            match r.advert(priority, dst) {
                Ok(bytes) => match iface.vrrp.send(&bytes, dst).await {
                    Ok(()) => sent += 1,
                    Err(e) => {
                        warn!(instance = %r.cfg.name, interface = %iface.name, %dst, error = %e, "advert not sent")
                    }
                },
                Err(e) => error!(instance = %r.cfg.name, error = %e, "could not build advert"),
            }
        }
        sent
    }

    /// Carries out everything instance `i`'s state machine asked for.
    pub async fn run_actions(&mut self, i: usize, now: Instant, out: &mut Outputs) {
        self.touched.touch(i);
        while let Some(action) = self.routers[i].fsm.poll_action() {
            self.run_action(i, action, now, out).await;
        }
    }

    async fn run_action(&mut self, i: usize, action: Action, now: Instant, out: &mut Outputs) {
        match action {
            Action::SendAdvert { priority } => {
                let sent = self.send_advert(i, priority).await;
                self.routers[i].counters.adverts_sent += sent;
            }
            Action::AddVips => self.add_vips(i).await,
            Action::RemoveVips => self.remove_vips(i).await,
            Action::SendGarp => self.routers[i].start_garp(now),
            Action::StateChanged {
                from,
                to,
                priority,
                ref cause,
            } => {
                let r = &mut self.routers[i];
                r.counters.transitions += 1;
                info!(
                    instance = %r.cfg.name, vrid = r.cfg.vrid, from = from.as_str(), to = to.as_str(),
                    priority, cause = %cause, "state changed"
                );
                if to != State::Master {
                    r.garp = None;
                }
                r.since_ms = Some(unix_ms(SystemTime::now()));
                r.cause = Some(cause.to_string());
                let (name, vrid) = (r.cfg.name.clone(), r.cfg.vrid);
                self.failover_incident(i, from, to, cause, out);
                if let (Some(n), Some(word)) = (&self.notifiers[i], action.notify_word())
                    && let Err(e) = n.transition(word, priority)
                {
                    warn!(instance = %name, error = %e, "notify not queued");
                }
                out.emit(Event::from_action(&name, vrid, &action));
            }
            Action::ClaimWithheld { ref reason } => {
                let r = &self.routers[i];
                warn!(instance = %r.cfg.name, vrid = r.cfg.vrid, reason = %reason, "claim withheld");
                out.emit(Event::from_action(&r.cfg.name, r.cfg.vrid, &action));
            }
        }
    }

    /// Pages a takeover forced by a silent master (`failover`, a warning: the
    /// pair now runs on this node) and resolves it when this node leaves MASTER
    /// again (the master came back and preempted, or we stopped). A fresh start
    /// (no master heard yet), a preemption of a lower master, a graceful
    /// handover or a claim the arbiter let through later is not paged.
    fn failover_incident(
        &self,
        i: usize,
        from: State,
        to: State,
        cause: &Cause,
        out: &mut Outputs,
    ) {
        let r = &self.routers[i];
        let key = format!("failover:{}", r.cfg.name);
        let vip = r.vip_addrs.first().copied();
        let silent = r.fsm.last_peer_master();
        // A takeover from a silent master pages as a failover, whether the
        // timer ran out or the arbiter confirmed it dead first.
        let how = match cause {
            Cause::MasterSilent => Some("went silent"),
            Cause::EarlyTakeover { .. } => {
                Some("was confirmed dead by the arbiter (early takeover)")
            }
            _ => None,
        };
        let (raised, detail) = if to == State::Master
            && from == State::Backup
            && let Some(how) = how
            && let Some(silent) = silent
        {
            let vips: Vec<String> = r.vip_addrs.iter().map(ToString::to_string).collect();
            (
                true,
                format!(
                    "{} took over VRID {} ({}): its master {silent} {how}",
                    out.node,
                    r.cfg.vrid,
                    vips.join(", ")
                ),
            )
        } else if from == State::Master && to != State::Master {
            (false, format!("{} is no longer master ({cause})", out.node))
        } else {
            return;
        };
        let raise = Raise {
            key,
            kind: IncidentKind::Failover,
            severity: IncidentKind::Failover.default_severity(),
            instance: Some(r.cfg.name.clone()),
            vip,
            owners: Vec::new(),
            cause: detail,
        };
        out.incidents.push((raise, raised));
    }
}

/// "checksum=1200 ttl=3", most first.
fn reason_counts(counts: &[(&'static str, u64)]) -> String {
    counts
        .iter()
        .map(|(r, c)| format!("{r}={c}"))
        .collect::<Vec<_>>()
        .join(" ")
}
