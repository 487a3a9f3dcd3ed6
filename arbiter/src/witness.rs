//! The witness policy: who may hold a VRID's VIPs when an etcd lease referees,
//! contested only when the heartbeat is lost (the tutorial's "smart lock").
//! Sans-IO: every input takes `now`; [`Witness::poll_verdict`] hands out what
//! changed and [`Witness::poll_timeout`] when to call [`Witness::handle_timeout`].
//! The store client and the peer path are the daemon's (`node/src/witness/`).
//!
//! Rules (DESIGN.md, "Witness"), with `T` the lease TTL, `V` how long a peer's
//! confirmation counts and `m` the release margin:
//!
//! - **One lease per node**, renewed; a VRID's key lives under the lease of the
//!   node that masters it. A renewal acknowledged was processed after it was
//!   sent, so the store keeps the lease at least until `s + T`, `s` the send
//!   time of the last acknowledged renewal: the lease is *safe* until
//!   `s + T − m` ([`Witness::lease_safe_until`]).
//! - **A master holds** while its lease is safe and the key is its own, or
//!   while its peer's last confirmation ("I hear your adverts and do not
//!   contend") is younger than `V`. A confirmation is dated by the master's own
//!   clock: it echoes a nonce the master sent, and counts from that nonce's
//!   send time (`confirm.rs`), so a delayed or replayed datagram never extends
//!   it. With neither, [`WitnessVerdict::Release`] at the instant the later of
//!   the two ends, computed in advance.
//! - **A backup contends** for the key only while its master's adverts are
//!   overdue (after a delay that is shorter for the node VRRP prefers, so of
//!   two backups that lose their master together the better one takes the
//!   key), and stops confirming at the same moment; it confirms only a master
//!   it has heard. It may claim (its gate
//!   opens) only while it holds the key under a safe lease and `V + m` have
//!   passed since its last confirmation: a master living on those
//!   confirmations has released by then (its validity counts from a nonce it
//!   sent before the backup's confirmation).
//! - **A master without the key** (after a lease was lost, or a claim the
//!   witness did not gate) contends for it while nobody holds it.
//! - **A node that stops being master**, or a backup that hears its master
//!   again while holding the key, gives the key back
//!   ([`WitnessVerdict::Resign`]), so the other node need not wait out a TTL,
//!   and says so to its peer over the authenticated path (`released`): a
//!   backup told so contends at once and has no confirmation deadline to wait
//!   out, since nothing it confirmed still holds the VIPs.
//! - **Incidents**: `witness_unreachable` while this node has no safe lease
//!   (with the store client's last error as the reason), and a release.
//!   The claim refused by a held key is the arbiter policy's `claim_withheld`,
//!   whose reason names the holder (the verdict's objection feeds the gate).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use splitguard_vrrp::gate::WithholdReason;

use crate::policy::Role;

pub mod confirm;

#[cfg(test)]
mod tests;

/// The witness's timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WitnessConfig {
    /// The etcd lease TTL (`T`).
    pub ttl: Duration,
    /// How long a peer confirmation counts from the send time of the nonce it
    /// echoes (`V`).
    pub confirm_valid: Duration,
    /// Time to take the VIPs down, plus clock-rate drift over `T` (`m`): a
    /// master releases this long before its lease can end.
    pub margin: Duration,
    /// How long a failed contend waits before the next.
    pub contend_retry: Duration,
}

/// Who holds a VRID's key, as far as this node knows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Holder {
    /// Not known yet (start, or after our own lease was lost).
    #[default]
    Unknown,
    /// Nobody: the key is absent.
    Free,
    /// This node, under its current lease.
    Ours,
    /// Another node, by the name its key carries.
    Other(String),
}

/// Something to report; raised and resolved through [`WitnessVerdict`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WitnessIncident {
    /// This node has no safe lease: the store is down, or out of reach.
    Unreachable { reason: String },
    /// A master let its VIPs go: neither its lease nor its peer vouched.
    Released { instance: String },
}

impl WitnessIncident {
    /// The incident kind the watchdog files it under.
    pub fn kind(&self) -> &'static str {
        match self {
            WitnessIncident::Unreachable { .. } => "witness_unreachable",
            WitnessIncident::Released { .. } => "released",
        }
    }
}

