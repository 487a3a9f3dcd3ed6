//! The per-instance VRRP state machine (one VRID on one interface): elections, timers,
//! tracking, the arbiter's claim gate and demotion. Sans-IO in the quinn-proto manner:
//! `handle_*` takes inputs with an explicit `now`, [`Instance::poll_action`] hands out
//! what to do, [`Instance::poll_timeout`] says when to call
//! [`Instance::handle_timeout`]. No sockets, no clock, no sleeps.
//!
//! Rules: RFC 3768 §6 (v2) and RFC 5798 §6 (v3); where keepalived 2.2.7 (the peer we
//! interoperate with) differs, keepalived wins and the code says so. In short:
//!
//! - **Startup.** Priority 255 (owner) → Master at once; otherwise Backup with the down
//!   timer at Master_Down_Interval (configured interval). A weight-0 tracker already
//!   down → Fault.
//! - **Backup.** Priority 0 → down timer = Skew_Time. Accept (timer reset, master
//!   recorded, v3 learns Master_Adver_Interval) if `!preempt`, or the advert's priority
//!   ≥ our effective priority, or a preempt delay is running; otherwise discard and let
//!   the down timer run out (that is how a backup preempts). v2 adverts whose interval
//!   differs from ours are discarded (RFC 3768 §7.1 and keepalived agree).
//! - **Down timer expiry.** Gate open → Master. Gate closed → stay Backup, emit
//!   [`Action::ClaimWithheld`] once and keep the claim pending; the gate opening while
//!   pending claims after the gate skew ([`gate_skew`]: Skew_Time over at
//!   least a second, so of two nodes whose gates open together the better claims
//!   first); any accepted advert cancels the pending claim, also during that wait.
//! - **Master.** Adver timer → advert. Priority 0 → advert at once. Better advert
//!   (higher priority, or equal with a higher address) → Backup. Worse → stay and
//!   advertise at once (keepalived's "forcing new election"; the RFCs just discard).
//! - **Priority.** Effective = base + trackers − demotion, clamped to 1..=254; the owner
//!   stays 255. A change while Master is re-advertised at once.
//! - **Fault.** Any weight-0 tracker down. Leaving Master for Fault sends a priority-0
//!   advert and removes the VIPs. Adverts are ignored and no timer runs in Fault.
//! - **Shutdown.** Master sends priority 0 and removes the VIPs; every state reports a
//!   change to `Initialize` with [`Cause::Shutdown`] (notify word `STOP`). Afterwards
//!   every input is ignored.
//!
//! Time only moves forward here: a `now` earlier than one already seen is read as the
//! latest one, so a clock that steps back stalls timers instead of replaying them.

mod config;
mod timers;
mod tracking;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::gate::{ClaimGate, WithholdReason};

use crate::Version;

pub use config::{
    ConfigError, InstanceConfig, MAX_PREEMPT_DELAY, MAX_TRACKER_WEIGHT, TrackerConfig,
};
pub use timers::{
    DOWN_TIMER_ADVERTS, V2_MAX_INTERVAL, V2_MIN_INTERVAL, V3_MAX_INTERVAL, V3_MIN_INTERVAL,
    gate_skew, interval_bounds, learned_interval, master_down_interval, skew_time, wire_interval,
};
pub use tracking::{OWNER_PRIORITY, TrackerError, TrackerStatus};

use timers::after;
use tracking::{Trackers, effective_priority};

/// RFC state of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Before startup and after shutdown.
    Initialize,
    Backup,
    Master,
    /// A weight-0 tracker is down (keepalived's FAULT; not an RFC state).
    Fault,
}

