//! Timer arithmetic: the interval ranges the wire can carry, Skew_Time and
//! Master_Down_Interval, and deadline computation that cannot overflow.
//!
//! All durations are computed in integer nanoseconds so that the figures the RFCs and
//! keepalived quote (v2, priority 100, 1 s: 3 s + 156/256 s = 3.609375 s) come out
//! exactly, and tests can assert instants to the nanosecond.

use std::time::{Duration, Instant};

use crate::Version;

/// RFC 3768: Adver Int is 8 bits of whole seconds; 0 is meaningless.
pub const V2_MIN_INTERVAL: Duration = Duration::from_secs(1);
pub const V2_MAX_INTERVAL: Duration = Duration::from_secs(255);
/// RFC 5798: Max Adver Int is 12 bits of centiseconds; 0 is meaningless.
pub const V3_MIN_INTERVAL: Duration = Duration::from_millis(10);
pub const V3_MAX_INTERVAL: Duration = Duration::from_millis(40_950);

/// Master_Down_Interval counts this many missed adverts (keepalived's
/// `down_timer_adverts`, default 3, which is also the RFCs' fixed factor).
pub const DOWN_TIMER_ADVERTS: u32 = 3;

const NANOS_PER_SEC: u128 = 1_000_000_000;
const NANOS_PER_CENTI: u128 = 10_000_000;

/// The interval range a version's wire field can express.
pub fn interval_bounds(version: Version) -> (Duration, Duration) {
    match version {
        Version::V2 => (V2_MIN_INTERVAL, V2_MAX_INTERVAL),
        Version::V3 => (V3_MIN_INTERVAL, V3_MAX_INTERVAL),
    }
}

/// `d` rounded to the nearest wire unit (v2 seconds, v3 centiseconds) and clamped to
/// what the field can carry: the interval we would actually advertise.
pub fn wire_interval(version: Version, d: Duration) -> Duration {
    let (unit, max_units) = match version {
        Version::V2 => (NANOS_PER_SEC, 255),
        Version::V3 => (NANOS_PER_CENTI, 4095),
    };
    let units = ((d.as_nanos() + unit / 2) / unit).clamp(1, max_units);
    nanos(units * unit)
}

/// A Master_Adver_Interval learned from the wire (v3), clamped to the v3 range.
///
/// Why: a v3 advert may carry an interval of 0 (malformed, but parseable). Taken as is,
/// Master_Down_Interval would be 3 × 0 + 0 = 0 and the backup would time out the
/// instant it hears its master. One centisecond is the smallest interval the field can
/// legitimately say, so it is the least surprising floor; the ceiling keeps deadlines
/// bounded whatever the caller passes.
pub fn learned_interval(d: Duration) -> Duration {
    d.clamp(V3_MIN_INTERVAL, V3_MAX_INTERVAL)
}

/// Skew_Time for a router of `priority`.
///
/// - v2 (RFC 3768 §6.1): `(256 − Priority) / 256` seconds; it does not scale with the
///   interval.
/// - v3 (RFC 5798 §6.1): `((256 − Priority) × Master_Adver_Interval) / 256`.
///
/// The caller passes the *effective* priority: keepalived 2.2.7 does
/// (`VRRP_TIMER_SKEW` uses `effective_priority`), while the RFCs only know a single
/// configured Priority. Using the effective one keeps a tracker-demoted backup
/// slower than an undemoted one, which is the point of demoting it.
pub fn skew_time(version: Version, priority: u8, master_adver_interval: Duration) -> Duration {
    let weight = 256 - u128::from(priority);
    match version {
        Version::V2 => nanos(weight * NANOS_PER_SEC / 256),
        Version::V3 => nanos(weight * master_adver_interval.as_nanos() / 256),
    }
}

/// How long a claim the arbiter's gate held back waits once the gate opens:
/// Skew_Time over at least a second. Two nodes' gates open together when both
/// arbiters confirm their references at the same moment (a pair started together,
/// an isolation that heals for both); the better node must claim first and the
/// other hear its advert. At sub-second v3 intervals the RFC skew separates
/// priorities 150 and 100 by 20 ms, less than a loaded node's scheduling jitter
/// (or its time to send a few hundred adverts); over a second it is 195 ms.
pub fn gate_skew(version: Version, priority: u8, master_adver_interval: Duration) -> Duration {
    skew_time(
        version,
        priority,
        master_adver_interval.max(Duration::from_secs(1)),
    )
}

