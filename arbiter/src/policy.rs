//! The arbiter policy: turns reachability, heartbeat, ownership and operator input
//! into per-instance verdicts (claim gate, demotion, release) and node verdicts
//! (isolation, reboot due), each reported once, on change. Sans-IO: every input takes
//! an explicit `now`; [`Policy::poll_verdict`] hands out what changed and
//! [`Policy::poll_timeout`] says when to call [`Policy::handle_timeout`].
//!
//! Rules (DESIGN.md, "Arbitration — the rules"):
//!
//! - **Isolation.** References configured and fewer than `quorum` reachable. It comes
//!   in two strengths. *Unproven*: some references are still Unknown (startup) and
//!   could yet make the quorum. *Isolated*: even counting every Unknown reference as
//!   reachable the quorum is missed. Both close the gate (fail closed); only proven
//!   isolation raises the incident and acts (demote, release, reboot), so a boot never
//!   tears down a master on no evidence. Without references nothing is isolated.
//! - **Gate precedence**, first match wins: `ManualHold` (the operator's word, and only
//!   the operator lifts it) > `VipAnsweredElsewhere` (direct proof someone holds the VIP,
//!   only while the master's adverts are overdue) > `Isolated` > the witness's
//!   objection (`Witness*`: its lock is held elsewhere, not yet ours, or out of
//!   reach; see `witness.rs`) > `Open`.
//! - **Demotion.** Proven isolated and at least one peer reachable → `demote_weight`,
//!   whatever the role. A demoted master becomes backup; dropping the weight then would
//!   let it preempt straight back, and demoting both sides of a shared outage (the
//!   gateway died) keeps their order, so nobody moves and there is no outage.
//! - **Release.** Proven isolated, no peer reachable and none still Unknown (or no
//!   peers configured) and MASTER → release the VIPs. While a peer is Unknown neither
//!   demote nor release: wait the few probes it takes to know.
//! - **Reboot due.** `on_isolated = Reboot` and "isolated with no peer" held without a
//!   break for `reboot_after` → [`Verdict::RebootDue`], once per such episode. Node-wide
//!   and role-blind: after the release the node is Backup anyway.
//! - `on_isolated = None`: report only, never demote, release or reboot. The gate still
//!   closes: a cut-off backup claiming is the split brain itself.
//! - **Own link down.** Every interface the node's instances run on is down
//!   ([`Policy::handle_link`]): a local fault, reported as `link_down` (a
//!   warning: the instances are FAULT and the peer takes over), never as
//!   `isolated`, however the references fare. Once a link is back, isolation
//!   is not reported until every reference has had `fall` probes to prove
//!   itself (the episode began with the link, not with the network), so
//!   the link's return resolves the incident at once.
//! - **Claim probation.** A master stint that began with a claim from silence (the
//!   down timer, or the gate reopening on it) keeps probing ownership for
//!   [`PROBATION`]. Under loss every answer before the claim can be lost; the first
//!   foreign answer after it, with no advert heard, proves the old master still
//!   holds the VIP: [`Verdict::Yield`], the evidence stands and the gate stays closed
//!   as for an overdue backup. Each yield in a row doubles the silent rounds that
//!   clear that evidence, plus a per-node [`yield_backoff`] from the VRRP order,
//!   so of two nodes that claimed blind together the better one claims again
//!   first and keeps the VIP, and the other withholds.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::reachability::{Reachability, ReachabilityError, TargetState};
use splitguard_vrrp::gate::{ClaimGate, WithholdReason};

#[cfg(test)]
mod tests;

/// What an isolated node does beyond closing its gate; also the config's
/// `on_isolated = "demote" | "reboot" | "none"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnIsolated {
    /// Demote (a peer answers) or release (none does).
    #[default]
    Demote,
    /// As `Demote`, then [`Verdict::RebootDue`] after `reboot_after`.
    Reboot,
    /// Report only.
    None,
}

/// The VRRP role of an instance, as the core reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Master,
    Backup,
    Fault,
}

/// One VRRP instance the policy rules on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceSpec {
    pub name: String,
    pub vips: Vec<IpAddr>,
    /// Extra silent rounds, after a yield, before the evidence clears: smaller
    /// on the node that should win (see [`yield_backoff`]).
    pub yield_backoff: u32,
}

