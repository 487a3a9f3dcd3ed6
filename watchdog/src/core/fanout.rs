//! Alertmanager in HA, the pure part: a channel posts each notice to every
//! instance of a cluster (Alertmanager's own rule: clients send to all, never
//! through a balancer; the cluster dedupes). This owns which instances still
//! owe a copy of a notice the channel delivered (another instance took it),
//! when each copy is retried and when it is given up, and which of an
//! instance's failures are worth a log line. It also owns the retry schedule
//! the dispatcher uses for whole notices ([`backoff`]), so both retry alike.
//!
//! Pure: results and `now` in, decisions out; the dispatcher sends.

use std::time::{Duration, Instant};

use crate::core::alert::Alert;

/// First retry delay; doubles per failure up to [`BACKOFF_MAX`].
pub const BACKOFF_START: Duration = Duration::from_millis(500);
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// The delay after `attempts` earlier failures (0: the first retry).
pub fn backoff(attempts: u32) -> Duration {
    let factor = 1u32 << attempts.min(16);
    BACKOFF_START.saturating_mul(factor).min(BACKOFF_MAX)
}

/// How long a copy an instance missed is retried, from its first failure
/// (`retry_for` of the channel). Past it the engine's repeats, not this, bring
/// a returning instance up to date.
pub const DEFAULT_RETRY_FOR: Duration = Duration::from_secs(300);

/// Copies owed to one instance at most; the oldest goes first. An instance
/// down for hours owes at most this many, whatever the traffic.
pub const MAX_OWED: usize = 32;

/// While an instance keeps failing, one log line per this long.
pub const REPORT_EVERY: Duration = Duration::from_secs(600);

/// What one instance did with one post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Accepted,
    Failed {
        /// The same post may succeed later (5xx, 429, timeout, refused).
        retryable: bool,
        error: String,
    },
}

/// What the channel makes of a notice posted to every instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// At least one instance took it: the cluster has it.
    Delivered,
    /// None took it and one may later: the whole notice is retried.
    Retry,
    /// Every instance refused it for good.
    Refused,
}

/// What happened to one owed copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyOutcome {
    /// The instance took it late.
    Taken,
    /// Failed again; tried again after `after`.
    Retrying { attempt: u32, after: Duration },
    /// Not retried any more: `retry_for` ran out, or the instance refused it.
    GaveUp { attempts: u32 },
}

/// Whether an instance's result deserves a line above debug: failures are
/// written when an instance goes down and then once per [`REPORT_EVERY`],
/// so a dead instance costs a line per ten minutes, not one per retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    Quiet,
    /// The first failure since it last took something (or since start).
    Down,
    /// Still failing: what happened since the last line.
    StillDown {
        failures: u64,
        gave_up: u64,
        down_for: Duration,
    },
    /// Took something after failing.
    Recovered {
        failures: u64,
        down_for: Duration,
    },
}

/// One copy an instance owes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Owed {
    alert: Alert,
    /// Failed posts of this copy so far (the first is the notice's own).
    attempts: u32,
    first_failed: Instant,
    next_at: Instant,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Health {
    down_since: Option<Instant>,
    last_line: Option<Instant>,
    /// Since the last line.
    failures: u64,
    gave_up: u64,
    /// Since it went down.
    outage_failures: u64,
}

impl Health {
    fn failed(&mut self, now: Instant) -> Note {
        self.outage_failures += 1;
        let Some(since) = self.down_since else {
            self.down_since = Some(now);
            self.last_line = Some(now);
            self.failures = 0;
            self.gave_up = 0;
            return Note::Down;
        };
        self.failures += 1;
        self.report(now, since)
    }

    fn gave_up(&mut self, now: Instant) -> Note {
        self.gave_up += 1;
        match self.down_since {
            Some(since) => self.report(now, since),
            None => Note::Quiet,
        }
    }

