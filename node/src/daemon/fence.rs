//! Owns peer fencing at work: one pure policy per `[[fence]]`
//! (`splitguard_arbiter::fence`), fed after every step with this node's
//! isolation (the arbiter's references in `run`; beside keepalived, in
//! `watch`, the references it probes itself), the split brains the watcher
//! confirmed against that peer (a VIP held here that the peer's MAC answers
//! for too) and where this node stands against the peer in VRRP's order (the
//! priorities the capture saw in both nodes' adverts, or `peer_priority`).
//! It runs the device (`crate::fence`: a fence agent or the Redfish client)
//! in a task bounded by its timeout and takes the outcome back as
//! `Input::Fence`. Every attempt, refusal and outcome is logged, written to
//! the event stream and the audit file (`fence-audit.jsonl` in the state
//! directory, which is also the ledger a restart reads back), shown in
//! `status` and `/metrics`, and paged (`fencing`, `fenced`, `fence_failed`).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use splitguard_arbiter::fence::{
    FenceAction, FenceConfig, FenceReason, Fencing, OffOutcome, Power, Standing,
};
use splitguard_vrrp::gate::format_mac;
use splitguard_watchdog::IncidentKind;
use splitguard_watchdog::Severity;
use splitguard_watchdog::core::engine::Raise;
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::config;
use crate::fence::{DeviceKind, Op, PowerState};
use crate::net::neighbour::NeighbourSeen;
use crate::notify::events::{Event, unix_ms};
use crate::status::{FenceOutcome, FencePeer, FenceStatus};
use crate::watch::Watcher;

use super::outputs::Outputs;

/// The audit file (and ledger) in the state directory; a dry run keeps its
/// own, so rehearsing never uses up a real fence's allowance.
const AUDIT_FILE: &str = "fence-audit.jsonl";
const DRY_RUN_AUDIT_FILE: &str = "fence-audit.dry-run.jsonl";
/// Past this size the audit file keeps its newest half at the next start.
const AUDIT_MAX_BYTES: u64 = 1 << 20;
/// How often the peer's MAC is asked for while a split brain waits on it.
const MAC_PROBE_EVERY: Duration = Duration::from_secs(1);
/// At most one log line about the peer's MAC in this long.
const MAC_LOG_EVERY: Duration = Duration::from_secs(10);

/// A device's answer, back from its task.
pub(super) enum FenceResult {
    Off {
        peer: usize,
        result: Result<(), String>,
    },
    Status {
        peer: usize,
        result: Result<PowerState, String>,
    },
}

/// One line of the audit file.
#[derive(Debug, Serialize, Deserialize)]
struct AuditLine {
    at_ms: u64,
    peer: IpAddr,
    /// `fencing` (an `off` started: what the ledger counts), `fenced`,
    /// `failed`, `refused`, `dry_run`.
    event: String,
    reason: String,
    #[serde(default)]
    detail: Option<String>,
    /// The call made (credentials masked).
    #[serde(default)]
    call: Option<String>,
}

struct Peer {
    cfg: config::Fence,
    policy: Fencing,
    /// The peer's MAC: `peer_mac`, or as its answers to us gave it.
    mac: Option<[u8; 6]>,
    mac_probed: Option<Instant>,
    mac_logged: Option<Instant>,
    /// The VIP whose split brain names this peer, while one does.
    split_vip: Option<IpAddr>,
    last: Option<FenceOutcome>,
    outcomes: BTreeMap<String, u64>,
    /// The `fence:<peer>` incident is open.
    raised: bool,
    /// The health path's last word on the peer's daemon.
    daemon_alive: Option<bool>,
    /// A VIP answered from the peer's MAC while its daemon is gone.
    vip_answered: bool,
}

pub(super) struct FencePart {
    peers: Vec<Peer>,
    results: mpsc::Sender<FenceResult>,
    state_dir: PathBuf,
    dry_run: bool,
    published: Option<FenceStatus>,
    /// MACs of peers confirmed off this step: the arbiter drops their
    /// answers as evidence.
    fenced_macs: Vec<[u8; 6]>,
}

