//! The classifier on simulated time.

use super::*;

const MAC1: &str = "02:00:00:00:00:05";

fn vip() -> IpAddr {
    "192.0.2.3".parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn classifier(role: ExpectedRole) -> Classifier {
    Classifier::new(config(role))
}

fn config(role: ExpectedRole) -> ClassifierConfig {
    ClassifierConfig {
        node: "lb02".into(),
        vips: vec![WatchedVip {
            vip: vip(),
            interface: "eth0".into(),
            role,
            instance: None,
            expected: None,
        }],
        owner_memory: ms(3000),
        advert_memory: ms(3000),
        probe_every: ms(1000),
        probe_idle: ms(10_000),
        clear_hold: ms(3000),
        confirm_after: ms(250),
        confirm_after_preemption: ms(600),
    }
}

fn advert(src: &str, vrid: u8, pass: &[u8; 8]) -> AdvertSeen {
    AdvertSeen {
        src: ip(src),
        vrid,
        priority: 150,
        version: 2,
        interval: ms(1000),
        vips: vec![vip()],
        auth: AuthSeen::Pass(*pass),
        from_self: src == "192.0.2.6",
    }
}

/// The confirmation a first sighting of two owners asks for: a probe 250 ms
/// later that still finds `mac`. Returns the time after it.
fn confirm(c: &mut Classifier, first: Instant, mac: &str) -> Instant {
    let at = first + ms(250);
    c.handle_timeout(at);
    assert!(
        outputs(c).contains(&Output::Probe { vip: vip() }),
        "a confirming probe is asked for"
    );
    c.handle_probe_result(at + ms(200), vip(), &[mac.into()]);
    at + ms(200)
}

fn outputs(c: &mut Classifier) -> Vec<Output> {
    std::iter::from_fn(|| c.poll_output()).collect()
}

fn raised(out: &[Output]) -> Vec<(IncidentKind, Severity, String)> {
    raises(out)
        .into_iter()
        .map(|r| (r.kind, r.severity, r.cause))
        .collect()
}

#[test]
fn a_vip_arriving_asks_for_a_probe_at_once() {
    let t = Instant::now();
    let mut c = classifier(ExpectedRole::Any);
    c.handle_local(t, vip(), true);
    assert_eq!(outputs(&mut c), vec![Output::Probe { vip: vip() }]);
    assert_eq!(c.poll_timeout(), Some(t + ms(1000)));
}

#[test]
fn the_vip_here_and_another_mac_answering_is_split_brain() {
    let t = Instant::now();
    let mut c = classifier(ExpectedRole::Backup);
    c.handle_advert(t, advert("192.0.2.5", 51, b"1111\0\0\0\0"));
    c.handle_local(t, vip(), true);
    outputs(&mut c);
    c.handle_probe_result(t + ms(200), vip(), &[MAC1.to_uppercase()]);
    assert!(
        raised(&outputs(&mut c)).is_empty(),
        "not before the confirmation"
    );
    confirm(&mut c, t + ms(200), MAC1);
    let r = raised(&outputs(&mut c));
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].0, IncidentKind::SplitBrain);
    assert_eq!(r[0].1, Severity::Critical);
    assert!(
        r[0].2.contains(MAC1) && r[0].2.contains("lb02"),
        "{}",
        r[0].2
    );
    assert!(r[0].2.contains("192.0.2.5"), "{}", r[0].2);
}

#[test]
fn two_owners_with_two_vrids_is_named_a_vrid_mismatch() {
    let t = Instant::now();
    let mut c = classifier(ExpectedRole::Backup);
    c.handle_advert(t, advert("192.0.2.5", 51, b"1111\0\0\0\0"));
    c.handle_advert(t, advert("192.0.2.6", 52, b"1111\0\0\0\0"));
    let r = raised(&outputs(&mut c));
    assert_eq!(r[0].0, IncidentKind::VridMismatch);
    assert_eq!(r[0].1, Severity::Warning, "no second owner yet");
    c.handle_local(t, vip(), true);
    c.handle_foreign_owner(t + ms(10), vip(), MAC1);
    confirm(&mut c, t + ms(10), MAC1);
    let r = raised(&outputs(&mut c));
    let last = r.last().unwrap();
    assert_eq!(
        (last.0, last.1),
        (IncidentKind::VridMismatch, Severity::Critical)
    );
    assert!(
        last.2.contains("VRID 51") && last.2.contains("VRID 52"),
        "{}",
        last.2
    );
}

