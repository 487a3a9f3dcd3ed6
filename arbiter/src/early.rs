//! Early takeover (pure): confirms a silent master dead before its
//! Master_Down_Interval runs out, so a backup can claim in well under a second
//! with 1 s adverts, without a byte of VRRP changing on the wire.
//!
//! - **One liveness stream per peer node,** however many instances it masters:
//!   an ICMP echo to the master's own address every `interval`, shortened to a
//!   quarter of its fastest followed advert interval (never below
//!   [`MIN_INTERVAL`]), each echo answered within the interval or missed. Only
//!   peers that some Backup instance follows are probed.
//! - **Lost** after `misses` echoes in a row go unanswered. The loss *began*
//!   when the first of them left.
//! - **Confirmation.** On the loss, every instance following that peer needs a
//!   confirmation round (ARP, `CONFIRM_REQUESTS` per target, for the peer's
//!   own address and each of the instance's VIPs; the daemon runs it). The
//!   master is confirmed dead for an instance when its round ends with nobody
//!   answering, the peer is still lost, no advert from it was heard since the
//!   loss began, and this node is not isolated: then [`EarlyAction::Claim`].
//! - **Declined** for the rest of the loss episode: an answer to the round (the
//!   peer's kernel, or another MAC for a VIP), any advert from the peer, or the
//!   node's references falling below quorum; for one instance alone, a round
//!   the daemon could not run (its requests refused, or unable to end before
//!   the instance's own down timer). The down timer then decides, as without
//!   early takeover. A new episode needs an echo answered first.
//!
//! Why these numbers (DESIGN.md, "Early takeover"): under 30 % random loss to
//! the backup, each echo, ARP answer or advert is lost independently with
//! p = 0.3. A false loss needs 3 missed echoes (0.027, a few times a second at
//! 10 echoes/s); a false claim also needs all 8 confirmation requests (4 to the
//! peer, 4 per VIP) unanswered (0.3⁸ ≈ 6.6·10⁻⁵) and no advert heard in the
//! window (about 0.6 at 1 s adverts): about one false early claim in 37 hours
//! of sustained 30 % loss, and the claim's probation yields it back at the
//! first answer from the old master.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

#[cfg(test)]
mod tests;

/// The liveness interval when the config does not set one: 10 echoes a second.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(100);
/// The shortest liveness interval (fast adverts shorten it to a quarter of theirs).
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// Echoes in a row unanswered before the peer is lost, when the config does
/// not say.
pub const DEFAULT_MISSES: u32 = 3;
/// ARP requests per target (the peer's address, each VIP) in a confirmation round.
pub const CONFIRM_REQUESTS: u32 = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EarlyConfig {
    /// The liveness interval at most (faster for fast adverts).
    pub interval: Duration,
    /// Echoes in a row unanswered that lose the peer; at least 1.
    pub misses: u32,
}

impl Default for EarlyConfig {
    fn default() -> Self {
        EarlyConfig {
            interval: DEFAULT_INTERVAL,
            misses: DEFAULT_MISSES,
        }
    }
}

/// Why an early claim did not happen in a loss episode (the down timer decides).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Declined {
    /// Something answered the confirmation round: the peer's own address or a
    /// VIP from another MAC.
    Answered { target: IpAddr },
    /// An advert from the peer was heard after its liveness loss began.
    AdvertHeard,
    /// This node's references are below quorum (or not yet proven).
    Isolated,
    /// The peer is not on this node's link (a routed unicast peer): it never
    /// answers this node's ARP, so its silence proves nothing.
    OffLink,
    /// The round could not end before the instance's own down timer (a mass
    /// failover queues hundreds of rounds behind one paced sender): asking
    /// would only load the segment and the node while the timer claims.
    TooLate,
    /// The probe queue refused the round's requests: unasked is unconfirmed.
    Unasked,
}

impl std::fmt::Display for Declined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Declined::Answered { target } => write!(f, "{target} answered the confirmation"),
            Declined::AdvertHeard => f.write_str("an advert from it was heard since"),
            Declined::Isolated => {
                f.write_str("this node is not connected (references below quorum)")
            }
            Declined::OffLink => {
                f.write_str("it is not on this link, so ARP cannot confirm it dead")
            }
            Declined::TooLate => {
                f.write_str("its confirmation could not end before the down timer")
            }
            Declined::Unasked => f.write_str("the probe queue refused its confirmation"),
        }
    }
}