/// A change the daemon acts on; each is emitted once, when it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WitnessVerdict {
    /// The witness's objection to a claim (`None`: none), for the arbiter
    /// policy's gate.
    Gate {
        instance: String,
        objection: Option<WithholdReason>,
    },
    /// Try to take the instance's key: create it under our lease if absent.
    Contend {
        instance: String,
    },
    /// Delete the instance's key if it is still ours.
    Resign {
        instance: String,
    },
    /// Drop the instance's VIPs now.
    Release {
        instance: String,
    },
    Raised(WitnessIncident),
    /// The same value that was raised.
    Resolved(WitnessIncident),
}

#[derive(Debug, Clone)]
struct Slot {
    name: String,
    role: Role,
    /// Backup: its master's adverts are overdue, since when.
    overdue: bool,
    overdue_since: Option<Instant>,
    /// A master was heard this stint: only then is there anyone to confirm.
    heard: bool,
    /// The peer said (authenticated) it let this VRID's VIPs go: contend at
    /// once, and no confirmation deadline to wait out. Until a live advert.
    peer_released: bool,
    /// How long an overdue backup waits before it contends: less for the
    /// node VRRP prefers, so of two that lose the master together the better
    /// one takes the key.
    contend_after: Duration,
    holder: Holder,
    /// A contend is in flight.
    contending: bool,
    /// No contend before this (the last one failed).
    retry_at: Option<Instant>,
    /// Master: the peer's latest confirmation holds as of this instant.
    confirmed_as_of: Option<Instant>,
    /// Backup: when it last sent a confirmation.
    confirm_sent: Option<Instant>,
    /// Published.
    objection: Option<WithholdReason>,
    /// Master: a release was handed out this master stint.
    release_sent: bool,
    released_raised: bool,
    /// When this slot's verdicts next change with time alone.
    deadline: Option<Instant>,
}

/// The witness policy of one node.
#[derive(Debug)]
pub struct Witness {
    cfg: WitnessConfig,
    started: Instant,
    /// The send time of the last renewal (or grant) the store acknowledged.
    renewed_sent_at: Option<Instant>,
    last_error: Option<String>,
    unreachable: Option<WitnessIncident>,
    slots: Vec<Slot>,
    by_name: HashMap<String, usize>,
    verdicts: VecDeque<Verdict>,
    /// A lower bound on the next deadline (a stale earlier one only costs a
    /// wake-up that recomputes it).
    next: Option<Instant>,
}

type Verdict = WitnessVerdict;

/// An instance name the witness was not built with.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the witness has no instance {0:?}")]
pub struct UnknownInstance(pub String);

impl Witness {
    /// A witness for `instances` (each starts as a backup whose holder is
    /// unknown; the gate is closed until the store answers).
    pub fn new(cfg: WitnessConfig, instances: &[String], now: Instant) -> Witness {
        let mut w = Witness {
            cfg,
            started: now,
            renewed_sent_at: None,
            last_error: None,
            unreachable: None,
            slots: instances
                .iter()
                .map(|name| Slot {
                    name: name.clone(),
                    role: Role::Backup,
                    overdue: false,
                    overdue_since: None,
                    heard: false,
                    peer_released: false,
                    contend_after: Duration::ZERO,
                    holder: Holder::Unknown,
                    contending: false,
                    retry_at: None,
                    confirmed_as_of: None,
                    confirm_sent: None,
                    objection: None,
                    release_sent: false,
                    released_raised: false,
                    deadline: None,
                })
                .collect(),
            by_name: instances
                .iter()
                .enumerate()
                .map(|(i, n)| (n.clone(), i))
                .collect(),
            verdicts: VecDeque::new(),
            next: None,
        };
        w.settle_all(now);
        w
    }

    pub fn config(&self) -> &WitnessConfig {
        &self.cfg
    }

    /// Until when the lease is certainly alive at the store, less the margin.
    pub fn lease_safe_until(&self) -> Option<Instant> {
        self.renewed_sent_at
            .and_then(|s| s.checked_add(self.cfg.ttl.saturating_sub(self.cfg.margin)))
    }

    fn lease_ok(&self, now: Instant) -> bool {
        self.lease_safe_until().is_some_and(|t| now < t)
    }

    /// Who holds instance `name`'s key, as far as this node knows.
    pub fn holder(&self, name: &str) -> Option<&Holder> {
        self.by_name.get(name).map(|&i| &self.slots[i].holder)
    }

    /// Whether `name` is to be confirmed to the peer now: a backup that hears
    /// its master, does not contend and does not hold the key.
    pub fn should_confirm(&self, name: &str) -> bool {
        self.by_name
            .get(name)
            .map(|&i| &self.slots[i])
            .is_some_and(|s| {
                s.role == Role::Backup
                    && s.heard
                    && !s.peer_released
                    && !s.overdue
                    && !s.contending
                    && s.holder != Holder::Ours
            })
    }

