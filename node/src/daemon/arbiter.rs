//! Owns the arbiter at work in `run`: the policy and the evidence it is fed (probe
//! results, per-instance heartbeats and ownership rounds, roles), the hardware
//! watchdog and the reboot (ledger-limited, or logged with `--dry-run`). It carries
//! the verdicts out on the instances (claim gate, demotion, release) and hands its
//! incidents to the log, the event stream and the watcher's outbox.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::config;
use crate::config::probe_plan::{self, SourceKind};
use crate::net::neighbour::NeighbourSeen;
use crate::net::pace::Probe;
use crate::notify::events::Event;
use crate::status::{self, ArbiterStatus};
use crate::track;
use anyhow::{Context, bail};
use splitguard_arbiter::hw_watchdog::HwWatchdog;
use splitguard_arbiter::probe::ProbeResult;
use splitguard_arbiter::reboot::{self, RebootDecision, RebootLedger, RebootLimits};
use splitguard_arbiter::{
    Heartbeat, Incident, InstanceSpec, Isolation, OnIsolated, OwnershipRound,
    PROBE_REQUESTS_PER_ROUND, Policy, PolicyConfig, Role, Verdict, yield_backoff,
};
use splitguard_vrrp::gate::{ClaimGate, WithholdReason, format_mac};
use splitguard_vrrp::instance::{Cause, State};
use splitguard_watchdog::IncidentKind;
use splitguard_watchdog::core::engine::Raise;
use std::os::unix::fs::DirBuilderExt;
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use super::early::{Early, EchoResult};
use super::instances::Instances;
use super::outputs::Outputs;
use super::probers::{Homes, Probers};
use super::router::Router;
use super::schedule::Deadlines;
use super::witness::{WitnessInput, WitnessPart};
use splitguard_arbiter::witness::{WitnessIncident, WitnessVerdict};

/// How long the reboot command may take before it is reported as hung (the
/// hardware watchdog, when configured, is the backstop).
const REBOOT_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the hardware watchdog is fed while the node is healthy.
const WATCHDOG_FEED_EVERY: Duration = Duration::from_secs(1);
/// Bound on policy ↔ state machine exchanges per event; each round trip is a
/// verdict answered by a state change, and a handful settles everything.
const SETTLE_ROUNDS: usize = 8;
/// The ledger `--dry-run` keeps beside the real one.
const DRY_RUN_LEDGER_FILE: &str = "reboot-ledger.dry-run.jsonl";

pub(super) struct Arbiter {
    policy: Policy,
    cfg: config::Arbiter,
    heartbeats: Vec<Heartbeat>,
    rounds: Vec<Option<OwnershipRound>>,
    /// The routers that hold each (interface, VIP): an ARP or neighbour
    /// discovery message finds the rounds it answers by lookup, not by a scan of
    /// every round.
    vip_routers: HashMap<(u32, IpAddr), Vec<usize>>,
    /// A probe was refused (the interface's queue is full) since one was last
    /// taken: logged once per such spell, not once per probe.
    probes_refused: bool,
    /// Per router: when its overdue check or its round's end is next due.
    deadlines: Deadlines,
    /// The role last told to the policy, per router.
    roles: Vec<Role>,
    dry_run: bool,
    state_dir: PathBuf,
    /// The hardware watchdog and when it is next fed.
    watchdog: Option<(HwWatchdog, Instant)>,
    /// A real reboot was allowed, recorded and started: the hardware watchdog is
    /// no longer fed, so it resets the node if the command hangs.
    rebooting: bool,
    /// The status block as last published.
    published: Option<ArbiterStatus>,
    /// Early takeover, when on.
    early: Option<Early>,
    /// The etcd witness, when `[witness]` is configured.
    pub(super) witness: Option<WitnessPart>,
    /// `[arbiter] enabled`: false when it runs only so fencing knows whether
    /// this node is isolated; then its verdicts are not carried out.
    gating: bool,
}

fn role_of(state: State) -> Role {
    match state {
        State::Master => Role::Master,
        State::Fault => Role::Fault,
        State::Backup | State::Initialize => Role::Backup,
    }
}