    fn report(&mut self, now: Instant, since: Instant) -> Note {
        let last = self.last_line.unwrap_or(since);
        if now.saturating_duration_since(last) < REPORT_EVERY {
            return Note::Quiet;
        }
        self.last_line = Some(now);
        let note = Note::StillDown {
            failures: self.failures,
            gave_up: self.gave_up,
            down_for: now.saturating_duration_since(since),
        };
        self.failures = 0;
        self.gave_up = 0;
        note
    }

    fn accepted(&mut self, now: Instant) -> Note {
        let failures = std::mem::take(&mut self.outage_failures);
        match self.down_since.take() {
            Some(since) => Note::Recovered {
                failures,
                down_for: now.saturating_duration_since(since),
            },
            None => Note::Quiet,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Instance {
    owed: Vec<Owed>,
    health: Health,
}

/// The copies a cluster's instances owe, for one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fanout {
    retry_for: Duration,
    instances: Vec<Instance>,
}

impl Fanout {
    /// `n` instances; a copy is retried for `retry_for` after its first failure.
    pub fn new(n: usize, retry_for: Duration) -> Fanout {
        Fanout {
            retry_for,
            instances: vec![Instance::default(); n],
        }
    }

    pub fn len(&self) -> usize {
        self.instances.len()
    }

    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
    }

    /// A new notice is about to go to every instance: copies owed of older
    /// notices of the same incident are dropped. The new one carries the
    /// incident's current state, and Alertmanager takes the latest post as
    /// the truth: a stale page arriving after its resolution would reopen it.
    /// Returns how many were dropped.
    pub fn begin(&mut self, alert: &Alert) -> usize {
        let mut dropped = 0;
        for inst in &mut self.instances {
            let before = inst.owed.len();
            inst.owed.retain(|o| o.alert.id != alert.id);
            dropped += before - inst.owed.len();
        }
        dropped
    }

    /// The results of posting `alert` to every instance (`results[i]` is
    /// instance `i`'s), at `now`. Delivered when any took it; then each
    /// instance that failed and may recover owes a copy, retried on the
    /// [`backoff`] schedule. When none took it nobody owes anything: the
    /// dispatcher retries the whole notice. Also a [`Note`] per instance.
    pub fn settle(
        &mut self,
        now: Instant,
        alert: &Alert,
        results: &[Attempt],
    ) -> (Verdict, Vec<Note>) {
        let any = results.contains(&Attempt::Accepted);
        let retryable = results.iter().any(|r| {
            matches!(
                r,
                Attempt::Failed {
                    retryable: true,
                    ..
                }
            )
        });
        let verdict = match (any, retryable) {
            (true, _) => Verdict::Delivered,
            (false, true) => Verdict::Retry,
            (false, false) => Verdict::Refused,
        };
        let mut notes = Vec::with_capacity(results.len());
        for (i, r) in results.iter().enumerate() {
            let Some(inst) = self.instances.get_mut(i) else {
                notes.push(Note::Quiet);
                continue;
            };
            match r {
                Attempt::Accepted => notes.push(inst.health.accepted(now)),
                Attempt::Failed { retryable, .. } => {
                    let mut note = inst.health.failed(now);
                    if verdict == Verdict::Delivered && *retryable {
                        let next_at = now + backoff(0);
                        if next_at <= now + self.retry_for {
                            if inst.owed.len() >= MAX_OWED {
                                inst.owed.remove(0);
                                note = merge(note, inst.health.gave_up(now));
                            }
                            inst.owed.push(Owed {
                                alert: alert.clone(),
                                attempts: 1,
                                first_failed: now,
                                next_at,
                            });
                        } else {
                            note = merge(note, inst.health.gave_up(now));
                        }
                    }
                    notes.push(note);
                }
            }
        }
        (verdict, notes)
    }

    /// The copies due at `now`: (instance, the notice), oldest first per
    /// instance.
    pub fn due(&self, now: Instant) -> Vec<(usize, Alert)> {
        let mut out = Vec::new();
        for (i, inst) in self.instances.iter().enumerate() {
            for o in inst.owed.iter().filter(|o| o.next_at <= now) {
                out.push((i, o.alert.clone()));
            }
        }
        out
    }

    /// The result of retrying instance `i`'s copy of the notice with
    /// `idempotency_key` at `now`. None when it no longer owes that copy (a
    /// newer notice of the incident replaced it meanwhile).
    pub fn record_copy(
        &mut self,
        i: usize,
        idempotency_key: &str,
        now: Instant,
        attempt: &Attempt,
    ) -> Option<(CopyOutcome, Note)> {
        let retry_for = self.retry_for;
        let inst = self.instances.get_mut(i)?;
        let at = inst
            .owed
            .iter()
            .position(|o| o.alert.idempotency_key == idempotency_key)?;
        match attempt {
            Attempt::Accepted => {
                inst.owed.remove(at);
                Some((CopyOutcome::Taken, inst.health.accepted(now)))
            }
            Attempt::Failed { retryable, .. } => {
                let failed = inst.health.failed(now);
                let o = &mut inst.owed[at];
                o.attempts += 1;
                let after = backoff(o.attempts - 1);
                let deadline = o.first_failed + retry_for;
                if *retryable && now + after <= deadline {
                    o.next_at = now + after;
                    let attempt = o.attempts;
                    Some((CopyOutcome::Retrying { attempt, after }, failed))
                } else {
                    let attempts = o.attempts;
                    inst.owed.remove(at);
                    let note = merge(failed, inst.health.gave_up(now));
                    Some((CopyOutcome::GaveUp { attempts }, note))
                }
            }
        }
    }

    /// When the next copy falls due, if any is owed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.instances
            .iter()
            .flat_map(|i| i.owed.iter().map(|o| o.next_at))
            .min()
    }

