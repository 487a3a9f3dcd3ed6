//! Invalid adverts (issue 19): frames the capture reads as VRRP, naming a
//! watched VIP or its VRID, that fail the link rule (TTL / hop limit 255,
//! version, type, length, checksum). Every VRRP router drops them, so they
//! never name a master; a stream of them from one source is an incident of
//! its own, `invalid_adverts` (warning), naming the source and the reasons.
//! Per VIP, what each source sent is kept here, bounded in sources and
//! reasons whatever the flood.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// A frame that failed the link rule, as far as it could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidAdvert {
    pub src: IpAddr,
    /// The VRID byte, where the frame is long enough to carry one.
    pub vrid: Option<u8>,
    /// The addresses as far as the frame holds them.
    pub vips: Vec<IpAddr>,
    /// The short reason (the `splitguard_adverts_rejected_total` label).
    pub reason: &'static str,
    /// The reason in words, naming the offending values.
    pub detail: String,
    /// Sent by this node (an outgoing frame).
    pub from_self: bool,
}

/// Frames before they count as a stream (from one source, or from all
/// together): one corrupted frame is no incident.
pub const STREAM: u64 = 3;
/// Sources kept per VIP; past it, the one heard longest ago is forgotten, so
/// a flood from spoofed sources cannot grow memory.
pub const MAX_SOURCES: usize = 8;
/// Sources a cause names; the rest are "other sources".
const NAMED_SOURCES: usize = 3;
/// Reasons kept per source (there are fewer kinds than this; a bound anyway).
const MAX_REASONS: usize = 16;

#[derive(Debug, Clone)]
struct Stream {
    last: Instant,
    count: u64,
    reasons: BTreeSet<&'static str>,
}

/// The invalid frames one VIP has heard. What the incident's words say only
/// grows while it lasts (sources named once they stream, up to three, and
/// their reasons), so its cause changes a bounded number of times however
/// the flood varies its sources and reasons: every change re-raises.
#[derive(Debug, Clone, Default)]
pub(super) struct InvalidSources {
    by_src: BTreeMap<IpAddr, Stream>,
    /// The sources the cause names, in the order they began to stream.
    named: Vec<(IpAddr, BTreeSet<&'static str>)>,
    /// More sources streamed than are named.
    others: bool,
    /// Frames since the episode began, from any source, and the last one.
    total: u64,
    last: Option<Instant>,
    /// The episode's first frame: its source, VRID and reason in words.
    first: Option<(IpAddr, Option<u8>, String)>,
}

impl InvalidSources {
    /// Counts frame `a`. A source silent for longer than `memory` starts a
    /// new stream; all silent that long, a new episode.
    pub fn note(&mut self, now: Instant, a: &InvalidAdvert, memory: Duration) {
        self.forget_stale(now, memory);
        self.total = self.total.saturating_add(1);
        self.last = Some(now);
        self.first
            .get_or_insert_with(|| (a.src, a.vrid, a.detail.clone()));
        match self.by_src.get_mut(&a.src) {
            Some(s) if now.saturating_duration_since(s.last) < memory => {
                s.last = now;
                s.count = s.count.saturating_add(1);
                if s.reasons.len() < MAX_REASONS {
                    s.reasons.insert(a.reason);
                }
            }
            _ => {
                if self.by_src.len() >= MAX_SOURCES && !self.by_src.contains_key(&a.src) {
                    let oldest = self
                        .by_src
                        .iter()
                        .min_by_key(|(_, s)| s.last)
                        .map(|(src, _)| *src);
                    if let Some(src) = oldest {
                        self.by_src.remove(&src);
                    }
                }
                let s = Stream {
                    last: now,
                    count: 1,
                    reasons: BTreeSet::from([a.reason]),
                };
                self.by_src.insert(a.src, s);
            }
        }
        let Some(stream) = self.by_src.get(&a.src).filter(|s| s.count >= STREAM) else {
            return;
        };
        match self.named.iter().position(|(src, _)| *src == a.src) {
            Some(i) => {
                if let Some((_, reasons)) = self.named.get_mut(i)
                    && reasons.len() < MAX_REASONS
                {
                    reasons.insert(a.reason);
                }
            }
            None if self.named.len() < NAMED_SOURCES => {
                self.named.push((a.src, stream.reasons.clone()));
            }
            None => self.others = true,
        }
    }

    /// Forgets sources silent for `memory`, and the episode once every one is.
    pub fn forget_stale(&mut self, now: Instant, memory: Duration) {
        self.by_src
            .retain(|_, s| now.saturating_duration_since(s.last) < memory);
        if self
            .last
            .is_some_and(|l| now.saturating_duration_since(l) >= memory)
        {
            *self = InvalidSources::default();
        }
    }

