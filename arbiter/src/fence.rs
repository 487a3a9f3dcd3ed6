//! The fencing policy: when this node powers its peer off (STONITH), with the
//! safety rules of Pacemaker and sbd. Sans-IO: inputs take `now`;
//! [`Fencing::poll_action`] hands out what to do, [`Fencing::poll_timeout`]
//! when to call [`Fencing::handle_timeout`]. Running the agent, the Redfish
//! client, the audit and the pages are the node's.
//!
//! - **Never when isolated**: with the references below quorum (or the own
//!   links down) this node fences nobody, whatever it sees; an operator's
//!   order is refused too.
//! - **A confirmed split brain** (two owners of one of the pair's VIPs) held
//!   for `fence_after`: the node the VRRP order keeps ([`Standing::Better`])
//!   fences first; the other waits `fence_after + yield_delay` and looks
//!   again, so of two nodes that see the same split brain only the better
//!   one fences (Pacemaker's `priority-fencing-delay`). `yield_delay` is
//!   longer than the better node's whole fence. A node that does not know the
//!   order ([`Standing::Unknown`]: the peer's priority never heard) does not
//!   fence a split brain by itself: guessing could make both nodes "better".
//! - **A dead peer daemon** whose VIP still answers: only when the direct
//!   health path says the daemon is gone. The wire alone never fences: a dead
//!   daemon and a firewalled heartbeat look the same on it.
//! - **An operator's order** (a reply `FENCE`, its PIN already checked).
//! - **After `off`**, `status` must say off before the claim gate opens; a
//!   fence not confirmed is reported and the gate stays closed until the
//!   peer is seen alive again or the trigger is gone.
//! - **The ledger**: at most `limit` fences per `window`, none before
//!   `min_uptime` after the start; a refusal is reported once per episode.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

#[cfg(test)]
mod tests;

/// The fencing policy's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FenceConfig {
    /// How long a split brain (or a dead daemon with its VIP) must hold.
    pub fence_after: Duration,
    /// The extra wait of the node the VRRP order does not keep: longer than
    /// the better node's whole fence (off and status, each up to the agent's
    /// timeout) plus the spread between the two nodes' detections.
    pub yield_delay: Duration,
    pub limit: u32,
    pub window: Duration,
    /// No fence this soon after the daemon started.
    pub min_uptime: Duration,
}

impl FenceConfig {
    /// The yield delay for an agent `timeout`: two of its calls (off, then
    /// status) and `fence_after` again for the spread between detections.
    pub fn yield_delay_for(timeout: Duration, fence_after: Duration) -> Duration {
        timeout * 2 + fence_after.max(Duration::from_secs(5))
    }
}

/// Where this node stands against its peer in the VRRP order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// It keeps the VIP: higher priority, or equal and higher address.
    Better,
    Worse,
    /// The peer's priority is not known: no automatic split-brain fence.
    Unknown,
}

impl Standing {
    /// VRRP's order (RFC 5798 6.4.3): the higher priority, then the higher
    /// primary address.
    pub fn by_order<A: Ord>(own: (u8, A), peer: (u8, A)) -> Standing {
        if own > peer {
            Standing::Better
        } else {
            Standing::Worse
        }
    }
}

/// Why a fence was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FenceReason {
    SplitBrain,
    DaemonDead,
    Ordered { by: String },
}

impl FenceReason {
    /// The name the audit, the events and `/metrics` use.
    pub fn as_str(&self) -> &'static str {
        match self {
            FenceReason::SplitBrain => "split_brain",
            FenceReason::DaemonDead => "daemon_dead",
            FenceReason::Ordered { .. } => "ordered",
        }
    }
}

/// What the peer's power status said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Power {
    On,
    Off,
    /// The status call failed or timed out.
    Unknown,
}

/// How the `off` call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffOutcome {
    Done,
    /// `--dry-run`: logged, not called. Counted in the ledger as a fence
    /// would be, so a dry run shows what the limits would allow.
    DryRun,
    Failed(String),
}

