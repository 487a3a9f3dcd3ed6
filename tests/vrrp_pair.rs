//! VRRP instances wired together in memory, on simulated time: quinn-proto's `Pair`
//! generalised to a `Net` of N nodes. An advert sent by one node is delivered to every
//! other node after a fixed latency unless that direction is blocked (a firewall
//! dropping protocol 112); the driver jumps time to the earliest pending delivery or
//! timer. Every scenario asserts exact instants.

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use splitguard_vrrp::Version;
use splitguard_vrrp::gate::{ClaimGate, WithholdReason};
use splitguard_vrrp::instance::{
    Action, Cause, Instance, InstanceConfig, ReceivedAdvert, State, TrackerConfig,
};

// ---- the harness ---------------------------------------------------------------------

struct Node {
    inst: Instance,
    /// False once crashed: no timers, nothing delivered, nothing sent.
    alive: bool,
    /// VIPs as the daemon would have configured them, from the actions.
    vips: bool,
    log: Vec<(Instant, Action)>,
}

struct InFlight {
    at: Instant,
    to: usize,
    advert: ReceivedAdvert,
}

struct Net {
    t0: Instant,
    now: Instant,
    latency: Duration,
    nodes: Vec<Node>,
    /// In send order; delivery order among equal instants follows it.
    in_flight: Vec<InFlight>,
    /// (from, to) directions that drop adverts, checked when an advert is sent.
    blocked: HashSet<(usize, usize)>,
}

impl Net {
    fn new(latency: Duration) -> Self {
        let t0 = Instant::now();
        Net {
            t0,
            now: t0,
            latency,
            nodes: Vec::new(),
            in_flight: Vec::new(),
            blocked: HashSet::new(),
        }
    }

    fn add(&mut self, cfg: InstanceConfig) -> usize {
        self.nodes.push(Node {
            inst: Instance::new(cfg),
            alive: true,
            vips: false,
            log: Vec::new(),
        });
        self.nodes.len() - 1
    }

    /// `t0 + offset`.
    fn at(&self, offset: Duration) -> Instant {
        self.t0 + offset
    }

    fn inst(&self, i: usize) -> &Instance {
        &self.nodes[i].inst
    }

    fn state(&self, i: usize) -> State {
        self.nodes[i].inst.state()
    }

    // Inputs, applied at `now`.

    fn start(&mut self, i: usize) {
        let now = self.now;
        self.nodes[i].inst.handle_startup(now);
        self.dispatch(i);
    }

    /// The node dies silently (power cut): no priority-0 advert.
    fn crash(&mut self, i: usize) {
        self.nodes[i].alive = false;
    }

    fn shutdown(&mut self, i: usize) {
        let now = self.now;
        self.nodes[i].inst.handle_shutdown(now);
        self.dispatch(i);
    }

    fn tracker(&mut self, i: usize, name: &str, up: bool) {
        let now = self.now;
        self.nodes[i]
            .inst
            .handle_tracker(now, name, up)
            .expect("configured tracker");
        self.dispatch(i);
    }

    fn gate(&mut self, i: usize, gate: ClaimGate) {
        let now = self.now;
        self.nodes[i].inst.set_claim_gate(now, gate);
        self.dispatch(i);
    }

    fn demote(&mut self, i: usize, weight: u8) {
        let now = self.now;
        self.nodes[i].inst.set_demotion(now, weight);
        self.dispatch(i);
    }

    fn block(&mut self, from: usize, to: usize) {
        self.blocked.insert((from, to));
    }

    fn partition(&mut self, a: usize, b: usize) {
        self.block(a, b);
        self.block(b, a);
    }

    fn heal(&mut self) {
        self.blocked.clear();
    }

    // The driver.

    fn next_event(&self) -> Option<Instant> {
        let deliveries = self.in_flight.iter().map(|m| m.at);
        let timers = self
            .nodes
            .iter()
            .filter(|n| n.alive)
            .filter_map(|n| n.inst.poll_timeout());
        deliveries.chain(timers).min()
    }