/// What the daemon does for early takeover, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EarlyAction {
    /// Send one ICMP echo to `peer`, report it with [`EarlyTakeover::handle_echo`]
    /// (answered or not within `timeout`), passing `sent` back.
    Echo {
        peer: IpAddr,
        sent: Instant,
        timeout: Duration,
    },
    /// The peer's liveness is lost (for the log and the event stream).
    PeerLost { peer: IpAddr },
    /// The peer answers again after a loss.
    PeerAlive { peer: IpAddr },
    /// Run a confirmation round for `instance`: ARP [`CONFIRM_REQUESTS`] times
    /// for `peer` and each of its VIPs; report the end with
    /// [`EarlyTakeover::handle_confirmation`].
    Confirm { instance: usize, peer: IpAddr },
    /// Claim `instance` now: its master `peer` is confirmed dead.
    Claim { instance: usize, peer: IpAddr },
    /// The episode ends without an early claim for `instance`.
    Decline {
        instance: usize,
        peer: IpAddr,
        why: Declined,
    },
}

#[derive(Debug, Default)]
struct Peer {
    /// Backup instances whose master this is.
    followers: HashSet<usize>,
    /// The stream's interval, from the followers' advert intervals.
    interval: Duration,
    next_echo: Option<Instant>,
    /// Unanswered echoes in a row, and when the first of them left.
    misses: u32,
    loss_began: Option<Instant>,
    lost: bool,
    last_advert: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Episode {
    /// No loss, or the instance joined after it began.
    Idle,
    /// Its confirmation round runs.
    Confirming,
    /// Claimed or declined: nothing more until the peer answers again.
    Done,
}

#[derive(Debug, Clone, Copy)]
struct Follower {
    peer: IpAddr,
    advert_interval: Duration,
    episode: Episode,
}

/// Early takeover for one node (see the module rules).
#[derive(Debug)]
pub struct EarlyTakeover {
    cfg: EarlyConfig,
    peers: HashMap<IpAddr, Peer>,
    /// Per instance index: the master it follows as Backup, if any.
    follows: Vec<Option<Follower>>,
    /// Peers by next echo, so the next timeout is at hand.
    echoes: BTreeSet<(Instant, IpAddr)>,
    connected: bool,
    actions: VecDeque<EarlyAction>,
}

impl EarlyTakeover {
    /// For `instances` instances (indexed 0..instances). `misses` below 1 counts as 1.
    pub fn new(mut cfg: EarlyConfig, instances: usize) -> EarlyTakeover {
        cfg.misses = cfg.misses.max(1);
        cfg.interval = cfg.interval.max(MIN_INTERVAL);
        EarlyTakeover {
            cfg,
            peers: HashMap::new(),
            follows: vec![None; instances],
            echoes: BTreeSet::new(),
            connected: false,
            actions: VecDeque::new(),
        }
    }

    // ---- inputs ----------------------------------------------------------------

    /// Instance `i` is Backup behind `master` advertising every `advert_interval`
    /// (`Some`), or follows nobody (`None`: it is master, stopped, or has not
    /// heard a master yet). Call when either changes; repeats are cheap.
    pub fn handle_follow(&mut self, now: Instant, i: usize, master: Option<(IpAddr, Duration)>) {
        let Some(slot) = self.follows.get(i) else {
            return;
        };
        let old = *slot;
        if old.map(|f| (f.peer, f.advert_interval)) == master {
            return;
        }
        if let Some(f) = old {
            self.follows[i] = None;
            if let Some(p) = self.peers.get_mut(&f.peer) {
                p.followers.remove(&i);
            }
            self.restream(now, f.peer);
        }
        if let Some((peer, advert_interval)) = master {
            // A master that changes address or interval mid-episode: the
            // episode belongs to the old one, so the new one starts Idle.
            self.follows[i] = Some(Follower {
                peer,
                advert_interval,
                episode: Episode::Idle,
            });
            let p = self.peers.entry(peer).or_default();
            p.followers.insert(i);
            if p.lost {
                // Joined a loss already under way: its adverts just came, so
                // the peer is not dead for it.
                self.follows[i] = self.follows[i].map(|mut f| {
                    f.episode = Episode::Done;
                    f
                });
            }
            self.restream(now, peer);
        }
    }

