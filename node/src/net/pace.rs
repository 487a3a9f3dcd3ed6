//! Owns the pacing of what this node sends on one interface beyond its adverts:
//! send slots ([`Pacer`], pure) for GARP repeats and probes, and the probe
//! queue ([`ProbeQueue`], one per interface and family: ARP requests, or
//! neighbour solicitations) through which the arbiter's ownership rounds, early
//! takeover's confirmations and the watcher's probes leave. With hundreds of VIPs, every instance going overdue
//! at once (the master's cable pulled) would otherwise put a burst of two
//! requests per VIP on the segment in one instant, round after round; the queue
//! holds them to one per [`PROBE_GAP`] and says when each leaves, so a round
//! waits for answers from its last request, not from when it was queued.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::warn;

use std::net::{IpAddr, Ipv6Addr};

use super::arp::ArpRepr;
use super::arp_socket::ArpSocket;
use super::ndisc::NdiscSocket;
use super::neighbour::NeighbourSeen;

/// Hands out send slots on one interface, at most one per `gap`. A mass takeover
/// starts hundreds of GARP bursts in one step: their first announcements go out
/// at once (the takeover is only done when the segment knows), but every repeat
/// would then fall due in the same instant, interval after interval; slots
/// reserved when a repeat is scheduled spread them out in takeover order.
#[derive(Debug, Clone, Copy)]
pub struct Pacer {
    gap: Duration,
    next: Option<Instant>,
}

impl Pacer {
    pub fn new(gap: Duration) -> Self {
        Pacer { gap, next: None }
    }

    /// The first free slot at or after `at`, reserved.
    pub fn slot(&mut self, at: Instant) -> Instant {
        let slot = match self.next {
            Some(next) if next > at => next,
            _ => at,
        };
        self.next = slot.checked_add(self.gap);
        slot
    }

    /// The first slot still free at or after `at`, not reserved.
    pub fn free_at(&self, at: Instant) -> Instant {
        match self.next {
            Some(next) if next > at => next,
            _ => at,
        }
    }
}

/// "Who has this address?", in the family's own protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    Arp(ArpRepr),
    /// A neighbour solicitation for `target` from `src` (never `::`), carrying `mac`.
    Solicit {
        src: Ipv6Addr,
        mac: [u8; 6],
        target: Ipv6Addr,
    },
}

impl Probe {
    /// The request for `target` from this node's `src` and `mac`; None when the
    /// two addresses are not of one family.
    pub fn who_has(mac: [u8; 6], src: IpAddr, target: IpAddr) -> Option<Probe> {
        match (src, target) {
            (IpAddr::V4(src), IpAddr::V4(target)) => {
                Some(Probe::Arp(ArpRepr::probe(mac, src, target)))
            }
            (IpAddr::V6(src), IpAddr::V6(target)) => Some(Probe::Solicit { src, mac, target }),
            _ => None,
        }
    }

    pub fn target(&self) -> IpAddr {
        match *self {
            Probe::Arp(r) => IpAddr::V4(r.target_ip),
            Probe::Solicit { target, .. } => IpAddr::V6(target),
        }
    }
}

/// The socket an interface's probes leave through.
#[derive(Clone)]
pub enum ProbeSocket {
    Arp(Arc<ArpSocket>),
    Nd(Arc<NdiscSocket>),
}

impl ProbeSocket {
    /// Sends `probe`; one of the other family than the socket's is refused.
    pub async fn send(&self, probe: &Probe) -> std::io::Result<()> {
        match (self, *probe) {
            (ProbeSocket::Arp(s), Probe::Arp(repr)) => s.broadcast(&repr).await,
            (ProbeSocket::Nd(s), Probe::Solicit { src, mac, target }) => {
                s.solicit(src, mac, target).await
            }
            _ => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "probe of the other address family than the interface's queue",
            )),
        }
    }

    /// The next message read on interface `ifindex`, as who speaks for what;
    /// None for one that binds no address to a MAC.
    pub async fn recv(&self, ifindex: u32) -> std::io::Result<Option<NeighbourSeen>> {
        match self {
            ProbeSocket::Arp(s) => s
                .recv()
                .await
                .map(|a| Some(NeighbourSeen::from_arp(ifindex, &a))),
            ProbeSocket::Nd(s) => s.recv().await.map(|m| NeighbourSeen::from_ndp(ifindex, &m)),
        }
    }
}