/// Master_Down_Interval = 3 × Master_Adver_Interval + Skew_Time (saturating).
pub fn master_down_interval(
    version: Version,
    priority: u8,
    master_adver_interval: Duration,
) -> Duration {
    master_adver_interval
        .saturating_mul(DOWN_TIMER_ADVERTS)
        .saturating_add(skew_time(version, priority, master_adver_interval))
}

/// `now + d`, or `None` when that instant is not representable. `None` reads as
/// "never", which is what a deadline past the end of the clock means; it keeps
/// `Instant + Duration` from panicking on hostile inputs.
pub(super) fn after(now: Instant, d: Duration) -> Option<Instant> {
    now.checked_add(d)
}

/// A `u128` nanosecond count as a `Duration`, saturating at `Duration::MAX`.
fn nanos(n: u128) -> Duration {
    let secs = u64::try_from(n / NANOS_PER_SEC).unwrap_or(u64::MAX);
    // The remainder is below 10^9 and always fits.
    let sub = u32::try_from(n % NANOS_PER_SEC).unwrap_or(0);
    Duration::new(secs, sub)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_figures_match_the_rfc_and_keepalived() {
        // 156/256 s = 0.609375 s exactly; Master_Down_Interval 3.609375 s.
        let one = Duration::from_secs(1);
        assert_eq!(
            skew_time(Version::V2, 100, one),
            Duration::from_micros(609_375)
        );
        assert_eq!(
            master_down_interval(Version::V2, 100, one),
            Duration::from_micros(3_609_375)
        );
        // v2 skew does not scale with the interval.
        assert_eq!(
            skew_time(Version::V2, 100, Duration::from_secs(5)),
            Duration::from_micros(609_375)
        );
    }

    #[test]
    fn v3_skew_scales_with_the_interval() {
        let i = Duration::from_millis(100);
        assert_eq!(
            skew_time(Version::V3, 100, i),
            Duration::from_nanos(60_937_500)
        );
        assert_eq!(
            master_down_interval(Version::V3, 100, i),
            Duration::from_nanos(360_937_500)
        );
        assert_eq!(
            skew_time(Version::V3, 255, i),
            Duration::from_nanos(390_625)
        );
    }

    #[test]
    fn the_gate_skew_is_the_skew_over_at_least_a_second() {
        let ms = Duration::from_millis;
        // Sub-second v3: stretched to a second, so 150 and 100 are 195 ms apart.
        assert_eq!(
            gate_skew(Version::V3, 150, ms(100)),
            ms(414) + Duration::from_micros(62) + Duration::from_nanos(500)
        );
        assert_eq!(
            gate_skew(Version::V3, 100, ms(100)),
            ms(609) + Duration::from_micros(375)
        );
        // A second or more, and v2: the RFC skew itself.
        assert_eq!(
            gate_skew(Version::V3, 100, ms(2000)),
            skew_time(Version::V3, 100, ms(2000))
        );
        assert_eq!(
            gate_skew(Version::V2, 100, ms(1000)),
            skew_time(Version::V2, 100, ms(1000))
        );
        // The owner's is tiny but never negative; order follows priority.
        assert!(gate_skew(Version::V3, 255, ms(100)) < gate_skew(Version::V3, 254, ms(100)));
    }

    #[test]
    fn wire_intervals_round_and_clamp() {
        assert_eq!(wire_interval(Version::V2, Duration::ZERO), V2_MIN_INTERVAL);
        assert_eq!(
            wire_interval(Version::V2, Duration::from_millis(1_600)),
            Duration::from_secs(2)
        );
        assert_eq!(wire_interval(Version::V2, Duration::MAX), V2_MAX_INTERVAL);
        assert_eq!(
            wire_interval(Version::V3, Duration::from_millis(104)),
            Duration::from_millis(100)
        );
        assert_eq!(wire_interval(Version::V3, Duration::MAX), V3_MAX_INTERVAL);
        assert_eq!(learned_interval(Duration::ZERO), V3_MIN_INTERVAL);
        // The floor guarantees a non-zero down interval even at priority 255.
        assert!(
            master_down_interval(Version::V3, 255, learned_interval(Duration::ZERO))
                > Duration::ZERO
        );
    }

    #[test]
    fn huge_values_saturate() {
        assert_eq!(
            master_down_interval(Version::V3, 1, Duration::MAX),
            Duration::MAX
        );
        assert!(after(Instant::now(), Duration::MAX).is_none());
    }
}