/// The extra silent rounds a node waits after a yield: two nodes that claimed
/// blind together (VRRP blocked both ways, ARP working) yield together, and the
/// one with the smaller backoff claims again first and keeps the VIP while the
/// other, seeing it answer, withholds. So the VRRP order decides: a round per 8
/// points of priority below 255 (lb01 at 150 waits 13, lb02 at 100 waits 19),
/// plus 0–3 from the primary address so equal priorities differ too.
pub fn yield_backoff(priority: u8, primary: IpAddr) -> u32 {
    let low = match primary {
        IpAddr::V4(a) => a.octets()[3],
        IpAddr::V6(a) => a.octets()[15],
    };
    u32::from(255 - priority) / 8 + u32::from(low % 4)
}

/// Unanswered ownership rounds in a row that clear a foreign owner's evidence
/// (rounds are at most 500 ms apart): a lossy segment loses single answers, a
/// node that really went away stays silent.
/// Six, because under 30 % loss both ways a round of two requests still goes
/// unanswered about a quarter of the time: three in a row happened within most
/// 8 s VRRP outages in the soak, six in a row about once in 300.
pub const SILENT_ROUNDS_TO_CLEAR: u32 = 6;

/// How long a claim from silence stays on probation (see the module rules): ten
/// rounds at the usual 1 s advert interval, long after a live owner answers.
pub const PROBATION: Duration = Duration::from_secs(5);

/// How long after a claim from silence the probation's first round waits. The
/// old master, if it is alive and hears us, releases on our first advert, but
/// its kernel still answers ARP for the VIP until its daemon has removed it: an
/// answer in those first milliseconds is the release under way, not an owner
/// that cannot hear us (seen as a yield and a re-claim after S4's heal).
pub const PROBATION_GRACE: Duration = Duration::from_millis(200);

/// Yields in a row beyond this stop doubling the rounds that clear the evidence
/// (6 → 48 rounds, about 24 s at 1 s adverts).
const MAX_YIELD_BACKOFF: u32 = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyConfig {
    pub references: Vec<IpAddr>,
    pub peers: Vec<IpAddr>,
    /// Reachable references needed not to be isolated; at least 1.
    pub quorum: usize,
    pub rise: u32,
    pub fall: u32,
    pub demote_weight: u8,
    pub on_isolated: OnIsolated,
    /// Used with [`OnIsolated::Reboot`] only.
    pub reboot_after: Duration,
    pub ownership_probe: bool,
    pub instances: Vec<InstanceSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("quorum must be at least 1")]
    ZeroQuorum,
    #[error("quorum {quorum} exceeds the {references} distinct reference(s) configured")]
    QuorumAboveReferences { quorum: usize, references: usize },
    #[error("instance {0:?} is configured twice")]
    DuplicateInstance(String),
    #[error("unknown instance {0:?}")]
    UnknownInstance(String),
    #[error("{vip} is not a VIP of instance {instance:?}")]
    NotAVip { instance: String, vip: IpAddr },
    #[error(transparent)]
    Reachability(#[from] ReachabilityError),
}

/// How isolated this node is (see the module rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    Connected,
    Unproven,
    Isolated,
}

/// Something to report; raised and resolved through [`Verdict`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incident {
    /// A backup's master is silent and the gate withholds the claim.
    ClaimWithheld {
        instance: String,
        reason: WithholdReason,
    },
    /// Values as of when it was raised; the live counts are in [`Policy::references`].
    Isolated {
        reachable: usize,
        quorum: usize,
    },
    Demoted {
        instance: String,
        weight: u8,
    },
    Released {
        instance: String,
    },
    RebootDue,
    /// Every interface the instances run on is down.
    LinkDown {
        interfaces: Vec<String>,
    },
}

impl Incident {
    /// The DESIGN.md incident kind the watchdog files it under.
    pub fn kind(&self) -> &'static str {
        match self {
            Incident::ClaimWithheld { .. } => "claim_withheld",
            Incident::Isolated { .. } => "isolated",
            Incident::Demoted { .. } => "demoted",
            Incident::Released { .. } => "released",
            Incident::RebootDue => "rebooting",
            Incident::LinkDown { .. } => "link_down",
        }
    }
}