/// One probe per interface this often at most: 1,000 a second, so 251 VIPs'
/// two-request rounds take half a second of the segment, not one instant.
pub const PROBE_GAP: Duration = Duration::from_millis(1);
/// Probes waiting on one interface at most: every round of every VIP twice over
/// (255 VIPs × 2 requests × 2) with room for the watcher's; beyond it a probe is
/// refused, never queued without bound.
pub const PROBE_QUEUE: usize = 2048;
/// Slots are not handed out further ahead than this: a queue that far behind
/// refuses rather than schedule evidence that would arrive stale.
pub const PROBE_HORIZON: Duration = Duration::from_secs(3);

/// Why a probe was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProbeRefused {
    #[error("the probe queue is full")]
    Full,
    #[error("the probe sender has stopped")]
    Stopped,
}

/// The probes of one interface and family, sent by a task of their own one per
/// [`PROBE_GAP`] at most, in the order queued.
pub struct ProbeQueue {
    slots: Mutex<Pacer>,
    tx: mpsc::Sender<Probe>,
}

impl ProbeQueue {
    /// Starts the sender task for `sock` (inside a tokio runtime); it ends when
    /// the queue is dropped.
    pub fn start(sock: ProbeSocket) -> Arc<ProbeQueue> {
        let (tx, rx) = mpsc::channel(PROBE_QUEUE);
        tokio::spawn(send_paced(sock, rx));
        Arc::new(ProbeQueue::over(tx))
    }

    fn over(tx: mpsc::Sender<Probe>) -> ProbeQueue {
        ProbeQueue {
            slots: Mutex::new(Pacer::new(PROBE_GAP)),
            tx,
        }
    }

    /// When a probe queued at `now` would leave (nothing is reserved).
    pub fn free_at(&self, now: Instant) -> Instant {
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots.free_at(now).max(now)
    }

    /// Queues `probe` for the first free slot and returns when it leaves.
    pub fn send(&self, now: Instant, probe: Probe) -> Result<Instant, ProbeRefused> {
        // Only the event loop's thread queues; the lock is never contended.
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if slots.free_at(now) > now + PROBE_HORIZON {
            return Err(ProbeRefused::Full);
        }
        let permit = self.tx.try_reserve().map_err(|e| match e {
            mpsc::error::TrySendError::Full(()) => ProbeRefused::Full,
            mpsc::error::TrySendError::Closed(()) => ProbeRefused::Stopped,
        })?;
        let at = slots.slot(now);
        permit.send(probe);
        Ok(at)
    }
}

/// Sends the probes in order, as fast as the rate allows: one per
/// [`PROBE_GAP`] on average and at most [`PROBE_BURST`] back to back (the
/// runtime's timer ticks in milliseconds, so a strict one-per-gap would halve
/// the rate). A task that ran late loses its credit rather than catching up:
/// a stalled runtime does not turn into a burst.
async fn send_paced(sock: ProbeSocket, mut rx: mpsc::Receiver<Probe>) {
    let mut rate = Rate::new(PROBE_GAP, PROBE_BURST);
    while let Some(probe) = rx.recv().await {
        if let Some(at) = rate.wait_until(Instant::now()) {
            tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
        }
        if let Err(e) = sock.send(&probe).await {
            warn!(vip = %probe.target(), error = %e, "ownership probe not sent");
        }
        rate.sent(Instant::now());
    }
}

/// Probes sent back to back at most, before the rate holds the next.
pub const PROBE_BURST: u32 = 8;

/// A rate of one per `gap` with bursts of up to `burst` (the generic cell rate
/// algorithm: `due` is when the next send would be on time).
#[derive(Debug, Clone, Copy)]
struct Rate {
    gap: Duration,
    tolerance: Duration,
    due: Option<Instant>,
}

impl Rate {
    fn new(gap: Duration, burst: u32) -> Rate {
        Rate {
            gap,
            tolerance: gap * burst.saturating_sub(1),
            due: None,
        }
    }

    /// When the next send may go, if not at `now`.
    fn wait_until(&self, now: Instant) -> Option<Instant> {
        let earliest = self.due?.checked_sub(self.tolerance)?;
        (earliest > now).then_some(earliest)
    }

