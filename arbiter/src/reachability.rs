//! Reachability of probe targets (references and peers): per-IP rise/fall debouncing
//! of probe results into a state. Pure: results and `now` in, states out.
//!
//! A target starts [`TargetState::Unknown`], which counts as *not* reachable. A node
//! that just booted has proven nothing about its network yet; letting it claim a VIP
//! on the strength of "no bad news" is exactly how a freshly booted, cabled-wrong node
//! takes the address from a healthy master. So it waits for `rise` good probes.

use std::net::IpAddr;
use std::time::Instant;

/// What the probes have established about one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetState {
    /// Not yet `rise` successes nor `fall` failures in a row since startup.
    Unknown,
    Reachable,
    Unreachable,
}

impl TargetState {
    pub fn is_reachable(self) -> bool {
        self == TargetState::Reachable
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReachabilityError {
    #[error("rise must be at least 1")]
    ZeroRise,
    #[error("fall must be at least 1")]
    ZeroFall,
    #[error("{0} is not a probe target")]
    UnknownTarget(IpAddr),
}

#[derive(Debug, Clone)]
struct Target {
    ip: IpAddr,
    state: TargetState,
    /// Consecutive results agreeing with `last_ok`; saturates, so a long run never wraps.
    streak: u32,
    last_ok: Option<bool>,
    /// When `state` last changed (None: never, still Unknown from startup).
    since: Option<Instant>,
}

/// A set of targets debounced with one rise/fall pair, kept in configuration order.
#[derive(Debug, Clone)]
pub struct Reachability {
    rise: u32,
    fall: u32,
    targets: Vec<Target>,
}

impl Reachability {
    /// Duplicate addresses are folded into one target: two entries for one host would
    /// count it twice toward a quorum.
    pub fn new(
        targets: impl IntoIterator<Item = IpAddr>,
        rise: u32,
        fall: u32,
    ) -> Result<Self, ReachabilityError> {
        if rise == 0 {
            return Err(ReachabilityError::ZeroRise);
        }
        if fall == 0 {
            return Err(ReachabilityError::ZeroFall);
        }
        let mut list: Vec<Target> = Vec::new();
        for ip in targets {
            if !list.iter().any(|t| t.ip == ip) {
                list.push(Target {
                    ip,
                    state: TargetState::Unknown,
                    streak: 0,
                    last_ok: None,
                    since: None,
                });
            }
        }
        Ok(Reachability {
            rise,
            fall,
            targets: list,
        })
    }

    /// Feed one probe result. Returns the new state when it changed.
    pub fn handle_probe(
        &mut self,
        now: Instant,
        ip: IpAddr,
        success: bool,
    ) -> Result<Option<TargetState>, ReachabilityError> {
        let (rise, fall) = (self.rise, self.fall);
        let t = self
            .targets
            .iter_mut()
            .find(|t| t.ip == ip)
            .ok_or(ReachabilityError::UnknownTarget(ip))?;
        if t.last_ok == Some(success) {
            t.streak = t.streak.saturating_add(1);
        } else {
            t.last_ok = Some(success);
            t.streak = 1;
        }
        let next = match (success, t.state) {
            (true, TargetState::Reachable) | (false, TargetState::Unreachable) => t.state,
            (true, _) if t.streak >= rise => TargetState::Reachable,
            (false, _) if t.streak >= fall => TargetState::Unreachable,
            _ => t.state,
        };
        if next == t.state {
            return Ok(None);
        }
        t.state = next;
        t.since = Some(now);
        Ok(Some(next))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.targets.iter().any(|t| t.ip == ip)
    }

    pub fn state(&self, ip: IpAddr) -> Option<TargetState> {
        self.targets.iter().find(|t| t.ip == ip).map(|t| t.state)
    }

    /// When the target's state last changed; None while it is still Unknown.
    pub fn since(&self, ip: IpAddr) -> Option<Instant> {
        self.targets
            .iter()
            .find(|t| t.ip == ip)
            .and_then(|t| t.since)
    }

    /// Every target with its state, in configuration order (for status output).
    pub fn targets(&self) -> impl Iterator<Item = (IpAddr, TargetState)> + '_ {
        self.targets.iter().map(|t| (t.ip, t.state))
    }

    pub fn len(&self) -> usize {
        self.targets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    pub fn count(&self, state: TargetState) -> usize {
        self.targets.iter().filter(|t| t.state == state).count()
    }

    pub fn reachable(&self) -> usize {
        self.count(TargetState::Reachable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn feed(r: &mut Reachability, t0: Instant, target: IpAddr, results: &[bool]) -> TargetState {
        for (i, ok) in results.iter().enumerate() {
            r.handle_probe(t0 + Duration::from_secs(i as u64), target, *ok)
                .unwrap();
        }
        r.state(target).unwrap()
    }

    #[test]
    fn starts_unknown_and_not_reachable() {
        let r = Reachability::new([ip("192.0.2.1")], 3, 2).unwrap();
        assert_eq!(r.state(ip("192.0.2.1")), Some(TargetState::Unknown));
        assert_eq!(r.reachable(), 0);
        assert_eq!(r.since(ip("192.0.2.1")), None);
    }

    #[test]
    fn rises_after_rise_successes_in_a_row() {
        let g = ip("192.0.2.1");
        let t0 = Instant::now();
        let mut r = Reachability::new([g], 3, 2).unwrap();
        assert_eq!(feed(&mut r, t0, g, &[true, true]), TargetState::Unknown);
        assert_eq!(
            r.handle_probe(t0 + Duration::from_secs(5), g, true),
            Ok(Some(TargetState::Reachable))
        );
        assert_eq!(r.since(g), Some(t0 + Duration::from_secs(5)));
        // Already reachable: more successes are no change.
        assert_eq!(r.handle_probe(t0, g, true), Ok(None));
    }

    #[test]
    fn flaps_shorter_than_rise_or_fall_do_not_move_the_state() {
        let g = ip("192.0.2.1");
        let t0 = Instant::now();
        let mut r = Reachability::new([g], 3, 3).unwrap();
        // Two good, one bad, repeated: never three in a row either way.
        let flap = [true, true, false, true, true, false, true, true, false];
        assert_eq!(feed(&mut r, t0, g, &flap), TargetState::Unknown);
        assert_eq!(
            feed(&mut r, t0, g, &[true, true, true]),
            TargetState::Reachable
        );
        let flap = [false, false, true, false, false, true, false, false];
        assert_eq!(feed(&mut r, t0, g, &flap), TargetState::Reachable);
        assert_eq!(feed(&mut r, t0, g, &[false]), TargetState::Unreachable);
        assert_eq!(
            feed(&mut r, t0, g, &[true, true, false]),
            TargetState::Unreachable
        );
        assert_eq!(
            feed(&mut r, t0, g, &[true, true, true]),
            TargetState::Reachable
        );
    }

    #[test]
    fn unknown_falls_after_fall_failures() {
        let g = ip("192.0.2.1");
        let mut r = Reachability::new([g], 2, 2).unwrap();
        assert_eq!(
            feed(&mut r, Instant::now(), g, &[false]),
            TargetState::Unknown
        );
        assert_eq!(
            feed(&mut r, Instant::now(), g, &[false]),
            TargetState::Unreachable
        );
    }

    #[test]
    fn rise_and_fall_of_one_switch_on_every_result() {
        let g = ip("2001:db8::1");
        let mut r = Reachability::new([g], 1, 1).unwrap();
        let t0 = Instant::now();
        assert_eq!(feed(&mut r, t0, g, &[true]), TargetState::Reachable);
        assert_eq!(feed(&mut r, t0, g, &[false]), TargetState::Unreachable);
        assert_eq!(feed(&mut r, t0, g, &[true]), TargetState::Reachable);
    }

    #[test]
    fn errors_are_typed() {
        assert_eq!(
            Reachability::new([ip("192.0.2.1")], 0, 1).unwrap_err(),
            ReachabilityError::ZeroRise
        );
        assert_eq!(
            Reachability::new([ip("192.0.2.1")], 1, 0).unwrap_err(),
            ReachabilityError::ZeroFall
        );
        let mut r = Reachability::new([ip("192.0.2.1")], 1, 1).unwrap();
        assert_eq!(
            r.handle_probe(Instant::now(), ip("192.0.2.9"), true),
            Err(ReachabilityError::UnknownTarget(ip("192.0.2.9")))
        );
    }

    #[test]
    fn duplicates_count_once() {
        let g = ip("192.0.2.1");
        let mut r = Reachability::new([g, g, ip("192.0.2.2")], 1, 1).unwrap();
        assert_eq!(r.len(), 2);
        r.handle_probe(Instant::now(), g, true).unwrap();
        assert_eq!(r.reachable(), 1);
        assert_eq!(r.count(TargetState::Unknown), 1);
    }

    #[test]
    fn long_runs_saturate_instead_of_overflowing() {
        let g = ip("192.0.2.1");
        let mut r = Reachability::new([g], 1, 1).unwrap();
        if let Some(t) = r.targets.first_mut() {
            t.last_ok = Some(true);
            t.streak = u32::MAX;
        }
        assert_eq!(
            r.handle_probe(Instant::now(), g, true),
            Ok(Some(TargetState::Reachable))
        );
        assert_eq!(r.handle_probe(Instant::now(), g, true), Ok(None));
    }
}