impl State {
    /// keepalived's word for the state, as notify scripts and logs print it.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Initialize => "INIT",
            State::Backup => "BACKUP",
            State::Master => "MASTER",
            State::Fault => "FAULT",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a state change happened; the watchdog tells failover from preemption by it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// `handle_startup`.
    Startup,
    /// Backup's down timer ran out after adverts stopped (failover).
    MasterSilent,
    /// Backup's down timer ran out after the master sent priority 0 (graceful handover).
    MasterReleased,
    /// Backup's down timer ran out while it discarded a lower-priority master's adverts
    /// (preemption).
    PreemptedLower,
    /// A withheld claim went through because the gate opened.
    GateOpened,
    /// Master heard a better advert and yielded to it.
    HigherPriority { src: IpAddr, priority: u8 },
    /// A weight-0 tracker went down.
    TrackerDown { name: String },
    /// All weight-0 trackers are up again.
    TrackersUp,
    /// `handle_shutdown` (keepalived notify `STOP`).
    Shutdown,
    /// The arbiter found this master isolated with no peer reachable (self-demotion).
    Released,
    /// The arbiter found the VIP still answering from another MAC right after a
    /// claim from silence: the old master holds it and only its adverts are lost.
    Yielded,
    /// The operator's DEMOTE.
    Held,
    /// The witness released the VIPs: neither a live lease nor the peer's
    /// confirmation vouched for this master any more.
    WitnessLost,
    /// The arbiter confirmed the silent master dead (its liveness lost, nobody
    /// answering for the VIPs, no advert since) before the down timer ran out.
    EarlyTakeover { master: IpAddr },
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Startup => f.write_str("startup"),
            Cause::MasterSilent => f.write_str("master went silent"),
            Cause::MasterReleased => f.write_str("master released (priority 0)"),
            Cause::PreemptedLower => f.write_str("preempted a lower-priority master"),
            Cause::GateOpened => f.write_str("claim gate opened"),
            Cause::HigherPriority { src, priority } => {
                write!(f, "heard {src} at priority {priority}")
            }
            Cause::TrackerDown { name } => write!(f, "tracker {name} down"),
            Cause::TrackersUp => f.write_str("trackers up again"),
            Cause::Shutdown => f.write_str("shutdown"),
            Cause::Released => f.write_str("released by the arbiter (isolated)"),
            Cause::Yielded => {
                f.write_str("yielded: the VIP still answers from another MAC after the claim")
            }
            Cause::Held => f.write_str("held by the operator"),
            Cause::WitnessLost => f.write_str(
                "released by the witness: neither a live lease nor the peer's confirmation",
            ),
            Cause::EarlyTakeover { master } => {
                write!(
                    f,
                    "early_takeover: master {master} confirmed dead by the arbiter"
                )
            }
        }
    }
}

/// What the daemon must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send one advert with this priority (0: "I am leaving").
    SendAdvert { priority: u8 },
    /// Configure the virtual addresses on the interface.
    AddVips,
    /// Remove the virtual addresses.
    RemoveVips,
    /// Announce the VIPs (gratuitous ARP / unsolicited NA); repeats are the daemon's.
    SendGarp,
    /// The state changed; `priority` is the effective priority at that moment (what
    /// keepalived passes to notify scripts).
    StateChanged {
        from: State,
        to: State,
        priority: u8,
        cause: Cause,
    },
    /// The down timer ran out but the claim gate is closed: staying Backup. Emitted once
    /// per episode.
    ClaimWithheld { reason: WithholdReason },
}

impl Action {
    /// For a state change, keepalived's notify word: `MASTER`, `BACKUP`, `FAULT`, or
    /// `STOP` for the shutdown change to `Initialize`.
    pub fn notify_word(&self) -> Option<&'static str> {
        match self {
            Action::StateChanged { to, .. } => Some(match to {
                State::Initialize => "STOP",
                other => other.as_str(),
            }),
            _ => None,
        }
    }
}

/// A validated advert for this instance's VRID, reduced to what the election needs.
/// The daemon builds it from a packet the codec accepted (checksum, TTL, auth, VRID).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceivedAdvert {
    /// The IP source address of the packet.
    pub src: IpAddr,
    pub priority: u8,
    /// The advertised interval (v2: whole seconds, v3: centiseconds).
    pub interval: Duration,
}

/// What `handle_advert` made of an advert (for logs, counters and the watchdog).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdvertOutcome {
    /// Backup: accepted; down timer restarted.
    Accepted,
    /// Backup: priority 0; the down timer now ends after Skew_Time.
    MasterReleased,
    /// Master: a peer's priority 0 answered with an advert at once.
    AnsweredRelease,
    /// Master: a worse advert answered with an advert at once (keepalived's "forcing
    /// new election"; evidence of a recent dual master).
    ForcedElection,
    /// Master: a better advert; now Backup.
    Yielded,
    /// Dropped by a receive rule; timers unchanged.
    Discarded(DiscardReason),
    /// Not processed: not started, stopped, or in Fault.
    Ignored,
}

