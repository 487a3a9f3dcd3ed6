//! The watchdog at work: it observes the watched VIPs (netlink address events,
//! adverts and ARP seen on the segment, ownership probes), classifies what it
//! sees, and pages through the alert engine, the durable spool and the channels.
//! [`Watcher`] is the shared core; the daemon (`crate::daemon`) drives it, beside
//! its own VRRP instances in `splitguard run` and beside keepalived in
//! `splitguard watch`.
//!
//! Detection is event-driven: a VIP arriving here is seen at once by netlink,
//! and an ownership probe goes out at the same moment; another MAC answering for
//! the VIP (to the probe, or by its own gratuitous ARP) is classified as it
//! arrives, and a critical page leaves without group wait.

pub mod capture;
pub mod channels;
pub mod reply;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use splitguard_vrrp::gate::format_mac;
use splitguard_vrrp::wire::Family;
use splitguard_watchdog::Severity;
use splitguard_watchdog::core::classify::{
    Captured, Classifier, ClassifierConfig, Output, WatchedVip, key_for,
};
use splitguard_watchdog::core::engine::{ChannelInfo, Engine, EngineConfig, Raise};
use splitguard_watchdog::io::dispatch::{Delivery, Dispatcher, Outcome};
use splitguard_watchdog::io::spool::Spool;
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::net::neighbour::NeighbourSeen;
use crate::net::pace::{Probe, ProbeQueue, ProbeSocket};
use crate::notify::events::Event;
use crate::status::IncidentStatus;

/// How long an ownership probe round collects answers.
pub const PROBE_ROUND: Duration = Duration::from_millis(200);
/// Codes of closed incidents stay retired this long.
pub const CODE_REUSE_AFTER: chrono::Duration = chrono::Duration::hours(24);
/// How long after a restart the observers get to confirm restored incidents.
pub const RESTORE_GRACE: Duration = Duration::from_secs(20);

/// Where a watched VIP lives and how to probe for it from this node.
#[derive(Debug, Clone)]
pub struct VipSite {
    pub vip: IpAddr,
    pub ifindex: u32,
    pub mac: [u8; 6],
    /// This node's own address on that interface, of the VIP's family (probes
    /// are sent from it).
    pub source: IpAddr,
}

#[derive(Debug)]
struct Round {
    ends: Instant,
    owners: BTreeSet<String>,
}

/// A change of the alert engine's state that sends no page is written within
/// this, not at once. A crash in between loses only what the observations
/// raise again after the restart; a change that sends a page, or an ack, is
/// written before the page goes or the ack is answered, as always.
pub const SAVE_WITHIN: Duration = Duration::from_millis(200);

pub struct Watcher {
    classifier: Classifier,
    engine: Engine,
    /// The engine's revision when its state was last written to the spool: a
    /// change the engine made on its own (a page held by group wait or the rate
    /// limit) is saved too. A revision, not a copy of the state, so a step with
    /// hundreds of incidents open does not clone and compare them all.
    saved: u64,
    /// When a change that sends nothing (an incident opened or cleared with no
    /// page due yet) is written at the latest: see [`SAVE_WITHIN`].
    save_due: Option<Instant>,
    spool: Arc<Spool>,
    dispatcher: Dispatcher,
    channel_names: Vec<String>,
    sites: Vec<VipSite>,
    /// The first site of each VIP, and of each (interface, VIP): a neighbour
    /// message or a probe finds its site by lookup, not by a scan of every VIP.
    site_of: HashMap<IpAddr, usize>,
    site_on: HashMap<(u32, IpAddr), usize>,
    /// The paced probe queue of each interface and family.
    probes: BTreeMap<(u32, Family), Arc<ProbeQueue>>,
    /// A probe was refused since one was last taken (logged once per spell).
    probes_refused: bool,
    rounds: BTreeMap<IpAddr, Round>,
    /// The rounds by end, so a loop turn finds the next one without a scan.
    round_ends: BTreeSet<(Instant, IpAddr)>,
    /// Events for the owner's event stream (address seen, classified, sent).
    events: Vec<Event>,
    /// Incidents restored from the spool, checked again once the observers had
    /// time to see them (`restore_check_at`): what nobody raises again by then
    /// cleared while we were down, and is resolved.
    restored: Vec<String>,
    restore_check_at: Instant,
    /// Keys raised from outside (the arbiter) and still open.
    external: BTreeSet<String>,
    /// Ack-by-reply, when `[reply]` is configured.
    replies: Option<reply::ReplyDesk>,
    /// The senders, also for reply confirmations.
    channels: Vec<Arc<splitguard_watchdog::io::channels::Channel>>,
    /// The VIPs this node holds while another MAC answers for them too
    /// (raised critical by the classifier's first rule), with those MACs, by
    /// incident key: what fencing reads.
    two_owners: BTreeMap<String, (IpAddr, Vec<String>)>,
    /// `owners` requests from the control socket, answered when their probe
    /// round ends.
    owner_waiters: Vec<(
        IpAddr,
        tokio::sync::oneshot::Sender<crate::control::Response>,
    )>,
}