#[test]
fn different_passwords_are_an_auth_mismatch_and_never_printed() {
    let t = Instant::now();
    let mut c = classifier(ExpectedRole::Backup);
    c.handle_advert(t, advert("192.0.2.5", 51, b"1111\0\0\0\0"));
    c.handle_advert(t, advert("192.0.2.6", 51, b"2222\0\0\0\0"));
    c.handle_local(t, vip(), true);
    c.handle_foreign_owner(t, vip(), MAC1);
    confirm(&mut c, t, MAC1);
    let r = raised(&outputs(&mut c));
    let last = r.last().unwrap();
    assert_eq!(last.0, IncidentKind::AuthMismatch);
    assert!(
        !last.2.contains("1111") && !last.2.contains("2222"),
        "{}",
        last.2
    );
}

#[test]
fn a_plain_failover_on_a_backup_is_a_failover_warning() {
    let t = Instant::now();
    let mut c = classifier(ExpectedRole::Backup);
    c.handle_advert(t, advert("192.0.2.5", 51, b"1111\0\0\0\0"));
    // The master leaves with priority 0, then the VIP arrives here.
    let mut bye = advert("192.0.2.5", 51, b"1111\0\0\0\0");
    bye.priority = 0;
    c.handle_advert(t + ms(100), bye);
    c.handle_local(t + ms(700), vip(), true);
    c.handle_probe_result(t + ms(900), vip(), &[]);
    let r = raised(&outputs(&mut c));
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(
        (r[0].0, r[0].1),
        (IncidentKind::Failover, Severity::Warning)
    );
    // Our own adverts now (lb02 is master): still one source, no split brain.
    for k in 1..10 {
        c.handle_advert(
            t + ms(700 + 1000 * k),
            advert("192.0.2.6", 51, b"1111\0\0\0\0"),
        );
        c.handle_timeout(t + ms(700 + 1000 * k));
    }
    assert!(raised(&outputs(&mut c)).is_empty());
    // The VIP goes back: resolved after the hold.
    c.handle_local(t + ms(11_000), vip(), false);
    c.handle_timeout(t + ms(13_999));
    assert!(
        !outputs(&mut c)
            .iter()
            .any(|o| matches!(o, Output::Resolve { .. }))
    );
    c.handle_timeout(t + ms(14_000));
    assert_eq!(
        outputs(&mut c),
        vec![Output::Resolve {
            key: key_for(vip())
        }]
    );
}

#[test]
fn a_steady_master_moves_only_the_deadline_and_is_forgotten_on_time() {
    let t = Instant::now();
    let mut c = classifier(ExpectedRole::Backup);
    for k in 0..10 {
        c.handle_advert(t + ms(1000 * k), advert("192.0.2.5", 51, b"1111\0\0\0\0"));
        assert_eq!(c.poll_timeout(), Some(t + ms(1000 * k + 3000)));
    }
    assert!(outputs(&mut c).is_empty());
    // Silent after 9 s: forgotten when its memory ends, not before.
    c.handle_timeout(t + ms(11_999));
    assert_eq!(c.poll_timeout(), Some(t + ms(12_000)));
    c.handle_timeout(t + ms(12_000));
    assert_eq!(c.poll_timeout(), None);
    // So the VIP arriving now is a failover, not a VIP on a backup.
    c.handle_local(t + ms(12_100), vip(), true);
    c.handle_probe_result(t + ms(12_300), vip(), &[]);
    for k in 1..4 {
        c.handle_timeout(t + ms(12_300 + 1000 * k));
    }
    let r = raised(&outputs(&mut c));
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].0, IncidentKind::Failover);
}

