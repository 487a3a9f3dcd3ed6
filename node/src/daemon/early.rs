//! Owns early takeover at work in `run`: the liveness stream's echoes (one ICMP
//! prober of its own, a short task per echo), the confirmation rounds (ARP
//! through the interface's paced probe queue, answers matched by lookup) and
//! the early claims, for the decisions `splitguard_arbiter::early` makes.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::probers::Probers;
use splitguard_arbiter::early::{
    CONFIRM_REQUESTS, Declined, EarlyAction, EarlyConfig, EarlyTakeover,
};
use splitguard_vrrp::instance::State;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::config;
use crate::net::neighbour::NeighbourSeen;
use crate::net::netlink::in_prefix;
use crate::net::pace::{PROBE_GAP, Probe};
use crate::notify::events::Event;

use super::instances::Instances;
use super::outputs::Outputs;
use super::router::Router;

/// How long a confirmation round waits for answers after its last request
/// leaves, at least (a LAN answers ARP in well under a millisecond; a loaded
/// peer's kernel still answers within a few).
const CONFIRM_WAIT_MIN: Duration = Duration::from_millis(20);

/// One echo's outcome, for the loop.
#[derive(Debug, Clone)]
pub struct EchoResult {
    pub peer: IpAddr,
    pub sent: Instant,
    pub ok: bool,
}

struct Round {
    ends: Instant,
    ifindex: u32,
    asked: Vec<IpAddr>,
    answered: Option<IpAddr>,
}

pub(super) struct Early {
    core: EarlyTakeover,
    probers: Arc<Probers>,
    /// The interface each followed peer is reached through.
    peer_iface: HashMap<IpAddr, String>,
    echoes: mpsc::Sender<EchoResult>,
    rounds: Vec<Option<Round>>,
    /// (interface, address) → the routers whose round asks for it (a set: a
    /// lost peer's address is asked by every router that follows it, and each
    /// round's end removes one).
    asked: HashMap<(u32, IpAddr), HashSet<usize>>,
    ends: BTreeSet<(Instant, usize)>,
    /// What each router was last reported to follow.
    follows: Vec<Option<(IpAddr, Duration)>>,
    /// A confirmation request was refused (queue full) this spell: logged once.
    refused: bool,
    /// Peers found off-link, logged once each.
    off_link: HashSet<IpAddr>,
}

impl Early {
    /// Early takeover when it is on, its echoes sent through the arbiter's
    /// probers (from this node's own address of the peer's kind, on the
    /// interface of the instance that follows it).
    pub(super) fn start(
        cfg: &config::Arbiter,
        inst: &Instances,
        echoes: mpsc::Sender<EchoResult>,
        probers: Arc<Probers>,
    ) -> anyhow::Result<Option<Early>> {
        if !cfg.early_takeover {
            return Ok(None);
        }
        info!(
            interval = ?cfg.liveness_interval, misses = cfg.liveness_misses,
            "early takeover on: liveness stream to each master"
        );
        let n = inst.routers().len();
        Ok(Some(Early {
            core: EarlyTakeover::new(
                EarlyConfig {
                    interval: cfg.liveness_interval,
                    misses: cfg.liveness_misses,
                },
                n,
            ),
            probers,
            peer_iface: HashMap::new(),
            echoes,
            rounds: (0..n).map(|_| None).collect(),
            asked: HashMap::new(),
            ends: BTreeSet::new(),
            follows: vec![None; n],
            refused: false,
            off_link: HashSet::new(),
        }))
    }

    /// An advert from `src` was accepted: that peer is alive.
    pub(super) fn heard(&mut self, now: Instant, src: IpAddr) {
        self.core.handle_advert(now, src);
    }

    pub(super) fn on_echo(&mut self, now: Instant, e: EchoResult) {
        self.core.handle_echo(now, e.peer, e.sent, e.ok);
    }

    /// Another node speaking for an address (ARP or neighbour discovery): an
    /// answer to any round that asked for it.
    pub(super) fn on_neighbour(&mut self, routers: &[Router], n: &NeighbourSeen) {
        let Some(asking) = self.asked.get(&(n.ifindex, n.ip)) else {
            return;
        };
        for &i in asking {
            if n.mac == routers[i].mac {
                continue;
            }
            if let Some(r) = self.rounds[i].as_mut() {
                r.answered.get_or_insert(n.ip);
            }
        }
    }

