//! The alert engine: incidents in, notifications per channel out, with
//! Alertmanager-grade behaviour. Sans-IO: every input takes the wall-clock `now`
//! (it must survive restarts, so no `Instant`); [`Engine::poll_send`] hands out
//! what to send and [`Engine::poll_timeout`] says when to call
//! [`Engine::handle_timeout`].
//!
//! Rules:
//! - **Dedupe** by key: raising an open key updates it (owners, cause) without a
//!   new page, unless its severity rises or its kind changes (a better
//!   diagnosis), which pages at once.
//! - **Group wait**: the first page waits `group_wait` (criticals:
//!   `group_wait_critical`, 0 by default), so a flap that clears at once pages
//!   nobody; resolved before the first page → dropped silently.
//! - **Repeat** every `repeat_interval` until acked (or muted for a while).
//! - **Escalate**: unacked after `escalate_after`, the next tier's channels join
//!   (each step another `escalate_after`), and get the page at once.
//! - **Resolved** notices to every channel that was handed a page
//!   (`send_resolved`); a page still held back by the rate limit when its
//!   incident ends is dropped, with no notice.
//! - **Ack** stops repeats and escalation; every channel that got a page hears
//!   who acked.
//! - **Rate limit** per channel: at most `rate_limit` sends per window; repeats
//!   over the limit are dropped (a later one covers them), first pages, acks and
//!   resolved notices wait for room instead.
//! - **Codes**: four digits, unique among open incidents, not reused for
//!   `code_reuse_after` (24 h) after their incident closed.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::core::alert::{Alert, AlertStatus};
use crate::core::incident::{IncidentKind, Severity};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelInfo {
    pub name: String,
    pub tier: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    pub node: String,
    pub group_wait: Duration,
    pub group_wait_critical: Duration,
    pub repeat_interval: Duration,
    pub escalate_after: Duration,
    pub rate_limit: u32,
    pub rate_limit_window: Duration,
    pub send_resolved: bool,
    pub code_reuse_after: Duration,
    pub channels: Vec<ChannelInfo>,
    /// Seeds the code generator (tests pin it; the daemon uses time and pid).
    pub seed: u64,
}

/// An incident as the classifier or the arbiter reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raise {
    /// Dedupe key, e.g. `split_brain:10.0.0.3`.
    pub key: String,
    pub kind: IncidentKind,
    pub severity: Severity,
    pub instance: Option<String>,
    pub vip: Option<IpAddr>,
    pub owners: Vec<String>,
    pub cause: String,
}

/// One notification to hand to one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Index into [`EngineConfig::channels`].
    pub channel: usize,
    pub alert: Alert,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    #[error("no open incident has code {0}")]
    UnknownCode(String),
}

/// An open incident (also what the spool persists and status shows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenIncident {
    pub id: String,
    pub key: String,
    pub kind: IncidentKind,
    pub severity: Severity,
    pub instance: Option<String>,
    pub vip: Option<IpAddr>,
    pub owners: Vec<String>,
    pub cause: String,
    pub code: String,
    pub started_at: DateTime<Utc>,
    /// Firing pages sent so far (0: still in group wait).
    pub pages: u32,
    /// Notifications numbered so far (pages, acks).
    pub notifications: u32,
    pub first_page_at: DateTime<Utc>,
    pub next_repeat: Option<DateTime<Utc>>,
    /// Highest tier paged so far.
    pub tier: u8,
    pub next_escalation: Option<DateTime<Utc>>,
    pub acked_by: Option<String>,
    pub acked_at: Option<DateTime<Utc>>,
    pub muted_until: Option<DateTime<Utc>>,
    /// Channels that were handed a notification for it: only they hear the ack
    /// and the resolved notice. A page still waiting for room when the incident
    /// ends is dropped with no notice, so a flapping condition cannot pile up
    /// notices for pages nobody got.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reached: Vec<String>,
}

impl OpenIncident {
    pub fn acked(&self) -> bool {
        self.acked_by.is_some()
    }
}