#[test]
fn the_vip_here_while_the_master_still_advertises_is_vip_on_backup() {
    let t = Instant::now();
    let mut c = classifier(ExpectedRole::Backup);
    c.handle_local(t, vip(), true);
    c.handle_probe_result(t + ms(200), vip(), &[]);
    for k in 0..4 {
        c.handle_advert(
            t + ms(300 + 1000 * k),
            advert("192.0.2.5", 51, b"1111\0\0\0\0"),
        );
    }
    let r = raised(&outputs(&mut c));
    assert_eq!(r.last().unwrap().0, IncidentKind::VipOnBackup);
}

#[test]
fn a_handover_is_not_two_masters_but_two_concurrent_masters_are() {
    let t = Instant::now();
    let mut c = classifier(ExpectedRole::Any);
    // A advertises, then B takes over and A falls silent: overlap < an interval.
    for k in 0..5 {
        c.handle_advert(t + ms(1000 * k), advert("192.0.2.5", 51, b"1111\0\0\0\0"));
    }
    for k in 4..10 {
        c.handle_advert(
            t + ms(1000 * k + 500),
            advert("192.0.2.6", 51, b"1111\0\0\0\0"),
        );
        c.handle_timeout(t + ms(1000 * k + 500));
    }
    assert!(raised(&outputs(&mut c)).is_empty());
    // Now A comes back while B keeps going: both master.
    for k in 10..14 {
        c.handle_advert(t + ms(1000 * k), advert("192.0.2.5", 51, b"1111\0\0\0\0"));
        c.handle_advert(
            t + ms(1000 * k + 500),
            advert("192.0.2.6", 51, b"1111\0\0\0\0"),
        );
    }
    let r = raised(&outputs(&mut c));
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(
        (r[0].0, r[0].1),
        (IncidentKind::SplitBrain, Severity::Critical)
    );
    assert!(
        r[0].2.contains("two masters advertise VRID 51"),
        "{}",
        r[0].2
    );
}

#[test]
fn one_lost_probe_answer_does_not_flap_the_incident() {
    let t = Instant::now();
    let mut c = classifier(ExpectedRole::Any);
    c.handle_local(t, vip(), true);
    c.handle_probe_result(t, vip(), &[MAC1.into()]);
    confirm(&mut c, t, MAC1);
    assert_eq!(raised(&outputs(&mut c)).len(), 1);
    c.handle_probe_result(t + ms(1000), vip(), &[]);
    c.handle_probe_result(t + ms(2000), vip(), &[MAC1.into()]);
    c.handle_timeout(t + ms(6000));
    let out = outputs(&mut c);
    assert!(
        !out.iter()
            .any(|o| matches!(o, Output::Resolve { .. } | Output::Raise(_))),
        "{out:?}"
    );
}

#[test]
fn unknown_vips_are_ignored() {
    let t = Instant::now();
    let mut c = classifier(ExpectedRole::Any);
    c.handle_local(t, ip("192.0.2.99"), true);
    c.handle_foreign_owner(t, ip("192.0.2.99"), MAC1);
    assert!(outputs(&mut c).is_empty());
}

#[test]
fn a_preemption_overlap_is_not_split_brain() {
    let t = Instant::now();
    let mut c = classifier(ExpectedRole::Backup);
    c.handle_local(t, vip(), true);
    c.handle_probe_result(t + ms(200), vip(), &[]);
    outputs(&mut c);
    // The old master's GARP arrives while the VIP is still here, then it leaves.
    c.handle_foreign_owner(t + ms(5000), vip(), MAC1);
    c.handle_local(t + ms(5002), vip(), false);
    c.handle_timeout(t + ms(5250));
    let out = outputs(&mut c);
    assert!(raised(&out).is_empty(), "{out:?}");
    // Or it stays but the confirming probe finds nobody else.
    let mut c = classifier(ExpectedRole::Any);
    c.handle_local(t, vip(), true);
    c.handle_foreign_owner(t + ms(10), vip(), MAC1);
    c.handle_timeout(t + ms(260));
    c.handle_probe_result(t + ms(460), vip(), &[]);
    assert!(raised(&outputs(&mut c)).is_empty());
}

