//! Owns the witness at work in `run`: the pure policy
//! (`splitguard_arbiter::witness`), the etcd edge (`crate::witness::store`) and
//! the peer confirmation path (`crate::witness::confirm`). It feeds the policy
//! what the store and the peer said, sends the confirmations the policy
//! allows, and hands the verdicts to the arbiter, which carries them out (the
//! objection goes to the arbiter policy's claim gate; contends and resigns to
//! the store; a release to the instance).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::config;
use crate::notify::events::Event;
use crate::status::{WitnessMember, WitnessStatus, WitnessVrid};
use crate::witness::confirm::ConfirmPath;
use crate::witness::store::{self, Member, Store, StoreCommand, StoreConfig, StoreEvent};
use anyhow::Context;
use splitguard_arbiter::Role;
use splitguard_arbiter::witness::confirm::{Datagram, Entry, Family, Nonces};
use splitguard_arbiter::witness::{Holder, Witness, WitnessConfig, WitnessVerdict};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::router::Router;

/// How long a failed contend waits before the next.
const CONTEND_RETRY: Duration = Duration::from_millis(500);
/// An overdue backup's wait before it contends, per point of priority below
/// 255 (lb01 at 150: 420 ms; lb02 at 100: 620 ms).
const CONTEND_STEP: Duration = Duration::from_millis(4);
/// Distinct store failures logged while it does not answer; then one line.
const LOGGED_ERRORS: usize = 8;
/// How many datagrams say a VRID was released after this node let it go.
const RELEASED_DATAGRAMS: u32 = 3;
/// A peer unheard this many confirm intervals counts as unheard in the status.
const PEER_HEARD_INTERVALS: u32 = 3;

/// What the witness's edges report to the event loop.
pub(super) enum WitnessInput {
    Store(StoreEvent),
    Confirm(Datagram),
}

/// The confirm path and what it knows of the peer.
struct Confirm {
    path: ConfirmPath,
    nonces: Nonces,
    /// The latest nonce the peer sent: echoed in our next datagram.
    peer_nonce: Option<u64>,
    interval: Duration,
    next_send: Instant,
    last_heard: Option<Instant>,
    /// The path's "port unreachable" count when the peer was last heard:
    /// more since means its daemon is gone.
    unreachable_at_heard: u64,
}

pub(super) struct WitnessPart {
    node: String,
    cluster: String,
    policy: Witness,
    store: Option<Store>,
    confirm: Option<Confirm>,
    /// Per router: its key.
    keys: Vec<String>,
    by_key: HashMap<String, usize>,
    by_slot: HashMap<(Family, u8), usize>,
    /// Per router: its VRID (for events).
    vrids: Vec<u8>,
    /// Events to record, taken by the arbiter after each step.
    events: Vec<Event>,
    /// Per router: the role and overdue state the policy was last told.
    roles: Vec<Role>,
    /// Per router: until when datagrams say this node released it.
    released_until: Vec<Option<Instant>>,
    overdue: Vec<bool>,
    lease: Option<i64>,
    members: Vec<Member>,
    /// The store failures logged since it last answered (each once).
    logged_errors: Vec<String>,
    published: Option<WitnessStatus>,
    /// Something the status shows may have moved since it was last built: it
    /// is rebuilt only then, not at every advert's step.
    dirty: bool,
}

