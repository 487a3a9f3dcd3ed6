//! Owns how rejected adverts reach the log (pure: inputs and `now` in, lines
//! out). A segment can carry anything, at any rate: a misconfigured peer sends
//! the same wrong advert every second, a scanner or a compromised host sends
//! thousands of different ones. The log must show the first of each kind at
//! once (someone debugging a mismatch is watching) and stay a few lines a
//! second whatever arrives: a journal filled with rejections hides the lines
//! that matter. The counters in `/metrics` count every frame; this only
//! decides what is written.
//!
//! - **First of a kind, at once:** the first rejection of a reason from a
//!   source on an interface is one line, unless that reason from that source
//!   was seen in the last [`FORGET`] (then it is counted, not written).
//! - **Summaries:** every [`SUMMARY_EVERY`] while rejections arrive, one line
//!   per source that sent more than its lines already said, with all it sent
//!   in the period (counts per reason): the busiest [`SUMMARY_SOURCES`]
//!   sources by name, the rest folded into one line.
//! - **Bounds:** first-of-a-kind lines spend a budget ([`BURST`] lines, one
//!   more per [`REFILL`]); what the budget refuses is counted and said in the
//!   next summary. At most [`MAX_SOURCES`] sources are tracked by name (a
//!   flood from random addresses would otherwise grow the table without end);
//!   the others are counted together.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How often a summary goes out while rejections arrive.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(10);
/// A reason from a source unseen this long is new again (logged at once).
pub const FORGET: Duration = Duration::from_secs(60);
/// First-of-a-kind lines that may go out back to back.
pub const BURST: u32 = 5;
/// One more first-of-a-kind line allowed per this much time.
pub const REFILL: Duration = Duration::from_secs(1);
/// Sources tracked by name.
pub const MAX_SOURCES: usize = 64;
/// Sources named in one summary; the rest share a line.
pub const SUMMARY_SOURCES: usize = 5;

/// Where a rejected frame came from: the interface (by index, with its name
/// for the line) and the IP source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Source {
    pub ifindex: u32,
    pub src: IpAddr,
}

