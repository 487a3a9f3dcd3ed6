//! Random input sequences against invariants that hold whatever the wire or the
//! daemon throws at an instance: no panic, no zero-length timer loop, VIPs held
//! exactly while Master, actions consistent with the states they occur in.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use crate::gate::{ClaimGate, WithholdReason};
use proptest::prelude::*;

use super::*;

const TRACKERS: [&str; 4] = ["fault", "plus", "minus", "ghost"];

#[derive(Debug, Clone)]
enum Input {
    Advance(Duration),
    Advert {
        src: u8,
        priority: u8,
        interval: Duration,
    },
    Tracker {
        idx: usize,
        up: bool,
    },
    Gate(bool),
    Demotion(u8),
    Startup,
    Shutdown,
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        4 => (0u64..5_000_000).prop_map(|us| Input::Advance(Duration::from_micros(us))),
        4 => (0u8..=8, any::<u8>(), prop_oneof![
                (0u64..=5000).prop_map(|cs| Duration::from_millis(cs * 10)),
                (0u64..=300).prop_map(Duration::from_secs),
                any::<u64>().prop_map(Duration::from_nanos),
            ])
            .prop_map(|(src, priority, interval)| Input::Advert { src, priority, interval }),
        2 => (0usize..TRACKERS.len(), any::<bool>()).prop_map(|(idx, up)| Input::Tracker { idx, up }),
        1 => any::<bool>().prop_map(Input::Gate),
        1 => any::<u8>().prop_map(Input::Demotion),
        1 => Just(Input::Startup),
        1 => Just(Input::Shutdown),
    ]
}

fn config() -> impl Strategy<Value = InstanceConfig> {
    (
        any::<bool>(),
        prop_oneof![Just(255u8), Just(0u8), any::<u8>()],
        prop_oneof![
            (1u64..=300).prop_map(|cs| Duration::from_millis(cs * 10)),
            (1u64..=3).prop_map(Duration::from_secs),
            any::<u64>().prop_map(Duration::from_nanos),
        ],
        any::<bool>(),
        prop_oneof![
            Just(Duration::ZERO),
            (0u64..10_000).prop_map(Duration::from_millis)
        ],
        -300i32..300,
        -300i32..300,
    )
        .prop_map(
            |(v3, priority, advert_interval, preempt, preempt_delay, plus, minus)| InstanceConfig {
                version: if v3 { Version::V3 } else { Version::V2 },
                vrid: 7,
                priority,
                advert_interval,
                preempt,
                preempt_delay,
                primary_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 5)),
                trackers: ["fault", "plus", "minus"]
                    .iter()
                    .zip([0, plus, minus])
                    .map(|(n, weight)| TrackerConfig {
                        name: (*n).into(),
                        weight,
                    })
                    .collect(),
            },
        )
}

/// What the daemon would believe from the actions alone.
struct Model {
    state: State,
    vips: bool,
    stopped: bool,
    /// `claim_pending()` after the previous call.
    pending: bool,
}

