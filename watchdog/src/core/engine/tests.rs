//! The engine on simulated time: no sockets, no sleeps.

use super::*;

fn t0() -> DateTime<Utc> {
    "2026-11-25T00:00:00Z".parse().unwrap()
}

fn s(n: i64) -> Duration {
    Duration::seconds(n)
}

fn cfg() -> EngineConfig {
    EngineConfig {
        node: "lb02".into(),
        group_wait: s(10),
        group_wait_critical: s(0),
        repeat_interval: s(300),
        escalate_after: s(600),
        rate_limit: 30,
        rate_limit_window: s(3600),
        send_resolved: true,
        code_reuse_after: Duration::hours(24),
        channels: vec![
            ChannelInfo {
                name: "hook".into(),
                tier: 0,
            },
            ChannelInfo {
                name: "sms".into(),
                tier: 0,
            },
            ChannelInfo {
                name: "boss".into(),
                tier: 1,
            },
        ],
        seed: 42,
    }
}

fn raise(key: &str, severity: Severity) -> Raise {
    Raise {
        key: key.into(),
        kind: if severity == Severity::Critical {
            IncidentKind::SplitBrain
        } else {
            IncidentKind::Failover
        },
        severity,
        instance: Some("VI_1".into()),
        vip: Some("192.0.2.3".parse().unwrap()),
        owners: vec!["02:00:00:00:00:05".into()],
        cause: "because".into(),
    }
}

/// Everything sendable at `now`, as (channel name, status, notification).
fn drain(e: &mut Engine, now: DateTime<Utc>) -> Vec<(String, AlertStatus, u32)> {
    e.handle_timeout(now);
    let names: Vec<String> = e.cfg.channels.iter().map(|c| c.name.clone()).collect();
    std::iter::from_fn(|| e.poll_send(now))
        .map(|o| {
            (
                names[o.channel].clone(),
                o.alert.status,
                o.alert.notification,
            )
        })
        .collect()
}

fn firing(ch: &str, n: u32) -> (String, AlertStatus, u32) {
    (ch.into(), AlertStatus::Firing, n)
}

#[test]
fn a_critical_pages_tier_zero_at_once() {
    let mut e = Engine::new(cfg());
    let code = e.handle_raise(t0(), raise("sb", Severity::Critical));
    assert_eq!(code.len(), 4);
    assert_eq!(
        drain(&mut e, t0()),
        vec![firing("hook", 1), firing("sms", 1)]
    );
    assert_eq!(e.open()[0].pages, 1);
}

#[test]
fn a_warning_waits_for_group_wait_and_a_quick_flap_pages_nobody() {
    let mut e = Engine::new(cfg());
    e.handle_raise(t0(), raise("fo", Severity::Warning));
    assert_eq!(drain(&mut e, t0() + s(9)), vec![]);
    assert_eq!(e.poll_timeout(), Some(t0() + s(10)));
    e.handle_resolve(t0() + s(9), "fo");
    assert_eq!(drain(&mut e, t0() + s(20)), vec![], "no page, no resolved");
    assert!(e.open().is_empty());

    e.handle_raise(t0() + s(30), raise("fo", Severity::Warning));
    assert_eq!(
        drain(&mut e, t0() + s(40)),
        vec![firing("hook", 1), firing("sms", 1)]
    );
}

#[test]
fn repeats_until_acked_and_ack_tells_every_paged_channel() {
    let mut e = Engine::new(cfg());
    let code = e.handle_raise(t0(), raise("sb", Severity::Critical));
    drain(&mut e, t0());
    assert_eq!(drain(&mut e, t0() + s(299)), vec![]);
    assert_eq!(
        drain(&mut e, t0() + s(300)),
        vec![firing("hook", 2), firing("sms", 2)]
    );
    let inc = e.handle_ack(t0() + s(301), &code, "+15550002222").unwrap();
    assert_eq!(inc.acked_by.as_deref(), Some("+15550002222"));
    let out = drain(&mut e, t0() + s(301));
    assert_eq!(
        out,
        vec![
            ("hook".into(), AlertStatus::Acknowledged, 3),
            ("sms".into(), AlertStatus::Acknowledged, 3)
        ]
    );
    assert_eq!(
        drain(&mut e, t0() + s(5000)),
        vec![],
        "no repeats, no escalation"
    );
    assert_eq!(
        e.handle_ack(t0(), "0000", "x"),
        Err(AckError::UnknownCode("0000".into()))
    );
}

