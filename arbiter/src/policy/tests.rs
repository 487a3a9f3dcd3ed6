//! Policy scenarios in simulated time (a base `Instant` plus offsets), and a proptest
//! over random input sequences.

use super::*;
use proptest::prelude::*;

const GW: &str = "192.0.2.254";
const PEER: &str = "192.0.2.6";
const VIP: &str = "192.0.2.3";
const MAC: [u8; 6] = [0x02, 0, 0, 0, 0x0a, 0xff];

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn secs(t0: Instant, s: u64) -> Instant {
    t0 + Duration::from_secs(s)
}

fn config() -> PolicyConfig {
    PolicyConfig {
        references: vec![ip(GW)],
        peers: vec![ip(PEER)],
        quorum: 1,
        rise: 2,
        fall: 2,
        demote_weight: 50,
        on_isolated: OnIsolated::Demote,
        reboot_after: Duration::from_secs(60),
        ownership_probe: true,
        instances: vec![InstanceSpec {
            name: "VI_1".into(),
            vips: vec![ip(VIP), ip("192.0.2.4")],
            yield_backoff: 0,
        }],
    }
}

fn drain(p: &mut Policy) -> Vec<Verdict> {
    std::iter::from_fn(|| p.poll_verdict()).collect()
}

/// `n` probe results for `target`, one a second from `at`.
fn probes(p: &mut Policy, at: Instant, target: &str, ok: bool, n: u64) {
    for k in 0..n {
        p.handle_probe(at + Duration::from_secs(k), ip(target), ok)
            .unwrap();
    }
}

/// A node with everything proven reachable, its startup verdicts drained.
fn healthy(cfg: PolicyConfig, t0: Instant) -> Policy {
    let mut p = Policy::new(cfg, t0).unwrap();
    let refs: Vec<IpAddr> = p.references().targets().map(|(i, _)| i).collect();
    let peers: Vec<IpAddr> = p.peers().targets().map(|(i, _)| i).collect();
    for t in refs.into_iter().chain(peers) {
        for _ in 0..4 {
            p.handle_probe(t0, t, true).unwrap();
        }
    }
    drain(&mut p);
    assert!(p.gate("VI_1").unwrap().is_open());
    p
}

fn isolated_reason(reachable: usize, quorum: usize) -> ClaimGate {
    ClaimGate::Closed(WithholdReason::Isolated { reachable, quorum })
}

#[test]
fn startup_without_probe_results_keeps_the_gate_closed() {
    let t0 = Instant::now();
    let mut p = Policy::new(config(), t0).unwrap();
    assert_eq!(
        drain(&mut p),
        vec![Verdict::Gate {
            instance: "VI_1".into(),
            gate: isolated_reason(0, 1),
        }]
    );
    assert_eq!(p.isolation(), Isolation::Unproven);
    // A master on unproven references is neither demoted nor released: no evidence.
    p.handle_role(t0, "VI_1", Role::Master).unwrap();
    assert_eq!(drain(&mut p), vec![]);
    // One success is not `rise`.
    probes(&mut p, t0, GW, true, 1);
    assert_eq!(drain(&mut p), vec![]);
    probes(&mut p, secs(t0, 1), GW, true, 1);
    assert_eq!(
        drain(&mut p),
        vec![Verdict::Gate {
            instance: "VI_1".into(),
            gate: ClaimGate::Open,
        }]
    );
}

#[test]
fn without_references_the_gate_never_closes_for_isolation() {
    let t0 = Instant::now();
    let mut cfg = config();
    cfg.references.clear();
    let mut p = Policy::new(cfg, t0).unwrap();
    assert_eq!(drain(&mut p), vec![]);
    assert!(p.gate("VI_1").unwrap().is_open());
    assert_eq!(p.isolation(), Isolation::Connected);
    p.handle_role(t0, "VI_1", Role::Master).unwrap();
    probes(&mut p, t0, PEER, false, 5);
    assert_eq!(drain(&mut p), vec![]);
}

#[test]
fn flaps_shorter_than_fall_leave_the_gate_open() {
    let t0 = Instant::now();
    let mut p = healthy(config(), t0);
    for k in 0..10 {
        // fall = 2: single losses between successes never count.
        probes(&mut p, secs(t0, 2 * k), GW, false, 1);
        probes(&mut p, secs(t0, 2 * k + 1), GW, true, 1);
    }
    assert_eq!(drain(&mut p), vec![]);
    probes(&mut p, secs(t0, 30), GW, false, 2);
    assert_eq!(*p.gate("VI_1").unwrap(), isolated_reason(0, 1));
    // And back: a flap shorter than rise does not reopen it.
    probes(&mut p, secs(t0, 40), GW, true, 1);
    probes(&mut p, secs(t0, 41), GW, false, 1);
    probes(&mut p, secs(t0, 42), GW, true, 1);
    assert_eq!(*p.gate("VI_1").unwrap(), isolated_reason(0, 1));
}

#[test]
fn quorum_two_of_three() {
    let t0 = Instant::now();
    let mut cfg = config();
    cfg.references = vec![ip("192.0.2.1"), ip("192.0.2.2"), ip("198.51.100.1")];
    cfg.quorum = 2;
    let mut p = healthy(cfg, t0);
    probes(&mut p, t0, "192.0.2.1", false, 2);
    assert_eq!(p.isolation(), Isolation::Connected);
    assert!(p.gate("VI_1").unwrap().is_open());
    assert_eq!(drain(&mut p), vec![]);
    probes(&mut p, t0, "192.0.2.2", false, 2);
    assert_eq!(p.isolation(), Isolation::Isolated);
    let v = drain(&mut p);
    assert!(v.contains(&Verdict::Raised(Incident::Isolated {
        reachable: 1,
        quorum: 2
    })));
    assert!(v.contains(&Verdict::Gate {
        instance: "VI_1".into(),
        gate: isolated_reason(1, 2),
    }));
    // One comes back: 2 of 3 again.
    probes(&mut p, t0, "192.0.2.1", true, 2);
    assert!(p.gate("VI_1").unwrap().is_open());
    assert!(
        drain(&mut p).contains(&Verdict::Resolved(Incident::Isolated {
            reachable: 1,
            quorum: 2
        }))
    );
}

/// Effective priority as the VRRP core computes it (base − demotion, floor 1).
fn effective(base: u8, p: &Policy) -> u8 {
    base.saturating_sub(p.demotion("VI_1").unwrap()).max(1)
}