/// A change the daemon acts on; each is emitted once, when it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Pass to the instance's `set_claim_gate`.
    Gate {
        instance: String,
        gate: ClaimGate,
    },
    /// Pass to the instance's `set_demotion`.
    Demotion {
        instance: String,
        weight: u8,
    },
    /// The instance is MASTER while isolated with no peer: give up its VIPs now.
    Release {
        instance: String,
    },
    /// The instance claimed from silence and another MAC answers for `vip`: the
    /// old master still holds it. Give the VIPs back (as a release) and wait as
    /// Backup behind the closed gate.
    Yield {
        instance: String,
        vip: IpAddr,
        mac: [u8; 6],
    },
    /// Reboot (subject to the ledger, which is not the policy's business).
    RebootDue,
    Raised(Incident),
    /// The same value that was raised, so the two pair up by equality.
    Resolved(Incident),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PeerView {
    AnyReachable,
    Unproven,
    Gone,
}

#[derive(Debug)]
struct Inst {
    name: String,
    vips: Vec<IpAddr>,
    /// Per VIP: the foreign MAC that answered the ownership probe this overdue spell.
    evidence: Vec<Option<[u8; 6]>>,
    /// Per VIP: probe rounds in a row nobody answered since the last answer.
    silent_rounds: Vec<u32>,
    role: Role,
    overdue: bool,
    /// The current master stint claimed from silence and may yield until then.
    probation_until: Option<Instant>,
    /// When the probation's probing may start (the claim plus [`PROBATION_GRACE`]).
    probation_from: Option<Instant>,
    /// Yields in a row (reset by adverts heard or a probation that passed clean).
    yields: u32,
    yield_backoff: u32,
    hold: bool,
    /// The witness's objection to a claim, if it has one (its lock is held
    /// elsewhere, not yet ours, or unreachable).
    witness: Option<WithholdReason>,
    // What has been published.
    gate: ClaimGate,
    weight: u8,
    released: bool,
    /// A Release was emitted for the current master stint.
    release_sent: bool,
    withheld: Option<WithholdReason>,
}

/// The arbiter policy for one node.
#[derive(Debug)]
pub struct Policy {
    references: Reachability,
    peers: Reachability,
    quorum: usize,
    demote_weight: u8,
    on_isolated: OnIsolated,
    reboot_after: Duration,
    ownership_probe: bool,
    instances: Vec<Inst>,
    /// Instance name → index in `instances`: inputs name their instance, and a
    /// node with hundreds of them must not scan for it on every advert.
    by_name: HashMap<String, usize>,
    last_now: Instant,
    /// The node-wide incident raised: `Isolated` or `LinkDown`.
    isolated_raised: Option<Incident>,
    fall: u32,
    /// The interfaces, while every one the instances run on is down.
    link_down: Option<Vec<String>>,
    /// Since the link came back in an isolation episode that began with it:
    /// failed reference probes so far (isolation is not reported until every
    /// reference could have failed `fall` times on its own).
    link_recovery: Option<u32>,
    alone_since: Option<Instant>,
    reboot_fired: bool,
    /// The peer a fence is not yet confirmed on (see `fence.rs`).
    fence_gate: Option<IpAddr>,
    verdicts: VecDeque<Verdict>,
}

impl Policy {
    /// Every instance starts as Backup (as the core starts a non-owner); the initial
    /// gates are queued at once, closed when references must first prove themselves.
    pub fn new(config: PolicyConfig, now: Instant) -> Result<Self, PolicyError> {
        if config.quorum == 0 {
            return Err(PolicyError::ZeroQuorum);
        }
        let references = Reachability::new(config.references, config.rise, config.fall)?;
        if !references.is_empty() && config.quorum > references.len() {
            return Err(PolicyError::QuorumAboveReferences {
                quorum: config.quorum,
                references: references.len(),
            });
        }
        let peers = Reachability::new(config.peers, config.rise, config.fall)?;
        let mut instances: Vec<Inst> = Vec::with_capacity(config.instances.len());
        let mut by_name = HashMap::with_capacity(config.instances.len());
        for spec in config.instances {
            if by_name.contains_key(&spec.name) {
                return Err(PolicyError::DuplicateInstance(spec.name));
            }
            by_name.insert(spec.name.clone(), instances.len());
            instances.push(Inst {
                evidence: vec![None; spec.vips.len()],
                silent_rounds: vec![0; spec.vips.len()],
                name: spec.name,
                vips: spec.vips,
                role: Role::Backup,
                overdue: false,
                probation_until: None,
                probation_from: None,
                yields: 0,
                yield_backoff: spec.yield_backoff,
                hold: false,
                witness: None,
                gate: ClaimGate::Open,
                weight: 0,
                released: false,
                release_sent: false,
                withheld: None,
            });
        }
        let mut p = Policy {
            references,
            peers,
            quorum: config.quorum,
            demote_weight: config.demote_weight,
            on_isolated: config.on_isolated,
            reboot_after: config.reboot_after,
            ownership_probe: config.ownership_probe,
            instances,
            by_name,
            last_now: now,
            isolated_raised: None,
            fall: config.fall,
            link_down: None,
            link_recovery: None,
            alone_since: None,
            reboot_fired: false,
            fence_gate: None,
            verdicts: VecDeque::new(),
        };
        p.recompute(now);
        Ok(p)
    }