#[test]
fn unacked_incidents_escalate_to_the_next_tier_and_resolve_there_too() {
    let mut e = Engine::new(cfg());
    e.handle_raise(t0(), raise("sb", Severity::Critical));
    drain(&mut e, t0());
    drain(&mut e, t0() + s(300));
    assert_eq!(
        drain(&mut e, t0() + s(600)),
        vec![firing("hook", 3), firing("sms", 3), firing("boss", 3)],
        "escalation and repeat at once: one page, the new tier included"
    );
    e.handle_resolve(t0() + s(700), "sb");
    let out = drain(&mut e, t0() + s(700));
    let names: Vec<&str> = out.iter().map(|o| o.0.as_str()).collect();
    assert_eq!(names, ["hook", "sms", "boss"]);
    assert!(out.iter().all(|o| o.1 == AlertStatus::Resolved));
}

#[test]
fn escalation_between_repeats_pages_only_the_new_tier() {
    let mut c = cfg();
    c.escalate_after = s(450);
    let mut e = Engine::new(c);
    e.handle_raise(t0(), raise("sb", Severity::Critical));
    drain(&mut e, t0());
    assert_eq!(
        drain(&mut e, t0() + s(300)),
        vec![firing("hook", 2), firing("sms", 2)]
    );
    assert_eq!(drain(&mut e, t0() + s(450)), vec![firing("boss", 2)]);
    assert_eq!(
        drain(&mut e, t0() + s(600)),
        vec![firing("hook", 3), firing("sms", 3), firing("boss", 3)]
    );
}

#[test]
fn an_ack_before_escalation_keeps_the_next_tier_quiet() {
    let mut e = Engine::new(cfg());
    let code = e.handle_raise(t0(), raise("sb", Severity::Critical));
    drain(&mut e, t0());
    e.handle_ack(t0() + s(10), &code, "oncall@example.com")
        .unwrap();
    drain(&mut e, t0() + s(10));
    assert_eq!(drain(&mut e, t0() + s(3600)), vec![]);
    e.handle_resolve(t0() + s(3600), "sb");
    let out = drain(&mut e, t0() + s(3600));
    assert!(out.iter().all(|o| o.0 != "boss"), "{out:?}");
    assert_eq!(out.len(), 2);
}

#[test]
fn the_same_key_dedupes_and_a_severity_rise_pages_again() {
    let mut e = Engine::new(cfg());
    let c1 = e.handle_raise(t0(), raise("x", Severity::Warning));
    let c2 = e.handle_raise(t0() + s(1), raise("x", Severity::Warning));
    assert_eq!(c1, c2);
    assert_eq!(e.open().len(), 1);
    assert_eq!(drain(&mut e, t0() + s(10)).len(), 2);
    assert_eq!(drain(&mut e, t0() + s(11)), vec![]);
    let mut r = raise("x", Severity::Critical);
    r.cause = "now two owners".into();
    e.handle_raise(t0() + s(12), r);
    assert_eq!(
        drain(&mut e, t0() + s(12)),
        vec![firing("hook", 2), firing("sms", 2)]
    );
    assert_eq!(e.open()[0].cause, "now two owners");
}

#[test]
fn a_better_diagnosis_pages_again() {
    let mut e = Engine::new(cfg());
    e.handle_raise(t0(), raise("x", Severity::Critical));
    drain(&mut e, t0());
    let mut r = raise("x", Severity::Critical);
    r.kind = IncidentKind::VridMismatch;
    e.handle_raise(t0() + s(1), r.clone());
    assert_eq!(
        drain(&mut e, t0() + s(1)),
        vec![firing("hook", 2), firing("sms", 2)]
    );
    e.handle_raise(t0() + s(2), r);
    assert_eq!(
        drain(&mut e, t0() + s(2)),
        vec![],
        "the same again is deduped"
    );
}