/// Everything that must survive a restart.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EngineState {
    pub open: Vec<OpenIncident>,
    /// Codes of closed incidents and when they closed.
    pub retired_codes: BTreeMap<String, DateTime<Utc>>,
    pub rng: u64,
    pub counter: u64,
    /// Notifications handed out with this state and not yet known to be in the
    /// outbox: written by [`crate::io::spool::Spool::commit`] before it spools them
    /// and cleared after, so a crash in between loses none of them
    /// ([`crate::io::spool::Spool::recover`] spools what is missing). Always empty in
    /// a running engine.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unspooled: Vec<UnspooledAlert>,
    /// Notifications made but not handed out yet: waiting for room under a
    /// channel's rate limit (or due later). Saved so a restart neither loses a
    /// first page, an ack or a resolved notice held back by the limit, nor
    /// re-pages them under new keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiting: Vec<WaitingAlert>,
    /// Per channel: send times still inside the rate-limit window, so a
    /// restart does not reset the count.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sent_at: BTreeMap<String, Vec<DateTime<Utc>>>,
}

/// A notification for `channel` waiting in the engine (see [`EngineState::waiting`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitingAlert {
    pub channel: String,
    pub due: DateTime<Utc>,
    /// Dropped rather than delayed when over the rate limit (a repeat).
    #[serde(default)]
    pub droppable: bool,
    pub alert: Alert,
}

/// One notification for `channel`, recorded with the engine state that sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnspooledAlert {
    pub channel: String,
    pub alert: Alert,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Queued {
    due: DateTime<Utc>,
    /// Dropped rather than delayed when over the rate limit.
    droppable: bool,
    out: Outgoing,
}

#[derive(Debug)]
pub struct Engine {
    cfg: EngineConfig,
    state: EngineState,
    queue: VecDeque<Queued>,
    /// Per channel: send times within the rate-limit window.
    sent: Vec<VecDeque<DateTime<Utc>>>,
    /// Bumped by every change to what [`Engine::state`] returns, so a caller can
    /// tell "changed since I saved it" without building and comparing the whole
    /// state (hundreds of open incidents when hundreds of instances withhold).
    revision: u64,
    /// When the oldest retired code may be used again: until then there is
    /// nothing to expire, and a step does not walk every retired code (hundreds,
    /// after hundreds of instances raised and resolved at start-up).
    codes_expire_at: Option<DateTime<Utc>>,
}

/// When the first of `state`'s retired codes may be used again.
fn oldest_code_expiry(state: &EngineState, keep: Duration) -> Option<DateTime<Utc>> {
    state.retired_codes.values().min().map(|at| *at + keep)
}

/// Most tiers a config can have (`tier` is a u8).
fn max_tier(channels: &[ChannelInfo]) -> u8 {
    channels.iter().map(|c| c.tier).max().unwrap_or(0)
}

impl Engine {
    pub fn new(cfg: EngineConfig) -> Engine {
        let state = EngineState {
            rng: cfg.seed | 1,
            ..EngineState::default()
        };
        Engine::restore(cfg, state)
    }

    /// Picks up where a previous run stopped (the spool's snapshot).
    /// An engine from a saved state. Waiting notifications and send times of
    /// channels the config no longer has are dropped with them.
    pub fn restore(cfg: EngineConfig, mut state: EngineState) -> Engine {
        if state.rng == 0 {
            state.rng = cfg.seed | 1;
        }
        let index = |name: &str| cfg.channels.iter().position(|c| c.name == name);
        let queue = std::mem::take(&mut state.waiting)
            .into_iter()
            .filter_map(|w| {
                Some(Queued {
                    due: w.due,
                    droppable: w.droppable,
                    out: Outgoing {
                        channel: index(&w.channel)?,
                        alert: w.alert,
                    },
                })
            })
            .collect();
        let mut sent_at = std::mem::take(&mut state.sent_at);
        let sent = cfg
            .channels
            .iter()
            .map(|c| {
                let mut times = sent_at.remove(&c.name).unwrap_or_default();
                times.sort();
                times.into()
            })
            .collect();
        let codes_expire_at = oldest_code_expiry(&state, cfg.code_reuse_after);
        Engine {
            cfg,
            state,
            queue,
            sent,
            revision: 0,
            codes_expire_at,
        }
    }

    /// Changes with every change to [`Engine::state`] (and to [`Engine::open`]).
    pub fn revision(&self) -> u64 {
        self.revision
    }

    fn changed(&mut self) {
        self.revision = self.revision.wrapping_add(1);
    }

