//! The arbiter's probes on a real (namespaced) wire: ICMP echoes from lb01 to gw with
//! both socket kinds surge-ping can open, nft drops on gw, concurrent echoes to one
//! host, failed sends, and the default-gateway lookup the references default to;
//! and the same over IPv6 (ICMPv6 echo from a global or a link-local source, the
//! IPv6 default gateway, link-local or global).
//! Needs root; fails without it. Every loop is bounded in count and time.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use splitguard_arbiter::probe::{IcmpProber, ProbeResult, SocketKind, spawn_probe_loop};
use splitguard_lab::Lab;
use splitguard_node::net::netlink::Netlink;
use splitguard_vrrp::wire::Family;
use tokio::sync::mpsc;

const LB01: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 5));
const GW: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 254));
const TIMEOUT: Duration = Duration::from_millis(500);
const INTERVAL: Duration = Duration::from_millis(200);
/// Generous bound for anything a few probe rounds should show.
const BOUND: Duration = Duration::from_secs(10);
/// Scheduling slack on top of a timing the probe loop promises.
const SLACK: Duration = Duration::from_secs(1);

const DROP_ECHO: &str = "table inet sgtest {\n\
    chain in { type filter hook input priority 0; icmp type echo-request drop; }\n}\n";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Lets every group open unprivileged ping sockets in `host` (per-namespace sysctl),
/// so surge-ping gets the datagram kind instead of falling back to raw.
fn allow_ping_sockets(lab: &Lab, host: &str) {
    lab.run(
        host,
        &[
            "sysctl",
            "-q",
            "-w",
            "net.ipv4.ping_group_range=0 2147483647",
        ],
    )
    .expect("sysctl ping_group_range");
}

/// The next result from the loop, within `BOUND`.
async fn next(rx: &mut mpsc::Receiver<ProbeResult>) -> ProbeResult {
    tokio::time::timeout(BOUND, rx.recv())
        .await
        .expect("a result within the bound")
        .expect("the loop is running")
}

#[test]
fn gateway_answers_then_a_drop_on_gw_fails_within_the_timeout() {
    let lab = common::pair_lab("prbgw");
    lab.within("lb01", || {
        rt().block_on(async {
            let prober = IcmpProber::new(LB01, "eth0").expect("prober");
            // As root in a fresh namespace with the default ping_group_range, surge-ping
            // cannot open a ping socket and falls back to raw.
            assert_eq!(prober.socket_kind(), SocketKind::Raw);

            let r = prober.probe(GW, TIMEOUT).await;
            assert!(r.ok, "{r:?}");
            assert_eq!(r.target, GW);
            assert!(r.rtt.is_some_and(|rtt| rtt <= TIMEOUT), "{r:?}");

            let (tx, mut rx) = mpsc::channel(16);
            let task = spawn_probe_loop(prober, vec![GW], INTERVAL, TIMEOUT, tx).expect("loop");
            let first = next(&mut rx).await;
            assert!(first.ok && first.rtt.is_some(), "{first:?}");

            lab.nft(Some("gw"), DROP_ECHO).expect("nft on gw");
            let dropped_at = Instant::now();
            // Results already in flight may still be good; within a few rounds one fails.
            let mut failed = None;
            for _ in 0..20 {
                let r = next(&mut rx).await;
                if !r.ok {
                    failed = Some(r);
                    break;
                }
            }
            let failed = failed.expect("a failed probe after the drop");
            assert_eq!(failed.rtt, None);
            // One interval to start the round, one timeout to give up, plus slack
            // for a loaded machine.
            assert!(
                failed.at.duration_since(dropped_at) <= INTERVAL + TIMEOUT + SLACK,
                "failure took {:?}",
                failed.at.duration_since(dropped_at)
            );
            // The failure is the timeout, not an early error.
            let again = next(&mut rx).await;
            assert!(!again.ok, "{again:?}");

            // Dropping the receiver ends the loop.
            drop(rx);
            tokio::time::timeout(BOUND, task)
                .await
                .expect("the loop ends once the receiver is gone")
                .expect("the loop did not panic");
        })
    })
    .expect("inside lb01");
}