#[test]
fn a_warning_that_turns_critical_in_group_wait_pages_at_once() {
    let mut e = Engine::new(cfg());
    e.handle_raise(t0(), raise("x", Severity::Warning));
    e.handle_raise(t0() + s(2), raise("x", Severity::Critical));
    assert_eq!(drain(&mut e, t0() + s(2)).len(), 2);
}

#[test]
fn rate_limit_drops_repeats_and_delays_first_pages() {
    let mut c = cfg();
    c.rate_limit = 2;
    c.rate_limit_window = s(1000);
    c.repeat_interval = s(100);
    let mut e = Engine::new(c);
    e.handle_raise(t0(), raise("a", Severity::Critical));
    e.handle_raise(t0(), raise("b", Severity::Critical));
    assert_eq!(drain(&mut e, t0()).len(), 4, "two per channel");
    e.handle_raise(t0() + s(1), raise("c", Severity::Critical));
    assert_eq!(drain(&mut e, t0() + s(1)), vec![], "over the limit: waits");
    // Repeats of a and b come due while full: dropped, not queued.
    assert_eq!(drain(&mut e, t0() + s(100)), vec![]);
    let out = drain(&mut e, t0() + s(1000));
    assert!(
        out.iter().any(|o| o.1 == AlertStatus::Firing && o.2 == 1),
        "c's first page goes out once there is room: {out:?}"
    );
}

#[test]
fn codes_are_unique_among_open_ones_and_not_reused_for_a_day() {
    let mut e = Engine::new(cfg());
    let mut codes = std::collections::BTreeSet::new();
    for k in 0..200 {
        let code = e.handle_raise(t0(), raise(&format!("k{k}"), Severity::Warning));
        assert!(code.len() == 4 && code.bytes().all(|b| b.is_ascii_digit()));
        assert!(codes.insert(code), "duplicate among open");
    }
    let closed: Vec<String> = e.open().iter().map(|o| o.code.clone()).collect();
    for k in 0..200 {
        e.handle_resolve(t0() + s(1), &format!("k{k}"));
    }
    for k in 0..2000 {
        let code = e.handle_raise(t0() + s(2), raise(&format!("n{k}"), Severity::Warning));
        assert!(!closed.contains(&code), "{code} reused within 24 h");
        e.handle_resolve(t0() + s(2), &format!("n{k}"));
    }
    // After a day the retired codes are free again.
    e.handle_timeout(t0() + Duration::hours(25));
    assert!(e.state().retired_codes.is_empty());
}

#[test]
fn retired_codes_expire_one_by_one_also_after_a_restart() {
    let mut e = Engine::new(cfg());
    e.handle_raise(t0(), raise("a", Severity::Warning));
    e.handle_raise(t0(), raise("b", Severity::Warning));
    e.handle_resolve(t0(), "a");
    e.handle_resolve(t0() + Duration::hours(2), "b");
    // A restart picks the oldest expiry up from the saved state.
    let mut e = Engine::restore(cfg(), e.state());
    e.handle_timeout(t0() + Duration::hours(23));
    assert_eq!(e.state().retired_codes.len(), 2, "both still within a day");
    let rev = e.revision();
    e.handle_timeout(t0() + Duration::hours(25));
    assert_eq!(
        e.state().retired_codes.len(),
        1,
        "the first one's day is over"
    );
    assert_ne!(e.revision(), rev, "an expiry is a change to save");
    e.handle_timeout(t0() + Duration::hours(27));
    assert!(e.state().retired_codes.is_empty());
}

#[test]
fn mute_holds_repeats_until_it_ends() {
    let mut e = Engine::new(cfg());
    let code = e.handle_raise(t0(), raise("sb", Severity::Critical));
    drain(&mut e, t0());
    e.handle_mute(t0() + s(1), &code, t0() + s(1000)).unwrap();
    assert_eq!(drain(&mut e, t0() + s(300)), vec![]);
    assert!(!drain(&mut e, t0() + s(1200)).is_empty());
}