/// Why an advert was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscardReason {
    /// Backup with preemption: a lower-priority master is not accepted.
    LowerPriority,
    /// v2: the advertised interval is not ours (RFC 3768 §7.1, keepalived).
    IntervalMismatch { ours: Duration, theirs: Duration },
    /// The source is our own primary address (a loop, or a duplicate address).
    OwnAddress,
    /// The source is not of our primary address's family; no tie-break is defined.
    AddressFamily,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Configured,
    Running,
    Stopped,
}

/// keepalived's preempt delay: while it runs, a lower-priority master is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PreemptHold {
    /// Not running; the next lower-priority advert starts it (if a delay is configured).
    Idle,
    /// Running until then; `None` means past the end of the clock, i.e. never ends.
    Until(Option<Instant>),
}

/// The one VRRP instance state machine. See the module docs for the rules.
#[derive(Debug, Clone)]
pub struct Instance {
    version: Version,
    vrid: u8,
    base_priority: u8,
    advert_interval: Duration,
    preempt: bool,
    preempt_delay: Duration,
    primary_ip: IpAddr,
    trackers: Trackers,
    demotion: u8,
    effective_priority: u8,

    phase: Phase,
    state: State,
    /// Master: the adver timer. Backup: the down timer. `None`: no timer (or a
    /// deadline beyond the end of the clock).
    timer: Option<Instant>,
    master: Option<IpAddr>,
    /// The last other router whose advert was accepted as master, kept across
    /// transitions: a takeover after its silence is a failover, a takeover
    /// with no master ever heard (a fresh start) is not.
    last_peer_master: Option<IpAddr>,
    /// The current master stint began with a claim from silence (down timer or
    /// gate reopening): the arbiter keeps it on probation.
    claimed_from_silence: bool,
    master_adver_interval: Duration,
    /// What the running down timer means if it expires.
    down_cause: Cause,
    preempt_hold: PreemptHold,
    gate: ClaimGate,
    claim_pending: bool,
    vips_held: bool,
    last_now: Option<Instant>,
    actions: VecDeque<Action>,
}

impl Instance {
    /// A new instance in `Initialize`. Never fails: values [`InstanceConfig::validate`]
    /// would reject are pulled to the nearest usable ones (priority 0 → 1, intervals
    /// rounded and clamped to the wire's range, preempt delay ≤ 1000 s).
    pub fn new(cfg: InstanceConfig) -> Self {
        let s = config::Sanitized::from(&cfg);
        let trackers = Trackers::new(&cfg.trackers);
        let effective_priority = effective_priority(s.priority, trackers.adjustment(), 0);
        Instance {
            version: cfg.version,
            vrid: cfg.vrid,
            base_priority: s.priority,
            advert_interval: s.advert_interval,
            preempt: cfg.preempt,
            preempt_delay: s.preempt_delay,
            primary_ip: cfg.primary_ip,
            trackers,
            demotion: 0,
            effective_priority,
            phase: Phase::Configured,
            state: State::Initialize,
            timer: None,
            master: None,
            last_peer_master: None,
            claimed_from_silence: false,
            master_adver_interval: s.advert_interval,
            down_cause: Cause::MasterSilent,
            preempt_hold: PreemptHold::Idle,
            gate: ClaimGate::Open,
            claim_pending: false,
            vips_held: false,
            last_now: None,
            actions: VecDeque::new(),
        }
    }

    /// [`InstanceConfig::validate`], then [`Instance::new`].
    pub fn try_new(cfg: InstanceConfig) -> Result<Self, ConfigError> {
        cfg.validate()?;
        Ok(Self::new(cfg))
    }

    // ---- getters -------------------------------------------------------------------

