//! The classifier: what is wrong with each watched VIP, in words. Sans-IO:
//! observations (the VIP appearing or leaving here, adverts seen on the segment,
//! other MACs answering for the VIP) come in with `now`; incidents to raise or
//! resolve and ownership probes to run go out.
//!
//! Per VIP, first match wins:
//! 1. **Two owners** (the VIP is here and another MAC answers for it): critical,
//!    named by its root cause when the adverts show one: `vrid_mismatch` (the VIP
//!    is advertised under two VRIDs), `auth_mismatch` (one VRID, different
//!    authentication), `advert_interval_mismatch`; otherwise `split_brain`.
//! 2. **Two masters advertise one VRID** for the VIP: `split_brain`, critical,
//!    even when neither is this node.
//! 3. **A mismatch** without two owners yet: its kind, warning.
//! 4. **The VIP is here on a node watched as backup**: `vip_on_backup` when a
//!    master still advertises it (it should not be here), else `failover`.
//!
//! Two owners count once an answer `confirm_after` later (to a probe sent then,
//! or unasked) still comes from the other one: a handover or a preemption
//! overlaps for milliseconds, and must not page.
//! An incident resolves once its condition has stayed clear for `clear_hold`, so
//! one lost probe answer does not close and reopen it.
//!
//! Apart from these, under its own key: a stream of **invalid adverts** (frames
//! that fail the link rule) naming the VIP or its VRID is `invalid_adverts`,
//! warning, naming the sources and reasons ([`invalid`]); such frames never
//! count as a master above.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::core::engine::Raise;
use crate::core::incident::{IncidentKind, Severity};

mod invalid;
use invalid::InvalidSources;
pub use invalid::{InvalidAdvert, MAX_SOURCES as MAX_INVALID_SOURCES, STREAM as INVALID_STREAM};

/// What the node is expected to be for a watched VIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedRole {
    Master,
    Backup,
    /// No expectation (e.g. inside `splitguard run`, where the core knows).
    Any,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedVip {
    pub vip: IpAddr,
    pub interface: String,
    pub role: ExpectedRole,
    pub instance: Option<String>,
    /// What this node's own instance sends for the VIP, where known (inside
    /// `splitguard run`): an advert for the VIP that differs from it is a
    /// mismatch even while this node is a silent backup and sends nothing.
    pub expected: Option<ExpectedAdvert>,
}

/// The fields of this node's own adverts that a peer must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedAdvert {
    pub vrid: u8,
    pub version: u8,
    pub interval: Duration,
    pub auth: AuthSeen,
}

/// Authentication as seen on the wire; passwords are compared, never shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthSeen {
    None,
    Pass([u8; 8]),
    Other(u8),
}

/// A VRRP advert seen on the segment (ours included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvertSeen {
    pub src: IpAddr,
    pub vrid: u8,
    pub priority: u8,
    pub version: u8,
    /// The advert interval as sent (seconds for v2, centiseconds for v3).
    pub interval: Duration,
    pub vips: Vec<IpAddr>,
    pub auth: AuthSeen,
    /// Sent by this node (an outgoing frame).
    pub from_self: bool,
}

