use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

const LB01: &str = "192.0.2.5";
const KA: &str = "192.0.2.7";

fn drain(e: &mut EarlyTakeover) -> Vec<EarlyAction> {
    std::iter::from_fn(|| e.poll_action()).collect()
}

/// Echoes due at `now`, sent; returns their `sent` times by peer.
fn send_due(e: &mut EarlyTakeover, now: Instant) -> Vec<(IpAddr, Instant)> {
    e.handle_timeout(now);
    drain(e)
        .into_iter()
        .filter_map(|a| match a {
            EarlyAction::Echo { peer, sent, .. } => Some((peer, sent)),
            _ => None,
        })
        .collect()
}

/// A node with `n` instances, all Backup behind lb01 at `advert`, connected.
fn following(n: usize, advert: Duration) -> (EarlyTakeover, Instant) {
    let t = Instant::now();
    let mut e = EarlyTakeover::new(EarlyConfig::default(), n);
    e.handle_connected(true);
    for i in 0..n {
        e.handle_follow(t, i, Some((ip(LB01), advert)));
    }
    (e, t)
}

/// Runs the stream from `from` to `to` (exclusive) with every echo answered
/// (`alive`) or every echo missed; returns the actions other than echoes.
fn run(e: &mut EarlyTakeover, from: Instant, to: Instant, alive: bool) -> Vec<EarlyAction> {
    let mut out = Vec::new();
    let mut now = from;
    while now < to {
        e.handle_timeout(now);
        for a in drain(e) {
            match a {
                EarlyAction::Echo {
                    peer,
                    sent,
                    timeout,
                } => {
                    // Answered at once, or reported missed at its timeout (the
                    // next echo's time: reported before that echo leaves).
                    let at = if alive { sent } else { sent + timeout };
                    e.handle_echo(at, peer, sent, alive);
                }
                other => out.push(other),
            }
        }
        out.extend(drain(e));
        match e.poll_timeout() {
            Some(next) if next > now => now = next,
            _ => break,
        }
    }
    out
}

#[test]
fn one_stream_per_peer_at_a_quarter_of_its_fastest_advert() {
    let t = Instant::now();
    let mut e = EarlyTakeover::new(EarlyConfig::default(), 4);
    assert_eq!(e.poll_timeout(), None, "nobody followed: no stream");
    e.handle_follow(t, 0, Some((ip(LB01), ms(1000))));
    e.handle_follow(t, 1, Some((ip(LB01), ms(1000))));
    assert_eq!(e.streams().collect::<Vec<_>>(), vec![(ip(LB01), ms(100))]);
    // A fast instance behind the same master shortens its one stream.
    e.handle_follow(t, 2, Some((ip(LB01), ms(100))));
    assert_eq!(e.streams().collect::<Vec<_>>(), vec![(ip(LB01), ms(25))]);
    // Very fast adverts stop at the floor.
    e.handle_follow(t, 3, Some((ip(KA), ms(20))));
    let mut streams: Vec<_> = e.streams().collect();
    streams.sort();
    assert_eq!(streams, vec![(ip(LB01), ms(25)), (ip(KA), MIN_INTERVAL)]);
    // Echoes go out one per peer per interval, however many instances follow.
    let sent = send_due(&mut e, t);
    assert_eq!(sent.len(), 2);
    assert!(send_due(&mut e, t + ms(9)).is_empty());
    assert_eq!(send_due(&mut e, t + ms(10)), vec![(ip(KA), t + ms(10))]);
    // Nobody follows KA any more: its stream stops.
    e.handle_follow(t, 3, None);
    assert_eq!(e.streams().count(), 1);
    for i in 0..3 {
        e.handle_follow(t, i, None);
    }
    assert_eq!(e.poll_timeout(), None);
}

#[test]
fn a_dead_master_is_lost_after_three_misses_then_confirmed_and_claimed() {
    let (mut e, t) = following(2, ms(1000));
    assert!(run(&mut e, t, t + ms(1000), true).is_empty());
    // Dies at 1000 ms: the echoes at 1000, 1100 and 1200 ms go unanswered
    // (reported as they time out), and the third miss loses it.
    let out = run(&mut e, t + ms(1000), t + ms(1450), false);
    assert_eq!(
        out,
        vec![
            EarlyAction::PeerLost { peer: ip(LB01) },
            EarlyAction::Confirm {
                instance: 0,
                peer: ip(LB01)
            },
            EarlyAction::Confirm {
                instance: 1,
                peer: ip(LB01)
            },
        ]
    );
    assert!(e.peer_lost(ip(LB01)));
    // Rounds end silent: both claim, once.
    e.handle_confirmation(t + ms(1480), 0, None);
    e.handle_confirmation(t + ms(1490), 1, None);
    e.handle_confirmation(t + ms(1490), 1, None);
    assert_eq!(
        drain(&mut e),
        vec![
            EarlyAction::Claim {
                instance: 0,
                peer: ip(LB01)
            },
            EarlyAction::Claim {
                instance: 1,
                peer: ip(LB01)
            },
        ]
    );
}

