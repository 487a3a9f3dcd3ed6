//! The fencing policy on simulated time: the rules one by one, then two nodes
//! that see one split brain at times apart, never fencing each other both.

use super::*;

fn cfg() -> FenceConfig {
    FenceConfig {
        fence_after: Duration::from_secs(5),
        yield_delay: FenceConfig::yield_delay_for(Duration::from_secs(20), Duration::from_secs(5)),
        limit: 1,
        window: Duration::from_secs(3600),
        min_uptime: Duration::from_secs(60),
    }
}

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn drain(f: &mut Fencing) -> Vec<FenceAction> {
    std::iter::from_fn(|| f.poll_action()).collect()
}

fn fences(v: &[FenceAction]) -> bool {
    v.iter().any(|a| matches!(a, FenceAction::Fence { .. }))
}

#[test]
fn the_better_node_fences_a_held_split_brain_and_opens_the_gate_only_once_off() {
    let t0 = Instant::now();
    let mut f = Fencing::new(cfg(), Standing::Better, t0);
    let t = t0 + s(100);
    f.handle_split_brain(t, true);
    assert_eq!(drain(&mut f), vec![]);
    assert_eq!(f.phase(), Phase::Waiting);
    assert_eq!(f.poll_timeout(), Some(t + s(5)));
    f.handle_timeout(t + s(4));
    assert_eq!(drain(&mut f), vec![], "not before fence_after");
    f.handle_timeout(t + s(5));
    let split = FenceReason::SplitBrain;
    assert_eq!(
        drain(&mut f),
        vec![
            FenceAction::Gate { closed: true },
            FenceAction::Fencing {
                reason: split.clone()
            },
            FenceAction::Fence {
                reason: split.clone()
            },
        ]
    );
    assert_eq!(f.poll_timeout(), None, "no timer while the agent runs");
    f.handle_off(t + s(6), OffOutcome::Done);
    assert_eq!(drain(&mut f), vec![FenceAction::Confirm]);
    assert!(f.gate_closed(), "off is not yet confirmed");
    f.handle_status(t + s(7), Power::Off);
    assert_eq!(
        drain(&mut f),
        vec![
            FenceAction::Fenced {
                reason: split.clone()
            },
            FenceAction::Gate { closed: false }
        ]
    );
    assert_eq!(f.phase(), Phase::Fenced);
    assert_eq!(f.attempts(), 1);
}

#[test]
fn the_worse_node_waits_long_enough_for_the_better_one() {
    let t0 = Instant::now();
    let mut f = Fencing::new(cfg(), Standing::Worse, t0);
    let t = t0 + s(100);
    f.handle_split_brain(t, true);
    f.handle_timeout(t + s(5));
    assert_eq!(drain(&mut f), vec![], "the better one goes first");
    // It must outlast the better node's off and status at their timeouts.
    assert!(f.poll_timeout().unwrap() > t + s(5) + s(40));
    // The better one fenced us (we are off: nothing runs), or the split
    // ended: nothing to do.
    f.handle_split_brain(t + s(20), false);
    f.handle_timeout(t + s(100));
    assert_eq!(drain(&mut f), vec![]);
    // The better one did not: the worse one fences after its longer wait.
    let mut f = Fencing::new(cfg(), Standing::Worse, t0);
    f.handle_split_brain(t, true);
    let due = f.poll_timeout().unwrap();
    f.handle_timeout(due);
    assert!(fences(&drain(&mut f)));
}

#[test]
fn an_unknown_order_does_not_fence_a_split_brain_by_itself() {
    let t0 = Instant::now();
    let mut f = Fencing::new(cfg(), Standing::Unknown, t0);
    let t = t0 + s(100);
    f.handle_split_brain(t, true);
    let v = drain(&mut f);
    assert!(
        matches!(&v[..], [FenceAction::Refused { why, .. }] if why.contains("peer_priority")),
        "{v:?}"
    );
    f.handle_timeout(t + s(500));
    assert_eq!(drain(&mut f), vec![], "said once");
    assert_eq!(f.poll_timeout(), None);
    // The peer's advert arrives: now the order is known.
    // The peer's advert arrives: now the order is known, and the split
    // brain has held long enough.
    f.handle_standing(t + s(501), Standing::Better);
    assert!(fences(&drain(&mut f)));
}

#[test]
fn an_isolated_node_fences_nobody_and_says_so_once() {
    let t0 = Instant::now();
    let mut f = Fencing::new(cfg(), Standing::Better, t0);
    let t = t0 + s(100);
    f.handle_isolation(t, true);
    f.handle_split_brain(t, true);
    f.handle_timeout(t + s(5));
    f.handle_timeout(t + s(6));
    let v = drain(&mut f);
    assert!(
        matches!(&v[..], [FenceAction::Refused { why, .. }] if why.contains("isolated")),
        "{v:?}"
    );
    f.handle_order(t + s(7), "oncall".into());
    let v = drain(&mut f);
    assert!(
        matches!(&v[..], [FenceAction::Refused { reason: FenceReason::Ordered { .. }, why }] if why.contains("isolated")),
        "an order is refused too, and told: {v:?}"
    );
}