impl FencePart {
    /// Builds one policy per `[[fence]]`; the ledger is read back from the
    /// audit file. `dry_run`: `run --dry-run`, which makes every fence a dry
    /// one. Fails when an agent cannot be found or the state directory
    /// cannot be made.
    pub fn start(
        cfg: &config::Config,
        dry_run: bool,
        results: mpsc::Sender<FenceResult>,
        now: Instant,
    ) -> anyhow::Result<FencePart> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&cfg.state_dir)
            .map_err(|e| anyhow::anyhow!("state_dir {}: {e}", cfg.state_dir.display()))?;
        let mut peers = Vec::with_capacity(cfg.fences.len());
        for (i, f) in cfg.fences.iter().enumerate() {
            if let DeviceKind::Agent(a) = &f.device.kind {
                let found = crate::fence::agent::resolve(&a.agent).filter(|p| p.is_file());
                if found.is_none() {
                    anyhow::bail!(
                        "fence[{i}].agent: {} not found in /usr/sbin, /sbin or the PATH (Debian: apt install fence-agents)",
                        a.agent
                    );
                }
            }
            let dry = dry_run || f.dry_run;
            let fcfg = FenceConfig {
                fence_after: f.fence_after,
                yield_delay: FenceConfig::yield_delay_for(f.device.timeout, f.fence_after),
                limit: f.limit,
                window: f.window,
                min_uptime: f.min_uptime,
            };
            let mut policy = Fencing::new(fcfg, Standing::Unknown, now);
            let file = cfg
                .state_dir
                .join(if dry { DRY_RUN_AUDIT_FILE } else { AUDIT_FILE });
            policy.restore_attempts(ledger(&file, f.peer, f.window, now));
            info!(
                peer = %f.peer,
                device = %f.device.describe(Op::Off),
                dry_run = dry,
                restored = policy.attempts(),
                "fencing armed"
            );
            peers.push(Peer {
                cfg: f.clone(),
                policy,
                mac: f.peer_mac,
                mac_probed: None,
                mac_logged: None,
                split_vip: None,
                last: None,
                outcomes: BTreeMap::new(),
                raised: false,
                daemon_alive: None,
                vip_answered: false,
            });
        }
        for name in [AUDIT_FILE, DRY_RUN_AUDIT_FILE] {
            trim_audit(&cfg.state_dir.join(name));
        }
        Ok(FencePart {
            peers,
            results,
            state_dir: cfg.state_dir.clone(),
            dry_run,
            published: None,
            fenced_macs: Vec::new(),
        })
    }

    /// When a policy's timer is next due.
    pub fn deadline(&self) -> Option<Instant> {
        self.peers
            .iter()
            .filter_map(|p| p.policy.poll_timeout())
            .min()
    }

    /// A neighbour message: the peer's answers give its MAC, unless
    /// `peer_mac` pins it. Logged at most once per [`MAC_LOG_EVERY`]: a
    /// segment where two MACs speak for the peer's address must not flood
    /// the log.
    pub fn on_neighbour(&mut self, now: Instant, n: &NeighbourSeen) {
        for p in &mut self.peers {
            if n.ip != p.cfg.peer {
                continue;
            }
            let seen = mac_seen(p.cfg.peer_mac, p.mac, n.mac);
            if matches!(seen, MacSeen::Learned | MacSeen::Changed) {
                p.mac = Some(n.mac);
            }
            if seen == MacSeen::Same || p.mac_logged.is_some_and(|t| now < t + MAC_LOG_EVERY) {
                continue;
            }
            p.mac_logged = Some(now);
            let (peer, mac) = (p.cfg.peer, format_mac(&n.mac));
            match seen {
                MacSeen::Learned => info!(%peer, %mac, "peer's MAC learned"),
                MacSeen::Changed => {
                    warn!(%peer, %mac, "the peer's address answers from another MAC")
                }
                MacSeen::Foreign => {
                    let pinned = p.cfg.peer_mac.as_ref().map(format_mac).unwrap_or_default();
                    warn!(%peer, %mac, %pinned, "the peer's address answers from a MAC that is not peer_mac; ignored (an address conflict, proxy ARP or a spoofer)")
                }
                MacSeen::Same => {}
            }
        }
    }

    /// A device's answer.
    pub fn on_result(&mut self, now: Instant, r: FenceResult, out: &mut Outputs) {
        match r {
            FenceResult::Off { peer, result } => {
                let Some(p) = self.peers.get_mut(peer) else {
                    return;
                };
                match result {
                    Ok(()) => {
                        info!(peer = %p.cfg.peer, "fence: off done; confirming with status");
                        p.policy.handle_off(now, OffOutcome::Done);
                    }
                    Err(why) => p.policy.handle_off(now, OffOutcome::Failed(why)),
                }
            }
            FenceResult::Status { peer, result } => {
                let Some(p) = self.peers.get_mut(peer) else {
                    return;
                };
                let power = match result {
                    Ok(PowerState::Off) => Power::Off,
                    Ok(PowerState::On) => Power::On,
                    Err(why) => {
                        warn!(peer = %p.cfg.peer, error = %why, "fence: status failed");
                        out.emit(Some(
                            Event::new("fence")
                                .field("peer", p.cfg.peer.to_string())
                                .field("outcome", "status_failed")
                                .field("detail", why),
                        ));
                        Power::Unknown
                    }
                };
                p.policy.handle_status(now, power);
            }
        }
    }

    /// An operator's FENCE (by reply, its PIN checked): the peer named
    /// `target` (its `name` or address) is fenced now, unless the policy
    /// refuses (isolated, the ledger, the start limit). The words for the
    /// reply's confirmation, or why not.
    pub fn order(
        &mut self,
        now: Instant,
        target: &str,
        by: &str,
        out: &mut Outputs,
    ) -> Result<String, String> {
        let Some(i) = self.peers.iter().position(|p| {
            p.cfg
                .name
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(target))
                || p.cfg.peer.to_string() == target
        }) else {
            let known: Vec<String> = self
                .peers
                .iter()
                .map(|p| match &p.cfg.name {
                    Some(n) => format!("{n} ({})", p.cfg.peer),
                    None => p.cfg.peer.to_string(),
                })
                .collect();
            return Err(format!(
                "no [[fence]] for {target}; this node fences {}",
                known.join(", ")
            ));
        };
        warn!(peer = %self.peers[i].cfg.peer, by, "fence ordered by reply");
        self.peers[i].policy.handle_order(now, by.to_owned());
        let mut refused = None;
        let mut started = false;
        while let Some(a) = self.peers[i].policy.poll_action() {
            match &a {
                FenceAction::Refused { why, .. } => refused = Some(why.clone()),
                FenceAction::Fence { .. } => started = true,
                _ => {}
            }
            self.carry_out(i, now, a, out);
        }
        let peer = self.peers[i].cfg.peer;
        match (refused, started) {
            (Some(why), _) => Err(why),
            (None, true) => Ok(format!(
                "fencing {peer} on {by}'s order; the outcome is paged"
            )),
            (None, false) => Err(format!(
                "a fence of {peer} is already under way or done ({})",
                self.peers[i].policy.phase().as_str()
            )),
        }
    }

    /// Feeds every policy what this step changed: isolation, the split
    /// brains against each peer, the standing.
    pub fn observe(
        &mut self,
        now: Instant,
        isolated: bool,
        watcher: &Watcher,
        own_order: &dyn Fn(IpAddr) -> Option<(u8, IpAddr)>,
    ) {
        for p in &mut self.peers {
            p.policy.handle_isolation(now, isolated);
            let peer = p.cfg.peer;
            let mut split = None;
            let mut unknown_mac = None;
            for (vip, owners) in watcher.two_owners() {
                match p.mac {
                    Some(mac) => {
                        let mac = format_mac(&mac);
                        if owners.contains(&mac) {
                            split = Some(vip);
                            break;
                        }
                    }
                    None => unknown_mac = unknown_mac.or(Some(vip)),
                }
            }
            // Two owners, but whose is the other MAC? Ask the peer's address;
            // the answer arrives as a neighbour message.
            if let Some(vip) = unknown_mac
                && p.mac_probed.is_none_or(|t| now >= t + MAC_PROBE_EVERY)
            {
                p.mac_probed = Some(now);
                if !watcher.probe_address(now, vip, peer)
                    && p.mac_logged.is_none_or(|t| now >= t + MAC_LOG_EVERY)
                {
                    p.mac_logged = Some(now);
                    warn!(%peer, %vip, "cannot ask for the peer's MAC (no probe queue for the VIP's interface, or it is full)");
                }
            }
            if let Some(vip) = split {
                let adverts = watcher.adverts_for(vip);
                let own = adverts
                    .iter()
                    .find(|a| a.2)
                    .map(|a| (a.1, a.0))
                    .or_else(|| own_order(vip));
                let theirs = adverts
                    .iter()
                    .find(|a| a.0 == peer && !a.2)
                    .map(|a| a.1)
                    .or(p.cfg.peer_priority);
                // A known order stays known when the adverts that showed it
                // age out (a fenced or silent peer advertises no more).
                if let (Some((op, oa)), Some(pp)) = (own, theirs) {
                    p.policy
                        .handle_standing(now, Standing::by_order((op, oa), (pp, peer)));
                }
            }
            p.split_vip = split;
            p.policy.handle_split_brain(now, split.is_some());
            if p.policy.poll_timeout().is_some_and(|t| t <= now) {
                p.policy.handle_timeout(now);
            }
        }
    }

    /// The direct health path's word on the peer's daemon (`None`: no such
    /// path) and whether the peer's MAC still answers for a VIP this node's
    /// silent-master backups would claim. The path names one peer, so it
    /// counts only with one `[[fence]]`.
    pub fn observe_peer_daemon(
        &mut self,
        now: Instant,
        alive: Option<bool>,
        answered_by: &dyn Fn([u8; 6]) -> bool,
        watcher: &Watcher,
        probe_from: &dyn Fn(IpAddr) -> Option<IpAddr>,
    ) {
        let [p] = self.peers.as_mut_slice() else {
            return;
        };
        let Some(alive) = alive else {
            return;
        };
        // Whose MAC answers for the VIP must be the peer's: ask its address.
        if !alive && p.mac.is_none() && p.mac_probed.is_none_or(|t| now >= t + MAC_PROBE_EVERY) {
            p.mac_probed = Some(now);
            let sent = probe_from(p.cfg.peer)
                .is_some_and(|vip| watcher.probe_address(now, vip, p.cfg.peer));
            if !sent && p.mac_logged.is_none_or(|t| now >= t + MAC_LOG_EVERY) {
                p.mac_logged = Some(now);
                warn!(peer = %p.cfg.peer, "cannot ask for the peer's MAC (no VIP of its family to ask from, or the probe queue is full)");
            }
        }
        if p.daemon_alive != Some(alive) {
            p.daemon_alive = Some(alive);
            if alive {
                info!(peer = %p.cfg.peer, "health path: the peer's daemon answers");
            } else {
                warn!(peer = %p.cfg.peer, "health path: the peer's host answers but its daemon does not (port unreachable)");
            }
            p.policy.handle_peer_health(now, alive);
        }
        // Only asked while the daemon is gone: a scan of the instances.
        let answered = !alive && p.mac.is_some_and(answered_by);
        if answered != p.vip_answered {
            p.vip_answered = answered;
            p.policy.handle_vip_answered(now, answered);
        }
        if p.policy.poll_timeout().is_some_and(|t| t <= now) {
            p.policy.handle_timeout(now);
        }
    }

    /// The MACs of peers confirmed off since the last call.
    pub fn take_fenced_macs(&mut self) -> Vec<[u8; 6]> {
        std::mem::take(&mut self.fenced_macs)
    }

    /// Carries out what the policies decided. Returns the claim gate's word:
    /// `Some(peer)` while a fence of `peer` is not confirmed (`run` closes
    /// its claims on it; in `watch` keepalived decides them).
    pub fn act(&mut self, now: Instant, out: &mut Outputs) -> Option<IpAddr> {
        for i in 0..self.peers.len() {
            while let Some(a) = self.peers[i].policy.poll_action() {
                self.carry_out(i, now, a, out);
            }
            let p = &mut self.peers[i];
            // The incident closes when the episode is over: the policy is
            // idle with nothing that would fence.
            if p.raised
                && p.policy.phase() == splitguard_arbiter::fence::Phase::Idle
                && p.split_vip.is_none()
            {
                p.raised = false;
                page(
                    out,
                    raise(p, IncidentKind::Fenced, Severity::Info, "over".to_owned()),
                    false,
                );
            }
        }
        self.peers
            .iter()
            .find(|p| p.policy.gate_closed())
            .map(|p| p.cfg.peer)
    }

    fn carry_out(&mut self, i: usize, now: Instant, a: FenceAction, out: &mut Outputs) {
        let dry_run = self.dry_run || self.peers[i].cfg.dry_run;
        let p = &mut self.peers[i];
        let peer = p.cfg.peer;
        match a {
            FenceAction::Fence { reason } => {
                let call = p.cfg.device.describe(Op::Off);
                if dry_run {
                    warn!(%peer, reason = reason.as_str(), %call, "fence (dry run): would run");
                    self.record(i, &reason, "dry_run", None, Some(call), true, out);
                    self.peers[i].policy.handle_off(now, OffOutcome::DryRun);
                    return;
                }
                self.record(i, &reason, "fencing", None, Some(call), false, out);
                let device = self.peers[i].cfg.device.clone();
                let tx = self.results.clone();
                tokio::spawn(async move {
                    let result = device
                        .run(Op::Off)
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string());
                    let _ = tx.send(FenceResult::Off { peer: i, result }).await;
                });
            }
            FenceAction::Confirm => {
                let device = p.cfg.device.clone();
                let tx = self.results.clone();
                tokio::spawn(async move {
                    let result = match device.run(Op::Status).await {
                        Ok(Some(s)) => Ok(s),
                        Ok(None) => Err("the device gave no power state".to_owned()),
                        Err(e) => Err(e.to_string()),
                    };
                    let _ = tx.send(FenceResult::Status { peer: i, result }).await;
                });
            }
            FenceAction::Gate { closed } => {
                info!(%peer, closed, "fence: claim gate");
            }
            FenceAction::Refused { reason, why } => {
                warn!(%peer, reason = reason.as_str(), "fence refused: {why}");
                self.record(i, &reason, "refused", Some(why.clone()), None, dry_run, out);
                let p = &mut self.peers[i];
                p.raised = true;
                let cause = format!("peer {peer} not fenced: {why}");
                page(
                    out,
                    raise(p, IncidentKind::FenceFailed, Severity::Warning, cause),
                    true,
                );
            }
            FenceAction::Fencing { reason } => {
                let call = p.cfg.device.describe(Op::Off);
                warn!(%peer, reason = reason.as_str(), %call, "fencing the peer");
                p.raised = true;
                let cause = format!("fencing peer {peer} ({}): {call}", reason_words(&reason));
                page(
                    out,
                    raise(p, IncidentKind::Fencing, Severity::Critical, cause),
                    true,
                );
            }
            FenceAction::Fenced { reason } => {
                warn!(%peer, reason = reason.as_str(), "peer fenced: power off confirmed");
                if let Some(mac) = p.mac {
                    self.fenced_macs.push(mac);
                }
                self.record(i, &reason, "fenced", None, None, dry_run, out);
                let p = &mut self.peers[i];
                p.raised = true;
                let cause = format!(
                    "peer {peer} fenced ({}): its power is off, confirmed by status",
                    reason_words(&reason)
                );
                page(
                    out,
                    raise(p, IncidentKind::Fenced, Severity::Warning, cause),
                    true,
                );
            }
            FenceAction::FenceFailed { reason, why } => {
                error!(%peer, reason = reason.as_str(), "fence failed: {why}");
                self.record(i, &reason, "failed", Some(why.clone()), None, dry_run, out);
                let p = &mut self.peers[i];
                p.raised = true;
                let cause = format!(
                    "fence of peer {peer} failed ({}): {why}; claims stay withheld",
                    reason_words(&reason)
                );
                page(
                    out,
                    raise(p, IncidentKind::FenceFailed, Severity::Critical, cause),
                    true,
                );
            }
        }
    }

    /// An attempt's step, refusal or outcome: counted, kept for status,
    /// written to the event stream and the audit file.
    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        i: usize,
        reason: &FenceReason,
        outcome: &str,
        detail: Option<String>,
        call: Option<String>,
        dry_run: bool,
        out: &Outputs,
    ) {
        let p = &mut self.peers[i];
        let at_ms = unix_ms(SystemTime::now());
        if outcome != "fencing" {
            *p.outcomes.entry(outcome.to_owned()).or_default() += 1;
        }
        let mut detail = detail;
        if let FenceReason::Ordered { by } = reason {
            let by = format!("ordered by {by}");
            detail = Some(match detail {
                Some(d) => format!("{by}: {d}"),
                None => by,
            });
        }
        p.last = Some(FenceOutcome {
            at_ms,
            reason: reason.as_str().to_owned(),
            outcome: outcome.to_owned(),
            detail: detail.clone(),
        });
        let mut ev = Event::new("fence")
            .field("peer", p.cfg.peer.to_string())
            .field("reason", reason.as_str())
            .field("outcome", outcome);
        if let Some(d) = &detail {
            ev = ev.field("detail", d.clone());
        }
        if let Some(c) = &call {
            ev = ev.field("call", c.clone());
        }
        out.emit(Some(ev));
        let line = AuditLine {
            at_ms,
            peer: p.cfg.peer,
            event: outcome.to_owned(),
            reason: reason.as_str().to_owned(),
            detail,
            call,
        };
        let file = self.state_dir.join(if dry_run {
            DRY_RUN_AUDIT_FILE
        } else {
            AUDIT_FILE
        });
        if let Err(e) = append_audit(&file, &line) {
            error!(file = %file.display(), error = %e, "fence audit not written");
        }
    }

    /// The status block when it changed since the last call.
    pub fn status_if_changed(&mut self) -> Option<FenceStatus> {
        let st = FenceStatus {
            peers: self
                .peers
                .iter()
                .map(|p| FencePeer {
                    peer: p.cfg.peer,
                    agent: match &p.cfg.device.kind {
                        DeviceKind::Agent(a) => a.agent.clone(),
                        DeviceKind::Redfish(_) => "redfish".to_owned(),
                    },
                    phase: p.policy.phase().as_str().to_owned(),
                    standing: match p.policy.standing() {
                        Standing::Better => "better",
                        Standing::Worse => "worse",
                        Standing::Unknown => "unknown",
                    }
                    .to_owned(),
                    gate_closed: p.policy.gate_closed(),
                    dry_run: self.dry_run || p.cfg.dry_run,
                    attempts_in_window: p.policy.attempts(),
                    peer_mac: p.mac.as_ref().map(format_mac),
                    peer_mac_pinned: p.cfg.peer_mac.is_some(),
                    limit: p.cfg.limit,
                    window_s: p.cfg.window.as_secs(),
                    last: p.last.clone(),
                    outcomes: p.outcomes.clone(),
                })
                .collect(),
        };
        if self.published.as_ref() == Some(&st) {
            return None;
        }
        self.published = Some(st.clone());
        Some(st)
    }
}