/// What the capture read from one VRRP frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Captured {
    /// It passed the link rule: a VRRP router speaking on this link.
    Advert(AdvertSeen),
    /// It did not (and names no speaker).
    Invalid(InvalidAdvert),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassifierConfig {
    pub node: String,
    pub vips: Vec<WatchedVip>,
    /// How long a foreign owner counts without being seen again.
    pub owner_memory: Duration,
    /// How long an advert counts (at least three of its intervals).
    pub advert_memory: Duration,
    /// Probe cadence while the VIP is here and something is open or just moved.
    pub probe_every: Duration,
    /// Probe cadence while the VIP is here and all is quiet.
    pub probe_idle: Duration,
    pub clear_hold: Duration,
    /// Two owners must still be seen this long after they first were (a
    /// handover or preemption overlaps for milliseconds, not this long).
    pub confirm_after: Duration,
    /// The same while the adverts show a preemption under way (a master that
    /// began advertising after the VIP came here, or one on our VRID below our
    /// priority): the overlap is expected, so a loaded host gets more time to
    /// end it before it pages.
    pub confirm_after_preemption: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Raise(Raise),
    Resolve {
        key: String,
    },
    /// Run an ARP ownership probe round for this VIP and report the foreign MACs.
    Probe {
        vip: IpAddr,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Condition {
    kind: IncidentKind,
    severity: Severity,
    owners: Vec<String>,
    cause: String,
}

#[derive(Debug, Clone)]
struct Heard {
    advert: AdvertSeen,
    since: Instant,
    last: Instant,
}

#[derive(Debug)]
struct VipState {
    spec: WatchedVip,
    local: bool,
    foreign: BTreeMap<String, Instant>,
    /// Per source: the latest advert, when its current streak began, when last seen.
    adverts: BTreeMap<IpAddr, Heard>,
    raised: Option<Condition>,
    clear_since: Option<Instant>,
    next_probe: Option<Instant>,
    /// Since when the VIP has been here with another owner answering.
    dual_since: Option<Instant>,
    /// When an answer from the other owner confirms two owners.
    confirm_at: Option<Instant>,
    /// An answer at or after `confirm_at` came from the other owner.
    dual_confirmed: bool,
    /// Since when the VIP is here.
    local_since: Option<Instant>,
    /// A probe round finished since the VIP arrived: only then does "nobody else
    /// answers" mean anything.
    probed: bool,
    /// Invalid frames naming this VIP or its VRID, per source, and the
    /// `invalid_adverts` incident they raise (under [`invalid_key_for`]).
    invalid: InvalidSources,
    invalid_raised: Option<Condition>,
    invalid_clear_since: Option<Instant>,
}

#[derive(Debug)]
pub struct Classifier {
    cfg: ClassifierConfig,
    vips: Vec<VipState>,
    out: std::collections::VecDeque<Output>,
    /// VIP → index in `vips`: an advert or an ARP answer finds its VIPs by
    /// lookup, not by a scan of every watched VIP.
    by_vip: std::collections::HashMap<IpAddr, usize>,
    /// Each VIP's next deadline (`due[i]`), kept in order in `order`, so the
    /// next timeout and the due VIPs are at hand with hundreds of VIPs.
    due: Vec<Option<Instant>>,
    order: std::collections::BTreeSet<(Instant, usize)>,
    /// VRID → the VIPs whose own instance uses it (known inside `run`), and
    /// the VIPs with no expectation, whose VRID is only what adverts say:
    /// an invalid frame naming a VRID finds its VIPs by these.
    by_vrid: std::collections::HashMap<u8, Vec<usize>>,
    unexpected: Vec<usize>,
}

pub fn key_for(vip: IpAddr) -> String {
    format!("vip:{vip}")
}

/// The key of a VIP's `invalid_adverts` incident: apart from [`key_for`], so
/// a flood neither hides nor replaces what is wrong with the VIP itself.
pub fn invalid_key_for(vip: IpAddr) -> String {
    format!("invalid:{vip}")
}

impl Classifier {
    pub fn new(cfg: ClassifierConfig) -> Classifier {
        let vips: Vec<VipState> = cfg
            .vips
            .iter()
            .map(|spec| VipState {
                spec: spec.clone(),
                local: false,
                foreign: BTreeMap::new(),
                adverts: BTreeMap::new(),
                raised: None,
                clear_since: None,
                next_probe: None,
                dual_since: None,
                confirm_at: None,
                dual_confirmed: false,
                local_since: None,
                probed: false,
                invalid: InvalidSources::default(),
                invalid_raised: None,
                invalid_clear_since: None,
            })
            .collect();
        let mut by_vip = std::collections::HashMap::new();
        let mut by_vrid: std::collections::HashMap<u8, Vec<usize>> = Default::default();
        let mut unexpected = Vec::new();
        for (i, v) in vips.iter().enumerate() {
            by_vip.entry(v.spec.vip).or_insert(i);
            match &v.spec.expected {
                Some(e) => by_vrid.entry(e.vrid).or_default().push(i),
                None => unexpected.push(i),
            }
        }
        Classifier {
            due: vec![None; vips.len()],
            cfg,
            vips,
            out: Default::default(),
            by_vip,
            order: Default::default(),
            by_vrid,
            unexpected,
        }
    }

    /// What the capture read: an advert, or an invalid frame.
    pub fn handle_captured(&mut self, now: Instant, c: Captured) {
        match c {
            Captured::Advert(a) => self.handle_advert(now, a),
            Captured::Invalid(a) => self.handle_invalid_advert(now, &a),
        }
    }

    /// A frame that failed the link rule. It counts for the VIPs it names and
    /// for those whose VRID it names (this node's instance's VRID, or the one
    /// the VIP's live adverts carry); never as a master.
    pub fn handle_invalid_advert(&mut self, now: Instant, a: &InvalidAdvert) {
        if a.from_self {
            return;
        }
        let mut mine: Vec<usize> = a.vips.iter().filter_map(|v| self.index(*v)).collect();
        if let Some(vrid) = a.vrid {
            mine.extend(self.by_vrid.get(&vrid).into_iter().flatten());
            mine.extend(
                self.unexpected
                    .iter()
                    .copied()
                    .filter(|&i| self.vips[i].adverts.values().any(|h| h.advert.vrid == vrid)),
            );
        }
        mine.sort_unstable();
        mine.dedup();
        for i in mine {
            let memory = self.cfg.advert_memory;
            self.vips[i].invalid.note(now, a, memory);
            self.evaluate_invalid(now, i);
        }
    }

    fn index(&self, vip: IpAddr) -> Option<usize> {
        self.by_vip.get(&vip).copied()
    }

    /// The VIP appeared on (`true`) or left (`false`) this node's interface.
    pub fn handle_local(&mut self, now: Instant, vip: IpAddr, present: bool) {
        let Some(i) = self.index(vip) else { return };
        let v = &mut self.vips[i];
        if v.local == present {
            return;
        }
        v.local = present;
        v.local_since = present.then_some(now);
        v.probed = false;
        if present {
            // Ask at once who else answers: the verdict must not wait.
            v.next_probe = Some(now + self.cfg.probe_every);
            self.out.push_back(Output::Probe { vip });
        } else {
            v.next_probe = None;
            v.foreign.clear();
        }
        self.evaluate(now, i);
    }

    /// Another MAC claims the VIP (a gratuitous ARP, an ARP reply).
    pub fn handle_foreign_owner(&mut self, now: Instant, vip: IpAddr, mac: &str) {
        let Some(i) = self.index(vip) else { return };
        let v = &mut self.vips[i];
        v.foreign.insert(mac.to_ascii_lowercase(), now);
        // An answer that comes once the confirmation is due is the
        // confirmation itself: no need to wait for the probe round to end.
        if v.local && v.confirm_at.is_some_and(|c| now >= c) {
            v.dual_confirmed = true;
        }
        self.evaluate(now, i);
    }

    /// A finished probe round: exactly these foreign MACs answered.
    pub fn handle_probe_result(&mut self, now: Instant, vip: IpAddr, owners: &[String]) {
        let Some(i) = self.index(vip) else { return };
        let v = &mut self.vips[i];
        v.probed = v.local;
        v.foreign.clear();
        for mac in owners {
            v.foreign.insert(mac.to_ascii_lowercase(), now);
        }
        if v.local && !owners.is_empty() && v.confirm_at.is_some_and(|c| now >= c) {
            v.dual_confirmed = true;
        }
        self.evaluate(now, i);
    }

    pub fn handle_advert(&mut self, now: Instant, advert: AdvertSeen) {
        // In the order of the watched VIPs, as the outputs always came.
        let mut mine: Vec<usize> = advert.vips.iter().filter_map(|a| self.index(*a)).collect();
        mine.sort_unstable();
        mine.dedup();
        for i in mine {
            {
                let v = &mut self.vips[i];
                if advert.priority == 0 {
                    // "I am leaving": it no longer counts as a master.
                    v.adverts.remove(&advert.src);
                } else {
                    let gap = advert.interval * 3;
                    match v.adverts.get_mut(&advert.src) {
                        // The same master saying the same: only the times move
                        // (no copy of its VIP list per advert).
                        Some(h) => {
                            let same_streak = now.duration_since(h.last) <= gap;
                            if !same_streak {
                                h.since = now;
                            }
                            h.last = now;
                            let same = h.advert == advert;
                            if !same {
                                h.advert = advert.clone();
                            }
                            // The one master of a VIP that is not here, saying
                            // the same again: no condition can change (it reads
                            // `last` only against a second source or a local
                            // VIP), only the VIP's deadline moves.
                            if same && same_streak && v.adverts.len() == 1 && !v.local {
                                self.reschedule(i);
                                continue;
                            }
                        }
                        None => {
                            v.adverts.insert(
                                advert.src,
                                Heard {
                                    advert: advert.clone(),
                                    since: now,
                                    last: now,
                                },
                            );
                        }
                    }
                }
                self.evaluate(now, i);
            }
        }
    }

    /// Only the VIPs with something due: every time-driven change of a VIP
    /// (a probe, stale owners or adverts, the clear hold) is in its deadline.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<usize> = self
            .order
            .range(..=(now, usize::MAX))
            .map(|&(_, i)| i)
            .collect();
        for i in due {
            let v = &mut self.vips[i];
            if v.local && v.next_probe.is_some_and(|t| t <= now) {
                self.out.push_back(Output::Probe { vip: v.spec.vip });
                let busy = v.raised.is_some();
                v.next_probe = Some(
                    now + if busy {
                        self.cfg.probe_every
                    } else {
                        self.cfg.probe_idle
                    },
                );
            }
            self.evaluate(now, i);
        }
    }

    /// Whether an incident is currently raised under `key`.
    pub fn is_raised(&self, key: &str) -> bool {
        self.vips.iter().any(|v| {
            (v.raised.is_some() && key_for(v.spec.vip) == key)
                || (v.invalid_raised.is_some() && invalid_key_for(v.spec.vip) == key)
        })
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.order.first().map(|&(t, _)| t)
    }

    /// VIP `i`'s next deadline: its probe, the end of its clear hold, and when
    /// its oldest foreign owner or advert goes stale.
    fn deadline_of(&self, i: usize) -> Option<Instant> {
        let v = &self.vips[i];
        [
            v.next_probe,
            v.clear_since.map(|c| c + self.cfg.clear_hold),
            v.foreign.values().min().map(|t| *t + self.cfg.owner_memory),
            v.adverts
                .values()
                .map(|h| h.last + self.advert_memory(&h.advert))
                .min(),
            v.invalid.deadline(self.cfg.advert_memory),
            v.invalid_clear_since.map(|c| c + self.cfg.clear_hold),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Re-reads VIP `i`'s deadline after a change to it.
    fn reschedule(&mut self, i: usize) {
        let at = self.deadline_of(i);
        if self.due[i] == at {
            return;
        }
        if let Some(old) = self.due[i].take() {
            self.order.remove(&(old, i));
        }
        if let Some(t) = at {
            self.order.insert((t, i));
        }
        self.due[i] = at;
    }

    /// The adverts that name `vip` and still count: (source, priority, sent
    /// by this node). What fencing reads to place the two nodes in VRRP's
    /// order during a split brain.
    pub fn adverts_for(&self, vip: IpAddr) -> Vec<(IpAddr, u8, bool)> {
        self.index(vip)
            .map(|i| {
                self.vips[i]
                    .adverts
                    .values()
                    .map(|h| (h.advert.src, h.advert.priority, h.advert.from_self))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// What holds the VIP as this node sees it: its own `local` flag and the
    /// foreign MACs.
    pub fn local(&self, vip: IpAddr) -> Option<bool> {
        self.index(vip).map(|i| self.vips[i].local)
    }

    // ---- internals ---------------------------------------------------------------

    fn advert_memory(&self, a: &AdvertSeen) -> Duration {
        self.cfg.advert_memory.max(a.interval * 3)
    }

    fn evaluate(&mut self, now: Instant, i: usize) {
        // Forget what went stale.
        let owner_memory = self.cfg.owner_memory;
        let min_advert = self.cfg.advert_memory;
        let v = &mut self.vips[i];
        v.foreign
            .retain(|_, t| now.duration_since(*t) < owner_memory);
        v.adverts
            .retain(|_, h| now.duration_since(h.last) < min_advert.max(h.advert.interval * 3));

        let dual = v.local && !v.foreign.is_empty();
        match (dual, v.dual_since) {
            (true, None) => {
                // Confirm with a probe a little later before calling it split brain.
                let delay = if overlap_expected(v) {
                    self.cfg.confirm_after_preemption
                } else {
                    self.cfg.confirm_after
                };
                v.dual_since = Some(now);
                v.confirm_at = Some(now + delay);
                v.next_probe = Some(now + delay);
            }
            (false, Some(_)) => {
                v.dual_since = None;
                v.confirm_at = None;
                v.dual_confirmed = false;
            }
            _ => {}
        }
        let condition = condition(&self.cfg.node, v);
        let slot = Slot {
            key: key_for(v.spec.vip),
            spec: &v.spec,
            raised: &mut v.raised,
            clear_since: &mut v.clear_since,
        };
        if slot.settle(condition, now, self.cfg.clear_hold, &mut self.out) {
            v.next_probe = v.local.then(|| now + self.cfg.probe_every).or(v.next_probe);
        }
        self.evaluate_invalid(now, i);
    }

    /// VIP `i`'s `invalid_adverts` incident alone: what an invalid frame can
    /// change (a flood's frames do not re-derive the VIP's own condition).
    fn evaluate_invalid(&mut self, now: Instant, i: usize) {
        let v = &mut self.vips[i];
        v.invalid.forget_stale(now, self.cfg.advert_memory);
        let invalid = v.invalid.cause(v.spec.vip).map(|cause| Condition {
            kind: IncidentKind::InvalidAdverts,
            severity: Severity::Warning,
            owners: Vec::new(),
            cause,
        });
        let slot = Slot {
            key: invalid_key_for(v.spec.vip),
            spec: &v.spec,
            raised: &mut v.invalid_raised,
            clear_since: &mut v.invalid_clear_since,
        };
        slot.settle(invalid, now, self.cfg.clear_hold, &mut self.out);
        self.reschedule(i);
    }
}

/// One incident of a VIP: what is raised under `key` and since when its
/// condition has been clear.
struct Slot<'a> {
    key: String,
    spec: &'a WatchedVip,
    raised: &'a mut Option<Condition>,
    clear_since: &'a mut Option<Instant>,
}

impl Slot<'_> {
    /// Raises a new or changed condition at once; resolves one that has
    /// stayed clear for `clear_hold`. Returns whether it raised above info.
    fn settle(
        self,
        condition: Option<Condition>,
        now: Instant,
        clear_hold: Duration,
        out: &mut std::collections::VecDeque<Output>,
    ) -> bool {
        match (condition, &*self.raised) {
            (Some(c), raised) if raised.as_ref() != Some(&c) => {
                *self.clear_since = None;
                let loud = c.severity > Severity::Info;
                out.push_back(Output::Raise(Raise {
                    key: self.key,
                    kind: c.kind,
                    severity: c.severity,
                    instance: self.spec.instance.clone(),
                    vip: Some(self.spec.vip),
                    owners: c.owners.clone(),
                    cause: c.cause.clone(),
                }));
                *self.raised = Some(c);
                return loud;
            }
            (Some(_), _) => *self.clear_since = None,
            (None, Some(_)) => {
                let since = *self.clear_since.get_or_insert(now);
                if now.duration_since(since) >= clear_hold {
                    *self.raised = None;
                    *self.clear_since = None;
                    out.push_back(Output::Resolve { key: self.key });
                }
            }
            (None, None) => *self.clear_since = None,
        }
        false
    }
}

/// Whether the adverts explain a short overlap of two owners: a foreign master
/// that began advertising after the VIP came here (it preempts us; we release
/// on its advert), or one on our VRID below our priority (we preempted it; it
/// releases on ours).
fn overlap_expected(v: &VipState) -> bool {
    let own = v
        .adverts
        .values()
        .find(|h| h.advert.from_self)
        .map(|h| &h.advert);
    v.adverts.values().filter(|h| !h.advert.from_self).any(|h| {
        let newer = v.local_since.is_some_and(|here| h.since > here);
        let below_us =
            own.is_some_and(|o| o.vrid == h.advert.vrid && h.advert.priority < o.priority);
        newer || below_us
    })
}

fn list(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// What an advert interval mismatch does, by version: VRRPv2 nodes drop each
/// other's adverts (so both can be master); a VRRPv3 backup takes the
/// master's interval (RFC 5798 §6.4.2), so nothing splits, but failover timing
/// depends on which node is master.
fn interval_effect(version: u8) -> &'static str {
    if version == 2 {
        "VRRPv2 nodes drop adverts with another interval"
    } else {
        "a VRRPv3 backup takes the master's interval, so failover timing depends on which node is master"
    }
}

/// The first mismatch among the fresh adverts for one VIP, or between one of
/// them and what this node's instance sends: (kind, words). With `as_cause`
/// (two owners or two masters to explain), only mismatches that can make two
/// masters count: a VRRPv3 interval mismatch cannot.
fn mismatch(
    vip: IpAddr,
    adverts: &[&AdvertSeen],
    own: Option<(&ExpectedAdvert, &str)>,
    as_cause: bool,
) -> Option<(IncidentKind, String)> {
    let splits = |version: u8| version == 2 || !as_cause;
    if let Some((e, instance)) = own {
        let foreign = adverts.iter().filter(|a| !a.from_self);
        for a in foreign.clone() {
            if a.vrid != e.vrid {
                return Some((
                    IncidentKind::VridMismatch,
                    format!(
                        "VIP {vip} is advertised by {} under VRID {}, but instance {instance} here uses VRID {}: the nodes run separate elections and both can be master",
                        a.src, a.vrid, e.vrid
                    ),
                ));
            }
        }
        for a in foreign.filter(|a| a.version == e.version) {
            if a.auth != e.auth {
                return Some((
                    IncidentKind::AuthMismatch,
                    format!(
                        "VRID {} adverts from {} carry other authentication than instance {instance} here, so each drops the other's adverts",
                        a.vrid, a.src
                    ),
                ));
            }
            if a.interval != e.interval && splits(a.version) {
                return Some((
                    IncidentKind::AdvertIntervalMismatch,
                    format!(
                        "VRID {} adverts from {} every {:?}, but instance {instance} here sends every {:?}: {}",
                        a.vrid,
                        a.src,
                        a.interval,
                        e.interval,
                        interval_effect(a.version)
                    ),
                ));
            }
        }
    }
    for (k, a) in adverts.iter().enumerate() {
        for b in adverts.iter().skip(k + 1) {
            if a.vrid != b.vrid {
                return Some((
                    IncidentKind::VridMismatch,
                    format!(
                        "VIP {vip} is advertised under VRID {} by {} and under VRID {} by {}: the nodes run separate elections and both can be master",
                        a.vrid, a.src, b.vrid, b.src
                    ),
                ));
            }
        }
    }
    for (k, a) in adverts.iter().enumerate() {
        for b in adverts.iter().skip(k + 1) {
            if a.auth != b.auth {
                return Some((
                    IncidentKind::AuthMismatch,
                    format!(
                        "VRID {} adverts from {} and {} carry different authentication, so each drops the other's adverts",
                        a.vrid, a.src, b.src
                    ),
                ));
            }
            if a.interval != b.interval && splits(a.version.min(b.version)) {
                return Some((
                    IncidentKind::AdvertIntervalMismatch,
                    format!(
                        "VRID {} adverts from {} every {:?} and from {} every {:?}: {}",
                        a.vrid,
                        a.src,
                        a.interval,
                        b.src,
                        b.interval,
                        interval_effect(a.version)
                    ),
                ));
            }
        }
    }
    None
}

fn condition(node: &str, v: &VipState) -> Option<Condition> {
    let vip = v.spec.vip;
    let live: Vec<&AdvertSeen> = v.adverts.values().map(|h| &h.advert).collect();
    let foreign: Vec<String> = v.foreign.keys().cloned().collect();
    let own = v
        .spec
        .expected
        .as_ref()
        .map(|e| (e, v.spec.instance.as_deref().unwrap_or("-")));
    // What explains two owners or two masters, and what is only worth a warning.
    let found = mismatch(vip, &live, own, true);
    let noted = mismatch(vip, &live, own, false);

    if v.local && !foreign.is_empty() && !v.dual_confirmed {
        // Two owners, not yet confirmed: no new verdict either way.
        return v.raised.clone();
    }
    if v.local && !foreign.is_empty() {
        let (kind, why) = match &found {
            Some((k, w)) => (*k, format!(" {w}.")),
            None => {
                let srcs: Vec<IpAddr> = live.iter().map(|a| a.src).collect();
                let heard = if srcs.is_empty() {
                    String::new()
                } else {
                    format!(" Adverts for it seen from {}.", list(&srcs))
                };
                (IncidentKind::SplitBrain, heard)
            }
        };
        return Some(Condition {
            kind,
            severity: Severity::Critical,
            owners: foreign.clone(),
            cause: format!(
                "VIP {vip} is on {node} and {} answer{} for it too.{why}",
                foreign.join(", "),
                if foreign.len() == 1 { "s" } else { "" }
            ),
        });
    }
    // Two masters for one VRID: each source kept advertising more than an
    // interval after the other began (a handover overlaps by less than that).
    let mut by_vrid: BTreeMap<u8, Vec<&Heard>> = BTreeMap::new();
    for h in v.adverts.values() {
        by_vrid.entry(h.advert.vrid).or_default().push(h);
    }
    let concurrent = |m: &Vec<&Heard>| {
        m.iter().enumerate().any(|(k, a)| {
            m.iter().skip(k + 1).any(|b| {
                a.last > b.since + b.advert.interval && b.last > a.since + a.advert.interval
            })
        })
    };
    if found.is_none()
        && let Some((vrid, masters)) = by_vrid.iter().find(|(_, m)| concurrent(m))
    {
        let masters: Vec<&AdvertSeen> = masters.iter().map(|h| &h.advert).collect();
        let names: Vec<String> = masters
            .iter()
            .map(|a| format!("{} (priority {})", a.src, a.priority))
            .collect();
        return Some(Condition {
            kind: IncidentKind::SplitBrain,
            severity: Severity::Critical,
            owners: foreign,
            cause: format!(
                "two masters advertise VRID {vrid} for VIP {vip}: {}",
                names.join(" and ")
            ),
        });
    }
    if let Some((kind, why)) = noted {
        return Some(Condition {
            kind,
            severity: Severity::Warning,
            owners: foreign,
            cause: why,
        });
    }
    if v.local && v.spec.role == ExpectedRole::Backup && !v.probed {
        // Too early to tell a failover from a split brain: keep what stands.
        return v.raised.clone();
    }
    if v.local && v.spec.role == ExpectedRole::Backup {
        // Another master advertising while the VIP is here, for longer than the
        // moment a preemption takes (its advert, then our release).
        let here_since = v.local_since;
        let lasting = v.adverts.values().find(|h| {
            let from = here_since.map_or(h.since, |l| l.max(h.since));
            !h.advert.from_self && h.last.saturating_duration_since(from) > h.advert.interval * 2
        });
        if let Some(master) = lasting.map(|h| &h.advert) {
            return Some(Condition {
                kind: IncidentKind::VipOnBackup,
                severity: Severity::Warning,
                owners: Vec::new(),
                cause: format!(
                    "VIP {vip} is on {node}, watched as backup, while {} still advertises VRID {} at priority {}",
                    master.src, master.vrid, master.priority
                ),
            });
        }
        return Some(Condition {
            kind: IncidentKind::Failover,
            severity: Severity::Warning,
            owners: Vec::new(),
            cause: format!(
                "VIP {vip} moved to {node} (watched as backup) and no other node answers for it: the pair runs on its backup"
            ),
        });
    }
    None
}

#[cfg(test)]
mod tests;