#[test]
fn both_nodes_lose_the_gateway_but_see_each_other() {
    let t0 = Instant::now();
    let mut cfg_b = config();
    cfg_b.peers = vec![ip("192.0.2.5")];
    let mut a = healthy(config(), t0);
    let mut b = healthy(cfg_b, t0);
    a.handle_role(t0, "VI_1", Role::Master).unwrap();
    b.handle_role(t0, "VI_1", Role::Backup).unwrap();
    drain(&mut a);
    drain(&mut b);
    let (base_a, base_b) = (150, 100);
    assert!(effective(base_a, &a) > effective(base_b, &b));

    // The gateway dies; the heartbeat link and the peer probes are fine.
    probes(&mut a, secs(t0, 10), GW, false, 2);
    probes(&mut b, secs(t0, 10), GW, false, 2);
    let (va, vb) = (drain(&mut a), drain(&mut b));
    for (v, p) in [(&va, &a), (&vb, &b)] {
        assert!(v.contains(&Verdict::Demotion {
            instance: "VI_1".into(),
            weight: 50
        }));
        assert!(!v.iter().any(|v| matches!(v, Verdict::Release { .. })));
        assert!(!p.released("VI_1").unwrap());
    }
    // Equal demotion keeps the order: the master stays master, no outage.
    assert_eq!(a.demotion("VI_1").unwrap(), b.demotion("VI_1").unwrap());
    assert!(effective(base_a, &a) > effective(base_b, &b));
    // Time passes, nothing more happens (no reboot in demote mode either).
    a.handle_timeout(secs(t0, 3600));
    b.handle_timeout(secs(t0, 3600));
    assert_eq!(drain(&mut a), vec![]);
    assert_eq!(drain(&mut b), vec![]);
    assert_eq!(a.poll_timeout(), None);
}

#[test]
fn heartbeat_blocked_and_the_vip_answers_elsewhere_withholds_the_claim() {
    let t0 = Instant::now();
    let mut p = healthy(config(), t0);
    assert!(!p.wants_ownership_probe(t0, "VI_1").unwrap());
    p.handle_heartbeat(secs(t0, 1), "VI_1", true).unwrap();
    assert!(p.wants_ownership_probe(t0, "VI_1").unwrap());
    // Nobody answers for the first VIP, the peer's MAC answers for the second.
    p.handle_ownership(secs(t0, 1), "VI_1", ip(VIP), None)
        .unwrap();
    assert!(p.gate("VI_1").unwrap().is_open());
    p.handle_ownership(secs(t0, 2), "VI_1", ip("192.0.2.4"), Some(MAC))
        .unwrap();
    let reason = WithholdReason::VipAnsweredElsewhere {
        vip: ip("192.0.2.4"),
        mac: MAC,
    };
    assert_eq!(
        drain(&mut p),
        vec![
            Verdict::Gate {
                instance: "VI_1".into(),
                gate: ClaimGate::Closed(reason.clone()),
            },
            Verdict::Raised(Incident::ClaimWithheld {
                instance: "VI_1".into(),
                reason: reason.clone(),
            }),
        ]
    );
    assert!(reason.to_string().contains("02:00:00:00:0a:ff"));
    // Adverts heard again: evidence dropped, gate reopens, incident resolved.
    p.handle_heartbeat(secs(t0, 3), "VI_1", false).unwrap();
    assert!(!p.wants_ownership_probe(t0, "VI_1").unwrap());
    assert_eq!(
        drain(&mut p),
        vec![
            Verdict::Gate {
                instance: "VI_1".into(),
                gate: ClaimGate::Open,
            },
            Verdict::Resolved(Incident::ClaimWithheld {
                instance: "VI_1".into(),
                reason,
            }),
        ]
    );
    // A late answer after the adverts resumed proves nothing.
    p.handle_ownership(secs(t0, 4), "VI_1", ip(VIP), Some(MAC))
        .unwrap();
    assert!(p.gate("VI_1").unwrap().is_open());
}

#[test]
fn ownership_probe_is_wanted_only_from_an_overdue_backup_with_probing_on() {
    let t0 = Instant::now();
    let mut p = healthy(config(), t0);
    p.handle_heartbeat(t0, "VI_1", true).unwrap();
    p.handle_role(t0, "VI_1", Role::Master).unwrap();
    assert!(!p.wants_ownership_probe(t0, "VI_1").unwrap());
    let mut cfg = config();
    cfg.ownership_probe = false;
    let mut q = healthy(cfg, t0);
    q.handle_heartbeat(t0, "VI_1", true).unwrap();
    assert!(!q.wants_ownership_probe(t0, "VI_1").unwrap());
}

#[test]
fn isolated_master_with_a_reachable_peer_is_demoted() {
    let t0 = Instant::now();
    let mut p = healthy(config(), t0);
    p.handle_role(t0, "VI_1", Role::Master).unwrap();
    probes(&mut p, secs(t0, 1), GW, false, 2);
    assert_eq!(
        drain(&mut p),
        vec![
            Verdict::Raised(Incident::Isolated {
                reachable: 0,
                quorum: 1
            }),
            Verdict::Gate {
                instance: "VI_1".into(),
                gate: isolated_reason(0, 1),
            },
            Verdict::Demotion {
                instance: "VI_1".into(),
                weight: 50
            },
            Verdict::Raised(Incident::Demoted {
                instance: "VI_1".into(),
                weight: 50
            }),
        ]
    );
    // Losing the election to the better-connected peer keeps the demotion, or it
    // would preempt straight back.
    p.handle_role(secs(t0, 5), "VI_1", Role::Backup).unwrap();
    assert_eq!(p.demotion("VI_1").unwrap(), 50);
    assert_eq!(drain(&mut p), vec![]);
}

#[test]
fn isolated_master_without_a_peer_releases_its_vips() {
    let t0 = Instant::now();
    let mut p = healthy(config(), t0);
    p.handle_role(t0, "VI_1", Role::Master).unwrap();
    probes(&mut p, secs(t0, 1), PEER, false, 2);
    assert_eq!(drain(&mut p), vec![]);
    probes(&mut p, secs(t0, 3), GW, false, 2);
    let v = drain(&mut p);
    assert!(v.contains(&Verdict::Release {
        instance: "VI_1".into()
    }));
    assert!(v.contains(&Verdict::Raised(Incident::Released {
        instance: "VI_1".into()
    })));
    assert!(!v.iter().any(|v| matches!(v, Verdict::Demotion { .. })));
    assert!(p.released("VI_1").unwrap());
    // The core drops to Backup; no second release, the incident stays open.
    p.handle_role(secs(t0, 5), "VI_1", Role::Backup).unwrap();
    assert_eq!(drain(&mut p), vec![]);
    assert!(p.released("VI_1").unwrap());
}