    pub(super) fn deadline(&self) -> Option<Instant> {
        [self.core.poll_timeout(), self.ends.first().map(|e| e.0)]
            .into_iter()
            .flatten()
            .min()
    }

    /// Echoes due, and rounds that ended.
    pub(super) fn on_timers(&mut self, now: Instant) {
        self.core.handle_timeout(now);
        let ended: Vec<(Instant, usize)> = self.ends.range(..=(now, usize::MAX)).copied().collect();
        for (at, i) in ended {
            self.ends.remove(&(at, i));
            if let Some(r) = self.rounds[i].take() {
                self.forget(i, &r);
                self.core.handle_confirmation(now, i, r.answered);
            }
        }
    }

    /// Tells the core what the touched routers follow now and whether the node
    /// is connected.
    pub(super) fn observe(&mut self, now: Instant, inst: &Instances, connected: bool) {
        self.core.handle_connected(connected);
        for i in inst.touched() {
            let r = &inst.routers()[i];
            let follow = match (r.fsm.state(), r.fsm.master()) {
                (State::Backup, Some(m)) if m != r.primary => {
                    Some((m, r.fsm.master_adver_interval()))
                }
                _ => None,
            };
            if let Some((m, _)) = follow {
                self.peer_iface
                    .entry(m)
                    .or_insert_with(|| r.cfg.interface.clone());
            }
            if self.follows[i] != follow {
                self.follows[i] = follow;
                self.core.handle_follow(now, i, follow);
                if follow.is_none()
                    && let Some(round) = self.rounds[i].take()
                {
                    self.forget(i, &round);
                    self.ends.remove(&(round.ends, i));
                }
            }
        }
    }

    /// Carries out what the core decided: echoes, rounds, claims. The claimed
    /// routers' actions run at once (adverts, then their VIPs as one batch,
    /// then GARP).
    pub(super) async fn act(&mut self, now: Instant, inst: &mut Instances, out: &mut Outputs) {
        // Peers whose own address a round of this batch already asks: the
        // rounds of one loss start together, and one ask serves them all.
        let mut peer_asked = HashSet::new();
        let mut claimed = Vec::new();
        while let Some(a) = self.core.poll_action() {
            match a {
                EarlyAction::Echo {
                    peer,
                    sent,
                    timeout,
                } => {
                    let prober = self
                        .peer_iface
                        .get(&peer)
                        .and_then(|i| self.probers.get(i, peer))
                        .cloned();
                    let tx = self.echoes.clone();
                    tokio::spawn(async move {
                        // Without a prober for the peer's kind (none was
                        // needed when the probers opened) the echo is lost:
                        // the confirmation round still decides.
                        let ok = match prober {
                            Some(p) => p.probe(peer, timeout).await.ok,
                            None => false,
                        };
                        let _ = tx.send(EchoResult { peer, sent, ok }).await;
                    });
                }
                EarlyAction::PeerLost { peer } => {
                    warn!(%peer, "liveness lost: confirming its instances dead");
                    out.emit(Some(
                        Event::new("peer_liveness")
                            .field("peer", peer.to_string())
                            .field("lost", true),
                    ));
                }
                EarlyAction::PeerAlive { peer } => {
                    info!(%peer, "liveness back");
                    out.emit(Some(
                        Event::new("peer_liveness")
                            .field("peer", peer.to_string())
                            .field("lost", false),
                    ));
                }
                EarlyAction::Confirm { instance, peer } => {
                    self.confirm(now, inst, instance, peer, &mut peer_asked);
                }
                EarlyAction::Claim { instance, peer } => {
                    let taken = inst.router_mut(instance).fsm.handle_master_dead(now, peer);
                    let name = &inst.routers()[instance].cfg.name;
                    if taken {
                        warn!(instance = %name, %peer, "early takeover: master confirmed dead");
                        claimed.push(instance);
                    } else {
                        debug!(instance = %name, %peer, "early takeover not taken by the state machine");
                    }
                }
                EarlyAction::Decline {
                    instance,
                    peer,
                    why,
                } => {
                    let name = &inst.routers()[instance].cfg.name;
                    if why == Declined::TooLate {
                        debug!(instance = %name, %peer, "no early takeover: {why}; the down timer decides");
                    } else {
                        info!(instance = %name, %peer, "no early takeover: {why}; the down timer decides");
                    }
                }
            }
        }
        if !claimed.is_empty() {
            inst.run_claimed(&claimed, now, out).await;
        }
    }