/// What the node must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FenceAction {
    /// Run the agent's `off` (or the Redfish ForceOff).
    Fence { reason: FenceReason },
    /// Run the agent's `status`.
    Confirm,
    /// Close (or open) the claim gate of the instances the peer shares:
    /// closed from the fence's start until `status` says off.
    Gate { closed: bool },
    /// A fence was wanted but is not done; the reason in words.
    Refused { reason: FenceReason, why: String },
    /// Started (paged `fencing`).
    Fencing { reason: FenceReason },
    /// Confirmed off (paged `fenced`).
    Fenced { reason: FenceReason },
    /// Not done or not confirmed (paged `fence_failed`).
    FenceFailed { reason: FenceReason, why: String },
}

/// Where the policy is, for `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Idle,
    /// A trigger holds; the fence is due at [`Fencing::poll_timeout`].
    Waiting,
    /// The agent's `off` is running.
    Fencing,
    /// `status` is running after `off`.
    Confirming,
    /// Confirmed off: nothing more until the peer is seen again.
    Fenced,
    /// The last fence failed or was not confirmed: the gate stays closed.
    Failed,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::Waiting => "waiting",
            Phase::Fencing => "fencing",
            Phase::Confirming => "confirming",
            Phase::Fenced => "fenced",
            Phase::Failed => "failed",
        }
    }
}

/// The fencing policy for one peer.
#[derive(Debug)]
pub struct Fencing {
    cfg: FenceConfig,
    standing: Standing,
    started: Instant,
    isolated: bool,
    split_since: Option<Instant>,
    /// `Some(true)`: the health path says the peer's daemon is alive.
    /// `None`: no health path, so a dead daemon is never concluded.
    peer_alive: Option<bool>,
    vip_answered_since: Option<Instant>,
    busy: Busy,
    /// The reason of the fence under way or last done.
    reason: Option<FenceReason>,
    /// When fences were attempted (the ledger), oldest first.
    attempts: VecDeque<Instant>,
    /// A refusal reported for the current episode (once, not per timer).
    refused: bool,
    /// After a refusal: when it may be tried again by time alone (the start
    /// limit's end, the ledger's oldest fence leaving the window); `None`
    /// when only an input can change it (isolation, the standing).
    retry_at: Option<Instant>,
    gate_closed: bool,
    actions: VecDeque<FenceAction>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Busy {
    Idle,
    Fencing,
    Confirming,
    Fenced,
    Failed,
}

impl Fencing {
    pub fn new(cfg: FenceConfig, standing: Standing, now: Instant) -> Fencing {
        Fencing {
            cfg,
            standing,
            started: now,
            isolated: false,
            split_since: None,
            peer_alive: None,
            vip_answered_since: None,
            busy: Busy::Idle,
            reason: None,
            attempts: VecDeque::new(),
            refused: false,
            retry_at: None,
            gate_closed: false,
            actions: VecDeque::new(),
        }
    }

    /// Seeds the ledger with fences done before this start (from the ledger's
    /// file): a restart must not reset the limit.
    pub fn restore_attempts(&mut self, at: impl IntoIterator<Item = Instant>) {
        let mut all: Vec<Instant> = self.attempts.iter().copied().chain(at).collect();
        all.sort_unstable();
        self.attempts = all.into();
    }

    /// References below quorum, or the own links down.
    pub fn handle_isolation(&mut self, now: Instant, isolated: bool) {
        if self.isolated != isolated {
            self.isolated = isolated;
            // Connected again: an episode refused for isolation is tried anew.
            if !isolated {
                self.refused = false;
            }
        }
        self.settle(now);
    }

    /// Where this node stands against the peer (it moves with priorities).
    pub fn handle_standing(&mut self, now: Instant, standing: Standing) {
        if self.standing != standing {
            self.standing = standing;
            self.refused = false;
        }
        self.settle(now);
    }

    /// Two owners of one of the pair's VIPs (`true`), or not any more.
    pub fn handle_split_brain(&mut self, now: Instant, split: bool) {
        match (split, self.split_since) {
            (true, None) => {
                self.split_since = Some(now);
                // The peer owns a VIP again: a fence done before is over.
                if self.busy == Busy::Fenced {
                    self.busy = Busy::Idle;
                }
            }
            (false, Some(_)) => {
                self.split_since = None;
                self.refused = false;
            }
            _ => {}
        }
        self.settle(now);
    }