#[test]
fn an_unknown_peer_is_waited_for_before_demoting_or_releasing() {
    let t0 = Instant::now();
    let mut p = Policy::new(config(), t0).unwrap();
    p.handle_role(t0, "VI_1", Role::Master).unwrap();
    probes(&mut p, t0, GW, false, 2);
    drain(&mut p);
    assert_eq!(p.demotion("VI_1").unwrap(), 0);
    assert!(!p.released("VI_1").unwrap());
    probes(&mut p, secs(t0, 2), PEER, true, 2);
    assert_eq!(p.demotion("VI_1").unwrap(), 50);
}

#[test]
fn recovery_reopens_the_gate_after_rise_successes() {
    let t0 = Instant::now();
    let mut cfg = config();
    cfg.rise = 3;
    let mut p = healthy(cfg, t0);
    p.handle_role(t0, "VI_1", Role::Master).unwrap();
    probes(&mut p, secs(t0, 1), PEER, false, 2);
    probes(&mut p, secs(t0, 3), GW, false, 2);
    drain(&mut p);
    probes(&mut p, secs(t0, 10), GW, true, 2);
    assert_eq!(*p.gate("VI_1").unwrap(), isolated_reason(0, 1));
    assert_eq!(drain(&mut p), vec![]);
    probes(&mut p, secs(t0, 12), GW, true, 1);
    let v = drain(&mut p);
    assert!(v.contains(&Verdict::Gate {
        instance: "VI_1".into(),
        gate: ClaimGate::Open
    }));
    assert!(v.contains(&Verdict::Resolved(Incident::Isolated {
        reachable: 0,
        quorum: 1
    })));
    assert!(v.contains(&Verdict::Resolved(Incident::Released {
        instance: "VI_1".into()
    })));
    assert!(!p.released("VI_1").unwrap());
}

fn reboot_config() -> PolicyConfig {
    let mut cfg = config();
    cfg.on_isolated = OnIsolated::Reboot;
    cfg.peers.clear();
    cfg
}

fn count_reboots(v: &[Verdict]) -> usize {
    v.iter().filter(|v| **v == Verdict::RebootDue).count()
}

#[test]
fn reboot_is_due_exactly_at_reboot_after_and_once_per_episode() {
    let t0 = Instant::now();
    let mut p = healthy(reboot_config(), t0);
    assert_eq!(p.poll_timeout(), None);
    probes(&mut p, secs(t0, 10), GW, false, 2); // isolated at t0+11
    drain(&mut p);
    let deadline = secs(t0, 71);
    assert_eq!(p.poll_timeout(), Some(deadline));
    p.handle_timeout(deadline - Duration::from_millis(1));
    assert_eq!(count_reboots(&drain(&mut p)), 0);
    p.handle_timeout(deadline);
    let v = drain(&mut p);
    assert_eq!(count_reboots(&v), 1);
    assert!(v.contains(&Verdict::Raised(Incident::RebootDue)));
    assert_eq!(p.poll_timeout(), None);
    // Same episode: never again, however long it lasts.
    p.handle_timeout(secs(t0, 10_000));
    probes(&mut p, secs(t0, 10_001), GW, false, 3);
    assert_eq!(count_reboots(&drain(&mut p)), 0);
    // Recovery ends the episode; a new one arms a fresh deadline.
    probes(&mut p, secs(t0, 20_000), GW, true, 2);
    assert!(drain(&mut p).contains(&Verdict::Resolved(Incident::RebootDue)));
    probes(&mut p, secs(t0, 30_000), GW, false, 2);
    assert_eq!(p.poll_timeout(), Some(secs(t0, 30_061)));
}

#[test]
fn a_break_in_the_episode_restarts_the_reboot_clock() {
    let t0 = Instant::now();
    let mut cfg = reboot_config();
    cfg.peers = vec![ip(PEER)];
    let mut p = healthy(cfg, t0);
    probes(&mut p, t0, PEER, false, 2);
    probes(&mut p, secs(t0, 10), GW, false, 2); // alone at t0+11
    // The peer answers for a while: not alone, no deadline.
    probes(&mut p, secs(t0, 40), PEER, true, 2);
    assert_eq!(p.poll_timeout(), None);
    probes(&mut p, secs(t0, 50), PEER, false, 2); // alone again at t0+51
    p.handle_timeout(secs(t0, 71));
    assert_eq!(count_reboots(&drain(&mut p)), 0);
    assert_eq!(p.poll_timeout(), Some(secs(t0, 111)));
}

#[test]
fn no_reboot_with_on_isolated_demote() {
    let t0 = Instant::now();
    let mut cfg = reboot_config();
    cfg.on_isolated = OnIsolated::Demote;
    let mut p = healthy(cfg, t0);
    probes(&mut p, t0, GW, false, 2);
    assert_eq!(p.poll_timeout(), None);
    p.handle_timeout(secs(t0, 100_000));
    assert_eq!(count_reboots(&drain(&mut p)), 0);
}

#[test]
fn on_isolated_none_only_reports() {
    let t0 = Instant::now();
    let mut cfg = reboot_config();
    cfg.on_isolated = OnIsolated::None;
    let mut p = healthy(cfg, t0);
    p.handle_role(t0, "VI_1", Role::Master).unwrap();
    probes(&mut p, t0, GW, false, 2);
    p.handle_timeout(secs(t0, 100_000));
    let v = drain(&mut p);
    assert!(v.contains(&Verdict::Raised(Incident::Isolated {
        reachable: 0,
        quorum: 1
    })));
    assert!(!v.iter().any(|v| matches!(
        v,
        Verdict::Release { .. } | Verdict::Demotion { .. } | Verdict::RebootDue
    )));
}