#[test]
fn any_answer_declines_and_the_peers_own_answer_declines_all() {
    let (mut e, t) = following(3, ms(1000));
    run(&mut e, t, t + ms(450), false);
    drain(&mut e);
    // A VIP of instance 0 answers from another MAC: only instance 0 declines.
    e.handle_confirmation(t + ms(460), 0, Some(ip("192.0.2.10")));
    assert_eq!(
        drain(&mut e),
        vec![EarlyAction::Decline {
            instance: 0,
            peer: ip(LB01),
            why: Declined::Answered {
                target: ip("192.0.2.10")
            }
        }]
    );
    // lb01's own address answers in instance 1's round: its kernel lives, so
    // every round under way declines.
    e.handle_confirmation(t + ms(470), 1, Some(ip(LB01)));
    let out = drain(&mut e);
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(out.iter().all(|a| matches!(
        a,
        EarlyAction::Decline {
            why: Declined::Answered { .. },
            ..
        }
    )));
    // The episode is over: a late silent end claims nothing.
    e.handle_confirmation(t + ms(480), 2, None);
    assert!(drain(&mut e).is_empty());
    // Still lost: no new rounds while the echoes keep missing.
    assert!(run(&mut e, t + ms(480), t + ms(2000), false).is_empty());
}

#[test]
fn an_off_link_peer_declines_every_round_and_claims_nothing() {
    let (mut e, t) = following(2, ms(1000));
    run(&mut e, t, t + ms(450), false);
    drain(&mut e);
    e.handle_off_link(0);
    assert_eq!(
        drain(&mut e),
        (0..2)
            .map(|instance| EarlyAction::Decline {
                instance,
                peer: ip(LB01),
                why: Declined::OffLink
            })
            .collect::<Vec<_>>()
    );
    // Silent ends after it claim nothing; neither does a repeat.
    e.handle_confirmation(t + ms(480), 1, None);
    e.handle_off_link(1);
    assert!(drain(&mut e).is_empty());
}

#[test]
fn an_unconfirmed_round_declines_alone_and_the_others_still_claim() {
    // A mass failover: the queue could not fit instance 0's round before its
    // down timer; instance 1's ran and heard nothing.
    let (mut e, t) = following(2, ms(1000));
    run(&mut e, t, t + ms(450), false);
    drain(&mut e);
    e.handle_unconfirmed(0, Declined::TooLate);
    e.handle_confirmation(t + ms(480), 1, None);
    assert_eq!(
        drain(&mut e),
        vec![
            EarlyAction::Decline {
                instance: 0,
                peer: ip(LB01),
                why: Declined::TooLate
            },
            EarlyAction::Claim {
                instance: 1,
                peer: ip(LB01)
            }
        ]
    );
    // Once declined, a silent end of its own claims nothing.
    e.handle_confirmation(t + ms(490), 0, None);
    e.handle_unconfirmed(1, Declined::Unasked);
    assert!(drain(&mut e).is_empty());
}

#[test]
fn an_advert_ends_a_miss_streak_and_declines_a_round() {
    let (mut e, t) = following(1, ms(1000));
    // Two misses, an advert, two misses: never three in a row.
    let mut sent = t;
    for k in 0..4 {
        if k == 2 {
            e.handle_advert(sent - ms(50), ip(LB01));
        }
        send_due(&mut e, sent);
        e.handle_echo(sent + ms(100), ip(LB01), sent, false);
        sent += ms(100);
    }
    assert!(!e.peer_lost(ip(LB01)));
    assert!(drain(&mut e).is_empty());
    // A real loss, then an advert during the round: declined.
    e.handle_echo(sent + ms(100), ip(LB01), sent, false);
    assert!(e.peer_lost(ip(LB01)));
    drain(&mut e);
    e.handle_advert(sent + ms(120), ip(LB01));
    e.handle_confirmation(sent + ms(150), 0, None);
    assert_eq!(
        drain(&mut e),
        vec![EarlyAction::Decline {
            instance: 0,
            peer: ip(LB01),
            why: Declined::AdvertHeard
        }]
    );
}

#[test]
fn an_isolated_node_never_claims_early() {
    let (mut e, t) = following(2, ms(1000));
    e.handle_connected(false);
    let out = run(&mut e, t, t + ms(450), false);
    assert!(out.contains(&EarlyAction::Decline {
        instance: 0,
        peer: ip(LB01),
        why: Declined::Isolated
    }));
    assert!(!out.iter().any(|a| matches!(a, EarlyAction::Confirm { .. })));
    // Connected at the loss, then a reference goes during the round.
    let (mut e, t) = following(1, ms(1000));
    run(&mut e, t, t + ms(450), false);
    drain(&mut e);
    e.handle_connected(false);
    e.handle_confirmation(t + ms(480), 0, None);
    assert_eq!(
        drain(&mut e),
        vec![EarlyAction::Decline {
            instance: 0,
            peer: ip(LB01),
            why: Declined::Isolated
        }]
    );
}