    /// Processes every event up to and including `t`, then sets the clock to `t`.
    fn run_until(&mut self, t: Instant) {
        let mut steps = 0u32;
        while let Some(next) = self.next_event().filter(|n| *n <= t) {
            self.now = self.now.max(next);
            self.process_due();
            steps += 1;
            assert!(steps < 100_000, "the net does not settle");
        }
        self.now = self.now.max(t);
    }

    fn run_for(&mut self, d: Duration) {
        let t = self.now + d;
        self.run_until(t);
    }

    /// Everything due at `now`: deliveries first (an advert arriving exactly at the
    /// deadline counts as in time), then timers; repeated because zero latency can
    /// chain answers within one instant.
    fn process_due(&mut self) {
        let now = self.now;
        loop {
            if let Some(k) = self.in_flight.iter().position(|m| m.at <= now) {
                let m = self.in_flight.remove(k);
                if self.nodes[m.to].alive {
                    self.nodes[m.to].inst.handle_advert(now, m.advert);
                    self.dispatch(m.to);
                }
                continue;
            }
            let due = self
                .nodes
                .iter()
                .position(|n| n.alive && n.inst.poll_timeout().is_some_and(|t| t <= now));
            match due {
                Some(i) => {
                    self.nodes[i].inst.handle_timeout(now);
                    self.dispatch(i);
                }
                None => break,
            }
        }
    }

    /// Carries out node `i`'s actions: adverts onto the wire, VIPs into the model.
    fn dispatch(&mut self, i: usize) {
        let now = self.now;
        while let Some(a) = self.nodes[i].inst.poll_action() {
            match &a {
                Action::SendAdvert { priority } if self.nodes[i].alive => {
                    let advert = ReceivedAdvert {
                        src: self.nodes[i].inst.primary_ip(),
                        priority: *priority,
                        interval: self.nodes[i].inst.advert_interval(),
                    };
                    for to in 0..self.nodes.len() {
                        if to != i && !self.blocked.contains(&(i, to)) {
                            self.in_flight.push(InFlight {
                                at: now + self.latency,
                                to,
                                advert,
                            });
                        }
                    }
                }
                Action::AddVips => {
                    assert!(!self.nodes[i].vips, "node {i}: VIPs added twice");
                    self.nodes[i].vips = true;
                }
                Action::RemoveVips => {
                    assert!(self.nodes[i].vips, "node {i}: VIPs removed but not held");
                    self.nodes[i].vips = false;
                }
                _ => {}
            }
            self.nodes[i].log.push((now, a));
        }
        assert_eq!(
            self.nodes[i].vips,
            self.state(i) == State::Master,
            "node {i}: VIPs held iff Master"
        );
    }

    // Observations.

    fn masters(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].alive && self.state(i) == State::Master)
            .collect()
    }

    /// (when, from, to, cause) of every state change of node `i`.
    fn changes(&self, i: usize) -> Vec<(Instant, State, State, Cause)> {
        self.nodes[i]
            .log
            .iter()
            .filter_map(|(t, a)| match a {
                Action::StateChanged {
                    from, to, cause, ..
                } => Some((*t, *from, *to, cause.clone())),
                _ => None,
            })
            .collect()
    }

    /// The last change of node `i`.
    fn last_change(&self, i: usize) -> (Instant, State, State, Cause) {
        self.changes(i).pop().expect("a state change")
    }

    fn sent(&self, i: usize) -> Vec<(Instant, u8)> {
        self.nodes[i]
            .log
            .iter()
            .filter_map(|(t, a)| match a {
                Action::SendAdvert { priority } => Some((*t, *priority)),
                _ => None,
            })
            .collect()
    }

    fn withheld(&self, i: usize) -> Vec<(Instant, WithholdReason)> {
        self.nodes[i]
            .log
            .iter()
            .filter_map(|(t, a)| match a {
                Action::ClaimWithheld { reason } => Some((*t, reason.clone())),
                _ => None,
            })
            .collect()
    }
}

// ---- configurations and figures ------------------------------------------------------