    /// Everything to save: the incidents and codes, plus the notifications
    /// waiting for room and the send times inside the rate-limit window.
    pub fn state(&self) -> EngineState {
        let name = |c: usize| self.cfg.channels.get(c).map(|c| c.name.clone());
        let mut state = self.state.clone();
        state.waiting = self
            .queue
            .iter()
            .filter_map(|q| {
                Some(WaitingAlert {
                    channel: name(q.out.channel)?,
                    due: q.due,
                    droppable: q.droppable,
                    alert: q.out.alert.clone(),
                })
            })
            .collect();
        state.sent_at = self
            .sent
            .iter()
            .enumerate()
            .filter(|(_, times)| !times.is_empty())
            .filter_map(|(c, times)| Some((name(c)?, times.iter().copied().collect())))
            .collect();
        state
    }

    pub fn open(&self) -> &[OpenIncident] {
        &self.state.open
    }

    // ---- inputs ------------------------------------------------------------------

    /// Raises (or refreshes) an incident; returns its code.
    pub fn handle_raise(&mut self, now: DateTime<Utc>, r: Raise) -> String {
        self.changed();
        self.expire_codes(now);
        if let Some(i) = self.state.open.iter().position(|o| o.key == r.key) {
            let inc = &mut self.state.open[i];
            let rose = r.severity > inc.severity;
            let renamed = r.kind != inc.kind;
            inc.owners = r.owners;
            inc.cause = r.cause;
            inc.kind = r.kind;
            let repage = renamed && !rose && inc.pages > 0 && !inc.acked();
            if repage {
                // A better diagnosis (split brain → VRID mismatch) is news.
                self.page(now, i, false);
            }
            let inc = &mut self.state.open[i];
            if rose {
                inc.severity = r.severity;
                if inc.pages == 0 {
                    if r.severity == Severity::Critical {
                        let critical_at = inc.started_at + self.cfg.group_wait_critical;
                        inc.first_page_at = inc.first_page_at.min(critical_at);
                    }
                } else if !inc.acked() {
                    self.page(now, i, false);
                }
            }
            let code = self.state.open[i].code.clone();
            self.handle_timeout(now);
            return code;
        }
        let code = self.new_code();
        self.state.counter += 1;
        let wait = if r.severity == Severity::Critical {
            self.cfg.group_wait_critical
        } else {
            self.cfg.group_wait
        };
        let id = format!(
            "{}-{}-{}",
            self.cfg.node,
            now.timestamp_millis(),
            self.state.counter
        );
        self.state.open.push(OpenIncident {
            id,
            key: r.key,
            kind: r.kind,
            severity: r.severity,
            instance: r.instance,
            vip: r.vip,
            owners: r.owners,
            cause: r.cause,
            code: code.clone(),
            started_at: now,
            pages: 0,
            notifications: 0,
            first_page_at: now + wait,
            next_repeat: None,
            tier: 0,
            next_escalation: None,
            acked_by: None,
            acked_at: None,
            muted_until: None,
            reached: Vec::new(),
        });
        self.handle_timeout(now);
        code
    }

    /// The condition behind `key` cleared.
    pub fn handle_resolve(&mut self, now: DateTime<Utc>, key: &str) {
        self.changed();
        let Some(i) = self.state.open.iter().position(|o| o.key == key) else {
            return;
        };
        let inc = self.state.open.remove(i);
        self.state.retired_codes.insert(inc.code.clone(), now);
        let expires = now + self.cfg.code_reuse_after;
        self.codes_expire_at = Some(self.codes_expire_at.map_or(expires, |t| t.min(expires)));
        // Drop what is still queued for it: the news is now "resolved".
        self.queue.retain(|q| q.out.alert.id != inc.id);
        if inc.pages > 0 && self.cfg.send_resolved {
            let n = inc.notifications + 1;
            for c in self.reached_channels(&inc) {
                let alert = self.alert(&inc, AlertStatus::Resolved, now, n, c);
                self.enqueue(now, c, alert, false);
            }
        }
    }

    /// An on-call acked `code`. Returns the incident.
    pub fn handle_ack(
        &mut self,
        now: DateTime<Utc>,
        code: &str,
        by: &str,
    ) -> Result<OpenIncident, AckError> {
        self.changed();
        let i = self
            .state
            .open
            .iter()
            .position(|o| o.code == code)
            .ok_or_else(|| AckError::UnknownCode(code.to_owned()))?;
        if self.state.open[i].acked() {
            return Ok(self.state.open[i].clone());
        }
        let inc = &mut self.state.open[i];
        inc.acked_by = Some(by.to_owned());
        inc.acked_at = Some(now);
        inc.next_repeat = None;
        inc.next_escalation = None;
        let id = inc.id.clone();
        // Pages still waiting for the rate limit are moot now.
        self.queue
            .retain(|q| !(q.out.alert.id == id && q.out.alert.status == AlertStatus::Firing));
        let inc = self.state.open[i].clone();
        if inc.pages > 0 {
            let n = inc.notifications + 1;
            self.state.open[i].notifications = n;
            for c in self.reached_channels(&inc) {
                let alert = self.alert(&inc, AlertStatus::Acknowledged, now, n, c);
                self.enqueue(now, c, alert, false);
            }
        }
        Ok(self.state.open[i].clone())
    }