    /// The unreachable incident's reason while it is open.
    pub fn unreachable(&self) -> Option<&str> {
        match &self.unreachable {
            Some(WitnessIncident::Unreachable { reason }) => Some(reason),
            _ => None,
        }
    }

    fn index(&self, name: &str) -> Result<usize, UnknownInstance> {
        self.by_name
            .get(name)
            .copied()
            .ok_or_else(|| UnknownInstance(name.to_owned()))
    }

    // ---- inputs --------------------------------------------------------------

    /// The store acknowledged a renewal (or the grant) sent at `sent_at`.
    pub fn handle_renewed(&mut self, now: Instant, sent_at: Instant) {
        if self.renewed_sent_at.is_none_or(|s| sent_at > s) {
            self.renewed_sent_at = Some(sent_at);
        }
        self.settle_all(now);
    }

    /// The store client failed (a member unreachable, a renewal refused): the
    /// reason the `witness_unreachable` incident gives, should it open.
    pub fn handle_store_error(&mut self, now: Instant, reason: String) {
        self.last_error = Some(reason);
        self.settle_node(now);
    }

    /// Our lease is gone (expired or revoked): no key of ours survives it.
    pub fn handle_lease_lost(&mut self, now: Instant, reason: String) {
        self.renewed_sent_at = None;
        self.last_error = Some(reason);
        for s in &mut self.slots {
            if s.holder == Holder::Ours {
                s.holder = Holder::Unknown;
            }
        }
        self.settle_all(now);
    }

    /// The VRRP role of instance `name`.
    pub fn handle_role(
        &mut self,
        now: Instant,
        name: &str,
        role: Role,
    ) -> Result<(), UnknownInstance> {
        let i = self.index(name)?;
        let s = &mut self.slots[i];
        if s.role != role {
            let was_master = s.role == Role::Master;
            s.role = role;
            s.overdue = false;
            s.overdue_since = None;
            s.heard = false;
            s.peer_released = false;
            s.release_sent = false;
            if role == Role::Master {
                s.confirm_sent = None;
            } else {
                s.confirmed_as_of = None;
            }
            if was_master {
                give_back(s, &mut self.verdicts);
            }
        }
        self.settle_one(now, i);
        Ok(())
    }

    /// Backup: instance `name`'s master's adverts are overdue (`true`) or heard.
    pub fn handle_overdue(
        &mut self,
        now: Instant,
        name: &str,
        overdue: bool,
    ) -> Result<(), UnknownInstance> {
        let i = self.index(name)?;
        let s = &mut self.slots[i];
        if s.overdue != overdue {
            s.overdue = overdue;
            s.overdue_since = overdue.then_some(now);
            s.heard |= !overdue;
            // Heard again while holding the key: the master is alive; give it back.
            if !overdue && s.role != Role::Master {
                give_back(s, &mut self.verdicts);
            }
        }
        self.settle_one(now, i);
        Ok(())
    }

    /// Backup: a master's advert was heard (this stint: a confirmation needs
    /// someone to confirm).
    pub fn handle_heard(&mut self, now: Instant, name: &str) -> Result<(), UnknownInstance> {
        let i = self.index(name)?;
        let s = &mut self.slots[i];
        if !s.heard || s.peer_released {
            s.heard = true;
            // A live master again: whatever it released, it holds again, and
            // a key this backup took meanwhile goes back.
            s.peer_released = false;
            if s.role == Role::Backup && !s.overdue {
                give_back(s, &mut self.verdicts);
            }
            self.settle_one(now, i);
        }
        Ok(())
    }

    /// Backup: the peer said, over the authenticated path, that it let
    /// `name`'s VIPs go, in a datagram echoing our nonce sent at `as_of`. Taken
    /// only if that nonce left after our last confirmation: then the release
    /// came after every confirmation the peer could still be holding on (a
    /// replayed older release dates from before it and is ignored), and the
    /// claim waits for the key alone (until a live advert is heard).
    pub fn handle_peer_released(
        &mut self,
        now: Instant,
        name: &str,
        as_of: Instant,
    ) -> Result<(), UnknownInstance> {
        let i = self.index(name)?;
        let s = &mut self.slots[i];
        let after_our_word = s.confirm_sent.is_none_or(|p| as_of >= p);
        if s.role == Role::Backup && !s.peer_released && after_our_word {
            s.peer_released = true;
            self.settle_one(now, i);
        }
        Ok(())
    }