/// Frames per reason, most first.
pub type Counts = Vec<(&'static str, u64)>;

/// A line to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RejectLine {
    /// The first rejection of `reason` from `source` (in a while).
    First {
        source: Source,
        reason: &'static str,
        detail: String,
    },
    /// What `source` sent in the last `period` (its first-of-a-kind lines'
    /// frames included): the count per reason, most first.
    Summary {
        source: Source,
        counts: Vec<(&'static str, u64)>,
        period: Duration,
    },
    /// Everything else of the period: the tracked sources a summary does not
    /// name (`sources` of them) and the frames of sources beyond the table
    /// (`untracked` frames), counted by reason together; and the
    /// first-of-a-kind lines the budget refused.
    Rest {
        sources: u64,
        untracked: u64,
        counts: Vec<(&'static str, u64)>,
        unwritten: u64,
        period: Duration,
    },
}

#[derive(Debug, Default)]
struct Tally {
    /// Reasons seen from this source, with when each was last seen.
    known: BTreeMap<&'static str, Instant>,
    /// Frames this period, by reason, and how many of them went out as lines.
    counts: BTreeMap<&'static str, u64>,
    written: u64,
}

impl Tally {
    fn total(&self) -> u64 {
        self.counts.values().sum()
    }
}

/// The rejection log of one daemon (see the module rules).
#[derive(Debug, Default)]
pub struct RejectLog {
    sources: HashMap<Source, Tally>,
    /// Frames from sources beyond [`MAX_SOURCES`] this period, by reason.
    others: BTreeMap<&'static str, u64>,
    /// First-of-a-kind lines the budget refused this period.
    unwritten: u64,
    /// Budget: lines available, and when the next one is added.
    tokens: u32,
    refill_at: Option<Instant>,
    next_summary: Option<Instant>,
}

impl RejectLog {
    pub fn new() -> RejectLog {
        RejectLog {
            tokens: BURST,
            ..RejectLog::default()
        }
    }

    /// A frame from `source` was rejected for `reason`. Returns the line to
    /// write now, if any; `detail` (the rejection in words) is built only
    /// then.
    pub fn handle_reject(
        &mut self,
        now: Instant,
        source: Source,
        reason: &'static str,
        detail: impl FnOnce() -> String,
    ) -> Option<RejectLine> {
        if self.next_summary.is_none() {
            // A new period: sources forgotten since the last one leave the
            // table (they would otherwise keep new ones out of it).
            self.sources.retain(|_, t| {
                t.known
                    .retain(|_, last| now.saturating_duration_since(*last) < FORGET);
                !t.known.is_empty()
            });
            self.next_summary = Some(now + SUMMARY_EVERY);
        }
        let room = self.sources.len() < MAX_SOURCES;
        let tally = match self.sources.get_mut(&source) {
            Some(t) => t,
            None if room => self.sources.entry(source).or_default(),
            None => {
                *self.others.entry(reason).or_default() += 1;
                return None;
            }
        };
        *tally.counts.entry(reason).or_default() += 1;
        let new = tally
            .known
            .insert(reason, now)
            .is_none_or(|last| now.saturating_duration_since(last) >= FORGET);
        if !new {
            return None;
        }
        if !take_token(&mut self.tokens, &mut self.refill_at, now) {
            self.unwritten += 1;
            return None;
        }
        tally.written += 1;
        Some(RejectLine::First {
            source,
            reason,
            detail: detail(),
        })
    }

    /// When [`RejectLog::handle_timeout`] has a summary to give.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_summary
    }

    /// The summary of the period that ended, when it is due: one line per
    /// named source that sent more than its written lines, busiest first, and
    /// one for the rest. Sources quiet for [`FORGET`] are dropped.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<RejectLine> {
        let Some(due) = self.next_summary else {
            return Vec::new();
        };
        if now < due {
            return Vec::new();
        }
        let period = SUMMARY_EVERY;
        let mut busy: Vec<(Source, u64, Counts)> = self
            .sources
            .iter()
            .filter(|(_, t)| t.total() > t.written)
            .map(|(s, t)| (*s, t.total(), by_count(&t.counts)))
            .collect();
        busy.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut lines = Vec::new();
        let mut rest: BTreeMap<&'static str, u64> = std::mem::take(&mut self.others);
        let untracked = rest.values().sum();
        let mut rest_sources = 0;
        for (n, (source, _, counts)) in busy.into_iter().enumerate() {
            if n < SUMMARY_SOURCES {
                lines.push(RejectLine::Summary {
                    source,
                    counts,
                    period,
                });
            } else {
                rest_sources += 1;
                for (reason, c) in counts {
                    *rest.entry(reason).or_default() += c;
                }
            }
        }
        let unwritten = std::mem::take(&mut self.unwritten);
        if !rest.is_empty() || unwritten > 0 {
            lines.push(RejectLine::Rest {
                sources: rest_sources,
                untracked,
                counts: by_count(&rest),
                unwritten,
                period,
            });
        }
        self.sources.retain(|_, t| {
            t.counts.clear();
            t.written = 0;
            t.known
                .retain(|_, last| now.saturating_duration_since(*last) < FORGET);
            !t.known.is_empty()
        });
        // The next rejection starts the next period.
        self.next_summary = None;
        lines
    }
}

/// Takes one line from the budget, refilling one per [`REFILL`] up to [`BURST`].
fn take_token(tokens: &mut u32, refill_at: &mut Option<Instant>, now: Instant) -> bool {
    while let Some(at) = *refill_at {
        if now < at || *tokens >= BURST {
            break;
        }
        *tokens += 1;
        *refill_at = (*tokens < BURST).then_some(at + REFILL);
    }
    if *tokens == 0 {
        return false;
    }
    *tokens -= 1;
    if refill_at.is_none() {
        *refill_at = Some(now + REFILL);
    }
    true
}