fn reason_words(r: &FenceReason) -> String {
    match r {
        FenceReason::SplitBrain => "split brain: both nodes hold a VIP".to_owned(),
        FenceReason::DaemonDead => "its daemon is gone while its VIP still answers".to_owned(),
        FenceReason::Ordered { by } => format!("ordered by {by}"),
    }
}

/// What one answer from the peer's address means for the MAC it is known by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MacSeen {
    /// The MAC already known (or pinned).
    Same,
    /// The first answer: now the peer's MAC.
    Learned,
    /// Another MAC than the one learned (a NIC swapped, or two hosts
    /// answering): the newest is taken, and said.
    Changed,
    /// Another MAC than `peer_mac`: never taken.
    Foreign,
}

fn mac_seen(pinned: Option<[u8; 6]>, known: Option<[u8; 6]>, seen: [u8; 6]) -> MacSeen {
    match (pinned, known) {
        (Some(pin), _) if pin != seen => MacSeen::Foreign,
        (_, Some(k)) if k == seen => MacSeen::Same,
        (_, Some(_)) => MacSeen::Changed,
        (_, None) => MacSeen::Learned,
    }
}

/// Pages (or resolves) the `fence:<peer>` incident: the event stream says
/// so at once, the watcher's alert engine sends it.
fn page(out: &mut Outputs, r: Raise, raised: bool) {
    out.emit(Some(
        Event::new("incident")
            .field("kind", r.kind.as_str())
            .field("status", if raised { "firing" } else { "resolved" })
            .field("cause", r.cause.clone()),
    ));
    out.incidents.push((r, raised));
}