    /// The direct health path's word on the peer's daemon.
    pub fn handle_peer_health(&mut self, now: Instant, alive: bool) {
        self.peer_alive = Some(alive);
        if alive && matches!(self.busy, Busy::Fenced | Busy::Failed) {
            // The peer is back (powered on by someone) or never went: the
            // episode is over, and its gate with it.
            self.busy = Busy::Idle;
        }
        self.settle(now);
    }

    /// The peer's VIP answers from its MAC while its adverts are silent.
    pub fn handle_vip_answered(&mut self, now: Instant, answered: bool) {
        self.vip_answered_since = match (answered, self.vip_answered_since) {
            (true, None) => Some(now),
            (true, s) => s,
            (false, _) => None,
        };
        self.settle(now);
    }

    /// An operator's order, its PIN already checked.
    pub fn handle_order(&mut self, now: Instant, by: String) {
        if matches!(self.busy, Busy::Fenced | Busy::Failed) {
            self.busy = Busy::Idle;
        }
        self.start(now, FenceReason::Ordered { by });
        self.settle(now);
    }

    /// The agent's `off` finished.
    pub fn handle_off(&mut self, now: Instant, outcome: OffOutcome) {
        if self.busy != Busy::Fencing {
            return;
        }
        match outcome {
            OffOutcome::Done => {
                self.busy = Busy::Confirming;
                self.actions.push_back(FenceAction::Confirm);
            }
            OffOutcome::DryRun => {
                // Nothing was done: the episode starts over, as if no fence
                // were configured, and the ledger bounds how often.
                self.busy = Busy::Idle;
                self.split_since = self.split_since.map(|_| now);
                self.vip_answered_since = self.vip_answered_since.map(|_| now);
            }
            OffOutcome::Failed(why) => self.fail(why),
        }
        self.settle(now);
    }

    /// The agent's `status` after `off`.
    pub fn handle_status(&mut self, now: Instant, power: Power) {
        if self.busy != Busy::Confirming {
            return;
        }
        match power {
            Power::Off => {
                self.busy = Busy::Fenced;
                let reason = self.reason.clone().unwrap_or(FenceReason::SplitBrain);
                self.actions.push_back(FenceAction::Fenced { reason });
            }
            Power::On => self.fail("the peer is still powered on after off".to_owned()),
            Power::Unknown => self.fail("the peer's power status is unknown after off".to_owned()),
        }
        self.settle(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.settle(now);
    }

    pub fn poll_action(&mut self) -> Option<FenceAction> {
        self.actions.pop_front()
    }

    /// When a verdict can next change with time alone.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.busy != Busy::Idle {
            return None;
        }
        if self.refused {
            return self.retry_at;
        }
        self.due()
    }

    /// Where the policy is, for `status`.
    pub fn phase(&self) -> Phase {
        match self.busy {
            Busy::Idle if self.due().is_some() && !self.refused => Phase::Waiting,
            Busy::Idle => Phase::Idle,
            Busy::Fencing => Phase::Fencing,
            Busy::Confirming => Phase::Confirming,
            Busy::Fenced => Phase::Fenced,
            Busy::Failed => Phase::Failed,
        }
    }

    pub fn standing(&self) -> Standing {
        self.standing
    }

    /// Fences in the ledger's window as of the last input.
    pub fn attempts(&self) -> usize {
        self.attempts.len()
    }

    /// The claim gate's state as last handed out.
    pub fn gate_closed(&self) -> bool {
        self.gate_closed
    }

    /// When an automatic fence is due, if a trigger holds.
    fn due(&self) -> Option<Instant> {
        let split = match self.standing {
            Standing::Better => self.split_since.map(|t| t + self.cfg.fence_after),
            Standing::Worse => self
                .split_since
                .map(|t| t + self.cfg.fence_after + self.cfg.yield_delay),
            Standing::Unknown => None,
        };
        // A dead daemon is seen by one node alone (the other is the dead
        // one): no order to wait for.
        let dead = (self.peer_alive == Some(false))
            .then_some(self.vip_answered_since)
            .flatten()
            .map(|t| t + self.cfg.fence_after);
        split.into_iter().chain(dead).min()
    }

