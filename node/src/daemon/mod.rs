//! `splitguard run`: the daemon. It owns the event loop that drives every VRRP
//! instance: raw adverts, timers, link and address events from netlink and track
//! script results in; the actions the state machines return (adverts, VIPs, GARP,
//! notify scripts, events) out; a status snapshot for the control socket after each
//! step. Decisions stay in `vrrp::instance`; this module only moves bytes,
//! timestamps and actions.
//!
//! Start-up rule for VIPs left by a crashed run: every configured VIP found on its
//! instance's interface is removed before the instances start. A node starts as
//! backup (unless it owns the address, priority 255, and then adds them straight
//! back), so a VIP present at start is never ours to keep; leaving it would make a
//! second owner until the next transition.

mod arbiter_link;
mod router;
mod watcher_link;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::config::Config;
use crate::net::arp_socket::ArpSocket;
use crate::net::ndisc::NdiscSocket;
use crate::net::netlink::{self, NetEvent, Netlink};
use crate::net::vrrp_socket::{Received, VrrpSocket};
use crate::notify::events::{Event, EventSink, unix_ms};
use crate::notify::{Notifier, NotifyHandle, NotifySpec};
use crate::status::Status;
use crate::track::{ScriptSpec, ScriptTrackers, TrackerUpdate};
use crate::watch::Watcher;
use anyhow::Context;
use splitguard_vrrp::instance::{Action, AdvertOutcome, Cause, ReceivedAdvert, State};
use splitguard_vrrp::wire::{self, Family};
use splitguard_watchdog::classify::AdvertSeen;
use splitguard_watchdog::dispatch::Delivery;
use splitguard_watchdog::engine::Raise;
use splitguard_watchdog::incident::IncidentKind;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};

use router::{Router, interface_tracker, script_tracker};

/// How takeovers are announced on a segment: gratuitous ARP for IPv4 VIPs,
/// unsolicited neighbour advertisements for IPv6 ones.
enum Announcer {
    Arp(Arc<ArpSocket>),
    Nd(NdiscSocket),
}

/// The sockets of one interface and address family that carries instances.
struct Iface {
    name: String,
    vrrp: Arc<VrrpSocket>,
    announcer: Announcer,
}

/// One datagram read from an interface's VRRP socket.
struct Datagram {
    ifindex: u32,
    received: Received,
}

pub struct Daemon {
    node: String,
    nl: Netlink,
    ifaces: BTreeMap<(u32, Family), Iface>,
    routers: Vec<Router>,
    /// Per router (same index): its ordered notify queue, when it has scripts.
    notifiers: Vec<Option<NotifyHandle>>,
    events: Option<EventSink>,
    status: watch::Sender<Status>,
    /// The arbiter, unless `[arbiter] enabled = false`.
    arb: Option<arbiter_link::Arb>,
    /// The watchdog: split-brain detection on our VIPs, and the alert engine.
    watcher: Option<Watcher>,
    /// Arbiter incidents waiting for the watcher (raised: true).
    incidents: Vec<(Raise, bool)>,
    /// `/metrics`, when `metrics_listen` is set; alert counters for it.
    metrics: Option<watch::Sender<crate::metrics::Snapshot>>,
    alert_counts: crate::metrics::Counters,
}

/// How `run` was asked to behave beyond the config.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Log the reboot instead of doing it.
    pub dry_run: bool,
}

/// How long shutdown waits for queued notify scripts (STOP included) and events.
const DRAIN_BOUND: Duration = Duration::from_secs(10);