    /// When the episode goes stale.
    pub fn deadline(&self, memory: Duration) -> Option<Instant> {
        self.last.map(|l| l + memory)
    }

    /// The incident's words while the episode is a stream, else None.
    pub fn cause(&self, vip: IpAddr) -> Option<String> {
        let (first_src, vrid, first) = self.first.as_ref()?;
        let from = if self.named.is_empty() {
            if self.total < STREAM {
                return None;
            }
            // Many frames, no source sending three: spoofed sources.
            format!("{first_src} and other sources, none sending {STREAM} in a row")
        } else {
            let named: Vec<String> = self
                .named
                .iter()
                .map(|(src, reasons)| {
                    let reasons: Vec<&str> = reasons.iter().copied().collect();
                    format!("{src} ({})", reasons.join(", "))
                })
                .collect();
            let others = if self.others {
                " and other sources"
            } else {
                ""
            };
            format!("{}{others}", named.join(", "))
        };
        let vrid = vrid.map(|v| format!(" (VRID {v})")).unwrap_or_default();
        Some(format!(
            "invalid VRRP adverts for VIP {vip}{vrid} from {from}; first: {first}. Every VRRP router drops them, so they decide no election, but a misconfigured or hostile host on the segment sends them"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(src: &str, reason: &'static str) -> InvalidAdvert {
        InvalidAdvert {
            src: src.parse().expect("address"),
            vrid: Some(51),
            vips: vec![],
            reason,
            detail: format!("{reason} detail"),
            from_self: false,
        }
    }

    const MEMORY: Duration = Duration::from_secs(3);

    #[test]
    fn a_stream_needs_three_frames_and_ends_after_memory() {
        let t = Instant::now();
        let vip: IpAddr = "192.0.2.3".parse().expect("vip");
        let mut s = InvalidSources::default();
        s.note(t, &frame("192.0.2.66", "ttl"), MEMORY);
        s.note(t, &frame("192.0.2.66", "checksum"), MEMORY);
        assert_eq!(s.cause(vip), None, "two frames are no stream");
        s.note(t, &frame("192.0.2.66", "ttl"), MEMORY);
        let cause = s.cause(vip).expect("a stream");
        assert!(cause.contains("192.0.2.66 (checksum, ttl)"), "{cause}");
        assert!(cause.contains("VRID 51"), "{cause}");
        assert!(cause.contains("first: ttl detail"), "{cause}");
        assert_eq!(s.deadline(MEMORY), Some(t + MEMORY));
        s.forget_stale(t + MEMORY, MEMORY);
        assert_eq!(s.cause(vip), None);
        assert_eq!(s.deadline(MEMORY), None);
    }

    #[test]
    fn a_gap_longer_than_memory_starts_over() {
        let t = Instant::now();
        let vip: IpAddr = "192.0.2.3".parse().expect("vip");
        let mut s = InvalidSources::default();
        for k in 0..3u32 {
            // One frame every 4 s: never a stream.
            s.note(
                t + MEMORY * k + MEMORY / 3 * k,
                &frame("192.0.2.66", "ttl"),
                MEMORY,
            );
        }
        assert_eq!(s.cause(vip), None);
    }

    /// Spoofed sources: memory stays bounded, and the words change a bounded
    /// number of times (each change re-raises and logs a line).
    #[test]
    fn spoofed_sources_stay_bounded_and_the_words_settle() {
        let t = Instant::now();
        let vip: IpAddr = "192.0.2.3".parse().expect("vip");
        let reasons = ["ttl", "checksum", "version", "type", "length", "truncated"];
        for repeat in [1u64, 3] {
            let mut s = InvalidSources::default();
            let mut causes = BTreeSet::new();
            for k in 0..10_000u64 {
                let src = format!("192.0.2.{}", 10 + (k / repeat) % 200);
                let at = t + Duration::from_micros(100 * k);
                s.note(at, &frame(&src, reasons[(k % 6) as usize]), MEMORY);
                causes.extend(s.cause(vip));
            }
            assert!(s.by_src.len() <= MAX_SOURCES);
            assert!(
                causes.len() <= 3 * 6 + 2,
                "{repeat}: {} causes",
                causes.len()
            );
            let last = s.cause(vip).expect("an incident");
            if repeat == 1 {
                assert!(last.contains("and other sources, none sending 3"), "{last}");
            } else {
                assert!(last.contains("and other sources;"), "{last}");
            }
        }
    }
}
