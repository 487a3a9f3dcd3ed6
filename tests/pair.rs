//! A splitguard pair in a namespace lab (lb01, lb02, gw on one bridge), v2 and v3:
//! steady state, link loss, preemption on return, graceful handover on SIGTERM,
//! nopreempt. Ownership is judged from gw with arping, as a neighbour would see it.
//! Needs root; fails without it.

mod common;

use common::*;
use std::time::Duration;

fn failover_cycle(tag: &str, version: u8, interval: &str) {
    let lab = pair_lab(tag);
    let mut lb01 = start_splitguard(
        &lab,
        "lb01",
        &sg_config(&lab, "lb01", 150, version, interval, ""),
    );
    let lb02 = start_splitguard(
        &lab,
        "lb02",
        &sg_config(&lab, "lb02", 100, version, interval, ""),
    );

    expect_owner(&lab, Some("lb01"), &[&lb01, &lb02], "steady state");

    // Pull lb01's cable at the switch: its link goes down, it releases the VIP
    // (FAULT) and lb02 takes over.
    lab.set_bridge_port("lb01", false).expect("port down");
    expect_owner(
        &lab,
        Some("lb02"),
        &[&lb01, &lb02],
        "after lb01's link loss",
    );

    // Back with a higher priority: lb01 preempts.
    lab.set_bridge_port("lb01", true).expect("port up");
    expect_owner(&lab, Some("lb01"), &[&lb01, &lb02], "after lb01 returns");

    // Graceful stop: priority 0, VIP released, exit 0; lb02 takes over.
    let status = lb01.stop(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "SIGTERM exits 0: {status:?}\n{}",
        lb01.log_text()
    );
    assert!(!holds(&lab, "lb01"), "a stopped node keeps no VIP");
    expect_owner(&lab, Some("lb02"), &[&lb01, &lb02], "after SIGTERM on lb01");
    assert!(
        lb02.log_text().contains("master released (priority 0)"),
        "lb02 took over on the priority-0 advert, not by timeout\n{}",
        lb02.log_text()
    );
}

#[test]
fn v2_pair_fails_over_preempts_and_hands_over() {
    failover_cycle("pairv2", 2, "1s");
}

#[test]
fn v3_pair_fails_over_preempts_and_hands_over() {
    failover_cycle("pairv3", 3, "100ms");
}

#[test]
fn nopreempt_keeps_the_current_master() {
    let lab = pair_lab("nopreempt");
    let lb02 = start_splitguard(
        &lab,
        "lb02",
        &sg_config(&lab, "lb02", 100, 2, "1s", "preempt = false\n"),
    );
    expect_owner(&lab, Some("lb02"), &[&lb02], "lb02 alone");
    let lb01 = start_splitguard(
        &lab,
        "lb01",
        &sg_config(&lab, "lb01", 150, 2, "1s", "preempt = false\n"),
    );
    // Longer than lb01's Master_Down_Interval (3.4 s) twice over.
    expect_owner_stays(
        &lab,
        "lb02",
        Duration::from_secs(8),
        &[&lb01, &lb02],
        "nopreempt",
    );
}

#[test]
fn sigkill_then_restart_leaves_no_stale_vip() {
    let lab = pair_lab("sigkill");
    let cfg1 = sg_config(&lab, "lb01", 150, 2, "1s", "");
    let mut lb01 = start_splitguard(&lab, "lb01", &cfg1);
    let lb02 = start_splitguard(&lab, "lb02", &sg_config(&lab, "lb02", 100, 2, "1s", ""));
    expect_owner(&lab, Some("lb01"), &[&lb01, &lb02], "steady state");

    // A crash leaves the VIP configured on lb01 with nobody advertising it.
    lb01.kill();
    assert!(
        holds(&lab, "lb01"),
        "SIGKILL cannot clean up: the VIP is stale"
    );
    // Restarted, lb01 removes the stale VIP at once and later wins the election.
    let lb01 = start_splitguard(&lab, "lb01", &cfg1);
    expect_owner(&lab, Some("lb01"), &[&lb01, &lb02], "after restart");
    assert!(
        lb01.log_text()
            .contains("removed a VIP left on eth0 by a previous run"),
        "{}",
        lb01.log_text()
    );
}