#[test]
fn manual_hold_closes_the_gate_and_resume_reopens_it() {
    let t0 = Instant::now();
    let mut p = healthy(config(), t0);
    p.set_manual_hold(t0, "VI_1", true).unwrap();
    assert_eq!(
        drain(&mut p),
        vec![Verdict::Gate {
            instance: "VI_1".into(),
            gate: ClaimGate::Closed(WithholdReason::ManualHold),
        }]
    );
    // Hold outranks the other reasons.
    probes(&mut p, t0, GW, false, 2);
    p.handle_heartbeat(t0, "VI_1", true).unwrap();
    p.handle_ownership(t0, "VI_1", ip(VIP), Some(MAC)).unwrap();
    assert_eq!(
        *p.gate("VI_1").unwrap(),
        ClaimGate::Closed(WithholdReason::ManualHold)
    );
    probes(&mut p, t0, GW, true, 2);
    p.handle_heartbeat(t0, "VI_1", false).unwrap();
    drain(&mut p);
    p.set_manual_hold(secs(t0, 1), "VI_1", false).unwrap();
    assert_eq!(
        drain(&mut p),
        vec![Verdict::Gate {
            instance: "VI_1".into(),
            gate: ClaimGate::Open,
        }]
    );
}

#[test]
fn ownership_evidence_outranks_isolation() {
    let t0 = Instant::now();
    let mut p = healthy(config(), t0);
    probes(&mut p, t0, GW, false, 2);
    p.handle_heartbeat(t0, "VI_1", true).unwrap();
    p.handle_ownership(t0, "VI_1", ip(VIP), Some(MAC)).unwrap();
    assert_eq!(
        *p.gate("VI_1").unwrap(),
        ClaimGate::Closed(WithholdReason::VipAnsweredElsewhere {
            vip: ip(VIP),
            mac: MAC
        })
    );
}

#[test]
fn errors_are_typed_never_panics() {
    let t0 = Instant::now();
    let mut p = healthy(config(), t0);
    assert_eq!(
        p.handle_heartbeat(t0, "VI_9", true),
        Err(PolicyError::UnknownInstance("VI_9".into()))
    );
    assert_eq!(
        p.gate("nope").unwrap_err(),
        PolicyError::UnknownInstance("nope".into())
    );
    assert_eq!(
        p.handle_ownership(t0, "VI_1", ip("198.51.100.9"), None),
        Err(PolicyError::NotAVip {
            instance: "VI_1".into(),
            vip: ip("198.51.100.9")
        })
    );
    assert_eq!(
        p.handle_probe(t0, ip("198.51.100.9"), true),
        Err(PolicyError::Reachability(ReachabilityError::UnknownTarget(
            ip("198.51.100.9")
        )))
    );
    let mut cfg = config();
    cfg.quorum = 0;
    assert_eq!(Policy::new(cfg, t0).unwrap_err(), PolicyError::ZeroQuorum);
    let mut cfg = config();
    cfg.quorum = 2;
    assert_eq!(
        Policy::new(cfg, t0).unwrap_err(),
        PolicyError::QuorumAboveReferences {
            quorum: 2,
            references: 1
        }
    );
    let mut cfg = config();
    cfg.instances.push(cfg.instances[0].clone());
    assert_eq!(
        Policy::new(cfg, t0).unwrap_err(),
        PolicyError::DuplicateInstance("VI_1".into())
    );
    let mut cfg = config();
    cfg.rise = 0;
    assert_eq!(
        Policy::new(cfg, t0).unwrap_err(),
        PolicyError::Reachability(ReachabilityError::ZeroRise)
    );
}

#[test]
fn incident_kinds_match_the_design() {
    assert_eq!(Incident::RebootDue.kind(), "rebooting");
    assert_eq!(
        Incident::Isolated {
            reachable: 0,
            quorum: 1
        }
        .kind(),
        "isolated"
    );
    assert_eq!(
        Incident::LinkDown { interfaces: vec![] }.kind(),
        "link_down"
    );
}

fn node_incidents(v: &[Verdict]) -> Vec<String> {
    v.iter()
        .filter_map(|v| match v {
            Verdict::Raised(i @ (Incident::Isolated { .. } | Incident::LinkDown { .. })) => {
                Some(format!("+{}", i.kind()))
            }
            Verdict::Resolved(i @ (Incident::Isolated { .. } | Incident::LinkDown { .. })) => {
                Some(format!("-{}", i.kind()))
            }
            _ => None,
        })
        .collect()
}

/// Issue 19: the node's own link down is `link_down` at once, never
/// `isolated` while the references fail behind it; the link's return resolves
/// it at once, and isolation counts again only after every reference had
/// `fall` probes of its own.
#[test]
fn own_link_down_is_a_local_fault_not_isolation() {
    let t0 = Instant::now();
    let mut p = healthy(config(), t0);
    p.handle_link(secs(t0, 1), Some(vec!["eth0".into()]));
    assert_eq!(node_incidents(&drain(&mut p)), vec!["+link_down"]);
    probes(&mut p, secs(t0, 2), GW, false, 5);
    assert_eq!(p.isolation(), Isolation::Isolated);
    let v = drain(&mut p);
    assert_eq!(node_incidents(&v), Vec::<String>::new(), "{v:?}");
    // The gate still closes and the master still acts: only the words differ.
    assert_eq!(p.gate("VI_1").unwrap(), &isolated_reason(0, 1));
    p.handle_link(secs(t0, 10), Some(vec!["eth0".into()]));
    assert!(drain(&mut p).is_empty(), "the same news twice");

    // Back: resolved at once; one failed probe more is the link's tail.
    p.handle_link(secs(t0, 20), None);
    assert_eq!(node_incidents(&drain(&mut p)), vec!["-link_down"]);
    probes(&mut p, secs(t0, 21), GW, false, 1);
    assert_eq!(node_incidents(&drain(&mut p)), Vec::<String>::new());
    // fall (2) failures after the link came back: the network itself.
    probes(&mut p, secs(t0, 22), GW, false, 1);
    assert_eq!(node_incidents(&drain(&mut p)), vec!["+isolated"]);
    probes(&mut p, secs(t0, 30), GW, true, 2);
    assert_eq!(node_incidents(&drain(&mut p)), vec!["-isolated"]);
}