/// The `fence:<peer>` incident.
fn raise(p: &Peer, kind: IncidentKind, severity: Severity, cause: String) -> Raise {
    Raise {
        key: format!("fence:{}", p.cfg.peer),
        kind,
        severity,
        instance: None,
        vip: p.split_vip,
        owners: p.mac.map(|m| vec![format_mac(&m)]).unwrap_or_default(),
        cause,
    }
}

fn append_audit(file: &Path, line: &AuditLine) -> std::io::Result<()> {
    let mut text = serde_json::to_string(line).map_err(std::io::Error::other)?;
    text.push('\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(file)?;
    f.write_all(text.as_bytes())?;
    // The ledger must survive a crash right after the fence it counts.
    f.sync_data()
}

/// The fences of `peer` the audit file records within `window` of now, as
/// instants on this process's clock. A line that does not parse is skipped
/// (and said once): the ledger errs toward what it can read.
fn ledger(file: &Path, peer: IpAddr, window: Duration, now: Instant) -> Vec<Instant> {
    let Ok(text) = std::fs::read_to_string(file) else {
        return Vec::new();
    };
    let wall = unix_ms(SystemTime::now());
    let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
    let mut bad = 0usize;
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(l) = serde_json::from_str::<AuditLine>(line) else {
            bad += 1;
            continue;
        };
        if l.peer != peer || !matches!(l.event.as_str(), "fencing" | "dry_run") {
            continue;
        }
        let age = wall.saturating_sub(l.at_ms);
        if age < window_ms
            && let Some(at) = now.checked_sub(Duration::from_millis(age))
        {
            out.push(at);
        }
    }
    if bad > 0 {
        warn!(file = %file.display(), lines = bad, "fence audit lines not understood; skipped");
    }
    out
}