/// The engine settings from `[alerts]` and the channels.
pub fn engine_config(cfg: &Config, seed: u64) -> EngineConfig {
    let a = &cfg.alerts;
    let d = |x: Duration| chrono::Duration::from_std(x).unwrap_or(chrono::Duration::MAX);
    EngineConfig {
        node: cfg.node.clone(),
        group_wait: d(a.group_wait),
        group_wait_critical: d(a.group_wait_critical),
        repeat_interval: d(a.repeat_interval),
        escalate_after: d(a.escalate_after),
        rate_limit: a.rate_limit,
        rate_limit_window: d(a.rate_limit_window),
        send_resolved: a.send_resolved,
        code_reuse_after: CODE_REUSE_AFTER,
        channels: (0..cfg.channels.len())
            .map(|i| ChannelInfo {
                name: cfg.channel_name(i).unwrap_or_default(),
                tier: cfg.channels[i].tier(),
            })
            .collect(),
        seed,
    }
}

impl Watcher {
    /// Opens the spool (restoring open incidents), starts the channel workers and
    /// replays what an earlier run left undelivered.
    pub fn start(
        cfg: &Config,
        vips: Vec<WatchedVip>,
        sites: Vec<VipSite>,
        probes: BTreeMap<(u32, Family), Arc<ProbeQueue>>,
        reports: tokio::sync::mpsc::UnboundedSender<splitguard_watchdog::io::dispatch::Delivery>,
    ) -> anyhow::Result<Watcher> {
        let spool = Arc::new(
            Spool::open(&cfg.state_dir)
                .with_context(|| format!("state_dir {}", cfg.state_dir.display()))?,
        );
        let seed = std::process::id() as u64 ^ Utc::now().timestamp_micros() as u64;
        let ecfg = engine_config(cfg, seed);
        let channel_names: Vec<String> = ecfg.channels.iter().map(|c| c.name.clone()).collect();
        let engine = match spool.load_engine().context("spool")? {
            Some(state) => {
                let state = spool.recover(state).context("spool")?;
                if !state.open.is_empty() {
                    info!(
                        open = state.open.len(),
                        "restored open incidents from the spool"
                    );
                }
                Engine::restore(ecfg, state)
            }
            None => Engine::new(ecfg),
        };
        let channels = channels::build(cfg).context("channels")?;
        let dispatcher =
            Dispatcher::spawn(spool.clone(), channels.clone(), reports).context("spool replay")?;
        let classifier = Classifier::new(ClassifierConfig {
            node: cfg.node.clone(),
            vips,
            owner_memory: Duration::from_secs(3),
            advert_memory: Duration::from_secs(3),
            probe_every: Duration::from_secs(1),
            probe_idle: Duration::from_secs(10),
            clear_hold: Duration::from_secs(3),
            // A preemption's or handover's overlap ends when the old master
            // handles one advert: milliseconds. 75 ms is well past that and
            // keeps the page for a real split brain under 100 ms; while the
            // adverts show a preemption under way, a loaded host gets 250 ms.
            confirm_after: Duration::from_millis(75),
            confirm_after_preemption: Duration::from_millis(250),
        });
        let restored = engine.open().iter().map(|o| o.key.clone()).collect();
        Ok(Watcher {
            restored,
            restore_check_at: Instant::now() + RESTORE_GRACE,
            external: BTreeSet::new(),
            replies: reply::ReplyDesk::new(cfg),
            channels,
            owner_waiters: Vec::new(),
            two_owners: BTreeMap::new(),
            classifier,
            saved: engine.revision(),
            save_due: None,
            engine,
            spool,
            dispatcher,
            channel_names,
            site_of: first_index(sites.iter().map(|s| s.vip)),
            site_on: first_index(sites.iter().map(|s| (s.ifindex, s.vip))),
            sites,
            probes,
            probes_refused: false,
            rounds: BTreeMap::new(),
            round_ends: BTreeSet::new(),
            events: Vec::new(),
        })
    }

    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// A watched address appeared on or left one of our interfaces.
    pub async fn on_addr(&mut self, now: Instant, addr: IpAddr, present: bool) {
        if self.classifier.local(addr).is_none() {
            return;
        }
        info!(vip = %addr, present, "watched VIP {}", if present { "is here" } else { "left" });
        self.events.push(
            Event::new(if present { "vip_arrived" } else { "vip_left" })
                .field("vip", addr.to_string()),
        );
        self.classifier.handle_local(now, addr, present);
        self.settle(now).await;
    }