    pub fn state(&self) -> State {
        self.state
    }
    pub fn version(&self) -> Version {
        self.version
    }
    pub fn vrid(&self) -> u8 {
        self.vrid
    }
    pub fn primary_ip(&self) -> IpAddr {
        self.primary_ip
    }
    pub fn base_priority(&self) -> u8 {
        self.base_priority
    }
    /// The priority we advertise and compare with.
    pub fn effective_priority(&self) -> u8 {
        self.effective_priority
    }
    /// The arbiter's demotion currently applied.
    pub fn demotion(&self) -> u8 {
        self.demotion
    }
    /// Our Advertisement_Interval as sent (after rounding to the wire unit).
    pub fn advert_interval(&self) -> Duration {
        self.advert_interval
    }
    /// The interval the down timer counts in: learned from the master (v3), else ours.
    pub fn master_adver_interval(&self) -> Duration {
        self.master_adver_interval
    }
    /// Skew_Time at the current effective priority.
    pub fn skew_time(&self) -> Duration {
        skew_time(
            self.version,
            self.effective_priority,
            self.master_adver_interval,
        )
    }
    /// How long a claim the gate held waits after the gate opens ([`gate_skew`]).
    pub fn gate_skew(&self) -> Duration {
        gate_skew(
            self.version,
            self.effective_priority,
            self.master_adver_interval,
        )
    }
    /// Master_Down_Interval at the current effective priority.
    pub fn master_down_interval(&self) -> Duration {
        master_down_interval(
            self.version,
            self.effective_priority,
            self.master_adver_interval,
        )
    }
    /// The current master as far as we know: ourselves when Master, the last heard
    /// master when Backup, `None` when it went silent or we are not running.
    pub fn master(&self) -> Option<IpAddr> {
        self.master
    }

