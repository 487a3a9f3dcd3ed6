//! The witness lab (issue 20): a three-member etcd cluster (Debian's etcd 3.4)
//! on the lab's management segment, 192.0.2.192/28 on a bridge of its own.
//! lb01 and lb02 reach it over `mgmt0` (longest-prefix match beside eth0's
//! /24); gw, on the data segment alone, does not. etcdctl from lb01 puts and
//! reads back over all three endpoints; killing the leader gives a new one
//! within 10 s; with every member stopped etcdctl fails within its command
//! timeout; restarted on their data the members have the key again; cutting
//! lb01's management port cuts lb01 alone off the cluster. No namespace
//! outlives the lab.
//!
//! Needs root, etcd-server and etcd-client; fails without them.

mod common;

use splitguard_lab::configs::{GW_ADDR, LB01_ADDR, LB02_ADDR};
use splitguard_lab::etcd::{EtcdCluster, LB01_MGMT, LB02_MGMT, MEMBERS};
use splitguard_lab::{Lab, wait_for};
use std::time::{Duration, Instant};

/// A new leader after the old one is killed (measured: 0.6-1.5 s).
const NEW_LEADER_BOUND: Duration = Duration::from_secs(10);
/// etcdctl's command timeout where a failure is expected: it must fail this
/// fast, with some slack for the process's start.
const FAIL_FAST: &str = "--command-timeout=1s";
const FAIL_FAST_BOUND: Duration = Duration::from_secs(3);

fn lab() -> Lab {
    Lab::builder("etcd")
        .host("lb01", LB01_ADDR)
        .host("lb02", LB02_ADDR)
        .host("gw", GW_ADDR)
        .management(&[("lb01", LB01_MGMT), ("lb02", LB02_MGMT)])
        .etcd_members()
        .build()
        .expect("lab builds (run as root)")
}

/// What one etcdctl run in a lab host did.
struct Ctl {
    ok: bool,
    stdout: String,
    stderr: String,
    took: Duration,
}

/// `etcdctl ARGS` in `host` against all three members.
fn etcdctl(etcd: &EtcdCluster, host: &str, args: &[&str]) -> Ctl {
    let mut cmd = etcd.etcdctl(host).expect("etcdctl command");
    cmd.args(args);
    let t = Instant::now();
    let out = cmd.output().expect("etcdctl runs (etcd-client installed?)");
    Ctl {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).trim().to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        took: t.elapsed(),
    }
}

/// Panics with `what`, etcdctl's stderr and the members' logs unless `c.ok`.
fn expect_ok(etcd: &EtcdCluster, c: &Ctl, what: &str) {
    assert!(
        c.ok,
        "{what}: etcdctl failed after {:?}: {}{}",
        c.took,
        c.stderr,
        etcd.log_tails(20)
    );
}

/// Panics unless `c` failed within [`FAIL_FAST_BOUND`].
fn expect_fast_failure(etcd: &EtcdCluster, c: &Ctl, what: &str) {
    assert!(
        !c.ok,
        "{what}: etcdctl succeeded: {}{}",
        c.stdout,
        etcd.log_tails(20)
    );
    assert!(
        c.took < FAIL_FAST_BOUND,
        "{what}: etcdctl took {:?} to fail (bound {FAIL_FAST_BOUND:?}): {}",
        c.took,
        c.stderr
    );
}