impl Model {
    /// Applies one call's actions and checks them against the instance afterwards.
    fn check(
        &mut self,
        i: &mut Instance,
        now: Instant,
        was_stopped: bool,
    ) -> Result<(), TestCaseError> {
        let before = self.state;
        let was_pending = std::mem::replace(&mut self.pending, i.claim_pending());
        let actions: Vec<Action> = std::iter::from_fn(|| i.poll_action()).collect();
        if was_stopped {
            prop_assert!(actions.is_empty(), "actions after shutdown: {actions:?}");
        }
        let after = i.state();
        for a in &actions {
            match a {
                Action::AddVips => {
                    prop_assert!(!self.vips, "AddVips twice");
                    self.vips = true;
                }
                Action::RemoveVips => {
                    prop_assert!(self.vips, "RemoveVips without AddVips");
                    self.vips = false;
                }
                Action::SendAdvert { priority: 0 } => {
                    prop_assert_eq!(before, State::Master);
                    prop_assert!(after != State::Master);
                }
                Action::SendAdvert { priority } => {
                    prop_assert_eq!(after, State::Master);
                    prop_assert_eq!(*priority, i.effective_priority());
                }
                Action::SendGarp => prop_assert_eq!(after, State::Master),
                Action::StateChanged { from, to, .. } => {
                    prop_assert_eq!(*from, self.state);
                    prop_assert!(from != to);
                    self.state = *to;
                }
                Action::ClaimWithheld { .. } => {
                    prop_assert!(!was_pending, "ClaimWithheld twice in one episode");
                    prop_assert_eq!(after, State::Backup);
                    prop_assert!(i.claim_pending());
                    prop_assert!(!actions.contains(&Action::AddVips));
                }
            }
        }
        prop_assert_eq!(self.state, after, "state changes must be reported");
        prop_assert_eq!(self.vips, i.vips_held());
        prop_assert_eq!(self.vips, after == State::Master, "VIPs held iff Master");
        self.stopped |= i.is_stopped();

        let p = i.effective_priority();
        prop_assert!(p >= 1);
        prop_assert_eq!(p == OWNER_PRIORITY, i.base_priority() == OWNER_PRIORITY);

        let timer = i.poll_timeout();
        if let Some(t) = timer {
            prop_assert!(t >= now, "deadline {t:?} before now {now:?}");
        }
        match (i.is_running(), after) {
            (true, State::Master) => {
                prop_assert!(timer.is_some());
                prop_assert_eq!(i.master(), Some(i.primary_ip()));
            }
            (true, State::Backup) => prop_assert!(timer.is_some() != i.claim_pending()),
            _ => prop_assert!(timer.is_none()),
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_inputs_keep_the_invariants(
        cfg in config(),
        start in any::<bool>(),
        inputs in proptest::collection::vec(input(), 0..80),
    ) {
        let t0 = Instant::now();
        let mut now = t0;
        let mut i = Instance::new(cfg);
        let mut m = Model { state: State::Initialize, vips: false, stopped: false, pending: false };
        if start {
            i.handle_startup(now);
            m.check(&mut i, now, false)?;
        }
        for inp in inputs {
            let was_stopped = m.stopped;
            match inp {
                Input::Advance(d) => {
                    let target = now + d;
                    let mut fired = 0u32;
                    while let Some(t) = i.poll_timeout().filter(|t| *t <= target) {
                        now = now.max(t);
                        i.handle_timeout(now);
                        m.check(&mut i, now, was_stopped)?;
                        // Progress: a fired timer never re-arms at or before `now`.
                        if let Some(next) = i.poll_timeout() {
                            prop_assert!(next > now, "timer loop at {now:?}");
                        }
                        fired += 1;
                        // 5 s of at-least-10 ms adverts, plus slack.
                        prop_assert!(fired < 1_000, "too many timeouts");
                    }
                    now = target;
                    continue;
                }
                Input::Advert { src, priority, interval } => {
                    let src = IpAddr::V4(Ipv4Addr::new(192, 0, 2, src));
                    let outcome = i.handle_advert(now, ReceivedAdvert { src, priority, interval });
                    if matches!(outcome, AdvertOutcome::Accepted | AdvertOutcome::Yielded) {
                        // Whatever interval the wire claims, a heard master is given at
                        // least three of the shortest intervals before we take over.
                        let floor = now + V3_MIN_INTERVAL * DOWN_TIMER_ADVERTS;
                        prop_assert!(i.poll_timeout().is_some_and(|t| t >= floor));
                    }
                }
                Input::Tracker { idx, up } => {
                    let r = i.handle_tracker(now, TRACKERS[idx], up);
                    prop_assert_eq!(r.is_err(), TRACKERS[idx] == "ghost");
                }
                Input::Gate(open) => {
                    let gate = if open {
                        ClaimGate::Open
                    } else {
                        ClaimGate::Closed(WithholdReason::ManualHold)
                    };
                    i.set_claim_gate(now, gate);
                }
                Input::Demotion(w) => i.set_demotion(now, w),
                Input::Startup => i.handle_startup(now),
                Input::Shutdown => i.handle_shutdown(now),
            }
            m.check(&mut i, now, was_stopped)?;
        }
    }
}