#[test]
fn concurrent_echoes_to_one_host_all_succeed_with_both_socket_kinds() {
    let lab = common::pair_lab("prbseq");
    // Raw first (the default), then datagram once the sysctl admits our group.
    for (kind, setup) in [(SocketKind::Raw, false), (SocketKind::Datagram, true)] {
        if setup {
            allow_ping_sockets(&lab, "lb01");
        }
        lab.within("lb01", || {
            rt().block_on(async {
                let prober = IcmpProber::new(LB01, "eth0").expect("prober");
                assert_eq!(prober.socket_kind(), kind);
                let (a, b, c) = tokio::join!(
                    prober.probe(GW, TIMEOUT),
                    prober.probe(GW, TIMEOUT),
                    prober.probe(GW, TIMEOUT)
                );
                for r in [&a, &b, &c] {
                    assert!(r.ok, "{kind:?}: {r:?}");
                }

                // The same host listed twice in the loop: both echoes of a round answer.
                let (tx, mut rx) = mpsc::channel(16);
                let _task =
                    spawn_probe_loop(prober, vec![GW, GW], INTERVAL, TIMEOUT, tx).expect("loop");
                for _ in 0..4 {
                    let r = next(&mut rx).await;
                    assert!(r.ok && r.target == GW, "{kind:?}: {r:?}");
                }
            })
        })
        .expect("inside lb01");
    }
}

#[test]
fn failed_sends_are_results_paced_by_the_interval() {
    let lab = common::pair_lab("prbfail");
    // A drop in lb01's own output hook makes sendmsg fail at once (EPERM): no packet
    // leaves. (An "unreachable" route would not do: with SO_BINDTODEVICE the kernel
    // takes a destination it has no route for as on-link and ARPs for it.)
    let target = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 200));
    lab.nft(
        Some("lb01"),
        "table inet sgtest {\n\
         chain out { type filter hook output priority 0; ip daddr 192.0.2.200 drop; }\n}\n",
    )
    .expect("nft on lb01");
    lab.within("lb01", || {
        rt().block_on(async {
            let prober = IcmpProber::new(LB01, "eth0").expect("prober");
            let started = Instant::now();
            let r = prober.probe(target, TIMEOUT).await;
            assert!(!r.ok && r.rtt.is_none(), "{r:?}");
            assert!(
                started.elapsed() < TIMEOUT,
                "a failed send reports at once, it does not wait for the timeout"
            );

            let (tx, mut rx) = mpsc::channel(64);
            let started = Instant::now();
            let _task =
                spawn_probe_loop(prober, vec![target, GW], INTERVAL, TIMEOUT, tx).expect("loop");
            let window = Duration::from_secs(1);
            let mut seen = Vec::new();
            while started.elapsed() < window {
                let left = window.saturating_sub(started.elapsed());
                match tokio::time::timeout(left, rx.recv()).await {
                    Ok(Some(r)) => seen.push(r),
                    Ok(None) => panic!("the loop ended"),
                    Err(_) => break,
                }
            }
            let bad: Vec<_> = seen.iter().filter(|r| r.target == target).collect();
            assert!(bad.iter().all(|r| !r.ok), "{bad:?}");
            assert!(seen.iter().any(|r| r.target == GW && r.ok), "{seen:?}");
            // One result per target per 200 ms round: about 5 in a second, not a spin.
            assert!(
                (1..=7).contains(&bad.len()),
                "{} failed results in {window:?}",
                bad.len()
            );
        })
    })
    .expect("inside lb01");
}

#[test]
fn opening_errors_name_the_address_and_interface() {
    let lab = common::pair_lab("prberr");
    lab.within("lb01", || {
        rt().block_on(async {
            let err = IcmpProber::new(LB01, "nosuch0").expect_err("no such interface");
            let text = err.to_string();
            assert!(
                text.starts_with("open ICMP socket bound to 192.0.2.5 on nosuch0: "),
                "{text}"
            );
            // An address this host does not have (as if given a VIP it does not hold).
            let other = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 77));
            let err = IcmpProber::new(other, "eth0").expect_err("not our address");
            assert!(
                err.to_string()
                    .starts_with("open ICMP socket bound to 192.0.2.77 on eth0: "),
                "{err}"
            );
        })
    })
    .expect("inside lb01");
}

/// lb01's default gateway through each (interface, family) of `asked`.
fn gateways(lab: &Lab, asked: [(&str, Family); 2]) -> (Option<IpAddr>, Option<IpAddr>) {
    let [a, b] = lab
        .within("lb01", || {
            rt().block_on(async {
                let nl = Netlink::connect().expect("netlink");
                let mut out = [None, None];
                for (slot, (name, family)) in out.iter_mut().zip(asked) {
                    let link = nl.link_by_name(name).await.expect("link");
                    *slot = nl
                        .default_gateway(link.index, family)
                        .await
                        .expect("route dump");
                }
                out
            })
        })
        .expect("inside lb01");
    (a, b)
}