fn run(lab: &Lab, host: &str, argv: &[&str]) -> String {
    let out = lab.run(host, argv).expect("command runs in the lab");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn etcd_cluster_on_the_management_segment() {
    let t0 = Instant::now();
    let lab = lab();
    let id = lab.id().to_string();

    // The wiring: a member has lo and mgmt0 only; lb01 reaches the members
    // over mgmt0 from its management address, and gw over eth0.
    let links = run(&lab, "s1", &["ip", "-o", "link", "show"]);
    let names: Vec<&str> = links
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n))
        .collect();
    assert_eq!(names, ["lo", "mgmt0"], "{links}");
    let addrs = run(
        &lab,
        "s1",
        &["ip", "-4", "-o", "addr", "show", "dev", "mgmt0"],
    );
    assert!(addrs.contains("inet 192.0.2.201/28 "), "{addrs}");
    for (host, src) in [("lb01", LB01_MGMT), ("lb02", LB02_MGMT)] {
        for (_, member) in MEMBERS {
            let route = run(&lab, host, &["ip", "route", "get", &member.to_string()]);
            assert!(
                route.contains(" dev mgmt0 ") && route.contains(&format!(" src {src} ")),
                "{host} -> {member}: {route}"
            );
        }
        let route = run(&lab, host, &["ip", "route", "get", &GW_ADDR.to_string()]);
        assert!(route.contains(" dev eth0 "), "{host} -> gw: {route}");
    }

    let started = Instant::now();
    let mut etcd = EtcdCluster::start(&lab).unwrap_or_else(|e| panic!("etcd starts: {e}"));
    let start_took = started.elapsed();
    assert_eq!(
        etcd.endpoints(),
        [
            "http://192.0.2.201:2379",
            "http://192.0.2.202:2379",
            "http://192.0.2.203:2379"
        ]
    );

    // lb01 writes over the management segment; lb02 reads it back, and so
    // does the cluster's own reader.
    let put = etcdctl(&etcd, "lb01", &["put", "/splitguard/vi1/owner", "lb01"]);
    expect_ok(&etcd, &put, "put from lb01");
    assert_eq!(put.stdout, "OK");
    let get = etcdctl(&etcd, "lb02", &["get", "/splitguard/vi1/owner"]);
    expect_ok(&etcd, &get, "get from lb02");
    assert_eq!(get.stdout, "/splitguard/vi1/owner\nlb01");
    let kvs = etcd.get_prefix("/splitguard/").expect("get_prefix");
    assert_eq!(kvs, [("/splitguard/vi1/owner".into(), "lb01".into())]);
    assert!(etcd.get_prefix("/nothing/").expect("get_prefix").is_empty());

    // gw has no management link: 192.0.2.201 is on its /24, where nobody has it.
    let from_gw = etcdctl(&etcd, "gw", &[FAIL_FAST, "get", "/splitguard/vi1/owner"]);
    expect_fast_failure(&etcd, &from_gw, "get from gw (data segment only)");

    // Kill the leader: the other two elect a new one, and take writes.
    let old = etcd
        .wait_leader(Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("a leader: {e}"));
    etcd.kill(old).expect("kill");
    let killed = Instant::now();
    let new = wait_for(NEW_LEADER_BOUND, || {
        etcd.leader().expect("leader").filter(|i| *i != old)
    });
    let failover = killed.elapsed();
    let Some(new) = new else {
        panic!(
            "no new leader within {NEW_LEADER_BOUND:?} after killing {}{}",
            MEMBERS[old].0,
            etcd.log_tails(30)
        );
    };
    assert!(!etcd.is_running(old).expect("member"));
    let put = etcdctl(&etcd, "lb01", &["put", "/splitguard/vi1/owner", "lb02"]);
    expect_ok(&etcd, &put, "put with two members of three");

    // Every member stopped: etcdctl fails within its command timeout.
    let stopping = Instant::now();
    etcd.stop_all().expect("stop_all");
    let stop_took = stopping.elapsed();
    for i in 0..MEMBERS.len() {
        assert!(!etcd.is_running(i).expect("member"));
    }
    let down = etcdctl(&etcd, "lb01", &[FAIL_FAST, "get", "/splitguard/vi1/owner"]);
    expect_fast_failure(&etcd, &down, "get with every member stopped");
    let down = etcdctl(&etcd, "lb01", &[FAIL_FAST, "put", "/splitguard/x", "y"]);
    expect_fast_failure(&etcd, &down, "put with every member stopped");
    assert_eq!(etcd.leader().expect("leader"), None);

    // Restarted on their data directories, the members have the last write.
    for i in 0..MEMBERS.len() {
        etcd.restart(i).expect("restart");
    }
    etcd.wait_leader(Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("a leader after the restart: {e}"));
    let kvs = wait_for(Duration::from_secs(10), || {
        etcd.get_prefix("/splitguard/").ok()
    });
    assert_eq!(
        kvs,
        Some(vec![("/splitguard/vi1/owner".into(), "lb02".into())]),
        "{}",
        etcd.log_tails(20)
    );

    // lb01's management port down: lb01 is off the cluster, lb02 is not, and
    // lb01's data link is untouched.
    lab.set_management_port("lb01", false).expect("port down");
    let cut = etcdctl(&etcd, "lb01", &[FAIL_FAST, "get", "/splitguard/vi1/owner"]);
    expect_fast_failure(&etcd, &cut, "get from lb01 with its management port down");
    let put = etcdctl(&etcd, "lb02", &["put", "/splitguard/vi1/owner", "lb02b"]);
    expect_ok(&etcd, &put, "put from lb02 while lb01 is cut off");
    run(&lab, "lb01", &["ping", "-c1", "-W2", &GW_ADDR.to_string()]);
    assert!(
        lab.set_bridge_port("s1", false).is_err(),
        "s1 has no data link to cut"
    );
    lab.set_management_port("lb01", true).expect("port up");
    let back = wait_for(Duration::from_secs(10), || {
        let c = etcdctl(&etcd, "lb01", &[FAIL_FAST, "get", "/splitguard/vi1/owner"]);
        c.ok.then_some(c.stdout)
    });
    assert_eq!(
        back.as_deref(),
        Some("/splitguard/vi1/owner\nlb02b"),
        "lb01 back on the management segment"
    );

    drop(etcd);
    drop(lab);
    let left: Vec<String> = common::namespaces()
        .lines()
        .filter(|l| l.contains(&id))
        .map(str::to_string)
        .collect();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
    eprintln!(
        "etcd lab: start {start_took:?}, new leader {failover:?} ({} -> {}), stop_all {stop_took:?}, whole test {:?}",
        MEMBERS[old].0,
        MEMBERS[new].0,
        t0.elapsed()
    );
}