impl WitnessPart {
    /// Starts the store client and the confirm path; their reports arrive on
    /// `inputs`.
    pub(super) async fn start(
        cfg: &config::Config,
        w: &config::Witness,
        routers: &[Router],
        inputs: mpsc::Sender<WitnessInput>,
        now: Instant,
    ) -> anyhow::Result<WitnessPart> {
        let names: Vec<String> = routers.iter().map(|r| r.cfg.name.clone()).collect();
        let keys: Vec<String> = routers
            .iter()
            .map(|r| store::vrid_key(&w.cluster, r.family() == Family::Ipv6, r.cfg.vrid))
            .collect();
        let mut policy = Witness::new(
            WitnessConfig {
                ttl: w.lease_ttl,
                confirm_valid: w.confirm_valid(),
                margin: w.margin(),
                contend_retry: CONTEND_RETRY,
            },
            &names,
            now,
        );
        for r in routers {
            // VRRP's order among backups that lose their master together: a
            // lower priority waits longer before it contends for the key.
            let after = CONTEND_STEP * u32::from(255 - r.cfg.priority);
            if let Err(e) = policy.set_contend_after(&r.cfg.name, after) {
                warn!(error = %e, "witness: contend delay not set");
            }
        }
        let tls = match &w.tls {
            Some(t) => Some(store::tls_options(t).context("[witness] TLS")?),
            None => None,
        };
        let (store_tx, mut store_rx) = mpsc::channel(256);
        let store = Store::start(
            StoreConfig {
                endpoints: w.etcd.clone(),
                cluster: w.cluster.clone(),
                node: cfg.node.clone(),
                ttl: w.lease_ttl,
                renew_every: w.renew_interval(),
                tls,
                user: match (&w.username, &w.password) {
                    (Some(u), Some(p)) => Some((u.clone(), p.expose().to_owned())),
                    _ => None,
                },
            },
            store_tx,
        );
        let fwd = inputs.clone();
        tokio::spawn(async move {
            while let Some(e) = store_rx.recv().await {
                if fwd.send(WitnessInput::Store(e)).await.is_err() {
                    break;
                }
            }
        });
        let confirm = match &w.confirm {
            Some(c) => {
                let (tx, mut rx) = mpsc::channel(64);
                let path = ConfirmPath::start(c.listen, c.peer, c.secret.expose().as_bytes(), tx)
                    .with_context(|| format!("[witness] confirm_listen {}", c.listen))?;
                tokio::spawn(async move {
                    while let Some((d, _at)) = rx.recv().await {
                        if inputs.send(WitnessInput::Confirm(d)).await.is_err() {
                            break;
                        }
                    }
                });
                info!(listen = %c.listen, peer = %c.peer, "witness confirm path open");
                Some(Confirm {
                    path,
                    nonces: Nonces::from_os_rng().context("[witness] nonces")?,
                    peer_nonce: None,
                    interval: c.interval,
                    next_send: now,
                    last_heard: None,
                    unreachable_at_heard: 0,
                })
            }
            None => None,
        };
        info!(endpoints = ?w.etcd, cluster = %w.cluster, ttl = ?w.lease_ttl, "witness on etcd");
        Ok(WitnessPart {
            node: cfg.node.clone(),
            cluster: w.cluster.clone(),
            policy,
            store: Some(store),
            confirm,
            by_key: keys
                .iter()
                .cloned()
                .enumerate()
                .map(|(i, k)| (k, i))
                .collect(),
            by_slot: routers
                .iter()
                .enumerate()
                .map(|(i, r)| ((r.family(), r.cfg.vrid), i))
                .collect(),
            vrids: routers.iter().map(|r| r.cfg.vrid).collect(),
            events: Vec::new(),
            roles: routers.iter().map(|_| Role::Backup).collect(),
            released_until: routers.iter().map(|_| None).collect(),
            overdue: routers.iter().map(|_| false).collect(),
            keys,
            lease: None,
            members: Vec::new(),
            logged_errors: Vec::new(),
            published: None,
            dirty: true,
        })
    }