#[test]
fn an_answered_echo_ends_the_episode_and_allows_the_next() {
    let (mut e, t) = following(1, ms(1000));
    let out = run(&mut e, t, t + ms(450), false);
    assert!(out.contains(&EarlyAction::Confirm {
        instance: 0,
        peer: ip(LB01)
    }));
    // An echo answered mid-round: alive after all.
    e.handle_echo(t + ms(460), ip(LB01), t + ms(400), true);
    assert_eq!(
        drain(&mut e),
        vec![
            EarlyAction::Decline {
                instance: 0,
                peer: ip(LB01),
                why: Declined::Answered { target: ip(LB01) }
            },
            EarlyAction::PeerAlive { peer: ip(LB01) },
        ]
    );
    // A later loss is a new episode.
    let out = run(&mut e, t + ms(500), t + ms(950), false);
    assert!(out.contains(&EarlyAction::Confirm {
        instance: 0,
        peer: ip(LB01)
    }));
}

#[test]
fn an_instance_joining_a_loss_under_way_sits_it_out() {
    let (mut e, t) = following(2, ms(1000));
    e.handle_follow(t, 1, None);
    run(&mut e, t, t + ms(450), false);
    drain(&mut e);
    // Instance 1 hears lb01 now (its advert came): not dead for it.
    e.handle_follow(t + ms(460), 1, Some((ip(LB01), ms(1000))));
    e.handle_confirmation(t + ms(470), 1, None);
    assert!(drain(&mut e).is_empty());
}

/// xorshift64*: a repeatable loss pattern.
struct Rng(u64);
impl Rng {
    fn lost(&mut self, percent: u64) -> bool {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) % 100 < percent
    }
}

/// The S7 argument, simulated: a live master behind 30 % random loss (each
/// echo answer, ARP answer and advert lost on its own) for `minutes`; returns
/// the early claims (every one of them false).
fn false_claims_under_loss(seed: u64, minutes: u64, advert: Duration) -> usize {
    let mut rng = Rng(seed | 1);
    let (mut e, t) = following(1, advert);
    let end = t + Duration::from_secs(60 * minutes);
    let mut next_advert = t;
    let mut claims = 0;
    let mut now = t;
    while now < end {
        while next_advert <= now {
            if !rng.lost(30) {
                e.handle_advert(next_advert, ip(LB01));
            }
            next_advert += advert;
        }
        e.handle_timeout(now);
        for a in drain(&mut e) {
            match a {
                EarlyAction::Echo {
                    peer,
                    sent,
                    timeout,
                } => {
                    let answered = !rng.lost(30);
                    let at = if answered { sent } else { sent + timeout };
                    e.handle_echo(at, peer, sent, answered);
                }
                EarlyAction::Confirm { instance, .. } => {
                    // 4 requests to lb01's address and 4 to the VIP, all of which
                    // it answers; an answer to any one arrives with p = 0.7.
                    let answered = (0..2 * CONFIRM_REQUESTS).any(|_| !rng.lost(30));
                    let by = answered.then(|| ip(LB01));
                    e.handle_confirmation(now, instance, by);
                }
                EarlyAction::Claim { .. } => claims += 1,
                _ => {}
            }
        }
        for a in drain(&mut e) {
            if matches!(a, EarlyAction::Claim { .. }) {
                claims += 1;
            }
        }
        now = e.poll_timeout().expect("the stream runs");
    }
    claims
}

#[test]
fn thirty_percent_loss_for_hours_makes_no_early_claim() {
    // Expected about one false claim in 37 hours (module docs); 10 hours at
    // 1 s adverts and 10 at 100 ms (where the stream runs 4 times as fast).
    let mut claims = 0;
    for seed in 1..=10 {
        claims += false_claims_under_loss(seed, 60, ms(1000));
        claims += false_claims_under_loss(seed + 100, 60, ms(100));
    }
    assert_eq!(claims, 0);
}

#[test]
fn without_the_confirmation_the_same_loss_would_claim() {
    // The other half of the argument: the liveness stream alone is weak, so
    // the confirmation is what keeps the claims away (this test fails if the
    // loss model above stops exercising the confirmation).
    let mut rng = Rng(7);
    let (mut e, t) = following(1, ms(1000));
    let mut losses = 0;
    let mut now = t;
    while now < t + Duration::from_secs(600) {
        e.handle_timeout(now);
        for a in drain(&mut e) {
            if let EarlyAction::Echo {
                peer,
                sent,
                timeout,
            } = a
            {
                let answered = !rng.lost(30);
                e.handle_echo(
                    if answered { sent } else { sent + timeout },
                    peer,
                    sent,
                    answered,
                );
            }
        }
        for a in drain(&mut e) {
            if let EarlyAction::Confirm { instance, .. } = a {
                losses += 1;
                e.handle_confirmation(now, instance, Some(ip(LB01)));
            }
        }
        now = e.poll_timeout().expect("the stream runs");
    }
    assert!(losses > 20, "only {losses} false losses in 10 minutes");
}