/// A link that comes back to reachable references pages nothing more; and
/// a link lost while already isolated turns the incident into `link_down`.
#[test]
fn link_back_to_a_working_network_and_link_lost_while_isolated() {
    let t0 = Instant::now();
    let mut p = healthy(config(), t0);
    p.handle_link(secs(t0, 1), Some(vec!["eth0".into()]));
    probes(&mut p, secs(t0, 2), GW, false, 3);
    p.handle_link(secs(t0, 9), None);
    probes(&mut p, secs(t0, 10), GW, true, 2);
    assert_eq!(
        node_incidents(&drain(&mut p)),
        vec!["+link_down", "-link_down"]
    );
    assert_eq!(p.isolation(), Isolation::Connected);

    probes(&mut p, secs(t0, 20), GW, false, 2);
    assert_eq!(node_incidents(&drain(&mut p)), vec!["+isolated"]);
    p.handle_link(secs(t0, 25), Some(vec!["eth0".into()]));
    assert_eq!(
        node_incidents(&drain(&mut p)),
        vec!["-isolated", "+link_down"]
    );
}

// ---- proptest ------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    Probe(usize, bool),
    Heartbeat(usize, bool),
    Ownership(usize, usize, Option<u8>),
    Role(usize, u8),
    Hold(usize, bool),
    Claimed(usize),
    Link(bool),
    Advance(u64),
    Timeout,
}

const TARGETS: [&str; 6] = [
    "192.0.2.1",
    "192.0.2.2",
    "192.0.2.3",
    "192.0.2.5",
    "192.0.2.6",
    "203.0.113.1", // not a target
];
const NAMES: [&str; 3] = ["VI_1", "VI_2", "VI_X"];
const VIPS: [&str; 3] = ["10.0.0.3", "10.0.0.4", "10.0.0.9"];

/// Feeds `op` to `p` (time moves on `now`); errors are fine (unknown names and
/// targets are in the mix), panics are not.
fn apply(p: &mut Policy, op: &Op, now: &mut Instant) -> Result<(), PolicyError> {
    let now_at = *now;
    match *op {
        Op::Probe(t, ok) => p.handle_probe(now_at, ip(TARGETS[t]), ok),
        Op::Heartbeat(i, o) => p.handle_heartbeat(now_at, NAMES[i], o),
        Op::Ownership(i, v, m) => {
            p.handle_ownership(now_at, NAMES[i], ip(VIPS[v]), m.map(|b| [2, 0, 0, 0, 0, b]))
        }
        Op::Role(i, r) => p.handle_role(
            now_at,
            NAMES[i],
            [Role::Master, Role::Backup, Role::Fault][r as usize],
        ),
        Op::Hold(i, h) => p.set_manual_hold(now_at, NAMES[i], h),
        Op::Claimed(i) => p.handle_claim_from_silence(now_at, NAMES[i]),
        Op::Link(up) => {
            p.handle_link(now_at, (!up).then(|| vec!["eth0".to_string()]));
            Ok(())
        }
        Op::Advance(ms) => {
            *now += Duration::from_millis(ms);
            Ok(())
        }
        Op::Timeout => {
            p.handle_timeout(now_at);
            Ok(())
        }
    }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..TARGETS.len(), any::<bool>()).prop_map(|(t, ok)| Op::Probe(t, ok)),
        1 => (0..3usize, any::<bool>()).prop_map(|(i, o)| Op::Heartbeat(i, o)),
        1 => (0..3usize, 0..3usize, proptest::option::of(any::<u8>()))
            .prop_map(|(i, v, m)| Op::Ownership(i, v, m)),
        1 => (0..3usize, 0..3u8).prop_map(|(i, r)| Op::Role(i, r)),
        1 => (0..3usize, any::<bool>()).prop_map(|(i, h)| Op::Hold(i, h)),
        1 => (0..3usize).prop_map(Op::Claimed),
        1 => any::<bool>().prop_map(Op::Link),
        2 => (0..120_000u64).prop_map(Op::Advance),
        1 => Just(Op::Timeout),
    ]
}

proptest! {
    #[test]
    fn random_inputs_never_panic_and_never_act_on_a_quorum(
        n_refs in 0..4usize,
        n_peers in 0..3usize,
        quorum in 1..4usize,
        rise in 1..4u32,
        fall in 1..4u32,
        mode in 0..3u8,
        reboot_after in 0..300_000u64,
        ops in proptest::collection::vec(op(), 0..200),
    ) {
        let t0 = Instant::now();
        let cfg = PolicyConfig {
            references: TARGETS[..n_refs].iter().map(|s| ip(s)).collect(),
            peers: TARGETS[3..3 + n_peers].iter().map(|s| ip(s)).collect(),
            quorum,
            rise,
            fall,
            demote_weight: 50,
            on_isolated: [OnIsolated::Demote, OnIsolated::Reboot, OnIsolated::None][mode as usize],
            reboot_after: Duration::from_millis(reboot_after),
            ownership_probe: true,
            instances: vec![
                InstanceSpec { name: "VI_1".into(), vips: vec![ip(VIPS[0])], yield_backoff: 0 },
                InstanceSpec { name: "VI_2".into(), vips: vec![ip(VIPS[0]), ip(VIPS[1])], yield_backoff: 3 },
            ],
        };
        let Ok(mut p) = Policy::new(cfg, t0) else {
            prop_assert!(n_refs > 0 && quorum > n_refs);
            return Ok(());
        };
        let mut now = t0;
        let mut published = std::collections::HashMap::new();
        for op in ops {
            let _ = apply(&mut p, &op, &mut now);
            if let Some(deadline) = p.poll_timeout() {
                prop_assert!(deadline >= t0);
            }
            let quorate = n_refs == 0 || p.references().reachable() >= quorum;
            while let Some(v) = p.poll_verdict() {
                if let Verdict::Yield { instance, .. } = &v {
                    // Only a master yields, and never through an open gate.
                    prop_assert!(!p.gate(instance).map(ClaimGate::is_open).unwrap_or(true));
                }
                if quorate {
                    prop_assert!(
                        !matches!(v, Verdict::Release { .. } | Verdict::RebootDue),
                        "{v:?} with a quorum of references reachable"
                    );
                }
                if let Verdict::Gate { instance, gate } = v {
                    published.insert(instance, gate);
                }
            }
            // The daemon, applying only changes, ends up where the getters are.
            for name in ["VI_1", "VI_2"] {
                let applied = published.get(name).cloned().unwrap_or_default();
                prop_assert_eq!(p.gate(name).ok(), Some(&applied));
            }
            prop_assert!(!(quorate && p.poll_timeout().is_some()), "reboot armed with a quorum");
        }
    }
}

