//! Early takeover in namespace labs (DESIGN.md, "Early takeover"): lb02 claims
//! before Master_Down_Interval when lb01 is really gone (its link down, or cut
//! at the switch), and never while lb01 lives: not with VRRP dropped on lb02,
//! not with lb01's daemon killed while its VIP still answers, not under 30 %
//! loss to lb02. lb01 coming back preempts as it always did. VRRPv2 at 1 s
//! adverts, so Master_Down_Interval is 3.6 s.
//!
//! Needs root; fails without it.

mod common;

use common::*;
use splitguard_lab::{Lab, LabProcess, wait_for};
use std::time::{Duration, Instant};

const GW: &str = "192.0.2.254";
const LB01: &str = "192.0.2.5";
const LB02: &str = "192.0.2.6";

fn config(lab: &Lab, node: &str, priority: u8, peer: &str) -> String {
    sg_config(
        lab,
        node,
        priority,
        2,
        "1s",
        &format!(
            "\n[arbiter]\nreferences = [\"{GW}\"]\npeers = [\"{peer}\"]\nprobe_interval = \"1s\"\n\
             probe_timeout = \"500ms\"\nearly_takeover = true\n"
        ),
    )
}

/// lb01 master, lb02 backup, settled.
fn pair(lab: &Lab) -> (LabProcess, LabProcess) {
    let lb01 = start_splitguard(lab, "lb01", &config(lab, "lb01", 150, LB02));
    expect_owner(lab, Some("lb01"), &[&lb01], "lb01 alone");
    let lb02 = start_splitguard(lab, "lb02", &config(lab, "lb02", 100, LB01));
    // lb02 follows lb01 once it heard it, and its liveness stream runs.
    let sock = lab.dir().join("lb02.sock");
    wait_for(BOUND, || sock.exists().then_some(())).expect("lb02's control socket");
    wait_for(BOUND, || {
        status_via(lab, "lb02", "lb02.sock")["instances"][0]["state"]
            .as_str()
            .is_some_and(|s| s == "BACKUP")
            .then_some(())
    })
    .expect("lb02 is backup");
    std::thread::sleep(Duration::from_secs(2));
    (lb01, lb02)
}