    fn fail(&mut self, why: String) {
        // The gate stays closed: a peer not proven off may still hold.
        self.busy = Busy::Failed;
        let reason = self.reason.clone().unwrap_or(FenceReason::SplitBrain);
        self.actions
            .push_back(FenceAction::FenceFailed { reason, why });
    }

    fn set_gate(&mut self, closed: bool) {
        if self.gate_closed != closed {
            self.gate_closed = closed;
            self.actions.push_back(FenceAction::Gate { closed });
        }
    }

    fn settle(&mut self, now: Instant) {
        // The gate: closed while a fence runs, and after one that failed
        // until the split brain is gone and the health path (where there is
        // one) hears the peer's daemon: a peer not proven off, frozen with
        // its VIP, may come back with it.
        let trigger = self.split_since.is_some() || self.peer_alive == Some(false);
        if self.busy == Busy::Failed && !trigger {
            self.busy = Busy::Idle;
        }
        let closed = matches!(self.busy, Busy::Fencing | Busy::Confirming | Busy::Failed);
        self.set_gate(closed);
        if self.busy != Busy::Idle {
            return;
        }
        if self.refused && self.retry_at.is_some_and(|t| now >= t) {
            self.refused = false;
        }
        if self.refused {
            return;
        }
        if self.split_since.is_some() && self.standing == Standing::Unknown {
            self.refused = true;
            self.retry_at = None;
            self.actions.push_back(FenceAction::Refused {
                reason: FenceReason::SplitBrain,
                why: "the VRRP order against the peer is unknown (its priority was never heard): \
                      set peer_priority so both nodes agree who fences"
                    .to_owned(),
            });
        }
        let held = |since: Option<Instant>, wait: Duration| since.is_some_and(|t| now >= t + wait);
        let split_wait = match self.standing {
            Standing::Better => Some(self.cfg.fence_after),
            Standing::Worse => Some(self.cfg.fence_after + self.cfg.yield_delay),
            Standing::Unknown => None,
        };
        if split_wait.is_some_and(|w| held(self.split_since, w)) {
            self.start(now, FenceReason::SplitBrain);
        } else if self.peer_alive == Some(false)
            && held(self.vip_answered_since, self.cfg.fence_after)
        {
            self.start(now, FenceReason::DaemonDead);
        }
        let closed = matches!(self.busy, Busy::Fencing | Busy::Confirming | Busy::Failed);
        self.set_gate(closed);
    }

    fn start(&mut self, now: Instant, reason: FenceReason) {
        if self.busy != Busy::Idle {
            return;
        }
        self.retry_at = None;
        let refusal = if self.isolated {
            Some("this node is isolated: it fences nobody".to_owned())
        } else if now < self.started + self.cfg.min_uptime {
            self.retry_at = Some(self.started + self.cfg.min_uptime);
            Some(format!(
                "not in the first {:?} after the start",
                self.cfg.min_uptime
            ))
        } else {
            while self
                .attempts
                .front()
                .is_some_and(|&t| now >= t + self.cfg.window)
            {
                self.attempts.pop_front();
            }
            let full = self.attempts.len() >= self.cfg.limit as usize;
            if full {
                self.retry_at = self.attempts.front().map(|&t| t + self.cfg.window);
            }
            full.then(|| {
                format!(
                    "{} fence(s) in the last {:?}: the ledger allows {}",
                    self.attempts.len(),
                    self.cfg.window,
                    self.cfg.limit
                )
            })
        };
        if let Some(why) = refusal {
            // An automatic trigger is refused once per episode; an
            // operator's order always hears why.
            let ordered = matches!(reason, FenceReason::Ordered { .. });
            if ordered || !self.refused {
                self.refused |= !ordered;
                self.actions.push_back(FenceAction::Refused { reason, why });
            }
            return;
        }
        self.attempts.push_back(now);
        self.busy = Busy::Fencing;
        self.reason = Some(reason.clone());
        self.set_gate(true);
        self.actions.push_back(FenceAction::Fencing {
            reason: reason.clone(),
        });
        self.actions.push_back(FenceAction::Fence { reason });
    }
}