impl Arbiter {
    fn new(
        cfg: &config::Config,
        references: Vec<IpAddr>,
        routers: &[Router],
        now: Instant,
        dry_run: bool,
    ) -> anyhow::Result<Arbiter> {
        let a = &cfg.arbiter;
        let policy = Policy::new(
            PolicyConfig {
                references,
                peers: a.peers.clone(),
                quorum: a.quorum as usize,
                rise: a.probe.rise,
                fall: a.probe.fall,
                demote_weight: a.demote_weight,
                on_isolated: a.on_isolated,
                reboot_after: a.reboot_after.unwrap_or(Duration::MAX),
                ownership_probe: a.ownership_probe,
                instances: routers
                    .iter()
                    .map(|r| InstanceSpec {
                        name: r.cfg.name.clone(),
                        vips: r.vip_addrs.clone(),
                        yield_backoff: yield_backoff(r.cfg.priority, r.primary),
                    })
                    .collect(),
            },
            now,
        )
        .map_err(|e| anyhow::anyhow!("arbiter: {e}"))?;
        let watchdog = match &a.watchdog_device {
            Some(path) => Some((
                HwWatchdog::open(path)
                    .map_err(|e| anyhow::anyhow!("arbiter.watchdog_device: {e}"))?,
                now,
            )),
            None => None,
        };
        Ok(Arbiter {
            policy,
            cfg: a.clone(),
            heartbeats: routers.iter().map(|_| Heartbeat::new(now)).collect(),
            rounds: routers.iter().map(|_| None).collect(),
            vip_routers: vip_routers(routers),
            probes_refused: false,
            deadlines: Deadlines::new(routers.len()),
            roles: routers.iter().map(|_| Role::Backup).collect(),
            dry_run,
            state_dir: cfg.state_dir.clone(),
            watchdog,
            rebooting: false,
            published: None,
            early: None,
            witness: None,
            gating: a.enabled,
        })
    }

    pub(super) fn status(&self) -> ArbiterStatus {
        let list = |r: &splitguard_arbiter::Reachability| {
            r.targets()
                .map(|(ip, s)| status::Reachability {
                    ip,
                    reachable: s.is_reachable(),
                })
                .collect()
        };
        ArbiterStatus {
            isolated: self.policy.isolation() == Isolation::Isolated,
            references: list(self.policy.references()),
            peers: list(self.policy.peers()),
            quorum: Some(self.policy.quorum()),
        }
    }

    /// The status block when it changed since the last call, else None: the
    /// loop turns on every advert, and the block moves only with a probe.
    pub(super) fn status_if_changed(&mut self) -> Option<ArbiterStatus> {
        fn same(list: &[status::Reachability], r: &splitguard_arbiter::Reachability) -> bool {
            let mut n = 0;
            for (ip, s) in r.targets() {
                match list.get(n) {
                    Some(l) if l.ip == ip && l.reachable == s.is_reachable() => n += 1,
                    _ => return false,
                }
            }
            n == list.len()
        }
        if let Some(last) = &self.published
            && last.isolated == (self.policy.isolation() == Isolation::Isolated)
            && last.quorum == Some(self.policy.quorum())
            && same(&last.references, self.policy.references())
            && same(&last.peers, self.policy.peers())
        {
            return None;
        }
        let st = self.status();
        self.published = Some(st.clone());
        Some(st)
    }