proptest! {
    /// An input about one instance recomputes that instance alone (O(1) in the
    /// number of instances); a full recompute after it must find nothing more to
    /// say, for any instance.
    #[test]
    fn one_instance_inputs_leave_no_other_verdict_behind(
        n_refs in 0..3usize,
        n_peers in 0..3usize,
        mode in 0..3u8,
        ops in proptest::collection::vec(op(), 0..200),
    ) {
        let t0 = Instant::now();
        let cfg = PolicyConfig {
            references: TARGETS[..n_refs].iter().map(|s| ip(s)).collect(),
            peers: TARGETS[3..3 + n_peers].iter().map(|s| ip(s)).collect(),
            quorum: 1,
            rise: 1,
            fall: 2,
            demote_weight: 50,
            on_isolated: [OnIsolated::Demote, OnIsolated::Reboot, OnIsolated::None][mode as usize],
            reboot_after: Duration::from_secs(30),
            ownership_probe: true,
            instances: (0..3)
                .map(|k| InstanceSpec {
                    name: NAMES[k].into(),
                    vips: vec![ip(VIPS[k]), ip(VIPS[(k + 1) % 3])],
                    yield_backoff: k as u32,
                })
                .collect(),
        };
        let mut p = Policy::new(cfg, t0).expect("valid config");
        let mut now = t0;
        for op in ops {
            let one_instance = matches!(
                op,
                Op::Heartbeat(..) | Op::Ownership(..) | Op::Role(..) | Op::Hold(..)
            );
            let _ = apply(&mut p, &op, &mut now);
            while p.poll_verdict().is_some() {}
            if one_instance {
                p.recompute_all(now);
                // Node verdicts (the reboot deadline passing) may fall due with
                // time alone; only instance verdicts may not be left behind.
                let left: Vec<Verdict> = std::iter::from_fn(|| p.poll_verdict())
                    .filter(|v| {
                        !matches!(
                            v,
                            Verdict::RebootDue
                                | Verdict::Raised(
                                    Incident::RebootDue
                                        | Incident::Isolated { .. }
                                        | Incident::LinkDown { .. }
                                )
                                | Verdict::Resolved(
                                    Incident::RebootDue
                                        | Incident::Isolated { .. }
                                        | Incident::LinkDown { .. }
                                )
                        )
                    })
                    .collect();
                prop_assert!(left.is_empty(), "after {op:?} a full recompute found {left:?}");
            }
        }
    }
}

#[test]
fn claim_withheld_for_isolation_is_raised_once_while_counts_move() {
    let t0 = Instant::now();
    let mut cfg = config();
    cfg.references = vec![ip("192.0.2.1"), ip("192.0.2.2"), ip("198.51.100.1")];
    cfg.quorum = 3;
    let mut p = healthy(cfg, t0);
    probes(&mut p, t0, "192.0.2.1", false, 2);
    p.handle_heartbeat(secs(t0, 2), "VI_1", true).unwrap();
    let raised = |v: &[Verdict]| {
        v.iter()
            .filter(|v| matches!(v, Verdict::Raised(Incident::ClaimWithheld { .. })))
            .count()
    };
    assert_eq!(raised(&drain(&mut p)), 1);
    // A second reference fails: the gate's counts change, the incident does not.
    probes(&mut p, secs(t0, 3), "192.0.2.2", false, 2);
    let v = drain(&mut p);
    assert!(v.contains(&Verdict::Gate {
        instance: "VI_1".into(),
        gate: isolated_reason(1, 3)
    }));
    assert_eq!(raised(&v), 0);
    assert!(
        !v.iter()
            .any(|v| matches!(v, Verdict::Resolved(Incident::ClaimWithheld { .. })))
    );
}

#[test]
fn a_new_master_stint_while_alone_is_released_again() {
    let t0 = Instant::now();
    let mut p = healthy(config(), t0);
    p.handle_role(t0, "VI_1", Role::Master).unwrap();
    probes(&mut p, t0, PEER, false, 2);
    probes(&mut p, t0, GW, false, 2);
    drain(&mut p);
    p.handle_role(secs(t0, 1), "VI_1", Role::Backup).unwrap();
    // e.g. an address owner (priority 255) that the core makes master regardless.
    p.handle_role(secs(t0, 2), "VI_1", Role::Master).unwrap();
    assert_eq!(
        drain(&mut p),
        vec![Verdict::Release {
            instance: "VI_1".into()
        }]
    );
}

#[test]
fn a_clock_stepping_back_does_not_skip_the_reboot_deadline() {
    let t0 = Instant::now();
    let mut p = healthy(reboot_config(), secs(t0, 100));
    probes(&mut p, secs(t0, 110), GW, false, 2); // alone at t0+111
    p.handle_timeout(t0);
    assert_eq!(count_reboots(&drain(&mut p)), 0);
    assert_eq!(p.poll_timeout(), Some(secs(t0, 171)));
    p.handle_timeout(secs(t0, 171));
    assert_eq!(count_reboots(&drain(&mut p)), 1);
}

#[test]
fn one_lost_answer_does_not_reopen_the_gate_but_a_silent_owner_does() {
    let t0 = Instant::now();
    let mut p = healthy(config(), t0);
    let mut at = t0;
    let mut round = |p: &mut Policy, answer: Option<[u8; 6]>| {
        at += Duration::from_millis(500);
        p.handle_ownership(at, "VI_1", ip(VIP), answer).unwrap();
    };
    p.handle_heartbeat(secs(t0, 1), "VI_1", true).unwrap();
    round(&mut p, Some(MAC));
    assert!(!p.gate("VI_1").unwrap().is_open());
    // Lossy segment: answers lost now and then keep the evidence.
    for n in 1..SILENT_ROUNDS_TO_CLEAR {
        round(&mut p, None);
        assert!(
            !p.gate("VI_1").unwrap().is_open(),
            "after {n} silent round(s)"
        );
    }
    round(&mut p, Some(MAC));
    for _ in 1..SILENT_ROUNDS_TO_CLEAR {
        round(&mut p, None);
    }
    assert!(
        !p.gate("VI_1").unwrap().is_open(),
        "the answer reset the count"
    );
    // The owner really went away: enough silent rounds in a row clear it.
    round(&mut p, None);
    assert!(p.gate("VI_1").unwrap().is_open());
}

const MAC_ELSEWHERE: [u8; 6] = MAC;