    /// ARP or neighbour discovery seen on an interface (ours filtered out
    /// here): another MAC speaking for a watched VIP.
    pub async fn on_neighbour(&mut self, now: Instant, n: &NeighbourSeen) {
        let Some(site) = self
            .site_on
            .get(&(n.ifindex, n.ip))
            .and_then(|&i| self.sites.get(i))
        else {
            return;
        };
        if n.mac == site.mac {
            return;
        }
        let mac = format_mac(&n.mac);
        if let Some(r) = self.rounds.get_mut(&site.vip) {
            r.owners.insert(mac.clone());
        }
        debug!(vip = %site.vip, %mac, "another MAC speaks for the VIP");
        self.classifier.handle_foreign_owner(now, site.vip, &mac);
        self.settle(now).await;
    }

    pub async fn on_advert(&mut self, now: Instant, captured: Captured) {
        self.classifier.handle_captured(now, captured);
        self.settle(now).await;
    }

    /// The node's own links are all down, or one is back
    /// ([`Dispatcher::set_offline`]).
    pub fn set_offline(&self, offline: bool) {
        self.dispatcher.set_offline(offline);
    }

    /// An incident from elsewhere (the arbiter inside `run`).
    pub async fn raise(&mut self, now: Instant, r: Raise) {
        self.external.insert(r.key.clone());
        let code = self.engine.handle_raise(Utc::now(), r);
        debug!(%code, "external incident raised");
        self.settle(now).await;
    }

    pub async fn resolve(&mut self, now: Instant, key: &str) {
        self.external.remove(key);
        self.engine.handle_resolve(Utc::now(), key);
        self.settle(now).await;
    }