    /// How long an overdue backup waits before it contends for `name`'s key
    /// (default none).
    pub fn set_contend_after(
        &mut self,
        name: &str,
        after: Duration,
    ) -> Result<(), UnknownInstance> {
        let i = self.index(name)?;
        self.slots[i].contend_after = after;
        Ok(())
    }

    /// Master: the peer confirmed `name` as of `as_of` (the send time of the
    /// nonce its datagram echoes, on our clock).
    pub fn handle_confirmation(
        &mut self,
        now: Instant,
        name: &str,
        as_of: Instant,
    ) -> Result<(), UnknownInstance> {
        let i = self.index(name)?;
        let s = &mut self.slots[i];
        if s.role == Role::Master && s.confirmed_as_of.is_none_or(|c| as_of > c) {
            s.confirmed_as_of = Some(as_of);
        }
        self.settle_one(now, i);
        Ok(())
    }

    /// Backup: a confirmation for `name` left at `now`.
    pub fn handle_confirm_sent(&mut self, now: Instant, name: &str) -> Result<(), UnknownInstance> {
        let i = self.index(name)?;
        self.slots[i].confirm_sent = Some(now);
        self.settle_one(now, i);
        Ok(())
    }

    /// What the store says of `name`'s key (a watch event, a read).
    pub fn handle_holder(
        &mut self,
        now: Instant,
        name: &str,
        holder: Holder,
    ) -> Result<(), UnknownInstance> {
        let i = self.index(name)?;
        self.slots[i].holder = holder;
        self.settle_one(now, i);
        Ok(())
    }

    /// A contend's outcome: `Ok(())` the key is ours, `Err(holder)` another
    /// node's.
    pub fn handle_contended(
        &mut self,
        now: Instant,
        name: &str,
        outcome: Result<(), String>,
    ) -> Result<(), UnknownInstance> {
        let i = self.index(name)?;
        let s = &mut self.slots[i];
        s.contending = false;
        s.retry_at = None;
        s.holder = match outcome {
            Ok(()) => Holder::Ours,
            Err(h) => Holder::Other(h),
        };
        // Won while the master is heard again: not needed any more.
        if s.role == Role::Backup && !s.overdue && !s.peer_released {
            give_back(s, &mut self.verdicts);
        }
        self.settle_one(now, i);
        Ok(())
    }

    /// A contend could not reach the store: tried again after `contend_retry`.
    pub fn handle_contend_failed(
        &mut self,
        now: Instant,
        name: &str,
        reason: String,
    ) -> Result<(), UnknownInstance> {
        let i = self.index(name)?;
        let s = &mut self.slots[i];
        s.contending = false;
        s.retry_at = now.checked_add(self.cfg.contend_retry);
        self.last_error = Some(reason);
        self.settle_one(now, i);
        Ok(())
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.next.is_some_and(|t| t <= now) {
            self.settle_all(now);
        }
    }

    // ---- outputs -------------------------------------------------------------

    pub fn poll_verdict(&mut self) -> Option<WitnessVerdict> {
        self.verdicts.pop_front()
    }