/// A backup whose master went silent and whose probes all went unanswered: the
/// gate is open and the core claims.
fn claimed_from_silence(t0: Instant) -> Policy {
    let mut p = healthy(config(), t0);
    p.handle_heartbeat(secs(t0, 1), "VI_1", true).unwrap();
    for k in 0..4 {
        p.handle_ownership(
            secs(t0, 1) + Duration::from_millis(500 * k),
            "VI_1",
            ip(VIP),
            None,
        )
        .unwrap();
    }
    assert!(p.gate("VI_1").unwrap().is_open());
    p.handle_role(secs(t0, 4), "VI_1", Role::Master).unwrap();
    p.handle_claim_from_silence(secs(t0, 4), "VI_1").unwrap();
    drain(&mut p);
    p
}

#[test]
fn a_claim_from_silence_yields_when_the_vip_answers_elsewhere() {
    let t0 = Instant::now();
    let mut p = claimed_from_silence(t0);
    // Probing waits out the grace in which a live old master releases on our
    // first advert (its kernel still answers ARP meanwhile); the daemon is told
    // when to wake for it.
    let claim = secs(t0, 4);
    assert!(!p.wants_ownership_probe(claim, "VI_1").unwrap());
    assert_eq!(
        p.probation_probe_at(claim, "VI_1"),
        Some(claim + PROBATION_GRACE)
    );
    assert!(
        p.wants_ownership_probe(claim + PROBATION_GRACE, "VI_1")
            .unwrap()
    );
    assert_eq!(p.probation_probe_at(claim + PROBATION_GRACE, "VI_1"), None);
    p.handle_ownership(claim + PROBATION_GRACE, "VI_1", ip(VIP), None)
        .unwrap();
    assert_eq!(drain(&mut p), vec![]);
    let at = secs(t0, 5);
    p.handle_ownership(at, "VI_1", ip(VIP), Some(MAC_ELSEWHERE))
        .unwrap();
    let reason = WithholdReason::VipAnsweredElsewhere {
        vip: ip(VIP),
        mac: MAC_ELSEWHERE,
    };
    // The gate closes before the yield, so the released core waits behind it.
    assert_eq!(
        drain(&mut p),
        vec![
            Verdict::Gate {
                instance: "VI_1".into(),
                gate: ClaimGate::Closed(reason.clone()),
            },
            Verdict::Yield {
                instance: "VI_1".into(),
                vip: ip(VIP),
                mac: MAC_ELSEWHERE,
            },
        ]
    );
    assert!(p.overdue("VI_1").unwrap());
    // The core goes Backup: the evidence carries over, the claim is withheld and
    // probing goes on.
    p.handle_role(at, "VI_1", Role::Backup).unwrap();
    assert_eq!(
        drain(&mut p),
        vec![Verdict::Raised(Incident::ClaimWithheld {
            instance: "VI_1".into(),
            reason: reason.clone(),
        })]
    );
    assert!(p.wants_ownership_probe(at, "VI_1").unwrap());
    // After a yield, clearing takes twice the silent rounds.
    let mut t = at;
    for _ in 0..(2 * SILENT_ROUNDS_TO_CLEAR - 1) {
        t += Duration::from_millis(500);
        p.handle_ownership(t, "VI_1", ip(VIP), None).unwrap();
    }
    assert!(!p.gate("VI_1").unwrap().is_open());
    p.handle_ownership(t + Duration::from_millis(500), "VI_1", ip(VIP), None)
        .unwrap();
    assert!(p.gate("VI_1").unwrap().is_open());
}

#[test]
fn a_probation_that_passes_clean_ends_and_later_answers_are_ignored() {
    let t0 = Instant::now();
    let mut p = claimed_from_silence(t0);
    let end = secs(t0, 4) + PROBATION;
    assert!(
        p.wants_ownership_probe(end - Duration::from_millis(1), "VI_1")
            .unwrap()
    );
    assert!(!p.wants_ownership_probe(end, "VI_1").unwrap());
    p.handle_ownership(end, "VI_1", ip(VIP), None).unwrap();
    p.handle_ownership(
        end + Duration::from_secs(1),
        "VI_1",
        ip(VIP),
        Some(MAC_ELSEWHERE),
    )
    .unwrap();
    assert_eq!(drain(&mut p), vec![], "a master off probation never yields");
    assert!(p.gate("VI_1").unwrap().is_open());
}

#[test]
fn only_a_claim_from_silence_is_on_probation() {
    let t0 = Instant::now();
    // Preemption, startup as owner, handover: Master without the claim call.
    let mut p = healthy(config(), t0);
    p.handle_role(secs(t0, 1), "VI_1", Role::Master).unwrap();
    assert!(!p.wants_ownership_probe(secs(t0, 1), "VI_1").unwrap());
    p.handle_ownership(secs(t0, 2), "VI_1", ip(VIP), Some(MAC_ELSEWHERE))
        .unwrap();
    assert_eq!(drain(&mut p), vec![]);
    // Probing off: no probation either.
    let mut cfg = config();
    cfg.ownership_probe = false;
    let mut q = healthy(cfg, t0);
    q.handle_role(secs(t0, 1), "VI_1", Role::Master).unwrap();
    q.handle_claim_from_silence(secs(t0, 1), "VI_1").unwrap();
    assert!(!q.wants_ownership_probe(secs(t0, 1), "VI_1").unwrap());
    // A claim call for a Backup (a stale call) starts nothing.
    let mut b = healthy(config(), t0);
    b.handle_claim_from_silence(secs(t0, 1), "VI_1").unwrap();
    assert!(!b.wants_ownership_probe(secs(t0, 1), "VI_1").unwrap());
}

#[test]
fn an_advert_heard_on_probation_leaves_it_to_vrrp() {
    let t0 = Instant::now();
    let mut p = claimed_from_silence(t0);
    p.handle_heartbeat(secs(t0, 5), "VI_1", false).unwrap();
    assert!(!p.wants_ownership_probe(secs(t0, 5), "VI_1").unwrap());
    p.handle_ownership(secs(t0, 5), "VI_1", ip(VIP), Some(MAC_ELSEWHERE))
        .unwrap();
    assert_eq!(drain(&mut p), vec![]);
}