    pub fn deadline(&self) -> Option<Instant> {
        // The engine keeps wall-clock time; the clocks are read only when it
        // has something due (this runs every turn of the loop).
        let engine = self.engine.poll_timeout().map(|t| {
            let ahead = (t - Utc::now()).to_std().unwrap_or(Duration::ZERO);
            Instant::now() + ahead
        });
        [
            self.classifier.poll_timeout(),
            engine,
            self.round_ends.first().map(|(at, _)| *at),
            (!self.restored.is_empty()).then_some(self.restore_check_at),
            self.save_due,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub async fn on_timers(&mut self, now: Instant) {
        let done: Vec<IpAddr> = self
            .round_ends
            .range(..=(now, IpAddr::from([255u8; 16])))
            .map(|(_, v)| *v)
            .collect();
        for vip in done {
            if let Some(r) = self.rounds.remove(&vip) {
                self.round_ends.remove(&(r.ends, vip));
                let owners: Vec<String> = r.owners.into_iter().collect();
                self.answer_owners(vip, &owners);
                self.classifier.handle_probe_result(now, vip, &owners);
            }
        }
        self.classifier.handle_timeout(now);
        let mut changed = false;
        if !self.restored.is_empty() && now >= self.restore_check_at {
            for key in std::mem::take(&mut self.restored) {
                if !self.classifier.is_raised(&key) && !self.external.contains(&key) {
                    info!(%key, "restored incident not seen again since the restart: resolving it");
                    self.engine.handle_resolve(Utc::now(), &key);
                }
            }
            // Saved with the resolved notices, not before them.
            changed = true;
        }
        self.engine.handle_timeout(Utc::now());
        self.settle_changed(now, changed).await;
    }

    /// Open incidents as `status` shows them.
    /// Moves whenever [`Watcher::incidents`] may have changed.
    pub fn incidents_revision(&self) -> u64 {
        self.engine.revision()
    }

    pub fn incidents(&self) -> Vec<IncidentStatus> {
        self.engine
            .open()
            .iter()
            .map(|o| IncidentStatus {
                code: o.code.clone(),
                kind: o.kind,
                severity: o.severity,
                acked: o.acked(),
                instance: o.instance.clone(),
                vip: o.vip.map(|v| v.to_string()),
                cause: Some(o.cause.clone()),
                since_ms: u64::try_from(o.started_at.timestamp_millis()).ok(),
            })
            .collect()
    }

    /// Classifier outputs into the engine and probes; engine sends into the
    /// spool and the channels. The engine state is on disk before any send.
    pub(crate) async fn settle(&mut self, now: Instant) {
        self.settle_changed(now, false).await;
    }

    /// [`Watcher::settle`] after the engine's state was changed outside it (an
    /// ack): the state is saved even when nothing is sent.
    pub(crate) async fn settle_changed(&mut self, now: Instant, changed: bool) {
        let wall: DateTime<Utc> = Utc::now();
        // `changed`: a change from outside (an ack) is written at once;
        // incidents raised or cleared here may wait (below).
        let mut dirty = false;
        while let Some(out) = self.classifier.poll_output() {
            match out {
                Output::Raise(r) => {
                    match r.vip {
                        Some(vip)
                            if r.severity == Severity::Critical
                                && !r.owners.is_empty()
                                && r.key == key_for(vip)
                                && self.classifier.local(vip) == Some(true) =>
                        {
                            self.two_owners
                                .insert(r.key.clone(), (vip, r.owners.clone()));
                        }
                        _ => {
                            self.two_owners.remove(&r.key);
                        }
                    }
                    let (kind, sev, cause) = (r.kind, r.severity, r.cause.clone());
                    let code = self.engine.handle_raise(wall, r);
                    warn!(kind = %kind, severity = %sev, %code, "incident: {cause}");
                    self.events.push(
                        Event::new("incident_classified")
                            .field("kind", kind.as_str())
                            .field("severity", sev.as_str())
                            .field("code", code)
                            .field("cause", cause),
                    );
                    dirty = true;
                }
                Output::Resolve { key } => {
                    self.two_owners.remove(&key);
                    info!(%key, "incident cleared");
                    self.engine.handle_resolve(wall, &key);
                    self.events
                        .push(Event::new("incident_cleared").field("key", key));
                    dirty = true;
                }
                Output::Probe { vip } => self.probe(now, vip).await,
            }
        }
        self.engine.handle_timeout(wall);
        let mut outgoing = Vec::new();
        while let Some(o) = self.engine.poll_send(wall) {
            outgoing.push(o);
        }
        if !changed && outgoing.is_empty() {
            if !dirty && self.engine.revision() == self.saved {
                return;
            }
            // Nothing to send: the write (a durable one, an fsync) can wait a
            // little, so a mass failover's hundreds of incidents cost a few
            // writes rather than one per step while the down timers wait.
            let due = *self.save_due.get_or_insert(now + SAVE_WITHIN);
            if now < due {
                return;
            }
        }
        let state = self.engine.state();
        // The state and its notifications reach the disk together (a crash
        // at any point loses none, doubles none), then they may go.
        let outgoing: Vec<_> = outgoing
            .into_iter()
            .filter_map(|o| Some((self.channel_names.get(o.channel)?.clone(), o.alert)))
            .collect();
        for entry in self.spool.commit(&state, outgoing) {
            self.dispatcher.submit(entry);
        }
        self.saved = self.engine.revision();
        self.save_due = None;
    }

    /// Writes a change still waiting for its save (at a stop).
    pub(crate) async fn save_pending(&mut self) {
        if self.save_due.is_some() {
            self.save_due = Some(Instant::now());
            self.settle_changed(Instant::now(), false).await;
        }
    }

    /// Probes `vip` through its interface's paced queue; its round collects
    /// answers until [`PROBE_ROUND`] after the request leaves.
    async fn probe(&mut self, now: Instant, vip: IpAddr) {
        let Some(site) = self.site(vip) else {
            return;
        };
        let Some(queue) = self.probes.get(&(site.ifindex, Family::of(vip))) else {
            return;
        };
        let Some(probe) = Probe::who_has(site.mac, site.source, vip) else {
            return;
        };
        match queue.send(now, probe) {
            Ok(at) => {
                self.probes_refused = false;
                let ends = at + PROBE_ROUND;
                let round = self.rounds.entry(vip).or_insert(Round {
                    ends,
                    owners: BTreeSet::new(),
                });
                self.round_ends.remove(&(round.ends, vip));
                round.ends = round.ends.max(ends);
                self.round_ends.insert((round.ends, vip));
            }
            Err(e) => {
                // The round (if any) ends on its own; a waiting `owners` request
                // is answered then, or by the next probe.
                if !std::mem::replace(&mut self.probes_refused, true) {
                    warn!(%vip, error = %e, "ownership probes refused until the queue drains");
                }
            }
        }
    }

    /// The VIPs held here that another MAC answers for too, with its MACs.
    pub fn two_owners(&self) -> impl Iterator<Item = (IpAddr, &[String])> {
        self.two_owners
            .values()
            .map(|(vip, owners)| (*vip, owners.as_slice()))
    }

    /// See [`Classifier::adverts_for`].
    pub fn adverts_for(&self, vip: IpAddr) -> Vec<(IpAddr, u8, bool)> {
        self.classifier.adverts_for(vip)
    }

    /// Asks who speaks for `target` (an ARP request or neighbour
    /// solicitation from `vip`'s interface and source): its answer comes back
    /// as a neighbour message answering us. False when it could not be queued.
    pub fn probe_address(&self, now: Instant, vip: IpAddr, target: IpAddr) -> bool {
        let Some(site) = self.site(vip) else {
            return false;
        };
        if Family::of(target) != Family::of(vip) {
            return false;
        }
        let Some(queue) = self.probes.get(&(site.ifindex, Family::of(vip))) else {
            return false;
        };
        Probe::who_has(site.mac, site.source, target).is_some_and(|p| queue.send(now, p).is_ok())
    }

    fn site(&self, vip: IpAddr) -> Option<&VipSite> {
        self.site_of.get(&vip).and_then(|&i| self.sites.get(i))
    }
}

/// The index of each key's first occurrence.
fn first_index<K: std::hash::Hash + Eq>(keys: impl Iterator<Item = K>) -> HashMap<K, usize> {
    let mut map = HashMap::new();
    for (i, k) in keys.enumerate() {
        map.entry(k).or_insert(i);
    }
    map
}

/// A delivery report as an event-stream line (the bench reads send times here).
pub fn delivery_event(d: &Delivery) -> Event {
    let ev = Event::new("alert_delivery")
        .at(d.at.into())
        .field("channel", d.channel.clone())
        .field("code", d.code.clone())
        .field("kind", d.kind.clone())
        .field("status", d.status.clone())
        .field("idempotency_key", d.idempotency_key.clone());
    // Each Alertmanager instance's result, as `instances_<outcome>` lists of
    // URLs (credentials masked).
    let mut ev = ev;
    for word in ["accepted", "failed", "gave_up"] {
        let urls: Vec<String> = d
            .instances
            .iter()
            .filter(|i| i.result.as_str() == word)
            .map(|i| i.url.clone())
            .collect();
        if !urls.is_empty() {
            ev = ev.field(&format!("instances_{word}"), urls);
        }
    }
    match &d.outcome {
        Outcome::Delivered { reference } => ev
            .field("outcome", "delivered")
            .field("reference", reference.clone().unwrap_or_default()),
        Outcome::Retrying { attempt, error } => ev
            .field("outcome", "retrying")
            .field("attempt", *attempt)
            .field("error", error.clone()),
        Outcome::Failed { error } => ev.field("outcome", "failed").field("error", error.clone()),
        Outcome::Superseded { by } => ev.field("outcome", "superseded").field("by", by.clone()),
        Outcome::Copies => ev.field("outcome", "copy"),
    }
}

/// Starts what brings replies in, per `[reply]`: the HTTP listener (`listen`)
/// and the IMAP mailbox poller (`imap`). The poller marks handled mail with a
/// keyword of this node's own, so two nodes sharing one reply mailbox both see
/// every reply, and each acts on the codes open on it. Decisions come back
/// through the returned receiver; a mail reply has no one waiting for an HTTP
/// status, so its answer channel goes nowhere.
pub async fn start_reply_listener(
    cfg: &Config,
) -> anyhow::Result<
    Option<tokio::sync::mpsc::Receiver<splitguard_watchdog::io::reply::http::ReplyEvent>>,
> {
    use splitguard_watchdog::io::reply::http::ReplyEvent;
    use splitguard_watchdog::io::reply::imap::{
        ImapSpec, ImapTls, PollerOptions, spawn_mailbox_poller_with,
    };
    let Some(r) = &cfg.reply else { return Ok(None) };
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    if let Some(addr) = r.listen {
        let app = splitguard_watchdog::io::reply::http::router(
            splitguard_watchdog::io::reply::http::HttpSpec {
                public_url: r.public_url.as_ref().map(|u| u.as_str().to_owned()),
                twilio_auth_token: r.twilio_auth_token.clone(),
                generic_secret: r.generic_secret.clone(),
            },
            tx.clone(),
        );
        // Loaded before binding, so a bad certificate or key stops the start.
        let tls = r
            .tls()
            .map(|files| splitguard_watchdog::io::listener::load_tls(&files.into()))
            .transpose()
            .context("reply.tls_cert/tls_key")?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("reply listener on {addr}"))?;
        info!(%addr, tls = tls.is_some(), "reply listener up");
        tokio::spawn(splitguard_watchdog::io::listener::serve(
            listener,
            app,
            tls,
            splitguard_watchdog::io::listener::Limits::default(),
        ));
    }
    if let Some(m) = &r.imap {
        let spec = ImapSpec {
            host: m.host.clone(),
            port: m.port,
            tls: match m.tls {
                crate::config::Tls::Implicit => ImapTls::Implicit,
                crate::config::Tls::Starttls => ImapTls::Starttls,
                crate::config::Tls::None => ImapTls::None,
            },
            username: m.username.clone(),
            password: m.password.clone(),
            mailbox: m.mailbox.clone(),
            poll_interval: m.poll_interval,
        };
        let (mail_tx, mut mail_rx) = tokio::sync::mpsc::channel(64);
        let poller = spawn_mailbox_poller_with(
            spec,
            PollerOptions::default().keyword_for_node(&cfg.node),
            mail_tx,
        );
        info!(host = %m.host, mailbox = %m.mailbox, "reply mailbox polled");
        tokio::spawn(async move {
            // The poller lives as long as this task holds it.
            let _poller = poller;
            while let Some(reply) = mail_rx.recv().await {
                let (answer, _) = tokio::sync::oneshot::channel();
                if tx
                    .send(ReplyEvent::Request { reply, answer })
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
    }
    Ok(Some(rx))
}

impl Watcher {
    /// Audits a reply the listener refused before a decision (signature, rate).
    pub fn audit_refused(&mut self, rec: splitguard_watchdog::core::reply::gate::AuditRecord) {
        if let Some(desk) = self.replies.as_mut() {
            desk.audit(rec);
        }
    }

    /// The latest reply decisions, for `status`.
    pub fn recent_replies(&self) -> Vec<crate::status::ReplyStatus> {
        self.replies
            .iter()
            .flat_map(|d| d.recent())
            .map(|r| crate::status::ReplyStatus {
                at_ms: u64::try_from(r.at.timestamp_millis()).unwrap_or(0),
                via: format!("{:?}", r.via).to_ascii_lowercase(),
                from: r.from.clone(),
                command: r.command.map(str::to_owned),
                code: r.code.clone(),
                accepted: r.accepted,
                reason: r.reason.clone(),
            })
            .collect()
    }

    /// One line on the watched VIPs and open incidents, for STATUS replies.
    pub fn summary(&self, node: &str) -> String {
        let here: Vec<String> = self
            .sites
            .iter()
            .filter(|s| self.classifier.local(s.vip) == Some(true))
            .map(|s| s.vip.to_string())
            .collect();
        let open: Vec<String> = self
            .engine
            .open()
            .iter()
            .map(|o| {
                format!(
                    "{} {}{}",
                    o.code,
                    o.kind,
                    if o.acked() { " (acked)" } else { "" }
                )
            })
            .collect();
        format!(
            "{node} holds {}; open: {}",
            if here.is_empty() {
                "no watched VIP".to_owned()
            } else {
                here.join(",")
            },
            if open.is_empty() {
                "none".to_owned()
            } else {
                open.join(", ")
            }
        )
    }
}

impl Watcher {
    /// A control-socket `owners` request: probes the VIP now (joining a round
    /// already running) and answers when the round ends. Not watched: an error.
    pub async fn request_owners(
        &mut self,
        now: Instant,
        vip: IpAddr,
        reply: tokio::sync::oneshot::Sender<crate::control::Response>,
    ) {
        use crate::control::{ErrorKind, Response};
        if self.site(vip).is_none() {
            let _ = reply.send(Response::error(
                ErrorKind::BadRequest,
                format!("{vip} is not a VIP this daemon watches"),
            ));
            return;
        }
        self.owner_waiters.push((vip, reply));
        self.probe(now, vip).await;
    }

    fn answer_owners(&mut self, vip: IpAddr, foreign: &[String]) {
        let local = self.classifier.local(vip) == Some(true);
        let mut owners: BTreeSet<String> = foreign.iter().cloned().collect();
        if local && let Some(site) = self.site(vip) {
            owners.insert(format_mac(&site.mac));
        }
        let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.owner_waiters)
            .into_iter()
            .partition(|(v, _)| *v == vip);
        self.owner_waiters = rest;
        for (_, reply) in mine {
            let _ = reply.send(crate::control::Response::owners(
                crate::control::protocol::VipOwners {
                    vip,
                    owners: owners.iter().cloned().collect(),
                    local,
                },
            ));
        }
    }

    /// An ack from the control socket (an operator on the node).
    pub async fn ack_local(
        &mut self,
        now: Instant,
        code: &str,
        by: &str,
    ) -> crate::control::Response {
        use crate::control::{ErrorKind, Response};
        let result = self.engine.handle_ack(Utc::now(), code, by);
        // Saved with the notices the ack sends, not before them.
        self.settle_changed(now, true).await;
        match result {
            Ok(inc) => Response::done(format!("{code} ({}) acked by {by}", inc.kind)),
            Err(e) => Response::error(ErrorKind::BadRequest, e.to_string()),
        }
    }
}

/// Forwards what is seen on `ifindex` (ARP or neighbour discovery, by the
/// socket's kind) about `watched` addresses (a busy segment carries much more),
/// and answers addressed to one of `ours` (answers to this node's own requests,
/// such as early takeover's confirmation of a peer's address); ends when the
/// receiver is gone. A persistent receive error is retried every 500 ms, never
/// in a tight loop.
pub fn spawn_neighbour_receiver(
    ifindex: u32,
    sock: ProbeSocket,
    watched: HashSet<IpAddr>,
    ours: HashSet<IpAddr>,
    tx: tokio::sync::mpsc::Sender<NeighbourSeen>,
) {
    let wanted = move |n: &NeighbourSeen| {
        watched.contains(&n.ip) || n.answer_to.is_some_and(|a| ours.contains(&a))
    };
    tokio::spawn(async move {
        loop {
            let seen = sock.recv(ifindex).await;
            match seen {
                Ok(Some(n)) if wanted(&n) => {
                    if tx.send(n).await.is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    warn!(ifindex, error = %e, "neighbour receive failed");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    });
}

/// Opens the VRRP capture on `ifindex` and forwards what it reads.
pub fn spawn_capture(
    ifindex: u32,
    interface: &str,
    tx: tokio::sync::mpsc::Sender<Captured>,
) -> anyhow::Result<()> {
    let cap = capture::VrrpCapture::open(ifindex)
        .with_context(|| format!("capture VRRP on {interface} (needs CAP_NET_RAW)"))?;
    tokio::spawn(async move {
        loop {
            match cap.recv().await {
                Ok(a) => {
                    if tx.send(a).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    warn!(ifindex, error = %e, "VRRP capture failed");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    });
    Ok(())
}