    /// The last other router heard as master since this instance started.
    pub fn last_peer_master(&self) -> Option<IpAddr> {
        self.last_peer_master
    }
    /// Master by a claim from silence (its down timer ran out with the master
    /// silent, or the gate let a pending claim through); false otherwise.
    pub fn claimed_from_silence(&self) -> bool {
        self.state == State::Master && self.claimed_from_silence
    }
    /// Whether the VIPs should be configured here (an `AddVips` not yet undone).
    pub fn vips_held(&self) -> bool {
        self.vips_held
    }
    pub fn claim_gate(&self) -> &ClaimGate {
        &self.gate
    }
    /// The down timer ran out while the gate was closed and no advert has come since.
    pub fn claim_pending(&self) -> bool {
        self.claim_pending
    }
    pub fn is_running(&self) -> bool {
        self.phase == Phase::Running
    }
    pub fn is_stopped(&self) -> bool {
        self.phase == Phase::Stopped
    }
    /// A tracker's current state; `None` for an unknown name.
    pub fn tracker_up(&self, name: &str) -> Option<bool> {
        self.trackers.get(name)
    }
    pub fn trackers(&self) -> impl Iterator<Item = TrackerStatus<'_>> {
        self.trackers.iter()
    }

    // ---- inputs --------------------------------------------------------------------

    /// Leave `Initialize`. Repeated calls, or calls after shutdown, do nothing.
    pub fn handle_startup(&mut self, now: Instant) {
        if self.phase != Phase::Configured {
            return;
        }
        let now = self.clock(now);
        self.phase = Phase::Running;
        self.master_adver_interval = self.advert_interval;
        if let Some(name) = self.trackers.fault() {
            let name = name.to_owned();
            self.transition(State::Fault, Cause::TrackerDown { name });
        } else if self.base_priority == OWNER_PRIORITY {
            // The owner is not gated: the addresses are its own (RFC §6.4.1).
            self.become_master(now, Cause::Startup);
        } else {
            self.transition(State::Backup, Cause::Startup);
            // keepalived 2.2.7 starts the preempt delay when it enters BACKUP at startup.
            self.preempt_hold = if self.preempt_delay.is_zero() {
                PreemptHold::Idle
            } else {
                PreemptHold::Until(after(now, self.preempt_delay))
            };
            self.down_cause = Cause::MasterSilent;
            self.arm_down_timer(now);
        }
    }

    /// An advert for our VRID arrived at `now`.
    pub fn handle_advert(&mut self, now: Instant, advert: ReceivedAdvert) -> AdvertOutcome {
        if self.phase != Phase::Running {
            return AdvertOutcome::Ignored;
        }
        let now = self.clock(now);
        if !matches!(self.state, State::Backup | State::Master) {
            return AdvertOutcome::Ignored;
        }
        if advert.src.is_ipv4() != self.primary_ip.is_ipv4() {
            return AdvertOutcome::Discarded(DiscardReason::AddressFamily);
        }
        if advert.src == self.primary_ip {
            return AdvertOutcome::Discarded(DiscardReason::OwnAddress);
        }
        if self.version == Version::V2 && advert.interval != self.advert_interval {
            return AdvertOutcome::Discarded(DiscardReason::IntervalMismatch {
                ours: self.advert_interval,
                theirs: advert.interval,
            });
        }
        match self.state {
            State::Backup => self.backup_rx(now, advert),
            _ => self.master_rx(now, advert),
        }
    }

    /// Fire whatever timer is due at `now`. Early or spurious calls do nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.phase != Phase::Running {
            return;
        }
        let now = self.clock(now);
        match self.timer {
            Some(t) if now >= t => {}
            _ => return,
        }
        match self.state {
            State::Master => self.send_advert_now(now),
            State::Backup => {
                self.timer = None;
                self.master = None;
                match self.gate.clone() {
                    ClaimGate::Open => {
                        let cause = self.down_cause.clone();
                        self.become_master(now, cause);
                    }
                    ClaimGate::Closed(reason) => {
                        // No timer while pending: the next move is the gate's or an
                        // advert's, so there is nothing to poll for.
                        if !self.claim_pending {
                            self.claim_pending = true;
                            self.actions.push_back(Action::ClaimWithheld { reason });
                        }
                    }
                }
            }
            State::Initialize | State::Fault => self.timer = None,
        }
    }

    /// A tracker changed (or re-reported) its state.
    pub fn handle_tracker(
        &mut self,
        now: Instant,
        name: &str,
        up: bool,
    ) -> Result<(), TrackerError> {
        if self.phase == Phase::Stopped {
            // Still tell a typo apart from a stopped instance.
            return self
                .trackers
                .get(name)
                .map(|_| ())
                .ok_or_else(|| TrackerError::Unknown {
                    name: name.to_owned(),
                });
        }
        let changed = self.trackers.set(name, up)?;
        let now = self.clock(now);
        if !changed {
            return Ok(());
        }
        self.recompute_priority(now);
        if self.phase != Phase::Running {
            return Ok(());
        }
        match (self.state, self.trackers.fault()) {
            (State::Backup | State::Master, Some(name)) => {
                let name = name.to_owned();
                self.enter_fault(name);
            }
            (State::Fault, None) => self.leave_fault(now),
            _ => {}
        }
        Ok(())
    }

    /// The arbiter's verdict on claiming. Only a Backup's claim consults it; a Master is
    /// moved by demotion instead.
    pub fn set_claim_gate(&mut self, now: Instant, gate: ClaimGate) {
        if self.phase == Phase::Stopped {
            return;
        }
        let now = self.clock(now);
        self.gate = gate;
        if self.phase == Phase::Running
            && self.state == State::Backup
            && self.claim_pending
            && self.gate.is_open()
        {
            // Not at once: the peer's gate may be opening in the same instant (see
            // `gate_skew`). The timer claims unless an advert comes first; the gate
            // closing again before then withholds (and reports) anew.
            self.claim_pending = false;
            self.down_cause = Cause::GateOpened;
            self.timer = after(now, self.gate_skew());
        }
    }

    /// The arbiter's CARP-style demotion: subtracted from the priority like a down
    /// negative-weight tracker. 0 removes it.
    pub fn set_demotion(&mut self, now: Instant, weight: u8) {
        if self.phase == Phase::Stopped {
            return;
        }
        let now = self.clock(now);
        self.demotion = weight;
        self.recompute_priority(now);
    }

    /// The arbiter confirmed `master` dead before the down timer ran out (early
    /// takeover): claim now, as if Master_Down_Interval had expired. Only a
    /// Backup whose down timer runs for that very master's silence takes it: a
    /// master heard releasing or being preempted is already on a short timer, a
    /// withheld claim waits for the gate, and a claim on a closed gate never
    /// happens. Returns whether it claimed.
    pub fn handle_master_dead(&mut self, now: Instant, master: IpAddr) -> bool {
        if self.phase != Phase::Running
            || self.state != State::Backup
            || self.master != Some(master)
            || self.down_cause != Cause::MasterSilent
            || self.timer.is_none()
            || self.claim_pending
            || !self.gate.is_open()
        {
            return false;
        }
        let now = self.clock(now);
        self.become_master(now, Cause::EarlyTakeover { master });
        true
    }

    /// The arbiter's release (an isolated master with no peer in reach, a claim
    /// that yields, the operator's hold; `cause` says which): the VIPs go
    /// (priority-0 advert first, so a peer that can still hear us takes over at
    /// once) and the instance waits as Backup. Its claim gate is closed by then,
    /// so it does not claim back until the arbiter reopens it. Not Master:
    /// nothing to do.
    pub fn handle_release(&mut self, now: Instant, cause: Cause) {
        if self.phase != Phase::Running || self.state != State::Master {
            return;
        }
        let now = self.clock(now);
        self.release_master();
        self.transition(State::Backup, cause);
        self.master = None;
        self.down_cause = Cause::MasterSilent;
        self.arm_down_timer(now);
    }

    /// Stop the instance (daemon exit or instance removal).
    pub fn handle_shutdown(&mut self, now: Instant) {
        match self.phase {
            Phase::Stopped => return,
            Phase::Configured => {
                self.phase = Phase::Stopped;
                return;
            }
            Phase::Running => {}
        }
        self.clock(now);
        if self.state == State::Master {
            self.release_master();
        }
        self.transition(State::Initialize, Cause::Shutdown);
        self.phase = Phase::Stopped;
        self.timer = None;
        self.master = None;
        self.claim_pending = false;
    }

    // ---- outputs -------------------------------------------------------------------

    /// The next thing to do, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When to call [`Instance::handle_timeout`]; `None`: no timer is running.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Running => self.timer,
            _ => None,
        }
    }

    // ---- receive rules -------------------------------------------------------------

    fn backup_rx(&mut self, now: Instant, adv: ReceivedAdvert) -> AdvertOutcome {
        if adv.priority == 0 {
            // RFC §6.4.2: the master is leaving; take over after Skew_Time only. A
            // new down episode starts, so a previous withheld claim is settled.
            self.claim_pending = false;
            self.down_cause = Cause::MasterReleased;
            self.timer = after(now, self.skew_time());
            return AdvertOutcome::MasterReleased;
        }
        let ours = self.effective_priority;
        let accept = !self.preempt || adv.priority >= ours || self.preempt_hold_running(now);
        if !accept {
            // keepalived records the sender anyway; it is the master on the wire until
            // our timer runs out and we preempt it.
            self.master = Some(adv.src);
            self.last_peer_master = Some(adv.src);
            self.down_cause = Cause::PreemptedLower;
            return AdvertOutcome::Discarded(DiscardReason::LowerPriority);
        }
        if self.version == Version::V3 {
            self.master_adver_interval = learned_interval(adv.interval);
        }
        if !self.preempt_delay.is_zero() {
            // keepalived 2.2.7: a master at least as good as us stops the delay; the
            // first lower one after that starts it afresh.
            if adv.priority >= ours {
                self.preempt_hold = PreemptHold::Idle;
            } else if self.preempt_hold == PreemptHold::Idle {
                self.preempt_hold = PreemptHold::Until(after(now, self.preempt_delay));
            }
        }
        self.master = Some(adv.src);
        self.last_peer_master = Some(adv.src);
        self.claim_pending = false;
        self.down_cause = Cause::MasterSilent;
        self.arm_down_timer(now);
        AdvertOutcome::Accepted
    }

    fn master_rx(&mut self, now: Instant, adv: ReceivedAdvert) -> AdvertOutcome {
        if adv.priority == 0 {
            // RFC §6.4.3: answer at once so backups do not wait for our next advert.
            self.send_advert_now(now);
            return AdvertOutcome::AnsweredRelease;
        }
        // Same family and a different address (checked by the caller), so the pair
        // order is total: no "equal" case is left.
        let theirs = (adv.priority, ip_key(adv.src));
        let ours = (self.effective_priority, ip_key(self.primary_ip));
        if theirs > ours {
            if self.version == Version::V3 {
                self.master_adver_interval = learned_interval(adv.interval);
            }
            self.master = Some(adv.src);
            self.last_peer_master = Some(adv.src);
            self.release_vips();
            self.transition(
                State::Backup,
                Cause::HigherPriority {
                    src: adv.src,
                    priority: adv.priority,
                },
            );
            self.preempt_hold = PreemptHold::Idle;
            self.down_cause = Cause::MasterSilent;
            self.arm_down_timer(now);
            AdvertOutcome::Yielded
        } else {
            // RFC: discard. keepalived 2.2.7: advertise at once ("forcing new election")
            // so a peer that became master during a partition yields now, not at our
            // next regular advert.
            self.send_advert_now(now);
            AdvertOutcome::ForcedElection
        }
    }

    fn preempt_hold_running(&self, now: Instant) -> bool {
        if self.preempt_delay.is_zero() {
            return false;
        }
        match self.preempt_hold {
            PreemptHold::Idle => true,
            PreemptHold::Until(None) => true,
            PreemptHold::Until(Some(t)) => now < t,
        }
    }

    // ---- transitions ---------------------------------------------------------------

    fn become_master(&mut self, now: Instant, cause: Cause) {
        // RFC order: advert first (the old master, if any, drops its VIPs on it), then
        // the addresses and the announcement, then the notify.
        self.actions.push_back(Action::SendAdvert {
            priority: self.effective_priority,
        });
        if !self.vips_held {
            self.vips_held = true;
            self.actions.push_back(Action::AddVips);
        }
        self.actions.push_back(Action::SendGarp);
        self.claimed_from_silence = matches!(
            cause,
            Cause::MasterSilent | Cause::GateOpened | Cause::EarlyTakeover { .. }
        );
        self.transition(State::Master, cause);
        self.timer = after(now, self.advert_interval);
        self.master = Some(self.primary_ip);
        self.master_adver_interval = self.advert_interval;
        self.claim_pending = false;
    }

    fn enter_fault(&mut self, tracker: String) {
        if self.state == State::Master {
            self.release_master();
        }
        self.transition(State::Fault, Cause::TrackerDown { name: tracker });
        self.timer = None;
        self.master = None;
        self.claim_pending = false;
    }

    fn leave_fault(&mut self, now: Instant) {
        // keepalived resets Master_Adver_Interval to ours on leaving FAULT.
        self.master_adver_interval = self.advert_interval;
        if self.base_priority == OWNER_PRIORITY {
            self.become_master(now, Cause::TrackersUp);
        } else {
            self.transition(State::Backup, Cause::TrackersUp);
            // keepalived 2.2.7 clears the preempt delay here; the next lower advert
            // starts it.
            self.preempt_hold = PreemptHold::Idle;
            self.down_cause = Cause::MasterSilent;
            self.arm_down_timer(now);
        }
    }

    /// A graceful exit from Master: priority 0 so backups take over after Skew_Time,
    /// then drop the VIPs (keepalived's order in `vrrp_state_leave_master`).
    fn release_master(&mut self) {
        self.actions.push_back(Action::SendAdvert { priority: 0 });
        self.release_vips();
    }

    fn release_vips(&mut self) {
        if self.vips_held {
            self.vips_held = false;
            self.actions.push_back(Action::RemoveVips);
        }
    }

    fn transition(&mut self, to: State, cause: Cause) {
        self.actions.push_back(Action::StateChanged {
            from: self.state,
            to,
            priority: self.effective_priority,
            cause,
        });
        self.state = to;
    }

    // ---- timers and priority -------------------------------------------------------

    /// Down timer = Master_Down_Interval from now. The skew is taken from the effective
    /// priority at arming time, so a priority change while Backup shows up at the next
    /// arming (the next accepted advert), not in the timer already running.
    fn arm_down_timer(&mut self, now: Instant) {
        self.timer = after(now, self.master_down_interval());
    }

    fn send_advert_now(&mut self, now: Instant) {
        self.actions.push_back(Action::SendAdvert {
            priority: self.effective_priority,
        });
        self.timer = after(now, self.advert_interval);
    }

    fn recompute_priority(&mut self, now: Instant) {
        let p = effective_priority(
            self.base_priority,
            self.trackers.adjustment(),
            self.demotion,
        );
        if p == self.effective_priority {
            return;
        }
        self.effective_priority = p;
        if self.phase == Phase::Running && self.state == State::Master {
            // Re-advertise at once so a better backup can preempt without waiting for
            // our next regular advert (keepalived does the same).
            self.send_advert_now(now);
        }
    }

    fn clock(&mut self, now: Instant) -> Instant {
        let now = match self.last_now {
            Some(last) if last > now => last,
            _ => now,
        };
        self.last_now = Some(now);
        now
    }
}

/// An address as an integer of its family, for the RFC tie-break ("the higher primary
/// IP address wins"). Only compared within one family.
fn ip_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}