    fn sent(&mut self, now: Instant) {
        let base = match self.due {
            Some(due) if due > now => due,
            _ => now,
        };
        self.due = base.checked_add(self.gap);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pacer_spreads_slots_asked_for_the_same_instant() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut p = Pacer::new(Duration::from_millis(1));
        assert_eq!(p.free_at(ms(100)), ms(100));
        assert_eq!(p.slot(ms(100)), ms(100));
        assert_eq!(p.slot(ms(100)), ms(101));
        assert_eq!(p.free_at(ms(100)), ms(102), "looking reserves nothing");
        assert_eq!(p.slot(ms(100)), ms(102));
        // Free again later: no slot is pushed back for nothing.
        assert_eq!(p.slot(ms(200)), ms(200));
        assert_eq!(p.slot(ms(150)), ms(201));
    }

    fn probe(k: u8) -> Probe {
        Probe::Arp(ArpRepr::probe(
            [2, 0, 0, 0, 0, 1],
            std::net::Ipv4Addr::new(192, 0, 2, 1),
            std::net::Ipv4Addr::new(192, 0, 2, k),
        ))
    }

    #[test]
    fn a_probe_is_asked_in_the_family_of_its_target() {
        let mac = [2, 0, 0, 0, 0, 1];
        let v4 = |k| IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, k));
        let v6 = |k| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, k));
        assert_eq!(Probe::who_has(mac, v4(1), v4(3)), Some(probe(3)));
        assert_eq!(
            Probe::who_has(mac, v6(1), v6(3)),
            Some(Probe::Solicit {
                src: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
                mac,
                target: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 3),
            })
        );
        assert_eq!(Probe::who_has(mac, v4(1), v6(3)), None);
        assert_eq!(Probe::who_has(mac, v6(1), v4(3)), None);
        assert_eq!(
            Probe::who_has(mac, v6(1), v6(3)).map(|p| p.target()),
            Some(v6(3))
        );
    }

    #[test]
    fn probes_queued_together_leave_one_gap_apart_and_a_full_queue_refuses() {
        let (tx, mut rx) = mpsc::channel(PROBE_QUEUE);
        let q = ProbeQueue::over(tx);
        let t0 = Instant::now();
        for k in 0..PROBE_QUEUE {
            let at = q.send(t0, probe(k as u8)).expect("room");
            assert_eq!(at, t0 + PROBE_GAP * k as u32);
        }
        assert_eq!(q.send(t0, probe(1)), Err(ProbeRefused::Full));
        assert_eq!(rx.try_recv().expect("queued"), probe(0));
        // One left the queue: room for one more, in the next free slot.
        assert_eq!(
            q.send(t0, probe(2)),
            Ok(t0 + PROBE_GAP * PROBE_QUEUE as u32)
        );
        drop(rx);
        assert_eq!(q.send(t0, probe(3)), Err(ProbeRefused::Stopped));
    }

    #[test]
    fn the_rate_lets_a_burst_through_then_one_per_gap_and_late_senders_lose_credit() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut r = Rate::new(Duration::from_millis(1), 4);
        for _ in 0..4 {
            assert_eq!(r.wait_until(t0), None);
            r.sent(t0);
        }
        assert_eq!(r.wait_until(t0), Some(ms(1)), "the fifth waits one gap");
        r.sent(ms(1));
        assert_eq!(r.wait_until(ms(1)), Some(ms(2)));
        // Idle for a while: the burst is back, but no more than the burst.
        let later = ms(100);
        for _ in 0..4 {
            assert_eq!(r.wait_until(later), None);
            r.sent(later);
        }
        assert_eq!(r.wait_until(later), Some(ms(101)));
    }

    #[test]
    fn no_slot_is_handed_out_past_the_horizon() {
        let (tx, _rx) = mpsc::channel(PROBE_QUEUE);
        let q = ProbeQueue::over(tx);
        let t0 = Instant::now();
        // Another sender's reservations pushed the next free slot out.
        q.slots
            .lock()
            .expect("lock")
            .slot(t0 + PROBE_HORIZON + PROBE_GAP);
        assert_eq!(q.send(t0, probe(1)), Err(ProbeRefused::Full));
        let later = t0 + PROBE_GAP * 10;
        assert!(q.send(later, probe(1)).is_ok(), "within the horizon again");
    }
}