    // ---- inputs ----------------------------------------------------------------

    /// A probe result for a reference or a peer (both, if the address is listed twice).
    pub fn handle_probe(
        &mut self,
        now: Instant,
        target: IpAddr,
        success: bool,
    ) -> Result<(), PolicyError> {
        let (in_refs, in_peers) = (
            self.references.contains(target),
            self.peers.contains(target),
        );
        if !in_refs && !in_peers {
            return Err(ReachabilityError::UnknownTarget(target).into());
        }
        let now = self.clock(now);
        if in_refs {
            self.references.handle_probe(now, target, success)?;
            if !success && let Some(n) = self.link_recovery.as_mut() {
                *n = n.saturating_add(1);
            }
        }
        if in_peers {
            self.peers.handle_probe(now, target, success)?;
        }
        self.recompute(now);
        Ok(())
    }

    /// The node's own links: `Some(interfaces)` while every interface the
    /// instances run on is down, `None` once one is up.
    pub fn handle_link(&mut self, now: Instant, down: Option<Vec<String>>) {
        let now = self.clock(now);
        if self.link_down == down {
            return;
        }
        self.link_recovery = match (&self.link_down, &down) {
            // Back up: the references get their probes before isolation counts.
            (Some(_), None) => Some(0),
            (_, Some(_)) => None,
            (None, None) => self.link_recovery,
        };
        self.link_down = down;
        self.recompute(now);
    }

    /// Whether the master's adverts are overdue (from the first missed one). Adverts
    /// resuming drop the ownership evidence: it belonged to that silence. An advert
    /// heard by a master on probation ends the probation: VRRP works on the wire and
    /// settles who is master by priority.
    pub fn handle_heartbeat(
        &mut self,
        now: Instant,
        instance: &str,
        overdue: bool,
    ) -> Result<(), PolicyError> {
        let now = self.clock(now);
        let i = self.index(instance)?;
        let inst = &mut self.instances[i];
        inst.overdue = overdue;
        if !overdue {
            inst.evidence.iter_mut().for_each(|e| *e = None);
            inst.silent_rounds.iter_mut().for_each(|n| *n = 0);
            inst.probation_until = None;
            inst.yields = 0;
        }
        self.recompute_one(now, i);
        Ok(())
    }