#[test]
fn yields_in_a_row_back_off_and_adverts_reset_the_count() {
    let t0 = Instant::now();
    let mut p = claimed_from_silence(t0);
    let mut t = secs(t0, 5);
    let mut clear_rounds = Vec::new();
    for _ in 0..5 {
        p.handle_ownership(t, "VI_1", ip(VIP), Some(MAC_ELSEWHERE))
            .unwrap();
        p.handle_role(t, "VI_1", Role::Backup).unwrap();
        let mut n = 0;
        while !p.gate("VI_1").unwrap().is_open() {
            t += Duration::from_millis(500);
            p.handle_ownership(t, "VI_1", ip(VIP), None).unwrap();
            n += 1;
            assert!(n < 1000, "the evidence never clears");
        }
        clear_rounds.push(n);
        p.handle_role(t, "VI_1", Role::Master).unwrap();
        p.handle_claim_from_silence(t, "VI_1").unwrap();
    }
    let s = SILENT_ROUNDS_TO_CLEAR;
    assert_eq!(clear_rounds, vec![2 * s, 4 * s, 8 * s, 8 * s, 8 * s]);
    // The old master heard again: the count starts over.
    p.handle_heartbeat(t, "VI_1", false).unwrap();
    p.handle_role(t, "VI_1", Role::Backup).unwrap();
    p.handle_heartbeat(t, "VI_1", true).unwrap();
    p.handle_ownership(t, "VI_1", ip(VIP), Some(MAC_ELSEWHERE))
        .unwrap();
    let mut n = 0;
    while !p.gate("VI_1").unwrap().is_open() {
        t += Duration::from_millis(500);
        p.handle_ownership(t, "VI_1", ip(VIP), None).unwrap();
        n += 1;
    }
    assert_eq!(n, s);
}

#[test]
fn the_vrrp_order_sets_the_backoff() {
    let lb01 = yield_backoff(150, ip("192.0.2.5"));
    let lb02 = yield_backoff(100, ip("192.0.2.6"));
    assert_eq!((lb01, lb02), (14, 21));
    assert_ne!(
        yield_backoff(100, ip("192.0.2.5")),
        yield_backoff(100, ip("192.0.2.6")),
        "equal priorities still differ"
    );
    assert_eq!(yield_backoff(255, ip("::4")), 0);
}

/// Two nodes whose VRRP is blocked both ways while ARP works claim blind in the
/// same round (the deploy-day firewall). Both yield; the better one (smaller
/// backoff) claims again first, passes its probation and keeps the VIP; the
/// other sees it answer and withholds for good. Simulated in 500 ms rounds.
#[test]
fn two_blind_claimants_settle_on_the_better_node() {
    let t0 = Instant::now();
    let macs = [[2, 0, 0, 0, 0, 5], [2, 0, 0, 0, 0, 6]];
    let mut nodes: Vec<Policy> = [14, 21]
        .into_iter()
        .map(|backoff| {
            let mut cfg = config();
            cfg.instances[0].yield_backoff = backoff;
            let mut p = healthy(cfg, t0);
            p.handle_heartbeat(t0, "VI_1", true).unwrap();
            drain(&mut p);
            p
        })
        .collect();
    let mut master = [false, false];
    let mut dual_rounds = 0;
    let claim_from = t0 + Duration::from_millis(3500);
    for round in 1..=200u32 {
        let t = t0 + Duration::from_millis(500) * round;
        // Both probe at once: answers come from who held the VIP as the round began.
        let holding = master;
        for n in 0..2 {
            let other = 1 - n;
            let p = &mut nodes[n];
            if p.wants_ownership_probe(t, "VI_1").unwrap() {
                let answer = holding[other].then_some(macs[other]);
                for vip in [VIP, "192.0.2.4"] {
                    p.handle_ownership(t, "VI_1", ip(vip), answer).unwrap();
                }
            }
            for v in drain(p) {
                if let Verdict::Yield { .. } = v {
                    master[n] = false;
                    p.handle_role(t, "VI_1", Role::Backup).unwrap();
                }
            }
            // Both down timers ran out long ago: the core claims as soon as
            // the gate lets it.
            if !master[n] && t >= claim_from && p.gate("VI_1").unwrap().is_open() {
                master[n] = true;
                p.handle_role(t, "VI_1", Role::Master).unwrap();
                p.handle_claim_from_silence(t, "VI_1").unwrap();
            }
            drain(p);
        }
        if master == [true, true] {
            dual_rounds += 1;
        }
    }
    assert_eq!(master, [true, false], "the better node holds the VIP");
    assert!(
        !nodes[1].gate("VI_1").unwrap().is_open(),
        "the other withholds"
    );
    assert!(dual_rounds <= 2, "{dual_rounds} rounds with two owners");
}

#[test]
fn an_unconfirmed_fence_closes_every_gate_until_it_is_confirmed() {
    let t0 = Instant::now();
    let mut p = healthy(config(), t0);
    p.set_fence_gate(secs(t0, 1), Some(ip(PEER)));
    assert_eq!(
        p.gate("VI_1").unwrap(),
        &ClaimGate::Closed(WithholdReason::FenceUnconfirmed { peer: ip(PEER) })
    );
    // Isolation names the stronger evidence while both hold.
    probes(&mut p, secs(t0, 2), GW, false, 3);
    assert_eq!(p.gate("VI_1").unwrap(), &isolated_reason(0, 1));
    probes(&mut p, secs(t0, 10), GW, true, 3);
    assert!(!p.gate("VI_1").unwrap().is_open());
    p.set_fence_gate(secs(t0, 20), None);
    assert!(p.gate("VI_1").unwrap().is_open());
}

#[test]
fn a_confirmed_fence_clears_the_fenced_hosts_evidence_at_once() {
    let t0 = Instant::now();
    let mut p = healthy(config(), t0);
    let mac = [2, 0, 0, 0, 0, 5];
    p.handle_heartbeat(secs(t0, 10), "VI_1", true).unwrap();
    p.handle_ownership(secs(t0, 11), "VI_1", ip(VIP), Some(mac))
        .unwrap();
    assert!(matches!(
        p.gate("VI_1").unwrap(),
        ClaimGate::Closed(WithholdReason::VipAnsweredElsewhere { .. })
    ));
    // Another host's answers stay; the fenced one's go.
    p.handle_fenced(secs(t0, 12), [2, 0, 0, 0, 0, 9]);
    assert!(!p.gate("VI_1").unwrap().is_open());
    p.handle_fenced(secs(t0, 12), mac);
    assert!(p.gate("VI_1").unwrap().is_open(), "{:?}", p.gate("VI_1"));
    // It answers again (powered back on): withheld again.
    p.handle_ownership(secs(t0, 13), "VI_1", ip(VIP), Some(mac))
        .unwrap();
    assert!(!p.gate("VI_1").unwrap().is_open());
}