    /// Starts router `i`'s confirmation round: [`CONFIRM_REQUESTS`] requests for
    /// the peer's address (unless another round of the batch asks already:
    /// `peer_asked`) and for each VIP, through the paced queue; it ends a wait
    /// after its last request leaves. A round that could not end before the
    /// router's own down timer is not started: at a mass failover with fast
    /// adverts the queue cannot fit them all, and the timer claims anyway.
    fn confirm(
        &mut self,
        now: Instant,
        inst: &Instances,
        i: usize,
        peer: IpAddr,
        peer_asked: &mut HashSet<IpAddr>,
    ) {
        let r = &inst.routers()[i];
        let Some(iface) = inst.ifaces.get(&(r.ifindex, r.family())) else {
            self.core.handle_confirmation(now, i, Some(peer));
            return;
        };
        let on_link = matches!(peer, IpAddr::V6(p) if p.is_unicast_link_local())
            || iface
                .subnets
                .iter()
                .any(|&(net, len)| in_prefix(peer, net, len));
        if !on_link {
            // A routed (unicast) peer never answers our ARP or neighbour
            // solicitation, dead or alive: its silence proves nothing, so the
            // down timer decides.
            if self.off_link.insert(peer) {
                info!(instance = %r.cfg.name, %peer, interface = %iface.name,
                    "no early takeover for a peer off this interface's subnets: ARP or neighbour discovery cannot confirm it dead");
            }
            self.core.handle_off_link(i);
            return;
        }
        let Some(queue) = iface.probes.as_ref() else {
            self.core.handle_confirmation(now, i, Some(peer));
            return;
        };
        let ask_peer = !peer_asked.contains(&peer);
        let targets: Vec<IpAddr> = ask_peer
            .then_some(peer)
            .into_iter()
            .chain(r.vip_addrs.iter().copied())
            .collect();
        let wait = (r.fsm.master_adver_interval() / 20).max(CONFIRM_WAIT_MIN);
        let requests = u32::try_from(targets.len())
            .unwrap_or(u32::MAX)
            .saturating_mul(CONFIRM_REQUESTS);
        let would_end = queue.free_at(now) + PROBE_GAP.saturating_mul(requests) + wait;
        if r.fsm.poll_timeout().is_some_and(|down| would_end >= down) {
            self.core.handle_unconfirmed(i, Declined::TooLate);
            return;
        }
        let mut last = now;
        for _ in 0..CONFIRM_REQUESTS {
            for &target in &targets {
                let Some(probe) = Probe::who_has(r.mac, r.primary, target) else {
                    // A peer of the other family cannot be confirmed here.
                    self.core.handle_confirmation(now, i, Some(peer));
                    return;
                };
                match queue.send(now, probe) {
                    Ok(at) => last = last.max(at),
                    Err(e) => {
                        // Unasked is unconfirmed: no early claim on partial evidence.
                        if !self.refused {
                            warn!(instance = %r.cfg.name, error = %e, "confirmation requests refused: no early takeover");
                            self.refused = true;
                        }
                        self.core.handle_unconfirmed(i, Declined::Unasked);
                        return;
                    }
                }
            }
        }
        self.refused = false;
        if ask_peer {
            peer_asked.insert(peer);
        }
        // Every round listens for the peer's answer, asked by it or not.
        let mut asked = targets;
        if !ask_peer {
            asked.push(peer);
        }
        let ends = last + wait;
        for &a in &asked {
            self.asked.entry((r.ifindex, a)).or_default().insert(i);
        }
        self.ends.insert((ends, i));
        self.rounds[i] = Some(Round {
            ends,
            ifindex: r.ifindex,
            asked,
            answered: None,
        });
    }

    fn forget(&mut self, i: usize, r: &Round) {
        for a in &r.asked {
            if let Some(v) = self.asked.get_mut(&(r.ifindex, *a)) {
                v.remove(&i);
                if v.is_empty() {
                    self.asked.remove(&(r.ifindex, *a));
                }
            }
        }
    }
}