const LB01: &str = "192.0.2.5";
const LB02: &str = "192.0.2.6";
const LB03: &str = "192.0.2.7";
const LATENCY: Duration = Duration::from_millis(1);

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn node(version: Version, addr: &str, priority: u8, interval: Duration) -> InstanceConfig {
    InstanceConfig {
        version,
        vrid: 51,
        priority,
        advert_interval: interval,
        preempt: true,
        preempt_delay: Duration::ZERO,
        primary_ip: ip(addr),
        trackers: Vec::new(),
    }
}

fn v2(addr: &str, priority: u8) -> InstanceConfig {
    node(Version::V2, addr, priority, Duration::from_secs(1))
}

fn us(n: u64) -> Duration {
    Duration::from_micros(n)
}
fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// v2, 1 s, priority 200: 3 s + 56/256 s.
const MDI_200: Duration = Duration::from_micros(3_218_750);
/// v2, 1 s, priority 100: 3 s + 156/256 s.
const MDI_100: Duration = Duration::from_micros(3_609_375);
/// v2, priority 100: 156/256 s.
const SKEW_100: Duration = Duration::from_micros(609_375);

/// lb01 (200) and lb02 (100), v2 1 s, both started at t0. lb01 is master from
/// t0 + MDI_200 and advertises at t0 + MDI_200 + k s.
fn pair() -> (Net, usize, usize) {
    pair_with(v2(LB01, 200))
}

/// [`pair`] with lb01 configured as given (priority 200 expected).
fn pair_with(lb01: InstanceConfig) -> (Net, usize, usize) {
    let mut net = Net::new(LATENCY);
    let a = net.add(lb01);
    let b = net.add(v2(LB02, 100));
    net.start(a);
    net.start(b);
    net.run_for(secs(5));
    assert_eq!(net.last_change(a).0, net.at(MDI_200));
    assert_eq!(net.masters(), vec![a]);
    (net, a, b)
}

/// Asserts node `i` becomes Master exactly at `t`, and is still Backup 1 ms before.
fn assert_takeover_at(net: &mut Net, i: usize, t: Instant) {
    net.run_until(t - ms(1));
    assert_eq!(net.state(i), State::Backup, "node {i} took over early");
    net.run_until(t);
    assert_eq!(
        net.state(i),
        State::Master,
        "node {i} did not take over at {t:?}"
    );
    let (when, from, to, _) = net.last_change(i);
    assert_eq!((when, from, to), (t, State::Backup, State::Master));
}

// ---- scenarios -----------------------------------------------------------------------

#[test]
fn owner_starts_master_immediately() {
    let mut net = Net::new(LATENCY);
    let a = net.add(v2(LB01, 255));
    let b = net.add(v2(LB02, 100));
    net.start(a);
    net.start(b);
    assert_eq!(
        net.last_change(a),
        (net.t0, State::Initialize, State::Master, Cause::Startup)
    );
    net.run_for(secs(30));
    assert_eq!(net.masters(), vec![a]);
    assert_eq!(net.changes(b).len(), 1, "the backup never moved");
    assert_eq!(net.inst(b).master(), Some(ip(LB01)));
}

#[test]
fn failover_exactly_at_master_down_interval() {
    let (mut net, a, b) = pair();
    net.run_until(net.at(ms(10_500)));
    net.crash(a);
    // lb01's last advert: t0 + MDI_200 + 7 s, heard 1 ms later.
    let last_sent = net.at(MDI_200 + secs(7));
    assert_eq!(net.sent(a).last().map(|s| s.0), Some(last_sent));
    let takeover = last_sent + LATENCY + MDI_100;
    assert_eq!(takeover, net.at(us(13_829_125)));
    assert_takeover_at(&mut net, b, takeover);
    assert_eq!(net.last_change(b).3, Cause::MasterSilent);
}