    /// The ownership probe's answer for `vip`: `Some(mac)` when a MAC not ours
    /// answered, `None` when nobody did. Taken while adverts are overdue (a late
    /// answer after the master was heard again proves nothing about the silence)
    /// and while a master is on probation; ignored otherwise.
    pub fn handle_ownership(
        &mut self,
        now: Instant,
        instance: &str,
        vip: IpAddr,
        answered_by: Option<[u8; 6]>,
    ) -> Result<(), PolicyError> {
        let now = self.clock(now);
        let i = self.index(instance)?;
        let inst = &mut self.instances[i];
        let v = inst
            .vips
            .iter()
            .position(|x| *x == vip)
            .ok_or_else(|| PolicyError::NotAVip {
                instance: instance.to_owned(),
                vip,
            })?;
        if inst.role == Role::Master && inst.probation_until.is_some() {
            let mut yielding = None;
            match answered_by {
                Some(mac) => {
                    // The claim was wrong: the old master holds the VIP and only
                    // its adverts are lost. The evidence stands into the coming
                    // Backup stint, as if the adverts were overdue there.
                    inst.probation_until = None;
                    inst.overdue = true;
                    inst.evidence[v] = Some(mac);
                    inst.silent_rounds[v] = 0;
                    inst.yields = inst.yields.saturating_add(1);
                    yielding = Some(Verdict::Yield {
                        instance: instance.to_owned(),
                        vip,
                        mac,
                    });
                }
                None => {
                    if inst.probation_until.is_some_and(|until| now >= until) {
                        inst.probation_until = None;
                        inst.yields = 0;
                    }
                }
            }
            // The gate closes first, so the released instance waits behind it.
            self.recompute_one(now, i);
            self.verdicts.extend(yielding);
        } else if inst.overdue && inst.role == Role::Backup {
            // One lost answer must not reopen the gate: the evidence stands until
            // enough rounds in a row go unanswered (more after each yield).
            match answered_by {
                Some(mac) => {
                    inst.evidence[v] = Some(mac);
                    inst.silent_rounds[v] = 0;
                }
                None => {
                    inst.silent_rounds[v] = inst.silent_rounds[v].saturating_add(1);
                    let backoff = if inst.yields > 0 {
                        inst.yield_backoff
                    } else {
                        0
                    };
                    if inst.silent_rounds[v] >= silent_rounds_to_clear(inst.yields) + backoff {
                        inst.evidence[v] = None;
                    }
                }
            }
            self.recompute_one(now, i);
        }
        Ok(())
    }

    /// The instance's role changed. Leaving Backup ends any overdue spell: a master
    /// waits for nobody's adverts, and the next backup stint starts clean, except
    /// after a yield, whose evidence and overdue spell carry into it.
    pub fn handle_role(
        &mut self,
        now: Instant,
        instance: &str,
        role: Role,
    ) -> Result<(), PolicyError> {
        let now = self.clock(now);
        let i = self.index(instance)?;
        let inst = &mut self.instances[i];
        // A master is overdue only after a yield (otherwise it was cleared when
        // the stint began), so a Backup keeps whatever stands.
        inst.role = role;
        inst.probation_until = None;
        if role != Role::Backup {
            inst.overdue = false;
            inst.evidence.iter_mut().for_each(|e| *e = None);
            inst.silent_rounds.iter_mut().for_each(|n| *n = 0);
        }
        self.recompute_one(now, i);
        Ok(())
    }

    /// The instance just became Master by claiming from silence (its down timer
    /// ran out, or the gate reopened on a pending claim), not by preemption, a
    /// priority-0 handover or as the address owner: probation starts (see the
    /// module rules). Call after [`Policy::handle_role`] with `Master`.
    pub fn handle_claim_from_silence(
        &mut self,
        now: Instant,
        instance: &str,
    ) -> Result<(), PolicyError> {
        let now = self.clock(now);
        let i = self.index(instance)?;
        let inst = &mut self.instances[i];
        if self.ownership_probe && inst.role == Role::Master {
            inst.probation_until = now.checked_add(PROBATION);
            inst.probation_from = now.checked_add(PROBATION_GRACE);
        }
        Ok(())
    }

    /// Whether the adverts are overdue as far as the policy knows: the daemon's
    /// heartbeat follows it after a yield.
    pub fn overdue(&self, instance: &str) -> Result<bool, PolicyError> {
        Ok(self.instances[self.index(instance)?].overdue)
    }

    /// An operator's DEMOTE (`true`) or RESUME (`false`).
    pub fn set_manual_hold(
        &mut self,
        now: Instant,
        instance: &str,
        hold: bool,
    ) -> Result<(), PolicyError> {
        let now = self.clock(now);
        let i = self.index(instance)?;
        self.instances[i].hold = hold;
        self.recompute_one(now, i);
        Ok(())
    }

    /// The witness's word on instance `name`'s claim: `None` when it has no
    /// objection. It ranks below the network's own evidence (see the rules).
    pub fn set_witness_gate(
        &mut self,
        now: Instant,
        instance: &str,
        objection: Option<WithholdReason>,
    ) -> Result<(), PolicyError> {
        let now = self.clock(now);
        let i = self.index(instance)?;
        if self.instances[i].witness != objection {
            self.instances[i].witness = objection;
            self.recompute_one(now, i);
        }
        Ok(())
    }