    /// The next instant a verdict can change with time alone.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next
    }

    // ---- the rules -------------------------------------------------------------

    fn settle_all(&mut self, now: Instant) {
        self.settle_node(now);
        for i in 0..self.slots.len() {
            self.settle_slot(now, i);
        }
        self.next = self
            .node_deadline(now)
            .into_iter()
            .chain(self.slots.iter().filter_map(|s| s.deadline))
            .min();
    }

    fn settle_one(&mut self, now: Instant, i: usize) {
        self.settle_node(now);
        self.settle_slot(now, i);
        self.next = [self.next, self.slots[i].deadline, self.node_deadline(now)]
            .into_iter()
            .flatten()
            .min();
    }

    /// When the node's own verdicts next change: the lease's safety ending,
    /// or the first TTL after start without one.
    fn node_deadline(&self, now: Instant) -> Option<Instant> {
        match self.lease_safe_until() {
            Some(t) if now < t => Some(t),
            Some(_) => None,
            None => Some(self.started + self.cfg.ttl).filter(|t| now < *t),
        }
    }

    fn settle_node(&mut self, now: Instant) {
        let lease_ok = self.lease_ok(now);
        // Unreachable once a lease was expected: after its safety ended, or a
        // TTL after start without one.
        let expected = self.renewed_sent_at.is_some() || now >= self.started + self.cfg.ttl;
        let want = (!lease_ok && expected).then(|| WitnessIncident::Unreachable {
            reason: self
                .last_error
                .clone()
                .unwrap_or_else(|| "lease renewal not acknowledged in time".to_owned()),
        });
        match (&self.unreachable, want) {
            (None, Some(inc)) => {
                self.unreachable = Some(inc.clone());
                self.verdicts.push_back(Verdict::Raised(inc));
            }
            (Some(_), None) => {
                if let Some(inc) = self.unreachable.take() {
                    self.verdicts.push_back(Verdict::Resolved(inc));
                }
            }
            _ => {}
        }
    }

    fn settle_slot(&mut self, now: Instant, i: usize) {
        let lease_ok = self.lease_ok(now);
        let lease_safe = self.lease_safe_until();
        let has_lease = self.renewed_sent_at.is_some();
        let WitnessConfig {
            confirm_valid,
            margin,
            ..
        } = self.cfg;
        let s = &mut self.slots[i];
        let mut out = Vec::new();
        let mut deadline: Option<Instant> = None;

        // A master: holds on its lease and key, or on its peer's word.
        if s.role == Role::Master {
            let by_lease = (s.holder == Holder::Ours).then_some(lease_safe).flatten();
            let by_peer = s.confirmed_as_of.and_then(|c| c.checked_add(confirm_valid));
            let until = by_lease.max(by_peer);
            let holds = until.is_some_and(|t| now < t);
            if holds {
                deadline = until;
            } else if !s.release_sent {
                s.release_sent = true;
                out.push(Verdict::Release {
                    instance: s.name.clone(),
                });
                if !s.released_raised {
                    s.released_raised = true;
                    out.push(Verdict::Raised(WitnessIncident::Released {
                        instance: s.name.clone(),
                    }));
                }
            }
        }
        // The release is over once the lease is safe again or it masters again.
        if s.released_raised && !s.release_sent && (lease_ok || s.role == Role::Master) {
            s.released_raised = false;
            out.push(Verdict::Resolved(WitnessIncident::Released {
                instance: s.name.clone(),
            }));
        }

        // Contend: a backup whose master is overdue, or a master without its key.
        let wants_key = match s.role {
            Role::Master => true,
            Role::Backup => s.overdue || s.peer_released,
            Role::Fault => false,
        };
        // An overdue backup first waits its contend delay.
        let waited = match (s.role, s.overdue_since) {
            (Role::Backup, Some(since)) if !s.peer_released => since.checked_add(s.contend_after),
            _ => None,
        };
        let retry_at = [s.retry_at, waited.filter(|t| now < *t)]
            .into_iter()
            .flatten()
            .max();
        let may_retry = retry_at.is_none_or(|t| now >= t);
        if wants_key
            && has_lease
            && !s.contending
            && matches!(s.holder, Holder::Unknown | Holder::Free)
        {
            if may_retry {
                s.contending = true;
                out.push(Verdict::Contend {
                    instance: s.name.clone(),
                });
            } else {
                deadline = [deadline, retry_at].into_iter().flatten().min();
            }
        }

        // The claim gate.
        // The old master living on our confirmations has released by then;
        // one that said it released needs no wait.
        let ready_at = s
            .confirm_sent
            .filter(|_| !s.peer_released)
            .and_then(|p| p.checked_add(confirm_valid + margin));
        let objection = if !lease_ok {
            Some(WithholdReason::WitnessUnreachable)
        } else if let Holder::Other(h) = &s.holder {
            Some(WithholdReason::WitnessHeld { holder: h.clone() })
        } else if s.holder != Holder::Ours || ready_at.is_some_and(|t| now < t) {
            Some(WithholdReason::WitnessPending)
        } else {
            None
        };
        if s.holder == Holder::Ours {
            let next = [
                ready_at.filter(|t| now < *t),
                lease_safe.filter(|t| now < *t),
            ]
            .into_iter()
            .flatten()
            .min();
            deadline = [deadline, next].into_iter().flatten().min();
        }
        if objection != s.objection {
            s.objection = objection.clone();
            out.push(Verdict::Gate {
                instance: s.name.clone(),
                objection,
            });
        }
        s.deadline = deadline;
        self.verdicts.extend(out);
    }
}

/// The key goes back if it is the slot's: a [`WitnessVerdict::Resign`], and
/// its holder unknown until the store says.
fn give_back(s: &mut Slot, verdicts: &mut VecDeque<Verdict>) {
    if s.holder == Holder::Ours {
        s.holder = Holder::Unknown;
        verdicts.push_back(Verdict::Resign {
            instance: s.name.clone(),
        });
    }
}