#[test]
fn priority_zero_handover_after_skew_time() {
    let (mut net, a, b) = pair();
    net.run_until(net.at(ms(10_500)));
    net.shutdown(a);
    assert_eq!(net.sent(a).last(), Some(&(net.now, 0)));
    assert_eq!(net.last_change(a).2, State::Initialize);
    let takeover = net.now + LATENCY + SKEW_100;
    assert_takeover_at(&mut net, b, takeover);
    assert_eq!(net.last_change(b).3, Cause::MasterReleased);
}

#[test]
fn higher_priority_node_started_later_preempts() {
    let mut net = Net::new(LATENCY);
    let low = net.add(v2(LB01, 100));
    let high = net.add(v2(LB02, 200));
    net.start(low);
    net.run_until(net.at(secs(10)));
    assert_eq!(net.last_change(low).0, net.at(MDI_100));
    net.start(high);
    // It discards the lower adverts and its own down timer runs out.
    let takeover = net.at(secs(10) + MDI_200);
    assert_takeover_at(&mut net, high, takeover);
    assert_eq!(net.last_change(high).3, Cause::PreemptedLower);
    net.run_until(takeover + LATENCY);
    assert_eq!(
        net.last_change(low),
        (
            takeover + LATENCY,
            State::Master,
            State::Backup,
            Cause::HigherPriority {
                src: ip(LB02),
                priority: 200
            }
        )
    );
    net.run_for(secs(30));
    assert_eq!(net.masters(), vec![high]);
}

#[test]
fn nopreempt_higher_node_stays_backup() {
    let mut net = Net::new(LATENCY);
    let low = net.add(v2(LB01, 100));
    let mut cfg = v2(LB02, 200);
    cfg.preempt = false;
    let high = net.add(cfg);
    net.start(low);
    net.run_until(net.at(secs(10)));
    net.start(high);
    net.run_for(secs(60));
    assert_eq!(net.masters(), vec![low]);
    assert_eq!(net.changes(high).len(), 1);
}

#[test]
fn preempt_delay_holds_takeover_until_it_has_passed() {
    let mut net = Net::new(LATENCY);
    let low = net.add(v2(LB01, 100));
    let mut cfg = v2(LB02, 200);
    cfg.preempt_delay = secs(5);
    let high = net.add(cfg);
    net.start(low);
    net.run_until(net.at(secs(10)));
    net.start(high);
    // lb01 advertises at t0 + MDI_100 + k s; lb02 hears them 1 ms later and accepts
    // them until t0 + 15 s. The last accepted one arrives at t0 + 14.610375 s.
    let last_accepted = net.at(MDI_100 + secs(11) + LATENCY);
    assert_eq!(last_accepted, net.at(us(14_610_375)));
    let takeover = last_accepted + MDI_200;
    // Without the delay it would have preempted at t0 + 10 s + MDI_200.
    net.run_until(net.at(secs(10) + MDI_200 + secs(1)));
    assert_eq!(net.state(high), State::Backup);
    assert_takeover_at(&mut net, high, takeover);
    net.run_for(secs(10));
    assert_eq!(net.masters(), vec![high]);
}

#[test]
fn equal_priorities_higher_address_wins() {
    let mut net = Net::new(LATENCY);
    let a = net.add(v2(LB01, 100));
    let b = net.add(v2(LB02, 100));
    net.start(a);
    net.start(b);
    // Same timers, so both claim at once; the crossed adverts settle it.
    net.run_until(net.at(MDI_100));
    assert_eq!(net.masters(), vec![a, b]);
    net.run_until(net.at(MDI_100 + LATENCY));
    assert_eq!(net.masters(), vec![b]);
    assert_eq!(
        net.last_change(a),
        (
            net.at(MDI_100 + LATENCY),
            State::Master,
            State::Backup,
            Cause::HigherPriority {
                src: ip(LB02),
                priority: 100
            }
        )
    );
    net.run_for(secs(30));
    assert_eq!(net.masters(), vec![b]);
    assert_eq!(net.state(a), State::Backup);
}