#[test]
fn a_dead_daemon_is_fenced_only_with_the_health_path() {
    let t0 = Instant::now();
    let t = t0 + s(100);
    // No health path: the VIP answering from a silent peer is S2 as far as
    // the wire can tell.
    let mut f = Fencing::new(cfg(), Standing::Worse, t0);
    f.handle_vip_answered(t, true);
    f.handle_timeout(t + s(300));
    assert_eq!(drain(&mut f), vec![]);
    // The health path says it is alive: still nothing.
    f.handle_peer_health(t + s(300), true);
    f.handle_timeout(t + s(600));
    assert_eq!(drain(&mut f), vec![]);
    // It says the daemon is gone: fenced after fence_after, whatever the
    // standing (only the live node sees a dead one).
    let mut f = Fencing::new(cfg(), Standing::Worse, t0);
    f.handle_peer_health(t, false);
    f.handle_vip_answered(t, true);
    f.handle_timeout(t + s(5));
    assert!(drain(&mut f).contains(&FenceAction::Fence {
        reason: FenceReason::DaemonDead
    }));
}

#[test]
fn a_failed_or_unconfirmed_fence_keeps_the_gate_closed_until_the_trigger_is_gone() {
    let t0 = Instant::now();
    let t = t0 + s(100);
    for outcome in [
        (OffOutcome::Failed("timed out after 20s".into()), None),
        (OffOutcome::Done, Some(Power::On)),
        (OffOutcome::Done, Some(Power::Unknown)),
    ] {
        let mut f = Fencing::new(cfg(), Standing::Better, t0);
        f.handle_peer_health(t, false);
        f.handle_vip_answered(t, true);
        f.handle_timeout(t + s(5));
        drain(&mut f);
        f.handle_off(t + s(6), outcome.0.clone());
        if let Some(p) = outcome.1 {
            assert_eq!(drain(&mut f), vec![FenceAction::Confirm]);
            f.handle_status(t + s(7), p);
        }
        let v = drain(&mut f);
        assert!(
            matches!(
                &v[..],
                [FenceAction::FenceFailed {
                    reason: FenceReason::DaemonDead,
                    ..
                }]
            ),
            "{outcome:?}: {v:?}"
        );
        assert!(f.gate_closed());
        assert_eq!(f.phase(), Phase::Failed);
        // The VIP stops answering, but the daemon is still not heard: a
        // frozen peer may come back with it, so the gate stays closed.
        f.handle_vip_answered(t + s(8), false);
        assert!(f.gate_closed());
        f.handle_timeout(t + s(1000));
        assert_eq!(drain(&mut f), vec![], "no retry while failed");
        // The peer's daemon speaks again: over.
        f.handle_peer_health(t + s(1001), true);
        assert_eq!(drain(&mut f), vec![FenceAction::Gate { closed: false }]);
        assert_eq!(f.phase(), Phase::Idle);
    }
}

#[test]
fn the_ledger_and_the_start_limit_refuse_and_a_restart_keeps_the_ledger() {
    let t0 = Instant::now();
    let mut f = Fencing::new(cfg(), Standing::Better, t0);
    f.handle_order(t0 + s(10), "oncall".into());
    let v = drain(&mut f);
    assert!(matches!(&v[..], [FenceAction::Refused { why, .. }] if why.contains("first")));
    f.handle_order(t0 + s(100), "oncall".into());
    drain(&mut f);
    f.handle_off(
        t0 + s(101),
        OffOutcome::Failed("timed out after 30s".into()),
    );
    let v = drain(&mut f);
    // An order has no trigger that holds the gate closed after it.
    assert!(
        matches!(&v[..], [FenceAction::FenceFailed { why, .. }, FenceAction::Gate { closed: false }] if why == "timed out after 30s"),
        "{v:?}"
    );
    f.handle_order(t0 + s(200), "oncall".into());
    let v = drain(&mut f);
    assert!(matches!(&v[..], [FenceAction::Refused { why, .. }] if why.contains("ledger")));
    // A restart: the ledger's file says one fence 100 s ago.
    let t1 = t0 + s(300);
    let mut g = Fencing::new(cfg(), Standing::Better, t1);
    g.restore_attempts([t0 + s(100)]);
    g.handle_order(t1 + s(100), "oncall".into());
    let v = drain(&mut g);
    assert!(matches!(&v[..], [FenceAction::Refused { why, .. }] if why.contains("ledger")));
}