    /// A fence confirmed the host behind `mac` powered off: its earlier
    /// answers for our VIPs are stale, so they stop withholding claims now
    /// rather than after the silent rounds that clear evidence otherwise. A
    /// new answer from it counts again.
    pub fn handle_fenced(&mut self, now: Instant, mac: [u8; 6]) {
        let now = self.clock(now);
        let mut touched = false;
        for inst in &mut self.instances {
            for (e, n) in inst.evidence.iter_mut().zip(inst.silent_rounds.iter_mut()) {
                if *e == Some(mac) {
                    *e = None;
                    *n = 0;
                    touched = true;
                }
            }
        }
        if touched {
            self.recompute(now);
        }
    }

    /// The fencing policy's gate: `Some(peer)` from a fence's start until
    /// its `off` is confirmed (and after a failed one), for every instance:
    /// the pair shares them all.
    pub fn set_fence_gate(&mut self, now: Instant, peer: Option<IpAddr>) {
        let now = self.clock(now);
        if self.fence_gate != peer {
            self.fence_gate = peer;
            self.recompute(now);
        }
    }

    /// Fire the reboot deadline if it is due. Early calls do nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.clock(now);
        self.recompute(now);
    }

    // ---- outputs ---------------------------------------------------------------

    pub fn poll_verdict(&mut self) -> Option<Verdict> {
        self.verdicts.pop_front()
    }

    /// When [`Policy::handle_timeout`] is next needed: the reboot deadline, if armed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.on_isolated, self.alone_since, self.reboot_fired) {
            (OnIsolated::Reboot, Some(since), false) => since.checked_add(self.reboot_after),
            _ => None,
        }
    }

    pub fn gate(&self, instance: &str) -> Result<&ClaimGate, PolicyError> {
        Ok(&self.instances[self.index(instance)?].gate)
    }

    pub fn demotion(&self, instance: &str) -> Result<u8, PolicyError> {
        Ok(self.instances[self.index(instance)?].weight)
    }

    /// Whether the instance stands released (until the isolation with no peer ends).
    pub fn released(&self, instance: &str) -> Result<bool, PolicyError> {
        Ok(self.instances[self.index(instance)?].released)
    }

    /// True while ownership probing is enabled and the instance is Backup with its
    /// master's adverts overdue, or Master on probation (until its end, seen at
    /// `now`): then the daemon should ARP for its VIPs.
    pub fn wants_ownership_probe(&self, now: Instant, instance: &str) -> Result<bool, PolicyError> {
        let inst = &self.instances[self.index(instance)?];
        let probing = match inst.role {
            Role::Backup => inst.overdue,
            Role::Master => {
                inst.probation_until.is_some_and(|until| now < until)
                    && inst.probation_from.is_none_or(|from| now >= from)
            }
            Role::Fault => false,
        };
        Ok(self.ownership_probe && probing)
    }

    /// When a master on probation may start probing, while that is still ahead
    /// of `now`: the daemon wakes then to start the first round.
    pub fn probation_probe_at(&self, now: Instant, instance: &str) -> Option<Instant> {
        let inst = &self.instances[self.index(instance).ok()?];
        let from = inst.probation_from?;
        (inst.role == Role::Master
            && inst.probation_until.is_some_and(|until| now < until)
            && now < from)
            .then_some(from)
    }

    pub fn isolation(&self) -> Isolation {
        if self.references.is_empty() || self.references.reachable() >= self.quorum {
            Isolation::Connected
        } else if self.references.reachable() + self.references.count(TargetState::Unknown)
            >= self.quorum
        {
            Isolation::Unproven
        } else {
            Isolation::Isolated
        }
    }

    pub fn references(&self) -> &Reachability {
        &self.references
    }

    pub fn peers(&self) -> &Reachability {
        &self.peers
    }

    pub fn quorum(&self) -> usize {
        self.quorum
    }

    // ---- internals -------------------------------------------------------------

    /// Time only moves forward: an earlier `now` reads as the latest one seen, so a
    /// clock stepping back delays the reboot deadline instead of skipping it.
    fn clock(&mut self, now: Instant) -> Instant {
        if now > self.last_now {
            self.last_now = now;
        }
        self.last_now
    }

    fn index(&self, instance: &str) -> Result<usize, PolicyError> {
        self.by_name
            .get(instance)
            .copied()
            .ok_or_else(|| PolicyError::UnknownInstance(instance.to_owned()))
    }

    fn peer_view(&self) -> PeerView {
        if self.peers.reachable() > 0 {
            PeerView::AnyReachable
        } else if self.peers.count(TargetState::Unknown) > 0 {
            PeerView::Unproven
        } else {
            PeerView::Gone
        }
    }

    fn gate_for(&self, inst: &Inst, isolation: Isolation) -> ClaimGate {
        if inst.hold {
            return ClaimGate::Closed(WithholdReason::ManualHold);
        }
        if inst.overdue {
            let seen = inst.vips.iter().zip(&inst.evidence).find_map(|(vip, e)| {
                e.map(|mac| WithholdReason::VipAnsweredElsewhere { vip: *vip, mac })
            });
            if let Some(reason) = seen {
                return ClaimGate::Closed(reason);
            }
        }
        if isolation != Isolation::Connected {
            return ClaimGate::Closed(WithholdReason::Isolated {
                reachable: self.references.reachable(),
                quorum: self.quorum,
            });
        }
        if let Some(peer) = self.fence_gate {
            return ClaimGate::Closed(WithholdReason::FenceUnconfirmed { peer });
        }
        if let Some(reason) = &inst.witness {
            return ClaimGate::Closed(reason.clone());
        }
        ClaimGate::Open
    }

    /// Derive every verdict from the current inputs and queue what differs from what
    /// was last published. After a node-wide input (a probe result): every
    /// instance's verdicts depend on the node's reachability.
    fn recompute(&mut self, now: Instant) {
        let mut out = Vec::new();
        let ctx = self.recompute_node(now, &mut out);
        for i in 0..self.instances.len() {
            self.recompute_instance(i, &ctx, &mut out);
        }
        self.verdicts.extend(out);
    }

    /// The whole recompute, for tests that check [`Policy::recompute_one`] leaves
    /// nothing behind.
    #[cfg(test)]
    fn recompute_all(&mut self, now: Instant) {
        self.recompute(now);
    }

    /// [`Policy::recompute`] after an input about instance `i` alone (heartbeat,
    /// ownership answer, role, hold): the node-wide inputs did not move, so every
    /// other instance's verdicts stand as published, and the work is O(1) in the
    /// number of instances.
    fn recompute_one(&mut self, now: Instant, i: usize) {
        let mut out = Vec::new();
        let ctx = self.recompute_node(now, &mut out);
        self.recompute_instance(i, &ctx, &mut out);
        self.verdicts.extend(out);
    }

    /// The node's verdicts (isolation, the reboot deadline), and what the
    /// instances' verdicts need to know of the node.
    fn recompute_node(&mut self, now: Instant, out: &mut Vec<Verdict>) -> NodeView {
        let isolation = self.isolation();
        let peers = self.peer_view();
        let acting = self.on_isolated != OnIsolated::None;
        let isolated = isolation == Isolation::Isolated;
        let alone = isolated && peers == PeerView::Gone;

        // Node: the isolation incident, or the local fault that explains it.
        if !isolated && self.link_down.is_none() {
            self.link_recovery = None;
        }
        let recovering = self.link_recovery.is_some_and(|failed| {
            (failed as usize) < (self.fall as usize).saturating_mul(self.references.len())
        });
        let want = match &self.link_down {
            Some(interfaces) => Some(Incident::LinkDown {
                interfaces: interfaces.clone(),
            }),
            None if isolated && !recovering => Some(Incident::Isolated {
                reachable: self.references.reachable(),
                quorum: self.quorum,
            }),
            None => None,
        };
        let same = match (&want, &self.isolated_raised) {
            (Some(w), Some(r)) => w.kind() == r.kind(),
            (None, None) => true,
            _ => false,
        };
        if !same {
            if let Some(inc) = self.isolated_raised.take() {
                out.push(Verdict::Resolved(inc));
            }
            if let Some(inc) = want {
                self.isolated_raised = Some(inc.clone());
                out.push(Verdict::Raised(inc));
            }
        }

        // Node: the isolated-and-alone episode and its reboot deadline.
        if alone {
            if self.alone_since.is_none() {
                self.alone_since = Some(now);
            }
        } else {
            self.alone_since = None;
            if self.reboot_fired {
                self.reboot_fired = false;
                out.push(Verdict::Resolved(Incident::RebootDue));
            }
        }
        if self.poll_timeout().is_some_and(|deadline| now >= deadline) {
            self.reboot_fired = true;
            out.push(Verdict::RebootDue);
            out.push(Verdict::Raised(Incident::RebootDue));
        }

        let weight = if acting && isolated && peers == PeerView::AnyReachable {
            self.demote_weight
        } else {
            0
        };
        NodeView {
            isolation,
            acting,
            alone,
            weight,
        }
    }

    /// Instance `i`'s verdicts: what differs from what was last published.
    fn recompute_instance(&mut self, i: usize, ctx: &NodeView, out: &mut Vec<Verdict>) {
        let NodeView {
            isolation,
            acting,
            alone,
            weight,
        } = *ctx;
        let gate = self.gate_for(&self.instances[i], isolation);
        let inst = &mut self.instances[i];
        let name = inst.name.clone();

        if gate != inst.gate {
            inst.gate = gate.clone();
            out.push(Verdict::Gate {
                instance: name.clone(),
                gate: gate.clone(),
            });
        }

        if weight != inst.weight {
            let old = std::mem::replace(&mut inst.weight, weight);
            out.push(Verdict::Demotion {
                instance: name.clone(),
                weight,
            });
            if old > 0 {
                out.push(Verdict::Resolved(Incident::Demoted {
                    instance: name.clone(),
                    weight: old,
                }));
            }
            if weight > 0 {
                out.push(Verdict::Raised(Incident::Demoted {
                    instance: name.clone(),
                    weight,
                }));
            }
        }

        let release = acting && alone && inst.role == Role::Master;
        if release && !inst.release_sent {
            out.push(Verdict::Release {
                instance: name.clone(),
            });
        }
        inst.release_sent = release;
        if release && !inst.released {
            inst.released = true;
            out.push(Verdict::Raised(Incident::Released {
                instance: name.clone(),
            }));
        } else if !alone && inst.released {
            inst.released = false;
            out.push(Verdict::Resolved(Incident::Released {
                instance: name.clone(),
            }));
        }

        // Reported while it actually holds a claim back; a change of evidence
        // (not just of counts inside it) re-raises.
        // The witness's pending answer is a wait of a few milliseconds (a
        // contend in flight) to seconds (the old master's release deadline),
        // not a refusal: not paged.
        let withheld = match &gate {
            ClaimGate::Closed(WithholdReason::WitnessPending) => None,
            ClaimGate::Closed(r) if inst.role == Role::Backup && inst.overdue => Some(r.clone()),
            _ => None,
        };
        let same = match (&withheld, &inst.withheld) {
            (Some(a), Some(b)) => same_evidence(a, b),
            (None, None) => true,
            _ => false,
        };
        if !same {
            if let Some(old) = inst.withheld.take() {
                out.push(Verdict::Resolved(Incident::ClaimWithheld {
                    instance: name.clone(),
                    reason: old,
                }));
            }
            if let Some(reason) = withheld {
                inst.withheld = Some(reason.clone());
                out.push(Verdict::Raised(Incident::ClaimWithheld {
                    instance: name,
                    reason,
                }));
            }
        }
    }
}

/// What every instance's verdicts take from the node-wide inputs.
#[derive(Debug, Clone, Copy)]
struct NodeView {
    isolation: Isolation,
    acting: bool,
    alone: bool,
    weight: u8,
}

/// Silent rounds in a row that clear the evidence after `yields` yields in a row.
fn silent_rounds_to_clear(yields: u32) -> u32 {
    SILENT_ROUNDS_TO_CLEAR << yields.min(MAX_YIELD_BACKOFF)
}

/// Same incident for reporting: Isolated counts may move without a new page, a
/// different VIP or MAC is new evidence.
fn same_evidence(a: &WithholdReason, b: &WithholdReason) -> bool {
    match (a, b) {
        (WithholdReason::Isolated { .. }, WithholdReason::Isolated { .. }) => true,
        _ => a == b,
    }
}