#[test]
fn v3_backup_learns_the_master_interval() {
    let mut net = Net::new(LATENCY);
    let a = net.add(node(Version::V3, LB01, 200, ms(100)));
    let b = net.add(node(Version::V3, LB02, 100, secs(1)));
    net.start(a);
    net.start(b);
    // lb01: 3 × 100 ms + 56 × 100 ms / 256 = 321.875 ms.
    let a_master = net.at(us(321_875));
    net.run_until(a_master + LATENCY);
    assert_eq!(net.last_change(a).0, a_master);
    assert_eq!(net.inst(b).master_adver_interval(), ms(100));
    // 3 × 100 ms + 156 × 100 ms / 256 = 360.9375 ms, not 3.609375 s.
    let v3_mdi = Duration::from_nanos(360_937_500);
    assert_eq!(net.inst(b).master_down_interval(), v3_mdi);
    assert_eq!(
        net.inst(b).poll_timeout(),
        Some(a_master + LATENCY + v3_mdi)
    );
    net.run_until(net.at(secs(1)));
    net.crash(a);
    let last_sent = a_master + ms(600);
    assert_eq!(net.sent(a).last().map(|s| s.0), Some(last_sent));
    assert_takeover_at(&mut net, b, last_sent + LATENCY + v3_mdi);
}

#[test]
fn closed_gate_withholds_once_and_an_advert_clears_it() {
    let (mut net, a, b) = pair();
    let reason = WithholdReason::VipAnsweredElsewhere {
        vip: ip("192.0.2.3"),
        mac: [0x02, 0, 0, 0, 0, 0x05],
    };
    net.gate(b, ClaimGate::Closed(reason.clone()));
    // A firewall drops lb01 → lb02: lb01 is alive, lb02 stops hearing it.
    net.run_until(net.at(ms(10_500)));
    net.block(a, b);
    let expiry = net.at(MDI_200 + secs(7)) + LATENCY + MDI_100;
    net.run_until(expiry);
    assert_eq!(net.withheld(b), vec![(expiry, reason.clone())]);
    net.run_for(secs(30));
    assert_eq!(net.withheld(b).len(), 1, "one report per episode");
    assert_eq!(net.masters(), vec![a]);
    assert!(net.inst(b).claim_pending());
    // The path comes back: the next advert clears the pending claim…
    net.heal();
    net.run_for(secs(1));
    assert!(!net.inst(b).claim_pending());
    assert_eq!(net.inst(b).master(), Some(ip(LB01)));
    // …so opening the gate now claims nothing.
    net.gate(b, ClaimGate::Open);
    net.run_for(secs(30));
    assert_eq!(net.masters(), vec![a]);
}

#[test]
fn gate_opened_later_claims_after_the_gate_skew() {
    let (mut net, a, b) = pair();
    net.gate(b, ClaimGate::Closed(WithholdReason::ManualHold));
    net.run_until(net.at(ms(10_500)));
    net.crash(a);
    let expiry = net.at(us(13_829_125));
    net.run_until(expiry);
    assert_eq!(net.withheld(b), vec![(expiry, WithholdReason::ManualHold)]);
    net.run_until(net.at(secs(20)));
    assert_eq!(net.state(b), State::Backup);
    net.gate(b, ClaimGate::Open);
    // v2: the gate skew is the skew, (256 - 100) / 256 s.
    net.run_until(net.at(secs(21)));
    assert_eq!(
        net.last_change(b),
        (
            net.at(secs(20)) + SKEW_100,
            State::Backup,
            State::Master,
            Cause::GateOpened
        )
    );
}