#[test]
fn a_restored_engine_keeps_codes_and_rhythm() {
    let mut e = Engine::new(cfg());
    let code = e.handle_raise(t0(), raise("sb", Severity::Critical));
    drain(&mut e, t0());
    let saved = serde_json::to_string(&e.state()).unwrap();
    let mut e2 = Engine::restore(cfg(), serde_json::from_str(&saved).unwrap());
    assert_eq!(e2.open()[0].code, code);
    assert_eq!(drain(&mut e2, t0() + s(100)), vec![]);
    assert_eq!(
        drain(&mut e2, t0() + s(300)),
        vec![firing("hook", 2), firing("sms", 2)]
    );
    let other = e2.handle_raise(t0() + s(301), raise("other", Severity::Critical));
    assert_ne!(other, code);
}

#[test]
fn idempotency_keys_differ_per_channel_and_notification() {
    let mut e = Engine::new(cfg());
    e.handle_raise(t0(), raise("sb", Severity::Critical));
    e.handle_timeout(t0());
    let a = e.poll_send(t0()).unwrap().alert;
    let b = e.poll_send(t0()).unwrap().alert;
    assert_ne!(a.idempotency_key, b.idempotency_key);
    assert_eq!(a.id, b.id);
    e.handle_timeout(t0() + s(300));
    let c = e.poll_send(t0() + s(300)).unwrap().alert;
    assert_ne!(a.idempotency_key, c.idempotency_key);
    assert!(
        a.idempotency_key.ends_with(".firing.1.hook"),
        "{}",
        a.idempotency_key
    );
}

#[test]
fn a_restart_keeps_what_the_rate_limit_holds_back_and_its_count() {
    let mut c = cfg();
    c.rate_limit = 1;
    c.rate_limit_window = s(1000);
    c.channels.truncate(1);
    let mut e = Engine::new(c.clone());
    e.handle_raise(t0(), raise("a", Severity::Critical));
    e.handle_raise(t0(), raise("b", Severity::Critical));
    // One page goes, the other waits for room.
    let first = drain(&mut e, t0());
    assert_eq!(first, vec![firing("hook", 1)]);
    let saved = serde_json::to_string(&e.state()).unwrap();
    assert!(
        saved.contains("\"waiting\"") && saved.contains("\"sent_at\""),
        "{saved}"
    );
    // The crash: a new engine from the saved state.
    let mut e2 = Engine::restore(c.clone(), serde_json::from_str(&saved).unwrap());
    assert_eq!(
        drain(&mut e2, t0() + s(10)),
        vec![],
        "the count survived: no room yet"
    );
    assert_eq!(
        drain(&mut e2, t0() + s(999)),
        vec![],
        "repeats of a are dropped"
    );
    let late = drain(&mut e2, t0() + s(1000));
    assert_eq!(late, vec![firing("hook", 1)], "the held page was not lost");
    // The same notification, not a new one under another key.
    let held = e.state().waiting[0].alert.idempotency_key.clone();
    let mut e3 = Engine::restore(c.clone(), serde_json::from_str(&saved).unwrap());
    e3.handle_timeout(t0() + s(1000));
    assert_eq!(
        e3.poll_send(t0() + s(1000)).unwrap().alert.idempotency_key,
        held
    );
    // A channel gone from the config takes its waiting alerts and count with it.
    let mut other = c;
    other.channels[0].name = "renamed".into();
    let mut e4 = Engine::restore(other, serde_json::from_str(&saved).unwrap());
    assert!(e4.state().waiting.is_empty() && e4.state().sent_at.is_empty());
    assert_eq!(drain(&mut e4, t0() + s(1)), vec![]);
}