#[test]
fn no_failover_verdict_before_the_first_probe_answers() {
    let t = Instant::now();
    let mut c = classifier(ExpectedRole::Backup);
    c.handle_local(t, vip(), true);
    assert!(
        raised(&outputs(&mut c)).is_empty(),
        "nothing before the probe"
    );
    c.handle_probe_result(t + ms(200), vip(), &[]);
    assert_eq!(raised(&outputs(&mut c))[0].0, IncidentKind::Failover);
    assert!(c.is_raised(&key_for(vip())));
}

/// A classifier inside `splitguard run`: it knows what instance VI_1 here sends.
fn classifier_expecting(vrid: u8, pass: &[u8; 8], interval: Duration) -> Classifier {
    let mut cfg = config(ExpectedRole::Any);
    cfg.vips[0].instance = Some("VI_1".into());
    cfg.vips[0].expected = Some(ExpectedAdvert {
        vrid,
        version: 2,
        interval,
        auth: AuthSeen::Pass(*pass),
    });
    Classifier::new(cfg)
}

#[test]
fn a_silent_backup_names_a_vrid_it_does_not_share() {
    let t = Instant::now();
    let mut c = classifier_expecting(52, b"1111\0\0\0\0", ms(1000));
    c.handle_advert(t, advert("192.0.2.5", 51, b"1111\0\0\0\0"));
    let r = raised(&outputs(&mut c));
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(
        (r[0].0, r[0].1),
        (IncidentKind::VridMismatch, Severity::Warning)
    );
    assert!(
        r[0].2.contains("192.0.2.5 under VRID 51") && r[0].2.contains("VI_1 here uses VRID 52"),
        "{}",
        r[0].2
    );
}

#[test]
fn a_silent_backup_names_other_authentication_without_printing_it() {
    let t = Instant::now();
    let mut c = classifier_expecting(51, b"2222\0\0\0\0", ms(1000));
    c.handle_advert(t, advert("192.0.2.5", 51, b"1111\0\0\0\0"));
    let r = raised(&outputs(&mut c));
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].0, IncidentKind::AuthMismatch);
    assert!(
        !r[0].2.contains("1111") && !r[0].2.contains("2222"),
        "{}",
        r[0].2
    );
}

#[test]
fn a_silent_backup_names_another_interval() {
    let t = Instant::now();
    let mut c = classifier_expecting(51, b"1111\0\0\0\0", ms(2000));
    c.handle_advert(t, advert("192.0.2.5", 51, b"1111\0\0\0\0"));
    let r = raised(&outputs(&mut c));
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].0, IncidentKind::AdvertIntervalMismatch);
}

#[test]
fn adverts_that_match_the_instance_here_raise_nothing() {
    let t = Instant::now();
    let mut c = classifier_expecting(51, b"1111\0\0\0\0", ms(1000));
    c.handle_advert(t, advert("192.0.2.5", 51, b"1111\0\0\0\0"));
    // Our own adverts are never compared with ourselves.
    let mut own = advert("192.0.2.6", 51, b"1111\0\0\0\0");
    own.from_self = true;
    c.handle_advert(t, own);
    assert!(raised(&outputs(&mut c)).is_empty());
}

#[test]
fn an_answer_after_the_confirmation_delay_confirms_at_once() {
    let t = Instant::now();
    let mut c = classifier(ExpectedRole::Any);
    c.handle_local(t, vip(), true);
    outputs(&mut c);
    c.handle_foreign_owner(t + ms(1), vip(), MAC1);
    assert!(
        raised(&outputs(&mut c)).is_empty(),
        "not at the first sighting"
    );
    c.handle_foreign_owner(t + ms(100), vip(), MAC1);
    assert!(
        raised(&outputs(&mut c)).is_empty(),
        "not before confirm_after"
    );
    // The confirming probe goes out at +251 ms; its answer arrives 1 ms later
    // and counts without waiting for the round to end.
    c.handle_foreign_owner(t + ms(252), vip(), MAC1);
    let r = raised(&outputs(&mut c));
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].0, IncidentKind::SplitBrain);
}