/// lb02's instance's cause, as `status` gives it.
fn lb02_cause(lab: &Lab) -> String {
    status_via(lab, "lb02", "lb02.sock")["instances"][0]["cause"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn claimed_early(lb02: &LabProcess) -> bool {
    lb02.log_text()
        .contains("early takeover: master confirmed dead")
}

/// Waits for lb02 to hold the VIP; returns how long after `fault` it took.
fn lb02_takes_over(lab: &Lab, fault: Instant, procs: &[&LabProcess]) -> Duration {
    wait_for(BOUND, || holds(lab, "lb02").then_some(()))
        .unwrap_or_else(|| panic!("lb02 never took the VIP\n{}", logs(procs)));
    fault.elapsed()
}

#[test]
fn link_loss_of_the_master_is_taken_over_early_and_it_preempts_back() {
    let lab = pair_lab("etlink");
    let (lb01, lb02) = pair(&lab);
    let fault = Instant::now();
    lab.run("lb01", &["ip", "link", "set", "eth0", "down"])
        .expect("link down");
    let took = lb02_takes_over(&lab, fault, &[&lb01, &lb02]);
    let cause = lb02_cause(&lab);
    assert!(
        cause.starts_with("early_takeover"),
        "lb02 took over after {took:?} with cause {cause:?}, not early\n{}",
        logs(&[&lb01, &lb02])
    );
    // lb01 comes back: priority 150 preempts lb02 as ever.
    lab.run("lb01", &["ip", "link", "set", "eth0", "up"])
        .expect("link up");
    expect_owner(&lab, Some("lb01"), &[&lb01, &lb02], "lb01 preempts back");
}

#[test]
fn a_switch_cut_of_the_master_is_taken_over_early() {
    let lab = pair_lab("etcut");
    let (lb01, lb02) = pair(&lab);
    lab.set_bridge_port("lb01", false).expect("port down");
    lb02_takes_over(&lab, Instant::now(), &[&lb01, &lb02]);
    assert!(
        lb02_cause(&lab).starts_with("early_takeover"),
        "{}",
        logs(&[&lb01, &lb02])
    );
    // The heal leaves one owner: lb01 released while cut off (isolated), and
    // preempts back.
    lab.set_bridge_port("lb01", true).expect("port up");
    expect_owner(&lab, Some("lb01"), &[&lb01, &lb02], "after the heal");
}

#[test]
fn vrrp_dropped_on_the_backup_is_no_death() {
    let lab = pair_lab("etvrrp");
    let (lb01, lb02) = pair(&lab);
    lab.nft(Some("lb02"), VRRP_DROP).expect("nft");
    // Past Master_Down_Interval and several ownership rounds.
    std::thread::sleep(Duration::from_secs(8));
    assert!(!claimed_early(&lb02), "{}", logs(&[&lb01, &lb02]));
    assert!(!holds(&lab, "lb02"), "{}", logs(&[&lb01, &lb02]));
}

#[test]
fn a_killed_master_daemon_whose_vip_still_answers_is_no_death() {
    let lab = pair_lab("etkill");
    let (mut lb01, lb02) = pair(&lab);
    lb01.kill();
    // The VIP stays on lb01's eth0 and its kernel answers for it and for lb01.
    assert!(holds(&lab, "lb01"));
    std::thread::sleep(Duration::from_secs(8));
    assert!(!claimed_early(&lb02), "{}", lb02.log_text());
    assert!(
        !holds(&lab, "lb02"),
        "lb02 claimed a VIP lb01 still answers for\n{}",
        lb02.log_text()
    );
}

#[test]
fn thirty_percent_loss_to_the_backup_for_a_minute_makes_no_early_claim() {
    let lab = pair_lab("etloss");
    let (lb01, lb02) = pair(&lab);
    // S7's fault: at the switch, so ARP answers are lost as well as adverts
    // and echo replies.
    let port = lab.host("lb02").expect("host").bridge_port.clone();
    lab.nft(
        None,
        &format!(
            "table bridge et7 {{\n chain loss {{\n  type filter hook forward priority 0;\n  \
             oifname \"{port}\" numgen random mod 100 < 30 drop\n }}\n}}\n"
        ),
    )
    .expect("nft");
    std::thread::sleep(Duration::from_secs(60));
    assert!(!claimed_early(&lb02), "{}", logs(&[&lb01, &lb02]));
}

/// keepalived as the master that dies, VRRPv3 over unicast: early takeover is
/// a local decision on lb02 and needs nothing from its master but that it
/// answers ICMP and ARP like any host, so it works opposite keepalived too.
#[test]
fn a_keepalived_master_over_v3_unicast_is_taken_over_early_and_paged_as_failover() {
    let lab = pair_lab("etka");
    let ka = format!(
        "global_defs {{\n  router_id lb01\n  vrrp_version 3\n}}\n\
         vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 51\n  \
         priority 150\n  advert_int 1\n  unicast_src_ip {LB01}\n  unicast_peer {{\n    {LB02}\n  }}\n  \
         virtual_ipaddress {{\n    192.0.2.3/24 dev eth0 label eth0:1\n  }}\n}}\n"
    );
    let lb01 = start_keepalived(&lab, "lb01", &ka);
    expect_owner(&lab, Some("lb01"), &[&lb01], "keepalived lb01 alone");
    let (recorder, events) = start_recorder(&lab, 8080);
    let sg = sg_config(
        &lab,
        "lb02",
        100,
        3,
        "1s",
        &format!(
            "unicast_peers = [\"{LB01}\"]\n\n[arbiter]\nreferences = [\"{GW}\"]\n\
             peers = [\"{LB01}\"]\nprobe_interval = \"1s\"\nprobe_timeout = \"500ms\"\n\n\
             [[channel]]\ntype = \"webhook\"\nname = \"gw\"\nurl = \"http://{GW}:8080/hook\"\n\n\
             [alerts]\ngroup_wait = \"1s\"\n"
        ),
    );
    let lb02 = start_splitguard(&lab, "lb02", &sg);
    let sock = lab.dir().join("lb02.sock");
    wait_for(BOUND, || sock.exists().then_some(())).expect("lb02's control socket");
    wait_for(BOUND, || {
        status_via(&lab, "lb02", "lb02.sock")["instances"][0]["state"]
            .as_str()
            .is_some_and(|s| s == "BACKUP")
            .then_some(())
    })
    .expect("lb02 is backup behind keepalived");
    std::thread::sleep(Duration::from_secs(2));
    let procs = [&lb01, &lb02, &recorder];
    lab.run("lb01", &["ip", "link", "set", "eth0", "down"])
        .expect("link down");
    lb02_takes_over(&lab, Instant::now(), &procs);
    assert!(
        lb02_cause(&lab).starts_with("early_takeover"),
        "{}",
        logs(&procs)
    );
    // The takeover pages as a failover, naming the arbiter's confirmation.
    let paged = wait_for(BOUND, || {
        read_jsonl(&events)
            .into_iter()
            .find(|e| e["json"]["kind"] == "failover" && e["json"]["status"] == "firing")
    })
    .unwrap_or_else(|| panic!("no failover page at gw\n{}", logs(&procs)));
    let cause = paged["json"]["cause"].as_str().unwrap_or_default();
    assert!(cause.contains("confirmed dead"), "{paged}");
}