#[test]
fn fault_tracker_hands_over_and_back() {
    let mut net = Net::new(LATENCY);
    let mut cfg = v2(LB01, 200);
    cfg.trackers.push(TrackerConfig {
        name: "check_web".into(),
        weight: 0,
    });
    let a = net.add(cfg);
    let b = net.add(v2(LB02, 100));
    net.start(a);
    net.start(b);
    net.run_until(net.at(ms(10_500)));
    net.tracker(a, "check_web", false);
    let tf = net.now;
    assert_eq!(net.last_change(a).2, State::Fault);
    assert_eq!(net.sent(a).last(), Some(&(tf, 0)));
    assert_takeover_at(&mut net, b, tf + LATENCY + SKEW_100);
    net.run_until(net.at(secs(20)));
    assert_eq!(net.state(a), State::Fault);
    net.tracker(a, "check_web", true);
    assert_eq!(
        net.last_change(a),
        (net.now, State::Fault, State::Backup, Cause::TrackersUp)
    );
    // Back as backup it discards lb02's lower adverts and preempts.
    let takeover = net.at(secs(20) + MDI_200);
    assert_takeover_at(&mut net, a, takeover);
    net.run_for(secs(5));
    assert_eq!(net.masters(), vec![a]);
}

/// Shared by the negative-weight and demotion scenarios: at t0 + 10.5 s lb01 (200)
/// drops to 50 by `lower`; it re-advertises at once, lb02 (100) discards that and
/// preempts when its down timer, armed by the last 200-advert, runs out.
fn lowered_master_is_preempted(lb01: InstanceConfig, lower: impl FnOnce(&mut Net, usize)) {
    let (mut net, a, b) = pair_with(lb01);
    net.run_until(net.at(ms(10_500)));
    lower(&mut net, a);
    assert_eq!(net.inst(a).effective_priority(), 50);
    assert_eq!(net.sent(a).last(), Some(&(net.at(ms(10_500)), 50)));
    let takeover = net.at(MDI_200 + secs(7)) + LATENCY + MDI_100;
    assert_takeover_at(&mut net, b, takeover);
    assert_eq!(net.last_change(b).3, Cause::PreemptedLower);
    net.run_until(takeover + LATENCY);
    assert_eq!(net.masters(), vec![b]);
}

#[test]
fn negative_weight_is_readvertised_and_the_backup_preempts() {
    let mut lb01 = v2(LB01, 200);
    lb01.trackers.push(TrackerConfig {
        name: "ping_gw".into(),
        weight: -150,
    });
    lowered_master_is_preempted(lb01, |net, a| net.tracker(a, "ping_gw", false));
}

#[test]
fn demotion_works_like_a_negative_weight() {
    lowered_master_is_preempted(v2(LB01, 200), |net, a| net.demote(a, 150));
}

#[test]
fn dual_master_after_partition_heals_by_forced_election() {
    let (mut net, a, b) = pair();
    net.run_until(net.at(ms(10_500)));
    net.partition(a, b);
    let b_master = net.at(us(13_829_125));
    net.run_until(b_master);
    assert_eq!(net.masters(), vec![a, b], "split brain while partitioned");
    net.run_until(net.at(ms(19_500)));
    assert_eq!(net.masters(), vec![a, b]);
    net.heal();
    // lb02's next advert (t0 + 19.829125 s) reaches lb01 first; lb01 answers at once
    // ("forcing new election") and lb02 yields on that answer.
    let b_advert = b_master + secs(6);
    let forced = b_advert + LATENCY;
    net.run_until(forced);
    assert!(net.sent(a).contains(&(forced, 200)));
    net.run_until(forced + LATENCY);
    assert_eq!(net.masters(), vec![a]);
    assert_eq!(
        net.last_change(b),
        (
            forced + LATENCY,
            State::Master,
            State::Backup,
            Cause::HigherPriority {
                src: ip(LB01),
                priority: 200
            }
        )
    );
}

#[test]
fn three_nodes_the_next_best_takes_over() {
    let mut net = Net::new(LATENCY);
    let a = net.add(v2(LB01, 200));
    let b = net.add(v2(LB02, 100));
    let c = net.add(v2(LB03, 50));
    for i in [a, b, c] {
        net.start(i);
    }
    net.run_until(net.at(ms(10_500)));
    net.crash(a);
    let takeover = net.at(us(13_829_125));
    assert_takeover_at(&mut net, b, takeover);
    net.run_for(secs(30));
    assert_eq!(net.masters(), vec![b]);
    assert_eq!(net.changes(c).len(), 1, "lb03 never left BACKUP");
}