/// Runs the daemon until SIGTERM or SIGINT, then steps down cleanly.
pub async fn run(cfg: Config, opts: Options) -> anyhow::Result<()> {
    splitguard_watchdog::channels::install_crypto_provider();
    let (control, events) = crate::control::open_outputs(&cfg).await?;
    let nl = Netlink::connect().context("open netlink")?;
    let mut net_events = netlink::subscribe().context("subscribe to netlink events")?;
    let (dgram_tx, mut dgram_rx) = mpsc::channel::<Datagram>(256);

    let (status_tx, status_rx) = watch::channel(Status::default());
    let mut daemon = Daemon {
        node: cfg.node.clone(),
        nl: nl.clone(),
        ifaces: BTreeMap::new(),
        routers: Vec::new(),
        notifiers: Vec::new(),
        events,
        status: status_tx,
        arb: None,
        watcher: None,
        incidents: Vec::new(),
        metrics: None,
        alert_counts: Default::default(),
    };
    if let Some(addr) = cfg.metrics_listen {
        let (tx, rx) = watch::channel(crate::metrics::Snapshot::default());
        // Loaded and bound now, so a bad certificate or a taken port fails the
        // start, not a later scrape.
        let tls = cfg
            .metrics_tls
            .as_ref()
            .map(splitguard_watchdog::listener::load_tls)
            .transpose()
            .context("metrics_tls_cert/metrics_tls_key")?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("metrics_listen {addr}"))?;
        info!(%addr, tls = tls.is_some(), "metrics on /metrics");
        tokio::spawn(crate::metrics::serve(listener, rx, tls));
        daemon.metrics = Some(tx);
    }
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
        daemon.reconcile_stale_vips(inst, link.index, &addrs).await;
        daemon
            .open_iface(&inst.interface, link.index, primary, &dgram_tx)
            .with_context(|| format!("instance {}", inst.name))?;
        let router = Router::new(inst.clone(), &cfg.track_scripts, link.index, mac, primary)?;
        daemon.routers.push(router);
        daemon.notifiers.push(notifier(inst));
    }
    drop(dgram_tx);

    let (reports_tx, mut reports_rx) = mpsc::unbounded_channel::<Delivery>();
    let (adv_tx, mut adv_rx) = mpsc::channel::<AdvertSeen>(256);
    let (arp_tx, mut arp_rx) = mpsc::channel(256);
    daemon
        .start_watcher(&cfg, reports_tx, adv_tx, arp_tx)
        .context("watchdog")?;
    let (probe_tx, mut probe_rx) = mpsc::channel(64);
    if cfg.arbiter.enabled {
        daemon
            .start_arbiter(&cfg, opts, probe_tx)
            .await
            .context("arbiter")?;
    } else {
        warn!("[arbiter] enabled = false: claims follow VRRP alone, as keepalived's do");
        drop(probe_tx);
    }

    let (track_tx, mut track_rx) = mpsc::channel::<TrackerUpdate>(64);
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
    let trackers = ScriptTrackers::spawn(used_scripts, &track_tx);
    drop(track_tx);

    let mut reply_rx = crate::watch::start_reply_listener(&cfg).await?;
    let (stop_control, control_stopped) = tokio::sync::oneshot::channel::<()>();
    let (cmd_tx, mut cmd_rx) = mpsc::channel(16);
    let control_task = tokio::spawn(control.serve(status_rx, Some(cmd_tx), async {
        let _ = control_stopped.await;
    }));

    let now = Instant::now();
    daemon.refresh_links(now).await;
    for i in 0..daemon.routers.len() {
        daemon.routers[i].fsm.handle_startup(now);
        daemon.run_actions(i, now).await;
    }
    daemon.settle(now).await;
    daemon.publish_status();
    info!(node = %cfg.node, instances = daemon.routers.len(), "splitguard running");
    crate::service::ready();
    let mut watchdog = crate::service::watchdog_ticker();

    let mut sigterm = signal(SignalKind::terminate()).context("install SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("install SIGINT handler")?;
    loop {
        let deadline = daemon.next_deadline();
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            Some(d) = dgram_rx.recv() => daemon.on_datagram(d, Instant::now()).await,
            Some(ev) = net_events.recv() => daemon.on_net_event(ev, Instant::now()).await,
            Some(up) = track_rx.recv() => daemon.on_tracker(up, Instant::now()).await,
            () = sleep => daemon.on_timers(Instant::now()).await,
            Some(p) = probe_rx.recv() => daemon.on_probe(p.target, p.ok, Instant::now()).await,
            Some(a) = arp_rx.recv() => daemon.on_arp_seen(a, Instant::now()).await,
            Some(adv) = adv_rx.recv() => daemon.on_advert_seen(adv, Instant::now()).await,
            Some(d) = reports_rx.recv() => daemon.on_delivery(&d),
            Some(ev) = async {
                match &mut reply_rx {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => daemon.on_reply_event(ev, Instant::now()).await,
            Some(req) = cmd_rx.recv() => daemon.on_command(req, Instant::now()).await,
            () = crate::service::watchdog_tick(&mut watchdog) => crate::service::watchdog_ping(),
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
        daemon.settle(Instant::now()).await;
        daemon.flush_watcher(Instant::now()).await;
        daemon.publish_status();
    }
    info!("shutting down: releasing VIPs");
    crate::service::stopping();
    trackers.shutdown().await;
    daemon.shutdown(Instant::now()).await;
    daemon.publish_status();
    let _ = stop_control.send(());
    match control_task.await {
        Ok(Err(e)) => warn!(error = %e, "control socket ended with an error"),
        Err(e) => warn!(error = %e, "control socket task failed"),
        Ok(Ok(())) => {}
    }
    daemon.drain().await;
    Ok(())
}

/// The notify queue of `inst`, when it has any notify script.
fn notifier(inst: &crate::config::Instance) -> Option<NotifyHandle> {
    let mut spec = NotifySpec::new(inst.name.clone());
    spec.notify = inst.notify.clone();
    spec.notify_master = inst.notify_master.clone();
    spec.notify_backup = inst.notify_backup.clone();
    spec.notify_fault = inst.notify_fault.clone();
    spec.notify_stop = inst.notify_stop.clone();
    (!spec.is_empty()).then(|| Notifier::spawn(spec))
}

impl Daemon {
    /// Publishes the current status to the control socket when it changed.
    fn publish_status(&self) {
        let instances: Vec<_> = self.routers.iter().map(Router::status).collect();
        let arbiter = self.arb.as_ref().map(|a| a.status()).unwrap_or_default();
        let incidents = self
            .watcher
            .as_ref()
            .map(Watcher::incidents)
            .unwrap_or_default();
        let replies = self
            .watcher
            .as_ref()
            .map(Watcher::recent_replies)
            .unwrap_or_default();
        let status_changed = self.status.send_if_modified(|s| {
            if s.instances == instances
                && s.node == self.node
                && s.arbiter == arbiter
                && s.incidents == incidents
                && s.replies == replies
            {
                return false;
            }
            s.node = self.node.clone();
            s.instances = instances;
            s.arbiter = arbiter;
            s.incidents = incidents;
            s.replies = replies;
            s.at_ms = Some(unix_ms(SystemTime::now()));
            true
        });
        if let Some(m) = &self.metrics {
            let mut counters = self.alert_counts.clone();
            counters.instances = self
                .routers
                .iter()
                .map(|r| (r.cfg.name.clone(), r.counters.clone()))
                .collect();
            // The loop turns on every packet: copy the status for /metrics
            // only when it or a counter moved.
            m.send_if_modified(|snap| {
                if !status_changed && snap.counters == counters {
                    return false;
                }
                snap.status = self.status.borrow().clone();
                snap.counters = counters;
                true
            });
        }
    }

    /// A delivery report: counted for `/metrics`, written to the event stream.
    fn on_delivery(&mut self, d: &splitguard_watchdog::dispatch::Delivery) {
        use splitguard_watchdog::dispatch::Outcome;
        let map = match d.outcome {
            Outcome::Delivered { .. } => &mut self.alert_counts.alerts_sent,
            Outcome::Retrying { .. } => &mut self.alert_counts.alerts_retried,
            Outcome::Failed { .. } => &mut self.alert_counts.alerts_failed,
        };
        *map.entry(d.channel.clone()).or_default() += 1;
        self.emit(Some(watcher_link::delivery_event(d)));
    }

    fn emit(&self, event: Option<Event>) {
        if let (Some(sink), Some(event)) = (&self.events, event)
            && let Err(e) = sink.emit(event)
        {
            warn!(error = %e, "event not written");
        }
    }

    async fn on_tracker(&mut self, up: TrackerUpdate, now: Instant) {
        let tracker = script_tracker(&up.name);
        for i in 0..self.routers.len() {
            let r = &mut self.routers[i];
            if r.fsm.tracker_up(&tracker).is_some() {
                info!(instance = %r.cfg.name, script = %up.name, up = up.up, detail = %up.detail, "track script changed");
                let _ = r.fsm.handle_tracker(now, &tracker, up.up);
                self.run_actions(i, now).await;
            }
        }
    }

    /// Lets queued notify scripts (STOP included) and events finish, bounded.
    async fn drain(&mut self) {
        for n in self.notifiers.drain(..).flatten() {
            if let Err(e) = n.drain(DRAIN_BOUND).await {
                warn!(error = %e, "notify queue not drained");
            }
        }
        if let Some(sink) = self.events.take()
            && let Err(e) = sink.close(DRAIN_BOUND).await
        {
            warn!(error = %e, "event stream not closed cleanly");
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
                Announcer::Nd(NdiscSocket::open(name, index).with_context(|| {
                    format!("open ICMPv6 socket on {name} (needs CAP_NET_RAW)")
                })?),
            ),
        };
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
            },
        );
        Ok(())
    }

    fn next_deadline(&self) -> Option<Instant> {
        let arb = self.arb.as_ref().and_then(|a| a.deadline(&self.routers));
        let watcher = self.watcher.as_ref().and_then(Watcher::deadline);
        self.routers
            .iter()
            .flat_map(|r| [r.fsm.poll_timeout(), r.garp.map(|g| g.due)])
            .chain([arb, watcher])
            .flatten()
            .min()
    }

    async fn on_datagram(&mut self, d: Datagram, now: Instant) {
        let (ip, vrrp) = match d.received {
            Received::Advert { ip, vrrp } => (ip, vrrp),
            Received::BadHeader(e) => {
                debug!(error = %e, "dropped a datagram with a bad IPv4 header");
                return;
            }
        };
        let vrrp = vrrp.as_slice();
        let src = ip.endpoints.src();
        let family = ip.endpoints.family();
        let Some(&vrid) = vrrp.get(1) else { return };
        for i in 0..self.routers.len() {
            let r = &mut self.routers[i];
            if r.ifindex != d.ifindex || r.cfg.vrid != vrid || r.family() != family {
                continue;
            }
            if r.is_unicast() && !r.cfg.unicast_peers.contains(&src) {
                *r.counters.adverts_rejected.entry("peer").or_default() += 1;
                let text = format!("advert from {src}, which is not a unicast peer");
                if r.should_log_reject(&text, now) {
                    warn!(instance = %r.cfg.name, vrid, %src, "rejected {text}");
                }
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
                    r.last_reject = None;
                    if alive {
                        self.heard_master(i, now);
                    }
                }
                Err(reject) => {
                    *r.counters
                        .adverts_rejected
                        .entry(reject.reason())
                        .or_default() += 1;
                    let text = reject.to_string();
                    if r.should_log_reject(&text, now) {
                        warn!(instance = %r.cfg.name, vrid, %src, reason = %text, "rejected advert");
                    }
                }
            }
            self.run_actions(i, now).await;
        }
    }

    async fn on_timers(&mut self, now: Instant) {
        self.arbiter_timers(now).await;
        if let Some(w) = &mut self.watcher {
            w.on_timers(now).await;
        }
        for i in 0..self.routers.len() {
            let r = &mut self.routers[i];
            if r.fsm.poll_timeout().is_some_and(|t| t <= now) {
                r.fsm.handle_timeout(now);
            }
            self.run_actions(i, now).await;
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
                    r.garp_sent(now);
                } else {
                    r.garp = None;
                }
            }
        }
    }

    async fn on_net_event(&mut self, ev: NetEvent, now: Instant) {
        match ev {
            NetEvent::Link(link) => {
                let tracker = interface_tracker(&link.name);
                for i in 0..self.routers.len() {
                    let r = &mut self.routers[i];
                    if r.fsm.tracker_up(&tracker).is_some_and(|up| up != link.up) {
                        info!(instance = %r.cfg.name, interface = %link.name, up = link.up, "link state changed");
                        let _ = r.fsm.handle_tracker(now, &tracker, link.up);
                        self.run_actions(i, now).await;
                    }
                }
            }
            NetEvent::AddrRemoved(a) => {
                if self.routers.iter().any(|r| r.ifindex == a.index)
                    && let Some(w) = &mut self.watcher
                {
                    w.on_addr(now, a.addr, false).await;
                }
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
            NetEvent::AddrAdded(a) => {
                if self.routers.iter().any(|r| r.ifindex == a.index)
                    && let Some(w) = &mut self.watcher
                {
                    w.on_addr(now, a.addr, true).await;
                }
            }
            NetEvent::Overrun => {
                warn!("netlink events were lost; re-reading links and VIPs");
                self.refresh_links(now).await;
                for i in 0..self.routers.len() {
                    if self.routers[i].fsm.state() == State::Master {
                        self.add_vips(i).await;
                    }
                }
            }
        }
    }

    /// Reads the link state of every tracked interface and feeds it in.
    async fn refresh_links(&mut self, now: Instant) {
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
                let r = &mut self.routers[i];
                let _ = r.fsm.handle_tracker(now, &interface_tracker(&name), up);
            }
            self.run_actions(i, now).await;
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
    async fn run_actions(&mut self, i: usize, now: Instant) {
        while let Some(action) = self.routers[i].fsm.poll_action() {
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
                    self.failover_incident(i, from, to, cause);
                    if let (Some(n), Some(word)) = (&self.notifiers[i], action.notify_word())
                        && let Err(e) = n.transition(word, priority)
                    {
                        warn!(instance = %name, error = %e, "notify not queued");
                    }
                    self.emit(Event::from_action(&name, vrid, &action));
                }
                Action::ClaimWithheld { ref reason } => {
                    let r = &self.routers[i];
                    warn!(instance = %r.cfg.name, vrid = r.cfg.vrid, reason = %reason, "claim withheld");
                    self.emit(Event::from_action(&r.cfg.name, r.cfg.vrid, &action));
                }
            }
        }
    }

    /// Pages a takeover forced by a silent master (`failover`, a warning: the
    /// pair now runs on this node) and resolves it when this node leaves MASTER
    /// again (the master came back and preempted, or we stopped). A fresh start
    /// (no master heard yet), a preemption of a lower master, a graceful
    /// handover or a claim the arbiter let through later is not paged.
    fn failover_incident(&mut self, i: usize, from: State, to: State, cause: &Cause) {
        let r = &self.routers[i];
        let key = format!("failover:{}", r.cfg.name);
        let vip = r.vip_addrs.first().copied();
        let silent = r.fsm.last_peer_master();
        let (raised, detail) = if to == State::Master
            && from == State::Backup
            && *cause == Cause::MasterSilent
            && let Some(silent) = silent
        {
            let vips: Vec<String> = r.vip_addrs.iter().map(ToString::to_string).collect();
            (
                true,
                format!(
                    "{} took over VRID {} ({}): its master {silent} went silent",
                    self.node,
                    r.cfg.vrid,
                    vips.join(", ")
                ),
            )
        } else if from == State::Master && to != State::Master {
            (
                false,
                format!("{} is no longer master ({cause})", self.node),
            )
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
        self.incidents.push((raise, raised));
    }

    async fn shutdown(&mut self, now: Instant) {
        for i in 0..self.routers.len() {
            self.routers[i].fsm.handle_shutdown(now);
            self.run_actions(i, now).await;
        }
        if let Some(arb) = &mut self.arb {
            arb.close();
        }
    }
}
