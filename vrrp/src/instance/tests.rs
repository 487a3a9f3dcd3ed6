//! One test per rule, on simulated time: a base `Instant` plus exact offsets.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::gate::{ClaimGate, WithholdReason};

use super::*;

const ME: &str = "192.0.2.5";
const PEER_LOW: &str = "192.0.2.1";
const PEER_HIGH: &str = "192.0.2.6";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn cfg(version: Version, priority: u8) -> InstanceConfig {
    InstanceConfig {
        version,
        vrid: 51,
        priority,
        advert_interval: Duration::from_secs(1),
        preempt: true,
        preempt_delay: Duration::ZERO,
        primary_ip: ip(ME),
        trackers: vec![
            TrackerConfig {
                name: "fault".into(),
                weight: 0,
            },
            TrackerConfig {
                name: "plus".into(),
                weight: 20,
            },
            TrackerConfig {
                name: "minus".into(),
                weight: -30,
            },
        ],
    }
}

fn adv(src: &str, priority: u8, interval: Duration) -> ReceivedAdvert {
    ReceivedAdvert {
        src: ip(src),
        priority,
        interval,
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}
fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
fn us(n: u64) -> Duration {
    Duration::from_micros(n)
}

fn drain(i: &mut Instance) -> Vec<Action> {
    std::iter::from_fn(|| i.poll_action()).collect()
}

fn changed(from: State, to: State, priority: u8, cause: Cause) -> Action {
    Action::StateChanged {
        from,
        to,
        priority,
        cause,
    }
}

/// Starts a backup (base 100, so 120 effective with the "plus" tracker up) at `t0`.
fn backup(version: Version) -> (Instance, Instant) {
    let t0 = Instant::now();
    let mut i = Instance::new(cfg(version, 100));
    i.handle_startup(t0);
    drain(&mut i);
    assert_eq!(i.state(), State::Backup);
    (i, t0)
}

/// A master made by letting the down timer of a fresh backup run out.
fn master(version: Version) -> (Instance, Instant) {
    let (mut i, _) = backup(version);
    let t = i.poll_timeout().expect("down timer");
    i.handle_timeout(t);
    drain(&mut i);
    assert_eq!(i.state(), State::Master);
    (i, t)
}

#[test]
fn owner_starts_master_at_once() {
    let t0 = Instant::now();
    let mut i = Instance::new(cfg(Version::V2, 255));
    assert_eq!(i.state(), State::Initialize);
    assert_eq!(i.poll_timeout(), None);
    i.handle_startup(t0);
    assert_eq!(
        drain(&mut i),
        vec![
            Action::SendAdvert { priority: 255 },
            Action::AddVips,
            Action::SendGarp,
            changed(State::Initialize, State::Master, 255, Cause::Startup),
        ]
    );
    assert_eq!(i.poll_timeout(), Some(t0 + secs(1)));
    assert_eq!(i.master(), Some(ip(ME)));
    assert!(i.vips_held());
    // A second startup is a no-op.
    i.handle_startup(t0 + secs(1));
    assert_eq!(drain(&mut i), vec![]);
}

#[test]
fn backup_starts_with_master_down_interval() {
    let t0 = Instant::now();
    let mut c = cfg(Version::V2, 100);
    c.trackers.clear();
    let mut i = Instance::new(c);
    i.handle_startup(t0);
    assert_eq!(
        drain(&mut i),
        vec![changed(
            State::Initialize,
            State::Backup,
            100,
            Cause::Startup
        )]
    );
    // 3 × 1 s + (256 − 100)/256 s.
    assert_eq!(i.poll_timeout(), Some(t0 + us(3_609_375)));
    assert_eq!(i.master(), None);
}

#[test]
fn down_timer_expiry_claims_and_not_a_moment_earlier() {
    let (mut i, t0) = backup(Version::V2);
    // Effective 120: skew (256 − 120)/256 s = 531.25 ms.
    let deadline = t0 + secs(3) + us(531_250);
    assert_eq!(i.poll_timeout(), Some(deadline));
    i.handle_timeout(deadline - ms(1));
    assert_eq!(drain(&mut i), vec![]);
    assert_eq!(i.state(), State::Backup);
    i.handle_timeout(deadline);
    assert_eq!(
        drain(&mut i),
        vec![
            Action::SendAdvert { priority: 120 },
            Action::AddVips,
            Action::SendGarp,
            changed(State::Backup, State::Master, 120, Cause::MasterSilent),
        ]
    );
    assert_eq!(i.poll_timeout(), Some(deadline + secs(1)));
}

#[test]
fn master_advertises_every_interval() {
    let (mut i, t) = master(Version::V2);
    for k in 1..=3 {
        let at = t + secs(k);
        assert_eq!(i.poll_timeout(), Some(at));
        i.handle_timeout(at);
        assert_eq!(drain(&mut i), vec![Action::SendAdvert { priority: 120 }]);
    }
}

#[test]
fn backup_accepts_better_master_and_resets_the_timer() {
    let (mut i, t0) = backup(Version::V2);
    let at = t0 + secs(1);
    assert_eq!(
        i.handle_advert(at, adv(PEER_HIGH, 200, secs(1))),
        AdvertOutcome::Accepted
    );
    assert_eq!(i.poll_timeout(), Some(at + secs(3) + us(531_250)));
    assert_eq!(i.master(), Some(ip(PEER_HIGH)));
    // Equal priority is accepted too (RFC: "greater than or equal").
    let at = at + secs(1);
    assert_eq!(
        i.handle_advert(at, adv(PEER_LOW, 120, secs(1))),
        AdvertOutcome::Accepted
    );
    assert_eq!(drain(&mut i), vec![]);
}

#[test]
fn backup_discards_lower_master_when_preempting() {
    let (mut i, t0) = backup(Version::V2);
    let armed = i.poll_timeout();
    assert_eq!(
        i.handle_advert(t0 + secs(1), adv(PEER_HIGH, 50, secs(1))),
        AdvertOutcome::Discarded(DiscardReason::LowerPriority)
    );
    assert_eq!(
        i.poll_timeout(),
        armed,
        "a discarded advert must not reset the timer"
    );
    i.handle_timeout(armed.expect("timer"));
    assert!(drain(&mut i).contains(&changed(
        State::Backup,
        State::Master,
        120,
        Cause::PreemptedLower
    )));
}

#[test]
fn nopreempt_accepts_lower_master() {
    let t0 = Instant::now();
    let mut c = cfg(Version::V2, 100);
    c.preempt = false;
    let mut i = Instance::new(c);
    i.handle_startup(t0);
    let at = t0 + secs(1);
    assert_eq!(
        i.handle_advert(at, adv(PEER_HIGH, 50, secs(1))),
        AdvertOutcome::Accepted
    );
    assert_eq!(i.poll_timeout(), Some(at + secs(3) + us(531_250)));
}

#[test]
fn preempt_delay_counts_from_startup() {
    let t0 = Instant::now();
    let mut c = cfg(Version::V2, 100);
    c.preempt_delay = secs(5);
    let mut i = Instance::new(c);
    i.handle_startup(t0);
    let low = adv(PEER_HIGH, 50, secs(1));
    assert_eq!(
        i.handle_advert(t0 + ms(4_999), low),
        AdvertOutcome::Accepted
    );
    assert_eq!(
        i.handle_advert(t0 + secs(5), low),
        AdvertOutcome::Discarded(DiscardReason::LowerPriority)
    );
    assert_eq!(i.poll_timeout(), Some(t0 + ms(4_999) + us(3_531_250)));
}

#[test]
fn preempt_delay_restarts_after_a_better_master() {
    let t0 = Instant::now();
    let mut c = cfg(Version::V2, 100);
    c.preempt_delay = secs(5);
    let mut i = Instance::new(c);
    i.handle_startup(t0);
    // A better master stops the startup delay…
    for k in 1..20 {
        assert_eq!(
            i.handle_advert(t0 + secs(k), adv(PEER_HIGH, 200, secs(1))),
            AdvertOutcome::Accepted
        );
    }
    // …so when it drops below us, long after startup, the delay starts afresh.
    let t = t0 + secs(20);
    let low = adv(PEER_HIGH, 50, secs(1));
    for k in 0..5 {
        assert_eq!(i.handle_advert(t + secs(k), low), AdvertOutcome::Accepted);
    }
    assert_eq!(i.handle_advert(t + ms(4_999), low), AdvertOutcome::Accepted);
    assert_eq!(
        i.handle_advert(t + secs(5), low),
        AdvertOutcome::Discarded(DiscardReason::LowerPriority)
    );
}

#[test]
fn priority_zero_in_backup_shortens_to_skew() {
    let (mut i, t0) = backup(Version::V2);
    let at = t0 + secs(1);
    assert_eq!(
        i.handle_advert(at, adv(PEER_HIGH, 0, secs(1))),
        AdvertOutcome::MasterReleased
    );
    assert_eq!(i.poll_timeout(), Some(at + us(531_250)));
    i.handle_timeout(at + us(531_250));
    assert!(drain(&mut i).contains(&changed(
        State::Backup,
        State::Master,
        120,
        Cause::MasterReleased
    )));
}

#[test]
fn v2_interval_mismatch_is_discarded() {
    let (mut i, t0) = backup(Version::V2);
    let armed = i.poll_timeout();
    assert_eq!(
        i.handle_advert(t0 + secs(1), adv(PEER_HIGH, 200, secs(2))),
        AdvertOutcome::Discarded(DiscardReason::IntervalMismatch {
            ours: secs(1),
            theirs: secs(2)
        })
    );
    assert_eq!(i.poll_timeout(), armed);
}

#[test]
fn v3_backup_learns_the_master_interval() {
    let (mut i, t0) = backup(Version::V3);
    let at = t0 + ms(500);
    assert_eq!(
        i.handle_advert(at, adv(PEER_HIGH, 200, ms(100))),
        AdvertOutcome::Accepted
    );
    assert_eq!(i.master_adver_interval(), ms(100));
    // 3 × 100 ms + (256 − 120) × 100 ms / 256 = 300 ms + 53.125 ms.
    assert_eq!(i.poll_timeout(), Some(at + us(353_125)));
}

#[test]
fn v3_zero_interval_is_clamped_to_one_centisecond() {
    let (mut i, t0) = backup(Version::V3);
    let at = t0 + ms(500);
    i.handle_advert(at, adv(PEER_HIGH, 200, Duration::ZERO));
    assert_eq!(i.master_adver_interval(), ms(10));
    // 30 ms + 136 × 10 ms / 256 = 35.3125 ms: short, but never zero.
    assert_eq!(
        i.poll_timeout(),
        Some(at + Duration::from_nanos(35_312_500))
    );
}

#[test]
fn foreign_family_and_own_address_are_discarded() {
    let (mut i, t0) = backup(Version::V3);
    assert_eq!(
        i.handle_advert(t0, adv("2001:db8::6", 200, ms(1000))),
        AdvertOutcome::Discarded(DiscardReason::AddressFamily)
    );
    assert_eq!(
        i.handle_advert(t0, adv(ME, 200, ms(1000))),
        AdvertOutcome::Discarded(DiscardReason::OwnAddress)
    );
}

#[test]
fn master_answers_priority_zero_at_once() {
    let (mut i, t) = master(Version::V2);
    let at = t + ms(300);
    assert_eq!(
        i.handle_advert(at, adv(PEER_HIGH, 0, secs(1))),
        AdvertOutcome::AnsweredRelease
    );
    assert_eq!(drain(&mut i), vec![Action::SendAdvert { priority: 120 }]);
    assert_eq!(i.poll_timeout(), Some(at + secs(1)));
}

#[test]
fn master_yields_to_higher_priority() {
    let (mut i, t) = master(Version::V3);
    let at = t + ms(300);
    assert_eq!(
        i.handle_advert(at, adv(PEER_LOW, 200, ms(100))),
        AdvertOutcome::Yielded
    );
    assert_eq!(
        drain(&mut i),
        vec![
            Action::RemoveVips,
            changed(
                State::Master,
                State::Backup,
                120,
                Cause::HigherPriority {
                    src: ip(PEER_LOW),
                    priority: 200
                }
            ),
        ]
    );
    assert_eq!(i.master(), Some(ip(PEER_LOW)));
    // Down interval from the advert's interval (v3).
    assert_eq!(i.poll_timeout(), Some(at + us(353_125)));
}

#[test]
fn master_tie_break_by_address() {
    let (mut i, t) = master(Version::V2);
    assert_eq!(
        i.handle_advert(t + ms(1), adv(PEER_LOW, 120, secs(1))),
        AdvertOutcome::ForcedElection
    );
    assert_eq!(drain(&mut i), vec![Action::SendAdvert { priority: 120 }]);
    assert_eq!(i.poll_timeout(), Some(t + ms(1) + secs(1)));
    assert_eq!(
        i.handle_advert(t + ms(2), adv(PEER_HIGH, 120, secs(1))),
        AdvertOutcome::Yielded
    );
    assert_eq!(i.state(), State::Backup);
}

#[test]
fn master_forces_election_on_lower_priority() {
    let (mut i, t) = master(Version::V2);
    let at = t + ms(700);
    assert_eq!(
        i.handle_advert(at, adv(PEER_HIGH, 50, secs(1))),
        AdvertOutcome::ForcedElection
    );
    assert_eq!(drain(&mut i), vec![Action::SendAdvert { priority: 120 }]);
    assert_eq!(i.poll_timeout(), Some(at + secs(1)));
}

#[test]
fn closed_gate_withholds_once_then_claims_when_opened() {
    let (mut i, t0) = backup(Version::V2);
    let reason = WithholdReason::Isolated {
        reachable: 0,
        quorum: 1,
    };
    i.set_claim_gate(t0, ClaimGate::Closed(reason.clone()));
    let deadline = i.poll_timeout().expect("down timer");
    i.handle_timeout(deadline);
    assert_eq!(
        drain(&mut i),
        vec![Action::ClaimWithheld {
            reason: reason.clone()
        }]
    );
    assert_eq!(i.state(), State::Backup);
    assert!(i.claim_pending());
    assert_eq!(i.master(), None);
    assert_eq!(i.poll_timeout(), None, "nothing to wait for but the gate");
    // The same episode never repeats the report, even with a new reason.
    i.handle_timeout(deadline + secs(10));
    i.set_claim_gate(
        deadline + secs(11),
        ClaimGate::Closed(WithholdReason::ManualHold),
    );
    assert_eq!(drain(&mut i), vec![]);
    let open_at = deadline + secs(12);
    i.set_claim_gate(open_at, ClaimGate::Open);
    // The claim waits the gate skew: (256 - 120) / 256 of a second.
    assert_eq!(drain(&mut i), vec![]);
    assert!(!i.claim_pending());
    let claim_at = open_at + us(531_250);
    assert_eq!(i.poll_timeout(), Some(claim_at));
    i.handle_timeout(claim_at - us(1));
    assert_eq!(i.state(), State::Backup);
    i.handle_timeout(claim_at);
    assert_eq!(
        drain(&mut i),
        vec![
            Action::SendAdvert { priority: 120 },
            Action::AddVips,
            Action::SendGarp,
            changed(State::Backup, State::Master, 120, Cause::GateOpened),
        ]
    );
    assert_eq!(i.poll_timeout(), Some(claim_at + secs(1)));
}

/// Both nodes' gates open in the same instant (a pair started together, both
/// arbiters confirming gw at once): the better node claims first, by the gate
/// skew over a second, and its advert stops the other's claim, also at 100 ms
/// adverts where the RFC skew is 20 ms.
#[test]
fn of_two_gates_opening_together_the_better_node_claims_and_the_other_hears_it() {
    let t0 = Instant::now();
    let node = |me: &str, priority: u8| {
        let mut i = Instance::new(InstanceConfig {
            advert_interval: ms(100),
            primary_ip: ip(me),
            trackers: vec![],
            ..cfg(Version::V3, priority)
        });
        i.set_claim_gate(t0, ClaimGate::Closed(WithholdReason::ManualHold));
        i.handle_startup(t0);
        let due = i.poll_timeout().expect("down timer");
        i.handle_timeout(due);
        assert!(i.claim_pending());
        drain(&mut i);
        i
    };
    let (mut better, mut worse) = (node(ME, 150), node(PEER_HIGH, 100));
    let open = t0 + secs(1);
    better.set_claim_gate(open, ClaimGate::Open);
    worse.set_claim_gate(open, ClaimGate::Open);
    let (b, w) = (
        better.poll_timeout().expect("claim"),
        worse.poll_timeout().expect("claim"),
    );
    assert!(w - b > ms(190), "{:?} apart", w - b);
    better.handle_timeout(b);
    assert_eq!(better.state(), State::Master);
    // Its advert reaches the other well before the other's claim.
    assert_eq!(
        worse.handle_advert(b + ms(50), adv(ME, 150, ms(100))),
        AdvertOutcome::Accepted
    );
    worse.handle_timeout(w);
    assert_eq!(worse.state(), State::Backup);
    assert!(
        !drain(&mut worse)
            .iter()
            .any(|a| matches!(a, Action::StateChanged { .. } | Action::AddVips))
    );
}

#[test]
fn a_gate_closing_again_during_the_gate_skew_withholds_anew() {
    let (mut i, t0) = backup(Version::V2);
    i.set_claim_gate(t0, ClaimGate::Closed(WithholdReason::ManualHold));
    let deadline = i.poll_timeout().expect("down timer");
    i.handle_timeout(deadline);
    drain(&mut i);
    i.set_claim_gate(deadline + secs(1), ClaimGate::Open);
    let due = i.poll_timeout().expect("gate skew");
    i.set_claim_gate(due - ms(1), ClaimGate::Closed(WithholdReason::ManualHold));
    i.handle_timeout(due);
    assert_eq!(i.state(), State::Backup);
    assert_eq!(
        drain(&mut i),
        vec![Action::ClaimWithheld {
            reason: WithholdReason::ManualHold
        }]
    );
    assert!(i.claim_pending());
}

#[test]
fn an_advert_cancels_a_pending_claim() {
    let (mut i, t0) = backup(Version::V2);
    i.set_claim_gate(t0, ClaimGate::Closed(WithholdReason::ManualHold));
    let deadline = i.poll_timeout().expect("down timer");
    i.handle_timeout(deadline);
    drain(&mut i);
    let at = deadline + secs(1);
    assert_eq!(
        i.handle_advert(at, adv(PEER_HIGH, 200, secs(1))),
        AdvertOutcome::Accepted
    );
    assert!(!i.claim_pending());
    assert_eq!(i.poll_timeout(), Some(at + us(3_531_250)));
    i.set_claim_gate(at, ClaimGate::Open);
    assert_eq!(drain(&mut i), vec![], "no claim left to release");
    // A new episode reports again.
    i.set_claim_gate(at, ClaimGate::Closed(WithholdReason::ManualHold));
    i.handle_timeout(at + us(3_531_250));
    assert_eq!(
        drain(&mut i),
        vec![Action::ClaimWithheld {
            reason: WithholdReason::ManualHold
        }]
    );
}

#[test]
fn the_gate_does_not_move_a_master() {
    let (mut i, t) = master(Version::V2);
    i.set_claim_gate(t, ClaimGate::Closed(WithholdReason::ManualHold));
    assert_eq!(drain(&mut i), vec![]);
    assert_eq!(i.state(), State::Master);
    i.handle_timeout(t + secs(1));
    assert_eq!(drain(&mut i), vec![Action::SendAdvert { priority: 120 }]);
}

#[test]
fn release_gives_up_the_vips_and_waits_behind_the_closed_gate() {
    let (mut i, t) = master(Version::V2);
    let reason = WithholdReason::Isolated {
        reachable: 0,
        quorum: 1,
    };
    i.set_claim_gate(t, ClaimGate::Closed(reason.clone()));
    i.handle_release(t, Cause::Released);
    assert_eq!(
        drain(&mut i),
        vec![
            Action::SendAdvert { priority: 0 },
            Action::RemoveVips,
            changed(State::Master, State::Backup, 120, Cause::Released),
        ]
    );
    assert!(!i.vips_held());
    assert_eq!(i.master(), None);
    // Silence then runs into the closed gate, not into a claim.
    let deadline = i.poll_timeout().expect("down timer");
    i.handle_timeout(deadline);
    assert_eq!(drain(&mut i), vec![Action::ClaimWithheld { reason }]);
    // A second release as Backup does nothing.
    i.handle_release(deadline, Cause::Released);
    assert_eq!(drain(&mut i), vec![]);
    // The gate reopening (isolation over) lets it claim back, after the gate skew.
    i.set_claim_gate(deadline + secs(1), ClaimGate::Open);
    i.handle_timeout(i.poll_timeout().expect("gate skew"));
    assert_eq!(i.state(), State::Master);
}

#[test]
fn weighted_trackers_change_priority_and_master_readvertises() {
    let (mut i, t) = master(Version::V2);
    assert_eq!(i.effective_priority(), 120);
    i.handle_tracker(t + ms(100), "minus", false)
        .expect("known");
    assert_eq!(i.effective_priority(), 90);
    assert_eq!(drain(&mut i), vec![Action::SendAdvert { priority: 90 }]);
    assert_eq!(i.poll_timeout(), Some(t + ms(100) + secs(1)));
    i.handle_tracker(t + ms(200), "plus", false).expect("known");
    assert_eq!(i.effective_priority(), 70);
    // Re-reporting the same state changes nothing.
    drain(&mut i);
    i.handle_tracker(t + ms(300), "plus", false).expect("known");
    assert_eq!(drain(&mut i), vec![]);
}

#[test]
fn backup_priority_change_applies_at_next_arming() {
    let (mut i, t0) = backup(Version::V2);
    let armed = i.poll_timeout();
    i.handle_tracker(t0 + ms(100), "plus", false)
        .expect("known");
    assert_eq!(i.effective_priority(), 100);
    assert_eq!(drain(&mut i), vec![]);
    assert_eq!(i.poll_timeout(), armed, "the running timer keeps its skew");
    let at = t0 + secs(1);
    i.handle_advert(at, adv(PEER_HIGH, 200, secs(1)));
    assert_eq!(i.poll_timeout(), Some(at + us(3_609_375)));
}

#[test]
fn unknown_tracker_is_an_error_not_a_panic() {
    let (mut i, t0) = backup(Version::V2);
    assert_eq!(
        i.handle_tracker(t0, "nope", false),
        Err(TrackerError::Unknown {
            name: "nope".into()
        })
    );
    i.handle_shutdown(t0);
    assert!(i.handle_tracker(t0, "nope", false).is_err());
    assert!(i.handle_tracker(t0, "plus", false).is_ok());
}

#[test]
fn fault_from_master_releases_and_recovers_to_backup() {
    let (mut i, t) = master(Version::V2);
    let at = t + ms(100);
    i.handle_tracker(at, "fault", false).expect("known");
    assert_eq!(
        drain(&mut i),
        vec![
            Action::SendAdvert { priority: 0 },
            Action::RemoveVips,
            changed(
                State::Master,
                State::Fault,
                120,
                Cause::TrackerDown {
                    name: "fault".into()
                }
            ),
        ]
    );
    assert_eq!(i.poll_timeout(), None);
    assert_eq!(
        i.handle_advert(at, adv(PEER_HIGH, 200, secs(1))),
        AdvertOutcome::Ignored
    );
    let back = at + secs(5);
    i.handle_tracker(back, "fault", true).expect("known");
    assert_eq!(
        drain(&mut i),
        vec![changed(State::Fault, State::Backup, 120, Cause::TrackersUp)]
    );
    assert_eq!(i.poll_timeout(), Some(back + us(3_531_250)));
}

#[test]
fn fault_at_startup_and_owner_recovers_to_master() {
    let t0 = Instant::now();
    let mut i = Instance::new(cfg(Version::V2, 255));
    i.handle_tracker(t0, "fault", false).expect("known");
    assert_eq!(drain(&mut i), vec![], "nothing happens before startup");
    i.handle_startup(t0);
    assert_eq!(
        drain(&mut i),
        vec![changed(
            State::Initialize,
            State::Fault,
            255,
            Cause::TrackerDown {
                name: "fault".into()
            }
        )]
    );
    i.handle_tracker(t0 + secs(1), "fault", true)
        .expect("known");
    assert_eq!(
        drain(&mut i),
        vec![
            Action::SendAdvert { priority: 255 },
            Action::AddVips,
            Action::SendGarp,
            changed(State::Fault, State::Master, 255, Cause::TrackersUp),
        ]
    );
}

#[test]
fn owner_ignores_weights_and_demotion() {
    let t0 = Instant::now();
    let mut i = Instance::new(cfg(Version::V2, 255));
    i.handle_startup(t0);
    drain(&mut i);
    i.handle_tracker(t0, "minus", false).expect("known");
    i.set_demotion(t0, 100);
    assert_eq!(i.effective_priority(), 255);
    assert_eq!(drain(&mut i), vec![]);
}

#[test]
fn demotion_is_a_negative_weight() {
    let (mut i, t) = master(Version::V2);
    i.set_demotion(t + ms(10), 50);
    assert_eq!(i.effective_priority(), 70);
    assert_eq!(drain(&mut i), vec![Action::SendAdvert { priority: 70 }]);
    i.set_demotion(t + ms(20), 250);
    assert_eq!(
        i.effective_priority(),
        1,
        "never 0: that would mean leaving"
    );
    i.set_demotion(t + ms(30), 0);
    assert_eq!(i.effective_priority(), 120);
}

#[test]
fn shutdown_from_master_says_stop() {
    let (mut i, t) = master(Version::V2);
    i.handle_shutdown(t + ms(10));
    let actions = drain(&mut i);
    assert_eq!(
        actions,
        vec![
            Action::SendAdvert { priority: 0 },
            Action::RemoveVips,
            changed(State::Master, State::Initialize, 120, Cause::Shutdown),
        ]
    );
    assert_eq!(actions[2].notify_word(), Some("STOP"));
    assert!(i.is_stopped());
    assert!(!i.vips_held());
    assert_eq!(i.poll_timeout(), None);
    // Everything afterwards is ignored.
    i.handle_startup(t + secs(1));
    i.handle_timeout(t + secs(1));
    i.set_demotion(t + secs(1), 10);
    i.set_claim_gate(t + secs(1), ClaimGate::Open);
    assert_eq!(
        i.handle_advert(t + secs(1), adv(PEER_HIGH, 0, secs(1))),
        AdvertOutcome::Ignored
    );
    i.handle_shutdown(t + secs(1));
    assert_eq!(drain(&mut i), vec![]);
    assert_eq!(i.state(), State::Initialize);
}

#[test]
fn shutdown_from_backup_and_fault_only_reports() {
    let (mut i, t0) = backup(Version::V2);
    i.handle_shutdown(t0);
    assert_eq!(
        drain(&mut i),
        vec![changed(
            State::Backup,
            State::Initialize,
            120,
            Cause::Shutdown
        )]
    );
    let (mut i, t0) = backup(Version::V2);
    i.handle_tracker(t0, "fault", false).expect("known");
    drain(&mut i);
    i.handle_shutdown(t0);
    assert_eq!(
        drain(&mut i),
        vec![changed(
            State::Fault,
            State::Initialize,
            120,
            Cause::Shutdown
        )]
    );
    // Never started: nothing to report.
    let mut i = Instance::new(cfg(Version::V2, 100));
    i.handle_shutdown(t0);
    assert_eq!(drain(&mut i), vec![]);
    assert!(i.is_stopped());
}

#[test]
fn a_clock_stepping_back_stalls_instead_of_replaying() {
    let (mut i, t0) = backup(Version::V2);
    let late = t0 + secs(2);
    i.handle_advert(late, adv(PEER_HIGH, 200, secs(1)));
    let armed = i.poll_timeout();
    // An advert stamped earlier is read as arriving at `late`.
    i.handle_advert(t0, adv(PEER_HIGH, 200, secs(1)));
    assert_eq!(i.poll_timeout(), armed);
}

#[test]
fn notify_words() {
    assert_eq!(
        changed(State::Backup, State::Master, 1, Cause::Startup).notify_word(),
        Some("MASTER")
    );
    assert_eq!(
        changed(State::Master, State::Fault, 1, Cause::Startup).notify_word(),
        Some("FAULT")
    );
    assert_eq!(Action::AddVips.notify_word(), None);
    assert_eq!(State::Initialize.to_string(), "INIT");
}

#[test]
fn config_is_validated_and_sanitized() {
    let good = cfg(Version::V2, 100);
    assert_eq!(good.validate(), Ok(()));
    let mut c = good.clone();
    c.priority = 0;
    assert_eq!(c.validate(), Err(ConfigError::ZeroPriority));
    assert!(Instance::try_new(c.clone()).is_err());
    assert_eq!(Instance::new(c).base_priority(), 1);
    let mut c = good.clone();
    c.advert_interval = ms(1_500);
    assert!(matches!(
        c.validate(),
        Err(ConfigError::IntervalNotOnWireUnit { .. })
    ));
    assert_eq!(Instance::new(c).advert_interval(), secs(2));
    let mut c = good.clone();
    c.version = Version::V3;
    c.advert_interval = Duration::ZERO;
    assert!(matches!(
        c.validate(),
        Err(ConfigError::IntervalOutOfRange { .. })
    ));
    assert_eq!(Instance::new(c).advert_interval(), ms(10));
    let mut c = good.clone();
    c.primary_ip = ip("2001:db8::5");
    assert!(matches!(c.validate(), Err(ConfigError::V2OverIpv6(_))));
    let mut c = good.clone();
    c.trackers.push(TrackerConfig {
        name: "plus".into(),
        weight: 1,
    });
    assert_eq!(
        c.validate(),
        Err(ConfigError::DuplicateTracker("plus".into()))
    );
    let mut c = good.clone();
    c.trackers[1].weight = 300;
    assert!(matches!(
        c.validate(),
        Err(ConfigError::TrackerWeight { .. })
    ));
    let mut c = good;
    c.preempt_delay = secs(1001);
    assert!(matches!(
        c.validate(),
        Err(ConfigError::PreemptDelayTooLong(_))
    ));
}

#[test]
fn only_claims_from_silence_are_marked_for_the_arbiters_probation() {
    // Down timer with the master silent: marked, and a release ends it.
    let (mut i, t) = master(Version::V2);
    assert!(i.claimed_from_silence());
    i.handle_release(t, Cause::Yielded);
    assert!(drain(&mut i).contains(&changed(State::Master, State::Backup, 120, Cause::Yielded)));
    assert!(!i.claimed_from_silence(), "a Backup is on no probation");
    // A withheld claim the gate lets through: marked.
    i.set_claim_gate(t, ClaimGate::Closed(WithholdReason::ManualHold));
    let due = i.poll_timeout().expect("down timer");
    i.handle_timeout(due);
    i.set_claim_gate(due + secs(1), ClaimGate::Open);
    i.handle_timeout(i.poll_timeout().expect("gate skew"));
    assert_eq!(i.state(), State::Master);
    assert!(i.claimed_from_silence());
    // Preemption of a lower master and a priority-0 handover: not marked.
    let (mut p, t0) = backup(Version::V2);
    p.handle_advert(t0 + secs(1), adv(PEER_HIGH, 50, secs(1)));
    let due = p.poll_timeout().expect("timer");
    p.handle_timeout(due);
    assert_eq!(p.state(), State::Master);
    assert!(!p.claimed_from_silence());
    let (mut h, t0) = backup(Version::V2);
    h.handle_advert(t0 + secs(1), adv(PEER_HIGH, 0, secs(1)));
    let due = h.poll_timeout().expect("timer");
    h.handle_timeout(due);
    assert_eq!(h.state(), State::Master);
    assert!(!h.claimed_from_silence());
}

#[test]
fn a_confirmed_dead_master_is_replaced_at_once_and_on_probation() {
    let (mut i, t0) = backup(Version::V2);
    i.handle_advert(t0 + secs(1), adv(PEER_HIGH, 200, secs(1)));
    drain(&mut i);
    let down = i.poll_timeout().expect("down timer");
    // Another address's death is not this master's.
    assert!(!i.handle_master_dead(t0 + ms(1500), ip(PEER_LOW)));
    assert!(i.handle_master_dead(t0 + ms(1500), ip(PEER_HIGH)));
    assert!(t0 + ms(1500) < down, "well before the down timer");
    let acts = drain(&mut i);
    assert_eq!(
        acts,
        vec![
            Action::SendAdvert { priority: 120 },
            Action::AddVips,
            Action::SendGarp,
            changed(
                State::Backup,
                State::Master,
                120,
                Cause::EarlyTakeover {
                    master: ip(PEER_HIGH)
                }
            ),
        ]
    );
    assert!(
        i.claimed_from_silence(),
        "probation applies to early claims"
    );
    // A second confirmation changes nothing.
    assert!(!i.handle_master_dead(t0 + ms(1600), ip(PEER_HIGH)));
    assert!(drain(&mut i).is_empty());
}

#[test]
fn an_early_claim_is_refused_unless_the_timer_runs_for_that_masters_silence() {
    // Closed gate: the arbiter's word stands.
    let (mut g, t0) = backup(Version::V2);
    g.handle_advert(t0 + secs(1), adv(PEER_HIGH, 200, secs(1)));
    g.set_claim_gate(t0 + secs(1), ClaimGate::Closed(WithholdReason::ManualHold));
    assert!(!g.handle_master_dead(t0 + ms(1500), ip(PEER_HIGH)));
    // A master heard leaving (priority 0) is already on Skew_Time.
    let (mut r, t0) = backup(Version::V2);
    r.handle_advert(t0 + secs(1), adv(PEER_HIGH, 200, secs(1)));
    r.handle_advert(t0 + ms(1100), adv(PEER_HIGH, 0, secs(1)));
    assert!(!r.handle_master_dead(t0 + ms(1150), ip(PEER_HIGH)));
    // A lower master we are about to preempt: the timer decides.
    let (mut p, t0) = backup(Version::V2);
    p.handle_advert(t0 + secs(1), adv(PEER_HIGH, 50, secs(1)));
    assert!(!p.handle_master_dead(t0 + ms(1500), ip(PEER_HIGH)));
    // No master ever heard (a fresh start): nobody to confirm dead.
    let (mut f, t0) = backup(Version::V2);
    assert!(!f.handle_master_dead(t0 + ms(500), ip(PEER_HIGH)));
    // Already master: nothing to do.
    let (mut m, t) = master(Version::V2);
    drain(&mut m);
    assert!(!m.handle_master_dead(t, ip(PEER_HIGH)));
    for i in [&mut g, &mut r, &mut p, &mut f, &mut m] {
        assert!(!drain(i).iter().any(|a| matches!(
            a,
            Action::StateChanged {
                cause: Cause::EarlyTakeover { .. },
                ..
            }
        )),);
    }
}