#[test]
fn preempting_a_lower_master_gets_the_longer_confirmation() {
    let t = Instant::now();
    let mut c = classifier(ExpectedRole::Any);
    // lb02 (priority 100) has been master; we (lb01, 150) preempt it.
    let mut theirs = advert("192.0.2.5", 51, b"1111\0\0\0\0");
    theirs.priority = 100;
    c.handle_advert(t, theirs);
    let mut ours = advert("192.0.2.6", 51, b"1111\0\0\0\0");
    ours.priority = 150;
    c.handle_advert(t + ms(1000), ours);
    c.handle_local(t + ms(1000), vip(), true);
    outputs(&mut c);
    c.handle_foreign_owner(t + ms(1001), vip(), MAC1);
    // Past the normal 250 ms but within the preemption's 600 ms: no page.
    c.handle_foreign_owner(t + ms(1300), vip(), MAC1);
    assert!(raised(&outputs(&mut c)).is_empty());
    c.handle_foreign_owner(t + ms(1602), vip(), MAC1);
    let r = raised(&outputs(&mut c));
    assert_eq!(
        r.first().map(|r| r.0),
        Some(IncidentKind::SplitBrain),
        "{r:?}"
    );
}

#[test]
fn a_higher_master_advertising_all_along_gets_the_short_confirmation() {
    let t = Instant::now();
    let mut c = classifier(ExpectedRole::Backup);
    // lb01 (150) advertised all along; the VIP still came here: S2.
    c.handle_advert(t, advert("192.0.2.5", 51, b"1111\0\0\0\0"));
    let mut ours = advert("192.0.2.6", 51, b"1111\0\0\0\0");
    ours.priority = 100;
    c.handle_advert(t + ms(3000), ours);
    c.handle_local(t + ms(3000), vip(), true);
    outputs(&mut c);
    c.handle_foreign_owner(t + ms(3001), vip(), MAC1);
    c.handle_foreign_owner(t + ms(3252), vip(), MAC1);
    let r = raised(&outputs(&mut c));
    assert_eq!(
        r.first().map(|r| r.0),
        Some(IncidentKind::SplitBrain),
        "{r:?}"
    );
}

mod deadlines {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Local(usize, bool),
        Foreign(usize, u8),
        Probed(usize, bool),
        Advert(usize, u8, u8),
        Advance(u64),
        Timeout,
    }

    const VIPS: [&str; 3] = ["192.0.2.3", "192.0.2.4", "192.0.2.7"];

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..3usize, any::<bool>()).prop_map(|(v, p)| Op::Local(v, p)),
            (0..3usize, 0..3u8).prop_map(|(v, m)| Op::Foreign(v, m)),
            (0..3usize, any::<bool>()).prop_map(|(v, a)| Op::Probed(v, a)),
            (0..3usize, 0..3u8, 0..2u8).prop_map(|(v, vrid, prio)| Op::Advert(v, vrid, prio)),
            (0..5000u64).prop_map(Op::Advance),
            Just(Op::Timeout),
        ]
    }

    proptest! {
        /// The next timeout is kept per VIP as things change (not found by a
        /// scan of every VIP): it must always be the earliest of them all, and
        /// a timeout must visit every VIP that is due.
        #[test]
        fn the_next_timeout_is_the_earliest_of_every_vip(ops in proptest::collection::vec(op(), 0..150)) {
            let mut cfg = config(ExpectedRole::Backup);
            cfg.vips = VIPS
                .iter()
                .map(|v| WatchedVip {
                    vip: ip(v),
                    interface: "eth0".into(),
                    role: ExpectedRole::Backup,
                    instance: None,
                    expected: None,
                })
                .collect();
            let mut c = Classifier::new(cfg);
            let mut now = Instant::now();
            for op in ops {
                match op {
                    Op::Local(v, p) => c.handle_local(now, ip(VIPS[v]), p),
                    Op::Foreign(v, m) => c.handle_foreign_owner(now, ip(VIPS[v]), &format!("02:00:00:00:00:0{m}")),
                    Op::Probed(v, any) => {
                        let owners: Vec<String> = if any { vec![MAC1.into()] } else { Vec::new() };
                        c.handle_probe_result(now, ip(VIPS[v]), &owners)
                    }
                    Op::Advert(v, vrid, prio) => {
                        let mut a = advert("192.0.2.5", 51 + vrid, b"1111\0\0\0\0");
                        a.vips = vec![ip(VIPS[v]), ip(VIPS[(v + 1) % 3])];
                        a.priority = prio * 100;
                        c.handle_advert(now, a)
                    }
                    Op::Advance(n) => now += ms(n),
                    Op::Timeout => c.handle_timeout(now),
                }
                let _ = outputs(&mut c);
                let scanned = (0..VIPS.len()).filter_map(|i| c.deadline_of(i)).min();
                prop_assert_eq!(c.poll_timeout(), scanned, "after {:?}", op);
                if matches!(op, Op::Timeout) {
                    prop_assert!(c.poll_timeout().is_none_or(|t| t > now), "a due VIP was not visited");
                }
            }
        }
    }
}