#[test]
fn a_refusal_leaves_no_busy_timer_and_is_tried_again_when_it_may() {
    let t0 = Instant::now();
    let mut f = Fencing::new(cfg(), Standing::Better, t0);
    // A split brain in the first minute: refused, tried again at 60 s.
    f.handle_split_brain(t0 + s(10), true);
    f.handle_timeout(t0 + s(15));
    assert!(matches!(&drain(&mut f)[..], [FenceAction::Refused { .. }]));
    assert_eq!(f.poll_timeout(), Some(t0 + s(60)));
    f.handle_timeout(t0 + s(60));
    assert!(fences(&drain(&mut f)));
    // Isolated: refused, and no timer until connected again.
    let mut f = Fencing::new(cfg(), Standing::Better, t0);
    f.handle_isolation(t0 + s(100), true);
    f.handle_split_brain(t0 + s(100), true);
    f.handle_timeout(t0 + s(105));
    drain(&mut f);
    assert_eq!(f.poll_timeout(), None);
    f.handle_isolation(t0 + s(110), false);
    assert!(fences(&drain(&mut f)));
}

#[test]
fn a_dry_run_fences_nothing_and_the_ledger_bounds_how_often_it_says_so() {
    let t0 = Instant::now();
    let mut f = Fencing::new(cfg(), Standing::Better, t0);
    let t = t0 + s(100);
    f.handle_split_brain(t, true);
    f.handle_timeout(t + s(5));
    assert!(fences(&drain(&mut f)));
    f.handle_off(t + s(5), OffOutcome::DryRun);
    assert_eq!(drain(&mut f), vec![FenceAction::Gate { closed: false }]);
    // The split brain goes on: the next would-be fence meets the ledger.
    f.handle_timeout(t + s(10));
    let v = drain(&mut f);
    assert!(matches!(&v[..], [FenceAction::Refused { why, .. }] if why.contains("ledger")));
}

#[test]
fn a_fenced_peer_seen_owning_again_is_a_new_episode() {
    let t0 = Instant::now();
    let mut f = Fencing::new(FenceConfig { limit: 2, ..cfg() }, Standing::Better, t0);
    let t = t0 + s(100);
    f.handle_split_brain(t, true);
    f.handle_timeout(t + s(5));
    drain(&mut f);
    f.handle_off(t + s(6), OffOutcome::Done);
    f.handle_status(t + s(7), Power::Off);
    drain(&mut f);
    f.handle_split_brain(t + s(10), false);
    // Someone powered it on and it claims again.
    f.handle_split_brain(t + s(100), true);
    f.handle_timeout(t + s(105));
    assert!(fences(&drain(&mut f)));
    assert_eq!(f.attempts(), 2);
}

/// Two nodes, one split brain: each sees it at its own time (detection
/// spread), each agent call takes its own time up to the timeout; once the
/// better node's `off` returns the worse one is powered off and acts no
/// more. Whatever the times, never both fence, and someone always does.
mod two_nodes {
    use super::*;
    use proptest::prelude::*;

    const TIMEOUT: Duration = Duration::from_secs(20);

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn never_both(
            better_sees_ms in 0u64..5_000,
            worse_sees_ms in 0u64..5_000,
            off_ms in 0u64..20_000,
            status_ms in 0u64..20_000,
            better_fails in any::<bool>(),
        ) {
            let c = FenceConfig {
                yield_delay: FenceConfig::yield_delay_for(TIMEOUT, s(5)),
                ..cfg()
            };
            let t0 = Instant::now();
            let t = t0 + s(100);
            let mut a = Fencing::new(c, Standing::Better, t0);
            let mut b = Fencing::new(c, Standing::Worse, t0);
            let ms = Duration::from_millis;
            a.handle_split_brain(t + ms(better_sees_ms), true);
            b.handle_split_brain(t + ms(worse_sees_ms), true);
            // The better one's fence.
            let at = a.poll_timeout().unwrap();
            // The worse one's clock runs to the better one's fire time.
            b.handle_timeout(at);
            prop_assert!(!fences(&drain(&mut b)));
            a.handle_timeout(at);
            prop_assert!(fences(&drain(&mut a)));
            let off_done = at + ms(off_ms);
            b.handle_timeout(off_done);
            prop_assert!(!fences(&drain(&mut b)), "the worse fenced while the better's off ran");
            if better_fails {
                // The BMC refused: the worse node is still up, and later
                // fences the better one (one fence, not two at once).
                a.handle_off(off_done, OffOutcome::Failed("refused".into()));
                let due = b.poll_timeout().unwrap();
                prop_assert!(due > off_done);
                b.handle_timeout(due);
                prop_assert!(fences(&drain(&mut b)));
                let again = a.poll_timeout();
                prop_assert!(again.is_none(), "the failed one waits: {:?}", again);
            } else {
                a.handle_off(off_done, OffOutcome::Done);
                // The worse one is off now; had it lived on (an agent that
                // lies), its timer would still be past the status call.
                let status_done = off_done + ms(status_ms);
                b.handle_timeout(status_done.min(at + TIMEOUT * 2));
                prop_assert!(!fences(&drain(&mut b)));
                a.handle_status(status_done, Power::Off);
                let fenced = drain(&mut a).iter().any(|x| matches!(x, FenceAction::Fenced { .. }));
                prop_assert!(fenced);
            }
        }
    }
}