    /// An advert from `src` (any VRID) was heard: the peer is alive. Before a
    /// loss it ends the streak of missed echoes, as an answer would; during
    /// one it declines the rounds under way (the peer stays lost, and its
    /// followers wait for an answered echo before another episode).
    pub fn handle_advert(&mut self, now: Instant, src: IpAddr) {
        let Some(p) = self.peers.get_mut(&src) else {
            return;
        };
        p.last_advert = Some(now);
        if !p.lost {
            p.misses = 0;
            p.loss_began = None;
            return;
        }
        self.decline_confirming(src, Declined::AdvertHeard);
    }

    /// The answer (`answered`) to the echo sent at `sent` to `peer`, or its
    /// timeout (`!answered`).
    pub fn handle_echo(&mut self, _now: Instant, peer: IpAddr, sent: Instant, answered: bool) {
        let misses = self.cfg.misses;
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if answered {
            let was_lost = p.lost;
            p.misses = 0;
            p.loss_began = None;
            p.lost = false;
            self.decline_confirming(peer, Declined::Answered { target: peer });
            // A new episode may begin at the next loss.
            if let Some(p) = self.peers.get(&peer) {
                for &i in &p.followers {
                    if let Some(f) = self.follows[i].as_mut() {
                        f.episode = Episode::Idle;
                    }
                }
            }
            if was_lost {
                self.actions.push_back(EarlyAction::PeerAlive { peer });
            }
            return;
        }
        if p.misses == 0 {
            p.loss_began = Some(sent);
        }
        p.misses = p.misses.saturating_add(1);
        if p.misses < misses || p.lost {
            return;
        }
        p.lost = true;
        self.actions.push_back(EarlyAction::PeerLost { peer });
        let began = p.loss_began;
        let heard_since = p
            .last_advert
            .zip(began)
            .is_some_and(|(heard, began)| heard >= began);
        let mut followers: Vec<usize> = p.followers.iter().copied().collect();
        followers.sort_unstable();
        for i in followers {
            let Some(f) = self.follows[i].as_mut() else {
                continue;
            };
            if f.episode != Episode::Idle {
                continue;
            }
            let why = if heard_since {
                Some(Declined::AdvertHeard)
            } else if !self.connected {
                Some(Declined::Isolated)
            } else {
                None
            };
            match why {
                Some(why) => {
                    f.episode = Episode::Done;
                    self.actions.push_back(EarlyAction::Decline {
                        instance: i,
                        peer,
                        why,
                    });
                }
                None => {
                    f.episode = Episode::Confirming;
                    self.actions
                        .push_back(EarlyAction::Confirm { instance: i, peer });
                }
            }
        }
    }

    /// Instance `i`'s confirmation round ended: `answered_by` is the first
    /// target that answered (the peer's address, or a VIP from another MAC), if any.
    pub fn handle_confirmation(&mut self, _now: Instant, i: usize, answered_by: Option<IpAddr>) {
        let Some(f) = self.follows.get(i).copied().flatten() else {
            return;
        };
        if f.episode != Episode::Confirming {
            return;
        }
        let peer = f.peer;
        if let Some(target) = answered_by {
            if target == peer {
                // The peer's kernel answers: the node lives, whatever its echoes say.
                self.decline_confirming(peer, Declined::Answered { target });
            } else {
                self.done(i, peer, Some(Declined::Answered { target }));
            }
            return;
        }
        let Some(p) = self.peers.get(&peer) else {
            return;
        };
        let heard_since = p
            .last_advert
            .zip(p.loss_began)
            .is_some_and(|(heard, began)| heard >= began);
        let why = if !p.lost || heard_since {
            Some(Declined::AdvertHeard)
        } else if !self.connected {
            Some(Declined::Isolated)
        } else {
            None
        };
        self.done(i, peer, why);
    }

    /// Instance `i`'s round cannot be run because its peer is off-link: every
    /// round for that peer declines (none of them could confirm it either).
    pub fn handle_off_link(&mut self, i: usize) {
        let Some(f) = self.follows.get(i).copied().flatten() else {
            return;
        };
        if f.episode == Episode::Confirming {
            self.decline_confirming(f.peer, Declined::OffLink);
        }
    }