    /// How many copies instance `i` owes.
    pub fn owed(&self, i: usize) -> usize {
        self.instances.get(i).map_or(0, |i| i.owed.len())
    }
}

/// Two notes for one step: the one that says more wins.
fn merge(a: Note, b: Note) -> Note {
    match (a, b) {
        (Note::Quiet, b) => b,
        (a, _) => a,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::alert::AlertStatus;
    use crate::core::alert::testing::sample;

    const S: Duration = Duration::from_secs(1);

    fn failed() -> Attempt {
        Attempt::Failed {
            retryable: true,
            error: "connection refused".into(),
        }
    }

    fn refused() -> Attempt {
        Attempt::Failed {
            retryable: false,
            error: "HTTP 400".into(),
        }
    }

    fn notice(id: &str, status: AlertStatus, n: u32) -> Alert {
        let mut a = sample();
        a.id = id.into();
        a.status = status;
        a.notification = n;
        a.idempotency_key = format!("{id}.{}.{n}", status.as_str());
        a
    }

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(0), Duration::from_millis(500));
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(4));
        assert_eq!(backoff(30), BACKOFF_MAX);
    }

    #[test]
    fn any_instance_delivers_and_the_one_that_failed_owes_a_copy() {
        let t0 = Instant::now();
        let mut f = Fanout::new(3, 60 * S);
        let page = notice("a", AlertStatus::Firing, 1);
        let (v, notes) = f.settle(t0, &page, &[Attempt::Accepted, Attempt::Accepted, failed()]);
        assert_eq!(v, Verdict::Delivered);
        assert_eq!(notes, vec![Note::Quiet, Note::Quiet, Note::Down]);
        assert_eq!((f.owed(0), f.owed(1), f.owed(2)), (0, 0, 1));
        assert_eq!(f.poll_timeout(), Some(t0 + backoff(0)));
        assert!(f.due(t0).is_empty());
        let due = f.due(t0 + backoff(0));
        assert_eq!(due.len(), 1);
        assert_eq!(
            (due[0].0, due[0].1.idempotency_key.as_str()),
            (2, "a.firing.1")
        );
        // Taken late: nothing owed, and the instance is back.
        let t1 = t0 + backoff(0);
        let (o, note) = f
            .record_copy(2, "a.firing.1", t1, &Attempt::Accepted)
            .unwrap();
        assert_eq!(o, CopyOutcome::Taken);
        assert_eq!(
            note,
            Note::Recovered {
                failures: 1,
                down_for: backoff(0)
            }
        );
        assert_eq!(f.poll_timeout(), None);
        assert_eq!(f.record_copy(2, "a.firing.1", t1, &Attempt::Accepted), None);
    }

    #[test]
    fn nobody_accepting_retries_the_whole_notice_and_owes_nothing() {
        let t0 = Instant::now();
        let mut f = Fanout::new(2, 60 * S);
        let page = notice("a", AlertStatus::Firing, 1);
        let (v, _) = f.settle(t0, &page, &[failed(), refused()]);
        assert_eq!(v, Verdict::Retry);
        assert_eq!(f.poll_timeout(), None);
        let (v, _) = f.settle(t0, &page, &[refused(), refused()]);
        assert_eq!(v, Verdict::Refused);
        // One refusing for good while another takes it: delivered, and the
        // refusing one owes nothing (the same post would be refused again).
        let (v, _) = f.settle(t0, &page, &[refused(), Attempt::Accepted]);
        assert_eq!(v, Verdict::Delivered);
        assert_eq!(f.owed(0), 0);
    }

    /// A dead instance: the copy is retried on the dispatcher's schedule and
    /// given up once `retry_for` after its first failure has passed.
    #[test]
    fn retries_of_a_copy_are_bounded_by_retry_for() {
        let t0 = Instant::now();
        let retry_for = 10 * S;
        let mut f = Fanout::new(2, retry_for);
        let page = notice("a", AlertStatus::Firing, 1);
        f.settle(t0, &page, &[Attempt::Accepted, failed()]);
        let mut now = t0;
        let mut outcomes = Vec::new();
        while let Some(next) = f.poll_timeout() {
            assert!(next >= now, "never in the past");
            now = next;
            for (i, a) in f.due(now) {
                let (o, _) = f
                    .record_copy(i, &a.idempotency_key, now, &failed())
                    .unwrap();
                outcomes.push((now - t0, o));
            }
            assert!(outcomes.len() < 100, "bounded");
        }
        // Posts at 0 (the notice), 0.5 s, 1.5 s, 3.5 s, 7.5 s; the next would be
        // at 15.5 s, past 10 s: given up at 7.5 s.
        let times: Vec<Duration> = outcomes.iter().map(|(t, _)| *t).collect();
        assert_eq!(
            times,
            [500, 1500, 3500, 7500].map(Duration::from_millis).to_vec()
        );
        assert_eq!(
            outcomes.last().unwrap().1,
            CopyOutcome::GaveUp { attempts: 5 }
        );
        assert_eq!(f.owed(1), 0);
        assert!(now - t0 <= retry_for);
    }

    #[test]
    fn a_refused_copy_is_given_up_at_once() {
        let t0 = Instant::now();
        let mut f = Fanout::new(2, 60 * S);
        let page = notice("a", AlertStatus::Firing, 1);
        f.settle(t0, &page, &[Attempt::Accepted, failed()]);
        let t1 = t0 + S;
        let (o, _) = f.record_copy(1, "a.firing.1", t1, &refused()).unwrap();
        assert_eq!(o, CopyOutcome::GaveUp { attempts: 2 });
        assert_eq!(f.owed(1), 0);
    }

    /// The resolved notice replaces the page an instance still owes: the stale
    /// page must never reach it after its resolution.
    #[test]
    fn a_newer_notice_of_the_incident_replaces_the_owed_copy() {
        let t0 = Instant::now();
        let mut f = Fanout::new(2, 60 * S);
        f.settle(
            t0,
            &notice("a", AlertStatus::Firing, 1),
            &[Attempt::Accepted, failed()],
        );
        f.settle(
            t0,
            &notice("b", AlertStatus::Firing, 1),
            &[Attempt::Accepted, failed()],
        );
        assert_eq!(f.owed(1), 2);
        let resolved = notice("a", AlertStatus::Resolved, 2);
        assert_eq!(f.begin(&resolved), 1);
        f.settle(t0 + S, &resolved, &[Attempt::Accepted, failed()]);
        let keys: Vec<String> = f
            .due(t0 + 10 * S)
            .into_iter()
            .map(|(_, a)| a.idempotency_key)
            .collect();
        assert_eq!(keys, ["b.firing.1", "a.resolved.2"]);
        // A result for the replaced copy (in flight while it was replaced) is
        // ignored.
        assert_eq!(f.record_copy(1, "a.firing.1", t0 + 2 * S, &failed()), None);
    }

    #[test]
    fn an_instance_owes_at_most_max_owed_copies() {
        let t0 = Instant::now();
        let mut f = Fanout::new(2, 3600 * S);
        for n in 0..(MAX_OWED + 5) {
            let a = notice(&format!("i{n}"), AlertStatus::Firing, 1);
            f.settle(t0, &a, &[Attempt::Accepted, failed()]);
        }
        assert_eq!(f.owed(1), MAX_OWED);
        let first = &f.due(t0 + 3600 * S)[0].1;
        assert_eq!(first.id, "i5", "the oldest went first");
    }

    /// Down for five hours, retried all along: a line when it goes down, one
    /// per REPORT_EVERY, one when it is back; never one per failure.
    #[test]
    fn log_lines_stay_bounded_while_an_instance_is_down_for_hours() {
        let t0 = Instant::now();
        let mut f = Fanout::new(2, 120 * S);
        let mut now = t0;
        let mut lines = Vec::new();
        let mut failures = 0u64;
        let mut n = 0;
        // A notice a minute (a busy repeat interval), its copy retried each time.
        while now < t0 + 5 * 3600 * S {
            n += 1;
            let a = notice(&format!("i{n}"), AlertStatus::Firing, 1);
            let (_, notes) = f.settle(now, &a, &[Attempt::Accepted, failed()]);
            failures += 1;
            lines.extend(notes.into_iter().filter(|n| *n != Note::Quiet));
            let end = now + 60 * S;
            while let Some(next) = f.poll_timeout().filter(|t| *t < end) {
                now = next;
                for (i, a) in f.due(now) {
                    let (_, note) = f
                        .record_copy(i, &a.idempotency_key, now, &failed())
                        .unwrap();
                    failures += 1;
                    if note != Note::Quiet {
                        lines.push(note);
                    }
                }
            }
            now = end;
        }
        assert!(failures > 1000, "{failures}");
        assert_eq!(lines[0], Note::Down);
        let still = lines
            .iter()
            .filter(|n| matches!(n, Note::StillDown { .. }))
            .count();
        assert_eq!(lines.len(), 1 + still);
        assert!((29..=31).contains(&still), "{still} lines in 5 h");
        let Note::StillDown {
            failures: f1,
            gave_up,
            ..
        } = lines[1]
        else {
            panic!("{:?}", lines[1]);
        };
        assert!(f1 > 50 && gave_up >= 9, "{f1} {gave_up}");
        let back = notice("back", AlertStatus::Firing, 1);
        let (_, notes) = f.settle(now, &back, &[Attempt::Accepted, Attempt::Accepted]);
        assert!(
            matches!(notes[1], Note::Recovered { down_for, .. } if down_for >= 5 * 3600 * S - 60 * S),
            "{:?}",
            notes[1]
        );
    }
}