#[test]
fn a_flapping_condition_does_not_pile_up_notices_behind_the_rate_limit() {
    let mut c = cfg();
    c.rate_limit = 30;
    c.rate_limit_window = s(3600);
    c.channels.truncate(1);
    let mut e = Engine::new(c);
    let mut sent = Vec::new();
    let mut most_waiting = 0;
    // 100 flaps an hour for 10 hours: raised, resolved 20 s later.
    for k in 0..1000 {
        let at = t0() + s(36 * k);
        e.handle_raise(at, raise("isolated", Severity::Critical));
        sent.extend(drain(&mut e, at));
        e.handle_resolve(at + s(20), "isolated");
        sent.extend(drain(&mut e, at + s(20)));
        most_waiting = most_waiting.max(e.state().waiting.len());
    }
    assert!(most_waiting <= 2, "{most_waiting} notifications waiting");
    // Within the limit, and every resolved notice follows a page that went.
    assert!(sent.len() <= 30 * 11, "{} sent", sent.len());
    let pages = sent.iter().filter(|x| x.1 == AlertStatus::Firing).count();
    let resolved = sent.iter().filter(|x| x.1 == AlertStatus::Resolved).count();
    assert!(
        pages > 0 && resolved <= pages,
        "{pages} pages, {resolved} resolved"
    );
}

#[test]
fn acks_and_resolved_notices_go_only_where_a_page_went() {
    let mut c = cfg();
    c.rate_limit = 1;
    c.rate_limit_window = s(1000);
    let mut e = Engine::new(c);
    let code = e.handle_raise(t0(), raise("sb", Severity::Critical));
    // hook and sms are due; only room for one each: both go.
    assert_eq!(
        drain(&mut e, t0()),
        vec![firing("hook", 1), firing("sms", 1)]
    );
    // A second incident's pages wait for room, then it ends: nobody heard of
    // it, so nobody hears that it ended.
    e.handle_raise(t0() + s(1), raise("other", Severity::Critical));
    e.handle_resolve(t0() + s(2), "other");
    e.handle_ack(t0() + s(3), &code, "+15550002222").unwrap();
    let later = drain(&mut e, t0() + s(1000));
    assert_eq!(
        later,
        vec![
            ("hook".into(), AlertStatus::Acknowledged, 2),
            ("sms".into(), AlertStatus::Acknowledged, 2),
        ]
    );
}

mod revision {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Raise(usize, bool),
        Resolve(usize),
        Ack(usize),
        Mute(usize),
        Advance(i64),
        Timeout,
        Send,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0..4usize, any::<bool>()).prop_map(|(k, c)| Op::Raise(k, c)),
            2 => (0..4usize).prop_map(Op::Resolve),
            1 => (0..4usize).prop_map(Op::Ack),
            1 => (0..4usize).prop_map(Op::Mute),
            3 => (0..4000i64).prop_map(Op::Advance),
            3 => Just(Op::Timeout),
            3 => Just(Op::Send),
        ]
    }

    proptest! {
        /// The watcher saves when the revision moved instead of building and
        /// comparing the whole state on every step: so a state change that does
        /// not move the revision would never reach the disk.
        #[test]
        fn every_state_change_moves_the_revision(ops in proptest::collection::vec(op(), 0..120)) {
            let mut cfg = cfg();
            cfg.rate_limit = 3;
            cfg.rate_limit_window = s(600);
            cfg.code_reuse_after = s(3000);
            let mut e = Engine::new(cfg);
            let mut now = t0();
            let mut codes: Vec<String> = Vec::new();
            for op in ops {
                let (before, rev) = (e.state(), e.revision());
                match op {
                    Op::Raise(k, critical) => {
                        let sev = if critical { Severity::Critical } else { Severity::Warning };
                        codes.push(e.handle_raise(now, raise(&format!("k{k}"), sev)));
                    }
                    Op::Resolve(k) => e.handle_resolve(now, &format!("k{k}")),
                    Op::Ack(k) => {
                        if let Some(code) = codes.get(k) {
                            let _ = e.handle_ack(now, code, "oncall");
                        }
                    }
                    Op::Mute(k) => {
                        if let Some(code) = codes.get(k) {
                            let _ = e.handle_mute(now, code, now + s(900));
                        }
                    }
                    Op::Advance(secs) => now += s(secs),
                    Op::Timeout => e.handle_timeout(now),
                    Op::Send => while e.poll_send(now).is_some() {},
                }
                if e.revision() == rev {
                    prop_assert_eq!(e.state(), before, "state changed by {:?} without a new revision", op);
                }
            }
        }
    }
}