    /// Instance `i`'s round was not run ([`Declined::TooLate`],
    /// [`Declined::Unasked`]): it alone declines; the other rounds stand.
    pub fn handle_unconfirmed(&mut self, i: usize, why: Declined) {
        let Some(f) = self.follows.get(i).copied().flatten() else {
            return;
        };
        if f.episode == Episode::Confirming {
            self.done(i, f.peer, Some(why));
        }
    }

    /// Whether this node's references are at quorum. Losing it declines every
    /// round under way; no round starts while it is lost.
    pub fn handle_connected(&mut self, connected: bool) {
        if self.connected == connected {
            return;
        }
        self.connected = connected;
        if connected {
            return;
        }
        let confirming: Vec<(usize, IpAddr)> = self
            .follows
            .iter()
            .enumerate()
            .filter_map(|(i, f)| {
                f.filter(|f| f.episode == Episode::Confirming)
                    .map(|f| (i, f.peer))
            })
            .collect();
        for (i, peer) in confirming {
            self.done(i, peer, Some(Declined::Isolated));
        }
    }

    /// Sends the echoes that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<IpAddr> = self
            .echoes
            .range(..=(now, IpAddr::from([255u8; 16])))
            .map(|&(_, peer)| peer)
            .collect();
        for peer in due {
            let Some(p) = self.peers.get_mut(&peer) else {
                continue;
            };
            if let Some(at) = p.next_echo.take() {
                self.echoes.remove(&(at, peer));
            }
            // A late loop sends one echo, not the ones it missed.
            let next = now + p.interval;
            p.next_echo = Some(next);
            self.echoes.insert((next, peer));
            self.actions.push_back(EarlyAction::Echo {
                peer,
                sent: now,
                timeout: p.interval,
            });
        }
    }

    // ---- outputs ---------------------------------------------------------------

    /// The next action, in order.
    pub fn poll_action(&mut self) -> Option<EarlyAction> {
        self.actions.pop_front()
    }

    /// When [`EarlyTakeover::handle_timeout`] next has an echo to send.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.echoes.first().map(|&(at, _)| at)
    }

    /// Whether `peer`'s liveness is lost now.
    pub fn peer_lost(&self, peer: IpAddr) -> bool {
        self.peers.get(&peer).is_some_and(|p| p.lost)
    }

    /// The peers probed now, with their stream interval.
    pub fn streams(&self) -> impl Iterator<Item = (IpAddr, Duration)> + '_ {
        self.peers
            .iter()
            .filter(|(_, p)| !p.followers.is_empty())
            .map(|(ip, p)| (*ip, p.interval))
    }

    // ---- internals -------------------------------------------------------------

    fn done(&mut self, i: usize, peer: IpAddr, why: Option<Declined>) {
        let Some(f) = self.follows.get_mut(i).and_then(Option::as_mut) else {
            return;
        };
        f.episode = Episode::Done;
        self.actions.push_back(match why {
            Some(why) => EarlyAction::Decline {
                instance: i,
                peer,
                why,
            },
            None => EarlyAction::Claim { instance: i, peer },
        });
    }

    /// Every follower of `peer` with a round under way declines.
    fn decline_confirming(&mut self, peer: IpAddr, why: Declined) {
        let Some(p) = self.peers.get(&peer) else {
            return;
        };
        let mut confirming: Vec<usize> = p
            .followers
            .iter()
            .copied()
            .filter(|&i| self.follows[i].is_some_and(|f| f.episode == Episode::Confirming))
            .collect();
        confirming.sort_unstable();
        for i in confirming {
            self.done(i, peer, Some(why.clone()));
        }
    }

    /// Re-reads `peer`'s stream after its followers changed: its interval, and
    /// whether it is probed at all.
    fn restream(&mut self, now: Instant, peer: IpAddr) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if p.followers.is_empty() {
            if let Some(at) = p.next_echo.take() {
                self.echoes.remove(&(at, peer));
            }
            self.peers.remove(&peer);
            return;
        }
        let fastest = p
            .followers
            .iter()
            .filter_map(|&i| self.follows[i].map(|f| f.advert_interval))
            .min()
            .unwrap_or(self.cfg.interval);
        p.interval = (fastest / 4).clamp(MIN_INTERVAL, self.cfg.interval);
        if p.next_echo.is_none() {
            p.next_echo = Some(now);
            self.echoes.insert((now, peer));
        }
    }
}
