//! Rise/fall debouncing of check results (keepalived's `vrrp_script` `rise`/`fall`).
//! Pure: it counts results and has no clock, so tests feed it sequences directly.
//!
//! Rules: the state starts up (keepalived's default; `init_fail` is opt-in there), `fall`
//! consecutive failures while up turn it down, `rise` consecutive successes while down
//! turn it up. A result that agrees with the current state resets the streak, so a
//! single good run in a bad patch restarts the count. `rise`/`fall` of 0 count as 1.

/// One tracker's debounced state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Debouncer {
    rise: u32,
    fall: u32,
    up: bool,
    /// Consecutive results contradicting `up`, since the last flip or agreeing result.
    streak: u32,
}

impl Debouncer {
    /// Starts up, as keepalived does.
    pub fn new(rise: u32, fall: u32) -> Self {
        Self::with_initial(true, rise, fall)
    }

    /// Starts in the given state (for an `init_fail`-style start down).
    pub fn with_initial(up: bool, rise: u32, fall: u32) -> Self {
        Debouncer {
            // 0 would mean "flip with no evidence at all"; read it as "on the first one".
            rise: rise.max(1),
            fall: fall.max(1),
            up,
            streak: 0,
        }
    }

    /// The current debounced state.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Records one result; `Some(new_state)` only when the state changes.
    pub fn record(&mut self, success: bool) -> Option<bool> {
        if success == self.up {
            self.streak = 0;
            return None;
        }
        self.streak = self.streak.saturating_add(1);
        let needed = if self.up { self.fall } else { self.rise };
        if self.streak < needed {
            return None;
        }
        self.up = success;
        self.streak = 0;
        Some(self.up)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn starts_up() {
        assert!(Debouncer::new(3, 2).is_up());
        assert!(!Debouncer::with_initial(false, 3, 2).is_up());
    }

    #[test]
    fn falls_after_fall_failures_and_rises_after_rise_successes() {
        let mut d = Debouncer::new(3, 2);
        assert_eq!(d.record(false), None);
        assert_eq!(d.record(false), Some(false));
        assert_eq!(d.record(false), None, "already down: no repeat");
        assert_eq!(d.record(true), None);
        assert_eq!(d.record(true), None);
        assert_eq!(d.record(true), Some(true));
        assert_eq!(d.record(true), None);
    }

    #[test]
    fn an_agreeing_result_restarts_the_streak() {
        let mut d = Debouncer::new(1, 3);
        assert_eq!(d.record(false), None);
        assert_eq!(d.record(false), None);
        assert_eq!(d.record(true), None);
        assert_eq!(d.record(false), None);
        assert_eq!(d.record(false), None);
        assert_eq!(d.record(false), Some(false));
        assert_eq!(d.record(true), Some(true), "rise 1: first success");
    }

    #[test]
    fn zero_thresholds_mean_one() {
        let mut d = Debouncer::new(0, 0);
        assert_eq!(d.record(false), Some(false));
        assert_eq!(d.record(true), Some(true));
    }

    proptest! {
        /// Safety: a flip needs the full streak of results for the new state, and
        /// `Some` is returned exactly when the state changes. Liveness: once the last
        /// `fall` results are failures the state is down, and once the last `rise`
        /// results are successes it is up.
        #[test]
        fn flips_exactly_on_streaks(
            rise in 1u32..6,
            fall in 1u32..6,
            results in proptest::collection::vec(any::<bool>(), 0..200),
        ) {
            let mut d = Debouncer::new(rise, fall);
            for (i, &ok) in results.iter().enumerate() {
                let before = d.is_up();
                let change = d.record(ok);
                let after = d.is_up();
                prop_assert_eq!(change.is_some(), before != after);
                if let Some(new) = change {
                    prop_assert_eq!(new, after);
                    prop_assert_eq!(new, ok);
                    let need = if new { rise } else { fall } as usize;
                    prop_assert!(i + 1 >= need, "flip at {} before {} results", i, need);
                    prop_assert!(
                        results[i + 1 - need..=i].iter().all(|&r| r == new),
                        "flip to {} at {} without {} in a row", new, i, need
                    );
                }
                let tail_all = |n: u32, v: bool| {
                    let n = n as usize;
                    i + 1 >= n && results[i + 1 - n..=i].iter().all(|&r| r == v)
                };
                if tail_all(fall, false) {
                    prop_assert!(!after, "{} failures in a row but still up at {}", fall, i);
                }
                if tail_all(rise, true) {
                    prop_assert!(after, "{} successes in a row but still down at {}", rise, i);
                }
            }
        }
    }
}
