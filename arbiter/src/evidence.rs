//! The evidence the arbiter gathers per instance for its policy: the heartbeat (is
//! the master's advert overdue?) and the ownership probe rounds (who answers ARP for
//! our VIPs while it is: ARP for IPv4 ones, neighbour solicitation for IPv6 ones). Pure, no I/O: times come in, deadlines and reports go out;
//! the daemon sends the requests and hands in the answers.
//!
//! Overdue means "from the first missed advert": nothing heard for one and a half
//! advert intervals. The policy then wants ownership evidence, and rounds run back
//! to back (two requests per VIP per round) until the master is heard again or
//! this node changes role, so the evidence is ready well before
//! Master_Down_Interval (3 intervals plus skew) ends: a claim never waits for a probe.
//! The daemon paces the requests of one interface (hundreds of VIPs going overdue
//! together are not one burst), so a round starts from when its last request
//! leaves; the queue's lag then delays evidence, never the claim.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Shortest and longest ownership round: at least one ARP round trip on a busy
/// segment, at most half a second so a 1 s instance has three verdicts in hand
/// before its down timer runs out.
const ROUND_MIN: Duration = Duration::from_millis(100);
const ROUND_MAX: Duration = Duration::from_millis(500);
/// ARP requests per VIP per round: on a lossy segment one lost request or reply
/// should not make a whole round read as "nobody holds it" (30 % loss each way
/// loses half the single-request rounds, a quarter of the two-request ones).
pub const PROBE_REQUESTS_PER_ROUND: usize = 2;

/// Adverts heard for one instance while it is Backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    last: Instant,
    overdue: bool,
}

impl Heartbeat {
    pub fn new(now: Instant) -> Self {
        Heartbeat {
            last: now,
            overdue: false,
        }
    }

    /// An advert from the master. Returns true when this ends an overdue spell.
    pub fn heard(&mut self, now: Instant) -> bool {
        self.last = now;
        std::mem::replace(&mut self.overdue, false)
    }

    /// A new Backup stint (or any role change) starts a fresh count.
    pub fn restart(&mut self, now: Instant) {
        self.last = now;
        self.overdue = false;
    }

    /// When the advert counts as missed, unless it already does.
    pub fn deadline(&self, interval: Duration) -> Option<Instant> {
        (!self.overdue).then(|| self.last + interval + interval / 2)
    }

    /// Counts as overdue from now on (a yield: the master is known to be unheard).
    pub fn mark_overdue(&mut self) {
        self.overdue = true;
    }

    /// Returns true when the advert just became overdue at `now`.
    pub fn check(&mut self, now: Instant, interval: Duration) -> bool {
        match self.deadline(interval) {
            Some(due) if now >= due => {
                self.overdue = true;
                true
            }
            _ => false,
        }
    }
}

/// One ownership probe round: requests out (paced), answers collected until
/// `ends`, then one report per VIP (the foreign MAC that answered, or none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnershipRound {
    pub ends: Instant,
    vips: Vec<IpAddr>,
    answers: BTreeMap<IpAddr, [u8; 6]>,
    /// VIPs whose requests could not all be sent (the interface's probe queue
    /// was full): silence about them proves nothing this round.
    unprobed: Vec<IpAddr>,
}

impl OwnershipRound {
    /// A round for `vips` whose last request leaves at `sent`, sized from the
    /// advert interval: answers are awaited from then on.
    pub fn start(sent: Instant, interval: Duration, vips: Vec<IpAddr>) -> Self {
        OwnershipRound {
            ends: sent + (interval / 2).clamp(ROUND_MIN, ROUND_MAX),
            vips,
            answers: BTreeMap::new(),
            unprobed: Vec::new(),
        }
    }

    /// A request for `vip` was not sent: unless someone answers for it anyway,
    /// the round reports nothing about it.
    pub fn unprobed(&mut self, vip: IpAddr) {
        if !self.unprobed.contains(&vip) {
            self.unprobed.push(vip);
        }
    }

    /// `mac` (already known not to be ours) speaks for `ip`: an ARP sender, or a
    /// neighbour advertisement's target. The first answer per VIP stands; anything about other addresses is ignored.
    pub fn answer(&mut self, ip: IpAddr, mac: [u8; 6]) {
        if self.vips.contains(&ip) {
            self.answers.entry(ip).or_insert(mac);
        }
    }

    /// The verdict per VIP, in configuration order: the foreign MAC that
    /// answered, or `None` for a VIP probed in full that nobody answered for.
    pub fn report(&self) -> Vec<(IpAddr, Option<[u8; 6]>)> {
        self.vips
            .iter()
            .map(|v| (*v, self.answers.get(v).copied()))
            .filter(|(v, mac)| mac.is_some() || !self.unprobed.contains(v))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn overdue_from_one_and_a_half_intervals_of_silence() {
        let t0 = Instant::now();
        let mut h = Heartbeat::new(t0);
        assert_eq!(h.deadline(S), Some(t0 + Duration::from_millis(1500)));
        assert!(!h.check(t0 + Duration::from_millis(1499), S));
        assert!(h.check(t0 + Duration::from_millis(1500), S));
        assert!(h.overdue);
        assert_eq!(h.deadline(S), None, "reported once");
        assert!(!h.check(t0 + S * 10, S));
        assert!(h.heard(t0 + S * 11), "hearing the master ends the spell");
        assert!(!h.heard(t0 + S * 12), "and only once");
        assert_eq!(
            h.deadline(S),
            Some(t0 + S * 12 + Duration::from_millis(1500))
        );
    }

    #[test]
    fn adverts_keep_it_fresh() {
        let t0 = Instant::now();
        let mut h = Heartbeat::new(t0);
        for k in 1..10 {
            h.heard(t0 + S * k);
            assert!(!h.check(t0 + S * k + Duration::from_millis(1400), S));
        }
        h.restart(t0 + S * 20);
        assert!(!h.overdue);
    }

    #[test]
    fn rounds_are_sized_from_the_interval_and_report_every_vip() {
        let t0 = Instant::now();
        let a = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 3));
        let b = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 4));
        assert_eq!(
            OwnershipRound::start(t0, S, vec![a]).ends,
            t0 + Duration::from_millis(500)
        );
        assert_eq!(
            OwnershipRound::start(t0, Duration::from_millis(100), vec![a]).ends,
            t0 + ROUND_MIN
        );
        assert_eq!(
            OwnershipRound::start(t0, S * 5, vec![a]).ends,
            t0 + ROUND_MAX
        );
        let mut r = OwnershipRound::start(t0, S, vec![a, b]);
        r.answer(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 99)), [9; 6]);
        r.answer("2001:db8::3".parse().unwrap(), [9; 6]);
        r.answer(b, [1; 6]);
        r.answer(b, [2; 6]);
        assert_eq!(r.report(), vec![(a, None), (b, Some([1; 6]))]);
    }

    #[test]
    fn a_vip_whose_requests_were_not_all_sent_is_reported_only_if_answered() {
        let t0 = Instant::now();
        let a = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 3));
        let b = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 4));
        let c = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 5));
        let mut r = OwnershipRound::start(t0, S, vec![a, b, c]);
        r.unprobed(a);
        r.unprobed(b);
        r.unprobed(b);
        r.answer(b, [7; 6]);
        assert_eq!(r.report(), vec![(b, Some([7; 6])), (c, None)]);
    }
}