#[test]
fn default_gateway_is_read_from_the_main_table() {
    let lab = common::pair_lab("prbroute");
    let lookup = |lab: &Lab| gateways(lab, [("eth0", Family::Ipv4), ("lo", Family::Ipv4)]);
    assert_eq!(lookup(&lab), (None, None), "no default route yet");

    let route_add = |spec: &str| {
        let mut argv = vec!["ip", "route", "add"];
        argv.extend(spec.split_whitespace());
        lab.run("lb01", &argv).expect(spec);
    };
    route_add("default via 192.0.2.254 metric 100");
    // A default route in another table is not the main table's, even with a
    // better metric.
    route_add("default via 192.0.2.6 table 100");
    assert_eq!(
        lookup(&lab),
        (Some(GW), None),
        "eth0's default gateway, and none through lo"
    );
}

const LB01_6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 5));
const GW_6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0xfe));
const LB01_LL: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0xff, 0xfe00, 5));
const GW_LL: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0xff, 0xfe00, 0xfe));
const DROP_ECHO6: &str = "table inet sgtest6 {\n\
    chain in { type filter hook input priority 0; icmpv6 type echo-request drop; }\n}\n";

#[test]
fn icmpv6_echoes_from_a_global_and_a_link_local_source_then_a_drop_fails() {
    let lab = splitguard_lab::configs::pair_lab6("prb6").expect("lab builds (run as root)");
    for kind in [SocketKind::Raw, SocketKind::Datagram] {
        if kind == SocketKind::Datagram {
            allow_ping_sockets(&lab, "lb01");
        }
        lab.within("lb01", || {
            rt().block_on(async {
                let index = Netlink::connect()
                    .expect("netlink")
                    .link_by_name("eth0")
                    .await
                    .expect("eth0")
                    .index;
                let global = IcmpProber::new_scoped(LB01_6, "eth0", index).expect("prober");
                assert_eq!(global.socket_kind(), kind);
                let r = global.probe(GW_6, TIMEOUT).await;
                assert!(r.ok && r.rtt.is_some(), "global to global: {r:?}");
                // A link-local source binds only with its scope (surge-ping
                // binds before SO_BINDTODEVICE).
                let err = IcmpProber::new(LB01_LL, "eth0").expect_err("no scope");
                assert!(err.to_string().contains("scope"), "{err}");
                let ll = IcmpProber::new_scoped(LB01_LL, "eth0", index).expect("prober");
                let r = ll.probe(GW_LL, TIMEOUT).await;
                assert!(r.ok, "link-local to link-local: {r:?}");
                let r = ll.probe(GW_6, TIMEOUT).await;
                assert!(r.ok, "link-local to global on the link: {r:?}");
                let r = global.probe(LB01, TIMEOUT).await;
                assert!(
                    !r.ok,
                    "an IPv4 target from an IPv6 source is a failed result"
                );
            })
        })
        .expect("inside lb01");
    }
    lab.nft(Some("gw"), DROP_ECHO6).expect("nft on gw");
    lab.within("lb01", || {
        rt().block_on(async {
            let prober = IcmpProber::new(LB01_6, "eth0").expect("prober");
            let started = Instant::now();
            let r = prober.probe(GW_6, TIMEOUT).await;
            assert!(!r.ok && r.rtt.is_none(), "{r:?}");
            assert!(
                started.elapsed() <= TIMEOUT + SLACK,
                "{:?}",
                started.elapsed()
            );
        })
    })
    .expect("inside lb01");
}

#[test]
fn the_ipv6_default_gateway_is_read_link_local_or_global() {
    let lab = splitguard_lab::configs::pair_lab6("prbroute6").expect("lab builds (run as root)");
    let lookup = |lab: &Lab| gateways(lab, [("eth0", Family::Ipv6), ("eth0", Family::Ipv4)]);
    assert_eq!(lookup(&lab), (None, None), "no default route yet");
    let route_add = |spec: &str| {
        let mut argv = vec!["ip"];
        argv.extend(spec.split_whitespace());
        lab.run("lb01", &argv).expect(spec);
    };
    route_add("-6 route add default via fe80::ff:fe00:fe dev eth0 metric 100");
    assert_eq!(lookup(&lab), (Some(GW_LL), None), "a router's link-local");
    route_add("-6 route add default via 2001:db8::fe metric 50");
    assert_eq!(lookup(&lab), (Some(GW_6), None), "the lower metric wins");
    route_add("route add default via 192.0.2.254");
    assert_eq!(lookup(&lab), (Some(GW_6), Some(GW)), "one per family");
}