    /// The earliest of the policy's deadline and the next confirmation.
    pub(super) fn deadline(&self) -> Option<Instant> {
        [
            self.policy.poll_timeout(),
            self.confirm.as_ref().map(|c| c.next_send),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Router `i`'s role and whether its master's adverts are overdue (as the
    /// arbiter policy says), after a step that touched it; the policy hears
    /// only changes.
    pub(super) fn on_router(
        &mut self,
        now: Instant,
        i: usize,
        name: &str,
        role: Role,
        overdue: bool,
    ) {
        if self.roles[i] != role {
            self.dirty = true;
            if self.roles[i] == Role::Master
                && let Some(c) = &mut self.confirm
            {
                // Its VIPs are gone with the role: tell the peer now, and in
                // the next few datagrams (one may be lost).
                self.released_until[i] = Some(now + c.interval * RELEASED_DATAGRAMS);
                c.next_send = now;
            }
            self.roles[i] = role;
            if let Err(e) = self.policy.handle_role(now, name, role) {
                warn!(instance = %name, error = %e, "witness: role not taken");
            }
            // A new role starts with the policy's fresh heartbeat.
            self.overdue[i] = false;
        }
        if self.overdue[i] != overdue {
            self.overdue[i] = overdue;
            if let Err(e) = self.policy.handle_overdue(now, name, overdue) {
                warn!(instance = %name, error = %e, "witness: heartbeat not taken");
            }
            // The master is lost and the key stands: the claim is refused.
            if overdue && let Some(Holder::Other(h)) = self.policy.holder(name) {
                info!(instance = %name, holder = %h, "witness: claim refused, the key is held");
                self.events.push(
                    Event::new("witness_lease")
                        .instance(name.to_owned(), self.vrids[i])
                        .field("outcome", "refused")
                        .field("holder", h.clone()),
                );
            }
        }
    }

    /// Router `i`'s master was heard: there is a master to confirm.
    pub(super) fn on_heard(&mut self, now: Instant, name: &str) {
        if let Err(e) = self.policy.handle_heard(now, name) {
            warn!(instance = %name, error = %e, "witness: heard not taken");
        }
    }

    /// What a store or peer edge reported. Returns the events to record.
    pub(super) fn on_input(
        &mut self,
        now: Instant,
        input: WitnessInput,
        routers: &[Router],
    ) -> Vec<Event> {
        let mut events = Vec::new();
        self.dirty = true;
        match input {
            WitnessInput::Store(e) => self.on_store(now, e, routers, &mut events),
            WitnessInput::Confirm(d) => self.on_confirm(now, d, routers),
        }
        events
    }

    fn on_store(
        &mut self,
        now: Instant,
        e: StoreEvent,
        routers: &[Router],
        events: &mut Vec<Event>,
    ) {
        match e {
            StoreEvent::Renewed {
                sent_at,
                lease,
                granted,
            } => {
                if granted {
                    self.lease = Some(lease);
                    events.push(
                        Event::new("witness_lease")
                            .field("outcome", "granted")
                            .field("lease", format!("{lease:x}")),
                    );
                }
                if !self.logged_errors.is_empty() {
                    self.logged_errors.clear();
                    info!("witness: etcd answers again");
                }
                self.policy.handle_renewed(now, sent_at);
            }
            StoreEvent::LeaseLost { reason } => {
                self.lease = None;
                warn!(%reason, "witness: lease lost");
                events.push(
                    Event::new("witness_lease")
                        .field("outcome", "lost")
                        .field("reason", reason.clone()),
                );
                self.policy.handle_lease_lost(now, reason);
            }
            StoreEvent::Error { reason, lease } => {
                // Each distinct failure once until the store answers again:
                // the loops fail in turn with different words.
                if !self.logged_errors.contains(&reason) {
                    if self.logged_errors.len() < LOGGED_ERRORS {
                        warn!(%reason, "witness: etcd call failed");
                    } else if self.logged_errors.len() == LOGGED_ERRORS {
                        warn!("witness: more etcd failures, not logged until it answers again");
                    }
                    if self.logged_errors.len() <= LOGGED_ERRORS {
                        self.logged_errors.push(reason.clone());
                    }
                }
                // The page says why the lease is not safe.
                if lease {
                    self.policy.handle_store_error(now, reason);
                }
            }
            StoreEvent::Holders { keys, full } => {
                let mut seen = vec![false; self.keys.len()];
                for (key, holder) in keys {
                    if let Some(&i) = self.by_key.get(&key) {
                        seen[i] = true;
                        self.holder(now, i, holder, routers);
                    }
                }
                if full {
                    for (i, s) in seen.into_iter().enumerate() {
                        if !s {
                            self.holder(now, i, Holder::Free, routers);
                        }
                    }
                }
            }
            StoreEvent::Contended { key, outcome } => {
                let Some(&i) = self.by_key.get(&key) else {
                    return;
                };
                let r = &routers[i];
                let ev = Event::new("witness_lease").instance(r.cfg.name.clone(), r.cfg.vrid);
                match &outcome {
                    Ok(()) => {
                        info!(instance = %r.cfg.name, vrid = r.cfg.vrid, %key, "witness: key acquired");
                        events.push(ev.field("outcome", "acquired"));
                    }
                    Err(holder) => {
                        info!(instance = %r.cfg.name, vrid = r.cfg.vrid, %holder, "witness: claim refused, the key is held");
                        events.push(
                            ev.field("outcome", "refused")
                                .field("holder", holder.clone()),
                        );
                    }
                }
                if let Err(e) = self.policy.handle_contended(now, &r.cfg.name, outcome) {
                    warn!(error = %e, "witness: contend outcome not taken");
                }
            }
            StoreEvent::ContendFailed { key, reason } => {
                if let Some(&i) = self.by_key.get(&key) {
                    let name = &routers[i].cfg.name;
                    if !self.logged_errors.contains(&reason)
                        && self.logged_errors.len() < LOGGED_ERRORS
                    {
                        warn!(instance = %name, %reason, "witness: contend failed");
                        self.logged_errors.push(reason.clone());
                    }
                    if let Err(e) = self.policy.handle_contend_failed(now, name, reason) {
                        warn!(error = %e, "witness: contend failure not taken");
                    }
                }
            }
            StoreEvent::Members(m) => self.members = m,
        }
    }

    fn holder(&mut self, now: Instant, i: usize, holder: Holder, routers: &[Router]) {
        let name = &routers[i].cfg.name;
        if self.policy.holder(name) == Some(&holder) {
            return;
        }
        debug!(instance = %name, ?holder, "witness: key holder");
        if let Err(e) = self.policy.handle_holder(now, name, holder) {
            warn!(error = %e, "witness: holder not taken");
        }
    }

    fn on_confirm(&mut self, now: Instant, d: Datagram, routers: &[Router]) {
        let Some(c) = &mut self.confirm else {
            return;
        };
        c.peer_nonce = Some(d.nonce());
        c.last_heard = Some(now);
        c.unreachable_at_heard = c.path.snapshot().port_unreachable;
        // Dated by our own nonce's send time: a delayed or replayed datagram
        // never extends a confirmation.
        let Some(as_of) = d.echo().and_then(|n| c.nonces.sent_at(n)) else {
            return;
        };
        for e in d.entries().iter().filter(|e| e.released) {
            if let Some(&i) = self.by_slot.get(&(e.family, e.vrid)) {
                let name = &routers[i].cfg.name;
                if let Err(err) = self.policy.handle_peer_released(now, name, as_of) {
                    warn!(error = %err, "witness: release not taken");
                }
            }
        }
        for e in d.entries() {
            if !e.hears_master {
                continue;
            }
            if let Some(&i) = self.by_slot.get(&(e.family, e.vrid)) {
                let name = &routers[i].cfg.name;
                if let Err(err) = self.policy.handle_confirmation(now, name, as_of) {
                    warn!(error = %err, "witness: confirmation not taken");
                }
            }
        }
    }

    /// Timers: the policy's deadlines, and a confirmation when one is due.
    pub(super) fn on_timers(&mut self, now: Instant, routers: &[Router]) {
        if self.policy.poll_timeout().is_some_and(|t| t <= now) {
            self.dirty = true;
            self.policy.handle_timeout(now);
        }
        let Some(c) = &mut self.confirm else {
            return;
        };
        if c.next_send > now {
            return;
        }
        c.next_send = now + c.interval;
        self.send_datagram(now, routers, false);
        // Whether the peer is still heard is a matter of time: the status
        // looks again at each send.
        self.dirty = true;
    }

    /// A datagram to the peer: the VRIDs this node confirms (a backup that
    /// hears its master and does not contend), and those it let go lately
    /// (all it mastered, at `exit`).
    fn send_datagram(&mut self, now: Instant, routers: &[Router], exit: bool) {
        let Some(c) = &mut self.confirm else {
            return;
        };
        let mut confirming = Vec::new();
        let mut entries = Vec::new();
        for (i, r) in routers.iter().enumerate() {
            let hears_master = self.policy.should_confirm(&r.cfg.name);
            let released = self.released_until[i].is_some_and(|t| now < t)
                || (exit && self.roles[i] == Role::Master);
            if hears_master {
                confirming.push(i);
            }
            if hears_master || released {
                entries.push(Entry {
                    family: r.family(),
                    vrid: r.cfg.vrid,
                    hears_master,
                    wants_preempt: false,
                    released,
                });
            }
        }
        let nonce = c.nonces.next(now);
        let d = match Datagram::new(self.node.clone(), nonce, c.peer_nonce, entries) {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, "witness: confirmation not built");
                return;
            }
        };
        match c.path.send(&d) {
            Ok(()) => {
                for i in confirming {
                    if let Err(e) = self.policy.handle_confirm_sent(now, &routers[i].cfg.name) {
                        warn!(error = %e, "witness: confirmation not recorded");
                    }
                }
            }
            Err(e) => debug!(error = %e, "witness: confirmation not sent"),
        }
    }

    /// The events the last steps produced.
    pub(super) fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    pub(super) fn poll_verdict(&mut self) -> Option<WitnessVerdict> {
        let v = self.policy.poll_verdict();
        self.dirty |= v.is_some();
        v
    }

    /// Carries a contend or a resign to the store.
    pub(super) fn command(&self, i: usize, contend: bool) {
        let Some(store) = &self.store else {
            return;
        };
        let key = self.keys[i].clone();
        let c = if contend {
            StoreCommand::Contend { key }
        } else {
            StoreCommand::Resign { key }
        };
        if !store.command(c) {
            warn!("witness: store command queue full");
        }
    }

    /// The status block, when it changed since the last call.
    pub(super) fn status_if_changed(
        &mut self,
        now: Instant,
        routers: &[Router],
    ) -> Option<WitnessStatus> {
        if !std::mem::replace(&mut self.dirty, false) {
            return None;
        }
        let st = self.status(now, routers);
        if self.published.as_ref() == Some(&st) {
            return None;
        }
        self.published = Some(st.clone());
        Some(st)
    }

    fn status(&self, now: Instant, routers: &[Router]) -> WitnessStatus {
        let margin = self.policy.config().margin;
        WitnessStatus {
            cluster: self.cluster.clone(),
            reachable: self.policy.unreachable().is_none(),
            unreachable: self.policy.unreachable().map(str::to_owned),
            lease: self.lease.map(|l| format!("{l:x}")),
            // Whole tenths of a second: the block changes at each renewal, not
            // at each step.
            lease_remaining_ms: self.policy.lease_safe_until().map(|t| {
                let ms = (t + margin).saturating_duration_since(now).as_millis();
                u64::try_from(ms / 100 * 100).unwrap_or(u64::MAX)
            }),
            members: self
                .members
                .iter()
                .map(|m| WitnessMember {
                    endpoint: m.endpoint.clone(),
                    reachable: m.reachable,
                    leader: m.leader,
                })
                .collect(),
            vrids: routers
                .iter()
                .map(|r| {
                    let holder = self.policy.holder(&r.cfg.name);
                    WitnessVrid {
                        instance: r.cfg.name.clone(),
                        vrid: r.cfg.vrid,
                        family: match r.family() {
                            Family::Ipv4 => "ipv4",
                            Family::Ipv6 => "ipv6",
                        }
                        .to_owned(),
                        holder: match holder {
                            Some(Holder::Ours) => Some(self.node.clone()),
                            Some(Holder::Other(h)) => Some(h.clone()),
                            _ => None,
                        },
                        ours: holder == Some(&Holder::Ours),
                    }
                })
                .collect(),
            peer: self.confirm.as_ref().map(|c| c.path.peer().to_string()),
            peer_dropped: self
                .confirm
                .as_ref()
                .map(|c| {
                    c.path
                        .snapshot()
                        .dropped_by_reason()
                        .filter(|&(_, n)| n > 0)
                        .map(|(r, n)| (r.label().to_owned(), n))
                        .collect()
                })
                .unwrap_or_default(),
            peer_heard: self.confirm.as_ref().map(|c| {
                c.last_heard.is_some_and(|t| {
                    now.saturating_duration_since(t) < c.interval * PEER_HEARD_INTERVALS
                })
            }),
        }
    }

    /// The direct health path's word on the peer's daemon, for fencing: None
    /// without a confirm path; `Some(false)` once its host answered "port
    /// unreachable" after its last datagram and its datagrams stopped (its
    /// daemon is gone, the host up); `Some(true)` otherwise. Silence alone
    /// is not a dead daemon: a cut management network is silent too.
    pub(super) fn peer_daemon_alive(&self, now: Instant) -> Option<bool> {
        let c = self.confirm.as_ref()?;
        let heard = c
            .last_heard
            .is_some_and(|t| now.saturating_duration_since(t) < c.interval * PEER_HEARD_INTERVALS);
        let refused = c.path.snapshot().port_unreachable > c.unreachable_at_heard;
        Some(heard || !refused)
    }

    /// Daemon exit, after the VIPs are gone: the lease is revoked so the peer
    /// may take the keys at once.
    pub(super) async fn shutdown(&mut self, routers: &[Router]) {
        self.send_datagram(Instant::now(), routers, true);
        if let Some(store) = self.store.take() {
            store.shutdown().await;
        }
    }
}