    /// The earliest of the policy's timer, any router's overdue check or round
    /// end (as of the last step's end) and the hardware watchdog's feed.
    pub(super) fn deadline(&self) -> Option<Instant> {
        [
            self.policy.poll_timeout(),
            self.deadlines.first(),
            self.watchdog.as_ref().map(|w| w.1),
            self.early.as_ref().and_then(Early::deadline),
            self.witness.as_ref().and_then(WitnessPart::deadline),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Ends a step: the touched routers' overdue checks and round ends are
    /// re-read (call before [`Instances::end_step`] forgets which they were).
    pub(super) fn end_step(&mut self, now: Instant, inst: &Instances) {
        let routers = inst.routers();
        for i in inst.touched() {
            let r = &routers[i];
            let overdue_check = (r.fsm.state() == State::Backup)
                .then(|| self.heartbeats[i].deadline(r.fsm.master_adver_interval()))
                .flatten();
            let round_end = self.rounds[i].as_ref().map(|x| x.ends);
            // A fresh claim's probation starts probing after its grace.
            let probation = self.policy.probation_probe_at(now, &r.cfg.name);
            self.deadlines.set(
                i,
                [overdue_check, round_end, probation]
                    .into_iter()
                    .flatten()
                    .min(),
            );
        }
    }

    /// Cleanly disarms the hardware watchdog (daemon exit).
    pub(super) fn close(&mut self) {
        if let Some((w, _)) = self.watchdog.take()
            && let Err(e) = w.close_disarm()
        {
            warn!(error = %e, "hardware watchdog not disarmed cleanly");
        }
    }
}

impl Arbiter {
    /// Starts the arbiter: resolves the references (the default gateway when none
    /// are configured), builds the policy, starts the ICMP probe loop and the ARP
    /// receivers that collect ownership answers.
    pub(super) async fn start(
        cfg: &config::Config,
        dry_run: bool,
        inst: &Instances,
        probes: mpsc::Sender<ProbeResult>,
        echoes: mpsc::Sender<EchoResult>,
        witness: mpsc::Sender<WitnessInput>,
    ) -> anyhow::Result<Arbiter> {
        let now = Instant::now();
        let mut references = cfg.arbiter.references.clone();
        // Where each echo leaves from: checked with the config, plus the
        // default gateways found here.
        let mut routes = cfg.arbiter.routes.clone();
        if references.is_empty() {
            for r in inst.routers() {
                match inst.nl.default_gateway(r.ifindex, r.family()).await {
                    Ok(Some(gw)) if !references.contains(&gw) => {
                        references.push(gw);
                        if !routes.iter().any(|x| x.target == gw) {
                            // An instance's own gateway is of its family: it
                            // always has a route, from the instance's interface.
                            match probe_plan::route(gw, &cfg.instances, Some(&r.cfg.interface)) {
                                Ok(route) => routes.push(route),
                                Err(why) => bail!("default gateway {gw}: {why}"),
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        warn!(interface = %r.cfg.interface, error = %e, "default gateway lookup failed")
                    }
                }
            }
            match references.as_slice() {
                [] => warn!(
                    "arbiter: no `references` and no default gateway: isolation is not detected; the ownership probe still guards claims"
                ),
                refs => {
                    info!(references = ?refs, "arbiter: no `references` configured, using the default gateway")
                }
            }
        }
        if cfg.arbiter.on_isolated == OnIsolated::Reboot {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&cfg.state_dir)
                .with_context(|| format!("state_dir {}", cfg.state_dir.display()))?;
        }
        let mut arb = Arbiter::new(cfg, references, inst.routers(), now, dry_run)?;
        // One prober per interface and source kind the routes and the liveness
        // echoes need: an IPv4 master is echoed from the instance's IPv4
        // address, an IPv6 master (which speaks from its link-local) from ours.
        let mut needs: BTreeSet<(String, SourceKind)> = routes
            .iter()
            .map(|r| (r.interface.clone(), r.source))
            .collect();
        if cfg.arbiter.early_takeover {
            for r in inst.routers() {
                needs.insert((r.cfg.interface.clone(), SourceKind::for_target(r.primary)));
            }
        }
        let probers = Arc::new(Probers::open(&needs, &Homes::of_instances(inst)).await?);
        if !probers.is_empty() && arb.gating {
            arb.early = Early::start(&cfg.arbiter, inst, echoes, Arc::clone(&probers))
                .context("early takeover")?;
        }
        let p = &cfg.arbiter.probe;
        probers.spawn_loops(&routes, p.interval, p.timeout, &probes)?;
        if let Some(w) = &cfg.witness {
            arb.witness = Some(
                WitnessPart::start(cfg, w, inst.routers(), witness, now)
                    .await
                    .context("witness")?,
            );
        }
        Ok(arb)
    }

    /// A probe result for a reference or peer.
    pub(super) async fn on_probe(
        &mut self,
        p: ProbeResult,
        now: Instant,
        inst: &mut Instances,
        out: &mut Outputs,
    ) {
        let target = p.target;
        if let Err(e) = self.policy.handle_probe(now, target, p.ok) {
            warn!(%target, error = %e, "probe result not taken");
        }
        self.settle(now, inst, out).await;
    }

    /// The node's own links changed: `Some(interfaces)` while all are down.
    pub(super) async fn on_links(
        &mut self,
        down: Option<Vec<String>>,
        now: Instant,
        inst: &mut Instances,
        out: &mut Outputs,
    ) {
        self.policy.handle_link(now, down);
        self.settle(now, inst, out).await;
    }

    /// What the witness's store or peer said.
    pub(super) async fn on_witness(
        &mut self,
        input: WitnessInput,
        now: Instant,
        inst: &mut Instances,
        out: &mut Outputs,
    ) {
        if let Some(w) = &mut self.witness {
            for ev in w.on_input(now, input, inst.routers()) {
                out.emit(Some(ev));
            }
        }
        self.settle(now, inst, out).await;
    }

    /// An early-takeover echo's outcome.
    pub(super) async fn on_echo(
        &mut self,
        e: EchoResult,
        now: Instant,
        inst: &mut Instances,
        out: &mut Outputs,
    ) {
        if let Some(early) = &mut self.early {
            early.on_echo(now, e);
        }
        self.settle(now, inst, out).await;
    }

    /// An accepted advert for router `i`: the master is alive.
    pub(super) fn heard_master(&mut self, routers: &[Router], i: usize, now: Instant) {
        let arb = self;
        let r = &routers[i];
        if let Some(early) = &mut arb.early
            && let Some(src) = r.fsm.last_peer_master()
        {
            early.heard(now, src);
        }
        // A master hears another router only while two advertise: VRRP settles it
        // by priority, so a probation (see the policy) ends too.
        if let Some(w) = &mut arb.witness {
            w.on_heard(now, &r.cfg.name);
        }
        let master = r.fsm.state() == State::Master;
        if arb.heartbeats[i].heard(now) || master {
            let name = &r.cfg.name;
            if !master {
                debug!(instance = %name, "adverts resumed");
            }
            arb.rounds[i] = None;
            if let Err(e) = arb.policy.handle_heartbeat(now, name, false) {
                warn!(instance = %name, error = %e, "heartbeat not taken");
            }
        }
    }

    /// Another node speaking for an address (ARP or neighbour discovery):
    /// evidence for any running ownership round that probes that address.
    pub(super) fn on_neighbour(&mut self, routers: &[Router], n: &NeighbourSeen) {
        if let Some(early) = &mut self.early {
            early.on_neighbour(routers, n);
        }
        let Some(holders) = self.vip_routers.get(&(n.ifindex, n.ip)) else {
            return;
        };
        for &i in holders {
            if n.mac == routers[i].mac {
                continue;
            }
            if let Some(round) = &mut self.rounds[i] {
                round.answer(n.ip, n.mac);
            }
        }
    }

    /// Timers: overdue adverts, ownership rounds ending, the reboot deadline, the
    /// hardware watchdog.
    pub(super) async fn on_timers(
        &mut self,
        now: Instant,
        inst: &mut Instances,
        out: &mut Outputs,
    ) {
        let arb = &mut *self;
        for i in arb.deadlines.due(now) {
            // Its overdue state or its round moves: re-read its deadline at the end.
            inst.touch(i);
            let r = &inst.routers()[i];
            if r.fsm.state() == State::Backup
                && arb.heartbeats[i].check(now, r.fsm.master_adver_interval())
            {
                debug!(instance = %r.cfg.name, "master's advert overdue");
                if let Err(e) = arb.policy.handle_heartbeat(now, &r.cfg.name, true) {
                    warn!(instance = %r.cfg.name, error = %e, "heartbeat not taken");
                }
            }
            if arb.rounds[i].as_ref().is_some_and(|x| x.ends <= now)
                && let Some(round) = arb.rounds[i].take()
            {
                for (vip, mac) in round.report() {
                    if let Some(mac) = mac {
                        debug!(instance = %r.cfg.name, %vip, mac = %format_mac(&mac), "VIP answered by another MAC");
                    }
                    if let Err(e) = arb.policy.handle_ownership(now, &r.cfg.name, vip, mac) {
                        warn!(instance = %r.cfg.name, error = %e, "ownership answer not taken");
                    }
                }
            }
        }
        if arb.policy.poll_timeout().is_some_and(|t| t <= now) {
            arb.policy.handle_timeout(now);
        }
        if let Some(early) = &mut arb.early {
            early.on_timers(now);
        }
        if let Some(w) = &mut arb.witness {
            w.on_timers(now, inst.routers());
        }
        let feed = !arb.rebooting;
        if let Some((w, due)) = &mut arb.watchdog
            && *due <= now
        {
            // Fed until a reboot the ledger allowed has started: then a hung reboot
            // command is backed by the hardware, as sbd does. Starving it at the
            // first sign of isolation would reboot past the ledger's limits (a node
            // isolated in its first minutes would reboot in a loop).
            if feed && let Err(e) = w.feed() {
                error!(error = %e, "hardware watchdog feed failed");
            }
            *due = now + WATCHDOG_FEED_EVERY;
        }
        self.settle(now, inst, out).await;
    }

    /// Runs policy and state machines to a fixed point: roles in, verdicts out,
    /// the actions they cause, then starts the ownership rounds the policy wants.
    pub(super) async fn settle(&mut self, now: Instant, inst: &mut Instances, out: &mut Outputs) {
        if !self.gating {
            // References only: the verdicts are nobody's to carry out.
            while self.policy.poll_verdict().is_some() {}
            return;
        }
        let connected = self.policy.isolation() == Isolation::Connected;
        if let Some(early) = &mut self.early {
            // Claims first: the loop below gives them their probation.
            early.observe(now, inst, connected);
            early.act(now, inst, out).await;
        }
        for _ in 0..SETTLE_ROUNDS {
            let verdicts = {
                let arb = &mut *self;
                // Only a touched router can have changed its role this step.
                for i in inst.touched() {
                    let r = &inst.routers()[i];
                    let role = role_of(r.fsm.state());
                    if role != arb.roles[i] {
                        arb.roles[i] = role;
                        arb.heartbeats[i].restart(now);
                        arb.rounds[i] = None;
                        let name = &r.cfg.name;
                        let taken = arb.policy.handle_role(now, name, role).and_then(|()| {
                            if r.fsm.claimed_from_silence() {
                                arb.policy.handle_claim_from_silence(now, name)?;
                            }
                            // After a yield the old master is still unheard.
                            if arb.policy.overdue(name)? {
                                arb.heartbeats[i].mark_overdue();
                            }
                            Ok(())
                        });
                        if let Err(e) = taken {
                            warn!(instance = %name, error = %e, "role not taken");
                        }
                    }
                }
                if let Some(w) = &mut arb.witness {
                    for i in inst.touched() {
                        let r = &inst.routers()[i];
                        let overdue = arb.policy.overdue(&r.cfg.name).unwrap_or(false);
                        w.on_router(now, i, &r.cfg.name, arb.roles[i], overdue);
                    }
                }
                std::iter::from_fn(|| arb.policy.poll_verdict()).collect::<Vec<_>>()
            };
            let witnessed = self.apply_witness(now, inst, out);
            if verdicts.is_empty() && !witnessed {
                break;
            }
            for v in verdicts {
                self.apply(v, now, inst, out).await;
            }
            for i in inst.touched() {
                inst.run_actions(i, now, out).await;
            }
        }
        self.start_rounds(now, inst);
        let connected = self.policy.isolation() == Isolation::Connected;
        if let Some(early) = &mut self.early {
            early.observe(now, inst, connected);
            early.act(now, inst, out).await;
        }
    }

    /// Starts the rounds the policy wants for the touched routers: their
    /// requests join the interface's paced probe queue, and each round waits for
    /// answers from when its last request leaves.
    fn start_rounds(&mut self, now: Instant, inst: &Instances) {
        for i in inst.touched() {
            let r = &inst.routers()[i];
            let wants = self
                .policy
                .wants_ownership_probe(now, &r.cfg.name)
                .unwrap_or(false);
            if !wants || self.rounds[i].is_some() {
                continue;
            }
            // ARP for an IPv4 instance, neighbour solicitation for an IPv6 one
            // (from its link-local), through the interface's queue of that family.
            let Some(queue) = inst
                .ifaces
                .get(&(r.ifindex, r.family()))
                .and_then(|f| f.probes.as_ref())
            else {
                continue;
            };
            let vips: Vec<IpAddr> = r.vip_addrs.clone();
            let mut last = now;
            let mut unprobed = Vec::new();
            for _ in 0..PROBE_REQUESTS_PER_ROUND {
                for &vip in &vips {
                    let Some(probe) = Probe::who_has(r.mac, r.primary, vip) else {
                        continue;
                    };
                    match queue.send(now, probe) {
                        Ok(at) => last = last.max(at),
                        Err(e) => {
                            if !self.probes_refused {
                                warn!(instance = %r.cfg.name, %vip, error = %e, "ownership probes refused: evidence is partial until the queue drains");
                            }
                            self.probes_refused = true;
                            unprobed.push(vip);
                        }
                    }
                }
            }
            if unprobed.is_empty() && self.probes_refused {
                info!(instance = %r.cfg.name, "ownership probes taken again");
                self.probes_refused = false;
            }
            let mut round = OwnershipRound::start(last, r.fsm.master_adver_interval(), vips);
            for vip in unprobed {
                round.unprobed(vip);
            }
            self.rounds[i] = Some(round);
        }
    }

    /// Carries out the witness's verdicts; true if there were any. An
    /// objection goes to the policy's gate, whose verdicts the next settle
    /// round applies.
    fn apply_witness(&mut self, now: Instant, inst: &mut Instances, out: &mut Outputs) -> bool {
        let Some(w) = &mut self.witness else {
            return false;
        };
        for ev in w.take_events() {
            out.emit(Some(ev));
        }
        let verdicts: Vec<_> = std::iter::from_fn(|| w.poll_verdict()).collect();
        for v in &verdicts {
            match v {
                WitnessVerdict::Gate {
                    instance,
                    objection,
                } => {
                    debug!(%instance, ?objection, "witness objection");
                    if let Err(e) = self
                        .policy
                        .set_witness_gate(now, instance, objection.clone())
                    {
                        warn!(%instance, error = %e, "witness objection not taken");
                    }
                    if let Some(i) = inst.router_index(instance) {
                        inst.touch(i);
                    }
                }
                WitnessVerdict::Contend { instance } | WitnessVerdict::Resign { instance } => {
                    if let Some(i) = inst.router_index(instance) {
                        let contend = matches!(v, WitnessVerdict::Contend { .. });
                        debug!(%instance, contend, "witness key");
                        w.command(i, contend);
                    }
                }
                WitnessVerdict::Release { instance } => {
                    if let Some(i) = inst.router_index(instance) {
                        warn!(
                            %instance,
                            "witness: neither a live lease nor the peer's confirmation vouches for this master: releasing the VIPs"
                        );
                        inst.router_mut(i)
                            .fsm
                            .handle_release(now, Cause::WitnessLost);
                    }
                }
                WitnessVerdict::Raised(inc) => witness_incident_out(inc, true, inst, out),
                WitnessVerdict::Resolved(inc) => witness_incident_out(inc, false, inst, out),
            }
        }
        !verdicts.is_empty()
    }

    /// Whether fencing must hold back: the references below quorum (or not
    /// yet proven), every own link down, or no reference at all (nothing
    /// could say this node is not isolated: fencing fails closed, as in
    /// `watch`).
    pub(super) fn isolated_for_fencing(&self) -> bool {
        self.policy.references().is_empty() || self.policy.isolation() != Isolation::Connected
    }

    /// Whether a VIP of an overdue backup instance answers from `mac` (its
    /// claim withheld for it): the silent peer still holds it. A scan, for
    /// the rare step when the health path says the peer's daemon is gone.
    pub(super) fn vip_answered_by(&self, inst: &Instances, mac: [u8; 6]) -> bool {
        inst.routers().iter().any(|r| {
            matches!(
                self.policy.gate(&r.cfg.name),
                Ok(ClaimGate::Closed(WithholdReason::VipAnsweredElsewhere { mac: m, .. })) if *m == mac
            )
        })
    }

    /// A fence confirmed the host behind `mac` off: its answers for our VIPs
    /// no longer withhold claims (see `Policy::handle_fenced`).
    pub(super) fn peer_fenced(&mut self, now: Instant, mac: [u8; 6]) {
        self.policy.handle_fenced(now, mac);
    }

    /// The fencing policy's gate (`Some(peer)` until a fence is confirmed).
    pub(super) fn set_fence_gate(&mut self, now: Instant, peer: Option<IpAddr>) {
        self.policy.set_fence_gate(now, peer);
    }

    /// An operator's DEMOTE (`hold`) or RESUME for instance `name`: the policy
    /// closes its claim gate (or opens it again).
    pub(super) fn set_manual_hold(&mut self, now: Instant, name: &str, hold: bool) {
        if let Err(e) = self.policy.set_manual_hold(now, name, hold) {
            warn!(instance = %name, error = %e, "hold not taken");
        }
    }

    async fn apply(&mut self, v: Verdict, now: Instant, inst: &mut Instances, out: &mut Outputs) {
        match v {
            Verdict::Gate { instance, gate } => {
                if let Some(i) = inst.router_index(&instance) {
                    debug!(instance = %instance, gate = ?gate, "claim gate");
                    inst.router_mut(i).fsm.set_claim_gate(now, gate);
                }
            }
            Verdict::Demotion { instance, weight } => {
                if let Some(i) = inst.router_index(&instance) {
                    info!(instance = %instance, weight, "arbiter demotion");
                    inst.router_mut(i).fsm.set_demotion(now, weight);
                }
            }
            Verdict::Release { instance } => {
                if let Some(i) = inst.router_index(&instance) {
                    warn!(instance = %instance, "isolated with no peer in reach: releasing the VIPs");
                    inst.router_mut(i).fsm.handle_release(now, Cause::Released);
                }
            }
            Verdict::Yield { instance, vip, mac } => {
                if let Some(i) = inst.router_index(&instance) {
                    warn!(
                        instance = %instance, %vip, mac = %format_mac(&mac),
                        "claimed from silence but the VIP still answers from another MAC: yielding to it"
                    );
                    inst.router_mut(i).fsm.handle_release(now, Cause::Yielded);
                }
            }
            Verdict::RebootDue => self.reboot(out).await,
            Verdict::Raised(incident) => incident_out(&incident, true, inst, out),
            Verdict::Resolved(incident) => incident_out(&incident, false, inst, out),
        }
    }
}

/// The routers holding each VIP, by interface.
fn vip_routers(routers: &[Router]) -> HashMap<(u32, IpAddr), Vec<usize>> {
    let mut map: HashMap<(u32, IpAddr), Vec<usize>> = HashMap::new();
    for (i, r) in routers.iter().enumerate() {
        for &vip in &r.vip_addrs {
            map.entry((r.ifindex, vip)).or_default().push(i);
        }
    }
    map
}

/// Hands an arbiter incident on: to the log, the event stream and the
/// watcher's outbox.
fn incident_out(incident: &Incident, raised: bool, inst: &Instances, out: &mut Outputs) {
    let (instance, detail) = describe(incident);
    // To the alert engine, under the DESIGN.md kind: a release is the
    // self-demotion of an isolated master.
    let kind = match incident {
        Incident::ClaimWithheld { .. } => IncidentKind::ClaimWithheld,
        Incident::Isolated { .. } => IncidentKind::Isolated,
        Incident::Demoted { .. } | Incident::Released { .. } => IncidentKind::Demoted,
        Incident::RebootDue => IncidentKind::Rebooting,
        Incident::LinkDown { .. } => IncidentKind::LinkDown,
    };
    let key = format!("arbiter:{}:{}", incident.kind(), instance.unwrap_or("node"));
    report(
        incident.kind(),
        kind,
        key,
        instance,
        detail,
        raised,
        inst,
        out,
    );
}

/// One incident of the arbiter or the witness, `name` as the policy calls it
/// and `kind` as the alert engine files it, to the log, the event stream
/// (with the instance's VRID) and the watcher's outbox under `key`.
#[allow(clippy::too_many_arguments)]
fn report(
    name: &str,
    kind: IncidentKind,
    key: String,
    instance: Option<&str>,
    cause: String,
    raised: bool,
    inst: &Instances,
    out: &mut Outputs,
) {
    let status = if raised { "firing" } else { "resolved" };
    if raised {
        warn!(
            kind = name,
            instance = instance.unwrap_or("-"),
            "incident: {cause}"
        );
    } else {
        info!(
            kind = name,
            instance = instance.unwrap_or("-"),
            "incident resolved: {cause}"
        );
    }
    let mut ev = Event::new("incident")
        .field("kind", name)
        .field("status", status)
        .field("cause", cause.clone());
    let mut vip = None;
    if let Some(n) = instance
        && let Some(r) = inst.router_index(n).map(|i| &inst.routers()[i])
    {
        ev = ev.instance(n, r.cfg.vrid);
        vip = r.vip_addrs.first().copied();
    }
    out.emit(Some(ev));
    let raise = Raise {
        key,
        kind,
        severity: kind.default_severity(),
        instance: instance.map(str::to_owned),
        vip,
        owners: Vec::new(),
        cause,
    };
    out.incidents.push((raise, raised));
}

impl Arbiter {
    /// The reboot the policy found due: the ledger decides, `--dry-run` only logs.
    async fn reboot(&mut self, out: &Outputs) {
        let arb = &*self;
        if arb.cfg.on_isolated != OnIsolated::Reboot {
            return;
        }
        // A dry run keeps its own ledger: rehearsing must never block a real reboot.
        let file = if arb.dry_run {
            DRY_RUN_LEDGER_FILE
        } else {
            reboot::LEDGER_FILE
        };
        let path = arb.state_dir.join(file);
        let limits = RebootLimits {
            max_per_window: arb.cfg.reboot_limit,
            window: arb.cfg.reboot_window,
            min_uptime: arb.cfg.reboot_min_uptime,
        };
        let command = arb.cfg.reboot_command.clone();
        let dry_run = arb.dry_run;
        let decision = reboot::check(&path, SystemTime::now(), reboot::uptime(), &limits);
        if let RebootDecision::Deny(why) = decision {
            warn!(ledger = %path.display(), "isolated, reboot due, but not rebooting: {why}");
            out.emit(Some(
                Event::new("reboot_denied").field("reason", why.to_string()),
            ));
            return;
        }
        if let Err(e) = RebootLedger::record(&path, SystemTime::now(), &limits) {
            // Without a record the ledger cannot limit the next one: refuse.
            error!(ledger = %path.display(), error = %e, "reboot not recorded, so not rebooting");
            return;
        }
        let shown = command.join(" ");
        if dry_run {
            warn!(command = %shown, "dry run: isolated with no peer, would reboot now");
            out.emit(Some(
                Event::new("reboot")
                    .field("dry_run", true)
                    .field("command", shown),
            ));
            return;
        }
        error!(command = %shown, "isolated with no peer in reach: rebooting");
        self.rebooting = true;
        out.emit(Some(
            Event::new("reboot")
                .field("dry_run", false)
                .field("command", shown.clone()),
        ));
        // Off the event loop: adverts and VIPs keep being handled meanwhile.
        tokio::spawn(async move {
            match track::command::run(&command, REBOOT_COMMAND_TIMEOUT).await {
                Ok(st) if st.success() => info!(command = %shown, "reboot command accepted"),
                Ok(st) => error!(command = %shown, status = %st, "reboot command failed"),
                Err(e) => error!(command = %shown, error = %e, "reboot command did not run"),
            }
        });
    }
}

/// A witness incident to the log, the event stream and the watcher's outbox.
fn witness_incident_out(inc: &WitnessIncident, raised: bool, inst: &Instances, out: &mut Outputs) {
    let (kind, instance, cause) = match inc {
        WitnessIncident::Unreachable { reason } => (
            IncidentKind::WitnessUnreachable,
            None,
            format!(
                "witness unreachable: {reason}; this node holds no safe lease, so it claims nothing and a master keeps its VIPs only while its peer confirms"
            ),
        ),
        WitnessIncident::Released { instance } => (
            IncidentKind::Demoted,
            Some(instance.as_str()),
            "released by the witness: neither a live lease nor the peer's confirmation vouched for this master".to_owned(),
        ),
    };
    let key = format!("witness:{}:{}", inc.kind(), instance.unwrap_or("node"));
    // The event names the kind pages use: witness_unreachable, demoted.
    report(kind.as_str(), kind, key, instance, cause, raised, inst, out);
}

/// The instance an incident concerns (if one) and a sentence naming the values.
fn describe(incident: &Incident) -> (Option<&str>, String) {
    match incident {
        Incident::ClaimWithheld { instance, reason } => {
            (Some(instance), format!("claim withheld: {reason}"))
        }
        Incident::Isolated { reachable, quorum } => (
            None,
            format!("isolated: {reachable} reference(s) reachable, quorum is {quorum}"),
        ),
        Incident::Demoted { instance, weight } => (
            Some(instance),
            format!("isolated but a peer answers: priority lowered by {weight}"),
        ),
        Incident::Released { instance } => (
            Some(instance),
            "isolated with no peer in reach: VIPs released".to_string(),
        ),
        Incident::RebootDue => (None, "isolated past reboot_after: rebooting".to_string()),
        Incident::LinkDown { interfaces } => (
            None,
            format!(
                "own link down on {}: a local fault, not an isolated network; its instances are FAULT and the peer takes over",
                interfaces.join(", ")
            ),
        ),
    }
}