    /// No repeats for `code` until `until` (escalation still stands unless acked).
    pub fn handle_mute(
        &mut self,
        now: DateTime<Utc>,
        code: &str,
        until: DateTime<Utc>,
    ) -> Result<OpenIncident, AckError> {
        self.changed();
        let inc = self
            .state
            .open
            .iter_mut()
            .find(|o| o.code == code)
            .ok_or_else(|| AckError::UnknownCode(code.to_owned()))?;
        inc.muted_until = Some(until.max(now));
        Ok(inc.clone())
    }

    /// Fires whatever is due: first pages, repeats, escalations.
    pub fn handle_timeout(&mut self, now: DateTime<Utc>) {
        self.expire_codes(now);
        for i in 0..self.state.open.len() {
            let inc = &self.state.open[i];
            if inc.pages == 0 && inc.first_page_at <= now {
                self.page(now, i, false);
                continue;
            }
            if inc.acked() {
                continue;
            }
            if let Some(at) = inc.next_escalation
                && at <= now
            {
                let next = inc.tier.saturating_add(1);
                let repeat_due = inc.next_repeat.is_some_and(|r| r <= now);
                self.changed();
                let inc = &mut self.state.open[i];
                inc.tier = next;
                inc.next_escalation =
                    (next < max_tier(&self.cfg.channels)).then(|| now + self.cfg.escalate_after);
                if repeat_due {
                    // One page for everyone, the new tier included.
                    self.page(now, i, false);
                    continue;
                }
                // Only the newly reached tier hears now; the others keep their
                // repeat rhythm.
                self.page_tier(now, i, next);
            }
            let inc = &self.state.open[i];
            if let Some(at) = inc.next_repeat
                && at <= now
            {
                let muted = inc.muted_until.is_some_and(|m| m > now);
                if muted {
                    self.changed();
                    self.state.open[i].next_repeat = Some(now + self.cfg.repeat_interval);
                } else {
                    self.page(now, i, true);
                }
            }
        }
    }

    // ---- outputs -----------------------------------------------------------------

    /// The next notification due at `now`, honouring the rate limits.
    pub fn poll_send(&mut self, now: DateTime<Utc>) -> Option<Outgoing> {
        let window = self.cfg.rate_limit_window;
        let mut expired = false;
        for s in &mut self.sent {
            while s.front().is_some_and(|t| *t + window <= now) {
                s.pop_front();
                expired = true;
            }
        }
        if expired {
            self.changed();
        }
        let mut k = 0;
        while k < self.queue.len() {
            let q = &self.queue[k];
            if q.due > now {
                k += 1;
                continue;
            }
            let c = q.out.channel;
            let full = self
                .sent
                .get(c)
                .is_some_and(|s| s.len() >= self.cfg.rate_limit as usize);
            if full {
                if q.droppable {
                    self.queue.remove(k);
                    self.changed();
                    continue;
                }
                k += 1;
                continue;
            }
            let q = self.queue.remove(k)?;
            self.changed();
            if let Some(s) = self.sent.get_mut(c) {
                s.push_back(now);
            }
            if let (Some(inc), Some(name)) = (
                self.state.open.iter_mut().find(|o| o.id == q.out.alert.id),
                self.cfg.channels.get(c).map(|c| &c.name),
            ) && !inc.reached.contains(name)
            {
                inc.reached.push(name.clone());
            }
            return Some(q.out);
        }
        None
    }

    /// When to call [`Engine::handle_timeout`] / [`Engine::poll_send`] next.
    pub fn poll_timeout(&self) -> Option<DateTime<Utc>> {
        let mut next: Option<DateTime<Utc>> = None;
        let mut take = |t: Option<DateTime<Utc>>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        for o in &self.state.open {
            if o.pages == 0 {
                take(Some(o.first_page_at));
            } else if !o.acked() {
                take(o.next_repeat);
                take(o.next_escalation);
            }
        }
        for q in &self.queue {
            let c = q.out.channel;
            let room_at = self.sent.get(c).and_then(|s| {
                (s.len() >= self.cfg.rate_limit as usize)
                    .then(|| s.front().map(|t| *t + self.cfg.rate_limit_window))
                    .flatten()
            });
            take(Some(room_at.map_or(q.due, |r| r.max(q.due))));
        }
        next
    }