/// Keeps the audit file bounded: past [`AUDIT_MAX_BYTES`] its newest half
/// stays.
fn trim_audit(file: &Path) {
    let Ok(meta) = std::fs::metadata(file) else {
        return;
    };
    if meta.len() <= AUDIT_MAX_BYTES {
        return;
    }
    let Ok(text) = std::fs::read_to_string(file) else {
        return;
    };
    let lines: Vec<&str> = text.lines().collect();
    let keep = lines[lines.len() / 2..].join("\n") + "\n";
    let tmp = file.with_extension("jsonl.tmp");
    let written = std::fs::write(&tmp, keep).and_then(|()| std::fs::rename(&tmp, file));
    if let Err(e) = written {
        warn!(file = %file.display(), error = %e, "fence audit not trimmed");
    }
}

#[cfg(test)]
mod tests {
    use super::{MacSeen, mac_seen};

    const A: [u8; 6] = [0x52, 0x54, 0, 0, 0, 5];
    const B: [u8; 6] = [0x52, 0x54, 0, 0, 0, 0x66];

    #[test]
    fn a_learned_mac_follows_the_answers() {
        assert_eq!(mac_seen(None, None, A), MacSeen::Learned);
        assert_eq!(mac_seen(None, Some(A), A), MacSeen::Same);
        assert_eq!(mac_seen(None, Some(A), B), MacSeen::Changed);
    }

    #[test]
    fn a_pinned_mac_never_moves() {
        // The pin is the known MAC from the start (`Peer::mac`).
        assert_eq!(mac_seen(Some(A), Some(A), A), MacSeen::Same);
        assert_eq!(mac_seen(Some(A), Some(A), B), MacSeen::Foreign);
        assert_eq!(mac_seen(Some(A), None, B), MacSeen::Foreign);
    }
}