/// VRRPv3 over IPv6: a backup takes the master's interval, so two intervals
/// split nothing. Alone they are a warning worded for v3; with two owners the
/// page is the split brain, not the interval.
#[test]
fn a_vrrpv3_interval_mismatch_warns_and_never_explains_two_owners() {
    let v3 = |src: &str, interval: u64| AdvertSeen {
        version: 3,
        interval: ms(interval),
        auth: AuthSeen::None,
        ..advert(src, 51, b"\0\0\0\0\0\0\0\0")
    };
    let t = Instant::now();
    let mut c = classifier(ExpectedRole::Backup);
    c.handle_advert(t, v3("192.0.2.5", 1000));
    c.handle_advert(t, v3("192.0.2.6", 2000));
    let r = raised(&outputs(&mut c));
    assert_eq!(
        (r[0].0, r[0].1),
        (IncidentKind::AdvertIntervalMismatch, Severity::Warning),
        "{r:?}"
    );
    assert!(
        r[0].2.contains("VRRPv3 backup takes the master's interval"),
        "{}",
        r[0].2
    );
    c.handle_local(t, vip(), true);
    c.handle_foreign_owner(t + ms(10), vip(), MAC1);
    confirm(&mut c, t + ms(10), MAC1);
    let r = raised(&outputs(&mut c));
    let last = r.last().expect("raised");
    assert_eq!(
        (last.0, last.1),
        (IncidentKind::SplitBrain, Severity::Critical),
        "{r:?}"
    );
    // VRRPv2 nodes drop adverts with another interval: there it is the cause.
    let mut c = classifier(ExpectedRole::Backup);
    let mut slow = advert("192.0.2.6", 51, b"1111\0\0\0\0");
    slow.interval = ms(2000);
    c.handle_advert(t, advert("192.0.2.5", 51, b"1111\0\0\0\0"));
    c.handle_advert(t, slow);
    c.handle_local(t, vip(), true);
    c.handle_foreign_owner(t + ms(10), vip(), MAC1);
    confirm(&mut c, t + ms(10), MAC1);
    let r = raised(&outputs(&mut c));
    let last = r.last().expect("raised");
    assert_eq!(
        (last.0, last.1),
        (IncidentKind::AdvertIntervalMismatch, Severity::Critical),
        "{r:?}"
    );
}

fn invalid(src: &str, vrid: Option<u8>, vips: Vec<IpAddr>, reason: &'static str) -> InvalidAdvert {
    InvalidAdvert {
        src: ip(src),
        vrid,
        vips,
        reason,
        detail: format!("{reason} is wrong"),
        from_self: false,
    }
}