    // ---- internals ---------------------------------------------------------------

    fn page(&mut self, now: DateTime<Utc>, i: usize, repeat: bool) {
        self.changed();
        let tier = self.state.open[i].tier;
        let inc = &mut self.state.open[i];
        if inc.pages == 0 {
            inc.first_page_at = now;
            inc.next_escalation =
                (max_tier(&self.cfg.channels) > 0).then(|| now + self.cfg.escalate_after);
        }
        inc.pages += 1;
        inc.notifications += 1;
        inc.next_repeat = Some(now + self.cfg.repeat_interval);
        let inc = inc.clone();
        for c in self.channels_where(|t| t <= tier) {
            let alert = self.alert(&inc, AlertStatus::Firing, now, inc.notifications, c);
            self.enqueue(now, c, alert, repeat);
        }
    }

    /// Pages only the channels of `tier` (escalation).
    fn page_tier(&mut self, now: DateTime<Utc>, i: usize, tier: u8) {
        self.changed();
        let inc = self.state.open[i].clone();
        for c in self.channels_where(|t| t == tier) {
            let alert = self.alert(&inc, AlertStatus::Firing, now, inc.notifications, c);
            self.enqueue(now, c, alert, false);
        }
    }

    fn channels_where(&self, f: impl Fn(u8) -> bool) -> Vec<usize> {
        (0..self.cfg.channels.len())
            .filter(|&c| f(self.cfg.channels[c].tier))
            .collect()
    }

    /// The channels up to the incident's tier that were handed something for it.
    fn reached_channels(&self, inc: &OpenIncident) -> Vec<usize> {
        self.channels_where(|t| t <= inc.tier)
            .into_iter()
            .filter(|&c| inc.reached.contains(&self.cfg.channels[c].name))
            .collect()
    }

    fn enqueue(&mut self, now: DateTime<Utc>, channel: usize, alert: Alert, droppable: bool) {
        self.queue.push_back(Queued {
            due: now,
            droppable,
            out: Outgoing { channel, alert },
        });
    }

    fn alert(
        &self,
        inc: &OpenIncident,
        status: AlertStatus,
        now: DateTime<Utc>,
        notification: u32,
        channel: usize,
    ) -> Alert {
        let channel_name = self
            .cfg
            .channels
            .get(channel)
            .map_or("?", |c| c.name.as_str());
        Alert {
            id: inc.id.clone(),
            status,
            kind: inc.kind,
            severity: inc.severity,
            node: self.cfg.node.clone(),
            instance: inc.instance.clone(),
            vip: inc.vip,
            owners: inc.owners.clone(),
            cause: inc.cause.clone(),
            code: inc.code.clone(),
            at: now,
            started_at: inc.started_at,
            notification,
            idempotency_key: format!(
                "{}.{}.{}.{}",
                inc.id,
                status.as_str(),
                notification,
                channel_name
            ),
            acked_by: inc.acked_by.clone(),
            missed: false,
        }
    }

    fn expire_codes(&mut self, now: DateTime<Utc>) {
        if self.codes_expire_at.is_none_or(|t| now < t) {
            return;
        }
        let keep = self.cfg.code_reuse_after;
        let before = self.state.retired_codes.len();
        self.state.retired_codes.retain(|_, at| *at + keep > now);
        self.codes_expire_at = oldest_code_expiry(&self.state, keep);
        if self.state.retired_codes.len() != before {
            self.changed();
        }
    }

    /// A four-digit code not open and not retired. xorshift64: codes need to be
    /// hard to guess by accident, not cryptographic (replies are authenticated).
    fn new_code(&mut self) -> String {
        for _ in 0..100_000 {
            let mut x = self.state.rng;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.state.rng = x;
            let code = format!("{}", 1000 + x % 9000);
            let taken = self.state.open.iter().any(|o| o.code == code)
                || self.state.retired_codes.contains_key(&code);
            if !taken {
                return code;
            }
        }
        // 9000 codes all taken within a day: widen rather than collide.
        format!("{}", 10_000 + self.state.counter)
    }
}

#[cfg(test)]
mod tests;