fn by_count(counts: &BTreeMap<&'static str, u64>) -> Vec<(&'static str, u64)> {
    let mut v: Vec<(&'static str, u64)> = counts.iter().map(|(r, c)| (*r, *c)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const REASONS: [&str; 8] = [
        "truncated",
        "checksum",
        "version",
        "type",
        "auth",
        "auth_type",
        "count",
        "ttl",
    ];

    fn src(n: u8) -> Source {
        Source {
            ifindex: 2,
            src: IpAddr::from([192, 0, 2, n]),
        }
    }

    #[test]
    fn the_first_of_a_kind_is_written_at_once_and_repeats_are_counted() {
        let t0 = Instant::now();
        let mut log = RejectLog::new();
        let line = log.handle_reject(t0, src(9), "auth", || "wrong password".into());
        assert_eq!(
            line,
            Some(RejectLine::First {
                source: src(9),
                reason: "auth",
                detail: "wrong password".into()
            })
        );
        // The same mismatch every second: counted, not written, and its
        // detail is never built.
        for s in 1..10 {
            let at = t0 + Duration::from_secs(s);
            assert_eq!(
                log.handle_reject(at, src(9), "auth", || unreachable!()),
                None
            );
        }
        // Another reason from the same source is news.
        assert!(matches!(
            log.handle_reject(t0 + Duration::from_millis(9500), src(9), "ttl", || "ttl 64"
                .into()),
            Some(RejectLine::First { reason: "ttl", .. })
        ));
        assert_eq!(log.poll_timeout(), Some(t0 + SUMMARY_EVERY));
        assert!(log.handle_timeout(t0 + Duration::from_secs(9)).is_empty());
        let lines = log.handle_timeout(t0 + SUMMARY_EVERY);
        assert_eq!(
            lines,
            vec![RejectLine::Summary {
                source: src(9),
                counts: vec![("auth", 10), ("ttl", 1)],
                period: SUMMARY_EVERY
            }]
        );
        // Quiet: no timer until the next rejection.
        assert_eq!(log.poll_timeout(), None);
        assert!(log.handle_timeout(t0 + Duration::from_secs(100)).is_empty());
    }

    #[test]
    fn a_source_that_said_everything_in_its_first_lines_gets_no_summary() {
        let t0 = Instant::now();
        let mut log = RejectLog::new();
        assert!(log.handle_reject(t0, src(9), "auth", String::new).is_some());
        assert!(log.handle_timeout(t0 + SUMMARY_EVERY).is_empty());
    }

    #[test]
    fn a_reason_forgotten_for_a_minute_is_written_again() {
        let t0 = Instant::now();
        let mut log = RejectLog::new();
        assert!(log.handle_reject(t0, src(9), "auth", String::new).is_some());
        let _ = log.handle_timeout(t0 + SUMMARY_EVERY);
        let later = t0 + FORGET;
        let _ = log.handle_timeout(later);
        assert!(
            log.handle_reject(later, src(9), "auth", String::new)
                .is_some()
        );
    }

    #[test]
    fn alternating_reasons_spend_the_budget_and_the_summary_says_the_rest() {
        // The flood: 6,000 frames whose reasons alternate, from 6
        // sources, within one second.
        let t0 = Instant::now();
        let mut log = RejectLog::new();
        let mut written = 0;
        for n in 0..6000u32 {
            let at = t0 + Duration::from_micros(u64::from(n) * 166);
            let reason = REASONS[n as usize % REASONS.len()];
            if log
                .handle_reject(at, src((n % 6) as u8 + 10), reason, String::new)
                .is_some()
            {
                written += 1;
            }
        }
        // The burst, and one more from the refill within the second.
        assert!(written <= BURST + 1, "{written} lines");
        let lines = log.handle_timeout(t0 + SUMMARY_EVERY);
        assert_eq!(lines.len(), SUMMARY_SOURCES + 1, "{lines:?}");
        let mut frames = 0;
        for l in &lines {
            match l {
                RejectLine::Summary { counts, .. } => {
                    frames += counts.iter().map(|c| c.1).sum::<u64>();
                }
                RejectLine::Rest {
                    sources,
                    untracked,
                    counts,
                    unwritten,
                    ..
                } => {
                    assert_eq!((*sources, *untracked), (1, 0));
                    // n mod 6 and n mod 8 meet in 24 (source, reason) kinds,
                    // each news once; the budget wrote some.
                    assert_eq!(*unwritten, 24 - u64::from(written));
                    frames += counts.iter().map(|c| c.1).sum::<u64>();
                }
                RejectLine::First { .. } => panic!("{l:?}"),
            }
        }
        assert_eq!(frames, 6000);
    }

    #[test]
    fn sources_beyond_the_table_are_counted_together() {
        // A flood from 1,000 forged addresses, one frame each.
        let t0 = Instant::now();
        let mut log = RejectLog::new();
        let mut written = 0;
        for n in 0..1000u16 {
            let s = Source {
                ifindex: 2,
                src: IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 1, n]),
            };
            written += u64::from(log.handle_reject(t0, s, "checksum", String::new).is_some());
        }
        assert_eq!(log.sources.len(), MAX_SOURCES);
        assert_eq!(written, u64::from(BURST));
        let lines = log.handle_timeout(t0 + SUMMARY_EVERY);
        assert_eq!(lines.len(), SUMMARY_SOURCES + 1);
        let Some(RejectLine::Rest {
            sources,
            untracked,
            counts,
            unwritten,
            ..
        }) = lines.last()
        else {
            panic!("{lines:?}");
        };
        let named = (MAX_SOURCES - BURST as usize - SUMMARY_SOURCES) as u64;
        assert_eq!((*sources, *untracked), (named, 1000 - MAX_SOURCES as u64));
        assert_eq!(*unwritten, (MAX_SOURCES as u64) - written);
        assert_eq!(
            counts,
            &vec![("checksum", named + 1000 - MAX_SOURCES as u64)]
        );
        // The forgotten sources leave the table when the next period begins.
        let later = t0 + FORGET;
        assert!(log.handle_timeout(later).is_empty());
        assert!(
            log.handle_reject(later, src(7), "ttl", String::new)
                .is_some()
        );
        assert_eq!(log.sources.len(), 1);
    }

    proptest! {
        /// Whatever arrives: at most a few lines a second, and every frame is
        /// accounted for, in a first-of-a-kind line or in a summary.
        #[test]
        fn lines_stay_bounded_and_counts_exact(
            frames in proptest::collection::vec((0u64..3000, 0u8..100, 0usize..8), 1..3000)
        ) {
            let t0 = Instant::now();
            let mut log = RejectLog::new();
            let mut at = t0;
            let mut lines: Vec<(Instant, RejectLine)> = Vec::new();
            // This period's frames and first lines per source.
            let mut period: HashMap<Source, (u64, u64)> = HashMap::new();
            let check = |period: &mut HashMap<Source, (u64, u64)>, got: &[RejectLine]| {
                let expected: u64 = period
                    .drain()
                    .filter(|(_, (frames, firsts))| frames > firsts)
                    .map(|(_, (frames, _))| frames)
                    .sum();
                let summed: u64 = got
                    .iter()
                    .map(|l| match l {
                        RejectLine::Summary { counts, .. } | RejectLine::Rest { counts, .. } => {
                            counts.iter().map(|c| c.1).sum::<u64>()
                        }
                        RejectLine::First { .. } => 0,
                    })
                    .sum();
                assert_eq!(summed, expected);
            };
            for (gap_ms, s, r) in frames.iter().copied() {
                at += Duration::from_millis(gap_ms / 100) + Duration::from_micros(gap_ms);
                if log.poll_timeout().is_some_and(|t| t <= at) {
                    let got = log.handle_timeout(at);
                    check(&mut period, &got);
                    lines.extend(got.into_iter().map(|l| (at, l)));
                }
                let line = log.handle_reject(at, src(s), REASONS[r], String::new);
                let p = period.entry(src(s)).or_default();
                p.0 += 1;
                if let Some(l) = line {
                    p.1 += 1;
                    lines.push((at, l));
                }
            }
            let end = at + SUMMARY_EVERY;
            let got = log.handle_timeout(end);
            check(&mut period, &got);
            lines.extend(got.into_iter().map(|l| (end, l)));
            // Lines in any 10 s window: the burst, the refill and one summary.
            let bound = BURST as usize + 10 + SUMMARY_SOURCES + 1;
            for (i, (start, _)) in lines.iter().enumerate() {
                let n = lines[i..]
                    .iter()
                    .take_while(|(t, _)| *t < *start + SUMMARY_EVERY)
                    .count();
                prop_assert!(n <= bound, "{} lines in 10 s", n);
            }
        }
    }
}