fn raises(out: &[Output]) -> Vec<Raise> {
    out.iter()
        .filter_map(|o| match o {
            Output::Raise(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

/// Issue 19: a stream of frames that fail the link rule is its own warning
/// under its own key, naming the source and the reasons; two frames are not a
/// stream; it resolves once the source has been quiet for the advert memory
/// and the clear hold.
#[test]
fn a_stream_of_invalid_adverts_is_its_own_warning_and_resolves() {
    let t = Instant::now();
    let mut c = classifier(ExpectedRole::Backup);
    c.handle_advert(t, advert("192.0.2.5", 51, b"1111\0\0\0\0"));
    outputs(&mut c);
    let frame = |reason| invalid("192.0.2.66", Some(51), vec![vip()], reason);
    c.handle_captured(t, Captured::Invalid(frame("ttl")));
    c.handle_captured(t + ms(1), Captured::Invalid(frame("checksum")));
    assert!(
        raises(&outputs(&mut c)).is_empty(),
        "two frames page nothing"
    );
    c.handle_captured(t + ms(2), Captured::Invalid(frame("ttl")));
    let r = raises(&outputs(&mut c));
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].key, invalid_key_for(vip()));
    assert_eq!(
        (r[0].kind, r[0].severity),
        (IncidentKind::InvalidAdverts, Severity::Warning)
    );
    assert!(
        r[0].cause.contains("192.0.2.66 (checksum, ttl)"),
        "{}",
        r[0].cause
    );
    assert!(r[0].cause.contains("first: ttl is wrong"), "{}", r[0].cause);
    assert!(c.is_raised(&invalid_key_for(vip())));
    // The same stream again: nothing new to say.
    for k in 3..100 {
        c.handle_captured(t + ms(k), Captured::Invalid(frame("ttl")));
    }
    assert!(raises(&outputs(&mut c)).is_empty());
    // Quiet: stale after the advert memory, resolved after the clear hold;
    // the master's adverts kept coming all along.
    let mut now = t + ms(99);
    while now < t + ms(7000) {
        now += ms(1000);
        c.handle_advert(now, advert("192.0.2.5", 51, b"1111\0\0\0\0"));
        c.handle_timeout(now);
    }
    let out = outputs(&mut c);
    assert!(
        out.contains(&Output::Resolve {
            key: invalid_key_for(vip())
        }),
        "{out:?}"
    );
    assert!(raises(&out).is_empty(), "{out:?}");
    assert!(!c.is_raised(&invalid_key_for(vip())));
}

/// Frames naming only our instance's VRID count (a truncated frame carries no
/// address); frames naming other VRIDs and VIPs, and our own, do not.
#[test]
fn invalid_adverts_count_by_our_vrid_and_not_from_ourselves() {
    let t = Instant::now();
    let mut c = classifier_expecting(51, b"1111\0\0\0\0", ms(1000));
    for k in 0..10 {
        c.handle_invalid_advert(
            t + ms(k),
            &invalid("192.0.2.77", Some(52), vec![ip("192.0.2.99")], "ttl"),
        );
        let mut own = invalid("192.0.2.6", Some(51), vec![vip()], "checksum");
        own.from_self = true;
        c.handle_invalid_advert(t + ms(k), &own);
    }
    assert!(raises(&outputs(&mut c)).is_empty());
    for k in 0..3 {
        c.handle_invalid_advert(
            t + ms(20 + k),
            &invalid("192.0.2.66", Some(51), vec![], "truncated"),
        );
    }
    let r = raises(&outputs(&mut c));
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].kind, IncidentKind::InvalidAdverts);
    assert!(
        r[0].cause.contains("VRID 51") && r[0].cause.contains("truncated"),
        "{}",
        r[0].cause
    );
}

/// Beside keepalived the VIP's VRID is what its adverts say: invalid frames
/// naming that VRID count; and however many there are, a valid master and a
/// flood of invalid frames are never two masters.
#[test]
fn beside_keepalived_the_vrid_comes_from_the_adverts_and_a_flood_is_never_split_brain() {
    let t = Instant::now();
    let mut c = classifier(ExpectedRole::Backup);
    for k in 0..5000u64 {
        let now = t + ms(k);
        if k % 1000 == 0 {
            c.handle_advert(now, advert("192.0.2.5", 51, b"1111\0\0\0\0"));
        }
        c.handle_invalid_advert(now, &invalid("192.0.2.66", Some(51), vec![], "ttl"));
        c.handle_timeout(now);
    }
    let kinds: Vec<IncidentKind> = raises(&outputs(&mut c)).iter().map(|r| r.kind).collect();
    assert_eq!(kinds, vec![IncidentKind::InvalidAdverts]);
}
